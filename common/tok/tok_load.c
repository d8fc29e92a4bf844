/* tok_load.c - tok_load / tok_free and the small accessors: reads tokenizer.json (the BPE
 * model: vocabulary, merges, unk/byte-fallback flags; the added tokens) with cJSON, hands the
 * pipeline components to tok_parts.c, and takes the BOS token from tokenizer_config.json
 * next to the file when there is one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tok_impl.h"

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            } else {
                buf[len] = 0;
                *n = (size_t)len;
            }
        }
    }
    fclose(f);
    return buf;
}

static int get_flag(const cJSON *j, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, key));
}

static int non_null(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !*v->valuestring);
}

/* One merge "A B" or ["A", "B"]: left and right pieces into *A, *B (A is a scratch copy). */
static int merge_parts(const cJSON *m, char **a, const char **b)
{
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y))
            return -1;
        *a = strdup(x->valuestring);
        *b = y->valuestring;
        return *a ? 0 : -1;
    }
    if (!cJSON_IsString(m))
        return -1;
    const char *sp = strchr(m->valuestring, ' ');
    if (!sp || strchr(sp + 1, ' '))
        return -1;
    *a = strndup(m->valuestring, (size_t)(sp - m->valuestring));
    *b = sp + 1;
    return *a ? 0 : -1;
}

static int load_merges(tok *t, const cJSON *merges, char *err, size_t n_err)
{
    int n = cJSON_GetArraySize(merges);
    if (tok_pairmap_init(&t->merges, (size_t)n) < 0) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    tok_buf cat = {0};
    const cJSON *m;
    uint32_t rank = 0;
    cJSON_ArrayForEach(m, merges) {
        char *a = NULL;
        const char *b = NULL;
        if (merge_parts(m, &a, &b) < 0) {
            snprintf(err, n_err, "merge %u is malformed", rank + 1);
            goto fail;
        }
        cat.n = 0;
        int ok = strbuf_add(&cat, a, strlen(a)) == 0 && strbuf_add(&cat, b, strlen(b)) == 0;
        int32_t l = tok_strmap_get(&t->vocab, a, strlen(a));
        int32_t r = tok_strmap_get(&t->vocab, b, strlen(b));
        int32_t id = ok ? tok_strmap_get(&t->vocab, cat.p, cat.n) : -1;
        if (l < 0 || r < 0 || id < 0) {
            snprintf(err, n_err, "merge %u (\"%s\" \"%s\"): a piece is not in the vocabulary",
                     rank + 1, a, b);
            free(a);
            goto fail;
        }
        free(a);
        tok_pairmap_put(&t->merges, l, r, rank++, id);
    }
    free(cat.p);
    return 0;
fail:
    free(cat.p);
    return -1;
}

static int load_model(tok *t, const cJSON *model, char *err, size_t n_err)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "BPE")) {
        snprintf(err, n_err, "model type \"%s\" is not implemented (only BPE)",
                 cJSON_IsString(ty) ? ty->valuestring : "?");
        return -1;
    }
    if (non_null(model, "dropout") || non_null(model, "continuing_subword_prefix") ||
        non_null(model, "end_of_word_suffix")) {
        snprintf(err, n_err, "BPE with dropout, continuing_subword_prefix or end_of_word_suffix "
                             "is not implemented");
        return -1;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *v;
    if (!cJSON_IsObject(vocab)) {
        snprintf(err, n_err, "model.vocab missing");
        return -1;
    }
    int n = 0;
    cJSON_ArrayForEach(v, vocab) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e8) {
            snprintf(err, n_err, "model.vocab: bad id for \"%s\"", v->string);
            return -1;
        }
        if (v->valueint + 1 > n)
            n = v->valueint + 1;
    }
    if (n == 0) { /* nothing could be encoded: every prompt would fail */
        snprintf(err, n_err, "model.vocab is empty");
        return -1;
    }
    t->n_vocab = n;
    t->piece = calloc((size_t)n + 1, sizeof *t->piece);
    t->piece_len = calloc((size_t)n + 1, sizeof *t->piece_len);
    if (!t->piece || !t->piece_len ||
        tok_strmap_init(&t->vocab, (const char *const *)t->piece, t->piece_len, n) < 0) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(v, vocab) {
        int id = v->valueint;
        free(t->piece[id]);
        if (!(t->piece[id] = strdup(v->string))) {
            snprintf(err, n_err, "out of memory");
            return -1;
        }
        t->piece_len[id] = (uint32_t)strlen(v->string);
        tok_strmap_put(&t->vocab, id);
    }
    if (load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), err, n_err) < 0)
        return -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->has_unk = cJSON_IsString(unk);
    t->unk_id = t->has_unk ? tok_strmap_get(&t->vocab, unk->valuestring, strlen(unk->valuestring)) : -1;
    t->fuse_unk = get_flag(model, "fuse_unk");
    t->byte_fallback = get_flag(model, "byte_fallback");
    t->ignore_merges = get_flag(model, "ignore_merges");
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = tok_strmap_get(&t->vocab, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char s = (char)c;
        t->ascii_id[c] = tok_strmap_get(&t->vocab, &s, 1);
    }
    return 0;
}

/* 1 when no vocabulary piece holds U+2581 right after another character (see mark_split) */
static int mark_split_safe(const tok *t)
{
    static const char mark[] = "\xE2\x96\x81";
    if (t->ignore_merges || tok_strmap_get(&t->vocab, mark, 3) < 0)
        return 0;
    for (int id = 0; id < t->n_vocab; id++) {
        const char *p = t->piece[id];
        if (!p)
            continue;
        for (const char *m = *p ? strstr(p + 1, mark) : NULL; m; m = strstr(m + 3, mark)) /* "" ends at p */
            if (m - p < 3 || memcmp(m - 3, mark, 3) != 0)
                return 0;
    }
    return 1;
}

static int load_added(tok *t, const cJSON *arr, char *err, size_t n_err)
{
    int n = cJSON_GetArraySize(arr), max_id = t->n_vocab - 1;
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added)
        goto oom;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsString(c) || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8) {
            snprintf(err, n_err, "added_tokens: entry without content or id");
            return -1;
        }
        if (!*c->valuestring)
            continue; /* HF ignores empty added tokens */
        tok_added *a = &t->added[t->n_added];
        a->n_content = strlen(c->valuestring);
        if (!(a->content = strdup(c->valuestring)))
            goto oom;
        t->n_added++;
        a->id = (int32_t)id->valueint;
        a->special = get_flag(e, "special");
        a->lstrip = get_flag(e, "lstrip");
        a->rstrip = get_flag(e, "rstrip");
        a->normalized = get_flag(e, "normalized");
        a->single_word = get_flag(e, "single_word");
        if (a->id > max_id)
            max_id = a->id;
    }
    t->n_total = max_id + 1;
    t->added_of_id = malloc((size_t)t->n_total * sizeof *t->added_of_id);
    if (!t->added_of_id)
        goto oom;
    memset(t->added_of_id, 0xFF, (size_t)t->n_total * sizeof *t->added_of_id);
    for (int i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (t->added_of_id[a->id] < 0)
            t->added_of_id[a->id] = i;
        int rc;
        if (a->normalized) {
            tok_buf nb = {0};
            rc = tok_normalize(t, a->content, a->n_content, &nb);
            if (rc == 0 && nb.n)
                rc = tok_added_trie_add(&t->trie_norm, nb.p, nb.n, i);
            free(nb.p);
        } else
            rc = tok_added_trie_add(&t->trie_raw, a->content, a->n_content, i);
        if (rc < 0)
            goto oom;
    }
    return 0;
oom:
    snprintf(err, n_err, "out of memory");
    return -1;
}

/* bos_token of tokenizer_config.json in the directory of PATH, or -1 */
static int32_t config_bos(const tok *t, const char *path)
{
    char cfg[4096];
    const char *slash = strrchr(path, '/');
    int dir = slash ? (int)(slash - path) : 1;
    snprintf(cfg, sizeof cfg, "%.*s/tokenizer_config.json", dir, slash ? path : ".");
    size_t n;
    char *s = read_file(cfg, &n);
    if (!s)
        return -1;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bos_token");
    if (cJSON_IsObject(b))
        b = cJSON_GetObjectItemCaseSensitive(b, "content");
    int32_t id = cJSON_IsString(b) ? tok_token_id(t, b->valuestring) : -1;
    cJSON_Delete(j);
    return id;
}

tok *tok_load(const char *path, char *err, size_t n_err)
{
    size_t n;
    char *text = read_file(path, &n);
    if (!text) {
        snprintf(err, n_err, "cannot read %s", path);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    tok *t = calloc(1, sizeof *t);
    if (!j || !t) {
        snprintf(err, n_err, j ? "out of memory" : "%s is not valid JSON", path);
        goto fail;
    }
    if (load_model(t, cJSON_GetObjectItemCaseSensitive(j, "model"), err, n_err) < 0 ||
        tok_load_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), err, n_err) < 0 ||
        tok_load_pretokenizer(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), err, n_err) < 0 ||
        load_added(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), err, n_err) < 0 ||
        tok_load_post(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), err, n_err) < 0 ||
        tok_load_decoder(t, cJSON_GetObjectItemCaseSensitive(j, "decoder"), err, n_err) < 0)
        goto fail;
    for (int i = 0; i < t->post.n_pre + t->post.n_post; i++) {
        int32_t id = i < t->post.n_pre ? t->post.pre[i] : t->post.post[i - t->post.n_pre];
        if (id < 0 || id >= t->n_total) {
            snprintf(err, n_err, "post-processor: token id %d out of range", id);
            goto fail;
        }
    }
    t->mark_split = mark_split_safe(t);
    t->gen = tok_cache_new_gen();
    t->bos_id = config_bos(t, path);
    if (t->bos_id < 0 && t->post.n_pre == 1)
        t->bos_id = t->post.pre[0];
    cJSON_Delete(j);
    return t;
fail:
    cJSON_Delete(j);
    tok_free(t);
    return NULL;
}

void tok_free(tok *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_vocab; i++)
        free(t->piece[i]);
    free(t->piece);
    free(t->piece_len);
    tok_strmap_free(&t->vocab);
    tok_pairmap_free(&t->merges);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->added_of_id);
    free(t->trie_raw.node);
    free(t->trie_norm.node);
    tok_free_parts(t);
    free(t);
}

int tok_vocab_size(const tok *t)
{
    return t->n_total;
}

int tok_is_special(const tok *t, int32_t id)
{
    return id >= 0 && id < t->n_total && t->added_of_id[id] >= 0 &&
           t->added[t->added_of_id[id]].special;
}

int tok_bos_id(const tok *t)
{
    return t->bos_id;
}

int32_t tok_token_id(const tok *t, const char *piece)
{
    size_t n = strlen(piece);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].n_content == n && !memcmp(t->added[i].content, piece, n))
            return t->added[i].id;
    return tok_strmap_get(&t->vocab, piece, n);
}
