/* The loading calls of include/pagoda/model.h that a plugin makes through struct
 * pgd_model_ctx, on the real fixture checkpoints: row slices of fused tensors
 * (pgd_model_load_tensor_rows, pgd_model_load_linear_rows) against the whole tensor, in the
 * zero-copy, copy and dtype-converting paths, and their refusals. */
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "runtime/model/safetensors.h"
#include "tests/lib/test_common.h"
#include <stdio.h>
#include <string.h>

PGD_TEST_SUITE(load_rows);

/* A model under construction on the CPU, as pgd__model_load builds it before calling a
 * plugin's load: the fixture's config and weights, computing in `dtype`. */
static struct pgd__model *open_fixture(const char *name, enum pgd_dtype dtype)
{
    char dir[4096], err[1024] = "";
    snprintf(dir, sizeof dir, "%s/tests/fixtures/models/%s", PGD_TEST_SRCDIR, name);
    struct pgd__model *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    m->device = PGD_DEVICE_CPU;
    m->dtype = dtype;
    m->dir = strdup(dir);
    m->config_path = malloc(strlen(dir) + sizeof "/config.json");
    sprintf(m->config_path, "%s/config.json", dir);
    cr_assert_eq(pgd__config_read(dir, &m->config, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__weights_open_dir(dir, &m->weights, err, sizeof err), PGD_OK, "%s", err);
    return m;
}

/* Element i of a tensor in host memory, as float. */
static float at(const struct pgd_tensor *t, int64_t i)
{
    if (t->dtype == PGD_DTYPE_F32)
        return ((const float *)t->data)[i];
    cr_assert_eq(t->dtype, PGD_DTYPE_BF16);
    return pgd_bf16_to_f32(((const uint16_t *)t->data)[i]);
}

/* Rows [row0, row0 + slice rows) of whole equal slice, element by element. */
static void assert_rows_equal(const struct pgd_tensor *slice, const struct pgd_tensor *whole,
                              int64_t row0, const char *what)
{
    int64_t cols = pgd_tensor_cols(whole);
    cr_assert_eq(pgd_tensor_cols(slice), cols, "%s", what);
    for (int64_t r = 0; r < pgd_tensor_rows(slice); r++)
        for (int64_t c = 0; c < cols; c++)
            cr_assert_eq(at(slice, r * cols + c), at(whole, (row0 + r) * cols + c),
                         "%s: row %lld col %lld", what, (long long)r, (long long)c);
}

Test(load_rows, fused_qkv_splits_into_q_k_v)
{
    /* phi3-f32: 4 heads, 2 kv heads of 16: qkv_proj [64 + 32 + 32, 64]. */
    struct pgd__model *m = open_fixture("phi3-f32", PGD_DTYPE_F32);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    const char *prefix = "model.layers.1.self_attn.qkv_proj";
    struct pgd_tensor whole;
    cr_assert_eq(pgd_model_load_tensor(&ctx, "model.layers.1.self_attn.qkv_proj.weight", 2,
                                       (int64_t[]){ 128, 64 }, &whole, err, sizeof err),
                 PGD_OK, "%s", err);
    struct pgd_linear q, k, v;
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, prefix, 64, 128, 0, 64, false, &q, err,
                                            sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, prefix, 64, 128, 64, 32, false, &k, err,
                                            sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, prefix, 64, 128, 96, 32, false, &v, err,
                                            sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(q.out_features, 64);
    cr_assert_eq(k.out_features, 32);
    cr_assert_eq(v.in_features, 64);
    cr_assert_eq(q.weight.ndim, 2);
    cr_assert_eq(k.weight.ne[0], 32);
    cr_assert_eq(k.weight.ne[1], 64);
    cr_assert_null(k.bias.data);
    cr_assert_null(q.quant);
    assert_rows_equal(&q.weight, &whole, 0, "q");
    assert_rows_equal(&k.weight, &whole, 64, "k");
    assert_rows_equal(&v.weight, &whole, 96, "v");
    pgd__model_destroy(m);
}

Test(load_rows, bf16_checkpoint_is_widened_from_the_right_rows)
{
    /* llama-bf16 loaded for float32 compute: the slice goes through the converting copy, so
     * row0 is counted in 2-byte source elements. */
    struct pgd__model *m = open_fixture("llama-bf16", PGD_DTYPE_F32);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    const char *name = "model.layers.0.mlp.gate_proj.weight";
    struct pgd_tensor whole, part;
    cr_assert_eq(pgd_model_load_tensor(&ctx, name, 2, (int64_t[]){ 128, 64 }, &whole, err,
                                       sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd_model_load_tensor_rows(&ctx, name, 2, (int64_t[]){ 128, 64 }, 37, 50,
                                            &part, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(part.dtype, PGD_DTYPE_F32);
    cr_assert_eq(part.ne[0], 50);
    assert_rows_equal(&part, &whole, 37, "gate_proj rows 37..87");
    pgd__model_destroy(m);
}

Test(load_rows, f32_checkpoint_narrowed_to_bf16)
{
    struct pgd__model *m = open_fixture("phi3-f32", PGD_DTYPE_BF16);
    struct pgd_model_ctx ctx = { .m = m };
    const struct pgd__st_tensor *src =
        pgd__weights_find(m->weights, "model.layers.0.mlp.gate_up_proj.weight");
    cr_assert_not_null(src);
    char err[1024] = "";
    struct pgd_linear up;
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, "model.layers.0.mlp.gate_up_proj", 64, 256,
                                            128, 128, false, &up, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_assert_eq(up.weight.dtype, PGD_DTYPE_BF16);
    for (int64_t i = 0; i < 128 * 64; i++) {
        float f;
        memcpy(&f, (const char *)src->data + (size_t)(128 * 64 + i) * 4, 4);
        cr_assert_eq(((const uint16_t *)up.weight.data)[i], pgd_f32_to_bf16(f), "element %lld",
                     (long long)i);
    }
    pgd__model_destroy(m);
}

Test(load_rows, bias_rows_follow_weight_rows)
{
    /* qwen2-f32 has q/k/v biases: a slice of q_proj takes the same rows of its bias. */
    struct pgd__model *m = open_fixture("qwen2-f32", PGD_DTYPE_F32);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    struct pgd_tensor wb;
    cr_assert_eq(pgd_model_load_tensor(&ctx, "model.layers.0.self_attn.q_proj.bias", 1,
                                       (int64_t[]){ 64 }, &wb, err, sizeof err), PGD_OK, "%s", err);
    struct pgd_linear part;
    cr_assert_eq(pgd_model_load_linear_rows(&ctx, "model.layers.0.self_attn.q_proj", 64, 64, 16,
                                            32, true, &part, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(part.bias.ne[0], 32);
    cr_assert_eq(part.bias.ndim, 1);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(((const float *)part.bias.data)[i], ((const float *)wb.data)[16 + i]);
    pgd__model_destroy(m);
}

Test(load_rows, unaligned_rows_are_copied)
{
    /* Rows 1..4 of a float32 norm start 4 bytes into an aligned tensor: too unaligned to
     * point into the map, so they are copied; the values must be the same. */
    struct pgd__model *m = open_fixture("phi3-f32", PGD_DTYPE_F32);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    struct pgd_tensor whole, part;
    cr_assert_eq(pgd_model_load_tensor(&ctx, "model.norm.weight", 1, (int64_t[]){ 64 }, &whole,
                                       err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd_model_load_tensor_rows(&ctx, "model.norm.weight", 1, (int64_t[]){ 64 }, 1,
                                            3, &part, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(part.ne[0], 3);
    cr_assert_eq((uintptr_t)part.data % 16, 0, "an unaligned slice should have been copied");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(((const float *)part.data)[i], ((const float *)whole.data)[1 + i]);
    pgd__model_destroy(m);
}

Test(load_rows, refusals_name_the_tensor)
{
    struct pgd__model *m = open_fixture("phi3-f32", PGD_DTYPE_F32);
    struct pgd_model_ctx ctx = { .m = m };
    char err[1024] = "";
    struct pgd_linear l;
    const char *qkv = "model.layers.0.self_attn.qkv_proj";   /* [128, 64] in the file */
    static const struct {
        const char *what;
        int64_t total_out, row0, n_rows;
        bool bias;
        enum pgd_status status;
        const char *needles[4];    /* NULL-terminated */
    } cases[] = {
        { "past the end", 128, 96, 64, false, PGD_ERR_INVALID_ARG,
          { "qkv_proj.weight", "[96, 160)", "128 rows" } },
        { "a negative start", 128, -1, 8, false, PGD_ERR_INVALID_ARG, { NULL } },
        { "an empty slice", 128, 0, 0, false, PGD_ERR_INVALID_ARG, { NULL } },
        { "a whole tensor other than the config implies", 192, 0, 64, false, PGD_ERR_FORMAT,
          { "[128, 64]", "[192, 64]" } },
        { "a bias the checkpoint does not have", 128, 0, 64, true, PGD_ERR_NOT_FOUND,
          { "qkv_proj.bias" } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum pgd_status st = pgd_model_load_linear_rows(&ctx, qkv, 64, cases[i].total_out,
                                                        cases[i].row0, cases[i].n_rows,
                                                        cases[i].bias, &l, err, sizeof err);
        cr_assert_eq(st, cases[i].status, "%s: status %s: %s", cases[i].what,
                     pgd_status_str(st), err);
        for (const char *const *needle = cases[i].needles; *needle; needle++)
            cr_assert(strstr(err, *needle), "%s: message lacks \"%s\": %s", cases[i].what,
                      *needle, err);
    }
    /* ndim 0 has no rows. */
    struct pgd_tensor t;
    cr_assert_eq(pgd_model_load_tensor_rows(&ctx, "model.norm.weight", 0, NULL, 0, 1, &t, err,
                                            sizeof err), PGD_ERR_INVALID_ARG);
    pgd__model_destroy(m);
}
