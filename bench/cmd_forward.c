/* forward - single-forward benchmark of the CUDA backend, in SwiftLLM's manner: prefill over
 * a grid of batch x input length, and decode steps over batch x context, on a model shape
 * with random weights (default: Llama-3-8B, bench/forward/llama3-8b). Each figure is the
 * median wall time of backend->forward (host preparation, copies, sampling included) beside
 * the roofline measured in the same run: decode against (weight bytes + KV bytes read) over
 * the device copy bandwidth (the weights' part replaced by the matmul FLOPs over the GEMM rate
 * where a large batch makes the projections compute-bound), prefill as the model's matmul
 * FLOPs over the cuBLAS bf16 rate.
 * Prints RESULT lines and, with --md, markdown rows for bench/RESULTS.md; --compare sets
 * every case beside its floor and its previous figure (forward_compare.h).
 *
 * usage: forward [--model-dir DIR] [--decode-batches 1,2,..] [--contexts 512,..]
 *                [--prefill 1x512,8x1024,..] [--iters 10] [--mem-util 0.9] [--md]
 *                [--breakdown]   (decode: graph replay and GEMM-only device times)
 *                [--compare [FILE]]   (the table against FILE, default DIR/baseline.tsv)
 *                [--save-baseline FILE --run-id ID]   (this run's figures, same format)
 *                [--dtype bf16|fp16] [--enforce-eager] [--gemv-max-tokens 0..8]
 *                [--gemv-warps N] [--pdl MASK]   (the worker's CUDA switches)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../worker/backend.h"

#ifndef CINDER_CUDA_BACKEND
int main(void)
{
    fprintf(stderr, "forward: this build has no CUDA backend\n");
    return 1;
}
#else
#include <cuda_runtime_api.h>

#include "../worker/cuda_backend.h"
#include "ceilings.h"
#include "decode_breakdown.h"
#include "forward_compare.h"

#define BS 16

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        s = s ? s + 1 : NULL;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median ms of ITERS forwards of BATCH after two warm-ups; negative on failure. */
static double time_forward(backend *be, fwd_batch *batch, int iters)
{
    double t[64];
    iters = iters > 64 ? 64 : iters;
    for (int i = -2; i < iters; i++) {
        double t0 = wall_ms();
        if (be->forward(be, batch) != 0)
            return -1;
        if (i >= 0)
            t[i] = wall_ms() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    return t[iters / 2];
}

typedef struct {
    int n;
    fwd_seq *seqs;
    int32_t *tokens, *blocks;
    sampling_params sp;
} bench_batch;

/* N sequences of CTX tokens (random ids), N_NEW of them run now; distinct KV blocks. */
static int batch_make(bench_batch *b, int n, int ctx, int n_new, int vocab, int n_kv_blocks)
{
    int nb = (ctx + BS - 1) / BS;
    if ((int64_t)n * nb > n_kv_blocks)
        return -1;
    b->n = n;
    b->seqs = calloc((size_t)n, sizeof *b->seqs);
    b->tokens = malloc(sizeof(int32_t) * (size_t)n * ctx);
    b->blocks = malloc(sizeof(int32_t) * (size_t)n * nb);
    b->sp = (sampling_params){.max_new_tokens = 1, .top_p = 1, .repetition_penalty = 1};
    uint64_t z = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)n * ctx; i++) {
        z ^= z << 13, z ^= z >> 7, z ^= z << 17;
        b->tokens[i] = (int32_t)(z % (uint64_t)vocab);
    }
    for (int i = 0; i < n * nb; i++)
        b->blocks[i] = i;
    for (int s = 0; s < n; s++)
        b->seqs[s] = (fwd_seq){.slot = s, .n_cached = ctx - n_new, .n_new = n_new, .sample = 1,
                               .tokens = b->tokens + (size_t)s * ctx, .n_prompt = ctx,
                               .block_table = b->blocks + (size_t)s * nb, .params = &b->sp};
    return 0;
}

static void batch_free(bench_batch *b)
{
    free(b->seqs);
    free(b->tokens);
    free(b->blocks);
}

/* What every case of this run shares in a baseline: dtype (of O), RUN_ID, device, date. */
static fcmp_case case_proto(const backend_opts *o, const char *run_id)
{
    fcmp_case c = {0};
    snprintf(c.dtype, sizeof c.dtype, "%s%s", o->quant_fp8 ? "fp8" : o->fp16 ? "fp16" : "bf16",
             o->kv_fp8 ? "+kv8" : "");
    snprintf(c.run, sizeof c.run, "%s", run_id ? run_id : "-");
    struct cudaDeviceProp prop;
    int dev = 0;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
        snprintf(c.device, sizeof c.device, "%.63s", prop.name);   /* names are shorter */
    else
        snprintf(c.device, sizeof c.device, "unknown");
    time_t now = time(NULL);
    struct tm tm;
    strftime(c.date, sizeof c.date, "%Y-%m-%d", gmtime_r(&now, &tm));
    return c;
}

/* One measured case into RUN (a failed one keeps a negative time: "failed" in the table). */
static void case_add(fcmp_set *run, const fcmp_case *proto, fcmp_kind kind, int batch, int len,
                     double ms, double floor_ms)
{
    fcmp_case c = *proto;
    c.kind = kind, c.batch = batch, c.len = len, c.time_ms = ms, c.floor_ms = floor_ms;
    if (fcmp_add(run, &c) < 0)
        fprintf(stderr, "forward: out of memory for the comparison table\n");
}

/* The benchmark's script, top to bottom (over 80 lines): options, ceilings, the model, then
 * each prefill and decode case with its roofline. */
int main(int argc, char **argv)
{
    log_proc = "forward";
    const char *dir = "bench/forward/llama3-8b";
    const char *dec_b = "1,2,4,8,16,32,64,128,256", *ctxs = "512,1024,2048,4096,8192";
    const char *pre = "1x128,1x512,1x1024,1x2048,4x512,4x1024,8x512,8x1024,8x2048";
    const char *compare_file = NULL, *save_file = NULL, *run_id = NULL;
    int iters = 10, md = 0, breakdown = 0, compare = 0;
    float mem_util = 0.9f;
    backend_opts o = {.model_dir = dir, .dummy_weights = 1, .block_size = BS};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--md")) { md = 1; continue; }
        if (!strcmp(argv[i], "--compare")) {   /* FILE optional */
            compare = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-')
                compare_file = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--breakdown")) { breakdown = 1; continue; }
        if (!strcmp(argv[i], "--enforce-eager")) { o.no_graphs = 1; continue; }
        if (!strncmp(argv[i], "--", 2) && i + 1 < argc) {
            int rc = backend_opts_parse(&o, argv[i] + 2, argv[i + 1]);
            if (rc < 0) return 2;
            if (rc > 0) { i++; continue; }
        }
        if (i + 1 >= argc) { fprintf(stderr, "forward: %s needs a value\n", argv[i]); return 2; }
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--model-dir")) dir = v;
        else if (!strcmp(a, "--decode-batches")) dec_b = v;
        else if (!strcmp(a, "--contexts")) ctxs = v;
        else if (!strcmp(a, "--prefill")) pre = v;
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--mem-util")) mem_util = (float)atof(v);
        else if (!strcmp(a, "--save-baseline")) save_file = v;
        else if (!strcmp(a, "--run-id")) run_id = v;
        else { fprintf(stderr, "forward: unknown option %s\n", a); return 2; }
    }
    if (save_file && (!run_id || !*run_id || strpbrk(run_id, " \t\n"))) {
        fprintf(stderr, "forward: --save-baseline needs --run-id ID (no blanks)\n");
        return 2;
    }
    /* the baseline is read (and a malformed one refused) before any GPU time is spent */
    fcmp_set base = {0}, run = {0};
    char cmp_path[1024], err[512];
    if (compare) {
        snprintf(cmp_path, sizeof cmp_path, "%s/baseline.tsv", dir);
        if (fcmp_load(compare_file ? compare_file : cmp_path, &base, err, sizeof err) < 0) {
            fprintf(stderr, "forward: --compare: %s\n", err);
            return 2;
        }
    }
    int batches[32], contexts[32], n_b = parse_list(dec_b, batches, 32), n_c = parse_list(ctxs, contexts, 32);
    int pre_b[32], pre_l[32], n_p = 0, max_tok = 1, max_ctx = 1, max_seqs = 1;
    for (const char *s = pre; s && *s && n_p < 32; n_p++) {
        pre_b[n_p] = atoi(s);
        const char *x = strchr(s, 'x');
        pre_l[n_p] = x ? atoi(x + 1) : 0;
        s = strchr(s, ',');
        s = s ? s + 1 : NULL;
    }
    for (int i = 0; i < n_p; i++) {
        max_tok = pre_b[i] * pre_l[i] > max_tok ? pre_b[i] * pre_l[i] : max_tok;
        max_ctx = pre_l[i] > max_ctx ? pre_l[i] : max_ctx;
        max_seqs = pre_b[i] > max_seqs ? pre_b[i] : max_seqs;
    }
    for (int i = 0; i < n_b; i++) max_seqs = batches[i] > max_seqs ? batches[i] : max_seqs;
    for (int i = 0; i < n_c; i++) max_ctx = contexts[i] > max_ctx ? contexts[i] : max_ctx;
    max_tok = max_tok > max_seqs ? max_tok : max_seqs;

    bench_ceilings ceil = bench_measure_ceilings();
    double bw_gbs = ceil.copy_gbs, gemm_tf = ceil.gemm_tflops;
    const char *gemm_name = "cuBLAS";   /* FP8 prefill: against the cuBLASLt FP8 rate */
    if (o.quant_fp8)
        gemm_tf = bench_fp8_gemm_tflops(), gemm_name = "cuBLASLt FP8";

    o.model_dir = dir;
    o.max_seq_len = max_ctx, o.max_batch_tokens = max_tok, o.max_seqs = max_seqs;
    o.mem_util = mem_util;
    double t0 = wall_ms();
    backend *be = cuda_backend_init(&o, err, sizeof err);
    if (!be) {
        fprintf(stderr, "forward: %s\n", err);
        return 1;
    }
    fcmp_case proto = case_proto(&o, run_id);
    const model_config *c = &be->cfg;
    printf("model %s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d; init %.0f ms; "
           "KV %d blocks of %d\n", dir, c->dim, c->hidden_dim, c->n_layers, c->n_heads,
           c->n_kv_heads, c->vocab_size, wall_ms() - t0, be->n_kv_blocks, BS);
    double q_dim = (double)c->n_heads * c->head_dim, kv_dim = (double)c->n_kv_heads * c->head_dim;
    /* MoE: a decode step reads the router and only the experts its tokens pick (at most
     * batch x n_experts_used of them): the floor of batch B counts those (moe_weight_bytes) */
    double attn = (double)c->n_layers * ((q_dim + 2 * kv_dim) * c->dim + q_dim * c->dim);
    double expert = 3.0 * c->hidden_dim * c->dim, router = (double)c->n_experts * c->dim;
    double lin = attn + (double)c->n_layers * (c->n_experts ? c->n_experts * expert + router : expert);
    double lm = (double)c->vocab_size * c->dim;
    double other = lm * (c->tie_embeddings ? 1 : 2) + (2.0 * c->n_layers + 1) * c->dim;
    double lin_b = o.quant_fp8 ? 1.0 : 2.0;   /* E4M3 projections (scales: 4 bytes a row) */
    double weight_bytes = lin_b * lin + 2.0 * other;
    /* the matmul weights one token goes through (MoE: its n_experts_used experts) */
    double per_tok = attn + (double)c->n_layers * (c->n_experts ? c->n_experts_used * expert + router : expert);
    double kv_tok_bytes = 2.0 * (o.kv_fp8 ? 1 : 2) * c->n_layers * kv_dim;
    printf("weights %.2f GB (bandwidth floor %.3f ms)\n", weight_bytes / 1e9,
           weight_bytes / (bw_gbs * 1e6));
    int failed = 0;
    for (int i = 0; i < n_p; i++) {
        bench_batch b;
        if (batch_make(&b, pre_b[i], pre_l[i], pre_l[i], c->vocab_size, be->n_kv_blocks) < 0) {
            printf("RESULT forward | prefill %dx%d | skipped: KV cache too small\n", pre_b[i], pre_l[i]);
            continue;
        }
        fwd_batch fb = {b.n, b.seqs};
        double ms = time_forward(be, &fb, iters < 5 ? iters : 5);
        double flops = 2.0 * pre_b[i] * pre_l[i] * per_tok + 2.0 * pre_b[i] * lm;
        double tf = flops / (ms * 1e9);
        if (ms < 0) failed++;
        case_add(&run, &proto, FCMP_PREFILL, pre_b[i], pre_l[i], ms, flops / (gemm_tf * 1e9));
        printf("RESULT forward | prefill %dx%d | %.2f ms | %.0f TFLOP/s matmul | %.1f%% of %s %.0f TFLOP/s\n",
               pre_b[i], pre_l[i], ms, tf, 100 * tf / gemm_tf, gemm_name, gemm_tf);
        if (md)
            printf("MD | prefill %d x %d | %.2f ms | %.0f TFLOP/s (matmul FLOPs) | %.1f%% of %s %.0f |\n",
                   pre_b[i], pre_l[i], ms, tf, 100 * tf / gemm_tf, gemm_name, gemm_tf);
        fflush(stdout);
        batch_free(&b);
    }
    for (int j = 0; j < n_c; j++)
        for (int i = 0; i < n_b; i++) {
            bench_batch b;
            if (batch_make(&b, batches[i], contexts[j], 1, c->vocab_size, be->n_kv_blocks) < 0) {
                printf("RESULT forward | decode b=%d ctx=%d | skipped: KV cache too small\n",
                       batches[i], contexts[j]);
                continue;
            }
            fwd_batch fb = {b.n, b.seqs};
            double ms = time_forward(be, &fb, iters);
            double step_weights = weight_bytes;
            if (c->n_experts) {
                int used = batches[i] * c->n_experts_used < c->n_experts ? batches[i] * c->n_experts_used
                                                                         : c->n_experts;
                step_weights = lin_b * (attn + c->n_layers * (used * expert + router)) + 2.0 * other;
            }
            /* the projections' time: their bytes at the copy rate, or where a large batch
             * makes them compute-bound, their FLOPs at the GEMM ceiling; then the KV bytes */
            double wfloor = step_weights / (bw_gbs * 1e6);
            double mm_ms = 2.0 * batches[i] * (per_tok + lm) / (gemm_tf * 1e9);
            wfloor = mm_ms > wfloor ? mm_ms : wfloor;
            double floor_ms = wfloor + kv_tok_bytes * batches[i] * (double)contexts[j] / (bw_gbs * 1e6);
            if (ms < 0) failed++;
            case_add(&run, &proto, FCMP_DECODE, batches[i], contexts[j], ms, floor_ms);
            printf("RESULT forward | decode b=%d ctx=%d | %.3f ms | floor %.3f ms (weights %.3f%s) | %.1f%% of roofline | %.0f tok/s\n",
                   batches[i], contexts[j], ms, floor_ms, wfloor,
                   mm_ms * bw_gbs * 1e6 >= step_weights ? ", compute-bound" : "", 100 * floor_ms / ms,
                   batches[i] * 1e3 / ms);
            double graph_ms, gemm_ms;
            if (breakdown && bench_decode_breakdown(ce_engine_of(be), batches[i], iters, &graph_ms,
                                                 &gemm_ms) == 0)
                printf("BREAKDOWN decode b=%d ctx=%d | step %.3f ms = graph %.3f (GEMMs %.3f at "
                       "%.0f GB/s, rest %.3f) + host %.3f\n", batches[i], contexts[j], ms,
                       graph_ms, gemm_ms, (lin_b * lin + 2.0 * lm) / (gemm_ms * 1e6), graph_ms - gemm_ms, ms - graph_ms);
            if (md)
                printf("MD | decode b=%d ctx=%d | %.3f ms | floor %.3f ms | %.1f%% of roofline (%.2fx floor) |\n",
                       batches[i], contexts[j], ms, floor_ms, 100 * floor_ms / ms, ms / floor_ms);
            fflush(stdout);
            batch_free(&b);
        }
    be->free(be);
    if (compare) {
        printf("\ncompared with %s\n", compare_file ? compare_file : cmp_path);
        fcmp_print(stdout, &run, &base, md);
    }
    if (save_file && fcmp_save(save_file, &run, err, sizeof err) < 0) {
        fprintf(stderr, "forward: --save-baseline: %s\n", err);
        failed++;
    }
    fcmp_free(&run);
    fcmp_free(&base);
    return failed ? 1 : 0;
}
#endif
