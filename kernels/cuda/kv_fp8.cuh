/* The KV cache's element type on the device, for the kernels that write or read it
 * (attention.cu, attention_mma.cu, attention_decode.cu, rope.cu). Internal to kernels/cuda.
 *
 * A kernel is templated on the compute dtype T (__nv_bfloat16, __half) and the cache element
 * C: T itself (the cache in the compute dtype; the code is the same as before the FP8 cache
 * existed, so those paths stay bit-identical) or __nv_fp8_e4m3 (kv_cache_dtype fp8: value =
 * e4m3(byte) * scale, the scale per layer and per K / V; kernels.h, pgd_cuda_kv_fp8).
 * e4m3 values are exact in f16 and bf16 (3 mantissa bits, exponents 2^-9 .. 2^8), so a
 * reader converts bytes to T (or f16 words) exactly and applies the scale in float32:
 * the K scale folds into the query's scale, the V scale into the output. */
#ifndef PGD_KERNELS_CUDA_KV_FP8_CUH
#define PGD_KERNELS_CUDA_KV_FP8_CUH

#include "kernels/cuda/common.cuh"
#include <cuda_fp8.h>

typedef __nv_fp8_e4m3 kv_e4m3;

/* Whether cache element C is the FP8 one. */
template <typename C> struct kv_fp8_t { static constexpr bool value = false; };
template <> struct kv_fp8_t<__nv_fp8_e4m3> { static constexpr bool value = true; };

/* Two e4m3 bytes (the first in the low byte) as an f16x2 word (the first in the low half). */
__device__ __forceinline__ uint32_t kv_e4m3x2_h2(uint32_t two)
{
    __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(two & 0xffffu), __NV_E4M3);
    return (uint32_t)h.x | ((uint32_t)h.y << 16);
}

/* An f16x2 word whose values are e4m3 ones, as a T x2 word (exact either way). */
template <typename T> __device__ __forceinline__ uint32_t kv_h2_to(uint32_t w);
template <> __device__ __forceinline__ uint32_t kv_h2_to<__half>(uint32_t w) { return w; }
template <> __device__ __forceinline__ uint32_t kv_h2_to<__nv_bfloat16>(uint32_t w)
{
    float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&w));
    __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    return *reinterpret_cast<const uint32_t *>(&b);
}

/* Four e4m3 bytes of a word as two T x2 words. */
template <typename T> __device__ __forceinline__ void kv_e4m3x4_to(uint32_t w, uint32_t *out)
{
    out[0] = kv_h2_to<T>(kv_e4m3x2_h2(w));
    out[1] = kv_h2_to<T>(kv_e4m3x2_h2(w >> 16));
}

/* Eight e4m3 bytes as eight T values in a uint4 (the first in the low half of .x). */
template <typename T> __device__ __forceinline__ uint4 kv_cvt8(uint2 u)
{
    uint32_t w[4];
    kv_e4m3x4_to<T>(u.x, w);
    kv_e4m3x4_to<T>(u.y, w + 2);
    return make_uint4(w[0], w[1], w[2], w[3]);
}

/* Eight consecutive cache elements at p (16 bytes of T, or 8 e4m3 bytes: 8-byte aligned) as
 * eight T values in a uint4. */
template <typename T, typename C> __device__ __forceinline__ uint4 kv_load8(const C *p)
{
    if constexpr (!kv_fp8_t<C>::value)
        return *reinterpret_cast<const uint4 *>(p);
    else
        return kv_cvt8<T>(*reinterpret_cast<const uint2 *>(p));
}

/* The cache element of x (a value already rounded to T): e4m3(x / scale), round to nearest
 * even, saturated to +-448 (NaN stays NaN), as the CPU's pgd_fp8_e4m3_from_float. */
__device__ __forceinline__ kv_e4m3 kv_encode_e4m3(float x, float scale)
{
    kv_e4m3 r;
    r.__x = __nv_cvt_float_to_fp8(x / scale, __NV_SATFINITE, __NV_E4M3);
    return r;
}

/* Stores the T value x into the cache element *dst: a copy (C = T) or its e4m3 code. */
template <typename T, typename C>
__device__ __forceinline__ void kv_store(C *dst, T x, float scale)
{
    if constexpr (!kv_fp8_t<C>::value) {
        (void)scale;
        *dst = x;
    } else {
        *dst = kv_encode_e4m3(to_f<T>(x), scale);
    }
}

#endif
