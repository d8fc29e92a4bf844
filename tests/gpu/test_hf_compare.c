/* test_hf_compare.c - the CUDA backend against HF transformers (tests/gpu/hf_compare.py, run
 * here through python3) on a random-weight Llama-3-style model written by make-model in bf16:
 * GQA (8 heads over 2 KV heads), 4 layers, llama3 rope scaling, untied embeddings. HF runs it
 * in fp32 and greedy-decodes 50 tokens after a random prompt; the backend runs the same
 * prompt (in two chunks: chunked prefill) and is teacher-forced with HF's tokens. Every row:
 * relative logit error under the bf16 bound and top-1 agreement (near-ties excepted).
 */
#include "backend_test.h"

#define REL_TOL 3e-2
enum { N_PROMPT = 37, N_DEC = 50 };

int main(void)
{
    bt_seed("test_hf_compare");
    char dir[256];
    if (bt_make_model(dir, "--dim 512 --hidden 1536 --layers 4 --heads 8 --kv-heads 2 "
                           "--vocab 1024 --rope-theta 500000 --llama3-scaling 8 --max-pos 2048 "
                           "--tie 0 --dtype bf16 --seed 7") < 0) {
        bt_check(0, "make-model");
        return bt_summary("test_hf_compare");
    }
    int32_t prompt[N_PROMPT];
    char ids[N_PROMPT * 8] = "", path[300], cmd[1024];
    for (int i = 0; i < N_PROMPT; i++) {
        prompt[i] = bt_int(0, 1023);
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), i ? ",%d" : "%d", prompt[i]);
    }
    snprintf(path, sizeof path, "%s/hf.bin", dir);
    snprintf(cmd, sizeof cmd, "python3 tests/gpu/hf_compare.py %s %s %d %s", dir, ids, N_DEC, path);
    int rc = system(cmd);
    bt_check(rc == 0, "hf_compare.py ran (status %d)", rc);
    FILE *f = fopen(path, "rb");
    int32_t hdr[2] = {0, 0};
    if (!f || fread(hdr, 4, 2, f) != 2 || hdr[0] != N_DEC + 1 || hdr[1] != 1024) {
        bt_check(0, "HF logits file %s readable", path);
        if (f) fclose(f);
        bt_rm_model(dir);
        return bt_summary("test_hf_compare");
    }
    int V = hdr[1];
    char err[512];
    backend_opts o = {.model_dir = dir, .block_size = 16, .max_seq_len = 512,
                      .max_batch_tokens = 512, .max_seqs = 8, .kv_tokens = 1024, .mem_util = 0.5f};
    backend *gpu = cuda_backend_init(&o, err, sizeof err);
    if (!gpu) {
        bt_check(0, "cuda backend: %s", err);
        fclose(f);
        bt_rm_model(dir);
        return bt_summary("test_hf_compare");
    }
    int next = 0;
    int32_t *pool = bt_pool(64);
    bt_seq s;
    bt_seq_init(&s, N_PROMPT + N_DEC + 1, 16, pool, &next);
    memcpy(s.tokens, prompt, sizeof prompt);
    s.n_tokens = s.n_prompt = N_PROMPT;
    float *ref = malloc(sizeof(float) * V);
    bt_cmp cmp = {0};
    int ok = 1, split = N_PROMPT / 3;
    fwd_seq c0 = bt_fwd(&s, split, 0);         /* first chunk, no sampling */
    fwd_batch b0 = {1, &c0};
    ok &= gpu->forward(gpu, &b0) == 0;
    s.n_cached = split;
    for (int row = 0; row <= N_DEC && ok; row++) {
        int32_t tok;
        if (fread(&tok, 4, 1, f) != 1 || fread(ref, 4, (size_t)V, f) != (size_t)V) {
            ok = 0;
            break;
        }
        fwd_seq q = bt_fwd(&s, s.n_tokens - s.n_cached, 1);
        fwd_batch b = {1, &q};
        ok &= gpu->forward(gpu, &b) == 0;
        const float *l = gpu->last_logits(gpu, 0);
        if (!ok || !l) break;
        bt_compare(&cmp, l, ref, V, BT_TIE_FRAC);
        s.n_cached = s.n_tokens;
        s.tokens[s.n_tokens++] = tok;            /* teacher-forced with HF's greedy token */
    }
    bt_check(ok && cmp.n_rows == N_DEC + 1, "prefill + %d decode steps ran (%d rows)", N_DEC,
             cmp.n_rows);
    bt_check(cmp.max_rel < REL_TOL, "logits relative error vs HF fp32 %.2e < %.0e", cmp.max_rel,
             REL_TOL);
    bt_check(cmp.n_top1 + cmp.n_near_tie == cmp.n_rows && cmp.n_near_tie * 20 <= cmp.n_rows,
             "top-1 agrees with HF on %d of %d rows (%d near-ties)", cmp.n_top1, cmp.n_rows,
             cmp.n_near_tie);
    fclose(f);
    free(ref);
    free(pool);
    bt_seq_free(&s);
    gpu->free(gpu);
    bt_rm_model(dir);
    return bt_summary("test_hf_compare");
}
