/* jinja_parse.c - tokens to a syntax tree, with Jinja2's grammar (expressions in
 * jinja_parse_expr.c):
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

#include "jinja_parse.h"

void nv_push(jctx *c, nvec *v, jnode *x)
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

_Noreturn void jp_fail(jparser *p, const char *what)
{
    jfail(p->c, JINJA_ESYNTAX, "line %d: %s (at '%s')", cur(p)->line, what, describe(cur(p)));
}

void jp_expect_op(jparser *p, const char *op)
{
    if (!is_op(cur(p), op)) {
        char m[64];
        snprintf(m, sizeof m, "expected '%s'", op);
        jp_fail(p, m);
    }
    adv(p);
}

const char *jp_expect_name(jparser *p)
{
    if (cur(p)->type != T_NAME)
        jp_fail(p, "expected a name");
    return adv(p)->s;
}

jnode *jp_node(jparser *p, int kind)
{
    jnode *x = ja_alloc(p->c, sizeof *x);
    x->kind = (uint8_t)kind;
    x->line = cur(p)->line;
    return x;
}

void jp_set_kids(jnode *x, nvec *v)
{
    x->kid = v->v;
    x->n_kid = v->n;
}

static void check_target(jparser *p, const jnode *t)
{
    if (t->kind == N_NAME)
        return;
    if (t->kind != N_TUPLE)
        jp_fail(p, "cannot assign to this expression");
    for (int i = 0; i < t->n_kid; i++)
        check_target(p, t->kid[i]);
}

static jnode *assign_target(jparser *p, const char *end_name, int with_namespace)
{
    if (with_namespace && cur(p)->type == T_NAME && is_op(peek(p, 1), ".")) {
        jnode *x = jp_node(p, N_NSREF);
        x->a = jp_node(p, N_NAME);
        x->a->name = adv(p)->s;
        adv(p);
        x->name = jp_expect_name(p);
        return x;
    }
    jnode *t = jp_tuple(p, 1, 0, end_name, 0);
    check_target(p, t);
    return t;
}

static jnode *body(jparser *p, const char *const *ends);

/* the end of a statement's opening tag, then its body up to one of ENDS (left unread) */
static jnode *block(jparser *p, const char *const *ends)
{
    if (cur(p)->type != T_BLOCK_END)
        jp_fail(p, "expected the end of the statement");
    adv(p);
    return body(p, ends);
}

/* the closing tag's name (one of ENDS) was seen: consume it */
static const char *end_tag(jparser *p) { return adv(p)->s; }

static void signature(jparser *p, jnode *x)
{
    jp_expect_op(p, "(");
    nvec defs = {0};
    const char **names = ja_alloc(p->c, 64 * sizeof *names);
    int n = 0;
    while (!is_op(cur(p), ")")) {
        if (n)
            jp_expect_op(p, ",");
        if (n == 64)
            jp_fail(p, "too many macro parameters");
        names[n++] = jp_expect_name(p);
        if (is_op(cur(p), "=")) {
            adv(p);
            nv_push(p->c, &defs, jp_expr(p, 1));
        } else if (defs.n)
            jp_fail(p, "non-default argument follows default argument");
    }
    adv(p);
    x->kw = names;
    x->n_kw = n;
    jp_set_kids(x, &defs);
}

static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_FOR[] = {"else", "endfor", NULL};

/* an if (or elif) from its test on: X gets a=test b=body c=elif chain or else body */
static void if_chain(jparser *p, jnode *x)
{
    x->kind = N_IF;
    x->a = jp_tuple(p, 0, 0, NULL, 0);
    x->b = block(p, END_IF);
    const char *e = end_tag(p);
    if (!strcmp(e, "elif")) {
        x->c = jp_node(p, N_IF);
        if_chain(p, x->c);
    } else if (!strcmp(e, "else")) {
        static const char *const end[] = {"endif", NULL};
        x->c = block(p, end);
        end_tag(p);
    }
}

/* The statement of a "{%" tag: if, for, set, macro, call, filter, with, generation, break,
 * continue. One function over 80 lines: a dispatcher over the statement names, each case
 * parsing its tag and its body. */
static jnode *statement(jparser *p)
{
    jtok *t = cur(p);
    if (t->type != T_NAME)
        jp_fail(p, "expected a statement name");
    const char *w = adv(p)->s;
    jnode *x = jp_node(p, N_BODY);
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
            jp_fail(p, "expected 'in'");
        adv(p);
        x->b = jp_tuple(p, 0, 0, "recursive", 0);
        const jnode *it = x->b;
        if ((it->kind == N_ATTR && !strcmp(it->name, "content")) ||
            (it->kind == N_ITEM && it->b->kind == N_CONST && it->b->lit.t == JV_STR &&
             !strcmp(it->b->lit.s->p, "content")))
            p->iter_content = 1;
        if (is_name(cur(p), "if")) {
            adv(p);
            x->kid = ja_alloc(p->c, sizeof *x->kid);
            x->kid[0] = jp_expr(p, 1);
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
            x->b = jp_tuple(p, 0, 1, NULL, 0);
            return x;
        }
        if (x->a->kind != N_NAME && x->a->kind != N_NSREF)
            jp_fail(p, "a block set assigns one name");
        x->kind = N_SETBLOCK;
        x->c = is_op(cur(p), "|") ? jp_filter_chain(p, NULL, 0) : NULL;
        static const char *const end[] = {"endset", NULL};
        x->b = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "macro")) {
        x->kind = N_MACRO;
        x->name = jp_expect_name(p);
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
        x->a = jp_expr(p, 1);
        if (x->a->kind != N_CALL)
            jp_fail(p, "expected a call");
        static const char *const end[] = {"endcall", NULL};
        x->b = block(p, end);
        end_tag(p);
        return x;
    }
    if (!strcmp(w, "filter")) {
        x->kind = N_FILTERBLOCK;
        x->a = jp_filter_chain(p, NULL, 1);
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
                jp_expect_op(p, ",");
            nv_push(p->c, &v, assign_target(p, NULL, 0));
            jp_expect_op(p, "=");
            nv_push(p->c, &v, jp_expr(p, 1));
        }
        jp_set_kids(x, &v);
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
    jp_fail(p, "unknown tag");
}

/* statements and text up to a block tag named in ENDS (NULL: the end of the template) */
static jnode *body(jparser *p, const char *const *ends)
{
    jnode *b = jp_node(p, N_BODY);
    nvec v = {0};
    jp_deeper(p);
    for (;;) {
        jtok *t = cur(p);
        if (t->type == T_EOF) {
            if (ends) { /* the closing tag is the last of ENDS */
                int k = 0;
                while (ends[k + 1])
                    k++;
                jfail(p->c, JINJA_ESYNTAX, "line %d: unexpected end of template, expected '%s'", t->line, ends[k]);
            }
            break;
        }
        if (t->type == T_TEXT) {
            jnode *x = jp_node(p, N_TEXT);
            x->lit = jv_str(p->c, t->s, t->n);
            nv_push(p->c, &v, x);
            adv(p);
        } else if (t->type == T_VAR_BEGIN) {
            adv(p);
            jnode *x = jp_node(p, N_OUT);
            x->a = jp_tuple(p, 0, 1, NULL, 0);
            if (cur(p)->type != T_VAR_END)
                jp_fail(p, "expected the end of the print statement");
            adv(p);
            nv_push(p->c, &v, x);
        } else if (t->type == T_BLOCK_BEGIN) {
            adv(p);
            for (int i = 0; ends && ends[i]; i++)
                if (is_name(cur(p), ends[i])) {
                    jp_set_kids(b, &v);
                    p->c->depth--;
                    return b;
                }
            nv_push(p->c, &v, statement(p));
            if (cur(p)->type != T_BLOCK_END)
                jp_fail(p, "expected the end of the statement");
            adv(p);
        } else
            jp_fail(p, "unexpected token");
    }
    jp_set_kids(b, &v);
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
