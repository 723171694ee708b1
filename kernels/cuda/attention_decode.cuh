/* Internal to kernels/cuda: the decode-row attention kernels (attention_decode.cu,
 * attention_decode_mma.cu), which pgd_cuda_attention (attention.cu) runs for the rows that
 * are the only query token of their sequence in the step. */
#ifndef PGD_KERNELS_CUDA_ATTENTION_DECODE_CUH
#define PGD_KERNELS_CUDA_ATTENTION_DECODE_CUH

#include "kernels/cuda/common.cuh"

/* The decode kernels: the tensor-core one (attention_decode_mma.cu: BF16/F16, head_dim 64 or
 * 128, up to 16 query heads a KV head) and the SIMT one (attention_decode.cu: one lane a key;
 * head_dim 64, 128 or 256, up to 8 query heads a KV head). */
enum { PGD__DEC_NONE = 0, PGD__DEC_SIMT = 1, PGD__DEC_MMA = 2 };

/* Whether the SIMT decode kernel serves this head_dim and grouped-query ratio. */
bool pgd__attn_decode_ok(int head_dim, int group);
/* Whether the tensor-core decode kernel serves this dtype, head_dim and ratio. */
bool pgd__attn_decode_mma_ok(enum pgd_dtype dt, int head_dim, int group);

/* The decode kernel for the decode rows of call a: the tensor-core one where it serves the
 * shape, else the SIMT one where that does, else PGD__DEC_NONE. The environment's
 * PGD_CUDA_DECODE_ATTN=simt picks the SIMT one (where it serves), =0 none. */
int pgd__attn_decode_kernel(const struct pgd_cuda_attn *a);
/* Whether the environment sends every decode row to a decode kernel (PGD_CUDA_DECODE_ATTN=1
 * or =simt). */
bool pgd__attn_decode_forced(void);

/* Context splits of the decode kernel for n_items decode rows of call a (over at most
 * a->max_seq_len keys: a graph's context bucket): *n_splits ranges of *split_len keys (1 and
 * INT_MAX / 2 when unsplit). */
void pgd__attn_decode_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                           int n_items, int *n_splits, int *split_len);

/* Bytes of float32 scratch the decode kernel needs for n_items rows with n_splits. */
size_t pgd__attn_decode_scratch(int n_items, int n_heads, int head_dim, int n_splits);

/* out rows of the items {seq, token, 1, 0} [n_items] (device): the token's query heads
 * attend over its sequence's keys [max(0, pos - window + 1), pos] through the block table,
 * on pgd__attn_decode_kernel(a)'s kernel. With n_splits > 1 the partials go to scratch and
 * a second kernel merges them. */
int pgd__attn_decode(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                     int n_items, int n_splits, int split_len, float *scratch, char *err,
                     size_t errlen);

/* attention_decode_mma.cu: the tensor-core kernel alone (partials [n_items, H, n_splits,
 * D + 2] into part when n_splits > 1, left for the caller to merge). */
int pgd__attn_decode_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                             const int4 *items, int n_items, int n_splits, int split_len,
                             float *part, char *err, size_t errlen);
/* Blocks of the tensor-core kernel an SM holds at once for call a's shape (at least 1). */
int pgd__attn_decode_mma_occupancy(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a);

#endif
