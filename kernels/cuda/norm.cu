/* RMSNorm, RMSNorm with the residual add fused in, and the residual add. Sums of squares
 * in float32; a row of width <= 512 is one warp's; a wider row one block's: in 16-byte
 * vectors held in registers (rmsnorm_vec_kernel) when the row is aligned and at most
 * VEC_THREADS x 8 vectors, else element by element (512 threads).
 *
 * Before FP8 layers at decode sizes (pgd_cuda_rmsnorm_fp8x) the vector kernel also leaves
 * the normed rows' per-token FP8 quantization in the streaming GEMV's layout in the
 * scratch (quant_fp8_gemv.cu's fp8_xprep_kernel, from the same rounded values): the
 * GEMVs after it (q/k/v, gate_up) then skip that kernel's launch.
 *
 * Before act-order W4/W8 layers (pgd_cuda_rmsnorm_gather) it also leaves the normed rows
 * gathered through the layer's permutation in the scratch, as the act-order gather
 * (quant_lt.cu's pgd_cuda__qstage_x, quant_wq_gemm.cu's pgd_cuda__wq_gather) would write
 * them: the linears after it skip that gather's launch. */
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
 * the row is first x + res (rounded to T), which is written back to res. When xg is set,
 * also xg [rows, d]: xg[row, k] = out[row, perm[k]], each computed as that element of out
 * is, before out is written (out may alias x). */
template <typename T, bool WARP>
__global__ void rmsnorm_kernel(const T *x, T *res, const T *w, float eps, int64_t rows, int d,
                               T *out, const int32_t *__restrict__ perm, T *__restrict__ xg)
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
    if (xg) {
        /* res's row as the other lanes wrote it; then out's writes after every read */
        if (WARP)
            __syncwarp();
        else
            __syncthreads();
        T *gr = xg + row * d;
        for (int i = lane; i < d; i += lanes) {
            const int k = perm[i];
            gr[i] = from_f<T>(to_f<T>(src[k]) * inv * to_f<T>(w[k]));
        }
        if (WARP)
            __syncwarp();
        else
            __syncthreads();
    }
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
 * What else it leaves (MODE):
 *   NORM_FP8X (T of 2 bytes: a vector is 8 inputs): the row's FP8 quantization for the
 *     streaming GEMV, as fp8_xprep_kernel computes it from out: sx[row] = max |out| / 448
 *     and xh [rows, d] the codes' fp16 values, vector i of the row from vector i of out.
 *   NORM_GATHER (T of 2 bytes): xg [rows, d], xg[row, k] = out[row, perm[k]]: the normed
 *     row goes through shared memory (dynamic, d elements); perm's indices are loaded with
 *     the weight's, before pdl_wait (a permutation is never written by a step). */
enum { NORM_PLAIN, NORM_FP8X, NORM_GATHER };

template <typename T, int VPT, int MODE>
__global__ void __launch_bounds__(VEC_THREADS)
rmsnorm_vec_kernel(const T *x, T *__restrict__ res, const T *__restrict__ w, float eps, int d,
                   T *out, __half *__restrict__ xh, float *__restrict__ sx,
                   const int32_t *__restrict__ perm, T *__restrict__ xg)
{
    static_assert(MODE == NORM_PLAIN || sizeof(T) == 2,
                  "FP8 codes and gathers: 8 inputs a vector");
    constexpr int V = 16 / sizeof(T);
    __shared__ float red[32];
    extern __shared__ uint4 norm_row[];   /* NORM_GATHER: the normed row, [d / V] vectors */
    const int nv = d / V;
    uint4 wv[VPT];
    int4 pv[MODE == NORM_GATHER ? VPT : 1][2];   /* perm[8i, 8i + 8) of vector i */
#pragma unroll
    for (int u = 0; u < VPT; u++) {
        int i = threadIdx.x + u * VEC_THREADS;
        wv[u] = i < nv ? __ldg(reinterpret_cast<const uint4 *>(w) + i) : make_uint4(0, 0, 0, 0);
        if (MODE == NORM_GATHER && i < nv) {
            pv[u][0] = __ldg(reinterpret_cast<const int4 *>(perm) + 2 * i);
            pv[u][1] = __ldg(reinterpret_cast<const int4 *>(perm) + 2 * i + 1);
        }
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
        if (MODE == NORM_GATHER)
            norm_row[i] = xs[u];
    }
    if (MODE == NORM_GATHER) {
        __syncthreads();
        const T *row_t = reinterpret_cast<const T *>(norm_row);
        uint4 *gv = reinterpret_cast<uint4 *>(xg + row * d);
#pragma unroll
        for (int u = 0; u < VPT; u++) {
            const int i = threadIdx.x + u * VEC_THREADS;
            if (i >= nv)
                continue;
            const int idx[8] = { pv[u][0].x, pv[u][0].y, pv[u][0].z, pv[u][0].w,
                                 pv[u][1].x, pv[u][1].y, pv[u][1].z, pv[u][1].w };
            uint4 g;
            T *ge = reinterpret_cast<T *>(&g);
#pragma unroll
            for (int k = 0; k < 8; k++)
                ge[k] = row_t[idx[k]];
            gv[i] = g;
        }
        return;
    }
    if (MODE != NORM_FP8X)
        return;
    const float s = fp8_token_scale(block_max(fp8_held_amax<T, VPT>(xs, nv, VEC_THREADS), red));
    if (threadIdx.x == 0)
        sx[row] = s;
    fp8_held_codes<T, VPT>(xs, nv, VEC_THREADS, s, reinterpret_cast<uint4 *>(xh + row * d));
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
    return pgd_cuda_vecs_a_thread(d / V, VEC_THREADS);
}

/* rmsnorm_vec_kernel<T, VPT, MODE> for vpt 1, 2, 4 or 8 (xh, sx: NORM_FP8X's; perm, xg:
 * NORM_GATHER's, which takes d elements of dynamic shared memory). */
template <typename T, int MODE>
static void rmsnorm_vec_launch(struct pgd_cuda_ctx *c, int vpt, const void *x, void *res,
                               const void *w, float eps, int64_t rows, int d, void *out,
                               __half *xh, float *sx, const int32_t *perm = NULL,
                               void *xg = NULL)
{
    const dim3 grid((unsigned)rows), block(VEC_THREADS);
    const size_t smem = MODE == NORM_GATHER ? (size_t)d * sizeof(T) : 0;
    const T *xp = (const T *)x, *wp = (const T *)w;
    T *rp = (T *)res, *op = (T *)out, *gp = (T *)xg;
    switch (vpt) {
    case 1: pgd_cuda_launch_smem(c, rmsnorm_vec_kernel<T, 1, MODE>, grid, block, smem, xp, rp, wp, eps, d, op, xh, sx, perm, gp); break;
    case 2: pgd_cuda_launch_smem(c, rmsnorm_vec_kernel<T, 2, MODE>, grid, block, smem, xp, rp, wp, eps, d, op, xh, sx, perm, gp); break;
    case 4: pgd_cuda_launch_smem(c, rmsnorm_vec_kernel<T, 4, MODE>, grid, block, smem, xp, rp, wp, eps, d, op, xh, sx, perm, gp); break;
    case 8: pgd_cuda_launch_smem(c, rmsnorm_vec_kernel<T, 8, MODE>, grid, block, smem, xp, rp, wp, eps, d, op, xh, sx, perm, gp); break;
    }
}

/* The norm; with xg set, also out gathered through perm into xg (the vector kernel where
 * perm's groups of 8 are 16-byte aligned as well). */
template <typename T>
static int rmsnorm_launch(struct pgd_cuda_ctx *c, const void *x, void *res, const void *w,
                          float eps, int64_t rows, int d, void *out,
                          const int32_t *perm = NULL, void *xg = NULL)
{
    const int vpt = xg && (uintptr_t)perm % 16 != 0 ? 0 : vec_per_thread<T>(x, res, w, out, d);
    if (d <= 512) {
        int per_block = 8;
        pgd_cuda_launch(c, rmsnorm_kernel<T, true>, (unsigned)((rows + per_block - 1) / per_block),
                        per_block * 32, (const T *)x, (T *)res, (const T *)w, eps, rows, d,
                        (T *)out, perm, (T *)xg);
    } else if (vpt && xg) {
        if constexpr (sizeof(T) == 2)      /* (the act-order linears' dtypes only) */
            rmsnorm_vec_launch<T, NORM_GATHER>(c, vpt, x, res, w, eps, rows, d, out, NULL, NULL,
                                               perm, xg);
    } else if (vpt) {
        rmsnorm_vec_launch<T, NORM_PLAIN>(c, vpt, x, res, w, eps, rows, d, out, NULL, NULL);
    } else {
        pgd_cuda_launch(c, rmsnorm_kernel<T, false>, (unsigned)rows, ROW_THREADS, (const T *)x,
                        (T *)res, (const T *)w, eps, rows, d, (T *)out, perm, (T *)xg);
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
            rmsnorm_vec_launch<__nv_bfloat16, NORM_FP8X>(c, vpt, x, residual, w, eps, rows, d, out,
                                                    xh, sx);
        else
            rmsnorm_vec_launch<__half, NORM_FP8X>(c, vpt, x, residual, w, eps, rows, d, out, xh, sx);
        *prepared = 1;
    }
    PGD_CUDA_LAUNCHED(err, errlen, "%srmsnorm [%lld, %d] %s%s", residual ? "add_" : "",
                      (long long)rows, d, pgd_cuda_dt(dt), *prepared ? " (and x's FP8 codes)" : "");
    return 0;
}

extern "C" int pgd_cuda_rmsnorm_gather(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *residual,
                                       const void *x, const void *w, float eps, int64_t rows,
                                       int d, void *out, const int32_t *perm, int *prepared,
                                       char *err, size_t errlen)
{
    *prepared = 0;
    pgd_cuda_wq_x_forget(c);
    if (rows == 0)
        return 0;
    /* the act-order linears' dtypes, every row in the scratch */
    if (!perm || (dt != PGD_DTYPE_BF16 && dt != PGD_DTYPE_F16) || rows > INT_MAX ||
        (size_t)rows * d * 2 > c->qscratch_bytes) {
        PGD_CUDA_DISPATCH(dt, T, rmsnorm_launch<T>(c, x, residual, w, eps, rows, d, out));
    } else {
        PGD_CUDA_DISPATCH(dt, T, rmsnorm_launch<T>(c, x, residual, w, eps, rows, d, out, perm,
                                                   c->qscratch));
        *prepared = 1;
    }
    PGD_CUDA_LAUNCHED(err, errlen, "%srmsnorm [%lld, %d] %s%s", residual ? "add_" : "",
                      (long long)rows, d, pgd_cuda_dt(dt),
                      *prepared ? " (and x gathered through an act-order permutation)" : "");
    if (*prepared)
        pgd_cuda__wq_xg_note(c, dt, out, perm, (int)rows, d, c->qscratch);
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
