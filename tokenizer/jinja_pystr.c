/* jinja_pystr.c - Python's str methods that chat templates call (strip, split, splitlines,
 * upper / lower / title / capitalize, replace, find, the is* predicates) over UTF-8 strings,
 * code point by code point as Python counts them. Unicode categories and simple case
 * mappings come from utf8proc; of Python's full case mappings only the German sharp s
 * (upper: SS) is applied.
 */
#include <string.h>
#include <utf8proc.h>

#include "jinja_impl.h"
#include "../common/tok/tok_impl.h"

/* str.isspace: bidirectional class WS, B or S, or category Zs */
int py_isspace(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20);
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

int py_isprintable(uint32_t cp)
{
    if (cp == ' ')
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return 0;
    default:
        return 1;
    }
}

size_t py_ncp(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t py_cp_off(const char *s, size_t n, int64_t i)
{
    size_t o = 0;
    while (i > 0 && o < n) {
        o += (size_t)tok_utf8_len((unsigned char)s[o]);
        i--;
    }
    return o < n ? o : n;
}

static uint32_t next_cp(const char *s, size_t *i)
{
    int l;
    uint32_t cp = tok_utf8_decode(s + *i, &l);
    *i += (size_t)l;
    return cp;
}

static size_t prev_start(const char *s, size_t j)
{
    size_t k = j - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

/* CP is in the code points of SET (NULL: white space) */
static int in_set(const jstr *set, uint32_t cp)
{
    if (!set)
        return py_isspace(cp);
    for (size_t i = 0; i < set->n;)
        if (next_cp(set->p, &i) == cp)
            return 1;
    return 0;
}

jv py_strip(jctx *c, jv s, jv chars, int left, int right)
{
    const jstr *set = chars.t == JV_STR ? chars.s : NULL;
    if (chars.t != JV_STR && chars.t != JV_NONE && chars.t != JV_UNDEF)
        JERR(c, "strip arg must be None or str");
    size_t a = 0, b = s.s->n;
    while (left && a < b) {
        size_t k = a;
        if (!in_set(set, next_cp(s.s->p, &k)))
            break;
        a = k;
    }
    while (right && b > a) {
        size_t k = prev_start(s.s->p, b), t = k;
        if (!in_set(set, next_cp(s.s->p, &t)))
            break;
        b = k;
    }
    return jv_str(c, s.s->p + a, b - a);
}

/* str.split(SEP) of P [N] into OUT: at most MAXSPLIT splits (negative: no limit) from the left. */
static void split_sep(jctx *c, const char *p, size_t n, const char *sep, size_t m, int64_t maxsplit, jv out)
{
    size_t a = 0;
    for (size_t i = 0; i + m <= n;) {
        if (maxsplit >= 0 && (int64_t)out.l->n >= maxsplit)
            break;
        if (!memcmp(p + i, sep, m)) {
            jl_push(c, out.l, jv_str(c, p + a, i - a));
            i += m;
            a = i;
        } else
            i++;
    }
    jl_push(c, out.l, jv_str(c, p + a, n - a));
}

/* str.rsplit(SEP): as split_sep, the splits from the right. */
static void rsplit_sep(jctx *c, const char *p, size_t n, const char *sep, size_t m, int64_t maxsplit, jv out)
{
    jv rev = jv_list(c, 0);
    size_t b = n;
    for (size_t i = n; i >= m;) {
        if (maxsplit >= 0 && (int64_t)rev.l->n >= maxsplit)
            break;
        if (!memcmp(p + i - m, sep, m)) {
            jl_push(c, rev.l, jv_str(c, p + i, b - i));
            i -= m;
            b = i;
        } else
            i--;
    }
    jl_push(c, out.l, jv_str(c, p, b));
    for (size_t k = rev.l->n; k-- > 0;)
        jl_push(c, out.l, rev.l->v[k]);
}

/* str.split() of P [N] into OUT: runs of white space, none empty; at most MAXSPLIT splits from
 * the left, the rest right-stripped. */
static void split_space(jctx *c, const char *p, size_t n, int64_t maxsplit, jv out)
{
    size_t i = 0;
    while (i < n) {
        size_t k = i;
        while (i < n && py_isspace(next_cp(p, &k)))
            i = k;
        if (i >= n)
            break;
        if (maxsplit >= 0 && (int64_t)out.l->n >= maxsplit) {
            size_t e = n;
            while (e > i) { /* the rest, right-stripped */
                size_t q = prev_start(p, e), t = q;
                if (!py_isspace(next_cp(p, &t)))
                    break;
                e = q;
            }
            jl_push(c, out.l, jv_str(c, p + i, e - i));
            break;
        }
        size_t a = i;
        k = i;
        while (i < n && !py_isspace(next_cp(p, &k)))
            i = k;
        jl_push(c, out.l, jv_str(c, p + a, i - a));
    }
}

/* str.rsplit(): as split_space, the splits from the right, the rest left-stripped. */
static void rsplit_space(jctx *c, const char *p, size_t n, int64_t maxsplit, jv out)
{
    jv rev = jv_list(c, 0);
    size_t j = n;
    while (j > 0) {
        while (j > 0) {
            size_t q = prev_start(p, j), t = q;
            if (!py_isspace(next_cp(p, &t)))
                break;
            j = q;
        }
        if (j == 0)
            break;
        if (maxsplit >= 0 && (int64_t)rev.l->n >= maxsplit) {
            size_t a = 0;
            while (a < j) {
                size_t t = a;
                if (!py_isspace(next_cp(p, &t)))
                    break;
                a = t;
            }
            jl_push(c, rev.l, jv_str(c, p + a, j - a));
            break;
        }
        size_t b = j;
        while (j > 0) {
            size_t q = prev_start(p, j), t = q;
            if (py_isspace(next_cp(p, &t)))
                break;
            j = q;
        }
        jl_push(c, rev.l, jv_str(c, p + j, b - j));
    }
    for (size_t k = rev.l->n; k-- > 0;)
        jl_push(c, out.l, rev.l->v[k]);
}

jv py_split(jctx *c, jv s, jv sep, int64_t maxsplit, int from_right)
{
    jv out = jv_list(c, 0);
    if (sep.t == JV_STR && sep.s->n == 0)
        JERR(c, "empty separator");
    if (sep.t == JV_STR)
        (from_right ? rsplit_sep : split_sep)(c, s.s->p, s.s->n, sep.s->p, sep.s->n, maxsplit, out);
    else
        (from_right ? rsplit_space : split_space)(c, s.s->p, s.s->n, maxsplit, out);
    return out;
}

static int line_break(uint32_t cp)
{
    return cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || (cp >= 0x1c && cp <= 0x1e) ||
           cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

jv py_splitlines(jctx *c, jv s)
{
    jv out = jv_list(c, 0);
    const char *p = s.s->p;
    size_t n = s.s->n, a = 0;
    for (size_t i = 0; i < n;) {
        size_t k = i;
        uint32_t cp = next_cp(p, &k);
        if (line_break(cp)) {
            jl_push(c, out.l, jv_str(c, p + a, i - a));
            if (cp == '\r' && k < n && p[k] == '\n')
                k++;
            a = k;
        }
        i = k;
    }
    if (a < n)
        jl_push(c, out.l, jv_str(c, p + a, n - a));
    return out;
}

static int cased(uint32_t cp)
{
    int k = utf8proc_category((utf8proc_int32_t)cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static void put_cp(jctx *c, jbuf *b, uint32_t cp)
{
    char u[4];
    jb_add(c, b, u, (size_t)tok_utf8_encode(cp, u));
}

static void put_upper(jctx *c, jbuf *b, uint32_t cp, int title)
{
    if (cp == 0xdf)
        jb_adds(c, b, title ? "Ss" : "SS");
    else
        put_cp(c, b, (uint32_t)(title ? utf8proc_totitle((utf8proc_int32_t)cp)
                                      : utf8proc_toupper((utf8proc_int32_t)cp)));
}

jv py_case(jctx *c, jv s, int mode)
{
    jbuf b = {0};
    int prev_cased = 0, first = 1;
    for (size_t i = 0; i < s.s->n;) {
        uint32_t cp = next_cp(s.s->p, &i);
        int up = mode == PY_UPPER || (mode == PY_TITLE && !prev_cased) || (mode == PY_CAPITALIZE && first);
        if (up)
            put_upper(c, &b, cp, mode != PY_UPPER);
        else
            put_cp(c, &b, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        prev_cased = cased(cp);
        first = 0;
    }
    return jb_take(c, &b);
}

jv py_replace(jctx *c, jv s, jv old, jv new_, int64_t count)
{
    jbuf b = {0};
    const char *p = s.s->p;
    size_t n = s.s->n, m = old.s->n;
    int64_t done = 0;
    if (m == 0) { /* between every code point, and at both ends */
        for (size_t i = 0;; ) {
            if (count < 0 || done < count) {
                jb_add(c, &b, new_.s->p, new_.s->n);
                done++;
            }
            if (i >= n)
                break;
            size_t k = i;
            next_cp(p, &k);
            jb_add(c, &b, p + i, k - i);
            i = k;
        }
        return jb_take(c, &b);
    }
    size_t a = 0;
    for (size_t i = 0; i + m <= n;) {
        if ((count < 0 || done < count) && !memcmp(p + i, old.s->p, m)) {
            jb_add(c, &b, p + a, i - a);
            jb_add(c, &b, new_.s->p, new_.s->n);
            i += m;
            a = i;
            done++;
        } else
            i++;
    }
    jb_add(c, &b, p + a, n - a);
    return jb_take(c, &b);
}

int64_t py_find(jv s, jv sub, int from_right)
{
    size_t n = s.s->n, m = sub.s->n;
    if (m > n)
        return -1;
    for (size_t k = 0; k <= n - m; k++) {
        size_t i = from_right ? n - m - k : k;
        if (!memcmp(s.s->p + i, sub.s->p, m) && (i == 0 || ((unsigned char)s.s->p[i] & 0xC0) != 0x80))
            return (int64_t)py_ncp(s.s->p, i);
    }
    return -1;
}

/* str.isdigit / isalpha / isalnum / isspace / isupper / islower / isnumeric / isdecimal /
 * istitle (title approximated); *KNOWN = 0 for any other NAME */
int py_pred(jv s, const char *name, int *known)
{
    static const char *const names[] = {"isdigit", "isalpha", "isalnum", "isspace", "isupper",
                                        "islower", "isnumeric", "isdecimal", "istitle"};
    int k = -1;
    for (int i = 0; i < 9; i++)
        if (!strcmp(name, names[i]))
            k = i;
    *known = k >= 0;
    if (k < 0 || s.s->n == 0)
        return 0;
    int n_upper = 0, n_lower = 0, title_ok = 1, prev_cased = 0;
    for (size_t i = 0; i < s.s->n;) {
        uint32_t cp = next_cp(s.s->p, &i);
        int cat = utf8proc_category((utf8proc_int32_t)cp);
        int alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        int digit = cat == UTF8PROC_CATEGORY_ND;
        int numeric = digit || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
        n_upper += cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT;
        n_lower += cat == UTF8PROC_CATEGORY_LL;
        if (cased(cp)) {
            if ((cat == UTF8PROC_CATEGORY_LL) != prev_cased)
                title_ok = 0;
            prev_cased = 1;
        } else
            prev_cased = 0;
        if ((k == 0 || k == 7) && !digit) return 0;
        if (k == 1 && !alpha) return 0;
        if (k == 2 && !alpha && !numeric) return 0;
        if (k == 3 && !py_isspace(cp)) return 0;
        if (k == 6 && !numeric) return 0;
    }
    if (k == 4)
        return n_upper > 0 && n_lower == 0;
    if (k == 5)
        return n_lower > 0 && n_upper == 0;
    if (k == 8)
        return title_ok && n_upper > 0;
    return 1;
}
