/* The cuBLASLt host-work line (see gemm_host_line.h). The struct comes from kernels.h, which
 * CPU builds include too (it declares, it needs no CUDA): the line is built and tested
 * everywhere, printed only where there is a CUDA context. */
#include "config.h"
#include "runtime/runner/gemm_host_line.h"
#include "kernels/cuda/kernels.h"
#include <stdio.h>

void pgd__gemm_host_line(const struct pgd_cuda_gemm_host_stats *from,
                         const struct pgd_cuda_gemm_host_stats *to, char *buf, size_t len)
{
    const struct pgd_cuda_gemm_host_stats zero = { 0 };
    const struct pgd_cuda_gemm_host_stats *a = from ? from : &zero, *b = to;
    snprintf(buf, len, "%ld plans built (%.1f ms, choices included), %ld algorithm checks "
             "(%.1f ms), %ld heuristic queries (%.1f ms), %ld tunings (%.1f ms); %ld matmul "
             "calls outside graph replays (%.1f ms of host time)", b->plans - a->plans,
             b->plan_ms - a->plan_ms, b->checks - a->checks, b->check_ms - a->check_ms,
             b->heuristics - a->heuristics, b->heuristic_ms - a->heuristic_ms,
             b->tunings - a->tunings, b->tune_ms - a->tune_ms, b->matmuls - a->matmuls,
             b->matmul_ms - a->matmul_ms);
}
