/* test_params.c - end to end on the reference backend (four real processes, real HTTP,
 * stories15M): the request parameters beyond the basic ones each do what they say, or are
 * refused with a 400 that names them.
 *
 *  - logprobs: the values equal the log-softmax of the CPU backend's own logits, computed
 *    here in-process (same weights, same code) for the same tokens; top_logprobs sorted, the
 *    greedy token's logprob the top one, their mass at most 1; completions and chat shapes,
 *    streamed equal to not streamed;
 *  - logit_bias {id: -100} removes the greedy token (the next most likely one comes instead);
 *    min_tokens keeps EOS (forced by a +100 bias) and stop token ids from ending the request;
 *  - n: seeded choices are reproducible, choice i is the single request with seed + i, greedy
 *    choices are equal, and the choices of a prompt share its KV blocks (prefix cache hits);
 *  - echo, prompt lists, token-id prompts, truncate_prompt_tokens, include_stop_str_in_output,
 *    skip_special_tokens, return_tokens_as_token_ids, add_special_tokens, request_id, chat
 *    echo, continuous usage stats, LightLLM's return_details;
 *  - each refused parameter (both endpoints and /generate) gets a 400 naming it;
 *  - at the end every slot is back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../worker/backend.h"
#include "cluster.h"
#include "http_client.h"

static cluster C;

static int setup(void **state) { return cluster_start(&C, CLUSTER_CHAT_TEMPLATE); }
static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
}

/* POSTs BODY to PATH; the parsed answer (caller frees), the status in *STATUS. */
static cJSON *post(const char *path, const char *body, int *status)
{
    http_resp r;
    http_request(C.port, "POST", path, body, &r);
    *status = r.status;
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    if (r.status != 200)
        printf("# %s %s -> %d %s\n", path, body, r.status, r.body ? r.body : "");
    http_resp_free(&r);
    return j;
}

static cJSON *post_ok(const char *path, const char *body)
{
    int status;
    cJSON *j = post(path, body, &status);
    assert_int_equal(status, 200);
    assert_non_null(j);
    return j;
}

static cJSON *choice(const cJSON *j, int i) { return cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), i); }
static const char *choice_text(const cJSON *j, int i)
{
    const cJSON *t = cJSON_GetObjectItem(choice(j, i), "text");
    return cJSON_IsString(t) ? t->valuestring : "(none)";
}
static double num(const cJSON *j, const char *name) { return cJSON_GetObjectItem(j, name)->valuedouble; }

/* "token_id:N" -> N */
static int token_id(const char *s)
{
    assert_int_equal(strncmp(s, "token_id:", 9), 0);
    return atoi(s + 9);
}

/* ---- the reference: the CPU backend in this process, greedy over PROMPT [n] for STEPS tokens;
 * the log-softmax of the logits at each step into LP [steps, vocab], the tokens into OUT. */
static int reference(const int32_t *prompt, int n, int steps, float *lp, int32_t *out, int vocab)
{
    char err[256];
    backend_opts o = {.model_dir = "models/stories15M", .block_size = 16, .max_seq_len = 256,
                      .max_batch_tokens = 256, .max_seqs = 4, .kv_tokens = 512, .n_threads = 2};
    backend *b = cpu_backend_init(&o, err, sizeof err);
    if (!b) {
        printf("# cpu backend: %s\n", err);
        return -1;
    }
    int32_t tokens[256], blocks[16];
    for (int i = 0; i < 16; i++)
        blocks[i] = i;
    memcpy(tokens, prompt, (size_t)n * sizeof *tokens);
    sampling_params sp = {.max_new_tokens = steps, .top_p = 1, .repetition_penalty = 1};
    int32_t top_ids[FWD_MAX_TOP_LOGPROBS];
    float top_lps[FWD_MAX_TOP_LOGPROBS];
    int cached = 0, rc = 0;
    for (int s = 0; s < steps && !rc; s++) {
        fwd_seq q = {.n_cached = cached, .n_new = n - cached, .sample = 1, .tokens = tokens, .n_prompt = n,
                     .block_table = blocks, .params = &sp, .out_top_ids = top_ids, .out_top_lps = top_lps};
        fwd_batch batch = {1, &q};
        if ((rc = b->forward(b, &batch)) != 0)
            break;
        const float *l = b->last_logits(b, 0);
        double max = l[0], sum = 0;
        for (int i = 1; i < vocab; i++)
            max = l[i] > max ? l[i] : max;
        for (int i = 0; i < vocab; i++)
            sum += exp((double)l[i] - max);
        for (int i = 0; i < vocab; i++)
            lp[(size_t)s * vocab + i] = (float)((double)l[i] - max - log(sum));
        out[s] = q.out_token;
        cached = n;
        tokens[n++] = q.out_token;
    }
    b->free(b);
    return rc;
}

/* Completions logprobs (tokens as ids) against the reference, 4 greedy tokens: the sampled
 * token is the reference's, its logprob the reference's log-softmax, the top 5 the
 * reference's 5 largest, sorted, the first the sampled one, their mass at most 1. */
static void test_logprobs_match_reference(void **state)
{
    enum { STEPS = 4, TOP = 5, V = 32000 };
    cJSON *j = post_ok("/v1/completions",
                       "{\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"temperature\":0,\"logprobs\":5,"
                       "\"return_tokens_as_token_ids\":true}");
    const cJSON *lp = cJSON_GetObjectItem(choice(j, 0), "logprobs");
    const cJSON *toks = cJSON_GetObjectItem(lp, "tokens"), *tlp = cJSON_GetObjectItem(lp, "token_logprobs");
    const cJSON *top = cJSON_GetObjectItem(lp, "top_logprobs"), *off = cJSON_GetObjectItem(lp, "text_offset");
    assert_int_equal(cJSON_GetArraySize(toks), STEPS);
    assert_int_equal(cJSON_GetArraySize(tlp), STEPS);
    assert_int_equal(cJSON_GetArraySize(top), STEPS);
    assert_int_equal(cJSON_GetArraySize(off), STEPS);
    float *ref = malloc(sizeof(float) * STEPS * V);
    int32_t out[STEPS];
    assert_int_equal(reference((const int32_t[]){1, 9038, 2501, 263, 931}, 5, STEPS, ref, out, V), 0);
    for (int s = 0; s < STEPS; s++) {
        const float *r = ref + (size_t)s * V;
        int id = token_id(cJSON_GetArrayItem(toks, s)->valuestring);
        assert_int_equal(id, out[s]);
        double got = cJSON_GetArrayItem(tlp, s)->valuedouble;
        assert_true(fabs(got - r[id]) < 1e-4);
        const cJSON *e, *d = cJSON_GetArrayItem(top, s);
        assert_int_equal(cJSON_GetArraySize(d), TOP); /* the sampled one is among them */
        double prev = INFINITY, mass = 0;
        int k = 0;
        cJSON_ArrayForEach(e, d) {
            int tid = token_id(e->string);
            assert_true(fabs(e->valuedouble - r[tid]) < 1e-4);
            assert_true(e->valuedouble <= prev);
            if (k == 0)
                assert_int_equal(tid, id); /* greedy: the sampled token is the most likely */
            int n_above = 0;                /* the k-th most likely of the whole vocabulary */
            for (int i = 0; i < V; i++)
                n_above += r[i] > r[tid];
            assert_true(n_above <= k);
            prev = e->valuedouble;
            mass += exp(e->valuedouble);
            k++;
        }
        assert_true(mass <= 1 + 1e-6);
    }
    free(ref);
    cJSON_Delete(j);
}

/* Streamed logprobs and text equal the non-streamed ones; chat's shape. */
static void test_logprobs_stream_and_chat(void **state)
{
    cJSON *j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,"
                                          "\"logprobs\":2}");
    const cJSON *lp = cJSON_GetObjectItem(choice(j, 0), "logprobs");
    http_resp r;
    http_request(C.port, "POST", "/v1/completions",
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"logprobs\":2,\"stream\":true}", &r);
    assert_int_equal(r.status, 200);
    char text[1024] = "";
    int n_tok = 0;
    for (char *p = r.body; (p = strstr(p, "data: {")); p++) {
        cJSON *e = cJSON_Parse(p + 6);
        assert_non_null(e);
        const cJSON *c0 = choice(e, 0), *l = cJSON_GetObjectItem(c0, "logprobs"), *t;
        strncat(text, cJSON_GetObjectItem(c0, "text")->valuestring, sizeof text - strlen(text) - 1);
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(l, "tokens")) {
            assert_string_equal(t->valuestring, cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "tokens"), n_tok)->valuestring);
            n_tok++;
        }
        cJSON_Delete(e);
    }
    http_resp_free(&r);
    assert_string_equal(text, choice_text(j, 0));
    assert_int_equal(n_tok, 12);
    /* the tokens join up to the text, the offsets count code points */
    char joined[1024] = "";
    const cJSON *t;
    int k = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(lp, "tokens")) {
        assert_int_equal((int)cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "text_offset"), k++)->valuedouble,
                         (int)strlen(joined));
        strcat(joined, t->valuestring);
    }
    assert_string_equal(joined, choice_text(j, 0));
    cJSON_Delete(j);
    /* chat: content[] of {token, logprob, bytes, top_logprobs[]} */
    j = post_ok("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],"
                                        "\"max_tokens\":3,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":3}");
    const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(j, 0), "logprobs"), "content"), *e;
    assert_int_equal(cJSON_GetArraySize(content), 3);
    cJSON_ArrayForEach(e, content) {
        const cJSON *tops = cJSON_GetObjectItem(e, "top_logprobs"), *bytes = cJSON_GetObjectItem(e, "bytes");
        assert_int_equal(cJSON_GetArraySize(tops), 3);
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(tops, 0), "token")->valuestring,
                            cJSON_GetObjectItem(e, "token")->valuestring);
        assert_true(num(cJSON_GetArrayItem(tops, 0), "logprob") == num(e, "logprob"));
        assert_true(num(cJSON_GetArrayItem(tops, 1), "logprob") <= num(e, "logprob"));
        assert_int_equal(cJSON_GetArraySize(bytes), (int)strlen(cJSON_GetObjectItem(e, "token")->valuestring));
    }
    cJSON_Delete(j);
    /* logprobs false and no logprobs: null */
    j = post_ok("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2,"
                                        "\"logprobs\":false}");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(choice(j, 0), "logprobs")));
    cJSON_Delete(j);
}

/* logit_bias -100 on the greedy token: the second most likely comes instead. */
static void test_logit_bias_removes_greedy_token(void **state)
{
    cJSON *j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":1,\"temperature\":0,"
                                          "\"logprobs\":2,\"return_tokens_as_token_ids\":true}");
    const cJSON *top = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(choice(j, 0), "logprobs"),
                                                              "top_logprobs"), 0);
    int first = token_id(top->child->string), second = token_id(top->child->next->string);
    cJSON_Delete(j);
    char body[256];
    snprintf(body, sizeof body, "{\"prompt\":\"Once upon a time\",\"max_tokens\":1,\"temperature\":0,"
                                "\"logprobs\":0,\"return_tokens_as_token_ids\":true,\"logit_bias\":{\"%d\":-100}}", first);
    j = post_ok("/v1/completions", body);
    const cJSON *toks = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(j, 0), "logprobs"), "tokens");
    assert_int_equal(token_id(cJSON_GetArrayItem(toks, 0)->valuestring), second);
    cJSON_Delete(j);
    /* sampling too: never the banned token */
    snprintf(body, sizeof body, "{\"prompt\":\"Once upon a time\",\"max_tokens\":1,\"temperature\":1,\"n\":8,"
                                "\"seed\":1,\"logprobs\":0,\"return_tokens_as_token_ids\":true,"
                                "\"logit_bias\":{\"%d\":-100}}", first);
    j = post_ok("/v1/completions", body);
    for (int i = 0; i < 8; i++) {
        toks = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(j, i), "logprobs"), "tokens");
        assert_int_not_equal(token_id(cJSON_GetArrayItem(toks, 0)->valuestring), first);
    }
    cJSON_Delete(j);
}

/* min_tokens: EOS forced by a +100 bias ends the request at once, but not before min_tokens
 * output tokens; a stop token id likewise. */
static void test_min_tokens(void **state)
{
    cJSON *j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0,"
                                          "\"logit_bias\":{\"2\":100}}");
    assert_int_equal((int)num(cJSON_GetObjectItem(j, "usage"), "completion_tokens"), 1);
    assert_string_equal(cJSON_GetObjectItem(choice(j, 0), "finish_reason")->valuestring, "stop");
    cJSON_Delete(j);
    j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0,"
                                   "\"logit_bias\":{\"2\":100},\"min_tokens\":5,\"logprobs\":0,"
                                   "\"return_tokens_as_token_ids\":true}");
    const cJSON *toks = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(j, 0), "logprobs"), "tokens");
    assert_int_equal((int)num(cJSON_GetObjectItem(j, "usage"), "completion_tokens"), 6);
    assert_int_equal(token_id(cJSON_GetArrayItem(toks, 5)->valuestring), 2); /* then EOS */
    assert_string_equal(cJSON_GetObjectItem(choice(j, 0), "finish_reason")->valuestring, "stop");
    cJSON_Delete(j);
    /* LightLLM's name; a stop token id: the greedy first token ends it, unless min_new_tokens */
    j = post_ok("/generate", "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":6,"
                             "\"stop_token_ids\":[29892]}}");
    assert_int_equal((int)num(j, "count_output_tokens"), 1);
    cJSON_Delete(j);
    j = post_ok("/generate", "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":6,"
                             "\"stop_token_ids\":[29892],\"min_new_tokens\":2,\"return_details\":true}}");
    assert_true(num(j, "count_output_tokens") >= 2);
    assert_int_not_equal((int)num(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tokens"), 0), "id"), 29892);
    cJSON_Delete(j);
}

/* n: 3 seeded choices, reproducible; choice i = the single request with seed + i; greedy
 * choices equal; the choices of one prompt share its KV blocks. */
static void test_n_choices(void **state)
{
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":1.2,\"n\":3,\"seed\":5}";
    cJSON *a = post_ok("/v1/completions", body), *b = post_ok("/v1/completions", body);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a, "choices")), 3);
    int distinct = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal((int)num(choice(a, i), "index"), i);
        assert_string_equal(choice_text(a, i), choice_text(b, i));
        distinct += i > 0 && strcmp(choice_text(a, i), choice_text(a, 0));
        char one[256];
        snprintf(one, sizeof one, "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":1.2,"
                                  "\"seed\":%d}", 5 + i);
        cJSON *s = post_ok("/v1/completions", one);
        assert_string_equal(choice_text(s, 0), choice_text(a, i));
        cJSON_Delete(s);
    }
    assert_true(distinct > 0);
    assert_int_equal((int)num(cJSON_GetObjectItem(a, "usage"), "completion_tokens"), 36);
    assert_int_equal((int)num(cJSON_GetObjectItem(a, "usage"), "prompt_tokens"), 5); /* once */
    cJSON_Delete(a);
    cJSON_Delete(b);
    a = post_ok("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],"
                                        "\"max_tokens\":10,\"temperature\":0,\"n\":2}");
    const char *c0 = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(a, 0), "message"), "content")->valuestring;
    const char *c1 = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(a, 1), "message"), "content")->valuestring;
    assert_string_equal(c0, c1);
    assert_int_equal((int)num(choice(a, 1), "index"), 1);
    cJSON_Delete(a);
    /* the prompt's KV blocks shared: a fresh 40-token prompt, 4 choices, 16-token blocks */
    double before = cluster_stat(&C, "prefix_hits");
    a = post_ok("/v1/completions", "{\"prompt\":\"Ben had a red truck. Every morning he drove it around the "
                                   "yard, up the hill and down again, and his dog ran after it barking at the "
                                   "wheels\",\"max_tokens\":2,\"n\":4,\"temperature\":0}");
    int n_prompt = (int)num(cJSON_GetObjectItem(a, "usage"), "prompt_tokens");
    double hits = cluster_stat(&C, "prefix_hits") - before;
    printf("# prompt %d tokens, 4 choices: %.0f prompt tokens from the prefix cache\n", n_prompt, hits);
    assert_true(n_prompt > 33);
    assert_true(hits >= 3 * 32);
    cJSON_Delete(a);
    /* streamed: every index comes, each with its finish */
    http_resp r;
    http_request(C.port, "POST", "/v1/chat/completions",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"n\":3,\"stream\":true}", &r);
    assert_int_equal(r.status, 200);
    int finished[3] = {0}, roles[3] = {0};
    for (char *p = r.body; (p = strstr(p, "data: {")); p++) {
        cJSON *e = cJSON_Parse(p + 6);
        const cJSON *ch = choice(e, 0);
        int i = (int)num(ch, "index");
        assert_true(i >= 0 && i < 3);
        roles[i] += cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "role") != NULL;
        finished[i] += cJSON_IsString(cJSON_GetObjectItem(ch, "finish_reason"));
        cJSON_Delete(e);
    }
    for (int i = 0; i < 3; i++)
        assert_true(finished[i] == 1 && roles[i] == 1);
    http_resp_free(&r);
}

/* echo, prompt lists and token-id prompts. */
static void test_prompts_and_echo(void **state)
{
    cJSON *g = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":6,\"temperature\":0}");
    cJSON *ids = post_ok("/v1/completions", "{\"prompt\":[1,9038,2501,263,931],\"max_tokens\":6,\"temperature\":0}");
    assert_string_equal(choice_text(ids, 0), choice_text(g, 0));
    cJSON *e = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":6,\"temperature\":0,"
                                          "\"echo\":true}");
    char want[256];
    snprintf(want, sizeof want, "Once upon a time%s", choice_text(g, 0));
    assert_string_equal(choice_text(e, 0), want);
    cJSON_Delete(e);
    e = post_ok("/v1/completions", "{\"prompt\":[\"Once upon a time\",\"The dog\"],\"max_tokens\":6,"
                                   "\"temperature\":0,\"n\":2,\"echo\":true}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(e, "choices")), 4);
    assert_string_equal(choice_text(e, 0), want);
    assert_string_equal(choice_text(e, 1), want);
    assert_int_equal(strncmp(choice_text(e, 2), "The dog", 7), 0);
    assert_string_equal(choice_text(e, 2), choice_text(e, 3));
    for (int i = 0; i < 4; i++)
        assert_int_equal((int)num(choice(e, i), "index"), i);
    assert_int_equal((int)num(cJSON_GetObjectItem(e, "usage"), "prompt_tokens"), 5 + 3); /* each once */
    cJSON_Delete(e);
    /* a list of token-id lists; echo decodes the ids (special tokens too, as vLLM) */
    e = post_ok("/v1/completions", "{\"prompt\":[[1,9038,2501,263,931],[1,9038,2501]],\"max_tokens\":6,"
                                   "\"temperature\":0,\"echo\":true}");
    snprintf(want, sizeof want, "<s> Once upon a time%s", choice_text(g, 0));
    assert_string_equal(choice_text(e, 0), want);
    cJSON *upon = post_ok("/v1/completions", "{\"prompt\":\"Once upon\",\"max_tokens\":6,\"temperature\":0}");
    snprintf(want, sizeof want, "<s> Once upon%s", choice_text(upon, 0));
    assert_string_equal(choice_text(e, 1), want);
    cJSON_Delete(upon);
    cJSON_Delete(e);
    /* streamed echo: the prompt comes first */
    http_resp r;
    http_request(C.port, "POST", "/v1/completions",
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":6,\"temperature\":0,\"echo\":true,\"stream\":true}", &r);
    char *first = strstr(r.body, "\"text\":\"");
    assert_non_null(first);
    assert_int_equal(strncmp(first + 8, "Once upon a time", 16), 0);
    http_resp_free(&r);
    /* truncation keeps the last tokens */
    e = post_ok("/v1/completions", "{\"prompt\":\"A B C D E F G Once upon a time\",\"max_tokens\":6,"
                                   "\"temperature\":0,\"truncate_prompt_tokens\":4}");
    assert_int_equal((int)num(cJSON_GetObjectItem(e, "usage"), "prompt_tokens"), 4);
    cJSON_Delete(e);
    cJSON_Delete(g);
    cJSON_Delete(ids);
}

/* Stop strings kept, special tokens kept, LightLLM's return_details. */
static void test_text_options(void **state)
{
    cJSON *j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0,"
                                          "\"stop\":[\"girl\"],\"include_stop_str_in_output\":true}");
    assert_string_equal(choice_text(j, 0), ", there was a little girl");
    cJSON_Delete(j);
    j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":5,\"temperature\":0,"
                                   "\"logit_bias\":{\"2\":100},\"min_tokens\":1,\"skip_special_tokens\":false}");
    assert_string_equal(choice_text(j, 0), ",</s>");
    cJSON_Delete(j);
    j = post_ok("/generate", "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":8,"
                             "\"return_details\":true}}");
    const cJSON *toks = cJSON_GetObjectItem(j, "tokens"), *t;
    assert_int_equal(cJSON_GetArraySize(toks), 8);
    char joined[256] = "";
    int k = 0;
    cJSON_ArrayForEach(t, toks) {
        strcat(joined, cJSON_GetObjectItem(t, "text")->valuestring);
        assert_int_equal((int)num(t, "count_output_tokens"), ++k);
        assert_true(num(t, "logprob") <= 0);
        assert_true(cJSON_IsBool(cJSON_GetObjectItem(t, "special")));
    }
    assert_int_equal((int)num(cJSON_GetArrayItem(toks, 0), "id"), 29892);
    assert_string_equal(joined, cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0)->valuestring);
    cJSON_Delete(j);
    j = post_ok("/generate", "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":4,\"n\":2,"
                             "\"return_details\":true}}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "generated_text")), 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tokens")), 2);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "count_output_tokens")));
    cJSON_Delete(j);
}

/* vLLM's smaller fields: add_special_tokens, request_id, chat echo, continuous usage. */
static void test_small_fields(void **state)
{
    cJSON *j = post_ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":2,"
                                          "\"add_special_tokens\":false,\"request_id\":\"abc-1\"}");
    assert_int_equal((int)num(cJSON_GetObjectItem(j, "usage"), "prompt_tokens"), 4); /* no BOS */
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "cmpl-abc-1");
    cJSON_Delete(j);
    j = post_ok("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"},"
                                        "{\"role\":\"assistant\",\"content\":\", there was\"}],\"max_tokens\":3,"
                                        "\"echo\":true,\"temperature\":0}");
    const char *content = cJSON_GetObjectItem(cJSON_GetObjectItem(choice(j, 0), "message"), "content")->valuestring;
    assert_int_equal(strncmp(content, ", there was", 11), 0);
    assert_true(strlen(content) > 11);
    cJSON_Delete(j);
    http_resp r;
    http_request(C.port, "POST", "/v1/completions",
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"stream\":true,"
                 "\"stream_options\":{\"continuous_usage_stats\":true}}", &r);
    int n_chunks = 0, last = 0;
    for (char *p = r.body; (p = strstr(p, "data: {")); p++, n_chunks++) {
        cJSON *e = cJSON_Parse(p + 6);
        const cJSON *u = cJSON_GetObjectItem(e, "usage");
        assert_true(cJSON_IsObject(u));
        assert_int_equal((int)num(u, "prompt_tokens"), 5);
        assert_true((int)num(u, "completion_tokens") >= last);
        last = (int)num(u, "completion_tokens");
        cJSON_Delete(e);
    }
    assert_true(n_chunks >= 1 && last == 4);
    http_resp_free(&r);
}

/* Every parameter that is not implemented, and every unknown one, is a 400 naming it. */
static void test_refused_by_name(void **state)
{
    static const struct { const char *path, *body, *name; } bad[] = {
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":"
                                 "{\"type\":\"json_object\"}}", "response_format"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}",
         "tool_choice"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"guided_json\":{}}", "guided_json"},
        {"/v1/completions", "{\"prompt\":\"x\",\"guided_regex\":\"a\"}", "guided_regex"},
        {"/v1/completions", "{\"prompt\":\"x\",\"suffix\":\"y\"}", "suffix"},
        {"/v1/completions", "{\"prompt\":\"x\",\"best_of\":2}", "best_of"},
        {"/v1/completions", "{\"prompt\":\"x\",\"echo\":true,\"logprobs\":1}", "echo"},
        {"/v1/completions", "{\"prompt\":\"x\",\"min_p\":0.1}", "min_p"},
        {"/v1/completions", "{\"prompt\":\"x\",\"frobnicate\":1}", "frobnicate"},
        {"/v1/completions", "{\"prompt\":\"x\",\"logit_bias\":{\"32000\":1}}", "logit_bias"},
        {"/v1/completions", "{\"prompt\":\"x\",\"logprobs\":21}", "logprobs"},
        {"/v1/completions", "{\"prompt\":\"x\",\"min_tokens\":20,\"max_tokens\":3}", "min_tokens"},
        {"/v1/completions", "{\"prompt\":\"x\",\"n\":129}", "n"},
        {"/v1/completions", "{\"prompt\":[[1,2],[1,2,3]],\"n\":65}", "n"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "top_logprobs"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":"
                                 "{\"include_usage\":true}}", "stream_options"},
        {"/generate", "{\"inputs\":\"x\",\"parameters\":{\"watermark\":true}}", "watermark"},
        {"/generate", "{\"inputs\":\"x\",\"parameters\":{\"best_of\":2}}", "best_of"},
        {"/generate_stream", "{\"inputs\":\"x\",\"parameters\":{\"n\":2}}", "n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int status;
        cJSON *j = post(bad[i].path, bad[i].body, &status);
        assert_int_equal(status, 400);
        const cJSON *e = cJSON_GetObjectItem(j, "error");
        const char *msg = cJSON_IsString(e) ? e->valuestring
                                            : cJSON_GetObjectItem(e, "message")->valuestring;
        if (!strstr(msg, bad[i].name))
            fail_msg("%s %s: \"%s\" does not name %s", bad[i].path, bad[i].body, msg, bad[i].name);
        if (cJSON_IsObject(e))
            assert_string_equal(cJSON_GetObjectItem(e, "param")->valuestring, bad[i].name);
        cJSON_Delete(j);
    }
}

static void test_slots_returned(void **state)
{
    assert_int_equal(cluster_active_slots(&C), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logprobs_match_reference),
        cmocka_unit_test(test_logprobs_stream_and_chat),
        cmocka_unit_test(test_logit_bias_removes_greedy_token),
        cmocka_unit_test(test_min_tokens),
        cmocka_unit_test(test_n_choices),
        cmocka_unit_test(test_prompts_and_echo),
        cmocka_unit_test(test_text_options),
        cmocka_unit_test(test_small_fields),
        cmocka_unit_test(test_refused_by_name),
        cmocka_unit_test(test_slots_returned),
    };
    return cmocka_run_group_tests_name("e2e_params", tests, setup, teardown);
}
