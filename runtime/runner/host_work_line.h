/* Internal: the words that report the host's work for the steps (the runner's host split
 * by step kind, runner.h; cuBLASLt's plans and calls, kernels/cuda/kernels.h's struct
 * pgd_cuda_gemm_host_stats), for the runner's exit log (its lifetime) and `pagoda bench
 * throughput`'s report (the timed run's difference), so that both read alike. */
#ifndef PGD_RUNTIME_RUNNER_HOST_WORK_LINE_H
#define PGD_RUNTIME_RUNNER_HOST_WORK_LINE_H

#include <stddef.h>

struct pgd_cuda_gemm_host_stats;
struct pgd__runner_host_split;

/* The steps between the snapshots from and to (from NULL: all of to), e.g. "15297 graph
 * steps, 0.156 ms of host work each (0.041 ms in the graph launch), 1838 eager steps, 4.249
 * ms each", into buf [len] (truncated to fit, always terminated; len > 0). */
void pgd__host_split_line(const struct pgd__runner_host_split *from,
                          const struct pgd__runner_host_split *to, char *buf, size_t len);

/* The work between the snapshots from and to (from NULL: all of to, i.e. since the context
 * began), e.g. "17 plans built (0.2 ms, choices included), 0 algorithm checks (0.0 ms), 0
 * heuristic queries (0.0 ms), 0 tunings (0.0 ms); 3625 matmul calls outside graph replays
 * (153.8 ms of host time)", into buf [len] (truncated to fit, always terminated; len > 0). */
void pgd__gemm_host_line(const struct pgd_cuda_gemm_host_stats *from,
                         const struct pgd_cuda_gemm_host_stats *to, char *buf, size_t len);

#endif
