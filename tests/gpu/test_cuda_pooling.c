/* Pooling (task embed) on the GPU: the CUDA runner's hidden-state step (rows gathered on
 * the device in the compute dtype, widened on the host) gives the vectors the CPU engine
 * gives, for LAST and MEAN over the llama-f32 fixture's pooling references (computed in
 * bf16 on the GPU: compared by cosine and by relative difference with bf16's tolerance).
 * Skips visibly without a GPU. */
#include "config.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include <execinfo.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(cuda_pooling);

#ifndef PGD_HAVE_CUDA
Test(cuda_pooling, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else

/* Where the test is, for a crash report: a signal handler writes it and a backtrace to
 * stderr (Criterion itself only says "crash" at the Test line), then lets the signal end
 * the process as it would have. stage_set also logs each stage on stderr. */
static const char *volatile stage = "start";
static char stage_buf[4][160];
static int stage_at;

static void stage_set(const char *fmt, ...)
{
    char *b = stage_buf[stage_at++ & 3];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof stage_buf[0], fmt, ap);
    va_end(ap);
    stage = b;
    fprintf(stderr, "[pooling] %s\n", b);
}

static void on_crash(int sig)
{
    static const char head[] = "[pooling] crashed (signal) during: ";
    const char *s = stage;
    ssize_t w = write(STDERR_FILENO, head, sizeof head - 1);
    w += write(STDERR_FILENO, s, strlen(s));
    w += write(STDERR_FILENO, "\n", 1);
    void *bt[64];
    int n = backtrace(bt, 64);
    backtrace_symbols_fd(bt, n, STDERR_FILENO);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void need_gpu(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGABRT, on_crash);
    signal(SIGFPE, on_crash);
    signal(SIGILL, on_crash);
}

/* The vectors of every case of pooling_reference.json on `device`, pooled as `type`,
 * normalized: out[i] malloc'd [hidden]. Returns the case count.
 *
 * The engine is small on purpose (64 KV blocks, a fixed count: never a share of the card)
 * so that this program can share the GPU with the other GPU tests. A failure is reported
 * after the engine is destroyed: a test that stops with its engine thread still running on
 * the GPU dies at exit, and Criterion then reports a crash instead of the reason. */
static int pool_all(enum pgd_device device, enum pgd_pooling_type type, float *out[8],
                    int *hidden)
{
    json_t *ref = fixture_json("llama-f32", "pooling_reference.json");
    struct pgd_engine_params p = pgd_engine_default_params();
    p.device = device;
    p.task = PGD_TASK_EMBED;
    p.num_blocks = 64;
    p.block_size = 16;
    p.max_num_batched_tokens = 48;     /* the 70-token prompt in chunks */
    p.max_num_seqs = 8;
    const char *dev = device == PGD_DEVICE_CUDA ? "cuda" : "cpu";
    const char *how = pgd_pooling_type_str(type);
    stage_set("%s %s: creating the engine", dev, how);
    struct pgd_engine *e = model_engine_params("llama-f32", &p);
    stage_set("%s %s: engine created", dev, how);
    *hidden = pgd_engine_hidden_size(e);
    json_t *cases = json_object_get(ref, "cases");
    int nc = (int)json_array_size(cases);
    cr_assert_leq(nc, 8);
    struct pgd_stream *s[8] = { 0 };
    char err[256] = "", why[512] = "";
    for (int i = 0; i < nc && !*why; i++) {
        int np;
        int32_t *ids = json_ints(json_object_get(json_array_get(cases, (size_t)i), "prompt"),
                                 &np);
        struct pgd_request_params r = pgd_request_default_params();
        r.prompt_ids = ids;
        r.n_prompt_ids = np;
        r.pooling = type;
        stage_set("%s %s: submitting case %d (%d tokens)", dev, how, i, np);
        if (pgd_engine_submit(e, &r, &s[i], err, sizeof err) != PGD_OK)
            snprintf(why, sizeof why, "%s case %d: submit: %s", dev, i, err);
        free(ids);
    }
    for (int i = 0; i < nc; i++) {
        out[i] = NULL;
        if (!s[i])
            continue;
        struct pgd_output o;
        stage_set("%s %s: waiting for case %d (the engine thread steps)", dev, how, i);
        enum pgd_status st = *why ? PGD_OK : pgd_stream_next(s[i], &o, 60000);
        if (*why) {
            /* an earlier case failed: only the streams are let go */
        } else if (st != PGD_OK) {
            snprintf(why, sizeof why, "%s case %d: no output (%s)", dev, i,
                     pgd_status_str(st));
        } else if (!o.embedding || o.n_embedding != *hidden) {
            snprintf(why, sizeof why, "%s case %d: finished \"%s\" with %d values, not a "
                     "vector of %d (the engine's log says why)", dev, i,
                     pgd_finish_reason_str(o.finish_reason) ? pgd_finish_reason_str(
                         o.finish_reason) : "-", o.n_embedding, *hidden);
        } else {
            out[i] = malloc((size_t)*hidden * sizeof **out);
            memcpy(out[i], o.embedding, (size_t)*hidden * sizeof **out);
        }
        pgd_stream_destroy(s[i]);
    }
    stage_set("%s %s: destroying the engine", dev, how);
    pgd_engine_destroy(e);
    stage_set("%s %s: done%s%s", dev, how, *why ? ": " : "", why);
    json_decref(ref);
    cr_assert_not(*why, "%s", why);
    return nc;
}

static void gpu_matches_cpu(enum pgd_pooling_type type)
{
    float *cpu[8], *gpu[8];
    int h, hg;
    int nc = pool_all(PGD_DEVICE_CPU, type, cpu, &h);
    cr_assert_eq(pool_all(PGD_DEVICE_CUDA, type, gpu, &hg), nc);
    cr_assert_eq(hg, h);
    stage_set("%s: comparing %d cases", pgd_pooling_type_str(type), nc);
    for (int i = 0; i < nc; i++) {
        double dot = 0, ng = 0;
        for (int k = 0; k < h; k++) {
            dot += (double)cpu[i][k] * gpu[i][k];
            ng += (double)gpu[i][k] * gpu[i][k];
        }
        cr_assert_float_eq(sqrt(ng), 1.0, 1e-4, "case %d: the GPU vector is not unit", i);
        cr_assert_gt(dot, 0.999, "%s case %d: cosine %g to the CPU's",
                     pgd_pooling_type_str(type), i, dot);
        cr_assert_lt(rel_max_diff(gpu[i], cpu[i], h), 5e-2, "%s case %d",
                     pgd_pooling_type_str(type), i);
        free(cpu[i]);
        free(gpu[i]);
    }
}

Test(cuda_pooling, last_matches_the_cpu, .init = need_gpu) { gpu_matches_cpu(PGD_POOLING_LAST); }
Test(cuda_pooling, mean_matches_the_cpu, .init = need_gpu) { gpu_matches_cpu(PGD_POOLING_MEAN); }
#endif
