/* test_prefix_cache.c - prefix caching end to end on the reference backend (real processes).
 *
 * 32 concurrent greedy requests, four long story openings (about 95 tokens each) shared by
 * eight requests each with their own next sentence (about 20 tokens; pairs of them begin
 * alike, so prompts part in the middle of blocks): with prefix caching on they give the
 * same texts as with --no-prefix-caching, the router's hit counters show most prompt tokens
 * came from the cache (and none with it off), /metrics reports the same counters, and a
 * repeated OpenAI completion reports usage.prompt_tokens_details.cached_tokens, and a seeded
 * sampled request gives the same text from the cache as without it. Restarting the
 * holder drops the cache with the KV: after it the same requests share their openings
 * again; a worker killed mid-run then (its KV kept by the holder: requests resume, the
 * cache stays) still gives the same texts. Every slot and KV
 * block is back at the end (cached blocks count as free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"
#include "load.h"

#define N_REQ 32
#define MAX_NEW 24

static const char *const openings[4] = {
    "Once upon a time, there was a little girl named Lily. She lived in a small house near a big "
    "green forest with her mom, her dad and her old dog Max. Every morning Lily ran outside to "
    "look at the flowers and the birds. She liked the red flowers best, because they smelled "
    "sweet and the bees came to visit them. One day her mom gave her a small basket and said "
    "she could pick some berries for a pie.",
    "Tom was a brave boy who wanted to be a sailor. He had a toy boat made of wood, and he took "
    "it to the pond near his school every afternoon. His friend Sue came with him, and they "
    "pretended the boat was sailing across the sea to find treasure. The ducks swam around the "
    "boat and quacked at it. Tom said the ducks were pirates and Sue laughed so hard that she "
    "fell on the soft grass.",
    "In a big city there was a tall tower with a clock at the top. A little mouse named Pip "
    "lived inside the clock, between the gears that went tick and tock all day long. Pip liked "
    "the sound because it helped him sleep at night. He kept a tiny bed made of cotton and a "
    "cup made from a thimble. When the clock rang at noon, Pip covered his ears and waited for "
    "the loud bells to stop ringing.",
    "The sun was hot and the sky was blue on the day of the big race. All the animals of the "
    "farm stood in a line by the old fence. The horse was fast, the pig was slow, and the hen "
    "was very proud of her new red hat. The farmer blew a whistle and everyone started to run. "
    "The dog barked and the cat just sat in the shade and watched them go, because she did not "
    "like to run at all.",
};
/* the next sentences share their first words in pairs, so requests part mid-block */
static const char *const nexts[8] = {
    " Then a small brown rabbit jumped out from behind a tree and looked at them with big eyes.",
    " Then a small brown rabbit hopped past, and everyone laughed because it had a funny tail.",
    " The next day it started to rain, so they stayed inside and built a fort out of pillows.",
    " The next day it was sunny again, and the whole family went to the beach to play.",
    " But then a strong wind came and blew everything away, and nobody knew what to do next.",
    " But then a kind old woman came by and offered to help them with a smile on her face.",
    " At the end of the day, they were very tired and very happy, and they all went to sleep.",
    " At the end of the day, the moon came out and the stars began to shine in the dark sky.",
};

static cluster C;
static char prompts[N_REQ][2048];
static char *texts[N_REQ];   /* with the cache, from the first run */
static char *sampled;        /* a seeded sampled text, its prompt cached */

static int start_on(void **state) { return cluster_start(&C, ""); }
static int start_off(void **state) { return cluster_start(&C, "--no-prefix-caching"); }
static int stop(void **state)
{
    cluster_stop(&C);
    return 0;
}

static void make_jobs(load_job *jobs)
{
    memset(jobs, 0, sizeof(load_job) * N_REQ);
    for (int i = 0; i < N_REQ; i++) {
        snprintf(prompts[i], sizeof prompts[i], "%s%s", openings[i % 4], nexts[i / 4]);
        jobs[i].prompt = prompts[i];
        jobs[i].max_new = MAX_NEW;
    }
}

/* Every job answered 200 with the text of the first run (or sets it). */
static void check_texts(load_job *jobs, int set)
{
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(jobs[i].status, 200);
        assert_non_null(jobs[i].text);
        if (set)
            texts[i] = strdup(jobs[i].text);
        else
            assert_string_equal(jobs[i].text, texts[i]);
    }
}

/* A /metrics value, or -1. */
static double metric(const char *name) { return cluster_metric(&C, name); }

/* The text of a sampled /generate with a seed (its prompt the second opening), or NULL. */
static char *seeded_text(void)
{
    cJSON *b = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(b, "parameters");
    cJSON_AddStringToObject(b, "inputs", openings[1]);
    cJSON_AddNumberToObject(p, "max_new_tokens", 20);
    cJSON_AddBoolToObject(p, "do_sample", 1);
    cJSON_AddNumberToObject(p, "temperature", 1.0);
    cJSON_AddNumberToObject(p, "seed", 1234);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    http_resp r;
    http_request(C.port, "POST", "/generate", body, &r);
    free(body);
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0);
    char *text = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    cJSON_Delete(j);
    http_resp_free(&r);
    return text;
}

static int healthy(void)
{
    http_resp r;
    http_request(C.port, "GET", "/health", NULL, &r);
    int ok = r.status == 200;
    http_resp_free(&r);
    return ok;
}

/* usage.prompt_tokens_details.cached_tokens of one /v1/completions answer, or -1. */
static int completion_cached_tokens(const char *prompt, int *n_prompt)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "prompt", prompt);
    cJSON_AddNumberToObject(b, "max_tokens", 4);
    cJSON_AddNumberToObject(b, "temperature", 0);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    http_resp r;
    http_request(C.port, "POST", "/v1/completions", body, &r);
    free(body);
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(u, "prompt_tokens_details"), "cached_tokens");
    cJSON *p = cJSON_GetObjectItem(u, "prompt_tokens");
    int v = cJSON_IsNumber(c) ? c->valueint : -1;
    *n_prompt = cJSON_IsNumber(p) ? p->valueint : -1;
    cJSON_Delete(j);
    http_resp_free(&r);
    return v;
}

static void test_cache_on(void **state)
{
    static load_job jobs[N_REQ];
    make_jobs(jobs);
    load_run(&C, jobs, N_REQ);
    check_texts(jobs, 1);
    load_free(jobs, N_REQ);
    double q = cluster_stat(&C, "prefix_queries"), h = cluster_stat(&C, "prefix_hits");
    printf("# cache on: %.0f of %.0f prompt tokens from the cache (%.0f%%), %.0f blocks cached\n", h, q,
           q > 0 ? 100 * h / q : 0, cluster_stat(&C, "n_cached_blocks"));
    assert_true(q > N_REQ * 100);
    assert_true(h > 0.5 * q); /* 28 of 32 requests find their opening cached */
    assert_true(metric("cinder_prefix_cache_queries_total") == q);
    assert_true(metric("cinder_prefix_cache_hits_total") == h);
    assert_true(metric("cinder_prefix_cache_blocks") > 0);

    /* OpenAI usage: the second identical completion takes the first one's whole blocks */
    int n_prompt, first = completion_cached_tokens(openings[0], &n_prompt);
    int second = completion_cached_tokens(openings[0], &n_prompt);
    printf("# /v1/completions of %d prompt tokens: cached_tokens %d, then %d\n", n_prompt, first, second);
    assert_true(first >= 0 && second >= first);
    assert_int_equal(second, (n_prompt - 1) / 16 * 16);
    /* sampling with a seed: the same text whether its prompt came from the cache or not */
    sampled = seeded_text();
    assert_non_null(sampled);
    char *again = seeded_text();
    assert_non_null(again);
    assert_string_equal(again, sampled);
    free(again);
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

static void test_cache_on_worker_killed(void **state)
{
    static load_job jobs[N_REQ];
    make_jobs(jobs);
    /* a fresh holder (and worker) first: the cache of the first run is dropped with its KV */
    assert_int_equal(cluster_restart(&C, "holder", "KILL"), 0);
    for (int k = 0; k < 300 && !(cluster_stat(&C, "n_cached_blocks") == 0 && healthy()); k++)
        usleep(20000);
    assert_true(cluster_stat(&C, "n_cached_blocks") == 0);
    double h0 = cluster_stat(&C, "prefix_hits"), resumed0 = cluster_stat(&C, "resumed");
    void *run = load_start(&C, jobs, N_REQ);
    load_wait_steps(&C, 8);
    assert_int_equal(cluster_restart(&C, "worker", "KILL"), 0);
    load_join(run);
    check_texts(jobs, 0);
    load_free(jobs, N_REQ);
    double h = cluster_stat(&C, "prefix_hits") - h0;
    printf("# after a holder restart: %.0f prompt tokens from the cache (at first admission), "
           "then a worker kill mid-run: %.0f requests resumed, %.0f blocks cached\n", h,
           cluster_stat(&C, "resumed") - resumed0, cluster_stat(&C, "n_cached_blocks"));
    assert_true(h > 0);
    assert_true(cluster_stat(&C, "n_cached_blocks") > 0);   /* kept with the KV */
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

static void test_cache_off(void **state)
{
    static load_job jobs[N_REQ];
    make_jobs(jobs);
    load_run(&C, jobs, N_REQ);
    check_texts(jobs, 0);
    load_free(jobs, N_REQ);
    assert_true(cluster_stat(&C, "prefix_hits") == 0);
    assert_true(cluster_stat(&C, "n_cached_blocks") == 0);
    int n_prompt;
    completion_cached_tokens(openings[0], &n_prompt);
    assert_int_equal(completion_cached_tokens(openings[0], &n_prompt), 0);
    char *off = seeded_text();
    assert_non_null(off);
    assert_string_equal(off, sampled);
    free(off);
    free(sampled);
    assert_int_equal(load_wait_reclaimed(&C), 0);
    for (int i = 0; i < N_REQ; i++)
        free(texts[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cache_on, start_on),
        cmocka_unit_test_teardown(test_cache_on_worker_killed, stop),
        cmocka_unit_test_setup_teardown(test_cache_off, start_off, stop),
    };
    return cmocka_run_group_tests_name("e2e_prefix_cache", tests, NULL, NULL);
}
