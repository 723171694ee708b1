/* The streaming decode GEMV of 4-bit layers in the mma layout (quant_wq.cuh): y [n, out] =
 * x [n, in] @ W^T (+ b) for the n = 1..16 rows of a decode step, at the speed of reading
 * the packed weights once. The default; PGD_CUDA_WQ_GEMV=old takes quant_wq_gemv.cu's
 * instead (for measuring one against the other).
 *
 * Shaped after the bf16 GEMV that reaches 84-93% of the copy bandwidth (linear.cu): every
 * warp streams its own run of weights through registers, with no barrier between its first
 * load and its last multiply.
 *   - The layout is already what a stream wants: each 16-row x 64-input block (a "chunk")
 *     is 512 contiguous bytes, one fully coalesced 16-byte load a lane (quant_wq_mma.cu
 *     packs it at create, each lane's 16 bytes its mma.sync A fragments).
 *   - A warp owns one 16-row tile and a contiguous run of its chunks: ks warps of a block
 *     split a tile's inputs, a block holds tpb tiles (ks tpb <= 8 warps), as stream_plan.h
 *     picks them. Its default rule: ks = 1, 2, 4 or 8, the largest that still puts every
 *     block of 8 warps on the chip at once (two an SM), so small layers (q/o: 256 tiles)
 *     give every SM 16 warps of work and large ones (gate_up: 1792 tiles) a whole tile a
 *     warp, and no block waits for a second wave.
 *   - SG_UNR chunks (4 KB a warp) are loaded into registers before any is used, in two
 *     register buffers, each refilled as soon as it has been computed: 4-8 KB in flight a
 *     warp, 64-128 KB an SM. The first 2 SG_UNR chunks' loads, and the block's scales
 *     and zeros (copied into shared memory as each lane uses them: rows g and g + 8's
 *     float32 scales and {magic + zero} pairs, one 16-byte read a lane a group), go out
 *     before the previous kernel has finished (programmatic dependent launch: weights are
 *     never written by a step).
 *   - x: staged once a block into shared memory when it fits (n = 1 at every width of an
 *     8B model; up to 12 rows of 4096), rows padded by 16 bytes so the B fragments' 8
 *     tokens hit distinct banks; else read from L1 / L2. An act-order x is gathered
 *     through perm once a launch by a small kernel (PGD_CUDA_WQ_GATHER_ONCE=0: by every
 *     block as it stages x, which the H200 measured 7-17% slower on the 8B step).
 *   - The scale tables are staged a row pair a thread (sg_stage_meta): rows g and g + 8 of
 *     one group in one 16-byte store, consecutive lanes consecutive entries, so a warp's
 *     stores hit distinct banks (a row a thread put a warp's 32 lanes, one row's groups, on
 *     one bank: 7,936 excess wavefronts a gate_up block). H100, 8B GPTQ w4g128: the decode
 *     step 3.17 -> 2.89 ms at batch 1, 3.90 -> 3.65 at 8. PGD_CUDA_WQ_META_PAIRS=0 takes the
 *     row-a-thread staging (the same bits).
 *   - q, k and v of one x may share a launch (SEGS: pgd_cuda__wq_sgemv_multi), each block
 *     holding tiles of one layer; act-order ones too where they hold one permutation (equal
 *     ones share a device copy from create on: pgd_cuda_wq_perms), x gathered through it
 *     once before the launch.
 *   - The ks partial sums of a tile meet once, at the end, in shared memory, and the
 *     tile's first warp adds them in slice order: deterministic, no atomics, one launch.
 *   - Few warps an SM (16) each run long chains of dependent instructions, so the loop is
 *     bound by issue latency, not by bytes in flight (ncu, H200, q / o at one row: DRAM at
 *     18% of its peak, 9.5 cycles a warp between issues). A chunk therefore costs ~66
 *     instructions, not ~109: whole batches run without a branch a chunk, a chunk's group
 *     is a multiply and a shift (pgd_cuda__wq_group_magic), lanes past n read row n - 1 instead of
 *     being tested, and two chunks' mma.sync chains are interleaved (sg_chunks).
 * The arithmetic is quant_wq_mma.cu's: nibbles AND-ed into a 16-bit magic pair (one LOP3)
 * minus (magic + zero) (one HSUB2) are the exact integers q - zero, mma.sync m16n8k16
 * multiplies them by x in float32, and each chunk's (or half chunk's, groups of 32)
 * float32 sums are scaled once by their group's scale. */
#include "kernels/cuda/quant_wq.cuh"
#include "kernels/cuda/stream_plan.h"
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define SG_WARPS 8                   /* warps a block */
#define SG_UNR 8                     /* chunks a warp loads before it uses any */
#define SG_BLOCKS_SM 2               /* blocks an SM holds (registers: __launch_bounds__) */
#define SG_XPAD 8                    /* elements of padding after each staged x row */
#define SG_STAGE_UNR 8               /* loads a thread has in flight staging x or scales */

struct sg_args {
    const uint4 *w;                  /* [tiles][kq][32] */
    const __half2 *meta;             /* [out_pad][groups] */
    const int32_t *perm;             /* [in]: x staged through it (XM 2) */
    int kq, groups;                  /* 64-input chunks a row; groups a row */
    uint32_t gmul;                   /* 32-input half h2's group: h2 gmul >> gsh (wq_group) */
    int gsh;
    int ks, tpb, kpu;                /* warps a tile; tiles a block (8 / ks); chunks a warp */
    int tiles, in, out, n;           /* n: rows of this launch (<= 8 NT) */
    int xvec, xst;                   /* staged x: 16-byte pieces; its row stride */
    int ms_bytes, xs_bytes;          /* the shared scale tables' and staged x's bytes */
    int meta_pairs;                  /* sg_stage_meta's way (the context's wq_meta_pairs) */
    uint32_t tmul;                   /* meta_pairs: entry q's tile (q tmul) >> tsh = q / groups */
    int tsh;
    /* SEGS (q, k and v of one x in one launch): layer i's weights, scales, bias, output,
     * tiles and features, and its first block first[i] (first[3]: the grid). A block holds
     * tiles of one layer only; w, meta, tiles and out above are layer 0's. */
    const uint4 *lw[3];
    const __half2 *lmeta[3];
    const void *lb[3];
    void *ly[3];
    int ltiles[3], lout[3], first[4];
};

/* d (4 float32) += A (16 x 16) @ B (16 x 8), bf16 or fp16: as quant_mma.cuh's mma16816 but
 * not volatile, so that the compiler may interleave the independent chunks of a batch. */
#define SG_MMA(ty)                                                                             \
    asm("mma.sync.aligned.m16n8k16.row.col.f32." ty "." ty ".f32 {%0, %1, %2, %3}, "           \
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                                        \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                       \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))
template <typename T>
__device__ __forceinline__ void sg_mma(float *d, const uint32_t *a, const uint32_t *b)
{
    if constexpr (std::is_same<T, __half>::value)
        SG_MMA("f16");
    else
        SG_MMA("bf16");
}
#undef SG_MMA

template <int NT>
__device__ __forceinline__ void sg_zero(float (&v)[NT][4])
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            v[nt][i] = 0.0f;
}

/* v[u] = chunk j0 + u of the warp's run (lane's 16 bytes), for j0 + u < nch (a whole batch:
 * no test a chunk). */
__device__ __forceinline__ void sg_load(uint4 (&v)[SG_UNR], const uint4 *wp, int j0, int nch)
{
    wp += (size_t)j0 * 32;
    if (j0 + SG_UNR <= nch) {
#pragma unroll
        for (int u = 0; u < SG_UNR; u++)
            v[u] = ld_stream(wp + u * 32);
    } else {
#pragma unroll
        for (int u = 0; u < SG_UNR; u++)
            v[u] = j0 + u < nch ? ld_stream(wp + u * 32) : make_uint4(0, 0, 0, 0);
    }
}

/* Chunks c .. c + P - 1 (64 inputs each, v[0 .. P)) of the warp's tile into tot. MG 1: a
 * chunk lies in one group; 2: its two 32-input halves are scaled apart (groups of 32, or of a
 * size not a multiple of 64). mt: the tile's scale table at row g (sg_stage_meta's); xl[nt]:
 * lane (g, t)'s x row of token tile nt at input 2t (shared memory or global, 4-byte aligned).
 * Each chunk (half) sums into its own acc, its 16 x 16 tiles in order, and is scaled into tot
 * in chunk (half) order, as one chunk at a time would: the same sums to the bit. The P chunks'
 * tiles are issued in turn, so that each chunk's chain of dependent mma.sync overlaps the
 * others' (the compiler keeps a chain in one piece when left to itself). */
template <typename T, int NT, int MG, bool XS, int P>
__device__ __forceinline__ void sg_chunks(uint32_t gmul, int gsh, const uint4 *v, int c,
                                          const uint4 *mt, const T *const (&xl)[NT],
                                          float (&tot)[NT][4])
{
    uint4 m[P][MG];
    float acc[P][MG][NT][4];
#pragma unroll
    for (int p = 0; p < P; p++)
#pragma unroll
        for (int h = 0; h < MG; h++) {
            m[p][h] = mt[wq_group(gmul, gsh, 2 * (c + p) + h) * 8];
            sg_zero<NT>(acc[p][h]);
        }
#pragma unroll
    for (int s = 0; s < 4; s++)
#pragma unroll
        for (int p = 0; p < P; p++) {
            /* word s: the 16 x 16 tile of inputs (c + p) * 64 + s * 16 (quant_wq_mma.cu's
             * order), in half s / 2 */
            const int h = s * MG / 4;
            const uint32_t w = s == 0 ? v[p].x : s == 1 ? v[p].y : s == 2 ? v[p].z : v[p].w;
            const uint32_t z0 = m[p][h].z, z8 = m[p][h].w;
            uint32_t A[4];
            A[0] = sub_pair<T>(nibble_pair<T>(w), z0);
            A[1] = sub_pair<T>(nibble_pair<T>(w >> 4), z8);
            A[2] = sub_pair<T>(nibble_pair<T>(w >> 8), z0);
            A[3] = sub_pair<T>(nibble_pair<T>(w >> 12), z8);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                /* inputs 2t, 2t + 1 and 2t + 8, 2t + 9 of the step */
                const uint32_t *xr =
                    reinterpret_cast<const uint32_t *>(xl[nt] + (c + p) * 64 + s * 16);
                uint32_t B[2];
                B[0] = XS ? xr[0] : __ldg(xr);
                B[1] = XS ? xr[4] : __ldg(xr + 4);
                sg_mma<T>(acc[p][h][nt], A, B);
            }
        }
#pragma unroll
    for (int p = 0; p < P; p++)
#pragma unroll
        for (int h = 0; h < MG; h++) {
            const float s0 = __uint_as_float(m[p][h].x), s8 = __uint_as_float(m[p][h].y);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                tot[nt][0] = fmaf(s0, acc[p][h][nt][0], tot[nt][0]);
                tot[nt][1] = fmaf(s0, acc[p][h][nt][1], tot[nt][1]);
                tot[nt][2] = fmaf(s8, acc[p][h][nt][2], tot[nt][2]);
                tot[nt][3] = fmaf(s8, acc[p][h][nt][3], tot[nt][3]);
            }
        }
}

/* The cnt chunks of v (all SG_UNR when cnt >= SG_UNR), the first chunk c0 of the tile. A
 * whole batch (every one but a warp's last) of one token tile takes the path without a branch
 * a chunk, P chunks interleaved at a time; only the last, partial one tests each chunk. Two
 * token tiles (9-16 rows) test each chunk always: their unrolled whole-batch copy spilled
 * registers inside the loop (H200, an eager 16-token GPTQ step: 46.9 -> 52.4 us a launch,
 * against 14.4 -> 13.3 us gained by q / o at one row). P 2 only where a chunk
 * is one chain of 4 dependent mma.sync (NT 1, MG 1: else its token tiles or halves are
 * already independent chains) and x is staged (read from global memory, two chunks' 64-bit
 * addresses cost more instructions than the overlap saves: 691 against 571 a batch). */
template <typename T, int NT, int MG, bool XS>
__device__ __forceinline__ void sg_batch(uint32_t gmul, int gsh, const uint4 (&v)[SG_UNR],
                                         int c0, int cnt, const uint4 *mt,
                                         const T *const (&xl)[NT], float (&tot)[NT][4])
{
    constexpr int P = NT == 1 && MG == 1 && XS ? 2 : 1;
    static_assert(SG_UNR % P == 0, "a batch holds whole groups of P chunks");
    if (NT == 1 && cnt >= SG_UNR) {
#pragma unroll
        for (int u = 0; u < SG_UNR; u += P)
            sg_chunks<T, NT, MG, XS, P>(gmul, gsh, &v[u], c0 + u, mt, xl, tot);
    } else {
#pragma unroll
        for (int u = 0; u < SG_UNR; u++)
            if (u < cnt)
                sg_chunks<T, NT, MG, XS, 1>(gmul, gsh, &v[u], c0 + u, mt, xl, tot);
    }
}

/* ms [tpb][groups][8] uint4 = {scale of row g, of row g + 8 (float32 bits), {B + zero} of
 * row g, of row g + 8 (pairs in T: what the nibble pairs subtract)} from meta [out_pad]
 * [groups] rows [16 tile0, 16 (tile0 + ntl)), by the whole block, SG_STAGE_UNR loads in
 * flight a thread: each chunk reads its group's four words in one 16-byte load, ready.
 * a.meta_pairs: a thread makes a whole entry (rows g and g + 8) and stores it at once,
 * consecutive lanes consecutive entries; else a thread takes one row's {scale, zero} and
 * stores its two words apart, where a warp's lanes (one row, consecutive groups) all hit
 * one bank: Nsight Compute on the H100 counted 7,936 excess wavefronts a block of the 8B
 * gate_up launch (32 groups, 8 tiles), several microseconds of the shared-memory pipe
 * before the first multiply. */
template <typename T>
__device__ __forceinline__ void sg_stage_meta(const sg_args &a, const __half2 *meta, int tile0,
                                              int ntl, uint32_t *ms)
{
    const int groups = a.groups;
    if (a.meta_pairs) {
        wq_stage_meta_pairs<SG_STAGE_UNR / 2>(
            meta, groups, a.tmul, a.tsh, tile0, ntl,
            [&](int tl, int gg, int rr, __half2 m, __half2 m8) {
                uint4 e;
                e.x = __float_as_uint(__low2float(m));
                e.y = __float_as_uint(__low2float(m8));
                e.z = pair_of<T>(mma_magic<T>::BIAS + __high2float(m));
                e.w = pair_of<T>(mma_magic<T>::BIAS + __high2float(m8));
                reinterpret_cast<uint4 *>(ms)[((size_t)tl * groups + gg) * 8 + rr] = e;
            });
        return;
    }
    wq_stage_meta<SG_STAGE_UNR>(meta, groups, tile0, ntl, [&](int r, int gg, __half2 m) {
        const int rr = r % 16;
        uint32_t *e = ms + (((r / 16) * groups + gg) * 8 + (rr & 7)) * 4 + (rr >> 3);
        e[0] = __float_as_uint(__low2float(m));
        e[2] = pair_of<T>(mma_magic<T>::BIAS + __high2float(m));
    });
}

/* NT tiles of 8 tokens (n <= 8 NT); MG as sg_chunk; XM: 0 x read from global memory
 * (canonical order, 4-byte aligned), 1 staged into shared memory, 2 staged through perm.
 * Block: ks tpb warps (at most SG_WARPS), tiles [blockIdx.x tpb, + tpb); warp w takes tile
 * w / ks, chunks [(w % ks) kpu, + kpu) of it. Shared memory: the scale tables [tpb][groups]
 * [8] uint4, the staged x [n][xst] (XM > 0), the warps' sums [ks tpb][NT][4][32] float (ks
 * > 1). */
template <typename T, int NT, int MG, int XM, bool SEGS>
__global__ void __launch_bounds__(SG_WARPS * 32, SG_BLOCKS_SM)
wq_sgemv_kernel(const sg_args a, const T *__restrict__ x, const T *__restrict__ b,
                T *__restrict__ y)
{
    extern __shared__ uint4 sg_smem[];
    char *sm = reinterpret_cast<char *>(sg_smem);
    const uint4 *ms = reinterpret_cast<const uint4 *>(sm);
    T *xs = reinterpret_cast<T *>(sm + a.ms_bytes);
    float *red = reinterpret_cast<float *>(sm + a.ms_bytes + a.xs_bytes);
    /* the block's layer (SEGS) and its index among that layer's blocks */
    int blk = (int)blockIdx.x, tiles = a.tiles, out = a.out;
    const uint4 *w = a.w;
    const __half2 *meta = a.meta;
    if (SEGS) {
        const int sg = stream_layer_of(a.first[1], a.first[2], blk);
        w = stream_pick(sg, a.lw);
        meta = stream_pick(sg, a.lmeta);
        tiles = stream_pick(sg, a.ltiles);
        out = stream_pick(sg, a.lout);
        b = (const T *)stream_pick(sg, a.lb);
        y = (T *)stream_pick(sg, a.ly);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int tl = warp / a.ks, slice = warp - tl * a.ks;
    const int tile0 = blk * a.tpb, ntl = min(a.tpb, tiles - tile0);
    const int tile = tile0 + tl, kbeg = slice * a.kpu;
    const int nch = tl < ntl ? max(0, min(a.kq, kbeg + a.kpu) - kbeg) : 0;
    pdl_trigger();

    /* weights and scales: never written by a step, asked for before the previous kernel
     * ends */
    const uint4 *wp = w + ((size_t)tile * a.kq + kbeg) * 32 + lane;
    uint4 va[SG_UNR], vb[SG_UNR];
    sg_load(va, wp, 0, nch);
    sg_load(vb, wp, SG_UNR, nch);
    sg_stage_meta<T>(a, meta, tile0, ntl, reinterpret_cast<uint32_t *>(sm));
    pdl_wait();
    if (XM > 0)
        wq_stage_x<T, XM == 2, SG_STAGE_UNR>(x, a.perm, a.n, a.in, 0, a.in, a.xvec, xs, a.xst);
    __syncthreads();

    float tot[NT][4];
    sg_zero<NT>(tot);
    const uint4 *mt = ms + (size_t)(tl < ntl ? tl : 0) * a.groups * 8 + (lane >> 2);
    const T *xb = XM > 0 ? xs : x;
    const int xst = XM > 0 ? a.xst : a.in;
    /* lane (g, t)'s x row of each token tile, at input 2t: token nt * 8 + g, those past n
     * row n - 1 again (an mma's columns are independent; a column past n is never stored),
     * so the B fragments need no test */
    const T *xl[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
        xl[nt] = xb + (size_t)min(nt * 8 + (lane >> 2), a.n - 1) * xst + 2 * (lane & 3);
    const uint32_t gmul = a.gmul;
    const int gsh = a.gsh;
    const int nb = (nch + SG_UNR - 1) / SG_UNR;
    /* two register buffers, both filled before the previous kernel ended: a buffer is
     * refilled as soon as it has been computed, while the other one's loads land */
    for (int bi = 0; bi < nb; bi += 2) {
        sg_batch<T, NT, MG, XM != 0>(gmul, gsh, va, kbeg + bi * SG_UNR, nch - bi * SG_UNR, mt,
                                     xl, tot);
        if (bi + 2 < nb)
            sg_load(va, wp, (bi + 2) * SG_UNR, nch);
        if (bi + 1 < nb)
            sg_batch<T, NT, MG, XM != 0>(gmul, gsh, vb, kbeg + (bi + 1) * SG_UNR,
                                         nch - (bi + 1) * SG_UNR, mt, xl, tot);
        if (bi + 3 < nb)
            sg_load(vb, wp, (bi + 3) * SG_UNR, nch);
    }

    if (a.ks > 1) {                  /* the tile's slices meet: slice 0 adds them in order */
        float *rw = red + (size_t)warp * NT * 4 * 32;
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                rw[(nt * 4 + i) * 32 + lane] = tot[nt][i];
        __syncthreads();
        if (slice != 0)
            return;
        for (int s = 1; s < a.ks; s++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    tot[nt][i] += rw[((size_t)s * NT * 4 + nt * 4 + i) * 32 + lane];
    }
    if (tl >= ntl)
        return;
    wq_store_tile<T, NT>(tot, tile, lane, out, a.n, b, y);
}

/* ---- host side ------------------------------------------------------------------------------ */
/* The shared memory a block may take while SG_BLOCKS_SM blocks share an SM (the limit the
 * kernels are given: a plan of smaller blocks, more an SM, stays under it too). */
static int sg_smem_budget(const struct pgd_cuda_ctx *c)
{
    return pgd_cuda__smem_budget(c, SG_BLOCKS_SM);
}

static size_t sg_round16(size_t v) { return (v + 15) / 16 * 16; }

/* The launch for n (<= 16) rows: the split, the shared memory, whether x is staged. false:
 * the layer's scale tables leave no room, or its rows are past pgd_cuda__wq_group_magic's (the caller
 * takes another GEMV). */
struct sg_plan {
    sg_args a;
    int nt;                          /* token tiles: 1 (n <= 8) or 2 */
    int mg;                          /* 1: chunks inside one group; 2: halves apart */
    bool xs;                         /* x staged in shared memory */
    int warps;                       /* warps a block: ks tpb */
    size_t smem;
};

/* count (1..3) layers of one x (SEGS when more than one: they share in, the group size and
 * the groups; the caller checked), each layer's blocks its own. */
static bool sg_make_plan_layers(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *const *ws,
                                int count, int n, struct sg_plan *p)
{
    const struct pgd_cuda_wq *w = ws[0];
    sg_args &a = p->a;
    a = sg_args{};
    for (int i = 0; i < count; i++) {
        a.lw[i] = reinterpret_cast<const uint4 *>(ws[i]->w);
        a.lmeta[i] = ws[i]->meta;
        a.ltiles[i] = ws[i]->out_pad / 16;
        a.lout[i] = ws[i]->out;
    }
    a.w = reinterpret_cast<const uint4 *>(w->w);
    a.meta = w->meta;
    a.kq = w->in / 64;
    a.groups = w->groups;
    if (!pgd_cuda__wq_group_magic(w, &a.gmul, &a.gsh))
        return false;
    a.tiles = w->out_pad / 16;
    a.in = w->in;
    a.out = w->out;
    a.n = n;
    /* a block's entries are q < tpb groups <= 8 groups (meta_pairs' staging) */
    a.meta_pairs = c->wq_meta_pairs &&
                   pgd_cuda__div_magic((uint64_t)a.groups, 8 * (uint64_t)a.groups - 1, &a.tmul,
                                       &a.tsh);
    p->nt = n > 8 ? 2 : 1;
    p->mg = w->group_size % 64 == 0 ? 1 : 2;
    /* the split over the SMs (stream_plan.h's rule); x staged in shared memory where the
     * plan leaves it room */
    struct pgd_stream_shape sh = pgd_cuda__stream_shape(c, SG_WARPS, SG_BLOCKS_SM, a.kq, count,
                                                        a.ltiles, false);
    sh.smem_tile = (size_t)a.groups * 8 * sizeof(uint4);
    sh.smem_warp_red = (size_t)p->nt * 4 * 32 * sizeof(float);
    sh.smem_block_max = (size_t)sg_smem_budget(c);
    a.xst = w->in + SG_XPAD;
    const size_t xsb = sg_round16((size_t)n * a.xst * 2);
    sh.smem_fixed = xsb;
    struct pgd_stream_plan sp;
    p->xs = pgd__stream_plan_make(&sh, &sp);
    sh.smem_fixed = 0;
    if (!p->xs && !pgd__stream_plan_make(&sh, &sp))
        return false;                /* the scale tables leave no room */
    a.ks = sp.ks;
    a.tpb = sp.tpb;
    a.kpu = sp.kpu;
    for (int i = 0; i < 4; i++)
        a.first[i] = sp.first[i];
    p->warps = sp.warps;
    a.ms_bytes = (int)sg_round16((size_t)a.tpb * sh.smem_tile);
    a.xs_bytes = p->xs ? (int)xsb : 0;
    p->smem = sp.smem;
    return true;
}

static bool sg_make_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                         struct sg_plan *p)
{
    return sg_make_plan_layers(c, &w, 1, n, p);
}

/* One launch: the kernel for NT, MG, XM and SEGS, its shared-memory limit raised past the
 * default 48 KB once on each device that needs it (a per-device attribute). */
template <typename T, int NT, int MG, int XM, bool SEGS = false>
static cudaError_t sg_launch(struct pgd_cuda_ctx *c, const sg_plan &p, const T *x, const T *b,
                             T *y)
{
    static uint64_t raised;          /* bit d: done on device d (devices 0..63) */
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    if (p.smem > (48 << 10) && !(raised & bit)) {
        cudaError_t e = cudaFuncSetAttribute(wq_sgemv_kernel<T, NT, MG, XM, SEGS>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             sg_smem_budget(c));
        if (e != cudaSuccess)
            return e;
        raised |= bit;
    }
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    pgd_cuda__wq_launch_cfg(c, dim3(p.a.first[3]), dim3(p.warps * 32), p.smem, dim3(1), &cfg,
                            attr);
    return cudaLaunchKernelEx(&cfg, wq_sgemv_kernel<T, NT, MG, XM, SEGS>, p.a, x, b, y);
}

template <typename T, int NT, int MG>
static cudaError_t sg_launch_xm(struct pgd_cuda_ctx *c, const sg_plan &p, const T *x, const T *b,
                                T *y)
{
    if (!p.xs)
        return sg_launch<T, NT, MG, 0>(c, p, x, b, y);
    return p.a.perm ? sg_launch<T, NT, MG, 2>(c, p, x, b, y)
                    : sg_launch<T, NT, MG, 1>(c, p, x, b, y);
}

/* Whether an act-order layer's x is gathered through its permutation once a launch, by a
 * small kernel into the scratch (PGD_CUDA_WQ_GATHER_ONCE=0: by every block as it stages x,
 * an index and a scattered load an element; read once). */
static bool sg_gather_once(void)
{
    static int v = -1;
    if (v < 0)
        v = pgd_cuda__qenv_int("PGD_CUDA_WQ_GATHER_ONCE", 1) != 0;
    return v != 0;
}

/* q, k and v (count 2..3 layers of one x, n <= 8 rows) in one launch, each layer's blocks
 * its own: where every layer has the mma layout with the same inputs, group size and groups,
 * one act-order permutation or none, and the plan stages x (a block stages x once for
 * whichever layer it serves). The permutation is one when the layers hold one device copy
 * (made with one pgd_cuda_wq_perms set: equal entries, decided exactly at create), so the
 * test is pointer equality; then x is gathered through it once, by the small kernel, into
 * the scratch (which this launch uses for nothing else; the caller checked it holds x), and
 * the kernel stages that as plain x, as sg_gemv's "gather once" does for one layer. Returns
 * 2 where it does not take them (some layers act-order and others not, or different
 * permutations; PGD_CUDA_WQ_GATHER_ONCE=0 for act-order ones, whose single-layer path then
 * gathers in every block): the caller runs them one by one. */
template <typename T>
static int sg_gemv_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const T *x, int n, int count,
                         const struct pgd_cuda_wq *const *w, const void *const *b, void *const *y,
                         char *err, size_t errlen)
{
    if (n < 1 || n > 8 || count < 2 || count > 3 || (uintptr_t)x % 2 != 0)
        return 2;
    const int32_t *perm = w[0]->perm;
    for (int i = 0; i < count; i++)
        if (!w[i]->mma || w[i]->perm != perm || w[i]->in != w[0]->in ||
            w[i]->group_size != w[0]->group_size || w[i]->groups != w[0]->groups ||
            w[i]->bits != w[0]->bits)
            return 2;
    if (perm && (!sg_gather_once() || (size_t)n * w[0]->in * sizeof(T) > c->qscratch_bytes))
        return 2;
    sg_plan p;
    if (!sg_make_plan_layers(c, w, count, n, &p) || !p.xs)
        return 2;
    for (int i = 0; i < count; i++) {
        p.a.lb[i] = b[i];
        p.a.ly[i] = y[i];
    }
    if (perm) {
        /* act-order: x gathered once for the three layers, then staged as it is */
        if (pgd_cuda__qstage_x(c, dt, x, perm, n, w[0]->in, c->qscratch, err, errlen))
            return 1;
        x = (const T *)c->qscratch;
    }
    p.a.xvec = (uintptr_t)x % 16 == 0;
    const cudaError_t e = p.mg == 1 ? sg_launch<T, 1, 1, 1, true>(c, p, x, NULL, NULL)
                                    : sg_launch<T, 1, 2, 1, true>(c, p, x, NULL, NULL);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "W4A16 streaming GEMV x [%d, %d] through %d layers "
                              "(%d warps a tile, %zu bytes of shared memory%s): %s", n, w[0]->in,
                              count, p.a.ks, p.smem, perm ? ", x gathered through act-order" : "",
                              cudaGetErrorString(e));
    return 0;
}

/* Whether quant_wq_gemv.cu's GEMV takes these rows instead: x too large to stage while each
 * warp reads every input of its tile (a split of 1: the large layers at 9-16 rows), where
 * each warp's reads of x from L1 cost more than that kernel's splits of the inputs over a
 * cluster (H200, gate_up at 16 rows: 88 us here, 83 us there). */
static bool sg_old_takes(const struct pgd_cuda_wq *w, const sg_plan &p)
{
    return !p.xs && p.a.ks == 1 && pgd_cuda__wq_gemv4_fits(w);
}

template <typename T>
static int sg_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const T *x, const int32_t *perm,
                   int n, const struct pgd_cuda_wq *w, const T *b, T *y, char *err,
                   size_t errlen)
{
    for (int r0 = 0; r0 < n; r0 += 16) {
        const int rows = n - r0 < 16 ? n - r0 : 16;
        sg_plan p;
        if (!sg_make_plan(c, w, rows, &p))
            return pgd_cuda_failf(err, errlen, "W4A16 streaming GEMV [%d, %d], group %d: the "
                                  "scale tables exceed shared memory", w->out, w->in,
                                  w->group_size);
        const T *xr = x + (size_t)r0 * w->in;
        T *yr = y + (size_t)r0 * w->out;
        if (sg_old_takes(w, p)) {
            if (pgd_cuda__wq_gemv4(c, dt, xr, perm, rows, w, b, yr, err, errlen))
                return 1;
            continue;
        }
        if (p.xs && perm && sg_gather_once()) {
            /* act-order: x gathered once for the launch, then staged as it is */
            if (pgd_cuda__qstage_x(c, dt, xr, perm, rows, w->in, c->qscratch, err, errlen))
                return 1;
            xr = (const T *)c->qscratch;
            p.a.xvec = (uintptr_t)xr % 16 == 0;
        } else if (p.xs) {
            p.a.perm = perm;
            p.a.xvec = (uintptr_t)xr % 16 == 0;
        } else if (perm || (uintptr_t)xr % 4 != 0) {
            /* x read from global memory: act-order or misaligned x gathered first */
            if (pgd_cuda__qstage_x(c, dt, xr, perm, rows, w->in, c->qscratch, err, errlen))
                return 1;
            xr = (const T *)c->qscratch;
        }
        cudaError_t e;
        if (p.nt == 1)
            e = p.mg == 1 ? sg_launch_xm<T, 1, 1>(c, p, xr, b, yr)
                          : sg_launch_xm<T, 1, 2>(c, p, xr, b, yr);
        else
            e = p.mg == 1 ? sg_launch_xm<T, 2, 1>(c, p, xr, b, yr)
                          : sg_launch_xm<T, 2, 2>(c, p, xr, b, yr);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "W4A16 streaming GEMV x [%d, %d] -> %d (rows "
                                  "%d..%d, %d warps a tile, %zu bytes of shared memory): %s", n,
                                  w->in, w->out, r0, r0 + rows - 1, p.a.ks, p.smem,
                                  cudaGetErrorString(e));
    }
    return 0;
}

/* Which decode GEMV the environment asks for: PGD_CUDA_WQ_GEMV=old takes quant_wq_gemv.cu's
 * (read once). */
static bool sg_env_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("PGD_CUDA_WQ_GEMV");
        on = !(e && !strcmp(e, "old"));
    }
    return on != 0;
}

extern "C" void pgd_cuda_wq_set_meta_pairs(struct pgd_cuda_ctx *c, int on)
{
    c->wq_meta_pairs = on != 0;
}

bool pgd_cuda__wq_sgemv_fits(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w)
{
    sg_plan p;
    return sg_env_on() && w->mma && w->group_size % 32 == 0 && sg_make_plan(c, w, 16, &p);
}

void pgd_cuda__wq_sgemv_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                             char *buf, size_t len)
{
    sg_plan p;
    if (sg_make_plan(c, w, n < 16 ? n : 16, &p) && sg_old_takes(w, p))
        snprintf(buf, len, "gemv/old");
    else if (sg_make_plan(c, w, n < 16 ? n : 16, &p))
        snprintf(buf, len, "gemv/s%dx%d%s", p.a.ks, p.a.tpb, p.xs ? "" : "g");
    else
        snprintf(buf, len, "gemv");
}

int pgd_cuda__wq_sgemv_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                             int count, const struct pgd_cuda_wq *const *w, const void *const *b,
                             void *const *y, char *err, size_t errlen)
{
    if (!sg_env_on())
        return 2;
    for (int i = 0; i < count; i++)
        if (!pgd_cuda__wq_sgemv_fits(c, w[i]))
            return 2;
    if (dt == PGD_DTYPE_BF16)
        return sg_gemv_multi<__nv_bfloat16>(c, dt, (const __nv_bfloat16 *)x, n, count, w, b, y,
                                            err, errlen);
    return sg_gemv_multi<__half>(c, dt, (const __half *)x, n, count, w, b, y, err, errlen);
}

int pgd_cuda__wq_sgemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                       void *y, char *err, size_t errlen)
{
    if (dt == PGD_DTYPE_BF16)
        return sg_gemv<__nv_bfloat16>(c, dt, (const __nv_bfloat16 *)x, perm, n, w,
                                      (const __nv_bfloat16 *)b, (__nv_bfloat16 *)y, err, errlen);
    return sg_gemv<__half>(c, dt, (const __half *)x, perm, n, w, (const __half *)b, (__half *)y,
                           err, errlen);
}
