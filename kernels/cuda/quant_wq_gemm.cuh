/* The pieces the fused W4A16 / W8A16 GEMMs share (internal to kernels/cuda): quant_wq_gemm.cu's
 * mma.sync and wgmma kernels, which multiply the exact q - zero and scale each group's sums,
 * and quant_wq_fold.cu's Hopper kernel, which folds the scales into the weights. Shapes,
 * layouts and a stage's shared memory are described at the top of quant_wq_gemm.cu: a block
 * computes 128 output features x BN tokens, the inputs by stages of 64, each stage
 * [W][x tile][meta] copied with cp.async; the epilogue adds the splits of a cluster. */
#ifndef PGD_KERNELS_CUDA_QUANT_WQ_GEMM_CUH
#define PGD_KERNELS_CUDA_QUANT_WQ_GEMM_CUH

#include "kernels/cuda/quant_wq.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/quant_mma.cuh"
#include "kernels/cuda/sm90.cuh"
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

#define WG_LAYERS 3                  /* wg_args' layers of one launch (q, k, v) */

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
    /* The folded GEMM only: layers > 1 runs that many layers of one x (q, k and v; the same
     * in, groups and permutation) as one grid, their feature tiles side by side: layer l's
     * from tile l_mb[l] (l_mb[0] 0, unused entries INT_MAX), with its own weights, meta,
     * bias, output and features; out and out_pad above are then the layers' tiles' sum (the
     * grid), and wf_layer gives a block its layer's fields. Every other kernel: layers 1. */
    int layers;
    int l_mb[WG_LAYERS], l_out[WG_LAYERS], l_out_pad[WG_LAYERS];
    const uint8_t *l_w[WG_LAYERS];
    const __half2 *l_meta[WG_LAYERS];
    const T *l_b[WG_LAYERS];
    T *l_y[WG_LAYERS];
    /* The folded GEMM's stream-K kernel only (quant_wq_fold.cu, wq_fold_sk_kernel): block
     * b's float32 sums of the part of a tile it starts with, at sk_part + b BN / 2 x 256
     * floats, and its flag sk_flags[b] (1 while they wait to be added, else 0). */
    float *sk_part;
    int *sk_flags;
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
/* {(q_lo - z) * s, (q_hi - z) * s} in T from the exact q - z pair d (16-bit), rounded once,
 * with the row's scale as fold_scale left it (made once a stage for the thread's two rows,
 * used by its 8 pairs of each). */
template <typename T> struct fold_scale;
template <> struct fold_scale<__half> {
    uint32_t s2;                     /* {s, s} */
    __device__ __forceinline__ void set(__half2 m)
    {
        const __half2 v = __low2half2(m);
        s2 = *reinterpret_cast<const uint32_t *>(&v);
    }
};
/* bf16: the fp16 scale s (11 significant bits) as hi + lo, hi its float32 truncated to bf16
 * and lo = s - hi (exact: at most 3 significant bits, the sign of s, -0 kept for a negative
 * s). Then (q - z) lo is exact in bf16 (|q - z| <= 16: at most 4 bits times 3), and one
 * bf16 fma (q - z) hi + (q - z) lo rounds (q - z) s exactly once, as widening to float32,
 * multiplying and rounding do: two instructions a pair in place of five. */
template <> struct fold_scale<__nv_bfloat16> {
    uint32_t hi2, lo2;               /* {hi, hi}, {lo, lo} */
    __device__ __forceinline__ void set(__half2 m)
    {
        const float s = __low2float(m);
        const uint32_t hb = __float_as_uint(s) & 0xFFFF0000u;
        const float lo = copysignf(s - __uint_as_float(hb), s);
        hi2 = (hb >> 16) * 0x10001u;
        lo2 = (__float_as_uint(lo) >> 16) * 0x10001u;
    }
};
template <typename T>
__device__ __forceinline__ uint32_t scale_pair(uint32_t d, const fold_scale<T> &f);
template <> __device__ __forceinline__ uint32_t scale_pair<__half>(uint32_t d,
                                                                   const fold_scale<__half> &f)
{
    /* fp16 q - z (|.| <= 16) times the fp16 scale: the exact product rounded once */
    __half2 r = __hmul2(*reinterpret_cast<const __half2 *>(&d),
                        *reinterpret_cast<const __half2 *>(&f.s2));
    return *reinterpret_cast<const uint32_t *>(&r);
}
template <> __device__ __forceinline__ uint32_t scale_pair<__nv_bfloat16>(
    uint32_t d, const fold_scale<__nv_bfloat16> &f)
{
    uint32_t p, r;                   /* p = (q - z) lo + -0: exact, its sign kept */
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(p) : "r"(d), "r"(f.lo2), "r"(0x80008000u));
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(d), "r"(f.hi2), "r"(p));
    return r;
}

/* What a thread's A fragments need of the meta of its two rows (g, g + 8) of an m16 tile. */
template <typename T, int WK, bool EXACT>
struct wg_rowz {
    uint32_t z[2];                   /* mma layout: {B + zero} pairs (quant_mma.cuh) */
    float c[2];                      /* plain, exact: -(2^23 + zero); fold: zero * scale */
    float s[2];                      /* the scales */
    fold_scale<T> f[2];              /* the scales as scale_pair takes them (mma layout, fold) */
    __device__ __forceinline__ void set(__half2 lo, __half2 hi)
    {
        if (WK == WG_MMA4 && !EXACT) {
            f[0].set(lo);
            f[1].set(hi);
        }
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
            const uint32_t v = nibble_pair<T>(word >> (4 * j));
            const uint32_t d = sub_pair<T>(v, z.z[j & 1]);
            A[j] = EXACT ? d : scale_pair<T>(d, z.f[j & 1]);
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
 * goes away. Every thread of every block calls it once (a block's other threads, a
 * producer's, call wg_epilogue_meet). */
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

/* ---- the Hopper path: wgmma with A from registers ----------------------------------------------- */
/* sm_90a (the files that use it are built for it where 90 is among the architectures:
 * kernels/cuda/local.mk): a warpgroup's wgmma.mma_async m64nBNk16 takes A (64 features x 16
 * inputs) from its four warps' registers, each warp's 16 rows in mma.sync's A fragment
 * layout (so the mma layout's words serve as they are), and B (16 inputs x BN tokens)
 * straight from the x tile in shared memory through a descriptor: the x tile's rows of 128 bytes with chunk c of row r at c ^ (r % 8),
 * 1024-byte aligned, are wgmma's 128-byte swizzle (K-major, 8-row groups 1024 bytes apart).
 * Two warpgroups (128 features) share each x tile. */
/* d (64 x BN float32, the warpgroup's accumulators) = A (registers) @ B (descriptor) + (accumulate ? d : 0). */
template <typename T, int BN> struct wgmma_op;
#ifdef PGD_SM90A
template <> struct wgmma_op<__nv_bfloat16, 256> {
    static __device__ __forceinline__ void run(float (&d)[128], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %132, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
                 "{%128, %129, %130, %131}, %133, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
template <> struct wgmma_op<__half, 256> {
    static __device__ __forceinline__ void run(float (&d)[128], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %132, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
                 "{%128, %129, %130, %131}, %133, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
template <> struct wgmma_op<__nv_bfloat16, 192> {
    static __device__ __forceinline__ void run(float (&d)[96], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %100, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95}, "
                 "{%96, %97, %98, %99}, %101, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
template <> struct wgmma_op<__half, 192> {
    static __device__ __forceinline__ void run(float (&d)[96], const uint32_t (&a)[4], uint64_t desc, int accumulate)
    {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %100, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95}, "
                 "{%96, %97, %98, %99}, %101, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(desc));
    }
};
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

/* The wgmma kernels' epilogue, once their last wgmmas are waited for: the warpgroups'
 * float32 accumulators v (a thread's 4 j + i: feature g, + 8 for i >= 2, of its warp's 16;
 * token 8 j + 2 t, + 1 for odd i) into the block's tile in shared memory at buf (the
 * pipeline's space, once its last copies have landed), then wg_store. */
template <typename T, int BN, int LD, int NA>
__device__ __forceinline__ void wg_wgmma_epilogue(const wg_args<T> &a, uint8_t *buf,
                                                  const float (&v)[NA], int n0, int m0)
{
    const int th = threadIdx.x, warp = th / 32, lane = th % 32, g = lane >> 2, t = lane & 3;
    cp_async_wait<0>();
    __syncthreads();
    float *so = reinterpret_cast<float *>(buf);
#pragma unroll
    for (int i = 0; i < NA; i++) {
        const int o = warp * 16 + g + ((i & 2) ? 8 : 0), tok = (i / 4) * 8 + 2 * t + (i & 1);
        so[tok * LD + o] = v[i];
    }
    __syncthreads();
    wg_store<T, BN, LD>(a, so, n0, m0, th);
}

/* The barriers of wg_wgmma_epilogue (two of the block, then two of the cluster when the
 * inputs are split), for a block's threads past WG_THREADS that hold no sums: a warp-
 * specialized kernel's producer, whose registers could not hold the epilogue's. */
__device__ __forceinline__ void wg_epilogue_meet(int ks)
{
    __syncthreads();
    __syncthreads();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (ks > 1) {
        cooperative_groups::this_cluster().sync();
        cooperative_groups::this_cluster().sync();
    }
#endif
}

/* A plan of the folded Hopper GEMM (quant_wq_fold.cu): bn tokens a tile, the inputs split
 * over a cluster of ks blocks of kps stages each, the warp-specialized kernel (ws) or the
 * plain one, whose 64-token block then asks for shared memory enough to hold an SM alone
 * (one) or lets two share it; or (sk) the stream-K kernel: one block an SM, each taking an
 * equal run of all the tiles' stages (ks 1). Every plan gives the same bits but for the
 * order in which the parts of a split tile meet. */
struct wq_fold_plan {
    int bn, ks, kps;
    bool ws, one, sk;
};

/* quant_wq_fold.cu: runs the folded GEMM on a (its n, in, out, layers and pointers set)
 * with the plan timed fastest for its shape and rows (quant_wq_fold_tune.cu), else the cost
 * model's; stores its split in a.ks / a.kps and the plan in *p. */
template <typename T>
cudaError_t pgd_cuda__wq_fold_go(struct pgd_cuda_ctx *c, wg_args<T> &a, struct wq_fold_plan *p);
/* Runs a with plan p (a.ks / a.kps set from it). */
template <typename T>
cudaError_t pgd_cuda__wq_fold_run(struct pgd_cuda_ctx *c, wg_args<T> &a,
                                  const struct wq_fold_plan &p);
/* Every plan that exists for n rows of an [out, in] grid (each kernel, tile and split the
 * model would weigh; the plain 64-token block alone on an SM too where one_too), at most
 * max, in the order of the model's estimates (least first), stream-K's (widest tile first)
 * after them: their count. */
int pgd_cuda__wq_fold_plans(const struct pgd_cuda_ctx *c, int n, int in, int out, bool one_too,
                            struct wq_fold_plan *plans, int max);

/* quant_wq_fold_tune.cu: the fold's plan chosen by measurement. For each dtype, grid (in,
 * out, layers, group size) and bucket of rows (64 a bucket: every tile's count of token
 * tiles is the bucket's), the first call outside a graph capture times every plan on its
 * own buffers and keeps the fastest; later calls of the bucket take it. True with *p set
 * when the bucket has a plan; false with tuning off (PAGODA_GEMM_TUNE=0), inside a capture
 * before the bucket was timed, or when nothing ran. */
template <typename T>
bool pgd_cuda__wq_fold_tuned(struct pgd_cuda_ctx *c, const wg_args<T> &a, struct wq_fold_plan *p);
/* The plan timed for n rows of that grid (any dtype), if any (for the speed probe). */
bool pgd_cuda__wq_fold_tuned_plan(const struct pgd_cuda_ctx *c, int n, int in, int out,
                                  int layers, int group_size, struct wq_fold_plan *p);

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

/* kernel(args...) over a's grid, token tiles of bn x feature tiles x splits, with `threads`
 * threads a block, smem bytes of dynamic shared memory (granted through `done` first) and
 * clusters of `cluster` blocks, on the context's stream (pgd_cuda__wq_launch_cfg). */
template <typename T, typename... P, typename... A>
static cudaError_t wg_launch(struct pgd_cuda_ctx *c, const wg_args<T> &a, int bn, int threads,
                             int smem, dim3 cluster, std::atomic<uint64_t> &done,
                             void (*kernel)(P...), const A &...args)
{
    cudaError_t e = wg_allow_smem(done, kernel, c->device, smem);
    if (e != cudaSuccess)
        return e;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    pgd_cuda__wq_launch_cfg(c,
                            dim3((unsigned)((a.n + bn - 1) / bn),
                                 (unsigned)((a.out + WG_BM - 1) / WG_BM), (unsigned)a.ks),
                            dim3((unsigned)threads), (size_t)smem, cluster, &cfg, attr);
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

#endif
