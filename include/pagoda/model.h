/* What an architecture plugin sees while it loads a model: the checkpoint's config.json and
 * its weights. Tensors loaded here live on the model's device, in its compute dtype, and are
 * owned by the runtime until the model is unloaded: a plugin frees only its own structs. */
#ifndef PAGODA_MODEL_H
#define PAGODA_MODEL_H

#include <pagoda/tensor.h>
#include <pagoda/ops.h>
#include <pagoda/status.h>
#include <pagoda/quant.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_model_ctx;         /* owned by the runtime, valid during pgd_arch_ops.load only */

/* What the runtime needs to know of a loaded model (filled by the plugin's load). */
struct pgd_model_desc {
    int n_layers;
    int n_kv_heads;           /* K/V heads per layer (the paged cache's width) */
    int head_dim;
    int hidden_size;
    int vocab_size;           /* rows of the logits */
    int max_position_embeddings;
    int sliding_window;       /* widest window any layer uses; 0 = full attention */
};

/* The model directory and the checkpoint's config.json. Keys may be dotted to reach into
 * objects and lists ("rope_scaling.rope_type", "layer_types.0"). */
const char *pgd_model_dir(const struct pgd_model_ctx *ctx);
bool pgd_config_has(const struct pgd_model_ctx *ctx, const char *key);
/* True when the key is absent or JSON null. */
bool pgd_config_is_null(const struct pgd_model_ctx *ctx, const char *key);
/* Reads a required value; PGD_ERR_NOT_FOUND or PGD_ERR_FORMAT with a message naming the key
 * and config.json's path. */
enum pgd_status pgd_config_int(const struct pgd_model_ctx *ctx, const char *key, int64_t *out,
                               char *err, size_t errlen);
enum pgd_status pgd_config_num(const struct pgd_model_ctx *ctx, const char *key, double *out,
                               char *err, size_t errlen);
/* Optional values: the default when the key is absent or null; a wrong type is an error. */
enum pgd_status pgd_config_int_or(const struct pgd_model_ctx *ctx, const char *key,
                                  int64_t dflt, int64_t *out, char *err, size_t errlen);
enum pgd_status pgd_config_num_or(const struct pgd_model_ctx *ctx, const char *key,
                                  double dflt, double *out, char *err, size_t errlen);
enum pgd_status pgd_config_bool_or(const struct pgd_model_ctx *ctx, const char *key,
                                   bool dflt, bool *out, char *err, size_t errlen);
/* A string value, or NULL when absent, null or not a string. Owned by ctx. */
const char *pgd_config_str(const struct pgd_model_ctx *ctx, const char *key);
/* The i-th key of the object at `key` in the file's order (config_groups' group names), or
 * NULL past the last one or when `key` is not an object. Owned by ctx. */
const char *pgd_config_key_at(const struct pgd_model_ctx *ctx, const char *key, size_t i);
/* Reads an activation name (e.g. "hidden_act") as transformers names it: "silu" and
 * "swish" are PGD_ACT_SILU, "gelu_pytorch_tanh" PGD_ACT_GELU_TANH; dflt when the key is
 * absent or null. Another name is PGD_ERR_UNSUPPORTED naming the key and the value. */
enum pgd_status pgd_config_act(const struct pgd_model_ctx *ctx, const char *key,
                               enum pgd_act dflt, enum pgd_act *out, char *err, size_t errlen);
/* Refuses config keys that would change the math unless the plugin says it handles them:
 * `known` is a NULL-terminated list of top-level keys the plugin reads or knows to be
 * harmless; every other key present with a non-null value that is not in pagoda's list of
 * math-neutral keys (ids, dtypes, names, transformers bookkeeping) is an error naming it. */
enum pgd_status pgd_config_check_keys(const struct pgd_model_ctx *ctx, const char *const *known,
                                      char *err, size_t errlen);
/* Reads the rope settings (rope_theta, rope_scaling of type default/llama3/linear,
 * partial_rotary_factor) for heads of head_dim into cfg; other scaling types are refused. */
enum pgd_status pgd_config_rope(const struct pgd_model_ctx *ctx, int head_dim,
                                struct pgd_rope_config *cfg, char *err, size_t errlen);

bool pgd_model_has_tensor(const struct pgd_model_ctx *ctx, const char *name);
/* Loads tensor `name`, checking it has exactly the ndim/shape given. */
enum pgd_status pgd_model_load_tensor(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                      const int64_t *shape, struct pgd_tensor *out,
                                      char *err, size_t errlen);
/* Loads a linear layer from "<prefix>.weight" (and "<prefix>.bias" when `bias`), fusing
 * n_parts prefixes along the output dimension (e.g. q/k/v or gate/up): part i has
 * out_features[i] rows of in_features. Quantized checkpoints go through their quant plugin. */
enum pgd_status pgd_model_load_linear(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                      int n_parts, int64_t in_features,
                                      const int64_t *out_features, bool bias,
                                      struct pgd_linear *out, char *err, size_t errlen);
/* n layers of one input, each its own pgd_linear as pgd_model_load_linear(prefixes[i], 1
 * part) loads it, with the same values; on a GPU, dense layers share one allocation (layer
 * i's rows right after layer i - 1's, and so their biases), so that pgd_op_linear_multi can
 * run them as one GEMM (q, k and v at prompt and mid-batch sizes: one launch with the
 * tiles of all three instead of k and v alone leaving most SMs idle). Quantized layers, and
 * any on the CPU, are loaded apart. */
enum pgd_status pgd_model_load_linears(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                       int n, int64_t in_features, const int64_t *out_features,
                                       bool bias, struct pgd_linear *out, char *err,
                                       size_t errlen);
/* An MLP's two projections: `up` (n_up parts fused as pgd_model_load_linear fuses them, each
 * of `inter` outputs from `hidden` inputs, e.g. gate and up) and `down` (inter -> hidden),
 * where down's input is up's parts combined output by output (act(gate) * up). The same as
 * the two pgd_model_load_linear calls, except where down is a quantized layer with an
 * act-order permutation and up a quantized one without a bias: there the permutation is
 * folded into the order of up's outputs at load (each part's output r is the checkpoint's
 * output perm[r]), so down reads its input as it comes instead of gathering it on every
 * call. The model computes the same function. PGD_FOLD_ACT_ORDER=0 loads them as two
 * plain calls. */
enum pgd_status pgd_model_load_mlp(struct pgd_model_ctx *ctx, const char *const *up, int n_up,
                                   const char *down, int64_t hidden, int64_t inter, bool bias,
                                   struct pgd_linear *up_out, struct pgd_linear *down_out,
                                   char *err, size_t errlen);
/* Slices: the inverse of fusing, for checkpoints that store several layers in one tensor
 * (Phi-3's qkv_proj [(H + 2 KV) * D, hidden], a fused gate_up_proj, ...) when the ops want
 * them apart. Rows are along the outermost dimension (shape[0]).
 *
 * pgd_model_load_tensor_rows loads rows [row0, row0 + n_rows) of tensor `name`, which must
 * have exactly the ndim (>= 1) and shape given (the whole tensor's, as the config implies
 * it); *out has shape [n_rows, shape[1], ...]. Rows outside [0, shape[0]) or n_rows <= 0
 * are PGD_ERR_INVALID_ARG; a tensor of another shape is PGD_ERR_FORMAT naming both shapes. */
enum pgd_status pgd_model_load_tensor_rows(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                           const int64_t *shape, int64_t row0, int64_t n_rows,
                                           struct pgd_tensor *out, char *err, size_t errlen);
/* A linear layer of n_rows outputs made of rows [row0, row0 + n_rows) of "<prefix>.weight"
 * [total_out, in_features] (and of "<prefix>.bias" [total_out] when `bias`). Loading the
 * three row ranges of a fused qkv_proj gives three layers sharing nothing but the file.
 * Dense (float) checkpoints only: a quantized tensor is refused. */
enum pgd_status pgd_model_load_linear_rows(struct pgd_model_ctx *ctx, const char *prefix,
                                           int64_t in_features, int64_t total_out, int64_t row0,
                                           int64_t n_rows, bool bias, struct pgd_linear *out,
                                           char *err, size_t errlen);
/* Tensor parallelism (Megatron): the model is split over tp_size processes, this one being
 * tp_rank (0 and 1 when the model is not split). A plugin that supports it loads only its
 * rank's share of each layer (pgd_model_load_linear_shard, pgd_model_load_tensor_rows) and
 * calls pgd_op_all_reduce after each row-parallel layer; a plugin that does not should
 * refuse a tp_size above 1. */
int pgd_model_tp_rank(const struct pgd_model_ctx *ctx);
int pgd_model_tp_size(const struct pgd_model_ctx *ctx);

/* How a linear layer is split over the ranks.
 * PGD_SHARD_ROWS (column-parallel: q/k/v, gate/up, a vocabulary-split head): part i of the
 * checkpoint ("<prefixes[i]>.weight" [full_out[i], in_features]) gives this rank its rows
 * [row0[i], row0[i] + out_features[i]) (and the same rows of its bias); the parts are fused
 * along the output dimension as pgd_model_load_linear fuses them.
 * PGD_SHARD_COLS (row-parallel: o_proj, down_proj; one part): the checkpoint's weight is
 * [out_features, full_in]; this rank takes its input columns [col0, col0 + in_features).
 * Each rank's product is a partial sum that pgd_op_all_reduce adds up, so the bias is
 * loaded only where with_bias is set (one rank, usually rank 0): it must enter the sum
 * once. */
enum pgd_shard_kind { PGD_SHARD_ROWS = 1, PGD_SHARD_COLS = 2 };
struct pgd_shard {
    enum pgd_shard_kind kind;
    const int64_t *full_out;  /* ROWS: [n_parts] the checkpoint's rows of each part */
    const int64_t *row0;      /* ROWS: [n_parts] this rank's first row of each part */
    int64_t full_in;          /* COLS: the checkpoint's in_features */
    int64_t col0;             /* COLS: this rank's first input column */
    bool with_bias;           /* COLS: this rank loads the bias (when the layer has one) */
};
/* pgd_model_load_linear for one rank's shard: in_features and out_features are the shard's
 * sizes, the shard spec says where they sit in the checkpoint's tensors. Only the shard is
 * read from the safetensors map and copied (a CPU model in the checkpoint's float32 reads
 * a single part's row shard in place); no rank ever holds a whole tensor. A shard outside
 * the tensor is PGD_ERR_INVALID_ARG. A quantized layer goes to its quant plugin, which
 * loads the shard (pgd_model_linear_shard); the bias is sliced here. */
enum pgd_status pgd_model_load_linear_shard(struct pgd_model_ctx *ctx,
                                            const char *const *prefixes, int n_parts,
                                            int64_t in_features, const int64_t *out_features,
                                            bool bias, const struct pgd_shard *shard,
                                            struct pgd_linear *out, char *err, size_t errlen);

/* For a quant plugin's load_linear: the shard of the layer it is asked for under tensor
 * parallelism (struct pgd_shard; its in_features and out_features are then the shard's),
 * or NULL for the whole layer. A plugin that shards calls it in every load_linear and
 * loads only that part of the checkpoint's tensors (the bias aside: the host slices it,
 * and load_linear is asked for none); a plugin that never calls it is refused a split
 * model (PGD_ERR_UNSUPPORTED naming it). */
const struct pgd_shard *pgd_model_linear_shard(struct pgd_model_ctx *ctx);

/* ---- services for quantization plugins (struct pgd_quant_ops in include/pagoda/plugin.h) --
 * A quant plugin reads its tensors as stored (pgd_model_raw_tensor), converts them into a
 * canonical layout of include/pagoda/quant.h and hands that to the model
 * (pgd_model_qweight_wq / _fp8), which keeps it on the model's device; its linear then runs
 * pgd_op_qweight_linear. */

/* A checkpoint tensor as stored on disk: any dtype, never converted. data points into the
 * checkpoint's read-only map (valid while the model is loaded) and may be unaligned for its
 * dtype: read elements with memcpy. */
struct pgd_raw_tensor {
    const void *data;
    enum pgd_dtype dtype;
    int ndim;                 /* 0 for a scalar */
    int64_t shape[PGD_MAX_DIMS];
    const char *path;         /* the .safetensors file that holds it (for messages) */
};
/* Finds tensor `name` as stored and checks its dtype (PGD_DTYPE_COUNT: any) and, when
 * ndim >= 0, its rank and shape (shape NULL or an entry < 0: any size there). Absent:
 * PGD_ERR_NOT_FOUND; another dtype, rank or shape (or a rank above PGD_MAX_DIMS):
 * PGD_ERR_FORMAT; every message names the file, the tensor, what it is and what was
 * expected. A model loaded with random weights has no checkpoint: PGD_ERR_UNSUPPORTED. */
enum pgd_status pgd_model_raw_tensor(const struct pgd_model_ctx *ctx, const char *name,
                                     enum pgd_dtype dtype, int ndim, const int64_t *shape,
                                     struct pgd_raw_tensor *out, char *err, size_t errlen);
/* The bias of a linear layer fused from n_parts prefixes: "<prefix>.bias" of each (any float
 * dtype, [out_features[i]]) concatenated into *out [sum out_features] in the model's dtype on
 * its device (owned by the model). */
enum pgd_status pgd_model_load_bias(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                    int n_parts, const int64_t *out_features,
                                    struct pgd_tensor *out, char *err, size_t errlen);

/* A quantized weight on the model's device, owned by the model (freed with it). */
struct pgd_qweight;
/* Makes the weight of a layer from n_parts canonical layouts stacked along the output
 * dimension (the parts of a fused q/k/v or gate/up; each with the layer's `in`), for the
 * model's device. `name` names the layer in messages. The host arrays are only read during
 * the call. On the CPU the weight is kept dequantized (float32 [out, in]); on CUDA the parts
 * are joined into one layout (same bits, group size and perm: else PGD_ERR_UNSUPPORTED
 * naming the layer) and handed to the kernels (pgd_cuda_wq_create), which repack it. */
enum pgd_status pgd_model_qweight_wq(struct pgd_model_ctx *ctx, const char *name,
                                     const struct pgd_wq_host *parts, int n_parts,
                                     struct pgd_qweight **out, char *err, size_t errlen);
/* The same for FP8 layers (pgd_cuda_fp8_create on CUDA). Parts whose per-tensor scales
 * differ are joined with per-channel scales (the same numbers). */
enum pgd_status pgd_model_qweight_fp8(struct pgd_model_ctx *ctx, const char *name,
                                      const struct pgd_fp8_host *parts, int n_parts,
                                      struct pgd_qweight **out, char *err, size_t errlen);

/* Random quantized layers, for models loaded with random weights (--load-format dummy: no
 * checkpoint to read). A quant plugin's load_linear asks pgd_model_random_weights and, when
 * true, makes each part in the layout its quantization_config describes instead of reading
 * tensors, then hands it to pgd_model_qweight_wq / _fp8 as usual. The values are scaled like
 * the dense random weights (an RMS of 1 / sqrt(in)), seeded from the model's seed and
 * `name`. pgd_model_random_wq: bits 4 or 8, group_size -1 (per channel) or a size that
 * divides in (one larger than in: one group), act_order: a random perm shared by the layers
 * of one parent module with the same in (the parts of a fused q/k/v see the same inputs);
 * otherwise PGD_ERR_UNSUPPORTED naming `name`. pgd_model_random_fp8: a scale per output
 * channel or one per tensor. The arrays of *host are one malloc'd block returned in *block
 * (the caller frees it). */
bool pgd_model_random_weights(const struct pgd_model_ctx *ctx);
enum pgd_status pgd_model_random_wq(struct pgd_model_ctx *ctx, const char *name, int bits,
                                    int64_t group_size, bool act_order, int64_t in, int64_t out,
                                    struct pgd_wq_host *host, void **block, char *err,
                                    size_t errlen);
enum pgd_status pgd_model_random_fp8(struct pgd_model_ctx *ctx, const char *name,
                                     bool per_channel, int64_t in, int64_t out,
                                     struct pgd_fp8_host *host, void **block, char *err,
                                     size_t errlen);
/* The random weight pgd_model_load_linear makes for the dense layer of these parts (as it
 * is asked: prefixes, n_parts, in, out_features), exactly as that load holds it (made on the
 * model's device, in its dtype: float32 on the CPU), as the tensor *out [sum out_features,
 * in] of that dtype, the parts' rows one after the other, its data in *mem (malloc'd; the
 * caller frees it). For a plugin that quantizes 16-bit weights at load (--quantization fp8):
 * with random weights it quantizes these, so that the quantized model is the dense random
 * model quantized. */
enum pgd_status pgd_model_random_dense(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                       int n_parts, int64_t in, const int64_t *out_features,
                                       struct pgd_raw_tensor *out, void **mem, char *err,
                                       size_t errlen);

/* A linear layer whose weight is an already-loaded tensor [out, in] (tied embeddings). */
struct pgd_linear pgd_linear_from_tensor(const struct pgd_tensor *weight);

#ifdef __cplusplus
}
#endif
#endif
