/* The timed run of `pagoda bench serve`: every request is streamed over HTTP from one
 * thread with libcurl's multi socket interface and epoll (one easy handle and one
 * connection per request in flight, connections kept alive and reused), started at its
 * arrival time once fewer than max_concurrency are in flight, its SSE stream parsed as it
 * arrives so that each token chunk is timed when it lands. */
#ifndef PGD_TOOLS_BENCH_SERVE_DRIVER_H
#define PGD_TOOLS_BENCH_SERVE_DRIVER_H

#include "tools/bench/serve/conn.h"
#include "runtime/base/buf.h"
#include <stdbool.h>

/* What one request did. Times are seconds; start_s from the start of the run. */
struct bs_result {
    bool success;
    char *error;            /* why it failed ("HTTP 400: ...", a transport error, a broken
                             * stream); NULL on success; owned */
    long status;            /* the HTTP status (0: no answer) */
    double start_s;         /* when it was sent */
    double ttft_s;          /* to the first token chunk */
    double latency_s;       /* to the end of the stream */
    double *itl;            /* gaps between token chunks (n_itl of them, room for cap_itl;
                             * owned) */
    int n_itl;
    size_t cap_itl;
    int chunks;             /* token chunks received */
    int output_tokens;      /* the final usage's completion_tokens, else chunks */
    bool usage_seen;
    struct pgd__buf text;   /* the generated text when keep_text (text.p NULL when none) */
};

struct bs_run_params {
    const struct bs_conn *conn;
    const char *path;             /* the endpoint, "/v1/completions" */
    bool chat;                    /* chat chunks: choices[0].delta.content */
    char *const *bodies;          /* n request bodies (JSON, borrowed) */
    int n;
    const double *arrival_s;      /* n non-decreasing send times from the start; NULL: all at 0 */
    int max_concurrency;          /* 0: unlimited */
    bool keep_text;
    bool progress;                /* a progress line on stderr */
};

/* Runs the requests; res has n entries (zeroed by the caller). *duration_s: from the start
 * to the last request's end. Failed requests are results, not errors: returns -1 (message
 * in err) only when the run itself cannot go on (out of memory, curl). */
int bs_run(const struct bs_run_params *p, struct bs_result *res, double *duration_s, char *err,
           size_t errlen);
void bs_result_fini(struct bs_result *r);


#endif
