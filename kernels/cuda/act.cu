/* Gated activations: out = act(gate) * up, SiLU or tanh-GELU, computed in float32. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/act.cuh"

template <typename T, int ACT>
__global__ void act_mul_kernel(const T *gate_up, int n, int inter, T *out)
{
    pdl_trigger();
    pdl_wait();
    int64_t total = (int64_t)n * inter;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / inter, j = i % inter;
        float g = to_f<T>(gate_up[r * 2 * inter + j]);
        float u = to_f<T>(gate_up[r * 2 * inter + inter + j]);
        out[i] = from_f<T>(act_mul_f<ACT>(g, u));
    }
}

extern "C" int pgd_cuda_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                                const void *gate_up, int n, int inter, void *out, char *err,
                                size_t errlen)
{
    if (n == 0)
        return 0;
    int blocks = pgd_cuda_blocks((int64_t)n * inter, 256);
    if (act == PGD_ACT_SILU) {
        PGD_CUDA_DISPATCH(dt, T, pgd_cuda_launch(c, act_mul_kernel<T, PGD_ACT_SILU>, blocks, 256,
                                                 (const T *)gate_up, n, inter, (T *)out));
    } else if (act == PGD_ACT_GELU_TANH) {
        PGD_CUDA_DISPATCH(dt, T, pgd_cuda_launch(c, act_mul_kernel<T, PGD_ACT_GELU_TANH>, blocks, 256,
                                                 (const T *)gate_up, n, inter, (T *)out));
    } else {
        return pgd_cuda_failf(err, errlen, "act_mul: unknown activation %d", (int)act);
    }
    PGD_CUDA_LAUNCHED(err, errlen, "act_mul [%d, 2 x %d] %s", n, inter, pgd_cuda_dt(dt));
    return 0;
}
