/* Logging with levels. The level comes from pgd_log_set_level() or, at first use, from
 * the environment variable PAGODA_LOG (error, warn, info, debug). Lines go to stderr. */
#ifndef PAGODA_LOG_H
#define PAGODA_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum pgd_log_level { PGD_LOG_ERROR = 0, PGD_LOG_WARN, PGD_LOG_INFO, PGD_LOG_DEBUG };

void pgd_log_set_level(enum pgd_log_level level);
enum pgd_log_level pgd_log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int pgd_log_parse_level(const char *name);
void pgd_log(enum pgd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PGD_ERROR(...) pgd_log(PGD_LOG_ERROR, __VA_ARGS__)
#define PGD_WARN(...)  pgd_log(PGD_LOG_WARN, __VA_ARGS__)
#define PGD_INFO(...)  pgd_log(PGD_LOG_INFO, __VA_ARGS__)
#define PGD_DEBUG(...) pgd_log(PGD_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
