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
 * meta [out_pad][groups] half2 {scale, zero} (rows past out: zero). */
struct pgd_cuda_wq {
    int bits, group_size, groups;
    int in, out, out_pad;
    int mma;                         /* the layout: 1 mma, 0 plain */
    uint32_t *w;
    __half2 *meta;
    int32_t *perm;                   /* device [in] or NULL */
    int int_zeros;                   /* every zero an integer in 0..2^bits (quant_wq_gemm.cu) */
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
/* y [n, out] = x [n, in] @ W^T (+ b), 16 rows a launch: perm NULL: x in canonical order;
 * else x in the checkpoint's order, gathered through perm [in] (device). x 2-byte aligned;
 * the context's scratch holds x when it must be staged. */
int pgd_cuda__wq_gemv4(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                       void *y, char *err, size_t errlen);
/* quant_wq_sgemv.cu: the streaming decode GEMV over the mma layout (the default) */
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
/* quant_wq_gemm.cu */
/* y [n, out] = x [n, in] @ W^T + b through the fused tensor-core GEMM (any n >= 1; meant for
 * n past the GEMV's rows): x in the checkpoint's order (gathered through perm into the
 * context's scratch first when the layer has one, or when x is not 16-byte aligned).
 * allow_wgmma: Hopper's wgmma kernel where the layer and n fit it (else mma.sync only). */
int pgd_cuda__wq_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                      const struct pgd_cuda_wq *w, const void *b, void *y, bool allow_wgmma,
                      char *err, size_t errlen);
/* dst [rows][in] (device, 16-byte aligned) = x [rows][perm[k]] (perm NULL: x [rows][k], a
 * realignment of a 2-byte aligned x); in a multiple of 8. One small kernel. */
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

#endif
