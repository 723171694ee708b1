/* The decode GEMV of 4-bit layers in the mma layout (quant_wq.cuh), second streaming
 * version: y [n, out] = x [n, in] @ W^T (+ b) for the n = 1..16 rows of a decode step. The
 * default; PGD_CUDA_WQ_GEMV=s1 takes quant_wq_sgemv.cu's (the first streaming one),
 * PGD_CUDA_WQ_GEMV=old quant_wq_gemv.cu's, for measuring one against another.
 *
 * What it changes against quant_wq_sgemv.cu (30-50% of the 4-bit bound on the H200):
 *   - Half an SM a kernel. One block of 8 warps an SM (PGD_CUDA_WQ_GEMV_BPS=2: two), at
 *     most 128 registers a thread and, for small n, under half the shared memory: the next
 *     kernel's blocks (the next GEMV, programmatic dependent launch) fit beside this one's
 *     and issue their weight loads while this one computes and ends, so the memory is not
 *     idle between kernels (a 4096 x 4096 layer is 8.4 MB: ~2 us of transfer against a
 *     few us of launch, first latency and tail).
 *   - A register ring of NB batches of S2_UNR chunks (a chunk: 16 rows x 64 inputs, 512
 *     contiguous bytes, one 16-byte load a lane): each batch is refilled as soon as it has
 *     been computed, so NB - 1 to NB batches are always in flight (sgemv's two buffers of 8
 *     left 4 KB of 8 KB in flight while a buffer was computed).
 *   - Each warp streams one run of chunks through its ring across several tiles (a warp's
 *     tiles are tl, tl + tpw, ... of the block's), so one wave of blocks covers the layer
 *     (gate_up: 14 tiles a block) and the ring runs on over a tile's end.
 *   - x staged in shared memory in the order of the B fragments: lane t's eight 32-bit
 *     pairs of a chunk (inputs 16 s + 8 h + 2t, + 1 for s < 4, h < 2) are 32 contiguous
 *     bytes, two 16-byte loads a chunk instead of eight 4-byte ones, rows padded by 16
 *     bytes so the tokens of a load phase hit distinct banks; copied by cp.async (4 bytes
 *     a pair), or gathered through perm (act-order) 8 inputs at a time.
 *   - The scale tables: the tile rows' {scale, zero} copied by cp.async before the weights
 *     are asked for (so they do not queue behind them), then turned into the per-lane
 *     {scale g, scale g + 8, B + zero g, B + zero g + 8} table (one 16-byte load a group).
 *   - n = 9..16 (two token tiles) stay on this kernel wherever x fits shared memory (up to
 *     16 rows of 4096: gate_up at 16 rows no longer falls back to the old kernel).
 * The arithmetic is quant_wq_sgemv.cu's (exact q - zero as 16-bit pairs, mma.sync m16n8k16,
 * float32 sums scaled once a chunk or half chunk); the ks warps splitting a tile meet at
 * its end in shared memory (a named barrier for their ks warps, sums double-buffered) and
 * the first adds them in slice order: deterministic, one launch. Rows x does not fit (down
 * at 7 or more rows) take quant_wq_sgemv.cu's path. */
#include "kernels/cuda/quant_wq.cuh"
#include "kernels/cuda/cp_async.cuh"
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define S2_WARPS 8                   /* warps a block */
#define S2_UNR 4                     /* chunks a batch */
#define S2_XPAD 4                    /* 32-bit words of padding after each staged x row */
#define S2_MPAD 4                    /* 32-bit words of padding after each copied meta row */
#define S2_GATHER_UNR 4              /* 8-input pieces a thread gathers at once */

/* Batches a warp's ring holds (in flight while one is computed: NB - 1 to NB): fewer with
 * two token tiles, whose B fragments and sums take the registers. */
template <int NT> struct s2_ring {
    static constexpr int NB = NT == 1 ? 4 : 3;
};

struct s2_args {
    const uint4 *w;                  /* [tiles][kq][32] */
    const __half2 *meta;             /* [out_pad][groups] */
    const int32_t *perm;             /* [in] or NULL: x gathered through it */
    int kq, groups;                  /* 64-input chunks a row; groups a row */
    uint32_t gmul;                   /* 32-input half h2's group: h2 gmul >> gsh (wq_group) */
    int gsh;
    int ks, tpw, kpu;                /* warps a tile; tile lanes a block (8 / ks); chunks a warp */
    int tb;                          /* tiles a block: tpw x (tiles a tile lane) */
    int tiles, in, out, n;           /* n: rows of this launch (<= 8 NT) */
    int xmode;                       /* 0: x 4-byte aligned, copied; 1: gathered (perm or 2-byte) */
    int xrow, mrow;                  /* staged x's and copied meta's row strides (32-bit words) */
    int xoff;                        /* staged x's offset in its region (words): 0, x in place
                                        of the copied meta rows; else after them */
    int ms_bytes, xr_bytes;          /* the table's bytes; the x / raw meta region's */
    int red_bytes;                   /* the warps' sums' bytes (ks > 1) */
};

/* The zero taken out of the inner loop (ZF, PGD_CUDA_WQ_GEMV_ZF=1): the tensor cores
 * multiply B + q (one LOP3 a pair, no subtract) and each unit's (chunk's, or half chunk's)
 * float32 sums lose (B + zero) times the unit's x sum, computed once a block. B is small so
 * that the float32 sums keep what the exact q - zero would: 128 in bf16 (nibble in mantissa
 * bits 0-3), 64 in fp16 (bits 4-7: 64 + q exactly, not 1024 + q). */
template <typename T> struct s2_zf;
template <> struct s2_zf<__nv_bfloat16> {
    static constexpr uint32_t BITS = 0x43004300u, MASK = 0x000F000Fu;
    static constexpr float BIAS = 128.0f;
};
template <> struct s2_zf<__half> {
    static constexpr uint32_t BITS = 0x54005400u, MASK = 0x00F000F0u;
    static constexpr float BIAS = 64.0f;
};

/* (w & MASK) | BITS for T's zero-folded form: one LOP3. */
template <typename T>
__device__ __forceinline__ uint32_t s2_zf_pair(uint32_t w)
{
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(w), "n"(s2_zf<T>::MASK),
        "r"(s2_zf<T>::BITS));
    return r;
}

/* d (4 float32) += A (16 x 16) @ B (16 x 8): as quant_wq_sgemv.cu's, not volatile. */
#define S2_MMA(ty)                                                                             \
    asm("mma.sync.aligned.m16n8k16.row.col.f32." ty "." ty ".f32 {%0, %1, %2, %3}, "           \
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                                        \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                       \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1))
template <typename T>
__device__ __forceinline__ void s2_mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    if constexpr (std::is_same<T, __half>::value)
        S2_MMA("f16");
    else
        S2_MMA("bf16");
}
#undef S2_MMA

/* A warp's share: tile lane tl (tiles tile0 + tl + i tpw, i < nti), chunks [kbeg, kbeg +
 * nch) of each, nbt batches a tile (at least one: a warp without chunks still meets its
 * tile's other warps at every tile's end). */
struct s2_warp {
    int tile0, tl, nti, kbeg, nch, nbt;
};

/* v = the lane's 16 bytes of batch (li, lb) of the warp (tile li, chunks lb S2_UNR on),
 * then the cursor moves on; nothing past the warp's last tile. */
__device__ __forceinline__ void s2_load(uint4 (&v)[S2_UNR], const s2_args &a, const s2_warp &wv,
                                        int lane, int &li, int &lb)
{
    if (li >= wv.nti)
        return;
    const int tile = wv.tile0 + wv.tl + li * a.tpw, j0 = lb * S2_UNR;
    const uint4 *p = a.w + ((size_t)tile * a.kq + wv.kbeg + j0) * 32 + lane;
#pragma unroll
    for (int u = 0; u < S2_UNR; u++)
        if (j0 + u < wv.nch)
            v[u] = ld_stream(p + u * 32);
    if (++lb == wv.nbt) {
        lb = 0;
        li++;
    }
}

/* Chunk c of the warp's tile into tot: mt the tile's table at the lane's row g; xr[nt] the
 * lane's fragment-order x of token nt 8 + g (shared memory), read only for tokens < n; ZF:
 * sx the units' x sums [units][16 tokens] at the lane's token 2t. */
template <typename T, int NT, int MG, bool ZF>
__device__ __forceinline__ void s2_chunk(const s2_args &a, const uint4 &v, int c,
                                         const uint4 *mt, const uint32_t *const (&xr)[NT],
                                         const float *sx, int lane, float (&tot)[NT][4])
{
    const int g = lane >> 2;
    uint4 xq[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        if (nt * 8 + g < a.n) {
            const uint4 *p = reinterpret_cast<const uint4 *>(xr[nt] + c * 32);
            xq[nt][0] = p[0];
            xq[nt][1] = p[1];
        } else {
            xq[nt][0] = xq[nt][1] = make_uint4(0, 0, 0, 0);
        }
    }
    const uint32_t words[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
    for (int h = 0; h < MG; h++) {
        const uint4 m = mt[wq_group(a.gmul, a.gsh, 2 * c + h) * 8];
        float acc[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[nt][i] = 0.0f;
#pragma unroll
        for (int s = h * 4 / MG; s < (h + 1) * 4 / MG; s++) {
            /* word s: the 16 x 16 tile of inputs c * 64 + s * 16 (quant_wq_mma.cu's order) */
            uint32_t A[4];
            const uint32_t ws = words[s];
            if (!ZF) {
                A[0] = sub_pair<T>(nibble_pair<T>(ws), m.z);
                A[1] = sub_pair<T>(nibble_pair<T>(ws >> 4), m.w);
                A[2] = sub_pair<T>(nibble_pair<T>(ws >> 8), m.z);
                A[3] = sub_pair<T>(nibble_pair<T>(ws >> 12), m.w);
            } else if (std::is_same<T, __half>::value) {   /* nibbles into bits 4-7 */
                A[0] = s2_zf_pair<T>(ws << 4);
                A[1] = s2_zf_pair<T>(ws);
                A[2] = s2_zf_pair<T>(ws >> 4);
                A[3] = s2_zf_pair<T>(ws >> 8);
            } else {                                      /* nibbles into bits 0-3 */
                A[0] = s2_zf_pair<T>(ws);
                A[1] = s2_zf_pair<T>(ws >> 4);
                A[2] = s2_zf_pair<T>(ws >> 8);
                A[3] = s2_zf_pair<T>(ws >> 12);
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const uint4 &q = xq[nt][s >> 1];
                s2_mma<T>(acc[nt], A, (s & 1) ? q.z : q.x, (s & 1) ? q.w : q.y);
            }
        }
        const float s0 = __uint_as_float(m.x), s8 = __uint_as_float(m.y);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            if (ZF) {                /* acc - (B + zero) x's unit sum, tokens 2t and 2t + 1 */
                const float2 xs = *reinterpret_cast<const float2 *>(sx + (MG * c + h) * 16 +
                                                                      nt * 8);
                const float z0 = __uint_as_float(m.z), z8 = __uint_as_float(m.w);
                acc[nt][0] = fmaf(-z0, xs.x, acc[nt][0]);
                acc[nt][1] = fmaf(-z0, xs.y, acc[nt][1]);
                acc[nt][2] = fmaf(-z8, xs.x, acc[nt][2]);
                acc[nt][3] = fmaf(-z8, xs.y, acc[nt][3]);
            }
            tot[nt][0] = fmaf(s0, acc[nt][0], tot[nt][0]);
            tot[nt][1] = fmaf(s0, acc[nt][1], tot[nt][1]);
            tot[nt][2] = fmaf(s8, acc[nt][2], tot[nt][2]);
            tot[nt][3] = fmaf(s8, acc[nt][3], tot[nt][3]);
        }
    }
}

/* The end of the warp's it-th tile (tile, block-local tile index tl_tile): ks 1, the warp
 * writes its y; else the tile's ks warps put their sums in red[it % 2] (double-buffered:
 * one barrier a tile), meet at named barrier 1 + tl (ks warps), and slice 0 adds them in
 * slice order and writes y. tot is zero afterwards. */
template <typename T, int NT>
__device__ __forceinline__ void s2_tile_end(const s2_args &a, int tile, int it, int tl, int slice,
                                            int warp, int lane, float *red, float (&tot)[NT][4],
                                            const T *__restrict__ b, T *__restrict__ y)
{
    bool write = true;
    if (a.ks > 1) {
        float *rb = red + (size_t)(it & 1) * S2_WARPS * NT * 4 * 32;
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                rb[((warp * NT + nt) * 4 + i) * 32 + lane] = tot[nt][i];
        asm volatile("bar.sync %0, %1;" ::"r"(1 + tl), "r"(a.ks * 32) : "memory");
        write = slice == 0;
        if (write)
            for (int s = 1; s < a.ks; s++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        tot[nt][i] += rb[(((warp + s) * NT + nt) * 4 + i) * 32 + lane];
    }
    if (write)
        wq_store_tile<T, NT>(tot, tile, lane, a.out, a.n, b, y);
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            tot[nt][i] = 0.0f;
}

/* raw [ntb 16][mrow] 32-bit = meta rows [16 tile0, 16 (tile0 + ntb)) (each row's groups
 * half2, then padding so that 8 rows' reads of one group hit distinct banks), by cp.async:
 * 16 bytes a copy where the rows are 16-byte multiples, else 4. Committed, not waited for. */
__device__ __forceinline__ void s2_copy_meta(const s2_args &a, int tile0, int ntb, uint32_t *raw)
{
    const int rows = ntb * 16, groups = a.groups;
    const uint32_t *src = reinterpret_cast<const uint32_t *>(a.meta) + (size_t)tile0 * 16 * groups;
    if (groups % 4 == 0) {
        const int per = groups / 4;
        for (int i = threadIdx.x; i < rows * per; i += blockDim.x) {
            const int r = i / per, q = i - r * per;
            cp_async16(smem_u32(raw + r * a.mrow + q * 4), src + (size_t)r * groups + q * 4, true);
        }
    } else {
        for (int i = threadIdx.x; i < rows * groups; i += blockDim.x) {
            const int r = i / groups, q = i - r * groups;
            cp_async4(smem_u32(raw + r * a.mrow + q), src + (size_t)r * groups + q, true);
        }
    }
    cp_async_commit();
}

/* ms [ntb][groups][8] uint4 = {scale of row g, of row g + 8 (float32 bits), B + zero of row g,
 * of row g + 8 (pairs in T: what the nibble pairs subtract; ZF: float32 bits of s2_zf's
 * B + zero)} from the copied rows raw. A thread takes one (group, g) a tile: 8 rows' reads
 * of a group in distinct banks (mrow), one 16-byte store. */
template <typename T, bool ZF>
__device__ __forceinline__ void s2_meta_table(const s2_args &a, int ntb, const uint32_t *raw,
                                              uint4 *ms)
{
    const int groups = a.groups, per_tile = groups * 8;
    for (int tl = 0; tl < ntb; tl++)
        for (int i = threadIdx.x; i < per_tile; i += blockDim.x) {
            const int gg = i >> 3, r = i & 7;
            const uint32_t u0 = raw[(tl * 16 + r) * a.mrow + gg];
            const uint32_t u8 = raw[(tl * 16 + r + 8) * a.mrow + gg];
            const __half2 m0 = *reinterpret_cast<const __half2 *>(&u0);
            const __half2 m8 = *reinterpret_cast<const __half2 *>(&u8);
            uint4 e;
            e.x = __float_as_uint(__low2float(m0));
            e.y = __float_as_uint(__low2float(m8));
            if (ZF) {
                e.z = __float_as_uint(s2_zf<T>::BIAS + __high2float(m0));
                e.w = __float_as_uint(s2_zf<T>::BIAS + __high2float(m8));
            } else {
                e.z = pair_of<T>(mma_magic<T>::BIAS + __high2float(m0));
                e.w = pair_of<T>(mma_magic<T>::BIAS + __high2float(m8));
            }
            ms[((size_t)tl * groups + gg) * 8 + r] = e;
        }
}

/* xf [n][xrow] 32-bit, fragment order: word c 32 + t 8 + s 2 + h of a row = the pair of
 * inputs (k, k + 1), k = 64 c + 16 s + 8 h + 2 t (PERM: x[perm[k]], x[perm[k + 1]]). xmode
 * 0: x 4-byte aligned, no perm: one 4-byte cp.async a pair (waited for here); else 8
 * inputs a piece gathered into registers, S2_GATHER_UNR pieces in flight a thread. */
template <typename T>
__device__ __forceinline__ void s2_stage_x(const s2_args &a, const T *__restrict__ x,
                                           uint32_t *xf)
{
    const int n = a.n, in = a.in;
    if (a.xmode == 0) {
        const int pairs = in / 2;
        for (int r = 0; r < n; r++)
            for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
                const int k = 2 * p;
                const int c = k >> 6, s = (k >> 4) & 3, h = (k >> 3) & 1, t = (k >> 1) & 3;
                cp_async4(smem_u32(xf + r * a.xrow + c * 32 + t * 8 + s * 2 + h),
                          x + (size_t)r * in + k, true);
            }
        cp_async_commit();
        cp_async_wait<0>();
        return;
    }
    const int vr = in / 8, total = n * vr;
    for (int i0 = threadIdx.x; i0 < total; i0 += S2_GATHER_UNR * blockDim.x) {
        uint4 v[S2_GATHER_UNR];
#pragma unroll
        for (int u = 0; u < S2_GATHER_UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i < total) {
                const int r = i / vr, k = (i - r * vr) * 8;
                int idx[8];
                wq_perm8(a.perm, k, idx);
                v[u] = wq_gather8<T>(x + (size_t)r * in, idx);
            }
        }
#pragma unroll
        for (int u = 0; u < S2_GATHER_UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i < total) {
                const int r = i / vr, k = (i - r * vr) * 8;
                const int c = k >> 6, s = (k >> 4) & 3, h = (k >> 3) & 1;
                uint32_t *d = xf + r * a.xrow + c * 32 + s * 2 + h;
                d[0] = v[u].x;
                d[8] = v[u].y;
                d[16] = v[u].z;
                d[24] = v[u].w;
            }
        }
    }
}

/* sx [kq MG][16] float = for each unit (chunk, or half chunk when MG is 2) and token < n
 * the sum of the staged x xf over the unit's inputs (0 for the other tokens). A thread sums
 * one (unit, token), starting at a word of its own (its unit's index) so that the threads
 * of a warp read distinct banks. */
template <typename T, int MG>
__device__ __forceinline__ void s2_x_sums(const s2_args &a, const uint32_t *xf, float *sx, int nt8)
{
    constexpr int WPU = 32 / MG;     /* 32-bit pairs a unit */
    const int units = a.kq * MG;
    for (int r = 0; r < nt8; r++)
        for (int u = threadIdx.x; u < units; u += blockDim.x) {
            float sum = 0.0f;
            if (r < a.n) {
                const uint32_t *xu = xf + (size_t)r * a.xrow + (u / MG) * 32;
                const int h = u % MG;
#pragma unroll 8
                for (int jj = 0; jj < WPU; jj++) {
                    const int j = (jj + u) % WPU;
                    /* MG 2: word t 8 + s 2 + hh of the chunk, s in {2h, 2h + 1} */
                    const int off = MG == 1 ? j : (j >> 2) * 8 + (2 * h + ((j >> 1) & 1)) * 2 + (j & 1);
                    const uint32_t wd = xu[off];
                    const T *e = reinterpret_cast<const T *>(&wd);
                    sum += to_f<T>(e[0]) + to_f<T>(e[1]);
                }
            }
            sx[u * 16 + r] = sum;
        }
}

/* NT tiles of 8 tokens (n <= 8 NT); MG 1: a chunk lies in one group, 2: its halves are
 * scaled apart. Block: S2_WARPS warps, tiles [blockIdx.x tb, + tb); warp w is slice w % ks
 * of tile lane w / ks, which takes the block's tiles tl, tl + tpw, ... Shared memory: the
 * table [tb][groups][8] uint4; then the copied meta rows [16 tb][mrow] and the staged x
 * [n][xrow] (after them, or in their place once the table is made when both do not fit
 * shared memory); then (ks > 1) the warps' sums
 * [2][S2_WARPS][NT][4][32] float; then (ZF) the x sums [kq MG][16] float. At most 128
 * registers a thread (two blocks an SM fit). */
template <typename T, int NT, int MG, bool ZF>
__global__ void __launch_bounds__(S2_WARPS * 32, 2)
wq_sgemv2_kernel(const s2_args a, const T *__restrict__ x, const T *__restrict__ b,
                 T *__restrict__ y)
{
    constexpr int NB = s2_ring<NT>::NB;
    extern __shared__ uint4 s2_smem[];
    char *sm = reinterpret_cast<char *>(s2_smem);
    uint4 *ms = reinterpret_cast<uint4 *>(sm);
    uint32_t *region = reinterpret_cast<uint32_t *>(sm + a.ms_bytes);
    float *red = reinterpret_cast<float *>(sm + a.ms_bytes + a.xr_bytes);
    float *sx = reinterpret_cast<float *>(sm + a.ms_bytes + a.xr_bytes + a.red_bytes);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    s2_warp wv;
    wv.tl = warp / a.ks;
    const int slice = warp - wv.tl * a.ks;
    wv.tile0 = blockIdx.x * a.tb;
    const int ntb = min(a.tb, a.tiles - wv.tile0);
    wv.nti = ntb > wv.tl ? (ntb - wv.tl + a.tpw - 1) / a.tpw : 0;
    wv.kbeg = slice * a.kpu;
    wv.nch = max(0, min(a.kq, wv.kbeg + a.kpu) - wv.kbeg);
    wv.nbt = max(1, (wv.nch + S2_UNR - 1) / S2_UNR);
    pdl_trigger();

    /* weights and scales are never written by a step: asked for before the previous kernel
     * ends, the scales first (the first chunks cannot be used without them) */
    s2_copy_meta(a, wv.tile0, ntb, region);
    uint4 v[NB][S2_UNR];
    int li = 0, lb = 0;
#pragma unroll
    for (int q = 0; q < NB; q++)
        s2_load(v[q], a, wv, lane, li, lb);
    uint32_t *xf = region + a.xoff;
    if (a.xoff == 0) {               /* x takes the copied rows' place: they are read first */
        cp_async_wait<0>();
        __syncthreads();
        s2_meta_table<T, ZF>(a, ntb, region, ms);
        __syncthreads();
    }
    pdl_wait();
    s2_stage_x<T>(a, x, xf);         /* (x's copies and the scales' land together) */
    cp_async_wait<0>();
    __syncthreads();
    if (a.xoff != 0)
        s2_meta_table<T, ZF>(a, ntb, region, ms);
    if (ZF)
        s2_x_sums<T, MG>(a, xf, sx, NT * 8);
    if (a.xoff != 0 || ZF)
        __syncthreads();

    float tot[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            tot[nt][i] = 0.0f;
    const uint32_t *xr[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        xr[nt] = xf + (size_t)min(nt * 8 + g, a.n - 1) * a.xrow + t * 8;
    const int total = wv.nti * wv.nbt;
    int ci = 0, cb = 0;              /* the batch being computed: tile ci, batch cb of it */
    for (int bt = 0; bt < total; bt += NB) {
#pragma unroll
        for (int q = 0; q < NB; q++) {
            if (bt + q >= total)
                break;
            const int tile_l = wv.tl + ci * a.tpw, j0 = cb * S2_UNR;
            const uint4 *mt = ms + (size_t)tile_l * a.groups * 8 + g;
#pragma unroll
            for (int u = 0; u < S2_UNR; u++)
                if (j0 + u < wv.nch)
                    s2_chunk<T, NT, MG, ZF>(a, v[q][u], wv.kbeg + j0 + u, mt, xr, sx + 2 * t,
                                            lane, tot);
            /* this slot's next batch, NB batches on */
            s2_load(v[q], a, wv, lane, li, lb);
            if (++cb == wv.nbt) {
                s2_tile_end<T, NT>(a, wv.tile0 + tile_l, ci, wv.tl, slice, warp, lane, red, tot,
                                   b, y);
                cb = 0;
                ci++;
            }
        }
    }
}

/* ---- host side ------------------------------------------------------------------------------ */
/* Blocks an SM the plan aims at: 1 (the default: the next kernel's blocks fit beside) or 2
 * (PGD_CUDA_WQ_GEMV_BPS=2; read once). */
static int s2_bps(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_WQ_GEMV_BPS");
        v = e && !strcmp(e, "2") ? 2 : 1;
    }
    return v;
}

/* Whether the zero leaves the inner loop (s2_zf): PGD_CUDA_WQ_GEMV_ZF=1 (read once). */
static bool s2_zf_on(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_WQ_GEMV_ZF");
        v = e && !strcmp(e, "1");
    }
    return v != 0;
}

static size_t s2_round16(size_t v) { return (v + 15) / 16 * 16; }

struct s2_plan {
    s2_args a;
    int nt, mg, blocks, bps;
    bool zf;
    size_t smem;
};

/* The launch for n (<= 16) rows: of the splits ks = 1, 2, 4, 8 warps a tile, the one whose
 * warps stream the fewest chunks with at most bps blocks an SM (one wave), fewer warps a
 * tile on a tie (fewer partial sums to add), whose tables, x and sums fit shared memory.
 * false: none fits (x too large: the caller takes quant_wq_sgemv.cu's path), or the rows are
 * past pgd_cuda__wq_group_magic's (which the fits test refuses before). */
static bool s2_make_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                         struct s2_plan *p)
{
    s2_args &a = p->a;
    a = s2_args{};
    a.w = reinterpret_cast<const uint4 *>(w->w);
    a.meta = w->meta;
    a.kq = w->in / 64;
    a.groups = w->groups;
    if (!pgd_cuda__wq_group_magic(w, &a.gmul, &a.gsh))
        return false;
    a.tiles = w->out_pad / 16;
    a.in = w->in;
    a.out = w->out;
    a.n = n;
    a.xrow = a.kq * 32 + S2_XPAD;
    a.mrow = a.groups + S2_MPAD;
    p->nt = n > 8 ? 2 : 1;
    p->mg = w->group_size % 64 == 0 ? 1 : 2;
    p->bps = s2_bps();
    p->zf = s2_zf_on();
    const size_t sxb = p->zf ? (size_t)a.kq * p->mg * 16 * sizeof(float) : 0;
    const int slots = p->bps * (c->sm_count > 0 ? c->sm_count : 1);
    const size_t budget = (size_t)pgd_cuda__smem_budget(c, p->bps);
    const size_t half = (size_t)pgd_cuda__smem_budget(c, 2);
    const size_t xs = (size_t)n * a.xrow * 4;
    long best = -1;
    for (int ks = 1; ks <= S2_WARPS && ks <= a.kq; ks *= 2) {
        const int tpw = S2_WARPS / ks, kpu = (a.kq + ks - 1) / ks;
        const int iters = (a.tiles + slots * tpw - 1) / (slots * tpw);
        const int tb = tpw * iters;
        const size_t ms = s2_round16((size_t)tb * a.groups * 8 * sizeof(uint4));
        const size_t raw = s2_round16((size_t)tb * 16 * a.mrow * 4);
        const size_t red = ks > 1 ? (size_t)2 * S2_WARPS * p->nt * 4 * 32 * sizeof(float) : 0;
        /* x after the copied rows where both fit (their loads then overlap) and that does
         * not take the block past half an SM's shared memory, else in their place */
        const size_t fixed = ms + red + sxb, apart_b = fixed + raw + s2_round16(xs);
        const size_t alias_b = fixed + s2_round16(raw > xs ? raw : xs);
        const bool apart = apart_b <= budget && (apart_b <= half || alias_b > half);
        const size_t xr = apart ? raw + s2_round16(xs) : s2_round16(raw > xs ? raw : xs);
        const long cost = (long)iters * kpu;
        if (ms + xr + red + sxb > budget || (best >= 0 && cost >= best))
            continue;
        a.xoff = apart ? (int)(raw / 4) : 0;
        best = cost;
        a.ks = ks;
        a.tpw = tpw;
        a.kpu = kpu;
        a.tb = tb;
        a.ms_bytes = (int)ms;
        a.xr_bytes = (int)xr;
        a.red_bytes = (int)red;
        p->smem = ms + xr + red + sxb;
        p->blocks = (a.tiles + tb - 1) / tb;
    }
    return best >= 0;
}

/* One launch: the kernel for NT, MG, ZF, its shared-memory limit raised past the default
 * 48 KB once on each device that needs it (a per-device attribute). */
template <typename T, int NT, int MG, bool ZF>
static cudaError_t s2_launch(struct pgd_cuda_ctx *c, const s2_plan &p, const T *x, const T *b,
                             T *y)
{
    static uint64_t raised;          /* bit d: done on device d (devices 0..63) */
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    if (p.smem > (48 << 10) && !(raised & bit)) {
        cudaError_t e = cudaFuncSetAttribute(wq_sgemv2_kernel<T, NT, MG, ZF>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             pgd_cuda__smem_budget(c, 1));
        if (e != cudaSuccess)
            return e;
        raised |= bit;
    }
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    pgd_cuda__wq_launch_cfg(c, dim3(p.blocks), dim3(S2_WARPS * 32), p.smem, dim3(1), &cfg, attr);
    return cudaLaunchKernelEx(&cfg, wq_sgemv2_kernel<T, NT, MG, ZF>, p.a, x, b, y);
}

template <typename T, int NT, int MG>
static cudaError_t s2_launch_zf(struct pgd_cuda_ctx *c, const s2_plan &p, const T *x,
                                const T *b, T *y)
{
    return p.zf ? s2_launch<T, NT, MG, true>(c, p, x, b, y)
                : s2_launch<T, NT, MG, false>(c, p, x, b, y);
}

/* Act-order (or 2-byte aligned) x gathered by the block while it stages x when that is at
 * most one round of gathers a thread (each round waits on perm, then on x); more (down, or
 * several rows) is gathered first by quant_wq_gemm.cu's gathering kernel and then copied. */
static bool s2_pregather(const s2_args &a)
{
    return (long)a.n * a.in / 8 > (long)S2_GATHER_UNR * S2_WARPS * 32;
}

template <typename T>
static int s2_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const T *x, const int32_t *perm,
                   int n, const struct pgd_cuda_wq *w, const T *b, T *y, char *err,
                   size_t errlen)
{
    for (int r0 = 0; r0 < n; r0 += 16) {
        const int rows = n - r0 < 16 ? n - r0 : 16;
        const T *xr = x + (size_t)r0 * w->in;
        T *yr = y + (size_t)r0 * w->out;
        s2_plan p;
        if (!s2_make_plan(c, w, rows, &p)) {
            /* x does not fit shared memory: the first streaming GEMV's path */
            if (pgd_cuda__wq_sgemv(c, dt, xr, perm, rows, w, b, yr, err, errlen))
                return 1;
            continue;
        }
        p.a.perm = perm;
        /* (x only 2-byte aligned is gathered the same way, through no perm) */
        if ((perm || (uintptr_t)xr % 4 != 0) && s2_pregather(p.a)) {
            if (pgd_cuda__wq_gather(c, dt, xr, perm, rows, w->in, c->qscratch, err, errlen))
                return 1;
            xr = (const T *)c->qscratch;
            p.a.perm = NULL;
        }
        p.a.xmode = p.a.perm || (uintptr_t)xr % 4 != 0 ? 1 : 0;
        cudaError_t e;
        if (p.nt == 1)
            e = p.mg == 1 ? s2_launch_zf<T, 1, 1>(c, p, xr, b, yr)
                          : s2_launch_zf<T, 1, 2>(c, p, xr, b, yr);
        else
            e = p.mg == 1 ? s2_launch_zf<T, 2, 1>(c, p, xr, b, yr)
                          : s2_launch_zf<T, 2, 2>(c, p, xr, b, yr);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "W4A16 decode GEMV x [%d, %d] -> %d (rows %d..%d, "
                                  "%d warps a tile, %d tiles a block, %zu bytes of shared "
                                  "memory): %s", n, w->in, w->out, r0, r0 + rows - 1, p.a.ks,
                                  p.a.tb, p.smem, cudaGetErrorString(e));
    }
    return 0;
}

/* Which decode GEMV the environment asks for: PGD_CUDA_WQ_GEMV=s1 or old take the earlier
 * ones (read once). */
static bool s2_env_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("PGD_CUDA_WQ_GEMV");
        on = !(e && (!strcmp(e, "old") || !strcmp(e, "s1")));
    }
    return on != 0;
}

bool pgd_cuda__wq_sgemv2_fits(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w)
{
    s2_plan p;
    return s2_env_on() && w->mma && w->group_size % 32 == 0 && pgd_cuda__wq_sgemv_fits(c, w) &&
           s2_make_plan(c, w, 1, &p);
}

void pgd_cuda__wq_sgemv2_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                              char *buf, size_t len)
{
    s2_plan p;
    if (s2_make_plan(c, w, n < 16 ? n : 16, &p))
        snprintf(buf, len, "gemv/v%dx%d%s%s", p.a.ks, p.a.tb / p.a.tpw, p.bps > 1 ? "b2" : "",
                 p.zf ? "z" : "");
    else
        pgd_cuda__wq_sgemv_plan(c, w, n, buf, len);
}

int pgd_cuda__wq_sgemv2(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                        const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                        void *y, char *err, size_t errlen)
{
    if (dt == PGD_DTYPE_BF16)
        return s2_gemv<__nv_bfloat16>(c, dt, (const __nv_bfloat16 *)x, perm, n, w,
                                      (const __nv_bfloat16 *)b, (__nv_bfloat16 *)y, err, errlen);
    return s2_gemv<__half>(c, dt, (const __half *)x, perm, n, w, (const __half *)b, (__half *)y,
                           err, errlen);
}
