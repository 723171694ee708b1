/* The quantized linears (kernels/cuda/quant_wq.cu, quant_fp8.cu) against the CPU reference
 * of include/pagoda/quant.h (kernels/cpu/quant.c): random layers in the canonical layouts,
 * x random in the dtype, every path (the GEMV, the fused tensor-core GEMM, the dequantize +
 * cuBLASLt GEMM, cuBLASLt's FP8 GEMM with outer-vector scales, with fast accumulation and
 * with a float32 output, the automatic choice), bits 4 and 8, groups of 32, 64, 128 and
 * per-channel, act-order, odd shapes, n = 1, 3, 8, 17, 64, 256 and every n = 1..16 of the
 * decode GEMV, x not 16-byte aligned, with and without bias, replayed from a CUDA graph, q,
 * k and v in one call (act-order ones of one permutation, shared on the device, in one
 * launch: the launches counted in a graph capture); for FP8 also the decode GEMV that
 * quantizes x inside its blocks at and past its limits, and timed cuBLASLt algorithms reused
 * across one batch bucket.
 *
 * The reference: W from pgd_cpu_wq_dequantize / pgd_cpu_fp8_dequantize (FP8: x through
 * pgd_cpu_fp8_quantize_rows and dequantized back), then pgd_cpu_linear in float32. The
 * fused GEMM with integer zeros (GPTQ's, AWQ's) multiplies the exact q - zero and scales its
 * float32 sums per group, as the GEMVs do: its reference is the exact W. With real-valued
 * zeros, and through cuBLASLt (dequantized slices), the GEMM multiplies weights rounded to
 * the dtype: that reference rounds W the same way (all compute (q - zero) * scale exactly
 * and round once to nearest, so the weights are identical). Scales and zeros are fp16 values, as GPTQ and AWQ store them (the
 * GPU keeps them in fp16).
 *
 * Tolerance per element: |gpu - cpu| <= u * (|cpu| + |b[o]|) + a * A[r, o], where
 *   u = 2^-7 (bf16) or 2^-10 (fp16): twice the unit roundoff (bf16 keeps 8 significant
 *       bits, fp16 11), for the output's rounding to the dtype and the GEMM paths' second
 *       rounding when the bias is added after (seen on the H200: 0.7 ulp after both);
 *   A = sum_k |x[r, k] W[o, k]| (+ |b[o]|): float32 sums of the same products in another
 *       order (warp shuffles, tensor-core tiles) differ by about sqrt(K) 2^-24 A, under
 *       2^-16 A for every K here; a = 2^-14 leaves room for tensor-core accumulation. The
 *       exception is cuBLASLt's FP8 GEMM (every path of an FP8 layer but "gemv"): Hopper's FP8
 *       tensor cores keep about 14 bits of the running sum (as DeepSeek-V3's report
 *       measured), so there a = 2^-12 (seen: 2^-13.6 A at K = 1024); with cuBLASLt's fast
 *       accumulation (the automatic GEMM's default, and gemm-fast) no partial sum is promoted
 *       to float32, so a = 2^-13 * K / 32 (fp8_tolerance). A wrong group, zero, nibble,
 *       permutation or scale moves an output by far more than any of these.
 * FP8's products of two e4m3 values are exact in float32 on both sides (the e4m3 GEMV's
 * partial sums leave the tensor cores every 64 inputs; the fp16 one sums in float32), and
 * the GPU's x codes come
 * from the same division and round-to-nearest-even as the reference's. The GEMV paths are
 * the tensor-core ones where the layer fits them (4 bits with integer zeros and in a
 * multiple of 64; FP8 with in a multiple of 64) and the plain ones otherwise: both are
 * reached below.
 * Outputs are poisoned with NaN first, so an unwritten element fails; a failure names the
 * case, path, row and column.
 *
 * Without a GPU (or in a build without the CUDA backend) every test skips, saying so. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "kernels/cpu/cpu_kernels.h"
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#define GPU_TEST_SEED 0x5851f42d4c957f2dull
#define GPU_SUITE cuda_quant
#include "tests/lib/gpu_kernel_test.h"

#ifdef PGD_HAVE_CUDA
#define CHECK_RC(rc) cr_assert_eq((rc), 0, "%s", err)

static const enum pgd_dtype DTS[2] = { PGD_DTYPE_BF16, PGD_DTYPE_F16 };
static const char *path_name(int p)
{
    static const char *names[] = { "auto", "gemv", "gemm", "gemm-vec", "gemm-f32", "gemm-lt",
                                   "gemm-mma", "gemm-fast", "gemv-e4m3", "gemm-d16",
                                   "gemv-stream", "gemv-dec", "gemm-fold" };
    return names[p];
}

/* The GEMV row limits the library uses (the defaults, or the environment's override), read
 * as the library reads them. */
static int env_limit(const char *name, int def)
{
    const char *e = getenv(name);
    int n = e && *e ? atoi(e) : def;
    return n < 0 ? 0 : n > 64 ? 64 : n;
}

/* name = value in the environment, or name unset when value is NULL (the sweeps' "left to
 * the automatic pick" case). */
static void env_set(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

static float f16_exact(float v) { return pgd_f16_to_f32(pgd_f32_to_f16(v)); }

static uint64_t lcg = 0x2545f4914f6cdd1dull;
static uint32_t rand32(void)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg >> 32);
}

/* ---- comparison --------------------------------------------------------------------------- */
/* want = x @ w^T + b and A = |x| @ |w|^T + |b| on the CPU. */
static void reference(const float *x, const float *w, const float *b, int n, int in, int out,
                      float *want, float *abs_sum)
{
    pgd_cpu_linear(x, w, b, n, in, out, want);
    float *ax = malloc((size_t)n * in * sizeof *ax), *aw = malloc((size_t)out * in * sizeof *aw);
    float *ab = b ? malloc((size_t)out * sizeof *ab) : NULL;
    for (size_t i = 0; i < (size_t)n * in; i++)
        ax[i] = fabsf(x[i]);
    for (size_t i = 0; i < (size_t)out * in; i++)
        aw[i] = fabsf(w[i]);
    for (int i = 0; b && i < out; i++)
        ab[i] = fabsf(b[i]);
    pgd_cpu_linear(ax, aw, ab, n, in, out, abs_sum);
    free(ax); free(aw); free(ab);
}

/* As expect_close, with the accumulation term's factor a given. */
static void expect_close_a(const char *name, const char *path, const float *got, const float *want,
                           const float *abs_sum, const float *b, int n, int out, enum pgd_dtype dt,
                           double a)
{
    const double u = dt == PGD_DTYPE_BF16 ? 0x1p-7 : 0x1p-10;
    for (size_t i = 0; i < (size_t)n * out; i++) {
        const int o = (int)(i % out);
        const double allowed = u * (fabs(want[i]) + (b ? fabs(b[o]) : 0)) + a * abs_sum[i];
        const double d = fabs((double)got[i] - want[i]);
        cr_assert(d <= allowed, "%s [%s]: row %zu col %d is %.7g, the CPU reference gives %.7g "
                  "(off by %.3g, allowed %.3g; sum |x w| %.4g)", name, path, i / out, o, got[i],
                  want[i], d, allowed, abs_sum[i]);
    }
}

static void expect_close(const char *name, const char *path, const float *got, const float *want,
                         const float *abs_sum, const float *b, int n, int out, enum pgd_dtype dt)
{
    /* FP8 through cuBLASLt: the gemm paths, and auto past the GEMV's rows */
    const bool fp8_gemm = !strncmp(name, "FP8", 3) && strcmp(path, "gemv") != 0;
    expect_close_a(name, path, got, want, abs_sum, b, n, out, dt, fp8_gemm ? 0x1p-12 : 0x1p-14);
}

/* ---- W4A16 / W8A16 ------------------------------------------------------------------------ */
struct wq_layer {
    int bits, group_size, in, out;
    bool act_order;
    int zero_kind;                   /* Z_SYM, Z_INT or Z_HALF */
    uint32_t *qweight;
    float *scales, *zeros;
    int32_t *perm;
    struct pgd_wq_host h;
    float *w;                        /* [out, in]: pgd_cpu_wq_dequantize */
    float *w_dt[2];                  /* w rounded to bf16 / fp16: what the GEMM path multiplies */
    struct pgd_cuda_wq *d;
    char name[160];
};

/* Zeros: the symmetric 2^(bits - 1); random integers in [0, 2^bits] (AWQ, GPTQ asym; 2^bits:
 * GPTQ v1's stored 2^bits - 1 plus one); or those plus 0.5 (not GPTQ's or AWQ's, but the
 * canonical layout's zeros are real-valued: such a layer takes the plain layout, not the
 * tensor-core one). */
enum { Z_SYM, Z_INT, Z_HALF };

/* A random layer. Scales in [2^-9, 2^-5], fp16 values. group_size -1: per-channel.
 * act_order: perm_of's entries copied (a copy: equal, never the same host array), or a
 * random permutation where perm_of is NULL; made through the set perms (NULL: none). */
static void wq_make(struct wq_layer *L, int bits, int group_size, bool act_order, int zeros,
                    int in, int out, const int32_t *perm_of, struct pgd_cuda_wq_perms *perms)
{
    const int pack = 32 / bits, gs = group_size > 0 ? group_size : in, groups = in / gs;
    *L = (struct wq_layer){ .bits = bits, .group_size = gs, .in = in, .out = out,
                            .act_order = act_order, .zero_kind = zeros };
    L->qweight = malloc((size_t)in / pack * out * sizeof *L->qweight);
    for (size_t i = 0; i < (size_t)in / pack * out; i++)
        L->qweight[i] = rand32();
    L->scales = malloc((size_t)groups * out * sizeof(float));
    L->zeros = malloc((size_t)groups * out * sizeof(float));
    for (size_t i = 0; i < (size_t)groups * out; i++) {
        L->scales[i] = f16_exact(ldexpf(1.0f + (float)(rand32() % 1024) / 1024.0f,
                                        -9 + (int)(rand32() % 4)));
        L->zeros[i] = zeros == Z_SYM ? (float)(1 << (bits - 1))
                    : (float)(rand32() % ((1u << bits) + 1)) + (zeros == Z_HALF ? 0.5f : 0.0f);
    }
    if (act_order && perm_of) {
        L->perm = malloc((size_t)in * sizeof *L->perm);
        memcpy(L->perm, perm_of, (size_t)in * sizeof *L->perm);
    } else if (act_order) {
        L->perm = malloc((size_t)in * sizeof *L->perm);
        for (int i = 0; i < in; i++)
            L->perm[i] = i;
        for (int i = in - 1; i > 0; i--) {
            int j = (int)(rand32() % (uint32_t)(i + 1)), t = L->perm[i];
            L->perm[i] = L->perm[j];
            L->perm[j] = t;
        }
    }
    L->h = (struct pgd_wq_host){ bits, gs, in, out, L->qweight, L->scales, L->zeros, L->perm };
    L->w = malloc((size_t)out * in * sizeof(float));
    pgd_cpu_wq_dequantize(&L->h, L->w);
    for (int t = 0; t < 2; t++) {
        L->w_dt[t] = malloc((size_t)out * in * sizeof(float));
        for (size_t i = 0; i < (size_t)out * in; i++)
            L->w_dt[t][i] = round_to(L->w[i], DTS[t]);
    }
    static const char *zname[3] = { "sym", "asym", "half-integer zeros" };
    snprintf(L->name, sizeof L->name, "W%dA16 [%d x %d] group %d%s%s, %s", bits, out, in, gs,
             group_size < 0 ? " (per-channel)" : "", act_order ? " act-order" : "",
             zname[zeros]);
    char err[512] = "";
    CHECK_RC(pgd_cuda_wq_create(&L->h, perms, &L->d, err, sizeof err));
}

static void wq_init(struct wq_layer *L, int bits, int group_size, bool act_order, int zeros,
                    int in, int out)
{
    wq_make(L, bits, group_size, act_order, zeros, in, out, NULL, NULL);
}

static void wq_fini(struct wq_layer *L)
{
    pgd_cuda_wq_destroy(L->d);
    free(L->qweight); free(L->scales); free(L->zeros); free(L->perm); free(L->w);
    free(L->w_dt[0]); free(L->w_dt[1]);
}

/* The rows from which the automatic path dequantizes a 4-bit layer in the mma layout for
 * cuBLASLt where the folded GEMM does not run: PGD_CUDA_WQ_DEQ_MIN_N (0: never), by default
 * 256; where it runs, it takes 17..256 rows and the dequantizing path the rows past them. */
static int deq_min_rows(void)
{
    const char *e = getenv("PGD_CUDA_WQ_DEQ_MIN_N");
    const int n = e && *e ? atoi(e) : 256;
    return n < 1 ? INT_MAX : n;
}

/* Whether the folded GEMM runs on the tests' device, with its default rows. */
static bool fold_default(void)
{
    return pgd_cuda_wq_fold_available(0) && !getenv("PGD_CUDA_WQ_FOLD_MIN_N") &&
           !getenv("PGD_CUDA_WQ_FOLD_MAX_N");
}

/* Whether the automatic path multiplies n rows of L by its weights rounded to the dtype:
 * its plan is the folded GEMM or the dequantize + cuBLASLt path (the plan and the call
 * take the same choice: wq_gemm_lt_path and wq_gemm_fold_path check the plans). */
static bool auto_rounds(const struct wq_layer *L, int n)
{
    char plan[64] = "";
    pgd_cuda_wq_auto_plan(ctx, L->d, n, plan, sizeof plan);
    return !strcmp(plan, "deq+lt") || !strncmp(plan, "fold", 4);
}

/* One call of the layer on random x (and bias) through `path`, against the reference; x
 * starts x_off elements into its device buffer (1: not 16-byte aligned). */
static void wq_check_at(const struct wq_layer *L, enum pgd_dtype dt, int n, int path, bool bias,
                        int x_off)
{
    char err[512] = "";
    const int in = L->in, out = L->out;
    float *x = rand_vals((size_t)n * in, 1, dt), *b = bias ? rand_vals((size_t)out, 0.5f, dt) : NULL;
    void *xbuf = poisoned((size_t)n * in + (size_t)x_off, dt);
    void *dx = (char *)xbuf + (size_t)x_off * 2, *db = bias ? upload(b, (size_t)out, dt) : NULL;
    upload_into(dx, x, (size_t)n * in, dt);
    void *dy = poisoned((size_t)n * out, dt);
    CHECK_RC(pgd_cuda_wq_linear_path(ctx, path, dt, dx, n, L->d, db, dy, err, sizeof err));
    float *got = download(dy, (size_t)n * out, dt);
    /* the plain layout (8 bits, half-integer zeros, in not a multiple of 64) stops at 8 */
    const bool plain = L->bits == 8 || L->in % 64 != 0 || strstr(L->name, "half-integer");
    const int gemv_max = env_limit("PGD_CUDA_WQ_GEMV_MAX_N", 16);
    const bool gemv = path == PGD_CUDA_QPATH_GEMV ||
                      (path == PGD_CUDA_QPATH_AUTO &&
                       n <= (plain && gemv_max > 8 ? 8 : gemv_max));
    /* the folded GEMM and the dequantizing path multiply the mma layout's weights rounded
     * to the dtype, forced or where the automatic path takes them */
    const bool deq = path == PGD_CUDA_QPATH_GEMM_LT || path == PGD_CUDA_QPATH_GEMM_FOLD ||
                     (path == PGD_CUDA_QPATH_AUTO && !gemv && !plain && auto_rounds(L, n));
    /* the fused GEMM multiplies the exact q - zero when the zeros are integers; the
     * dequantized rows are (q - zero) * scale rounded to the dtype */
    const bool exact = gemv || (!deq && L->zero_kind != Z_HALF);
    const float *w = exact ? L->w : L->w_dt[dt == PGD_DTYPE_BF16 ? 0 : 1];
    float *want = malloc((size_t)n * out * sizeof *want), *abs_sum = malloc((size_t)n * out * sizeof *abs_sum);
    reference(x, w, b, n, in, out, want, abs_sum);
    char name[256];
    const bool fold = path == PGD_CUDA_QPATH_GEMM_FOLD;
    const char *bn = getenv(fold ? "PGD_CUDA_WQ_FOLD_BN" : "PGD_CUDA_WQ_GEMM_BN");
    const char *ks = fold ? getenv("PGD_CUDA_WQ_FOLD_KS") : NULL;
    snprintf(name, sizeof name, "%s, %s x [%d, %d]%s%s%s%s%s%s", L->name, pgd_dtype_name(dt), n,
             in, bias ? " + bias" : "", x_off ? " (x not 16-byte aligned)" : "",
             bn ? ", GEMM token tile " : "", bn ? bn : "", ks ? ", inputs split " : "",
             ks ? ks : "");
    expect_close(name, path_name(path), got, want, abs_sum, b, n, out, dt);
    free(x); free(b); free(got); free(want); free(abs_sum);
    pgd_cuda_free(xbuf); pgd_cuda_free(db); pgd_cuda_free(dy);
}

static void wq_check(const struct wq_layer *L, enum pgd_dtype dt, int n, int path, bool bias)
{
    wq_check_at(L, dt, n, path, bias, 0);
}

static const int NS[6] = { 1, 3, 8, 17, 64, 256 };

/* Every bits x group x act-order x dtype on [200 x 1024] (200: not a multiple of 16 or of
 * the GEMV block), every n through the GEMV, the GEMM and the automatic choice (GEMV at
 * 256 rows: many launches, tested once a layer to keep the run short). 4 bits with integer
 * zeros run the tensor-core GEMV; with half_zeros, and at 8 bits, the plain one. */
static void wq_sweep(int bits, bool act_order, bool half_zeros)
{
    static const int GROUPS[4] = { 32, 64, 128, -1 };
    for (int g = 0; g < 4; g++) {
        struct wq_layer L;
        wq_init(&L, bits, GROUPS[g], act_order, half_zeros ? Z_HALF : g % 2 == 1 ? Z_INT : Z_SYM,
                1024, 200);
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 6; i++) {
                const int n = NS[i];
                const bool bias = (i + g) % 2 == 0;
                if (n <= 64 || t == 0)
                    wq_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMV, bias);
                wq_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMM, bias);
                wq_check(&L, DTS[t], n, PGD_CUDA_QPATH_AUTO, !bias);
            }
        wq_fini(&L);
    }
}

GPU_TEST(w4_every_group_and_n) { wq_sweep(4, false, false); }
GPU_TEST(w4_act_order_every_group_and_n) { wq_sweep(4, true, false); }
GPU_TEST(w4_plain_layout_every_group_and_n) { wq_sweep(4, true, true); }
GPU_TEST(w8_every_group_and_n) { wq_sweep(8, false, false); }
GPU_TEST(w8_act_order_every_group_and_n) { wq_sweep(8, true, false); }

/* Shapes that reach the loops' other branches: rows of 33 chunks (1056 wide: the plain
 * layout, lanes idle in the last round), rows longer than one round of loads (4-bit 8192
 * wide; 8-bit 4096 wide), a tensor-core row split unevenly over the warps (4160 wide: 65
 * blocks of 64 over 8 warps of 9, the last one idle, groups cut by the warps' ranges), a
 * single output (one tile, 15 rows of padding), a GEMM 32768 wide, and act-order x staged in
 * pieces: the dequantize + cuBLASLt path's staging half holds 512 rows of 32768 (520 take
 * two), the fused GEMM's whole scratch 1024 (1100 take two). */
GPU_TEST(wq_odd_and_large_shapes)
{
    struct { int bits, group, in, out, n, path; bool act; } cases[] = {
        { 4, 32, 1056, 77, 3, PGD_CUDA_QPATH_GEMV, false },
        { 4, 128, 8192, 300, 1, PGD_CUDA_QPATH_GEMV, true },
        { 4, 128, 8192, 300, 5, PGD_CUDA_QPATH_GEMV, false },
        { 8, 64, 4096, 130, 2, PGD_CUDA_QPATH_GEMV, true },
        { 8, -1, 4096, 130, 4, PGD_CUDA_QPATH_AUTO, false },
        { 4, 128, 4096, 1, 1, PGD_CUDA_QPATH_GEMV, false },
        { 4, 320, 4160, 40, 2, PGD_CUDA_QPATH_GEMV, true },
        { 4, 64, 4160, 40, 16, PGD_CUDA_QPATH_GEMV, false },
        { 4, 64, 4160, 40, 17, PGD_CUDA_QPATH_GEMM, false },
        { 4, 128, 4096, 1, 33, PGD_CUDA_QPATH_GEMM, true },
        { 4, 128, 32768, 600, 17, PGD_CUDA_QPATH_GEMM, false },
        { 8, 128, 32768, 600, 9, PGD_CUDA_QPATH_GEMM, true },
        { 4, 128, 32768, 16, 520, PGD_CUDA_QPATH_GEMM, true },
        { 4, 128, 32768, 16, 1100, PGD_CUDA_QPATH_GEMM, true },
        { 4, 128, 32768, 16, 520, PGD_CUDA_QPATH_GEMM_LT, true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, cases[i].bits, cases[i].group, cases[i].act, i % 2 == 0 ? Z_INT : Z_SYM,
                cases[i].in, cases[i].out);
        wq_check(&L, PGD_DTYPE_BF16, cases[i].n, cases[i].path, i % 3 == 0);
        wq_fini(&L);
    }
}

/* The decode GEMV (4 bits: quant_wq_sgemv2.cu; 8 bits: the plain one) at every n = 1..16,
 * every group, with and without act-order, both dtypes: [72 x 4352] (72: the last 16-row
 * tile half padding; 5 tiles, so 8 warps split each tile's 68 chunks of 64 inputs, 9 a
 * warp, the last one 5, groups cut by the warps' runs). x is staged in shared memory at
 * every n (act-order gathered there for one row, by the gathering kernel first for more;
 * with PGD_CUDA_WQ_GEMV=s1, up to 11 or 12 rows, larger n reading x from global memory). */
GPU_TEST(wq_decode_gemv_every_n_to_16)
{
    static const int GROUPS[4] = { 32, 64, 128, -1 };
    for (int bits = 4; bits <= 8; bits += 4)
        for (int g = 0; g < 4; g++)
            for (int act = 0; act < 2; act++) {
                struct wq_layer L;
                wq_init(&L, bits, GROUPS[g], act == 1, (g + act) % 2 ? Z_INT : Z_SYM, 4352, 72);
                for (int n = 1; n <= 16; n++)
                    wq_check(&L, DTS[(n + g) % 2], n, PGD_CUDA_QPATH_GEMV, (n + act) % 3 == 0);
                wq_fini(&L);
            }
}

/* Layers of more tiles than an H200 has SMs: 2200 x 4352 (138 tiles, the last half
 * padding: 8 warps a tile, 9 chunks a warp, the last warp 5), and 8500 x 1024 (532 tiles,
 * more than the 264 blocks an H200 holds two an SM at 8 or 4 warps a tile: 2 warps a
 * tile, 4 tiles a block, 133 blocks). */
GPU_TEST(wq_decode_gemv_many_tiles)
{
    static const int SHAPES[2][2] = { { 4352, 2200 }, { 1024, 8500 } };
    for (int sh = 0; sh < 2; sh++)
        for (int act = 0; act < 2; act++) {
            struct wq_layer L;
            wq_init(&L, 4, sh ? 64 : 128, act == 1, act ? Z_INT : Z_SYM, SHAPES[sh][0],
                    SHAPES[sh][1]);
            const int ns[4] = { 1, 3, 9, 16 };
            for (int i = 0; i < 4; i++)
                wq_check(&L, DTS[(i + act) % 2], ns[i], PGD_CUDA_QPATH_GEMV, i % 2 == 1);
            wq_fini(&L);
        }
}

/* The streaming decode GEMV's splits (quant_wq_sgemv.cu, kernels/cuda/stream_plan.h's pow2
 * rule: the warps of a tile are the largest of 8, 4, 2, 1 that keeps every block on the chip
 * at once, two an SM; the rows are small, so the reference stays cheap): on an H200 (132
 * SMs) [1000 x 2048] splits each tile over 8 warps (63 tiles), [5000 x 512] over 4 (313
 * tiles), [12000 x 256] over 2 (750), [20000 x 256] over 1 (1250 tiles, 157 blocks), [40000
 * x 128] runs in two waves of blocks (2500 tiles: 313 blocks of 8), each with a row count
 * that leaves the last tile partly padding; groups of 32 over 32768 inputs (a scale table of
 * 64 KB a tile, x too large to stage even at n = 1: read from global memory); groups of 96
 * (every other chunk's two halves in two groups); every group size, sym and asym zeros
 * (GPTQ's and AWQ's layers differ only in their zeros once in the canonical layout), act-order,
 * n = 1, 3 and 16 (x staged, or read from global memory). */
GPU_TEST(wq_decode_gemv_splits_and_waves)
{
    struct { int group, in, out; bool act; int zeros; } cases[] = {
        { 128, 2048, 1000, false, Z_SYM },
        { 64, 512, 5000, true, Z_INT },
        { 32, 256, 12000, false, Z_INT },
        { -1, 256, 20000, true, Z_SYM },
        { 128, 128, 40000, false, Z_INT },
        { 32, 32768, 40, true, Z_INT },
        { 96, 576, 100, true, Z_SYM },
    };
    const int ns[3] = { 1, 3, 16 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, 4, cases[i].group, cases[i].act, cases[i].zeros, cases[i].in, cases[i].out);
        for (int k = 0; k < 3; k++)
            wq_check(&L, DTS[(i + k) % 2], ns[k], PGD_CUDA_QPATH_GEMV, (i + k) % 2 == 0);
        wq_fini(&L);
    }
    /* 17000 x 2048, groups of 32 (1063 tiles: one warp a tile; 8 tiles' scale tables, 64 KB,
     * leave 13 rows of x no room): quant_wq_gemv.cu's GEMV takes those rows, the streaming
     * one the first 3 */
    struct wq_layer L;
    wq_init(&L, 4, 32, true, Z_INT, 2048, 17000);
    wq_check(&L, PGD_DTYPE_BF16, 13, PGD_CUDA_QPATH_GEMV, true);
    wq_check(&L, PGD_DTYPE_F16, 3, PGD_CUDA_QPATH_GEMV, false);
    wq_fini(&L);
}

/* The act-order permutations of a linear_multi case: none; one for the three layers, made
 * through one set (so held once: one launch, after x's gather); each layer its own (one at a
 * time); equal entries but no set (separate device copies: one at a time, still right); q
 * act-order and k, v not (one at a time). */
enum { ACT_NONE, ACT_SHARED, ACT_OWN, ACT_EQUAL_UNSHARED, ACT_MIXED };

/* The nodes a graph capture of linear_multi records, where the case fixes them (0: not
 * checked): up to 8 rows and the default environment, one launch (1 node) without
 * act-order, a gather and one launch (2) with a shared permutation, a gather and a launch a
 * layer (6) with separate ones. */
static size_t wq_multi_nodes(int act, int n)
{
    if (n > 8 || getenv("PGD_CUDA_WQ_GEMV") || getenv("PGD_CUDA_WQ_GATHER_ONCE") ||
        getenv("PGD_CUDA_WQ_GEMV_MAX_N") || getenv("PGD_CUDA_WQ_MMA"))
        return 0;
    return act == ACT_NONE ? 1 : act == ACT_SHARED ? 2 : act == ACT_MIXED ? 0 : 6;
}

/* The nodes a graph capture of pgd_cuda_wq_linear_multi of the three layers w records. */
static size_t wq_multi_graph_nodes(enum pgd_dtype dt, const void *dx, int n,
                                   const struct pgd_cuda_wq *const *w, void *const *db,
                                   void *const *dy)
{
    char err[512] = "";
    struct pgd_cuda_graph *g = NULL;
    CHECK_RC(pgd_cuda_capture_begin(ctx, err, sizeof err));
    int rc = pgd_cuda_wq_linear_multi(ctx, dt, dx, n, 3, w, (const void *const *)db, dy, err,
                                      sizeof err);
    if (rc)
        pgd_cuda_capture_abort(ctx);
    CHECK_RC(rc);
    CHECK_RC(pgd_cuda_capture_end(ctx, &g, err, sizeof err));
    const size_t nodes = pgd_cuda_graph_nodes(g);
    pgd_cuda_graph_destroy(g);
    return nodes;
}

/* pgd_cuda_wq_linear_multi on q, k and v shapes of one x ([out | out / 4 | out / 4] features;
 * [200 | 40 | 24] leaves each layer's last tile part-empty): one launch up to 8 rows (with
 * act-order where the three share a permutation), one layer at a time past them and for
 * act-order layers of different permutations; each output against its reference (the one
 * launch may split a row over other warps than one layer's own launch: the same tolerance,
 * not the same bits), and the launches it took, counted in a graph capture. */
static void wq_multi_case(int group, int in, const int *outs, int act, int n, enum pgd_dtype dt,
                          bool bias)
{
    char err[512] = "";
    struct wq_layer L[3];
    const struct pgd_cuda_wq *w[3];
    float *b[3] = { NULL, NULL, NULL };
    void *db[3] = { NULL, NULL, NULL }, *dy[3];
    struct pgd_cuda_wq_perms *perms = act == ACT_SHARED ? pgd_cuda_wq_perms_create() : NULL;
    for (int i = 0; i < 3; i++) {
        const bool ao = act != ACT_NONE && (act != ACT_MIXED || i == 0);
        const bool copy = i > 0 && (act == ACT_SHARED || act == ACT_EQUAL_UNSHARED);
        wq_make(&L[i], 4, group, ao, i == 1 ? Z_SYM : Z_INT, in, outs[i],
                copy ? L[0].perm : NULL, perms);
        w[i] = L[i].d;
        if (bias) {
            b[i] = rand_vals((size_t)outs[i], 0.5f, dt);
            db[i] = upload(b[i], (size_t)outs[i], dt);
        }
        dy[i] = poisoned((size_t)n * outs[i], dt);
    }
    static const char *act_name[5] = { "", ", one shared permutation",
                                       ", a permutation a layer", ", equal unshared permutations",
                                       ", q act-order only" };
    cr_assert_eq(pgd_cuda_wq_same_perm(w[0], w[1]) && pgd_cuda_wq_same_perm(w[0], w[2]),
                 act == ACT_SHARED, "%s: the layers' permutations are%s shared", act_name[act],
                 act == ACT_SHARED ? " not" : "");
    float *x = rand_vals((size_t)n * in, 1, dt);
    void *dx = upload(x, (size_t)n * in, dt);
    CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, dx, n, 3, w, (const void *const *)db, dy, err,
                                      sizeof err));
    for (int i = 0; i < 3; i++) {
        float *got = download(dy[i], (size_t)n * outs[i], dt);
        float *want = malloc((size_t)n * outs[i] * sizeof *want);
        float *abs_sum = malloc((size_t)n * outs[i] * sizeof *abs_sum);
        /* the folded GEMM multiplies the weights rounded to the dtype (auto_rounds) */
        const float *wref = auto_rounds(&L[i], n) ? L[i].w_dt[dt == PGD_DTYPE_BF16 ? 0 : 1]
                                                   : L[i].w;
        reference(x, wref, b[i], n, in, outs[i], want, abs_sum);
        char name[256];
        snprintf(name, sizeof name, "%s, %s x [%d, %d]%s%s, layer %d of 3", L[i].name,
                 pgd_dtype_name(dt), n, in, bias ? " + bias" : "", act_name[act], i + 1);
        expect_close(name, "linear_multi", got, want, abs_sum, b[i], n, outs[i], dt);
        free(got); free(want); free(abs_sum);
    }
    const size_t nodes = wq_multi_nodes(act, n);
    if (nodes) {
        const size_t got = wq_multi_graph_nodes(dt, dx, n, w, db, dy);
        cr_assert_eq(got, nodes, "x [%d, %d]%s: linear_multi recorded %zu nodes, expected %zu",
                     n, in, act_name[act], got, nodes);
    }
    /* the set first: its layers keep their copy */
    pgd_cuda_wq_perms_destroy(perms);
    for (int i = 0; i < 3; i++) {
        pgd_cuda_free(dy[i]);
        pgd_cuda_free(db[i]);
        free(b[i]);
        wq_fini(&L[i]);
    }
    pgd_cuda_free(dx);
    free(x);
}

/* The q, k and v shapes of both tests below at 1, 5, 8 and 12 rows, both dtypes, groups of
 * 128 and of 32, with and without bias, act-order as `act` says. */
static const int MULTI_O1[3] = { 512, 128, 128 }, MULTI_O2[3] = { 200, 40, 24 };
static void wq_multi_sweep(int act)
{
    const int ns[4] = { 1, 5, 8, 12 };
    for (int k = 0; k < 4; k++) {
        wq_multi_case(128, 1024, MULTI_O1, act, ns[k], DTS[k % 2], k % 2 == 0);
        wq_multi_case(32, 512, MULTI_O2, act, ns[k], DTS[(k + 1) % 2], k % 2 == 1);
    }
}

GPU_TEST(wq_linear_multi_q_k_v)
{
    wq_multi_sweep(ACT_NONE);
    wq_multi_case(128, 1024, MULTI_O1, ACT_OWN, 3, PGD_DTYPE_BF16, true);
}

/* Act-order q, k and v (GPTQ with desc_act: one g_idx, one permutation): one launch after
 * one gather where the three hold one permutation, at 1..8 rows, both dtypes, groups of 128
 * and of 32 (each chunk's halves apart), with and without bias; one layer at a time, still
 * right, where they do not (each its own permutation, equal ones not shared, only q
 * act-order) and past 8 rows. */
GPU_TEST(wq_linear_multi_q_k_v_act_order)
{
    wq_multi_sweep(ACT_SHARED);
    wq_multi_case(128, 1024, MULTI_O1, ACT_OWN, 1, PGD_DTYPE_F16, false);
    wq_multi_case(32, 512, MULTI_O2, ACT_EQUAL_UNSHARED, 2, PGD_DTYPE_BF16, true);
    wq_multi_case(128, 1024, MULTI_O1, ACT_MIXED, 4, PGD_DTYPE_BF16, false);
}

/* Bit for bit: n elements of dt on the device at b and at a (the plain path's), each
 * finite (a NaN: an element unwritten). */
static void expect_same_dev(const char *what, const void *a, const void *b, size_t n,
                            enum pgd_dtype dt)
{
    float *x = download(a, n, dt), *y = download(b, n, dt);
    for (size_t i = 0; i < n; i++)
        cr_assert(isfinite(x[i]) && memcmp(&x[i], &y[i], sizeof x[i]) == 0,
                  "%s: element %zu is %.9g, the plain path's %.9g", what, i, y[i], x[i]);
    free(x);
    free(y);
}

/* The W4 decode GEMV's two ways of staging its scale tables give the same bits: a row pair a
 * thread (the default) and a row a thread (pgd_cuda_wq_set_meta_pairs 0); over every group
 * size (groups of 32 split a chunk), one token tile and two, layers of one tile a block
 * (q/o-like rows split over 8 warps) and of 8 (gate_up-like: 28,672 features, 32 groups, 8
 * tiles a block: the 32-way conflict the pairs remove), a long row (down-like, 112 groups),
 * x not 16-byte aligned; and q, k and v in one launch (act-order too) against their
 * reference with the pairs. */
GPU_TEST(w4_gemv_staging_variants_are_the_same_bits)
{
    char err[512] = "";
    struct { int group, in, out; } cases[] = {
        { 128, 4096, 4096 }, { 128, 4096, 28672 }, { 128, 14336, 300 }, { 32, 1024, 200 },
        { 64, 1024, 200 }, { -1, 1024, 200 },
    };
    const int ns[4] = { 1, 3, 8, 12 };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct wq_layer L;
        wq_init(&L, 4, cases[c].group, c == 3, c % 2 ? Z_INT : Z_SYM, cases[c].in, cases[c].out);
        for (int k = 0; k < 4; k++) {
            const int n = ns[k], in = L.in, out = L.out, x_off = k == 2;
            const enum pgd_dtype dt = DTS[(c + k) % 2];
            float *x = rand_vals((size_t)n * in, 1, dt);
            void *xbuf = poisoned((size_t)n * in + (size_t)x_off, dt);
            void *dx = (char *)xbuf + (size_t)x_off * 2;
            upload_into(dx, x, (size_t)n * in, dt);
            void *dy[2];
            for (int v = 0; v < 2; v++) {
                dy[v] = poisoned((size_t)n * out, dt);
                pgd_cuda_wq_set_meta_pairs(ctx, v);
                CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMV, dt, dx, n, L.d, NULL,
                                                 dy[v], err, sizeof err));
            }
            pgd_cuda_wq_set_meta_pairs(ctx, 1);
            char what[256];
            snprintf(what, sizeof what, "%s, %s x [%d, %d]%s, scale tables in row pairs", L.name,
                     pgd_dtype_name(dt), n, in, x_off ? " (x not 16-byte aligned)" : "");
            expect_same_dev(what, dy[0], dy[1], (size_t)n * out, dt);
            free(x);
            pgd_cuda_free(xbuf);
            for (int v = 0; v < 2; v++)
                pgd_cuda_free(dy[v]);
        }
        if (c < 3)
            wq_check(&L, PGD_DTYPE_BF16, 1, PGD_CUDA_QPATH_GEMV, true);
        wq_fini(&L);
    }
    wq_multi_case(128, 1024, MULTI_O1, ACT_NONE, 1, PGD_DTYPE_BF16, true);
    wq_multi_case(32, 512, MULTI_O2, ACT_SHARED, 5, PGD_DTYPE_F16, false);
}

/* One case of norm_leaves_the_act_order_gather: the plain norm (with the residual add or
 * not) then `layers` (3: q, k and v of one permutation in one linear_multi; 1: one layer, as
 * gate_up), against pgd_cuda_rmsnorm_gather then the same call; the norm's x x_off elements
 * into its buffer (1: not 16-byte aligned, the element-wise kernel). */
static void norm_gather_case(struct wq_layer *L, int layers, int n, int d, bool add,
                             enum pgd_dtype dt, int x_off)
{
    char err[512] = "", what[200];
    const struct pgd_cuda_wq *w[3] = { L[0].d, L[1].d, L[2].d };
    const void *nob[3] = { NULL, NULL, NULL };
    const int32_t *perm = pgd_cuda_wq_input_perm(L[0].d);
    cr_assert_not_null(perm, "an act-order layer without its permutation");
    float *x = rand_vals((size_t)n * d, 1, dt), *res = rand_vals((size_t)n * d, 1, dt);
    float *nw = rand_vals((size_t)d, 1, dt);
    void *xbuf = poisoned((size_t)n * d + (size_t)x_off, dt), *dw = upload(nw, (size_t)d, dt);
    void *dx = (char *)xbuf + (size_t)x_off * 2;
    upload_into(dx, x, (size_t)n * d, dt);
    void *dres[2] = { upload(res, (size_t)n * d, dt), upload(res, (size_t)n * d, dt) };
    void *out[2] = { poisoned((size_t)n * d, dt), poisoned((size_t)n * d, dt) };
    void *y[2][3];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < layers; i++)
            y[k][i] = poisoned((size_t)n * L[i].out, dt);
    /* 0: the plain norm, the layers gather x themselves */
    if (add)
        CHECK_RC(pgd_cuda_add_rmsnorm(ctx, dt, dres[0], dx, dw, 1e-5f, n, d, out[0], err,
                                      sizeof err));
    else
        CHECK_RC(pgd_cuda_rmsnorm(ctx, dt, dx, dw, 1e-5f, n, d, out[0], err, sizeof err));
    CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, out[0], n, layers, w, nob, y[0], err,
                                      sizeof err));
    /* 1: the norm leaves the gather, the layers take it */
    const long before = pgd_cuda_wq_norm_gathers(ctx);
    int prepared = 0;
    CHECK_RC(pgd_cuda_rmsnorm_gather(ctx, dt, add ? dres[1] : NULL, dx, dw, 1e-5f, n, d, out[1],
                                     perm, &prepared, err, sizeof err));
    snprintf(what, sizeof what, "%s x [%d, %d]%s%s, %d layer%s", pgd_dtype_name(dt), n, d,
             add ? " + residual" : "", x_off ? " (x not 16-byte aligned)" : "", layers,
             layers > 1 ? "s" : "");
    cr_assert_eq(prepared, 1, "%s: the norm left no gather", what);
    CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, out[1], n, layers, w, nob, y[1], err,
                                      sizeof err));
    const long taken = pgd_cuda_wq_norm_gathers(ctx) - before;
    char name[260];
    snprintf(name, sizeof name, "%s: the norm's output", what);
    expect_same_dev(name, out[0], out[1], (size_t)n * d, dt);
    if (add) {
        snprintf(name, sizeof name, "%s: the residual", what);
        expect_same_dev(name, dres[0], dres[1], (size_t)n * d, dt);
    }
    for (int i = 0; i < layers; i++) {
        snprintf(name, sizeof name, "%s: layer %d's output", what, i + 1);
        expect_same_dev(name, y[0][i], y[1][i], (size_t)n * L[i].out, dt);
    }
    cr_assert_eq(taken, 1, "%s: the layers took the norm's gather %ld times (1 expected)", what,
                 taken);
    /* once: the same call again gathers x itself, with the same outputs */
    CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, out[1], n, layers, w, nob, y[1], err,
                                      sizeof err));
    cr_assert_eq(pgd_cuda_wq_norm_gathers(ctx) - before, 1, "%s: a gather taken twice", what);
    for (int i = 0; i < layers; i++) {
        snprintf(name, sizeof name, "%s: layer %d's output, called again", what, i + 1);
        expect_same_dev(name, y[0][i], y[1][i], (size_t)n * L[i].out, dt);
    }
    for (int k = 0; k < 2; k++) {
        pgd_cuda_free(dres[k]);
        pgd_cuda_free(out[k]);
        for (int i = 0; i < layers; i++)
            pgd_cuda_free(y[k][i]);
    }
    pgd_cuda_free(xbuf);
    pgd_cuda_free(dw);
    free(x); free(res); free(nw);
}

/* pgd_cuda_rmsnorm_gather (norm.cu) before act-order layers: its output and residual are
 * the plain norm's bit for bit, and the layers after it give bit for bit what they give
 * after the plain norm while taking the gather the norm left instead of gathering x
 * (counted by pgd_cuda_wq_norm_gathers), once: the same call again gathers x itself. q, k
 * and v of one permutation at 1, 5 and 8 rows (one launch) and 24 (one layer at a time on
 * the GEMM); one layer alone (gate_up) at 1, 3, 12 (the decode GEMVs) and 40 rows (the
 * GEMM); widths 512 (the norm's warp a row), 1,024 and 4,096 (its vector kernel, one and
 * two 16-byte vectors a thread) and 1,024 with x not 16-byte aligned (its element-wise
 * kernel); groups of 128; with and without the residual add; both dtypes. */
GPU_TEST(norm_leaves_the_act_order_gather)
{
    const int widths[4] = { 512, 1024, 4096, 1024 };
    const int multi_rows[4] = { 1, 5, 8, 24 }, one_rows[4] = { 1, 3, 12, 40 };
    for (int wi = 0; wi < 4; wi++) {
        const int d = widths[wi], x_off = wi == 3;
        struct pgd_cuda_wq_perms *perms = pgd_cuda_wq_perms_create();
        cr_assert_not_null(perms);
        struct wq_layer L[3], up;
        const int outs[3] = { 256, 64, 64 };
        for (int i = 0; i < 3; i++)
            wq_make(&L[i], 4, 128, true, i == 1 ? Z_SYM : Z_INT, d, outs[i],
                    i ? L[0].perm : NULL, perms);
        wq_make(&up, 4, 128, true, Z_INT, d, 512, NULL, perms);
        struct wq_layer one[3] = { up, up, up };   /* (linear_multi of one layer reads [0]) */
        for (int k = 0; k < 4; k++) {
            norm_gather_case(L, 3, multi_rows[k], d, k % 2 == 0, DTS[(k + wi) % 2], x_off);
            norm_gather_case(one, 1, one_rows[k], d, k % 2 == 1, DTS[(k + wi + 1) % 2], x_off);
        }
        pgd_cuda_wq_perms_destroy(perms);
        for (int i = 0; i < 3; i++)
            wq_fini(&L[i]);
        wq_fini(&up);
    }
}

/* Layers made through one pgd_cuda_wq_perms set share the device copy of equal permutations
 * (equal entries in separate host arrays), and only those: another permutation of as many
 * inputs, or one of another width, gets its own; a layer made without the set its own. The
 * set and the layers are destroyed in either order; a layer then still runs (its copy
 * outlives the set). */
GPU_TEST(wq_perms_shared_exactly)
{
    struct pgd_cuda_wq_perms *perms = pgd_cuda_wq_perms_create();
    cr_assert_not_null(perms);
    struct wq_layer q, k, v, o, wide, alone, plain;
    wq_make(&q, 4, 128, true, Z_INT, 1024, 64, NULL, perms);
    wq_make(&k, 4, 128, true, Z_SYM, 1024, 32, q.perm, perms);
    wq_make(&v, 4, 64, true, Z_INT, 1024, 32, q.perm, perms);
    cr_assert_eq(pgd_cuda_wq_perms_count(perms), 1);
    /* the same permutation but two entries swapped */
    int32_t *near = malloc(1024 * sizeof *near);
    memcpy(near, q.perm, 1024 * sizeof *near);
    const int32_t t = near[1000];
    near[1000] = near[1001];
    near[1001] = t;
    wq_make(&o, 4, 128, true, Z_INT, 1024, 48, near, perms);
    wq_make(&wide, 4, 128, true, Z_INT, 2048, 16, NULL, perms);
    wq_make(&alone, 4, 128, true, Z_INT, 1024, 16, q.perm, NULL);
    wq_make(&plain, 4, 128, false, Z_INT, 1024, 16, NULL, perms);
    cr_assert_eq(pgd_cuda_wq_perms_count(perms), 3);
    cr_assert(pgd_cuda_wq_same_perm(q.d, k.d) && pgd_cuda_wq_same_perm(k.d, v.d));
    cr_assert(!pgd_cuda_wq_same_perm(q.d, o.d), "a permutation two entries apart is shared");
    cr_assert(!pgd_cuda_wq_same_perm(q.d, wide.d) && !pgd_cuda_wq_same_perm(q.d, alone.d));
    cr_assert(!pgd_cuda_wq_same_perm(plain.d, plain.d), "no permutation, yet one held");
    /* the set, then q and k: v still holds the copy */
    pgd_cuda_wq_perms_destroy(perms);
    wq_fini(&q);
    wq_fini(&k);
    wq_check(&v, PGD_DTYPE_BF16, 3, PGD_CUDA_QPATH_GEMV, true);
    wq_check(&o, PGD_DTYPE_F16, 1, PGD_CUDA_QPATH_AUTO, false);
    wq_fini(&v);
    wq_fini(&o);
    wq_fini(&wide);
    wq_fini(&alone);
    wq_fini(&plain);
    free(near);
}

/* The previous decode GEMV (quant_wq_gemv.cu), kept for measuring against the streaming one
 * (PGD_CUDA_WQ_GEMV=old, read once a process: each test runs in its own), on the shapes of
 * wq_decode_gemv_every_n_to_16 at n = 1, 3, 16, every group, with and without act-order. */
GPU_TEST(wq_decode_gemv_old_kernel)
{
    setenv("PGD_CUDA_WQ_GEMV", "old", 1);
    static const int GROUPS[4] = { 32, 64, 128, -1 };
    const int ns[3] = { 1, 3, 16 };
    for (int g = 0; g < 4; g++)
        for (int act = 0; act < 2; act++) {
            struct wq_layer L;
            wq_init(&L, 4, GROUPS[g], act == 1, (g + act) % 2 ? Z_INT : Z_SYM, 4352, 72);
            for (int k = 0; k < 3; k++)
                wq_check(&L, DTS[(k + g) % 2], ns[k], PGD_CUDA_QPATH_GEMV, (k + act) % 2 == 0);
            wq_fini(&L);
        }
    unsetenv("PGD_CUDA_WQ_GEMV");
}

/* The first streaming decode GEMV (quant_wq_sgemv.cu, PGD_CUDA_WQ_GEMV=s1, read once a
 * process: each test runs in its own), kept for measuring against quant_wq_sgemv2.cu and for
 * the rows whose x the latter cannot stage: every group, with and without act-order, n = 1,
 * 3, 9 and 16 (x staged, or read from global memory). */
GPU_TEST(wq_decode_gemv_s1_kernel)
{
    setenv("PGD_CUDA_WQ_GEMV", "s1", 1);
    static const int GROUPS[4] = { 32, 64, 128, -1 };
    const int ns[4] = { 1, 3, 9, 16 };
    for (int g = 0; g < 4; g++)
        for (int act = 0; act < 2; act++) {
            struct wq_layer L;
            wq_init(&L, 4, GROUPS[g], act == 1, (g + act) % 2 ? Z_INT : Z_SYM, 4352, 72);
            for (int k = 0; k < 4; k++)
                wq_check(&L, DTS[(k + g) % 2], ns[k], PGD_CUDA_QPATH_GEMV, (k + act) % 2 == 0);
            wq_fini(&L);
        }
    unsetenv("PGD_CUDA_WQ_GEMV");
}

/* quant_wq_sgemv2.cu's warps streaming several tiles one after another: [20008 x 1024] is
 * 1251 tiles (the last half padding); on an H200 (132 SMs, one block an SM) 4 warps split
 * each tile and each pair of tile lanes takes 5 tiles, the partial sums meeting at every
 * tile's end, and the last block has one tile (its second tile lane has none). Groups of
 * 128 (AWQ-like integer zeros) and of 32 (chunk halves scaled apart, act-order), n = 1, 9
 * and 16 (one and two token tiles, x staged in fragment order), both dtypes; then the same
 * with two blocks an SM (PGD_CUDA_WQ_GEMV_BPS=2, read once a process: the plan changes). */
static void wq_tile_runs(void)
{
    struct { int group; bool act; int zeros; } cases[] = {
        { 128, false, Z_INT }, { 32, true, Z_SYM },
    };
    const int ns[3] = { 1, 9, 16 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, 4, cases[i].group, cases[i].act, cases[i].zeros, 1024, 20008);
        for (int k = 0; k < 3; k++)
            wq_check(&L, DTS[(i + k) % 2], ns[k], PGD_CUDA_QPATH_GEMV, k != 1);
        wq_fini(&L);
    }
}

GPU_TEST(wq_decode_gemv2_tile_runs) { wq_tile_runs(); }

GPU_TEST(wq_decode_gemv2_two_blocks_an_sm)
{
    setenv("PGD_CUDA_WQ_GEMV_BPS", "2", 1);
    wq_tile_runs();
    struct wq_layer L;
    wq_init(&L, 4, 128, true, Z_INT, 4352, 2200);
    wq_check(&L, PGD_DTYPE_BF16, 1, PGD_CUDA_QPATH_GEMV, true);
    wq_check(&L, PGD_DTYPE_F16, 12, PGD_CUDA_QPATH_AUTO, false);
    wq_fini(&L);
    unsetenv("PGD_CUDA_WQ_GEMV_BPS");
}

/* quant_wq_sgemv2.cu with the zero taken out of the inner loop (PGD_CUDA_WQ_GEMV_ZF=1: the
 * tensor cores multiply B + q, each 64 or 32 inputs' sums lose (B + zero) times x's sum
 * there): within the same tolerance as the exact q - zero, at every group (per-channel: one
 * zero over 4352 inputs), sym and asym zeros, act-order, n = 1..16 (one and two token
 * tiles), both dtypes, and on rows of 14336 inputs (down's). */
GPU_TEST(wq_decode_gemv2_zero_folded)
{
    setenv("PGD_CUDA_WQ_GEMV_ZF", "1", 1);
    static const int GROUPS[4] = { 32, 64, 128, -1 };
    const int ns[5] = { 1, 2, 5, 9, 16 };
    for (int g = 0; g < 4; g++)
        for (int act = 0; act < 2; act++) {
            struct wq_layer L;
            wq_init(&L, 4, GROUPS[g], act == 1, (g + act) % 2 ? Z_INT : Z_SYM, 4352, 72);
            for (int k = 0; k < 5; k++)
                wq_check(&L, DTS[(k + g + act) % 2], ns[k], PGD_CUDA_QPATH_GEMV, k % 2 == 0);
            wq_fini(&L);
        }
    struct wq_layer L;
    wq_init(&L, 4, 128, false, Z_INT, 14336, 300);
    wq_check(&L, PGD_DTYPE_BF16, 1, PGD_CUDA_QPATH_GEMV, true);
    wq_check(&L, PGD_DTYPE_F16, 6, PGD_CUDA_QPATH_AUTO, false);
    wq_fini(&L);
    unsetenv("PGD_CUDA_WQ_GEMV_ZF");
}

/* The fused tensor-core GEMM (quant_wq_gemm.cu) with each token tile forced (32, 64, 128,
 * then the automatic pick), through the default path (on an H100/H200 the wgmma kernel for
 * groups of 64 inputs or more and tiles of 64 or 128, every layout) and on mma.sync alone, on
 * shapes that reach its edges: features not a multiple of the
 * block's 128 (and of 8: the epilogue's scalar stores), tokens not a multiple of the tile,
 * inputs not a multiple of the 64 a stage takes (the plain layouts: 1056 = 16.5 stages at 4
 * bits, 1040 at 8 bits with groups of 80, not a power of two), fewer stages than the
 * pipeline's depth (128 inputs), groups of 32 (two a stage) up to per-channel, the mma and
 * the plain layouts, act-order (x gathered first), x not 16-byte aligned (staged), both
 * dtypes, with and without bias. */
GPU_TEST(wq_gemm_tiles_and_edges)
{
    struct { int bits, group, in, out, n; bool act; int zeros; int x_off; } cases[] = {
        { 4, 128, 1024, 300, 131, false, Z_INT, 0 },
        { 4, 64, 576, 200, 65, true, Z_SYM, 0 },
        { 4, 32, 128, 136, 40, false, Z_INT, 0 },
        { 4, -1, 2048, 129, 97, false, Z_SYM, 1 },
        { 4, 32, 1056, 77, 50, false, Z_HALF, 0 },
        { 4, 128, 1024, 264, 33, true, Z_HALF, 1 },
        { 8, 80, 1040, 130, 129, false, Z_INT, 0 },
        { 8, 128, 1024, 256, 200, true, Z_SYM, 0 },
        { 8, -1, 512, 72, 17, false, Z_HALF, 1 },
    };
    static const char *TILES[4] = { "32", "64", "128", NULL };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, cases[i].bits, cases[i].group, cases[i].act, cases[i].zeros, cases[i].in,
                cases[i].out);
        for (int k = 0; k < 4; k++) {
            env_set("PGD_CUDA_WQ_GEMM_BN", TILES[k]);
            wq_check_at(&L, DTS[(i + k) % 2], cases[i].n, PGD_CUDA_QPATH_GEMM, (i + k) % 3 != 0,
                        cases[i].x_off);
            wq_check_at(&L, DTS[(i + k + 1) % 2], cases[i].n, PGD_CUDA_QPATH_GEMM_MMA,
                        (i + k) % 3 == 0, cases[i].x_off);
        }
        wq_fini(&L);
    }
}

/* x only 2-byte aligned (a row view at an odd element): staged element by element into
 * shared memory (n = 1, 5), or first copied to an aligned buffer when the kernel reads it
 * from global memory (n = 14), with and without act-order. */
GPU_TEST(wq_decode_gemv_misaligned_x)
{
    for (int act = 0; act < 2; act++) {
        struct wq_layer L;
        wq_init(&L, 4, 128, act == 1, Z_INT, 4352, 40);
        const int ns[3] = { 1, 5, 14 };
        for (int i = 0; i < 3; i++)
            wq_check_at(&L, DTS[i % 2], ns[i], PGD_CUDA_QPATH_GEMV, i == 1, 1);
        wq_fini(&L);
    }
}

/* Prefill sizes on the 8B q/o shape: 9000 tokens (71 tiles of 128; act-order x staged in two
 * pieces of the scratch's 8192 rows), through the default path (wgmma on Hopper) and
 * mma.sync. The CPU checks 40 of the rows (every 8192nd-ish, the first and the last): a full
 * reference would take minutes. */
GPU_TEST(wq_gemm_prefill_sizes)
{
    char err[512] = "";
    const enum pgd_dtype dt = PGD_DTYPE_BF16;
    const int in = 4096, out = 4096, n = 9000, rows = 40;
    for (int act = 0; act < 2; act++) {
        struct wq_layer L;
        wq_init(&L, 4, 128, act == 1, Z_INT, in, out);
        float *x = rand_vals((size_t)n * in, 1, dt);
        void *dx = upload(x, (size_t)n * in, dt);
        float *xs = malloc((size_t)rows * in * sizeof *xs);
        int pick[40];
        for (int i = 0; i < rows; i++) {
            pick[i] = i == rows - 1 ? n - 1 : (int)((long)i * (n - 1) / (rows - 1));
            memcpy(xs + (size_t)i * in, x + (size_t)pick[i] * in, (size_t)in * sizeof *xs);
        }
        float *want = malloc((size_t)rows * out * sizeof *want);
        float *abs_sum = malloc((size_t)rows * out * sizeof *abs_sum);
        reference(xs, L.w, NULL, rows, in, out, want, abs_sum);
        const int paths[2] = { PGD_CUDA_QPATH_GEMM, PGD_CUDA_QPATH_GEMM_MMA };
        for (int p = 0; p < 2; p++) {
            void *dy = poisoned((size_t)n * out, dt);
            CHECK_RC(pgd_cuda_wq_linear_path(ctx, paths[p], dt, dx, n, L.d, NULL, dy, err,
                                             sizeof err));
            float *got = download(dy, (size_t)n * out, dt);
            float *gs = malloc((size_t)rows * out * sizeof *gs);
            for (int i = 0; i < rows; i++)
                memcpy(gs + (size_t)i * out, got + (size_t)pick[i] * out, (size_t)out * sizeof *gs);
            char name[256];
            snprintf(name, sizeof name, "%s, bf16 x [%d, %d] (rows every ~%d)", L.name, n, in,
                     n / rows);
            expect_close(name, path_name(paths[p]), gs, want, abs_sum, NULL, rows, out, dt);
            size_t nan = 0;
            for (size_t i = 0; i < (size_t)n * out; i++)
                nan += isnan(got[i]);
            cr_assert_eq(nan, 0, "%s [%s]: %zu outputs unwritten (NaN)", name,
                         path_name(paths[p]), nan);
            free(got); free(gs);
            pgd_cuda_free(dy);
        }
        free(x); free(xs); free(want); free(abs_sum);
        pgd_cuda_free(dx);
        wq_fini(&L);
    }
}

/* The dequantize + cuBLASLt path (PGD_CUDA_QPATH_GEMM_LT; the automatic one from 256 rows in
 * the mma layout): the mma and plain layouts, act-order, rows of 65 chunks of 64 inputs (the
 * dequantizer's last block of chunks partial) and a last tile of 8 rows, a layer the scratch
 * grows to hold whole (gate_up of the 8B shape: 28,672 x 4,096), every group size, and the
 * automatic choice at 255 / 256 / 1,100 rows (the folded GEMM's up to 256 where it runs) and
 * 300 rows of groups of 32 (which it does not take) in both dtypes (with act-order: x
 * staged). */
GPU_TEST(wq_gemm_lt_path)
{
    struct { int bits, group, in, out, n; bool act; int zeros, path; } cases[] = {
        { 4, 128, 1024, 200, 64, true, Z_INT, PGD_CUDA_QPATH_GEMM_LT },
        { 4, 32, 1024, 200, 17, false, Z_HALF, PGD_CUDA_QPATH_GEMM_LT },
        { 8, 64, 1024, 200, 33, false, Z_SYM, PGD_CUDA_QPATH_GEMM_LT },
        { 4, 128, 32768, 600, 17, false, Z_INT, PGD_CUDA_QPATH_GEMM_LT },
        { 4, 64, 4160, 40, 20, false, Z_SYM, PGD_CUDA_QPATH_GEMM_LT },
        { 4, 32, 4160, 40, 9, true, Z_INT, PGD_CUDA_QPATH_GEMM_LT },
        { 4, -1, 1024, 72, 30, false, Z_INT, PGD_CUDA_QPATH_GEMM_LT },
        { 4, 128, 4096, 28672, 24, false, Z_INT, PGD_CUDA_QPATH_GEMM_LT },
        { 4, 128, 1024, 200, 255, false, Z_INT, PGD_CUDA_QPATH_AUTO },
        { 4, 128, 1024, 200, 256, false, Z_SYM, PGD_CUDA_QPATH_AUTO },
        { 4, 64, 2048, 136, 1100, true, Z_INT, PGD_CUDA_QPATH_AUTO },
        { 4, 32, 1024, 200, 300, false, Z_INT, PGD_CUDA_QPATH_AUTO },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, cases[i].bits, cases[i].group, cases[i].act, cases[i].zeros, cases[i].in,
                cases[i].out);
        for (int d = 0; d < (cases[i].path == PGD_CUDA_QPATH_AUTO ? 2 : 1); d++)
            wq_check(&L, DTS[(i + d) % 2], cases[i].n, cases[i].path, i % 2 == 0);
        if (cases[i].path == PGD_CUDA_QPATH_AUTO) {
            char plan[64] = "";
            pgd_cuda_wq_auto_plan(ctx, L.d, cases[i].n, plan, sizeof plan);
            /* where the folded GEMM runs (its layers: groups a multiple of 64) it takes
             * 17..256 rows and deq+lt the rows past them; elsewhere deq+lt from 256 */
            const int n = cases[i].n;
            const int group = cases[i].group > 0 ? cases[i].group : cases[i].in;
            const bool fold = fold_default() && group % 64 == 0;
            const char *want = fold ? (n >= 17 && n <= 256 ? "fold" : n > 256 ? "deq+lt" : "")
                                    : n >= deq_min_rows() ? "deq+lt" : "";
            const bool ok = *want ? !strncmp(plan, want, strlen(want))
                                  : strcmp(plan, "deq+lt") != 0 && strncmp(plan, "fold", 4) != 0;
            cr_expect(ok, "%s at %d rows: the automatic plan is %s (expected %s)", L.name, n, plan,
                      *want ? want : "the exact fused GEMM");
        }
        wq_fini(&L);
    }
}

/* Large scale tables, with act-order: 1024 groups of 32 over 32768 inputs (64 KB a tile)
 * exceed what the decode GEMV takes and run quant_wq_mma.cu's GEMV; 512 groups over 16384
 * (32 KB) it takes, with x read from global memory (n = 1: the rings and the table leave x
 * no room), and at n = 12 (two token tiles' sums) the rings, table and sums exceed the
 * shared memory, so those rows take quant_wq_mma.cu's GEMV too. */
GPU_TEST(wq_decode_gemv_large_scale_table)
{
    static const int IN[2] = { 32768, 16384 };
    for (int i = 0; i < 2; i++) {
        struct wq_layer L;
        wq_init(&L, 4, 32, true, Z_INT, IN[i], 24);
        wq_check(&L, PGD_DTYPE_BF16, i ? 1 : 2, PGD_CUDA_QPATH_GEMV, true);
        wq_check(&L, PGD_DTYPE_F16, i ? 12 : 9, PGD_CUDA_QPATH_AUTO, false);
        wq_fini(&L);
    }
}

/* One call of the layer on random x [n, in] (bf16 and f16 by n) through `path`, checked on
 * `rows` of its rows (the first, the last, evenly between): the CPU reference of every row
 * of the 8B shapes would take most of a minute. Every output is checked written. */
static void wq_check_sampled(const struct wq_layer *L, int n, int path, bool bias, int rows)
{
    char err[512] = "";
    const enum pgd_dtype dt = DTS[n % 2];
    const int in = L->in, out = L->out;
    rows = rows < n ? rows : n;
    float *x = rand_vals((size_t)n * in, 1, dt), *b = bias ? rand_vals((size_t)out, 0.5f, dt) : NULL;
    void *dx = upload(x, (size_t)n * in, dt), *db = bias ? upload(b, (size_t)out, dt) : NULL;
    void *dy = poisoned((size_t)n * out, dt);
    CHECK_RC(pgd_cuda_wq_linear_path(ctx, path, dt, dx, n, L->d, db, dy, err, sizeof err));
    float *got = download(dy, (size_t)n * out, dt);
    float *xs = malloc((size_t)rows * in * sizeof *xs), *gs = malloc((size_t)rows * out * sizeof *gs);
    for (int i = 0; i < rows; i++) {
        const int r = rows == 1 ? 0 : (int)((long)i * (n - 1) / (rows - 1));
        memcpy(xs + (size_t)i * in, x + (size_t)r * in, (size_t)in * sizeof *xs);
        memcpy(gs + (size_t)i * out, got + (size_t)r * out, (size_t)out * sizeof *gs);
    }
    float *want = malloc((size_t)rows * out * sizeof *want);
    float *abs_sum = malloc((size_t)rows * out * sizeof *abs_sum);
    /* half-integer zeros: the fused GEMM multiplies the weights rounded to the dtype, as
     * the folded and the dequantizing paths do any layer's (forced or automatic) */
    const bool rounded = L->zero_kind == Z_HALF || path == PGD_CUDA_QPATH_GEMM_FOLD ||
                         path == PGD_CUDA_QPATH_GEMM_LT ||
                         (path == PGD_CUDA_QPATH_AUTO && auto_rounds(L, n));
    reference(xs, rounded ? L->w_dt[dt == PGD_DTYPE_BF16 ? 0 : 1] : L->w, b, rows, in, out, want,
              abs_sum);
    char name[256];
    const bool fold = path == PGD_CUDA_QPATH_GEMM_FOLD;
    const char *ks = getenv(fold ? "PGD_CUDA_WQ_FOLD_KS" : "PGD_CUDA_WQ_GEMM_KS");
    const char *bn = fold ? getenv("PGD_CUDA_WQ_FOLD_BN") : NULL;
    snprintf(name, sizeof name, "%s, %s x [%d, %d]%s (%d rows checked)%s%s%s%s", L->name,
             pgd_dtype_name(dt), n, in, bias ? " + bias" : "", rows,
             ks ? ", inputs split " : "", ks ? ks : "", bn ? ", token tile " : "", bn ? bn : "");
    expect_close(name, path_name(path), gs, want, abs_sum, b, rows, out, dt);
    size_t nan = 0;
    for (size_t i = 0; i < (size_t)n * out; i++)
        nan += isnan(got[i]);
    cr_assert_eq(nan, 0, "%s [%s]: %zu outputs unwritten (NaN)", name, path_name(path), nan);
    free(x); free(b); free(got); free(xs); free(gs); free(want); free(abs_sum);
    pgd_cuda_free(dx); pgd_cuda_free(db); pgd_cuda_free(dy);
}

/* The fused GEMM at the batched-decode sizes (n = 17..128) that split each tile's inputs
 * over a cluster of blocks (sm_90; elsewhere one block a tile): the split forced to 1, 2, 3
 * and 8 blocks (wgmma where it fits) and left to the automatic path (on sm_90a the folded
 * GEMM's own pick for the mma layout), and mma.sync, on odd shapes: splits ending inside a
 * group (per-channel; groups of 192 = 3 stages, 32 = half a stage), a last split shorter
 * than the others (1056 inputs: 17 stages, the last half of zeros), features not a multiple
 * of 128 or 8, the plain layouts (8 bits; half-integer zeros), act-order (its groups not
 * contiguous in the checkpoint's order: x gathered), both dtypes, with and without bias. */
GPU_TEST(wq_gemm_split_inputs_small_n)
{
    struct { int bits, group, in, out; bool act; int zeros; } cases[] = {
        { 4, 128, 4096, 136, true, Z_INT },
        { 4, -1, 2048, 77, false, Z_SYM },
        { 4, 192, 3072, 200, false, Z_INT },
        { 4, 32, 1056, 300, false, Z_HALF },
        { 8, 128, 4096, 130, true, Z_SYM },
        { 8, -1, 1024, 264, false, Z_INT },
    };
    static const int NS_SPLIT[6] = { 17, 31, 48, 64, 100, 128 };
    static const char *KS[5] = { "1", "2", "3", "8", NULL };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, cases[i].bits, cases[i].group, cases[i].act, cases[i].zeros, cases[i].in,
                cases[i].out);
        for (int k = 0; k < 5; k++) {
            env_set("PGD_CUDA_WQ_GEMM_KS", KS[k]);
            for (int j = 0; j < 6; j++) {
                if ((j + k + (int)i) % 2)    /* half of the n a split, every n over the splits */
                    continue;
                const int path = (j + k) % 3 == 0 ? PGD_CUDA_QPATH_GEMM_MMA
                               : KS[k] ? PGD_CUDA_QPATH_GEMM : PGD_CUDA_QPATH_AUTO;
                wq_check_sampled(&L, NS_SPLIT[j], path, (j + k) % 2 == 0, NS_SPLIT[j]);
            }
        }
        unsetenv("PGD_CUDA_WQ_GEMM_KS");
        wq_fini(&L);
    }
}

/* The streaming GEMV's plans of the 8B layers at decode sizes (kernels/cuda/stream_plan.h,
 * tested on the CPU by tests/unit/test_stream_plan.c): q, k and v in one launch (384 tiles;
 * with act-order after one gather), gate_up (1792 tiles) and down (224 chunks a row), each at
 * 1 and 8 rows against its reference; the plans taken are logged. Under the default rule
 * (pow2) and, in a test of its own (the environment is read once a process), the balance
 * rule (on a 132-SM H100 / H200: q/k/v in blocks of 5 warps, 3 an SM; gate_up 7 tiles a
 * block). */
static void wq_8b_plans(void)
{
    static const int QKV[3] = { 4096, 1024, 1024 };
    wq_multi_case(128, 4096, QKV, ACT_NONE, 1, PGD_DTYPE_BF16, false);
    wq_multi_case(128, 4096, QKV, ACT_SHARED, 8, PGD_DTYPE_F16, true);
    static const int LAYERS[3][2] = { { 4096, 6144 }, { 4096, 28672 }, { 14336, 4096 } };
    for (int i = 0; i < 3; i++) {
        struct wq_layer L;
        wq_init(&L, 4, 128, i == 2, i == 1 ? Z_INT : Z_SYM, LAYERS[i][0], LAYERS[i][1]);
        char plan[64];
        pgd_cuda_wq_auto_plan(ctx, L.d, 1, plan, sizeof plan);
        cr_log_info("%s at 1 row: %s", L.name, plan);
        wq_check_sampled(&L, 1, PGD_CUDA_QPATH_AUTO, i == 0, 1);
        wq_check_sampled(&L, 8, PGD_CUDA_QPATH_GEMV, i == 1, 8);
        wq_fini(&L);
    }
}

GPU_TEST(wq_decode_gemv_8b_plans) { wq_8b_plans(); }

GPU_TEST(wq_decode_gemv_8b_plans_balance)
{
    setenv("PGD_CUDA_STREAM_PLAN", "balance", 1);
    wq_8b_plans();
}

/* The Llama-3-8B shapes the batched decode runs (q / o 4096 x 4096, qkv 6144 x 4096, down
 * 4096 x 14336), 4 bits, group 128, with and without act-order, and 8 bits on down, at
 * n = 17..128 through the automatic path (the folded GEMM on sm_90a; 8 bits: the split
 * GEMM), 5 rows checked each;
 * and at n = 1 and 6 (the decode GEMV; act-order down gathers x with a kernel first: its
 * 14336 inputs are more than one round of the block's own gather). */
GPU_TEST(wq_llama8b_shapes_small_n)
{
    struct { int bits, in, out; bool act; int n[2]; } cases[] = {
        { 4, 4096, 4096, false, { 17, 64 } },
        { 4, 4096, 4096, true, { 31, 128 } },
        { 4, 4096, 6144, false, { 48, 100 } },
        { 4, 14336, 4096, false, { 64, 128 } },
        { 4, 14336, 4096, true, { 17, 100 } },
        { 8, 14336, 4096, false, { 16, 64 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, cases[i].bits, 128, cases[i].act, i % 2 ? Z_INT : Z_SYM, cases[i].in,
                cases[i].out);
        for (int j = 0; j < 2; j++)
            wq_check_sampled(&L, cases[i].n[j], PGD_CUDA_QPATH_AUTO, j == 1, 5);
        wq_check_sampled(&L, 1, PGD_CUDA_QPATH_AUTO, true, 1);
        wq_check_sampled(&L, 6, PGD_CUDA_QPATH_GEMV, false, 6);
        wq_fini(&L);
    }
}

/* The folded Hopper GEMM (PGD_CUDA_QPATH_GEMM_FOLD; the automatic choice from 17 to 256 rows
 * in the mma layout where it runs): every token tile (64, 128, 192, 256) and split (1, 2, 3, 8
 * blocks, and the automatic pick) over odd shapes: features not a multiple of 128 or 16 (the
 * mma layout's padded tile), groups of 64, 128 and 192 inputs and per-channel, splits ending
 * inside a group, token tiles partly past n, act-order (x gathered) and an x not 16-byte
 * aligned, both dtypes, with and without bias; a whole 8B layer (gate_up, 28,672 x 4,096) at 300 rows; the
 * automatic plan at 16 / 17 / 256 / 257 rows. A layer it cannot run (groups of 32) is refused
 * with 2. On a device without the sm_90a kernel every call answers 2: the test skips, saying
 * so. */
GPU_TEST(wq_gemm_fold_path)
{
    struct { int group, in, out; bool act; int zeros; } cases[] = {
        { 128, 1024, 200, true, Z_INT },
        { 64, 4160, 40, false, Z_SYM },
        { -1, 1024, 72, false, Z_INT },
        { 192, 3072, 136, false, Z_INT },
        { 128, 14336, 264, true, Z_SYM },
    };
    static const int NS_FOLD[7] = { 1, 17, 64, 100, 256, 300, 513 };
    static const char *BN[5] = { "64", "128", "192", "256", NULL };
    static const char *KS[5] = { "1", "2", "3", "8", NULL };
    char err[512] = "";
    {
        struct wq_layer L;
        wq_init(&L, 4, 32, false, Z_INT, 1024, 64);
        void *dx = pgd_cuda_malloc((size_t)64 * 1024 * 2);
        void *dy = pgd_cuda_malloc((size_t)64 * 64 * 2);
        const int rc = pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, PGD_DTYPE_BF16, dx,
                                               64, L.d, NULL, dy, err, sizeof err);
        cr_assert_eq(rc, 2, "%s: the folded GEMM of groups of 32 answered %d (%s)", L.name, rc,
                     err);
        cr_assert(strstr(err, "group 32") != NULL, "the refusal names the group: %s", err);
        pgd_cuda_free(dx); pgd_cuda_free(dy);
        wq_fini(&L);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wq_layer L;
        wq_init(&L, 4, cases[i].group, cases[i].act, cases[i].zeros, cases[i].in, cases[i].out);
        void *dx = pgd_cuda_malloc((size_t)16 * L.in * 2);
        void *dy = pgd_cuda_malloc((size_t)16 * L.out * 2);
        const int rc = pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, PGD_DTYPE_BF16, dx,
                                               16, L.d, NULL, dy, err, sizeof err);
        pgd_cuda_free(dx); pgd_cuda_free(dy);
        if (rc == 2) {
            wq_fini(&L);
            cr_skip_test("the folded GEMM does not run here: %s", err);
        }
        cr_assert_eq(rc, 0, "%s: %s", L.name, err);
        for (int b = 0; b < 5; b++) {
            env_set("PGD_CUDA_WQ_FOLD_BN", BN[b]);
            for (int k = 0; k < 5; k++) {
                env_set("PGD_CUDA_WQ_FOLD_KS", KS[k]);
                for (int j = 0; j < 7; j++) {
                    if ((j + k + b + (int)i) % 3)    /* a third of the n a combination */
                        continue;
                    const int n = NS_FOLD[j];
                    if (L.in >= 8192)
                        wq_check_sampled(&L, n, PGD_CUDA_QPATH_GEMM_FOLD, (j + k) % 2 == 0, 9);
                    else
                        wq_check_at(&L, DTS[(j + b) % 2], n, PGD_CUDA_QPATH_GEMM_FOLD,
                                    (j + k) % 2 == 0, (j + b + k) % 4 == 1);
                }
            }
        }
        unsetenv("PGD_CUDA_WQ_FOLD_BN");
        unsetenv("PGD_CUDA_WQ_FOLD_KS");
        if (fold_default()) {        /* the automatic path: the fold from 17 to 256 rows */
            static const int AUTO_N[4] = { 16, 17, 256, 257 };
            for (int j = 0; j < 4; j++) {
                char plan[64] = "";
                pgd_cuda_wq_auto_plan(ctx, L.d, AUTO_N[j], plan, sizeof plan);
                const bool fold = AUTO_N[j] >= 17 && AUTO_N[j] <= 256;
                cr_expect(fold ? !strncmp(plan, "fold", 4) : strncmp(plan, "fold", 4) != 0,
                          "%s at %d rows: the automatic plan is %s", L.name, AUTO_N[j], plan);
            }
            if (L.in < 8192)
                wq_check(&L, PGD_DTYPE_F16, 100, PGD_CUDA_QPATH_AUTO, true);
        }
        wq_fini(&L);
    }
    struct wq_layer L;
    wq_init(&L, 4, 128, false, Z_INT, 4096, 28672);
    wq_check_sampled(&L, 300, PGD_CUDA_QPATH_GEMM_FOLD, true, 5);
    wq_fini(&L);
}

/* The warp-specialized fold (PGD_CUDA_WQ_FOLD_WS=1: a producer warpgroup's copies handed
 * over on mbarriers) runs the same wgmmas in the same order as the plain fold: every output
 * bit-equal to it, for every token tile and split forced (the stage loop's buffers reused
 * several rounds: 64-input stages over 1,024 to 14,336 inputs), rows inside one tile and over
 * several, tiles partly past n, features not a multiple of 128, per-channel and act-order
 * layers, both dtypes; and against the reference itself, with its automatic plan, on a whole
 * 8B gate_up at 256 rows. Skips where the fold does not run. */
GPU_TEST(wq_gemm_fold_ws_is_the_folds_bits)
{
    struct { int group, in, out; bool act; int zeros; } cases[] = {
        { 128, 1024, 200, true, Z_INT },
        { -1, 3072, 72, false, Z_SYM },
        { 128, 14336, 264, false, Z_INT },
    };
    static const int NS_WS[5] = { 1, 17, 100, 256, 300 };
    static const char *BN[4] = { "64", "128", "192", "256" };
    static const char *KS[4] = { "1", "2", "3", "8" };
    char err[512] = "";
    if (!pgd_cuda_wq_fold_available(0))
        cr_skip_test("the folded GEMM does not run here (no sm_90a device or code)");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct wq_layer L;
        wq_init(&L, 4, cases[c].group, cases[c].act, cases[c].zeros, cases[c].in, cases[c].out);
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 5; j++) {
                    if ((j + k + b + (int)c) % 2)    /* half the n a combination */
                        continue;
                    const int n = NS_WS[j], in = L.in, out = L.out;
                    const enum pgd_dtype dt = DTS[(j + b) % 2];
                    setenv("PGD_CUDA_WQ_FOLD_BN", BN[b], 1);
                    setenv("PGD_CUDA_WQ_FOLD_KS", KS[k], 1);
                    float *x = rand_vals((size_t)n * in, 1, dt);
                    void *dx = upload(x, (size_t)n * in, dt);
                    void *dy[2];
                    for (int v = 0; v < 2; v++) {
                        dy[v] = poisoned((size_t)n * out, dt);
                        setenv("PGD_CUDA_WQ_FOLD_WS", v ? "1" : "0", 1);
                        CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, n,
                                                         L.d, NULL, dy[v], err, sizeof err));
                    }
                    char what[256];
                    snprintf(what, sizeof what, "%s, %s x [%d, %d], token tile %s, inputs split "
                             "%s: warp-specialized against the plain fold", L.name,
                             pgd_dtype_name(dt), n, in, BN[b], KS[k]);
                    expect_same_dev(what, dy[0], dy[1], (size_t)n * out, dt);
                    free(x);
                    pgd_cuda_free(dx);
                    for (int v = 0; v < 2; v++)
                        pgd_cuda_free(dy[v]);
                }
        unsetenv("PGD_CUDA_WQ_FOLD_BN");
        unsetenv("PGD_CUDA_WQ_FOLD_KS");
        setenv("PGD_CUDA_WQ_FOLD_WS", "1", 1);
        wq_check(&L, PGD_DTYPE_BF16, 100, PGD_CUDA_QPATH_GEMM_FOLD, true);
        unsetenv("PGD_CUDA_WQ_FOLD_WS");
        wq_fini(&L);
    }
    struct wq_layer L;
    wq_init(&L, 4, 128, false, Z_INT, 4096, 28672);
    setenv("PGD_CUDA_WQ_FOLD_WS", "1", 1);
    char plan[64] = "";
    pgd_cuda_wq_auto_plan(ctx, L.d, 256, plan, sizeof plan);
    cr_expect(!fold_default() || !strncmp(plan, "fold-ws", 7),
              "%s at 256 rows, PGD_CUDA_WQ_FOLD_WS=1: the automatic plan is %s", L.name, plan);
    wq_check_sampled(&L, 256, PGD_CUDA_QPATH_AUTO, true, 5);
    unsetenv("PGD_CUDA_WQ_FOLD_WS");
    wq_fini(&L);
}

/* The fold's A fragments are the dequantized weights rounded once to the dtype, bit for bit
 * (quant_wq_gemm.cuh's scale_pair: bf16 takes the fp16 scale as a truncated high part and an
 * exact low part, one fma; fp16 one multiply): x of one-hot rows (row r: 1 at input r)
 * leaves y[r, o] the weight of (o, r), the only nonzero product of its sum, against
 * pgd_cpu_wq_dequantize's float32 (q - zero) * scale rounded to the dtype. Both dtypes,
 * every token tile, unsplit and split, zeros 0..16 (q - zero from -16 to 15), scales of
 * every fp16 mantissa, a third of them negative. Skips where the fold does not run. */
GPU_TEST(wq_fold_weights_are_the_rounded_dequantized_ones)
{
    if (!pgd_cuda_wq_fold_available(0))
        cr_skip_test("the folded GEMM does not run here (no sm_90a device or code)");
    static const char *BN[4] = { "64", "128", "192", "256" }, *KS[2] = { "1", "2" };
    enum { IN = 256, OUT = 136 };
    char err[512] = "";
    struct wq_layer L;
    wq_init(&L, 4, 128, false, Z_INT, IN, OUT);
    for (size_t i = 0; i < (size_t)(IN / 128) * OUT; i += 3)
        L.scales[i] = -L.scales[i];
    pgd_cpu_wq_dequantize(&L.h, L.w);
    pgd_cuda_wq_destroy(L.d);
    CHECK_RC(pgd_cuda_wq_create(&L.h, NULL, &L.d, err, sizeof err));
    float *x = calloc((size_t)IN * IN, sizeof *x);
    for (int r = 0; r < IN; r++)
        x[(size_t)r * IN + r] = 1.0f;
    for (int t = 0; t < 2; t++) {
        const enum pgd_dtype dt = DTS[t];
        void *dx = upload(x, (size_t)IN * IN, dt), *dy = pgd_cuda_malloc((size_t)IN * OUT * 2);
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 2; k++) {
                env_set("PGD_CUDA_WQ_FOLD_BN", BN[b]);
                env_set("PGD_CUDA_WQ_FOLD_KS", KS[k]);
                CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, IN, L.d,
                                                 NULL, dy, err, sizeof err));
                float *got = download(dy, (size_t)IN * OUT, dt);
                int bad = 0, first_r = -1, first_o = -1;
                for (int r = 0; r < IN; r++)
                    for (int o = 0; o < OUT; o++)
                        if (got[(size_t)r * OUT + o] != round_to(L.w[(size_t)o * IN + r], dt) &&
                            bad++ == 0) {
                            first_r = r;
                            first_o = o;
                        }
                cr_expect_eq(bad, 0, "%s, %s, token tile %s, split %s: %d of %d weights differ "
                             "from the dequantized ones rounded, first (out %d, in %d): %g "
                             "against %g", L.name, pgd_dtype_name(dt), BN[b], KS[k], bad,
                             IN * OUT, first_o, first_r,
                             bad ? got[(size_t)first_r * OUT + first_o] : 0.0,
                             bad ? round_to(L.w[(size_t)first_o * IN + first_r], dt) : 0.0);
                free(got);
            }
        pgd_cuda_free(dx);
        pgd_cuda_free(dy);
    }
    unsetenv("PGD_CUDA_WQ_FOLD_BN");
    unsetenv("PGD_CUDA_WQ_FOLD_KS");
    free(x);
    wq_fini(&L);
}

/* A graph of one call of pgd_cuda_wq_linear_path (path, n rows of L from dx into dy, no
 * bias), captured on the test's context; the caller destroys it. */
static struct pgd_cuda_graph *wq_capture(const struct wq_layer *L, int path, enum pgd_dtype dt,
                                         const void *dx, int n, void *dy)
{
    char err[512] = "";
    struct pgd_cuda_graph *g = NULL;
    CHECK_RC(pgd_cuda_capture_begin(ctx, err, sizeof err));
    int rc = pgd_cuda_wq_linear_path(ctx, path, dt, dx, n, L->d, NULL, dy, err, sizeof err);
    if (rc)
        pgd_cuda_capture_abort(ctx);
    CHECK_RC(rc);
    CHECK_RC(pgd_cuda_capture_end(ctx, &g, err, sizeof err));
    return g;
}

/* n rows of L (x: the device buffer dx) through the folded GEMM with the switch `var` at "0"
 * and then at "1" (the plan as the caller's environment forces it): the two outputs
 * bit-equal; `what` names the case. Leaves `var` at "1". */
static void fold_same_bits_either_way(const struct wq_layer *L, enum pgd_dtype dt,
                                      const void *dx, int n, const char *var, const char *what)
{
    char err[512] = "";
    void *dy[2];
    for (int v = 0; v < 2; v++) {
        dy[v] = poisoned((size_t)n * L->out, dt);
        setenv(var, v ? "1" : "0", 1);
        CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, n, L->d, NULL,
                                         dy[v], err, sizeof err));
    }
    expect_same_dev(what, dy[0], dy[1], (size_t)n * L->out, dt);
    pgd_cuda_free(dy[0]);
    pgd_cuda_free(dy[1]);
}

/* The folded GEMM's x rows past n predicated off (PGD_CUDA_WQ_FOLD_XSKIP=1: their buffer
 * rows keep whatever an earlier stage or launch left, garbage whose products land in
 * outputs never written) rather than copied from row n - 1: every output bit-equal, both
 * kernels, every token tile, unsplit and split, at rows that leave a tile part-empty. Skips
 * where the fold does not run. */
GPU_TEST(wq_fold_rows_past_n_skipped_same_bits)
{
    if (!pgd_cuda_wq_fold_available(0))
        cr_skip_test("the folded GEMM does not run here (no sm_90a device or code)");
    static const int NS_X[4] = { 17, 100, 150, 255 };
    static const char *BN[4] = { "64", "128", "192", "256" }, *KS[2] = { "1", "3" };
    struct wq_layer L;
    setenv("PGD_CUDA_WQ_FOLD_TMA", "0", 1);   /* x by cp.async copies: their rows past n */
    wq_init(&L, 4, 128, true, Z_INT, 2048, 264);
    for (int j = 0; j < 4; j++) {
        const int n = NS_X[j];
        const enum pgd_dtype dt = DTS[j % 2];
        float *x = rand_vals((size_t)n * L.in, 1, dt);
        void *dx = upload(x, (size_t)n * L.in, dt);
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 2; k++)
                for (int ws = 0; ws < 2; ws++) {
                    setenv("PGD_CUDA_WQ_FOLD_BN", BN[b], 1);
                    setenv("PGD_CUDA_WQ_FOLD_KS", KS[k], 1);
                    setenv("PGD_CUDA_WQ_FOLD_WS", ws ? "1" : "0", 1);
                    char what[384];
                    snprintf(what, sizeof what, "%s, %s x %d rows, token tile %s, split %s%s: "
                             "rows past n skipped against copied", L.name, pgd_dtype_name(dt),
                             n, BN[b], KS[k], ws ? ", warp-specialized" : "");
                    fold_same_bits_either_way(&L, dt, dx, n, "PGD_CUDA_WQ_FOLD_XSKIP", what);
                }
        free(x);
        pgd_cuda_free(dx);
    }
    unsetenv("PGD_CUDA_WQ_FOLD_BN");
    unsetenv("PGD_CUDA_WQ_FOLD_KS");
    unsetenv("PGD_CUDA_WQ_FOLD_WS");
    setenv("PGD_CUDA_WQ_FOLD_XSKIP", "1", 1);
    wq_check(&L, PGD_DTYPE_BF16, 150, PGD_CUDA_QPATH_GEMM_FOLD, true);
    unsetenv("PGD_CUDA_WQ_FOLD_XSKIP");
    unsetenv("PGD_CUDA_WQ_FOLD_TMA");
    wq_fini(&L);
}

/* n rows of L (x: the device buffer dx) through the folded GEMM as the environment plans
 * it, eager and from a captured graph replayed over a poisoned output: bit-equal (a launch's
 * parameters, the tensor map among them, captured by value); `what` names the launch. */
static void fold_graph_same_bits(const struct wq_layer *L, enum pgd_dtype dt, const void *dx,
                                 int n, const char *what)
{
    char err[512] = "";
    void *eager = poisoned((size_t)n * L->out, dt), *dg = poisoned((size_t)n * L->out, dt);
    CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, n, L->d, NULL, eager,
                                     err, sizeof err));
    struct pgd_cuda_graph *g = wq_capture(L, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, n, dg);
    CHECK_RC(pgd_cuda_graph_launch(ctx, g, err, sizeof err));
    CHECK_RC(pgd_cuda_sync(ctx, err, sizeof err));
    char full[256];
    snprintf(full, sizeof full, "%s, %s x %d rows: %s against eager", L->name,
             pgd_dtype_name(dt), n, what);
    expect_same_dev(full, eager, dg, (size_t)n * L->out, dt);
    pgd_cuda_graph_destroy(g);
    pgd_cuda_free(eager);
    pgd_cuda_free(dg);
}

/* A fold test's start: skips where the fold does not run, fails where it runs and the driver
 * does not encode tensor maps. */
#define REQUIRE_FOLD_TMA()                                                                     \
    do {                                                                                       \
        if (!pgd_cuda_wq_fold_available(0))                                                    \
            cr_skip_test("the folded GEMM does not run here (no sm_90a device or code)");      \
        cr_assert(pgd_cuda_wq_fold_tma_available(0), "the fold runs but the driver gives no "  \
                  "cuTensorMapEncodeTiled");                                                   \
    } while (0)

/* q, k and v as one grid: [200 | 40 | 24] x 1,024 (feature tiles 2 + 1 + 1), act-order
 * with one shared permutation in the set it returns (k symmetric), w their device layers;
 * PGD_CUDA_WQ_FOLD_LAYERS=1 (one grid) until qkv_grid_free. */
static const int QKV_OUTS[3] = { 200, 40, 24 };
static struct pgd_cuda_wq_perms *qkv_grid_make(struct wq_layer Q[3],
                                               const struct pgd_cuda_wq *w[3])
{
    struct pgd_cuda_wq_perms *perms = pgd_cuda_wq_perms_create();
    for (int i = 0; i < 3; i++) {
        wq_make(&Q[i], 4, 128, true, i == 1 ? Z_SYM : Z_INT, 1024, QKV_OUTS[i],
                i > 0 ? Q[0].perm : NULL, perms);
        w[i] = Q[i].d;
    }
    setenv("PGD_CUDA_WQ_FOLD_LAYERS", "1", 1);
    return perms;
}

static void qkv_grid_free(struct pgd_cuda_wq_perms *perms, struct wq_layer Q[3])
{
    unsetenv("PGD_CUDA_WQ_FOLD_LAYERS");
    pgd_cuda_wq_perms_destroy(perms);          /* the set first: its layers keep their copy */
    for (int i = 0; i < 3; i++)
        wq_fini(&Q[i]);
}

/* q, k and v as one grid (qkv_grid_make) at each of the `count` row counts ns, through the
 * folded GEMM (the automatic
 * choice: the caller checked fold_default) with the switch `var` at "0" and then at "1" (the
 * plan as the caller's environment forces it): every layer's output bit-equal; `what` names
 * the comparison. Unsets `var`. */
static void qkv_grid_same_bits_either_way(const char *var, const int *ns, int count,
                                          const char *what)
{
    const int *OUTS = QKV_OUTS;
    char err[512] = "";
    struct wq_layer Q[3];
    const struct pgd_cuda_wq *w[3];
    struct pgd_cuda_wq_perms *perms = qkv_grid_make(Q, w);
    for (int j = 0; j < count; j++) {
        const int n = ns[j];
        const enum pgd_dtype dt = DTS[j % 2];
        char plan[64] = "";
        pgd_cuda_wq_auto_plan(ctx, Q[0].d, n, plan, sizeof plan);
        cr_assert(strncmp(plan, "fold", 4) == 0, "%d rows of [200, 1024]: the plan is %s, not "
                  "the fold", n, plan);
        float *x = rand_vals((size_t)n * 1024, 1, dt);
        void *dx = upload(x, (size_t)n * 1024, dt);
        void *dy[2][3];
        const void *const nob[3] = { NULL, NULL, NULL };
        for (int v = 0; v < 2; v++) {
            setenv(var, v ? "1" : "0", 1);
            for (int i = 0; i < 3; i++)
                dy[v][i] = poisoned((size_t)n * OUTS[i], dt);
            CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, dx, n, 3, w, nob, dy[v], err,
                                              sizeof err));
        }
        for (int i = 0; i < 3; i++) {
            char full[256];
            snprintf(full, sizeof full, "%s, %s x %d rows, layer %d of 3 in one grid: %s",
                     Q[i].name, pgd_dtype_name(dt), n, i + 1, what);
            expect_same_dev(full, dy[0][i], dy[1][i], (size_t)n * OUTS[i], dt);
            pgd_cuda_free(dy[0][i]);
            pgd_cuda_free(dy[1][i]);
        }
        free(x);
        pgd_cuda_free(dx);
    }
    unsetenv(var);
    qkv_grid_free(perms, Q);
}

/* The folded GEMM's x by the tensor copy engine (PGD_CUDA_WQ_FOLD_TMA=1, every tile; one
 * thread's bulk copy a stage through a tensor map, rows past n zero-filled by the hardware)
 * against the plain kernel's own copies (=0): every output bit-equal, every token tile,
 * unsplit and split, with and without act-order, at rows that leave a tile part-empty and
 * that fill it; q, k and v as one grid likewise; a graph captured with it replays the same
 * bits (the map is a launch parameter, captured by value); the 150-row output against the
 * reference of the weights rounded to the dtype. The warp-specialized kernel keeps its
 * copies (the switch leaves it alone). Skips where the fold does not run; fails where it
 * runs and the driver does not encode tensor maps. */
GPU_TEST(wq_fold_x_by_tma_same_bits)
{
    REQUIRE_FOLD_TMA();
    static const int NS_X[5] = { 17, 64, 150, 200, 256 };
    static const char *BN[4] = { "64", "128", "192", "256" }, *KS[2] = { "1", "3" };
    for (int ao = 0; ao < 2; ao++) {
        struct wq_layer L;
        wq_init(&L, 4, 128, ao == 1, Z_INT, 2048, 264);
        for (int j = 0; j < 5; j++) {
            const int n = NS_X[j];
            const enum pgd_dtype dt = DTS[(j + ao) % 2];
            float *x = rand_vals((size_t)n * L.in, 1, dt);
            void *dx = upload(x, (size_t)n * L.in, dt);
            for (int b = 0; b < 4; b++)
                for (int k = 0; k < 2; k++) {
                    setenv("PGD_CUDA_WQ_FOLD_BN", BN[b], 1);
                    setenv("PGD_CUDA_WQ_FOLD_KS", KS[k], 1);
                    setenv("PGD_CUDA_WQ_FOLD_WS", "0", 1);
                    char what[384];
                    snprintf(what, sizeof what, "%s, %s x %d rows, token tile %s, split %s: x by "
                             "TMA against copied", L.name, pgd_dtype_name(dt), n, BN[b], KS[k]);
                    fold_same_bits_either_way(&L, dt, dx, n, "PGD_CUDA_WQ_FOLD_TMA", what);
                }
            unsetenv("PGD_CUDA_WQ_FOLD_BN");
            unsetenv("PGD_CUDA_WQ_FOLD_KS");
            unsetenv("PGD_CUDA_WQ_FOLD_WS");
            fold_graph_same_bits(&L, dt, dx, n, "a captured TMA launch");
            unsetenv("PGD_CUDA_WQ_FOLD_TMA");
            free(x);
            pgd_cuda_free(dx);
        }
        setenv("PGD_CUDA_WQ_FOLD_TMA", "1", 1);
        wq_check(&L, PGD_DTYPE_BF16, 150, PGD_CUDA_QPATH_GEMM_FOLD, true);
        unsetenv("PGD_CUDA_WQ_FOLD_TMA");
        wq_fini(&L);
    }

    /* q, k and v as one grid, where the layers' automatic choice is the fold */
    static const int NS_QKV[3] = { 64, 150, 200 };
    if (fold_default())
        qkv_grid_same_bits_either_way("PGD_CUDA_WQ_FOLD_TMA", NS_QKV, 3,
                                      "x by TMA against copied");
}

/* One case of a switch `var` of the fold's launch ("1": its kernel, "0": the plain one) at n
 * rows of L (x: dx), token tile bn and split ks forced: where the fold is the automatic
 * choice, the plan with the switch on reads fold<bn>/<ks>/<plan_end>; the outputs either way
 * are bit-equal (`against` says what the two are in the message). Leaves `var` at "1", the
 * tile and split forced. */
static void fold_switch_case(const struct wq_layer *L, enum pgd_dtype dt, const void *dx, int n,
                             const char *bn, const char *ks, const char *var,
                             const char *plan_end, const char *against)
{
    setenv("PGD_CUDA_WQ_FOLD_BN", bn, 1);
    setenv("PGD_CUDA_WQ_FOLD_KS", ks, 1);
    if (fold_default()) {            /* the automatic path's plan is the fold's */
        char plan[64] = "", want[64];
        setenv(var, "1", 1);
        pgd_cuda_wq_auto_plan(ctx, L->d, n, plan, sizeof plan);
        snprintf(want, sizeof want, "fold%s/%s/%s", bn, ks, plan_end);
        cr_expect_str_eq(plan, want, "%s x %d rows, token tile %s, split %s: the plan is %s, "
                         "not %s", L->name, n, bn, ks, plan, want);
    }
    char what[384];
    snprintf(what, sizeof what, "%s, %s x %d rows, token tile %s, split %s: %s", L->name,
             pgd_dtype_name(dt), n, bn, ks, against);
    fold_same_bits_either_way(L, dt, dx, n, var, what);
}

/* A switch's walk at n rows of L: a random x of dtype dt, fold_switch_case over the 128-,
 * 192- and 256-token tiles and splits 1 and 3 (the plan ending in plan_end), then
 * a graph captured with the switch on (the 256-token tile, `graph_what`) replaying the
 * eager bits. Leaves the switch, the tile and the split unset. */
static void fold_switch_rows(const struct wq_layer *L, enum pgd_dtype dt, int n, const char *var,
                             const char *plan_end, const char *against, const char *graph_what)
{
    static const char *BN[3] = { "128", "192", "256" }, *KS[2] = { "1", "3" };
    float *x = rand_vals((size_t)n * L->in, 1, dt);
    void *dx = upload(x, (size_t)n * L->in, dt);
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < 2; k++)
            fold_switch_case(L, dt, dx, n, BN[b], KS[k], var, plan_end, against);
    unsetenv("PGD_CUDA_WQ_FOLD_KS");
    setenv(var, "1", 1);             /* the 256-token tile, still forced */
    fold_graph_same_bits(L, dt, dx, n, graph_what);
    unsetenv("PGD_CUDA_WQ_FOLD_BN");
    unsetenv(var);
    free(x);
    pgd_cuda_free(dx);
}

/* The plain fold reading each stage a stage ahead (the default; PGD_CUDA_WQ_FOLD_AHEAD=0
 * keeps the reads in order: a pair's first stage's barrier, word and {scale, zero} come
 * before the wait that ends the pair before it, one stage fewer loading ahead) against in
 * order: every output bit-equal, with x by TMA over the 128-, 192- and 256-token tiles,
 * unsplit and split in 3, over 32 stages (every buffer refilled several times), at rows
 * that leave a tile part-empty and full, with 8 feature tiles and with 3, with and without
 * act-order, groups of 128 and 64; the 64-token tile (its barriers in its stages) by TMA;
 * x copied, its rows past n skipped and not, 64- and 256-token tiles; the plan string says
 * "in-order" only when asked; a captured graph replays the same bits; q, k and v as one
 * grid; the 150-row output against the reference of the rounded weights. Skips where the
 * fold does not run. */
GPU_TEST(wq_fold_reads_ahead_same_bits)
{
    REQUIRE_FOLD_TMA();
    static const int NS_X[3] = { 17, 150, 256 };
    static const struct { int group, in, out; bool act; } LAYERS[3] = {
        { 128, 2048, 1000, true }, { 128, 2048, 264, false }, { 64, 2112, 264, false },
    };
    setenv("PGD_CUDA_WQ_FOLD_WS", "0", 1);
    for (int o = 0; o < 3; o++) {
        struct wq_layer L;
        wq_init(&L, 4, LAYERS[o].group, LAYERS[o].act, Z_INT, LAYERS[o].in, LAYERS[o].out);
        setenv("PGD_CUDA_WQ_FOLD_TMA", "1", 1);
        for (int j = 0; j < 3; j++)
            fold_switch_rows(&L, DTS[(j + o) % 2], NS_X[j], "PGD_CUDA_WQ_FOLD_AHEAD", "tma",
                             "reads a stage ahead against in order",
                             "a captured launch reading ahead");
        float *x = rand_vals((size_t)40 * L.in, 1, PGD_DTYPE_BF16);
        void *dx = upload(x, (size_t)40 * L.in, PGD_DTYPE_BF16);
        /* the 64-token tile by TMA, unsplit and split */
        fold_switch_case(&L, PGD_DTYPE_BF16, dx, 40, "64", "1", "PGD_CUDA_WQ_FOLD_AHEAD", "tma",
                         "reads a stage ahead against in order");
        fold_switch_case(&L, PGD_DTYPE_BF16, dx, 40, "64", "3", "PGD_CUDA_WQ_FOLD_AHEAD", "tma",
                         "reads a stage ahead against in order");
        if (fold_default()) {        /* in order, the plan says so */
            char plan[64] = "";
            setenv("PGD_CUDA_WQ_FOLD_AHEAD", "0", 1);
            pgd_cuda_wq_auto_plan(ctx, L.d, 40, plan, sizeof plan);
            cr_expect_str_eq(plan, "fold64/3/tma/in-order", "%s x 40 rows in order: the plan "
                             "is %s", L.name, plan);
        }
        /* x copied: its rows past n skipped (XS) and clamped, 64- and 256-token tiles */
        setenv("PGD_CUDA_WQ_FOLD_TMA", "0", 1);
        for (int k = 0; k < 4; k++) {
            char what[256];
            setenv("PGD_CUDA_WQ_FOLD_XSKIP", k % 2 ? "1" : "0", 1);
            setenv("PGD_CUDA_WQ_FOLD_BN", k < 2 ? "64" : "256", 1);
            setenv("PGD_CUDA_WQ_FOLD_KS", k < 2 ? "3" : "1", 1);
            snprintf(what, sizeof what, "%s x 40 rows, x copied (rows past n %s), token tile "
                     "%s: reads a stage ahead against in order", L.name,
                     k % 2 ? "skipped" : "clamped", k < 2 ? "64" : "256");
            fold_same_bits_either_way(&L, PGD_DTYPE_BF16, dx, 40, "PGD_CUDA_WQ_FOLD_AHEAD",
                                      what);
        }
        unsetenv("PGD_CUDA_WQ_FOLD_XSKIP");
        unsetenv("PGD_CUDA_WQ_FOLD_KS");
        free(x);
        pgd_cuda_free(dx);
        setenv("PGD_CUDA_WQ_FOLD_TMA", "1", 1);
        setenv("PGD_CUDA_WQ_FOLD_BN", "192", 1);
        wq_check(&L, PGD_DTYPE_BF16, 150, PGD_CUDA_QPATH_GEMM_FOLD, true);
        unsetenv("PGD_CUDA_WQ_FOLD_BN");
        unsetenv("PGD_CUDA_WQ_FOLD_AHEAD");
        wq_fini(&L);
    }
    /* q, k and v as one grid, where the layers' automatic choice is the fold */
    if (fold_default())
        qkv_grid_same_bits_either_way("PGD_CUDA_WQ_FOLD_AHEAD", NS_X + 1, 2,
                                      "reads a stage ahead against in order");
    unsetenv("PGD_CUDA_WQ_FOLD_WS");
    unsetenv("PGD_CUDA_WQ_FOLD_TMA");
}

/* The environment variable `name` set to the integer v (a plan's tile, split or blocks). */
static void setenv_int(const char *name, int v)
{
    char s[16];
    snprintf(s, sizeof s, "%d", v);
    setenv(name, s, 1);
}

/* q, k and v as one grid (qkv_grid_make) at n rows through the stream-K fold, 256-token
 * tiles: with a block a tile,
 * each layer's output bit-equal to the plain kernel's unsplit plan; with 7 blocks (parts
 * that end and start inside a tile, one in a layer and the next in another) each layer
 * against the reference of its weights rounded to the dtype. */
static void qkv_grid_stream_k(int n, enum pgd_dtype dt)
{
    const int *OUTS = QKV_OUTS;
    char err[512] = "";
    struct wq_layer Q[3];
    const struct pgd_cuda_wq *w[3];
    struct pgd_cuda_wq_perms *perms = qkv_grid_make(Q, w);
    setenv("PGD_CUDA_WQ_FOLD_BN", "256", 1);
    setenv("PGD_CUDA_WQ_FOLD_KS", "1", 1);
    float *x = rand_vals((size_t)n * 1024, 1, dt);
    void *dx = upload(x, (size_t)n * 1024, dt);
    const void *const nob[3] = { NULL, NULL, NULL };
    void *dy[3][3];                  /* plain, a block a tile, 7 blocks */
    for (int v = 0; v < 3; v++) {
        setenv("PGD_CUDA_WQ_FOLD_SK", v ? "1" : "0", 1);
        setenv_int("PGD_CUDA_WQ_FOLD_SK_BLOCKS", v == 1 ? 4 : 7);
        if (v == 0)
            unsetenv("PGD_CUDA_WQ_FOLD_SK_BLOCKS");
        for (int i = 0; i < 3; i++)
            dy[v][i] = poisoned((size_t)n * OUTS[i], dt);
        CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, dx, n, 3, w, nob, dy[v], err, sizeof err));
    }
    for (int i = 0; i < 3; i++) {
        char full[256];
        snprintf(full, sizeof full, "%s, %s x %d rows, layer %d of 3 in one grid: stream-K, a "
                 "block a tile, against the plain kernel unsplit", Q[i].name,
                 pgd_dtype_name(dt), n, i + 1);
        expect_same_dev(full, dy[0][i], dy[1][i], (size_t)n * OUTS[i], dt);
        float *got = download(dy[2][i], (size_t)n * OUTS[i], dt);
        float *want = malloc((size_t)n * OUTS[i] * sizeof *want);
        float *abs_sum = malloc((size_t)n * OUTS[i] * sizeof *abs_sum);
        reference(x, Q[i].w_dt[dt == PGD_DTYPE_BF16 ? 0 : 1], NULL, n, 1024, OUTS[i], want,
                  abs_sum);
        snprintf(full, sizeof full, "%s, %s x [%d, 1024], layer %d of 3 in one grid, stream-K "
                 "in 7 blocks", Q[i].name, pgd_dtype_name(dt), n, i + 1);
        expect_close(full, "fold", got, want, abs_sum, NULL, n, OUTS[i], dt);
        free(got);
        free(want);
        free(abs_sum);
        for (int v = 0; v < 3; v++)
            pgd_cuda_free(dy[v][i]);
    }
    free(x);
    pgd_cuda_free(dx);
    unsetenv("PGD_CUDA_WQ_FOLD_BN");
    unsetenv("PGD_CUDA_WQ_FOLD_KS");
    unsetenv("PGD_CUDA_WQ_FOLD_SK");
    unsetenv("PGD_CUDA_WQ_FOLD_SK_BLOCKS");
    qkv_grid_free(perms, Q);
}

/* The stream-K fold (PGD_CUDA_WQ_FOLD_SK=1: one block an SM, each an equal run of all the
 * launch's stages, tile after tile; PGD_CUDA_WQ_FOLD_SK_BLOCKS forces the count). Where each
 * block takes whole tiles (a block a tile, and one block for all: its pipeline runs on from
 * each tile into the next) the outputs are the plain kernel's unsplit bits. Where blocks cut
 * tiles into parts (three blocks a tile and more, counts that end inside a tile, 5 blocks over
 * many tiles) they match the reference of the rounded weights with a bias, and a graph
 * captured replays the eager bits (a launch leaves its flags zero for the next); 128-, 192-
 * and 256-token tiles over 32 and 33 stages, 8 and 3 feature tiles, act-order, groups of 128
 * and 64; q, k and v as one grid; the plan string; the default blocks. Skips where the fold
 * does not run. */
GPU_TEST(wq_fold_stream_k)
{
    REQUIRE_FOLD_TMA();
    static const struct { int group, in, out; bool act; } LAYERS[3] = {
        { 128, 2048, 1000, true }, { 128, 2048, 264, false }, { 64, 2112, 264, false },
    };
    static const int NS_X[2] = { 150, 256 }, BNS[3] = { 128, 192, 256 };
    setenv("PGD_CUDA_WQ_FOLD_WS", "0", 1);
    setenv("PGD_CUDA_WQ_FOLD_KS", "1", 1);
    for (int o = 0; o < 3; o++) {
        struct wq_layer L;
        wq_init(&L, 4, LAYERS[o].group, LAYERS[o].act, Z_INT, LAYERS[o].in, LAYERS[o].out);
        for (int j = 0; j < 2; j++) {
            const int n = NS_X[j];
            const enum pgd_dtype dt = DTS[(j + o) % 2];
            float *x = rand_vals((size_t)n * L.in, 1, dt);
            void *dx = upload(x, (size_t)n * L.in, dt);
            for (int b = 0; b < 3; b++) {
                const int bn = BNS[b], tiles = (L.out + 127) / 128 * ((n + bn - 1) / bn);
                char what[384];
                setenv_int("PGD_CUDA_WQ_FOLD_BN", bn);
                const int whole[2] = { tiles, 1 };
                for (int w = 0; w < 2; w++) {
                    setenv_int("PGD_CUDA_WQ_FOLD_SK_BLOCKS", whole[w]);
                    snprintf(what, sizeof what, "%s, %s x %d rows, token tile %d: stream-K in "
                             "%d blocks (%d tiles) against the plain kernel unsplit", L.name,
                             pgd_dtype_name(dt), n, bn, whole[w], tiles);
                    fold_same_bits_either_way(&L, dt, dx, n, "PGD_CUDA_WQ_FOLD_SK", what);
                }
                const int parts[3] = { 3 * tiles, 2 * tiles + 1, 5 };
                for (int p = 0; p < 3; p++) {
                    setenv_int("PGD_CUDA_WQ_FOLD_SK_BLOCKS", parts[p]);
                    wq_check(&L, dt, n, PGD_CUDA_QPATH_GEMM_FOLD, true);
                    snprintf(what, sizeof what, "stream-K in %d blocks (%d tiles, token tile "
                             "%d)", parts[p], tiles, bn);
                    fold_graph_same_bits(&L, dt, dx, n, what);
                }
            }
            unsetenv("PGD_CUDA_WQ_FOLD_SK_BLOCKS");
            free(x);
            pgd_cuda_free(dx);
        }
        /* the default blocks (one an SM, at least 8 stages each), and the plan string */
        setenv("PGD_CUDA_WQ_FOLD_BN", "256", 1);
        wq_check(&L, PGD_DTYPE_BF16, 256, PGD_CUDA_QPATH_GEMM_FOLD, true);
        if (fold_default()) {
            char plan[64] = "";
            pgd_cuda_wq_auto_plan(ctx, L.d, 256, plan, sizeof plan);
            cr_expect(!strncmp(plan, "fold-sk256/", 11) && strstr(plan, "/tma"),
                      "%s x 256 rows, stream-K forced: the plan is %s", L.name, plan);
        }
        unsetenv("PGD_CUDA_WQ_FOLD_BN");
        unsetenv("PGD_CUDA_WQ_FOLD_SK");
        wq_fini(&L);
    }
    unsetenv("PGD_CUDA_WQ_FOLD_KS");
    if (fold_default()) {
        qkv_grid_stream_k(150, PGD_DTYPE_BF16);
        qkv_grid_stream_k(256, PGD_DTYPE_F16);
    }
    unsetenv("PGD_CUDA_WQ_FOLD_WS");
}

/* n rows of L through the automatic path into a new device buffer (x and b device buffers). */
static void *wq_auto_out(const struct wq_layer *L, enum pgd_dtype dt, const void *dx,
                         const void *db, int n)
{
    char err[512] = "";
    void *dy = poisoned((size_t)n * L->out, dt);
    CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_AUTO, dt, dx, n, L->d, db, dy, err,
                                     sizeof err));
    return dy;
}

/* The folded GEMM's plan chosen by timing (quant_wq_fold_tune.cu). The first automatic call
 * of a dtype and 64-row bucket past 64 rows outside a capture times the plans and keeps one:
 * 100 and 128 rows share a timing, 200 and 256 another, 64 rows (the model's plan) none, and
 * each call is right (against the weights rounded to the dtype). The plan the speed probe
 * reports, forced through the environment (token tile, split, kernel, a block alone on an
 * SM), gives the automatic call's very bits. A graph capture of a bucket not yet timed times
 * nothing (and records one launch), and so does a context with tuning off. Skips where the
 * fold is not the automatic choice. */
GPU_TEST(wq_fold_plan_chosen_by_timing)
{
    if (!fold_default())
        cr_skip_test("the folded GEMM is not the automatic choice here (no sm_90a device or "
                     "code, or PGD_CUDA_WQ_FOLD_MIN_N / MAX_N set)");
    struct wq_layer L;
    wq_init(&L, 4, 128, false, Z_INT, 2048, 392);
    const struct { enum pgd_dtype dt; int n, timed; } calls[5] = {
        { PGD_DTYPE_BF16, 64, 0 }, { PGD_DTYPE_BF16, 100, 1 }, { PGD_DTYPE_BF16, 128, 1 },
        { PGD_DTYPE_F16, 200, 2 }, { PGD_DTYPE_F16, 256, 2 },
    };
    cr_assert_eq(pgd_cuda_wq_fold_tune_stats(ctx, NULL), 0, "a new context has timed plans");
    for (int i = 0; i < 5; i++) {
        wq_check(&L, calls[i].dt, calls[i].n, PGD_CUDA_QPATH_AUTO, i % 2 == 0);
        double ms = -1;
        const int timed = pgd_cuda_wq_fold_tune_stats(ctx, &ms);
        cr_expect_eq(timed, calls[i].timed, "%s x %d rows: %d timings so far, expected %d",
                     pgd_dtype_name(calls[i].dt), calls[i].n, timed, calls[i].timed);
        cr_expect(calls[i].timed == 0 || ms > 0, "the timings took %g ms of the host", ms);
    }
    for (int i = 0; i < 2; i++) {    /* the records: 100 rows bf16, 200 rows fp16 */
        struct pgd_cuda_wq_fold_tune_info t;
        cr_assert_eq(pgd_cuda_wq_fold_tune_get(ctx, i, &t), 0, "timing %d not recorded", i);
        const int n = calls[1 + 2 * i].n;
        cr_expect(t.in == L.in && t.out == L.out && t.layers == 1 && t.n == n &&
                      t.bucket == (n + 63) / 64 && t.dt == calls[1 + 2 * i].dt,
                  "timing %d: grid %d -> %d x %d, %d rows, bucket %d, %s", i, t.in, t.out,
                  t.layers, t.n, t.bucket, pgd_dtype_name(t.dt));
        cr_expect(t.timed > 1 && t.best_us > 0 && t.best_us <= t.first_us,
                  "timing %d: %d plans timed, the first %.1f us, the chosen %.1f", i, t.timed,
                  t.first_us, t.best_us);
    }
    cr_expect(pgd_cuda_wq_fold_tune_get(ctx, 2, &(struct pgd_cuda_wq_fold_tune_info){ 0 }) != 0,
              "a third timing recorded");
    char err[512] = "";
    for (int i = 1; i < 5; i += 2) {
        const enum pgd_dtype dt = calls[i].dt;
        const int n = calls[i].n;
        char plan[64] = "";
        pgd_cuda_wq_auto_plan(ctx, L.d, n, plan, sizeof plan);
        int bn = 0, ks = 0;          /* stream-K: "fold-sk<bn>/<blocks>", unsplit */
        const bool ws = !strncmp(plan, "fold-ws", 7), sk = !strncmp(plan, "fold-sk", 7);
        cr_assert_eq(sscanf(plan + (ws || sk ? 7 : 4), "%d/%d", &bn, &ks), 2, "plan %s", plan);
        const int blocks = sk ? ks : 0;
        ks = sk ? 1 : ks;
        const bool one = strstr(plan, "/1sm") != NULL;
        struct pgd_cuda_wq_fold_tune_info t;
        cr_assert_eq(pgd_cuda_wq_fold_tune_get(ctx, i / 2, &t), 0, "no record %d", i / 2);
        cr_expect(t.bn == bn && t.ks == ks && t.ws == ws && t.one == one && t.sk == sk,
                  "%d rows: the probe reports %s, the record %s%d/%d%s", n, plan,
                  t.sk ? "sk" : t.ws ? "ws" : "plain", t.bn, t.ks, t.one ? "/1sm" : "");
        float *x = rand_vals((size_t)n * L.in, 1, dt), *b = rand_vals((size_t)L.out, 0.5f, dt);
        void *dx = upload(x, (size_t)n * L.in, dt), *db = upload(b, (size_t)L.out, dt);
        void *dy = wq_auto_out(&L, dt, dx, db, n), *forced = poisoned((size_t)n * L.out, dt);
        setenv_int("PGD_CUDA_WQ_FOLD_BN", bn);
        setenv_int("PGD_CUDA_WQ_FOLD_KS", ks);
        setenv("PGD_CUDA_WQ_FOLD_WS", ws ? "1" : "0", 1);
        setenv("PGD_CUDA_WQ_FOLD_ONE_BLOCK", one ? "1" : "0", 1);
        setenv("PGD_CUDA_WQ_FOLD_SK", sk ? "1" : "0", 1);
        if (sk)
            setenv_int("PGD_CUDA_WQ_FOLD_SK_BLOCKS", blocks);
        CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, n, L.d, db,
                                         forced, err, sizeof err));
        unsetenv("PGD_CUDA_WQ_FOLD_BN");
        unsetenv("PGD_CUDA_WQ_FOLD_KS");
        unsetenv("PGD_CUDA_WQ_FOLD_WS");
        unsetenv("PGD_CUDA_WQ_FOLD_ONE_BLOCK");
        unsetenv("PGD_CUDA_WQ_FOLD_SK");
        unsetenv("PGD_CUDA_WQ_FOLD_SK_BLOCKS");
        char what[384];
        snprintf(what, sizeof what, "%s, %s x %d rows: the timed plan %s forced", L.name,
                 pgd_dtype_name(dt), n, plan);
        expect_same_dev(what, forced, dy, (size_t)n * L.out, dt);
        free(x);
        free(b);
        pgd_cuda_free(dx);
        pgd_cuda_free(db);
        pgd_cuda_free(dy);
        pgd_cuda_free(forced);
    }
    /* a capture of 150 rows (a bucket not yet timed): the model's plan, nothing timed */
    const int n = 150;
    void *dx = poisoned((size_t)n * L.in, PGD_DTYPE_BF16), *dy = poisoned((size_t)n * L.out,
                                                                          PGD_DTYPE_BF16);
    struct pgd_cuda_graph *g = wq_capture(&L, PGD_CUDA_QPATH_AUTO, PGD_DTYPE_BF16, dx, n, dy);
    cr_expect_eq(pgd_cuda_graph_nodes(g), 1, "the captured fold recorded %zu nodes",
                 pgd_cuda_graph_nodes(g));
    pgd_cuda_graph_destroy(g);
    cr_expect_eq(pgd_cuda_wq_fold_tune_stats(ctx, NULL), 2, "a capture timed plans");
    pgd_cuda_gemm_tune_set(ctx, 0);
    wq_check(&L, PGD_DTYPE_BF16, 150, PGD_CUDA_QPATH_AUTO, false);
    cr_expect_eq(pgd_cuda_wq_fold_tune_stats(ctx, NULL), 2, "tuning off, a call timed plans");
    pgd_cuda_gemm_tune_set(ctx, 1);
    wq_check(&L, PGD_DTYPE_BF16, 150, PGD_CUDA_QPATH_AUTO, false);
    cr_expect_eq(pgd_cuda_wq_fold_tune_stats(ctx, NULL), 3, "tuning back on, 150 rows' bucket "
                 "was not timed");
    pgd_cuda_free(dx);
    pgd_cuda_free(dy);
    wq_fini(&L);
}

/* q, k and v as one grid of the folded GEMM (linear_multi past the GEMV, where each layer's
 * own automatic choice is the fold): every output bit-equal to the layer's own fold launch
 * with the same token tile and split forced (a block computes the same tile either way),
 * plain and warp-specialized; layers whose last feature tiles are part-empty ([200 | 40 |
 * 24] x 1,024) and the 8B shapes ([4,096 | 1,024 | 1,024] x 4,096), without act-order and
 * with one shared permutation (x gathered once), both dtypes, with and without bias, 17 to
 * 256 rows. A graph capture records one launch (and the gather) with PGD_CUDA_WQ_FOLD_LAYERS
 * 1, a launch (and a gather) a layer with 0; the automatic plan against the reference of the
 * weights rounded to the dtype. Skips where the fold is not the automatic choice. */
GPU_TEST(wq_linear_multi_fold_one_grid)
{
    if (!fold_default())
        cr_skip_test("the folded GEMM is not the automatic choice here (no sm_90a device or "
                     "code, or PGD_CUDA_WQ_FOLD_MIN_N / MAX_N set)");
    static const int O_ODD[3] = { 200, 40, 24 }, O_8B[3] = { 4096, 1024, 1024 };
    const struct { int in; const int *outs; int act; } cases[] = {
        { 1024, O_ODD, ACT_NONE }, { 1024, O_ODD, ACT_SHARED },
        { 4096, O_8B, ACT_NONE }, { 4096, O_8B, ACT_SHARED },
    };
    static const int NS[4] = { 17, 64, 100, 256 };
    static const char *BN[4] = { "64", "128", "192", "256" }, *KS[3] = { "1", "2", "5" };
    char err[512] = "";
    for (int c = 0; c < 4; c++) {
        const int in = cases[c].in, act = cases[c].act, *outs = cases[c].outs;
        struct pgd_cuda_wq_perms *perms = act == ACT_SHARED ? pgd_cuda_wq_perms_create() : NULL;
        struct wq_layer L[3];
        const struct pgd_cuda_wq *w[3];
        for (int i = 0; i < 3; i++) {
            wq_make(&L[i], 4, 128, act == ACT_SHARED, i == 1 ? Z_SYM : Z_INT, in, outs[i],
                    i > 0 && act == ACT_SHARED ? L[0].perm : NULL, perms);
            w[i] = L[i].d;
        }
        for (int j = 0; j < 4; j++) {
            const int n = NS[j];
            const enum pgd_dtype dt = DTS[(c + j) % 2];
            const bool bias = (c + j) % 2 == 0;
            float *x = rand_vals((size_t)n * in, 1, dt);
            void *dx = upload(x, (size_t)n * in, dt);
            void *db[3] = { NULL, NULL, NULL }, *dy[3], *own[3];
            for (int i = 0; i < 3; i++) {
                float *b = bias ? rand_vals((size_t)outs[i], 0.5f, dt) : NULL;
                db[i] = b ? upload(b, (size_t)outs[i], dt) : NULL;
                free(b);
            }
            setenv("PGD_CUDA_WQ_FOLD_LAYERS", "1", 1);
            for (int ws = 0; ws < 2; ws++) {
                const char *bn = BN[(j + ws + c) % 4], *ks = KS[(j + c + ws) % 3];
                setenv("PGD_CUDA_WQ_FOLD_WS", ws ? "1" : "0", 1);
                setenv("PGD_CUDA_WQ_FOLD_BN", bn, 1);
                setenv("PGD_CUDA_WQ_FOLD_KS", ks, 1);
                for (int i = 0; i < 3; i++) {
                    dy[i] = poisoned((size_t)n * outs[i], dt);
                    own[i] = poisoned((size_t)n * outs[i], dt);
                    CHECK_RC(pgd_cuda_wq_linear_path(ctx, PGD_CUDA_QPATH_GEMM_FOLD, dt, dx, n,
                                                     w[i], db[i], own[i], err, sizeof err));
                }
                CHECK_RC(pgd_cuda_wq_linear_multi(ctx, dt, dx, n, 3, w, (const void *const *)db,
                                                  dy, err, sizeof err));
                for (int i = 0; i < 3; i++) {
                    char what[256];
                    snprintf(what, sizeof what, "%s, %s x [%d, %d]%s%s, layer %d of 3 in one "
                             "grid, token tile %s, split %s%s: against its own launch",
                             L[i].name, pgd_dtype_name(dt), n, in, bias ? " + bias" : "",
                             act == ACT_SHARED ? ", one shared permutation" : "", i + 1, bn, ks,
                             ws ? ", warp-specialized" : "");
                    expect_same_dev(what, own[i], dy[i], (size_t)n * outs[i], dt);
                    pgd_cuda_free(dy[i]);
                    pgd_cuda_free(own[i]);
                }
            }
            unsetenv("PGD_CUDA_WQ_FOLD_WS");
            unsetenv("PGD_CUDA_WQ_FOLD_BN");
            unsetenv("PGD_CUDA_WQ_FOLD_KS");
            for (int i = 0; i < 3; i++)
                dy[i] = poisoned((size_t)n * outs[i], dt);
            const size_t gather = act == ACT_SHARED;
            setenv("PGD_CUDA_WQ_FOLD_LAYERS", "1", 1);
            size_t nodes = wq_multi_graph_nodes(dt, dx, n, w, db, dy);
            cr_expect_eq(nodes, 1 + gather, "x [%d, %d]%s: one grid recorded %zu nodes", n, in,
                         gather ? ", act-order" : "", nodes);
            setenv("PGD_CUDA_WQ_FOLD_LAYERS", "0", 1);
            nodes = wq_multi_graph_nodes(dt, dx, n, w, db, dy);
            unsetenv("PGD_CUDA_WQ_FOLD_LAYERS");
            cr_expect_eq(nodes, 3 * (1 + gather), "x [%d, %d]%s, PGD_CUDA_WQ_FOLD_LAYERS=0: "
                         "recorded %zu nodes", n, in, gather ? ", act-order" : "", nodes);
            for (int i = 0; i < 3; i++) {
                pgd_cuda_free(dy[i]);
                pgd_cuda_free(db[i]);
            }
            pgd_cuda_free(dx);
            free(x);
        }
        pgd_cuda_wq_perms_destroy(perms);
        for (int i = 0; i < 3; i++)
            wq_fini(&L[i]);
    }
    setenv("PGD_CUDA_WQ_FOLD_LAYERS", "1", 1);
    wq_multi_case(128, 1024, O_ODD, ACT_SHARED, 100, PGD_DTYPE_BF16, true);
    wq_multi_case(128, 4096, O_8B, ACT_NONE, 64, PGD_DTYPE_F16, false);
    unsetenv("PGD_CUDA_WQ_FOLD_LAYERS");
}

/* ---- FP8 ---------------------------------------------------------------------------------- */
struct fp8_layer {
    int in, out;
    bool per_channel;
    uint8_t *weight;
    float *scale;
    struct pgd_fp8_host h;
    float *w;                        /* [out, in]: pgd_cpu_fp8_dequantize */
    struct pgd_cuda_fp8 *d;
    char name[128];
};

/* Random e4m3 codes over the whole finite range (never the NaN codes 0x7f / 0xff); scales
 * around 1/448 as a checkpoint's max|w| / 448 gives. */
static void fp8_init(struct fp8_layer *L, bool per_channel, int in, int out)
{
    *L = (struct fp8_layer){ .in = in, .out = out, .per_channel = per_channel };
    L->weight = malloc((size_t)out * in);
    for (size_t i = 0; i < (size_t)out * in; i++) {
        uint8_t b = (uint8_t)rand32();
        L->weight[i] = (b & 0x7F) == 0x7F ? (uint8_t)(b & 0xFE) : b;
    }
    const int ns = per_channel ? out : 1;
    L->scale = malloc((size_t)ns * sizeof(float));
    for (int i = 0; i < ns; i++)
        L->scale[i] = (0.5f + (float)(rand32() % 1000) / 1000.0f) / 448.0f;
    L->h = (struct pgd_fp8_host){ in, out, L->weight, L->scale, per_channel };
    L->w = malloc((size_t)out * in * sizeof(float));
    pgd_cpu_fp8_dequantize(&L->h, L->w);
    snprintf(L->name, sizeof L->name, "FP8 [%d x %d] %s", out, in,
             per_channel ? "per-channel" : "per-tensor");
    char err[512] = "";
    CHECK_RC(pgd_cuda_fp8_create(&L->h, &L->d, err, sizeof err));
}

static void fp8_fini(struct fp8_layer *L)
{
    pgd_cuda_fp8_destroy(L->d);
    free(L->weight); free(L->scale); free(L->w);
}

/* x with rows of different magnitudes (the per-token scales differ) and, from 3 rows on, an
 * all-zero row (scale 1, output = bias). */
static float *fp8_x(int n, int in, enum pgd_dtype dt)
{
    float *x = rand_vals((size_t)n * in, 1, dt);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < in; k++)
            x[(size_t)r * in + k] = n >= 3 && r == 1 ? 0.0f
                                  : round_to(ldexpf(x[(size_t)r * in + k], r % 7 - 3), dt);
    return x;
}

/* Whether the library's automatic FP8 GEMM uses fast accumulation (as it reads it: on
 * unless PGD_CUDA_FP8_FAST_ACCUM=0). */
static bool fp8_fast_default(void)
{
    const char *e = getenv("PGD_CUDA_FP8_FAST_ACCUM");
    return e && *e ? atoi(e) != 0 : true;
}

/* The accumulation term's factor for an FP8 call (see the top of the file): the GEMVs 2^-14;
 * cuBLASLt's FP8 GEMM 2^-12; with fast accumulation the tensor cores keep the running sum
 * of all in inputs (about 13-14 bits, truncated at each 32-input step): up to 2^-12 A a step
 * (the H200 gave 2^-12.6 A at in = 16), 2^-12 * (in / 32) A in all, the worst case of errors
 * that all lean one way. */
static double fp8_tolerance(int path, int in)
{
    const bool gemv = path == PGD_CUDA_QPATH_GEMV || path == PGD_CUDA_QPATH_GEMV_E4M3 ||
                      path == PGD_CUDA_QPATH_GEMV_STREAM || path == PGD_CUDA_QPATH_GEMV_DEC;
    const bool fast = path == PGD_CUDA_QPATH_GEMM_FAST ||
                      ((path == PGD_CUDA_QPATH_AUTO || path == PGD_CUDA_QPATH_GEMM) &&
                       fp8_fast_default());
    if (gemv)
        return 0x1p-14;
    return fast ? 0x1p-12 * (in > 32 ? in / 32.0 : 1.0) : 0x1p-12;
}

/* One call through `path` against the reference, x at element xoff of its device buffer
 * (an x that is not 16-byte aligned takes the unfused paths); returns 2 (nothing checked)
 * when the path has no cuBLASLt algorithm here. */
static int fp8_check_at(const struct fp8_layer *L, enum pgd_dtype dt, int n, int path, bool bias,
                        int xoff)
{
    char err[512] = "";
    const int in = L->in, out = L->out;
    float *x = fp8_x(n, in, dt), *b = bias ? rand_vals((size_t)out, 0.5f, dt) : NULL;
    float *xpad = calloc((size_t)n * in + (size_t)xoff, sizeof *xpad);
    memcpy(xpad + xoff, x, (size_t)n * in * sizeof *x);
    void *dbase = upload(xpad, (size_t)n * in + (size_t)xoff, dt);
    void *dx = (char *)dbase + (size_t)xoff * pgd_dtype_size(dt);
    void *db = bias ? upload(b, (size_t)out, dt) : NULL;
    void *dy = poisoned((size_t)n * out, dt);
    int rc = pgd_cuda_fp8_linear_path(ctx, path, dt, dx, n, L->d, db, dy, err, sizeof err);
    cr_assert(rc == 0 || (rc == 2 && path >= PGD_CUDA_QPATH_GEMM_VEC), "%s", err);
    if (rc == 0) {
        float *got = download(dy, (size_t)n * out, dt);
        uint8_t *q = malloc((size_t)n * in);
        float *sx = malloc((size_t)n * sizeof *sx), *xd = malloc((size_t)n * in * sizeof *xd);
        pgd_cpu_fp8_quantize_rows(x, n, in, q, sx);
        for (size_t i = 0; i < (size_t)n * in; i++)
            xd[i] = pgd_fp8_e4m3_to_float(q[i]) * sx[i / in];
        float *want = malloc((size_t)n * out * sizeof *want);
        float *abs_sum = malloc((size_t)n * out * sizeof *abs_sum);
        reference(xd, L->w, b, n, in, out, want, abs_sum);
        char name[256];
        snprintf(name, sizeof name, "%s, %s x [%d, %d]%s%s", L->name, pgd_dtype_name(dt), n, in,
                 bias ? " + bias" : "", xoff ? " (x not 16-byte aligned)" : "");
        expect_close_a(name, path_name(path), got, want, abs_sum, b, n, out, dt,
                       fp8_tolerance(path, in));
        free(got); free(q); free(sx); free(xd); free(want); free(abs_sum);
    }
    free(x); free(xpad); free(b);
    pgd_cuda_free(dbase); pgd_cuda_free(db); pgd_cuda_free(dy);
    return rc;
}

static int fp8_check(const struct fp8_layer *L, enum pgd_dtype dt, int n, int path, bool bias)
{
    return fp8_check_at(L, dt, n, path, bias, 0);
}

/* Per-channel and per-tensor, both dtypes, every n through the GEMV, the GEMM (whichever
 * cuBLASLt kind is there) and the automatic choice: [208 x 1024] (cuBLASLt's FP8 GEMM takes
 * it; the tensor-core GEMV), [200 x 528] (in not a multiple of 64: the plain GEMV; out not a
 * multiple of 16: the GEMV for every n) and [37 x 1088] (the tensor-core GEMV with a padded
 * tile, 17 chunks of 64 over 8 warps). */
GPU_TEST(fp8_gemv_gemm_auto_every_n)
{
    static const int SHAPES[3][2] = { { 1024, 208 }, { 528, 200 }, { 1088, 37 } };
    for (int pc = 0; pc < 2; pc++)
        for (int s = 0; s < 3; s++) {
            struct fp8_layer L;
            fp8_init(&L, pc == 1, SHAPES[s][0], SHAPES[s][1]);
            for (int t = 0; t < 2; t++)
                for (int i = 0; i < 6; i++) {
                    const int n = NS[i];
                    const bool bias = (i + pc) % 2 == 0;
                    fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMV, bias);
                    fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_AUTO, !bias);
                    if (s == 0)
                        cr_assert_eq(fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMM, bias), 0);
                }
            fp8_fini(&L);
        }
}

/* Each cuBLASLt kind forced; one without an algorithm on this device skips, naming it. */
static void fp8_kind(int path)
{
    struct fp8_layer L;
    fp8_init(&L, true, 1024, 208);
    if (fp8_check(&L, PGD_DTYPE_BF16, 17, path, true) == 2) {
        fp8_fini(&L);
        cr_skip_test("cuBLASLt has no %s FP8 algorithm on this device", path_name(path));
    }
    /* the unscaled 16-bit output is bf16 only (fp16 would overflow): fp16 is refused (2) */
    const bool bf16_only = path == PGD_CUDA_QPATH_GEMM_D16 || path == PGD_CUDA_QPATH_GEMM_FAST;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            cr_assert_eq(fp8_check(&L, DTS[t], NS[i], path, i % 2 == 0), bf16_only && t ? 2 : 0,
                         "%s, %s, n = %d", path_name(path), pgd_dtype_name(DTS[t]), NS[i]);
    fp8_fini(&L);
    /* rows in several pieces for the float32 kind: [100000 x 16] needs 400 KB of float32
     * output a row, so the 64 MB scratch takes 160 rows a piece */
    fp8_init(&L, false, 16, 100000);
    cr_assert_eq(fp8_check(&L, PGD_DTYPE_BF16, 200, path, true), 0);
    fp8_fini(&L);
}

GPU_TEST(fp8_gemm_outer_vector_scales) { fp8_kind(PGD_CUDA_QPATH_GEMM_VEC); }
GPU_TEST(fp8_gemm_float32_epilogue) { fp8_kind(PGD_CUDA_QPATH_GEMM_F32); }
GPU_TEST(fp8_gemm_bf16_output_scaled_after) { fp8_kind(PGD_CUDA_QPATH_GEMM_D16); }
GPU_TEST(fp8_gemm_fast_accumulation) { fp8_kind(PGD_CUDA_QPATH_GEMM_FAST); }

/* The decode GEMV that quantizes x inside each block (up to 8 rows whose codes fit 40 KB:
 * n rows of in + 64 or + 128 bytes), at its limits and just past them, per-tensor and
 * per-channel, both dtypes: [37 x 4160] n = 1..8 (fused; out not a multiple of 16, 65
 * chunks over 8 warps; x as fp16 values up to n = 4, as e4m3 codes past it and on the
 * gemv-e4m3 path), [24 x 14400]
 * n = 1 (fp16 values), 2 (codes) and 3 (x quantized first: past 40 KB), and an x that is
 * not 16-byte aligned (x quantized first, by the scalar kernel). From 3 rows on one row is all
 * zeros and the rows' magnitudes differ by up to 2^6 (fp8_x). */
GPU_TEST(fp8_gemv_quantizes_x_in_the_block)
{
    for (int pc = 0; pc < 2; pc++) {
        struct fp8_layer L;
        fp8_init(&L, pc == 1, 4160, 37);
        for (int t = 0; t < 2; t++)
            for (int n = 1; n <= 8; n++) {
                fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMV, (n + pc) % 2 == 0);
                fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_AUTO, (n + pc) % 2 == 1);
                if (n <= 4)
                    fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMV_E4M3, (n + t) % 2 == 0);
            }
        fp8_check_at(&L, PGD_DTYPE_BF16, 1, PGD_CUDA_QPATH_GEMV, true, 4);
        fp8_check_at(&L, PGD_DTYPE_F16, 5, PGD_CUDA_QPATH_AUTO, false, 12);
        fp8_fini(&L);
        fp8_init(&L, pc == 1, 14400, 24);
        for (int n = 1; n <= 3; n++)
            fp8_check(&L, DTS[(n + pc) % 2], n, PGD_CUDA_QPATH_GEMV, n != 2);
        fp8_fini(&L);
    }
}

/* The streaming GEMV (x quantized once per token by its own kernel, the weights decoded
 * with integer operations and multiplied on fp16 tensor cores): per-tensor and per-channel,
 * both dtypes, every n = 1..8 of one launch pair and n = 9, 17 (several), with and without
 * bias, on [208 x 1024] (16 chunks of 64 inputs over 8 warps), [37 x 1088] (a padded last
 * tile; 17 chunks: warps with 3, 2 and no chunks), [24 x 14400] (225 chunks, 29 a warp: a
 * second group of loads in flight) -- these on 8-feature tiles (fewer 16-feature tiles than
 * the device has SMs) -- and [4104 x 4096] (257 tiles of 16 features, the last padded: the
 * 16-feature tiles on any device of up to 256 SMs; 64 chunks, two groups a warp), an x that is not
 * 16-byte aligned (the scalar loads of the quantization kernel), and the automatic choice
 * at decode sizes (the decode GEMV now; this path with PGD_CUDA_FP8_DEC=0). A layer whose
 * in is not a multiple of 64 is refused, naming it. */
GPU_TEST(fp8_streaming_gemv_quantizes_x_once)
{
    static const int SHAPES[4][2] = { { 1024, 208 }, { 1088, 37 }, { 14400, 24 }, { 4096, 4104 } };
    for (int pc = 0; pc < 2; pc++)
        for (int s = 0; s < 4; s++) {
            struct fp8_layer L;
            fp8_init(&L, pc == 1, SHAPES[s][0], SHAPES[s][1]);
            for (int t = 0; t < 2; t++) {
                /* the large layer (2 groups of 4 chunks a warp) at n = 1, 4, 7 only: the CPU
                 * reference of [4104 x 4096] takes its time */
                for (int n = 1; n <= 8; n += s == 3 ? 3 : 1)
                    cr_assert_eq(fp8_check(&L, DTS[t], n, PGD_CUDA_QPATH_GEMV_STREAM,
                                           (n + pc + s) % 2 == 0), 0);
                cr_assert_eq(fp8_check(&L, DTS[t], 9, PGD_CUDA_QPATH_GEMV_STREAM, t == 0), 0);
                cr_assert_eq(fp8_check(&L, DTS[t], 17, PGD_CUDA_QPATH_GEMV_STREAM, t == 1), 0);
                cr_assert_eq(fp8_check(&L, DTS[t], 1 + 3 * t, PGD_CUDA_QPATH_AUTO, pc == 0), 0);
            }
            cr_assert_eq(fp8_check_at(&L, PGD_DTYPE_BF16, 3, PGD_CUDA_QPATH_GEMV_STREAM, true, 4), 0);
            cr_assert_eq(fp8_check_at(&L, PGD_DTYPE_F16, 1, PGD_CUDA_QPATH_GEMV_STREAM, false, 2), 0);
            fp8_fini(&L);
        }
    struct fp8_layer L;
    fp8_init(&L, false, 528, 40);
    char err[512] = "";
    void *dx = poisoned(528, PGD_DTYPE_BF16), *dy = poisoned(40, PGD_DTYPE_BF16);
    cr_assert_neq(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMV_STREAM, PGD_DTYPE_BF16, dx, 1,
                                           L.d, NULL, dy, err, sizeof err), 0);
    cr_assert(strstr(err, "in 528"), "%s", err);
    pgd_cuda_free(dx); pgd_cuda_free(dy);
    fp8_fini(&L);
}

/* The decode GEMV (quant_fp8_dec.cu: one launch, x quantized into each block's shared memory
 * where it fits, else once into the scratch; split-K across blocks for layers of few tiles):
 * per-tensor and per-channel, both dtypes, n = 1, 2, 3, 8 (one token group), 9, 16 (two),
 * with and without bias, on [208 x 1024] (13 tiles, 16 chunks: no split), [37 x 1088] (a
 * padded last tile; 17 chunks over 8 warps: some with none), [24 x 14400] (2 tiles of 225
 * chunks: split 8 ways, the tickets' last part sums them; x in shared memory up to n = 3,
 * through the scratch past it), [1000 x 4096] (63 tiles, split 4 ways on a GPU of 132 SMs)
 * and [4104 x 4096] (257 tiles: more than the blocks resident on most GPUs, so blocks take
 * several tiles in turn), an x that is not 16-byte aligned (element loads), and the
 * automatic choice at 1 and 16 rows (this path). The split runs twice with the same x and
 * gives the same bits (the parts summed in part order whatever order they finish in). A
 * layer whose in is not a multiple of 64, or 17 rows, is refused, naming it. */
static void fp8_dec_same_twice(const struct fp8_layer *L, enum pgd_dtype dt, int n)
{
    char err[512] = "";
    float *x = fp8_x(n, L->in, dt);
    void *dx = upload(x, (size_t)n * L->in, dt);
    void *y1 = poisoned((size_t)n * L->out, dt), *y2 = poisoned((size_t)n * L->out, dt);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMV_DEC, dt, dx, n, L->d, NULL, y1,
                                      err, sizeof err));
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMV_DEC, dt, dx, n, L->d, NULL, y2,
                                      err, sizeof err));
    float *a = download(y1, (size_t)n * L->out, dt), *b = download(y2, (size_t)n * L->out, dt);
    cr_assert(memcmp(a, b, (size_t)n * L->out * sizeof *a) == 0, "%s n = %d: two runs differ",
              L->name, n);
    free(x); free(a); free(b);
    pgd_cuda_free(dx); pgd_cuda_free(y1); pgd_cuda_free(y2);
}

GPU_TEST(fp8_decode_gemv_every_shape_to_16_rows)
{
    static const int SHAPES[5][2] = { { 1024, 208 }, { 1088, 37 }, { 14400, 24 },
                                      { 4096, 1000 }, { 4096, 4104 } };
    static const int N[6] = { 1, 2, 3, 8, 9, 16 };
    for (int pc = 0; pc < 2; pc++)
        for (int s = 0; s < 5; s++) {
            struct fp8_layer L;
            fp8_init(&L, pc == 1, SHAPES[s][0], SHAPES[s][1]);
            for (int t = 0; t < 2; t++) {
                /* the large layer at three n only: its CPU reference takes its time */
                for (int i = 0; i < 6; i += s == 4 ? 2 : 1)
                    cr_assert_eq(fp8_check(&L, DTS[t], N[i], PGD_CUDA_QPATH_GEMV_DEC,
                                           (i + pc + s + t) % 2 == 0), 0);
                cr_assert_eq(fp8_check(&L, DTS[t], t ? 16 : 1, PGD_CUDA_QPATH_AUTO, pc == 0), 0);
            }
            cr_assert_eq(fp8_check_at(&L, PGD_DTYPE_BF16, 3, PGD_CUDA_QPATH_GEMV_DEC, true, 4), 0);
            cr_assert_eq(fp8_check_at(&L, PGD_DTYPE_F16, 12, PGD_CUDA_QPATH_GEMV_DEC, false, 2), 0);
            if (s == 2 || s == 3)
                for (int i = 0; i < 6; i += 5)
                    fp8_dec_same_twice(&L, DTS[pc], N[i]);
            fp8_fini(&L);
        }
    char err[512] = "";
    struct fp8_layer L;
    fp8_init(&L, false, 528, 40);
    void *dx = poisoned(1024 * 17, PGD_DTYPE_BF16), *dy = poisoned(40 * 17, PGD_DTYPE_BF16);
    cr_assert_neq(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMV_DEC, PGD_DTYPE_BF16, dx, 1,
                                           L.d, NULL, dy, err, sizeof err), 0);
    cr_assert(strstr(err, "528"), "%s", err);
    fp8_fini(&L);
    fp8_init(&L, false, 1024, 40);
    cr_assert_neq(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMV_DEC, PGD_DTYPE_BF16, dx, 17,
                                           L.d, NULL, dy, err, sizeof err), 0);
    cr_assert(strstr(err, "[17, 1024]"), "%s", err);
    pgd_cuda_free(dx); pgd_cuda_free(dy);
    fp8_fini(&L);
}

/* The reference output of layer L on x [n, in] (x quantized per token as the GPU does):
 * want and abs_sum [n, out], malloc'd. */
static void fp8_reference(const struct fp8_layer *L, const float *x, int n, float **want,
                          float **abs_sum)
{
    uint8_t *q = malloc((size_t)n * L->in);
    float *sx = malloc((size_t)n * sizeof *sx), *xd = malloc((size_t)n * L->in * sizeof *xd);
    pgd_cpu_fp8_quantize_rows(x, n, L->in, q, sx);
    for (size_t i = 0; i < (size_t)n * L->in; i++)
        xd[i] = pgd_fp8_e4m3_to_float(q[i]) * sx[i / L->in];
    *want = malloc((size_t)n * L->out * sizeof **want);
    *abs_sum = malloc((size_t)n * L->out * sizeof **abs_sum);
    reference(xd, L->w, NULL, n, L->in, L->out, *want, *abs_sum);
    free(q); free(sx); free(xd);
}

/* The split-K choice on the 8B shapes of an H200 (132 SMs, 2 blocks each): o and down
 * (256 tiles) and gate_up with its activation (1792 tiles of 8 + 8 rows) fill the slots
 * unsplit; q, k and v in one launch (384 tiles) split in 2 (768 items: 97% of 3 rounds
 * against 73% of 2); a k or v projection alone (64 tiles) in 4; a layer of 2 tiles as far
 * as each warp keeps 2 chunks (225 chunks: 8 parts; 16 chunks: none). */
GPU_TEST(fp8_decode_gemv_split_k_choice)
{
    cr_assert_eq(pgd_cuda_fp8_dec_split(256, 64, 264), 1);
    cr_assert_eq(pgd_cuda_fp8_dec_split(256, 224, 264), 1);
    cr_assert_eq(pgd_cuda_fp8_dec_split(1792, 64, 264), 1);
    cr_assert_eq(pgd_cuda_fp8_dec_split(384, 64, 264), 2);
    cr_assert_eq(pgd_cuda_fp8_dec_split(64, 64, 264), 4);
    cr_assert_eq(pgd_cuda_fp8_dec_split(2, 225, 264), 8);
    cr_assert_eq(pgd_cuda_fp8_dec_split(2, 16, 264), 1);
}

/* The linear path whose sums pgd_cuda_fp8_linear_act_mul's automatic choice has at n rows,
 * as the library reads the environment: the decode GEMV (PGD_CUDA_FP8_DEC=1, up to
 * PGD_CUDA_FP8_DEC_MAX_N rows), else the streaming GEMV up to PGD_CUDA_FP8_GEMV_MAX_N rows
 * (unless PGD_CUDA_FP8_STREAM=0), else the GEMM. The fused call is compared with that one:
 * another path sums in another order, and where a sum cancels to near zero its last bits
 * differ (the H200 had a 0.7% difference between the decode and the streaming GEMV). */
static int fp8_fused_path(int n)
{
    const char *dec = getenv("PGD_CUDA_FP8_DEC"), *stream = getenv("PGD_CUDA_FP8_STREAM");
    const int dec_max = dec && *dec && atoi(dec) ? env_limit("PGD_CUDA_FP8_DEC_MAX_N", 16) : 0;
    if (n <= (dec_max > 16 ? 16 : dec_max))
        return PGD_CUDA_QPATH_GEMV_DEC;
    if (n <= env_limit("PGD_CUDA_FP8_GEMV_MAX_N", 8) && !(stream && *stream && !atoi(stream)))
        return PGD_CUDA_QPATH_GEMV_STREAM;
    return PGD_CUDA_QPATH_AUTO;
}

/* pgd_cuda_fp8_linear_multi: q, k and v of one x ([256 | 64 | 64 x 1024], [200 | 40 | 24 x
 * 1088]: padded tiles at each layer's end, so a tile never mixes two layers' rows) in one
 * launch of the decode GEMV (with PGD_CUDA_FP8_DEC=1; else one by one, each against the
 * tolerance of the path it takes) at n = 1, 5, 16 (with and without biases, per-tensor and
 * per-channel layers mixed), each output against its reference; at n = 40 the layers one by
 * one (cuBLASLt's GEMM, x quantized once), the same. One and two layers too. */
static void fp8_qkv_cases(void)
{
    char err[512] = "";
    static const int SETS[2][4] = { { 1024, 256, 64, 64 }, { 1088, 200, 40, 24 } };
    static const int N[4] = { 1, 5, 16, 40 };
    for (int set = 0; set < 2; set++)
        for (int k = 0; k < 4; k++)
            for (int count = set == 0 && k == 0 ? 1 : 3; count <= 3; count++) {
                const int in = SETS[set][0], n = N[k];
                const enum pgd_dtype dt = DTS[(set + k) % 2];
                const bool bias = (k + count) % 2 == 0;
                struct fp8_layer L[3];
                const struct pgd_cuda_fp8 *w[3];
                const void *db[3] = { NULL, NULL, NULL };
                void *dy[3];
                float *b[3] = { NULL, NULL, NULL };
                for (int i = 0; i < count; i++) {
                    fp8_init(&L[i], (i + k) % 2 == 0, in, SETS[set][1 + i]);
                    w[i] = L[i].d;
                    if (bias) {
                        b[i] = rand_vals((size_t)L[i].out, 0.5f, dt);
                        db[i] = upload(b[i], (size_t)L[i].out, dt);
                    }
                    dy[i] = poisoned((size_t)n * L[i].out, dt);
                }
                float *x = fp8_x(n, in, dt);
                void *dx = upload(x, (size_t)n * in, dt);
                CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dx, n, count, w, db, dy, err,
                                                   sizeof err));
                for (int i = 0; i < count; i++) {
                    float *got = download(dy[i], (size_t)n * L[i].out, dt), *want, *abs_sum;
                    fp8_reference(&L[i], x, n, &want, &abs_sum);
                    if (bias)
                        for (size_t j = 0; j < (size_t)n * L[i].out; j++)
                            want[j] += b[i][j % (size_t)L[i].out];
                    /* One launch only where the decode GEMV takes n (PGD_CUDA_FP8_DEC=1);
                     * otherwise the layers one by one on the automatic path, x shared. */
                    const int path = fp8_fused_path(n);
                    expect_close_a(L[i].name, path == PGD_CUDA_QPATH_GEMV_DEC
                                                  ? "linear_multi, one launch"
                                                  : "linear_multi, one by one",
                                   got, want, abs_sum, bias ? b[i] : NULL, n, L[i].out, dt,
                                   fp8_tolerance(path, in));
                    free(got); free(want); free(abs_sum); free(b[i]);
                    pgd_cuda_free(dy[i]); pgd_cuda_free((void *)db[i]);
                    fp8_fini(&L[i]);
                }
                free(x);
                pgd_cuda_free(dx);
            }
}

/* With PGD_CUDA_FP8_STREAM_QKV=0 (read once a process: each test is one): up to 8 rows the
 * layers one by one on the streaming GEMV, x quantized once for them. */
GPU_TEST(fp8_decode_gemv_q_k_v_in_one_launch)
{
    setenv("PGD_CUDA_FP8_STREAM_QKV", "0", 1);
    fp8_qkv_cases();
}

/* The same cases by default: up to 8 rows q, k and v in one launch of the streaming GEMV
 * (the layers' tiles in one grid, padded tiles at each layer's end: [256 | 64 | 64] and
 * [200 | 40 | 24] features), each output against its reference at the streaming GEMV's
 * tolerance; past 8 rows as before. */
GPU_TEST(fp8_streaming_gemv_q_k_v_in_one_launch) { fp8_qkv_cases(); }

/* pgd_cuda_fp8_share_x: q, k and v shapes ([256 | 64 | 64 x 1024]) on one x, quantized once,
 * through the streaming GEMV (n = 2) and through cuBLASLt's GEMM (n = 40): each output
 * right; that the second and third reuse the first's quantization shows in a call after x
 * was overwritten (against the contract, on purpose): it still gives the first x's output,
 * and after sharing ends the same call gives the new x's. */
static void fp8_share_case(int n, int path)
{
    char err[512] = "";
    const enum pgd_dtype dt = PGD_DTYPE_BF16;
    const int in = 1024, outs[3] = { 256, 64, 64 };
    struct fp8_layer L[3];
    for (int i = 0; i < 3; i++)
        fp8_init(&L[i], i != 1, in, outs[i]);
    float *x = fp8_x(n, in, dt), *x2 = fp8_x(n, in, dt);
    void *dx = upload(x, (size_t)n * in, dt);
    void *dy[3];
    for (int i = 0; i < 3; i++)
        dy[i] = poisoned((size_t)n * outs[i], dt);
    const double a = fp8_tolerance(path, in);
    pgd_cuda_fp8_share_x(ctx, 1);
    for (int i = 0; i < 3; i++)
        CHECK_RC(pgd_cuda_fp8_linear_path(ctx, path, dt, dx, n, L[i].d, NULL, dy[i], err,
                                          sizeof err));
    for (int i = 0; i < 3; i++) {
        float *got = download(dy[i], (size_t)n * outs[i], dt), *want, *abs_sum;
        fp8_reference(&L[i], x, n, &want, &abs_sum);
        expect_close_a(L[i].name, path_name(path), got, want, abs_sum, NULL, n, outs[i], dt, a);
        free(got); free(want); free(abs_sum);
    }
    upload_into(dx, x2, (size_t)n * in, dt);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, path, dt, dx, n, L[2].d, NULL, dy[2], err, sizeof err));
    float *got = download(dy[2], (size_t)n * outs[2], dt), *want, *abs_sum;
    fp8_reference(&L[2], x, n, &want, &abs_sum);
    expect_close_a(L[2].name, "shared x, reused after x changed", got, want, abs_sum, NULL, n,
                   outs[2], dt, a);
    free(got); free(want); free(abs_sum);
    pgd_cuda_fp8_share_x(ctx, 0);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, path, dt, dx, n, L[2].d, NULL, dy[2], err, sizeof err));
    got = download(dy[2], (size_t)n * outs[2], dt);
    fp8_reference(&L[2], x2, n, &want, &abs_sum);
    expect_close_a(L[2].name, "after sharing ended", got, want, abs_sum, NULL, n, outs[2], dt, a);
    free(got); free(want); free(abs_sum);
    for (int i = 0; i < 3; i++) {
        pgd_cuda_free(dy[i]);
        fp8_fini(&L[i]);
    }
    pgd_cuda_free(dx);
    free(x); free(x2);
}

GPU_TEST(fp8_share_x_quantizes_once_for_q_k_v)
{
    fp8_share_case(2, PGD_CUDA_QPATH_GEMV_STREAM);
    fp8_share_case(40, PGD_CUDA_QPATH_GEMM);
}

/* Whether got [n] equals want [n] element for element (each a value of the dtype). */
static void expect_same(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(got[i] == want[i] || (isnan(got[i]) && isnan(want[i])),
                  "%s: element %zu is %.9g, the unfused path gives %.9g", what, i, got[i],
                  want[i]);
}

/* The norm that leaves its output's FP8 quantization (pgd_cuda_rmsnorm_fp8x), then the FP8
 * linears of that output told so (pgd_cuda_fp8_x_ready): q/k/v ([512 | 128 | 128 x in],
 * pgd_cuda_fp8_linear_multi) and a gated gate_up ([2 x 256, in], _linear_act_mul), against
 * the plain norm and the same linears quantizing x themselves. Equal to the bit, in both
 * dtypes, with the residual add and without: the fused norm writes the same rows (and the
 * same residual), and its codes and scales are fp8_xprep_kernel's from the same values.
 * That the linears skip their own quantization shows in a call after the output was
 * overwritten (against the contract, on purpose): it still gives the norm's x's outputs;
 * without pgd_cuda_fp8_x_ready the same call gives the new x's. Past decode sizes (n = 9)
 * the norm does not prepare x (prepared 0) and all is as before. */
static void fp8_norm_x_case(int n, int in, enum pgd_dtype dt, bool add)
{
    char err[512] = "";
    const int outs[3] = { 512, 128, 128 }, gu = 512;
    struct fp8_layer L[4];
    for (int i = 0; i < 3; i++)
        fp8_init(&L[i], i != 1, in, outs[i]);
    fp8_init(&L[3], true, in, gu);
    const size_t nx = (size_t)n * in;
    float *res = rand_vals(nx, 4, dt), *delta = rand_vals(nx, 1, dt), *nw = rand_vals(in, 1, dt);
    float *other = rand_vals(nx, 2, dt);
    void *dres[2] = { upload(res, nx, dt), upload(res, nx, dt) };
    void *ddelta = upload(delta, nx, dt), *dnw = upload(nw, in, dt);
    void *dout[2] = { poisoned(nx, dt), poisoned(nx, dt) };
    void *dy[2][4];
    const int width[4] = { outs[0], outs[1], outs[2], gu / 2 };
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 4; i++)
            dy[p][i] = poisoned((size_t)n * width[i], dt);
    const struct pgd_cuda_fp8 *qkv[3] = { L[0].d, L[1].d, L[2].d };
    const void *nob[3] = { NULL, NULL, NULL };
    void *gu_scratch = poisoned((size_t)n * gu, dt);
    const float eps = 1e-5f;
    char what[160];
    snprintf(what, sizeof what, "%s n = %d in = %d %s", add ? "add_rmsnorm" : "rmsnorm", n, in,
             pgd_dtype_name(dt));

    /* unfused: the plain norm, each linear quantizing x itself */
    if (add)
        CHECK_RC(pgd_cuda_add_rmsnorm(ctx, dt, dres[0], ddelta, dnw, eps, n, in, dout[0], err,
                                      sizeof err));
    else
        CHECK_RC(pgd_cuda_rmsnorm(ctx, dt, ddelta, dnw, eps, n, in, dout[0], err, sizeof err));
    CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dout[0], n, 3, qkv, nob, dy[0], err, sizeof err));
    CHECK_RC(pgd_cuda_fp8_linear_act_mul(ctx, dt, PGD_ACT_SILU, dout[0], n, L[3].d, NULL,
                                         gu_scratch, dy[0][3], err, sizeof err));

    /* fused: q/k/v after one norm, gate_up after another of the same rows */
    int prepared = -1;
    CHECK_RC(pgd_cuda_rmsnorm_fp8x(ctx, dt, add ? dres[1] : NULL, ddelta, dnw, eps, n, in,
                                   dout[1], &prepared, err, sizeof err));
    cr_assert_eq(prepared, n <= 8, "%s: prepared %d", what, prepared);
    pgd_cuda_fp8_x_ready(ctx, prepared ? dout[1] : NULL, n, in, dt);
    CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dout[1], n, 3, qkv, nob, dy[1], err, sizeof err));
    pgd_cuda_fp8_x_ready(ctx, NULL, 0, 0, dt);
    if (add)
        upload_into(dres[1], res, nx, dt);
    CHECK_RC(pgd_cuda_rmsnorm_fp8x(ctx, dt, add ? dres[1] : NULL, ddelta, dnw, eps, n, in,
                                   dout[1], &prepared, err, sizeof err));
    pgd_cuda_fp8_x_ready(ctx, prepared ? dout[1] : NULL, n, in, dt);
    CHECK_RC(pgd_cuda_fp8_linear_act_mul(ctx, dt, PGD_ACT_SILU, dout[1], n, L[3].d, NULL,
                                         gu_scratch, dy[1][3], err, sizeof err));
    pgd_cuda_fp8_x_ready(ctx, NULL, 0, 0, dt);

    float *o0 = download(dout[0], nx, dt), *o1 = download(dout[1], nx, dt);
    expect_same(what, o1, o0, nx);
    free(o0); free(o1);
    if (add) {
        float *r0 = download(dres[0], nx, dt), *r1 = download(dres[1], nx, dt);
        expect_same(what, r1, r0, nx);
        free(r0); free(r1);
    }
    float *want[4];
    for (int i = 0; i < 4; i++) {
        want[i] = download(dy[0][i], (size_t)n * width[i], dt);
        float *got = download(dy[1][i], (size_t)n * width[i], dt);
        char w2[200];
        snprintf(w2, sizeof w2, "%s, %s", what, i < 3 ? L[i].name : "gate_up");
        expect_same(w2, got, want[i], (size_t)n * width[i]);
        free(got);
    }

    if (prepared) {
        /* the linears read the scratch, not x: x overwritten after the norm, told ready
         * (the norm of the same rows: with the add, the residual holds its sum) */
        CHECK_RC(pgd_cuda_rmsnorm_fp8x(ctx, dt, NULL, add ? dres[0] : ddelta, dnw, eps, n, in,
                                       dout[1], &prepared, err, sizeof err));
        upload_into(dout[1], other, nx, dt);
        pgd_cuda_fp8_x_ready(ctx, dout[1], n, in, dt);
        CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dout[1], n, 3, qkv, nob, dy[1], err,
                                           sizeof err));
        pgd_cuda_fp8_x_ready(ctx, NULL, 0, 0, dt);
        float *got = download(dy[1][0], (size_t)n * outs[0], dt);
        expect_same("x overwritten, told ready: the norm's codes", got, want[0],
                    (size_t)n * outs[0]);
        free(got);
        CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dout[1], n, 3, qkv, nob, dy[1], err,
                                           sizeof err));
        got = download(dy[1][0], (size_t)n * outs[0], dt);
        size_t same = 0;
        for (size_t i = 0; i < (size_t)n * outs[0]; i++)
            same += got[i] == want[0][i];
        cr_assert(same < (size_t)n * outs[0] / 2, "%s: not told ready, %zu of %zu outputs are "
                  "still the norm's x's", what, same, (size_t)n * outs[0]);
        free(got);
    }
    for (int i = 0; i < 4; i++)
        free(want[i]);
    for (int p = 0; p < 2; p++) {
        pgd_cuda_free(dres[p]);
        pgd_cuda_free(dout[p]);
        for (int i = 0; i < 4; i++)
            pgd_cuda_free(dy[p][i]);
    }
    pgd_cuda_free(ddelta); pgd_cuda_free(dnw); pgd_cuda_free(gu_scratch);
    for (int i = 0; i < 4; i++)
        fp8_fini(&L[i]);
    free(res); free(delta); free(nw); free(other);
}

GPU_TEST(fp8_norm_leaves_x_quantized_for_the_linears)
{
    static const int N[4] = { 1, 3, 8, 9 };
    for (int k = 0; k < 4; k++)
        for (int d = 0; d < 2; d++) {
            fp8_norm_x_case(N[k], 1024, DTS[d], true);
            fp8_norm_x_case(N[k], 4096, DTS[(d + k) % 2], k % 2 == 0);
        }
}

/* pgd_cuda_fp8_act_mul_x on gate_up [n, 2 inter] before a down projection [out, inter]:
 * act_mul's output to the bit, and the down projection told the scratch is ready (it then
 * reads the act's codes, not out) to the bit what it gives quantizing out itself; prepared
 * where the streaming GEMV takes the rows (n <= 8, inter a multiple of 64), act_mul alone
 * elsewhere. Then out
 * overwritten but told ready: the act's codes still (they are read, not out's). */
static void fp8_act_x_case(int n, int inter, enum pgd_dtype dt, enum pgd_act act)
{
    char err[512] = "";
    struct fp8_layer down;
    fp8_init(&down, inter % 128 == 0, inter, 136);
    const size_t ng = (size_t)n * 2 * inter, nx = (size_t)n * inter, ny = (size_t)n * 136;
    float *gu = rand_vals(ng, 3, dt), *other = rand_vals(nx, 2, dt);
    void *dgu = upload(gu, ng, dt);
    void *dout[2] = { poisoned(nx, dt), poisoned(nx, dt) };
    void *dy[2] = { poisoned(ny, dt), poisoned(ny, dt) };
    char what[160];
    snprintf(what, sizeof what, "act_mul with x's FP8 codes, act %d, n = %d, inter = %d, %s",
             (int)act, n, inter, pgd_dtype_name(dt));

    CHECK_RC(pgd_cuda_act_mul(ctx, dt, act, dgu, n, inter, dout[0], err, sizeof err));
    CHECK_RC(pgd_cuda_fp8_linear(ctx, dt, dout[0], n, down.d, NULL, dy[0], err, sizeof err));
    int prepared = -1;
    CHECK_RC(pgd_cuda_fp8_act_mul_x(ctx, dt, act, dgu, n, inter, dout[1], &prepared, err,
                                    sizeof err));
    cr_assert_eq(prepared, n <= 8 && inter % 64 == 0, "%s: prepared %d", what, prepared);
    pgd_cuda_fp8_x_ready(ctx, prepared ? dout[1] : NULL, n, inter, dt);
    CHECK_RC(pgd_cuda_fp8_linear(ctx, dt, dout[1], n, down.d, NULL, dy[1], err, sizeof err));
    pgd_cuda_fp8_x_ready(ctx, NULL, 0, 0, dt);
    float *o0 = download(dout[0], nx, dt), *o1 = download(dout[1], nx, dt);
    expect_same(what, o1, o0, nx);
    float *y0 = download(dy[0], ny, dt), *y1 = download(dy[1], ny, dt);
    expect_same(what, y1, y0, ny);
    free(o0); free(o1); free(y1);
    if (prepared) {
        CHECK_RC(pgd_cuda_fp8_act_mul_x(ctx, dt, act, dgu, n, inter, dout[1], &prepared, err,
                                        sizeof err));
        upload_into(dout[1], other, nx, dt);
        pgd_cuda_fp8_x_ready(ctx, dout[1], n, inter, dt);
        CHECK_RC(pgd_cuda_fp8_linear(ctx, dt, dout[1], n, down.d, NULL, dy[1], err, sizeof err));
        pgd_cuda_fp8_x_ready(ctx, NULL, 0, 0, dt);
        y1 = download(dy[1], ny, dt);
        expect_same("out overwritten, told ready: the act's codes", y1, y0, ny);
        free(y1);
    }
    free(y0);
    for (int p = 0; p < 2; p++) {
        pgd_cuda_free(dout[p]);
        pgd_cuda_free(dy[p]);
    }
    pgd_cuda_free(dgu);
    free(gu); free(other);
    fp8_fini(&down);
}

/* With PGD_CUDA_FP8_ACT_X=1 (read once a process: each test is one): inter of 1, 2, 4 and 8
 * vectors a thread (the 8B's 14336: 7, in 8), one not a multiple of 64 (act_mul alone: the
 * streaming GEMV wants rows of 64s), SiLU and tanh-GELU, both dtypes, 1..9 rows. */
GPU_TEST(fp8_act_mul_leaves_x_quantized_for_down)
{
    setenv("PGD_CUDA_FP8_ACT_X", "1", 1);
    static const int INTER[5] = { 1024, 4096, 6144, 14336, 1000 };
    static const int N[4] = { 1, 3, 8, 9 };
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 4; k++)
            fp8_act_x_case(N[k], INTER[i], DTS[(i + k) % 2],
                           (i + k) % 3 ? PGD_ACT_SILU : PGD_ACT_GELU_TANH);
}

/* Off by default: act_mul alone, nothing prepared. */
GPU_TEST(fp8_act_mul_x_off_by_default)
{
    char err[512] = "";
    void *dgu = poisoned(2 * 4096, PGD_DTYPE_BF16), *dout = poisoned(4096, PGD_DTYPE_BF16);
    int prepared = -1;
    CHECK_RC(pgd_cuda_fp8_act_mul_x(ctx, PGD_DTYPE_BF16, PGD_ACT_SILU, dgu, 1, 4096, dout,
                                    &prepared, err, sizeof err));
    cr_assert_eq(prepared, 0);
    pgd_cuda_free(dgu);
    pgd_cuda_free(dout);
}

/* One case of the fused gate_up: pgd_cuda_fp8_linear_act_mul against `path`'s linear into a
 * scratch, then pgd_cuda_act_mul. */
static void fp8_act_mul_case(const struct fp8_layer *L, int n, enum pgd_dtype dt,
                             enum pgd_act act, bool bias, int path)
{
    char err[512] = "";
    const int in = L->in, out = L->out, inter = out / 2;
    float *x = fp8_x(n, in, dt), *b = bias ? rand_vals((size_t)out, 0.5f, dt) : NULL;
    void *dx = upload(x, (size_t)n * in, dt), *db = bias ? upload(b, (size_t)out, dt) : NULL;
    void *scratch = poisoned((size_t)n * out, dt), *two = poisoned((size_t)n * inter, dt);
    void *fused = poisoned((size_t)n * inter, dt);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, path, dt, dx, n, L->d, db, scratch, err, sizeof err));
    CHECK_RC(pgd_cuda_act_mul(ctx, dt, act, scratch, n, inter, two, err, sizeof err));
    CHECK_RC(pgd_cuda_fp8_linear_act_mul(ctx, dt, act, dx, n, L->d, db,
                                         path == PGD_CUDA_QPATH_AUTO ? scratch : NULL, fused,
                                         err, sizeof err));
    float *want = download(two, (size_t)n * inter, dt);
    float *got = download(fused, (size_t)n * inter, dt);
    const double ulp = dt == PGD_DTYPE_BF16 ? 0x1p-7 : 0x1p-10;
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)n * inter; i++) {
        const double d = fabs((double)got[i] - want[i]);
        differ += d != 0;
        cr_assert(d <= 2 * ulp * fabs(want[i]) + 1e-30, "%s act %d %s n = %d [%s]: row %zu "
                  "feature %zu is %.7g, the linear then act_mul give %.7g", L->name, (int)act,
                  pgd_dtype_name(dt), n, path_name(path), i / inter, i % inter, got[i], want[i]);
    }
    cr_assert(differ * 100 <= (size_t)n * inter, "%s n = %d [%s]: %zu of %zu outputs differ "
              "from the linear then act_mul", L->name, n, path_name(path), differ,
              (size_t)n * inter);
    free(x); free(b); free(want); free(got);
    pgd_cuda_free(dx); pgd_cuda_free(db); pgd_cuda_free(scratch); pgd_cuda_free(two);
    pgd_cuda_free(fused);
}

/* pgd_cuda_fp8_linear_act_mul (at decode sizes one GEMV launch pairing gate and up features:
 * the streaming GEMV, or the decode GEMV with PGD_CUDA_FP8_DEC=1) against the two calls it
 * stands for (the same path's linear into a scratch, then pgd_cuda_act_mul): the same sums
 * rounded the same way, so equal but for a last-bit difference where a sum of another tile
 * order rounds the other way (at most 1% of the outputs, each within 2 units of the last
 * place); a wrong pairing, scale or bias moves an output far more. SiLU and GELU-tanh, both
 * dtypes, n = 1..9, 16 and 24 (past the GEMVs: cuBLASLt's GEMM, its scales and the
 * activation in one pass), with and without bias, inter = 208 and 37 (a padded tile),
 * [2 x 520, 4096] (split-K across blocks in the decode GEMV) and [2 x 12, 14400] (split 8
 * ways; x through the scratch past 3 rows). */
GPU_TEST(fp8_linear_act_mul_fuses_the_activation)
{
    static const int SHAPES[4][2] = { { 1024, 416 }, { 1088, 74 }, { 4096, 1040 }, { 14400, 24 } };
    static const int N[11] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 24 };
    for (int s = 0; s < 4; s++) {
        struct fp8_layer L;
        fp8_init(&L, s % 2 == 0, SHAPES[s][0], SHAPES[s][1]);
        for (int k = 0; k < 11; k++) {
            const int n = N[k];
            const enum pgd_dtype dt = DTS[(k + s) % 2];
            const enum pgd_act act = (k + s) % 3 == 0 ? PGD_ACT_GELU_TANH : PGD_ACT_SILU;
            fp8_act_mul_case(&L, n, dt, act, k % 2 == 1, fp8_fused_path(n));
        }
        fp8_fini(&L);
    }
}

/* The streaming GEMV's plans of the 8B layers (kernels/cuda/stream_plan.h: by default pow2 at
 * one row and balance from 2; each rule at every n in a test of its own): q, k and v in one
 * launch at 1 and 8 rows, gate_up (1792 tiles) plain and with its activation at 1 and 4
 * rows, down (224 chunks a row), each against its reference (the gated launch against the
 * plain one and act_mul). */
static void fp8_8b_plans(void)
{
    char err[512] = "";
    static const int QKV[3] = { 4096, 1024, 1024 };
    for (int k = 0; k < 2; k++) {
        const int n = k ? 8 : 1, in = 4096;
        const enum pgd_dtype dt = DTS[k];
        struct fp8_layer L[3];
        const struct pgd_cuda_fp8 *w[3];
        const void *db[3] = { NULL, NULL, NULL };
        void *dy[3];
        for (int i = 0; i < 3; i++) {
            fp8_init(&L[i], (i + k) % 2 == 0, in, QKV[i]);
            w[i] = L[i].d;
            dy[i] = poisoned((size_t)n * QKV[i], dt);
        }
        float *x = fp8_x(n, in, dt);
        void *dx = upload(x, (size_t)n * in, dt);
        CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dx, n, 3, w, db, dy, err, sizeof err));
        for (int i = 0; i < 3; i++) {
            float *got = download(dy[i], (size_t)n * QKV[i], dt), *want, *abs_sum;
            fp8_reference(&L[i], x, n, &want, &abs_sum);
            expect_close_a(L[i].name, "linear_multi of the 8B q/k/v", got, want, abs_sum, NULL,
                           n, QKV[i], dt, fp8_tolerance(PGD_CUDA_QPATH_GEMV_STREAM, in));
            free(got); free(want); free(abs_sum);
            pgd_cuda_free(dy[i]);
            fp8_fini(&L[i]);
        }
        free(x);
        pgd_cuda_free(dx);
    }
    static const int LAYERS[2][2] = { { 4096, 28672 }, { 14336, 4096 } };
    for (int i = 0; i < 2; i++) {
        struct fp8_layer L;
        fp8_init(&L, i == 0, LAYERS[i][0], LAYERS[i][1]);
        cr_assert_eq(fp8_check(&L, DTS[i], 1, PGD_CUDA_QPATH_GEMV_STREAM, i == 1), 0);
        cr_assert_eq(fp8_check(&L, DTS[1 - i], 8, PGD_CUDA_QPATH_GEMV_STREAM, i == 0), 0);
        if (i == 0)
            for (int n = 1; n <= 4; n += 3)
                fp8_act_mul_case(&L, n, DTS[n % 2], PGD_ACT_SILU, n == 4,
                                 PGD_CUDA_QPATH_GEMV_STREAM);
        fp8_fini(&L);
    }
}

GPU_TEST(fp8_streaming_gemv_8b_plans) { fp8_8b_plans(); }

GPU_TEST(fp8_streaming_gemv_8b_plans_balance)
{
    setenv("PGD_CUDA_STREAM_PLAN", "balance", 1);
    fp8_8b_plans();
}

GPU_TEST(fp8_streaming_gemv_8b_plans_pow2)
{
    setenv("PGD_CUDA_STREAM_PLAN", "pow2", 1);
    fp8_8b_plans();
}

/* FP8 GEMMs take gemm_tune.cu's algorithm choice as the dense layers do: the first call of
 * a shape and n bucket times the candidates and records the tuning (inputs e4m3, the
 * output's dtype) for the bucket; other n of the bucket reuse it without timing; the same
 * shape in another bucket is timed again. With tuning off (a second context) nothing is
 * timed and the heuristic's first gives the same function. Each result checked against the
 * reference. */
GPU_TEST(fp8_gemm_tuned_through_gemm_tune_per_bucket)
{
    struct fp8_layer L;
    fp8_init(&L, true, 2048, 336);
    pgd_cuda_gemm_tune_set(ctx, 1);
    const int before = pgd_cuda_gemm_tune_count(ctx);
    cr_assert_eq(fp8_check(&L, PGD_DTYPE_BF16, 40, PGD_CUDA_QPATH_GEMM, true), 0);
    const int after_first = pgd_cuda_gemm_tune_count(ctx);
    cr_assert(after_first >= before + 1, "the first FP8 GEMM of [336 x 2048] at n = 40 was not "
              "tuned (%d tunings before, %d after)", before, after_first);
    struct pgd_cuda_gemm_tune_info t;
    cr_assert_eq(pgd_cuda_gemm_tune_get(ctx, after_first - 1, &t), 0);
    cr_assert(t.dt == PGD_DTYPE_F8_E4M3 && t.in == 2048 && t.out == 336 && t.bucket == 64 &&
              t.n == 40, "recorded %s [%d x %d] -> %d bucket %d", pgd_dtype_name(t.dt), t.n,
              t.in, t.out, t.bucket);
    cr_assert(t.ydt == PGD_DTYPE_BF16 || t.ydt == PGD_DTYPE_F32, "output %s",
              pgd_dtype_name(t.ydt));
    cr_assert(t.timed >= 1 && t.best_us > 0 && t.best_us <= t.first_us && t.tune_ms > 0,
              "%d timed, first %.2f us, best %.2f us, %.2f ms", t.timed, t.first_us, t.best_us,
              t.tune_ms);
    const int ns[3] = { 33, 64, 57 };
    for (int i = 0; i < 3; i++)
        cr_assert_eq(fp8_check(&L, PGD_DTYPE_BF16, ns[i], PGD_CUDA_QPATH_GEMM, i == 1), 0);
    cr_assert_eq(pgd_cuda_gemm_tune_count(ctx), after_first,
                 "n = 33, 64, 57 of bucket 64 were timed again");
    cr_assert_eq(fp8_check(&L, PGD_DTYPE_BF16, 100, PGD_CUDA_QPATH_GEMM, false), 0);
    cr_assert(pgd_cuda_gemm_tune_count(ctx) > after_first, "bucket 128 was not tuned");

    char err[512] = "";
    struct pgd_cuda_ctx *untuned = NULL, *saved = ctx;
    cr_assert_eq(pgd_cuda_ctx_create(&untuned, err, sizeof err), 0, "%s", err);
    pgd_cuda_gemm_tune_set(untuned, 0);
    ctx = untuned;                   /* fp8_check runs on ctx */
    const int rc = fp8_check(&L, PGD_DTYPE_F16, 40, PGD_CUDA_QPATH_GEMM, true);
    const int untuned_count = pgd_cuda_gemm_tune_count(untuned);
    ctx = saved;
    pgd_cuda_ctx_destroy(untuned);
    cr_assert_eq(rc, 0);
    cr_assert_eq(untuned_count, 0, "tuning off: %d FP8 GEMMs timed", untuned_count);
    fp8_fini(&L);
}

/* cuBLASLt's FP8 GEMM at several n of one batch bucket (33..63): the first times the
 * candidate algorithms, the others reuse the winner where cuBLASLt takes it; each result
 * checked. And a GEMM-sized x that is not 16-byte aligned (the scalar quantization). */
GPU_TEST(fp8_gemm_timed_algorithm_reused_in_its_bucket)
{
    struct fp8_layer L;
    fp8_init(&L, true, 1024, 208);
    const int ns[4] = { 33, 63, 48, 40 };
    for (int i = 0; i < 4; i++)
        if (fp8_check(&L, PGD_DTYPE_BF16, ns[i], PGD_CUDA_QPATH_GEMM, i % 2 == 0) != 0)
            cr_assert_fail("no FP8 GEMM at n = %d", ns[i]);
    cr_assert_eq(fp8_check_at(&L, PGD_DTYPE_F16, 40, PGD_CUDA_QPATH_GEMM, true, 4), 0);
    fp8_fini(&L);
}

/* ---- a prefill-sized step: the scratch grows once, x fits one piece ------------------------ */
/* Rows of y [n, out] (device, dt) against the reference on the same rows of x: the first
 * three, the last, and those around 16,256 (where the 64 MiB scratch cut [n, 4096] in two
 * pieces). */
static void fp8_check_sampled_rows(const struct fp8_layer *L, const float *x, int n, void *dy,
                                   enum pgd_dtype dt, const char *what)
{
    static const int PICK[8] = { 0, 1, 2, 16254, 16255, 16256, 16257, -1 };
    float *xs = malloc((size_t)8 * L->in * sizeof *xs);
    int rows[8];
    for (int i = 0; i < 8; i++) {
        rows[i] = PICK[i] < 0 || PICK[i] >= n ? n - 1 : PICK[i];
        memcpy(xs + (size_t)i * L->in, x + (size_t)rows[i] * L->in, (size_t)L->in * sizeof *xs);
    }
    float *all = download(dy, (size_t)n * L->out, dt), *got = malloc((size_t)8 * L->out * sizeof *got);
    for (int i = 0; i < 8; i++)
        memcpy(got + (size_t)i * L->out, all + (size_t)rows[i] * L->out, (size_t)L->out * sizeof *got);
    float *want, *abs_sum;
    fp8_reference(L, xs, 8, &want, &abs_sum);
    expect_close_a(L->name, what, got, want, abs_sum, NULL, 8, L->out, dt,
                   fp8_tolerance(PGD_CUDA_QPATH_GEMM, L->in));
    free(xs); free(all); free(got); free(want); free(abs_sum);
}

/* The counts of pgd_cuda_fp8_stats between two readings. */
static struct pgd_cuda_fp8_stats fp8_stats_since(struct pgd_cuda_ctx *c,
                                                 const struct pgd_cuda_fp8_stats *before)
{
    struct pgd_cuda_fp8_stats now;
    pgd_cuda_fp8_stats(c, &now);
    now.gemm_calls -= before->gemm_calls;
    now.gemm_pieces -= before->gemm_pieces;
    now.x_quantizations -= before->x_quantizations;
    now.scratch_grows -= before->scratch_grows;
    return now;
}

/* The FP8 GEMM at 16,384 tokens of in = 4096 (a prefill step of the 8B shape: its x codes
 * and scales need 67 MB, past the 64 MiB scratch). Kept to 64 MiB (the old behaviour) it
 * runs in two pieces with no allocation; allowed to grow, the first call grows the scratch
 * once and runs in one piece, the second call neither grows nor allocates and gives the
 * same bits; q, k and v on that x (pgd_cuda_fp8_linear_multi) quantize it once for the
 * three; every output right against the reference on sampled rows (both sides of the old
 * pieces' border). On a second context whose stream captured a graph the scratch never
 * moves (a graph's nodes hold its address): the same call runs in pieces, still right. */
GPU_TEST(fp8_gemm_prefill_step_in_one_piece)
{
    char err[512] = "";
    const enum pgd_dtype dt = PGD_DTYPE_BF16;
    const int n = 16384, in = 4096;
    struct fp8_layer L[3];
    static const int OUTS[3] = { 64, 32, 32 };
    for (int i = 0; i < 3; i++)
        fp8_init(&L[i], i != 1, in, OUTS[i]);
    /* settle cuBLASLt's kind (outer-vector scales or not) at a small n first */
    if (fp8_check(&L[0], dt, 64, PGD_CUDA_QPATH_GEMM, false) == 2) {
        for (int i = 0; i < 3; i++)
            fp8_fini(&L[i]);
        cr_skip_test("cuBLASLt has no FP8 GEMM on this device");
    }
    float *x = fp8_x(n, in, dt);
    void *dx = upload(x, (size_t)n * in, dt);
    void *y[3], *y2 = poisoned((size_t)n * OUTS[0], dt);
    for (int i = 0; i < 3; i++)
        y[i] = poisoned((size_t)n * OUTS[i], dt);
    struct pgd_cuda_fp8_stats s0, d;

    pgd_cuda_qscratch_set_max(ctx, 1);
    pgd_cuda_fp8_stats(ctx, &s0);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMM, dt, dx, n, L[0].d, NULL, y[0],
                                      err, sizeof err));
    d = fp8_stats_since(ctx, &s0);
    cr_assert(d.gemm_pieces == 2 && d.x_quantizations == 2 && d.scratch_grows == 0,
              "kept to 64 MiB: %ld pieces, %ld quantizations, %ld growths", d.gemm_pieces,
              d.x_quantizations, d.scratch_grows);
    fp8_check_sampled_rows(&L[0], x, n, y[0], dt, "two pieces");

    pgd_cuda_qscratch_set_max(ctx, (size_t)512 << 20);
    pgd_cuda_fp8_stats(ctx, &s0);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMM, dt, dx, n, L[0].d, NULL, y[0],
                                      err, sizeof err));
    d = fp8_stats_since(ctx, &s0);
    cr_assert(d.gemm_pieces == 1 && d.scratch_grows == 1 && d.scratch_bytes >= (size_t)n * (in + 4),
              "first call: %ld pieces, %ld growths, scratch %zu bytes", d.gemm_pieces,
              d.scratch_grows, d.scratch_bytes);
    fp8_check_sampled_rows(&L[0], x, n, y[0], dt, "one piece");
    pgd_cuda_fp8_stats(ctx, &s0);
    CHECK_RC(pgd_cuda_fp8_linear_path(ctx, PGD_CUDA_QPATH_GEMM, dt, dx, n, L[0].d, NULL, y2, err,
                                      sizeof err));
    d = fp8_stats_since(ctx, &s0);
    cr_assert(d.gemm_pieces == 1 && d.scratch_grows == 0 && d.scratch_bytes == s0.scratch_bytes,
              "second call: %ld pieces, %ld growths", d.gemm_pieces, d.scratch_grows);
    float *a = download(y[0], (size_t)n * OUTS[0], dt), *b = download(y2, (size_t)n * OUTS[0], dt);
    cr_assert(memcmp(a, b, (size_t)n * OUTS[0] * sizeof *a) == 0, "two calls differ");
    free(a); free(b);

    /* q, k, v: one quantization for the three */
    const struct pgd_cuda_fp8 *w3[3] = { L[0].d, L[1].d, L[2].d };
    const void *b3[3] = { NULL, NULL, NULL };
    pgd_cuda_fp8_stats(ctx, &s0);
    CHECK_RC(pgd_cuda_fp8_linear_multi(ctx, dt, dx, n, 3, w3, b3, y, err, sizeof err));
    d = fp8_stats_since(ctx, &s0);
    cr_assert(d.gemm_pieces == 3 && d.x_quantizations == 1 && d.scratch_grows == 0,
              "q, k, v: %ld pieces, %ld quantizations, %ld growths", d.gemm_pieces,
              d.x_quantizations, d.scratch_grows);
    for (int i = 0; i < 3; i++)
        fp8_check_sampled_rows(&L[i], x, n, y[i], dt, "q, k, v sharing x");

    /* a context whose stream captured a graph keeps its scratch */
    struct pgd_cuda_ctx *c2 = NULL;
    CHECK_RC(pgd_cuda_ctx_create(&c2, err, sizeof err));
    pgd_cuda_qscratch_set_max(c2, (size_t)512 << 20);
    CHECK_RC(pgd_cuda_fp8_linear_path(c2, PGD_CUDA_QPATH_GEMM, dt, dx, 64, L[0].d, NULL, y2, err,
                                      sizeof err));
    struct pgd_cuda_graph *g = NULL;
    CHECK_RC(pgd_cuda_capture_begin(c2, err, sizeof err));
    int rc = pgd_cuda_fp8_linear_path(c2, PGD_CUDA_QPATH_GEMM, dt, dx, 64, L[0].d, NULL, y2, err,
                                      sizeof err);
    if (rc)
        pgd_cuda_capture_abort(c2);
    CHECK_RC(rc);
    CHECK_RC(pgd_cuda_capture_end(c2, &g, err, sizeof err));
    pgd_cuda_graph_destroy(g);
    pgd_cuda_fp8_stats(c2, &s0);
    CHECK_RC(pgd_cuda_fp8_linear_path(c2, PGD_CUDA_QPATH_GEMM, dt, dx, n, L[0].d, NULL, y2, err,
                                      sizeof err));
    CHECK_RC(pgd_cuda_sync(c2, err, sizeof err));
    d = fp8_stats_since(c2, &s0);
    cr_assert(d.gemm_pieces == 2 && d.scratch_grows == 0,
              "after a capture: %ld pieces, %ld growths", d.gemm_pieces, d.scratch_grows);
    fp8_check_sampled_rows(&L[0], x, n, y2, dt, "after a capture, two pieces");
    pgd_cuda_ctx_destroy(c2);

    free(x);
    pgd_cuda_free(dx); pgd_cuda_free(y2);
    for (int i = 0; i < 3; i++) {
        pgd_cuda_free(y[i]);
        fp8_fini(&L[i]);
    }
}

/* ---- graphs and errors ------------------------------------------------------------------- */
/* The decode-sized calls (and a GEMM-sized one, after a first call made its cuBLASLt plans)
 * recorded in a CUDA graph: nothing allocates or synchronises, and replays read the
 * buffers' current contents. */
GPU_TEST(quantized_linears_in_a_cuda_graph)
{
    char err[512] = "";
    const enum pgd_dtype dt = PGD_DTYPE_BF16;
    const int in = 1024, out = 208;
    struct wq_layer W;
    struct fp8_layer F;
    wq_init(&W, 4, 128, true, Z_INT, in, out);
    fp8_init(&F, true, in, out);
    const int ns[2] = { 2, 64 };
    for (int k = 0; k < 2; k++) {
        const int n = ns[k];
        void *dx = poisoned((size_t)n * in, dt), *dy1 = poisoned((size_t)n * out, dt);
        void *dy2 = poisoned((size_t)n * out, dt);
        float *x = rand_vals((size_t)n * in, 1, dt);
        upload_into(dx, x, (size_t)n * in, dt);
        /* first calls outside the capture: the cuBLASLt plans of the GEMM sizes */
        CHECK_RC(pgd_cuda_wq_linear(ctx, dt, dx, n, W.d, NULL, dy1, err, sizeof err));
        CHECK_RC(pgd_cuda_fp8_linear(ctx, dt, dx, n, F.d, NULL, dy2, err, sizeof err));
        CHECK_RC(pgd_cuda_sync(ctx, err, sizeof err));
        float *direct1 = download(dy1, (size_t)n * out, dt);
        float *direct2 = download(dy2, (size_t)n * out, dt);
        struct pgd_cuda_graph *g = NULL;
        CHECK_RC(pgd_cuda_capture_begin(ctx, err, sizeof err));
        int rc = pgd_cuda_wq_linear(ctx, dt, dx, n, W.d, NULL, dy1, err, sizeof err);
        if (!rc)
            rc = pgd_cuda_fp8_linear(ctx, dt, dx, n, F.d, NULL, dy2, err, sizeof err);
        if (rc)
            pgd_cuda_capture_abort(ctx);
        CHECK_RC(rc);
        CHECK_RC(pgd_cuda_capture_end(ctx, &g, err, sizeof err));
        /* new x in the same buffer, then the replay */
        float *x2 = rand_vals((size_t)n * in, 1, dt);
        upload_into(dx, x2, (size_t)n * in, dt);
        CHECK_RC(pgd_cuda_graph_launch(ctx, g, err, sizeof err));
        float *got1 = download(dy1, (size_t)n * out, dt), *got2 = download(dy2, (size_t)n * out, dt);
        size_t same = 0;
        for (size_t i = 0; i < (size_t)n * out; i++)
            same += got1[i] == direct1[i];
        cr_assert(same < (size_t)n * out / 2, "W4 n=%d: the replay gave the first x's outputs", n);
        /* the replay's outputs against the reference on x2 */
        float *want = malloc((size_t)n * out * sizeof *want), *abs_sum = malloc((size_t)n * out * sizeof *abs_sum);
        /* integer zeros: the GEMV and the exact fused GEMM multiply the exact weights, the
         * folded GEMM (the automatic choice from 17 rows where it runs) the rounded ones */
        reference(x2, auto_rounds(&W, n) ? W.w_dt[0] : W.w, NULL, n, in, out, want, abs_sum);
        expect_close(W.name, "graph replay", got1, want, abs_sum, NULL, n, out, dt);
        uint8_t *q = malloc((size_t)n * in);
        float *sx = malloc((size_t)n * sizeof *sx), *xd = malloc((size_t)n * in * sizeof *xd);
        pgd_cpu_fp8_quantize_rows(x2, n, in, q, sx);
        for (size_t i = 0; i < (size_t)n * in; i++)
            xd[i] = pgd_fp8_e4m3_to_float(q[i]) * sx[i / in];
        reference(xd, F.w, NULL, n, in, out, want, abs_sum);
        expect_close_a(F.name, "graph replay", got2, want, abs_sum, NULL, n, out, dt,
                       fp8_tolerance(PGD_CUDA_QPATH_AUTO, in));
        free(q); free(sx); free(xd); free(want); free(abs_sum);
        free(x); free(x2); free(direct1); free(direct2); free(got1); free(got2);
        pgd_cuda_graph_destroy(g);
        pgd_cuda_free(dx); pgd_cuda_free(dy1); pgd_cuda_free(dy2);
    }
    wq_fini(&W);
    fp8_fini(&F);
}

/* Layouts the kernels cannot take are refused at create, naming the problem. */
GPU_TEST(create_refuses_what_the_kernels_cannot_take)
{
    char err[512] = "";
    uint32_t qw[64 * 16] = { 0 };
    float sc[16 * 4], zr[16 * 4];
    for (int i = 0; i < 64; i++) {
        sc[i] = 0.01f;
        zr[i] = 8;
    }
    struct pgd_cuda_wq *w = NULL;
    struct pgd_wq_host h = { 3, 64, 64, 16, qw, sc, zr, NULL };
    cr_assert_neq(pgd_cuda_wq_create(&h, NULL, &w, err, sizeof err), 0);
    cr_assert(strstr(err, "3 bits"), "%s", err);
    h = (struct pgd_wq_host){ 4, 48, 64, 16, qw, sc, zr, NULL };
    cr_assert_neq(pgd_cuda_wq_create(&h, NULL, &w, err, sizeof err), 0);
    cr_assert(strstr(err, "group size 48"), "%s", err);
    h = (struct pgd_wq_host){ 4, 16, 64, 16, qw, sc, zr, NULL };
    cr_assert_neq(pgd_cuda_wq_create(&h, NULL, &w, err, sizeof err), 0);
    cr_assert(strstr(err, "multiples of 32"), "%s", err);
    int32_t perm[64];
    for (int i = 0; i < 64; i++)
        perm[i] = i;
    perm[5] = 4;
    h = (struct pgd_wq_host){ 4, 32, 64, 16, qw, sc, zr, perm };
    cr_assert_neq(pgd_cuda_wq_create(&h, NULL, &w, err, sizeof err), 0);
    cr_assert(strstr(err, "perm[5] = 4 is repeated"), "%s", err);
    sc[3] = 1e6f;
    h = (struct pgd_wq_host){ 4, 32, 64, 16, qw, sc, zr, NULL };
    cr_assert_neq(pgd_cuda_wq_create(&h, NULL, &w, err, sizeof err), 0);
    cr_assert(strstr(err, "outside fp16's range"), "%s", err);
    cr_assert_null(w);
    uint8_t fw[40 * 2] = { 0 };
    float fs = 1;
    struct pgd_cuda_fp8 *f = NULL;
    struct pgd_fp8_host fh = { 40, 2, fw, &fs, false };
    cr_assert_neq(pgd_cuda_fp8_create(&fh, &f, err, sizeof err), 0);
    cr_assert(strstr(err, "multiple of 16"), "%s", err);
    cr_assert_null(f);
}
#endif
