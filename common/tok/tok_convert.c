/* tok_convert.c - turns the tokenizer of a llama2.c checkpoint (the Llama-2 SentencePiece
 * vocabulary with scores) into the HF tokenizer.json + tokenizer_config.json that
 * transformers' LlamaConverter writes for Llama-2, so the default model gets a real HF
 * tokenizer directory.
 *
 * Blob layout: int32 max_token_length, then per id {float32 score, int32 len, len bytes}.
 * Ids 0..2 hold "<unk>", "\n<s>\n", "\n</s>\n"; ids 3..258 the byte pieces <0x00>..<0xFF>
 * stored as the UTF-8 of code point = byte; elsewhere the word-start mark U+2581 is a space.
 * Merges follow HF's SentencePieceExtractor: for each piece in id order every split into two
 * vocabulary pieces, ordered by (id(left), id(right)); then all merges stably sorted by the
 * merged piece's score, highest first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "tok_impl.h"

#define SP_MARK "\xE2\x96\x81" /* U+2581 */

typedef struct {
    int32_t l, r, id; /* left piece, right piece, merged piece */
    int32_t order;    /* position before the score sort (stability) */
    float score;      /* score of the merged piece */
} merge;

static int merge_cmp_local(const void *a, const void *b)
{
    const merge *x = a, *y = b;
    if (x->l != y->l)
        return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

static int merge_cmp_score(const void *a, const void *b)
{
    const merge *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Reads the blob into PIECE/PIECE_LEN/SCORE (converted spellings). 0 or -1 with ERR. */
static int read_blob(const unsigned char *p, size_t len, int n, char **piece, uint32_t *piece_len,
                     float *score, char *err, size_t n_err)
{
    size_t off = 4;
    if (len < 4) {
        snprintf(err, n_err, "tokenizer blob too short");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int32_t l;
        if (off + 8 > len) {
            snprintf(err, n_err, "tokenizer blob ends at record %d of %d", i, n);
            return -1;
        }
        memcpy(&score[i], p + off, 4);
        memcpy(&l, p + off + 4, 4);
        off += 8;
        if (l < 0 || (size_t)l > len - off) {
            snprintf(err, n_err, "tokenizer blob: bad length %d at record %d", l, i);
            return -1;
        }
        const char *s = (const char *)p + off;
        off += (size_t)l;
        char tmp[16];
        tok_buf b = {0};
        if (i < 3) {
            static const char *const special[3] = {"<unk>", "<s>", "</s>"};
            if (strbuf_add(&b, special[i], strlen(special[i])) < 0)
                goto oom;
        } else if (i < 259) {
            int cl = 0;
            if (l < 1 || !tok_utf8_valid(s, (size_t)l) || tok_utf8_decode(s, &cl) != (uint32_t)(i - 3) ||
                cl != l) {
                snprintf(err, n_err, "tokenizer blob: record %d is not byte piece 0x%02X", i, i - 3);
                return -1;
            }
            snprintf(tmp, sizeof tmp, "<0x%02X>", i - 3);
            if (strbuf_add(&b, tmp, 6) < 0)
                goto oom;
        } else {
            for (int k = 0; k < l; k++)
                if (strbuf_add(&b, s[k] == ' ' ? SP_MARK : s + k, s[k] == ' ' ? 3 : 1) < 0)
                    goto oom;
        }
        if (strbuf_add(&b, "", 1) < 0)
            goto oom;
        piece[i] = b.p;
        piece_len[i] = (uint32_t)b.n - 1;
        continue;
    oom:
        free(b.p);
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    return 0;
}

/* All merges in HF order; *N_OUT gets their count. NULL on out of memory. */
static merge *build_merges(char **piece, const uint32_t *piece_len, const float *score, int n,
                           const tok_strmap *vocab, size_t *n_out)
{
    size_t n_m = 0, cap = 1024;
    merge *m = malloc(cap * sizeof *m);
    if (!m)
        return NULL;
    for (int id = 0; id < n; id++) {
        size_t first = n_m;
        const char *s = piece[id];
        int cl;
        for (uint32_t k = (uint32_t)tok_utf8_len((unsigned char)s[0]); k < piece_len[id];
             k += (uint32_t)cl) {
            cl = tok_utf8_len((unsigned char)s[k]);
            int32_t l = tok_strmap_get(vocab, s, k);
            int32_t r = l < 0 ? -1 : tok_strmap_get(vocab, s + k, piece_len[id] - k);
            if (r < 0)
                continue;
            if (n_m == cap) {
                merge *p = realloc(m, 2 * cap * sizeof *m);
                if (!p) {
                    free(m);
                    return NULL;
                }
                m = p;
                cap *= 2;
            }
            m[n_m++] = (merge){.l = l, .r = r, .id = id, .score = score[id]};
        }
        qsort(m + first, n_m - first, sizeof *m, merge_cmp_local);
    }
    for (size_t i = 0; i < n_m; i++)
        m[i].order = (int32_t)i;
    qsort(m, n_m, sizeof *m, merge_cmp_score);
    *n_out = n_m;
    return m;
}

static cJSON *added_token_json(int id, const char *content, int with_id)
{
    cJSON *a = cJSON_CreateObject();
    if (with_id)
        cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", content);
    cJSON_AddBoolToObject(a, "single_word", 0);
    cJSON_AddBoolToObject(a, "lstrip", 0);
    cJSON_AddBoolToObject(a, "rstrip", 0);
    cJSON_AddBoolToObject(a, "normalized", 0);
    cJSON_AddBoolToObject(a, "special", 1);
    return a;
}

static cJSON *typed(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *replace_json(const char *pattern, const char *content)
{
    cJSON *o = typed("Replace");
    cJSON *p = cJSON_AddObjectToObject(o, "pattern");
    cJSON_AddStringToObject(p, "String", pattern);
    cJSON_AddStringToObject(o, "content", content);
    return o;
}

static cJSON *tokenizer_json(char **piece, int n, const merge *m, size_t n_m)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(added, added_token_json(i, piece[i], 1));

    cJSON *norm = typed("Sequence"), *norms = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *prepend = typed("Prepend");
    cJSON_AddStringToObject(prepend, "prepend", SP_MARK);
    cJSON_AddItemToArray(norms, prepend);
    cJSON_AddItemToArray(norms, replace_json(" ", SP_MARK));
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON_AddNullToObject(root, "pre_tokenizer");

    cJSON *post = typed("TemplateProcessing");
    const char *const seqs[2][4] = {{"<s>", "A"}, {"<s>", "A", "<s>", "B"}};
    const char *const names[2] = {"single", "pair"};
    for (int k = 0; k < 2; k++) {
        cJSON *arr = cJSON_AddArrayToObject(post, names[k]);
        for (int i = 0; i < 2 * (k + 1); i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON *v = cJSON_AddObjectToObject(e, i % 2 ? "Sequence" : "SpecialToken");
            cJSON_AddStringToObject(v, "id", seqs[k][i]);
            cJSON_AddNumberToObject(v, "type_id", i / 2);
            cJSON_AddItemToArray(arr, e);
        }
    }
    cJSON *sp = cJSON_AddObjectToObject(post, "special_tokens");
    cJSON *bos = cJSON_AddObjectToObject(sp, "<s>");
    cJSON_AddStringToObject(bos, "id", "<s>");
    int one = 1;
    cJSON_AddItemToObject(bos, "ids", cJSON_CreateIntArray(&one, 1));
    const char *bos_s = "<s>";
    cJSON_AddItemToObject(bos, "tokens", cJSON_CreateStringArray(&bos_s, 1));
    cJSON_AddItemToObject(root, "post_processor", post);

    cJSON *dec = typed("Sequence"), *decs = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddItemToArray(decs, replace_json(SP_MARK, " "));
    cJSON_AddItemToArray(decs, typed("ByteFallback"));
    cJSON_AddItemToArray(decs, typed("Fuse"));
    cJSON *strip = typed("Strip");
    cJSON_AddStringToObject(strip, "content", " ");
    cJSON_AddNumberToObject(strip, "start", 1);
    cJSON_AddNumberToObject(strip, "stop", 0);
    cJSON_AddItemToArray(decs, strip);
    cJSON_AddItemToObject(root, "decoder", dec);

    cJSON *model = typed("BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < n; i++)
        cJSON_AddNumberToObject(vocab, piece[i], i);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t i = 0; i < n_m; i++) {
        const char *pair[2] = {piece[m[i].l], piece[m[i].r]};
        cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
    }
    cJSON_AddItemToObject(root, "model", model);
    return root;
}

static cJSON *config_json(char **piece)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "add_bos_token", 1);
    cJSON_AddBoolToObject(c, "add_eos_token", 0);
    cJSON *dec = cJSON_AddObjectToObject(c, "added_tokens_decoder");
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", i);
        cJSON_AddItemToObject(dec, key, added_token_json(i, piece[i], 0));
    }
    cJSON_AddStringToObject(c, "bos_token", piece[1]);
    cJSON_AddStringToObject(c, "eos_token", piece[2]);
    cJSON_AddStringToObject(c, "unk_token", piece[0]);
    cJSON_AddNullToObject(c, "pad_token");
    cJSON_AddBoolToObject(c, "clean_up_tokenization_spaces", 0);
    cJSON_AddBoolToObject(c, "legacy", 1);
    /* HF's "no limit" (int(1e30)): the context length lives in config.json */
    cJSON_AddRawToObject(c, "model_max_length", "1000000000000000019884624838656");
    cJSON_AddStringToObject(c, "tokenizer_class", "LlamaTokenizer");
    return c;
}

static int write_json(const cJSON *j, const char *dir, const char *name, char *err, size_t n_err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = cJSON_PrintUnformatted(j);
    if (!s) {
        snprintf(err, n_err, "out of memory printing %s", name);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (!f)
        snprintf(err, n_err, "cannot write %s: %s", path, strerror(errno));
    else if (fwrite(s, 1, strlen(s), f) != strlen(s) || fputc('\n', f) == EOF)
        snprintf(err, n_err, "cannot write %s: %s", path, strerror(errno));
    else
        rc = 0;
    if (f && fclose(f) != 0 && rc == 0) {
        snprintf(err, n_err, "cannot write %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(s);
    return rc;
}

int tok_convert_llama2c(const void *data, size_t len, int vocab_size, const char *out_dir,
                        char *err, size_t n_err)
{
    int rc = -1;
    char **piece = NULL;
    uint32_t *piece_len = NULL;
    float *score = NULL;
    merge *m = NULL;
    cJSON *tj = NULL, *cj = NULL;
    tok_strmap vocab = {0};
    if (vocab_size < 259) {
        snprintf(err, n_err, "vocab_size %d: a Llama-2 vocabulary has at least 259 pieces", vocab_size);
        return -1;
    }
    piece = calloc((size_t)vocab_size, sizeof *piece);
    piece_len = calloc((size_t)vocab_size, sizeof *piece_len);
    score = calloc((size_t)vocab_size, sizeof *score);
    if (!piece || !piece_len || !score) {
        snprintf(err, n_err, "out of memory");
        goto fail;
    }
    if (read_blob(data, len, vocab_size, piece, piece_len, score, err, n_err) < 0)
        goto fail;
    if (tok_strmap_init(&vocab, (const char *const *)piece, piece_len, vocab_size) < 0) {
        snprintf(err, n_err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < vocab_size; i++) {
        if (tok_strmap_get(&vocab, piece[i], piece_len[i]) >= 0) {
            snprintf(err, n_err, "tokenizer blob: piece %d \"%s\" appears twice", i, piece[i]);
            goto fail;
        }
        tok_strmap_put(&vocab, i);
    }
    size_t n_m;
    m = build_merges(piece, piece_len, score, vocab_size, &vocab, &n_m);
    if (!m) {
        snprintf(err, n_err, "out of memory");
        goto fail;
    }
    tj = tokenizer_json(piece, vocab_size, m, n_m);
    cj = config_json(piece);
    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, n_err, "cannot create %s: %s", out_dir, strerror(errno));
        goto fail;
    }
    if (write_json(tj, out_dir, "tokenizer.json", err, n_err) < 0 ||
        write_json(cj, out_dir, "tokenizer_config.json", err, n_err) < 0)
        goto fail;
    rc = 0;
fail:
    cJSON_Delete(tj);
    cJSON_Delete(cj);
    free(m);
    tok_strmap_free(&vocab);
    if (piece)
        for (int i = 0; i < vocab_size; i++)
            free(piece[i]);
    free(piece);
    free(piece_len);
    free(score);
    return rc;
}
