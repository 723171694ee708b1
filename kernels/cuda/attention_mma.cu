/* Paged attention on the tensor cores (BF16/F16, head_dim 64 or 128), flash-attention style.
 *
 * It runs the general items attention.cu plans (the same items, context splits and partial
 * layout as its FMA kernel, attention_internal.cuh), decode rows among them when the call
 * sends them here rather than to attention_decode.cu. A block of W warps (4, or 8 for the
 * prefill shape) takes one item, one KV head and the hq query heads sharing it:
 * R = tokens x hq <= 16 W query rows, row r = token r / hq, head r % hq, so every K/V tile
 * gathered serves all R rows (grouped-query heads share the loads). Its keys ([min first,
 * max last] over the rows: causal limit, sliding window and split range per row) go by in
 * tiles of 64, gathered through the block table with cp.async into shared memory, STAGES
 * tiles in flight (2 with 4 warps: two blocks an SM; 3 with 8 warps: one block an SM), one
 * barrier a tile. The warps are spread over RG row groups of 16 rows x KS key slices
 * (RG x KS = W): with many rows KS = 1 (warp w owns rows 16w .. 16w+15 and every key of a
 * tile); with few (a decode row: one token's group of heads; the last tokens of a prompt;
 * a short prompt's small blocks) the KS warps of a row group each take 64 / KS keys of
 * every tile with their own softmax state, merged at the end.
 * A warp skips the tiles none of its rows sees (the causal upper triangle is never
 * computed; the block never loads a tile past its last row's key) and masks only the tiles
 * that cross one of its rows' limits (the diagonal, a window's edge, a split's edge).
 * Per warp and tile: S = Q K^T with mma.sync m16n8k16 (Q fragments kept in registers, K by
 * ldmatrix), online softmax in base 2 with the scale folded into log2(e) (one FFMA and one
 * ex2.approx a score; row max and sum in registers), P rounded to the 16-bit dtype and O += P V
 * (V by ldmatrix.trans), float32 accumulators. The end goes through shared memory:
 * normalized rows to `out`, or the partials (accumulators, max, sum) to the split scratch for
 * pgd__attn_combine.
 *
 * The 8-warp shape (128 rows: 32 tokens x 4 heads at Llama-3's group 4) halves the K/V bytes
 * gathered a FLOP against the 4-warp one; attention.cu picks it when a call's prefill rows
 * fill the SMs with 128-row blocks (pgd__attn_mma_rows).
 *
 * Shared memory rows are head_dim + 8 elements: the 16-byte pad puts the 8 rows an
 * ldmatrix reads in 8 different bank groups. sm_80 and later (mma.sync, ldmatrix, cp.async).
 *
 * An FP8 cache (kv_fp8.cuh): the kernel's cache element C is e4m3; the next tile's bytes are
 * read into registers before the current tile's math and converted to T into shared memory
 * after it (cp.async cannot convert; two buffers), the K scale multiplies scale_log2 and the
 * V scale the output. */
#include "kernels/cuda/attention_internal.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <atomic>

#define MMA_BN 64                    /* keys a tile */

/* W warps a block: 16 W query rows, STAGES K/V tiles in shared memory. */
template <int D, int W> struct mma_shape {
    static constexpr int THREADS = 32 * W;
    static constexpr int BM = 16 * W;                    /* query rows a block */
    static constexpr int STAGES = W == 8 ? 3 : 2;
    static constexpr int STRIDE = D + 8;                 /* elements a shared-memory row */
    static constexpr int TILE = MMA_BN * STRIDE;         /* one K or V tile */
    static constexpr int QTILE = BM * STRIDE;
    static constexpr int SMEM = (QTILE + 2 * STAGES * TILE) * 2;   /* Q, K x STAGES, V x STAGES */
    /* The end: float accumulators [W warps][16 rows][D], then max and sum [BM] each, over
     * the K/V buffers. */
    static constexpr int FIN = (W * 16 * D + 2 * BM) * 4;
    static_assert(FIN <= 2 * STAGES * TILE * 2, "the final stage fits over the K/V tiles");
    static_assert(D % 16 == 0 && (MMA_BN * (D / 8)) % THREADS == 0, "head_dim");
};

/* ---- PTX (cp_async.cuh: cp.async, ldmatrix) --------------------------------------------- */
/* c[16 x 8] += a[16 x 16] b[16 x 8], float32 accumulators. */
template <typename T>
static __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                                uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4],
                                                        uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], uint32_t b0,
                                                 uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* ---- one warp, one tile ---------------------------------------------------------------------- *
 * The warp's 16 rows against NT * 8 keys: kt / vt point at its first key's K / V row in
 * shared memory, key0 is that key's index in the sequence. Lane (g = lane / 4, c = lane % 4)
 * holds rows g and g + 8 (index hr 0 and 1): first[hr] .. last[hr] are their keys, m / l
 * their max (base 2, scaled) and (this lane's part of the) sum, acc[n][..] their output dims
 * 8n + 2c, +1. MASK: some key of the tile is outside some row's range (else every key is in
 * every row's range and the compares are skipped). */
template <typename T, int D, int NT, bool MASK>
static __device__ __forceinline__ void warp_tile(const T *kt, const T *vt, int key0,
                                                 const uint32_t (&qf)[D / 16][4],
                                                 float (&acc)[D / 8][4], float (&m)[2],
                                                 float (&l)[2], const int (&first)[2],
                                                 const int (&last)[2], float scale_log2,
                                                 int lane)
{
    constexpr int STRIDE = D + 8;
    const int mi = lane >> 3, rr = lane & 7, c = lane & 3;
    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    /* S = Q K^T. One ldmatrix.x4 gives the B fragments of 16 dims for 16 keys: matrices
     * (keys 0-7, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 0-7), (keys 8-15, 8-15). */
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            ldsm_x4(b, smem_u32(kt + (np * 16 + (mi >> 1) * 8 + rr) * STRIDE + kk * 16 +
                                (mi & 1) * 8));
            mma16816<T>(s[2 * np], qf[kk], b[0], b[1]);
            mma16816<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
        }
    }
    /* Mask, online softmax on the raw scores: s[n][e] is row g (e < 2) or g + 8, key
     * 8n + 2c + (e & 1); the max is taken unscaled (scale_log2 > 0) and each weight is
     * exp2(s * scale_log2 - max * scale_log2), one FFMA. */
    float mx[2] = { -INFINITY, -INFINITY };
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int hr = e >> 1;
            if (MASK) {
                int j = key0 + n * 8 + 2 * c + (e & 1);
                if (j < first[hr] || j > last[hr])
                    s[n][e] = -INFINITY;
            }
            mx[hr] = fmaxf(mx[hr], s[n][e]);
        }
    float base[2], corr[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 1));
        mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 2));
        float m_new = fmaxf(m[hr], mx[hr] * scale_log2);
        base[hr] = m_new == -INFINITY ? 0.0f : m_new;   /* a row with no key yet stays 0 */
        corr[hr] = fast_exp2(m[hr] - base[hr]);
        m[hr] = m_new;
    }
    float rs[2] = { 0.0f, 0.0f };
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float pv = fast_exp2(fmaf(s[n][e], scale_log2, -base[e >> 1]));
            s[n][e] = pv;
            rs[e >> 1] += pv;
        }
    l[0] = l[0] * corr[0] + rs[0];
    l[1] = l[1] * corr[1] + rs[1];
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        acc[n][0] *= corr[0];
        acc[n][1] *= corr[0];
        acc[n][2] *= corr[1];
        acc[n][3] *= corr[1];
    }
    /* O += P V. The S accumulators of keys 16kj .. 16kj+15 are the A fragment of P; one
     * ldmatrix.x4.trans gives the B fragments of 16 keys for 16 dims: matrices (keys 0-7,
     * dims 0-7), (keys 8-15, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 8-15). */
#pragma unroll
    for (int kj = 0; kj < NT / 2; kj++) {
        uint32_t a[4] = { pack2<T>(s[2 * kj][0], s[2 * kj][1]), pack2<T>(s[2 * kj][2], s[2 * kj][3]),
                          pack2<T>(s[2 * kj + 1][0], s[2 * kj + 1][1]),
                          pack2<T>(s[2 * kj + 1][2], s[2 * kj + 1][3]) };
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_trans(b, smem_u32(vt + (kj * 16 + (mi & 1) * 8 + rr) * STRIDE + dp * 16 +
                                      (mi >> 1) * 8));
            mma16816<T>(acc[2 * dp], a, b[0], b[1]);
            mma16816<T>(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

/* The warp's tile at key k0 (nk keys): skipped when none of its rows sees a key of it,
 * unmasked when every row sees all of them (lo_all .. hi_all: the keys every row of the
 * warp sees, empty when some row sees none). */
template <typename T, int D, int NT>
static __device__ __forceinline__ void warp_step(const T *kt, const T *vt, int k0, int nk,
                                                 int wlo, int whi, int lo_all, int hi_all,
                                                 const uint32_t (&qf)[D / 16][4],
                                                 float (&acc)[D / 8][4], float (&m)[2],
                                                 float (&l)[2], const int (&first)[2],
                                                 const int (&last)[2], float scale_log2,
                                                 int lane)
{
    if (whi < k0 || wlo > k0 + nk - 1)                   /* warp-uniform */
        return;
    if (k0 >= lo_all && k0 + nk - 1 <= hi_all)
        warp_tile<T, D, NT, false>(kt, vt, k0, qf, acc, m, l, first, last, scale_log2, lane);
    else
        warp_tile<T, D, NT, true>(kt, vt, k0, qf, acc, m, l, first, last, scale_log2, lane);
}

/* ---- the kernel ------------------------------------------------------------------------------ */
template <typename T, typename C, int D, int W>
__global__ void __launch_bounds__(32 * W, W == 8 ? 1 : 2) attn_mma_kernel(const attn_tc_kparams p)
{
    typedef mma_shape<D, W> S;
    constexpr bool F8 = kv_fp8_t<C>::value;
    constexpr int THREADS = S::THREADS, BM = S::BM, STAGES = S::STAGES;
    constexpr int CPR = D / 8;                           /* 8-element chunks a row (16 bytes of T) */
    constexpr int NL = MMA_BN * CPR / THREADS;           /* chunks a thread loads a tile */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *qs = reinterpret_cast<T *>(smem_raw);             /* [BM][STRIDE] */
    T *ks = qs + S::QTILE;                               /* [STAGES][MMA_BN][STRIDE] */
    T *vs = ks + STAGES * S::TILE;                       /* [STAGES][MMA_BN][STRIDE] */
    __shared__ int row_first[BM], row_last[BM], red_lo[W], red_hi[W];

    /* Items in reverse: in a prefill the late (longest) chunks start first. */
    const int4 item = p.items[gridDim.x - 1 - blockIdx.x];
    const int seq = item.x, t0 = item.y, nt = item.z;
    const int kvh = blockIdx.y / p.head_chunks;
    const int h0 = kvh * p.group + (blockIdx.y % p.head_chunks) * p.hq;
    const int R = nt * p.hq;                             /* <= BM (the plan's tq) */
    const int split = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    /* KS warps share a row group, each with 64 / KS keys of every tile, RG = W / KS row
     * groups of 16: KS as large as the R rows' groups allow (4 warps: KS 4 up to 16 rows, 2
     * up to 32; 8 warps: 4 up to 32 rows, 2 up to 64), so that a short item (a decode row,
     * a prompt's last tokens) keeps every warp busy. */
    const int rgn = (R + 15) / 16;
    const int KS = rgn * 4 <= W ? 4 : rgn * 2 <= W ? 2 : 1, RG = W / KS;
    const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
    const int64_t kv_stride = (int64_t)p.KV * D;         /* between cache slots */
    const C *kc = (const C *)p.kc + (int64_t)kvh * D, *vc = (const C *)p.vc + (int64_t)kvh * D;

    /* Q rows (zeros past R up to a multiple of 16), as cp.async group 0. */
    const int q_rows = (R + 15) & ~15;
    for (int idx = tid; idx < q_rows * CPR; idx += THREADS) {
        int r = idx / CPR, ch = idx % CPR;
        const T *src = (const T *)p.q;
        bool ok = r < R;
        if (ok)
            src += ((int64_t)(t0 + r / p.hq) * p.H + h0 + r % p.hq) * D + ch * 8;
        cp_async16(smem_u32(qs + r * S::STRIDE + ch * 8), src, ok);
    }
    cp_async_commit();
    /* Each row's keys (rows past R have none), and the block's: the union over the rows,
     * reduced a warp at a time. */
    const int split_lo = split * p.split_len, split_hi = split_lo + p.split_len - 1;
    {
        int f = 1, la = 0;
        if (tid < R) {
            int pos = p.positions[t0 + tid / p.hq];
            f = p.window > 0 ? max(0, pos - p.window + 1) : 0;
            f = max(f, split_lo);
            la = min(pos, split_hi);
        }
        if (tid < BM) {
            row_first[tid] = f;
            row_last[tid] = la;
        }
        int lo = f <= la ? f : INT_MAX, hi = f <= la ? la : -1;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
            hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
        }
        if (lane == 0) {
            red_lo[warp] = lo;
            red_hi[warp] = hi;
        }
    }
    __syncthreads();
    int kb = INT_MAX, ke = -1;                           /* the block's keys */
#pragma unroll
    for (int w = 0; w < W; w++) {
        kb = min(kb, red_lo[w]);
        ke = max(ke, red_hi[w]);
    }
    const int ntiles = ke >= kb ? (ke - kb) / MMA_BN + 1 : 0;

    /* Key j's row offset in the caches (elements). */
    auto row_off = [&](int j) -> int64_t {
        int blk = p.bs_shift >= 0 ? j >> p.bs_shift : j / p.block_size;
        int64_t slot = (int64_t)table[blk] * p.block_size + (j - blk * p.block_size);
        return slot * kv_stride;
    };
    /* Tile `buf` <- keys kb0 .. kb0 + 63 (zeros past ke: P is 0 there, V must be finite). */
    auto load_tile = [&](int buf, int kb0) {
        T *kd = ks + buf * S::TILE, *vd = vs + buf * S::TILE;
#pragma unroll
        for (int i = 0; i < NL; i++) {
            int idx = tid + i * THREADS, jj = idx / CPR, ch = idx % CPR, j = kb0 + jj;
            bool ok = j <= ke;
            const C *ksrc = kc, *vsrc = vc;
            if (ok) {
                int64_t off = row_off(j) + ch * 8;
                ksrc += off;
                vsrc += off;
            }
            cp_async16(smem_u32(kd + jj * S::STRIDE + ch * 8), ksrc, ok);
            cp_async16(smem_u32(vd + jj * S::STRIDE + ch * 8), vsrc, ok);
        }
    };
    /* FP8: the tile's e4m3 chunks (8 bytes each) into registers, then converted to shared. */
    uint2 k8[F8 ? NL : 1], v8[F8 ? NL : 1];
    auto fetch8 = [&](int kb0) {
#pragma unroll
        for (int i = 0; i < NL; i++) {
            int idx = tid + i * THREADS, jj = idx / CPR, ch = idx % CPR, j = kb0 + jj;
            k8[i] = v8[i] = make_uint2(0u, 0u);
            if (j <= ke) {
                int64_t off = row_off(j) + ch * 8;
                k8[i] = *reinterpret_cast<const uint2 *>(kc + off);
                v8[i] = *reinterpret_cast<const uint2 *>(vc + off);
            }
        }
    };
    auto stash8 = [&](int buf) {
        T *kd = ks + buf * S::TILE, *vd = vs + buf * S::TILE;
#pragma unroll
        for (int i = 0; i < NL; i++) {
            int idx = tid + i * THREADS, jj = idx / CPR, ch = idx % CPR;
            *reinterpret_cast<uint4 *>(kd + jj * S::STRIDE + ch * 8) = kv_cvt8<T>(k8[i]);
            *reinterpret_cast<uint4 *>(vd + jj * S::STRIDE + ch * 8) = kv_cvt8<T>(v8[i]);
        }
    };
    /* The first tiles: FP8 converts tile 0 into buffer 0; 16-bit caches start STAGES - 1
     * tiles, one cp.async group each (empty past the last tile: the counting stays fixed). */
    if constexpr (F8) {
        if (ntiles > 0) {
            fetch8(kb);
            stash8(0);
        }
    } else {
#pragma unroll
        for (int st = 0; st < STAGES - 1; st++) {
            if (st < ntiles)
                load_tile(st, kb + st * MMA_BN);
            cp_async_commit();
        }
    }

    /* This warp's rows and key slice of a tile, and the keys its rows want: wlo .. whi any
     * of them, lo_all .. hi_all every one of them. */
    const int nkw = MMA_BN / KS, wr0 = (warp % RG) * 16, koff = (warp / RG) * nkw;
    const int g = lane >> 2;
    int first[2], last[2];
    first[0] = row_first[wr0 + g];
    last[0] = row_last[wr0 + g];
    first[1] = row_first[wr0 + g + 8];
    last[1] = row_last[wr0 + g + 8];
    int wlo = INT_MAX, whi = -1, lo_all = INT_MIN, hi_all = INT_MAX;
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        if (first[hr] <= last[hr]) {
            wlo = min(wlo, first[hr]);
            whi = max(whi, last[hr]);
            lo_all = max(lo_all, first[hr]);
            hi_all = min(hi_all, last[hr]);
        } else {
            lo_all = INT_MAX;                            /* a row without keys: always mask */
            hi_all = INT_MIN;
        }
    }
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        wlo = min(wlo, __shfl_xor_sync(0xffffffffu, wlo, o));
        whi = max(whi, __shfl_xor_sync(0xffffffffu, whi, o));
        lo_all = max(lo_all, __shfl_xor_sync(0xffffffffu, lo_all, o));
        hi_all = min(hi_all, __shfl_xor_sync(0xffffffffu, hi_all, o));
    }

    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };

    if constexpr (F8)
        cp_async_wait<0>();                              /* Q is in */
    else
        cp_async_wait<STAGES - 1>();                     /* Q is in; the tiles may not be */
    __syncthreads();
    uint32_t qf[D / 16][4];
    {
        const int mi = lane >> 3, rr = lane & 7;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            ldsm_x4(qf[kk], smem_u32(qs + (wr0 + (mi & 1) * 8 + rr) * S::STRIDE + kk * 16 +
                                     (mi >> 1) * 8));
    }

    /* One barrier a tile: after it, tile `it` is in for every thread and every warp is done
     * with tile it - 1, whose buffer the load issued next (tile it + STAGES - 1; FP8: the
     * conversion of tile it + 1 after this tile's math) refills. */
    for (int it = 0; it < ntiles; it++) {
        int buf;
        if constexpr (F8) {
            __syncthreads();
            if (it + 1 < ntiles)
                fetch8(kb + (it + 1) * MMA_BN);          /* in flight during this tile */
            buf = it & 1;
        } else {
            cp_async_wait<STAGES - 2>();                 /* tile it's group is done */
            __syncthreads();
            const int nx = it + STAGES - 1;
            if (nx < ntiles)
                load_tile(nx % STAGES, kb + nx * MMA_BN);
            cp_async_commit();
            buf = it % STAGES;
        }
        const int k0 = kb + it * MMA_BN + koff;          /* this warp's first key */
        const T *kt = ks + buf * S::TILE + koff * S::STRIDE;
        const T *vt = vs + buf * S::TILE + koff * S::STRIDE;
        if (KS == 4)
            warp_step<T, D, 2>(kt, vt, k0, nkw, wlo, whi, lo_all, hi_all, qf, acc, m, l, first,
                               last, p.scale_log2, lane);
        else if (KS == 2)
            warp_step<T, D, 4>(kt, vt, k0, nkw, wlo, whi, lo_all, hi_all, qf, acc, m, l, first,
                               last, p.scale_log2, lane);
        else
            warp_step<T, D, 8>(kt, vt, k0, nkw, wlo, whi, lo_all, hi_all, qf, acc, m, l, first,
                               last, p.scale_log2, lane);
        if constexpr (F8)
            if (it + 1 < ntiles)
                stash8((it + 1) & 1);
    }
    cp_async_wait<0>();
    __syncthreads();

    /* Each warp's rows (sums completed across the lanes of a row) to shared memory:
     * fo[w][i][D] = accumulators of row i of warp w, fm / fl [w][i] its max and sum. */
    float *fo = reinterpret_cast<float *>(ks);
    float *fm = fo + W * 16 * D, *fl = fm + BM;
    {
        const int c = lane & 3;
        float *mine = fo + warp * 16 * D;
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
            l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
        }
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<float2 *>(mine + g * D + n * 8 + 2 * c) =
                make_float2(acc[n][0], acc[n][1]);
            *reinterpret_cast<float2 *>(mine + (g + 8) * D + n * 8 + 2 * c) =
                make_float2(acc[n][2], acc[n][3]);
        }
        if (c == 0) {
            fm[warp * 16 + g] = m[0];
            fm[warp * 16 + g + 8] = m[1];
            fl[warp * 16 + g] = l[0];
            fl[warp * 16 + g + 8] = l[1];
        }
    }
    __syncthreads();
    /* Row r is row r % 16 of row group r / 16: slot w * 16 + r % 16 = r + 16 k RG of each of
     * its KS warps w = k * RG + r / 16 (KS = 1: slot r alone), merged. */
    T *out = (T *)p.out;
    for (int idx = tid; idx < R * D; idx += THREADS) {
        int r = idx / D, d = idx % D;
        float M, L, O;
        if (KS > 1) {
            M = -INFINITY;
            for (int k = 0; k < KS; k++)
                if (fl[r + k * RG * 16] > 0)
                    M = fmaxf(M, fm[r + k * RG * 16]);
            L = 0.0f;
            O = 0.0f;
            for (int k = 0; k < KS; k++) {
                int sl = r + k * RG * 16;                /* warp k * RG + r / 16, row r % 16 */
                if (fl[sl] > 0) {
                    float e = exp2f(fm[sl] - M);
                    L += e * fl[sl];
                    O += e * fo[sl * D + d];
                }
            }
        } else {
            M = fm[r];
            L = fl[r];
            O = fo[r * D + d];
        }
        int t = t0 + r / p.hq, h = h0 + r % p.hq;
        if constexpr (F8)
            O *= p.v_scale;
        if (p.n_splits == 1) {
            out[((int64_t)t * p.H + h) * D + d] = from_f<T>(L > 0 ? O / L : 0.0f);
        } else {
            float *part = p.part + (((int64_t)t * p.H + h) * p.n_splits + split) * (D + 2);
            part[d] = O;
            if (d == 0) {
                part[D] = M;
                part[D + 1] = L;
            }
        }
    }
}

/* ---- host side ------------------------------------------------------------------------------- */
bool pgd__attn_mma_supports(enum pgd_dtype dt, int D)
{
    return (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16) && (D == 64 || D == 128);
}

/* Heads a block: the largest divisor of group up to `rows`; tokens an item fill the rows. */
void pgd__attn_mma_shape(int group, int rows, int *hq, int *tq)
{
    int h = std::max(1, std::min(group, rows));
    while (group % h)
        h--;
    *hq = h;
    *tq = std::max(1, rows / h);
}

/* PGD_CUDA_PREFILL_ATTN (read once): "0" never the 128-row shape by default; "mma" the
 * 128-row shape on this file's 8-warp kernel, never attention_wgmma.cu's; "wgmma" (or unset)
 * the wgmma kernel wherever it runs (pgd__attn_wgmma_ok), this one elsewhere; "wgmma-serial"
 * the same with the wgmma kernel's serial variant. Returns the setting as 0, 'm', 'w' or
 * 's'. */
static int env_prefill(void)
{
    static std::atomic<int> v(-1);
    int r = v.load();
    if (r < 0) {
        const char *e = getenv("PGD_CUDA_PREFILL_ATTN");
        r = !e ? 'w' : !strcmp(e, "0") ? 0 : !strcmp(e, "mma") ? 'm'
            : !strcmp(e, "wgmma-serial") ? 's' : 'w';
        v.store(r);
    }
    return r;
}

bool pgd__attn_wgmma_serial(void)
{
    return env_prefill() == 's';
}

static bool env_prefill_off(void)
{
    return env_prefill() == 0;
}

/* Blocks of `rows` query rows the call's sequences of at least min_len tokens make. */
static int64_t blocks_of(const struct pgd_cuda_attn *a, int group, int rows, int min_len)
{
    int hq, tq;
    pgd__attn_mma_shape(group, rows, &hq, &tq);
    int64_t items = 0;
    for (int s = 0; s < a->n_seqs; s++) {
        int len = a->h_query_start[s + 1] - a->h_query_start[s];
        if (len >= min_len)
            items += (len + tq - 1) / tq;
    }
    return items * a->p.n_kv_heads * (group / hq);
}

static int prefill_on_wgmma(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a);

int pgd__attn_mma_rows(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a)
{
    if (a->path == PGD_CUDA_ATTN_PREFILL || a->path == PGD_CUDA_ATTN_PREFILL_MMA ||
        a->path == PGD_CUDA_ATTN_PREFILL_WGMMA)
        return 128;
    if (a->path != PGD_CUDA_ATTN_AUTO || a->decode_items || !a->h_query_start ||
        a->p.n_kv_heads <= 0 || a->p.n_heads % a->p.n_kv_heads)
        return 64;
    int group = a->p.n_heads / a->p.n_kv_heads;
    if (!env_prefill_off() && blocks_of(a, group, 128, 2) >= c->sm_count)
        return 128;
    /* Too few blocks for the SMs and too short a context to split (attention.cu splits
     * from 2 x 256 keys): smaller blocks, whose warps split the keys; a short prompt's
     * blocks are few tiles long, and more of them finish sooner. */
    if (a->max_seq_len >= 512)
        return 64;
    /* Where the wgmma kernel runs, its 128-row blocks beat these small ones even when they
     * are too few for the SMs (pagoda bench attention on an H200, Llama-3-8B heads: a
     * 128-token prompt in 11.1 us against 18.3, 512 tokens 76.0 against 78.8). */
    if (blocks_of(a, group, 128, 2) > 0 && prefill_on_wgmma(c, a) > 0)
        return 128;
    for (int rows = 64; rows > 16; rows /= 2)
        if (blocks_of(a, group, rows, 1) >= c->sm_count)
            return rows;
    return 16;
}

/* The dynamic shared memory above 48 KiB is granted per function and device, once. */
template <typename T, typename C, int D, int W> static cudaError_t allow_smem(int device)
{
    static std::atomic<unsigned> done(0);
    unsigned bit = device >= 0 && device < 32 ? 1u << device : 0;
    if (bit && (done.load() & bit))
        return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(attn_mma_kernel<T, C, D, W>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         mma_shape<D, W>::SMEM);
    if (e == cudaSuccess && bit)
        done.fetch_or(bit);
    return e;
}

template <typename T, typename C, int D, int W>
static cudaError_t launch(struct pgd_cuda_ctx *c, const attn_tc_kparams &kp, dim3 grid)
{
    cudaError_t e = allow_smem<T, C, D, W>(c->device);
    if (e != cudaSuccess)
        return e;
    attn_mma_kernel<T, C, D, W><<<grid, mma_shape<D, W>::THREADS, mma_shape<D, W>::SMEM,
                                  c->stream>>>(kp);
    return cudaSuccess;
}

template <typename T, typename C>
static cudaError_t launch_d(struct pgd_cuda_ctx *c, int D, int rows, const attn_tc_kparams &kp,
                            dim3 grid)
{
    if (rows == 128)
        return D == 64 ? launch<T, C, 64, 8>(c, kp, grid) : launch<T, C, 128, 8>(c, kp, grid);
    return D == 64 ? launch<T, C, 64, 4>(c, kp, grid) : launch<T, C, 128, 4>(c, kp, grid);
}

static int smem_bytes(int D, int rows)
{
    if (rows == 128)
        return D == 64 ? mma_shape<64, 8>::SMEM : mma_shape<128, 8>::SMEM;
    return D == 64 ? mma_shape<64, 4>::SMEM : mma_shape<128, 4>::SMEM;
}

attn_tc_kparams pgd__attn_tc_params(const struct pgd_cuda_attn *a, const int4 *items, int hq,
                                    int n_splits, int split_len, float *part)
{
    const struct pgd_attn_params *p = &a->p;
    int group = p->n_heads / p->n_kv_heads;
    attn_tc_kparams kp;
    kp.q = a->q;
    kp.out = a->out;
    kp.kc = a->k_cache;
    kp.vc = a->v_cache;
    kp.block_tables = a->block_tables;
    kp.positions = a->positions;
    kp.items = items;
    kp.part = part;
    kp.block_size = a->block_size;
    kp.bs_shift = -1;
    for (int sh = 0; sh < 30; sh++)
        if (a->block_size == 1 << sh)
            kp.bs_shift = sh;
    kp.max_blocks = a->max_blocks;
    kp.H = p->n_heads;
    kp.KV = p->n_kv_heads;
    kp.group = group;
    kp.hq = hq;
    kp.head_chunks = group / hq;
    kp.window = p->sliding_window;
    kp.n_splits = n_splits;
    kp.split_len = split_len;
    kp.scale_log2 = p->scale * 1.4426950408889634f;
    kp.v_scale = 1.0f;
    if (a->kv_fp8) {
        kp.scale_log2 *= a->kv_fp8->k_scale;
        kp.v_scale = a->kv_fp8->v_scale;
    }
    return kp;
}

/* Whether call a's 128-row blocks run on attention_wgmma.cu: 1 yes, 0 no (this file's 8-warp
 * kernel), -1 forced (PGD_CUDA_ATTN_PREFILL_WGMMA) where it cannot run. */
static int prefill_on_wgmma(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a)
{
    if (a->path == PGD_CUDA_ATTN_PREFILL_MMA)
        return 0;
    bool ok = pgd__attn_wgmma_ok(c, a);
    if (a->path == PGD_CUDA_ATTN_PREFILL_WGMMA)
        return ok ? 1 : -1;
    return ok && (env_prefill() == 'w' || env_prefill() == 's');
}

int pgd__attn_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                      int n_items, int n_splits, int split_len, float *part, char *err,
                      size_t errlen)
{
    const struct pgd_attn_params *p = &a->p;
    int D = p->head_dim;
    if (n_items == 0)
        return 0;
    if (!pgd__attn_mma_supports(a->dtype, D) || p->n_kv_heads <= 0 ||
        p->n_heads % p->n_kv_heads)
        return pgd_cuda_failf(err, errlen, "attention (tensor cores): dtype %s, head_dim %d "
                              "with %d heads over %d kv heads has no kernel (BF16 or F16, "
                              "head_dim 64 or 128)", pgd_dtype_name(a->dtype), D, p->n_heads,
                              p->n_kv_heads);
    if (n_splits > 1 && !part)
        return pgd_cuda_failf(err, errlen, "attention (tensor cores): %d context splits need "
                              "scratch", n_splits);
    int group = p->n_heads / p->n_kv_heads, hq, tq, rows = pgd__attn_mma_rows(c, a);
    if (rows == 128) {
        int w = prefill_on_wgmma(c, a);
        if (w < 0)
            return pgd_cuda_failf(err, errlen, "attention (wgmma, 128-row blocks): dtype %s, "
                                  "head_dim %d: no kernel here (BF16 or F16, head_dim 64 or "
                                  "128, a compute capability 9.0 device and a build with 90 "
                                  "among its CUDA architectures)", pgd_dtype_name(a->dtype), D);
        if (w)
            return pgd__attn_wgmma_run(c, a, items, n_items, n_splits, split_len, part, err,
                                       errlen);
    }
    pgd__attn_mma_shape(group, rows, &hq, &tq);
    attn_tc_kparams kp = pgd__attn_tc_params(a, items, hq, n_splits, split_len, part);
    dim3 grid(n_items, p->n_kv_heads * kp.head_chunks, n_splits);
    cudaError_t e;
    if (a->dtype == PGD_DTYPE_BF16)
        e = a->kv_fp8 ? launch_d<__nv_bfloat16, kv_e4m3>(c, D, rows, kp, grid)
                      : launch_d<__nv_bfloat16, __nv_bfloat16>(c, D, rows, kp, grid);
    else
        e = a->kv_fp8 ? launch_d<__half, kv_e4m3>(c, D, rows, kp, grid)
                      : launch_d<__half, __half>(c, D, rows, kp, grid);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "attention (tensor cores): shared memory of %d "
                              "bytes: %s", smem_bytes(D, rows), cudaGetErrorString(e));
    if (n_splits > 1)
        pgd__attn_combine(c, a->dtype, part, items, n_items, p->n_heads, n_splits, D, a->out);
    PGD_CUDA_LAUNCHED(err, errlen, "attention (tensor cores, %d rows a block) %s%s [%d tokens, "
                      "%d seqs, %d heads / %d kv of %d, max len %d, %d items x %d splits]", rows,
                      pgd_cuda_dt(a->dtype), a->kv_fp8 ? " (e4m3 cache)" : "", a->n_tokens,
                      a->n_seqs, p->n_heads, p->n_kv_heads, D, a->max_seq_len, n_items, n_splits);
    return 0;
}
