/* The plugin ABI. A plugin is a shared object exporting exactly one symbol:
 *
 *     PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi);
 *
 * It returns a descriptor with static storage duration (never freed) whose abi_version is
 * PGD_ABI_VERSION as the plugin was built, or NULL to decline. The loader opens plugins
 * with RTLD_NOW | RTLD_LOCAL, refuses another ABI version, a NULL descriptor, an unknown
 * kind and a second plugin with a name already taken, each with a message naming the file.
 * Vtables only grow at their end; struct_size tells the host which fields a plugin knows. */
#ifndef PAGODA_PLUGIN_H
#define PAGODA_PLUGIN_H

#include <stdint.h>
#include <pagoda/version.h>
#include <pagoda/status.h>
#include <pagoda/model.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pgd_plugin_kind {
    PGD_PLUGIN_ARCH = 1,      /* a model architecture: vtable struct pgd_arch_ops */
    PGD_PLUGIN_QUANT = 2,     /* a quantization format: vtable struct pgd_quant_ops */
    PGD_PLUGIN_FRONTEND = 3,  /* a frontend: vtable struct pgd_frontend_ops */
};

/* An architecture: builds a model from a checkpoint and runs its forward pass with ops. */
struct pgd_arch_ops {
    /* NULL-terminated list of the config.json "architectures" strings it claims. */
    const char *const *architectures;
    /* Reads config and weights through ctx, fills desc, returns its model in *model. */
    enum pgd_status (*load)(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                            void **model, char *err, size_t errlen);
    /* One step: computes the logits the runner asked for with pgd_op_logits(). Errors are
     * recorded in f (pgd_fwd_fail); the return value is ignored by ABI 1 hosts. */
    void (*forward)(void *model, struct pgd_fwd *f);
    /* Frees what load allocated (not the tensors: the runtime owns those). */
    void (*destroy)(void *model);
};

struct pgd_quant_ops;         /* defined by the quantization API */
struct pgd_frontend_ops;      /* defined by include/pagoda/frontend.h */

struct pgd_plugin {
    uint32_t abi_version;     /* PGD_ABI_VERSION the plugin was compiled against */
    uint32_t struct_size;     /* sizeof(struct pgd_plugin) as the plugin knew it */
    enum pgd_plugin_kind kind;
    const char *name;         /* unique among loaded plugins, e.g. "llama" */
    const char *version;      /* the plugin's own version string */
    const char *description;  /* one line for `pagoda plugins` */
    union {                   /* the vtable for `kind` */
        const struct pgd_arch_ops *arch;
        const struct pgd_quant_ops *quant;
        const struct pgd_frontend_ops *frontend;
        const void *ops;
    };
};

#define PGD_PLUGIN_ENTRY "pagoda_plugin_init"
#define PGD_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef const struct pgd_plugin *(*pgd_plugin_init_fn)(uint32_t host_abi);

#ifdef __cplusplus
}
#endif
#endif
