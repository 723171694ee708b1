/* A deployment file read again while serving (runtime/config/settings_reload.c, SIGHUP):
 * the diff sorts changed rows into applied (the table's reloadable rows) and needing a
 * restart; applied values move into the running set with their new origin, the others keep
 * running, as do the changes the caller refused; the report names each changed key (API keys hidden); flags still override the
 * reloaded file; a file with errors changes nothing; the same file again changes nothing.
 * Also the [frontend.repl] section: its keys share names with serve rows (api_key, seed)
 * and are found by section. */
#include "tests/lib/test_common.h"
#include "config.h"
#include "runtime/config/ini.h"
#include "runtime/config/settings_reload.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(reload);

static char path[64];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* The running settings of `serve --config path ARGS...` (argv kept for the reload). */
static char *argv_[8];
static int argc_;

static void start(struct pgd__settings *s, const char *text, const char *flag,
                  const char *value)
{
    snprintf(path, sizeof path, "/tmp/pgd_test_reload_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    write_file(text);
    argc_ = 0;
    argv_[argc_++] = "serve";
    argv_[argc_++] = "--config";
    argv_[argc_++] = path;
    if (flag) {
        argv_[argc_++] = (char *)flag;
        argv_[argc_++] = (char *)value;
    }
    argv_[argc_] = NULL;
    pgd__settings_init(s);
    char msgs[4096];
    bool help;
    cr_assert_eq(pgd__settings_from_command(s, argc_, argv_, &help, msgs, sizeof msgs), PGD_OK,
                 "%s", msgs);
}

static enum pgd_status reload(struct pgd__settings *s, struct pgd__reload *r, char *msgs,
                              size_t n, char *report, size_t rn)
{
    return pgd__settings_reload(s, argc_, argv_, r, msgs, n, report, rn);
}

#define FILE_A "[model]\nmodel = /m\nmax_model_len = 4096\n[frontend.openai]\n" \
               "api_key = old-key\nport = 8000\n[log]\nlog_level = info\n"

Test(reload, reloadable_rows_apply_and_others_need_a_restart)
{
    struct pgd__settings s;
    start(&s, FILE_A, NULL, NULL);
    write_file("[model]\nmodel = /m\nmax_model_len = 8192\n[frontend.openai]\n"
               "api_key = new-key\napi_key = second-key\nport = 8000\n[log]\n"
               "log_level = debug\naccess_log = false\nlog_format = json\n");
    struct pgd__reload r;
    char msgs[4096], report[4096], where[96];
    cr_assert_eq(reload(&s, &r, msgs, sizeof msgs, report, sizeof report), PGD_OK, "%s", msgs);
    cr_expect_eq(r.n_applied, 4, "%s", report);   /* api_key, log_level, access_log, format */
    cr_expect_eq(r.n_restart, 1, "%s", report);
    cr_expect(r.applied[PGD__S_API_KEY] && r.applied[PGD__S_LOG_LEVEL] &&
              r.applied[PGD__S_ACCESS_LOG] && r.applied[PGD__S_LOG_FORMAT]);
    cr_expect(r.restart[PGD__S_MAX_MODEL_LEN]);
    cr_expect_not(r.applied[PGD__S_PORT] || r.restart[PGD__S_PORT]);
    /* applied: the new values, from the new lines */
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "debug");
    cr_expect_not(pgd__settings_bool(&s, PGD__S_ACCESS_LOG));
    cr_assert_eq(s.v[PGD__S_API_KEY].n_items, 2);
    cr_expect_str_eq(s.v[PGD__S_API_KEY].items[0], "new-key");
    cr_expect_str_eq(s.v[PGD__S_API_KEY].items[1], "second-key");
    snprintf(where, sizeof where, "%s:9", path);
    cr_expect_str_eq(s.v[PGD__S_LOG_LEVEL].where, where);
    /* needs a restart: the running value stays */
    cr_expect_eq(pgd__settings_int(&s, PGD__S_MAX_MODEL_LEN), 4096);
    char line[256];
    snprintf(line, sizeof line, "max_model_len = 8192 (%s:3): needs a restart (running: 4096)\n",
             path);
    cr_expect(strstr(report, line), "%s", report);
    snprintf(line, sizeof line, "log_level = debug (%s:9): applied\n", path);
    cr_expect(strstr(report, line), "%s", report);
    snprintf(line, sizeof line, "api_key = (hidden), (hidden) (%s:6): applied\n", path);
    cr_expect(strstr(report, line), "%s", report);
    cr_expect_null(strstr(report, "new-key"), "a key was written: %s", report);
    /* The same file again: nothing changed, except the restart row, still reported. */
    cr_assert_eq(reload(&s, &r, msgs, sizeof msgs, report, sizeof report), PGD_OK, "%s", msgs);
    cr_expect_eq(r.n_applied, 0, "%s", report);
    cr_expect_eq(r.n_restart, 1, "%s", report);
    unlink(path);
    pgd__settings_fini(&s);
}

Test(reload, an_invalid_file_is_refused_with_file_and_line_and_nothing_changes)
{
    struct pgd__settings s;
    start(&s, FILE_A, NULL, NULL);
    write_file("[model]\nmodel = /m\nmax_model_len = lots\n[frontend.openai]\n"
               "api_key = new-key\n[log]\nlog_level = debug\n");
    struct pgd__reload r;
    char msgs[4096], report[4096], line[256];
    cr_assert_eq(reload(&s, &r, msgs, sizeof msgs, report, sizeof report), PGD_ERR_INVALID_ARG);
    snprintf(line, sizeof line, "%s:3: max_model_len: 'lots' is not valid", path);
    cr_expect(strstr(msgs, line), "%s", msgs);
    cr_expect_eq(r.n_applied + r.n_restart, 0);
    cr_expect_str_eq(report, "");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "info");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_API_KEY), "old-key");
    cr_expect_eq(pgd__settings_int(&s, PGD__S_MAX_MODEL_LEN), 4096);
    /* a file that went away is refused the same way */
    unlink(path);
    cr_assert_eq(reload(&s, &r, msgs, sizeof msgs, report, sizeof report), PGD_ERR_IO);
    cr_expect(strstr(msgs, "cannot read"), "%s", msgs);
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_API_KEY), "old-key");
    pgd__settings_fini(&s);
}

Test(reload, a_change_the_caller_refuses_keeps_its_running_value)
{
    struct pgd__settings s, fresh;
    start(&s, FILE_A, NULL, NULL);
    write_file("[model]\nmodel = /m\nmax_model_len = 4096\n[frontend.openai]\n"
               "api_key = new-key\nport = 8000\n[log]\nlog_level = debug\n");
    struct pgd__reload r;
    char msgs[4096], report[4096], line[256];
    cr_assert_eq(pgd__settings_reread(&s, argc_, argv_, &fresh, &r, msgs, sizeof msgs), PGD_OK,
                 "%s", msgs);
    cr_expect_eq(r.n_applied, 2);
    /* nothing moved yet */
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "info");
    pgd__reload_refuse(&r, PGD__S_API_KEY);       /* e.g. the frontend refused it */
    pgd__reload_refuse(&r, PGD__S_PORT);          /* not a change: no effect */
    cr_expect_eq(r.n_applied, 1);
    cr_expect_eq(r.n_refused, 1);
    pgd__settings_reload_finish(&s, &fresh, &r, report, sizeof report);
    pgd__settings_fini(&fresh);
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_API_KEY), "old-key");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "debug");
    snprintf(line, sizeof line, "api_key = (hidden) (%s:5): refused (running: (hidden))\n",
             path);
    cr_expect(strstr(report, line), "%s", report);
    unlink(path);
    pgd__settings_fini(&s);
}

Test(reload, flags_still_override_the_reloaded_file)
{
    struct pgd__settings s;
    start(&s, FILE_A, "--log-level", "warning");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "warning");
    write_file("[model]\nmodel = /m\nmax_model_len = 4096\n[frontend.openai]\n"
               "api_key = old-key\nport = 8000\n[log]\nlog_level = debug\n");
    struct pgd__reload r;
    char msgs[4096], report[4096];
    cr_assert_eq(reload(&s, &r, msgs, sizeof msgs, report, sizeof report), PGD_OK, "%s", msgs);
    cr_expect_eq(r.n_applied + r.n_restart, 0, "%s", report);
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "warning");
    cr_expect_str_eq(s.v[PGD__S_LOG_LEVEL].where, "--log-level");
    unlink(path);
    pgd__settings_fini(&s);
}

Test(reload, removing_a_key_from_the_file_is_a_change_too)
{
    struct pgd__settings s;
    start(&s, FILE_A, NULL, NULL);
    write_file("[model]\nmodel = /m\nmax_model_len = 4096\n");
    struct pgd__reload r;
    char msgs[4096], report[4096];
    cr_assert_eq(reload(&s, &r, msgs, sizeof msgs, report, sizeof report), PGD_OK, "%s", msgs);
    cr_expect(r.applied[PGD__S_API_KEY], "%s", report);
    cr_expect_eq(s.v[PGD__S_API_KEY].n_items, 0);
    cr_expect(strstr(report, "api_key = (not set) (default): applied"), "%s", report);
    /* port 8000 was the file's and is the default: the same value, no change */
    cr_expect(r.restart[PGD__S_PORT] == false, "%s", report);
    unlink(path);
    pgd__settings_fini(&s);
}

Test(reload, the_table_marks_what_can_change_while_serving)
{
    const enum pgd__setting_id live[] = { PGD__S_LOG_LEVEL, PGD__S_LOG_FORMAT, PGD__S_LOG_FILE,
                                          PGD__S_ACCESS_LOG, PGD__S_API_KEY,
                                          PGD__S_API_KEY_FILE, PGD__S_DISABLE_LOG_STATS,
                                          PGD__S_LOG_STATS_INTERVAL };
    int n = 0;
    for (int i = 0; i < PGD__S_COUNT; i++)
        n += (pgd__setting_defs[i].flags & PGD__SF_RELOADABLE) != 0;
    cr_expect_eq(n, (int)(sizeof live / sizeof live[0]));
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        cr_expect(pgd__setting_defs[live[i]].flags & PGD__SF_RELOADABLE, "%s",
                  pgd__setting_defs[live[i]].name);
}

Test(reload, repl_keys_are_found_by_their_section)
{
    cr_expect_eq(pgd__settings_find_in("frontend.repl", "api_key"), PGD__S_REPL_API_KEY);
    cr_expect_eq(pgd__settings_find_in("frontend.openai", "api_key"), PGD__S_API_KEY);
    cr_expect_eq(pgd__settings_find_in("frontend.repl", "seed"), PGD__S_REPL_SEED);
    cr_expect_eq(pgd__settings_find_in("engine", "seed"), PGD__S_SEED);
    cr_expect_eq(pgd__settings_find("api_key"), PGD__S_API_KEY);   /* serve's first */
    cr_expect_eq(pgd__settings_find("system"), PGD__S_REPL_SYSTEM);
    struct pgd__settings s;
    start(&s, "[model]\nmodel = /m\n[engine]\nseed = 3\n[frontend.repl]\nseed = 7\n"
              "api_key = chat-key\nsystem = Be brief.\ntemperature = 0.5\nno_stats = true\n"
              "[frontend.openai]\napi_key = serve-key\n", NULL, NULL);
    cr_expect_eq(pgd__settings_int(&s, PGD__S_SEED), 3);
    cr_expect_eq(pgd__settings_int(&s, PGD__S_REPL_SEED), 7);
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_REPL_API_KEY), "chat-key");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_API_KEY), "serve-key");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_REPL_SYSTEM), "Be brief.");
    cr_expect(pgd__settings_bool(&s, PGD__S_REPL_NO_STATS));
    /* a repl value is checked like any: top_p 0 and temperature 3 are refused */
    char msgs[4096];
    write_file("[frontend.repl]\ntop_p = 0\ntemperature = 3\nurl = \n");
    struct pgd__settings t;
    pgd__settings_init(&t);
    cr_expect_eq(pgd__settings_load_ini(&t, path, msgs, sizeof msgs), PGD_ERR_INVALID_ARG);
    cr_expect(strstr(msgs, ":2: top_p: '0' is not valid: expected a number in (0, 1]"), "%s",
              msgs);
    cr_expect(strstr(msgs, ":3: temperature: '3' is not valid: expected a number in [0, 2]"),
              "%s", msgs);
    cr_expect(strstr(msgs, ":4: url: '' is not valid"), "%s", msgs);
    /* a repl key is not a flag of serve */
    char *words[] = { "serve", "--system", "x", NULL };
    bool help;
    cr_expect_eq(pgd__settings_parse_args(&t, 3, words, &help, msgs, sizeof msgs),
                 PGD_ERR_INVALID_ARG);
    cr_expect(strstr(msgs, "unknown option --system"), "%s", msgs);
    unlink(path);
    pgd__settings_fini(&t);
    pgd__settings_fini(&s);
}
