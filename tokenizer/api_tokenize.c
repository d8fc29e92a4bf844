/* api_tokenize.c - vLLM's tokenizer endpoints, with the model's own tokenizer.
 *
 *   POST /tokenize    {"model"?, "prompt": str, "add_special_tokens"?: true}
 *                  or {"model"?, "messages": [...], "add_special_tokens"?, "add_generation_prompt"?: true}
 *                     -> {"count", "max_model_len", "tokens": [ids], "token_strs": null}
 *   POST /detokenize  {"model"?, "tokens": [ids]} -> {"prompt": str}
 *
 * "messages" go through the same chat template as /v1/chat/completions, and by default get
 * the same special tokens, so "count" is what a chat request with them would be billed.
 * Fields these endpoints do not implement (vLLM's return_token_strs, continue_final_message,
 * chat_template, tools, ...) are refused by name. Errors: 4xx with {"error": message}.
 */
#include "api.h"
#include "../common/json_util.h"
#include "http_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The request body as a JSON object whose fields are all among KNOWN (NULL-terminated);
 * NULL with *STATUS and ERR set otherwise. */
static cJSON *read_request(api_ctx *a, http_conn *c, const char *const *known, int *status, char *err,
                           size_t n_err)
{
    char *body = NULL;
    long n = http_read_body(c, &body);
    if (n < 0) {
        *status = (int)-n;
        snprintf(err, n_err, "%s", http_body_error(n));
        return NULL;
    }
    *status = 400;
    cJSON *req = json_parse_body(body, (size_t)n, err, n_err);
    free(body);
    if (!req)
        return NULL;
    if (!cJSON_IsObject(req)) {
        snprintf(err, n_err, "the body must be a JSON object");
        goto fail;
    }
    json_drop_nulls(req);
    const cJSON *f;
    cJSON_ArrayForEach(f, req) {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++)
            ok = !strcmp(f->string, *k);
        if (!ok) {
            snprintf(err, n_err, "\"%.64s\" is not supported here", f->string);
            goto fail;
        }
    }
    if ((*status = api_check_model(a, req, err, n_err)))
        goto fail;
    return req;
fail:
    cJSON_Delete(req);
    return NULL;
}

/* Boolean field NAME of REQ (DEF when absent): 0 or 1, or -1 with ERR */
static int get_bool(const cJSON *req, const char *name, int def, char *err, size_t n_err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v)
        return def;
    if (!cJSON_IsBool(v)) {
        snprintf(err, n_err, "\"%s\" must be true or false", name);
        return -1;
    }
    return cJSON_IsTrue(v);
}

/* Encodes TEXT (N bytes) into a malloc'd array; its length, or -1 (invalid UTF-8) / -2 */
static int64_t encode_all(api_ctx *a, const char *text, size_t n, int add_special, int32_t **ids)
{
    size_t cap = 4096;
    for (;;) {
        int32_t *p = realloc(*ids, cap * sizeof *p);
        if (!p)
            return -2;
        *ids = p;
        int64_t k = encode_pool_run(a->f->encoders, text, n, add_special, p, cap);
        if (k < 0 || (size_t)k <= cap)
            return k < 0 ? -1 : k;
        cap = (size_t)k;
    }
}

int api_tokenize(api_ctx *a, http_conn *c)
{
    static const char *const known[] = {"model", "prompt", "messages", "add_special_tokens",
                                         "add_generation_prompt", "return_token_strs",
                                         "continue_final_message", "tools", "tool_choice",
                                         "chat_template_kwargs", "documents", NULL};
    char err[512];
    int status;
    cJSON *req = read_request(a, c, known, &status, err, sizeof err);
    if (!req)
        return http_send_error(c, status, err);
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    cJSON *answer = NULL; /* what a 200 says */
    /* a template carries its own special tokens; plain text gets the tokenizer's */
    int add_special = get_bool(req, "add_special_tokens", !msgs, err, sizeof err);
    int token_strs = get_bool(req, "return_token_strs", 0, err, sizeof err);
    status = 400;
    if (add_special < 0 || token_strs < 0)
        goto fail;
    if (token_strs) {
        snprintf(err, sizeof err, "%s is not supported", "return_token_strs: true");
        goto fail;
    }
    if (!prompt == !msgs) {
        snprintf(err, sizeof err, "give either \"prompt\" (a string) or \"messages\"");
        goto fail;
    }
    if (msgs) { /* rendered as /v1/chat/completions renders it (chat.h) */
        if (!a->chat) {
            snprintf(err, sizeof err, "%s", a->chat_err);
            goto fail;
        }
        char *body = cJSON_PrintUnformatted(req);
        text = body ? chat_render(a->chat, body, strlen(body), &n, err, sizeof err) : NULL;
        cJSON_free(body);
        if (!text)
            goto fail;
    } else if (!cJSON_IsString(prompt)) {
        snprintf(err, sizeof err, "\"prompt\" must be a string");
        goto fail;
    }
    int64_t k = msgs ? encode_all(a, text, n, add_special, &ids)
                     : encode_all(a, prompt->valuestring, strlen(prompt->valuestring), add_special, &ids);
    if (k < 0) {
        snprintf(err, sizeof err, k == -1 ? "the prompt is not valid UTF-8" : "out of memory");
        status = k == -1 ? 400 : 500;
        goto fail;
    }
    answer = cJSON_CreateObject();
    cJSON_AddNumberToObject(answer, "count", (double)k);
    cJSON_AddNumberToObject(answer, "max_model_len", a->f->max_seq_len);
    cJSON_AddItemToObject(answer, "tokens", cJSON_CreateIntArray(ids, (int)k));
    cJSON_AddNullToObject(answer, "token_strs");
fail:
    free(ids);
    free(text);
    cJSON_Delete(req);
    return answer ? (http_send_cjson(c, 200, answer), 200) : http_send_error(c, status, err);
}

int api_detokenize(api_ctx *a, http_conn *c)
{
    static const char *const known[] = {"model", "tokens", NULL};
    char err[512];
    int status;
    cJSON *req = read_request(a, c, known, &status, err, sizeof err);
    if (!req)
        return http_send_error(c, status, err);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(req, "tokens"), *t;
    int n = cJSON_GetArraySize(tokens), vocab = tok_vocab_size(a->f->tok), i = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
    char *text = NULL;
    cJSON *answer = NULL; /* what a 200 says */
    status = 400;
    if (!cJSON_IsArray(tokens)) {
        snprintf(err, sizeof err, "\"tokens\" must be a list of token ids");
        goto fail;
    }
    if (!ids) {
        snprintf(err, sizeof err, "out of memory");
        status = 500;
        goto fail;
    }
    cJSON_ArrayForEach(t, tokens) {
        if (!cJSON_IsNumber(t) || t->valuedouble != (double)(int32_t)t->valuedouble || t->valuedouble < 0 ||
            t->valuedouble >= vocab) {
            snprintf(err, sizeof err, "tokens[%d] is not a token id of this model (0 to %d)", i, vocab - 1);
            goto fail;
        }
        ids[i++] = (int32_t)t->valuedouble;
    }
    int64_t len = tok_decode(a->f->tok, ids, (size_t)n, 0, NULL, 0);
    if (len < 0 || !(text = malloc((size_t)len + 1)) ||
        tok_decode(a->f->tok, ids, (size_t)n, 0, text, (size_t)len + 1) != len) {
        snprintf(err, sizeof err, "cannot decode these tokens");
        status = 500;
        goto fail;
    }
    text[len] = 0;
    answer = cJSON_CreateObject();
    cJSON_AddStringToObject(answer, "prompt", text);
fail:
    free(text);
    free(ids);
    cJSON_Delete(req);
    return answer ? (http_send_cjson(c, 200, answer), 200) : http_send_error(c, status, err);
}
