/* pagoda bench quant: the quantized linears (kernels/cuda/quant_wq.cu, quant_fp8.cu) at the
 * Llama-3-8B shapes, each path timed alone on random layers (copies larger than L2), bf16
 * activations: microseconds, the layer's weight bytes per second beside the device-to-device
 * copy bandwidth measured in the same run, TFLOP/s, the bf16 layer (linear.cu's GEMV, or
 * cuBLASLt's GEMM) at the same size for comparison, and the floor: the larger of the bytes
 * (weights, x and y once each) over the copy bandwidth and the FLOPs over the tensor-core
 * rate (the bf16 GEMM rate measured in the same run; FP8: twice it, Hopper's FP8 peak being
 * twice its bf16 peak). */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cuda/kernels.h"   /* declarations only: the formats' codes in every build */

#define MAX_LIST 16

struct quant_format {
    const char *name;
    int format, group, act_order;
};

static const struct quant_format FORMATS[] = {
    { "w4g128", PGD_CUDA_QBENCH_W4, 128, 0 }, { "w4g128-act", PGD_CUDA_QBENCH_W4, 128, 1 },
    { "w4g32", PGD_CUDA_QBENCH_W4, 32, 0 }, { "w4ch", PGD_CUDA_QBENCH_W4, -1, 0 },
    { "w8g128", PGD_CUDA_QBENCH_W8, 128, 0 }, { "fp8", PGD_CUDA_QBENCH_FP8, 0, 0 },
};
#define NFORMAT ((int)(sizeof FORMATS / sizeof FORMATS[0]))

#ifdef PGD_HAVE_CUDA
struct quant_shape {
    const char *name;
    int out, in;
};

static const struct quant_shape SHAPES[] = {
    { "q / o", 4096, 4096 }, { "qkv", 6144, 4096 }, { "gate_up", 28672, 4096 },
    { "down", 4096, 14336 },
};

static const char *PATH_NAME[13] = { "auto", "gemv", "gemm", "gemm-vec", "gemm-f32", "gemm-lt",
                                     "gemm-mma", "gemm-fast", "gemv-e4m3", "gemm-d16",
                                     "gemv-stream", "gemv-dec", "gemm-fold" };

/* The bf16 layer at the same size: microseconds. */
static int bf16_us(struct pgd_cuda_ctx *c, int n, int in, int out, double *us, char *err,
                   size_t errlen)
{
    if (n <= 8) {
        int variant = PGD_CUDA_GEMV_WARP, ks = 0;
        return pgd_cuda_bench_gemv(c, PGD_DTYPE_BF16, n, in, out, 1, &variant, &ks, us, err,
                                   errlen);
    }
    double tflops = 0;
    if (pgd_cuda_bench_gemm(c, PGD_DTYPE_BF16, out, n, in, 20, &tflops, err, errlen))
        return 1;
    *us = 2.0 * out * n * (double)in / (tflops * 1e6);
    return 0;
}

/* A bench of f's random layers of shape sh for up to the largest of the batches (*bytes: a
 * layer's weight bytes); NULL, the reason printed, when it cannot be made. */
static struct pgd_cuda_qbench *shape_bench(struct pgd_cuda_ctx *c, const struct quant_format *f,
                                           const struct quant_shape *sh, const int *batches,
                                           int nb, size_t *bytes)
{
    char err[512];
    int max_n = 1;
    for (int bi = 0; bi < nb; bi++)
        max_n = batches[bi] > max_n ? batches[bi] : max_n;
    struct pgd_cuda_qbench *q = NULL;
    if (pgd_cuda_qbench_create(c, f->format, f->group, f->act_order, sh->in, sh->out, max_n, &q,
                               bytes, err, sizeof err)) {
        fprintf(stderr, "pagoda bench quant: %s\n", err);
        return NULL;
    }
    return q;
}

static int run_format(struct pgd_cuda_ctx *c, const struct quant_format *f, const int *batches,
                      int nb, double gbps, double tflops)
{
    char err[512];
    const int fp8 = f->format == PGD_CUDA_QBENCH_FP8;
    static const int FP8_PATHS[9] = { PGD_CUDA_QPATH_AUTO, PGD_CUDA_QPATH_GEMV,
                                      PGD_CUDA_QPATH_GEMM_VEC, PGD_CUDA_QPATH_GEMM_F32,
                                      PGD_CUDA_QPATH_GEMM_D16,
                                      PGD_CUDA_QPATH_GEMM_FAST, PGD_CUDA_QPATH_GEMV_E4M3,
                                      PGD_CUDA_QPATH_GEMV_STREAM, PGD_CUDA_QPATH_GEMV_DEC };
    static const int WQ_PATHS[6] = { PGD_CUDA_QPATH_AUTO, PGD_CUDA_QPATH_GEMV, PGD_CUDA_QPATH_GEMM,
                                     PGD_CUDA_QPATH_GEMM_MMA, PGD_CUDA_QPATH_GEMM_LT,
                                     PGD_CUDA_QPATH_GEMM_FOLD };
    const int *paths = fp8 ? FP8_PATHS : WQ_PATHS;
    const int npath = fp8 ? 9 : 6;
    printf("== %s\n%-8s %6s %6s %4s", f->name, "shape", "out", "in", "n");
    for (int p = 0; p < npath; p++)
        printf(" %19s", PATH_NAME[paths[p]]);
    printf(" %17s %8s %6s%s\n", "bf16", "floor us", "bound", fp8 ? "" : "  auto's plan");
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const struct quant_shape *sh = &SHAPES[s];
        size_t bytes = 0;
        struct pgd_cuda_qbench *q = shape_bench(c, f, sh, batches, nb, &bytes);
        if (!q)
            return 1;
        for (int bi = 0; bi < nb; bi++) {
            const int n = batches[bi];
            printf("%-8s %6d %6d %4d", sh->name, sh->out, sh->in, n);
            double auto_us = 0;
            for (int p = 0; p < npath; p++) {
                double us = 0;
                /* the GEMV past 64 rows is many launches a call: not a contender */
                if ((paths[p] == PGD_CUDA_QPATH_GEMV || paths[p] == PGD_CUDA_QPATH_GEMV_E4M3 ||
                     paths[p] == PGD_CUDA_QPATH_GEMV_STREAM) && n > 64) {
                    printf(" %19s", "-");
                    continue;
                }
                /* the decode GEMV takes up to 16 rows */
                if (paths[p] == PGD_CUDA_QPATH_GEMV_DEC && n > 16) {
                    printf(" %19s", "-");
                    continue;
                }
                int rc = pgd_cuda_qbench_run(c, q, paths[p], n, &us, err, sizeof err);
                if (rc == 2) {          /* no cuBLASLt algorithm; no folded GEMM here */
                    printf(" %19s", paths[p] == PGD_CUDA_QPATH_GEMM_FOLD ? "-" : "no algo");
                    continue;
                }
                if (rc) {
                    fprintf(stderr, "\npagoda bench quant: %s\n", err);
                    pgd_cuda_qbench_destroy(q);
                    return 1;
                }
                if (paths[p] == PGD_CUDA_QPATH_AUTO)
                    auto_us = us;
                const double tf = 2.0 * n * sh->out * (double)sh->in / (us * 1e6);
                printf(" %7.1f %5.0f %5.1f", us, bytes / (us * 1e3), tf);
            }
            double bus = 0;
            if (bf16_us(c, n, sh->in, sh->out, &bus, err, sizeof err)) {
                fprintf(stderr, "\npagoda bench quant: %s\n", err);
                pgd_cuda_qbench_destroy(q);
                return 1;
            }
            const double flop = 2.0 * n * sh->out * (double)sh->in;
            const double io = (double)bytes + 2.0 * n * ((double)sh->in + sh->out);
            const double floor_bytes = io / (gbps * 1e3);
            const double floor_flop = flop / ((fp8 ? 2.0 : 1.0) * tflops * 1e6);
            const double floor_us = floor_bytes > floor_flop ? floor_bytes : floor_flop;
            char plan[32] = "";
            if (!fp8)
                pgd_cuda_qbench_plan(c, q, n, plan, sizeof plan);
            printf(" %7.1f %9.1f %8.1f %5.0f%%%s%s\n", bus, flop / (bus * 1e6), floor_us,
                   auto_us > 0 ? 100.0 * floor_us / auto_us : 0.0, fp8 ? "" : "  ", plan);
            fflush(stdout);
        }
        pgd_cuda_qbench_destroy(q);
    }
    printf("(each path: us, GB/s of weight bytes, TFLOP/s; bf16: us, TFLOP/s; floor: the larger "
           "of weight + x + y bytes / copy bandwidth and FLOPs / %s; bound: floor / auto's us%s)\n\n",
           fp8 ? "2 x the bf16 GEMM rate" : "the bf16 GEMM rate",
           fp8 ? "" : "; plan: gemv, or the fused GEMM's kernel (mma.sync or wgmma), token "
                      "tile / blocks splitting each tile's inputs");
    return 0;
}

/* --fold-plans: the folded W4 GEMM (kernels/cuda/quant_wq_fold.cu) with every token tile and
 * split forced, plain, warp-specialized and stream-K (its tiles of 128 tokens up, unsplit:
 * the blocks share the tiles' stages instead), each plan's time beside the cost model's
 * estimate, for fitting the model in one run: rows "us" (a call), "model" (its estimate,
 * thousands of units), '*' the model's pick, '+' the fastest; first, the clusters of ks
 * blocks the device holds at once (the model's waves). The plans are forced through the
 * environment the kernels read (PGD_CUDA_WQ_FOLD_WS / _BN / _KS), unset after. */
static const int FOLD_BN[4] = { 64, 128, 192, 256 }, FOLD_KS[6] = { 1, 2, 3, 4, 6, 8 };
#define FOLD_PLANS 24

static const char *const FOLD_KERNELS[3] = { "plain", "ws", "sk" };

/* ws: 0 plain, 1 warp-specialized, 2 stream-K */
static void fold_env(int ws, int bn, int ks)
{
    char v[16];
    setenv("PGD_CUDA_WQ_FOLD_WS", ws == 1 ? "1" : "0", 1);
    setenv("PGD_CUDA_WQ_FOLD_SK", ws == 2 ? "1" : "0", 1);
    snprintf(v, sizeof v, "%d", bn);
    setenv("PGD_CUDA_WQ_FOLD_BN", v, 1);
    snprintf(v, sizeof v, "%d", ks);
    setenv("PGD_CUDA_WQ_FOLD_KS", v, 1);
}

/* One kernel's plans at n rows: two rows, the times and the model's costs. */
static int fold_plans_row(struct pgd_cuda_ctx *c, struct pgd_cuda_qbench *q,
                          const struct quant_shape *sh, int n, int ws)
{
    char err[512];
    double us[FOLD_PLANS];
    long cost[FOLD_PLANS];
    int pick = -1, fast = -1;
    for (int i = 0; i < FOLD_PLANS; i++) {
        const int bn = FOLD_BN[i / 6], ks = FOLD_KS[i % 6];
        long slots = 0;
        us[i] = -1;
        cost[i] = pgd_cuda_wq_fold_plan_cost(c, n, sh->in, sh->out, ws, bn, ks, &slots);
        if (cost[i] < 0)
            continue;
        fold_env(ws, bn, ks);
        int rc = pgd_cuda_qbench_run(c, q, PGD_CUDA_QPATH_GEMM_FOLD, n, &us[i], err, sizeof err);
        if (rc) {
            fprintf(stderr, "\npagoda bench quant: %s\n", err);
            return 1;
        }
        if (pick < 0 || cost[i] < cost[pick])
            pick = i;
        if (fast < 0 || us[i] < us[fast])
            fast = i;
    }
    printf("%-8s %4d %-7s %-5s", sh->name, n, FOLD_KERNELS[ws], "us");
    for (int i = 0; i < FOLD_PLANS; i++)
        us[i] < 0 ? printf(" %8s", "-")
                  : printf(" %6.1f%c%c", us[i], i == pick ? '*' : ' ', i == fast ? '+' : ' ');
    printf("\n%-8s %4s %-7s %-5s", "", "", "", "model");
    for (int i = 0; i < FOLD_PLANS; i++)
        cost[i] < 0 ? printf(" %8s", "-") : printf(" %8.1f", cost[i] / 1000.0);
    printf("\n");
    fflush(stdout);
    return 0;
}

static int run_fold_plans(struct pgd_cuda_ctx *c, const struct quant_format *f,
                          const int *batches, int nb)
{
    if (!pgd_cuda_wq_fold_available(0)) {      /* the tool's context is on device 0 */
        fprintf(stderr, "pagoda bench quant: the folded GEMM does not run on this device (it "
                        "needs compute capability 9.0 and a build with 90 among its CUDA "
                        "architectures)\n");
        return 1;
    }
    printf("== fold plans, %s: clusters of ks blocks held at once (ks 2..8; ks 1: an SM each)\n",
           f->name);
    for (int ws = 0; ws < 2; ws++)
        for (int b = 0; b < 4; b++) {
            printf("%-5s %3d-token tile:", ws ? "ws" : "plain", FOLD_BN[b]);
            for (int ks = 2; ks <= 8; ks++) {
                long slots = 0;
                /* 8 splits of 512 stages all exist: the question is asked for each ks */
                pgd_cuda_wq_fold_plan_cost(c, 64, 64 * 8 * 64, 128, ws, FOLD_BN[b], ks, &slots);
                printf(" ks%d %ld", ks, slots);
            }
            printf("\n");
        }
    printf("%-8s %4s %-7s %-5s", "shape", "n", "kernel", "");
    for (int i = 0; i < FOLD_PLANS; i++) {
        char h[16];
        snprintf(h, sizeof h, "%d/%d", FOLD_BN[i / 6], FOLD_KS[i % 6]);
        printf(" %8s", h);
    }
    printf("\n");
    int rc = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0] && !rc; s++) {
        const struct quant_shape *sh = &SHAPES[s];
        size_t bytes = 0;
        struct pgd_cuda_qbench *q = shape_bench(c, f, sh, batches, nb, &bytes);
        if (!q) {
            rc = 1;
            break;
        }
        for (int bi = 0; bi < nb && !rc; bi++)
            for (int ws = 0; ws < 3 && !rc; ws++)
                rc = fold_plans_row(c, q, sh, batches[bi], ws);
        pgd_cuda_qbench_destroy(q);
    }
    unsetenv("PGD_CUDA_WQ_FOLD_WS");
    unsetenv("PGD_CUDA_WQ_FOLD_SK");
    unsetenv("PGD_CUDA_WQ_FOLD_BN");
    unsetenv("PGD_CUDA_WQ_FOLD_KS");
    printf("(us: a call of the plan, token tile / splits; model: the cost model's estimate, "
           "thousands of units; * the model's pick, + the fastest)\n\n");
    return rc;
}
#endif

int pgd_cmd_bench_quant(int argc, char **argv)
{
    int batches[MAX_LIST] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048 }, nb = 12;
    const char *only = NULL;
    bool fold_plans = false, batch_given = false;
    char err[512];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (pgd_tool_bench_int_list("--batch", argv[++i], 1, 65536, batches, MAX_LIST, &nb,
                                        err, sizeof err)) {
                fprintf(stderr, "pagoda bench quant: %s\n", err);
                return 2;
            }
            batch_given = true;
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--fold-plans")) {
            fold_plans = true;
        } else {
            fprintf(stderr, "usage: pagoda bench quant [--batch LIST] [--format NAME] "
                            "[--fold-plans]   (the quantized linears at the 8B shapes, on the "
                            "GPU)\n"
                            "  --fold-plans: the folded W4 GEMM's every token tile and split, "
                            "plain and warp-specialized, beside its cost model (w4g128; "
                            "batches 32,64,128,256)\n"
                            "  formats: w4g128 w4g128-act w4g32 w4ch w8g128 fp8 (default: all)\n"
                            "  paths: auto, gemv, gemm (W4/W8: the fused tensor-core GEMM, wgmma "
                            "where it applies), gemm-mma (the same on mma.sync),\n"
                            "  gemm-lt (W4/W8: dequantize + cuBLASLt), gemm-fold (W4: the "
                            "weights rounded to the dtype in wgmma's A registers, Hopper);\n"
                            "  fp8: gemm-vec, gemm-f32, "
                            "gemm-d16 (bf16 unscaled output, scaled in place), gemm-fast (d16 with fast accumulation),\n"
                            "  gemv-e4m3 (x as e4m3 codes), gemv-stream (x quantized once, "
                            "the weights streamed on fp16 tensor cores),\n"
                            "  gemv-dec (n <= 16: one launch, x quantized in its blocks, "
                            "split-K across blocks for narrow layers);\n"
                            "  environment "
                            "PGD_CUDA_WQ_GEMV_MAX_N, PGD_CUDA_FP8_GEMV_MAX_N, PGD_CUDA_FP8_STREAM=0,\n"
                            "  PGD_CUDA_FP8_DEC=0 (the paths before the decode GEMV), "
                            "PGD_CUDA_FP8_DEC_MAX_N (0..16), PGD_CUDA_FP8_DEC_XPREP=1,\n"
                            "  PGD_CUDA_WQ_GEMM_BN (32, 64, 128), PGD_CUDA_WQ_GEMM_KS (1..8),\n"
                            "  PGD_CUDA_WQ_FOLD_MIN_N / _MAX_N (its rows, 17..256), "
                            "PGD_CUDA_WQ_FOLD_BN (64, 128, 192, 256), PGD_CUDA_WQ_FOLD_KS (1..8),\n"
                            "  PGD_CUDA_WQ_FOLD_192=0 (the 192-token tile left out of the plans),\n"
                            "  PGD_CUDA_WQ_FOLD_WS=1 (the fold warp-specialized: copies by a "
                            "producer warpgroup, mbarriers),\n"
                            "  PGD_CUDA_WQ_FOLD_ONE_BLOCK=1 (the plain fold one block an SM),\n"
                            "  PGD_CUDA_WQ_FOLD_XSKIP=0 / 1 (x's rows past n copied from row "
                            "n - 1 / skipped; default: skipped but for 64-token tiles "
                            "all full),\n"
                            "  PGD_CUDA_WQ_FOLD_TMA=0 / 1 (the plain fold's x by the tensor copy "
                            "engine for no / every token tile;\n"
                            "    default: all but 64-token tiles at 32 rows or fewer),\n"
                            "  PGD_CUDA_WQ_FOLD_AHEAD=0 (the plain fold's stages read in order, "
                            "not a stage ahead),\n"
                            "  PGD_CUDA_FP8_FAST_ACCUM=0 change the automatic choice and "
                            "cuBLASLt's FP8 accumulation\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    int known = !only;
    for (int i = 0; i < NFORMAT && !known; i++)
        known = !strcmp(only, FORMATS[i].name);
    if (!known) {
        fprintf(stderr, "pagoda bench quant: no format '%s' (w4g128 w4g128-act w4g32 w4ch w8g128 "
                        "fp8)\n", only);
        return 2;
    }
    for (int i = 0; i < NFORMAT && fold_plans && only; i++) {
        const struct quant_format *f = &FORMATS[i];
        if (!strcmp(only, f->name) &&
            (f->format != PGD_CUDA_QBENCH_W4 || f->group % 64 != 0 || f->act_order)) {
            fprintf(stderr, "pagoda bench quant: --fold-plans takes a 4-bit format of groups of "
                            "a multiple of 64 without act-order (w4g128), not %s\n", only);
            return 2;
        }
    }
#ifdef PGD_HAVE_CUDA
    if (fold_plans && !batch_given) {  /* the fold's rows (17..256); 144 plans a row count */
        static const int FOLD_N[4] = { 32, 64, 128, 256 };
        memcpy(batches, FOLD_N, sizeof FOLD_N);
        nb = 4;
    }
    struct pgd_tool_bench_gpu g;
    if (pgd_tool_bench_gpu_open("pagoda bench quant", PGD_TOOL_BENCH_SHOW_COPY_GEMM, &g))
        return 1;
    printf("\n");
    int rc = 0;
    for (int i = 0; i < NFORMAT && !rc; i++)
        if (fold_plans ? !strcmp(only ? only : "w4g128", FORMATS[i].name)
                       : !only || !strcmp(only, FORMATS[i].name))
            rc = fold_plans ? run_fold_plans(g.c, &FORMATS[i], batches, nb)
                            : run_format(g.c, &FORMATS[i], batches, nb, g.gbps, g.tflops);
    pgd_cuda_ctx_destroy(g.c);
    return rc;
#else
    (void)batches;
    (void)nb;
    (void)batch_given;
    fprintf(stderr, "pagoda bench quant: this build has no CUDA backend\n");
    return 1;
#endif
}
