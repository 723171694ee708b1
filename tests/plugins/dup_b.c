/* Loader fixture: dup_a.so and dup_b.so are two frontends with one name. In one directory the
 * second (by file name) is refused; in two directories of a search path the earlier wins. */
#include <pagoda/plugin.h>

static const struct { int unused; } placeholder_ops;

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_FRONTEND,
    .name = "fixture-dup",
    .version = "b",
    .description = "test fixture: a frontend whose name another file also uses",
    .ops = &placeholder_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
