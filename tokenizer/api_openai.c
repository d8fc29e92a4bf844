/* api_openai.c - the OpenAI-compatible API: POST /v1/completions, POST /v1/chat/completions
 * (streaming and not); GET /v1/models is api_models.c's. This file reads the request; oa_fields.c says which
 * fields exist and which values are refused, oa_format.c writes the answers.
 *
 * Fields map onto LightLLM's parameters (req_parse.c validates them): max_tokens
 * (max_completion_tokens), min_tokens, temperature (default 1: sampling), top_p, top_k, n
 * (best_of only equal to n), stop, stop_token_ids, seed (choice i of a prompt gets seed + i),
 * presence/frequency/repetition_penalty, ignore_eos, skip_special_tokens; the rest onto the
 * request directly: logit_bias, logprobs / top_logprobs, include_stop_str_in_output, echo,
 * truncate_prompt_tokens, add_special_tokens, add_generation_prompt (chat),
 * return_tokens_as_token_ids, request_id. A completions prompt is a string, a list of strings,
 * a list of token ids or a list of such lists: n choices each. Chat requests are rendered by the
 * model's chat template (chat.h: messages of any role, tools, add_generation_prompt,
 * continue_final_message, chat_template_kwargs). usage counts each prompt once and carries
 * prompt_tokens_details.cached_tokens: the prompt tokens the prefix cache supplied.
 */
#include "oa.h"
#include "../common/json_util.h"
#include "http_util.h"
#include "req_parse.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int api_openai_error(http_conn *c, int status, const char *msg)
{
    return oa_error(c, status, msg, NULL);
}

/* Copies FROM's field NAME to TO as AS (when present). */
static void map_field(cJSON *to, const cJSON *from, const char *name, const char *as)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, name);
    if (v && !cJSON_IsNull(v))
        cJSON_AddItemToObject(to, as, cJSON_Duplicate(v, 1));
}

/* A request being read: the fields at fault name themselves in the error. */
typedef struct {
    api_ctx *a;
    const cJSON *req;
    int chat;
    char err[512];
    const char *param;   /* the field the error is about */
} oa_req;

static int req_fail(oa_req *r, const char *param, const char *fmt, const char *what)
{
    r->param = param;
    snprintf(r->err, sizeof r->err, fmt, param, what);
    return -1;
}

static const cJSON *field(const oa_req *r, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(r->req, name);
}

/* Optional boolean NAME into *OUT. */
static int get_flag(oa_req *r, const char *name, int *out)
{
    const cJSON *v = field(r, name);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return req_fail(r, name, "%s must be %s", "true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Optional integer NAME in [lo, hi] into *OUT. */
static int get_count(oa_req *r, const char *name, int lo, int hi, int *out)
{
    const cJSON *v = field(r, name);
    if (!v)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "an integer from %d to %d", lo, hi);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return req_fail(r, name, "%s must be %s", what);
    *out = (int)v->valuedouble;
    return 0;
}

/* A message's content as text: a string, or the text parts [{"type": "text", "text": ...}]
 * joined; 0, or -1 when it is neither. */
static int content_text(const cJSON *content, text_buf *t)
{
    const cJSON *part;
    text_append(t, "", 0);
    if (cJSON_IsString(content))
        return text_append(t, content->valuestring, strlen(content->valuestring));
    if (!cJSON_IsArray(content))
        return -1;
    cJSON_ArrayForEach(part, content) {
        const cJSON *txt = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(txt))
            return -1;
        text_append(t, txt->valuestring, strlen(txt->valuestring));
    }
    return 0;
}

/* OpenAI's sampling fields as a LightLLM parameters object, validated by gen_req_parse_params
 * (an error names the OpenAI field). */
static int oa_sampling(oa_req *r, gen_req *g)
{
    static const char *const same[] = {"top_p", "top_k", "seed", "ignore_eos", "presence_penalty",
                                       "frequency_penalty", "repetition_penalty", "stop_token_ids",
                                       "n", "best_of", "skip_special_tokens"};
    /* LightLLM's name -> OpenAI's, for the messages */
    static const char *const ours[] = {"max_new_tokens", "stop_sequences", "min_new_tokens"};
    const char *theirs[] = {r->chat && field(r, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                            "stop", "min_tokens"};
    cJSON *p = cJSON_CreateObject();
    /* nulls were dropped (api_completions): a max_completion_tokens of null leaves max_tokens */
    map_field(p, r->req, theirs[0], "max_new_tokens");
    if (!cJSON_GetObjectItem(p, "max_new_tokens") && r->chat) /* chat default: up to the context */
        cJSON_AddNumberToObject(p, "max_new_tokens", r->a->f->max_seq_len);
    const cJSON *v = field(r, "temperature");
    map_field(p, r->req, "temperature", "temperature");
    cJSON_AddBoolToObject(p, "do_sample", !(v && cJSON_IsNumber(v)) || v->valuedouble > 0);
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        map_field(p, r->req, same[i], same[i]);
    map_field(p, r->req, "stop", "stop_sequences");
    map_field(p, r->req, "min_tokens", "min_new_tokens");
    int rc = gen_req_parse_params(g, p, r->a->f->max_seq_len, r->err, sizeof r->err);
    cJSON_Delete(p);
    if (rc && !strncmp(r->err, "parameters.", 11)) { /* messages name OpenAI's fields */
        char tmp[512], *msg = tmp;
        snprintf(tmp, sizeof tmp, "%s", r->err + 11);
        for (int i = 0; i < 3; i++)
            while ((msg = strstr(tmp, ours[i]))) {
                char rest[512];
                snprintf(rest, sizeof rest, "%s", msg + strlen(ours[i]));
                snprintf(msg, sizeof tmp - (size_t)(msg - tmp), "%s%s", theirs[i], rest);
            }
        snprintf(r->err, sizeof r->err, "%s", tmp);
        r->param = NULL;
        for (size_t i = 0; i < sizeof same / sizeof *same && !r->param; i++)
            if (!strncmp(tmp, same[i], strlen(same[i])) && !isalnum((unsigned char)tmp[strlen(same[i])]) &&
                tmp[strlen(same[i])] != '_')
                r->param = same[i];
        for (int i = 0; i < 3 && !r->param; i++)
            if (!strncmp(tmp, theirs[i], strlen(theirs[i])))
                r->param = theirs[i];
    }
    return rc;
}

/* logprobs (completions: the number of top alternatives, 0 to 20; chat: true or false, with
 * top_logprobs 0 to 20), into G and X. Echo with logprobs would need the prompt's logprobs:
 * refused. */
static int oa_logprobs(oa_req *r, gen_req *g, oa_ctx *x, int echo)
{
    const cJSON *lp = field(r, "logprobs");
    int n_top = 0, want = 0;
    if (r->chat) {
        if (get_flag(r, "logprobs", &want) || get_count(r, "top_logprobs", 0, STORE_TOP_LOGPROBS, &n_top))
            return -1;
        if (n_top > 0 && !want)
            return req_fail(r, "top_logprobs", "%s needs %s", "logprobs: true");
    } else if (lp && !cJSON_IsFalse(lp)) { /* false: none, as OpenAI's null */
        if (get_count(r, "logprobs", 0, STORE_TOP_LOGPROBS, &n_top))
            return -1;
        want = 1;
    }
    if (want && echo)
        return req_fail(r, "echo", "%s is not supported with %s (no prompt logprobs)", "logprobs");
    int vocab = (int)r->a->f->st.hdr->vocab_size;
    x->logprobs = g->logprobs = want;
    x->n_top = g->params.n_top_logprobs = n_top < vocab ? n_top : vocab;
    return 0;
}

/* The fields that are no LightLLM parameter: logit_bias, logprobs, echo, stop strings kept,
 * truncation, token ids as tokens, the streaming options. */
static int oa_extras(oa_req *r, gen_req *g, oa_ctx *x, int *echo, int *stream)
{
    const cJSON *so = field(r, "stream_options"), *v;
    if (gen_req_parse_logit_bias(g, field(r, "logit_bias"), (int)r->a->f->st.hdr->vocab_size, r->err,
                                 sizeof r->err)) {
        r->param = "logit_bias";
        return -1;
    }
    if (get_flag(r, "echo", echo) || get_flag(r, "stream", stream) ||
        get_flag(r, "include_stop_str_in_output", &g->include_stop_str) ||
        get_flag(r, "return_tokens_as_token_ids", &x->as_ids) ||
        get_count(r, "truncate_prompt_tokens", 1, r->a->f->max_seq_len, &g->truncate_prompt_tokens) ||
        oa_logprobs(r, g, x, *echo))
        return -1;
    if (so && cJSON_GetArraySize(so) && !*stream) /* {} (all null) is none, as vLLM */
        return req_fail(r, "stream_options", "%s %s", "are only allowed with stream: true");
    if (so && !cJSON_IsObject(so))
        return req_fail(r, "stream_options", "%s %s", "must be an object");
    cJSON_ArrayForEach(v, so) {
        int *flag = !strcmp(v->string, "include_usage") ? &x->include_usage
                  : !strcmp(v->string, "continuous_usage_stats") ? &x->continuous_usage : NULL;
        if (!flag)
            return req_fail(r, "stream_options", "%s: %s is not supported", v->string);
        if (!cJSON_IsBool(v))
            return req_fail(r, "stream_options", "%s: %s must be true or false", v->string);
        *flag = cJSON_IsTrue(v);
    }
    const cJSON *rid = field(r, "request_id");
    if (rid && (!cJSON_IsString(rid) || !*rid->valuestring || strlen(rid->valuestring) > 64))
        return req_fail(r, "request_id", "%s must be %s", "a string of 1 to 64 characters");
    if (rid)
        snprintf(x->id, sizeof x->id, "%s-%s", r->chat ? "chatcmpl" : "cmpl", rid->valuestring);
    else
        snprintf(x->id, sizeof x->id, "%s-%llx", r->chat ? "chatcmpl" : "cmpl",
                 (unsigned long long)atomic_load(&r->a->f->st.hdr->next_req_id) ^
                     (unsigned long long)now_us() << 20);
    return 0;
}

/* Token ids of a prompt given as a list V into IDS (appended); 0 or -1 with the error. */
static int prompt_ids(oa_req *r, const cJSON *v, int32_t *ids, int *n_ids)
{
    const cJSON *e;
    int vocab = (int)r->a->f->st.hdr->vocab_size, n = 0;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble >= vocab) {
            char what[64];
            snprintf(what, sizeof what, "(0 to %d)", vocab - 1);
            return req_fail(r, "prompt", "%s: a token id is not one of this model's %s", what);
        }
        ids[(*n_ids)++] = (int32_t)e->valuedouble;
        n++;
    }
    if (n == 0)
        return req_fail(r, "prompt", "%s: %s", "a list of token ids must not be empty");
    return 0;
}

/* A completions prompt: a string, a list of strings, a list of token ids, or a list of such
 * lists. Fills P [*n_p] (malloc'd; the ids in *IDS, malloc'd) and each prompt's echo text
 * into ECHO (malloc'd [*n_p]) when asked; 0 or -1 with the error. */
static int oa_prompts(oa_req *r, serve_prompt **p, int *n_p, int32_t **ids, text_buf **echo, int want_echo)
{
    const cJSON *v = field(r, "prompt"), *e;
    int kinds = 0, count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    if (!cJSON_IsString(v) && !cJSON_IsArray(v))
        return req_fail(r, "prompt", "%s must be %s", "a string, a list of strings or a list of token ids");
    if (count < 1)
        return req_fail(r, "prompt", "%s %s", "must not be an empty list");
    size_t n_ints = 0;
    if (cJSON_IsArray(v))
        cJSON_ArrayForEach(e, v) {
            kinds |= cJSON_IsString(e) ? 1 : cJSON_IsNumber(e) ? 2 : cJSON_IsArray(e) ? 4 : 8;
            n_ints += cJSON_IsArray(e) ? (size_t)cJSON_GetArraySize(e) : 1;
        }
    if (kinds != 0 && kinds != 1 && kinds != 2 && kinds != 4)
        return req_fail(r, "prompt", "%s must be %s", "a string, a list of strings, a list of token ids "
                        "or a list of lists of token ids (not a mix)");
    if (kinds == 2)
        count = 1; /* one prompt of token ids */
    *p = calloc((size_t)count, sizeof **p);
    *ids = malloc((n_ints + 1) * sizeof **ids);
    *echo = want_echo ? calloc((size_t)count, sizeof **echo) : NULL;
    if (!*p || !*ids || (want_echo && !*echo))
        return req_fail(r, "prompt", "%s: %s", "out of memory");
    *n_p = count;
    int n_ids = 0, i = 0;
    if (cJSON_IsString(v)) {
        (*p)[0] = (serve_prompt){.text = v->valuestring, .n_text = strlen(v->valuestring)};
    } else if (kinds == 2) {
        if (prompt_ids(r, v, *ids, &n_ids))
            return -1;
        (*p)[0] = (serve_prompt){.ids = *ids, .n_ids = n_ids};
    } else {
        cJSON_ArrayForEach(e, v) {
            int start = n_ids;
            if (cJSON_IsString(e))
                (*p)[i] = (serve_prompt){.text = e->valuestring, .n_text = strlen(e->valuestring)};
            else if (prompt_ids(r, e, *ids, &n_ids))
                return -1;
            else
                (*p)[i] = (serve_prompt){.ids = *ids + start, .n_ids = n_ids - start};
            i++;
        }
    }
    for (i = 0; want_echo && i < count; i++) { /* the prompt as text: as given, or decoded */
        const serve_prompt *q = &(*p)[i];
        if (q->text) {
            text_append(&(*echo)[i], q->text, q->n_text);
            continue;
        }
        int64_t n = tok_decode(r->a->f->tok, q->ids, (size_t)q->n_ids, 0, NULL, 0);
        char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (s && tok_decode(r->a->f->tok, q->ids, (size_t)q->n_ids, 0, s, (size_t)n) == n)
            text_append(&(*echo)[i], s, (size_t)n);
        free(s);
    }
    return 0;
}

/* vLLM's chat echo: the last message's content before each choice's, when that message has
 * the answer's role (the assistant's with add_generation_prompt, else its own). */
static void chat_echo(const cJSON *msgs, int add_gen, text_buf *echo)
{
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
    text_append(echo, "", 0);
    if (!add_gen || (cJSON_IsString(role) && !strcmp(role->valuestring, "assistant")))
        content_text(cJSON_GetObjectItemCaseSensitive(last, "content"), echo);
}

/* The request's model, when given, must be the one served (the caller answers 404). */
static int check_model(oa_req *r)
{
    const cJSON *model = field(r, "model");
    if (!model || (cJSON_IsString(model) && !strcmp(model->valuestring, r->a->model_name)))
        return 0;
    r->param = "model";
    snprintf(r->err, sizeof r->err, "The model `%s` does not exist",
             cJSON_IsString(model) ? model->valuestring : "?");
    return -1;
}

/* A chat request's one prompt (malloc'd, *LEN bytes), or NULL: the model's chat template (chat.h)
 * renders the whole request BODY. With ECHO, *ECHO gets chat_echo's text. */
static char *chat_prompt(oa_req *r, const char *body, size_t n, size_t *len, int add_gen, text_buf **echo)
{
    char *text;
    if (!r->a->chat) {
        snprintf(r->err, sizeof r->err, "%s", r->a->chat_err);
        return NULL;
    }
    if (!(text = chat_render(r->a->chat, body, n, len, r->err, sizeof r->err))) {
        r->param = "messages";
        return NULL;
    }
    if (echo && (*echo = calloc(1, sizeof **echo)))
        chat_echo(field(r, "messages"), add_gen, *echo);
    return text;
}

int api_completions(api_ctx *a, http_conn *c, int chat)
{
    char *body = NULL;
    long n = http_read_body(c, &body);
    if (n < 0)
        return api_openai_error(c, (int)-n, http_body_error(n));
    oa_req r = {.a = a, .chat = chat};
    cJSON *req = json_parse_body(body, (size_t)n, r.err, sizeof r.err);
    r.req = req;
    int status = 400, n_prompts = 1, echo = 0, stream = 0, add_gen = 1;
    int add_special = !chat; /* a template carries its own BOS; plain text gets the tokenizer's */
    char *chat_text = NULL;
    serve_prompt *prompts = NULL, one;
    int32_t *ids = NULL;
    text_buf *echo_text = NULL;
    long *offsets = NULL;
    gen_req g;
    memset(&g, 0, sizeof g);
    oa_ctx x = {.a = a, .chat = chat, .created = (long)time(NULL)};
    if (!cJSON_IsObject(req)) {
        if (req)
            snprintf(r.err, sizeof r.err, "the body must be a JSON object");
        goto fail;
    }
    json_drop_nulls(req); /* every optional field given as null is absent */
    json_drop_nulls(cJSON_GetObjectItemCaseSensitive(req, "stream_options"));
    if (check_model(&r)) {
        status = 404;
        goto fail;
    }
    if (oa_fields_check(req, chat, r.err, sizeof r.err, &r.param) || oa_sampling(&r, &g) ||
        oa_extras(&r, &g, &x, &echo, &stream) || get_flag(&r, "add_special_tokens", &add_special) ||
        (chat && get_flag(&r, "add_generation_prompt", &add_gen)))
        goto fail;
    if (chat) {
        size_t len = 0;
        if (!(chat_text = chat_prompt(&r, body, (size_t)n, &len, add_gen, echo ? &echo_text : NULL)))
            goto fail;
        one = (serve_prompt){.text = chat_text, .n_text = len};
        prompts = &one;
    } else if (oa_prompts(&r, &prompts, &n_prompts, &ids, &echo_text, echo)) {
        goto fail;
    }
    if (n_prompts * g.n > REQ_MAX_CHOICES) {
        snprintf(r.err, sizeof r.err, "n (%d) times the prompts (%d) must not exceed %d choices", g.n, n_prompts,
                 REQ_MAX_CHOICES);
        r.param = "n";
        goto fail;
    }
    x.echo = echo_text;
    if (!(offsets = calloc((size_t)(n_prompts * g.n), sizeof *offsets))) {
        status = 503;
        snprintf(r.err, sizeof r.err, "out of memory");
        goto fail;
    }
    x.offset = offsets;
    api_out o = oa_out(&x, stream);
    status = serve_generate(a->f, c, &g, prompts, n_prompts, add_special, &o);
    goto out;
fail:
    status = oa_error(c, status, r.err, r.param);
out:
    if (echo_text)
        for (int i = 0; i < n_prompts; i++)
            text_free(&echo_text[i]);
    free(echo_text);
    free(offsets);
    if (prompts != &one)
        free(prompts);
    free(ids);
    free(chat_text);
    free(body);
    cJSON_Delete(req);
    return status;
}
