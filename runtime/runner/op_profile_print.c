/* The per-op profile's table (pgd__op_profile_print): rows per step, by time, beside the
 * ceilings, with the host's time in each op, then the totals per kind of op and the host's
 * time queueing a step; and the same rows as JSON (pgd__op_profile_json). */
#include "runtime/runner/op_profile.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct sort_item {
    const struct pgd__op_profile_row *r;
};

static int by_time(const void *a, const void *b)
{
    double x = ((const struct sort_item *)a)->r->ms, y = ((const struct sort_item *)b)->r->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The rows by time, largest first (calloc'd: the caller frees), or NULL when out of memory. */
static struct sort_item *sorted_rows(const struct pgd__op_profile *p)
{
    int n = pgd__op_profile_n_rows(p);
    struct sort_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
    if (!items)
        return NULL;
    for (int i = 0; i < n; i++)
        items[i].r = pgd__op_profile_row(p, i);
    qsort(items, (size_t)n, sizeof *items, by_time);
    return items;
}

/* The floor of `ms` worth of work (FLOPs over the GEMM rate, bytes over the bandwidth, the
 * larger) as a share of ms, and which one bounds it. */
static double bound_share(double flops, double bytes, double ms, double gbps, double tflops,
                          const char **by)
{
    double t_fl = tflops > 0 ? flops / (tflops * 1e12) * 1e3 : 0;
    double t_bw = gbps > 0 ? bytes / (gbps * 1e9) * 1e3 : 0;
    *by = t_fl > t_bw ? "flops" : "bytes";
    double floor_ms = t_fl > t_bw ? t_fl : t_bw;
    return ms > 0 && floor_ms > 0 ? 100.0 * floor_ms / ms : 0;
}

static void print_row(FILE *out, const char *op, const char *shape, double calls, double ms,
                      double host_ms, double step_ms, double flops, double bytes, double gbps,
                      double tflops)
{
    const char *by;
    double share = bound_share(flops, bytes, ms, gbps, tflops, &by);
    double s = ms * 1e-3;
    fprintf(out, "%-16s %-22s %7.1f %10.1f %9.1f %6.1f%% %9.3f %9.2f %8.1f %8.0f ", op, shape,
            calls, ms * 1e3, host_ms * 1e3, step_ms > 0 ? 100.0 * ms / step_ms : 0.0,
            flops / 1e9, bytes / 1e6, s > 0 ? flops / s / 1e12 : 0.0,
            s > 0 ? bytes / s / 1e9 : 0.0);
    if (share > 0)
        fprintf(out, "%6.1f%% %s\n", share, by);
    else
        fprintf(out, "%7s\n", "-");
}

void pgd__op_profile_print(const struct pgd__op_profile *p, FILE *out, double gbps,
                           double tflops)
{
    long steps = pgd__op_profile_steps(p);
    int n = pgd__op_profile_n_rows(p);
    if (steps <= 0) {
        fprintf(out, "op profile: no step was profiled\n");
        return;
    }
    double per = 1.0 / (double)steps, step_ms = pgd__op_profile_step_ms(p) * per;
    struct sort_item *items = sorted_rows(p);
    if (!items) {
        fprintf(out, "op profile: out of memory\n");
        return;
    }
    fprintf(out, "per-op time, %ld steps, %.3f ms a step (first op to last, the GPU's time on "
            "a GPU):\n", steps, step_ms);
    fprintf(out, "%-16s %-22s %7s %10s %9s %7s %9s %9s %8s %8s %7s\n", "op", "shape", "calls",
            "us/step", "host us", "share", "GFLOP", "MB", "TFLOP/s", "GB/s", "% ceil");
    static const char *const kinds[] = { "gemm", "attention", "norm", "elementwise", "other" };
    double kind_ms[5] = { 0 }, kind_fl[5] = { 0 }, kind_by[5] = { 0 }, kind_calls[5] = { 0 };
    double kind_host[5] = { 0 };
    double op_ms = 0, op_host = 0;
    for (int i = 0; i < n; i++) {
        const struct pgd__op_profile_row *r = items[i].r;
        print_row(out, r->op, r->shape, r->calls * per, r->ms * per, r->host_ms * per, step_ms,
                  r->flops * per, r->bytes * per, gbps, tflops);
        int k = 4;
        for (int j = 0; j < 4; j++)
            if (!strcmp(r->kind, kinds[j]))
                k = j;
        kind_ms[k] += r->ms * per;
        kind_fl[k] += r->flops * per;
        kind_by[k] += r->bytes * per;
        kind_calls[k] += r->calls * per;
        kind_host[k] += r->host_ms * per;
        op_ms += r->ms * per;
        op_host += r->host_ms * per;
    }
    fprintf(out, "by kind:\n");
    for (int k = 0; k < 5; k++)
        if (kind_calls[k] > 0)
            print_row(out, kinds[k], "", kind_calls[k], kind_ms[k], kind_host[k], step_ms,
                      kind_fl[k], kind_by[k], gbps, tflops);
    const double host_step = pgd__op_profile_step_host_ms(p) * per;
    fprintf(out, "%-16s %-22s %7s %10.1f %9.1f %6.1f%%\n", "between ops", "", "",
            (step_ms - op_ms) * 1e3, (host_step - op_host) * 1e3,
            step_ms > 0 ? 100.0 * (step_ms - op_ms) / step_ms : 0.0);
    fprintf(out, "host: %.3f ms a step queueing the ops (%.3f ms inside them)\n", host_step,
            op_host);
    long waits = pgd__op_profile_host_waits(p);
    if (waits)
        fprintf(out, "(%ld of %ld steps had an op whose host time reached %.0f ms: a wait on the "
                "GPU inside the step -- a synchronization, an allocation, or more launches "
                "than the stream queues -- which the profile's gate held until it gave up; "
                "those steps' host times are not the host's work)\n", waits, steps,
                PGD__OP_PROFILE_HOST_WAIT_MS);
    long dropped = pgd__op_profile_dropped(p);
    if (dropped)
        fprintf(out, "(%ld ops were not timed: more than a step's marks)\n", dropped);
    free(items);
}

/* The rows' figures as print_row computes them, per step. */
static json_t *row_json(const struct pgd__op_profile_row *r, double per, double step_ms,
                        double gbps, double tflops)
{
    const char *by;
    double ms = r->ms * per, flops = r->flops * per, bytes = r->bytes * per, s = ms * 1e-3;
    double ceil = bound_share(flops, bytes, ms, gbps, tflops, &by);
    return json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:s?}",
                     "op", r->op, "kind", r->kind, "shape", r->shape, "calls", r->calls * per,
                     "us", ms * 1e3, "host_us", r->host_ms * per * 1e3, "share", step_ms > 0 ? 100.0 * ms / step_ms : 0.0,
                     "gflop", flops / 1e9, "mb", bytes / 1e6,
                     "tflops", s > 0 ? flops / s / 1e12 : 0.0,
                     "gbps", s > 0 ? bytes / s / 1e9 : 0.0,
                     "ceil_share", ceil > 0 ? json_real(ceil) : json_null(),
                     "bound", ceil > 0 ? by : NULL);
}

json_t *pgd__op_profile_json(const struct pgd__op_profile *p, double gbps, double tflops)
{
    long steps = pgd__op_profile_steps(p);
    int n = pgd__op_profile_n_rows(p);
    double per = steps > 0 ? 1.0 / (double)steps : 0.0;
    double step_ms = pgd__op_profile_step_ms(p) * per, op_ms = 0;
    struct sort_item *items = sorted_rows(p);
    json_t *ops = json_array();
    json_t *o = json_pack("{s:I, s:f, s:o, s:I}", "steps", (json_int_t)steps,
                          "step_ms", step_ms, "ops", ops,
                          "dropped", (json_int_t)pgd__op_profile_dropped(p));
    if (!items || !o) {
        free(items);
        json_decref(o);
        return NULL;
    }
    for (int i = 0; steps > 0 && i < n; i++) {
        if (json_array_append_new(ops, row_json(items[i].r, per, step_ms, gbps, tflops))) {
            free(items);
            json_decref(o);
            return NULL;
        }
        op_ms += items[i].r->ms * per;
    }
    free(items);
    if (json_object_set_new(o, "between_ops_us", json_real((step_ms - op_ms) * 1e3)) ||
        json_object_set_new(o, "between_ops_share",
                            json_real(step_ms > 0 ? 100.0 * (step_ms - op_ms) / step_ms : 0.0))) {
        json_decref(o);
        return NULL;
    }
    return o;
}
