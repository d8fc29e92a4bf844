/* fuzz_tok_decode.c - libFuzzer target: arbitrary id arrays through tok_decode.
 *
 * The first byte picks how the rest becomes ids: raw little-endian int32 (any value, most
 * out of range) or 24-bit values spread a little past both ends of the vocabulary.
 * Properties, on every tokenizer of fuzz_tok.h: decoding fails exactly when an id is out of
 * range; the text is valid UTF-8; a short buffer gets a prefix and nothing past its end;
 * skipping special tokens is the same as decoding without them.
 */
#include "fuzz_tok.h"

#define SENTINEL 0x5a

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_tok_load_all();
    return 0;
}

static int64_t decode_all(const tok *t, const int32_t *ids, size_t n, int skip, char **out)
{
    int64_t len = tok_decode(t, ids, n, skip, NULL, 0);
    *out = NULL;
    if (len < 0)
        return len;
    *out = malloc((size_t)len + 1);
    FUZZ_CHECK(*out);
    memset(*out, SENTINEL, (size_t)len + 1);
    FUZZ_CHECK(tok_decode(t, ids, n, skip, *out, (size_t)len) == len);
    FUZZ_CHECK((*out)[len] == (char)SENTINEL);
    return len;
}

static void check_one(const tok *t, const int32_t *ids, size_t n)
{
    int vocab = tok_vocab_size(t), in_range = 1;
    for (size_t i = 0; i < n; i++)
        in_range &= ids[i] >= 0 && ids[i] < vocab;
    char *text, *skipped, *plain;
    int64_t len = decode_all(t, ids, n, 0, &text);
    FUZZ_CHECK((len >= 0) == in_range);
    if (len < 0)
        return;
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)text, (size_t)len));
    /* a short buffer: same length returned, a prefix written, nothing past it */
    size_t half = (size_t)len / 2;
    char *part = malloc(half + 1);
    FUZZ_CHECK(part);
    part[half] = (char)SENTINEL;
    FUZZ_CHECK(tok_decode(t, ids, n, 0, part, half) == len);
    FUZZ_CHECK(!memcmp(part, text, half) && part[half] == (char)SENTINEL);
    /* skip_special == decoding the list with the special ids removed */
    int32_t *kept = malloc((n + 1) * sizeof *kept);
    size_t n_kept = 0;
    FUZZ_CHECK(kept);
    for (size_t i = 0; i < n; i++)
        if (!tok_is_special(t, ids[i]))
            kept[n_kept++] = ids[i];
    int64_t len_skip = decode_all(t, ids, n, 1, &skipped);
    int64_t len_plain = decode_all(t, kept, n_kept, 0, &plain);
    FUZZ_CHECK(len_skip == len_plain && !memcmp(skipped, plain, (size_t)len_skip));
    free(text);
    free(part);
    free(kept);
    free(skipped);
    free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int raw = data[0] & 1;
    size_t width = raw ? 4 : 3, n = (size - 1) / width;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    FUZZ_CHECK(ids);
    for (int k = 0; k < fuzz_n_toks; k++) {
        const tok *t = fuzz_toks[k].t;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = data + 1 + i * width;
            if (raw)
                memcpy(&ids[i], p, 4);
            else /* [-4, vocab + 4) */
                ids[i] = (int32_t)((p[0] | p[1] << 8 | (uint32_t)p[2] << 16) % (unsigned)(tok_vocab_size(t) + 8)) - 4;
        }
        check_one(t, ids, n);
    }
    free(ids);
    return 0;
}
