/* Every CUDA kernel against its CPU twin (kernels/cpu) on random inputs, in bf16 and fp16.
 * The CPU reference runs in float32 on the same inputs rounded to the 16-bit dtype, so the
 * differences are the GPU's output rounding and summation order. Tolerances, per element:
 *   |gpu - cpu| <= rtol * |cpu| + atol * scale
 * with rtol = 2^-7 for bf16 (a rounding of 8 mantissa bits, with a factor 2 for a second
 * rounding inside fused kernels) and 2^-10 for fp16; `scale` is the largest |cpu| of the
 * output and atol 1/256 (bf16) or 1/2048 (fp16), for float32 sums in another order.
 * Outputs are poisoned with NaN before each run, so an unwritten element fails.
 *
 * Without a GPU (or in a build without the CUDA backend) every test skips, saying so;
 * `make check-gpu` runs this program and fails when it skips. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#define GPU_SUITE cuda_kernels
#include "tests/lib/gpu_kernel_test.h"

#ifdef PGD_HAVE_CUDA

static double rtol_of(enum pgd_dtype dt) { return dt == PGD_DTYPE_BF16 ? 1.0 / 128 : 1.0 / 1024; }
static double atol_of(enum pgd_dtype dt) { return dt == PGD_DTYPE_BF16 ? 1.0 / 256 : 1.0 / 2048; }

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         enum pgd_dtype dt)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    double rt = rtol_of(dt), at = atol_of(dt) * (scale > 0 ? scale : 1);
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs((double)got[i] - want[i]) <= rt * fabs(want[i]) + at,
                  "%s (%s): element %zu is %.6g, the CPU gives %.6g (scale %.3g)", what,
                  pgd_dtype_name(dt), i, got[i], want[i], scale);
}

static const enum pgd_dtype DTS[2] = { PGD_DTYPE_BF16, PGD_DTYPE_F16 };
#define CHECK_RC(rc) cr_assert_eq((rc), 0, "%s", err)

/* ---- gathers ------------------------------------------------------------------------------ */
GPU_TEST(gather_rows_is_exact)
{
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        int vocab = 300, d = 72, n = 9;                 /* d * 2 bytes: 16-byte rows */
        int32_t ids[9] = { 5, 299, 0, 5, 17, 123, 250, 1, 88 };
        for (int odd = 0; odd < 2; odd++) {
            int dd = odd ? 37 : d;                      /* 37: the unvectorized path */
            float *table = rand_vals((size_t)vocab * dd, 1, dt);
            void *dtab = upload(table, (size_t)vocab * dd, dt), *dout = poisoned((size_t)n * dd, dt);
            int32_t *dids = upload_raw(ids, sizeof ids);
            char err[512] = "";
            CHECK_RC(pgd_cuda_gather_rows(ctx, dt, dtab, dids, n, dd, dout, err, sizeof err));
            float *got = download(dout, (size_t)n * dd, dt), want[9 * 72];
            pgd_cpu_embed(table, ids, n, dd, want);
            cr_assert_arr_eq(got, want, (size_t)n * dd * sizeof(float), "%s d=%d",
                             pgd_dtype_name(dt), dd);
            free(table); free(got);
            pgd_cuda_free(dtab); pgd_cuda_free(dout); pgd_cuda_free(dids);
        }
    }
}

/* Async steps' pending tokens: each listed batch row takes the id the step before sampled at
 * its row, read with the argmax ids' stride (1) and the sampling results' (44 int32s). */
GPU_TEST(put_pending_puts_the_step_befores_ids)
{
    enum { N = 300, PREV = 200, STRIDE_MAX = 44 };
    for (int stride = 1; stride <= STRIDE_MAX; stride += STRIDE_MAX - 1) {
        static int32_t tokens[N], want[N], src[PREV * STRIDE_MAX], pairs[2 * N], got[N];
        uint32_t rs = 7;
        for (int i = 0; i < N; i++)
            tokens[i] = want[i] = i % 3 ? 100 + i : 0;
        for (int i = 0; i < PREV * stride; i++)
            src[i] = -1 - i;                /* what a wrong stride would read */
        for (int j = 0; j < PREV; j++)
            src[j * stride] = 1000 + j;
        int n = 0;
        for (int i = 0; i < N; i += 1 + (int)((rs = rs * 1103515245u + 12345u) >> 28) % 3) {
            pairs[2 * n] = i;
            pairs[2 * n + 1] = (int)(rs >> 8) % PREV;
            want[i] = 1000 + pairs[2 * n + 1];
            n++;
        }
        int32_t *dtok = upload_raw(tokens, sizeof tokens), *dsrc = upload_raw(src, sizeof src);
        int32_t *dpairs = upload_raw(pairs, 2 * (size_t)n * sizeof *pairs);
        char err[512] = "";
        CHECK_RC(pgd_cuda_put_pending(ctx, dtok, dpairs, n, dsrc, stride, err, sizeof err));
        CHECK_RC(pgd_cuda_sync(ctx, err, sizeof err));    /* the copy does not queue behind it */
        CHECK_RC(pgd_cuda_memcpy_d2h(got, dtok, sizeof got, err, sizeof err));
        for (int i = 0; i < N; i++)
            cr_assert_eq(got[i], want[i], "stride %d row %d: %d, want %d", stride, i, got[i],
                         want[i]);
        cr_assert_gt(n, N / 4);
        pgd_cuda_free(dtok); pgd_cuda_free(dsrc); pgd_cuda_free(dpairs);
    }
}

/* ---- norms ----------------------------------------------------------------------------------- */
static void check_norms(enum pgd_dtype dt, int rows, int d)
{
    char err[512] = "";
    size_t n = (size_t)rows * d;
    float *x = rand_vals(n, 2, dt), *delta = rand_vals(n, 1, dt), *w = rand_vals((size_t)d, 1, dt);
    void *dx = upload(x, n, dt), *dd = upload(delta, n, dt), *dw = upload(w, (size_t)d, dt);
    void *dout = poisoned(n, dt);
    float *want = malloc(n * sizeof *want);

    CHECK_RC(pgd_cuda_rmsnorm(ctx, dt, dx, dw, 1e-5f, rows, d, dout, err, sizeof err));
    float *got = download(dout, n, dt);
    pgd_cpu_rmsnorm(x, w, 1e-5f, rows, d, want);
    expect_close("rmsnorm", got, want, n, dt);
    free(got);

    /* In place (out aliases x), as the per-head q/k norms run. */
    void *dx2 = upload(x, n, dt);
    CHECK_RC(pgd_cuda_rmsnorm(ctx, dt, dx2, dw, 1e-5f, rows, d, dx2, err, sizeof err));
    got = download(dx2, n, dt);
    expect_close("rmsnorm in place", got, want, n, dt);
    free(got);

    /* Fused: residual (x) += delta, rounded to dt; out = rmsnorm(residual) * w. */
    CHECK_RC(pgd_cuda_add_rmsnorm(ctx, dt, dx, dd, dw, 1e-5f, rows, d, dout, err, sizeof err));
    float *res = malloc(n * sizeof *res);
    for (size_t i = 0; i < n; i++)
        res[i] = round_to(x[i] + delta[i], dt);
    float *got_res = download(dx, n, dt);
    cr_assert_arr_eq(got_res, res, n * sizeof(float), "add_rmsnorm residual (%s)",
                     pgd_dtype_name(dt));
    got = download(dout, n, dt);
    pgd_cpu_rmsnorm(res, w, 1e-5f, rows, d, want);
    expect_close("add_rmsnorm", got, want, n, dt);
    free(got);
    free(got_res);

    /* add */
    void *da = upload(x, n, dt);
    CHECK_RC(pgd_cuda_add(ctx, dt, da, dd, (int64_t)n, err, sizeof err));
    got = download(da, n, dt);
    cr_assert_arr_eq(got, res, n * sizeof(float), "add (%s)", pgd_dtype_name(dt));
    free(got);

    free(x); free(delta); free(w); free(want); free(res);
    pgd_cuda_free(dx); pgd_cuda_free(dd); pgd_cuda_free(dw); pgd_cuda_free(dout);
    pgd_cuda_free(dx2); pgd_cuda_free(da);
}

GPU_TEST(rmsnorm_fused_add_and_add)
{
    for (int di = 0; di < 2; di++) {
        check_norms(DTS[di], 7, 64);        /* a warp a row */
        check_norms(DTS[di], 3, 4096);      /* a block a row, 2 vectors a thread */
        check_norms(DTS[di], 50, 16);       /* per-head norms of small heads */
        check_norms(DTS[di], 2, 1000);      /* 125 vectors: most threads one, some none */
        check_norms(DTS[di], 2, 5120);      /* 640 vectors: up to 4 a thread */
        check_norms(DTS[di], 1, 16384);     /* 8 vectors a thread */
        check_norms(DTS[di], 3, 1003);      /* not whole vectors: element by element */
        check_norms(DTS[di], 2, 24576);     /* too wide for registers: element by element */
    }
}

/* ---- linear ---------------------------------------------------------------------------------- */
enum { PATH_AUTO, PATH_GEMV, PATH_LT, PATH_GEMV_WARP, PATH_GEMV_SPLIT };

/* PATH_GEMV_WARP / PATH_GEMV_SPLIT: that GEMV variant with ks warps a feature (split only;
 * 0: picked from the shape). */
static void check_linear_ks(enum pgd_dtype dt, int path, int ks, int n, int in, int out,
                            bool bias, enum pgd_dtype ydt)
{
    char err[512] = "";
    float *x = rand_vals((size_t)n * in, 1, dt), *w = rand_vals((size_t)out * in, 1, dt);
    float *b = bias ? rand_vals((size_t)out, 1, dt) : NULL;
    void *dx = upload(x, (size_t)n * in, dt), *dw = upload(w, (size_t)out * in, dt);
    void *db = bias ? upload(b, (size_t)out, dt) : NULL, *dy = poisoned((size_t)n * out, ydt);
    int var = path == PATH_GEMV_WARP ? PGD_CUDA_GEMV_WARP : PGD_CUDA_GEMV_SPLIT;
    int rc = path >= PATH_GEMV_WARP ? pgd_cuda_linear_gemv_variant(ctx, var, ks, dt, dx, dw, db, n, in, out, ydt, dy, err, sizeof err)
           : path == PATH_GEMV ? pgd_cuda_linear_gemv(ctx, dt, dx, dw, db, n, in, out, ydt, dy, err, sizeof err)
           : path == PATH_LT   ? pgd_cuda_linear_lt(ctx, dt, dx, dw, db, n, in, out, ydt, dy, err, sizeof err)
                               : pgd_cuda_linear(ctx, dt, dx, dw, db, n, in, out, ydt, dy, err, sizeof err);
    CHECK_RC(rc);
    float *got = download(dy, (size_t)n * out, ydt), *want = malloc((size_t)n * out * sizeof *want);
    pgd_cpu_linear(x, w, b, n, in, out, want);
    char what[128];
    snprintf(what, sizeof what, "linear path %d ks %d [%d x %d] -> %d%s, out %s", path, ks, n,
             in, out, bias ? " + bias" : "", pgd_dtype_name(ydt));
    /* float32 output: only the summation order differs. */
    expect_close(what, got, want, (size_t)n * out, ydt == PGD_DTYPE_F32 ? PGD_DTYPE_F16 : dt);
    free(x); free(w); free(b); free(got); free(want);
    pgd_cuda_free(dx); pgd_cuda_free(dw); pgd_cuda_free(db); pgd_cuda_free(dy);
}

static void check_linear(enum pgd_dtype dt, int path, int n, int in, int out, bool bias,
                         enum pgd_dtype ydt)
{
    check_linear_ks(dt, path, 0, n, in, out, bias, ydt);
}

/* Both GEMV variants against the CPU twin, the split one at every ks: rows of several
 * 512-byte chunks and of a ragged last one, fewer chunks than warps (in = 264: some warps of
 * a feature read nothing), an out that leaves a block's last features empty, bias, float32
 * logits, n past the split kernel's 4 (it falls back to the warp kernel), an unaligned
 * width (likewise). */
GPU_TEST(linear_gemv_variants)
{
    static const int KS[] = { 0, 1, 2, 4, 8 };
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        for (int n = 1; n <= 4; n++)
            check_linear_ks(dt, PATH_GEMV_WARP, 0, n, 2048, 37, n == 2, dt);
        for (int k = 0; k < 5; k++) {
            for (int n = 1; n <= 4; n++)
                check_linear_ks(dt, PATH_GEMV_SPLIT, KS[k], n, 4096, 37, n % 2, dt);
            check_linear_ks(dt, PATH_GEMV_SPLIT, KS[k], 2, 1000, 67, true, dt);
            check_linear_ks(dt, PATH_GEMV_SPLIT, KS[k], 3, 264, 9, false, PGD_DTYPE_F32);
            check_linear_ks(dt, PATH_GEMV_SPLIT, KS[k], 1, 14336, 20, true, PGD_DTYPE_F32);
            check_linear_ks(dt, PATH_GEMV_SPLIT, KS[k], 6, 512, 40, true, dt);
            check_linear_ks(dt, PATH_GEMV_SPLIT, KS[k], 2, 100, 33, true, dt);
        }
        check_linear_ks(dt, PATH_GEMV_SPLIT, 0, 1, 4096, 1024, false, dt);   /* a k/v projection */
    }
}

/* q, k, v from one x: pgd_cuda_linear_multi against the CPU twin of each layer (one launch
 * at n <= 4, per layer above; count 1..3; a width that is no multiple of 8). side: the
 * layers' weights (and biases) one after the other in one allocation, as
 * pgd_model_load_linears loads q, k and v, and the scratch the call asks for: where the
 * scratch query says so, one GEMM and one split of its columns. fused: what the query must
 * say. */
static void check_linear_multi_as(enum pgd_dtype dt, int count, int n, int in, const int *out,
                                  bool bias, bool side, bool fused)
{
    char err[512] = "";
    const size_t esz = pgd_dtype_size(dt);
    float *x = rand_vals((size_t)n * in, 1, dt), *w[3], *b[3] = { NULL, NULL, NULL };
    void *dx = upload(x, (size_t)n * in, dt), *dy[3];
    const void *dw[3], *db[3] = { NULL, NULL, NULL };
    size_t rows = 0;
    for (int s = 0; s < count; s++)
        rows += (size_t)out[s];
    char *wall = side ? pgd_cuda_malloc(rows * in * esz) : NULL;
    char *ball = side && bias ? pgd_cuda_malloc(rows * esz) : NULL;
    size_t row = 0;
    for (int s = 0; s < count; s++) {
        w[s] = rand_vals((size_t)out[s] * in, 1, dt);
        if (side) {
            dw[s] = wall + row * in * esz;
            upload_into((void *)dw[s], w[s], (size_t)out[s] * in, dt);
        } else {
            dw[s] = upload(w[s], (size_t)out[s] * in, dt);
        }
        if (bias && (side || s != 1)) {   /* apart: k without bias, as in Qwen2 */
            b[s] = rand_vals((size_t)out[s], 1, dt);
            if (side) {
                db[s] = ball + row * esz;
                upload_into((void *)db[s], b[s], (size_t)out[s], dt);
            } else {
                db[s] = upload(b[s], (size_t)out[s], dt);
            }
        }
        dy[s] = poisoned((size_t)n * out[s], dt);
        row += (size_t)out[s];
    }
    size_t sb = pgd_cuda_linear_multi_scratch(ctx, dt, n, in, count, dw, db, out);
    cr_expect_eq(sb != 0, fused, "linear_multi [%d x %d], %d layers%s: scratch %zu bytes, "
                 "expected %s", n, in, count, side ? " side by side" : "", sb,
                 fused ? "some" : "none");
    void *scratch = sb ? poisoned(sb / esz, dt) : NULL;
    CHECK_RC(pgd_cuda_linear_multi(ctx, dt, dx, n, in, count, dw, db, out, dy, scratch, err,
                                   sizeof err));
    for (int s = 0; s < count; s++) {
        float *got = download(dy[s], (size_t)n * out[s], dt);
        float *want = malloc((size_t)n * out[s] * sizeof *want);
        pgd_cpu_linear(x, w[s], b[s], n, in, out[s], want);
        char what[160];
        snprintf(what, sizeof what, "linear_multi %d of %d, [%d x %d] -> %d%s%s", s, count, n,
                 in, out[s], b[s] ? " + bias" : "", sb ? ", one GEMM" : "");
        expect_close(what, got, want, (size_t)n * out[s], dt);
        free(got); free(want); free(w[s]); free(b[s]);
        if (!side) {
            pgd_cuda_free((void *)dw[s]);
            pgd_cuda_free((void *)db[s]);
        }
        pgd_cuda_free(dy[s]);
    }
    free(x);
    pgd_cuda_free(dx); pgd_cuda_free(wall); pgd_cuda_free(ball); pgd_cuda_free(scratch);
}

static void check_linear_multi(enum pgd_dtype dt, int count, int n, int in, const int *out,
                               bool bias)
{
    check_linear_multi_as(dt, count, n, in, out, bias, false, false);
}

GPU_TEST(linear_multi_qkv)
{
    static const int QKV[3] = { 256, 64, 64 }, ODD[3] = { 37, 9, 70 };
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        for (int n = 1; n <= 5; n++)
            check_linear_multi(dt, 3, n, 1024, QKV, n % 2);
        check_linear_multi(dt, 3, 2, 100, ODD, true);
        check_linear_multi(dt, 2, 3, 512, ODD, false);
        check_linear_multi(dt, 1, 1, 4096, ODD, true);
        check_linear_multi(dt, 3, 9, 256, QKV, true);
    }
}

/* Side by side (pgd_model_load_linears' layout): one GEMM and the split at the sizes between
 * the GEMV's and PGD_CUDA_QKV_FUSE_MAX_N (set here to 16,384), widths of 8 (16-byte copies)
 * and odd ones (element copies), with and without biases, 2 and 3 layers; none at GEMV
 * sizes (one launch of the multi GEMV there), above the bound, for one layer, or with the
 * bound at 0. */
GPU_TEST(linear_multi_side_by_side_is_one_gemm)
{
    static const int QKV[3] = { 256, 64, 64 }, ODD[3] = { 37, 9, 70 };
    setenv("PGD_CUDA_QKV_FUSE_MAX_N", "16384", 1);
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        for (int n = 5; n <= 9; n += 4)
            check_linear_multi_as(dt, 3, n, 1024, QKV, n % 2, true, true);
        check_linear_multi_as(dt, 3, 64, 512, QKV, true, true, true);
        check_linear_multi_as(dt, 3, 130, 256, ODD, true, true, true);
        check_linear_multi_as(dt, 2, 17, 512, ODD, false, true, true);
        check_linear_multi_as(dt, 3, 512, 256, QKV, false, true, true);
        check_linear_multi_as(dt, 3, 3, 1024, QKV, true, true, false);
        check_linear_multi_as(dt, 3, 16384, 32, ODD, true, true, true);
        check_linear_multi_as(dt, 3, 16385, 32, ODD, true, true, false);
        check_linear_multi_as(dt, 1, 64, 512, QKV, true, true, false);
        check_linear_multi_as(dt, 3, 64, 512, QKV, true, false, false);
        setenv("PGD_CUDA_QKV_FUSE_MAX_N", "0", 1);
        check_linear_multi_as(dt, 3, 64, 512, QKV, true, true, false);
        setenv("PGD_CUDA_QKV_FUSE_MAX_N", "16384", 1);
    }
    unsetenv("PGD_CUDA_QKV_FUSE_MAX_N");
}

GPU_TEST(linear_gemv_and_cublaslt)
{
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        for (int n = 1; n <= 8; n++)
            check_linear(dt, PATH_GEMV, n, 512, 72, n % 2, dt);
        check_linear(dt, PATH_GEMV, 3, 100, 33, true, dt);           /* unvectorized rows */
        check_linear(dt, PATH_GEMV, 2, 1024, 50, false, PGD_DTYPE_F32);
        check_linear(dt, PATH_LT, 1, 256, 64, false, dt);
        check_linear(dt, PATH_LT, 37, 512, 200, true, dt);
        check_linear(dt, PATH_LT, 130, 1024, 96, false, PGD_DTYPE_F32);
        check_linear(dt, PATH_AUTO, 64, 4096, 256, false, dt);
        check_linear(dt, PATH_AUTO, 5, 4096, 1000, true, PGD_DTYPE_F32);
    }
}

/* Tuned cuBLASLt plans (gemm_tune.cu) against the heuristic's first on a second context with
 * tuning off, and both against the CPU twin: the same function within the bf16/fp16
 * tolerance. The tuning is recorded for the n bucket (the power of two >= n) with the
 * heuristic's first among the timed and a winner no slower than it; another n (<= n) of the
 * same bucket reuses it without timing again; a tuned plan run twice gives the same bits. */
static void check_tuned_linear(struct pgd_cuda_ctx *untuned, enum pgd_dtype dt, int n, int n2,
                               int in, int out, bool bias, enum pgd_dtype ydt)
{
    char err[512] = "";
    float *x = rand_vals((size_t)n * in, 1, dt), *w = rand_vals((size_t)out * in, 1, dt);
    float *b = bias ? rand_vals((size_t)out, 1, dt) : NULL;
    void *dx = upload(x, (size_t)n * in, dt), *dw = upload(w, (size_t)out * in, dt);
    void *db = bias ? upload(b, (size_t)out, dt) : NULL;
    size_t ny = (size_t)n * out;
    void *dy_tuned = poisoned(ny, ydt), *dy_again = poisoned(ny, ydt), *dy_plain = poisoned(ny, ydt);
    int before = pgd_cuda_gemm_tune_count(ctx);
    CHECK_RC(pgd_cuda_linear_lt(ctx, dt, dx, dw, db, n, in, out, ydt, dy_tuned, err, sizeof err));
    CHECK_RC(pgd_cuda_linear_lt(ctx, dt, dx, dw, db, n, in, out, ydt, dy_again, err, sizeof err));
    CHECK_RC(pgd_cuda_linear_lt(untuned, dt, dx, dw, db, n, in, out, ydt, dy_plain, err, sizeof err));
    CHECK_RC(pgd_cuda_sync(untuned, err, sizeof err));
    cr_assert_eq(pgd_cuda_gemm_tune_count(ctx), before + 1, "[%d x %d] -> %d: one tuning", n, in, out);
    cr_assert_eq(pgd_cuda_gemm_tune_count(untuned), 0, "tuning off: nothing timed");
    struct pgd_cuda_gemm_tune_info t;
    cr_assert_eq(pgd_cuda_gemm_tune_get(ctx, before, &t), 0);
    int bucket = 1;
    while (bucket < n)
        bucket *= 2;
    cr_assert(t.dt == dt && t.ydt == ydt && t.in == in && t.out == out && t.n == n &&
              t.bucket == bucket, "recorded [%d x %d] -> %d bucket %d, want [%d x %d] -> %d "
              "bucket %d", t.n, t.in, t.out, t.bucket, n, in, out, bucket);
    cr_assert(t.timed >= 1 && t.timed <= t.candidates && t.chosen >= 0 && t.chosen < t.candidates,
              "%d timed of %d candidates, chose %d", t.timed, t.candidates, t.chosen);
    cr_assert(t.first_us > 0 && t.best_us > 0 && t.best_us <= t.first_us && t.tune_ms > 0,
              "first %.2f us, best %.2f us, %.2f ms tuning", t.first_us, t.best_us, t.tune_ms);

    float *tuned = download(dy_tuned, ny, ydt), *again = download(dy_again, ny, ydt);
    float *plain = download(dy_plain, ny, ydt), *want = malloc(ny * sizeof *want);
    pgd_cpu_linear(x, w, b, n, in, out, want);
    char what[160];
    enum pgd_dtype tol = ydt == PGD_DTYPE_F32 ? PGD_DTYPE_F16 : dt;
    snprintf(what, sizeof what, "tuned [%d x %d] -> %d%s (candidate %d of %d)", n, in, out,
             bias ? " + bias" : "", t.chosen, t.candidates);
    expect_close(what, tuned, want, ny, tol);
    snprintf(what, sizeof what, "heuristic's first [%d x %d] -> %d", n, in, out);
    expect_close(what, plain, want, ny, tol);
    snprintf(what, sizeof what, "tuned against the heuristic's first [%d x %d] -> %d", n, in, out);
    expect_close(what, tuned, plain, ny, tol);
    cr_assert_arr_eq(tuned, again, ny * sizeof *tuned, "a tuned plan run twice differs");

    /* The first n2 rows, in the same bucket: their plan takes the bucket's algorithm, and
     * nothing is timed again. */
    void *dy2 = poisoned((size_t)n2 * out, ydt);
    CHECK_RC(pgd_cuda_linear_lt(ctx, dt, dx, dw, db, n2, in, out, ydt, dy2, err, sizeof err));
    cr_assert_eq(pgd_cuda_gemm_tune_count(ctx), before + 1, "n %d reuses bucket %d's tuning",
                 n2, bucket);
    float *got2 = download(dy2, (size_t)n2 * out, ydt);
    snprintf(what, sizeof what, "tuned bucket %d at n %d", bucket, n2);
    expect_close(what, got2, want, (size_t)n2 * out, tol);
    free(x); free(w); free(b); free(tuned); free(again); free(plain); free(want); free(got2);
    pgd_cuda_free(dx); pgd_cuda_free(dw); pgd_cuda_free(db); pgd_cuda_free(dy_tuned);
    pgd_cuda_free(dy_again); pgd_cuda_free(dy_plain); pgd_cuda_free(dy2);
}

GPU_TEST(tuned_gemm_plans_agree_with_the_heuristics_first)
{
    char err[512] = "";
    struct pgd_cuda_ctx *untuned = NULL;
    cr_assert_eq(pgd_cuda_ctx_create(&untuned, err, sizeof err), 0, "%s", err);
    pgd_cuda_gemm_tune_set(ctx, 1);
    pgd_cuda_gemm_tune_set(untuned, 0);
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        check_tuned_linear(untuned, dt, 256, 200, 1024, 3072, false, dt);   /* a decode bucket */
        check_tuned_linear(untuned, dt, 96, 65, 2048, 512, true, dt);       /* split-K territory */
        check_tuned_linear(untuned, dt, 300, 257, 512, 1000, false, PGD_DTYPE_F32);   /* logits */
        check_tuned_linear(untuned, dt, 30, 17, 14336, 256, false, dt);     /* a down proj's K */
    }
    pgd_cuda_ctx_destroy(untuned);
}

/* ---- rope ------------------------------------------------------------------------------------ */
static void check_rope(enum pgd_dtype dt, int head_dim, int rotary_dim, bool llama3)
{
    char err[512] = "";
    struct pgd_rope_config cfg = { .head_dim = head_dim, .rotary_dim = rotary_dim,
                                   .theta = 500000.0 };
    if (llama3) {
        cfg.scaling = PGD_ROPE_LLAMA3;
        cfg.factor = 8;
        cfg.low_freq_factor = 1;
        cfg.high_freq_factor = 4;
        cfg.original_max_position = 8192;
    }
    struct pgd_rope rope;
    cr_assert_eq(pgd_rope_init(&rope, &cfg, err, sizeof err), PGD_OK, "%s", err);
    int n = 11, nq = 8, nk = 2;
    int32_t pos[11];
    for (int i = 0; i < n; i++)
        pos[i] = (int32_t)((i * 977 + 3) % 8000);
    size_t qn = (size_t)n * nq * head_dim, kn = (size_t)n * nk * head_dim;
    float *q = rand_vals(qn, 1, dt), *k = rand_vals(kn, 1, dt);
    void *dq = upload(q, qn, dt), *dk = upload(k, kn, dt);
    int32_t *dpos = upload_raw(pos, sizeof pos);
    CHECK_RC(pgd_cuda_rope(ctx, dt, dq, nq, dk, nk, n, head_dim, rotary_dim, rope.inv_freq, dpos,
                           err, sizeof err));
    pgd_cpu_rope(q, nq, k, nk, n, head_dim, rotary_dim, rope.inv_freq, pos);
    float *gq = download(dq, qn, dt), *gk = download(dk, kn, dt);
    expect_close("rope q", gq, q, qn, dt);
    expect_close("rope k", gk, k, kn, dt);
    free(q); free(k); free(gq); free(gk);
    pgd_cuda_free(dq); pgd_cuda_free(dk); pgd_cuda_free(dpos);
    pgd_rope_fini(&rope);
}

GPU_TEST(rope_matches_cpu)
{
    for (int di = 0; di < 2; di++) {
        check_rope(DTS[di], 128, 128, true);
        check_rope(DTS[di], 64, 64, false);
        check_rope(DTS[di], 16, 16, false);
        check_rope(DTS[di], 80, 40, false);      /* partial rotary */
    }
}

/* An e4m3 cache written by rope_kv_write against the CPU's bytes: V (copied values) byte
 * for byte; K (rotated in float32 by both, then rounded to dt: the two roundings may differ
 * by one dt step, and that may move the e4m3 code by one) within one e4m3 step (2^-3
 * relative, 2^-9 * scale below the normal range), and equal for all but a few elements. */
static void expect_fp8_cache(const char *what, const uint8_t *got, const uint8_t *want,
                             size_t n, float scale, bool exact)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] == want[i])
            continue;
        off++;
        float g = pgd_fp8_e4m3_to_float(got[i]) * scale, w = pgd_fp8_e4m3_to_float(want[i]) * scale;
        cr_assert(!exact && fabsf(g - w) <= fmaxf(fabsf(w) / 8, scale / 512),
                  "%s: byte %zu is 0x%02x (%g), the CPU's 0x%02x (%g)", what, i, got[i], g,
                  want[i], w);
    }
    cr_assert_leq(off, n / 100, "%s: %zu of %zu codes differ from the CPU's", what, off, n);
}

/* rope fused with the K/V write (and Qwen3's per-head q/k norms) against the CPU's rmsnorm
 * (rounded to dt, as the GPU's separate norm kernel writes it), rope and kv_write; with fp8
 * the caches are e4m3 (scales k 0.02, v 0.01). rows: q, k and v side by side in rows of a
 * wider matrix (pgd_cuda_rope_kv_write_rows, as linear_multi's one GEMM leaves them; 8
 * spare columns a row), q rotated into a tensor of its own, the matrix left as it was. */
static void check_rope_kv_write_as(enum pgd_dtype dt, int D, int rot, bool norms, bool fp8,
                                   bool rows)
{
    char err[512] = "";
    struct pgd_rope_config cfg = { .head_dim = D, .rotary_dim = rot, .theta = 1000000.0 };
    struct pgd_rope rope;
    cr_assert_eq(pgd_rope_init(&rope, &cfg, err, sizeof err), PGD_OK, "%s", err);
    int n = 7, nq = 8, nkv = 2, num_slots = 40;
    size_t width = (size_t)nkv * D, qn = (size_t)n * nq * D, kn = (size_t)n * width;
    int32_t pos[7];
    int64_t slot[7];
    for (int i = 0; i < n; i++) {
        pos[i] = (int32_t)((i * 1733 + 11) % 9000);
        slot[i] = i == 3 ? -1 : (int64_t)((i * 13 + 5) % num_slots);   /* row 3: padding */
    }
    float *q = rand_vals(qn, 2, dt), *k = rand_vals(kn, 2, dt), *v = rand_vals(kn, 2, dt);
    float *kc = rand_vals((size_t)num_slots * width, 1, dt);
    float *vc = rand_vals((size_t)num_slots * width, 1, dt);
    float *qw = rand_vals((size_t)D, 1.5f, dt), *kw = rand_vals((size_t)D, 1.5f, dt);
    void *dq = upload(q, qn, dt), *dk = upload(k, kn, dt), *dv = upload(v, kn, dt);
    size_t cells = (size_t)num_slots * width;
    const struct pgd_cuda_kv_fp8 sc = { 0.02f, 0.01f };
    uint8_t *k8 = malloc(cells + 4), *v8 = malloc(cells + 4);
    for (size_t i = 0; i < cells; i++) {
        k8[i] = pgd_fp8_e4m3_from_float(kc[i] / sc.k_scale);
        v8[i] = pgd_fp8_e4m3_from_float(vc[i] / sc.v_scale);
    }
    void *dkc = fp8 ? upload_raw(k8, cells) : upload(kc, cells, dt);
    void *dvc = fp8 ? upload_raw(v8, cells) : upload(vc, cells, dt);
    void *dqw = upload(qw, (size_t)D, dt), *dkw = upload(kw, (size_t)D, dt);
    int32_t *dpos = upload_raw(pos, sizeof pos);
    int64_t *dslot = upload_raw(slot, sizeof slot);
    float *k_orig = malloc(kn * sizeof *k_orig);
    memcpy(k_orig, k, kn * sizeof *k_orig);
    const size_t qcols = (size_t)nq * D, ld = qcols + 2 * width + 8;
    float *qkv = rows ? calloc((size_t)n * ld, sizeof *qkv) : NULL;
    void *dqkv = NULL;
    if (rows) {
        for (int t = 0; t < n; t++) {
            memcpy(qkv + t * ld, q + t * qcols, qcols * sizeof *qkv);
            memcpy(qkv + t * ld + qcols, k + t * width, width * sizeof *qkv);
            memcpy(qkv + t * ld + qcols + width, v + t * width, width * sizeof *qkv);
        }
        dqkv = upload(qkv, (size_t)n * ld, dt);
        pgd_cuda_free(dq);
        dq = poisoned(qn, dt);
        CHECK_RC(pgd_cuda_rope_kv_write_rows(ctx, dt, dq, dqkv, (int64_t)ld, nq, nkv, n, D, rot,
                                             rope.inv_freq, dpos, norms ? dqw : NULL,
                                             norms ? dkw : NULL, 1e-6f, dkc, dvc, dslot,
                                             fp8 ? &sc : NULL, err, sizeof err));
        float *gqkv = download(dqkv, (size_t)n * ld, dt);
        cr_assert_arr_eq(gqkv, qkv, (size_t)n * ld * sizeof(float),
                         "rope_kv_write_rows must leave q, k and v's rows as they were");
        free(gqkv);
    } else {
        CHECK_RC(pgd_cuda_rope_kv_write(ctx, dt, dq, nq, dk, dv, nkv, n, D, rot, rope.inv_freq,
                                        dpos, norms ? dqw : NULL, norms ? dkw : NULL, 1e-6f, dkc,
                                        dvc, dslot, fp8 ? &sc : NULL, err, sizeof err));
    }
    if (norms) {
        pgd_cpu_rmsnorm(q, qw, 1e-6f, (int64_t)n * nq, D, q);
        pgd_cpu_rmsnorm(k, kw, 1e-6f, (int64_t)n * nkv, D, k);
        for (size_t i = 0; i < qn; i++)
            q[i] = round_to(q[i], dt);
        for (size_t i = 0; i < kn; i++)
            k[i] = round_to(k[i], dt);
    }
    pgd_cpu_rope(q, nq, k, nkv, n, D, rot, rope.inv_freq, pos);
    for (size_t i = 0; i < kn; i++)
        k[i] = round_to(k[i], dt);
    struct pgd_cpu_kv_layer cl = { kc, vc, 1, nkv, D, NULL, NULL, 0, 0 };
    if (fp8)
        cl = (struct pgd_cpu_kv_layer){ NULL, NULL, 1, nkv, D, k8, v8, sc.k_scale, sc.v_scale };
    pgd_cpu_kv_write(&cl, k, v, slot, n);
    float *gq = download(dq, qn, dt), *gk = download(dk, kn, dt);
    char what[120];
    snprintf(what, sizeof what, "rope_kv_write q, D %d rotary %d%s", D, rot, norms ? " normed" : "");
    expect_close(what, gq, q, qn, dt);
    snprintf(what, sizeof what, "rope_kv_write K cache, D %d rotary %d%s%s", D, rot,
             norms ? " normed" : "", fp8 ? ", e4m3" : "");
    if (fp8) {
        uint8_t *g8 = malloc(cells + 4);
        CHECK_RC(pgd_cuda_memcpy_d2h(g8, dkc, cells, err, sizeof err));
        expect_fp8_cache(what, g8, k8, cells, sc.k_scale, false);
        CHECK_RC(pgd_cuda_memcpy_d2h(g8, dvc, cells, err, sizeof err));
        expect_fp8_cache("rope_kv_write V cache, e4m3", g8, v8, cells, sc.v_scale, true);
        free(g8);
    } else {
        float *gkc = download(dkc, cells, dt), *gvc = download(dvc, cells, dt);
        expect_close(what, gkc, kc, cells, dt);
        cr_assert_arr_eq(gvc, vc, cells * sizeof(float), "rope_kv_write V cache");
        free(gkc);
        free(gvc);
    }
    cr_assert_arr_eq(gk, k_orig, kn * sizeof(float), "rope_kv_write must leave k as it was");
    free(k_orig);
    free(q); free(k); free(v); free(kc); free(vc); free(qw); free(kw); free(k8); free(v8);
    free(gq); free(gk); free(qkv);
    void *ds[] = { dq, dk, dv, dkc, dvc, dqw, dkw, dpos, dslot, dqkv };
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        pgd_cuda_free(ds[i]);
    pgd_rope_fini(&rope);
}

static void check_rope_kv_write_cache(enum pgd_dtype dt, int D, int rot, bool norms, bool fp8)
{
    check_rope_kv_write_as(dt, D, rot, norms, fp8, false);
}

static void check_rope_kv_write(enum pgd_dtype dt, int D, int rot, bool norms)
{
    check_rope_kv_write_cache(dt, D, rot, norms, false);
}

GPU_TEST(rope_kv_write_rows_reads_q_k_and_v_side_by_side)
{
    for (int di = 0; di < 2; di++) {
        check_rope_kv_write_as(DTS[di], 128, 128, false, false, true);
        check_rope_kv_write_as(DTS[di], 128, 128, true, false, true);
        check_rope_kv_write_as(DTS[di], 96, 32, false, false, true);
        check_rope_kv_write_as(DTS[di], 128, 128, false, true, true);
    }
}

GPU_TEST(rope_kv_write_into_an_fp8_cache_matches_cpu)
{
    for (int di = 0; di < 2; di++) {
        check_rope_kv_write_cache(DTS[di], 128, 128, false, true);
        check_rope_kv_write_cache(DTS[di], 128, 128, true, true);
        check_rope_kv_write_cache(DTS[di], 96, 32, false, true);
        check_rope_kv_write_cache(DTS[di], 16, 16, true, true);
    }
}

GPU_TEST(rope_kv_write_matches_cpu)
{
    for (int di = 0; di < 2; di++) {
        check_rope_kv_write(DTS[di], 128, 128, false);   /* Llama */
        check_rope_kv_write(DTS[di], 128, 128, true);    /* Qwen3: q/k norms */
        check_rope_kv_write(DTS[di], 64, 64, true);
        check_rope_kv_write(DTS[di], 96, 32, false);     /* partial rotary */
        check_rope_kv_write(DTS[di], 16, 16, true);      /* the fixtures' head dim */
    }
}

GPU_TEST(rope_kv_write_with_late_inputs_matches_cpu)
{
    /* The other tests run the default: the position and slot read, and the angles made,
     * before the kernel's PDL wait. PGD_CUDA_ATTN_EARLY=0 reads them after it: the same
     * math. */
    setenv("PGD_CUDA_ATTN_EARLY", "0", 1);
    for (int di = 0; di < 2; di++) {
        check_rope_kv_write(DTS[di], 128, 128, false);
        check_rope_kv_write(DTS[di], 128, 128, true);
        check_rope_kv_write(DTS[di], 96, 32, false);
        check_rope_kv_write_cache(DTS[di], 128, 128, false, true);
        check_rope_kv_write_as(DTS[di], 128, 128, false, false, true);
    }
    unsetenv("PGD_CUDA_ATTN_EARLY");
}

/* ---- activations ---------------------------------------------------------------------------- */
/* inter 300: element by element; 512 and 14336 (Llama-3-8B's): 16-byte vectors. The same
 * input one element off 16-byte alignment (so element by element) gives the same bits. */
GPU_TEST(act_mul_silu_and_gelu)
{
    static const int N[3] = { 5, 7, 3 }, INTER[3] = { 300, 512, 14336 };
    for (int di = 0; di < 2; di++) {
        enum pgd_dtype dt = DTS[di];
        for (int a = 0; a < 2; a++)
            for (int c = 0; c < 3; c++) {
                char err[512] = "";
                enum pgd_act act = a ? PGD_ACT_GELU_TANH : PGD_ACT_SILU;
                int n = N[c], inter = INTER[c];
                size_t nin = (size_t)n * 2 * inter, nout = (size_t)n * inter;
                float *gu = rand_vals(nin, 4, dt);
                void *dgu = upload(gu, nin, dt), *dout = poisoned(nout, dt);
                CHECK_RC(pgd_cuda_act_mul(ctx, dt, act, dgu, n, inter, dout, err, sizeof err));
                float *got = download(dout, nout, dt), *want = malloc(nout * sizeof *want);
                pgd_cpu_act_mul(act, gu, n, inter, want);
                char what[64];
                snprintf(what, sizeof what, "%s [%d, 2 x %d]", a ? "gelu_tanh_mul" : "silu_mul",
                         n, inter);
                expect_close(what, got, want, nout, dt);
                /* one element past 16-byte alignment, in and out */
                size_t esz = pgd_dtype_size(dt);
                char *mgu = pgd_cuda_malloc((nin + 1) * esz), *mout = poisoned(nout + 1, dt);
                cr_assert_not_null(mgu);
                upload_into(mgu + esz, gu, nin, dt);
                CHECK_RC(pgd_cuda_act_mul(ctx, dt, act, mgu + esz, n, inter, mout + esz, err,
                                          sizeof err));
                float *off = download(mout, nout + 1, dt);
                cr_assert_arr_eq(off + 1, got, nout * sizeof *got, "%s: unaligned differs", what);
                free(gu); free(got); free(want); free(off);
                pgd_cuda_free(dgu); pgd_cuda_free(dout); pgd_cuda_free(mgu); pgd_cuda_free(mout);
            }
    }
}

/* ---- argmax ---------------------------------------------------------------------------------- */
/* Vocabularies that fill the 8 slices of the cluster kernel (sample_plain.cu), leave some
 * short (1000) or empty (12); ties within a slice and across slices (the lowest id wins); a
 * row of -inf (0, as the CPU's argmax). */
GPU_TEST(argmax_matches_cpu)
{
    char err[512] = "";
    static const int VOCABS[] = { 128256, 1000, 12 };
    for (int vi = 0; vi < 3; vi++) {
        int rows = 6, vocab = VOCABS[vi];
        float *lg = rand_vals((size_t)rows * vocab, 10, PGD_DTYPE_F32);
        lg[(size_t)2 * vocab + 7] = 50;           /* a tie in one slice */
        lg[(size_t)2 * vocab + 9] = 50;
        lg[(size_t)3 * vocab + vocab - 1] = 60;   /* a tie across slices */
        lg[(size_t)3 * vocab + 1] = 60;
        for (int v = 0; v < vocab; v++)
            lg[(size_t)4 * vocab + v] = -INFINITY;
        void *d = upload(lg, (size_t)rows * vocab, PGD_DTYPE_F32);
        int32_t *dout = pgd_cuda_malloc(rows * sizeof(int32_t)), got[6];
        CHECK_RC(pgd_cuda_argmax(ctx, d, rows, vocab, dout, err, sizeof err));
        CHECK_RC(pgd_cuda_sync(ctx, err, sizeof err));
        CHECK_RC(pgd_cuda_memcpy_d2h(got, dout, sizeof got, err, sizeof err));
        for (int r = 0; r < rows; r++) {
            int best = 0;
            for (int v = 1; v < vocab; v++)
                if (lg[(size_t)r * vocab + v] > lg[(size_t)r * vocab + best])
                    best = v;
            cr_assert_eq(got[r], best, "vocab %d, row %d: GPU %d, CPU %d", vocab, r, got[r],
                         best);
        }
        cr_assert_eq(got[2], 7, "vocab %d", vocab);
        cr_assert_eq(got[3], 1, "vocab %d", vocab);
        cr_assert_eq(got[4], 0, "vocab %d", vocab);
        free(lg);
        pgd_cuda_free(d);
        pgd_cuda_free(dout);
    }
}

/* ---- paged attention ------------------------------------------------------------------------ */
/* A batch: sequence s has n_new[s] new tokens after cached[s] cached ones. Blocks are
 * scattered over the pool. The CPU twin runs on the same (rounded) values. */
struct attn_case {
    int H, KV, D, bs, window, n_seqs;
    int cached[8], n_new[8];
    bool graph_items;                /* decode rows given as fixed items, as graphs do */
};

static void check_attention(enum pgd_dtype dt, const struct attn_case *c, uint64_t step_id)
{
    char err[512] = "";
    int H = c->H, KV = c->KV, D = c->D, bs = c->bs, S = c->n_seqs;
    int max_blocks = 1, n = 0, max_len = 0, total_blocks = 0;
    int32_t qs[9], lens[8];
    for (int s = 0; s < S; s++) {
        int len = c->cached[s] + c->n_new[s];
        lens[s] = len;
        qs[s] = n;
        n += c->n_new[s];
        int nb = (len + bs - 1) / bs;
        max_blocks = nb > max_blocks ? nb : max_blocks;
        total_blocks += nb;
        max_len = len > max_len ? len : max_len;
    }
    qs[S] = n;
    int num_blocks = total_blocks + 7;
    /* Scatter: a permutation of the pool. */
    int32_t *perm = malloc((size_t)num_blocks * sizeof *perm);
    for (int b = 0; b < num_blocks; b++)
        perm[b] = b;
    for (int b = num_blocks - 1; b > 0; b--) {
        int j = (int)((frand() + 1) * 0.5f * (b + 1)) % (b + 1);
        int32_t t = perm[b]; perm[b] = perm[j]; perm[j] = t;
    }
    int32_t *tables = calloc((size_t)S * max_blocks, sizeof *tables);
    int used = 0;
    for (int s = 0; s < S; s++)
        for (int b = 0; b < (lens[s] + bs - 1) / bs; b++)
            tables[s * max_blocks + b] = perm[used++];
    size_t width = (size_t)KV * D, slots = (size_t)num_blocks * bs;
    /* Cache contents (random everywhere, so that a wrong read is visible) and the step. */
    float *kc = rand_vals(slots * width, 1, dt), *vc = rand_vals(slots * width, 1, dt);
    float *q = rand_vals((size_t)n * H * D, 1, dt), *k = rand_vals((size_t)n * width, 1, dt);
    float *v = rand_vals((size_t)n * width, 1, dt);
    int64_t *slot = malloc((size_t)n * sizeof *slot);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    for (int s = 0, t = 0; s < S; s++)
        for (int i = 0; i < c->n_new[s]; i++, t++) {
            int p = c->cached[s] + i;
            pos[t] = p;
            slot[t] = (int64_t)tables[s * max_blocks + p / bs] * bs + p % bs;
        }
    void *dkc = upload(kc, slots * width, dt), *dvc = upload(vc, slots * width, dt);
    void *dq = upload(q, (size_t)n * H * D, dt), *dk = upload(k, (size_t)n * width, dt);
    void *dv = upload(v, (size_t)n * width, dt), *dout = poisoned((size_t)n * H * D, dt);
    int32_t *dqs = upload_raw(qs, (S + 1) * sizeof(int32_t)), *dlens = upload_raw(lens, S * sizeof(int32_t));
    int32_t *dtab = upload_raw(tables, (size_t)S * max_blocks * sizeof(int32_t));
    int32_t *dpos = upload_raw(pos, (size_t)n * sizeof(int32_t));
    int64_t *dslot = upload_raw(slot, (size_t)n * sizeof(int64_t));

    CHECK_RC(pgd_cuda_kv_write(ctx, dt, dkc, dvc, dk, dv, dslot, n, (int)width, NULL, err,
                               sizeof err));
    struct pgd_cuda_attn a = {
        .dtype = dt, .q = dq, .out = dout, .k_cache = dkc, .v_cache = dvc, .block_size = bs,
        .p = { .n_heads = H, .n_kv_heads = KV, .head_dim = D, .scale = (float)(1 / sqrt(D)),
               .sliding_window = c->window },
        .n_tokens = n, .n_seqs = S, .query_start = dqs, .seq_lens = dlens,
        .block_tables = dtab, .max_blocks = max_blocks, .positions = dpos,
        .h_query_start = qs, .max_seq_len = max_len, .step_id = step_id,
    };
    int32_t items[8 * 4];
    for (int s = 0; s < S; s++) {
        items[4 * s] = items[4 * s + 1] = s;
        items[4 * s + 2] = 1;
        items[4 * s + 3] = 0;
    }
    int32_t *ditems = c->graph_items ? upload_raw(items, (size_t)S * 4 * sizeof(int32_t)) : NULL;
    a.decode_items = ditems;
    size_t sb = pgd_cuda_attention_scratch(ctx, &a);
    void *scratch = sb ? pgd_cuda_malloc(sb) : NULL;
    CHECK_RC(pgd_cuda_attention(ctx, &a, scratch, err, sizeof err));

    struct pgd_cpu_kv_layer cl = { kc, vc, bs, KV, D, NULL, NULL, 0, 0 };
    pgd_cpu_kv_write(&cl, k, v, slot, n);
    float *gk = download(dkc, slots * width, dt), *gv = download(dvc, slots * width, dt);
    cr_assert_arr_eq(gk, kc, slots * width * sizeof(float), "kv_write K (%s)", pgd_dtype_name(dt));
    cr_assert_arr_eq(gv, vc, slots * width * sizeof(float), "kv_write V (%s)", pgd_dtype_name(dt));
    struct pgd_cpu_seq_layout L = { S, qs, lens, tables, max_blocks, pos };
    float *scores = malloc((size_t)(max_len + 1) * sizeof *scores);
    float *want = malloc((size_t)n * H * D * sizeof *want);
    pgd_cpu_attention(&cl, &L, &a.p, q, scores, want);
    float *got = download(dout, (size_t)n * H * D, dt);
    char what[200];
    snprintf(what, sizeof what, "attention H %d KV %d D %d window %d, %d seqs, max len %d, "
             "%zu bytes of split scratch", H, KV, D, c->window, S, max_len, sb);
    expect_close(what, got, want, (size_t)n * H * D, dt);
    free(perm); free(tables); free(kc); free(vc); free(q); free(k); free(v); free(slot);
    free(pos); free(gk); free(gv); free(scores); free(want); free(got);
    void *ds[] = { dkc, dvc, dq, dk, dv, dout, dqs, dlens, dtab, dpos, dslot, scratch, ditems };
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        pgd_cuda_free(ds[i]);
}

GPU_TEST(attention_decode_rows_with_context_splits)
{
    /* Llama-3-8B heads; one long sequence forces splits along the context. */
    struct attn_case c = { 32, 8, 128, 16, 0, 5, { 0, 700, 3000, 63, 255 }, { 1, 1, 1, 1, 1 }, false };
    for (int di = 0; di < 2; di++)
        check_attention(DTS[di], &c, 1 + di);
}

GPU_TEST(attention_prefill_chunks_and_decode_mixed)
{
    /* A fresh prompt, a chunk after a cached prefix, a decode row; GQA 8/2, head_dim 64. */
    struct attn_case c = { 8, 2, 64, 16, 0, 3, { 0, 200, 50 }, { 100, 37, 1 }, false };
    for (int di = 0; di < 2; di++)
        check_attention(DTS[di], &c, 10 + di);
}

GPU_TEST(attention_sliding_window)
{
    struct attn_case c = { 4, 2, 128, 16, 32, 3, { 0, 90, 300 }, { 80, 20, 1 }, false };
    for (int di = 0; di < 2; di++)
        check_attention(DTS[di], &c, 20 + di);
}

GPU_TEST(attention_small_and_odd_head_dims)
{
    /* The fixtures' head dims (16, 32), 80 and 256, MQA and plain multi-head, block size 8. */
    struct attn_case cs[] = {
        { 4, 2, 16, 16, 0, 2, { 0, 20 }, { 23, 1 }, false },
        { 4, 2, 32, 16, 0, 2, { 5, 0 }, { 7, 70 }, false },
        { 8, 1, 80, 8, 0, 2, { 33, 0 }, { 1, 41 }, false },
        { 2, 2, 256, 16, 0, 2, { 100, 0 }, { 1, 30 }, false },
        { 16, 1, 128, 16, 0, 1, { 1000 }, { 1 }, false },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int di = 0; di < 2; di++)
            check_attention(DTS[di], &cs[i], 30 + 2 * i + di);
}

GPU_TEST(attention_decode_kernel_groups_dims_windows)
{
    /* Decode rows only, on attention_decode.cu (PGD_CUDA_DECODE_ATTN=1): query heads a KV
     * head 1, 2, 4, 7 (padded to 8) and 8; head dims 64, 128, 256; block sizes 16 and 32;
     * contexts from 1 key to several thousand (context splits, a partial last tile); a
     * sliding window narrower and wider than a split; as planned items and as the fixed items
     * of a graph replay. */
    struct attn_case cs[] = {
        { 8, 8, 128, 16, 0, 4, { 0, 31, 32, 4000 }, { 1, 1, 1, 1 }, false },
        { 8, 4, 64, 32, 0, 3, { 5, 129, 2500 }, { 1, 1, 1 }, true },
        { 32, 8, 128, 16, 0, 8, { 0, 1, 127, 128, 129, 1000, 2047, 6000 },
          { 1, 1, 1, 1, 1, 1, 1, 1 }, true },
        { 28, 4, 128, 16, 0, 3, { 17, 300, 3333 }, { 1, 1, 1 }, false },
        { 16, 2, 64, 16, 0, 2, { 900, 70 }, { 1, 1 }, false },
        { 8, 2, 256, 16, 0, 2, { 1500, 3 }, { 1, 1 }, true },
        { 32, 8, 128, 16, 1000, 3, { 5000, 999, 1001 }, { 1, 1, 1 }, true },
        { 32, 8, 128, 32, 100, 2, { 3000, 50 }, { 1, 1 }, false },
    };
    setenv("PGD_CUDA_DECODE_ATTN", "1", 1);
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int di = 0; di < 2; di++)
            check_attention(DTS[di], &cs[i], 60 + 2 * i + di);
    unsetenv("PGD_CUDA_DECODE_ATTN");
    /* The default dispatch on the same cases (decode rows to either kernel by shape). */
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int di = 0; di < 2; di++)
            check_attention(DTS[di], &cs[i], 100 + 2 * i + di);
}

GPU_TEST(attention_decode_rows_same_with_general_kernel)
{
    /* A mixed step with both kernels (PGD_CUDA_DECODE_ATTN=1), then the general kernel
     * alone for every row (=0): both against the CPU twin. */
    struct attn_case c = { 32, 8, 128, 16, 0, 5, { 0, 3000, 40, 0, 511 }, { 70, 1, 1, 33, 1 }, false };
    setenv("PGD_CUDA_DECODE_ATTN", "1", 1);
    for (int di = 0; di < 2; di++)
        check_attention(DTS[di], &c, 90 + di);
    setenv("PGD_CUDA_DECODE_ATTN", "0", 1);
    for (int di = 0; di < 2; di++)
        check_attention(DTS[di], &c, 92 + di);
    unsetenv("PGD_CUDA_DECODE_ATTN");
}

GPU_TEST(attention_refuses_unsupported_head_dim)
{
    char err[512] = "";
    int32_t qs[2] = { 0, 1 };
    struct pgd_cuda_attn a = { .dtype = PGD_DTYPE_BF16, .p = { 4, 2, 48, 0.1f, 0 }, .n_tokens = 1,
                               .n_seqs = 1, .h_query_start = qs, .max_seq_len = 1 };
    cr_assert_neq(pgd_cuda_attention(ctx, &a, NULL, err, sizeof err), 0);
    cr_assert(strstr(err, "head_dim 48"), "%s", err);
}

/* ---- probes ----------------------------------------------------------------------------------- */
GPU_TEST(bandwidth_and_gemm_probes_report_numbers)
{
    char err[512] = "";
    double gbps = 0, tflops = 0;
    CHECK_RC(pgd_cuda_bench_copy(ctx, (size_t)64 << 20, 5, &gbps, err, sizeof err));
    CHECK_RC(pgd_cuda_bench_gemm(ctx, PGD_DTYPE_BF16, 1024, 1024, 1024, 3, &tflops, err, sizeof err));
    cr_assert(gbps > 10 && gbps < 1e5, "copy bandwidth %g GB/s", gbps);
    cr_assert(tflops > 0.1 && tflops < 1e4, "GEMM rate %g TFLOP/s", tflops);
}
#endif
