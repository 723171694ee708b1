/* Logging with levels. The level comes from pgd_log_set_level() or, at first use, from
 * the environment variable PAGODA_LOG (error, warn, info, debug). Lines go to stderr, or
 * appended to the file of pgd_log_set_file(); as text ("[HH:MM:SS.mmm pagoda LEVEL] msg")
 * or, with pgd_log_set_format(PGD_LOG_FORMAT_JSON), one JSON object a line:
 *   {"ts":"2026-01-02T03:04:05.678Z","level":"info","msg":"...","fields":{"k":v,...}}
 * where fields are the message's key=value words (numbers as JSON numbers). Every setter
 * may be called while other threads log. */
#ifndef PAGODA_LOG_H
#define PAGODA_LOG_H

#include <pagoda/status.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pgd_log_level { PGD_LOG_ERROR = 0, PGD_LOG_WARN, PGD_LOG_INFO, PGD_LOG_DEBUG };
enum pgd_log_format { PGD_LOG_FORMAT_TEXT = 0, PGD_LOG_FORMAT_JSON };

void pgd_log_set_level(enum pgd_log_level level);
enum pgd_log_level pgd_log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int pgd_log_parse_level(const char *name);
void pgd_log_set_format(enum pgd_log_format format);
/* Appends the log to path from now on (NULL: back to stderr). Opening the same path again
 * (after logrotate moved the file) starts a new file there. On an error the log stays
 * where it was and err names the file and the reason. */
enum pgd_status pgd_log_set_file(const char *path, char *err, size_t errlen);
void pgd_log(enum pgd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PGD_ERROR(...) pgd_log(PGD_LOG_ERROR, __VA_ARGS__)
#define PGD_WARN(...)  pgd_log(PGD_LOG_WARN, __VA_ARGS__)
#define PGD_INFO(...)  pgd_log(PGD_LOG_INFO, __VA_ARGS__)
#define PGD_DEBUG(...) pgd_log(PGD_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
