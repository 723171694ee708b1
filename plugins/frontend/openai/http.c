/* The HTTP side of the OpenAI frontend: a libmicrohttpd daemon with one thread per
 * connection, the routes, the checks made as soon as a request head arrives (method, route,
 * API key, framing, declared length: all answered before any body byte is read), request
 * bodies (413 past the limit), CORS, the HTTP counters of /metrics, and the graceful
 * shutdown (stop accepting, drain, abort).
 *
 * Every answer to a request that reached a route is an OpenAI JSON error or a success,
 * malformed chunk framing included (libmicrohttpd parses it alone: see
 * answer_framing_error); libmicrohttpd's own (HTML) answers remain only for what it refuses
 * before calling us (a malformed request line, head or Content-Length, a head over its
 * buffer). Answers due in the middle of a body (413, framing errors) are written straight
 * on the socket, as libmicrohttpd 0.9.75 cannot queue one there. */
#include "plugins/frontend/openai/oai.h"
#include "runtime/base/clock.h"
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
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *const route_names[R_COUNT] = {
    [R_COMPLETIONS] = "/v1/completions", [R_CHAT] = "/v1/chat/completions",
    [R_MODELS] = "/v1/models", [R_HEALTH] = "/health", [R_VERSION] = "/version",
    [R_METRICS] = "/metrics", [R_TOKENIZE] = "/tokenize", [R_DETOKENIZE] = "/detokenize",
    [R_RESPONSES] = "/v1/responses", [R_PING] = "/ping", [R_EMBEDDINGS] = "/v1/embeddings",
    [R_OTHER] = "other",
};

/* What the access log line says of a request. */
struct access_rec {
    struct timespec t0;            /* its first byte */
    double ttft;                   /* seconds to its first generated token; < 0: none */
    char method[16], path[128], version[16], client[64], id[64];
    int status;                    /* of the first response queued; 0: none */
    int prompt_tokens, completion_tokens;   /* -1: not a generation */
};

/* Per request (MHD's con_cls): the route and the body read so far. */
struct req_ctx {
    struct MHD_Connection *conn;
    enum oai_route route;
    bool has_body;                 /* the head announced a body */
    bool too_big;                  /* the body passed max_body_bytes (its 413 went raw) */
    bool answered;                 /* a response was queued before the body was read */
    bool answered_raw;             /* an answer was written straight on the socket in the
                                      middle of the body: nothing more may be sent */
    bool head_deferred;            /* no body: the head is judged when the request completes */
    size_t dropped;                /* body bytes past the limit, read and dropped */
    struct pgd__buf body;
    struct access_rec acc;
    char *model_id;                /* GET /v1/models/{id}: the id (owned) */
};

/* The request the calling thread is handling (one connection a thread: see oai.h). */
static _Thread_local struct req_ctx *current_req;

static enum oai_route route_of(const char *url)
{
    for (int r = 0; r < R_OTHER; r++)
        if (!strcmp(url, route_names[r]))
            return (enum oai_route)r;
    if (!strncmp(url, "/v1/models/", 11) && url[11])
        return R_MODELS;            /* /v1/models/{id}: one model */
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

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

void oai_access_note_usage(const char *request_id, int prompt_tokens, int completion_tokens)
{
    struct req_ctx *cx = current_req;
    if (!cx)
        return;
    snprintf(cx->acc.id, sizeof cx->acc.id, "%s", request_id);
    cx->acc.prompt_tokens = prompt_tokens;
    cx->acc.completion_tokens = completion_tokens;
}

void oai_access_note_first_token(void)
{
    struct req_ctx *cx = current_req;
    if (cx && cx->acc.ttft < 0)
        cx->acc.ttft = seconds_since(&cx->acc.t0);
}

static void access_start(struct req_ctx *cx, struct MHD_Connection *c, const char *url,
                         const char *method, const char *version)
{
    struct access_rec *a = &cx->acc;
    clock_gettime(CLOCK_MONOTONIC, &a->t0);
    a->ttft = -1;
    a->prompt_tokens = a->completion_tokens = -1;
    snprintf(a->method, sizeof a->method, "%s", method);
    snprintf(a->path, sizeof a->path, "%s", url);
    snprintf(a->version, sizeof a->version, "%s", version);
    snprintf(a->id, sizeof a->id, "-");
    snprintf(a->client, sizeof a->client, "-");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        char host[INET6_ADDRSTRLEN] = "", port[16] = "";
        socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                : sizeof(struct sockaddr_in);
        if (getnameinfo(ci->client_addr, len, host, sizeof host, port, sizeof port,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            snprintf(a->client, sizeof a->client, "%s:%s", host, port);
    }
}

/* The access log line, e.g.
 *   access: 127.0.0.1:50312 "POST /v1/completions HTTP/1.1" 200 prompt_tokens=6
 *   completion_tokens=12 ttft=0.004s total=0.031s id=cmpl-1f2e... */
static void access_log(const struct oai_server *s, const struct access_rec *a)
{
    if (!s->cfg.access_log)
        return;
    char gen[96] = "", ttft[32] = "";
    if (a->prompt_tokens >= 0)
        snprintf(gen, sizeof gen, " prompt_tokens=%d completion_tokens=%d", a->prompt_tokens,
                 a->completion_tokens);
    if (a->ttft >= 0)
        snprintf(ttft, sizeof ttft, " ttft=%.3fs", a->ttft);
    PGD_INFO("access: %s \"%s %s %s\" %d%s%s total=%.3fs id=%s", a->client, a->method, a->path,
             a->version, a->status, gen, ttft, seconds_since(&a->t0), a->id);
}

enum MHD_Result oai_queue(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                             int status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    if (current_req && !current_req->acc.status)
        current_req->acc.status = status;
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
    if (ret == MHD_YES) {
        oai_server_count(s, r, status);
        oai_conn_sending(s, c);    /* the client has write_timeout to take it */
    }
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

struct MHD_Response *oai_error_response(const char *type, const char *param, const char *code,
                                        const char *msg)
{
    json_t *e = oai_error_json(type, param, code, msg);
    char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    if (!text)
        return NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
                                                                MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return resp;
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

/* One model card of GET /v1/models: every served name has the same root, limits and
 * defaults. */
static json_t *model_card(struct oai_server *s, const char *id)
{
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:s, s:n, s:i}", "id", id, "object", "model",
                          "created", (json_int_t)s->started, "owned_by", "pagoda", "root",
                          s->model.root ? s->model.root : s->model_name, "parent",
                          "max_model_len", s->model.max_model_len);
    /* pagoda: the sampling defaults a request gets for the fields it leaves out. */
    json_t *dflt = m && s->model.default_sampling_json
                       ? json_loads(s->model.default_sampling_json, 0, NULL) : NULL;
    if (dflt)
        json_object_set_new(m, "default_sampling_params", dflt);
    if (m)
        oai_embed_model_fields(s, m);
    return m;
}

/* GET /v1/models: one entry per served name (as vLLM lists them), the first being the name
 * responses report; GET /v1/models/{id}: that entry, or 404. */
static enum MHD_Result route_models(struct oai_server *s, struct MHD_Connection *c,
                                    const char *id)
{
    int n = s->cfg.n_served_model_names ? s->cfg.n_served_model_names : 1;
    const char *names[n];
    for (int i = 0; i < n; i++)
        names[i] = s->cfg.n_served_model_names ? s->cfg.served_model_names[i] : s->model_name;
    if (id) {
        for (int i = 0; i < n; i++)
            if (!strcmp(id, names[i]))
                return oai_respond_json(s, c, R_MODELS, 200, model_card(s, id));
        char msg[512];
        snprintf(msg, sizeof msg, "The model `%.200s` does not exist (this server serves "
                 "`%.200s`)", id, s->model_name);
        return oai_respond_error(s, c, R_MODELS, 404, "invalid_request_error", "model",
                                 "model_not_found", msg);
    }
    json_t *data = json_array();
    for (int i = 0; data && i < n; i++) {
        json_t *m = model_card(s, names[i]);
        if (!m || json_array_append_new(data, m)) {
            json_decref(data);
            data = NULL;
        }
    }
    return oai_respond_json(s, c, R_MODELS, 200,
                            data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL);
}

void oai_metric_more(struct pgd__buf *b, const char *name, const char *model_name,
                     const char *labels, uint64_t value)
{
    pgd__buf_appendf(b, "%s{model_name=\"%s\"%s%s} %llu\n", name, model_name, labels ? "," : "",
                     labels ? labels : "", (unsigned long long)value);
}

void oai_metric_head(struct pgd__buf *b, const char *name, const char *type, const char *help)
{
    pgd__buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void oai_metric(struct pgd__buf *b, const char *name, const char *type, const char *help,
                const char *model_name, const char *labels, uint64_t value)
{
    oai_metric_head(b, name, type, help);
    oai_metric_more(b, name, model_name, labels, value);
}

static void metrics_http(struct oai_server *s, struct pgd__buf *b)
{
    /* Every series carries model_name, as the engine's do. */
    char name[256] = "";
    if (atomic_load(&s->attached))
        for (size_t i = 0, o = 0; s->model_name[i] && o + 3 < sizeof name; i++) {
            char ch = s->model_name[i];
            if (ch == '\\' || ch == '"' || ch == '\n')
                name[o++] = '\\';
            name[o++] = ch == '\n' ? 'n' : ch;
            name[o] = '\0';
        }
    pthread_mutex_lock(&s->mu);
    oai_metric_head(b, "pagoda:http_requests_total", "counter",
                    "HTTP requests answered, by route and status code.");
    for (int r = 0; r < R_COUNT; r++)
        for (int i = 0; i < OAI_STATUS_SLOTS && s->counts[r][i].status; i++) {
            char labels[96];
            snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route_names[r],
                     s->counts[r][i].status);
            oai_metric_more(b, "pagoda:http_requests_total", name, labels, s->counts[r][i].n);
        }
    uint64_t active = (uint64_t)s->active, aborted = s->streams_aborted;
    pthread_mutex_unlock(&s->mu);
    oai_metric(b, "pagoda:http_requests_in_progress", "gauge",
               "HTTP requests being handled (this one included).", name, NULL, active);
    oai_metric(b, "pagoda:http_streams_aborted_total", "counter",
               "Requests aborted because their client went away or stopped reading, or the "
               "server shut down.", name, NULL, aborted);
    oai_conn_metrics(s, b, name);
}

static enum MHD_Result route_metrics(struct oai_server *s, struct MHD_Connection *c)
{
    struct pgd__buf b = { 0 };
    if (atomic_load(&s->attached)) {
        char *text = NULL;
        size_t len = 0;
        if (pgd_engine_metrics_text(s->model.engine, &text, &len) == PGD_OK)
            pgd__buf_append(&b, text, len);
        free(text);
    }
    metrics_http(s, &b);
    if (b.failed) {
        pgd__buf_fini(&b);
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
    json_object_del(copy, "return_token_strs");
    json_object_set_new(copy, "tool_choice", json_string("none"));   /* tools: rendered only */
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
    json_t *strs = json_is_true(json_object_get(b, "return_token_strs"))
                       ? oai_token_strs(s, g.n_prompts ? g.prompts[0].ids : NULL, n) : NULL;
    oai_gen_fini(&g);
    json_t *out = json_pack("{s:i, s:i, s:o}", "count", n, "max_model_len",
                            s->model.max_model_len, "tokens", ids);
    if (strs)
        json_object_set_new(out, "token_strs", strs);
    return oai_respond_json(s, c, R_TOKENIZE, 200, out);
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

/* ---- the head: answered before any body byte is read ---------------------------------- */

static bool needs_post(enum oai_route r)
{
    return r == R_COMPLETIONS || r == R_CHAT || r == R_TOKENIZE || r == R_DETOKENIZE ||
           r == R_RESPONSES || r == R_EMBEDDINGS;
}

static bool needs_key(enum oai_route r)
{
    return r != R_HEALTH && r != R_METRICS && r != R_OTHER;
}

/* Queues an answer before (or instead of) the body: marks the request answered (its body,
 * if any, is then never buffered; libmicrohttpd closes the connection after it). */
static enum MHD_Result answer_early(struct oai_server *s, struct MHD_Connection *c,
                                    struct req_ctx *cx, int status, struct MHD_Response *resp)
{
    enum MHD_Result ret = oai_queue(s, c, cx->route, status, resp);
    if (ret == MHD_YES)            /* libmicrohttpd sends it once this call returns */
        cx->answered = true;
    return ret;
}

static enum MHD_Result error_early(struct oai_server *s, struct MHD_Connection *c,
                                   struct req_ctx *cx, int status, const char *type,
                                   const char *code, const char *msg)
{
    return answer_early(s, c, cx, status, oai_error_response(type, NULL, code, msg));
}

/* Queues the 413 for a body over the limit (on the head, mid-body or at its end). */
static enum MHD_Result too_large(struct oai_server *s, struct MHD_Connection *c,
                                 struct req_ctx *cx)
{
    char msg[160];
    snprintf(msg, sizeof msg, "The request body is larger than the limit of %zu bytes",
             s->cfg.max_body_bytes);
    return error_early(s, c, cx, 413, "invalid_request_error", "request_too_large", msg);
}

/* The body's framing: Transfer-Encoding must be exactly "chunked" (anything else: 501, as
 * RFC 9112 asks), never beside Content-Length (a request-smuggling shape: 400), and a
 * declared length must be a number within the limit (413). False when the framing is fine,
 * else true: the answer was queued and *ret holds its result. */
static bool framing_refused(struct oai_server *s, struct MHD_Connection *c, struct req_ctx *cx,
                            enum MHD_Result *ret)
{
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    char msg[256];
    if (te && strcasecmp(te, "chunked")) {
        snprintf(msg, sizeof msg, "Transfer-Encoding '%.64s' is not supported (only chunked)",
                 te);
        struct MHD_Response *resp = oai_error_response("invalid_request_error", NULL,
                                                        "not_implemented", msg);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        *ret = answer_early(s, c, cx, 501, resp);
        return true;
    }
    if (te && cl) {
        *ret = error_early(s, c, cx, 400, "invalid_request_error", "invalid_framing",
                           "A request may not have both Transfer-Encoding and Content-Length");
        return true;
    }
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || end == cl || n > s->cfg.max_body_bytes) {
            *ret = too_large(s, c, cx);
            return true;
        }
    }
    return false;
}

/* Everything the head alone decides: draining, CORS preflight, route, method, API key,
 * framing. Returns true with *ret set when it answered. */
static bool head_answered(struct oai_server *s, struct MHD_Connection *c, struct req_ctx *cx,
                          const char *url, const char *method, enum MHD_Result *ret)
{
    enum oai_route r = cx->route;
    char msg[512];
    if (atomic_load(&s->draining)) {
        *ret = error_early(s, c, cx, 503, "service_unavailable", NULL,
                           "The server is shutting down");
        return true;
    }
    if (!strcmp(method, "OPTIONS") && s->cfg.cors_origins) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "",
                                                                    MHD_RESPMEM_PERSISTENT);
        if (resp) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        }
        *ret = answer_early(s, c, cx, 204, resp);
        return true;
    }
    if (r == R_OTHER) {
        snprintf(msg, sizeof msg, "Not found: %.400s", url);
        *ret = error_early(s, c, cx, 404, "not_found_error", NULL, msg);
        return true;
    }
    bool post = !strcmp(method, "POST");
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (r != R_PING && ((needs_post(r) && !post) || (!needs_post(r) && !get))) {
        snprintf(msg, sizeof msg, "Method %.32s is not allowed on %s (use %s)", method,
                 route_names[r], needs_post(r) ? "POST" : "GET");
        *ret = error_early(s, c, cx, 405, "invalid_request_error", "method_not_allowed", msg);
        return true;
    }
    if (needs_key(r) &&
        !oai_auth_ok(&s->cfg, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))) {
        struct MHD_Response *resp = oai_error_response(
            "invalid_request_error", NULL, "invalid_api_key",
            "Incorrect API key provided (send 'Authorization: Bearer <key>')");
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        *ret = answer_early(s, c, cx, 401, resp);
        return true;
    }
    return framing_refused(s, c, cx, ret);
}

/* ---- dispatch: the whole request is here ------------------------------------------------ */

static enum MHD_Result dispatch(struct oai_server *s, struct MHD_Connection *c,
                                struct req_ctx *cx)
{
    enum oai_route r = cx->route;
    oai_conn_running(s, c);
    if (r == R_METRICS)
        return route_metrics(s, c);
    if (r == R_VERSION) {
        return oai_respond_json(s, c, r, 200,
                                json_pack("{s:s}", "version", PGD_VERSION_STRING));
    }
    if (!atomic_load(&s->attached) || atomic_load(&s->draining)) {
        const char *why = atomic_load(&s->draining) ? "The server is shutting down"
                                                    : "The model is loading (on a GPU: "
                                                      "weights, profiling, KV cache, CUDA "
                                                      "graph capture); try again shortly";
        return oai_respond_error(s, c, r, 503, "service_unavailable", NULL, NULL, why);
    }
    if (r == R_HEALTH)
        return oai_respond(s, c, r, 200, "application/json", "{}", 2, false);
    if (r == R_MODELS)
        return route_models(s, c, cx->model_id);
    if (r == R_PING)               /* SageMaker's health check, GET or POST, as vLLM */
        return oai_respond(s, c, r, 200, "application/json", "{}", 2, false);

    struct oai_error be = { 0 };
    json_t *body = oai_body_json(cx->body.p, cx->body.len, &be);
    if (!body)
        return respond_err(s, c, r, &be);
    enum MHD_Result ret;
    if (r == R_TOKENIZE)
        ret = route_tokenize(s, c, body);
    else if (r == R_RESPONSES)
        ret = oai_route_responses(s, c, body);
    else if (r == R_DETOKENIZE)
        ret = route_detokenize(s, c, body);
    else if (r == R_EMBEDDINGS)
        ret = oai_embeddings_run(s, c, body);
    else if (oai_embed_refuses(s, c, r, &ret)) {
        /* Generation on a server of task embed: its 400 is queued. */
    } else {
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

/* Writes an OpenAI error straight on the connection's socket, with `Connection: close`: the
 * answers due in the middle of a body, which libmicrohttpd 0.9.75 cannot queue there.
 * Counted and logged like a queued answer; nothing else is sent on this request after it. */
static void answer_raw(struct oai_server *s, struct req_ctx *cx, int status,
                       const char *status_line, const char *code, const char *msg)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(cx->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    json_t *e = oai_error_json("invalid_request_error", NULL, code, msg);
    char *body = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    const char *origin = cors_origin(s, cx->conn);   /* a configured one: short */
    char cors[300] = "";
    if (origin)
        snprintf(cors, sizeof cors, "Access-Control-Allow-Origin: %.200s\r\n%s", origin,
                 strcmp(origin, "*") ? "Vary: Origin\r\n" : "");
    if (ci && body)
        oai_conn_send_raw(ci->connect_fd, status_line, cors, body);
    free(body);
    cx->answered_raw = true;
    oai_server_count(s, cx->route, status);
    if (!cx->acc.status)
        cx->acc.status = status;
}

/* A body going on past this many times the limit is cut off (the connection closed). */
#define DROP_FACTOR 8

/* A piece of the body: kept while within the limit. At the first byte past it, the 413 is
 * written at once (answer_raw) and what was kept is freed; the rest of the body is read and
 * dropped, so that a client that sends its whole body before reading still gets its answer,
 * and when it ends the connection closes (its answer went already). A body going on past
 * DROP_FACTOR times the limit is cut off. MHD_NO closes the connection. */
static enum MHD_Result body_piece(struct oai_server *s, struct req_ctx *cx, const char *data,
                                  size_t n)
{
    if (!cx->too_big && cx->body.len + n > s->cfg.max_body_bytes) {
        pgd__buf_fini(&cx->body);
        cx->too_big = true;
        char msg[160];
        snprintf(msg, sizeof msg, "The request body is larger than the limit of %zu bytes",
                 s->cfg.max_body_bytes);
        answer_raw(s, cx, 413, "413 Content Too Large", "request_too_large", msg);
    }
    if (!cx->too_big) {
        pgd__buf_append(&cx->body, data, n);
        return MHD_YES;
    }
    cx->dropped += n;
    return cx->dropped / DROP_FACTOR < s->cfg.max_body_bytes ? MHD_YES : MHD_NO;
}

/* libmicrohttpd parses chunked framing alone and answers its errors itself, with HTML,
 * after our first call for the request: a bad chunk size (400), a chunk size over 64 bits
 * (413), a chunk-size line (extensions included) longer than its read buffer (500: "the
 * application did not take the data"), trailer fields over it (431). It logs each such
 * answer first ("Error processing request (HTTP response code is %u ...") through our
 * logger, on the connection's own thread: there the request's JSON answer is written
 * instead, and the socket's sending side shut down, so that libmicrohttpd's page never
 * goes out (its send fails and it closes the connection). */
static void answer_framing_error(struct oai_server *s, struct req_ctx *cx, unsigned status)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(cx->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    if (!cx->answered_raw) {
        char msg[200];
        if (status == 500) {       /* our handler takes every byte: the line did not fit */
            snprintf(msg, sizeof msg, "A chunk-size line (with its chunk extensions) does "
                     "not fit in the server's %u KiB connection buffer", OAI_CONN_MEMORY >> 10);
            answer_raw(s, cx, 400, "400 Bad Request", "invalid_chunked_encoding", msg);
        } else if (status == 413)
            answer_raw(s, cx, 413, "413 Content Too Large", "request_too_large",
                       "A chunk size does not fit in 64 bits");
        else if (status == 431)
            answer_raw(s, cx, 431, "431 Request Header Fields Too Large",
                       "trailer_too_large", "The trailer fields of the chunked body do not "
                       "fit in the server's buffer");
        else
            answer_raw(s, cx, 400, "400 Bad Request", "invalid_chunked_encoding",
                       "The chunked encoding of the body is malformed (RFC 9112 7.1)");
    }
    shutdown(ci->connect_fd, SHUT_WR);
}

/* Whether the request announces a body (a Content-Length other than 0, or any
 * Transfer-Encoding). */
static bool has_body(struct MHD_Connection *c)
{
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    return te || (cl && strcmp(cl, "0") != 0);
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
        cx->conn = c;
        cx->route = route_of(url);
        if (cx->route == R_MODELS && url[10] == '/' && !(cx->model_id = strdup(url + 11)))
            return MHD_NO;
        access_start(cx, c, url, method, version);
        current_req = cx;
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        oai_conn_head_received(s, c);
        /* HTTP/1.1 requires Host (RFC 9112 3.2): a request without one is refused, and the
         * connection closes after the answer. */
        if (!strcmp(version, MHD_HTTP_VERSION_1_1) &&
            !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
            return error_early(s, c, cx, 400, "invalid_request_error", "missing_host",
                               "An HTTP/1.1 request must carry a Host header");
        /* A request without a body is judged when it completes, one call later: an answer
         * queued before a request is complete makes libmicrohttpd close the connection
         * after it, which would cut keep-alive and pipelined requests for a plain 404.
         * Only a body is worth refusing on the head (auth first, framing, size). */
        if (!has_body(c)) {
            cx->head_deferred = true;
            return MHD_YES;
        }
        cx->has_body = true;
        enum MHD_Result ret;
        return head_answered(s, c, cx, url, method, &ret) ? ret : MHD_YES;
    }
    if (cx->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (cx->head_deferred && !*upload_size) {
        cx->head_deferred = false;
        enum MHD_Result ret;
        if (head_answered(s, c, cx, url, method, &ret))
            return ret;
    }
    if (*upload_size) {
        enum MHD_Result ret = body_piece(s, cx, upload, *upload_size);
        *upload_size = 0;
        return ret;
    }
    if (cx->answered_raw)          /* the body ended; its answer went: close */
        return MHD_NO;
    if (cx->body.failed) {
        oai_conn_running(s, c);
        return oai_respond_error(s, c, cx->route, 500, "internal_error", NULL, NULL,
                                 "out of memory reading the body");
    }
    return dispatch(s, c, cx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct oai_server *s = cls;
    struct req_ctx *cx = *con_cls;
    if (!cx)
        return;
    access_log(s, &cx->acc);
    if (current_req == cx)
        current_req = NULL;
    oai_conn_request_done(s, c, toe);
    pgd__buf_fini(&cx->body);
    free(cx->model_id);
    free(cx);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* How libmicrohttpd 0.9.75 logs an error it is about to answer itself (status, then text). */
#define MHD_ERROR_ANSWER_LOG "Error processing request (HTTP response code is %u"

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct oai_server *s = cls;
    struct req_ctx *cx = current_req;   /* this thread's request, when one is under way */
    if (cx && cx->has_body && !cx->answered &&
        !strncmp(fmt, MHD_ERROR_ANSWER_LOG, strlen(MHD_ERROR_ANSWER_LOG))) {
        va_list aq;
        va_copy(aq, ap);
        unsigned status = va_arg(aq, unsigned);
        va_end(aq);
        answer_framing_error(s, cx, status);
    }
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    PGD_DEBUG("frontend.openai: libmicrohttpd: %s", buf);
}

enum pgd_status oai_server_start(struct oai_server *s, char *err, size_t errlen)
{
    enum pgd_status st = oai_listen_open(s, err, errlen);
    if (st == PGD_OK)
        st = oai_conn_start(s, err, errlen);
    if (st != PGD_OK)
        return st;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, oai_conn_notify, s,
        MHD_OPTION_CONNECTION_LIMIT, oai_conn_hard_limit(&s->cfg),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.header_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)OAI_CONN_MEMORY,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)2 << 20,
        MHD_OPTION_END);
    if (!s->daemon)
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: cannot start the HTTP "
                        "server on %s", s->address);
    return oai_conn_start_accepting(s, err, errlen);
}

/* Waits until no request is active, the deadline passes or the grace is cut (when
 * cut_ok); true when none is left. */
static bool wait_idle(struct oai_server *s, const struct timespec *deadline, bool cut_ok)
{
    pthread_mutex_lock(&s->mu);
    while (s->active > 0 && !(cut_ok && s->cut_grace)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, deadline) == ETIMEDOUT)
            break;
    }
    bool idle = s->active == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

/* Waits up to ms until no request is active and no connection holds an unread request
 * head; true when so. */
static bool settle(struct oai_server *s, int ms)
{
    struct timespec end = pgd__deadline_after(CLOCK_REALTIME, ms);
    for (;;) {
        struct timespec step = pgd__deadline_after(CLOCK_REALTIME, 5);
        bool last = step.tv_sec > end.tv_sec ||
                    (step.tv_sec == end.tv_sec && step.tv_nsec >= end.tv_nsec);
        if (wait_idle(s, last ? &end : &step, false) && !oai_conn_head_pending(s))
            return true;
        if (last)
            return false;
    }
}

/* Shutdown: (1) stop accepting: connections already in the listen backlog are taken (and
 * answered 503), then the listening socket closes and the kernel refuses new clients; a
 * request arriving on an open connection gets 503; (2) let running requests finish for the
 * grace (a second call cuts it); (3) abort the rest: plain requests get a 503, streams an
 * error event and [DONE] (generate.c); a request not dispatched yet is answered 503 when
 * its client had sent it whole, and cut off when its body was still coming (conn.c's
 * oai_conn_close_uploads: the bytes received count, later ones do not); (4) once every
 * request was answered and no connection holds an unread head, stop the daemon (which
 * closes the idle connections). */
void oai_server_shutdown(struct oai_server *s, int grace_ms)
{
    if (atomic_exchange(&s->shutting_down, true)) {
        pthread_mutex_lock(&s->mu);     /* a second call: end the first one's grace now */
        s->cut_grace = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->daemon) {
        atomic_store(&s->draining, true);
        oai_conn_stop_accepting(s);
        struct timespec dl = pgd__deadline_after(CLOCK_REALTIME, grace_ms > 0 ? grace_ms : 0);
        bool idle = wait_idle(s, &dl, true);
        if (!idle) {
            pthread_mutex_lock(&s->mu);
            int left = s->active;
            pthread_mutex_unlock(&s->mu);
            PGD_WARN("frontend.openai: grace period over, aborting %d request(s)", left);
            atomic_store(&s->aborting, true);
            oai_conn_close_uploads(s);
        }
        if (!settle(s, idle ? 2000 : 10000))
            PGD_ERROR("frontend.openai: requests still running at the end of the shutdown");
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
    oai_conn_stop_accepting(s);
    oai_conn_stop(s);
}
