/* The HTTP side of the OpenAI frontend: a libmicrohttpd daemon with one thread per
 * connection, the routes, request bodies (413 over the limit), bearer auth, CORS, the HTTP
 * counters of /metrics, and the graceful shutdown (quiesce, drain, abort). */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/log.h>
#include <pagoda/version.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *const route_names[R_COUNT] = {
    [R_COMPLETIONS] = "/v1/completions", [R_CHAT] = "/v1/chat/completions",
    [R_MODELS] = "/v1/models", [R_HEALTH] = "/health", [R_VERSION] = "/version",
    [R_METRICS] = "/metrics", [R_TOKENIZE] = "/tokenize", [R_DETOKENIZE] = "/detokenize",
    [R_OTHER] = "other",
};

/* Per request (MHD's con_cls): the route and the body read so far. */
struct req_ctx {
    enum oai_route route;
    bool too_big;
    bool answered;                 /* a response was queued before the body was read */
    struct oai_buf body;
};

static enum oai_route route_of(const char *url)
{
    for (int r = 0; r < R_OTHER; r++)
        if (!strcmp(url, route_names[r]))
            return (enum oai_route)r;
    return R_OTHER;
}

void oai_server_count(struct oai_server *s, enum oai_route r, int status)
{
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < OAI_STATUS_SLOTS; i++) {
        if (s->counts[r][i].status == status || s->counts[r][i].status == 0) {
            s->counts[r][i].status = status;
            s->counts[r][i].n++;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

bool oai_client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return true;
    struct pollfd p = { .fd = ci->connect_fd, .events = POLLRDHUP };
    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* The CORS origin to allow for this request, or NULL. */
static const char *cors_origin(struct oai_server *s, struct MHD_Connection *c)
{
    if (!s->cfg.cors_origins)
        return NULL;
    if (!strcmp(s->cfg.cors_origins, "*"))
        return "*";
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!o)
        return NULL;
    size_t ol = strlen(o);
    for (const char *p = s->cfg.cors_origins; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n == ol && !memcmp(p, o, n))
            return o;
        if (!e)
            break;
        p = e + 1;
    }
    return NULL;
}

enum MHD_Result oai_queue(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                             int status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    const char *origin = cors_origin(s, c);
    if (origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        if (strcmp(origin, "*"))
            MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (atomic_load(&s->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    oai_server_count(s, r, status);
    return ret;
}

enum MHD_Result oai_respond(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                            int status, const char *ctype, char *body, size_t len,
                            bool body_owned)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, body_owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (body_owned)
            free(body);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    return oai_queue(s, c, r, status, resp);
}

enum MHD_Result oai_respond_json(struct oai_server *s, struct MHD_Connection *c,
                                 enum oai_route r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return oai_respond(s, c, r, 500, "application/json",
                           "{\"error\":{\"message\":\"out of memory\",\"type\":\"internal_error\","
                           "\"param\":null,\"code\":null}}", 86, false);
    return oai_respond(s, c, r, status, "application/json", text, strlen(text), true);
}

enum MHD_Result oai_respond_error(struct oai_server *s, struct MHD_Connection *c,
                                  enum oai_route r, int status, const char *type,
                                  const char *param, const char *code, const char *msg)
{
    return oai_respond_json(s, c, r, status, oai_error_json(type, param, code, msg));
}

static enum MHD_Result respond_err(struct oai_server *s, struct MHD_Connection *c,
                                   enum oai_route r, const struct oai_error *e)
{
    return oai_respond_error(s, c, r, e->status, e->type, e->param, e->code, e->msg);
}

/* ---- the small routes -------------------------------------------------------------- */

static enum MHD_Result route_models(struct oai_server *s, struct MHD_Connection *c)
{
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:s, s:n, s:i}", "id", s->model_name,
                          "object", "model", "created", (json_int_t)s->started, "owned_by",
                          "pagoda", "root", s->model.root ? s->model.root : s->model_name,
                          "parent", "max_model_len", s->model.max_model_len);
    return oai_respond_json(s, c, R_MODELS, 200,
                            json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

static void metrics_http(struct oai_server *s, struct oai_buf *b)
{
    pthread_mutex_lock(&s->mu);
    oai_buf_addf(b, "# HELP pagoda:http_requests_total HTTP requests answered, by route and "
                    "status code.\n# TYPE pagoda:http_requests_total counter\n");
    for (int r = 0; r < R_COUNT; r++)
        for (int i = 0; i < OAI_STATUS_SLOTS && s->counts[r][i].status; i++)
            oai_buf_addf(b, "pagoda:http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                         route_names[r], s->counts[r][i].status,
                         (unsigned long long)s->counts[r][i].n);
    oai_buf_addf(b, "# HELP pagoda:http_requests_in_progress HTTP requests being handled "
                    "(this one included).\n# TYPE pagoda:http_requests_in_progress gauge\n"
                    "pagoda:http_requests_in_progress %d\n", s->active);
    oai_buf_addf(b, "# HELP pagoda:http_streams_aborted_total Requests aborted because their "
                    "client went away or the server shut down.\n"
                    "# TYPE pagoda:http_streams_aborted_total counter\n"
                    "pagoda:http_streams_aborted_total %llu\n",
                 (unsigned long long)s->streams_aborted);
    pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result route_metrics(struct oai_server *s, struct MHD_Connection *c)
{
    struct oai_buf b = { 0 };
    if (atomic_load(&s->attached)) {
        char *text = NULL;
        size_t len = 0;
        if (pgd_engine_metrics_text(s->model.engine, &text, &len) == PGD_OK)
            oai_buf_add(&b, text, len);
        free(text);
    }
    metrics_http(s, &b);
    if (b.failed) {
        oai_buf_fini(&b);
        return oai_respond_error(s, c, R_METRICS, 500, "internal_error", NULL, NULL,
                                 "out of memory");
    }
    return oai_respond(s, c, R_METRICS, 200, "text/plain; version=0.0.4; charset=utf-8",
                       b.p ? b.p : strdup(""), b.len, true);
}

/* POST /tokenize {"prompt": str, "add_special_tokens": bool} or {"messages": [...],
 * "add_generation_prompt": bool}: {"count", "max_model_len", "tokens"}. */
static enum MHD_Result route_tokenize(struct oai_server *s, struct MHD_Connection *c, json_t *b)
{
    struct oai_error e = { 0 };
    bool chat = json_object_get(b, "messages") != NULL;
    json_t *prompt = json_object_get(b, "prompt");
    if (!chat && (!prompt || !json_is_string(prompt)))
        return oai_respond_error(s, c, R_TOKENIZE, 400, "invalid_request_error", "prompt", NULL,
                                 "'prompt' must be a string (or send 'messages')");
    /* Reuse the completions/chat parser: it renders and tokenizes the same way. */
    json_t *copy = json_deep_copy(b);
    if (!copy)
        return MHD_NO;
    json_object_del(copy, "stream");
    json_object_del(copy, "max_tokens");
    json_object_del(copy, "max_completion_tokens");
    json_object_set_new(copy, "max_tokens", json_integer(1));
    struct oai_gen g;
    bool ok = oai_gen_parse(s, chat, copy, &g, &e);
    json_decref(copy);
    if (!ok && e.status == 400 && !strcmp(e.code ? e.code : "", "context_length_exceeded"))
        ok = true;   /* counting tokens of a long prompt is fine */
    if (!ok) {
        oai_gen_fini(&g);
        return respond_err(s, c, R_TOKENIZE, &e);
    }
    json_t *ids = json_array();
    for (int i = 0; g.n_prompts > 0 && i < g.prompts[0].n_ids; i++)
        json_array_append_new(ids, json_integer(g.prompts[0].ids[i]));
    int n = g.n_prompts > 0 ? g.prompts[0].n_ids : 0;
    oai_gen_fini(&g);
    return oai_respond_json(s, c, R_TOKENIZE, 200,
                            json_pack("{s:i, s:i, s:o}", "count", n, "max_model_len",
                                      s->model.max_model_len, "tokens", ids));
}

/* POST /detokenize {"tokens": [ids]}: {"prompt": text}. */
static enum MHD_Result route_detokenize(struct oai_server *s, struct MHD_Connection *c,
                                        json_t *b)
{
    json_t *t = json_object_get(b, "tokens");
    if (!json_is_array(t))
        return oai_respond_error(s, c, R_DETOKENIZE, 400, "invalid_request_error", "tokens",
                                 NULL, "'tokens' must be an array of token ids");
    if (!s->model.tokenizer)
        return oai_respond_error(s, c, R_DETOKENIZE, 400, "invalid_request_error", NULL, NULL,
                                 "this model has no tokenizer");
    size_t n = json_array_size(t);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return MHD_NO;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(t, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= s->model.vocab_size) {
            free(ids);
            char msg[160];
            snprintf(msg, sizeof msg, "tokens[%zu] must be a token id in [0, %d)", i,
                     s->model.vocab_size);
            return oai_respond_error(s, c, R_DETOKENIZE, 400, "invalid_request_error", "tokens",
                                     NULL, msg);
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    char *text = NULL;
    size_t len = 0;
    char err[256];
    enum pgd_status st = pgd_tokenizer_decode(s->model.tokenizer, ids, n, false, &text, &len,
                                              err, sizeof err);
    free(ids);
    if (st != PGD_OK)
        return oai_respond_error(s, c, R_DETOKENIZE, 400, "invalid_request_error", "tokens",
                                 NULL, err);
    json_t *j = oai_json_str(text, len);
    free(text);
    return oai_respond_json(s, c, R_DETOKENIZE, 200, json_pack("{s:o}", "prompt", j));
}

/* ---- dispatch -------------------------------------------------------------------------- */

static bool authorized(struct oai_server *s, struct MHD_Connection *c)
{
    if (!s->cfg.api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t a = strlen(h), b = strlen(s->cfg.api_key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned char)h[i] ^ (unsigned char)s->cfg.api_key[i % (b ? b : 1)];
    return diff == 0;
}

static bool needs_post(enum oai_route r)
{
    return r == R_COMPLETIONS || r == R_CHAT || r == R_TOKENIZE || r == R_DETOKENIZE;
}

static enum MHD_Result dispatch(struct oai_server *s, struct MHD_Connection *c,
                                struct req_ctx *cx, const char *url, const char *method)
{
    enum oai_route r = cx->route;
    char msg[512];
    if (!strcmp(method, "OPTIONS") && s->cfg.cors_origins) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "",
                                                                    MHD_RESPMEM_PERSISTENT);
        if (resp) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        }
        return oai_queue(s, c, r, 204, resp);
    }
    if (r == R_OTHER) {
        snprintf(msg, sizeof msg, "Not found: %.400s", url);
        return oai_respond_error(s, c, r, 404, "not_found_error", NULL, NULL, msg);
    }
    bool post = !strcmp(method, "POST");
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if ((needs_post(r) && !post) || (!needs_post(r) && !get)) {
        snprintf(msg, sizeof msg, "Method %.32s is not allowed on %s (use %s)", method,
                 route_names[r], needs_post(r) ? "POST" : "GET");
        return oai_respond_error(s, c, r, 405, "invalid_request_error", NULL,
                                 "method_not_allowed", msg);
    }
    if (r != R_HEALTH && r != R_METRICS && !authorized(s, c))
        return oai_respond_error(s, c, r, 401, "invalid_request_error", NULL, "invalid_api_key",
                                 "Incorrect API key provided (send 'Authorization: Bearer "
                                 "<key>')");
    if (r == R_METRICS)
        return route_metrics(s, c);
    if (r == R_VERSION) {
        return oai_respond_json(s, c, r, 200,
                                json_pack("{s:s}", "version", PGD_VERSION_STRING));
    }
    if (!atomic_load(&s->attached) || atomic_load(&s->draining)) {
        const char *why = atomic_load(&s->draining) ? "The server is shutting down"
                                                    : "The model is loading; try again shortly";
        return oai_respond_error(s, c, r, 503, "service_unavailable", NULL, NULL, why);
    }
    if (r == R_HEALTH)
        return oai_respond(s, c, r, 200, "application/json", "{}", 2, false);
    if (r == R_MODELS)
        return route_models(s, c);

    struct oai_error be = { 0 };
    json_t *body = oai_body_json(cx->body.p, cx->body.len, &be);
    if (!body)
        return respond_err(s, c, r, &be);
    enum MHD_Result ret;
    if (r == R_TOKENIZE)
        ret = route_tokenize(s, c, body);
    else if (r == R_DETOKENIZE)
        ret = route_detokenize(s, c, body);
    else {
        struct oai_gen g;
        struct oai_error e = { 0 };
        if (!oai_gen_parse(s, r == R_CHAT, body, &g, &e)) {
            oai_gen_fini(&g);
            ret = respond_err(s, c, r, &e);
        } else
            ret = oai_gen_run(s, c, &g);
    }
    json_decref(body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    struct oai_server *s = cls;
    struct req_ctx *cx = *con_cls;
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx)
            return MHD_NO;
        *con_cls = cx;
        cx->route = route_of(url);
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        if (atomic_load(&s->draining)) {
            cx->answered = true;
            return oai_respond_error(s, c, cx->route, 503, "service_unavailable", NULL, NULL,
                                     "The server is shutting down");
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > s->cfg.max_body_bytes) {
                cx->too_big = cx->answered = true;
                char msg[160];
                snprintf(msg, sizeof msg, "The request body is larger than the limit of %zu "
                         "bytes", s->cfg.max_body_bytes);
                /* An early answer: libmicrohttpd does not read the body and closes. */
                return oai_respond_error(s, c, cx->route, 413, "invalid_request_error", NULL,
                                         "request_too_large", msg);
            }
        }
        return MHD_YES;
    }
    if (cx->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cx->too_big && cx->body.len + *upload_size > s->cfg.max_body_bytes) {
            cx->too_big = true;
            oai_buf_fini(&cx->body);
        }
        if (!cx->too_big)
            oai_buf_add(&cx->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cx->too_big) {
        char msg[160];
        snprintf(msg, sizeof msg, "The request body is larger than the limit of %zu bytes",
                 s->cfg.max_body_bytes);
        return oai_respond_error(s, c, cx->route, 413, "invalid_request_error", NULL,
                                 "request_too_large", msg);
    }
    if (cx->body.failed)
        return oai_respond_error(s, c, cx->route, 500, "internal_error", NULL, NULL,
                                 "out of memory reading the body");
    return dispatch(s, c, cx, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct oai_server *s = cls;
    struct req_ctx *cx = *con_cls;
    if (!cx)
        return;
    oai_buf_fini(&cx->body);
    free(cx);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    PGD_DEBUG("frontend.openai: libmicrohttpd: %s", buf);
}

enum pgd_status oai_server_start(struct oai_server *s, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int gai = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (gai != 0 || !ai)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: host '%s': %s", s->cfg.host, gai_strerror(gai));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.timeout_s,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)2 << 20,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_END);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (!s->daemon)
        return pgd_errf(err, errlen, PGD_ERR_IO,
                        "frontend.openai: cannot listen on %s port %d (in use, or not an "
                        "address of this machine)", s->cfg.host, s->cfg.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : s->cfg.port;
    snprintf(s->address, sizeof s->address, family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d",
             s->cfg.host, s->port);
    return PGD_OK;
}

/* Waits until no request is active or the deadline passes; true when none is left. */
static bool wait_idle(struct oai_server *s, const struct timespec *deadline)
{
    pthread_mutex_lock(&s->mu);
    while (s->active > 0) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, deadline) == ETIMEDOUT)
            break;
    }
    bool idle = s->active == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

static struct timespec deadline_in(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

void oai_server_shutdown(struct oai_server *s, int grace_ms)
{
    if (!s->daemon)
        return;
    atomic_store(&s->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    struct timespec dl = deadline_in(grace_ms > 0 ? grace_ms : 0);
    if (!wait_idle(s, &dl)) {
        pthread_mutex_lock(&s->mu);
        int left = s->active;
        pthread_mutex_unlock(&s->mu);
        PGD_WARN("frontend.openai: grace period over, aborting %d request(s)", left);
        atomic_store(&s->aborting, true);
        dl = deadline_in(10000);
        if (!wait_idle(s, &dl))
            PGD_ERROR("frontend.openai: requests still running after their abort");
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
