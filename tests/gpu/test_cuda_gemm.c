/* Our own Hopper GEMM (kernels/cuda/gemm_wgmma.cu) against the CPU linear and cuBLASLt:
 * y[n, out] = x[n, in] @ w[out, in]^T (+ b) at the 8B shapes' qkv (4096 -> 6144), o (4096 ->
 * 4096) and down (14336 -> 4096) and an odd shape (1000 -> 1100: K not a multiple of the
 * 64-input stage, out not of 8 or of the 128-feature tile), for n = 1, 7, 16, 33, 64, 100,
 * 128, 256, 512, every token tile (16..256) without split and K split 2, 3, 4 and 8 ways
 * (the DSMEM reduction in a cluster), one and two CTAs an SM, every configuration the tuning
 * times with PGD_CUDA_GEMM_WGMMA_CANDIDATES=all (pgd_cuda_wgmma_configs: the half tile split,
 * K split 6 and 8 ways at two CTAs an SM), bias on and off, bf16 and fp16 inputs, 16-bit and
 * float32 outputs.
 *
 * References: every row against cuBLASLt's (a second context with tuning off, so that it
 * never runs this kernel) and sampled rows (the first, a middle, the last) against the CPU
 * twin in float32 (the CPU linear of all 512 x 14336 x 4096 would take minutes). Tolerance as
 * tests/gpu/test_cuda_kernels.c's: |gpu - ref| <= rtol |ref| + atol * max |ref|, rtol 2^-7
 * (bf16) or 2^-10 (fp16), atol 2^-8 or 2^-11 (float32 sums in another order; the reference's
 * own rounding to the dtype counted once). Outputs are poisoned with NaN first. A split run
 * twice gives the same bits (the reduction's order is fixed).
 *
 * Then the tuned linear (gemm_tune.cu): the kernel's start-up set (the few configurations
 * that came closest to cuBLASLt on the H200) is among the timed candidates, all of them with
 * PGD_CUDA_GEMM_WGMMA_CANDIDATES=all, and where it won it is the plan's; the result matches
 * either way.
 *
 * On a device other than compute capability 9.0 (or a build without 90 among its CUDA
 * architectures) the kernel does not exist: the tests skip, saying so. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#define GPU_SUITE cuda_gemm
#define GPU_TEST_SEED 0x2545f4914f6cdd1dull
#include "tests/lib/gpu_kernel_test.h"

#ifdef PGD_HAVE_CUDA

#define CHECK_RC(rc) cr_assert_eq((rc), 0, "%s", err)

/* got vs want over count values of the output (dtype tol: the dtype whose rounding counts). */
static void expect_near(const char *what, const float *got, const float *want, size_t count,
                        enum pgd_dtype tol)
{
    double scale = 0;
    for (size_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(want[i]));
    const double rt = tol == PGD_DTYPE_BF16 ? 1.0 / 128 : 1.0 / 1024;
    const double at = (tol == PGD_DTYPE_BF16 ? 1.0 / 256 : 1.0 / 2048) * (scale > 0 ? scale : 1);
    for (size_t i = 0; i < count; i++)
        cr_assert(fabs((double)got[i] - want[i]) <= rt * fabs(want[i]) + at,
                  "%s: element %zu is %.6g, the reference %.6g (scale %.3g)", what, i, got[i],
                  want[i], scale);
}

struct problem {
    enum pgd_dtype dt, ydt;
    int n, in, out;
    float *x, *w, *b;                /* host, representable in dt (b NULL: no bias) */
    void *dx, *dw, *db;
    float *lt;                       /* cuBLASLt's y [n][out] */
    float *cpu;                      /* the CPU's rows rows[0..2] [3][out] */
    int rows[3];
};

/* x, w (and b) random; cuBLASLt's y on the untuned context ref; the CPU's sampled rows. */
static void problem_make(struct problem *p, struct pgd_cuda_ctx *ref, enum pgd_dtype dt,
                         enum pgd_dtype ydt, int n, int in, int out, bool bias, const float *w,
                         void *dw)
{
    char err[512] = "";
    *p = (struct problem){ .dt = dt, .ydt = ydt, .n = n, .in = in, .out = out };
    p->x = rand_vals((size_t)n * in, 1, dt);
    p->b = bias ? rand_vals((size_t)out, 1, dt) : NULL;
    p->w = (float *)w;
    p->dx = upload(p->x, (size_t)n * in, dt);
    p->dw = dw;
    p->db = bias ? upload(p->b, (size_t)out, dt) : NULL;
    void *dy = poisoned((size_t)n * out, ydt);
    CHECK_RC(pgd_cuda_linear_lt(ref, dt, p->dx, p->dw, p->db, n, in, out, ydt, dy, err,
                                sizeof err));
    CHECK_RC(pgd_cuda_sync(ref, err, sizeof err));
    p->lt = download(dy, (size_t)n * out, ydt);
    pgd_cuda_free(dy);
    p->rows[0] = 0;
    p->rows[1] = n / 2;
    p->rows[2] = n - 1;
    p->cpu = malloc(3 * (size_t)out * sizeof *p->cpu);
    for (int r = 0; r < 3; r++)
        pgd_cpu_linear(p->x + (size_t)p->rows[r] * in, p->w, p->b, 1, in, out,
                       p->cpu + (size_t)r * out);
}

static void problem_free(struct problem *p)
{
    free(p->x); free(p->b); free(p->lt); free(p->cpu);
    pgd_cuda_free(p->dx); pgd_cuda_free(p->db);
}

/* y from a downloaded output against both references. */
static void check_output(const struct problem *p, const float *y, const char *what)
{
    char label[200];
    const enum pgd_dtype tol = p->ydt == PGD_DTYPE_F32 ? PGD_DTYPE_F16 : p->dt;
    snprintf(label, sizeof label, "%s against cuBLASLt", what);
    /* both sides rounded to the dtype: the reference's rounding counted as well */
    expect_near(label, y, p->lt, (size_t)p->n * p->out,
                p->ydt == PGD_DTYPE_F32 ? PGD_DTYPE_F16 : PGD_DTYPE_BF16);
    for (int r = 0; r < 3; r++) {
        snprintf(label, sizeof label, "%s, row %d against the CPU", what, p->rows[r]);
        expect_near(label, y + (size_t)p->rows[r] * p->out, p->cpu + (size_t)r * p->out,
                    (size_t)p->out, tol);
    }
}

/* The kernel with bn tokens a tile, K split `split` ways, cps CTAs an SM; twice,
 * bit-identical, when `twice`. */
static void check_config(const struct problem *p, int bn, int split, int cps, bool twice)
{
    char err[512] = "", what[160];
    snprintf(what, sizeof what, "wgmma %s [%d x %d] -> %d%s out %s, tile %d, split %d, %d a SM",
             pgd_dtype_name(p->dt), p->n, p->in, p->out, p->db ? " + bias" : "",
             pgd_dtype_name(p->ydt), bn, split, cps);
    const size_t ny = (size_t)p->n * p->out;
    void *dy = poisoned(ny, p->ydt);
    CHECK_RC(pgd_cuda_linear_wgmma(ctx, p->dt, p->dx, p->dw, p->db, p->n, p->in, p->out, p->ydt,
                                   dy, bn, split, cps, err, sizeof err));
    float *y = download(dy, ny, p->ydt);
    check_output(p, y, what);
    if (twice) {
        void *dy2 = poisoned(ny, p->ydt);
        CHECK_RC(pgd_cuda_linear_wgmma(ctx, p->dt, p->dx, p->dw, p->db, p->n, p->in, p->out,
                                       p->ydt, dy2, bn, split, cps, err, sizeof err));
        float *y2 = download(dy2, ny, p->ydt);
        cr_assert_arr_eq(y, y2, ny * sizeof *y, "%s: a second run differs", what);
        free(y2);
        pgd_cuda_free(dy2);
    }
    free(y);
    pgd_cuda_free(dy);
}

static struct pgd_cuda_ctx *untuned_ctx(void)
{
    char err[512] = "";
    struct pgd_cuda_ctx *ref = NULL;
    cr_assert_eq(pgd_cuda_ctx_create(&ref, err, sizeof err), 0, "%s", err);
    pgd_cuda_gemm_tune_set(ref, 0);
    return ref;
}

static void need_wgmma(void)
{
    if (!pgd_cuda_wgmma_available(ctx))
        cr_skip_test("the wgmma GEMM needs a compute capability 9.0 device and a build with 90 "
                     "among its CUDA architectures");
}

static const int NS[9] = { 1, 7, 16, 33, 64, 100, 128, 256, 512 };

/* Every n of NS at one shape: all tiles unsplit at one and (up to 128 tokens) two CTAs an
 * SM, the n's own tile split 2, 3, 8 ways (as far as K has stages; split 3 run twice) and,
 * two CTAs an SM, 4 ways (run twice), then every configuration the tuning may pick at this
 * shape and n (all of them: whichever wins runs in the tuned linear). Bias on odd-indexed n
 * (and always with `bias_all`); float32 output at n = 33. */
static void check_shape(struct pgd_cuda_ctx *ref, enum pgd_dtype dt, int in, int out,
                        bool bias_all)
{
    float *w = rand_vals((size_t)out * in, 1, dt);
    void *dw = upload(w, (size_t)out * in, dt);
    for (int ni = 0; ni < 9; ni++) {
        const int n = NS[ni];
        const enum pgd_dtype ydt = n == 33 ? PGD_DTYPE_F32 : dt;
        struct problem p;
        problem_make(&p, ref, dt, ydt, n, in, out, bias_all || ni % 2, w, dw);
        for (int bn = 16; bn <= 256; bn *= 2) {
            check_config(&p, bn, 1, 1, false);
            if (bn <= 128)
                check_config(&p, bn, 1, 2, false);
        }
        int own = 16;
        while (own < n && own < 256)
            own *= 2;
        static const int SPLITS[3] = { 2, 3, 8 };
        for (int s = 0; s < 3; s++)          /* a part has at least one 64-input stage */
            if (SPLITS[s] <= (in + 63) / 64)
                check_config(&p, own, SPLITS[s], 1, SPLITS[s] == 3);
        if (own <= 128 && (in + 63) / 64 >= 4)
            check_config(&p, own, 4, 2, true);
        int bn[24], split[24], cps[24];
        const int nc = pgd_cuda_wgmma_configs(ctx, n, in, out, 1, bn, split, cps, 24);
        cr_assert(nc >= 1, "no wgmma configuration for [%d x %d] -> %d", n, in, out);
        for (int i = 0; i < nc; i++)
            check_config(&p, bn[i], split[i], cps[i], false);
        problem_free(&p);
    }
    free(w);
    pgd_cuda_free(dw);
}

GPU_TEST(wgmma_gemm_matches_the_cpu_and_cublaslt_at_the_8b_shapes)
{
    need_wgmma();
    struct pgd_cuda_ctx *ref = untuned_ctx();
    check_shape(ref, PGD_DTYPE_BF16, 4096, 6144, false);     /* qkv */
    check_shape(ref, PGD_DTYPE_BF16, 4096, 4096, false);     /* o */
    check_shape(ref, PGD_DTYPE_BF16, 14336, 4096, false);    /* down */
    pgd_cuda_ctx_destroy(ref);
}

GPU_TEST(wgmma_gemm_matches_at_an_odd_shape_in_both_dtypes)
{
    need_wgmma();
    struct pgd_cuda_ctx *ref = untuned_ctx();
    check_shape(ref, PGD_DTYPE_BF16, 1000, 1100, true);
    check_shape(ref, PGD_DTYPE_F16, 1000, 1100, false);
    check_shape(ref, PGD_DTYPE_F16, 136, 72, true);         /* K: 3 stages, the last partial */
    pgd_cuda_ctx_destroy(ref);
}

/* Arguments the kernel cannot take are refused with a message, not run. */
GPU_TEST(wgmma_gemm_refuses_what_it_cannot_run)
{
    need_wgmma();
    char err[512] = "";
    void *dx = poisoned(64 * 1000, PGD_DTYPE_BF16), *dw = poisoned(64 * 1000, PGD_DTYPE_BF16);
    void *dy = poisoned(64 * 64, PGD_DTYPE_BF16);
    cr_assert_neq(pgd_cuda_linear_wgmma(ctx, PGD_DTYPE_BF16, dx, dw, NULL, 64, 1000, 64,
                                        PGD_DTYPE_BF16, dy, 48, 1, 1, err, sizeof err), 0);
    cr_assert(strstr(err, "token tile 48"), "%s", err);
    cr_assert_neq(pgd_cuda_linear_wgmma(ctx, PGD_DTYPE_BF16, dx, dw, NULL, 64, 1000, 64,
                                        PGD_DTYPE_BF16, dy, 64, 9, 1, err, sizeof err), 0);
    cr_assert(strstr(err, "K split 9"), "%s", err);
    cr_assert_neq(pgd_cuda_linear_wgmma(ctx, PGD_DTYPE_BF16, dx, dw, NULL, 64, 996, 64,
                                        PGD_DTYPE_BF16, dy, 64, 1, 1, err, sizeof err), 0);
    cr_assert(strstr(err, "multiple of 8"), "%s", err);
    cr_assert_neq(pgd_cuda_linear_wgmma(ctx, PGD_DTYPE_F32, dx, dw, NULL, 64, 1000, 64,
                                        PGD_DTYPE_F32, dy, 64, 1, 1, err, sizeof err), 0);
    cr_assert_neq(pgd_cuda_linear_wgmma(ctx, PGD_DTYPE_BF16, dx, dw, NULL, 64, 1000, 64,
                                        PGD_DTYPE_BF16, dy, 256, 1, 2, err, sizeof err), 0);
    cr_assert(strstr(err, "2 CTAs an SM"), "%s", err);
    pgd_cuda_free(dx); pgd_cuda_free(dw); pgd_cuda_free(dy);
}

/* The tuned linear at the o projection's shape, n = 64 (cuBLASLt's weakest): the kernel's
 * start-up configurations (the 64-token tile, one CTA an SM, K split at most 3 ways) were
 * timed beside cuBLASLt's, the record says which won and at what time, and the plan's output
 * (whichever runs) matches both references and repeats bit for bit. With every
 * configuration asked for (the environment, on a context made after it is set) more are
 * timed (12 at 132 SMs), and the output matches again. */
GPU_TEST(tuned_linear_times_the_wgmma_kernel_beside_cublaslt)
{
    need_wgmma();
    char err[512] = "";
    struct pgd_cuda_ctx *ref = untuned_ctx();
    pgd_cuda_gemm_tune_set(ctx, 1);
    pgd_cuda_gemm_tune_wgmma_set(ctx, 0);
    const int n = 64, in = 4096, out = 4096;
    float *w = rand_vals((size_t)out * in, 1, PGD_DTYPE_BF16);
    void *dw = upload(w, (size_t)out * in, PGD_DTYPE_BF16);
    struct problem p;
    problem_make(&p, ref, PGD_DTYPE_BF16, PGD_DTYPE_BF16, n, in, out, true, w, dw);
    const size_t ny = (size_t)n * out;
    void *dy = poisoned(ny, PGD_DTYPE_BF16), *dy2 = poisoned(ny, PGD_DTYPE_BF16);
    for (int r = 0; r < 2; r++)
        CHECK_RC(pgd_cuda_linear_lt(ctx, p.dt, p.dx, p.dw, p.db, n, in, out, p.ydt,
                                    r ? dy2 : dy, err, sizeof err));
    cr_assert_eq(pgd_cuda_gemm_tune_count(ctx), 1, "one tuning");
    struct pgd_cuda_gemm_tune_info t;
    cr_assert_eq(pgd_cuda_gemm_tune_get(ctx, 0, &t), 0);
    cr_assert(t.own_timed >= 1 && t.own_timed <= 3 && t.own_bn == 64 && t.own_split >= 1 &&
              t.own_split <= 3 && t.own_cps == 1 && t.own_us > 0 && t.lt_us > 0,
              "wgmma start-up candidates: %d timed, best tile %d split %d %d a SM at %.2f us; "
              "cuBLASLt %.2f us", t.own_timed, t.own_bn, t.own_split, t.own_cps, t.own_us,
              t.lt_us);
    cr_assert(t.own ? t.best_us == t.own_us && t.own_us < t.lt_us : t.best_us == t.lt_us,
              "chosen %s at %.2f us: wgmma %.2f, cuBLASLt %.2f", t.own ? "wgmma" : "cuBLASLt",
              t.best_us, t.own_us, t.lt_us);
    float *y = download(dy, ny, PGD_DTYPE_BF16), *y2 = download(dy2, ny, PGD_DTYPE_BF16);
    check_output(&p, y, t.own ? "tuned linear (wgmma)" : "tuned linear (cuBLASLt)");
    cr_assert_arr_eq(y, y2, ny * sizeof *y, "the tuned plan run twice differs");
    free(y); free(y2);

    setenv("PGD_CUDA_GEMM_WGMMA_CANDIDATES", "all", 1);
    struct pgd_cuda_ctx *full = NULL;
    cr_assert_eq(pgd_cuda_ctx_create(&full, err, sizeof err), 0, "%s", err);
    pgd_cuda_gemm_tune_set(full, 1);
    void *dy3 = poisoned(ny, PGD_DTYPE_BF16);
    CHECK_RC(pgd_cuda_linear_lt(full, p.dt, p.dx, p.dw, p.db, n, in, out, p.ydt, dy3, err,
                                sizeof err));
    /* full has its own (non-blocking) stream and download waits for ctx's only: without this
     * the copy can read y3 before the call's last kernel (the bias) ran, i.e. the tuning's
     * last timed run of our kernel (no bias) or cuBLASLt's product without its bias. */
    CHECK_RC(pgd_cuda_sync(full, err, sizeof err));
    unsetenv("PGD_CUDA_GEMM_WGMMA_CANDIDATES");
    struct pgd_cuda_gemm_tune_info all;
    cr_assert_eq(pgd_cuda_gemm_tune_count(full), 1, "one tuning");
    cr_assert_eq(pgd_cuda_gemm_tune_get(full, 0, &all), 0);
    cr_assert(all.own_timed > t.own_timed && all.own_timed <= 24 && all.own_us > 0,
              "every wgmma configuration: %d timed (start-up: %d)", all.own_timed, t.own_timed);
    float *y3 = download(dy3, ny, PGD_DTYPE_BF16);
    check_output(&p, y3, all.own ? "tuned linear, all timed (wgmma)"
                                 : "tuned linear, all timed (cuBLASLt)");
    free(y3);
    pgd_cuda_free(dy3);
    pgd_cuda_ctx_destroy(full);

    free(w);
    problem_free(&p);
    pgd_cuda_free(dy); pgd_cuda_free(dy2); pgd_cuda_free(dw);
    pgd_cuda_ctx_destroy(ref);
}

#endif
