/* The growable byte buffer (buf.h): appends, formatted appends, handing the bytes over, and
 * reading a whole stream or file into it. */
#include "runtime/base/buf.h"
#include "runtime/base/mem.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool pgd__buf_grow(struct pgd__buf *b, size_t extra)
{
    if (b->failed)
        return false;
    /* + 1 for the NUL; written as a comparison so that a huge extra cannot wrap around. */
    if (b->p && extra < b->cap - b->len)
        return true;
    size_t need = b->len + 1 + extra;
    size_t cap = need > b->len ? pgd__grow_capacity(b->cap, need, 64, 1) : 0;
    char *p = cap ? realloc(b->p, cap) : NULL;
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

bool pgd__buf_append(struct pgd__buf *b, const void *s, size_t n)
{
    if (!pgd__buf_grow(b, n))
        return false;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

bool pgd__buf_puts(struct pgd__buf *b, const char *s)
{
    return pgd__buf_append(b, s, strlen(s));
}

bool pgd__buf_vappendf(struct pgd__buf *b, const char *fmt, va_list ap)
{
    if (b->failed)
        return false;
    /* Format straight into the spare room; when it does not fit, grow to the size vsnprintf
     * reported and format again. */
    va_list again;
    va_copy(again, ap);
    size_t room = b->p ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    if (n >= 0 && (size_t)n >= room && pgd__buf_grow(b, (size_t)n))
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, again);
    va_end(again);
    if (n < 0 || b->failed) {
        if (b->p)
            b->p[b->len] = '\0'; /* drop what a failed vsnprintf may have written */
        b->failed = true;
        return false;
    }
    b->len += (size_t)n;
    return true;
}

bool pgd__buf_appendf(struct pgd__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = pgd__buf_vappendf(b, fmt, ap);
    va_end(ap);
    return ok;
}

void pgd__buf_clear(struct pgd__buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->p)
        b->p[0] = '\0';
}

char *pgd__buf_steal(struct pgd__buf *b, size_t *len)
{
    char *p = b->p;
    if (!b->failed && !p)
        p = calloc(1, 1);
    if (b->failed || !p) {
        pgd__buf_fini(b);
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = b->len;
    *b = (struct pgd__buf){ 0 };
    return p;
}

void pgd__buf_fini(struct pgd__buf *b)
{
    free(b->p);
    *b = (struct pgd__buf){ 0 };
}

enum pgd_status pgd__buf_read_stream(struct pgd__buf *b, FILE *f, const char *name, char *err,
                                     size_t errlen)
{
    /* fread straight into the spare room, at least 64 KiB of it each round. */
    for (;;) {
        if (b->cap - b->len < 65536 + 1 && !pgd__buf_grow(b, 65536))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
        size_t r = fread(b->p + b->len, 1, b->cap - b->len - 1, f);
        b->len += r;
        b->p[b->len] = '\0';
        if (r == 0)
            break;
    }
    if (ferror(f))
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: read error", name);
    return PGD_OK;
}

enum pgd_status pgd__read_stream(FILE *f, const char *name, char **data, size_t *len,
                                 char *err, size_t errlen)
{
    struct pgd__buf b = { 0 };
    enum pgd_status st = pgd__buf_read_stream(&b, f, name, err, errlen);
    if (st) {
        pgd__buf_fini(&b);
        *data = NULL;
        return st;
    }
    *data = pgd__buf_steal(&b, len); /* read_stream allocated: this cannot fail */
    return PGD_OK;
}

enum pgd_status pgd__read_file(const char *path, char **data, size_t *len, char *err,
                               size_t errlen)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pgd_errf(err, errlen, errno == ENOENT ? PGD_ERR_NOT_FOUND : PGD_ERR_IO, "%s: %s",
                        path, strerror(errno));
    enum pgd_status st = pgd__read_stream(f, path, data, len, err, errlen);
    fclose(f);
    return st;
}
