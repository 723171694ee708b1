/* FP8 linears (W8A8, e4m3fn) on the GPU, from the canonical layout of
 * include/pagoda/quant.h: y = (e4m3(x / sx) @ W^T) * sx * sw + b, with the per-token scale
 * sx = max|x_row| / 448 computed at run time (kernels/cpu/quant.c's
 * pgd_cpu_fp8_quantize_rows, which the tests compare against) and sw per output feature
 * (a per-tensor scale is stored expanded).
 *
 * The paths:
 *   n <= 16, with PGD_CUDA_FP8_DEC=1 (off by default: slower on the H200 so far): the
 *            decode GEMV (quant_fp8_dec.cu: one launch a linear, or one for q, k and v
 *            through pgd_cuda_fp8_linear_multi; x quantized in its blocks; a gate_up layer's
 *            activation fused; in a multiple of 64, sm_80 and later);
 *   small n: the streaming GEMV (quant_fp8_gemv.cu: x quantized once per token, then the
 *            weights read once on fp16 tensor cores; in a multiple of 64, sm_80 and later);
 *            else a GEMV reading the e4m3 weight rows once: on tensor cores (quant_fp8_mma.cu,
 *            e4m3 mma.sync on the codes themselves; in a multiple of 64, sm_89 and later) or
 *            quant.cuh's plain GEMV (16 bytes a lane a load, x as the exact 16-bit values of
 *            its e4m3 codes: every e4m3 value is a bf16 and an fp16), summing in float32 and
 *            scaling by sx * sw at the end. Up to 8 rows (n * in within 40 KB of codes) the
 *            tensor-core GEMV quantizes x inside each block: one launch a linear, no pass
 *            over x before it (the decode path); otherwise x is quantized first;
 *   large n: x quantized (one block a row, 16-byte loads, the row read once from memory)
 *            into the scratch, grown once where it can be so that a prefill step's x fits
 *            one piece (fp8_gemm), then cuBLASLt's FP8 GEMM (TN, e4m3 inputs, float32 compute with fast
 *            accumulation, the algorithm timed per shape: quant_lt.cu) with sw and sx as
 *            outer-vector scales in its epilogue and y written in dt; where cuBLASLt has no
 *            such algorithm (sm_90 with CUDA 13.0) and x is bf16, the GEMM writes y in bf16
 *            unscaled and a small kernel scales it in place and adds the bias; otherwise the
 *            GEMM writes float32 into the scratch and a small kernel scales, adds the bias
 *            and rounds. Shapes cuBLASLt's FP8 GEMM does not take (out not a multiple of 16)
 *            and devices without FP8 tensor cores run the GEMV; at decode sizes the GEMV
 *            gives way to cuBLASLt on layers of many 16-row tiles (fp8_linear). */
#include "kernels/cuda/quant.cuh"
#include "kernels/cuda/act.cuh"
#include <cuda_fp8.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>

struct pgd_cuda_fp8 {
    int in, out;
    bool per_channel;
    uint8_t *w;                      /* device [out][in] e4m3 */
    float *sw;                       /* device [out] */
};

#define FP8_GEMV_MAX_N_DEFAULT 8
#define FP8_FAST_ACCUM_DEFAULT 1

/* ---- per-token quantization ---------------------------------------------------------------- */
/* Row r of x [rows, in] (in a multiple of 8; vec: x 16-byte aligned): sx[r] = max|x| / 448
 * (1 for an all-zero row), and each element's e4m3 code of x / sx (round to nearest even,
 * saturating at 448), written as the code (q, for cuBLASLt and the tensor-core GEMV: 8
 * bytes a store) or as its exact value in T (xd, for the plain GEMV). One block of 256
 * threads a row; the second read of the row comes from L1. */
template <typename T>
__global__ void __launch_bounds__(256)
fp8_quant_kernel(const T *__restrict__ x, int in, int vec, uint8_t *__restrict__ q,
                 T *__restrict__ xd, float *__restrict__ sx)
{
    __shared__ float red[8];
    pdl_trigger();
    pdl_wait();
    const int r = blockIdx.x, vpr = in / 8;
    const T *xr = x + (size_t)r * in;
    const float s = fp8_token_scale(fp8_row_amax_256<T>(xr, in, vec != 0, red));
    if (threadIdx.x == 0)
        sx[r] = s;
    for (int j = threadIdx.x; j < vpr; j += 256) {
        float f[8];
        fp8_x8<T>(xr, j, vec != 0, f);
        const uint2 c = fp8_e4m3x8(f, s);
        if (q) {
            reinterpret_cast<uint2 *>(q + (size_t)r * in)[j] = c;
        } else {
            const uint8_t *cb = reinterpret_cast<const uint8_t *>(&c);
#pragma unroll
            for (int i = 0; i < 8; i++)
                xd[(size_t)r * in + 8 * j + i] = from_f<T>(
                    __half2float(__half(__nv_cvt_fp8_to_halfraw(cb[i], __NV_E4M3))));
        }
    }
}

/* Codes into q (cuBLASLt, the tensor-core GEMV; 8-byte aligned, as the scratch is) or
 * values into xd (the plain GEMV). */
template <typename T>
static int fp8_quantize(struct pgd_cuda_ctx *c, const void *x, int rows, int in, uint8_t *q,
                        void *xd, float *sx, char *err, size_t errlen)
{
    const int vec = (uintptr_t)x % 16 == 0;
    cudaError_t e = pgd_cuda_launch(c, fp8_quant_kernel<T>, dim3(rows), dim3(256), (const T *)x,
                                    in, vec, q, (T *)xd, sx);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "fp8 quantize x [%d, %d]: %s", rows, in,
                              cudaGetErrorString(e));
    return 0;
}

/* ---- the GEMV's decoder --------------------------------------------------------------------- */
/* e4m3 byte b as a float: its 7 magnitude bits moved to float bits 20..26 (exponent low
 * bits and the top 3 mantissa bits) and the sign to bit 31 give 2^-120 times the value
 * (e4m3 subnormals become float subnormals, exactly); one multiply by 2^120 restores it.
 * 0x7f / 0xff (NaN) decode as +-480; the encoders never write them for finite input. */
__device__ __forceinline__ void e4m3x4(uint32_t w, float *f)
{
    f[0] = __uint_as_float(((w << 20) & 0x07F00000u) | ((w << 24) & 0x80000000u)) * 0x1p120f;
    f[1] = __uint_as_float(((w << 12) & 0x07F00000u) | ((w << 16) & 0x80000000u)) * 0x1p120f;
    f[2] = __uint_as_float(((w << 4) & 0x07F00000u) | ((w << 8) & 0x80000000u)) * 0x1p120f;
    f[3] = __uint_as_float(((w >> 4) & 0x07F00000u) | (w & 0x80000000u)) * 0x1p120f;
}

struct fp8_dec {
    static constexpr int K = 16;
    const uint4 *w;                  /* [out][chunks] */
    const float *sw;                 /* [out] */
    int chunks;
    struct Chunk {
        uint4 v;
    };
    __device__ __forceinline__ Chunk load(int o, int c) const
    {
        Chunk ch;
        ch.v = ld_stream(w + (size_t)o * chunks + c);
        return ch;
    }
    __device__ __forceinline__ float dequant(const Chunk &ch, float *f) const
    {
        e4m3x4(ch.v.x, f);
        e4m3x4(ch.v.y, f + 4);
        e4m3x4(ch.v.z, f + 8);
        e4m3x4(ch.v.w, f + 12);
        return 1.0f;
    }
    __device__ __forceinline__ float rowf(int o) const { return __ldg(sw + o); }
};

/* ---- the epilogues --------------------------------------------------------------------------- */
/* An output from the GEMM's unscaled sum v: one expression for every epilogue, so that the
 * gated one rounds gate and up exactly as the others round y. */
__device__ __forceinline__ float fp8_scaled(float v, float sxr, float swo, float bias)
{
    return v * sxr * swo + bias;
}

/* y[r, o] = d[r, o] * sx[r] * sw[o] + b[o] for r < rows. */
template <typename T>
__global__ void fp8_epilogue_kernel(const float *__restrict__ d, const float *__restrict__ sx,
                                    const float *__restrict__ sw, const T *__restrict__ b,
                                    int rows, int out, T *__restrict__ y)
{
    pdl_trigger();
    pdl_wait();
    const size_t total = (size_t)rows * out;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / out), o = (int)(i % out);
        y[i] = from_f<T>(fp8_scaled(d[i], sx[r], sw[o], b ? to_f<T>(b[o]) : 0.0f));
    }
}

/* y[r, o] = y[r, o] * sx[r] * sw[o] + b[o] in place, for r < rows (the 16-bit GEMM output,
 * unscaled, rounded a second time): 8 elements a thread, out a multiple of 8. */
template <typename T>
__global__ void fp8_scale_kernel(T *__restrict__ y, const float *__restrict__ sx,
                                 const float *__restrict__ sw, const T *__restrict__ b, int rows,
                                 int out)
{
    pdl_trigger();
    pdl_wait();
    const int vpr = out / 8;
    const size_t total = (size_t)rows * vpr;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / vpr), o0 = (int)(i % vpr) * 8;
        uint4 *p = reinterpret_cast<uint4 *>(y) + i;
        uint4 v = *p;
        T *e = reinterpret_cast<T *>(&v);
        const float s = sx[r];
#pragma unroll
        for (int k = 0; k < 8; k++)
            e[k] = from_f<T>(fp8_scaled(to_f<T>(e[k]), s, __ldg(sw + o0 + k),
                                        b ? to_f<T>(b[o0 + k]) : 0.0f));
        *p = v;
    }
}

/* The gated activation of a gate_up layer's unscaled GEMM output (S: float for the float32
 * kind, T for the 16-bit one) in the same pass as its scales: out[r, j] = act(gate) * up
 * with gate and up (columns j and inter + j of d [rows, 2 inter]) scaled, biased and
 * rounded to T as the two kernels above round y, so that it equals those followed by
 * act_mul; d is read once and the scaled gate_up is never written. */
template <typename T, typename S, int ACT>
__global__ void fp8_scale_act_kernel(const S *__restrict__ d, const float *__restrict__ sx,
                                     const float *__restrict__ sw, const T *__restrict__ b,
                                     int rows, int inter, T *__restrict__ out)
{
    pdl_trigger();
    pdl_wait();
    const size_t total = (size_t)rows * inter;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / inter), j = (int)(i % inter);
        const S *dr = d + (size_t)r * 2 * inter;
        const T gate = from_f<T>(fp8_scaled(to_f<S>(dr[j]), sx[r], __ldg(sw + j),
                                            b ? to_f<T>(b[j]) : 0.0f));
        const T up = from_f<T>(fp8_scaled(to_f<S>(dr[inter + j]), sx[r], __ldg(sw + inter + j),
                                          b ? to_f<T>(b[inter + j]) : 0.0f));
        out[i] = from_f<T>(act_mul_f<ACT>(to_f<T>(gate), to_f<T>(up)));
    }
}

/* A gate_up layer's activation requested of the GEMM path (NULL: the plain linear): out
 * [n, inter] gets act(gate) * up. */
struct fp8_glu {
    enum pgd_act act;
    void *out;
};

template <typename T, typename S>
static cudaError_t fp8_scale_act(struct pgd_cuda_ctx *c, const fp8_glu *glu, const S *d,
                                 const float *sx, const float *sw, const T *b, int rows,
                                 int inter, T *out)
{
    dim3 grid(pgd_cuda_blocks((int64_t)rows * inter, 256)), block(256);
    return glu->act == PGD_ACT_SILU
               ? pgd_cuda_launch(c, fp8_scale_act_kernel<T, S, PGD_ACT_SILU>, grid, block, d, sx,
                                 sw, b, rows, inter, out)
               : pgd_cuda_launch(c, fp8_scale_act_kernel<T, S, PGD_ACT_GELU_TANH>, grid, block, d,
                                 sx, sw, b, rows, inter, out);
}

/* ---- create / destroy --------------------------------------------------------------------------- */
extern "C" int pgd_cuda_fp8_create(const struct pgd_fp8_host *h, struct pgd_cuda_fp8 **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    if (h->in <= 0 || h->out <= 0 || h->in > INT_MAX / 2 || h->out > INT_MAX / 2 ||
        h->in % 16 != 0)
        return pgd_cuda_failf(err, errlen, "fp8 layer [%lld, %lld]: the CUDA kernels need in to "
                              "be a positive multiple of 16", (long long)h->out, (long long)h->in);
    if (!h->weight || !h->scale)
        return pgd_cuda_failf(err, errlen, "fp8 layer: weight and scale are required");
    const int in = (int)h->in, o_n = (int)h->out;
    float *sw = (float *)malloc((size_t)o_n * sizeof(float));
    if (!sw)
        return pgd_cuda_failf(err, errlen, "out of host memory");
    for (int o = 0; o < o_n; o++) {
        sw[o] = h->scale[h->per_channel ? o : 0];
        if (!isfinite(sw[o])) {
            free(sw);
            return pgd_cuda_failf(err, errlen, "fp8 layer [%d, %d]: scale of output %d is %g",
                                  o_n, in, o, sw[o]);
        }
    }
    struct pgd_cuda_fp8 *w = (struct pgd_cuda_fp8 *)calloc(1, sizeof *w);
    int rc = 0;
    if (!w) {
        free(sw);
        return pgd_cuda_failf(err, errlen, "out of host memory");
    }
    *w = (struct pgd_cuda_fp8){ in, o_n, h->per_channel, NULL, NULL };
    w->w = (uint8_t *)pgd_cuda_malloc((size_t)o_n * in);
    w->sw = (float *)pgd_cuda_malloc((size_t)o_n * sizeof(float));
    if (!w->w || !w->sw)
        rc = pgd_cuda_failf(err, errlen, "out of device memory for a [%d, %d] fp8 layer", o_n, in);
    rc = rc || pgd_cuda_memcpy_h2d(w->w, h->weight, (size_t)o_n * in, err, errlen) ||
         pgd_cuda_memcpy_h2d(w->sw, sw, (size_t)o_n * sizeof(float), err, errlen);
    free(sw);
    if (rc) {
        pgd_cuda_fp8_destroy(w);
        return 1;
    }
    *out = w;
    return 0;
}

extern "C" void pgd_cuda_fp8_destroy(struct pgd_cuda_fp8 *w)
{
    if (!w)
        return;
    pgd_cuda_free(w->w);
    pgd_cuda_free(w->sw);
    free(w);
}

/* ---- the paths -------------------------------------------------------------------------------- */
static size_t align256(size_t v) { return (v + 255) / 256 * 256; }

/* Whether the GEMV runs on tensor cores (quant_fp8_mma.cu): in a multiple of 64, a device
 * with e4m3 mma.sync, and not PGD_CUDA_FP8_MMA=0. */
static bool fp8_mma_on(struct pgd_cuda_ctx *c, const struct pgd_cuda_fp8 *w)
{
    static int env = -1;
    if (env < 0)
        env = pgd_cuda__qenv_int("PGD_CUDA_FP8_MMA", 1) != 0;
    return env && w->in % 64 == 0 && pgd_cuda__fp8_mma_ok(c);
}

/* Scratch: x's e4m3 codes [n, in] (tensor cores) or their values as T [n, in] (the plain
 * GEMV), then sx [n]. f16: the fused GEMV may keep x as fp16 values (else e4m3 codes). */
template <typename T>
static int fp8_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                    const struct pgd_cuda_fp8 *w, const void *b, void *y, bool f16, char *err,
                    size_t errlen)
{
    pgd_cuda__fp8_share_note(c, 0, NULL, 0, 0, dt);   /* it may write the scratch */
    const bool mma = fp8_mma_on(c, w);
    if (mma && pgd_cuda__fp8_mma_fused_ok(x, n, w->in))
        return pgd_cuda__fp8_mma_gemv_fused(c, dt, x, n, w->w, w->sw, w->in, w->out, b, y, f16,
                                            err, errlen);
    const size_t xbytes = align256((size_t)n * w->in * (mma ? 1 : sizeof(T)));
    if (xbytes + align256((size_t)n * sizeof(float)) > c->qscratch_bytes)
        return pgd_cuda_failf(err, errlen, "fp8 GEMV: x [%d, %d] exceeds the %zu-byte scratch", n,
                              w->in, c->qscratch_bytes);
    T *xd = (T *)c->qscratch;
    float *sx = (float *)((char *)c->qscratch + xbytes);
    if (mma) {
        uint8_t *xq = (uint8_t *)c->qscratch;
        if (fp8_quantize<T>(c, x, n, w->in, xq, NULL, sx, err, errlen))
            return 1;
        return pgd_cuda__fp8_mma_gemv(c, dt, xq, sx, n, w->w, w->sw, w->in, w->out, b, y, err,
                                      errlen);
    }
    if (fp8_quantize<T>(c, x, n, w->in, NULL, xd, sx, err, errlen))
        return 1;
    fp8_dec d;
    d.w = reinterpret_cast<const uint4 *>(w->w);
    d.sw = w->sw;
    d.chunks = w->in / fp8_dec::K;
    return qgemv_launch(c, d, (const T *)xd, (const T *)b, (const float *)sx, n, w->in, w->out,
                        (T *)y, "fp8", err, errlen);
}

/* One chunk of rows through cuBLASLt: kind PGD_QLT_FP8_VEC (y directly), _16 (y unscaled,
 * then scaled in place) or _F32 (float32 into dbuf, then the epilogue). glu: the unscaled
 * kinds' scales and the activation in one pass into gout (y keeps the unscaled sums); the
 * scaled kind's y then act_mul. Returns pgd_cuda__qlt_matmul's 0 / 1 / 2. */
template <typename T>
static int fp8_lt_rows(struct pgd_cuda_ctx *c, int kind, int fast, enum pgd_dtype dt,
                       const uint8_t *xq, const float *sx, int rows, const struct pgd_cuda_fp8 *w,
                       const void *b, float *dbuf, T *y, const fp8_glu *glu, T *gout, char *err,
                       size_t errlen)
{
    struct pgd_cuda_qlt g = {};
    g.kind = kind;
    g.fast_accum = fast;
    g.dt = dt;
    g.m = w->out; g.n = rows; g.k = w->in;
    g.lda = w->in; g.ldb = w->in; g.ldd = w->out;
    g.a = w->w; g.b = xq;
    g.d = kind == PGD_QLT_FP8_F32 ? (void *)dbuf : (void *)y;
    g.a_scale = w->sw;
    g.b_scale = sx;
    if (kind == PGD_QLT_FP8_16 && (dt != PGD_DTYPE_BF16 || w->out % 8 != 0 || (uintptr_t)y % 16))
        return pgd_cuda_failf(err, errlen, "fp8 GEMM with an unscaled 16-bit output: only for "
                              "bf16 activations (fp16 could overflow), out a multiple of 8 and y "
                              "16-byte aligned ([%d, %d] in %s)", w->out, w->in,
                              pgd_dtype_name(dt)) + 1;
    int rc = pgd_cuda__qlt_matmul(c, &g, err, errlen);
    if (rc)
        return rc;
    if (kind == PGD_QLT_FP8_VEC)
        return (b && pgd_cuda__qadd_bias(c, dt, y, b, rows, w->out, err, errlen)) ||
               (glu && pgd_cuda_act_mul(c, dt, glu->act, y, rows, w->out / 2, gout, err, errlen));
    if (glu) {
        cudaError_t e = kind == PGD_QLT_FP8_16
                            ? fp8_scale_act<T, T>(c, glu, y, sx, w->sw, (const T *)b, rows,
                                                  w->out / 2, gout)
                            : fp8_scale_act<T, float>(c, glu, dbuf, sx, w->sw, (const T *)b,
                                                      rows, w->out / 2, gout);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "fp8 scales and activation [%d, %d]: %s", rows,
                                  w->out, cudaGetErrorString(e));
        return 0;
    }
    if (kind == PGD_QLT_FP8_16) {
        dim3 grid(pgd_cuda_blocks((int64_t)rows * w->out / 8, 256)), block(256);
        cudaError_t e = pgd_cuda_launch(c, fp8_scale_kernel<T>, grid, block, y, sx,
                                        (const float *)w->sw, (const T *)b, rows, w->out);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "fp8 scale [%d, %d]: %s", rows, w->out,
                                  cudaGetErrorString(e));
        return 0;
    }
    dim3 grid(pgd_cuda_blocks((int64_t)rows * w->out, 256)), block(256);
    cudaError_t e = pgd_cuda_launch(c, fp8_epilogue_kernel<T>, grid, block, (const float *)dbuf, sx,
                                    (const float *)w->sw, (const T *)b, rows, w->out, y);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "fp8 epilogue [%d, %d]: %s", rows, w->out,
                              cudaGetErrorString(e));
    return 0;
}

/* Rows at a time through cuBLASLt: scratch = xq [rows, in] e4m3, sx [rows], and for the
 * float32 kind d [rows, out]. kind -1: outer-vector scales where cuBLASLt has them (not on
 * Hopper with CUDA 13.0), else (-2) the unscaled bf16 output scaled after (bf16
 * activations), else float32: from the first piece a kind has no algorithm for, the rest of
 * the rows go the next way. glu: y is the scratch of a gate_up layer whose activation goes
 * to glu->out (fp8_lt_rows). x's quantization is shared (pgd_cuda_fp8_share_x) when the
 * rows fit one piece. Returns 0 / 1 / 2 (no algorithm for the kind asked). */
template <typename T>
static int fp8_gemm(struct pgd_cuda_ctx *c, int kind, int fast, enum pgd_dtype dt, const void *x,
                    int n, const struct pgd_cuda_fp8 *w, const void *b, void *y,
                    const fp8_glu *glu, char *err, size_t errlen)
{
    const bool f32 = kind == PGD_QLT_FP8_F32;
    const size_t per_row =
        (size_t)w->in + sizeof(float) + (f32 ? (size_t)w->out * sizeof(float) : 0);
    /* One piece where the scratch can grow to hold it (before any graph capture): a piece
     * more is a quantization, a GEMM and a scaling pass more, and the q, k, v projections
     * share x's quantization only when it is one piece (the launches of a 16,384-token
     * step otherwise overflow the stream's queue of pending launches: the host then waits
     * for the GPU inside the step). */
    if (pgd_cuda__qscratch_reserve(c, per_row * (size_t)n + 3 * 256, err, errlen))
        return 1;
    c->fp8_stats.gemm_calls++;
    int step = (int)std::min<size_t>((c->qscratch_bytes - 3 * 256) / per_row, INT_MAX);
    step = step >= 128 ? step / 128 * 128 : step / 16 * 16;
    if (step < 16)
        return pgd_cuda_failf(err, errlen, "fp8 GEMM: a row of [%d, %d] does not fit the scratch "
                              "16 times", w->out, w->in);
    step = step < n ? step : n;
    uint8_t *xq = (uint8_t *)c->qscratch;
    float *sx = (float *)((char *)c->qscratch + align256((size_t)step * w->in));
    float *dbuf = (float *)((char *)sx + align256((size_t)step * sizeof(float)));
    /* Asked once a context: cuBLASLt has outer-vector scales for FP8 or not (not for sm_90
     * with CUDA 13.0), rather than a failing heuristic call for every new n. */
    if (kind == -1 && c->fp8_vec == 2)
        kind = -2;
    const bool one_piece = step == n;
    for (int r0 = 0; r0 < n; r0 += step) {
        const int rows = n - r0 < step ? n - r0 : step;
        if (!(one_piece && pgd_cuda__fp8_share_hit(c, step, x, n, w->in, dt))) {
            if (fp8_quantize<T>(c, (const T *)x + (size_t)r0 * w->in, rows, w->in, xq, NULL, sx,
                                err, errlen))
                return 1;
            c->fp8_stats.x_quantizations++;
            pgd_cuda__fp8_share_note(c, one_piece ? step : 0, x, n, w->in, dt);
        }
        c->fp8_stats.gemm_pieces++;
        T *yr = (T *)y + (size_t)r0 * w->out;
        T *gr = glu ? (T *)glu->out + (size_t)r0 * (w->out / 2) : NULL;
        const int k = kind == -1 ? PGD_QLT_FP8_VEC : kind == -2 ? PGD_QLT_FP8_16 : kind;
        int rc = fp8_lt_rows<T>(c, k, fast, dt, xq, sx, rows, w, b, dbuf, yr, glu, gr, err,
                                errlen);
        if (kind == -1 && (rc == 0 || rc == 2))
            c->fp8_vec = rc == 0 ? 1 : 2;
        if (rc == 2 && kind < 0) {
            const fp8_glu rest = glu ? fp8_glu{ glu->act, gr } : fp8_glu{};
            return fp8_gemm<T>(c, kind == -1 ? -2 : PGD_QLT_FP8_F32, fast, dt,
                               (const T *)x + (size_t)r0 * w->in, n - r0, w, b, yr,
                               glu ? &rest : NULL, err, errlen);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int fp8_gemv_max_n(void)
{
    static int v = -1;
    if (v < 0) {
        int n = pgd_cuda__qenv_int("PGD_CUDA_FP8_GEMV_MAX_N", FP8_GEMV_MAX_N_DEFAULT);
        v = n < 0 ? 0 : n > 64 ? 64 : n;
    }
    return v;
}

/* Whether the automatic choice takes the streaming GEMV at decode sizes
 * (PGD_CUDA_FP8_STREAM=0, read once: the fused GEMV or cuBLASLt as before, for measuring). */
static int fp8_stream_on(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_FP8_STREAM", 1) != 0;
    return v;
}

bool pgd_cuda__fp8_stream_takes(const struct pgd_cuda_ctx *c, int n, int in)
{
    return n >= 1 && n <= fp8_gemv_max_n() && fp8_stream_on() && pgd_cuda__fp8_stream_ok(c, in);
}

/* Whether pgd_cuda_fp8_linear_multi runs q, k and v in one launch of the streaming GEMV
 * (PGD_CUDA_FP8_STREAM_QKV=0: three launches sharing one quantized x), read once. On by
 * default since the streaming GEMV took the W4 GEMV's shape: the 8B FP8 decode step on the
 * H200 at batch 1 / 4 / 8, three launches 4.28 / 4.81 / 4.82 ms, one 4.31 / 4.69 / 4.74
 * (docs/PERFORMANCE.md, eighth lease). */
static int fp8_stream_qkv_on(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_FP8_STREAM_QKV", 1) != 0;
    return v;
}

/* cuBLASLt's fast FP8 accumulation on the automatic and gemm paths, as vLLM's FP8 GEMMs
 * (CUTLASS's FP8 fast-accumulation schedules): PGD_CUDA_FP8_FAST_ACCUM=0 turns it off, read
 * once. */
static int fp8_fast_accum(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_FP8_FAST_ACCUM", FP8_FAST_ACCUM_DEFAULT) != 0;
    return v;
}

/* glu (the automatic path only; NULL: the plain linear): y is a gate_up layer's scratch and
 * glu->out gets act(gate) * up: in the streaming GEMV, in the GEMM's scaling pass, or by
 * act_mul after the other GEMVs. */
template <typename T>
static int fp8_linear(struct pgd_cuda_ctx *c, int path, enum pgd_dtype dt, const void *x, int n,
                      const struct pgd_cuda_fp8 *w, const void *b, void *y, const fp8_glu *glu,
                      char *err, size_t errlen)
{
    /* auto with PGD_CUDA_FP8_DEC=1: up to pgd_cuda__fp8_dec_max_n() rows (16) the decode
     * GEMV (quant_fp8_dec.cu: one launch, x quantized in its blocks, the activation of a
     * gate_up layer fused) where it takes the layer; by default (it was slower on the
     * H200) the choice below, as before it. */
    if (path == PGD_CUDA_QPATH_GEMV_DEC ||
        (path == PGD_CUDA_QPATH_AUTO && n <= pgd_cuda__fp8_dec_max_n() &&
         pgd_cuda__fp8_dec_ok(c, n, w->in))) {
        const struct pgd_cuda_fp8_dec_seg seg = { w->w, w->sw, b, glu ? glu->out : y, w->out };
        return pgd_cuda__fp8_dec_gemv(c, dt, glu ? (int)glu->act : -1, x, n, w->in, 1, &seg, err,
                                      errlen);
    }
    /* auto: up to the GEMV sizes the streaming GEMV (x quantized once by its own kernel,
     * then the weights streamed: quant_fp8_gemv.cu) wherever it takes the layer. It used to
     * leave lone layers (o, down) to the fused GEMV below, whose one launch quantizes x in
     * its blocks; since it took the W4 GEMV's shape the 8B decode step is faster with every
     * layer on it (H200, batch 1 / 4 / 8, the previous choices against these: 4.41 / 5.14 /
     * 5.42 -> 4.32 / 4.79 / 4.80 ms; docs/PERFORMANCE.md, eighth lease). */
    if (path == PGD_CUDA_QPATH_GEMV_STREAM ||
        (path == PGD_CUDA_QPATH_AUTO && pgd_cuda__fp8_stream_takes(c, n, w->in)))
        return glu ? pgd_cuda__fp8_stream_gemv(c, dt, (int)glu->act, x, n, w->w, w->sw, w->in,
                                               w->out, b, glu->out, err, errlen)
                   : pgd_cuda__fp8_stream_gemv(c, dt, -1, x, n, w->w, w->sw, w->in, w->out, b,
                                               y, err, errlen);
    const int fast = fp8_fast_accum();
    switch (path) {
    case PGD_CUDA_QPATH_GEMV:
        return fp8_gemv<T>(c, dt, x, n, w, b, y, true, err, errlen);
    case PGD_CUDA_QPATH_GEMV_E4M3:
        return fp8_gemv<T>(c, dt, x, n, w, b, y, false, err, errlen);
    case PGD_CUDA_QPATH_GEMM_VEC:
        return fp8_gemm<T>(c, PGD_QLT_FP8_VEC, 0, dt, x, n, w, b, y, NULL, err, errlen);
    case PGD_CUDA_QPATH_GEMM_FAST:
        return fp8_gemm<T>(c, PGD_QLT_FP8_16, 1, dt, x, n, w, b, y, NULL, err, errlen);
    case PGD_CUDA_QPATH_GEMM_D16:
        return fp8_gemm<T>(c, PGD_QLT_FP8_16, 0, dt, x, n, w, b, y, NULL, err, errlen);
    case PGD_CUDA_QPATH_GEMM_F32:
        return fp8_gemm<T>(c, PGD_QLT_FP8_F32, 0, dt, x, n, w, b, y, NULL, err, errlen);
    case PGD_CUDA_QPATH_GEMM:
        return fp8_gemm<T>(c, -1, fast, dt, x, n, w, b, y, NULL, err, errlen);
    default:
        break;
    }
    /* auto (past the streaming GEMV above): cuBLASLt past the GEMV sizes where its FP8 GEMM
     * takes the shape; the GEMV where it has no algorithm at all (a device without FP8
     * tensor cores). The fused GEMV's blocks each quantize x
     * again, so it loses to cuBLASLt on layers of many 16-row tiles (measured on the H200:
     * [28672 x 4096] n = 1 49.6 us against 36.3; [6144 x 4096] n = 4 23.2 against 16.4):
     * past 512 tiles at n = 1 and 256 above, cuBLASLt. */
    const int tiles = (w->out + 15) / 16;
    const bool gemv_wins = tiles <= (n == 1 ? 512 : 256) || !fp8_mma_on(c, w);
    int rc = 2;
    if (!((n <= fp8_gemv_max_n() && gemv_wins) || w->out % 16 != 0)) {
        rc = fp8_gemm<T>(c, -1, fast, dt, x, n, w, b, y, glu, err, errlen);
        if (rc != 2)
            return rc;
    }
    return fp8_gemv<T>(c, dt, x, n, w, b, y, true, err, errlen) ||
           (glu && pgd_cuda_act_mul(c, dt, glu->act, y, n, w->out / 2, glu->out, err, errlen));
}

extern "C" int pgd_cuda_fp8_linear_path(struct pgd_cuda_ctx *c, int path, enum pgd_dtype dt,
                                        const void *x, int n, const struct pgd_cuda_fp8 *w,
                                        const void *b, void *y, char *err, size_t errlen)
{
    if (dt != PGD_DTYPE_BF16 && dt != PGD_DTYPE_F16)
        return pgd_cuda_failf(err, errlen, "fp8 linear: activations in %s (BF16 or F16)",
                              pgd_dtype_name(dt));
    if (n < 0 || path < PGD_CUDA_QPATH_AUTO || path > PGD_CUDA_QPATH_GEMV_DEC)
        return pgd_cuda_failf(err, errlen, "fp8 linear: %d rows, path %d", n, path);
    if (n == 0)
        return 0;
    if (dt == PGD_DTYPE_BF16)
        return fp8_linear<__nv_bfloat16>(c, path, dt, x, n, w, b, y, NULL, err, errlen);
    return fp8_linear<__half>(c, path, dt, x, n, w, b, y, NULL, err, errlen);
}

extern "C" int pgd_cuda_fp8_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                                   const struct pgd_cuda_fp8 *w, const void *b, void *y, char *err,
                                   size_t errlen)
{
    int rc = pgd_cuda_fp8_linear_path(c, PGD_CUDA_QPATH_AUTO, dt, x, n, w, b, y, err, errlen);
    return rc ? 1 : 0;
}

extern "C" bool pgd_cuda_fp8_glu_on(int n)
{
    static int v = -2;               /* -1: by n; 0 / 1: PGD_CUDA_FP8_GLU */
    if (v == -2) {
        const int e = pgd_cuda__qenv_int("PGD_CUDA_FP8_GLU", -1);
        v = e < 0 ? -1 : e != 0;
    }
    return v < 0 ? n >= 2 : v != 0;
}

extern "C" int pgd_cuda_fp8_linear_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                           enum pgd_act act, const void *x, int n,
                                           const struct pgd_cuda_fp8 *w, const void *b,
                                           void *scratch, void *out, char *err, size_t errlen)
{
    if (dt != PGD_DTYPE_BF16 && dt != PGD_DTYPE_F16)
        return pgd_cuda_failf(err, errlen, "fp8 linear_act_mul: activations in %s (BF16 or F16)",
                              pgd_dtype_name(dt));
    if (n < 0 || w->out % 2 != 0 || (act != PGD_ACT_SILU && act != PGD_ACT_GELU_TANH))
        return pgd_cuda_failf(err, errlen, "fp8 linear_act_mul: %d rows, [%d, %d] (an even "
                              "number of features), activation %d", n, w->out, w->in, (int)act);
    if (n == 0)
        return 0;
    /* decode sizes: one streaming GEMV pairing gate and up features (no scratch needed) */
    const bool stream = (n <= pgd_cuda__fp8_dec_max_n() && pgd_cuda__fp8_dec_ok(c, n, w->in)) ||
                        pgd_cuda__fp8_stream_takes(c, n, w->in);
    if (!scratch && !stream)
        return pgd_cuda_failf(err, errlen, "fp8 linear_act_mul x [%d, %d] @ w [%d, %d]^T: the "
                              "GEMM path needs a scratch [%d, %d]", n, w->in, w->out, w->in,
                              n, w->out);
    const fp8_glu glu = { act, out };
    if (dt == PGD_DTYPE_BF16)
        return fp8_linear<__nv_bfloat16>(c, PGD_CUDA_QPATH_AUTO, dt, x, n, w, b, scratch, &glu,
                                         err, errlen);
    return fp8_linear<__half>(c, PGD_CUDA_QPATH_AUTO, dt, x, n, w, b, scratch, &glu, err, errlen);
}

extern "C" int pgd_cuda_fp8_linear_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                         const void *x, int n, int count,
                                         const struct pgd_cuda_fp8 *const *w,
                                         const void *const *b, void *const *y, char *err,
                                         size_t errlen)
{
    if (count < 1 || count > 3)
        return pgd_cuda_failf(err, errlen, "fp8 linear_multi: %d layers (1..3)", count);
    bool one = n >= 1 && n <= pgd_cuda__fp8_dec_max_n() && pgd_cuda__fp8_dec_ok(c, n, w[0]->in);
    for (int i = 1; i < count; i++)
        one = one && w[i]->in == w[0]->in;
    if (one && (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16)) {
        struct pgd_cuda_fp8_dec_seg segs[3];
        for (int i = 0; i < count; i++)
            segs[i] = { w[i]->w, w[i]->sw, b[i], y[i], w[i]->out };
        return pgd_cuda__fp8_dec_gemv(c, dt, -1, x, n, w[0]->in, count, segs, err, errlen);
    }
    /* At the streaming GEMV's sizes (one launch's 8 rows) the layers in one launch of it, x
     * quantized once, rather than a launch a layer (PGD_CUDA_FP8_STREAM_QKV=0) */
    bool segs_ok = fp8_stream_qkv_on() && pgd_cuda__fp8_stream_takes(c, n, w[0]->in) &&
                   n <= 8 && (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16);
    for (int i = 1; i < count; i++)
        segs_ok = segs_ok && w[i]->in == w[0]->in;
    if (segs_ok) {
        struct pgd_cuda_fp8_dec_seg segs[3];
        for (int i = 0; i < count; i++)
            segs[i] = { w[i]->w, w[i]->sw, b[i], y[i], w[i]->out };
        return pgd_cuda__fp8_stream_gemv_segs(c, dt, x, n, w[0]->in, count, segs, err, errlen);
    }
    /* otherwise each layer on its own, x's quantization done once where the path allows */
    pgd_cuda_fp8_share_x(c, 1);
    int rc = 0;
    for (int i = 0; i < count && !rc; i++)
        rc = pgd_cuda_fp8_linear(c, dt, x, n, w[i], b[i], y[i], err, errlen);
    pgd_cuda_fp8_share_x(c, 0);
    return rc;
}

extern "C" void pgd_cuda_fp8_stats(const struct pgd_cuda_ctx *c, struct pgd_cuda_fp8_stats *out)
{
    *out = c->fp8_stats;
    out->scratch_bytes = c->qscratch_bytes;
}

extern "C" size_t pgd_cuda_fp8_weight_bytes(const struct pgd_cuda_fp8 *w)
{
    return (size_t)w->out * w->in + (size_t)w->out * sizeof(float);
}
