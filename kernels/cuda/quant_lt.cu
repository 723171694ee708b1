/* What the quantized linears share beyond the GEMV template (quant.cuh): the x staging
 * (act-order gather, realignment) and bias kernels, and their cuBLASLt GEMMs described as
 * linear.cu's plan descriptors (gemm_tune.cuh: leading dimensions for a slice of y's
 * columns, pointer alignments, the FP8 kinds' e4m3 inputs, outer-vector scales, fast
 * accumulation and float32 output). So they share linear.cu's plan cache and gemm_tune.cu's
 * algorithm choice: timed per descriptor and n bucket on the first call outside a graph
 * capture (the runner's warm-up steps before the graphs are captured), the heuristic's
 * first with PAGODA_GEMM_TUNE=0. */
#include "kernels/cuda/quant.cuh"
#include "kernels/cuda/gemm_tune.cuh"
#include <stdlib.h>
#include <string.h>
#include <algorithm>

int pgd_cuda__qenv_int(const char *name, int def)
{
    const char *e = getenv(name);
    return e && *e ? atoi(e) : def;
}

/* ---- the scratch ------------------------------------------------------------------------ */
#define QSCRATCH_MAX_MB_DEFAULT 512
#define QSCRATCH_GRAIN ((size_t)16 << 20)

extern "C" void pgd_cuda_qscratch_set_max(struct pgd_cuda_ctx *c, size_t bytes)
{
    c->qscratch_max = bytes;
}

static size_t qscratch_max(struct pgd_cuda_ctx *c)
{
    if (!c->qscratch_max) {
        const int mb = pgd_cuda__qenv_int("PGD_CUDA_QSCRATCH_MAX_MB", QSCRATCH_MAX_MB_DEFAULT);
        c->qscratch_max = mb > 0 ? (size_t)mb << 20 : 1;
    }
    return c->qscratch_max;
}

int pgd_cuda__qscratch_reserve(struct pgd_cuda_ctx *c, size_t bytes, char *err, size_t errlen)
{
    if (bytes <= c->qscratch_bytes || c->captured)
        return 0;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(c->stream, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone)
        return 0;
    size_t want = (bytes + QSCRATCH_GRAIN - 1) / QSCRATCH_GRAIN * QSCRATCH_GRAIN;
    want = std::min(want, qscratch_max(c));
    if (want <= c->qscratch_bytes)
        return 0;
    /* The queued kernels may still read or write the old scratch: wait for them, once. */
    PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(c->stream), "quantized-linear scratch "
                   "of %zu bytes", want);
    void *p = NULL;
    if (cudaMalloc(&p, want) != cudaSuccess) {
        cudaGetLastError();      /* out of memory is not sticky: keep the old scratch */
        return 0;
    }
    cudaFree(c->qscratch);
    c->qscratch = p;
    c->qscratch_bytes = want;
    pgd_cuda__fp8_share_note(c, 0, NULL, 0, 0, PGD_DTYPE_BF16);   /* its contents are gone */
    pgd_cuda_wq_x_forget(c);
    c->fp8_stats.scratch_grows++;
    return 0;
}

/* ---- the act-order gather a norm left ------------------------------------------------------ */
void pgd_cuda__wq_xg_note(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, int in, const void *dst)
{
    c->wq_xg_x = x;
    c->wq_xg_perm = perm;
    c->wq_xg_dst = dst;
    c->wq_xg_n = n;
    c->wq_xg_in = in;
    c->wq_xg_dt = (int)dt;
}

bool pgd_cuda__wq_xg_take(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, int in, const void *dst)
{
    const bool held = c->wq_xg_x && perm && c->wq_xg_x == x && c->wq_xg_perm == perm &&
                      c->wq_xg_dst == dst && c->wq_xg_n == n && c->wq_xg_in == in &&
                      c->wq_xg_dt == (int)dt;
    c->wq_xg_x = NULL;
    c->wq_xg_skipped += held;
    return held;
}

extern "C" void pgd_cuda_wq_x_forget(struct pgd_cuda_ctx *c)
{
    c->wq_xg_x = NULL;
}

extern "C" long pgd_cuda_wq_norm_gathers(const struct pgd_cuda_ctx *c)
{
    return c->wq_xg_skipped;
}

/* ---- x staging and bias ------------------------------------------------------------------- */
template <typename T>
__global__ void qstage_kernel(const T *__restrict__ x, const int32_t *__restrict__ perm, int rows,
                              int in, T *__restrict__ dst)
{
    pdl_trigger();
    pdl_wait();
    size_t total = (size_t)rows * in;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)in;
        int k = (int)(i - r * (size_t)in);
        dst[i] = x[r * (size_t)in + (perm ? perm[k] : k)];
    }
}

int pgd_cuda__qstage_x(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int rows, int in, void *dst, char *err,
                       size_t errlen)
{
    if (pgd_cuda__wq_xg_take(c, dt, x, perm, rows, in, dst))
        return 0;                    /* the norm before wrote it there */
    dim3 grid(pgd_cuda_blocks((int64_t)rows * in, 256)), block(256);
    cudaError_t e = cudaSuccess;
    if (dt == PGD_DTYPE_BF16)
        e = pgd_cuda_launch(c, qstage_kernel<__nv_bfloat16>, grid, block,
                            (const __nv_bfloat16 *)x, perm, rows, in, (__nv_bfloat16 *)dst);
    else if (dt == PGD_DTYPE_F16)
        e = pgd_cuda_launch(c, qstage_kernel<__half>, grid, block, (const __half *)x, perm, rows,
                            in, (__half *)dst);
    else
        return pgd_cuda_failf(err, errlen, "quantized linear: dtype %s (BF16 or F16)",
                              pgd_dtype_name(dt));
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "quantized linear: staging x [%d, %d]%s: %s", rows, in,
                              perm ? " (act-order gather)" : "", cudaGetErrorString(e));
    return 0;
}

template <typename T>
__global__ void qbias_kernel(T *__restrict__ y, const T *__restrict__ b, int rows, int out)
{
    pdl_trigger();
    pdl_wait();
    size_t total = (size_t)rows * out;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = from_f<T>(to_f<T>(y[i]) + to_f<T>(b[i % (size_t)out]));
}

int pgd_cuda__qadd_bias(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *y, const void *b,
                        int rows, int out, char *err, size_t errlen)
{
    dim3 grid(pgd_cuda_blocks((int64_t)rows * out, 256)), block(256);
    cudaError_t e = cudaSuccess;
    if (dt == PGD_DTYPE_BF16)
        e = pgd_cuda_launch(c, qbias_kernel<__nv_bfloat16>, grid, block, (__nv_bfloat16 *)y,
                            (const __nv_bfloat16 *)b, rows, out);
    else
        e = pgd_cuda_launch(c, qbias_kernel<__half>, grid, block, (__half *)y, (const __half *)b,
                            rows, out);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "quantized linear: bias over y [%d, %d]: %s", rows, out,
                              cudaGetErrorString(e));
    return 0;
}

/* ---- cuBLASLt GEMMs ------------------------------------------------------------------------- */
/* The largest power of two (up to 256) dividing the address. */
static int ptr_align(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    int a = 1;
    while (a < 256 && v % (uintptr_t)(a * 2) == 0)
        a *= 2;
    return a;
}

int pgd_cuda__qlt_matmul(struct pgd_cuda_ctx *c, const struct pgd_cuda_qlt *g, char *err,
                         size_t errlen)
{
    const bool fp8 = g->kind != PGD_QLT_16;
    struct pgd_cuda_gemm_key k = {};
    k.dt = fp8 ? PGD_DTYPE_F8_E4M3 : g->dt;
    k.ydt = g->kind == PGD_QLT_FP8_F32 ? PGD_DTYPE_F32 : g->dt;
    k.n = g->n;
    k.in = g->k;
    k.out = g->m;
    k.scale = g->kind == PGD_QLT_FP8_VEC ? PGD_CUDA_GEMM_SCALE_OUTER_VEC : PGD_CUDA_GEMM_SCALE_NONE;
    k.fast_accum = fp8 && g->fast_accum;
    k.ldw = g->lda;
    k.ldx = g->ldb;
    k.ldy = g->ldd;
    k.al_w = ptr_align(g->a);
    k.al_x = ptr_align(g->b);
    k.al_y = ptr_align(g->d);
    const struct pgd_cuda_gemm_call call = { g->b, g->a, g->d, g->a_scale, g->b_scale };
    return pgd_cuda_gemm_run(c, &k, &call, err, errlen);
}
