/* The FP8 decode GEMV (n <= 16 tokens; in a multiple of 64; sm_80 and later): one launch a
 * linear, or one for the q, k and v projections of one x, reading the e4m3 weights once at
 * the copy rate.
 *
 * Work: a layer's output features in tiles of 16 rows (a gate_up layer with its activation:
 * 8 gate rows and the 8 up rows of the same features), several layers' tiles one after the
 * other (q, k, v: up to FD_MAX_SEGS layers of one x), each tile's inputs cut into kp parts
 * (split-K across blocks, for layers of few tiles); an item is (tile, part). The grid is at
 * most the blocks that fit on the GPU at once and each block takes items blockIdx.x,
 * + gridDim.x, ... (persistent): each lane streams its weight chunks across its items
 * without a break, FD_UNR chunks of two rows (2 x 16 bytes a chunk) asked for before the
 * FD_UNR before them are multiplied, the first ones before the kernel waits for the
 * previous one (programmatic dependent launch: weights are never written by a step).
 *
 * A block's 8 warps split an item's part of the inputs (chunks of 64 inputs, cpw a warp);
 * lane (g = l / 4, t = l % 4) reads 16 contiguous bytes of rows g and g + 8 at byte 16t of
 * each chunk, decoded with integer operations (quant.cuh's e4m3_pair02/13: fp16 pairs of
 * the codes' values times 2^-8) into mma.sync m16n8k16 A fragments; x's tokens are the B
 * columns (token g; tokens 8 + g in a second product for n > 8), float32 accumulators. At
 * the item's end the warps meet in shared memory (two buffers, one barrier an item) and one
 * warp (a different one each item) sums them in warp order and writes y; with kp > 1 it
 * writes the item's partial sums to the scratch instead and takes a ticket: the tile's last
 * part to arrive sums the kp partials in part order (deterministic whatever the arrival
 * order), writes y and sets the ticket back to 0 for the next launch.
 *
 * x: per-token scale sx = max|x| / 448 (1 for an all-zero row) and e4m3 code of x / sx as
 * kernels/cpu/quant.c's pgd_cpu_fp8_quantize_rows computes them, held as the codes' exact
 * fp16 values in the order the weight decoding yields (quant.cuh's fp8_x8_f16_0213). Where
 * n rows fit FD_XS_BYTES of shared memory every block quantizes x into its shared memory
 * after the wait (no launch before the GEMV; x is in L2, written by the previous kernel);
 * else (or with PGD_CUDA_FP8_DEC_XPREP=1, for measuring) quant_fp8_gemv.cu's small kernel
 * writes them into the scratch once and the blocks read them from there.
 *
 * Output: y = v 2^8 sx[tok] sw[o] + b[o] with v the float32 sum, rounded to T; a gate_up
 * layer's act(gate) * up with gate and up each rounded to T first (as the linear followed
 * by act_mul rounds them). Every product of an e4m3 value by an e4m3 value times 2^-8 is
 * exact in float32, so the sums are float32 sums of the reference's products in another
 * (fixed) order. */
#include "kernels/cuda/quant.cuh"
#include "kernels/cuda/act.cuh"
#include <cuda_fp8.h>
#include <algorithm>

#define FD_WARPS 8
#define FD_THREADS (FD_WARPS * 32)
#define FD_UNR 4
#define FD_MAX_N 16
#define FD_MAX_SEGS 3
#define FD_MAX_KP 8
#define FD_XS_BYTES (96 << 10)       /* x's fp16 values in shared memory up to this */

struct fd_seg {
    const uint8_t *w;                /* [rows][in] e4m3 (gate_up: 2 inter rows) */
    const float *sw;                 /* [rows] */
    const void *b;                   /* [rows] in T, or NULL */
    void *y;                         /* [n][out] in T */
    int out;                         /* output features (gate_up: inter) */
    int tile0;                       /* the segment's first tile */
};

struct fd_args {
    struct fd_seg seg[FD_MAX_SEGS];
    int nseg, tiles, kp, cpp, cpw, items, n, in;
    int prefetch;                    /* fd_load's L2 prefetch of the next group */
    const void *x;                   /* [n][in] in T (shared-memory x) */
    int xvec;                        /* x 16-byte aligned */
    const __half *xh;                /* else: [n][in] from fp8_xprep, and its scales */
    const float *sxg;
    float *part;                     /* kp > 1: [items][4 NB][32] partial sums */
    int *tickets;                    /* kp > 1: [tiles], 0 between launches */
};

/* Shared memory: the warps' sums [2][FD_WARPS][4 NB][32], the per-token amax [FD_MAX_N]
 * (as int bits: non-negative floats order as ints), then (shared-memory x) x [n][in + 8]
 * fp16 (8 halves of padding a row: the lanes of different tokens hit different banks). */
static size_t fd_red_floats(int nb) { return (size_t)2 * FD_WARPS * 4 * nb * 32; }
static size_t fd_smem_bytes(int nb, bool xs, int n, int in)
{
    return (fd_red_floats(nb) + FD_MAX_N) * sizeof(float) +
           (xs ? (size_t)n * (in + 8) * sizeof(__half) : 0);
}

/* The segment of a tile, copied field by field (no dynamic index into the parameters,
 * which would copy them to local memory). */
__device__ __forceinline__ fd_seg fd_seg_of(const fd_args &a, int tile)
{
    fd_seg sg = a.seg[0];
    if (a.nseg > 1 && tile >= a.seg[1].tile0)
        sg = a.seg[1];
    if (a.nseg > 2 && tile >= a.seg[2].tile0)
        sg = a.seg[2];
    return sg;
}

/* Where a lane's weight chunks of one item come from. */
struct fd_src {
    const uint4 *p0, *p8;            /* row g / g + 8, byte 16t of the warp's first chunk */
    int x0;                          /* the warp's first chunk (x's offset in chunks) */
    int valid;                       /* chunks of the cpw that exist (may be <= 0) */
    int tile, kp;
};

/* Chunk lc of the item s points at (zero past its valid chunks) into wa / wb; pf: lane t
 * == 0 of each row also asks L2 for the chunk FD_UNR further on (the next group's, when the
 * item has it), so that the loads in flight cover two groups with one group's registers. */
__device__ __forceinline__ void fd_load(const fd_src &s, int lc, bool pf, uint4 &wa, uint4 &wb)
{
    if (lc < s.valid) {
        wa = ld_stream(s.p0 + (size_t)lc * 4);
        wb = ld_stream(s.p8 + (size_t)lc * 4);
        if (pf && lc + FD_UNR < s.valid) {
            asm volatile("prefetch.global.L2 [%0];" ::"l"(s.p0 + (size_t)(lc + FD_UNR) * 4));
            asm volatile("prefetch.global.L2 [%0];" ::"l"(s.p8 + (size_t)(lc + FD_UNR) * 4));
        }
    }
}

__device__ __forceinline__ void fd_locate(const fd_args &a, int item, int warp, int g, int t,
                                          bool glu, fd_src &s)
{
    if (item >= a.items) {
        s.valid = 0;
        s.p0 = s.p8 = NULL;
        s.x0 = 0;
        s.tile = s.kp = 0;
        return;
    }
    const int tile = item / a.kp, kp = item - tile * a.kp;
    const fd_seg sg = fd_seg_of(a, tile);
    const int lt = tile - sg.tile0;
    int r0, r8;
    if (glu) {
        r0 = min(lt * 8 + g, sg.out - 1);
        r8 = sg.out + r0;
    } else {
        r0 = min(lt * 16 + g, sg.out - 1);
        r8 = min(lt * 16 + g + 8, sg.out - 1);
    }
    const int chunks = a.in / 64, c0 = kp * a.cpp + warp * a.cpw;
    const int cend = min(chunks, (kp + 1) * a.cpp);
    s.x0 = c0;
    s.valid = min(a.cpw, cend - c0);
    s.p0 = reinterpret_cast<const uint4 *>(sg.w + (size_t)r0 * a.in) + (size_t)c0 * 4 + t;
    s.p8 = reinterpret_cast<const uint4 *>(sg.w + (size_t)r8 * a.in) + (size_t)c0 * 4 + t;
    s.tile = tile;
    s.kp = kp;
}

/* x [n][in] in T -> the block's shared memory (fp16 code values, rows of in + 8) and the
 * per-token amax (int bits). Token r's amax is taken by wpt = 8 / n warps (one for n > 8,
 * tokens w and w + 8), so that n = 1 still has the whole block reading; then every thread
 * converts vectors of the flattened [n][in / 8]. */
template <typename T>
__device__ __forceinline__ void fd_quantize_x(const fd_args &a, __half *xs, int *amax_bits)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, vpr = a.in / 8;
    const T *x = (const T *)a.x;
    const bool vec = a.xvec != 0;
    if (threadIdx.x < FD_MAX_N)
        amax_bits[threadIdx.x] = 0;
    __syncthreads();
    const int wpt = a.n <= FD_WARPS ? FD_WARPS / a.n : 1;
    for (int r = warp / wpt; r < a.n; r += FD_WARPS / wpt) {
        float m = fp8_amax_strided<T>(x + (size_t)r * a.in, vpr, (warp % wpt) * 32 + lane,
                                      32 * wpt, vec, 0.0f);
        for (int off = 16; off > 0; off >>= 1)
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        if (lane == 0)
            atomicMax(amax_bits + r, __float_as_int(m));
    }
    __syncthreads();
    const int xst = a.in + 8;
    for (int i = threadIdx.x; i < a.n * vpr; i += FD_THREADS) {
        const int r = i / vpr, j = i - r * vpr;
        float f[8];
        fp8_x8<T>(x + (size_t)r * a.in, j, vec, f);
        const float s = fp8_token_scale(__int_as_float(amax_bits[r]));
        reinterpret_cast<uint4 *>(xs + (size_t)r * xst)[j] = fp8_x8_f16_0213(f, s);
    }
    __syncthreads();
}

/* The output of accumulator value v of feature o (row index within the segment), token
 * tok: v 2^8 sx sw[o] + b[o] in float32 (one expression for both epilogues). */
template <typename T>
__device__ __forceinline__ float fd_out(const fd_seg &sg, int o, float v, float sx)
{
    const float bias = sg.b ? to_f<T>(((const T *)sg.b)[o]) : 0.0f;
    return v * (256.0f * sx) * __ldg(sg.sw + o) + bias;
}

/* Writes the tile's outputs from the lane's summed accumulators v[4 NB]: accumulator i of
 * token group q is row g (+ 8 for i >= 2), token 8q + 2t + (i & 1). */
template <typename T, int NB, int GLU>
__device__ __forceinline__ void fd_write(const fd_args &a, int tile, const float *v,
                                         const float *sx_of, bool sx_amax, int g, int t)
{
    const fd_seg sg = fd_seg_of(a, tile);
    const int lt = tile - sg.tile0;
    T *y = (T *)sg.y;
#pragma unroll
    for (int q = 0; q < NB; q++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int tok = 8 * q + 2 * t + (i & 1);
            if (tok >= a.n)
                continue;
            const float sx = sx_amax ? fp8_token_scale(__int_as_float(((const int *)sx_of)[tok]))
                                     : __ldg(sx_of + tok);
            if (GLU >= 0) {
                if (i >= 2)
                    continue;
                const int o = lt * 8 + g;
                if (o >= sg.out)
                    continue;
                const T gate = from_f<T>(fd_out<T>(sg, o, v[4 * q + i], sx));
                const T up = from_f<T>(fd_out<T>(sg, sg.out + o, v[4 * q + i + 2], sx));
                y[(size_t)tok * sg.out + o] =
                    from_f<T>(act_mul_f<GLU < 0 ? 0 : GLU>(to_f<T>(gate), to_f<T>(up)));
            } else {
                const int o = lt * 16 + g + (i >= 2 ? 8 : 0);
                if (o < sg.out)
                    y[(size_t)tok * sg.out + o] = from_f<T>(fd_out<T>(sg, o, v[4 * q + i], sx));
            }
        }
    }
}

/* The end of an item (tile s.tile, part s.kp): the warps' sums meet in red[buf]; warp rw
 * sums them in warp order and writes y, or (kp > 1) the partial sums and, the tile's last
 * part, y from all parts in part order. */
template <typename T, int NB, int GLU>
__device__ __forceinline__ void fd_flush(const fd_args &a, float *acc, float *red, int buf,
                                         int rw, const fd_src &s, const float *sx_of,
                                         bool sx_amax)
{
    constexpr int NA = 4 * NB;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    float *rb = red + (size_t)buf * FD_WARPS * NA * 32;
#pragma unroll
    for (int i = 0; i < NA; i++) {
        rb[(warp * NA + i) * 32 + lane] = acc[i];
        acc[i] = 0.0f;
    }
    __syncthreads();
    if (warp != rw || s.p0 == NULL)
        return;
    float v[NA];
#pragma unroll
    for (int i = 0; i < NA; i++) {
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < FD_WARPS; k++)
            sum += rb[(k * NA + i) * 32 + lane];
        v[i] = sum;
    }
    if (a.kp == 1) {
        fd_write<T, NB, GLU>(a, s.tile, v, sx_of, sx_amax, g, t);
        return;
    }
    float *mine = a.part + ((size_t)s.tile * a.kp + s.kp) * NA * 32;
#pragma unroll
    for (int i = 0; i < NA; i++)
        mine[i * 32 + lane] = v[i];
    __threadfence();
    __syncwarp();
    int ticket = 0;
    if (lane == 0)
        ticket = atomicAdd(a.tickets + s.tile, 1);
    ticket = __shfl_sync(0xffffffffu, ticket, 0);
    if (ticket != a.kp - 1)
        return;
    __threadfence();
    const float *all = a.part + (size_t)s.tile * a.kp * NA * 32;
#pragma unroll
    for (int i = 0; i < NA; i++)
        v[i] = 0.0f;
    for (int p = 0; p < a.kp; p++)
#pragma unroll
        for (int i = 0; i < NA; i++)
            v[i] += __ldcg(all + ((size_t)p * NA + i) * 32 + lane);
    fd_write<T, NB, GLU>(a, s.tile, v, sx_of, sx_amax, g, t);
    if (lane == 0)
        a.tickets[s.tile] = 0;
}

/* NB: token groups of 8 (n <= 8 NB); GLU: -1 or the gated activation (PGD_ACT_*); XS: x
 * quantized into shared memory by every block (else xprep's scratch). */
template <typename T, int NB, int GLU, bool XS>
__global__ void __launch_bounds__(FD_THREADS, 2) fp8_dec_kernel(const fd_args a)
{
    constexpr int NA = 4 * NB;
    extern __shared__ __align__(16) unsigned char fd_smem[];
    float *red = reinterpret_cast<float *>(fd_smem);
    int *amax_bits = reinterpret_cast<int *>(red + 2 * FD_WARPS * NA * 32);
    __half *xs = reinterpret_cast<__half *>(amax_bits + FD_MAX_N);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const bool glu = GLU >= 0;
    const int mine = a.items > (int)blockIdx.x
                         ? (a.items - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x
                         : 0;
    const int steps = mine * a.cpw;
    const bool pf = a.prefetch && t == 0;
    pdl_trigger();

    /* the load stream: item li (this block's li-th), chunk lc of the warp's cpw */
    fd_src ls;
    int li = 0, lc = 0;
    fd_locate(a, blockIdx.x, warp, g, t, glu, ls);
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    uint4 wa[FD_UNR], wb[FD_UNR];
#pragma unroll
    for (int u = 0; u < FD_UNR; u++) {
        wa[u] = wb[u] = zero;
        if (u < steps) {
            fd_load(ls, lc, pf, wa[u], wb[u]);
            if (++lc == a.cpw) {
                lc = 0;
                fd_locate(a, blockIdx.x + ++li * gridDim.x, warp, g, t, glu, ls);
            }
        }
    }
    pdl_wait();

    const __half *xbase;
    int xst;
    const float *sx_of;
    if (XS) {
        fd_quantize_x<T>(a, xs, amax_bits);
        xbase = xs;
        xst = a.in + 8;
        sx_of = reinterpret_cast<const float *>(amax_bits);
    } else {
        xbase = a.xh;
        xst = a.in;
        sx_of = a.sxg;
    }
    /* token g's (and 8 + g's) row of x, at this lane's 16 values of chunk 0 */
    const uint4 *xp[NB];
#pragma unroll
    for (int q = 0; q < NB; q++)
        xp[q] = 8 * q + g < a.n
                    ? reinterpret_cast<const uint4 *>(xbase + (size_t)(8 * q + g) * xst) + 2 * t
                    : NULL;

    /* the compute stream */
    fd_src cs;
    int ci = 0, cc = 0, buf = 0;
    fd_locate(a, blockIdx.x, warp, g, t, glu, cs);
    float acc[NA];
#pragma unroll
    for (int i = 0; i < NA; i++)
        acc[i] = 0.0f;
    for (int s0 = 0; s0 < steps; s0 += FD_UNR) {
        uint4 na[FD_UNR], nb[FD_UNR];
#pragma unroll
        for (int u = 0; u < FD_UNR; u++) {
            na[u] = nb[u] = zero;
            if (s0 + FD_UNR + u < steps) {
                fd_load(ls, lc, pf, na[u], nb[u]);
                if (++lc == a.cpw) {
                    lc = 0;
                    fd_locate(a, blockIdx.x + ++li * gridDim.x, warp, g, t, glu, ls);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < FD_UNR; u++) {
            if (s0 + u >= steps)
                break;
            if (cc < cs.valid) {
                const uint32_t w0[4] = { wa[u].x, wa[u].y, wa[u].z, wa[u].w };
                const uint32_t w8[4] = { wb[u].x, wb[u].y, wb[u].z, wb[u].w };
                const size_t xo = (size_t)(cs.x0 + cc) * 8;
#pragma unroll
                for (int q = 0; q < NB; q++) {
                    uint4 x0 = zero, x1 = zero;
                    if (xp[q]) {
                        x0 = xp[q][xo];
                        x1 = xp[q][xo + 1];
                    }
                    const uint32_t xr[8] = { x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w };
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        fg_mma(acc + 4 * q, e4m3_pair02(w0[i]), e4m3_pair02(w8[i]),
                               e4m3_pair13(w0[i]), e4m3_pair13(w8[i]), xr[2 * i],
                               xr[2 * i + 1]);
                }
            }
            if (++cc == a.cpw) {
                fd_flush<T, NB, GLU>(a, acc, red, buf, ci % FD_WARPS, cs, sx_of, XS);
                buf ^= 1;
                cc = 0;
                fd_locate(a, blockIdx.x + ++ci * gridDim.x, warp, g, t, glu, cs);
            }
        }
#pragma unroll
        for (int u = 0; u < FD_UNR; u++) {
            wa[u] = na[u];
            wb[u] = nb[u];
        }
    }
}

/* ---- host ---------------------------------------------------------------------------------- */
/* Whether the decode GEMV is the automatic choice up to pgd_cuda__fp8_dec_max_n() rows
 * (PGD_CUDA_FP8_DEC=1; read once). Off by default: on the H200 (2026-12-03) it was slower
 * than the paths before it at every n = 1..16 (n = 1: q/o 11.1 us against 10.1, qkv 17.7
 * against 16.1, gate_up 42.4 against 38.2, down 28.8 against 22.5; batch-1 decode 4.79 ms
 * against 4.43), so it stays a forced path (PGD_CUDA_QPATH_GEMV_DEC) until it wins.
 * PGD_CUDA_FP8_DEC_XPREP=1 keeps x in the scratch rather than in each block's shared
 * memory. */
int pgd_cuda__fp8_dec_max_n(void)
{
    static int v = -1;
    if (v < 0) {
        const int on = pgd_cuda__qenv_int("PGD_CUDA_FP8_DEC", 0) != 0;
        const int n = pgd_cuda__qenv_int("PGD_CUDA_FP8_DEC_MAX_N", FD_MAX_N);
        v = !on ? 0 : n < 0 ? 0 : n > FD_MAX_N ? FD_MAX_N : n;
    }
    return v;
}

/* PGD_CUDA_FP8_DEC_PREFETCH=0: no L2 prefetch of the next group (fd_load), for measuring. */
static bool fd_prefetch_on(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_FP8_DEC_PREFETCH", 1) != 0;
    return v != 0;
}

static bool fd_xprep_forced(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_FP8_DEC_XPREP", 0) != 0;
    return v != 0;
}

/* The device facts the launch needs, asked once a device: shared memory a multiprocessor
 * has ([0]) and a block may opt in to ([1]). */
static const int *fd_smem_limits(int device)
{
    static int cached[16][2] = { { 0 } };
    static const int none[2] = { 48 << 10, 48 << 10 };
    if (device < 0 || device >= 16)
        return none;
    if (!cached[device][0]) {
        int sm = 0, blk = 0;
        if (cudaDeviceGetAttribute(&sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device) !=
                cudaSuccess ||
            cudaDeviceGetAttribute(&blk, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
                cudaSuccess || sm <= 0 || blk <= 0) {
            cudaGetLastError();
            sm = blk = 48 << 10;
        }
        cached[device][0] = sm;
        cached[device][1] = blk;
    }
    return cached[device];
}

/* The split of tiles into items: kp parts a tile (1..FD_MAX_KP, each warp at least 2
 * chunks a part) making the items fill the slots (blocks resident at once) in the fewest
 * whole rounds; the smallest kp of the best fill. Plain arithmetic on the shape (no device
 * query), so the choice for a shape and n is the same on every call. */
extern "C" int pgd_cuda_fp8_dec_split(int tiles, int chunks, int slots)
{
    int best = 1;
    double best_fill = -1.0;
    for (int kp = 1; kp <= FD_MAX_KP; kp++) {
        const int cpp = (chunks + kp - 1) / kp;
        if (kp > 1 && cpp < 2 * FD_WARPS)
            break;
        const long items = (long)tiles * kp;
        const long rounds = (items + slots - 1) / slots;
        const double fill = (double)items / (double)(rounds * slots);
        if (fill > best_fill * 1.02) {  /* a larger split must fill 2% better */
            best_fill = fill;
            best = kp;
        }
    }
    return best;
}

template <typename T, int NB, int GLU, bool XS>
static cudaError_t fd_launch(struct pgd_cuda_ctx *c, const fd_args &a, int grid, size_t smem)
{
    /* the kernel's dynamic shared-memory limit, raised when a launch needs more than 48 KB
     * and more than it was raised to before (once or twice a process; not a stream
     * operation, so also fine during a graph capture) */
    static size_t raised[16] = { 0 };
    const int d = c->device >= 0 && c->device < 16 ? c->device : 0;
    if (smem > (48 << 10) && smem > raised[d]) {
        cudaError_t e = cudaFuncSetAttribute(fp8_dec_kernel<T, NB, GLU, XS>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess)
            return e;
        raised[d] = smem;
    }
    return pgd_cuda_launch_smem(c, fp8_dec_kernel<T, NB, GLU, XS>, dim3(grid), dim3(FD_THREADS),
                                smem, a);
}

template <typename T, int NB, bool XS>
static cudaError_t fd_launch_glu(struct pgd_cuda_ctx *c, int glu, const fd_args &a, int grid,
                                 size_t smem)
{
    if (glu == PGD_ACT_SILU)
        return fd_launch<T, NB, PGD_ACT_SILU, XS>(c, a, grid, smem);
    if (glu == PGD_ACT_GELU_TANH)
        return fd_launch<T, NB, PGD_ACT_GELU_TANH, XS>(c, a, grid, smem);
    return fd_launch<T, NB, -1, XS>(c, a, grid, smem);
}

template <typename T>
static int fd_run(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int glu, const void *x, int n,
                  int in, int nseg, const struct pgd_cuda_fp8_dec_seg *segs, char *err,
                  size_t errlen)
{
    fd_args a = {};
    int tiles = 0;
    for (int i = 0; i < nseg; i++) {
        const int out = glu >= 0 ? segs[i].out / 2 : segs[i].out;
        a.seg[i] = fd_seg{ segs[i].w, segs[i].sw, segs[i].b, segs[i].y, out, tiles };
        tiles += (out + (glu >= 0 ? 7 : 15)) / (glu >= 0 ? 8 : 16);
    }
    const int nb = n > 8 ? 2 : 1, chunks = in / 64;
    const int *lim = fd_smem_limits(c->device);
    const bool xs = !fd_xprep_forced() && (size_t)n * (in + 8) * sizeof(__half) <= FD_XS_BYTES &&
                    fd_smem_bytes(nb, true, n, in) <= (size_t)lim[1];
    const size_t smem = fd_smem_bytes(nb, xs, n, in);
    const int per_sm = (int)std::min<size_t>(2, (size_t)lim[0] / (smem + 1024));
    const int slots = c->sm_count * (per_sm < 1 ? 1 : per_sm);
    int kp = pgd_cuda_fp8_dec_split(tiles, chunks, slots);
    if ((size_t)tiles > PGD_CUDA_FP8_TICKETS)
        kp = 1;
    a.nseg = nseg;
    a.tiles = tiles;
    a.kp = kp;
    a.cpp = (chunks + kp - 1) / kp;
    a.cpw = (a.cpp + FD_WARPS - 1) / FD_WARPS;
    a.items = tiles * kp;
    a.n = n;
    a.in = in;
    a.x = x;
    a.xvec = (uintptr_t)x % 16 == 0;
    a.tickets = c->fp8_tickets;
    a.prefetch = fd_prefetch_on();
    /* the scratch: xprep's x values and scales (xs: none), then the partial sums */
    size_t off = 0;
    if (!xs) {
        const size_t xh_bytes = ((size_t)n * in * sizeof(__half) + 255) / 256 * 256;
        a.xh = (const __half *)c->qscratch;
        a.sxg = (const float *)((char *)c->qscratch + xh_bytes);
        off = xh_bytes + 256;
    }
    a.part = (float *)((char *)c->qscratch + off);
    const size_t part_bytes = kp > 1 ? (size_t)a.items * 4 * nb * 32 * sizeof(float) : 0;
    if (off + part_bytes > c->qscratch_bytes)
        return pgd_cuda_failf(err, errlen, "fp8 decode GEMV: x [%d, %d] and %d partial tiles "
                              "exceed the %zu-byte scratch", n, in, a.items, c->qscratch_bytes);
    pgd_cuda__fp8_share_note(c, 0, NULL, 0, 0, dt);     /* the scratch is overwritten */
    cudaError_t e = cudaSuccess;
    if (!xs)
        e = pgd_cuda__fp8_xprep(c, dt, x, n, in, (__half *)a.xh, (float *)a.sxg);
    const int grid = a.items < slots ? a.items : slots;
    if (e == cudaSuccess) {
        if (nb == 1)
            e = xs ? fd_launch_glu<T, 1, true>(c, glu, a, grid, smem)
                   : fd_launch_glu<T, 1, false>(c, glu, a, grid, smem);
        else
            e = xs ? fd_launch_glu<T, 2, true>(c, glu, a, grid, smem)
                   : fd_launch_glu<T, 2, false>(c, glu, a, grid, smem);
    }
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "fp8 decode GEMV x [%d, %d] -> %d tiles (%d parts): %s",
                              n, in, tiles, kp, cudaGetErrorString(e));
    return 0;
}

bool pgd_cuda__fp8_dec_ok(const struct pgd_cuda_ctx *c, int n, int in)
{
    return n >= 1 && n <= FD_MAX_N && c->fp8_tickets && pgd_cuda__fp8_stream_ok(c, in);
}

int pgd_cuda__fp8_dec_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int glu, const void *x,
                           int n, int in, int nseg, const struct pgd_cuda_fp8_dec_seg *segs,
                           char *err, size_t errlen)
{
    if (!pgd_cuda__fp8_dec_ok(c, n, in) || nseg < 1 || nseg > FD_MAX_SEGS ||
        (glu >= 0 && nseg != 1))
        return pgd_cuda_failf(err, errlen, "fp8 decode GEMV: x [%d, %d] (1..%d rows, in a "
                              "multiple of 64, compute capability 8.0 or later), %d layers "
                              "(1..%d; one with an activation)", n, in, FD_MAX_N, nseg,
                              FD_MAX_SEGS);
    for (int i = 0; i < nseg; i++)
        if (segs[i].out < 1 || (glu >= 0 && segs[i].out % 2 != 0))
            return pgd_cuda_failf(err, errlen, "fp8 decode GEMV: layer %d has %d features%s", i,
                                  segs[i].out, glu >= 0 ? " (gate_up: an even number)" : "");
    if (glu >= 0 && glu != PGD_ACT_SILU && glu != PGD_ACT_GELU_TANH)
        return pgd_cuda_failf(err, errlen, "fp8 decode GEMV: activation %d", glu);
    if (dt == PGD_DTYPE_BF16)
        return fd_run<__nv_bfloat16>(c, dt, glu, x, n, in, nseg, segs, err, errlen);
    if (dt == PGD_DTYPE_F16)
        return fd_run<__half>(c, dt, glu, x, n, in, nseg, segs, err, errlen);
    return pgd_cuda_failf(err, errlen, "fp8 decode GEMV: activations in %s (BF16 or F16)",
                          pgd_dtype_name(dt));
}
