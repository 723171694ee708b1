/* Connections of the OpenAI frontend: accepting them, how many a server and one client
 * address may hold, and how long a connection may take to send a request head or sit idle.
 *
 * Accepting. Our acceptor thread accepts on the listening socket and hands each connection
 * to libmicrohttpd (MHD_add_connection), or refuses it: past max_connections open
 * connections, or past max_connections_per_ip of its address, it writes a whole
 * `503 Service Unavailable` with `Retry-After: 1` and an OpenAI error body and closes it,
 * without a thread or a slot of libmicrohttpd's. libmicrohttpd's own limit (the hard
 * limit) sits a reserve above max_connections for connections it has closed but not yet
 * reaped: it would close a connection past it without a word, which the acceptor never lets
 * happen. So a client opening many connections fills its own share, and every client gets
 * an HTTP answer, never a silent close. At shutdown the acceptor stops first: the listening
 * socket closes and new clients are refused by the kernel.
 *
 * Timeouts. libmicrohttpd's timeout is one of inactivity (nothing received or sent), which
 * a client sending a byte now and then never trips (slowloris). So:
 *   - a whole request head must arrive within header_timeout of the connection's accept or
 *     of its previous answer: the watchdog thread shuts down a connection past that deadline;
 *   - libmicrohttpd's inactivity timeout is header_timeout while a head or a body comes,
 *     timeout_keep_alive while the connection is idle after an answer, none while a
 *     request is generated (a long completion sends nothing until its end; a client that
 *     leaves is noticed by generate.c), and write_timeout while bytes of an answer wait for
 *     the client (a stream's clock restarts each time it has new bytes): a client that
 *     stops reading has its connection closed, which aborts its engine requests.
 * The watchdog and the shutdown touch a socket only under conn_mu and only while its
 * connection is registered: libmicrohttpd closes a socket after our CLOSED notification
 * (which takes conn_mu and unregisters it), so the descriptor cannot be reused under us. */
#include "plugins/frontend/openai/oai.h"
#include "runtime/base/clock.h"
#include <pagoda/log.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_MS 100            /* how often head deadlines are checked */

unsigned oai_conn_hard_limit(const struct oai_settings *cfg)
{
    return (unsigned)cfg->max_connections + 64u + (unsigned)cfg->max_connections / 8u;
}

static struct oai_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The peer's address as 16 bytes (IPv4 mapped into IPv6); false for a Unix socket. */
static bool peer_ip(const struct sockaddr *sa, unsigned char ip[16])
{
    if (sa->sa_family == AF_INET) {
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

void oai_conn_send_raw(int fd, const char *status, const char *extra_headers, const char *body)
{
    char msg[2048];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s", status, extra_headers, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof msg)
        return;
    if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        PGD_DEBUG("frontend.openai: answering %s: %s", status, strerror(errno));
}

/* Answers 503 on a fresh socket and closes it. What the client already sent is read first,
 * so that the close does not reset the connection under the answer. */
static void refuse(int fd, bool per_ip, int limit)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"error\":{\"message\":\"Too many connections%s (the limit is %d); retry later\","
             "\"type\":\"service_unavailable\",\"param\":null,\"code\":null}}",
             per_ip ? " from your address" : "", limit);
    oai_conn_send_raw(fd, "503 Service Unavailable", "Retry-After: 1\r\n", body);
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
    }
    close(fd);
}

/* Unlinks k from s->conns (under conn_mu). */
static void unlink_conn(struct oai_server *s, struct oai_conn *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    s->n_conns--;
}

/* Decides whether the connection fd from sa may be served: 0 (and it is registered, so the
 * next decision counts it), or 1 past the total, 2 past the per-address limit, -1 out of
 * memory (the refusals are counted). */
static int admit(struct oai_server *s, int fd, const struct sockaddr *sa)
{
    struct oai_conn *k = calloc(1, sizeof *k);
    if (!k)
        return -1;
    k->fd = fd;
    k->has_ip = peer_ip(sa, k->ip);
    int verdict = 0;
    pthread_mutex_lock(&s->conn_mu);
    if (s->n_conns >= s->cfg.max_connections)
        verdict = 1;
    else if (k->has_ip && s->per_ip > 0) {
        int same = 0;
        for (struct oai_conn *o = s->conns; o; o = o->next)
            same += o->has_ip && !memcmp(o->ip, k->ip, 16);
        if (same >= s->per_ip)
            verdict = 2;
    }
    s->refused_total += verdict != 0;
    s->refused_per_ip += verdict == 2;
    if (verdict == 0) {
        s->n_conns++;
        k->head_deadline_ms = pgd__now_ms() + (int64_t)s->cfg.header_timeout * 1000;
        k->next = s->conns;
        if (s->conns)
            s->conns->prev = k;
        s->conns = k;
    }
    pthread_mutex_unlock(&s->conn_mu);
    if (verdict)
        free(k);
    return verdict;
}

static void accept_ready(struct oai_server *s)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                static _Atomic int64_t last_warned;   /* once every 10 s, not per attempt */
                int64_t now = pgd__now_ms();
                if (now - atomic_load(&last_warned) >= 10000) {
                    atomic_store(&last_warned, now);
                    PGD_WARN("frontend.openai: accept: %s (raise the open-file limit or lower "
                             "max_connections)", strerror(errno));
                }
                poll(NULL, 0, 50);   /* let connections close rather than spin */
            }
            return;                  /* EAGAIN: all taken */
        }
        int verdict = admit(s, fd, (struct sockaddr *)&ss);
        if (verdict) {
            refuse(fd, verdict == 2, verdict == 2 ? s->per_ip : s->cfg.max_connections);
            continue;
        }
        if (MHD_add_connection(s->daemon, fd, (struct sockaddr *)&ss, sl) == MHD_YES)
            continue;
        /* libmicrohttpd closed fd. If it had taken the entry (STARTED), its CLOSED freed it;
         * an entry of this fd not taken is ours to drop (only this thread registers). */
        PGD_WARN("frontend.openai: libmicrohttpd refused a connection (it closed it)");
        pthread_mutex_lock(&s->conn_mu);
        struct oai_conn *o = s->conns;
        while (o && (o->attached || o->fd != fd))
            o = o->next;
        if (o)
            unlink_conn(s, o);
        pthread_mutex_unlock(&s->conn_mu);
        free(o);
    }
}

/* Accepts until oai_conn_stop_accepting writes to the wake pipe. */
static void *acceptor_main(void *arg)
{
    struct oai_server *s = arg;
    for (;;) {
        struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN },
                               { .fd = s->wake[0], .events = POLLIN } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (p[0].revents & POLLIN)
            accept_ready(s);
    }
    return NULL;
}

enum pgd_status oai_conn_start_accepting(struct oai_server *s, char *err, size_t errlen)
{
    if (pipe2(s->wake, O_CLOEXEC) != 0)
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: pipe: %s", strerror(errno));
    int e = pthread_create(&s->acceptor, NULL, acceptor_main, s);
    if (e != 0)
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: cannot start the acceptor: "
                        "%s", strerror(e));
    s->acceptor_started = true;
    return PGD_OK;
}

void oai_conn_stop_accepting(struct oai_server *s)
{
    if (s->acceptor_started) {
        if (write(s->wake[1], "x", 1) != 1)
            PGD_ERROR("frontend.openai: cannot wake the acceptor: %s", strerror(errno));
        pthread_join(s->acceptor, NULL);
        s->acceptor_started = false;
        accept_ready(s);           /* what came before the signal waits in the backlog: it
                                      gets its answer (503) rather than a reset */
    }
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0) {
            close(s->wake[i]);
            s->wake[i] = -1;
        }
    oai_listen_close(s);
}

/* Attaches the entry admit() registered for this connection's socket as its context. */
static void conn_started(struct oai_server *s, struct MHD_Connection *c, void **ctx)
{
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!fi)
        return;
    pthread_mutex_lock(&s->conn_mu);
    struct oai_conn *k = s->conns;
    while (k && (k->attached || k->fd != fi->connect_fd))
        k = k->next;
    if (k)
        k->attached = true;
    pthread_mutex_unlock(&s->conn_mu);
    *ctx = k;
}

static void conn_closed(struct oai_server *s, void **ctx)
{
    struct oai_conn *k = *ctx;
    if (!k)
        return;
    pthread_mutex_lock(&s->conn_mu);
    unlink_conn(s, k);
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

/* Sets the connection's phase: its head deadline, running, sending, and its inactivity
 * timeout. libmicrohttpd 0.9.75 restarts a connection's inactivity clock when its timeout
 * goes from 0 to another value, so setting 0 first makes the new timeout count from now. */
static void set_phase(struct oai_server *s, struct MHD_Connection *c, int64_t deadline_ms,
                      bool running, bool sending, unsigned inactivity_s)
{
    struct oai_conn *k = conn_of(c);
    if (k) {
        pthread_mutex_lock(&s->conn_mu);
        k->head_deadline_ms = deadline_ms;
        k->running = running;
        k->sending = sending;
        pthread_mutex_unlock(&s->conn_mu);
    }
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, inactivity_s);
}

void oai_conn_head_received(struct oai_server *s, struct MHD_Connection *c)
{
    set_phase(s, c, 0, false, false, (unsigned)s->cfg.header_timeout);
}

void oai_conn_running(struct oai_server *s, struct MHD_Connection *c)
{
    set_phase(s, c, 0, true, false, 0);
}

/* The write-stall timeout: libmicrohttpd's inactivity timeout counts from the last byte the
 * socket took (or received). While a stream's next bytes are being generated, the content
 * callback holds the connection's thread and nothing is checked; each time it hands over
 * bytes it calls this again, so the clock runs only while bytes wait for the client. */
void oai_conn_sending(struct oai_server *s, struct MHD_Connection *c)
{
    set_phase(s, c, 0, true, true, (unsigned)s->cfg.write_timeout);
}

void oai_conn_request_done(struct oai_server *s, struct MHD_Connection *c,
                           enum MHD_RequestTerminationCode toe)
{
    struct oai_conn *k = conn_of(c);
    if (k && toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
        pthread_mutex_lock(&s->conn_mu);
        bool stalled = k->sending;
        s->write_timeouts += stalled;
        pthread_mutex_unlock(&s->conn_mu);
        if (stalled)
            PGD_INFO("frontend.openai: a client read nothing of its answer for %d s "
                     "(write_timeout): its request is aborted and the connection closed",
                     s->cfg.write_timeout);
    }
    set_phase(s, c, pgd__now_ms() + (int64_t)s->cfg.header_timeout * 1000, false, false,
              (unsigned)s->cfg.timeout_keep_alive);
}

/* The end of the grace for requests not yet dispatched (their head came, their body was
 * coming or is still to be read): what their clients had sent by now is accepted work, what
 * they would send later is not. So only the receiving side is shut down. On Linux,
 * shutdown(SHUT_RD) wakes a thread waiting to read (POLLIN | POLLRDHUP) while the bytes
 * already queued stay readable; a recv returns 0 only once they are taken. A body that was
 * whole here is therefore read and dispatched, and answered on the intact sending side
 * (503: draining); a body still incomplete ends at end-of-file, on which libmicrohttpd
 * closes the connection (the upload is cut off, nothing is sent). Shutting down both sides,
 * as was done before, also cut the answers of requests that were whole in the socket but
 * whose connection's thread had not yet reached dispatch (on a loaded host, any number of
 * them): they got a closed connection instead of their 503. */
void oai_conn_close_uploads(struct oai_server *s)
{
    pthread_mutex_lock(&s->conn_mu);
    for (struct oai_conn *k = s->conns; k; k = k->next)
        if (!k->running && !k->head_deadline_ms)
            shutdown(k->fd, SHUT_RD);
    pthread_mutex_unlock(&s->conn_mu);
}

bool oai_conn_head_pending(struct oai_server *s)
{
    bool pending = false;
    pthread_mutex_lock(&s->conn_mu);
    for (struct oai_conn *k = s->conns; k && !pending; k = k->next) {
        int unread = 0;
        pending = !k->running && k->head_deadline_ms && ioctl(k->fd, FIONREAD, &unread) == 0 &&
                  unread > 0;
    }
    pthread_mutex_unlock(&s->conn_mu);
    return pending;
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
        int64_t now = pgd__now_ms();
        for (struct oai_conn *k = s->conns; k; k = k->next) {
            if (!k->head_deadline_ms || now < k->head_deadline_ms)
                continue;
            k->head_deadline_ms = 0;
            s->head_timeouts++;
            shutdown(k->fd, SHUT_RD);
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

void oai_conn_metrics(struct oai_server *s, struct pgd__buf *b, const char *model_name)
{
    const char *m = model_name;
    pthread_mutex_lock(&s->conn_mu);
    uint64_t open = (uint64_t)s->n_conns, per_ip = s->refused_per_ip;
    uint64_t total = s->refused_total - per_ip, heads = s->head_timeouts;
    uint64_t writes = s->write_timeouts;
    pthread_mutex_unlock(&s->conn_mu);
    oai_metric(b, "pagoda:http_connections", "gauge", "Open HTTP connections.", m, NULL, open);
    oai_metric(b, "pagoda:http_connections_refused_total", "counter",
               "Connections answered 503 at accept, past max_connections or "
               "max_connections_per_ip.", m, "limit=\"total\"", total);
    oai_metric_more(b, "pagoda:http_connections_refused_total", m, "limit=\"per_ip\"", per_ip);
    oai_metric(b, "pagoda:http_header_timeouts_total", "counter",
               "Connections closed because a request head did not arrive within "
               "header_timeout.", m, NULL, heads);
    oai_metric(b, "pagoda:http_write_timeouts_total", "counter",
               "Requests aborted and their connections closed because the client took no "
               "byte of its answer for write_timeout seconds.", m, NULL, writes);
}
