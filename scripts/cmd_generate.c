/* generate - offline generation with the reference CPU backend, for checking a model:
 * prefills the given token ids (in chunks of --chunk tokens), then decodes --n tokens,
 * greedy by default, and prints the ids (and the text when the directory has a
 * tokenizer.json), with prefill and decode times.
 *
 * usage: generate --model-dir DIR --tokens 1,9038,2501 [--n 40] [--temperature T] [--top-k K]
 *          [--top-p P] [--seed S] [--block-size 16] [--chunk 0] [--threads 0] [--dummy]
 *          [--backend cpu|cuda] [--quantization fp8] [--kv-cache-dtype fp8] (backend.h's flags)
 *          [--dump-logits FILE] (the prompt's last logits, vocab fp32 values, little-endian)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/tok/tok.h"
#include "../worker/backend.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr, "usage: generate --model-dir DIR --tokens ID,ID,... [--n 40] "
                    "[--temperature T] [--top-k K] [--top-p P] [--seed S] [--block-size 16] "
                    "[--chunk N] [--threads N] [--dummy] [--dump-logits FILE] %s\n",
            backend_opts_usage);
    return 2;
}

/* The command line. */
typedef struct {
    const char *dir, *ids, *dump;
    int n_gen, block_size, chunk, n_threads, dummy;
    sampling_params sp;
    backend_opts o;
} gen_opts;

/* The command line into G (backend.h's flags among them); -1 when refused. */
static int parse_args(int argc, char **argv, gen_opts *g)
{
    *g = (gen_opts){.n_gen = 40, .block_size = 16, .sp = {.top_p = 1, .repetition_penalty = 1}};
    backend_opts_init(&g->o);
    g->o.backend = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dummy")) {
            g->dummy = 1;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        int rc = strcmp(a, "--threads") && !strncmp(a, "--", 2)
                 ? backend_opts_parse(&g->o, a + 2, argv[i + 1]) : 0;
        if (rc < 0)
            return -1;
        if (rc > 0) {
            i++;
            continue;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model-dir")) g->dir = v;
        else if (!strcmp(a, "--tokens")) g->ids = v;
        else if (!strcmp(a, "--n")) g->n_gen = atoi(v);
        else if (!strcmp(a, "--temperature")) g->sp.temperature = (float)atof(v);
        else if (!strcmp(a, "--top-k")) g->sp.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) g->sp.top_p = (float)atof(v);
        else if (!strcmp(a, "--seed")) g->sp.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--block-size")) g->block_size = atoi(v);
        else if (!strcmp(a, "--chunk")) g->chunk = atoi(v);
        else if (!strcmp(a, "--threads")) g->n_threads = atoi(v);
        else if (!strcmp(a, "--dump-logits")) g->dump = v;
        else return -1;
    }
    return !g->dir || !g->ids || g->n_gen < 0 || g->block_size < 1 ? -1 : 0;
}

/* The comma-separated ids IDS into TOKENS [*N]; -1 when one is not a number. */
static int parse_ids(const char *ids, int32_t *tokens, int *n)
{
    *n = 0;
    for (const char *p = ids; *p;) {
        char *end;
        tokens[(*n)++] = (int32_t)strtol(p, &end, 10);
        if (end == p)
            return -1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/* TOKENS [N] as text, when DIR has a tokenizer.json. */
static void print_text(const char *dir, const int32_t *tokens, int n)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0)
        return;
    tok *tk = tok_load(path, err, sizeof err);
    if (!tk) {
        fprintf(stderr, "generate: %s\n", err);
        return;
    }
    char text[65536];
    int64_t len = tok_decode(tk, tokens, (size_t)n, 1, text, sizeof text);
    if (len >= 0)
        printf("%.*s\n", (int)(len < (int64_t)sizeof text ? len : (int64_t)sizeof text), text);
    tok_free(tk);
}

/* The options, the model, then the prefill and the generation loop, top to bottom. */
int main(int argc, char **argv)
{
    log_proc = "generate";
    gen_opts g;
    if (parse_args(argc, argv, &g))
        return usage();
    backend_opts o = g.o;
    int n_prompt = 0, cap = 1;
    for (const char *p = g.ids; *p; p++)
        cap += *p == ',';
    cap += g.n_gen;
    int32_t *tokens = malloc((size_t)cap * sizeof *tokens);
    int32_t *blocks = malloc(((size_t)cap / g.block_size + 1) * sizeof *blocks);
    if (!tokens || !blocks || parse_ids(g.ids, tokens, &n_prompt))
        return usage();
    for (int i = 0; i <= cap / g.block_size; i++)
        blocks[i] = i;
    char err[4096];
    o.model_dir = g.dir, o.dummy_weights = g.dummy, o.block_size = g.block_size;
    o.max_seq_len = cap, o.max_batch_tokens = n_prompt, o.max_seqs = 1;
    o.kv_tokens = ((int64_t)cap / g.block_size + 1) * g.block_size, o.n_threads = g.n_threads;
#ifdef CINDER_CUDA_BACKEND
    backend *be = strcmp(o.backend, "cpu") ? cuda_backend_init(&o, err, sizeof err)
                                           : cpu_backend_init(&o, err, sizeof err);
#else
    backend *be = cpu_backend_init(&o, err, sizeof err);
#endif
    if (!be) {
        fprintf(stderr, "generate: %s\n", err);
        return 1;
    }
    fwd_seq s = {.tokens = tokens, .block_table = blocks, .params = &g.sp, .n_prompt = n_prompt};
    fwd_batch b = {1, &s};
    double t0 = now_s(), t_prefill = 0;
    int n = n_prompt;
    for (int done = 0; done < n_prompt;) { /* prefill, in chunks */
        s.n_cached = done;
        s.n_new = g.chunk > 0 && n_prompt - done > g.chunk ? g.chunk : n_prompt - done;
        s.sample = done + s.n_new == n_prompt;
        if (be->forward(be, &b) < 0)
            goto fail;
        done += s.n_new;
    }
    t_prefill = now_s() - t0;
    FILE *df = g.dump ? fopen(g.dump, "wb") : NULL;
    if (g.dump && (!df || fwrite(be->last_logits(be, 0), sizeof(float), (size_t)be->cfg.vocab_size,
                               df) != (size_t)be->cfg.vocab_size)) {
        fprintf(stderr, "generate: cannot write %s\n", g.dump);
        goto fail;
    }
    if (df)
        fclose(df);
    for (int k = 0; k < g.n_gen; k++) {
        tokens[n++] = s.out_token;
        if (k + 1 == g.n_gen)
            break;
        s.n_cached = n - 1;
        s.n_new = 1;
        s.sample = 1;
        if (be->forward(be, &b) < 0)
            goto fail;
    }
    double t_decode = now_s() - t0 - t_prefill;
    for (int i = n_prompt; i < n; i++)
        printf("%s%d", i > n_prompt ? " " : "", tokens[i]);
    printf("\n");
    print_text(g.dir, tokens, n);
    fprintf(stderr, "generate: prefill %d tokens %.1f ms; decode %d tokens %.1f ms (%.1f tok/s)\n",
            n_prompt, t_prefill * 1e3, g.n_gen - 1 > 0 ? g.n_gen - 1 : 0, t_decode * 1e3,
            g.n_gen > 1 ? (g.n_gen - 1) / t_decode : 0.0);
    be->free(be);
    free(tokens);
    free(blocks);
    return 0;
fail:
    fprintf(stderr, "generate: forward failed\n");
    be->free(be);
    return 1;
}
