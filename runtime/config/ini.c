/* A deployment INI file into the settings (see ini.h), parsed by inih. This file owns what
 * the file's lines mean: which section a key belongs to, duplicate keys, ${NAME} expansion,
 * the api_key_file permission warning, and collecting every problem as "PATH:LINE: ..." so
 * that one run of `pagoda config --check` lists them all. Values are checked by
 * pgd__settings_set, so a bad value gets the same words as the same bad flag. */
#include "runtime/config/ini.h"
#include <ini.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ini_sections pgd__setting_sections
#define N_SECTIONS pgd__n_setting_sections
#define SECTION_LIST "[model], [engine], [plugins], [frontend.openai], [frontend.repl] and [log]"

/* The state of one file's reading: the reader counts lines for the handler's messages. */
struct ini_read {
    struct pgd__settings *s;
    const char *path;
    FILE *f;
    int line;                        /* the line the reader returned last (1-based) */
    int set_line[PGD__S_COUNT];      /* where the file set each row first (0: not yet) */
    char bad_section[64];            /* the unknown section reported last, not repeated */
    bool reported_section;           /* bad_section holds one */
    char *msgs;
    size_t msgslen, used;
    int errors;
};

static void report(struct ini_read *r, bool warning, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct ini_read *r, bool warning, const char *fmt, ...)
{
    if (!warning)
        r->errors++;
    if (r->used + 1 >= r->msgslen)
        return;   /* the buffer is full: the count still says there were errors */
    char *at = r->msgs + r->used;
    size_t room = r->msgslen - r->used;
    int w = snprintf(at, room, "%s:%d: %s", r->path, r->line, warning ? "warning: " : "");
    if (w > 0 && (size_t)w < room) {
        va_list ap;
        va_start(ap, fmt);
        int w2 = vsnprintf(at + w, room - (size_t)w, fmt, ap);
        va_end(ap);
        w = w2 > 0 ? w + w2 : w;
    }
    r->used = (size_t)w < room - 1 ? r->used + (size_t)w : r->msgslen - 2;
    r->msgs[r->used++] = '\n';
    r->msgs[r->used] = '\0';
}

/* inih's reader: one line per call, counted; a line longer than inih's buffer is an error
 * (inih would otherwise read its rest as further lines). */
static char *read_line(char *str, int num, void *stream)
{
    struct ini_read *r = stream;
    if (!fgets(str, num, r->f))
        return NULL;
    r->line++;
    size_t n = strlen(str);
    if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(r->f)) {
        report(r, false, "the line is longer than %d characters (the INI reader's limit)",
               num - 2);
        int c;
        while ((c = fgetc(r->f)) != EOF && c != '\n')
            ;
        str[0] = '\0';   /* an empty line: nothing of it is applied */
    }
    return str;
}

/* ${NAME} in value -> the environment's NAME, into out; false (reported) when NAME is not
 * set, the reference is not closed, or out is too small. */
static bool expand_env(struct ini_read *r, const char *key, const char *value, char *out,
                       size_t outlen)
{
    size_t n = 0;
    for (const char *p = value; *p;) {
        const char *add = p;
        size_t len = 1;
        char name[128];
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            size_t nl = close ? (size_t)(close - (p + 2)) : 0;
            if (!close || nl == 0 || nl >= sizeof name) {
                report(r, false, "%s: '%s' has an unclosed or empty ${...}", key, value);
                return false;
            }
            memcpy(name, p + 2, nl);
            name[nl] = '\0';
            add = getenv(name);
            if (!add) {
                report(r, false, "%s: the environment variable %s (${%s}) is not set", key,
                       name, name);
                return false;
            }
            len = strlen(add);
            p = close + 1;
        } else {
            p++;
        }
        if (n + len >= outlen) {
            report(r, false, "%s: the value is longer than %zu bytes", key, outlen - 1);
            return false;
        }
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
    return true;
}

static bool known_section(const char *section)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (!strcmp(section, ini_sections[i]))
            return true;
    return false;
}

/* An unknown section, reported once for its keys, with the nearest section's name. */
static void unknown_section(struct ini_read *r, const char *section)
{
    if (r->reported_section && !strncmp(r->bad_section, section, sizeof r->bad_section - 1))
        return;
    r->reported_section = true;
    snprintf(r->bad_section, sizeof r->bad_section, "%s", section);
    if (!*section) {
        report(r, false, "a key before any [section]: the sections are " SECTION_LIST);
        return;
    }
    const char *near = NULL;
    int best = 3;   /* at most two edits away */
    for (size_t i = 0; i < N_SECTIONS; i++) {
        int d = pgd__settings_distance(ini_sections[i], section);
        if (d < best) {
            best = d;
            near = ini_sections[i];
        }
    }
    report(r, false, "unknown section [%s]%s%s%s; the sections are " SECTION_LIST, section,
           near ? " (did you mean [" : "",
           near ? near : "", near ? "]?)" : "");
}

static void apply_value(struct ini_read *r, int id, const char *key, const char *value)
{
    char where[96], err[1024], expanded[4096];
    snprintf(where, sizeof where, "%s:%d", r->path, r->line);
    if (!expand_env(r, key, value, expanded, sizeof expanded))
        return;
    if (pgd__settings_set(r->s, (enum pgd__setting_id)id, expanded, PGD__SO_FILE, where, err,
                          sizeof err)) {
        /* err is "WHERE: ..." as for a flag; the message names the key instead. */
        size_t wl = strlen(where);
        const char *rest = !strncmp(err, where, wl) && err[wl] == ':' ? err + wl + 2 : err;
        report(r, false, "%s: %s", key, rest);
        return;
    }
    struct stat st;
    if (id == PGD__S_API_KEY_FILE && stat(expanded, &st) == 0 &&
        (st.st_mode & (S_IRGRP | S_IROTH)))
        report(r, true, "api_key_file %s is readable by group or others: `chmod 600 %s`",
               expanded, expanded);
}

/* inih's handler: one key = value of a section. Returns 1 always: every line is read, so
 * that all problems are listed at once (r->errors counts them). */
static int on_key(void *user, const char *section, const char *key, const char *value)
{
    struct ini_read *r = user;
    if (!known_section(section)) {
        unknown_section(r, section);
        return 1;
    }
    int id = pgd__settings_find_in(section, key);
    if (id < 0)
        id = pgd__settings_find(key);   /* another section's: said so below */
    if (id < 0) {
        const char *near = pgd__settings_nearest_key(key);
        report(r, false, "unknown key %s in [%s]%s%s%s", key, section,
               near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
        return 1;
    }
    const struct pgd__setting_def *d = &pgd__setting_defs[id];
    if (strcmp(d->section, section)) {
        report(r, false, "%s belongs in [%s], not [%s]", d->name, d->section, section);
        return 1;
    }
    if (r->set_line[id] && !(d->flags & PGD__SF_REPEATABLE)) {
        report(r, false, "%s is given twice (first at line %d)", d->name, r->set_line[id]);
        return 1;
    }
    if (!r->set_line[id])
        r->set_line[id] = r->line;
    apply_value(r, id, d->name, value);
    return 1;
}

enum pgd_status pgd__settings_load_ini(struct pgd__settings *s, const char *path, char *msgs,
                                       size_t msgslen)
{
    struct ini_read r = { .s = s, .path = path, .msgs = msgs, .msgslen = msgslen };
    if (msgslen)
        msgs[0] = '\0';
    r.f = fopen(path, "r");
    if (!r.f)
        return pgd_errf(msgs, msgslen, PGD_ERR_IO, "%s: cannot read: %s", path,
                        strerror(errno));
    int rc = ini_parse_stream(read_line, &r, on_key, &r);
    fclose(r.f);
    if (rc > 0) {
        /* inih's own complaint: a line that is neither [section], key = value nor a
         * comment. Its line number is inih's, the reader's count is past it. */
        r.line = rc;
        report(&r, false, "not '[section]', 'key = value' or a comment");
    } else if (rc < 0) {
        return pgd_errf(msgs, msgslen, PGD_ERR_NOMEM, "%s: out of memory", path);
    }
    return r.errors ? PGD_ERR_INVALID_ARG : PGD_OK;
}

enum pgd_status pgd__settings_take_config_flag(int *argc, char **argv, const char **path,
                                               char *err, size_t errlen)
{
    *path = NULL;
    for (int i = 1; i < *argc && strcmp(argv[i], "--"); i++) {
        int take;
        const char *value;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= *argc)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "--config needs a value "
                                "(FILE: a deployment INI file)");
            take = 2;
            value = argv[i + 1];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            take = 1;
            value = argv[i] + 9;
        } else {
            continue;
        }
        if (*path)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "--config is given twice (%s "
                            "and %s): give one file", *path, value);
        *path = value;
        memmove(&argv[i], &argv[i + take], (size_t)(*argc - i - take) * sizeof *argv);
        *argc -= take;
        i--;
    }
    return PGD_OK;
}

enum pgd_status pgd__settings_from_command(struct pgd__settings *s, int argc, char **argv,
                                           bool *help, char *msgs, size_t msgslen)
{
    *help = false;
    if (msgslen)
        msgs[0] = '\0';
    /* A copy of argv to take --config out of (the caller's stays as it is). */
    char **args = malloc((size_t)(argc + 1) * sizeof *args);
    if (!args)
        return pgd_errf(msgs, msgslen, PGD_ERR_NOMEM, "out of memory");
    memcpy(args, argv, (size_t)argc * sizeof *args);
    args[argc] = NULL;
    const char *path;
    enum pgd_status st = pgd__settings_take_config_flag(&argc, args, &path, msgs, msgslen);
    size_t used = 0;
    if (!st && path) {
        st = pgd__settings_load_ini(s, path, msgs, msgslen);
        used = st ? 0 : strlen(msgs);   /* the file's warnings stay before any flag error */
    }
    if (!st)
        st = pgd__settings_parse_args(s, argc, args, help, msgs + used, msgslen - used);
    free(args);
    return st;
}
