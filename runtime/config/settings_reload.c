/* A deployment file read again while serving (see settings_reload.h): the fresh settings
 * compared row by row with the running ones, the reloadable rows taken over, the rest
 * reported as needing a restart. What the taken-over values do (the log, the API keys) is
 * the server's business (tools/cmd_serve.c). */
#include "runtime/config/settings_reload.h"
#include "runtime/config/ini.h"
#include <stdio.h>
#include <string.h>

bool pgd__setting_value_equal(const struct pgd__setting_value *a,
                              const struct pgd__setting_value *b)
{
    if (a->n_items != b->n_items)
        return false;
    for (int i = 0; i < a->n_items; i++)
        if (strcmp(a->items[i], b->items[i]))
            return false;
    return true;
}

void pgd__settings_diff(const struct pgd__settings *running, const struct pgd__settings *fresh,
                        struct pgd__reload *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < PGD__S_COUNT; i++) {
        /* The same keys file with new contents is a change too: it is read again whenever
         * the file is reloaded (by the frontend), so only a changed list counts here. */
        if (pgd__setting_value_equal(&running->v[i], &fresh->v[i]))
            continue;
        if (pgd__setting_defs[i].flags & PGD__SF_RELOADABLE) {
            r->applied[i] = true;
            r->n_applied++;
        } else {
            r->restart[i] = true;
            r->n_restart++;
        }
    }
}

void pgd__reload_refuse(struct pgd__reload *r, enum pgd__setting_id id)
{
    if (!r->applied[id])
        return;
    r->applied[id] = false;
    r->n_applied--;
    r->refused[id] = true;
    r->n_refused++;
}

/* "a, b" of a row's values into out (API keys hidden; "(not set)" when none). */
static void values_text(int id, const struct pgd__setting_value *v, char *out, size_t n)
{
    bool secret = id == PGD__S_API_KEY || id == PGD__S_REPL_API_KEY;
    size_t len = 0;
    out[0] = '\0';
    if (v->n_items == 0)
        snprintf(out, n, "(not set)");
    for (int j = 0; j < v->n_items && len < n; j++) {
        int w = snprintf(out + len, n - len, "%s%s", j ? ", " : "",
                         secret ? "(hidden)" : v->items[j]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

/* One report line: "KEY = VALUE (WHERE): what", with " (running: OLD)" when old is given. */
static void add_line(char *report, size_t n, size_t *used, int id,
                     const struct pgd__setting_value *now, const char *what,
                     const struct pgd__setting_value *old)
{
    char val[512], was[512] = "";
    values_text(id, now, val, sizeof val);
    if (old) {
        memcpy(was, " (running: ", 11);
        values_text(id, old, was + 11, sizeof was - 12);
        strcat(was, ")");
    }
    if (*used >= n)
        return;
    int w = snprintf(report + *used, n - *used, "%s = %s (%s): %s%s\n",
                     pgd__setting_defs[id].name, val, now->where, what, was);
    if (w > 0)
        *used = *used + (size_t)w < n ? *used + (size_t)w : n;
}

enum pgd_status pgd__settings_reread(const struct pgd__settings *running, int argc,
                                     char **argv, struct pgd__settings *fresh,
                                     struct pgd__reload *r, char *msgs, size_t msgslen)
{
    memset(r, 0, sizeof *r);
    pgd__settings_init(fresh);
    bool help;
    enum pgd_status st = pgd__settings_from_command(fresh, argc, argv, &help, msgs, msgslen);
    if (st == PGD_OK)
        pgd__settings_diff(running, fresh, r);
    return st;
}

void pgd__settings_reload_finish(struct pgd__settings *running, struct pgd__settings *fresh,
                                 const struct pgd__reload *r, char *report, size_t reportlen)
{
    size_t used = 0;
    if (reportlen)
        report[0] = '\0';
    for (int i = 0; i < PGD__S_COUNT; i++) {
        if (r->restart[i])
            add_line(report, reportlen, &used, i, &fresh->v[i], "needs a restart",
                     &running->v[i]);
        else if (r->refused[i])
            add_line(report, reportlen, &used, i, &fresh->v[i], "refused", &running->v[i]);
    }
    for (int i = 0; i < PGD__S_COUNT; i++) {
        if (!r->applied[i])
            continue;
        struct pgd__setting_value t = running->v[i];
        running->v[i] = fresh->v[i];
        fresh->v[i] = t;
        add_line(report, reportlen, &used, i, &running->v[i], "applied", NULL);
    }
}

enum pgd_status pgd__settings_reload(struct pgd__settings *running, int argc, char **argv,
                                     struct pgd__reload *r, char *msgs, size_t msgslen,
                                     char *report, size_t reportlen)
{
    struct pgd__settings fresh;
    if (reportlen)
        report[0] = '\0';
    enum pgd_status st = pgd__settings_reread(running, argc, argv, &fresh, r, msgs, msgslen);
    if (st == PGD_OK)
        pgd__settings_reload_finish(running, &fresh, r, report, reportlen);
    pgd__settings_fini(&fresh);
    return st;
}
