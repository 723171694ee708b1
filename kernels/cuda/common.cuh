/* Shared by the CUDA op families: the context's layout, error reporting and 16-bit float
 * loads and stores. Internal to kernels/cuda. */
#ifndef PGD_KERNELS_CUDA_COMMON_CUH
#define PGD_KERNELS_CUDA_COMMON_CUH

#include "kernels/cuda/kernels.h"
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublasLt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utility>

struct pgd_cuda_gemm_entry;          /* linear.cu's algorithm cache */
struct pgd_cuda_gemm_tuned;          /* gemm_tune.cu's tuned algorithms */
struct pgd_cuda_wq_fold_tuned;       /* quant_wq_fold_tune.cu's timed plans */

/* The quantized linears' device scratch (staged x, quantized x and its scales, dequantized
 * weight tiles, float32 partial outputs), made with the context so that no linear call
 * allocates (graph capture); every quantized linear cuts its work to fit it. */
#define PGD_CUDA_QSCRATCH_BYTES ((size_t)64 << 20)
#define PGD_CUDA_FP8_TICKETS 8192

struct pgd_cuda_ctx {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;                 /* cuBLASLt workspace, device */
    size_t workspace_bytes;
    struct pgd_cuda_gemm_entry *gemm; /* [gemm_cap], owned by linear.cu: every cuBLASLt plan */
    int gemm_n, gemm_cap, gemm_next;
    int *gemm_index;                 /* [linear.cu's GEMM_INDEX_SIZE]: an entry per key hash */
    /* gemm_tune.cu: the tuned algorithm of each shape and n bucket, and whether to tune
     * (0: read PAGODA_GEMM_TUNE on first use, 1 on, 2 off) */
    struct pgd_cuda_gemm_tuned *gemm_tuned; /* [gemm_tuned_cap] */
    int gemm_tuned_n, gemm_tuned_cap;
    int gemm_tune;
    /* quant_wq_fold_tune.cu: the folded W4 GEMM's plan of each grid and bucket of rows,
     * timed (under gemm_tune's switch) */
    struct pgd_cuda_wq_fold_tuned *wq_fold_tuned; /* [wq_fold_tuned_cap] */
    int wq_fold_tuned_n, wq_fold_tuned_cap;
    /* whether the tuning times all of our wgmma kernel's configurations (0: read
     * PGD_CUDA_GEMM_WGMMA_CANDIDATES on first use, 1 the few, 2 all) */
    int gemm_wgmma_all;
    /* attention.cu's work plan for the current step. Its pinned buffers take turns by the
     * step's parity: under async steps the copy of the step before may still read one. */
    int4 *plan_host[2];              /* pinned [plan_cap] each */
    int4 *plan_dev;                  /* device [plan_cap] */
    int plan_cap, plan_items, plan_tq, plan_hq;
    int plan_dec, plan_dec_on;       /* decode rows after the plan_items general items */
    uint64_t plan_step;
    int plan_valid;
    /* Programmatic dependent launch (sm_90+, PGD_CUDA_PDL=0 turns it off): the kernels
     * started through pgd_cuda_launch may be scheduled while the kernel before them
     * finishes; each waits (pdl_wait) before it touches what came before. */
    int pdl;
    /* quant_wq.cu / quant_fp8.cu: the scratch above (their cuBLASLt plans are linear.cu's) */
    void *qscratch;                  /* device [qscratch_bytes] */
    size_t qscratch_bytes;
    /* How far the FP8 GEMM may grow the scratch so that a large step's x fits one piece
     * (quant_lt.cu's pgd_cuda__qscratch_reserve; 0: not read yet from
     * PGD_CUDA_QSCRATCH_MAX_MB), and whether a graph was ever captured on this stream (its
     * nodes hold the scratch's address: it never moves after that). */
    size_t qscratch_max;
    int captured;
    /* quant_fp8.cu's counts (pgd_cuda_fp8_stats) */
    struct pgd_cuda_fp8_stats fp8_stats;
    /* quant_fp8.cu: whether cuBLASLt has FP8 GEMMs with outer-vector scales here (0: not
     * known yet, 1: yes, 2: no; asked once rather than for every new n) */
    int fp8_vec;
    /* pgd_cuda_fp8_share_x's state (quant.cuh): on, and the x (pointer, rows, width, dtype)
     * whose per-token quantization the scratch holds in layout fp8_share_tag */
    int fp8_share;
    const void *fp8_share_x;
    int fp8_share_n, fp8_share_in, fp8_share_dt, fp8_share_tag;
    /* pgd_cuda_fp8_x_ready's x (pointer, rows, width, dtype): the norm before the call left
     * its quantization in the scratch in the streaming GEMV's layout; NULL: none */
    const void *fp8_ready_x;
    int fp8_ready_n, fp8_ready_in, fp8_ready_dt;
    /* pgd_cuda_rmsnorm_gather's word (quant_lt.cu's pgd_cuda__wq_xg_note and _take,
     * pgd_cuda_wq_x_forget): wq_xg_dst holds x [wq_xg_n, wq_xg_in] in dtype wq_xg_dt
     * gathered through the act-order permutation wq_xg_perm (device), as the act-order
     * gather would write it there; the next gather of exactly that into exactly there is
     * skipped, once. wq_xg_x NULL: none. wq_xg_skipped counts the gathers skipped
     * (pgd_cuda_wq_norm_gathers). */
    const void *wq_xg_x;
    const int32_t *wq_xg_perm;
    const void *wq_xg_dst;
    int wq_xg_n, wq_xg_in, wq_xg_dt;
    long wq_xg_skipped;
    /* quant_wq_sgemv.cu: whether the W4 decode GEMV stages its scale tables a row pair a
     * thread (one conflict-free 16-byte store each) rather than a row a thread (two 4-byte
     * stores, 32-way bank conflicts where a warp's lanes hold one row's groups):
     * on unless PGD_CUDA_WQ_META_PAIRS=0 at create, pgd_cuda_wq_set_meta_pairs. */
    int wq_meta_pairs;
    /* gemm_tune.cu: whether an n other than a bucket's tuned one takes its band's heuristic
     * pick (1, the default) or the bucket's tuned algorithm (PGD_CUDA_GEMM_BANDS=0 at
     * create: the earlier way, for measuring one against the other). */
    int gemm_bands;
    /* quant_fp8_dec.cu's split-K tickets: device [PGD_CUDA_FP8_TICKETS] ints, zero between
     * launches (each launch's last block of a tile sets its ticket back) */
    int *fp8_tickets;
    /* quant_wq_fold.cu's stream-K fold: the blocks' part sums and flags (wg_args' sk_part,
     * sk_flags), made at its first launch outside a capture: device [wq_sk_blocks] slots of
     * 128 x 256 floats and [wq_sk_blocks] ints, zero between launches; NULL: not made */
    float *wq_sk_part;
    int *wq_sk_flags;
    int wq_sk_blocks;
    /* linear.cu / gemm_tune.cu: the cuBLASLt plans' host work (pgd_cuda_gemm_host_stats) */
    struct pgd_cuda_gemm_host_stats lt_host;
    /* attention.cu: the stream a mixed step's decode rows run on beside its general items
     * (PGD_CUDA_ATTN_OVERLAP), forked from and joined back into `stream` by the two events */
    cudaStream_t side;
    cudaEvent_t side_fork, side_join;
};

/* Formats into err and returns 1. */
static inline int pgd_cuda_failf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return 1;
}

static inline const char *pgd_cuda_dt(enum pgd_dtype dt) { return pgd_dtype_name(dt); }

/* After a launch: the launch error, if any, with the kernel and shapes in `what`. */
#define PGD_CUDA_LAUNCHED(err, errlen, ...)                                             \
    do {                                                                               \
        cudaError_t e_ = cudaGetLastError();                                           \
        if (e_ != cudaSuccess) {                                                       \
            char what_[256];                                                           \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                \
            return pgd_cuda_failf(err, errlen, "%s: %s", what_, cudaGetErrorString(e_)); \
        }                                                                              \
    } while (0)

/* A checked CUDA runtime call inside a function returning int. */
#define PGD_CUDA_CHECK(err, errlen, call, ...)                                          \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            char what_[256];                                                           \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                \
            return pgd_cuda_failf(err, errlen, "%s: %s: %s", what_, #call,             \
                                  cudaGetErrorString(e_));                             \
        }                                                                              \
    } while (0)

/* A checked cuBLAS(Lt) call inside a function returning int, with err and errlen in scope
 * (linear.cu's and quant_lt.cu's GEMM plans). */
#define PGD_CUBLAS_CHECK(call, ...)                                                       \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                               \
            char what_[200];                                                             \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                  \
            return pgd_cuda_failf(err, errlen, "%s: %s: cuBLAS status %d", what_, #call, \
                                  (int)s_);                                              \
        }                                                                                \
    } while (0)

/* Destroys a cuBLASLt GEMM plan's descriptors (those not NULL) and clears them. */
static inline void pgd_cuda_lt_descs_free(cublasLtMatmulDesc_t *op, cublasLtMatrixLayout_t *a,
                                          cublasLtMatrixLayout_t *b, cublasLtMatrixLayout_t *d)
{
    if (*op)
        cublasLtMatmulDescDestroy(*op);
    cublasLtMatrixLayout_t *l[3] = { a, b, d };
    for (int i = 0; i < 3; i++)
        if (*l[i])
            cublasLtMatrixLayoutDestroy(*l[i]);
    *op = NULL;
    *a = *b = *d = NULL;
}

/* ---- element access in float32 ---------------------------------------------------------- */
template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

/* Dispatches a templated launch on the 16/32-bit float dtype: F(T) is a macro-like lambda. */
#define PGD_CUDA_DISPATCH(dt, T, ...)                                                   \
    switch (dt) {                                                                      \
    case PGD_DTYPE_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break;              \
    case PGD_DTYPE_F16: { typedef __half T; __VA_ARGS__; } break;                      \
    case PGD_DTYPE_F32: { typedef float T; __VA_ARGS__; } break;                       \
    default: return pgd_cuda_failf(err, errlen, "dtype %s has no CUDA kernel",         \
                                   pgd_dtype_name(dt));                                \
    }

/* ---- programmatic dependent launch ------------------------------------------------------ */
/* A kernel launched through pgd_cuda_launch may start before the previous kernel on the
 * stream has finished. It must call pdl_wait() before it reads anything an earlier kernel
 * wrote and before it writes anything at all; until then it may only read memory no kernel
 * of the step writes (weights). pdl_trigger() lets the next kernel be scheduled (it does
 * not make this kernel's writes visible: the next kernel's pdl_wait does that). Both are
 * no-ops below sm_90 and when the launch did not ask for it. */
__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Whether the kernels that read the step's inputs (positions, slot mapping, attention items,
 * block tables: copied in before the step's first kernel, written by none) read them before
 * their pdl_wait, as the rule above allows (the rotary + K/V write, the tensor-core decode
 * attention). On by default since two rounds on the H100 measured it (8B decode steps: batch
 * 1 -1.0%, 32 and 128 -0.3 to -0.6%); PGD_CUDA_ATTN_EARLY=0, read at each launch, reads them
 * after the wait, as before. */
static inline int pgd_cuda_early_inputs(void)
{
    const char *e = getenv("PGD_CUDA_ATTN_EARLY");
    return !(e && !strcmp(e, "0"));
}

/* kernel<<<grid, block, smem, c->stream>>>(args...), with programmatic stream serialization
 * when the context allows it. Only for kernels that follow the pdl_wait() rule above. */
template <typename... KArgs, typename... Args>
static inline cudaError_t pgd_cuda_launch_smem(const struct pgd_cuda_ctx *c,
                                               void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                               size_t smem, Args &&...args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = c->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

/* The same without dynamic shared memory. */
template <typename... KArgs, typename... Args>
static inline cudaError_t pgd_cuda_launch(const struct pgd_cuda_ctx *c, void (*kernel)(KArgs...),
                                          dim3 grid, dim3 block, Args &&...args)
{
    return pgd_cuda_launch_smem(c, kernel, grid, block, 0, std::forward<Args>(args)...);
}

static inline int pgd_cuda_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    return (int)(b > 65535 * 16 ? 65535 * 16 : (b < 1 ? 1 : b));
}

/* For a kernel whose block holds a row of vecs 16-byte vectors in registers, threads
 * threads: the vectors a thread as the kernel is built (1, 2, 4 or 8), 0 past 8. */
static inline int pgd_cuda_vecs_a_thread(int vecs, int threads)
{
    const int per = (vecs + threads - 1) / threads;
    return per <= 1 ? 1 : per <= 2 ? 2 : per <= 4 ? 4 : per <= 8 ? 8 : 0;
}

#endif
