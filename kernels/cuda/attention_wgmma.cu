/* Paged prefill attention on Hopper's warpgroup MMA (wgmma, sm_90a): the 128-row blocks of
 * the tensor-core path (attention_mma.cu plans them: the same items, heads a block, context
 * splits and partials; attention.cu's planner is unchanged), FlashAttention-3 style.
 *
 * A block: 256 threads, two warpgroups of 64 query rows each, one item of tq tokens x hq
 * query heads sharing one KV head (R = tq x hq <= 128 rows; row r = token r / hq, head
 * r % hq, so every K/V tile gathered serves all the group's heads). Q [128 rows][D], and K
 * and V tiles of 128 keys, sit in shared memory in the 128-byte-swizzled layout wgmma reads
 * through descriptors (sm90.cuh): D / 64 sub-tiles of [rows][64 elements], row r's 16-byte
 * chunk c at chunk c ^ (r % 8). Every thread gathers its 16-byte chunks of Q (rows scattered
 * over tokens and heads) and of the paged K/V rows (through the block table: blocks of any
 * size) with cp.async into three buffers (225 KB of shared memory at head_dim 128; four at
 * 64), one barrier a tile.
 *
 * Per warpgroup and tile: S[64 x 128] = Q K^T by D / 16 wgmma m64n128k16 (both operands from
 * shared memory, K-major), float32 accumulators in registers; the online softmax on them in
 * base 2 with the scale folded into log2(e) (one FFMA and one ex2 a score, row max and sum
 * across the 4 lanes of a row by two shuffles); P rounded to the 16-bit dtype stays in
 * registers as the A operand of O[64 x D] += P V: wgmma m64n64k16 with A from registers and V
 * read MN-major (the keys are V's rows: transposed B), one per 64 output dims and 16 keys. The
 * S accumulators of 16 keys are exactly the A fragment of P (the m16n8 layouts of mma.sync, a
 * warp's 16 rows), so no shuffle. By default the warpgroup pipelines the two products
 * (FlashAttention-3's intra-warpgroup overlap): a tile's S = Q K^T is issued, then the
 * previous tile's O += P V behind it, and the tile's softmax runs while the tensor cores do
 * the latter; a V tile so stays in use one tile longer, and the loads run one tile ahead
 * instead of two.
 * PGD_CUDA_PREFILL_ATTN=wgmma-serial runs them one after the other (S, softmax, P V). A
 * warpgroup skips the tiles none of its rows sees (the causal upper triangle; the other
 * warpgroup's block may still need them) and masks only the tiles that cross one of its rows'
 * limits (the diagonal, a window's edge, a split's edge). The end writes each row from
 * registers: normalized to `out`, or the partials (accumulators, max, sum) to the split
 * scratch for pgd__attn_combine.
 *
 * An e4m3 cache (kv_fp8.cuh; the serial variant): cp.async brings each tile's raw bytes into
 * a staging buffer, one tile ahead; at the next tile each thread converts the chunks it
 * copied (exact in the 16-bit dtypes) into the swizzled tile before the barrier. The K scale
 * multiplies scale_log2, the V scale the output.
 *
 * Built for sm_90a only (local.mk compiles this file's 90 as 90a); elsewhere the kernel body
 * is empty and pgd__attn_wgmma_ok says no, so attention_mma.cu keeps the 128-row blocks on
 * its 8-warp mma.sync kernel. */
#include "kernels/cuda/attention_internal.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include "kernels/cuda/sm90.cuh"
#include <math.h>
#include <limits.h>
#include <atomic>

#define WG_BM 128                    /* query rows a block: two warpgroups of 64 */
#define WG_BN 128                    /* keys a tile */
#define WG_THREADS 256

/* Shared memory of a head_dim-D block: Q, then STAGES K tiles, then STAGES V tiles, each
 * D / 64 swizzled sub-tiles of [rows][128 bytes], 1024-byte aligned (+ room to align). PD
 * tiles are loaded ahead of the one computed: STAGES - 1, or STAGES - 2 with the pipelined
 * P V (OV), whose V stays in use one tile longer. An e4m3 cache (F8, serial): two tiles of
 * the 16-bit dtype and two staging buffers of the tile's raw K then V bytes
 * ([128 keys][D bytes] each), one tile loaded ahead. */
template <int D, bool OV, bool F8> struct wg_shape {
    static_assert(!(OV && F8), "the e4m3 cache takes the serial variant");
    static_assert(D == 64 || D == 128, "head_dim 64 or 128");
    static constexpr int DC = D / 64;                    /* 64-element sub-tiles a row */
    static constexpr int CPR = D / 8;                    /* 16-byte chunks a row */
    static constexpr int QBYTES = DC * WG_BM * 128;
    static constexpr int TBYTES = DC * WG_BN * 128;      /* one K or V tile */
    static constexpr int STAGES = F8 ? 2 : D == 128 ? 3 : 4;   /* 225 KB at D 128 (227 the most) */
    static constexpr int PD = F8 ? 1 : STAGES - 1 - (OV ? 1 : 0);
    static constexpr int SBYTES = F8 ? 2 * WG_BN * D : 0;      /* one staging buffer */
    static constexpr int BYTES = QBYTES + 2 * STAGES * TBYTES + 2 * SBYTES + 1024;
    static constexpr int TL8 = WG_BN * (D / 16) / WG_THREADS;  /* 16-byte e4m3 chunks a thread */
    static constexpr int QL = WG_BM * CPR / WG_THREADS;  /* Q chunks a thread loads */
    static constexpr int TL = WG_BN * CPR / WG_THREADS;  /* K (and V) chunks a thread a tile */
};

/* The most shared memory of any variant (the device must grant it). */
#define WG_MAX_BYTES                                                                          \
    (wg_shape<128, true, false>::BYTES > wg_shape<128, false, true>::BYTES                   \
         ? wg_shape<128, true, false>::BYTES                                                  \
         : wg_shape<128, false, true>::BYTES)

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

/* ---- the kernel -------------------------------------------------------------------------- */
template <typename T, typename C, int D, bool OV>
__global__ void __launch_bounds__(WG_THREADS, 1)
attn_wgmma_kernel(const __grid_constant__ attn_tc_kparams p)
{
#ifdef PGD_SM90A
    constexpr bool F8 = kv_fp8_t<C>::value;
    typedef wg_shape<D, OV, F8> S;
    extern __shared__ __align__(128) uint8_t wg_smem[];
    __shared__ int row_first[WG_BM], row_last[WG_BM], red[4][4];
    const uint32_t raw = smem_u32(wg_smem), q_s = (raw + 1023u) & ~1023u;
    const uint32_t k_s = q_s + S::QBYTES, v_s = k_s + S::STAGES * S::TBYTES;
    const uint32_t st_s = v_s + S::STAGES * S::TBYTES;   /* F8: the staging buffers */
    uint8_t *const gen = wg_smem + (q_s - raw);          /* q_s as a generic pointer */

    /* Items in reverse: in a prefill the late (longest) chunks start first. */
    const int4 item = p.items[gridDim.x - 1 - blockIdx.x];
    const int seq = item.x, t0 = item.y, nt = item.z;
    const int kvh = blockIdx.y / p.head_chunks;
    const int h0 = kvh * p.group + (blockIdx.y % p.head_chunks) * p.hq;
    const int R = nt * p.hq;                             /* <= 128 (the plan's tq) */
    const int split = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = tid >> 7;
    const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
    const int64_t kv_stride = (int64_t)p.KV * D;         /* between cache slots */
    const C *kc = (const C *)p.kc + (int64_t)kvh * D, *vc = (const C *)p.vc + (int64_t)kvh * D;

    /* Q rows (zeros past R), cp.async group 0. */
#pragma unroll
    for (int i = 0; i < S::QL; i++) {
        const int idx = tid + i * WG_THREADS, r = idx / S::CPR, cc = idx % S::CPR;
        const T *src = (const T *)p.q;
        const bool ok = r < R;
        if (ok)
            src += ((int64_t)(t0 + r / p.hq) * p.H + h0 + r % p.hq) * D + cc * 8;
        cp_async16(q_s + wg_swz(WG_BM, r, cc), src, ok);
    }
    cp_async_commit();

    /* Each row's keys (threads 0 .. 127, one row each; rows past R have none), reduced a
     * warp at a time: red[w] = {first key any row wants, last, first key every row wants,
     * last} over rows 32 w .. 32 w + 31 (rows past R left out of the last two; a row
     * without keys makes them empty, so that its warpgroup masks every tile). */
    const int split_lo = split * p.split_len, split_hi = split_lo + p.split_len - 1;
    if (tid < WG_BM) {
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
        if (lane == 0) {
            red[warp][0] = lo;
            red[warp][1] = hi;
            red[warp][2] = alo;
            red[warp][3] = ahi;
        }
    }
    __syncthreads();
    int kb = INT_MAX, ke = -1;                           /* the block's keys */
#pragma unroll
    for (int w = 0; w < 4; w++) {
        kb = min(kb, red[w][0]);
        ke = max(ke, red[w][1]);
    }
    /* This warpgroup's rows 64 wg .. 64 wg + 63: reduction warps 2 wg and 2 wg + 1. */
    const int wlo = min(red[2 * wg][0], red[2 * wg + 1][0]);
    const int whi = max(red[2 * wg][1], red[2 * wg + 1][1]);
    const int lo_all = max(red[2 * wg][2], red[2 * wg + 1][2]);
    const int hi_all = min(red[2 * wg][3], red[2 * wg + 1][3]);
    const int ntiles = ke >= kb ? (ke - kb) / WG_BN + 1 : 0;

    /* Key j's row offset in the caches (elements). */
    auto row_off = [&](int j) -> int64_t {
        const int blk = p.bs_shift >= 0 ? j >> p.bs_shift : j / p.block_size;
        return ((int64_t)table[blk] * p.block_size + (j - blk * p.block_size)) * kv_stride;
    };
    /* Buffer `buf` <- keys kb0 .. kb0 + 127 (zeros past ke: P is 0 there, V must be finite). */
    auto load_tile = [&](int buf, int kb0) {
        const uint32_t kd = k_s + buf * S::TBYTES, vd = v_s + buf * S::TBYTES;
#pragma unroll
        for (int i = 0; i < S::TL; i++) {
            const int idx = tid + i * WG_THREADS, jj = idx / S::CPR, cc = idx % S::CPR;
            const int j = kb0 + jj;
            const bool ok = j <= ke;
            const C *ksrc = kc, *vsrc = vc;
            if (ok) {
                const int64_t off = row_off(j) + cc * 8;
                ksrc += off;
                vsrc += off;
            }
            const uint32_t at = wg_swz(WG_BN, jj, cc);
            cp_async16(kd + at, ksrc, ok);
            cp_async16(vd + at, vsrc, ok);
        }
    };
    /* F8: staging buffer sb <- the raw bytes of keys kb0 .. kb0 + 127 (zeros past ke), then
     * (after the wait, each thread its own chunks: no barrier between) converted to T into
     * tile buffer `buf`. */
    auto load_stage = [&](int sb, int kb0) {
        const uint32_t kd = st_s + sb * S::SBYTES, vd = kd + WG_BN * D;
#pragma unroll
        for (int i = 0; i < S::TL8; i++) {
            const int idx = tid + i * WG_THREADS, jj = idx / (D / 16), ch = idx % (D / 16);
            const int j = kb0 + jj;
            const bool ok = j <= ke;
            const C *ksrc = kc, *vsrc = vc;
            if (ok) {
                const int64_t off = row_off(j) + ch * 16;
                ksrc += off;
                vsrc += off;
            }
            cp_async16(kd + jj * D + ch * 16, ksrc, ok);
            cp_async16(vd + jj * D + ch * 16, vsrc, ok);
        }
    };
    auto convert = [&](int sb, int buf) {
        const uint8_t *ks8 = gen + (st_s - q_s) + sb * S::SBYTES, *vs8 = ks8 + WG_BN * D;
        uint8_t *kd = gen + (k_s - q_s) + buf * S::TBYTES, *vd = gen + (v_s - q_s) + buf * S::TBYTES;
#pragma unroll
        for (int i = 0; i < S::TL8; i++) {
            const int idx = tid + i * WG_THREADS, jj = idx / (D / 16), ch = idx % (D / 16);
            const uint4 kr = *reinterpret_cast<const uint4 *>(ks8 + jj * D + ch * 16);
            const uint4 vr = *reinterpret_cast<const uint4 *>(vs8 + jj * D + ch * 16);
            const uint32_t a0 = wg_swz(WG_BN, jj, 2 * ch), a1 = wg_swz(WG_BN, jj, 2 * ch + 1);
            *reinterpret_cast<uint4 *>(kd + a0) = kv_cvt8<T>(make_uint2(kr.x, kr.y));
            *reinterpret_cast<uint4 *>(kd + a1) = kv_cvt8<T>(make_uint2(kr.z, kr.w));
            *reinterpret_cast<uint4 *>(vd + a0) = kv_cvt8<T>(make_uint2(vr.x, vr.y));
            *reinterpret_cast<uint4 *>(vd + a1) = kv_cvt8<T>(make_uint2(vr.z, vr.w));
        }
    };
    /* The first PD tiles, one cp.async group each (empty past the last tile: the counting
     * stays fixed). */
#pragma unroll
    for (int st = 0; st < S::PD; st++) {
        if (st < ntiles) {
            if constexpr (F8)
                load_stage(st, kb + st * WG_BN);
            else
                load_tile(st, kb + st * WG_BN);
        }
        cp_async_commit();
    }

    const int g = lane >> 2, c = lane & 3;
    const int r0 = wg * 64 + (warp & 3) * 16 + g;        /* this thread's rows: r0, r0 + 8 */
    const int first[2] = { row_first[r0], row_first[r0 + 8] };
    const int last[2] = { row_last[r0], row_last[r0 + 8] };
    float o[S::DC][32];
#pragma unroll
    for (int dc = 0; dc < S::DC; dc++)
#pragma unroll
        for (int i = 0; i < 32; i++)
            o[dc][i] = 0.0f;
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
    const uint64_t qd = sm90_desc_sw128(q_s + wg * 64 * 128);
    uint32_t pa[WG_BN / 16][4];                          /* P of the pending tile (OV) */
#pragma unroll
    for (int kj = 0; kj < WG_BN / 16; kj++)
        pa[kj][0] = pa[kj][1] = pa[kj][2] = pa[kj][3] = 0u;
    bool pend = false;
    uint32_t vprev = 0;

    /* One barrier a tile: after it, tile `it` (and Q) is in for every thread and visible to
     * the tensor cores, and both warpgroups are done with the buffer the load issued next
     * (tile it + PD) refills: tile it - 1's (serial) or it - 2's (OV: tile it - 1's P V may
     * still run). F8: each thread converts its chunks of tile it before the barrier, into
     * the buffer of tile it - 2, which both warpgroups finished before the last barrier. */
    for (int it = 0; it < ntiles; it++) {
        if constexpr (F8) {
            cp_async_wait<0>();
            convert(it & 1, it & 1);
        } else {
            cp_async_wait<S::PD - 1>();
        }
        sm90_fence_async_smem();
        __syncthreads();
        const int nx = it + S::PD;
        if (nx < ntiles) {
            if constexpr (F8)
                load_stage(nx & 1, kb + nx * WG_BN);
            else
                load_tile(nx % S::STAGES, kb + nx * WG_BN);
        }
        cp_async_commit();
        const int k0 = kb + it * WG_BN, buf = it % S::STAGES;
        if (whi < k0 || wlo > k0 + WG_BN - 1) {          /* warpgroup-uniform */
            if (OV)
                wg_flush<T, D>(o, pa, pend, vprev);
            continue;
        }
        const uint32_t kt = k_s + buf * S::TBYTES, vt = v_s + buf * S::TBYTES;
        if (k0 >= lo_all && k0 + WG_BN - 1 <= hi_all)
            wg_tile<T, D, OV, false>(qd, kt, vt, k0, o, pa, pend, vprev, m, l, first, last,
                                     p.scale_log2, c);
        else
            wg_tile<T, D, OV, true>(qd, kt, vt, k0, o, pa, pend, vprev, m, l, first, last,
                                    p.scale_log2, c);
    }
    if (OV)
        wg_flush<T, D>(o, pa, pend, vprev);
    cp_async_wait<0>();

    /* Each row from its 4 lanes' registers: sums completed, then normalized into `out` or the
     * partials into the split scratch. */
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
        l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
        const int r = r0 + 8 * hr;
        if (r >= R)
            continue;
        const int t = t0 + r / p.hq, h = h0 + r % p.hq;
        if (p.n_splits == 1) {
            const float inv = (l[hr] > 0 ? 1.0f / l[hr] : 0.0f) * (F8 ? p.v_scale : 1.0f);
            T *dst = (T *)p.out + ((int64_t)t * p.H + h) * D + 2 * c;
#pragma unroll
            for (int dc = 0; dc < S::DC; dc++)
#pragma unroll
                for (int n = 0; n < 8; n++)
                    *reinterpret_cast<uint32_t *>(dst + dc * 64 + n * 8) =
                        pack2<T>(o[dc][4 * n + 2 * hr] * inv, o[dc][4 * n + 2 * hr + 1] * inv);
        } else {
            float *part = p.part + (((int64_t)t * p.H + h) * p.n_splits + split) * (D + 2);
#pragma unroll
            for (int dc = 0; dc < S::DC; dc++)
#pragma unroll
                for (int n = 0; n < 8; n++)
                    *reinterpret_cast<float2 *>(part + dc * 64 + n * 8 + 2 * c) =
                        make_float2(o[dc][4 * n + 2 * hr] * (F8 ? p.v_scale : 1.0f),
                                    o[dc][4 * n + 2 * hr + 1] * (F8 ? p.v_scale : 1.0f));
            if (c == 0) {
                part[D] = m[hr];
                part[D + 1] = l[hr];
            }
        }
    }
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- host side ---------------------------------------------------------------------------- */
/* Whether the sm_90a code runs on c's device: compute capability 9.0, the kernel built for
 * it (binary version 90) and room for its shared memory. Asked once a device (bit masks of
 * devices 0..63). */
static bool device_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return sm90_once(asked, able, c->device, [c] {
        int optin = 0;
        cudaFuncAttributes fa;
        return sm90_kernel_built(c->device,
                                 attn_wgmma_kernel<__nv_bfloat16, __nv_bfloat16, 128, true>, &fa) &&
               cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                      c->device) == cudaSuccess &&
               (size_t)optin >= fa.sharedSizeBytes + WG_MAX_BYTES;
    });
}

static bool shape_ok(enum pgd_dtype dt, int D)
{
    return (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16) && (D == 64 || D == 128);
}

bool pgd__attn_wgmma_ok(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a)
{
    return shape_ok(a->dtype, a->p.head_dim) && a->p.n_kv_heads > 0 &&
           a->p.n_heads % a->p.n_kv_heads == 0 && device_ok(c);
}

extern "C" int pgd_cuda_attention_wgmma_available(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                                  int D, int fp8)
{
    (void)fp8;                       /* an e4m3 cache has a kernel too */
    return shape_ok(dt, D) && device_ok(c);
}

/* Dynamic shared memory past 48 KB is granted per kernel and device, once. */
template <typename T, typename C, int D, bool OV>
static cudaError_t launch(struct pgd_cuda_ctx *c, const attn_tc_kparams &kp, dim3 grid, int *bytes)
{
    static std::atomic<uint64_t> done(0);
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    *bytes = wg_shape<D, OV, kv_fp8_t<C>::value>::BYTES;
    if (!bit || !(done.load() & bit)) {
        cudaError_t e = cudaFuncSetAttribute(attn_wgmma_kernel<T, C, D, OV>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, *bytes);
        if (e != cudaSuccess)
            return e;
        done.fetch_or(bit);
    }
    attn_wgmma_kernel<T, C, D, OV><<<grid, WG_THREADS, *bytes, c->stream>>>(kp);
    return cudaSuccess;
}

/* The variant for the cache and head dim: e4m3 serial, else pipelined (ov) or serial. */
template <typename T>
static cudaError_t launch_v(struct pgd_cuda_ctx *c, int D, bool fp8, bool ov,
                            const attn_tc_kparams &kp, dim3 grid, int *bytes)
{
    if (fp8)
        return D == 64 ? launch<T, kv_e4m3, 64, false>(c, kp, grid, bytes)
                       : launch<T, kv_e4m3, 128, false>(c, kp, grid, bytes);
    if (ov)
        return D == 64 ? launch<T, T, 64, true>(c, kp, grid, bytes)
                       : launch<T, T, 128, true>(c, kp, grid, bytes);
    return D == 64 ? launch<T, T, 64, false>(c, kp, grid, bytes)
                   : launch<T, T, 128, false>(c, kp, grid, bytes);
}

int pgd__attn_wgmma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                        const int4 *items, int n_items, int n_splits, int split_len,
                        float *part, char *err, size_t errlen)
{
    const struct pgd_attn_params *p = &a->p;
    const int D = p->head_dim, group = p->n_heads / p->n_kv_heads;
    const bool fp8 = a->kv_fp8 != NULL, ov = !fp8 && !pgd__attn_wgmma_serial();
    int hq, tq, bytes = 0;
    pgd__attn_mma_shape(group, WG_BM, &hq, &tq);
    attn_tc_kparams kp = pgd__attn_tc_params(a, items, hq, n_splits, split_len, part);
    dim3 grid(n_items, p->n_kv_heads * kp.head_chunks, n_splits);
    cudaError_t e = a->dtype == PGD_DTYPE_BF16
                        ? launch_v<__nv_bfloat16>(c, D, fp8, ov, kp, grid, &bytes)
                        : launch_v<__half>(c, D, fp8, ov, kp, grid, &bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return pgd_cuda_failf(err, errlen, "attention (wgmma%s%s): shared memory of %d bytes: %s",
                              ov ? "" : ", serial", fp8 ? ", e4m3 cache" : "", bytes,
                              cudaGetErrorString(e));
    }
    if (n_splits > 1)
        pgd__attn_combine(c, a->dtype, part, items, n_items, p->n_heads, n_splits, D, a->out);
    PGD_CUDA_LAUNCHED(err, errlen, "attention (wgmma%s, 128 rows a block) %s%s [%d tokens, %d "
                      "seqs, %d heads / %d kv of %d, max len %d, %d items x %d splits]",
                      ov ? "" : ", serial", pgd_cuda_dt(a->dtype), fp8 ? " (e4m3 cache)" : "",
                      a->n_tokens, a->n_seqs,
                      p->n_heads, p->n_kv_heads, D, a->max_seq_len, n_items, n_splits);
    return 0;
}
