/* The folded W4A16 GEMM for Hopper (sm_90a): y[n, out] = x[n, in] @ W^T + b straight from the
 * mma layout's 4-bit weights (integer zeros, groups a multiple of 64 inputs; quant_wq.cuh),
 * for the rows past the decode GEMVs up to 256 (batched decode; quant_wq.cu's wq_auto_fold).
 *
 * Why a second Hopper kernel beside quant_wq_gemm.cu's: that one multiplies the exact
 * q - zero and scales each group's float32 sums, so at every group's end its warpgroups wait
 * for the tensor cores to drain (wait_group 0 every second stage at group 128) and the
 * tensor cores idle while the next A fragments are made: 200-300 TFLOP/s. Here each A
 * element is (q - zero) * scale rounded once to the dtype (wg_frag_a's fold, scale_pair):
 * the very 16-bit weights the dequantize + cuBLASLt path writes, so the sums are that path's
 * products in another order, and no group's end needs them.
 *
 * A block: 256 threads, 128 output features (two warpgroups of 64: warp w makes the A
 * fragments of the mma layout's 16-row tile w of the block from its 16-byte word a stage),
 * BN tokens (64, 128, 192 or 256: wgmma m64nBNk16 with B, the x tile, read through a
 * descriptor), one block an SM, as many stages of 64 inputs as ~200 KB hold (BN 256: 5;
 * 192: 6; 128 and 64: 8),
 * the loads STAGES - 3 stages ahead (wf_loader, no predicates). A stage: wait for its copies,
 * make them visible to the tensor cores (proxy fence), barrier, refill the buffer of stage
 * kt - 3, read the rows' {scale, zero} and the lane's word, make 16 A registers (4 steps of
 * 16 inputs), issue 4 wgmmas as one group. Stages go by pairs, each with its own register
 * set and one wait_group 0 a pair, the two warpgroups' pairs offset by a stage, so one's
 * wgmmas run while the other makes registers (see the loop for why not wait_group 1); a
 * pair's first stage is read (everything up to its registers) before the wait that ends
 * the pair before it (wf_pairs_ahead; PGD_CUDA_WQ_FOLD_AHEAD=0: after it, STAGES - 2 ahead).
 * Split inputs (a cluster of ks blocks along z) and the epilogue (the float32 tile in shared
 * memory, the splits added in order, the bias, one rounding): quant_wq_gemm.cuh's
 * wg_wgmma_epilogue.
 *
 * wq_fold_ws_kernel (PGD_CUDA_WQ_FOLD_WS=1, opt-in until measured) is the same kernel with
 * the copies moved to a producer warpgroup and the block barrier a stage replaced by
 * mbarriers: see its section below. */
#include "kernels/cuda/quant_wq_gemm.cuh"
#include <cuda.h>                    /* CUtensorMap and its encoder's types (no libcuda link) */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <type_traits>

#define WF_PIPE_BYTES (200 << 10)    /* the stages' budget: one block an SM */

/* The shared memory of a BN-token block: the fused GEMM's stage layout ([W][x][meta],
 * wg_smem), more stages; the epilogue's float32 tile over the same space. */
template <int BN> struct wf_smem {
    typedef wg_smem<WG_MMA4, BN> S;
    static constexpr int STAGE = S::STAGE;
    static_assert(STAGE % 1024 == 0 && S::X % 1024 == 0, "x tiles 1024-byte aligned");
    static constexpr int FIT = WF_PIPE_BYTES / STAGE;
    static constexpr int STAGES = FIT > 8 ? 8 : FIT;
    /* the loads run STAGES - 2 stages ahead (one fewer when reading ahead, wq_fold_kernel's
     * AHEAD): a buffer is refilled once both warpgroups have waited for the wgmmas that
     * read it (see the kernel) */
    static_assert(STAGES >= 5, "three stages loading beside two the wgmmas may read");
    static constexpr int PD = STAGES - 2;             /* stages loaded ahead */
    static constexpr int PIPE = STAGES * STAGE, OUT = BN * S::OUT_LD * 4;
    static constexpr int MAIN = PIPE > OUT ? PIPE : OUT;
    static constexpr int BYTES = MAIN + 1024;                       /* + room to align */
    /* the warp-specialized kernel's 2 x STAGES mbarriers past MAIN; the plain kernel's
     * STAGES when x comes by TMA: past MAIN too (TX_BYTES), but for the 64-token tile,
     * whose block must stay BYTES for two to fit an SM: there each stage's barrier sits in
     * its meta area, past the 128 rows' {scale, zero} the fold copies (it reads step 0's
     * alone), at TX_BAR, and is invalidated before the epilogue's tile covers it */
    static constexpr bool TX_IN_STAGE = BN == 64;
    static constexpr int WS_BYTES = BYTES + 2 * 8 * STAGES;
    static constexpr int TX_BYTES = TX_IN_STAGE ? BYTES : BYTES + 8 * STAGES;
    static constexpr int TX_BAR = S::META + WG_BM * 4;
    static_assert(TX_BAR % 8 == 0 && TX_BAR + 8 <= STAGE, "the barrier inside the stage");
};

/* The copies of a stage by NT threads (th < NT: all 256 of wq_fold_kernel, or the producer
 * warpgroup of wq_fold_ws_kernel), into wg_smem's stage layout, with no predicates: a source
 * past the layer or past n is clamped to the last tile, meta row or token row, whose
 * products land in outputs wg_store never writes (features past out, tokens past n), so
 * the loop has no branch a copy (the fused GEMM's loader zero-fills them instead). XS (run
 * but for 64-token tiles all full, see pgd_cuda__wq_fold_run; PGD_CUDA_WQ_FOLD_XSKIP=0 / 1
 * forces off / on): the x copies of token rows past n are predicated off instead, their
 * buffer rows left as they were (garbage that lands in the same unwritten outputs). Why:
 * clamped, every one of them reads row n - 1, and a tile's copies of a stage then hammer
 * one 128-byte line of x from every SM; on an H100 a 256-token tile of gate_up took 327 us
 * at 24 rows clamped against 132 skipped (bench quant --fold-plans, 256/1).
 *   weights: the mma layout's 16-byte entries e = th + NT j (j < 256 / NT): tile e / 32,
 *     lane e % 32;
 *   meta (threads th < 128: a producer's all): row th's {scale, zero} of the stage's group
 *     (a group spans whole stages), at step 0's place;
 *   x: rows th / 8 + NT / 8 i (i < 8 BN / NT), chunk th % 8, swizzled as the descriptor
 *     reads it. */
template <typename T, int BN, int NT = WG_THREADS, bool XS = false>
struct wf_loader {
    static_assert(NT == 128 || NT == 256, "a warpgroup or two");
    static constexpr int WN = 256 / NT, XN = 8 * BN / NT;
    const uint8_t *w_src[WN];        /* the entries at stage 0 */
    const __half2 *m_row;            /* meta row th (threads < 128) */
    const T *x;                      /* x + the chunk's first input */
    int xr0, n_last, in;             /* token row th / 8 of the tile, n - 1, x's row length */
    uint32_t gmul;                   /* stage kt's group: umulhi(2 kt, gmul), gmul =
                                        ceil(2^31 / stages a group); 0: one group */
    uint32_t w_dst, m_dst, x_dst;    /* offsets in a stage */

    __device__ __forceinline__ void init(const wg_args<T> &a, int m0, int n0, int th)
    {
#pragma unroll
        for (int j = 0; j < WN; j++) {
            const int e = th + NT * j, tile = min(m0 / 16 + e / 32, a.out_pad / 16 - 1);
            w_src[j] = a.w + (size_t)tile * a.wstride + (e % 32) * 16;
        }
        w_dst = (uint32_t)th * 16;
        m_row = a.meta + (size_t)min(m0 + th % WG_BM, a.out_pad - 1) * a.groups;
        m_dst = (uint32_t)(th % WG_BM) * 4;
        /* floor(kt / g) for g stages a group with one IMAD.HI, no branch: the error of
         * the rounded-up reciprocal, 2 kt (gmul - 2^31 / g) / 2^32 < 2 kt / 2^32, stays
         * under the 1 / g that separates kt / g from the next integer while kt g < 2^31 */
        const uint32_t g = (uint32_t)(a.group_size / WG_BK);
        gmul = a.groups == 1 ? 0u : (uint32_t)((((uint64_t)1 << 31) + g - 1) / g);
        const int c = th % 8;
        xr0 = n0 + th / 8;
        n_last = a.n - 1;
        in = a.in;
        x = a.x + c * 8;
        x_dst = (uint32_t)((th / 8) * 128 + ((c ^ ((th / 8) & 7)) << 4));
    }

    /* The weights and meta of stage kt into the stage at shared address st. */
    __device__ __forceinline__ void load_w(uint32_t st, int kt) const
    {
#pragma unroll
        for (int j = 0; j < WN; j++)
            cp_async16_always(st + w_dst + (uint32_t)(j * NT * 16), w_src[j] + (size_t)kt * 512);
        if (NT == WG_BM || threadIdx.x < WG_BM) {     /* a producer's all, else warps 0..3 */
            const uint32_t gi = __umulhi(2u * (uint32_t)kt, gmul);
            cp_async4_always(st + (uint32_t)wg_smem<WG_MMA4, BN>::META + m_dst, m_row + gi);
        }
    }

    /* The x tile of stage kt into the stage at shared address st. */
    __device__ __forceinline__ void load_x(uint32_t st, int kt) const
    {
        const T *xk = x + (size_t)kt * WG_BK;
#pragma unroll
        for (int i = 0; i < XN; i++) {
            const int r = xr0 + NT / 8 * i;
            const uint32_t d = st + (uint32_t)wg_smem<WG_MMA4, BN>::X + x_dst + i * (NT / 8) * 128;
            const T *src = xk + (size_t)min(r, n_last) * in;
            if constexpr (XS)
                cp_async16_if(d, src, r <= n_last);
            else
                cp_async16_always(d, src);
        }
    }
};

#ifdef PGD_SM90A
/* Which of a warp's stages start a group of {scale, zero}: a group spans whole stages and
 * every warp takes its split's stages in order, so the stages after a group's first find rz
 * as the first left it, and rz.set (~22 instructions a stage in bf16, and the shared loads
 * it waits for) runs once a group: every second stage at group 128, once a split for one
 * group a row. rz is the same bits either way. */
struct wf_group_starts {
    int left;                        /* stages of the current group still to come */
    int first, per;                  /* the split's first group's stages in it; a group's */
    template <typename T>
    __device__ __forceinline__ void init(const wg_args<T> &a, int kt0)
    {
        per = a.groups == 1 ? INT_MAX : a.group_size / WG_BK;
        first = a.groups == 1 ? INT_MAX : per - kt0 % per;
        left = 0;
    }
    /* whether the next stage starts a group (called once a stage, in order) */
    __device__ __forceinline__ bool next(void)
    {
        const bool starts = left == 0;
        if (starts) {
            left = first;
            first = per;
        }
        left--;
        return starts;
    }
};

/* A warp's reads of one stage (the stage's buffer at sp): its rows' {scale, zero} into rz
 * where the stage starts a group (new_group; else rz holds them) and its 16-byte word of
 * the mma layout's tile (returned). */
template <typename T, int BN>
__device__ __forceinline__ uint4 wf_stage_take(const uint8_t *sp, wg_rowz<T, WG_MMA4, false> &rz,
                                               bool new_group, int warp, int lane)
{
    typedef wg_smem<WG_MMA4, BN> S;
    const int g = lane >> 2;
    /* a group spans whole stages: step 0's {scale, zero} of rows g, g + 8 serve all 4 */
    if (new_group) {
        const __half2 *sm = reinterpret_cast<const __half2 *>(sp + S::META);
        rz.set(sm[warp * 16 + g], sm[warp * 16 + g + 8]);
    }
    return *reinterpret_cast<const uint4 *>(sp + warp * 512 + lane * 16);
}

/* A warp's tensor work of one stage (shared address st) from its word wv and rz: 16 A
 * registers (4 steps of 16 inputs) and the warpgroup's 4 wgmmas on the stage's x tile,
 * committed as one group. */
template <typename T, int BN, int NA>
__device__ __forceinline__ void wf_stage_issue(uint32_t st, const uint4 &wv, float (&acc)[NA],
                                               uint32_t (&A)[4][4],
                                               const wg_rowz<T, WG_MMA4, false> &rz, int warp,
                                               int lane)
{
    typedef wg_smem<WG_MMA4, BN> S;
    const int g = lane >> 2, t = lane & 3;
    const uint32_t words[4] = { wv.x, wv.y, wv.z, wv.w };
#pragma unroll
    for (int s = 0; s < 4; s++)
        wg_frag_a<T, WG_MMA4, false>(nullptr, words[s], warp * 16, s, g, t, rz, A[s]);
    const uint64_t desc = sm90_desc_sw128(st + (uint32_t)S::X);
    sm90_wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; s++)
        wgmma_op<T, BN>::run(acc, A[s], desc + (uint64_t)(2 * s), 1);
    sm90_wgmma_commit();
}

/* A warp's share of one stage's tensor work (the stage's buffer at sp, shared address st):
 * its reads (wf_stage_take), then its wgmmas (wf_stage_issue). */
template <typename T, int BN, int NA>
__device__ __forceinline__ void wf_stage_mma(const uint8_t *sp, uint32_t st, float (&acc)[NA],
                                             uint32_t (&A)[4][4], wg_rowz<T, WG_MMA4, false> &rz,
                                             bool new_group, int warp, int lane)
{
    const uint4 wv = wf_stage_take<T, BN>(sp, rz, new_group, warp, lane);
    wf_stage_issue<T, BN>(st, wv, acc, A, rz, warp, lane);
}

/* Stages [0, nkt) by pairs, each with its own register set, waited for at the pair's end:
 * the second set is made while the first stage's wgmmas run. (Waiting for all but the last
 * group each stage and remaking the freed set would overlap every stage, but ptxas then
 * serializes every wgmma, C7513: it cannot tell that set from one still being read.) The
 * warpgroups' pairs are offset by a stage, warpgroup 1 (second) running stage 0 alone first,
 * so while one makes the first set of its pair (its tensor work drained) the other's wgmmas
 * of the stage before are still in flight: the tensor cores stay fed. stage(kt, A) runs a
 * stage into register set A; done(kt) follows once its wgmmas are waited for. */
template <int NA, typename Stage, typename Done>
__device__ __forceinline__ void wf_pairs(float (&acc)[NA], int nkt, bool second, Stage stage,
                                         Done done)
{
    uint32_t A0[4][4], A1[4][4];
    int kt = 0;
    if (second && nkt > 0) {
        stage(0, A0);
        sm90_wgmma_wait<0>();
        sm90_reg_fence(acc);
        done(0);
        kt = 1;
    }
    for (; kt < nkt; kt += 2) {
        stage(kt, A0);
        if (kt + 1 < nkt)
            stage(kt + 1, A1);
        sm90_wgmma_wait<0>();
        sm90_reg_fence(acc);
        done(kt);
        if (kt + 1 < nkt)
            done(kt + 1);
    }
}

/* wf_pairs with each stage's reads one step earlier: take(kt) waits for stage kt (in
 * wq_fold_kernel: its copies and the block barrier, where a buffer is refilled) and returns
 * the warp's word (and sets its {scale, zero}), issue(kt, word, A) makes the registers and
 * the wgmmas. The take of a pair's first stage comes before the wait that ends the pair
 * before it, so the block barrier, the shared loads and a group's {scale, zero} conversion
 * run while the wgmmas drain instead of after: what a warp then does between that wait and
 * its next wgmma is the registers' arithmetic alone. (Nsight Compute, gate_up at 256 rows on
 * an H100: the warps' cycles at the block barrier 4.2 -> 0.5 an issue, 147 -> 119 us.) The
 * words are registers of their own, so the A sets are written where wf_pairs writes them
 * (nothing for ptxas to serialize); the same wgmmas in the same order, the same bits. */
template <int NA, typename Take, typename Issue, typename Done>
__device__ __forceinline__ void wf_pairs_ahead(float (&acc)[NA], int nkt, bool second, Take take,
                                               Issue issue, Done done)
{
    uint32_t A0[4][4], A1[4][4];
    uint4 w0 = make_uint4(0, 0, 0, 0), w1;
    int kt = 0;
    if (nkt > 0)
        w0 = take(0);
    if (second && nkt > 0) {
        issue(0, w0, A0);
        if (nkt > 1)
            w0 = take(1);
        sm90_wgmma_wait<0>();
        sm90_reg_fence(acc);
        done(0);
        kt = 1;
    }
    for (; kt < nkt; kt += 2) {
        issue(kt, w0, A0);
        if (kt + 1 < nkt) {
            w1 = take(kt + 1);
            issue(kt + 1, w1, A1);
        }
        if (kt + 2 < nkt)
            w0 = take(kt + 2);
        sm90_wgmma_wait<0>();
        sm90_reg_fence(acc);
        done(kt);
        if (kt + 1 < nkt)
            done(kt + 1);
    }
}
#endif

/* Entry l (0..2) of one of wg_args' per-layer arrays v, by selects, not an index into the
 * parameters: a dynamic index would copy them to local memory. */
template <typename V>
__device__ __forceinline__ V wf_sel(int l, const V (&v)[WG_LAYERS])
{
    static_assert(WG_LAYERS == 3, "the selects take three layers");
    return l == 2 ? v[2] : l == 1 ? v[1] : v[0];
}

/* The layer of feature tile mb of a launch of several (wg_args' layers): its fields in place
 * of the grid's, and m0, the tile's first feature, within that layer. */
template <typename T>
__device__ __forceinline__ wg_args<T> wf_layer_of(const wg_args<T> &g, int mb, int &m0)
{
    wg_args<T> a = g;
    m0 = mb * WG_BM;
    if (g.layers > 1) {
        const int l = mb >= g.l_mb[2] ? 2 : mb >= g.l_mb[1] ? 1 : 0;
        a.w = wf_sel(l, g.l_w);
        a.meta = wf_sel(l, g.l_meta);
        a.b = wf_sel(l, g.l_b);
        a.y = wf_sel(l, g.l_y);
        a.out = wf_sel(l, g.l_out);
        a.out_pad = wf_sel(l, g.l_out_pad);
        /* layer 0 starts at tile 0: a literal, where wf_sel would load l_mb[0] */
        m0 = (mb - (l == 2 ? g.l_mb[2] : l == 1 ? g.l_mb[1] : 0)) * WG_BM;
    }
    return a;
}

/* The block's layer (its feature tile blockIdx.y). */
template <typename T>
__device__ __forceinline__ wg_args<T> wf_layer(const wg_args<T> &g, int &m0)
{
    return wf_layer_of(g, (int)blockIdx.y, m0);
}

/* TX (wf_tma: the default but for 64-token tiles of 32 rows or fewer): x's tile of a stage
 * comes by the tensor copy engine, one thread's bulk copy through xmap (x as a 2D tensor
 * [n][in], box 64 inputs x BN rows, the descriptor's 128-byte swizzle, rows past n filled
 * with zeros) completing on the stage buffer's mbarrier (xbar), in place of the 8 BN / 256
 * cp.async copies of every thread. x is then written by the async proxy that wgmma reads
 * with, so no proxy fence a stage; the weights and meta (read with plain shared loads) keep
 * their cp.async copies and the block barrier. Gone from every warp a stage: the x copies,
 * their addresses, clamps or predicates, and the fence. Without TX, xmap is not read. */
template <typename T, int BN, bool XS, bool TX, bool AHEAD = false>
__global__ void __launch_bounds__(WG_THREADS, 1)
wq_fold_kernel(const __grid_constant__ wg_args<T> grid, const __grid_constant__ CUtensorMap xmap)
{
#ifdef PGD_SM90A
    typedef wf_smem<BN> L;
    typedef typename L::S S;
    /* stages loaded ahead: one fewer when each stage's reads come a stage ahead (AHEAD) */
    constexpr int PD = AHEAD ? L::PD - 1 : L::PD;
    constexpr int NA = BN / 2;       /* accumulators a thread */
    extern __shared__ __align__(128) uint8_t wf_buf[];
    const uint32_t raw = smem_u32(wf_buf), smem0 = (raw + 1023u) & ~1023u;
    uint8_t *buf = wf_buf + (smem0 - raw);
    const int th = threadIdx.x, warp = th / 32, lane = th % 32;
    int m0;
    const wg_args<T> a = wf_layer(grid, m0);
    const int n0 = blockIdx.x * BN;
    /* the split's stages [kt0, kt0 + nkt) */
    const int kt0 = blockIdx.z * a.kps, nkt = min(a.kts, kt0 + a.kps) - kt0;
    pdl_trigger();
    /* TX: buffer b's x barrier at xbar(b) (past the pipeline and the epilogue's tile, or
     * in the stage: wf_smem::TX_IN_STAGE); stage kt's in buffer kt % STAGES, its phase
     * kt / STAGES; one arrival (the issuing thread's) and the tile's bytes complete it */
    auto xbar = [&](int b) {
        return smem0 + (uint32_t)(L::TX_IN_STAGE ? b * L::STAGE + L::TX_BAR : L::MAIN + 8 * b);
    };
    if constexpr (TX) {
        if (th == 0) {
            for (int s = 0; s < L::STAGES; s++)
                sm90_mbar_init(xbar(s), 1);
            sm90_fence_mbar_init();
        }
        __syncthreads();
    }
    /* stage s's x tile (split-local s) into the stage at shared address st */
    auto load_x = [&](const wf_loader<T, BN, WG_THREADS, XS> &ld, uint32_t st, int s) {
        if constexpr (TX) {
            if (th == 0) {
                const uint32_t bar = xbar(s % L::STAGES);
                sm90_mbar_expect_tx(bar, BN * 128);
                sm90_tma_load_2d(st + (uint32_t)S::X, &xmap, (kt0 + s) * WG_BK, n0, bar);
            }
        } else {
            ld.load_x(st, kt0 + s);
        }
    };

    float acc[NA];
#pragma unroll
    for (int i = 0; i < NA; i++)
        acc[i] = 0.0f;

    /* The weights and meta of the first stages may load before the previous kernel is done
     * (nothing writes them), x only after; group s holds stage s's x (group 0 also the early
     * weights), so waiting for group kt still finds stage kt complete. */
    wf_loader<T, BN, WG_THREADS, XS> ld;
    ld.init(a, m0, n0, th);
    for (int s = 0; s < PD; s++)
        if (s < nkt)
            ld.load_w(smem0 + s * L::STAGE, kt0 + s);
    pdl_wait();
    for (int s = 0; s < PD; s++) {
        if (s < nkt)
            load_x(ld, smem0 + s * L::STAGE, s);
        cp_async_commit();
    }

    wg_rowz<T, WG_MMA4, false> rz;
    wf_group_starts gs;
    gs.init(a, kt0);
    /* Each stage is waited for by the end of the next (wf_pairs), so at stage kt's barrier
     * both warpgroups are done with stage kt - 2's buffer, the one refilled. AHEAD
     * (wf_pairs_ahead): a warpgroup reaches the barrier of its pair's first stage kt before
     * it waits for its previous pair, kt - 2 and kt - 1, so the buffer refilled there is
     * stage kt - 3's, whose wgmmas both warpgroups have waited for (the other, a stage
     * behind, is in the second stage of its pair kt - 1, kt: past the wait of kt - 3, kt - 2):
     * PD one less. The stage's reads (its word, {scale, zero}) come right after its barrier,
     * and its registers and wgmmas a pair's wait later. */
    auto take = [&](int kt) {
        cp_async_wait<PD - 1>();
        if constexpr (TX)
            sm90_mbar_wait(xbar(kt % L::STAGES), (uint32_t)((kt / L::STAGES) & 1));
        else
            sm90_fence_async_smem();
        __syncthreads();             /* stage kt landed; stage nk's buffer is free (above) */
        const int nk = kt + PD;
        if (nk < nkt) {
            const uint32_t st = smem0 + (uint32_t)((nk % L::STAGES) * L::STAGE);
            ld.load_w(st, kt0 + nk);
            load_x(ld, st, nk);
        }
        cp_async_commit();
        return wf_stage_take<T, BN>(buf + (kt % L::STAGES) * L::STAGE, rz, gs.next(), warp, lane);
    };
    auto mma = [&](int kt, const uint4 &wv, uint32_t (&A)[4][4]) {
        wf_stage_issue<T, BN>(smem0 + (uint32_t)((kt % L::STAGES) * L::STAGE), wv, acc, A, rz,
                              warp, lane);
    };
    if constexpr (AHEAD)
        wf_pairs_ahead(acc, nkt, th >= 128, take, mma, [](int) {});
    else
        wf_pairs(acc, nkt, th >= 128,
                 [&](int kt, uint32_t (&A)[4][4]) { mma(kt, take(kt), A); }, [](int) {});
    if constexpr (TX && L::TX_IN_STAGE) {
        /* every thread is past its last wait: the barriers are invalidated before the
         * epilogue's tile writes over their memory (after its own barrier) */
        __syncthreads();
        if (th == 0)
            for (int s = 0; s < L::STAGES; s++)
                sm90_mbar_inval(xbar(s));
    }
    wg_wgmma_epilogue<T, BN, S::OUT_LD>(a, buf, acc, n0, m0);
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- stream-K (wq_fold_sk_kernel) ------------------------------------------------------------ */
/* Why: a launch's tiles seldom fill the SMs in whole waves, and a split tile pays its cluster's
 * reduction. At 256 rows of the 8B shape on an H100 (132 SMs) the timed plans leave SMs idle:
 * q/k/v as one grid (48 feature tiles, 64 stages each) ran 256/2, 96 blocks; down (32 tiles
 * of 224 stages) 256/3, 96 blocks; gate_up (224 tiles) 256/1, a full wave and one of 92. Here
 * the launch has one block an SM (G of them, at most the SMs), and block b takes the stages
 * [b U / G, (b + 1) U / G) of the launch's U = tiles x kts stages, tile after tile (tile t:
 * feature tile t / ntok, token tile t % ntok), so every block does the same count of stages.
 * Its pipeline runs through its whole run without a break: the first stages of a tile load
 * while the tile before is being multiplied, so the fill (most of the plain kernel's fixed
 * ~8 us a block in its cost model) is paid once a block, not once a tile. The run cuts the
 * tiles it touches into segments:
 *   - a whole tile: its sums rounded and stored straight from the accumulators with the bias
 *     (wf_sk_store: the plain kernel stages them through the pipeline's memory, which here
 *     still holds the next tile's stages), as wg_store8 rounds them: an unsplit plan's bits;
 *   - a tile's later part (only a block's first segment can start mid-tile): its float32
 *     sums to the block's slot of sk_part, then the block's flag set (a release);
 *   - a tile's first part that later blocks finish (only a block's last segment): once its
 *     own stages are done, the block waits for the flags of the blocks after it that hold the
 *     rest (an acquire; each wrote its part when its first segment ended), adds their
 *     sums in block order (the same order every launch), clears their flags for the next
 *     launch and stores the tile.
 * Waiting on another block is safe: G is at most the SMs and a block fills an SM, so every
 * block is resident once the kernel before has drained, and a block waits only for blocks
 * after it, which never wait for it. x comes by TMA and each stage is read a stage ahead
 * (wq_fold_kernel's TX and AHEAD, the defaults of its 128- to 256-token tiles). */
#ifdef PGD_SM90A
__device__ __forceinline__ void wf_flag_release(int *f, int v)
{
    asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(f), "r"(v) : "memory");
}
__device__ __forceinline__ int wf_flag_acquire(const int *f)
{
    int v;
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(f) : "memory");
    return v;
}
#endif

/* y[n0 + tok, m0 + o] of the block's tile = v (a thread's accumulators, wg_wgmma_epilogue's
 * layout) + b, the features past out and tokens past n skipped: each element rounded as
 * wg_store8 rounds it (a split-free sum is 0 + v there). */
template <typename T, int NA>
__device__ __forceinline__ void wf_sk_store(const wg_args<T> &a, const float (&v)[NA], int m0,
                                            int n0, int warp, int lane)
{
    const int g = lane >> 2, t = lane & 3;
    const int o0 = m0 + warp * 16 + g, o8 = o0 + 8;
    const float b0 = a.b && o0 < a.out ? to_f<T>(a.b[o0]) : 0.0f;
    const float b8 = a.b && o8 < a.out ? to_f<T>(a.b[o8]) : 0.0f;
#pragma unroll
    for (int i = 0; i < NA; i++) {
        const int o = i & 2 ? o8 : o0, tok = n0 + (i / 4) * 8 + 2 * t + (i & 1);
        if (tok < a.n && o < a.out)
            a.y[(size_t)tok * a.out + o] = from_f<T>((0.0f + v[i]) + (i & 2 ? b8 : b0));
    }
}

template <typename T, int BN>
__global__ void __launch_bounds__(WG_THREADS, 1)
wq_fold_sk_kernel(const __grid_constant__ wg_args<T> grid, const __grid_constant__ CUtensorMap xmap)
{
#ifdef PGD_SM90A
    typedef wf_smem<BN> L;
    typedef typename L::S S;
    static_assert(!L::TX_IN_STAGE, "the x barriers past the pipeline (TX_BYTES)");
    constexpr int PD = L::PD - 1;    /* read ahead: one stage fewer loading ahead */
    constexpr int NA = BN / 2;
    extern __shared__ __align__(128) uint8_t wf_buf[];
    const uint32_t raw = smem_u32(wf_buf), smem0 = (raw + 1023u) & ~1023u;
    uint8_t *buf = wf_buf + (smem0 - raw);
    const int th = threadIdx.x, warp = th / 32, lane = th % 32;
    const int kts = grid.kts, ntok = (grid.n + BN - 1) / BN, blocks = (int)gridDim.x;
    const long total = (long)((grid.out + WG_BM - 1) / WG_BM) * ntok * kts;
    auto run_start = [&](int q) { return total * q / blocks; };
    const int b = (int)blockIdx.x;
    const long u0 = run_start(b);
    const int nst = (int)(run_start(b + 1) - u0);    /* the block's stages */
    pdl_trigger();
    /* stage s (of the block's run) in buffer s % STAGES, its x barrier's phase s / STAGES */
    auto xbar = [&](int s) { return smem0 + (uint32_t)(L::MAIN + 8 * s); };
    if (th == 0) {
        for (int s = 0; s < L::STAGES; s++)
            sm90_mbar_init(xbar(s), 1);
        sm90_fence_mbar_init();
    }
    __syncthreads();
    auto load_x = [&](int s, int kt, int n0) {
        if (th == 0) {
            const uint32_t bar = xbar(s % L::STAGES);
            sm90_mbar_expect_tx(bar, BN * 128);
            sm90_tma_load_2d(smem0 + (uint32_t)((s % L::STAGES) * L::STAGE + S::X), &xmap,
                             kt * WG_BK, n0, bar);
        }
    };

    /* The loads' cursor: the next stage to load is stage ld_kt of tile ld_tile (token rows
     * from ld_n0), whose feature rows ld copies from. */
    int ld_tile = (int)(u0 / kts), ld_kt = (int)(u0 % kts), ld_n0 = 0;
    wf_loader<T, BN, WG_THREADS, false> ld;
    auto ld_tile_init = [&]() {
        const int mb = ld_tile / ntok;
        int m0;
        ld_n0 = (ld_tile - mb * ntok) * BN;
        ld.init(wf_layer_of(grid, mb, m0), m0, ld_n0, th);
    };
    auto ld_next = [&]() {
        if (++ld_kt == kts) {
            ld_kt = 0;
            ld_tile++;
            ld_tile_init();
        }
    };
    ld_tile_init();
    /* The first stages' weights before the previous kernel is done (nothing writes them), x
     * after, walking the same stages again; cp.async group 0 holds the early weights, and
     * every stage commits one group (wq_fold_kernel's accounting). */
    for (int s = 0; s < PD && s < nst; s++) {
        ld.load_w(smem0 + s * L::STAGE, ld_kt);
        ld_next();
    }
    pdl_wait();
    {
        int xt = (int)(u0 / kts), xk = (int)(u0 % kts);
        for (int s = 0; s < PD; s++) {
            if (s < nst) {
                load_x(s, xk, (xt % ntok) * BN);
                if (++xk == kts) {
                    xk = 0;
                    xt++;
                }
            }
            cp_async_commit();
        }
    }

    float acc[NA];
    wg_rowz<T, WG_MMA4, false> rz;
    wf_group_starts gs;
    int j = 0, tile = (int)(u0 / kts), k0 = (int)(u0 % kts);
    while (j < nst) {
        /* the segment: stages [k0, k0 + seg) of tile `tile`, the run's [j, j + seg) */
        const int seg = min(kts - k0, nst - j), j0 = j;
        const int mb = tile / ntok, n0 = (tile - mb * ntok) * BN;
        int m0;
        const wg_args<T> a = wf_layer_of(grid, mb, m0);
#pragma unroll
        for (int i = 0; i < NA; i++)
            acc[i] = 0.0f;
        gs.init(a, k0);
        /* wq_fold_kernel's take and issue, on the run's stages: the buffer a barrier frees is
         * stage s - 3's, waited for by both warpgroups in this segment or the one before */
        auto take = [&](int kt) {
            const int s = j0 + kt;
            cp_async_wait<PD - 1>();
            sm90_mbar_wait(xbar(s % L::STAGES), (uint32_t)((s / L::STAGES) & 1));
            __syncthreads();
            if (s + PD < nst) {
                const uint32_t st = smem0 + (uint32_t)(((s + PD) % L::STAGES) * L::STAGE);
                ld.load_w(st, ld_kt);
                load_x(s + PD, ld_kt, ld_n0);
                ld_next();
            }
            cp_async_commit();
            return wf_stage_take<T, BN>(buf + (s % L::STAGES) * L::STAGE, rz, gs.next(), warp,
                                        lane);
        };
        auto mma = [&](int kt, const uint4 &wv, uint32_t (&A)[4][4]) {
            wf_stage_issue<T, BN>(smem0 + (uint32_t)(((j0 + kt) % L::STAGES) * L::STAGE), wv,
                                  acc, A, rz, warp, lane);
        };
        wf_pairs_ahead(acc, seg, th >= 128, take, mma, [](int) {});

        /* block q's slot, this thread's float4 i at [i * WG_THREADS] */
        auto slot = [&](int q) {
            return reinterpret_cast<float4 *>(grid.sk_part) + (size_t)q * (NA / 4) * WG_THREADS +
                   th;
        };
        if (k0 > 0) {                /* a later part: the sums to this block's slot */
            float4 *mine = slot(b);
#pragma unroll
            for (int i = 0; i < NA / 4; i++)
                mine[(size_t)i * WG_THREADS] =
                    make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
            __syncthreads();
            if (th == 0) {
                __threadfence();
                wf_flag_release(grid.sk_flags + b, 1);
            }
        } else {
            if (seg < kts) {         /* the first part: the later blocks' parts, in order */
                const long end = (long)(tile + 1) * kts;
                for (int q = b + 1; q < blocks && run_start(q) < end; q++) {
                    if (th == 0) {
                        while (wf_flag_acquire(grid.sk_flags + q) == 0)
                            __nanosleep(64);
                        grid.sk_flags[q] = 0;
                    }
                    __syncthreads();
                    const float4 *theirs = slot(q);
#pragma unroll
                    for (int i = 0; i < NA / 4; i++) {
                        const float4 p = __ldcg(theirs + (size_t)i * WG_THREADS);
                        acc[4 * i] += p.x;
                        acc[4 * i + 1] += p.y;
                        acc[4 * i + 2] += p.z;
                        acc[4 * i + 3] += p.w;
                    }
                }
            }
            wf_sk_store<T, NA>(a, acc, m0, n0, warp, lane);
        }
        j += seg;
        tile++;
        k0 = 0;
    }
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- the warp-specialized variant (PGD_CUDA_WQ_FOLD_WS=1) -------------------------------------- */
/* The same two warpgroups, wgmmas and sums in the same order (so the same bits), with the
 * copies moved to a third warpgroup, a producer that refills a stage's buffer once both
 * warpgroups have released it and signals it full, on mbarriers in place of the block
 * barrier a stage. (The block barrier makes each stage wait for the slower warpgroup, and at
 * every barrier one of them has just drained its tensor work, so the tensor cores idle while
 * the A registers of the next stage are made; on mbarriers a warpgroup waits only for its
 * own stage's copies, and the other's wgmmas run meanwhile.)
 *   full[b]: each of the producer's 128 threads arrives once its copies of the stage in
 *     buffer b have landed and it has made them visible to the tensor cores (cp.async
 *     groups, PD = STAGES - 2 stages in flight behind the one just issued; the proxy fence is
 *     the writer's, as in wq_fold_kernel); the consumers wait for phase (kt / STAGES) & 1.
 *   empty[b]: lane 0 of each of the 8 consumer warps arrives once its warpgroup's wgmmas of
 *     the stage are waited for; the producer waits for that before refilling buffer b with
 *     stage kt + STAGES. (A warpgroup releases a pair's first stage only with its second,
 *     so the producer hands a stage over at most STAGES - 2 stages behind: PD.)
 * Registers: a block of 384 threads starts with 168 a thread (the register file over its
 * threads, in steps of 8); the producer hands back all but 56 and the consumers take 224
 * (setmaxnreg), what wq_fold_kernel's 256-token tile uses. A consumer's increase waits until
 * the block's pool holds it, so the producer must free at least what the consumers take. */
#define WF_WS_THREADS (WG_THREADS + 128)
#define WF_WS_CONSUMER_WARPS (WG_THREADS / 32)
#define WF_WS_LAUNCH_REGS ((65536 / WF_WS_THREADS) & ~7)
#define WF_WS_PRODUCER_REGS 56
#define WF_WS_CONSUMER_REGS 224
static_assert((WF_WS_LAUNCH_REGS - WF_WS_PRODUCER_REGS) * 128 >=
                  (WF_WS_CONSUMER_REGS - WF_WS_LAUNCH_REGS) * WG_THREADS,
              "the producer frees what the consumers take");

template <typename T, int BN, bool XS>
__global__ void __launch_bounds__(WF_WS_THREADS, 1)
wq_fold_ws_kernel(const __grid_constant__ wg_args<T> grid, const __grid_constant__ CUtensorMap)
{
#ifdef PGD_SM90A
    typedef wf_smem<BN> L;
    typedef typename L::S S;
    constexpr int NA = BN / 2;
    extern __shared__ __align__(128) uint8_t wf_buf[];
    const uint32_t raw = smem_u32(wf_buf), smem0 = (raw + 1023u) & ~1023u;
    uint8_t *buf = wf_buf + (smem0 - raw);
    /* full[STAGES], empty[STAGES] past the pipeline and the epilogue's tile */
    const uint32_t full = smem0 + (uint32_t)L::MAIN, empty = full + 8 * L::STAGES;
    const int th = threadIdx.x, warp = th / 32, lane = th % 32;
    int m0;
    const wg_args<T> a = wf_layer(grid, m0);
    const int n0 = blockIdx.x * BN;
    const int kt0 = blockIdx.z * a.kps, nkt = min(a.kts, kt0 + a.kps) - kt0;
    pdl_trigger();
    if (th < L::STAGES) {
        sm90_mbar_init(full + 8 * th, 128);
        sm90_mbar_init(empty + 8 * th, WF_WS_CONSUMER_WARPS);
    }
    __syncthreads();

    if (th >= WG_THREADS) {
        /* the producer: the weights of the first stages before the previous kernel is done
         * (nothing writes them), x after; cp.async group s holds stage s's x (group 0 also
         * the early weights), so waiting for all but the PD newest finds stage s - PD whole */
        sm90_setmaxnreg_dec<WF_WS_PRODUCER_REGS>();
        const int p = th - WG_THREADS;
        wf_loader<T, BN, 128, XS> ld;
        ld.init(a, m0, n0, p);
        for (int s = 0; s < L::STAGES && s < nkt; s++)
            ld.load_w(smem0 + s * L::STAGE, kt0 + s);
        pdl_wait();
        for (int s = 0; s < nkt; s++) {
            const int b = s % L::STAGES;
            const uint32_t st = smem0 + (uint32_t)(b * L::STAGE);
            if (s >= L::STAGES) {
                sm90_mbar_wait(empty + 8 * b, (uint32_t)((s / L::STAGES - 1) & 1));
                ld.load_w(st, kt0 + s);
            }
            ld.load_x(st, kt0 + s);
            cp_async_commit();
            if (s >= L::PD) {        /* stage s - PD has landed: make it visible, hand it over */
                cp_async_wait<L::PD>();
                sm90_fence_async_smem();
                sm90_mbar_arrive(full + 8 * ((s - L::PD) % L::STAGES));
            }
        }
        cp_async_wait<0>();
        sm90_fence_async_smem();
        for (int s = nkt > L::PD ? nkt - L::PD : 0; s < nkt; s++)
            sm90_mbar_arrive(full + 8 * (s % L::STAGES));
        wg_epilogue_meet(a.ks);
        return;
    }
    {
        sm90_setmaxnreg_inc<WF_WS_CONSUMER_REGS>();
        float acc[NA];
#pragma unroll
        for (int i = 0; i < NA; i++)
            acc[i] = 0.0f;
        pdl_wait();                  /* before the epilogue writes y */
        wg_rowz<T, WG_MMA4, false> rz;
        wf_group_starts gs;
        gs.init(a, kt0);
        auto stage = [&](int kt, uint32_t (&A)[4][4]) {
            const int b = kt % L::STAGES;
            sm90_mbar_wait(full + 8 * b, (uint32_t)((kt / L::STAGES) & 1));
            wf_stage_mma<T, BN>(buf + b * L::STAGE, smem0 + (uint32_t)(b * L::STAGE), acc, A,
                                rz, gs.next(), warp, lane);
        };
        /* this warp's share of releasing stage kt's buffer, its wgmmas waited for */
        auto release = [&](int kt) {
            if (lane == 0)
                sm90_mbar_arrive(empty + 8 * (kt % L::STAGES));
        };
        wf_pairs(acc, nkt, th >= 128, stage, release);
        wg_wgmma_epilogue<T, BN, S::OUT_LD>(a, buf, acc, n0, m0);
    }
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- the host side ------------------------------------------------------------------------------- */
/* A plan's `one`: the plain kernel's block asks for at least WF_ONE_BLOCK_BYTES of shared
 * memory, past half an SM's 228 KB, so an SM holds one block as the plan's cost model
 * assumes. The 64-token tile's ~107 KB and 114-128 registers a thread let two fit: faster
 * at 32-64 rows, slower past them (H100: gate_up at 64 rows 62 against 76 us, down at 256
 * 107 against 84 with the model's tiles). The model's plan takes PGD_CUDA_WQ_FOLD_ONE_BLOCK=1
 * (default 0), the timing PGD_CUDA_WQ_FOLD_TUNE_ONE=1 (quant_wq_fold_tune.cu). */
#define WF_ONE_BLOCK_BYTES (116 << 10)
static bool wf_one_block(void) { return pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_ONE_BLOCK", 0) == 1; }

/* The kernel of a tile size, plain (WS false) or warp-specialized, x's rows past n copied
 * clamped or skipped (XS) or x by TMA (TX, the plain kernel's), its stages read ahead (AH,
 * the plain kernel's), its block and shared memory. */
template <typename T, int BN, bool WS, bool XS = false, bool TX = false, bool AH = false>
struct wf_kernel {
    static_assert(!(TX && (WS || XS)), "TMA's x: the plain kernel, no rows to clamp or skip");
    static_assert(!AH || !WS, "reads ahead: the plain kernel");
    static std::atomic<uint64_t> granted;
    static constexpr int THREADS = WS ? WF_WS_THREADS : WG_THREADS;
    static constexpr int SMEM_USED = WS ? wf_smem<BN>::WS_BYTES
                                   : TX ? wf_smem<BN>::TX_BYTES
                                        : wf_smem<BN>::BYTES;
    /* the most a launch asks for: the attribute granted once */
    static constexpr int SMEM_MAX = !WS && SMEM_USED < WF_ONE_BLOCK_BYTES ? WF_ONE_BLOCK_BYTES
                                                                          : SMEM_USED;
    static int smem(bool one) { return !WS && one ? SMEM_MAX : SMEM_USED; }
    static constexpr void (*kernel)(wg_args<T>, CUtensorMap) =
        WS ? wq_fold_ws_kernel<T, BN, XS> : wq_fold_kernel<T, BN, XS, TX, AH>;
    static cudaError_t allow(int device)
    {
        return wg_allow_smem(granted, kernel, device, SMEM_MAX);
    }
    /* grid: token tiles x feature tiles x splits, the splits of a tile one cluster; xmap
     * x's tensor map (TX; else not read) */
    static cudaError_t launch(struct pgd_cuda_ctx *c, const wg_args<T> &a, bool one,
                              const CUtensorMap &xmap)
    {
        /* the attribute granted at SMEM_MAX (allow), whatever this launch asks for */
        cudaError_t e = allow(c->device);
        if (e != cudaSuccess)
            return e;
        return wg_launch(c, a, BN, THREADS, smem(one), dim3(1, 1, (unsigned)a.ks), granted,
                         kernel, a, xmap);
    }
};
template <typename T, int BN, bool WS, bool XS, bool TX, bool AH>
std::atomic<uint64_t> wf_kernel<T, BN, WS, XS, TX, AH>::granted(0);

/* PGD_CUDA_WQ_FOLD_WS=1: the warp-specialized kernel (the same bits; opt-in until measured). */
static bool wf_ws(void) { return pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_WS", 0) == 1; }

/* Compute capability 9.0 and the kernel's sm_90a code built. Asked once a device. */
static bool wf_device_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return sm90_once(asked, able, c->device, [c] {
        return sm90_kernel_built(c->device, wq_fold_kernel<__nv_bfloat16, 128, false, false>) &&
               sm90_kernel_built(c->device, wq_fold_ws_kernel<__nv_bfloat16, 128, false>);
    });
}

bool pgd_cuda__wq_fold_ok(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w)
{
    return w->mma && w->group_size % WG_BK == 0 && wf_device_ok(c);
}

extern "C" int pgd_cuda_wq_fold_available(int device)
{
    struct pgd_cuda_ctx c = {};
    c.device = device;
    return wf_device_ok(&c);
}

/* Clusters of ks blocks of the BN-token kernel an H100-like device holds at once (ks 2..8;
 * one block an SM, so a cluster needs ks SMs free in one GPC: fewer than sm_count / ks where
 * the GPCs' SM counts are not multiples of ks), asked once a device, tile, kernel, split
 * and `one` (the plan's); 0 when the question fails. */
template <int BN, bool WS>
static int wf_max_clusters(const struct pgd_cuda_ctx *c, int ks, bool one)
{
    static std::atomic<int> known[64][2][WG_KS_MAX + 1];    /* [device][one block][ks] */
    typedef wf_kernel<__nv_bfloat16, BN, WS> K;
    const int d = c->device;
    if (d < 0 || d >= 64 || ks < 2 || ks > WG_KS_MAX)
        return 0;
    int v = known[d][one][ks].load();
    if (v)
        return v > 0 ? v : 0;
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    cfg.gridDim = dim3(1, 1, (unsigned)ks);
    cfg.blockDim = dim3(K::THREADS);
    cfg.dynamicSmemBytes = (size_t)K::smem(one);
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = (unsigned)ks;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int n = 0;
    if (K::allow(d) != cudaSuccess ||
        cudaOccupancyMaxActiveClusters(&n, K::kernel, &cfg) != cudaSuccess)
        n = 0;
    cudaGetLastError();              /* a failed question is no error of the caller's */
    known[d][one][ks].store(n > 0 ? n : -1);
    return n;
}

template <int BN>
static int wf_clusters(const struct pgd_cuda_ctx *c, int ks, bool ws, bool one)
{
    return ws ? wf_max_clusters<BN, true>(c, ks, one) : wf_max_clusters<BN, false>(c, ks, one);
}

/* The plan of least estimated time: waves (the tiles' clusters over those the device holds
 * at once; unsplit, one block an SM) times a block's time: WF_COST_BLOCK (filling the
 * pipeline from memory, the epilogue; + WF_COST_SPLIT for a split's cluster reduction) plus
 * its stages at BN + WF_COST_STAGE each: a stage's tensor work grows with its tokens, its
 * loads' and A registers' fixed part does not. Units of ~2.8 ns, fitted on the H100 (8B q /
 * o, gate_up at 64..1,024 rows: a block's fixed part ~8 us, a stage of 128 tokens 0.63 us,
 * of 256 1.03 us). PGD_CUDA_WQ_FOLD_BN = 64, 128, 192 or 256 and PGD_CUDA_WQ_FOLD_KS =
 * 1..8 force the token tile and the split, PGD_CUDA_WQ_FOLD_KS_MAX caps the split (tests,
 * measuring). */
#define WF_COST_BLOCK 2900
#define WF_COST_SPLIT 400
#define WF_COST_STAGE 100
#define WF_KS_MAX 8                  /* splits the plan considers (PGD_CUDA_WQ_FOLD_KS_MAX) */
#define WF_PLANS_MAX 80              /* pgd_cuda__wq_fold_plans' most: 32 + 8 + 32 + 3 */

/* The token tiles, narrowest first. 192 (wgmma n 192) serves 129-192 rows with a quarter
 * less tensor work a stage than 256, and keeps a 64-row bucket's tile count one count
 * (quant_wq_fold_tune.cu's buckets): the 8B GPTQ step 14-15% faster at 136-192 rows on an
 * H100 (gate_up at 192 rows 136.0 -> 103.6 us; PERFORMANCE.md, thirtieth session).
 * PGD_CUDA_WQ_FOLD_192=0 leaves it out of the plans (forcing it with PGD_CUDA_WQ_FOLD_BN
 * runs it either way). */
static const int WF_BNS[4] = { 64, 128, 192, 256 };
static bool wf_bn_ok(int bn) { return bn == 64 || bn == 128 || bn == 192 || bn == 256; }
static bool wf_bn_planned(int bn)
{
    return bn != 192 || pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_192", 1) != 0;
}

/* The estimated cost of a plan (token tile bn, ks splits of the inputs) for n rows of an
 * [out, in] layer, in the units above; -1 where ks splits would leave one empty (the
 * splits that exist: ceil(kts / ceil(kts / ks)) == ks). *kps: the stages a split; *slots:
 * the tiles (clusters of ks blocks) the device holds at once. */
static long wf_cost(const struct pgd_cuda_ctx *c, int n, int in, int out, bool ws, bool one,
                    int bn, int ks, int *kps, long *slots)
{
    const long mblocks = (out + WG_BM - 1) / WG_BM, sms = c->sm_count > 0 ? c->sm_count : 1;
    const int kts = (in + WG_BK - 1) / WG_BK;
    *kps = (kts + ks - 1) / ks;
    if ((kts + *kps - 1) / *kps != ks)
        return -1;
    *slots = sms;
    if (ks > 1) {
        const int mc = bn == 256 ? wf_clusters<256>(c, ks, ws, one)
                     : bn == 192 ? wf_clusters<192>(c, ks, ws, one)
                     : bn == 128 ? wf_clusters<128>(c, ks, ws, one)
                                 : wf_clusters<64>(c, ks, ws, one);
        *slots = mc > 0 ? mc : sms / ks * 3 / 4;
        if (*slots < 1)
            *slots = 1;
    }
    const long tiles = mblocks * ((n + bn - 1) / bn), waves = (tiles + *slots - 1) / *slots;
    return waves * (WF_COST_BLOCK + (ks > 1 ? WF_COST_SPLIT : 0) +
                    (long)*kps * (bn + WF_COST_STAGE));
}

/* ---- stream-K's plans ---- */
#define WF_SK_MIN_STAGES 8           /* a stream-K block's stages at least */
#define WF_SK_LAYER_STAGES 128       /* a layer's stages from which the timing tries stream-K */
#define WF_SK_SLOT_FLOATS (128 * WG_THREADS)   /* a block's part sums: 256-token tiles' */

/* PGD_CUDA_WQ_FOLD_SK: 1 runs the stream-K kernel alone (the model's pick of its tiles, no
 * timing), 0 leaves it out of the plans; unset (-1): among the plans the timing chooses from. */
static int wf_sk_env(void) { return pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_SK", -1); }

/* Whether the environment forces the stream-K kernel: PGD_CUDA_WQ_FOLD_SK=1, or its blocks
 * forced (PGD_CUDA_WQ_FOLD_SK_BLOCKS) without PGD_CUDA_WQ_FOLD_SK=0. */
static bool wf_sk_forced(void)
{
    const int v = wf_sk_env();
    return v == 1 || (v != 0 && pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_SK_BLOCKS", 0) > 0);
}

/* The stages of n rows of an [out, in] grid in bn-token tiles: its tiles times a tile's (the
 * work the stream-K kernel shares out; it counts them so too). */
static long wf_sk_stages(int n, int in, int out, int bn)
{
    return (long)((out + WG_BM - 1) / WG_BM) * ((n + bn - 1) / bn) * ((in + WG_BK - 1) / WG_BK);
}

/* The stream-K kernel's blocks for n rows of an [out, in] grid in bn-token tiles: one an SM,
 * fewer where a block would take under WF_SK_MIN_STAGES stages; PGD_CUDA_WQ_FOLD_SK_BLOCKS
 * forces a count (tests: whole tiles a block, or tiles in many parts), never past the SMs. */
static int wf_sk_blocks(const struct pgd_cuda_ctx *c, int n, int in, int out, int bn)
{
    const long sms = c->sm_count > 0 ? c->sm_count : 1, total = wf_sk_stages(n, in, out, bn);
    const int forced = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_SK_BLOCKS", 0);
    long g = forced > 0 ? forced : total / WF_SK_MIN_STAGES;
    g = g < sms ? g : sms;
    g = g < total ? g : total;
    return g > 1 ? (int)g : 1;
}

/* Whether a plan of token tile bn may be stream-K's for n rows: 128 tokens up, x by TMA, each
 * stage read ahead (the kernel has no other way). */
static bool wf_sk_able(int bn, int n);

/* The stream-K plan's estimated cost (wf_cost's units): one fill a block, its equal share of
 * the stages, and a part's sums written or added once. *blocks: its blocks. */
static long wf_sk_cost(const struct pgd_cuda_ctx *c, int n, int in, int out, int bn, int *blocks)
{
    *blocks = wf_sk_blocks(c, n, in, out, bn);
    const long per = (wf_sk_stages(n, in, out, bn) + *blocks - 1) / *blocks;
    return WF_COST_BLOCK + WF_COST_SPLIT + per * (bn + WF_COST_STAGE);
}

/* The model's plan: the kernel and block residency the environment names (the plain kernel,
 * two blocks an SM where they fit, by default), the token tile and split of least cost. */
static struct wq_fold_plan wf_pick(const struct pgd_cuda_ctx *c, int n, int in, int out)
{
    const int kts = (in + WG_BK - 1) / WG_BK;
    const int fbn = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_BN", 0);
    const int fks = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_KS", 0);
    const int ks_max = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_KS_MAX", WF_KS_MAX);
    const bool ws = wf_ws(), one = !ws && wf_one_block();
    struct wq_fold_plan best = { 256, 1, kts, ws, one, false };
    long best_cost = -1;
    if (!ws && wf_sk_forced()) {
        for (int b = 3; b >= 1; b--) {          /* 256, 192, 128: widest first */
            const int bn = WF_BNS[b];
            int blocks;
            if ((wf_bn_ok(fbn) ? bn != fbn : !wf_bn_planned(bn)) || !wf_sk_able(bn, n))
                continue;
            const long cost = wf_sk_cost(c, n, in, out, bn, &blocks);
            if (best_cost < 0 || cost < best_cost) {
                best = (struct wq_fold_plan){ bn, 1, kts, false, false, true };
                best_cost = cost;
            }
        }
        if (best_cost >= 0)
            return best;
    }
    for (int b = 3; b >= 0; b--) {   /* widest first: it keeps ties */
        const int bn = WF_BNS[b];
        if (wf_bn_ok(fbn) ? bn != fbn : !wf_bn_planned(bn))
            continue;
        for (int ks = 1; ks <= WG_KS_MAX; ks++) {
            if ((fks >= 1 && fks <= WG_KS_MAX && ks != fks) || (fks == 0 && ks > ks_max))
                continue;
            int kps;
            long slots;
            const long cost = wf_cost(c, n, in, out, ws, one, bn, ks, &kps, &slots);
            if (cost < 0 || (ks > 1 && fks == 0 && kps < WG_KPS_MIN))
                continue;
            if (best_cost < 0 || cost < best_cost) {
                best = (struct wq_fold_plan){ bn, ks, kps, ws, one, false };
                best_cost = cost;
            }
        }
    }
    return best;
}

/* Whether the environment forces any part of the plan (tests, measuring): then the model
 * plans, never the timing. */
static bool wf_forced(void)
{
    static const char *const VARS[] = { "PGD_CUDA_WQ_FOLD_BN", "PGD_CUDA_WQ_FOLD_KS",
                                        "PGD_CUDA_WQ_FOLD_KS_MAX", "PGD_CUDA_WQ_FOLD_WS",
                                        "PGD_CUDA_WQ_FOLD_ONE_BLOCK" };
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++)
        if (pgd_cuda__qenv_int(VARS[i], -1) >= 0)
            return true;
    return wf_sk_forced();
}

int pgd_cuda__wq_fold_plans(const struct pgd_cuda_ctx *c, int n, int in, int out, bool one_too,
                            struct wq_fold_plan *plans, int max)
{
    long cost[WF_PLANS_MAX];
    int count = 0;
    if (max > WF_PLANS_MAX)
        max = WF_PLANS_MAX;
    for (int v = 0; v < 3; v++) {    /* plain, plain one block an SM, warp-specialized */
        const bool ws = v == 2, one = v == 1;
        if (one && !one_too)
            continue;
        for (int b = 0; b < 4; b++) {
            const int bn = WF_BNS[b];
            /* the larger tiles' blocks are one an SM by their shared memory already */
            static_assert(wf_smem<128>::BYTES > WF_ONE_BLOCK_BYTES, "128-token blocks alone");
            if ((one && bn > 64) || !wf_bn_planned(bn))
                continue;
            for (int ks = 1; ks <= WF_KS_MAX && count < max; ks++) {
                int kps;
                long slots;
                const long e = wf_cost(c, n, in, out, ws, one, bn, ks, &kps, &slots);
                if (e < 0 || (ks > 1 && kps < WG_KPS_MIN))
                    continue;
                /* in the model's order, the same cost in the order made (insertion) */
                int at = count++;
                for (; at > 0 && cost[at - 1] > e; at--) {
                    cost[at] = cost[at - 1];
                    plans[at] = plans[at - 1];
                }
                cost[at] = e;
                plans[at] = (struct wq_fold_plan){ bn, ks, kps, ws, one, false };
            }
        }
    }
    /* stream-K's tiles last (PGD_CUDA_WQ_FOLD_SK=0: none), so that the timing keeps one only
     * where it beats every other plan by its margin, and only for layers of WF_SK_LAYER_STAGES
     * stages or more (PGD_CUDA_WQ_FOLD_SK_MIN_STAGES): on an H100 it won only down's 224
     * (bench quant --fold-plans at 256 rows: 61.3 us against 65.7; gate_up 110.8 against
     * 108.2, qkv 33.5 against 32.5), and timed for every layer it won q/k/v's too, alone with
     * L2 flushed, but made the 8B step 0.5-1% slower; for down alone, 0.5% faster
     * (PERFORMANCE.md, thirty-second session) */
    const int kts = (in + WG_BK - 1) / WG_BK;
    const bool sk = wf_sk_env() != 0 &&
                    kts >= pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_SK_MIN_STAGES",
                                              WF_SK_LAYER_STAGES);
    for (int b = 3; b >= 1 && sk && count < max; b--)
        if (wf_bn_planned(WF_BNS[b]) && wf_sk_able(WF_BNS[b], n))
            plans[count++] = (struct wq_fold_plan){ WF_BNS[b], 1, kts, false, false, true };
    return count;
}

extern "C" long pgd_cuda_wq_fold_plan_cost(struct pgd_cuda_ctx *c, int n, int in, int out,
                                           int ws, int bn, int ks, long *slots)
{
    int kps;
    if (!wf_bn_ok(bn) || ks < 1 || ks > WG_KS_MAX)
        return -1;
    if (ws == 2) {
        int blocks = 0;
        if (ks != 1 || !wf_sk_able(bn, n))
            return -1;
        const long e = wf_sk_cost(c, n, in, out, bn, &blocks);
        *slots = blocks;
        return e;
    }
    return wf_cost(c, n, in, out, ws != 0, !ws && wf_one_block(), bn, ks, &kps, slots);
}

/* The kernel of token tile bn. */
template <typename T, bool WS, bool XS, bool TX = false, bool AH = false>
static cudaError_t wf_launch(struct pgd_cuda_ctx *c, const wg_args<T> &a, int bn, bool one,
                             const CUtensorMap &xmap)
{
    if (bn == 256)
        return wf_kernel<T, 256, WS, XS, TX, AH>::launch(c, a, one, xmap);
    if (bn == 192)
        return wf_kernel<T, 192, WS, XS, TX, AH>::launch(c, a, one, xmap);
    if (bn == 128)
        return wf_kernel<T, 128, WS, XS, TX, AH>::launch(c, a, one, xmap);
    return wf_kernel<T, 64, WS, XS, TX, AH>::launch(c, a, one, xmap);
}


/* ---- x's tensor map (TX) ---------------------------------------------------------------- */
/* The driver's cuTensorMapEncodeTiled, looked up once through the runtime (the library does
 * not link libcuda); NULL where the driver lacks it. */
typedef CUresult (*wf_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                 const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                 const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
static wf_encode_fn wf_encoder(void)
{
    static std::atomic<int> asked(0);
    static std::atomic<wf_encode_fn> fn(nullptr);
    if (asked.load())
        return fn.load();
    void *p = NULL;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
        p = NULL;
    cudaGetLastError();              /* a failed look-up is no error of the caller's */
    fn.store((wf_encode_fn)p);
    asked.store(1);
    return fn.load();
}

/* x [n][in] of a (16-byte aligned, in a multiple of 64: the fold's layers) as the 2D
 * tensor map a bn-token tile's stage reads: box 64 inputs (128 bytes, the swizzle's span) x
 * bn rows, 128-byte swizzle (chunk c of box row r at c ^ (r % 8): sm90_desc_sw128's layout),
 * rows past n zero-filled. The encoder exists (wf_encoder). cudaErrorInvalidValue where the
 * driver refuses the map. */
template <typename T>
static cudaError_t wf_xmap(const wg_args<T> &a, int bn, CUtensorMap *map)
{
    const wf_encode_fn encode = wf_encoder();
    const cuuint64_t dims[2] = { (cuuint64_t)a.in, (cuuint64_t)a.n };
    const cuuint64_t strides[1] = { (cuuint64_t)a.in * sizeof(T) };
    const cuuint32_t box[2] = { WG_BK, (cuuint32_t)bn }, unit[2] = { 1, 1 };
    return encode(map,
                  std::is_same<T, __nv_bfloat16>::value ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                        : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                  2, (void *)a.x, dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS
               ? cudaSuccess
               : cudaErrorInvalidValue;
}

/* Whether the plain kernel of a bn-token tile takes x by TMA (the same bits) for n rows,
 * where the driver encodes tensor maps: by default from the 128-token tile up, 5-15%
 * faster plan by plan and the 8B step 9-11% faster at 128-256 rows on an H200
 * (PERFORMANCE.md, twenty-eighth session); for the 64-token tile (its barriers in its
 * stages, wf_smem::TX_IN_STAGE, so that two blocks still fit an SM) past 32 rows: the 8B
 * GPTQ step 3% faster at 48 and 64 rows on an H100, level at 96, but 5% slower at 17-32,
 * where the tile's copies of the rows past n are skipped (thirtieth session).
 * PGD_CUDA_WQ_FOLD_TMA=1 takes it for every tile and n, 0 for none (x by cp.async copies;
 * PGD_CUDA_WQ_FOLD_XSKIP then applies). */
static bool wf_tma(int bn, int n)
{
    const int v = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_TMA", -1);
    return (v == 1 || (v != 0 && (bn >= 128 || n > 32))) && wf_encoder() != NULL;
}

extern "C" int pgd_cuda_wq_fold_tma_available(int device)
{
    return pgd_cuda_wq_fold_available(device) && wf_encoder() != NULL;
}

/* Whether the plain kernel reads each stage a stage ahead (wq_fold_kernel's AHEAD,
 * wf_pairs_ahead: a pair's first stage's barrier, word and {scale, zero} before the wait
 * that ends the pair before it; one stage fewer loading ahead): the same bits, by default;
 * PGD_CUDA_WQ_FOLD_AHEAD=0 keeps them in order. On an H100 (thirty-first session) the 8B
 * GPTQ step at 128 / 192 / 224 / 256 rows went 8.43 / 9.85 / 11.93 / 12.24 -> 7.27 / 9.08 /
 * 10.35 / 10.59 ms (bf16 7.51 / 8.75 / 9.88 / 10.12), 64 rows 6.66 -> 6.46. */
static bool wf_ahead(void) { return pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_AHEAD", 1) != 0; }

/* The plain kernel (x by TMA or copied, rows past n skipped or not), its reads ahead or in
 * order (wf_ahead). */
template <typename T, bool XS, bool TX>
static cudaError_t wf_launch_plain(struct pgd_cuda_ctx *c, const wg_args<T> &a,
                                   const struct wq_fold_plan &p, const CUtensorMap &xmap)
{
    return wf_ahead() ? wf_launch<T, false, XS, TX, true>(c, a, p.bn, p.one, xmap)
                      : wf_launch<T, false, XS, TX>(c, a, p.bn, p.one, xmap);
}

static bool wf_sk_able(int bn, int n) { return bn >= 128 && wf_tma(bn, n) && wf_ahead(); }

/* The context's stream-K part sums and flags for `blocks` blocks, made at the first call that
 * needs them outside a capture (a graph's nodes keep their address; the runner's warm-up and
 * the plans' timing come first) with a slot for every SM: whether they are there. */
static bool wf_sk_ready(struct pgd_cuda_ctx *c, int blocks)
{
    if (c->wq_sk_part)
        return blocks <= c->wq_sk_blocks;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(c->stream, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) {
        cudaGetLastError();
        return false;
    }
    const int slots = c->sm_count > 0 ? c->sm_count : 1;
    float *part = NULL;
    int *flags = NULL;
    if (cudaMalloc(&part, (size_t)slots * WF_SK_SLOT_FLOATS * sizeof(float)) != cudaSuccess ||
        cudaMalloc(&flags, (size_t)slots * sizeof(int)) != cudaSuccess ||
        cudaMemsetAsync(flags, 0, (size_t)slots * sizeof(int), c->stream) != cudaSuccess) {
        cudaFree(part);
        cudaFree(flags);
        cudaGetLastError();          /* no room: the other plans run instead */
        return false;
    }
    c->wq_sk_part = part;
    c->wq_sk_flags = flags;
    c->wq_sk_blocks = slots;
    return blocks <= slots;
}

/* The stream-K kernel of token tile BN over `blocks` blocks, x by TMA through xmap. */
template <typename T, int BN>
static cudaError_t wf_sk_launch_bn(struct pgd_cuda_ctx *c, const wg_args<T> &a, int blocks,
                                   const CUtensorMap &xmap)
{
    static std::atomic<uint64_t> granted(0);
    constexpr int SMEM = wf_smem<BN>::TX_BYTES;
    const cudaError_t e = wg_allow_smem(granted, wq_fold_sk_kernel<T, BN>, c->device, SMEM);
    if (e != cudaSuccess)
        return e;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    pgd_cuda__wq_launch_cfg(c, dim3((unsigned)blocks), dim3(WG_THREADS), (size_t)SMEM,
                            dim3(1, 1, 1), &cfg, attr);
    return cudaLaunchKernelEx(&cfg, wq_fold_sk_kernel<T, BN>, a, xmap);
}

/* Runs a as the stream-K plan of token tile bn where it can (wf_sk_able, its part sums made);
 * false where it cannot (*e untouched). */
template <typename T>
static bool wf_sk_run(struct pgd_cuda_ctx *c, wg_args<T> &a, int bn, cudaError_t *e)
{
    const int blocks = wf_sk_blocks(c, a.n, a.in, a.out, bn);
    if (!wf_sk_able(bn, a.n) || !wf_sk_ready(c, blocks))
        return false;
    a.ks = 1;
    a.kps = a.kts;
    a.sk_part = c->wq_sk_part;
    a.sk_flags = c->wq_sk_flags;
    CUtensorMap xmap;
    *e = wf_xmap(a, bn, &xmap);
    if (*e != cudaSuccess)
        return true;
    *e = bn == 256 ? wf_sk_launch_bn<T, 256>(c, a, blocks, xmap)
       : bn == 192 ? wf_sk_launch_bn<T, 192>(c, a, blocks, xmap)
                   : wf_sk_launch_bn<T, 128>(c, a, blocks, xmap);
    return true;
}

template <typename T>
cudaError_t pgd_cuda__wq_fold_run(struct pgd_cuda_ctx *c, wg_args<T> &a,
                                  const struct wq_fold_plan &p)
{
    cudaError_t sk_e = cudaSuccess;
    if (p.sk && wf_sk_run<T>(c, a, p.bn, &sk_e))
        return sk_e;
    /* a stream-K plan where it cannot run (its part sums first met inside a capture, no
     * TMA): the plain kernel's unsplit plan of its tile */
    a.ks = p.sk ? 1 : p.ks;
    a.kps = p.sk ? a.kts : p.kps;
    CUtensorMap xmap;                /* x by TMA (wf_tma), else unread by the kernel */
    if (!p.ws && wf_tma(p.bn, a.n)) {
        const cudaError_t e = wf_xmap(a, p.bn, &xmap);
        return e != cudaSuccess ? e : wf_launch_plain<T, false, true>(c, a, p, xmap);
    }
    memset(&xmap, 0, sizeof xmap);
    /* x's rows past n skipped but for 64-token tiles all full: where a tile is part-empty
     * the skipping instance made the 8B step 4-10% faster at 32, 96, 128 and 192 rows
     * (H100), and it was 3-4% faster with 128-token tiles all full (128 rows), 2% slower
     * with 64-token tiles all full (64 rows, two calls; PERFORMANCE.md). The cause of the
     * last two is not known. PGD_CUDA_WQ_FOLD_XSKIP=0 or 1 forces one instance. */
    const int xskip = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_XSKIP", -1);
    if (xskip == 1 || (xskip != 0 && (p.bn != 64 || a.n % 64 != 0)))
        return p.ws ? wf_launch<T, true, true>(c, a, p.bn, false, xmap)
                    : wf_launch_plain<T, true, false>(c, a, p, xmap);
    return p.ws ? wf_launch<T, true, false>(c, a, p.bn, false, xmap)
                : wf_launch_plain<T, false, false>(c, a, p, xmap);
}
template cudaError_t pgd_cuda__wq_fold_run<__nv_bfloat16>(struct pgd_cuda_ctx *,
                                                          wg_args<__nv_bfloat16> &,
                                                          const struct wq_fold_plan &);
template cudaError_t pgd_cuda__wq_fold_run<__half>(struct pgd_cuda_ctx *, wg_args<__half> &,
                                                   const struct wq_fold_plan &);

template <typename T>
cudaError_t pgd_cuda__wq_fold_go(struct pgd_cuda_ctx *c, wg_args<T> &a, struct wq_fold_plan *p)
{
    if (wf_forced() || !pgd_cuda__wq_fold_tuned<T>(c, a, p))
        *p = wf_pick(c, a.n, a.in, a.out);
    return pgd_cuda__wq_fold_run<T>(c, a, *p);
}
template cudaError_t pgd_cuda__wq_fold_go<__nv_bfloat16>(struct pgd_cuda_ctx *,
                                                         wg_args<__nv_bfloat16> &,
                                                         struct wq_fold_plan *);
template cudaError_t pgd_cuda__wq_fold_go<__half>(struct pgd_cuda_ctx *, wg_args<__half> &,
                                                  struct wq_fold_plan *);

void pgd_cuda__wq_fold_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                            char *buf, size_t len)
{
    struct wq_fold_plan p;
    if (wf_forced() || !pgd_cuda__wq_fold_tuned_plan(c, n, w->in, w->out, 1, w->group_size, &p))
        p = wf_pick(c, n, w->in, w->out);
    if (p.sk && wf_sk_able(p.bn, n)) {
        snprintf(buf, len, "fold-sk%d/%d/tma", p.bn, wf_sk_blocks(c, n, w->in, w->out, p.bn));
        return;
    }
    snprintf(buf, len, "fold%s%d/%d%s%s%s", p.ws ? "-ws" : "", p.bn, p.ks, p.one ? "/1sm" : "",
             !p.ws && wf_tma(p.bn, n) ? "/tma" : "", !p.ws && !wf_ahead() ? "/in-order" : "");
}
