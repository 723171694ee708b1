/* Dense linear layers: y[n, out] = x[n, in] @ w[out, in]^T + b.
 *
 * Decode-sized batches (n <= 8) read the weight once through a GEMV kernel (one warp per
 * output feature, 16-byte loads): at these sizes the layer is a pass over the weights and
 * nothing else matters. Larger batches go through cuBLASLt: in column-major terms
 * y^T[out, n] = w^T x^T, "TN" with A = w (ld in), B = x (ld in), D = y (ld out), float32
 * compute. The algorithm for each (dtype, shape) is picked once by cuBLASLt's heuristic and
 * cached with its layouts in the context. */
#include "kernels/cuda/common.cuh"
#include <stdlib.h>
#include <algorithm>
#include <vector>

struct pgd_cuda_gemm_entry {
    enum pgd_dtype dt, ydt;
    int n, in, out;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
};

static cudaDataType_t cuda_type(enum pgd_dtype dt)
{
    return dt == PGD_DTYPE_BF16 ? CUDA_R_16BF : dt == PGD_DTYPE_F16 ? CUDA_R_16F : CUDA_R_32F;
}

static void entry_free(struct pgd_cuda_gemm_entry *e)
{
    if (e->op)
        cublasLtMatmulDescDestroy(e->op);
    if (e->a)
        cublasLtMatrixLayoutDestroy(e->a);
    if (e->b)
        cublasLtMatrixLayoutDestroy(e->b);
    if (e->d)
        cublasLtMatrixLayoutDestroy(e->d);
    e->op = NULL;
    e->a = e->b = e->d = NULL;
}

extern "C" void pgd_cuda_gemm_cache_free(struct pgd_cuda_ctx *c)
{
    for (int i = 0; i < c->gemm_n; i++)
        entry_free(&c->gemm[i]);
    free(c->gemm);
    c->gemm = NULL;
    c->gemm_n = c->gemm_cap = 0;
}

#define LT_CHECK(call, ...)                                                               \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                               \
            char what_[200];                                                             \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                  \
            return pgd_cuda_failf(err, errlen, "%s: %s: cuBLAS status %d", what_, #call, \
                                  (int)s_);                                              \
        }                                                                                \
    } while (0)

/* Finds or builds the cache entry of a shape. The cache holds 256 shapes, replaced round
 * robin once full (chunked prefills make many n). */
static int gemm_entry(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_dtype ydt, int n,
                      int in, int out, struct pgd_cuda_gemm_entry **res, char *err, size_t errlen)
{
    for (int i = 0; i < c->gemm_n; i++) {
        struct pgd_cuda_gemm_entry *e = &c->gemm[i];
        if (e->dt == dt && e->ydt == ydt && e->n == n && e->in == in && e->out == out) {
            *res = e;
            return 0;
        }
    }
    if (!c->gemm) {
        c->gemm_cap = 256;
        c->gemm = (struct pgd_cuda_gemm_entry *)calloc((size_t)c->gemm_cap, sizeof *c->gemm);
        if (!c->gemm)
            return pgd_cuda_failf(err, errlen, "out of host memory for the GEMM cache");
    }
    struct pgd_cuda_gemm_entry *e;
    if (c->gemm_n < c->gemm_cap) {
        e = &c->gemm[c->gemm_n++];
    } else {
        e = &c->gemm[c->gemm_next];
        c->gemm_next = (c->gemm_next + 1) % c->gemm_cap;
        entry_free(e);
    }
    *e = (struct pgd_cuda_gemm_entry){ dt, ydt, n, in, out };
    /* A failure below leaves an entry with no op: mark it unusable for the next lookup. */
    e->n = -1;
    const char *shape = "linear";
    LT_CHECK(cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
             "%s [%d x %d] -> %d", shape, n, in, out);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
             "%s transa", shape);
    LT_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
             "%s transb", shape);
    LT_CHECK(cublasLtMatrixLayoutCreate(&e->a, cuda_type(dt), in, out, in), "%s layout of w [%d, %d]",
             shape, out, in);
    LT_CHECK(cublasLtMatrixLayoutCreate(&e->b, cuda_type(dt), in, n, in), "%s layout of x [%d, %d]",
             shape, n, in);
    LT_CHECK(cublasLtMatrixLayoutCreate(&e->d, cuda_type(ydt), out, n, out),
             "%s layout of y [%d, %d]", shape, n, out);
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref), "%s preference", shape);
    size_t ws = c->workspace_bytes;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(c->lt, e->op, e->a, e->b, e->d, e->d, pref, 1, &h,
                                           &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0)
        return pgd_cuda_failf(err, errlen, "cuBLASLt has no algorithm for %s x [%d, %d] @ w [%d, "
                              "%d]^T -> %s (status %d)", pgd_dtype_name(dt), n, in, out, in,
                              pgd_dtype_name(ydt), (int)s);
    e->algo = h.algo;
    e->n = n;
    *res = e;
    return 0;
}

/* ---- bias ---------------------------------------------------------------------------------- */
template <typename TY, typename T>
__global__ void add_bias_kernel(TY *y, const T *b, int n, int out)
{
    size_t total = (size_t)n * out;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = from_f<TY>(to_f<TY>(y[i]) + to_f<T>(b[i % out]));
}

template <typename T>
static int add_bias(struct pgd_cuda_ctx *c, enum pgd_dtype ydt, void *y, const void *b, int n,
                    int out, char *err, size_t errlen)
{
    int blocks = pgd_cuda_blocks((int64_t)n * out, 256);
    if (ydt == PGD_DTYPE_F32)
        add_bias_kernel<float, T><<<blocks, 256, 0, c->stream>>>((float *)y, (const T *)b, n, out);
    else
        add_bias_kernel<T, T><<<blocks, 256, 0, c->stream>>>((T *)y, (const T *)b, n, out);
    PGD_CUDA_LAUNCHED(err, errlen, "add_bias [%d, %d]", n, out);
    return 0;
}

extern "C" int pgd_cuda_linear_lt(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                  const void *w, const void *b, int n, int in, int out,
                                  enum pgd_dtype ydt, void *y, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (ydt != dt && ydt != PGD_DTYPE_F32)
        return pgd_cuda_failf(err, errlen, "linear: output dtype %s for %s inputs",
                              pgd_dtype_name(ydt), pgd_dtype_name(dt));
    struct pgd_cuda_gemm_entry *e;
    if (gemm_entry(c, dt, ydt, n, in, out, &e, err, errlen))
        return 1;
    const float alpha = 1.0f, beta = 0.0f;
    LT_CHECK(cublasLtMatmul(c->lt, e->op, &alpha, w, e->a, x, e->b, &beta, y, e->d, y, e->d,
                            &e->algo, c->workspace, c->workspace_bytes, c->stream),
             "linear %s x [%d, %d] @ w [%d, %d]^T", pgd_dtype_name(dt), n, in, out, in);
    if (b)
        PGD_CUDA_DISPATCH(dt, T, return add_bias<T>(c, ydt, y, b, n, out, err, errlen));
    return 0;
}

/* ---- GEMV for small batches ------------------------------------------------------------------ */
#define GEMV_WARPS 8
#define GEMV_MAX_N_DEFAULT 4   /* measured: see docs/PERFORMANCE.md */

template <typename T>
__device__ __forceinline__ void unpack16(const uint4 &v, float *f)
{
    const T *e = reinterpret_cast<const T *>(&v);
#pragma unroll
    for (int i = 0; i < (int)(16 / sizeof(T)); i++)
        f[i] = to_f<T>(e[i]);
}

__device__ __forceinline__ uint4 ld_stream(const void *p)
{
    /* Weights are read once per step: do not let them displace x in L1. */
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

/* One warp per output feature o: acc[r] = sum_k x[r, k] w[o, k] over the N rows. vec: rows
 * are 16-byte aligned and in is a multiple of the vector width. Each lane issues UNR
 * independent 16-byte weight loads before it uses any, so that enough bytes are in flight
 * to cover the memory latency; x (a few rows, shared by all warps) comes from L1. */
#define GEMV_UNR 4
template <typename T, typename TY, int N>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ b, int in,
            int out, TY *__restrict__ y, int vec)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int o = blockIdx.x * GEMV_WARPS + warp;
    if (o >= out)
        return;
    const T *wr = w + (size_t)o * in;
    float acc[N];
#pragma unroll
    for (int r = 0; r < N; r++)
        acc[r] = 0.0f;
    constexpr int V = 16 / sizeof(T);
    constexpr int STEP = 32 * V;                    /* elements a warp covers per load */
    if (vec) {
        int k = lane * V;
        for (; k + (GEMV_UNR - 1) * STEP < in; k += GEMV_UNR * STEP) {
            uint4 wv[GEMV_UNR];
#pragma unroll
            for (int u = 0; u < GEMV_UNR; u++)
                wv[u] = ld_stream(wr + k + u * STEP);
#pragma unroll
            for (int u = 0; u < GEMV_UNR; u++) {
                float wf[V];
                unpack16<T>(wv[u], wf);
#pragma unroll
                for (int r = 0; r < N; r++) {
                    float xf[V];
                    unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * in + k + u * STEP)), xf);
#pragma unroll
                    for (int i = 0; i < V; i++)
                        acc[r] = fmaf(wf[i], xf[i], acc[r]);
                }
            }
        }
        for (; k < in; k += STEP) {
            float wf[V];
            unpack16<T>(ld_stream(wr + k), wf);
#pragma unroll
            for (int r = 0; r < N; r++) {
                float xf[V];
                unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * in + k)), xf);
#pragma unroll
                for (int i = 0; i < V; i++)
                    acc[r] = fmaf(wf[i], xf[i], acc[r]);
            }
        }
    } else {
        for (int k = lane; k < in; k += 32) {
            float wv = to_f<T>(wr[k]);
#pragma unroll
            for (int r = 0; r < N; r++)
                acc[r] = fmaf(wv, to_f<T>(x[(size_t)r * in + k]), acc[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < N; r++)
        for (int off = 16; off > 0; off >>= 1)
            acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    if (lane == 0) {
        float bias = b ? to_f<T>(b[o]) : 0.0f;
#pragma unroll
        for (int r = 0; r < N; r++)
            y[(size_t)r * out + o] = from_f<TY>(acc[r] + bias);
    }
}

template <typename T, typename TY>
static int gemv_launch(struct pgd_cuda_ctx *c, const void *x, const void *w, const void *b,
                       int n, int in, int out, void *y, char *err, size_t errlen)
{
    int vec = ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0) &&
              (in % (16 / (int)sizeof(T)) == 0);
    int blocks = (out + GEMV_WARPS - 1) / GEMV_WARPS;
    const T *xp = (const T *)x, *wp = (const T *)w, *bp = (const T *)b;
    TY *yp = (TY *)y;
    dim3 grid(blocks), block(GEMV_WARPS * 32);
    switch (n) {
    case 1: gemv_kernel<T, TY, 1><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 2: gemv_kernel<T, TY, 2><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 3: gemv_kernel<T, TY, 3><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 4: gemv_kernel<T, TY, 4><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 5: gemv_kernel<T, TY, 5><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 6: gemv_kernel<T, TY, 6><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 7: gemv_kernel<T, TY, 7><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    case 8: gemv_kernel<T, TY, 8><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, vec); break;
    default: return pgd_cuda_failf(err, errlen, "gemv: %d rows (1..8)", n);
    }
    PGD_CUDA_LAUNCHED(err, errlen, "gemv x [%d, %d] @ w [%d, %d]^T", n, in, out, in);
    return 0;
}

extern "C" int pgd_cuda_linear_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                    const void *w, const void *b, int n, int in, int out,
                                    enum pgd_dtype ydt, void *y, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (ydt != dt && ydt != PGD_DTYPE_F32)
        return pgd_cuda_failf(err, errlen, "linear: output dtype %s for %s inputs",
                              pgd_dtype_name(ydt), pgd_dtype_name(dt));
    if (ydt == PGD_DTYPE_F32)
        PGD_CUDA_DISPATCH(dt, T, return gemv_launch<T, float>(c, x, w, b, n, in, out, y, err, errlen));
    PGD_CUDA_DISPATCH(dt, T, return gemv_launch<T, T>(c, x, w, b, n, in, out, y, err, errlen));
    return 0;
}

/* Batches up to this many rows take the GEMV kernel (PGD_CUDA_GEMV_MAX_N, 0..8, overrides:
 * for measuring the two paths against each other). */
static int gemv_max_n(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_GEMV_MAX_N");
        int n = e && *e ? atoi(e) : GEMV_MAX_N_DEFAULT;
        v = n < 0 ? 0 : n > 8 ? 8 : n;
    }
    return v;
}

extern "C" int pgd_cuda_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                               const void *w, const void *b, int n, int in, int out,
                               enum pgd_dtype ydt, void *y, char *err, size_t errlen)
{
    if (n <= gemv_max_n())
        return pgd_cuda_linear_gemv(c, dt, x, w, b, n, in, out, ydt, y, err, errlen);
    return pgd_cuda_linear_lt(c, dt, x, w, b, n, in, out, ydt, y, err, errlen);
}

/* ---- the GEMM rate probe ---------------------------------------------------------------------- */
extern "C" int pgd_cuda_bench_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int m, int n, int k,
                                   int iters, double *tflops, char *err, size_t errlen)
{
    size_t esz = pgd_dtype_size(dt);
    void *a = NULL, *bm = NULL, *d = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = 0;
    std::vector<float> ms;
    cudaError_t e = cudaMalloc(&a, (size_t)m * k * esz);
    if (e == cudaSuccess)
        e = cudaMalloc(&bm, (size_t)n * k * esz);
    if (e == cudaSuccess)
        e = cudaMalloc(&d, (size_t)m * n * esz);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e0);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e1);
    if (e != cudaSuccess)
        rc = pgd_cuda_failf(err, errlen, "GEMM probe %d x %d x %d: %s", m, n, k,
                            cudaGetErrorString(e));
    if (!rc)
        rc = pgd_cuda_fill_random(c, dt, a, (size_t)m * k, 7, -1, 1, err, errlen) ||
             pgd_cuda_fill_random(c, dt, bm, (size_t)n * k, 8, -1, 1, err, errlen);
    /* y[n, m] = x[n, k] @ w[m, k]^T: the layer's own GEMM path. */
    for (int i = -3; !rc && i < iters; i++) {
        cudaEventRecord(e0, c->stream);
        rc = pgd_cuda_linear_lt(c, dt, bm, a, NULL, n, k, m, dt, d, err, errlen);
        cudaEventRecord(e1, c->stream);
        e = cudaEventSynchronize(e1);
        float t = 0;
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&t, e0, e1);
        if (e != cudaSuccess && !rc)
            rc = pgd_cuda_failf(err, errlen, "GEMM probe %d x %d x %d: %s", m, n, k,
                                cudaGetErrorString(e));
        if (i >= 0)
            ms.push_back(t);
    }
    if (!rc) {
        std::sort(ms.begin(), ms.end());
        *tflops = 2.0 * m * n * (double)k / (ms[ms.size() / 2] * 1e-3) / 1e12;
    }
    cudaFree(a);
    cudaFree(bm);
    cudaFree(d);
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    return rc;
}
