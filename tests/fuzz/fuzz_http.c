/* Fuzz target: the HTTP request path of the OpenAI frontend, through libmicrohttpd, down to
 * the engine. The frontend is started once through its plugin ops (on 127.0.0.1, a free
 * port, an API key, CORS origins, a 64 KiB body limit, at most 8 choices a request) and
 * attached to a real engine on the tiny-chat fixture (a 64-token context, so that no request
 * runs long). An input is the raw bytes a client sends on one connection (request lines,
 * headers, bodies, chunked encoding, pipelined requests); then the client half-closes and
 * reads until the server closes.
 *
 * So this covers libmicrohttpd's parser and everything of http.c and generate.c: routing,
 * methods, auth, CORS, body limits, /tokenize, /detokenize, /metrics, completions and chat
 * as JSON and as SSE streams. (fuzz_request covers the JSON decoding much faster, without a
 * socket.) libmicrohttpd has no entry point that parses a buffer, so a real loopback
 * connection it is.
 *
 * Checked: the server never crashes (ASan/UBSan), answers each input within 10 s or closes,
 * and whatever it writes starts with an HTTP/1.x status line. */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "plugins/frontend/openai/oai.h"
#include "runtime/base/clock.h"
#include <pagoda/plugin.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_S 10                /* longest wait for the server to answer and close */

/* plugin.c, compiled into this program (a plugin exports it; no header declares it). */
const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi);

static const struct pgd_frontend_ops *ops;
static void *fe;
static struct pgd_engine *engine;
static int port;
static bool show_answers;          /* $FUZZ_SHOW_ANSWERS: print each answer's start */

static void stop_server(void)
{
    if (fe) {
        ops->shutdown(fe, 0);
        ops->destroy(fe);
    }
    pgd_engine_destroy(engine);
    fe = NULL;
    engine = NULL;
}

/* The engine on the fixture; aborts when it cannot start (no fuzz finding). */
static struct pgd_engine *start_engine(char *err, size_t errlen)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.model_dir = fuzz_tiny_chat_dir();
    const char *plugins = getenv("PGD_TEST_PLUGIN_DIRS");
    p.plugin_path = plugins && *plugins ? plugins : PGD_BUILD_PLUGIN_DIRS;
    p.num_blocks = 64;
    p.block_size = 16;
    p.max_num_seqs = 16;
    p.max_model_len = 64;
    struct pgd_engine *e = NULL;
    if (pgd_engine_create(&p, &e, err, errlen)) {
        fprintf(stderr, "fuzz_http: cannot start the engine: %s\n", err);
        abort();
    }
    return e;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    char err[512] = "";
    engine = start_engine(err, sizeof err);
    fuzz_chat_init();
    ops = pagoda_plugin_init(PGD_ABI_VERSION)->frontend;
    const struct pgd_setting settings[] = {
        { "host", "127.0.0.1" }, { "port", "0" }, { "api_key", "fuzz-key" },
        { "max_body_bytes", "65536" }, { "max_connections", "64" }, { "timeout_keep_alive", "3" },
        { "max_n", "8" }, { "cors_origins", "http://a.example, http://b.example" },
    };
    const struct pgd_frontend_model model = {
        .struct_size = sizeof model, .engine = engine, .tokenizer = pgd_engine_tokenizer(engine),
        .name = "tiny-chat", .root = fuzz_tiny_chat_dir(),
        .max_model_len = pgd_engine_max_model_len(engine),
        .vocab_size = pgd_engine_vocab_size(engine), .render_chat = fuzz_chat_render,
    };
    if (ops->create(settings, sizeof settings / sizeof settings[0], &fe, err, sizeof err) ||
        ops->attach(fe, &model, err, sizeof err)) {
        fprintf(stderr, "fuzz_http: cannot start the frontend: %s\n", err);
        abort();
    }
    const char *addr = ops->address(fe);       /* "http://127.0.0.1:PORT" */
    port = atoi(strrchr(addr, ':') + 1);
    show_answers = getenv("FUZZ_SHOW_ANSWERS") != NULL;
    atexit(stop_server);
    return 0;
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct timeval tv = { .tv_usec = 200000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && errno == EINTR) {   /* a signal: the connect goes on; wait for it */
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        while (poll(&p, 1, 3000) < 0 && errno == EINTR)
            ;
        int e = 0;
        socklen_t l = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
        rc = e ? -1 : 0;
        errno = e;
    }
    FUZZ_CHECK(rc == 0, "connect: %s", strerror(errno));
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = connect_server();
    /* The server may answer early (413, 401) and close: a failed send is fine. */
    for (size_t off = 0; off < size;) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char head[24];
    size_t got = 0;
    char buf[16384];
    /* libFuzzer's timer signal interrupts a blocking recv: wait on a deadline instead. */
    int64_t deadline = pgd__now_ms() + ANSWER_S * 1000;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            break;
        bool waiting = n < 0 && (errno == EINTR || errno == EAGAIN);
        if (waiting && pgd__now_ms() < deadline)
            continue;
        FUZZ_CHECK(n > 0, "no answer and no close within %d s (%s)", ANSWER_S,
                   strerror(errno));
        if (got < sizeof head) {
            size_t k = (size_t)n < sizeof head - got ? (size_t)n : sizeof head - got;
            memcpy(head + got, buf, k);
            got += k;
        }
    }
    close(fd);
    if (show_answers)
        fprintf(stderr, "fuzz_http: %zu bytes in, answer begins \"%.*s\"\n", size, (int)got,
                head);
    if (got > 0)
        FUZZ_CHECK(got >= 9 && (!memcmp(head, "HTTP/1.1 ", 9) || !memcmp(head, "HTTP/1.0 ", 9)),
                   "the answer does not start with a status line: %.*s", (int)got, head);
    return 0;
}
