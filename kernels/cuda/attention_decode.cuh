/* Internal to kernels/cuda: the decode-row attention kernel (attention_decode.cu), which
 * pgd_cuda_attention (attention.cu) runs for the rows that are the only query token of
 * their sequence in the step. */
#ifndef PGD_KERNELS_CUDA_ATTENTION_DECODE_CUH
#define PGD_KERNELS_CUDA_ATTENTION_DECODE_CUH

#include "kernels/cuda/common.cuh"

/* Whether the decode kernel serves this head_dim and grouped-query ratio. */
bool pgd__attn_decode_ok(int head_dim, int group);

/* Context splits of the decode kernel for n_items rows over at most max_len keys:
 * *n_splits ranges of *split_len keys (1 and INT_MAX / 2 when unsplit). */
void pgd__attn_decode_plan(const struct pgd_cuda_ctx *c, int n_items, int n_kv_heads,
                           int n_heads, int head_dim, int max_len, int *n_splits,
                           int *split_len);

/* Bytes of float32 scratch the decode kernel needs for n_items rows with n_splits. */
size_t pgd__attn_decode_scratch(int n_items, int n_heads, int head_dim, int n_splits);

/* out rows of the items {seq, token, 1, 0} [n_items] (device): the token's query heads
 * attend over its sequence's keys [max(0, pos - window + 1), pos] through the block table.
 * With n_splits > 1 the partials go to scratch and a second kernel merges them. */
int pgd__attn_decode(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                     int n_items, int n_splits, int split_len, float *scratch, char *err,
                     size_t errlen);

#endif
