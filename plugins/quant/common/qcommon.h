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

/* Where one part of the layer being loaded sits in the checkpoint: its tensors describe the
 * whole [full_out, full_in] layer, of which this rank loads outputs [row0, row0 + out) and
 * inputs [col0, col0 + in) (tensor parallelism: a column-parallel shard takes rows, a
 * row-parallel one input columns; without it the slice is the whole layer). */
struct qc_slice {
    int64_t full_in, full_out;
    int64_t row0, col0;
    int64_t in, out;
};
/* The slice of part `part` of the layer load_linear was asked for (in, out: the sizes it
 * was given for that part), from pgd_model_linear_shard. */
void qc_part_slice(struct pgd_model_ctx *ctx, int part, int64_t in, int64_t out,
                   struct qc_slice *s);
/* Rows x cols elements of a row-major tensor with ld elements a row: row row_of[r] (or
 * r0 + r when row_of is NULL), columns [c0, c0 + cols), into dst [rows][cols]. _i32 copies
 * 4-byte elements as they are; _floats widens any float dtype. */
void qc_read_i32_block(const struct pgd_raw_tensor *t, int64_t ld, const int32_t *row_of,
                       int64_t r0, int64_t rows, int64_t c0, int64_t cols, int32_t *dst);
void qc_read_floats_block(const struct pgd_raw_tensor *t, int64_t ld, const int32_t *row_of,
                          int64_t r0, int64_t rows, int64_t c0, int64_t cols, float *dst);

/* The groups of a rank's slice of input channels (tensor parallelism of a row-parallel
 * layer). gid[i] is the checkpoint's group (in [0, n_groups)) of each of the slice's `in`
 * channels. The canonical layout wants groups of one size, and a slice may hold parts of
 * groups (act-order spreads a group over the whole input; a shard narrower than a group
 * holds part of one): with g the greatest common divisor of how many of the slice's
 * channels each group holds, each checkpoint group becomes count / g groups of g channels
 * (in channel order) that repeat its scales and zeros; whole groups stay whole (g = the
 * group size). new_gid[in] gets each channel's new group, *src (malloc'd, [in / g]) the
 * checkpoint group each new group repeats, *group g (a debug log line says when g is
 * below ckpt_group, the checkpoint's group size). PGD_ERR_FORMAT naming `name` when a gid
 * is outside [0, n_groups). */
enum pgd_status qc_regroup(const char *name, const int32_t *gid, int64_t in, int64_t n_groups,
                           int64_t ckpt_group, int64_t *group, int32_t *new_gid, int32_t **src,
                           char *err, size_t errlen);

/* A checkpoint's FP8 layer, as vLLM, llm-compressor and compressed-tensors write it:
 * "<prefix>.weight" F8_E4M3 [out, in] (the bytes as they are) and "<prefix>.weight_scale"
 * (any float dtype) [] or [1] per tensor, [out] or [out, 1] per channel, widened to float;
 * the slice's rows and columns of the bytes, a per-channel scale sliced with the rows, a
 * per-tensor one kept. The arrays of *h are one malloc'd block in *mem (the caller frees
 * it). */
enum pgd_status qc_read_fp8(struct pgd_model_ctx *ctx, const char *prefix,
                            const struct qc_slice *slice, struct pgd_fp8_host *h, void **mem,
                            char *err, size_t errlen);

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
/* The load_linear of an integer format: part_fn reads the slice of each part's tensors
 * (qc_part_slice: the whole part, or this rank's shard of it) and converts it into a
 * canonical layout (its arrays one malloc'd block in *block), or, with random weights,
 * pgd_model_random_wq makes each part (of the slice's size) in the layout `scheme` says;
 * then the model keeps the stacked parts (pgd_model_qweight_wq) and qc_finish_linear fills
 * *out. qc_load_fp8_linear below is the same loader (one loop in qcommon.c) with FP8's
 * reader. */
typedef enum pgd_status (*qc_wq_part_fn)(const void *state, struct pgd_model_ctx *ctx,
                                         const char *prefix, const struct qc_slice *slice,
                                         struct pgd_wq_host *host, void **block, char *err,
                                         size_t errlen);
enum pgd_status qc_load_wq_linear(const void *state, struct pgd_model_ctx *ctx,
                                  const struct pgd_quant_ops *ops, qc_wq_part_fn part_fn,
                                  const struct qc_wq_scheme *scheme,
                                  const char *const *prefixes, int n_parts, int64_t in_features,
                                  const int64_t *out_features, bool bias, struct pgd_linear *out,
                                  char *err, size_t errlen);
/* The same for FP8 layers: part_fn reads each part's slice (its arrays one malloc'd block
 * in *block), or, with random weights, `random` says how a part is made; then
 * pgd_model_qweight_fp8 keeps them. QC_FP8_RANDOM_TENSOR / _CHANNEL: random e4m3 codes
 * (pgd_model_random_fp8) with a scale per tensor / per output channel, as a checkpoint of
 * that layout holds them; QC_FP8_RANDOM_DENSE (a plugin that quantizes 16-bit weights at
 * load): the dense random layer (pgd_model_random_dense) quantized per output channel with
 * qc_fp8_quantize_rows, so the model is the dense random model quantized (a rank's slice of a
 * split layer takes random codes per channel instead). */
enum qc_fp8_random { QC_FP8_RANDOM_TENSOR, QC_FP8_RANDOM_CHANNEL, QC_FP8_RANDOM_DENSE };
typedef enum pgd_status (*qc_fp8_part_fn)(const void *state, struct pgd_model_ctx *ctx,
                                          const char *prefix, const struct qc_slice *slice,
                                          struct pgd_fp8_host *host, void **block, char *err,
                                          size_t errlen);
enum pgd_status qc_load_fp8_linear(const void *state, struct pgd_model_ctx *ctx,
                                   const struct pgd_quant_ops *ops, qc_fp8_part_fn part_fn,
                                   enum qc_fp8_random random, const char *const *prefixes,
                                   int n_parts, int64_t in_features, const int64_t *out_features,
                                   bool bias, struct pgd_linear *out, char *err, size_t errlen);
/* Rows [row0, row0 + rows) of w (16/32-bit, [.., full_in] row-major) quantized to FP8 per
 * output row, as the activations get theirs per token (kernels/cpu/quant.c), on up to 16
 * threads: scale[r] = max |row r| / 448 (1 for an all-zero row) over the whole row, then
 * q[r * in + i] = the e4m3 code of row r's element col0 + i over scale[r], i < in (a rank's
 * columns of the row). scale [rows] and q [rows, in] are the caller's. PGD_ERR_NOMEM naming
 * `name` where a thread's row buffer cannot be had. */
enum pgd_status qc_fp8_quantize_rows(const char *name, const struct pgd_raw_tensor *w,
                                     int64_t full_in, int64_t row0, int64_t rows, int64_t col0,
                                     int64_t in, float *scale, uint8_t *q, char *err,
                                     size_t errlen);
void qc_linear(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
               struct pgd_tensor *y);
void qc_free_linear(void *layer_state);

#endif
