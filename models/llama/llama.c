/* The Llama architecture plugin: LlamaForCausalLM (Llama 2, Llama 3.x, and the many
 * checkpoints that reuse the architecture). */
#include <pagoda/plugin.h>
#include "models/common/decoder.h"
#include <string.h>

/* Config keys this plugin reads or knows to leave the math alone. */
static const char *const llama_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings",
    "hidden_act", "attention_bias", "mlp_bias", NULL,
};

static enum pgd_status llama_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                  void **model, char *err, size_t errlen)
{
    struct decoder_config cfg;
    enum pgd_status st = pgd_config_check_keys(ctx, llama_keys, err, errlen);
    if (!st)
        st = decoder_read_config(ctx, &cfg, err, errlen);
    if (!st)
        st = pgd_config_bool_or(ctx, "attention_bias", false, &cfg.qkv_bias, err, errlen);
    if (!st)
        st = pgd_config_bool_or(ctx, "mlp_bias", false, &cfg.mlp_bias, err, errlen);
    if (st)
        return st;
    cfg.o_bias = cfg.qkv_bias;
    struct decoder *d;
    st = decoder_load(ctx, &cfg, desc, &d, err, errlen);
    if (!st)
        *model = d;
    return st;
}

static const char *const llama_archs[] = { "LlamaForCausalLM", NULL };

static const struct pgd_arch_ops llama_ops = {
    .struct_size = sizeof(struct pgd_arch_ops),
    .architectures = llama_archs,
    .load = llama_load,
    .forward = decoder_forward,
    .destroy = decoder_destroy,
};

static const struct pgd_plugin llama_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "llama",
    .version = "1.0.0",
    .description = "Llama 2 / Llama 3.x decoder (LlamaForCausalLM)",
    .arch = &llama_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &llama_plugin;
}
