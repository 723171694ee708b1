/* Where a step's time goes, on the CPU fixture: the per-op profile of the runner's forward
 * (runtime/runner/op_profile.h: every top-level op of the llama fixture timed once a step,
 * nested ops counted in their caller, FLOPs and bytes as the shapes give them, the op times
 * within the step's) and `pagoda bench latency --profile-ops`'s table. */
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "tests/lib/capture.h"
#include "runtime/runner/op_profile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(op_profile);

/* The llama-f32 fixture's shapes (its config.json). */
#define LAYERS 2
#define HIDDEN 64
#define HEADS 4
#define KV_HEADS 2
#define HEAD_DIM 16
#define INTER 128
#define VOCAB 512

static const struct pgd__op_profile_row *find_row(const struct pgd__op_profile *p, const char *op,
                                                  const char *shape)
{
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++) {
        const struct pgd__op_profile_row *r = pgd__op_profile_row(p, i);
        if (!strcmp(r->op, op) && (!shape || !strcmp(r->shape, shape)))
            return r;
    }
    return NULL;
}

static const struct pgd__op_profile_row *need_row(const struct pgd__op_profile *p, const char *op,
                                                  const char *shape, long calls)
{
    const struct pgd__op_profile_row *r = find_row(p, op, shape);
    cr_assert_not_null(r, "no row %s %s", op, shape ? shape : "");
    cr_assert_eq(r->calls, calls, "%s %s: %ld calls, want %ld", op, r->shape, r->calls, calls);
    cr_assert_geq(r->ms, 0, "%s: %g ms", op, r->ms);
    return r;
}

/* steps decode steps of B sequences at context ctx (their prefill first, unprofiled), then
 * checks every row against the fixture's shapes. */
static void check_decode_profile(int B, int ctx, int steps)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner(reg, "llama-f32", 64, 16, 8);
    char err[512] = "";
    int32_t table[8][8], tokens[8][64], ids[8];
    struct pgd__step_seq seqs[8];
    for (int s = 0; s < B; s++) {
        for (int b = 0; b < 8; b++)
            table[s][b] = s * 8 + b;
        for (int t = 0; t < ctx; t++)
            tokens[s][t] = (s * 31 + t * 7) % VOCAB;
        seqs[s] = (struct pgd__step_seq){ .tokens = tokens[s], .n_new = ctx, .block_table = table[s],
                                          .n_blocks = 8, .n_logits = 1 };
    }
    cr_assert_eq(pgd__runner_step_greedy(r, seqs, B, ids, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_null(pgd__runner_op_profile(r), "the profile is off until asked for");
    cr_assert_eq(pgd__runner_profile_ops(r, true, err, sizeof err), PGD_OK, "%s", err);
    struct pgd__op_profile *p = pgd__runner_op_profile(r);
    cr_assert_not_null(p);
    for (int i = 0; i < steps; i++) {
        for (int s = 0; s < B; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = &ids[s], .n_new = 1,
                                              .n_computed = ctx + i, .block_table = table[s],
                                              .n_blocks = 8, .n_logits = 1 };
        cr_assert_eq(pgd__runner_step_greedy(r, seqs, B, ids, err, sizeof err), PGD_OK, "%s", err);
    }
    cr_assert_eq(pgd__op_profile_steps(p), steps);
    cr_assert_eq(pgd__op_profile_dropped(p), 0);
    long L = (long)LAYERS * steps;
    double n = B;
    int qd = HEADS * HEAD_DIM, kvd = KV_HEADS * HEAD_DIM;
    const struct pgd__op_profile_row *qkv = need_row(p, "qkv", "64 -> 64+32+32", L);
    cr_assert_float_eq(qkv->flops, steps * LAYERS * 2.0 * n * HIDDEN * (qd + 2 * kvd), 1e-6);
    /* weights once, x read, q/k/v written, in float32 */
    cr_assert_float_eq(qkv->bytes, steps * LAYERS * 4.0 * (HIDDEN * (qd + 2.0 * kvd) +
                                                           n * HIDDEN + n * (qd + 2 * kvd)), 1e-6);
    need_row(p, "linear", "64 -> 64", L);                       /* o_proj */
    const struct pgd__op_profile_row *down = need_row(p, "linear", "128 -> 64", L);
    cr_assert_float_eq(down->flops, steps * LAYERS * 2.0 * n * INTER * HIDDEN, 1e-6);
    const struct pgd__op_profile_row *glu = need_row(p, "gate_up+act", "64 -> 2x128", L);
    cr_assert_float_eq(glu->flops, steps * LAYERS * 2.0 * n * HIDDEN * 2 * INTER, 1e-6);
    /* On the CPU the fused op runs a linear and act_mul inside: they count in it. */
    cr_assert_null(find_row(p, "linear", "64 -> 256"), "a nested linear got its own row");
    cr_assert_null(find_row(p, "act_mul", NULL), "a nested act_mul got its own row");
    const struct pgd__op_profile_row *att = need_row(p, "rope+attention", "4q/2kv x 16", L);
    /* step i: each row attends over ctx + i + 1 keys */
    double pairs = 0;
    for (int i = 0; i < steps; i++)
        pairs += n * (ctx + i + 1);
    cr_assert_float_eq(att->flops, LAYERS * 4.0 * pairs * qd, 1e-6);
    need_row(p, "add_rmsnorm", "64", 2L * L);
    need_row(p, "rmsnorm", "64", steps);
    need_row(p, "embed", "64", steps);
    const struct pgd__op_profile_row *head = need_row(p, "lm_head", "64 -> 512", steps);
    cr_assert_float_eq(head->flops, steps * 2.0 * n * HIDDEN * VOCAB, 1e-6);
    cr_assert_null(find_row(p, "all_reduce", NULL), "no tensor parallelism: nothing to time");
    cr_assert_eq(pgd__op_profile_n_rows(p), 9, "rows beside the nine above");
    /* The ops' times lie within the steps' (first op to last). */
    double sum = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++)
        sum += pgd__op_profile_row(p, i)->ms;
    cr_assert_gt(sum, 0);
    cr_assert_leq(sum, pgd__op_profile_step_ms(p) * (1 + 1e-9), "ops %g ms in steps of %g ms",
                  sum, pgd__op_profile_step_ms(p));

    /* The table: a row per op, the kinds, the gap between ops. */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    pgd__op_profile_print(p, out, 100.0, 1.0);
    fclose(out);
    cr_assert(strstr(text, "qkv ") && strstr(text, "64 -> 64+32+32") && strstr(text, "lm_head") &&
              strstr(text, "by kind:") && strstr(text, "\ngemm ") && strstr(text, "between ops"),
              "%s", text);
    free(text);

    /* Off again: later steps add nothing (and run through graphs where there are any). */
    cr_assert_eq(pgd__runner_profile_ops(r, false, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_null(pgd__runner_op_profile(r));
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

Test(op_profile, decode_rows_match_the_fixture_shapes)
{
    check_decode_profile(1, 5, 3);
    check_decode_profile(3, 9, 2);
}

/* A profile reset forgets its rows; a step that the profile did not see begin is refused. */
Test(op_profile, reset_and_unbegun_step)
{
    struct pgd__op_profile *p = NULL;
    char err[256] = "";
    cr_assert_eq(pgd__op_profile_create(PGD_DEVICE_CPU, NULL, &p, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_neq(pgd__op_profile_step_end(p, err, sizeof err), PGD_OK);
    cr_assert(strstr(err, "not begun"), "%s", err);
    cr_assert_eq(pgd__op_profile_step_begin(p, err, sizeof err), PGD_OK, "%s", err);
    int outer = pgd__op_profile_begin(p), inner = pgd__op_profile_begin(p);
    cr_assert_geq(outer, 0);
    cr_assert_lt(inner, 0, "a nested op is not timed");
    struct pgd__op_cost c = { .op = "outer", .kind = "gemm", .shape = "1 -> 2", .flops = 4, .bytes = 8 };
    struct pgd__op_cost ic = { .op = "inner", .kind = "gemm" };
    pgd__op_profile_end(p, inner, &ic);
    pgd__op_profile_end(p, outer, &c);
    pgd__op_profile_step_queued(p);
    cr_assert_eq(pgd__op_profile_step_end(p, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__op_profile_n_rows(p), 1);
    const struct pgd__op_profile_row *r = pgd__op_profile_row(p, 0);
    cr_assert(!strcmp(r->op, "outer") && r->calls == 1 && r->flops == 4 && r->bytes == 8);
    pgd__op_profile_reset(p);
    cr_assert_eq(pgd__op_profile_n_rows(p), 0);
    cr_assert_eq(pgd__op_profile_steps(p), 0);
    pgd__op_profile_destroy(p);
}

/* `pagoda bench latency --profile-ops` prints a table after each figure. */
Test(op_profile, bench_latency_prints_the_tables)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda bench latency --random-weights %s/config.json "
             "--device cpu --batch 2 --prompt-len 7 --context 4 --steps 2 --warmup 1 "
             "--profile-ops 2>&1", PGD_TEST_BUILDDIR, fixture_dir("llama-f32"));
    int status;
    char *got = pgd_test_capture(cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    const char *dec = strstr(got, "batch 2, eager decode steps:");
    const char *pre = strstr(got, "prefill of 7 tokens:");
    cr_assert(dec && pre && dec < pre, "%s", got);
    /* 3 profiled steps, the first untimed */
    cr_assert(strstr(dec, "per-op time, 2 steps") && strstr(pre, "per-op time, 2 steps"), "%s", got);
    cr_assert(strstr(dec, "\nqkv ") && strstr(dec, "\nrope+attention ") && strstr(pre, "\nlm_head "),
              "%s", got);
    free(got);
}
