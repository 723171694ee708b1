/* The offline workload's flags, their checks and the draw of its lengths
 * (bench_workload.h). */
#include "config.h"
#include "tools/bench/bench_workload.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* arg as a whole number in [lo, hi] into *v; false when it is not one. */
static bool whole(const char *arg, long lo, long hi, long *v)
{
    char *end = NULL;
    long x = strtol(arg, &end, 10);
    if (end == arg || *end || x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

static bool real(const char *arg, double *v)
{
    char *end = NULL;
    double x = strtod(arg, &end);
    if (end == arg || *end)
        return false;
    *v = x;
    return true;
}

static const char *flag_name(int c)
{
    static const char *const names[] = { "num-prompts", "input-len", "output-len", "dataset",
                                         "mean-input", "mean-output", "max-input", "max-total",
                                         "seed" };
    return names[c - PGD_TOOL_WORKLOAD_OPT_NUM];
}

int pgd_tool_workload_option(struct pgd_tool_workload *w, int c, const char *arg,
                             const char *cmd)
{
    long v = 0;
    double x = 0;
    bool ok = true;
    switch (c) {
    case PGD_TOOL_WORKLOAD_OPT_NUM: ok = whole(arg, 1, 100000000, &v); w->num_prompts = (int)v; break;
    case PGD_TOOL_WORKLOAD_OPT_IN: ok = whole(arg, 1, 100000000, &v); w->input_len = (int)v; break;
    case PGD_TOOL_WORKLOAD_OPT_OUT: ok = whole(arg, 1, 100000000, &v); w->output_len = (int)v; break;
    case PGD_TOOL_WORKLOAD_OPT_MAX_IN: ok = whole(arg, 4, 100000000, &v); w->shape.max_input = (int)v; break;
    case PGD_TOOL_WORKLOAD_OPT_MAX_TOTAL: ok = whole(arg, 8, 100000000, &v); w->shape.max_total = (int)v; break;
    case PGD_TOOL_WORKLOAD_OPT_MEAN_IN: ok = real(arg, &x) && x > 0; w->shape.mean_input = x; break;
    case PGD_TOOL_WORKLOAD_OPT_MEAN_OUT: ok = real(arg, &x) && x > 0; w->shape.mean_output = x; break;
    case PGD_TOOL_WORKLOAD_OPT_SEED: {
        char *end = NULL;
        unsigned long long s = strtoull(arg, &end, 10);
        ok = end != arg && !*end && arg[0] != '-';
        w->seed = s;
        break;
    }
    case PGD_TOOL_WORKLOAD_OPT_DATASET:
        if (!strcmp(arg, "sharegpt") || !strcmp(arg, "fixed")) {
            w->sharegpt = !strcmp(arg, "sharegpt");
            return 1;
        }
        fprintf(stderr, "%s: --dataset %s: fixed or sharegpt\n", cmd, arg);
        return -1;
    default:
        return 0;
    }
    if (!ok) {
        bool mean = c == PGD_TOOL_WORKLOAD_OPT_MEAN_IN || c == PGD_TOOL_WORKLOAD_OPT_MEAN_OUT;
        fprintf(stderr, "%s: --%s %s: %s\n", cmd, flag_name(c), arg,
                mean ? "not a positive number"
                : c == PGD_TOOL_WORKLOAD_OPT_SEED ? "not a whole number >= 0"
                : c == PGD_TOOL_WORKLOAD_OPT_MAX_IN ? "not a whole number >= 4"
                : c == PGD_TOOL_WORKLOAD_OPT_MAX_TOTAL ? "not a whole number >= 8"
                : "not a whole number >= 1");
        return -1;
    }
    return 1;
}

bool pgd_tool_workload_valid(const struct pgd_tool_workload *w)
{
    const struct pgd_tool_sharegpt_shape *s = &w->shape;
    return w->num_prompts > 0 && w->input_len > 0 && w->output_len > 0 && s->mean_input > 0 &&
           s->mean_output > 0 && s->max_input >= 4 && s->max_total >= s->max_input + 4;
}

void pgd_tool_workload_lengths(const struct pgd_tool_workload *w, int *in, int *out)
{
    uint64_t rng = w->seed * 0x2545F4914F6CDD1DULL + 1;
    for (int i = 0; i < w->num_prompts; i++) {
        if (w->sharegpt) {
            pgd_tool_sharegpt_lengths(&w->shape, &rng, &in[i], &out[i]);
        } else {
            in[i] = w->input_len;
            out[i] = w->output_len;
        }
    }
}
