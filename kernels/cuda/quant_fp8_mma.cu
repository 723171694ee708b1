/* The tensor-core GEMV of FP8 layers (decode sizes, sm_89 and later): mma.sync m16n8k32
 * on e4m3 directly, the weights as A (16 output features x 32 inputs) read from the plain
 * [out][in] layout, x's per-token e4m3 codes as B (32 inputs x 8 tokens), float32
 * accumulators; sx * sw scales the sums at the end. Nothing is dequantized.
 *
 * A sum does not depend on the order of its inputs, so each 32-input tile may give A's and
 * B's k slots any inputs, the same on both sides. Lane (g = l / 4, t = l % 4) reads 16
 * contiguous bytes of feature rows g and g + 8 and of each token's x, inputs 64c + 16t ..
 * 64c + 16t + 15 of 64-input chunk c: their words 0 and 1 are its k slots 4t..4t+3 and
 * 16 + 4t..16 + 4t + 3 of the chunk's first tile, words 2 and 3 those of the second. A warp
 * so reads 64 contiguous bytes of each of its 16 rows a chunk.
 *
 * Each chunk's two products start from zero and are added to the float32 totals by the
 * FPU: Hopper's FP8 tensor cores keep fewer accumulator bits than float32, so no sum
 * stays inside them longer than 64 inputs.
 *
 * A block of 8 warps takes one 16-row tile; its warps split the chunks and meet in shared
 * memory. Each warp keeps two groups of F8_UNR chunks of weight loads in flight: the next
 * group is asked for before the current one is multiplied.
 *
 * x's codes come either from global memory (quantized by quant_fp8.cu's kernel) or, for
 * the fused kernels (XB > 0, up to 8 tokens), from shared memory: each block quantizes the
 * n rows of x itself (max|x| per token, then e4m3(x / sx) with the same division and
 * rounding as kernels/cpu/quant.c), while its first weight loads are in flight. That costs
 * each block n * in * 2 bytes of x from L2 but no separate kernel on the decode path.
 *
 * sm_90 has no e4m3 mma.sync of its own: ptxas turns each m16n8k32 e4m3 product into
 * conversions of both operands to fp16 (F2FP) and two fp16 HMMAs, and those conversions,
 * not the bytes, bound the GEMV. So where the codes fit as fp16 (XH: n * (2 in + 16) bytes
 * within XB) the fused kernel keeps x's e4m3 values as fp16 in shared memory (exact: every
 * e4m3 value is an fp16) and multiplies with fp16 m16n8k16 mma.sync, converting only the
 * weights (one cvt per two): a third fewer conversions, and the sums stay in the tensor
 * cores' float32 accumulators across the chunks. With fp16 operands lane (g, t)'s 16 bytes
 * of a row are 8 pairs, inputs 16t + 2r, 16t + 2r + 1 in pair r; product i of a chunk takes
 * pairs 2i and 2i + 1 (k slots 2t, 2t + 1 and 2t + 8, 2t + 9) of the rows and of x. */
#include "kernels/cuda/quant.cuh"
#include <cuda_fp8.h>

#define F8_WARPS 8
#define F8_UNR 4                     /* chunks a group (a lane has two groups in flight) */
#define F8_XB_SMALL 16384            /* the fused kernels' code buffers (bytes) */
#define F8_XB_LARGE 40960

/* Bytes from one token's codes to the next in shared memory: in plus a pad that makes the
 * stride 64 modulo 128, so that the two tokens a quarter warp reads (64 bytes each) land on
 * all 32 banks. */
__host__ __device__ __forceinline__ int fp8_xld(int in) { return in + (in % 128 == 0 ? 64 : 128); }

/* fp16 codes: bytes from one token's values to the next, 16 modulo 128 so that the two
 * tokens a quarter warp reads (4 x 16 bytes at a 32-byte stride each) miss each other's
 * banks. */
__host__ __device__ __forceinline__ int fp8_xld16(int in) { return 2 * in + 16; }

/* d += A (16 x 16, fp16) @ B (16 x 8, fp16), float32 accumulators. */
__device__ __forceinline__ void mma_f16(float *d, uint32_t a0, uint32_t a1, uint32_t a2,
                                        uint32_t a3, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_e4m3(float *d, uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(0.0f));
#else
    (void)a0; (void)a1; (void)a2; (void)a3; (void)b0; (void)b1;
    d[0] = d[1] = d[2] = d[3] = 0.0f;
    __trap();                        /* never launched below sm_89 (the host checks) */
#endif
}

/* The fused kernels' prologue: sx[tok] = max|x[tok, :]| / 448 (1 for an all-zero row) and
 * codes[tok * ld + k] = e4m3(x[tok, k] / sx[tok]) (round to nearest even, saturating) for
 * tok < n <= 8 (XH: that code's value as fp16 at byte tok * ld + 2k); x rows 16-byte
 * aligned, in a multiple of 16. Ends with a block barrier. */
template <typename T, bool XH>
__device__ __forceinline__ void fp8_block_quantize(const T *__restrict__ x, int n, int in, int ld,
                                                   uint8_t *codes, float *sx,
                                                   float (*red)[8])
{
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, vpr = in / 8;
    float am[8];
#pragma unroll
    for (int tok = 0; tok < 8; tok++) {
        am[tok] = 0.0f;
        if (tok < n)
            for (int j = tid; j < vpr; j += F8_WARPS * 32) {
                float f[8];
                unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)tok * in) + j), f);
#pragma unroll
                for (int i = 0; i < 8; i++)
                    am[tok] = fmaxf(am[tok], fabsf(f[i]));
            }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
            am[tok] = fmaxf(am[tok], __shfl_xor_sync(0xffffffffu, am[tok], off));
        if (lane == 0)
            red[warp][tok] = am[tok];
    }
    __syncthreads();
#pragma unroll
    for (int tok = 0; tok < 8; tok++) {
        float a = red[0][tok];
#pragma unroll
        for (int k = 1; k < F8_WARPS; k++)
            a = fmaxf(a, red[k][tok]);
        am[tok] = a > 0.0f ? a / 448.0f : 1.0f;
        if (tid == 0)
            sx[tok] = am[tok];
    }
#pragma unroll
    for (int tok = 0; tok < 8; tok++)
        if (tok < n)
            for (int j = tid; j < vpr; j += F8_WARPS * 32) {
                float f[8];
                unpack16<T>(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)tok * in) + j), f);
                const uint2 q = fp8_e4m3x8(f, am[tok]);
                if (XH) {                /* the codes' values as fp16, 16 bytes */
                    uint32_t p[4];
                    e4m3x4_f16(q.x, p);
                    e4m3x4_f16(q.y, p + 2);
                    *reinterpret_cast<uint4 *>(codes + (size_t)tok * ld + (size_t)j * 16) =
                        make_uint4(p[0], p[1], p[2], p[3]);
                } else {
                    *reinterpret_cast<uint2 *>(codes + (size_t)tok * ld + (size_t)j * 8) = q;
                }
            }
    __syncthreads();
}

/* y[tok, o] = (sum_k xq[tok, k] w[o, k]) * xs[tok] * sw[o] + b[o] for the block's 16
 * features o and tok < n (n <= 8 NT). XB == 0: x is xq [n, in] e4m3 codes and xs [n] their
 * scales; XB > 0 (NT 1): x is T [n, in], quantized by the block into XB bytes of shared
 * memory (n * fp8_xld(in) <= XB), xs unused. in a multiple of 64. */
template <typename T, int NT, int XB, bool XH>
__global__ void __launch_bounds__(F8_WARPS * 32)
fp8_mma_gemv_kernel(const uint8_t *__restrict__ w, const float *__restrict__ sw,
                    const void *__restrict__ x, const float *__restrict__ xs, int n, int in,
                    int out, int chunks_per_warp, const T *__restrict__ b, T *__restrict__ y)
{
    __shared__ float red[F8_WARPS][NT][4][32];
    __shared__ __align__(16) uint8_t xsm[XB > 0 ? XB : 16];
    __shared__ float xred[F8_WARPS][8], xsx[8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int chunks = in / 64, ld = XH ? fp8_xld16(in) : fp8_xld(in);
    const int c0 = warp * chunks_per_warp, c1 = min(chunks, c0 + chunks_per_warp);
    /* rows past out read the last row (their sums are not written) */
    const int r0 = min(blockIdx.x * 16 + g, out - 1), r8 = min(blockIdx.x * 16 + g + 8, out - 1);
    const uint4 *w0 = reinterpret_cast<const uint4 *>(w + (size_t)r0 * in) + t;
    const uint4 *w8 = reinterpret_cast<const uint4 *>(w + (size_t)r8 * in) + t;
    const uint8_t *xq = reinterpret_cast<const uint8_t *>(x);
    pdl_trigger();
    float tot[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        tot[nt][0] = tot[nt][1] = tot[nt][2] = tot[nt][3] = 0.0f;
    /* Weights are never written by a step's kernels: the first group may be in flight
     * before the previous kernel is done (programmatic dependent launch). */
    uint4 a[F8_UNR], a8[F8_UNR];
#pragma unroll
    for (int u = 0; u < F8_UNR; u++)
        if (c0 + u < c1) {
            a[u] = ld_stream(w0 + (size_t)(c0 + u) * 4);
            a8[u] = ld_stream(w8 + (size_t)(c0 + u) * 4);
        }
    pdl_wait();
    if (XB > 0)
        fp8_block_quantize<T, XH>(reinterpret_cast<const T *>(x), n, in, ld, xsm, xsx, xred);
    for (int c = c0; c < c1; c += F8_UNR) {
        uint4 na[F8_UNR], na8[F8_UNR];
#pragma unroll
        for (int u = 0; u < F8_UNR; u++)
            if (c + F8_UNR + u < c1) {
                na[u] = ld_stream(w0 + (size_t)(c + F8_UNR + u) * 4);
                na8[u] = ld_stream(w8 + (size_t)(c + F8_UNR + u) * 4);
            }
#pragma unroll
        for (int u = 0; u < F8_UNR; u++) {
            if (c + u >= c1)
                break;
            if (XH) {
                /* token g's 16 values of this lane's inputs, as 8 fp16 pairs */
                uint4 xa = make_uint4(0u, 0u, 0u, 0u), xb = xa;
                if (g < n) {
                    const uint4 *xp = reinterpret_cast<const uint4 *>(
                        xsm + (size_t)g * ld + ((size_t)(c + u) * 64 + 16 * t) * 2);
                    xa = xp[0];
                    xb = xp[1];
                }
                const uint32_t xr[8] = { xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w };
                const uint32_t wa[4] = { a[u].x, a[u].y, a[u].z, a[u].w };
                const uint32_t wb[4] = { a8[u].x, a8[u].y, a8[u].z, a8[u].w };
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    uint32_t pa[2], pb[2];
                    e4m3x4_f16(wa[i], pa);
                    e4m3x4_f16(wb[i], pb);
                    mma_f16(tot[0], pa[0], pb[0], pa[1], pb[1], xr[2 * i], xr[2 * i + 1]);
                }
            } else {
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    const int tok = nt * 8 + g;
                    uint4 xv = make_uint4(0u, 0u, 0u, 0u);
                    if (tok < n) {
                        if (XB > 0)
                            xv = *reinterpret_cast<const uint4 *>(xsm + (size_t)tok * ld +
                                                                  (size_t)(c + u) * 64 + 16 * t);
                        else
                            xv = __ldg(reinterpret_cast<const uint4 *>(xq + (size_t)tok * in) +
                                       (size_t)(c + u) * 4 + t);
                    }
                    float d0[4], d1[4];
                    mma_e4m3(d0, a[u].x, a8[u].x, a[u].y, a8[u].y, xv.x, xv.y);
                    mma_e4m3(d1, a[u].z, a8[u].z, a[u].w, a8[u].w, xv.z, xv.w);
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        tot[nt][i] += d0[i] + d1[i];
                }
            }
        }
#pragma unroll
        for (int u = 0; u < F8_UNR; u++) {
            a[u] = na[u];
            a8[u] = na8[u];
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            red[warp][nt][i][lane] = tot[nt][i];
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float v = 0.0f;
                for (int k = 0; k < F8_WARPS; k++)
                    v += red[k][nt][i][lane];
                /* accumulator i: feature g (+ 8 for i >= 2), token 2t (+ 1 for odd i) */
                const int o = blockIdx.x * 16 + g + (i >= 2 ? 8 : 0), tok = nt * 8 + 2 * t + (i & 1);
                if (o < out && tok < n) {
                    const float s = XB > 0 ? xsx[tok] : xs[tok];
                    y[(size_t)tok * out + o] =
                        from_f<T>(v * s * __ldg(sw + o) + (b ? to_f<T>(b[o]) : 0.0f));
                }
            }
    }
}

/* Whether the device of the context runs e4m3 mma.sync (compute capability 8.9 or later),
 * asked once per device. */
bool pgd_cuda__fp8_mma_ok(const struct pgd_cuda_ctx *c)
{
    static int cached[16] = { 0 };  /* 0: not asked, 1: no, 2: yes */
    const int d = c->device;
    if (d < 0 || d >= 16)
        return false;
    if (!cached[d]) {
        int major = 0, minor = 0;
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d);
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d);
        cached[d] = major * 10 + minor >= 89 ? 2 : 1;
    }
    return cached[d] == 2;
}

bool pgd_cuda__fp8_mma_fused_ok(const void *x, int n, int in)
{
    return n >= 1 && n <= 8 && in % 64 == 0 && (uintptr_t)x % 16 == 0 &&
           (size_t)n * (size_t)fp8_xld(in) <= F8_XB_LARGE;
}

/* Whether the fused kernel keeps x as fp16 values (n * fp8_xld16(in) within the large
 * buffer; PGD_CUDA_FP8_GEMV_F16=0, read once, keeps the e4m3 codes instead, for measuring). */
static bool fp8_fused_f16(int n, int in)
{
    static int env = -1;
    if (env < 0)
        env = pgd_cuda__qenv_int("PGD_CUDA_FP8_GEMV_F16", 1) != 0;
    return env && (size_t)n * fp8_xld16(in) <= F8_XB_LARGE;
}

template <typename T>
static cudaError_t fp8_mma_launch(struct pgd_cuda_ctx *c, int fused, const uint8_t *w,
                                  const float *sw, const void *x, const float *xs, int rows,
                                  int in, int out, int cpw, const void *b, void *y)
{
    dim3 grid((out + 15) / 16), block(F8_WARPS * 32);
    const T *bt = (const T *)b;
    T *yt = (T *)y;
    if (fused == 2 && fp8_fused_f16(rows, in))
        return (size_t)rows * fp8_xld16(in) <= F8_XB_SMALL
                   ? pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1, F8_XB_SMALL, true>, grid, block,
                                     w, sw, x, xs, rows, in, out, cpw, bt, yt)
                   : pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1, F8_XB_LARGE, true>, grid, block,
                                     w, sw, x, xs, rows, in, out, cpw, bt, yt);
    if (fused)
        return (size_t)rows * fp8_xld(in) <= F8_XB_SMALL
                   ? pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1, F8_XB_SMALL, false>, grid, block,
                                     w, sw, x, xs, rows, in, out, cpw, bt, yt)
                   : pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1, F8_XB_LARGE, false>, grid, block,
                                     w, sw, x, xs, rows, in, out, cpw, bt, yt);
    return rows <= 8 ? pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1, 0, false>, grid, block, w, sw,
                                       x, xs, rows, in, out, cpw, bt, yt)
                     : pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 2, 0, false>, grid, block, w, sw,
                                       x, xs, rows, in, out, cpw, bt, yt);
}

/* y [n, out] from xq [n, in] e4m3 and xs [n] (fused 0: 16 rows a launch), or from x in dt
 * quantized in the blocks (1: as e4m3 codes; 2: as fp16 values where they fit). */
static int fp8_mma_run(struct pgd_cuda_ctx *c, int fused, enum pgd_dtype dt, const void *x,
                       const float *xs, int n, const uint8_t *w, const float *sw, int in, int out,
                       const void *b, void *y, char *err, size_t errlen)
{
    const int chunks = in / 64, cpw = (chunks + F8_WARPS - 1) / F8_WARPS;
    const size_t xel = fused ? (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16 ? 2 : 1) : 1;
    const size_t ysz = 2;
    for (int r0 = 0; r0 < n; r0 += 16) {
        const int rows = n - r0 < 16 ? n - r0 : 16;
        const void *xr = (const char *)x + (size_t)r0 * in * xel;
        const float *xsr = xs ? xs + r0 : NULL;
        void *yr = (char *)y + (size_t)r0 * out * ysz;
        cudaError_t e = dt == PGD_DTYPE_BF16
                            ? fp8_mma_launch<__nv_bfloat16>(c, fused, w, sw, xr, xsr, rows, in,
                                                            out, cpw, b, yr)
                            : fp8_mma_launch<__half>(c, fused, w, sw, xr, xsr, rows, in, out, cpw,
                                                     b, yr);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "fp8 tensor-core GEMV%s x [%d, %d] -> %d (rows "
                                  "%d..%d): %s", fused ? " (x quantized in the blocks)" : "", n,
                                  in, out, r0, r0 + rows - 1, cudaGetErrorString(e));
    }
    return 0;
}

int pgd_cuda__fp8_mma_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const uint8_t *xq,
                           const float *xs, int n, const uint8_t *w, const float *sw, int in,
                           int out, const void *b, void *y, char *err, size_t errlen)
{
    return fp8_mma_run(c, 0, dt, xq, xs, n, w, sw, in, out, b, y, err, errlen);
}

int pgd_cuda__fp8_mma_gemv_fused(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                                 const uint8_t *w, const float *sw, int in, int out,
                                 const void *b, void *y, bool f16, char *err, size_t errlen)
{
    if (!pgd_cuda__fp8_mma_fused_ok(x, n, in))
        return pgd_cuda_failf(err, errlen, "fp8 fused GEMV: x [%d, %d] (up to 8 rows of %d "
                              "bytes of codes, in a multiple of 64, x 16-byte aligned)", n, in,
                              F8_XB_LARGE);
    return fp8_mma_run(c, f16 ? 2 : 1, dt, x, NULL, n, w, sw, in, out, b, y, err, errlen);
}
