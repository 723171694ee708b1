/* What the two sampling kernels share (internal to kernels/cuda): sample.cu's general kernel
 * (one block a row, every feature) and sample_plain.cu's kernel for plain rows (a cluster of
 * blocks a row, the row in shared memory). Both draw the same way: each candidate's
 * probability p (a float, as the CPU's) as a 64-bit fixed-point mass p * 2^62 (truncated),
 * walked in id order, the first whose inclusive prefix of mass reaches the target
 * pgd_cuda__draw_target(u, total). */
#ifndef PGD_KERNELS_CUDA_SAMPLE_CUH
#define PGD_KERNELS_CUDA_SAMPLE_CUH

#include "kernels/cuda/common.cuh"

#define FX_ONE_F 4611686018427387904.0f /* 2^62: probability 1 in fixed point */
#define FULL_MASK 0xffffffffu

/* The draw's target in [1, total] for u in [0, 1): floor(u * total) + 1 (total > 0). */
__device__ __forceinline__ unsigned long long pgd_cuda__draw_target(double u,
                                                                    unsigned long long total)
{
    const double x = floor(u * (double)total) + 1.0;
    unsigned long long T = x >= (double)total ? total : (unsigned long long)x;
    return T == 0 ? 1 : T;
}

/* The sum of v over the warp, in every lane. */
__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

/* The inclusive prefix sum of v over lanes 0..lane. */
__device__ __forceinline__ unsigned long long warp_scan_u64(unsigned long long v)
{
    const int lane = threadIdx.x & 31;
    for (int off = 1; off < 32; off <<= 1) {
        const unsigned long long o = __shfl_up_sync(FULL_MASK, v, off);
        if (lane >= off)
            v += o;
    }
    return v;
}

/* A plain row: a sample with nothing but temperature and min_p (no mask, bias, penalty,
 * allowed-token bitmask, top_k, top_p or logprobs): what sample_plain.cu's kernel does. */
__host__ __device__ __forceinline__ bool pgd_cuda__sample_row_plain(const pgd_cuda_sample_row &P)
{
    return P.kind == PGD_CUDA_ROW_SAMPLE && P.n_mask == 0 && P.n_bias == 0 && P.n_pen == 0 &&
           P.allow_off < 0 && P.top_k <= 0 && !(P.top_p < 1.0f) && P.n_top < 0;
}

/* Samples the plain rows of params [rows] (the others are left to the general kernel) when
 * this device has thread block clusters and the row fits their shared memory; *done says
 * whether it did (false: the general kernel must take every row). 0, or 1 with err. */
int pgd_cuda__sample_plain(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                           const struct pgd_cuda_sample_row *params,
                           struct pgd_cuda_sample_out *out, bool *done, char *err,
                           size_t errlen);

/* The argmax of each row of logits [rows, vocab] into out [rows] (lowest id on ties, 0 for a
 * row with nothing above -inf) with a cluster a row, where the device has clusters; *done
 * says whether it did (false: the caller's one-block kernel must). 0, or 1 with err. */
int pgd_cuda__argmax_cluster(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                             int32_t *out, bool *done, char *err, size_t errlen);

#endif
