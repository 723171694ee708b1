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
#include "kernels/cuda/quant_wq.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/quant_mma.cuh"
#include <cooperative_groups.h>
#include <math.h>
#include <atomic>

#define WG_BM 128                    /* output features a block */
#define WG_BK 64                     /* inputs a stage */
#define WG_THREADS 256
/* Stages of the pipeline: as many as fit WG_PIPE_BYTES (two blocks an SM), 4 to 8: a block
 * streaming its share of a layer is bound by the bytes it has in flight (latency, not
 * bandwidth: each stage waits on loads issued STAGES - 1 stages before), so the narrow token
 * tiles, whose stages are small, run deeper */
#define WG_PIPE_BYTES (100 << 10)
#define WG_KS_MAX 8                  /* blocks a cluster splitting the inputs (portable limit) */
#define WG_KPS_MIN 4                 /* stages a split at least */
#define WG_META_BYTES (4 * WG_BM * 4)

enum { WG_MMA4 = 0, WG_PLAIN4 = 1, WG_PLAIN8 = 2 };

/* Bytes of a stage's weights, and of a padded row (plain layouts). */
template <int WK> struct wg_w;
template <> struct wg_w<WG_MMA4> { static constexpr int ROW = 0, BYTES = WG_BM / 16 * 512; };
template <> struct wg_w<WG_PLAIN4> { static constexpr int ROW = 48, BYTES = WG_BM * 48; };
template <> struct wg_w<WG_PLAIN8> { static constexpr int ROW = 80, BYTES = WG_BM * 80; };

template <int WK, int BN> struct wg_smem {
    static constexpr int X = wg_w<WK>::BYTES, META = X + BN * 128;
    static constexpr int STAGE = META + WG_META_BYTES;
    static constexpr int OUT_LD = WG_BM + 4;           /* floats a row of the output tile */
    static constexpr int FIT = WG_PIPE_BYTES / STAGE;
    static constexpr int STAGES = FIT < 4 ? 4 : FIT > 8 ? 8 : FIT;
    static constexpr int PIPE = STAGES * STAGE, OUT = BN * OUT_LD * 4;
    static constexpr int BYTES = PIPE > OUT ? PIPE : OUT;
};

template <typename T>
struct wg_args {
    const uint8_t *w;                /* the packed weights */
    const __half2 *meta;             /* [out_pad][groups] {scale, zero} */
    const T *x;                      /* [n][in], 16-byte aligned, canonical input order */
    const T *b;                      /* [out] or NULL */
    T *y;                            /* [n][out] */
    int n, in, out, out_pad, groups, group_size, gshift;   /* gshift: log2(group), or -1 */
    int kts;                         /* stages of 64 inputs: ceil(in / 64) */
    int ks, kps;                     /* splits of the inputs (blockIdx.z, one cluster), and
                                        stages a split (even; the last split may be short) */
    size_t wstride;                  /* bytes from a row (plain) / a 16-row tile (mma) to the next */
};

/* ---- the loads of one stage ---------------------------------------------------------------- */
/* A thread's share of every stage's copies, its addresses worked out once: stage kt's
 * sources are these plus kt's offset along the inputs, its destinations these plus the
 * stage's offset in shared memory.
 *   weights: mma layout: one 16-byte entry (tile th / 32, lane th % 32); plain 4 bits: row
 *     th / 2, chunk th % 2 (32 inputs); plain 8 bits: rows th / 4 and + 64, chunk th % 4
 *     (16 inputs);
 *   meta: row th % 128 for steps th / 128 and + 2 (4-byte copies);
 *   x: rows th / 8 + 32 i (i < BN / 32), chunk th % 8 (8 inputs), swizzled. */
template <typename T, int WK, int BN>
struct wg_loader {
    static constexpr int WN = WK == WG_PLAIN8 ? 2 : 1, XN = BN / 32;
    const uint8_t *w_src;            /* entry 0 at kt = 0 (entry 1: + 64 rows) */
    const __half2 *m_row;            /* meta row th % 128 */
    const T *x_src;                  /* row th / 8 at kt = 0 (row + 32 i: + 32 i in) */
    uint32_t w_dst, m_dst, x_dst;    /* offsets in a stage */
    int w_k, x_k;                    /* the chunk's first input at kt = 0 */
    uint32_t ok;                     /* bit i: x row i exists; bit 8 + i: weight row i; bit 16: meta row */

    __device__ __forceinline__ void init(const wg_args<T> &a, int m0, int n0, int th)
    {
        ok = 0;
        if (WK == WG_MMA4) {
            const int tile = m0 / 16 + th / 32;
            ok |= tile < a.out_pad / 16 ? 1u << 8 : 0u;
            w_src = a.w + (size_t)min(tile, a.out_pad / 16 - 1) * a.wstride + (th % 32) * 16;
            w_dst = (uint32_t)th * 16;
            w_k = 0;
        } else {
            const int per = WK == WG_PLAIN4 ? 2 : 4, r = th / per, p = th % per;
            const int kin = WK == WG_PLAIN4 ? 32 : 16;        /* inputs a 16-byte chunk */
#pragma unroll
            for (int i = 0; i < WN; i++)
                ok |= m0 + r + 64 * i < a.out ? 1u << (8 + i) : 0u;
            w_src = a.w + (size_t)min(m0 + r, a.out - 1) * a.wstride + p * 16;
            w_dst = (uint32_t)(r * wg_w<WK>::ROW + p * 16);
            w_k = p * kin;
        }
        const int mr = m0 + th % WG_BM;
        ok |= mr < a.out_pad ? 1u << 16 : 0u;
        m_row = a.meta + (size_t)min(mr, a.out_pad - 1) * a.groups;
        m_dst = (uint32_t)th * 4;
        const int xr = th / 8, c = th % 8;
#pragma unroll
        for (int i = 0; i < XN; i++)
            ok |= n0 + xr + 32 * i < a.n ? 1u << i : 0u;
        x_src = a.x + (size_t)min(n0 + xr, a.n - 1) * a.in + c * 8;
        x_dst = (uint32_t)(xr * 128 + ((c ^ (xr & 7)) << 4));
        x_k = c * 8;
    }

    /* The weights and meta of stage kt into the stage at shared address st. */
    __device__ __forceinline__ void load_w(const wg_args<T> &a, uint32_t st, int kt) const
    {
        const int k0 = kt * WG_BK;
        if (WK == WG_MMA4) {
            cp_async16(st + w_dst, w_src + (size_t)kt * 512, ok & (1u << 8));
        } else {
            const bool kin = k0 + w_k < a.in;
            const uint8_t *src = w_src + (size_t)k0 * (WK == WG_PLAIN4 ? 1 : 2) / 2;
#pragma unroll
            for (int i = 0; i < WN; i++)   /* row + 64 i: past out only when out < m0 + 128 */
                cp_async16(st + w_dst + i * 64 * wg_w<WK>::ROW,
                           (ok & (1u << (8 + i))) ? src + (size_t)64 * i * a.wstride : a.w,
                           kin && (ok & (1u << (8 + i))));
        }
        /* meta[s][r]: the {scale, zero} of row r for inputs k0 + 16 s .. + 15 */
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int kk = k0 + 16 * (threadIdx.x / WG_BM + 2 * i);
            const int gi = a.groups == 1 ? 0 : a.gshift >= 0 ? kk >> a.gshift : kk / a.group_size;
            const bool v = (ok & (1u << 16)) && kk < a.in;
            cp_async4(st + (uint32_t)wg_smem<WK, BN>::META + m_dst + i * 2 * WG_BM * 4,
                      v ? m_row + gi : a.meta, v);
        }
    }

    /* The x tile of stage kt into the stage at shared address st. */
    __device__ __forceinline__ void load_x(const wg_args<T> &a, uint32_t st, int kt) const
    {
        const int k0 = kt * WG_BK;
        const bool kin = k0 + x_k < a.in;
#pragma unroll
        for (int i = 0; i < XN; i++) {
            const bool v = kin && (ok & (1u << i));
            cp_async16(st + (uint32_t)wg_smem<WK, BN>::X + x_dst + i * 32 * 128,
                       v ? x_src + (size_t)32 * i * a.in + k0 : a.x, v);
        }
    }
};

/* ---- the A fragments of 16 inputs ------------------------------------------------------------ */
/* {(q_lo - z) * s, (q_hi - z) * s} in T from the exact q - z pair d (16-bit), rounded once. */
template <typename T> __device__ __forceinline__ uint32_t scale_pair(uint32_t d, __half2 m);
template <> __device__ __forceinline__ uint32_t scale_pair<__half>(uint32_t d, __half2 m)
{
    /* fp16 q - z (|.| <= 16) times the fp16 scale: the exact product rounded once */
    __half2 r = __hmul2(*reinterpret_cast<const __half2 *>(&d), __low2half2(m));
    return *reinterpret_cast<const uint32_t *>(&r);
}
template <> __device__ __forceinline__ uint32_t scale_pair<__nv_bfloat16>(uint32_t d, __half2 m)
{
    /* bf16 is float32's top half: widen, multiply by the float32 scale, round once */
    const float s = __low2float(m);
    return pack_pair<__nv_bfloat16>(__uint_as_float(d << 16) * s,
                                    __uint_as_float(d & 0xFFFF0000u) * s);
}

/* What a thread's A fragments need of the meta of its two rows (g, g + 8) of an m16 tile. */
template <typename T, int WK, bool EXACT>
struct wg_rowz {
    uint32_t z[2];                   /* mma layout: {B + zero} pairs (quant_mma.cuh) */
    float c[2];                      /* plain, exact: -(2^23 + zero); fold: zero * scale */
    float s[2];                      /* the scales */
    __half2 m[2];                    /* the meta as stored (mma layout, fold) */
    __device__ __forceinline__ void set(__half2 lo, __half2 hi)
    {
        m[0] = lo;
        m[1] = hi;
        s[0] = __low2float(lo);
        s[1] = __low2float(hi);
        if (WK == WG_MMA4) {
            z[0] = pair_of<T>(mma_magic<T>::BIAS + __high2float(lo));
            z[1] = pair_of<T>(mma_magic<T>::BIAS + __high2float(hi));
        } else if (EXACT) {
            c[0] = -(8388608.0f + __high2float(lo));
            c[1] = -(8388608.0f + __high2float(hi));
        } else {
            c[0] = __high2float(lo) * s[0];
            c[1] = __high2float(hi) * s[1];
        }
    }
};

/* The float 2^23 + f of a field f < 2^23 (its bits OR-ed into the mantissa). */
__device__ __forceinline__ float magic_f(uint32_t f) { return __uint_as_float(f | 0x4B000000u); }

/* A pair of plain-layout fields (2^23 + q each) as an A register: exact q - zero, or the
 * folded (q - zero) * scale rounded once. */
template <typename T, bool EXACT>
__device__ __forceinline__ uint32_t plain_pair(float lo, float hi, float s, float c)
{
    if (EXACT)                       /* 2^23 + q - (2^23 + z): exact, then exact in T */
        return pack_pair<T>(lo + c, hi + c);
    return pack_pair<T>(fmaf(lo - 8388608.0f, s, -c), fmaf(hi - 8388608.0f, s, -c));
}

/* A (mma fragment order: a0 row g inputs 2t, 2t+1; a1 row g + 8; a2 row g inputs 2t + 8,
 * 2t + 9; a3 row g + 8) for step s of the m16 tile whose first row in the stage is r, from
 * the stage's weights sw (plain) or the lane's word of the step (mma layout). */
template <typename T, int WK, bool EXACT>
__device__ __forceinline__ void wg_frag_a(const uint8_t *sw, uint32_t word, int r, int s, int g,
                                          int t, const wg_rowz<T, WK, EXACT> &z, uint32_t *A)
{
    if (WK == WG_MMA4) {
        /* word: nibble j + 4 e is register j's element e (quant_wq_mma.cu's packing) */
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t v = ((word >> (4 * j)) & 0x000F000Fu) | mma_magic<T>::BITS;
            const uint32_t d = sub_pair<T>(v, z.z[j & 1]);
            A[j] = EXACT ? d : scale_pair<T>(d, z.m[j & 1]);
        }
    } else if (WK == WG_PLAIN4) {
        /* a row's 16 inputs are words 2s (inputs 0..7) and 2s + 1 (8..15), nibble i input i */
        const uint2 lo = *reinterpret_cast<const uint2 *>(sw + (r + g) * wg_w<WK>::ROW + s * 8);
        const uint2 hi = *reinterpret_cast<const uint2 *>(sw + (r + g + 8) * wg_w<WK>::ROW + s * 8);
        const uint32_t w[4] = { lo.x >> (8 * t), hi.x >> (8 * t), lo.y >> (8 * t), hi.y >> (8 * t) };
#pragma unroll
        for (int j = 0; j < 4; j++)
            A[j] = plain_pair<T, EXACT>(magic_f(w[j] & 0xFu), magic_f((w[j] >> 4) & 0xFu),
                                        z.s[j & 1], z.c[j & 1]);
    } else {
        /* a row's 16 inputs are bytes 16 s .. 16 s + 15: inputs 2t, 2t + 1 are bytes
         * 2 (t % 2), + 1 of word t / 2 (+ 2 for inputs 2t + 8, 2t + 9); a byte permute puts
         * one under the exponent bits of 2^23 */
        const uint8_t *plo = sw + (r + g) * wg_w<WK>::ROW + s * 16 + 4 * (t >> 1);
        const uint8_t *phi = sw + (r + g + 8) * wg_w<WK>::ROW + s * 16 + 4 * (t >> 1);
        const uint32_t w[4] = { *reinterpret_cast<const uint32_t *>(plo),
                                *reinterpret_cast<const uint32_t *>(phi),
                                *reinterpret_cast<const uint32_t *>(plo + 8),
                                *reinterpret_cast<const uint32_t *>(phi + 8) };
        const uint32_t sel = 0x7540u | (uint32_t)(2 * (t & 1));   /* bytes: field, 0, 0, 0x4B */
#pragma unroll
        for (int j = 0; j < 4; j++)
            A[j] = plain_pair<T, EXACT>(__uint_as_float(__byte_perm(w[j], 0x4B000000u, sel)),
                                        __uint_as_float(__byte_perm(w[j], 0x4B000000u, sel + 1)),
                                        z.s[j & 1], z.c[j & 1]);
    }
}

/* y[tok, o .. o + 7] = v + b[o ..] (the features past out skipped): one 16-byte store where
 * out allows it (vec). */
template <typename T>
__device__ __forceinline__ void wg_store8(const wg_args<T> &a, const float (&v)[8], int tok, int o,
                                          bool vec)
{
    T *yr = a.y + (size_t)tok * a.out + o;
    if (vec) {                       /* out % 8 == 0: all 8 features exist */
        uint32_t p[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float b0 = a.b ? to_f<T>(a.b[o + 2 * e]) : 0.0f;
            const float b1 = a.b ? to_f<T>(a.b[o + 2 * e + 1]) : 0.0f;
            p[e] = pack_pair<T>(v[2 * e] + b0, v[2 * e + 1] + b1);
        }
        *reinterpret_cast<uint4 *>(yr) = make_uint4(p[0], p[1], p[2], p[3]);
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++)
            if (o + e < a.out)
                yr[e] = from_f<T>(v[e] + (a.b ? to_f<T>(a.b[o + e]) : 0.0f));
    }
}

/* y[n0 + tok, m0 + o] = so[tok][o] + b[m0 + o] for the block's BN x 128 tile (float32 in
 * shared memory, rows of LD floats), 8 features a thread at a time.
 * Split inputs (a.ks > 1, sm_90: the ks blocks of a cluster each hold their split's sums in
 * so at the same offset): the cluster meets, block r adds the ks tiles' units
 * [r U / ks, (r + 1) U / ks) of 8 features (U = BN * 16) in split order, through distributed
 * shared memory, and writes them; the cluster meets again before any block's shared memory
 * goes away. Every thread of every block calls it once. */
template <typename T, int BN, int LD>
__device__ __forceinline__ void wg_store(const wg_args<T> &a, const float *so, int n0, int m0, int th)
{
    constexpr int UNITS = BN * (WG_BM / 8);
    const bool vec = a.out % 8 == 0 && (uintptr_t)a.y % 16 == 0;
    int u0 = 0, u1 = UNITS;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    if (a.ks > 1) {
        cl.sync();
        const int r = (int)cl.block_rank(), per = (UNITS + a.ks - 1) / a.ks;
        u0 = min(UNITS, r * per);
        u1 = min(UNITS, u0 + per);
    }
#endif
    for (int idx = u0 + th; idx < u1; idx += WG_THREADS) {
        const int tl = idx / (WG_BM / 8), oc = idx % (WG_BM / 8) * 8;
        const int tok = n0 + tl, o = m0 + oc;
        if (tok >= a.n || o >= a.out)
            continue;
        float v[8] = {};
        for (int q = 0; q < a.ks; q++) {
            const float *sq = so;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
            if (a.ks > 1)
                sq = cl.map_shared_rank(so, q);
#endif
            const float4 v0 = *reinterpret_cast<const float4 *>(sq + tl * LD + oc);
            const float4 v1 = *reinterpret_cast<const float4 *>(sq + tl * LD + oc + 4);
            v[0] += v0.x; v[1] += v0.y; v[2] += v0.z; v[3] += v0.w;
            v[4] += v1.x; v[5] += v1.y; v[6] += v1.z; v[7] += v1.w;
        }
        wg_store8<T>(a, v, tok, o, vec);
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (a.ks > 1)
        cl.sync();
#endif
}

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

/* ---- the Hopper path: wgmma with A from registers ----------------------------------------------- */
/* sm_90a (the build compiles this file for it where 90 is among the architectures): a
 * warpgroup's wgmma.mma_async m64nBNk16 takes A (64 features x 16 inputs) from its four warps'
 * registers, each warp's 16 rows in mma.sync's A fragment layout (so the mma layout's words
 * serve as they are), and B (16 inputs x BN tokens) straight from the x tile in shared memory
 * through a descriptor: the x tile's rows of 128 bytes with chunk c of row r at c ^ (r % 8),
 * 1024-byte aligned, are wgmma's 128-byte swizzle (K-major, 8-row groups 1024 bytes apart).
 * Two warpgroups (128 features) share each x tile. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_WGMMA 1
#endif

/* The B descriptor of the x tile at shared address x (1024-byte aligned): start >> 4,
 * leading byte offset 16 (unused by the swizzled K-major layout), stride byte offset 1024
 * (the next 8 rows), 128-byte swizzle. Step s of 16 inputs starts 32 s bytes in. */
__device__ __forceinline__ uint64_t wg_desc(uint32_t x)
{
    return (uint64_t)((x & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

/* Keeps the compiler from moving reads or writes of r across the wgmma fence / wait. */
template <int N>
__device__ __forceinline__ void reg_fence(float (&r)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void reg_fence(uint32_t (&r)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(r[i])::"memory");
}

/* d (64 x BN float32, the warpgroup's accumulators) = A (registers) @ B (descriptor) + (accumulate ? d : 0). */
template <typename T, int BN> struct wgmma_op;
#ifdef WG_WGMMA
template <> struct wgmma_op<__nv_bfloat16, 128> {
    static __device__ __forceinline__ void run(float (&d)[64], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %68, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
                 "{%64, %65, %66, %67}, %69, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
template <> struct wgmma_op<__half, 128> {
    static __device__ __forceinline__ void run(float (&d)[64], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %68, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
                 "{%64, %65, %66, %67}, %69, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
template <> struct wgmma_op<__nv_bfloat16, 64> {
    static __device__ __forceinline__ void run(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                 "{%32, %33, %34, %35}, %37, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
template <> struct wgmma_op<__half, 64> {
    static __device__ __forceinline__ void run(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                 "{%32, %33, %34, %35}, %37, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
#endif

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
#ifdef WG_WGMMA
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
        const uint64_t desc = wg_desc(smem0 + (uint32_t)(stage * L::STAGE + L::X));
        const bool afresh = EXACT ? start : kt == 0;
#pragma unroll
        for (int s = 0; s < 4; s++)
            reg_fence(A[s]);
        reg_fence(acc);
        wgmma_fence();
#pragma unroll
        for (int s = 0; s < 4; s++)
            wgmma_op<T, BN>::run(acc, A[s], desc + (uint64_t)(2 * s), s > 0 || !afresh);
        wgmma_commit();
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
            wgmma_wait0();
            reg_fence(acc);
#pragma unroll
            for (int s = 0; s < 4; s++) {
                reg_fence(A0[s]);
                reg_fence(A1[s]);
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
            wgmma_wait0();
            reg_fence(acc);
#pragma unroll
            for (int s = 0; s < 4; s++)
                reg_fence(A0[s]);
            if (--gleft == 0) {
                scale_into_tot();
                gleft = gkts;
            }
        }
        if (gleft != gkts)           /* the split ends inside a group */
            scale_into_tot();
    }
    cp_async_wait<0>();
    __syncthreads();                 /* the pipeline's space becomes the output tile */
    float *so = reinterpret_cast<float *>(buf);
#pragma unroll
    for (int i = 0; i < NA; i++) {
        const int o = warp * 16 + g + ((i & 2) ? 8 : 0), tok = (i / 4) * 8 + 2 * t + (i & 1);
        so[tok * L::OUT_LD + o] = EXACT ? tot[i] : acc[i];
    }
    __syncthreads();
    wg_store<T, BN, L::OUT_LD>(a, so, n0, m0, th);
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- the host side ------------------------------------------------------------------------------- */
/* Dynamic shared memory past 48 KB is granted per function and device: once for each, at the
 * first launch there (`done`: a bit mask of devices 0..63, atomic: contexts of several devices
 * may launch from several threads). `done` belongs to one kernel: each wg_kernel
 * instantiation keeps its own (the kernels' pointer types are shared by every tile size and
 * layout of a dtype, so a mask keyed by the type would grant only the first kernel launched).
 * A library loaded twice (the tool and a plugin) has two copies of each kernel, each granted
 * by its own copy of this code. */
template <typename K>
static cudaError_t wg_allow_smem(std::atomic<uint64_t> &done, K kernel, int device, int bytes)
{
    const uint64_t bit = device >= 0 && device < 64 ? 1ull << device : 0;
    if (bit && (done.load() & bit))
        return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (e == cudaSuccess && bit)
        done.fetch_or(bit);
    return e;
}

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
        cudaError_t e = wg_allow_smem(granted, fn(), c->device, smem());
        if (e != cudaSuccess)
            return e;
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute attr[2];
        pgd_cuda__wq_launch_cfg(c,
                                dim3((unsigned)((a.n + BN - 1) / BN),
                                     (unsigned)((a.out + WG_BM - 1) / WG_BM), (unsigned)a.ks),
                                dim3(WG_THREADS), (size_t)smem(), dim3(1, 1, (unsigned)a.ks),
                                &cfg, attr);
        return cudaLaunchKernelEx(&cfg, fn(), a);
    }
};
template <typename T, int WK, bool EXACT, int BN, bool WGMMA>
std::atomic<uint64_t> wg_kernel<T, WK, EXACT, BN, WGMMA>::granted(0);
template <typename T, int WK, bool EXACT, int BN, bool WGMMA>
int wg_kernel<T, WK, EXACT, BN, WGMMA>::occ[64];

/* probe(c), asked once for each of devices 0..63 (bit masks of the devices asked and found
 * able; false past 63); a failed look-up inside it is no error of the caller's. */
static bool wg_once(std::atomic<uint64_t> &asked, std::atomic<uint64_t> &able,
                    const struct pgd_cuda_ctx *c, bool (*probe)(const struct pgd_cuda_ctx *))
{
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    if (!bit)
        return false;
    if (asked.load() & bit)
        return (able.load() & bit) != 0;
    const bool ok = probe(c);
    cudaGetLastError();
    if (ok)
        able.fetch_or(bit);
    asked.fetch_or(bit);
    return ok;
}

/* Whether the wgmma kernel runs on c's device: compute capability 9.0 and the sm_90a code in
 * the binary (the build had 90 among its architectures); PGD_CUDA_WQ_WGMMA=0 turns it off.
 * Asked once a device (bit masks of devices 0..63 asked and found able). */
static bool wg_wgmma_probe(const struct pgd_cuda_ctx *c)
{
    int major = 0, minor = 0;
    cudaFuncAttributes fa;
    return pgd_cuda__qenv_int("PGD_CUDA_WQ_WGMMA", 1) != 0 &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device) ==
               cudaSuccess &&
           cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, c->device) ==
               cudaSuccess &&
           major == 9 && minor == 0 &&
           cudaFuncGetAttributes(&fa, wq_gemm_wgmma_kernel<__nv_bfloat16, WG_MMA4, true, 128>) ==
               cudaSuccess &&
           fa.binaryVersion == 90;
}

static bool wg_wgmma_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return wg_once(asked, able, c, wg_wgmma_probe);
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
static bool wg_clusters_probe(const struct pgd_cuda_ctx *c)
{
    int major = 0;
    cudaFuncAttributes fa;
    return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device) ==
               cudaSuccess && major >= 9 &&
           cudaFuncGetAttributes(&fa, wq_gemm_kernel<__nv_bfloat16, WG_MMA4, true, 32>) ==
               cudaSuccess && fa.ptxVersion >= 90;
}

static bool wg_clusters_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return wg_once(asked, able, c, wg_clusters_probe);
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

template <typename T>
static int wg_run(struct pgd_cuda_ctx *c, const T *x, int n, const struct pgd_cuda_wq *w,
                  const T *b, T *y, bool allow_wgmma, char *err, size_t errlen)
{
    wg_args<T> a;
    a.w = reinterpret_cast<const uint8_t *>(w->w);
    a.meta = w->meta;
    a.x = x;
    a.b = b;
    a.y = y;
    a.n = n;
    a.in = w->in;
    a.out = w->out;
    a.out_pad = w->out_pad;
    a.groups = w->groups;
    a.group_size = w->group_size;
    a.gshift = (w->group_size & (w->group_size - 1)) == 0 ? __builtin_ctz((unsigned)w->group_size)
                                                           : -1;
    a.kts = (w->in + WG_BK - 1) / WG_BK;
    a.wstride = w->mma ? (size_t)(w->in / 64) * 512 : (size_t)w->in * w->bits / 8;
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

int pgd_cuda__wq_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                      const struct pgd_cuda_wq *w, const void *b, void *y, bool allow_wgmma,
                      char *err, size_t errlen)
{
    const size_t row_bytes = (size_t)w->in * 2;
    const bool stage = w->perm || (uintptr_t)x % 16 != 0;
    const int step = stage ? (int)(c->qscratch_bytes / row_bytes) : n;
    if (step < 1)
        return pgd_cuda_failf(err, errlen, "W%dA16 GEMM: a row of %d inputs exceeds the %zu-byte "
                              "scratch", w->bits, w->in, c->qscratch_bytes);
    for (int r0 = 0; r0 < n; r0 += step) {
        const int rows = n - r0 < step ? n - r0 : step;
        const void *xr = (const char *)x + (size_t)r0 * row_bytes;
        void *yr = (char *)y + (size_t)r0 * w->out * 2;
        if (stage) {                 /* act-order gather (or realignment) into the scratch */
            if (pgd_cuda__wq_gather(c, dt, xr, w->perm, rows, w->in, c->qscratch, err, errlen))
                return 1;
            xr = c->qscratch;
        }
        const int rc = dt == PGD_DTYPE_BF16
            ? wg_run<__nv_bfloat16>(c, (const __nv_bfloat16 *)xr, rows, w,
                                    (const __nv_bfloat16 *)b, (__nv_bfloat16 *)yr, allow_wgmma,
                                    err, errlen)
            : wg_run<__half>(c, (const __half *)xr, rows, w, (const __half *)b, (__half *)yr,
                             allow_wgmma, err, errlen);
        if (rc)
            return 1;
    }
    return 0;
}
