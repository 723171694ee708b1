/* pagoda bench gemm: the 8B shape's bf16 linears at batched-decode sizes, cuBLASLt beside our
 * own Hopper kernel (kernels/cuda/gemm_wgmma.cu). Each (shape, n) goes through the tuned
 * linear once (kernels/cuda/gemm_tune.cu), which times cuBLASLt's heuristic first, its
 * fastest candidate (split-K variants included) and the kernel's fastest configuration
 * (token tile, K split; every configuration, not only the start-up set, unless
 * --wgmma-candidates few), each the median of 5 runs with L2 overwritten before each (the
 * weights come from HBM, as in a real step); the table shows those times, which path the
 * plan took, and the floor: the larger of the bytes (weights, x, y) at the copy bandwidth
 * and the FLOPs at the 8192^3 GEMM rate, both measured in the same run.
 *
 * --reuse LIST times the n's of LIST as a server's steps meet them: one context takes them
 * in order, so the first n of a power-of-two bucket tunes it and the others run the
 * algorithm tuned there (or, where cuBLASLt refuses it at their n, the heuristic's); each
 * beside the same n tuned on a context of its own, and the heuristic's first at that n.
 * Mixed steps (decodes beside a prompt chunk) make every n; this says what reusing a
 * bucket's algorithm costs them. */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#define MAX_BATCHES 8
#define MAX_REUSE 32

#define REUSE_REPS 7               /* timed runs an n of --reuse (the median), after one */
#define REUSE_ROTATE_BYTES ((size_t)256 << 20) /* weights rotated through so each run reads
                                                   them from HBM, as a step does (past L2) */

#ifdef PGD_HAVE_CUDA
struct gemm_shape {
    const char *name;
    int out, in, per_step;          /* launches per decode step of the 8B model */
};

static const struct gemm_shape SHAPES[] = {
    { "qkv", 6144, 4096, 32 }, { "o", 4096, 4096, 32 }, { "gate_up", 28672, 4096, 32 },
    { "down", 4096, 14336, 32 },
};

/* One (shape, n): the tuned linear's record of it. */
static int measure(struct pgd_cuda_ctx *c, const struct gemm_shape *sh, int n, void *x, void *w,
                   void *y, struct pgd_cuda_gemm_tune_info *t, char *err, size_t errlen)
{
    int before = pgd_cuda_gemm_tune_count(c);
    if (pgd_cuda_linear_lt(c, PGD_DTYPE_BF16, x, w, NULL, n, sh->in, sh->out, PGD_DTYPE_BF16, y,
                           err, errlen) ||
        pgd_cuda_sync(c, err, errlen))
        return 1;
    if (pgd_cuda_gemm_tune_count(c) != before + 1 || pgd_cuda_gemm_tune_get(c, before, t)) {
        snprintf(err, errlen, "%s n %d: no tuning was recorded", sh->name, n);
        return 1;
    }
    return 0;
}

static int bench_shapes(struct pgd_cuda_ctx *c, const int *batches, int nb, double gbps,
                        double tflops)
{
    char err[512];
    int maxn = 0;
    for (int i = 0; i < nb; i++)
        maxn = batches[i] > maxn ? batches[i] : maxn;
    printf("%-8s %5s %10s %10s %10s %14s %8s %8s %7s\n", "shape", "n", "lt first", "lt tuned",
           "wgmma", "(tile/k/cps)", "chosen", "floor", "% floor");
    int rc = 0;
    double step_lt[MAX_BATCHES] = { 0 }, step_best[MAX_BATCHES] = { 0 };
    double step_floor[MAX_BATCHES] = { 0 };
    for (size_t s = 0; !rc && s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const struct gemm_shape *sh = &SHAPES[s];
        void *x = pgd_cuda_malloc((size_t)maxn * sh->in * 2);
        void *w = pgd_cuda_malloc((size_t)sh->out * sh->in * 2);
        void *y = pgd_cuda_malloc((size_t)maxn * sh->out * 2);
        if (!x || !w || !y) {
            snprintf(err, sizeof err, "out of device memory for %s", sh->name);
            rc = 1;
        }
        rc = rc || pgd_cuda_fill_random(c, PGD_DTYPE_BF16, x, (size_t)maxn * sh->in, 21, -1, 1,
                                        err, sizeof err) ||
             pgd_cuda_fill_random(c, PGD_DTYPE_BF16, w, (size_t)sh->out * sh->in, 22, -1, 1, err,
                                  sizeof err);
        for (int bi = 0; !rc && bi < nb; bi++) {
            const int n = batches[bi];
            struct pgd_cuda_gemm_tune_info t;
            rc = measure(c, sh, n, x, w, y, &t, err, sizeof err);
            if (rc)
                break;
            const double bytes = 2.0 * ((double)sh->out * sh->in + (double)n * (sh->in + sh->out));
            const double flops = 2.0 * n * (double)sh->in * sh->out;
            double floor_us = bytes / (gbps * 1e3), fl = flops / (tflops * 1e6);
            floor_us = fl > floor_us ? fl : floor_us;
            char cfg[32] = "-";
            if (t.own_bn)
                snprintf(cfg, sizeof cfg, "%d/%d/%d", t.own_bn, t.own_split, t.own_cps);
            char own[16] = "-";
            if (t.own_us > 0)
                snprintf(own, sizeof own, "%.1f", t.own_us);
            printf("%-8s %5d %10.1f %10.1f %10s %14s %8s %8.1f %6.0f%%\n", sh->name, n,
                   t.first_us, t.lt_us, own, cfg, t.own ? "wgmma" : "cuBLASLt", floor_us,
                   100.0 * floor_us / t.best_us);
            step_lt[bi] += sh->per_step * t.lt_us;
            step_best[bi] += sh->per_step * t.best_us;
            step_floor[bi] += sh->per_step * floor_us;
        }
        pgd_cuda_free(x);
        pgd_cuda_free(w);
        pgd_cuda_free(y);
    }
    if (rc) {
        fprintf(stderr, "pagoda bench gemm: %s\n", err);
        return 1;
    }
    printf("\nper decode step (32 layers of these four): us with cuBLASLt tuned, with the "
           "chosen paths, the floor\n");
    for (int bi = 0; bi < nb; bi++)
        printf("  n %4d: %8.0f %8.0f (%.2fx) %8.0f\n", batches[bi], step_lt[bi], step_best[bi],
               step_best[bi] > 0 ? step_lt[bi] / step_best[bi] : 0.0, step_floor[bi]);
    return 0;
}

/* The median of REUSE_REPS runs of the tuned linear at n on c, weight copy r % nw each
 * run, in us; *path: how c chose its algorithm at this n (the first call's host counters:
 * "tuned" a new tuning, "reused" the bucket's algorithm accepted, "heuristic" a query). */
static int time_reused(struct pgd_cuda_ctx *c, const struct gemm_shape *sh, int n, void *x,
                       void *const *w, int nw, void *y, double *us, const char **path,
                       char *err, size_t errlen)
{
    struct pgd_cuda_gemm_host_stats h0, h1;
    pgd_cuda_gemm_host_stats(c, &h0);
    if (pgd_cuda_linear_lt(c, PGD_DTYPE_BF16, x, w[0], NULL, n, sh->in, sh->out, PGD_DTYPE_BF16,
                           y, err, errlen) ||
        pgd_cuda_sync(c, err, errlen))
        return 1;
    pgd_cuda_gemm_host_stats(c, &h1);
    *path = h1.tunings > h0.tunings     ? "tuned"
            : h1.heuristics > h0.heuristics ? "heuristic"
                                            : "reused";
    struct pgd_cuda_prof *p = NULL;
    if (pgd_cuda_prof_create(c, 2 * REUSE_REPS, &p, err, errlen))
        return 1;
    float ms[REUSE_REPS];
    int rc = 0;
    for (int r = 0; !rc && r < REUSE_REPS; r++)
        rc = pgd_cuda_prof_mark(p, 2 * r, err, errlen) ||
             pgd_cuda_linear_lt(c, PGD_DTYPE_BF16, x, w[(r + 1) % nw], NULL, n, sh->in, sh->out,
                                PGD_DTYPE_BF16, y, err, errlen) ||
             pgd_cuda_prof_mark(p, 2 * r + 1, err, errlen);
    for (int r = 0; !rc && r < REUSE_REPS; r++)
        rc = pgd_cuda_prof_elapsed(p, 2 * r, 2 * r + 1, &ms[r], err, errlen);
    pgd_cuda_prof_destroy(p);
    if (rc)
        return 1;
    for (int i = 1; i < REUSE_REPS; i++) /* insertion sort: seven values */
        for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
            float t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    *us = 1e3 * ms[REUSE_REPS / 2];
    return 0;
}

/* --reuse: the table the header describes, shape by shape. */
static int bench_reuse(struct pgd_cuda_ctx *c, const int *ns, int nn)
{
    char err[512] = "";
    int maxn = 0;
    for (int i = 0; i < nn; i++)
        maxn = ns[i] > maxn ? ns[i] : maxn;
    printf("n's in the order given, on one context (a bucket's first n tunes it); each beside "
           "the same n tuned alone and the heuristic's first there (us)\n");
    printf("%-8s %5s %7s %10s %10s %10s %10s %8s\n", "shape", "n", "bucket", "path", "this n",
           "tuned here", "heuristic", "/ tuned");
    int rc = 0;
    for (size_t s = 0; !rc && s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const struct gemm_shape *sh = &SHAPES[s];
        const size_t wbytes = (size_t)sh->out * sh->in * 2;
        int nw = (int)((REUSE_ROTATE_BYTES + wbytes - 1) / wbytes);
        nw = nw < 2 ? 2 : nw > 8 ? 8 : nw;
        void *w[8] = { NULL }, *x = pgd_cuda_malloc((size_t)maxn * sh->in * 2);
        void *y = pgd_cuda_malloc((size_t)maxn * sh->out * 2);
        rc = !x || !y;
        for (int i = 0; !rc && i < nw; i++) {
            w[i] = pgd_cuda_malloc(wbytes);
            rc = !w[i] || pgd_cuda_fill_random(c, PGD_DTYPE_BF16, w[i], wbytes / 2, 22 + i, -1,
                                               1, err, sizeof err);
        }
        if (rc && !err[0])
            snprintf(err, sizeof err, "out of device memory for %s", sh->name);
        rc = rc || pgd_cuda_fill_random(c, PGD_DTYPE_BF16, x, (size_t)maxn * sh->in, 21, -1, 1,
                                        err, sizeof err);
        /* a context of the shape's own, so that its first n tunes afresh */
        struct pgd_cuda_ctx *run = NULL;
        rc = rc || pgd_cuda_ctx_create(&run, err, sizeof err);
        if (run)
            pgd_cuda_gemm_tune_set(run, 1);
        for (int i = 0; !rc && i < nn; i++) {
            const int n = ns[i];
            double us = 0;
            const char *path = "";
            struct pgd_cuda_ctx *alone = NULL;
            struct pgd_cuda_gemm_tune_info t;
            rc = time_reused(run, sh, n, x, w, nw, y, &us, &path, err, sizeof err) ||
                 pgd_cuda_ctx_create(&alone, err, sizeof err);
            if (!rc) {
                pgd_cuda_gemm_tune_set(alone, 1);
                rc = measure(alone, sh, n, x, w[0], y, &t, err, sizeof err);
            }
            if (alone)
                pgd_cuda_ctx_destroy(alone);
            if (!rc)
                printf("%-8s %5d %7d %10s %10.1f %10.1f %10.1f %7.2fx\n", sh->name, n,
                       pgd_cuda_gemm_bucket(n), path, us, t.best_us, t.first_us,
                       t.best_us > 0 ? us / t.best_us : 0.0);
            fflush(stdout);
        }
        if (run)
            pgd_cuda_ctx_destroy(run);
        for (int i = 0; i < nw; i++)
            pgd_cuda_free(w[i]);
        pgd_cuda_free(x);
        pgd_cuda_free(y);
    }
    if (rc)
        fprintf(stderr, "pagoda bench gemm: %s\n", err);
    return rc;
}
#endif

int pgd_cmd_bench_gemm(int argc, char **argv)
{
    int batches[MAX_BATCHES] = { 16, 32, 64, 128, 256, 512 }, nb = 6, all = 1;
    int reuse[MAX_REUSE], nr = 0;
    char err[512];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (pgd_tool_bench_int_list("--batch", argv[++i], 5, 4096, batches, MAX_BATCHES, &nb,
                                        err, sizeof err)) {
                fprintf(stderr, "pagoda bench gemm: %s\n", err);
                return 2;
            }
        } else if (!strcmp(argv[i], "--reuse") && i + 1 < argc) {
            if (pgd_tool_bench_int_list("--reuse", argv[++i], 1, 16384, reuse, MAX_REUSE, &nr,
                                        err, sizeof err)) {
                fprintf(stderr, "pagoda bench gemm: %s\n", err);
                return 2;
            }
        } else if (!strcmp(argv[i], "--wgmma-candidates") && i + 1 < argc &&
                   (!strcmp(argv[i + 1], "all") || !strcmp(argv[i + 1], "few"))) {
            all = !strcmp(argv[++i], "all");
        } else {
            fprintf(stderr, "usage: pagoda bench gemm [--batch LIST] [--wgmma-candidates all|few]"
                            " [--reuse LIST]"
                            "   (the 8B shape's bf16 linears: cuBLASLt beside our wgmma kernel, "
                            "on the GPU;\n  all: every configuration of the kernel timed (the "
                            "default), few: the start-up set, PGD_CUDA_GEMM_WGMMA_CANDIDATES's "
                            "default)\n  --reuse LIST: these n's in order on one context, "
                            "as a server's steps meet them (a bucket's first n tunes it), each "
                            "beside the same n tuned alone\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
#ifdef PGD_HAVE_CUDA
    struct pgd_tool_bench_gpu g;
    if (pgd_tool_bench_gpu_open("pagoda bench gemm", PGD_TOOL_BENCH_SHOW_COPY_GEMM, &g))
        return 1;
    pgd_cuda_gemm_tune_set(g.c, 1);
    pgd_cuda_gemm_tune_wgmma_set(g.c, all);
    printf("wgmma kernel: %s%s\n\n",
           pgd_cuda_wgmma_available(g.c) ? "available" : "not on this device or build",
           all ? "" : " (the start-up configurations only)");
    int rc = nr ? bench_reuse(g.c, reuse, nr) : bench_shapes(g.c, batches, nb, g.gbps, g.tflops);
    pgd_cuda_ctx_destroy(g.c);
    return rc;
#else
    (void)all;
    fprintf(stderr, "pagoda bench gemm: this build has no CUDA backend\n");
    return 1;
#endif
}
