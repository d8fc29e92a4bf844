/* jinja_methods.c - methods of values as templates call them (Python's str methods, dict's
 * items / keys / values / get / copy, list's index / count / copy) and the global functions:
 * Jinja2's range (at most 100000 items, as the sandbox allows), dict, namespace, and
 * transformers' raise_exception(message) and strftime_now(format). The sandbox's
 * immutability holds: methods that would change a list or dict exist but fail when called.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_impl.h"

static const char *const STR_METHODS[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
    "upper", "lower", "title", "capitalize", "casefold", "replace", "find", "rfind", "index",
    "rindex", "count", "join", "format", "zfill", "ljust", "rjust", "center", "partition",
    "rpartition", "removeprefix", "removesuffix", "isdigit", "isalpha", "isalnum", "isspace",
    "isupper", "islower", "isnumeric", "isdecimal", "istitle", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", "copy", "pop",
                                           "popitem", "update", "setdefault", "clear", NULL};
static const char *const LIST_METHODS[] = {"index", "count", "copy", "append", "extend",
                                           "insert", "pop", "remove", "reverse", "sort",
                                           "clear", NULL};

static int in_names(const char *const *names, const char *name)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], name))
            return 1;
    return 0;
}

int jmethod_exists(jv self, const char *name)
{
    if (self.t == JV_STR)
        return in_names(STR_METHODS, name);
    if (self.t == JV_DICT)
        return in_names(DICT_METHODS, name);
    if (self.t == JV_LIST)
        return in_names(LIST_METHODS, name) && (!self.tuple || !strcmp(name, "index") || !strcmp(name, "count"));
    return 0;
}

static jv str_arg(jctx *c, const char *m, int n_pos, const jv *pos, int i)
{
    if (i >= n_pos || pos[i].t != JV_STR)
        JERR(c, "%s() needs a string argument %d", m, i + 1);
    return pos[i];
}

static int has_prefix(jv s, jv p, int suffix)
{
    if (p.s->n > s.s->n)
        return 0;
    return !memcmp(s.s->p + (suffix ? s.s->n - p.s->n : 0), p.s->p, p.s->n);
}

/* str.format with {} / {0} / {name} fields (no format specs) */
static jv str_format(jctx *c, jv fmt, int n_pos, const jv *pos, int n_kw, const char **kw, const jv *kwv)
{
    jbuf b = {0};
    int auto_i = 0;
    const char *p = fmt.s->p, *end = p + fmt.s->n;
    while (p < end) {
        if ((*p == '{' || *p == '}') && p + 1 < end && p[1] == *p) {
            jb_add(c, &b, p, 1);
            p += 2;
            continue;
        }
        if (*p == '}')
            JERR(c, "Single '}' encountered in format string");
        if (*p != '{') {
            jb_add(c, &b, p++, 1);
            continue;
        }
        const char *q = memchr(p, '}', (size_t)(end - p));
        if (!q)
            JERR(c, "Single '{' encountered in format string");
        size_t n = (size_t)(q - p - 1);
        jv v = jv_undef(NULL);
        int found = 0;
        if (n == 0 || (p[1] >= '0' && p[1] <= '9')) {
            int i = n == 0 ? auto_i++ : atoi(p + 1);
            if (i < n_pos) {
                v = pos[i];
                found = 1;
            }
        } else
            for (int k = 0; k < n_kw; k++)
                if (strlen(kw[k]) == n && !memcmp(kw[k], p + 1, n)) {
                    v = kwv[k];
                    found = 1;
                }
        if (!found || memchr(p, ':', n + 1) || memchr(p, '!', n + 1))
            JERR(c, "str.format: field {%.*s} is not supported or has no value", (int)n, p + 1);
        jv_to_str(c, &b, v);
        p = q + 1;
    }
    return jb_take(c, &b);
}

static jv pad(jctx *c, jv s, int64_t width, jv fill, int where)
{
    int64_t n = (int64_t)py_ncp(s.s->p, s.s->n);
    if (fill.s->n == 0 || py_ncp(fill.s->p, fill.s->n) != 1)
        JERR(c, "The fill character must be exactly one character long");
    if (width <= n)
        return s;
    int64_t total = width - n, left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
    jbuf b = {0};
    for (int64_t i = 0; i < left; i++)
        jb_add(c, &b, fill.s->p, fill.s->n);
    jb_add(c, &b, s.s->p, s.s->n);
    for (int64_t i = left; i < total; i++)
        jb_add(c, &b, fill.s->p, fill.s->n);
    return jb_take(c, &b);
}

/* String method M of S (Python's str methods), with POS [N_POS] and KW = KWV [N_KW]. One
 * function over 80 lines: a dispatcher over the method names, a few lines each (the text work
 * is jinja_pystr.c's). */
static jv str_method(jctx *c, jv s, const char *m, int n_pos, const jv *pos, int n_kw, const char **kw,
                     const jv *kwv)
{
    jv a0 = n_pos > 0 ? pos[0] : jv_none();
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip"))
        return py_strip(c, s, a0, m[0] != 'r', m[0] != 'l');
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        jv sep = a0, maxsplit = n_pos > 1 ? pos[1] : jv_int(-1);
        for (int k = 0; k < n_kw; k++) {
            if (!strcmp(kw[k], "sep"))
                sep = kwv[k];
            else if (!strcmp(kw[k], "maxsplit"))
                maxsplit = kwv[k];
        }
        if (sep.t != JV_STR && sep.t != JV_NONE)
            JERR(c, "must be str or None, not %s", jv_type_name(sep));
        if (maxsplit.t != JV_INT)
            JERR(c, "maxsplit must be an integer");
        return py_split(c, s, sep, maxsplit.i, m[0] == 'r');
    }
    if (!strcmp(m, "splitlines"))
        return py_splitlines(c, s);
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        int64_t n = (int64_t)py_ncp(s.s->p, s.s->n);
        int64_t lo = n_pos > 1 && pos[1].t == JV_INT ? pos[1].i : 0;
        int64_t hi = n_pos > 2 && pos[2].t == JV_INT ? pos[2].i : n;
        lo = lo < 0 ? (lo + n < 0 ? 0 : lo + n) : lo > n ? n : lo;
        hi = hi < 0 ? (hi + n < 0 ? 0 : hi + n) : hi > n ? n : hi;
        size_t a = py_cp_off(s.s->p, s.s->n, lo), b = py_cp_off(s.s->p, s.s->n, hi);
        jv sub = jv_str(c, s.s->p + a, b > a ? b - a : 0);
        const jlist *cands;
        jlist one = {1, 1, &a0};
        if (a0.t == JV_LIST && a0.tuple)
            cands = a0.l;
        else if (a0.t == JV_STR)
            cands = &one;
        else
            JERR(c, "%s first arg must be str or a tuple of str, not %s", m, jv_type_name(a0));
        if (hi < lo)
            return jv_bool(0);
        for (size_t i = 0; i < cands->n; i++) {
            if (cands->v[i].t != JV_STR)
                JERR(c, "a tuple for %s must only contain str", m);
            if (has_prefix(sub, cands->v[i], m[0] == 'e'))
                return jv_bool(1);
        }
        return jv_bool(0);
    }
    if (!strcmp(m, "upper")) return py_case(c, s, PY_UPPER);
    if (!strcmp(m, "lower") || !strcmp(m, "casefold")) return py_case(c, s, PY_LOWER);
    if (!strcmp(m, "title")) return py_case(c, s, PY_TITLE);
    if (!strcmp(m, "capitalize")) return py_case(c, s, PY_CAPITALIZE);
    if (!strcmp(m, "replace")) {
        jv count = n_pos > 2 ? pos[2] : jv_int(-1);
        if (count.t != JV_INT)
            JERR(c, "replace: count must be an integer");
        return py_replace(c, s, str_arg(c, m, n_pos, pos, 0), str_arg(c, m, n_pos, pos, 1), count.i);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "rindex")) {
        int64_t i = py_find(s, str_arg(c, m, n_pos, pos, 0), m[0] == 'r');
        if (i < 0 && strstr(m, "index"))
            JERR(c, "substring not found");
        return jv_int(i);
    }
    if (!strcmp(m, "count")) {
        jv sub = str_arg(c, m, n_pos, pos, 0);
        if (sub.s->n == 0)
            return jv_int((int64_t)py_ncp(s.s->p, s.s->n) + 1);
        int64_t k = 0;
        for (const char *p = s.s->p; (p = memmem(p, (size_t)(s.s->p + s.s->n - p), sub.s->p, sub.s->n)); p += sub.s->n)
            k++;
        return jv_int(k);
    }
    if (!strcmp(m, "join")) {
        const jlist *l = jv_iter(c, a0);
        jbuf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != JV_STR)
                JERR(c, "sequence item %zu: expected str instance, %s found", i, jv_type_name(l->v[i]));
            if (i)
                jb_add(c, &b, s.s->p, s.s->n);
            jb_add(c, &b, l->v[i].s->p, l->v[i].s->n);
        }
        return jb_take(c, &b);
    }
    if (!strcmp(m, "format"))
        return str_format(c, s, n_pos, pos, n_kw, kw, kwv);
    if (!strcmp(m, "zfill") || !strcmp(m, "ljust") || !strcmp(m, "rjust") || !strcmp(m, "center")) {
        if (n_pos < 1 || pos[0].t != JV_INT)
            JERR(c, "%s() needs an integer width", m);
        if (m[0] == 'z') {
            int neg = s.s->n && (s.s->p[0] == '-' || s.s->p[0] == '+');
            jv body = jv_str(c, s.s->p + neg, s.s->n - (size_t)neg);
            jv padded = pad(c, body, pos[0].i - neg, jv_cstr(c, "0"), 1);
            return neg ? jbinop(c, OP_ADD, jv_str(c, s.s->p, 1), padded) : padded;
        }
        jv fill = n_pos > 1 ? str_arg(c, m, n_pos, pos, 1) : jv_cstr(c, " ");
        return pad(c, s, pos[0].i, fill, m[0] == 'l' ? -1 : m[0] == 'r' ? 1 : 0);
    }
    if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) {
        jv sep = str_arg(c, m, n_pos, pos, 0);
        if (sep.s->n == 0)
            JERR(c, "empty separator");
        jv out = jv_list(c, 3);
        out.tuple = 1;
        const char *hit = NULL;
        for (const char *p = s.s->p; (p = memmem(p, (size_t)(s.s->p + s.s->n - p), sep.s->p, sep.s->n)); p++) {
            hit = p;
            if (m[0] == 'p')
                break;
        }
        if (!hit) {
            jv e = jv_cstr(c, "");
            jl_push(c, out.l, m[0] == 'p' ? s : e);
            jl_push(c, out.l, e);
            jl_push(c, out.l, m[0] == 'p' ? e : s);
            return out;
        }
        jl_push(c, out.l, jv_str(c, s.s->p, (size_t)(hit - s.s->p)));
        jl_push(c, out.l, sep);
        jl_push(c, out.l, jv_str(c, hit + sep.s->n, (size_t)(s.s->p + s.s->n - hit - sep.s->n)));
        return out;
    }
    if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
        jv p = str_arg(c, m, n_pos, pos, 0);
        int suffix = m[6] == 's';
        if (!has_prefix(s, p, suffix))
            return s;
        return jv_str(c, s.s->p + (suffix ? 0 : p.s->n), s.s->n - p.s->n);
    }
    int known;
    int r = py_pred(s, m, &known);
    if (known)
        return jv_bool(r);
    JERR(c, "'str' object has no attribute '%s'", m);
}

jv jmethod(jctx *c, jv self, const char *m, int n_pos, const jv *pos, int n_kw, const char **kw,
           const jv *kwv)
{
    jcount_iter(c);
    if (self.t == JV_STR)
        return str_method(c, self, m, n_pos, pos, n_kw, kw, kwv);
    if (self.t == JV_DICT) {
        const jdict *d = self.d;
        if (!strcmp(m, "get")) {
            if (n_pos < 1)
                JERR(c, "get expected at least 1 argument");
            jv *v = jd_get(d, pos[0]);
            return v ? *v : n_pos > 1 ? pos[1] : jv_none();
        }
        if (!strcmp(m, "copy")) {
            jv out = jv_dict(c);
            for (size_t i = 0; i < d->n; i++)
                jd_set(c, out.d, d->k[i], d->v[i]);
            return out;
        }
        if (!strcmp(m, "items"))
            return jd_items(c, d);
        if (!strcmp(m, "keys") || !strcmp(m, "values")) {
            jv out = jv_list(c, d->n);
            for (size_t i = 0; i < d->n; i++)
                jl_push(c, out.l, m[0] == 'k' ? d->k[i] : d->v[i]);
            return out;
        }
    }
    if (self.t == JV_LIST) {
        const jlist *l = self.l;
        if (!strcmp(m, "copy")) {
            jv o = jv_list(c, l->n);
            for (size_t i = 0; i < l->n; i++)
                jl_push(c, o.l, l->v[i]);
            return o;
        }
        if ((!strcmp(m, "index") || !strcmp(m, "count")) && n_pos >= 1) {
            int64_t k = 0;
            for (size_t i = 0; i < l->n; i++)
                if (jv_eq(c, l->v[i], pos[0])) {
                    if (m[0] == 'i')
                        return jv_int((int64_t)i);
                    k++;
                }
            if (m[0] == 'i')
                JERR(c, "list.index(x): x not in list");
            return jv_int(k);
        }
    }
    JERR(c, "access to attribute '%s' of '%s' object is unsafe", m, jv_type_name(self));
}

/* ---- globals */
enum { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE, G_STRFTIME };
static const char *const GLOBALS[] = {"range", "dict", "namespace", "raise_exception", "strftime_now", NULL};

int jglobal_lookup(const char *name)
{
    for (int i = 0; GLOBALS[i]; i++)
        if (!strcmp(GLOBALS[i], name))
            return i;
    return -1;
}

jv jglobal_call(jctx *c, int id, int n_pos, const jv *pos, int n_kw, const char **kw, const jv *kwv)
{
    switch (id) {
    case G_RANGE: {
        int64_t a[3] = {0, 0, 1};
        if (n_pos < 1 || n_pos > 3)
            JERR(c, "range expected 1 to 3 arguments, got %d", n_pos);
        for (int i = 0; i < n_pos; i++) {
            if (pos[i].t != JV_INT && pos[i].t != JV_BOOL)
                JERR(c, "'%s' object cannot be interpreted as an integer", jv_type_name(pos[i]));
            a[n_pos == 1 ? 1 : i] = pos[i].i;
        }
        if (a[2] == 0)
            JERR(c, "range() arg 3 must not be zero");
        int64_t n = a[2] > 0 ? (a[1] > a[0] ? (a[1] - a[0] + a[2] - 1) / a[2] : 0)
                             : (a[0] > a[1] ? (a[0] - a[1] - a[2] - 1) / -a[2] : 0);
        if (n > 100000)
            JERR(c, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        jv out = jv_list(c, (size_t)n);
        for (int64_t i = 0; i < n; i++)
            jl_push(c, out.l, jv_int(a[0] + i * a[2]));
        return out;
    }
    case G_DICT: case G_NAMESPACE: {
        jv d = jv_dict(c);
        if (id == G_NAMESPACE)
            d.t = JV_NS;
        if (n_pos > 1)
            JERR(c, "%s expected at most 1 positional argument", GLOBALS[id]);
        if (n_pos == 1) {
            if (pos[0].t != JV_DICT)
                JERR(c, "%s: the positional argument must be a mapping", GLOBALS[id]);
            for (size_t i = 0; i < pos[0].d->n; i++)
                jd_set(c, d.d, pos[0].d->k[i], pos[0].d->v[i]);
        }
        for (int k = 0; k < n_kw; k++)
            jd_sets(c, d.d, kw[k], kwv[k]);
        return d;
    }
    case G_RAISE: {
        jbuf b = {0};
        if (n_pos > 0)
            jv_to_str(c, &b, pos[0]);
        jfail(c, JINJA_ERAISE, "%s", b.p ? b.p : "");
    }
    default: { /* G_STRFTIME */
        if (n_pos != 1 || pos[0].t != JV_STR)
            JERR(c, "strftime_now takes one format string");
        time_t now = c->lim.now ? (time_t)c->lim.now : time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char out[512];
        size_t n = pos[0].s->n < 128 ? strftime(out, sizeof out, pos[0].s->p, &tm) : 0;
        if (n == 0 && pos[0].s->n)
            JERR(c, "strftime_now: the format is empty or too long");
        return jv_str(c, out, n);
    }
    }
}
