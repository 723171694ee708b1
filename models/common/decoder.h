/* The Llama-family decoder shared by the in-tree architecture plugins (llama, qwen,
 * mistral): pre-norm blocks of grouped-query attention with rotary embeddings and a gated
 * MLP. Each plugin reads its own config into struct decoder_config (what differs: biases,
 * per-head q/k norms, sliding windows) and lets this file load and run the weights.
 * Under tensor parallelism each rank loads and runs its Megatron shard (struct
 * decoder_shard): column-parallel q/k/v and gate/up, row-parallel o_proj and down_proj each
 * followed by pgd_op_all_reduce, the embedding and head split over the vocabulary.
 * Compiled into each plugin; uses only the public API (include/pagoda). */
#ifndef PGD_MODELS_DECODER_H
#define PGD_MODELS_DECODER_H

#include <pagoda/model.h>
#include <pagoda/ops.h>

#define DECODER_HIDDEN __attribute__((visibility("hidden")))

struct decoder_config {
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, inter, vocab, max_pos;
    float eps;
    bool qkv_bias;            /* bias on q/k/v projections (Qwen2, Llama attention_bias) */
    bool o_bias;              /* bias on the output projection (Llama attention_bias) */
    bool mlp_bias;            /* bias on gate/up/down (Llama mlp_bias) */
    bool qk_norm;             /* RMSNorm over each head of q and k before rope (Qwen3) */
    bool tied;                /* lm_head shares the embedding matrix */
    int sliding_window;       /* 0 = full attention */
    const bool *layer_slides; /* [n_layers]: which layers use sliding_window; NULL = all */
    enum pgd_act act;
    struct pgd_rope_config rope;
};

struct decoder_layer {
    struct pgd_tensor in_norm, post_norm;   /* [hidden] */
    struct pgd_tensor q_norm, k_norm;       /* [head_dim], qk_norm only */
    /* Sizes are this rank's (see struct decoder_shard): H heads, KV kv_heads, I inter. */
    struct pgd_linear q, k, v, o;           /* [H*D, hidden], [KV*D, hidden] x2, [hidden, H*D] */
    struct pgd_linear gate_up, down;        /* [2I, hidden] (gate rows first), [hidden, I] */
};

/* This rank's share of the model under tensor parallelism (Megatron; rank 0 of 1 holds it
 * all): query heads [rank * heads, +heads), KV heads [kv_head0, +kv_heads) (one head,
 * shared by the ranks of its group, when there are fewer KV heads than ranks), MLP features
 * [rank * inter, +inter), vocabulary rows [vocab0, +vocab_rows) of the embedding and head. */
struct decoder_shard {
    int rank, size;
    int heads, kv_heads, kv_head0, inter;
    int64_t vocab0, vocab_rows;
};

struct decoder {
    struct decoder_config cfg;               /* layer_slides is not kept (NULL) */
    struct decoder_shard shard;
    struct pgd_attn_params *attn;            /* [n_layers], owned: each layer's window */
    struct pgd_rope rope;                   /* owned */
    struct pgd_tensor embed, final_norm;    /* [vocab_rows, hidden], [hidden] */
    struct pgd_linear lm_head;              /* [vocab_rows, hidden] */
    struct decoder_layer *layers;           /* [n_layers], owned */
};

/* Reads the keys every Llama-family config has (sizes, eps, rope, tie_word_embeddings,
 * hidden_act) into cfg; the plugin then sets what is its own. */
/* Reads sliding_window, and which layers use it, as Qwen2/Qwen3 configs say: "layer_types"
 * ("sliding_attention" / "full_attention") when present, else "use_sliding_window" with
 * "max_window_layers" (layers from that index on slide). *slides ([n_layers]) is malloc'd
 * when only some layers slide, else NULL; the caller frees it after decoder_load. */
DECODER_HIDDEN enum pgd_status decoder_read_windows(struct pgd_model_ctx *ctx,
                                                    struct decoder_config *cfg, bool **slides,
                                                    char *err, size_t errlen);
DECODER_HIDDEN enum pgd_status decoder_read_config(struct pgd_model_ctx *ctx,
                                                   struct decoder_config *cfg, char *err,
                                                   size_t errlen);
/* Loads the weights named as in HF Llama ("model.layers.N.self_attn.q_proj", ...) and fills
 * desc. *out is owned by the caller: decoder_destroy. */
DECODER_HIDDEN enum pgd_status decoder_load(struct pgd_model_ctx *ctx,
                                            const struct decoder_config *cfg,
                                            struct pgd_model_desc *desc, struct decoder **out,
                                            char *err, size_t errlen);
DECODER_HIDDEN void decoder_forward(void *model, struct pgd_fwd *f);
DECODER_HIDDEN void decoder_destroy(void *model);

#endif
