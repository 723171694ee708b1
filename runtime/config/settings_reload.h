/* Internal: reloading a deployment file in a running server (SIGHUP, issue 16).
 *
 * The file is read again as the server's command line says (its --config FILE, then its
 * flags, which still override the file) into a fresh set of settings; nothing of the fresh
 * set is used when the file has errors. Otherwise each row whose value changed is either
 * taken over by the running set (rows marked PGD__SF_RELOADABLE in the table: the log
 * level, format and file, the access log, the stats line, the API keys) or reported as
 * needing a restart and left as it runs. The caller then applies the taken-over rows (the
 * log, the frontend's reload op) on its own thread.
 *
 *   struct pgd__reload r;
 *   char msgs[4096], report[4096];
 *   if (pgd__settings_reload(&running, argc, argv, &r, msgs, sizeof msgs, report,
 *                            sizeof report))  -> msgs: the file's errors; running unchanged
 *   else for each id with r.applied[id]: apply pgd__settings_*(&running, id)
 */
#ifndef PGD_RUNTIME_CONFIG_SETTINGS_RELOAD_H
#define PGD_RUNTIME_CONFIG_SETTINGS_RELOAD_H

#include "runtime/config/settings.h"

struct pgd__reload {
    bool applied[PGD__S_COUNT];   /* reloadable rows that changed: running has the new value */
    bool restart[PGD__S_COUNT];   /* other rows that changed: running kept its value */
    int n_applied, n_restart;
};

/* Whether a and b hold the same values (in the same order); where they came from aside. */
bool pgd__setting_value_equal(const struct pgd__setting_value *a,
                              const struct pgd__setting_value *b);

/* Which rows of fresh differ from running, sorted into r (cleared first). */
void pgd__settings_diff(const struct pgd__settings *running, const struct pgd__settings *fresh,
                        struct pgd__reload *r);

/* Moves the values of the rows r->applied from fresh into running (fresh gets running's
 * old ones, freed with it). */
void pgd__settings_take_reloadable(struct pgd__settings *running, struct pgd__settings *fresh,
                                   const struct pgd__reload *r);

/* Reads the settings of the command line argv (with its --config FILE) again and takes
 * the reloadable rows that changed into running. report receives one line per changed row,
 * "KEY = VALUE (WHERE): applied" or "KEY = VALUE (WHERE): needs a restart (running: OLD)"
 * (API keys shown as (hidden)). Returns the error of pgd__settings_from_command with its
 * messages in msgs (running unchanged); on PGD_OK msgs holds the file's warnings. */
enum pgd_status pgd__settings_reload(struct pgd__settings *running, int argc, char **argv,
                                     struct pgd__reload *r, char *msgs, size_t msgslen,
                                     char *report, size_t reportlen);

#endif
