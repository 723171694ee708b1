/* The OpenAI-compatible HTTP frontend plugin: its descriptor, its ops and its settings.
 *
 * Settings (keys of [frontend.openai] in an INI deployment, or `pagoda serve` options; the
 * flag is the key with '-' for '_'):
 *   host                   address to bind (default 127.0.0.1; "::" = every IPv6 and IPv4
 *                          address, dual-stack)
 *   port                   TCP port (default 8000; 0 = a free port, see ops->address)
 *   uds                    listen on this Unix socket instead of host:port
 *   api_key                when set, requests need `Authorization: Bearer <key>` (except
 *                          /health and /metrics); repeatable (any of the keys is accepted);
 *                          an empty key is refused
 *   api_key_file           more keys, one a line (blank lines and '#' lines skipped)
 *   served_model_name      a name of the model (repeatable, as vLLM's
 *                          `--served-model-name NAME [NAME ...]`): the first is the one in
 *                          responses and metrics, a request may name any (default: the host's)
 *   max_body_bytes         larger request bodies get 413 (default 4194304)
 *   max_connections        open connections served; past it a new one gets 503 with
 *                          Retry-After (default 4096)
 *   max_connections_per_ip the same for one client address (default: half of
 *                          max_connections; 0 = no per-address limit)
 *   max_n                  most choices one request may ask for: prompts x n (default 64)
 *   timeout_keep_alive     seconds an idle keep-alive connection is kept (default 5)
 *   header_timeout         seconds a client has to send a whole request head, from its
 *                          connection or its previous answer (default 10)
 *   write_timeout          seconds a client may take no byte of an answer waiting for it;
 *                          then its request is aborted and the connection closed (default 60)
 *   cors_origins           comma-separated allowed origins, or "*" (default: no CORS)
 *   access_log             true/false: a log line per request (default true)
 *   response_role          the role of chat answers (default "assistant")
 *   return_tokens_as_token_ids  true/false: logprobs name tokens "token_id:N" (default false)
 *   max_logprobs           the most logprobs a request may ask for, 0..20 (default 20)
 *   tool_call_parser       hermes | llama3_json | mistral: the model's tool-call syntax
 *   enable_auto_tool_choice  true/false: tool_choice "auto" allowed (needs the parser)
 *   reasoning_parser       qwen3 | deepseek_r1: <think>...</think> -> reasoning_content
 *   trust_request_chat_template  true/false: a request's chat_template is used */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/plugin.h>
#include <pagoda/log.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
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

/* One more served model name (a name given twice is kept once). */
static enum pgd_status add_name(struct oai_settings *s, const char *v, char *err, size_t errlen)
{
    if (!*v)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: served_model_name is empty");
    for (int i = 0; i < s->n_served_model_names; i++)
        if (!strcmp(s->served_model_names[i], v))
            return PGD_OK;
    char **names = realloc(s->served_model_names,
                           (size_t)(s->n_served_model_names + 1) * sizeof *names);
    if (!names)
        return PGD_ERR_NOMEM;
    s->served_model_names = names;
    names[s->n_served_model_names] = strdup(v);
    if (!names[s->n_served_model_names])
        return PGD_ERR_NOMEM;
    s->n_served_model_names++;
    return PGD_OK;
}

/* Integer settings: key, range, where the value goes. */
struct int_setting {
    const char *key;
    long lo, hi;
    size_t offset;                 /* of an int, or of max_body_bytes (a size_t) */
};
static const struct int_setting int_settings[] = {
    { "port", 0, 65535, offsetof(struct oai_settings, port) },
    { "max_body_bytes", 64, LONG_MAX, offsetof(struct oai_settings, max_body_bytes) },
    { "max_connections", 1, 65536, offsetof(struct oai_settings, max_connections) },
    { "max_connections_per_ip", 0, 65536,
      offsetof(struct oai_settings, max_connections_per_ip) },
    { "max_n", 1, 256, offsetof(struct oai_settings, max_n) },
    { "timeout_keep_alive", 1, 86400, offsetof(struct oai_settings, timeout_keep_alive) },
    { "header_timeout", 1, 3600, offsetof(struct oai_settings, header_timeout) },
    { "write_timeout", 1, 86400, offsetof(struct oai_settings, write_timeout) },
    { "max_logprobs", 0, OAI_MAX_LOGPROBS, offsetof(struct oai_settings, max_logprobs) },
};

/* One key = value; PGD_ERR_NOT_FOUND when the key is not a setting. */
static enum pgd_status parse_one(struct oai_settings *s, const char *k, const char *v,
                                 char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof int_settings / sizeof *int_settings; i++) {
        const struct int_setting *is = &int_settings[i];
        if (strcmp(k, is->key))
            continue;
        long x = 0;
        enum pgd_status st = parse_long(k, v, is->lo, is->hi, &x, err, errlen);
        if (st == PGD_OK && !strcmp(k, "max_body_bytes"))
            s->max_body_bytes = (size_t)x;
        else if (st == PGD_OK)
            *(int *)((char *)s + is->offset) = (int)x;
        return st;
    }
    if (!strcmp(k, "host"))
        return *v ? set_str(&s->host, v)
                  : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: host is empty");
    if (!strcmp(k, "uds"))
        return *v ? set_str(&s->uds, v)
                  : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: uds is empty");
    if (!strcmp(k, "api_key"))
        return oai_auth_add_key(s, v, err, errlen);
    if (!strcmp(k, "api_key_file"))
        return oai_auth_load_file(s, v, err, errlen);
    if (!strcmp(k, "served_model_name"))
        return add_name(s, v, err, errlen);
    if (!strcmp(k, "cors_origins")) {
        free(s->cors_origins);
        s->cors_origins = NULL;
        return *v ? set_str(&s->cors_origins, v) : PGD_OK;
    }
    if (!strcmp(k, "access_log")) {
        bool on;
        enum pgd_status st = parse_bool(k, v, &on, err, errlen);
        if (st == PGD_OK)
            atomic_store(&s->access_log, on);
        return st;
    }
    if (!strcmp(k, "return_tokens_as_token_ids"))
        return parse_bool(k, v, &s->return_tokens_as_token_ids, err, errlen);
    if (!strcmp(k, "enable_auto_tool_choice"))
        return parse_bool(k, v, &s->enable_auto_tool_choice, err, errlen);
    if (!strcmp(k, "trust_request_chat_template"))
        return parse_bool(k, v, &s->trust_request_chat_template, err, errlen);
    if (!strcmp(k, "tool_call_parser"))
        return oai_tool_parser_from_name(v, &s->tool_call_parser)
                   ? PGD_OK
                   : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: "
                              "tool_call_parser = '%s' is not hermes, llama3_json or mistral", v);
    if (!strcmp(k, "reasoning_parser"))
        return oai_reasoning_parser_from_name(v, &s->reasoning_parser)
                   ? PGD_OK
                   : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: "
                              "reasoning_parser = '%s' is not qwen3 or deepseek_r1", v);
    if (!strcmp(k, "response_role"))
        return *v ? set_str(&s->response_role, v)
                  : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                             "frontend.openai: response_role is empty");
    return PGD_ERR_NOT_FOUND;
}

enum pgd_status oai_settings_parse(struct oai_settings *s, const struct pgd_setting *kv,
                                   size_t n, char *err, size_t errlen)
{
    *s = (struct oai_settings){
        .port = 8000,
        .max_body_bytes = (size_t)4 << 20,
        .max_connections = 4096,
        .max_connections_per_ip = -1,
        .max_n = 64,
        .timeout_keep_alive = 5,
        .header_timeout = 10,
        .write_timeout = 60,
        .access_log = true,
        .max_logprobs = OAI_MAX_LOGPROBS,
    };
    enum pgd_status st = set_str(&s->host, "127.0.0.1");
    if (!st)
        st = set_str(&s->response_role, "assistant");
    for (size_t i = 0; i < n && st == PGD_OK; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        if (!k || !v)
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                          "frontend.openai: setting %zu has no key or no value", i);
        else if ((st = parse_one(s, k, v, err, errlen)) == PGD_ERR_NOT_FOUND)
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                          "frontend.openai: unknown setting '%s' (known: host, port, uds, "
                          "api_key, api_key_file, served_model_name, max_body_bytes, "
                          "max_connections, max_connections_per_ip, max_n, timeout_keep_alive, "
                          "header_timeout, write_timeout, cors_origins, access_log, "
                          "response_role, return_tokens_as_token_ids, max_logprobs, "
                          "tool_call_parser, enable_auto_tool_choice, reasoning_parser, "
                          "trust_request_chat_template)", k);
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
    free(s->uds);
    for (int i = 0; i < s->n_api_keys; i++)
        free(s->api_keys[i]);
    free(s->api_keys);
    for (int i = 0; i < s->n_served_model_names; i++)
        free(s->served_model_names[i]);
    free(s->served_model_names);
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
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_cond_init(&s->conn_cv, NULL);
    s->listen_fd = -1;
    s->wake[0] = s->wake[1] = -1;
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
    const char *name = s->cfg.n_served_model_names ? s->cfg.served_model_names[0] : m->name;
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
    pthread_mutex_destroy(&s->conn_mu);
    pthread_cond_destroy(&s->conn_cv);
    free(s);
}

/* SIGHUP: new API keys and access log, all or nothing (see pgd_frontend_ops.reload). The
 * keys are read into a scratch settings and swapped in at once (auth.c). */
static enum pgd_status fe_reload(void *fe, const struct pgd_setting *settings, size_t n,
                                 char *err, size_t errlen)
{
    struct oai_server *s = fe;
    struct oai_settings fresh = { .access_log = true };
    enum pgd_status st = PGD_OK;
    for (size_t i = 0; i < n && st == PGD_OK; i++) {
        const char *k = settings[i].key;
        if (!k || !settings[i].value || (strcmp(k, "api_key") && strcmp(k, "api_key_file") &&
                                         strcmp(k, "access_log")))
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "frontend.openai: %s cannot "
                          "change while serving (api_key, api_key_file and access_log can)",
                          k ? k : "(null)");
        else
            st = parse_one(&fresh, k, settings[i].value, err, errlen);
    }
    if (st == PGD_OK) {
        bool had = s->cfg.n_api_keys > 0;   /* only this thread writes the keys */
        oai_auth_swap_keys(&s->cfg, &fresh);
        atomic_store(&s->cfg.access_log, atomic_load(&fresh.access_log));
        PGD_INFO("frontend.openai: reloaded: %d API key%s%s, access log %s",
                 s->cfg.n_api_keys, s->cfg.n_api_keys == 1 ? "" : "s",
                 had && !s->cfg.n_api_keys ? " (authentication is off now)" : "",
                 atomic_load(&s->cfg.access_log) ? "on" : "off");
    }
    oai_settings_fini(&fresh);
    return st;
}

static const struct pgd_frontend_ops ops = {
    .struct_size = sizeof(struct pgd_frontend_ops),
    .create = fe_create,
    .address = fe_address,
    .attach = fe_attach,
    .shutdown = fe_shutdown,
    .destroy = fe_destroy,
    .reload = fe_reload,
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
