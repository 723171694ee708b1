/* The PTX the tensor-core attention kernels share (attention_mma.cu, attention_decode_mma.cu):
 * asynchronous 16-byte copies global -> shared (cp.async, sm_80+) and ldmatrix loads of 8x8
 * 16-bit tiles from shared memory. Addresses are shared-window addresses (smem_u32). */
#ifndef PGD_KERNELS_CUDA_CP_ASYNC_CUH
#define PGD_KERNELS_CUDA_CP_ASYNC_CUH

#include <stdint.h>

static __device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared, bypassing L1; !valid writes 16 zero bytes (src not read). */
static __device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

/* 4 bytes global -> shared through L1 (.ca: a 4-byte copy may not bypass it); !valid
 * writes 4 zero bytes (src not read). */
static __device__ __forceinline__ void cp_async4(uint32_t dst, const void *src, bool valid)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}

/* The same two copies with no zero-fill operand, for callers whose sources are always valid
 * (clamped): ptxas emits them without the per-copy branch the variable source size costs. */
static __device__ __forceinline__ void cp_async16_always(uint32_t dst, const void *src)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}

static __device__ __forceinline__ void cp_async4_always(uint32_t dst, const void *src)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}

/* 16 bytes global -> shared where p, else nothing (the destination keeps what it held): a
 * predicated copy, no branch and no zero-fill operand (src need not be valid where !p). */
static __device__ __forceinline__ void cp_async16_if(uint32_t dst, const void *src, bool p)
{
    asm volatile("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n"
                 " @q cp.async.cg.shared.global [%0], [%1], 16;\n}\n" ::"r"(dst), "l"(src),
                 "r"((int)p)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Waits until at most N of this thread's committed groups are still in flight. */
template <int N> static __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Four 8x8 tiles of 16-bit elements, each lane giving one row address (lanes 8i..8i+7: tile i). */
static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* The same, each tile transposed. */
static __device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

#endif
