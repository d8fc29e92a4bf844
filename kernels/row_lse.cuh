/* row_lse.cuh - one block's reduction of a logits row to its max and log-sum-exp, the
 * log-softmax of every entry then being (double)(x - max) - log_sum: the expression of the CPU
 * sampler's sampler_lse / sampler_logprob (worker/sampling.c), so logprobs agree across
 * backends. Shared by sample_full.cu (the sampled token's raw logprob) and topk_logprobs.cu.
 */
#ifndef CINDER_ROW_LSE_CUH
#define CINDER_ROW_LSE_CUH

#include <cub/cub.cuh>

/* A (value, id) pair ordered as the CPU orders candidates: larger value first, then lower id
 * (NaN never first). */
struct lse_vi { float v; int i; };

__device__ __forceinline__ bool lse_before(float av, int ai, float bv, int bi)
{
    return av > bv || (av == bv && ai < bi);
}

struct lse_first {
    __device__ lse_vi operator()(const lse_vi &a, const lse_vi &b) const
    {
        return lse_before(b.v, b.i, a.v, a.i) ? b : a;
    }
};

template <int NT> struct row_lse_smem {
    union {
        typename cub::BlockReduce<lse_vi, NT>::TempStorage vi;
        typename cub::BlockReduce<double, NT>::TempStorage d;
    } r;
    float max;
    double sum;
};

/* X [n]'s max and log of the sum of exp((double)(x - max)), by all NT threads of the block
 * (not finite when X holds NaN or +inf). SM is free again once every thread has returned
 * (a __syncthreads() before reusing it). */
template <int NT>
__device__ void row_lse(const float *x, int n, row_lse_smem<NT> &sm, float *max, double *log_sum)
{
    lse_vi m = {-INFINITY, 0x7fffffff};
    for (int i = threadIdx.x; i < n; i += NT)
        if (x[i] > m.v) m = lse_vi{x[i], i};
    m = cub::BlockReduce<lse_vi, NT>(sm.r.vi).Reduce(m, lse_first());
    if (threadIdx.x == 0) sm.max = m.v;
    __syncthreads();   /* every thread is past the first reduce: its storage is free */
    float mx = sm.max;
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += NT) s += exp((double)__fsub_rn(x[i], mx));
    s = cub::BlockReduce<double, NT>(sm.r.d).Sum(s);
    if (threadIdx.x == 0) sm.sum = s;
    __syncthreads();
    *max = mx;
    *log_sum = log(sm.sum);
}

#endif
