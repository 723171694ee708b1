/* Paged prefill attention on Hopper, warp-specialized (FlashAttention-3's producer and
 * consumers, sm_90a): the same 128-row blocks, items, heads a block and context splits as
 * attention_wgmma.cu (attention_mma.cu plans them), the same per-warpgroup tile
 * (attention_wgmma.cuh: S = Q K^T by wgmma from shared memory, the online softmax in
 * registers, O += P V with P from registers, the previous tile's P V issued behind each S),
 * but the loads and the two warpgroups are decoupled:
 *
 * - 384 threads: warpgroup 0 is the producer, warpgroups 1 and 2 the consumers, 64 query
 *   rows each (rows 64 (w - 1) .. of the block's 128). setmaxnreg moves registers from the
 *   producer (56 a thread: its gather loop spills below that) to the consumers (224: no spill), whose accumulators, scores and P need
 *   them; the launch grants 168 a thread (65,536 / 384).
 * - The producer gathers K and V tiles of 128 keys through the block table (pages of any
 *   size, keys from any offset, zeros past the block's last key) with cp.async into a ring
 *   of STAGES stages (three at head_dim 128: 225 KB with Q), each guarded by two
 *   mbarriers: `full` (128 arrivals, one a producer thread once its copies of the tile have
 *   landed and been fenced for the async proxy: cp.async.wait_group, fence.proxy.async, then
 *   the arrive, whose release the consumers' wait acquires) and `empty` (8 arrivals, one a
 *   consumer warp once the wgmmas reading the stage retired). A producer thread publishes
 *   tile i - 1 before it waits for the stage of tile i to empty, so a landed tile never
 *   waits behind a stage still in use.
 * - Each consumer warpgroup runs at its own pace: no block-wide barrier after the start,
 *   so one warpgroup's softmax overlaps the other's GEMMs (the scheduler interleaves them;
 *   no explicit ping-pong order). A tile's stage is released after the tile's P V retires:
 *   in the next tile (P V is issued behind the next S), or at once for a tile the
 *   warpgroup's rows don't see (it still waits for the tile to be full first, so that its
 *   arrivals never run ahead into the stage's next phase).
 *
 * Q is loaded by the consumers before the split (one cp.async group, then the barrier that
 * also publishes the mbarriers' initialization and the rows' key ranges). The end writes
 * each row from registers, as attention_wgmma.cu does.
 *
 * A 16-bit cache only (BF16/F16, head_dim 64 or 128); an e4m3 cache stays on
 * attention_wgmma.cu's kernel (attention_mma.cu's dispatch). Built for sm_90a only
 * (local.mk compiles this file's 90 as 90a); elsewhere the kernel body traps and
 * pgd__attn_wgmma_ws_ok says no. */
#include "kernels/cuda/attention_wgmma.cuh"
#include "kernels/cuda/cp_async.cuh"
#include <atomic>

#define WS_THREADS 384               /* producer warpgroup + two consumer warpgroups */
#define WS_PRODUCERS 128
#define WS_CONSUMER_WARPS 8
#define WS_REGS_PRODUCER 56          /* 128 x 56 + 256 x 224 = 384 x 168 */
#define WS_REGS_CONSUMER 224

/* Shared memory of a head_dim-D block: Q [128 rows], then STAGES K tiles, then STAGES V
 * tiles, each D / 64 swizzled sub-tiles of [rows][128 bytes], 1024-byte aligned (+ room to
 * align). */
template <int D> struct ws_shape {
    static_assert(D == 64 || D == 128, "head_dim 64 or 128");
    static constexpr int DC = D / 64;
    static constexpr int CPR = D / 8;                    /* 16-byte chunks a row */
    static constexpr int QBYTES = DC * WG_BM * 128;
    static constexpr int TBYTES = DC * WG_BN * 128;
    static constexpr int STAGES = D == 128 ? 3 : 4;      /* 225 KB at D 128 */
    static constexpr int BYTES = QBYTES + 2 * STAGES * TBYTES + 1024;
    static constexpr int QL = WG_BM * CPR / (WS_THREADS - WS_PRODUCERS);  /* Q chunks a consumer */
    static constexpr int TL = WG_BN * CPR / WS_PRODUCERS;  /* K (and V) chunks a producer a tile */
};

#ifdef PGD_SM90A
static __device__ __forceinline__ void ws_mbar_init(uint32_t bar, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

/* One arrival (release semantics at CTA scope: this thread's earlier writes, and the
 * async-proxy fence before it, happen before the phase completes). */
static __device__ __forceinline__ void ws_mbar_arrive(uint32_t bar)
{
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar)
                 : "memory");
}

/* Waits until the phase of the given parity has completed (acquire at CTA scope). */
static __device__ __forceinline__ void ws_mbar_wait(uint32_t bar, int parity)
{
    asm volatile("{\n.reg .pred p;\nWS_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra WS_WAIT;\n}\n" ::"r"(bar),
                 "r"(parity)
                 : "memory");
}

template <int N> static __device__ __forceinline__ void ws_setmaxnreg_dec()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> static __device__ __forceinline__ void ws_setmaxnreg_inc()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* The producer warpgroup (thread tid of 128): tiles 0 .. ntiles - 1 of keys kb + 128 i ..
 * (zeros past ke) into stage i % STAGES, K at k_s and V at v_s (+ stage x TBYTES). */
template <typename T, int D>
static __device__ __forceinline__ void ws_produce(const attn_tc_kparams &p, int tid,
                                                  const int32_t *table, const T *kc,
                                                  const T *vc, int kb, int ke, int ntiles,
                                                  uint32_t k_s, uint32_t v_s, uint32_t full,
                                                  uint32_t empty)
{
    typedef ws_shape<D> S;
    const int64_t kv_stride = (int64_t)p.KV * D;
    const int cc = tid % S::CPR;                         /* the same chunk of every row */
    for (int it = 0; it < ntiles; it++) {
        const int st = it % S::STAGES;
        if (it > 0) {                                    /* publish tile it - 1 */
            cp_async_wait<0>();
            sm90_fence_async_smem();
            ws_mbar_arrive(full + 8 * ((it - 1) % S::STAGES));
        }
        if (it >= S::STAGES)                             /* tile it - STAGES released */
            ws_mbar_wait(empty + 8 * st, (it / S::STAGES - 1) & 1);
        const uint32_t kd = k_s + st * S::TBYTES, vd = v_s + st * S::TBYTES;
        const int kb0 = kb + it * WG_BN;
#pragma unroll
        for (int i = 0; i < S::TL; i++) {
            const int jj = tid / S::CPR + i * (WS_PRODUCERS / S::CPR), j = kb0 + jj;
            const bool ok = j <= ke;
            const T *ksrc = kc, *vsrc = vc;
            if (ok) {
                const int blk = p.bs_shift >= 0 ? j >> p.bs_shift : j / p.block_size;
                const int64_t off =
                    ((int64_t)table[blk] * p.block_size + (j - blk * p.block_size)) * kv_stride +
                    cc * 8;
                ksrc += off;
                vsrc += off;
            }
            const uint32_t at = wg_swz(WG_BN, jj, cc);
            cp_async16(kd + at, ksrc, ok);
            cp_async16(vd + at, vsrc, ok);
        }
        cp_async_commit();
    }
    if (ntiles > 0) {
        cp_async_wait<0>();
        sm90_fence_async_smem();
        ws_mbar_arrive(full + 8 * ((ntiles - 1) % S::STAGES));
    }
}

/* Consumer warp: the stage's wgmma reads retired (the warp's wait), one arrival a warp. */
static __device__ __forceinline__ void ws_release(uint32_t empty, int st, int lane)
{
    __syncwarp();
    if (lane == 0)
        ws_mbar_arrive(empty + 8 * st);
}
#endif

/* ---- the kernel -------------------------------------------------------------------------- */
template <typename T, int D>
__global__ void __launch_bounds__(WS_THREADS, 1)
attn_wgmma_ws_kernel(const __grid_constant__ attn_tc_kparams p)
{
#ifdef PGD_SM90A
    typedef ws_shape<D> S;
    extern __shared__ __align__(128) uint8_t ws_smem[];
    __shared__ int row_first[WG_BM], row_last[WG_BM], red[4][4];
    __shared__ __align__(8) uint64_t bars[2 * S::STAGES];   /* full[STAGES], empty[STAGES] */
    const uint32_t raw = smem_u32(ws_smem), q_s = (raw + 1023u) & ~1023u;
    const uint32_t k_s = q_s + S::QBYTES, v_s = k_s + S::STAGES * S::TBYTES;
    const uint32_t full = smem_u32(&bars[0]), empty = smem_u32(&bars[S::STAGES]);

    /* Items in reverse: in a prefill the late (longest) chunks start first. */
    const int4 item = p.items[gridDim.x - 1 - blockIdx.x];
    const int seq = item.x, t0 = item.y, nt = item.z;
    const int kvh = blockIdx.y / p.head_chunks;
    const int h0 = kvh * p.group + (blockIdx.y % p.head_chunks) * p.hq;
    const int R = nt * p.hq;                             /* <= 128 (the plan's tq) */
    const int split = blockIdx.z;
    const int tid = threadIdx.x, lane = tid & 31, role = tid >> 7;   /* 0 producer */

    if (tid == 0)
        for (int st = 0; st < S::STAGES; st++) {
            ws_mbar_init(full + 8 * st, WS_PRODUCERS);
            ws_mbar_init(empty + 8 * st, WS_CONSUMER_WARPS);
        }
    /* Q rows (zeros past R) by the consumers, waited for and fenced before the barrier. */
    if (role > 0) {
        const int ct = tid - WS_PRODUCERS;
#pragma unroll
        for (int i = 0; i < S::QL; i++) {
            const int idx = ct + i * (WS_THREADS - WS_PRODUCERS), r = idx / S::CPR,
                      cc = idx % S::CPR;
            const T *src = (const T *)p.q;
            const bool ok = r < R;
            if (ok)
                src += ((int64_t)(t0 + r / p.hq) * p.H + h0 + r % p.hq) * D + cc * 8;
            cp_async16(q_s + wg_swz(WG_BM, r, cc), src, ok);
        }
        cp_async_commit();
        cp_async_wait<0>();
        sm90_fence_async_smem();
    } else {
        wg_row_ranges(p, R, t0, split, tid, row_first, row_last, red);
    }
    __syncthreads();
    const int cw = role > 0 ? role - 1 : 0;              /* the consumer's warpgroup */
    const wg_span sp = wg_spans(red, cw);
    const int kb = sp.kb, ke = sp.ke;
    const int ntiles = ke >= kb ? (ke - kb) / WG_BN + 1 : 0;

    if (role == 0) {
        ws_setmaxnreg_dec<WS_REGS_PRODUCER>();
        const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
        const T *kc = (const T *)p.kc + (int64_t)kvh * D, *vc = (const T *)p.vc + (int64_t)kvh * D;
        ws_produce<T, D>(p, tid, table, kc, vc, kb, ke, ntiles, k_s, v_s, full, empty);
        return;
    }
    ws_setmaxnreg_inc<WS_REGS_CONSUMER>();

    const int g = lane >> 2, c = lane & 3, warp = (tid >> 5) & 3;
    const int r0 = cw * 64 + warp * 16 + g;              /* this thread's rows: r0, r0 + 8 */
    const int first[2] = { row_first[r0], row_first[r0 + 8] };
    const int last[2] = { row_last[r0], row_last[r0 + 8] };
    float o[S::DC][32];
#pragma unroll
    for (int dc = 0; dc < S::DC; dc++)
#pragma unroll
        for (int i = 0; i < 32; i++)
            o[dc][i] = 0.0f;
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
    const uint64_t qd = sm90_desc_sw128(q_s + cw * 64 * 128);
    uint32_t pa[WG_BN / 16][4];                          /* P of the pending tile */
#pragma unroll
    for (int kj = 0; kj < WG_BN / 16; kj++)
        pa[kj][0] = pa[kj][1] = pa[kj][2] = pa[kj][3] = 0u;
    bool pend = false;
    uint32_t vprev = 0;
    int pst = 0;                                         /* the pending tile's stage */

    for (int it = 0; it < ntiles; it++) {
        const int st = it % S::STAGES;
        ws_mbar_wait(full + 8 * st, (it / S::STAGES) & 1);
        const int k0 = kb + it * WG_BN;
        if (sp.whi < k0 || sp.wlo > k0 + WG_BN - 1) {    /* warpgroup-uniform */
            if (pend) {
                wg_flush<T, D>(o, pa, pend, vprev);
                ws_release(empty, pst, lane);
            }
            ws_release(empty, st, lane);
            continue;
        }
        const bool had = pend;
        const uint32_t kt = k_s + st * S::TBYTES, vt = v_s + st * S::TBYTES;
        if (k0 >= sp.lo_all && k0 + WG_BN - 1 <= sp.hi_all)
            wg_tile<T, D, true, false>(qd, kt, vt, k0, o, pa, pend, vprev, m, l, first, last,
                                       p.scale_log2, c);
        else
            wg_tile<T, D, true, true>(qd, kt, vt, k0, o, pa, pend, vprev, m, l, first, last,
                                      p.scale_log2, c);
        if (had)                                         /* its P V retired in wg_tile */
            ws_release(empty, pst, lane);
        pst = st;
    }
    wg_flush<T, D>(o, pa, pend, vprev);
    wg_store<T, D, false>(p, o, m, l, r0, R, t0, h0, split, c);
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- host side ---------------------------------------------------------------------------- */
/* Whether call a runs here: the wgmma kernel's conditions (pgd__attn_wgmma_ok: the device,
 * the sm_90a build, BF16/F16, head_dim 64 or 128) and a 16-bit cache. */
bool pgd__attn_wgmma_ws_ok(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a)
{
    return !a->kv_fp8 && pgd__attn_wgmma_ok(c, a);
}

extern "C" int pgd_cuda_attention_wgmma_ws_available(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                                     int D, int fp8)
{
    return !fp8 && pgd_cuda_attention_wgmma_available(c, dt, D, 0);
}

/* Dynamic shared memory past 48 KB is granted per kernel and device, once. */
template <typename T, int D>
static cudaError_t launch(struct pgd_cuda_ctx *c, const attn_tc_kparams &kp, dim3 grid, int *bytes)
{
    static std::atomic<uint64_t> done(0);
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    *bytes = ws_shape<D>::BYTES;
    if (!bit || !(done.load() & bit)) {
        cudaError_t e = cudaFuncSetAttribute(attn_wgmma_ws_kernel<T, D>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, *bytes);
        if (e != cudaSuccess)
            return e;
        done.fetch_or(bit);
    }
    attn_wgmma_ws_kernel<T, D><<<grid, WS_THREADS, *bytes, c->stream>>>(kp);
    return cudaSuccess;
}

int pgd__attn_wgmma_ws_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                           const int4 *items, int n_items, int n_splits, int split_len,
                           float *part, char *err, size_t errlen)
{
    const struct pgd_attn_params *p = &a->p;
    const int D = p->head_dim, group = p->n_heads / p->n_kv_heads;
    int hq, tq, bytes = 0;
    pgd__attn_mma_shape(group, WG_BM, &hq, &tq);
    attn_tc_kparams kp = pgd__attn_tc_params(a, items, hq, n_splits, split_len, part);
    dim3 grid(n_items, p->n_kv_heads * kp.head_chunks, n_splits);
    cudaError_t e;
    if (a->dtype == PGD_DTYPE_BF16)
        e = D == 64 ? launch<__nv_bfloat16, 64>(c, kp, grid, &bytes)
                    : launch<__nv_bfloat16, 128>(c, kp, grid, &bytes);
    else
        e = D == 64 ? launch<__half, 64>(c, kp, grid, &bytes)
                    : launch<__half, 128>(c, kp, grid, &bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return pgd_cuda_failf(err, errlen, "attention (wgmma-ws): shared memory of %d bytes: %s",
                              bytes, cudaGetErrorString(e));
    }
    if (n_splits > 1)
        pgd__attn_combine(c, a->dtype, part, items, n_items, p->n_heads, n_splits, D, a->out);
    PGD_CUDA_LAUNCHED(err, errlen, "attention (wgmma-ws, 128 rows a block, producer + 2 "
                      "consumer warpgroups) %s [%d tokens, %d seqs, %d heads / %d kv of %d, "
                      "max len %d, %d items x %d splits]", pgd_cuda_dt(a->dtype), a->n_tokens,
                      a->n_seqs, p->n_heads, p->n_kv_heads, D, a->max_seq_len, n_items,
                      n_splits);
    return 0;
}
