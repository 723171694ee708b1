/* The model flags every command that loads a model shares (tools/tool_model.c): --model
 * (a directory, hub id or catalog name) with --revision and --download-dir, or
 * --random-weights CONFIG where the command allows it, --device, --dtype, --quantization,
 * --kv-cache-dtype and --plugin-dir.
 *
 *     static const struct option opts[] = { PGD_TOOL_MODEL_OPTIONS,
 *                                           PGD_TOOL_RANDOM_WEIGHTS_OPTION, ... };
 *     struct pgd_tool_model m;
 *     pgd_tool_model_init(&m);
 *     ... in getopt's loop: default: switch (pgd_tool_model_option(&m, c, optarg)) ...
 *     if (!pgd_tool_model_named(&m)) usage;
 *     if ((rc = pgd_tool_model_resolve(&m, "pagoda generate"))) return rc;
 *     m.dir, m.random, m.device, m.dtype, m.plugin_path (or pgd_tool_model_engine_params)
 */
#ifndef PGD_TOOLS_TOOL_MODEL_H
#define PGD_TOOLS_TOOL_MODEL_H

#include <pagoda/engine.h>
#include <getopt.h>
#include <stdbool.h>

/* getopt_long values of the shared flags: above every command's own (chars and enums
 * counting up from 256). */
enum {
    PGD_TOOL_OPT_MODEL = 0x7000, PGD_TOOL_OPT_REVISION, PGD_TOOL_OPT_DOWNLOAD_DIR,
    PGD_TOOL_OPT_DEVICE, PGD_TOOL_OPT_DTYPE, PGD_TOOL_OPT_PLUGIN_DIR, PGD_TOOL_OPT_RANDOM,
    PGD_TOOL_OPT_QUANTIZATION, PGD_TOOL_OPT_KV_CACHE_DTYPE,
};

#define PGD_TOOL_MODEL_OPTIONS \
    { "model", required_argument, 0, PGD_TOOL_OPT_MODEL }, \
    { "revision", required_argument, 0, PGD_TOOL_OPT_REVISION }, \
    { "download-dir", required_argument, 0, PGD_TOOL_OPT_DOWNLOAD_DIR }, \
    { "device", required_argument, 0, PGD_TOOL_OPT_DEVICE }, \
    { "dtype", required_argument, 0, PGD_TOOL_OPT_DTYPE }, \
    { "quantization", required_argument, 0, PGD_TOOL_OPT_QUANTIZATION }, \
    { "kv-cache-dtype", required_argument, 0, PGD_TOOL_OPT_KV_CACHE_DTYPE }, \
    { "plugin-dir", required_argument, 0, PGD_TOOL_OPT_PLUGIN_DIR }
#define PGD_TOOL_RANDOM_WEIGHTS_OPTION \
    { "random-weights", required_argument, 0, PGD_TOOL_OPT_RANDOM }

struct pgd_tool_model {
    /* The flags as given (NULL / "" when absent). */
    const char *name;              /* --model */
    const char *random_cfg;        /* --random-weights: a config.json or its directory */
    const char *revision, *download_dir;
    enum pgd_device device;        /* default: cuda when available, else cpu */
    enum pgd_dtype dtype;          /* PGD_DTYPE_COUNT: auto */
    const char *quantization;      /* --quantization; NULL: the checkpoint's (resolve fills
                                    * in a catalog entry's, see pgd_tool_catalog_quantization) */
    const char *kv_cache_dtype;    /* --kv-cache-dtype auto|fp8|fp8_e4m3 (checked); NULL: auto */
    enum pgd_dtype kv_dtype;       /* the same parsed: PGD_DTYPE_COUNT or PGD_DTYPE_F8_E4M3 */
    char plugin_dirs[4096];        /* every --plugin-dir, colon-separated */
    /* Set by pgd_tool_model_resolve. */
    const char *dir;               /* the model directory to load (points into the flags or
                                    * random_dir) */
    bool random;                   /* random weights from dir's config.json */
    const char *plugin_path;       /* the engine's plugin_path: --plugin-dir, then the build
                                    * tree's plugins when run from it; NULL: none */
    char random_dir[4096];
    char plugin_path_buf[8192];
};

void pgd_tool_model_init(struct pgd_tool_model *m);
/* Takes getopt_long's value c and its argument when c is a shared flag: 1 taken, 0 not a
 * shared flag (the command's usage error), -1 refused (the message is on stderr; exit 2). */
int pgd_tool_model_option(struct pgd_tool_model *m, int c, const char *arg);
/* Exactly one of --model and --random-weights was given. */
bool pgd_tool_model_named(const struct pgd_tool_model *m);
/* Once every flag is read: checks the dtype against the device, joins the plugin path, takes
 * a catalog name's quantization when none was given, and turns the model into the directory
 * to load (fetching a hub id into the cache; a
 * --random-weights config into its directory). 0, or the exit status (2: a usage error,
 * 1: the model could not be had), the message on stderr prefixed by cmd. */
int pgd_tool_model_resolve(struct pgd_tool_model *m, const char *cmd);
/* The --plugin-dir list for pgd_tool_registry: NULL when none was given. */
const char *pgd_tool_model_plugin_dirs(const struct pgd_tool_model *m);
/* Copies the resolved model, device, dtype, quantization, random weights and plugin path
 * into ep. */
void pgd_tool_model_engine_params(const struct pgd_tool_model *m, struct pgd_engine_params *ep);
/* The same for the model runner the benchmarks drive without an engine (its registry is the
 * caller's: reg, from pgd_tool_registry). */
struct pgd__runner_params;
struct pgd_registry;
void pgd_tool_model_runner_params(const struct pgd_tool_model *m, struct pgd_registry *reg,
                                  struct pgd__runner_params *p);

#endif
