/* topk_logprobs.cu - top-k logprobs of selected logits rows (see topk_logprobs.cuh).
 *
 * One block of 256 threads per row. Pass 1: the row's max and the double-precision sum of
 * exp(x - max) (block reductions, row_lse.cuh), as the sampler computes them; the sampled
 * token's logprob from them. Pass 2: each thread keeps its
 * own K best (value, id) pairs of its strided share, sorted, in registers/local memory (most
 * candidates are rejected by one comparison with the thread's K-th). Merge: K rounds of a
 * block-wide arg-max over the threads' current heads; the winner's thread advances its head.
 * Ties go to the lower id, a total order, so the result does not depend on the striding.
 */
#include "topk_logprobs.cuh"
#include "row_lse.cuh"

#define TK_NT 256

typedef cub::BlockReduce<lse_vi, TK_NT> tk_reduce;

__global__ void __launch_bounds__(TK_NT)
topk_logprobs_kernel(int32_t *ids, float *logprobs, float *tok_logprob, const float *__restrict__ logits,
                     const int32_t *__restrict__ rows, const int32_t *__restrict__ k,
                     const int32_t *__restrict__ tok, int vocab)
{
    __shared__ row_lse_smem<TK_NT> lse_sm;
    __shared__ typename tk_reduce::TempStorage red;
    __shared__ lse_vi win_s;
    int r = blockIdx.x, tid = threadIdx.x;
    int kk = k[r] < vocab ? k[r] : vocab;
    if (kk <= 0) return;   /* the whole block: nothing asked for this row */
    if (kk > TOPK_LOGPROBS_MAX) kk = TOPK_LOGPROBS_MAX;
    const float *x = logits + (size_t)rows[r] * vocab;

    /* pass 1: max and log of the sum of exp(x - max) */
    float max;
    double log_sum;
    row_lse<TK_NT>(x, vocab, lse_sm, &max, &log_sum);
    if (tid == 0 && tok[r] >= 0 && tok[r] < vocab)
        tok_logprob[r] = (float)((double)__fsub_rn(x[tok[r]], max) - log_sum);

    /* pass 2: this thread's KK best, sorted */
    float bv[TOPK_LOGPROBS_MAX];
    int bi[TOPK_LOGPROBS_MAX];
    int n = 0;
    for (int i = tid; i < vocab; i += TK_NT) {
        float v = x[i];
        if (n == kk && !lse_before(v, i, bv[kk - 1], bi[kk - 1])) continue;
        int j = n < kk ? n++ : kk - 1;   /* the slot freed at the end, then shift down */
        while (j > 0 && lse_before(v, i, bv[j - 1], bi[j - 1])) {
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
        lse_vi c = head < n ? lse_vi{bv[head], bi[head]} : lse_vi{-INFINITY, 0x7fffffff};
        lse_vi w = tk_reduce(red).Reduce(c, lse_first());
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

extern "C" cudaError_t topk_logprobs_run(int32_t *ids, float *logprobs, float *tok_logprob,
                                         const float *logits, const int32_t *rows, const int32_t *k,
                                         const int32_t *tok, int n_rows, int vocab,
                                         cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || vocab <= 0 || !ids || !logprobs || !tok_logprob || !logits || !rows || !k || !tok)
        return cudaErrorInvalidValue;
    topk_logprobs_kernel<<<n_rows, TK_NT, 0, stream>>>(ids, logprobs, tok_logprob, logits, rows, k,
                                                         tok, vocab);
    return cudaGetLastError();
}
