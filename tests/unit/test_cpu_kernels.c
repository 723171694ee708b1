/* The CPU kernels against direct transcriptions of their formulas on random inputs. The
 * paged attention kernel is checked against dense attention over contiguous K/V. */
#include "tests/lib/test_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "runtime/runner/fwd.h"
#include <pagoda/plugin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(cpu_kernels);

static uint64_t rng_state = 0x1234567u;
static float frand(void)        /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static float *rand_array(size_t n)
{
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = frand();
    return a;
}

Test(cpu_kernels, rmsnorm_and_fused_add)
{
    int rows = 3, d = 37;
    float *x = rand_array((size_t)rows * d), *w = rand_array((size_t)d);
    float *delta = rand_array((size_t)rows * d), out[3 * 37], res[3 * 37];
    pgd_cpu_rmsnorm(x, w, 1e-5f, rows, d, out);
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < d; i++)
            ss += x[r * d + i] * x[r * d + i];
        double inv = 1 / sqrt(ss / d + 1e-5);
        for (int i = 0; i < d; i++)
            cr_assert_float_eq(out[r * d + i], x[r * d + i] * inv * w[i], 1e-6);
    }
    memcpy(res, x, sizeof res);
    pgd_cpu_add_rmsnorm(res, delta, w, 1e-5f, rows, d, out);
    for (int i = 0; i < rows * d; i++)
        cr_assert_float_eq(res[i], x[i] + delta[i], 1e-7);
    float out2[3 * 37];
    pgd_cpu_rmsnorm(res, w, 1e-5f, rows, d, out2);
    cr_assert_arr_eq(out, out2, sizeof out);
    free(x); free(w); free(delta);
}

Test(cpu_kernels, linear_matches_loops)
{
    int n = 5, in = 19, out = 7;
    float *x = rand_array((size_t)n * in), *w = rand_array((size_t)out * in), *b = rand_array(7);
    float y[5 * 7];
    pgd_cpu_linear(x, w, b, n, in, out, y);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < out; c++) {
            double s = b[c];
            for (int k = 0; k < in; k++)
                s += (double)x[r * in + k] * w[c * in + k];
            cr_assert_float_eq(y[r * out + c], s, 1e-5);
        }
    free(x); free(w); free(b);
}

/* The batch-invariant linear: a linear (against loops in double), and each row the same
 * bits as the row computed alone, whatever the batch's size and the row's place in it;
 * out = 600 has a last block of columns narrower than the others. */
Test(cpu_kernels, linear_invariant_gives_each_row_its_bits_alone)
{
    const int in = 96, out = 600, max_n = 37;
    float *x = rand_array((size_t)max_n * in), *w = rand_array((size_t)out * in);
    float *b = rand_array((size_t)out);
    float *y = malloc(sizeof(float) * max_n * out), *one = malloc(sizeof(float) * out);
    float *all = malloc(sizeof(float) * max_n * out);
    pgd_cpu_linear_invariant(x, w, b, max_n, in, out, all);
    for (int r = 0; r < max_n; r++)
        for (int c = 0; c < out; c += 7) {
            double s = b[c];
            for (int k = 0; k < in; k++)
                s += (double)x[r * in + k] * w[(size_t)c * in + k];
            cr_assert_float_eq(all[(size_t)r * out + c], s, 1e-4, "row %d col %d", r, c);
        }
    for (int n = 1; n <= max_n; n += 3)
        for (int first = 0; first + n <= max_n; first += 5) {
            pgd_cpu_linear_invariant(x + (size_t)first * in, w, b, n, in, out, y);
            for (int r = 0; r < n; r++) {
                pgd_cpu_linear_invariant(x + (size_t)(first + r) * in, w, b, 1, in, out, one);
                cr_assert_arr_eq(y + (size_t)r * out, one, sizeof(float) * out,
                                 "row %d of %d (x row %d) differs from the row alone", r, n,
                                 first + r);
                cr_assert_arr_eq(y + (size_t)r * out, all + (size_t)(first + r) * out,
                                 sizeof(float) * out, "row %d of %d", r, n);
            }
        }
    free(x); free(w); free(b); free(y); free(one); free(all);
}

Test(cpu_kernels, act_mul)
{
    float gu[2 * 4] = { -2.0f, 0.0f, 1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 4.0f }, out[4];
    pgd_cpu_act_mul(PGD_ACT_SILU, gu, 1, 4, out);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(out[i], gu[i] / (1 + exp(-gu[i])) * gu[4 + i], 1e-6);
    pgd_cpu_act_mul(PGD_ACT_GELU_TANH, gu, 1, 4, out);
    for (int i = 0; i < 4; i++) {
        double g = gu[i];
        double gelu = 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
        cr_assert_float_eq(out[i], gelu * gu[4 + i], 1e-6);
    }
}

/* pgd_op_linear_act_mul on a CPU step is pgd_op_linear then pgd_op_act_mul, bit for bit
 * (the decoder's MLP relies on it), and both are the formula act(x Wg^T + bg) * (x Wu^T + bu). */
static void check_linear_act_mul_op(enum pgd_act act, int n, int in, int inter, bool bias)
{
    struct pgd__arena arena;
    pgd__arena_init(&arena, PGD_DEVICE_CPU);
    struct pgd_fwd f = { .device = PGD_DEVICE_CPU, .act_dtype = PGD_DTYPE_F32, .n_tokens = n,
                         .arena = &arena };
    float *w = rand_array((size_t)2 * inter * in), *b = rand_array((size_t)2 * inter);
    struct pgd_linear gu = {
        .weight = { .data = w, .dtype = PGD_DTYPE_F32, .device = PGD_DEVICE_CPU, .ndim = 2,
                    .ne = { 2 * inter, in } },
        .bias = { .data = bias ? b : NULL, .dtype = PGD_DTYPE_F32, .device = PGD_DEVICE_CPU,
                  .ndim = 1, .ne = { 2 * inter } },
        .in_features = in, .out_features = 2 * inter };
    struct pgd_tensor x = pgd_fwd_alloc(&f, n, in), scratch = pgd_fwd_alloc(&f, n, 2 * inter);
    struct pgd_tensor out = pgd_fwd_alloc(&f, n, inter), gu2 = pgd_fwd_alloc(&f, n, 2 * inter);
    struct pgd_tensor want = pgd_fwd_alloc(&f, n, inter);
    float *xd = x.data;
    for (int i = 0; i < n * in; i++)
        xd[i] = 2 * frand();
    pgd_op_linear_act_mul(&f, &gu, act, &x, &scratch, &out);
    pgd_op_linear(&f, &gu, &x, &gu2);
    pgd_op_act_mul(&f, act, &gu2, &want);
    cr_assert_eq(f.status, PGD_OK, "%s", f.err);
    const float *got = out.data, *ref = want.data;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < inter; i++) {
            size_t e = (size_t)r * inter + i;
            cr_assert(memcmp(&got[e], &ref[e], sizeof(float)) == 0,
                      "act %d n %d in %d I %d%s: row %d col %d is %.9g, linear + act_mul gives "
                      "%.9g", (int)act, n, in, inter, bias ? " bias" : "", r, i, got[e], ref[e]);
            double g = bias ? b[i] : 0, u = bias ? b[inter + i] : 0;
            for (int k = 0; k < in; k++) {
                g += (double)xd[(size_t)r * in + k] * w[(size_t)i * in + k];
                u += (double)xd[(size_t)r * in + k] * w[(size_t)(inter + i) * in + k];
            }
            double a = act == PGD_ACT_SILU
                           ? g / (1 + exp(-g))
                           : 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
            cr_assert_float_eq(got[e], a * u, 1e-4 * (1 + fabs(a * u)),
                               "act %d row %d col %d: %.9g, the formula %.9g", (int)act, r, i,
                               got[e], a * u);
        }
    /* A wrong out shape is reported, naming the op. */
    struct pgd_tensor bad = out;
    bad.ne[1] = inter - 1;
    pgd_op_linear_act_mul(&f, &gu, act, &x, &scratch, &bad);
    cr_assert_eq(f.status, PGD_ERR_INVALID_ARG);
    cr_assert(strstr(f.err, "act_mul"), "%s", f.err);
    free(w); free(b);
    pgd__arena_fini(&arena);
}

Test(cpu_kernels, linear_act_mul_op_is_linear_then_act_mul)
{
    check_linear_act_mul_op(PGD_ACT_SILU, 1, 64, 40, false);
    check_linear_act_mul_op(PGD_ACT_SILU, 3, 37, 29, true);
    check_linear_act_mul_op(PGD_ACT_GELU_TANH, 2, 64, 40, true);
    check_linear_act_mul_op(PGD_ACT_GELU_TANH, 9, 19, 13, false);
}

/* A quant plugin's linear for the test below: y[r, j] = j + 1 (gate 1, 2; up 3, 4). */
static void fake_quant_linear(struct pgd_fwd *f, const struct pgd_linear *w,
                              const struct pgd_tensor *x, struct pgd_tensor *y)
{
    (void)f;
    (void)x;
    float *yd = y->data;
    for (int64_t r = 0; r < pgd_tensor_rows(y); r++)
        for (int64_t j = 0; j < w->out_features; j++)
            yd[r * w->out_features + j] = (float)(j + 1);
}

/* Quantized weights take the two ops' path: the plugin's linear into the scratch, then the
 * activation, not a kernel of ours. */
Test(cpu_kernels, linear_act_mul_op_quantized_falls_back)
{
    struct pgd__arena arena;
    pgd__arena_init(&arena, PGD_DEVICE_CPU);
    struct pgd_fwd f = { .device = PGD_DEVICE_CPU, .act_dtype = PGD_DTYPE_F32, .n_tokens = 1,
                         .arena = &arena };
    static const struct pgd_quant_ops fake_quant_ops = { .linear = fake_quant_linear };
    struct pgd_linear gu = { .in_features = 8, .out_features = 4, .quant = &fake_quant_ops };
    struct pgd_tensor x = pgd_fwd_alloc(&f, 1, 8), scratch = pgd_fwd_alloc(&f, 1, 4);
    struct pgd_tensor out = pgd_fwd_alloc(&f, 1, 2);
    pgd_op_linear_act_mul(&f, &gu, PGD_ACT_SILU, &x, &scratch, &out);
    cr_assert_eq(f.status, PGD_OK, "%s", f.err);
    const float *o = out.data;
    for (int j = 0; j < 2; j++) {
        float g = (float)(j + 1), silu = g / (1.0f + expf(-g));
        cr_assert_float_eq(o[j], silu * (float)(j + 3), 1e-6, "out[%d] = %g", j, o[j]);
    }
    pgd__arena_fini(&arena);
}

Test(cpu_kernels, rope_rotates_pairs_and_keeps_norms)
{
    int H = 2, D = 8, n = 3;
    float inv_freq[4] = { 1.0f, 0.1f, 0.01f, 0.001f };
    float *q = rand_array((size_t)n * H * D), *q0 = malloc((size_t)n * H * D * sizeof *q0);
    memcpy(q0, q, (size_t)n * H * D * sizeof *q);
    int32_t pos[3] = { 0, 5, 17 };
    pgd_cpu_rope(q, H, NULL, 0, n, D, D, inv_freq, pos);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++)
            for (int j = 0; j < 4; j++) {
                const float *a = q0 + (t * H + h) * D, *b = q + (t * H + h) * D;
                double ang = (double)pos[t] * inv_freq[j], c = cos(ang), s = sin(ang);
                cr_assert_float_eq(b[j], a[j] * c - a[j + 4] * s, 1e-5);
                cr_assert_float_eq(b[j + 4], a[j + 4] * c + a[j] * s, 1e-5);
            }
    free(q); free(q0);
}

Test(cpu_kernels, rope_llama3_scaling_bands)
{
    struct pgd_rope_config base = { .head_dim = 64, .rotary_dim = 64, .theta = 500000.0 };
    struct pgd_rope_config l3 = base;
    l3.scaling = PGD_ROPE_LLAMA3;
    l3.factor = 8;
    l3.low_freq_factor = 1;
    l3.high_freq_factor = 4;
    l3.original_max_position = 8192;
    struct pgd_rope a, b;
    char err[256];
    cr_assert_eq(pgd_rope_init(&a, &base, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd_rope_init(&b, &l3, err, sizeof err), PGD_OK);
    int seen_high = 0, seen_low = 0, seen_mid = 0;
    for (int j = 0; j < 32; j++) {
        double wavelen = 2 * M_PI / a.inv_freq[j];
        if (wavelen < 8192 / 4.0) {            /* high frequency: unchanged */
            cr_assert_float_eq(b.inv_freq[j], a.inv_freq[j], 1e-12);
            seen_high++;
        } else if (wavelen > 8192 / 1.0) {     /* low frequency: divided by factor */
            cr_assert_float_eq(b.inv_freq[j], a.inv_freq[j] / 8, 1e-9);
            seen_low++;
        } else {                               /* in between: strictly between the two */
            cr_assert(b.inv_freq[j] < a.inv_freq[j] && b.inv_freq[j] > a.inv_freq[j] / 8);
            seen_mid++;
        }
    }
    cr_assert(seen_high && seen_low && seen_mid);
    pgd_rope_fini(&a);
    pgd_rope_fini(&b);
    struct pgd_rope_config bad = base;
    bad.rotary_dim = 63;
    cr_assert_eq(pgd_rope_init(&a, &bad, err, sizeof err), PGD_ERR_INVALID_ARG);
}

/* Dense reference: attention of query row t (position pos) over K/V rows [0, pos] of one
 * sequence laid out contiguously, with an optional window. */
static void dense_attention(const float *q, const float *k, const float *v, int pos, int H,
                            int KV, int D, int window, float *out)
{
    for (int h = 0; h < H; h++) {
        int kh = h / (H / KV);
        double sc[512], mx = -1e300, sum = 0;
        int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
        for (int j = first; j <= pos; j++) {
            double s = 0;
            for (int d = 0; d < D; d++)
                s += (double)q[h * D + d] * k[(j * KV + kh) * D + d];
            sc[j] = s / sqrt(D);
            if (sc[j] > mx) mx = sc[j];
        }
        for (int j = first; j <= pos; j++)
            sum += exp(sc[j] - mx);
        for (int d = 0; d < D; d++) {
            double o = 0;
            for (int j = first; j <= pos; j++)
                o += exp(sc[j] - mx) / sum * v[(j * KV + kh) * D + d];
            out[h * D + d] = (float)o;
        }
    }
}

/* Two sequences: one with a cached prefix and new tokens, one decoding one token; blocks
 * scattered over the pool; with and without a sliding window. */
static void check_paged(int window)
{
    enum { H = 4, KV = 2, D = 8, BS = 4, NB = 16 };
    int lens[2] = { 13, 6 }, news[2] = { 5, 1 };
    int32_t tables[2][4] = { { 9, 2, 14, 5 }, { 7, 0, 0, 0 } };
    tables[1][1] = 11;
    float *kc = calloc((size_t)NB * BS * KV * D, sizeof *kc), *vc = calloc((size_t)NB * BS * KV * D, sizeof *vc);
    struct pgd_cpu_kv_layer kv = { kc, vc, BS, KV, D, NULL, NULL, 0, 0 };
    float *K[2], *V[2], *Q[2];
    int n = news[0] + news[1];
    float *q = malloc((size_t)n * H * D * sizeof *q), *kn = malloc((size_t)n * KV * D * sizeof *kn),
          *vn = malloc((size_t)n * KV * D * sizeof *vn), *out = malloc((size_t)n * H * D * sizeof *out);
    int64_t slots[8];
    int32_t positions[8], qs[3] = { 0, news[0], n }, seq_lens[2] = { lens[0], lens[1] };
    int t = 0;
    for (int s = 0; s < 2; s++) {
        K[s] = rand_array((size_t)lens[s] * KV * D);
        V[s] = rand_array((size_t)lens[s] * KV * D);
        Q[s] = rand_array((size_t)lens[s] * H * D);
        /* the cached prefix goes straight into the pool */
        int cached = lens[s] - news[s];
        for (int j = 0; j < cached; j++) {
            int64_t slot = (int64_t)tables[s][j / BS] * BS + j % BS;
            int64_t one[1] = { slot };
            pgd_cpu_kv_write(&kv, K[s] + j * KV * D, V[s] + j * KV * D, one, 1);
        }
        for (int j = cached; j < lens[s]; j++, t++) {
            memcpy(q + t * H * D, Q[s] + j * H * D, H * D * sizeof *q);
            memcpy(kn + t * KV * D, K[s] + j * KV * D, KV * D * sizeof *kn);
            memcpy(vn + t * KV * D, V[s] + j * KV * D, KV * D * sizeof *vn);
            slots[t] = (int64_t)tables[s][j / BS] * BS + j % BS;
            positions[t] = j;
        }
    }
    pgd_cpu_kv_write(&kv, kn, vn, slots, n);
    struct pgd_cpu_seq_layout L = { 2, qs, seq_lens, &tables[0][0], 4, positions };
    struct pgd_attn_params p = { H, KV, D, (float)(1 / sqrt(D)), window };
    float scores[64];
    pgd_cpu_attention(&kv, &L, &p, q, scores, out);
    t = 0;
    for (int s = 0; s < 2; s++)
        for (int j = lens[s] - news[s]; j < lens[s]; j++, t++) {
            float want[H * D];
            dense_attention(Q[s] + j * H * D, K[s], V[s], j, H, KV, D, window, want);
            for (int i = 0; i < H * D; i++)
                cr_assert_float_eq(out[t * H * D + i], want[i], 1e-5, "seq %d pos %d dim %d", s, j, i);
        }
    for (int s = 0; s < 2; s++) { free(K[s]); free(V[s]); free(Q[s]); }
    free(kc); free(vc); free(q); free(kn); free(vn); free(out);
}

Test(cpu_kernels, paged_attention_matches_dense) { check_paged(0); }
Test(cpu_kernels, paged_attention_sliding_window) { check_paged(3); }
