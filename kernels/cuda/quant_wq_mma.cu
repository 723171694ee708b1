/* The tensor-core GEMV of 4-bit layers (decode sizes): mma.sync m16n8k16 with the weights
 * as A (16 output features x 16 inputs), x as B (16 inputs x 8 tokens), float32
 * accumulators. Dequantizing costs two instructions per pair of weights: the pair's
 * nibbles, AND-ed into the mantissas of a 16-bit pair holding B = 128 (bf16) or 1024
 * (fp16), are B + q exactly; subtracting B + zero (one packed 16-bit subtract) leaves the
 * exact integers q - zero, which the tensor cores multiply by x. The group's scale then
 * multiplies the float32 accumulators at each group's end, so the only roundings are the
 * float32 sums'.
 *
 * The packing (mma_pack_word, on the device at create): in lane l's word for a 16 x 16 tile (g = l / 4,
 * t = l % 4), nibble p (j = p % 4, second = p / 4) is the weight of row g + 8 (j % 2),
 * input 2t + 8 (j / 2) + second: shifting the word right by 4j and masking 0x000F000F gives
 * A-fragment register j (rows g / g + 8, inputs 2t, 2t + 1 / 2t + 8, 2t + 9) in one step.
 *
 * A block of 8 warps takes one 16-row tile; its warps split the inputs (64 at a time,
 * QGEMV_UNR blocks of 16 bytes a lane in flight) and meet in shared memory. */
#include "kernels/cuda/quant_wq.cuh"
#include "kernels/cuda/quant_mma.cuh"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MMA_WARPS 8

struct mma_args {
    const uint4 *w;                  /* [tiles][kq][32] */
    const __half2 *meta;             /* [out_pad][groups] */
    int kq, groups, gsteps, kq_per_warp;   /* 64-input blocks a row; 16-input steps a group */
};

/* x[tok, perm[k]], x[tok, perm[k + 1]] as a 16-bit pair. */
template <typename T>
__device__ __forceinline__ uint32_t gather_pair(const T *xr, int2 p)
{
    const T lo = xr[p.x], hi = xr[p.y];
    return (uint32_t)*reinterpret_cast<const uint16_t *>(&lo) |
           ((uint32_t)*reinterpret_cast<const uint16_t *>(&hi) << 16);
}

/* NT tiles of 8 tokens (n <= 8 NT): y[tok, o] for the block's 16 features o. PERM: x in the
 * checkpoint's input order, gathered through perm [in] as the B fragments load (act-order
 * without a staging kernel); else x in canonical order, 4-byte aligned. */
template <typename T, int NT, bool PERM>
__global__ void __launch_bounds__(MMA_WARPS * 32)
wq_mma_gemv_kernel(const mma_args a, const T *__restrict__ x, const int32_t *__restrict__ perm,
                   int n, int in, int out, const T *__restrict__ b, T *__restrict__ y)
{
    __shared__ float red[MMA_WARPS][NT][4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x;
    const int kq0 = warp * a.kq_per_warp;
    const int kq1 = min(a.kq, kq0 + a.kq_per_warp);
    pdl_trigger();
    float tot[NT][4], acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            tot[nt][i] = acc[nt][i] = 0.0f;
    bool waited = false;
    if (kq0 < kq1) {
        const uint4 *wp = a.w + (size_t)tile * a.kq * 32 + lane;
        const __half2 *m0 = a.meta + (size_t)(tile * 16 + g) * a.groups;
        const __half2 *m8 = m0 + (size_t)8 * a.groups;
        int gi = kq0 * 4 / a.gsteps;
        int left = (gi + 1) * a.gsteps - kq0 * 4;        /* 16-input steps left in group gi */
        __half2 mg = __ldg(m0 + gi), mg8 = __ldg(m8 + gi);
        uint32_t zg = pair_of<T>(mma_magic<T>::BIAS + __high2float(mg));
        uint32_t zg8 = pair_of<T>(mma_magic<T>::BIAS + __high2float(mg8));
        for (int kq = kq0; kq < kq1; kq += QGEMV_UNR) {
            uint4 wv[QGEMV_UNR];
#pragma unroll
            for (int u = 0; u < QGEMV_UNR; u++)
                if (kq + u < kq1)
                    wv[u] = ld_stream(wp + (size_t)(kq + u) * 32);
            /* the weights' loads may be in flight before the previous kernel is done */
            if (!waited) {
                pdl_wait();
                waited = true;
            }
#pragma unroll
            for (int u = 0; u < QGEMV_UNR; u++) {
                if (kq + u >= kq1)
                    break;
                const uint32_t words[4] = { wv[u].x, wv[u].y, wv[u].z, wv[u].w };
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    const int k0 = (kq + u) * 64 + s * 16;
                    uint32_t A[4];
                    A[0] = sub_pair<T>((words[s] & 0x000F000Fu) | mma_magic<T>::BITS, zg);
                    A[1] = sub_pair<T>(((words[s] >> 4) & 0x000F000Fu) | mma_magic<T>::BITS, zg8);
                    A[2] = sub_pair<T>(((words[s] >> 8) & 0x000F000Fu) | mma_magic<T>::BITS, zg);
                    A[3] = sub_pair<T>(((words[s] >> 12) & 0x000F000Fu) | mma_magic<T>::BITS, zg8);
                    int2 p0 = make_int2(0, 0), p1 = make_int2(0, 0);
                    if (PERM) {          /* the inputs of slots 2t, 2t + 1 and 2t + 8, 2t + 9 */
                        p0 = __ldg(reinterpret_cast<const int2 *>(perm + k0 + 2 * t));
                        p1 = __ldg(reinterpret_cast<const int2 *>(perm + k0 + 2 * t + 8));
                    }
#pragma unroll
                    for (int nt = 0; nt < NT; nt++) {
                        const int tok = nt * 8 + g;
                        uint32_t B[2] = { 0u, 0u };
                        if (tok < n && PERM) {
                            const T *xr = x + (size_t)tok * in;
                            B[0] = gather_pair<T>(xr, p0);
                            B[1] = gather_pair<T>(xr, p1);
                        } else if (tok < n) {
                            const uint32_t *xr = reinterpret_cast<const uint32_t *>(
                                x + (size_t)tok * in + k0 + 2 * t);
                            B[0] = __ldg(xr);
                            B[1] = __ldg(xr + 4);            /* inputs 2t + 8, 2t + 9 */
                        }
                        mma16816<T>(acc[nt], A, B);
                    }
                    if (--left == 0) {
                        /* the group ends: scale its sums into the totals, take the next */
                        const float sg = __low2float(mg), sg8 = __low2float(mg8);
#pragma unroll
                        for (int nt = 0; nt < NT; nt++) {
                            tot[nt][0] = fmaf(sg, acc[nt][0], tot[nt][0]);
                            tot[nt][1] = fmaf(sg, acc[nt][1], tot[nt][1]);
                            tot[nt][2] = fmaf(sg8, acc[nt][2], tot[nt][2]);
                            tot[nt][3] = fmaf(sg8, acc[nt][3], tot[nt][3]);
                            acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
                        }
                        gi++;
                        left = a.gsteps;
                        if (gi < a.groups) {
                            mg = __ldg(m0 + gi);
                            mg8 = __ldg(m8 + gi);
                            zg = pair_of<T>(mma_magic<T>::BIAS + __high2float(mg));
                            zg8 = pair_of<T>(mma_magic<T>::BIAS + __high2float(mg8));
                        }
                    }
                }
            }
        }
        /* a group cut by the end of this warp's inputs */
        const float sg = __low2float(mg), sg8 = __low2float(mg8);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            tot[nt][0] = fmaf(sg, acc[nt][0], tot[nt][0]);
            tot[nt][1] = fmaf(sg, acc[nt][1], tot[nt][1]);
            tot[nt][2] = fmaf(sg8, acc[nt][2], tot[nt][2]);
            tot[nt][3] = fmaf(sg8, acc[nt][3], tot[nt][3]);
        }
    }
    if (!waited)
        pdl_wait();
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            red[warp][nt][i][lane] = tot[nt][i];
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float v = 0.0f;
                for (int w = 0; w < MMA_WARPS; w++)
                    v += red[w][nt][i][lane];
                /* accumulator i: feature g (+ 8 for i >= 2), token 2t (+ 1 for odd i) */
                const int o = tile * 16 + g + (i >= 2 ? 8 : 0), tok = nt * 8 + 2 * t + (i & 1);
                if (o < out && tok < n)
                    y[(size_t)tok * out + o] = from_f<T>(v + (b ? to_f<T>(b[o]) : 0.0f));
            }
    }
}

template <typename T, int NT, bool PERM>
static cudaError_t mma_launch(struct pgd_cuda_ctx *c, dim3 grid, const mma_args &a, const T *x,
                              const int32_t *perm, int n, int in, int out, const T *b, T *y)
{
    return pgd_cuda_launch(c, wq_mma_gemv_kernel<T, NT, PERM>, grid, dim3(MMA_WARPS * 32), a, x,
                           perm, n, in, out, b, y);
}

template <typename T>
static int mma_gemv(struct pgd_cuda_ctx *c, const T *x, const int32_t *perm, int n,
                    const struct pgd_cuda_wq *w, const T *b, T *y, char *err, size_t errlen)
{
    mma_args a;
    a.w = reinterpret_cast<const uint4 *>(w->w);
    a.meta = w->meta;
    a.kq = w->in / 64;
    a.groups = w->groups;
    a.gsteps = w->group_size / 16;
    a.kq_per_warp = (a.kq + MMA_WARPS - 1) / MMA_WARPS;
    dim3 grid(w->out_pad / 16);
    for (int r0 = 0; r0 < n; r0 += 16) {
        const int rows = n - r0 < 16 ? n - r0 : 16;
        const T *xr = x + (size_t)r0 * w->in;
        T *yr = y + (size_t)r0 * w->out;
        const int in = w->in, out = w->out;
        cudaError_t e = rows <= 8
            ? (perm ? mma_launch<T, 1, true>(c, grid, a, xr, perm, rows, in, out, b, yr)
                    : mma_launch<T, 1, false>(c, grid, a, xr, perm, rows, in, out, b, yr))
            : (perm ? mma_launch<T, 2, true>(c, grid, a, xr, perm, rows, in, out, b, yr)
                    : mma_launch<T, 2, false>(c, grid, a, xr, perm, rows, in, out, b, yr));
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "W4A16 tensor-core GEMV x [%d, %d] -> %d (rows "
                                  "%d..%d): %s", n, w->in, w->out, r0, r0 + rows - 1,
                                  cudaGetErrorString(e));
    }
    return 0;
}

int pgd_cuda__wq_mma_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                          void *y, char *err, size_t errlen)
{
    if (dt == PGD_DTYPE_BF16)
        return mma_gemv<__nv_bfloat16>(c, (const __nv_bfloat16 *)x, perm, n, w,
                                       (const __nv_bfloat16 *)b, (__nv_bfloat16 *)y, err, errlen);
    return mma_gemv<__half>(c, (const __half *)x, perm, n, w, (const __half *)b, (__half *)y, err,
                            errlen);
}

/* ---- dequantization of the mma layout (large n: dequantize, then cuBLASLt) -------------- */
/* A block: tile blockIdx.x of the slice (16 rows) x DQ_CHUNKS chunks of 64 inputs from
 * chunk blockIdx.y DQ_CHUNKS. Warp w dequantizes chunk w: lane (g, t) holds the chunk's 16
 * bytes of rows g and g + 8 (the A fragments: pairs of consecutive inputs 16 s + 2 t + 8 h,
 * h = j / 2, in nibbles j and j + 4 of word s), so its 32 weights land as 16 pairs in a
 * shared [16][DQ_ROW] tile (the row pad puts the 32 lanes' pair stores in 32 banks: word
 * 260 r + ..., 260 = 4 mod 32, so bank 4 g + t). Then the block writes the tile's 16 rows of
 * up to 512 contiguous inputs in 16-byte stores. The weights are (q - zero) * scale in float32
 * rounded once to T. (A thread a lane's entry writing its pairs straight to the rows, two
 * bytes a store across 8 rows, ran at ~0.4 TB/s of the 16-bit output on the H100.) */
#define DQ_CHUNKS 8
#define DQ_ROW (DQ_CHUNKS * 64 + 8)  /* elements a shared row */
template <typename T>
__global__ void __launch_bounds__(256)
wq_mma_dequant_kernel(const uint4 *__restrict__ w, const __half2 *__restrict__ meta, int kq,
                      int in, int groups, int group_size, int o0, int rows, T *__restrict__ dst)
{
    __shared__ __align__(16) T tile[16 * DQ_ROW];
    pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int tg = o0 / 16 + blockIdx.x, q0 = blockIdx.y * DQ_CHUNKS, q = q0 + warp;
    /* weights and scales are never written by a step: read before the previous kernel ends */
    if (q < kq) {
        const uint4 v = __ldg(w + ((size_t)tg * kq + q) * 32 + lane);
        const uint32_t words[4] = { v.x, v.y, v.z, v.w };
        const __half2 *m_row = meta + (size_t)(tg * 16 + g) * groups;
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const int grp = (q * 64 + s * 16) / group_size;     /* 16 inputs: one group */
            const float2 m0 = __half22float2(__ldg(m_row + grp));
            const float2 m8 = __half22float2(__ldg(m_row + (size_t)8 * groups + grp));
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 m = (j & 1) ? m8 : m0;             /* {scale, zero} */
                const float w0 = ((float)((words[s] >> (4 * j)) & 0xFu) - m.y) * m.x;
                const float w1 = ((float)((words[s] >> (4 * j + 16)) & 0xFu) - m.y) * m.x;
                T *d = tile + (g + 8 * (j & 1)) * DQ_ROW + warp * 64 + s * 16 + 2 * t +
                       8 * (j >> 1);
                d[0] = from_f<T>(w0);
                d[1] = from_f<T>(w1);
            }
        }
    }
    __syncthreads();
    pdl_wait();                      /* dst is the scratch an earlier GEMM may still read */
    const int per_row = min(DQ_CHUNKS, kq - q0) * 8;      /* 16-byte pieces a row */
    for (int i = threadIdx.x; i < 16 * per_row; i += blockDim.x) {
        const int r = i / per_row, p = i - r * per_row, o = blockIdx.x * 16 + r;
        if (o < rows)
            *reinterpret_cast<uint4 *>(dst + (size_t)o * in + q0 * 64 + p * 8) =
                *reinterpret_cast<const uint4 *>(tile + r * DQ_ROW + p * 8);
    }
}

int pgd_cuda__wq_mma_dequant(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                             const struct pgd_cuda_wq *w, int o0, int rows, void *dst, char *err,
                             size_t errlen)
{
    const int kq = w->in / 64;
    const dim3 grid((rows + 15) / 16, (kq + DQ_CHUNKS - 1) / DQ_CHUNKS), block(256);
    const uint4 *wp = reinterpret_cast<const uint4 *>(w->w);
    cudaError_t e = dt == PGD_DTYPE_BF16
        ? pgd_cuda_launch(c, wq_mma_dequant_kernel<__nv_bfloat16>, grid, block, wp,
                          (const __half2 *)w->meta, kq, w->in, w->groups, w->group_size, o0,
                          rows, (__nv_bfloat16 *)dst)
        : pgd_cuda_launch(c, wq_mma_dequant_kernel<__half>, grid, block, wp,
                          (const __half2 *)w->meta, kq, w->in, w->groups, w->group_size, o0,
                          rows, (__half *)dst);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "W4A16 dequantize rows %d..%d of [%d, %d]: %s", o0,
                              o0 + rows - 1, w->out, w->in, cudaGetErrorString(e));
    return 0;
}

/* ---- the packing (host) ----------------------------------------------------------------------- */
bool pgd_cuda__wq_mma_fits(const struct pgd_wq_host *h)
{
    static int env = -1;
    if (env < 0)
        env = pgd_cuda__qenv_int("PGD_CUDA_WQ_MMA", 1) != 0;
    if (!env || h->bits != 4 || h->in % 64 != 0 || h->group_size % 16 != 0)
        return false;
    /* B + zero must be exact in bf16 (8 significant bits): integers 0..16 */
    const int64_t groups = h->in / h->group_size;
    for (int64_t i = 0; i < groups * h->out; i++) {
        const float z = h->zeros[i];
        if (!(z >= 0.0f && z <= 16.0f) || z != floorf(z))
            return false;
    }
    return true;
}

/* Word idx of the mma layout from the canonical qweight q [in / 8][out]: word s of lane
 * lane's 16 bytes for block (tile, kq), idx = ((tile * kq_n + kq) * 32 + lane) * 4 + s. */
__host__ __device__ __forceinline__ uint32_t mma_pack_word(const uint32_t *q, int in, int out,
                                                           size_t idx)
{
    const int kq_n = in / 64, s = (int)(idx % 4), lane = (int)(idx / 4 % 32);
    const int kq = (int)(idx / 128 % (size_t)kq_n), tile = (int)(idx / 128 / (size_t)kq_n);
    const int g = lane >> 2, t = lane & 3;
    uint32_t word = 0;
    for (int p = 0; p < 8; p++) {
        const int j = p & 3, second = p >> 2;
        const int o = tile * 16 + g + 8 * (j & 1);
        const int k = kq * 64 + s * 16 + 2 * t + 8 * (j >> 1) + second;
        if (o < out)
            word |= ((q[(size_t)(k / 8) * out + o] >> (4 * (k % 8))) & 0xFu) << (4 * p);
    }
    return word;
}

__global__ void wq_mma_pack_kernel(const uint32_t *__restrict__ q, int in, int out, size_t words,
                                   uint32_t *__restrict__ dst)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = mma_pack_word(q, in, out, i);
}

int pgd_cuda__wq_mma_pack(const uint32_t *q, int in, int out, int out_pad, uint32_t *dst,
                          char *err, size_t errlen)
{
    const size_t words = (size_t)out_pad * in / 8;
    wq_mma_pack_kernel<<<pgd_cuda_blocks((int64_t)words, 256), 256>>>(q, in, out, words, dst);
    PGD_CUDA_LAUNCHED(err, errlen, "W4A16 repack [%d, %d]", out, in);
    PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(0), "W4A16 repack [%d, %d]", out, in);
    return 0;
}
