/* Internal to kernels/cuda: a cuBLASLt GEMM plan's descriptors (linear.cu builds and caches
 * them) and the choice of its algorithm by measurement (gemm_tune.cu). */
#ifndef PGD_KERNELS_CUDA_GEMM_TUNE_CUH
#define PGD_KERNELS_CUDA_GEMM_TUNE_CUH

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_wgmma.cuh"
#include <time.h>

/* y[n, out] = x[n, in] @ w[out, in]^T in column-major terms: "TN", A = w, B = x, D = y. */
struct pgd_cuda_gemm_key {
    enum pgd_dtype dt, ydt;
    int n, in, out;
};

struct pgd_cuda_gemm_plan {
    struct pgd_cuda_gemm_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
};

/* The buffers of the call the plan is built for (device; y is overwritten). */
struct pgd_cuda_gemm_call {
    const void *x, *w;
    void *y;
};

/* The power of two >= n: the plans of one bucket share a tuned algorithm. */
int pgd_cuda_gemm_bucket(int n);

/* The algorithm for plan p: its bucket's tuned one when cuBLASLt accepts it at p's n; else,
 * with tuning on, outside a graph capture and with call given, the fastest of the
 * heuristic's candidates timed on call's buffers (recorded for the bucket); else the
 * heuristic's first. */
int pgd_cuda_gemm_choose(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p,
                         const struct pgd_cuda_gemm_call *call, cublasLtMatmulAlgo_t *algo,
                         char *err, size_t errlen);

/* Our wgmma kernel's configuration (gemm_wgmma.cuh) where the tuning of k's shape and n
 * bucket found it faster than cuBLASLt; bn 0 otherwise (not tuned, tuning off, cuBLASLt won). */
struct pgd_cuda_wgmma_cfg pgd_cuda_gemm_own(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k);

/* Frees the tuned records (pgd_cuda_gemm_cache_free calls it). */
void pgd_cuda_gemm_tune_free(struct pgd_cuda_ctx *c);

/* CLOCK_MONOTONIC in milliseconds: the host time tuning takes. */
static inline double pgd_cuda_host_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

#endif
