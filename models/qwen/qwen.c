/* The Qwen architecture plugin: Qwen2ForCausalLM (Qwen2, Qwen2.5: bias on q/k/v) and
 * Qwen3ForCausalLM (per-head RMSNorm on q and k, an explicit head_dim). */
#include <pagoda/plugin.h>
#include "models/common/decoder.h"
#include <stdlib.h>
#include <string.h>

static const char *const qwen_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings",
    "hidden_act", "attention_bias", "sliding_window", "use_sliding_window", "max_window_layers",
    "layer_types", NULL,
};

static enum pgd_status qwen_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                 void **model, char *err, size_t errlen)
{
    struct decoder_config cfg;
    bool *slides = NULL;
    enum pgd_status st = pgd_config_check_keys(ctx, qwen_keys, err, errlen);
    if (!st)
        st = decoder_read_config(ctx, &cfg, err, errlen);
    if (!st)
        st = decoder_read_windows(ctx, &cfg, &slides, err, errlen);
    if (st)
        return st;
    const char *arch = pgd_config_str(ctx, "architectures.0");
    if (arch && !strcmp(arch, "Qwen3ForCausalLM")) {
        cfg.qk_norm = true;
        st = pgd_config_bool_or(ctx, "attention_bias", false, &cfg.qkv_bias, err, errlen);
        cfg.o_bias = cfg.qkv_bias;
    } else {
        cfg.qkv_bias = true;          /* Qwen2: q/k/v projections always carry a bias */
    }
    struct decoder *d = NULL;
    if (!st)
        st = decoder_load(ctx, &cfg, desc, &d, err, errlen);
    free(slides);
    if (!st)
        *model = d;
    return st;
}

static const char *const qwen_archs[] = { "Qwen2ForCausalLM", "Qwen3ForCausalLM", NULL };

static const struct pgd_arch_ops qwen_ops = {
    .struct_size = sizeof(struct pgd_arch_ops),
    .architectures = qwen_archs,
    .load = qwen_load,
    .forward = decoder_forward,
    .destroy = decoder_destroy,
};

static const struct pgd_plugin qwen_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "qwen",
    .version = "1.0.0",
    .description = "Qwen2 / Qwen2.5 / Qwen3 dense decoders",
    .arch = &qwen_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &qwen_plugin;
}
