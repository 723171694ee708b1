/* One tensor-parallel rank's shard of a linear layer (pgd_model_load_linear_shard,
 * runtime/model/model_shard.c) on the real fixture checkpoints, without MPI: a row shard of
 * fused parts is those rows of the whole fused layer, a column shard those input columns,
 * in float32 and from a bf16 checkpoint; the refusals (ranges outside the tensor, a column
 * shard of two parts, a missing tensor, a quant plugin that refuses, plugins that do not
 * shard); random weights (benchmark shapes) load split. tests/dist runs the split models
 * under mpirun. */
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "runtime/model/qweight.h"
#include "models/common/decoder.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(model_shard);

static struct pgd__model *load_whole(struct pgd_registry *reg, const char *name)
{
    char err[1024] = "";
    struct pgd__model *m = NULL;
    cr_assert_eq(pgd__model_load(fixture_dir(name), reg, PGD_DEVICE_CPU, &m, err, sizeof err),
                 PGD_OK, "%s", err);
    return m;
}

/* Rows [r0, r0 + rows of s) and columns [c0, c0 + cols of s) of w equal s (float32). */
static void assert_slice(const struct pgd_tensor *w, int64_t r0, int64_t c0,
                         const struct pgd_tensor *s, const char *what)
{
    int64_t ld = pgd_tensor_cols(w), nr = pgd_tensor_rows(s), nc = pgd_tensor_cols(s);
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++)
            cr_assert_eq(((const float *)s->data)[r * nc + c],
                         ((const float *)w->data)[(r0 + r) * ld + c0 + c], "%s [%lld, %lld]",
                         what, (long long)r, (long long)c);
}

static void check_shards_of(const char *fixture)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = load_whole(reg, fixture);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    const char *gu[2] = { "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj" };
    int64_t I = 128, hid = 64, full[2] = { I, I }, quarter[2] = { I / 4, I / 4 };
    int64_t row0[2] = { 3 * I / 4, 3 * I / 4 };
    struct pgd_linear whole, shard;
    cr_assert_eq(pgd_model_load_linear(&ctx, gu, 2, hid, full, false, &whole, err, sizeof err),
                 PGD_OK, "%s", err);
    struct pgd_shard rows = { .kind = PGD_SHARD_ROWS, .full_out = full, .row0 = row0 };
    cr_assert_eq(pgd_model_load_linear_shard(&ctx, gu, 2, hid, quarter, false, &rows, &shard, err,
                                             sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(shard.out_features, I / 2);
    struct pgd_tensor gate = shard.weight, up = shard.weight;
    gate.ne[0] = up.ne[0] = I / 4;
    up.data = (float *)up.data + (I / 4) * hid;
    assert_slice(&whole.weight, 3 * I / 4, 0, &gate, "gate rows of rank 3 of 4");
    assert_slice(&whole.weight, I + 3 * I / 4, 0, &up, "up rows of rank 3 of 4");

    const char *down[1] = { "model.layers.0.mlp.down_proj" };
    cr_assert_eq(pgd_model_load_linear(&ctx, down, 1, I, &hid, false, &whole, err, sizeof err),
                 PGD_OK, "%s", err);
    struct pgd_shard cols = { .kind = PGD_SHARD_COLS, .full_in = I, .col0 = I / 2 };
    int64_t half = I / 2;
    cr_assert_eq(pgd_model_load_linear_shard(&ctx, down, 1, half, &hid, false, &cols, &shard, err,
                                             sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(shard.in_features, half);
    cr_assert_eq(shard.out_features, hid);
    assert_slice(&whole.weight, 0, I / 2, &shard.weight, "down columns of rank 1 of 2");
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
}

Test(model_shard, rows_and_columns_are_the_slices_of_the_whole_layer)
{
    check_shards_of("llama-f32");
}

Test(model_shard, shards_of_a_bf16_checkpoint_convert_like_the_whole)
{
    check_shards_of("llama-bf16");
}

Test(model_shard, shards_outside_the_tensor_and_bad_specs_are_refused)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = load_whole(reg, "llama-f32");
    struct pgd_model_ctx ctx = { .m = m };
    const char *q[1] = { "model.layers.0.self_attn.q_proj" };
    const char *gu[2] = { "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj" };
    const char *none[1] = { "model.layers.0.self_attn.nope" };
    int64_t full = 64, too_far = 40, row0_neg = -1, n32 = 32, hid = 64, fused[2] = { 128, 128 };
    struct {
        const char *const *parts;
        int n_parts;
        int64_t in;
        const int64_t *outs;
        struct pgd_shard sh;
        enum pgd_status want;
        const char *says;
    } bad[] = {
        { q, 1, 64, &n32, { .kind = PGD_SHARD_ROWS, .full_out = &full, .row0 = &too_far },
          PGD_ERR_INVALID_ARG, "rows [40, 72) are not inside the 64 rows" },
        { q, 1, 64, &n32, { .kind = PGD_SHARD_ROWS, .full_out = &full, .row0 = &row0_neg },
          PGD_ERR_INVALID_ARG, "rows [-1, 31)" },
        { q, 1, 32, &hid, { .kind = PGD_SHARD_COLS, .full_in = 64, .col0 = 48 },
          PGD_ERR_INVALID_ARG, "columns [48, 80) are not inside the 64 input features" },
        { gu, 2, 32, fused, { .kind = PGD_SHARD_COLS, .full_in = 64, .col0 = 0 },
          PGD_ERR_INVALID_ARG, "a column shard has one" },
        { q, 1, 64, &n32, { .kind = 0 }, PGD_ERR_INVALID_ARG, "a shard of kind 0" },
        { none, 1, 32, &hid, { .kind = PGD_SHARD_COLS, .full_in = 64, .col0 = 0 },
          PGD_ERR_NOT_FOUND, "model.layers.0.self_attn.nope.weight" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[1024] = "";
        struct pgd_linear out;
        enum pgd_status st = pgd_model_load_linear_shard(&ctx, bad[i].parts, bad[i].n_parts,
                                                         bad[i].in, bad[i].outs, false,
                                                         &bad[i].sh, &out, err, sizeof err);
        cr_assert_eq(st, bad[i].want, "case %zu: %s", i, err);
        cr_assert(strstr(err, bad[i].says), "case %zu: no '%s' in: %s", i, bad[i].says, err);
    }
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
}

/* ---- quantized layers: the quant plugins load the shard (pgd_model_linear_shard) ---------- */

static struct pgd__model *load_quant(struct pgd_registry *reg, const char *name)
{
    char dir[4096], err[1024] = "";
    snprintf(dir, sizeof dir, "%s/tests/fixtures/quant/%s",
             getenv("PGD_TEST_SRCDIR") ? getenv("PGD_TEST_SRCDIR") : PGD_TEST_SRCDIR, name);
    struct pgd__model *m = NULL;
    cr_assert_eq(pgd__model_load(dir, reg, PGD_DEVICE_CPU, &m, err, sizeof err), PGD_OK, "%s",
                 err);
    return m;
}

/* The float32 weights [out, in] the CPU keeps for a quantized layer. */
static struct pgd_tensor dequantized(const struct pgd_linear *l)
{
    cr_assert_not_null(l->quant, "the layer is not quantized");
    const struct pgd_qweight *w = l->quant_state;
    return (struct pgd_tensor){ .data = w->dense, .dtype = PGD_DTYPE_F32, .ndim = 2,
                                .ne = { w->out, w->in } };
}

/* A row shard of fused gate/up (rows [24, 64) of each) and column shards of o_proj and
 * down_proj that start and end inside groups ([16, 48) of 4 heads' inputs, [40, 88) of 128), each
 * exactly the whole layer's slice of dequantized weights: the slices' parts of groups
 * become even groups repeating their scales and zeros. */
static void check_quant_shards_of(const char *fixture)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = load_quant(reg, fixture);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    const char *gu[2] = { "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj" };
    int64_t I = 128, hid = 64, full[2] = { I, I }, part[2] = { 40, 40 }, row0[2] = { 24, 24 };
    struct pgd_linear whole, shard;
    cr_assert_eq(pgd_model_load_linear(&ctx, gu, 2, hid, full, false, &whole, err, sizeof err),
                 PGD_OK, "%s: %s", fixture, err);
    struct pgd_shard rows = { .kind = PGD_SHARD_ROWS, .full_out = full, .row0 = row0 };
    cr_assert_eq(pgd_model_load_linear_shard(&ctx, gu, 2, hid, part, false, &rows, &shard, err,
                                             sizeof err), PGD_OK, "%s: %s", fixture, err);
    struct pgd_tensor w = dequantized(&whole), s = dequantized(&shard), gate = s, up = s;
    gate.ne[0] = up.ne[0] = 40;
    up.data = (float *)up.data + 40 * hid;
    assert_slice(&w, 24, 0, &gate, "gate rows [24, 64)");
    assert_slice(&w, I + 24, 0, &up, "up rows [24, 64)");
    struct {
        const char *prefix;
        int64_t full_in, col0, in;
    } col[] = { { "model.layers.0.self_attn.o_proj", 4 * (int64_t)m->desc.head_dim, 16, 32 },
                { "model.layers.0.mlp.down_proj", 128, 40, 48 } };
    for (int i = 0; i < 2; i++) {
        const char *p[1] = { col[i].prefix };
        cr_assert_eq(pgd_model_load_linear(&ctx, p, 1, col[i].full_in, &hid, false, &whole, err,
                                           sizeof err), PGD_OK, "%s: %s", fixture, err);
        struct pgd_shard cols = { .kind = PGD_SHARD_COLS, .full_in = col[i].full_in,
                                  .col0 = col[i].col0 };
        cr_assert_eq(pgd_model_load_linear_shard(&ctx, p, 1, col[i].in, &hid, false, &cols,
                                                 &shard, err, sizeof err), PGD_OK, "%s: %s",
                     fixture, err);
        w = dequantized(&whole);
        s = dequantized(&shard);
        assert_slice(&w, 0, col[i].col0, &s, col[i].prefix);
    }
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
}

Test(model_shard, gptq_shards_are_slices_of_the_dequantized_layer)
{
    check_quant_shards_of("llama-gptq-4b-g32-sym");
    check_quant_shards_of("qwen2-gptq-4b-g32-asym-v2");
    check_quant_shards_of("qwen3-gptq-8b-gm1-asym");
}

Test(model_shard, act_order_shards_take_their_channels_in_checkpoint_order)
{
    check_quant_shards_of("llama-gptq-4b-g64-asym-act");
    check_quant_shards_of("llama-gptq-8b-g128-sym-act-v2");
}

Test(model_shard, awq_and_fp8_shards_are_slices_of_the_dequantized_layer)
{
    check_quant_shards_of("qwen3-awq-g128");
    check_quant_shards_of("llama-fp8-tensor");
    check_quant_shards_of("qwen3-fp8-channel");
}

/* Shards that would split a packed word are refused, naming the shard and the packing. */
Test(model_shard, quantized_shards_that_split_packed_words_are_refused)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    const char *fixtures[2] = { "qwen3-awq-g128", "llama-gptq-4b-g32-sym" };
    const char *says[2] = { "AWQ packs 8 outputs to a word", "packed 8 to a word" };
    for (int f = 0; f < 2; f++) {
        struct pgd__model *m = load_quant(reg, fixtures[f]);
        struct pgd_model_ctx ctx = { .m = m };
        char err[1024] = "";
        const char *q[1] = { "model.layers.0.self_attn.q_proj" };
        int64_t full = 64, row0 = 4, n = 16;
        struct pgd_shard rows = { .kind = PGD_SHARD_ROWS, .full_out = &full, .row0 = &row0 };
        struct pgd_linear out;
        cr_assert_eq(pgd_model_load_linear_shard(&ctx, q, 1, 64, &n, false, &rows, &out, err,
                                                 sizeof err), PGD_ERR_UNSUPPORTED, "%s", err);
        cr_assert(strstr(err, "outputs [4, 20)") && strstr(err, says[f]), "%s", err);
        pgd__model_destroy(m);
    }
    pgd_registry_destroy(reg);
}

/* A quant plugin that never asks for the shard (tests/fixtures/plugins/noshard/noshard_quant.c) is
 * refused by name under tensor parallelism, instead of reporting its own failure. */
Test(model_shard, quant_plugins_that_do_not_ask_for_the_shard_are_refused)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    char err[1024] = "", path[4200], tmp[256];
    snprintf(path, sizeof path, "%s/tests/fixtures/plugins/noshard/.libs/noshard_quant.so",
             PGD_TEST_BUILDDIR);
    cr_assert_eq(pgd_registry_load_file(reg, path, err, sizeof err), PGD_OK, "%s", err);
    const char *dir = fixture_copy_edited(fixture_dir("llama-f32"), "config.json",
                                          "\"architectures\": [",
                                          "\"quantization_config\": {\"quant_method\": "
                                          "\"fixture-noshard\"}, \"architectures\": [", tmp);
    struct pgd__model_opts o = { .dtype = PGD_DTYPE_COUNT, .tp_rank = 1, .tp_size = 2 };
    struct pgd__model *m = NULL;
    enum pgd_status st = pgd__model_load_opts(dir, reg, PGD_DEVICE_CPU, &o, &m, err, sizeof err);
    cr_assert_eq(st, PGD_ERR_UNSUPPORTED, "%s", err);
    cr_assert(strstr(err, "the fixture-noshard quant plugin does not shard its layers") &&
              strstr(err, "model.layers.0.self_attn.q_proj"), "%s", err);
    cr_assert_null(m);
    fixture_copy_remove(tmp);
    pgd_registry_destroy(reg);
}

/* config.json (text) into a fresh directory; loaded as rank rank of size with random
 * weights. */
static enum pgd_status load_split(struct pgd_registry *reg, const char *config, int rank,
                                  int size, struct pgd__model **out, char *err, size_t errlen)
{
    char dir[] = "/tmp/pgd_shard_XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(config, fp);
    fclose(fp);
    struct pgd__model_opts o = { .dtype = PGD_DTYPE_COUNT, .random_weights = true,
                                 .tp_rank = rank, .tp_size = size };
    enum pgd_status st = pgd__model_load_opts(dir, reg, PGD_DEVICE_CPU, &o, out, err, errlen);
    unlink(path);
    rmdir(dir);
    return st;
}

#define LLAMA_CONFIG(extra)                                                                 \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "                     \
    "\"intermediate_size\": 128, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "  \
    "\"num_hidden_layers\": 2, \"vocab_size\": 300" extra "}"

Test(model_shard, random_weights_load_split_for_benchmark_shapes)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    char err[1024] = "";
    struct pgd__model *whole = NULL, *part = NULL;
    cr_assert_eq(load_split(reg, LLAMA_CONFIG(""), 0, 1, &whole, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert_eq(load_split(reg, LLAMA_CONFIG(""), 3, 4, &part, err, sizeof err), PGD_OK, "%s",
                 err);
    /* 4 ranks over 2 KV heads: one KV head a rank; the vocabulary 300 = 75 a rank. */
    cr_assert_eq(part->desc.n_kv_heads, 1);
    cr_assert_eq(part->desc.vocab_size, 300);
    cr_assert_lt(part->weight_bytes, whole->weight_bytes / 2);
    pgd__model_destroy(whole);
    pgd__model_destroy(part);
    /* Sizes the ranks do not divide are refused, naming them. */
    part = NULL;
    cr_assert_eq(load_split(reg, LLAMA_CONFIG(""), 0, 3, &part, err, sizeof err),
                 PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "tensor_parallel_size 3 must divide num_attention_heads 4 and "
                          "intermediate_size 128"), "%s", err);
    cr_assert_null(part);
    pgd_registry_destroy(reg);
}

/* Random quantized layers (benchmark shapes) are made at the shard's size. */
Test(model_shard, random_quantized_weights_load_split)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    static const char *const q[] = {
        LLAMA_CONFIG(", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, "
                     "\"group_size\": 32, \"desc_act\": true}"),
        LLAMA_CONFIG(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, "
                     "\"group_size\": 32}"),
        LLAMA_CONFIG(", \"quantization_config\": {\"quant_method\": \"fp8\"}"),
    };
    for (int i = 0; i < 3; i++) {
        char err[1024] = "";
        struct pgd__model *whole = NULL, *part = NULL;
        cr_assert_eq(load_split(reg, q[i], 0, 1, &whole, err, sizeof err), PGD_OK, "%s", err);
        cr_assert_eq(load_split(reg, q[i], 1, 2, &part, err, sizeof err), PGD_OK, "%s", err);
        const struct decoder *d = part->impl;
        cr_assert_not_null(d->layers[0].o.quant, "case %d: o_proj is not quantized", i);
        cr_assert_eq(d->layers[0].o.in_features, 32, "case %d", i);
        cr_assert_eq(d->layers[0].down.in_features, 64, "case %d", i);
        cr_assert_lt(part->weight_bytes, whole->weight_bytes, "case %d", i);
        pgd__model_destroy(whole);
        pgd__model_destroy(part);
    }
    pgd_registry_destroy(reg);
}

Test(model_shard, refusing_quant_plugins_and_arch_plugins_that_do_not_shard_are_refused)
{
    char err[1024] = "";
    struct pgd_registry *reg = fixture_registry(NULL);
    const char *fixtures[2] = { "good_quant", "good_arch" };   /* fixture-q4, FixtureForCausalLM */
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/tests/fixtures/plugins/.libs/%s.so", PGD_TEST_BUILDDIR,
                 fixtures[i]);
        cr_assert_eq(pgd_registry_load_file(reg, path, err, sizeof err), PGD_OK, "%s", err);
    }
    struct pgd__model *m = NULL;
    enum pgd_status st = load_split(reg, LLAMA_CONFIG(", \"quantization_config\": "
                                                      "{\"quant_method\": \"fixture-q4\"}"),
                                    1, 2, &m, err, sizeof err);
    cr_assert_eq(st, PGD_ERR_UNSUPPORTED, "%s", err);
    /* The stub quant plugin refuses to configure (random weights reach it as a checkpoint
     * would); a real checkpoint's layers go to its quant plugin, which loads its shard
     * (tests/dist), or is refused when it does not (below). */
    cr_assert(strstr(err, "the fixture-quant plugin refused it"), "%s", err);
    cr_assert_null(m);
    st = load_split(reg, "{\"architectures\": [\"FixtureForCausalLM\"]}", 0, 2, &m, err,
                    sizeof err);
    cr_assert_eq(st, PGD_ERR_UNSUPPORTED, "%s", err);
    cr_assert(strstr(err, "the fixture-arch plugin does not support tensor parallelism"), "%s",
              err);
    cr_assert_null(m);
    pgd_registry_destroy(reg);
}
