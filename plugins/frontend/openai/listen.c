/* The OpenAI frontend's listening socket, made here rather than by libmicrohttpd so that
 * what it promises is ours to state:
 *   - TCP on host:port with SO_REUSEADDR only (a restart may bind while old connections sit
 *     in TIME_WAIT) and never SO_REUSEPORT: a second server on a busy port fails at once with
 *     a message naming the port, instead of the kernel splitting the traffic between them;
 *   - host "::" (or any IPv6 address) listens dual-stack (IPV6_V6ONLY off), so IPv4 clients
 *     come in as ::ffff:a.b.c.d;
 *   - uds: a Unix socket at a path (as vLLM's --uds); a stale socket file left by a dead
 *     server is replaced, a live one (something accepts on it) or any other file is not.
 * conn.c's acceptor accepts on it and hands connections to libmicrohttpd; it is closed
 * here at shutdown. */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/log.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 4096               /* the kernel caps it at net.core.somaxconn */

static enum pgd_status open_uds(struct oai_server *s, char *err, size_t errlen)
{
    const char *path = s->cfg.uds;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: uds '%s' is longer than %zu bytes", path,
                        sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return pgd_errf(err, errlen, PGD_ERR_IO,
                            "frontend.openai: uds '%s' exists and is not a socket", path);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live)
            return pgd_errf(err, errlen, PGD_ERR_IO,
                            "frontend.openai: uds '%s' is in use (another server listens "
                            "there)", path);
        unlink(path);              /* a dead server's socket file */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, BACKLOG)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: cannot listen on uds '%s': "
                        "%s", path, strerror(e));
    }
    s->listen_fd = fd;
    s->port = 0;
    snprintf(s->address, sizeof s->address, "unix:%s", path);
    return PGD_OK;
}

/* A TCP socket bound to ai and listening; -1 and errno on failure. */
static int bind_tcp(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

enum pgd_status oai_listen_open(struct oai_server *s, char *err, size_t errlen)
{
    if (s->cfg.uds)
        return open_uds(s, err, errlen);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int gai = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (gai != 0 || !ai)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: host '%s': %s", s->cfg.host, gai_strerror(gai));
    int fd = bind_tcp(ai);
    int e = errno, family = ai->ai_family;
    freeaddrinfo(ai);
    if (fd < 0) {
        if (e == EADDRINUSE)
            return pgd_errf(err, errlen, PGD_ERR_IO,
                            "frontend.openai: port %d on %s is already in use (another server "
                            "listens there; pick another --port)", s->cfg.port, s->cfg.host);
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: cannot listen on %s port %d: "
                        "%s", s->cfg.host, s->cfg.port, strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    s->port = s->cfg.port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    snprintf(s->address, sizeof s->address,
             family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d", s->cfg.host, s->port);
    return PGD_OK;
}

void oai_listen_close(struct oai_server *s)
{
    if (s->listen_fd < 0)
        return;
    close(s->listen_fd);
    s->listen_fd = -1;
    if (s->cfg.uds)
        unlink(s->cfg.uds);
}
