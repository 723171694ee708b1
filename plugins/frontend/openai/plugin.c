/* The OpenAI-compatible HTTP frontend plugin: its descriptor, its ops and its settings.
 *
 * Settings (keys of [frontend.openai] in an INI deployment, or `pagoda serve` options):
 *   host               address to bind (default 127.0.0.1)
 *   port               TCP port (default 8000; 0 = a free port, see ops->address)
 *   api_key            when set, requests need `Authorization: Bearer <key>` (except
 *                      /health and /metrics)
 *   served_model_name  the model's name in requests and responses (default: the host's)
 *   max_body_bytes     larger request bodies get 413 (default 4194304)
 *   max_connections    concurrent connections (default 1024)
 *   max_n              most choices one request may ask for: prompts x n (default 64)
 *   timeout_s          idle connections are closed after this (default 300)
 *   cors_origins       comma-separated allowed origins, or "*" (default: no CORS)
 *   access_log         true/false: a log line per request (default true)
 *   response_role      the role of chat answers (default "assistant")
 *   return_tokens_as_token_ids  true/false: logprobs name tokens "token_id:N" (default false)
 *   max_logprobs       the most logprobs a request may ask for, 0..20 (default 20) */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/plugin.h>
#include <pagoda/log.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static enum pgd_status parse_long(const char *key, const char *v, long lo, long hi, long *out,
                                  char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: %s = '%s' is not an integer in [%ld, %ld]", key, v, lo,
                        hi);
    *out = x;
    return PGD_OK;
}

static enum pgd_status parse_bool(const char *key, const char *v, bool *out, char *err,
                                  size_t errlen)
{
    if (!strcmp(v, "true") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
        *out = false;
    else
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: %s = '%s' is not true or false", key, v);
    return PGD_OK;
}

static enum pgd_status set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
    return *dst ? PGD_OK : PGD_ERR_NOMEM;
}

enum pgd_status oai_settings_parse(struct oai_settings *s, const struct pgd_setting *kv,
                                   size_t n, char *err, size_t errlen)
{
    *s = (struct oai_settings){
        .port = 8000,
        .max_body_bytes = (size_t)4 << 20,
        .max_connections = 1024,
        .max_n = 64,
        .timeout_s = 300,
        .access_log = true,
        .max_logprobs = OAI_MAX_LOGPROBS,
    };
    enum pgd_status st = set_str(&s->host, "127.0.0.1");
    if (!st)
        st = set_str(&s->response_role, "assistant");
    for (size_t i = 0; i < n && st == PGD_OK; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        long x;
        if (!k || !v)
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                          "frontend.openai: setting %zu has no key or no value", i);
        else if (!strcmp(k, "host"))
            st = *v ? set_str(&s->host, v)
                    : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: host is empty");
        else if (!strcmp(k, "port")) {
            if (!(st = parse_long(k, v, 0, 65535, &x, err, errlen)))
                s->port = (int)x;
        } else if (!strcmp(k, "api_key")) {
            free(s->api_key);
            s->api_key = NULL;
            if (*v)
                st = set_str(&s->api_key, v);
        } else if (!strcmp(k, "served_model_name"))
            st = *v ? set_str(&s->served_model_name, v)
                    : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                               "frontend.openai: served_model_name is empty");
        else if (!strcmp(k, "max_body_bytes")) {
            if (!(st = parse_long(k, v, 64, LONG_MAX, &x, err, errlen)))
                s->max_body_bytes = (size_t)x;
        } else if (!strcmp(k, "max_connections")) {
            if (!(st = parse_long(k, v, 1, 65536, &x, err, errlen)))
                s->max_connections = (int)x;
        } else if (!strcmp(k, "max_n")) {
            if (!(st = parse_long(k, v, 1, 256, &x, err, errlen)))
                s->max_n = (int)x;
        } else if (!strcmp(k, "timeout_s")) {
            if (!(st = parse_long(k, v, 0, 86400, &x, err, errlen)))
                s->timeout_s = (int)x;
        } else if (!strcmp(k, "cors_origins")) {
            free(s->cors_origins);
            s->cors_origins = NULL;
            if (*v)
                st = set_str(&s->cors_origins, v);
        } else if (!strcmp(k, "access_log"))
            st = parse_bool(k, v, &s->access_log, err, errlen);
        else if (!strcmp(k, "return_tokens_as_token_ids"))
            st = parse_bool(k, v, &s->return_tokens_as_token_ids, err, errlen);
        else if (!strcmp(k, "response_role"))
            st = *v ? set_str(&s->response_role, v)
                    : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                               "frontend.openai: response_role is empty");
        else if (!strcmp(k, "max_logprobs")) {
            if (!(st = parse_long(k, v, 0, OAI_MAX_LOGPROBS, &x, err, errlen)))
                s->max_logprobs = (int)x;
        } else
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                          "frontend.openai: unknown setting '%s' (known: host, port, api_key, "
                          "served_model_name, max_body_bytes, max_connections, max_n, "
                          "timeout_s, cors_origins, access_log, response_role, "
                          "return_tokens_as_token_ids, max_logprobs)", k);
        if (st == PGD_ERR_NOMEM)
            pgd_errf(err, errlen, st, "frontend.openai: no memory");
    }
    if (st != PGD_OK)
        oai_settings_fini(s);
    return st;
}

void oai_settings_fini(struct oai_settings *s)
{
    free(s->host);
    free(s->api_key);
    free(s->served_model_name);
    free(s->cors_origins);
    free(s->response_role);
    *s = (struct oai_settings){ 0 };
}

/* ---- ops ------------------------------------------------------------------------------ */

static void fe_destroy(void *fe);

static enum pgd_status fe_create(const struct pgd_setting *settings, size_t n, void **out,
                                 char *err, size_t errlen)
{
    *out = NULL;
    struct oai_server *s = calloc(1, sizeof *s);
    if (!s)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "frontend.openai: no memory");
    enum pgd_status st = oai_settings_parse(&s->cfg, settings, n, err, errlen);
    if (st != PGD_OK) {
        free(s);
        return st;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->started = time(NULL);
    st = oai_server_start(s, err, errlen);
    if (st != PGD_OK) {
        fe_destroy(s);
        return st;
    }
    *out = s;
    return PGD_OK;
}

static const char *fe_address(void *fe)
{
    return ((struct oai_server *)fe)->address;
}

static enum pgd_status fe_attach(void *fe, const struct pgd_frontend_model *m, char *err,
                                 size_t errlen)
{
    struct oai_server *s = fe;
    if (!m || m->struct_size < offsetof(struct pgd_frontend_model, render_ctx) + sizeof(void *)
        || !m->engine || !m->name || m->max_model_len <= 0 || m->vocab_size <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: attach needs an engine, a model name, max_model_len "
                        "and vocab_size");
    if (atomic_load(&s->attached))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: already attached");
    const char *name = s->cfg.served_model_name ? s->cfg.served_model_name : m->name;
    s->model_name = strdup(name);
    if (!s->model_name)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "frontend.openai: no memory");
    /* A host built against an older header passes a shorter struct: the fields it lacks
     * stay zero (NULL). */
    memset(&s->model, 0, sizeof s->model);
    memcpy(&s->model, m, m->struct_size < sizeof s->model ? m->struct_size : sizeof s->model);
    s->model.name = s->model_name;
    atomic_store(&s->attached, true);
    PGD_INFO("frontend.openai: serving '%s' (max_model_len %d) on %s", s->model_name,
             m->max_model_len, s->address);
    return PGD_OK;
}

static void fe_shutdown(void *fe, int grace_ms)
{
    oai_server_shutdown(fe, grace_ms);
}

static void fe_destroy(void *fe)
{
    struct oai_server *s = fe;
    if (!s)
        return;
    oai_server_shutdown(s, 0);
    oai_settings_fini(&s->cfg);
    free(s->model_name);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static const struct pgd_frontend_ops ops = {
    .struct_size = sizeof(struct pgd_frontend_ops),
    .create = fe_create,
    .address = fe_address,
    .attach = fe_attach,
    .shutdown = fe_shutdown,
    .destroy = fe_destroy,
};

static const struct pgd_plugin plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_FRONTEND,
    .name = "openai",
    .version = "1.0.0",
    .description = "OpenAI-compatible HTTP server (completions, chat, SSE streaming)",
    .frontend = &ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &plugin;
}
