/* `pagoda bench latency --profile-ops` and the GEMM tunings' report: the parts of the latency
 * benchmark that look inside a step (tools/bench/bench_latency_profile.c). */
#ifndef PGD_TOOLS_BENCH_LATENCY_PROFILE_H
#define PGD_TOOLS_BENCH_LATENCY_PROFILE_H

#include "runtime/runner/runner.h"
#include <stdio.h>

/* Decode: `steps` eager steps of the n_seqs sequences (each one token a step, greedy, fed
 * back through ids), the first untimed, with the per-op profile on; the table printed to
 * out beside the ceilings. seqs[i].n_computed is where each sequence stands and moves on by
 * one a step. */
int pgd_bench_profile_decode(struct pgd__runner *r, struct pgd__step_seq *seqs, int n_seqs,
                             int32_t *ids, int steps, double gbps, double tflops, FILE *out,
                             char *err, size_t errlen);
/* One step repeated: `steps` runs of the step of seqs [n_seqs] as it stands (a prefill, a
 * mixed step; a decode writes the same position again), the first untimed, with the
 * per-op profile on; the table printed to out. ids gets each run's tokens. */
int pgd_bench_profile_steps(struct pgd__runner *r, const struct pgd__step_seq *seqs, int n_seqs,
                            int32_t *ids, int steps, double gbps, double tflops, FILE *out,
                            char *err, size_t errlen);
/* The runner's cuBLASLt tunings so far (shape, n bucket, the heuristic's first and the
 * chosen algorithm's time, the time the tuning took), or nothing on the CPU. */
void pgd_bench_print_gemm_tunings(const struct pgd__runner *r, FILE *out);

#endif
