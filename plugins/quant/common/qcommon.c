/* Helpers shared by the quant plugins (see qcommon.h). */
#include "plugins/quant/common/qcommon.h"
#include "runtime/base/parallel.h"
#include <pagoda/log.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool names(const char *entry, const char *prefix, bool substring)
{
    if (substring)
        return strstr(prefix, entry) != NULL;
    size_t le = strlen(entry), lp = strlen(prefix);
    if (le == lp)
        return !strcmp(entry, prefix);
    return le < lp && prefix[lp - le - 1] == '.' && !strcmp(prefix + lp - le, entry);
}

bool qc_list_has(const struct qc_list *list, const char *prefix, bool substring)
{
    for (int i = 0; i < list->n; i++)
        if (*list->names[i] && names(list->names[i], prefix, substring))
            return true;
    return false;
}

void qc_list_free(struct qc_list *list)
{
    for (int i = 0; i < list->n; i++)
        free(list->names[i]);
    free(list->names);
    list->names = NULL;
    list->n = 0;
}

enum pgd_status qc_list_read(const struct pgd_model_ctx *ctx, const char *key,
                             struct qc_list *list, char *err, size_t errlen)
{
    *list = (struct qc_list){ 0 };
    bool bad = pgd_config_str(ctx, key) != NULL;
    int n = 0;
    for (;; n++) {
        char k[256];
        snprintf(k, sizeof k, "%s.%d", key, n);
        if (bad || !pgd_config_has(ctx, k))
            break;
        bad = !pgd_config_str(ctx, k);
    }
    if (bad)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"%s\" must be a list of "
                        "module names (strings)", pgd_model_dir(ctx), key);
    list->names = calloc((size_t)n + 1, sizeof *list->names);
    if (!list->names)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory reading \"%s\"", key);
    for (; list->n < n; list->n++) {
        char k[256];
        snprintf(k, sizeof k, "%s.%d", key, list->n);
        if (!(list->names[list->n] = strdup(pgd_config_str(ctx, k)))) {
            qc_list_free(list);
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory reading \"%s\"", key);
        }
    }
    return PGD_OK;
}

enum pgd_status qc_need_config(const struct pgd_model_ctx *ctx, const char *method, char *err,
                               size_t errlen)
{
    if (!pgd_config_is_null(ctx, "quantization_config") || pgd_model_random_weights(ctx))
        return PGD_OK;
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: --quantization %s needs a checkpoint "
                    "quantized with %s (config.json has no quantization_config, and no %s beside "
                    "it): %s weights are not made at load (--quantization fp8 is)",
                    pgd_model_dir(ctx), method, method,
                    !strcmp(method, "awq") ? "quant_config.json" : "quantize_config.json", method);
}

void qc_read_floats(const struct pgd_raw_tensor *t, size_t n, float *dst)
{
    size_t esz = pgd_dtype_size(t->dtype);
    /* Copy to aligned memory first: pgd_convert_to_f32 reads whole elements. */
    if (t->dtype == PGD_DTYPE_F32) {
        memcpy(dst, t->data, n * esz);
        return;
    }
    uint16_t *tmp = (uint16_t *)(void *)dst + n; /* the upper half of dst's bytes */
    memcpy(tmp, t->data, n * esz);
    /* The halves sit in bytes [2n, 4n) of dst. Widening from the front never overwrites a
     * half not yet read: float i ends at byte 4i + 4 <= 2n + 2(i + 1), where half i + 1
     * starts, for every i < n. */
    for (size_t i = 0; i < n; i++)
        dst[i] = t->dtype == PGD_DTYPE_BF16 ? pgd_bf16_to_f32(tmp[i]) : pgd_f16_to_f32(tmp[i]);
}

void qc_read_i32(const struct pgd_raw_tensor *t, size_t n, int32_t *dst)
{
    memcpy(dst, t->data, n * sizeof *dst);
}

enum pgd_status qc_float_tensor(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                const int64_t *shape, const char *want,
                                struct pgd_raw_tensor *out, char *err, size_t errlen)
{
    enum pgd_status st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_COUNT, ndim, shape, out, err,
                                              errlen);
    if (st)
        return st;
    if (out->dtype != PGD_DTYPE_F16 && out->dtype != PGD_DTYPE_BF16 &&
        out->dtype != PGD_DTYPE_F32)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor '%s' is %s, expected %s (or "
                        "another float dtype)", out->path, name, pgd_dtype_name(out->dtype), want);
    return PGD_OK;
}

void qc_part_slice(struct pgd_model_ctx *ctx, int part, int64_t in, int64_t out,
                   struct qc_slice *s)
{
    const struct pgd_shard *sh = pgd_model_linear_shard(ctx);
    *s = (struct qc_slice){ .full_in = in, .full_out = out, .in = in, .out = out };
    if (sh && sh->kind == PGD_SHARD_ROWS) {
        s->full_out = sh->full_out[part];
        s->row0 = sh->row0[part];
    } else if (sh && sh->kind == PGD_SHARD_COLS) {
        s->full_in = sh->full_in;
        s->col0 = sh->col0;
    }
}

void qc_read_i32_block(const struct pgd_raw_tensor *t, int64_t ld, const int32_t *row_of,
                       int64_t r0, int64_t rows, int64_t c0, int64_t cols, int32_t *dst)
{
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = row_of ? row_of[r] : r0 + r;
        memcpy(dst + r * cols, (const char *)t->data + (size_t)(src * ld + c0) * 4,
               (size_t)cols * 4);
    }
}

void qc_read_floats_block(const struct pgd_raw_tensor *t, int64_t ld, const int32_t *row_of,
                          int64_t r0, int64_t rows, int64_t c0, int64_t cols, float *dst)
{
    size_t esz = pgd_dtype_size(t->dtype);
    for (int64_t r = 0; r < rows; r++) {
        struct pgd_raw_tensor row = *t;
        row.data = (const char *)t->data + (size_t)((row_of ? row_of[r] : r0 + r) * ld + c0) * esz;
        qc_read_floats(&row, (size_t)cols, dst + r * cols);
    }
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

enum pgd_status qc_regroup(const char *name, const int32_t *gid, int64_t in, int64_t n_groups,
                           int64_t ckpt_group, int64_t *group, int32_t *new_gid, int32_t **src,
                           char *err, size_t errlen)
{
    *src = NULL;
    /* count[g]: the slice's channels in group g; then base[g]: its first new group. */
    int64_t *count = calloc((size_t)n_groups * 2 + 1, sizeof *count);
    if (!count)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    int64_t *base = count + n_groups, g = 0;
    for (int64_t i = 0; i < in; i++) {
        if (gid[i] < 0 || gid[i] >= n_groups) {
            free(count);
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s.g_idx: input channel group %d is "
                            "outside [0, %lld)", name, gid[i], (long long)n_groups);
        }
        count[gid[i]]++;
    }
    for (int64_t k = 0; k < n_groups; k++)
        g = gcd64(g, count[k]);
    int32_t *s = malloc((size_t)(in / g) * sizeof *s);
    if (!s) {
        free(count);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    }
    for (int64_t k = 0, next = 0; k < n_groups; k++) {
        base[k] = next;
        for (int64_t j = 0; j < count[k] / g; j++)
            s[next++] = (int32_t)k;
        count[k] = 0;   /* from here: channels of group k seen so far */
    }
    for (int64_t i = 0; i < in; i++)
        new_gid[i] = (int32_t)(base[gid[i]] + count[gid[i]]++ / g);
    free(count);
    if (g < ckpt_group)
        PGD_DEBUG("%s: this rank's %lld input channels hold parts of the checkpoint's groups of "
                  "%lld: kept as %lld groups of %lld, repeating their scales and zeros", name,
                  (long long)in, (long long)ckpt_group, (long long)(in / g), (long long)g);
    *group = g;
    *src = s;
    return PGD_OK;
}

enum pgd_status qc_read_fp8(struct pgd_model_ctx *ctx, const char *prefix,
                            const struct qc_slice *sl, struct pgd_fp8_host *h, void **mem,
                            char *err, size_t errlen)
{
    char name[512];
    struct pgd_raw_tensor w, sc;
    int64_t in = sl->in, out = sl->out, fout = sl->full_out;
    enum pgd_status st;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_F8_E4M3, 2,
                                   (int64_t[]){ fout, sl->full_in }, &w, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    if ((st = qc_float_tensor(ctx, name, -1, NULL, "F32", &sc, err, errlen)))
        return st;
    int64_t n = 1;
    for (int i = 0; i < sc.ndim; i++)
        n *= sc.shape[i];
    bool shape_ok = (n == 1 && sc.ndim <= 1) || (sc.ndim == 1 && n == fout) ||
                    (sc.ndim == 2 && sc.shape[0] == fout && sc.shape[1] == 1);
    if (!shape_ok)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor '%s' has %lld elements in %d "
                        "dimensions, expected F32 [] or [1] (per tensor), or [%lld] or [%lld, 1] "
                        "(per channel)", sc.path, name, (long long)n, sc.ndim, (long long)fout,
                        (long long)fout);
    bool per_channel = n > 1;
    int64_t ns = per_channel ? out : 1;
    char *b = malloc((size_t)(in * out) + (size_t)ns * sizeof(float));
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    float *scale = (float *)b;
    uint8_t *q = (uint8_t *)(b + (size_t)ns * sizeof(float));
    qc_read_floats_block(&sc, 1, NULL, per_channel ? sl->row0 : 0, ns, 0, 1, scale);
    for (int64_t o = 0; o < out; o++)
        memcpy(q + o * in, (const uint8_t *)w.data + (sl->row0 + o) * sl->full_in + sl->col0,
               (size_t)in);
    *h = (struct pgd_fp8_host){ .in = in, .out = out, .weight = q, .scale = scale,
                                .per_channel = per_channel };
    *mem = b;
    return PGD_OK;
}

enum pgd_status qc_finish_linear(struct pgd_model_ctx *ctx, const struct pgd_quant_ops *ops,
                                 struct pgd_qweight *w, const char *const *prefixes,
                                 int n_parts, int64_t in_features, const int64_t *out_features,
                                 bool bias, struct pgd_linear *out, char *err, size_t errlen)
{
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++)
        total += out_features[i];
    *out = (struct pgd_linear){ .in_features = in_features, .out_features = total,
                                .quant = ops, .quant_state = w };
    if (!bias)
        return PGD_OK;
    return pgd_model_load_bias(ctx, prefixes, n_parts, out_features, &out->bias, err, errlen);
}

/* How the parts of one layer are read: the plugin's reader of one part (part_wq for the
 * integer formats, part_fp8 for FP8: exactly one is set) with its state, and the layout of
 * random parts (--load-format dummy). */
struct part_reader {
    const void *state;
    qc_wq_part_fn part_wq;
    qc_fp8_part_fn part_fp8;
    const struct qc_wq_scheme *scheme;     /* part_wq: the random layout */
    enum qc_fp8_random fp8_random;         /* part_fp8: how random parts are made */
    size_t host_size;                      /* sizeof struct pgd_wq_host / pgd_fp8_host */
};

/* Part `prefix` (this rank's slice sl) into *host: random weights or the plugin's reader;
 * the host's arrays are one malloc'd block in *block. */
static enum pgd_status read_part(const struct part_reader *r, struct pgd_model_ctx *ctx,
                                 const char *prefix, const struct qc_slice *sl, void *host,
                                 void **block, char *err, size_t errlen)
{
    bool random = pgd_model_random_weights(ctx);
    const struct qc_wq_scheme *s = r->scheme;
    if (r->part_wq)
        return random ? pgd_model_random_wq(ctx, prefix, s->bits, s->group_size, s->act_order,
                                            sl->in, sl->out, host, block, err, errlen)
                      : r->part_wq(r->state, ctx, prefix, sl, host, block, err, errlen);
    return random ? pgd_model_random_fp8(ctx, prefix, r->fp8_random != QC_FP8_RANDOM_TENSOR,
                                         sl->in, sl->out, host, block, err, errlen)
                  : r->part_fp8(r->state, ctx, prefix, sl, host, block, err, errlen);
}

/* A qc_fp8_quantize_rows call, whose rows are split over threads. */
struct fp8_rows {
    const struct pgd_raw_tensor *w;
    int64_t full_in, row0, col0, in;
    float *scale;
    uint8_t *q;
};

/* Rows [r0, r1) of the call (pgd__parallel_for's range), each read into the range's own
 * buffer; false when that buffer cannot be had. */
static bool quantize_fp8_rows(void *arg, int64_t r0, int64_t r1)
{
    const struct fp8_rows *t = arg;
    float *row = malloc((size_t)t->full_in * sizeof *row);
    if (!row)
        return false;
    for (int64_t r = r0; r < r1; r++) {
        qc_read_floats_block(t->w, t->full_in, NULL, t->row0 + r, 1, 0, t->full_in, row);
        float amax = 0.0f;
        for (int64_t i = 0; i < t->full_in; i++)
            amax = fmaxf(amax, fabsf(row[i]));
        const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
        uint8_t *q = t->q + r * t->in;
        for (int64_t i = 0; i < t->in; i++)
            q[i] = pgd_fp8_e4m3_from_float(row[t->col0 + i] / s);
        t->scale[r] = s;
    }
    free(row);
    return true;
}

enum pgd_status qc_fp8_quantize_rows(const char *name, const struct pgd_raw_tensor *w,
                                     int64_t full_in, int64_t row0, int64_t rows, int64_t col0,
                                     int64_t in, float *scale, uint8_t *q, char *err,
                                     size_t errlen)
{
    /* Up to 16 threads of at least 256K weights each: an 8B model's 7 billion weights take
     * seconds, not the minutes of one thread; the tiny fixtures take one. */
    const int64_t min_rows = ((1 << 18) + full_in - 1) / (full_in > 0 ? full_in : 1);
    struct fp8_rows t = { .w = w, .full_in = full_in, .row0 = row0, .col0 = col0, .in = in,
                          .scale = scale, .q = q };
    bool ok = pgd__parallel_for(rows, min_rows, 16, quantize_fp8_rows, &t);
    return ok ? PGD_OK
              : pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory for a row of %lld "
                         "weights while quantizing it to FP8", name, (long long)full_in);
}

/* QC_FP8_RANDOM_DENSE with random weights and whole layers (no rank's slice): the dense
 * random layer (pgd_model_random_dense: its parts' rows one after the other) quantized per
 * output channel into each part's host and block. Returns false where it does not apply
 * (the caller reads the parts as usual); true with *st the outcome otherwise. */
static bool dense_random_parts(const struct part_reader *r, struct pgd_model_ctx *ctx,
                               const char *const *prefixes, int n_parts, int64_t in,
                               const int64_t *out_features, struct pgd_fp8_host *hosts,
                               void **blocks, enum pgd_status *st, char *err, size_t errlen)
{
    if (!r->part_fp8 || r->fp8_random != QC_FP8_RANDOM_DENSE || !pgd_model_random_weights(ctx))
        return false;
    for (int i = 0; i < n_parts; i++) {
        struct qc_slice sl;
        qc_part_slice(ctx, i, in, out_features[i], &sl);
        if (sl.in != sl.full_in || sl.out != sl.full_out)
            return false;
    }
    /* the parts' rows one after the other, in the dtype the dense load holds them */
    struct pgd_raw_tensor all;
    void *dense;
    if ((*st = pgd_model_random_dense(ctx, prefixes, n_parts, in, out_features, &all, &dense,
                                      err, errlen)))
        return true;
    int64_t row0 = 0;
    for (int i = 0; i < n_parts && !*st; i++) {
        const int64_t out = out_features[i];
        char *b = malloc((size_t)out * sizeof(float) + (size_t)(out * in));
        if (!b) {
            *st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory quantizing it",
                           prefixes[i]);
            break;
        }
        float *scale = (float *)(void *)b;
        uint8_t *q = (uint8_t *)(b + (size_t)out * sizeof(float));
        blocks[i] = b;
        *st = qc_fp8_quantize_rows(prefixes[i], &all, in, row0, out, 0, in, scale, q, err,
                                   errlen);
        hosts[i] = (struct pgd_fp8_host){ .in = in, .out = out, .weight = q, .scale = scale,
                                          .per_channel = true };
        row0 += out;
    }
    free(dense);
    return true;
}

/* The load_linear of every format: each part's slice read (read_part), the parts joined
 * into one weight the model keeps (pgd_model_qweight_wq / _fp8), the read blocks freed,
 * *out filled (qc_finish_linear). */
static enum pgd_status load_linear(const struct part_reader *r, struct pgd_model_ctx *ctx,
                                   const struct pgd_quant_ops *ops, const char *const *prefixes,
                                   int n_parts, int64_t in_features, const int64_t *out_features,
                                   bool bias, struct pgd_linear *out, char *err, size_t errlen)
{
    enum { MAX_PARTS = 8 };
    void *blocks[MAX_PARTS] = { 0 };
    if (n_parts < 1 || n_parts > MAX_PARTS)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: %d fused parts (1..%d)",
                        prefixes[0], n_parts, MAX_PARTS);
    /* [n_parts] host structs of r->host_size bytes (malloc'd: no declared type to alias). */
    char *hosts = calloc((size_t)n_parts, r->host_size);
    if (!hosts)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefixes[0]);
    enum pgd_status st = PGD_OK;
    if (!dense_random_parts(r, ctx, prefixes, n_parts, in_features, out_features,
                            (struct pgd_fp8_host *)(void *)hosts, blocks, &st, err, errlen))
        for (int i = 0; i < n_parts && !st; i++) {
            struct qc_slice sl;
            qc_part_slice(ctx, i, in_features, out_features[i], &sl);
            st = read_part(r, ctx, prefixes[i], &sl, hosts + (size_t)i * r->host_size,
                           &blocks[i], err, errlen);
        }
    struct pgd_qweight *w = NULL;
    if (!st)
        st = r->part_wq ? pgd_model_qweight_wq(ctx, prefixes[0], (void *)hosts, n_parts, &w, err,
                                               errlen)
                        : pgd_model_qweight_fp8(ctx, prefixes[0], (void *)hosts, n_parts, &w,
                                                err, errlen);
    for (int i = 0; i < n_parts; i++)
        free(blocks[i]);
    free(hosts);
    if (st)
        return st;
    return qc_finish_linear(ctx, ops, w, prefixes, n_parts, in_features, out_features, bias, out,
                            err, errlen);
}

enum pgd_status qc_load_wq_linear(const void *state, struct pgd_model_ctx *ctx,
                                  const struct pgd_quant_ops *ops, qc_wq_part_fn part_fn,
                                  const struct qc_wq_scheme *scheme,
                                  const char *const *prefixes, int n_parts, int64_t in_features,
                                  const int64_t *out_features, bool bias, struct pgd_linear *out,
                                  char *err, size_t errlen)
{
    struct part_reader r = { .state = state, .part_wq = part_fn, .scheme = scheme,
                             .host_size = sizeof(struct pgd_wq_host) };
    return load_linear(&r, ctx, ops, prefixes, n_parts, in_features, out_features, bias, out,
                       err, errlen);
}

enum pgd_status qc_load_fp8_linear(const void *state, struct pgd_model_ctx *ctx,
                                   const struct pgd_quant_ops *ops, qc_fp8_part_fn part_fn,
                                   enum qc_fp8_random random, const char *const *prefixes,
                                   int n_parts, int64_t in_features, const int64_t *out_features,
                                   bool bias, struct pgd_linear *out, char *err, size_t errlen)
{
    struct part_reader r = { .state = state, .part_fp8 = part_fn,
                             .fp8_random = random,
                             .host_size = sizeof(struct pgd_fp8_host) };
    return load_linear(&r, ctx, ops, prefixes, n_parts, in_features, out_features, bias, out,
                       err, errlen);
}

void qc_linear(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
               struct pgd_tensor *y)
{
    pgd_op_qweight_linear(f, w->quant_state, &w->bias, x, y);
}

void qc_free_linear(void *layer_state)
{
    /* The weight belongs to the model (pgd_model_qweight_*), which frees it. */
    (void)layer_state;
}
