/* `pagoda serve --model DIR [options]`: the engine behind a frontend plugin (by default
 * `openai`, the OpenAI-compatible HTTP server), found through the plugin registry like any
 * plugin. The frontend listens first (answering 503 while the model loads), then gets the
 * engine. SIGTERM or SIGINT: stop accepting, let running requests finish for --grace
 * seconds (a second signal ends it at once), answer the rest with errors, exit 0. */
#include "config.h"
#include "tools/commands.h"
#include <pagoda/engine.h>
#include <pagoda/frontend.h>
#include <pagoda/log.h>
#include <pagoda/registry.h>
#include <pagoda/tokenizer.h>
#include <pagoda/chat_template.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#define MAX_SETTINGS 64

struct serve_opts {
    const char *model;
    const char *frontend;
    char *plugin_dirs;                       /* colon-separated, owned */
    struct pgd_setting settings[MAX_SETTINGS];
    size_t n_settings;
    struct pgd_engine_params ep;
    double grace_s;
};

static void serve_usage(FILE *out)
{
    fprintf(out,
        "usage: pagoda serve --model DIR [options]\n\n"
        "Serves the model in DIR (config.json, *.safetensors, tokenizer.json) over the\n"
        "OpenAI API: POST /v1/completions, /v1/chat/completions, /tokenize, /detokenize;\n"
        "GET /v1/models, /health, /version, /metrics.\n\n"
        "frontend (settings of the frontend plugin; INI: [frontend.openai]):\n"
        "  --host H                 address to bind (default 127.0.0.1; '::' = all, dual-stack)\n"
        "  --port P                 TCP port (default 8000; 0 = any free port)\n"
        "  --uds PATH               listen on a Unix socket instead of host:port\n"
        "  --api-key K              require 'Authorization: Bearer K' (not on /health, /metrics);\n"
        "                           repeatable: any of the keys is accepted\n"
        "  --api-key-file FILE      more keys, one a line (keep FILE private: chmod 600)\n"
        "  --served-model-name N    the model's name in the API (default: DIR's last part)\n"
        "  --max-body-bytes N       larger request bodies get 413 (default 4194304)\n"
        "  --max-connections N      open connections; past it, 503 + Retry-After (default 1024)\n"
        "  --max-connections-per-ip N  the same for one client address (default: half of\n"
        "                           --max-connections; 0 = no per-address limit)\n"
        "  --timeout-keep-alive S   seconds an idle keep-alive connection is kept (default 5)\n"
        "  --header-timeout S       seconds a client has to send a request head (default 10)\n"
        "  --max-n N                most choices (prompts x n) per request (default 64)\n"
        "  --cors-origins LIST      comma-separated allowed origins, or '*'\n"
        "  --frontend-opt KEY=VALUE any other frontend setting (repeatable)\n"
        "  --frontend NAME          the frontend plugin (default openai)\n"
        "  --grace SECONDS          on SIGTERM, how long running requests may finish (default 30;\n"
        "                           a second SIGTERM or SIGINT ends it at once)\n"
        "engine:\n"
        "  --max-model-len N        longest sequence (default: the model's)\n"
        "  --max-num-seqs N         sequences per step (default 256)\n"
        "  --max-num-batched-tokens N  tokens per step (default 2048)\n"
        "  --block-size N           tokens per KV block (default 16)\n"
        "  --num-blocks N           KV blocks (default: from --kv-cache-mib)\n"
        "  --kv-cache-mib N         KV cache size (default 256)\n"
        "  --no-prefix-caching      do not share KV blocks between prompts\n"
        "  --seed N                 seeds the seeds of unseeded requests (default 0)\n"
        "  --plugin-dir DIR         also look for plugins in DIR (repeatable)\n");
}

/* ---- settings ----------------------------------------------------------------------- */

static int add_setting(struct serve_opts *o, const char *key, const char *value)
{
    bool repeatable = !strcmp(key, "api_key") || !strcmp(key, "api_key_file");
    for (size_t i = 0; i < o->n_settings && !repeatable; i++)
        if (!strcmp(o->settings[i].key, key)) {
            o->settings[i].value = value;
            return 0;
        }
    if (o->n_settings == MAX_SETTINGS) {
        fprintf(stderr, "pagoda serve: too many frontend settings\n");
        return 2;
    }
    o->settings[o->n_settings++] = (struct pgd_setting){ key, value };
    return 0;
}

static int add_dir(char **dirs, const char *dir)
{
    if (!dir || !dir[0])
        return 0;
    size_t old = *dirs ? strlen(*dirs) : 0;
    char *p = realloc(*dirs, old + strlen(dir) + 2);
    if (!p)
        return 1;
    snprintf(p + old, strlen(dir) + 2, "%s%s", old ? ":" : "", dir);
    *dirs = p;
    return 0;
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
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
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Non-blocking: true when SIGTERM/SIGINT arrived. */
static bool signalled(int timeout_ms)
{
    struct pollfd p = { .fd = sig_pipe[0], .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return false;
    unsigned char b;
    return read(sig_pipe[0], &b, 1) == 1;
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
        if (signalled(50) && !cut) {
            fprintf(stderr, "pagoda serve: second signal: ending the grace period now\n");
            ops->shutdown(fe, 0);
            cut = true;
        }
    }
    pthread_join(t, NULL);
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

    if (install_signals() != 0) {
        snprintf(err, sizeof err, "cannot set up signal handling");
        goto out;
    }
    if (pgd_tool_registry(o->plugin_dirs, &reg, err, sizeof err))
        goto out;
    const struct pgd_plugin *pl = pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, o->frontend);
    if (!pl) {
        snprintf(err, sizeof err, "no frontend plugin named '%s' on the search path (%s); "
                 "`pagoda plugins` lists what was found", o->frontend,
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
    if (ops->create(o->settings, o->n_settings, &fe, err, sizeof err))
        goto out;
    fprintf(stderr, "pagoda serve: listening on %s (loading %s)\n", ops->address(fe), o->model);

    o->ep.model_dir = o->model;
    static char engine_dirs[8192];
    int too_long;
    o->ep.plugin_path = pgd_tool_engine_plugin_path(o->plugin_dirs, engine_dirs,
                                                    sizeof engine_dirs, &too_long);
    if (too_long) {
        snprintf(err, sizeof err, "--plugin-dir paths are too long");
        goto out;
    }
    if (pgd_engine_create(&o->ep, &eng, err, sizeof err))
        goto out;
    tok = pgd_engine_tokenizer(eng);    /* borrowed from the engine */
    if (tok && pgd_tool_chat_load(o->model, &chat, &has_chat, err, sizeof err))
        goto out;
    /* The model's name: DIR's last part (the frontend's served_model_name overrides it). */
    char namebuf[256], tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", o->model);
    size_t tl = strlen(tmp);
    while (tl > 1 && tmp[tl - 1] == '/')
        tmp[--tl] = '\0';
    const char *base = strrchr(tmp, '/');
    snprintf(namebuf, sizeof namebuf, "%s", base && base[1] ? base + 1 : tmp);
    struct pgd_frontend_model fm = {
        .struct_size = sizeof fm,
        .engine = eng,
        .tokenizer = tok,
        .name = namebuf,
        .root = o->model,
        .max_model_len = pgd_engine_max_model_len(eng),
        .vocab_size = pgd_engine_vocab_size(eng),
        .render_chat = has_chat ? pgd_tool_chat_render : NULL,
        .render_ctx = &chat,
    };
    if (ops->attach(fe, &fm, err, sizeof err))
        goto out;
    fprintf(stderr, "pagoda serve: ready: model '%s' on %s\n", namebuf, ops->address(fe));
    while (!signalled(-1)) {
    }
    fprintf(stderr, "pagoda serve: stopping (grace %.1f s)\n", o->grace_s);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda serve: %s\n", err);
    if (fe) {
        shutdown_frontend(ops, fe, (int)(o->grace_s * 1000));
        ops->destroy(fe);
    }
    pgd_engine_destroy(eng);
    pgd_tool_chat_fini(&chat);
    pgd_registry_destroy(reg);
    if (sig_pipe[0] >= 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
    }
    if (rc == 0)
        fprintf(stderr, "pagoda serve: stopped\n");
    return rc;
}

int pgd_cmd_serve(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_KEY, O_NAME, O_BODY, O_CONN, O_MAXN, O_CORS, O_FOPT,
           O_FRONTEND, O_GRACE, O_MML, O_SEQS, O_BATCH, O_BS, O_NB, O_KV, O_NOPC, O_SEED,
           O_PDIR, O_UDS, O_KEYFILE, O_CONNIP, O_KEEPALIVE, O_HEADTO };
    static const struct option long_opts[] = {
        { "model", required_argument, 0, 'm' }, { "host", required_argument, 0, O_HOST },
        { "port", required_argument, 0, O_PORT }, { "api-key", required_argument, 0, O_KEY },
        { "served-model-name", required_argument, 0, O_NAME },
        { "max-body-bytes", required_argument, 0, O_BODY },
        { "max-connections", required_argument, 0, O_CONN },
        { "uds", required_argument, 0, O_UDS },
        { "api-key-file", required_argument, 0, O_KEYFILE },
        { "max-connections-per-ip", required_argument, 0, O_CONNIP },
        { "timeout-keep-alive", required_argument, 0, O_KEEPALIVE },
        { "header-timeout", required_argument, 0, O_HEADTO },
        { "max-n", required_argument, 0, O_MAXN },
        { "cors-origins", required_argument, 0, O_CORS },
        { "frontend-opt", required_argument, 0, O_FOPT },
        { "frontend", required_argument, 0, O_FRONTEND },
        { "grace", required_argument, 0, O_GRACE },
        { "max-model-len", required_argument, 0, O_MML },
        { "max-num-seqs", required_argument, 0, O_SEQS },
        { "max-num-batched-tokens", required_argument, 0, O_BATCH },
        { "block-size", required_argument, 0, O_BS }, { "num-blocks", required_argument, 0, O_NB },
        { "kv-cache-mib", required_argument, 0, O_KV },
        { "no-prefix-caching", no_argument, 0, O_NOPC }, { "seed", required_argument, 0, O_SEED },
        { "plugin-dir", required_argument, 0, O_PDIR }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct serve_opts o = { .frontend = "openai", .grace_s = 30.0 };
    o.ep = pgd_engine_default_params();
    int c, rc = 0, kv_mib = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "m:h", long_opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'm': o.model = optarg; break;
        case O_HOST: rc = add_setting(&o, "host", optarg); break;
        case O_PORT: rc = add_setting(&o, "port", optarg); break;
        case O_KEY: rc = add_setting(&o, "api_key", optarg); break;
        case O_NAME: rc = add_setting(&o, "served_model_name", optarg); break;
        case O_BODY: rc = add_setting(&o, "max_body_bytes", optarg); break;
        case O_CONN: rc = add_setting(&o, "max_connections", optarg); break;
        case O_UDS: rc = add_setting(&o, "uds", optarg); break;
        case O_KEYFILE: rc = add_setting(&o, "api_key_file", optarg); break;
        case O_CONNIP: rc = add_setting(&o, "max_connections_per_ip", optarg); break;
        case O_KEEPALIVE: rc = add_setting(&o, "timeout_keep_alive", optarg); break;
        case O_HEADTO: rc = add_setting(&o, "header_timeout", optarg); break;
        case O_MAXN: rc = add_setting(&o, "max_n", optarg); break;
        case O_CORS: rc = add_setting(&o, "cors_origins", optarg); break;
        case O_FOPT: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "pagoda serve: --frontend-opt '%s' is not KEY=VALUE\n", optarg);
                rc = 2;
                break;
            }
            *eq = '\0';
            rc = add_setting(&o, optarg, eq + 1);
            break;
        }
        case O_FRONTEND: o.frontend = optarg; break;
        case O_GRACE: {
            char *end;
            o.grace_s = strtod(optarg, &end);
            ok = *optarg && !*end && o.grace_s >= 0 && o.grace_s <= 86400;
            break;
        }
        case O_MML: ok = parse_int(optarg, 1, INT_MAX, &o.ep.max_model_len); break;
        case O_SEQS: ok = parse_int(optarg, 1, 65536, &o.ep.max_num_seqs); break;
        case O_BATCH: ok = parse_int(optarg, 1, INT_MAX, &o.ep.max_num_batched_tokens); break;
        case O_BS: ok = parse_int(optarg, 1, 1024, &o.ep.block_size); break;
        case O_NB: ok = parse_int(optarg, 1, INT_MAX, &o.ep.num_blocks); break;
        case O_KV: ok = parse_int(optarg, 1, 1 << 30, &kv_mib); break;
        case O_NOPC: o.ep.enable_prefix_caching = false; break;
        case O_SEED: {
            char *end;
            errno = 0;
            o.ep.seed = strtoull(optarg, &end, 10);
            ok = *optarg && !*end && !errno;
            break;
        }
        case O_PDIR:
            if (add_dir(&o.plugin_dirs, optarg))
                rc = 1;
            break;
        case 'h': serve_usage(stdout); free(o.plugin_dirs); return 0;
        default: rc = 2; break;
        }
        if (!ok) {
            fprintf(stderr, "pagoda serve: '%s' is not a valid value for that option\n", optarg);
            rc = 2;
        }
    }
    if (rc == 0 && (!o.model || optind < argc)) {
        serve_usage(stderr);
        rc = 2;
    }
    if (kv_mib > 0)
        o.ep.kv_cache_bytes = (size_t)kv_mib << 20;
    const char *named = o.model;
    if (rc == 0 && pgd_tool_resolve_model(&o.model, NULL, NULL))
        rc = 1;
    /* A hub id or catalog name is also the served name (vLLM's default), unless one is given:
     * the snapshot folder's last part is a commit id. */
    bool name_given = false;
    for (size_t i = 0; i < o.n_settings; i++)
        name_given |= !strcmp(o.settings[i].key, "served_model_name");
    if (rc == 0 && named != o.model && !name_given)
        rc = add_setting(&o, "served_model_name", named);
    if (rc == 0)
        rc = run(&o);
    free(o.plugin_dirs);
    return rc;
}
