/* The host-work lines (see host_work_line.h). The cuBLASLt struct comes from kernels.h, which
 * CPU builds include too (it declares, it needs no CUDA): its line is built and tested
 * everywhere, printed only where there is a CUDA context. */
#include "config.h"
#include "runtime/runner/host_work_line.h"
#include "kernels/cuda/kernels.h"
#include "runtime/runner/runner.h"
#include <stdio.h>

void pgd__host_split_line(const struct pgd__runner_host_split *from,
                          const struct pgd__runner_host_split *to, char *buf, size_t len)
{
    const struct pgd__runner_host_split zero = { 0 };
    const struct pgd__runner_host_split *a = from ? from : &zero, *b = to;
    const long gs = b->graph_steps - a->graph_steps, es = b->eager_steps - a->eager_steps;
    snprintf(buf, len, "%ld graph steps, %.3f ms of host work each (%.3f ms in the graph "
             "launch), %ld eager steps, %.3f ms each", gs,
             gs ? 1e3 * (b->graph_host_s - a->graph_host_s) / gs : 0.0,
             gs ? 1e3 * (b->replay_s - a->replay_s) / gs : 0.0, es,
             es ? 1e3 * (b->eager_host_s - a->eager_host_s) / es : 0.0);
}

void pgd__gemm_host_line(const struct pgd_cuda_gemm_host_stats *from,
                         const struct pgd_cuda_gemm_host_stats *to, char *buf, size_t len)
{
    const struct pgd_cuda_gemm_host_stats zero = { 0 };
    const struct pgd_cuda_gemm_host_stats *a = from ? from : &zero, *b = to;
    snprintf(buf, len, "%ld plans built (%.1f ms, choices included), %ld algorithm checks "
             "(%.1f ms), %ld heuristic queries (%.1f ms), %ld tunings (%.1f ms); %ld matmul "
             "calls outside graph replays (%.1f ms of host time; %ld over 1 ms, %.1f ms; the "
             "slowest so far %.1f ms, n %d, %d -> %d)", b->plans - a->plans,
             b->plan_ms - a->plan_ms, b->checks - a->checks, b->check_ms - a->check_ms,
             b->heuristics - a->heuristics, b->heuristic_ms - a->heuristic_ms,
             b->tunings - a->tunings, b->tune_ms - a->tune_ms, b->matmuls - a->matmuls,
             b->matmul_ms - a->matmul_ms, b->matmuls_slow - a->matmuls_slow,
             b->matmul_slow_ms - a->matmul_slow_ms, b->matmul_max_ms, b->max_n, b->max_in,
             b->max_out);
}
