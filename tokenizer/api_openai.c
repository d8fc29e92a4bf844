/* api_openai.c - the OpenAI-compatible API: POST /v1/completions, POST /v1/chat/completions
 * (streaming and not); GET /v1/models is api_models.c's.
 *
 * Request fields map onto LightLLM's parameters (req_parse.c validates them): max_tokens,
 * temperature (default 1: sampling), top_p, stop, seed, presence/frequency_penalty, plus the
 * common extensions top_k, repetition_penalty, ignore_eos, stop_token_ids. n must be 1.
 * Chat messages go through the model's chat template (chat.h). usage carries
 * prompt_tokens_details.cached_tokens: the prompt tokens the prefix cache supplied.
 * Errors use OpenAI's shape:
 * {"error": {"message", "type", "param", "code"}}.
 */
#include "api.h"
#include "../common/json_util.h"
#include "http_util.h"
#include "req_parse.h"
#include "serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    api_ctx *a;
    int chat;
    int include_usage;
    char id[48];
    long created;
    int sent_role;     /* chat stream: the assistant role went out */
} oa_ctx;

int api_openai_error(struct mg_connection *c, int status, const char *msg)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", status == 404 ? "not_found_error"
                                       : status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    if (status == 404)
        cJSON_AddStringToObject(e, "code", "model_not_found");
    else
        cJSON_AddNullToObject(e, "code");
    http_send_cjson(c, status, j);
    return status;
}

static const char *oa_finish(int finish)
{
    return finish == FINISH_LENGTH ? "length" : finish == FINISH_STOP ? "stop" : finish_names[finish];
}

static cJSON *oa_chunk(const oa_ctx *x)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", x->id);
    cJSON_AddStringToObject(j, "object", x->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)x->created);
    cJSON_AddStringToObject(j, "model", x->a->model_name);
    return j;
}

static void add_usage(cJSON *j, const serve_state *s)
{
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", s->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", s->n_out);
    cJSON_AddNumberToObject(u, "total_tokens", s->n_prompt + s->n_out);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", s->n_cached);
}

/* One choice: text (completions) or delta/message (chat). */
static cJSON *oa_choice(const oa_ctx *x, const char *text, size_t n, int finish, int whole)
{
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    char *t = strndup(text, n);
    if (x->chat) {
        cJSON *m = cJSON_AddObjectToObject(ch, whole ? "message" : "delta");
        if (whole || !x->sent_role)
            cJSON_AddStringToObject(m, "role", "assistant");
        if (whole || n > 0 || !x->sent_role)
            cJSON_AddStringToObject(m, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(ch, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", oa_finish(finish));
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    return ch;
}

static int oa_begin(struct mg_connection *c, api_out *o)
{
    http_sse_begin(c);
    return 0;
}

static int oa_event(struct mg_connection *c, api_out *o, const delta_node *d, const serve_state *s)
{
    oa_ctx *x = o->ctx;
    if (d->text_len == 0 && !d->finish && (x->sent_role || !x->chat))
        return 0; /* nothing to show yet (text held back) */
    cJSON *j = oa_chunk(x);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "choices"), oa_choice(x, d->text, d->text_len, d->finish, 0));
    x->sent_role = 1;
    if (x->include_usage)
        cJSON_AddNullToObject(j, "usage");
    return http_sse_send(c, "data: ", j);
}

static void oa_end(struct mg_connection *c, api_out *o, const serve_state *s)
{
    oa_ctx *x = o->ctx;
    if (x->include_usage) { /* a last chunk with no choices and the usage */
        cJSON *j = oa_chunk(x);
        cJSON_AddArrayToObject(j, "choices");
        add_usage(j, s);
        http_sse_send(c, "data: ", j);
    }
    http_sse_raw(c, "data: [DONE]\n\n", 14);
    http_sse_raw(c, "", 0);
}

static void oa_fail(struct mg_connection *c, api_out *o, int status, const char *msg)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", "server_error");
    cJSON_AddNumberToObject(e, "code", status);
    http_sse_send(c, "data: ", j);
    http_sse_raw(c, "", 0);
}

static void oa_respond(struct mg_connection *c, api_out *o, const serve_state *s)
{
    oa_ctx *x = o->ctx;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", x->id);
    cJSON_AddStringToObject(j, "object", x->chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)x->created);
    cJSON_AddStringToObject(j, "model", x->a->model_name);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "choices"), oa_choice(x, s->text, s->n_text, s->finish, 1));
    add_usage(j, s);
    http_send_cjson(c, 200, j);
}

/* Copies FROM's field NAME to TO as AS (when present). */
static void map_field(cJSON *to, const cJSON *from, const char *name, const char *as)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, name);
    if (v && !cJSON_IsNull(v))
        cJSON_AddItemToObject(to, as, cJSON_Duplicate(v, 1));
}

static int bad(char *err, size_t n_err, const char *msg)
{
    snprintf(err, n_err, "%s", msg);
    return -1;
}

/* OpenAI's fields as a LightLLM parameters object, validated by gen_req_parse_params. */
static int oa_params(api_ctx *a, gen_req *g, const cJSON *req, int chat, char *err, size_t n_err)
{
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(req, "n")) && !cJSON_IsNull(v) &&
        (!cJSON_IsNumber(v) || v->valuedouble != 1))
        return bad(err, n_err, "only n = 1 is supported");
    if ((v = cJSON_GetObjectItemCaseSensitive(req, "best_of")) && !cJSON_IsNull(v) &&
        (!cJSON_IsNumber(v) || v->valuedouble != 1))
        return bad(err, n_err, "only best_of = 1 is supported");
    if ((v = cJSON_GetObjectItemCaseSensitive(req, "echo")) && cJSON_IsTrue(v))
        return bad(err, n_err, "echo is not supported");
    cJSON *p = cJSON_CreateObject();
    /* nulls were dropped (api_completions): a max_completion_tokens of null leaves max_tokens */
    map_field(p, req, chat && cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens")
                          ? "max_completion_tokens" : "max_tokens", "max_new_tokens");
    if (!cJSON_GetObjectItem(p, "max_new_tokens") && chat) /* chat default: up to the context */
        cJSON_AddNumberToObject(p, "max_new_tokens", a->f->max_seq_len);
    v = cJSON_GetObjectItemCaseSensitive(req, "temperature");
    double temp = v && cJSON_IsNumber(v) ? v->valuedouble : 1.0;
    map_field(p, req, "temperature", "temperature");
    cJSON_AddBoolToObject(p, "do_sample", temp > 0);
    static const char *const same[] = {"top_p", "top_k", "seed", "ignore_eos", "presence_penalty",
                                       "frequency_penalty", "repetition_penalty", "stop_token_ids"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        map_field(p, req, same[i], same[i]);
    map_field(p, req, "stop", "stop_sequences");
    int rc = gen_req_parse_params(g, p, a->f->max_seq_len, err, n_err);
    cJSON_Delete(p);
    /* messages name OpenAI's fields, not ours */
    if (rc && !strncmp(err, "parameters.", 11)) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err + 11);
        const char *from[] = {"max_new_tokens", "stop_sequences"}, *to[] = {"max_tokens", "stop"};
        for (int i = 0; i < 2; i++)
            if (!strncmp(tmp, from[i], strlen(from[i]))) {
                snprintf(err, n_err, "%s%s", to[i], tmp + strlen(from[i]));
                return rc;
            }
        snprintf(err, n_err, "%s", tmp);
    }
    return rc;
}

/* The chat prompt rendered with the model's template; malloc'd, or NULL with ERR. */
char *oa_chat_prompt(api_ctx *a, const cJSON *msgs, size_t *n, char *err, size_t n_err)
{
    if (!a->have_chat) {
        snprintf(err, n_err, "this model has no usable chat template: %s", a->chat_err);
        return NULL;
    }
    int count = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || count < 1 || count > 4096) {
        bad(err, n_err, "\"messages\" must be a non-empty list");
        return NULL;
    }
    chat_msg *m = calloc((size_t)count, sizeof *m);
    char **parts = calloc((size_t)count, sizeof *parts);
    char *out = NULL;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant"))) {
            snprintf(err, n_err, "messages[%d].role must be \"system\", \"user\" or \"assistant\"", i);
            goto done;
        }
        if (cJSON_IsArray(content)) { /* [{"type": "text", "text": ...}, ...] */
            text_buf t = {0};
            const cJSON *part;
            text_append(&t, "", 0);
            cJSON_ArrayForEach(part, content) {
                const cJSON *txt = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(txt)) {
                    text_free(&t);
                    snprintf(err, n_err, "messages[%d].content: only text parts are supported", i);
                    goto done;
                }
                text_append(&t, txt->valuestring, strlen(txt->valuestring));
            }
            parts[i] = t.p;
        } else if (cJSON_IsString(content)) {
            parts[i] = strdup(content->valuestring);
        } else if ((!content || cJSON_IsNull(content)) && !strcmp(role->valuestring, "assistant")) {
            parts[i] = strdup(""); /* OpenAI: an assistant message's content is optional */
        } else {
            snprintf(err, n_err, "messages[%d].content must be a string", i);
            goto done;
        }
        m[i] = (chat_msg){role->valuestring, parts[i]};
        i++;
    }
    int64_t len = chat_apply(&a->chat, m, count, 1, NULL, 0);
    if (len < 0) {
        snprintf(err, n_err, len == CHAT_EROLES ? "this model's chat format does not allow these roles in "
                                                  "this order" : "cannot render the chat template");
        goto done;
    }
    out = malloc((size_t)len + 1);
    if (out && chat_apply(&a->chat, m, count, 1, out, (size_t)len + 1) != len) {
        free(out);
        out = NULL;
    }
    *n = (size_t)len;
done:
    for (int k = 0; k < count; k++)
        free(parts[k]);
    free(parts);
    free(m);
    return out;
}

int api_completions(api_ctx *a, struct mg_connection *c, int chat)
{
    char *body = NULL, err[512];
    long n = http_read_body(c, &body);
    if (n < 0)
        return api_openai_error(c, (int)-n, http_body_error(n));
    cJSON *req = json_parse_body(body, (size_t)n, err, sizeof err);
    free(body);
    int status = 400;
    char *prompt = NULL;
    size_t n_prompt = 0;
    gen_req g;
    memset(&g, 0, sizeof g);
    if (!cJSON_IsObject(req)) {
        if (req)
            snprintf(err, sizeof err, "the body must be a JSON object");
        goto fail;
    }
    json_drop_nulls(req); /* every optional field given as null is absent */
    json_drop_nulls(cJSON_GetObjectItemCaseSensitive(req, "stream_options"));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (model && !cJSON_IsNull(model) && (!cJSON_IsString(model) || strcmp(model->valuestring, a->model_name))) {
        status = 404;
        snprintf(err, sizeof err, "The model `%s` does not exist", cJSON_IsString(model) ? model->valuestring : "?");
        goto fail;
    }
    if (oa_params(a, &g, req, chat, err, sizeof err))
        goto fail;
    if (chat) {
        if (!(prompt = oa_chat_prompt(a, cJSON_GetObjectItemCaseSensitive(req, "messages"), &n_prompt, err, sizeof err)))
            goto fail;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1)
            p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p)) {
            snprintf(err, sizeof err, "\"prompt\" must be a string (or a list of one string)");
            goto fail;
        }
        prompt = strdup(p->valuestring);
        n_prompt = strlen(p->valuestring);
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    oa_ctx x = {.a = a, .chat = chat, .created = (long)time(NULL),
                .include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"))};
    snprintf(x.id, sizeof x.id, "%s-%llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)atomic_load(&a->f->st.hdr->next_req_id) ^ (unsigned long long)now_us() << 20);
    api_out o = {cJSON_IsTrue(stream), oa_begin, oa_event, oa_end, oa_respond, api_openai_error, oa_fail, &x};
    /* a template carries its own BOS; plain text gets the tokenizer's */
    int add_special = !chat || a->chat.kind == CHAT_PLAIN;
    status = serve_generate(a->f, c, &g, prompt, n_prompt, add_special, &o);
    free(prompt);
    cJSON_Delete(req);
    return status;
fail:
    free(prompt);
    cJSON_Delete(req);
    return api_openai_error(c, status, err);
}
