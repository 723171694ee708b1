/* What the quantized linears share beyond the GEMV template (quant.cuh): the x staging
 * (act-order gather, realignment) and bias kernels, and cuBLASLt GEMMs keyed on what
 * linear.cu's cache does not know: leading dimensions (a slice of y's columns), pointer
 * alignment, and the FP8 kinds (e4m3 inputs with outer-vector scales, or a float32 output).
 * The plans live in the context (qplan), picked once per key by cuBLASLt's heuristic; the
 * FP8 kinds' algorithm is the fastest of the heuristic's first candidates, timed once per
 * shape and batch bucket (n's power of two) outside graph capture, and reused, where
 * cuBLASLt accepts it, for every n of the bucket. */
#include "kernels/cuda/quant.cuh"
#include <stdlib.h>
#include <string.h>

int pgd_cuda__qenv_int(const char *name, int def)
{
    const char *e = getenv(name);
    return e && *e ? atoi(e) : def;
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

/* ---- cuBLASLt plans ------------------------------------------------------------------------ */
struct pgd_cuda_qplan {
    int kind, fast_accum;
    enum pgd_dtype dt;
    int m, n, k, lda, ldb, ldd;
    int al_a, al_b, al_d;            /* pointer alignment the algorithm may assume (bytes) */
    int state;                       /* 0: usable; 2: cuBLASLt has no algorithm */
    int timed;                       /* FP8: algo is the fastest of those timed for the bucket */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
};

static void qplan_free(struct pgd_cuda_qplan *p)
{
    pgd_cuda_lt_descs_free(&p->op, &p->a, &p->b, &p->d);
}

extern "C" void pgd_cuda_qplan_cache_free(struct pgd_cuda_ctx *c)
{
    for (int i = 0; i < c->qplan_n; i++)
        qplan_free(&c->qplan[i]);
    free(c->qplan);
    c->qplan = NULL;
    c->qplan_n = c->qplan_cap = c->qplan_next = 0;
}

/* The largest power of two (up to 256) dividing the address. */
static int ptr_align(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    int a = 1;
    while (a < 256 && v % (uintptr_t)(a * 2) == 0)
        a *= 2;
    return a;
}

static const char *kind_name(int kind)
{
    return kind == PGD_QLT_16        ? "16-bit"
           : kind == PGD_QLT_FP8_VEC ? "fp8 (outer-vector scales)"
           : kind == PGD_QLT_FP8_16  ? "fp8 (16-bit out, unscaled)"
                                     : "fp8 (float32 out)";
}

#define QPLAN_CANDIDATES 8           /* FP8: heuristic results timed against each other */
#define QPLAN_TIMED_RUNS 3

static int bucket_of(int n)
{
    int b = 0;
    while (n > 1) {
        n >>= 1;
        b++;
    }
    return b;
}

/* Whether an FP8 plan already timed another n of p's bucket (same kind, shapes but n,
 * leading dimensions and alignments) and cuBLASLt accepts its algorithm for p: then p takes
 * it, timed. */
static bool qplan_reuse_bucket(struct pgd_cuda_ctx *c, struct pgd_cuda_qplan *p)
{
    for (int i = 0; i < c->qplan_n; i++) {
        const struct pgd_cuda_qplan *q = &c->qplan[i];
        if (q == p || !q->timed || q->state != 0 || q->kind != p->kind ||
            q->fast_accum != p->fast_accum || q->dt != p->dt || q->m != p->m || q->k != p->k ||
            q->lda != p->lda || q->ldb != p->ldb || q->ldd != p->ldd || q->al_a != p->al_a ||
            q->al_b != p->al_b || q->al_d != p->al_d || bucket_of(q->n) != bucket_of(p->n))
            continue;
        cublasLtMatmulHeuristicResult_t r;
        if (cublasLtMatmulAlgoCheck(c->lt, p->op, p->a, p->b, p->d, p->d, &q->algo, &r) ==
                CUBLAS_STATUS_SUCCESS &&
            r.workspaceSize <= c->workspace_bytes) {
            p->algo = q->algo;
            p->timed = 1;
            return true;
        }
    }
    return false;
}

/* Times the found candidates on g's own operands (QPLAN_TIMED_RUNS runs each after one
 * warm-up run; what they write to g->d the real call overwrites) and sets *best to the
 * fastest. Inside a graph capture nothing can run: *best stays the heuristic's first, and
 * the plan is not marked timed. A candidate cuBLASLt refuses is passed over. */
static int qplan_fastest(struct pgd_cuda_ctx *c, struct pgd_cuda_qplan *p,
                         const struct pgd_cuda_qlt *g, const cublasLtMatmulHeuristicResult_t *h,
                         int found, int *best, char *err, size_t errlen)
{
    *best = 0;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    PGD_CUDA_CHECK(err, errlen, cudaStreamIsCapturing(c->stream, &cs), "fp8 GEMM timing");
    if (cs != cudaStreamCaptureStatusNone)
        return 0;
    if (g->kind == PGD_QLT_FP8_VEC) {
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                        &g->a_scale, sizeof g->a_scale),
                         "fp8 GEMM timing: A scales");
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                        &g->b_scale, sizeof g->b_scale),
                         "fp8 GEMM timing: B scales");
    }
    cudaEvent_t e0 = NULL, e1 = NULL;
    PGD_CUDA_CHECK(err, errlen, cudaEventCreate(&e0), "fp8 GEMM timing");
    if (cudaEventCreate(&e1) != cudaSuccess) {
        cudaEventDestroy(e0);
        return pgd_cuda_failf(err, errlen, "fp8 GEMM timing: cudaEventCreate failed");
    }
    const float alpha = 1.0f, beta = 0.0f;
    float best_ms = -1.0f;
    int rc = 0;
    for (int i = 0; i < found && !rc; i++) {
        if (h[i].workspaceSize > c->workspace_bytes)
            continue;
        /* the warm-up run also tells whether cuBLASLt takes the candidate */
        cublasStatus_t st = cublasLtMatmul(c->lt, p->op, &alpha, g->a, p->a, g->b, p->b, &beta,
                                           g->d, p->d, g->d, p->d, &h[i].algo, c->workspace,
                                           c->workspace_bytes, c->stream);
        if (st != CUBLAS_STATUS_SUCCESS)
            continue;
        float ms = 0.0f;
        cudaError_t e = cudaEventRecord(e0, c->stream);
        for (int r = 0; r < QPLAN_TIMED_RUNS && e == cudaSuccess && st == CUBLAS_STATUS_SUCCESS;
             r++)
            st = cublasLtMatmul(c->lt, p->op, &alpha, g->a, p->a, g->b, p->b, &beta, g->d, p->d,
                                g->d, p->d, &h[i].algo, c->workspace, c->workspace_bytes,
                                c->stream);
        if (e == cudaSuccess)
            e = cudaEventRecord(e1, c->stream);
        if (e == cudaSuccess)
            e = cudaEventSynchronize(e1);
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&ms, e0, e1);
        if (e != cudaSuccess)
            rc = pgd_cuda_failf(err, errlen, "fp8 GEMM timing, candidate %d of %d: %s", i, found,
                                cudaGetErrorString(e));
        else if (st == CUBLAS_STATUS_SUCCESS && (best_ms < 0.0f || ms < best_ms)) {
            best_ms = ms;
            *best = i;
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    p->timed = !rc && best_ms >= 0.0f;
    return rc;
}

/* Builds p's descriptors and picks its algorithm (FP8: timed on g's operands); 2 when
 * cuBLASLt has none. */
static int qplan_build(struct pgd_cuda_ctx *c, struct pgd_cuda_qplan *p,
                       const struct pgd_cuda_qlt *g, char *err, size_t errlen)
{
    const bool fp8 = p->kind != PGD_QLT_16;
    const cudaDataType_t t16 = p->dt == PGD_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const cudaDataType_t tin = fp8 ? CUDA_R_8F_E4M3 : t16;
    const cudaDataType_t tout = p->kind == PGD_QLT_FP8_F32 ? CUDA_R_32F : t16;
    const char *what = kind_name(p->kind);
    PGD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
              "%s GEMM %d x %d x %d", what, p->m, p->n, p->k);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
              "%s GEMM transa", what);
    PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
              "%s GEMM transb", what);
    if (fp8) {
        /* Hopper's FP8 MMA keeps fewer accumulator bits unless cuBLASLt promotes them
         * periodically (fast accumulation off): the caller's fast_accum trades that accuracy
         * for speed. */
        int8_t fast = p->fast_accum ? 1 : 0;
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast,
                                                 sizeof fast), "%s GEMM fast accumulation", what);
    }
    if (p->kind == PGD_QLT_FP8_VEC) {
        int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode,
                                                 sizeof mode), "%s GEMM A scale mode", what);
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode,
                                                 sizeof mode), "%s GEMM B scale mode", what);
    }
    PGD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, tin, p->k, p->m, p->lda), "%s GEMM layout of A",
              what);
    PGD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, tin, p->k, p->n, p->ldb), "%s GEMM layout of B",
              what);
    PGD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, tout, p->m, p->n, p->ldd), "%s GEMM layout of D",
              what);
    cublasLtMatmulPreference_t pref;
    PGD_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref), "%s GEMM preference", what);
    size_t ws = c->workspace_bytes;
    uint32_t al_a = (uint32_t)p->al_a, al_b = (uint32_t)p->al_b, al_d = (uint32_t)p->al_d;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                 &al_a, sizeof al_a);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                 &al_b, sizeof al_b);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                 &al_d, sizeof al_d);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                 &al_d, sizeof al_d);
    cublasLtMatmulHeuristicResult_t h[QPLAN_CANDIDATES];
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->a, p->b, p->d, p->d, pref,
                                           fp8 ? QPLAN_CANDIDATES : 1, h, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
        pgd_cuda_failf(err, errlen, "cuBLASLt has no %s algorithm for %s D [%d, %d] (ld %d) = "
                       "A^T [%d, %d] (ld %d) @ B [%d, %d] (ld %d), alignment %d/%d/%d (status %d)",
                       what, pgd_dtype_name(p->dt), p->m, p->n, p->ldd, p->m, p->k, p->lda, p->k,
                       p->n, p->ldb, p->al_a, p->al_b, p->al_d, (int)s);
        return 2;
    }
    p->algo = h[0].algo;
    if (fp8 && qplan_reuse_bucket(c, p))
        return 0;
    if (fp8 && found > 1) {
        int best = 0;
        if (qplan_fastest(c, p, g, h, found, &best, err, errlen))
            return 1;
        p->algo = h[best].algo;
    }
    return 0;
}

/* The plan of g's key, built on first use; 256 plans, replaced round robin once full. */
static int qplan_get(struct pgd_cuda_ctx *c, const struct pgd_cuda_qlt *g,
                     struct pgd_cuda_qplan **res, char *err, size_t errlen)
{
    struct pgd_cuda_qplan key = {};
    key.kind = g->kind;
    key.fast_accum = g->kind != PGD_QLT_16 && g->fast_accum;
    key.dt = g->dt;
    key.m = g->m; key.n = g->n; key.k = g->k;
    key.lda = g->lda; key.ldb = g->ldb; key.ldd = g->ldd;
    key.al_a = ptr_align(g->a); key.al_b = ptr_align(g->b); key.al_d = ptr_align(g->d);
    for (int i = 0; i < c->qplan_n; i++) {
        struct pgd_cuda_qplan *p = &c->qplan[i];
        if (p->kind == key.kind && p->fast_accum == key.fast_accum && p->dt == key.dt &&
            p->m == key.m && p->n == key.n &&
            p->k == key.k && p->lda == key.lda && p->ldb == key.ldb && p->ldd == key.ldd &&
            p->al_a == key.al_a && p->al_b == key.al_b && p->al_d == key.al_d) {
            *res = p;
            return 0;
        }
    }
    if (!c->qplan) {
        c->qplan_cap = 256;
        c->qplan = (struct pgd_cuda_qplan *)calloc((size_t)c->qplan_cap, sizeof *c->qplan);
        if (!c->qplan)
            return pgd_cuda_failf(err, errlen, "out of host memory for the quantized GEMM plans");
    }
    struct pgd_cuda_qplan *p;
    if (c->qplan_n < c->qplan_cap) {
        p = &c->qplan[c->qplan_n++];
    } else {
        p = &c->qplan[c->qplan_next];
        c->qplan_next = (c->qplan_next + 1) % c->qplan_cap;
        qplan_free(p);
    }
    *p = key;
    int rc = qplan_build(c, p, g, err, errlen);
    if (rc == 1) {
        qplan_free(p);
        p->m = -1;                   /* never matches: built again next time */
        return 1;
    }
    p->state = rc;                   /* 2 is remembered: no algorithm */
    *res = p;
    return 0;
}

int pgd_cuda__qlt_matmul(struct pgd_cuda_ctx *c, const struct pgd_cuda_qlt *g, char *err,
                         size_t errlen)
{
    struct pgd_cuda_qplan *p = NULL;
    if (qplan_get(c, g, &p, err, errlen))
        return 1;
    const char *what = kind_name(g->kind);
    if (p->state == 2) {
        pgd_cuda_failf(err, errlen, "cuBLASLt has no %s algorithm for D [%d, %d] = A^T [%d, %d] "
                       "@ B [%d, %d]", what, g->m, g->n, g->m, g->k, g->k, g->n);
        return 2;
    }
    if (g->kind == PGD_QLT_FP8_VEC) {
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                 &g->a_scale, sizeof g->a_scale),
                  "%s GEMM A scales", what);
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                 &g->b_scale, sizeof g->b_scale),
                  "%s GEMM B scales", what);
    }
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st = cublasLtMatmul(c->lt, p->op, &alpha, g->a, p->a, g->b, p->b, &beta, g->d,
                                       p->d, g->d, p->d, &p->algo, c->workspace,
                                       c->workspace_bytes, c->stream);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED && g->kind != PGD_QLT_16) {
        /* The heuristic offered an algorithm that the call then refused: remember it as none. */
        p->state = 2;
        pgd_cuda_failf(err, errlen, "cuBLASLt refused its %s algorithm for D [%d, %d] = A^T "
                       "[%d, %d] @ B [%d, %d]", what, g->m, g->n, g->m, g->k, g->k, g->n);
        return 2;
    }
    PGD_CUBLAS_CHECK(st, "%s GEMM %s D [%d, %d] = A^T [%d, %d] @ B [%d, %d]", what,
              pgd_dtype_name(g->dt), g->m, g->n, g->m, g->k, g->k, g->n);
    return 0;
}
