/* The Mistral architecture plugin: MistralForCausalLM, with sliding-window attention when
 * the config sets sliding_window (null means full attention, as in Mistral v0.3). */
#include <pagoda/plugin.h>
#include "models/common/decoder.h"

static const char *const mistral_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings",
    "hidden_act", "sliding_window", NULL,
};

static enum pgd_status mistral_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                    void **model, char *err, size_t errlen)
{
    struct decoder_config cfg;
    int64_t window;
    enum pgd_status st = pgd_config_check_keys(ctx, mistral_keys, err, errlen);
    if (!st)
        st = decoder_read_config(ctx, &cfg, err, errlen);
    if (!st)
        st = pgd_config_int_or(ctx, "sliding_window", 0, &window, err, errlen);
    if (st)
        return st;
    if (window < 0 || window > (1 << 30))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: sliding_window %lld is out "
                        "of range", pgd_model_dir(ctx), (long long)window);
    cfg.sliding_window = (int)window;
    struct decoder *d;
    st = decoder_load(ctx, &cfg, desc, &d, err, errlen);
    if (!st)
        *model = d;
    return st;
}

static const char *const mistral_archs[] = { "MistralForCausalLM", NULL };

static const struct pgd_arch_ops mistral_ops = {
    .struct_size = sizeof(struct pgd_arch_ops),
    .architectures = mistral_archs,
    .load = mistral_load,
    .forward = decoder_forward,
    .destroy = decoder_destroy,
};

static const struct pgd_plugin mistral_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "mistral",
    .version = "1.0.0",
    .description = "Mistral 7B family, sliding-window attention (MistralForCausalLM)",
    .arch = &mistral_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &mistral_plugin;
}
