/* Loader fixture: a shared object without the pagoda_plugin_init entry (a misspelt one). */
#include <pagoda/plugin.h>

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_initialize(uint32_t host_abi)
{
    return NULL;
}
