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

/* Options, the model, then the generation loop, top to bottom (a tool, over 80 lines). */
int main(int argc, char **argv)
{
    log_proc = "generate";
    const char *dir = NULL, *ids = NULL, *dump = NULL;
    int n_gen = 40, block_size = 16, chunk = 0, n_threads = 0, dummy = 0;
    sampling_params sp = {.top_p = 1, .repetition_penalty = 1};
    backend_opts o;
    backend_opts_init(&o);
    o.backend = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dummy")) {
            dummy = 1;
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        int rc = strcmp(a, "--threads") && !strncmp(a, "--", 2)
                 ? backend_opts_parse(&o, a + 2, argv[i + 1]) : 0;
        if (rc < 0)
            return usage();
        if (rc > 0) {
            i++;
            continue;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model-dir")) dir = v;
        else if (!strcmp(a, "--tokens")) ids = v;
        else if (!strcmp(a, "--n")) n_gen = atoi(v);
        else if (!strcmp(a, "--temperature")) sp.temperature = (float)atof(v);
        else if (!strcmp(a, "--top-k")) sp.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) sp.top_p = (float)atof(v);
        else if (!strcmp(a, "--seed")) sp.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--block-size")) block_size = atoi(v);
        else if (!strcmp(a, "--chunk")) chunk = atoi(v);
        else if (!strcmp(a, "--threads")) n_threads = atoi(v);
        else if (!strcmp(a, "--dump-logits")) dump = v;
        else return usage();
    }
    if (!dir || !ids || n_gen < 0 || block_size < 1)
        return usage();
    int n_prompt = 0, cap = 1;
    for (const char *p = ids; *p; p++)
        cap += *p == ',';
    cap += n_gen;
    int32_t *tokens = malloc((size_t)cap * sizeof *tokens);
    int32_t *blocks = malloc(((size_t)cap / block_size + 1) * sizeof *blocks);
    for (const char *p = ids; *p;) {
        char *end;
        tokens[n_prompt++] = (int32_t)strtol(p, &end, 10);
        if (end == p)
            return usage();
        p = *end == ',' ? end + 1 : end;
    }
    for (int i = 0; i <= cap / block_size; i++)
        blocks[i] = i;
    char err[4096];
    o.model_dir = dir, o.dummy_weights = dummy, o.block_size = block_size;
    o.max_seq_len = cap, o.max_batch_tokens = n_prompt, o.max_seqs = 1;
    o.kv_tokens = ((int64_t)cap / block_size + 1) * block_size, o.n_threads = n_threads;
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
    fwd_seq s = {.tokens = tokens, .block_table = blocks, .params = &sp, .n_prompt = n_prompt};
    fwd_batch b = {1, &s};
    double t0 = now_s(), t_prefill = 0;
    int n = n_prompt;
    for (int done = 0; done < n_prompt;) { /* prefill, in chunks */
        s.n_cached = done;
        s.n_new = chunk > 0 && n_prompt - done > chunk ? chunk : n_prompt - done;
        s.sample = done + s.n_new == n_prompt;
        if (be->forward(be, &b) < 0)
            goto fail;
        done += s.n_new;
    }
    t_prefill = now_s() - t0;
    FILE *df = dump ? fopen(dump, "wb") : NULL;
    if (dump && (!df || fwrite(be->last_logits(be, 0), sizeof(float), (size_t)be->cfg.vocab_size,
                               df) != (size_t)be->cfg.vocab_size)) {
        fprintf(stderr, "generate: cannot write %s\n", dump);
        goto fail;
    }
    if (df)
        fclose(df);
    for (int g = 0; g < n_gen; g++) {
        tokens[n++] = s.out_token;
        if (g + 1 == n_gen)
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
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) == 0) {
        tok *tk = tok_load(path, err, sizeof err);
        if (!tk) {
            fprintf(stderr, "generate: %s\n", err);
        } else {
            char text[65536];
            int64_t len = tok_decode(tk, tokens, (size_t)n, 1, text, sizeof text);
            if (len >= 0)
                printf("%.*s\n", (int)(len < (int64_t)sizeof text ? len : (int64_t)sizeof text), text);
            tok_free(tk);
        }
    }
    fprintf(stderr, "generate: prefill %d tokens %.1f ms; decode %d tokens %.1f ms (%.1f tok/s)\n",
            n_prompt, t_prefill * 1e3, n_gen - 1 > 0 ? n_gen - 1 : 0, t_decode * 1e3,
            n_gen > 1 ? (n_gen - 1) / t_decode : 0.0);
    be->free(be);
    free(tokens);
    free(blocks);
    return 0;
fail:
    fprintf(stderr, "generate: forward failed\n");
    be->free(be);
    return 1;
}
