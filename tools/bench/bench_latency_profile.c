/* The latency benchmark's look inside a step: the per-op profile of decode, prefill and mixed steps
 * (runtime/runner/op_profile.h) and the report of the cuBLASLt tunings the steps made
 * (kernels/cuda/gemm_tune.cu). */
#include "config.h"
#include "tools/bench/bench_latency_profile.h"
#include "runtime/runner/op_profile.h"
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

/* Turns the profile on, runs step(i) for i < steps (the profile forgotten after the first),
 * prints the table, turns it off. */
static int profiled(struct pgd__runner *r, int steps, double gbps, double tflops, FILE *out,
                    int (*step)(struct pgd__runner *, void *, int, char *, size_t), void *arg,
                    char *err, size_t errlen)
{
    if (pgd__runner_profile_ops(r, true, err, errlen))
        return -1;
    int rc = 0;
    for (int i = 0; i < steps && !rc; i++) {
        rc = step(r, arg, i, err, errlen);
        if (i == 0)
            pgd__op_profile_reset(pgd__runner_op_profile(r));
    }
    if (!rc)
        pgd__op_profile_print(pgd__runner_op_profile(r), out, gbps, tflops);
    pgd__runner_profile_ops(r, false, err, errlen);
    return rc;
}

struct decode_arg {
    struct pgd__step_seq *seqs;
    int n_seqs;
    int32_t *ids;
};

static int decode_step(struct pgd__runner *r, void *arg, int i, char *err, size_t errlen)
{
    struct decode_arg *a = arg;
    for (int s = 0; s < a->n_seqs; s++) {
        if (i > 0)
            a->seqs[s].n_computed++;
        a->seqs[s].n_new = 1;
        a->seqs[s].tokens = a->ids + s;
    }
    return pgd__runner_step_greedy(r, a->seqs, a->n_seqs, a->ids, err, errlen) ? -1 : 0;
}

int pgd_bench_profile_decode(struct pgd__runner *r, struct pgd__step_seq *seqs, int n_seqs,
                             int32_t *ids, int steps, double gbps, double tflops, FILE *out,
                             char *err, size_t errlen)
{
    struct decode_arg a = { seqs, n_seqs, ids };
    int rc = profiled(r, steps, gbps, tflops, out, decode_step, &a, err, errlen);
    for (int s = 0; s < n_seqs; s++)
        seqs[s].n_computed++;          /* past the last profiled step's token */
    return rc;
}

struct same_arg {
    const struct pgd__step_seq *seqs;
    int n_seqs;
    int32_t *ids;
};

static int same_step(struct pgd__runner *r, void *arg, int i, char *err, size_t errlen)
{
    (void)i;
    struct same_arg *a = arg;
    return pgd__runner_step_greedy(r, a->seqs, a->n_seqs, a->ids, err, errlen) ? -1 : 0;
}

int pgd_bench_profile_steps(struct pgd__runner *r, const struct pgd__step_seq *seqs, int n_seqs,
                            int32_t *ids, int steps, double gbps, double tflops, FILE *out,
                            char *err, size_t errlen)
{
    struct same_arg a = { seqs, n_seqs, ids };
    return profiled(r, steps, gbps, tflops, out, same_step, &a, err, errlen);
}

#ifdef PGD_HAVE_CUDA
/* The folded W4 GEMM's plans chosen by timing (kernels/cuda/quant_wq_fold_tune.cu), where
 * there were any. */
static void print_fold_tunings(struct pgd_cuda_ctx *c, FILE *out)
{
    struct pgd_cuda_wq_fold_tune_info t;
    if (pgd_cuda_wq_fold_tune_get(c, 0, &t))
        return;
    fprintf(out, "\nW4A16 folded GEMM plans chosen by timing (per grid and 64-row bucket, at the "
            "n it was timed: plans timed, the chosen one (kernel: plain, ws or sk, token tile / "
            "splits, /1sm: a block alone on an SM), the cost model's first beside it):\n");
    fprintf(out, "%-26s %6s %6s %6s %-16s %10s %10s %8s %8s\n", "grid (in -> out)", "bucket",
            "n", "timed", "chosen", "first us", "chosen us", "speedup", "tune ms");
    double first = 0, best = 0;
    for (int i = 0; !pgd_cuda_wq_fold_tune_get(c, i, &t); i++) {
        char grid[48], plan[32];
        snprintf(grid, sizeof grid, "%d -> %d%s%s", t.in, t.out,
                 t.layers > 1 ? " (qkv)" : "", t.dt == PGD_DTYPE_F16 ? " f16" : "");
        snprintf(plan, sizeof plan, "%s%d/%d%s", t.sk ? "sk" : t.ws ? "ws" : "plain", t.bn,
                 t.ks, t.one ? "/1sm" : "");
        fprintf(out, "%-26s %6d %6d %6d %-16s %10.1f %10.1f %7.2fx %8.1f\n", grid, t.bucket, t.n,
                t.timed, plan, t.first_us, t.best_us,
                t.best_us > 0 ? t.first_us / t.best_us : 0.0, t.tune_ms);
        first += t.first_us;
        best += t.best_us;
    }
    fprintf(out, "summed: the model's first %.1f us, the chosen %.1f us (%.2fx)\n", first, best,
            best > 0 ? first / best : 0.0);
}
#endif

void pgd_bench_print_gemm_tunings(const struct pgd__runner *r, FILE *out)
{
#ifdef PGD_HAVE_CUDA
    struct pgd_cuda_ctx *c = pgd__runner_cuda(r);
    int n = c ? pgd_cuda_gemm_tune_count(c) : 0;
    if (c)
        print_fold_tunings(c, out);
    if (n == 0) {
        if (c)
            fprintf(out, "\ncuBLASLt tunings: none (PAGODA_GEMM_TUNE=0, or no GEMM past the "
                    "GEMV sizes)\n");
        return;
    }
    fprintf(out, "\ncuBLASLt algorithms chosen by timing (per shape and n bucket, at the n it "
            "was timed: candidates timed of the heuristic's + their split-K variants, the "
            "chosen one and its K split, the heuristic's first beside it; our wgmma kernel's "
            "fastest, * where it won):\n");
    fprintf(out, "%-24s %7s %6s %9s %9s %12s %12s %8s %9s %18s\n", "shape (in -> out)", "bucket",
            "n", "timed", "chosen", "first us", "chosen us", "speedup", "tune ms",
            "wgmma us (tile/k/cps)");
    double total_ms = 0, first = 0, best = 0;
    for (int i = 0; i < n; i++) {
        struct pgd_cuda_gemm_tune_info t;
        if (pgd_cuda_gemm_tune_get(c, i, &t))
            break;
        char shape[48];
        snprintf(shape, sizeof shape, "%d -> %d%s%s", t.in, t.out,
                 t.dt == PGD_DTYPE_F8_E4M3 ? " fp8" : "",
                 t.ydt == PGD_DTYPE_F32 && t.dt != PGD_DTYPE_F32 ? " (f32)" : "");
        /* our wgmma kernel's fastest (gemm_wgmma.cu), '*' where it is the plan's */
        char own[40] = "-";
        if (t.own_bn)
            snprintf(own, sizeof own, "%s%.1f (%d/%d/%d)", t.own ? "*" : "", t.own_us, t.own_bn,
                     t.own_split, t.own_cps);
        fprintf(out, "%-24s %7d %6d %2d/%-2d+%-2d %4d k/%-2d %12.1f %12.1f %7.2fx %9.1f %18s\n",
                shape, t.bucket, t.n, t.timed, t.heuristic, t.candidates - t.heuristic, t.chosen,
                t.split_k, t.first_us, t.best_us, t.best_us > 0 ? t.first_us / t.best_us : 0.0,
                t.tune_ms, own);
        total_ms += t.tune_ms;
        first += t.first_us;
        best += t.best_us;
    }
    fprintf(out, "%d tunings took %.1f ms; summed over them the heuristic's first takes %.1f us, "
            "the chosen %.1f us (%.2fx)\n", n, total_ms, first, best,
            best > 0 ? first / best : 0.0);
#else
    (void)r;
    (void)out;
#endif
}
