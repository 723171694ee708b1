/* Status codes and error messages shared by libpagoda, its plugins and its frontends.
 *
 * Every fallible function returns enum pgd_status (PGD_OK == 0) and, where it takes one,
 * writes a message into an error buffer the caller owns: the message names the file, the
 * field or the value that was wrong. Library code never exits the process. */
#ifndef PAGODA_STATUS_H
#define PAGODA_STATUS_H

#include <stddef.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pgd_status {
    PGD_OK = 0,
    PGD_ERR_INVALID_ARG,   /* a parameter or request field is out of range or malformed */
    PGD_ERR_IO,            /* a file could not be opened, read, mapped or written */
    PGD_ERR_FORMAT,        /* a file's contents are not what its format requires */
    PGD_ERR_NOT_FOUND,     /* a named thing (file, tensor, key, plugin, request) does not exist */
    PGD_ERR_UNSUPPORTED,   /* valid input that pagoda does not implement */
    PGD_ERR_NOMEM,         /* host or device memory ran out */
    PGD_ERR_PLUGIN,        /* a plugin could not be loaded or misbehaved */
    PGD_ERR_ABI,           /* a plugin was built for another ABI version */
    PGD_ERR_DEVICE,        /* the accelerator reported an error */
    PGD_ERR_TIMEOUT,       /* a wait ended before anything arrived */
    PGD_ERR_ABORTED,       /* the operation was cancelled */
    PGD_ERR_CLOSED,        /* the stream or engine has finished; nothing more will come */
    PGD_ERR_TEMPLATE,      /* a chat template failed to parse or render */
    PGD_ERR_INTERNAL,      /* a broken invariant inside pagoda: a bug */
};

/* A short constant name for a status, e.g. "invalid argument". Never NULL. */
const char *pgd_status_str(enum pgd_status st);

/* Writes a printf-style message into err (if err is non-NULL and errlen > 0, always
 * NUL-terminated, truncated to fit) and returns st, so that callers can write
 * `return pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", path, strerror(errno));` */
enum pgd_status pgd_errf(char *err, size_t errlen, enum pgd_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum pgd_status pgd_verrf(char *err, size_t errlen, enum pgd_status st, const char *fmt,
                          va_list ap);

/* Programmer errors (broken invariants, misuse of an API contract) abort with the location.
 *
 * Running out of memory is not a programmer error, and pagoda's policy for it is this: an
 * allocation whose size follows from input (a request body, a prompt, a file, a model, a
 * chat template) fails with PGD_ERR_NOMEM returned up to the caller, with a message, so that
 * a malformed or huge request costs that request only and never the server. The one
 * exception is the engine's fixed-size bookkeeping inside a step (block tables, queues),
 * bounded by the configuration and with no caller that could recover mid-step: there an
 * allocation failure is fatal through the one hook pgd__oom() (runtime/base/mem.h), which
 * names what ran out and aborts. Never PGD_ASSERT on an allocation; never exit(). */
void pgd_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define PGD_ASSERT(cond) \
    ((cond) ? (void)0 : pgd_assert_fail(#cond, __FILE__, __LINE__))

#ifdef __cplusplus
}
#endif
#endif
