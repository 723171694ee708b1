/* What the `pagoda bench` commands share: the parser of a flag's list of whole numbers
 * (--batch 1,2,4; bench_list.c, no device needed) and the kernel benches' start (the
 * device's ceilings measured, the bench's CUDA context opened, the device line printed;
 * bench_gpu.c). */
#ifndef PGD_TOOLS_BENCH_BENCH_COMMON_H
#define PGD_TOOLS_BENCH_BENCH_COMMON_H

#include <stddef.h>

/* s, the value of flag, a comma-separated list of whole decimal numbers each in [lo, hi],
 * at most max of them, into v[0..*n). 0 when it is one; else non-zero, err naming the flag,
 * the bad item (empty, not a number, out of range, one past max) and what the flag takes,
 * and v and *n as they were (v may be written). */
int pgd_tool_bench_int_list(const char *flag, const char *s, long lo, long hi, int *v, int max,
                            int *n, char *err, size_t errlen);

#ifdef PGD_HAVE_CUDA
struct pgd_cuda_ctx;

/* Which ceilings a kernel bench measures and prints under its device line. */
enum pgd_tool_bench_show {
    PGD_TOOL_BENCH_SHOW_DEVICE,      /* none: the device's name alone */
    PGD_TOOL_BENCH_SHOW_COPY,        /* the copy bandwidth */
    PGD_TOOL_BENCH_SHOW_COPY_GEMM,   /* the copy bandwidth and the bf16 GEMM rate */
};

/* A kernel bench's device: its CUDA context (the caller destroys it) and the ceilings
 * measured before it was made (pgd_tool_bench_ceilings, bf16; 0 with SHOW_DEVICE). */
struct pgd_tool_bench_gpu {
    struct pgd_cuda_ctx *c;
    double gbps, tflops;
};

/* Measures the ceilings that `show` names, opens the context on device 0 and prints
 * "device: NAME" and, but with SHOW_DEVICE, "copy bandwidth G GB/s (read + write)[, bf16
 * GEMM T TFLOP/s]" (a line each) on stdout. cmd ("pagoda bench gemm") starts the message
 * on stderr when it fails: non-zero, and nothing is left open. */
int pgd_tool_bench_gpu_open(const char *cmd, enum pgd_tool_bench_show show,
                            struct pgd_tool_bench_gpu *g);
#endif

#endif
