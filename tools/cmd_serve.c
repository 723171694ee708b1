/* `pagoda serve MODEL [options]` (or --model MODEL): the engine behind a frontend plugin (by
 * default `openai`, the OpenAI-compatible HTTP server), found through the plugin registry like
 * any plugin. The command line is read through the settings table (runtime/config/), with
 * vLLM's flag names, so `vllm serve MODEL --dtype auto --max-model-len 8192` starts pagoda.
 * MODEL is a directory, a hub id or a catalog name (fetched into the hub cache when missing,
 * with --revision and --download-dir). The frontend listens first (answering 503 with a
 * reason while the model loads and the GPU warms up), then gets the engine. While it serves,
 * a stats line is logged every --log-stats-interval seconds of traffic. SIGTERM or SIGINT:
 * stop accepting, let running requests finish for --grace seconds (a second signal ends it
 * at once), answer the rest with errors, exit 0. SIGHUP: read the --config file again and
 * apply what can change while serving (runtime/config/settings_reload.h): the log, the
 * stats line, the frontend's API keys and access log; the rest is logged as needing a
 * restart. Signal handlers only write the signal's number to a pipe; the main thread
 * reads it and does the work. */
#include "config.h"
#include "tools/commands.h"
#include "tools/serve_stats.h"
#include "runtime/config/settings.h"
#include "runtime/config/ini.h"
#include "runtime/config/settings_reload.h"
#include "runtime/config/device_select.h"
#include "runtime/config/batch_defaults.h"
#include "runtime/config/generation_config.h"
#include <pagoda/engine.h>
#include <pagoda/frontend.h>
#include <pagoda/log.h>
#include <pagoda/plugin.h>
#include <pagoda/registry.h>
#include <pagoda/tokenizer.h>
#include <pagoda/chat_template.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FRONTEND_SETTINGS 128
#define MAX_GRAPH_SIZES 64

static const char USAGE[] =
    "usage: pagoda serve [MODEL] [options]\n\n"
    "Serves the model in MODEL (a directory: config.json, *.safetensors, tokenizer.json) over\n"
    "the OpenAI API: POST /v1/completions, /v1/chat/completions, /tokenize, /detokenize;\n"
    "GET /v1/models, /health, /version, /metrics. vLLM's `vllm serve` options are taken by\n"
    "their vLLM names; each option is also a key of an INI deployment (docs/CONFIG.md):\n"
    "--config FILE reads one first, and the options given on the command line override it.";

struct serve_opts {
    struct pgd__settings set;
    struct pgd_setting fe[MAX_FRONTEND_SETTINGS];   /* borrowed from set */
    size_t n_fe;
    char *fe_opts[MAX_FRONTEND_SETTINGS];           /* owned copies of --frontend-opt */
    char *plugin_dirs;                              /* colon-separated, owned */
    struct pgd_engine_params ep;
    char spec_json[8192];            /* --speculative-config with its draft resolved */
    int graph_sizes[MAX_GRAPH_SIZES];
    struct pgd__device_choice dev;
    struct pgd__gen_defaults gen;
    char model_name[256];                           /* served name, for metrics and the API */
    int argc;                                       /* the command line, read again on */
    char **argv;                                    /* SIGHUP (borrowed) */
    const char *config_path;                        /* its --config FILE, or NULL */
};

/* ---- settings -> frontend settings, plugin dirs, log level ---------------------------- */

static int add_fe(struct serve_opts *o, const char *key, const char *value)
{
    if (o->n_fe == MAX_FRONTEND_SETTINGS) {
        fprintf(stderr, "pagoda serve: more than %d frontend settings\n", MAX_FRONTEND_SETTINGS);
        return 2;
    }
    o->fe[o->n_fe++] = (struct pgd_setting){ key, value };
    return 0;
}

/* The frontend gets the rows meant for it that were set (its defaults are the table's), then
 * each --frontend-opt KEY=VALUE. */
static int frontend_settings(struct serve_opts *o)
{
    for (int i = 0; i < PGD__S_COUNT; i++) {
        const struct pgd__setting_value *v = &o->set.v[i];
        if (pgd__setting_defs[i].dest != PGD__SD_FRONTEND || v->origin == PGD__SO_DEFAULT)
            continue;
        for (int j = 0; j < v->n_items; j++)
            if (add_fe(o, pgd__setting_defs[i].name, v->items[j]))
                return 2;
    }
    const struct pgd__setting_value *fo = &o->set.v[PGD__S_FRONTEND_OPT];
    for (int j = 0; j < fo->n_items && j < MAX_FRONTEND_SETTINGS; j++) {
        o->fe_opts[j] = strdup(fo->items[j]);
        if (!o->fe_opts[j])
            return 1;
        char *eq = strchr(o->fe_opts[j], '=');   /* checked when set */
        *eq = '\0';
        if (add_fe(o, o->fe_opts[j], eq + 1))
            return 2;
    }
    return 0;
}

static int join_plugin_dirs(struct serve_opts *o)
{
    const struct pgd__setting_value *v = &o->set.v[PGD__S_PLUGIN_DIR];
    size_t len = 0;
    for (int i = 0; i < v->n_items; i++)
        len += strlen(v->items[i]) + 1;
    if (!len)
        return 0;
    o->plugin_dirs = malloc(len);
    if (!o->plugin_dirs)
        return 1;
    o->plugin_dirs[0] = '\0';
    for (int i = 0; i < v->n_items; i++) {
        if (i)
            strcat(o->plugin_dirs, ":");
        strcat(o->plugin_dirs, v->items[i]);
    }
    return 0;
}

/* The [log] rows' level and format. */
static void apply_log_style(const struct pgd__settings *s)
{
    int l = pgd__settings_log_level(s);
    /* PAGODA_LOG stays in charge unless the level was given explicitly. */
    if (l >= 0 && (pgd__settings_is_set(s, PGD__S_LOG_LEVEL) || !getenv("PAGODA_LOG")))
        pgd_log_set_level((enum pgd_log_level)l);
    const char *fmt = pgd__settings_str(s, PGD__S_LOG_FORMAT);
    pgd_log_set_format(!strcmp(fmt, "json") ? PGD_LOG_FORMAT_JSON : PGD_LOG_FORMAT_TEXT);
}

/* The [log] row log_file, opened again each time (after logrotate moved it, a new file
 * starts); stderr when unset. False (said on the log) when it cannot be opened: the log
 * stays where it was. */
static bool apply_log_file(const struct pgd__settings *s)
{
    char err[512];
    if (pgd_log_set_file(pgd__settings_str(s, PGD__S_LOG_FILE), err, sizeof err)) {
        PGD_ERROR("%s", err);
        return false;
    }
    return true;
}

/* The served name: the first --served-model-name; else a hub id or catalog name as given
 * (vLLM's default: the snapshot folder's last part is a commit id), named being the MODEL
 * given when it resolved to another path; else the model directory's last part. */
static void served_name(struct serve_opts *o, const char *named)
{
    const struct pgd__setting_value *names = &o->set.v[PGD__S_SERVED_MODEL_NAME];
    const char *n = names->n_items ? names->items[0] : NULL;
    char tmp[PATH_MAX];
    if (!n && named)
        n = named;
    if (!n) {
        snprintf(tmp, sizeof tmp, "%s", o->ep.model_dir);
        size_t tl = strlen(tmp);
        while (tl > 1 && tmp[tl - 1] == '/')
            tmp[--tl] = '\0';
        const char *base = strrchr(tmp, '/');
        n = base && base[1] ? base + 1 : tmp;
    }
    snprintf(o->model_name, sizeof o->model_name, "%s", n);
}

/* Device, dtype, engine parameters and sampling defaults from the settings; messages on
 * stderr. Returns the exit status on failure, else 0. */
static int prepare(struct serve_opts *o)
{
    char err[1024], warn[256];
    const struct pgd__settings *s = &o->set;
    apply_log_style(s);
    if (!apply_log_file(s))
        return 1;
    if (pgd__settings_bool(s, PGD__S_TRUST_REMOTE_CODE))
        PGD_WARN("--trust-remote-code: accepted and ignored: pagoda runs no code from a "
                 "checkpoint");
    if (pgd__settings_str(s, PGD__S_ROOT_PATH))
        PGD_WARN("--root-path %s: accepted and ignored: pagoda serves no documentation pages, "
                 "and routes are matched as the proxy forwards them",
                 pgd__settings_str(s, PGD__S_ROOT_PATH));
    if (pgd__device_select(pgd__settings_str(s, PGD__S_DEVICE), &o->dev, err, sizeof err)) {
        fprintf(stderr, "pagoda serve: %s\n", err);
        return 1;
    }
    PGD_INFO("device: %s (--device %s)", o->dev.desc, pgd__settings_str(s, PGD__S_DEVICE));
    o->ep = pgd_engine_default_params();
    o->ep.device = o->dev.device;
    if (pgd__dtype_select(pgd__settings_str(s, PGD__S_DTYPE), o->dev.device, &o->ep.dtype, warn,
                          sizeof warn, err, sizeof err)) {
        fprintf(stderr, "pagoda serve: %s\n", err);
        return 2;
    }
    if (warn[0])
        PGD_WARN("%s", warn);
    pgd__settings_engine_params(s, &o->ep, o->graph_sizes, MAX_GRAPH_SIZES);
    /* On a GPU, batch limits the user left unset fit the card as vLLM's serving ones do. */
    pgd__batch_defaults_apply(&o->ep, s->v[PGD__S_MAX_NUM_SEQS].origin != PGD__SO_DEFAULT,
                              s->v[PGD__S_MAX_NUM_BATCHED_TOKENS].origin != PGD__SO_DEFAULT,
                              PGD__USAGE_SERVER);
    /* A hub id or catalog name becomes its snapshot directory (fetched when missing). */
    const char *named = pgd__settings_str(s, PGD__S_MODEL);
    o->ep.model_dir = named;
    if (!o->ep.quantization)   /* a catalog entry with quant = fp8 is served as FP8 */
        o->ep.quantization = pgd_tool_catalog_quantization(named);
    if (pgd_tool_resolve_model(&o->ep.model_dir, pgd__settings_str(s, PGD__S_REVISION),
                               pgd__settings_str(s, PGD__S_DOWNLOAD_DIR)))
        return 1;
    if (pgd_tool_resolve_spec_model(&o->ep.speculative_config, o->spec_json,
                                    sizeof o->spec_json))
        return 1;
    served_name(o, o->ep.model_dir != named ? named : NULL);
    o->ep.model_name = o->model_name;
    if (pgd__gen_defaults_load(pgd__settings_str(s, PGD__S_GENERATION_CONFIG), o->ep.model_dir,
                               pgd__settings_str(s, PGD__S_OVERRIDE_GENERATION_CONFIG), &o->gen,
                               err, sizeof err)) {
        fprintf(stderr, "pagoda serve: %s\n", err);
        return 1;
    }
    if (strcmp(o->gen.json, "{}"))
        PGD_INFO("default sampling parameters from %s: %s (a request's own values win; "
                 "--generation-config vllm turns these off)", o->gen.source, o->gen.json);
    else
        PGD_INFO("default sampling parameters: the API's (%s)", o->gen.source);
    if (frontend_settings(o) || join_plugin_dirs(o))
        return 2;
    return 0;
}

/* ---- signals: a self-pipe, so a signal delivered to any thread wakes the main one -------- */

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(sig_pipe[1], &b, 1) < 0) {
        /* nothing to do: the pipe is full, a signal is pending already */
    }
    errno = saved;
}

static int install_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits up to timeout_ms (< 0: forever) for a signal: its number, or 0 when none came. */
static int next_signal(int timeout_ms)
{
    struct pollfd p = { .fd = sig_pipe[0], .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return 0;
    unsigned char b;
    return read(sig_pipe[0], &b, 1) == 1 ? b : 0;
}

/* The frontend's shutdown runs on a thread of its own so that this one keeps watching the
 * signals: a second SIGTERM or SIGINT calls shutdown again, which ends the grace at once
 * (the first call still answers what is left and returns). */
struct fe_stop {
    const struct pgd_frontend_ops *ops;
    void *fe;
    int grace_ms;
    atomic_bool done;
};

static void *fe_stop_main(void *arg)
{
    struct fe_stop *st = arg;
    st->ops->shutdown(st->fe, st->grace_ms);
    atomic_store(&st->done, true);
    return NULL;
}

static void shutdown_frontend(const struct pgd_frontend_ops *ops, void *fe, int grace_ms)
{
    struct fe_stop st = { .ops = ops, .fe = fe, .grace_ms = grace_ms };
    pthread_t t;
    if (grace_ms <= 0 || pthread_create(&t, NULL, fe_stop_main, &st) != 0) {
        ops->shutdown(fe, grace_ms);
        return;
    }
    bool cut = false;
    while (!atomic_load(&st.done)) {
        int sig = next_signal(50);
        if (sig && sig != SIGHUP && !cut) {
            fprintf(stderr, "pagoda serve: second signal: ending the grace period now\n");
            ops->shutdown(fe, 0);
            cut = true;
        }
    }
    pthread_join(t, NULL);
}

/* Logs msgs' lines (each ending in '\n') at level, each after prefix. */
static void log_lines(enum pgd_log_level level, const char *prefix, const char *msgs)
{
    for (const char *p = msgs; *p;) {
        size_t len = strcspn(p, "\n");
        if (len)
            pgd_log(level, "%s%.*s", prefix, (int)len, p);
        p += len + (p[len] == '\n');
    }
}

/* The frontend's reloadable rows of s through its reload op; false (logged) when the
 * frontend cannot reload or refused them (it then keeps what it had). */
static bool reload_frontend(const struct pgd__settings *s, const struct pgd_frontend_ops *ops,
                            void *fe)
{
    struct pgd_setting kv[MAX_FRONTEND_SETTINGS];
    size_t n = 0;
    for (int i = 0; i < PGD__S_COUNT; i++) {
        const struct pgd__setting_def *d = &pgd__setting_defs[i];
        if (d->dest != PGD__SD_FRONTEND || !(d->flags & PGD__SF_RELOADABLE))
            continue;
        for (int j = 0; j < s->v[i].n_items && n < MAX_FRONTEND_SETTINGS; j++)
            kv[n++] = (struct pgd_setting){ d->name, s->v[i].items[j] };
    }
    char err[1024];
    if (!PGD_STRUCT_HAS(ops, struct pgd_frontend_ops, reload) || !ops->reload) {
        PGD_WARN("SIGHUP: the frontend cannot reload its settings: API keys and access_log "
                 "need a restart");
        return false;
    }
    if (ops->reload(fe, kv, n, err, sizeof err)) {
        PGD_ERROR("SIGHUP: %s: the frontend keeps its API keys and access log", err);
        return false;
    }
    return true;
}

/* SIGHUP: the --config file read again (see settings_reload.h); the changes tried (the
 * frontend's rows, the log file), what failed refused, the rest taken into o->set and
 * applied, each changed row logged. */
static void reload(struct serve_opts *o, const struct pgd_frontend_ops *ops, void *fe)
{
    if (!o->config_path) {
        PGD_WARN("SIGHUP: no --config file to read again; reopening the log only");
        apply_log_file(&o->set);
        return;
    }
    PGD_INFO("SIGHUP: reading %s again", o->config_path);
    char msgs[8192], report[8192];
    struct pgd__settings fresh;
    struct pgd__reload r;
    if (pgd__settings_reread(&o->set, o->argc, o->argv, &fresh, &r, msgs, sizeof msgs)) {
        log_lines(PGD_LOG_ERROR, "SIGHUP: ", msgs);
        PGD_ERROR("SIGHUP: %s is refused: the running settings stay", o->config_path);
        pgd__settings_fini(&fresh);
        return;
    }
    log_lines(PGD_LOG_WARN, "SIGHUP: ", msgs);   /* the file's warnings */
    if (!reload_frontend(&fresh, ops, fe))
        for (int i = 0; i < PGD__S_COUNT; i++)
            if (pgd__setting_defs[i].dest == PGD__SD_FRONTEND)
                pgd__reload_refuse(&r, (enum pgd__setting_id)i);
    if (!apply_log_file(&fresh))
        pgd__reload_refuse(&r, PGD__S_LOG_FILE);
    pgd__settings_reload_finish(&o->set, &fresh, &r, report, sizeof report);
    pgd__settings_fini(&fresh);
    apply_log_style(&o->set);
    for (const char *p = report; *p;) {
        size_t len = strcspn(p, "\n");
        bool applied = len > 9 && !memcmp(p + len - 9, ": applied", 9);
        pgd_log(applied ? PGD_LOG_INFO : PGD_LOG_WARN, "SIGHUP: %.*s", (int)len, p);
        p += len + (p[len] == '\n');
    }
    PGD_INFO("SIGHUP: %s reloaded: %d setting%s applied, %d need%s a restart, %d refused",
             o->config_path, r.n_applied, r.n_applied == 1 ? "" : "s", r.n_restart,
             r.n_restart == 1 ? "s" : "", r.n_refused);
}

/* Serves until SIGTERM or SIGINT, writing the stats line while there is traffic and
 * reloading on SIGHUP. */
static void serve_until_signal(struct serve_opts *o, struct pgd_engine *eng,
                               const struct pgd_frontend_ops *ops, void *fe)
{
    struct pgd_tool_stats_logger lg;
    pgd_tool_stats_logger_init(&lg, eng, o->dev.device);
    for (;;) {
        /* Read each time: a reload may have changed them. */
        bool stats = !pgd__settings_bool(&o->set, PGD__S_DISABLE_LOG_STATS);
        double interval = pgd__settings_float(&o->set, PGD__S_LOG_STATS_INTERVAL);
        int sig = next_signal(stats ? (int)(interval * 1000) : -1);
        if (sig == SIGHUP)
            reload(o, ops, fe);
        else if (sig)
            return;
        else
            pgd_tool_stats_logger_tick(&lg);
    }
}

/* ---- run ---------------------------------------------------------------------------- */

static int run(struct serve_opts *o)
{
    char err[1024] = "";
    int rc = 1;
    struct pgd_registry *reg = NULL;
    struct pgd_engine *eng = NULL;
    const struct pgd_tokenizer *tok = NULL;
    void *fe = NULL;
    const struct pgd_frontend_ops *ops = NULL;
    struct pgd_tool_chat chat = { 0 };
    bool has_chat = false;
    const char *model = o->ep.model_dir, *frontend = pgd__settings_str(&o->set, PGD__S_FRONTEND);
    double grace_s = pgd__settings_float(&o->set, PGD__S_GRACE);
    bool quiet = false;                /* a tensor-parallel worker rank: rank 0 talks */

    if (install_signals() != 0) {
        snprintf(err, sizeof err, "cannot set up signal handling");
        goto out;
    }
    static char engine_dirs[8192];
    int too_long;
    o->ep.plugin_path = pgd_tool_engine_plugin_path(o->plugin_dirs, engine_dirs,
                                                    sizeof engine_dirs, &too_long);
    if (too_long) {
        snprintf(err, sizeof err, "--plugin-dir paths are too long");
        goto out;
    }
    /* Tensor parallelism: ranks other than 0 serve rank 0's steps, with no frontend. */
    int worker = pgd_tool_tp_worker("serve", &o->ep);
    if (worker >= 0) {
        rc = worker;
        err[0] = 0;
        quiet = true;
        goto out;
    }
    if (pgd_tool_registry(o->plugin_dirs, &reg, err, sizeof err))
        goto out;
    const struct pgd_plugin *pl = pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, frontend);
    if (!pl) {
        snprintf(err, sizeof err, "no frontend plugin named '%s' on the search path (%s); "
                 "`pagoda plugins` lists what was found", frontend,
                 pgd_registry_search_path(reg));
        goto out;
    }
    ops = pl->frontend;
    if (ops->struct_size < offsetof(struct pgd_frontend_ops, destroy) + sizeof ops->destroy ||
        !ops->create || !ops->address || !ops->attach || !ops->shutdown || !ops->destroy) {
        snprintf(err, sizeof err, "frontend plugin '%s' has an incomplete vtable", pl->name);
        ops = NULL;
        goto out;
    }
    if (ops->create(o->fe, o->n_fe, &fe, err, sizeof err))
        goto out;
    fprintf(stderr, "pagoda serve: listening on %s (loading %s)\n", ops->address(fe), model);
    /* On a GPU this loads the weights, profiles a step, sizes the KV cache and captures every
     * CUDA graph of the decode ladder: /health answers 503 until it returns. */
    if (pgd_engine_create(&o->ep, &eng, err, sizeof err))
        goto out;
    tok = pgd_engine_tokenizer(eng);    /* borrowed from the engine */
    if (tok && pgd_tool_chat_load(o->ep.tokenizer ? o->ep.tokenizer : model,
                                  pgd__settings_str(&o->set, PGD__S_CHAT_TEMPLATE), &chat,
                                  &has_chat, err, sizeof err))
        goto out;
    struct pgd_frontend_model fm = {
        .struct_size = sizeof fm,
        .engine = eng,
        .tokenizer = tok,
        .name = o->model_name,
        .root = model,
        .max_model_len = pgd_engine_max_model_len(eng),
        .vocab_size = pgd_engine_vocab_size(eng),
        .render_chat = has_chat ? pgd_tool_chat_render : NULL,
        .render_ctx = &chat,
        .default_sampling = &o->gen.sp,
        .default_sampling_json = o->gen.json,
    };
    if (ops->attach(fe, &fm, err, sizeof err))
        goto out;
    fprintf(stderr, "pagoda serve: ready: model '%s' on %s (%s)\n", o->model_name,
            ops->address(fe), o->dev.desc);
    serve_until_signal(o, eng, ops, fe);
    fprintf(stderr, "pagoda serve: stopping (grace %.1f s)\n", grace_s);
    rc = 0;
out:
    if (rc && err[0])
        fprintf(stderr, "pagoda serve: %s\n", err);
    pgd_tool_tp_failed(&o->ep, rc);
    if (fe) {
        shutdown_frontend(ops, fe, (int)(grace_s * 1000));
        ops->destroy(fe);
    }
    pgd_engine_destroy(eng);
    pgd_tool_chat_fini(&chat);
    pgd_registry_destroy(reg);
    if (sig_pipe[0] >= 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
    }
    if (rc == 0 && !quiet)
        fprintf(stderr, "pagoda serve: stopped\n");
    return rc;
}

/* The --config FILE of argv (pointing into argv), or NULL. */
static const char *config_path(int argc, char **argv)
{
    char **copy = malloc((size_t)(argc + 1) * sizeof *copy);
    const char *path = NULL;
    char err[256];
    if (copy) {
        memcpy(copy, argv, (size_t)argc * sizeof *copy);
        if (pgd__settings_take_config_flag(&argc, copy, &path, err, sizeof err))
            path = NULL;
    }
    free(copy);
    return path;
}

int pgd_cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    memset(&o, 0, sizeof o);
    /* A SIGHUP before the handlers are in place (a long model download) must not end the
     * server (its default action): ignored until run() installs them. */
    signal(SIGHUP, SIG_IGN);
    pgd__settings_init(&o.set);
    char err[8192];
    bool help = false;
    int rc = 0;
    enum pgd_status st = pgd__settings_from_command(&o.set, argc, argv, &help, err, sizeof err);
    o.argc = argc;
    o.argv = argv;
    o.config_path = config_path(argc, argv);
    if (err[0])   /* the errors, or the deployment file's warnings */
        fprintf(stderr, "pagoda serve: %s%s", err, err[strlen(err) - 1] == '\n' ? "" : "\n");
    if (st) {
        rc = 2;
    } else if (help) {
        pgd__settings_print_help(stdout, USAGE);
    } else if (!pgd__settings_str(&o.set, PGD__S_MODEL)) {
        fprintf(stderr, "pagoda serve: no model: give its directory, hub id or catalog name "
                        "(`pagoda serve MODEL` or --model MODEL); `pagoda serve --help` lists "
                        "the options\n");
        rc = 2;
    } else {
        rc = prepare(&o);
        if (rc == 0)
            rc = run(&o);
    }
    for (size_t i = 0; i < MAX_FRONTEND_SETTINGS; i++)
        free(o.fe_opts[i]);
    free(o.plugin_dirs);
    pgd__gen_defaults_fini(&o.gen);
    pgd__settings_fini(&o.set);
    return rc;
}
