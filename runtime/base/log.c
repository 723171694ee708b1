/* Leveled logging to stderr; the level is read from PAGODA_LOG on first use. */
#include <pagoda/log.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>

static int log_level = -1;            /* -1: not yet read from the environment */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

int pgd_log_parse_level(const char *name)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    if (!name)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return PGD_LOG_WARN;
    return -1;
}

enum pgd_log_level pgd_log_get_level(void)
{
    if (log_level < 0) {
        int l = pgd_log_parse_level(getenv("PAGODA_LOG"));
        log_level = l < 0 ? PGD_LOG_INFO : l;
    }
    return (enum pgd_log_level)log_level;
}

void pgd_log_set_level(enum pgd_log_level level) { log_level = (int)level; }

void pgd_log(enum pgd_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = { "error", "warn", "info", "debug" };
    if ((int)level > (int)pgd_log_get_level())
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "[%02d:%02d:%02d.%03ld pagoda %s] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, tags[level], line);
    pthread_mutex_unlock(&log_lock);
}
