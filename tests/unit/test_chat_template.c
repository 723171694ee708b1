/* Chat templates: the Jinja interpreter against references rendered by transformers
 * (scripts/make_chat_template_refs.py), error locations, raise_exception, model directory
 * loading, the `pagoda chat-template` command, and a bounded fuzz run. */
#include "tests/lib/test_common.h"
#include "tests/lib/capture.h"
#include <pagoda/chat_template.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(chat_template);

#define FIX PGD_TEST_SRCDIR "/tests/fixtures/chat_templates"

static char *dumps(const json_t *j)
{
    return j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
}

/* Renders source with variables vars (a JSON object) and a one-message conversation. */
/* source (named name in messages; NULL: none) rendered over one user message "x". */
static enum pgd_status render_as(const char *source, const char *name, const char *vars,
                                 char **out, char *err, size_t errlen)
{
    struct pgd_chat_template *t;
    enum pgd_status st = pgd_chat_template_create(source, name, &t, err, errlen);
    if (st)
        return st;
    st = pgd_chat_template_render(t, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL, false, vars,
                                  NULL, NULL, out, NULL, err, errlen);
    pgd_chat_template_destroy(t);
    return st;
}

static enum pgd_status render_src(const char *source, const char *vars, char **out, char *err,
                                  size_t errlen)
{
    return render_as(source, NULL, vars, out, err, errlen);
}

/* Prints a readable diff hint: the first differing byte. */
static void report_mismatch(const char *what, const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    fprintf(stderr, "MISMATCH %s at byte %zu\n  want: %.*s|\n  got:  %.*s|\n", what, i, 160,
            want + (i > 40 ? i - 40 : 0), 160, got + (i > 40 ? i - 40 : 0));
}

Test(chat_template, interpreter_constructs_match_jinja2)
{
    json_error_t je;
    json_t *doc = json_load_file(FIX "/jinja_cases.json", 0, &je);
    cr_assert(doc, "jinja_cases.json: %s", je.text);
    json_t *cases = json_object_get(doc, "cases");
    size_t i, failures = 0;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *src = json_string_value(json_object_get(c, "template"));
        char *vars = dumps(json_object_get(c, "vars"));
        json_t *want = json_object_get(c, "expected");
        char *out = NULL, err[600] = "";
        enum pgd_status st = render_src(src, vars, &out, err, sizeof err);
        if (want) {
            if (st != PGD_OK) {
                fprintf(stderr, "FAIL %s: error %s\n", name, err);
                failures++;
            } else if (strcmp(out, json_string_value(want))) {
                report_mismatch(name, json_string_value(want), out);
                failures++;
            }
        } else {
            const char *type = json_string_value(json_object_get(c, "error_type"));
            const char *msg = json_string_value(json_object_get(c, "error"));
            if (st == PGD_OK) {
                fprintf(stderr, "FAIL %s: rendered '%s', transformers raised %s\n", name, out,
                        type);
                failures++;
            } else if (!strcmp(type, "TemplateError") &&
                       (st != PGD_ERR_INVALID_ARG || strcmp(err, msg))) {
                /* raise_exception(): the message reaches the caller unchanged */
                fprintf(stderr, "FAIL %s: raise_exception gave status %d '%s', want '%s'\n", name,
                        st, err, msg);
                failures++;
            } else if (strcmp(type, "TemplateError") && st != PGD_ERR_TEMPLATE) {
                fprintf(stderr, "FAIL %s: status %d (%s) for a template error\n", name, st, err);
                failures++;
            } else if (!err[0]) {
                fprintf(stderr, "FAIL %s: empty error message\n", name);
                failures++;
            }
        }
        free(out);
        free(vars);
    }
    cr_assert(json_array_size(cases) >= 100);
    cr_assert_eq(failures, 0, "%zu of %zu templates differ from jinja2 (details above)", failures,
                 json_array_size(cases));
    json_decref(doc);
}

/* Renders every conversation of refs/<model>.json with the model's template. */
static void check_model(const char *model)
{
    char path[512];
    snprintf(path, sizeof path, "%s/refs/%s.json", FIX, model);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    cr_assert(doc, "%s: %s", path, je.text);
    const char *dir = json_string_value(json_object_get(doc, "dir"));
    cr_assert(dir, "%s: no \"dir\"", path);
    char mdir[512];
    snprintf(mdir, sizeof mdir, "%s/%s", FIX, dir);
    char err[1024];
    struct pgd_chat_template_config cfg;
    cr_assert_eq(pgd_chat_template_config_load(mdir, &cfg, err, sizeof err), PGD_OK, "%s", err);
    struct pgd_chat_template *tpl;
    cr_assert_eq(pgd_chat_template_create(cfg.source, cfg.path, &tpl, err, sizeof err), PGD_OK,
                 "%s", err);
    json_t *cases = json_object_get(doc, "cases"), *c;
    size_t i, failures = 0, raised = 0;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        char *msgs = dumps(json_object_get(c, "messages"));
        char *tools = dumps(json_object_get(c, "tools"));
        char *kwargs = dumps(json_object_get(c, "kwargs"));
        bool gen = json_is_true(json_object_get(c, "add_generation_prompt"));
        char *out = NULL;
        size_t len = 0;
        enum pgd_status st = pgd_chat_template_render(tpl, msgs, tools, gen, kwargs,
                                                      cfg.bos_token, cfg.eos_token, &out, &len,
                                                      err, sizeof err);
        json_t *want = json_object_get(c, "expected");
        if (want) {
            if (st) {
                fprintf(stderr, "FAIL %s/%s: %s\n", model, name, err);
                failures++;
            } else if (len != json_string_length(want) || memcmp(out, json_string_value(want), len)) {
                char what[256];
                snprintf(what, sizeof what, "%s/%s", model, name);
                report_mismatch(what, json_string_value(want), out);
                failures++;
            }
        } else {
            raised++;
            const char *msg = json_string_value(json_object_get(c, "error"));
            if (st != PGD_ERR_INVALID_ARG || strcmp(err, msg)) {
                fprintf(stderr, "FAIL %s/%s: status %d '%s', want raise_exception('%s')\n", model,
                        name, st, st ? err : out, msg);
                failures++;
            }
        }
        free(out);
        free(msgs);
        free(tools);
        free(kwargs);
    }
    cr_assert_geq(json_array_size(cases), 10);
    cr_assert_eq(failures, 0, "%s: %zu of %zu conversations differ from transformers", model,
                 failures, json_array_size(cases));
    (void)raised;
    pgd_chat_template_destroy(tpl);
    pgd_chat_template_config_fini(&cfg);
    json_decref(doc);
}

Test(chat_template, llama2_chat_matches_transformers) { check_model("llama2-chat"); }
Test(chat_template, llama3_style_matches_transformers) { check_model("llama3-style"); }
Test(chat_template, smollm2_matches_transformers) { check_model("smollm2"); }
Test(chat_template, qwen2_5_matches_transformers) { check_model("qwen2.5-instruct"); }
Test(chat_template, qwen3_matches_transformers) { check_model("qwen3"); }
Test(chat_template, mistral_matches_transformers) { check_model("mistral-instruct"); }

/* ---- errors ----------------------------------------------------------------------------- */

static void expect_error(const char *src, const char *vars, enum pgd_status want,
                         const char *fragment)
{
    char *out = NULL, err[600] = "";
    enum pgd_status st = render_src(src, vars, &out, err, sizeof err);
    cr_assert_eq(st, want, "template %s: status %d (%s), want %d", src, st, st ? err : out, want);
    cr_assert(strstr(err, fragment), "template %s: error '%s' lacks '%s'", src, err, fragment);
    free(out);
}

Test(chat_template, syntax_errors_name_line_and_column)
{
    expect_error("line one\n{% if true %}\n  {% endfor %}", NULL, PGD_ERR_TEMPLATE,
                 "line 3, column 6: Encountered unknown tag 'endfor'");
    expect_error("{{ 1 +* 2 }}", NULL, PGD_ERR_TEMPLATE, "line 1, column 7: unexpected '*'");
    expect_error("ab\n\n   {{ x ", NULL, PGD_ERR_TEMPLATE, "line 3, column 4: unexpected end");
    expect_error("{% for x in y %}{{ x }}", NULL, PGD_ERR_TEMPLATE,
                 "Unexpected end of template. Jinja was looking for the following tags: "
                 "'endfor' or 'else'");
    expect_error("{{ 'unterminated }}", NULL, PGD_ERR_TEMPLATE, "line 1, column 4: unterminated");
    expect_error("é{# never closed", NULL, PGD_ERR_TEMPLATE, "line 1, column 2: missing end of "
                                                               "comment");
    expect_error("{% frobnicate %}", NULL, PGD_ERR_TEMPLATE, "unknown tag 'frobnicate'");
    expect_error("{{ (1, 2 }}", NULL, PGD_ERR_TEMPLATE, "unexpected '}', expected ')'");
    expect_error("{% break %}", NULL, PGD_ERR_TEMPLATE, "'break' outside of a loop");
}

Test(chat_template, runtime_errors_name_line_and_column)
{
    expect_error("ok\n  {{ d.a.b }}", "{\"d\":{}}", PGD_ERR_TEMPLATE,
                 "line 2, column 9: 'dict object' has no attribute 'a'");
    expect_error("{{ 'a' + 1 }}", NULL, PGD_ERR_TEMPLATE,
                 "line 1, column 8: can only concatenate str (not \"int\") to str");
    expect_error("{{ x|nosuch }}", NULL, PGD_ERR_TEMPLATE, "No filter named 'nosuch'");
    expect_error("{{ 1 // 0 }}", NULL, PGD_ERR_TEMPLATE, "by zero");
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, PGD_ERR_TEMPLATE,
                 "too deeply");
}

Test(chat_template, work_budget_stops_endless_loops)
{
    struct pgd_chat_template *t;
    char err[256], *out = NULL;
    cr_assert_eq(pgd_chat_template_create("{% set r = range(100000) %}{% for i in r %}"
                                          "{% for j in r %}{% endfor %}{% endfor %}", NULL, &t,
                                          err, sizeof err), PGD_OK);
    struct pgd_chat_template_limits lim = pgd_chat_template_default_limits();
    lim.max_steps = 2000000;
    lim.max_memory_bytes = 64 << 20;   /* iterating must not allocate per item */
    pgd_chat_template_set_limits(t, &lim);
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", NULL, false, NULL, NULL, NULL, &out, NULL,
                                          err, sizeof err), PGD_ERR_TEMPLATE);
    cr_assert(strstr(err, "line 1, column 47: chat template exceeded its work budget"), "%s",
              err);
    pgd_chat_template_destroy(t);
}

Test(chat_template, raise_exception_reaches_the_caller)
{
    char *out = NULL, err[256];
    enum pgd_status st = render_src("{% if messages|length < 2 %}"
                                    "{{ raise_exception('need ' ~ 2 ~ ' messages') }}{% endif %}",
                                    NULL, &out, err, sizeof err);
    cr_assert_eq(st, PGD_ERR_INVALID_ARG);
    cr_assert_str_eq(err, "need 2 messages");
    cr_assert_null(out);
    /* the template's name prefixes template errors but never raise_exception's message */
    st = render_as("{{ raise_exception('nope') }}", "my.json", NULL, &out, err, sizeof err);
    cr_assert_eq(st, PGD_ERR_INVALID_ARG);
    cr_assert_str_eq(err, "nope");
    /* an empty message still gives an error that says what happened, under the name */
    st = render_as("{{ raise_exception('') }}", "my.json", NULL, &out, err, sizeof err);
    cr_assert_eq(st, PGD_ERR_INVALID_ARG);
    cr_assert_str_eq(err, "my.json: the template called raise_exception() without a message");
    st = render_as("\n{{ x.y.z }}", "my.json", NULL, &out, err, sizeof err);
    cr_assert_eq(st, PGD_ERR_TEMPLATE);
    cr_assert_str_eq(err, "my.json: line 2, column 5: 'x' is undefined");
    cr_assert_null(out);
}

Test(chat_template, bad_inputs_are_invalid_arguments)
{
    struct pgd_chat_template *t;
    char err[256], *out = NULL;
    cr_assert_eq(pgd_chat_template_create("{{ messages }}", NULL, &t, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd_chat_template_render(t, "[", NULL, false, NULL, NULL, NULL, &out, NULL, err,
                                          sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "messages: invalid JSON"), "%s", err);
    cr_assert_eq(pgd_chat_template_render(t, "[]", NULL, false, NULL, NULL, NULL, &out, NULL, err,
                                          sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd_chat_template_render(t, "[1]", NULL, false, NULL, NULL, NULL, &out, NULL,
                                          err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", "{}", false, NULL, NULL, NULL, &out, NULL,
                                          err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", NULL, false, "{\"messages\":1}", NULL, NULL,
                                          &out, NULL, err, sizeof err), PGD_ERR_INVALID_ARG);
    /* null-valued keys are dropped, as apply_chat_template does */
    cr_assert_eq(pgd_chat_template_render(t, "[{\"role\":\"user\",\"content\":null}]", NULL,
                                          false, NULL, NULL, NULL, &out, NULL, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_assert_str_eq(out, "[{'role': 'user'}]");
    free(out);
    pgd_chat_template_destroy(t);
    cr_assert_eq(pgd_chat_template_create("\xff", NULL, &t, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
}

Test(chat_template, bos_and_eos_undefined_when_absent)
{
    char *out = NULL, err[256];
    struct pgd_chat_template *t;
    cr_assert_eq(pgd_chat_template_create("{{ bos_token is defined }}|{{ eos_token }}|"
                                          "{{ bos_token }}", NULL, &t, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", NULL, false, NULL, NULL, "</s>", &out, NULL,
                                          err, sizeof err), PGD_OK, "%s", err);
    cr_assert_str_eq(out, "False|</s>|");
    free(out);
    /* keyword arguments override the special tokens, as in transformers */
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", NULL, false, "{\"bos_token\":\"B\"}", "<s>",
                                          "</s>", &out, NULL, err, sizeof err), PGD_OK);
    cr_assert_str_eq(out, "True|</s>|B");
    free(out);
    pgd_chat_template_destroy(t);
}

Test(chat_template, limits_bound_output_and_memory)
{
    struct pgd_chat_template *t;
    char err[256], *out = NULL;
    cr_assert_eq(pgd_chat_template_create("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}",
                                          NULL, &t, err, sizeof err), PGD_OK);
    struct pgd_chat_template_limits lim = pgd_chat_template_default_limits();
    lim.max_output_bytes = 10000;
    pgd_chat_template_set_limits(t, &lim);
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", NULL, false, NULL, NULL, NULL, &out, NULL,
                                          err, sizeof err), PGD_ERR_TEMPLATE);
    cr_assert(strstr(err, "output exceeds"), "%s", err);
    lim = pgd_chat_template_default_limits();
    lim.max_memory_bytes = 200000;
    pgd_chat_template_set_limits(t, &lim);
    cr_assert_eq(pgd_chat_template_render(t, "[{}]", NULL, false, NULL, NULL, NULL, &out, NULL,
                                          err, sizeof err), PGD_ERR_NOMEM);
    pgd_chat_template_destroy(t);
}

/* ---- model directories ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(chat_template, config_loads_tokens_and_named_templates)
{
    char dir[] = "/tmp/pgd-ct-XXXXXX";
    cr_assert(mkdtemp(dir));
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/tokenizer_config.json", dir);
    snprintf(p2, sizeof p2, "%s/chat_template.jinja", dir);
    char err[512];
    struct pgd_chat_template_config cfg;
    cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_ERR_NOT_FOUND);

    write_file(p1, "{\"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\"},"
                   " \"eos_token\": \"</s>\", \"model_max_length\": 1000000000000000019884624838656,"
                   " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
                   " {\"name\": \"default\", \"template\": \"D\"}]}");
    cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_str_eq(cfg.source, "D");
    cr_assert_str_eq(cfg.tool_use_source, "T");
    cr_assert_str_eq(cfg.bos_token, "<s>");
    cr_assert_str_eq(cfg.eos_token, "</s>");
    cr_assert_str_eq(cfg.path, p1);
    pgd_chat_template_config_fini(&cfg);

    /* chat_template.jinja takes precedence over tokenizer_config.json's template */
    write_file(p2, "{{ bos_token }}J\n");
    cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_str_eq(cfg.source, "{{ bos_token }}J\n");
    cr_assert_str_eq(cfg.path, p2);
    pgd_chat_template_config_fini(&cfg);
    unlink(p2);

    write_file(p1, "{\"chat_template\": [{\"name\": \"x\", \"template\": \"X\"}]}");
    cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, "default"), "%s", err);
    write_file(p1, "{\"chat_template\": 5}");
    cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, p1), "%s", err);
    write_file(p1, "{\"chat_template\": ");
    cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, p1) && strstr(err, "line 1"), "%s", err);
    unlink(p1);
    rmdir(dir);
}

/* ---- the pagoda command ----------------------------------------------------------------- */

static char *run_cli(const char *args, const char *input, int *rc)
{
    char cmd[1024], inpath[] = "/tmp/pgd-ct-in-XXXXXX";
    int fd = mkstemp(inpath);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, input, strlen(input)), (ssize_t)strlen(input));
    close(fd);
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda chat-template %s < %s 2>&1", PGD_TEST_BUILDDIR,
             args, inpath);
    int st;
    char *out = pgd_test_capture(cmd, &st);
    *rc = WEXITSTATUS(st);
    unlink(inpath);
    return out;
}

Test(chat_template, cli_renders_prompt_and_reports_errors)
{
    json_error_t je;
    json_t *doc = json_load_file(FIX "/refs/qwen3.json", 0, &je);
    cr_assert(doc);
    json_t *c = NULL, *it;
    size_t i;
    json_array_foreach(json_object_get(doc, "cases"), i, it)
        if (!strcmp(json_string_value(json_object_get(it, "name")), "thinking_disabled"))
            c = it;
    cr_assert(c);
    json_t *req = json_pack("{sOsO}", "messages", json_object_get(c, "messages"),
                            "chat_template_kwargs", json_object_get(c, "kwargs"));
    char *in = dumps(req);
    int rc;
    char *out = run_cli("--model " FIX "/qwen3 --add-generation-prompt", in, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, json_string_value(json_object_get(c, "expected")));
    free(out);
    free(in);
    json_decref(req);
    json_decref(doc);

    out = run_cli("--model " FIX "/llama2-chat", "[{\"role\":\"assistant\",\"content\":\"a\"}]",
                  &rc);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "llama2-chat/tokenizer_config.json: Conversation roles must alternate"),
              "%s", out);
    free(out);

    char dir[] = "/tmp/pgd-ct-XXXXXX", path[300];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    write_file(path, "{% for m in messages %}\n{{ m.content | nosuch }}\n{% endfor %}\n");
    char args[400];
    snprintf(args, sizeof args, "--model %s", dir);
    out = run_cli(args, "[{\"role\":\"user\",\"content\":\"a\"}]", &rc);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "chat_template.jinja: line 2, column 16: No filter named 'nosuch'"), "%s",
              out);
    free(out);
    unlink(path);
    rmdir(dir);
}

/* ---- fuzz ------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char *const fragments[] = {
    "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "+%}", "{%+", " if ",
    " for ", " in ", " endfor ", " endif ", " else ", " elif ", " set ", " = ", " x ", " loop ",
    ".index", " messages ", "[0]", "[::-1]", "[1:]", "(", ")", "[", "]", "{", "}", ",", ":",
    "|", " tojson ", " trim ", " length ", " join ", " items ", " selectattr('role') ",
    " is ", " not ", " defined ", " none ", " and ", " or ", "'str'", "\"s\\n\"", "1", "2.5",
    "-", "+", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "\n", "  ", "namespace(",
    "ns.a", " macro ", " endmacro ", " call ", " endcall ", " raw ", " endraw ", "caller()",
    " break ", " continue ", "range(", "true", "none", "'é😀'", "\\", "'", "\"", "dict(",
    ".strip()", ".split(", ".startswith(", "raise_exception(", " recursive ", " with ",
    " filter ", " generation ", "{{ x }}", "{% if x %}", "{% endif %}", "{% for x in y %}",
    "{% endfor %}", "{% set x = [x] %}", "{{ x|tojson }}",
};

static char *random_template(void)
{
    size_t n = rnd() % 40, cap = 4096, len = 0;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        const char *f = fragments[rnd() % (sizeof fragments / sizeof *fragments)];
        size_t fl = strlen(f);
        if (len + fl + 1 >= cap)
            break;
        memcpy(s + len, f, fl);
        len += fl;
    }
    return s;
}

static char *mutate(const char *src)
{
    size_t n = strlen(src), cap = n * 2 + 256;
    char *s = malloc(cap);
    memcpy(s, src, n + 1);
    int edits = 1 + (int)(rnd() % 6);
    for (int e = 0; e < edits; e++) {
        size_t len = strlen(s);
        size_t at = len ? rnd() % len : 0;
        switch (rnd() % 4) {
        case 0:   /* delete a span */
            if (len) {
                size_t k = 1 + rnd() % 16;
                if (at + k > len)
                    k = len - at;
                memmove(s + at, s + at + k, len - at - k + 1);
            }
            break;
        case 1: { /* insert a fragment */
            const char *f = fragments[rnd() % (sizeof fragments / sizeof *fragments)];
            size_t fl = strlen(f);
            if (len + fl + 1 < cap) {
                memmove(s + at + fl, s + at, len - at + 1);
                memcpy(s + at, f, fl);
            }
            break;
        }
        case 2:   /* replace a byte with a printable one */
            if (len)
                s[at] = (char)(32 + rnd() % 95);
            break;
        default:  /* truncate */
            s[at] = '\0';
        }
    }
    return s;
}

Test(chat_template, fuzzed_templates_never_crash, .timeout = 300)
{
    static const char *const models[] = { "qwen3", "mistral-instruct", "qwen2.5-instruct",
                                          "llama2-chat" };
    char *seeds[4];
    for (int m = 0; m < 4; m++) {
        char dir[300], err[256];
        snprintf(dir, sizeof dir, "%s/%s", FIX, models[m]);
        struct pgd_chat_template_config cfg;
        cr_assert_eq(pgd_chat_template_config_load(dir, &cfg, err, sizeof err), PGD_OK);
        seeds[m] = strdup(cfg.source);
        pgd_chat_template_config_fini(&cfg);
    }
    const char *msgs =
        "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"u é\"},"
        "{\"role\":\"assistant\",\"content\":\"<think>\\nr\\n</think>\\n\\na\",\"tool_calls\":"
        "[{\"id\":\"abcdefghi\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":[1,2.5,null]}}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"abcdefghi\",\"content\":\"r\"}]";
    const char *vars = "{\"x\":[1,\"two\",{\"k\":null}],\"y\":{\"a\":1},\"enable_thinking\":false}";
    struct pgd_chat_template_limits lim = { .max_steps = 200000, .max_output_bytes = 1 << 20,
                                            .max_memory_bytes = 16 << 20, .max_depth = 200 };
    size_t ok = 0, failed = 0;
    for (int iter = 0; iter < 4000; iter++) {
        char *src = iter % 2 ? random_template() : mutate(seeds[rnd() % 4]);
        struct pgd_chat_template *t;
        char err[600] = "", *out = NULL;
        enum pgd_status st = pgd_chat_template_create(src, "fuzz", &t, err, sizeof err);
        if (st == PGD_OK) {
            pgd_chat_template_set_limits(t, &lim);
            st = pgd_chat_template_render(t, msgs, "[{\"type\":\"function\"}]", iter % 3 == 0,
                                          vars, "<s>", "</s>", &out, NULL, err, sizeof err);
            pgd_chat_template_destroy(t);
        }
        if (st == PGD_OK) {
            cr_assert_not_null(out);
            ok++;
        } else {
            cr_assert_null(out);
            cr_assert(st == PGD_ERR_TEMPLATE || st == PGD_ERR_INVALID_ARG ||
                      st == PGD_ERR_NOMEM || st == PGD_ERR_UNSUPPORTED, "status %d", st);
            cr_assert(err[0], "empty error for template: %s", src);
            failed++;
        }
        free(out);
        free(src);
    }
    /* both outcomes must be exercised, or the fuzzer tests nothing */
    cr_assert_gt(ok, 100);
    cr_assert_gt(failed, 100);
    for (int m = 0; m < 4; m++)
        free(seeds[m]);
}
