/* The incremental Server-Sent Events parser (see sse.h): lines are cut at '\n' (a '\r'
 * before it is dropped), "data:" values accumulate, a blank line dispatches the event. */
#include "config.h"
#include "runtime/base/sse.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

/* One line (without its newline). */
static int line(struct pgd__sse *p, char *s, size_t n, pgd__sse_event_fn fn, void *ctx)
{
    if (n && s[n - 1] == '\r')
        n--;
    if (n == 0) {                       /* the blank line: the event is complete */
        if (!p->has_data)
            return 0;
        p->has_data = false;
        size_t dl = p->dlen;
        p->dlen = 0;
        return fn(ctx, p->data, dl);
    }
    if (n < 5 || memcmp(s, "data:", 5))
        return 0;                       /* a comment or a field we do not use */
    s += 5;
    n -= 5;
    if (n && *s == ' ')                 /* one space after the colon is part of the syntax */
        s++, n--;
    size_t sep = p->has_data ? 1 : 0;
    if (!pgd__array_reserve(p->data, p->dcap, p->dlen + sep + n + 1))
        return -1;
    if (sep)
        p->data[p->dlen++] = '\n';
    memcpy(p->data + p->dlen, s, n);
    p->dlen += n;
    p->data[p->dlen] = 0;
    p->has_data = true;
    return 0;
}

int pgd__sse_feed(struct pgd__sse *p, const char *bytes, size_t n, pgd__sse_event_fn fn, void *ctx)
{
    if (!pgd__array_reserve(p->buf, p->cap, p->len + n + 1))
        return -1;
    memcpy(p->buf + p->len, bytes, n);
    p->len += n;
    size_t start = 0;
    int rc = 0;
    for (size_t i = p->len - n; i < p->len && !rc; i++)
        if (p->buf[i] == '\n') {
            rc = line(p, p->buf + start, i - start, fn, ctx);
            start = i + 1;
        }
    memmove(p->buf, p->buf + start, p->len - start);
    p->len -= start;
    return rc;
}

int pgd__sse_finish(struct pgd__sse *p, pgd__sse_event_fn fn, void *ctx)
{
    int rc = 0;
    if (p->len) {
        rc = line(p, p->buf, p->len, fn, ctx);
        p->len = 0;
    }
    if (!rc && p->has_data)
        rc = line(p, (char *)"", 0, fn, ctx);
    return rc;
}

void pgd__sse_fini(struct pgd__sse *p)
{
    free(p->buf);
    free(p->data);
    *p = (struct pgd__sse){ 0 };
}
