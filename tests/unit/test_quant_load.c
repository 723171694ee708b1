/* Quantized models without a checkpoint of their own: random quantized layers
 * (--load-format dummy with a quantization, runtime/model/qrandom.c) in the layout the
 * quantization_config describes, scaled like the dense random weights, and models built from
 * them that run with finite logits of the dense random model's size; compressed-tensors'
 * pack-quantized conversion on random integers; the catalog's quant
 * values, which are the labels pagoda gives every quantized fixture. */
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "tests/lib/capture.h"
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "runtime/model/qweight.h"
#include "runtime/runner/runner.h"
#include "runtime/hub/hub.h"
#include "plugins/quant/compressed_tensors/ct_convert.h"
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(quant_random);
PGD_TEST_SUITE(quant_catalog);
PGD_TEST_SUITE(ct_convert);

static const char *quant_fixture(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/fixtures/quant/%s",
             getenv("PGD_TEST_SRCDIR") && *getenv("PGD_TEST_SRCDIR") ? getenv("PGD_TEST_SRCDIR")
                                                                     : PGD_TEST_SRCDIR, name);
    return buf;
}

static double rms(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

/* A bare model with a seed: enough for the random layer services. */
static struct pgd__model *bare_model(uint64_t seed)
{
    struct pgd__model *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    *m = (struct pgd__model){ .device = PGD_DEVICE_CPU, .dtype = PGD_DTYPE_F32,
                              .random_weights = true, .random_seed = seed };
    return m;
}

/* The dequantized RMS is the dense random weights' 1 / sqrt(in) (uniform in +-sqrt(3 / in)),
 * for every bit width and FP8 scale granularity: activations keep their size. */
Test(quant_random, layers_are_scaled_like_the_dense_random_weights)
{
    struct pgd__model *m = bare_model(7);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    const int64_t in = 1024, out = 256;
    float *dense = malloc((size_t)(in * out) * sizeof *dense);
    for (int bits = 4; bits <= 8; bits += 4) {
        struct pgd_wq_host h;
        void *block;
        cr_assert_eq(pgd_model_random_wq(&ctx, "model.layers.0.mlp.down_proj", bits, 128, false,
                                         in, out, &h, &block, err, sizeof err), PGD_OK, "%s", err);
        cr_assert_eq(h.bits, bits);
        cr_assert_eq(h.group_size, 128);
        cr_assert_null(h.perm);
        for (int64_t i = 0; i < in / 128 * out; i++) {
            cr_assert_eq(h.zeros[i], (float)(1 << (bits - 1)));
            cr_assert(h.scales[i] > 0 && isfinite(h.scales[i]));
        }
        pgd_cpu_wq_dequantize(&h, dense);
        double r = rms(dense, (size_t)(in * out)) * sqrt((double)in);
        cr_assert(r > 0.95 && r < 1.05, "%d bits: RMS %g / sqrt(in)", bits, r);
        free(block);
    }
    for (int pc = 0; pc < 2; pc++) {
        struct pgd_fp8_host h;
        void *block;
        cr_assert_eq(pgd_model_random_fp8(&ctx, "model.layers.0.mlp.down_proj", pc, in, out, &h,
                                          &block, err, sizeof err), PGD_OK, "%s", err);
        cr_assert_eq(h.per_channel, pc);
        pgd_cpu_fp8_dequantize(&h, dense);
        size_t distinct = 0;
        bool seen[256] = { false };
        for (int64_t i = 0; i < in * out; i++) {
            cr_assert(isfinite(dense[i]));
            distinct += !seen[h.weight[i]];
            seen[h.weight[i]] = true;
        }
        cr_assert_eq(distinct, 64, "the codes of 4 exponents, 8 mantissas and 2 signs");
        double r = rms(dense, (size_t)(in * out)) * sqrt((double)in);
        cr_assert(r > 0.95 && r < 1.05, "fp8 per %s: RMS %g / sqrt(in)",
                  pc ? "channel" : "tensor", r);
        free(block);
    }
    free(dense);
    free(m);
}

static int32_t *perm_of(struct pgd_model_ctx *ctx, const char *name, int64_t in, int64_t out,
                        void **block)
{
    struct pgd_wq_host h;
    char err[1024] = "";
    cr_assert_eq(pgd_model_random_wq(ctx, name, 4, 32, true, in, out, &h, block, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_assert_not_null(h.perm);
    return (int32_t *)h.perm;
}

/* act-order: a permutation of the inputs, shared by the parts of one fused layer (they see
 * the same inputs: the join needs one perm), another for another layer; the same seed makes
 * the same layer again. Group sizes that do not divide the input are refused by name. */
Test(quant_random, act_order_perms_are_shared_within_a_module)
{
    struct pgd__model *m = bare_model(11);
    struct pgd_model_ctx ctx = { .m = m };
    void *bq, *bk, *bo;
    int32_t *q = perm_of(&ctx, "model.layers.0.self_attn.q_proj", 256, 64, &bq);
    int32_t *k = perm_of(&ctx, "model.layers.0.self_attn.k_proj", 256, 32, &bk);
    int32_t *o = perm_of(&ctx, "model.layers.1.self_attn.q_proj", 256, 64, &bo);
    bool seen[256] = { false }, identity = true;
    for (int i = 0; i < 256; i++) {
        cr_assert(q[i] >= 0 && q[i] < 256 && !seen[q[i]]);
        seen[q[i]] = true;
        identity = identity && q[i] == i;
    }
    cr_assert(!identity);
    cr_assert_arr_eq(q, k, 256 * sizeof *q);
    cr_assert(memcmp(q, o, 256 * sizeof *q) != 0);
    struct pgd_wq_host parts[2], joined;
    char err[1024] = "";
    void *b0, *b1, *bj;
    cr_assert_eq(pgd_model_random_wq(&ctx, "model.layers.0.mlp.gate_proj", 8, 64, true, 256, 96,
                                     &parts[0], &b0, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd_model_random_wq(&ctx, "model.layers.0.mlp.up_proj", 8, 64, true, 256, 96,
                                     &parts[1], &b1, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__wq_join("gate_up", parts, 2, &joined, &bj, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert_neq(memcmp(parts[0].qweight, parts[1].qweight, 64 * 96), 0);
    free(bj);
    free(b0);
    free(b1);
    /* The same seed and name: the same layer. */
    void *again;
    int32_t *q2 = perm_of(&ctx, "model.layers.0.self_attn.q_proj", 256, 64, &again);
    cr_assert_arr_eq(q, q2, 256 * sizeof *q);
    free(again);
    free(bq);
    free(bk);
    free(bo);
    struct pgd_wq_host h;
    void *b;
    cr_assert_eq(pgd_model_random_wq(&ctx, "model.layers.0.mlp.down_proj", 4, 48, false, 256, 64,
                                     &h, &b, err, sizeof err), PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "model.layers.0.mlp.down_proj") && strstr(err, "48"), "%s", err);
    cr_assert_eq(pgd_model_random_wq(&ctx, "x", 3, 32, false, 256, 64, &h, &b, err, sizeof err),
                 PGD_ERR_UNSUPPORTED);
    free(m);
}

/* ---- whole models ---------------------------------------------------------------------- */
static struct pgd__runner *random_runner(struct pgd_registry *reg, const char *dir,
                                         const char *quantization)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = dir;
    p.quantization = quantization;
    p.random_weights = true;
    p.seed = 5;
    p.registry = reg;
    p.num_blocks = 8;
    p.block_size = 16;
    p.max_num_seqs = 4;
    p.max_num_batched_tokens = 512;
    char err[1024] = "";
    struct pgd__runner *r = NULL;
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s: %s", dir, err);
    return r;
}

/* The RMS of the logits after a short prompt, and the 8 greedy tokens after it (all finite). */
static double logits_rms(struct pgd__runner *r, const char *what)
{
    int vocab = pgd__runner_desc(r)->vocab_size;
    int32_t prompt[6] = { 1, 17, 42, 99, 7, 300 % vocab }, table[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    int32_t out[8];
    float *first = malloc((size_t)vocab * sizeof *first), *last = malloc((size_t)vocab * 4);
    greedy_run(r, prompt, 6, 8, 0, table, out, first, last);
    for (int i = 0; i < vocab; i++)
        cr_assert(isfinite(first[i]) && isfinite(last[i]), "%s: logit %d is not finite", what, i);
    double v = rms(first, (size_t)vocab);
    free(first);
    free(last);
    return v;
}

struct random_case {
    const char *what, *fixture, *quantization;   /* fixture: under tests/fixtures/quant, or
                                                    NULL: the dense llama-f32 */
    enum pgd__qweight_kind kind;
    size_t n_quantized;          /* layers the plugin loaded (q, k, v, o, gate+up, down) */
};

/* Each method, from a checkpoint's quantization_config (GPTQ act-order 8-bit, AWQ with a
 * module left dense, FP8, compressed-tensors with several groups and an ignore regex) or from
 * --quantization on a 16-bit config: the model loads with
 * random layers of that kind (the dense ones where the config says so), runs, and its logits
 * are finite and of the size the dense random model's are. */
Test(quant_random, models_load_and_run_quantized)
{
    const struct random_case cases[] = {
        { "GPTQ 8-bit act-order", "llama-gptq-8b-g128-sym-act-v2", NULL, PGD__QW_WQ, 12 },
        { "GPTQ 4-bit g32", "llama-gptq-4b-g32-sym", NULL, PGD__QW_WQ, 12 },
        { "AWQ, layers.1.mlp dense", "llama-awq-g32-skip", NULL, PGD__QW_WQ, 10 },
        { "FP8 per tensor", "llama-fp8-tensor", NULL, PGD__QW_FP8, 12 },
        { "compressed-tensors W8 by regex, W4 by Linear, layers.1.mlp ignored",
          "mistral-ct-mixed-ignore", NULL, PGD__QW_WQ, 10 },
        { "compressed-tensors W4A16 actorder group", "qwen2-ct-w4a16-g32-asym-act", NULL,
          PGD__QW_WQ, 12 },
        { "compressed-tensors FP8", "qwen3-ct-fp8-static", NULL, PGD__QW_FP8, 12 },
        { "--quantization gptq", NULL, "gptq", PGD__QW_WQ, 12 },
        { "--quantization awq", NULL, "awq", PGD__QW_WQ, 12 },
        { "--quantization fp8", NULL, "fp8", PGD__QW_FP8, 12 },
    };
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = random_runner(reg, fixture_dir("llama-f32"), NULL);
    double dense_rms = logits_rms(r, "dense");
    cr_assert_null(pgd__runner_model(r)->quant);
    pgd__runner_destroy(r);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *dir = cases[c].fixture ? quant_fixture(cases[c].fixture)
                                           : fixture_dir("llama-f32");
        r = random_runner(reg, dir, cases[c].quantization);
        const struct pgd__model *m = pgd__runner_model(r);
        cr_assert_not_null(m->quant, "%s", cases[c].what);
        cr_assert_eq(m->n_quant_layers, cases[c].n_quantized, "%s: %zu quantized layers",
                     cases[c].what, m->n_quant_layers);
        size_t n = 0;
        for (const struct pgd_qweight *w = m->qweights; w; w = w->next, n++) {
            cr_assert_eq(w->kind, cases[c].kind, "%s", cases[c].what);
            double r_w = rms(w->dense, (size_t)(w->in * w->out)) * sqrt((double)w->in);
            cr_assert(r_w > 0.8 && r_w < 1.2, "%s: a [%lld, %lld] layer has RMS %g / sqrt(in)",
                      cases[c].what, (long long)w->out, (long long)w->in, r_w);
        }
        cr_assert_eq(n, cases[c].n_quantized, "%s", cases[c].what);
        double q = logits_rms(r, cases[c].what);
        cr_assert(q > dense_rms / 3 && q < dense_rms * 3, "%s: logits RMS %g, dense random %g",
                  cases[c].what, q, dense_rms);
        pgd__runner_destroy(r);
    }
    pgd_registry_destroy(reg);
}

/* pagoda bench latency --random-weights with --quantization runs end to end on the CPU and
 * says (in its info log) that the model is quantized. */
Test(quant_random, bench_latency_runs_quantized)
{
    const char *methods[] = { "gptq", "awq", "fp8" };
    for (size_t i = 0; i < 3; i++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "PAGODA_LOG=info %s/tools/pagoda bench latency "
                 "--random-weights %s/config.json "
                 "--device cpu --quantization %s --batch 1,2 --prompt-len 5 --context 4 "
                 "--steps 2 --warmup 1 2>&1", PGD_TEST_BUILDDIR, fixture_dir("llama-f32"),
                 methods[i]);
        int status;
        char *got = pgd_test_capture(cmd, &status);
        cr_assert_eq(status, 0, "%s\n%s", cmd, got);
        char want[64];
        snprintf(want, sizeof want, "quantization %s (plugin %s", methods[i], methods[i]);
        cr_assert(strstr(got, want), "%s\n%s", want, got);
        cr_assert(strstr(got, "(random), quantized"), "%s", got);
        cr_assert(strstr(got, "\n     2 "), "decode rows missing:\n%s", got);
        free(got);
    }
}

/* compressed-tensors' class target "Linear" takes every linear layer but the LM head (no
 * Linear in vLLM either): with "lm_head" out of the ignore list it still loads dense, while
 * the decoder layers stay quantized. */
Test(ct_convert, the_lm_head_is_no_linear)
{
    char tmp[256] = "", err[1024] = "";
    const char *dir = fixture_copy_edited(quant_fixture("llama-ct-w4a16-g32-sym"), "config.json",
                                          "\"lm_head\"", "\"nothing\"", tmp);
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = NULL;
    struct pgd__model_opts o = { .dtype = PGD_DTYPE_COUNT };
    enum pgd_status st = pgd__model_load_opts(dir, reg, PGD_DEVICE_CPU, &o, &m, err, sizeof err);
    cr_assert_eq(st, PGD_OK, "%s", err);
    cr_assert_eq(m->n_quant_layers, 12);
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
    fixture_copy_remove(tmp);
}

/* ---- the catalog ------------------------------------------------------------------------- */
static enum pgd_status load_catalog_text(const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/pgd-test-catalog-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *fp = fdopen(fd, "w");
    fputs(text, fp);
    fclose(fp);
    struct pgd__hub_catalog cat;
    enum pgd_status st = pgd__hub_catalog_load(path, &cat, err, errlen);
    if (!st)
        pgd__hub_catalog_free(&cat);
    unlink(path);
    return st;
}

/* The shipped catalog names a checkpoint of every format pagoda loads (so `pagoda models`
 * lists them with their quant), and every quant it uses is one pagoda knows. */
Test(quant_catalog, ships_every_format)
{
    char path[4200], err[1024] = "";
    snprintf(path, sizeof path, "%s/models/catalog.ini",
             getenv("PGD_TEST_SRCDIR") && *getenv("PGD_TEST_SRCDIR") ? getenv("PGD_TEST_SRCDIR")
                                                                     : PGD_TEST_SRCDIR);
    struct pgd__hub_catalog cat;
    cr_assert_eq(pgd__hub_catalog_load(path, &cat, err, sizeof err), PGD_OK, "%s", err);
    static const char *const want[] = { "none", "gptq-int4", "awq-int4", "fp8",
                                        "compressed-tensors-w4a16", "compressed-tensors-fp8" };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        bool found = false;
        for (size_t i = 0; i < cat.n && !found; i++)
            found = cat.entries[i].quant && !strcmp(cat.entries[i].quant, want[w]);
        cr_expect(found, "no catalog entry with quant = %s", want[w]);
    }
    pgd__hub_catalog_free(&cat);
}

/* `pagoda models` lists each format's entry with its quant in the QUANT column (as wide as
 * the widest label). */
Test(quant_catalog, models_shows_the_quant_column)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "HF_HUB_CACHE=/nonexistent-pgd-cache PAGODA_CATALOG=%s/models/"
             "catalog.ini %s/tools/pagoda models 2>&1",
             getenv("PGD_TEST_SRCDIR") && *getenv("PGD_TEST_SRCDIR") ? getenv("PGD_TEST_SRCDIR")
                                                                     : PGD_TEST_SRCDIR,
             PGD_TEST_BUILDDIR);
    int status;
    char *got = pgd_test_capture(cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    const char *quant = strstr(got, "QUANT");
    cr_assert_not_null(quant, "%s", got);
    size_t col = (size_t)(quant - got);
    static const struct { const char *name, *quant; } rows[] = {
        { "llama-3.1-8b-instruct-gptq ", "gptq-int4 " },
        { "llama-3.1-8b-instruct-awq ", "awq-int4 " },
        { "llama-3.1-8b-instruct-fp8 ", "fp8 " },
        { "llama-3.1-8b-instruct-w4a16 ", "compressed-tensors-w4a16 " },
        { "llama-3.1-8b-instruct-fp8-dynamic ", "compressed-tensors-fp8 " },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *line = strstr(got, rows[i].name);
        cr_assert(line && (line == got || line[-1] == '\n'), "%s missing:\n%s", rows[i].name, got);
        cr_assert(!strncmp(line + col, rows[i].quant, strlen(rows[i].quant)),
                  "%s: QUANT column is not %s:\n%s", rows[i].name, rows[i].quant, got);
    }
    free(got);
}

/* Every quantized fixture's label (what `pagoda models --cached` shows for such a repo) is a
 * quant value the catalog takes; another value is refused naming the entry and the value. */
Test(quant_catalog, quant_values_are_the_labels_of_checkpoints)
{
    static const char *const fixtures[] = {
        "llama-gptq-4b-g32-sym", "qwen3-gptq-8b-gm1-asym", "qwen2-awq-g64-file",
        "llama-fp8-tensor", "llama-ct-w4a16-g32-sym", "qwen3-ct-w8a16-channel-asym",
        "llama-ct-fp8-dynamic", "mistral-ct-mixed-ignore",
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char label[64], text[512], err[1024] = "";
        pgd__model_quant_label(quant_fixture(fixtures[i]), label, sizeof label);
        snprintf(text, sizeof text, "[x]\nrepo = org/x\narch = llama\nquant = %s\n", label);
        cr_expect_eq(load_catalog_text(text, err, sizeof err), PGD_OK, "%s: label %s: %s",
                     fixtures[i], label, err);
    }
    char err[1024] = "";
    cr_assert_eq(load_catalog_text("[x]\nrepo = org/x\nquant = int3\n", err, sizeof err),
                 PGD_ERR_FORMAT);
    cr_assert(strstr(err, "[x] quant = 'int3'") && strstr(err, "compressed-tensors-w4a16"),
              "%s", err);
}

/* ---- compressed-tensors' pack-quantized conversion ------------------------------------------
 * Random signed integers packed as compressed-tensors packs them (written here from the
 * format's description: rows along the input, zero points along the output, each field the
 * value plus 2^(bits-1)), converted, dequantized by the CPU reference and compared with W
 * computed straight from the integers. */
static uint64_t ct_rng = 0x9e3779b97f4a7c15ull;
static uint32_t ct_rnd(void)
{
    ct_rng ^= ct_rng << 13;
    ct_rng ^= ct_rng >> 7;
    ct_rng ^= ct_rng << 17;
    return (uint32_t)(ct_rng >> 11);
}

struct ct_case {
    int bits;
    int64_t in, out, group;
    bool sym, act;
};

static void check_ct(struct ct_case c)
{
    int pack = 32 / c.bits, half = 1 << (c.bits - 1);
    int64_t groups = c.in / c.group;
    int32_t *q = malloc((size_t)(c.in * c.out) * 4), *zp = calloc((size_t)(groups * c.out), 4);
    uint32_t *packed = calloc((size_t)(c.out * c.in / pack), 4);
    uint32_t *zpacked = calloc((size_t)(c.out / pack * groups), 4);
    float *scales = malloc((size_t)(groups * c.out) * 4), *want = malloc((size_t)(c.in * c.out) * 4);
    float *got = malloc((size_t)(c.in * c.out) * 4);
    int32_t *g_idx = malloc((size_t)c.in * 4), *order = malloc((size_t)c.in * 4);
    for (int64_t i = 0; i < c.in; i++)
        order[i] = (int32_t)i;
    for (int64_t i = c.in - 1; c.act && i > 0; i--) {
        int64_t j = ct_rnd() % (uint32_t)(i + 1);
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int64_t j = 0; j < c.in; j++)
        g_idx[order[j]] = (int32_t)(j / c.group);
    for (int64_t o = 0; o < c.out; o++)
        for (int64_t g = 0; g < groups; g++) {
            scales[o * groups + g] = (float)(1 + ct_rnd() % 64) / 128.0f;
            if (!c.sym)
                zp[o * groups + g] = (int32_t)(ct_rnd() % (uint32_t)(2 * half)) - half;
            zpacked[(o / pack) * groups + g] |= (uint32_t)(zp[o * groups + g] + half)
                                                << ((o % pack) * c.bits);
        }
    for (int64_t o = 0; o < c.out; o++)
        for (int64_t i = 0; i < c.in; i++) {
            int32_t v = (int32_t)(ct_rnd() % (uint32_t)(2 * half)) - half;
            q[o * c.in + i] = v;
            packed[o * (c.in / pack) + i / pack] |= (uint32_t)(v + half) << ((i % pack) * c.bits);
            int64_t g = g_idx[i];
            want[o * c.in + i] = (float)(v - zp[o * groups + g]) * scales[o * groups + g];
        }
    struct ct_packed_layer l = { .name = "layer", .bits = c.bits, .group = c.group, .in = c.in,
                                 .out = c.out, .weight_packed = packed, .scales = scales,
                                 .zero_points = c.sym ? NULL : zpacked,
                                 .g_idx = c.act ? g_idx : NULL };
    struct pgd_wq_host h;
    void *block;
    char err[512] = "";
    cr_assert_eq(ct_packed_to_wq(&l, &h, &block, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(h.perm != NULL, c.act, "act-order %d: perm %p", c.act, (void *)h.perm);
    pgd_cpu_wq_dequantize(&h, got);
    for (int64_t k = 0; k < c.in * c.out; k++)
        cr_assert_float_eq(got[k], want[k], 1e-6, "bits %d group %lld sym %d act %d: W[%lld][%lld] "
                           "= %g, expected %g", c.bits, (long long)c.group, c.sym, c.act,
                           (long long)(k / c.in), (long long)(k % c.in), got[k], want[k]);
    free(block);
    free(q);
    free(zp);
    free(packed);
    free(zpacked);
    free(scales);
    free(want);
    free(got);
    free(g_idx);
    free(order);
}

Test(ct_convert, every_bits_strategy_and_order_dequantizes_exactly)
{
    const struct ct_case cases[] = {
        { 4, 64, 24, 32, true, false },  { 4, 64, 24, 32, false, false },
        { 4, 96, 16, 32, false, true },  { 8, 64, 12, 64, false, false },   /* per channel */
        { 8, 128, 8, 32, true, true },   { 4, 256, 40, 128, false, true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_ct(cases[i]);
}

Test(ct_convert, outputs_the_zero_points_cannot_pack_are_refused)
{
    uint32_t packed[8 * 7] = { 0 };
    float scales[7] = { 1, 1, 1, 1, 1, 1, 1 };
    struct ct_packed_layer l = { .name = "model.layers.0.mlp.down_proj", .bits = 4, .group = 64,
                                 .in = 64, .out = 7, .weight_packed = packed, .scales = scales };
    struct pgd_wq_host h;
    void *block;
    char err[512] = "";
    cr_assert_eq(ct_packed_to_wq(&l, &h, &block, err, sizeof err), PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "model.layers.0.mlp.down_proj: 7 outputs"), "%s", err);
}
