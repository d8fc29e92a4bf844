/* fuzz_tok.h - the tokenizers the encode/decode fuzz targets run on, loaded once.
 *
 * The default model's (models/stories15M, SentencePiece-style BPE with byte fallback) and
 * Llama-3's (build/assets/llama3, byte-level BPE), paths relative to the repository root;
 * CINDER_FUZZ_TOKENIZERS (paths separated by ':') replaces the list. A missing file is
 * skipped with a note; none at all aborts.
 */
#ifndef CINDER_FUZZ_TOK_H
#define CINDER_FUZZ_TOK_H

#include <stdlib.h>
#include <string.h>

#include "../../common/tok/tok.h"
#include "fuzz_util.h"

#define FUZZ_MAX_TOKS 4

typedef struct {
    tok *t;
    int byte_level;  /* 1: decode(encode(text)) is text exactly */
    const char *path;
} fuzz_tok;

static fuzz_tok fuzz_toks[FUZZ_MAX_TOKS];
static int fuzz_n_toks;

static void fuzz_tok_load_all(void)
{
    static char list[4096];
    const char *env = getenv("CINDER_FUZZ_TOKENIZERS");
    snprintf(list, sizeof list, "%s",
             env ? env : "models/stories15M/tokenizer.json:build/assets/llama3/tokenizer.json");
    for (char *save = NULL, *p = strtok_r(list, ":", &save); p && fuzz_n_toks < FUZZ_MAX_TOKS;
         p = strtok_r(NULL, ":", &save)) {
        char err[256];
        tok *t = tok_load(p, err, sizeof err);
        if (!t) {
            fprintf(stderr, "fuzz: skipping tokenizer %s: %s\n", p, err);
            continue;
        }
        /* SentencePiece vocabularies hold the word-start mark U+2581 itself; byte-level ones
         * spell its bytes as other characters */
        int byte_level = tok_token_id(t, "\xE2\x96\x81") < 0;
        fuzz_toks[fuzz_n_toks++] = (fuzz_tok){t, byte_level, p};
        fprintf(stderr, "fuzz: tokenizer %s (%d ids, %s)\n", p, tok_vocab_size(t),
                byte_level ? "byte-level" : "SentencePiece-style");
    }
    if (!fuzz_n_toks) {
        fprintf(stderr, "fuzz: no tokenizer could be loaded (run make setup)\n");
        abort();
    }
}

#endif
