/* The runner's step hook on the CPU fixture (runner.h: pgd__runner_set_step_hook, what
 * `pagoda bench throughput --profile-ops` builds on): it is told each step's sequences,
 * tokens and kind before and after the step, routes the step's ops into the profile it
 * hands back (one per kind here) without changing the step's tokens, a NULL profile leaves
 * the step unprofiled, and a cleared hook is called no more. The JSON of a profile
 * (pgd__op_profile_json) carries the same rows as the profile. */
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "runtime/runner/op_profile.h"
#include <jansson.h>
#include <string.h>

PGD_TEST_SUITE(step_hook);

#define LAYERS 2
#define VOCAB 512
#define B 3
#define PROMPT 9
#define STEPS 4

struct seen {
    struct pgd__op_profile *decode, *prompt;   /* NULL: the hook profiles nothing */
    struct pgd__runner_step_info before[8], after[8];
    int n_before, n_after;
    double wall_s[8], device_s[8];
    bool graph[8];
};

static struct pgd__op_profile *pick(void *arg, const struct pgd__runner_step_info *s)
{
    struct seen *w = arg;
    w->before[w->n_before++] = *s;
    return s->decode_only ? w->decode : w->prompt;
}

static void done(void *arg, const struct pgd__runner_step_info *s, double wall_s,
                 double device_s, bool graph)
{
    struct seen *w = arg;
    w->after[w->n_after] = *s;
    w->wall_s[w->n_after] = wall_s;
    w->device_s[w->n_after] = device_s;
    w->graph[w->n_after++] = graph;
}

/* A prefill of B sequences of PROMPT tokens, then STEPS decode steps; ids[step][s] (step 0:
 * the prefill's). */
static void run(struct pgd__runner *r, int32_t ids[STEPS + 1][B])
{
    char err[512] = "";
    int32_t table[B][4], prompt[B][PROMPT];
    struct pgd__step_seq seqs[B];
    for (int s = 0; s < B; s++) {
        for (int b = 0; b < 4; b++)
            table[s][b] = s * 4 + b;
        for (int t = 0; t < PROMPT; t++)
            prompt[s][t] = (s * 29 + t * 11 + 3) % VOCAB;
        seqs[s] = (struct pgd__step_seq){ .tokens = prompt[s], .n_new = PROMPT,
                                          .block_table = table[s], .n_blocks = 4, .n_logits = 1 };
    }
    cr_assert_eq(pgd__runner_step_greedy(r, seqs, B, ids[0], err, sizeof err), PGD_OK, "%s", err);
    for (int i = 1; i <= STEPS; i++) {
        for (int s = 0; s < B; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = &ids[i - 1][s], .n_new = 1,
                                              .n_computed = PROMPT + i - 1,
                                              .block_table = table[s], .n_blocks = 4,
                                              .n_logits = 1 };
        cr_assert_eq(pgd__runner_step_greedy(r, seqs, B, ids[i], err, sizeof err), PGD_OK, "%s",
                     err);
    }
}

static long calls_of(const struct pgd__op_profile *p, const char *op)
{
    long calls = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++)
        if (!strcmp(pgd__op_profile_row(p, i)->op, op))
            calls += pgd__op_profile_row(p, i)->calls;
    return calls;
}

static struct pgd__op_profile *cpu_profile(void)
{
    char err[256] = "";
    struct pgd__op_profile *p = NULL;
    cr_assert_eq(pgd__op_profile_create(PGD_DEVICE_CPU, NULL, &p, err, sizeof err), PGD_OK,
                 "%s", err);
    return p;
}

Test(step_hook, routes_each_kind_of_step_into_its_profile)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *plain = fixture_runner(reg, "llama-f32", 64, 16, 8);
    struct pgd__runner *hooked = fixture_runner(reg, "llama-f32", 64, 16, 8);
    struct seen w = { .decode = cpu_profile(), .prompt = cpu_profile() };
    pgd__runner_set_step_hook(hooked, &(struct pgd__runner_step_hook){ pick, done, &w });
    int32_t want[STEPS + 1][B], got[STEPS + 1][B];
    run(plain, want);
    run(hooked, got);
    cr_assert_arr_eq(got, want, sizeof want, "the hook changed the steps' tokens");

    cr_assert_eq(w.n_before, STEPS + 1);
    cr_assert_eq(w.n_after, STEPS + 1);
    for (int i = 0; i <= STEPS; i++) {
        const struct pgd__runner_step_info *s = &w.before[i];
        cr_assert_eq(s->n_seqs, B);
        cr_assert_eq(s->n_tokens, i == 0 ? B * PROMPT : B, "step %d: %d tokens", i, s->n_tokens);
        cr_assert_eq(s->decode_only, i > 0, "step %d", i);
        cr_assert_eq(memcmp(s, &w.after[i], sizeof *s), 0, "step %d: told apart before/after", i);
        cr_assert_gt(w.wall_s[i], 0);
        cr_assert(w.device_s[i] > 0 && w.device_s[i] <= w.wall_s[i],
                  "step %d: device %g s of %g s (the CPU's forward pass is the device's work)",
                  i, w.device_s[i], w.wall_s[i]);
        cr_assert(!w.graph[i], "no graphs on the CPU");
    }
    cr_assert_eq(pgd__op_profile_steps(w.prompt), 1);
    cr_assert_eq(pgd__op_profile_steps(w.decode), STEPS);
    cr_assert_eq(calls_of(w.prompt, "rope+attention"), LAYERS);
    cr_assert_eq(calls_of(w.decode, "rope+attention"), (long)LAYERS * STEPS);
    cr_assert_eq(calls_of(w.decode, "lm_head"), STEPS);
    /* The prompt step's qkv has B * PROMPT rows, a decode step's B: 9x the FLOPs a step. */
    double fl_prompt = 0, fl_decode = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(w.prompt); i++)
        if (!strcmp(pgd__op_profile_row(w.prompt, i)->op, "qkv"))
            fl_prompt = pgd__op_profile_row(w.prompt, i)->flops;
    for (int i = 0; i < pgd__op_profile_n_rows(w.decode); i++)
        if (!strcmp(pgd__op_profile_row(w.decode, i)->op, "qkv"))
            fl_decode = pgd__op_profile_row(w.decode, i)->flops / STEPS;
    cr_assert_float_eq(fl_prompt, PROMPT * fl_decode, 1e-9 * fl_prompt);

    /* The runner's own profile was never turned on. */
    cr_assert_null(pgd__runner_op_profile(hooked));
    pgd__runner_destroy(plain);
    pgd__runner_destroy(hooked);
    pgd__op_profile_destroy(w.decode);
    pgd__op_profile_destroy(w.prompt);
    pgd_registry_destroy(reg);
}

Test(step_hook, a_null_profile_or_a_cleared_hook_times_nothing)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner(reg, "llama-f32", 64, 16, 8);
    struct seen w = { 0 };
    pgd__runner_set_step_hook(r, &(struct pgd__runner_step_hook){ pick, done, &w });
    int32_t ids[STEPS + 1][B];
    run(r, ids);
    cr_assert_eq(w.n_before, STEPS + 1, "asked for a profile every step");
    cr_assert_eq(w.n_after, STEPS + 1);
    /* done alone: told after each step, never asked for a profile. */
    struct seen w2 = { 0 };
    pgd__runner_set_step_hook(r, &(struct pgd__runner_step_hook){ .done = done, .arg = &w2 });
    run(r, ids);
    cr_assert_eq(w2.n_before, 0);
    cr_assert_eq(w2.n_after, STEPS + 1);
    pgd__runner_set_step_hook(r, NULL);
    run(r, ids);
    cr_assert_eq(w2.n_after, STEPS + 1, "the cleared hook was called");
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

Test(step_hook, the_json_of_a_profile_has_its_rows)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner(reg, "llama-f32", 64, 16, 8);
    struct seen w = { .decode = cpu_profile(), .prompt = cpu_profile() };
    pgd__runner_set_step_hook(r, &(struct pgd__runner_step_hook){ pick, done, &w });
    int32_t ids[STEPS + 1][B];
    run(r, ids);
    const struct pgd__op_profile *p = w.decode;
    json_t *j = pgd__op_profile_json(p, 100.0, 1.0);
    cr_assert_not_null(j);
    cr_assert_eq(json_integer_value(json_object_get(j, "steps")), STEPS);
    double step_ms = json_real_value(json_object_get(j, "step_ms"));
    cr_assert_float_eq(step_ms, pgd__op_profile_step_ms(p) / STEPS, 1e-12);
    json_t *ops = json_object_get(j, "ops");
    cr_assert_eq((int)json_array_size(ops), pgd__op_profile_n_rows(p));
    double share = json_real_value(json_object_get(j, "between_ops_share")), prev_us = 1e300;
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        double us = json_real_value(json_object_get(op, "us"));
        cr_assert_leq(us, prev_us, "rows by time, largest first");
        prev_us = us;
        cr_assert_float_eq(json_real_value(json_object_get(op, "share")), 100.0 * us / 1e3 / step_ms,
                           1e-9);
        share += json_real_value(json_object_get(op, "share"));
        /* ceilings given: each row has its bound, by bytes or FLOPs */
        const char *bound = json_string_value(json_object_get(op, "bound"));
        cr_assert(bound && (!strcmp(bound, "bytes") || !strcmp(bound, "flops")));
        cr_assert_gt(json_real_value(json_object_get(op, "ceil_share")), 0);
    }
    cr_assert_float_eq(share, 100.0, 1e-6);
    json_decref(j);
    /* Without ceilings no row has a bound. */
    j = pgd__op_profile_json(p, 0, 0);
    json_array_foreach(json_object_get(j, "ops"), i, op) {
        cr_assert(json_is_null(json_object_get(op, "bound")));
        cr_assert(json_is_null(json_object_get(op, "ceil_share")));
    }
    json_decref(j);
    pgd__runner_destroy(r);
    pgd__op_profile_destroy(w.decode);
    pgd__op_profile_destroy(w.prompt);
    pgd_registry_destroy(reg);
}
