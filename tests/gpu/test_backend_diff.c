/* test_backend_diff.c - differential test of the CUDA backend against the reference CPU
 * backend over random batch compositions, the way the router builds them (issue 10: a
 * prefill chunk that did not sample wrote max_batch_tokens rows of logits into a buffer of
 * max_seqs rows, and the worker died on the first prompt longer than --max-batch-tokens).
 *
 * Per case, a random-weight bf16 model (make-model: both backends hold the same weights) and
 * a scheduler in miniature: sequences with prompts from 1 token up to max_seq_len - 1 wait,
 * are admitted up to max_seqs at a time, and every step carries (most of) the running decodes
 * plus prefill chunks under the token budget, each chunk cut at a random boundary (1 token,
 * the budget's rest, the prompt's rest), so chunks continue from cached KV at every offset and
 * decode-only steps of random sizes hit the CUDA-graph buckets (and their padding). Only a
 * prompt's last chunk samples. Some sequences ask for top logprobs, some have logit_bias
 * entries or ids min_tokens suppresses. Every sampled row: relative logit error under the
 * bf16 bound, top-1 agreement (near-ties aside), the GPU's greedy token (after bias and
 * suppression), raw logprob and top logprobs consistent with its own logits; teacher-forced
 * with the CPU's tokens. Block sizes 1, 16 and 256; head dim 128
 * with GQA; graphs on and off; and a case whose unsampled chunk (2048 rows, vocab 32000) is
 * far larger than the logits buffer of max_seqs = 4 rows. Then the families (make-model
 * --arch): Qwen2 biases, Qwen3 q/k norms, Mistral / Qwen2 sliding windows, Mixtral and
 * Qwen3-MoE experts (both the expert GEMV and the grouped GEMM paths); FP8 weights and KV cache
 * (--quantization fp8, --kv-cache-dtype fp8) against the CPU's FP8 math.
 * MoE cases run twice. First with the GPU told the CPU's expert choices (the router's top-k
 * is discontinuous: bf16 activations move a near-tie of the k-th and (k+1)-th logits to the
 * other side, and the token's row with it, then the rows after it through the K/V): every row
 * within the bound, and control rows routed elsewhere on purpose must fail it (the test
 * catches a wrong expert). Then with the GPU's own routing: top-1 and the mean row error.
 */
#include "backend_test.h"
#include "../../worker/cuda_backend.h"
#include "../fp8_ckpt.h"

#include <sys/stat.h>

#define REL_TOL 3e-2
#define REL_TOL_FP8 0.15   /* E4M3 activations of bf16 (GPU) and fp32 (CPU) rows round apart */
#define N_CONTROLS 3   /* control rows a forced MoE run breaks on purpose */

typedef struct {
    const char *name, *args;
    int bs, max_seq, max_tokens, max_seqs, n_seqs;
    int graphs;      /* 0: --enforce-eager (eager decodes, the fused GEMV path up to 8) */
    int n_long;      /* sequences whose prompt is max_seq_len - 1 .. max_seq_len/2 */
    int fp8;         /* bit 0: --quantization fp8, bit 1: --kv-cache-dtype fp8 (both backends);
                        bit 2: the model rewritten as an FP8 checkpoint (per-channel scales) */
} dcase;

typedef struct {
    int prompt;      /* prompt tokens */
    int total;       /* prompt + generated tokens it ends with */
    int state;       /* 0 waiting, 1 running, 2 done */
} dseq;

/* MoE runs with forced routing: the CPU's experts handed to the GPU at every step, and up to
 * N_CONTROLS control rows routed elsewhere on purpose (each the last step of its sequence, so
 * that no later row reads its K/V). */
static struct {
    const dcase *dc;
    bt_seq *s;
    dseq *d;
    int32_t *ids;        /* [n_layers, max_tokens, k] what the GPU is told */
    int n_ctrl;
} g_force;

static int force_between(backend *cpu, backend *gpu, const step_item *items, int n)
{
    (void)gpu;
    const model_config *c = &cpu->cfg;
    int k = c->n_experts_used, M = g_force.dc->max_tokens, ctrl = -1;
    const int32_t *ref = cpu_backend_routing(cpu);
    memcpy(g_force.ids, ref, sizeof(int32_t) * (size_t)c->n_layers * M * k);
    for (int i = 0, row = 0; i < n; row += items[i].n_new, i++) {
        const bt_seq *q = &g_force.s[items[i].seq];
        int end = q->n_cached + items[i].n_new;
        if (g_force.n_ctrl >= N_CONTROLS || !items[i].sample || end < q->n_prompt ||
            end + 1 < g_force.d[items[i].seq].total)
            continue;
        int t = row + items[i].n_new - 1;   /* its sampled row, in every layer: k experts the
                                               CPU did not choose */
        for (int l = 0; l < c->n_layers; l++) {
            int32_t *sel = g_force.ids + ((size_t)l * M + t) * k;
            int32_t orig[MODEL_MAX_EXPERTS_USED];
            memcpy(orig, sel, sizeof(int32_t) * k);
            for (int e = 0, j = 0; e < c->n_experts && j < k; e++) {
                int used = 0;
                for (int m = 0; m < k; m++) used |= orig[m] == e;
                if (!used) sel[j++] = e;
            }
        }
        g_force.n_ctrl++;
        ctrl = i;
        break;
    }
    return ctrl;
}

/* One step: decodes first (each with probability p_dec), then prefill chunks under the
 * budget; returns the number of items written to IT. */
static int build_step(const dcase *dc, bt_seq *s, dseq *d, int n, step_item *it, int p_dec)
{
    int n_it = 0, budget = dc->max_tokens, n_run = 0;
    for (int i = 0; i < n; i++) n_run += d[i].state == 1;
    for (int i = 0; i < n && n_run < dc->max_seqs; i++)   /* admit a random number */
        if (d[i].state == 0 && bt_int(0, 2)) {
            d[i].state = 1;
            n_run++;
        }
    for (int i = 0; i < n && budget > 0; i++) {
        if (d[i].state != 1 || s[i].n_cached < s[i].n_prompt) continue;
        if (bt_int(1, 100) > p_dec) continue;
        it[n_it++] = (step_item){i, 1, 1};
        budget--;
    }
    if (n_it > 0 && bt_int(0, 2) == 0)
        return n_it;   /* a decode-only step (of this random size) */
    for (int i = 0; i < n && budget > 0; i++) {
        if (d[i].state != 1 || s[i].n_cached >= s[i].n_prompt) continue;
        int rest = s[i].n_prompt - s[i].n_cached, c = rest < budget ? rest : budget;
        switch (bt_int(0, 3)) {   /* where the chunk ends */
        case 0: c = bt_int(1, c); break;
        case 1: c = c > 1 && bt_int(0, 1) ? c - 1 : 1; break;
        default: break;           /* as far as the budget or the prompt goes */
        }
        it[n_it++] = (step_item){i, c, s[i].n_cached + c == s[i].n_prompt};
        budget -= c;
    }
    return n_it;
}

/* DIR's model rewritten in place as a compressed-tensors FP8 checkpoint: 0 or -1. */
static int to_fp8_checkpoint(const char *dir)
{
    char tmp[300], qc[2048], cmd[1024];
    snprintf(tmp, sizeof tmp, "%s/fp8", dir);
    snprintf(qc, sizeof qc, FP8CK_CT, "channel", FP8CK_TOKEN);
    snprintf(cmd, sizeof cmd, "mv %s/config.json %s/model.safetensors %s/", tmp, tmp, dir);
    return mkdir(tmp, 0700) == 0 && fp8ck_write_config(dir, tmp, qc) == 0 &&
           fp8ck_write(dir, tmp, 0, 0) == 0 && system(cmd) == 0 && rmdir(tmp) == 0 ? 0 : -1;
}

/* FORCED (MoE): the GPU routes as the CPU did (see g_force); a free MoE run is compared on
 * top-1 and the mean row error only, a routing flip at a near-tie of the router's k-th and
 * (k+1)-th logits being a discontinuity that moves whole rows. */
static void run_case(const dcase *dc, int forced)
{
    char dir[256];
    if (bt_make_model(dir, dc->args) < 0 || ((dc->fp8 & 4) && to_fp8_checkpoint(dir) < 0)) {
        bt_check(0, "%s: make-model %s", dc->name, dc->args);
        return;
    }
    int n = dc->n_seqs;
    bt_seq *s = calloc((size_t)n, sizeof *s);
    dseq *d = calloc((size_t)n, sizeof *d);
    int n_blocks = 0;
    for (int i = 0; i < n; i++) {
        int p;
        if (i == 0) p = dc->max_seq - 1;                       /* the whole context */
        else if (i == 1) p = 1;
        else if (i < 2 + dc->n_long) p = bt_int(dc->max_seq / 2, dc->max_seq - 1);
        else if (bt_int(0, 2)) p = bt_int(1, 64);
        else p = bt_int(65, 2 * dc->max_tokens < dc->max_seq ? 2 * dc->max_tokens : dc->max_seq - 1);
        int total = p + bt_int(1, 40);
        d[i].prompt = p;
        d[i].total = total < dc->max_seq ? total : dc->max_seq;
        n_blocks += (d[i].total + dc->bs - 1) / dc->bs;
    }
    backend_opts o = {.model_dir = dir, .block_size = dc->bs, .max_seq_len = dc->max_seq,
                      .max_batch_tokens = dc->max_tokens, .max_seqs = dc->max_seqs,
                      .kv_tokens = (int64_t)(n_blocks + 2) * dc->bs, .mem_util = 0.5f,
                      .no_graphs = !dc->graphs, .quant_fp8 = dc->fp8 & 1,
                      .kv_fp8 = dc->fp8 >> 1 & 1};
    char err[512];
    backend *cpu = cpu_backend_init(&o, err, sizeof err), *gpu = NULL;
    if (cpu) gpu = cuda_backend_init(&o, err, sizeof err);
    if (!cpu || !gpu) {
        bt_check(0, "%s: backends start: %s", dc->name, err);
        goto done;
    }
    if (forced) {
        const model_config *c = &cpu->cfg;
        g_force.dc = dc, g_force.s = s, g_force.d = d, g_force.n_ctrl = 0;
        g_force.ids = calloc((size_t)c->n_layers * dc->max_tokens * c->n_experts_used,
                             sizeof(int32_t));
        ce_moe_force(ce_engine_of(gpu), g_force.ids, dc->max_tokens);
        bt_between = force_between;
    }
    int V = cpu->cfg.vocab_size, next = 0;
    int32_t *pool = bt_pool(n_blocks + 2);
    for (int i = 0; i < n; i++) {
        bt_seq_init(&s[i], d[i].total, dc->bs, pool, &next);
        s[i].n_prompt = d[i].prompt;
        for (int t = 0; t < s[i].n_prompt; t++) s[i].tokens[t] = bt_int(0, V - 1);
        s[i].n_tokens = s[i].n_prompt;
        if (bt_int(0, 2) == 0) s[i].sp.n_top_logprobs = bt_int(1, FWD_MAX_TOP_LOGPROBS);
        bt_random_bias(&s[i], V);
    }
    free(pool);
    step_item *it = calloc((size_t)dc->max_tokens, sizeof *it);
    bt_cmp cmp = {0};
    int bad = 0, rc = 0, n_steps = 0, n_done = 0, n_chunks = 0, n_cont = 0, n_unsampled = 0;
    int max_unsampled = 0, dec_sizes[257] = {0};
    while (n_done < n && !rc) {
        int p_dec = bt_int(0, 2) ? 100 : bt_int(10, 90);
        int k = build_step(dc, s, d, n, it, p_dec);
        if (k == 0) continue;
        int n_dec = 0;
        for (int j = 0; j < k; j++) {
            const bt_seq *q = &s[it[j].seq];
            if (q->n_cached >= q->n_prompt) n_dec++;
            else {
                n_chunks++;
                n_cont += q->n_cached > 0;
                if (!it[j].sample) {
                    n_unsampled++;
                    if (it[j].n_new > max_unsampled) max_unsampled = it[j].n_new;
                }
            }
        }
        if (n_dec == k) dec_sizes[k < 256 ? k : 256]++;
        rc = run_step(cpu, gpu, s, it, k, &cmp, &bad);
        n_steps++;
        for (int j = 0; j < k; j++) {
            int i = it[j].seq;
            if (d[i].state == 1 && s[i].n_cached >= s[i].n_prompt && s[i].n_tokens >= d[i].total) {
                d[i].state = 2;   /* its last token is sampled: done */
                n_done++;
            }
        }
    }
    free(it);
    bt_between = NULL;
    char name[160];
    snprintf(name, sizeof name, "%s%s", dc->name,
             cpu->cfg.n_experts ? (forced ? " (CPU's routing)" : " (own routing)") : "");
    printf("%s: %d steps, %d prefill chunks (%d continuing cached KV, %d unsampled, largest "
           "%d tokens), decode-only batches of sizes", name, n_steps, n_chunks, n_cont,
           n_unsampled, max_unsampled);
    for (int i = 1; i <= 256; i++)
        if (dec_sizes[i]) printf(" %d", i);
    printf("\n");
    bt_check(rc == 0, "%s: every step ran", name);
    bt_check(n_done == n, "%s: all %d sequences ran to their end", name, n);
    if (cpu->cfg.n_experts && !forced) {
        double mean = cmp.n_rows ? cmp.sum_rel / cmp.n_rows : INFINITY;
        bt_check(mean < REL_TOL, "%s: mean logits relative error %.2e < %.0e over %d rows "
                 "(%d over %.0e, worst %.2e: tokens routed to another expert by a near-tie)",
                 name, mean, REL_TOL, cmp.n_rows, cmp.n_over, BT_ROW_TOL, cmp.max_rel);
        bt_check(cmp.n_top1 + cmp.n_near_tie == cmp.n_rows && cmp.n_near_tie * 20 <= cmp.n_rows,
                 "%s: top-1 agrees on %d of %d rows (%d near-ties)", name, cmp.n_top1,
                 cmp.n_rows, cmp.n_near_tie);
        bt_check(bad == 0, "%s: GPU greedy token, logprob and top logprobs match its logits "
                 "(%d off)", name, bad);
    } else {
        bt_check_cmp(name, &cmp, dc->fp8 ? REL_TOL_FP8 : REL_TOL, bad);
    }
    if (forced)
        bt_check(cmp.n_ctrl > 0 && cmp.ctrl_min_rel > REL_TOL, "%s: %d control rows routed to "
                 "other experts on purpose are caught (smallest error %.2e > %.0e)", name,
                 cmp.n_ctrl, cmp.ctrl_min_rel, REL_TOL);
done:
    if (forced) {
        free(g_force.ids);
        g_force.ids = NULL;
    }
    for (int i = 0; i < n; i++) bt_seq_free(&s[i]);
    free(s);
    free(d);
    if (cpu) cpu->free(cpu);
    if (gpu) gpu->free(gpu);
    bt_rm_model(dir);
}

/* Arguments: run only the cases whose name contains one of them (all without). */
int main(int argc, char **argv)
{
    bt_seed("test_backend_diff");
    /* head dim 128, GQA 4/2 (and 8/2): the production attention shapes, a few layers */
#define GQA128 "--dim 512 --hidden 768 --layers 3 --heads 4 --kv-heads 2 --head-dim 128 " \
               "--vocab 1024 --dtype bf16 --seed 11"
    static const dcase cases[] = {
        {"bs16 graphs", GQA128, 16, 2048, 512, 64, 90, 1, 3, 0},
        {"bs1 graphs", GQA128, 1, 1024, 256, 48, 60, 1, 2, 0},
        {"bs256 graphs", GQA128, 256, 2048, 384, 32, 50, 1, 2, 0},
        {"bs16 eager", "--dim 512 --hidden 768 --layers 2 --heads 8 --kv-heads 2 --head-dim 64 "
                       "--vocab 1000 --dtype bf16 --seed 12", 16, 1024, 300, 24, 40, 0, 2, 0},
        /* the issue-10 shape: an unsampled chunk of 2048 rows, logits buffer of 4 rows */
        {"bs16 vocab32000 max_seqs4", "--dim 256 --hidden 512 --layers 2 --heads 2 --kv-heads 1 "
                                      "--head-dim 128 --vocab 32000 --dtype bf16 --seed 13",
         16, 4096, 2048, 4, 6, 1, 3, 0},
        /* the families: Qwen2 q/k/v bias, Qwen3 q/k norm (head_dim 128 != dim / heads),
           Mistral sliding windows cutting blocks, key tiles and decode splits (graphs: the
           general path; eager: the fused GEMV decode path), Qwen2 windowed from layer 1 */
        {"qwen2 bias bs16 graphs", "--arch qwen2 " GQA128, 16, 1024, 256, 32, 30, 1, 2, 0},
        {"qwen3 qk-norm bs16 eager", "--arch qwen3 --dim 256 --hidden 512 --layers 2 --heads 4 "
                                     "--kv-heads 2 --head-dim 128 --vocab 1024 --dtype bf16 "
                                     "--seed 22", 16, 1024, 256, 24, 24, 0, 2, 0},
        {"mistral window 100 bs16 graphs", "--arch mistral --window 100 " GQA128, 16, 2048, 384,
         32, 30, 1, 3, 0},
        {"mistral window 37 bs1 eager", "--arch mistral --window 37 " GQA128, 1, 1024, 256, 16,
         20, 0, 2, 0},
        {"qwen2 window 64 from layer 1 bs7", "--arch qwen2 --window 64 --window-from 1 " GQA128,
         7, 1024, 300, 24, 24, 1, 2, 0},
        /* MoE: decode batches up to 64 (token, expert) pairs on the expert GEMV path (in
           graphs), larger ones and prefills on the sorted per-expert GEMMs */
        {"mixtral 8 experts top-2 bs16 graphs", "--arch mixtral --experts 8 --top-k 2 " GQA128,
         16, 1024, 256, 48, 40, 1, 2, 0},
        {"qwen3_moe 16 top-4 renorm eager", "--arch qwen3_moe --experts 16 --top-k 4 "
                                            "--moe-hidden 256 --norm-topk 1 --dim 256 --hidden 512 "
                                            "--layers 2 --heads 4 --kv-heads 2 --head-dim 128 "
                                            "--vocab 1024 --dtype bf16 --seed 23",
         16, 1024, 256, 24, 24, 0, 2, 0},
        {"qwen3_moe 64 top-8 graphs", "--arch qwen3_moe --experts 64 --top-k 8 --moe-hidden 128 "
                                      "--norm-topk 0 --dim 256 --hidden 512 --layers 2 --heads 8 "
                                      "--kv-heads 2 --head-dim 64 --vocab 1024 --dtype bf16 "
                                      "--seed 24", 16, 1024, 256, 32, 30, 1, 2, 0},
        /* FP8: both backends quantize the same bf16 weights per channel (the same codes) and
           the activations per token; the CUDA side runs the E4M3 GEMV / cuBLASLt FP8 GEMM
           and the E4M3 KV cache */
        {"fp8 weights + kv bs16 graphs", GQA128, 16, 1024, 256, 32, 30, 1, 2, 3},
        {"fp8 weights bs1 eager", GQA128, 1, 1024, 256, 16, 20, 0, 2, 1},
        {"fp8 kv bs16 eager", GQA128, 16, 1024, 256, 16, 20, 0, 2, 2},
        {"fp8 checkpoint + kv bs16 graphs", GQA128, 16, 1024, 256, 24, 20, 1, 2, 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int picked = argc < 2;
        for (int a = 1; a < argc; a++) picked |= strstr(cases[i].name, argv[a]) != NULL;
        if (!picked) continue;
        int moe = strstr(cases[i].args, "--experts") != NULL;
        if (moe)
            run_case(&cases[i], 1);
        run_case(&cases[i], 0);
    }
    return bt_summary("test_backend_diff");
}
