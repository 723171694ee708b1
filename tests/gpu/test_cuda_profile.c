/* The per-op profile on the GPU (runtime/runner/op_profile.h, kernels/cuda/prof.cu): decode
 * steps of the llama-bf16 fixture with the profile on give the same greedy tokens as the
 * same eager steps without it (the brackets and the gate change no result), every op of the
 * forward pass gets its row with the fixture's call counts and a positive GPU time, and the
 * ops' times lie within the steps' (first op to last). At 3 rows the linears run as GEMVs, at
 * 12 through cuBLASLt. The runner's step hook on a runner with CUDA graphs: its decode steps
 * replay graphs while the hook only listens, run eagerly with their ops timed when it hands a
 * profile (`pagoda bench throughput --profile-ops`). GEMM tuning is off here so that the
 * runners use the same algorithms. Skips visibly without a GPU. */
#include "config.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "runtime/runner/op_profile.h"
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(cuda_profile);

#ifndef PGD_HAVE_CUDA
Test(cuda_profile, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else
#include "kernels/cuda/kernels.h"

#define LAYERS 2
#define VOCAB 512
#define MAX_B 12
#define STEPS 4

static void need_gpu(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
    setenv("PAGODA_GEMM_TUNE", "0", 1);
}

static struct pgd__runner *eager_runner(struct pgd_registry *reg)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = fixture_dir("llama-bf16");
    p.registry = reg;
    p.device = PGD_DEVICE_CUDA;
    p.num_blocks = 256;
    p.block_size = 16;
    p.max_num_seqs = 16;
    p.max_num_batched_tokens = 512;
    p.enforce_eager = true;
    char err[1024] = "";
    struct pgd__runner *r = NULL;
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
    return r;
}

/* B sequences of 9 prompt tokens, then STEPS greedy decode steps; ids[step][s]. */
static void run(struct pgd__runner *r, int B, bool profile, int32_t ids[STEPS][MAX_B])
{
    char err[512] = "";
    int32_t table[MAX_B][4], prompt[MAX_B][9], last[MAX_B];
    struct pgd__step_seq seqs[MAX_B];
    for (int s = 0; s < B; s++) {
        for (int b = 0; b < 4; b++)
            table[s][b] = s * 4 + b;
        for (int t = 0; t < 9; t++)
            prompt[s][t] = (s * 29 + t * 11 + 3) % VOCAB;
        seqs[s] = (struct pgd__step_seq){ .tokens = prompt[s], .n_new = 9, .block_table = table[s],
                                          .n_blocks = 4, .n_logits = 1 };
    }
    cr_assert_eq(pgd__runner_step_greedy(r, seqs, B, last, err, sizeof err), PGD_OK, "%s", err);
    if (profile)
        cr_assert_eq(pgd__runner_profile_ops(r, true, err, sizeof err), PGD_OK, "%s", err);
    for (int i = 0; i < STEPS; i++) {
        for (int s = 0; s < B; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = &last[s], .n_new = 1, .n_computed = 9 + i,
                                              .block_table = table[s], .n_blocks = 4,
                                              .n_logits = 1 };
        cr_assert_eq(pgd__runner_step_greedy(r, seqs, B, ids[i], err, sizeof err), PGD_OK, "%s",
                     err);
        memcpy(last, ids[i], (size_t)B * sizeof *last);
    }
}

static long calls_of(const struct pgd__op_profile *p, const char *op)
{
    long calls = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++) {
        const struct pgd__op_profile_row *r = pgd__op_profile_row(p, i);
        if (!strcmp(r->op, op))
            calls += r->calls;
    }
    return calls;
}

static void check_profiled_decode(int B)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *plain = eager_runner(reg), *prof = eager_runner(reg);
    int32_t want[STEPS][MAX_B], got[STEPS][MAX_B];
    run(plain, B, false, want);
    run(prof, B, true, got);
    for (int i = 0; i < STEPS; i++)
        for (int s = 0; s < B; s++)
            cr_assert_eq(got[i][s], want[i][s], "batch %d step %d seq %d: %d profiled, %d not", B,
                         i, s, got[i][s], want[i][s]);
    const struct pgd__op_profile *p = pgd__runner_op_profile(prof);
    cr_assert_not_null(p);
    cr_assert_eq(pgd__op_profile_steps(p), STEPS);
    cr_assert_eq(pgd__op_profile_dropped(p), 0);
    long L = (long)LAYERS * STEPS;
    cr_assert_eq(calls_of(p, "qkv"), L);
    cr_assert_eq(calls_of(p, "rope+attention"), L);
    cr_assert_eq(calls_of(p, "gate_up+act"), L);
    cr_assert_eq(calls_of(p, "linear"), 2 * L, "o_proj and down_proj");
    cr_assert_eq(calls_of(p, "add_rmsnorm"), 2 * L);
    cr_assert_eq(calls_of(p, "lm_head"), STEPS);
    cr_assert_eq(calls_of(p, "embed"), STEPS);
    cr_assert_eq(calls_of(p, "rmsnorm"), STEPS);
    double sum = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++) {
        const struct pgd__op_profile_row *r = pgd__op_profile_row(p, i);
        cr_assert_gt(r->ms, 0, "batch %d: %s %s took no GPU time", B, r->op, r->shape);
        cr_assert_gt(r->bytes, 0, "%s", r->op);
        sum += r->ms;
    }
    cr_assert_leq(sum, pgd__op_profile_step_ms(p) * 1.001 + 1e-3, "ops %.4f ms, steps %.4f ms",
                  sum, pgd__op_profile_step_ms(p));
    pgd__runner_destroy(plain);
    pgd__runner_destroy(prof);
    pgd_registry_destroy(reg);
}

/* The host's column: an op that waits on the GPU (here a stream synchronization, as a
 * launch into a full queue would) holds the host until the gate lets the GPU go (its 200 ms
 * timeout), and the profile says so: that op's host time is at least
 * PGD__OP_PROFILE_HOST_WAIT_MS and the step counts as a host wait, while an op that only
 * queues a little work shows a host time far below it; the table names the wait. */
Test(cuda_profile, a_wait_inside_an_op_shows_in_its_host_time, .init = need_gpu)
{
    char err[512] = "";
    struct pgd_cuda_ctx *c = NULL;
    cr_assert_eq(pgd_cuda_ctx_create(&c, err, sizeof err), 0, "%s", err);
    struct pgd__op_profile *p = NULL;
    cr_assert_eq(pgd__op_profile_create(PGD_DEVICE_CUDA, c, &p, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert_eq(pgd__op_profile_step_begin(p, err, sizeof err), PGD_OK, "%s", err);
    struct pgd__op_cost quick = { .op = "quick", .kind = "other", .shape = "1" };
    struct pgd__op_cost waits = { .op = "waits", .kind = "other", .shape = "1" };
    int m = pgd__op_profile_begin(p);
    cr_assert_geq(m, 0);
    pgd__op_profile_end(p, m, &quick);
    m = pgd__op_profile_begin(p);
    cr_assert_eq(pgd_cuda_sync(c, err, sizeof err), 0, "%s", err);
    pgd__op_profile_end(p, m, &waits);
    pgd__op_profile_step_queued(p);
    cr_assert_eq(pgd__op_profile_step_end(p, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__op_profile_host_waits(p), 1);
    const struct pgd__op_profile_row *rq = NULL, *rw = NULL;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++) {
        const struct pgd__op_profile_row *r = pgd__op_profile_row(p, i);
        if (!strcmp(r->op, "quick"))
            rq = r;
        if (!strcmp(r->op, "waits"))
            rw = r;
    }
    cr_assert(rq && rw);
    cr_assert_geq(rw->host_ms, PGD__OP_PROFILE_HOST_WAIT_MS, "host %.3f ms", rw->host_ms);
    cr_assert_lt(rq->host_ms, PGD__OP_PROFILE_HOST_WAIT_MS / 10, "host %.3f ms", rq->host_ms);
    cr_assert_geq(pgd__op_profile_step_host_ms(p), rw->host_ms);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    pgd__op_profile_print(p, out, 0, 0);
    fclose(out);
    cr_assert(strstr(text, "host us") && strstr(text, "a wait on the GPU inside the step"), "%s",
              text);
    free(text);
    pgd__op_profile_destroy(p);
    pgd_cuda_ctx_destroy(c);
}
Test(cuda_profile, profiled_steps_keep_their_tokens_and_time_every_op, .init = need_gpu)
{
    check_profiled_decode(3);
    check_profiled_decode(12);
}

/* The step hook (`pagoda bench throughput --profile-ops`) on a runner with CUDA graphs: told
 * only (no profile), its decode steps replay graphs; handed a profile, they run eagerly with
 * their ops timed on the GPU, to the same tokens as a runner without graphs. */
struct hook_seen {
    struct pgd__op_profile *prof;
    int steps, graphs, decode_only;
    double wall_s;
};

static struct pgd__op_profile *hook_pick(void *arg, const struct pgd__runner_step_info *s)
{
    struct hook_seen *h = arg;
    return s->decode_only ? h->prof : NULL;
}

static void hook_done(void *arg, const struct pgd__runner_step_info *s, double wall_s,
                      double device_s, bool graph)
{
    (void)device_s;
    struct hook_seen *h = arg;
    h->steps++;
    h->graphs += graph;
    h->decode_only += s->decode_only;
    h->wall_s += wall_s;
}

static struct pgd__runner *graph_runner(struct pgd_registry *reg)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = fixture_dir("llama-bf16");
    p.registry = reg;
    p.device = PGD_DEVICE_CUDA;
    p.num_blocks = 256;
    p.block_size = 16;
    p.max_num_seqs = 16;
    p.max_num_batched_tokens = 512;
    char err[1024] = "";
    struct pgd__runner *r = NULL;
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
    return r;
}

Test(cuda_profile, the_step_hook_profiles_graph_steps_eagerly, .init = need_gpu)
{
    unsetenv("PAGODA_CUDA_GRAPHS");
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *eager = eager_runner(reg), *graphs = graph_runner(reg);
    int32_t want[STEPS][MAX_B], got[STEPS][MAX_B];
    const int B = 5;

    struct hook_seen told = { 0 };
    pgd__runner_set_step_hook(graphs, &(struct pgd__runner_step_hook){ .done = hook_done,
                                                                        .arg = &told });
    run(graphs, B, false, got);
    cr_assert_eq(told.steps, STEPS + 1, "the prefill and the decode steps");
    cr_assert_eq(told.decode_only, STEPS);
    cr_assert_eq(told.graphs, STEPS, "told only, the decode steps replay graphs");

    char err[512] = "";
    struct hook_seen prof = { 0 };
    cr_assert_eq(pgd__op_profile_create(PGD_DEVICE_CUDA, pgd__runner_cuda(graphs), &prof.prof,
                                        err, sizeof err), PGD_OK, "%s", err);
    pgd__runner_set_step_hook(graphs, &(struct pgd__runner_step_hook){ hook_pick, hook_done,
                                                                        &prof });
    run(graphs, B, false, got);
    run(eager, B, false, want);
    pgd__runner_set_step_hook(graphs, NULL);
    cr_assert_eq(prof.steps, STEPS + 1);
    cr_assert_eq(prof.graphs, 0, "a profiled step ran through a graph");
    for (int i = 0; i < STEPS; i++)
        for (int s = 0; s < B; s++)
            cr_assert_eq(got[i][s], want[i][s], "step %d seq %d: %d hooked, %d eager", i, s,
                         got[i][s], want[i][s]);
    cr_assert_eq(pgd__op_profile_steps(prof.prof), STEPS);
    cr_assert_eq(pgd__op_profile_dropped(prof.prof), 0);
    cr_assert_eq(calls_of(prof.prof, "rope+attention"), (long)LAYERS * STEPS);
    cr_assert_eq(calls_of(prof.prof, "lm_head"), STEPS);
    double sum = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(prof.prof); i++) {
        const struct pgd__op_profile_row *r = pgd__op_profile_row(prof.prof, i);
        cr_assert_gt(r->ms, 0, "%s %s took no GPU time", r->op, r->shape);
        sum += r->ms;
    }
    cr_assert_leq(sum, pgd__op_profile_step_ms(prof.prof) * 1.001 + 1e-3);
    cr_assert_null(pgd__runner_op_profile(graphs), "the runner's own profile stays off");
    pgd__op_profile_destroy(prof.prof);
    pgd__runner_destroy(eager);
    pgd__runner_destroy(graphs);
    pgd_registry_destroy(reg);
}
#endif
