/* The REPL frontend plugin: its descriptor, its ops and its settings. `pagoda chat` drives
 * it: create (settings), attach (the in-process engine; skipped with "url"), run (the chat
 * in the terminal, or one answer when stdin is not a terminal), destroy.
 *
 * Settings (keys of [frontend.repl]; `pagoda chat` flags are the keys with '-' for '_'):
 *   url            an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (no engine)
 *   api_key        sent to it as `Authorization: Bearer <key>`
 *   model          the "model" field sent to it (default: the first of its /v1/models)
 *   system         the system message every conversation starts with
 *   temperature, top_p, top_k, max_tokens, seed   sampling (default: the engine's/server's)
 *   ignore_eos     true|false: generate max_tokens tokens whatever the model says (tests)
 *   no_stats       true|false: no dim stats line after each answer
 *   history_file   default $XDG_STATE_HOME/pagoda/chat_history (~/.local/state/...) */
#include "plugins/frontend/repl/repl.h"
#include <pagoda/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct repl_fe {
    struct repl_settings cfg;
    struct repl_backend *backend;
    char address[512];
};

static enum pgd_status set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
    return *dst ? PGD_OK : PGD_ERR_NOMEM;
}

static enum pgd_status parse_bool(const char *key, const char *v, bool *out, char *err,
                                  size_t errlen)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
        *out = false;
    else
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.repl: %s = '%s' is not true or false", key, v);
    return PGD_OK;
}

enum pgd_status repl_settings_set(struct repl_settings *s, const char *key, const char *value,
                                  char *err, size_t errlen)
{
    struct { const char *key; char **dst; } strs[] = {
        { "url", &s->url }, { "api_key", &s->api_key }, { "model", &s->model },
        { "system", &s->system }, { "history_file", &s->history_file },
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!strcmp(key, strs[i].key))
            return set_str(strs[i].dst, value);
    if (!strcmp(key, "no_stats"))
        return parse_bool(key, value, &s->no_stats, err, errlen);
    if (!strcmp(key, "ignore_eos"))
        return parse_bool(key, value, &s->sampling.ignore_eos, err, errlen);
    return repl_sampling_set(&s->sampling, key, value, err, errlen);
}

void repl_settings_fini(struct repl_settings *s)
{
    free(s->url);
    free(s->api_key);
    free(s->model);
    free(s->system);
    free(s->history_file);
}

static void fe_destroy(void *fe)
{
    struct repl_fe *r = fe;
    if (!r)
        return;
    if (r->backend)
        r->backend->destroy(r->backend);
    repl_settings_fini(&r->cfg);
    free(r);
}

static enum pgd_status fe_create(const struct pgd_setting *settings, size_t n, void **out,
                                 char *err, size_t errlen)
{
    struct repl_fe *r = calloc(1, sizeof *r);
    if (!r)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "frontend.repl: no memory");
    enum pgd_status st = PGD_OK;
    for (size_t i = 0; i < n && st == PGD_OK; i++) {
        st = repl_settings_set(&r->cfg, settings[i].key, settings[i].value, err, errlen);
        if (st == PGD_ERR_NOMEM)
            pgd_errf(err, errlen, st, "frontend.repl: no memory");
    }
    if (st == PGD_OK && r->cfg.url)
        st = repl_http_backend(&r->cfg, &r->backend, err, errlen);
    if (st != PGD_OK) {
        fe_destroy(r);
        return st;
    }
    snprintf(r->address, sizeof r->address, "%s", r->cfg.url ? r->cfg.url : "terminal");
    *out = r;
    return PGD_OK;
}

static const char *fe_address(void *fe)
{
    return ((struct repl_fe *)fe)->address;
}

static enum pgd_status fe_attach(void *fe, const struct pgd_frontend_model *m, char *err,
                                 size_t errlen)
{
    struct repl_fe *r = fe;
    if (r->backend)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.repl: already has a backend (%s)", r->address);
    return repl_engine_backend(m, &r->backend, err, errlen);
}

static void fe_shutdown(void *fe, int grace_ms)
{
    (void)fe;
    (void)grace_ms;   /* run returns only once its request is done or aborted */
}

static int fe_run(void *fe)
{
    struct repl_fe *r = fe;
    if (!r->backend) {
        fprintf(stderr, "pagoda chat: no model attached and no url\n");
        return 1;
    }
    return isatty(STDIN_FILENO) ? repl_run(r->backend, &r->cfg)
                                : repl_pipe(r->backend, &r->cfg);
}

static const struct pgd_frontend_ops ops = {
    .struct_size = sizeof(struct pgd_frontend_ops),
    .create = fe_create,
    .address = fe_address,
    .attach = fe_attach,
    .shutdown = fe_shutdown,
    .destroy = fe_destroy,
    .run = fe_run,
};

static const struct pgd_plugin plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_FRONTEND,
    .name = "repl",
    .version = "1.0.0",
    .description = "chat in the terminal (libedit), in-process or with a server over HTTP",
    .frontend = &ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &plugin;
}
