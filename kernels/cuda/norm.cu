/* RMSNorm, RMSNorm with the residual add fused in, and the residual add. Sums of squares
 * in float32; a row of width <= 512 is one warp's; a wider row one block's: in 16-byte
 * vectors held in registers (rmsnorm_vec_kernel) when the row is aligned and at most
 * VEC_THREADS x 8 vectors, else element by element (512 threads).
 *
 * Before FP8 layers at decode sizes (pgd_cuda_rmsnorm_fp8x) the vector kernel also leaves
 * the normed rows' per-token FP8 quantization in the streaming GEMV's layout in the
 * scratch (quant_fp8_gemv.cu's fp8_xprep_kernel, from the same rounded values): the
 * GEMVs after it (q/k/v, gate_up) then skip that kernel's launch. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/quant.cuh"

#define ROW_THREADS 512
#define VEC_THREADS 256

__device__ __forceinline__ float warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* Sum over the block (all threads get it); red has 32 floats. */
__device__ __forceinline__ float block_sum(float v, float *red)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();                 /* red may still be read from a previous call */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float s = lane < nw ? red[lane] : 0.0f;
    return warp_sum(s);
}

/* One row per group of `lanes` threads (32: a warp; blockDim.x: the block). When res is set,
 * the row is first x + res (rounded to T), which is written back to res. */
template <typename T, bool WARP>
__global__ void rmsnorm_kernel(const T *x, T *res, const T *w, float eps, int64_t rows, int d,
                               T *out)
{
    __shared__ float red[32];
    pdl_trigger();
    pdl_wait();
    int64_t row;
    int lane, lanes;
    if (WARP) {
        row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
        lane = threadIdx.x % 32;
        lanes = 32;
        if (row >= rows)
            return;
    } else {
        row = blockIdx.x;
        lane = threadIdx.x;
        lanes = blockDim.x;
    }
    const T *xr = x + row * d;
    T *outr = out + row * d;
    T *rr = res ? res + row * d : NULL;
    float ss = 0.0f;
    for (int i = lane; i < d; i += lanes) {
        float v = to_f<T>(xr[i]);
        if (rr) {
            T s = from_f<T>(to_f<T>(rr[i]) + v);
            rr[i] = s;
            v = to_f<T>(s);
        }
        ss += v * v;
    }
    ss = WARP ? warp_sum(ss) : block_sum(ss, red);
    float inv = rsqrtf(ss / (float)d + eps);
    const T *src = rr ? rr : xr;
    for (int i = lane; i < d; i += lanes)
        outr[i] = from_f<T>(to_f<T>(src[i]) * inv * to_f<T>(w[i]));
}

/* The block's largest value (all threads get it); red has 32 floats. */
__device__ __forceinline__ float block_max(float v, float *red)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int off = 16; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    __syncthreads();                 /* red may still be read from a previous call */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float m = lane < nw ? red[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1)
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    return m;
}

/* One row a block, each thread VPT 16-byte vectors of it kept in registers: the weight's
 * vectors are loaded before pdl_wait (weights are never written by a step), then the row
 * (and the residual) in one round of loads, the residual sum written back, one block-wide
 * sum of squares, the normalized row written. x and out may alias (each element is read and
 * written by the same thread); res is another buffer. Same rounding as rmsnorm_kernel.
 * FP8X (T of 2 bytes: a vector is 8 inputs): also the row's FP8 quantization for the
 * streaming GEMV, as fp8_xprep_kernel computes it from out: sx[row] = max |out| / 448 and
 * xh [rows, d] the codes' fp16 values, vector i of the row from vector i of out. */
template <typename T, int VPT, bool FP8X>
__global__ void __launch_bounds__(VEC_THREADS)
rmsnorm_vec_kernel(const T *x, T *__restrict__ res, const T *__restrict__ w, float eps, int d,
                   T *out, __half *__restrict__ xh, float *__restrict__ sx)
{
    static_assert(!FP8X || sizeof(T) == 2, "the FP8 codes: 8 inputs a vector");
    constexpr int V = 16 / sizeof(T);
    __shared__ float red[32];
    const int nv = d / V;
    uint4 wv[VPT];
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        int i = threadIdx.x + u * VEC_THREADS;
        wv[u] = i < nv ? __ldg(reinterpret_cast<const uint4 *>(w) + i) : make_uint4(0, 0, 0, 0);
    }
    pdl_trigger();
    pdl_wait();
    const int64_t row = blockIdx.x;
    const uint4 *xv = reinterpret_cast<const uint4 *>(x + row * d);
    uint4 *rv = res ? reinterpret_cast<uint4 *>(res + row * d) : NULL;
    uint4 *ov = reinterpret_cast<uint4 *>(out + row * d);
    uint4 xs[VPT], rs[VPT];
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        int i = threadIdx.x + u * VEC_THREADS;
        if (i < nv) {
            xs[u] = xv[i];
            if (rv)
                rs[u] = rv[i];
        }
    }
    float ss = 0.0f;
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        int i = threadIdx.x + u * VEC_THREADS;
        if (i >= nv)
            continue;
        T *e = reinterpret_cast<T *>(&xs[u]);
        if (rv) {
            const T *r = reinterpret_cast<const T *>(&rs[u]);
#pragma unroll
            for (int k = 0; k < V; k++)
                e[k] = from_f<T>(to_f<T>(r[k]) + to_f<T>(e[k]));
            rv[i] = xs[u];
        }
#pragma unroll
        for (int k = 0; k < V; k++) {
            float v = to_f<T>(e[k]);
            ss += v * v;
        }
    }
    ss = block_sum(ss, red);
    const float inv = rsqrtf(ss / (float)d + eps);
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        int i = threadIdx.x + u * VEC_THREADS;
        if (i >= nv)
            continue;
        T *e = reinterpret_cast<T *>(&xs[u]);
        const T *wk = reinterpret_cast<const T *>(&wv[u]);
#pragma unroll
        for (int k = 0; k < V; k++)
            e[k] = from_f<T>(to_f<T>(e[k]) * inv * to_f<T>(wk[k]));
        ov[i] = xs[u];
    }
    if (!FP8X)
        return;
    float amax = 0.0f;
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        const int i = threadIdx.x + u * VEC_THREADS;
        if (i < nv) {
            float f[8];
            unpack16<T>(xs[u], f);
            amax = fp8_amax8(f, amax);
        }
    }
    const float s = fp8_token_scale(block_max(amax, red));
    if (threadIdx.x == 0)
        sx[row] = s;
    uint4 *xv8 = reinterpret_cast<uint4 *>(xh + row * d);
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        const int i = threadIdx.x + u * VEC_THREADS;
        if (i < nv) {
            float f[8];
            unpack16<T>(xs[u], f);
            xv8[i] = fp8_x8_f16_0213(f, s);
        }
    }
}

/* Vectors a thread for rmsnorm_vec_kernel (1, 2, 4 or 8), or 0 where it does not serve:
 * rows of 16-byte vectors at 16-byte aligned addresses, at most VEC_THREADS x 8 vectors. */
template <typename T>
static int vec_per_thread(const void *x, const void *res, const void *w, const void *out, int d)
{
    constexpr int V = 16 / sizeof(T);
    uintptr_t a = (uintptr_t)x | (uintptr_t)res | (uintptr_t)w | (uintptr_t)out;
    if (d % V || a % 16)
        return 0;
    int per = (d / V + VEC_THREADS - 1) / VEC_THREADS;
    return per <= 1 ? 1 : per <= 2 ? 2 : per <= 4 ? 4 : per <= 8 ? 8 : 0;
}

/* rmsnorm_vec_kernel<T, VPT, FP8X> for vpt 1, 2, 4 or 8. */
template <typename T, bool FP8X>
static void rmsnorm_vec_launch(struct pgd_cuda_ctx *c, int vpt, const void *x, void *res,
                               const void *w, float eps, int64_t rows, int d, void *out,
                               __half *xh, float *sx)
{
    const unsigned grid = (unsigned)rows;
    const T *xp = (const T *)x, *wp = (const T *)w;
    T *rp = (T *)res, *op = (T *)out;
    switch (vpt) {
    case 1: pgd_cuda_launch(c, rmsnorm_vec_kernel<T, 1, FP8X>, grid, VEC_THREADS, xp, rp, wp, eps, d, op, xh, sx); break;
    case 2: pgd_cuda_launch(c, rmsnorm_vec_kernel<T, 2, FP8X>, grid, VEC_THREADS, xp, rp, wp, eps, d, op, xh, sx); break;
    case 4: pgd_cuda_launch(c, rmsnorm_vec_kernel<T, 4, FP8X>, grid, VEC_THREADS, xp, rp, wp, eps, d, op, xh, sx); break;
    case 8: pgd_cuda_launch(c, rmsnorm_vec_kernel<T, 8, FP8X>, grid, VEC_THREADS, xp, rp, wp, eps, d, op, xh, sx); break;
    }
}

template <typename T>
static int rmsnorm_launch(struct pgd_cuda_ctx *c, const void *x, void *res, const void *w,
                          float eps, int64_t rows, int d, void *out)
{
    if (d <= 512) {
        int per_block = 8;
        pgd_cuda_launch(c, rmsnorm_kernel<T, true>, (unsigned)((rows + per_block - 1) / per_block),
                        per_block * 32, (const T *)x, (T *)res, (const T *)w, eps, rows, d,
                        (T *)out);
    } else if (int vpt = vec_per_thread<T>(x, res, w, out, d)) {
        rmsnorm_vec_launch<T, false>(c, vpt, x, res, w, eps, rows, d, out, NULL, NULL);
    } else {
        pgd_cuda_launch(c, rmsnorm_kernel<T, false>, (unsigned)rows, ROW_THREADS, (const T *)x,
                        (T *)res, (const T *)w, eps, rows, d, (T *)out);
    }
    return 0;
}

extern "C" int pgd_cuda_rmsnorm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                const void *w, float eps, int64_t rows, int d, void *out,
                                char *err, size_t errlen)
{
    if (rows == 0)
        return 0;
    PGD_CUDA_DISPATCH(dt, T, rmsnorm_launch<T>(c, x, NULL, w, eps, rows, d, out));
    PGD_CUDA_LAUNCHED(err, errlen, "rmsnorm [%lld, %d] %s", (long long)rows, d, pgd_cuda_dt(dt));
    return 0;
}

extern "C" int pgd_cuda_add_rmsnorm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *residual,
                                    const void *delta, const void *w, float eps, int64_t rows,
                                    int d, void *out, char *err, size_t errlen)
{
    if (rows == 0)
        return 0;
    PGD_CUDA_DISPATCH(dt, T, rmsnorm_launch<T>(c, delta, residual, w, eps, rows, d, out));
    PGD_CUDA_LAUNCHED(err, errlen, "add_rmsnorm [%lld, %d] %s", (long long)rows, d,
                      pgd_cuda_dt(dt));
    return 0;
}

extern "C" int pgd_cuda_rmsnorm_fp8x(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *residual,
                                    const void *x, const void *w, float eps, int64_t rows, int d,
                                    void *out, int *prepared, char *err, size_t errlen)
{
    *prepared = 0;
    if (rows == 0)
        return 0;
    __half *xh;
    float *sx;
    const int vpt = dt == PGD_DTYPE_BF16 ? vec_per_thread<__nv_bfloat16>(x, residual, w, out, d)
                    : dt == PGD_DTYPE_F16 ? vec_per_thread<__half>(x, residual, w, out, d)
                                          : 0;
    /* one launch of the streaming GEMV's rows (the scratch holds 8) */
    if (d <= 512 || !vpt || rows > 8 || !pgd_cuda__fp8_stream_takes(c, (int)rows, d) ||
        !pgd_cuda__fp8_stream_scratch(c, d, &xh, &sx)) {
        PGD_CUDA_DISPATCH(dt, T, rmsnorm_launch<T>(c, x, residual, w, eps, rows, d, out));
    } else {
        pgd_cuda__fp8_share_note(c, 0, NULL, 0, 0, dt);   /* the scratch is written */
        if (dt == PGD_DTYPE_BF16)
            rmsnorm_vec_launch<__nv_bfloat16, true>(c, vpt, x, residual, w, eps, rows, d, out,
                                                    xh, sx);
        else
            rmsnorm_vec_launch<__half, true>(c, vpt, x, residual, w, eps, rows, d, out, xh, sx);
        *prepared = 1;
    }
    PGD_CUDA_LAUNCHED(err, errlen, "%srmsnorm [%lld, %d] %s%s", residual ? "add_" : "",
                      (long long)rows, d, pgd_cuda_dt(dt), *prepared ? " (and x's FP8 codes)" : "");
    return 0;
}

template <typename T>
__global__ void add_kernel(T *x, const T *delta, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = from_f<T>(to_f<T>(x[i]) + to_f<T>(delta[i]));
}

extern "C" int pgd_cuda_add(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *x, const void *delta,
                            int64_t n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    PGD_CUDA_DISPATCH(dt, T, add_kernel<T><<<pgd_cuda_blocks(n, 256), 256, 0, c->stream>>>(
                                 (T *)x, (const T *)delta, n));
    PGD_CUDA_LAUNCHED(err, errlen, "add [%lld] %s", (long long)n, pgd_cuda_dt(dt));
    return 0;
}
