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
 * memory. */
#include "kernels/cuda/quant.cuh"

#define F8_WARPS 8
#define F8_UNR 4                     /* chunks a lane has in flight */

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

/* y[tok, o] = (sum_k xq[tok, k] w[o, k]) * xs[tok] * sw[o] + b[o] for the block's 16
 * features o and tok < n (n <= 8 NT). xq [n, in] e4m3 codes; in a multiple of 64. */
template <typename T, int NT>
__global__ void __launch_bounds__(F8_WARPS * 32)
fp8_mma_gemv_kernel(const uint8_t *__restrict__ w, const float *__restrict__ sw,
                    const uint8_t *__restrict__ xq, const float *__restrict__ xs, int n, int in,
                    int out, int chunks_per_warp, const T *__restrict__ b, T *__restrict__ y)
{
    __shared__ float red[F8_WARPS][NT][4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int chunks = in / 64;
    const int c0 = warp * chunks_per_warp, c1 = min(chunks, c0 + chunks_per_warp);
    /* rows past out read the last row (their sums are not written) */
    const int r0 = min(blockIdx.x * 16 + g, out - 1), r8 = min(blockIdx.x * 16 + g + 8, out - 1);
    const uint4 *w0 = reinterpret_cast<const uint4 *>(w + (size_t)r0 * in) + t;
    const uint4 *w8 = reinterpret_cast<const uint4 *>(w + (size_t)r8 * in) + t;
    pdl_trigger();
    float tot[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        tot[nt][0] = tot[nt][1] = tot[nt][2] = tot[nt][3] = 0.0f;
    bool waited = false;
    for (int c = c0; c < c1; c += F8_UNR) {
        uint4 a[F8_UNR], a8[F8_UNR];
#pragma unroll
        for (int u = 0; u < F8_UNR; u++)
            if (c + u < c1) {
                a[u] = ld_stream(w0 + (size_t)(c + u) * 4);
                a8[u] = ld_stream(w8 + (size_t)(c + u) * 4);
            }
        if (!waited) {
            pdl_wait();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < F8_UNR; u++) {
            if (c + u >= c1)
                break;
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int tok = nt * 8 + g;
                uint4 xv = make_uint4(0u, 0u, 0u, 0u);
                if (tok < n)
                    xv = __ldg(reinterpret_cast<const uint4 *>(xq + (size_t)tok * in) +
                               (size_t)(c + u) * 4 + t);
                float d0[4], d1[4];
                mma_e4m3(d0, a[u].x, a8[u].x, a[u].y, a8[u].y, xv.x, xv.y);
                mma_e4m3(d1, a[u].z, a8[u].z, a[u].w, a8[u].w, xv.z, xv.w);
#pragma unroll
                for (int i = 0; i < 4; i++)
                    tot[nt][i] += d0[i] + d1[i];
            }
        }
    }
    if (!waited)
        pdl_wait();
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
                if (o < out && tok < n)
                    y[(size_t)tok * out + o] =
                        from_f<T>(v * xs[tok] * __ldg(sw + o) + (b ? to_f<T>(b[o]) : 0.0f));
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

/* y [n, out] from xq [n, in] e4m3 and xs [n], 16 rows a launch. */
int pgd_cuda__fp8_mma_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const uint8_t *xq,
                           const float *xs, int n, const uint8_t *w, const float *sw, int in,
                           int out, const void *b, void *y, char *err, size_t errlen)
{
    const int chunks = in / 64, cpw = (chunks + F8_WARPS - 1) / F8_WARPS;
    dim3 grid((out + 15) / 16), block(F8_WARPS * 32);
    for (int r0 = 0; r0 < n; r0 += 16) {
        const int rows = n - r0 < 16 ? n - r0 : 16;
        const uint8_t *xr = xq + (size_t)r0 * in;
        const float *xsr = xs + r0;
        cudaError_t e;
        if (dt == PGD_DTYPE_BF16) {
            typedef __nv_bfloat16 T;
            T *yr = (T *)y + (size_t)r0 * out;
            e = rows <= 8 ? pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1>, grid, block, w, sw, xr,
                                            xsr, rows, in, out, cpw, (const T *)b, yr)
                          : pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 2>, grid, block, w, sw, xr,
                                            xsr, rows, in, out, cpw, (const T *)b, yr);
        } else {
            typedef __half T;
            T *yr = (T *)y + (size_t)r0 * out;
            e = rows <= 8 ? pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 1>, grid, block, w, sw, xr,
                                            xsr, rows, in, out, cpw, (const T *)b, yr)
                          : pgd_cuda_launch(c, fp8_mma_gemv_kernel<T, 2>, grid, block, w, sw, xr,
                                            xsr, rows, in, out, cpw, (const T *)b, yr);
        }
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "fp8 tensor-core GEMV x [%d, %d] -> %d (rows "
                                  "%d..%d): %s", n, in, out, r0, r0 + rows - 1,
                                  cudaGetErrorString(e));
    }
    return 0;
}
