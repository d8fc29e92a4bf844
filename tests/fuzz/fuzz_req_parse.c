/* fuzz_req_parse.c - libFuzzer target: /generate request bodies through gen_req_parse.
 *
 * Any bytes must give 0 or -1 with a message, never a crash or a leak. Parsing runs on a
 * thread with the stack of the HTTP handler threads (HTTP_THREAD_STACK_BYTES, http_pool.h),
 * so recursion as deep as a hostile body can nest (cJSON allows 1000 levels) is a crash here
 * as it is there. An
 * accepted body must be one JSON value (nothing but whitespace after it), must not lose
 * characters (a NUL byte, or a \u0000 or malformed \u escape, would silently cut a C string),
 * and every parsed value must lie in its documented range. Parsing is deterministic and a
 * larger max_new_tokens cap accepts a superset.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "../../tokenizer/http_pool.h"
#include "../../tokenizer/req_parse.h"
#include "fuzz_util.h"

#define CAP_SMALL 256
#define CAP_LARGE (1 << 20)
#define STACK_BYTES HTTP_THREAD_STACK_BYTES /* as the HTTP handler threads */

/* 1 if BODY holds a NUL byte, or a \u escape that is \u0000 or lacks four hex digits (cJSON
 * 1.7 decodes those to NUL) */
static int has_nul(const char *body, size_t n)
{
    if (memchr(body, 0, n))
        return 1;
    for (size_t i = 0; i + 1 < n; i++) {
        if (body[i] != '\\')
            continue;
        if (body[i + 1] == 'u') {
            if (i + 5 >= n || !memcmp(body + i + 2, "0000", 4))
                return 1;
            for (size_t k = i + 2; k < i + 6; k++)
                if (!strchr("0123456789abcdefABCDEF", body[k]))
                    return 1;
        }
        i++; /* skip the escaped character */
    }
    return 0;
}

/* 1 if the JSON value at the start of BODY is followed only by whitespace. */
static int one_value(const char *body, size_t n)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, n, &end, 0);
    cJSON_Delete(j);
    if (!j || !end)
        return 0;
    while (end < body + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    return end == body + n;
}

static void check_ranges(const gen_req *r, int cap)
{
    const sampling_params *p = &r->params;
    FUZZ_CHECK(r->inputs && strlen(r->inputs) == r->n_inputs);
    FUZZ_CHECK(p->max_new_tokens >= 1 && p->max_new_tokens <= cap);
    FUZZ_CHECK(isfinite(p->temperature) && p->temperature >= 0 && p->temperature <= 100);
    FUZZ_CHECK(isfinite(p->top_p) && p->top_p > 0 && p->top_p <= 1);
    FUZZ_CHECK(p->top_k >= 0 && p->top_k <= (1 << 30));
    FUZZ_CHECK(isfinite(p->repetition_penalty) && p->repetition_penalty > 0 && p->repetition_penalty <= 100);
    FUZZ_CHECK(isfinite(p->frequency_penalty) && fabsf(p->frequency_penalty) <= 2);
    FUZZ_CHECK(isfinite(p->presence_penalty) && fabsf(p->presence_penalty) <= 2);
    FUZZ_CHECK(p->ignore_eos <= 1);
    FUZZ_CHECK(r->seed_given || p->seed == 0);
    FUZZ_CHECK(p->min_tokens >= 0 && p->min_tokens <= p->max_new_tokens);
    FUZZ_CHECK(r->n >= 1 && r->n <= REQ_MAX_CHOICES);
    FUZZ_CHECK((r->return_details | r->keep_special) <= 1 && r->return_details >= 0 && r->keep_special >= 0);
    FUZZ_CHECK(p->n_logit_bias == 0 && p->n_top_logprobs == 0 && !r->logprobs); /* OpenAI's only */
    /* n_stop nonempty NUL-terminated strings back to back inside stop[] */
    size_t off = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t len = strnlen(r->stop + off, sizeof r->stop - off);
        FUZZ_CHECK(len > 0 && off + len < sizeof r->stop);
        off += len + 1;
    }
    FUZZ_CHECK(r->n_stop >= 0 && r->n_stop_ids >= 0 && r->n_stop_ids <= STORE_MAX_STOP_IDS);
    for (int i = 0; i < r->n_stop_ids; i++)
        FUZZ_CHECK(r->stop_ids[i] >= 0);
}

typedef struct {
    const uint8_t *data;
    size_t size;
} input;

static void *parse_main(void *arg)
{
    const input *in = arg;
    const char *body = (const char *)in->data;
    size_t size = in->size;
    char err[512], err2[512];
    gen_req a, b;
    memset(err, 0x55, sizeof err);
    int rc = gen_req_parse(&a, body, size, CAP_SMALL, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc) {
        FUZZ_CHECK(memchr(err, 0, sizeof err) && err[0]);
        gen_req_free(&a);
        return NULL;
    }
    check_ranges(&a, CAP_SMALL);
    FUZZ_CHECK(one_value(body, size));
    FUZZ_CHECK(!has_nul(body, size));
    /* the same body with a larger cap: accepted, same request */
    FUZZ_CHECK(gen_req_parse(&b, body, size, CAP_LARGE, err2, sizeof err2) == 0);
    FUZZ_CHECK(b.n_inputs == a.n_inputs && !memcmp(a.inputs, b.inputs, a.n_inputs));
    FUZZ_CHECK(!memcmp(&a.params, &b.params, sizeof a.params) && a.seed_given == b.seed_given);
    FUZZ_CHECK(a.n_stop == b.n_stop && !memcmp(a.stop, b.stop, sizeof a.stop));
    FUZZ_CHECK(a.n_stop_ids == b.n_stop_ids && !memcmp(a.stop_ids, b.stop_ids, sizeof a.stop_ids));
    FUZZ_CHECK(a.n == b.n && a.return_details == b.return_details && a.keep_special == b.keep_special);
    gen_req_free(&a);
    gen_req_free(&b);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    pthread_attr_t attr;
    pthread_t th;
    FUZZ_CHECK(pthread_attr_init(&attr) == 0 && pthread_attr_setstacksize(&attr, STACK_BYTES) == 0);
    FUZZ_CHECK(pthread_create(&th, &attr, parse_main, &in) == 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    return 0;
}
