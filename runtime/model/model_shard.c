/* Tensor parallelism's view of a checkpoint (include/pagoda/model.h): which rank of how many
 * this process is, and loading one rank's shard of a linear layer straight from the
 * safetensors map: the rows of a column-parallel layer (q/k/v, gate/up, a vocabulary-split
 * head) or the input columns of a row-parallel one (o_proj, down_proj). Only the shard is
 * read and copied, through a bounded staging buffer for column shards, so no rank holds a
 * whole tensor in host memory. A quantized layer's shard is its quant plugin's to read
 * (pgd_model_linear_shard tells it which); its bias is sliced here like a dense one's. */
#include "runtime/model/model_ctx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pgd_model_tp_rank(const struct pgd_model_ctx *ctx)
{
    return ctx->m->tp_rank;
}

/* Asking is how a plugin says it shards: the loader refuses a split model otherwise. */
int pgd_model_tp_size(const struct pgd_model_ctx *ctx)
{
    ctx->m->tp_asked = true;
    return ctx->m->tp_size;
}

static enum pgd_status out_of_memory(const struct pgd__model *m, const char *what, char *err,
                                     size_t errlen)
{
    return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory loading the shard of \"%s\" "
                    "(tensor parallel rank %d of %d)", what, m->tp_rank, m->tp_size);
}

/* A [rows, cols] (or [rows] when cols is 0) tensor of the model's dtype in memory it owns. */
static enum pgd_status alloc_tensor(struct pgd__model *m, int64_t rows, int64_t cols,
                                    const char *what, struct pgd_tensor *t, char *err,
                                    size_t errlen)
{
    *t = (struct pgd_tensor){ .dtype = m->dtype, .device = m->device, .ndim = cols ? 2 : 1,
                              .ne = { rows, cols } };
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    t->data = pgd__model_alloc(m, n * pgd_dtype_size(m->dtype));
    return t->data ? PGD_OK : out_of_memory(m, what, err, errlen);
}

/* The shard's rows and columns lie inside the checkpoint's tensors. */
static enum pgd_status check_bounds(const struct pgd__model *m, const char *const *prefixes,
                                    int n_parts, int64_t in, const int64_t *out_features,
                                    const struct pgd_shard *sh, char *err, size_t errlen)
{
    if (sh->kind == PGD_SHARD_COLS) {
        if (sh->col0 < 0 || in <= 0 || sh->col0 > sh->full_in - in)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: shard columns [%lld, %lld) "
                            "are not inside the %lld input features of \"%s\"", m->dir,
                            (long long)sh->col0, (long long)(sh->col0 + in),
                            (long long)sh->full_in, prefixes[0]);
        return PGD_OK;
    }
    for (int i = 0; i < n_parts; i++)
        if (sh->row0[i] < 0 || out_features[i] <= 0 ||
            sh->row0[i] > sh->full_out[i] - out_features[i])
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: shard rows [%lld, %lld) are "
                            "not inside the %lld rows of \"%s\"", m->dir, (long long)sh->row0[i],
                            (long long)(sh->row0[i] + out_features[i]),
                            (long long)sh->full_out[i], prefixes[i]);
    return PGD_OK;
}

/* Rows [row0, row0 + n) of "<prefix>.<what>" ([full_out, cols], or [full_out] when cols is
 * 1 and it is a bias) into dst, in the model's dtype on its device. Random weights are
 * scaled for in_features inputs (a random bias is drawn like its weight rows). */
static enum pgd_status copy_part_rows(struct pgd_model_ctx *ctx, const char *prefix,
                                      const char *what, int64_t cols, int64_t full_out,
                                      int64_t row0, int64_t n, int64_t in_features, void *dst,
                                      char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    bool is_bias = !strcmp(what, "bias");
    char name[512];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    if (m->random_weights) {
        char rname[600];
        snprintf(rname, sizeof rname, "%s@%lld", name, (long long)row0);
        return pgd__model_fill_random(m, rname, dst, (size_t)(n * cols), in_features, err,
                                      errlen);
    }
    const struct pgd__st_tensor *t;
    enum pgd_status st = pgd__model_find_float(ctx, name, is_bias ? 1 : 2,
                                               (int64_t[]){ full_out, cols }, &t, err, errlen);
    if (st)
        return st;
    size_t first = (size_t)(row0 * cols);
    return pgd__model_upload_checked(m, dst, t, (const char *)t->data +
                                     first * pgd_dtype_size(t->dtype), (size_t)(n * cols), first,
                                     err, errlen);
}

/* The biases of a column-parallel shard: each part's rows, fused. */
static enum pgd_status load_bias_rows(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                      int n_parts, int64_t in, const int64_t *out_features,
                                      const struct pgd_shard *sh, struct pgd_tensor *bias,
                                      char *err, size_t errlen)
{
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++)
        total += out_features[i];
    enum pgd_status st = alloc_tensor(ctx->m, total, 0, prefixes[0], bias, err, errlen);
    size_t esz = pgd_dtype_size(ctx->m->dtype);
    int64_t row = 0;
    for (int i = 0; !st && i < n_parts; row += out_features[i], i++)
        st = copy_part_rows(ctx, prefixes[i], "bias", 1, sh->full_out[i], sh->row0[i],
                            out_features[i], in, (char *)bias->data + (size_t)row * esz, err,
                            errlen);
    return st;
}

/* Column-parallel: rows [row0[i], row0[i] + out_features[i]) of each part, fused. One part
 * is pgd_model_load_linear_rows (which reads a float32 shard in place on the CPU). */
static enum pgd_status load_row_shard(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                      int n_parts, int64_t in, const int64_t *out_features,
                                      bool bias, const struct pgd_shard *sh,
                                      struct pgd_linear *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++)
        total += out_features[i];
    if (n_parts == 1)
        return pgd_model_load_linear_rows(ctx, prefixes[0], in, sh->full_out[0], sh->row0[0],
                                          out_features[0], bias, out, err, errlen);
    *out = (struct pgd_linear){ .in_features = in, .out_features = total };
    enum pgd_status st = alloc_tensor(m, total, in, prefixes[0], &out->weight, err, errlen);
    size_t esz = pgd_dtype_size(m->dtype);
    int64_t row = 0;
    for (int i = 0; !st && i < n_parts; row += out_features[i], i++)
        st = copy_part_rows(ctx, prefixes[i], "weight", in, sh->full_out[i], sh->row0[i],
                            out_features[i], in,
                            (char *)out->weight.data + (size_t)(row * in) * esz, err, errlen);
    if (!st && bias)
        st = load_bias_rows(ctx, prefixes, n_parts, in, out_features, sh, &out->bias, err,
                            errlen);
    return st;
}

/* Row-parallel: input columns [col0, col0 + in) of every row, gathered a bounded block of
 * rows at a time into host staging (in the checkpoint's dtype), then converted and
 * uploaded; the bias only where with_bias. */
static enum pgd_status load_col_shard(struct pgd_model_ctx *ctx, const char *prefix, int64_t in,
                                      int64_t out_f, bool bias, const struct pgd_shard *sh,
                                      struct pgd_linear *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    *out = (struct pgd_linear){ .in_features = in, .out_features = out_f };
    enum pgd_status st = alloc_tensor(m, out_f, in, prefix, &out->weight, err, errlen);
    if (!st && m->random_weights) {
        char rname[600];
        snprintf(rname, sizeof rname, "%s@col%lld", name, (long long)sh->col0);
        st = pgd__model_fill_random(m, rname, out->weight.data, (size_t)(out_f * in), sh->full_in,
                                    err, errlen);
    } else if (!st) {
        const struct pgd__st_tensor *t = NULL;
        st = pgd__model_find_float(ctx, name, 2, (int64_t[]){ out_f, sh->full_in }, &t, err,
                                   errlen);
        size_t src_esz = t ? pgd_dtype_size(t->dtype) : 1, dst_esz = pgd_dtype_size(m->dtype);
        /* About 16 MiB of staging, at least one row. */
        int64_t block = ((int64_t)16 << 20) / (int64_t)(in * (int64_t)src_esz);
        block = block < 1 ? 1 : block > out_f ? out_f : block;
        char *stage = st ? NULL : malloc((size_t)(block * in) * src_esz);
        if (!st && !stage)
            st = out_of_memory(m, name, err, errlen);
        for (int64_t r0 = 0; !st && r0 < out_f; r0 += block) {
            int64_t rows = out_f - r0 < block ? out_f - r0 : block;
            for (int64_t r = 0; r < rows; r++)
                memcpy(stage + (size_t)(r * in) * src_esz,
                       (const char *)t->data + (size_t)((r0 + r) * sh->full_in + sh->col0) * src_esz,
                       (size_t)in * src_esz);
            st = pgd__model_upload_checked(m, (char *)out->weight.data + (size_t)(r0 * in) * dst_esz,
                                           t, stage, (size_t)(rows * in),
                                           (size_t)(r0 * sh->full_in + sh->col0), err, errlen);
        }
        free(stage);
    }
    if (st || !bias || !sh->with_bias)
        return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return pgd_model_load_tensor(ctx, name, 1, &out_f, &out->bias, err, errlen);
}

const struct pgd_shard *pgd_model_linear_shard(struct pgd_model_ctx *ctx)
{
    ctx->m->quant_shard_asked = true;
    return ctx->m->quant_shard;
}

/* A quantized layer: its plugin loads the shard (pgd_model_linear_shard says which), without
 * the bias, which is sliced here as a dense layer's is. */
static enum pgd_status load_quant_shard(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                        int n_parts, int64_t in, const int64_t *out_features,
                                        bool bias, const struct pgd_shard *sh,
                                        struct pgd_linear *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    m->quant_shard = sh;
    m->quant_shard_asked = false;
    enum pgd_status st = pgd__model_quant_load_linear(ctx, prefixes, n_parts, in, out_features,
                                                      false, out, err, errlen);
    bool asked = m->quant_shard_asked;
    m->quant_shard = NULL;
    if (!asked)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: \"%s\": the %s quant plugin does "
                        "not shard its layers over tensor-parallel ranks (it never asks "
                        "pgd_model_linear_shard); run it with tensor_parallel_size 1", m->dir,
                        prefixes[0], m->quant->name);
    if (st || !bias)
        return st;
    if (sh->kind == PGD_SHARD_ROWS)
        return load_bias_rows(ctx, prefixes, n_parts, in, out_features, sh, &out->bias, err,
                              errlen);
    if (!sh->with_bias)
        return PGD_OK;
    char name[512];
    snprintf(name, sizeof name, "%s.bias", prefixes[0]);
    return pgd_model_load_tensor(ctx, name, 1, &out_features[0], &out->bias, err, errlen);
}

enum pgd_status pgd_model_load_linear_shard(struct pgd_model_ctx *ctx,
                                            const char *const *prefixes, int n_parts,
                                            int64_t in_features, const int64_t *out_features,
                                            bool bias, const struct pgd_shard *shard,
                                            struct pgd_linear *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    *out = (struct pgd_linear){ 0 };
    if (n_parts < 1 || (shard->kind == PGD_SHARD_COLS && n_parts != 1) ||
        (shard->kind != PGD_SHARD_ROWS && shard->kind != PGD_SHARD_COLS))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: \"%s\": a shard of kind %d over "
                        "%d parts (row shards fuse parts, a column shard has one)", m->dir,
                        prefixes[0], (int)shard->kind, n_parts);
    bool quantized = false;
    enum pgd_status st = check_bounds(m, prefixes, n_parts, in_features, out_features, shard,
                                      err, errlen);
    if (!st)
        st = pgd__model_quant_claims(m, prefixes, n_parts, &quantized, err, errlen);
    if (st)
        return st;
    if (quantized)
        return load_quant_shard(ctx, prefixes, n_parts, in_features, out_features, bias, shard,
                                out, err, errlen);
    if (shard->kind == PGD_SHARD_ROWS)
        return load_row_shard(ctx, prefixes, n_parts, in_features, out_features, bias, shard,
                              out, err, errlen);
    return load_col_shard(ctx, prefixes[0], in_features, out_features[0], bias, shard, out, err,
                          errlen);
}
