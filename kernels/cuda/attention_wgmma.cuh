/* The per-warpgroup pieces of the Hopper prefill attention kernels (attention_wgmma.cu:
 * two warpgroups sharing cp.async loads and one barrier a tile; attention_wgmma_ws.cu: a
 * producer warpgroup and two consumers over an mbarrier ring): the 128-byte-swizzled tile
 * layout, the wgmma instructions of S = Q K^T and O += P V, the online softmax, one tile of
 * a warpgroup (serial, or pipelined: the previous tile's P V behind this tile's S), the
 * rows' key ranges and the end that writes a warpgroup's rows. Internal to kernels/cuda;
 * the wgmma parts exist on sm_90a only (PGD_SM90A). */
#ifndef PGD_KERNELS_CUDA_ATTENTION_WGMMA_CUH
#define PGD_KERNELS_CUDA_ATTENTION_WGMMA_CUH

#include "kernels/cuda/attention_internal.cuh"
#include "kernels/cuda/sm90.cuh"
#include <limits.h>
#include <math.h>

#define WG_BM 128                    /* query rows a block: two warpgroups of 64 */
#define WG_BN 128                    /* keys a tile */

/* The byte offset of 16-byte chunk cc (elements 8 cc .. 8 cc + 7) of row r in a tile of
 * `rows` rows: sub-tile cc / 8, row r, chunk (cc % 8) ^ (r % 8). */
__device__ __forceinline__ uint32_t wg_swz(int rows, int r, int cc)
{
    return (uint32_t)((cc >> 3) * rows * 128 + r * 128 + (((cc & 7) ^ (r & 7)) << 4));
}

/* The descriptor of an MN-major 128-byte-swizzled operand at shared address a (1024-byte
 * aligned): rows of 64 elements along N (here V's dims), one row a k (a key), 8 k-rows 1024
 * bytes apart. An m64n64 instruction reads one 64-wide column of such rows, so only the
 * k-direction offset matters; both offset fields hold 1024. */
__device__ __forceinline__ uint64_t wg_desc_mn_sw128(uint32_t a)
{
    return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)(1024 >> 4) << 16) |
           ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

#ifdef PGD_SM90A
#define WG_F4(d, i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define WG_F16(d, i) WG_F4(d, i), WG_F4(d, i + 4), WG_F4(d, i + 8), WG_F4(d, i + 12)
#define WG_F32(d, i) WG_F16(d, i), WG_F16(d, i + 16)

/* d[64 x 128] (+)= a[64 x 16] b[16 x 128]^T: both from shared memory (descriptors), K-major;
 * acc = 0 overwrites d. */
#define WG_QK(TY)                                                                              \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                  \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " "                 \
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20," \
                 "%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39," \
                 "%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58," \
                 "%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"                         \
                 : WG_F32(d, 0), WG_F32(d, 32)                                                 \
                 : "l"(da), "l"(db), "r"(acc))
template <typename T>
static __device__ __forceinline__ void wg_qk(float (&d)[64], uint64_t da, uint64_t db, int acc);
template <>
__device__ __forceinline__ void wg_qk<__nv_bfloat16>(float (&d)[64], uint64_t da, uint64_t db,
                                                     int acc)
{
    WG_QK("bf16");
}
template <>
__device__ __forceinline__ void wg_qk<__half>(float (&d)[64], uint64_t da, uint64_t db, int acc)
{
    WG_QK("f16");
}

/* d[64 x 64] += a[64 x 16] (registers: the warp's 16 rows as mma.sync's A fragment)
 * b[16 x 64] (shared memory, MN-major: transposed). */
#define WG_PV(TY)                                                                              \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                  \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " "                  \
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20," \
                 "%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, "      \
                 "p, 1, 1, 1;\n}\n"                                                            \
                 : WG_F32(d, 0)                                                                \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))
template <typename T>
static __device__ __forceinline__ void wg_pv(float (&d)[32], const uint32_t (&a)[4], uint64_t db);
template <>
__device__ __forceinline__ void wg_pv<__nv_bfloat16>(float (&d)[32], const uint32_t (&a)[4],
                                                     uint64_t db)
{
    WG_PV("bf16");
}
template <>
__device__ __forceinline__ void wg_pv<__half>(float (&d)[32], const uint32_t (&a)[4], uint64_t db)
{
    WG_PV("f16");
}

/* Keeps the registers of P (the A operand of wgmmas in flight) from being reused before
 * the wait that follows them. */
template <int N> static __device__ __forceinline__ void wg_reg_fence_u(uint32_t (&r)[N][4])
{
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            asm volatile("" : "+r"(r[i][j])::"memory");
}

/* ---- one warpgroup, one tile ------------------------------------------------------------- *
 * Thread (warp w of the warpgroup, lane 4 g + c) holds rows 16 w + g and + 8 (hr 0, 1) of
 * the warpgroup's 64: first / last their keys, m their max (base 2, scaled), l this lane's
 * part of their sums, o[dc][4 n + e] their output dims 64 dc + 8 n + 2 c (+ 1 for odd e),
 * row hr = e / 2; s[4 n + e] their scores against key k0 + 8 n + 2 c (+ 1 for odd e). */

/* Issues S = Q K^T (one commit group): qd is the warpgroup's Q descriptor (sub-tile 0, its
 * first row), kt the tile's K; k16 step ks reads sub-tile ks / 4 at 32 (ks % 4) bytes into
 * its rows. */
template <typename T, int D>
static __device__ __forceinline__ void wg_issue_qk(float (&s)[WG_BN / 2], uint64_t qd,
                                                   uint32_t kt)
{
#pragma unroll
    for (int i = 0; i < WG_BN / 2; i++)
        s[i] = 0.0f;
    sm90_reg_fence(s);
    sm90_wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
        wg_qk<T>(s, qd + (uint64_t)((ks >> 2) * (WG_BM * 128 / 16) + 2 * (ks & 3)),
                 sm90_desc_sw128(kt + (ks >> 2) * WG_BN * 128) + (uint64_t)(2 * (ks & 3)),
                 ks > 0);
    sm90_wgmma_commit();
}

/* Issues O += P V (one commit group): pa is P as A fragments (keys 16 kj .. 16 kj + 15 in
 * pa[kj]), vt the tile's V; the 16 keys of step kj are V rows 16 kj .., 2048 kj bytes into
 * each sub-tile. pa and o must stay untouched until a wait retires the group. */
template <typename T, int D>
static __device__ __forceinline__ void wg_issue_pv(float (&o)[D / 64][32],
                                                   uint32_t (&pa)[WG_BN / 16][4], uint32_t vt)
{
#pragma unroll
    for (int dc = 0; dc < D / 64; dc++)
        sm90_reg_fence(o[dc]);
    wg_reg_fence_u(pa);
    sm90_wgmma_fence();
#pragma unroll
    for (int dc = 0; dc < D / 64; dc++)
#pragma unroll
        for (int kj = 0; kj < WG_BN / 16; kj++)
            wg_pv<T>(o[dc], pa[kj], wg_desc_mn_sw128(vt + dc * WG_BN * 128 + kj * 16 * 128));
    sm90_wgmma_commit();
}

/* After a wait that retired the PV group: o and pa are the thread's again. */
template <int D>
static __device__ __forceinline__ void wg_pv_done(float (&o)[D / 64][32],
                                                  uint32_t (&pa)[WG_BN / 16][4])
{
#pragma unroll
    for (int dc = 0; dc < D / 64; dc++)
        sm90_reg_fence(o[dc]);
    wg_reg_fence_u(pa);
}

/* The online softmax of the scores s (retired): masked when MASK (some key of the tile is
 * outside some row's range), s becomes the weights P, m and l move on, corr is the factor
 * of the rows' earlier accumulators. The max is taken on the raw scores (scale_log2 > 0),
 * each weight is exp2(s * scale_log2 - max * scale_log2). */
template <bool MASK>
static __device__ __forceinline__ void wg_softmax(float (&s)[WG_BN / 2], int k0, float (&m)[2],
                                                  float (&l)[2], float (&corr)[2],
                                                  const int (&first)[2], const int (&last)[2],
                                                  float scale_log2, int c)
{
    float mx[2] = { -INFINITY, -INFINITY };
#pragma unroll
    for (int n = 0; n < WG_BN / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int hr = e >> 1;
            if (MASK) {
                const int j = k0 + 8 * n + 2 * c + (e & 1);
                if (j < first[hr] || j > last[hr])
                    s[4 * n + e] = -INFINITY;
            }
            mx[hr] = fmaxf(mx[hr], s[4 * n + e]);
        }
    float base[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 1));
        mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 2));
        const float m_new = fmaxf(m[hr], mx[hr] * scale_log2);
        base[hr] = m_new == -INFINITY ? 0.0f : m_new;   /* a row with no key yet stays 0 */
        corr[hr] = fast_exp2(m[hr] - base[hr]);
        m[hr] = m_new;
    }
    float rs[2] = { 0.0f, 0.0f };
#pragma unroll
    for (int i = 0; i < WG_BN / 2; i++) {
        const float pv = fast_exp2(fmaf(s[i], scale_log2, -base[(i >> 1) & 1]));
        s[i] = pv;
        rs[(i >> 1) & 1] += pv;
    }
    l[0] = l[0] * corr[0] + rs[0];
    l[1] = l[1] * corr[1] + rs[1];
}

/* o *= corr (per row), then P (s) rounded to T as A fragments: keys 16 kj .. 16 kj + 15 are
 * accumulators 8 kj .. 8 kj + 7 (mma.sync's m16n8 C layout is its m16k16 A layout). */
template <typename T, int D>
static __device__ __forceinline__ void wg_rescale_pack(float (&o)[D / 64][32],
                                                       const float (&corr)[2],
                                                       const float (&s)[WG_BN / 2],
                                                       uint32_t (&pa)[WG_BN / 16][4])
{
#pragma unroll
    for (int dc = 0; dc < D / 64; dc++)
#pragma unroll
        for (int i = 0; i < 32; i++)
            o[dc][i] *= corr[(i >> 1) & 1];
#pragma unroll
    for (int kj = 0; kj < WG_BN / 16; kj++) {
        pa[kj][0] = pack2<T>(s[8 * kj + 0], s[8 * kj + 1]);
        pa[kj][1] = pack2<T>(s[8 * kj + 2], s[8 * kj + 3]);
        pa[kj][2] = pack2<T>(s[8 * kj + 4], s[8 * kj + 5]);
        pa[kj][3] = pack2<T>(s[8 * kj + 6], s[8 * kj + 7]);
    }
}

/* One tile of the warpgroup, K at kt and V at vt (keys k0 ..). OV (the intra-warpgroup
 * pipeline, FlashAttention-3's): the previous tile's O += P V (pend: its V at vprev, P in
 * pa; else pa is 0 and this tile's V stands in, adding nothing) goes to the tensor cores
 * right behind this tile's S = Q K^T, so that this tile's softmax runs while it multiplies;
 * this tile's own P V is left pending (its V buffer must stay put until the next tile's
 * wait). The issue and wait sequence is the same every tile: a wgmma behind a data-dependent
 * branch makes ptxas serialize them all. Serial: S, softmax, P V, each waited. */
template <typename T, int D, bool OV, bool MASK>
static __device__ __forceinline__ void wg_tile(uint64_t qd, uint32_t kt, uint32_t vt, int k0,
                                               float (&o)[D / 64][32],
                                               uint32_t (&pa)[WG_BN / 16][4], bool &pend,
                                               uint32_t &vprev, float (&m)[2], float (&l)[2],
                                               const int (&first)[2], const int (&last)[2],
                                               float scale_log2, int c)
{
    float s[WG_BN / 2], corr[2];
    wg_issue_qk<T, D>(s, qd, kt);
    if (OV) {
        wg_issue_pv<T, D>(o, pa, pend ? vprev : vt);
        sm90_wgmma_wait<1>();                            /* S is in; P V may still run */
    } else {
        sm90_wgmma_wait<0>();
    }
    sm90_reg_fence(s);
    wg_softmax<MASK>(s, k0, m, l, corr, first, last, scale_log2, c);
    if (OV) {
        sm90_wgmma_wait<0>();
        wg_pv_done<D>(o, pa);
    }
    wg_rescale_pack<T, D>(o, corr, s, pa);
    if (OV) {
        pend = true;
        vprev = vt;
    } else {
        wg_issue_pv<T, D>(o, pa, vt);
        sm90_wgmma_wait<0>();
        wg_pv_done<D>(o, pa);
    }
}

/* OV: retires the pending P V (before the end, or before a tile the warpgroup skips, whose
 * next load may refill that V's buffer); pa becomes 0. */
template <typename T, int D>
static __device__ __forceinline__ void wg_flush(float (&o)[D / 64][32],
                                                uint32_t (&pa)[WG_BN / 16][4], bool &pend,
                                                uint32_t vprev)
{
    if (!pend)
        return;
    wg_issue_pv<T, D>(o, pa, vprev);
    sm90_wgmma_wait<0>();
    wg_pv_done<D>(o, pa);
#pragma unroll
    for (int kj = 0; kj < WG_BN / 16; kj++)
        pa[kj][0] = pa[kj][1] = pa[kj][2] = pa[kj][3] = 0u;
    pend = false;
}
#endif

/* ---- a block's rows and keys ------------------------------------------------------------ */
/* Row `tid` (0 .. 127; one thread each, the four warps 0 .. 3 of the block) of a block of R
 * rows from token t0 (row r = token r / hq), context split `split`: its first and last key
 * into row_first / row_last (rows past R have none), reduced a warp at a time: red[w] =
 * {first key any row wants, last, first key every row wants, last} over rows 32 w .. 32 w +
 * 31 (rows past R left out of the last two; a row without keys makes them empty, so that
 * its warpgroup masks every tile). A barrier must follow before red is read. */
static __device__ __forceinline__ void wg_row_ranges(const attn_tc_kparams &p, int R, int t0,
                                                     int split, int tid, int *row_first,
                                                     int *row_last, int (*red)[4])
{
    const int split_lo = split * p.split_len, split_hi = split_lo + p.split_len - 1;
    const bool valid = tid < R;
    int f = 1, la = 0;
    if (valid) {
        const int pos = p.positions[t0 + tid / p.hq];
        f = p.window > 0 ? max(0, pos - p.window + 1) : 0;
        f = max(f, split_lo);
        la = min(pos, split_hi);
    }
    row_first[tid] = f;
    row_last[tid] = la;
    const bool has = f <= la;
    int lo = has ? f : INT_MAX, hi = has ? la : -1;
    int alo = !valid ? INT_MIN : has ? f : INT_MAX, ahi = !valid ? INT_MAX : has ? la : INT_MIN;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
        alo = max(alo, __shfl_xor_sync(0xffffffffu, alo, o));
        ahi = min(ahi, __shfl_xor_sync(0xffffffffu, ahi, o));
    }
    if ((tid & 31) == 0) {
        red[tid >> 5][0] = lo;
        red[tid >> 5][1] = hi;
        red[tid >> 5][2] = alo;
        red[tid >> 5][3] = ahi;
    }
}

/* The block's keys kb .. ke (none: ke < kb) and those of warpgroup wg's rows 64 wg ..
 * 64 wg + 63 (reduction warps 2 wg and 2 wg + 1): wlo .. whi any of them wants, lo_all ..
 * hi_all every one wants (tiles inside need no mask). */
struct wg_span {
    int kb, ke, wlo, whi, lo_all, hi_all;
};
static __device__ __forceinline__ wg_span wg_spans(const int (*red)[4], int wg)
{
    wg_span s;
    s.kb = INT_MAX;
    s.ke = -1;
#pragma unroll
    for (int w = 0; w < 4; w++) {
        s.kb = min(s.kb, red[w][0]);
        s.ke = max(s.ke, red[w][1]);
    }
    s.wlo = min(red[2 * wg][0], red[2 * wg + 1][0]);
    s.whi = max(red[2 * wg][1], red[2 * wg + 1][1]);
    s.lo_all = max(red[2 * wg][2], red[2 * wg + 1][2]);
    s.hi_all = min(red[2 * wg][3], red[2 * wg + 1][3]);
    return s;
}

/* The end of a warpgroup: each of the thread's rows r0, r0 + 8 (of R; token t0 + r / hq,
 * head h0 + r % hq) from its 4 lanes' registers (lane 4 g + c), sums completed, then
 * normalized into `out` or the partials (accumulators, max, sum) into the split scratch.
 * F8: the accumulators take the V scale. */
template <typename T, int D, bool F8>
static __device__ __forceinline__ void wg_store(const attn_tc_kparams &p, float (&o)[D / 64][32],
                                                const float (&m)[2], float (&l)[2], int r0,
                                                int R, int t0, int h0, int split, int c)
{
    const float vs = F8 ? p.v_scale : 1.0f;
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
        l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
        const int r = r0 + 8 * hr;
        if (r >= R)
            continue;
        const int t = t0 + r / p.hq, h = h0 + r % p.hq;
        if (p.n_splits == 1) {
            const float inv = (l[hr] > 0 ? 1.0f / l[hr] : 0.0f) * vs;
            T *dst = (T *)p.out + ((int64_t)t * p.H + h) * D + 2 * c;
#pragma unroll
            for (int dc = 0; dc < D / 64; dc++)
#pragma unroll
                for (int n = 0; n < 8; n++)
                    *reinterpret_cast<uint32_t *>(dst + dc * 64 + n * 8) =
                        pack2<T>(o[dc][4 * n + 2 * hr] * inv, o[dc][4 * n + 2 * hr + 1] * inv);
        } else {
            float *part = p.part + (((int64_t)t * p.H + h) * p.n_splits + split) * (D + 2);
#pragma unroll
            for (int dc = 0; dc < D / 64; dc++)
#pragma unroll
                for (int n = 0; n < 8; n++)
                    *reinterpret_cast<float2 *>(part + dc * 64 + n * 8 + 2 * c) =
                        make_float2(o[dc][4 * n + 2 * hr] * vs, o[dc][4 * n + 2 * hr + 1] * vs);
            if (c == 0) {
                part[D] = m[hr];
                part[D + 1] = l[hr];
            }
        }
    }
}

#endif
