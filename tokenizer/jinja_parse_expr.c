/* jinja_parse_expr.c - Jinja2's expression grammar, lowest precedence first: x if c else y;
 * or; and; not; comparisons (chained, in, not in); + -; ~; * / // %; **; unary - +; then
 * postfix .attr [item] [a:b:c] (call), | filter, "is [not] test"; literals: strings (adjacent
 * ones joined), numbers, true/false/none, lists, tuples, dicts. Node fields: jinja_parse.c.
 */
#include <stdio.h>
#include <string.h>

#include "jinja_parse.h"

static jnode *parse_or(jparser *p);

/* (args, name=kw, *a, **k) */
static void call_args(jparser *p, jnode *x)
{
    jp_expect_op(p, "(");
    nvec pos = {0}, kwv = {0};
    const char **kw = NULL;
    int n_kw = 0, cap_kw = 0;
    while (!is_op(cur(p), ")")) {
        if (pos.n + kwv.n + (x->star != NULL) + (x->dstar != NULL))
            jp_expect_op(p, ",");
        if (is_op(cur(p), ")"))
            break;
        if (is_op(cur(p), "*")) {
            adv(p);
            x->star = jp_expr(p, 1);
        } else if (is_op(cur(p), "**")) {
            adv(p);
            x->dstar = jp_expr(p, 1);
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
            nv_push(p->c, &kwv, jp_expr(p, 1));
        } else {
            if (kwv.n || x->star || x->dstar)
                jp_fail(p, "positional argument after keyword arguments");
            nv_push(p->c, &pos, jp_expr(p, 1));
        }
    }
    adv(p);
    for (int i = 0; i < kwv.n; i++)
        nv_push(p->c, &pos, kwv.v[i]);
    jp_set_kids(x, &pos);
    x->kw = kw;
    x->n_kw = n_kw;
}

/* X(args) */
static jnode *call(jparser *p, jnode *x)
{
    jnode *y = jp_node(p, N_CALL);
    y->a = x;
    call_args(p, y);
    return y;
}

jnode *jp_filter_chain(jparser *p, jnode *operand, int start_inline)
{
    while (is_op(cur(p), "|") || start_inline) {
        if (!start_inline)
            adv(p);
        jnode *f = jp_node(p, N_FILTER);
        f->name = jp_expect_name(p);
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

jnode *jp_primary(jparser *p)
{
    jtok *t = cur(p);
    jnode *x;
    if (t->type == T_NAME) {
        adv(p);
        x = jp_node(p, N_CONST);
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
        x = jp_node(p, N_CONST);
        x->lit = jb_take(p->c, &b);
        return x;
    }
    if (t->type == T_INT || t->type == T_FLOAT) {
        adv(p);
        x = jp_node(p, N_CONST);
        x->lit = t->type == T_INT ? jv_int(t->i) : jv_float(t->f);
        return x;
    }
    if (is_op(t, "(")) {
        adv(p);
        x = jp_tuple(p, 0, 1, NULL, 1);
        jp_expect_op(p, ")");
        return x;
    }
    if (is_op(t, "[") || is_op(t, "{")) {
        int dict = is_op(t, "{");
        adv(p);
        x = jp_node(p, dict ? N_DICT : N_LIST);
        nvec v = {0};
        const char *close = dict ? "}" : "]";
        while (!is_op(cur(p), close)) {
            if (v.n)
                jp_expect_op(p, ",");
            if (is_op(cur(p), close))
                break;
            nv_push(p->c, &v, jp_expr(p, 1));
            if (dict) {
                jp_expect_op(p, ":");
                nv_push(p->c, &v, jp_expr(p, 1));
            }
        }
        adv(p);
        jp_set_kids(x, &v);
        return x;
    }
    jp_fail(p, "unexpected token in an expression");
}

static jnode *subscribed(jparser *p)
{
    jnode *parts[3] = {NULL, NULL, NULL};
    if (!is_op(cur(p), ":")) {
        jnode *e = jp_expr(p, 1);
        if (!is_op(cur(p), ":"))
            return e;
        parts[0] = e;
    }
    jnode *x = jp_node(p, N_SLICE);
    adv(p); /* the first ':' */
    if (!is_op(cur(p), ":") && !is_op(cur(p), "]") && !is_op(cur(p), ","))
        parts[1] = jp_expr(p, 1);
    if (is_op(cur(p), ":")) {
        adv(p);
        if (!is_op(cur(p), "]") && !is_op(cur(p), ","))
            parts[2] = jp_expr(p, 1);
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
                y = jp_node(p, N_ATTR);
                y->name = t->s;
            } else if (t->type == T_INT) {
                y = jp_node(p, N_ITEM);
                y->b = jp_node(p, N_CONST);
                y->b->lit = jv_int(t->i);
            } else
                jp_fail(p, "expected a name or number after '.'");
            y->a = x;
            x = y;
        } else if (is_op(cur(p), "[")) {
            adv(p);
            nvec v = {0};
            while (!is_op(cur(p), "]")) {
                if (v.n)
                    jp_expect_op(p, ",");
                nv_push(p->c, &v, subscribed(p));
            }
            adv(p);
            if (v.n == 0)
                jp_fail(p, "empty subscript");
            jnode *key = v.v[0];
            if (v.n > 1) {
                key = jp_node(p, N_TUPLE);
                jp_set_kids(key, &v);
            }
            if (key->kind == N_SLICE) {
                key->a = x;
                x = key;
            } else {
                jnode *y = jp_node(p, N_ITEM);
                y->a = x;
                y->b = key;
                x = y;
            }
        } else if (is_op(cur(p), "("))
            x = call(p, x);
        else
            return x;
    }
}

static jnode *test(jparser *p, jnode *x)
{
    adv(p); /* is */
    jnode *t = jp_node(p, N_TEST);
    if (is_name(cur(p), "not")) {
        adv(p);
        t->flag = 1;
    }
    t->name = jp_expect_name(p);
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
            jp_fail(p, "tests cannot be chained with is");
        nvec v = {0};
        nv_push(p->c, &v, postfix(p, jp_primary(p)));
        jp_set_kids(t, &v);
    }
    return t;
}

static jnode *filter_expr(jparser *p, jnode *x)
{
    for (;;) {
        if (is_op(cur(p), "|"))
            x = jp_filter_chain(p, x, 0);
        else if (is_name(cur(p), "is"))
            x = test(p, x);
        else if (is_op(cur(p), "("))
            x = call(p, x);
        else
            return x;
    }
}

void jp_deeper(jparser *p)
{
    if (++p->c->depth > p->c->lim.max_depth)
        jfail(p->c, JINJA_ESYNTAX, "line %d: expression nested deeper than %d levels", cur(p)->line,
              p->c->lim.max_depth);
}

static jnode *unary(jparser *p, int with_filter)
{
    jp_deeper(p);
    jnode *x;
    if (is_op(cur(p), "-") || is_op(cur(p), "+")) {
        x = jp_node(p, is_op(cur(p), "-") ? N_NEG : N_POS);
        adv(p);
        x->a = unary(p, 0);
    } else
        x = jp_primary(p);
    x = postfix(p, x);
    if (with_filter)
        x = filter_expr(p, x);
    p->c->depth--;
    return x;
}

static jnode *binary(jparser *p, jnode *a, int op, jnode *b)
{
    jnode *x = jp_node(p, N_BIN);
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
    jnode *c = jp_node(p, N_CONCAT);
    nvec v = {0};
    nv_push(p->c, &v, x);
    while (is_op(cur(p), "~")) {
        adv(p);
        nv_push(p->c, &v, parse_math2(p));
    }
    jp_set_kids(c, &v);
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
            jp_fail(p, "too many chained comparisons");
        ops[v.n] = (uint8_t)op;
        nv_push(p->c, &v, parse_math1(p));
    }
    if (!v.n)
        return x;
    jnode *c = jp_node(p, N_CMP);
    c->a = x;
    jp_set_kids(c, &v);
    c->ops = ja_alloc(p->c, (size_t)v.n);
    memcpy(c->ops, ops, (size_t)v.n);
    return c;
}

static jnode *parse_not(jparser *p)
{
    if (is_name(cur(p), "not")) {
        jnode *x = jp_node(p, N_NOT);
        adv(p);
        jp_deeper(p);
        x->a = parse_not(p);
        p->c->depth--;
        return x;
    }
    return parse_compare(p);
}

/* NEXT ("and"|"or" NEXT)*: WORD's node KIND, left to right */
static jnode *parse_logic(jparser *p, const char *word, int kind, jnode *(*next)(jparser *))
{
    jnode *x = next(p);
    while (is_name(cur(p), word)) {
        adv(p);
        jnode *y = jp_node(p, kind);
        y->a = x;
        y->b = next(p);
        x = y;
    }
    return x;
}

static jnode *parse_and(jparser *p) { return parse_logic(p, "and", N_AND, parse_not); }
static jnode *parse_or(jparser *p) { return parse_logic(p, "or", N_OR, parse_and); }

jnode *jp_expr(jparser *p, int condexpr)
{
    jp_deeper(p);
    jnode *x = parse_or(p);
    while (condexpr && is_name(cur(p), "if")) {
        adv(p);
        p->soft++;
        jnode *y = jp_node(p, N_COND);
        y->b = x;
        y->a = parse_or(p);
        if (is_name(cur(p), "else")) {
            adv(p);
            y->c = jp_expr(p, 1);
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

jnode *jp_tuple(jparser *p, int simplified, int condexpr, const char *end_name, int explicit)
{
    nvec v = {0};
    int is_tuple = 0;
    int line = cur(p)->line;
    for (;;) {
        if (v.n)
            jp_expect_op(p, ",");
        if (tuple_end(p, end_name))
            break;
        nv_push(p->c, &v, simplified ? jp_primary(p) : jp_expr(p, condexpr));
        if (is_op(cur(p), ","))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (v.n)
            return v.v[0];
        if (!explicit)
            jp_fail(p, "expected an expression");
    }
    jnode *x = jp_node(p, N_TUPLE);
    x->line = line;
    jp_set_kids(x, &v);
    return x;
}
