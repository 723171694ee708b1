/* The offline workload that `pagoda bench throughput` runs and `pagoda bench scheduler`
 * models: how many requests and their lengths, fixed or drawn ShareGPT-shaped from a seed.
 * One set of flags, one parser and one draw, so that the same flags give both commands the
 * same requests (bench_workload.c). */
#ifndef PGD_TOOLS_BENCH_BENCH_WORKLOAD_H
#define PGD_TOOLS_BENCH_BENCH_WORKLOAD_H

#include "tools/bench/bench_draw.h"
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

struct pgd_tool_workload {
    int num_prompts, input_len, output_len;   /* --num-prompts, --input-len, --output-len */
    bool sharegpt;                            /* --dataset sharegpt (else fixed) */
    struct pgd_tool_sharegpt_shape shape;     /* --mean-input/-output, --max-input/-total */
    uint64_t seed;                            /* --seed */
};

/* 1,000 requests of 128 in and 128 out; the ShareGPT shape's default means and caps. */
#define PGD_TOOL_WORKLOAD_DEFAULT                                                           \
    { .num_prompts = 1000, .input_len = 128, .output_len = 128,                             \
      .shape = PGD_TOOL_SHAREGPT_SHAPE_DEFAULT }

/* The flags' getopt_long entries, to put in a command's table; their codes are the
 * PGD_TOOL_WORKLOAD_OPT_* values: above every command's own (chars and enums counting up
 * from 256), beside tool_model.h's shared flags at 0x7000. */
enum {
    PGD_TOOL_WORKLOAD_OPT_NUM = 0x7100, PGD_TOOL_WORKLOAD_OPT_IN, PGD_TOOL_WORKLOAD_OPT_OUT,
    PGD_TOOL_WORKLOAD_OPT_DATASET, PGD_TOOL_WORKLOAD_OPT_MEAN_IN, PGD_TOOL_WORKLOAD_OPT_MEAN_OUT,
    PGD_TOOL_WORKLOAD_OPT_MAX_IN, PGD_TOOL_WORKLOAD_OPT_MAX_TOTAL, PGD_TOOL_WORKLOAD_OPT_SEED,
};
#define PGD_TOOL_WORKLOAD_OPTIONS                                                           \
    { "num-prompts", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_NUM },                     \
    { "input-len", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_IN },                        \
    { "output-len", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_OUT },                      \
    { "dataset", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_DATASET },                     \
    { "mean-input", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_MEAN_IN },                  \
    { "mean-output", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_MEAN_OUT },                \
    { "max-input", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_MAX_IN },                    \
    { "max-total", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_MAX_TOTAL },                 \
    { "seed", required_argument, 0, PGD_TOOL_WORKLOAD_OPT_SEED }

/* The lines of --help that describe the flags. */
#define PGD_TOOL_WORKLOAD_USAGE                                                             \
    "  --num-prompts N          requests (1000)\n"                                          \
    "  --input-len N, --output-len N   fixed lengths (128, 128)\n"                          \
    "  --dataset fixed|sharegpt lengths: fixed, or drawn from a ShareGPT-shaped\n"          \
    "                           distribution (log-normal, sigma 1) seeded by --seed\n"      \
    "  --mean-input X, --mean-output X   sharegpt means before capping (200, 180)\n"        \
    "  --max-input N, --max-total N      sharegpt caps (1024, 2048)\n"                      \
    "  --seed S                 the draws' seed (0)\n"

/* getopt_long's code c with its argument arg, if c is a workload flag, into w: 1 when it
 * was one and arg is good, 0 when c is not a workload flag, -1 when arg is bad (the message,
 * which starts with cmd, is printed on stderr). */
int pgd_tool_workload_option(struct pgd_tool_workload *w, int c, const char *arg,
                             const char *cmd);

/* Whether every field is in range (positive counts and lengths; sharegpt caps that leave at
 * least 4 tokens of output). */
bool pgd_tool_workload_valid(const struct pgd_tool_workload *w);

/* Request i's lengths for i in [0, num_prompts), into in[i] and out[i]: the same seed and
 * flags give the same lengths in every command. */
void pgd_tool_workload_lengths(const struct pgd_tool_workload *w, int *in, int *out);

#endif
