/* The grammar engine (runtime/grammar/): the acceptance table of grammars, regexes, JSON
 * Schemas, json_object and choices (test_grammar_cases.h); refusals that say what and where;
 * left recursion; matching byte by byte across partial UTF-8; the token mask against a
 * brute-force check over the whole vocabulary of the real tokenizers of tests/fixtures; the
 * cache of compiled guides. */
#include <criterion/criterion.h>
#include "runtime/base/buf.h"
#include "runtime/grammar/guide.h"
#include "tests/lib/test_common.h"
#include "tests/unit/test_grammar_cases.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(grammar);
PGD_TEST_SUITE(grammar_mask);

static enum pgd_guide_kind kind_of(char k)
{
    switch (k) {
    case 'G': return PGD_GUIDE_GRAMMAR;
    case 'R': return PGD_GUIDE_REGEX;
    case 'S': return PGD_GUIDE_JSON_SCHEMA;
    case 'O': return PGD_GUIDE_JSON_OBJECT;
    default: return PGD_GUIDE_CHOICE;
    }
}

/* Whether the compiled guide takes all of text and may end there. */
static bool accepts(const struct pgd__grammar *g, const char *text, size_t len)
{
    struct pgd__gmatch m;
    cr_assert(pgd__gmatch_init(&m, g));
    bool ok = pgd__gmatch_accept(&m, text, len) && pgd__gmatch_accepting(&m);
    pgd__gmatch_fini(&m);
    return ok;
}

Test(grammar, acceptance_table)
{
    size_t n = sizeof GCASES / sizeof *GCASES;
    cr_assert_gt(n, 300);
    int wrong = 0;
    for (size_t i = 0; i < n; i++) {
        const struct gcase *c = &GCASES[i];
        struct pgd__grammar *g;
        char err[512];
        enum pgd_status st = pgd__guide_compile(kind_of(c->kind), c->guide, &g, err, sizeof err);
        if (st != PGD_OK) {
            cr_log_error("case %zu (%c %s): does not compile: %s", i, c->kind, c->guide, err);
            wrong++;
            continue;
        }
        bool got = accepts(g, c->text, strlen(c->text));
        /* byte by byte gives the same answer */
        struct pgd__gmatch m;
        cr_assert(pgd__gmatch_init(&m, g));
        bool alive = true;
        for (size_t k = 0; alive && c->text[k]; k++)
            alive = pgd__gmatch_accept(&m, c->text + k, 1);
        bool got1 = alive && pgd__gmatch_accepting(&m);
        pgd__gmatch_fini(&m);
        if (got != (bool)c->accept || got1 != got) {
            cr_log_error("case %zu (%c %s): \"%s\": expected %s, got %s (byte by byte %s)", i,
                         c->kind, c->guide ? c->guide : "", c->text, c->accept ? "yes" : "no",
                         got ? "yes" : "no", got1 ? "yes" : "no");
            wrong++;
        }
        pgd__grammar_free(g);
    }
    cr_assert_eq(wrong, 0, "%d of %zu cases wrong", wrong, n);
}

/* Number bounds against a brute-force check: for bounds written as a schema author writes
 * them, thousands of random JSON numbers (and the ones next to each bound) are accepted
 * exactly when their double value lies in the range, as a validator comparing doubles
 * (Python's jsonschema) decides. */
Test(grammar, number_bounds_agree_with_double_comparison)
{
    static const struct { const char *lo, *hi; bool lo_x, hi_x; } B[] = {
        { "0.3", "7.25", false, false },     { "0.3", "7.25", true, true },
        { "-12.75", "-0.5", false, true },   { "-3.125", "41", true, false },
        { "1e-2", NULL, false, false },      { NULL, "-2.5e1", false, true },
        { "-0.001", "0.001", false, false }, { "99.99", "100.01", true, false },
        { "5", "5", false, false },          { "-1", "1000.5", false, false },
    };
    uint64_t x = 12345;
#define RND(n) ((int)((x = x * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % (n))
    for (size_t b = 0; b < sizeof B / sizeof *B; b++) {
        char schema[256], lo[64] = "", hi[64] = "";
        if (B[b].lo)
            snprintf(lo, sizeof lo, ",\"%s\":%s", B[b].lo_x ? "exclusiveMinimum" : "minimum",
                     B[b].lo);
        if (B[b].hi)
            snprintf(hi, sizeof hi, ",\"%s\":%s", B[b].hi_x ? "exclusiveMaximum" : "maximum",
                     B[b].hi);
        snprintf(schema, sizeof schema, "{\"type\":\"number\"%s%s}", lo, hi);
        struct pgd__grammar *g;
        char err[512];
        cr_assert_eq(pgd__guide_compile(PGD_GUIDE_JSON_SCHEMA, schema, &g, err, sizeof err),
                     PGD_OK, "%s: %s", schema, err);
        double vlo = B[b].lo ? strtod(B[b].lo, NULL) : -INFINITY;
        double vhi = B[b].hi ? strtod(B[b].hi, NULL) : INFINITY;
        int wrong = 0, n_in = 0;
        for (int i = 0; i < 4000; i++) {
            char t[64];
            if (i < 40) {
                /* next to a bound: the bound's value plus a few units in its last places */
                double v = (i & 1 ? vlo : vhi) + (RND(21) - 10) * (i & 2 ? 0.001 : 0.25);
                if (!isfinite(v))
                    continue;
                snprintf(t, sizeof t, "%.3f", v);
            } else {
                int at = 0;
                if (RND(3) == 0)
                    t[at++] = '-';
                int nd = RND(5);
                t[at++] = nd == 0 ? '0' : (char)('1' + RND(9));
                for (int k = 1; k < nd; k++)
                    t[at++] = (char)('0' + RND(10));
                int nf = RND(6);
                if (nf)
                    t[at++] = '.';
                for (int k = 0; k < nf; k++)
                    t[at++] = (char)('0' + RND(10));
                t[at] = '\0';
            }
            double v = strtod(t, NULL);
            bool want = (B[b].lo_x ? v > vlo : v >= vlo) && (B[b].hi_x ? v < vhi : v <= vhi);
            n_in += want;
            if (accepts(g, t, strlen(t)) != want) {
                if (wrong++ < 5)
                    cr_log_error("%s: \"%s\": expected %s", schema, t, want ? "yes" : "no");
            }
        }
        cr_expect_eq(wrong, 0, "%s: %d numbers judged wrong", schema, wrong);
        cr_expect_gt(n_in, 10, "%s: the sample hit the range only %d times", schema, n_in);
        pgd__grammar_free(g);
    }
#undef RND
}

struct refusal {
    char kind;
    const char *guide;
    const char *says;               /* a part of the message */
};

static const struct refusal REFUSALS[] = {
    { 'G', "root ::= a", "rule 'a' is used but never defined" },
    { 'G', "x ::= \"a\"", "no start rule" },
    { 'G', "root ::= root \"a\" | \"b\"", "rule 'root' is left-recursive" },
    { 'G', "root ::= a\na ::= b \"x\"\nb ::= \"\" | a", "left-recursive" },
    { 'G', "root ::= \"a\"* root", "left-recursive" },
    { 'G', "root ::= (\"a\" | )*", "left-recursive" },    /* a star over the empty string */
    /* nullable only through two uses of a rule nullable through another: still left */
    { 'G', "root ::= x\nx ::= n n x \"y\" | \"z\"\nn ::= m | \"k\"\nm ::= \"\"", "rule 'x' is "
      "left-recursive" },
    { 'G', "root ::= \"abc", "line 1, column 10: unterminated string literal" },
    { 'G', "root ::= [a-", "unterminated character class" },
    { 'G', "root ::= [z-a]", "runs backwards" },
    { 'G', "root ::= (\"a\"", "expected ) to close this group" },
    { 'G', "root ::= \"a\"\n\nroot ::= \"b\"", "line 3, column 1: rule defined twice" },
    { 'G', "root ::= \"a\"{3,2}", "needs m <= n" },
    { 'G', "root ::= \"a\"{99999}", "over 10000" },
    { 'G', "root ::= \"\\q\"", "unknown escape" },
    { 'G', "root ::= \"a\" )", "a ) without its (" },
    { 'G', "%import common.WS", "lark directives" },
    { 'G', "root ::= @", "unexpected character '@'" },
    { 'G', "", "no start rule" },
    { 'R', "(abc", "regex: offset 0: expected ) to close this group" },
    { 'R', "abc)", "a ) without its (" },
    { 'R', "a**", "a quantifier after a quantifier" },
    { 'R', "*a", "nothing to repeat" },
    { 'R', "(a)\\1", "backreferences are not supported" },
    { 'R', "(?=a)", "lookaround" },
    { 'R', "a\\b", "word boundary" },
    { 'R', "[a", "unterminated character class" },
    { 'R', "a{2,1}", "needs m <= n" },
    { 'R', "a^b", "^ is only supported at the start" },
    { 'R', "\\x4", "hex digits" },
    { 'C', "[]", "non-empty JSON array of strings" },
    { 'C', "[\"a\", 1]", "choice: [1] is not a string" },
    { 'C', "nope", "non-empty JSON array" },
    { 'S', "{\"type\":\"strin\"}", "json_schema: /type: unknown type \"strin\"" },
    { 'S', "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":5,"
           "\"maximum\":1}}}", "/properties/a: no integer satisfies" },
    { 'S', "{\"type\":\"string\",\"pattern\":\"(a\"}",
      "json_schema: /pattern: regex: offset 0: expected )" },
    { 'S', "{\"properties\":{\"x\":{\"not\":{}}}}", "/properties/x/not: the keyword \"not\" is not "
           "supported" },
    { 'S', "{\"$ref\":\"#/$defs/missing\"}", "/$ref: the reference \"#/$defs/missing\" points at "
           "nothing" },
    { 'S', "{\"$ref\":\"http://x/y\"}", "only local references" },
    { 'S', "{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minItems/maxItems" },
    { 'S', "{\"allOf\":[{},{}]}", "allOf with more than one schema" },
    { 'S', "false", "the schema false matches nothing" },
    { 'S', "{\"type\":", "json_schema: not JSON" },
    { 'S', "42", "a schema must be an object or a boolean" },
    { 'S', "{\"anyOf\":[]}", "/anyOf: must be a non-empty array" },
    { 'S', "{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", "minLength/maxLength" },
    { 'S', "{\"type\":\"number\",\"minimum\":1.5,\"maximum\":1.25}", "no number satisfies" },
    { 'S', "{\"type\":\"number\",\"exclusiveMinimum\":1,\"exclusiveMaximum\":1}",
      "no number satisfies" },
    { 'S', "{\"type\":\"number\",\"minimum\":1e17}", "no number satisfies" },
    { 'S', "{\"type\":\"number\",\"minimum\":\"1\"}", "/minimum: must be a number" },
    { 'S', "{\"type\":\"number\",\"multipleOf\":0.1}", "/multipleOf: only a whole number" },
    { 'S', "{\"type\":\"integer\",\"multipleOf\":7}", "/multipleOf: supported with minimum "
           "and maximum" },
    { 'S', "{\"type\":\"integer\",\"multipleOf\":1,\"minimum\":0,\"maximum\":1000}",
      "at most 256 multiples" },
    { 'S', "{\"type\":\"integer\",\"multipleOf\":10,\"minimum\":1,\"maximum\":9}",
      "no number within minimum/maximum is a multiple" },
};

Test(grammar, invalid_guides_are_refused_saying_what_and_where)
{
    for (size_t i = 0; i < sizeof REFUSALS / sizeof *REFUSALS; i++) {
        const struct refusal *r = &REFUSALS[i];
        struct pgd__grammar *g = NULL;
        char err[512] = "";
        enum pgd_status st = pgd__guide_compile(kind_of(r->kind), r->guide, &g, err, sizeof err);
        cr_expect_eq(st, PGD_ERR_INVALID_ARG, "refusal %zu (%s): status %d", i, r->guide, st);
        cr_expect_null(g);
        cr_expect(strstr(err, r->says) != NULL, "refusal %zu (%s): message \"%s\" lacks \"%s\"",
                  i, r->guide, err, r->says);
        pgd__grammar_free(g);
    }
}

Test(grammar, partial_utf8_is_held_until_the_character_completes)
{
    struct pgd__grammar *g;
    char err[256];
    const char *src = "root ::= \"\xe2\x82\xac\" [a-z]";
    cr_assert_eq(pgd__grammar_parse(src, strlen(src), "grammar", &g, err, sizeof err), PGD_OK,
                 "%s", err);
    struct pgd__gmatch m;
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert(pgd__gmatch_accept(&m, "\xe2", 1));
    cr_assert(!pgd__gmatch_accepting(&m));
    cr_assert(pgd__gmatch_accept(&m, "\x82", 1));
    struct pgd__gmatch c;
    cr_assert(pgd__gmatch_copy(&c, &m));
    cr_assert(!pgd__gmatch_accept(&c, "\x83", 1), "the wrong last byte of the euro sign");
    pgd__gmatch_fini(&c);
    cr_assert(pgd__gmatch_accept(&m, "\xac" "q", 2));
    cr_assert(pgd__gmatch_terminated(&m));
    cr_assert(!pgd__gmatch_accept(&m, "q", 1));
    pgd__gmatch_fini(&m);
    pgd__grammar_free(g);
    /* a stray continuation byte, an overlong form and a surrogate are never characters */
    cr_assert_eq(pgd__grammar_parse("root ::= .*", 11, "grammar", &g, err, sizeof err), PGD_OK);
    cr_assert(!accepts(g, "\x80", 1));
    cr_assert(!accepts(g, "\xc0\xaf", 2));
    cr_assert(!accepts(g, "\xed\xa0\x80", 3));
    cr_assert(accepts(g, "\xf4\x8f\xbf\xbf", 4));
    pgd__grammar_free(g);
    /* a lead byte whose every completion is overlong is refused at once (E0 80..9F would
     * only spell code points below U+0800 such as U+00E9) */
    src = "root ::= [\\u00e0-\\u00ff] | \"\\u20ac\"";
    cr_assert_eq(pgd__grammar_parse(src, strlen(src), "grammar", &g, err, sizeof err), PGD_OK,
                 "%s", err);
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert(pgd__gmatch_accept(&m, "\xe2", 1));
    cr_assert(!pgd__gmatch_accept(&m, "\x83", 1), "E2 83 cannot lead to U+20AC");
    pgd__gmatch_fini(&m);
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert(!pgd__gmatch_accept(&m, "\xe0", 1), "E0 can only be overlong here");
    cr_assert(!pgd__gmatch_accept(&m, "\xf4\x90", 2), "past U+10FFFF");
    pgd__gmatch_fini(&m);
    pgd__grammar_free(g);
}

Test(grammar, a_long_generation_keeps_the_matcher_small)
{
    struct pgd__grammar *g;
    char err[256];
    cr_assert_eq(pgd__guide_compile(PGD_GUIDE_JSON_OBJECT, NULL, &g, err, sizeof err), PGD_OK);
    struct pgd__gmatch m;
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert(pgd__gmatch_accept(&m, "{\"k\":[", 6));
    for (int i = 0; i < 20000; i++)
        cr_assert(pgd__gmatch_accept(&m, i ? ",1" : "1", i ? 2 : 1));
    cr_assert_lt(m.n_nodes, 8192, "arena of %zu entries", m.n_nodes);
    cr_assert(pgd__gmatch_accept(&m, "]}", 2));
    cr_assert(pgd__gmatch_terminated(&m));
    pgd__gmatch_fini(&m);
    pgd__grammar_free(g);
}

/* An ambiguous grammar reaches one stack by many derivations: ("" | ""){300} by 2^300 of
 * them. Each stack is expanded once a step (the fuzzer found the walk of every derivation:
 * more than 20 s and 2 GB on a 39-byte input), so these match at once and keep the arena to
 * a few entries a repetition; the timeout turns the old hang into a failure. */
Test(grammar, an_ambiguous_grammar_expands_each_stack_once, .timeout = 60)
{
    static const struct { const char *grammar, *text; } cases[] = {
        { "root ::= \"a\" (\"\" | \"\"){300} \"b\"", "ab" },
        { "root ::= \"a\" (x | y | x y){200} \"b\"\nx ::= \"\" | \"x\"\ny ::= \"\" | \"y\"",
          "axyyxb" },
        { "root ::= \"a\" [b-j]* .(| \"\"){282}", "abcx" },    /* the fuzzer's grammar */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct pgd__grammar *g;
        char err[256];
        cr_assert_eq(pgd__guide_compile(PGD_GUIDE_GRAMMAR, cases[i].grammar, &g, err, sizeof err),
                     PGD_OK, "%s: %s", cases[i].grammar, err);
        struct pgd__gmatch m;
        cr_assert(pgd__gmatch_init(&m, g));
        const char *t = cases[i].text;
        for (size_t k = 0; t[k]; k++)
            cr_assert(pgd__gmatch_accept(&m, t + k, 1), "%s: byte %zu of %s refused",
                      cases[i].grammar, k, t);
        cr_assert(pgd__gmatch_accepting(&m), "%s: %s is whole", cases[i].grammar, t);
        cr_assert_lt(m.n_nodes, 20000, "%s: an arena of %zu entries", cases[i].grammar,
                     m.n_nodes);
        pgd__gmatch_fini(&m);
        pgd__grammar_free(g);
    }
    /* Hundreds of live stacks at once (each repetition left may take "h" or "yz" next):
     * past a few, a step's sink finds duplicates through the memo instead of a scan; the
     * answers stay exact. */
    static const struct { const char *text; bool ok; } many[] = {
        { "hyzh!", true }, { "!", true }, { "yzyzyzhhh!", true }, { "hy!", false },
        { "hyzq", false }, { "yzh", false },
    };
    struct pgd__grammar *g;
    char err[256];
    const char *rep = "root ::= (\"h\" | \"yz\" | \"\"){300} \"!\"";
    cr_assert_eq(pgd__guide_compile(PGD_GUIDE_GRAMMAR, rep, &g, err, sizeof err), PGD_OK, "%s",
                 err);
    for (size_t i = 0; i < sizeof many / sizeof *many; i++)
        cr_assert_eq(accepts(g, many[i].text, strlen(many[i].text)), many[i].ok, "%s: %s",
                     many[i].text, many[i].ok ? "refused" : "taken");
    struct pgd__gmatch m;
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert(pgd__gmatch_accept(&m, "hy", 2));
    cr_assert_gt(m.n_set, PGD__GMATCH_SINK_SCAN,
                 "%zu stacks live: the memo's side is not reached", m.n_set);
    pgd__gmatch_fini(&m);
    pgd__grammar_free(g);
}

/* Nested repetitions chain references deep before a terminal: (((((.)?){20}){20}){20}){20}
 * resolves 160,000 stacks through chains of that depth, which expand() once walked by
 * recursion and overflowed the thread's stack with (a crash). It now matches exactly; one
 * level deeper keeps 10^7 stacks live, and the start is refused (PGD__GMATCH_PASS_MAX)
 * rather than take gigabytes. */
Test(grammar, nested_repetitions_are_followed_or_refused, .timeout = 60)
{
    struct pgd__grammar *g;
    char err[256];
    cr_assert_eq(pgd__guide_compile(PGD_GUIDE_GRAMMAR,
                                    "root ::= (((((.)?){20}){20}){20}){20} \"c\"", &g,
                                    err, sizeof err), PGD_OK, "%s", err);
    struct pgd__gmatch m;
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert_gt(m.n_set, 100000);
    cr_assert(!m.over);
    pgd__gmatch_fini(&m);
    cr_assert(accepts(g, "c", 1));
    cr_assert(accepts(g, "xyzc", 4));
    cr_assert(accepts(g, "0123456789abcdefghijc", 21));
    cr_assert(!accepts(g, "xyz", 3), "no \"c\": not whole");
    pgd__grammar_free(g);
    cr_assert_eq(pgd__guide_compile(PGD_GUIDE_GRAMMAR,
                                    "root ::= ((((((((.)?){10}){10}){10}){10}){10}){10}){10} "
                                    "\"c\"", &g, err, sizeof err), PGD_OK, "%s", err);
    cr_assert(!pgd__gmatch_init(&m, g));
    cr_assert(m.over, "refused for its size, not for memory");
    pgd__grammar_free(g);
}

/* Rules by the hundred thousand: looked up by name in a table, and nullable found by a
 * worklist, where both were quadratic (a 15,000-rule chain took 4.6 s to compile, 200,000
 * rules minutes). A chain of 15,000 optional prefixes compiles and matches; one of 200,000
 * is refused as nested too deeply, not left-recursive. */
Test(grammar, long_rule_chains_compile_or_are_refused, .timeout = 60)
{
    for (int n = 15000; n <= 200000; n += 185000) {
        struct pgd__buf b = { 0 };
        pgd__buf_puts(&b, "root ::= r1\n");
        for (int i = 1; i < n; i++)
            pgd__buf_appendf(&b, "r%d ::= \"x\"? r%d\n", i, i + 1);
        pgd__buf_appendf(&b, "r%d ::= \"a\"\n", n);
        struct pgd__grammar *g = NULL;
        char err[256];
        enum pgd_status st = pgd__guide_compile(PGD_GUIDE_GRAMMAR, b.p, &g, err, sizeof err);
        pgd__buf_fini(&b);
        if (n > 20000) {
            cr_assert_eq(st, PGD_ERR_INVALID_ARG);
            cr_assert_str_eq(err, "grammar: rules nested too deeply (over 20000 levels)");
            continue;
        }
        cr_assert_eq(st, PGD_OK, "%s", err);
        cr_assert(accepts(g, "a", 1));
        cr_assert(accepts(g, "xxxa", 4));
        cr_assert(!accepts(g, "xxx", 3));
        pgd__grammar_free(g);
    }
}

/* Integer bounds become digit patterns: for random ranges, a number is accepted exactly when
 * it lies inside (boundaries, their neighbours and random values checked). */
Test(grammar, integer_ranges_are_exact)
{
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (int r = 0; r < 120; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        long long lo = (long long)(x % 200000) - 100000;
        long long span = (long long)((x >> 20) % (r % 3 == 0 ? 50 : 300000));
        long long hi = lo + span;
        char schema[160];
        snprintf(schema, sizeof schema, "{\"type\":\"integer\",\"minimum\":%lld,\"maximum\":%lld}",
                 lo, hi);
        struct pgd__grammar *g;
        char err[256];
        cr_assert_eq(pgd__guide_compile(PGD_GUIDE_JSON_SCHEMA, schema, &g, err, sizeof err),
                     PGD_OK, "%s: %s", schema, err);
        long long probes[12] = { lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, -1, 1,
                                 (lo + hi) / 2, lo * 10, hi * 10 };
        for (int k = 0; k < 12; k++) {
            char num[32];
            snprintf(num, sizeof num, "%lld", probes[k]);
            bool want = probes[k] >= lo && probes[k] <= hi;
            cr_assert_eq(accepts(g, num, strlen(num)), want, "%s: %s", schema, num);
        }
        pgd__grammar_free(g);
    }
}

/* ---- the token mask against brute force over real vocabularies ---------------------------- */

#define TOKDIR PGD_TEST_SRCDIR "/tests/fixtures/tokenizer"

struct mask_guide {
    enum pgd_guide_kind kind;
    const char *guide;
    const char *walk;               /* a text it accepts: states are taken along it */
};

static const struct mask_guide MASK_GUIDES[] = {
    { PGD_GUIDE_JSON_SCHEMA,
      "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
      "\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":500},"
      "\"t\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\",\"y\"]}}},"
      "\"required\":[\"name\",\"n\"]}",
      "{\"name\": \"Zo\xc3\xab \xe2\x82\xac\\n\", \"n\": 42, \"t\": [\"x\"]}" },
    { PGD_GUIDE_JSON_OBJECT, NULL, "{\"k\": [1, {\"a\": null}], \"\xe4\xb8\xad\": true}" },
    { PGD_GUIDE_REGEX, "[a-z\xc3\xa9\xe2\x82\xac]+ \\d{2,4}(\\.\\d+)?",
      "caf\xc3\xa9\xe2\x82\xac 2024.5" },
    { PGD_GUIDE_GRAMMAR, "root ::= ([\\u4e00-\\u9fff]+ | \"\\U0001F600\") (\" \" root)?",
      "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xe5\xad\x97" },
    { PGD_GUIDE_CHOICE, "[\"The answer\", \"The end\", \" Thanks\"]", "The end" },
    /* 40 alternatives: 40 stacks of one class (`t` on top) at first */
    { PGD_GUIDE_CHOICE,
      "[\"th0\",\"th1\",\"th2\",\"th3\",\"th4\",\"th5\",\"th6\",\"th7\",\"th8\","
      "\"th9\",\"th10\",\"th11\",\"th12\",\"th13\",\"th14\",\"th15\",\"th16\","
      "\"th17\",\"th18\",\"th19\",\"th20\",\"th21\",\"th22\",\"th23\",\"th24\","
      "\"th25\",\"th26\",\"th27\",\"th28\",\"th29\",\"th30\",\"th31\",\"th32\","
      "\"th33\",\"th34\",\"th35\",\"th36\",\"th37\",\"th38\",\"th39\"]",
      "th17" },
    /* ~80 stacks live in four classes (`.`, "h", "y", the CJK range): one step per subset
     * of classes, not per character */
    { PGD_GUIDE_GRAMMAR, "root ::= \"a\" [b-j] (.* | \"h\" | \"yz\" | [\\u4e00-\\u9fff]){40}",
      "ab\xe4\xb8\xadhyzq\xe6\x96\x87x hy" },
    /* 56 alternatives, each a character twice, of distinct first characters: singleton
     * classes found by code point, each leading somewhere else, also mid-character */
    { PGD_GUIDE_GRAMMAR,
      "root ::= (\"aa\" | \"bb\" | \"cc\" | \"dd\" | \"ee\" | \"ff\" | \"gg\" | \"hh\" "
      "| \"ii\" | \"jj\" | \"kk\" | \"ll\" | \"mm\" | \"nn\" | \"oo\" | \"pp\" | \"qq\" "
      "| \"rr\" | \"ss\" | \"tt\" | \"uu\" | \"vv\" | \"ww\" | \"xx\" | \"yy\" | \"zz\" "
      "| \"AA\" | \"BB\" | \"CC\" | \"DD\" | \"EE\" | \"FF\" | \"GG\" | \"HH\" | \"II\" "
      "| \"JJ\" | \"KK\" | \"LL\" | \"MM\" | \"NN\" | \"OO\" | \"PP\" | \"QQ\" | \"RR\" "
      "| \"SS\" | \"TT\" | \"UU\" | \"VV\" | \"WW\" | \"XX\" | \"YY\" | \"ZZ\" | "
      "\"\xc3\xa9\xc3\xa9\" | \"\xe4\xb8\xad\xe4\xb8\xad\" | "
      "\"\xe6\x96\x87\xe6\x96\x87\" | \"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\") root?",
      "\xe4\xb8\xad\xe4\xb8\xad" "aa\xf0\x9f\x98\x80\xf0\x9f\x98\x80" "ZZ" },
    /* 34 alternatives of two characters each (and a singleton), over 32 general classes:
     * the generic step, also mid-character */
    { PGD_GUIDE_GRAMMAR,
      "root ::= ([a-b] | [c-d] | [e-f] | [g-h] | [i-j] | [k-l] | [m-n] | [o-p] | [q-r] | "
      "[s-t] | [u-v] | [w-x] | [y-z] | [A-B] | [C-D] | [E-F] | [G-H] | [I-J] | [K-L] | "
      "[M-N] | [O-P] | [Q-R] | [S-T] | [U-V] | [W-X] | [Y-Z] | [0-1] | [2-3] | [4-5] | "
      "[6-7] | [\\u00e9-\\u00ea] | [\\u4e2d-\\u4e2e] | [\\u6587-\\u6588] | "
      "[\\U0001F600-\\U0001F601] | \"!\") \"9\" root?",
      "\xe4\xb8\xad" "9a9\xf0\x9f\x98\x80" "9Z9!9" },
};

/* Checks the mask of state m (also through the guide's cache) token by token: a token is
 * allowed iff feeding its bytes to a copy of m keeps it alive; EOS iff m accepts (or no
 * token fits); special tokens never. */
static void check_mask(struct pgd__guide *g, const struct pgd__vocab *v, struct pgd__gmatch *m,
                       const struct pgd_tokenizer *tok, int32_t eos, const char *what, size_t at)
{
    size_t words = pgd__mask_words(v->n);
    uint32_t *mask = malloc(words * sizeof *mask), *cached = malloc(words * sizeof *cached);
    char err[256];
    cr_assert_eq(pgd__gmask_fill(m, v, &eos, 1, PGD__GMASK_BUDGET, mask, err, sizeof err),
                 PGD_OK, "%s", err);
    size_t n_before = m->n_nodes;
    cr_assert_eq(pgd__guide_mask(g, v, m, &eos, 1, cached, err, sizeof err), PGD_OK, "%s",
                 err);                              /* computed, then */
    cr_assert_eq(pgd__guide_mask(g, v, m, &eos, 1, cached, err, sizeof err), PGD_OK, "%s",
                 err);                              /* from the cache */
    cr_assert_eq(m->n_nodes, n_before, "the walk must leave the matcher as it was");
    cr_assert(memcmp(mask, cached, words * sizeof *mask) == 0, "%s @%zu: cached mask differs",
              what, at);
    bool any = false;
    int wrong = 0;
    for (int32_t t = 0; t < v->n; t++) {
        size_t len;
        const uint8_t *b = pgd__vocab_token(v, t, &len);
        bool want = false;
        if (len > 0 && !pgd_tokenizer_is_special(tok, t)) {
            struct pgd__gmatch c;
            cr_assert(pgd__gmatch_copy(&c, m));
            want = pgd__gmatch_accept(&c, b, len);
            pgd__gmatch_fini(&c);
        }
        any |= want;
        bool got = (mask[t >> 5] >> (t & 31)) & 1;
        if (t == eos)
            continue;
        if (got != want && wrong++ < 5)
            cr_log_error("%s @%zu: token %d (%zu bytes): mask %d, brute force %d", what, at, t,
                         len, got, want);
    }
    bool eos_got = (mask[eos >> 5] >> (eos & 31)) & 1;
    cr_assert_eq(eos_got, pgd__gmatch_accepting(m) || !any, "%s @%zu: EOS bit", what, at);
    cr_assert_eq(wrong, 0, "%s @%zu: %d tokens wrong", what, at, wrong);
    cr_assert(any, "%s @%zu: no token fits inside the walk", what, at);
    free(mask);
    free(cached);
}

static void mask_vs_brute_force(const char *name, size_t stride)
{
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/%s", TOKDIR, name);
    struct pgd_tokenizer *tok;
    cr_assert_eq(pgd_tokenizer_load(dir, &tok, err, sizeof err), PGD_OK, "%s", err);
    int32_t n = pgd_tokenizer_vocab_size(tok);
    struct pgd__guides gs;
    cr_assert_eq(pgd__guides_init(&gs, tok, n, err, sizeof err), PGD_OK);
    int32_t eos = pgd_tokenizer_eos_id(tok);
    if (eos < 0)
        eos = n - 1;
    for (size_t i = 0; i < sizeof MASK_GUIDES / sizeof *MASK_GUIDES; i++) {
        const struct mask_guide *mg = &MASK_GUIDES[i];
        struct pgd__guide *g;
        const struct pgd__vocab *v;
        cr_assert_eq(pgd__guides_get(&gs, mg->kind, mg->guide, &g, &v, err, sizeof err), PGD_OK,
                     "%s", err);
        struct pgd__gmatch m;
        cr_assert(pgd__gmatch_init(&m, g->g));
        size_t len = strlen(mg->walk);
        char what[128];
        snprintf(what, sizeof what, "%s/%s", name, pgd__guide_kind_name(mg->kind));
        for (size_t at = 0; at < len; at++) {
            if (at % stride == 0 || at == 1)
                check_mask(g, v, &m, tok, eos, what, at);
            cr_assert(pgd__gmatch_accept(&m, mg->walk + at, 1), "%s: the walk dies at %zu", what,
                      at);
        }
        cr_assert(pgd__gmatch_accepting(&m), "%s: the walk is not accepted", what);
        pgd__gmatch_fini(&m);
        pgd__guide_release(&gs, g);
    }
    pgd__guides_fini(&gs);
    pgd_tokenizer_destroy(tok);
}

Test(grammar_mask, brute_force_llama3_style) { mask_vs_brute_force("llama3_style", 1); }
Test(grammar_mask, brute_force_mistral) { mask_vs_brute_force("mistral", 3); }
Test(grammar_mask, brute_force_smollm2) { mask_vs_brute_force("smollm2", 4); }
Test(grammar_mask, brute_force_qwen3) { mask_vs_brute_force("qwen3", 9); }

/* A vocabulary built to catch a walk that takes a subtree whole where one token under it
 * is not UTF-8 as the matcher reads it: for each edge case (overlong forms, surrogates,
 * code points past U+10FFFF, bytes never in UTF-8, lone continuation bytes, ASCII inside a
 * sequence, and their valid neighbours, finished and not), a family of tokens "q" + a
 * letter of its own + each of some valid characters, and + the edge case, so the subtree
 * under the letter holds valid text but for that one token; a family of valid text alone;
 * and every string of one or two bytes over an alphabet of such bytes. At every position
 * of a JSON string (each non-ASCII character allowed: the walk takes valid subtrees at
 * once) and of a regex allowing only some non-ASCII characters, the mask equals feeding
 * each token to the matcher. */
Test(grammar_mask, utf8_edge_tokens_against_brute_force)
{
    static const char *const EDGE[] = {
        "\xed\xa0\x80", "\xed\xa0", "\xed\x9f\xbf", "\xe0\x80\x80", "\xe0\x9f",
        "\xe0\xa0\x80", "\xc0\x80", "\xc1\xbf", "\xc2\x80", "\xf0\x80\x80\x80", "\xf0\x8f",
        "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf4\x90",
        "\xf5\x80", "\xff", "\x80", "a\x80", "\xc2" "a", "\xe2\x82", "\xe2\x82\xac",
        "\xef\xbf\xbf", "\xf1\x80\x80", "",   /* "": the family of valid text alone */
    };
    static const char *const VALID[] = { "ab", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                         "b\xc3\xa9" "a", "\xe4\xb8\xad\xe6\x96\x87" };
    static const uint8_t A[] = { 'a', 'b', '"', '\\', '\n', 0x80, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0,
                                 0xED, 0xF0, 0xF4, 0xF5, 0xFF };
    enum { NE = sizeof EDGE / sizeof *EDGE, NV = sizeof VALID / sizeof *VALID,
           NA = sizeof A, N = NE * (NV + 1) + NA + NA * NA + 1 };
    static char buf[N][16];
    static const uint8_t *bytes[N];
    static uint32_t lens[N];
    int32_t n = 0;
    for (int e = 0; e < NE; e++)
        for (int k = 0; k <= NV; k++, n++) {
            const char *tail = k < NV ? VALID[k] : EDGE[e];
            snprintf(buf[n], sizeof buf[n], "q%c%s", 'A' + e, tail);
            lens[n] = (uint32_t)strlen(buf[n]);
        }
    for (int k = 0; k < NA + NA * NA; k++, n++) {
        const int two = k - NA;          /* >= 0: the two-byte string of that number */
        buf[n][0] = (char)A[two < 0 ? k : two / NA];
        if (two >= 0)
            buf[n][1] = (char)A[two % NA];
        lens[n] = two < 0 ? 1 : 2;
    }
    const int32_t eos = n++;         /* never text */
    cr_assert_eq(n, N);
    for (int32_t t = 0; t < eos; t++)
        bytes[t] = (const uint8_t *)buf[t];
    struct pgd__vocab *v;
    char err[256];
    cr_assert_eq(pgd__vocab_create(n, bytes, lens, &v, err, sizeof err), PGD_OK, "%s", err);
    /* stacks: at least that many live after the walk's first two bytes */
    static const struct {
        enum pgd_guide_kind kind;
        const char *guide, *walk;
        size_t stacks;
    } G[] = {
        { PGD_GUIDE_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":"
          "\"string\"}},\"required\":[\"s\"]}",
          "{\"s\": \"qab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbfz\"}", 0 },
        { PGD_GUIDE_REGEX, "[abqA-Z\xc3\xa9\xe2\x82\xac]+\"", "qAab\xc3\xa9\xe2\x82\xac\"", 0 },
        /* states of hundreds of stacks in four classes (interned through the radix sort,
         * past 256 stacks), also mid-character */
        { PGD_GUIDE_GRAMMAR, "root ::= \"a\" [b-j] (.* | \"h\" | \"yz\" | [\\u4e00-\\u9fff]){200}",
          "ab\xe4\xb8\xadhyzq\xe6\x96\x87x hy", 300 },
    };
    size_t words = pgd__mask_words(n);
    uint32_t *mask = malloc(words * sizeof *mask);
    for (size_t gi = 0; gi < sizeof G / sizeof *G; gi++) {
        struct pgd__grammar *g;
        cr_assert_eq(pgd__guide_compile(G[gi].kind, G[gi].guide, &g, err, sizeof err), PGD_OK,
                     "%s", err);
        struct pgd__gmatch m;
        cr_assert(pgd__gmatch_init(&m, g));
        size_t len = strlen(G[gi].walk);
        for (size_t at = 0; at <= len; at++) {
            cr_assert_eq(pgd__gmask_fill(&m, v, &eos, 1, PGD__GMASK_BUDGET, mask, err,
                                         sizeof err), PGD_OK, "%s", err);
            int wrong = 0;
            for (int32_t t = 0; t < eos; t++) {
                struct pgd__gmatch c;
                cr_assert(pgd__gmatch_copy(&c, &m));
                bool want = pgd__gmatch_accept(&c, bytes[t], lens[t]);
                pgd__gmatch_fini(&c);
                bool got = (mask[t >> 5] >> (t & 31)) & 1;
                if (got != want && wrong++ < 5)
                    cr_log_error("guide %zu @%zu: token %d (\"%s\", %u bytes): mask %d, "
                                 "matcher %d", gi, at, t, buf[t], lens[t], got, want);
            }
            cr_assert_eq(wrong, 0, "guide %zu @%zu: %d tokens wrong", gi, at, wrong);
            if (at == 2)
                cr_assert_geq(m.n_set, G[gi].stacks, "guide %zu: %zu stacks live", gi, m.n_set);
            if (at < len)
                cr_assert(pgd__gmatch_accept(&m, G[gi].walk + at, 1), "guide %zu: the walk "
                          "dies at %zu", gi, at);
        }
        pgd__gmatch_fini(&m);
        pgd__grammar_free(g);
    }
    free(mask);
    pgd__vocab_free(v);
}

/* A mask's walk past its budget stops with the reason and leaves the matcher as it was;
 * within it, the same state's mask is whole. The state: after "ab", ~1,900 stacks live
 * (each repetition left may be in `.*` or take "h" or "yz") in three classes. */
Test(grammar_mask, a_walk_past_its_budget_is_refused_with_the_reason)
{
    static const char *const toks[] = { "a", "b", "h", "y", "z", "yz", "hello", "\n",
                                        "\xe4\xb8\xad", "q!" };
    enum { N = sizeof toks / sizeof *toks + 1 };
    const uint8_t *bytes[N] = { 0 };
    uint32_t lens[N] = { 0 };
    for (int i = 0; i < N - 1; i++) {
        bytes[i] = (const uint8_t *)toks[i];
        lens[i] = (uint32_t)strlen(toks[i]);
    }
    const int32_t eos = N - 1;
    struct pgd__vocab *v;
    char err[256];
    cr_assert_eq(pgd__vocab_create(N, bytes, lens, &v, err, sizeof err), PGD_OK, "%s", err);
    struct pgd__grammar *g;
    cr_assert_eq(pgd__guide_compile(PGD_GUIDE_GRAMMAR,
                                    "root ::= \"a\" [b-j] (.* | \"h\" | \"yz\"){955}", &g, err,
                                    sizeof err), PGD_OK, "%s", err);
    struct pgd__gmatch m;
    cr_assert(pgd__gmatch_init(&m, g));
    cr_assert(pgd__gmatch_accept(&m, "ab", 2));
    cr_assert_gt(m.n_set, 1000);
    const size_t n_nodes = m.n_nodes, n_set = m.n_set;
    uint32_t mask[1];
    cr_assert_eq(pgd__gmask_fill(&m, v, &eos, 1, 1000, mask, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
    char want[256];
    snprintf(want, sizeof want, "too ambiguous to follow: the next token's mask needed over "
             "1000 parser steps (%zu parse stacks live); simplify the guide", n_set);
    cr_assert_str_eq(err, want);
    cr_assert(m.n_nodes == n_nodes && m.n_set == n_set, "the matcher changed");
    cr_assert_eq(pgd__gmask_fill(&m, v, &eos, 1, PGD__GMASK_BUDGET, mask, err, sizeof err),
                 PGD_OK, "%s", err);
    /* every token fits (GBNF's `.` is any character), and EOS (each repetition may be an
     * empty `.*`) */
    cr_assert_eq(mask[0], (1u << N) - 1, "mask %#x", mask[0]);
    pgd__gmatch_fini(&m);
    pgd__grammar_free(g);
    pgd__vocab_free(v);
}

Test(grammar_mask, the_cache_shares_one_compiled_guide_per_kind_and_text)
{
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/llama3_style", TOKDIR);
    struct pgd_tokenizer *tok;
    cr_assert_eq(pgd_tokenizer_load(dir, &tok, err, sizeof err), PGD_OK, "%s", err);
    struct pgd__guides gs;
    cr_assert_eq(pgd__guides_init(&gs, tok, pgd_tokenizer_vocab_size(tok), err, sizeof err),
                 PGD_OK);
    struct pgd__guide *a, *b, *c, *d;
    const struct pgd__vocab *v;
    cr_assert_eq(pgd__guides_get(&gs, PGD_GUIDE_REGEX, "[0-9]+", &a, &v, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__guides_get(&gs, PGD_GUIDE_REGEX, "[0-9]+", &b, &v, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__guides_get(&gs, PGD_GUIDE_GRAMMAR, "root ::= [0-9]+", &c, &v, err,
                                 sizeof err), PGD_OK);
    cr_assert_eq(a, b, "the same (kind, text): one compiled guide");
    cr_assert_neq(a, c, "another kind: another guide");
    cr_assert_eq(a->refs, 2);
    cr_assert_eq(pgd__guides_get(&gs, PGD_GUIDE_REGEX, "(", &d, &v, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
    cr_assert_eq(gs.n, 2, "a refused guide is not cached");
    pgd__guide_release(&gs, a);
    pgd__guide_release(&gs, b);
    pgd__guide_release(&gs, c);
    cr_assert_eq(a->refs, 0);
    pgd__guides_fini(&gs);
    pgd_tokenizer_destroy(tok);
}
