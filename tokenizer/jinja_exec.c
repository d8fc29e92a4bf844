/* jinja_exec.c - statements and the render: output, if, for (a fresh scope each iteration,
 * as Jinja2 compiles it: what a loop body sets is gone after the iteration; the loop
 * variable; else; break / continue; recursive loops), set (names, tuples, namespace
 * attributes, blocks), macros and call blocks (their own scope over the one they were
 * defined in; missing arguments are Undefined), filter blocks, with. Then the render
 * context's entry points (jinja.h) with their limits.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

enum { FLOW_NEXT, FLOW_BREAK, FLOW_CONTINUE };

jv jfilter_chain(jctx *c, jscope *s, const jnode *chain, jv operand);

static jscope *scope_new(jctx *c, jscope *up)
{
    jscope *s = ja_alloc(c, sizeof *s);
    s->up = up;
    return s;
}

void jcount_iter(jctx *c)
{
    if (++c->n_iter > c->lim.max_iterations)
        jfail(c, JINJA_ELIMIT, "the template ran more than %ld loop iterations", c->lim.max_iterations);
}

static void assign(jctx *c, jscope *s, const jnode *target, jv v)
{
    if (target->kind == N_NAME) {
        jscope_set(c, s, target->name, v);
        return;
    }
    const jlist *l = jv_iter(c, v);
    if ((int)l->n != target->n_kid)
        JERR(c, "line %d: %s values to unpack (expected %d, got %zu)", target->line,
             (int)l->n > target->n_kid ? "too many" : "not enough", target->n_kid, l->n);
    for (int i = 0; i < target->n_kid; i++)
        assign(c, s, target->kid[i], l->v[i]);
}

/* runs BODY with output into a new buffer; the text */
static jv capture(jctx *c, jscope *s, const jnode *body)
{
    jbuf b = {0}, *saved = c->out;
    c->out = &b;
    jexec(c, s, body);
    c->out = saved;
    return jb_take(c, &b);
}

/* the loop body over ITEMS at DEPTH; output goes to c->out */
static void run_loop(jctx *c, jscope *s, const jnode *x, const jlist *items, int depth)
{
    jloop *lp = ja_alloc(c, sizeof *lp);
    lp->depth = depth;
    lp->for_node = x;
    lp->scope = s;
    if (x->n_kid) { /* "for a in b if cond": the loop sees only what passes */
        jv kept = jv_list(c, 0);
        for (size_t i = 0; i < items->n; i++) {
            jcount_iter(c);
            jscope *t = scope_new(c, s);
            assign(c, t, x->a, items->v[i]);
            if (jv_truthy(jeval(c, t, x->kid[0])))
                jl_push(c, kept.l, items->v[i]);
        }
        items = kept.l;
    }
    lp->items = items;
    if (items->n == 0) {
        if (x->d)
            jexec(c, s, x->d);
        return;
    }
    jv loopv = {.t = JV_LOOP};
    loopv.lp = lp;
    for (lp->i = 0; lp->i < items->n; lp->i++) {
        jcount_iter(c);
        jscope *t = scope_new(c, s);
        assign(c, t, x->a, items->v[lp->i]);
        jscope_set(c, t, "loop", loopv);
        if (jexec(c, t, x->c) == FLOW_BREAK)
            break;
    }
}

static jv call_macro(jctx *c, const jmacro *m, int n_pos, const jv *pos, int n_kw, const char **kw,
                     const jv *kwv)
{
    const jnode *d = m->def;
    if (++c->call_depth > c->lim.max_depth)
        jfail(c, JINJA_ELIMIT, "macro calls nested deeper than %d", c->lim.max_depth);
    jscope *s = scope_new(c, m->closure);
    int n_def = d->n_kid, first_def = d->n_kw - n_def;
    jv varargs = jv_list(c, 0), kwargs = jv_dict(c);
    for (int i = 0; i < n_pos; i++) {
        if (i < d->n_kw)
            jscope_set(c, s, d->kw[i], pos[i]);
        else
            jl_push(c, varargs.l, pos[i]);
    }
    for (int k = 0; k < n_kw; k++) {
        int found = 0;
        for (int i = 0; i < d->n_kw && !found; i++)
            if (!strcmp(kw[k], d->kw[i])) {
                if (i < n_pos)
                    JERR(c, "macro '%s' got multiple values for argument '%s'", d->name, kw[k]);
                jscope_set(c, s, d->kw[i], kwv[k]);
                found = 1;
            }
        if (!found)
            jd_sets(c, kwargs.d, kw[k], kwv[k]);
    }
    for (int i = n_pos; i < d->n_kw; i++)
        if (!jd_gets(&s->vars, d->kw[i]))
            jscope_set(c, s, d->kw[i], i >= first_def ? jeval(c, s, d->kid[i - first_def]) : jv_undef(d->kw[i]));
    jscope_set(c, s, "varargs", varargs);
    jscope_set(c, s, "kwargs", kwargs);
    jv out = capture(c, s, d->a);
    c->call_depth--;
    return out;
}

jv jcall(jctx *c, jscope *s, jv f, int n_pos, const jv *pos, int n_kw, const char **kw,
         const jv *kwv, int line)
{
    switch (f.t) {
    case JV_MACRO: return call_macro(c, f.m, n_pos, pos, n_kw, kw, kwv);
    case JV_FUNC: return jglobal_call(c, (int)f.i, n_pos, pos, n_kw, kw, kwv);
    case JV_METHOD:
        if (f.b->self.t == JV_LOOP) {
            jloop *lp = f.b->self.lp;
            if (!strcmp(f.b->name, "cycle")) {
                if (n_pos == 0)
                    JERR(c, "no items for cycling given");
                return pos[lp->i % (size_t)n_pos];
            }
            jv now = jv_list(c, 0); /* changed(*values) */
            for (int i = 0; i < n_pos; i++)
                jl_push(c, now.l, pos[i]);
            int changed = !lp->have_changed || !jv_eq(c, now, lp->last_changed);
            lp->last_changed = now;
            lp->have_changed = 1;
            return jv_bool(changed);
        }
        return jmethod(c, f.b->self, f.b->name, n_pos, pos, n_kw, kw, kwv);
    case JV_LOOP: {
        const jnode *x = f.lp->for_node;
        if (!x->flag)
            JERR(c, "line %d: the loop is not recursive", line);
        if (n_pos != 1)
            JERR(c, "line %d: loop() takes one iterable", line);
        if (++c->call_depth > c->lim.max_depth)
            jfail(c, JINJA_ELIMIT, "recursive loop deeper than %d", c->lim.max_depth);
        jbuf b = {0}, *saved = c->out;
        c->out = &b;
        run_loop(c, f.lp->scope, x, jv_iter(c, pos[0]), f.lp->depth + 1);
        c->out = saved;
        c->call_depth--;
        return jb_take(c, &b);
    }
    case JV_UNDEF:
        JERR(c, "line %d: '%s' is undefined", line, f.name ? f.name : "value");
    default:
        JERR(c, "line %d: '%s' object is not callable", line, jv_type_name(f));
    }
}

/* One statement node. One function over 80 lines: a dispatch over the statement node kinds,
 * one short case each. */
static int exec(jctx *c, jscope *s, const jnode *x)
{
    switch (x->kind) {
    case N_BODY:
        for (int i = 0; i < x->n_kid; i++) {
            int flow = jexec(c, s, x->kid[i]);
            if (flow != FLOW_NEXT)
                return flow;
        }
        return FLOW_NEXT;
    case N_TEXT: jb_add(c, c->out, x->lit.s->p, x->lit.s->n); return FLOW_NEXT;
    case N_OUT: jv_to_str(c, c->out, jeval(c, s, x->a)); return FLOW_NEXT;
    case N_IF:
        for (;;) { /* an elif chain without recursion */
            if (jv_truthy(jeval(c, s, x->a)))
                return jexec(c, s, x->b);
            if (!x->c)
                return FLOW_NEXT;
            if (x->c->kind != N_IF)
                return jexec(c, s, x->c);
            x = x->c;
        }
    case N_FOR: {
        jv it = jeval(c, s, x->b);
        run_loop(c, s, x, jv_iter(c, it), 0);
        return FLOW_NEXT;
    }
    case N_SET: case N_SETBLOCK: {
        jv v = x->kind == N_SET ? jeval(c, s, x->b) : capture(c, s, x->b);
        if (x->kind == N_SETBLOCK && x->c)
            v = jfilter_chain(c, s, x->c, v);
        if (x->a->kind == N_NSREF) {
            jv ns = jeval(c, s, x->a->a);
            if (ns.t != JV_NS)
                JERR(c, "line %d: cannot assign attribute on non-namespace object", x->line);
            jd_sets(c, ns.d, x->a->name, v);
        } else
            assign(c, s, x->a, v);
        return FLOW_NEXT;
    }
    case N_MACRO: {
        jv m = {.t = JV_MACRO};
        m.m = ja_alloc(c, sizeof *m.m);
        m.m->def = x;
        m.m->closure = s;
        jscope_set(c, s, x->name, m);
        return FLOW_NEXT;
    }
    case N_CALLBLOCK: { /* caller() renders the block's body, a macro of the signature */
        jscope *t = scope_new(c, s);
        jv m = {.t = JV_MACRO};
        m.m = ja_alloc(c, sizeof *m.m);
        jnode *def = ja_alloc(c, sizeof *def);
        *def = *x;
        def->kind = N_MACRO;
        def->name = "caller";
        def->a = x->b;
        m.m->def = def;
        m.m->closure = s;
        jscope_set(c, t, "caller", m);
        jv f = jeval(c, t, x->a->a);
        if (f.t == JV_MACRO) { /* the called macro sees caller */
            jmacro *called = ja_alloc(c, sizeof *called);
            *called = *f.m;
            jscope *cl = scope_new(c, called->closure);
            jscope_set(c, cl, "caller", m);
            called->closure = cl;
            f.m = called;
        }
        jnode call = *x->a;
        jv out;
        {
            jnode fake = {.kind = N_CONST};
            fake.lit = f;
            call.a = &fake;
            out = jeval(c, t, &call);
        }
        jv_to_str(c, c->out, out);
        return FLOW_NEXT;
    }
    case N_FILTERBLOCK:
        jv_to_str(c, c->out, jfilter_chain(c, s, x->a, capture(c, s, x->b)));
        return FLOW_NEXT;
    case N_WITH: {
        jscope *t = scope_new(c, s);
        for (int i = 0; i + 1 < x->n_kid; i += 2)
            assign(c, t, x->kid[i], jeval(c, s, x->kid[i + 1]));
        return jexec(c, t, x->a);
    }
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    default:
        JERR(c, "line %d: not a statement", x->line);
    }
}

int jexec(jctx *c, jscope *s, const jnode *x)
{
    return JNESTED(c, x, exec(c, s, x));
}

/* ---- jinja.h */

jinja_limits jinja_default_limits(void)
{
    return (jinja_limits){.max_output = 16u << 20, .max_memory = 256u << 20,
                          .max_iterations = 1000000, .max_depth = 200};
}

jctx *jinja_ctx_new(const jinja_limits *lim)
{
    jctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->lim = lim ? *lim : jinja_default_limits();
    c->a.cap = c->lim.max_memory;
    return c;
}

void jinja_ctx_free(jctx *c)
{
    if (!c)
        return;
    ja_free_all(&c->a);
    free(c);
}

const char *jinja_ctx_error(const jctx *c) { return c->err; }

int jinja_run(jctx *c, void (*fn)(jctx *c, void *arg), void *arg)
{
    c->jmp_set = 1;
    c->depth = 0;
    if (setjmp(c->jmp)) {
        c->jmp_set = 0;
        return c->code;
    }
    fn(c, arg);
    c->jmp_set = 0;
    return 0;
}

const char *jinja_render(jctx *c, const jinja_tpl *t, size_t *n)
{
    jbuf out = {0};
    c->out = &out;
    c->n_iter = 0;
    c->call_depth = 0;
    jscope *root = scope_new(c, NULL);
    jexec(c, root, t->body);
    c->out = NULL;
    *n = out.n;
    return out.p ? out.p : "";
}

void jinja_set_json(jctx *c, const char *name, const char *text, size_t n)
{
    char *key = ja_alloc(c, strlen(name) + 1);
    strcpy(key, name);
    jd_sets(c, &c->globals, key, jjson_parse(c, text, n));
}
