/* sm90_host.cu - see sm90_host.cuh: the sm_90a probe and the KV tensor map. */
#include "sm90_host.cuh"
#include "cuda_check.cuh"
#include "sm90.cuh"

/* Writes 1 only where the sm_90a code of this build runs (the compute_90 PTX writes 0). */
__global__ void sm90_probe_kernel(int *flag)
{
#ifdef SM90_DEVICE
    *flag = 1;
#else
    *flag = 0;
#endif
}

typedef CUresult (*sm90_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                   const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                   const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
typedef CUresult (*sm90_range_fn)(CUdeviceptr *, size_t *, CUdeviceptr);
static sm90_encode_fn g_encode;
static sm90_range_fn g_range;

int sm90_available(void)
{
    static int state = -1;
    if (state >= 0) return state;
    int dev, major = 0, minor = 0, *d = NULL, flag = 0;
    cudaDriverEntryPointQueryResult q1, q2;
    state = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
        major != 9 || minor != 0)
        return state;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&g_encode, 12000,
                                         cudaEnableDefault, &q1) != cudaSuccess ||
        cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", (void **)&g_range, 12000,
                                         cudaEnableDefault, &q2) != cudaSuccess ||
        q1 != cudaDriverEntryPointSuccess || q2 != cudaDriverEntryPointSuccess)
        return state;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) return state;
    sm90_probe_kernel<<<1, 1>>>(d);
    if (cudaGetLastError() == cudaSuccess &&
        cudaMemcpy(&flag, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess)
        state = flag == 1;
    CUDA_CHECK(cudaFree(d));
    return state;
}

cudaError_t sm90_kv_map(CUtensorMap *map, const void *cache, int n_kv, int hd, int rows_box)
{
    CUdeviceptr base;
    size_t size, row = (size_t)n_kv * hd * 2;
    if (!g_range || g_range(&base, &size, (CUdeviceptr)cache) != CUDA_SUCCESS)
        return cudaErrorNotSupported;
    uint64_t n_slots = (base + size - (CUdeviceptr)cache) / row;
    if (n_slots > 0xffffffffull) n_slots = 0xffffffffull;
    cuuint64_t dims[3] = {(cuuint64_t)hd, (cuuint64_t)n_kv, n_slots};
    cuuint64_t strides[2] = {(cuuint64_t)hd * 2, row};
    cuuint32_t box[3] = {64, 1, (cuuint32_t)rows_box}, estr[3] = {1, 1, 1};
    CUresult r = g_encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)cache, dims, strides,
                          box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                          CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorNotSupported;
}
