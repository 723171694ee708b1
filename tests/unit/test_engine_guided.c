/* Structured output end to end through pgd_engine_submit on the tiny-chat fixture (random
 * weights and a real byte-level BPE tokenizer, so only the constraint gives the output any
 * shape): a JSON Schema request's output parses (jansson) and fits the schema, a regex
 * request's matches the regex (PCRE2), a choice gives one of the choices, a grammar request
 * matches its grammar, json_object gives an object; each ends with "stop" when its grammar
 * is complete; invalid guides are refused at submit; free requests in the same batch are
 * untouched. */
#include <criterion/criterion.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "runtime/engine/engine_backend.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include <jansson.h>
#include <pagoda/tokenizer.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(guided);

static struct pgd_engine *tiny(void)
{
    return model_engine("tiny-chat", PGD_DEVICE_CPU, 256, 16, 256, 8);
}

struct out {
    char text[8][4096];
    size_t len[8];
    int n_tokens[8];
    int32_t ids[8][512];
    int32_t last[8];
    enum pgd_finish_reason finish[8];
    char error[8][512];              /* PGD_FINISH_ERROR's reason */
};

static void collect(struct pgd_stream *s, struct out *o)
{
    memset(o, 0, sizeof *o);
    struct pgd_output x;
    enum pgd_status st;
    while ((st = pgd_stream_next(s, &x, 60000)) == PGD_OK) {
        cr_assert(x.index >= 0 && x.index < 8);
        cr_assert_lt(o->len[x.index] + x.text_len, sizeof o->text[0]);
        memcpy(o->text[x.index] + o->len[x.index], x.text, x.text_len);
        o->len[x.index] += x.text_len;
        for (int k = 0; k < x.n_token_ids && o->n_tokens[x.index] < 512; k++)
            o->ids[x.index][o->n_tokens[x.index]++] = x.token_ids[k];
        if (x.n_token_ids)
            o->last[x.index] = x.token_ids[x.n_token_ids - 1];
        if (x.finish_reason)
            o->finish[x.index] = x.finish_reason;
        cr_assert_eq(!!x.error, x.finish_reason == PGD_FINISH_ERROR, "an error goes with "
                     "PGD_FINISH_ERROR, and only with it");
        if (x.error)
            snprintf(o->error[x.index], sizeof o->error[0], "%s", x.error);
    }
    cr_assert_eq(st, PGD_ERR_CLOSED, "stream ended with %s", pgd_status_str(st));
    pgd_stream_destroy(s);
}

static struct pgd_stream *submit(struct pgd_engine *e, const char *prompt,
                                 struct pgd_sampling_params sp)
{
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt = prompt;
    r.sampling = sp;
    struct pgd_stream *s;
    char err[512];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    return s;
}

static struct pgd_sampling_params guided(enum pgd_guide_kind kind, const char *guide,
                                         uint64_t seed)
{
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.guide_kind = kind;
    sp.guide = guide;
    sp.max_tokens = 400;
    sp.temperature = 1.0f;
    sp.has_seed = true;
    sp.seed = seed;
    return sp;
}

/* The output ended because its grammar was complete: "stop", and not by EOS. */
static void assert_complete(const struct out *o, int i, const char *what)
{
    cr_assert_eq(o->finish[i], PGD_FINISH_STOP, "%s: finish %s after %d tokens: \"%.*s\"", what,
                 pgd_finish_reason_str(o->finish[i]), o->n_tokens[i], (int)o->len[i],
                 o->text[i]);
}

static bool re_full_match(const char *re, const char *s, size_t n)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off,
                                  NULL);
    cr_assert_not_null(c, "bad test regex %s", re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    int rc = pcre2_match(c, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(c);
    return rc >= 0;
}

/* ---- JSON Schema ------------------------------------------------------------------------ */

static const char *PERSON =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"maxLength\":6},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":120},"
    "\"role\":{\"enum\":[\"admin\",\"user\",\"guest\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":3},\"maxItems\":2},"
    "\"ok\":{\"type\":\"boolean\"},"
    "\"when\":{\"type\":\"string\",\"format\":\"date\"}"
    "},\"required\":[\"name\",\"age\",\"role\",\"ok\",\"when\"],\"additionalProperties\":false}";

/* The structure of PERSON, checked on the parsed output. */
static void check_person(const char *text, size_t len)
{
    json_error_t je;
    json_t *v = json_loadb(text, len, 0, &je);
    cr_assert_not_null(v, "output does not parse: %s: \"%.*s\"", je.text, (int)len, text);
    cr_assert(json_is_object(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        cr_assert(strcmp(k, "name") == 0 || strcmp(k, "age") == 0 || strcmp(k, "role") == 0 ||
                  strcmp(k, "tags") == 0 || strcmp(k, "ok") == 0 || strcmp(k, "when") == 0,
                  "unexpected key %s", k);
    }
    json_t *name = json_object_get(v, "name"), *age = json_object_get(v, "age");
    json_t *role = json_object_get(v, "role"), *tags = json_object_get(v, "tags");
    json_t *ok = json_object_get(v, "ok"), *when = json_object_get(v, "when");
    cr_assert(json_is_string(name) && json_string_length(name) <= 6 * 4);
    cr_assert(json_is_integer(age) && json_integer_value(age) >= 0 &&
              json_integer_value(age) <= 120, "age %s", json_dumps(age, JSON_ENCODE_ANY));
    cr_assert(json_is_string(role));
    const char *r = json_string_value(role);
    cr_assert(!strcmp(r, "admin") || !strcmp(r, "user") || !strcmp(r, "guest"));
    if (tags) {
        cr_assert(json_is_array(tags) && json_array_size(tags) <= 2);
        for (size_t i = 0; i < json_array_size(tags); i++)
            cr_assert(json_is_string(json_array_get(tags, i)));
    }
    cr_assert(json_is_boolean(ok));
    cr_assert(json_is_string(when));
    cr_assert(re_full_match("[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
                            json_string_value(when), json_string_length(when)));
    json_decref(v);
}

Test(guided, json_schema_output_parses_and_fits_the_schema, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    struct pgd_stream *s[4];
    for (int i = 0; i < 4; i++) {
        struct pgd_sampling_params sp = guided(PGD_GUIDE_JSON_SCHEMA, PERSON, 11 + (uint64_t)i);
        if (i == 3)
            sp.temperature = 0.0f;          /* greedy too */
        s[i] = submit(e, "Give me a person as JSON:", sp);
    }
    for (int i = 0; i < 4; i++) {
        struct out o;
        collect(s[i], &o);
        assert_complete(&o, 0, "json_schema");
        check_person(o.text[0], o.len[0]);
    }
    pgd_engine_destroy(e);
}

Test(guided, json_object_gives_an_object, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    /* A random model wanders inside strings; a bias toward closing quotes and braces keeps
     * the object short (the constraint alone decides what is valid). */
    const struct pgd_tokenizer *tok = pgd_engine_tokenizer(e);
    struct pgd_logit_bias bias[3];
    const char *close[3] = { "\"", "}", "\",\"" };
    int nb = 0;
    for (int i = 0; i < 3; i++) {
        struct pgd_tokens t = { 0 };
        char err[128];
        cr_assert_eq(pgd_tokenizer_encode(tok, close[i], strlen(close[i]), false, &t, err,
                                          sizeof err), PGD_OK);
        if (t.n == 1)
            bias[nb++] = (struct pgd_logit_bias){ t.ids[0], 6.0f };
        pgd_tokens_fini(&t);
    }
    cr_assert_gt(nb, 0);
    for (int i = 0; i < 3; i++) {
        struct pgd_sampling_params sp = guided(PGD_GUIDE_JSON_OBJECT, NULL, 5 + (uint64_t)i);
        sp.logit_bias = bias;
        sp.n_logit_bias = nb;
        struct out o;
        collect(submit(e, "JSON:", sp), &o);
        assert_complete(&o, 0, "json_object");
        json_error_t je;
        json_t *v = json_loadb(o.text[0], o.len[0], 0, &je);
        cr_assert_not_null(v, "json_object output does not parse: %s: \"%.*s\"", je.text,
                           (int)o.len[0], o.text[0]);
        cr_assert(json_is_object(v));
        json_decref(v);
    }
    pgd_engine_destroy(e);
}

/* ---- regex, choice, grammar ---------------------------------------------------------------- */

Test(guided, regex_output_matches_the_regex, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    static const char *RES[] = {
        "[a-z]{3,8}@[a-z]{2,5}\\.(com|org)",
        "\\d{3}-\\d{4}",
        "(yes|no|maybe)!?",
        "[A-Z][a-z]{1,5}( [A-Z][a-z]{1,5}){0,2}",
        "\xc3\xa9t\xc3\xa9|\xe2\x82\xac[0-9]{1,2}",
    };
    for (size_t i = 0; i < sizeof RES / sizeof *RES; i++)
        for (uint64_t seed = 1; seed <= 2; seed++) {
            struct out o;
            collect(submit(e, "Answer:", guided(PGD_GUIDE_REGEX, RES[i], seed)), &o);
            assert_complete(&o, 0, RES[i]);
            cr_assert(re_full_match(RES[i], o.text[0], o.len[0]), "regex %s: output \"%.*s\" "
                      "(%d tokens: %d %d %d %d)", RES[i], (int)o.len[0], o.text[0], o.n_tokens[0],
                      o.ids[0][0], o.ids[0][1], o.ids[0][2], o.ids[0][3]);
        }
    pgd_engine_destroy(e);
}

Test(guided, choice_gives_one_of_the_choices, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    const char *choices = "[\"alpha\", \"beta\", \"gamma delta\", \"al\"]";
    for (uint64_t seed = 1; seed <= 6; seed++) {
        struct pgd_sampling_params sp = guided(PGD_GUIDE_CHOICE, choices, seed);
        struct out o;
        collect(submit(e, "Pick:", sp), &o);
        const char *t = o.text[0];
        size_t n = o.len[0];
        bool one = (n == 5 && !memcmp(t, "alpha", 5)) || (n == 4 && !memcmp(t, "beta", 4)) ||
                   (n == 11 && !memcmp(t, "gamma delta", 11)) || (n == 2 && !memcmp(t, "al", 2));
        cr_assert(one, "choice output \"%.*s\"", (int)n, t);
        /* "al" is a prefix of "alpha": there the model may end (EOS) or go on */
        cr_assert_eq(o.finish[0], PGD_FINISH_STOP);
    }
    pgd_engine_destroy(e);
}

Test(guided, grammar_output_matches_the_grammar, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    const char *g = "root ::= num (op num){0,3}\n"
                    "num ::= [1-9] [0-9]{0,2} | \"(\" num op num \")\"\n"
                    "op ::= \" + \" | \" * \"\n";
    /* num nests at most 3 deep here only by chance; the check allows any nesting */
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct out o;
        collect(submit(e, "Compute:", guided(PGD_GUIDE_GRAMMAR, g, seed)), &o);
        if (o.finish[0] == PGD_FINISH_LENGTH)
            continue;               /* a deep nesting ran out of tokens: nothing to check */
        assert_complete(&o, 0, "grammar");
        /* strip the parentheses level by level, then the flat form must match */
        char buf[4096];
        memcpy(buf, o.text[0], o.len[0]);
        buf[o.len[0]] = '\0';
        bool changed = true;
        while (changed) {
            changed = false;
            char *open = NULL;
            for (char *p = buf; *p; p++) {
                if (*p == '(')
                    open = p;
                else if (*p == ')' && open) {
                    /* (a op b) -> 1 */
                    cr_assert(re_full_match("[1-9][0-9]{0,2}( \\+ | \\* )[1-9][0-9]{0,2}", open + 1,
                                            (size_t)(p - open - 1)), "bad group in \"%s\"", buf);
                    *open = '1';
                    memmove(open + 1, p + 1, strlen(p + 1) + 1);
                    changed = true;
                    break;
                }
            }
        }
        cr_assert(re_full_match("[1-9][0-9]{0,2}(( \\+ | \\* )[1-9][0-9]{0,2}){0,3}", buf,
                                strlen(buf)), "grammar output \"%.*s\"", (int)o.len[0],
                  o.text[0]);
    }
    pgd_engine_destroy(e);
}

/* ---- jump-forward ------------------------------------------------------------------------- */

/* One request on a fresh engine, jump-forward on or off: its output and the steps taken. */
static uint64_t run_counting_steps(bool jump, const char *prompt, struct pgd_sampling_params sp,
                                   struct out *o)
{
    struct pgd_engine *e = tiny();
    pgd__engine_set_jump_forward(e, jump);
    struct pgd_engine_stats a, b;
    pgd_engine_get_stats(e, &a);
    collect(submit(e, prompt, sp), o);
    pgd_engine_get_stats(e, &b);
    pgd_engine_destroy(e);
    return b.num_steps - a.num_steps;
}

/* Where the grammar leaves one token (characters no merge of the small vocabulary starts
 * with), jump-forward appends it without a model step: the same tokens in fewer steps; a
 * JSON Schema request (few forced tokens in a BPE vocabulary) gives the same tokens too;
 * a request with logprobs is never jumped (a forced token has no logits). */
Test(guided, jump_forward_gives_the_same_tokens_in_fewer_steps, .timeout = 120)
{
    struct {
        enum pgd_guide_kind kind;
        const char *guide;
        int logprobs;
        int fewer;                  /* steps saved at least */
    } C[] = {
        { PGD_GUIDE_GRAMMAR, "root ::= [0-9] \"~^~^~^\"", -1, 5 },
        { PGD_GUIDE_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},"
          "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"n\",\"ok\"]}", -1, 0 },
        { PGD_GUIDE_GRAMMAR, "root ::= [0-9] \"~^~^~^\"", 0, 0 },
    };
    for (size_t i = 0; i < sizeof C / sizeof *C; i++) {
        struct pgd_sampling_params sp = guided(C[i].kind, C[i].guide, 11 + i);
        sp.max_tokens = 64;
        sp.logprobs = C[i].logprobs;
        struct out off, on;
        uint64_t steps_off = run_counting_steps(false, "Answer:", sp, &off);
        uint64_t steps_on = run_counting_steps(true, "Answer:", sp, &on);
        cr_assert_eq(on.n_tokens[0], off.n_tokens[0], "case %zu: %d tokens, %d without", i,
                     on.n_tokens[0], off.n_tokens[0]);
        cr_assert_eq(memcmp(on.ids[0], off.ids[0], (size_t)on.n_tokens[0] * sizeof(int32_t)), 0,
                     "case %zu: \"%s\" with jump-forward, \"%s\" without", i, on.text[0],
                     off.text[0]);
        cr_assert_eq(on.finish[0], PGD_FINISH_STOP, "case %zu", i);
        if (C[i].fewer > 0)
            cr_assert_geq(steps_off - steps_on, (uint64_t)C[i].fewer, "case %zu: %llu steps, "
                          "%llu without (\"%s\")", i, (unsigned long long)steps_on,
                          (unsigned long long)steps_off, on.text[0]);
        else if (C[i].logprobs >= 0)
            cr_assert_eq(steps_on, steps_off, "case %zu: logprobs asked, yet jumped", i);
        else
            cr_assert_leq(steps_on, steps_off, "case %zu", i);
    }
}

/* Runs a[n] of mode `mode` and b[n] (the reference) gave the same first samples: tokens,
 * finish. */
static void assert_same_outputs(const struct out *a, const struct out *b, int n, int mode)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(a[i].n_tokens[0], b[i].n_tokens[0], "mode %d request %d", mode, i);
        cr_assert_eq(memcmp(a[i].ids[0], b[i].ids[0], (size_t)b[i].n_tokens[0] * sizeof(int32_t)),
                     0, "mode %d request %d: \"%s\", the reference \"%s\"", mode, i,
                     a[i].text[0], b[i].text[0]);
        cr_assert_eq(a[i].finish[0], b[i].finish[0], "mode %d request %d", mode, i);
    }
}

/* ---- async scheduling ---------------------------------------------------------------------- */

/* Constrained requests, one with bad words and a free one side by side, stepped in turn
 * (mode 0), with async scheduling on the CPU runner (mode 1: it runs each step as it is
 * submitted, so a step with a mask to make lands the one before first), and with async
 * scheduling over the stand-in of a GPU's async pair (mode 2: each step is planned while
 * the one before runs, its masks made once that one lands, and sampled then; mode 3: the
 * same without jump-forward): the same tokens. A free request alone afterwards overlaps in
 * every async mode. */
Test(guided, async_scheduling_keeps_constrained_outputs, .timeout = 120)
{
    static struct out got[4][5];
    struct pgd_engine_stats st[4], st_constrained[4];
    uint64_t json_steps[4] = { 0 };
    long late_steps = 0;
    for (int mode = 0; mode < 4; mode++) {
        struct pgd_engine_params p = model_engine_sized(PGD_DEVICE_CPU, 256, 16, 256, 8);
        p.async_scheduling = mode >= 1;
        p.batch_invariant = true;    /* async batches differently: the same bits */
        struct pgd_engine *e = mode >= 2 ? model_engine_async_pair("tiny-chat", &p)
                                         : model_engine_params("tiny-chat", &p);
        pgd__engine_set_jump_forward(e, mode != 3);
        struct pgd_sampling_params fsp = pgd_sampling_default_params();
        fsp.temperature = 0.7f;
        fsp.has_seed = true;
        fsp.seed = 77;
        fsp.max_tokens = 40;
        fsp.ignore_eos = true;
        struct pgd_sampling_params bw = fsp;
        const char *words[] = { " the", " and" };
        bw.bad_words = words;
        bw.n_bad_words = 2;
        bw.seed = 78;
        struct pgd_stream *s[5] = {
            submit(e, "Once upon a time", fsp),
            submit(e, "Pick:", guided(PGD_GUIDE_REGEX, "[a-z]{10,20}", 3)),
            submit(e, "Give me a person as JSON:", guided(PGD_GUIDE_JSON_SCHEMA, PERSON, 4)),
            submit(e, "Answer:", guided(PGD_GUIDE_GRAMMAR, "root ::= [0-9] \"~^~^~^\"", 5)),
            submit(e, "Tell me a story", bw),
        };
        for (int i = 0; i < 5; i++)
            collect(s[i], &got[mode][i]);
        pgd_engine_get_stats(e, &st_constrained[mode]);
        if (mode == 2)
            late_steps = model_engine_late_steps(e);
        /* A free request alone: its steps overlap (in mode 1 a step with the constrained
         * ones lands the one in flight first, so whether those overlapped depends on
         * timing). */
        struct out alone;
        collect(submit(e, "Once upon a time", fsp), &alone);
        pgd_engine_get_stats(e, &st[mode]);
        /* The JSON request alone: its steps, with and without jump-forward. */
        struct out json;
        collect(submit(e, "Give me a person as JSON:", guided(PGD_GUIDE_JSON_SCHEMA, PERSON, 4)),
                &json);
        struct pgd_engine_stats after;
        pgd_engine_get_stats(e, &after);
        json_steps[mode] = after.num_steps - st[mode].num_steps;
        cr_assert_eq(json.n_tokens[0], got[0][2].n_tokens[0], "mode %d", mode);
        pgd_engine_destroy(e);
    }
    for (int mode = 1; mode < 4; mode++)
        assert_same_outputs(got[mode], got[0], 5, mode);
    cr_assert(re_full_match("[a-z]{10,20}", got[2][1].text[0], got[2][1].len[0]));
    check_person(got[2][2].text[0], got[2][2].len[0]);
    cr_assert_eq(st[0].num_steps_overlapped, 0);
    cr_assert_gt(st[1].num_steps_overlapped, 0);
    /* Mode 2: every step overlaps, constrained or not, but the first and one after each
     * time the engine ran dry (at most once a request: 10% of these steps); in mode 1 a
     * step with a constrained sample does not. */
    const struct pgd_engine_stats *c2 = &st_constrained[2];
    cr_assert_geq(10 * c2->num_steps_overlapped, 9 * c2->num_steps,
                  "%llu of %llu steps overlapped", (unsigned long long)c2->num_steps_overlapped,
                  (unsigned long long)c2->num_steps);
    cr_assert_gt(late_steps, 20, "%ld steps sampled with late masks", late_steps);
    /* Jump-forward under async scheduling: the forced tokens go over the placeholder of the
     * step in flight and the next step computes them all. The JSON request alone takes one
     * step a token without it, and one a forced run more than in turn with it. */
    cr_assert_eq(json_steps[3], (uint64_t)got[0][2].n_tokens[0] + 1, "%llu steps",
                 (unsigned long long)json_steps[3]);
    cr_assert_lt(json_steps[2] + 20, json_steps[3], "%llu steps with jump-forward, %llu "
                 "without", (unsigned long long)json_steps[2], (unsigned long long)json_steps[3]);
    cr_assert_lt(json_steps[0], json_steps[2], "%llu steps in turn, %llu async",
                 (unsigned long long)json_steps[0], (unsigned long long)json_steps[2]);
}

/* ---- the mask helpers ---------------------------------------------------------------------- */

/* Twelve constrained requests at once (counted regexes, JSON Schemas, a grammar, a choice;
 * each its own guide, so that new grammar states keep coming), their masks made by the
 * engine thread alone (PAGODA_MASK_THREADS=0) and shared with three helpers: the same
 * tokens, and the helpers took part in many steps. */
Test(guided, masks_made_with_helpers_are_the_engine_threads, .timeout = 120)
{
    enum { N = 12 };
    static struct out got[2][N];
    static char schema[N][160], regex[N][48];
    long shared[2];
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine_params p = model_engine_sized(PGD_DEVICE_CPU, 256, 16, 256, 16);
        p.batch_invariant = true;
        if (mode == 0)
            setenv("PAGODA_MASK_THREADS", "0", 1);     /* the measuring switch */
        struct pgd_engine *e = model_engine_params("tiny-chat", &p);
        unsetenv("PAGODA_MASK_THREADS");
        if (mode == 1)
            pgd__engine_set_mask_threads(e, 3);
        struct pgd_stream *s[N];
        for (int i = 0; i < N; i++) {
            struct pgd_sampling_params sp;
            if (i % 3 != 2) {
                /* a counted repetition: a new grammar state at nearly every token */
                snprintf(regex[i], sizeof regex[i], "[a-%c ]{%d,%d}-[0-9]{2}", 'e' + i,
                         12 + i % 5, 30 + i);
                sp = guided(PGD_GUIDE_REGEX, regex[i], 100 + (uint64_t)i);
            } else if (i == 2 || i == 5) {
                snprintf(schema[i], sizeof schema[i], "{\"type\":\"object\",\"properties\":{"
                         "\"k%d\":{\"type\":\"string\"},\"n%d\":{\"type\":\"integer\"}},"
                         "\"required\":[\"k%d\",\"n%d\"]}", i, i, i, i);
                sp = guided(PGD_GUIDE_JSON_SCHEMA, schema[i], 100 + (uint64_t)i);
            } else if (i == 8) {
                sp = guided(PGD_GUIDE_GRAMMAR, "root ::= [0-9]+ (\" + \" [0-9]+)*", 103);
            } else {
                sp = guided(PGD_GUIDE_CHOICE, "[\"alpha\", \"beta\", \"gamma delta\"]",
                            100 + (uint64_t)i);
            }
            sp.max_tokens = 40;
            s[i] = submit(e, "Answer:", sp);
        }
        for (int i = 0; i < N; i++)
            collect(s[i], &got[mode][i]);
        shared[mode] = pgd__engine_mask_shared_steps(e);
        pgd_engine_destroy(e);
    }
    assert_same_outputs(got[1], got[0], N, 1);
    cr_assert_eq(shared[0], 0);
    cr_assert_gt(shared[1], 5, "%ld steps shared their masks", shared[1]);
}

/* ---- refusals, batches, n > 1 --------------------------------------------------------------- */

Test(guided, invalid_guides_are_refused_at_submit_with_the_reason)
{
    struct pgd_engine *e = tiny();
    static const struct { enum pgd_guide_kind k; const char *g, *says; } BAD[] = {
        { PGD_GUIDE_JSON_SCHEMA, "{\"type\":\"integr\"}", "json_schema: /type: unknown type" },
        { PGD_GUIDE_JSON_SCHEMA, "{not json", "json_schema: not JSON" },
        { PGD_GUIDE_REGEX, "(a", "regex: offset 0" },
        { PGD_GUIDE_CHOICE, "[1, 2]", "choice: [0] is not a string" },
        { PGD_GUIDE_GRAMMAR, "root ::= x", "rule 'x' is used but never defined" },
        { PGD_GUIDE_GRAMMAR, NULL, "needs its guide text" },
        { (enum pgd_guide_kind)42, "x", "guide_kind 42" },
        /* 10^7 stacks live at the start, from a few dozen elements */
        { PGD_GUIDE_GRAMMAR, "root ::= ((((((((.)?){10}){10}){10}){10}){10}){10}){10} \"c\"",
          "grammar: too ambiguous to follow: its start makes over 2097152 parse stack "
          "entries; simplify the guide" },
    };
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        struct pgd_request_params r = pgd_request_default_params();
        r.prompt = "x";
        r.sampling.guide_kind = BAD[i].k;
        r.sampling.guide = BAD[i].g;
        struct pgd_stream *s = (struct pgd_stream *)1;
        char err[512] = "";
        cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG,
                     "case %zu", i);
        cr_assert_null(s);
        cr_assert(strstr(err, BAD[i].says), "case %zu: \"%s\" lacks \"%s\"", i, err, BAD[i].says);
    }
    pgd_engine_destroy(e);
}

Test(guided, free_requests_beside_constrained_ones_are_untouched, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    struct pgd_sampling_params fsp = pgd_sampling_default_params();
    fsp.temperature = 0.0f;
    fsp.max_tokens = 24;
    fsp.ignore_eos = true;
    struct out alone, mixed;
    collect(submit(e, "Once upon a time", fsp), &alone);
    /* the same free request among constrained ones, several steps together */
    struct pgd_stream *g1 = submit(e, "Pick:", guided(PGD_GUIDE_REGEX, "[a-z]{10,20}", 3));
    struct pgd_stream *f = submit(e, "Once upon a time", fsp);
    struct pgd_stream *g2 = submit(e, "Give me a person as JSON:",
                                   guided(PGD_GUIDE_JSON_SCHEMA, PERSON, 4));
    struct out o1, o2;
    collect(f, &mixed);
    collect(g1, &o1);
    collect(g2, &o2);
    cr_assert_eq(mixed.len[0], alone.len[0]);
    cr_assert(memcmp(mixed.text[0], alone.text[0], alone.len[0]) == 0, "free output changed: "
              "\"%.*s\" vs \"%.*s\"", (int)mixed.len[0], mixed.text[0], (int)alone.len[0],
              alone.text[0]);
    cr_assert(re_full_match("[a-z]{10,20}", o1.text[0], o1.len[0]));
    check_person(o2.text[0], o2.len[0]);
    pgd_engine_destroy(e);
}

/* A grammar whose masks would take seconds (tens of thousands of stacks live in 41
 * classes of characters once past "ab": `.*` or one of 40 pairs of letters, 2,000 times
 * over; over 32 classes of more than one character, the walk steps every stack for each
 * distinct character) ends its sample
 * with PGD_FINISH_ERROR and the reason once its mask runs past the walk's budget, rather
 * than stall every request's step; a free request beside it is untouched, and the engine
 * goes on serving guided requests. */
Test(guided, a_guide_too_ambiguous_to_follow_ends_its_sample_with_an_error, .timeout = 120)
{
    char grammar[2048] = "root ::= \"a\" [b-j] (.*";
    for (int i = 0; i < 40; i++)
        snprintf(grammar + strlen(grammar), sizeof grammar - strlen(grammar),
                 " | [\\u%04x-\\u%04x]", 0x100 + 2 * i, 0x101 + 2 * i);
    strcat(grammar, "){2000}");
    struct pgd_engine *e = tiny();
    struct pgd_sampling_params fsp = pgd_sampling_default_params();
    fsp.temperature = 0.0f;
    fsp.max_tokens = 24;
    fsp.ignore_eos = true;
    struct out alone, mixed, bad, after;
    collect(submit(e, "Once upon a time", fsp), &alone);
    struct pgd_stream *g = submit(e, "Pick:", guided(PGD_GUIDE_GRAMMAR, grammar, 5));
    struct pgd_stream *f = submit(e, "Once upon a time", fsp);
    collect(g, &bad);
    collect(f, &mixed);
    cr_assert_eq(bad.finish[0], PGD_FINISH_ERROR, "finish %s after \"%.*s\"",
                 pgd_finish_reason_str(bad.finish[0]), (int)bad.len[0], bad.text[0]);
    cr_assert(strstr(bad.error[0], "grammar: too ambiguous to follow: the next token's mask "
                     "needed over 33554432 parser steps ("), "%s", bad.error[0]);
    /* what it gave before the mask failed follows the grammar: "a", one of b-j */
    cr_assert_leq(bad.len[0], 2);
    cr_assert(bad.len[0] == 0 || bad.text[0][0] == 'a', "%.*s", (int)bad.len[0], bad.text[0]);
    cr_assert_eq(mixed.len[0], alone.len[0]);
    cr_assert(memcmp(mixed.text[0], alone.text[0], alone.len[0]) == 0, "free output changed");
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.requests_finished[PGD_FINISH_ERROR], 1);
    collect(submit(e, "Pick:", guided(PGD_GUIDE_REGEX, "[a-z]{3,5}", 6)), &after);
    cr_assert(re_full_match("[a-z]{3,5}", after.text[0], after.len[0]));
    assert_complete(&after, 0, "regex after the error");
    pgd_engine_destroy(e);
}

Test(guided, every_sample_of_n_has_its_own_matcher, .timeout = 120)
{
    struct pgd_engine *e = tiny();
    struct pgd_sampling_params sp = guided(PGD_GUIDE_REGEX, "(cat|dog|bird)-[0-9]{2}", 9);
    sp.n = 4;
    struct out o;
    collect(submit(e, "Pet:", sp), &o);
    for (int i = 0; i < 4; i++) {
        assert_complete(&o, i, "n=4");
        cr_assert(re_full_match("(cat|dog|bird)-[0-9]{2}", o.text[i], o.len[i]),
                  "sample %d: \"%.*s\"", i, (int)o.len[i], o.text[i]);
    }
    pgd_engine_destroy(e);
}

Test(guided, an_engine_without_a_tokenizer_refuses_structured_output)
{
    /* llama-f32 has no tokenizer.json: requests come as token ids */
    struct pgd_engine *e = model_engine("llama-f32", PGD_DEVICE_CPU, 64, 16, 128, 4);
    cr_assert_not(pgd_engine_has_tokenizer(e));
    static const int32_t ids[3] = { 5, 6, 7 };
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = 3;
    r.sampling.guide_kind = PGD_GUIDE_REGEX;
    r.sampling.guide = "[0-9]+";
    struct pgd_stream *s;
    char err[512] = "";
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "structured output (regex) needs the model's tokenizer"), "%s", err);
    pgd_engine_destroy(e);
}
