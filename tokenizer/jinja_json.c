/* jinja_json.c - JSON for the Jinja interpreter: request data into values (integers stay
 * integers and decimals floats, as Python's json.loads gives them, object keys in order, the
 * last of duplicate keys winning), and values out as Python's json.dumps writes them, the
 * tojson filter transformers installs (ensure_ascii=False by default, indent, separators,
 * sort_keys).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"
#include "../common/tok/tok_impl.h"

typedef struct {
    jctx *c;
    const char *start, *p, *end;
} jparser;

_Noreturn static void bad(jparser *x, const char *what)
{
    jfail(x->c, JINJA_EINPUT, "invalid JSON: %s at byte %zu", what, (size_t)(x->p - x->start));
}

static void ws(jparser *x)
{
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r'))
        x->p++;
}

static int hex4(jparser *x, uint32_t *v)
{
    if (x->end - x->p < 4)
        return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = x->p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    x->p += 4;
    return 0;
}

static jv parse_string(jparser *x)
{
    jbuf b = {0};
    x->p++; /* the opening quote */
    for (;;) {
        if (x->p >= x->end)
            bad(x, "unterminated string");
        unsigned char ch = (unsigned char)*x->p;
        if (ch == '"') {
            x->p++;
            break;
        }
        if (ch < 0x20)
            bad(x, "control character in a string");
        if (ch != '\\') {
            const char *s = x->p;
            while (x->p < x->end && *x->p != '"' && *x->p != '\\' && (unsigned char)*x->p >= 0x20)
                x->p++;
            if (!tok_utf8_valid(s, (size_t)(x->p - s)))
                bad(x, "invalid UTF-8");
            jb_add(x->c, &b, s, (size_t)(x->p - s));
            continue;
        }
        if (++x->p >= x->end)
            bad(x, "unterminated string");
        char e = *x->p++, out;
        uint32_t cp, lo;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u':
            if (hex4(x, &cp))
                bad(x, "bad \\u escape");
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (x->end - x->p < 6 || x->p[0] != '\\' || x->p[1] != 'u')
                    bad(x, "lone surrogate");
                x->p += 2;
                if (hex4(x, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    bad(x, "lone surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000)
                bad(x, "lone surrogate");
            char u[4];
            jb_add(x->c, &b, u, (size_t)tok_utf8_encode(cp, u));
            continue;
        default:
            bad(x, "bad escape");
        }
        jb_add(x->c, &b, &out, 1);
    }
    return jb_take(x->c, &b);
}

static jv parse_number(jparser *x)
{
    const char *s = x->p;
    int is_float = 0;
    if (x->p < x->end && *x->p == '-')
        x->p++;
    if (x->p >= x->end || *x->p < '0' || *x->p > '9')
        bad(x, "bad number");
    if (*x->p == '0')
        x->p++;
    else
        while (x->p < x->end && *x->p >= '0' && *x->p <= '9')
            x->p++;
    if (x->p < x->end && *x->p == '.') {
        is_float = 1;
        x->p++;
        if (x->p >= x->end || *x->p < '0' || *x->p > '9')
            bad(x, "bad number");
        while (x->p < x->end && *x->p >= '0' && *x->p <= '9')
            x->p++;
    }
    if (x->p < x->end && (*x->p == 'e' || *x->p == 'E')) {
        is_float = 1;
        x->p++;
        if (x->p < x->end && (*x->p == '+' || *x->p == '-'))
            x->p++;
        if (x->p >= x->end || *x->p < '0' || *x->p > '9')
            bad(x, "bad number");
        while (x->p < x->end && *x->p >= '0' && *x->p <= '9')
            x->p++;
    }
    char tmp[400];
    size_t n = (size_t)(x->p - s);
    if (n >= sizeof tmp)
        bad(x, "number too long");
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!is_float) {
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno != ERANGE)
            return jv_int(v);
    }
    return jv_float(strtod(tmp, NULL)); /* integers past 64 bits become floats */
}

static jv parse_value(jparser *x, int depth)
{
    if (depth > x->c->lim.max_depth)
        jfail(x->c, JINJA_ELIMIT, "JSON nested deeper than %d levels", x->c->lim.max_depth);
    ws(x);
    if (x->p >= x->end)
        bad(x, "unexpected end");
    char ch = *x->p;
    if (ch == '"')
        return parse_string(x);
    if (ch == '{') {
        jv d = jv_dict(x->c);
        x->p++;
        ws(x);
        if (x->p < x->end && *x->p == '}') {
            x->p++;
            return d;
        }
        for (;;) {
            ws(x);
            if (x->p >= x->end || *x->p != '"')
                bad(x, "expected a key");
            jv k = parse_string(x);
            ws(x);
            if (x->p >= x->end || *x->p++ != ':')
                bad(x, "expected ':'");
            jd_set(x->c, d.d, k, parse_value(x, depth + 1));
            ws(x);
            if (x->p < x->end && *x->p == ',') {
                x->p++;
                continue;
            }
            if (x->p < x->end && *x->p == '}') {
                x->p++;
                return d;
            }
            bad(x, "expected ',' or '}'");
        }
    }
    if (ch == '[') {
        jv l = jv_list(x->c, 0);
        x->p++;
        ws(x);
        if (x->p < x->end && *x->p == ']') {
            x->p++;
            return l;
        }
        for (;;) {
            jl_push(x->c, l.l, parse_value(x, depth + 1));
            ws(x);
            if (x->p < x->end && *x->p == ',') {
                x->p++;
                continue;
            }
            if (x->p < x->end && *x->p == ']') {
                x->p++;
                return l;
            }
            bad(x, "expected ',' or ']'");
        }
    }
    static const struct { const char *w; int t; } words[] = {{"true", 1}, {"false", 0}, {"null", 2}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i].w);
        if ((size_t)(x->end - x->p) >= n && !memcmp(x->p, words[i].w, n)) {
            x->p += n;
            return words[i].t == 2 ? jv_none() : jv_bool(words[i].t);
        }
    }
    return parse_number(x);
}

jv jjson_parse(jctx *c, const char *s, size_t n)
{
    jparser x = {c, s, s, s + n};
    jv v = parse_value(&x, 0);
    ws(&x);
    if (x.p != x.end)
        bad(&x, "text after the value");
    return v;
}

/* ---- json.dumps */

static void dump_str(jctx *c, jbuf *b, const jstr *s, int ascii)
{
    jb_add(c, b, "\"", 1);
    size_t a = 0;
    for (size_t i = 0; i < s->n;) {
        unsigned char ch = (unsigned char)s->p[i];
        char esc[16];
        int l = 1;
        if (ch == '"' || ch == '\\')
            snprintf(esc, sizeof esc, "\\%c", ch);
        else if (ch < 0x20) {
            const char *named = ch == '\b' ? "\\b" : ch == '\f' ? "\\f" : ch == '\n' ? "\\n"
                              : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
            if (named)
                snprintf(esc, sizeof esc, "%s", named);
            else
                snprintf(esc, sizeof esc, "\\u%04x", ch);
        } else if (ch >= 0x80 && ascii) {
            uint32_t cp = tok_utf8_decode(s->p + i, &l);
            if (cp >= 0x10000)
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                         0xDC00 + ((cp - 0x10000) & 0x3FF));
            else
                snprintf(esc, sizeof esc, "\\u%04x", cp);
        } else {
            i++;
            continue;
        }
        jb_add(c, b, s->p + a, i - a);
        jb_adds(c, b, esc);
        i += (size_t)l;
        a = i;
    }
    jb_add(c, b, s->p + a, s->n - a);
    jb_add(c, b, "\"", 1);
}

static void dump_float(jctx *c, jbuf *b, double f)
{
    char num[40];
    if (isnan(f))
        strcpy(num, "NaN");
    else if (isinf(f))
        strcpy(num, f < 0 ? "-Infinity" : "Infinity");
    else
        py_float_repr(f, num);
    jb_adds(c, b, num);
}

static void newline(jctx *c, jbuf *b, const jjson_opts *o, int level)
{
    jb_add(c, b, "\n", 1);
    for (int i = 0; i < level; i++)
        jb_add(c, b, o->indent->p, o->indent->n);
}

static void dump(jctx *c, jbuf *b, jv v, const jjson_opts *o, int level)
{
    char num[32];
    switch (v.t) {
    case JV_NONE: jb_adds(c, b, "null"); return;
    case JV_BOOL: jb_adds(c, b, v.i ? "true" : "false"); return;
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v.i); jb_adds(c, b, num); return;
    case JV_FLOAT: dump_float(c, b, v.f); return;
    case JV_STR: dump_str(c, b, v.s, o->ensure_ascii); return;
    case JV_LIST: case JV_DICT: break;
    default: JERR(c, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
    if (level >= c->lim.max_depth)
        jfail(c, JINJA_ELIMIT, "tojson: nested deeper than %d levels", c->lim.max_depth);
    int is_list = v.t == JV_LIST;
    size_t n = is_list ? v.l->n : v.d->n;
    if (n == 0) {
        jb_adds(c, b, is_list ? "[]" : "{}");
        return;
    }
    size_t *order = ja_alloc(c, n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (!is_list && o->sort_keys) /* insertion sort: stable, and dicts are small */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && jv_cmp(c, v.d->k[order[j - 1]], v.d->k[order[j]]) > 0; j--) {
                size_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
    jb_adds(c, b, is_list ? "[" : "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            jb_adds(c, b, o->item_sep);
        if (o->has_indent)
            newline(c, b, o, level + 1);
        if (is_list) {
            dump(c, b, v.l->v[i], o, level + 1);
            continue;
        }
        jv k = v.d->k[order[i]];
        if (k.t == JV_STR)
            dump_str(c, b, k.s, o->ensure_ascii);
        else if (k.t == JV_INT || k.t == JV_FLOAT || k.t == JV_BOOL || k.t == JV_NONE) {
            jbuf kb = {0};
            if (k.t == JV_FLOAT)
                dump_float(c, &kb, k.f);
            else
                dump(c, &kb, k, o, level + 1);
            jb_add(c, b, "\"", 1);
            jb_add(c, b, kb.p, kb.n);
            jb_add(c, b, "\"", 1);
        } else
            JERR(c, "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
        jb_adds(c, b, o->key_sep);
        dump(c, b, v.d->v[order[i]], o, level + 1);
    }
    if (o->has_indent)
        newline(c, b, o, level);
    jb_adds(c, b, is_list ? "]" : "}");
}

void jjson_dump(jctx *c, jbuf *b, jv v, const jjson_opts *o) { dump(c, b, v, o, 0); }
