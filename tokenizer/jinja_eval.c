/* jinja_eval.c - expressions: names through the scopes, attribute and item access as
 * Jinja2's sandbox does it (obj.x tries the attribute, then the item; obj["x"] the item,
 * then the attribute; a miss is Undefined; underscore names are never attributes),
 * slicing, Python's arithmetic and comparisons, and/or returning an operand, conditional
 * expressions, ~ concatenation, calls.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jinja_impl.h"

jv jscope_get(jctx *c, jscope *s, const char *name)
{
    for (; s; s = s->up) {
        jv *v = jd_gets(&s->vars, name);
        if (v)
            return *v;
    }
    jv *g = jd_gets(&c->globals, name);
    if (g)
        return *g;
    int id = jglobal_lookup(name);
    if (id >= 0) {
        jv f = {.t = JV_FUNC};
        f.i = id;
        return f;
    }
    return jv_undef(name);
}

void jscope_set(jctx *c, jscope *s, const char *name, jv v) { jd_sets(c, &s->vars, name, v); }

_Noreturn static void undefined_error(jctx *c, jv u)
{
    JERR(c, "'%s' is undefined", u.name ? u.name : "value");
}

static jv bound(jctx *c, jv self, const char *name)
{
    jv m = {.t = JV_METHOD};
    m.b = ja_alloc(c, sizeof *m.b);
    m.b->self = self;
    m.b->name = name;
    return m;
}

static jv loop_attr(jctx *c, jloop *lp, const char *name)
{
    int64_t n = (int64_t)lp->items->n, i = (int64_t)lp->i;
    if (!strcmp(name, "index")) return jv_int(i + 1);
    if (!strcmp(name, "index0")) return jv_int(i);
    if (!strcmp(name, "revindex")) return jv_int(n - i);
    if (!strcmp(name, "revindex0")) return jv_int(n - i - 1);
    if (!strcmp(name, "first")) return jv_bool(i == 0);
    if (!strcmp(name, "last")) return jv_bool(i == n - 1);
    if (!strcmp(name, "length")) return jv_int(n);
    if (!strcmp(name, "depth")) return jv_int(lp->depth + 1);
    if (!strcmp(name, "depth0")) return jv_int(lp->depth);
    if (!strcmp(name, "previtem"))
        return i > 0 ? lp->items->v[i - 1] : jv_undef("previtem");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? lp->items->v[i + 1] : jv_undef("nextitem");
    if (!strcmp(name, "cycle") || !strcmp(name, "changed")) {
        jv self = {.t = JV_LOOP};
        self.lp = lp;
        return bound(c, self, name);
    }
    return jv_undef(name);
}

static jv attr_only(jctx *c, jv obj, const char *name)
{
    if (name[0] == '_')
        return jv_undef(name); /* the sandbox: never an attribute */
    if (obj.t == JV_LOOP)
        return loop_attr(c, obj.lp, name);
    if (jmethod_exists(obj, name))
        return bound(c, obj, name);
    return jv_undef(name);
}

jv jgetattr(jctx *c, jv obj, const char *name)
{
    if (obj.t == JV_UNDEF)
        undefined_error(c, obj);
    if (obj.t == JV_NS) {
        jv *v = jd_gets(obj.d, name);
        return v ? *v : jv_undef(name);
    }
    jv a = attr_only(c, obj, name);
    if (a.t != JV_UNDEF || name[0] == '_' || obj.t == JV_LOOP)
        return a;
    if (obj.t == JV_DICT) {
        jv *v = jd_gets(obj.d, name);
        if (v)
            return *v;
    }
    return jv_undef(name);
}

/* Python index I into a sequence of N: the position, or -1 when out of range */
static int64_t seq_index(int64_t i, int64_t n)
{
    if (i < 0)
        i += n;
    return i >= 0 && i < n ? i : -1;
}

jv jgetitem(jctx *c, jv obj, jv key)
{
    if (obj.t == JV_UNDEF)
        undefined_error(c, obj);
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        jv *v = jd_get(obj.d, key);
        if (v)
            return *v;
    } else if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        if (obj.t == JV_LIST) {
            int64_t i = seq_index(key.i, (int64_t)obj.l->n);
            return i < 0 ? jv_undef(NULL) : obj.l->v[i];
        }
        int64_t i = seq_index(key.i, (int64_t)py_ncp(obj.s->p, obj.s->n));
        if (i < 0)
            return jv_undef(NULL);
        size_t a = py_cp_off(obj.s->p, obj.s->n, i), b = py_cp_off(obj.s->p, obj.s->n, i + 1);
        return jv_str(c, obj.s->p + a, b - a);
    }
    if (key.t == JV_STR && obj.t != JV_NS)
        return attr_only(c, obj, key.s->p);
    return jv_undef(NULL);
}

static int64_t slice_bound(jctx *c, jv v, int64_t dflt)
{
    if (v.t == JV_NONE)
        return dflt;
    if (v.t != JV_INT && v.t != JV_BOOL)
        JERR(c, "slice indices must be integers or None");
    return v.i;
}

/* Python's slice indices (PySlice_AdjustIndices) */
static jv slice(jctx *c, jv obj, jv start, jv stop, jv step)
{
    if (obj.t == JV_UNDEF)
        undefined_error(c, obj);
    if (obj.t != JV_LIST && obj.t != JV_STR)
        JERR(c, "'%s' object is not subscriptable", jv_type_name(obj));
    int64_t n = obj.t == JV_LIST ? (int64_t)obj.l->n : (int64_t)py_ncp(obj.s->p, obj.s->n);
    int64_t st = slice_bound(c, step, 1);
    if (st == 0)
        JERR(c, "slice step cannot be zero");
    int64_t lo = slice_bound(c, start, st < 0 ? n - 1 : 0);
    int64_t hi = slice_bound(c, stop, st < 0 ? -n - 1 : n);
    if (start.t != JV_NONE) {
        if (lo < 0)
            lo = lo + n < 0 ? (st < 0 ? -1 : 0) : lo + n;
        else if (lo >= n)
            lo = st < 0 ? n - 1 : n;
    }
    if (stop.t != JV_NONE || st < 0) {
        if (hi < 0)
            hi = hi + n < 0 ? (st < 0 ? -1 : 0) : hi + n;
        else if (hi >= n)
            hi = st < 0 ? n - 1 : n;
    }
    jv out = jv_list(c, 0);
    out.tuple = obj.tuple;
    jbuf b = {0};
    size_t *off = NULL;
    if (obj.t == JV_STR) { /* code point offsets */
        off = ja_alloc(c, (size_t)(n + 1) * sizeof *off);
        for (int64_t i = 0; i <= n; i++)
            off[i] = i ? py_cp_off(obj.s->p + off[i - 1], obj.s->n - off[i - 1], 1) + off[i - 1] : 0;
    }
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
        if (obj.t == JV_LIST)
            jl_push(c, out.l, obj.l->v[i]);
        else
            jb_add(c, &b, obj.s->p + off[i], off[i + 1] - off[i]);
    }
    return obj.t == JV_LIST ? out : jb_take(c, &b);
}

int jv_contains(jctx *c, jv container, jv item)
{
    switch (container.t) {
    case JV_UNDEF: return 0;
    case JV_STR:
        if (item.t != JV_STR)
            JERR(c, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        return item.s->n == 0 || memmem(container.s->p, container.s->n, item.s->p, item.s->n) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < container.l->n; i++)
            if (jv_eq(c, container.l->v[i], item))
                return 1;
        return 0;
    case JV_DICT:
        return jd_get(container.d, item) != NULL;
    default:
        JERR(c, "argument of type '%s' is not iterable", jv_type_name(container));
    }
}

static int compare(jctx *c, int op, jv a, jv b)
{
    switch (op) {
    case OP_EQ: return jv_eq(c, a, b);
    case OP_NE: return !jv_eq(c, a, b);
    case OP_LT: return jv_cmp(c, a, b) < 0;
    case OP_LE: return jv_cmp(c, a, b) <= 0;
    case OP_GT: return jv_cmp(c, a, b) > 0;
    case OP_GE: return jv_cmp(c, a, b) >= 0;
    case OP_IN: return jv_contains(c, b, a);
    default: return !jv_contains(c, b, a);
    }
}

/* the values of call arguments: positional first, then keywords (N_KW names in X->kw) */
typedef struct { int n_pos, n_kw; jv *pos, *kwv; const char **kw; } jargs;

static jargs eval_args(jctx *c, jscope *s, const jnode *x)
{
    jargs a = {0};
    int n_pos = x->n_kid - x->n_kw;
    const jlist *star = NULL;
    const jdict *dstar = NULL;
    if (x->star) {
        jv v = jeval(c, s, x->star);
        star = jv_iter(c, v);
    }
    if (x->dstar) {
        jv v = jeval(c, s, x->dstar);
        if (v.t != JV_DICT)
            JERR(c, "argument after ** must be a mapping, not %s", jv_type_name(v));
        dstar = v.d;
    }
    size_t np = (size_t)n_pos + (star ? star->n : 0), nk = (size_t)x->n_kw + (dstar ? dstar->n : 0);
    a.pos = ja_alloc(c, (np + 1) * sizeof(jv));
    a.kwv = ja_alloc(c, (nk + 1) * sizeof(jv));
    a.kw = ja_alloc(c, (nk + 1) * sizeof(char *));
    for (int i = 0; i < n_pos; i++)
        a.pos[a.n_pos++] = jeval(c, s, x->kid[i]);
    for (size_t i = 0; star && i < star->n; i++)
        a.pos[a.n_pos++] = star->v[i];
    for (int i = 0; i < x->n_kw; i++) {
        a.kw[a.n_kw] = x->kw[i];
        a.kwv[a.n_kw++] = jeval(c, s, x->kid[n_pos + i]);
    }
    for (size_t i = 0; dstar && i < dstar->n; i++) {
        if (dstar->k[i].t != JV_STR)
            JERR(c, "keywords must be strings");
        a.kw[a.n_kw] = dstar->k[i].s->p;
        a.kwv[a.n_kw++] = dstar->v[i];
    }
    return a;
}

static jv eval_filter(jctx *c, jscope *s, const jnode *x, jv operand)
{
    jv v = x->a ? (x->a->kind == N_FILTER ? eval_filter(c, s, x->a, operand) : jeval(c, s, x->a)) : operand;
    jargs a = eval_args(c, s, x);
    return jfilter(c, s, x->name, v, a.n_pos, a.pos, a.n_kw, a.kw, a.kwv);
}

jv jfilter_chain(jctx *c, jscope *s, const jnode *chain, jv operand)
{
    return eval_filter(c, s, chain, operand);
}

/* One expression node. One function over 80 lines: a dispatch over the expression node kinds,
 * one short case each. */
static jv eval(jctx *c, jscope *s, const jnode *x)
{
    switch (x->kind) {
    case N_CONST: return x->lit;
    case N_NAME: return jscope_get(c, s, x->name);
    case N_LIST: case N_TUPLE: {
        jv l = jv_list(c, (size_t)x->n_kid);
        l.tuple = x->kind == N_TUPLE;
        for (int i = 0; i < x->n_kid; i++)
            jl_push(c, l.l, jeval(c, s, x->kid[i]));
        return l;
    }
    case N_DICT: {
        jv d = jv_dict(c);
        for (int i = 0; i + 1 < x->n_kid; i += 2) {
            jv k = jeval(c, s, x->kid[i]);
            if (k.t == JV_LIST && !k.tuple)
                JERR(c, "unhashable type: 'list'");
            if (k.t == JV_DICT || k.t == JV_UNDEF)
                JERR(c, "unhashable type: '%s'", jv_type_name(k));
            jd_set(c, d.d, k, jeval(c, s, x->kid[i + 1]));
        }
        return d;
    }
    case N_ATTR: return jgetattr(c, jeval(c, s, x->a), x->name);
    case N_ITEM: return jgetitem(c, jeval(c, s, x->a), jeval(c, s, x->b));
    case N_SLICE: {
        jv o = jeval(c, s, x->a);
        return slice(c, o, x->b ? jeval(c, s, x->b) : jv_none(), x->c ? jeval(c, s, x->c) : jv_none(),
                     x->d ? jeval(c, s, x->d) : jv_none());
    }
    case N_CALL: {
        jv f = jeval(c, s, x->a);
        jargs a = eval_args(c, s, x);
        return jcall(c, s, f, a.n_pos, a.pos, a.n_kw, a.kw, a.kwv, x->line);
    }
    case N_FILTER: return eval_filter(c, s, x, jv_undef(NULL));
    case N_TEST: {
        jv v = jeval(c, s, x->a);
        jargs a = eval_args(c, s, x);
        return jv_bool(jtest(c, s, x->name, v, a.n_pos, a.pos) != x->flag);
    }
    case N_NEG: case N_POS: {
        jv v = jeval(c, s, x->a);
        if (v.t == JV_UNDEF)
            undefined_error(c, v);
        if (!jv_is_num(v))
            JERR(c, "bad operand type for unary %c: '%s'", x->kind == N_NEG ? '-' : '+', jv_type_name(v));
        if (x->kind == N_POS)
            return v.t == JV_BOOL ? jv_int(v.i) : v;
        if (v.t == JV_FLOAT)
            return jv_float(-v.f);
        if (v.i == INT64_MIN)
            JERR(c, "integer overflow");
        return jv_int(-v.i);
    }
    case N_NOT: return jv_bool(!jv_truthy(jeval(c, s, x->a)));
    case N_AND: {
        jv a = jeval(c, s, x->a);
        return jv_truthy(a) ? jeval(c, s, x->b) : a;
    }
    case N_OR: {
        jv a = jeval(c, s, x->a);
        return jv_truthy(a) ? a : jeval(c, s, x->b);
    }
    case N_BIN: {
        jv a = jeval(c, s, x->a);
        return jbinop(c, x->op, a, jeval(c, s, x->b));
    }
    case N_CMP: {
        jv a = jeval(c, s, x->a);
        for (int i = 0; i < x->n_kid; i++) {
            jv b = jeval(c, s, x->kid[i]);
            if (!compare(c, x->ops[i], a, b))
                return jv_bool(0);
            a = b;
        }
        return jv_bool(1);
    }
    case N_COND:
        if (jv_truthy(jeval(c, s, x->a)))
            return jeval(c, s, x->b);
        return x->c ? jeval(c, s, x->c) : jv_undef(NULL);
    case N_CONCAT: {
        jbuf b = {0};
        for (int i = 0; i < x->n_kid; i++)
            jv_to_str(c, &b, jeval(c, s, x->kid[i]));
        return jb_take(c, &b);
    }
    default:
        JERR(c, "line %d: not an expression", x->line);
    }
}

jv jeval(jctx *c, jscope *s, const jnode *x)
{
    return JNESTED(c, x, eval(c, s, x));
}
