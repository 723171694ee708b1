/* Internal: a loaded model. Reads config.json, finds the architecture plugin that claims
 * it, opens the checkpoint and lets the plugin build itself through struct pgd_model_ctx.
 * The model owns every tensor the plugin loaded. */
#ifndef PGD_RUNTIME_MODEL_H
#define PGD_RUNTIME_MODEL_H

#include <pagoda/model.h>
#include <pagoda/registry.h>
#include <jansson.h>

#define PGD_MAX_EOS 8

struct pgd__model {
    const struct pgd_plugin *plugin;   /* borrowed from the registry */
    void *impl;                        /* the plugin's model */
    struct pgd_model_desc desc;
    char *dir;                         /* owned */
    char *config_path;                 /* owned */
    json_t *config;                    /* owned */
    struct pgd__weights *weights;      /* owned; tensors may point into its maps */
    enum pgd_device device;
    enum pgd_dtype dtype;              /* of weights and activations on the device */
    void **allocs;                     /* owned device allocations (weights) */
    size_t n_allocs, cap_allocs;
    int32_t eos_ids[PGD_MAX_EOS];      /* from generation_config.json, else config.json */
    int n_eos;
    int32_t bos_id;                    /* -1 when none */
    bool random_weights;               /* no checkpoint: tensors are made up (benchmarks) */
    uint64_t random_seed;
    void *stager;                      /* CUDA upload staging during load, else NULL */
    size_t weight_bytes;               /* bytes of weights on the device */
    int tp_rank, tp_size;              /* tensor parallelism: this rank's shard (0 of 1: none) */
    bool tp_asked;                     /* the plugin read tp_size (it knows how to shard) */
    /* Quantization (runtime/model/quant.c): the quant plugin routing pgd_model_load_linear,
     * its per-model state, the layers it loaded (each freed with free_linear) and the
     * quantized weights the model keeps for it (runtime/model/qweight.c). */
    const struct pgd_plugin *quant;    /* borrowed from the registry; NULL: dense */
    void *quant_state;
    void **quant_layers;               /* [n_quant_layers] the plugin's layer states */
    size_t n_quant_layers, cap_quant_layers;
    struct pgd_qweight *qweights;      /* owned list */
    /* CUDA: the act-order permutations its wq layers share (qweight.c; NULL until the
     * first), owned */
    struct pgd_cuda_wq_perms *wq_perms;
    /* While the quant plugin loads one rank's shard of a layer (model_shard.c): that shard
     * (NULL otherwise: the whole layer), and whether the plugin asked for it. */
    const struct pgd_shard *quant_shard;
    bool quant_shard_asked;
    /* pgd_model_load_mlp's fold of down_proj's act-order input permutation into the order
     * of the outputs that feed it (qweight.c): while down loads (TAKE), its W4 layer gives
     * its permutation up into order [n_order] (owned); while the feeding layer loads (GIVE),
     * each of its parts' outputs is reordered by it (new output r is the checkpoint's output
     * order[r]) and order_used says that it was done. folded counts the layers folded so
     * (tests read it). */
    struct {
        enum { PGD__FOLD_NONE, PGD__FOLD_TAKE, PGD__FOLD_GIVE } phase;
        int32_t *order;
        int64_t n_order;
        bool order_used;
        int folded;
    } fold;
};

/* How to load: the compute dtype on a GPU (PGD_DTYPE_COUNT: the checkpoint's, F32 read as
 * BF16) and whether to make random weights from config.json alone (no safetensors read):
 * uniform in +-sqrt(3 / in_features) for matrices, [0.9, 1.1) for norms, the same values on
 * every device for a given seed. */
struct pgd__model_opts {
    enum pgd_dtype dtype;
    bool random_weights;
    uint64_t seed;
    /* Tensor parallelism: load shard tp_rank of tp_size (0 for both: no split). A plugin that
     * never asks pgd_model_tp_size is refused when tp_size > 1. */
    int tp_rank, tp_size;
    /* vLLM's --quantization: a quant method ("gptq", "awq", "fp8"), or NULL / "" to take
     * config.json's. With an unquantized checkpoint, "fp8" quantizes it at load. */
    const char *quantization;
};

/* Loads the model in dir onto device. *out is owned by the caller: pgd__model_destroy. A
 * config whose architectures no plugin claims is refused with the list of those claimed. */
enum pgd_status pgd__model_load(const char *dir, const struct pgd_registry *reg,
                                enum pgd_device device, struct pgd__model **out,
                                char *err, size_t errlen);
enum pgd_status pgd__model_load_opts(const char *dir, const struct pgd_registry *reg,
                                     enum pgd_device device, const struct pgd__model_opts *opts,
                                     struct pgd__model **out, char *err, size_t errlen);
void pgd__model_destroy(struct pgd__model *m);

/* Reads config.json of dir (owned by the caller: json_decref). */
enum pgd_status pgd__config_read(const char *dir, json_t **out, char *err, size_t errlen);
/* The value at a dotted key, or NULL. Borrowed from cfg. */
json_t *pgd__config_get(json_t *cfg, const char *key);
/* Refuses, before any plugin reads them, config values that would change the math and are
 * out of range, naming config_path, the key and the value: rms_norm_eps or rope_theta <= 0,
 * max_position_embeddings not an integer > 0, a hidden_act the ops do not compute
 * (PGD_ERR_UNSUPPORTED), rope_scaling, rope_parameters or quantization_config that is not
 * an object, and a quantization_config.quant_method no quant plugin of reg claims
 * (PGD_ERR_UNSUPPORTED, listing those claimed). Absent and null keys pass. */
enum pgd_status pgd__config_check_values(json_t *cfg, const char *config_path,
                                         const struct pgd_registry *reg, char *err,
                                         size_t errlen);

/* runtime/model/quant.c. Picks the quant plugin of the checkpoint (config.json's
 * quantization_config.quant_method, else quantize_config.json or quant_config.json beside it,
 * which become config.json's quantization_config) or of `quantization` (--quantization; a
 * different method in the checkpoint is refused), and lets it configure itself. No method:
 * m->quant stays NULL. */
enum pgd_status pgd__model_quant_setup(struct pgd__model *m, const struct pgd_registry *reg,
                                       const char *quantization, char *err, size_t errlen);
/* Whether the linear layer of these parts is the quant plugin's (all parts quantized); a
 * layer with some parts quantized and some not is refused. */
enum pgd_status pgd__model_quant_claims(struct pgd__model *m, const char *const *prefixes,
                                        int n_parts, bool *claims, char *err, size_t errlen);
/* Loads the layer through the quant plugin and remembers it for free_linear. */
enum pgd_status pgd__model_quant_load_linear(struct pgd_model_ctx *ctx,
                                             const char *const *prefixes, int n_parts,
                                             int64_t in_features, const int64_t *out_features,
                                             bool bias, struct pgd_linear *out, char *err,
                                             size_t errlen);
/* The quantization of the checkpoint in dir as the catalog (models/catalog.ini) spells it,
 * read from config.json's quantization_config or the side files, without loading: "none",
 * "gptq-int4", "gptq-int8", "awq-int4", "fp8", "compressed-tensors-w4a16" (-w8a16, -fp8,
 * -mixed when its config groups differ), another quant_method as it is, or "?" when dir has
 * no readable config.json. */
void pgd__model_quant_label(const char *dir, char *buf, size_t len);
/* Frees the plugin's layers and state, and the quantized weights (after the architecture's
 * destroy). */
void pgd__model_quant_teardown(struct pgd__model *m);

/* runtime/model/kv_scales.c. The FP8 KV cache's per-layer scales k_scale, v_scale
 * [desc.n_layers] from the checkpoint, as vLLM reads them: scalar tensors named
 * <...>.<layer>.<...>.k_scale / .v_scale (llm-compressor, vLLM), .k_proj.k_scale /
 * .v_proj.v_scale (ModelOpt), .k_proj.output_scale / .v_proj.output_scale (older
 * compressed-tensors) or .kv_scale (deprecated: both), the layer being the first all-digit
 * part of the name. Layers without one get 1.0; *found counts the layers with a K or V scale.
 * A scale that is not one finite positive F32/BF16/F16 value, or whose layer is out of range,
 * is PGD_ERR_FORMAT naming the tensor. Random weights (no checkpoint): all 1.0. */
enum pgd_status pgd__model_kv_scales(const struct pgd__model *m, float *k_scale, float *v_scale,
                                     int *found, char *err, size_t errlen);

#endif
