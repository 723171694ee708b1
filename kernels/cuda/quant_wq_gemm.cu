/* The fused W4A16 / W8A16 tensor-core GEMM (n past the GEMV's rows: batched decode, prefill):
 * y[n, out] = x[n, in] @ W^T + b straight from the packed weights, no dequantized copy.
 *
 * mma.sync m16n8k16 with the weights as A (output features x inputs) and x as B (inputs x
 * tokens), float32 accumulators. A block computes 128 features x BN tokens (BN 32, 64 or 128,
 * picked by n) with 8 warps in 4 x 2: a warp owns 32 features (2 m16 tiles) x BN / 2 tokens
 * (BN / 16 n8 tiles), so it dequantizes 8 A registers per 16 inputs and reuses each for
 * BN / 16 MMAs. The inputs go by in stages of 64, 4 to 8 deep (as many as ~100 KB hold):
 * each stage's weights, x tile and per-16-input {scale, zero} copied with cp.async (16
 * bytes; the meta 4) into shared memory while the tensor cores work on an earlier one.
 * Few tokens (n = 17..128, batched decode) or a narrow layer: a grid of one block a tile
 * leaves most SMs idle and each block's long chain of stages paced by load latency (the
 * H200 took ~1 us a stage: W4 q / o at n = 64 ran at 69.7 us against bf16's 19.8), so on
 * sm_90 each tile's inputs are split over a cluster of up to 8 blocks (blockIdx.z), which
 * add their float32 tiles through distributed shared memory in split order (deterministic)
 * and write y once; the plan (token tile, split, wgmma or mma.sync) is the one of least
 * estimated time (wg_pick).
 *
 * Shared memory, one stage: [W][x][meta]
 *   W, mma layout (4 bits, integer zeros; quant_wq.cuh): the 8 tiles' 512-byte blocks as
 *     stored; lane l's 16 bytes are its A fragments for the 4 steps of 16 inputs;
 *   W, plain layout: 128 rows of the stage's 32 (4 bits) or 64 (8 bits) bytes, each row
 *     padded by 16 bytes (48 / 80: the 8 rows a warp reads at once fall in distinct banks);
 *   x: BN rows of 64 inputs (128 bytes, 8 chunks of 16), chunk c of row r stored at
 *     c ^ (r % 8): ldmatrix's 8 row addresses hit 8 different bank groups;
 *   meta: [4 steps][128 rows] half2 {scale, zero} (the group of each 16-input step).
 * The A fragments, per 16 inputs, when the layer's zeros are integers (GPTQ's and AWQ's
 * always are): the exact integers q - zero in the dtype (mma layout: nibble pairs OR-ed into
 * 16-bit magic numbers minus the zero's, quant_mma.cuh; plain layouts: each field OR-ed into
 * the float 2^23, minus 2^23 + zero, packed), summed by the tensor cores into float32
 * accumulators that are multiplied by the group's scale at each group's end: the only
 * roundings are float32's (as the tensor-core GEMV). With real-valued zeros (plain layouts
 * only): (q - zero) * scale in float32 rounded once to the dtype, the same 16-bit weights the
 * dequantize + cuBLASLt path multiplies.
 * The epilogue stages the block's float32 tile in shared memory (the pipeline's space) and
 * writes y in 16-byte rows with the bias added in float32.
 * Act-order layers (and an x not 16-byte aligned) gather x through perm into the context's
 * scratch first (n x in elements: small next to the GEMM; 16-byte stores, the indices loaded
 * before the previous kernel ends), then run the same kernel: the checkpoint's groups were
 * made contiguous at load (the canonical layout sorts the inputs by group), so act-order
 * costs only the gather. */
#include "kernels/cuda/quant_wq_gemm.cuh"
#include <limits.h>

/* ---- the kernel -------------------------------------------------------------------------------- */
/* The group's sums (acc) times the rows' scales into the totals; acc starts afresh. */
template <int NT, typename Z>
__device__ __forceinline__ void wg_flush(float (&acc)[2][NT][4], float (&tot)[2][NT][4],
                                         const Z (&rz)[2])
{
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                tot[mt][nt][i] = fmaf(rz[mt].s[i >> 1], acc[mt][nt][i], tot[mt][nt][i]);
                acc[mt][nt][i] = 0.0f;
            }
}

template <typename T, int WK, bool EXACT, int BN>
__global__ void __launch_bounds__(WG_THREADS, BN <= 64 ? 2 : 1)
wq_gemm_kernel(const wg_args<T> a)
{
    typedef wg_smem<WK, BN> L;
    constexpr int NT = BN / 16;      /* n8 tiles a warp */
    extern __shared__ __align__(128) uint8_t wg_smem_buf[];
    const int th = threadIdx.x, warp = th / 32, lane = th % 32, g = lane >> 2, t = lane & 3;
    const int wm = warp % 4, wn = warp / 4;
    const int n0 = blockIdx.x * BN, m0 = blockIdx.y * WG_BM;
    /* the split's stages [kt0, kt0 + nkt) (all of them when ks is 1) */
    const int kt0 = blockIdx.z * a.kps, nkt = min(a.kts, kt0 + a.kps) - kt0;
    pdl_trigger();

    /* EXACT: acc sums the current group's exact integers; tot the scaled groups so far */
    float acc[2][NT][4], tot[2][NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[mt][nt][i] = tot[mt][nt][i] = 0.0f;

    /* The weights and meta of the first stages may load before the previous kernel is
     * done (nothing writes them); x only after. Group s holds stage s's x (group 0 also the
     * early weights), so waiting for group kt still finds stage kt complete. */
    const uint32_t smem0 = smem_u32(wg_smem_buf);
    wg_loader<T, WK, BN> ld;
    ld.init(a, m0, n0, th);
    for (int s = 0; s < L::STAGES - 1; s++)
        if (s < nkt)
            ld.load_w(a, smem0 + s * L::STAGE, kt0 + s);
    pdl_wait();
    for (int s = 0; s < L::STAGES - 1; s++) {
        if (s < nkt)
            ld.load_x(a, smem0 + s * L::STAGE, kt0 + s);
        cp_async_commit();
    }

    /* ldmatrix (x4: two n8 tiles, 16 inputs): lanes 0-7 address tokens +0..7, inputs
     * 16s..+7; 8-15 inputs +8..15; 16-31 the next 8 tokens likewise. Row r's chunk c sits at
     * c ^ (r % 8), and r % 8 = lane % 8 for every tile of the warp. */
    const uint32_t x_lane = (uint32_t)((wn * (BN / 2) + (lane & 7) + ((lane >> 4) << 3)) * 128);
    const uint32_t x_key = (uint32_t)(((lane >> 3) & 1) ^ (lane & 7));
    const int gsteps = a.group_size / 16;
    /* EXACT: 16-input steps left in the current group (a split may start inside one) */
    int left = gsteps - kt0 * 4 % gsteps;
    bool first = true;               /* the split's first step: its group's meta is read */
    wg_rowz<T, WK, EXACT> rz[2];

    for (int i = 0; i < nkt; i++) {
        cp_async_wait<L::STAGES - 2>();
        __syncthreads();             /* stage i landed; stage i - 1 is free to refill */
        const int nk = i + L::STAGES - 1;
        if (nk < nkt) {
            const uint32_t st = smem0 + (uint32_t)((nk % L::STAGES) * L::STAGE);
            ld.load_w(a, st, kt0 + nk);
            ld.load_x(a, st, kt0 + nk);
        }
        cp_async_commit();

        const int stage = i % L::STAGES;
        const uint8_t *st = wg_smem_buf + stage * L::STAGE;
        const __half2 *sm = reinterpret_cast<const __half2 *>(st + L::META);
        const uint32_t xa = smem0 + (uint32_t)(stage * L::STAGE + L::X) + x_lane;
        uint4 wv[2] = {};
        if (WK == WG_MMA4) {
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
                wv[mt] = *reinterpret_cast<const uint4 *>(st + (wm * 2 + mt) * 512 + lane * 16);
        }
#pragma unroll
        for (int s = 0; s < 4; s++) {
            uint32_t B[NT][2];
            const uint32_t xs = xa + ((((uint32_t)(2 * s)) ^ x_key) << 4);
#pragma unroll
            for (int j = 0; j < NT / 2; j++)
                ldsm_x4(&B[2 * j][0], xs + j * 16 * 128);   /* B[2j], B[2j + 1] */
            /* the rows' meta: at each group's start (exact), every step (fold) */
            if (!EXACT || left == gsteps || first) {
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int r = wm * 32 + mt * 16 + g;
                    rz[mt].set(sm[s * WG_BM + r], sm[s * WG_BM + r + 8]);
                }
                first = false;
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const uint32_t word = s == 0 ? wv[mt].x : s == 1 ? wv[mt].y : s == 2 ? wv[mt].z
                                                                                     : wv[mt].w;
                uint32_t A[4];
                wg_frag_a<T, WK, EXACT>(st, word, wm * 32 + mt * 16, s, g, t, rz[mt], A);
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    mma16816<T>(acc[mt][nt], A, B[nt]);
            }
            if (EXACT && --left == 0) {
                wg_flush<NT>(acc, tot, rz);   /* the group ends */
                left = gsteps;
            }
        }
    }
    /* (in is a multiple of the group: the last real step ended a group; past in, the
     * zero-filled steps added nothing; a split ending inside a group scales its part of the
     * group's sums, which the cluster adds) */
    if (EXACT && left != gsteps)
        wg_flush<NT>(acc, tot, rz);
    cp_async_wait<0>();
    __syncthreads();                 /* the pipeline's space becomes the output tile */

    /* accumulator i of (mt, nt): feature g (+ 8 for i >= 2), token 2t (+ 1 for odd i) */
    float *so = reinterpret_cast<float *>(wg_smem_buf);
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int o = wm * 32 + mt * 16 + g + (i >= 2 ? 8 : 0);
                const int tok = wn * (BN / 2) + nt * 8 + 2 * t + (i & 1);
                so[tok * L::OUT_LD + o] = EXACT ? tot[mt][nt][i] : acc[mt][nt][i];
            }
    __syncthreads();
    wg_store<T, BN, L::OUT_LD>(a, so, n0, m0, th);
}

/* Groups a multiple of 64 inputs, BN 64 or 128 tokens, any layout: warp w owns features
 * 16 w .. 16 w + 15 of the block (the mma layout's tile w), its warpgroup w / 4; its A
 * fragments are the mma.sync kernel's (wg_frag_a).
 * The pipeline is the mma.sync kernel's with the loads two stages ahead (of four buffers),
 * the wgmmas waited for every second stage (every stage when a group is an odd number of
 * stages). A stage's 4 steps (within one group:
 * groups are whole stages) go to the tensor cores as 4 wgmmas; at a group's end the warpgroup
 * waits for them and adds the sums times the rows' scales into the totals (the group's first
 * wgmma then starts the sums afresh). Real-valued zeros (!EXACT): the scales are in A, the
 * sums are the result. */
template <typename T, int WK, bool EXACT, int BN>
__global__ void __launch_bounds__(WG_THREADS, BN <= 64 ? 2 : 1)
wq_gemm_wgmma_kernel(const wg_args<T> a)
{
#ifdef PGD_SM90A
    typedef wg_smem<WK, BN> L;
    constexpr int PD = L::STAGES - 2;  /* stages loaded ahead (of STAGES buffers) */
    constexpr int NA = BN / 2;        /* accumulators a thread: BN / 8 n8 tiles x 4 */
    extern __shared__ __align__(128) uint8_t wg_smem_buf[];
    const uint32_t raw = smem_u32(wg_smem_buf), smem0 = (raw + 1023u) & ~1023u;
    uint8_t *buf = wg_smem_buf + (smem0 - raw);
    const int th = threadIdx.x, warp = th / 32, lane = th % 32, g = lane >> 2, t = lane & 3;
    const int n0 = blockIdx.x * BN, m0 = blockIdx.y * WG_BM;
    /* the split's stages [kt0, kt0 + nkt): kt0 even (kps is), so pairs of stages stay pairs
     * of the group when a group is an even number of stages */
    const int kt0 = blockIdx.z * a.kps, nkt = min(a.kts, kt0 + a.kps) - kt0;
    pdl_trigger();

    float acc[NA], tot[NA];
#pragma unroll
    for (int i = 0; i < NA; i++)
        acc[i] = tot[i] = 0.0f;

    wg_loader<T, WK, BN> ld;
    ld.init(a, m0, n0, th);
    for (int s = 0; s < PD; s++)
        if (s < nkt)
            ld.load_w(a, smem0 + s * L::STAGE, kt0 + s);
    pdl_wait();
    for (int s = 0; s < PD; s++) {
        if (s < nkt)
            ld.load_x(a, smem0 + s * L::STAGE, kt0 + s);
        cp_async_commit();
    }

    const int gkts = a.group_size / WG_BK;   /* stages a group */
    wg_rowz<T, WK, EXACT> rz;
    /* One stage: its loads ahead, its A fragments (into A), its 4 wgmmas, not waited for.
     * start: the stage starts a group (exact: its meta is read, its first wgmma starts the
     * sums afresh); folded, the meta is read every stage and only stage 0 starts afresh. */
    /* (kt: the stage's index in the split) */
    auto issue = [&](int kt, uint32_t (&A)[4][4], bool start) {
        cp_async_wait<PD - 1>();
        __syncthreads();             /* stage kt landed; the stage refilled below is free */
        const int nk = kt + PD;
        if (nk < nkt) {
            const uint32_t st = smem0 + (uint32_t)((nk % L::STAGES) * L::STAGE);
            ld.load_w(a, st, kt0 + nk);
            ld.load_x(a, st, kt0 + nk);
        }
        cp_async_commit();

        const int stage = kt % L::STAGES;
        const uint8_t *st = buf + stage * L::STAGE;
        if (!EXACT || start) {       /* the zeros and scales of rows g, g + 8 */
            const __half2 *sm = reinterpret_cast<const __half2 *>(st + L::META);
            rz.set(sm[warp * 16 + g], sm[warp * 16 + g + 8]);
        }
        uint4 wv = {};
        if (WK == WG_MMA4)
            wv = *reinterpret_cast<const uint4 *>(st + warp * 512 + lane * 16);
        const uint32_t words[4] = { wv.x, wv.y, wv.z, wv.w };
#pragma unroll
        for (int s = 0; s < 4; s++)
            wg_frag_a<T, WK, EXACT>(st, words[s], warp * 16, s, g, t, rz, A[s]);
        const uint64_t desc = sm90_desc_sw128(smem0 + (uint32_t)(stage * L::STAGE + L::X));
        const bool afresh = EXACT ? start : kt == 0;
#pragma unroll
        for (int s = 0; s < 4; s++)
            sm90_reg_fence(A[s]);
        sm90_reg_fence(acc);
        sm90_wgmma_fence();
#pragma unroll
        for (int s = 0; s < 4; s++)
            wgmma_op<T, BN>::run(acc, A[s], desc + (uint64_t)(2 * s), s > 0 || !afresh);
        sm90_wgmma_commit();
    };
    /* accumulator 4 j + i: feature g (+ 8 for i >= 2), token 8 j + 2 t (+ 1 for odd i) */
    auto scale_into_tot = [&]() {
#pragma unroll
        for (int i = 0; i < NA; i++)
            tot[i] = fmaf(rz.s[(i >> 1) & 1], acc[i], tot[i]);
    };
    uint32_t A0[4][4], A1[4][4];
    if (!EXACT || gkts % 2 == 0) {
        /* Stages by pairs (a group is whole pairs): the first stage's wgmmas run on while the
         * warps pass the second's barrier, issue its loads and dequantize its A (the other
         * register set); both are waited for after the second. The load two stages ahead
         * refills the buffer of the previous pair's first stage, done. */
        int gleft = gkts - kt0 % gkts;
        for (int kt = 0; kt < nkt; kt += 2) {
            issue(kt, A0, gleft == gkts || kt == 0);
            if (kt + 1 < nkt)
                issue(kt + 1, A1, false);
            sm90_wgmma_wait<0>();
            sm90_reg_fence(acc);
#pragma unroll
            for (int s = 0; s < 4; s++) {
                sm90_reg_fence(A0[s]);
                sm90_reg_fence(A1[s]);
            }
            if (EXACT && (gleft -= 2) <= 0) {
                scale_into_tot();
                gleft = gkts;
            }
        }
        if (EXACT && gleft != gkts)  /* the split ends inside a group: its part, scaled */
            scale_into_tot();
    } else {
        /* groups of an odd number of stages: each stage waited for, its group's end scaled */
        int gleft = gkts - kt0 % gkts;
        for (int kt = 0; kt < nkt; kt++) {
            issue(kt, A0, gleft == gkts || kt == 0);
            sm90_wgmma_wait<0>();
            sm90_reg_fence(acc);
#pragma unroll
            for (int s = 0; s < 4; s++)
                sm90_reg_fence(A0[s]);
            if (--gleft == 0) {
                scale_into_tot();
                gleft = gkts;
            }
        }
        if (gleft != gkts)           /* the split ends inside a group */
            scale_into_tot();
    }
    if constexpr (EXACT)
        wg_wgmma_epilogue<T, BN, L::OUT_LD>(a, buf, tot, n0, m0);
    else
        wg_wgmma_epilogue<T, BN, L::OUT_LD>(a, buf, acc, n0, m0);
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- the host side ------------------------------------------------------------------------------- */
/* One kernel of the family (mma.sync or wgmma, its layout, zeros and token tile): the
 * function, its shared memory (the wgmma kernel's gets 1024 bytes of room for aligning the
 * tiles), the devices that granted it, and its blocks an SM on each device (0: not asked). */
template <typename T, int WK, bool EXACT, int BN, bool WGMMA>
struct wg_kernel {
    static std::atomic<uint64_t> granted;
    static int occ[64];
    static void (*fn())(const wg_args<T>)
    {
        if constexpr (WGMMA)
            return wq_gemm_wgmma_kernel<T, WK, EXACT, BN>;
        else
            return wq_gemm_kernel<T, WK, EXACT, BN>;
    }
    static int smem() { return wg_smem<WK, BN>::BYTES + (WGMMA ? 1024 : 0); }
    /* Blocks an SM holds (at least 1), asked once a device. */
    static int blocks_sm(const struct pgd_cuda_ctx *c)
    {
        const int d = c->device;
        if (d >= 0 && d < 64 && occ[d] > 0)
            return occ[d];
        int nb = 0;
        if (wg_allow_smem(granted, fn(), d, smem()) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, fn(), WG_THREADS, smem()) !=
                cudaSuccess)
            nb = 1;
        cudaGetLastError();          /* a failed question is no error of the caller's */
        nb = nb < 1 ? 1 : nb;
        if (d >= 0 && d < 64)
            occ[d] = nb;
        return nb;
    }
    /* grid: token tiles x feature tiles x splits; the splits of a tile one cluster */
    static cudaError_t launch(struct pgd_cuda_ctx *c, const wg_args<T> &a)
    {
        return wg_launch(c, a, BN, WG_THREADS, smem(), dim3(1, 1, (unsigned)a.ks), granted,
                         fn(), a);
    }
};
template <typename T, int WK, bool EXACT, int BN, bool WGMMA>
std::atomic<uint64_t> wg_kernel<T, WK, EXACT, BN, WGMMA>::granted(0);
template <typename T, int WK, bool EXACT, int BN, bool WGMMA>
int wg_kernel<T, WK, EXACT, BN, WGMMA>::occ[64];

/* Whether the wgmma kernel runs on c's device: compute capability 9.0 and the sm_90a code in
 * the binary (the build had 90 among its architectures); PGD_CUDA_WQ_WGMMA=0 turns it off.
 * Asked once a device (bit masks of devices 0..63 asked and found able). */
static bool wg_wgmma_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return sm90_once(asked, able, c->device, [c] {
        return pgd_cuda__qenv_int("PGD_CUDA_WQ_WGMMA", 1) != 0 &&
               sm90_kernel_built(c->device,
                                 wq_gemm_wgmma_kernel<__nv_bfloat16, WG_MMA4, true, 128>);
    });
}

bool pgd_cuda__wq_gemm_int_zeros(const struct pgd_wq_host *h)
{
    /* |q - zero| <= 2^bits: an integer both 16-bit dtypes hold exactly */
    const int64_t n = h->in / h->group_size * h->out;
    const float zmax = (float)(1 << h->bits);
    for (int64_t i = 0; i < n; i++) {
        const float z = h->zeros[i];
        if (!(z >= 0.0f && z <= zmax) || z != floorf(z))
            return false;
    }
    return true;
}

/* Whether c's device runs the split kernels: clusters (compute capability 9.0 or later)
 * and the kernels' code built for sm_90 or later (their cluster reduction is compiled only
 * there; PTX of an older target run on a newer device would not have it). Asked once a
 * device. */
static bool wg_clusters_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return sm90_once(asked, able, c->device, [c] {
        int major = 0;
        cudaFuncAttributes fa;
        return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device) ==
                   cudaSuccess && major >= 9 &&
               cudaFuncGetAttributes(&fa, wq_gemm_kernel<__nv_bfloat16, WG_MMA4, true, 32>) ==
                   cudaSuccess && fa.ptxVersion >= 90;
    });
}

/* How a call runs: the token tile, the kernel, the inputs' split. */
struct wg_plan {
    int bn, ks, kps;
    bool wgmma;
};

/* Stages a split of ks takes: kts / ks rounded up to even (the wgmma kernel's pairs). */
static int wg_kps(int kts, int ks)
{
    const int k = (kts + ks - 1) / ks;
    return (k + 1) / 2 * 2;
}

/* The plan with the least estimated time: waves of blocks (as many an SM as it holds) times
 * a block's time, counted as its stages plus WG_COST_FIXED (the first loads' latency and the
 * epilogue; one more for a split's cluster reduction), each stage costing its tokens plus 32
 * (the weights' loads and dequantization, whatever the width).
 * Why split (H200): a block's stages are paced by the latency of its loads, not by the
 * bandwidth, so a layer of fewer blocks than the SMs hold (few tokens: n = 17..128, or a
 * narrow layer: q / o, down) streams at a fraction of the bandwidth. Splitting each tile's
 * inputs over a cluster of up to 8 blocks (their sums added through distributed shared
 * memory, in a fixed order) fills the SMs and shortens each block's chain of stages. */
#define WG_COST_FIXED 4
#define WG_SPLIT_MAX_N 128           /* the cost model below up to here; past it, see wg_pick */
template <typename T, int WK, bool EXACT>
static struct wg_plan wg_pick(struct pgd_cuda_ctx *c, int n, const struct pgd_cuda_wq *w,
                              bool allow_wgmma)
{
    const long mblocks = (w->out + WG_BM - 1) / WG_BM, sms = c->sm_count > 0 ? c->sm_count : 1;
    const int kts = (w->in + WG_BK - 1) / WG_BK;
    /* Hopper: groups of whole stages (so in is too), tiles of 64 or 128 tokens */
    const bool wgmma_ok = allow_wgmma && w->group_size % WG_BK == 0 && wg_wgmma_ok(c);
    const bool split_ok = wg_clusters_ok(c);
    /* PGD_CUDA_WQ_GEMM_BN = 32, 64 or 128 forces the token tile, PGD_CUDA_WQ_GEMM_KS = 1..8
     * the split (tests, measuring) */
    const int fbn = pgd_cuda__qenv_int("PGD_CUDA_WQ_GEMM_BN", 0);
    const int fks = pgd_cuda__qenv_int("PGD_CUDA_WQ_GEMM_KS", 0);
    const int want = fks == 1 || (fks > 1 && fks <= WG_KS_MAX && split_ok) ? fks : 0;
    auto blocks_sm = [&](int bn, bool wg) {
        return bn == 128 ? (wg ? wg_kernel<T, WK, EXACT, 128, true>::blocks_sm(c)
                               : wg_kernel<T, WK, EXACT, 128, false>::blocks_sm(c))
             : bn == 64 ? (wg ? wg_kernel<T, WK, EXACT, 64, true>::blocks_sm(c)
                              : wg_kernel<T, WK, EXACT, 64, false>::blocks_sm(c))
                        : wg_kernel<T, WK, EXACT, 32, false>::blocks_sm(c);
    };
    if (n > WG_SPLIT_MAX_N && fbn == 0 && fks == 0) {
        /* Past 128 tokens (H200): the token tile of least waves (one block an SM) x (tokens
         * + 32), unsplit; split in two only where that still fits one wave of the blocks
         * the SMs hold (q / o, down at n = 256: 49.8 -> 41.7 us, 138 -> 129). Crediting a
         * second block an SM or more splits here made qkv and gate_up at n = 256 slower
         * (59.8 -> 84.9, 236 -> 280 us): two blocks an SM compete for the tensor cores and
         * a narrower tile re-reads and re-dequantizes the weights. */
        int bn = 128;
        long bcost = -1;
        for (int b = 128; b >= 32; b /= 2) {
            const long blocks = mblocks * ((n + b - 1) / b);
            const long cost = (blocks + sms - 1) / sms * (b + 32);
            if (bcost < 0 || cost < bcost) {
                bn = b;
                bcost = cost;
            }
        }
        const bool wg = wgmma_ok && bn >= 64;
        const long tiles = mblocks * ((n + bn - 1) / bn);
        const int kps2 = wg_kps(kts, 2);
        const bool two = split_ok && tiles < sms && kps2 >= WG_KPS_MIN && kps2 < kts &&
                         2 * tiles <= sms * blocks_sm(bn, wg);
        return (struct wg_plan){ bn, two ? 2 : 1, two ? kps2 : kts, wg };
    }
    struct wg_plan best = { 128, 1, kts, false };
    long best_cost = -1;
    for (int bn = 128; bn >= 32; bn /= 2) {
        if ((fbn == 32 || fbn == 64 || fbn == 128) && bn != fbn)
            continue;
        const bool wg = wgmma_ok && bn >= 64;
        const int occ = blocks_sm(bn, wg);
        const long slots = sms * occ, tiles = mblocks * ((n + bn - 1) / bn);
        for (int ks0 = 1; ks0 <= WG_KS_MAX; ks0++) {
            if (want > 0 && ks0 != want)
                continue;
            int ks = 1, kps = kts;
            if (ks0 > 1) {
                if (!split_ok)
                    break;
                kps = wg_kps(kts, ks0);
                ks = (kts + kps - 1) / kps;   /* none empty */
                if (ks < 2 || (want == 0 && kps < WG_KPS_MIN))
                    continue;
            }
            const long blocks = tiles * ks;
            const long cost = (blocks + slots - 1) / slots * (WG_COST_FIXED + (ks > 1) + kps) *
                              (bn + 32);
            if (best_cost < 0 || cost < best_cost) {
                best = (struct wg_plan){ bn, ks, kps, wg };
                best_cost = cost;
            }
        }
    }
    return best;
}

template <typename T, int WK, bool EXACT>
static cudaError_t wg_launch_plan(struct pgd_cuda_ctx *c, const wg_args<T> &a,
                                  const struct wg_plan &p)
{
    if (p.wgmma)                     /* bn 64 or 128 */
        return p.bn == 128 ? wg_kernel<T, WK, EXACT, 128, true>::launch(c, a)
                           : wg_kernel<T, WK, EXACT, 64, true>::launch(c, a);
    return p.bn == 128 ? wg_kernel<T, WK, EXACT, 128, false>::launch(c, a)
         : p.bn == 64 ? wg_kernel<T, WK, EXACT, 64, false>::launch(c, a)
                      : wg_kernel<T, WK, EXACT, 32, false>::launch(c, a);
}

template <typename T, int WK, bool EXACT>
static cudaError_t wg_go(struct pgd_cuda_ctx *c, wg_args<T> &a, const struct pgd_cuda_wq *w,
                         bool allow_wgmma, struct wg_plan *p)
{
    *p = wg_pick<T, WK, EXACT>(c, a.n, w, allow_wgmma);
    a.ks = p->ks;
    a.kps = p->kps;
    return wg_launch_plan<T, WK, EXACT>(c, a, *p);
}

/* The fused GEMM's arguments for n rows of x through `count` layers w (1; 2..WG_LAYERS only
 * for the fold: one grid over their feature tiles, wg_args' layers). */
template <typename T>
static wg_args<T> wg_args_of(const T *x, int n, int count, const struct pgd_cuda_wq *const *w,
                             const void *const *b, void *const *y)
{
    wg_args<T> a;
    const struct pgd_cuda_wq *w0 = w[0];
    a.w = reinterpret_cast<const uint8_t *>(w0->w);
    a.meta = w0->meta;
    a.x = x;
    a.b = (const T *)b[0];
    a.y = (T *)y[0];
    a.n = n;
    a.in = w0->in;
    a.out = w0->out;
    a.out_pad = w0->out_pad;
    a.groups = w0->groups;
    a.group_size = w0->group_size;
    a.gshift = (w0->group_size & (w0->group_size - 1)) == 0
                   ? __builtin_ctz((unsigned)w0->group_size) : -1;
    a.kts = (w0->in + WG_BK - 1) / WG_BK;
    a.wstride = w0->mma ? (size_t)(w0->in / 64) * 512 : (size_t)w0->in * w0->bits / 8;
    a.layers = count;
    int mb = 0;
    for (int l = 0; l < WG_LAYERS; l++) {
        a.l_mb[l] = l < count ? mb : INT_MAX;
        a.l_w[l] = l < count ? reinterpret_cast<const uint8_t *>(w[l]->w) : NULL;
        a.l_meta[l] = l < count ? w[l]->meta : NULL;
        a.l_b[l] = l < count ? (const T *)b[l] : NULL;
        a.l_y[l] = l < count ? (T *)y[l] : NULL;
        a.l_out[l] = l < count ? w[l]->out : 0;
        a.l_out_pad[l] = l < count ? w[l]->out_pad : 0;
        if (l < count)
            mb += (w[l]->out + WG_BM - 1) / WG_BM;
    }
    if (count > 1)                   /* the grid: every layer's feature tiles */
        a.out = a.out_pad = mb * WG_BM;
    return a;
}

template <typename T>
static int wg_run(struct pgd_cuda_ctx *c, const T *x, int n, int count,
                  const struct pgd_cuda_wq *const *ws, const void *const *b, void *const *y,
                  enum wq_gemm_kind kind, char *err, size_t errlen)
{
    wg_args<T> a = wg_args_of<T>(x, n, count, ws, b, y);
    const struct pgd_cuda_wq *w = ws[0];
    if (kind == WQ_GEMM_FOLD) {      /* the caller checked pgd_cuda__wq_fold_ok */
        struct wq_fold_plan p = {};
        const cudaError_t e = pgd_cuda__wq_fold_go<T>(c, a, &p);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "W4A16 folded wgmma GEMM x [%d, %d] -> %d%s "
                                  "(%s kernel, %d-token tiles, inputs in %d splits): %s", n,
                                  w->in, a.out, count > 1 ? " (layers side by side)" : "",
                                  p.ws ? "warp-specialized" : "plain", p.bn, p.ks,
                                  cudaGetErrorString(e));
        return 0;
    }
    const bool allow_wgmma = kind == WQ_GEMM_EXACT;
    struct wg_plan p = {};
    cudaError_t e;
    if (w->mma)                      /* integer zeros 0..16 */
        e = wg_go<T, WG_MMA4, true>(c, a, w, allow_wgmma, &p);
    else if (w->bits == 4)
        e = w->int_zeros ? wg_go<T, WG_PLAIN4, true>(c, a, w, allow_wgmma, &p)
                         : wg_go<T, WG_PLAIN4, false>(c, a, w, allow_wgmma, &p);
    else
        e = w->int_zeros ? wg_go<T, WG_PLAIN8, true>(c, a, w, allow_wgmma, &p)
                         : wg_go<T, WG_PLAIN8, false>(c, a, w, allow_wgmma, &p);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "W%dA16 tensor-core GEMM x [%d, %d] -> %d (%s layout, "
                              "%d-token tiles, %s, inputs in %d splits): %s", w->bits, n, w->in,
                              w->out, w->mma ? "mma" : "plain", p.bn,
                              p.wgmma ? "wgmma" : "mma.sync", p.ks, cudaGetErrorString(e));
    return 0;
}

template <typename T, int WK, bool EXACT>
static void wg_describe(struct pgd_cuda_ctx *c, int n, const struct pgd_cuda_wq *w,
                        bool allow_wgmma, char *buf, size_t len)
{
    const struct wg_plan p = wg_pick<T, WK, EXACT>(c, n, w, allow_wgmma);
    snprintf(buf, len, "%s%d/%d", p.wgmma ? "wg" : "mma", p.bn, p.ks);
}

void pgd_cuda__wq_gemm_plan(struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                            bool allow_wgmma, char *buf, size_t len)
{
    typedef __nv_bfloat16 B;
    if (w->mma)
        wg_describe<B, WG_MMA4, true>(c, n, w, allow_wgmma, buf, len);
    else if (w->bits == 4)
        w->int_zeros ? wg_describe<B, WG_PLAIN4, true>(c, n, w, allow_wgmma, buf, len)
                     : wg_describe<B, WG_PLAIN4, false>(c, n, w, allow_wgmma, buf, len);
    else
        w->int_zeros ? wg_describe<B, WG_PLAIN8, true>(c, n, w, allow_wgmma, buf, len)
                     : wg_describe<B, WG_PLAIN8, false>(c, n, w, allow_wgmma, buf, len);
}

/* dst [rows][in] = x [rows][perm[k]] (perm NULL: x [rows][k], a realignment), 8 inputs a
 * thread stored as 16 bytes (in is a multiple of 8, dst 16-byte aligned). The perm indices
 * are loaded before the previous kernel has finished (they never change), so only x's
 * loads, all 8 in flight, wait on it. */
template <typename T>
__global__ void wg_gather_kernel(const T *__restrict__ x, const int32_t *__restrict__ perm,
                                 int rows, int in, T *__restrict__ dst)
{
    pdl_trigger();
    const int vr = in / 8;
    const size_t total = (size_t)rows * vr;
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const int r = (int)(i / vr), k = (int)(i % vr) * 8;
    int idx[8];
    wq_perm8(i < total ? perm : NULL, k, idx);
    pdl_wait();
    if (i >= total)
        return;
    *reinterpret_cast<uint4 *>(dst + (size_t)r * in + k) = wq_gather8<T>(x + (size_t)r * in, idx);
}

int pgd_cuda__wq_gather(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                        const int32_t *perm, int rows, int in, void *dst, char *err,
                        size_t errlen)
{
    if (pgd_cuda__wq_xg_take(c, dt, x, perm, rows, in, dst))
        return 0;                    /* the norm before wrote it there */
    const int64_t threads = (int64_t)rows * (in / 8);
    const dim3 grid((unsigned)((threads + 255) / 256)), block(256);
    const cudaError_t e =
        dt == PGD_DTYPE_BF16
            ? pgd_cuda_launch(c, wg_gather_kernel<__nv_bfloat16>, grid, block,
                              (const __nv_bfloat16 *)x, perm, rows, in, (__nv_bfloat16 *)dst)
            : pgd_cuda_launch(c, wg_gather_kernel<__half>, grid, block, (const __half *)x, perm,
                              rows, in, (__half *)dst);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "W4A16/W8A16 GEMM: staging x [%d, %d]%s: %s", rows, in,
                              perm ? " (act-order gather)" : "", cudaGetErrorString(e));
    return 0;
}

int pgd_cuda__wq_gemm_layers(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                             int count, const struct pgd_cuda_wq *const *w,
                             const void *const *b, void *const *y, enum wq_gemm_kind kind,
                             char *err, size_t errlen)
{
    if (count < 1 || count > WG_LAYERS || (count > 1 && kind != WQ_GEMM_FOLD))
        return pgd_cuda_failf(err, errlen, "W%dA16 GEMM: %d layers in one launch (1, or up to "
                              "%d for the folded GEMM)", w[0]->bits, count, WG_LAYERS);
    const struct pgd_cuda_wq *w0 = w[0];
    const size_t row_bytes = (size_t)w0->in * 2;
    const bool stage = w0->perm || (uintptr_t)x % 16 != 0;
    const int step = stage ? (int)(c->qscratch_bytes / row_bytes) : n;
    if (step < 1)
        return pgd_cuda_failf(err, errlen, "W%dA16 GEMM: a row of %d inputs exceeds the %zu-byte "
                              "scratch", w0->bits, w0->in, c->qscratch_bytes);
    for (int r0 = 0; r0 < n; r0 += step) {
        const int rows = n - r0 < step ? n - r0 : step;
        const void *xr = (const char *)x + (size_t)r0 * row_bytes;
        void *yr[WG_LAYERS];
        for (int l = 0; l < count; l++)
            yr[l] = (char *)y[l] + (size_t)r0 * w[l]->out * 2;
        if (stage) {                 /* act-order gather (or realignment) into the scratch */
            if (pgd_cuda__wq_gather(c, dt, xr, w0->perm, rows, w0->in, c->qscratch, err, errlen))
                return 1;
            xr = c->qscratch;
        }
        const int rc = dt == PGD_DTYPE_BF16
            ? wg_run<__nv_bfloat16>(c, (const __nv_bfloat16 *)xr, rows, count, w, b, yr, kind,
                                    err, errlen)
            : wg_run<__half>(c, (const __half *)xr, rows, count, w, b, yr, kind, err, errlen);
        if (rc)
            return 1;
    }
    return 0;
}

int pgd_cuda__wq_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                      const struct pgd_cuda_wq *w, const void *b, void *y,
                      enum wq_gemm_kind kind, char *err, size_t errlen)
{
    return pgd_cuda__wq_gemm_layers(c, dt, x, n, 1, &w, &b, &y, kind, err, errlen);
}
