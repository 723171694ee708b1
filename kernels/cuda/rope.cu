/* Rotary position embedding ("rotate half" layout), q and k in one launch. The angle is
 * pos * inv_freq[j] in float32, as transformers computes it; inv_freq travels by value. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kv_fp8.cuh"
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

/* ---- rope fused with the K/V write ----------------------------------------------------- */
/* Grid (token, group of ROPE_KV_WARPS heads): a warp a head, so that one decode token's 48
 * heads (Llama-3-8B: 32 q, 8 k, 8 v) run on 12 SMs at once rather than one after another.
 * Each block puts the token's cos/sin in shared memory first; then its warps take q heads
 * (normed when qn is set, rotated, in place), k heads (normed when kn is set, rotated,
 * written to the cache row) or v heads (copied to the cache row). A normed value is rounded
 * to T before the rotation, as the separate rmsnorm kernel rounds what it writes. The cache
 * element C is T or e4m3 (kv_fp8.cuh): a K/V value is rounded to T first, then encoded with
 * its scale, as the unfused rope + kv_write would store it. */
#define ROPE_KV_WARPS 4
#define ROPE_KV_THREADS (ROPE_KV_WARPS * 32)

template <typename T, typename C>
__global__ void __launch_bounds__(ROPE_KV_THREADS)
rope_kv_write_kernel(T *q, const T *qs, int64_t qld, const T *k, const T *v, int64_t kvld,
                     int nq, int nkv, int D, int rot,
                     const int32_t *pos, const T *qn, const T *kn, float eps, C *kc, C *vc,
                     const int64_t *slots, float k_scale, float v_scale, int early,
                     const __grid_constant__ rope_freqs fr)
{
    __shared__ float cs[512], sn[512];
    const int t = blockIdx.x, half = rot / 2;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    pdl_trigger();
    if (!early)
        pdl_wait();
    /* The position and slot are the step's inputs (early: read, and the angles made, while
     * the q/k/v GEMM before this kernel still runs). */
    const float p = (float)pos[t];
    const int64_t slot = slots[t];
    for (int j = threadIdx.x; j < half; j += blockDim.x)
        sincosf(p * fr.f[j], &sn[j], &cs[j]);
    if (early)
        pdl_wait();
    __syncthreads();
    const int64_t width = (int64_t)nkv * D;
    for (int h = blockIdx.y * nw + warp; h < nq + 2 * nkv; h += nw * gridDim.y) {
        if (h >= nq + nkv) {                         /* a v head: copy */
            if (slot < 0)
                continue;
            const T *src = v + t * kvld + (int64_t)(h - nq - nkv) * D;
            C *dst = vc + slot * width + (int64_t)(h - nq - nkv) * D;
            for (int e = lane; e < D; e += 32)
                kv_store<T, C>(dst + e, src[e], v_scale);
            continue;
        }
        const bool is_q = h < nq;
        if (!is_q && slot < 0)
            continue;
        const T *src = is_q ? qs + t * qld + (int64_t)h * D : k + t * kvld + (int64_t)(h - nq) * D;
        /* The rotated head goes to q in place, or to the K cache. */
        T *qdst = q + ((int64_t)t * nq + h) * D;
        C *kdst = kc + slot * width + (int64_t)(h - nq) * D;
        auto put = [&](int e, float x) {
            if (is_q)
                qdst[e] = from_f<T>(x);
            else
                kv_store<T, C>(kdst + e, from_f<T>(x), k_scale);
        };
        const T *w = is_q ? qn : kn;
        float inv = 1.0f;
        if (w) {
            float ss = 0.0f;
            for (int e = lane; e < D; e += 32) {
                float x = to_f<T>(src[e]);
                ss += x * x;
            }
            for (int off = 16; off > 0; off >>= 1)
                ss += __shfl_xor_sync(0xffffffffu, ss, off);
            inv = rsqrtf(ss / (float)D + eps);
        }
        /* Every lane reads its elements before any lane of the warp writes (q in place). */
        float x1[8], x2[8], xr[8];
        int nj = 0, ne = 0;
        for (int j = lane; j < half && nj < 8; j += 32, nj++) {
            float a = to_f<T>(src[j]), b = to_f<T>(src[j + half]);
            if (w) {
                a = to_f<T>(from_f<T>(a * inv * to_f<T>(w[j])));
                b = to_f<T>(from_f<T>(b * inv * to_f<T>(w[j + half])));
            }
            x1[nj] = a;
            x2[nj] = b;
        }
        for (int e = rot + lane; e < D && ne < 8; e += 32, ne++) {
            float a = to_f<T>(src[e]);
            xr[ne] = w ? to_f<T>(from_f<T>(a * inv * to_f<T>(w[e]))) : a;
        }
        __syncwarp();
        nj = 0;
        for (int j = lane; j < half && nj < 8; j += 32, nj++) {
            float c = cs[j], s = sn[j];
            put(j, x1[nj] * c - x2[nj] * s);
            put(j + half, x2[nj] * c + x1[nj] * s);
        }
        ne = 0;
        for (int e = rot + lane; e < D && ne < 8; e += 32, ne++)
            put(e, xr[ne]);
    }
}

/* pgd_cuda_rope_kv_write and _rows: q's source rows qs, qld elements apart, and k's and v's
 * kvld apart; the rotated q goes to q [n, n_q_heads * head_dim]. */
static int rope_kv_write(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q, const void *qs,
                         int64_t qld, int n_q_heads, const void *k, const void *v, int64_t kvld,
                         int n_kv_heads, int n, int head_dim, int rotary_dim,
                         const float *inv_freq, const int32_t *pos, const void *q_norm,
                         const void *k_norm, float eps, void *k_cache, void *v_cache,
                         const int64_t *slot_mapping, const struct pgd_cuda_kv_fp8 *fp8,
                         char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (rotary_dim <= 0 || rotary_dim % 2 || rotary_dim > head_dim || rotary_dim / 2 > 256 ||
        head_dim - rotary_dim > 256)
        return pgd_cuda_failf(err, errlen, "rope + kv_write: rotary_dim %d of head_dim %d (at "
                              "most 512 rotated and 256 passed through)", rotary_dim, head_dim);
    rope_freqs fr;
    memset(&fr, 0, sizeof fr);
    memcpy(fr.f, inv_freq, (size_t)(rotary_dim / 2) * sizeof(float));
    dim3 grid(n, (n_q_heads + 2 * n_kv_heads + ROPE_KV_WARPS - 1) / ROPE_KV_WARPS);
    const int early = pgd_cuda_early_inputs();
    if (fp8)
        PGD_CUDA_DISPATCH(dt, T, pgd_cuda_launch(c, rope_kv_write_kernel<T, kv_e4m3>, grid,
                                     ROPE_KV_THREADS, (T *)q, (const T *)qs, qld,
                                     (const T *)k, (const T *)v, kvld, n_q_heads, n_kv_heads,
                                     head_dim, rotary_dim, pos, (const T *)q_norm,
                                     (const T *)k_norm, eps, (kv_e4m3 *)k_cache, (kv_e4m3 *)v_cache, slot_mapping,
                                     fp8->k_scale, fp8->v_scale, early, fr))
    else
        PGD_CUDA_DISPATCH(dt, T, pgd_cuda_launch(c, rope_kv_write_kernel<T, T>, grid,
                                     ROPE_KV_THREADS, (T *)q, (const T *)qs, qld,
                                     (const T *)k, (const T *)v, kvld, n_q_heads, n_kv_heads,
                                     head_dim, rotary_dim, pos, (const T *)q_norm,
                                     (const T *)k_norm, eps, (T *)k_cache,
                                     (T *)v_cache, slot_mapping, 1.0f, 1.0f, early, fr))
    PGD_CUDA_LAUNCHED(err, errlen, "rope + kv_write [%d tokens, %d q + %d kv heads of %d, rotary "
                      "%d%s] %s%s", n, n_q_heads, n_kv_heads, head_dim, rotary_dim,
                      q_norm ? ", q/k norms" : "", pgd_cuda_dt(dt), fp8 ? " into e4m3" : "");
    return 0;
}

extern "C" int pgd_cuda_rope_kv_write(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q,
                                      int n_q_heads, const void *k, const void *v,
                                      int n_kv_heads, int n, int head_dim, int rotary_dim,
                                      const float *inv_freq, const int32_t *pos,
                                      const void *q_norm, const void *k_norm, float eps,
                                      void *k_cache, void *v_cache,
                                      const int64_t *slot_mapping,
                                      const struct pgd_cuda_kv_fp8 *fp8, char *err,
                                      size_t errlen)
{
    const int64_t kvld = (int64_t)n_kv_heads * head_dim;
    return rope_kv_write(c, dt, q, q, (int64_t)n_q_heads * head_dim, n_q_heads, k, v, kvld,
                         n_kv_heads, n, head_dim, rotary_dim, inv_freq, pos, q_norm, k_norm,
                         eps, k_cache, v_cache, slot_mapping, fp8, err, errlen);
}

extern "C" int pgd_cuda_rope_kv_write_rows(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q,
                                           const void *qkv, int64_t ld, int n_q_heads,
                                           int n_kv_heads, int n, int head_dim, int rotary_dim,
                                           const float *inv_freq, const int32_t *pos,
                                           const void *q_norm, const void *k_norm, float eps,
                                           void *k_cache, void *v_cache,
                                           const int64_t *slot_mapping,
                                           const struct pgd_cuda_kv_fp8 *fp8, char *err,
                                           size_t errlen)
{
    const size_t esz = pgd_dtype_size(dt);
    const int64_t qw = (int64_t)n_q_heads * head_dim, kvw = (int64_t)n_kv_heads * head_dim;
    if (ld < qw + 2 * kvw)
        return pgd_cuda_failf(err, errlen, "rope + kv_write: rows of %lld elements cannot hold "
                              "q, k and v (%lld + 2 x %lld)", (long long)ld, (long long)qw,
                              (long long)kvw);
    const char *k = (const char *)qkv + (size_t)qw * esz;
    return rope_kv_write(c, dt, q, qkv, ld, n_q_heads, k, k + (size_t)kvw * esz, ld, n_kv_heads,
                         n, head_dim, rotary_dim, inv_freq, pos, q_norm, k_norm, eps, k_cache,
                         v_cache, slot_mapping, fp8, err, errlen);
}
