/* An incremental parser of Server-Sent Events (the text/event-stream of streamed OpenAI
 * responses): bytes go in as the network delivers them, split anywhere; each complete
 * event's data (its "data:" lines joined by '\n') comes out through a callback as soon as
 * the blank line that ends it arrives. Comments (":" lines) and other fields (event:, id:,
 * retry:) are skipped. */
#ifndef PGD_TOOLS_BENCH_SERVE_SSE_H
#define PGD_TOOLS_BENCH_SERVE_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* Called with one event's data (NUL-terminated, len bytes; valid during the call only).
 * A non-zero return stops the feed and is returned by it. */
typedef int (*bs_sse_event_fn)(void *ctx, const char *data, size_t len);

struct bs_sse {
    char *buf;            /* bytes received and not yet consumed as lines (owned) */
    size_t len, cap;
    char *data;           /* the current event's data so far (owned) */
    size_t dlen, dcap;
    bool has_data;        /* a "data:" line was seen since the last event ended */
};

/* Zero-initialise a struct bs_sse to start. Returns 0, the callback's non-zero value, or -1
 * when out of memory. */
int bs_sse_feed(struct bs_sse *p, const char *bytes, size_t n, bs_sse_event_fn fn, void *ctx);
/* The stream ended: a last line without its newline, and an event without its blank line,
 * are delivered (servers that close right after the last event). */
int bs_sse_finish(struct bs_sse *p, bs_sse_event_fn fn, void *ctx);
void bs_sse_fini(struct bs_sse *p);

#endif
