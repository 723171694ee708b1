/* `pagoda chat MODEL` / `pagoda chat --url http://HOST:PORT/v1`: a chat in the terminal
 * through the `repl` frontend plugin (found through the plugin registry like any plugin).
 * With a model, the engine runs in-process (the same engine `pagoda serve` runs) and the
 * frontend gets it through attach; with --url the frontend talks to that server and no
 * engine is made. stdin not a terminal: one question, the answer on stdout.
 *
 * The options live in one table (chat_flags): each frontend flag is the repl frontend's
 * setting of the same name with '_' for '-', so an INI [frontend.repl] section and this
 * command line say the same thing; the engine's few flags follow it. --config FILE reads a
 * deployment file first ([model], [engine], [plugins], [frontend.repl] and the log level
 * of [log], through the settings table); the command line's flags override it. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/config/settings.h"
#include "runtime/config/ini.h"
#include "runtime/config/device_select.h"
#include <pagoda/engine.h>
#include <pagoda/frontend.h>
#include <pagoda/log.h>
#include <pagoda/plugin.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETTINGS 32
#define MAX_GRAPH_SIZES 64

/* The frontend's settings as flags: --KEY VALUE (or --KEY alone for a "true" one). */
static const struct chat_flag {
    const char *flag, *key;
    bool boolean;
    const char *help;
} chat_flags[] = {
    { "url", "url", false, "an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1" },
    { "api-key", "api_key", false, "its API key (Authorization: Bearer)" },
    { "system", "system", false, "the system message" },
    { "temperature", "temperature", false, "sampling temperature (0 = greedy)" },
    { "top-p", "top_p", false, "nucleus sampling" },
    { "top-k", "top_k", false, "top-k sampling (-1 = off)" },
    { "max-tokens", "max_tokens", false, "longest answer (default: up to max_model_len)" },
    { "seed", "seed", false, "sampling seed" },
    { "ignore-eos", "ignore_eos", true, "generate max_tokens tokens whatever comes (tests)" },
    { "no-stats", "no_stats", true, "no dim stats line after an answer" },
    { "history-file", "history_file", false,
      "default $XDG_STATE_HOME/pagoda/chat_history" },
};
#define N_FLAGS (sizeof chat_flags / sizeof chat_flags[0])

struct chat_opts {
    const char *model;               /* a directory, hub id or catalog name; or with --url,
                                        the server's model name */
    bool model_from_file;            /* model is [model] model: the command line's wins */
    const char *chat_template;       /* [model] chat_template, or NULL */
    const char *revision, *download_dir;   /* [model]'s, for a hub id */
    int graph_sizes[MAX_GRAPH_SIZES];
    char *plugin_dirs;
    struct pgd_setting settings[MAX_SETTINGS];
    size_t n_settings;
    struct pgd_engine_params ep;
    bool remote;
};

static void chat_usage(FILE *out)
{
    fprintf(out, "usage: pagoda chat MODEL [options]    (or --model MODEL)\n"
                 "       pagoda chat --url http://HOST:PORT/v1 [--api-key K] [--model NAME]\n"
                 "       pagoda chat --config deploy.ini [options]\n\n"
                 "Chats with MODEL (a directory, hub id or catalog name) in the terminal, or\n"
                 "with a server. With stdin not a terminal, all of it is one question and the\n"
                 "answer alone goes to stdout. /help in the chat lists its commands.\n"
                 "--config FILE reads [model], [engine], [plugins] and [frontend.repl] of a\n"
                 "deployment file first (docs/CONFIG.md); the options below override it.\n\n");
    for (size_t i = 0; i < N_FLAGS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", chat_flags[i].flag,
                 chat_flags[i].boolean ? "" : " VALUE");
        fprintf(out, "  %-26s %s\n", flag, chat_flags[i].help);
    }
    fprintf(out, "engine (in-process):\n"
                 "  --device cpu|cuda          (default: cuda when available, else cpu)\n"
                 "  --dtype bf16|fp16          compute dtype on the GPU\n"
                 "  --max-model-len N          longest sequence (default: the model's)\n"
                 "  --num-blocks N             KV blocks (default: from --kv-cache-mib)\n"
                 "  --kv-cache-mib N           KV cache size (default 256)\n"
                 "  --plugin-dir DIR           also look for plugins in DIR (repeatable)\n");
}

static int add_plugin_dir(char **dirs, const char *dir)
{
    size_t old = *dirs ? strlen(*dirs) : 0;
    char *p = realloc(*dirs, old + strlen(dir) + 2);
    if (!p)
        return 1;
    snprintf(p + old, strlen(dir) + 2, "%s%s", old ? ":" : "", dir);
    *dirs = p;
    return 0;
}

/* Parses argv into o; 0, or the exit status (2 for a usage error, -1 for --help). */
static int parse_args(int argc, char **argv, struct chat_opts *o)
{
    enum { O_DEVICE = 256, O_DTYPE, O_MML, O_NB, O_KV, O_PDIR, O_FLAG0 = 512 };
    struct option lo[N_FLAGS + 9];
    size_t n = 0;
    for (size_t i = 0; i < N_FLAGS; i++)
        lo[n++] = (struct option){ chat_flags[i].flag,
                                   chat_flags[i].boolean ? no_argument : required_argument, 0,
                                   O_FLAG0 + (int)i };
    lo[n++] = (struct option){ "model", required_argument, 0, 'm' };
    lo[n++] = (struct option){ "device", required_argument, 0, O_DEVICE };
    lo[n++] = (struct option){ "dtype", required_argument, 0, O_DTYPE };
    lo[n++] = (struct option){ "max-model-len", required_argument, 0, O_MML };
    lo[n++] = (struct option){ "num-blocks", required_argument, 0, O_NB };
    lo[n++] = (struct option){ "kv-cache-mib", required_argument, 0, O_KV };
    lo[n++] = (struct option){ "plugin-dir", required_argument, 0, O_PDIR };
    lo[n++] = (struct option){ "help", no_argument, 0, 'h' };
    lo[n] = (struct option){ 0, 0, 0, 0 };
    int c, kv_mib = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", lo, NULL)) != -1) {
        bool ok = true;
        if (c >= O_FLAG0 && c < O_FLAG0 + (int)N_FLAGS) {
            const struct chat_flag *f = &chat_flags[c - O_FLAG0];
            if (o->n_settings == MAX_SETTINGS)
                return 2;
            o->settings[o->n_settings++] = (struct pgd_setting){ f->key,
                                                                 f->boolean ? "true" : optarg };
            o->remote |= !strcmp(f->key, "url");
            continue;
        }
        switch (c) {
        case 'm': o->model = optarg; o->model_from_file = false; break;
        case O_DEVICE: ok = !pgd_tool_parse_device(optarg, &o->ep.device); break;
        case O_DTYPE: ok = !pgd_tool_parse_dtype(optarg, &o->ep.dtype); break;
        case O_MML: ok = pgd_tool_parse_int(optarg, 1, INT_MAX, &o->ep.max_model_len); break;
        case O_NB: ok = pgd_tool_parse_int(optarg, 1, INT_MAX, &o->ep.num_blocks); break;
        case O_KV: ok = pgd_tool_parse_int(optarg, 1, 1 << 30, &kv_mib); break;
        case O_PDIR:
            if (add_plugin_dir(&o->plugin_dirs, optarg))
                return 1;
            break;
        case 'h': chat_usage(stdout); return -1;
        default: return 2;
        }
        if (!ok) {
            fprintf(stderr, "pagoda chat: '%s' is not a valid value for that option\n", optarg);
            return 2;
        }
    }
    if (optind < argc && (!o->model || o->model_from_file)) {
        o->model = argv[optind++];
        o->model_from_file = false;
    }
    if (optind < argc || (!o->model && !o->remote)) {
        chat_usage(stderr);
        return 2;
    }
    if (kv_mib > 0)
        o->ep.kv_cache_bytes = (size_t)kv_mib << 20;
    if (o->remote && o->model && o->n_settings < MAX_SETTINGS)
        o->settings[o->n_settings++] = (struct pgd_setting){ "model", o->model };
    return 0;
}

/* The in-process engine and what the frontend is given of it. */
struct local_model {
    struct pgd_engine *engine;
    struct pgd_tool_chat chat;
    bool has_chat;
    char name[256];
};

static enum pgd_status local_load(struct chat_opts *o, const char *named, struct local_model *lm,
                                  struct pgd_frontend_model *fm, char *err, size_t errlen)
{
    static char engine_dirs[8192];
    int too_long;
    o->ep.model_dir = o->model;
    o->ep.plugin_path = pgd_tool_engine_plugin_path(o->plugin_dirs, engine_dirs,
                                                    sizeof engine_dirs, &too_long);
    if (too_long)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "--plugin-dir paths are too long");
    enum pgd_status st = pgd_engine_create(&o->ep, &lm->engine, err, errlen);
    if (st == PGD_OK && pgd_engine_tokenizer(lm->engine))
        st = pgd_tool_chat_load(o->ep.tokenizer ? o->ep.tokenizer : o->model, o->chat_template,
                                &lm->chat, &lm->has_chat, err, errlen);
    if (st != PGD_OK)
        return st;
    /* The name: a hub id as given, else the directory's last part. */
    const char *base = named;
    size_t len = strlen(named);
    while (len > 1 && named[len - 1] == '/')
        len--;
    if (named == o->model)
        for (size_t i = 0; i + 1 < len; i++)
            if (named[i] == '/')
                base = named + i + 1;
    snprintf(lm->name, sizeof lm->name, "%.*s", (int)(len - (size_t)(base - named)), base);
    *fm = (struct pgd_frontend_model){
        .struct_size = sizeof *fm,
        .engine = lm->engine,
        .tokenizer = pgd_engine_tokenizer(lm->engine),
        .name = lm->name,
        .root = o->model,
        .max_model_len = pgd_engine_max_model_len(lm->engine),
        .vocab_size = pgd_engine_vocab_size(lm->engine),
        .render_chat = lm->has_chat ? pgd_tool_chat_render : NULL,
        .render_ctx = &lm->chat,
    };
    return PGD_OK;
}

static int run(struct chat_opts *o, const char *named)
{
    char err[1024] = "";
    int rc = 1;
    struct pgd_registry *reg = NULL;
    void *fe = NULL;
    const struct pgd_frontend_ops *ops = NULL;
    struct local_model lm = { 0 };
    struct pgd_frontend_model fm;

    if (pgd_tool_registry(o->plugin_dirs, &reg, err, sizeof err))
        goto out;
    const struct pgd_plugin *pl = pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, "repl");
    if (!pl) {
        snprintf(err, sizeof err, "no frontend plugin named 'repl' on the search path (%s)",
                 pgd_registry_search_path(reg));
        goto out;
    }
    ops = pl->frontend;
    if (!PGD_STRUCT_HAS(ops, struct pgd_frontend_ops, run) || !ops->create || !ops->attach ||
        !ops->destroy || !ops->run) {
        snprintf(err, sizeof err, "frontend plugin '%s' cannot run in the foreground",
                 pl->name);
        ops = NULL;
        goto out;
    }
    if (ops->create(o->settings, o->n_settings, &fe, err, sizeof err))
        goto out;
    if (!o->remote && (local_load(o, named, &lm, &fm, err, sizeof err) ||
                       ops->attach(fe, &fm, err, sizeof err)))
        goto out;
    rc = ops->run(fe);
    err[0] = '\0';
out:
    if (err[0])
        fprintf(stderr, "pagoda chat: %s\n", err);
    if (fe)
        ops->destroy(fe);
    pgd_engine_destroy(lm.engine);
    pgd_tool_chat_fini(&lm.chat);
    pgd_registry_destroy(reg);
    return rc;
}

/* The deployment file's rows into o (before the command line, which overrides them):
 * the model and its files, the engine rows (device and dtype when the file sets them), the
 * plugin directories, the log level when the file sets it, and every [frontend.repl] key
 * the file sets as a frontend setting. 0, or the exit status. */
static int apply_file(const struct pgd__settings *s, struct chat_opts *o)
{
    char err[1024], warn[256];
    if ((o->model = pgd__settings_str(s, PGD__S_MODEL)))
        o->model_from_file = true;
    o->chat_template = pgd__settings_str(s, PGD__S_CHAT_TEMPLATE);
    o->revision = pgd__settings_str(s, PGD__S_REVISION);
    o->download_dir = pgd__settings_str(s, PGD__S_DOWNLOAD_DIR);
    enum pgd_device device = o->ep.device;
    pgd__settings_engine_params(s, &o->ep, o->graph_sizes, MAX_GRAPH_SIZES);
    struct pgd__device_choice dev;
    if (pgd__settings_is_set(s, PGD__S_DEVICE)) {
        if (pgd__device_select(pgd__settings_str(s, PGD__S_DEVICE), &dev, err, sizeof err)) {
            fprintf(stderr, "pagoda chat: %s\n", err);
            return 1;
        }
        device = dev.device;
    }
    o->ep.device = device;
    if (pgd__settings_is_set(s, PGD__S_DTYPE) &&
        pgd__dtype_select(pgd__settings_str(s, PGD__S_DTYPE), device, &o->ep.dtype, warn,
                          sizeof warn, err, sizeof err)) {
        fprintf(stderr, "pagoda chat: %s\n", err);
        return 2;
    }
    const struct pgd__setting_value *pd = &s->v[PGD__S_PLUGIN_DIR];
    for (int i = 0; i < pd->n_items; i++)
        if (add_plugin_dir(&o->plugin_dirs, pd->items[i]))
            return 1;
    if (pgd__settings_is_set(s, PGD__S_LOG_LEVEL)) {
        int l = pgd__settings_log_level(s);
        if (l >= 0)
            pgd_log_set_level((enum pgd_log_level)l);
    }
    for (int i = 0; i < PGD__S_COUNT; i++) {
        if (pgd__setting_defs[i].dest != PGD__SD_REPL || !pgd__settings_is_set(s, i))
            continue;
        if (o->n_settings == MAX_SETTINGS)
            return 2;
        o->settings[o->n_settings++] = (struct pgd_setting){ pgd__setting_defs[i].name,
                                                             pgd__settings_str(s, i) };
        o->remote |= i == PGD__S_REPL_URL;
    }
    return 0;
}

/* --config FILE of argv (taken out of it) read into s and applied to o. 0, or the exit
 * status (the file's problems on stderr, each with its file:line). */
static int read_config(int *argc, char **argv, struct pgd__settings *s, struct chat_opts *o)
{
    char msgs[8192];
    const char *path;
    if (pgd__settings_take_config_flag(argc, argv, &path, msgs, sizeof msgs)) {
        fprintf(stderr, "pagoda chat: %s\n", msgs);
        return 2;
    }
    if (!path)
        return 0;
    enum pgd_status st = pgd__settings_load_ini(s, path, msgs, sizeof msgs);
    for (const char *p = msgs; *p;) {
        size_t len = strcspn(p, "\n");
        fprintf(stderr, "pagoda chat: %.*s\n", (int)len, p);
        p += len + (p[len] == '\n');
    }
    return st ? 2 : apply_file(s, o);
}

int pgd_cmd_chat(int argc, char **argv)
{
    struct chat_opts o = { .ep = pgd_engine_default_params() };
    if (!getenv("PAGODA_LOG"))
        pgd_log_set_level(PGD_LOG_WARN);   /* the chat is the screen: no info lines */
    o.ep.device = pgd_tool_default_device();
    struct pgd__settings file;
    pgd__settings_init(&file);
    char **args = malloc((size_t)(argc + 1) * sizeof *args);
    if (!args)
        return 1;
    memcpy(args, argv, (size_t)argc * sizeof *args);
    args[argc] = NULL;
    int rc = read_config(&argc, args, &file, &o);
    if (rc == 0)
        rc = parse_args(argc, args, &o);
    if (rc == -1)
        rc = 0;
    else if (rc == 0) {
        const char *named = o.model;
        if (!o.remote && pgd_tool_resolve_model(&o.model, o.revision, o.download_dir))
            rc = 1;
        else
            rc = run(&o, named);
    }
    free(o.plugin_dirs);
    free(args);
    pgd__settings_fini(&file);
    return rc;
}
