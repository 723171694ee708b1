/* The result of `pagoda bench serve`, as vLLM's `vllm bench serve` prints and saves it: the
 * "Serving Benchmark Result" table on stdout and the result object of --save-result, with
 * vLLM's key names (completed, failed, total_input_tokens, request_throughput,
 * output_throughput, mean_ttft_ms, median_tpot_ms, p99_itl_ms, ttfts, itls, errors, ...). */
#ifndef PGD_TOOLS_BENCH_SERVE_REPORT_H
#define PGD_TOOLS_BENCH_SERVE_REPORT_H

#include "tools/bench/serve/driver.h"
#include <jansson.h>
#include <stdio.h>

enum { BS_M_TTFT = 1, BS_M_TPOT = 2, BS_M_ITL = 4, BS_M_E2EL = 8 };
#define BS_MAX_PERCENTILES 16

struct bs_report_in {
    const struct bs_result *res;   /* n results */
    const int *prompt_len;         /* n prompt lengths */
    int n;
    double duration_s;
    int max_concurrency;           /* 0: none */
    double request_rate;           /* INFINITY: all at once */
    double goodput_ms[3];          /* SLOs for ttft, tpot, e2el; < 0: not set */
    bool goodput;                  /* any SLO set */
    double percentiles[BS_MAX_PERCENTILES];
    int n_percentiles;
    unsigned metrics;              /* BS_M_* to report percentiles of */
};

/* Prints the table to out and returns the result object (vLLM's keys; the per-request
 * lists input_lens, output_lens, ttfts, itls, generated_texts, errors included), or NULL
 * when out of memory. */
json_t *bs_report(const struct bs_report_in *in, FILE *out);

/* A section's title line, "=====  title  =====" centred in 50 columns of c as Python's
 * format(s, "c^50") does (vLLM's section lines). */
void bs_report_header(FILE *out, const char *title, char c);

/* numpy's default percentile (linear between closest ranks) of n sorted values; 0 when
 * n == 0 (vLLM reports 0 for empty lists). */
double bs_percentile(const double *sorted, int n, double p);
/* Sorts v[n] ascending, for bs_percentile. */
void bs_sort(double *v, int n);

#endif
