/* The REPL's remote backend: an OpenAI-compatible server (pagoda's, vLLM's) through libcurl.
 * A turn is POST {url}/chat/completions with "stream": true; the answer arrives as
 * server-sent events (`data: {chunk}` lines, then `data: [DONE]`). Ctrl-C closes the
 * transfer (the server aborts the request when its client goes). /stats reads the server's
 * Prometheus /metrics (pagoda and vLLM both serve it beside /v1). */
#include "plugins/frontend/repl/repl.h"
#include "runtime/base/clock.h"
#include "runtime/base/buf.h"
#include "runtime/base/sse.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_backend {
    struct repl_backend base;
    char *url;                        /* without a trailing '/', e.g. http://h:p/v1 */
    char *model;                      /* the "model" field */
    struct curl_slist *headers;       /* Content-Type, Authorization */
};

/* One transfer: the event-stream parser and what the turn produced. */
struct transfer {
    struct pgd__sse sse;                /* the text/event-stream parser (`pagoda bench serve`'s) */
    struct pgd__buf body;             /* the whole body when the status is not 200 */
    long status;
    repl_text_fn on_text;
    void *ctx;
    volatile sig_atomic_t *cancel;
    struct repl_result *res;
    double t0;
    bool done;
};

static double now_s(void)
{
    return (double)pgd__now_ms() * 1e-3;
}

/* One event's data: the first choice's delta text, and usage when sent. */
static int on_event(void *arg, const char *data, size_t len)
{
    struct transfer *t = arg;
    if (!strcmp(data, "[DONE]")) {
        t->done = true;
        return 0;
    }
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!j)
        return 0;
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "delta"), "content");
    if (json_is_string(content) && json_string_length(content) > 0) {
        if (t->res->ttft_s < 0)
            t->res->ttft_s = now_s() - t->t0;
        if (t->res->completion_tokens < 0)
            t->res->completion_tokens = 0;
        t->res->completion_tokens++;  /* one chunk a token until usage says otherwise */
        t->on_text(t->ctx, json_string_value(content), json_string_length(content));
    }
    json_t *usage = json_object_get(j, "usage");
    if (json_is_object(usage)) {
        json_t *pt = json_object_get(usage, "prompt_tokens");
        json_t *ct = json_object_get(usage, "completion_tokens");
        if (json_is_integer(pt))
            t->res->prompt_tokens = (int)json_integer_value(pt);
        if (json_is_integer(ct))
            t->res->completion_tokens = (int)json_integer_value(ct);
    }
    json_decref(j);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    if (!t->status)
        t->status = 200;
    if (t->status != 200)
        return pgd__buf_append(&t->body, p, len) ? len : 0;
    return pgd__sse_feed(&t->sse, p, len, on_event, t) == 0 ? len : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    int code;
    if (size * n > 9 && !strncmp(p, "HTTP/", 5) && sscanf(p, "HTTP/%*s %d", &code) == 1)
        t->status = code;
    return size * n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct transfer *t = arg;
    return t->cancel && *t->cancel ? 1 : 0;   /* non-zero closes the transfer */
}

static json_t *request_body(struct http_backend *b, json_t *messages,
                            const struct repl_sampling *sp)
{
    json_t *r = json_pack("{s:s, s:O, s:b, s:{s:b}}", "model", b->model, "messages", messages,
                          "stream", 1, "stream_options", "include_usage", 1);
    if (!r)
        return NULL;
    if (sp->has & REPL_HAS_TEMPERATURE)
        json_object_set_new(r, "temperature", json_real(sp->temperature));
    if (sp->has & REPL_HAS_TOP_P)
        json_object_set_new(r, "top_p", json_real(sp->top_p));
    if (sp->has & REPL_HAS_TOP_K)
        json_object_set_new(r, "top_k", json_integer(sp->top_k));
    if (sp->has & REPL_HAS_MAX_TOKENS)
        json_object_set_new(r, "max_tokens", json_integer(sp->max_tokens));
    if (sp->has & REPL_HAS_SEED)
        json_object_set_new(r, "seed", json_integer((json_int_t)sp->seed));
    if (sp->ignore_eos)
        json_object_set_new(r, "ignore_eos", json_true());
    return r;
}

/* The error of a non-200 answer: its "error.message" when it is OpenAI-shaped. */
static enum pgd_status status_error(struct transfer *t, const char *url, char *err,
                                    size_t errlen)
{
    json_t *j = t->body.p ? json_loads(t->body.p, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"),
                                                        "message"));
    pgd_errf(err, errlen, PGD_ERR_IO, "%s: HTTP %ld: %s", url, t->status,
             msg ? msg : t->body.p ? t->body.p : "");
    json_decref(j);
    return PGD_ERR_IO;
}

static enum pgd_status hb_chat(struct repl_backend *base, json_t *messages,
                               const struct repl_sampling *sp, repl_text_fn on_text, void *ctx,
                               volatile sig_atomic_t *cancel, struct repl_result *res,
                               char *err, size_t errlen)
{
    struct http_backend *b = (struct http_backend *)base;
    *res = (struct repl_result){ .prompt_tokens = -1, .completion_tokens = -1, .ttft_s = -1 };
    struct transfer t = { .on_text = on_text, .ctx = ctx, .cancel = cancel, .res = res,
                          .t0 = now_s() };
    char url[1024];
    snprintf(url, sizeof url, "%s/chat/completions", b->url);
    json_t *body = request_body(b, messages, sp);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    CURL *c = text ? curl_easy_init() : NULL;
    if (!c) {
        free(text);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, b->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    free(text);
    if (cc == CURLE_OK && t.status == 200)
        pgd__sse_finish(&t.sse, on_event, &t);   /* a server that closed after its last event */
    res->total_s = now_s() - t.t0;
    enum pgd_status st = PGD_OK;
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        res->aborted = true;
    else if (cc != CURLE_OK)
        st = pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", url, curl_easy_strerror(cc));
    else if (t.status != 200)
        st = status_error(&t, url, err, errlen);
    else if (!t.done)
        st = pgd_errf(err, errlen, PGD_ERR_IO, "%s: the stream ended without [DONE]", url);
    pgd__sse_fini(&t.sse);
    pgd__buf_fini(&t.body);
    return st;
}

/* GET url into *out (malloc'd); the HTTP status in *status. */
static enum pgd_status http_get(struct http_backend *b, const char *url, char **out,
                                long *status, char *err, size_t errlen)
{
    struct transfer t = { .status = 0 };
    CURL *c = curl_easy_init();
    if (!c)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    t.status = -1;                    /* collect the body whatever the status */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, b->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        pgd__buf_fini(&t.body);
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", url, curl_easy_strerror(cc));
    }
    *out = t.body.p ? pgd__buf_steal(&t.body, NULL) : strdup("");
    return *out ? PGD_OK : pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
}

/* A gauge's value from Prometheus text: the line "NAME VALUE" or "NAME{labels} VALUE" (the
 * first series of that name: pagoda and vLLM label theirs with model_name, one model). */
static bool metric(const char *text, const char *name, double *v)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) || (p[n] != ' ' && p[n] != '{'))
            continue;
        const char *val = p + n;
        if (*val == '{' && !(val = strchr(val, '}')))
            return false;
        return sscanf(val + 1, "%lf", v) == 1;
    }
    return false;
}

static enum pgd_status hb_stats(struct repl_backend *base, char *out, size_t outlen)
{
    struct http_backend *b = (struct http_backend *)base;
    char url[1024], err[512];
    size_t n = strlen(b->url);
    if (n >= 3 && !strcmp(b->url + n - 3, "/v1"))
        n -= 3;
    snprintf(url, sizeof url, "%.*s/metrics", (int)n, b->url);
    char *text = NULL;
    long status = 0;
    if (http_get(b, url, &text, &status, err, sizeof err)) {
        snprintf(out, outlen, "server: %s", err);
        return PGD_ERR_IO;
    }
    double running, waiting, usage;
    bool ok = status == 200 && metric(text, "pagoda:num_requests_running", &running) &&
              metric(text, "pagoda:num_requests_waiting", &waiting) &&
              metric(text, "pagoda:kv_cache_usage_perc", &usage);
    if (!ok)
        ok = status == 200 && metric(text, "vllm:num_requests_running", &running) &&
             metric(text, "vllm:num_requests_waiting", &waiting) &&
             metric(text, "vllm:kv_cache_usage_perc", &usage);
    if (ok)
        snprintf(out, outlen, "server: %.0f running, %.0f waiting, KV cache in use %.1f%%",
                 running, waiting, 100.0 * usage);
    else
        snprintf(out, outlen, "server: %s: HTTP %ld, no engine gauges", url, status);
    free(text);
    return ok ? PGD_OK : PGD_ERR_IO;
}

static const char *hb_name(struct repl_backend *base)
{
    return ((struct http_backend *)base)->model;
}

static void hb_destroy(struct repl_backend *base)
{
    struct http_backend *b = (struct http_backend *)base;
    curl_slist_free_all(b->headers);
    free(b->url);
    free(b->model);
    free(b);
}

/* The server's first model (GET {url}/models), for requests when none was named. */
static enum pgd_status first_model(struct http_backend *b, char *err, size_t errlen)
{
    char url[1024], *text = NULL;
    long status = 0;
    snprintf(url, sizeof url, "%s/models", b->url);
    enum pgd_status st = http_get(b, url, &text, &status, err, errlen);
    if (st)
        return st;
    json_t *j = json_loads(text, 0, NULL);
    const char *id = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "data"), 0), "id"));
    if (status != 200 || !id)
        st = pgd_errf(err, errlen, PGD_ERR_IO, "%s: HTTP %ld: no model listed (%.200s)", url,
                      status, text);
    else if (!(b->model = strdup(id)))
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    json_decref(j);
    free(text);
    return st;
}

enum pgd_status repl_http_backend(const struct repl_settings *s, struct repl_backend **out,
                                  char *err, size_t errlen)
{
    if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.repl: url = '%s' is not an http:// or https:// URL", s->url);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct http_backend *b = calloc(1, sizeof *b);
    if (!b || !(b->url = strdup(s->url)) || (s->model && !(b->model = strdup(s->model)))) {
        if (b)
            free(b->url);
        free(b);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    }
    size_t n = strlen(b->url);
    while (n > 0 && b->url[n - 1] == '/')
        b->url[--n] = '\0';
    b->base = (struct repl_backend){ .chat = hb_chat, .engine_stats = hb_stats,
                                     .name = hb_name, .destroy = hb_destroy };
    b->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (s->api_key) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->api_key);
        b->headers = curl_slist_append(b->headers, auth);
    }
    enum pgd_status st = b->headers ? PGD_OK : pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    if (st == PGD_OK && !b->model)
        st = first_model(b, err, errlen);
    if (st != PGD_OK) {
        hb_destroy(&b->base);
        return st;
    }
    *out = &b->base;
    return PGD_OK;
}
