/* The CPU kernels: the readable reference every CUDA kernel is tested against.
 * All activations are float32, row-major. Shapes are in each comment; n is the number of
 * rows (tokens). None of these allocate. */
#ifndef PGD_KERNELS_CPU_H
#define PGD_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>
#include <pagoda/ops.h>
#include <pagoda/quant.h>

/* Internal to libpagoda: hidden, so that the shared object's dynamic table holds only the
 * public API of include/pagoda (the tests and the tool link the convenience library and
 * still call these). */
#pragma GCC visibility push(hidden)

/* out[i, :] = table[ids[i], :]   table [vocab, d], out [n, d]; ids already range-checked */
void pgd_cpu_embed(const float *table, const int32_t *ids, int n, int d, float *out);
/* out[i] = table[ids[i] - row0] for ids in [row0, row0 + rows), zeros for the others. */
void pgd_cpu_embed_shard(const float *table, int64_t row0, int64_t rows, const int32_t *ids,
                         int n, int d, float *out);

/* out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w   x, out [rows, d] (may alias) */
void pgd_cpu_rmsnorm(const float *x, const float *w, float eps, int64_t rows, int d, float *out);
/* residual[r, :] += delta[r, :]; out[r, :] = rmsnorm(residual[r, :]) * w */
void pgd_cpu_add_rmsnorm(float *residual, const float *delta, const float *w, float eps,
                         int64_t rows, int d, float *out);
/* x[i] += delta[i] for i < n */
void pgd_cpu_add(float *x, const float *delta, int64_t n);

/* y[n, out] = x[n, in] @ w[out, in]^T + b[out] (b may be NULL) */
void pgd_cpu_linear(const float *x, const float *w, const float *b, int n, int in, int out,
                    float *y);
/* The same, batch-invariant: each row's result depends on that row alone, never on n or
 * the rows beside it (sgemm's does: it blocks rows by two), at a cost in speed (engines
 * with batch_invariant). */
void pgd_cpu_linear_invariant(const float *x, const float *w, const float *b, int n, int in,
                              int out, float *y);

/* quant.c: the reference of include/pagoda/quant.h's layouts.
 * w [out, in] = the layer's logical weights, in the checkpoint's input order. */
void pgd_cpu_wq_dequantize(const struct pgd_wq_host *h, float *w);
void pgd_cpu_fp8_dequantize(const struct pgd_fp8_host *h, float *w);
/* FP8 per-token activation quantization: scales[r] = max|x[r, :]| / 448 (1 for an all-zero
 * row), q[r, c] = e4m3(x[r, c] / scales[r]).   x [rows, cols], q [rows, cols] */
void pgd_cpu_fp8_quantize_rows(const float *x, int64_t rows, int64_t cols, uint8_t *q,
                               float *scales);

/* Rotates the first rotary_dim dims of every head of q [n, n_q_heads * head_dim] and
 * k [n, n_k_heads * head_dim] by angle pos[i] * inv_freq[j] (HF "rotate half" layout). */
void pgd_cpu_rope(float *q, int n_q_heads, float *k, int n_k_heads, int n, int head_dim,
                  int rotary_dim, const float *inv_freq, const int32_t *pos);

/* The paged KV cache of one layer: [num_blocks, block_size, n_kv_heads, head_dim] for K and
 * for V; token slot s lives at row s = block * block_size + offset. Float32 in k, v; or, an
 * FP8 cache (kv_cache_dtype fp8; k8 set, k NULL), e4m3fn bytes in k8, v8: an element is
 * e4m3(byte) * k_scale (K) or * v_scale (V), written as e4m3(x / scale) saturated to +-448. */
struct pgd_cpu_kv_layer {
    float *k, *v;
    int block_size;
    int n_kv_heads, head_dim;
    uint8_t *k8, *v8;
    float k_scale, v_scale;
};

/* Writes k, v [n, n_kv_heads * head_dim] into the cache rows slot_mapping[i] (< 0: skip),
 * quantizing them on an FP8 cache. */
void pgd_cpu_kv_write(const struct pgd_cpu_kv_layer *kv, const float *k, const float *v,
                      const int64_t *slot_mapping, int n);

/* The step's sequences, as the runner lays them out: the tokens of sequence s are rows
 * [query_start[s], query_start[s + 1]) of q; seq_lens[s] is its length counting this
 * step's tokens; block_tables [n_seqs, max_blocks] maps positions to blocks. */
struct pgd_cpu_seq_layout {
    int n_seqs;
    const int32_t *query_start;      /* [n_seqs + 1] */
    const int32_t *seq_lens;         /* [n_seqs] */
    const int32_t *block_tables;     /* [n_seqs, max_blocks] */
    int max_blocks;
    const int32_t *positions;        /* [n], position of each query token in its sequence */
};

/* out[t, h*D..] = sum_j softmax_j(q[t,h] . k[j, h/g] * scale) v[j, h/g] over the keys j of t's
 * sequence with j <= pos[t] (and j > pos[t] - window when sliding), k and v dequantized on
 * read from an FP8 cache. q, out [n, H * D]; scores is scratch of max(seq_lens) floats. */
void pgd_cpu_attention(const struct pgd_cpu_kv_layer *kv, const struct pgd_cpu_seq_layout *L,
                       const struct pgd_attn_params *p, const float *q, float *scores,
                       float *out);

/* out[r, i] = act(gate_up[r, i]) * gate_up[r, I + i]   gate_up [n, 2I], out [n, I] */
void pgd_cpu_act_mul(enum pgd_act act, const float *gate_up, int n, int inter, float *out);

/* Preemption by swapping (kv_swap.c): for each of the n_arrays arrays (a KV cache's every
 * layer's K and V, [blocks][block_bytes] each) copies block dev_blocks[i] of dev_arrays[a]
 * to block host_blocks[i] of host_arrays[a] (to_host), or back (!to_host), for i < n. */
void pgd_cpu_kv_swap_blocks(int to_host, void *const *dev_arrays, void *const *host_arrays,
                            int n_arrays, size_t block_bytes, const int32_t *dev_blocks,
                            const int32_t *host_blocks, int n);

#pragma GCC visibility pop

#endif
