/* The plugin registry: finds, loads and validates plugins, and answers which plugin claims
 * an architecture or a quantization method.
 *
 * Search path, first match of a name wins: directories given by the embedder (--plugin-dir,
 * the INI [plugins] path), then $PAGODA_PLUGIN_PATH (colon-separated), then the install
 * directory. A file that fails validation while a directory is scanned is refused (kept
 * in the refused list with its message, logged as a warning) and scanning goes on. */
#ifndef PAGODA_REGISTRY_H
#define PAGODA_REGISTRY_H

#include <stddef.h>
#include <pagoda/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_registry;

/* *out is owned by the caller: pgd_registry_destroy. */
enum pgd_status pgd_registry_create(struct pgd_registry **out, char *err, size_t errlen);
/* Unloads every plugin (dlclose). NULL is fine. */
void pgd_registry_destroy(struct pgd_registry *reg);

/* Loads one shared object. Refuses, with a message naming the file: a file that is not a
 * loadable shared object, no pagoda_plugin_init symbol, a NULL descriptor, another ABI
 * version (both versions named), a struct_size too small, an unknown kind, a missing
 * name or vtable, a name already loaded (both files named). */
enum pgd_status pgd_registry_load_file(struct pgd_registry *reg, const char *path,
                                       char *err, size_t errlen);
/* Loads every *.so in dir (sorted by name). Returns how many loaded; refusals go to the
 * refused list. A missing directory is not an error (returns 0). */
int pgd_registry_load_dir(struct pgd_registry *reg, const char *dir);
/* Loads the search path: extra_dirs (colon-separated, may be NULL), PAGODA_PLUGIN_PATH,
 * then the install directory. Returns how many loaded. */
int pgd_registry_load_search_path(struct pgd_registry *reg, const char *extra_dirs);
/* The install directory compiled in (e.g. /usr/local/lib/pagoda/plugins). */
const char *pgd_registry_install_dir(void);

size_t pgd_registry_count(const struct pgd_registry *reg);
/* The i-th loaded plugin; *path (if non-NULL) gets the file it came from. Owned by reg. */
const struct pgd_plugin *pgd_registry_at(const struct pgd_registry *reg, size_t i,
                                         const char **path);
size_t pgd_registry_refused_count(const struct pgd_registry *reg);
/* The i-th refused file and why. Owned by reg. */
void pgd_registry_refused_at(const struct pgd_registry *reg, size_t i, const char **path,
                             const char **why);

const struct pgd_plugin *pgd_registry_find(const struct pgd_registry *reg,
                                           enum pgd_plugin_kind kind, const char *name);
/* The architecture plugin claiming an HF "architectures" string, or NULL. */
const struct pgd_plugin *pgd_registry_find_arch(const struct pgd_registry *reg,
                                                const char *hf_architecture);
/* Writes "LlamaForCausalLM, Qwen2ForCausalLM, ..." (every claimed architecture) into buf;
 * "(none)" when no architecture plugin is loaded. */
void pgd_registry_list_archs(const struct pgd_registry *reg, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
