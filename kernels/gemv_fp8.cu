/* gemv_fp8.cu - the E4M3 decode GEMV (see gemv_fp8.cuh).
 *
 * Tiles of 16 weight rows as the A operand of mma.sync m16n8k32 E4M3, the (up to 8) token
 * rows as B. A lane loads 16-byte chunks (16 k) of its two rows straight from global memory;
 * a chunk's bytes 0-3 / 4-7 are the fragment's k slots 4t..4t+3 / 16+4t.. of one mma and
 * bytes 8-15 those of the next, identically for A and B (the token rows' codes in shared
 * memory, staged once a block by cp.async), which a dot product allows. A step is 128 k (8
 * chunks: two a lane a row); each lane keeps 4 steps (256 bytes) in flight, the first loaded
 * before pdl_wait() (weights only). One block of 16 warps (fewer when the k range has fewer
 * steps: each warp takes at least one) a multiprocessor takes consecutive
 * tiles, the warps splitting each tile's k range (partial sums meet in shared memory), so the
 * token rows cross from L2 once per multiprocessor, not once per tile. Rows: g and g+8 of a tile; with
 * SILU, gate row r and up row r, so one thread holds both.
 */
#include "gemv_fp8.cuh"
#include "fp8.cuh"
#include "mma.cuh"
#include "pdl.cuh"

#define G8_NW 16   /* one block a multiprocessor: the token rows staged once per SM */
#define G8_U 4

struct g8_args {
    void *out;
    const uint8_t *xq, *w;
    const float *x_scale, *w_scale;
    int n_tok, n_out, n_in, n_tiles, n_steps, k;
};

__device__ __forceinline__ uint4 g8_ld(const uint4 *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

template <int EPI>
__device__ __forceinline__ void g8_rows(const g8_args &a, int tile, int g, int &ra, int &rb)
{
    if (EPI == GEMV_SILU) ra = tile * 8 + g, rb = a.n_out / 2 + ra;
    else ra = tile * 16 + g, rb = ra + 8;
}

template <typename T, int EPI>
__device__ __forceinline__ void g8_store(const g8_args &a, int t, int r, float y)
{
    if (r >= a.n_out) return;
    size_t i = (size_t)t * a.n_out + r;
    if (EPI == GEMV_OUT_F32) ((float *)a.out)[i] = y;
    else if (EPI == GEMV_RESID) ((T *)a.out)[i] = from_f<T>(to_f(((T *)a.out)[i]) + y);
    else ((T *)a.out)[i] = from_f<T>(y);
}

template <typename T, int EPI>
__device__ __forceinline__ void g8_epilogue(const g8_args &a, int tile, int g, int tq,
                                            const float (&c)[4], const float *sx)
{
    int ra, rb;
    g8_rows<EPI>(a, tile, g, ra, rb);
    bool ok_a = EPI == GEMV_SILU ? ra < a.n_out / 2 : ra < a.n_out;
    float swa = ok_a ? a.w_scale[ra] : 0.f, swb = rb < a.n_out ? a.w_scale[rb] : 0.f;
#pragma unroll
    for (int j = 0; j < 2; j++) {
        int t = 2 * tq + j;
        if (t >= a.n_tok) break;
        float ya = c[j] * swa * sx[t], yb = c[2 + j] * swb * sx[t];
        if (EPI == GEMV_SILU) {
            int hid = a.n_out / 2;
            if (ok_a) ((T *)a.out)[(size_t)t * hid + ra] = from_f<T>(ya / (1.f + __expf(-ya)) * yb);
        } else {
            g8_store<T, EPI>(a, t, ra, ya);
            g8_store<T, EPI>(a, t, rb, yb);
        }
    }
}

/* Where a warp's next weight load goes: tile TILE, step S; WA, WB the lane's two rows. */
struct g8_cursor {
    int tile, s;
    const uint4 *wa, *wb;
};

template <int EPI>
__device__ __forceinline__ void g8_seek(const g8_args &a, g8_cursor &c, int g, int nc)
{
    int ra, rb;
    g8_rows<EPI>(a, c.tile, g, ra, rb);
    bool ok_a = EPI == GEMV_SILU ? ra < a.n_out / 2 : ra < a.n_out;
    c.wa = (const uint4 *)a.w + (size_t)(ok_a ? ra : 0) * nc;
    c.wb = (const uint4 *)a.w + (size_t)(rb < a.n_out ? rb : 0) * nc;
}

__device__ __forceinline__ void g8_load(uint4 (&d)[4], const g8_cursor &c, int nc, int tq)
{
    int c0 = min(c.s * 8 + tq, nc - 1), c1 = min(c.s * 8 + 4 + tq, nc - 1);
    d[0] = g8_ld(c.wa + c0), d[1] = g8_ld(c.wa + c1);
    d[2] = g8_ld(c.wb + c0), d[3] = g8_ld(c.wb + c1);
}

/* One kernel body over 80 lines, as gemv.cu's: the load pipeline, the products and the
 * per-tile reduction share registers. */
template <typename T, int EPI>
__global__ void __launch_bounds__(G8_NW * 32, 1) gemv_fp8_kernel(g8_args a)
{
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float sx[GEMV_MAX_TOKENS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int g = lane >> 2, tq = lane & 3, nc = a.n_in / 16, xstride = a.n_in + 16;
    const int s0 = warp * a.n_steps / nw, s1 = (warp + 1) * a.n_steps / nw;
    const int tile0 = blockIdx.x * a.k, n_my = min(a.k, a.n_tiles - tile0);
    const int n_f = n_my * (s1 - s0);
    g8_cursor lc = {tile0, s0, NULL, NULL};
    g8_seek<EPI>(a, lc, g, nc);
    uint4 A[G8_U][4];
#pragma unroll
    for (int u = 0; u < G8_U; u++)
        if (u < n_f) {
            g8_load(A[u], lc, nc, tq);
            if (++lc.s == s1) lc.s = s0, lc.tile++, g8_seek<EPI>(a, lc, g, nc);
        }
    pdl_trigger();
    pdl_wait();
    uint8_t *xs = smem;   /* [n_tok][n_in + 16] the token rows' codes */
    for (int i = threadIdx.x; i < a.n_tok * nc; i += blockDim.x) {
        int t = i / nc, c = i - t * nc;
        cp_async16(xs + (size_t)t * xstride + c * 16, a.xq + (size_t)t * a.n_in + c * 16, true);
    }
    cp_async_commit();
    if (threadIdx.x < a.n_tok) sx[threadIdx.x] = a.x_scale[threadIdx.x];
    cp_async_wait<0>();
    __syncthreads();
    float4 *red = (float4 *)(smem + (size_t)a.n_tok * xstride);   /* [2][nw][32] */
    const uint4 *xrow = g < a.n_tok ? (const uint4 *)(xs + (size_t)g * xstride) : NULL;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    int cs = s0, ct = 0;
    for (int f0 = 0; f0 < n_f; f0 += G8_U) {
#pragma unroll
        for (int u = 0; u < G8_U; u++) {
            if (f0 + u >= n_f) break;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int ch = cs * 8 + h * 4 + tq;
                uint4 b = xrow && ch < nc ? xrow[ch] : make_uint4(0, 0, 0, 0);
                const uint4 &ra = A[u][h], &rb = A[u][2 + h];
                uint32_t a0[4] = {ra.x, rb.x, ra.y, rb.y}, a1[4] = {ra.z, rb.z, ra.w, rb.w};
                mma_e4m3_16832(acc, a0, b.x, b.y);
                mma_e4m3_16832(acc, a1, b.z, b.w);
            }
            if (f0 + u + G8_U < n_f) {
                g8_load(A[u], lc, nc, tq);
                if (++lc.s == s1) lc.s = s0, lc.tile++, g8_seek<EPI>(a, lc, g, nc);
            }
            if (++cs == s1) {   /* tile ct done: sum the warps, one warp stores */
                cs = s0;
                float4 *rbuf = red + (size_t)(ct & 1) * nw * 32;
                rbuf[warp * 32 + lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
                acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
                __syncthreads();
                if (warp == ct % nw) {
                    float c[4] = {0.f, 0.f, 0.f, 0.f};
                    for (int w = 0; w < nw; w++) {
                        float4 v = rbuf[w * 32 + lane];
                        c[0] += v.x, c[1] += v.y, c[2] += v.z, c[3] += v.w;
                    }
                    g8_epilogue<T, EPI>(a, tile0 + ct, g, tq, c, sx);
                }
                ct++;
            }
        }
    }
}

/* One wave: as many blocks as are resident (at most one a tile), consecutive tiles each. */
template <typename T, int EPI>
static cudaError_t g8_launch(g8_args a, int pdl, cudaStream_t s)
{
    auto kern = gemv_fp8_kernel<T, EPI>;
    size_t smem = (size_t)a.n_tok * (a.n_in + 16) + (size_t)2 * G8_NW * 32 * 16;
    static bool attr_set;
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             GEMV_MAX_TOKENS * (GEMV_FP8_MAX_IN + 16) +
                                                 2 * G8_NW * 32 * 16);
        if (e != cudaSuccess) return e;
        attr_set = true;
    }
    int dev, sms, occ = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess)
        e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kern, G8_NW * 32, smem);
    if (e != cudaSuccess) return e;
    if (occ < 1) return cudaErrorInvalidValue;
    int grid = a.n_tiles < occ * sms ? a.n_tiles : occ * sms;
    int nw = a.n_steps < G8_NW ? a.n_steps : G8_NW;   /* every warp takes at least one step */
    a.k = (a.n_tiles + grid - 1) / grid;
    return pdl_launch(kern, dim3((a.n_tiles + a.k - 1) / a.k), dim3(nw * 32), smem, s, pdl, a);
}

extern "C" cudaError_t gemv_fp8_run(void *out, const uint8_t *xq, const float *x_scale,
                                    const uint8_t *w, const float *w_scale, int n_tok, int n_out,
                                    int n_in, gemv_epi_kind kind, int pdl, kdtype dt,
                                    cudaStream_t stream)
{
    if (n_tok == 0 || n_out == 0) return cudaSuccess;
    if (n_tok < 0 || n_tok > GEMV_MAX_TOKENS || n_out < 0 || n_in <= 0 || n_in % 16 ||
        n_in > GEMV_FP8_MAX_IN || !out || !xq || !x_scale || !w || !w_scale ||
        (kind == GEMV_SILU && n_out % 2))
        return cudaErrorInvalidValue;
    g8_args a = {};
    a.out = out, a.xq = xq, a.x_scale = x_scale, a.w = w, a.w_scale = w_scale;
    a.n_tok = n_tok, a.n_out = n_out, a.n_in = n_in;
    a.n_steps = (n_in / 16 + 7) / 8;
    a.n_tiles = kind == GEMV_SILU ? (n_out / 2 + 7) / 8 : (n_out + 15) / 16;
    KDT_DISPATCH(dt, T, {
        switch (kind) {
        case GEMV_OUT: return g8_launch<T, GEMV_OUT>(a, pdl, stream);
        case GEMV_OUT_F32: return g8_launch<T, GEMV_OUT_F32>(a, pdl, stream);
        case GEMV_RESID: return g8_launch<T, GEMV_RESID>(a, pdl, stream);
        case GEMV_SILU: return g8_launch<T, GEMV_SILU>(a, pdl, stream);
        default: return cudaErrorInvalidValue;
        }
    });
    return cudaSuccess;
}
