/* fuzz_tok_encode.c - libFuzzer target: arbitrary bytes through tok_encode.
 *
 * Properties, on every tokenizer of fuzz_tok.h: encoding fails exactly when the bytes are not
 * valid UTF-8 (checked by an oracle apart from the library's); ids lie in the vocabulary;
 * a short array gets a prefix and nothing past its end; the post-processor's ids only
 * surround the plain encoding; and decode(encode(text)) gives the text back, exactly for a
 * byte-level vocabulary, and for a SentencePiece one where its normalizer keeps the text
 * (no U+2581, no added-token spellings).
 */
#include "fuzz_tok.h"

#define SENTINEL 0x7eadbeef

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_tok_load_all();
    return 0;
}

/* 1 if decoding must give TEXT back for tokenizer FT */
static int round_trips(const fuzz_tok *ft, const char *text, size_t n)
{
    if (ft->byte_level)
        return 1;
    return !memmem(text, n, "\xE2\x96\x81", 3) && !memchr(text, '<', n);
}

static void check_one(const fuzz_tok *ft, const char *text, size_t n)
{
    const tok *t = ft->t;
    int64_t n_ids = tok_encode(t, text, n, 0, NULL, 0);
    FUZZ_CHECK((n_ids >= 0) == fuzz_utf8_valid((const uint8_t *)text, n));
    if (n_ids < 0)
        return;
    FUZZ_CHECK(n_ids <= (int64_t)n + 1);
    int32_t *ids = malloc((size_t)(n_ids + 1) * sizeof *ids);
    int32_t *with = malloc((size_t)(n_ids + 8) * sizeof *with);
    char *back = NULL;
    FUZZ_CHECK(ids && with);
    for (int64_t i = 0; i <= n_ids; i++)
        ids[i] = SENTINEL;
    FUZZ_CHECK(tok_encode(t, text, n, 0, ids, (size_t)n_ids) == n_ids);
    FUZZ_CHECK(ids[n_ids] == SENTINEL);
    for (int64_t i = 0; i < n_ids; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok_vocab_size(t));
    /* a short array: the same count, a prefix, nothing written past it */
    size_t half = (size_t)n_ids / 2;
    for (int64_t i = 0; i < n_ids + 8; i++)
        with[i] = SENTINEL;
    FUZZ_CHECK(tok_encode(t, text, n, 0, with, half) == n_ids);
    FUZZ_CHECK(!memcmp(with, ids, half * sizeof *ids) && with[half] == SENTINEL);
    /* the post-processor adds ids around the plain encoding */
    int64_t n_with = tok_encode(t, text, n, 1, with, (size_t)n_ids + 8);
    FUZZ_CHECK(n_with >= n_ids && n_with <= n_ids + 8);
    int found = 0;
    for (int64_t k = 0; k + n_ids <= n_with && !found; k++)
        found = !memcmp(with + k, ids, (size_t)n_ids * sizeof *ids);
    FUZZ_CHECK(found);
    if (round_trips(ft, text, n)) {
        int64_t n_back = tok_decode(t, ids, (size_t)n_ids, 0, NULL, 0);
        FUZZ_CHECK(n_back >= 0);
        back = malloc((size_t)n_back + 1);
        FUZZ_CHECK(back && tok_decode(t, ids, (size_t)n_ids, 0, back, (size_t)n_back) == n_back);
        if ((size_t)n_back != n || memcmp(back, text, n)) {
            fprintf(stderr, "round trip on %s: %zu bytes in, %lld bytes back: \"%.*s\"\n", ft->path, n,
                    (long long)n_back, (int)n_back, back);
            FUZZ_CHECK(!"decode(encode(text)) == text");
        }
    }
    free(back);
    free(ids);
    free(with);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int i = 0; i < fuzz_n_toks; i++)
        check_one(&fuzz_toks[i], (const char *)data, size);
    return 0;
}
