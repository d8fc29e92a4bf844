/* req_parse.h - validation of a /generate request body into what the slot needs.
 *
 * LightLLM's request shape: {"inputs": str, "parameters": {"max_new_tokens", "do_sample",
 * "temperature", "top_p", "top_k", "seed", "ignore_eos", "stop_sequences",
 * "repetition_penalty", "frequency_penalty", "presence_penalty", "stop_token_ids"}}. Every wrong type or value
 * is an error message for a 400 answer; nothing here trusts the client.
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
} gen_req;

#define REQ_DEFAULT_MAX_NEW 16

/* Parses BODY (LEN bytes). 0, or -1 with a message in ERR. MAX_NEW_CAP bounds max_new_tokens.
 * On success the caller frees with gen_req_free. */
int gen_req_parse(gen_req *r, const char *body, size_t len, int max_new_cap, char *err, size_t n_err);
void gen_req_free(gen_req *r);

/* Validates a LightLLM "parameters" object P (may be NULL) into R's sampling parameters and
 * stops (R's inputs untouched); 0, or -1 with ERR. Other APIs map their fields onto it. */
typedef struct cJSON cJSON;
int gen_req_parse_params(gen_req *r, const cJSON *p, int max_new_cap, char *err, size_t n_err);

#endif
