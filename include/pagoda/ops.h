/* The ops: all an architecture plugin computes with.
 *
 * A forward pass receives a struct pgd_fwd from the runner. It holds the flat batch of this
 * step (token ids, positions, where each token's K/V goes in the paged cache, each
 * sequence's block table, which rows need logits) and an activation arena. A plugin never
 * sees pages or requests: it calls pgd_op_attention(), which writes K/V through the slot
 * mapping and attends over each sequence's blocks.
 *
 * Shapes: n is the number of tokens in the step; activations are [n, features], row-major,
 * in pgd_fwd_act_dtype(f) on pgd_fwd_device(f). Ops dispatch on that device: the CPU
 * kernels in kernels/cpu are the readable reference, kernels/cuda the fast path.
 *
 * Ops return nothing: a failure (a device error, a shape that does not fit) is recorded in
 * the pgd_fwd, later ops become no-ops, and the runner reports the first error. */
#ifndef PAGODA_OPS_H
#define PAGODA_OPS_H

#include <pagoda/tensor.h>
#include <pagoda/status.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_fwd;               /* one forward step; owned by the runner */

/* A dense or quantized linear layer: y[n, out] = x[n, in] @ weight^T + bias. */
struct pgd_linear {
    struct pgd_tensor weight; /* [out, in]; for a quantized layer, described by quant */
    struct pgd_tensor bias;   /* [out], or data == NULL for none */
    int64_t in_features, out_features;
    const struct pgd_quant_ops *quant; /* NULL for dense weights */
    void *quant_state;                 /* owned by the quant plugin */
};

/* Rotary position embedding, precomputed by pgd_rope_init() from a model's config. */
enum pgd_rope_scaling { PGD_ROPE_DEFAULT = 0, PGD_ROPE_LLAMA3, PGD_ROPE_LINEAR };
struct pgd_rope_config {
    int head_dim;             /* size of one head */
    int rotary_dim;           /* leading dims of each head that rotate (== head_dim usually) */
    double theta;             /* rope_theta */
    enum pgd_rope_scaling scaling;
    double factor;            /* llama3 / linear: rope_scaling.factor */
    double low_freq_factor;   /* llama3 */
    double high_freq_factor;  /* llama3 */
    int original_max_position; /* llama3: original_max_position_embeddings */
};
struct pgd_rope {
    int head_dim, rotary_dim;
    float *inv_freq;          /* [rotary_dim / 2], owned; freed by pgd_rope_fini */
};
enum pgd_status pgd_rope_init(struct pgd_rope *rope, const struct pgd_rope_config *cfg,
                              char *err, size_t errlen);
void pgd_rope_fini(struct pgd_rope *rope);

struct pgd_attn_params {
    int n_heads;              /* query heads */
    int n_kv_heads;           /* key/value heads; n_heads % n_kv_heads == 0 (grouped query) */
    int head_dim;
    float scale;              /* usually 1 / sqrt(head_dim) */
    int sliding_window;       /* attend to at most this many most recent keys; 0 = all */
};

enum pgd_act { PGD_ACT_SILU = 0, PGD_ACT_GELU_TANH = 1 };

/* ---- the step ----------------------------------------------------------------------- */
int pgd_fwd_n_tokens(const struct pgd_fwd *f);
enum pgd_device pgd_fwd_device(const struct pgd_fwd *f);
enum pgd_dtype pgd_fwd_act_dtype(const struct pgd_fwd *f);
/* A [rows, cols] activation from the step's arena, valid until the step ends. Contents are
 * undefined. Never fails: the arena is sized for the largest step when the runner starts. */
struct pgd_tensor pgd_fwd_alloc(struct pgd_fwd *f, int64_t rows, int64_t cols);
/* Records a failure (first one wins) and makes later ops no-ops. */
void pgd_fwd_fail(struct pgd_fwd *f, enum pgd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool pgd_fwd_failed(const struct pgd_fwd *f);

/* ---- ops ---------------------------------------------------------------------------- */
/* out[n, d] = table[token_ids[i], :]   (table [vocab, d]) */
void pgd_op_embed(struct pgd_fwd *f, const struct pgd_tensor *table, struct pgd_tensor *out);
/* out[r, :] = x[r, :] / rms(x[r, :]) * w   (x, out [rows, d]; w [d]; out may alias x) */
void pgd_op_rmsnorm(struct pgd_fwd *f, const struct pgd_tensor *x, const struct pgd_tensor *w,
                    float eps, struct pgd_tensor *out);
/* residual += delta; out = rmsnorm(residual) * w   (all [n, d]) */
void pgd_op_add_rmsnorm(struct pgd_fwd *f, struct pgd_tensor *residual,
                        const struct pgd_tensor *delta, const struct pgd_tensor *w, float eps,
                        struct pgd_tensor *out);
/* x += delta   (both [rows, d]) */
void pgd_op_add(struct pgd_fwd *f, struct pgd_tensor *x, const struct pgd_tensor *delta);
/* y[n, out] = x[n, in] @ W^T + b; a quantized layer (w->quant set) runs its plugin's linear */
void pgd_op_linear(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
                   struct pgd_tensor *y);
/* y[n, out] = x[n, in] @ W^T + bias for a quantized weight made by pgd_model_qweight_wq or
 * pgd_model_qweight_fp8 (include/pagoda/model.h): what a quant plugin's linear calls. bias is
 * [out] in the activation dtype, or NULL (or data NULL) for none. On the CPU it multiplies
 * the dequantized weights (an FP8 layer first rounds x to e4m3 per token, as the GPU does);
 * on CUDA it runs pgd_cuda_wq_linear / pgd_cuda_fp8_linear on the packed weights. */
struct pgd_qweight;
void pgd_op_qweight_linear(struct pgd_fwd *f, const struct pgd_qweight *w,
                           const struct pgd_tensor *bias, const struct pgd_tensor *x,
                           struct pgd_tensor *y);
/* y[i] = x @ w[i]^T + b[i] for i < count (1..3): the same x through several layers (q, k, v),
 * on the GPU in one kernel at decode sizes. */
void pgd_op_linear_multi(struct pgd_fwd *f, int count, const struct pgd_linear *const *w,
                         const struct pgd_tensor *x, struct pgd_tensor *const *y);
/* Rotates q [n, n_heads * head_dim] and k [n, n_kv_heads * head_dim] in place by each
 * token's position (the "rotate half" layout of HF Llama). */
void pgd_op_rope(struct pgd_fwd *f, const struct pgd_rope *rope, struct pgd_tensor *q,
                 struct pgd_tensor *k);
/* Writes k, v [n, n_kv_heads * head_dim] into layer's paged cache through the slot mapping,
 * then out[n, n_heads * head_dim] = causal softmax(q k^T * scale) v over each token's
 * sequence: its cached prefix plus the step's tokens up to itself. */
void pgd_op_attention(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                      const struct pgd_tensor *q, const struct pgd_tensor *k,
                      const struct pgd_tensor *v, struct pgd_tensor *out);
/* The middle of an attention block in one op: the optional per-head RMSNorm of q and k
 * (q_norm, k_norm [head_dim] with eps, as Qwen3's; NULL: none), the rotary embedding of
 * both, then pgd_op_attention. On a GPU the norms, the rotation and the K/V write are one
 * kernel. Afterwards q holds the normed, rotated queries; k's contents are unspecified. */
void pgd_op_rope_attention(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                           const struct pgd_rope *rope, const struct pgd_tensor *q_norm,
                           const struct pgd_tensor *k_norm, float eps, struct pgd_tensor *q,
                           struct pgd_tensor *k, const struct pgd_tensor *v,
                           struct pgd_tensor *out);
/* out[n, I] = act(gate_up[:, :I]) * gate_up[:, I:]   (gate_up [n, 2I]) */
void pgd_op_act_mul(struct pgd_fwd *f, enum pgd_act act, const struct pgd_tensor *gate_up,
                    struct pgd_tensor *out);
/* The MLP's first half in one op: out[n, I] = act(x @ Wg^T + bg) * (x @ Wu^T + bu), where
 * gate_up is the fused layer [2I, in] (gate rows [0, I), then up rows [I, 2I)): exactly
 * pgd_op_linear(gate_up, x) then pgd_op_act_mul, gate and up each rounded to the activation
 * dtype. x [n, in]; gate_up_scratch [n, 2I] (the caller's, e.g. from pgd_fwd_alloc) holds
 * the intermediate where the two steps run (the CPU, quantized weights, larger batches on a
 * GPU); afterwards its contents are unspecified. On a GPU at decode batch sizes one kernel
 * that never writes the scratch (PGD_CUDA_GLU=0 in the environment: the two steps). */
void pgd_op_linear_act_mul(struct pgd_fwd *f, const struct pgd_linear *gate_up, enum pgd_act act,
                           const struct pgd_tensor *x, struct pgd_tensor *gate_up_scratch,
                           struct pgd_tensor *out);
/* Logits [n_logits, vocab] for the rows the runner asked for (h [n, d], head [vocab, d]),
 * written into the step's logits buffer. Under tensor parallelism (N ranks) the head may
 * instead hold this rank's share of the vocabulary, rows [rank * C, rank * C + its rows)
 * with C = ceil(vocab / N) (the last rank holds what is left): each rank computes its
 * columns of the logits and an all-gather puts the whole rows in the buffer. h must be the
 * model's last hidden state after its final norm: a pooling step (embeddings) takes those
 * rows of h themselves instead of the logits. */
void pgd_op_logits(struct pgd_fwd *f, const struct pgd_tensor *h, const struct pgd_linear *head);

/* ---- tensor parallelism (Megatron) ------------------------------------------------------ */
/* The embedding lookup over a vocabulary shard: out[i, :] = table[token_ids[i] - row0, :]
 * for the ids in [row0, row0 + rows of table), zeros for the others (table [rows, d], out
 * [n, d]). pgd_op_all_reduce of the ranks' outputs is the whole lookup. */
void pgd_op_embed_shard(struct pgd_fwd *f, const struct pgd_tensor *table, int64_t row0,
                        struct pgd_tensor *out);
/* x = the sum over the tensor-parallel ranks of each rank's x, in place (after a
 * row-parallel layer, whose outputs are partial sums). Nothing when the model is not split.
 * Every rank must call the collectives of a step in the same order. */
void pgd_op_all_reduce(struct pgd_fwd *f, struct pgd_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
