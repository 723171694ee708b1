/* Dense linear layers: y[n, out] = x[n, in] @ w[out, in]^T + b.
 *
 * Decode-sized batches (n <= 8) read the weight once through a GEMV kernel (one warp per
 * output feature, 16-byte loads): at these sizes the layer is a pass over the weights and
 * nothing else matters. Larger batches go through cuBLASLt: in column-major terms
 * y^T[out, n] = w^T x^T, "TN" with A = w (ld in), B = x (ld in), D = y (ld out), float32
 * compute. Each plan descriptor (gemm_tune.cuh: dtypes, shape, and for the quantized
 * linears' GEMMs through quant_lt.cu the FP8 scale mode, fast accumulation, leading
 * dimensions and pointer alignments) gets a plan, cached with its layouts in the context;
 * its algorithm is the one gemm_tune.cu measured fastest for the descriptor's n bucket (or,
 * with tuning off, the heuristic's first). One cache serves every cuBLASLt call of the
 * context. Where that measurement found our own Hopper kernel (gemm_wgmma.cu) faster for
 * a plain 16-bit linear, the plan runs it instead, bias fused. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_tune.cuh"
#include "kernels/cuda/gemv.cuh"
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

struct pgd_cuda_gemm_entry {
    struct pgd_cuda_gemm_plan p;
    cublasLtMatmulAlgo_t algo;
    int state;                       /* 0: usable; 2: cuBLASLt has no algorithm (remembered) */
    struct pgd_cuda_wgmma_cfg own;   /* bn > 0: gemm_wgmma.cu's kernel won the tuning */
};

#define GEMM_CACHE_CAP 512
#define GEMM_INDEX_SIZE 1024         /* a power of two: the last-seen entry of each hash */

static cudaDataType_t cuda_type(enum pgd_dtype dt)
{
    return dt == PGD_DTYPE_BF16      ? CUDA_R_16BF
           : dt == PGD_DTYPE_F16     ? CUDA_R_16F
           : dt == PGD_DTYPE_F8_E4M3 ? CUDA_R_8F_E4M3
                                     : CUDA_R_32F;
}

/* The hash of a key: where gemm_entry looks first. */
static unsigned key_hash(const struct pgd_cuda_gemm_key *k)
{
    const int v[13] = { (int)k->dt, (int)k->ydt, k->n, k->in, k->out, k->scale, k->fast_accum,
                        k->ldw, k->ldx, k->ldy, k->al_w, k->al_x, k->al_y };
    unsigned h = 2166136261u;
    for (int i = 0; i < 13; i++)
        h = (h ^ (unsigned)v[i]) * 16777619u;
    return (h ^ (h >> 15)) & (GEMM_INDEX_SIZE - 1);
}

static void entry_free(struct pgd_cuda_gemm_entry *e)
{
    pgd_cuda_lt_descs_free(&e->p.op, &e->p.a, &e->p.b, &e->p.d);
}

extern "C" void pgd_cuda_gemm_host_stats(const struct pgd_cuda_ctx *c,
                                         struct pgd_cuda_gemm_host_stats *out)
{
    *out = c->lt_host;
}

extern "C" void pgd_cuda_gemm_cache_free(struct pgd_cuda_ctx *c)
{
    for (int i = 0; i < c->gemm_n; i++)
        entry_free(&c->gemm[i]);
    free(c->gemm);
    free(c->gemm_index);
    c->gemm = NULL;
    c->gemm_index = NULL;
    c->gemm_n = c->gemm_cap = c->gemm_next = 0;
    pgd_cuda_gemm_tune_free(c);
}

/* The descriptors of a plan for key k (p->key set). */
static int plan_descs(struct pgd_cuda_gemm_plan *p, char *err, size_t errlen)
{
    const struct pgd_cuda_gemm_key *k = &p->key;
    const char *shape = k->dt == PGD_DTYPE_F8_E4M3 ? "fp8 linear" : "linear";
    const int ldw = k->ldw ? k->ldw : k->in, ldx = k->ldx ? k->ldx : k->in;
    const int ldy = k->ldy ? k->ldy : k->out;
    PGD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
             "%s [%d x %d] -> %d", shape, k->n, k->in, k->out);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
             "%s transa", shape);
    PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
             "%s transb", shape);
    if (k->dt == PGD_DTYPE_F8_E4M3) {
        /* Hopper's FP8 MMA keeps fewer accumulator bits unless cuBLASLt promotes them
         * periodically (fast accumulation off): the caller's fast_accum trades that accuracy
         * for speed. */
        int8_t fast = k->fast_accum ? 1 : 0;
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM,
                                                        &fast, sizeof fast),
                         "%s fast accumulation", shape);
    }
    if (k->scale == PGD_CUDA_GEMM_SCALE_OUTER_VEC) {
        int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                                                        &mode, sizeof mode), "%s A scale mode", shape);
        PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                                                        &mode, sizeof mode), "%s B scale mode", shape);
    }
    PGD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, cuda_type(k->dt), k->in, k->out, ldw),
             "%s layout of w [%d, %d] (ld %d)", shape, k->out, k->in, ldw);
    PGD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, cuda_type(k->dt), k->in, k->n, ldx),
             "%s layout of x [%d, %d] (ld %d)", shape, k->n, k->in, ldx);
    PGD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, cuda_type(k->ydt), k->out, k->n, ldy),
             "%s layout of y [%d, %d] (ld %d)", shape, k->n, k->out, ldy);
    return 0;
}

int pgd_cuda_gemm_set_scales(const struct pgd_cuda_gemm_plan *p,
                             const struct pgd_cuda_gemm_call *call, char *err, size_t errlen)
{
    if (p->key.scale != PGD_CUDA_GEMM_SCALE_OUTER_VEC || !call)
        return 0;
    PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                    &call->w_scale, sizeof call->w_scale),
                     "fp8 linear: w scales");
    PGD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                    &call->x_scale, sizeof call->x_scale),
                     "fp8 linear: x scales");
    return 0;
}

/* Finds or builds the cache entry of a plan descriptor; a new one chooses its algorithm on
 * call's buffers (gemm_tune.cu). The cache holds GEMM_CACHE_CAP plans, replaced round robin
 * once full (mixed steps make many n; a replaced plan comes back with its algorithm, tuned
 * or its band's, without timing again). A hash index of the last entry seen for each hash makes
 * the common lookup (the same layers every step) one comparison rather than a scan. 2:
 * cuBLASLt has no algorithm for the plan (err set; the entry remembers it). */
static int gemm_entry(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k,
                      const struct pgd_cuda_gemm_call *call, struct pgd_cuda_gemm_entry **res,
                      char *err, size_t errlen)
{
    const unsigned h = key_hash(k);
    int found = -1;
    if (c->gemm_index) {
        int i = c->gemm_index[h];
        if (i >= 0 && i < c->gemm_n && pgd_cuda_gemm_key_eq(&c->gemm[i].p.key, k, true))
            found = i;
        for (i = 0; found < 0 && i < c->gemm_n; i++)
            if (pgd_cuda_gemm_key_eq(&c->gemm[i].p.key, k, true))
                found = c->gemm_index[h] = i;
    }
    if (found >= 0) {
        *res = &c->gemm[found];
        if ((*res)->state == 2)
            return pgd_cuda_failf(err, errlen, "cuBLASLt has no algorithm for %s x [%d, %d] @ w "
                                  "[%d, %d]^T -> %s (remembered)", pgd_dtype_name(k->dt), k->n,
                                  k->in, k->out, k->in, pgd_dtype_name(k->ydt)) + 1;
        return 0;
    }
    if (!c->gemm) {
        c->gemm_cap = GEMM_CACHE_CAP;
        c->gemm = (struct pgd_cuda_gemm_entry *)calloc((size_t)c->gemm_cap, sizeof *c->gemm);
        c->gemm_index = (int *)malloc(GEMM_INDEX_SIZE * sizeof *c->gemm_index);
        if (!c->gemm || !c->gemm_index) {
            free(c->gemm);
            free(c->gemm_index);
            c->gemm = NULL;
            c->gemm_index = NULL;
            return pgd_cuda_failf(err, errlen, "out of host memory for the GEMM cache");
        }
        for (int i = 0; i < GEMM_INDEX_SIZE; i++)
            c->gemm_index[i] = -1;
    }
    struct pgd_cuda_gemm_entry *e;
    if (c->gemm_n < c->gemm_cap) {
        e = &c->gemm[c->gemm_n++];
    } else {
        e = &c->gemm[c->gemm_next];
        c->gemm_next = (c->gemm_next + 1) % c->gemm_cap;
        entry_free(e);
    }
    *e = (struct pgd_cuda_gemm_entry){};
    e->p.key = *k;
    const double t0 = pgd_cuda_host_ms();
    int rc = plan_descs(&e->p, err, errlen);
    if (!rc)
        rc = pgd_cuda_gemm_choose(c, &e->p, call, &e->algo, err, errlen);
    c->lt_host.plans++;
    c->lt_host.plan_ms += pgd_cuda_host_ms() - t0;
    if (rc == 1) {
        e->p.key.n = -1;          /* unusable for the next lookup; freed with the cache */
        return 1;
    }
    e->state = rc;                /* 2 is remembered: no algorithm */
    if (!rc)
        e->own = pgd_cuda_gemm_own(c, k);
    c->gemm_index[h] = (int)(e - c->gemm);
    *res = e;
    return rc;
}

/* The cuBLASLt call of a cached plan e. */
static int gemm_matmul(struct pgd_cuda_ctx *c, struct pgd_cuda_gemm_entry *e,
                       const struct pgd_cuda_gemm_key *k, const struct pgd_cuda_gemm_call *call,
                       char *err, size_t errlen)
{
    if (pgd_cuda_gemm_set_scales(&e->p, call, err, errlen))
        return 1;
    const float alpha = 1.0f, beta = 0.0f;
    const double t0 = pgd_cuda_host_ms();
    cublasStatus_t st = cublasLtMatmul(c->lt, e->p.op, &alpha, call->w, e->p.a, call->x, e->p.b,
                                       &beta, call->y, e->p.d, call->y, e->p.d, &e->algo,
                                       c->workspace, c->workspace_bytes, c->stream);
    const double dt = pgd_cuda_host_ms() - t0;
    c->lt_host.matmuls++;
    c->lt_host.matmul_ms += dt;
    if (dt > 1.0) {
        c->lt_host.matmuls_slow++;
        c->lt_host.matmul_slow_ms += dt;
    }
    if (dt > c->lt_host.matmul_max_ms) {
        c->lt_host.matmul_max_ms = dt;
        c->lt_host.max_n = k->n;
        c->lt_host.max_in = k->in;
        c->lt_host.max_out = k->out;
    }
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
        /* The heuristic offered an algorithm that the call then refused: remember it as none. */
        e->state = 2;
        return pgd_cuda_failf(err, errlen, "cuBLASLt refused its algorithm for %s x [%d, %d] @ "
                              "w [%d, %d]^T -> %s", pgd_dtype_name(k->dt), k->n, k->in, k->out,
                              k->in, pgd_dtype_name(k->ydt)) + 1;
    }
    PGD_CUBLAS_CHECK(st, "%s x [%d, %d] @ w [%d, %d]^T -> %s", pgd_dtype_name(k->dt), k->n,
                     k->in, k->out, k->in, pgd_dtype_name(k->ydt));
    return 0;
}

int pgd_cuda_gemm_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k,
                      const struct pgd_cuda_gemm_call *call, char *err, size_t errlen)
{
    struct pgd_cuda_gemm_entry *e;
    int rc = gemm_entry(c, k, call, &e, err, errlen);
    return rc ? rc : gemm_matmul(c, e, k, call, err, errlen);
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
    const struct pgd_cuda_gemm_key key = { dt, ydt, n, in, out };
    const struct pgd_cuda_gemm_call call = { x, w, y, NULL, NULL };
    struct pgd_cuda_gemm_entry *e;
    if (gemm_entry(c, &key, &call, &e, err, errlen))
        return 1;
    if (e->own.bn && pgd_cuda__wgmma_fits(dt, ydt, x, w, b, y, in))   /* bias fused */
        return pgd_cuda__wgmma_run(c, dt, x, w, b, n, in, out, ydt, y, e->own, err, errlen);
    if (gemm_matmul(c, e, &key, &call, err, errlen))
        return 1;
    if (b)
        PGD_CUDA_DISPATCH(dt, T, return add_bias<T>(c, ydt, y, b, n, out, err, errlen));
    return 0;
}

/* ---- GEMV for small batches ------------------------------------------------------------------ */
#define GEMV_MAX_N_DEFAULT 4   /* measured: see docs/PERFORMANCE.md */
#define GEMV_VARIANT_DEFAULT PGD_CUDA_GEMV_WARP   /* measured: split is slower */

/* One warp per output feature o: acc[r] = sum_k x[r, k] w[o, k] over the N rows. vec: rows
 * are 16-byte aligned and in is a multiple of the vector width. Each lane issues UNR
 * independent 16-byte weight loads before it uses any, so that enough bytes are in flight
 * to cover the memory latency; x (a few rows, shared by all warps) comes from L1. */
template <typename T, typename TY, int N>
__device__ __forceinline__ void gemv_row(const T *__restrict__ x, const T *__restrict__ w,
                                         const T *__restrict__ b, int in, int out,
                                         TY *__restrict__ y, int vec, int o, int lane)
{
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

template <typename T, typename TY, int N>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ b, int in,
            int out, TY *__restrict__ y, int vec)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int o = blockIdx.x * GEMV_WARPS + warp;
    pdl_trigger();
    if (o < out)
        gemv_prefetch_row(w, in, o, lane);
    pdl_wait();
    if (o < out)
        gemv_row<T, TY, N>(x, w, b, in, out, y, vec, o, lane);
}

/* Up to 3 layers on the same x in one launch (q, k, v): blocks [first[s], first[s + 1]) serve
 * segment s, GEMV_WARPS features a block as in gemv_kernel. Passed by value. */
struct gemv_segs {
    const void *w[3], *b[3];
    void *y[3];
    int out[3], first[4];
};

template <typename T, typename TY, int N>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_multi_kernel(const T *__restrict__ x, const __grid_constant__ gemv_segs segs, int in, int vec)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int s = (int)blockIdx.x >= segs.first[2] ? 2 : (int)blockIdx.x >= segs.first[1] ? 1 : 0;
    int o = ((int)blockIdx.x - segs.first[s]) * GEMV_WARPS + warp;
    pdl_trigger();
    if (o < segs.out[s])
        gemv_prefetch_row((const T *)segs.w[s], in, o, lane);
    pdl_wait();
    if (o < segs.out[s])
        gemv_row<T, TY, N>(x, (const T *)segs.w[s], (const T *)segs.b[s], in, segs.out[s],
                           (TY *)segs.y[s], vec, o, lane);
}

/* Split-K GEMV (the default for 1..GEMV_SPLIT_MAX_N rows): a block of 8 warps serves 8/ks
 * output features, ks warps each; warp p of a feature reads the 512-byte chunks p, p + ks,
 * p + 2 ks, ... of its weight row (each chunk one coalesced 16-byte load per lane), and the
 * ks partial sums meet in shared memory. Each lane issues SPLIT_UNR loads before using any
 * (8 x 16 bytes: a 4096-wide row is in flight in 2 rounds at ks = 1, in one at ks >= 2), and
 * ks is picked so that out * ks warps fill the chip even for a [1024 x 4096] k/v projection
 * (which one warp per feature leaves at 1024 warps, ~8 an SM). Needs 16-byte aligned rows
 * (the caller falls back to gemv_kernel otherwise). */
#define SPLIT_UNR 8
#define GEMV_SPLIT_MAX_N 4
template <typename T, typename TY, int N>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_split_kernel(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ b,
                  int in, int out, TY *__restrict__ y, int ks_log2)
{
    constexpr int V = 16 / sizeof(T);
    __shared__ float part_sum[GEMV_WARPS][N];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int ks = 1 << ks_log2, part = warp & (ks - 1);
    const int o = blockIdx.x * (GEMV_WARPS >> ks_log2) + (warp >> ks_log2);
    float acc[N];
#pragma unroll
    for (int r = 0; r < N; r++)
        acc[r] = 0.0f;
    if (o < out) {
        const uint4 *wr = reinterpret_cast<const uint4 *>(w + (size_t)o * in);
        const uint4 *xv = reinterpret_cast<const uint4 *>(x);
        const int nv = in / V, stride = 32 * ks;   /* in 16-byte vectors */
        for (int v = part * 32 + lane; v < nv; v += SPLIT_UNR * stride) {
            uint4 wv[SPLIT_UNR];
#pragma unroll
            for (int u = 0; u < SPLIT_UNR; u++)
                wv[u] = v + u * stride < nv ? ld_stream(wr + v + u * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int u = 0; u < SPLIT_UNR; u++) {
                const int vi = v + u * stride;
                if (vi < nv) {
                    float wf[V];
                    unpack16<T>(wv[u], wf);
#pragma unroll
                    for (int r = 0; r < N; r++) {
                        float xf[V];
                        unpack16<T>(__ldg(xv + (size_t)r * nv + vi), xf);
#pragma unroll
                        for (int i = 0; i < V; i++)
                            acc[r] = fmaf(wf[i], xf[i], acc[r]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < N; r++) {
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
            acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    }
    if (ks > 1) {
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < N; r++)
                part_sum[warp][r] = acc[r];
        }
        __syncthreads();
        if (lane == 0 && part == 0) {
            for (int p = 1; p < ks; p++) {
#pragma unroll
                for (int r = 0; r < N; r++)
                    acc[r] += part_sum[warp + p][r];
            }
        }
    }
    if (lane == 0 && part == 0 && o < out) {
        float bias = b ? to_f<T>(b[o]) : 0.0f;
#pragma unroll
        for (int r = 0; r < N; r++)
            y[(size_t)r * out + o] = from_f<TY>(acc[r] + bias);
    }
}

/* Warps per output feature for the split kernel: the fewest (1, 2, 4, 8) that put
 * out * ks >= 48 warps on every SM, and no more than the row has 512-byte chunks.
 * PGD_CUDA_GEMV_KSPLIT (1, 2, 4, 8) overrides, for measuring. */
static int split_ks(const struct pgd_cuda_ctx *c, int in, int out, int elem)
{
    static int forced = -1;
    if (forced < 0) {
        const char *e = getenv("PGD_CUDA_GEMV_KSPLIT");
        int v = e && *e ? atoi(e) : 0;
        forced = v == 1 || v == 2 || v == 4 || v == 8 ? v : 0;
    }
    if (forced)
        return forced;
    int chunks = (int)(((int64_t)in * elem + 511) / 512);
    int ks = 1;
    while (ks < 8 && (int64_t)out * ks < (int64_t)c->sm_count * 48 && ks * 2 <= chunks)
        ks *= 2;
    return ks;
}

template <typename T, typename TY>
static int gemv_launch(struct pgd_cuda_ctx *c, int variant, int ks, const void *x, const void *w,
                       const void *b, int n, int in, int out, void *y, char *err, size_t errlen)
{
    int vec = ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0) &&
              (in % (16 / (int)sizeof(T)) == 0);
    const T *xp = (const T *)x, *wp = (const T *)w, *bp = (const T *)b;
    TY *yp = (TY *)y;
    dim3 block(GEMV_WARPS * 32);
    if (variant == PGD_CUDA_GEMV_SPLIT && vec && n <= GEMV_SPLIT_MAX_N) {
        if (ks <= 0)
            ks = split_ks(c, in, out, (int)sizeof(T));
        int lg = ks >= 8 ? 3 : ks >= 4 ? 2 : ks >= 2 ? 1 : 0;
        int rows = GEMV_WARPS >> lg;
        dim3 grid((out + rows - 1) / rows);
        switch (n) {
        case 1: gemv_split_kernel<T, TY, 1><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, lg); break;
        case 2: gemv_split_kernel<T, TY, 2><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, lg); break;
        case 3: gemv_split_kernel<T, TY, 3><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, lg); break;
        case 4: gemv_split_kernel<T, TY, 4><<<grid, block, 0, c->stream>>>(xp, wp, bp, in, out, yp, lg); break;
        }
        PGD_CUDA_LAUNCHED(err, errlen, "gemv (split-K %d) x [%d, %d] @ w [%d, %d]^T", ks, n, in,
                          out, in);
        return 0;
    }
    dim3 grid((out + GEMV_WARPS - 1) / GEMV_WARPS);
    switch (n) {
    case 1: pgd_cuda_launch(c, gemv_kernel<T, TY, 1>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 2: pgd_cuda_launch(c, gemv_kernel<T, TY, 2>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 3: pgd_cuda_launch(c, gemv_kernel<T, TY, 3>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 4: pgd_cuda_launch(c, gemv_kernel<T, TY, 4>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 5: pgd_cuda_launch(c, gemv_kernel<T, TY, 5>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 6: pgd_cuda_launch(c, gemv_kernel<T, TY, 6>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 7: pgd_cuda_launch(c, gemv_kernel<T, TY, 7>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    case 8: pgd_cuda_launch(c, gemv_kernel<T, TY, 8>, grid, block, xp, wp, bp, in, out, yp, vec); break;
    default: return pgd_cuda_failf(err, errlen, "gemv: %d rows (1..8)", n);
    }
    PGD_CUDA_LAUNCHED(err, errlen, "gemv x [%d, %d] @ w [%d, %d]^T", n, in, out, in);
    return 0;
}

/* The GEMV variant the model uses: PGD_CUDA_GEMV=warp|split overrides the default. */
static int gemv_variant(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_GEMV");
        v = e && !strcmp(e, "warp") ? PGD_CUDA_GEMV_WARP
          : e && !strcmp(e, "split") ? PGD_CUDA_GEMV_SPLIT : GEMV_VARIANT_DEFAULT;
    }
    return v;
}

extern "C" int pgd_cuda_linear_gemv_variant(struct pgd_cuda_ctx *c, int variant, int ks,
                                            enum pgd_dtype dt, const void *x, const void *w,
                                            const void *b, int n, int in, int out,
                                            enum pgd_dtype ydt, void *y, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (ydt != dt && ydt != PGD_DTYPE_F32)
        return pgd_cuda_failf(err, errlen, "linear: output dtype %s for %s inputs",
                              pgd_dtype_name(ydt), pgd_dtype_name(dt));
    if (variant != PGD_CUDA_GEMV_WARP && variant != PGD_CUDA_GEMV_SPLIT)
        return pgd_cuda_failf(err, errlen, "gemv: variant %d", variant);
    if (ks != 0 && ks != 1 && ks != 2 && ks != 4 && ks != 8)
        return pgd_cuda_failf(err, errlen, "gemv: split %d (0 for auto, 1, 2, 4, 8)", ks);
    if (ydt == PGD_DTYPE_F32)
        PGD_CUDA_DISPATCH(dt, T, return gemv_launch<T, float>(c, variant, ks, x, w, b, n, in, out, y, err, errlen));
    PGD_CUDA_DISPATCH(dt, T, return gemv_launch<T, T>(c, variant, ks, x, w, b, n, in, out, y, err, errlen));
    return 0;
}

extern "C" int pgd_cuda_linear_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                    const void *w, const void *b, int n, int in, int out,
                                    enum pgd_dtype ydt, void *y, char *err, size_t errlen)
{
    return pgd_cuda_linear_gemv_variant(c, gemv_variant(), 0, dt, x, w, b, n, in, out, ydt, y,
                                        err, errlen);
}

/* Batches up to this many rows take the GEMV kernel (PGD_CUDA_GEMV_MAX_N, 0..8, overrides:
 * for measuring the two paths against each other). */
int pgd_cuda__gemv_max_n(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_GEMV_MAX_N");
        int n = e && *e ? atoi(e) : GEMV_MAX_N_DEFAULT;
        v = n < 0 ? 0 : n > 8 ? 8 : n;
    }
    return v;
}

/* Whether pgd_cuda_linear_multi takes one launch (PGD_CUDA_GEMV_MULTI=0: one per layer, for
 * measuring the two against each other). */
static int gemv_multi_on(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_GEMV_MULTI");
        v = !(e && !strcmp(e, "0"));
    }
    return v;
}

extern "C" int pgd_cuda_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                               const void *w, const void *b, int n, int in, int out,
                               enum pgd_dtype ydt, void *y, char *err, size_t errlen)
{
    if (n <= pgd_cuda__gemv_max_n())
        return pgd_cuda_linear_gemv(c, dt, x, w, b, n, in, out, ydt, y, err, errlen);
    return pgd_cuda_linear_lt(c, dt, x, w, b, n, in, out, ydt, y, err, errlen);
}

/* ---- several layers on one x -------------------------------------------------------------- */
template <typename T>
static int gemv_multi_launch(struct pgd_cuda_ctx *c, const void *x, int n, int in, int count,
                             const void *const *w, const void *const *b, const int *out,
                             void *const *y, char *err, size_t errlen)
{
    gemv_segs segs = {};
    int vec = ((uintptr_t)x % 16 == 0) && (in % (16 / (int)sizeof(T)) == 0);
    for (int s = 0; s < 3; s++) {
        int k = s < count ? s : count - 1;      /* unused segments: empty copies of the last */
        segs.w[s] = w[k];
        segs.b[s] = b ? b[k] : NULL;
        segs.y[s] = y[k];
        segs.out[s] = s < count ? out[k] : 0;
        segs.first[s + 1] = segs.first[s] + (segs.out[s] + GEMV_WARPS - 1) / GEMV_WARPS;
        vec = vec && (uintptr_t)w[k] % 16 == 0;
    }
    const T *xp = (const T *)x;
    dim3 grid(segs.first[3]), block(GEMV_WARPS * 32);
    switch (n) {
    case 1: pgd_cuda_launch(c, gemv_multi_kernel<T, T, 1>, grid, block, xp, segs, in, vec); break;
    case 2: pgd_cuda_launch(c, gemv_multi_kernel<T, T, 2>, grid, block, xp, segs, in, vec); break;
    case 3: pgd_cuda_launch(c, gemv_multi_kernel<T, T, 3>, grid, block, xp, segs, in, vec); break;
    case 4: pgd_cuda_launch(c, gemv_multi_kernel<T, T, 4>, grid, block, xp, segs, in, vec); break;
    default: return pgd_cuda_failf(err, errlen, "gemv multi: %d rows (1..4)", n);
    }
    PGD_CUDA_LAUNCHED(err, errlen, "gemv x [%d, %d] through %d layers (%d + %d + %d)", n, in,
                      count, segs.out[0], segs.out[1], segs.out[2]);
    return 0;
}

/* ---- several layers side by side as one GEMM ---------------------------------------------
 * Layers whose weights lie one after the other in memory (pgd_model_load_linears: q, k and
 * v), and so their biases or none has one, are one [sum out, in] layer: one GEMM into a
 * scratch [n, sum out]. At mid-batch sizes it has the tiles of all three on the SMs at once,
 * where k and v alone (1,024 features of the 8B shape: 8 tiles of 128) left most of them
 * idle; at prompt sizes it is one launch (one cuBLASLt call of host work) for three. The
 * columns are then copied into each layer's output, or (the runner's usual case) read in
 * place by the rope + K/V write after it (pgd_cuda_rope_kv_write_rows), which costs
 * nothing. PGD_CUDA_QKV_FUSE_MAX_N bounds n (the scratch is n x sum out elements of the
 * step's activation memory; 0: a GEMM a layer). Default 512: on the H200 (8B shape) the
 * decode step gained 7.6% at 16 rows, 5.9% at 64 and 3.7% at 256, and a 128-token prompt
 * 9%, while 1,024 rows lost 0.9% (cuBLASLt's plan for the wide GEMM) and 2,048 gained 0.7%
 * (docs/PERFORMANCE.md, twelfth session). */
#define QKV_FUSE_MAX_N_DEFAULT 512

/* Read at every call (a layer's, not a row's: cheap), so that tests and benches can switch. */
static int qkv_fuse_max_n(void)
{
    const char *e = getenv("PGD_CUDA_QKV_FUSE_MAX_N");
    return e && *e ? std::max(0, atoi(e)) : QKV_FUSE_MAX_N_DEFAULT;
}

/* Whether p[s + 1] starts where p[s]'s rows [rows[s], row_elems] end, for s < count - 1. */
static bool adjacent(const void *const *p, const int *rows, int64_t row_elems, size_t esz,
                     int count)
{
    for (int s = 0; s + 1 < count; s++)
        if ((const char *)p[s + 1] != (const char *)p[s] + (size_t)rows[s] * row_elems * esz)
            return false;
    return true;
}

extern "C" size_t pgd_cuda_linear_multi_scratch(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int n,
                                                int in, int count, const void *const *w,
                                                const void *const *b, const int *out)
{
    (void)c;
    if (count < 2 || count > 3 || n <= pgd_cuda__gemv_max_n() || n > qkv_fuse_max_n())
        return 0;
    const size_t esz = pgd_dtype_size(dt);
    int biases = 0;
    for (int s = 0; b && s < count; s++)
        biases += b[s] != NULL;
    if ((biases && biases < count) || !adjacent(w, out, in, esz, count) ||
        (biases && !adjacent(b, out, 1, esz, count)))
        return 0;
    int total = 0;
    for (int s = 0; s < count; s++)
        total += out[s];
    return (size_t)n * (size_t)total * esz;
}

/* Each row of src [n, total] cut into the layers' outputs: y[s][r, j] = src[r, first[s] + j]
 * for j < out[s]. VEC elements a thread: 16 bytes (16 / sizeof(T)) when every width and
 * pointer allows, else 1. */
struct split_cols {
    void *y[3];
    int first[4];                    /* first[s]: layer s's first column; first[count] = total */
};

template <typename T, int VEC>
__global__ void split_cols_kernel(const T *__restrict__ src, int64_t n, const split_cols sc)
{
    pdl_trigger();
    pdl_wait();
    const int per_row = sc.first[3] / VEC;
    const int64_t items = n * per_row;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < items;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / per_row;
        const int col = (int)(i - r * per_row) * VEC;
        const int s = col >= sc.first[2] ? 2 : col >= sc.first[1] ? 1 : 0;
        const int w = sc.first[s + 1] - sc.first[s];
        T *dst = (T *)sc.y[s] + r * w + (col - sc.first[s]);
        const T *from = src + r * sc.first[3] + col;
        if (VEC > 1)
            *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(from);
        else
            *dst = *from;
    }
}

template <typename T>
static int split_cols_launch(struct pgd_cuda_ctx *c, const void *src, int n, int count,
                             const int *out, void *const *y, char *err, size_t errlen)
{
    if (count < 1 || count > 3)
        return pgd_cuda_failf(err, errlen, "split of columns: %d layers (1..3)", count);
    if (n == 0)
        return 0;
    constexpr int V = 16 / (int)sizeof(T);
    split_cols sc = {};
    bool vec = (uintptr_t)src % 16 == 0;
    for (int s = 0; s < 3; s++) {
        const int k = s < count ? s : count - 1;    /* unused layers: empty, after the last */
        sc.y[s] = y[k];
        sc.first[s + 1] = sc.first[s] + (s < count ? out[s] : 0);
        vec = vec && (s >= count || (out[s] % V == 0 && (uintptr_t)y[s] % 16 == 0));
    }
    const int threads = 256;
    const int64_t items = (int64_t)n * sc.first[3] / (vec ? V : 1);
    dim3 grid(pgd_cuda_blocks(items, threads)), block(threads);
    if (vec)
        pgd_cuda_launch(c, split_cols_kernel<T, V>, grid, block, (const T *)src, (int64_t)n, sc);
    else
        pgd_cuda_launch(c, split_cols_kernel<T, 1>, grid, block, (const T *)src, (int64_t)n, sc);
    PGD_CUDA_LAUNCHED(err, errlen, "split of [%d, %d] into %d layers' outputs", n, sc.first[3],
                      count);
    return 0;
}

extern "C" int pgd_cuda_split_cols(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *src,
                                   int n, int count, const int *out, void *const *y, char *err,
                                   size_t errlen)
{
    PGD_CUDA_DISPATCH(dt, T, return split_cols_launch<T>(c, src, n, count, out, y, err, errlen));
}

extern "C" int pgd_cuda_linear_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                     int n, int in, int count, const void *const *w,
                                     const void *const *b, const int *out, void *const *y,
                                     void *scratch, char *err, size_t errlen)
{
    if (count < 1 || count > 3)
        return pgd_cuda_failf(err, errlen, "linear multi: %d layers (1..3)", count);
    if (n == 0)
        return 0;
    if (n <= pgd_cuda__gemv_max_n() && n <= 4 && gemv_multi_on())
        PGD_CUDA_DISPATCH(dt, T, return gemv_multi_launch<T>(c, x, n, in, count, w, b, out, y,
                                                             err, errlen));
    if (scratch && pgd_cuda_linear_multi_scratch(c, dt, n, in, count, w, b, out)) {
        int total = 0;
        for (int s = 0; s < count; s++)
            total += out[s];
        if (pgd_cuda_linear(c, dt, x, w[0], b ? b[0] : NULL, n, in, total, dt, scratch, err,
                            errlen))
            return 1;
        return y ? pgd_cuda_split_cols(c, dt, scratch, n, count, out, y, err, errlen) : 0;
    }
    for (int s = 0; s < count; s++)
        if (pgd_cuda_linear(c, dt, x, w[s], b ? b[s] : NULL, n, in, out[s], dt, y[s], err, errlen))
            return 1;
    return 0;
}

/* ---- the GEMM rate probe ---------------------------------------------------------------------- */
/* ---- timing for the probes ------------------------------------------------------------------ */
/* The median of `reps` timed calls of run() on the context's stream (events around each),
 * after `warm` untimed ones, in milliseconds. run() returns nonzero with err set on failure;
 * `what` names the probe in an event error. */
template <typename F>
static int median_ms(struct pgd_cuda_ctx *c, int warm, int reps, F run, float *ms_out,
                     const char *what, char *err, size_t errlen)
{
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaError_t e = cudaEventCreate(&e0);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e1);
    int rc = e != cudaSuccess ? pgd_cuda_failf(err, errlen, "%s: %s", what, cudaGetErrorString(e))
                              : 0;
    std::vector<float> ms;
    for (int i = -warm; !rc && i < reps; i++) {
        cudaEventRecord(e0, c->stream);
        rc = run();
        cudaEventRecord(e1, c->stream);
        e = cudaEventSynchronize(e1);
        float t = 0;
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&t, e0, e1);
        if (e != cudaSuccess && !rc)
            rc = pgd_cuda_failf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
        if (i >= 0)
            ms.push_back(t);
    }
    if (!rc) {
        std::sort(ms.begin(), ms.end());
        *ms_out = ms[ms.size() / 2];
    }
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    return rc;
}

extern "C" int pgd_cuda_bench_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int m, int n, int k,
                                   int iters, double *tflops, char *err, size_t errlen)
{
    size_t esz = pgd_dtype_size(dt);
    void *a = NULL, *bm = NULL, *d = NULL;
    int rc = 0;
    char what[96];
    snprintf(what, sizeof what, "GEMM probe %d x %d x %d", m, n, k);
    cudaError_t e = cudaMalloc(&a, (size_t)m * k * esz);
    if (e == cudaSuccess)
        e = cudaMalloc(&bm, (size_t)n * k * esz);
    if (e == cudaSuccess)
        e = cudaMalloc(&d, (size_t)m * n * esz);
    if (e != cudaSuccess)
        rc = pgd_cuda_failf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    if (!rc)
        rc = pgd_cuda_fill_random(c, dt, a, (size_t)m * k, 7, -1, 1, err, errlen) ||
             pgd_cuda_fill_random(c, dt, bm, (size_t)n * k, 8, -1, 1, err, errlen);
    /* y[n, m] = x[n, k] @ w[m, k]^T: the layer's own GEMM path. */
    float ms = 0;
    if (!rc)
        rc = median_ms(c, 3, iters, [&] {
            return pgd_cuda_linear_lt(c, dt, bm, a, NULL, n, k, m, dt, d, err, errlen);
        }, &ms, what, err, errlen);
    if (!rc)
        *tflops = 2.0 * m * n * (double)k / (ms * 1e-3) / 1e12;
    cudaFree(a);
    cudaFree(bm);
    cudaFree(d);
    return rc;
}

/* ---- the GEMV probe ------------------------------------------------------------------------- */
extern "C" int pgd_cuda_bench_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int n, int in,
                                   int out, int nvar, const int *variant, const int *ks,
                                   double *us, char *err, size_t errlen)
{
    size_t esz = pgd_dtype_size(dt), wbytes = (size_t)out * in * esz;
    /* Enough weight copies that one round reads >= 256 MB: L2 (50 MB) holds none of them. */
    int copies = (int)std::min<size_t>(64, std::max<size_t>(1, ((size_t)256 << 20) / wbytes + 1));
    int rounds = std::max(1, 48 / copies);
    std::vector<void *> ws((size_t)copies, nullptr);
    void *x = NULL, *y = NULL;
    int rc = 0;
    char what[96];
    snprintf(what, sizeof what, "GEMV probe [%d x %d] -> %d (%d copies)", n, in, out, copies);
    cudaError_t e = cudaMalloc(&x, (size_t)n * in * esz);
    if (e == cudaSuccess)
        e = cudaMalloc(&y, (size_t)n * out * esz);
    for (int i = 0; i < copies && e == cudaSuccess; i++)
        e = cudaMalloc(&ws[(size_t)i], wbytes);
    if (e != cudaSuccess)
        rc = pgd_cuda_failf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    rc = rc || pgd_cuda_fill_random(c, dt, x, (size_t)n * in, 11, -1, 1, err, errlen);
    for (int i = 0; !rc && i < copies; i++)
        rc = pgd_cuda_fill_random(c, dt, ws[(size_t)i], (size_t)out * in, 12 + i, -1, 1, err, errlen);
    for (int v = 0; !rc && v < nvar; v++) {
        /* One timed run: every copy, `rounds` times. */
        auto run = [&] {
            int r = 0;
            for (int k = 0; !r && k < rounds * copies; k++) {
                const char *wk = (const char *)ws[(size_t)(k % copies)];
                if (variant[v] == PGD_CUDA_GEMV_BENCH_QKV) {
                    /* The rows as q, k, v (out - 2 out/6, out/6, out/6), one launch. */
                    int o3[3] = { out - 2 * (out / 6), out / 6, out / 6 };
                    const void *w3[3] = { wk, wk + (size_t)o3[0] * in * esz,
                                          wk + (size_t)(o3[0] + o3[1]) * in * esz };
                    void *y3[3] = { y, (char *)y + (size_t)n * o3[0] * esz,
                                    (char *)y + (size_t)n * (o3[0] + o3[1]) * esz };
                    r = pgd_cuda_linear_multi(c, dt, x, n, in, 3, w3, NULL, o3, y3, NULL, err,
                                              errlen);
                } else if (variant[v] == PGD_CUDA_GEMV_BENCH_GLU) {
                    /* The rows as a fused gate_up [2 x out/2, in] through glu.cu (SiLU). */
                    r = pgd_cuda_linear_act_mul_gemv(c, dt, PGD_ACT_SILU, x, wk, NULL, n, in,
                                                     out / 2, y, err, errlen);
                } else {
                    r = pgd_cuda_linear_gemv_variant(c, variant[v], ks[v], dt, x, wk, NULL, n,
                                                     in, out, dt, y, err, errlen);
                }
            }
            return r;
        };
        float ms = 0;
        rc = median_ms(c, 1, 7, run, &ms, what, err, errlen);
        if (!rc)
            us[v] = ms / (float)(rounds * copies) * 1e3;
    }
    cudaFree(x);
    cudaFree(y);
    for (void *p : ws)
        cudaFree(p);
    return rc;
}
