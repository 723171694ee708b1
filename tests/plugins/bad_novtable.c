/* Loader fixture: a frontend plugin whose vtable pointer is NULL. */
#include <pagoda/plugin.h>

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_FRONTEND,
    .name = "fixture-novtable",
    .version = "1",
    .ops = NULL,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
