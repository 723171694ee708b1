/* The plugin registry: finds, loads and validates plugins, and answers which plugin claims
 * an architecture or a quantization method.
 *
 * Search path, first match of a name wins: directories given by the embedder (--plugin-dir,
 * the INI [plugins] path), then $PAGODA_PLUGIN_PATH (colon-separated), then the install
 * directory. A file that fails validation while a directory is scanned is refused (kept
 * in the refused list with its message, logged as a warning) and scanning goes on.
 *
 * A name found again in a later directory is skipped (the earlier one wins, logged at
 * info); two files with one name in the same directory, or in two explicit
 * pgd_registry_load_file calls, are an error naming both files.
 *
 * Unloading: refused files and, at pgd_registry_destroy, loaded plugins are dlclosed,
 * unless the environment variable PAGODA_NO_DLCLOSE is set (and not "0") when the
 * registry is created: then plugins stay mapped until the process ends, so that
 * LeakSanitizer can scan their globals and name their functions in leak reports
 * (the test suite sets it). The libpagoda.so a plugin links is never unloaded with it: in
 * a program that links the runtime itself it stays mapped from the first plugin load to
 * the end of the process, so that engines created one after the other (a CPU engine,
 * then a CUDA one) share one copy and its registered CUDA kernels.
 *
 * Threads: create and load from one thread; once loading is done, the read-only calls
 * (count, at, find, find_arch, list_archs) may be made from any thread. */
#ifndef PAGODA_REGISTRY_H
#define PAGODA_REGISTRY_H

#include <stddef.h>
#include <pagoda/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_registry;

/* "architecture", "quant", "frontend"; "unknown" for anything else. Never NULL. */
const char *pgd_plugin_kind_str(enum pgd_plugin_kind kind);

/* *out is owned by the caller: pgd_registry_destroy. */
enum pgd_status pgd_registry_create(struct pgd_registry **out, char *err, size_t errlen);
/* Unloads every plugin (dlclose). NULL is fine. */
void pgd_registry_destroy(struct pgd_registry *reg);

/* Loads one shared object. Refuses, with a message naming the file (and dlclosing it): a
 * file that is not a loadable shared object (dlerror's text included), no
 * pagoda_plugin_init symbol, a NULL descriptor, another ABI version (both versions named)
 * or a descriptor or vtable whose struct_size is smaller than that struct's first version
 * (PGD_ERR_ABI), an unknown kind, a missing or empty name, a NULL vtable, a vtable without
 * one of its required functions (each kind's struct in plugin.h says which), an
 * architecture or quant plugin claiming no names (or an empty one), a name already loaded
 * (both files named). These are PGD_ERR_PLUGIN; a path that does not exist is
 * PGD_ERR_NOT_FOUND. */
enum pgd_status pgd_registry_load_file(struct pgd_registry *reg, const char *path,
                                       char *err, size_t errlen);
/* Loads every *.so in dir (sorted by name). Returns how many loaded; refusals go to the
 * refused list. A missing directory is not an error (returns 0). */
int pgd_registry_load_dir(struct pgd_registry *reg, const char *dir);
/* Directories (colon-separated, copied; NULL clears) that pgd_registry_load_search_path
 * searches after PAGODA_PLUGIN_PATH and before the install directory: an uninstalled
 * build's own plugin folders. */
enum pgd_status pgd_registry_set_build_dirs(struct pgd_registry *reg, const char *dirs,
                                            char *err, size_t errlen);
/* Loads the search path: extra_dirs (colon-separated, may be NULL), PAGODA_PLUGIN_PATH,
 * the build dirs (if set), then the install directory. Empty entries are ignored and a
 * directory named twice is searched once. Returns how many loaded. */
int pgd_registry_load_search_path(struct pgd_registry *reg, const char *extra_dirs);
/* The directories the last pgd_registry_load_search_path searched, in order,
 * colon-separated ("" before any). Owned by reg. */
const char *pgd_registry_search_path(const struct pgd_registry *reg);
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

/* The loaded plugin of that kind and name, or NULL. */
const struct pgd_plugin *pgd_registry_find(const struct pgd_registry *reg,
                                           enum pgd_plugin_kind kind, const char *name);
/* The architecture plugin claiming an HF "architectures" string, or NULL. When two
 * plugins claim one string, the one loaded first (earlier in the search path) wins. */
const struct pgd_plugin *pgd_registry_find_arch(const struct pgd_registry *reg,
                                                const char *hf_architecture);
/* Writes "LlamaForCausalLM, Qwen2ForCausalLM, ..." (every claimed architecture, once, in
 * load order) into buf; "(none)" when no architecture plugin is loaded. Truncated to fit
 * (always NUL-terminated when buflen > 0). */
void pgd_registry_list_archs(const struct pgd_registry *reg, char *buf, size_t buflen);
/* The quant plugin claiming a config.json "quantization_config.quant_method" ("gptq"), or
 * NULL; the one loaded first wins when two claim it. */
const struct pgd_plugin *pgd_registry_find_quant(const struct pgd_registry *reg,
                                                 const char *quant_method);
/* Like pgd_registry_list_archs, for the quantization methods claimed ("(none)" when none). */
void pgd_registry_list_quant_methods(const struct pgd_registry *reg, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
