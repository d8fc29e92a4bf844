/* jinja_impl.h - internals of the Jinja interpreter (jinja.h) shared by its files: values,
 * the syntax tree, the render context. Not an interface outside tokenizer/jinja_*.c and
 * chat.c (which builds the render variables as values).
 *
 * Memory: everything a parse or a render allocates comes from one arena (ja_*), freed in
 * one go; errors unwind with longjmp to jinja_run / jinja_parse, which is safe because
 * nothing else is held meanwhile (no malloc outside the arena, no lock, no file).
 *
 * Values follow Python's semantics as Jinja2 uses them (str of a list is its repr, 1 == 1.0,
 * True + 1 == 2, code point indexing of strings, insertion-ordered dicts); Jinja2's
 * Undefined is a value of its own (empty when printed, false, iterable and empty, an error
 * for arithmetic and attribute access).
 */
#ifndef CINDER_JINJA_IMPL_H
#define CINDER_JINJA_IMPL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "jinja.h"

/* ---- arena */
typedef struct ja_chunk ja_chunk;
typedef struct {
    ja_chunk *head;
    size_t used, cap;        /* bytes handed out, limit (0: none) */
} jarena;

/* ---- values */
enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS,
    JV_MACRO, JV_FUNC, JV_METHOD, JV_LOOP,
};

typedef struct jstr { size_t n; char p[]; } jstr;   /* UTF-8, p[n] == 0 */
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jmacro jmacro;
typedef struct jbound jbound;
typedef struct jloop jloop;

typedef struct jv {
    uint8_t t;               /* JV_* */
    uint8_t tuple;           /* JV_LIST: a tuple (printed with parentheses) */
    union {
        int64_t i;           /* JV_BOOL (0/1), JV_INT, JV_FUNC (a builtin's id) */
        double f;
        const jstr *s;
        jlist *l;
        jdict *d;            /* JV_DICT, JV_NS */
        jmacro *m;
        jbound *b;
        jloop *lp;
        const char *name;    /* JV_UNDEF: the missing name (may be NULL) */
    };
} jv;

struct jlist { size_t n, cap; jv *v; };
struct jdict { size_t n, cap; jv *k, *v; };
struct jbound { jv self; const char *name; };   /* a method of a str, dict or list */

typedef struct jnode jnode;
typedef struct jscope jscope;
typedef struct jctx jctx;

/* ---- syntax tree: one node type for statements and expressions */
enum {
    /* statements */
    N_BODY, N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_BREAK, N_CONTINUE, N_WITH,
    /* expressions */
    N_CONST, N_NAME, N_LIST, N_TUPLE, N_DICT, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER,
    N_TEST, N_NEG, N_POS, N_NOT, N_AND, N_OR, N_BIN, N_CMP, N_COND, N_CONCAT, N_NSREF,
};

/* binary operators (N_BIN) and comparisons (N_CMP) */
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
       OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

struct jnode {
    uint8_t kind, op;
    uint8_t flag;            /* N_FOR: recursive; N_TEST: negated; N_SET: namespace target */
    int line;
    const char *name;        /* N_NAME, N_ATTR, N_FILTER, N_TEST, N_MACRO, N_NSREF (the attr) */
    jnode *a, *b, *c, *d;    /* children by kind (see jinja_parse.c) */
    jnode **kid;             /* list items, body statements, call arguments ... */
    int n_kid;
    const char **kw;         /* N_CALL / N_FILTER / N_TEST: keyword names of the last n_kw
                                kids; N_MACRO: parameter names */
    int n_kw;
    jnode *star, *dstar;     /* N_CALL: *args, **kwargs */
    uint8_t *ops;            /* N_CMP: n_kid operators */
    jv lit;                  /* N_CONST, N_TEXT */
};

struct jmacro {
    const jnode *def;        /* N_MACRO node: name, kw = params, kid = defaults, a = body */
    jscope *closure;
    const jnode *caller_body; /* a {% call %} block's body (macro named "caller") */
};

struct jloop {
    const jlist *items;
    size_t i;
    int depth;
    const jnode *for_node;   /* recursive loops call the body again */
    jscope *scope;
    jv last_changed;
    int have_changed;
};

/* ---- render context */
struct jscope {
    jscope *up;
    jdict vars;
};

struct jctx {
    jarena a;
    jmp_buf jmp;
    int jmp_set;
    int code;                /* JINJA_E* after an error */
    char err[512];
    jinja_limits lim;
    jdict globals;           /* the render variables */
    long n_iter;             /* loop iterations so far */
    int depth;               /* evaluation nesting */
    int call_depth;          /* macro calls */
    struct jbuf *out;        /* where output goes */
};

typedef struct jbuf { char *p; size_t n, cap; } jbuf;

/* ---- arena (jinja_value.c) */
void *ja_alloc(jctx *c, size_t n);
void ja_free_all(jarena *a);

/* ---- errors: format a message and unwind (never return) */
_Noreturn void jfail(jctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define JERR(c, ...) jfail((c), JINJA_EERROR, __VA_ARGS__)

/* ---- values (jinja_value.c) */
static inline jv jv_undef(const char *name) { jv v = {.t = JV_UNDEF}; v.name = name; return v; }
static inline jv jv_none(void) { jv v = {.t = JV_NONE}; return v; }
static inline jv jv_bool(int b) { jv v = {.t = JV_BOOL}; v.i = !!b; return v; }
static inline jv jv_int(int64_t i) { jv v = {.t = JV_INT}; v.i = i; return v; }
static inline jv jv_float(double f) { jv v = {.t = JV_FLOAT}; v.f = f; return v; }
jv jv_str(jctx *c, const char *s, size_t n);
jv jv_cstr(jctx *c, const char *s);
jv jv_list(jctx *c, size_t cap);
jv jv_dict(jctx *c);
void jl_push(jctx *c, jlist *l, jv v);
jv *jd_get(const jdict *d, jv key);            /* NULL when absent */
jv *jd_gets(const jdict *d, const char *key);
void jd_set(jctx *c, jdict *d, jv key, jv val);
void jd_sets(jctx *c, jdict *d, const char *key, jv val);
jv jd_items(jctx *c, const jdict *d);           /* [(key, value), ...] */
/* one level deeper (expression, statement, value); an error past max_depth (LINE for it) */
void jenter(jctx *c, int line);
/* The value of CALL run one level deeper (jenter for node X, then back): how jeval and jexec
 * count the nesting of expressions and statements (a GNU C statement expression). */
#define JNESTED(c, x, call)                                                                    \
    ({                                                                                         \
        jenter((c), (x)->line);                                                                \
        __typeof__(call) nested_ = (call);                                                     \
        (c)->depth--;                                                                          \
        nested_;                                                                               \
    })

const char *jv_type_name(jv v);
int jv_truthy(jv v);
int jv_eq(jctx *c, jv a, jv b);
int jv_cmp(jctx *c, jv a, jv b);                /* <0, 0, >0; error for unordered types */
int jv_is_num(jv v);                            /* bool, int, float */
double jv_num(jv v);
/* Python's str(V) appended to B (repr for containers; Undefined is empty) */
void jv_to_str(jctx *c, jbuf *b, jv v);
void jv_repr(jctx *c, jbuf *b, jv v);
jv jv_stringify(jctx *c, jv v);                 /* a JV_STR of str(V) */
void py_float_repr(double f, char *out);        /* 32 bytes */
/* the items of an iterable as a list: list/tuple itself, a string's characters, a dict's
 * keys, nothing for Undefined; error otherwise */
const jlist *jv_iter(jctx *c, jv v);
int64_t jv_len(jctx *c, jv v);

/* ---- output buffers */
void jb_add(jctx *c, jbuf *b, const char *s, size_t n);
static inline void jb_adds(jctx *c, jbuf *b, const char *s);
jv jb_take(jctx *c, jbuf *b);                    /* the buffer as a JV_STR */

/* ---- Python str helpers (jinja_pystr.c); S is valid UTF-8 */
int py_isspace(uint32_t cp);
int py_isprintable(uint32_t cp);
size_t py_ncp(const char *s, size_t n);                    /* code points */
size_t py_cp_off(const char *s, size_t n, int64_t i);      /* byte offset of code point I */
jv py_strip(jctx *c, jv s, jv chars, int left, int right);
jv py_split(jctx *c, jv s, jv sep, int64_t maxsplit, int from_right);
jv py_splitlines(jctx *c, jv s);
jv py_case(jctx *c, jv s, int mode);             /* PY_UPPER, PY_LOWER, PY_TITLE, PY_CAPITALIZE */
enum { PY_UPPER, PY_LOWER, PY_TITLE, PY_CAPITALIZE };
jv py_replace(jctx *c, jv s, jv old, jv new_, int64_t count);
int64_t py_find(jv s, jv sub, int from_right);  /* code point index or -1 */
int py_pred(jv s, const char *name, int *known); /* isdigit, isalpha ... */

/* ---- JSON (jinja_json.c) */
/* Parses JSON text into a value (ints stay ints, floats floats, keys in order). */
jv jjson_parse(jctx *c, const char *s, size_t n);
/* Python's json.dumps(V, ensure_ascii, indent, separators, sort_keys) appended to B */
typedef struct { int ensure_ascii, sort_keys; const jstr *indent; int has_indent;
                 const char *item_sep, *key_sep; } jjson_opts;
void jjson_dump(jctx *c, jbuf *b, jv v, const jjson_opts *o);

/* ---- lexer / parser (jinja_lex.c, jinja_parse.c) */
enum {
    T_EOF, T_TEXT, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END, T_NAME, T_STRING,
    T_INT, T_FLOAT, T_OP,
};
typedef struct {
    uint8_t type;
    int line;
    const char *s;           /* T_TEXT, T_NAME, T_STRING (decoded), T_OP: NUL-terminated */
    size_t n;
    int64_t i;
    double f;
} jtok;
/* Tokens of SRC as Jinja2 with trim_blocks and lstrip_blocks lexes them; *N_TOK set. */
jtok *jlex(jctx *c, const char *src, size_t n, int *n_tok);

struct jinja_tpl {
    jctx c;                  /* the parse's arena (the tree lives in it) */
    jnode *body;
    int iterates_content;    /* a for loop runs over some message's "content" (chat.c) */
};

int jfilter_known(const char *name);
int jtest_known(const char *name);

/* ---- evaluation (jinja_eval.c, jinja_exec.c, jinja_filters.c, jinja_methods.c) */
jv jeval(jctx *c, jscope *s, const jnode *e);
int jexec(jctx *c, jscope *s, const jnode *st);   /* FLOW_*: next, break, continue */
jv jfilter_chain(jctx *c, jscope *s, const jnode *chain, jv operand);
jv jcall(jctx *c, jscope *s, jv f, int n_pos, const jv *pos, int n_kw, const char **kw,
         const jv *kwv, int line);
jv jscope_get(jctx *c, jscope *s, const char *name);
void jscope_set(jctx *c, jscope *s, const char *name, jv v);
jv jgetattr(jctx *c, jv obj, const char *name);
jv jgetitem(jctx *c, jv obj, jv key);
jv jfilter(jctx *c, jscope *s, const char *name, jv v, int n_pos, const jv *pos, int n_kw,
           const char **kw, const jv *kwv);
int jtest(jctx *c, jscope *s, const char *name, jv v, int n_pos, const jv *pos);
jv jmethod(jctx *c, jv self, const char *name, int n_pos, const jv *pos, int n_kw,
           const char **kw, const jv *kwv);
int jmethod_exists(jv self, const char *name);
jv jglobal_call(jctx *c, int id, int n_pos, const jv *pos, int n_kw, const char **kw,
                const jv *kwv);
int jglobal_lookup(const char *name);           /* a builtin's id or -1 */
jv jbinop(jctx *c, int op, jv a, jv b);
int jv_contains(jctx *c, jv container, jv item);   /* Python's ITEM in CONTAINER */
void jcount_iter(jctx *c);

static inline void jb_adds(jctx *c, jbuf *b, const char *s) { jb_add(c, b, s, __builtin_strlen(s)); }

#endif
