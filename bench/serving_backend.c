/* serving_backend.c - what bench-serving sends to a server and how it reads the stream back,
 * per API:
 *
 *   cinder  POST /generate_stream {"inputs", "parameters": {"max_new_tokens", "ignore_eos"}}
 *           -> one event per token {"token": {"id", "text", ...}, "finished", "finish_reason"}
 *   openai  POST /v1/completions {"model", "prompt", "max_tokens", "temperature": 0,
 *           "stream": true, "stream_options": {"include_usage": true}, "ignore_eos"}
 *           -> {"choices": [{"text", "finish_reason"}]} chunks, a usage chunk, "[DONE]"
 *   openai-chat  POST /v1/chat/completions, the prompt as one user message,
 *           "max_completion_tokens" -> {"choices": [{"delta": {"content"}}]} chunks, usage, [DONE]
 *
 * All ask for greedy decoding, as vLLM's benchmark does, unless --temperature says otherwise.
 */
#include "serving.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {"cinder", "openai", "openai-chat"};
static const char *const paths[] = {"/generate_stream", "/v1/completions", "/v1/chat/completions"};

int sv_backend_parse(const char *name, sv_backend *b)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *b = (sv_backend)i;
            return 0;
        }
    return -1;
}

const char *sv_backend_name(sv_backend b) { return names[b]; }

const char *sv_backend_path(sv_backend b) { return paths[b]; }

char *sv_backend_body(const sv_req_opts *o, const sv_prompt *p)
{
    cJSON *j = cJSON_CreateObject(), *q = j;
    double temp = o->temperature > 0 ? o->temperature : 0;
    if (o->backend == SV_CINDER) {
        cJSON_AddStringToObject(j, "inputs", p->prompt);
        q = cJSON_AddObjectToObject(j, "parameters");
        cJSON_AddNumberToObject(q, "max_new_tokens", p->output_len);
        cJSON_AddBoolToObject(q, "ignore_eos", o->ignore_eos);
        if (temp > 0) {
            cJSON_AddBoolToObject(q, "do_sample", 1);
            cJSON_AddNumberToObject(q, "temperature", temp);
        }
    } else {
        cJSON_AddStringToObject(j, "model", o->model);
        if (o->backend == SV_OPENAI_CHAT) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", p->prompt);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "messages"), m);
            cJSON_AddNumberToObject(j, "max_completion_tokens", p->output_len);
        } else {
            cJSON_AddStringToObject(j, "prompt", p->prompt);
            cJSON_AddNumberToObject(j, "max_tokens", p->output_len);
        }
        cJSON_AddNumberToObject(j, "temperature", temp);
        cJSON_AddBoolToObject(j, "stream", 1);
        cJSON_AddBoolToObject(cJSON_AddObjectToObject(j, "stream_options"), "include_usage", 1);
        if (o->ignore_eos)
            cJSON_AddBoolToObject(j, "ignore_eos", 1);
    }
    if (o->top_p > 0)
        cJSON_AddNumberToObject(q, "top_p", o->top_p);
    if (o->top_k > 0)
        cJSON_AddNumberToObject(q, "top_k", o->top_k);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* An "error" member, a string or OpenAI's {"message"}: copied to EV; 1 if there was one. */
static int take_error(const cJSON *j, sv_event *ev)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!e || cJSON_IsNull(e))
        return 0;
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    snprintf(ev->error, sizeof ev->error, "server: %s", cJSON_IsString(m) ? m->valuestring : "error");
    return 1;
}

static void take_finish(const cJSON *f, sv_event *ev)
{
    if (cJSON_IsString(f))
        snprintf(ev->finish, sizeof ev->finish, "%s", f->valuestring);
}

static int cinder_event(const cJSON *j, sv_event *ev, sv_buf *text)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "token");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "text");
    if (!cJSON_IsString(s)) {
        snprintf(ev->error, sizeof ev->error, "event without token.text");
        return -1;
    }
    ev->output = 1;
    ev->n_tokens = 1;
    strbuf_add(text, s->valuestring, strlen(s->valuestring));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "finished"))) {
        ev->end = 1;
        take_finish(cJSON_GetObjectItemCaseSensitive(j, "finish_reason"), ev);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "count_output_tokens");
        if (cJSON_IsNumber(n))
            ev->usage_out = n->valueint;
    }
    return 0;
}

static int openai_event(const cJSON *j, sv_event *ev, sv_buf *text)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (!cJSON_IsArray(choices) && !cJSON_IsObject(usage)) {
        snprintf(ev->error, sizeof ev->error, "chunk without choices or usage");
        return -1;
    }
    const cJSON *c = cJSON_GetArrayItem(choices, 0);
    if (c) { /* as vLLM: every chunk with a choice is a timing point, even with empty text */
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "text");
        if (!s) /* a chat completion chunk */
            s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "delta"), "content");
        if (cJSON_IsString(s))
            strbuf_add(text, s->valuestring, strlen(s->valuestring));
        ev->output = 1;
        take_finish(cJSON_GetObjectItemCaseSensitive(c, "finish_reason"), ev);
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    if (cJSON_IsNumber(n))
        ev->usage_out = n->valueint;
    return 0;
}

int sv_backend_event(sv_backend b, const char *data, size_t n, sv_event *ev, sv_buf *text)
{
    memset(ev, 0, sizeof *ev);
    ev->usage_out = -1;
    if (b != SV_CINDER && n == 6 && !memcmp(data, "[DONE]", 6)) {
        ev->end = 1;
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(data, n);
    int rc = -1;
    if (!cJSON_IsObject(j))
        snprintf(ev->error, sizeof ev->error, "event is not a JSON object: %.60s", data);
    else if (take_error(j, ev))
        rc = 0; /* a well-formed event that reports an error */
    else
        rc = b == SV_CINDER ? cinder_event(j, ev, text) : openai_event(j, ev, text);
    cJSON_Delete(j);
    return rc;
}
