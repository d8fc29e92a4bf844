/* oa_format.c - the OpenAI API's answers (see oa.h): a completion or chat completion with one
 * choice per prompt and sample (index = prompt * n + sample), or its server-sent chunks, one
 * per text delta of a choice; OpenAI's logprobs shapes; usage; errors.
 *
 * Logprobs are the raw ones the worker computed (log-softmax of the model's logits, vLLM's
 * default; worker/sampling.h), read from the choice's slot: the sampled token's and, when
 * asked, the most likely ones at its position. A token is shown as its own text in the middle
 * of a text (tok_token_text: SentencePiece's "▁Lily" is " Lily"), so the tokens of a choice
 * join up to its text, or as "token_id:N" (return_tokens_as_token_ids); chat adds its raw
 * bytes. -inf is shown as -9999.0, as vLLM does.
 *   completions: {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob,
 *                 ...}, ...] (the top N and the sampled token: up to N + 1, as OpenAI),
 *                 "text_offset": [...] (code points into the choice's text)}
 *   chat:        {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token",
 *                 "logprob", "bytes"}, ...] (the top N)}, ...]}
 */
#include "oa.h"
#include "http_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int oa_error(http_conn *c, int status, const char *msg, const char *param)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", status == 404 ? "not_found_error"
                                       : status >= 500 ? "server_error" : "invalid_request_error");
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
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

static double shown_logprob(float lp) { return lp == -INFINITY ? OA_LOGPROB_FLOOR : lp; }

/* Token ID as shown: its text, or "token_id:N"; a malloc'd string. */
static char *token_str(const oa_ctx *x, int32_t id)
{
    char *s;
    if (x->as_ids) {
        s = malloc(32);
        if (s)
            snprintf(s, 32, "token_id:%d", id);
        return s;
    }
    int64_t n = tok_token_text(x->a->f->tok, id, NULL, 0);
    if (n < 0 || !(s = malloc((size_t)n + 1)))
        return NULL;
    tok_token_text(x->a->f->tok, id, s, (size_t)n);
    s[n] = 0;
    return s;
}

static long code_points(const char *s)
{
    long n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* chat: {"token", "logprob", "bytes"} of ID */
static cJSON *chat_token(const oa_ctx *x, int32_t id, float lp)
{
    cJSON *e = cJSON_CreateObject(), *bytes;
    char *t = token_str(x, id);
    cJSON_AddStringToObject(e, "token", t ? t : "");
    free(t);
    cJSON_AddNumberToObject(e, "logprob", shown_logprob(lp));
    int64_t n = tok_token_bytes(x->a->f->tok, id, NULL, 0);
    unsigned char *raw = n > 0 ? malloc((size_t)n) : NULL;
    if (raw)
        tok_token_bytes(x->a->f->tok, id, (char *)raw, (size_t)n);
    bytes = cJSON_AddArrayToObject(e, "bytes");
    for (int64_t i = 0; raw && i < n; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber(raw[i]));
    free(raw);
    return e;
}

/* The logprobs of CH's output tokens [from, to), chat's or completions' shape, appended to LP
 * (an object from new_logprobs). */
static void add_logprobs(oa_ctx *x, const serve_state *s, const serve_choice *ch, int from, int to, cJSON *lp)
{
    const store *st = &s->f->st;
    const int32_t *tok = slot_tokens(st, ch->slot);
    const float *lps = slot_logprobs(st, ch->slot);
    for (int i = from; i < to; i++) {
        int pos = ch->n_prompt + i;
        const int32_t *top_ids = slot_top_ids(st, ch->slot, pos);
        const float *top_lps = slot_top_lps(st, ch->slot, pos);
        if (x->chat) {
            cJSON *e = chat_token(x, tok[pos], lps[pos]), *top = cJSON_AddArrayToObject(e, "top_logprobs");
            for (int k = 0; k < x->n_top; k++)
                cJSON_AddItemToArray(top, chat_token(x, top_ids[k], top_lps[k]));
            cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "content"), e);
            continue;
        }
        char *t = token_str(x, tok[pos]);
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "tokens"), cJSON_CreateString(t ? t : ""));
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "token_logprobs"), cJSON_CreateNumber(shown_logprob(lps[pos])));
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "text_offset"), cJSON_CreateNumber((double)x->offset[ch->index]));
        x->offset[ch->index] += t ? code_points(t) : 0;
        cJSON *top = cJSON_CreateObject();
        int sampled_in = 0;
        for (int k = 0; k <= x->n_top; k++) { /* the top ones, then the sampled one if not there */
            int32_t id = k < x->n_top ? top_ids[k] : tok[pos];
            if (k == x->n_top && sampled_in)
                break;
            sampled_in |= id == tok[pos];
            char *key = k < x->n_top ? token_str(x, id) : t;
            if (key && !cJSON_GetObjectItemCaseSensitive(top, key)) /* two ids, one text: the first */
                cJSON_AddNumberToObject(top, key, shown_logprob(k < x->n_top ? top_lps[k] : lps[pos]));
            if (key != t)
                free(key);
        }
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "top_logprobs"), top);
        free(t);
    }
}

static cJSON *new_logprobs(const oa_ctx *x)
{
    cJSON *lp = cJSON_CreateObject();
    if (x->chat) {
        cJSON_AddArrayToObject(lp, "content");
    } else {
        cJSON_AddArrayToObject(lp, "tokens");
        cJSON_AddArrayToObject(lp, "token_logprobs");
        cJSON_AddArrayToObject(lp, "top_logprobs");
        cJSON_AddArrayToObject(lp, "text_offset");
    }
    return lp;
}

/* One choice: INDEX, its text (completions) or message / delta (chat; ROLE: with the role),
 * logprobs of its tokens [from, to), finish_reason. */
static cJSON *choice(oa_ctx *x, const serve_state *s, const serve_choice *ch, const char *text, int whole,
                     int role, int from, int to, int finish)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", ch->index);
    if (x->chat) {
        cJSON *m = cJSON_AddObjectToObject(c, whole ? "message" : "delta");
        if (whole || role)
            cJSON_AddStringToObject(m, "role", "assistant");
        if (whole || *text || role)
            cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text);
    }
    if (x->logprobs) {
        cJSON *lp = new_logprobs(x);
        add_logprobs(x, s, ch, from, to, lp);
        cJSON_AddItemToObject(c, "logprobs", lp);
    } else {
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", oa_finish(finish));
    else
        cJSON_AddNullToObject(c, "finish_reason");
    return c;
}

static cJSON *head(const oa_ctx *x, int whole)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", x->id);
    cJSON_AddStringToObject(j, "object", x->chat ? whole ? "chat.completion" : "chat.completion.chunk"
                                                 : "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)x->created);
    cJSON_AddStringToObject(j, "model", x->a->model_name);
    return j;
}

static void usage(cJSON *j, int n_prompt, int n_out, int n_cached)
{
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", n_out);
    cJSON_AddNumberToObject(u, "total_tokens", n_prompt + n_out);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"), "cached_tokens", n_cached);
}

/* Usage of the whole request: each prompt's tokens once (not once per choice, as vLLM), every
 * choice's output tokens. */
static void usage_total(cJSON *j, const serve_state *s)
{
    int n_prompt = 0, n_out = 0, n_cached = 0;
    for (int i = 0; i < s->n_choices; i++) {
        const serve_choice *ch = &s->ch[i];
        if (i % s->g->n == 0) {
            n_prompt += ch->n_prompt;
            n_cached += ch->n_cached;
        }
        n_out += ch->n_out;
    }
    usage(j, n_prompt, n_out, n_cached);
}

/* The text before a choice's own: the echo of its prompt (or chat's last message), or "". */
static const text_buf *echo_of(const oa_ctx *x, const serve_choice *ch)
{
    static const text_buf none = {"", 0, 0};
    return x->echo ? &x->echo[x->chat ? 0 : ch->prompt] : &none;
}

static int oa_begin(http_conn *c, api_out *o)
{
    http_sse_begin(c);
    return 0;
}

static int oa_event(http_conn *c, api_out *o, const delta_node *d, serve_choice *ch,
                    const serve_state *s)
{
    oa_ctx *x = o->ctx;
    const text_buf *echo = echo_of(x, ch);
    int first = !ch->sent_first;
    if (d->text_len == 0 && !d->finish && !(first && (x->chat || echo->n)))
        return 0; /* nothing to show yet (text held back): its tokens come with the next */
    text_buf t = {0};
    if (first)
        text_append(&t, echo->p, echo->n);
    text_append(&t, d->text, d->text_len);
    cJSON *j = head(x, 0);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "choices"),
                         choice(x, s, ch, t.p ? t.p : "", 0, first, ch->n_shown, ch->n_seen, d->finish));
    text_free(&t);
    ch->n_shown = ch->n_seen;
    ch->sent_first = 1;
    if (x->continuous_usage)
        usage(j, ch->n_prompt, ch->n_out, 0);
    else if (x->include_usage)
        cJSON_AddNullToObject(j, "usage");
    return http_sse_send(c, "data: ", j);
}

static void oa_end(http_conn *c, api_out *o, const serve_state *s)
{
    oa_ctx *x = o->ctx;
    if (x->include_usage) { /* a last chunk with no choices and the usage */
        cJSON *j = head(x, 0);
        cJSON_AddArrayToObject(j, "choices");
        usage_total(j, s);
        http_sse_send(c, "data: ", j);
    }
    http_sse_raw(c, "data: [DONE]\n\n", 14);
    http_sse_raw(c, "", 0);
}

static void oa_fail(http_conn *c, api_out *o, int status, const char *msg)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", "server_error");
    cJSON_AddNumberToObject(e, "code", status);
    http_sse_send(c, "data: ", j);
    http_sse_raw(c, "", 0);
}

static void oa_respond(http_conn *c, api_out *o, const serve_state *s)
{
    oa_ctx *x = o->ctx;
    cJSON *j = head(x, 1), *choices = cJSON_AddArrayToObject(j, "choices");
    for (int i = 0; i < s->n_choices; i++) {
        serve_choice *ch = &s->ch[i];
        const text_buf *echo = echo_of(x, ch);
        text_buf t = {0};
        text_append(&t, echo->p, echo->n);
        text_append(&t, ch->text.p, ch->text.n);
        cJSON_AddItemToArray(choices, choice(x, s, ch, t.p ? t.p : "", 1, 1, 0, ch->n_seen, ch->finish));
        text_free(&t);
    }
    usage_total(j, s);
    http_send_cjson(c, 200, j);
}

static int oa_error_plain(http_conn *c, int status, const char *msg)
{
    return oa_error(c, status, msg, NULL);
}

api_out oa_out(oa_ctx *x, int stream)
{
    return (api_out){stream, oa_begin, oa_event, oa_end, oa_respond, oa_error_plain, oa_fail, x};
}
