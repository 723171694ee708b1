/* The decode GEMV of 4-bit layers in the mma layout (quant_wq.cuh): y [n, out] = x [n, in]
 * @ W^T (+ b) for the n = 1..16 rows of a decode step, at the speed of reading the packed
 * weights once.
 *
 * Why it is shaped so (H200: 132 SMs, ~4.2 TB/s, ~1 us from a load's issue to its data):
 * a layer of 4096 x 4096 is 8 MB, 64 KB an SM, so every SM must have most of its share in
 * flight at once; the time is a few load latencies, and any load that waits on another
 * (a group's scale fetched when the group starts, x fetched when a chunk is used) adds one.
 * So:
 *   - a block takes one 16-row tile, its G4_WK warps each a contiguous run of the tile's
 *     64-input chunks (512 contiguous bytes a chunk, 16 a lane), three blocks an SM;
 *   - a warp keeps two batches of G4_UNR chunks in flight (8 x 16 bytes a lane), the first
 *     two issued before the previous kernel has finished (programmatic dependent launch:
 *     weights are never written by a step), then loads batch b + 2 while it computes b;
 *   - the tile's scales and zeros (16 rows x groups half2) are copied into shared
 *     memory before the loop, also before the previous kernel ends: the loop never waits
 *     on a scale;
 *   - x is staged into shared memory once a block (rows padded by 16 bytes so the B
 *     fragments' 8 tokens hit distinct banks), gathered through perm as it is staged, so
 *     act-order costs the same as plain; when n x in does not fit (large n and in), the
 *     warps read x from L1 / L2 instead, and act-order x is gathered by a staging kernel;
 *   - the warps meet in shared memory, and warp 0 writes the tile's y;
 *   - a layer of fewer tiles than SMs (tensor-parallel shards, small models) splits each
 *     tile's inputs over a cluster of KS blocks (sm_90), which add their sums in block 0's
 *     shared memory (distributed shared memory): every SM gets work, and y is still
 *     written once, by one kernel, in a fixed order.
 * The arithmetic is quant_wq_mma.cu's: nibbles AND-ed into a 16-bit magic pair (one LOP3)
 * minus (magic + zero) (one HADD2) are the exact integers q - zero, mma.sync m16n8k16
 * multiplies them by x in float32, each group's float32 sums are scaled once at the group's
 * end. About 60 instructions a warp per 512-byte chunk: at ~16 bytes per SM cycle of DRAM
 * bandwidth that is half the issue rate, so the loads, not the arithmetic, set the time. */
#include "kernels/cuda/quant_wq.cuh"
#include <cooperative_groups.h>

#define G4_WK 8                      /* warps a tile */
#define G4_UNR 4                     /* chunks a batch; two batches in flight a warp */
#define G4_XPAD 8                    /* elements of padding after each staged x row */
#define G4_STAGE_UNR 2               /* 16-byte x pieces a thread has in flight staging */
#define G4_META_UNR 8                /* scale-table loads a thread has in flight staging */
#define G4_SMEM_MAX (96 << 10)       /* shared memory a block may take: two blocks an SM on
                                        sm_90, and within sm_86/89's 99 KB a block */
#define G4_META_MAX (48 << 10)       /* larger scale tables take quant_wq_mma.cu's GEMV */
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
    int meta_bytes;                  /* the shared scale table's bytes (a multiple of 16) */
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

/* Chunks [k, k + G4_UNR) of the warp's run (those below k1) into v. */
__device__ __forceinline__ void g4_load(uint4 *v, const uint4 *__restrict__ wp, int k, int k1)
{
#pragma unroll
    for (int u = 0; u < G4_UNR; u++)
        if (k + u < k1)
            v[u] = ld_stream(wp + (size_t)(k + u) * 32);
}

/* ms [groups][16] = the tile's rows of meta [out_pad][groups], by the whole block,
 * G4_META_UNR loads in flight a thread (the table is in DRAM: one latency, not several). */
__device__ __forceinline__ void g4_stage_meta(const g4_args &a, int tile, __half2 *ms)
{
    const int total = 16 * a.groups;
    const __half2 *src = a.meta + (size_t)tile * 16 * a.groups;
    for (int i0 = threadIdx.x; i0 < total; i0 += G4_META_UNR * blockDim.x) {
        __half2 v[G4_META_UNR];
#pragma unroll
        for (int u = 0; u < G4_META_UNR; u++)
            if (i0 + u * (int)blockDim.x < total)
                v[u] = __ldg(src + i0 + u * blockDim.x);
#pragma unroll
        for (int u = 0; u < G4_META_UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i < total) {
                const int r = i / a.groups, gg = i - r * a.groups;
                ms[gg * 16 + r] = v[u];
            }
        }
    }
}

/* xs [n][xst] = x [n][k0, k0 + len) (PERM: x[r][perm[k]]), by the whole block in 16-byte
 * pieces, G4_STAGE_UNR of them in flight a thread. */
template <typename T, bool PERM>
__device__ __forceinline__ void g4_stage_x(const g4_args &a, const T *__restrict__ x, int k0,
                                           int len, T *xs)
{
    const int vr = len / 8, total = a.n * vr, xst = a.xst;
    for (int i0 = threadIdx.x; i0 < total; i0 += G4_STAGE_UNR * blockDim.x) {
        uint4 v[G4_STAGE_UNR];
#pragma unroll
        for (int u = 0; u < G4_STAGE_UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i >= total)
                continue;
            const int r = i / vr, k = k0 + (i - r * vr) * 8;
            const T *xr = x + (size_t)r * a.in;
            if (!PERM && a.xvec) {
                v[u] = __ldg(reinterpret_cast<const uint4 *>(xr + k));
                continue;
            }
            int idx[8];
            if (PERM) {
                const int4 p0 = __ldg(reinterpret_cast<const int4 *>(a.perm + k));
                const int4 p1 = __ldg(reinterpret_cast<const int4 *>(a.perm + k + 4));
                idx[0] = p0.x; idx[1] = p0.y; idx[2] = p0.z; idx[3] = p0.w;
                idx[4] = p1.x; idx[5] = p1.y; idx[6] = p1.z; idx[7] = p1.w;
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++)
                    idx[j] = k + j;
            }
            __align__(16) T e[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                e[j] = xr[idx[j]];
            v[u] = *reinterpret_cast<const uint4 *>(e);
        }
#pragma unroll
        for (int u = 0; u < G4_STAGE_UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i < total) {
                const int r = i / vr, k = (i - r * vr) * 8;
                *reinterpret_cast<uint4 *>(xs + (size_t)r * xst + k) = v[u];
            }
        }
    }
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

/* NT tiles of 8 tokens (n <= 8 NT). XS: x staged in shared memory (PERM: through perm);
 * else x read from global memory in canonical order, 4-byte aligned. Block: G4_WK warps;
 * blockIdx.x = tile * ks + split, split taking the tile's chunks [split kqs, (split + 1)
 * kqs), the ks blocks of a tile one cluster when ks > 1. Shared memory: the scale table
 * [groups][16] half2, then the staged x (the split's inputs), whose place the warps'
 * partial sums [G4_WK][NT][4][32] float take at the end, then (ks > 1) the cluster's sums
 * [ks][NT][4][32] float that block 0 adds. Registers: at most 80 (three blocks an SM); the
 * global-x kernel of 16 tokens needs more (two). */
template <typename T, int NT, bool XS, bool PERM>
__global__ void __launch_bounds__(G4_WK * 32, NT == 2 && !XS ? 2 : 3)
wq_gemv4_kernel(const g4_args a, const T *__restrict__ x, const T *__restrict__ b,
                T *__restrict__ y)
{
    extern __shared__ uint4 g4_smem[];
    __half2 *ms = reinterpret_cast<__half2 *>(g4_smem);
    char *rest = reinterpret_cast<char *>(g4_smem) + a.meta_bytes;
    T *xs = reinterpret_cast<T *>(rest);
    float *red = reinterpret_cast<float *>(rest);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2;
    const int tile = blockIdx.x / a.ks, split = blockIdx.x - tile * a.ks;
    const int kbeg = split * a.kqs, kend = min(a.kq, kbeg + a.kqs);
    const int kq0 = kbeg + warp * a.kpw, kq1 = min(kend, kq0 + a.kpw);
    const bool busy = kq0 < kq1;
    pdl_trigger();

    /* weights and scales: never written by a step, loaded before the previous kernel ends */
    const uint4 *wp = a.w + (size_t)tile * a.kq * 32 + lane;
    uint4 wa[G4_UNR], wb[G4_UNR];
    if (busy) {
        g4_load(wa, wp, kq0, kq1);
        g4_load(wb, wp, kq0 + G4_UNR, kq1);
    }
    g4_stage_meta(a, tile, ms);
    pdl_wait();
    if (XS)
        g4_stage_x<T, PERM>(a, x, kbeg * 64, (kend - kbeg) * 64, xs);
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
    if (busy) {
        /* the staged x begins at the split's first input */
        const T *xb = XS ? xs : x;
        const int xst = XS ? a.xst : a.in, xk0 = XS ? kbeg * 64 : 0;
        st.gi = kq0 * 4 / a.gsteps;
        st.left = (st.gi + 1) * a.gsteps - kq0 * 4;
        g4_group<T, NT>(st, ms, g);
        for (int kb = kq0; kb < kq1; kb += 2 * G4_UNR) {
#pragma unroll
            for (int u = 0; u < G4_UNR; u++)
                if (kb + u < kq1)
                    g4_chunk<T, NT, XS>(wa[u], kb + u, xb, xst, xk0, a.n, lane, ms, a.gsteps,
                                        a.groups, st);
            g4_load(wa, wp, kb + 2 * G4_UNR, kq1);
#pragma unroll
            for (int u = 0; u < G4_UNR; u++)
                if (kb + G4_UNR + u < kq1)
                    g4_chunk<T, NT, XS>(wb[u], kb + G4_UNR + u, xb, xst, xk0, a.n, lane, ms,
                                        a.gsteps, a.groups, st);
            g4_load(wb, wp, kb + 3 * G4_UNR, kq1);
        }
        g4_flush<NT>(st);            /* a group cut by the end of the warp's run */
    }
    __syncthreads();                 /* the staged x is read: its place takes the sums */
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            red[((warp * NT + nt) * 4 + i) * 32 + lane] = st.tot[nt][i];
    __syncthreads();
    float v[NT][4];                  /* warp 0: the block's sums */
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[nt][i] = 0.0f;
#pragma unroll
            for (int k = 0; k < G4_WK; k++)
                v[nt][i] += warp == 0 ? red[((k * NT + nt) * 4 + i) * 32 + lane] : 0.0f;
        }
    if (a.ks > 1 && !g4_cluster_add<NT>(a, split, warp, lane, v))
        return;
    if (warp != 0)
        return;
    const int t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            /* accumulator i: feature g (+ 8 for i >= 2), token 2t (+ 1 for odd i) */
            const int o = tile * 16 + g + (i >= 2 ? 8 : 0), tok = nt * 8 + 2 * t + (i & 1);
            if (o < a.out && tok < a.n)
                y[(size_t)tok * a.out + o] = from_f<T>(v[nt][i] + (b ? to_f<T>(b[o]) : 0.0f));
        }
}

/* One launch: the kernel for NT, XS, PERM, its shared-memory limit raised past the default
 * 48 KB once on each device that needs it (a per-device attribute). */
template <typename T, int NT, bool XS, bool PERM>
static cudaError_t g4_launch(struct pgd_cuda_ctx *c, const g4_args &a, size_t smem, const T *x,
                             const T *b, T *y)
{
    static uint64_t raised;          /* bit d: done on device d (devices 0..63) */
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    if (smem > (48 << 10) && !(raised & bit)) {
        cudaError_t e = cudaFuncSetAttribute(wq_gemv4_kernel<T, NT, XS, PERM>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             G4_SMEM_MAX);
        if (e != cudaSuccess)
            return e;
        raised |= bit;
    }
    /* as pgd_cuda_launch, with the dynamic shared memory and the cluster of ks blocks */
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(a.tiles * a.ks);
    cfg.blockDim = dim3(G4_WK * 32);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[2];
    int na = 0;
    if (c->pdl) {
        attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[na++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (a.ks > 1) {
        attr[na].id = cudaLaunchAttributeClusterDimension;
        attr[na].val.clusterDim.x = (unsigned)a.ks;
        attr[na].val.clusterDim.y = 1;
        attr[na++].val.clusterDim.z = 1;
    }
    cfg.attrs = attr;
    cfg.numAttrs = (unsigned)na;
    return cudaLaunchKernelEx(&cfg, wq_gemv4_kernel<T, NT, XS, PERM>, a, x, b, y);
}

template <typename T, int NT>
static cudaError_t g4_launch_nt(struct pgd_cuda_ctx *c, const g4_args &a, bool xs, size_t smem,
                                const T *x, const T *b, T *y)
{
    if (!xs)
        return g4_launch<T, NT, false, false>(c, a, smem, x, b, y);
    return a.perm ? g4_launch<T, NT, true, true>(c, a, smem, x, b, y)
                  : g4_launch<T, NT, true, false>(c, a, smem, x, b, y);
}

static size_t g4_round16(size_t v) { return (v + 15) / 16 * 16; }

/* Whether the context's device launches clusters (compute capability 9.0 or later); asked
 * once a device. */
static bool g4_clusters(const struct pgd_cuda_ctx *c)
{
    static signed char known[64];    /* 0: not asked; 1: yes; -1: no */
    if (c->device < 0 || c->device >= 64)
        return false;
    if (!known[c->device]) {
        int major = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device) !=
            cudaSuccess)
            major = 0;
        known[c->device] = major >= 9 ? 1 : -1;
    }
    return known[c->device] > 0;
}

/* The inputs' split: a layer of fewer tiles than SMs takes ks blocks a tile, enough for two
 * blocks an SM, at most G4_KS_MAX and at least G4_KQS_MIN chunks each, none empty. */
static void g4_split(const struct pgd_cuda_ctx *c, g4_args *a)
{
    int ks = 1;
    if (a->tiles < c->sm_count && g4_clusters(c)) {
        ks = (2 * c->sm_count + a->tiles - 1) / a->tiles;
        ks = ks < G4_KS_MAX ? ks : G4_KS_MAX;
        ks = ks < a->kq / G4_KQS_MIN ? ks : a->kq / G4_KQS_MIN;
        ks = ks < 1 ? 1 : ks;
    }
    a->kqs = (a->kq + ks - 1) / ks;
    a->ks = (a->kq + a->kqs - 1) / a->kqs;
    a->kpw = (a->kqs + G4_WK - 1) / G4_WK;
    a->xst = a->kqs * 64 + G4_XPAD;
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
    a.meta_bytes = (int)g4_round16((size_t)a.groups * 16 * sizeof(__half2));
    g4_split(c, &a);
    for (int r0 = 0; r0 < n; r0 += 16) {
        a.n = n - r0 < 16 ? n - r0 : 16;
        const T *xr = x + (size_t)r0 * w->in;
        /* shared memory: the scale table, the staged x or the warps' sums, the cluster's */
        const size_t sums = (size_t)(a.n > 8 ? 2 : 1) * 4 * 32 * sizeof(float);
        const size_t red = G4_WK * sums, cred = a.ks > 1 ? a.ks * sums : 0;
        const size_t xsb = g4_round16((size_t)a.n * a.xst * sizeof(T));
        const bool xs = a.meta_bytes + (xsb > red ? xsb : red) + cred <= G4_SMEM_MAX;
        a.cred_off = (int)(a.meta_bytes + (xs && xsb > red ? xsb : red));
        const size_t smem = a.cred_off + cred;
        a.perm = xs ? perm : NULL;
        a.xvec = (uintptr_t)xr % 16 == 0;
        if (!xs && (perm || (uintptr_t)xr % 4 != 0)) {
            /* x read from global memory: act-order or misaligned x gathered first */
            if (pgd_cuda__qstage_x(c, dt, xr, perm, a.n, w->in, c->qscratch, err, errlen))
                return 1;
            xr = (const T *)c->qscratch;
        }
        T *yr = y + (size_t)r0 * w->out;
        const cudaError_t e = a.n > 8 ? g4_launch_nt<T, 2>(c, a, xs, smem, xr, b, yr)
                                      : g4_launch_nt<T, 1>(c, a, xs, smem, xr, b, yr);
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
