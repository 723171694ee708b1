/* What the quant plugins share: reading quantization_config lists, checked reads of a
 * layer's tensors, the linear every plugin runs (pgd_op_qweight_linear on the weight the
 * model keeps), and the bias of a layer. Compiled into each plugin (like models/common). */
#ifndef PGD_PLUGINS_QUANT_COMMON_H
#define PGD_PLUGINS_QUANT_COMMON_H

#include <pagoda/plugin.h>
#include <stdbool.h>

/* A list of module names from quantization_config (modules_to_not_convert, ignored_layers). */
struct qc_list {
    char **names;              /* [n], owned */
    int n;
};
/* Reads the list at config key `key` (absent or null: empty). Anything but a list of strings
 * is PGD_ERR_FORMAT naming the key. */
enum pgd_status qc_list_read(const struct pgd_model_ctx *ctx, const char *key,
                             struct qc_list *list, char *err, size_t errlen);
void qc_list_free(struct qc_list *list);
/* Whether the list names prefix: by substring when `substring` (AutoAWQ's and transformers'
 * rule for modules_to_not_convert: "lm_head" names "lm_head", "mlp" every MLP layer), else by
 * equality or as a dotted suffix (vLLM's ignored_layers: "model.layers.0.mlp.down_proj"). */
bool qc_list_has(const struct qc_list *list, const char *prefix, bool substring);

/* PGD_ERR_UNSUPPORTED when the checkpoint has no quantization_config (a 16-bit checkpoint
 * named with --quantization METHOD for a format that cannot quantize at load). Random weights
 * need none: the format's defaults describe their layout. */
enum pgd_status qc_need_config(const struct pgd_model_ctx *ctx, const char *method, char *err,
                               size_t errlen);

/* Reads n elements of a float tensor (F32, F16 or BF16) into dst; I32 into dst32. Data may
 * be unaligned (it points into the checkpoint's map). */
void qc_read_floats(const struct pgd_raw_tensor *t, size_t n, float *dst);
void qc_read_i32(const struct pgd_raw_tensor *t, size_t n, int32_t *dst);
/* Finds a float tensor (F16, BF16 or F32; `want` names the dtype a checkpoint normally has
 * in the message) of exactly ndim/shape. */
enum pgd_status qc_float_tensor(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                const int64_t *shape, const char *want,
                                struct pgd_raw_tensor *out, char *err, size_t errlen);

/* A checkpoint's FP8 layer, as vLLM, llm-compressor and compressed-tensors write it:
 * "<prefix>.weight" F8_E4M3 [out, in] (the bytes as they are) and "<prefix>.weight_scale"
 * (any float dtype) [] or [1] per tensor, [out] or [out, 1] per channel, widened to float.
 * The arrays of *h are one malloc'd block in *mem (the caller frees it). */
enum pgd_status qc_read_fp8(struct pgd_model_ctx *ctx, const char *prefix, int64_t in,
                            int64_t out, struct pgd_fp8_host *h, void **mem, char *err,
                            size_t errlen);

/* Fills *out for a loaded quantized layer: sizes, the plugin's ops, the weight as
 * quant_state (owned by the model: qc_free_linear frees nothing), and the bias when asked. */
enum pgd_status qc_finish_linear(struct pgd_model_ctx *ctx, const struct pgd_quant_ops *ops,
                                 struct pgd_qweight *w, const char *const *prefixes,
                                 int n_parts, int64_t in_features, const int64_t *out_features,
                                 bool bias, struct pgd_linear *out, char *err, size_t errlen);
/* The layout an integer format's layer has, for random weights (--load-format dummy). */
struct qc_wq_scheme {
    int bits;                  /* 4 or 8 */
    int64_t group_size;        /* -1: per channel */
    bool act_order;            /* groups not contiguous: a random perm */
};
/* The load_linear of an integer format: part_fn reads and converts each part's tensors into
 * a canonical layout (its arrays one malloc'd block in *block), or, with random weights,
 * pgd_model_random_wq makes each part in the layout `scheme` says; then the model keeps the
 * stacked parts (pgd_model_qweight_wq) and qc_finish_linear fills *out. */
typedef enum pgd_status (*qc_wq_part_fn)(const void *state, struct pgd_model_ctx *ctx,
                                         const char *prefix, int64_t in, int64_t out,
                                         struct pgd_wq_host *host, void **block, char *err,
                                         size_t errlen);
enum pgd_status qc_load_wq_linear(const void *state, struct pgd_model_ctx *ctx,
                                  const struct pgd_quant_ops *ops, qc_wq_part_fn part_fn,
                                  const struct qc_wq_scheme *scheme,
                                  const char *const *prefixes, int n_parts, int64_t in_features,
                                  const int64_t *out_features, bool bias, struct pgd_linear *out,
                                  char *err, size_t errlen);
/* The same for FP8 layers: part_fn reads each part (its arrays one malloc'd block in
 * *block), or, with random weights, pgd_model_random_fp8 makes it with a scale per output
 * channel when random_per_channel, else one per tensor; pgd_model_qweight_fp8 keeps them. */
typedef enum pgd_status (*qc_fp8_part_fn)(const void *state, struct pgd_model_ctx *ctx,
                                          const char *prefix, int64_t in, int64_t out,
                                          struct pgd_fp8_host *host, void **block, char *err,
                                          size_t errlen);
enum pgd_status qc_load_fp8_linear(const void *state, struct pgd_model_ctx *ctx,
                                   const struct pgd_quant_ops *ops, qc_fp8_part_fn part_fn,
                                   bool random_per_channel, const char *const *prefixes,
                                   int n_parts, int64_t in_features, const int64_t *out_features,
                                   bool bias, struct pgd_linear *out, char *err, size_t errlen);
void qc_linear(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
               struct pgd_tensor *y);
void qc_free_linear(void *layer_state);

#endif
