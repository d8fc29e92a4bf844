/* test_cuda_backend.c - the CUDA backend against the reference CPU backend.
 *
 * 1. Random-weight models written by make-model in bf16 (both backends then hold the same
 *    weights): GQA and MHA, head dims 64, 128 and 48, llama3 rope scaling, tied and untied
 *    embeddings, KV block sizes 1 and 16. Six sequences of random tokens and lengths run
 *    through mixed steps (whole prefills, chunked prefills continuing from cached KV,
 *    single-token prompts, decodes), then decode-only steps (CUDA graphs, padded batches),
 *    teacher-forced with the CPU's greedy tokens. Every sampled row: relative logit error
 *    under the bf16 bound, top-1 agreement (a disagreement passes only at a near-tie), and the
 *    GPU's own greedy token and logprob consistent with its logits.
 * 2. Sampling: many sequences with random temperature / top-k / top-p / penalties / seeds,
 *    logit_bias entries and suppressed ids (min_tokens); the GPU's token must be the CPU
 *    sampler's (worker/sampling.c) on the GPU's logits, its raw logprob too, and the top
 *    logprobs of the rows that ask the CPU reference's (sampler_top_logprobs).
 * 3. --load-format dummy: the GPU's random weights are the CPU's, rounded to bf16; NaN
 *    weights give non-finite logprobs on every sampling path (the worker fails such requests).
 * 4. stories15M (bf16 copy, CINDER_STORIES or .devcarry/stories15M): greedy 100 tokens from
 *    BOS + "Once upon a time" identical to the CPU backend's.
 */
#include "backend_test.h"
#include "../../worker/sampling.h"
#include "../../common/safetensors.h"

#define REL_TOL 3e-2       /* bf16 activations over a few layers */

typedef struct {
    const char *name, *args;
    int bs;
} mcase;

static backend_opts opts_for(const char *dir, int bs, int kv_tokens, int dummy)
{
    return (backend_opts){.model_dir = dir, .dummy_weights = dummy, .block_size = bs,
                          .max_seq_len = 512, .max_batch_tokens = 1024, .max_seqs = 64,
                          .kv_tokens = kv_tokens, .mem_util = 0.5f};
}

static int open_pair(const char *dir, int bs, int kv_tokens, int dummy, backend **cpu,
                     backend **gpu)
{
    char err[512];
    backend_opts o = opts_for(dir, bs, kv_tokens, dummy);
    *cpu = cpu_backend_init(&o, err, sizeof err);
    if (!*cpu) {
        printf("cpu backend: %s\n", err);
        return -1;
    }
    *gpu = cuda_backend_init(&o, err, sizeof err);
    if (!*gpu) {
        printf("cuda backend: %s\n", err);
        (*cpu)->free(*cpu);
        return -1;
    }
    return 0;
}

static void test_model(const mcase *mc)
{
    char dir[256];
    if (bt_make_model(dir, mc->args) < 0) {
        bt_check(0, "%s: make-model %s", mc->name, mc->args);
        return;
    }
    enum { N = 6, EXTRA = 24 };
    int len[N] = {bt_int(2, 200), bt_int(2, 200), bt_int(20, 200), 1, bt_int(2, 100),
                  bt_int(30, 250)};
    int kv_tokens = 0;
    for (int i = 0; i < N; i++)
        kv_tokens += (len[i] + EXTRA + mc->bs - 1) / mc->bs * mc->bs;
    kv_tokens += 4 * mc->bs;
    backend *cpu, *gpu;
    if (open_pair(dir, mc->bs, kv_tokens, 0, &cpu, &gpu) < 0) {
        bt_check(0, "%s: backends start", mc->name);
        bt_rm_model(dir);
        return;
    }
    int V = cpu->cfg.vocab_size, next = 0;
    int32_t *pool = bt_pool(kv_tokens / mc->bs);
    bt_seq seqs[N];
    for (int i = 0; i < N; i++) {
        bt_seq_init(&seqs[i], len[i] + EXTRA, mc->bs, pool, &next);
        for (int t = 0; t < len[i]; t++) seqs[i].tokens[t] = bt_int(0, V - 1);
        seqs[i].n_tokens = seqs[i].n_prompt = len[i];
    }
    int h2 = len[2] / 2, h5 = len[5] / 3;
    bt_cmp cmp = {0};
    int bad = 0, rc = 0;
    /* mixed: whole prefills, a first chunk, a one-token prompt */
    step_item a[] = {{0, len[0], 1}, {1, len[1], 1}, {2, h2, 0}, {3, 1, 1}};
    rc |= run_step(cpu, gpu, seqs, a, 4, &cmp, &bad);
    /* decodes with a chunk continuing from cached KV and new prefills */
    step_item b[] = {{0, 1, 1}, {2, len[2] - h2, 1}, {1, 1, 1}, {4, len[4], 1}, {5, h5, 0},
                     {3, 1, 1}};
    rc |= run_step(cpu, gpu, seqs, b, 6, &cmp, &bad);
    step_item c[] = {{5, len[5] - h5, 1}, {0, 1, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {4, 1, 1}};
    rc |= run_step(cpu, gpu, seqs, c, 6, &cmp, &bad);
    /* decode-only: all six (graph of 8), then three (graph of 4) */
    for (int k = 0; k < 10 && !rc; k++) {
        step_item d[N];
        for (int i = 0; i < N; i++) d[i] = (step_item){N - 1 - i, 1, 1};
        rc |= run_step(cpu, gpu, seqs, d, N, &cmp, &bad);
    }
    for (int k = 0; k < 4 && !rc; k++) {
        step_item d[] = {{4, 1, 1}, {0, 1, 1}, {2, 1, 1}};
        rc |= run_step(cpu, gpu, seqs, d, 3, &cmp, &bad);
    }
    bt_check(rc == 0, "%s: every step ran", mc->name);
    bt_check_cmp(mc->name, &cmp, REL_TOL, bad);
    for (int i = 0; i < N; i++) bt_seq_free(&seqs[i]);
    free(pool);
    cpu->free(cpu);
    gpu->free(gpu);
    bt_rm_model(dir);
}

/* GPU sampling must pick the CPU sampler's token on the GPU's own logits. */
static void test_sampling(void)
{
    char dir[256];
    if (bt_make_model(dir, "--dim 256 --hidden 512 --layers 2 --heads 4 --kv-heads 2 "
                           "--vocab 777 --dtype bf16 --seed 5") < 0) {
        bt_check(0, "sampling: make-model");
        return;
    }
    enum { N = 40, STEPS = 6, BS = 16 };
    backend *cpu, *gpu;
    int kv = N * 64;
    if (open_pair(dir, BS, kv, 0, &cpu, &gpu) < 0) {
        bt_check(0, "sampling: backends start");
        bt_rm_model(dir);
        return;
    }
    cpu->free(cpu);
    int V = gpu->cfg.vocab_size, next = 0;
    int32_t *pool = bt_pool(kv / BS);
    bt_seq seqs[N];
    static const float temps[] = {0, 0.7f, 1.3f, 1.0f}, top_ps[] = {1, 0.9f, 0.5f, 0.05f};
    static const int top_ks[] = {0, 1, 5, 50, 100000};
    static const float reps[] = {1, 1.3f, 0.8f}, freqs[] = {0, 0.5f}, pres[] = {0, -0.3f, 0.4f};
    for (int i = 0; i < N; i++) {
        int len = bt_int(2, 30);
        bt_seq_init(&seqs[i], 64, BS, pool, &next);
        for (int t = 0; t < len; t++) seqs[i].tokens[t] = bt_int(0, 40);   /* repeats */
        seqs[i].n_tokens = seqs[i].n_prompt = len;
        sampling_params *p = &seqs[i].sp;
        p->temperature = temps[bt_int(0, 3)];
        p->top_p = top_ps[bt_int(0, 3)];
        p->top_k = top_ks[bt_int(0, 4)];
        p->repetition_penalty = reps[bt_int(0, 2)];
        p->frequency_penalty = freqs[bt_int(0, 1)];
        p->presence_penalty = pres[bt_int(0, 2)];
        p->seed = bt_next();
        if (bt_int(0, 1)) p->n_top_logprobs = bt_int(1, FWD_MAX_TOP_LOGPROBS);
        bt_random_bias(&seqs[i], V);
    }
    sampler smp;
    sampler_init(&smp, V);
    int n_rows = 0, n_same = 0, rc = 0, n_top_rows = 0, n_top_bad = 0;
    double lp_err = 0;
    static int32_t top_ids[N][FWD_MAX_TOP_LOGPROBS], ref_ids[FWD_MAX_TOP_LOGPROBS];
    static float top_lps[N][FWD_MAX_TOP_LOGPROBS], ref_lps[FWD_MAX_TOP_LOGPROBS];
    for (int step = 0; step < STEPS && !rc; step++) {
        fwd_seq f[N];
        for (int i = 0; i < N; i++) {
            f[i] = bt_fwd(&seqs[i], seqs[i].n_tokens - seqs[i].n_cached, 1);
            f[i].out_top_ids = top_ids[i];
            f[i].out_top_lps = top_lps[i];
        }
        fwd_batch b = {N, f};
        rc = gpu->forward(gpu, &b);
        for (int i = 0; i < N && !rc; i++) {
            bt_seq *s = &seqs[i];
            int n = s->n_tokens;
            float lp;
            const float *l = gpu->last_logits(gpu, i);
            sample_input in = {&s->sp, s->tokens, n, s->n_prompt, s->suppress, s->n_suppress};
            int32_t want = sampler_sample(&smp, l, &in, &lp);
            int k = s->sp.n_top_logprobs;
            if (k > 0) {   /* the CPU reference on the GPU's own logits: the same ids, in order */
                sampler_top_logprobs(&smp, l, k, ref_ids, ref_lps);
                n_top_rows++;
                for (int j = 0; j < k; j++)
                    if (ref_ids[j] != top_ids[i][j] || fabsf(ref_lps[j] - top_lps[i][j]) > 1e-5f) {
                        n_top_bad++;
                        break;
                    }
            }
            n_rows++;
            if (want == f[i].out_token) n_same++;
            else printf("  seq %d step %d: gpu %d cpu %d (T %.2f k %d p %.2f rep %.2f)\n", i,
                        step, f[i].out_token, want, s->sp.temperature, s->sp.top_k, s->sp.top_p,
                        s->sp.repetition_penalty);
            double e = fabs((double)lp - f[i].out_logprob);
            if (!(e <= lp_err)) lp_err = e;
            s->n_cached = n;
            s->tokens[n] = f[i].out_token;
            s->n_tokens = n + 1;
        }
    }
    bt_check(rc == 0, "sampling: every step ran");
    bt_check(n_same == n_rows, "sampling: GPU token = CPU sampler's on %d of %d rows", n_same,
             n_rows);
    bt_check(lp_err < 1e-3, "sampling: logprob error %.2e < 1e-3", lp_err);
    bt_check(n_top_rows > 0 && n_top_bad == 0, "sampling: top logprobs = the CPU reference's on "
             "the GPU's logits on %d of %d rows", n_top_rows - n_top_bad, n_top_rows);
    sampler_free(&smp);
    for (int i = 0; i < N; i++) bt_seq_free(&seqs[i]);
    free(pool);
    gpu->free(gpu);
    bt_rm_model(dir);
}

/* Dummy weights: the CPU's fp32 values and the GPU's bf16 copies of them. */
static void test_dummy(void)
{
    char dir[256];
    if (bt_make_model(dir, "--dim 256 --hidden 512 --layers 2 --heads 4 --kv-heads 2 "
                           "--vocab 500 --tie 0") < 0) {
        bt_check(0, "dummy: make-model");
        return;
    }
    backend *cpu, *gpu;
    if (open_pair(dir, 16, 1024, 1, &cpu, &gpu) < 0) {
        bt_check(0, "dummy: backends start");
        bt_rm_model(dir);
        return;
    }
    int next = 0;
    int32_t *pool = bt_pool(64);
    bt_seq s;
    bt_seq_init(&s, 300, 16, pool, &next);
    for (int t = 0; t < 200; t++) s.tokens[t] = bt_int(0, 499);
    s.n_tokens = s.n_prompt = 200;
    bt_cmp cmp = {0};
    int bad = 0;
    step_item a[] = {{0, 200, 1}};
    int rc = run_step(cpu, gpu, &s, a, 1, &cmp, &bad);
    bt_check(rc == 0 && cmp.max_rel < 5e-2 && cmp.n_top1 + cmp.n_near_tie == 1,
             "dummy weights: CPU fp32 and GPU bf16 random models agree (rel %.2e)", cmp.max_rel);
    bt_seq_free(&s);
    free(pool);
    cpu->free(cpu);
    gpu->free(gpu);
    bt_rm_model(dir);
}

/* NaN weights (model.norm.weight): every sampled row, greedy or not, must come back with a
 * non-finite logprob, which the worker turns into a failed request (worker/main.c). */
static void test_nan_weights(void)
{
    char dir[256], path[300], err[256];
    if (bt_make_model(dir, "--dim 256 --hidden 512 --layers 2 --heads 4 --kv-heads 2 "
                           "--vocab 600 --dtype bf16 --seed 9") < 0) {
        bt_check(0, "nan: make-model");
        return;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    safetensors st;
    st_init(&st);
    const st_tensor *t = st_add_file(&st, path, err, sizeof err) ? NULL
                                                                  : st_find(&st, "model.norm.weight");
    long off = t ? (long)((const char *)t->data - (const char *)st.maps[t->file]) : -1;
    size_t n = t ? t->n_bytes : 0;
    st_free(&st);
    FILE *f = off >= 0 ? fopen(path, "r+b") : NULL;
    int ok = f && fseek(f, off, SEEK_SET) == 0;
    for (size_t i = 0; ok && i < n / 2; i++)
        ok = fputc(0xc0, f) != EOF && fputc(0x7f, f) != EOF;   /* bf16 quiet NaN 0x7fc0 */
    if (f) fclose(f);
    backend *gpu = NULL;
    backend_opts o = opts_for(dir, 16, 1024, 0);
    if (ok) gpu = cuda_backend_init(&o, err, sizeof err);
    if (!gpu) {
        bt_check(0, "nan: poison and start (%s)", ok ? err : "cannot write");
        bt_rm_model(dir);
        return;
    }
    int next = 0, n_finite = 0;
    int32_t *pool = bt_pool(64);
    bt_seq s[4];
    fwd_seq fs[4];
    for (int i = 0; i < 4; i++) {
        bt_seq_init(&s[i], 40, 16, pool, &next);
        for (int k = 0; k < 20; k++) s[i].tokens[k] = bt_int(0, 599);
        s[i].n_tokens = s[i].n_prompt = 20;
        if (i) s[i].sp.temperature = 0.8f;   /* rows 1-3: sampled, with top-k / top-p */
        if (i == 2) s[i].sp.top_k = 20;
        if (i == 3) s[i].sp.top_p = 0.9f;
        fs[i] = bt_fwd(&s[i], 20, 1);
    }
    fwd_batch b = {4, fs};
    int rc = gpu->forward(gpu, &b);
    for (int i = 0; i < 4; i++) n_finite += isfinite(fs[i].out_logprob) != 0;
    bt_check(rc == 0 && n_finite == 0, "nan weights: %d of 4 rows (greedy, T, top-k, top-p) "
             "report a finite logprob (want 0)", n_finite);
    for (int i = 0; i < 4; i++) bt_seq_free(&s[i]);
    free(pool);
    gpu->free(gpu);
    bt_rm_model(dir);
}

/* Greedy generation of N tokens on one backend. */
static int generate(backend *b, bt_seq *s, int n)
{
    for (int k = 0; k < n; k++) {
        fwd_seq f = bt_fwd(s, s->n_tokens - s->n_cached, 1);
        fwd_batch batch = {1, &f};
        if (b->forward(b, &batch) != 0)
            return -1;
        s->n_cached = s->n_tokens;
        s->tokens[s->n_tokens++] = f.out_token;
    }
    return 0;
}

static void test_stories(void)
{
    const char *dir = getenv("CINDER_STORIES") ? getenv("CINDER_STORIES") : ".devcarry/stories15M";
    backend *cpu, *gpu;
    if (open_pair(dir, 16, 4096, 0, &cpu, &gpu) < 0) {
        bt_check(0, "stories15M: both backends load %s", dir);
        return;
    }
    static const int32_t prompt[] = {1, 9038, 2501, 263, 931};
    enum { NP = 5, NG = 100 };
    int next = 0;
    int32_t *pool = bt_pool(256);
    bt_seq sc, sg;
    bt_seq_init(&sc, NP + NG + 1, 16, pool, &next);
    next = 0;
    bt_seq_init(&sg, NP + NG + 1, 16, pool, &next);
    memcpy(sc.tokens, prompt, sizeof prompt);
    memcpy(sg.tokens, prompt, sizeof prompt);
    sc.n_tokens = sg.n_tokens = sc.n_prompt = sg.n_prompt = NP;
    int rc = generate(cpu, &sc, NG) | generate(gpu, &sg, NG);
    int first_diff = -1;
    for (int i = 0; i < NP + NG && first_diff < 0; i++)
        if (sc.tokens[i] != sg.tokens[i]) first_diff = i;
    printf("stories15M gpu:");
    for (int i = 0; i < NP + NG; i++) printf(" %d", sg.tokens[i]);
    printf("\n");
    if (first_diff >= 0) {
        printf("stories15M cpu:");
        for (int i = 0; i < NP + NG; i++) printf(" %d", sc.tokens[i]);
        printf("\n");
    }
    bt_check(rc == 0 && first_diff < 0,
             "stories15M: greedy %d tokens identical to the CPU backend (first difference at %d)",
             NG, first_diff);
    bt_seq_free(&sc);
    bt_seq_free(&sg);
    free(pool);
    cpu->free(cpu);
    gpu->free(gpu);
}

int main(void)
{
    bt_seed("test_cuda_backend");
    static const mcase cases[] = {
        {"gqa hd64 bs16", "--dim 256 --hidden 512 --layers 2 --heads 4 --kv-heads 2 --vocab 512 "
                          "--dtype bf16 --seed 1", 16},
        {"mha hd128 bs1", "--dim 256 --hidden 384 --layers 2 --heads 2 --kv-heads 2 --vocab 300 "
                          "--dtype bf16 --seed 2 --tie 0", 1},
        {"hd48 stories-shape bs16", "--dim 288 --hidden 768 --layers 3 --heads 6 --kv-heads 6 "
                                    "--vocab 1000 --dtype bf16 --seed 3", 16},
        {"gqa4 hd128 llama3 bs1", "--dim 512 --hidden 1024 --layers 2 --heads 4 --kv-heads 1 "
                                  "--vocab 2048 --rope-theta 500000 --llama3-scaling 8 "
                                  "--max-pos 512 --dtype bf16 --seed 4 --tie 0", 1},
        {"gqa hd64 bs16 again", "--dim 256 --hidden 512 --layers 4 --heads 8 --kv-heads 2 "
                                "--head-dim 64 --vocab 640 --dtype bf16 --seed 6", 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        test_model(&cases[i]);
    test_sampling();
    test_dummy();
    test_nan_weights();
    test_stories();
    return bt_summary("test_cuda_backend");
}
