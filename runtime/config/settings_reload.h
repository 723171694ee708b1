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
 *   struct pgd__settings fresh;  struct pgd__reload r;
 *   if (pgd__settings_reread(&running, argc, argv, &fresh, &r, msgs, sizeof msgs))
 *       -> msgs: the file's errors; running unchanged
 *   else: try the changes (fresh's values); pgd__reload_refuse(&r, id) what failed;
 *         pgd__settings_reload_finish(&running, &fresh, &r, report, sizeof report);
 *   pgd__settings_fini(&fresh);
 */
#ifndef PGD_RUNTIME_CONFIG_SETTINGS_RELOAD_H
#define PGD_RUNTIME_CONFIG_SETTINGS_RELOAD_H

#include "runtime/config/settings.h"

struct pgd__reload {
    bool applied[PGD__S_COUNT];   /* reloadable rows that changed: running takes them */
    bool restart[PGD__S_COUNT];   /* other rows that changed: running keeps its value */
    bool refused[PGD__S_COUNT];   /* reloadable rows the caller could not apply (e.g. the
                                     frontend refused a key file): running keeps its value */
    int n_applied, n_restart, n_refused;
};

/* Whether a and b hold the same values (in the same order); where they came from aside. */
bool pgd__setting_value_equal(const struct pgd__setting_value *a,
                              const struct pgd__setting_value *b);

/* Which rows of fresh differ from running, sorted into r (cleared first). */
void pgd__settings_diff(const struct pgd__settings *running, const struct pgd__settings *fresh,
                        struct pgd__reload *r);

/* Moves row id from applied to refused in r. */
void pgd__reload_refuse(struct pgd__reload *r, enum pgd__setting_id id);

/* Step 1: the settings of the command line argv (with its --config FILE) read again into
 * fresh (initialised here; pgd__settings_fini it in every case) and compared with running
 * into r. Returns the error of pgd__settings_from_command with its messages in msgs;
 * on PGD_OK msgs holds the file's warnings. running is not touched. */
enum pgd_status pgd__settings_reread(const struct pgd__settings *running, int argc,
                                     char **argv, struct pgd__settings *fresh,
                                     struct pgd__reload *r, char *msgs, size_t msgslen);

/* Step 2: the rows r->applied move from fresh into running (fresh gets the old values), and
 * report receives one line per changed row: "KEY = VALUE (WHERE): applied", "...: needs a
 * restart (running: OLD)" or "...: refused (running: OLD)"; API keys show as (hidden). */
void pgd__settings_reload_finish(struct pgd__settings *running, struct pgd__settings *fresh,
                                 const struct pgd__reload *r, char *report, size_t reportlen);

/* Both steps, every reloadable change applied: what a caller with nothing to refuse does. */
enum pgd_status pgd__settings_reload(struct pgd__settings *running, int argc, char **argv,
                                     struct pgd__reload *r, char *msgs, size_t msgslen,
                                     char *report, size_t reportlen);

#endif
