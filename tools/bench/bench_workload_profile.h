/* `pagoda bench throughput --profile-ops`: where the time of a workload's own steps goes
 * (tools/bench/bench_workload_profile.c). The steps are put in buckets: decode-only steps
 * by their sequences, steps with prompt tokens by their tokens, each in powers of two (1, 2,
 * 3-4, 5-8, ..., 513-1024). Through the runner's step hook (runner.h) the timed run only
 * counts its steps' wall times by bucket (nothing is profiled: its decode steps replay CUDA
 * graphs as always); the profile pass that follows runs requests again with every step
 * eager and its ops timed into its bucket's per-op profile (runtime/runner/op_profile.h). */
#ifndef PGD_TOOLS_BENCH_WORKLOAD_PROFILE_H
#define PGD_TOOLS_BENCH_WORKLOAD_PROFILE_H

#include "runtime/runner/runner.h"
#include <stdio.h>

struct json_t;
struct pgd_bench_wl_profile;

/* For r's steps (r borrowed: it outlives the profile). */
struct pgd_bench_wl_profile *pgd_bench_wl_profile_create(struct pgd__runner *r);
/* Takes the hook off r, frees the buckets' profiles. */
void pgd_bench_wl_profile_destroy(struct pgd_bench_wl_profile *w);
/* Sets r's step hook (only while no step runs): counting the timed run's steps (pass
 * false), or profiling every step of the profile pass (true). */
void pgd_bench_wl_profile_attach(struct pgd_bench_wl_profile *w, bool pass);
/* Takes the hook off r (only while no step runs). */
void pgd_bench_wl_profile_detach(struct pgd_bench_wl_profile *w);
/* The first failure of the profile pass (a bucket's profile that could not be made, its
 * message in err), or PGD_OK. */
enum pgd_status pgd_bench_wl_profile_status(const struct pgd_bench_wl_profile *w, char *err,
                                            size_t errlen);
/* Steps the profile pass ran, and of them the ones with their ops timed. */
long pgd_bench_wl_profile_pass_steps(const struct pgd_bench_wl_profile *w, long *profiled);
/* The report: the buckets side by side (the timed run's steps, share of its step time and
 * time a step; the profile pass's steps and forward pass a step, and its ratio to the timed
 * step), then each bucket's per-op table (pgd__op_profile_print) beside the ceilings (copy
 * GB/s, GEMM TFLOP/s; 0: unknown). requests: how many the profile pass ran. */
void pgd_bench_wl_profile_print(const struct pgd_bench_wl_profile *w, FILE *out, int requests,
                                double gbps, double tflops);
/* The same as JSON: {"requests", "buckets": [{"kind": "decode"|"prompt", "min", "max",
 * "timed_steps", "timed_graph_steps", "timed_share", "timed_step_ms", "timed_device_ms",
 * "timed_mean_size", "profiled_steps", "profiled_step_ms" (the forward pass, first op to
 * last), "profiled_wall_ms", "profiled_mean_size", "eager_over_timed", "profile":
 * pgd__op_profile_json's object or null}]}. A new reference, NULL when out of memory. */
struct json_t *pgd_bench_wl_profile_json(const struct pgd_bench_wl_profile *w, int requests,
                                         double gbps, double tflops);

#endif
