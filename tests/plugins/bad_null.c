/* Loader fixture: the entry declines, returning a NULL descriptor. */
#include <pagoda/plugin.h>

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return NULL;
}
