/* fuzz_tok_load.c - libFuzzer target: arbitrary tokenizer.json files through tok_load.
 *
 * Seeded with small valid tokenizers of both families, so the mutations reach deep into the
 * components (normalizers, pre-tokenizers, merges, added tokens, post-processors, decoders).
 * A file must load or fail with a message, never crash or leak; a loaded tokenizer must
 * encode and decode a few fixed texts within its vocabulary without crashing.
 */
#include <string.h>

#include "../../common/tok/tok.h"
#include "fuzz_util.h"

static const char *const texts[] = {
    "", "Hello world", " leading and  double  spaces\n", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
    "<s> </s> <|begin_of_text|> <unk>", "1234567 x=y+z;", "\xE2\x96\x81 \xC4\xA0\t\r\n",
};

static void exercise(const tok *t)
{
    int vocab = tok_vocab_size(t);
    FUZZ_CHECK(vocab >= 0);
    int32_t ids[512];
    char out[2048];
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        int64_t n = tok_encode(t, texts[k], strlen(texts[k]), 1, ids, 512);
        if (n < 0)
            continue;
        size_t m = n < 512 ? (size_t)n : 512;
        for (size_t i = 0; i < m; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
        FUZZ_CHECK(tok_decode(t, ids, m, 0, out, sizeof out) >= 0);
        FUZZ_CHECK(tok_decode(t, ids, m, 1, out, sizeof out) >= 0);
    }
    /* every id decodes alone */
    for (int32_t id = 0; id < vocab && id < 4096; id++)
        FUZZ_CHECK(tok_decode(t, &id, 1, 0, out, sizeof out) >= 0);
    FUZZ_CHECK(tok_bos_id(t) < vocab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    int fd = fuzz_file_path(data, size, path, sizeof path);
    FUZZ_CHECK(fd >= 0);
    err[0] = 0;
    tok *t = tok_load(path, err, sizeof err);
    if (t) {
        exercise(t);
        tok_free(t);
    } else {
        FUZZ_CHECK(err[0] && memchr(err, 0, sizeof err));
    }
    close(fd);
    return 0;
}
