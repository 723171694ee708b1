/* Leveled logging (see pagoda/log.h): the level (read from PAGODA_LOG on first use), the
 * format (text lines or JSON objects), and where lines go (stderr, or a file appended to
 * and reopened on demand for logrotate). One mutex orders whole lines and the switch of
 * the file; the level and the format are atomics, so a reload may change them while other
 * threads log. */
#include <pagoda/log.h>
#include <jansson.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>

static atomic_int log_level = -1;     /* -1: not yet read from the environment */
static atomic_int log_format = PGD_LOG_FORMAT_TEXT;
static FILE *log_file;                /* NULL: stderr; under log_lock */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

int pgd_log_parse_level(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return PGD_LOG_WARN;
    return -1;
}

enum pgd_log_level pgd_log_get_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        l = pgd_log_parse_level(getenv("PAGODA_LOG"));
        l = l < 0 ? PGD_LOG_INFO : l;
        int unset = -1;   /* a level set meanwhile wins */
        if (!atomic_compare_exchange_strong(&log_level, &unset, l))
            l = unset;
    }
    return (enum pgd_log_level)l;
}

void pgd_log_set_level(enum pgd_log_level level) { atomic_store(&log_level, (int)level); }

void pgd_log_set_format(enum pgd_log_format format) { atomic_store(&log_format, (int)format); }

enum pgd_status pgd_log_set_file(const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "ae");   /* append; close-on-exec */
        if (!f)
            return pgd_errf(err, errlen, PGD_ERR_IO, "log_file %s: cannot open for appending: "
                            "%s", path, strerror(errno));
        setvbuf(f, NULL, _IOLBF, 0);   /* whole lines reach the file as they are logged */
    }
    pthread_mutex_lock(&log_lock);
    FILE *old = log_file;
    log_file = f;
    pthread_mutex_unlock(&log_lock);
    if (old)
        fclose(old);
    return PGD_OK;
}

/* A key=value word's value as JSON: a number when the whole text is one, else a string. */
static json_t *field_value(const char *v, size_t n)
{
    char buf[128];
    if (n > 0 && n < sizeof buf && (isdigit((unsigned char)v[0]) || v[0] == '-')) {
        memcpy(buf, v, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        long long i = strtoll(buf, &end, 10);
        if (!*end && !errno)
            return json_integer(i);
        double d = strtod(buf, &end);
        if (!*end && !errno && isfinite(d))
            return json_real(d);
    }
    return json_stringn(v, n);
}

/* The key=value words of msg (key: a letter or '_' then letters, digits, '_', '.', '-';
 * value: up to the next blank, or a "quoted" text) into an object. */
static json_t *fields_of(const char *msg)
{
    json_t *o = json_object();
    for (const char *p = msg; o && *p;) {
        while (*p == ' ')
            p++;
        const char *k = p;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-')
            p++;
        bool key = p > k && (isalpha((unsigned char)*k) || *k == '_') && *p == '=';
        if (!key) {
            bool quoted = *p == '"';
            p += quoted;
            while (*p && (quoted ? *p != '"' : *p != ' '))
                p++;
            p += quoted && *p == '"';
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(p - k), k);
        const char *v = ++p;
        size_t n;
        if (*v == '"') {
            const char *q = strchr(++v, '"');
            n = q ? (size_t)(q - v) : strlen(v);
            p = v + n + (q != NULL);
        } else {
            n = strcspn(v, " ");
            p = v + n;
        }
        json_object_set_new(o, name, field_value(v, n));
    }
    return o;
}

/* One JSON line of a message (malloc'd), or NULL when out of memory. */
static char *json_line(const struct timespec *ts, enum pgd_log_level level, const char *msg)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts->tv_nsec / 1000000);
    json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "ts", when, "level", level_names[level],
                          "msg", msg, "fields", fields_of(msg));
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return line;
}

void pgd_log(enum pgd_log_level level, const char *fmt, ...)
{
    if ((int)level > (int)pgd_log_get_level())
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char *js = atomic_load(&log_format) == PGD_LOG_FORMAT_JSON ? json_line(&ts, level, line)
                                                               : NULL;
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&log_lock);
    FILE *out = log_file ? log_file : stderr;
    if (js)
        fprintf(out, "%s\n", js);
    else
        fprintf(out, "[%02d:%02d:%02d.%03ld pagoda %s] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, level_names[level], line);
    pthread_mutex_unlock(&log_lock);
    free(js);
}
