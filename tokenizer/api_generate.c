/* api_generate.c - LightLLM's API: POST /generate and /generate_stream.
 *
 * Request {"inputs": str, "parameters": {...}} (req_parse.c). Answer
 * {"generated_text": [str], "count_output_tokens", "finish_reason", "prompt_tokens"}; with
 * n > 1, n texts and lists of the counts and reasons, as LightLLM; with return_details,
 * "tokens": one entry per output token as LightLLM's metadata ({"id", "text" (its part of the
 * text), "logprob", "cumlogprob" (LightLLM's: the mean logprob so far), "special",
 * "count_output_tokens", "prompt_tokens", "prompt_cache_len"}; a list per choice with n > 1).
 * Streamed: server-sent events, one per token: {"token": {"id", "text", "logprob", "special"},
 * "generated_text": null | str (on the last), "finished", "finish_reason"} (one choice only, as
 * LightLLM). Logprobs are the raw ones (worker/sampling.h).
 */
#include "api.h"
#include "http_util.h"
#include "serve.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int gen_begin(http_conn *c, api_out *o)
{
    http_sse_begin(c);
    return 0;
}

static int gen_event(http_conn *c, api_out *o, const delta_node *d, serve_choice *ch,
                     const serve_state *s)
{
    cJSON *e = cJSON_CreateObject(), *t = cJSON_AddObjectToObject(e, "token");
    cJSON_AddNumberToObject(t, "id", d->token_id);
    char *text = strndup(d->text, d->text_len);
    cJSON_AddStringToObject(t, "text", text ? text : "");
    free(text);
    cJSON_AddNumberToObject(t, "logprob", d->logprob);
    cJSON_AddBoolToObject(t, "special", d->special || d->token_id < 0);
    if (d->finish) {
        cJSON_AddStringToObject(e, "generated_text", ch->text.p ? ch->text.p : "");
        cJSON_AddBoolToObject(e, "finished", 1);
        cJSON_AddStringToObject(e, "finish_reason", finish_names[d->finish]);
        cJSON_AddNumberToObject(e, "count_output_tokens", ch->n_out);
        cJSON_AddNumberToObject(e, "prompt_tokens", ch->n_prompt);
    } else {
        cJSON_AddNullToObject(e, "generated_text");
        cJSON_AddBoolToObject(e, "finished", 0);
        cJSON_AddNullToObject(e, "finish_reason");
    }
    return http_sse_send(c, "data:", e);
}

static void gen_end(http_conn *c, api_out *o, const serve_state *s) { http_sse_raw(c, "", 0); }

static void gen_fail(http_conn *c, api_out *o, int status, const char *msg)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "error", msg);
    cJSON_AddNumberToObject(e, "status", status);
    cJSON_AddBoolToObject(e, "finished", 1);
    cJSON_AddStringToObject(e, "finish_reason", "error");
    http_sse_send(c, "data:", e);
    http_sse_raw(c, "", 0);
}

/* return_details: LightLLM's per-token metadata of choice CH. */
static cJSON *details(const serve_state *s, const serve_choice *ch)
{
    cJSON *list = cJSON_CreateArray();
    const int32_t *tok = serve_out_tokens(s, ch);
    const float *lp = slot_logprobs(&s->f->st, ch->slot) + ch->n_prompt;
    double cum = 0;
    size_t from = 0;
    for (int i = 0; i < ch->n_seen; i++) {
        cJSON *e = cJSON_CreateObject();
        size_t to = i < ch->cap_tok_end ? ch->tok_end[i] : from;
        char *text = strndup(ch->text.p ? ch->text.p + from : "", to - from);
        from = to;
        cum += lp[i];
        cJSON_AddNumberToObject(e, "id", tok[i]);
        cJSON_AddStringToObject(e, "text", text ? text : "");
        free(text);
        cJSON_AddNumberToObject(e, "logprob", lp[i]);
        cJSON_AddNumberToObject(e, "cumlogprob", cum / (i + 1));
        cJSON_AddBoolToObject(e, "special", tok_is_special(s->f->tok, tok[i]));
        cJSON_AddNumberToObject(e, "count_output_tokens", i + 1);
        cJSON_AddNumberToObject(e, "prompt_tokens", ch->n_prompt);
        cJSON_AddNumberToObject(e, "prompt_cache_len", ch->n_cached);
        cJSON_AddItemToArray(list, e);
    }
    return list;
}

static void gen_respond(http_conn *c, api_out *o, const serve_state *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *texts = cJSON_AddArrayToObject(j, "generated_text");
    cJSON *counts = cJSON_CreateArray(), *reasons = cJSON_CreateArray(), *tokens = cJSON_CreateArray();
    for (int i = 0; i < s->n_choices; i++) {
        const serve_choice *ch = &s->ch[i];
        cJSON_AddItemToArray(texts, cJSON_CreateString(ch->text.p ? ch->text.p : ""));
        cJSON_AddItemToArray(counts, cJSON_CreateNumber(ch->n_out));
        cJSON_AddItemToArray(reasons, cJSON_CreateString(finish_names[ch->finish]));
        if (s->g->return_details)
            cJSON_AddItemToArray(tokens, details(s, ch));
    }
    /* one choice: scalars (and one list of tokens), as LightLLM */
    int one = s->n_choices == 1;
    cJSON_AddItemToObject(j, "count_output_tokens", one ? cJSON_DetachItemFromArray(counts, 0) : counts);
    cJSON_AddItemToObject(j, "finish_reason", one ? cJSON_DetachItemFromArray(reasons, 0) : reasons);
    cJSON_AddNumberToObject(j, "prompt_tokens", s->ch[0].n_prompt);
    if (s->g->return_details)
        cJSON_AddItemToObject(j, "tokens", one ? cJSON_DetachItemFromArray(tokens, 0) : tokens);
    if (one) {
        cJSON_Delete(counts);
        cJSON_Delete(reasons);
    }
    if (one || !s->g->return_details)
        cJSON_Delete(tokens);
    http_send_cjson(c, 200, j);
}

int api_generate(tokenizer *f, http_conn *c, int stream)
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
    if (stream && g.n > 1) {
        gen_req_free(&g);
        return http_send_error(c, 400, "parameters.n > 1 is not supported by /generate_stream (one "
                                       "choice per stream, as LightLLM)");
    }
    api_out o = {stream, gen_begin, gen_event, gen_end, gen_respond, http_send_error, gen_fail, NULL};
    serve_prompt p = {.text = g.inputs, .n_text = g.n_inputs};
    int status = serve_generate(f, c, &g, &p, 1, 1, &o);
    gen_req_free(&g);
    return status;
}
