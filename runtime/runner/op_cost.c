/* The ops' costs for the per-op profile (op_cost.h). */
#include "runtime/runner/op_cost.h"
#include <stdio.h>

struct pgd__op_cost pgd__op_cost_rows(const char *op, const char *kind, int64_t rows, int64_t d,
                                      double passes, double extra, double flops_per_elem,
                                      size_t elem)
{
    struct pgd__op_cost c = { .op = op, .kind = kind };
    double n = (double)rows * (double)d;
    c.bytes = passes * n * (double)elem + extra;
    c.flops = flops_per_elem * n;
    snprintf(c.shape, sizeof c.shape, "%lld", (long long)d);
    return c;
}

struct pgd__op_cost pgd__op_cost_linear(const char *op, int64_t n, int64_t in, int count,
                                        const int64_t *outs, double wbytes, size_t elem,
                                        size_t y_elem)
{
    struct pgd__op_cost c = { .op = op, .kind = "gemm" };
    int64_t out = 0;
    int at = snprintf(c.shape, sizeof c.shape, "%lld -> ", (long long)in);
    for (int i = 0; i < count; i++) {
        out += outs[i];
        if (at > 0 && (size_t)at < sizeof c.shape)
            at += snprintf(c.shape + at, sizeof c.shape - (size_t)at, "%s%lld", i ? "+" : "",
                           (long long)outs[i]);
    }
    c.flops = 2.0 * (double)n * (double)in * (double)out;
    c.bytes = wbytes + (double)n * (double)in * (double)elem + (double)n * (double)out * (double)y_elem;
    return c;
}

struct pgd__op_cost pgd__op_cost_attention(const struct pgd_fwd *f, const char *op,
                                           const struct pgd_attn_params *p, bool with_rope)
{
    struct pgd__op_cost c = { .op = op, .kind = "attention" };
    size_t es = pgd_dtype_size(f->act_dtype);
    double qd = (double)p->n_heads * p->head_dim, kvd = (double)p->n_kv_heads * p->head_dim;
    double kv_read = 0, pairs = 0;          /* K/V rows read once a sequence; (query, key) pairs */
    for (int s = 0; s < f->n_seqs; s++) {
        int rows = f->h_query_start[s + 1] - f->h_query_start[s];
        int len = f->h_seq_lens ? f->h_seq_lens[s] : f->max_seq_len;
        int w = p->sliding_window;
        kv_read += w > 0 && len > w + rows ? w + rows : len;
        for (int j = 0; j < rows; j++) {
            int ctx = len - rows + j + 1;
            pairs += w > 0 && ctx > w ? w : ctx;
        }
    }
    double n = f->n_tokens;
    /* K/V read from the cache, q read, out written, k and v written into the cache. */
    c.bytes = (kv_read * 2 * kvd + n * qd * 2 + n * kvd * 2) * (double)es;
    c.flops = 4.0 * pairs * qd;                    /* q k^T and p v, 2 FLOPs a multiply-add */
    if (with_rope)
        c.bytes += n * (qd + kvd) * 2 * (double)es;   /* q and k rotated in place */
    snprintf(c.shape, sizeof c.shape, "%dq/%dkv x %d", p->n_heads, p->n_kv_heads, p->head_dim);
    return c;
}

double pgd__op_weight_bytes(const struct pgd_linear *w, double quant_bytes)
{
    if (!w->weight.data && w->quant)
        return quant_bytes;                       /* described by the plugin only */
    return (double)pgd_tensor_numel(&w->weight) * (double)pgd_dtype_size(w->weight.dtype);
}
