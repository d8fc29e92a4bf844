/* jinja_parse.c - tokens to a syntax tree, with Jinja2's grammar:
 *
 *   statements  if/elif/else, for (tuple targets, "if" filter, else, recursive), set (to a
 *               name, a tuple, a namespace attribute, or a block with filters), macro,
 *               call blocks, filter blocks, with, break/continue (loopcontrols),
 *               generation (transformers' assistant-mask tag: renders its body)
 *   expressions x if c else y; or; and; not; comparisons (chained, in, not in); + -; ~;
 *               * / // %; **; unary - +; then postfix .attr [item] [a:b:c] (call), | filter,
 *               "is [not] test"; literals: strings, numbers, true/false/none, lists,
 *               tuples, dicts
 *
 * Node fields by kind: N_IF a=test b=body c=else; N_FOR a=target b=iter c=body d=else,
 * kid[0]=filter; N_SET a=target b=value; N_SETBLOCK a=target b=body c=filter chain;
 * N_MACRO name, kw=params, kid=defaults (aligned to the last params), a=body; N_CALLBLOCK
 * a=call b=body, kw/kid its caller's signature; N_FILTERBLOCK a=filter chain b=body; N_WITH
 * kid = target/value pairs, a=body; N_ATTR a.name; N_ITEM a[b]; N_SLICE a[b:c:d];
 * N_CALL a(kid, kw); N_FILTER a|name(kid, kw); N_TEST a is name(kid); N_BIN a op b;
 * N_CMP a then (ops[i], kid[i]); N_COND a if b else c; N_NSREF a=namespace name . name.
 * An unknown filter or test is a syntax error outside if statements and conditional
 * expressions, as in Jinja2, and fails when reached inside them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

typedef struct {
    jctx *c;
    jtok *t;
    int n, i;
    int soft;          /* inside an if statement or conditional expression */
    int iter_content;  /* a for loop over ... .content / ...["content"] was seen */
} jparser;

typedef struct { jnode **v; int n, cap; } nvec;

static void nv_push(jctx *c, nvec *v, jnode *x)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        jnode **p = ja_alloc(c, (size_t)cap * sizeof *p);
        if (v->n)
            memcpy(p, v->v, (size_t)v->n * sizeof *p);
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static jtok *cur(jparser *p) { return &p->t[p->i]; }
static jtok *peek(jparser *p, int k) { return &p->t[p->i + k < p->n ? p->i + k : p->n - 1]; }
static jtok *adv(jparser *p)
{
    jtok *t = cur(p);
    if (p->i < p->n - 1)
        p->i++;
    return t;
}
static int is_op(const jtok *t, const char *op) { return t->type == T_OP && !strcmp(t->s, op); }
static int is_name(const jtok *t, const char *w) { return t->type == T_NAME && !strcmp(t->s, w); }

static const char *describe(const jtok *t)
{
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_VAR_END: return "end of print statement";
    case T_BLOCK_END: return "end of statement block";
    case T_NAME: case T_OP: return t->s;
    case T_STRING: return "string";
    case T_TEXT: return "template data";
    default: return "number";
    }
}

_Noreturn static void fail(jparser *p, const char *what)
{
    jfail(p->c, JINJA_ESYNTAX, "line %d: %s (at '%s')", cur(p)->line, what, describe(cur(p)));
}

static void expect_op(jparser *p, const char *op)
{
    if (!is_op(cur(p), op)) {
        char m[64];
        snprintf(m, sizeof m, "expected '%s'", op);
        fail(p, m);
    }
    adv(p);
}

static const char *expect_name(jparser *p)
{
    if (cur(p)->type != T_NAME)
        fail(p, "expected a name");
    return adv(p)->s;
}

static jnode *node(jparser *p, int kind)
{
    jnode *x = ja_alloc(p->c, sizeof *x);
    x->kind = (uint8_t)kind;
    x->line = cur(p)->line;
    return x;
}

static void set_kids(jparser *p, jnode *x, nvec *v)
{
    x->kid = v->v;
    x->n_kid = v->n;
}

static jnode *expr(jparser *p, int condexpr);
static jnode *parse_or(jparser *p);
static jnode *tuple(jparser *p, int simplified, int condexpr, const char *end_name, int explicit);
static jnode *body(jparser *p, const char *const *ends);

/* (args, name=kw, *a, **k) */
static void call_args(jparser *p, jnode *x)
{
    expect_op(p, "(");
    nvec pos = {0}, kwv = {0};
    const char **kw = NULL;
    int n_kw = 0, cap_kw = 0;
    while (!is_op(cur(p), ")")) {
        if (pos.n + kwv.n + (x->star != NULL) + (x->dstar != NULL))
            expect_op(p, ",");
        if (is_op(cur(p), ")"))
            break;
        if (is_op(cur(p), "*")) {
            adv(p);
            x->star = expr(p, 1);
        } else if (is_op(cur(p), "**")) {
            adv(p);
            x->dstar = expr(p, 1);
        } else if (cur(p)->type == T_NAME && is_op(peek(p, 1), "=")) {
            if (n_kw == cap_kw) {
                cap_kw = cap_kw ? cap_kw * 2 : 4;
                const char **k = ja_alloc(p->c, (size_t)cap_kw * sizeof *k);
                if (n_kw)
                    memcpy(k, kw, (size_t)n_kw * sizeof *k);
                kw = k;
            }
            kw[n_kw++] = adv(p)->s;
            adv(p);
            nv_push(p->c, &kwv, expr(p, 1));
        } else {
            if (kwv.n || x->star || x->dstar)
                fail(p, "positional argument after keyword arguments");
            nv_push(p->c, &pos, expr(p, 1));
        }
    }
    adv(p);
    for (int i = 0; i < kwv.n; i++)
        nv_push(p->c, &pos, kwv.v[i]);
    set_kids(p, x, &pos);
    x->kw = kw;
    x->n_kw = n_kw;
}

static jnode *filter_chain(jparser *p, jnode *operand, int start_inline)
{
    while (is_op(cur(p), "|") || start_inline) {
        if (!start_inline)
            adv(p);
        jnode *f = node(p, N_FILTER);
        f->name = expect_name(p);
        if (!jfilter_known(f->name) && !p->soft)
            jfail(p->c, JINJA_ESYNTAX, "line %d: no filter named '%s'", f->line, f->name);
        f->a = operand;
        if (is_op(cur(p), "("))
            call_args(p, f);
        operand = f;
        start_inline = 0;
    }
    return operand;
}

static jnode *primary(jparser *p)
{
    jtok *t = cur(p);
    jnode *x;
    if (t->type == T_NAME) {
        adv(p);
        x = node(p, N_CONST);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
            x->lit = jv_bool(1);
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
            x->lit = jv_bool(0);
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
            x->lit = jv_none();
        else {
            x->kind = N_NAME;
            x->name = t->s;
        }
        return x;
    }
    if (t->type == T_STRING) {
        jbuf b = {0};
        while (cur(p)->type == T_STRING) { /* adjacent strings join */
            jb_add(p->c, &b, cur(p)->s, cur(p)->n);
            adv(p);
        }
        x = node(p, N_CONST);
        x->lit = jb_take(p->c, &b);
        return x;
    }
    if (t->type == T_INT || t->type == T_FLOAT) {
        adv(p);
        x = node(p, N_CONST);
        x->lit = t->type == T_INT ? jv_int(t->i) : jv_float(t->f);
        return x;
    }
    if (is_op(t, "(")) {
        adv(p);
        x = tuple(p, 0, 1, NULL, 1);
        expect_op(p, ")");
        return x;
    }
    if (is_op(t, "[") || is_op(t, "{")) {
        int dict = is_op(t, "{");
        adv(p);
        x = node(p, dict ? N_DICT : N_LIST);
        nvec v = {0};
        const char *close = dict ? "}" : "]";
        while (!is_op(cur(p), close)) {
            if (v.n)
                expect_op(p, ",");
            if (is_op(cur(p), close))
                break;
            nv_push(p->c, &v, expr(p, 1));
            if (dict) {
                expect_op(p, ":");
                nv_push(p->c, &v, expr(p, 1));
            }
        }
        adv(p);
        set_kids(p, x, &v);
        return x;
    }
    fail(p, "unexpected token in an expression");
}

static jnode *subscribed(jparser *p)
{
    jnode *parts[3] = {NULL, NULL, NULL};
    if (!is_op(cur(p), ":")) {
        jnode *e = expr(p, 1);
        if (!is_op(cur(p), ":"))
            return e;
        parts[0] = e;
    }
    jnode *x = node(p, N_SLICE);
    adv(p); /* the first ':' */
    if (!is_op(cur(p), ":") && !is_op(cur(p), "]") && !is_op(cur(p), ","))
        parts[1] = expr(p, 1);
    if (is_op(cur(p), ":")) {
        adv(p);
        if (!is_op(cur(p), "]") && !is_op(cur(p), ","))
            parts[2] = expr(p, 1);
    }
    x->b = parts[0];
    x->c = parts[1];
    x->d = parts[2];
    return x;
}

static jnode *postfix(jparser *p, jnode *x)
{
    for (;;) {
        if (is_op(cur(p), ".")) {
            adv(p);
            jtok *t = adv(p);
            jnode *y;
            if (t->type == T_NAME) {
                y = node(p, N_ATTR);
                y->name = t->s;
            } else if (t->type == T_INT) {
                y = node(p, N_ITEM);
                y->b = node(p, N_CONST);
                y->b->lit = jv_int(t->i);
            } else
                fail(p, "expected a name or number after '.'");
            y->a = x;
            x = y;
        } else if (is_op(cur(p), "[")) {
            adv(p);
            nvec v = {0};
            while (!is_op(cur(p), "]")) {
                if (v.n)
                    expect_op(p, ",");
                nv_push(p->c, &v, subscribed(p));
            }
            adv(p);
            if (v.n == 0)
                fail(p, "empty subscript");
            jnode *key = v.v[0];
            if (v.n > 1) {
                key = node(p, N_TUPLE);
                set_kids(p, key, &v);
            }
            if (key->kind == N_SLICE) {
                key->a = x;
                x = key;
            } else {
                jnode *y = node(p, N_ITEM);
                y->a = x;
                y->b = key;
                x = y;
            }
        } else if (is_op(cur(p), "(")) {
            jnode *y = node(p, N_CALL);
            y->a = x;
            call_args(p, y);
            x = y;
        } else
            return x;
    }
}

static jnode *test(jparser *p, jnode *x)
{
    adv(p); /* is */
    jnode *t = node(p, N_TEST);
    if (is_name(cur(p), "not")) {
        adv(p);
        t->flag = 1;
    }
    t->name = expect_name(p);
    if (!jtest_known(t->name) && !p->soft)
        jfail(p->c, JINJA_ESYNTAX, "line %d: no test named '%s'", t->line, t->name);
    t->a = x;
    jtok *c = cur(p);
    if (is_op(c, "("))
        call_args(p, t);
    else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT || c->type == T_FLOAT ||
              is_op(c, "(") || is_op(c, "[") || is_op(c, "{")) &&
             !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is"))
            fail(p, "tests cannot be chained with is");
        nvec v = {0};
        nv_push(p->c, &v, postfix(p, primary(p)));
        set_kids(p, t, &v);
    }
    return t;
}

static jnode *filter_expr(jparser *p, jnode *x)
{
    for (;;) {
        if (is_op(cur(p), "|"))
            x = filter_chain(p, x, 0);
        else if (is_name(cur(p), "is"))
            x = test(p, x);
        else if (is_op(cur(p), "(")) {
            jnode *y = node(p, N_CALL);
            y->a = x;
            call_args(p, y);
            x = y;
        } else
            return x;
    }
}

static void deeper(jparser *p)
{
    if (++p->c->depth > p->c->lim.max_depth)
        jfail(p->c, JINJA_ESYNTAX, "line %d: expression nested deeper than %d levels", cur(p)->line,
              p->c->lim.max_depth);
}

static jnode *unary(jparser *p, int with_filter)
{
    deeper(p);
    jnode *x;
    if (is_op(cur(p), "-") || is_op(cur(p), "+")) {
        x = node(p, is_op(cur(p), "-") ? N_NEG : N_POS);
        adv(p);
        x->a = unary(p, 0);
    } else
        x = primary(p);
    x = postfix(p, x);
    if (with_filter)
        x = filter_expr(p, x);
    p->c->depth--;
    return x;
}

static jnode *binary(jparser *p, jnode *a, int op, jnode *b)
{
    jnode *x = node(p, N_BIN);
    x->op = (uint8_t)op;
    x->a = a;
    x->b = b;
    return x;
}

static jnode *parse_pow(jparser *p)
{
    jnode *x = unary(p, 1);
    while (is_op(cur(p), "**")) {
        adv(p);
        x = binary(p, x, OP_POW, unary(p, 1));
    }
    return x;
}

static jnode *parse_math2(jparser *p)
{
    jnode *x = parse_pow(p);
    for (;;) {
        int op = is_op(cur(p), "*") ? OP_MUL : is_op(cur(p), "/") ? OP_DIV
               : is_op(cur(p), "//") ? OP_FLOORDIV : is_op(cur(p), "%") ? OP_MOD : -1;
        if (op < 0)
            return x;
        adv(p);
        x = binary(p, x, op, parse_pow(p));
    }
}

static jnode *parse_concat(jparser *p)
{
    jnode *x = parse_math2(p);
    if (!is_op(cur(p), "~"))
        return x;
    jnode *c = node(p, N_CONCAT);
    nvec v = {0};
    nv_push(p->c, &v, x);
    while (is_op(cur(p), "~")) {
        adv(p);
        nv_push(p->c, &v, parse_math2(p));
    }
    set_kids(p, c, &v);
    return c;
}

static jnode *parse_math1(jparser *p)
{
    jnode *x = parse_concat(p);
    while (is_op(cur(p), "+") || is_op(cur(p), "-")) {
        int op = is_op(adv(p), "+") ? OP_ADD : OP_SUB;
        x = binary(p, x, op, parse_concat(p));
    }
    return x;
}

static jnode *parse_compare(jparser *p)
{
    jnode *x = parse_math1(p);
    nvec v = {0};
    uint8_t ops[64];
    for (;;) {
        jtok *t = cur(p);
        int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT
               : is_op(t, "<=") ? OP_LE : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE
               : is_name(t, "in") ? OP_IN : is_name(t, "not") && is_name(peek(p, 1), "in") ? OP_NOTIN : -1;
        if (op < 0)
            break;
        adv(p);
        if (op == OP_NOTIN)
            adv(p);
        if (v.n == (int)sizeof ops)
            fail(p, "too many chained comparisons");
        ops[v.n] = (uint8_t)op;
        nv_push(p->c, &v, parse_math1(p));
    }
    if (!v.n)
        return x;
    jnode *c = node(p, N_CMP);
    c->a = x;
    set_kids(p, c, &v);
    c->ops = ja_alloc(p->c, (size_t)v.n);
    memcpy(c->ops, ops, (size_t)v.n);
    return c;
}

static jnode *parse_not(jparser *p)
{
    if (is_name(cur(p), "not")) {
        jnode *x = node(p, N_NOT);
        adv(p);
        deeper(p);
        x->a = parse_not(p);
        p->c->depth--;
        return x;
    }
    return parse_compare(p);
}

static jnode *parse_and(jparser *p)
{
    jnode *x = parse_not(p);
    while (is_name(cur(p), "and")) {
        adv(p);
        jnode *y = node(p, N_AND);
        y->a = x;
        y->b = parse_not(p);
        x = y;
    }
    return x;
}

static jnode *parse_or(jparser *p)
{
    jnode *x = parse_and(p);
    while (is_name(cur(p), "or")) {
        adv(p);
        jnode *y = node(p, N_OR);
        y->a = x;
        y->b = parse_and(p);
        x = y;
    }
    return x;
}

static jnode *expr(jparser *p, int condexpr)
{
    deeper(p);
    jnode *x = parse_or(p);
    while (condexpr && is_name(cur(p), "if")) {
        adv(p);
        p->soft++;
        jnode *y = node(p, N_COND);
        y->b = x;
        y->a = parse_or(p);
        if (is_name(cur(p), "else")) {
            adv(p);
            y->c = expr(p, 1);
        }
        p->soft--;
        x = y;
    }
    p->c->depth--;
    return x;
}

static int tuple_end(jparser *p, const char *end_name)
{
    jtok *t = cur(p);
    return t->type == T_VAR_END || t->type == T_BLOCK_END || is_op(t, ")") ||
           (end_name && is_name(t, end_name));
}

static jnode *tuple(jparser *p, int simplified, int condexpr, const char *end_name, int explicit)
{
    nvec v = {0};
    int is_tuple = 0;
    int line = cur(p)->line;
    for (;;) {
        if (v.n)
            expect_op(p, ",");
        if (tuple_end(p, end_name))
            break;
        nv_push(p->c, &v, simplified ? primary(p) : expr(p, condexpr));
        if (is_op(cur(p), ","))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (v.n)
            return v.v[0];
        if (!explicit)
            fail(p, "expected an expression");
    }
    jnode *x = node(p, N_TUPLE);
    x->line = line;
    set_kids(p, x, &v);
    return x;
}

static void check_target(jparser *p, const jnode *t)
{
    if (t->kind == N_NAME)
        return;
    if (t->kind != N_TUPLE)
        fail(p, "cannot assign to this expression");
    for (int i = 0; i < t->n_kid; i++)
        check_target(p, t->kid[i]);
}

static jnode *assign_target(jparser *p, const char *end_name, int with_namespace)
{
    if (with_namespace && cur(p)->type == T_NAME && is_op(peek(p, 1), ".")) {
        jnode *x = node(p, N_NSREF);
        x->a = node(p, N_NAME);
        x->a->name = adv(p)->s;
        adv(p);
        x->name = expect_name(p);
        return x;
    }
    jnode *t = tuple(p, 1, 0, end_name, 0);
    check_target(p, t);
    return t;
}

/* the end of a statement's opening tag, then its body up to one of ENDS (left unread) */
static jnode *block(jparser *p, const char *const *ends)
{
    if (cur(p)->type != T_BLOCK_END)
        fail(p, "expected the end of the statement");
    adv(p);
    return body(p, ends);
}

/* the closing tag's name (one of ENDS) was seen: consume it */
static const char *end_tag(jparser *p) { return adv(p)->s; }

static void signature(jparser *p, jnode *x)
{
    expect_op(p, "(");
    nvec defs = {0};
    const char **names = ja_alloc(p->c, 64 * sizeof *names);
    int n = 0;
    while (!is_op(cur(p), ")")) {
        if (n)
            expect_op(p, ",");
        if (n == 64)
            fail(p, "too many macro parameters");
        names[n++] = expect_name(p);
        if (is_op(cur(p), "=")) {
            adv(p);
            nv_push(p->c, &defs, expr(p, 1));
        } else if (defs.n)
            fail(p, "non-default argument follows default argument");
    }
    adv(p);
    x->kw = names;
    x->n_kw = n;
    set_kids(p, x, &defs);
}

static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_FOR[] = {"endfor", "else", NULL};

/* an if (or elif) from its test on: X gets a=test b=body c=elif chain or else body */
static void if_chain(jparser *p, jnode *x)
{
    x->kind = N_IF;
    x->a = tuple(p, 0, 0, NULL, 0);
    x->b = block(p, END_IF);
    const char *e = end_tag(p);
    if (!strcmp(e, "elif")) {
        x->c = node(p, N_IF);
        if_chain(p, x->c);
    } else if (!strcmp(e, "else")) {
        static const char *const end[] = {"endif", NULL};
        x->c = block(p, end);
        end_tag(p);
    }
}

static jnode *statement(jparser *p)
{
    jtok *t = cur(p);
    if (t->type != T_NAME)
        fail(p, "expected a statement name");
    const char *w = adv(p)->s;
    jnode *x = node(p, N_BODY);
    x->line = t->line;
    if (!strcmp(w, "if")) {
        p->soft++;
        if_chain(p, x);
        p->soft--;
        return x;
    }
    if (!strcmp(w, "for")) {
        x->kind = N_FOR;
        x->a = assign_target(p, "in", 0);
        if (!is_name(cur(p), "in"))
            fail(p, "expected 'in'");
        adv(p);
        x->b = tuple(p, 0, 0, "recursive", 0);
        const jnode *it = x->b;
        if ((it->kind == N_ATTR && !strcmp(it->name, "content")) ||
            (it->kind == N_ITEM && it->b->kind == N_CONST && it->b->lit.t == JV_STR &&
             !strcmp(it->b->lit.s->p, "content")))
            p->iter_content = 1;
        if (is_name(cur(p), "if")) {
            adv(p);
            x->kid = ja_alloc(p->c, sizeof *x->kid);
            x->kid[0] = expr(p, 1);
            x->n_kid = 1;
        }
        if (is_name(cur(p), "recursive")) {
            adv(p);
            x->flag = 1;
        }
        x->c = block(p, END_FOR);
        if (!strcmp(end_tag(p), "else")) {
            static const char *const end[] = {"endfor", NULL};
            x->d = block(p, end);
            end_tag(p);
        }
        return x;
    }
    if (!strcmp(w, "set")) {
        x->kind = N_SET;
        x->a = assign_target(p, NULL, 1);
        if (is_op(cur(p), "=")) {
            adv(p);
            x->b = tuple(p, 0, 1, NULL, 0);
            return x;
        }
        if (x->a->kind != N_NAME && x->a->kind != N_NSREF)
            fail(p, "a block set assigns one name");
        x->kind = N_SETBLOCK;
        x->c = is_op(cur(p), "|") ? filter_chain(p, NULL, 0) : NULL;
        static const char *const end[] = {"endset", NULL};
        x->b = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "macro")) {
        x->kind = N_MACRO;
        x->name = expect_name(p);
        signature(p, x);
        static const char *const end[] = {"endmacro", NULL};
        x->a = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "call")) {
        x->kind = N_CALLBLOCK;
        if (is_op(cur(p), "("))
            signature(p, x);
        x->a = expr(p, 1);
        if (x->a->kind != N_CALL)
            fail(p, "expected a call");
        static const char *const end[] = {"endcall", NULL};
        x->b = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "filter")) {
        x->kind = N_FILTERBLOCK;
        x->a = filter_chain(p, NULL, 1);
        static const char *const end[] = {"endfilter", NULL};
        x->b = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "with")) {
        x->kind = N_WITH;
        nvec v = {0};
        while (cur(p)->type != T_BLOCK_END) {
            if (v.n)
                expect_op(p, ",");
            nv_push(p->c, &v, assign_target(p, NULL, 0));
            expect_op(p, "=");
            nv_push(p->c, &v, expr(p, 1));
        }
        set_kids(p, x, &v);
        static const char *const end[] = {"endwith", NULL};
        x->a = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "generation")) {
        static const char *const end[] = {"endgeneration", NULL};
        jnode *b = block(p, end);
        end_tag(p);
        return b;
    }
    if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        x->kind = !strcmp(w, "break") ? N_BREAK : N_CONTINUE;
        return x;
    }
    p->i--;
    fail(p, "unknown tag");
}

/* statements and text up to a block tag named in ENDS (NULL: the end of the template) */
static jnode *body(jparser *p, const char *const *ends)
{
    jnode *b = node(p, N_BODY);
    nvec v = {0};
    deeper(p);
    for (;;) {
        jtok *t = cur(p);
        if (t->type == T_EOF) {
            if (ends)
                jfail(p->c, JINJA_ESYNTAX, "line %d: unexpected end of template, expected '%s'", t->line,
                      ends[0][0] == 'e' && ends[1] ? ends[1] : ends[0]);
            break;
        }
        if (t->type == T_TEXT) {
            jnode *x = node(p, N_TEXT);
            x->lit = jv_str(p->c, t->s, t->n);
            nv_push(p->c, &v, x);
            adv(p);
        } else if (t->type == T_VAR_BEGIN) {
            adv(p);
            jnode *x = node(p, N_OUT);
            x->a = tuple(p, 0, 1, NULL, 0);
            if (cur(p)->type != T_VAR_END)
                fail(p, "expected the end of the print statement");
            adv(p);
            nv_push(p->c, &v, x);
        } else if (t->type == T_BLOCK_BEGIN) {
            adv(p);
            for (int i = 0; ends && ends[i]; i++)
                if (is_name(cur(p), ends[i])) {
                    set_kids(p, b, &v);
                    p->c->depth--;
                    return b;
                }
            nv_push(p->c, &v, statement(p));
            if (cur(p)->type != T_BLOCK_END)
                fail(p, "expected the end of the statement");
            adv(p);
        } else
            fail(p, "unexpected token");
    }
    set_kids(p, b, &v);
    p->c->depth--;
    return b;
}

jinja_tpl *jinja_parse(const char *src, size_t n, char *err, size_t n_err)
{
    jinja_tpl *volatile t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, n_err, "out of memory");
        return NULL;
    }
    t->c.lim = jinja_default_limits();
    t->c.jmp_set = 1;
    if (setjmp(t->c.jmp)) {
        snprintf(err, n_err, "%s", t->c.err);
        jinja_free(t);
        return NULL;
    }
    jparser p = {.c = &t->c};
    p.t = jlex(&t->c, src, n, &p.n);
    t->body = body(&p, NULL);
    t->iterates_content = p.iter_content;
    t->c.jmp_set = 0;
    return t;
}

void jinja_free(jinja_tpl *t)
{
    if (!t)
        return;
    ja_free_all(&t->c.a);
    free(t);
}

int jinja_iterates_content(const jinja_tpl *t) { return t->iterates_content; }
