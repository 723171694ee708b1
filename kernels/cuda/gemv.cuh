/* Shared by the GEMV kernels (linear.cu, glu.cu): decode-sized batches read each weight row
 * once, one warp per output feature, with 16-byte streaming loads. Internal to kernels/cuda. */
#ifndef PGD_KERNELS_CUDA_GEMV_CUH
#define PGD_KERNELS_CUDA_GEMV_CUH

#include "kernels/cuda/common.cuh"

#define GEMV_WARPS 8           /* warps (output features) a block */
#define GEMV_UNR 4             /* independent 16-byte weight loads a lane issues per row */

/* The 16 / sizeof(T) elements of a 16-byte vector in float32. */
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

/* Before the previous kernel is done (programmatic dependent launch), the first loads of
 * the weight row o are asked into L2: weights are never written by a step's kernels. */
template <typename T>
__device__ __forceinline__ void gemv_prefetch_row(const T *__restrict__ w, int in, int o, int lane)
{
    constexpr int V = 16 / sizeof(T);
    const T *wr = w + (size_t)o * in;
    for (int k = lane * V; k < in && k < GEMV_UNR * 32 * V; k += 32 * V)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(wr + k));
}

/* Batches of up to this many rows take a GEMV kernel rather than cuBLASLt (linear.cu: 4, or
 * PGD_CUDA_GEMV_MAX_N 0..8; read once). */
int pgd_cuda__gemv_max_n(void);

#endif
