/* prefill_attn_sm90.cu - causal prefill attention for Hopper (sm_90a) in the manner of
 * FlashAttention-3: head dim 128, bf16, K/V read from the paged cache by TMA, S = Q K^T and
 * O += P V on wgmma; same interface and semantics as prefill_attn_run (prefill_attn.cuh),
 * which calls it for the cases it covers (prefill_attn_sm90.cuh).
 *
 * Work item = 64 x NC query rows (NC = 2 or 3 consumer warpgroups) of one head of one
 * sequence; items go heaviest first, the heads of one query tile adjacent (heads sharing a KV
 * head read the same K/V out of L2). CTA = 1 producer + NC consumer warpgroups. One producer
 * warp looks up the pages of each key tile (128 keys) in the block table and issues its TMA
 * boxes into ST = 2 or 3 shared-memory stages, each completing on its "full" mbarrier;
 * consumers free a stage through its "empty" mbarrier. Each consumer owns 64 query rows: Q
 * (cp.async into the 128-byte-swizzled layout wgmma reads) stays in shared memory, S and O
 * live in registers (fp32), P is packed to bf16 in registers and fed to wgmma as the A
 * operand. Online softmax in the log2 domain; key tiles past the diagonal (or wholly before
 * a sliding window) are never loaded, only tiles that cross them are masked.
 *
 * Pages meet TMA through one tensor map over the layer's whole cache (sm90_host.cuh): 3-d,
 * (head_dim, kv head, cache slot), box (64, 1, R), R = min(block_size, 128) rows; a key tile
 * is 128 / R boxes per 64-column half, box b at slot block_table[page] * block_size + offset:
 * the page table gives the coordinate and the 128-byte swizzle lands each box where wgmma
 * expects it (R a multiple of 8 keeps every box on a 1024-byte swizzle atom). Boxes past the
 * sequence's last page read its first page, and V rows past the last key are zeroed by the
 * producer before the consumers see the last tile (unwritten slots may hold anything; P is 0
 * there, but 0 * NaN is not).
 *
 * Variants (prefill_attn_sm90_run; the default picks per case, see sm90_default_variant):
 * 1 = one tile at a time per warpgroup (S, softmax, PV); 2 = S of tile j+1 and PV of tile j
 * issued together, the softmax of j+1 running while PV j is in flight; 3 = 2 plus ping-pong
 * (named barriers make the two consumers take turns issuing GEMMs, so one's softmax overlaps
 * the other's GEMMs); 4-6 = 1-3 on a persistent grid (one CTA per SM takes the items in a
 * static round robin; the producer runs on into the next item's K/V and each consumer fetches
 * its next Q rows as soon as its last S GEMM has read them); 7, 8 = 4, 6 with three stages;
 * 9 = 4 with ping-pong; 10 = 4 with three consumer warpgroups (192 rows per item; compiled
 * under the 128-register cap of 512 threads, it spills 184 bytes).
 *
 * Seen on the H200 (2026-12-02): ptxas hoisted the wgmma wait above the softmax of the
 * overlapped loop, serializing it (the never-run loop before the wait keeps it below; checked
 * in the SASS); with 16-token pages the producer's 32 small TMA boxes per key tile hold the
 * overlapped variants back (1 x 8192 GQA: 460-485 TFLOP/s with 16-token pages, 545-572 with
 * 128); ncu on variant 4: tensor pipe 54% busy, 2.25 warps a scheduler, 0.5 eligible.
 *
 * Not covered (prefill_attn_sm90_run returns cudaErrorNotSupported and prefill_attn_run uses
 * the portable kernel): fp16, head dims other than 128, block sizes that are not a multiple of
 * 8 or neither divide nor are a multiple of 128, devices other than compute capability 9.0,
 * builds without sm_90a code. GQA heads are not packed into one CTA: a CTA already shares each
 * K/V tile among 128-192 query rows, and at prefill lengths the query tiles of one head fill
 * the machine.
 */
#include "prefill_attn_sm90.cuh"
#include "attn_common.cuh"
#include "sm90.cuh"
#include "sm90_host.cuh"

#define SM90_HD 128
#define SM90_BN 128            /* keys per tile */
#define SM90_TILE (SM90_BN * SM90_HD * 2)   /* bytes of a K or V tile, and of Q */
#define SM90_HALF (SM90_BN * 128)           /* bytes of one 64-column half of a tile */
/* Shared memory: Q (64 rows per consumer warpgroup, NC of them, in two 64-column halves of
 * SM90_QH(nc) bytes), K[ST], V[ST] (ST = 2 or 3 stages), then the mbarriers; +1024 for
 * aligning the base. */
#define SM90_QH(nc) ((nc) * 64 * 128)
#define SM90_SMEM(nc, st) (2 * SM90_QH(nc) + 2 * (st) * SM90_TILE + 128 + 1024)

struct sm90_bars {
    uint64_t full_k[3], full_v[3], empty_k[3], empty_v[3], vtail;
};

#ifdef SM90_DEVICE

/* Consumer: S[64 x 128] = Q[rows of this warpgroup] K^T (8 wgmma, K = 16 each); issues and
 * commits, does not wait. */
__device__ __forceinline__ void sm90_qk(float (&s)[16][4], uint32_t sq, uint32_t sk,
                                        uint32_t qh)
{
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < SM90_HD / 16; kk++) {
        uint32_t off = (kk & 3) * 32;
        wgmma_ss(s, wg_desc(sq + (kk >> 2) * qh + off, 16, 1024),
                 wg_desc(sk + (kk >> 2) * SM90_HALF + off, 16, 1024), kk > 0);
    }
    wg_commit();
}

/* Consumer: O[64 x 128] += P[64 x 128 keys] V[128 keys x 128]; V rows are keys, its two
 * 64-column halves SM90_HALF apart (the leading byte offset of the MN-major layout). */
__device__ __forceinline__ void sm90_pv(float (&o)[16][4], const uint32_t (&p)[8][4],
                                        uint32_t sv)
{
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < SM90_BN / 16; kk++)
        wgmma_rs_t(o, p[kk], wg_desc(sv + kk * 16 * 128, SM90_HALF, 1024));
    wg_commit();
}

/* Masks the scores of keys after each row's position (and at or before position - WINDOW).
 * POS0: position of the thread's row g of its warp. */
__device__ __forceinline__ void sm90_mask(float (&s)[16][4], int pos0, int key0, int window)
{
    int t2 = (threadIdx.x & 3) * 2;
#pragma unroll
    for (int j = 0; j < 16; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int key = key0 + j * 8 + t2 + (e & 1), p = pos0 + (e >> 1) * 8;
            if (key > p || (window > 0 && key <= p - window)) s[j][e] = -INFINITY;
        }
}

/* Online softmax over one tile for the thread's two rows: updates the running max M and
 * partial sums L, leaves exp2((s - m) * scale_log2) in S and the factor the previous O must
 * be scaled by in CORR (O itself may still be in use by a wgmma). */
__device__ __forceinline__ void sm90_softmax(float (&s)[16][4], float m[2], float l[2],
                                             float corr[2], float scale_log2)
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float mx = m[h];
#pragma unroll
        for (int j = 0; j < 16; j++) mx = fmaxf(mx, fmaxf(s[j][2 * h], s[j][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float base = mx == -INFINITY ? 0.f : mx * scale_log2;   /* all masked so far */
        corr[h] = fast_exp2(m[h] * scale_log2 - base);
        m[h] = mx;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            s[j][2 * h] = fast_exp2(fmaf(s[j][2 * h], scale_log2, -base));
            s[j][2 * h + 1] = fast_exp2(fmaf(s[j][2 * h + 1], scale_log2, -base));
            sum += s[j][2 * h] + s[j][2 * h + 1];
        }
        l[h] = l[h] * corr[h] + sum;
    }
}

__device__ __forceinline__ void sm90_rescale(float (&o)[16][4], const float corr[2])
{
#pragma unroll
    for (int j = 0; j < 16; j++) {
        o[j][0] *= corr[0];
        o[j][1] *= corr[0];
        o[j][2] *= corr[1];
        o[j][3] *= corr[1];
    }
}

/* P as the A operand of the PV wgmma: k-step kk takes score columns 16kk .. 16kk + 15. */
__device__ __forceinline__ void sm90_pack(uint32_t (&p)[8][4], const float (&s)[16][4])
{
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        p[kk][0] = pack2<__nv_bfloat16>(s[2 * kk][0], s[2 * kk][1]);
        p[kk][1] = pack2<__nv_bfloat16>(s[2 * kk][2], s[2 * kk][3]);
        p[kk][2] = pack2<__nv_bfloat16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        p[kk][3] = pack2<__nv_bfloat16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
}
#endif /* SM90_DEVICE */

/* One work item: query tile I0 (BM = 64 x consumer warpgroups rows) of head H of sequence SEQ; keys
 * [0, N_KEYS) are visible to it, read as key tiles [KT0, N_KT). */
struct sm90_item {
    int h, seq, q0, i0, rows, off, n_keys, kt0, n_kt;
};

/* Work item IDX: heaviest query tiles first (IDX / (heads * seqs) counts from the last tile),
 * the heads of one tile adjacent (those sharing a KV head read the same K/V from L2).
 * False when the sequence has no query tile there. */
__device__ __forceinline__ bool sm90_item_get(sm90_item &w, int idx, int n_heads, int n_seqs,
                                              int n_mt, int bm, const int32_t *cu_q,
                                              const int32_t *seq_lens, int window)
{
    int per = n_heads * n_seqs, r = idx % per;
    w.seq = r / n_heads;
    w.h = r % n_heads;
    w.i0 = (n_mt - 1 - idx / per) * bm;
    w.q0 = cu_q[w.seq];
    int q_len = cu_q[w.seq + 1] - w.q0;
    if (w.i0 >= q_len) return false;
    w.off = seq_lens[w.seq] - q_len;
    w.rows = min(bm, q_len - w.i0);
    w.n_keys = w.off + w.i0 + w.rows;
    w.n_kt = (w.n_keys + SM90_BN - 1) / SM90_BN;
    /* sliding window: the tile's first row needs keys from off + i0 - window + 1 on */
    w.kt0 = window > 0 ? max(0, w.off + w.i0 - window + 1) / SM90_BN : 0;
    return true;
}

/* The CTA's first item at or after IDX in its static round robin (IDX, IDX + gridDim.x, ..);
 * N_ITEMS when none is left. */
struct sm90_sched {
    int n_heads, n_seqs, n_mt, bm, n_items, window, pin;   /* pin: 0 (see sm90_consume) */
    const int32_t *cu_q, *seq_lens;
    __device__ __forceinline__ int next(sm90_item &w, int idx) const
    {
        for (; idx < n_items; idx += gridDim.x)
            if (sm90_item_get(w, idx, n_heads, n_seqs, n_mt, bm, cu_q, seq_lens, window))
                return idx;
        return n_items;
    }
};

#ifdef SM90_DEVICE
/* Producer warp, one K or V tile: lane 0 waits for the stage to be free (EMPTY, phase PH) and
 * arms FULL for the tile's bytes; lane b < N_BOX then issues both 64-column halves of box b
 * (ROWS_BOX slots from SLOT, kv head KVH of MAP) into DST, completing on FULL. */
__device__ __forceinline__ void sm90_issue(const CUtensorMap *map, uint32_t empty, uint32_t full,
                                           int ph, uint32_t dst, int kvh, int slot, int n_box,
                                           int rows_box)
{
    int lane = threadIdx.x & 31;
    if (lane == 0) {
        mbar_wait(empty, ph ^ 1);
        mbar_expect_tx(full, SM90_TILE);
    }
    __syncwarp();
    if (lane < n_box) {
        uint32_t d = dst + lane * rows_box * 128;
        tma_load3(d, map, full, 0, kvh, slot);
        tma_load3(d + SM90_HALF, map, full, 64, kvh, slot);
    }
}
#endif

/* One warp of the producer warpgroup: for each key tile of each of the CTA's items, waits for
 * its stage to be free, then issues the K and V boxes. Lane b < 128 / R handles box b. */
template <int ST>
__device__ __forceinline__ void sm90_produce(const CUtensorMap *km, const CUtensorMap *vm,
                                             unsigned char *smem, sm90_bars *bars,
                                             const sm90_sched &sc, const int32_t *bts,
                                             int max_bps, int bs, int rows_box, int n_kv,
                                             uint32_t qb)
{
#ifdef SM90_DEVICE
    int lane = threadIdx.x & 31, n_box = SM90_BN / rows_box, it = 0, n_tail = 0;
    uint32_t sk = sm90_smem(smem + qb), sv = sm90_smem(smem + qb + ST * SM90_TILE);
    sm90_item w;
    for (int idx = sc.next(w, blockIdx.x); idx < sc.n_items; idx = sc.next(w, idx + gridDim.x)) {
        const int32_t *bt = bts + (size_t)w.seq * max_bps;
        int kvh = w.h / (sc.n_heads / n_kv);
        for (int kt = w.kt0; kt < w.n_kt; kt++, it++) {
            int st = it % ST, ph = (it / ST) & 1;
            int key = kt * SM90_BN + lane * rows_box, slot = 0;
            if (lane < n_box)   /* boxes past the last key read the first page (finite data) */
                slot = key < w.n_keys ? bt[key / bs] * bs + key % bs : bt[0] * bs;
            bool last = kt == w.n_kt - 1 && w.n_keys < (kt + 1) * SM90_BN;
            uint32_t fk = sm90_smem(&bars->full_k[st]), fv = sm90_smem(&bars->full_v[st]);
            uint32_t vb = last ? sm90_smem(&bars->vtail) : fv;
            sm90_issue(km, sm90_smem(&bars->empty_k[st]), fk, ph, sk + st * SM90_TILE, kvh, slot,
                       n_box, rows_box);
            sm90_issue(vm, sm90_smem(&bars->empty_v[st]), vb, ph, sv + st * SM90_TILE, kvh, slot,
                       n_box, rows_box);
            if (last) {   /* zero V rows [n_keys - kt * BN, BN) of both halves, then publish */
                mbar_wait(vb, n_tail++ & 1);
                int r0 = w.n_keys - kt * SM90_BN;
                uint4 *v = (uint4 *)(smem + qb + (ST + st) * SM90_TILE);
                for (int i = lane; i < (SM90_BN - r0) * 16; i += 32) {
                    int r = r0 + (i >> 4), c = i & 15;
                    v[(c >> 3) * (SM90_HALF / 16) + r * 8 + (c & 7)] = make_uint4(0, 0, 0, 0);
                }
                fence_proxy_async();
                __syncwarp();
                if (lane == 0) mbar_arrive(fv);
            }
        }
    }
#endif
}

#ifdef SM90_DEVICE
/* Issues the cp.async copies of the 64 Q rows of consumer warpgroup WG (rows past ROWS zero)
 * into the 128-byte-swizzled Q tile; the caller waits, fences and syncs the warpgroup. */
__device__ __forceinline__ void sm90_load_q(unsigned char *smem, int wg,
                                            const __nv_bfloat16 *qs, int q_stride, int rows,
                                            uint32_t qh)
{
    int tid = threadIdx.x & 127;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int idx = tid + i * 128, r = idx >> 4, c = idx & 15, rr = wg * 64 + r;
        unsigned char *d = smem + (c >> 3) * qh + rr * 128 + (((c & 7) ^ (rr & 7)) << 4);
        cp_async16(d, rr < rows ? qs + (size_t)rr * q_stride + c * 8 : qs, rr < rows);
    }
    cp_async_commit();
}

/* A consumer WG's GEMM turn with ping-pong (see sm90_consume) and the release of a stage by
 * lane 0 of each warp; they name PP, wg, lane and bars of the steps below and sm90_consume. */
#define SM90_TURN_BEGIN() if (PP) bar_sync(3 + wg, 256)
#define SM90_TURN_END() if (PP) bar_arrive(3 + (wg ^ 1), 256)
#define SM90_RELEASE(b) if (lane == 0) mbar_arrive(sm90_smem(&bars->b))

/* S step of one key tile on its own: waits for K in stage ST (phase PH), issues S = Q K^T in
 * this WG's turn, waits for the GEMM and frees the stage's K. */
template <bool PP>
__device__ __forceinline__ void sm90_s_step(float (&s)[16][4], sm90_bars *bars, uint32_t sq,
                                            uint32_t sk, uint32_t qh, int st, int ph, int wg,
                                            int lane)
{
    mbar_wait(sm90_smem(&bars->full_k[st]), ph);
    SM90_TURN_BEGIN();
    sm90_qk(s, sq, sk + st * SM90_TILE, qh);
    SM90_TURN_END();
    wg_wait<0>();
    wg_fence_regs(s);
    SM90_RELEASE(empty_k[st]);
}

/* PV step of one key tile on its own: waits for V in stage ST (phase PH), issues O += P V in
 * this WG's turn, waits for the GEMM and frees the stage's V. */
template <bool PP>
__device__ __forceinline__ void sm90_pv_step(float (&o)[16][4], const uint32_t (&p)[8][4],
                                             sm90_bars *bars, uint32_t sv, int st, int ph,
                                             int wg, int lane)
{
    mbar_wait(sm90_smem(&bars->full_v[st]), ph);
    SM90_TURN_BEGIN();
    sm90_pv(o, p, sv + st * SM90_TILE);
    SM90_TURN_END();
    wg_wait<0>();
    wg_fence_regs(o);
    SM90_RELEASE(empty_v[st]);
}
#endif

/* One consumer warpgroup (WG 0 or 1 of the two): rows [WG * 64, WG * 64 + 64) of each of the
 * CTA's items. The next item's Q rows are fetched as soon as the last S GEMM of the current
 * one has read them, so the load overlaps the last softmax, PV and stores. One function over
 * 80 lines: the S and O accumulators, the running max and sum, and the pipeline's stage and
 * phase live in registers across the whole key loop; split, they would pass by reference. */
template <bool OVL, bool PP, int ST, int NC>
__device__ __forceinline__ void sm90_consume(__nv_bfloat16 *out, const __nv_bfloat16 *q,
                                             int q_stride, unsigned char *smem, sm90_bars *bars,
                                             const sm90_sched &sc, int wg, float scale_log2)
{
#ifdef SM90_DEVICE
    int tid = threadIdx.x & 127, lane = tid & 31, warp = tid >> 5, window = sc.window;
    constexpr uint32_t qh = SM90_QH(NC), qb = 2 * qh;
    uint32_t sq = sm90_smem(smem) + wg * 64 * 128, sk = sm90_smem(smem + qb),
             sv = sm90_smem(smem + qb + ST * SM90_TILE);
    sm90_item w, nw;
    int idx = sc.next(w, blockIdx.x), it = 0;
    if (idx >= sc.n_items) return;
    const int n_heads = sc.n_heads;
#define SM90_QROW(x) (q + (size_t)((x).q0 + (x).i0) * q_stride + (size_t)(x).h * SM90_HD)
    sm90_load_q(smem, wg, SM90_QROW(w), q_stride, w.rows, qh);
    /* ping-pong: a consumer WG waits on barrier 3 + WG before issuing GEMMs, then lets the
       other go; WG 1 opens the first turn for WG 0, WG 0 takes the last hand-over at the end */
    if (PP && wg == 1) bar_arrive(3, 256);
#define SM90_MASK(kt)                                                              \
    if ((kt) * SM90_BN + SM90_BN - 1 > wg_pos || window > 0)                      \
        sm90_mask(s, pos0, (kt) * SM90_BN, window)
#define SM90_PREFETCH_Q() \
    if (nidx < sc.n_items) sm90_load_q(smem, wg, SM90_QROW(nw), q_stride, nw.rows, qh)

    while (idx < sc.n_items) {
        int nidx = sc.next(nw, idx + gridDim.x);
        cp_async_wait<0>();
        fence_proxy_async();
        bar_sync(1 + wg, 128);

        float o[16][4], s[16][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, corr[2];
        uint32_t p[8][4];
#pragma unroll
        for (int j = 0; j < 16; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
        int pos0 = w.off + w.i0 + wg * 64 + warp * 16 + (lane >> 2);   /* position of row g */
        int wg_pos = w.off + w.i0 + wg * 64;                          /* first row of the WG */
        int n_it = w.n_kt - w.kt0;

        if (!OVL) {
            for (int i = 0; i < n_it; i++, it++) {
                int kt = w.kt0 + i, st = it % ST, ph = (it / ST) & 1;
                sm90_s_step<PP>(s, bars, sq, sk, qh, st, ph, wg, lane);
                if (i == n_it - 1) SM90_PREFETCH_Q();
                SM90_MASK(kt);
                sm90_softmax(s, m, l, corr, scale_log2);
                sm90_rescale(o, corr);
                sm90_pack(p, s);
                sm90_pv_step<PP>(o, p, bars, sv, st, ph, wg, lane);
            }
        } else {
            int st = it % ST, ph = (it / ST) & 1;
            sm90_s_step<PP>(s, bars, sq, sk, qh, st, ph, wg, lane);
            if (n_it == 1) SM90_PREFETCH_Q();
            SM90_MASK(w.kt0);
            sm90_softmax(s, m, l, corr, scale_log2);
            sm90_pack(p, s);
            it++;
            for (int i = 1; i < n_it; i++, it++) {
                int kt = w.kt0 + i, pst = (it - 1) % ST, pph = ((it - 1) / ST) & 1;
                st = it % ST;
                ph = (it / ST) & 1;
                mbar_wait(sm90_smem(&bars->full_k[st]), ph);
                mbar_wait(sm90_smem(&bars->full_v[pst]), pph);
                SM90_TURN_BEGIN();
                sm90_qk(s, sq, sk + st * SM90_TILE, qh);
                sm90_pv(o, p, sv + pst * SM90_TILE);
                SM90_TURN_END();
                wg_wait<1>();
                wg_fence_regs(s);
                SM90_RELEASE(empty_k[st]);
                if (i == n_it - 1) SM90_PREFETCH_Q();
                SM90_MASK(kt);
                sm90_softmax(s, m, l, corr, scale_log2);
                /* A loop that never runs (sc.pin is 0) but that neither compiler can prove
                   empty: ptxas otherwise hoists the wait below above the softmax (seen in the
                   SASS), and the softmax no longer overlaps the PV GEMM in flight. */
#pragma unroll 1
                for (int z = 0; z < (it & sc.pin); z++) asm volatile("nanosleep.u32 1;");
                wg_wait<0>();
                wg_fence_regs(o);
                SM90_RELEASE(empty_v[pst]);
                sm90_rescale(o, corr);
                sm90_pack(p, s);
            }
            int pst = (it - 1) % ST, pph = ((it - 1) / ST) & 1;
            sm90_pv_step<PP>(o, p, bars, sv, pst, pph, wg, lane);
        }

#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            float sum = l[hh];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            float inv = 1.f / sum;
            int r = wg * 64 + warp * 16 + (lane >> 2) + hh * 8;
            if (r >= w.rows) continue;
            __nv_bfloat16 *orow = out + ((size_t)(w.q0 + w.i0 + r) * n_heads + w.h) * SM90_HD +
                                  (lane & 3) * 2;
#pragma unroll
            for (int j = 0; j < 16; j++)
                *(uint32_t *)(orow + j * 8) =
                    pack2<__nv_bfloat16>(o[j][2 * hh] * inv, o[j][2 * hh + 1] * inv);
        }
        w = nw;
        idx = nidx;
    }
    if (PP && wg == 0) bar_sync(3, 256);
#undef SM90_TURN_BEGIN
#undef SM90_TURN_END
#undef SM90_RELEASE
#undef SM90_MASK
#undef SM90_PREFETCH_Q
#undef SM90_QROW
#endif
}

/* Grid: one CTA per work item, or (persistent) one per SM looping over items. */
template <bool OVL, bool PP, int ST, int NC>
__global__ void __launch_bounds__(128 * (NC + 1), 1)
prefill_attn_sm90_kernel(const __grid_constant__ CUtensorMap km,
                         const __grid_constant__ CUtensorMap vm, __nv_bfloat16 *__restrict__ out,
                         const __nv_bfloat16 *__restrict__ q, int q_stride,
                         const int32_t *__restrict__ bts, int max_bps,
                         const int32_t *__restrict__ cu_q, const int32_t *__restrict__ seq_lens,
                         int n_seqs, int n_mt, int n_heads, int n_kv, int bs, int rows_box,
                         float scale_log2, int window, int pin)
{
#ifdef SM90_DEVICE
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    constexpr uint32_t qb = 2 * SM90_QH(NC);
    sm90_bars *bars = (sm90_bars *)(smem + qb + 2 * ST * SM90_TILE);
    sm90_sched sc = {n_heads, n_seqs, n_mt, 64 * NC, n_mt * n_heads * n_seqs, window, pin,
                     cu_q, seq_lens};
    int wg = threadIdx.x >> 7;
    if (threadIdx.x == 0) {
        for (int i = 0; i < ST; i++) {
            mbar_init(sm90_smem(&bars->full_k[i]), 1);
            mbar_init(sm90_smem(&bars->full_v[i]), 1);
            mbar_init(sm90_smem(&bars->empty_k[i]), 4 * NC);   /* lane 0 of each consumer warp */
            mbar_init(sm90_smem(&bars->empty_v[i]), 4 * NC);
        }
        mbar_init(sm90_smem(&bars->vtail), 1);
        mbar_init_fence();
    }
    __syncthreads();
    if (wg == 0) {
        /* registers: 2 consumers 40 / 232, 3 consumers 24 / 160 (64K per SM) */
        if (NC == 2) setmaxnreg_dec<40>();
        else setmaxnreg_dec<24>();
        if (threadIdx.x < 32)
            sm90_produce<ST>(&km, &vm, smem, bars, sc, bts, max_bps, bs, rows_box, n_kv, qb);
    } else {
        if (NC == 2) setmaxnreg_inc<232>();
        else setmaxnreg_inc<160>();
        sm90_consume<OVL, PP, ST, NC>(out, q, q_stride, smem, bars, sc, wg - 1, scale_log2);
    }
#endif
}

/* ---- host side ---- */

extern "C" int prefill_attn_sm90_available(void) { return sm90_available(); }

#define SM90_N_VARIANTS 10

/* The fastest variant measured for the case on the H200 (bench_prefill_attn, 2026-12-02,
 * bench/RESULTS.md): with pages of 128+ tokens (one TMA box per 64 columns of a key tile) the
 * overlapped loop with ping-pong; with smaller pages, whose many small boxes slow the
 * producer, three consumer warpgroups for long prompts and the persistent overlapped loop for
 * short ones. */
static int sm90_default_variant(int max_q_len, int block_size)
{
    if (block_size >= SM90_BN) return 3;
    return max_q_len > 1024 ? 10 : 6;
}

/* On unless the worker's --prefill-attn portable turned it off (its tests passed on the
 * H200: test_prefill_attn_sm90, and test_prefill_attn through prefill_attn_run). */
static int g_sm90_on = 1;

extern "C" void prefill_attn_sm90_set(int on) { g_sm90_on = on; }

extern "C" int prefill_attn_sm90_enabled(void) { return g_sm90_on && sm90_available(); }

template <bool OVL, bool PP, int ST, int NC>
static cudaError_t sm90_launch(const CUtensorMap &km, const CUtensorMap &vm, void *out,
                               const void *q, int q_stride, const int32_t *bts, int max_bps,
                               const int32_t *cu_q, const int32_t *seq_lens, int n_seqs,
                               int max_q_len, int n_heads, int n_kv, int bs, int rows_box,
                               float scale, int window, bool persistent, cudaStream_t stream)
{
    static int n_sm;   /* per instantiation; setting the attribute twice is harmless */
    if (!n_sm) {
        int dev;
        cudaError_t e = cudaFuncSetAttribute(prefill_attn_sm90_kernel<OVL, PP, ST, NC>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             SM90_SMEM(NC, ST));
        if (e == cudaSuccess) e = cudaGetDevice(&dev);
        if (e == cudaSuccess)
            e = cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev);
        if (e != cudaSuccess) return e;
    }
    int n_mt = (max_q_len + 64 * NC - 1) / (64 * NC);
    long long n_items = (long long)n_mt * n_heads * n_seqs;
    if (n_items > 0x7fffffff) return cudaErrorInvalidValue;
    int grid = persistent && n_items > n_sm ? n_sm : (int)n_items;
    prefill_attn_sm90_kernel<OVL, PP, ST, NC><<<grid, 128 * (NC + 1), SM90_SMEM(NC, ST), stream>>>(
        km, vm, (__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, q_stride, bts, max_bps, cu_q,
        seq_lens, n_seqs, n_mt, n_heads, n_kv, bs, rows_box, scale * 1.4426950408889634f, window,
        0);
    return cudaGetLastError();
}

extern "C" cudaError_t prefill_attn_sm90_run(int variant, void *out, const void *q,
                                             int q_stride, const void *k_cache,
                                             const void *v_cache, const int32_t *block_tables,
                                             int max_blocks_per_seq,
                                             const int32_t *cu_seqlens_q,
                                             const int32_t *seq_lens, int n_seqs, int max_q_len,
                                             int n_heads, int n_kv_heads, int head_dim,
                                             int block_size, float scale, int window, kdtype dt,
                                             cudaStream_t stream)
{
    if (n_seqs < 0 || n_seqs > 65535 || max_q_len < 0 || n_kv_heads < 1 || window < 0 ||
        n_heads % n_kv_heads || block_size < 1 || q_stride < n_heads * head_dim ||
        q_stride % 8 || variant < 0 || variant > SM90_N_VARIANTS)
        return cudaErrorInvalidValue;
    int rows_box = block_size < SM90_BN ? block_size : SM90_BN;
    if (dt != KDT_BF16 || head_dim != SM90_HD || block_size % 8 ||
        (SM90_BN % block_size && block_size % SM90_BN) || !sm90_available())
        return cudaErrorNotSupported;
    if (n_seqs == 0 || max_q_len == 0) return cudaSuccess;
    CUtensorMap km, vm;
    cudaError_t e = sm90_kv_map(&km, k_cache, n_kv_heads, SM90_HD, rows_box);
    if (e == cudaSuccess) e = sm90_kv_map(&vm, v_cache, n_kv_heads, SM90_HD, rows_box);
    if (e != cudaSuccess) return e;
    if (variant == 0) variant = sm90_default_variant(max_q_len, block_size);
    auto f = variant == 1 || variant == 4 ? sm90_launch<false, false, 2, 2>
           : variant == 2 || variant == 5 ? sm90_launch<true, false, 2, 2>
           : variant == 3 || variant == 6 ? sm90_launch<true, true, 2, 2>
           : variant == 7 ? sm90_launch<false, false, 3, 2>
           : variant == 8 ? sm90_launch<true, true, 3, 2>
           : variant == 9 ? sm90_launch<false, true, 2, 2> : sm90_launch<false, false, 2, 3>;
    return f(km, vm, out, q, q_stride, block_tables, max_blocks_per_seq, cu_seqlens_q, seq_lens,
             n_seqs, max_q_len, n_heads, n_kv_heads, block_size, rows_box, scale, window,
             variant > 3, stream);   /* 4..10 persistent */
}
