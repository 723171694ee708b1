/* The FP8 KV cache's per-layer scales as checkpoints carry them (see model.h,
 * pgd__model_kv_scales): a scan of the checkpoint's tensor names for the suffixes vLLM
 * accepts, each a scalar. */
#include "runtime/model/model.h"
#include "runtime/model/safetensors.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Which scale a name carries: 'k', 'v', 'b' (both: the deprecated kv_scale) or 0. */
static char scale_kind(const char *name)
{
    static const struct {
        const char *suffix;
        char kind;
    } suffixes[] = {
        { ".k_proj.output_scale", 'k' }, { ".v_proj.output_scale", 'v' },
        { ".k_scale", 'k' },             { ".v_scale", 'v' },
        { ".kv_scale", 'b' },
    };
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i].suffix);
        if (n > sl && !strcmp(name + n - sl, suffixes[i].suffix))
            return suffixes[i].kind;
    }
    return 0;
}

/* The first dot-separated part of name that is all digits, or -1. */
static long layer_of(const char *name)
{
    const char *p = name;
    while (*p) {
        const char *end = strchr(p, '.');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool digits = len > 0 && len < 9;
        for (size_t i = 0; digits && i < len; i++)
            digits = p[i] >= '0' && p[i] <= '9';
        if (digits)
            return strtol(p, NULL, 10);
        if (!end)
            break;
        p = end + 1;
    }
    return -1;
}

/* The tensor's one value as float, or NAN when it is not one F32/BF16/F16 value. */
static float scalar_value(const struct pgd__st_tensor *t)
{
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= t->shape[d];
    if (numel != 1)
        return NAN;
    if (t->dtype == PGD_DTYPE_F32) {
        float f;
        memcpy(&f, t->data, sizeof f);
        return f;
    }
    uint16_t h;
    memcpy(&h, t->data, sizeof h);
    if (t->dtype == PGD_DTYPE_BF16)
        return pgd_bf16_to_f32(h);
    if (t->dtype == PGD_DTYPE_F16)
        return pgd_f16_to_f32(h);
    return NAN;
}

enum pgd_status pgd__model_kv_scales(const struct pgd__model *m, float *k_scale, float *v_scale,
                                     int *found, char *err, size_t errlen)
{
    int L = m->desc.n_layers;
    *found = 0;
    for (int l = 0; l < L; l++)
        k_scale[l] = v_scale[l] = 1.0f;
    if (!m->weights)
        return PGD_OK;
    bool *seen = calloc(L > 0 ? (size_t)L : 1, sizeof *seen);
    if (!seen)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    enum pgd_status st = PGD_OK;
    size_t n = pgd__weights_count(m->weights);
    for (size_t i = 0; i < n && st == PGD_OK; i++) {
        const struct pgd__st_tensor *t = pgd__weights_at(m->weights, i);
        char kind = scale_kind(t->name);
        if (!kind)
            continue;
        long l = layer_of(t->name);
        float v = scalar_value(t);
        if (l < 0 || l >= L)
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: KV cache scale %s: no layer index "
                          "in [0, %d) in its name", t->path, t->name, L);
        else if (!(isfinite(v) && v > 0.0f))
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: KV cache scale %s: expected one "
                          "finite positive F32, BF16 or F16 value (dtype %s, %d dims)", t->path,
                          t->name, pgd_dtype_name(t->dtype), t->ndim);
        if (st)
            break;
        if (kind != 'v')
            k_scale[l] = v;
        if (kind != 'k')
            v_scale[l] = v;
        if (!seen[l])
            (*found)++;
        seen[l] = true;
    }
    free(seen);
    return st;
}
