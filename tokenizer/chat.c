/* chat.c - the chat templates of chat.h: finding and parsing the model's template, turning a
 * chat request into the template's variables (vLLM's normalisations), rendering on a thread
 * of its own with a large stack (the HTTP handler threads have 100 KB, and the interpreter
 * may nest as deep as its limits allow), and continue_final_message.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat.h"
#include "jinja_impl.h"
#include "../common/json_util.h"

struct chat_template {
    jinja_tpl *main;         /* the template ("default" of a named list) */
    jinja_tpl *tool_use;     /* a named list's "tool_use", for requests with tools */
    char *special;           /* JSON object of the special tokens */
};

#define RENDER_STACK (16u << 20)

static const char *const SPECIAL[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                                      "cls_token", "mask_token", NULL};

/* a token of tokenizer_config.json: "text" or {"content": "text"} */
static const char *config_token(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *special_tokens(const cJSON *cfg)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; SPECIAL[i]; i++) {
        const char *t = cfg ? config_token(cfg, SPECIAL[i]) : NULL;
        if (t)
            cJSON_AddStringToObject(o, SPECIAL[i], t);
    }
    const cJSON *extra = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens") : NULL;
    if (cJSON_IsArray(extra)) {
        cJSON *l = cJSON_AddArrayToObject(o, "additional_special_tokens"), *e;
        cJSON_ArrayForEach(e, extra) {
            const char *t = cJSON_IsString(e) ? e->valuestring
                          : cJSON_IsString(cJSON_GetObjectItem(e, "content")) ? cJSON_GetObjectItem(e, "content")->valuestring
                          : NULL;
            if (t)
                cJSON_AddItemToArray(l, cJSON_CreateString(t));
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static jinja_tpl *parse(const char *src, const char *where, char *err, size_t n_err)
{
    char msg[512];
    jinja_tpl *t = jinja_parse(src, strlen(src), msg, sizeof msg);
    if (!t)
        snprintf(err, n_err, "chat template of %s: %s", where, msg);
    return t;
}

int chat_template_load(chat_template **out, const char *model_dir, const char *file, char *err,
                       size_t n_err)
{
    *out = NULL;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir ? model_dir : ".");
    cJSON *cfg = model_dir && stat(path, &st) == 0 ? json_read_file(path, err, n_err) : NULL;
    if (model_dir && stat(path, &st) == 0 && !cfg)
        return -1;
    chat_template *t = calloc(1, sizeof *t);
    char *src = NULL;
    size_t n;
    int rc = -1;
    if (!t)
        goto fail;
    if (!file && model_dir) {
        snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
        if (stat(path, &st) == 0)
            file = path;
    }
    if (file) {
        if (!(src = file_read_all(file, &n, err, n_err)))
            goto fail;
        if (strlen(src) != n) {
            snprintf(err, n_err, "chat template %s holds a NUL byte", file);
            goto fail;
        }
        if (!(t->main = parse(src, file, err, n_err)))
            goto fail;
    } else {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *e;
        const cJSON *named = cJSON_IsArray(ct) ? ct : NULL; /* [{"name", "template"}, ...] */
        if (cJSON_IsString(ct) && !(t->main = parse(ct->valuestring, "tokenizer_config.json", err, n_err)))
            goto fail;
        cJSON_ArrayForEach(e, named) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (!cJSON_IsString(name) || !cJSON_IsString(tpl))
                continue;
            jinja_tpl **slot = !strcmp(name->valuestring, "default") ? &t->main
                             : !strcmp(name->valuestring, "tool_use") ? &t->tool_use : NULL;
            if (slot && !(*slot = parse(tpl->valuestring, name->valuestring, err, n_err)))
                goto fail;
        }
    }
    if (!t->main && !t->tool_use) {
        snprintf(err, n_err, "the model has no chat template (tokenizer_config.json has no "
                             "chat_template, there is no chat_template.jinja); start with "
                             "--chat-template FILE");
        rc = 0;
        goto fail;
    }
    if (!(t->special = special_tokens(cfg)))
        goto fail;
    free(src);
    cJSON_Delete(cfg);
    *out = t;
    return 0;
fail:
    free(src);
    cJSON_Delete(cfg);
    chat_template_free(t);
    return rc;
}

chat_template *chat_template_parse(const char *src, char *err, size_t n_err)
{
    chat_template *t = calloc(1, sizeof *t);
    if (!t || !(t->special = strdup("{}")) || !(t->main = parse(src, "the source", err, n_err))) {
        chat_template_free(t);
        return NULL;
    }
    return t;
}

void chat_template_free(chat_template *t)
{
    if (!t)
        return;
    jinja_free(t->main);
    jinja_free(t->tool_use);
    free(t->special);
    free(t);
}

/* ---- one render */
typedef struct {
    const chat_template *t;
    const char *body, *vars;
    size_t n;
    int raw;                  /* VARS as they are (chat_render_vars) */
    const char *out;
    size_t len;
} job;

_Noreturn static void bad_request(jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_request(jctx *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jfail(c, JINJA_EINPUT, "%s", msg);
}

static jv field(jv obj, const char *name)
{
    jv *v = obj.t == JV_DICT ? jd_gets(obj.d, name) : NULL;
    return v ? *v : jv_undef(name);
}

/* content as the template takes it: a string, or a list of text parts (PARTS) */
static jv content_for(jctx *c, jv content, int parts, int i)
{
    if (content.t == JV_UNDEF || content.t == JV_NONE)
        return parts ? jv_list(c, 0) : jv_cstr(c, "");
    jv list = jv_list(c, 1);
    if (content.t == JV_STR) {
        if (!parts)
            return content;
        jv p = jv_dict(c);
        jd_sets(c, p.d, "type", jv_cstr(c, "text"));
        jd_sets(c, p.d, "text", content);
        jl_push(c, list.l, p);
        return list;
    }
    if (content.t != JV_LIST)
        bad_request(c, "messages[%d].content must be a string or a list of parts", i);
    jbuf joined = {0};
    for (size_t k = 0; k < content.l->n; k++) {
        jv part = content.l->v[k], type = field(part, "type"), text = field(part, "text");
        if (type.t != JV_STR || strcmp(type.s->p, "text") || text.t != JV_STR)
            bad_request(c, "messages[%d].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are "
                           "supported (this server serves text models)", i, k);
        if (k)
            jb_add(c, &joined, "\n", 1);
        jb_add(c, &joined, text.s->p, text.s->n);
        jv p = jv_dict(c);
        jd_sets(c, p.d, "type", type);
        jd_sets(c, p.d, "text", text);
        jl_push(c, list.l, p);
    }
    return parts ? list : jb_take(c, &joined);
}

static jv messages_for(jctx *c, jv msgs, int parts)
{
    if (msgs.t != JV_LIST || msgs.l->n == 0)
        bad_request(c, "\"messages\" must be a non-empty list");
    jv out = jv_list(c, msgs.l->n);
    for (size_t i = 0; i < msgs.l->n; i++) {
        jv m = msgs.l->v[i];
        if (m.t != JV_DICT || field(m, "role").t != JV_STR)
            bad_request(c, "messages[%zu] must be an object with a string \"role\"", i);
        jv copy = jv_dict(c);
        for (size_t k = 0; k < m.d->n; k++)
            jd_set(c, copy.d, m.d->k[k], m.d->v[k]);
        jd_sets(c, copy.d, "content", content_for(c, field(m, "content"), parts, (int)i));
        jv calls = field(m, "tool_calls");
        if (calls.t == JV_LIST) {
            jv nc = jv_list(c, calls.l->n);
            for (size_t k = 0; k < calls.l->n; k++) {
                jv call = calls.l->v[k], fn = field(call, "function");
                if (call.t != JV_DICT || fn.t != JV_DICT || field(fn, "name").t != JV_STR)
                    bad_request(c, "messages[%zu].tool_calls[%zu] must have a function with a name", i, k);
                jv args = field(fn, "arguments"), nf = jv_dict(c), ncall = jv_dict(c);
                for (size_t q = 0; q < fn.d->n; q++)
                    jd_set(c, nf.d, fn.d->k[q], fn.d->v[q]);
                if (args.t == JV_STR && args.s->n) {
                    cJSON *probe = cJSON_ParseWithLength(args.s->p, args.s->n);
                    if (!probe)
                        bad_request(c, "messages[%zu].tool_calls[%zu].function.arguments is not JSON", i, k);
                    cJSON_Delete(probe);
                    jd_sets(c, nf.d, "arguments", jjson_parse(c, args.s->p, args.s->n));
                } else if (args.t != JV_DICT && args.t != JV_LIST)
                    jd_sets(c, nf.d, "arguments", jv_dict(c));
                for (size_t q = 0; q < call.d->n; q++)
                    jd_set(c, ncall.d, call.d->k[q], call.d->v[q]);
                jd_sets(c, ncall.d, "function", nf);
                jl_push(c, nc.l, ncall);
            }
            jd_sets(c, copy.d, "tool_calls", nc);
        } else if (calls.t != JV_UNDEF && calls.t != JV_NONE)
            bad_request(c, "messages[%zu].tool_calls must be a list", i);
        jl_push(c, out.l, copy);
    }
    return out;
}

static int flag(jctx *c, jv req, const char *name, int dflt)
{
    jv v = field(req, name);
    if (v.t == JV_UNDEF || v.t == JV_NONE)
        return dflt;
    if (v.t != JV_BOOL)
        bad_request(c, "\"%s\" must be a boolean", name);
    return (int)v.i;
}

/* transformers' continue_final_message: the prompt ends where the last message's text does */
static void cut_after_final(jctx *c, jv final, const char *out, size_t *len)
{
    jv text = final;
    if (final.t == JV_LIST) {
        text = jv_undef(NULL);
        for (size_t k = final.l->n; k-- > 0 && text.t == JV_UNDEF;)
            if (field(final.l->v[k], "text").t == JV_STR)
                text = field(final.l->v[k], "text");
    }
    if (text.t != JV_STR)
        bad_request(c, "continue_final_message: the final message has no text to continue");
    jv stripped = py_strip(c, text, jv_none(), 1, 1), lstripped = py_strip(c, text, jv_none(), 1, 0);
    const char *at = NULL;
    for (const char *p = out; (p = memmem(p, *len - (size_t)(p - out), stripped.s->p, stripped.s->n)); p++) {
        at = p;
        if (stripped.s->n == 0)
            break;
    }
    if (!at)
        bad_request(c, "continue_final_message: the final message does not appear in the rendered chat");
    size_t keep = (size_t)(at - out) + lstripped.s->n;
    if (keep > *len || memcmp(at, text.s->p, lstripped.s->n) || lstripped.s->n != text.s->n)
        keep = (size_t)(at - out) + stripped.s->n;
    *len = keep;
}

static void render_job(jctx *c, void *arg)
{
    job *j = arg;
    const jinja_tpl *tpl = j->t->main;
    jd_set(c, &c->globals, jv_cstr(c, "tools"), jv_none());
    jd_set(c, &c->globals, jv_cstr(c, "documents"), jv_none());
    jv special = jjson_parse(c, j->t->special, strlen(j->t->special));
    for (size_t i = 0; i < special.d->n; i++)
        jd_set(c, &c->globals, special.d->k[i], special.d->v[i]);
    if (j->raw) {
        jv vars = jjson_parse(c, j->vars, j->n);
        if (vars.t != JV_DICT)
            bad_request(c, "the variables must be a JSON object");
        for (size_t i = 0; i < vars.d->n; i++)
            jd_set(c, &c->globals, vars.d->k[i], vars.d->v[i]);
        if (!tpl)
            tpl = j->t->tool_use;
        j->out = jinja_render(c, tpl, &j->len);
        return;
    }
    jv req = jjson_parse(c, j->body, j->n);
    if (req.t != JV_DICT)
        bad_request(c, "the body must be a JSON object");
    jv tools = field(req, "tools"), choice = field(req, "tool_choice"), kwargs = field(req, "chat_template_kwargs");
    if (field(req, "chat_template").t != JV_UNDEF && field(req, "chat_template").t != JV_NONE)
        bad_request(c, "\"chat_template\" in a request is not supported: the server's is used (--chat-template)");
    if (tools.t != JV_UNDEF && tools.t != JV_NONE) {
        if (tools.t != JV_LIST)
            bad_request(c, "\"tools\" must be a list");
        for (size_t i = 0; i < tools.l->n; i++) {
            jv fn = field(tools.l->v[i], "function");
            if (tools.l->v[i].t != JV_DICT || fn.t != JV_DICT || field(fn, "name").t != JV_STR)
                bad_request(c, "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\", ...}}", i);
        }
        jd_sets(c, &c->globals, "tools", tools);
        if (j->t->tool_use)
            tpl = j->t->tool_use;
    }
    if (!tpl)
        bad_request(c, "the model's chat templates have no \"default\"");
    if (choice.t != JV_UNDEF && choice.t != JV_NONE &&
        (choice.t != JV_STR || (strcmp(choice.s->p, "none") && strcmp(choice.s->p, "auto"))))
        bad_request(c, "tool_choice other than \"none\" or \"auto\" is not supported (no guided decoding)");
    int gen = flag(c, req, "add_generation_prompt", 1), cont = flag(c, req, "continue_final_message", 0);
    if (gen && cont)
        bad_request(c, "continue_final_message and add_generation_prompt cannot both be true");
    jd_sets(c, &c->globals, "add_generation_prompt", jv_bool(gen));
    jv docs = field(req, "documents");
    if (docs.t != JV_UNDEF)
        jd_sets(c, &c->globals, "documents", docs);
    if (kwargs.t != JV_UNDEF && kwargs.t != JV_NONE) {
        if (kwargs.t != JV_DICT)
            bad_request(c, "\"chat_template_kwargs\" must be an object");
        for (size_t i = 0; i < kwargs.d->n; i++)
            jd_set(c, &c->globals, kwargs.d->k[i], kwargs.d->v[i]);
    }
    jv msgs = messages_for(c, field(req, "messages"), jinja_iterates_content(tpl));
    jd_sets(c, &c->globals, "messages", msgs);
    j->out = jinja_render(c, tpl, &j->len);
    if (cont)
        cut_after_final(c, field(msgs.l->v[msgs.l->n - 1], "content"), j->out, &j->len);
}

typedef struct {
    job *j;
    jctx *c;
    int rc;
} thread_arg;

static void *render_thread(void *p)
{
    thread_arg *a = p;
    a->rc = jinja_run(a->c, render_job, a->j);
    return NULL;
}

static char *run(job *j, long long now, size_t *len, char *err, size_t n_err)
{
    if (!j->t) {
        snprintf(err, n_err, "this model has no chat template");
        return NULL;
    }
    jinja_limits lim = jinja_default_limits();
    lim.max_memory = 64u << 20;
    lim.now = now;
    jctx *c = jinja_ctx_new(&lim);
    thread_arg a = {j, c, JINJA_ELIMIT};
    pthread_attr_t attr;
    pthread_t th;
    char *out = NULL;
    if (!c) {
        snprintf(err, n_err, "out of memory");
        return NULL;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, RENDER_STACK);
    if (pthread_create(&th, &attr, render_thread, &a) != 0)
        snprintf(err, n_err, "cannot start the chat template renderer");
    else {
        pthread_join(th, NULL);
        if (a.rc == JINJA_ERAISE || a.rc == JINJA_EINPUT)
            snprintf(err, n_err, "%s", jinja_ctx_error(c));
        else if (a.rc)
            snprintf(err, n_err, "chat template error: %s", jinja_ctx_error(c));
        else if ((out = malloc(j->len + 1))) {
            memcpy(out, j->out, j->len);
            out[j->len] = 0;
            *len = j->len;
        } else
            snprintf(err, n_err, "out of memory");
    }
    pthread_attr_destroy(&attr);
    jinja_ctx_free(c);
    return out;
}

char *chat_render(const chat_template *t, const char *body, size_t n, size_t *len, char *err,
                  size_t n_err)
{
    job j = {.t = t, .body = body, .n = n};
    return run(&j, 0, len, err, n_err);
}

char *chat_render_vars(const chat_template *t, const char *vars, size_t n, long long now,
                       size_t *len, char *err, size_t n_err)
{
    job j = {.t = t, .vars = vars, .n = n, .raw = 1};
    return run(&j, now, len, err, n_err);
}
