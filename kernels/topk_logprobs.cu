/* topk_logprobs.cu - top-k logprobs of selected logits rows (see topk_logprobs.cuh).
 *
 * One block of 256 threads per row. Pass 1: the row's max and the double-precision sum of
 * exp(x - max) (block reductions), as the sampler computes them. Pass 2: each thread keeps its
 * own K best (value, id) pairs of its strided share, sorted, in registers/local memory (most
 * candidates are rejected by one comparison with the thread's K-th). Merge: K rounds of a
 * block-wide arg-max over the threads' current heads; the winner's thread advances its head.
 * Ties go to the lower id, a total order, so the result does not depend on the striding.
 */
#include "topk_logprobs.cuh"
#include <cub/cub.cuh>

#define TK_NT 256

struct tk_vi { float v; int i; };

/* a before b: larger value, then lower id (NaN never comes first) */
__device__ __forceinline__ bool tk_before(float av, int ai, float bv, int bi)
{
    return av > bv || (av == bv && ai < bi);
}

struct tk_max {
    __device__ tk_vi operator()(const tk_vi &a, const tk_vi &b) const
    {
        return tk_before(b.v, b.i, a.v, a.i) ? b : a;
    }
};

typedef cub::BlockReduce<tk_vi, TK_NT> tk_reduce_vi;
typedef cub::BlockReduce<double, TK_NT> tk_reduce_d;

__global__ void __launch_bounds__(TK_NT)
topk_logprobs_kernel(int32_t *ids, float *logprobs, const float *__restrict__ logits,
                     const int32_t *__restrict__ rows, const int32_t *__restrict__ k, int vocab)
{
    __shared__ union {
        typename tk_reduce_vi::TempStorage vi;
        typename tk_reduce_d::TempStorage d;
    } sm;
    __shared__ tk_vi win_s;
    __shared__ double sum_s;
    int r = blockIdx.x, tid = threadIdx.x;
    int kk = k[r] < vocab ? k[r] : vocab;
    if (kk <= 0) return;   /* the whole block: nothing asked for this row */
    if (kk > TOPK_LOGPROBS_MAX) kk = TOPK_LOGPROBS_MAX;
    const float *x = logits + (size_t)rows[r] * vocab;

    /* pass 1: max and log of the sum of exp(x - max) */
    tk_vi m = {-INFINITY, 0x7fffffff};
    for (int i = tid; i < vocab; i += TK_NT)
        if (x[i] > m.v) m = tk_vi{x[i], i};
    m = tk_reduce_vi(sm.vi).Reduce(m, tk_max());
    if (tid == 0) win_s = m;
    __syncthreads();
    float max = win_s.v;
    double s = 0.0;
    for (int i = tid; i < vocab; i += TK_NT) s += exp((double)__fsub_rn(x[i], max));
    __syncthreads();   /* the reduce storage is reused */
    s = tk_reduce_d(sm.d).Sum(s);
    if (tid == 0) sum_s = s;
    __syncthreads();
    double log_sum = log(sum_s);

    /* pass 2: this thread's KK best, sorted */
    float bv[TOPK_LOGPROBS_MAX];
    int bi[TOPK_LOGPROBS_MAX];
    int n = 0;
    for (int i = tid; i < vocab; i += TK_NT) {
        float v = x[i];
        if (n == kk && !tk_before(v, i, bv[kk - 1], bi[kk - 1])) continue;
        int j = n < kk ? n++ : kk - 1;   /* the slot freed at the end, then shift down */
        while (j > 0 && tk_before(v, i, bv[j - 1], bi[j - 1])) {
            bv[j] = bv[j - 1];
            bi[j] = bi[j - 1];
            j--;
        }
        bv[j] = v;
        bi[j] = i;
    }

    /* merge: KK rounds of a block arg-max over the heads */
    int head = 0;
    for (int round = 0; round < kk; round++) {
        tk_vi c = head < n ? tk_vi{bv[head], bi[head]} : tk_vi{-INFINITY, 0x7fffffff};
        tk_vi w = tk_reduce_vi(sm.vi).Reduce(c, tk_max());
        if (tid == 0) win_s = w;
        __syncthreads();
        w = win_s;
        if (head < n && bi[head] == w.i) head++;
        if (tid == 0) {
            ids[(size_t)r * TOPK_LOGPROBS_MAX + round] = w.i;
            logprobs[(size_t)r * TOPK_LOGPROBS_MAX + round] =
                (float)((double)__fsub_rn(w.v, max) - log_sum);
        }
        __syncthreads();   /* win_s and the reduce storage are reused */
    }
}

extern "C" cudaError_t topk_logprobs_run(int32_t *ids, float *logprobs, const float *logits,
                                         const int32_t *rows, const int32_t *k, int n_rows,
                                         int vocab, cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || vocab <= 0 || !ids || !logprobs || !logits || !rows || !k)
        return cudaErrorInvalidValue;
    topk_logprobs_kernel<<<n_rows, TK_NT, 0, stream>>>(ids, logprobs, logits, rows, k, vocab);
    return cudaGetLastError();
}
