/* tok_regex.c - makes PCRE2 match pre-tokenizer regexes as HF tokenizers' Oniguruma does.
 *
 * The two engines agree on syntax for these patterns but not on Unicode data: PCRE2 10.42 has
 * Unicode 14 (the oracle knows later scripts, so its \p{L} and \p{N} are larger) and puts
 * U+180E in \s. Once per process we list the code points PCRE2 matches with \p{L}, \p{N}, \s
 * (one scan over a string of every code point), compare with the oracle's sets
 * (tok_uniclass.c), and every pattern gets \p{L} / \p{N} widened by what PCRE2 lacks and \s /
 * \S spelled out as the oracle's White_Space set. Properties other than L and N, and \P{L} or
 * \P{N} inside a bracket class, are left to PCRE2's tables.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

extern const uint32_t tok_hf_L[][2], tok_hf_N[][2], tok_hf_s[][2];
extern const int tok_n_hf_L, tok_n_hf_N, tok_n_hf_s;

#define N_CP 0x110000

enum { CL_L, CL_N, CL_S, N_CLASSES };

/* class text to splice in: inside a bracket class (IN) and, for \S, its complement (NOT) */
static tok_buf g_in[N_CLASSES], g_not_s;
static int g_patch[N_CLASSES]; /* 1: this class is patched */
static uint32_t g_risky = N_CP;  /* smallest code point the two engines disagree on */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void set_ranges(uint8_t *bits, const uint32_t (*r)[2], int n)
{
    for (int i = 0; i < n; i++)
        for (uint32_t c = r[i][0]; c <= r[i][1]; c++)
            bits[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static int has(const uint8_t *bits, uint32_t c)
{
    return bits[c >> 3] >> (c & 7) & 1;
}

/* PCRE2's own set for PATTERN ("\p{L}+" ...) over TEXT (every code point in order) */
static int pcre_set(const char *pattern, const char *text, size_t n, const uint32_t *cp_at,
                    uint8_t *bits)
{
    int e;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &e, &eo, NULL);
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    if (!md) {
        pcre2_code_free(re);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    size_t pos = 0;
    while (pcre2_match(re, (PCRE2_SPTR)text, n, pos, PCRE2_NO_UTF_CHECK, md, NULL) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        for (size_t i = ov[0]; i < ov[1]; i++)
            bits[cp_at[i] >> 3] |= (uint8_t)(1u << (cp_at[i] & 7));
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return 0;
}

/* appends the ranges where WANT(c) holds, as \x{lo}-\x{hi} items of a bracket class */
static int add_ranges(tok_buf *b, const uint8_t *x, const uint8_t *y, int mode)
{
    /* mode 0: x and not y; 1: x; 2: not x */
    char item[40];
    for (uint32_t c = 0; c < N_CP;) {
        int in = mode == 0 ? has(x, c) && !has(y, c) : mode == 1 ? has(x, c) : !has(x, c);
        if (!in || (c >= 0xD800 && c <= 0xDFFF)) {
            c++;
            continue;
        }
        uint32_t d = c;
        while (d + 1 < N_CP && !(d + 1 >= 0xD800 && d + 1 <= 0xDFFF) &&
               (mode == 0 ? has(x, d + 1) && !has(y, d + 1) : mode == 1 ? has(x, d + 1) : !has(x, d + 1)))
            d++;
        int k = c == d ? snprintf(item, sizeof item, "\\x{%x}", c)
                       : snprintf(item, sizeof item, "\\x{%x}-\\x{%x}", c, d);
        if (strbuf_add(b, item, (size_t)k) < 0)
            return -1;
        c = d + 1;
    }
    return 0;
}

static void uniclass_init(void)
{
    static const char *const pcre_pat[N_CLASSES] = {"\\p{L}+", "\\p{N}+", "\\s+"};
    static const char *const prop[N_CLASSES] = {"\\p{L}", "\\p{N}", ""};
    const uint32_t (*hf[N_CLASSES])[2] = {tok_hf_L, tok_hf_N, tok_hf_s};
    const int n_hf[N_CLASSES] = {tok_n_hf_L, tok_n_hf_N, tok_n_hf_s};
    char *text = malloc((size_t)N_CP * 4);
    uint32_t *cp_at = malloc((size_t)N_CP * 4 * sizeof *cp_at);
    uint8_t *mine = malloc(N_CP / 8), *theirs = malloc(N_CP / 8);
    size_t n = 0;
    if (!text || !cp_at || !mine || !theirs)
        goto out;
    for (uint32_t c = 1; c < N_CP; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        int k = tok_utf8_encode(c, text + n);
        for (int i = 0; i < k; i++)
            cp_at[n + (size_t)i] = c;
        n += (size_t)k;
    }
    for (int k = 0; k < N_CLASSES; k++) {
        memset(mine, 0, N_CP / 8);
        memset(theirs, 0, N_CP / 8);
        set_ranges(theirs, hf[k], n_hf[k]);
        if (pcre_set(pcre_pat[k], text, n, cp_at, mine) < 0)
            continue;
        int missing = 0, extra = 0;
        for (uint32_t c = 1; c < N_CP; c++) {
            int m = has(theirs, c) && !has(mine, c), e = has(mine, c) && !has(theirs, c);
            if ((m || e) && c < g_risky)
                g_risky = c;
            missing |= m;
            extra |= e;
        }
        tok_buf *b = &g_in[k];
        if (k == CL_S) { /* spelled out in full: fixes both directions */
            if ((missing || extra) && add_ranges(b, theirs, NULL, 1) == 0 &&
                add_ranges(&g_not_s, theirs, NULL, 2) == 0)
                g_patch[k] = 1;
        } else if (missing && !extra) { /* widened; a narrower \p{L} is left alone */
            if (strbuf_add(b, prop[k], strlen(prop[k])) == 0 && add_ranges(b, theirs, mine, 0) == 0)
                g_patch[k] = 1;
        }
    }
out:
    free(text);
    free(cp_at);
    free(mine);
    free(theirs);
}

/* the class an escape at P names (\p{L}, \pL, \p{Letter}, \s ...): CL_* or -1; *LEN its
 * length, *NEG for \P / \S */
static int escape_class(const char *p, size_t n, size_t *len, int *neg)
{
    if (n < 2 || p[0] != '\\')
        return -1;
    *neg = p[1] == 'S' || p[1] == 'P';
    if (p[1] == 's' || p[1] == 'S') {
        *len = 2;
        return CL_S;
    }
    if (p[1] != 'p' && p[1] != 'P')
        return -1;
    const char *name = p + 2;
    size_t nl;
    if (n > 2 && p[2] == '{') {
        const char *end = memchr(p + 3, '}', n - 3);
        if (!end)
            return -1;
        name = p + 3;
        nl = (size_t)(end - name);
        *len = nl + 4;
    } else {
        nl = 1;
        *len = 3;
        if (n < 3)
            return -1;
    }
    if ((nl == 1 && name[0] == 'L') || (nl == 6 && !memcmp(name, "Letter", 6)))
        return CL_L;
    if ((nl == 1 && name[0] == 'N') || (nl == 6 && !memcmp(name, "Number", 6)))
        return CL_N;
    return -1;
}

static char *regex_adapt(const char *pat, size_t n)
{
    pthread_once(&g_once, uniclass_init);
    tok_buf b = {0};
    int in_class = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        char c = pat[i];
        size_t len;
        int neg, k = c == '\\' ? escape_class(pat + i, n - i, &len, &neg) : -1;
        if (k >= 0 && g_patch[k]) {
            const tok_buf *in = &g_in[k];
            if (in_class && !neg)
                rc = strbuf_add(&b, in->p, in->n);
            else if (in_class && k == CL_S)
                rc = strbuf_add(&b, g_not_s.p, g_not_s.n);
            else if (in_class) /* \P{L} inside [...]: left to PCRE2 */
                rc = strbuf_add(&b, pat + i, len);
            else
                rc = strbuf_add(&b, neg ? "[^" : "[", neg ? 2 : 1) | strbuf_add(&b, in->p, in->n) |
                     strbuf_add(&b, "]", 1);
            i += len;
        } else if (c == '\\' && i + 1 < n && pat[i + 1] == 'Q') { /* \Q...\E: copied as is */
            const char *e = strstr(pat + i + 2, "\\E");
            size_t end = e && (size_t)(e - pat) < n ? (size_t)(e - pat) + 2 : n;
            rc = strbuf_add(&b, pat + i, end - i);
            i = end;
        } else if (c == '\\') {
            rc = strbuf_add(&b, pat + i, i + 1 < n ? 2 : 1);
            i += i + 1 < n ? 2 : 1;
        } else if (!in_class && c == '[') {
            size_t j = i + 1;
            if (j < n && pat[j] == '^')
                j++;
            if (j < n && pat[j] == ']') /* a leading ']' is a literal */
                j++;
            rc = strbuf_add(&b, pat + i, j - i);
            in_class = 1;
            i = j;
        } else if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') { /* [:alpha:] */
            const char *e = strstr(pat + i + 2, ":]");
            size_t end = e && (size_t)(e - pat) < n ? (size_t)(e - pat) + 2 : i + 1;
            rc = strbuf_add(&b, pat + i, end - i);
            i = end;
        } else {
            if (in_class && c == ']')
                in_class = 0;
            rc = strbuf_add(&b, &c, 1);
            i++;
        }
    }
    if (rc == 0)
        rc = strbuf_add(&b, "", 1);
    if (rc < 0) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

struct tok_re {
    pcre2_code *exact; /* the adapted pattern */
    pcre2_code *fast;  /* the pattern as written, when adapting changed it: the same matches
                          on text without code points from g_risky up */
};

static pcre2_code *compile(const char *pat, size_t n, uint32_t opt, char *err, size_t n_err,
                           const char *shown)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, opt, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, n_err, "regex \"%s\": %s", shown, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter runs it if JIT fails */
    return re;
}

tok_re *tok_re_compile(const char *pattern, size_t n, int literal, char *err, size_t n_err)
{
    tok_re *r = calloc(1, sizeof *r);
    char *adapted = literal || !r ? NULL : regex_adapt(pattern, n);
    if (!r || (!literal && !adapted)) {
        snprintf(err, n_err, "out of memory");
        goto fail;
    }
    if (literal) {
        if (!(r->exact = compile(pattern, n, PCRE2_UTF | PCRE2_LITERAL, err, n_err, pattern)))
            goto fail;
        return r;
    }
    if (!(r->exact = compile(adapted, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, err, n_err,
                             pattern)))
        goto fail;
    if ((strlen(adapted) != n || memcmp(adapted, pattern, n) != 0) &&
        !(r->fast = compile(pattern, n, PCRE2_UTF | PCRE2_UCP, err, n_err, pattern)))
        goto fail;
    free(adapted);
    return r;
fail:
    free(adapted);
    tok_re_free(r);
    return NULL;
}

void tok_re_free(tok_re *r)
{
    if (!r)
        return;
    pcre2_code_free(r->exact);
    pcre2_code_free(r->fast);
    free(r);
}

const void *tok_re_pick(const tok_re *r, const char *s, size_t n)
{
    if (!r->fast)
        return r->exact;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int l;
        if (tok_utf8_decode(s + i, &l) >= g_risky)
            return r->exact;
        i += (size_t)l;
    }
    return r->fast;
}
