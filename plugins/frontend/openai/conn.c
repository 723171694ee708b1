/* Connections of the OpenAI frontend: how many a server and one client address may hold, and
 * how long a connection may take to send a request head or sit idle.
 *
 * Limits. libmicrohttpd holds at most max_connections plus a small reserve
 * (oai_conn_hard_limit); past that it stops accepting and new clients wait in the kernel's
 * backlog. A connection accepted past max_connections, or past max_connections_per_ip open
 * connections of its address, is refused here, at accept: it is written a complete
 * `503 Service Unavailable` with `Retry-After: 1` and an OpenAI error body, and shut down at
 * once. A refused connection thus holds its slot of the reserve for microseconds, so that
 * many slow clients can fill their own share, never the reserve: every client gets an
 * HTTP answer, never a silent close.
 *
 * Timeouts. libmicrohttpd's timeout is one of inactivity (nothing received or sent), which
 * a client sending a byte now and then never trips (slowloris). So:
 *   - a whole request head must arrive within header_timeout of the connection's accept or
 *     of its previous answer: the watchdog thread shuts down a connection past that deadline;
 *   - libmicrohttpd's inactivity timeout is header_timeout while a head or a body comes,
 *     timeout_keep_alive while the connection is idle after an answer, and none while a
 *     request is generated (a long completion sends nothing until its end; a client that
 *     leaves is noticed by generate.c).
 * The watchdog and the shutdown touch a socket only under conn_mu and only while its
 * connection is registered: libmicrohttpd closes a socket after our CLOSED notification
 * (which takes conn_mu and unregisters it), so the descriptor cannot be reused under us. */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/log.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define WATCHDOG_MS 100            /* how often head deadlines are checked */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

unsigned oai_conn_hard_limit(const struct oai_settings *cfg)
{
    return (unsigned)cfg->max_connections + 8u + (unsigned)cfg->max_connections / 16u;
}

static struct oai_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The peer's address as 16 bytes (IPv4 mapped into IPv6); false for a Unix socket. */
static bool peer_ip(struct MHD_Connection *c, unsigned char ip[16])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ci->client_addr;
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &a->sin_addr, 4);
        return true;
    }
    if (ci->client_addr->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Writes a whole 503 on a fresh socket (its send buffer is empty: it fits) and shuts it
 * down; libmicrohttpd then sees the end of the stream and closes the connection. */
static void refuse(int fd, bool per_ip, int limit)
{
    char body[256], msg[512];
    int bn = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"Too many connections%s (the limit is %d); "
                      "retry later\",\"type\":\"service_unavailable\",\"param\":null,"
                      "\"code\":null}}", per_ip ? " from your address" : "", limit);
    int mn = snprintf(msg, sizeof msg,
                      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                      "Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                      bn, body);
    if (send(fd, msg, (size_t)mn, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        PGD_DEBUG("frontend.openai: refusing a connection: %s", strerror(errno));
    shutdown(fd, SHUT_RDWR);
}

static void conn_started(struct oai_server *s, struct MHD_Connection *c, void **ctx)
{
    struct oai_conn *k = calloc(1, sizeof *k);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!k || !ci) {
        free(k);                   /* unregistered: no limit, no deadline (memory is out) */
        return;
    }
    k->fd = ci->connect_fd;
    k->has_ip = peer_ip(c, k->ip);
    bool per_ip = false;
    pthread_mutex_lock(&s->conn_mu);
    int same = 0;
    for (struct oai_conn *o = s->conns; k->has_ip && s->per_ip > 0 && o; o = o->next)
        same += !o->refused && o->has_ip && !memcmp(o->ip, k->ip, 16);
    if (s->n_conns >= s->cfg.max_connections)
        k->refused = true;
    else if (k->has_ip && s->per_ip > 0 && same >= s->per_ip)
        k->refused = per_ip = true;
    if (k->refused) {
        s->refused_total++;
        s->refused_per_ip += per_ip;
    } else {
        s->n_conns++;
        k->head_deadline_ms = now_ms() + (int64_t)s->cfg.header_timeout * 1000;
    }
    k->next = s->conns;
    if (s->conns)
        s->conns->prev = k;
    s->conns = k;
    if (k->refused)
        refuse(k->fd, per_ip, per_ip ? s->per_ip : s->cfg.max_connections);
    pthread_mutex_unlock(&s->conn_mu);
    *ctx = k;
}

static void conn_closed(struct oai_server *s, void **ctx)
{
    struct oai_conn *k = *ctx;
    if (!k)
        return;
    pthread_mutex_lock(&s->conn_mu);
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    if (!k->refused)
        s->n_conns--;
    pthread_mutex_unlock(&s->conn_mu);
    free(k);
    *ctx = NULL;
}

void oai_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        conn_started(cls, c, socket_context);
    else
        conn_closed(cls, socket_context);
}

bool oai_conn_refused(struct MHD_Connection *c)
{
    struct oai_conn *k = conn_of(c);
    return k && k->refused;        /* set before the connection's thread starts */
}

/* Sets the connection's phase: its head deadline, running, and its inactivity timeout. */
static void set_phase(struct oai_server *s, struct MHD_Connection *c, int64_t deadline_ms,
                      bool running, unsigned inactivity_s)
{
    struct oai_conn *k = conn_of(c);
    if (k) {
        pthread_mutex_lock(&s->conn_mu);
        k->head_deadline_ms = deadline_ms;
        k->running = running;
        pthread_mutex_unlock(&s->conn_mu);
    }
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, inactivity_s);
}

void oai_conn_head_received(struct oai_server *s, struct MHD_Connection *c)
{
    set_phase(s, c, 0, false, (unsigned)s->cfg.header_timeout);
}

void oai_conn_running(struct oai_server *s, struct MHD_Connection *c)
{
    set_phase(s, c, 0, true, 0);
}

void oai_conn_request_done(struct oai_server *s, struct MHD_Connection *c)
{
    set_phase(s, c, now_ms() + (int64_t)s->cfg.header_timeout * 1000, false,
              (unsigned)s->cfg.timeout_keep_alive);
}

void oai_conn_close_idle(struct oai_server *s)
{
    pthread_mutex_lock(&s->conn_mu);
    for (struct oai_conn *k = s->conns; k; k = k->next)
        if (!k->running && !k->refused)
            shutdown(k->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->conn_mu);
}

/* Shuts down every connection whose request head is overdue. */
static void *watchdog_main(void *arg)
{
    struct oai_server *s = arg;
    pthread_mutex_lock(&s->conn_mu);
    while (!s->watchdog_stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += WATCHDOG_MS * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->conn_cv, &s->conn_mu, &t);
        int64_t now = now_ms();
        for (struct oai_conn *k = s->conns; k; k = k->next) {
            if (k->refused || !k->head_deadline_ms || now < k->head_deadline_ms)
                continue;
            k->head_deadline_ms = 0;
            s->head_timeouts++;
            shutdown(k->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&s->conn_mu);
    return NULL;
}

/* Raises the soft limit on open files to what the connection limit needs (each connection
 * is a socket; 64 more for the model's files, the engine and the listener). */
static void raise_nofile(const struct oai_settings *cfg)
{
    rlim_t need = (rlim_t)oai_conn_hard_limit(cfg) + 64;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        PGD_WARN("frontend.openai: the open-file limit (%llu) is below what %d connections "
                 "need (%llu): raise it (ulimit -n) or lower max_connections",
                 (unsigned long long)rl.rlim_cur, cfg->max_connections,
                 (unsigned long long)need);
}

enum pgd_status oai_conn_start(struct oai_server *s, char *err, size_t errlen)
{
    s->per_ip = s->cfg.max_connections_per_ip >= 0 ? s->cfg.max_connections_per_ip
                                                    : (s->cfg.max_connections + 1) / 2;
    raise_nofile(&s->cfg);
    int e = pthread_create(&s->watchdog, NULL, watchdog_main, s);
    if (e != 0)
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: cannot start the "
                        "connection watchdog: %s", strerror(e));
    s->watchdog_started = true;
    return PGD_OK;
}

void oai_conn_stop(struct oai_server *s)
{
    if (!s->watchdog_started)
        return;
    pthread_mutex_lock(&s->conn_mu);
    s->watchdog_stop = true;
    pthread_cond_broadcast(&s->conn_cv);
    pthread_mutex_unlock(&s->conn_mu);
    pthread_join(s->watchdog, NULL);
    s->watchdog_started = false;
}

void oai_conn_metrics(struct oai_server *s, struct oai_buf *b)
{
    pthread_mutex_lock(&s->conn_mu);
    oai_buf_addf(b, "# HELP pagoda:http_connections Open HTTP connections (refused ones not "
                    "counted).\n# TYPE pagoda:http_connections gauge\n"
                    "pagoda:http_connections %d\n", s->n_conns);
    oai_buf_addf(b, "# HELP pagoda:http_connections_refused_total Connections answered 503 at "
                    "accept, past max_connections or max_connections_per_ip.\n"
                    "# TYPE pagoda:http_connections_refused_total counter\n"
                    "pagoda:http_connections_refused_total{limit=\"total\"} %llu\n"
                    "pagoda:http_connections_refused_total{limit=\"per_ip\"} %llu\n",
                 (unsigned long long)(s->refused_total - s->refused_per_ip),
                 (unsigned long long)s->refused_per_ip);
    oai_buf_addf(b, "# HELP pagoda:http_header_timeouts_total Connections closed because a "
                    "request head did not arrive within header_timeout.\n"
                    "# TYPE pagoda:http_header_timeouts_total counter\n"
                    "pagoda:http_header_timeouts_total %llu\n",
                 (unsigned long long)s->head_timeouts);
    pthread_mutex_unlock(&s->conn_mu);
}
