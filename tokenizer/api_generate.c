/* api_generate.c - LightLLM's API: POST /generate and /generate_stream.
 *
 * Request {"inputs": str, "parameters": {...}} (req_parse.c). Answer
 * {"generated_text": [str], "count_output_tokens", "finish_reason", "prompt_tokens"}, or
 * server-sent events, one per token: {"token": {"id", "text", "logprob", "special"},
 * "generated_text": null | str (on the last), "finished", "finish_reason"}.
 */
#include "api.h"
#include "http_util.h"
#include "serve.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int gen_begin(struct mg_connection *c, api_out *o)
{
    http_sse_begin(c);
    return 0;
}

static int gen_event(struct mg_connection *c, api_out *o, const delta_node *d, const serve_state *s)
{
    cJSON *e = cJSON_CreateObject(), *t = cJSON_AddObjectToObject(e, "token");
    cJSON_AddNumberToObject(t, "id", d->token_id);
    char *text = strndup(d->text, d->text_len);
    cJSON_AddStringToObject(t, "text", text ? text : "");
    free(text);
    cJSON_AddNumberToObject(t, "logprob", d->logprob);
    cJSON_AddBoolToObject(t, "special", d->special || d->token_id < 0);
    if (d->finish) {
        cJSON_AddStringToObject(e, "generated_text", s->text);
        cJSON_AddBoolToObject(e, "finished", 1);
        cJSON_AddStringToObject(e, "finish_reason", finish_names[d->finish]);
        cJSON_AddNumberToObject(e, "count_output_tokens", s->n_out);
        cJSON_AddNumberToObject(e, "prompt_tokens", s->n_prompt);
    } else {
        cJSON_AddNullToObject(e, "generated_text");
        cJSON_AddBoolToObject(e, "finished", 0);
        cJSON_AddNullToObject(e, "finish_reason");
    }
    return http_sse_send(c, "data:", e);
}

static void gen_end(struct mg_connection *c, api_out *o, const serve_state *s) { http_sse_raw(c, "", 0); }

static void gen_fail(struct mg_connection *c, api_out *o, int status, const char *msg)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "error", msg);
    cJSON_AddNumberToObject(e, "status", status);
    cJSON_AddBoolToObject(e, "finished", 1);
    cJSON_AddStringToObject(e, "finish_reason", "error");
    http_sse_send(c, "data:", e);
    http_sse_raw(c, "", 0);
}

static void gen_respond(struct mg_connection *c, api_out *o, const serve_state *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(j, "generated_text");
    cJSON_AddItemToArray(arr, cJSON_CreateString(s->text));
    cJSON_AddNumberToObject(j, "count_output_tokens", s->n_out);
    cJSON_AddStringToObject(j, "finish_reason", finish_names[s->finish]);
    cJSON_AddNumberToObject(j, "prompt_tokens", s->n_prompt);
    http_send_cjson(c, 200, j);
}

int api_generate(tokenizer *f, struct mg_connection *c, int stream)
{
    char *body = NULL, err[512];
    long n = http_read_body(c, &body);
    if (n < 0)
        return http_send_error(c, (int)-n, http_body_error(n));
    gen_req g;
    int rc = gen_req_parse(&g, body, (size_t)n, f->max_seq_len, err, sizeof err);
    free(body);
    if (rc)
        return http_send_error(c, 400, err);
    api_out o = {stream, gen_begin, gen_event, gen_end, gen_respond, http_send_error, gen_fail, NULL};
    int status = serve_generate(f, c, &g, g.inputs, g.n_inputs, 1, &o);
    gen_req_free(&g);
    return status;
}
