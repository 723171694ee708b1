/* Attention for decode rows on the tensor cores: one query token of a sequence against its
 * paged K/V, BF16/F16 (cache in the dtype or e4m3), head_dim 64 or 128, up to 16 query heads
 * a KV head. attention_decode.cu plans the context splits, picks this kernel or its SIMT one
 * and merges the splits.
 *
 * Decode is a stream of K/V bytes with little math per byte, so the kernel is built around
 * keeping many bytes in flight with few steps between them. A block takes one (row, KV head,
 * context split) and reads each key's K and V row once for all the query heads of the KV
 * head (grouped query). Its keys go by in tiles of 16 (one KV block at block_size 16), tile
 * i of the range to warp i % 4: each warp runs its own pipeline, with no block barrier in
 * the loop: DM_STAGES tiles of K and V in shared memory, filled by cp.async 16 bytes at a time
 * (zeros for keys outside the range), the next tile's slots read from the block table while
 * the current one is in the math. Per tile, the warp's query heads are the 16 rows of an
 * mma.sync m16n8k16 A operand (rows past the group are zero): S = Q K^T (K by ldmatrix),
 * scale and mask in float32, online softmax in base 2, P rounded to the dtype, O += P V (V by
 * ldmatrix.trans), float32 accumulators: the same math as attention_mma.cu's kernel. At the
 * end the four warps' (max, sum, accumulators) merge through shared memory into `out`, or
 * into the split partials [n_items, H, n_splits, D + 2].
 *
 * An e4m3 cache: the tiles are staged as bytes and each warp widens its tile to the dtype in
 * shared memory before the math (e4m3 is exact in both 16-bit dtypes); the K scale is in
 * scale_log2, the V scale multiplies the output.
 *
 * Shared memory: 4 warps x DM_STAGES x (K + V) tiles of 16 rows of D + 8 elements (the pad
 * puts the 8 rows an ldmatrix reads in different bank groups): 70 KB at head_dim 128 in
 * bf16, three blocks an SM. sm_80 and later. */
#include "kernels/cuda/attention_decode.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include "kernels/cuda/quant_mma.cuh"
#include <math.h>
#include <atomic>

#define DM_WARPS 4
#define DM_THREADS (32 * DM_WARPS)
#define DM_KEYS 16                   /* keys a warp's tile */
#define DM_STAGES 2                  /* tiles a warp has in shared memory */
#define DM_FULL 0xffffffffu

struct dm_params {
    const void *q;                   /* [n_tokens, H, D] */
    void *out;                       /* [n_tokens, H, D] */
    const void *kc, *vc;             /* [slots, KV, D] */
    const int32_t *block_tables, *positions;
    const int4 *items;               /* {seq, token, 1, 0} [n_items] */
    float *part;                     /* [n_items, H, n_splits, D + 2] when n_splits > 1 */
    int block_size, bs_shift;        /* bs_shift: log2(block_size), or -1 */
    int max_blocks, H, KV, group, window, n_splits, split_len;
    float scale_log2;                /* scale * log2(e) (* k_scale): softmax in base 2 */
    float v_scale;                   /* e4m3 cache: the output's factor */
};

template <typename C, int D> struct dm_shape {
    static constexpr bool F8 = kv_fp8_t<C>::value;
    static constexpr int CPR = D * (int)sizeof(C) / 16;   /* 16-byte chunks a cache row */
    static constexpr int EPC = 16 / (int)sizeof(C);       /* elements a chunk */
    static constexpr int ROW = F8 ? D + 16 : D + 8;       /* a staged row (elements of C) */
    static constexpr int TROW = D + 8;                    /* a row of T the math reads */
    static constexpr int STAGE = 2 * DM_KEYS * ROW * (int)sizeof(C);   /* bytes: K, V */
    static constexpr int CONV = F8 ? 2 * DM_KEYS * TROW * 2 : 0;       /* widened K, V */
    static constexpr int WARP = DM_STAGES * STAGE + CONV;
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

/* ---- the kernel ------------------------------------------------------------------------------ */
template <typename T, typename C, int D, bool R2>
__global__ void __launch_bounds__(DM_THREADS) attn_decode_mma_kernel(const dm_params p)
{
    typedef dm_shape<C, D> S;
    constexpr bool F8 = S::F8;
    extern __shared__ __align__(16) unsigned char dm_smem[];

    pdl_trigger();
    pdl_wait();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
    const int4 item = p.items[blockIdx.x];
    const int seq = item.x, t = item.y, kvh = blockIdx.y, split = blockIdx.z;
    const int h0 = kvh * p.group;
    const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
    const int64_t kv_stride = (int64_t)p.KV * D;         /* between cache slots */
    const C *kc = (const C *)p.kc + (int64_t)kvh * D, *vc = (const C *)p.vc + (int64_t)kvh * D;

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
    /* Without a window the block's keys start at its split's start, whatever the position:
     * the table entries of its first tiles are read beside the position (not after it),
     * clamped to the row (the entries past the sequence's end are not used). */
    int pre[DM_STAGES];
    {
        const int key0 = split * p.split_len / DM_KEYS * DM_KEYS + warp * DM_KEYS +
                         (lane & (DM_KEYS - 1));
#pragma unroll
        for (int k = 0; k < DM_STAGES; k++) {
            const int j = key0 + k * DM_WARPS * DM_KEYS;
            const int blk = min(p.bs_shift >= 0 ? j >> p.bs_shift : j / p.block_size,
                                p.max_blocks - 1);
            pre[k] = p.window > 0 ? 0 : __ldg(table + blk);
        }
    }
    /* The block's keys [lo, hi]: the causal limit, the sliding window, the split. */
    const int pos = p.positions[t];
    const int first = p.window > 0 ? max(0, pos - p.window + 1) : 0;
    const int lo = max(first, split * p.split_len);
    const int hi = min(pos, split * p.split_len + (p.split_len - 1));
    const int tile0 = lo / DM_KEYS;
    const int n_tiles = lo <= hi ? hi / DM_KEYS - tile0 + 1 : 0;
    const int nw = n_tiles > warp ? (n_tiles - 1 - warp) / DM_WARPS + 1 : 0;   /* this warp's */

    /* The cache slot of key (lane % 16) of this warp's tile k, -1 outside [lo, hi]; entry:
     * the key's table entry when already read, else -1. */
    auto tile_slot = [&](int k, int entry) -> int {
        const int j = (tile0 + warp + k * DM_WARPS) * DM_KEYS + (lane & (DM_KEYS - 1));
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

    /* Prologue: tiles 0 .. DM_STAGES - 2, their slots read together. */
    {
        int sl[DM_STAGES - 1];
#pragma unroll
        for (int k = 0; k < DM_STAGES - 1; k++)
            sl[k] = tile_slot(k, p.window > 0 ? -1 : pre[k]);
#pragma unroll
        for (int k = 0; k < DM_STAGES - 1; k++) {
            if (k < nw)
                issue(k, sl[k]);
            cp_async_commit();
        }
    }
    int sl_next = tile_slot(DM_STAGES - 1, p.window > 0 ? -1 : pre[DM_STAGES - 1]);
    for (int k = 0; k < nw; k++) {
        const int ahead = k + DM_STAGES - 1;
        if (ahead < nw)
            issue(ahead % DM_STAGES, sl_next);
        cp_async_commit();
        sl_next = tile_slot(k + DM_STAGES, -1);         /* in flight during the math */
        cp_async_wait<DM_STAGES - 1>();                       /* tile k is in */
        __syncwarp();
        const unsigned char *st = wsm + (k % DM_STAGES) * S::STAGE;
        const T *kt, *vt;
        if constexpr (F8) {
            /* Widen the tile's e4m3 rows into the warp's T tiles, 8 bytes a step. */
            T *kd = reinterpret_cast<T *>(wsm + DM_STAGES * S::STAGE), *vd = kd + DM_KEYS * S::TROW;
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
        const int key0 = (tile0 + warp + k * DM_WARPS) * DM_KEYS;
        dm_tile<T, D, R2>(kt, vt, key0, lo, hi, qf, acc, m, l, p.scale_log2, lane);
        __syncwarp();                                   /* before the stage is refilled */
    }
    cp_async_wait<0>();
    __syncthreads();

    /* The warps' rows through shared memory: fo[w][row][D], fm / fl [w][row]. */
    float *fo = reinterpret_cast<float *>(dm_smem);
    float *fm = fo + DM_WARPS * 16 * D, *fl = fm + DM_WARPS * 16;
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        l[hr] += __shfl_xor_sync(DM_FULL, l[hr], 1);
        l[hr] += __shfl_xor_sync(DM_FULL, l[hr], 2);
    }
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
    T *out = (T *)p.out;
    for (int idx = threadIdx.x; idx < p.group * D; idx += DM_THREADS) {
        const int r = idx / D, d = idx % D;
        float M = -INFINITY, L = 0.0f, O = 0.0f;
#pragma unroll
        for (int w = 0; w < DM_WARPS; w++)
            if (fl[w * 16 + r] > 0.0f)
                M = fmaxf(M, fm[w * 16 + r]);
#pragma unroll
        for (int w = 0; w < DM_WARPS; w++)
            if (fl[w * 16 + r] > 0.0f) {
                const float e = exp2f(fm[w * 16 + r] - M);
                L += e * fl[w * 16 + r];
                O += e * fo[(w * 16 + r) * D + d];
            }
        if constexpr (F8)
            O *= p.v_scale;
        const int h = h0 + r;
        if (p.n_splits == 1) {
            out[((int64_t)t * p.H + h) * D + d] = from_f<T>(L > 0.0f ? O / L : 0.0f);
        } else {
            float *part = p.part + (((int64_t)blockIdx.x * p.H + h) * p.n_splits + split) * (D + 2);
            part[d] = O;
            if (d == 0) {
                part[D] = M;
                part[D + 1] = L;
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

/* Dynamic shared memory above 48 KiB is granted per function and device, once. */
template <typename T, typename C, int D, bool R2> static cudaError_t dm_allow_smem(int device)
{
    static std::atomic<unsigned> done(0);
    const unsigned bit = device >= 0 && device < 32 ? 1u << device : 0;
    if (bit && (done.load() & bit))
        return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(attn_decode_mma_kernel<T, C, D, R2>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         dm_shape<C, D>::SMEM);
    if (e == cudaSuccess && bit)
        done.fetch_or(bit);
    return e;
}

template <typename T, typename C, int D, bool R2>
static cudaError_t dm_launch(struct pgd_cuda_ctx *c, const dm_params &p, dim3 grid)
{
    cudaError_t e = dm_allow_smem<T, C, D, R2>(c->device);
    if (e != cudaSuccess)
        return e;
    return pgd_cuda_launch_smem(c, attn_decode_mma_kernel<T, C, D, R2>, grid, DM_THREADS,
                                dm_shape<C, D>::SMEM, p);
}

template <typename T, typename C>
static cudaError_t dm_launch_d(struct pgd_cuda_ctx *c, int D, const dm_params &p, dim3 grid)
{
    const bool r2 = p.group > 8;
    if (D == 64)
        return r2 ? dm_launch<T, C, 64, true>(c, p, grid) : dm_launch<T, C, 64, false>(c, p, grid);
    return r2 ? dm_launch<T, C, 128, true>(c, p, grid) : dm_launch<T, C, 128, false>(c, p, grid);
}

template <typename T, typename C, int D, bool R2> static int dm_occupancy(int device)
{
    static std::atomic<int> cached(0);
    int n = cached.load();
    if (n > 0)
        return n;
    n = 1;
    if (dm_allow_smem<T, C, D, R2>(device) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attn_decode_mma_kernel<T, C, D, R2>,
                                                      DM_THREADS, dm_shape<C, D>::SMEM) !=
            cudaSuccess ||
        n < 1) {
        (void)cudaGetLastError();
        return 1;
    }
    cached.store(n);
    return n;
}

int pgd__attn_decode_mma_occupancy(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a)
{
    const int D = a->p.head_dim, r2 = a->p.n_heads > 8 * a->p.n_kv_heads;
    const bool bf = a->dtype == PGD_DTYPE_BF16, f8 = a->kv_fp8 != NULL;
    if (!pgd__attn_decode_mma_ok(a->dtype, D, a->p.n_kv_heads > 0 ? a->p.n_heads / a->p.n_kv_heads : 0))
        return 1;
#define DM_OCC(T, C)                                                                       \
    (D == 64 ? (r2 ? dm_occupancy<T, C, 64, true>(c->device)                              \
                   : dm_occupancy<T, C, 64, false>(c->device))                            \
             : (r2 ? dm_occupancy<T, C, 128, true>(c->device)                             \
                   : dm_occupancy<T, C, 128, false>(c->device)))
    if (bf)
        return f8 ? DM_OCC(__nv_bfloat16, kv_e4m3) : DM_OCC(__nv_bfloat16, __nv_bfloat16);
    return f8 ? DM_OCC(__half, kv_e4m3) : DM_OCC(__half, __half);
#undef DM_OCC
}

int pgd__attn_decode_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                             const int4 *items, int n_items, int n_splits, int split_len,
                             float *part, char *err, size_t errlen)
{
    const struct pgd_attn_params *ap = &a->p;
    const int D = ap->head_dim, group = ap->n_heads / ap->n_kv_heads;
    dm_params p;
    p.q = a->q;
    p.out = a->out;
    p.kc = a->k_cache;
    p.vc = a->v_cache;
    p.block_tables = a->block_tables;
    p.positions = a->positions;
    p.items = items;
    p.part = part;
    p.block_size = a->block_size;
    p.bs_shift = -1;
    for (int sh = 0; sh < 30; sh++)
        if (a->block_size == 1 << sh)
            p.bs_shift = sh;
    p.max_blocks = a->max_blocks;
    p.H = ap->n_heads;
    p.KV = ap->n_kv_heads;
    p.group = group;
    p.window = ap->sliding_window;
    p.n_splits = n_splits;
    p.split_len = split_len;
    p.scale_log2 = ap->scale * 1.4426950408889634f;
    p.v_scale = 1.0f;
    if (a->kv_fp8) {
        p.scale_log2 *= a->kv_fp8->k_scale;
        p.v_scale = a->kv_fp8->v_scale;
    }
    const dim3 grid(n_items, p.KV, n_splits);
    cudaError_t e;
    if (a->dtype == PGD_DTYPE_BF16)
        e = a->kv_fp8 ? dm_launch_d<__nv_bfloat16, kv_e4m3>(c, D, p, grid)
                      : dm_launch_d<__nv_bfloat16, __nv_bfloat16>(c, D, p, grid);
    else
        e = a->kv_fp8 ? dm_launch_d<__half, kv_e4m3>(c, D, p, grid)
                      : dm_launch_d<__half, __half>(c, D, p, grid);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "attention (decode, tensor cores) %s%s [%d rows, %d "
                              "heads / %d kv of %d, %d splits of %d]: %s", pgd_cuda_dt(a->dtype),
                              a->kv_fp8 ? " (e4m3 cache)" : "", n_items, ap->n_heads,
                              ap->n_kv_heads, D, n_splits, split_len, cudaGetErrorString(e));
    return 0;
}
