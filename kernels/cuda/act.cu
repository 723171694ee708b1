/* Gated activations: out = act(gate) * up, SiLU or tanh-GELU, computed in float32. The
 * [n, 2I] input is the cuBLASLt gate_up GEMM's output at batch sizes past the fused GEMV
 * (glu.cu): a pass over 3 n I elements, so it is written for bandwidth: 16-byte vectors of
 * gate, up and out when I is a multiple of the vector width and the buffers are aligned
 * (element by element otherwise; both round each element the same way). */
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

/* One 16-byte vector of out a thread: vector v of row r = v / per_row (per_row = I / V). */
template <typename T, int ACT>
__global__ void act_mul_vec_kernel(const T *__restrict__ gate_up, int64_t vecs, int per_row,
                                   T *__restrict__ out)
{
    constexpr int V = 16 / sizeof(T);
    pdl_trigger();
    pdl_wait();
    const uint4 *in = reinterpret_cast<const uint4 *>(gate_up);
    uint4 *o = reinterpret_cast<uint4 *>(out);
    for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < vecs;
         v += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = v / per_row;
        int64_t j = v - r * per_row;
        uint4 gv = in[r * 2 * per_row + j], uv = in[r * 2 * per_row + per_row + j], ov;
        const T *g = reinterpret_cast<const T *>(&gv), *u = reinterpret_cast<const T *>(&uv);
        T *y = reinterpret_cast<T *>(&ov);
#pragma unroll
        for (int k = 0; k < V; k++)
            y[k] = from_f<T>(act_mul_f<ACT>(to_f<T>(g[k]), to_f<T>(u[k])));
        o[v] = ov;
    }
}

template <typename T, int ACT>
static cudaError_t act_mul_launch(struct pgd_cuda_ctx *c, const T *gate_up, int n, int inter,
                                  T *out)
{
    constexpr int V = 16 / sizeof(T);
    if (inter % V == 0 && (uintptr_t)gate_up % 16 == 0 && (uintptr_t)out % 16 == 0) {
        int64_t vecs = (int64_t)n * (inter / V);
        return pgd_cuda_launch(c, act_mul_vec_kernel<T, ACT>, pgd_cuda_blocks(vecs, 256), 256,
                               gate_up, vecs, inter / V, out);
    }
    return pgd_cuda_launch(c, act_mul_kernel<T, ACT>, pgd_cuda_blocks((int64_t)n * inter, 256),
                           256, gate_up, n, inter, out);
}

extern "C" int pgd_cuda_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                                const void *gate_up, int n, int inter, void *out, char *err,
                                size_t errlen)
{
    if (n == 0)
        return 0;
    if (act == PGD_ACT_SILU) {
        PGD_CUDA_DISPATCH(dt, T, act_mul_launch<T, PGD_ACT_SILU>(c, (const T *)gate_up, n, inter,
                                                                 (T *)out));
    } else if (act == PGD_ACT_GELU_TANH) {
        PGD_CUDA_DISPATCH(dt, T, act_mul_launch<T, PGD_ACT_GELU_TANH>(c, (const T *)gate_up, n,
                                                                      inter, (T *)out));
    } else {
        return pgd_cuda_failf(err, errlen, "act_mul: unknown activation %d", (int)act);
    }
    PGD_CUDA_LAUNCHED(err, errlen, "act_mul [%d, 2 x %d] %s", n, inter, pgd_cuda_dt(dt));
    return 0;
}
