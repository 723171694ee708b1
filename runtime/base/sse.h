/* An incremental parser of Server-Sent Events (the text/event-stream of streamed OpenAI
 * responses): bytes go in as the network delivers them, split anywhere; each complete
 * event's data (its "data:" lines joined by '\n') comes out through a callback as soon as
 * the blank line that ends it arrives. Comments (":" lines) and other fields (event:, id:,
 * retry:) are skipped. */
#ifndef PGD_RUNTIME_BASE_SSE_H
#define PGD_RUNTIME_BASE_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* Called with one event's data (NUL-terminated, len bytes; valid during the call only).
 * A non-zero return stops the feed and is returned by it. */
typedef int (*pgd__sse_event_fn)(void *ctx, const char *data, size_t len);

struct pgd__sse {
    char *buf;            /* bytes received and not yet consumed as lines (owned) */
    size_t len, cap;
    char *data;           /* the current event's data so far (owned) */
    size_t dlen, dcap;
    bool has_data;        /* a "data:" line was seen since the last event ended */
};

/* Zero-initialise a struct pgd__sse to start. Returns 0, the callback's non-zero value, or -1
 * when out of memory. */
int pgd__sse_feed(struct pgd__sse *p, const char *bytes, size_t n, pgd__sse_event_fn fn, void *ctx);
/* The stream ended: a last line without its newline, and an event without its blank line,
 * are delivered (servers that close right after the last event). */
int pgd__sse_finish(struct pgd__sse *p, pgd__sse_event_fn fn, void *ctx);
void pgd__sse_fini(struct pgd__sse *p);

#endif
