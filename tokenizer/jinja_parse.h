/* jinja_parse.h - the parser's state and token helpers, shared by jinja_parse.c (statements)
 * and jinja_parse_expr.c (expressions). */
#ifndef CINDER_JINJA_PARSE_H
#define CINDER_JINJA_PARSE_H

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

void nv_push(jctx *c, nvec *v, jnode *x);
static inline jtok *cur(jparser *p) { return &p->t[p->i]; }
static inline jtok *peek(jparser *p, int k) { return &p->t[p->i + k < p->n ? p->i + k : p->n - 1]; }
static inline jtok *adv(jparser *p)
{
    jtok *t = cur(p);
    if (p->i < p->n - 1)
        p->i++;
    return t;
}
static inline int is_op(const jtok *t, const char *op) { return t->type == T_OP && !strcmp(t->s, op); }
static inline int is_name(const jtok *t, const char *w) { return t->type == T_NAME && !strcmp(t->s, w); }
_Noreturn void jp_fail(jparser *p, const char *what);
void jp_expect_op(jparser *p, const char *op);
const char *jp_expect_name(jparser *p);
jnode *jp_node(jparser *p, int kind);
void jp_set_kids(jnode *x, nvec *v);
void jp_deeper(jparser *p);

/* expressions (jinja_parse_expr.c) */
jnode *jp_expr(jparser *p, int condexpr);            /* with "x if c else y" when CONDEXPR */
jnode *jp_primary(jparser *p);
/* a, b, ... (a tuple when there is a comma); SIMPLIFIED: primaries only (assignment
 * targets); END_NAME: a name that also ends it; EXPLICIT: inside parentheses */
jnode *jp_tuple(jparser *p, int simplified, int condexpr, const char *end_name, int explicit);
jnode *jp_filter_chain(jparser *p, jnode *operand, int start_inline);

#endif
