/* Internal: what each op of runtime/runner/ops.c costs, for the per-op profile
 * (op_profile.h): its FLOPs and the fewest bytes it must move through memory (each input
 * read once, each output written once; weights once per step), and a shape label without
 * the batch size. Only computed for ops being timed. */
#ifndef PGD_RUNTIME_RUNNER_OP_COST_H
#define PGD_RUNTIME_RUNNER_OP_COST_H

#include "runtime/runner/op_profile.h"
#include "runtime/runner/fwd.h"

/* An op over rows x d elements that moves `passes` [rows, d] tensors (reads plus writes)
 * and `extra` bytes besides (a norm's weight), doing flops_per_elem FLOPs an element. */
struct pgd__op_cost pgd__op_cost_rows(const char *op, const char *kind, int64_t rows, int64_t d,
                                      double passes, double extra, double flops_per_elem,
                                      size_t elem);
/* y[n, out] = x[n, in] @ w^T through `count` layers on the same x (outs[count]): weight
 * bytes wbytes in all, x and y in elem (y_elem for the output). */
struct pgd__op_cost pgd__op_cost_linear(const char *op, int64_t n, int64_t in, int count,
                                        const int64_t *outs, double wbytes, size_t elem,
                                        size_t y_elem);
/* The attention of f's batch (causal, each sequence's K/V read once, within its sliding
 * window), with the rows' K/V write; with_rope adds the rotation of q and k. */
struct pgd__op_cost pgd__op_cost_attention(const struct pgd_fwd *f, const char *op,
                                           const struct pgd_attn_params *p, bool with_rope);
/* A dense layer's weight bytes (its tensor as stored); a quantized layer's are quant_bytes,
 * what its pgd_op_qweight_linear calls reported (fwd.h's prof_qweight_bytes over the op). */
double pgd__op_weight_bytes(const struct pgd_linear *w, double quant_bytes);

#endif
