/* Rotary position embedding ("rotate half" layout), q and k in one launch. The angle is
 * pos * inv_freq[j] in float32, as transformers computes it; inv_freq travels by value. */
#include "kernels/cuda/common.cuh"
#include <string.h>

struct rope_freqs {
    float f[512];                    /* [rotary_dim / 2] */
};

/* One block per token; threads over (head, j) pairs of q, then of k. */
template <typename T>
__global__ void rope_kernel(T *q, int nq, T *k, int nk, int head_dim, int rotary_dim,
                            const int32_t *pos, const __grid_constant__ rope_freqs fr)
{
    int t = blockIdx.x, half = rotary_dim / 2;
    float p = (float)pos[t];
    int total = (nq + nk) * half;
    for (int i = threadIdx.x; i < total; i += blockDim.x) {
        int h = i / half, j = i % half;
        T *v = h < nq ? q + ((int64_t)t * nq + h) * head_dim
                      : k + ((int64_t)t * nk + (h - nq)) * head_dim;
        float s, c;
        sincosf(p * fr.f[j], &s, &c);
        float x1 = to_f<T>(v[j]), x2 = to_f<T>(v[j + half]);
        v[j] = from_f<T>(x1 * c - x2 * s);
        v[j + half] = from_f<T>(x2 * c + x1 * s);
    }
}

extern "C" int pgd_cuda_rope(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q, int n_q_heads,
                             void *k, int n_k_heads, int n, int head_dim, int rotary_dim,
                             const float *inv_freq, const int32_t *pos, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (rotary_dim <= 0 || rotary_dim % 2 || rotary_dim / 2 > 512 || rotary_dim > head_dim)
        return pgd_cuda_failf(err, errlen, "rope: rotary_dim %d of head_dim %d", rotary_dim,
                              head_dim);
    rope_freqs fr;
    memset(&fr, 0, sizeof fr);
    memcpy(fr.f, inv_freq, (size_t)(rotary_dim / 2) * sizeof(float));
    if (!q)
        n_q_heads = 0;
    if (!k)
        n_k_heads = 0;
    int threads = (n_q_heads + n_k_heads) * rotary_dim / 2;
    threads = threads >= 256 ? 256 : ((threads + 31) / 32) * 32;
    if (threads == 0)
        return 0;
    PGD_CUDA_DISPATCH(dt, T, rope_kernel<T><<<n, threads, 0, c->stream>>>(
                                 (T *)q, n_q_heads, (T *)k, n_k_heads, head_dim, rotary_dim, pos, fr));
    PGD_CUDA_LAUNCHED(err, errlen, "rope [%d tokens, %d + %d heads of %d, rotary %d] %s", n,
                      n_q_heads, n_k_heads, head_dim, rotary_dim, pgd_cuda_dt(dt));
    return 0;
}
