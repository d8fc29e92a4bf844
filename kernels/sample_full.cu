/* sample_full.cu - bias, penalties, greedy, temperature, top-k, top-p sampling (see
 * sample_full.cuh).
 *
 * Pipeline per call: copy each selected logits row to a workspace row; apply the bias and
 * penalty list (one thread per listed token); scale the sampling rows by 1/temperature; when
 * some row uses top-k/top-p, a stable segmented sort (cub) orders those rows by decreasing
 * value (ids ascending on ties, the CPU's total order); then one block per row: the raw row's
 * log-sum-exp (for the logprob), then argmax for greedy rows, else the kept prefix, its
 * double-precision mass, the top-p cut and the draw by block-wide prefix sums over chunks of
 * 1024 values.
 */
#include "sample_full.cuh"
#include "rng.h"
#include "row_lse.cuh"
#include <cub/cub.cuh>

#define ST_NT 1024

typedef struct {
    float *proc;       /* [n_rows, vocab] penalized (then scaled) logits */
    float *keys;       /* [n_rows, vocab] sorted values */
    int32_t *ids_in;   /* [n_rows, vocab] 0..vocab-1 per row */
    int32_t *ids_out;  /* [n_rows, vocab] ids in sorted order */
    int32_t *offs;     /* [2, n_rows] segment begins, then ends */
    void *temp;        /* cub temporary storage */
    size_t temp_bytes;
} sf_ws;

static size_t al256(size_t x) { return (x + 255) & ~(size_t)255; }

/* Carves the workspace at BASE (may be 0 to size it); returns its size, 0 on a cub error. */
static size_t ws_layout(sf_ws *w, uintptr_t base, int n_rows, int vocab)
{
    size_t n = (size_t)n_rows * vocab, off = 0;
    w->proc = (float *)(base + off);     off += al256(n * sizeof(float));
    w->keys = (float *)(base + off);     off += al256(n * sizeof(float));
    w->ids_in = (int32_t *)(base + off); off += al256(n * sizeof(int32_t));
    w->ids_out = (int32_t *)(base + off); off += al256(n * sizeof(int32_t));
    w->offs = (int32_t *)(base + off);   off += al256(2 * (size_t)n_rows * sizeof(int32_t));
    size_t temp = 0;
    if (cub::DeviceSegmentedSort::StableSortPairsDescending(
            nullptr, temp, (const float *)nullptr, (float *)nullptr, (const int32_t *)nullptr,
            (int32_t *)nullptr, (int)n, n_rows, (const int32_t *)nullptr,
            (const int32_t *)nullptr) != cudaSuccess)
        return 0;
    w->temp = (void *)(base + off);
    w->temp_bytes = temp;
    return off + al256(temp);
}

extern "C" size_t sample_full_workspace_size(int n_rows, int vocab)
{
    sf_ws w;
    return ws_layout(&w, 0, n_rows, vocab);
}

__device__ __forceinline__ bool row_greedy(const sample_row_params &p) { return !(p.temperature > 0.f); }
__device__ __forceinline__ int row_top_k(const sample_row_params &p, int vocab)
{
    return p.top_k > 0 && p.top_k < vocab ? p.top_k : 0;
}
__device__ __forceinline__ bool row_top_p(const sample_row_params &p) { return p.top_p > 0.f && p.top_p < 1.f; }
__device__ __forceinline__ bool row_sorts(const sample_row_params &p, int vocab)
{
    return !row_greedy(p) && (row_top_k(p, vocab) || row_top_p(p));
}

__global__ void sf_copy_kernel(float *proc, const float *__restrict__ logits,
                                 const int32_t *__restrict__ rows, int vocab)
{
    int r = blockIdx.y;
    const float *src = logits + (size_t)rows[r] * vocab;
    float *dst = proc + (size_t)r * vocab;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x)
        dst[i] = src[i];
}

/* One thread per listed token (distinct within a row): the CPU's arithmetic, unfused (the
 * CPU adds the bias, sets suppressed ids to -inf, then applies the penalties). */
__global__ void sf_penalty_kernel(float *proc, const sample_row_params *__restrict__ params,
                                    const sample_penalty *__restrict__ pen, int vocab)
{
    int r = blockIdx.x;
    sample_row_params p = params[r];
    bool rep = p.repetition_penalty != 1.f && p.repetition_penalty > 0.f;
    bool fp = p.frequency_penalty != 0.f || p.presence_penalty != 0.f;
    for (int e = p.pen_begin + threadIdx.x; e < p.pen_end; e += blockDim.x) {
        sample_penalty q = pen[e];
        float *l = proc + (size_t)r * vocab + q.token;
        float v = *l;
        if (q.bias != 0.f)
            v = __fadd_rn(v, q.bias);
        if (rep && q.in_seq)
            v = v > 0.f ? __fdiv_rn(v, p.repetition_penalty) : __fmul_rn(v, p.repetition_penalty);
        if (fp && q.n_out > 0)
            v = __fsub_rn(v, __fadd_rn(__fmul_rn(p.frequency_penalty, (float)q.n_out),
                                       p.presence_penalty));
        *l = v;
    }
}

/* Sampling rows: value * (1 / temperature), -0 made +0 (the CPU orders them as equal); sorted
 * rows also get their ids and a segment. */
__global__ void sf_scale_kernel(float *proc, int32_t *ids, int32_t *offs,
                                  const sample_row_params *__restrict__ params, int n_rows,
                                  int vocab)
{
    int r = blockIdx.y;
    sample_row_params p = params[r];
    bool sorts = row_sorts(p, vocab);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        offs[r] = r * vocab;
        offs[n_rows + r] = r * vocab + (sorts ? vocab : 0);
    }
    if (row_greedy(p)) return;
    float inv_t = __fdiv_rn(1.f, p.temperature);
    float *x = proc + (size_t)r * vocab;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x) {
        x[i] = __fadd_rn(__fmul_rn(x[i], inv_t), 0.f);
        if (sorts) ids[(size_t)r * vocab + i] = i;
    }
}

struct vi { float v; int i; };
struct vi_max {
    __device__ vi operator()(const vi &a, const vi &b) const
    {
        return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
    }
};

typedef cub::BlockReduce<double, ST_NT> reduce_d;
typedef cub::BlockReduce<vi, ST_NT> reduce_vi;
typedef cub::BlockScan<double, ST_NT> scan_d;

union sf_smem {
    typename reduce_d::TempStorage rd;
    typename reduce_vi::TempStorage rvi;
    typename scan_d::TempStorage sd;
};

/* Index of the first i < N (in chunks, all threads) with PRED(exclusive, inclusive) true over
 * the prefix sums of exp(v[i] - max); N if none. Also returns the exclusive sum there. */
template <typename P>
__device__ int sf_scan_first(const float *v, int n, float max, P pred, sf_smem &sm,
                               int *found, double *found_excl)
{
    double carry = 0.0;
    for (int base = 0; base < n; base += ST_NT) {
        int i = base + threadIdx.x;
        double x = i < n ? exp((double)__fsub_rn(v[i], max)) : 0.0, excl, agg;
        __syncthreads();   /* scan storage and *FOUND are free again */
        scan_d(sm.sd).ExclusiveSum(x, excl, agg);
        excl += carry;
        if (threadIdx.x == 0) *found = n;
        __syncthreads();
        if (i < n && pred(excl, excl + x)) atomicMin(found, i);
        __syncthreads();
        int f = *found;
        if (f < n) {
            if (i == f) *found_excl = excl;
            __syncthreads();
            return f;
        }
        carry += agg;
    }
    if (threadIdx.x == 0) *found_excl = carry;
    __syncthreads();
    return n;
}

__global__ void __launch_bounds__(ST_NT)
sf_final_kernel(int32_t *token, float *logprob, const float *proc, const float *keys,
                  const int32_t *ids_out, const float *__restrict__ logits,
                  const int32_t *__restrict__ rows, const sample_row_params *__restrict__ params,
                  int vocab)
{
    __shared__ sf_smem sm;
    __shared__ row_lse_smem<ST_NT> lse_sm;
    __shared__ vi best_s;
    __shared__ double tot_s, excl_s;
    __shared__ int found_s;
    int r = blockIdx.x, tid = threadIdx.x;
    sample_row_params p = params[r];
    const float *raw = logits + (size_t)rows[r] * vocab;   /* for the raw logprob */
    float raw_max;
    double raw_log_sum;
    row_lse<ST_NT>(raw, vocab, lse_sm, &raw_max, &raw_log_sum);
    bool sorts = row_sorts(p, vocab);
    const float *v = (sorts ? keys : proc) + (size_t)r * vocab;
    int n = row_top_k(p, vocab) && !row_greedy(p) ? row_top_k(p, vocab) : vocab;

    vi b = {-INFINITY, 0x7fffffff};
    for (int i = tid; i < n; i += ST_NT)
        if (v[i] > b.v) b = vi{v[i], i};   /* strided: first max per thread */
    b = reduce_vi(sm.rvi).Reduce(b, vi_max());
    if (tid == 0) best_s = b;
    __syncthreads();
    b = best_s;
    float max = b.i == 0x7fffffff ? 0.f : b.v;
    double s = 0.0;
    for (int i = tid; i < n; i += ST_NT) s += exp((double)__fsub_rn(v[i], max));
    __syncthreads();
    s = reduce_d(sm.rd).Sum(s);
    if (tid == 0) tot_s = s;
    __syncthreads();
    double total = tot_s;
    if (row_greedy(p)) {
        if (tid == 0) {
            int t = b.i == 0x7fffffff ? 0 : b.i;
            token[r] = t;
            logprob[r] = (float)((double)__fsub_rn(raw[t], raw_max) - raw_log_sum);
        }
        return;
    }
    int n_keep = n;
    if (row_top_p(p)) {
        double limit = (double)p.top_p * total;
        n_keep = sf_scan_first(v, n, max, [=](double excl, double) { return excl >= limit; },
                                 sm, &found_s, &excl_s);
        if (n_keep < n) total = excl_s;
    }
    double u = rng_uniform(p.seed, p.counter) * total;
    int pick = sf_scan_first(v, n_keep, max, [=](double, double incl) { return u < incl; },
                               sm, &found_s, &excl_s);
    if (pick >= n_keep) pick = n_keep - 1;
    if (tid == 0) {
        int t = sorts ? ids_out[(size_t)r * vocab + pick] : pick;
        token[r] = t;
        logprob[r] = (float)((double)__fsub_rn(raw[t], raw_max) - raw_log_sum);
    }
}

extern "C" cudaError_t sample_full_run(int32_t *token, float *logprob, const float *logits,
                                       const int32_t *rows, const sample_row_params *params,
                                       const sample_penalty *penalties, int n_rows, int vocab,
                                       int any_sort, void *workspace, size_t workspace_bytes,
                                       cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || vocab <= 0 || (size_t)n_rows * vocab > 0x7fffffffu || !workspace)
        return cudaErrorInvalidValue;
    sf_ws w;
    size_t need = ws_layout(&w, (uintptr_t)workspace, n_rows, vocab);
    if (need == 0 || need > workspace_bytes) return cudaErrorInvalidValue;
    int chunks = (vocab + 1023) / 1024;
    if (chunks > 64) chunks = 64;
    sf_copy_kernel<<<dim3(chunks, n_rows), 256, 0, stream>>>(w.proc, logits, rows, vocab);
    sf_penalty_kernel<<<n_rows, 128, 0, stream>>>(w.proc, params, penalties, vocab);
    sf_scale_kernel<<<dim3(chunks, n_rows), 256, 0, stream>>>(w.proc, w.ids_in, w.offs, params,
                                                               n_rows, vocab);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    if (any_sort) {
        e = cub::DeviceSegmentedSort::StableSortPairsDescending(
            w.temp, w.temp_bytes, (const float *)w.proc, w.keys, (const int32_t *)w.ids_in,
            w.ids_out, n_rows * vocab, n_rows, (const int32_t *)w.offs,
            (const int32_t *)w.offs + n_rows, stream);
        if (e != cudaSuccess) return e;
    }
    sf_final_kernel<<<n_rows, ST_NT, 0, stream>>>(token, logprob, w.proc, w.keys, w.ids_out,
                                                    logits, rows, params, vocab);
    return cudaGetLastError();
}
