/* The model flags the commands that load a model share (tools/tool_model.h): parsing
 * --model/--revision/--download-dir/--random-weights/--device/--dtype/--plugin-dir, and
 * turning them into the directory, device, dtype and plugin path to load with. */
#include "config.h"
#include "tools/tool_model.h"
#include "tools/commands.h"
#include "runtime/runner/runner.h"
#include "runtime/kv/kv_cache.h"
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void pgd_tool_model_init(struct pgd_tool_model *m)
{
    memset(m, 0, sizeof *m);
    m->device = pgd_tool_default_device();
    m->dtype = PGD_DTYPE_COUNT;
    m->kv_dtype = PGD_DTYPE_COUNT;
}

int pgd_tool_model_option(struct pgd_tool_model *m, int c, const char *arg)
{
    size_t used = strlen(m->plugin_dirs);
    switch (c) {
    case PGD_TOOL_OPT_MODEL: m->name = arg; return 1;
    case PGD_TOOL_OPT_REVISION: m->revision = arg; return 1;
    case PGD_TOOL_OPT_DOWNLOAD_DIR: m->download_dir = arg; return 1;
    case PGD_TOOL_OPT_RANDOM: m->random_cfg = arg; return 1;
    case PGD_TOOL_OPT_QUANTIZATION: m->quantization = arg; return 1;
    case PGD_TOOL_OPT_KV_CACHE_DTYPE: {
        char err[256];
        if (pgd__kv_cache_dtype_parse(arg, &m->kv_dtype, err, sizeof err)) {
            fprintf(stderr, "--kv-cache-dtype: %s\n", err);
            return -1;
        }
        m->kv_cache_dtype = arg;
        return 1;
    }
    case PGD_TOOL_OPT_DEVICE: return pgd_tool_parse_device(arg, &m->device) ? -1 : 1;
    case PGD_TOOL_OPT_DTYPE: return pgd_tool_parse_dtype(arg, &m->dtype) ? -1 : 1;
    case PGD_TOOL_OPT_PLUGIN_DIR:
        snprintf(m->plugin_dirs + used, sizeof m->plugin_dirs - used, "%s%s", used ? ":" : "",
                 arg);
        return 1;
    default: return 0;
    }
}

bool pgd_tool_model_named(const struct pgd_tool_model *m)
{
    return !!m->name != !!m->random_cfg;
}

const char *pgd_tool_model_plugin_dirs(const struct pgd_tool_model *m)
{
    return m->plugin_dirs[0] ? m->plugin_dirs : NULL;
}

int pgd_tool_model_resolve(struct pgd_tool_model *m, const char *cmd)
{
    if (pgd_tool_check_dtype(m->device, &m->dtype))
        return 2;
    int too_long;
    m->plugin_path = pgd_tool_engine_plugin_path(pgd_tool_model_plugin_dirs(m),
                                                 m->plugin_path_buf, sizeof m->plugin_path_buf,
                                                 &too_long);
    if (too_long) {
        fprintf(stderr, "%s: --plugin-dir paths are too long\n", cmd);
        return 2;
    }
    if (m->random_cfg) {
        if (pgd_tool_model_dir_of(m->random_cfg, m->random_dir, sizeof m->random_dir))
            return 2;
        m->dir = m->random_dir;
        m->random = true;
        return 0;
    }
    m->dir = m->name;
    m->random = false;
    if (!m->quantization)   /* a catalog entry with quant = fp8 is served as FP8 */
        m->quantization = pgd_tool_catalog_quantization(m->name);
    return pgd_tool_resolve_model(&m->dir, m->revision, m->download_dir) ? 1 : 0;
}

/* The fields struct pgd_engine_params and struct pgd__runner_params both have, from m: one
 * list for the two parameter structs. */
#define COPY_MODEL_FIELDS(dst, m)                                                          \
    do {                                                                                   \
        (dst)->model_dir = (m)->dir;                                                       \
        (dst)->device = (m)->device;                                                       \
        (dst)->dtype = (m)->dtype;                                                         \
        (dst)->quantization = (m)->quantization;                                           \
        (dst)->random_weights = (m)->random;                                               \
    } while (0)

void pgd_tool_model_engine_params(const struct pgd_tool_model *m, struct pgd_engine_params *ep)
{
    COPY_MODEL_FIELDS(ep, m);
    ep->plugin_path = m->plugin_path;
    ep->kv_cache_dtype = m->kv_cache_dtype;
}

void pgd_tool_model_runner_params(const struct pgd_tool_model *m, struct pgd_registry *reg,
                                  struct pgd__runner_params *p)
{
    COPY_MODEL_FIELDS(p, m);
    p->registry = reg;
    p->kv_cache_dtype = m->kv_dtype;
}

/* A config.json path names its directory (the file must be called config.json). */
int pgd_tool_model_dir_of(const char *path, char *dir, size_t n)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "pagoda bench: %s: no such file or directory\n", path);
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(dir, n, "%s", path);
        return 0;
    }
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    if (strcmp(basename(a), "config.json")) {
        fprintf(stderr, "pagoda bench: --random-weights %s: give a config.json or its directory\n",
                path);
        return -1;
    }
    snprintf(dir, n, "%s", dirname(b));
    return 0;
}
