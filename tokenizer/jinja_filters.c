/* jinja_filters.c - Jinja2's filters and tests as chat templates use them, with Jinja2's
 * argument names and defaults (filters.py, tests.py); tojson is transformers' override
 * (json.dumps with ensure_ascii=False, keys in order, indent / separators / sort_keys).
 * Results that Jinja2 leaves as generators (map, select, reverse ...) are lists here; every
 * template passes them on to list, join, first or a loop.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

typedef struct {
    jctx *c;
    jscope *s;
    const char *name;
    int n_pos, n_kw;
    const jv *pos, *kwv;
    const char **kw;
    int used_kw;
} fargs;

/* argument I (positional) or NAME (keyword), or DFLT */
static jv arg(fargs *a, int i, const char *name, jv dflt)
{
    if (i >= 0 && i < a->n_pos)
        return a->pos[i];
    for (int k = 0; k < a->n_kw; k++)
        if (name && !strcmp(a->kw[k], name)) {
            a->used_kw++;
            return a->kwv[k];
        }
    return dflt;
}

static int64_t int_arg(fargs *a, int i, const char *name, int64_t dflt)
{
    jv v = arg(a, i, name, jv_int(dflt));
    if (v.t != JV_INT && v.t != JV_BOOL)
        JERR(a->c, "%s: '%s' must be an integer, not %s", a->name, name, jv_type_name(v));
    return v.i;
}

static jv need_str(fargs *a, jv v) { return jv_stringify(a->c, v); }

/* Jinja2's make_attrgetter: "a.b.0" looks each part up as an item, then attribute */
static jv attr_path(jctx *c, jv item, jv attr)
{
    if (attr.t == JV_INT)
        return jgetitem(c, item, attr);
    if (attr.t != JV_STR)
        JERR(c, "attribute must be a string or an integer");
    const char *p = attr.s->p;
    while (1) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        jv key = jv_str(c, p, n);
        int digits = n > 0;
        for (size_t i = 0; i < n; i++)
            digits &= p[i] >= '0' && p[i] <= '9';
        if (digits)
            key = jv_int(strtoll(key.s->p, NULL, 10));
        item = jgetitem(c, item, key);
        if (!dot)
            return item;
        p = dot + 1;
    }
}

static jv lower_key(jctx *c, jv v, int case_sensitive)
{
    return !case_sensitive && v.t == JV_STR ? py_case(c, v, PY_LOWER) : v;
}

static void sort_list(jctx *c, jv *v, jv *keys, size_t n, int reverse)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: stable */
        for (size_t j = i; j > 0; j--) {
            int r = jv_cmp(c, keys[j - 1], keys[j]);
            if (reverse ? r >= 0 : r <= 0)
                break;
            jv t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t;
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t;
        }
}

static jv copy_list(jctx *c, const jlist *l)
{
    jv out = jv_list(c, l->n);
    for (size_t i = 0; i < l->n; i++)
        jl_push(c, out.l, l->v[i]);
    return out;
}

/* select / reject / selectattr / rejectattr */
static jv select_items(fargs *a, jv v, int by_attr, int keep)
{
    const jlist *l = jv_iter(a->c, v);
    jv out = jv_list(a->c, 0);
    int off = by_attr;
    if (by_attr && a->n_pos < 1)
        JERR(a->c, "%s: missing the attribute name", a->name);
    const char *test = a->n_pos > off ? (a->pos[off].t == JV_STR ? a->pos[off].s->p : NULL) : NULL;
    if (a->n_pos > off && !test)
        JERR(a->c, "%s: the test name must be a string", a->name);
    for (size_t i = 0; i < l->n; i++) {
        jcount_iter(a->c);
        jv x = by_attr ? attr_path(a->c, l->v[i], a->pos[0]) : l->v[i];
        int r = test ? jtest(a->c, a->s, test, x, a->n_pos - off - 1, a->pos + off + 1) : jv_truthy(x);
        if (r == keep)
            jl_push(a->c, out.l, l->v[i]);
    }
    return out;
}

static jv do_tojson(fargs *a, jv v)
{
    jjson_opts o = {.ensure_ascii = 0, .item_sep = ", ", .key_sep = ": "};
    o.ensure_ascii = jv_truthy(arg(a, 0, "ensure_ascii", jv_bool(0)));
    jv indent = arg(a, 1, "indent", jv_none());
    jv seps = arg(a, 2, "separators", jv_none());
    o.sort_keys = jv_truthy(arg(a, 3, "sort_keys", jv_bool(0)));
    if (indent.t == JV_INT || indent.t == JV_BOOL) {
        jbuf b = {0};
        for (int64_t i = 0; i < indent.i && i < 1024; i++)
            jb_add(a->c, &b, " ", 1);
        o.indent = jb_take(a->c, &b).s;
        o.has_indent = 1;
    } else if (indent.t == JV_STR) {
        o.indent = indent.s;
        o.has_indent = 1;
    } else if (indent.t != JV_NONE)
        JERR(a->c, "tojson: indent must be an integer or a string");
    if (o.has_indent)
        o.item_sep = ",";
    if (seps.t == JV_LIST && seps.l->n == 2 && seps.l->v[0].t == JV_STR && seps.l->v[1].t == JV_STR) {
        o.item_sep = seps.l->v[0].s->p;
        o.key_sep = seps.l->v[1].s->p;
    } else if (seps.t != JV_NONE)
        JERR(a->c, "tojson: separators must be two strings");
    jbuf b = {0};
    jjson_dump(a->c, &b, v, &o);
    return jb_take(a->c, &b);
}

static jv do_indent(fargs *a, jv v)
{
    jctx *c = a->c;
    jv width = arg(a, 0, "width", jv_int(4));
    int first = jv_truthy(arg(a, 1, "first", jv_bool(0)));
    int blank = jv_truthy(arg(a, 2, "blank", jv_bool(0)));
    jv ind;
    if (width.t == JV_STR)
        ind = width;
    else if (width.t == JV_INT || width.t == JV_BOOL) {
        jbuf b = {0};
        for (int64_t i = 0; i < width.i && i < 4096; i++)
            jb_add(c, &b, " ", 1);
        ind = jb_take(c, &b);
    } else
        JERR(c, "indent: width must be an integer or a string");
    if (v.t == JV_UNDEF)
        JERR(c, "'%s' is undefined", v.name ? v.name : "value");
    jbuf t = {0};
    jv_to_str(c, &t, v);
    jb_add(c, &t, "\n", 1); /* Jinja2's quirk for splitlines */
    const jlist *lines = py_splitlines(c, jb_take(c, &t)).l;
    jbuf b = {0};
    if (first)
        jb_add(c, &b, ind.s->p, ind.s->n);
    for (size_t i = 0; i < lines->n; i++) {
        const jstr *ln = lines->v[i].s;
        if (i)
            jb_add(c, &b, "\n", 1);
        if (i && (blank || ln->n))
            jb_add(c, &b, ind.s->p, ind.s->n);
        jb_add(c, &b, ln->p, ln->n);
    }
    return jb_take(c, &b);
}

static jv do_unique(fargs *a, jv v)
{
    int cs = jv_truthy(arg(a, 0, "case_sensitive", jv_bool(0)));
    jv attr = arg(a, 1, "attribute", jv_none());
    const jlist *l = jv_iter(a->c, v);
    jv out = jv_list(a->c, 0), seen = jv_list(a->c, 0);
    for (size_t i = 0; i < l->n; i++) {
        jcount_iter(a->c);
        jv k = lower_key(a->c, attr.t == JV_NONE ? l->v[i] : attr_path(a->c, l->v[i], attr), cs);
        int dup = 0;
        for (size_t j = 0; j < seen.l->n && !dup; j++)
            dup = jv_eq(a->c, seen.l->v[j], k);
        if (!dup) {
            jl_push(a->c, seen.l, k);
            jl_push(a->c, out.l, l->v[i]);
        }
    }
    return out;
}

static jv do_sort(fargs *a, jv v, int dict)
{
    jctx *c = a->c;
    int reverse = jv_truthy(arg(a, dict ? 2 : 0, "reverse", jv_bool(0)));
    int cs = jv_truthy(arg(a, dict ? 0 : 1, "case_sensitive", jv_bool(0)));
    jv attr = dict ? jv_none() : arg(a, 2, "attribute", jv_none());
    jv by = dict ? arg(a, 1, "by", jv_cstr(c, "key")) : jv_none();
    jv out;
    if (dict) {
        if (v.t != JV_DICT)
            JERR(c, "dictsort: a mapping is required, not %s", jv_type_name(v));
        out = jd_items(c, v.d);
    } else
        out = copy_list(c, jv_iter(c, v));
    size_t n = out.l->n;
    jv *keys = ja_alloc(c, (n + 1) * sizeof *keys);
    int by_value = by.t == JV_STR && !strcmp(by.s->p, "value");
    for (size_t i = 0; i < n; i++) {
        jv k = dict ? out.l->v[i].l->v[by_value] : attr.t == JV_NONE ? out.l->v[i] : attr_path(c, out.l->v[i], attr);
        keys[i] = lower_key(c, k, cs);
    }
    sort_list(c, out.l->v, keys, n, reverse);
    return out;
}

static jv min_max(fargs *a, jv v, int want_max)
{
    int cs = jv_truthy(arg(a, 0, "case_sensitive", jv_bool(0)));
    jv attr = arg(a, 1, "attribute", jv_none());
    const jlist *l = jv_iter(a->c, v);
    if (l->n == 0)
        return jv_undef(NULL);
    size_t best = 0;
    jv bk = lower_key(a->c, attr.t == JV_NONE ? l->v[0] : attr_path(a->c, l->v[0], attr), cs);
    for (size_t i = 1; i < l->n; i++) {
        jv k = lower_key(a->c, attr.t == JV_NONE ? l->v[i] : attr_path(a->c, l->v[i], attr), cs);
        int r = jv_cmp(a->c, k, bk);
        if (want_max ? r > 0 : r < 0) {
            best = i;
            bk = k;
        }
    }
    return l->v[best];
}

static jv to_int(fargs *a, jv v, int want_float)
{
    jv dflt = arg(a, 0, "default", want_float ? jv_float(0) : jv_int(0));
    if (v.t == JV_UNDEF)
        JERR(a->c, "'%s' is undefined", v.name ? v.name : "value");
    if (jv_is_num(v))
        return want_float ? jv_float(jv_num(v)) : v.t == JV_FLOAT ? jv_int((int64_t)v.f) : jv_int(v.i);
    if (v.t != JV_STR)
        return dflt;
    jv t = py_strip(a->c, v, jv_none(), 1, 1);
    char *end;
    if (!want_float) {
        long long i = strtoll(t.s->p, &end, (int)int_arg(a, 1, "base", 10));
        if (t.s->n && !*end)
            return jv_int(i);
    }
    double f = strtod(t.s->p, &end);
    if (t.s->n && !*end && !isnan(f) && !isinf(f))
        return want_float ? jv_float(f) : jv_int((int64_t)f);
    return dflt;
}

static jv html_escape(jctx *c, jv v)
{
    jv s = jv_stringify(c, v);
    jbuf b = {0};
    for (size_t i = 0; i < s.s->n; i++) {
        char ch = s.s->p[i];
        const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;"
                      : ch == '"' ? "&#34;" : ch == '\'' ? "&#39;" : NULL;
        if (e)
            jb_adds(c, &b, e);
        else
            jb_add(c, &b, &ch, 1);
    }
    return jb_take(c, &b);
}

static const char *const FILTERS[] = {
    "abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last",
    "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace",
    "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title",
    "tojson", "trim", "truncate", "unique", "upper", "wordcount", NULL};

int jfilter_known(const char *name)
{
    for (int i = 0; FILTERS[i]; i++)
        if (!strcmp(FILTERS[i], name))
            return 1;
    return 0;
}

/* Filter F applied to V, with its positional arguments POS [N_POS] and keyword arguments
 * KW = KWV [N_KW]. One function over 80 lines: a dispatcher over the filter names, one case
 * a name, most of them a few lines (the longer ones call the helpers above). */
jv jfilter(jctx *c, jscope *s, const char *f, jv v, int n_pos, const jv *pos, int n_kw,
           const char **kw, const jv *kwv)
{
    fargs a = {c, s, f, n_pos, n_kw, pos, kwv, kw, 0};
    jcount_iter(c);
    if (!strcmp(f, "tojson"))
        return do_tojson(&a, v);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        jv dflt = arg(&a, 0, "default_value", jv_cstr(c, ""));
        int boolean = jv_truthy(arg(&a, 1, "boolean", jv_bool(0)));
        return v.t == JV_UNDEF || (boolean && !jv_truthy(v)) ? dflt : v;
    }
    if (!strcmp(f, "length") || !strcmp(f, "count"))
        return jv_int(jv_len(c, v));
    if (!strcmp(f, "string"))
        return jv_stringify(c, v);
    if (!strcmp(f, "safe"))
        return v;
    if (!strcmp(f, "e") || !strcmp(f, "escape") || !strcmp(f, "forceescape"))
        return html_escape(c, v);
    if (!strcmp(f, "trim"))
        return py_strip(c, need_str(&a, v), arg(&a, 0, "chars", jv_none()), 1, 1);
    if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "capitalize"))
        return py_case(c, need_str(&a, v), f[0] == 'u' ? PY_UPPER : f[0] == 'l' ? PY_LOWER : PY_CAPITALIZE);
    if (!strcmp(f, "title")) { /* words begin after - ( { [ < and white space */
        jv t = need_str(&a, v);
        jbuf b = {0};
        for (size_t i = 0; i < t.s->n;) {
            size_t j = i;
            while (j < t.s->n && !strchr("-({[< \t\n\r\f\v", t.s->p[j]))
                j++;
            if (j > i) {
                size_t k = py_cp_off(t.s->p + i, j - i, 1);
                jv head = py_case(c, jv_str(c, t.s->p + i, k), PY_UPPER);
                jv rest = py_case(c, jv_str(c, t.s->p + i + k, j - i - k), PY_LOWER);
                jb_add(c, &b, head.s->p, head.s->n);
                jb_add(c, &b, rest.s->p, rest.s->n);
            }
            i = j;
            while (j < t.s->n && strchr("-({[< \t\n\r\f\v", t.s->p[j]))
                j++;
            jb_add(c, &b, t.s->p + i, j - i);
            i = j;
        }
        return jb_take(c, &b);
    }
    if (!strcmp(f, "replace")) {
        jv old = need_str(&a, arg(&a, 0, "old", jv_cstr(c, ""))), nw = need_str(&a, arg(&a, 1, "new", jv_cstr(c, "")));
        jv count = arg(&a, 2, "count", jv_none());
        return py_replace(c, need_str(&a, v), old, nw, count.t == JV_NONE ? -1 : count.i);
    }
    if (!strcmp(f, "indent"))
        return do_indent(&a, v);
    if (!strcmp(f, "center")) {
        jv t = need_str(&a, v);
        int64_t w = int_arg(&a, 0, "width", 80), n = (int64_t)py_ncp(t.s->p, t.s->n);
        if (w <= n)
            return t;
        int64_t pad = w - n, left = pad / 2 + (pad & w & 1); /* Python's str.center */
        jbuf b = {0};
        for (int64_t i = 0; i < left; i++)
            jb_add(c, &b, " ", 1);
        jb_add(c, &b, t.s->p, t.s->n);
        for (int64_t i = 0; i < pad - left; i++)
            jb_add(c, &b, " ", 1);
        return jb_take(c, &b);
    }
    if (!strcmp(f, "wordcount"))
        return jv_int((int64_t)py_split(c, need_str(&a, v), jv_none(), -1, 0).l->n);
    if (!strcmp(f, "truncate")) {
        jv t = need_str(&a, v);
        int64_t len = int_arg(&a, 0, "length", 255), leeway = int_arg(&a, 3, "leeway", 5);
        int killwords = jv_truthy(arg(&a, 1, "killwords", jv_bool(0)));
        jv end = need_str(&a, arg(&a, 2, "end", jv_cstr(c, "...")));
        int64_t n = (int64_t)py_ncp(t.s->p, t.s->n), ne = (int64_t)py_ncp(end.s->p, end.s->n);
        if (n <= len + leeway)
            return t;
        size_t cut = py_cp_off(t.s->p, t.s->n, len - ne > 0 ? len - ne : 0);
        jbuf b = {0};
        if (killwords)
            jb_add(c, &b, t.s->p, cut);
        else {
            size_t k = cut;
            while (k > 0 && t.s->p[k - 1] != ' ')
                k--;
            jb_add(c, &b, t.s->p, k ? k - 1 : 0);
        }
        jb_add(c, &b, end.s->p, end.s->n);
        return jb_take(c, &b);
    }
    if (!strcmp(f, "format")) {
        jv args = jv_list(c, (size_t)n_pos);
        args.tuple = 1;
        for (int i = 0; i < n_pos; i++)
            jl_push(c, args.l, pos[i]);
        return jbinop(c, OP_MOD, need_str(&a, v), args);
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        const jlist *l = jv_iter(c, v);
        return l->n ? l->v[f[0] == 'f' ? 0 : l->n - 1] : jv_undef(NULL);
    }
    if (!strcmp(f, "list"))
        return copy_list(c, jv_iter(c, v));
    if (!strcmp(f, "reverse")) {
        if (v.t == JV_STR) {
            jbuf b = {0};
            for (size_t j = v.s->n; j > 0;) {
                size_t k = j - 1;
                while (k > 0 && ((unsigned char)v.s->p[k] & 0xC0) == 0x80)
                    k--;
                jb_add(c, &b, v.s->p + k, j - k);
                j = k;
            }
            return jb_take(c, &b);
        }
        const jlist *l = jv_iter(c, v);
        jv out = jv_list(c, l->n);
        for (size_t i = l->n; i-- > 0;)
            jl_push(c, out.l, l->v[i]);
        return out;
    }
    if (!strcmp(f, "join")) {
        jv sep = need_str(&a, arg(&a, 0, "d", jv_cstr(c, "")));
        jv attr = arg(&a, 1, "attribute", jv_none());
        const jlist *l = jv_iter(c, v);
        jbuf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                jb_add(c, &b, sep.s->p, sep.s->n);
            jv_to_str(c, &b, attr.t == JV_NONE ? l->v[i] : attr_path(c, l->v[i], attr));
        }
        return jb_take(c, &b);
    }
    if (!strcmp(f, "items")) {
        if (v.t == JV_UNDEF)
            return jv_list(c, 0);
        if (v.t != JV_DICT)
            JERR(c, "can only get item pairs from a mapping");
        return jd_items(c, v.d);
    }
    if (!strcmp(f, "map")) {
        const jlist *l = jv_iter(c, v);
        jv out = jv_list(c, l->n);
        jv attr = n_pos == 0 ? arg(&a, -1, "attribute", jv_none()) : jv_none();
        jv dflt = jv_none();
        int has_default = 0;
        for (int k = 0; k < n_kw; k++)
            if (!strcmp(kw[k], "default")) {
                dflt = kwv[k];
                has_default = 1;
            }
        if (attr.t == JV_NONE && (n_pos < 1 || pos[0].t != JV_STR))
            JERR(c, "map requires a filter name or attribute=");
        for (size_t i = 0; i < l->n; i++) {
            jv x;
            if (attr.t != JV_NONE) {
                x = attr_path(c, l->v[i], attr);
                if (x.t == JV_UNDEF && has_default)
                    x = dflt;
            } else
                x = jfilter(c, s, pos[0].s->p, l->v[i], n_pos - 1, pos + 1, n_kw, kw, kwv);
            jl_push(c, out.l, x);
        }
        return out;
    }
    if (!strcmp(f, "select") || !strcmp(f, "reject"))
        return select_items(&a, v, 0, f[0] == 's');
    if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr"))
        return select_items(&a, v, 1, f[0] == 's');
    if (!strcmp(f, "unique"))
        return do_unique(&a, v);
    if (!strcmp(f, "sort") || !strcmp(f, "dictsort"))
        return do_sort(&a, v, f[0] == 'd');
    if (!strcmp(f, "min") || !strcmp(f, "max"))
        return min_max(&a, v, f[1] == 'a');
    if (!strcmp(f, "sum")) {
        jv attr = arg(&a, 0, "attribute", jv_none()), acc = arg(&a, 1, "start", jv_int(0));
        const jlist *l = jv_iter(c, v);
        for (size_t i = 0; i < l->n; i++)
            acc = jbinop(c, OP_ADD, acc, attr.t == JV_NONE ? l->v[i] : attr_path(c, l->v[i], attr));
        return acc;
    }
    if (!strcmp(f, "int") || !strcmp(f, "float"))
        return to_int(&a, v, f[0] == 'f');
    if (!strcmp(f, "abs")) {
        if (!jv_is_num(v))
            JERR(c, "bad operand type for abs(): '%s'", jv_type_name(v));
        return v.t == JV_FLOAT ? jv_float(fabs(v.f)) : jv_int(v.i < 0 ? -v.i : v.i);
    }
    if (!strcmp(f, "round")) {
        if (!jv_is_num(v))
            JERR(c, "type %s doesn't define __round__ method", jv_type_name(v));
        int64_t prec = int_arg(&a, 0, "precision", 0);
        jv method = arg(&a, 1, "method", jv_cstr(c, "common"));
        double m = pow(10, (double)prec), x = jv_num(v) * m;
        const char *how = method.t == JV_STR ? method.s->p : "";
        if (!strcmp(how, "common") && prec >= 0 && prec < 300) { /* Python's round: exact, ties to even */
            char num[400];
            snprintf(num, sizeof num, "%.*f", (int)prec, jv_num(v));
            return jv_float(strtod(num, NULL));
        }
        double r = !strcmp(how, "common") ? round(x) : !strcmp(how, "ceil") ? ceil(x)
                 : !strcmp(how, "floor") ? floor(x) : NAN;
        if (isnan(r))
            JERR(c, "method must be common, ceil or floor");
        return jv_float(r / m);
    }
    if (!strcmp(f, "attr")) {
        jv name = arg(&a, 0, "name", jv_none());
        if (name.t != JV_STR)
            JERR(c, "attr: the name must be a string");
        return jgetattr(c, v, name.s->p);
    }
    JERR(c, "no filter named '%s'", f);
}

static const char *const TESTS[] = {
    "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number",
    "string", "mapping", "sequence", "iterable", "callable", "sameas", "eq", "equalto", "==",
    "ne", "!=", "lt", "<", "lessthan", "le", "<=", "gt", ">", "greaterthan", "ge", ">=", "in",
    "odd", "even", "divisibleby", "lower", "upper", "escaped", "filter", "test", NULL};

int jtest_known(const char *name)
{
    for (int i = 0; TESTS[i]; i++)
        if (!strcmp(TESTS[i], name))
            return 1;
    return 0;
}

int jtest(jctx *c, jscope *s, const char *t, jv v, int n_pos, const jv *pos)
{
    jv x = n_pos > 0 ? pos[0] : jv_undef(NULL);
    if (!strcmp(t, "defined")) return v.t != JV_UNDEF;
    if (!strcmp(t, "undefined")) return v.t == JV_UNDEF;
    if (!strcmp(t, "none")) return v.t == JV_NONE;
    if (!strcmp(t, "boolean")) return v.t == JV_BOOL;
    if (!strcmp(t, "true")) return v.t == JV_BOOL && v.i;
    if (!strcmp(t, "false")) return v.t == JV_BOOL && !v.i;
    if (!strcmp(t, "integer")) return v.t == JV_INT;
    if (!strcmp(t, "float")) return v.t == JV_FLOAT;
    if (!strcmp(t, "number")) return jv_is_num(v);
    if (!strcmp(t, "string")) return v.t == JV_STR;
    if (!strcmp(t, "mapping")) return v.t == JV_DICT;
    if (!strcmp(t, "sequence")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (!strcmp(t, "iterable")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (!strcmp(t, "callable")) return v.t == JV_MACRO || v.t == JV_FUNC || v.t == JV_METHOD || v.t == JV_UNDEF;
    if (!strcmp(t, "escaped")) return 0;
    if (!strcmp(t, "filter")) return v.t == JV_STR && jfilter_known(v.s->p);
    if (!strcmp(t, "test")) return v.t == JV_STR && jtest_known(v.s->p);
    if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        int known;
        return py_pred(jv_stringify(c, v), t[0] == 'l' ? "islower" : "isupper", &known);
    }
    if (!strcmp(t, "sameas")) /* identity: the same singleton, or the same container */
        return v.t == x.t && (v.t == JV_NONE || v.t == JV_UNDEF ||
                              (v.t == JV_BOOL ? v.i == x.i : v.t >= JV_LIST && v.d == x.d));
    if (!strcmp(t, "eq") || !strcmp(t, "equalto") || !strcmp(t, "==")) return jv_eq(c, v, x);
    if (!strcmp(t, "ne") || !strcmp(t, "!=")) return !jv_eq(c, v, x);
    if (!strcmp(t, "lt") || !strcmp(t, "<") || !strcmp(t, "lessthan")) return jv_cmp(c, v, x) < 0;
    if (!strcmp(t, "le") || !strcmp(t, "<=")) return jv_cmp(c, v, x) <= 0;
    if (!strcmp(t, "gt") || !strcmp(t, ">") || !strcmp(t, "greaterthan")) return jv_cmp(c, v, x) > 0;
    if (!strcmp(t, "ge") || !strcmp(t, ">=")) return jv_cmp(c, v, x) >= 0;
    if (!strcmp(t, "in")) return jv_contains(c, x, v);
    if (!strcmp(t, "odd") || !strcmp(t, "even") || !strcmp(t, "divisibleby")) {
        if (v.t != JV_INT && v.t != JV_BOOL)
            JERR(c, "the %s test needs an integer, not %s", t, jv_type_name(v));
        int64_t m = t[0] == 'd' ? (x.t == JV_INT ? x.i : 0) : 2;
        if (m == 0)
            JERR(c, "integer division or modulo by zero");
        int64_t r = ((v.i % m) + m) % m;
        return t[0] == 'o' ? r == 1 : r == 0;
    }
    JERR(c, "no test named '%s'", t);
}
