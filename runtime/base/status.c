/* Status names and error-buffer formatting. */
#include <pagoda/status.h>
#include <stdio.h>
#include <stdlib.h>

const char *pgd_status_str(enum pgd_status st)
{
    switch (st) {
    case PGD_OK: return "ok";
    case PGD_ERR_INVALID_ARG: return "invalid argument";
    case PGD_ERR_IO: return "i/o error";
    case PGD_ERR_FORMAT: return "bad format";
    case PGD_ERR_NOT_FOUND: return "not found";
    case PGD_ERR_UNSUPPORTED: return "unsupported";
    case PGD_ERR_NOMEM: return "out of memory";
    case PGD_ERR_PLUGIN: return "plugin error";
    case PGD_ERR_ABI: return "plugin ABI mismatch";
    case PGD_ERR_DEVICE: return "device error";
    case PGD_ERR_TIMEOUT: return "timeout";
    case PGD_ERR_ABORTED: return "aborted";
    case PGD_ERR_CLOSED: return "closed";
    case PGD_ERR_TEMPLATE: return "template error";
    case PGD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

enum pgd_status pgd_verrf(char *err, size_t errlen, enum pgd_status st, const char *fmt,
                          va_list ap)
{
    if (err && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    return st;
}

enum pgd_status pgd_errf(char *err, size_t errlen, enum pgd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pgd_verrf(err, errlen, st, fmt, ap);
    va_end(ap);
    return st;
}

void pgd_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "pagoda: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
