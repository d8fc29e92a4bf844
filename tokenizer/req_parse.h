/* req_parse.h - validation of a /generate request body into what the slot needs.
 *
 * LightLLM's request shape: {"inputs": str, "parameters": {"max_new_tokens", "min_new_tokens",
 * "do_sample", "temperature", "top_p", "top_k", "seed", "ignore_eos", "stop_sequences",
 * "repetition_penalty", "frequency_penalty", "presence_penalty", "stop_token_ids",
 * "skip_special_tokens", "n", "best_of", "return_details"}}. Every wrong type or value, and
 * every parameter not in that list, is an error message for a 400 answer naming it; nothing
 * here trusts the client. The OpenAI API maps its fields onto the same parameters and sets the
 * rest of gen_req (logit_bias, logprobs, include_stop_str) itself.
 */
#ifndef CINDER_REQ_PARSE_H
#define CINDER_REQ_PARSE_H

#include <stddef.h>
#include "../common/store.h"

typedef struct {
    char *inputs;            /* malloc'd, NUL-terminated (a NUL in the request is refused) */
    size_t n_inputs;
    sampling_params params;
    int seed_given;
    int n_stop;
    char stop[STORE_STOP_BYTES]; /* NUL-separated */
    int n_stop_ids;
    int32_t stop_ids[STORE_MAX_STOP_IDS];
    int n;                   /* choices per prompt (1..REQ_MAX_CHOICES) */
    int return_details;      /* LightLLM: per-token details in the answer */
    int keep_special;        /* skip_special_tokens = false: special tokens' text is kept */
    int include_stop_str;    /* a matched stop string stays in the text */
    int logprobs;            /* OpenAI: each token's logprob in the answer (top ones: the
                                params' n_top_logprobs) */
    int truncate_prompt_tokens; /* vLLM's: only the prompt's last this many tokens (0 = all) */
} gen_req;

#define REQ_DEFAULT_MAX_NEW 16
#define REQ_MAX_CHOICES 128  /* n times the prompts of one request (OpenAI's n limit) */

/* Parses BODY (LEN bytes). 0, or -1 with a message in ERR. MAX_NEW_CAP bounds max_new_tokens.
 * On success the caller frees with gen_req_free. */
int gen_req_parse(gen_req *r, const char *body, size_t len, int max_new_cap, char *err, size_t n_err);
void gen_req_free(gen_req *r);

/* Validates a LightLLM "parameters" object P (may be NULL) into R's sampling parameters and
 * stops (R's inputs untouched); 0, or -1 with ERR. Other APIs map their fields onto it. */
typedef struct cJSON cJSON;
int gen_req_parse_params(gen_req *r, const cJSON *p, int max_new_cap, char *err, size_t n_err);

/* OpenAI's logit_bias, V (may be NULL): {"token id": bias in [-100, 100], ...}, ids below
 * VOCAB, at most SAMPLING_MAX_LOGIT_BIAS of them; a zero bias is dropped (it changes nothing),
 * an id given twice keeps its last bias. 0, or -1 with ERR naming logit_bias. */
int gen_req_parse_logit_bias(gen_req *r, const cJSON *v, int vocab, char *err, size_t n_err);

#endif
