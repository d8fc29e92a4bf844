/* bench_rope.cu - rope_run in place on q and k of a fused Llama-3-8B QKV buffer (32 + 8 + 8
 * heads x 128, bf16, Llama-3.1 scaling): GB/s (q, k read and written). */
#include "bench_util.cuh"
#include "../../kernels/rope.cuh"

static void run(const bench_ceilings *c, int n)
{
    const int nh = 32, nkv = 8, hd = 128, stride = (nh + 2 * nkv) * hd;
    void *qkv;
    int32_t *pos;
    CUDA_CHECK(cudaMalloc(&qkv, (size_t)n * stride * 2));
    bench_fill16(qkv, (size_t)n * stride, 51, 1.f);
    std::vector<int32_t> hp(n);
    for (int i = 0; i < n; i++) hp[i] = i;
    CUDA_CHECK(cudaMalloc(&pos, sizeof(int32_t) * n));
    CUDA_CHECK(cudaMemcpy(pos, hp.data(), sizeof(int32_t) * n, cudaMemcpyHostToDevice));
    rope_params p = {500000.f, 8.f, 1.f, 4.f, 8192};
    double ms = bench_ms([&] {
        CUDA_CHECK(rope_run(qkv, stride, (char *)qkv + nh * hd * 2, stride, pos, n, nh, nkv, hd,
                            p, KDT_BF16, 0));
    });
    char cas[96];
    snprintf(cas, sizeof(cas), "%d tokens, 32+8 heads x 128 in fused QKV, bf16, llama3 scaling", n);
    bench_report_bw("rope", cas, ms, 2.0 * n * (nh + nkv) * hd * 2, c);
    CUDA_CHECK(cudaFree(qkv));
    CUDA_CHECK(cudaFree(pos));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    run(&c, 16384);
    run(&c, 64);
    return 0;
}
