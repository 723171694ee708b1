/* Quantized checkpoints (plugins/quant): each format's conversion against the CPU reference
 * of include/pagoda/quant.h, the joins of fused layers, every quantized fixture
 * (tests/fixtures/quant, written by scripts/make_quant_fixtures.py) against transformers run
 * on its dequantized weights, and the refusals (unknown method, bad bits or group size, a
 * tensor of the wrong shape or dtype). */
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "runtime/model/model.h"
#include "runtime/model/qweight.h"
#include "runtime/model/model_ctx.h"
#include "runtime/model/safetensors.h"
#include "kernels/cpu/cpu_kernels.h"
#include "plugins/quant/gptq/gptq_convert.h"
#include "plugins/quant/awq/awq_convert.h"
#include "plugins/quant/common/qcommon.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(gptq_convert);
PGD_TEST_SUITE(awq_convert);
PGD_TEST_SUITE(qweight_join);
PGD_TEST_SUITE(quant_fold);
PGD_TEST_SUITE(fp8_codec);
PGD_TEST_SUITE(fp8_quantize);
PGD_TEST_SUITE(quant_golden);
PGD_TEST_SUITE(quant_refusals);

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* ---- GPTQ conversion ------------------------------------------------------------------------
 * The test packs random integers the way GPTQ writes them (written here from the format's
 * description, independently of gptq_convert.c), converts, dequantizes with the CPU
 * reference, and compares with W computed straight from the integers. */
struct gptq_case {
    int bits;
    int64_t in, out, group;
    bool act_order, v1;
};

static void check_gptq(struct gptq_case c)
{
    int pack = 32 / c.bits;
    uint32_t maxq = (1u << c.bits) - 1;
    int64_t groups = c.in / c.group;
    uint32_t *q = calloc((size_t)(c.in * c.out), 4);
    uint32_t *qweight = calloc((size_t)(c.in / pack * c.out), 4);
    uint32_t *qzeros = calloc((size_t)(groups * c.out / pack), 4);
    uint32_t *zero = calloc((size_t)(groups * c.out), 4);
    float *scales = malloc((size_t)(groups * c.out) * sizeof(float));
    int32_t *g_idx = malloc((size_t)c.in * sizeof(int32_t)), *order = malloc((size_t)c.in * 4);
    /* act-order: channel order[j] belongs to group j / group (a random permutation). */
    for (int64_t i = 0; i < c.in; i++)
        order[i] = (int32_t)i;
    for (int64_t i = c.in - 1; c.act_order && i > 0; i--) {
        int64_t j = rnd() % (uint32_t)(i + 1), t = order[i];
        order[i] = order[j];
        order[j] = (int32_t)t;
    }
    for (int64_t j = 0; j < c.in; j++)
        g_idx[order[j]] = (int32_t)(j / c.group);
    for (int64_t i = 0; i < c.in * c.out; i++)
        q[i] = rnd() & maxq;
    for (int64_t i = 0; i < groups * c.out; i++) {
        zero[i] = c.v1 ? 1 + rnd() % maxq : rnd() & maxq; /* v1 cannot store a zero of 0 */
        scales[i] = (float)(1 + rnd() % 64) / 256.0f;
    }
    for (int64_t i = 0; i < c.in; i++)
        for (int64_t o = 0; o < c.out; o++)
            qweight[(i / pack) * c.out + o] |= q[i * c.out + o] << ((i % pack) * c.bits);
    for (int64_t g = 0; g < groups; g++)
        for (int64_t o = 0; o < c.out; o++)
            qzeros[g * (c.out / pack) + o / pack] |=
                ((zero[g * c.out + o] - (c.v1 ? 1 : 0)) & maxq) << ((o % pack) * c.bits);

    struct gptq_layer l = { .name = "layer", .bits = c.bits, .group = c.group, .in = c.in,
                            .out = c.out, .v1 = c.v1, .qweight = qweight, .qzeros = qzeros,
                            .scales = scales, .g_idx = g_idx };
    struct pgd_wq_host h;
    void *block;
    char err[256] = "";
    cr_assert_eq(gptq_to_wq(&l, &h, &block, err, sizeof err), PGD_OK, "%s", err);
    /* act-order needs a perm, unless one group holds every input (nothing to sort). */
    cr_assert_eq(h.perm != NULL, c.act_order && groups > 1, "perm is %p with act_order %d",
                 (void *)h.perm, c.act_order);
    float *w = malloc((size_t)(c.in * c.out) * sizeof(float));
    pgd_cpu_wq_dequantize(&h, w);
    for (int64_t i = 0; i < c.in; i++)
        for (int64_t o = 0; o < c.out; o++) {
            int64_t g = g_idx[i];
            float want = ((float)q[i * c.out + o] - (float)zero[g * c.out + o]) *
                         scales[g * c.out + o];
            cr_assert_eq(w[o * c.in + i], want, "bits %d group %lld act %d v1 %d: W[%lld][%lld] "
                         "= %g, expected %g", c.bits, (long long)c.group, c.act_order, c.v1,
                         (long long)o, (long long)i, w[o * c.in + i], want);
        }
    free(block);
    free(w);
    free(q);
    free(qweight);
    free(qzeros);
    free(zero);
    free(scales);
    free(g_idx);
    free(order);
}

Test(gptq_convert, every_bits_group_order_and_format_dequantizes_exactly)
{
    static const int64_t groups[] = { 32, 64, 128, 256 /* == in: per channel */ };
    for (int bits = 4; bits <= 8; bits += 4)
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            for (int act = 0; act < 2; act++)
                for (int v1 = 0; v1 < 2; v1++)
                    check_gptq((struct gptq_case){ .bits = bits, .in = 256, .out = 40,
                                                   .group = groups[g], .act_order = act,
                                                   .v1 = v1 });
}

Test(gptq_convert, bad_g_idx_is_refused_naming_the_layer)
{
    uint32_t qweight[16 * 8] = { 0 }, qzeros[4 * 1] = { 0 };
    float scales[4 * 8] = { 0 };
    int32_t g_idx[128];
    for (int i = 0; i < 128; i++)
        g_idx[i] = i / 32;
    g_idx[5] = 3; /* group 0 has 31 channels, group 3 has 33 */
    struct gptq_layer l = { .name = "model.layers.0.mlp.down_proj", .bits = 4, .group = 32,
                            .in = 128, .out = 8, .v1 = true, .qweight = qweight,
                            .qzeros = qzeros, .scales = scales, .g_idx = g_idx };
    struct pgd_wq_host h;
    void *block;
    char err[512] = "";
    cr_assert_eq(gptq_to_wq(&l, &h, &block, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, "model.layers.0.mlp.down_proj.g_idx"), "%s", err);
    g_idx[5] = 4; /* out of range */
    cr_assert_eq(gptq_to_wq(&l, &h, &block, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert_null(block);
}

/* ---- AWQ conversion ------------------------------------------------------------------------- */
Test(awq_convert, gemm_order_unpacks_to_the_right_outputs)
{
    enum { IN = 64, OUT = 32, GROUP = 32, G = IN / GROUP };
    static uint32_t q[IN][OUT], z[G][OUT], qweight[IN][OUT / 8], qzeros[G][OUT / 8];
    static float scales[G][OUT], w[OUT * IN];
    memset(qweight, 0, sizeof qweight);
    memset(qzeros, 0, sizeof qzeros);
    for (int i = 0; i < IN; i++)
        for (int o = 0; o < OUT; o++)
            q[i][o] = rnd() & 15;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < OUT; o++) {
            z[g][o] = rnd() & 15;
            scales[g][o] = (float)(1 + rnd() % 32) / 64.0f;
        }
    /* AutoAWQ: nibble p of word j holds output 8 j + order[p], order 0,2,4,6,1,3,5,7. */
    static const int order[8] = { 0, 2, 4, 6, 1, 3, 5, 7 };
    for (int j = 0; j < OUT / 8; j++)
        for (int p = 0; p < 8; p++) {
            for (int i = 0; i < IN; i++)
                qweight[i][j] |= q[i][8 * j + order[p]] << (4 * p);
            for (int g = 0; g < G; g++)
                qzeros[g][j] |= z[g][8 * j + order[p]] << (4 * p);
        }
    struct awq_layer l = { .name = "x", .group = GROUP, .in = IN, .out = OUT,
                           .qweight = &qweight[0][0], .qzeros = &qzeros[0][0],
                           .scales = &scales[0][0] };
    struct pgd_wq_host h;
    void *block;
    char err[256] = "";
    cr_assert_eq(awq_to_wq(&l, &h, &block, err, sizeof err), PGD_OK, "%s", err);
    pgd_cpu_wq_dequantize(&h, w);
    for (int i = 0; i < IN; i++)
        for (int o = 0; o < OUT; o++) {
            float want = ((float)q[i][o] - (float)z[i / GROUP][o]) * scales[i / GROUP][o];
            cr_assert_eq(w[o * IN + i], want, "W[%d][%d] = %g, expected %g", o, i, w[o * IN + i],
                         want);
        }
    free(block);
}

/* ---- joins of fused layers --------------------------------------------------------------- */
Test(qweight_join, wq_parts_stack_along_the_output)
{
    enum { IN = 64, O1 = 16, O2 = 24 };
    static uint32_t q1[IN / 8 * O1], q2[IN / 8 * O2];
    static float s1[2 * O1], s2[2 * O2], z1[2 * O1], z2[2 * O2], w[(O1 + O2) * IN],
        w1[O1 * IN], w2[O2 * IN];
    int32_t perm[IN];
    for (int i = 0; i < IN; i++)
        perm[i] = (i * 37) % IN;
    for (size_t i = 0; i < sizeof q1 / 4; i++)
        q1[i] = rnd();
    for (size_t i = 0; i < sizeof q2 / 4; i++)
        q2[i] = rnd();
    for (int i = 0; i < 2 * O1; i++) {
        s1[i] = (float)(rnd() % 9 + 1) / 8;
        z1[i] = (float)(rnd() % 16);
    }
    for (int i = 0; i < 2 * O2; i++) {
        s2[i] = (float)(rnd() % 9 + 1) / 8;
        z2[i] = (float)(rnd() % 16);
    }
    struct pgd_wq_host parts[2] = {
        { .bits = 4, .group_size = 32, .in = IN, .out = O1, .qweight = q1, .scales = s1,
          .zeros = z1, .perm = perm },
        { .bits = 4, .group_size = 32, .in = IN, .out = O2, .qweight = q2, .scales = s2,
          .zeros = z2, .perm = perm },
    };
    struct pgd_wq_host j;
    void *block;
    char err[256] = "";
    cr_assert_eq(pgd__wq_join("fused", parts, 2, &j, &block, err, sizeof err), PGD_OK, "%s", err);
    pgd_cpu_wq_dequantize(&j, w);
    pgd_cpu_wq_dequantize(&parts[0], w1);
    pgd_cpu_wq_dequantize(&parts[1], w2);
    cr_assert_eq(memcmp(w, w1, sizeof w1), 0);
    cr_assert_eq(memcmp(w + O1 * IN, w2, sizeof w2), 0);
    free(block);
    parts[1].perm = NULL; /* another act-order permutation cannot share one packed layer */
    cr_assert_eq(pgd__wq_join("fused", parts, 2, &j, &block, err, sizeof err),
                 PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "fused"), "%s", err);
}

Test(qweight_join, fp8_parts_with_other_scales_become_per_channel)
{
    enum { IN = 8, O1 = 3, O2 = 5 };
    uint8_t b1[O1 * IN], b2[O2 * IN];
    for (int i = 0; i < O1 * IN; i++)
        b1[i] = (uint8_t)(rnd() % 0x7e);
    for (int i = 0; i < O2 * IN; i++)
        b2[i] = (uint8_t)(rnd() % 0x7e);
    float s1 = 0.5f, s2 = 0.125f, w[(O1 + O2) * IN], w1[O1 * IN], w2[O2 * IN];
    struct pgd_fp8_host parts[2] = { { .in = IN, .out = O1, .weight = b1, .scale = &s1 },
                                     { .in = IN, .out = O2, .weight = b2, .scale = &s2 } };
    struct pgd_fp8_host j;
    void *block;
    char err[256] = "";
    cr_assert_eq(pgd__fp8_join("qkv", parts, 2, &j, &block, err, sizeof err), PGD_OK, "%s", err);
    cr_assert(j.per_channel);
    pgd_cpu_fp8_dequantize(&j, w);
    pgd_cpu_fp8_dequantize(&parts[0], w1);
    pgd_cpu_fp8_dequantize(&parts[1], w2);
    cr_assert_eq(memcmp(w, w1, sizeof w1), 0);
    cr_assert_eq(memcmp(w + O1 * IN, w2, sizeof w2), 0);
    free(block);
    s2 = s1; /* one shared scale stays per tensor */
    cr_assert_eq(pgd__fp8_join("qkv", parts, 2, &j, &block, err, sizeof err), PGD_OK, "%s", err);
    cr_assert(!j.per_channel);
    free(block);
}

/* ---- pgd_model_load_mlp's fold, on the host arrays (runtime/model/qweight.c) -------------
 * A CPU model by hand (no checkpoint): while "down" is kept in the TAKE phase its act-order
 * permutation is given up and its dense rows stay in canonical order; while the two "up"
 * parts are kept in the GIVE phase each part's output r is the original output order[r], for
 * W4 (columns of qweight, scales and zeros) and FP8 (rows and per-channel scales). */
/* A two-part layer's dense rows [2 * out, in]: part p's row r is row order[r] of its own
 * weights (a, b). */
static void expect_rows_in_order(const char *what, const float *dense, const float *a,
                                 const float *b, const int32_t *order, int out, int in)
{
    for (int p = 0; p < 2; p++)
        for (int r = 0; r < out; r++)
            cr_assert_eq(memcmp(dense + (size_t)(p * out + r) * in,
                                (p ? b : a) + (size_t)order[r] * in, (size_t)in * sizeof(float)),
                         0, "%s part %d output %d", what, p, r);
}

Test(quant_fold, down_gives_up_its_order_and_up_takes_it)
{
    enum { IN = 16, OUT = 12, PACK = 8 };
    struct pgd__model m = { .device = PGD_DEVICE_CPU, .dtype = PGD_DTYPE_F32 };
    struct pgd_model_ctx ctx = { .m = &m };
    char err[256] = "";
    /* W4: 2 groups of 8 over IN inputs, OUT outputs, two parts */
    uint32_t q[2][IN / PACK * OUT];
    float sc[2][2 * OUT], zr[2][2 * OUT];
    int32_t perm[IN];
    for (int i = 0; i < IN; i++)
        perm[i] = (i * 5 + 3) % IN;
    struct pgd_wq_host wq[2];
    for (int p = 0; p < 2; p++) {
        for (int i = 0; i < IN / PACK * OUT; i++)
            q[p][i] = rnd();
        for (int i = 0; i < 2 * OUT; i++) {
            sc[p][i] = 0.01f * (float)(1 + rnd() % 50);
            zr[p][i] = (float)(rnd() % 16);
        }
        wq[p] = (struct pgd_wq_host){ .bits = 4, .group_size = 8, .in = IN, .out = OUT,
                                      .qweight = q[p], .scales = sc[p], .zeros = zr[p] };
    }
    float plain[2][OUT * IN];
    for (int p = 0; p < 2; p++)
        pgd_cpu_wq_dequantize(&wq[p], plain[p]);

    /* down: its permutation taken, its rows canonical */
    struct pgd_wq_host down = wq[0];
    down.perm = perm;
    struct pgd_qweight *qw;
    m.fold.phase = PGD__FOLD_TAKE;
    cr_assert_eq(pgd_model_qweight_wq(&ctx, "down", &down, 1, &qw, err, sizeof err), PGD_OK,
                 "%s", err);
    int32_t *taken = m.fold.order;
    cr_assert_not_null(taken);
    cr_assert_eq(m.fold.n_order, IN);
    cr_assert_eq(memcmp(taken, perm, sizeof perm), 0);
    cr_assert_eq(memcmp(qw->dense, plain[0], sizeof plain[0]), 0, "down kept canonical");

    /* up, W4: two parts, outputs reordered by an order of OUT */
    int32_t order[OUT];
    for (int r = 0; r < OUT; r++)
        order[r] = (r * 7 + 2) % OUT;
    m.fold.phase = PGD__FOLD_GIVE;
    m.fold.order = order;
    m.fold.n_order = OUT;
    cr_assert_eq(pgd_model_qweight_wq(&ctx, "up", wq, 2, &qw, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert(m.fold.order_used);
    expect_rows_in_order("W4", qw->dense, plain[0], plain[1], order, OUT, IN);

    /* up, FP8: per-channel and per-tensor parts */
    uint8_t w8[2][OUT * IN];
    float s8[OUT], s1 = 0.25f, d8[2][OUT * IN];
    for (int i = 0; i < OUT * IN; i++) {
        w8[0][i] = (uint8_t)(rnd() % 0x7e);
        w8[1][i] = (uint8_t)(rnd() % 0x7e);
    }
    for (int r = 0; r < OUT; r++)
        s8[r] = 0.01f * (float)(1 + r);
    struct pgd_fp8_host f8[2] = {
        { .in = IN, .out = OUT, .weight = w8[0], .scale = s8, .per_channel = true },
        { .in = IN, .out = OUT, .weight = w8[1], .scale = &s1, .per_channel = false } };
    pgd_cpu_fp8_dequantize(&f8[0], d8[0]);
    pgd_cpu_fp8_dequantize(&f8[1], d8[1]);
    m.fold.order_used = false;
    cr_assert_eq(pgd_model_qweight_fp8(&ctx, "up8", f8, 2, &qw, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert(m.fold.order_used);
    expect_rows_in_order("FP8", qw->dense, d8[0], d8[1], order, OUT, IN);

    /* a part whose outputs are not the order's length is refused, naming the layer */
    m.fold.n_order = OUT - 1;
    cr_assert_eq(pgd_model_qweight_wq(&ctx, "model.layers.0.mlp.gate_proj", wq, 2, &qw, err,
                                      sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "model.layers.0.mlp.gate_proj"), "%s", err);
    free(taken);
    pgd__qweights_free(&m);
}

/* ---- FP8 weights quantized at load -------------------------------------------------------
 * pgd_fp8_e4m3_from_float (on the float's bits) against its definition: the nearest e4m3
 * value, ties to the even code, |x| >= 448 saturated to 448, NaN to 0x7F, the sign kept
 * (-0 too). Every 251st float bit pattern (17 million, all exponents, every mantissa low bit
 * pattern mod 251) and every code's own value. */
static uint8_t nearest_e4m3(float x)
{
    if (isnan(x))
        return 0x7F;
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    const float a = fabsf(x);
    if (a >= 448.0f)
        return sign | 0x7E;
    /* codes 0..126 in increasing value: the last whose value is at most a, then the next */
    int lo = 0, hi = 126;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (pgd_fp8_e4m3_to_float((uint8_t)mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo == 126)
        return sign | 0x7E;
    const double below = a - pgd_fp8_e4m3_to_float((uint8_t)lo),
                 above = pgd_fp8_e4m3_to_float((uint8_t)(lo + 1)) - a;
    const int code = below < above ? lo : above < below ? lo + 1 : (lo % 2 ? lo + 1 : lo);
    return sign | (uint8_t)code;
}

Test(fp8_codec, from_float_is_the_nearest_code_ties_to_even)
{
    for (uint64_t b = 0; b < (1ull << 32); b += 251) {
        uint32_t u = (uint32_t)b;
        float x;
        memcpy(&x, &u, sizeof x);
        uint8_t got = pgd_fp8_e4m3_from_float(x), want = nearest_e4m3(x);
        cr_assert_eq(got, want, "bits %08x (%.9g): code 0x%02x, the nearest is 0x%02x", u, x,
                     got, want);
    }
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7F) == 0x7F)
            continue;                      /* NaN */
        float v = pgd_fp8_e4m3_to_float((uint8_t)c);
        cr_assert_eq(pgd_fp8_e4m3_from_float(v), c, "code 0x%02x (%g) does not round-trip", c,
                     v);
    }
    float mid = (pgd_fp8_e4m3_to_float(0x40) + pgd_fp8_e4m3_to_float(0x41)) / 2;
    cr_assert_eq(pgd_fp8_e4m3_from_float(mid), 0x40, "a tie goes to the even code");
    mid = (pgd_fp8_e4m3_to_float(0x41) + pgd_fp8_e4m3_to_float(0x42)) / 2;
    cr_assert_eq(pgd_fp8_e4m3_from_float(-mid), 0xC2, "a tie goes to the even code");
}

/* qc_fp8_quantize_rows on a bf16 [300, 4096] weight, rows 7..296 and columns 1024..3071 (a
 * rank's slice: the scale is still the whole row's), large enough to run on several threads
 * where the machine has several cores: every row's scale and codes are those of the
 * definition, computed here row by row. */
Test(fp8_quantize, rows_on_threads_are_each_rows_own)
{
    enum { ROWS = 300, IN = 4096, ROW0 = 7, N = 290, COL0 = 1024, W = 2048 };
    uint16_t *bf = malloc(sizeof *bf * ROWS * IN);
    for (int i = 0; i < ROWS * IN; i++)
        bf[i] = pgd_f32_to_bf16((float)((int)(rnd() % 20001) - 10000) * 1e-4f *
                                (float)(1 + i / IN % 7));
    for (int i = 0; i < IN; i++)
        bf[(ROW0 + 3) * IN + i] = 0;       /* an all-zero row: scale 1 */
    const struct pgd_raw_tensor w = { .data = bf, .dtype = PGD_DTYPE_BF16, .ndim = 2,
                                      .shape = { ROWS, IN } };
    float *scale = malloc(sizeof *scale * N);
    uint8_t *q = malloc((size_t)N * W);
    char err[256] = "";
    cr_assert_eq(qc_fp8_quantize_rows("model.layers.0.mlp.down_proj", &w, IN, ROW0, N, COL0, W,
                                      scale, q, err, sizeof err), PGD_OK, "%s", err);
    for (int r = 0; r < N; r++) {
        const uint16_t *row = bf + (size_t)(ROW0 + r) * IN;
        float amax = 0.0f;
        for (int i = 0; i < IN; i++)
            amax = fmaxf(amax, fabsf(pgd_bf16_to_f32(row[i])));
        const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
        cr_assert_eq(scale[r], s, "row %d: scale %g, want %g", r, scale[r], s);
        for (int i = 0; i < W; i++)
            cr_assert_eq(q[(size_t)r * W + i],
                         pgd_fp8_e4m3_from_float(pgd_bf16_to_f32(row[COL0 + i]) / s),
                         "row %d column %d", r, COL0 + i);
    }
    cr_assert_eq(scale[3], 1.0f, "the all-zero row");
    free(bf); free(scale); free(q);
}

/* ---- every fixture against transformers -------------------------------------------------
 * GPTQ and AWQ: pagoda's CPU dequantizes to the very float32 weights transformers ran on
 * ((q - zero) * scale is exact in float32: an fp16 scale times an integer below 2^8), so the
 * only difference is the order of float32 sums, as for the dense fixtures: logits within
 * 1e-4 of the largest (tests/unit/test_models.c's F32_TOL).
 *
 * FP8: both round every quantized layer's input to e4m3 per token. An input within a float32
 * rounding of the midpoint between two e4m3 codes can round one way here and the other way in
 * torch (the sums before it ran in another order); that moves it by one e4m3 step (up to 1/8
 * of its value) and, in these tiny random models whose attention is nearly one-hot, the
 * logits by 1e-4 to 10% (measured). The packer therefore keeps only prompts whose reference is
 * stable at every greedy step: 3e-7 relative noise on every FP8 layer's input (a few float32
 * roundings, what another summation order makes) moved no logit by more than 1e-4 of their
 * range in three tries, and uses shorter sequences (such boundaries are met more often in long
 * ones). Then pagoda and the reference differ by float32 summation order alone (measured:
 * about 1e-6), and the bound is 1e-4 as for the integer formats, where a wrong scale, code or
 * skipped activation rounding costs 1e-2 to 1e-1 (leaving the activations unrounded alone
 * moves the logits by 0.13).
 *
 * Greedy tokens are compared until the first step where the reference's top-2 gap is within
 * twice the bound times the largest logit (a near-tie either side may break); the last logits
 * only when no near-tie came first. */
#define WQ_TOL 1e-4
#define FP8_TOL 1e-4

static const char *quant_dir(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/fixtures/quant/%s",
             getenv("PGD_TEST_SRCDIR") && *getenv("PGD_TEST_SRCDIR") ? getenv("PGD_TEST_SRCDIR")
                                                                     : PGD_TEST_SRCDIR, name);
    return buf;
}

static float max_abs(const float *x, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* folded: the decoder layers whose act-order down_proj permutation the load folded into
 * gate/up's output order (pgd_model_load_mlp): every layer's where down's inputs span
 * several groups, none where one group holds them all or there is no act-order. The
 * logits' match then shows that the folded model computes what the checkpoint does. */
static void check_golden(const char *name, double tol, int folded)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.json", quant_dir(name));
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    cr_assert_not_null(ref, "%s: %s", path, je.text);
    const char *quant = json_string_value(json_object_get(ref, "quantization"));
    const char *base = json_string_value(json_object_get(ref, "base"));
    /* A variant without a checkpoint of its own is its base fixture with --quantization. */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", quant && *quant ? fixture_dir(base) : quant_dir(name));
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner_dir(reg, dir, quant && *quant ? quant : NULL, 64, 16, 8);
    int vocab = pgd__runner_desc(r)->vocab_size;
    cr_assert_eq(pgd__runner_model(r)->fold.folded, folded, "%s: %d layers folded, expected %d",
                 name, pgd__runner_model(r)->fold.folded, folded);
    int n_new = (int)json_integer_value(json_object_get(ref, "n_new"));
    int32_t table[64], out[64];
    for (int b = 0; b < 64; b++)
        table[b] = (b * 37 + 11) % 64;
    float *first = malloc((size_t)vocab * sizeof *first), *last = malloc((size_t)vocab * 4);
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        int np, ng, nf, nl, ngap;
        int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
        int32_t *greedy = json_ints(json_object_get(c, "greedy"), &ng);
        float *gaps = json_floats(json_object_get(c, "top2_gaps"), &ngap);
        float *rf = json_floats(json_object_get(c, "first_logits"), &nf);
        float *rl = json_floats(json_object_get(c, "last_logits"), &nl);
        cr_assert(ng == n_new && ngap == n_new && nf == vocab && nl == vocab, "%s: bad reference",
                  name);
        greedy_run(r, prompt, np, n_new, 0, table, out, first, last);
        double d1 = rel_max_diff(first, rf, vocab);
        cr_assert_leq(d1, tol, "%s prompt %zu: first logits differ by %g relative", name, ci, d1);
        float tie = (float)(2 * tol) * max_abs(rf, vocab);
        bool tied = false;
        for (int i = 0; i < n_new && !tied; i++) {
            if (gaps[i] < tie) {
                tied = true;
                break;
            }
            cr_assert_eq(out[i], greedy[i], "%s prompt %zu (len %d): token %d is %d, "
                         "transformers gives %d", name, ci, np, i, out[i], greedy[i]);
        }
        if (!tied) {
            double d2 = rel_max_diff(last, rl, vocab);
            cr_assert_leq(d2, tol, "%s prompt %zu: last logits differ by %g", name, ci, d2);
        }
        free(prompt);
        free(greedy);
        free(gaps);
        free(rf);
        free(rl);
    }
    free(first);
    free(last);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
    json_decref(ref);
}

#define GOLDEN(id, name, tol) \
    Test(quant_golden, id) { check_golden(name, tol, 0); }
#define GOLDEN_FOLDED(id, name, tol, folded) \
    Test(quant_golden, id) { check_golden(name, tol, folded); }
GOLDEN(llama_gptq_4b_g32_sym, "llama-gptq-4b-g32-sym", WQ_TOL)
GOLDEN_FOLDED(llama_gptq_4b_g64_asym_act_order, "llama-gptq-4b-g64-asym-act", WQ_TOL, 2)
GOLDEN(llama_gptq_8b_g128_sym_act_order_v2, "llama-gptq-8b-g128-sym-act-v2", WQ_TOL)
GOLDEN(qwen2_gptq_4b_g32_asym_v2_bias, "qwen2-gptq-4b-g32-asym-v2", WQ_TOL)
GOLDEN(qwen3_gptq_8b_per_channel_asym, "qwen3-gptq-8b-gm1-asym", WQ_TOL)
GOLDEN_FOLDED(mistral_gptq_quantize_config_json, "mistral-gptq-4b-g64-sym-act-v2-file", WQ_TOL, 2)
GOLDEN(llama_awq_modules_to_not_convert, "llama-awq-g32-skip", WQ_TOL)
GOLDEN(qwen2_awq_quant_config_json, "qwen2-awq-g64-file", WQ_TOL)
GOLDEN(qwen3_awq_g128, "qwen3-awq-g128", WQ_TOL)
GOLDEN(llama_fp8_per_tensor, "llama-fp8-tensor", FP8_TOL)
GOLDEN(qwen3_fp8_per_channel, "qwen3-fp8-channel", FP8_TOL)
GOLDEN(mistral_fp8_ignored_layers, "mistral-fp8-tensor-ignored", FP8_TOL)
GOLDEN(llama_bf16_quantized_to_fp8_at_load, "llama-bf16-fp8-dynamic", FP8_TOL)
GOLDEN(llama_ct_w4a16_group_sym, "llama-ct-w4a16-g32-sym", WQ_TOL)
GOLDEN_FOLDED(qwen2_ct_w4a16_asym_actorder_group, "qwen2-ct-w4a16-g32-asym-act", WQ_TOL, 2)
GOLDEN(qwen3_ct_w8a16_channel_asym, "qwen3-ct-w8a16-channel-asym", WQ_TOL)
GOLDEN(mistral_ct_regex_targets_and_ignore, "mistral-ct-mixed-ignore", WQ_TOL)
GOLDEN(llama_ct_fp8_dynamic_per_channel, "llama-ct-fp8-dynamic", FP8_TOL)
GOLDEN(qwen3_ct_fp8_static_per_tensor, "qwen3-ct-fp8-static", FP8_TOL)
/* The config under the legacy "compression_config" key (older llm-compressor). */
GOLDEN(qwen2_ct_w8a16_group_compression_config, "qwen2-ct-w8a16-g64-legacy-key", WQ_TOL)

/* A checkpoint that stores q/k/v fused (Phi-3's qkv_proj) is loaded in row slices
 * (pgd_model_load_linear_rows): with --quantization fp8 those slices would be quantized
 * layers, which the row loader refuses by name; the LM head stays dense and loads. */
Test(quant_refusals, row_slices_of_quantized_layers_are_refused)
{
    char dir[4096], err[1024] = "";
    snprintf(dir, sizeof dir, "%s", fixture_dir("phi3-f32"));
    struct pgd__model *m = calloc(1, sizeof *m);
    m->device = PGD_DEVICE_CPU;
    m->dtype = PGD_DTYPE_F32;
    m->dir = strdup(dir);
    m->config_path = malloc(strlen(dir) + sizeof "/config.json");
    sprintf(m->config_path, "%s/config.json", dir);
    cr_assert_eq(pgd__config_read(dir, &m->config, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__weights_open_dir(dir, &m->weights, err, sizeof err), PGD_OK, "%s", err);
    struct pgd_registry *reg = fixture_registry(NULL);
    cr_assert_eq(pgd__model_quant_setup(m, reg, "fp8", err, sizeof err), PGD_OK, "%s", err);
    struct pgd_model_ctx ctx = { .m = m };
    struct pgd_linear lin;
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, "model.layers.1.self_attn.qkv_proj", 64, 128,
                                            0, 64, false, &lin, err, sizeof err),
                 PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "model.layers.1.self_attn.qkv_proj is quantized"), "%s", err);
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, "lm_head", 64, 256, 0, 16, false, &lin, err,
                                            sizeof err), PGD_OK, "%s", err);
    cr_assert_null(lin.quant);
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
}

/* ---- labels (`pagoda models`) -------------------------------------------------------------- */
Test(quant_refusals, labels_come_from_the_config_or_the_side_file)
{
    static const struct { const char *dir, *label; } cases[] = {
        { "llama-gptq-4b-g32-sym", "gptq-int4" },
        { "qwen3-gptq-8b-gm1-asym", "gptq-int8" },
        { "mistral-gptq-4b-g64-sym-act-v2-file", "gptq-int4" },   /* quantize_config.json */
        { "qwen2-awq-g64-file", "awq-int4" },                     /* quant_config.json */
        { "llama-fp8-tensor", "fp8" },
        { "llama-ct-w4a16-g32-sym", "compressed-tensors-w4a16" },
        { "qwen3-ct-w8a16-channel-asym", "compressed-tensors-w8a16" },
        { "llama-ct-fp8-dynamic", "compressed-tensors-fp8" },
        { "mistral-ct-mixed-ignore", "compressed-tensors-mixed" },      /* W8 and W4 groups */
        { "qwen2-ct-w8a16-g64-legacy-key", "compressed-tensors-w8a16" }, /* compression_config */
        { "../models/llama-f32", "none" },
        { "no-such-dir", "?" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char label[64];
        pgd__model_quant_label(quant_dir(cases[i].dir), label, sizeof label);
        cr_expect_str_eq(label, cases[i].label, "%s", cases[i].dir);
    }
}

/* ---- refusals ------------------------------------------------------------------------------ */
static char tmpdir[256];

static void cleanup_tmp(void)
{
    fixture_copy_remove(tmpdir);
}

/* Copies a quantized fixture into tmpdir (the last copy removed), replacing the text `from`
 * with `to` in `file` (config.json, or model.safetensors' JSON header: a same-length edit
 * keeps its offsets). */
static const char *edited(const char *name, const char *file, const char *from, const char *to)
{
    cr_assert(!strcmp(file, "config.json") || strlen(from) == strlen(to));
    cleanup_tmp();
    return fixture_copy_edited(quant_dir(name), file, from, to, tmpdir);
}

static enum pgd_status load_with(const char *dir, const char *quantization, char *err,
                                 size_t errlen)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = NULL;
    struct pgd__model_opts o = { .dtype = PGD_DTYPE_COUNT, .quantization = quantization };
    enum pgd_status st = pgd__model_load_opts(dir, reg, PGD_DEVICE_CPU, &o, &m, err, errlen);
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
    return st;
}

Test(quant_refusals, each_is_refused_naming_the_key_or_tensor, .fini = cleanup_tmp)
{
    static const struct {
        const char *what, *fixture, *file, *from, *to, *quantization;
        enum pgd_status status;
        const char *need1, *need2;
    } cases[] = {
        { "unknown method in config.json", "llama-gptq-4b-g32-sym", "config.json",
          "\"quant_method\": \"gptq\"", "\"quant_method\": \"hqq\"", NULL,
          PGD_ERR_UNSUPPORTED, "hqq", "gptq" },
        { "--quantization another method", "llama-gptq-4b-g32-sym", "config.json", "{", "{",
          "awq", PGD_ERR_INVALID_ARG, "\"gptq\"", "\"awq\"" },
        { "--quantization gptq on a 16-bit checkpoint", "../models/llama-f32", "config.json", "{",
          "{", "gptq", PGD_ERR_UNSUPPORTED, "--quantization gptq needs a checkpoint",
          "quantize_config.json" },
        { "--quantization unknown", "../models/llama-f32", "config.json", "{", "{", "squeeze",
          PGD_ERR_UNSUPPORTED, "\"squeeze\"", "claimed" },
        { "3 bits", "llama-gptq-4b-g32-sym", "config.json", "\"bits\": 4", "\"bits\": 3", NULL,
          PGD_ERR_UNSUPPORTED, "quantization_config.bits", "3" },
        { "group size 0", "llama-gptq-4b-g32-sym", "config.json", "\"group_size\": 32",
          "\"group_size\": 0", NULL, PGD_ERR_FORMAT, "quantization_config.group_size", NULL },
        { "group size that does not divide", "llama-gptq-4b-g32-sym", "config.json",
          "\"group_size\": 32", "\"group_size\": 48", NULL, PGD_ERR_UNSUPPORTED,
          "model.layers.0.self_attn.q_proj", "48" },
        { "group size the tensors disagree with", "llama-gptq-4b-g32-sym", "config.json",
          "\"group_size\": 32", "\"group_size\": 16", NULL, PGD_ERR_FORMAT,
          "'model.layers.0.self_attn.q_proj.qzeros'", "[4, 8]" },
        { "bits the tensors disagree with", "llama-gptq-4b-g32-sym", "config.json",
          "\"bits\": 4", "\"bits\": 8", NULL, PGD_ERR_FORMAT,
          "'model.layers.0.self_attn.q_proj.qweight'", "[16, 64]" },
        { "qzeros of another dtype", "llama-gptq-4b-g32-sym", "model.safetensors",
          "\"model.layers.0.self_attn.q_proj.qzeros\":{\"dtype\":\"I32\"",
          "\"model.layers.0.self_attn.q_proj.qzeros\":{\"dtype\":\"F32\"", NULL, PGD_ERR_FORMAT,
          "'model.layers.0.self_attn.q_proj.qzeros' is F32", "expected I32" },
        { "quantized LM head", "llama-gptq-4b-g32-sym", "config.json", "\"bits\": 4",
          "\"lm_head\": true, \"bits\": 4", NULL, PGD_ERR_UNSUPPORTED, "lm_head", NULL },
        { "GPTQModel per-module overrides", "llama-gptq-4b-g32-sym", "config.json",
          "\"bits\": 4", "\"dynamic\": {\"-:.*mlp.*\": {}}, \"bits\": 4", NULL,
          PGD_ERR_UNSUPPORTED, "quantization_config.dynamic", NULL },
        { "--quantization fp8 on a GPTQ checkpoint", "llama-gptq-4b-g32-sym", "config.json", "{",
          "{", "fp8", PGD_ERR_INVALID_ARG, "quantized with \"gptq\"", "asks for \"fp8\"" },
        { "settings read from quantize_config.json", "mistral-gptq-4b-g64-sym-act-v2-file",
          "quantize_config.json", "\"bits\": 4", "\"bits\": 2", NULL, PGD_ERR_UNSUPPORTED,
          "quantization_config.bits", "2" },
        { "checkpoint format unknown", "llama-gptq-4b-g32-sym", "config.json",
          "\"checkpoint_format\": \"gptq\"", "\"checkpoint_format\": \"marlin\"", NULL,
          PGD_ERR_UNSUPPORTED, "checkpoint_format", "marlin" },
        { "AWQ GEMV layout", "llama-awq-g32-skip", "config.json", "\"version\": \"gemm\"",
          "\"version\": \"gemv\"", NULL, PGD_ERR_UNSUPPORTED, "quantization_config.version",
          "gemv" },
        { "AWQ without zero points", "llama-awq-g32-skip", "config.json",
          "\"zero_point\": true", "\"zero_point\": false", NULL, PGD_ERR_UNSUPPORTED,
          "zero_point", NULL },
        { "AWQ layer left dense but listed as quantized", "llama-awq-g32-skip", "config.json",
          "\"layers.1.mlp\"", "\"nothing\"", NULL, PGD_ERR_NOT_FOUND,
          "'model.layers.1.mlp.down_proj.qweight'", NULL },   /* down loads before gate/up */
        { "FP8 static activations", "llama-fp8-tensor", "config.json",
          "\"activation_scheme\": \"dynamic\"", "\"activation_scheme\": \"static\"", NULL,
          PGD_ERR_UNSUPPORTED, "activation_scheme", "static" },
        { "FP8 block scales", "llama-fp8-tensor", "config.json",
          "\"activation_scheme\"", "\"weight_block_size\": [128, 128], \"activation_scheme\"",
          NULL, PGD_ERR_UNSUPPORTED, "weight_block_size", NULL },
        { "FP8 weight of another dtype", "llama-fp8-tensor", "model.safetensors",
          "\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"F8_E4M3\"",
          "\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"U8\"     ",
          NULL, PGD_ERR_FORMAT, "'model.layers.0.mlp.down_proj.weight' is U8", "expected F8_E4M3" },
        { "compressed-tensors not compressed", "llama-ct-w4a16-g32-sym", "config.json",
          "\"quantization_status\": \"compressed\"", "\"quantization_status\": \"frozen\"", NULL,
          PGD_ERR_UNSUPPORTED, "quantization_config.quantization_status", "frozen" },
        { "compressed-tensors group format", "llama-ct-w4a16-g32-sym", "config.json",
          "\"format\": \"pack-quantized\"", "\"format\": \"marlin-24\"", NULL, PGD_ERR_UNSUPPORTED,
          "quantization_config.config_groups.group_0.format", "marlin-24" },
        { "compressed-tensors 3 bits", "llama-ct-w4a16-g32-sym", "config.json",
          "\"num_bits\": 4", "\"num_bits\": 3", NULL, PGD_ERR_UNSUPPORTED,
          "quantization_config.config_groups.group_0.weights.num_bits", "3" },
        { "compressed-tensors int per tensor", "llama-ct-w4a16-g32-sym", "config.json",
          "\"strategy\": \"group\"", "\"strategy\": \"tensor\"", NULL, PGD_ERR_UNSUPPORTED,
          "group_0.weights.strategy", "tensor" },
        { "compressed-tensors W4A8", "llama-ct-w4a16-g32-sym", "config.json",
          "\"input_activations\": null", "\"input_activations\": {\"num_bits\": 8}", NULL,
          PGD_ERR_UNSUPPORTED, "group_0.input_activations", "W4A8" },
        { "compressed-tensors actorder", "llama-ct-w4a16-g32-sym", "config.json",
          "\"actorder\": null", "\"actorder\": \"sideways\"", NULL, PGD_ERR_UNSUPPORTED,
          "group_0.weights.actorder", "sideways" },
        { "compressed-tensors sparse", "llama-ct-w4a16-g32-sym", "config.json",
          "\"sparsity_config\": {}", "\"sparsity_config\": {\"format\": \"sparse-24-bitmask\"}",
          NULL, PGD_ERR_UNSUPPORTED, "quantization_config.sparsity_config", "sparse-24-bitmask" },
        { "compressed-tensors bad regex", "llama-ct-w4a16-g32-sym", "config.json",
          "\"lm_head\"", "\"re:((\"", NULL, PGD_ERR_FORMAT, "quantization_config.ignore.0",
          "not a regular expression" },
        { "compressed-tensors group size the tensors disagree with", "llama-ct-w4a16-g32-sym",
          "config.json", "\"group_size\": 32", "\"group_size\": 16", NULL, PGD_ERR_FORMAT,
          "'model.layers.0.self_attn.q_proj.weight_scale'", "[64, 4]" },
        { "compressed-tensors weight_packed of another dtype", "llama-ct-w4a16-g32-sym",
          "model.safetensors", "\"model.layers.0.self_attn.q_proj.weight_packed\":{\"dtype\":\"I32\"",
          "\"model.layers.0.self_attn.q_proj.weight_packed\":{\"dtype\":\"F32\"", NULL, PGD_ERR_FORMAT,
          "'model.layers.0.self_attn.q_proj.weight_packed' is F32", "expected I32" },
        { "compressed-tensors zero points missing", "llama-ct-w4a16-g32-sym", "config.json",
          "\"symmetric\": true", "\"symmetric\": false", NULL, PGD_ERR_NOT_FOUND,
          "weight_zero_point", NULL },
        { "compressed-tensors FP8 weights only", "llama-ct-fp8-dynamic", "config.json",
          "\"input_activations\": {", "\"input_activations\": null, \"unused\": {", NULL,
          PGD_ERR_UNSUPPORTED, "group_0.input_activations\" = null", "W8A16" },
        { "compressed-tensors FP8 block scales", "llama-ct-fp8-dynamic", "config.json",
          "\"strategy\": \"channel\"", "\"strategy\": \"block\"", NULL, PGD_ERR_UNSUPPORTED,
          "group_0.weights.strategy", "block" },
        { "compressed-tensors FP8 scale granularity the tensors disagree with",
          "llama-ct-fp8-dynamic", "config.json", "\"strategy\": \"channel\"",
          "\"strategy\": \"tensor\"", NULL, PGD_ERR_FORMAT, "weight_scale: a scale per channel",
          "strategy \"tensor\"" },
        { "compression_config without quant_method", "qwen2-ct-w8a16-g64-legacy-key",
          "config.json", "\"quant_method\": \"compressed-tensors\"", "\"quant_mode\": \"ct\"",
          NULL, PGD_ERR_FORMAT, "\"compression_config\" has no \"quant_method\"", NULL },
        { "compression_config read as quantization_config", "qwen2-ct-w8a16-g64-legacy-key",
          "config.json", "\"num_bits\": 8", "\"num_bits\": 3", NULL, PGD_ERR_UNSUPPORTED,
          "quantization_config.config_groups.group_0.weights.num_bits", "3" },
        { "quantization_config wins over compression_config", "qwen2-ct-w8a16-g64-legacy-key",
          "config.json", "\"compression_config\": {",
          "\"quantization_config\": {\"quant_method\": \"hqq\"}, \"compression_config\": {",
          NULL, PGD_ERR_UNSUPPORTED, "\"hqq\"", NULL },
        { "compression_config beside --quantization gptq", "qwen2-ct-w8a16-g64-legacy-key",
          "config.json", "{", "{", "gptq", PGD_ERR_INVALID_ARG,
          "quantized with \"compressed-tensors\"", "asks for \"gptq\"" },
        { "--quantization compressed-tensors on a 16-bit checkpoint", "../models/llama-f32",
          "config.json", "{", "{", "compressed-tensors", PGD_ERR_UNSUPPORTED,
          "--quantization compressed-tensors needs a checkpoint", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = edited(cases[i].fixture, cases[i].file, cases[i].from, cases[i].to);
        char err[1024] = "";
        enum pgd_status st = load_with(dir, cases[i].quantization, err, sizeof err);
        cr_expect_eq(st, cases[i].status, "%s: status %s, expected %s (%s)", cases[i].what,
                     pgd_status_str(st), pgd_status_str(cases[i].status), err);
        cr_expect(strstr(err, cases[i].need1), "%s: '%s' lacks '%s'", cases[i].what, err,
                  cases[i].need1);
        if (cases[i].need2)
            cr_expect(strstr(err, cases[i].need2), "%s: '%s' lacks '%s'", cases[i].what, err,
                      cases[i].need2);
    }
}
