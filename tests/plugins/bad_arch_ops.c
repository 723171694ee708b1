/* Loader fixture: an architecture plugin whose vtable has load but no forward or destroy. */
#include <pagoda/plugin.h>

static enum pgd_status half_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                 void **model, char *err, size_t errlen)
{
    return PGD_ERR_UNSUPPORTED;
}

static const char *const half_archs[] = { "HalfForCausalLM", NULL };

static const struct pgd_arch_ops half_ops = {
    .architectures = half_archs,
    .load = half_load,
};

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "fixture-half",
    .version = "1",
    .arch = &half_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
