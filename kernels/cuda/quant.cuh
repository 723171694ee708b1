/* Shared by the quantized linears (quant_wq.cu, quant_fp8.cu): the decode GEMV over packed
 * weight rows, the context scratch, the x staging and bias kernels, and quant_lt.cu's
 * cuBLASLt calls (through linear.cu's plan cache and gemm_tune.cu's algorithm choice, with
 * the leading dimensions and FP8 scale modes in the plan descriptor). Internal to
 * kernels/cuda.
 *
 * The GEMV reads a layer as `out` rows of packed bytes, row o at w + o * row_bytes (16-byte
 * aligned rows), in 16-byte chunks: one warp per output feature, each lane issuing
 * QGEMV_UNR independent chunk loads before it uses any (the bytes in flight that cover the
 * memory latency), x (a few rows shared by all warps) from L1. A decoder D turns a chunk
 * into D::K float weights; the sums are float32. */
#ifndef PGD_KERNELS_CUDA_QUANT_CUH
#define PGD_KERNELS_CUDA_QUANT_CUH

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/stream_plan.h"
#include <cuda_fp8.h>

#define QGEMV_WARPS 8          /* warps (output features) a block */
#define QGEMV_UNR 4            /* chunk loads a lane has in flight */
#define QGEMV_ROWS 4           /* x rows one launch serves; more rows take more launches */

/* ---- the GEMV -------------------------------------------------------------------------- */
/* y[r, o] = (sum over chunks c of row o: s_c * sum_i w_c[i] x[r, c*K + i]) * rowf(o) * xs[r]
 *           + b[o]
 * for r < N. The decoder: K (weights a chunk), load(o, c) -> Chunk, dequant(Chunk, float
 * w[K]) -> s_c, rowf(o) and chunks (per row). xs (per-row x scale) may be NULL. */
template <class D, typename T, int N>
__global__ void __launch_bounds__(QGEMV_WARPS * 32)
qgemv_kernel(const T *__restrict__ x, const D dec, const T *__restrict__ b,
             const float *__restrict__ xs, int in, int out, T *__restrict__ y)
{
    constexpr int K = D::K;
    constexpr int XV = K * (int)sizeof(T) / 16;      /* 16-byte x vectors a chunk covers */
    constexpr int XE = 16 / (int)sizeof(T);          /* x elements a vector */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int o = blockIdx.x * QGEMV_WARPS + warp;
    pdl_trigger();
    float acc[N];
#pragma unroll
    for (int r = 0; r < N; r++)
        acc[r] = 0.0f;
    bool waited = false;
    if (o < out) {
        const int C = dec.chunks;
        for (int c0 = lane; c0 < C; c0 += 32 * QGEMV_UNR) {
            typename D::Chunk ch[QGEMV_UNR];
#pragma unroll
            for (int u = 0; u < QGEMV_UNR; u++)
                if (c0 + u * 32 < C)
                    ch[u] = dec.load(o, c0 + u * 32);
            /* Weights are never written by a step's kernels: the first loads may be in
             * flight before the previous kernel is done (programmatic dependent launch). */
            if (!waited) {
                pdl_wait();
                waited = true;
            }
#pragma unroll
            for (int u = 0; u < QGEMV_UNR; u++) {
                const int c = c0 + u * 32;
                if (c < C) {
                    float wf[K];
                    const float s = dec.dequant(ch[u], wf);
#pragma unroll
                    for (int r = 0; r < N; r++) {
                        const uint4 *xr = reinterpret_cast<const uint4 *>(x + (size_t)r * in +
                                                                          (size_t)c * K);
                        float dot = 0.0f;
#pragma unroll
                        for (int v = 0; v < XV; v++) {
                            float xf[XE];
                            unpack16<T>(__ldg(xr + v), xf);
#pragma unroll
                            for (int i = 0; i < XE; i++)
                                dot = fmaf(wf[v * XE + i], xf[i], dot);
                        }
                        acc[r] = fmaf(s, dot, acc[r]);
                    }
                }
            }
        }
    }
    if (!waited)
        pdl_wait();
#pragma unroll
    for (int r = 0; r < N; r++)
        for (int off = 16; off > 0; off >>= 1)
            acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    if (lane == 0 && o < out) {
        const float f = dec.rowf(o), bias = b ? to_f<T>(b[o]) : 0.0f;
#pragma unroll
        for (int r = 0; r < N; r++)
            y[(size_t)r * out + o] = from_f<T>(acc[r] * f * (xs ? xs[r] : 1.0f) + bias);
    }
}

/* y[n, out] through qgemv_kernel, QGEMV_ROWS rows a launch. x must be 16-byte aligned with
 * in a multiple of K (each chunk's x is whole 16-byte vectors); xs [n] or NULL. */
template <class D, typename T>
static int qgemv_launch(struct pgd_cuda_ctx *c, const D &dec, const T *x, const T *b,
                        const float *xs, int n, int in, int out, T *y, const char *what,
                        char *err, size_t errlen)
{
    dim3 grid((out + QGEMV_WARPS - 1) / QGEMV_WARPS), block(QGEMV_WARPS * 32);
    for (int r0 = 0; r0 < n; r0 += QGEMV_ROWS) {
        const int rows = n - r0 < QGEMV_ROWS ? n - r0 : QGEMV_ROWS;
        const T *xr = x + (size_t)r0 * in;
        const float *xsr = xs ? xs + r0 : NULL;
        T *yr = y + (size_t)r0 * out;
        cudaError_t e = cudaSuccess;
        switch (rows) {
        case 1: e = pgd_cuda_launch(c, qgemv_kernel<D, T, 1>, grid, block, xr, dec, b, xsr, in, out, yr); break;
        case 2: e = pgd_cuda_launch(c, qgemv_kernel<D, T, 2>, grid, block, xr, dec, b, xsr, in, out, yr); break;
        case 3: e = pgd_cuda_launch(c, qgemv_kernel<D, T, 3>, grid, block, xr, dec, b, xsr, in, out, yr); break;
        default: e = pgd_cuda_launch(c, qgemv_kernel<D, T, 4>, grid, block, xr, dec, b, xsr, in, out, yr); break;
        }
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "%s GEMV x [%d, %d] -> %d (rows %d..%d): %s", what,
                                  n, in, out, r0, r0 + rows - 1, cudaGetErrorString(e));
    }
    return 0;
}

/* ---- the scratch (quant_lt.cu) ------------------------------------------------------------ */
/* Grows c->qscratch toward bytes (in steps of 16 MiB, up to pgd_cuda_qscratch_set_max's
 * bytes or PGD_CUDA_QSCRATCH_MAX_MB) so that a large call runs in one piece: only while no
 * graph was ever captured on the stream (a captured node holds the old address) and none is
 * being captured; a stream synchronization and an allocation each time, so the scratch
 * grows a few times at most in a process (the runner's profiling step of
 * max_num_batched_tokens, before the KV cache is sized, takes it to its high water). When
 * it cannot grow (a limit, a capture, out of memory) the scratch stays as it was: callers
 * then cut their work into pieces that fit. 1 (err set) only for a failed synchronization. */
int pgd_cuda__qscratch_reserve(struct pgd_cuda_ctx *c, size_t bytes, char *err, size_t errlen);

/* ---- the act-order gather a norm left (quant_lt.cu) -------------------------------------- */
/* The norm before the call wrote x [n, in] in dt gathered through perm into dst (norm.cu's
 * pgd_cuda_rmsnorm_gather): the next pgd_cuda__wq_xg_take of exactly that finds it. */
void pgd_cuda__wq_xg_note(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, int in, const void *dst);
/* Whether dst already holds x [n, in] in dt gathered through perm, as noted; either way
 * the note is gone after the call (the caller is about to write dst, or has read it). */
bool pgd_cuda__wq_xg_take(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, int in, const void *dst);

/* ---- small kernels both formats use (quant_lt.cu) --------------------------------------- */
/* dst[r, k] = x[r, perm ? perm[k] : k] for r < rows (x rows of ld in; dst [rows, in]): the
 * act-order gather, and the copy of an x that is not 16-byte aligned. Nothing is launched
 * where the norm before left exactly that there (pgd_cuda__wq_xg_take). */
int pgd_cuda__qstage_x(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int rows, int in, void *dst, char *err,
                       size_t errlen);
/* y[r, o] += b[o], y [rows, out] in dt. */
int pgd_cuda__qadd_bias(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *y, const void *b,
                        int rows, int out, char *err, size_t errlen);

/* ---- cuBLASLt GEMMs with leading dimensions and FP8 scales (quant_lt.cu) ---------------- */
/* Column-major, as linear.cu: D[m, n] (ld ldd) = op(A)[m, k] @ B[k, n] with A stored [k, m]
 * (ld lda, op T) and B [k, n] (ld ldb): in row-major terms y[n, m] = x[n, k] @ w[m, k]^T with
 * w = A, x = B, y = D. float32 compute. */
enum {
    PGD_QLT_16 = 0,        /* A, B, D in dt (BF16 / F16) */
    PGD_QLT_FP8_VEC = 1,   /* A, B e4m3; D in dt; a_scale [m] and b_scale [n] applied
                              (cuBLASLt's outer-vector scale mode) */
    PGD_QLT_FP8_F32 = 2,   /* A, B e4m3; D float32, unscaled */
    PGD_QLT_FP8_16 = 3,    /* A, B e4m3; D in dt, unscaled (the caller scales it after) */
};
struct pgd_cuda_qlt {
    int kind;
    int fast_accum;        /* FP8 kinds: cuBLASLt's fast accumulation (no periodic promotion
                              of the tensor cores' partial sums to float32) */
    enum pgd_dtype dt;
    int m, n, k, lda, ldb, ldd;
    const void *a, *b;
    void *d;
    const float *a_scale, *b_scale;
};
/* 0: done; 1: failed (err says why); 2: cuBLASLt has no algorithm for this kind and shape
 * (nothing ran; err says so; remembered, so asking again is cheap). The algorithm: the one
 * gemm_tune.cu timed fastest for the plan's n bucket (PAGODA_GEMM_TUNE=0: the heuristic's
 * first). */
int pgd_cuda__qlt_matmul(struct pgd_cuda_ctx *c, const struct pgd_cuda_qlt *g, char *err,
                         size_t errlen);

/* ---- FP8 per-token quantization (quant_fp8.cu, quant_fp8_mma.cu) ---------------------------- */
/* The e4m3 codes of f[0..7] / s, byte i = f[i]'s (round to nearest even, saturating at 448:
 * the same division and rounding as kernels/cpu/quant.c's pgd_cpu_fp8_quantize_rows). */
__device__ __forceinline__ uint2 fp8_e4m3x8(const float *f, float s)
{
    uint32_t q[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(f[4 * h] / s, f[4 * h + 1] / s),
                                                     __NV_SATFINITE, __NV_E4M3);
        const uint32_t hi = __nv_cvt_float2_to_fp8x2(
            make_float2(f[4 * h + 2] / s, f[4 * h + 3] / s), __NV_SATFINITE, __NV_E4M3);
        q[h] = lo | hi << 16;
    }
    return make_uint2(q[0], q[1]);
}

/* The fp16 pairs of a word's four e4m3 codes: p[0] = bytes 0, 1; p[1] = bytes 2, 3. On
 * sm_89 and later each pair is one cvt.rn.f16x2.e4m3x2 straight into the pair's register;
 * cuda_fp8.h converts in software below that (sm_80 builds), exactly either way. */
__device__ __forceinline__ void e4m3x4_f16(uint32_t w, uint32_t *p)
{
    const __half2_raw lo = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w & 0xffffu), __NV_E4M3);
    const __half2_raw hi = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w >> 16), __NV_E4M3);
    p[0] = (uint32_t)lo.x | ((uint32_t)lo.y << 16);
    p[1] = (uint32_t)hi.x | ((uint32_t)hi.y << 16);
}

/* The per-token scale of a row whose largest magnitude is amax: amax / 448, 1 for an
 * all-zero row (pgd_cpu_fp8_quantize_rows). */
__device__ __forceinline__ float fp8_token_scale(float amax)
{
    return amax > 0.0f ? amax / 448.0f : 1.0f;
}

/* Elements 8v .. 8v + 7 of row xr in float32: one 16-byte load (vec: xr 16-byte aligned)
 * or eight element loads. */
template <typename T>
__device__ __forceinline__ void fp8_x8(const T *__restrict__ xr, int v, bool vec, float *f)
{
    if (vec) {
        unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(xr) + v), f);
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++)
            f[i] = to_f<T>(xr[8 * v + i]);
    }
}

/* max |f[i]| over 8 values, folded into m. */
__device__ __forceinline__ float fp8_amax8(const float *f, float m)
{
#pragma unroll
    for (int i = 0; i < 8; i++)
        m = fmaxf(m, fabsf(f[i]));
    return m;
}

/* max |x| over the vectors of 8 this thread reads of row xr (vpr vectors): j = first,
 * first + step, ..., 8 of them in flight a pass (the independent loads that cover the
 * memory latency), folded into m. The one per-thread shape of every FP8 quantization's
 * amax: the block-wide one below (quant_fp8.cu's, the GEMVs' x preparation) and the decode
 * GEMV's in-block one (quant_fp8_dec.cu: several warps a token). */
template <typename T>
__device__ __forceinline__ float fp8_amax_strided(const T *__restrict__ xr, int vpr, int first,
                                                  int step, bool vec, float m)
{
    for (int j0 = first; j0 < vpr; j0 += 8 * step) {
        float f[8][8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int j = j0 + u * step;
            if (j < vpr)
                fp8_x8<T>(xr, j, vec, f[u]);
            else
#pragma unroll
                for (int i = 0; i < 8; i++)
                    f[u][i] = 0.0f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++)
            m = fp8_amax8(f[u], m);
    }
    return m;
}

/* The largest of the block's 256 threads' amax (every thread gets it; a maximum, so the
 * same whatever the order). red: 8 floats of shared memory, written once. */
__device__ __forceinline__ float fp8_block_amax_256(float amax, float *red)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int off = 16; off > 0; off >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if (lane == 0)
        red[warp] = amax;
    __syncthreads();
    amax = red[0];
#pragma unroll
    for (int i = 1; i < 8; i++)
        amax = fmaxf(amax, red[i]);
    return amax;
}

/* The largest |x| of row xr [in] (in a multiple of 8) over the block's 256 threads
 * (fp8_amax_strided, thread t from vector t, 256 apart): the per-token reduction of the
 * FP8 quantization kernels. red: 8 floats of shared memory; every thread gets the result. */
template <typename T>
__device__ __forceinline__ float fp8_row_amax_256(const T *__restrict__ xr, int in, bool vec,
                                                  float *red)
{
    return fp8_block_amax_256(fp8_amax_strided<T>(xr, in / 8, (int)threadIdx.x, 256, vec, 0.0f),
                              red);
}

/* The e4m3 codes of f[0..7] / s as the fp16 values of the codes (exact: every e4m3 value is
 * an fp16), each group of 4 in the order 0, 2, 1, 3 (the order the streaming GEMVs' weight
 * decoding yields them in: e4m3_pair02 / e4m3_pair13 below). */
__device__ __forceinline__ uint4 fp8_x8_f16_0213(const float *f, float s)
{
    const uint2 q = fp8_e4m3x8(f, s);
    uint32_t p[4];
    e4m3x4_f16(__byte_perm(q.x, 0u, 0x3120), p);
    e4m3x4_f16(__byte_perm(q.y, 0u, 0x3120), p + 2);
    return make_uint4(p[0], p[1], p[2], p[3]);
}

/* A row a block holds in registers, thread t's v[u] the row's 16-byte vector t + u threads
 * (those below nv; 8 inputs each): the largest |value| of the thread's vectors, and, with
 * the row's scale s, each vector's codes (fp8_x8_f16_0213 above) at its place in xh_row:
 * the quantization for the streaming GEMV that the norm (norm.cu) and the activation
 * (quant_fp8_gemv.cu) leave from the values they computed. */
template <typename T, int VPT>
__device__ __forceinline__ float fp8_held_amax(const uint4 (&v)[VPT], int nv, int threads)
{
    float amax = 0.0f;
#pragma unroll
    for (int u = 0; u < VPT; u++)
        if ((int)threadIdx.x + u * threads < nv) {
            float f[8];
            unpack16<T>(v[u], f);
            amax = fp8_amax8(f, amax);
        }
    return amax;
}

template <typename T, int VPT>
__device__ __forceinline__ void fp8_held_codes(const uint4 (&v)[VPT], int nv, int threads,
                                               float s, uint4 *__restrict__ xh_row)
{
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        const int i = (int)threadIdx.x + u * threads;
        if (i < nv) {
            float f[8];
            unpack16<T>(v[u], f);
            xh_row[i] = fp8_x8_f16_0213(f, s);
        }
    }
}

/* ---- the streaming GEMVs' weight decoding and product (quant_fp8_gemv.cu, _dec.cu) ---------- */
/* A 32-bit word of 4 e4m3 codes b0..b3 as two fp16 pairs, (b0, b2) and (b1, b3), each value
 * times 2^-8, with integer operations alone: each code's 7 magnitude bits land in the
 * fp16's exponent low bits and top mantissa bits and its sign in the sign bit (normal
 * codes: the exponent biases differ by 8; subnormal codes m 2^-9 become fp16 subnormals
 * m 2^-17). The 2^8 is given back with the scales. 0x7f / 0xff (NaN) decode as +-480. */
__device__ __forceinline__ uint32_t e4m3_pair02(uint32_t w)
{
    return ((w << 7) & 0x3F803F80u) | ((w << 8) & 0x80008000u);
}
__device__ __forceinline__ uint32_t e4m3_pair13(uint32_t w)
{
    return ((w >> 1) & 0x3F803F80u) | (w & 0x80008000u);
}

/* d += A (16 x 16, fp16) @ B (16 x 8, fp16), float32 accumulators (sm_80 and later; the
 * hosts check before launching). Not volatile: a pure function of its registers, so the
 * compiler may interleave independent chains of them (the streaming GEMV's two). */
__device__ __forceinline__ void fg_mma(float *d, uint32_t a0, uint32_t a1, uint32_t a2,
                                       uint32_t a3, uint32_t b0, uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    (void)d; (void)a0; (void)a1; (void)a2; (void)a3; (void)b0; (void)b1;
    __trap();
#endif
}

/* ---- the FP8 tensor-core GEMV (quant_fp8_mma.cu) ------------------------------------------- */
/* Whether the context's device runs e4m3 mma.sync (compute capability 8.9 or later). */
bool pgd_cuda__fp8_mma_ok(const struct pgd_cuda_ctx *c);
/* y [n, out] (dt) = (xq [n, in] e4m3 @ w [out, in]^T e4m3) * xs[row] * sw[col] + b, in a
 * multiple of 64, xq 16-byte aligned; 16 rows a launch. */
int pgd_cuda__fp8_mma_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const uint8_t *xq,
                           const float *xs, int n, const uint8_t *w, const float *sw, int in,
                           int out, const void *b, void *y, char *err, size_t errlen);
/* Whether x [n, in] (16-bit) fits the fused GEMV: n <= 8, in a multiple of 64, x 16-byte
 * aligned, n padded rows of codes (in + 64 or + 128 bytes each) within its 40 KB buffer. */
bool pgd_cuda__fp8_mma_fused_ok(const void *x, int n, int in);
/* The same product from x [n, in] in dt (BF16 / F16), each block quantizing x per token
 * itself (the codes and scales of pgd_cpu_fp8_quantize_rows): one launch, no scratch. f16:
 * the codes' values kept as fp16 and fp16 mma.sync where they fit; else e4m3 codes and
 * e4m3 mma.sync. */
int pgd_cuda__fp8_mma_gemv_fused(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                                 const uint8_t *w, const float *sw, int in, int out,
                                 const void *b, void *y, bool f16, char *err, size_t errlen);

/* ---- one quantization of x for several FP8 layers (pgd_cuda_fp8_share_x) --------------------- */
/* Whether sharing is on and the scratch holds the quantization of x [n, in] in dt in layout
 * tag (-1: the streaming GEMV's fp16 values; > 0: the GEMM's e4m3 codes of one piece of tag
 * rows, scales after them). */
static inline bool pgd_cuda__fp8_share_hit(const struct pgd_cuda_ctx *c, int tag, const void *x,
                                           int n, int in, enum pgd_dtype dt)
{
    return c->fp8_share && c->fp8_share_x == x && c->fp8_share_tag == tag &&
           c->fp8_share_n == n && c->fp8_share_in == in && c->fp8_share_dt == (int)dt;
}
/* Whether the caller said (pgd_cuda_fp8_x_ready) that the scratch holds the streaming
 * GEMV's quantization of x [n, in] in dt, left there by the norm that wrote x. */
static inline bool pgd_cuda__fp8_ready_hit(const struct pgd_cuda_ctx *c, const void *x, int n,
                                           int in, enum pgd_dtype dt)
{
    return c->fp8_ready_x && c->fp8_ready_x == x && c->fp8_ready_n == n &&
           c->fp8_ready_in == in && c->fp8_ready_dt == (int)dt;
}
/* After writing the scratch: it now holds x's quantization in layout tag (0: in no layout
 * another call can use; every other writer of the scratch notes 0). What the norm left
 * there (pgd_cuda_fp8_x_ready) is gone either way. */
static inline void pgd_cuda__fp8_share_note(struct pgd_cuda_ctx *c, int tag, const void *x,
                                            int n, int in, enum pgd_dtype dt)
{
    c->fp8_ready_x = NULL;
    c->fp8_share_x = tag ? x : NULL;
    c->fp8_share_tag = tag;
    c->fp8_share_n = n;
    c->fp8_share_in = in;
    c->fp8_share_dt = (int)dt;
}

/* ---- the streaming GEMVs' split and their launches over several layers ---------------------
 * quant_fp8_gemv.cu and quant_wq_sgemv.cu share the shape: a block's warps take tiles of
 * features, ks warps a tile each reading a slice of its row, and up to 3 layers of one x
 * (q, k, v) may share a launch, each block holding tiles of one layer, layer i's blocks
 * from first[i] (first[0] = 0, first[3] the grid). stream_plan.h picks ks and the tiles a
 * block. */

/* The shared memory an SM of the context's device has (asked once a device and file). */
static inline size_t pgd_cuda__smem_per_sm(const struct pgd_cuda_ctx *c)
{
    static int per_sm[64];
    if (c->device < 0 || c->device >= 64)
        return 2 * (48 << 10);
    int *v = &per_sm[c->device];
    if (!*v && cudaDeviceGetAttribute(v, cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                      c->device) != cudaSuccess)
        *v = 2 * (48 << 10);
    return (size_t)*v;
}

/* The shared memory a block may take on the context's device where blocks_sm blocks share
 * an SM: at most what a block may opt in to, and the SM's share less 1 KB (the system's a
 * block); asked once a device. */
static inline int pgd_cuda__smem_budget(const struct pgd_cuda_ctx *c, int blocks_sm)
{
    static int optin_of[64];
    if (c->device < 0 || c->device >= 64)
        return 48 << 10;
    int *optin = &optin_of[c->device];
    if (!*optin && cudaDeviceGetAttribute(optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                          c->device) != cudaSuccess)
        *optin = 48 << 10;
    const int share = (int)pgd_cuda__smem_per_sm(c) / blocks_sm - (1 << 10);
    return *optin < share ? *optin : share;
}

/* The shape stream_plan.h splits, for a kernel of at most max_warps warps a block whose
 * launch bound holds blocks_sm such blocks an SM (its registers), count layers of tiles[i]
 * tiles of chunks chunks a row, under the balance rule where the caller's default asks for
 * it (balance) and PGD_CUDA_STREAM_PLAN does not say otherwise; the caller adds its shared
 * memory a block. */
static inline struct pgd_stream_shape pgd_cuda__stream_shape(const struct pgd_cuda_ctx *c,
                                                             int max_warps, int blocks_sm,
                                                             int chunks, int count,
                                                             const int *tiles, bool balance)
{
    struct pgd_stream_shape s = {};
    s.sms = c->sm_count > 0 ? c->sm_count : 1;
    s.max_warps = max_warps;
    s.warps_sm = max_warps * blocks_sm;
    const int rule = pgd__stream_plan_rule_env();
    s.balance = rule < 0 ? balance : rule;
    s.chunks = chunks;
    s.count = count;
    for (int i = 0; i < count && i < 3; i++)
        s.tiles[i] = tiles[i];
    s.smem_sm = pgd_cuda__smem_per_sm(c);
    s.smem_block_max = s.smem_sm;
    s.smem_reserve = 1 << 10;        /* the system's share a block */
    return s;
}

/* In a kernel: block blk's layer, blk made its index among that layer's blocks (first1,
 * first2: first[1], first[2], passed as values: a reference to the kernel parameter's array
 * cost the W4 kernel a few bytes of stack). */
__device__ __forceinline__ int stream_layer_of(int first1, int first2, int &blk)
{
    const int s = blk >= first2 ? 2 : blk >= first1 ? 1 : 0;
    blk -= s == 2 ? first2 : s == 1 ? first1 : 0;
    return s;
}

/* Layer s's field, picked by ternaries (indexing a kernel parameter copies it to the stack
 * first). */
template <typename V>
__device__ __forceinline__ V stream_pick(int s, const V (&v)[3])
{
    return s == 0 ? v[0] : s == 1 ? v[1] : v[2];
}

/* ---- the FP8 streaming GEMV (quant_fp8_gemv.cu) -------------------------------------------- */
/* Whether the streaming GEMV takes a layer of in inputs on the context's device (in a
 * multiple of 64; compute capability 8.0 or later: fp16 mma.sync). */
bool pgd_cuda__fp8_stream_ok(const struct pgd_cuda_ctx *c, int in);
/* y [n, out] (dt) = (e4m3(x / sx) @ w [out, in]^T) * sx[row] * sw[col] + b from x [n, in] in
 * dt (BF16 / F16, any alignment): x quantized once per token into the scratch by a small
 * kernel, then the weights streamed once on fp16 tensor cores; 8 rows a launch pair.
 * glu: -1; or a PGD_ACT_* (out even): y [n, out / 2] = act(gate) * up of the two halves of
 * the layer's features, each rounded to dt first. */
int pgd_cuda__fp8_stream_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int glu, const void *x,
                              int n, const uint8_t *w, const float *sw, int in, int out,
                              const void *b, void *y, char *err, size_t errlen);

/* The same for count (1..3) layers of one x [n, in] (n <= 8; q, k and v: struct
 * pgd_cuda_fp8_dec_seg below) in one launch after x's one quantization: one grid over the
 * layers' tiles (pgd_cuda_fp8_linear_multi with PGD_CUDA_FP8_STREAM_QKV=1). */
struct pgd_cuda_fp8_dec_seg;
int pgd_cuda__fp8_stream_gemv_segs(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                   int n, int in, int count,
                                   const struct pgd_cuda_fp8_dec_seg *segs, char *err,
                                   size_t errlen);

/* Whether the automatic FP8 linear takes the streaming GEMV for n (>= 1) rows of in inputs
 * (the GEMV that reads x's quantization from the scratch, 8 rows a launch:
 * pgd_cuda__fp8_stream_scratch). */
bool pgd_cuda__fp8_stream_takes(const struct pgd_cuda_ctx *c, int n, int in);
/* Where the streaming GEMV keeps x's quantization in the scratch: xh [8, in] (the codes'
 * fp16 values) and sx [8]; false when they do not fit. */
bool pgd_cuda__fp8_stream_scratch(struct pgd_cuda_ctx *c, int in, __half **xh, float **sx);

/* quant_fp8_gemv.cu's x preparation for the GEMVs that read x from the scratch: xh [n, in]
 * (the codes' fp16 values in fp8_x8_f16_0213's order) and sx [n] from x [n, in] in dt. */
cudaError_t pgd_cuda__fp8_xprep(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                                int in, __half *xh, float *sx);

/* ---- the FP8 decode GEMV (quant_fp8_dec.cu) ------------------------------------------------ */
/* One layer of a launch: w [out, in] e4m3 (a gate_up layer: out = 2 inter), sw [out], b [out]
 * in dt or NULL, y [n, out] in dt (gate_up: [n, inter]). */
struct pgd_cuda_fp8_dec_seg {
    const uint8_t *w;
    const float *sw;
    const void *b;
    void *y;
    int out;
};
/* Rows the automatic path gives the decode GEMV (PGD_CUDA_FP8_DEC_MAX_N, 16 at most and by
 * default; 0 with PGD_CUDA_FP8_DEC=0). Read once. */
int pgd_cuda__fp8_dec_max_n(void);
/* Whether the decode GEMV takes x [n, in] here: 1 <= n <= 16, in a multiple of 64, compute
 * capability 8.0 or later. */
bool pgd_cuda__fp8_dec_ok(const struct pgd_cuda_ctx *c, int n, int in);
/* y_i = (e4m3(x / sx) @ w_i^T) sx sw_i + b_i for nseg (1..3) layers of one x [n, in] in one
 * launch; glu >= 0 (a PGD_ACT_*, nseg 1): y = act(gate) * up of the layer's two halves. */
int pgd_cuda__fp8_dec_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int glu, const void *x,
                           int n, int in, int nseg, const struct pgd_cuda_fp8_dec_seg *segs,
                           char *err, size_t errlen);

/* Environment knobs read once (for measuring paths against each other): an integer
 * variable, or def when unset. */
int pgd_cuda__qenv_int(const char *name, int def);

#endif
