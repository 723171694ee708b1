/* Loader fixture: a descriptor whose struct_size stops before the vtable pointer. */
#include <pagoda/plugin.h>
#include <stddef.h>

static const struct { int unused; } placeholder_ops;

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = offsetof(struct pgd_plugin, description),
    .kind = PGD_PLUGIN_QUANT,
    .name = "fixture-short",
    .version = "1",
    .ops = &placeholder_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
