/* Internal to kernels/cuda: our own Hopper GEMM (gemm_wgmma.cu) for few tokens and a narrow
 * output, as a candidate gemm_tune.cu times beside cuBLASLt's and linear.cu runs where it
 * won. */
#ifndef PGD_KERNELS_CUDA_GEMM_WGMMA_CUH
#define PGD_KERNELS_CUDA_GEMM_WGMMA_CUH

#include "kernels/cuda/common.cuh"

/* A configuration: token tile bn (16, 32, 64, 128, 256; 0: none, cuBLASLt's), K split over
 * a cluster of `split` CTAs (1..8), cps CTAs an SM (1: the deep pipeline; 2: half the
 * stages, tiles up to 128). */
struct pgd_cuda_wgmma_cfg {
    int bn, split, cps;
};

/* Whether the kernel runs on c's device (compute capability 9.0, sm_90a code built,
 * PGD_CUDA_GEMM_WGMMA not 0). */
bool pgd_cuda__wgmma_ok(const struct pgd_cuda_ctx *c);
/* Whether a call fits it: bf16/fp16 inputs, output in their dtype or f32, in % 8 == 0, x, w,
 * b (NULL allowed) 16-byte aligned, y 4-byte aligned. */
bool pgd_cuda__wgmma_fits(enum pgd_dtype dt, enum pgd_dtype ydt, const void *x, const void *w,
                          const void *b, const void *y, int in);
/* Up to max configurations worth timing for [n x in] -> out on c's SMs (max 24 holds them
 * all): every one (all), or the few that came closest to cuBLASLt on the H200 (gemm_tune.cu's
 * start-up set; at most 6); their count. */
#define PGD_CUDA_WGMMA_MAX_CANDIDATES 24
int pgd_cuda__wgmma_candidates(const struct pgd_cuda_ctx *c, int n, int in, int out, bool all,
                               struct pgd_cuda_wgmma_cfg *cand, int max);
/* y[n, out] = x[n, in] @ w[out, in]^T + b with cfg (the caller checked ok and fits). */
int pgd_cuda__wgmma_run(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, const void *w,
                        const void *b, int n, int in, int out, enum pgd_dtype ydt, void *y,
                        struct pgd_cuda_wgmma_cfg cfg, char *err, size_t errlen);

#endif
