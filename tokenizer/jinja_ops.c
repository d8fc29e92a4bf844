/* jinja_ops.c - Python's binary operators on the interpreter's values: + - * / // % ** with
 * bool as an int, int overflow an error (Python's ints have none; 64 bits are far beyond what
 * a chat template computes), true division always a float, floor division and modulo
 * rounding toward minus infinity, str + str, list + list, str * int, and printf-style
 * str % args for %s %r %d %i %f %x %%.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jinja_impl.h"

_Noreturn static void type_error(jctx *c, const char *op, jv a, jv b)
{
    if (a.t == JV_UNDEF || b.t == JV_UNDEF) {
        jv u = a.t == JV_UNDEF ? a : b;
        JERR(c, "'%s' is undefined", u.name ? u.name : "value");
    }
    JERR(c, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a), jv_type_name(b));
}

static jv repeat(jctx *c, jv seq, int64_t k)
{
    if (seq.t == JV_STR) {
        jbuf b = {0};
        for (int64_t i = 0; i < k; i++)
            jb_add(c, &b, seq.s->p, seq.s->n);
        return jb_take(c, &b);
    }
    jv out = jv_list(c, 0);
    out.tuple = seq.tuple;
    for (int64_t i = 0; i < k; i++) {
        jcount_iter(c);
        for (size_t j = 0; j < seq.l->n; j++)
            jl_push(c, out.l, seq.l->v[j]);
    }
    return out;
}

/* printf-style formatting of FMT with ARGS (a tuple gives several values) */
static jv percent_format(jctx *c, jv fmt, jv args)
{
    const jlist *vals = NULL;
    jlist one = {1, 1, &args};
    vals = args.t == JV_LIST && args.tuple ? args.l : &one;
    size_t used = 0;
    jbuf b = {0};
    const char *p = fmt.s->p, *end = p + fmt.s->n;
    while (p < end) {
        const char *q = memchr(p, '%', (size_t)(end - p));
        if (!q) {
            jb_add(c, &b, p, (size_t)(end - p));
            break;
        }
        jb_add(c, &b, p, (size_t)(q - p));
        const char *spec = q++;
        while (q < end && strchr("-+ #0123456789.", *q))
            q++;
        if (q >= end)
            JERR(c, "incomplete format");
        char conv = *q++, cfmt[40], num[80];
        if (conv == '%') {
            jb_add(c, &b, "%", 1);
            p = q;
            continue;
        }
        if (used >= vals->n)
            JERR(c, "not enough arguments for format string");
        jv v = vals->v[used++];
        size_t flen = (size_t)(q - spec - 1);
        if (flen > 20)
            JERR(c, "format spec too long");
        if (conv == 's' || conv == 'r') {
            jbuf t = {0};
            if (conv == 's')
                jv_to_str(c, &t, v);
            else
                jv_repr(c, &t, v);
            snprintf(cfmt, sizeof cfmt, "%.*ss", (int)flen, spec);
            if (flen == 0)
                jb_add(c, &b, t.p ? t.p : "", t.n);
            else {
                char *o = ja_alloc(c, t.n + 256);
                snprintf(o, t.n + 256, cfmt, t.p ? t.p : "");
                jb_adds(c, &b, o);
            }
        } else if (strchr("dixXof", conv)) {
            if (!jv_is_num(v))
                JERR(c, "%%%c format: a real number is required, not %s", conv, jv_type_name(v));
            if (conv == 'f') {
                snprintf(cfmt, sizeof cfmt, "%.*sf", (int)flen, spec);
                snprintf(num, sizeof num, cfmt, jv_num(v));
            } else {
                long long i = v.t == JV_FLOAT ? (long long)v.f : (long long)v.i;
                snprintf(cfmt, sizeof cfmt, "%.*sll%c", (int)flen, spec, conv == 'i' ? 'd' : conv);
                snprintf(num, sizeof num, cfmt, i);
            }
            jb_adds(c, &b, num);
        } else
            JERR(c, "unsupported format character '%c'", conv);
        p = q;
    }
    if (used < vals->n)
        JERR(c, "not all arguments converted during string formatting");
    return jb_take(c, &b);
}

static int64_t floordiv_int(jctx *c, int64_t a, int64_t b)
{
    if (b == 0)
        JERR(c, "integer division or modulo by zero");
    if (a == INT64_MIN && b == -1)
        JERR(c, "integer overflow");
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* A OP B for the arithmetic operators (+ - * / // % **) with Python's results: integer
 * overflow an error, floored division and modulo, str and list concatenation and repetition,
 * "%" formatting. One function over 80 lines: a switch over the operators, each case a few
 * lines per operand type. */
jv jbinop(jctx *c, int op, jv a, jv b)
{
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    int nums = jv_is_num(a) && jv_is_num(b), ints = nums && a.t != JV_FLOAT && b.t != JV_FLOAT;
    int64_t r;
    switch (op) {
    case OP_ADD:
        if (ints) {
            if (__builtin_add_overflow(a.i, b.i, &r))
                JERR(c, "integer overflow");
            return jv_int(r);
        }
        if (nums)
            return jv_float(jv_num(a) + jv_num(b));
        if (a.t == JV_STR && b.t == JV_STR) {
            jbuf s = {0};
            jb_add(c, &s, a.s->p, a.s->n);
            jb_add(c, &s, b.s->p, b.s->n);
            return jb_take(c, &s);
        }
        if (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple) {
            jv l = jv_list(c, a.l->n + b.l->n);
            l.tuple = a.tuple;
            for (size_t i = 0; i < a.l->n; i++)
                jl_push(c, l.l, a.l->v[i]);
            for (size_t i = 0; i < b.l->n; i++)
                jl_push(c, l.l, b.l->v[i]);
            return l;
        }
        if (a.t == JV_STR && b.t != JV_UNDEF && b.t != JV_STR)
            JERR(c, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
        type_error(c, "+", a, b);
    case OP_SUB:
        if (ints) {
            if (__builtin_sub_overflow(a.i, b.i, &r))
                JERR(c, "integer overflow");
            return jv_int(r);
        }
        if (nums)
            return jv_float(jv_num(a) - jv_num(b));
        type_error(c, "-", a, b);
    case OP_MUL:
        if (ints) {
            if (__builtin_mul_overflow(a.i, b.i, &r))
                JERR(c, "integer overflow");
            return jv_int(r);
        }
        if (nums)
            return jv_float(jv_num(a) * jv_num(b));
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(c, a, b.i);
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(c, b, a.i);
        type_error(c, "*", a, b);
    case OP_DIV:
        if (!nums)
            type_error(c, "/", a, b);
        if (jv_num(b) == 0)
            JERR(c, "division by zero");
        return jv_float(jv_num(a) / jv_num(b));
    case OP_FLOORDIV:
        if (ints)
            return jv_int(floordiv_int(c, a.i, b.i));
        if (!nums)
            type_error(c, "//", a, b);
        if (jv_num(b) == 0)
            JERR(c, "float floor division by zero");
        return jv_float(floor(jv_num(a) / jv_num(b)));
    case OP_MOD:
        if (a.t == JV_STR)
            return percent_format(c, a, b);
        if (ints) {
            int64_t q = floordiv_int(c, a.i, b.i);
            return jv_int(a.i - q * b.i);
        }
        if (!nums)
            type_error(c, "%", a, b);
        if (jv_num(b) == 0)
            JERR(c, "float modulo");
        {
            double x = jv_num(a), y = jv_num(b), m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0)))
                m += y;
            return jv_float(m);
        }
    default: /* OP_POW */
        if (ints && b.i >= 0) {
            int64_t acc = 1, base = a.i, e = b.i;
            while (e > 0) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    JERR(c, "integer overflow");
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base))
                    JERR(c, "integer overflow");
            }
            return jv_int(acc);
        }
        if (!nums)
            type_error(c, "**", a, b);
        if (jv_num(a) == 0 && jv_num(b) < 0)
            JERR(c, "0.0 cannot be raised to a negative power");
        return jv_float(pow(jv_num(a), jv_num(b)));
    }
    (void)names;
}
