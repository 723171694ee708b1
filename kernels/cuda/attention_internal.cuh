/* Between attention.cu (the planner, the FMA kernel and the per-item merge of context
 * splits) and attention_mma.cu (the tensor-core kernel for the general items). Internal to
 * kernels/cuda.
 *
 * Items are int4 {seq, first token, tokens, 0} (device): up to tq consecutive query tokens
 * of one sequence. Context splits write partials to float32 scratch laid out
 * [n_tokens, n_heads, n_splits, head_dim + 2] (the unnormalized accumulators, then the row
 * max in base 2 and the sum of weights), merged per item by pgd__attn_combine. */
#ifndef PGD_KERNELS_CUDA_ATTENTION_INTERNAL_CUH
#define PGD_KERNELS_CUDA_ATTENTION_INTERNAL_CUH

#include "kernels/cuda/common.cuh"

/* out[t, h, :] (dt) = the merge of part[t, h, 0 .. n_splits) for the tokens of items
 * [n_items] and every head h < H. */
void pgd__attn_combine(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const float *part,
                       const int4 *items, int n_items, int H, int n_splits, int D, void *out);

/* attention_mma.cu. Whether the tensor-core kernel takes this dtype and head dim (BF16 or
 * F16; 64 or 128). */
bool pgd__attn_mma_supports(enum pgd_dtype dt, int D);
/* Its block shape for a group of query heads a KV head: hq heads a block (a divisor of
 * group), tq tokens an item (hq * tq <= 64 rows). */
void pgd__attn_mma_shape(int group, int *hq, int *tq);
/* The items [n_items] (device, tq tokens at most, as pgd__attn_mma_shape gives) of call a
 * through the tensor-core kernel, split along the context into n_splits ranges of
 * split_len keys (partials in part, then pgd__attn_combine) when n_splits > 1. */
int pgd__attn_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                      int n_items, int n_splits, int split_len, float *part, char *err,
                      size_t errlen);

#endif
