/* jinja.h - a Jinja template interpreter for chat templates, rendering as Python's Jinja2
 * does under transformers' apply_chat_template: an ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks, the loopcontrols extension, Undefined for missing names,
 * tojson as json.dumps(ensure_ascii=False) keeping key order, raise_exception and
 * strftime_now as globals.
 *
 * The template (trusted: the model's, or --chat-template) is parsed once; renders run on any
 * thread at once (the tree is read only). Variables (messages, tools ...) are data: nothing
 * in them is ever parsed as template code. Every render is bounded (jinja_limits) and every
 * failure is an error code with a message, never a crash.
 *
 * Files: jinja_lex.c (tokens), jinja_parse.c (tree), jinja_eval.c (expressions),
 * jinja_exec.c (statements, render), jinja_filters.c (filters, tests), jinja_methods.c
 * (str / dict / list methods, globals), jinja_value.c (values, arena), jinja_pystr.c
 * (Python's str methods), jinja_json.c (JSON in and out).
 */
#ifndef CINDER_JINJA_H
#define CINDER_JINJA_H

#include <stddef.h>
#include <stdint.h>

/* error codes */
enum {
    JINJA_ERAISE = -1,   /* the template called raise_exception(message) */
    JINJA_EERROR = -2,   /* a template error at render time (type error, undefined ...) */
    JINJA_ELIMIT = -3,   /* a limit below was reached */
    JINJA_ESYNTAX = -4,  /* the template does not parse */
    JINJA_EINPUT = -5,   /* bad render variables (invalid JSON ...) */
};

typedef struct {
    size_t max_output;   /* bytes of rendered text */
    size_t max_memory;   /* bytes the render may allocate */
    long max_iterations; /* loop iterations, all loops together */
    int max_depth;       /* expression / statement nesting, macro calls included */
    int64_t now;         /* strftime_now's clock (seconds since the epoch); 0: the real one */
} jinja_limits;

/* Defaults: 16 MiB of text, 256 MiB of memory, 1e6 iterations, depth 200. */
jinja_limits jinja_default_limits(void);

typedef struct jinja_tpl jinja_tpl;
typedef struct jctx jctx;

/* Parses SRC [N]. NULL with a message (line included) in ERR on a syntax error. */
jinja_tpl *jinja_parse(const char *src, size_t n, char *err, size_t n_err);
void jinja_free(jinja_tpl *t);
/* 1 when a for loop of the template iterates over an attribute or item named "content"
 * (vLLM's test for templates that take OpenAI's list-of-parts content as it is) */
int jinja_iterates_content(const jinja_tpl *t);

/* A render context: its variables and arena. */
jctx *jinja_ctx_new(const jinja_limits *lim);
void jinja_ctx_free(jctx *c);
/* Runs FN(C, ARG) where errors may unwind (value building, jinja_render): 0, or JINJA_E*
 * with the message in jinja_ctx_error(C). */
int jinja_run(jctx *c, void (*fn)(jctx *c, void *arg), void *arg);
const char *jinja_ctx_error(const jctx *c);
/* Inside jinja_run: renders T with C's variables; the text stays valid until
 * jinja_ctx_free. */
const char *jinja_render(jctx *c, const jinja_tpl *t, size_t *n);
/* Inside jinja_run: sets the variable NAME to the JSON value TEXT [N] (JINJA_EINPUT if
 * it is not JSON). */
void jinja_set_json(jctx *c, const char *name, const char *text, size_t n);

#endif
