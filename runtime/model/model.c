/* Loading a model: config.json -> architecture plugin -> weights (see model.h). */
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "runtime/model/safetensors.h"
#include "runtime/base/device.h"
#include "runtime/base/mem.h"
#include "config.h"
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif
#include <pagoda/log.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- device allocations owned by the model ----------------------------------------------- */
static void *model_alloc(struct pgd__model *m, size_t bytes)
{
    if (!pgd__array_reserve(m->allocs, m->cap_allocs, m->n_allocs + 1))
        return NULL;
    void *p = pgd__device_alloc(m->device, bytes);
    if (p) {
        m->allocs[m->n_allocs++] = p;
        m->weight_bytes += bytes;
    }
    return p;
}

/* ---- tensors ----------------------------------------------------------------------------- */
bool pgd_model_has_tensor(const struct pgd_model_ctx *ctx, const char *name)
{
    if (ctx->m->random_weights)
        return true;
    return pgd__weights_find(ctx->m->weights, name) != NULL;
}

/* ---- random weights ------------------------------------------------------------------------ */
static uint64_t name_seed(const char *name, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed;     /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* The same counter hash as kernels/cuda (pgd_cuda_fill_random): equal values on both. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static enum pgd_status fill_random(struct pgd__model *m, const char *name, void *dst, size_t n,
                                   int64_t cols, char *err, size_t errlen)
{
    float lo, hi;
    if (strstr(name, "norm")) {
        lo = 0.9f;
        hi = 1.1f;
    } else {
        hi = (float)sqrt(3.0 / (double)(cols > 0 ? cols : 1));
        lo = -hi;
    }
    uint64_t seed = name_seed(name, m->random_seed);
#ifdef PGD_HAVE_CUDA
    if (m->device == PGD_DEVICE_CUDA) {
        if (pgd_cuda_fill_random(NULL, m->dtype, dst, n, seed, lo, hi, err, errlen))
            return PGD_ERR_DEVICE;
        return PGD_OK;
    }
#endif
    if (m->device != PGD_DEVICE_CPU || m->dtype != PGD_DTYPE_F32)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "random weights on %s in %s",
                        pgd__device_name(m->device), pgd_dtype_name(m->dtype));
    float *f = dst;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix64(seed + 0x9e3779b97f4a7c15ull * (i + 1));
        f[i] = lo + (hi - lo) * ((float)(r >> 40) * (1.0f / 16777216.0f));
    }
    return PGD_OK;
}

static bool is_float_dtype(enum pgd_dtype dt)
{
    return dt == PGD_DTYPE_F32 || dt == PGD_DTYPE_F16 || dt == PGD_DTYPE_BF16;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n)
        snprintf(buf + off, n - off, "]");
}

/* Finds name and checks it is a float tensor of the given shape. */
static enum pgd_status find_checked(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                    const int64_t *shape, const struct pgd__st_tensor **out,
                                    char *err, size_t errlen)
{
    const struct pgd__st_tensor *t = pgd__weights_find(ctx->m->weights, name);
    if (!t)
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s: the checkpoint has no tensor \"%s\"",
                        ctx->m->dir, name);
    if (!is_float_dtype(t->dtype))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor \"%s\" is %s, expected a float "
                        "dtype (F32, F16, BF16)", t->path, name, pgd_dtype_name(t->dtype));
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[96], want[96];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, the config "
                        "implies %s", t->path, name, got, want);
    }
    *out = t;
    return PGD_OK;
}

/* The first of src[0..n) (elements of float dtype dt) that is NaN or +-Inf, or n when
 * none; *nan says which. One such weight poisons every output it reaches (a NaN spreads
 * through every sum it enters), so a checkpoint holding one is refused at load, where the
 * file and the tensor can still be named, rather than answering requests with garbage. The
 * test looks at the bits (an exponent of all ones): one pass over memory the load reads
 * anyway. */
static size_t first_non_finite(const void *src, enum pgd_dtype dt, size_t n, bool *nan)
{
    const unsigned char *p = src;
    if (dt == PGD_DTYPE_F32) {
        for (size_t i = 0; i < n; i++) {
            uint32_t b;
            memcpy(&b, p + 4 * i, 4);
            if ((b & 0x7f800000u) == 0x7f800000u) {
                *nan = (b & 0x007fffffu) != 0;
                return i;
            }
        }
        return n;
    }
    /* BF16: exponent 0x7f80, mantissa 0x007f; F16: exponent 0x7c00, mantissa 0x03ff. */
    uint16_t exp = dt == PGD_DTYPE_BF16 ? 0x7f80u : 0x7c00u;
    for (size_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, p + 2 * i, 2);
        if ((b & exp) == exp) {
            *nan = (b & (uint16_t)~(exp | 0x8000u)) != 0;
            return i;
        }
    }
    return n;
}

/* Host -> model memory; on CUDA through the pinned staging buffers of the load. */
static enum pgd_status upload(struct pgd__model *m, void *dst, const void *src, size_t bytes,
                              char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    if (m->stager)
        return pgd_cuda_stager_upload(m->stager, dst, src, bytes, err, errlen) ? PGD_ERR_DEVICE
                                                                               : PGD_OK;
#endif
    return pgd__device_upload(m->device, dst, src, bytes, err, errlen);
}

/* Copies n elements of src (any float dtype), starting at src_data (the tensor's data or a
 * row of it), into device memory dst of the model's dtype. */
static enum pgd_status upload_converted(struct pgd__model *m, void *dst,
                                        const struct pgd__st_tensor *src, const void *src_data,
                                        size_t n, char *err, size_t errlen)
{
    if (src->dtype == m->dtype)
        return upload(m, dst, src_data, n * pgd_dtype_size(m->dtype), err, errlen);
    /* Convert on the host in bounded chunks, then upload. */
    enum { CHUNK = 1 << 20 };
    float *tmp = malloc((size_t)CHUNK * sizeof(float));
    uint16_t *tmp16 = m->dtype == PGD_DTYPE_F32 ? NULL : malloc((size_t)CHUNK * 2);
    if (!tmp || (m->dtype != PGD_DTYPE_F32 && !tmp16)) {
        free(tmp);
        free(tmp16);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of host memory converting \"%s\"",
                        src->name);
    }
    enum pgd_status st = PGD_OK;
    size_t esz = pgd_dtype_size(src->dtype), dsz = pgd_dtype_size(m->dtype);
    for (size_t off = 0; off < n && st == PGD_OK; off += CHUNK) {
        size_t cnt = n - off < CHUNK ? n - off : CHUNK;
        pgd_convert_to_f32(tmp, (const char *)src_data + off * esz, src->dtype, cnt);
        const void *chunk = tmp;
        if (m->dtype == PGD_DTYPE_BF16 || m->dtype == PGD_DTYPE_F16) {
            for (size_t i = 0; i < cnt; i++)
                tmp16[i] = m->dtype == PGD_DTYPE_BF16 ? pgd_f32_to_bf16(tmp[i])
                                                      : pgd_f32_to_f16(tmp[i]);
            chunk = tmp16;
            /* A finite weight past float16's range (65504) would become Inf. */
            bool nan;
            size_t bad = m->dtype == PGD_DTYPE_F16 ? first_non_finite(tmp16, m->dtype, cnt, &nan)
                                                   : cnt;
            if (bad < cnt) {
                st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor \"%s\" element %zu = %g "
                              "overflows float16 (largest 65504): load it as bfloat16 or "
                              "float32", src->path, src->name, off + bad, (double)tmp[bad]);
                break;
            }
        }
        st = upload(m, (char *)dst + off * dsz, chunk, cnt * dsz, err, errlen);
    }
    free(tmp);
    free(tmp16);
    return st;
}

/* Random rows [row0, ...) of a tensor are drawn under its name with this suffix and row0
 * (load_rows; random_linear_name): each rank's rows of a split tensor are their own stream. */
#define RANDOM_ROWS_SUFFIX "@%lld"

/* Loads rows [row0, row0 + n_rows) of tensor `name` (of exactly ndim/shape); a scalar
 * (ndim 0) is one row. dst: where the rows go (in the model's dtype, on its device; the
 * caller owns it), or NULL for memory of their own (or, on the CPU, the map itself). */
static enum pgd_status load_rows_into(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                      const int64_t *shape, int64_t row0, int64_t n_rows,
                                      void *dst, struct pgd_tensor *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    const struct pgd__st_tensor *t = NULL;
    enum pgd_status st = m->random_weights ? PGD_OK
                                           : find_checked(ctx, name, ndim, shape, &t, err, errlen);
    if (st)
        return st;
    *out = (struct pgd_tensor){ .dtype = m->dtype, .device = m->device, .ndim = ndim };
    size_t row_elems = 1;
    for (int i = 1; i < ndim; i++) {
        out->ne[i] = shape[i];
        row_elems *= (size_t)shape[i];
    }
    if (ndim > 0)
        out->ne[0] = n_rows;
    size_t n = row_elems * (size_t)n_rows;
    if (m->random_weights) {
        char rname[600];
        snprintf(rname, sizeof rname, "%s" RANDOM_ROWS_SUFFIX, name, (long long)row0);
        out->data = dst ? dst : model_alloc(m, n * pgd_dtype_size(m->dtype));
        if (!out->data)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of %s memory for \"%s\" (%zu bytes)",
                            pgd__device_name(m->device), name, n * pgd_dtype_size(m->dtype));
        return fill_random(m, rname, out->data, n, ndim > 1 ? shape[ndim - 1] : 0, err, errlen);
    }
    const char *src = (const char *)t->data + (size_t)row0 * row_elems * pgd_dtype_size(t->dtype);
    bool nan = false;
    size_t bad = first_non_finite(src, t->dtype, n, &nan);
    if (bad < n)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor \"%s\" holds %s at element %zu "
                        "(it would poison every output): the checkpoint is corrupt", t->path,
                        name, nan ? "NaN" : "Inf", (size_t)row0 * row_elems + bad);
    /* Zero-copy: a CPU model reads float32 weights straight from the map when aligned. */
    if (!dst && m->device == PGD_DEVICE_CPU && t->dtype == m->dtype && ((uintptr_t)src % 16) == 0) {
        out->data = (void *)src;
        m->weight_bytes += n * pgd_dtype_size(m->dtype);
        return PGD_OK;
    }
    out->data = dst ? dst : model_alloc(m, n * pgd_dtype_size(m->dtype));
    if (!out->data)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of %s memory loading \"%s\" (%zu bytes)",
                        pgd__device_name(m->device), name, n * pgd_dtype_size(m->dtype));
    return upload_converted(m, out->data, t, src, n, err, errlen);
}

static enum pgd_status load_rows(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                 const int64_t *shape, int64_t row0, int64_t n_rows,
                                 struct pgd_tensor *out, char *err, size_t errlen)
{
    return load_rows_into(ctx, name, ndim, shape, row0, n_rows, NULL, out, err, errlen);
}

/* The helpers runtime/model/model_shard.c loads shards with (model_ctx.h). */
void *pgd__model_alloc(struct pgd__model *m, size_t bytes) { return model_alloc(m, bytes); }
enum pgd_status pgd__model_find_float(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                      const int64_t *shape, const struct pgd__st_tensor **out,
                                      char *err, size_t errlen)
{
    return find_checked(ctx, name, ndim, shape, out, err, errlen);
}
enum pgd_status pgd__model_upload_checked(struct pgd__model *m, void *dst,
                                          const struct pgd__st_tensor *src, const void *src_data,
                                          size_t n, size_t first, char *err, size_t errlen)
{
    bool nan = false;
    size_t bad = first_non_finite(src_data, src->dtype, n, &nan);
    if (bad < n)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor \"%s\" holds %s at element %zu "
                        "(it would poison every output): the checkpoint is corrupt", src->path,
                        src->name, nan ? "NaN" : "Inf", first + bad);
    return upload_converted(m, dst, src, src_data, n, err, errlen);
}
enum pgd_status pgd__model_fill_random(struct pgd__model *m, const char *name, void *dst,
                                       size_t n, int64_t cols, char *err, size_t errlen)
{
    return fill_random(m, name, dst, n, cols, err, errlen);
}
uint64_t pgd__model_random_seed_of(const struct pgd__model *m, const char *name)
{
    return name_seed(name, m->random_seed);
}

enum pgd_status pgd_model_load_tensor(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                      const int64_t *shape, struct pgd_tensor *out,
                                      char *err, size_t errlen)
{
    return load_rows(ctx, name, ndim, shape, 0, ndim > 0 ? shape[0] : 1, out, err, errlen);
}

enum pgd_status pgd_model_load_tensor_rows(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                           const int64_t *shape, int64_t row0, int64_t n_rows,
                                           struct pgd_tensor *out, char *err, size_t errlen)
{
    if (ndim < 1 || ndim > PGD_MAX_DIMS)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: tensor \"%s\": ndim %d is not in "
                        "1..%d", ctx->m->dir, name, ndim, PGD_MAX_DIMS);
    if (row0 < 0 || n_rows <= 0 || row0 > shape[0] - n_rows)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: tensor \"%s\": rows [%lld, %lld) "
                        "are not inside its %lld rows", ctx->m->dir, name, (long long)row0,
                        (long long)(row0 + n_rows), (long long)shape[0]);
    return load_rows(ctx, name, ndim, shape, row0, n_rows, out, err, errlen);
}

enum pgd_status pgd_model_load_linear_rows(struct pgd_model_ctx *ctx, const char *prefix,
                                           int64_t in_features, int64_t total_out, int64_t row0,
                                           int64_t n_rows, bool bias, struct pgd_linear *out,
                                           char *err, size_t errlen)
{
    char name[512];
    *out = (struct pgd_linear){ .in_features = in_features, .out_features = n_rows };
    bool quantized;
    enum pgd_status qst = pgd__model_quant_claims(ctx->m, &prefix, 1, &quantized, err, errlen);
    if (qst)
        return qst;
    if (quantized)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: %s is quantized (%s): row slices "
                        "of a quantized layer are not supported", ctx->m->dir, prefix,
                        ctx->m->quant->name);
    snprintf(name, sizeof name, "%s.weight", prefix);
    enum pgd_status st = pgd_model_load_tensor_rows(ctx, name, 2,
                                                    (int64_t[]){ total_out, in_features }, row0,
                                                    n_rows, &out->weight, err, errlen);
    if (st || !bias)
        return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return pgd_model_load_tensor_rows(ctx, name, 1, &total_out, row0, n_rows, &out->bias, err,
                                      errlen);
}

/* pgd_model_load_bias; random_cols is the width random values are scaled for (a fused
 * layer's random bias has always been drawn like its weight rows). */
static enum pgd_status load_bias(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                 int n_parts, const int64_t *out_features, int64_t random_cols,
                                 struct pgd_tensor *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    char name[512];
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++)
        total += out_features[i];
    if (n_parts == 1) {
        snprintf(name, sizeof name, "%s.bias", prefixes[0]);
        return pgd_model_load_tensor(ctx, name, 1, &total, out, err, errlen);
    }
    size_t esz = pgd_dtype_size(m->dtype);
    *out = (struct pgd_tensor){ .dtype = m->dtype, .device = m->device, .ndim = 1,
                                .ne = { total } };
    if (!(out->data = model_alloc(m, (size_t)total * esz)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of %s memory loading \"%s.bias\" fused",
                        pgd__device_name(m->device), prefixes[0]);
    if (m->random_weights) {
        snprintf(name, sizeof name, "%s.bias", prefixes[0]);
        return fill_random(m, name, out->data, (size_t)total, random_cols, err, errlen);
    }
    int64_t row = 0;
    for (int i = 0; i < n_parts; i++) {
        const struct pgd__st_tensor *t;
        snprintf(name, sizeof name, "%s.bias", prefixes[i]);
        enum pgd_status st = find_checked(ctx, name, 1, &out_features[i], &t, err, errlen);
        if (!st)
            st = upload_converted(m, (char *)out->data + (size_t)row * esz, t, t->data,
                                  (size_t)out_features[i], err, errlen);
        if (st)
            return st;
        row += out_features[i];
    }
    return PGD_OK;
}

enum pgd_status pgd_model_load_bias(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                    int n_parts, const int64_t *out_features,
                                    struct pgd_tensor *out, char *err, size_t errlen)
{
    return load_bias(ctx, prefixes, n_parts, out_features, 0, out, err, errlen);
}

/* The name the random values of a dense linear are drawn under: a single layer's weight is
 * read as a tensor from row 0 (pgd_model_load_tensor, RANDOM_ROWS_SUFFIX), a fused layer's
 * is drawn whole under its first part's name. */
static void random_linear_name(const char *const *prefixes, int n_parts, char *buf, size_t len)
{
    if (n_parts == 1)
        snprintf(buf, len, "%s.weight" RANDOM_ROWS_SUFFIX, prefixes[0], 0LL);
    else
        snprintf(buf, len, "%s.weight", prefixes[0]);
}

enum pgd_status pgd_model_load_linear(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                      int n_parts, int64_t in_features,
                                      const int64_t *out_features, bool bias,
                                      struct pgd_linear *out, char *err, size_t errlen)
{
    struct pgd__model *m = ctx->m;
    char name[512];
    int64_t total_out = 0;
    for (int i = 0; i < n_parts; i++)
        total_out += out_features[i];
    *out = (struct pgd_linear){ .in_features = in_features, .out_features = total_out };
    /* A quantized checkpoint's layers go to its quant plugin; the ones it leaves dense
     * (lm_head, modules_to_not_convert) are read here like any dense layer. */
    bool quantized;
    enum pgd_status st = pgd__model_quant_claims(m, prefixes, n_parts, &quantized, err, errlen);
    if (st)
        return st;
    if (quantized)
        return pgd__model_quant_load_linear(ctx, prefixes, n_parts, in_features, out_features,
                                            bias, out, err, errlen);
    if (n_parts == 1) {
        snprintf(name, sizeof name, "%s.weight", prefixes[0]);
        st = pgd_model_load_tensor(ctx, name, 2, (int64_t[]){ total_out, in_features },
                                   &out->weight, err, errlen);
        if (st || !bias)
            return st;
        return load_bias(ctx, prefixes, 1, out_features, 0, &out->bias, err, errlen);
    }
    /* Fused: concatenate the parts along the output dimension. */
    size_t esz = pgd_dtype_size(m->dtype);
    out->weight = (struct pgd_tensor){ .dtype = m->dtype, .device = m->device, .ndim = 2,
                                       .ne = { total_out, in_features } };
    out->weight.data = model_alloc(m, (size_t)(total_out * in_features) * esz);
    if (!out->weight.data)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of %s memory loading \"%s\" fused",
                        pgd__device_name(m->device), prefixes[0]);
    if (m->random_weights) {
        random_linear_name(prefixes, n_parts, name, sizeof name);
        st = fill_random(m, name, out->weight.data, (size_t)(total_out * in_features),
                         in_features, err, errlen);
    } else {
        int64_t row = 0;
        for (int i = 0; i < n_parts && !st; i++) {
            const struct pgd__st_tensor *t;
            snprintf(name, sizeof name, "%s.weight", prefixes[i]);
            st = find_checked(ctx, name, 2, (int64_t[]){ out_features[i], in_features }, &t,
                              err, errlen);
            if (!st)
                st = upload_converted(m, (char *)out->weight.data +
                                             (size_t)(row * in_features) * esz,
                                      t, t->data, (size_t)(out_features[i] * in_features), err,
                                      errlen);
            row += out_features[i];
        }
    }
    if (st || !bias)
        return st;
    return load_bias(ctx, prefixes, n_parts, out_features, in_features, &out->bias, err, errlen);
}

enum pgd_status pgd_model_load_linears(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                       int n, int64_t in_features, const int64_t *out_features,
                                       bool bias, struct pgd_linear *out, char *err,
                                       size_t errlen)
{
    struct pgd__model *m = ctx->m;
    if (n < 1)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%d layers to load (1 or more)", n);
    bool any_quantized = false;
    for (int i = 0; i < n && !any_quantized; i++) {
        enum pgd_status st = pgd__model_quant_claims(m, &prefixes[i], 1, &any_quantized, err,
                                                     errlen);
        if (st)
            return st;
    }
    /* Apart: quantized layers (their plugin's structures), and a CPU model (it reads float32
     * weights in place from the map, and its linears gain nothing from adjacency). */
    if (any_quantized || m->device == PGD_DEVICE_CPU) {
        for (int i = 0; i < n; i++) {
            enum pgd_status st = pgd_model_load_linear(ctx, &prefixes[i], 1, in_features,
                                                       &out_features[i], bias, &out[i], err,
                                                       errlen);
            if (st)
                return st;
        }
        return PGD_OK;
    }
    /* One allocation for the weights and one for the biases, the layers' rows one after
     * the other; each layer's values as its own load gives them (random ones drawn under
     * its own name). */
    size_t esz = pgd_dtype_size(m->dtype);
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += out_features[i];
    char *w = model_alloc(m, (size_t)(total * in_features) * esz);
    char *b = bias ? model_alloc(m, (size_t)total * esz) : NULL;
    if (!w || (bias && !b))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of %s memory loading \"%s\" and the "
                        "%d layers beside it", pgd__device_name(m->device), prefixes[0], n - 1);
    char name[512];
    int64_t row = 0;
    for (int i = 0; i < n; i++) {
        out[i] = (struct pgd_linear){ .in_features = in_features, .out_features = out_features[i] };
        snprintf(name, sizeof name, "%s.weight", prefixes[i]);
        int64_t wshape[2] = { out_features[i], in_features };
        enum pgd_status st = load_rows_into(ctx, name, 2, wshape, 0, out_features[i],
                                            w + (size_t)(row * in_features) * esz,
                                            &out[i].weight, err, errlen);
        if (!st && bias) {
            snprintf(name, sizeof name, "%s.bias", prefixes[i]);
            st = load_rows_into(ctx, name, 1, &out_features[i], 0, out_features[i],
                                b + (size_t)row * esz, &out[i].bias, err, errlen);
        }
        if (st)
            return st;
        row += out_features[i];
    }
    return PGD_OK;
}

enum pgd_status pgd_model_load_mlp(struct pgd_model_ctx *ctx, const char *const *up, int n_up,
                                   const char *down, int64_t hidden, int64_t inter, bool bias,
                                   struct pgd_linear *up_out, struct pgd_linear *down_out,
                                   char *err, size_t errlen)
{
    enum { MAX_UP = 8 };
    struct pgd__model *m = ctx->m;
    if (n_up < 1 || n_up > MAX_UP)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: %d fused parts (1..%d)", up[0],
                        n_up, MAX_UP);
    int64_t outs[MAX_UP];
    for (int i = 0; i < n_up; i++)
        outs[i] = inter;
    /* Folding needs both layers quantized (the fold is done on the quant plugin's host
     * arrays, qweight.c), no bias to reorder, and whole layers (a rank's slice of down's
     * input would need its own order). */
    bool q_up = false, q_down = false;
    enum pgd_status st = pgd__model_quant_claims(m, up, n_up, &q_up, err, errlen);
    if (!st)
        st = pgd__model_quant_claims(m, &down, 1, &q_down, err, errlen);
    if (st)
        return st;
    const char *env = getenv("PGD_FOLD_ACT_ORDER");
    if (!q_up || !q_down || bias || m->tp_size > 1 || (env && !strcmp(env, "0"))) {
        /* no fold: the checkpoint's order, up first */
        st = pgd_model_load_linear(ctx, up, n_up, hidden, outs, bias, up_out, err, errlen);
        return st ? st : pgd_model_load_linear(ctx, &down, 1, inter, &hidden, bias, down_out,
                                               err, errlen);
    }
    m->fold.phase = PGD__FOLD_TAKE;
    st = pgd_model_load_linear(ctx, &down, 1, inter, &hidden, bias, down_out, err, errlen);
    if (!st) {
        m->fold.phase = PGD__FOLD_GIVE;
        m->fold.order_used = false;
        st = pgd_model_load_linear(ctx, up, n_up, hidden, outs, bias, up_out, err, errlen);
        if (!st && m->fold.order && !m->fold.order_used)
            st = pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: %s gave up its act-order "
                          "permutation for this layer's output order, but its quant plugin "
                          "did not make it through pgd_model_qweight_wq or _fp8, which apply "
                          "the order (PGD_FOLD_ACT_ORDER=0 loads it unfolded)", up[0], down);
        if (!st && m->fold.order)
            m->fold.folded++;
    }
    free(m->fold.order);
    m->fold.order = NULL;
    m->fold.n_order = 0;
    m->fold.phase = PGD__FOLD_NONE;
    return st;
}

struct pgd_linear pgd_linear_from_tensor(const struct pgd_tensor *weight)
{
    return (struct pgd_linear){ .weight = *weight, .in_features = pgd_tensor_cols(weight),
                                .out_features = pgd_tensor_rows(weight) };
}

/* ---- special token ids -------------------------------------------------------------------- */
static void add_ids(struct pgd__model *m, json_t *v)
{
    if (json_is_integer(v) && m->n_eos < PGD_MAX_EOS) {
        m->eos_ids[m->n_eos++] = (int32_t)json_integer_value(v);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) add_ids(m, e);
    }
}

static void read_special_ids(struct pgd__model *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", m->dir);
    json_t *gen = json_load_file(path, 0, NULL);
    json_t *src = gen && json_object_get(gen, "eos_token_id") ? gen : m->config;
    add_ids(m, json_object_get(src, "eos_token_id"));
    json_t *bos = json_object_get(gen && json_object_get(gen, "bos_token_id") ? gen : m->config,
                                  "bos_token_id");
    m->bos_id = json_is_integer(bos) ? (int32_t)json_integer_value(bos) : -1;
    json_decref(gen);
}

/* ---- the model ----------------------------------------------------------------------------- */
static enum pgd_status pick_plugin(struct pgd__model *m, const struct pgd_registry *reg,
                                   char *err, size_t errlen)
{
    json_t *archs = json_object_get(m->config, "architectures");
    if (!json_is_array(archs) || json_array_size(archs) == 0)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: \"architectures\" must be a non-empty list of strings",
                        m->config_path);
    size_t i;
    json_t *a;
    json_array_foreach(archs, i, a) {
        if (!json_is_string(a))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: \"architectures\" must be a list of strings", m->config_path);
        m->plugin = pgd_registry_find_arch(reg, json_string_value(a));
        if (m->plugin)
            return PGD_OK;
    }
    char avail[1024];
    pgd_registry_list_archs(reg, avail, sizeof avail);
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                    "%s: no plugin claims architecture \"%s\"; available architectures: %s",
                    m->config_path, json_string_value(json_array_get(archs, 0)), avail);
}

static enum pgd_dtype checkpoint_dtype(const struct pgd__model *m)
{
    const char *names[] = { "dtype", "torch_dtype" };
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(m->config, names[i]));
        if (s && !strcmp(s, "bfloat16"))
            return PGD_DTYPE_BF16;
        if (s && !strcmp(s, "float16"))
            return PGD_DTYPE_F16;
        if (s)
            return PGD_DTYPE_F32;
    }
    return PGD_DTYPE_F32;
}

enum pgd_status pgd__model_load(const char *dir, const struct pgd_registry *reg,
                                enum pgd_device device, struct pgd__model **out,
                                char *err, size_t errlen)
{
    struct pgd__model_opts o = { .dtype = PGD_DTYPE_COUNT };
    return pgd__model_load_opts(dir, reg, device, &o, out, err, errlen);
}

enum pgd_status pgd__model_load_opts(const char *dir, const struct pgd_registry *reg,
                                     enum pgd_device device, const struct pgd__model_opts *opts,
                                     struct pgd__model **out, char *err, size_t errlen)
{
    *out = NULL;
    struct pgd__model *m = calloc(1, sizeof *m);
    if (!m)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    m->device = device;
    m->dir = strdup(dir);
    m->config_path = malloc(strlen(dir) + sizeof "/config.json");
    if (!m->dir || !m->config_path) {
        pgd__model_destroy(m);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    sprintf(m->config_path, "%s/config.json", dir);
    enum pgd_status st = pgd__config_read(dir, &m->config, err, errlen);
    if (!st)
        st = pick_plugin(m, reg, err, errlen);
    if (!st)
        st = pgd__config_check_values(m->config, m->config_path, reg, err, errlen);
    m->random_weights = opts->random_weights;
    m->random_seed = opts->seed;
    m->tp_rank = opts->tp_rank;
    m->tp_size = opts->tp_size > 0 ? opts->tp_size : 1;
    if (!st && !m->random_weights)
        st = pgd__weights_open_dir(dir, &m->weights, err, errlen);
    if (st) {
        pgd__model_destroy(m);
        return st;
    }
    /* The CPU computes in float32 (16-bit weights are widened at load); a GPU keeps the
     * checkpoint's 16-bit dtype, or the one asked for. */
    m->dtype = device == PGD_DEVICE_CPU ? PGD_DTYPE_F32 : checkpoint_dtype(m);
    if (device != PGD_DEVICE_CPU && opts->dtype != PGD_DTYPE_COUNT)
        m->dtype = opts->dtype;
    if (m->dtype == PGD_DTYPE_F32 && device != PGD_DEVICE_CPU)
        m->dtype = PGD_DTYPE_BF16;
    if (device != PGD_DEVICE_CPU && m->dtype != PGD_DTYPE_BF16 && m->dtype != PGD_DTYPE_F16) {
        pgd__model_destroy(m);
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a GPU model computes in BF16 or "
                        "F16, not %s", dir, pgd_dtype_name(m->dtype));
    }
    read_special_ids(m);
    if ((st = pgd__model_quant_setup(m, reg, opts->quantization, err, errlen))) {
        pgd__model_destroy(m);
        return st;
    }
#ifdef PGD_HAVE_CUDA
    if (device == PGD_DEVICE_CUDA && !m->random_weights) {
        m->stager = pgd_cuda_stager_create((size_t)32 << 20, err, errlen);
        if (!m->stager) {
            pgd__model_destroy(m);
            return PGD_ERR_DEVICE;
        }
    }
#endif

    struct pgd_model_ctx ctx = { .m = m };
    st = m->plugin->arch->load(&ctx, &m->desc, &m->impl, err, errlen);
#ifdef PGD_HAVE_CUDA
    pgd_cuda_stager_destroy(m->stager);
    m->stager = NULL;
#endif
    if (st) {
        if (err && errlen && !err[0])
            snprintf(err, errlen, "%s: the %s plugin failed to load it (%s)", dir,
                     m->plugin->name, pgd_status_str(st));
        pgd__model_destroy(m);
        return st;
    }
    if (!st && m->tp_size > 1 && !m->tp_asked)
        st = pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: the %s plugin does not support "
                      "tensor parallelism (tensor_parallel_size %d): it never asked how the "
                      "model is split", dir, m->plugin->name, m->tp_size);
    if (st) {
        pgd__model_destroy(m);
        return st;
    }
    const struct pgd_model_desc *d = &m->desc;
    if (d->n_layers <= 0 || d->n_kv_heads <= 0 || d->head_dim <= 0 || d->vocab_size <= 0 ||
        d->hidden_size <= 0) {
        pgd__model_destroy(m);
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                        "%s: the %s plugin described the model with a non-positive size",
                        dir, m->plugin->name);
    }
    PGD_INFO("loaded %s: %s (plugin %s %s), %d layers, hidden %d, vocab %d, on %s in %s, "
             "%.2f GiB of weights%s%s", dir,
             json_string_value(json_array_get(json_object_get(m->config, "architectures"), 0)),
             m->plugin->name, m->plugin->version, d->n_layers, d->hidden_size, d->vocab_size,
             pgd__device_name(device), pgd_dtype_name(m->dtype),
             (double)m->weight_bytes / (1 << 30), m->random_weights ? " (random)" : "",
             m->quant ? ", quantized" : "");
    *out = m;
    return PGD_OK;
}

void pgd__model_destroy(struct pgd__model *m)
{
    if (!m)
        return;
    if (m->impl && m->plugin)
        m->plugin->arch->destroy(m->impl);
    pgd__model_quant_teardown(m);
    for (size_t i = 0; i < m->n_allocs; i++)
        pgd__device_free(m->device, m->allocs[i]);
    free(m->allocs);
    pgd__weights_close(m->weights);
    json_decref(m->config);
    free(m->config_path);
    free(m->dir);
    free(m);
}

enum pgd_status pgd_model_random_dense(struct pgd_model_ctx *ctx, const char *const *prefixes,
                                       int n_parts, int64_t in, const int64_t *out_features,
                                       struct pgd_raw_tensor *out, void **mem, char *err,
                                       size_t errlen)
{
    struct pgd__model *m = ctx->m;
    *mem = NULL;
    char name[600];
    random_linear_name(prefixes, n_parts, name, sizeof name);
    int64_t rows = 0;
    for (int i = 0; i < n_parts; i++)
        rows += out_features[i];
    if (rows <= 0 || in <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: a [%lld, %lld] layer", name,
                        (long long)rows, (long long)in);
    /* On the CPU the float32 the load holds; on a GPU the device's own fill (the values
     * rounded to the model's dtype there), read back as they are: the caller reads 16-bit
     * rows itself (an 8B model's 7 billion weights are not widened here on one thread). */
    const enum pgd_dtype dt = m->device == PGD_DEVICE_CPU ? PGD_DTYPE_F32 : m->dtype;
    const size_t n = (size_t)(rows * in), bytes = n * pgd_dtype_size(dt);
    void *h = malloc(bytes);
    if (!h)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of host memory for its random "
                        "[%lld, %lld] weights", name, (long long)rows, (long long)in);
    enum pgd_status st;
    if (m->device == PGD_DEVICE_CPU) {
        st = fill_random(m, name, h, n, in, err, errlen);
    } else {
        void *d = pgd__device_alloc(m->device, bytes);
        st = d ? fill_random(m, name, d, n, in, err, errlen)
               : pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of %s memory for its random "
                          "[%lld, %lld] weights", name, pgd__device_name(m->device),
                          (long long)rows, (long long)in);
#ifdef PGD_HAVE_CUDA
        if (!st && pgd_cuda_memcpy_d2h(h, d, bytes, err, errlen))
            st = PGD_ERR_DEVICE;
#else
        if (!st)
            st = pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: random weights on %s", name,
                          pgd__device_name(m->device));
#endif
        pgd__device_free(m->device, d);
    }
    if (st) {
        free(h);
        return st;
    }
    *out = (struct pgd_raw_tensor){ .data = h, .dtype = dt, .ndim = 2, .shape = { rows, in } };
    *mem = h;
    return PGD_OK;
}
