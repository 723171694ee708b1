/* pagoda: the command line. `pagoda <command> [options]`; `pagoda help` lists commands. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/base/device.h"
#include "runtime/config/device_select.h"
#include <pagoda/version.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include <errno.h>
#include <stdlib.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    /* one line per command, in the order `pagoda help` lists them */
    { "generate", pgd_cmd_generate, "generate tokens from a model on the command line" },
    { "serve", pgd_cmd_serve, "serve a model over the OpenAI API (HTTP, SSE streaming)" },
    { "config", pgd_cmd_config, "the settings: --print-doc (docs/CONFIG.md), --print (effective)" },
    { "plugins", pgd_cmd_plugins, "list the plugins found and the files refused" },
    { "tokenize", pgd_cmd_tokenize, "text on stdin -> JSON token ids (--model DIR [--special])" },
    { "detokenize", pgd_cmd_detokenize, "JSON token ids on stdin -> text (--model DIR [--skip-special])" },
    { "chat", pgd_cmd_chat, "chat with a model in the terminal (or with a server: --url)" },
    { "chat-template", pgd_cmd_chat_template, "render a model's chat template for a conversation" },
    { "bench", pgd_cmd_bench, "measure decode latency and time to first token (bench latency)" },
    { "fetch", pgd_cmd_fetch, "download a model from the Hugging Face hub into the shared cache" },
    { "models", pgd_cmd_models, "the model catalog and the cache (--cached, rm NAME)" },
};

const char *pgd_tool_build_plugin_dirs(void)
{
    /* libtool runs the real binary from <builddir>/tools/.libs (or <builddir>/.libs). */
    static char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    size_t blen = strlen(PGD_BUILD_DIR);
    if (strncmp(exe, PGD_BUILD_DIR, blen) == 0 && exe[blen] == '/')
        return PGD_BUILD_PLUGIN_DIRS;
    return NULL;
}

const char *pgd_tool_engine_plugin_path(const char *plugin_dirs, char *buf, size_t buflen,
                                        int *too_long)
{
    const char *build = pgd_tool_build_plugin_dirs();
    bool mine = plugin_dirs && plugin_dirs[0];
    int n = snprintf(buf, buflen, "%s%s%s", mine ? plugin_dirs : "", mine && build ? ":" : "",
                     build ? build : "");
    *too_long = n < 0 || (size_t)n >= buflen ? -1 : 0;
    return buf[0] ? buf : NULL;
}

enum pgd_status pgd_tool_registry(const char *plugin_dirs, struct pgd_registry **out, char *err,
                                  size_t errlen)
{
    struct pgd_registry *reg = NULL;
    enum pgd_status st = pgd_registry_create(&reg, err, errlen);
    if (!st)
        st = pgd_registry_set_build_dirs(reg, pgd_tool_build_plugin_dirs(), err, errlen);
    if (st) {
        pgd_registry_destroy(reg);
        return st;
    }
    pgd_registry_load_search_path(reg, plugin_dirs);
    *out = reg;
    return PGD_OK;
}

bool pgd_tool_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

int pgd_tool_parse_device(const char *s, enum pgd_device *out)
{
    struct pgd__device_choice d;
    char err[512];
    if (pgd__device_select(s, &d, err, sizeof err)) {
        fprintf(stderr, "pagoda: %s\n", err);
        return 1;
    }
    *out = d.device;
    return 0;
}

int pgd_tool_parse_dtype(const char *s, enum pgd_dtype *out)
{
    /* Resolved against the device in pgd_tool_check_dtype, once every flag is read. */
    char err[512];
    if (pgd__dtype_parse(s, out, err, sizeof err)) {
        fprintf(stderr, "pagoda: %s\n", err);
        return 1;
    }
    return 0;
}

int pgd_tool_check_dtype(enum pgd_device dev, enum pgd_dtype *dt)
{
    if (dev == PGD_DEVICE_CUDA && *dt == PGD_DTYPE_F32) {
        fprintf(stderr, "pagoda: --dtype float32: the CUDA backend computes in bfloat16 or "
                        "float16; use --dtype auto, bfloat16 or float16 (or --device cpu)\n");
        return 1;
    }
    if (dev == PGD_DEVICE_CPU)
        *dt = PGD_DTYPE_COUNT;   /* the CPU backend computes in float32 */
    return 0;
}

enum pgd_device pgd_tool_default_device(void)
{
    return pgd__device_available(PGD_DEVICE_CUDA) ? PGD_DEVICE_CUDA : PGD_DEVICE_CPU;
}

static void usage(FILE *out)
{
    fprintf(out, "pagoda %s: serve large language models\n\nusage: pagoda <command> [options]\n\n"
                 "commands:\n", PGD_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`pagoda <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("pagoda %s (plugin ABI %u)\n", PGD_VERSION_STRING, PGD_ABI_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "pagoda: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
