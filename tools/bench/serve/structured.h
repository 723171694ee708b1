/* `pagoda bench serve --structured-output-ratio R`: that share of the requests carries a
 * constraint (`structured_outputs: {"regex": ...}` in its body, as vLLM's server reads it),
 * the others none; the report then gives the output token throughput of each kind, and,
 * with --structured-output-baseline, the throughput of the same workload sent without any
 * constraint first, and the ratio of the two runs (issue 19's figure: 50% constrained at 90%
 * or more of the unconstrained tokens/s). */
#ifndef PGD_TOOLS_BENCH_SERVE_STRUCTURED_H
#define PGD_TOOLS_BENCH_SERVE_STRUCTURED_H

#include "tools/bench/serve/driver.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* The throughput bench's regex: printable ASCII, never complete (every request still runs
 * to its length). */
#define BS_STRUCTURED_REGEX_DEFAULT "[ -~]*"

/* Whether request i of a run is constrained: a fixed pattern (as `bench throughput` picks
 * them), so that the share holds at any count and the same requests are picked each run. */
bool bs_structured_pick(double ratio, int i);

/* Adds the constraint to request body b (a JSON object). false: out of memory. */
bool bs_structured_add(json_t *b, const char *regex);

struct bs_structured_in {
    double ratio;
    const char *regex;
    const struct bs_result *res;   /* n results of the mixed run */
    int n;
    double duration_s;
    double baseline_tps;           /* output tok/s of the unconstrained run; < 0: none */
};

/* Prints the section to out and adds its keys to r (structured_output_ratio,
 * structured_output_regex, num_constrained, constrained_output_throughput,
 * unconstrained_output_throughput, constrained_mean_tpot_ms, unconstrained_mean_tpot_ms,
 * baseline_output_throughput, structured_output_throughput_ratio). false: out of memory. */
bool bs_structured_report(const struct bs_structured_in *in, json_t *r, FILE *out);

/* The output tokens of the completed requests of a run, per second of it. */
double bs_output_tps(const struct bs_result *res, int n, double duration_s);

#endif
