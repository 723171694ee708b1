/* The gated activations of the MLP in float32, shared by act.cu (act_mul_kernel) and glu.cu
 * (the fused gate/up GEMV), so that both round the same way: the formulas of the CPU twin
 * (kernels/cpu/act.c). Internal to kernels/cuda. */
#ifndef PGD_KERNELS_CUDA_ACT_CUH
#define PGD_KERNELS_CUDA_ACT_CUH

#include "kernels/cuda/common.cuh"

/* act(g) * u for ACT = PGD_ACT_SILU (g / (1 + e^-g)) or PGD_ACT_GELU_TANH
 * (0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3)))). */
template <int ACT>
__device__ __forceinline__ float act_mul_f(float g, float u)
{
    float a;
    if (ACT == PGD_ACT_SILU) {
        a = g / (1.0f + expf(-g));
    } else {
        const float k = 0.7978845608028654f;   /* sqrt(2 / pi) */
        a = 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    }
    return a * u;
}

#endif
