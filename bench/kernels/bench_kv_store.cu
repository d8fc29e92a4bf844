/* bench_kv_store.cu - kv_store_run, Llama-3-8B K/V rows (8 kv heads x 128, bf16) scattered
 * to shuffled slots: GB/s (k, v read + written) against the copy bandwidth. */
#include "bench_util.cuh"
#include "../../kernels/kv_store.cuh"
#include <stdlib.h>

static void run(const bench_ceilings *c, int n_tok)
{
    const int nkv = 8, hd = 128, n_slots = 1 << 18;
    size_t row = (size_t)nkv * hd;
    void *kc, *vc, *k, *v;
    int32_t *slots;
    CUDA_CHECK(cudaMalloc(&kc, n_slots * row * 2));
    CUDA_CHECK(cudaMalloc(&vc, n_slots * row * 2));
    CUDA_CHECK(cudaMalloc(&k, n_tok * row * 2));
    CUDA_CHECK(cudaMalloc(&v, n_tok * row * 2));
    bench_fill16(k, n_tok * row, 31, 1.f);
    bench_fill16(v, n_tok * row, 32, 1.f);
    std::vector<int32_t> perm(n_slots);
    for (int i = 0; i < n_slots; i++) perm[i] = i;
    srand(7);
    for (int i = n_slots - 1; i > 0; i--) std::swap(perm[i], perm[rand() % (i + 1)]);
    CUDA_CHECK(cudaMalloc(&slots, sizeof(int32_t) * n_tok));
    CUDA_CHECK(cudaMemcpy(slots, perm.data(), sizeof(int32_t) * n_tok, cudaMemcpyHostToDevice));
    double ms = bench_ms([&] {
        CUDA_CHECK(kv_store_run(kc, vc, k, (int)row, v, (int)row, slots, n_tok, nkv, hd,
                                KDT_BF16, 0));
    });
    char cas[96];
    snprintf(cas, sizeof(cas), "%d tokens x 8 kv heads x 128, bf16, shuffled slots", n_tok);
    bench_report_bw("kv_store", cas, ms, 4.0 * n_tok * row * 2, c);
    CUDA_CHECK(cudaFree(kc)); CUDA_CHECK(cudaFree(vc)); CUDA_CHECK(cudaFree(k));
    CUDA_CHECK(cudaFree(v)); CUDA_CHECK(cudaFree(slots));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    run(&c, 16384);
    run(&c, 256);
    return 0;
}
