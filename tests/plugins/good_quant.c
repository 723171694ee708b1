/* Loader fixture: a well-formed plugin of another kind (quant). struct pgd_quant_ops belongs
 * to the quantization API; the loader only needs a non-NULL vtable, so this points at a
 * placeholder it never calls. */
#include <pagoda/plugin.h>

static const struct { int unused; } placeholder_ops;

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_QUANT,
    .name = "fixture-quant",
    .version = "0.4",
    .description = "test fixture: a quantization format",
    .ops = &placeholder_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
