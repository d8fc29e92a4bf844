/* jinja_value.c - the Jinja interpreter's values (jinja_impl.h): the arena they live in,
 * lists and insertion-ordered dicts, and Python's meaning of truth, equality, ordering,
 * str() and repr() for them, as Jinja2 inherits it.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"
#include "../common/tok/tok_impl.h"

struct ja_chunk { ja_chunk *next; size_t n, used; _Alignas(16) char p[]; };

void *ja_alloc(jctx *c, size_t n)
{
    jarena *a = &c->a;
    n = (n + 15) & ~(size_t)15;
    if (a->cap && (n > a->cap || a->used > a->cap - n))
        jfail(c, JINJA_ELIMIT, "the template used more than %zu bytes of memory", a->cap);
    ja_chunk *h = a->head;
    if (!h || h->n - h->used < n) {
        size_t size = n > 65536 ? n : 65536;
        h = malloc(sizeof *h + size);
        if (!h)
            jfail(c, JINJA_ELIMIT, "out of memory");
        h->next = a->head;
        h->n = size;
        h->used = 0;
        a->head = h;
    }
    void *p = h->p + h->used;
    h->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void ja_free_all(jarena *a)
{
    for (ja_chunk *h = a->head, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    a->head = NULL;
    a->used = 0;
}

void jfail(jctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->code = code;
    if (!c->jmp_set)
        abort(); /* a programming error: every entry point sets the jump */
    longjmp(c->jmp, 1);
}

jv jv_str(jctx *c, const char *s, size_t n)
{
    jstr *p = ja_alloc(c, sizeof *p + n + 1);
    p->n = n;
    if (n)
        memcpy(p->p, s, n);
    jv v = {.t = JV_STR};
    v.s = p;
    return v;
}

jv jv_cstr(jctx *c, const char *s) { return jv_str(c, s, strlen(s)); }

jv jv_list(jctx *c, size_t cap)
{
    jv v = {.t = JV_LIST};
    v.l = ja_alloc(c, sizeof *v.l);
    if (cap) {
        v.l->v = ja_alloc(c, cap * sizeof(jv));
        v.l->cap = cap;
    }
    return v;
}

jv jv_dict(jctx *c)
{
    jv v = {.t = JV_DICT};
    v.d = ja_alloc(c, sizeof *v.d);
    return v;
}

void jl_push(jctx *c, jlist *l, jv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jv *p = ja_alloc(c, cap * sizeof *p);
        if (l->n)
            memcpy(p, l->v, l->n * sizeof *p);
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

static int key_eq(jv a, jv b)
{
    if (a.t == JV_STR && b.t == JV_STR)
        return a.s->n == b.s->n && !memcmp(a.s->p, b.s->p, a.s->n);
    if (jv_is_num(a) && jv_is_num(b))
        return jv_num(a) == jv_num(b);
    return a.t == b.t && a.t == JV_NONE;
}

jv *jd_get(const jdict *d, jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(d->k[i], key))
            return &d->v[i];
    return NULL;
}

jv *jd_gets(const jdict *d, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].s->n == n && !memcmp(d->k[i].s->p, key, n))
            return &d->v[i];
    return NULL;
}

void jd_set(jctx *c, jdict *d, jv key, jv val)
{
    jv *old = jd_get(d, key);
    if (old) {
        *old = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jv *k = ja_alloc(c, cap * sizeof *k), *v = ja_alloc(c, cap * sizeof *v);
        if (d->n) {
            memcpy(k, d->k, d->n * sizeof *k);
            memcpy(v, d->v, d->n * sizeof *v);
        }
        d->k = k;
        d->v = v;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
}

void jd_sets(jctx *c, jdict *d, const char *key, jv val) { jd_set(c, d, jv_cstr(c, key), val); }

const char *jv_type_name(jv v)
{
    static const char *const names[] = {"Undefined", "NoneType", "bool", "int", "float", "str",
                                        "list", "dict", "Namespace", "Macro", "function",
                                        "method", "LoopContext"};
    if (v.t == JV_LIST && v.tuple)
        return "tuple";
    return names[v.t];
}

int jv_is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }
double jv_num(jv v) { return v.t == JV_FLOAT ? v.f : (double)v.i; }

int jv_truthy(jv v)
{
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return 0;
    case JV_BOOL: case JV_INT: return v.i != 0;
    case JV_FLOAT: return v.f != 0;
    case JV_STR: return v.s->n > 0;
    case JV_LIST: return v.l->n > 0;
    case JV_DICT: return v.d->n > 0;
    default: return 1;
    }
}

void jenter(jctx *c, int line)
{
    if (++c->depth > c->lim.max_depth)
        jfail(c, JINJA_ELIMIT, "line %d: values, expressions or statements nested deeper than %d levels", line,
              c->lim.max_depth);
}

static void deeper(jctx *c) { jenter(c, 0); }

jv jd_items(jctx *c, const jdict *d)
{
    jv out = jv_list(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
        jv pair = jv_list(c, 2);
        pair.tuple = 1;
        jl_push(c, pair.l, d->k[i]);
        jl_push(c, pair.l, d->v[i]);
        jl_push(c, out.l, pair);
    }
    return out;
}

int jv_eq(jctx *c, jv a, jv b)
{
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return a.i == b.i;
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t)
        return 0;
    int r = 0;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return key_eq(a, b);
    case JV_LIST:
        if (a.tuple != b.tuple || a.l->n != b.l->n)
            return 0;
        deeper(c);
        r = 1;
        for (size_t i = 0; r && i < a.l->n; i++)
            r = jv_eq(c, a.l->v[i], b.l->v[i]);
        c->depth--;
        return r;
    case JV_DICT:
        if (a.d->n != b.d->n)
            return 0;
        deeper(c);
        r = 1;
        for (size_t i = 0; r && i < a.d->n; i++) {
            jv *o = jd_get(b.d, a.d->k[i]);
            r = o && jv_eq(c, a.d->v[i], *o);
        }
        c->depth--;
        return r;
    default: return a.d == b.d; /* identity */
    }
}

int jv_cmp(jctx *c, jv a, jv b)
{
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.i > b.i) - (a.i < b.i);
        double x = jv_num(a), y = jv_num(b);
        return (x > y) - (x < y);
    }
    if (a.t == JV_STR && b.t == JV_STR) { /* UTF-8 byte order is code point order */
        size_t n = a.s->n < b.s->n ? a.s->n : b.s->n;
        int r = memcmp(a.s->p, b.s->p, n);
        return r ? r : (a.s->n > b.s->n) - (a.s->n < b.s->n);
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple) {
        deeper(c);
        for (size_t i = 0; i < a.l->n && i < b.l->n; i++)
            if (!jv_eq(c, a.l->v[i], b.l->v[i])) {
                int r = jv_cmp(c, a.l->v[i], b.l->v[i]);
                c->depth--;
                return r;
            }
        c->depth--;
        return (a.l->n > b.l->n) - (a.l->n < b.l->n);
    }
    if (a.t == JV_UNDEF || b.t == JV_UNDEF)
        JERR(c, "'%s' is undefined", a.t == JV_UNDEF && a.name ? a.name : b.name ? b.name : "value");
    JERR(c, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a), jv_type_name(b));
}

void jb_add(jctx *c, jbuf *b, const char *s, size_t n)
{
    if (b->cap - b->n <= n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n <= n)
            cap *= 2;
        char *p = ja_alloc(c, cap);
        if (b->n)
            memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    if (b == c->out && b->n > c->lim.max_output)
        jfail(c, JINJA_ELIMIT, "the template's output passed %zu bytes", c->lim.max_output);
}

jv jb_take(jctx *c, jbuf *b) { return jv_str(c, b->p ? b->p : "", b->n); }

/* Python's repr(float): the shortest digits that read back the same, exponent form outside
 * 1e-4 <= |f| < 1e16 */
void py_float_repr(double f, char *out)
{
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, f);
        if (strtod(e, NULL) == f)
            break;
    }
    /* e: [-]d[.ddd]e[+-]XX */
    char digits[24];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char *o = out;
    if (neg)
        *o++ = '-';
    if (exp < -4 || exp >= 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    if (exp < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = -1; i > exp; i--)
            *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp; i++)
            *o++ = i < nd ? digits[i] : '0';
        *o++ = '.';
        if (nd > exp + 1) {
            memcpy(o, digits + exp + 1, (size_t)(nd - exp - 1));
            o += nd - exp - 1;
        } else
            *o++ = '0';
    }
    *o = 0;
}

/* Python's repr of a str: single quotes unless it holds ' and no " */
static void repr_str(jctx *c, jbuf *b, const jstr *s)
{
    char q = memchr(s->p, '\'', s->n) && !memchr(s->p, '"', s->n) ? '"' : '\'';
    jb_add(c, b, &q, 1);
    for (size_t i = 0; i < s->n;) {
        int l;
        uint32_t cp = tok_utf8_decode(s->p + i, &l);
        char esc[16];
        if (cp == (uint32_t)q || cp == '\\')
            snprintf(esc, sizeof esc, "\\%c", (char)cp);
        else if (cp == '\n' || cp == '\r' || cp == '\t')
            snprintf(esc, sizeof esc, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        else if (!py_isprintable(cp))
            snprintf(esc, sizeof esc, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x", cp);
        else {
            jb_add(c, b, s->p + i, (size_t)l);
            i += (size_t)l;
            continue;
        }
        jb_adds(c, b, esc);
        i += (size_t)l;
    }
    jb_add(c, b, &q, 1);
}

static void to_str(jctx *c, jbuf *b, jv v, int repr)
{
    char num[40];
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jb_adds(c, b, "None"); return;
    case JV_BOOL: jb_adds(c, b, v.i ? "True" : "False"); return;
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v.i); jb_adds(c, b, num); return;
    case JV_FLOAT: py_float_repr(v.f, num); jb_adds(c, b, num); return;
    case JV_STR:
        if (repr)
            repr_str(c, b, v.s);
        else
            jb_add(c, b, v.s->p, v.s->n);
        return;
    case JV_LIST:
        deeper(c);
        jb_adds(c, b, v.tuple ? "(" : "[");
        for (size_t i = 0; i < v.l->n; i++) {
            if (i)
                jb_adds(c, b, ", ");
            to_str(c, b, v.l->v[i], 1);
        }
        jb_adds(c, b, v.tuple ? (v.l->n == 1 ? ",)" : ")") : "]");
        c->depth--;
        return;
    case JV_DICT: case JV_NS:
        deeper(c);
        jb_adds(c, b, v.t == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v.d->n; i++) {
            if (i)
                jb_adds(c, b, ", ");
            to_str(c, b, v.d->k[i], 1);
            jb_adds(c, b, ": ");
            to_str(c, b, v.d->v[i], 1);
        }
        jb_adds(c, b, v.t == JV_NS ? "}>" : "}");
        c->depth--;
        return;
    default:
        JERR(c, "cannot print a %s", jv_type_name(v));
    }
}

void jv_to_str(jctx *c, jbuf *b, jv v) { to_str(c, b, v, 0); }
void jv_repr(jctx *c, jbuf *b, jv v) { to_str(c, b, v, 1); }

jv jv_stringify(jctx *c, jv v)
{
    if (v.t == JV_STR)
        return v;
    jbuf b = {0};
    to_str(c, &b, v, 0);
    return jb_take(c, &b);
}

const jlist *jv_iter(jctx *c, jv v)
{
    static const jlist empty;
    switch (v.t) {
    case JV_UNDEF: return &empty;
    case JV_LIST: return v.l;
    case JV_DICT: {
        jv l = jv_list(c, v.d->n);
        for (size_t i = 0; i < v.d->n; i++)
            jl_push(c, l.l, v.d->k[i]);
        return l.l;
    }
    case JV_STR: {
        jv l = jv_list(c, v.s->n);
        for (size_t i = 0; i < v.s->n;) {
            int n = tok_utf8_len((unsigned char)v.s->p[i]);
            jl_push(c, l.l, jv_str(c, v.s->p + i, (size_t)n));
            i += (size_t)n;
        }
        return l.l;
    }
    default:
        JERR(c, "'%s' object is not iterable", jv_type_name(v));
    }
}

int64_t jv_len(jctx *c, jv v)
{
    switch (v.t) {
    case JV_UNDEF: return 0;
    case JV_STR: return (int64_t)py_ncp(v.s->p, v.s->n);
    case JV_LIST: return (int64_t)v.l->n;
    case JV_DICT: return (int64_t)v.d->n;
    default: JERR(c, "object of type '%s' has no len()", jv_type_name(v));
    }
}
