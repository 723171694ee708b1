/* The timed run of `pagoda bench serve` (see driver.h): arrivals, the concurrency limit,
 * one libcurl multi handle driving every stream, and the per-chunk timing of each stream.
 *
 * Timing: each token chunk is stamped in the write callback, i.e. when curl hands over the
 * bytes after epoll wakes up; the loop does nothing else between waits, so the stamp
 * trails the socket by the parsing of the other streams' chunks of the same wake-up.
 * What counts as a token chunk follows vLLM's client: on /v1/completions every chunk with a
 * non-empty "choices" (its text may be empty, for special tokens); on chat, chunks whose
 * delta carries non-empty content (or reasoning_content): the role-only first chunk and an
 * empty closing chunk are not tokens. */
#include "config.h"
#include "tools/bench/serve/driver.h"
#include "runtime/base/clock.h"
#include "runtime/base/mem.h"
#include "runtime/base/sse.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define ERR_BODY_MAX 4096     /* bytes of a refused request's body kept for its message */

/* One request in flight. */
struct xfer {
    struct bs_result *res;
    CURL *h;
    struct pgd__sse sse;
    bool chat, keep_text;
    double t0, last;          /* absolute: sent, last token chunk */
    long status;              /* 0 until the status line arrived */
    bool done;                /* "data: [DONE]" seen */
    char *stream_err;         /* the first error found in the stream (owned) */
    struct pgd__buf body;     /* a non-200 answer's first ERR_BODY_MAX bytes */
    bool oom;
};

static void set_err(char **dst, const char *fmt, const char *a, const char *b)
{
    if (*dst)
        return;
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    if ((*dst = malloc(n)))
        snprintf(*dst, n, fmt, a, b);
}

static int push_itl(struct bs_result *r, double v)
{
    if (!pgd__array_reserve(r->itl, r->cap_itl, (size_t)r->n_itl + 1))
        return -1;
    r->itl[r->n_itl++] = v;
    return 0;
}

/* The text a chunk adds, or NULL when the chunk is no token (see the top of the file). */
static const json_t *chunk_text(const json_t *c0, bool chat)
{
    if (!chat)
        return json_object_get(c0, "text");
    const json_t *d = json_object_get(c0, "delta");
    const json_t *t = json_object_get(d, "content");
    if (json_is_string(t) && json_string_length(t) > 0)
        return t;
    t = json_object_get(d, "reasoning_content");
    return json_is_string(t) && json_string_length(t) > 0 ? t : NULL;
}

/* One SSE event of a 200 stream. */
static int on_event(void *ctx, const char *data, size_t len)
{
    struct xfer *x = ctx;
    double now = pgd__now_s();
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        x->done = true;
        return 0;
    }
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON and the text of a real token (a byte-level
     * tokenizer's byte 0, which random weights sample now and then). */
    json_t *j = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    if (!j) {
        char head[81];
        snprintf(head, sizeof head, "%.*s", (int)(len < 80 ? len : 80), data);
        set_err(&x->stream_err, "the stream has an event that is not JSON: %s%s", head, "");
        return 0;
    }
    const json_t *e = json_object_get(j, "error");
    if (e) {
        const char *m = bs_error_message(j);
        set_err(&x->stream_err, "error in the stream: %s%s", m ? m : "(no message)", "");
    }
    const json_t *ch = json_object_get(j, "choices");
    if (json_is_array(ch) && json_array_size(ch) > 0) {
        const json_t *t = chunk_text(json_array_get(ch, 0), x->chat);
        if (!x->chat || t) {
            struct bs_result *r = x->res;
            if (r->chunks == 0)
                r->ttft_s = now - x->t0;
            else if (push_itl(r, now - x->last))
                x->oom = true;
            x->last = now;
            r->chunks++;
            if (x->keep_text && json_is_string(t) &&
                !pgd__buf_append(&r->text, json_string_value(t), json_string_length(t)))
                x->oom = true;
        }
    }
    const json_t *u = json_object_get(j, "usage");
    const json_t *ct = json_object_get(u, "completion_tokens");
    if (json_is_integer(ct)) {
        x->res->output_tokens = (int)json_integer_value(ct);
        x->res->usage_seen = true;
    }
    json_decref(j);
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (!x->status)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200) {            /* keep the start of the error body for its message */
        size_t keep = x->body.len < ERR_BODY_MAX ? ERR_BODY_MAX - x->body.len : 0;
        pgd__buf_append(&x->body, ptr, keep < n ? keep : n);  /* a failure only loses it */
        return n;
    }
    if (pgd__sse_feed(&x->sse, ptr, n, on_event, x) || x->oom)
        return 0;                      /* out of memory: curl fails the transfer */
    return n;
}

/* Starts request i: a new easy handle added to the multi handle. */
static int start(const struct bs_run_params *p, CURLM *m, struct xfer *x, int i,
                 struct bs_result *res, double t_start)
{
    *x = (struct xfer){ .res = &res[i], .chat = p->chat, .keep_text = p->keep_text };
    if (!(x->h = curl_easy_init()))
        return -1;
    bs_conn_setup(p->conn, x->h, p->path);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, p->bodies[i]);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    x->t0 = x->last = pgd__now_s();
    res[i].start_s = x->t0 - t_start;
    if (curl_multi_add_handle(m, x->h) != CURLM_OK) {
        curl_easy_cleanup(x->h);
        x->h = NULL;
        return -1;
    }
    return 0;
}

/* Request done: its outcome into its result; the handle is removed and freed. */
static void finish(CURLM *m, struct xfer *x, CURLcode cc)
{
    struct bs_result *r = x->res;
    double now = pgd__now_s();
    if (cc == CURLE_OK && x->status == 200)
        pgd__sse_finish(&x->sse, on_event, x);
    r->status = x->status;
    r->latency_s = now - x->t0;
    if (!r->usage_seen)
        r->output_tokens = r->chunks;
    char code[32];
    snprintf(code, sizeof code, "%ld", x->status);
    if (x->oom)
        set_err(&r->error, "out of memory while reading the stream%s%s", "", "");
    else if (cc != CURLE_OK)
        set_err(&r->error, "%s%s", curl_easy_strerror(cc),
                x->status == 200 ? " (the stream broke off)" : "");
    else if (x->status != 200) {
        const char *body = x->body.p;   /* what was kept, even after a failed append */
        json_t *j = body ? json_loads(body, 0, NULL) : NULL;
        const char *msg = bs_error_message(j);
        set_err(&r->error, "HTTP %s: %s", code, msg ? msg : body ? body : "");
        json_decref(j);
    } else if (x->stream_err) {
        r->error = x->stream_err;
        x->stream_err = NULL;
    } else if (!x->done)
        set_err(&r->error, "the stream ended before \"data: [DONE]\"%s%s", "", "");
    else if (r->chunks == 0)
        set_err(&r->error, "the stream carried no token%s%s", "", "");
    r->success = !r->error;
    curl_multi_remove_handle(m, x->h);
    curl_easy_cleanup(x->h);
    pgd__sse_fini(&x->sse);
    free(x->stream_err);
    pgd__buf_fini(&x->body);
    *x = (struct xfer){ 0 };
}

static void progress(const struct bs_run_params *p, int done, int *shown)
{
    int pct = (int)(100L * done / p->n);
    if (!p->progress || (pct < *shown + 10 && done < p->n))
        return;
    *shown = pct;
    fprintf(stderr, "\r%d/%d requests done (%d%%)%s", done, p->n, pct, done == p->n ? "\n" : "");
}

/* The event loop's state: curl tells us which sockets to watch (socket callback) and when
 * to call it back without socket activity (timer callback); epoll waits on both. Unlike
 * curl_multi_perform, which visits every transfer at each wake-up, curl_multi_socket_action
 * touches only the transfers whose sockets are ready, so a wake-up costs what it delivers
 * even with a thousand streams open. */
struct loop {
    int epfd;
    double timer_at;     /* absolute time curl wants a timeout call; < 0: none */
};

static int on_socket(CURL *h, curl_socket_t fd, int what, void *ud, void *sockp)
{
    struct loop *l = ud;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event ev = { .events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                                        (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                              .data.fd = fd };
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) && errno == ENOENT)
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
    struct loop *l = ud;
    l->timer_at = timeout_ms < 0 ? -1 : pgd__now_s() + timeout_ms / 1e3;
    return 0;
}

/* Collects the finished transfers; returns how many. */
static int reap(const struct bs_run_params *p, CURLM *m, int done, int *shown, double *t_end)
{
    CURLMsg *msg;
    int left, n = 0;
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE) {
            struct xfer *xf;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&xf);
            finish(m, xf, msg->data.result);
            n++;
            *t_end = pgd__now_s();
            progress(p, done + n, shown);
        }
    return n;
}

/* Milliseconds epoll may sleep: until curl's timer or the next arrival that can start. */
static int wait_ms(const struct bs_run_params *p, const struct loop *l, double t_start,
                   int next, bool slot_free)
{
    double now = pgd__now_s(), until = now + 1.0;
    if (l->timer_at >= 0 && l->timer_at < until)
        until = l->timer_at;
    if (next < p->n && slot_free) {
        double a = p->arrival_s ? t_start + p->arrival_s[next] : now;
        until = a < until ? a : until;
    }
    double ms = (until - now) * 1e3;
    return ms <= 0 ? 0 : (int)ceil(ms);
}

int bs_run(const struct bs_run_params *p, struct bs_result *res, double *duration_s, char *err,
           size_t errlen)
{
    int slots = p->max_concurrency > 0 && p->max_concurrency < p->n ? p->max_concurrency : p->n;
    struct xfer *x = calloc((size_t)slots, sizeof *x);
    struct epoll_event *evs = calloc((size_t)slots + 1, sizeof *evs);
    struct loop l = { .epfd = epoll_create1(EPOLL_CLOEXEC), .timer_at = -1 };
    CURLM *m = curl_multi_init();
    int rc = -1, next = 0, active = 0, done = 0, shown = -10, running;
    if (!x || !evs || !m || l.epfd < 0) {
        snprintf(err, errlen, "out of memory (or no epoll)");
        goto out;
    }
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, &l);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, &l);
    /* Keep a connection for every slot alive between requests. */
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)slots);
    double t_start = pgd__now_s(), t_end = t_start;
    while (done < p->n) {
        double now = pgd__now_s();
        while (next < p->n && active < slots &&
               (!p->arrival_s || t_start + p->arrival_s[next] <= now)) {
            int s = 0;
            while (x[s].h)
                s++;
            if (start(p, m, &x[s], next, res, t_start)) {
                snprintf(err, errlen, "cannot start request %d: out of memory", next);
                goto out;
            }
            next++;
            active++;
        }
        int ne = epoll_wait(l.epfd, evs, slots + 1, wait_ms(p, &l, t_start, next,
                                                             active < slots));
        if (ne < 0 && errno != EINTR) {
            snprintf(err, errlen, "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < ne; i++) {
            int what = (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_IN : 0) |
                       (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (evs[i].events & EPOLLERR ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(m, evs[i].data.fd, what, &running);
        }
        if (l.timer_at >= 0 && pgd__now_s() >= l.timer_at) {
            l.timer_at = -1;
            curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        int n = reap(p, m, done, &shown, &t_end);
        done += n;
        active -= n;
    }
    *duration_s = t_end - t_start;
    rc = 0;
out:
    for (int s = 0; x && s < slots; s++)
        if (x[s].h)
            finish(m, &x[s], CURLE_ABORTED_BY_CALLBACK);
    curl_multi_cleanup(m);
    if (l.epfd >= 0)
        close(l.epfd);
    free(evs);
    free(x);
    return rc;
}

void bs_result_fini(struct bs_result *r)
{
    free(r->error);
    free(r->itl);
    pgd__buf_fini(&r->text);
    *r = (struct bs_result){ 0 };
}
