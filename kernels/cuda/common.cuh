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

struct pgd_cuda_gemm_entry;          /* linear.cu's algorithm cache */

struct pgd_cuda_ctx {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;                 /* cuBLASLt workspace, device */
    size_t workspace_bytes;
    struct pgd_cuda_gemm_entry *gemm; /* [gemm_cap], owned by linear.cu */
    int gemm_n, gemm_cap, gemm_next;
    /* attention.cu's work plan for the current step */
    int4 *plan_host;                 /* pinned [plan_cap] */
    int4 *plan_dev;                  /* device [plan_cap] */
    int plan_cap, plan_items, plan_tq, plan_hq;
    int plan_dec, plan_dec_on;       /* decode rows after the plan_items general items */
    uint64_t plan_step;
    int plan_valid;
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

static inline int pgd_cuda_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    return (int)(b > 65535 * 16 ? 65535 * 16 : (b < 1 ? 1 : b));
}

#endif
