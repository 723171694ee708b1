/* Attention for decode rows on the tensor cores: one query token of a sequence against its
 * paged K/V, BF16/F16 (cache in the dtype or e4m3), head_dim 64 or 128, up to 16 query heads
 * a KV head. attention_decode.cu plans the block shape and the context splits, picks this
 * kernel or its SIMT one and merges the splits.
 *
 * Decode is a stream of K/V bytes with little math per byte, so the kernel is built around
 * keeping many bytes in flight with few steps between them. The work is (row, KV head)
 * pairs, each read once for all the query heads of its KV head (grouped query), and a block
 * of 4 warps takes 1, 2 or 4 pairs of one context split (pair_warps 4, 2, 1 warps a pair;
 * pairs are numbered item * KV + KV head, so a block's pairs are neighbouring KV heads of a
 * row, whose K/V rows lie side by side in the cache). Many short sequences take 4 pairs a
 * block, a warp each: the block's start-up (item, position, table and Q loads, several
 * memory latencies) is paid once for 4 pairs, and a warp's keys stream through its pipeline
 * with no merge at the end (it writes its rows straight from its registers). A pair's keys
 * go by in tiles of 16 (one KV block at block_size 16), tile i of the range to the pair's
 * warp i % pair_warps: each warp runs its own pipeline, with no block barrier in the loop:
 * NS tiles of K and V in shared memory (the plan's stages, 2 or 3: attention_decode_plan.cu
 * says which), filled by cp.async 16 bytes at a time (zeros for keys outside the range), the
 * next tile's slots read from the block table while the current one is in the math. Per
 * tile, the warp's query heads are the 16 rows of an mma.sync m16n8k16 A operand (rows past
 * the group are zero): S = Q K^T (K by ldmatrix), scale and mask in float32, online softmax
 * in base 2, P rounded to the dtype, O += P V (V by ldmatrix.trans), float32 accumulators:
 * the same math as attention_mma.cu's kernel. At the
 * end a pair of several warps merges their (max, sum, accumulators) through shared memory
 * into `out`, or into the split partials [n_items, H, n_splits, D + 2].
 *
 * An e4m3 cache: the tiles are staged as bytes and each warp widens its tile to the dtype in
 * shared memory before the math (e4m3 is exact in both 16-bit dtypes); the K scale is in
 * scale_log2, the V scale multiplies the output.
 *
 * Shared memory: 4 warps x NS x (K + V) tiles of 16 rows of D + 8 elements (the pad puts
 * the 8 rows an ldmatrix reads in different bank groups): at head_dim 128 in bf16, 70 KB
 * (three blocks an SM) with two stages, 104 KB (two) with three, whatever the block's
 * pairs. sm_80 and later. */
#include "kernels/cuda/attention_decode.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include "kernels/cuda/quant_mma.cuh"
#include <math.h>

#define DM_WARPS 4
#define DM_THREADS (32 * DM_WARPS)
#define DM_KEYS 16                   /* keys a warp's tile */
#define DM_FULL 0xffffffffu
#define DM_GATHER_EARLY 4            /* gathered places a thread loads early (group 4 x 128;
                                      * the store below picks among exactly four) */
static_assert(DM_GATHER_EARLY == 4, "the one-pair block's gathered store picks among four");


template <typename C, int D, int NS> struct dm_shape {
    static constexpr bool F8 = kv_fp8_t<C>::value;
    static constexpr int CPR = D * (int)sizeof(C) / 16;   /* 16-byte chunks a cache row */
    static constexpr int EPC = 16 / (int)sizeof(C);       /* elements a chunk */
    static constexpr int ROW = F8 ? D + 16 : D + 8;       /* a staged row (elements of C) */
    static constexpr int TROW = D + 8;                    /* a row of T the math reads */
    static constexpr int STAGE = 2 * DM_KEYS * ROW * (int)sizeof(C);   /* bytes: K, V */
    static constexpr int CONV = F8 ? 2 * DM_KEYS * TROW * 2 : 0;       /* widened K, V */
    static constexpr int WARP = NS * STAGE + CONV;
    /* The end: accumulators [warps][16 rows][D], then max and sum [warps][16]. */
    static constexpr int FIN = (DM_WARPS * 16 * D + 2 * DM_WARPS * 16) * 4;
    static constexpr int SMEM = DM_WARPS * WARP > FIN ? DM_WARPS * WARP : FIN;
    static_assert(DM_KEYS * CPR % 32 == 0 && CPR <= 32, "a tile's chunks over the lanes");
};

/* ---- one warp, one tile ---------------------------------------------------------------------
 * kt / vt: the tile's 16 K and V rows (TROW elements apart), key0 the first key's index;
 * keys outside [lo, hi] are masked (their V rows are zeros). Lane (g = lane / 4, c = lane % 4)
 * holds rows g and g + 8 (hr 0, 1): m, l their max and (this lane's part of the) sum, acc[n]
 * their output dims 8n + 2c, +1. R2: rows 8..15 are heads (group > 8); else they are padding
 * and skip the softmax. */
template <typename T, int D, bool R2>
static __device__ __forceinline__ void dm_tile(const T *kt, const T *vt, int key0, int lo,
                                               int hi, const uint32_t (&qf)[D / 16][4],
                                               float (&acc)[D / 8][4], float (&m)[2],
                                               float (&l)[2], float scale_log2, int lane)
{
    constexpr int TROW = D + 8;
    const int mi = lane >> 3, rr = lane & 7, c = lane & 3;
    float s[2][4];
#pragma unroll
    for (int n = 0; n < 2; n++)
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    /* S = Q K^T: one ldmatrix.x4 gives the B fragments of 16 dims for the 16 keys, matrices
     * (keys 0-7, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 0-7), (keys 8-15, 8-15). */
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t b[4];
        ldsm_x4(b, smem_u32(kt + ((mi >> 1) * 8 + rr) * TROW + kk * 16 + (mi & 1) * 8));
        mma16816<T>(s[0], qf[kk], b);
        mma16816<T>(s[1], qf[kk], b + 2);
    }
    /* s[n][e]: row g (e < 2) or g + 8, key key0 + 8n + 2c + (e & 1). */
    constexpr int NR = R2 ? 2 : 1;
    float mx[2] = { -INFINITY, -INFINITY };
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int e = 0; e < 2 * NR; e++) {
            const int j = key0 + n * 8 + 2 * c + (e & 1);
            float v = s[n][e] * scale_log2;
            if (j < lo || j > hi)
                v = -INFINITY;
            s[n][e] = v;
            mx[e >> 1] = fmaxf(mx[e >> 1], v);
        }
    float base[2] = { 0.0f, 0.0f }, corr[2] = { 1.0f, 1.0f };
#pragma unroll
    for (int hr = 0; hr < NR; hr++) {
        mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(DM_FULL, mx[hr], 1));
        mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(DM_FULL, mx[hr], 2));
        const float m_new = fmaxf(m[hr], mx[hr]);
        base[hr] = m_new == -INFINITY ? 0.0f : m_new;
        corr[hr] = exp2f(m[hr] - base[hr]);
        m[hr] = m_new;
    }
    float rs[2] = { 0.0f, 0.0f };
#pragma unroll
    for (int n = 0; n < 2; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float pv = 0.0f;
            if (e < 2 * NR) {
                pv = exp2f(s[n][e] - base[e >> 1]);
                rs[e >> 1] += pv;
            }
            s[n][e] = pv;
        }
#pragma unroll
    for (int hr = 0; hr < NR; hr++)
        l[hr] = l[hr] * corr[hr] + rs[hr];
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        acc[n][0] *= corr[0];
        acc[n][1] *= corr[0];
        if (R2) {
            acc[n][2] *= corr[1];
            acc[n][3] *= corr[1];
        }
    }
    /* O += P V: the S accumulators are P's A fragment; one ldmatrix.x4.trans gives the B
     * fragments of the 16 keys for 16 dims: (keys 0-7, dims 0-7), (keys 8-15, dims 0-7),
     * (keys 0-7, dims 8-15), (keys 8-15, dims 8-15). */
    const uint32_t a[4] = { pack_pair<T>(s[0][0], s[0][1]), R2 ? pack_pair<T>(s[0][2], s[0][3]) : 0u,
                            pack_pair<T>(s[1][0], s[1][1]), R2 ? pack_pair<T>(s[1][2], s[1][3]) : 0u };
#pragma unroll
    for (int dp = 0; dp < D / 16; dp++) {
        uint32_t b[4];
        ldsm_x4_trans(b, smem_u32(vt + ((mi & 1) * 8 + rr) * TROW + dp * 16 + (mi >> 1) * 8));
        mma16816<T>(acc[2 * dp], a, b);
        mma16816<T>(acc[2 * dp + 1], a, b + 2);
    }
}

/* ---- the end of a pair on one warp ------------------------------------------------------------
 * A pair of one warp (pair_warps 1) writes its rows from its registers: lane (g, c) holds
 * rows g (and g + 8 with R2), dims 8n + 2c, +1; l is the row's whole sum. Rows past the group
 * are padding. The same values as the shared-memory merge of one warp (e = 1). */
template <typename T, int D, bool R2, bool F8>
static __device__ __forceinline__ void dm_store_warp(const pgd__dec_params &p,
                                                     const float (&acc)[D / 8][4],
                                                     const float (&m)[2], const float (&l)[2],
                                                     int item, int t, int h0, int split, int lane)
{
    const int g = lane >> 2, c = lane & 3;
    const float vs = F8 ? p.v_scale : 1.0f;
#pragma unroll
    for (int hr = 0; hr < (R2 ? 2 : 1); hr++) {
        const int r = g + 8 * hr;
        if (r >= p.group)
            continue;
        const int h = h0 + r;
        if (p.n_splits == 1) {
            T *o = (T *)p.out + ((int64_t)t * p.H + h) * D + 2 * c;
            const float L = l[hr];
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                const float x = L > 0.0f ? acc[n][2 * hr] * vs / L : 0.0f;
                const float y = L > 0.0f ? acc[n][2 * hr + 1] * vs / L : 0.0f;
                *reinterpret_cast<uint32_t *>(o + n * 8) = pack_pair<T>(x, y);
                if (p.out_g) {       /* the same roundings as the pair's */
                    const int col = h * D + n * 8 + 2 * c;
                    pgd__dec_store_gathered<T>(p.out_g, p.out_pos, t, p.H * D, col, from_f<T>(x));
                    pgd__dec_store_gathered<T>(p.out_g, p.out_pos, t, p.H * D, col + 1,
                                               from_f<T>(y));
                }
            }
        } else {
            float *part = p.part + (((int64_t)item * p.H + h) * p.n_splits + split) * (D + 2);
#pragma unroll
            for (int n = 0; n < D / 8; n++)
                *reinterpret_cast<float2 *>(part + n * 8 + 2 * c) =
                    make_float2(acc[n][2 * hr] * vs, acc[n][2 * hr + 1] * vs);
            if (c == 0) {
                part[D] = m[hr];
                part[D + 1] = l[hr];
            }
        }
    }
}

/* ---- the kernel ------------------------------------------------------------------------------
 * Grid (blocks of pairs, n_splits); block 4 warps. Warp w takes pair blockIdx.x * (4 >>
 * pair_shift) + (w >> pair_shift) (none past the last pair) and its tiles wi, wi +
 * pair_warps, ... (wi = w % pair_warps) of split blockIdx.y. */
template <typename T, typename C, int D, bool R2, int NS>
__global__ void __launch_bounds__(DM_THREADS) attn_decode_mma_kernel(const pgd__dec_params p)
{
    typedef dm_shape<C, D, NS> S;
    constexpr bool F8 = S::F8;
    extern __shared__ __align__(16) unsigned char dm_smem[];

    pdl_trigger();
    if (!p.early)
        pdl_wait();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
    const int wp = p.pair_warps, wi = warp & (wp - 1);
    const int ppb = DM_WARPS >> p.pair_shift;            /* pairs a block */
    const int n_pairs = p.n_items * p.KV;
    const int pair_raw = blockIdx.x * ppb + (warp >> p.pair_shift);
    const bool live = pair_raw < n_pairs;                /* else idle: the grid's last block */
    const int pair = live ? pair_raw : n_pairs - 1;
    const int item_i = pair / p.KV, kvh = pair - item_i * p.KV, split = blockIdx.y;
    const int4 item = p.items[item_i];
    const int seq = item.x, t = item.y;
    const int h0 = kvh * p.group;
    const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
    const int64_t kv_stride = (int64_t)p.KV * D;         /* between cache slots */
    const C *kc = (const C *)p.kc + (int64_t)kvh * D, *vc = (const C *)p.vc + (int64_t)kvh * D;

    /* The table entries of the warp's first tiles from `start`, the key its split's tiles
     * begin at; clamped to the row (the entries past the sequence's end are not used). */
    int pre[NS] = {};
    auto read_entries = [&](int start) {
#pragma unroll
        for (int k = 0; k < NS; k++) {
            const int j = start + (wi + k * wp) * DM_KEYS + (lane & (DM_KEYS - 1));
            const int blk = min(p.bs_shift >= 0 ? j >> p.bs_shift : j / p.block_size,
                                p.max_blocks - 1);
            pre[k] = __ldg(table + blk);
        }
    };
    /* Unsplit and without a window the pair's keys start at 0, whatever the position: its
     * first entries are read beside the position, not after it. */
    const bool from_zero = p.n_splits == 1 && p.window <= 0;
    if (from_zero)
        read_entries(0);
    /* The pair's keys [lo, hi]: the causal limit, the sliding window, the split. */
    const int pos = p.positions[t];
    const int first = p.window > 0 ? max(0, pos - p.window + 1) : 0;
    int lo, hi;
    pgd__dec_split_keys(first, pos, split, p.n_splits, DM_KEYS, &lo, &hi);
    if (!from_zero && p.window <= 0)
        read_entries(lo / DM_KEYS * DM_KEYS);
    const int tile0 = lo / DM_KEYS;
    const int n_tiles = lo <= hi ? hi / DM_KEYS - tile0 + 1 : 0;
    const int nw = live && n_tiles > wi ? ((n_tiles - 1 - wi) >> p.pair_shift) + 1 : 0;

    /* A block of one pair (4 warps) that writes a gathered copy: its first DM_GATHER_EARLY
     * outputs' places, which never change, loaded now rather than at its very end. */
    int gpos[DM_GATHER_EARLY];
#pragma unroll
    for (int k = 0; k < DM_GATHER_EARLY; k++) {
        const int idx = threadIdx.x + k * DM_THREADS;
        const bool want = p.out_g && ppb == 1 && live && idx < p.group * D;
        gpos[k] = want ? __ldg(&p.out_pos[h0 * D + idx]) : 0;
    }

    /* Everything above reads the step's inputs only; from here on the kernel before this
     * one (the rotary + K/V write: Q and the row's own key) must be done. */
    if (p.early)
        pdl_wait();
    /* Q fragments (rows g, g + 8: heads h0 + row, zeros past the group), straight from
     * global memory: a0 / a2 row g dims 2c, 2c + 8 of each 16, a1 / a3 row g + 8. */
    uint32_t qf[D / 16][4];
    {
        const T *q = (const T *)p.q + ((int64_t)t * p.H + h0) * D + 2 * c;
        const bool r0 = g < p.group, r1 = R2 && g + 8 < p.group;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const unsigned int *q0 = reinterpret_cast<const unsigned int *>(q + g * D + kk * 16);
            const unsigned int *q1 =
                reinterpret_cast<const unsigned int *>(q + (g + 8) * D + kk * 16);
            qf[kk][0] = r0 ? __ldg(q0) : 0u;
            qf[kk][2] = r0 ? __ldg(q0 + 4) : 0u;
            qf[kk][1] = r1 ? __ldg(q1) : 0u;
            qf[kk][3] = r1 ? __ldg(q1 + 4) : 0u;
        }
    }

    /* The cache slot of key (lane % 16) of this warp's tile k, -1 outside [lo, hi]; entry:
     * the key's table entry when already read, else -1. */
    auto tile_slot = [&](int k, int entry) -> int {
        const int j = (tile0 + wi + k * wp) * DM_KEYS + (lane & (DM_KEYS - 1));
        if (k >= nw || j < lo || j > hi)
            return -1;
        const int blk = p.bs_shift >= 0 ? j >> p.bs_shift : j / p.block_size;
        return (entry >= 0 ? entry : table[blk]) * p.block_size + (j - blk * p.block_size);
    };
    unsigned char *wsm = dm_smem + warp * S::WARP;
    /* Stage st <- the tile whose slots (per lane, for key lane % 16) are slot. */
    auto issue = [&](int st, int slot) {
        C *ks = reinterpret_cast<C *>(wsm + st * S::STAGE), *vs = ks + DM_KEYS * S::ROW;
#pragma unroll
        for (int i = 0; i < DM_KEYS * S::CPR / 32; i++) {
            const int idx = lane + 32 * i, jj = idx / S::CPR, ch = idx % S::CPR;
            const int sl = __shfl_sync(DM_FULL, slot, jj);
            const int64_t off = sl >= 0 ? (int64_t)sl * kv_stride + ch * S::EPC : 0;
            const int doff = jj * S::ROW + ch * S::EPC;
            cp_async16(smem_u32(ks + doff), kc + off, sl >= 0);
            cp_async16(smem_u32(vs + doff), vc + off, sl >= 0);
        }
    };

    float acc[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };

    /* Prologue: tiles 0 .. NS - 2, their slots read together. */
    {
        int sl[NS - 1];
#pragma unroll
        for (int k = 0; k < NS - 1; k++)
            sl[k] = tile_slot(k, p.window > 0 ? -1 : pre[k]);
#pragma unroll
        for (int k = 0; k < NS - 1; k++) {
            if (k < nw)
                issue(k, sl[k]);
            cp_async_commit();
        }
    }
    int sl_next = tile_slot(NS - 1, p.window > 0 ? -1 : pre[NS - 1]);
    for (int k = 0; k < nw; k++) {
        const int ahead = k + NS - 1;
        if (ahead < nw)
            issue(ahead % NS, sl_next);
        cp_async_commit();
        sl_next = tile_slot(k + NS, -1);                /* in flight during the math */
        cp_async_wait<NS - 1>();                        /* tile k is in */
        __syncwarp();
        const unsigned char *st = wsm + (k % NS) * S::STAGE;
        const T *kt, *vt;
        if constexpr (F8) {
            /* Widen the tile's e4m3 rows into the warp's T tiles, 8 bytes a step. */
            T *kd = reinterpret_cast<T *>(wsm + NS * S::STAGE), *vd = kd + DM_KEYS * S::TROW;
            const C *ksrc = reinterpret_cast<const C *>(st), *vsrc = ksrc + DM_KEYS * S::ROW;
#pragma unroll
            for (int i = 0; i < DM_KEYS * D / 8 / 32; i++) {
                const int idx = lane + 32 * i, r = idx / (D / 8), c8 = (idx % (D / 8)) * 8;
                *reinterpret_cast<uint4 *>(kd + r * S::TROW + c8) =
                    kv_cvt8<T>(*reinterpret_cast<const uint2 *>(ksrc + r * S::ROW + c8));
                *reinterpret_cast<uint4 *>(vd + r * S::TROW + c8) =
                    kv_cvt8<T>(*reinterpret_cast<const uint2 *>(vsrc + r * S::ROW + c8));
            }
            __syncwarp();
            kt = kd;
            vt = vd;
        } else {
            kt = reinterpret_cast<const T *>(st);
            vt = kt + DM_KEYS * S::ROW;
        }
        const int key0 = (tile0 + wi + k * wp) * DM_KEYS;
        dm_tile<T, D, R2>(kt, vt, key0, lo, hi, qf, acc, m, l, p.scale_log2, lane);
        __syncwarp();                                   /* before the stage is refilled */
    }
    cp_async_wait<0>();
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        l[hr] += __shfl_xor_sync(DM_FULL, l[hr], 1);
        l[hr] += __shfl_xor_sync(DM_FULL, l[hr], 2);
    }
    if (wp == 1) {                                      /* the same for the whole grid */
        if (live)
            dm_store_warp<T, D, R2, F8>(p, acc, m, l, item_i, t, h0, split, lane);
        return;
    }
    __syncthreads();

    /* The warps' rows through shared memory: fo[w][row][D], fm / fl [w][row]. */
    float *fo = reinterpret_cast<float *>(dm_smem);
    float *fm = fo + DM_WARPS * 16 * D, *fl = fm + DM_WARPS * 16;
    {
        float *mine = fo + warp * 16 * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<float2 *>(mine + g * D + n * 8 + 2 * c) =
                make_float2(acc[n][0], acc[n][1]);
            if (R2)
                *reinterpret_cast<float2 *>(mine + (g + 8) * D + n * 8 + 2 * c) =
                    make_float2(acc[n][2], acc[n][3]);
        }
        if (c == 0) {
            fm[warp * 16 + g] = m[0];
            fl[warp * 16 + g] = l[0];
            fm[warp * 16 + g + 8] = R2 ? m[1] : -INFINITY;
            fl[warp * 16 + g + 8] = R2 ? l[1] : 0.0f;
        }
    }
    __syncthreads();
    /* The block's pairs in turn (their item, token and warps once a pair), each pair's
     * group x D outputs over the threads: D is a constant, so row and dim are shifts. */
    T *out = (T *)p.out;
    for (int pp = 0; pp < ppb; pp++) {
        const int pr = blockIdx.x * ppb + pp;
        if (pr >= n_pairs)
            break;
        const int pi = pr / p.KV, h0p = (pr - pi * p.KV) * p.group, w0 = pp * wp;
        const int tp = pp == (warp >> p.pair_shift) ? t : __ldg(&p.items[pi].y);
        for (int idx = threadIdx.x, gi = 0; idx < p.group * D; idx += DM_THREADS, gi++) {
            const int r = idx / D, d = idx % D, h = h0p + r;
            float M = -INFINITY, L = 0.0f, O = 0.0f;
#pragma unroll
            for (int k = 0; k < DM_WARPS; k++) {
                const int w = w0 + k;
                if (k < wp && fl[w * 16 + r] > 0.0f)
                    M = fmaxf(M, fm[w * 16 + r]);
            }
#pragma unroll
            for (int k = 0; k < DM_WARPS; k++) {
                const int w = w0 + k;
                if (k < wp && fl[w * 16 + r] > 0.0f) {
                    const float e = exp2f(fm[w * 16 + r] - M);
                    L += e * fl[w * 16 + r];
                    O += e * fo[(w * 16 + r) * D + d];
                }
            }
            if constexpr (F8)
                O *= p.v_scale;
            if (p.n_splits == 1) {
                const T v = from_f<T>(L > 0.0f ? O / L : 0.0f);
                out[((int64_t)tp * p.H + h) * D + d] = v;
                if (ppb == 1 && gi < DM_GATHER_EARLY)
                    pgd__dec_store_at<T>(p.out_g, tp, p.H * D,
                                         gi == 0 ? gpos[0] : gi == 1 ? gpos[1]
                                                           : gi == 2 ? gpos[2] : gpos[3], v);
                else
                    pgd__dec_store_gathered<T>(p.out_g, p.out_pos, tp, p.H * D, h * D + d, v);
            } else {
                float *part = p.part + (((int64_t)pi * p.H + h) * p.n_splits + split) * (D + 2);
                part[d] = O;
                if (d == 0) {
                    part[D] = M;
                    part[D + 1] = L;
                }
            }
        }
    }
}

/* ---- host side ------------------------------------------------------------------------------- */
bool pgd__attn_decode_mma_ok(enum pgd_dtype dt, int head_dim, int group)
{
    return (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16) && (head_dim == 64 || head_dim == 128) &&
           group >= 1 && group <= 16;
}

/* The kernel instance for (T, C, D, R2, NS) and its once-per-device set-up. */
template <typename T, typename C, int D, bool R2, int NS> struct dm_kernel {
    static constexpr int SMEM = dm_shape<C, D, NS>::SMEM;
    static pgd__kernel_setup setup;
    static void (*fn())(const pgd__dec_params) { return attn_decode_mma_kernel<T, C, D, R2, NS>; }
};
template <typename T, typename C, int D, bool R2, int NS>
pgd__kernel_setup dm_kernel<T, C, D, R2, NS>::setup;

/* f(dm_kernel<T, C, D, R2, NS>()) for call a's dtypes, head_dim and group (R2: group > 8)
 * and `stages` (NS: 2 or 3). */
template <int NS, typename F> static auto dm_instance_ns(const struct pgd_cuda_attn *a, F &&f)
{
    const int D = a->p.head_dim;
    const bool r2 = a->p.n_heads > 8 * a->p.n_kv_heads;
    return pgd__dec_types(a, [&](auto tt, auto ct) {
        typedef typename decltype(tt)::type T;
        typedef typename decltype(ct)::type C;
        if (D == 64)
            return r2 ? f(dm_kernel<T, C, 64, true, NS>())
                      : f(dm_kernel<T, C, 64, false, NS>());
        return r2 ? f(dm_kernel<T, C, 128, true, NS>()) : f(dm_kernel<T, C, 128, false, NS>());
    });
}
template <typename F> static auto dm_instance(const struct pgd_cuda_attn *a, int stages, F &&f)
{
    return stages == 3 ? dm_instance_ns<3>(a, f) : dm_instance_ns<2>(a, f);
}

int pgd__attn_decode_mma_occupancy(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                                   int stages)
{
    if (a->p.n_kv_heads <= 0 ||
        !pgd__attn_decode_mma_ok(a->dtype, a->p.head_dim, a->p.n_heads / a->p.n_kv_heads))
        return 1;
    return dm_instance(a, stages, [&](auto k) {
        typedef decltype(k) K;
        return pgd__kernel_occupancy(K::setup, K::fn(), DM_THREADS, K::SMEM, c->device);
    });
}

int pgd__attn_decode_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                             const pgd__dec_params &p, char *err, size_t errlen)
{
    const int ppb = DM_WARPS >> p.pair_shift;
    const dim3 grid((p.n_items * p.KV + ppb - 1) / ppb, p.n_splits);
    const cudaError_t e = dm_instance(a, p.stages, [&](auto k) {
        typedef decltype(k) K;
        cudaError_t r = pgd__kernel_allow_smem(K::setup, K::fn(), K::SMEM, c->device);
        if (r != cudaSuccess)
            return r;
        return pgd_cuda_launch_smem(c, K::fn(), grid, DM_THREADS, K::SMEM, p);
    });
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "attention (decode, tensor cores) %s%s [%d rows, %d "
                              "heads / %d kv of %d, %d warps a pair, %d stages, %d splits]: %s",
                              pgd_cuda_dt(a->dtype), a->kv_fp8 ? " (e4m3 cache)" : "",
                              p.n_items, p.H, p.KV, a->p.head_dim, p.pair_warps, p.stages,
                              p.n_splits, cudaGetErrorString(e));
    return 0;
}
