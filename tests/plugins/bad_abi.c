/* Loader fixture: a plugin that says it was built for the next ABI version. */
#include <pagoda/plugin.h>

static const struct { int unused; } placeholder_ops;

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION + 1,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_QUANT,
    .name = "fixture-future",
    .version = "9.9",
    .ops = &placeholder_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
