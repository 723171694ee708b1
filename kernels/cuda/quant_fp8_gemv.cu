/* The streaming decode GEMV of FP8 layers (n <= 8 tokens, in a multiple of 64; any device
 * with fp16 mma.sync, sm_80 and later): x quantized ONCE per token by a small kernel, then
 * the e4m3 weights read once at the copy rate, on fp16 tensor cores.
 *
 * x: fp8_xprep_kernel computes each token's scale sx = max|x| / 448 (1 for an all-zero row)
 * and the e4m3 code of x / sx (the division and rounding of kernels/cpu/quant.c's
 * pgd_cpu_fp8_quantize_rows), and writes the code's exact value as fp16 (every e4m3 value
 * is an fp16) into the scratch, xh [n, in], with each group of 4 inputs stored in the order
 * 0, 2, 1, 3 (the order the weights' decoding below yields them in).
 *
 * The weights: the plain [out][in] e4m3 layout (the one cuBLASLt's FP8 GEMM reads too: no
 * second copy). A 32-bit word of 4 codes b0..b3 becomes two fp16 pairs with integer
 * operations alone, no conversion instructions: (b0, b2) = (w << 7 & 0x3F803F80) |
 * (w << 8 & 0x80008000) and (b1, b3) = (w >> 1 & 0x3F803F80) | (w & 0x80008000): each
 * code's 7 magnitude bits land in the fp16's exponent low bits and top mantissa bits and
 * its sign in the sign bit, which is the fp16 of value * 2^-8 exactly (normal codes: the
 * exponent bias differs by 8; subnormal codes m * 2^-9 become fp16 subnormals m * 2^-17).
 * The 2^8 is given back with the scales at the end. (0x7f / 0xff, e4m3's NaN, decode as
 * +-480, as the other GEMVs; the encoders never write them for finite input.)
 *
 * The product: mma.sync m16n8k16 (fp16 in, float32 accumulators held across the whole
 * row): lane (g = l / 4, t = l % 4) reads 16 contiguous bytes of feature rows g and g + 8 at
 * byte 16t of each 64-input chunk (a warp: 64 contiguous bytes of each of 16 rows), word i
 * of them feeding product i's k slots 2t, 2t + 1 (codes 0, 2) and 2t + 8, 2t + 9 (codes 1,
 * 3); x's token g gives the same inputs from xh (two 16-byte loads, L1-resident: every block
 * reads the same x). Each product of an e4m3 value by an e4m3 value * 2^-8 is exact in
 * float32, so the sums are float32 sums of the reference's products in another order.
 *
 * The loop has the W4 streaming GEMV's shape (quant_wq_sgemv.cu; see the kernel's comment):
 * a warp owns one tile and a slice of its row, the host picks the split that puts every
 * block on the chip at once, two register buffers of weights are in flight a lane (both
 * asked for before the previous kernel ends: programmatic dependent launch, weights are
 * never written by a step), and two chains of mma.sync overlap.
 *
 * A gate_up layer with its gated activation (pgd_cuda_fp8_linear_act_mul): a block's rows
 * g are gate features o0 + g and its rows g + 8 the up features inter + o0 + g, so each
 * lane ends with the gate and up sums of the same feature and token and writes
 * act(gate) * up, both rounded to the dtype first (as the linear followed by act_mul
 * rounds them): one launch, and the [n, 2 inter] gate_up output is never written. */
#include "kernels/cuda/quant.cuh"
#include "kernels/cuda/act.cuh"
#include <cuda_fp8.h>

#define FG_WARPS 8                   /* warps a block */
#define FG_UNR 4                     /* chunks a lane's buffer holds (16 features a tile) */
#define FG_BLOCKS_SM 2               /* blocks an SM holds (registers: __launch_bounds__) */
#define FG_MAX_N 8                   /* tokens a launch: the mma's 8 columns */

/* ---- x: per-token scale and fp16 code values --------------------------------------------- */
/* Row blockIdx.x of x [rows, in] (in a multiple of 8; vec: x 16-byte aligned): sx[row] and
 * xh[row, :] as described above. 256 threads; the second read of the row comes from L1. */
template <typename T>
__global__ void __launch_bounds__(256)
fp8_xprep_kernel(const T *__restrict__ x, int in, int vec, __half *__restrict__ xh,
                 float *__restrict__ sx)
{
    __shared__ float red[8];
    pdl_trigger();
    pdl_wait();
    const int r = blockIdx.x, vpr = in / 8;
    const T *xr = x + (size_t)r * in;
    const float s = fp8_token_scale(fp8_row_amax_256<T>(xr, in, vec != 0, red));
    if (threadIdx.x == 0)
        sx[r] = s;
    uint4 *dst = reinterpret_cast<uint4 *>(xh + (size_t)r * in);
    for (int j = threadIdx.x; j < vpr; j += 256) {
        float f[8];
        fp8_x8<T>(xr, j, vec != 0, f);
        dst[j] = fp8_x8_f16_0213(f, s);
    }
}

/* Row blockIdx.x of gate_up [rows, 2 inter] (16-byte aligned, inter a multiple of 8 and at
 * most 256 VPT vectors): out [rows, inter] = act(gate) * up rounded to T, each element as
 * act.cu's act_mul computes it, and the row's quantization for the streaming GEMV from
 * those rounded values, as fp8_xprep_kernel would compute it from out (the same amax: a
 * maximum in any order; the same codes): the down projection after it skips that launch.
 * Thread t holds vectors t, t + 256, ... of the row in registers. 256 threads. */
template <typename T, int ACT, int VPT>
__global__ void __launch_bounds__(256)
fp8_act_mul_xprep_kernel(const T *__restrict__ gate_up, int inter, T *__restrict__ out,
                         __half *__restrict__ xh, float *__restrict__ sx)
{
    static_assert(sizeof(T) == 2, "8 inputs a 16-byte vector");
    __shared__ float red[8];
    pdl_trigger();
    pdl_wait();
    const int r = blockIdx.x, nv = inter / 8;
    const uint4 *gv = reinterpret_cast<const uint4 *>(gate_up + (size_t)r * 2 * inter);
    const uint4 *uv = gv + nv;
    uint4 *ov = reinterpret_cast<uint4 *>(out + (size_t)r * inter);
    uint4 y[VPT];
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * 256;
        if (i >= nv)
            continue;
        const uint4 g4 = gv[i], u4 = uv[i];
        const T *g = reinterpret_cast<const T *>(&g4), *u = reinterpret_cast<const T *>(&u4);
        T *e = reinterpret_cast<T *>(&y[k]);
#pragma unroll
        for (int j = 0; j < 8; j++)
            e[j] = from_f<T>(act_mul_f<ACT>(to_f<T>(g[j]), to_f<T>(u[j])));
        ov[i] = y[k];
    }
    const float s = fp8_token_scale(fp8_block_amax_256(fp8_held_amax<T, VPT>(y, nv, 256), red));
    if (threadIdx.x == 0)
        sx[r] = s;
    fp8_held_codes<T, VPT>(y, nv, 256, s, reinterpret_cast<uint4 *>(xh + (size_t)r * inter));
}

/* ---- the GEMV ------------------------------------------------------------------------------ */
/* An output: the float32 sum v (of the products scaled by 2^-8) times s = 2^8 sx[token],
 * times the feature's scale, plus its bias (one expression for both epilogues, so the
 * gated one rounds gate and up exactly as the plain one rounds y). */
__device__ __forceinline__ float fg_out(float v, float s, float swo, float bias)
{
    return v * s * swo + bias;
}

/* Up to 3 layers of one x in one launch (SEGS; q, k and v): layer s takes the blocks
 * first[s] .. first[s + 1] - 1 with its own weights, scales, bias, output and features;
 * unused layers have no blocks (quant.cuh's stream_layer_of, stream_pick). */
struct fg_segs {
    const uint8_t *w[3];
    const float *sw[3];
    const void *b[3];
    void *y[3];
    int out[3];
    int first[4];
};

/* A lane's weights of UNR chunks: its 16 bytes of row g (a) and of row g + 8 (a8; R16 only:
 * else row g feeds both halves of A) at chunk j0 + u of the warp's run, for j0 + u < nch (a
 * whole batch: no test a chunk; the rest zeros). w0 / w8: the lane's bytes of the run's
 * first chunk; a chunk is 4 uint4 further along a row. */
template <bool R16, int UNR>
__device__ __forceinline__ void fg_load(uint4 (&a)[UNR], uint4 (&a8)[UNR], const uint4 *w0,
                                        const uint4 *w8, int j0, int nch)
{
    if (j0 + UNR <= nch) {
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            a[u] = ld_stream(w0 + (size_t)(j0 + u) * 4);
            if (R16)
                a8[u] = ld_stream(w8 + (size_t)(j0 + u) * 4);
        }
    } else {
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const bool in = j0 + u < nch;
            a[u] = in ? ld_stream(w0 + (size_t)(j0 + u) * 4) : make_uint4(0u, 0u, 0u, 0u);
            if (R16)
                a8[u] = in ? ld_stream(w8 + (size_t)(j0 + u) * 4) : make_uint4(0u, 0u, 0u, 0u);
        }
    }
}

/* Chunks c .. c + P - 1 (a[0 .. P), a8[0 .. P)) of the warp's run, chunk j into acc[j % 2]
 * (c even when P is 2): the chunks' words in turn, so that the two chains of four dependent
 * mma.sync overlap (the compiler keeps one chain in one piece when left to itself). Which
 * accumulator a chunk joins depends on its place in the run alone, so a layer's sums come
 * out the same whatever the batch size UNR (the gated and the plain launch agree to the
 * bit). xp: the lane's x row (token g, or n - 1 past n) at input 16t; chunk c's 16 values
 * are xp[8c], xp[8c + 1]. */
template <bool R16, int P>
__device__ __forceinline__ void fg_chunks(float (&acc)[2][4], const uint4 *a, const uint4 *a8,
                                          const uint4 *__restrict__ xp, int c)
{
    uint32_t xr[P][8];
#pragma unroll
    for (int p = 0; p < P; p++) {
        const uint4 *q = xp + (size_t)(c + p) * 8;
        const uint4 x0 = __ldg(q), x1 = __ldg(q + 1);
        xr[p][0] = x0.x; xr[p][1] = x0.y; xr[p][2] = x0.z; xr[p][3] = x0.w;
        xr[p][4] = x1.x; xr[p][5] = x1.y; xr[p][6] = x1.z; xr[p][7] = x1.w;
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int p = 0; p < P; p++) {
            const uint4 &va = a[p], &vb = R16 ? a8[p] : a[p];
            const uint32_t wa = i == 0 ? va.x : i == 1 ? va.y : i == 2 ? va.z : va.w;
            const uint32_t wb = i == 0 ? vb.x : i == 1 ? vb.y : i == 2 ? vb.z : vb.w;
            fg_mma(acc[(c + p) & 1], e4m3_pair02(wa), e4m3_pair02(wb), e4m3_pair13(wa),
                   e4m3_pair13(wb), xr[p][2 * i], xr[p][2 * i + 1]);
        }
}

/* The cnt chunks of a batch (all UNR when cnt >= UNR), its first chunk c: a whole batch two
 * chunks at a time with no branch a chunk; only a warp's last, partial batch tests each. */
template <bool R16, int UNR>
__device__ __forceinline__ void fg_batch(float (&acc)[2][4], const uint4 (&a)[UNR],
                                         const uint4 (&a8)[UNR], const uint4 *__restrict__ xp,
                                         int c, int cnt)
{
    static_assert(UNR % 2 == 0, "a batch holds whole pairs of chunks");
    if (cnt >= UNR) {
#pragma unroll
        for (int u = 0; u < UNR; u += 2)
            fg_chunks<R16, 2>(acc, &a[u], &a8[u], xp, c + u);
    } else {
#pragma unroll
        for (int u = 0; u < UNR; u++)
            if (u < cnt)
                fg_chunks<R16, 1>(acc, &a[u], &a8[u], xp, c + u);
    }
}

/* y[tok, o] = (sum_k xh[tok, k] w[o, k] 2^-8) 2^8 sx[tok] sw[o] + b[o] for tok < n <= 8 (SEGS:
 * w, sw, b, y and out are those of the block's layer in segs, the block's index within that
 * layer's). A tile is 16 features (R16: rows g and g + 8 of the products) or 8 (row g in
 * both halves of A, the second half's sums unused: for layers of few features, e.g. a k or v
 * projection, whose 16-feature tiles would leave SMs idle; twice the chunks in flight a
 * lane). GLU >= 0 (a PGD_ACT_*; R16): out = inter = the layer's features / 2, y [n, inter] =
 * act(gate) * up, a tile 8 features as described above.
 *
 * Shaped as quant_wq_sgemv.cu's W4 GEMV: warp w of a block takes tile w / ks of the block's
 * tpb = warps / ks and its slice w % ks of the row's 64-input chunks (kpu a slice); the host
 * picks ks and tpb (stream_plan.h: at one row the largest ks that puts every block of 8
 * warps on the chip at once, from 2 rows the split that balances the SMs). Each lane keeps two
 * buffers of UNR chunks in flight (both asked for before the previous kernel ends:
 * programmatic dependent launch, weights are never written by a step), each refilled as soon
 * as it has been computed; the slices of a tile meet once at the end in shared memory, added
 * in slice order by the tile's first warp (deterministic, one launch). Even and odd chunks
 * sum into their own accumulators (two chains of mma.sync that overlap), added at the end. */
template <typename T, bool R16, int GLU, bool SEGS>
__global__ void __launch_bounds__(FG_WARPS * 32, FG_BLOCKS_SM)
fp8_gemv_stream_kernel(const uint8_t *__restrict__ w, const float *__restrict__ sw,
                       const __half *__restrict__ xh, const float *__restrict__ sx, int n,
                       int in, int out, int ks, int kpu, const T *__restrict__ b,
                       T *__restrict__ y, const fg_segs segs)
{
    static_assert(GLU < 0 || R16, "the gated activation pairs rows g and g + 8");
    static_assert(!SEGS || GLU < 0, "several layers: plain linears");
    int blk = (int)blockIdx.x;
    if (SEGS) {
        const int sg = stream_layer_of(segs.first[1], segs.first[2], blk);
        w = stream_pick(sg, segs.w);
        sw = stream_pick(sg, segs.sw);
        b = (const T *)stream_pick(sg, segs.b);
        y = (T *)stream_pick(sg, segs.y);
        out = stream_pick(sg, segs.out);
    }
    constexpr int UNR = R16 ? FG_UNR : 3 * FG_UNR / 2, ROWS = R16 && GLU < 0 ? 16 : 8;
    __shared__ float red[FG_WARPS][4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const int tl = warp / ks, slice = warp - tl * ks, tpb = (int)(blockDim.x / 32) / ks;
    const int tile = blk * tpb + tl, tiles = (out + ROWS - 1) / ROWS;
    const int chunks = in / 64, kbeg = slice * kpu;
    const int nch = tile < tiles ? max(0, min(chunks, kbeg + kpu) - kbeg) : 0;
    /* rows past out read the last row (their sums are not written) */
    const int r0 = min(min(tile, tiles - 1) * ROWS + g, out - 1);
    const int r8 = GLU >= 0 ? out + r0
                   : R16    ? min(min(tile, tiles - 1) * ROWS + g + 8, out - 1)
                            : r0;
    const uint4 *w0 = reinterpret_cast<const uint4 *>(w + (size_t)r0 * in) + t + (size_t)kbeg * 4;
    const uint4 *w8 = reinterpret_cast<const uint4 *>(w + (size_t)r8 * in) + t + (size_t)kbeg * 4;
    pdl_trigger();
    uint4 va[UNR], va8[UNR], vb[UNR], vb8[UNR];
    fg_load<R16, UNR>(va, va8, w0, w8, 0, nch);
    fg_load<R16, UNR>(vb, vb8, w0, w8, UNR, nch);
    pdl_wait();
    /* token g's x (row n - 1 past n: an mma's columns are independent, and a column past n
     * is never stored), at this lane's inputs of the run's first chunk */
    const uint4 *xp = reinterpret_cast<const uint4 *>(xh + (size_t)min(g, n - 1) * in) + 2 * t +
                      (size_t)kbeg * 8;
    float acc[2][4] = { { 0.0f, 0.0f, 0.0f, 0.0f }, { 0.0f, 0.0f, 0.0f, 0.0f } };
    const int nb = (nch + UNR - 1) / UNR;
    for (int bi = 0; bi < nb; bi += 2) {
        fg_batch<R16, UNR>(acc, va, va8, xp, bi * UNR, nch - bi * UNR);
        if (bi + 2 < nb)
            fg_load<R16, UNR>(va, va8, w0, w8, (bi + 2) * UNR, nch);
        if (bi + 1 < nb)
            fg_batch<R16, UNR>(acc, vb, vb8, xp, (bi + 1) * UNR, nch - (bi + 1) * UNR);
        if (bi + 3 < nb)
            fg_load<R16, UNR>(vb, vb8, w0, w8, (bi + 3) * UNR, nch);
    }
    float v[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        v[i] = acc[0][i] + acc[1][i];
    if (ks > 1) {                    /* the tile's slices meet: slice 0 adds them in order */
#pragma unroll
        for (int i = 0; i < 4; i++)
            red[warp][i][lane] = v[i];
        __syncthreads();
        if (slice != 0)
            return;
        for (int s = 1; s < ks; s++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                v[i] += red[warp + s][i][lane];
    }
    if (tile >= tiles)
        return;
    if (GLU >= 0) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int o = tile * ROWS + g, tok = 2 * t + i;
            if (o < out && tok < n) {
                const float s = 256.0f * __ldg(sx + tok);
                const T gate = from_f<T>(fg_out(v[i], s, __ldg(sw + o), b ? to_f<T>(b[o]) : 0.0f));
                const T up = from_f<T>(fg_out(v[i + 2], s, __ldg(sw + out + o),
                                              b ? to_f<T>(b[out + o]) : 0.0f));
                y[(size_t)tok * out + o] =
                    from_f<T>(act_mul_f<GLU < 0 ? 0 : GLU>(to_f<T>(gate), to_f<T>(up)));
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < (R16 ? 4 : 2); i++) {
            /* accumulator i: feature g (+ 8 for i >= 2), token 2t (+ 1 for odd i) */
            const int o = tile * ROWS + g + (i >= 2 ? 8 : 0), tok = 2 * t + (i & 1);
            if (o < out && tok < n)
                y[(size_t)tok * out + o] = from_f<T>(fg_out(v[i], 256.0f * __ldg(sx + tok),
                                                            __ldg(sw + o),
                                                            b ? to_f<T>(b[o]) : 0.0f));
        }
    }
}

/* ---- host ---------------------------------------------------------------------------------- */
extern "C" void pgd_cuda_fp8_share_x(struct pgd_cuda_ctx *c, int on)
{
    c->fp8_share = on != 0;
    c->fp8_share_x = NULL;           /* what the norm left (fp8_ready_x) stays */
    c->fp8_share_tag = 0;
}

extern "C" void pgd_cuda_fp8_x_ready(struct pgd_cuda_ctx *c, const void *x, int n, int in,
                                     enum pgd_dtype dt)
{
    c->fp8_ready_x = x;
    c->fp8_ready_n = n;
    c->fp8_ready_in = in;
    c->fp8_ready_dt = (int)dt;
}

bool pgd_cuda__fp8_stream_ok(const struct pgd_cuda_ctx *c, int in)
{
    static int cached[16] = { 0 };  /* 0: not asked, 1: no, 2: yes */
    const int d = c->device;
    if (in % 64 != 0 || d < 0 || d >= 16)
        return false;
    if (!cached[d]) {
        int major = 0;
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d);
        cached[d] = major >= 8 ? 2 : 1;
    }
    return cached[d] == 2;
}

cudaError_t pgd_cuda__fp8_xprep(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                                int in, __half *xh, float *sx)
{
    const int vec = (uintptr_t)x % 16 == 0;
    if (dt == PGD_DTYPE_BF16)
        return pgd_cuda_launch(c, fp8_xprep_kernel<__nv_bfloat16>, dim3(n), dim3(256),
                               (const __nv_bfloat16 *)x, in, vec, xh, sx);
    return pgd_cuda_launch(c, fp8_xprep_kernel<__half>, dim3(n), dim3(256), (const __half *)x, in,
                           vec, xh, sx);
}

/* Whether act_mul before FP8 layers leaves its output's quantization for the streaming
 * GEMV (pgd_cuda_fp8_act_mul_x): PGD_CUDA_FP8_ACT_X=1; off by default until it is measured
 * (read once). */
static bool fg_act_x_on(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_FP8_ACT_X", 0) != 0;
    return v != 0;
}

template <typename T, int ACT>
static cudaError_t fg_act_x_launch(struct pgd_cuda_ctx *c, int vpt, const void *gate_up, int n,
                                   int inter, void *out, __half *xh, float *sx)
{
    const T *g = (const T *)gate_up;
    T *o = (T *)out;
    switch (vpt) {
    case 1: return pgd_cuda_launch(c, fp8_act_mul_xprep_kernel<T, ACT, 1>, dim3(n), dim3(256), g, inter, o, xh, sx);
    case 2: return pgd_cuda_launch(c, fp8_act_mul_xprep_kernel<T, ACT, 2>, dim3(n), dim3(256), g, inter, o, xh, sx);
    case 4: return pgd_cuda_launch(c, fp8_act_mul_xprep_kernel<T, ACT, 4>, dim3(n), dim3(256), g, inter, o, xh, sx);
    default: return pgd_cuda_launch(c, fp8_act_mul_xprep_kernel<T, ACT, 8>, dim3(n), dim3(256), g, inter, o, xh, sx);
    }
}

extern "C" int pgd_cuda_fp8_act_mul_x(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                      enum pgd_act act, const void *gate_up, int n, int inter,
                                      void *out, int *prepared, char *err, size_t errlen)
{
    *prepared = 0;
    const int vpt = pgd_cuda_vecs_a_thread(inter / 8, 256);
    __half *xh;
    float *sx;
    if (!fg_act_x_on() || n < 1 || n > FG_MAX_N || !vpt || inter % 8 != 0 ||
        (dt != PGD_DTYPE_BF16 && dt != PGD_DTYPE_F16) ||
        (act != PGD_ACT_SILU && act != PGD_ACT_GELU_TANH) ||
        ((uintptr_t)gate_up | (uintptr_t)out) % 16 != 0 ||
        !pgd_cuda__fp8_stream_takes(c, n, inter) ||
        !pgd_cuda__fp8_stream_scratch(c, inter, &xh, &sx))
        return pgd_cuda_act_mul(c, dt, act, gate_up, n, inter, out, err, errlen);
    pgd_cuda__fp8_share_note(c, 0, NULL, 0, 0, dt);   /* the scratch is written */
    cudaError_t e;
    if (dt == PGD_DTYPE_BF16)
        e = act == PGD_ACT_SILU
                ? fg_act_x_launch<__nv_bfloat16, PGD_ACT_SILU>(c, vpt, gate_up, n, inter, out, xh,
                                                               sx)
                : fg_act_x_launch<__nv_bfloat16, PGD_ACT_GELU_TANH>(c, vpt, gate_up, n, inter, out,
                                                                    xh, sx);
    else
        e = act == PGD_ACT_SILU
                ? fg_act_x_launch<__half, PGD_ACT_SILU>(c, vpt, gate_up, n, inter, out, xh, sx)
                : fg_act_x_launch<__half, PGD_ACT_GELU_TANH>(c, vpt, gate_up, n, inter, out, xh,
                                                             sx);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "act_mul [%d, 2 x %d] %s with x's FP8 codes: %s", n,
                              inter, pgd_cuda_dt(dt), cudaGetErrorString(e));
    *prepared = 1;
    return 0;
}

/* The split of a launch of n rows over count layers of tiles[i] tiles each (stream_plan.h):
 * ks warps a tile and tpb tiles a block as the plan picks them were the layers ks_tiles[i]
 * tiles (a gated layer takes its plain launch's split at the same n: the same bits), kpu
 * chunks a warp, first[i] layer i's first block. PGD_CUDA_FP8_GEMV_KS = 1..8 forces ks (to
 * measure one split against another), read once. */
struct fg_split {
    int ks, kpu, warps;
    int first[4];
};

static int fg_forced_ks(void)
{
    static int v = -1;
    if (v < 0) {
        const int k = pgd_cuda__qenv_int("PGD_CUDA_FP8_GEMV_KS", 0);
        v = k >= 1 && k <= FG_WARPS ? k : 0;
    }
    return v;
}

static fg_split fg_make_split(const struct pgd_cuda_ctx *c, int n, int chunks, int count,
                              const int *tiles, const int *ks_tiles)
{
    /* the balance rule from 2 rows (stream_plan.h: 4% off the 8B step at 4 rows on an H100,
     * 2% on at one) */
    struct pgd_stream_shape sh = pgd_cuda__stream_shape(c, FG_WARPS, FG_BLOCKS_SM, chunks, count,
                                                        ks_tiles, n >= 2);
    sh.force_ks = fg_forced_ks() <= chunks ? fg_forced_ks() : 0;
    sh.smem_fixed = sizeof(float) * FG_WARPS * 4 * 32;   /* the kernel's static sums */
    sh.smem_block_max = 48 << 10;
    struct pgd_stream_plan sp;
    fg_split r = {};
    if (!pgd__stream_plan_make(&sh, &sp)) {   /* (4 KB a block always fits) */
        sp.ks = 1;
        sp.tpb = FG_WARPS;
        sp.kpu = chunks;
    }
    r.ks = sp.ks;
    r.kpu = sp.kpu;
    r.warps = sp.ks * sp.tpb;
    pgd__stream_plan_first(count, tiles, sp.tpb, r.first);
    return r;
}

/* A plain layer's tiles: of 16 features, or of 8 where 16-feature tiles would leave SMs
 * without a block (its launch then takes R16 false). */
static int fg_plain_tiles(const struct pgd_cuda_ctx *c, int out)
{
    return (out + 15) / 16 >= c->sm_count ? (out + 15) / 16 : (out + 7) / 8;
}

bool pgd_cuda__fp8_stream_scratch(struct pgd_cuda_ctx *c, int in, __half **xh, float **sx)
{
    const size_t xh_bytes = ((size_t)FG_MAX_N * in * sizeof(__half) + 255) / 256 * 256;
    if (xh_bytes + FG_MAX_N * sizeof(float) > c->qscratch_bytes)
        return false;
    *xh = (__half *)c->qscratch;
    *sx = (float *)((char *)c->qscratch + xh_bytes);
    return true;
}

/* glu: -1 for the plain linear (out features), else a PGD_ACT_* and out = inter (the layer
 * has 2 inter features). */
template <typename T>
static int fp8_stream_run(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int glu, const void *x,
                          int n, const uint8_t *w,
                          const float *sw, int in, int out, const void *b, void *y, char *err,
                          size_t errlen)
{
    __half *xh;
    float *sx;
    if (!pgd_cuda__fp8_stream_scratch(c, in, &xh, &sx))
        return pgd_cuda_failf(err, errlen, "fp8 GEMV: x [%d, %d] exceeds the %zu-byte scratch", n,
                              in, c->qscratch_bytes);
    /* a gated layer: 8 gate and 8 up features a tile, and the split its plain launch (2 out
     * features) would take: the same slices of each row, so act(gate) * up rounds the plain
     * launch's gate and up exactly */
    const bool r16 = glu >= 0 || (out + 15) / 16 >= c->sm_count;
    const int tiles = glu >= 0 ? (out + 7) / 8 : fg_plain_tiles(c, out);
    const int ks_tiles = glu >= 0 ? fg_plain_tiles(c, 2 * out) : tiles;
    const fg_split sp = fg_make_split(c, n, in / 64, 1, &tiles, &ks_tiles);
    for (int r0 = 0; r0 < n; r0 += FG_MAX_N) {
        const int rows = n - r0 < FG_MAX_N ? n - r0 : FG_MAX_N;
        const T *xr = (const T *)x + (size_t)r0 * in;
        T *yr = (T *)y + (size_t)r0 * out;
        /* q, k and v of one x (pgd_cuda_fp8_share_x): the first's quantization serves all */
        const bool one = n <= FG_MAX_N;
        cudaError_t e = cudaSuccess;
        if (!(one && (pgd_cuda__fp8_share_hit(c, -1, x, n, in, dt) ||
                      pgd_cuda__fp8_ready_hit(c, x, n, in, dt)))) {
            e = pgd_cuda__fp8_xprep(c, dt, xr, rows, in, xh, sx);
            pgd_cuda__fp8_share_note(c, one ? -1 : 0, x, n, in, dt);
        }
        const dim3 grid(sp.first[1]), block(sp.warps * 32);
        const __half *xhc = xh;
        const float *sxc = sx;
        const T *bt = (const T *)b;
        if (e == cudaSuccess) {
            const fg_segs none = {};
            if (glu == PGD_ACT_SILU)
                e = pgd_cuda_launch(c, fp8_gemv_stream_kernel<T, true, PGD_ACT_SILU, false>, grid,
                                    block, w, sw, xhc, sxc, rows, in, out, sp.ks, sp.kpu, bt, yr,
                                    none);
            else if (glu == PGD_ACT_GELU_TANH)
                e = pgd_cuda_launch(c, fp8_gemv_stream_kernel<T, true, PGD_ACT_GELU_TANH, false>,
                                    grid, block, w, sw, xhc, sxc, rows, in, out, sp.ks, sp.kpu,
                                    bt, yr, none);
            else if (r16)
                e = pgd_cuda_launch(c, fp8_gemv_stream_kernel<T, true, -1, false>, grid, block, w,
                                    sw, xhc, sxc, rows, in, out, sp.ks, sp.kpu, bt, yr, none);
            else
                e = pgd_cuda_launch(c, fp8_gemv_stream_kernel<T, false, -1, false>, grid, block,
                                    w, sw, xhc, sxc, rows, in, out, sp.ks, sp.kpu, bt, yr, none);
        }
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "fp8 streaming GEMV x [%d, %d] -> %d (rows %d..%d): "
                                  "%s", n, in, out, r0, r0 + rows - 1, cudaGetErrorString(e));
    }
    return 0;
}

int pgd_cuda__fp8_stream_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int glu, const void *x,
                              int n, const uint8_t *w, const float *sw, int in, int out,
                              const void *b, void *y, char *err, size_t errlen)
{
    if (!pgd_cuda__fp8_stream_ok(c, in))
        return pgd_cuda_failf(err, errlen, "fp8 streaming GEMV: in %d (a multiple of 64) on a "
                              "device of compute capability 8.0 or later", in);
    if (glu >= 0 && (out % 2 != 0 || (glu != PGD_ACT_SILU && glu != PGD_ACT_GELU_TANH)))
        return pgd_cuda_failf(err, errlen, "fp8 streaming GEMV with activation %d: [%d, %d] "
                              "(an even number of features)", glu, out, in);
    const int o = glu >= 0 ? out / 2 : out;
    if (dt == PGD_DTYPE_BF16)
        return fp8_stream_run<__nv_bfloat16>(c, dt, glu, x, n, w, sw, in, o, b, y, err, errlen);
    return fp8_stream_run<__half>(c, dt, glu, x, n, w, sw, in, o, b, y, err, errlen);
}

/* q, k and v (count layers of one x, n <= 8) in one launch: x quantized once, then the
 * layers' tiles in one grid (16-feature tiles where the layers together have as many as the
 * device has SMs, else 8). */
template <typename T>
static int fp8_stream_segs_run(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                               int in, int count, const struct pgd_cuda_fp8_dec_seg *sg,
                               char *err, size_t errlen)
{
    __half *xh;
    float *sx;
    if (!pgd_cuda__fp8_stream_scratch(c, in, &xh, &sx))
        return pgd_cuda_failf(err, errlen, "fp8 GEMV: x [%d, %d] exceeds the %zu-byte scratch", n,
                              in, c->qscratch_bytes);
    int tiles16 = 0;
    for (int i = 0; i < count; i++)
        tiles16 += (sg[i].out + 15) / 16;
    const bool r16 = tiles16 >= c->sm_count;
    const int rows = r16 ? 16 : 8;
    int tiles[3] = { 0, 0, 0 };
    fg_segs segs = {};
    for (int i = 0; i < count; i++) {
        segs.w[i] = sg[i].w;
        segs.sw[i] = sg[i].sw;
        segs.b[i] = sg[i].b;
        segs.y[i] = sg[i].y;
        segs.out[i] = sg[i].out;
        tiles[i] = (sg[i].out + rows - 1) / rows;
    }
    const fg_split sp = fg_make_split(c, n, in / 64, count, tiles, tiles);
    for (int i = 0; i < 4; i++)
        segs.first[i] = sp.first[i];
    cudaError_t e = cudaSuccess;
    if (!pgd_cuda__fp8_ready_hit(c, x, n, in, dt)) {
        e = pgd_cuda__fp8_xprep(c, dt, x, n, in, xh, sx);
        pgd_cuda__fp8_share_note(c, -1, x, n, in, dt);
    }
    const __half *xhc = xh;
    const float *sxc = sx;
    const dim3 grid(sp.first[3]), block(sp.warps * 32);
    if (e == cudaSuccess)
        e = r16 ? pgd_cuda_launch(c, fp8_gemv_stream_kernel<T, true, -1, true>, grid, block,
                                  sg[0].w, sg[0].sw, xhc, sxc, n, in, sg[0].out, sp.ks, sp.kpu,
                                  (const T *)NULL, (T *)NULL, segs)
                : pgd_cuda_launch(c, fp8_gemv_stream_kernel<T, false, -1, true>, grid, block,
                                  sg[0].w, sg[0].sw, xhc, sxc, n, in, sg[0].out, sp.ks, sp.kpu,
                                  (const T *)NULL, (T *)NULL, segs);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "fp8 streaming GEMV x [%d, %d] through %d layers: %s",
                              n, in, count, cudaGetErrorString(e));
    return 0;
}

int pgd_cuda__fp8_stream_gemv_segs(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                   int n, int in, int count,
                                   const struct pgd_cuda_fp8_dec_seg *segs, char *err,
                                   size_t errlen)
{
    if (!pgd_cuda__fp8_stream_ok(c, in) || n < 1 || n > FG_MAX_N || count < 1 || count > 3)
        return pgd_cuda_failf(err, errlen, "fp8 streaming GEMV: x [%d, %d] through %d layers "
                              "(1..8 rows, in a multiple of 64, 1..3 layers, compute "
                              "capability 8.0 or later)", n, in, count);
    if (dt == PGD_DTYPE_BF16)
        return fp8_stream_segs_run<__nv_bfloat16>(c, dt, x, n, in, count, segs, err, errlen);
    return fp8_stream_segs_run<__half>(c, dt, x, n, in, count, segs, err, errlen);
}
