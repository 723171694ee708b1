/* pagoda bench gemv: the decode GEMVs of the Llama-3-8B shape, each kernel variant timed
 * alone (weights rotated through copies larger than L2, random data), in microseconds and
 * GB/s of weights read beside the device-to-device copy bandwidth measured in the same run;
 * then the sum over one decode step's GEMVs (32 layers + the head). */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#ifdef PGD_HAVE_CUDA
struct gemv_shape {
    const char *name;
    int out, in, per_step;          /* launches per decode step (0: not in today's model) */
};

static const struct gemv_shape SHAPES[] = {
    { "qkv fused", 6144, 4096, 0 }, { "q / o", 4096, 4096, 64 }, { "k / v", 1024, 4096, 64 },
    { "gate_up", 28672, 4096, 32 }, { "down", 4096, 14336, 32 }, { "lm head", 128256, 4096, 1 },
};

/* Variant 0 is the warp kernel, 1 the split kernel with its own ks, 2..5 the split forced,
 * 6 the warp kernel over the rows cut as q, k, v in one launch (pgd_cuda_linear_multi), 7 the
 * rows as a fused gate_up through the GLU kernel (glu.cu: GEMV and SiLU-mul in one). */
#define NVAR 8
static const int VARIANT[NVAR] = { PGD_CUDA_GEMV_WARP, PGD_CUDA_GEMV_SPLIT, PGD_CUDA_GEMV_SPLIT,
                                   PGD_CUDA_GEMV_SPLIT, PGD_CUDA_GEMV_SPLIT, PGD_CUDA_GEMV_SPLIT,
                                   PGD_CUDA_GEMV_BENCH_QKV, PGD_CUDA_GEMV_BENCH_GLU };
static const int KS[NVAR] = { 0, 0, 1, 2, 4, 8, 0, 0 };
static const char *VNAME[NVAR] = { "warp", "split", "ks1", "ks2", "ks4", "ks8", "as-qkv",
                                   "as-glu" };
#endif

int pgd_cmd_bench_gemv(int argc, char **argv)
{
    int batches[4] = { 1, 2, 4 }, nb = 3;
    char err[512];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (pgd_tool_bench_int_list("--batch", argv[++i], 1, 8, batches, 4, &nb, err,
                                        sizeof err)) {
                fprintf(stderr, "pagoda bench gemv: %s\n", err);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: pagoda bench gemv [--batch LIST]   (the 8B shape's decode "
                            "GEMVs, bf16, on the GPU)\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
#ifdef PGD_HAVE_CUDA
    struct pgd_tool_bench_gpu g;
    if (pgd_tool_bench_gpu_open("pagoda bench gemv", PGD_TOOL_BENCH_SHOW_COPY, &g))
        return 1;
    struct pgd_cuda_ctx *c = g.c;
    const double gbps = g.gbps;
    printf("\n%-9s %6s %6s %2s", "shape", "out", "in", "n");
    for (int v = 0; v < NVAR; v++)
        printf(" %14s", VNAME[v]);
    printf("   (us, GB/s of weights)  floor us\n");
    int nshape = (int)(sizeof SHAPES / sizeof SHAPES[0]);
    for (int bi = 0; bi < nb; bi++) {
        int n = batches[bi];
        double step[NVAR] = { 0 }, floor_step = 0;
        for (int s = 0; s < nshape; s++) {
            const struct gemv_shape *sh = &SHAPES[s];
            double us[NVAR], bytes = 2.0 * sh->out * sh->in;
            if (pgd_cuda_bench_gemv(c, PGD_DTYPE_BF16, n, sh->in, sh->out, NVAR, VARIANT, KS, us,
                                    err, sizeof err)) {
                fprintf(stderr, "pagoda bench gemv: %s\n", err);
                pgd_cuda_ctx_destroy(c);
                return 1;
            }
            printf("%-9s %6d %6d %2d", sh->name, sh->out, sh->in, n);
            for (int v = 0; v < NVAR; v++) {
                printf(" %7.1f %5.0f ", us[v], bytes / (us[v] * 1e3));
                step[v] += sh->per_step * us[v];
            }
            printf("  %8.1f\n", bytes / (gbps * 1e3));
            floor_step += sh->per_step * bytes / (gbps * 1e3);
        }
        printf("%-9s %16d", "step sum", n);
        for (int v = 0; v < NVAR; v++)
            printf(" %7.0f %4.0f%% ", step[v], 100.0 * floor_step / step[v]);
        printf("  %8.0f   (us; %% = floor / time)\n\n", floor_step);
    }
    pgd_cuda_ctx_destroy(c);
    return 0;
#else
    fprintf(stderr, "pagoda bench gemv: this build has no CUDA backend\n");
    return 1;
#endif
}
