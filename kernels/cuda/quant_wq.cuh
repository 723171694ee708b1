/* The W4A16 / W8A16 layer as quant_wq.cu and quant_wq_mma.cu share it. Internal. */
#ifndef PGD_KERNELS_CUDA_QUANT_WQ_CUH
#define PGD_KERNELS_CUDA_QUANT_WQ_CUH

#include "kernels/cuda/quant.cuh"
#include "kernels/cuda/quant_mma.cuh"

/* Two layouts of the packed weights (picked at create):
 *   plain  w [out][in / pack] uint32: the canonical qweight transposed, each output
 *          feature's words one contiguous row (GPTQ's packing within a word);
 *   mma    (4 bits, in a multiple of 64, integer zeros 0..16) w [out_pad / 16][in / 64][32]
 *          uint4: for each 16-row x 64-input block, lane l's 16 bytes hold its mma.sync
 *          A-fragment nibbles of the block's four 16 x 16 tiles (word s: tile s; see
 *          quant_wq_mma.cu), so a warp reads 512 contiguous bytes a block.
 * meta [out_pad][groups] half2 {scale, zero} (rows past out: zero).
 * perm: the act-order permutation's device copy, held through a counted wq_perm that layers
 * made with one pgd_cuda_wq_perms set share when their permutations are equal (quant_wq.cu):
 * two layers' perm pointers are equal exactly when they gather x the same way. */
struct wq_perm;
struct pgd_cuda_wq {
    int bits, group_size, groups;
    int in, out, out_pad;
    int mma;                         /* the layout: 1 mma, 0 plain */
    uint32_t *w;
    __half2 *meta;
    int32_t *perm;                   /* device [in] or NULL: perm_ref's copy */
    int int_zeros;                   /* every zero an integer in 0..2^bits (quant_wq_gemm.cu) */
    struct wq_perm *perm_ref;        /* one reference, or NULL (no act-order) */
};

/* *cfg: a launch as pgd_cuda_launch's (the context's stream, programmatic dependent launch
 * where the context allows it) with dynamic shared memory and, when cluster has more than
 * one block, that cluster shape; attr: room for the 2 attributes cfg points to. */
static inline void pgd_cuda__wq_launch_cfg(const struct pgd_cuda_ctx *c, dim3 grid, dim3 block,
                                           size_t smem, dim3 cluster, cudaLaunchConfig_t *cfg,
                                           cudaLaunchAttribute *attr)
{
    *cfg = cudaLaunchConfig_t{};
    cfg->gridDim = grid;
    cfg->blockDim = block;
    cfg->dynamicSmemBytes = smem;
    cfg->stream = c->stream;
    unsigned na = 0;
    if (c->pdl) {
        attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[na++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster.x * cluster.y * cluster.z > 1) {
        attr[na].id = cudaLaunchAttributeClusterDimension;
        attr[na].val.clusterDim.x = cluster.x;
        attr[na].val.clusterDim.y = cluster.y;
        attr[na++].val.clusterDim.z = cluster.z;
    }
    cfg->attrs = attr;
    cfg->numAttrs = na;
}

/* ---- x gathered through perm, as the kernels stage it ------------------------------------ */
/* idx[j] = perm[k + j] for j < 8 (k a multiple of 8: two 16-byte loads), or k + j when perm
 * is NULL. */
__device__ __forceinline__ void wq_perm8(const int32_t *__restrict__ perm, int k, int (&idx)[8])
{
    if (!perm) {
#pragma unroll
        for (int j = 0; j < 8; j++)
            idx[j] = k + j;
        return;
    }
    const int4 p0 = __ldg(reinterpret_cast<const int4 *>(perm + k));
    const int4 p1 = __ldg(reinterpret_cast<const int4 *>(perm + k + 4));
    idx[0] = p0.x; idx[1] = p0.y; idx[2] = p0.z; idx[3] = p0.w;
    idx[4] = p1.x; idx[5] = p1.y; idx[6] = p1.z; idx[7] = p1.w;
}

/* xr[idx[0..7]] as one 16-byte vector. */
template <typename T>
__device__ __forceinline__ uint4 wq_gather8(const T *__restrict__ xr, const int (&idx)[8])
{
    __align__(16) T e[8];
#pragma unroll
    for (int j = 0; j < 8; j++)
        e[j] = xr[idx[j]];
    return *reinterpret_cast<const uint4 *>(e);
}

/* xs [n][xst] = x [n][k0, k0 + len) (x rows of in elements; PERM: x[r][perm[k]]), by the
 * whole block in 16-byte pieces, UNR of them in flight a thread; xvec: x 16-byte aligned
 * (else read element by element). k0 and len multiples of 8. */
template <typename T, bool PERM, int UNR>
__device__ __forceinline__ void wq_stage_x(const T *__restrict__ x,
                                           const int32_t *__restrict__ perm, int n, int in,
                                           int k0, int len, bool xvec, T *xs, int xst)
{
    const int vr = len / 8, total = n * vr;
    for (int i0 = threadIdx.x; i0 < total; i0 += UNR * blockDim.x) {
        uint4 v[UNR];
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i >= total)
                continue;
            const int r = i / vr, k = k0 + (i - r * vr) * 8;
            const T *xr = x + (size_t)r * in;
            if (!PERM && xvec) {
                v[u] = __ldg(reinterpret_cast<const uint4 *>(xr + k));
                continue;
            }
            int idx[8];
            wq_perm8(PERM ? perm : NULL, k, idx);
            v[u] = wq_gather8<T>(xr, idx);
        }
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i < total) {
                const int r = i / vr, k = (i - r * vr) * 8;
                *reinterpret_cast<uint4 *>(xs + (size_t)r * xst + k) = v[u];
            }
        }
    }
}

/* For each {scale, zero} of rows [16 tile0, 16 (tile0 + ntiles)) of meta [out_pad][groups]:
 * put(r, g, m), r the row from 16 tile0 on, g the group; by the whole block, UNR loads in
 * flight a thread (the table is in DRAM: one latency, not several). */
template <int UNR, class Put>
__device__ __forceinline__ void wq_stage_meta(const __half2 *__restrict__ meta, int groups,
                                              int tile0, int ntiles, Put put)
{
    const int total = 16 * ntiles * groups;
    const __half2 *src = meta + (size_t)tile0 * 16 * groups;
    for (int i0 = threadIdx.x; i0 < total; i0 += UNR * blockDim.x) {
        __half2 v[UNR];
#pragma unroll
        for (int u = 0; u < UNR; u++)
            if (i0 + u * (int)blockDim.x < total)
                v[u] = __ldg(src + i0 + u * blockDim.x);
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int i = i0 + u * blockDim.x;
            if (i < total) {
                const int r = i / groups;
                put(r, i - r * groups, v[u]);
            }
        }
    }
}

/* y [n, out] (+ b) of the 16-row tile's features from a warp's mma.sync accumulators v
 * (NT tiles of 8 tokens): accumulator i of lane (g, t) is feature g (+ 8 for i >= 2), token
 * 2t (+ 1 for odd i); features past out and tokens past n are not written. */
template <typename T, int NT>
__device__ __forceinline__ void wq_store_tile(const float (&v)[NT][4], int tile, int lane, int out,
                                              int n, const T *__restrict__ b, T *__restrict__ y)
{
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int o = tile * 16 + g + (i >= 2 ? 8 : 0), tok = nt * 8 + 2 * t + (i & 1);
            if (o < out && tok < n)
                y[(size_t)tok * out + o] = from_f<T>(v[nt][i] + (b ? to_f<T>(b[o]) : 0.0f));
        }
}

/* For each row pair {rr, rr + 8} (rr < 8) of each 16-row tile of rows [16 tile0, 16 (tile0
 * + ntiles)) of meta [out_pad][groups], and each group gg: put(tl, gg, rr, m_rr, m_rr8), tl
 * the tile from tile0 on; by the whole block, UNR pairs of loads in flight a thread. rr
 * runs fastest over the threads, so that a put storing one 16-byte entry at [tl][gg][rr]
 * stores 32 consecutive entries a warp (no bank conflict; a warp's loads touch 8 rows of 4
 * groups each). The tile of entry q = i / 8 is (q tmul) >> tsh = q / groups
 * (pgd_cuda__div_magic up to ntiles groups - 1): no division a thread an entry. */
template <int UNR, class Put>
__device__ __forceinline__ void wq_stage_meta_pairs(const __half2 *__restrict__ meta, int groups,
                                                    uint32_t tmul, int tsh, int tile0,
                                                    int ntiles, Put put)
{
    const int total = 8 * ntiles * groups;
    const __half2 *src = meta + (size_t)tile0 * 16 * groups;
    for (int i0 = threadIdx.x; i0 < total; i0 += UNR * blockDim.x) {
        __half2 v[UNR], v8[UNR];
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int i = i0 + u * (int)blockDim.x, q = i >> 3;
            const int tl = (int)(((uint32_t)q * tmul) >> tsh);
            if (i < total) {
                const __half2 *p = src + ((size_t)tl * 16 + (i & 7)) * groups + (q - tl * groups);
                v[u] = __ldg(p);
                v8[u] = __ldg(p + (size_t)8 * groups);
            }
        }
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int i = i0 + u * (int)blockDim.x, q = i >> 3;
            const int tl = (int)(((uint32_t)q * tmul) >> tsh);
            if (i < total)
                put(tl, q - tl * groups, i & 7, v[u], v8[u]);
        }
    }
}

/* quant_wq_mma.cu */
/* Whether the mma layout takes h (and the environment's PGD_CUDA_WQ_MMA is not 0). */
bool pgd_cuda__wq_mma_fits(const struct pgd_wq_host *h);
/* dst (device, out_pad / 16 * in / 64 * 32 uint4) = the mma layout of the canonical
 * qweight q (device [in / 8][out]), rows past out zero; synchronous (default stream). */
int pgd_cuda__wq_mma_pack(const uint32_t *q, int in, int out, int out_pad, uint32_t *dst,
                          char *err, size_t errlen);
/* y [n, out] = x [n, in] through the tensor-core GEMV, 16 rows a launch: perm NULL: x in
 * canonical order, 4-byte aligned; else x in the checkpoint's order (2-byte aligned),
 * gathered through perm [in] (device) inside the kernel. */
int pgd_cuda__wq_mma_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                          void *y, char *err, size_t errlen);
/* dst [rows, in] (dt) = the dequantized rows [o0, o0 + rows) (o0 a multiple of 16). */
int pgd_cuda__wq_mma_dequant(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                             const struct pgd_cuda_wq *w, int o0, int rows, void *dst, char *err,
                             size_t errlen);

/* quant_wq_gemv.cu: the decode GEMV over the mma layout */
/* Whether it takes w (the mma layout, and its scale table fits shared memory). */
bool pgd_cuda__wq_gemv4_fits(const struct pgd_cuda_wq *w);
/* y[i] [n, w[i]->out] = x [n, in] @ W[i]^T (+ b[i]) for count (2..3) layers of one x in one
 * launch (q, k and v; n <= 8 rows; act-order layers of one shared perm: x gathered into the
 * context's scratch first, which must hold it): 0, 1 with err on failure, or 2 where the
 * layers do not allow it (different inputs, groups or perm pointers, a layout or size the
 * kernel does not take; PGD_CUDA_WQ_GEMV=old; PGD_CUDA_WQ_GATHER_ONCE=0 with act-order):
 * the caller runs them one by one. */
int pgd_cuda__wq_sgemv_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                             int count, const struct pgd_cuda_wq *const *w, const void *const *b,
                             void *const *y, char *err, size_t errlen);
/* y [n, out] = x [n, in] @ W^T (+ b), 16 rows a launch: perm NULL: x in canonical order;
 * else x in the checkpoint's order, gathered through perm [in] (device). x 2-byte aligned;
 * the context's scratch holds x when it must be staged. */
int pgd_cuda__wq_gemv4(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                       void *y, char *err, size_t errlen);
/* floor(q / d) for every q <= qmax as one multiply and one shift, (q mul) >> sh: no division
 * in a kernel's loop. With l = ceil(log2 d), sh = N + l (2^N past qmax), mul = ceil(2^sh /
 * d) = (2^sh + e) / d, e < d: q mul / 2^sh = q / d + q e / (d 2^sh), the second term under
 * 1 / d, so the floor is floor(q / d). Exact while q mul stays in 32 bits; false past that
 * (and for d 0). */
static inline bool pgd_cuda__div_magic(uint64_t d, uint64_t qmax, uint32_t *mul, int *sh)
{
    *mul = 0;
    *sh = 0;
    if (d == 0)
        return false;
    int n = 0, l = 0;
    while ((1ull << n) <= qmax)
        n++;
    while ((1ull << l) < d)
        l++;
    const uint64_t m = ((1ull << (n + l)) + d - 1) / d;
    if (n + l > 31 || qmax * m >= (1ull << 32))
        return false;
    *mul = (uint32_t)m;
    *sh = n + l;
    return true;
}

/* The group of 32-input half h2 of a row of w, floor(h2 / d) with d = group_size / 32, as
 * (h2 gmul) >> gsh (pgd_cuda__div_magic up to the largest h2, 2 kq - 1): the streaming
 * GEMVs' group lookup, no division or test in their loops; rows up to ~2^20 inputs. One
 * group: gmul 0. */
static inline bool pgd_cuda__wq_group_magic(const struct pgd_cuda_wq *w, uint32_t *gmul, int *gsh)
{
    *gmul = 0;
    *gsh = 0;
    if (w->groups == 1)
        return true;
    return pgd_cuda__div_magic((uint64_t)(w->group_size / 32), 2 * (uint64_t)(w->in / 64) - 1,
                               gmul, gsh);
}
__device__ __forceinline__ int wq_group(uint32_t gmul, int gsh, int h2)
{
    return (int)(((uint32_t)h2 * gmul) >> gsh);
}

/* quant_wq_sgemv.cu: the first streaming decode GEMV over the mma layout
 * (PGD_CUDA_WQ_GEMV=s1, and the rows whose x quant_wq_sgemv2.cu cannot stage) */
/* Whether it takes w on c's device (the mma layout, its scale tables fit shared memory, and
 * the environment's PGD_CUDA_WQ_GEMV is not "old"). */
bool pgd_cuda__wq_sgemv_fits(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w);
/* buf = its plan for n rows: "gemv/s<warps a tile>", "g" after it when x is read from
 * global memory rather than staged in shared memory. */
void pgd_cuda__wq_sgemv_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                             char *buf, size_t len);
/* y [n, out] = x [n, in] @ W^T (+ b), 16 rows a launch: perm NULL: x in canonical order;
 * else x in the checkpoint's order, gathered through perm [in] (device). x 2-byte aligned;
 * the context's scratch holds x when it must be gathered. */
int pgd_cuda__wq_sgemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                       void *y, char *err, size_t errlen);
/* quant_wq_sgemv2.cu: the second streaming decode GEMV over the mma layout (the default) */
/* Whether it takes w on c's device (what quant_wq_sgemv.cu takes, x of one row fits its
 * shared memory, and the environment's PGD_CUDA_WQ_GEMV is neither "s1" nor "old"). */
bool pgd_cuda__wq_sgemv2_fits(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w);
/* buf = its plan for n rows: "gemv/v<warps a tile>x<tiles a warp>" ("b2" after it: two
 * blocks an SM), or quant_wq_sgemv.cu's where x does not fit. */
void pgd_cuda__wq_sgemv2_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                              char *buf, size_t len);
/* y [n, out] = x [n, in] @ W^T (+ b), 16 rows a launch (rows whose x does not fit shared
 * memory: quant_wq_sgemv.cu's path): perm NULL: x in canonical order; else x in the
 * checkpoint's order, gathered through perm [in] (device). x 2-byte aligned; the context's
 * scratch holds x when it is gathered first. */
int pgd_cuda__wq_sgemv2(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                        const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                        void *y, char *err, size_t errlen);
/* quant_wq_gemm.cu */
/* Which fused GEMM: quant_wq_gemm.cu's (exact q - zero, each group's sums scaled), with
 * Hopper's wgmma kernel where the layer and n fit it, or on mma.sync only; or
 * quant_wq_fold.cu's (the scales folded into the 16-bit weights; pgd_cuda__wq_fold_ok). */
enum wq_gemm_kind { WQ_GEMM_EXACT, WQ_GEMM_EXACT_MMA, WQ_GEMM_FOLD };
/* y [n, out] = x [n, in] @ W^T + b through the fused tensor-core GEMM `kind` (any n >= 1;
 * meant for n past the GEMV's rows): x in the checkpoint's order (gathered through perm into
 * the context's scratch first when the layer has one, or when x is not 16-byte aligned).
 * WQ_GEMM_FOLD: the caller checked pgd_cuda__wq_fold_ok. */
int pgd_cuda__wq_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                      const struct pgd_cuda_wq *w, const void *b, void *y,
                      enum wq_gemm_kind kind, char *err, size_t errlen);
/* pgd_cuda__wq_gemm of count layers of one x (2..3: q, k and v; WQ_GEMM_FOLD only), their
 * one in, groups and permutation, y[l] [n, w[l]->out]: one launch over all their feature
 * tiles (after one gather where x is staged); count 1 is pgd_cuda__wq_gemm. */
int pgd_cuda__wq_gemm_layers(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                             int count, const struct pgd_cuda_wq *const *w,
                             const void *const *b, void *const *y, enum wq_gemm_kind kind,
                             char *err, size_t errlen);
/* dst [rows][in] (device, 16-byte aligned) = x [rows][perm[k]] (perm NULL: x [rows][k], a
 * realignment of a 2-byte aligned x); in a multiple of 8. One small kernel, or none where
 * the norm before left exactly that there (pgd_cuda__wq_xg_take). */
int pgd_cuda__wq_gather(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                        const int32_t *perm, int rows, int in, void *dst, char *err,
                        size_t errlen);
/* The plan the GEMM takes for n rows of bf16 x: "mma" or "wg" (wgmma), the token tile, the
 * blocks splitting each tile's inputs ("wg128/4"). */
void pgd_cuda__wq_gemm_plan(struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                            bool allow_wgmma, char *buf, size_t len);
/* Whether every zero of h is an integer in 0..2^bits: then the GEMM multiplies the exact
 * q - zero and scales the float32 sums per group (else it folds the scale into A). */
bool pgd_cuda__wq_gemm_int_zeros(const struct pgd_wq_host *h);
/* quant_wq_fold.cu */
/* Whether the folded Hopper GEMM runs w on c: the mma layout, groups a multiple of 64
 * inputs, a compute capability 9.0 device and the sm_90a code built. */
bool pgd_cuda__wq_fold_ok(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w);
/* Its plan for n rows: "fold[-ws]<token tile>/<blocks splitting each tile's inputs>[/1sm]
 * [/tma]" (-ws: the warp-specialized kernel; /1sm: the plain one's block alone on an SM;
 * /tma: x by the tensor copy engine), the one timed for n's bucket where one was, else the
 * cost model's. */
void pgd_cuda__wq_fold_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                            char *buf, size_t len);

#endif
