/* The decode GEMV of 4-bit layers in the mma layout (quant_wq.cuh): y [n, out] = x [n, in]
 * @ W^T (+ b) for the n = 1..16 rows of a decode step, at the speed of reading the packed
 * weights once.
 *
 * Why it is shaped so (H200: 132 SMs, ~4.2 TB/s, one to a few us from a load's issue to its
 * data under load): at full bandwidth about 100 KB must be in flight an SM at all times,
 * and any load that waits on another (a group's scale fetched when the group starts, x
 * fetched when a chunk is used) stops the stream. A first version (one tile a block, each
 * warp's chunks loaded into registers at once, then computed) reached 27-42% of the bound
 * on the H200: its blocks loaded, then computed, then ended, all in step, so the memory
 * was idle while they computed. So:
 *   - each warp streams its chunks through its own ring in shared memory (cp.async, 16
 *     bytes a lane, G4_STAGES stages of G4_UNR chunks: three stages in flight while it
 *     computes the fourth), the first issued before the previous kernel has finished
 *     (programmatic dependent launch: weights are never written by a step); a lane reads
 *     back only what it copied, so no barrier orders the ring;
 *   - a block's 8 warps split each 16-row tile's 64-input chunks (512 contiguous bytes a
 *     chunk) into contiguous runs; a layer of more tiles than the SMs hold blocks gives each
 *     block several tiles one after another, and the rings run on across a tile's end, so
 *     one wave of blocks streams the whole layer;
 *   - the block's scales and zeros (16 rows a tile x groups half2) are copied into shared
 *     memory before the loop, also before the previous kernel ends: the loop never waits
 *     on a scale;
 *   - x is staged into shared memory once a block (rows padded by 16 bytes so the B
 *     fragments' 8 tokens hit distinct banks), gathered through perm as it is staged, so
 *     act-order costs the same as plain; when n x in does not fit (large n and in), the
 *     warps read x from L1 / L2 instead, and act-order x is gathered by a staging kernel;
 *   - at a tile's end the warps meet in shared memory (one named barrier, the sums double-
 *     buffered), and warp 0 writes the tile's y;
 *   - a layer of fewer tiles than SMs (tensor-parallel shards, small models) splits each
 *     tile's inputs over a cluster of ks blocks (sm_90), which add their sums in block 0's
 *     shared memory (distributed shared memory): every SM gets work, and y is still
 *     written once, by one kernel, in a fixed order.
 * The arithmetic is quant_wq_mma.cu's: nibbles AND-ed into a 16-bit magic pair (one LOP3)
 * minus (magic + zero) (one HADD2) are the exact integers q - zero, mma.sync m16n8k16
 * multiplies them by x in float32, each group's float32 sums are scaled once at the group's
 * end. About 60 instructions a warp per 512-byte chunk: at ~16 bytes per SM cycle of DRAM
 * bandwidth that is half the issue rate, so the loads, not the arithmetic, set the time. */
#include "kernels/cuda/quant_wq.cuh"
#include "kernels/cuda/cp_async.cuh"
#include <cooperative_groups.h>

#define G4_WK 8                      /* warps a tile */
#define G4_UNR 4                     /* chunks a stage of a warp's ring */
#define G4_STAGES 4                  /* stages a warp's ring: three in flight while one computes */
#define G4_BLOCKS_SM 2               /* blocks an SM surely holds (shared memory: the rings) */
#define G4_META_TPB_MAX (16 << 10)   /* scale-table bytes a block of several tiles may take */
#define G4_XPAD 8                    /* elements of padding after each staged x row */
#define G4_STAGE_UNR 4               /* 16-byte x pieces a thread has in flight staging */
#define G4_META_UNR 8                /* scale-table loads a thread has in flight staging */
#define G4_SMEM_CAP (112 << 10)      /* shared memory a block may take: two blocks an SM on
                                        sm_90 (less where the device allows less) */
#define G4_META_MAX (32 << 10)       /* larger scale tables take quant_wq_mma.cu's GEMV */
#define G4_KS_MAX 8                  /* blocks a cluster (the portable limit) */
#define G4_KQS_MIN 16                /* chunks a split at least (two a warp) */

struct g4_args {
    const uint4 *w;                  /* [tiles][kq][32] */
    const __half2 *meta;             /* [out_pad][groups] */
    const int32_t *perm;             /* [in], PERM only */
    int kq, groups, gsteps;          /* 64-input chunks a row; 16-input steps a group */
    int ks, kqs, kpw;                /* blocks a tile (its cluster); chunks a block; a warp */
    int tiles, in, out, n;           /* n: rows of this launch (<= 8 NT) */
    int xvec;                        /* x 16-byte aligned: staged in 16-byte pieces */
    int xst;                         /* staged x's row stride: kqs * 64 + G4_XPAD elements */
    int tpb;                         /* tiles a block (ks 1), one after another */
    int meta_bytes;                  /* the shared scale tables' bytes (a multiple of 16) */
    int xs_bytes;                    /* the staged x's bytes (0: x read from global memory) */
    int cred_off;                    /* byte offset of the cluster's sums [ks][NT][4][32] */
};

/* A warp's running state: float32 sums of the current group (acc; with one token tile, even
 * and odd 16-input steps apart: two independent chains of mma.sync instead of one) and of
 * the finished groups (tot), and the current group's scales and magic + zero pairs for rows
 * g and g + 8. */
template <int NT>
struct g4_state {
    static constexpr int AC = NT == 1 ? 2 : 1;
    float acc[AC][NT][4], tot[NT][4];
    int gi, left;                    /* the group; its 16-input steps left */
    float sg, sg8;
    uint32_t zg, zg8;
};

template <typename T, int NT>
__device__ __forceinline__ void g4_group(g4_state<NT> &st, const __half2 *ms, int g)
{
    const __half2 m = ms[st.gi * 16 + g], m8 = ms[st.gi * 16 + g + 8];
    st.sg = __low2float(m);
    st.sg8 = __low2float(m8);
    st.zg = pair_of<T>(mma_magic<T>::BIAS + __high2float(m));
    st.zg8 = pair_of<T>(mma_magic<T>::BIAS + __high2float(m8));
}

/* The group's sums, scaled, into the totals. */
template <int NT>
__device__ __forceinline__ void g4_flush(g4_state<NT> &st)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        float a[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int c = 0; c < g4_state<NT>::AC; c++) {
                a[i] += st.acc[c][nt][i];
                st.acc[c][nt][i] = 0.0f;
            }
        st.tot[nt][0] = fmaf(st.sg, a[0], st.tot[nt][0]);
        st.tot[nt][1] = fmaf(st.sg, a[1], st.tot[nt][1]);
        st.tot[nt][2] = fmaf(st.sg8, a[2], st.tot[nt][2]);
        st.tot[nt][3] = fmaf(st.sg8, a[3], st.tot[nt][3]);
    }
}

/* One 64-input chunk kq of the warp's tile: its four 16 x 16 A tiles (words of v) times x.
 * xb: x rows of stride xst holding inputs from xk0 on (shared memory when XS, else global,
 * 4-byte aligned). */
template <typename T, int NT, bool XS>
__device__ __forceinline__ void g4_chunk(const uint4 &v, int kq, const T *__restrict__ xb,
                                         int xst, int xk0, int n, int lane, const __half2 *ms,
                                         int gsteps, int groups, g4_state<NT> &st)
{
    const int g = lane >> 2, t = lane & 3;
    const uint32_t words[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const int k0 = kq * 64 + s * 16 - xk0;
        uint32_t A[4];
        A[0] = sub_pair<T>(nibble_pair<T>(words[s]), st.zg);
        A[1] = sub_pair<T>(nibble_pair<T>(words[s] >> 4), st.zg8);
        A[2] = sub_pair<T>(nibble_pair<T>(words[s] >> 8), st.zg);
        A[3] = sub_pair<T>(nibble_pair<T>(words[s] >> 12), st.zg8);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int tok = nt * 8 + g;
            uint32_t B[2] = { 0u, 0u };
            if (tok < n) {           /* inputs 2t, 2t + 1 and 2t + 8, 2t + 9 of the step */
                const uint32_t *xr = reinterpret_cast<const uint32_t *>(xb + (size_t)tok * xst +
                                                                        k0 + 2 * t);
                B[0] = XS ? xr[0] : __ldg(xr);
                B[1] = XS ? xr[4] : __ldg(xr + 4);
            }
            mma16816<T>(st.acc[s % g4_state<NT>::AC][nt], A, B);
        }
        if (--st.left == 0) {
            g4_flush<NT>(st);
            st.gi++;
            st.left = gsteps;
            if (st.gi < groups)
                g4_group<T, NT>(st, ms, g);
        }
    }
}

/* The weights' ring: 16-byte asynchronous copies global -> shared (cp_async.cuh: L2 only),
 * a lane copying and later reading only its own 16 bytes of each chunk, so its own
 * cp.async.wait_group is all the ordering there is (the "memory" clobbers keep the ring's
 * reads after the wait and before the next copy). */
/* The copies' cursor to the warp's next chunk: the next of this tile's nw, or the first of
 * the next tile (kq chunks a tile row). */
__device__ __forceinline__ void g4_advance(const uint4 *&cp, int &ck, int nw, int kq)
{
    cp += 32;
    if (++ck == nw) {
        ck = 0;
        cp += (size_t)(kq - nw) * 32;
    }
}

/* ms [nt][groups][16] = rows [16 tile0, 16 (tile0 + nt)) of meta [out_pad][groups], by the
 * whole block, G4_META_UNR loads in flight a thread (the table is in DRAM: one latency, not
 * several). */
__device__ __forceinline__ void g4_stage_meta(const g4_args &a, int tile0, int nt, __half2 *ms)
{
    const int groups = a.groups;
    wq_stage_meta<G4_META_UNR>(a.meta, groups, tile0, nt, [&](int r, int gg, __half2 m) {
        ms[((r / 16) * groups + gg) * 16 + r % 16] = m;
    });
}

/* The cluster's sums (ks > 1): warp 0 of split s > 0 writes its block's sums v into block
 * 0's shared memory, every thread of the cluster meets at the cluster barrier, and block
 * 0's warp 0 adds them to its own in split order. Returns whether this block goes on to
 * write y (block 0). Every thread of every block calls it once. */
template <int NT>
__device__ __forceinline__ bool g4_cluster_add(const g4_args &a, int split, int warp, int lane,
                                               float (&v)[NT][4])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    extern __shared__ uint4 g4_smem[];
    float *cred = reinterpret_cast<float *>(reinterpret_cast<char *>(g4_smem) + a.cred_off);
    cg::cluster_group cl = cg::this_cluster();
    if (warp == 0 && split > 0) {
        float *dst = cl.map_shared_rank(cred, 0);
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                dst[((split * NT + nt) * 4 + i) * 32 + lane] = v[nt][i];
    }
    cl.sync();
    if (split > 0)
        return false;
    if (warp == 0)
        for (int s = 1; s < a.ks; s++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    v[nt][i] += cred[((s * NT + nt) * 4 + i) * 32 + lane];
    return true;
#else
    (void)a; (void)split; (void)warp; (void)lane; (void)v;
    return true;                     /* never launched with ks > 1 below sm_90 */
#endif
}

/* The end of tile tl (block-local) of the block: the warps' sums meet in red[tl % 2]
 * (double-buffered: one barrier a tile), the cluster adds its blocks' (ks > 1), and warp 0
 * of block 0 of the cluster writes the tile's y. Every thread of the block calls it once a
 * tile, in order. */
template <typename T, int NT>
__device__ __forceinline__ void g4_tile_end(const g4_args &a, int tile, int tl, int split,
                                            int warp, int lane, float *red,
                                            float (&tot)[NT][4], const T *__restrict__ b,
                                            T *__restrict__ y)
{
    float *rb = red + (size_t)(tl & 1) * G4_WK * NT * 4 * 32;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            rb[((warp * NT + nt) * 4 + i) * 32 + lane] = tot[nt][i];
            tot[nt][i] = 0.0f;
        }
    /* a named barrier: the warps reach it from different places (their runs end at
     * different chunks of the unrolled loop), which bar.sync counts as arrivals */
    asm volatile("bar.sync 1, %0;" ::"n"(G4_WK * 32) : "memory");
    float v[NT][4];                  /* warp 0: the block's sums */
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[nt][i] = 0.0f;
#pragma unroll
            for (int k = 0; k < G4_WK; k++)
                v[nt][i] += warp == 0 ? rb[((k * NT + nt) * 4 + i) * 32 + lane] : 0.0f;
        }
    if (a.ks > 1 && !g4_cluster_add<NT>(a, split, warp, lane, v))
        return;
    if (warp != 0)
        return;
    wq_store_tile<T, NT>(v, tile, lane, a.out, a.n, b, y);
}

/* NT tiles of 8 tokens (n <= 8 NT). XS: x staged in shared memory (PERM: through perm);
 * else x read from global memory in canonical order, 4-byte aligned. Block: G4_WK warps;
 * blockIdx.x = tb * ks + split: tiles [tb tpb, (tb + 1) tpb) one after another, split
 * taking each tile's chunks [split kqs, (split + 1) kqs) (ks > 1: tpb 1, the ks blocks of
 * a tile one cluster). Warp w takes chunks kq0 + [0, nw) of every tile, streamed through
 * its ring of G4_STAGES stages of G4_UNR chunks (G4_STAGES - 1 stages in flight while it
 * computes one), across the tiles' ends. Shared memory: the ring [G4_WK][G4_STAGES]
 * [G4_UNR][32] uint4, the scale tables [tpb][groups][16] half2, the staged x (the split's
 * inputs), the warps' sums [2][G4_WK][NT][4][32] float, then (ks > 1) the cluster's sums
 * [ks][NT][4][32] float that block 0 adds. */
template <typename T, int NT, bool XS, bool PERM>
__global__ void __launch_bounds__(G4_WK * 32, NT == 2 && !XS ? 2 : 4)
wq_gemv4_kernel(const g4_args a, const T *__restrict__ x, const T *__restrict__ b,
                T *__restrict__ y)
{
    extern __shared__ uint4 g4_smem[];
    uint4 *ring = g4_smem;
    __half2 *ms_all = reinterpret_cast<__half2 *>(ring + G4_WK * G4_STAGES * G4_UNR * 32);
    char *rest = reinterpret_cast<char *>(ms_all) + a.meta_bytes;
    T *xs = reinterpret_cast<T *>(rest);
    float *red = reinterpret_cast<float *>(rest + a.xs_bytes);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2;
    const int tb = blockIdx.x / a.ks, split = blockIdx.x - tb * a.ks;
    const int tile0 = tb * a.tpb, ntl = min(a.tpb, a.tiles - tile0);
    const int kbeg = split * a.kqs, kend = min(a.kq, kbeg + a.kqs);
    const int kq0 = kbeg + warp * a.kpw, nw = max(0, min(kend, kq0 + a.kpw) - kq0);
    const int total = ntl * nw;      /* the warp's chunks over the block's tiles */
    pdl_trigger();

    /* weights and scales: never written by a step, loaded before the previous kernel ends.
     * Chunk j of the warp (tile tile0 + j / nw, kq0 + j % nw) goes to ring slot j % (S U);
     * the copies' cursor: chunk ck of the tile, source cp. */
    uint4 *wr = ring + (size_t)warp * G4_STAGES * G4_UNR * 32 + lane;
    const uint4 *cp = a.w + ((size_t)tile0 * a.kq + kq0) * 32 + lane;
    int ck = 0;
#pragma unroll
    for (int s = 0; s < G4_STAGES - 1; s++) {
#pragma unroll
        for (int u = 0; u < G4_UNR; u++)
            if (s * G4_UNR + u < total) {
                cp_async16(smem_u32(wr + (s * G4_UNR + u) * 32), cp, true);
                g4_advance(cp, ck, nw, a.kq);
            }
        cp_async_commit();
    }
    g4_stage_meta(a, tile0, ntl, ms_all);
    pdl_wait();
    if (XS)
        wq_stage_x<T, PERM, G4_STAGE_UNR>(x, a.perm, a.n, a.in, kbeg * 64, (kend - kbeg) * 64,
                                           a.xvec, xs, a.xst);
    __syncthreads();

    g4_state<NT> st;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            st.tot[nt][i] = 0.0f;
#pragma unroll
            for (int c = 0; c < g4_state<NT>::AC; c++)
                st.acc[c][nt][i] = 0.0f;
        }
    /* the staged x begins at the split's first input */
    const T *xb = XS ? xs : x;
    const int xst = XS ? a.xst : a.in, xk0 = XS ? kbeg * 64 : 0;
    const int gi0 = kq0 * 4 / a.gsteps, left0 = (gi0 + 1) * a.gsteps - kq0 * 4;
    int tl = 0, jt = 0;              /* the tile being computed; its chunks done */
    const __half2 *ms = ms_all;
    if (total > 0) {
        st.gi = gi0;
        st.left = left0;
        g4_group<T, NT>(st, ms, g);
    }
    for (int j0 = 0; j0 < total; j0 += G4_UNR) {
        /* the stage G4_STAGES - 1 ahead goes into the slot the last stage freed */
        const int jn = j0 + (G4_STAGES - 1) * G4_UNR;
        const int slot_n = (j0 / G4_UNR + G4_STAGES - 1) % G4_STAGES;
#pragma unroll
        for (int u = 0; u < G4_UNR; u++)
            if (jn + u < total) {
                cp_async16(smem_u32(wr + (slot_n * G4_UNR + u) * 32), cp, true);
                g4_advance(cp, ck, nw, a.kq);
            }
        cp_async_commit();
        cp_async_wait<G4_STAGES - 1>();   /* this stage's copies have landed */
        const int slot = (j0 / G4_UNR) % G4_STAGES;
#pragma unroll
        for (int u = 0; u < G4_UNR; u++) {
            if (j0 + u >= total)
                break;
            const uint4 v = wr[(slot * G4_UNR + u) * 32];
            g4_chunk<T, NT, XS>(v, kq0 + jt, xb, xst, xk0, a.n, lane, ms, a.gsteps, a.groups, st);
            if (++jt == nw) {        /* the tile's last chunk of this warp */
                g4_flush<NT>(st);
                g4_tile_end<T, NT>(a, tile0 + tl, tl, split, warp, lane, red, st.tot, b, y);
                jt = 0;
                if (++tl < ntl) {
                    ms += (size_t)a.groups * 16;
                    st.gi = gi0;
                    st.left = left0;
                    g4_group<T, NT>(st, ms, g);
                }
            }
        }
    }
    cp_async_wait<0>();
    /* a warp without chunks still meets the others at every tile's end */
    if (total == 0)
        for (tl = 0; tl < ntl; tl++)
            g4_tile_end<T, NT>(a, tile0 + tl, tl, split, warp, lane, red, st.tot, b, y);
}

/* One launch: the kernel for NT, XS, PERM, its shared-memory limit raised past the default
 * 48 KB once on each device that needs it (a per-device attribute). */
template <typename T, int NT, bool XS, bool PERM>
static cudaError_t g4_launch(struct pgd_cuda_ctx *c, const g4_args &a, size_t smem, int smem_max,
                             const T *x, const T *b, T *y)
{
    static uint64_t raised;          /* bit d: done on device d (devices 0..63) */
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    if (smem > (48 << 10) && !(raised & bit)) {
        cudaError_t e = cudaFuncSetAttribute(wq_gemv4_kernel<T, NT, XS, PERM>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             smem_max);
        if (e != cudaSuccess)
            return e;
        raised |= bit;
    }
    /* as pgd_cuda_launch, with the dynamic shared memory and the cluster of ks blocks */
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    pgd_cuda__wq_launch_cfg(c, dim3((a.tiles + a.tpb - 1) / a.tpb * a.ks), dim3(G4_WK * 32), smem,
                            dim3((unsigned)a.ks), &cfg, attr);
    return cudaLaunchKernelEx(&cfg, wq_gemv4_kernel<T, NT, XS, PERM>, a, x, b, y);
}

template <typename T, int NT>
static cudaError_t g4_launch_nt(struct pgd_cuda_ctx *c, const g4_args &a, bool xs, size_t smem,
                                int smem_max, const T *x, const T *b, T *y)
{
    if (!xs)
        return g4_launch<T, NT, false, false>(c, a, smem, smem_max, x, b, y);
    return a.perm ? g4_launch<T, NT, true, true>(c, a, smem, smem_max, x, b, y)
                  : g4_launch<T, NT, true, false>(c, a, smem, smem_max, x, b, y);
}

static size_t g4_round16(size_t v) { return (v + 15) / 16 * 16; }

/* What the context's device allows, asked once a device: clusters (compute capability 9.0
 * or later) and the shared memory a block may take (at most G4_SMEM_CAP). */
struct g4_dev {
    bool known, clusters;
    int smem_max;
};

static const struct g4_dev *g4_device(const struct pgd_cuda_ctx *c)
{
    static struct g4_dev devs[64];
    static const struct g4_dev none = { true, false, 48 << 10 };
    if (c->device < 0 || c->device >= 64)
        return &none;
    struct g4_dev *d = &devs[c->device];
    if (!d->known) {
        int major = 0, optin = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device) !=
            cudaSuccess)
            major = 0;
        if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device) !=
            cudaSuccess)
            optin = 48 << 10;
        d->clusters = major >= 9;
        d->smem_max = optin < G4_SMEM_CAP ? optin : G4_SMEM_CAP;
        d->known = true;
    }
    return d;
}

/* The inputs' split: a layer of fewer tiles than SMs takes ks blocks a tile, enough for two
 * blocks an SM, at most G4_KS_MAX and at least G4_KQS_MIN chunks each, none empty. */
static void g4_split(const struct pgd_cuda_ctx *c, g4_args *a)
{
    int ks = 1;
    if (a->tiles < c->sm_count && g4_device(c)->clusters) {
        ks = (2 * c->sm_count + a->tiles - 1) / a->tiles;
        ks = ks < G4_KS_MAX ? ks : G4_KS_MAX;
        ks = ks < a->kq / G4_KQS_MIN ? ks : a->kq / G4_KQS_MIN;
        ks = ks < 1 ? 1 : ks;
    }
    a->kqs = (a->kq + ks - 1) / ks;
    a->ks = (a->kq + a->kqs - 1) / a->kqs;
    a->kpw = (a->kqs + G4_WK - 1) / G4_WK;
    a->xst = a->kqs * 64 + G4_XPAD;
    /* at least twice as many tiles as the SMs hold blocks: each block takes several, one
     * after another, so that one wave of blocks streams the whole layer (its scale tables
     * permitting); with fewer, whole tiles a block balance the SMs better */
    const int slots = G4_BLOCKS_SM * c->sm_count, tile_meta = a->groups * 16 * 4;
    int tpb = a->ks == 1 && a->tiles >= 2 * slots ? (a->tiles + slots - 1) / slots : 1;
    while (tpb > 1 && tpb * tile_meta > G4_META_TPB_MAX)
        tpb--;
    a->tpb = tpb;
    a->meta_bytes = (int)g4_round16((size_t)tpb * tile_meta);
}

template <typename T>
static int g4_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const T *x, const int32_t *perm,
                   int n, const struct pgd_cuda_wq *w, const T *b, T *y, char *err,
                   size_t errlen)
{
    g4_args a = {};
    a.w = reinterpret_cast<const uint4 *>(w->w);
    a.meta = w->meta;
    a.kq = w->in / 64;
    a.groups = w->groups;
    a.gsteps = w->group_size / 16;
    a.tiles = w->out_pad / 16;
    a.in = w->in;
    a.out = w->out;
    g4_split(c, &a);
    const int smem_max = g4_device(c)->smem_max;
    for (int r0 = 0; r0 < n; r0 += 16) {
        a.n = n - r0 < 16 ? n - r0 : 16;
        const T *xr = x + (size_t)r0 * w->in;
        /* shared memory: the weights' ring, the scale tables, the staged x, the warps' sums
         * (two sets), the cluster's sums */
        const size_t ring = (size_t)G4_WK * G4_STAGES * G4_UNR * 32 * sizeof(uint4);
        const size_t sums = (size_t)(a.n > 8 ? 2 : 1) * 4 * 32 * sizeof(float);
        const size_t red = 2 * G4_WK * sums, cred = a.ks > 1 ? a.ks * sums : 0;
        const size_t xsb = g4_round16((size_t)a.n * a.xst * sizeof(T));
        const size_t fixed = ring + a.meta_bytes + red + cred;
        T *yr = y + (size_t)r0 * w->out;
        if (fixed > (size_t)smem_max) {
            /* the scale tables leave the ring no room: quant_wq_mma.cu's GEMV (x in
             * canonical order 4-byte aligned, or gathered through perm as it loads) */
            if (!perm && (uintptr_t)xr % 4 != 0) {
                if (pgd_cuda__qstage_x(c, dt, xr, NULL, a.n, w->in, c->qscratch, err, errlen))
                    return 1;
                xr = (const T *)c->qscratch;
            }
            if (pgd_cuda__wq_mma_gemv(c, dt, xr, perm, a.n, w, b, yr, err, errlen))
                return 1;
            continue;
        }
        const bool xs = fixed + xsb <= (size_t)smem_max;
        a.xs_bytes = xs ? (int)xsb : 0;
        a.cred_off = (int)(ring + a.meta_bytes + a.xs_bytes + red);
        const size_t smem = fixed + a.xs_bytes;
        /* act-order x staged in shared memory: gathered there by the block when that is one
         * round of loads a thread (each round waits on the perm indices, then on x: two
         * latencies after the previous kernel ends); longer splits (down: 14336 inputs)
         * take a gathering kernel first, whose indices load before the previous kernel
         * ends, and stage the gathered x in 16-byte pieces */
        const bool pregather = xs && perm &&
                               (long)a.n * a.kqs * 8 > (long)G4_STAGE_UNR * G4_WK * 32;
        if (pregather) {
            if (pgd_cuda__wq_gather(c, dt, xr, perm, a.n, w->in, c->qscratch, err, errlen))
                return 1;
            xr = (const T *)c->qscratch;
        }
        a.perm = xs && !pregather ? perm : NULL;
        a.xvec = (uintptr_t)xr % 16 == 0;
        if (!xs && (perm || (uintptr_t)xr % 4 != 0)) {   /* (never pregathered) */
            /* x read from global memory: act-order or misaligned x gathered first */
            if (pgd_cuda__qstage_x(c, dt, xr, perm, a.n, w->in, c->qscratch, err, errlen))
                return 1;
            xr = (const T *)c->qscratch;
        }
        const cudaError_t e = a.n > 8 ? g4_launch_nt<T, 2>(c, a, xs, smem, smem_max, xr, b, yr)
                                      : g4_launch_nt<T, 1>(c, a, xs, smem, smem_max, xr, b, yr);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "W4A16 decode GEMV x [%d, %d] -> %d (rows %d..%d, "
                                  "%d-block clusters, %zu bytes of shared memory): %s", n, w->in,
                                  w->out, r0, r0 + a.n - 1, a.ks, smem, cudaGetErrorString(e));
    }
    return 0;
}

/* Whether the decode GEMV takes the layer: its scale table fits shared memory. */
bool pgd_cuda__wq_gemv4_fits(const struct pgd_cuda_wq *w)
{
    return w->mma && (size_t)w->groups * 16 * sizeof(__half2) <= G4_META_MAX;
}

int pgd_cuda__wq_gemv4(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                       void *y, char *err, size_t errlen)
{
    if (dt == PGD_DTYPE_BF16)
        return g4_gemv<__nv_bfloat16>(c, dt, (const __nv_bfloat16 *)x, perm, n, w,
                                      (const __nv_bfloat16 *)b, (__nv_bfloat16 *)y, err, errlen);
    return g4_gemv<__half>(c, dt, (const __half *)x, perm, n, w, (const __half *)b, (__half *)y,
                           err, errlen);
}
