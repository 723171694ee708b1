/* The log (runtime/base/log.c): text and JSON lines (ts, level, msg, the key=value fields
 * with numbers as numbers), the level filter, a log file appended to and opened again after
 * it was moved away (logrotate), an unopenable file refused with the log left where it was,
 * and lines from many threads never mixed while the format and the file change. */
#include "tests/lib/test_common.h"
#include <pagoda/log.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(log);

static char dir[64];
static char file[128];

/* A fresh directory for the test's log file, and the info level (whatever PAGODA_LOG says:
 * `make check` sets warn). */
static void fresh_dir(void)
{
    pgd_log_set_level(PGD_LOG_INFO);
    snprintf(dir, sizeof dir, "/tmp/pgd_test_log_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/pagoda.log", dir);
}

/* The file's lines (at most max) into lines[], each malloc'd; returns the count. */
static int read_lines(const char *p, char **lines, int max)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    char buf[4096];
    int n = 0;
    while (n < max && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        lines[n++] = strdup(buf);
    }
    fclose(f);
    return n;
}

static void free_lines(char **lines, int n)
{
    for (int i = 0; i < n; i++)
        free(lines[i]);
}

static void restore(void)
{
    pgd_log_set_file(NULL, NULL, 0);
    pgd_log_set_format(PGD_LOG_FORMAT_TEXT);
    pgd_log_set_level(PGD_LOG_INFO);
}

Test(log, text_and_json_lines_in_a_file_with_the_level_filter)
{
    fresh_dir();
    char err[256];
    pgd_log_set_level(PGD_LOG_INFO);
    cr_assert_eq(pgd_log_set_file(file, err, sizeof err), PGD_OK, "%s", err);
    PGD_INFO("plain text line");
    PGD_DEBUG("filtered out");
    pgd_log_set_format(PGD_LOG_FORMAT_JSON);
    PGD_WARN("access: 127.0.0.1:5 \"POST /v1/completions HTTP/1.1\" 200 prompt_tokens=6 "
             "ttft=0.004s total=0.25 id=cmpl-1 note=\"two words\"");
    PGD_ERROR("quote \" and newline \n inside");
    restore();
    char *lines[8];
    int n = read_lines(file, lines, 8);
    cr_assert_eq(n, 3, "%d lines", n);
    cr_expect(strstr(lines[0], " pagoda info] plain text line") && lines[0][0] == '[', "%s",
              lines[0]);
    json_error_t je;
    json_t *o = json_loads(lines[1], 0, &je);
    cr_assert_not_null(o, "%s: %s", lines[1], je.text);
    cr_expect_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    const char *ts = json_string_value(json_object_get(o, "ts"));
    cr_assert_not_null(ts);
    cr_expect(strlen(ts) == 24 && ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' &&
              ts[23] == 'Z', "%s", ts);
    cr_expect(strstr(json_string_value(json_object_get(o, "msg")), "\"POST /v1/completions"));
    json_t *f = json_object_get(o, "fields");
    cr_expect(json_is_integer(json_object_get(f, "prompt_tokens")));
    cr_expect_eq(json_integer_value(json_object_get(f, "prompt_tokens")), 6);
    cr_expect_str_eq(json_string_value(json_object_get(f, "ttft")), "0.004s");
    cr_expect(json_is_real(json_object_get(f, "total")));
    cr_expect_str_eq(json_string_value(json_object_get(f, "id")), "cmpl-1");
    cr_expect_str_eq(json_string_value(json_object_get(f, "note")), "two words");
    cr_expect_eq(json_object_size(f), 5, "%s", lines[1]);
    json_decref(o);
    o = json_loads(lines[2], 0, &je);   /* a quote and a newline stay inside one line */
    cr_assert_not_null(o, "%s", lines[2]);
    cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), "quote \" and newline \n inside");
    json_decref(o);
    free_lines(lines, n);
    unlink(file);
    rmdir(dir);
}

Test(log, a_moved_file_is_replaced_when_opened_again)
{
    fresh_dir();
    char err[256], moved[160];
    cr_assert_eq(pgd_log_set_file(file, err, sizeof err), PGD_OK, "%s", err);
    PGD_INFO("before the rotation");
    snprintf(moved, sizeof moved, "%s.1", file);
    cr_assert_eq(rename(file, moved), 0);
    PGD_INFO("still to the moved file");
    cr_assert_eq(pgd_log_set_file(file, err, sizeof err), PGD_OK, "%s", err);   /* SIGHUP */
    PGD_INFO("after the rotation");
    restore();
    char *a[4], *b[4];
    int na = read_lines(moved, a, 4), nb = read_lines(file, b, 4);
    cr_assert_eq(na, 2);
    cr_assert_eq(nb, 1);
    cr_expect(strstr(a[0], "before the rotation") && strstr(a[1], "still to the moved file"));
    cr_expect(strstr(b[0], "after the rotation"), "%s", b[0]);
    free_lines(a, na);
    free_lines(b, nb);
    unlink(moved);
    unlink(file);
    rmdir(dir);
}

Test(log, an_unopenable_file_is_refused_and_the_log_stays)
{
    fresh_dir();
    char err[256], bad[160];
    cr_assert_eq(pgd_log_set_file(file, err, sizeof err), PGD_OK, "%s", err);
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.log", dir);
    cr_assert_eq(pgd_log_set_file(bad, err, sizeof err), PGD_ERR_IO);
    cr_expect(strstr(err, bad) && strstr(err, "No such file"), "%s", err);
    PGD_INFO("still here");
    restore();
    char *l[2];
    int n = read_lines(file, l, 2);
    cr_assert_eq(n, 1);
    cr_expect(strstr(l[0], "still here"));
    free_lines(l, n);
    unlink(file);
    rmdir(dir);
}

static void *writer(void *arg)
{
    for (int i = 0; i < 400; i++)
        PGD_INFO("thread=%d line=%d", (int)(intptr_t)arg, i);
    return NULL;
}

Test(log, lines_from_threads_stay_whole_while_the_format_changes)
{
    fresh_dir();
    char err[256];
    cr_assert_eq(pgd_log_set_file(file, err, sizeof err), PGD_OK, "%s", err);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < 50; i++)
        pgd_log_set_format(i % 2 ? PGD_LOG_FORMAT_JSON : PGD_LOG_FORMAT_TEXT);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    restore();
    static char *l[2000];
    int n = read_lines(file, l, 2000);
    cr_assert_eq(n, 1600);
    for (int i = 0; i < n; i++) {
        bool js = l[i][0] == '{';
        json_t *o = js ? json_loads(l[i], 0, NULL) : NULL;
        cr_assert(js ? o != NULL : strstr(l[i], " pagoda info] thread=") != NULL, "%s", l[i]);
        json_decref(o);
    }
    free_lines(l, n);
    unlink(file);
    rmdir(dir);
}
