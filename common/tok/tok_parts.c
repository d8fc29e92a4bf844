/* tok_parts.c - reads the pipeline components of a tokenizer.json (normalizer,
 * pre_tokenizer, decoder, post_processor) into the flat arrays of struct tok. Sequences are
 * flattened; any type the library does not implement is a load error that names it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tok_impl.h"

#define GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static const char *type_of(const cJSON *j)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

static int get_bool(const cJSON *j, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *get_str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {"String": s} pattern: the literal; a Regex pattern is rejected (NULL, message in ERR). */
static const char *literal_pattern(const cJSON *j, const char *what, char *err, size_t n_err)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const char *s = get_str(pat, "String");
    if (!s)
        snprintf(err, n_err, "%s: only String patterns are implemented", what);
    return s;
}

static void *grow(void *arr, int n, size_t size)
{
    return realloc(arr, (size_t)(n + 1) * size);
}

/* ---- normalizer */
int tok_load_normalizer(tok *t, const cJSON *j, char *err, size_t n_err)
{
    if (!j || cJSON_IsNull(j))
        return 0;
    const char *ty = type_of(j);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "normalizers"))
            if (tok_load_normalizer(t, e, err, n_err) < 0)
                return -1;
        return 0;
    }
    tok_norm nm = {0};
    const char *a = NULL, *b = NULL;
    if (!strcmp(ty, "Prepend")) {
        nm.type = TOK_NORM_PREPEND;
        a = get_str(j, "prepend");
        b = "";
    } else if (!strcmp(ty, "Replace")) {
        nm.type = TOK_NORM_REPLACE;
        a = literal_pattern(j, "Replace normalizer", err, n_err);
        if (!a)
            return -1;
        b = get_str(j, "content");
    } else if (!strcmp(ty, "NFC")) {
        nm.type = TOK_NORM_NFC;
        a = b = "";
    } else {
        snprintf(err, n_err, "normalizer type \"%s\" is not implemented", ty);
        return -1;
    }
    if (!a || !b) {
        snprintf(err, n_err, "normalizer %s: missing fields", ty);
        return -1;
    }
    nm.a = strdup(a);
    nm.b = strdup(b);
    nm.na = strlen(a);
    nm.nb = strlen(b);
    tok_norm *p = grow(t->norm, t->n_norm, sizeof *p);
    if (!nm.a || !nm.b || !p) {
        free(nm.a);
        free(nm.b);
        if (p)
            t->norm = p;
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    t->norm = p;
    t->norm[t->n_norm++] = nm;
    return 0;
}

/* ---- pre-tokenizer */
static int add_pre(tok *t, tok_pre pr, char *err, size_t n_err)
{
    tok_pre *p = grow(t->pre, t->n_pre, sizeof *p);
    if (!p) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    t->pre = p;
    t->pre[t->n_pre++] = pr;
    return 0;
}

static int split_behavior(const char *s)
{
    static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (s && !strcmp(s, names[i]))
            return i;
    return -1;
}

/* prepend_scheme (or the older add_prefix_space) of a Metaspace component */
static int prepend_scheme(const cJSON *j)
{
    const char *s = get_str(j, "prepend_scheme");
    if (s)
        return !strcmp(s, "never") ? 0 : !strcmp(s, "first") ? 2 : 1;
    return get_bool(j, "add_prefix_space", 1);
}

static int metaspace_repl(const cJSON *j, char *out, char *err, size_t n_err)
{
    const char *r = get_str(j, "replacement");
    if (!r)
        r = get_str(j, "str_rep");
    if (!r || !*r || strlen(r) > 4 || (size_t)tok_utf8_len((unsigned char)*r) != strlen(r)) {
        snprintf(err, n_err, "Metaspace: the replacement must be one character");
        return -1;
    }
    strcpy(out, r);
    return 0;
}

int tok_load_pretokenizer(tok *t, const cJSON *j, char *err, size_t n_err)
{
    if (!j || cJSON_IsNull(j))
        return 0;
    const char *ty = type_of(j);
    tok_pre pr = {0};
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "pretokenizers"))
            if (tok_load_pretokenizer(t, e, err, n_err) < 0)
                return -1;
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const char *re = get_str(pat, "Regex"), *lit = get_str(pat, "String");
        pr.type = TOK_PRE_SPLIT;
        pr.behavior = split_behavior(get_str(j, "behavior"));
        pr.invert = get_bool(j, "invert", 0);
        if (pr.behavior < 0 || (!re && !lit)) {
            snprintf(err, n_err, "Split pre-tokenizer: bad pattern or behavior");
            return -1;
        }
        pr.re = tok_re_compile(re ? re : lit, strlen(re ? re : lit), !re, err, n_err);
        if (!pr.re)
            return -1;
        if (add_pre(t, pr, err, n_err) < 0) {
            tok_re_free(pr.re);
            return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) {
        if (get_bool(j, "add_prefix_space", 1) &&
            add_pre(t, (tok_pre){.type = TOK_PRE_PREFIX_SPACE}, err, n_err) < 0)
            return -1;
        if (get_bool(j, "use_regex", 1)) {
            if (!t->gpt2_re && !(t->gpt2_re = tok_re_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), 0,
                                                         err, n_err)))
                return -1;
            /* regex owned by t->gpt2_re, not by the stage */
            if (add_pre(t, (tok_pre){.type = TOK_PRE_SPLIT, .re = t->gpt2_re}, err, n_err) < 0)
                return -1;
        }
        return add_pre(t, (tok_pre){.type = TOK_PRE_BYTEMAP}, err, n_err);
    }
    if (!strcmp(ty, "Metaspace")) {
        pr.type = TOK_PRE_METASPACE;
        pr.prepend = prepend_scheme(j);
        if (metaspace_repl(j, pr.repl, err, n_err) < 0 || add_pre(t, pr, err, n_err) < 0)
            return -1;
        if (!get_bool(j, "split", 1))
            return 0;
        if (!t->meta_re && !(t->meta_re = tok_re_compile(pr.repl, strlen(pr.repl), 1, err, n_err)))
            return -1;
        return add_pre(t, (tok_pre){.type = TOK_PRE_SPLIT, .re = t->meta_re,
                                    .behavior = TOK_SPLIT_MERGED_NEXT}, err, n_err);
    }
    snprintf(err, n_err, "pre-tokenizer type \"%s\" is not implemented", ty);
    return -1;
}

/* ---- decoder */
int tok_load_decoder(tok *t, const cJSON *j, char *err, size_t n_err)
{
    if (!j || cJSON_IsNull(j))
        return 0;
    t->has_decoder = 1;
    const char *ty = type_of(j);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "decoders"))
            if (tok_load_decoder(t, e, err, n_err) < 0)
                return -1;
        return 0;
    }
    tok_dec d = {0};
    int l;
    if (!strcmp(ty, "Replace")) {
        const char *a = literal_pattern(j, "Replace decoder", err, n_err), *b = get_str(j, "content");
        if (!a)
            return -1;
        if (!b) {
            snprintf(err, n_err, "Replace decoder: no content");
            return -1;
        }
        d.type = TOK_DEC_REPLACE;
        d.a = strdup(a);
        d.b = strdup(b);
        d.na = strlen(a);
        d.nb = strlen(b);
        if (!d.a || !d.b) {
            free(d.a);
            free(d.b);
            snprintf(err, n_err, "out of memory");
            return -1;
        }
    } else if (!strcmp(ty, "ByteFallback")) {
        d.type = TOK_DEC_BYTEFALLBACK;
    } else if (!strcmp(ty, "Fuse")) {
        d.type = TOK_DEC_FUSE;
    } else if (!strcmp(ty, "Strip")) {
        const char *c = get_str(j, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "start");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "stop");
        if (!c || !*c || !cJSON_IsNumber(a) || !cJSON_IsNumber(b)) {
            snprintf(err, n_err, "Strip decoder: bad fields");
            return -1;
        }
        d.type = TOK_DEC_STRIP;
        d.ch = tok_utf8_decode(c, &l);
        d.start = a->valueint;
        d.stop = b->valueint;
    } else if (!strcmp(ty, "ByteLevel")) {
        d.type = TOK_DEC_BYTELEVEL;
    } else if (!strcmp(ty, "Metaspace")) {
        char r[8];
        if (metaspace_repl(j, r, err, n_err) < 0)
            return -1;
        d.type = TOK_DEC_METASPACE;
        d.repl = tok_utf8_decode(r, &l);
        d.prepend = prepend_scheme(j);
    } else {
        snprintf(err, n_err, "decoder type \"%s\" is not implemented", ty);
        return -1;
    }
    tok_dec *p = grow(t->dec, t->n_dec, sizeof *p);
    if (!p) {
        free(d.a);
        free(d.b);
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    t->dec = p;
    t->dec[t->n_dec++] = d;
    return 0;
}

/* ---- post-processor */
static int add_ids(int32_t **arr, int *n, const int32_t *ids, int k)
{
    int32_t *p = realloc(*arr, (size_t)(*n + k + 1) * sizeof *p);
    if (!p)
        return -1;
    memcpy(p + *n, ids, (size_t)k * sizeof *ids);
    *arr = p;
    *n += k;
    return 0;
}

/* ["token", id] of BertProcessing / RobertaProcessing */
static int pair_id(const cJSON *j, const char *key, int32_t *id)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    const cJSON *n = cJSON_GetArrayItem(v, 1);
    if (!cJSON_IsNumber(n))
        return -1;
    *id = (int32_t)n->valueint;
    return 0;
}

static int load_template(tok *t, const cJSON *j, char *err, size_t n_err)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    const cJSON *e;
    int seen_seq = 0;
    cJSON_ArrayForEach(e, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        const char *name = get_str(sp, "id");
        const cJSON *st = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids"), *id;
        if (!cJSON_IsArray(ids)) {
            snprintf(err, n_err, "TemplateProcessing: special token \"%s\" is not defined",
                     name ? name : "?");
            return -1;
        }
        cJSON_ArrayForEach(id, ids) {
            int32_t v = (int32_t)id->valueint;
            if (seen_seq ? add_ids(&t->post.post, &t->post.n_post, &v, 1)
                         : add_ids(&t->post.pre, &t->post.n_pre, &v, 1)) {
                snprintf(err, n_err, "out of memory");
                return -1;
            }
        }
    }
    return 0;
}

int tok_load_post(tok *t, const cJSON *j, char *err, size_t n_err)
{
    if (!j || cJSON_IsNull(j))
        return 0;
    const char *ty = type_of(j);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "processors"))
            if (tok_load_post(t, e, err, n_err) < 0)
                return -1;
        return 0;
    }
    if (!strcmp(ty, "ByteLevel"))
        return 0; /* changes offsets only */
    if (!strcmp(ty, "TemplateProcessing"))
        return load_template(t, j, err, n_err);
    if (!strcmp(ty, "BertProcessing") || !strcmp(ty, "RobertaProcessing")) {
        int32_t cls, sep;
        if (pair_id(j, "cls", &cls) < 0 || pair_id(j, "sep", &sep) < 0) {
            snprintf(err, n_err, "%s: bad cls/sep", ty);
            return -1;
        }
        if (add_ids(&t->post.pre, &t->post.n_pre, &cls, 1) < 0 ||
            add_ids(&t->post.post, &t->post.n_post, &sep, 1) < 0) {
            snprintf(err, n_err, "out of memory");
            return -1;
        }
        return 0;
    }
    snprintf(err, n_err, "post-processor type \"%s\" is not implemented", ty);
    return -1;
}

void tok_free_parts(tok *t)
{
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++)
        if (t->pre[i].type == TOK_PRE_SPLIT && t->pre[i].re != t->gpt2_re &&
            t->pre[i].re != t->meta_re)
            tok_re_free(t->pre[i].re);
    free(t->pre);
    tok_re_free(t->gpt2_re);
    tok_re_free(t->meta_re);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    free(t->post.pre);
    free(t->post.post);
}
