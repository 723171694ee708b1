/* Loader fixture: a descriptor of a kind the host does not know (42). */
#include <pagoda/plugin.h>

static const struct { int unused; } placeholder_ops;

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = (enum pgd_plugin_kind)42,
    .name = "fixture-kind42",
    .version = "1",
    .ops = &placeholder_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
