/* Where a step's time goes, on the CPU fixture: the per-op profile of the runner's forward
 * (runtime/runner/op_profile.h: every top-level op of the llama fixture timed once a step,
 * nested ops counted in their caller, FLOPs and bytes as the shapes give them, the op times
 * within the step's) and `pagoda bench latency --profile-ops`'s table; the engine thread's
 * time a step (struct pgd_engine_stats' step_*_s: schedule, prepare, model step, outputs,
 * the device's part) and `pagoda bench throughput`'s report of it. */
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "tests/lib/capture.h"
#include "runtime/runner/op_profile.h"
#include "runtime/runner/host_work_line.h"
#include "runtime/runner/runner.h"
#include "kernels/cuda/kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

PGD_TEST_SUITE(op_profile);
PGD_TEST_SUITE(host_work_line);

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
    /* The host's time: on the CPU the op is the host's work, read between the op's marks
     * (so within its time), and the ops' host times lie within the steps' queueing. */
    double host = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++) {
        const struct pgd__op_profile_row *row = pgd__op_profile_row(p, i);
        cr_assert_geq(row->host_ms, 0, "%s: host %g ms", row->op, row->host_ms);
        cr_assert_leq(row->host_ms, row->ms * (1 + 1e-9) + 1e-9, "%s: host %g ms, op %g ms",
                      row->op, row->host_ms, row->ms);
        host += row->host_ms;
    }
    cr_assert_gt(host, 0);
    cr_assert_leq(host, pgd__op_profile_step_host_ms(p) * (1 + 1e-9),
                  "ops' host %g ms in steps queued in %g ms", host,
                  pgd__op_profile_step_host_ms(p));
    cr_assert_eq(pgd__op_profile_host_waits(p), 0, "the CPU never waits on a GPU");

    /* The table: a row per op, the kinds, the gap between ops. */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    pgd__op_profile_print(p, out, 100.0, 1.0);
    fclose(out);
    cr_assert(strstr(text, "qkv ") && strstr(text, "64 -> 64+32+32") && strstr(text, "lm_head") &&
              strstr(text, "by kind:") && strstr(text, "\ngemm ") && strstr(text, "between ops") &&
              strstr(text, "host us") && strstr(text, "\nhost: ") && !strstr(text, "a wait on"),
              "%s", text);
    free(text);

    /* Off again: later steps add nothing (and run through graphs where there are any). */
    cr_assert_eq(pgd__runner_profile_ops(r, false, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_null(pgd__runner_op_profile(r));
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

/* A quantized model's linears count their weight bytes: the llama FP8 fixture (per-tensor
 * scales) decoding one row, its quantized layers on the CPU (the dequantized float32 weight
 * each reads, as the dense fixture's): qkv, o_proj, gate_up+act and down_proj rows carry
 * the weights besides x and y, as the dense model's rows do. */
Test(op_profile, quantized_linears_count_their_weight_bytes)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/../../quant/llama-fp8-tensor", fixture_dir("llama-f32"));
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner_dir(reg, dir, NULL, 64, 16, 8);
    char err[512] = "";
    int32_t table[8] = { 0, 1, 2, 3, 4, 5, 6, 7 }, tokens[8] = { 1, 5, 9, 13, 17, 21, 25, 29 };
    int32_t id;
    struct pgd__step_seq s = { .tokens = tokens, .n_new = 8, .block_table = table, .n_blocks = 8,
                               .n_logits = 1 };
    cr_assert_eq(pgd__runner_step_greedy(r, &s, 1, &id, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__runner_profile_ops(r, true, err, sizeof err), PGD_OK, "%s", err);
    struct pgd__op_profile *p = pgd__runner_op_profile(r);
    s = (struct pgd__step_seq){ .tokens = &id, .n_new = 1, .n_computed = 8, .block_table = table,
                                .n_blocks = 8, .n_logits = 1 };
    cr_assert_eq(pgd__runner_step_greedy(r, &s, 1, &id, err, sizeof err), PGD_OK, "%s", err);
    const int qd = HEADS * HEAD_DIM, kvd = KV_HEADS * HEAD_DIM;
    /* weights once, x read, y written, all float32 on the CPU */
    const struct pgd__op_profile_row *qkv = need_row(p, "qkv", "64 -> 64+32+32", LAYERS);
    cr_assert_float_eq(qkv->bytes, LAYERS * 4.0 * (HIDDEN * (qd + 2.0 * kvd) + HIDDEN + qd +
                                                   2 * kvd), 1e-6);
    const struct pgd__op_profile_row *o = need_row(p, "linear (quant)", "64 -> 64", LAYERS);
    cr_assert_float_eq(o->bytes, LAYERS * 4.0 * (HIDDEN * qd + HIDDEN + qd), 1e-6);
    const struct pgd__op_profile_row *down = need_row(p, "linear (quant)", "128 -> 64", LAYERS);
    cr_assert_float_eq(down->bytes, LAYERS * 4.0 * (INTER * HIDDEN + INTER + HIDDEN), 1e-6);
    const struct pgd__op_profile_row *glu = need_row(p, "gate_up+act", "64 -> 2x128", LAYERS);
    cr_assert_float_eq(glu->bytes, LAYERS * 4.0 * (2.0 * INTER * HIDDEN + HIDDEN + INTER), 1e-6);
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

/* `pagoda bench latency` on the llama fixture's config with random weights on the CPU, args
 * after it: what it printed (stdout and stderr; the caller frees), its wait status in
 * *status, and the command line in cmd [cap]. */
static char *bench_latency(const char *args, char *cmd, size_t cap, int *status)
{
    snprintf(cmd, cap, "%s/tools/pagoda bench latency --random-weights %s/config.json --device "
             "cpu %s 2>&1", PGD_TEST_BUILDDIR, fixture_dir("llama-f32"), args);
    return pgd_test_capture(cmd, status);
}

/* `pagoda bench latency --profile-ops` prints a table after each figure: decode steps,
 * the mixed steps of --mixed D+C (D decodes beside a C-token prompt chunk, between the
 * decode and the prefill figures) and prefill. */
Test(op_profile, bench_latency_prints_the_tables)
{
    char cmd[4096];
    int status;
    char *got = bench_latency("--batch 2 --prompt-len 7 --context 4 --steps 2 --warmup 1 "
                              "--mixed 3+5,2+9 --profile-ops", cmd, sizeof cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    const char *dec = strstr(got, "batch 2, eager decode steps:");
    const char *mix = strstr(got, "mixed steps (D sequences decoding at 4 tokens of context");
    const char *m1 = strstr(got, "3 decodes beside a 5-token chunk:");
    const char *m2 = strstr(got, "2 decodes beside a 9-token chunk:");
    const char *pre = strstr(got, "prefill of 7 tokens:");
    cr_assert(dec && mix && m1 && m2 && pre && dec < mix && mix < m1 && m1 < m2 && m2 < pre,
              "%s", got);
    cr_assert(strstr(mix, "\n       3        5 ") && strstr(mix, "\n       2        9 "), "%s",
              got);
    /* 3 profiled steps, the first untimed */
    cr_assert(strstr(dec, "per-op time, 2 steps") && strstr(m1, "per-op time, 2 steps") &&
              strstr(pre, "per-op time, 2 steps"), "%s", got);
    cr_assert(strstr(dec, "\nqkv ") && strstr(dec, "\nrope+attention ") &&
              strstr(m1, "\nrope+attention ") && strstr(pre, "\nlm_head "), "%s", got);
    free(got);
}

/* A malformed --mixed list is refused, naming the flag. */
Test(op_profile, bench_latency_refuses_a_malformed_mixed_list)
{
    char cmd[4096];
    int status;
    static const char *const BAD[] = { "--mixed 3", "--mixed 3+", "--mixed 0+5",
                                       "--mixed 3+5,x", "--mixed 3+5+1" };
    for (int i = 0; i < 5; i++) {
        char *got = bench_latency(BAD[i], cmd, sizeof cmd, &status);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s\n%s", cmd, got);
        cr_assert(strstr(got, "--mixed:"), "%s\n%s", cmd, got);
        free(got);
    }
}

/* `pagoda bench latency --temperature T` decodes by sampling (plain temperature, as vLLM's
 * benchmarks, or with --top-p and --top-k); values out of range are refused. */
Test(op_profile, bench_latency_samples_at_a_temperature)
{
    char cmd[4096];
    int status;
    char *got = bench_latency("--batch 1,3 --prompt-len 5 --context 4 --steps 3 --warmup 1 "
                              "--temperature 0.8", cmd, sizeof cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    cr_assert(strstr(got, "3 timed steps (sampled at temperature 0.8, top_p 1, top_k 0):"), "%s",
              got);
    cr_assert(strstr(got, "\n     1 ") && strstr(got, "\n     3 "), "%s", got);
    free(got);
    got = bench_latency("--batch 2 --prompt-len 5 --context 4 --steps 2 --temperature 1 "
                        "--top-p 0.9 --top-k 40", cmd, sizeof cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    cr_assert(strstr(got, "(sampled at temperature 1, top_p 0.9, top_k 40):"), "%s", got);
    free(got);
    static const char *const BAD[] = { "--temperature -1", "--temperature 1 --top-p 0",
                                       "--temperature 1 --top-k -2" };
    for (int i = 0; i < 3; i++) {
        got = bench_latency(BAD[i], cmd, sizeof cmd, &status);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s\n%s", cmd, got);
        cr_assert(strstr(got, "usage: pagoda bench latency"), "%s", got);
        free(got);
    }
}

/* ---- the engine thread's time a step ------------------------------------------------------ */
PGD_TEST_SUITE(step_times);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Requests through the CPU fixture's engine: every step is timed, its phases add up to its
 * total, the device's part (the CPU's forward passes) is inside the model steps, and the
 * totals lie within the wall time of the run. */
Test(step_times, phases_add_up_on_the_cpu_fixture)
{
    struct pgd_engine *e = model_engine("llama-f32", PGD_DEVICE_CPU, 64, 16, 64, 4);
    struct pgd_engine_stats st0, st1;
    engine_settled_stats(e, &st0);
    cr_assert_eq(st0.step_timed, 0);
    cr_assert_eq(st0.step_total_s, 0);
    char err[256] = "";
    struct pgd_stream *s[6];
    int32_t ids[12];
    double t0 = now_s();
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 12; j++)
            ids[j] = (i * 13 + j * 5) % VOCAB;
        struct pgd_request_params r = pgd_request_default_params();
        r.prompt_ids = ids;
        r.n_prompt_ids = 6 + i;
        r.sampling.ignore_eos = true;
        r.sampling.max_tokens = 5;
        cr_assert_eq(pgd_engine_submit(e, &r, &s[i], err, sizeof err), PGD_OK, "%s", err);
    }
    for (int i = 0; i < 6; i++) {
        struct pgd_output out;
        while (pgd_stream_next(s[i], &out, -1) == PGD_OK)
            ;
        pgd_stream_destroy(s[i]);
    }
    engine_settled_stats(e, &st1);
    double wall = now_s() - t0;
    cr_assert_gt(st1.num_steps, 2);
    cr_assert_eq(st1.step_timed, st1.num_steps, "%llu of %llu steps timed",
                 (unsigned long long)st1.step_timed, (unsigned long long)st1.num_steps);
    double parts = st1.step_schedule_s + st1.step_prepare_s + st1.step_model_s + st1.step_output_s;
    cr_assert_float_eq(parts, st1.step_total_s, 1e-9 + 1e-9 * st1.step_total_s,
                       "phases %.9f s, total %.9f s", parts, st1.step_total_s);
    cr_assert(st1.step_schedule_s >= 0 && st1.step_prepare_s >= 0 && st1.step_output_s >= 0);
    cr_assert_gt(st1.step_device_s, 0, "the CPU's forward passes are the device's work");
    cr_assert_leq(st1.step_device_s, st1.step_model_s, "device %.6f s, model steps %.6f s",
                  st1.step_device_s, st1.step_model_s);
    cr_assert_leq(st1.step_total_s, wall, "steps %.6f s in a run of %.6f s", st1.step_total_s, wall);
    /* The split by kind on a real backend: prompt steps (mixed) and decode-only steps both
     * ran, each with wall and device time (the CPU's forward passes), inside the totals. */
    cr_assert_eq(st1.step_timed_decode_only, st1.num_steps_decode_only);
    cr_assert(st1.step_timed_decode_only > 0 && st1.step_timed_decode_only < st1.step_timed,
              "%llu decode-only of %llu", (unsigned long long)st1.step_timed_decode_only,
              (unsigned long long)st1.step_timed);
    cr_assert(st1.step_total_decode_only_s > 0 && st1.step_total_mixed_s > 0);
    cr_assert_float_eq(st1.step_total_decode_only_s + st1.step_total_mixed_s, st1.step_total_s,
                       1e-9 + 1e-9 * st1.step_total_s);
    cr_assert(st1.step_device_decode_only_s > 0 && st1.step_device_mixed_s > 0);
    cr_assert_float_eq(st1.step_device_decode_only_s + st1.step_device_mixed_s,
                       st1.step_device_s, 1e-9 + 1e-9 * st1.step_device_s);
    pgd_engine_destroy(e);
}

/* `pagoda bench throughput --json`: the per-step fields agree with each other. */
Test(step_times, bench_throughput_reports_consistent_fields)
{
    char path[] = "/tmp/pgd-test-tput-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda bench throughput --random-weights %s/config.json "
             "--device cpu --num-prompts 6 --input-len 7 --output-len 4 --json %s 2>&1",
             PGD_TEST_BUILDDIR, fixture_dir("llama-f32"), path);
    int status;
    char *got = pgd_test_capture(cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    cr_assert(strstr(got, "engine thread: ") && strstr(got, "the host's own"), "%s", got);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    unlink(path);
#define NUM(k) json_number_value(json_object_get(j, k))
    cr_assert_eq(json_integer_value(json_object_get(j, "steps_timed")),
                 json_integer_value(json_object_get(j, "steps")), "%s", got);
    double step = NUM("step_ms"), host = NUM("step_host_ms"), dev = NUM("step_device_ms");
    double parts = NUM("step_schedule_ms") + NUM("step_prepare_ms") + NUM("step_model_ms") +
                   NUM("step_output_ms");
    cr_assert_gt(step, 0);
    cr_assert_float_eq(parts, step, 1e-5 + 1e-6 * step, "phases %.6f ms, step %.6f ms", parts, step);
    cr_assert_float_eq(host + dev, step, 1e-5, "host %.6f + device %.6f, step %.6f", host, dev, step);
    cr_assert(dev > 0 && dev <= NUM("step_model_ms") + 1e-6, "device %.6f ms", dev);
    /* The steps run within the wall time until their timers were all in ("settled_s"); the
     * client's own clock ("elapsed_s") stops at the last token, inside that. */
    cr_assert_leq(step * 1e-3 * (double)json_integer_value(json_object_get(j, "steps")),
                  NUM("settled_s") + 1e-6, "%s", got);
    cr_assert_leq(NUM("elapsed_s"), NUM("settled_s"));
#undef NUM
    json_decref(j);
    free(got);
}

/* The cuBLASLt host-work words of the runner's exit log (the whole life: from NULL) and of
 * `pagoda bench throughput` (a run's difference): one formatter, every counter in place. */
Test(host_work_line, gemm_lifetime_and_run_difference)
{
    const struct pgd_cuda_gemm_host_stats a = { .plans = 2, .checks = 1, .heuristics = 3,
                                                .tunings = 0, .plan_ms = 0.5, .check_ms = 0.3,
                                                .heuristic_ms = 1.0, .tune_ms = 0.0,
                                                .matmuls = 100, .matmul_ms = 4.0,
                                                .matmuls_slow = 1, .matmul_slow_ms = 2.3 };
    const struct pgd_cuda_gemm_host_stats b = { .plans = 19, .checks = 1, .heuristics = 3,
                                                .tunings = 4, .plan_ms = 0.7, .check_ms = 0.3,
                                                .heuristic_ms = 1.0, .tune_ms = 12.5,
                                                .matmuls = 3725, .matmul_ms = 157.8,
                                                .matmuls_slow = 2, .matmul_slow_ms = 5.6,
                                                .matmul_max_ms = 3.31, .max_n = 500,
                                                .max_in = 14336, .max_out = 4096 };
    char line[640];
    pgd__gemm_host_line(NULL, &b, line, sizeof line);
    cr_assert_str_eq(line, "19 plans built (0.7 ms, choices included), 1 algorithm checks "
                     "(0.3 ms), 3 heuristic queries (1.0 ms), 4 tunings (12.5 ms); 3725 matmul "
                     "calls outside graph replays (157.8 ms of host time; 2 over 1 ms, 5.6 ms; "
                     "the slowest so far 3.3 ms, n 500, 14336 -> 4096)");
    pgd__gemm_host_line(&a, &b, line, sizeof line);
    cr_assert_str_eq(line, "17 plans built (0.2 ms, choices included), 0 algorithm checks "
                     "(0.0 ms), 0 heuristic queries (0.0 ms), 4 tunings (12.5 ms); 3625 matmul "
                     "calls outside graph replays (153.8 ms of host time; 1 over 1 ms, 3.3 ms; "
                     "the slowest so far 3.3 ms, n 500, 14336 -> 4096)");
    char small[16];
    pgd__gemm_host_line(&a, &b, small, sizeof small);
    cr_assert_str_eq(small, "17 plans built ");
}

/* The runner's host split by step kind, in its exit log (from NULL) and in `pagoda bench
 * throughput` (a run's difference); a kind with no steps reads 0 ms, not a division by 0. */
Test(host_work_line, step_split_lifetime_and_run_difference)
{
    const struct pgd__runner_host_split a = { .graph_steps = 10, .eager_steps = 2,
                                              .graph_host_s = 0.002, .replay_s = 0.0005,
                                              .eager_host_s = 0.008 };
    const struct pgd__runner_host_split b = { .graph_steps = 110, .eager_steps = 2,
                                              .graph_host_s = 0.017, .replay_s = 0.0045,
                                              .eager_host_s = 0.008 };
    char line[256];
    pgd__host_split_line(NULL, &b, line, sizeof line);
    cr_assert_str_eq(line, "110 graph steps, 0.155 ms of host work each (0.041 ms in the graph "
                     "launch), 2 eager steps, 4.000 ms each");
    pgd__host_split_line(&a, &b, line, sizeof line);
    cr_assert_str_eq(line, "100 graph steps, 0.150 ms of host work each (0.040 ms in the graph "
                     "launch), 0 eager steps, 0.000 ms each");
}
