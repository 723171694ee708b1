/* The per-op profile of a throughput workload's steps (bench_workload_profile.h): the
 * buckets, the step hook that fills them (on the engine thread), and their report. */
#include "config.h"
#include "tools/bench/bench_workload_profile.h"
#include "runtime/runner/op_profile.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Buckets a kind: 1, 2, 3-4, ..., up to 2^30. */
#define WL_BUCKETS 31
enum { WL_DECODE, WL_PROMPT, WL_KINDS };

struct wl_bucket {
    long timed_steps, timed_graph;
    double timed_wall_s, timed_device_s, timed_size;   /* size: sequences or tokens, summed */
    long pass_steps;
    double pass_wall_s, pass_size;
    struct pgd__op_profile *prof;   /* owned; made at the profile pass's first step here */
};

struct pgd_bench_wl_profile {
    struct pgd__runner *r;          /* borrowed */
    bool pass;                      /* the hook profiles (the profile pass) */
    struct wl_bucket b[WL_KINDS][WL_BUCKETS];
    enum pgd_status st;             /* the first profile that could not be made */
    char err[256];
};

/* The bucket of n: the smallest k with n <= 2^k. */
static int bucket_of(int n)
{
    int k = 0;
    while (k < WL_BUCKETS - 1 && (1L << k) < n)
        k++;
    return k;
}

static void bucket_range(int k, long *lo, long *hi)
{
    *hi = 1L << k;
    *lo = k == 0 ? 1 : (1L << (k - 1)) + 1;
}

static struct wl_bucket *bucket(struct pgd_bench_wl_profile *w,
                                const struct pgd__runner_step_info *s, double *size)
{
    int kind = s->decode_only ? WL_DECODE : WL_PROMPT;
    int n = kind == WL_DECODE ? s->n_seqs : s->n_tokens;
    *size = n;
    return &w->b[kind][bucket_of(n)];
}

/* The hook's profile: the step's bucket's (made now on its first step: the engine thread
 * runs the steps, and on a GPU the profile's events belong to its device). */
static struct pgd__op_profile *hook_profile(void *arg, const struct pgd__runner_step_info *s)
{
    struct pgd_bench_wl_profile *w = arg;
    double size;
    struct wl_bucket *b = bucket(w, s, &size);
    if (!w->pass || b->prof || w->st)
        return w->pass ? b->prof : NULL;
    struct pgd_cuda_ctx *cuda = pgd__runner_cuda(w->r);
    w->st = pgd__op_profile_create(cuda ? PGD_DEVICE_CUDA : PGD_DEVICE_CPU, cuda, &b->prof,
                                   w->err, sizeof w->err);
    return b->prof;
}

static void hook_done(void *arg, const struct pgd__runner_step_info *s, double wall_s,
                      double device_s, bool graph)
{
    struct pgd_bench_wl_profile *w = arg;
    double size;
    struct wl_bucket *b = bucket(w, s, &size);
    if (w->pass) {
        b->pass_steps++;
        b->pass_wall_s += wall_s;
        b->pass_size += size;
        return;
    }
    b->timed_steps++;
    b->timed_graph += graph;
    b->timed_wall_s += wall_s;
    b->timed_device_s += device_s;
    b->timed_size += size;
}

struct pgd_bench_wl_profile *pgd_bench_wl_profile_create(struct pgd__runner *r)
{
    struct pgd_bench_wl_profile *w = calloc(1, sizeof *w);
    if (w)
        w->r = r;
    return w;
}

void pgd_bench_wl_profile_destroy(struct pgd_bench_wl_profile *w)
{
    if (!w)
        return;
    pgd_bench_wl_profile_detach(w);
    for (int k = 0; k < WL_KINDS; k++)
        for (int i = 0; i < WL_BUCKETS; i++)
            pgd__op_profile_destroy(w->b[k][i].prof);
    free(w);
}

void pgd_bench_wl_profile_attach(struct pgd_bench_wl_profile *w, bool pass)
{
    w->pass = pass;
    struct pgd__runner_step_hook h = { .profile = pass ? hook_profile : NULL, .done = hook_done,
                                       .arg = w };
    pgd__runner_set_step_hook(w->r, &h);
}

void pgd_bench_wl_profile_detach(struct pgd_bench_wl_profile *w)
{
    pgd__runner_set_step_hook(w->r, NULL);
}

enum pgd_status pgd_bench_wl_profile_status(const struct pgd_bench_wl_profile *w, char *err,
                                            size_t errlen)
{
    if (w->st)
        snprintf(err, errlen, "%s", w->err);
    return w->st;
}

long pgd_bench_wl_profile_pass_steps(const struct pgd_bench_wl_profile *w, long *profiled)
{
    long steps = 0;
    *profiled = 0;
    for (int k = 0; k < WL_KINDS; k++)
        for (int i = 0; i < WL_BUCKETS; i++) {
            steps += w->b[k][i].pass_steps;
            if (w->b[k][i].prof)
                *profiled += pgd__op_profile_steps(w->b[k][i].prof);
        }
    return steps;
}

/* One bucket's figures, per step (ms; 0 where it has no steps). */
struct wl_row {
    int kind;
    long lo, hi;
    char range[32];                 /* "lo-hi", or "lo" when they are one */
    double timed_ms, timed_dev_ms, timed_mean, timed_share, pass_ms, pass_wall_ms, pass_mean;
    const struct wl_bucket *b;
};

static const char *const kind_names[WL_KINDS] = { "decode", "prompt" };
/* The op kinds of struct pgd__op_cost, the gap between ops last. */
#define OP_KINDS 5
static const char *const op_kinds[OP_KINDS + 1] = { "gemm", "attention", "norm", "elementwise",
                                                    "other", "between" };

/* A profile's forward pass a step by kind of op (ms), the gap between ops in [OP_KINDS]. */
static void kind_ms(const struct pgd__op_profile *p, double ms[OP_KINDS + 1])
{
    long steps = pgd__op_profile_steps(p);
    memset(ms, 0, (OP_KINDS + 1) * sizeof *ms);
    if (steps <= 0)
        return;
    double ops = 0;
    for (int i = 0; i < pgd__op_profile_n_rows(p); i++) {
        const struct pgd__op_profile_row *r = pgd__op_profile_row(p, i);
        int k = OP_KINDS - 1;
        for (int j = 0; j < OP_KINDS - 1; j++)
            if (!strcmp(r->kind, op_kinds[j]))
                k = j;
        ms[k] += r->ms / (double)steps;
        ops += r->ms / (double)steps;
    }
    ms[OP_KINDS] = pgd__op_profile_step_ms(p) / (double)steps - ops;
}

/* The whole timed run's forward time by kind of op: each profiled bucket's eager forward a
 * step by kind, times the timed run's steps in it (ms[OP_KINDS + 1], summed); returns the
 * timed steps so covered. */
static long run_kind_ms(const struct wl_row *rows, int n, double ms[OP_KINDS + 1])
{
    long steps = 0;
    memset(ms, 0, (OP_KINDS + 1) * sizeof *ms);
    for (int i = 0; i < n; i++) {
        if (!rows[i].b->prof || !pgd__op_profile_steps(rows[i].b->prof))
            continue;
        double k[OP_KINDS + 1];
        kind_ms(rows[i].b->prof, k);
        for (int j = 0; j <= OP_KINDS; j++)
            ms[j] += k[j] * (double)rows[i].b->timed_steps;
        steps += rows[i].b->timed_steps;
    }
    return steps;
}

/* The buckets with a step in either run, decode first, each kind by size; *n of them. */
static int wl_rows(const struct pgd_bench_wl_profile *w, struct wl_row rows[WL_KINDS * WL_BUCKETS])
{
    double timed_total = 0;
    for (int k = 0; k < WL_KINDS; k++)
        for (int i = 0; i < WL_BUCKETS; i++)
            timed_total += w->b[k][i].timed_wall_s;
    int n = 0;
    for (int k = 0; k < WL_KINDS; k++)
        for (int i = 0; i < WL_BUCKETS; i++) {
            const struct wl_bucket *b = &w->b[k][i];
            if (!b->timed_steps && !b->pass_steps)
                continue;
            struct wl_row *r = &rows[n++];
            double ts = b->timed_steps ? 1.0 / (double)b->timed_steps : 0;
            double ps = b->pass_steps ? 1.0 / (double)b->pass_steps : 0;
            long prof_steps = b->prof ? pgd__op_profile_steps(b->prof) : 0;
            *r = (struct wl_row){
                .kind = k, .b = b, .timed_ms = 1e3 * b->timed_wall_s * ts,
                .timed_dev_ms = 1e3 * b->timed_device_s * ts, .timed_mean = b->timed_size * ts,
                .timed_share = timed_total > 0 ? 100.0 * b->timed_wall_s / timed_total : 0,
                .pass_ms = prof_steps ? pgd__op_profile_step_ms(b->prof) / (double)prof_steps : 0,
                .pass_wall_ms = 1e3 * b->pass_wall_s * ps, .pass_mean = b->pass_size * ps,
            };
            bucket_range(i, &r->lo, &r->hi);
            snprintf(r->range, sizeof r->range, r->lo == r->hi ? "%ld" : "%ld-%ld", r->lo, r->hi);
        }
    return n;
}

static void print_summary(const struct wl_row *rows, int n, FILE *out)
{
    fprintf(out, "%-7s %11s | %6s %6s %7s %9s %9s %9s | %6s %9s %9s %9s %7s\n", "steps", "size",
            "timed", "graphs", "share", "mean size", "ms/step", "device ms", "eager", "mean size",
            "fwd ms", "wall ms", "fwd/timed");
    for (int i = 0; i < n; i++) {
        const struct wl_row *r = &rows[i];
        fprintf(out, "%-7s %11s | %6ld %6ld %6.1f%% %9.1f %9.3f %9.3f | %6ld %9.1f %9.3f %9.3f ",
                kind_names[r->kind], r->range, r->b->timed_steps, r->b->timed_graph, r->timed_share,
                r->timed_mean, r->timed_ms, r->timed_dev_ms, r->b->pass_steps, r->pass_mean,
                r->pass_ms, r->pass_wall_ms);
        if (r->timed_ms > 0 && r->pass_ms > 0)
            fprintf(out, "%6.2fx\n", r->pass_ms / r->timed_ms);
        else
            fprintf(out, "%7s\n", "-");
    }
}

/* ms[] summed: the whole forward pass. */
static double sum_ms(const double ms[OP_KINDS + 1])
{
    double t = 0;
    for (int j = 0; j <= OP_KINDS; j++)
        t += ms[j];
    return t;
}

static void print_kind_row(FILE *out, const char *what, const char *range, const double ms[])
{
    double total = sum_ms(ms);
    fprintf(out, "%-7s %11s %12.3f", what, range, total);
    for (int j = 0; j <= OP_KINDS; j++)
        fprintf(out, " %10.1f%%", total > 0 ? 100.0 * ms[j] / total : 0.0);
    fputc('\n', out);
}

/* The forward pass by kind of op, each bucket and the whole run (buckets weighted by the
 * timed run's steps in them). */
static void print_kinds(const struct wl_row *rows, int n, long timed_steps, FILE *out)
{
    double run[OP_KINDS + 1];
    long covered = run_kind_ms(rows, n, run);
    fprintf(out, "\nthe forward pass by kind of op (share of its eager time; run: every bucket's "
            "eager forward a step times the timed run's steps in it, %ld of its %ld steps "
            "covered, %.3f s in all):\n", covered, timed_steps, 1e-3 * sum_ms(run));
    fprintf(out, "%-7s %11s %12s", "steps", "size", "fwd ms");
    for (int j = 0; j <= OP_KINDS; j++)
        fprintf(out, " %11s", op_kinds[j]);
    fputc('\n', out);
    for (int i = 0; i < n; i++) {
        if (!rows[i].b->prof || !pgd__op_profile_steps(rows[i].b->prof))
            continue;
        double ms[OP_KINDS + 1];
        kind_ms(rows[i].b->prof, ms);
        print_kind_row(out, kind_names[rows[i].kind], rows[i].range, ms);
    }
    for (int j = 0; j <= OP_KINDS; j++)
        run[j] /= covered > 0 ? (double)covered : 1.0;
    print_kind_row(out, "run", "a step", run);
}

void pgd_bench_wl_profile_print(const struct pgd_bench_wl_profile *w, FILE *out, int requests,
                                double gbps, double tflops)
{
    struct wl_row rows[WL_KINDS * WL_BUCKETS];
    int n = wl_rows(w, rows);
    fprintf(out, "\nper-op profile of the workload's steps (--profile-ops): a second pass over "
            "%d of its requests after the timed run, every step eager with its ops timed (on a "
            "GPU by CUDA events behind a gate: the GPU's own time; on the CPU by the host "
            "clock); the timed run above was not profiled (its steps ran as always: decode-only "
            "ones through CUDA graphs where the runner has them, the graphs column). Steps by kind and size (decode: sequences, prompt: tokens in the step); "
            "timed: steps of the timed run, through graphs, share of its step time, time a step "
            "in the runner (host work + waits for the device) and the waits; eager: steps of "
            "the profile pass, the forward pass a step (first op to last), the runner's wall "
            "time a step (queueing behind the gate included), and the forward pass over the "
            "timed step:\n", requests);
    print_summary(rows, n, out);
    long timed_steps = 0;
    for (int i = 0; i < n; i++)
        timed_steps += rows[i].b->timed_steps;
    print_kinds(rows, n, timed_steps, out);
    for (int i = 0; i < n; i++) {
        const struct wl_row *r = &rows[i];
        if (!r->b->prof)
            continue;
        fprintf(out, "\n%s steps of %s %s (mean %.1f in the profile pass):\n",
                r->kind == WL_DECODE ? "decode-only" : "prompt-token", r->range,
                r->kind == WL_DECODE ? "sequences" : "tokens", r->pass_mean);
        pgd__op_profile_print(r->b->prof, out, gbps, tflops);
    }
}

static json_t *bucket_json(const struct wl_row *r, double gbps, double tflops)
{
    json_t *prof = r->b->prof ? pgd__op_profile_json(r->b->prof, gbps, tflops) : json_null();
    if (!prof)
        return NULL;
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, "
                     "s:o}",
                     "kind", kind_names[r->kind], "min", (json_int_t)r->lo, "max",
                     (json_int_t)r->hi, "timed_steps", (json_int_t)r->b->timed_steps,
                     "timed_graph_steps", (json_int_t)r->b->timed_graph,
                     "timed_share", r->timed_share, "timed_step_ms", r->timed_ms,
                     "timed_device_ms", r->timed_dev_ms, "timed_mean_size", r->timed_mean,
                     "profiled_steps", (json_int_t)r->b->pass_steps,
                     "profiled_step_ms", r->pass_ms, "profiled_wall_ms", r->pass_wall_ms,
                     "profiled_mean_size", r->pass_mean,
                     "eager_over_timed", r->timed_ms > 0 ? r->pass_ms / r->timed_ms : 0.0,
                     "profile", prof);
}

json_t *pgd_bench_wl_profile_json(const struct pgd_bench_wl_profile *w, int requests,
                                  double gbps, double tflops)
{
    struct wl_row rows[WL_KINDS * WL_BUCKETS];
    int n = wl_rows(w, rows);
    json_t *buckets = json_array();
    double run[OP_KINDS + 1];
    long covered = run_kind_ms(rows, n, run);
    json_t *by_kind = json_object();
    for (int j = 0; by_kind && j <= OP_KINDS; j++)
        json_object_set_new(by_kind, op_kinds[j], json_real(run[j] * 1e-3));
    json_t *o = json_pack("{s:i, s:o, s:I, s:o}", "requests", requests, "buckets", buckets,
                          "run_steps_covered", (json_int_t)covered, "run_s_by_kind", by_kind);
    for (int i = 0; o && i < n; i++)
        if (json_array_append_new(buckets, bucket_json(&rows[i], gbps, tflops))) {
            json_decref(o);
            o = NULL;
        }
    return o;
}
