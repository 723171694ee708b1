/* The MLP's gate/up projection and its gated activation in one pass at decode sizes:
 * out[n, I] = act(x @ Wg^T + bg) * (x @ Wu^T + bu), with W = [Wg; Wu] the fused [2I, in]
 * gate_up weight and b = [bg; bu].
 *
 * At GEMV sizes (n <= pgd_cuda__gemv_max_n()) one warp computes output feature o of both
 * halves: it streams weight rows o and I + o together (2 x GEMV_UNR 16-byte loads in flight
 * a lane), accumulates each as linear.cu's gemv_row does (the same lane order, the same
 * shuffle reduction, so the sums are bit for bit the unfused GEMV's), rounds gate and up to
 * the activation dtype as the [n, 2I] intermediate would be, and lane 0 writes
 * act(gate) * up rounded to the dtype. The [n, 2I] intermediate and the act_mul launch are
 * gone. Larger n (or F32 activations, or PGD_CUDA_GLU=0): pgd_cuda_linear into the caller's
 * scratch, then pgd_cuda_act_mul. Capture-safe: no allocation, no host synchronisation. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/act.cuh"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* One warp per output feature o < inter of the N rows of x [N, in]; w [2 inter, in] (gate
 * rows, then up rows), b [2 inter] or NULL; out [N, inter]. vec: x and w 16-byte aligned and
 * in a multiple of the vector width. */
template <typename T, int N, int ACT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
glu_gemv_kernel(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ b,
                int in, int inter, T *__restrict__ out, int vec)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int o = blockIdx.x * GEMV_WARPS + warp;
    pdl_trigger();
    if (o < inter) {
        gemv_prefetch_row(w, in, o, lane);
        gemv_prefetch_row(w, in, inter + o, lane);
    }
    pdl_wait();
    if (o >= inter)
        return;
    const T *wg = w + (size_t)o * in, *wu = w + (size_t)(inter + o) * in;
    float ag[N], au[N];
#pragma unroll
    for (int r = 0; r < N; r++)
        ag[r] = au[r] = 0.0f;
    constexpr int V = 16 / sizeof(T);
    constexpr int STEP = 32 * V;                    /* elements a warp covers per load */
    if (vec) {
        int k = lane * V;
        for (; k + (GEMV_UNR - 1) * STEP < in; k += GEMV_UNR * STEP) {
            uint4 vg[GEMV_UNR], vu[GEMV_UNR];
#pragma unroll
            for (int u = 0; u < GEMV_UNR; u++) {
                vg[u] = ld_stream(wg + k + u * STEP);
                vu[u] = ld_stream(wu + k + u * STEP);
            }
#pragma unroll
            for (int u = 0; u < GEMV_UNR; u++) {
                float fg[V], fu[V];
                unpack16<T>(vg[u], fg);
                unpack16<T>(vu[u], fu);
#pragma unroll
                for (int r = 0; r < N; r++) {
                    float xf[V];
                    unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * in + k + u * STEP)), xf);
#pragma unroll
                    for (int i = 0; i < V; i++) {
                        ag[r] = fmaf(fg[i], xf[i], ag[r]);
                        au[r] = fmaf(fu[i], xf[i], au[r]);
                    }
                }
            }
        }
        for (; k < in; k += STEP) {
            float fg[V], fu[V];
            unpack16<T>(ld_stream(wg + k), fg);
            unpack16<T>(ld_stream(wu + k), fu);
#pragma unroll
            for (int r = 0; r < N; r++) {
                float xf[V];
                unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * in + k)), xf);
#pragma unroll
                for (int i = 0; i < V; i++) {
                    ag[r] = fmaf(fg[i], xf[i], ag[r]);
                    au[r] = fmaf(fu[i], xf[i], au[r]);
                }
            }
        }
    } else {
        for (int k = lane; k < in; k += 32) {
            float g = to_f<T>(wg[k]), u = to_f<T>(wu[k]);
#pragma unroll
            for (int r = 0; r < N; r++) {
                float xv = to_f<T>(x[(size_t)r * in + k]);
                ag[r] = fmaf(g, xv, ag[r]);
                au[r] = fmaf(u, xv, au[r]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < N; r++)
        for (int off = 16; off > 0; off >>= 1) {
            ag[r] += __shfl_xor_sync(0xffffffffu, ag[r], off);
            au[r] += __shfl_xor_sync(0xffffffffu, au[r], off);
        }
    if (lane == 0) {
        float bg = b ? to_f<T>(b[o]) : 0.0f, bu = b ? to_f<T>(b[inter + o]) : 0.0f;
#pragma unroll
        for (int r = 0; r < N; r++) {
            /* gate and up as the unfused GEMV stores them in dt, then act_mul_kernel's math. */
            float g = to_f<T>(from_f<T>(ag[r] + bg)), u = to_f<T>(from_f<T>(au[r] + bu));
            out[(size_t)r * inter + o] = from_f<T>(act_mul_f<ACT>(g, u));
        }
    }
}

template <typename T, int ACT>
static int glu_launch(struct pgd_cuda_ctx *c, const void *x, const void *w, const void *b, int n,
                      int in, int inter, void *out, char *err, size_t errlen)
{
    int vec = ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0) &&
              (in % (16 / (int)sizeof(T)) == 0);
    const T *xp = (const T *)x, *wp = (const T *)w, *bp = (const T *)b;
    T *op = (T *)out;
    dim3 grid((unsigned)((inter + GEMV_WARPS - 1) / GEMV_WARPS)), block(GEMV_WARPS * 32);
    cudaError_t e;
    switch (n) {
    case 1: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 1, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 2: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 2, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 3: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 3, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 4: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 4, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 5: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 5, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 6: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 6, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 7: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 7, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    case 8: e = pgd_cuda_launch(c, glu_gemv_kernel<T, 8, ACT>, grid, block, xp, wp, bp, in, inter, op, vec); break;
    default:
        return pgd_cuda_failf(err, errlen, "glu gemv: %d rows (1..8)", n);
    }
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "glu gemv x [%d, %d] @ w [2 x %d, %d]^T: launch: %s",
                              n, in, inter, in, cudaGetErrorString(e));
    PGD_CUDA_LAUNCHED(err, errlen, "glu gemv x [%d, %d] @ w [2 x %d, %d]^T", n, in, inter, in);
    return 0;
}

static const char *act_name(enum pgd_act act)
{
    return act == PGD_ACT_SILU ? "silu" : act == PGD_ACT_GELU_TANH ? "gelu_tanh" : "?";
}

/* Whether the fused kernel runs at GEMV sizes (PGD_CUDA_GLU=0: never, for measuring the two
 * paths against each other). Read once. */
static int glu_on(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_GLU");
        v = !(e && !strcmp(e, "0"));
    }
    return v;
}

static int glu_args_ok(enum pgd_act act, int n, int in, int inter, char *err, size_t errlen)
{
    if (act != PGD_ACT_SILU && act != PGD_ACT_GELU_TANH)
        return !pgd_cuda_failf(err, errlen, "linear_act_mul: unknown activation %d", (int)act);
    if (n < 0 || in <= 0 || inter <= 0 || inter > INT_MAX / 2)
        return !pgd_cuda_failf(err, errlen, "linear_act_mul: x [%d, %d] @ w [2 x %d, %d]^T: "
                               "bad shape", n, in, inter, in);
    return 1;
}

extern "C" int pgd_cuda_linear_act_mul_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                            enum pgd_act act, const void *x, const void *w,
                                            const void *b, int n, int in, int inter, void *out,
                                            char *err, size_t errlen)
{
    if (!glu_args_ok(act, n, in, inter, err, errlen))
        return 1;
    if (n == 0)
        return 0;
    if (n > 8)
        return pgd_cuda_failf(err, errlen, "glu gemv: %d rows (1..8)", n);
    if (dt == PGD_DTYPE_BF16) {
        if (act == PGD_ACT_SILU)
            return glu_launch<__nv_bfloat16, PGD_ACT_SILU>(c, x, w, b, n, in, inter, out, err, errlen);
        return glu_launch<__nv_bfloat16, PGD_ACT_GELU_TANH>(c, x, w, b, n, in, inter, out, err, errlen);
    }
    if (dt == PGD_DTYPE_F16) {
        if (act == PGD_ACT_SILU)
            return glu_launch<__half, PGD_ACT_SILU>(c, x, w, b, n, in, inter, out, err, errlen);
        return glu_launch<__half, PGD_ACT_GELU_TANH>(c, x, w, b, n, in, inter, out, err, errlen);
    }
    return pgd_cuda_failf(err, errlen, "glu gemv %s x [%d, %d]: only bf16 and f16 (%s)",
                          act_name(act), n, in, pgd_dtype_name(dt));
}

extern "C" int pgd_cuda_linear_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                       enum pgd_act act, const void *x, const void *w,
                                       const void *b, int n, int in, int inter, void *scratch,
                                       void *out, char *err, size_t errlen)
{
    if (!glu_args_ok(act, n, in, inter, err, errlen))
        return 1;
    if (n == 0)
        return 0;
    if (glu_on() && n <= pgd_cuda__gemv_max_n() &&
        (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16))
        return pgd_cuda_linear_act_mul_gemv(c, dt, act, x, w, b, n, in, inter, out, err, errlen);
    if (!scratch)
        return pgd_cuda_failf(err, errlen, "linear_act_mul %s x [%d, %d] @ w [2 x %d, %d]^T: "
                              "the unfused path needs a scratch [%d, %d]", act_name(act), n, in,
                              inter, in, n, 2 * inter);
    if (pgd_cuda_linear(c, dt, x, w, b, n, in, 2 * inter, dt, scratch, err, errlen))
        return 1;
    return pgd_cuda_act_mul(c, dt, act, scratch, n, inter, out, err, errlen);
}
