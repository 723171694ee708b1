/* The plugin ABI. A plugin is a shared object exporting exactly one symbol:
 *
 *     PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi);
 *
 * It returns a descriptor with static storage duration (never freed) whose abi_version is
 * PGD_ABI_VERSION as the plugin was built, or NULL to decline. The loader opens plugins
 * with RTLD_NOW | RTLD_LOCAL, refuses another ABI version, a NULL descriptor, an unknown
 * kind and a second plugin with a name already taken, each with a message naming the file.
 *
 * Growing the ABI: the descriptor and every vtable a plugin hands the host (struct
 * pgd_arch_ops, struct pgd_quant_ops, struct pgd_frontend_ops) begin with
 * `uint32_t struct_size`, which the plugin sets to sizeof the struct as it was compiled.
 * Structs only grow at their end, so a plugin built against an older header hands a
 * smaller struct: the loader refuses a struct_size smaller than the struct's first
 * version (naming the file, the struct and both sizes), and the host reads a field added
 * later only when PGD_STRUCT_HAS says the plugin's struct_size covers it. A field that
 * changes meaning, or one removed, is an incompatible change: PGD_ABI_VERSION goes up.
 *
 * ABI 2 added struct_size to struct pgd_arch_ops and declared struct pgd_quant_ops. ABI 3
 * (this header) added PGD_FINISH_ERROR, struct pgd_output's error and a fifth entry to
 * struct pgd_engine_stats' requests_finished: structs the host fills for a frontend, which
 * a frontend built before would pass too small. Plugins of other versions are refused. */
#ifndef PAGODA_PLUGIN_H
#define PAGODA_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pagoda/version.h>
#include <pagoda/status.h>
#include <pagoda/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the struct at p (of type `type`, from a plugin) is big enough to hold `field`:
 * its struct_size reaches past the field's end. The host tests this before it reads a
 * field appended after the struct's first version; a plugin built before the field
 * existed then simply lacks it. */
#define PGD_STRUCT_HAS(p, type, field) \
    ((size_t)(p)->struct_size >= offsetof(type, field) + sizeof(((const type *)0)->field))

enum pgd_plugin_kind {
    PGD_PLUGIN_ARCH = 1,      /* a model architecture: vtable struct pgd_arch_ops */
    PGD_PLUGIN_QUANT = 2,     /* a quantization format: vtable struct pgd_quant_ops */
    PGD_PLUGIN_FRONTEND = 3,  /* a frontend: vtable struct pgd_frontend_ops */
};

/* An architecture: builds a model from a checkpoint and runs its forward pass with ops.
 * Every field of this first version (ABI 2) is required. */
struct pgd_arch_ops {
    uint32_t struct_size;     /* sizeof(struct pgd_arch_ops) as the plugin knew it */
    /* NULL-terminated list of the config.json "architectures" strings it claims. */
    const char *const *architectures;
    /* Reads config and weights through ctx, fills desc, returns its model in *model. */
    enum pgd_status (*load)(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                            void **model, char *err, size_t errlen);
    /* One step: computes the logits the runner asked for with pgd_op_logits(). Errors are
     * recorded in f (pgd_fwd_fail). */
    void (*forward)(void *model, struct pgd_fwd *f);
    /* Frees what load allocated (not the tensors: the runtime owns those). */
    void (*destroy)(void *model);
};

/* A quantization format (GPTQ, AWQ, FP8, ...): how the linear layers of a quantized
 * checkpoint are read, kept and multiplied. The architecture plugin does not know about
 * it: it asks for linear layers by name (pgd_model_load_linear) and runs them with
 * pgd_op_linear, and the host routes both to the quant plugin that claims the checkpoint's
 * config.json "quantization_config.quant_method". The job is split as vLLM splits it
 * (QuantizationConfig: name, from_config, minimum capability and activation dtypes,
 * get_quant_method per layer; LinearMethodBase: create_weights, process_weights_after_
 * loading, apply) and as llama.cpp does per type (a storage layout, a conversion, and a
 * matrix multiply per backend that says which types it supports):
 *
 *   configure     once per model, before the architecture's load: read and check
 *                 quantization_config (bits, group_size, sym, desc_act, zero points,
 *                 activation scheme, modules_to_not_convert, ... through pgd_config_* with
 *                 "quantization_config.<key>"), and the device and activation dtype the
 *                 model computes in. A setting it cannot compute, on that device, is refused
 *                 here with a message naming the key and the value (PGD_ERR_UNSUPPORTED):
 *                 never discovered mid-forward. *state (per model, the plugin's) is passed
 *                 to every later call and freed by release after the model is destroyed.
 *   is_quantized  whether the linear layer at a checkpoint prefix ("model.layers.0.mlp.
 *                 down_proj") is stored quantized. False (lm_head, modules_to_not_convert):
 *                 the host loads it as a dense layer itself.
 *   load_linear   the quantized layer at prefixes[0..n_parts) (fused along the output
 *                 dimension, as pgd_model_load_linear fuses q/k/v or gate/up): reads its
 *                 tensors (qweight/qzeros/scales/g_idx, weight/weight_scale, ...) through ctx,
 *                 checks them against in_features and out_features (naming the tensor and
 *                 both shapes), converts or repacks them into the layout its linear runs on,
 *                 on the model's device, and fills *out: in_features, out_features, the bias
 *                 (a dense [out] tensor, or data == NULL), quant = these ops, quant_state =
 *                 the layer's own state (owned by the plugin; the weight field may describe
 *                 the packed tensor or stay empty). Device memory comes from the model
 *                 (owned by the runtime, freed with the model). The ctx services this
 *                 needs beyond model.h (tensors of any dtype, raw; device allocations
 *                 owned by the model) are added to model.h with the first quant plugin:
 *                 they are calls on ctx, so this vtable does not change.
 *   linear        y[n, out] = x[n, in] @ W^T + b for one layer it loaded, on the step's
 *                 device (pgd_fwd_device(f)) and activation dtype (pgd_fwd_act_dtype(f)):
 *                 every device configure accepted has its path here (a CPU reference and
 *                 the GPU kernels). Like every op it returns nothing: a failure goes to
 *                 pgd_fwd_fail. Activation quantization (FP8's dynamic scales) happens
 *                 inside.
 *   free_linear   frees one layer's quant_state (called once per loaded layer when the
 *                 model is destroyed, before release).
 *   release       frees the state configure made.
 *
 * Every field of this first version (ABI 2) is required. The host never calls a quant
 * plugin from two threads at once for one model; linear runs on the thread that steps
 * the model. */
struct pgd_quant_ops {
    uint32_t struct_size;     /* sizeof(struct pgd_quant_ops) as the plugin knew it */
    /* NULL-terminated list of the quantization_config.quant_method strings it claims
     * ("gptq", "awq", "fp8"), as transformers writes them. */
    const char *const *methods;
    enum pgd_status (*configure)(struct pgd_model_ctx *ctx, enum pgd_device device,
                                 enum pgd_dtype act_dtype, void **state, char *err,
                                 size_t errlen);
    bool (*is_quantized)(const void *state, const char *prefix);
    enum pgd_status (*load_linear)(void *state, struct pgd_model_ctx *ctx,
                                   const char *const *prefixes, int n_parts,
                                   int64_t in_features, const int64_t *out_features,
                                   bool bias, struct pgd_linear *out, char *err,
                                   size_t errlen);
    void (*linear)(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
                   struct pgd_tensor *y);
    void (*free_linear)(void *layer_state);
    void (*release)(void *state);
};

struct pgd_frontend_ops;      /* defined by include/pagoda/frontend.h */

struct pgd_plugin {
    uint32_t abi_version;     /* PGD_ABI_VERSION the plugin was compiled against */
    uint32_t struct_size;     /* sizeof(struct pgd_plugin) as the plugin knew it */
    enum pgd_plugin_kind kind;
    const char *name;         /* unique among loaded plugins, e.g. "llama" */
    const char *version;      /* the plugin's own version string */
    const char *description;  /* one line for `pagoda plugins` */
    union {                   /* the vtable for `kind` */
        const struct pgd_arch_ops *arch;
        const struct pgd_quant_ops *quant;
        const struct pgd_frontend_ops *frontend;
        const void *ops;
    };
};

#define PGD_PLUGIN_ENTRY "pagoda_plugin_init"
#define PGD_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef const struct pgd_plugin *(*pgd_plugin_init_fn)(uint32_t host_abi);

#ifdef __cplusplus
}
#endif
#endif
