/* The start of the kernel benches (`pagoda bench gemm`, gemv, quant, attention): the
 * device's ceilings measured (copy bandwidth, bf16 GEMM rate), the bench's own CUDA context
 * opened, and the device line with the ceilings printed above the bench's table. */
#include "config.h"
#include "tools/bench/bench_common.h"
#include "tools/commands.h"
#include <stdio.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"

int pgd_tool_bench_gpu_open(const char *cmd, enum pgd_tool_bench_show show,
                            struct pgd_tool_bench_gpu *g)
{
    char desc[256] = "", err[512] = "";
    *g = (struct pgd_tool_bench_gpu){ 0 };
    /* The ceilings first (pgd_tool_bench_ceilings makes and destroys a context of its own). */
    if (show == PGD_TOOL_BENCH_SHOW_DEVICE) {
        if (pgd_cuda_describe(0, desc, sizeof desc)) {
            fprintf(stderr, "%s: no CUDA device\n", cmd);
            return 1;
        }
    } else if (pgd_tool_bench_ceilings(PGD_DEVICE_CUDA, PGD_DTYPE_BF16, &g->gbps, &g->tflops,
                                       desc, sizeof desc)) {
        return 1;
    }
    if (pgd_cuda_ctx_create(&g->c, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        g->c = NULL;
        return 1;
    }
    printf("device: %s\n", desc);
    if (show == PGD_TOOL_BENCH_SHOW_COPY)
        printf("copy bandwidth %.0f GB/s (read + write)\n", g->gbps);
    else if (show == PGD_TOOL_BENCH_SHOW_COPY_GEMM)
        printf("copy bandwidth %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n", g->gbps,
               g->tflops);
    return 0;
}
#endif
