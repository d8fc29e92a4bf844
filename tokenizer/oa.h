/* oa.h - the pieces of the OpenAI-compatible API shared by its files: api_openai.c (the
 * request: fields, prompts, messages, onto a gen_req), oa_fields.c (which fields are
 * implemented, accepted as no-ops, or refused) and oa_format.c (the answers: chunks and
 * choices, logprobs, usage, errors).
 */
#ifndef CINDER_OA_H
#define CINDER_OA_H

#include "api.h"
#include "serve.h"

#include <stddef.h>

#define OA_LOGPROB_FLOOR -9999.0 /* what -inf is shown as (JSON has no infinity; vLLM's value) */

typedef struct {
    api_ctx *a;
    int chat;
    int include_usage;       /* stream_options.include_usage: a last chunk with the usage */
    int continuous_usage;    /* stream_options.continuous_usage_stats: usage in every chunk */
    int logprobs;            /* 0: none; 1: each token's logprob ... */
    int n_top;               /* ... and this many top alternatives (0..20) */
    int as_ids;              /* return_tokens_as_token_ids: tokens as "token_id:N" */
    const text_buf *echo;    /* [n_prompts] text before each choice's (echo), or NULL */
    long *offset;            /* [n_choices] completions' text_offset so far (code points) */
    char id[96];
    long created;
} oa_ctx;

/* The api_out of an OpenAI answer (streamed or not) over X. */
api_out oa_out(oa_ctx *x, int stream);

/* OpenAI's error object {"error": {"message", "type", "param", "code"}} with STATUS; PARAM
 * names the request field at fault, or NULL. Returns STATUS. */
int oa_error(http_conn *c, int status, const char *msg, const char *param);

/* Checks every top-level field of REQ (chat or completions): 0, or -1 with a message in ERR
 * and the field in *PARAM. */
int oa_fields_check(const cJSON *req, int chat, char *err, size_t n_err, const char **param);

#endif
