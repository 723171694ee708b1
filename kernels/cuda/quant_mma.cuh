/* The tensor-core pieces the W4A16 / W8A16 kernels share (quant_wq_mma.cu's GEMV,
 * quant_wq_gemm.cu's GEMM): mma.sync m16n8k16 with float32 accumulators, and the 16-bit
 * "magic number" dequantization: a small unsigned field OR-ed into the mantissa of a 16-bit
 * float holding B (128 in bf16, 1024 in fp16: the field's bits land below the implicit one)
 * is B + q exactly, so one packed subtract of B + zero leaves the exact integers q - zero.
 * Internal to kernels/cuda; sm_80 and later. */
#ifndef PGD_KERNELS_CUDA_QUANT_MMA_CUH
#define PGD_KERNELS_CUDA_QUANT_MMA_CUH

#include "kernels/cuda/common.cuh"

template <typename T> struct mma_magic;
template <> struct mma_magic<__nv_bfloat16> {
    static constexpr uint32_t BITS = 0x43004300u;   /* 128, 128 */
    static constexpr float BIAS = 128.0f;
};
template <> struct mma_magic<__half> {
    static constexpr uint32_t BITS = 0x64006400u;   /* 1024, 1024 */
    static constexpr float BIAS = 1024.0f;
};

/* (w & 0x000F000F) | BITS: nibbles 0 and 4 of w as BIAS + q in a 16-bit pair, one LOP3 (the
 * compiler, given two constants, emits an AND and an OR: LOP3 takes one immediate). */
template <typename T>
__device__ __forceinline__ uint32_t nibble_pair(uint32_t w)
{
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(w), "n"(0x000F000F),
        "r"(mma_magic<T>::BITS));
    return r;
}

/* {v, v} in T, as the bits of a 16-bit pair. */
template <typename T>
__device__ __forceinline__ uint32_t pair_of(float v)
{
    const T h = from_f<T>(v);
    const uint16_t u = *reinterpret_cast<const uint16_t *>(&h);
    return (uint32_t)u | ((uint32_t)u << 16);
}

/* a - b, elementwise on two 16-bit pairs. */
template <typename T> __device__ __forceinline__ uint32_t sub_pair(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t sub_pair<__nv_bfloat16>(uint32_t a, uint32_t b)
{
    __nv_bfloat162 r = __hsub2(*reinterpret_cast<const __nv_bfloat162 *>(&a),
                               *reinterpret_cast<const __nv_bfloat162 *>(&b));
    return *reinterpret_cast<const uint32_t *>(&r);
}
template <> __device__ __forceinline__ uint32_t sub_pair<__half>(uint32_t a, uint32_t b)
{
    __half2 r = __hsub2(*reinterpret_cast<const __half2 *>(&a),
                        *reinterpret_cast<const __half2 *>(&b));
    return *reinterpret_cast<const uint32_t *>(&r);
}

/* {lo, hi} rounded to T (to nearest even), lo in the low half: one cvt instruction. */
template <typename T> __device__ __forceinline__ uint32_t pack_pair(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack_pair<__nv_bfloat16>(float lo, float hi)
{
    __nv_bfloat162 r = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&r);
}
template <> __device__ __forceinline__ uint32_t pack_pair<__half>(float lo, float hi)
{
    __half2 r = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&r);
}

/* d (4 float32) += A (16 x 16, row-major fragments) @ B (16 x 8, column fragments). */
template <typename T> __device__ __forceinline__ void mma16816(float *d, const uint32_t *a,
                                                               const uint32_t *b);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float *d, const uint32_t *a,
                                                                    const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma16816<__half>(float *d, const uint32_t *a,
                                                             const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif
