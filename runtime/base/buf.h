/* Internal: the growable byte buffer every subsystem builds strings and byte runs in.
 *
 *     struct pgd__buf b = { 0 };
 *     pgd__buf_append(&b, "data: ", 6);
 *     pgd__buf_appendf(&b, "%d\n", n);
 *     if (b.failed) { pgd__buf_fini(&b); return PGD_ERR_NOMEM; }
 *     char *s = pgd__buf_steal(&b, &len);     (the caller now owns s)
 *
 * Out of memory (see runtime/base/mem.h): nothing aborts. Each call returns false when it
 * could not append, and the failure is sticky: b.failed stays set and later appends do
 * nothing, so a builder may append freely and check once at the end. */
#ifndef PGD_RUNTIME_BASE_BUF_H
#define PGD_RUNTIME_BASE_BUF_H

#include <pagoda/status.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct pgd__buf {
    char *p;      /* [cap] malloc'd, owned; p[len] == '\0' once anything was appended; NULL
                   * until then */
    size_t len;   /* bytes held, not counting the terminating NUL */
    size_t cap;
    bool failed;  /* an append failed (out of memory, or a printf format error): sticky */
};

/* Makes room for extra more bytes and the terminating NUL (allocating on the first call,
 * even for extra == 0). false on failure (sets failed) or when already failed. */
bool pgd__buf_grow(struct pgd__buf *b, size_t extra);
/* Appends s[0..n) (s may be NULL when n == 0) and keeps the buffer NUL-terminated. */
bool pgd__buf_append(struct pgd__buf *b, const void *s, size_t n);
bool pgd__buf_puts(struct pgd__buf *b, const char *s);  /* a NUL-terminated string */
bool pgd__buf_appendf(struct pgd__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool pgd__buf_vappendf(struct pgd__buf *b, const char *fmt, va_list ap);
/* Empties the buffer (len 0, failed cleared), keeping its memory. */
void pgd__buf_clear(struct pgd__buf *b);
/* Hands the bytes to the caller (malloc'd, NUL-terminated; "" when nothing was appended;
 * *len, if len is non-NULL, gets their length) and resets b to empty. NULL when b.failed
 * or out of memory; b is released either way. */
char *pgd__buf_steal(struct pgd__buf *b, size_t *len);
void pgd__buf_fini(struct pgd__buf *b);                 /* frees; b is empty again */

/* Appends everything left in f. name (a path, or "stdin") goes into the messages:
 * PGD_ERR_NOMEM "NAME: out of memory", PGD_ERR_IO "NAME: read error". */
enum pgd_status pgd__buf_read_stream(struct pgd__buf *b, FILE *f, const char *name, char *err,
                                     size_t errlen);
/* Reads everything left in f into *data (malloc'd, NUL-terminated, owned by the caller;
 * *len, if len is non-NULL, gets its length), with the errors of pgd__buf_read_stream.
 * *data is NULL on failure. */
enum pgd_status pgd__read_stream(FILE *f, const char *name, char **data, size_t *len,
                                 char *err, size_t errlen);
/* The same for the file at path. A file that cannot be opened is PGD_ERR_NOT_FOUND (it does
 * not exist) or PGD_ERR_IO, "PATH: strerror". */
enum pgd_status pgd__read_file(const char *path, char **data, size_t *len, char *err,
                               size_t errlen);

#endif
