/* Deployment INI files (runtime/config/ini.c): every kind of error with its PATH:LINE text,
 * a value valid as a flag is valid in the file and a bad one gets the flag's words,
 * precedence flag > file > default with the origin of each, ${NAME} expansion, repeatable
 * keys, the api_key_file permission warning, and --config taken out of a command line. */
#include "tests/lib/test_common.h"
#include "config.h"
#include "runtime/config/ini.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

PGD_TEST_SUITE(ini);

static char ini_path[64];

/* Writes text to a fresh temporary file; its path in ini_path. */
static void write_ini(const char *text)
{
    snprintf(ini_path, sizeof ini_path, "/tmp/pgd_test_ini_XXXXXX");
    int fd = mkstemp(ini_path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Loads text as an INI file into a fresh s; msgs with "PATH" in place of the file's path. */
static enum pgd_status load(struct pgd__settings *s, const char *text, char *msgs, size_t n)
{
    write_ini(text);
    pgd__settings_init(s);
    char raw[4096];
    enum pgd_status st = pgd__settings_load_ini(s, ini_path, raw, sizeof raw);
    unlink(ini_path);
    size_t pl = strlen(ini_path), o = 0;
    for (const char *p = raw; *p && o + 5 < n;)
        if (!strncmp(p, ini_path, pl)) {
            memcpy(msgs + o, "PATH", 4);
            o += 4;
            p += pl;
        } else {
            msgs[o++] = *p++;
        }
    msgs[o] = '\0';
    return st;
}

/* (INI text, the expected message): each file has exactly this one problem. */
static const struct { const char *text, *msg; } bad_files[] = {
    { "[model]\nmodel = m\n[egnine]\nseed = 1\n",
      "PATH:4: unknown section [egnine] (did you mean [engine]?); the sections are [model], "
      "[engine], [plugins], [frontend.openai], [frontend.repl] and [log]\n" },
    { "seed = 1\n",
      "PATH:1: a key before any [section]: the sections are [model], [engine], [plugins], "
      "[frontend.openai], [frontend.repl] and [log]\n" },
    { "[model]\nmax_model_lenn = 4096\n",
      "PATH:2: unknown key max_model_lenn in [model] (did you mean max_model_len?)\n" },
    { "[model]\nwhatever_this_is = 1\n", "PATH:2: unknown key whatever_this_is in [model]\n" },
    { "[engine]\napi_key = k\n", "PATH:2: api_key belongs in [frontend.openai], not [engine]\n" },
    { "[engine]\nblock_size = sixteen\n",
      "PATH:2: block_size: 'sixteen' is not valid: expected an integer in [1, 1024]\n" },
    { "[engine]\ngpu_memory_utilization = 1.5\n",
      "PATH:2: gpu_memory_utilization: '1.5' is not valid: expected a number in [0.001, 1]\n" },
    { "[engine]\nenable_prefix_caching = maybe\n",
      "PATH:2: enable_prefix_caching: 'maybe' is not valid: expected true or false\n" },
    { "[engine]\nscheduling_policy = lifo\n",
      "PATH:2: scheduling_policy: 'lifo' is not valid: expected one of fcfs|priority\n" },
    { "[frontend.openai]\nport = 70000\n",
      "PATH:2: port: '70000' is not valid: expected an integer in [0, 65535]\n" },
    { "[engine]\nseed = 1\n\nseed = 2\n", "PATH:4: seed is given twice (first at line 2)\n" },
    { "[frontend.openai]\napi_key = ${PGD_TEST_INI_UNSET}\n",
      "PATH:2: api_key: the environment variable PGD_TEST_INI_UNSET (${PGD_TEST_INI_UNSET}) is "
      "not set\n" },
    { "[frontend.openai]\napi_key = ${PGD_TEST_INI_KEY\n",
      "PATH:2: api_key: '${PGD_TEST_INI_KEY' has an unclosed or empty ${...}\n" },
    { "[model]\nmodel = m\nthis is no key\n",
      "PATH:3: not '[section]', 'key = value' or a comment\n" },
};

Test(ini, each_bad_file_reports_its_one_problem_with_file_and_line)
{
    unsetenv("PGD_TEST_INI_UNSET");
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        struct pgd__settings s;
        char msgs[4096];
        enum pgd_status st = load(&s, bad_files[i].text, msgs, sizeof msgs);
        cr_expect_eq(st, PGD_ERR_INVALID_ARG, "case %zu", i);
        cr_expect_str_eq(msgs, bad_files[i].msg, "case %zu", i);
        pgd__settings_fini(&s);
    }
}

Test(ini, every_problem_of_a_file_is_listed_at_once)
{
    struct pgd__settings s;
    char msgs[4096];
    cr_assert_eq(load(&s, "[model]\nmax_model_len = x\n[engine]\nseed = -1\nhost = h\n", msgs,
                      sizeof msgs), PGD_ERR_INVALID_ARG);
    cr_expect(strstr(msgs, "PATH:2: max_model_len: 'x' is not valid"), "%s", msgs);
    cr_expect(strstr(msgs, "PATH:4: seed: '-1' is not valid"), "%s", msgs);
    cr_expect(strstr(msgs, "PATH:5: host belongs in [frontend.openai], not [engine]"), "%s",
              msgs);
    pgd__settings_fini(&s);
}

Test(ini, a_valid_file_sets_every_section_with_its_line)
{
    struct pgd__settings s;
    char msgs[4096];
    cr_assert_eq(load(&s, "; a deployment\n[model]\nmodel = /models/m\nmax_model_len = 8k\n"
                          "\n[engine]\nblock_size = 32\nenable_prefix_caching = off\n"
                          "[plugins]\nfrontend = openai\n[frontend.openai]\nport = 9000\n"
                          "[log]\nlog_level = debug\n", msgs, sizeof msgs), PGD_OK, "%s", msgs);
    cr_expect_str_eq(msgs, "");
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_MODEL), "/models/m");
    cr_expect_eq(pgd__settings_int(&s, PGD__S_MAX_MODEL_LEN), 8000);
    cr_expect_eq(pgd__settings_int(&s, PGD__S_BLOCK_SIZE), 32);
    cr_expect_not(pgd__settings_bool(&s, PGD__S_ENABLE_PREFIX_CACHING));
    cr_expect_eq(pgd__settings_int(&s, PGD__S_PORT), 9000);
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_LOG_LEVEL), "debug");
    char where[96];
    snprintf(where, sizeof where, "%s:7", ini_path);
    cr_expect_eq(s.v[PGD__S_BLOCK_SIZE].origin, PGD__SO_FILE);
    cr_expect_str_eq(s.v[PGD__S_BLOCK_SIZE].where, where);
    cr_expect_eq(s.v[PGD__S_SEED].origin, PGD__SO_DEFAULT);
    pgd__settings_fini(&s);
}

Test(ini, env_references_expand_in_values)
{
    setenv("PGD_TEST_INI_KEY", "s3cret", 1);
    struct pgd__settings s;
    char msgs[4096];
    cr_assert_eq(load(&s, "[frontend.openai]\napi_key = pre-${PGD_TEST_INI_KEY}-post\n", msgs,
                      sizeof msgs), PGD_OK, "%s", msgs);
    cr_expect_str_eq(pgd__settings_str(&s, PGD__S_API_KEY), "pre-s3cret-post");
    pgd__settings_fini(&s);
    unsetenv("PGD_TEST_INI_KEY");
}

Test(ini, repeatable_keys_collect_every_value)
{
    struct pgd__settings s;
    char msgs[4096];
    cr_assert_eq(load(&s, "[frontend.openai]\napi_key = a\napi_key = b\napi_key = c\n", msgs,
                      sizeof msgs), PGD_OK, "%s", msgs);
    cr_assert_eq(s.v[PGD__S_API_KEY].n_items, 3);
    cr_expect_str_eq(s.v[PGD__S_API_KEY].items[0], "a");
    cr_expect_str_eq(s.v[PGD__S_API_KEY].items[2], "c");
    pgd__settings_fini(&s);
}

Test(ini, an_api_key_file_readable_by_others_is_a_warning)
{
    char keys[] = "/tmp/pgd_test_keys_XXXXXX";
    int fd = mkstemp(keys);
    cr_assert(fd >= 0);
    close(fd);
    char text[256], msgs[4096];
    snprintf(text, sizeof text, "[frontend.openai]\napi_key_file = %s\n", keys);
    struct pgd__settings s;
    cr_assert_eq(chmod(keys, 0600), 0);
    cr_expect_eq(load(&s, text, msgs, sizeof msgs), PGD_OK);
    cr_expect_str_eq(msgs, "");
    pgd__settings_fini(&s);
    cr_assert_eq(chmod(keys, 0644), 0);
    cr_expect_eq(load(&s, text, msgs, sizeof msgs), PGD_OK, "a warning is no error");
    char want[256];
    snprintf(want, sizeof want, "PATH:2: warning: api_key_file %s is readable by group or "
             "others: `chmod 600 %s`\n", keys, keys);
    cr_expect_str_eq(msgs, want);
    pgd__settings_fini(&s);
    unlink(keys);
}

Test(ini, a_line_longer_than_the_reader_takes_is_an_error_not_a_cut_value)
{
    char text[512], msgs[4096];
    int n = snprintf(text, sizeof text, "[model]\nchat_template = ");
    memset(text + n, 'x', 300);
    snprintf(text + n + 300, sizeof text - (size_t)n - 300, "\n[engine]\nseed = 7\n");
    struct pgd__settings s;
    cr_expect_eq(load(&s, text, msgs, sizeof msgs), PGD_ERR_INVALID_ARG);
    cr_expect(!strncmp(msgs, "PATH:2: the line is longer than ", 32), "%s", msgs);
    cr_expect_null(pgd__settings_str(&s, PGD__S_CHAT_TEMPLATE));
    cr_expect_eq(pgd__settings_int(&s, PGD__S_SEED), 7, "the lines after it still count");
    pgd__settings_fini(&s);
}

Test(ini, a_missing_file_is_an_io_error_naming_it)
{
    struct pgd__settings s;
    pgd__settings_init(&s);
    char msgs[512];
    cr_expect_eq(pgd__settings_load_ini(&s, "/nonexistent/deploy.ini", msgs, sizeof msgs),
                 PGD_ERR_IO);
    cr_expect_str_eq(msgs, "/nonexistent/deploy.ini: cannot read: No such file or directory");
    pgd__settings_fini(&s);
}

/* The command line of `pagoda serve`, with --config FILE anywhere in it. */
static enum pgd_status from_command(struct pgd__settings *s, const char *const *words,
                                    char *msgs, size_t n)
{
    char *argv[32] = { "serve" };
    int argc = 1;
    for (; words[argc - 1]; argc++)
        argv[argc] = (char *)words[argc - 1];
    argv[argc] = NULL;
    bool help;
    pgd__settings_init(s);
    return pgd__settings_from_command(s, argc, argv, &help, msgs, n);
}

Test(ini, flags_override_the_file_and_the_file_overrides_defaults)
{
    write_ini("[model]\nmodel = /m\nmax_model_len = 2048\n[engine]\nblock_size = 32\n"
              "[frontend.openai]\napi_key = file-a\napi_key = file-b\n");
    struct pgd__settings s;
    char msgs[4096], where[96];
    const char *const words[] = { "--max-model-len", "1024", "--config", ini_path,
                                  "--api-key", "flag-k", NULL };
    cr_assert_eq(from_command(&s, words, msgs, sizeof msgs), PGD_OK, "%s", msgs);
    unlink(ini_path);
    cr_expect_eq(pgd__settings_int(&s, PGD__S_MAX_MODEL_LEN), 1024);
    cr_expect_str_eq(s.v[PGD__S_MAX_MODEL_LEN].where, "--max-model-len");
    cr_expect_eq(pgd__settings_int(&s, PGD__S_BLOCK_SIZE), 32);
    snprintf(where, sizeof where, "%s:5", ini_path);
    cr_expect_str_eq(s.v[PGD__S_BLOCK_SIZE].where, where);
    cr_expect_eq(s.v[PGD__S_SEED].origin, PGD__SO_DEFAULT);
    /* a flag replaces the file's whole list of a repeatable key */
    cr_assert_eq(s.v[PGD__S_API_KEY].n_items, 1);
    cr_expect_str_eq(s.v[PGD__S_API_KEY].items[0], "flag-k");
    pgd__settings_fini(&s);
}

Test(ini, config_flag_errors)
{
    struct pgd__settings s;
    char msgs[4096];
    const char *const twice[] = { "--config=a.ini", "--config", "b.ini", NULL };
    cr_expect_eq(from_command(&s, twice, msgs, sizeof msgs), PGD_ERR_INVALID_ARG);
    cr_expect_str_eq(msgs, "--config is given twice (a.ini and b.ini): give one file");
    pgd__settings_fini(&s);
    const char *const bare[] = { "m", "--config", NULL };
    cr_expect_eq(from_command(&s, bare, msgs, sizeof msgs), PGD_ERR_INVALID_ARG);
    cr_expect_str_eq(msgs, "--config needs a value (FILE: a deployment INI file)");
    pgd__settings_fini(&s);
    const char *const bad[] = { "--config", "/nonexistent/d.ini", NULL };
    cr_expect_eq(from_command(&s, bad, msgs, sizeof msgs), PGD_ERR_IO);
    pgd__settings_fini(&s);
}
