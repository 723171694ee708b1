/* Loader fixture: an architecture plugin with a complete vtable that claims no architecture. */
#include <pagoda/plugin.h>

static enum pgd_status none_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                 void **model, char *err, size_t errlen)
{
    return PGD_ERR_UNSUPPORTED;
}
static void none_forward(void *model, struct pgd_fwd *f) { }
static void none_destroy(void *model) { }

static const char *const no_archs[] = { NULL };

static const struct pgd_arch_ops none_ops = {
    .architectures = no_archs,
    .load = none_load,
    .forward = none_forward,
    .destroy = none_destroy,
};

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "fixture-noarchs",
    .version = "1",
    .arch = &none_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
