/* Internal: the words that report cuBLASLt's host work (kernels/cuda/kernels.h's struct
 * pgd_cuda_gemm_host_stats), for the runner's exit log (the context's lifetime) and `pagoda
 * bench throughput`'s report (the timed run's difference), so that both read alike. */
#ifndef PGD_RUNTIME_RUNNER_GEMM_HOST_LINE_H
#define PGD_RUNTIME_RUNNER_GEMM_HOST_LINE_H

#include <stddef.h>

struct pgd_cuda_gemm_host_stats;

/* The work between the snapshots from and to (from NULL: all of to, i.e. since the context
 * began), e.g. "17 plans built (0.2 ms, choices included), 0 algorithm checks (0.0 ms), 0
 * heuristic queries (0.0 ms), 0 tunings (0.0 ms); 3625 matmul calls outside graph replays
 * (153.8 ms of host time)", into buf [len] (truncated to fit, always terminated; len > 0). */
void pgd__gemm_host_line(const struct pgd_cuda_gemm_host_stats *from,
                         const struct pgd_cuda_gemm_host_stats *to, char *buf, size_t len);

#endif
