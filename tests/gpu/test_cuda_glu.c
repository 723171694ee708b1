/* The MLP's gate/up projection fused with its activation (kernels/cuda/glu.cu,
 * pgd_cuda_linear_act_mul and pgd_op_linear_act_mul on a CUDA step) against:
 *  - the CPU twin: pgd_cpu_linear in float32 on the inputs rounded to the 16-bit dtype, gate
 *    and up rounded to the dtype (as the GPU keeps them), then pgd_cpu_act_mul. Per element
 *    |gpu - cpu| <= rtol * |cpu| + atol * scale, rtol = 3 roundings of the dtype (gate, up,
 *    out: 3 x 2^-8 for bf16, 3 x 2^-11 for fp16; a float32 sum in another order may round
 *    gate or up to the neighbouring value), atol 1/256 (bf16) or 1/2048 (fp16) of the
 *    largest |cpu| of the case;
 *  - the unfused GPU path at the same sizes (the warp GEMV into [n, 2I], then the act_mul
 *    kernel): bit for bit, since the fused kernel sums in the GEMV's own order.
 * Outputs are poisoned with NaN first, so an unwritten element fails; a failure names the
 * case (dtype, activation, n, in, I, bias, path) and the row and column.
 *
 * Without a GPU (or in a build without the CUDA backend) every test skips, saying so. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#define GPU_TEST_SEED 0x2545f4914f6cdd1dull
#define GPU_SUITE cuda_glu
#include "tests/lib/gpu_kernel_test.h"

#ifdef PGD_HAVE_CUDA
#include "runtime/runner/fwd.h"

#define CHECK_RC(rc) cr_assert_eq((rc), 0, "%s", err)

static const enum pgd_dtype DTS[2] = { PGD_DTYPE_BF16, PGD_DTYPE_F16 };
static const enum pgd_act ACTS[2] = { PGD_ACT_SILU, PGD_ACT_GELU_TANH };
static const char *act_name(enum pgd_act a) { return a == PGD_ACT_SILU ? "silu" : "gelu_tanh"; }

/* The GEMV row limit the library uses (linear.cu: 4, or PGD_CUDA_GEMV_MAX_N clamped to
 * 0..8) and whether the fusion is on (PGD_CUDA_GLU=0: off), read as the library reads them. */
static int gemv_max_n(void)
{
    const char *e = getenv("PGD_CUDA_GEMV_MAX_N");
    int n = e && *e ? atoi(e) : 4;
    return n < 0 ? 0 : n > 8 ? 8 : n;
}
static bool glu_env_on(void)
{
    const char *e = getenv("PGD_CUDA_GLU");
    return !(e && !strcmp(e, "0"));
}

/* One case's inputs (host, rounded to dt) and their device copies. */
struct glu_case {
    enum pgd_dtype dt;
    enum pgd_act act;
    int n, in, inter;
    bool bias;
    float *x, *w, *b;                /* [n, in], [2 inter, in], [2 inter] or NULL */
    void *dx, *dw, *db;
    float *want_gu;                  /* [n, 2 inter]: the CPU's gate|up rounded to dt */
    float *want;                     /* [n, inter]: the CPU twin of the output */
    char name[160];
};

static void case_init(struct glu_case *c, enum pgd_dtype dt, enum pgd_act act, int n, int in,
                      int inter, bool bias)
{
    *c = (struct glu_case){ .dt = dt, .act = act, .n = n, .in = in, .inter = inter, .bias = bias };
    /* Weights of 0.05 keep the sums of 4096 products near 1, in the activations' bend. */
    c->x = rand_vals((size_t)n * in, 1, dt);
    c->w = rand_vals((size_t)2 * inter * in, 0.05f, dt);
    c->b = bias ? rand_vals((size_t)2 * inter, 0.5f, dt) : NULL;
    c->dx = upload(c->x, (size_t)n * in, dt);
    c->dw = upload(c->w, (size_t)2 * inter * in, dt);
    c->db = bias ? upload(c->b, (size_t)2 * inter, dt) : NULL;
    c->want_gu = malloc((size_t)n * 2 * inter * sizeof(float));
    c->want = malloc((size_t)n * inter * sizeof(float));
    pgd_cpu_linear(c->x, c->w, c->b, n, in, 2 * inter, c->want_gu);
    for (size_t i = 0; i < (size_t)n * 2 * inter; i++)
        c->want_gu[i] = round_to(c->want_gu[i], dt);
    pgd_cpu_act_mul(act, c->want_gu, n, inter, c->want);
    snprintf(c->name, sizeof c->name, "%s %s x [%d, %d] @ w [2 x %d, %d]^T%s", pgd_dtype_name(dt),
             act_name(act), n, in, inter, in, bias ? " + bias" : "");
}

static void case_fini(struct glu_case *c)
{
    free(c->x); free(c->w); free(c->b); free(c->want_gu); free(c->want);
    pgd_cuda_free(c->dx); pgd_cuda_free(c->dw); pgd_cuda_free(c->db);
}

/* got [rows, cols] against want within the stated tolerance, naming case, row and column. */
static void expect_close(const char *what, const char *path, const float *got, const float *want,
                         int rows, int cols, enum pgd_dtype dt)
{
    size_t n = (size_t)rows * cols;
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    double rt = dt == PGD_DTYPE_BF16 ? 3.0 / 256 : 3.0 / 2048;
    double at = (dt == PGD_DTYPE_BF16 ? 1.0 / 256 : 1.0 / 2048) * (scale > 0 ? scale : 1);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        cr_assert(d <= rt * fabs(want[i]) + at,
                  "%s [%s]: row %zu col %zu is %.6g, the CPU twin gives %.6g (off by %.3g, "
                  "allowed %.3g; scale %.3g)", what, path, i / cols, i % cols, got[i], want[i],
                  d, rt * fabs(want[i]) + at, scale);
    }
}

/* got and want bit for bit (both in dt, widened), naming the first difference. */
static void expect_same(const char *what, const char *path, const float *got, const float *want,
                        int rows, int cols)
{
    size_t n = (size_t)rows * cols, ndiff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && ndiff++ == 0)
            first = i;
    cr_assert_eq(ndiff, 0, "%s [%s]: %zu of %zu elements differ from the unfused GPU path (warp "
                 "GEMV + act_mul; expected bit-identical); first at row %zu col %zu: %.8g vs "
                 "%.8g", what, path, ndiff, n, first / cols, first % cols, got[first],
                 want[first]);
}

static bool all_nan(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            return false;
    return true;
}

/* The fused kernel itself (pgd_cuda_linear_act_mul_gemv) against the CPU twin and against
 * the unfused GPU path. */
static void check_fused_kernel(enum pgd_dtype dt, enum pgd_act act, int n, int in, int inter,
                               bool bias)
{
    char err[512] = "";
    struct glu_case c;
    case_init(&c, dt, act, n, in, inter, bias);
    void *dout = poisoned((size_t)n * inter, dt);
    CHECK_RC(pgd_cuda_linear_act_mul_gemv(ctx, dt, act, c.dx, c.dw, c.db, n, in, inter, dout,
                                          err, sizeof err));
    float *got = download(dout, (size_t)n * inter, dt);
    expect_close(c.name, "fused kernel", got, c.want, n, inter, dt);

    /* The unfused path at the same size: the warp GEMV into [n, 2I], then act_mul. */
    void *dgu = poisoned((size_t)n * 2 * inter, dt), *dref = poisoned((size_t)n * inter, dt);
    CHECK_RC(pgd_cuda_linear_gemv_variant(ctx, PGD_CUDA_GEMV_WARP, 0, dt, c.dx, c.dw, c.db, n, in,
                                          2 * inter, dt, dgu, err, sizeof err));
    CHECK_RC(pgd_cuda_act_mul(ctx, dt, act, dgu, n, inter, dref, err, sizeof err));
    float *ref = download(dref, (size_t)n * inter, dt);
    expect_same(c.name, "fused kernel", got, ref, n, inter);
    free(got); free(ref);
    pgd_cuda_free(dout); pgd_cuda_free(dgu); pgd_cuda_free(dref);
    case_fini(&c);
}

/* The dispatching entry (pgd_cuda_linear_act_mul): the fused kernel at GEMV sizes, which
 * leaves the scratch alone, and otherwise cuBLASLt / the GEMV into the scratch then act_mul. */
static void check_entry(enum pgd_dtype dt, enum pgd_act act, int n, int in, int inter, bool bias)
{
    char err[512] = "";
    struct glu_case c;
    case_init(&c, dt, act, n, in, inter, bias);
    void *dout = poisoned((size_t)n * inter, dt), *dscr = poisoned((size_t)n * 2 * inter, dt);
    CHECK_RC(pgd_cuda_linear_act_mul(ctx, dt, act, c.dx, c.dw, c.db, n, in, inter, dscr, dout,
                                     err, sizeof err));
    bool fused = glu_env_on() && n <= gemv_max_n();
    const char *path = fused ? "entry, fused" : n <= gemv_max_n() ? "entry, GEMV + act_mul"
                                                                  : "entry, cuBLASLt + act_mul";
    float *got = download(dout, (size_t)n * inter, dt);
    float *scr = download(dscr, (size_t)n * 2 * inter, dt);
    expect_close(c.name, path, got, c.want, n, inter, dt);
    if (fused) {
        cr_assert(all_nan(scr, (size_t)n * 2 * inter), "%s [%s]: the fused path wrote the "
                  "scratch (did the unfused path run?)", c.name, path);
    } else {
        /* The intermediate is the linear's: each value within a rounding of the CPU's. */
        expect_close(c.name, "scratch = gate|up", scr, c.want_gu, n, 2 * inter, dt);
    }
    free(got); free(scr);
    pgd_cuda_free(dout); pgd_cuda_free(dscr);
    case_fini(&c);
}

/* ---- the fused kernel ------------------------------------------------------------------ */
/* n = 1..8 (every row count the GEMV limit allows), both dtypes and activations, with and
 * without bias: a Llama-like width (4096: whole unrolled rounds), 4104 (one lane's vector in
 * the tail loop), 2304 (a full tail round), and 1001 (odd: the scalar path); I = 344 and 301
 * (not a multiple of 8: the last block has idle warps). */
GPU_TEST(fused_kernel_matches_cpu_and_unfused)
{
    for (int di = 0; di < 2; di++)
        for (int a = 0; a < 2; a++) {
            enum pgd_dtype dt = DTS[di];
            enum pgd_act act = ACTS[a];
            for (int n = 1; n <= 8; n++)
                check_fused_kernel(dt, act, n, 4096, 344, n % 2 == 1);
            check_fused_kernel(dt, act, 1, 4096, 301, true);
            check_fused_kernel(dt, act, 3, 4104, 301, false);
            check_fused_kernel(dt, act, 2, 2304, 72, true);
            check_fused_kernel(dt, act, 1, 1001, 301, false);
            check_fused_kernel(dt, act, 4, 1001, 344, true);
            check_fused_kernel(dt, act, 8, 1001, 13, true);
        }
}

/* ---- the entry: fused at decode sizes, cuBLASLt + act_mul beyond ---------------------- */
GPU_TEST(entry_fused_and_fallback_match_cpu)
{
    for (int di = 0; di < 2; di++)
        for (int a = 0; a < 2; a++) {
            enum pgd_dtype dt = DTS[di];
            enum pgd_act act = ACTS[a];
            for (int n = 1; n <= 4; n++)
                check_entry(dt, act, n, 4096, 344, n % 2 == 0);
            check_entry(dt, act, 2, 1001, 301, true);
            check_entry(dt, act, 16, 4096, 344, true);      /* cuBLASLt, then act_mul */
            check_entry(dt, act, 37, 1024, 301, false);
        }
}

/* PGD_CUDA_GLU=0 (read once, so set before the first call of this test's process): the
 * GEMV into the scratch, then act_mul, at every size. */
GPU_TEST(env_switch_turns_the_fusion_off)
{
    setenv("PGD_CUDA_GLU", "0", 1);
    cr_assert(!glu_env_on());
    for (int di = 0; di < 2; di++) {
        check_entry(DTS[di], PGD_ACT_SILU, 1, 4096, 344, false);
        check_entry(DTS[di], PGD_ACT_GELU_TANH, 3, 1001, 301, true);
    }
}

/* The kernel replayed from a CUDA graph (decode steps are captured): capture-safe, and the
 * replay reads the buffers' current contents. */
GPU_TEST(fused_kernel_in_a_cuda_graph)
{
    char err[512] = "";
    enum pgd_dtype dt = PGD_DTYPE_BF16;
    struct glu_case c;
    case_init(&c, dt, PGD_ACT_SILU, 2, 4096, 344, true);
    void *dout = poisoned((size_t)2 * 344, dt);
    struct pgd_cuda_graph *g = NULL;
    CHECK_RC(pgd_cuda_capture_begin(ctx, err, sizeof err));
    int rc = pgd_cuda_linear_act_mul_gemv(ctx, dt, PGD_ACT_SILU, c.dx, c.dw, c.db, 2, 4096, 344,
                                          dout, err, sizeof err);
    if (rc)
        pgd_cuda_capture_abort(ctx);
    CHECK_RC(rc);
    CHECK_RC(pgd_cuda_capture_end(ctx, &g, err, sizeof err));
    float *got = download(dout, (size_t)2 * 344, dt);
    cr_assert(all_nan(got, (size_t)2 * 344), "capture ran the kernel instead of recording it");
    free(got);
    CHECK_RC(pgd_cuda_graph_launch(ctx, g, err, sizeof err));
    got = download(dout, (size_t)2 * 344, dt);
    expect_close(c.name, "graph replay", got, c.want, 2, 344, dt);
    free(got);
    /* New x in the same buffer: the replay computes from it. */
    float *x2 = rand_vals((size_t)2 * 4096, 1, dt);
    upload_into(c.dx, x2, (size_t)2 * 4096, dt);
    CHECK_RC(pgd_cuda_graph_launch(ctx, g, err, sizeof err));
    got = download(dout, (size_t)2 * 344, dt);
    float *gu = malloc((size_t)2 * 2 * 344 * sizeof *gu), *want = malloc((size_t)2 * 344 * sizeof *want);
    pgd_cpu_linear(x2, c.w, c.b, 2, 4096, 2 * 344, gu);
    for (int i = 0; i < 2 * 2 * 344; i++)
        gu[i] = round_to(gu[i], dt);
    pgd_cpu_act_mul(PGD_ACT_SILU, gu, 2, 344, want);
    expect_close(c.name, "graph replay on new x", got, want, 2, 344, dt);
    free(got); free(gu); free(want); free(x2);
    pgd_cuda_graph_destroy(g);
    pgd_cuda_free(dout);
    case_fini(&c);
}

/* Failures name the kernel and the shapes. */
GPU_TEST(errors_name_the_shapes)
{
    char err[512] = "";
    void *d = pgd_cuda_malloc(64);
    /* The unfused path (n = 64 > the GEMV limit) without a scratch. */
    cr_assert_neq(pgd_cuda_linear_act_mul(ctx, PGD_DTYPE_BF16, PGD_ACT_SILU, d, d, NULL, 64, 4096,
                                          344, NULL, d, err, sizeof err), 0);
    cr_assert(strstr(err, "linear_act_mul") && strstr(err, "[64, 4096]") && strstr(err, "scratch"),
              "%s", err);
    cr_assert_neq(pgd_cuda_linear_act_mul_gemv(ctx, PGD_DTYPE_BF16, PGD_ACT_SILU, d, d, NULL, 9,
                                               4096, 344, d, err, sizeof err), 0);
    cr_assert(strstr(err, "glu gemv") && strstr(err, "9 rows"), "%s", err);
    cr_assert_neq(pgd_cuda_linear_act_mul_gemv(ctx, PGD_DTYPE_F32, PGD_ACT_SILU, d, d, NULL, 1,
                                               4096, 344, d, err, sizeof err), 0);
    cr_assert(strstr(err, "glu gemv") && strstr(err, "F32"), "%s", err);
    cr_assert_neq(pgd_cuda_linear_act_mul(ctx, PGD_DTYPE_BF16, (enum pgd_act)7, d, d, NULL, 1,
                                          4096, 344, d, d, err, sizeof err), 0);
    cr_assert(strstr(err, "activation 7"), "%s", err);
    pgd_cuda_free(d);
}

/* ---- the op on a CUDA step ------------------------------------------------------------- */
static struct pgd_tensor dev_tensor(void *data, enum pgd_dtype dt, int64_t rows, int64_t cols)
{
    return (struct pgd_tensor){ .data = data, .dtype = dt, .device = PGD_DEVICE_CUDA, .ndim = 2,
                                .ne = { rows, cols } };
}

/* pgd_op_linear_act_mul as the decoder calls it, against the CPU twin and, at GEMV sizes,
 * bit for bit against pgd_op_linear then pgd_op_act_mul; a wrong shape is reported. */
GPU_TEST(op_on_a_cuda_step)
{
    const int ns[3] = { 1, 3, 24 };
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 3; k++) {
            enum pgd_dtype dt = DTS[di];
            int n = ns[k], in = 4096, inter = 344;
            struct glu_case c;
            case_init(&c, dt, k == 1 ? PGD_ACT_GELU_TANH : PGD_ACT_SILU, n, in, inter, k != 0);
            struct pgd_fwd f = { .device = PGD_DEVICE_CUDA, .act_dtype = dt, .n_tokens = n,
                                 .cuda = ctx };
            struct pgd_linear gu = { .weight = dev_tensor(c.dw, dt, 2 * inter, in),
                                     .in_features = in, .out_features = 2 * inter };
            if (c.db)
                gu.bias = (struct pgd_tensor){ .data = c.db, .dtype = dt,
                                               .device = PGD_DEVICE_CUDA, .ndim = 1,
                                               .ne = { 2 * inter } };
            void *dout = poisoned((size_t)n * inter, dt), *dscr = poisoned((size_t)n * 2 * inter, dt);
            void *dref = poisoned((size_t)n * inter, dt), *dgu = poisoned((size_t)n * 2 * inter, dt);
            struct pgd_tensor x = dev_tensor(c.dx, dt, n, in), out = dev_tensor(dout, dt, n, inter);
            struct pgd_tensor scr = dev_tensor(dscr, dt, n, 2 * inter);
            struct pgd_tensor ref = dev_tensor(dref, dt, n, inter);
            struct pgd_tensor gut = dev_tensor(dgu, dt, n, 2 * inter);
            pgd_op_linear_act_mul(&f, &gu, c.act, &x, &scr, &out);
            cr_assert_eq(f.status, PGD_OK, "%s: %s", c.name, f.err);
            float *got = download(dout, (size_t)n * inter, dt);
            expect_close(c.name, "op", got, c.want, n, inter, dt);
            pgd_op_linear(&f, &gu, &x, &gut);
            pgd_op_act_mul(&f, c.act, &gut, &ref);
            cr_assert_eq(f.status, PGD_OK, "%s: %s", c.name, f.err);
            float *want = download(dref, (size_t)n * inter, dt);
            /* At GEMV sizes the two ops run the warp GEMV unless PGD_CUDA_GEMV says split. */
            const char *gv = getenv("PGD_CUDA_GEMV");
            if (n <= gemv_max_n() && !(gv && !strcmp(gv, "split")))
                expect_same(c.name, "op vs linear + act_mul ops", got, want, n, inter);
            else
                expect_close(c.name, "op vs linear + act_mul ops", got, c.want, n, inter, dt);
            free(got); free(want);
            /* A scratch of the wrong width: reported, naming the op and the operand. */
            struct pgd_tensor bad = dev_tensor(dscr, dt, n, inter);
            pgd_op_linear_act_mul(&f, &gu, c.act, &x, &bad, &out);
            cr_assert_eq(f.status, PGD_ERR_INVALID_ARG);
            cr_assert(strstr(f.err, "linear_act_mul") && strstr(f.err, "scratch"), "%s", f.err);
            pgd_cuda_free(dout); pgd_cuda_free(dscr); pgd_cuda_free(dref); pgd_cuda_free(dgu);
            case_fini(&c);
        }
}

#endif
