/* The compressed-tensors quant plugin: checkpoints as llm-compressor writes them
 * (quantization_config.quant_method "compressed-tensors", as vLLM loads them), in two
 * formats (the config's reading and checking is ct_scheme.c):
 *   - "pack-quantized" W4A16 / W8A16: "<layer>.weight_packed" int32 [out, in / pack],
 *     ".weight_scale" [out, groups], ".weight_zero_point" int32 [out / pack, groups] when
 *     asymmetric, ".weight_shape" [2] = (out, in), ".weight_g_idx" int32 [in] with actorder
 *     group; converted into the canonical wq layout (ct_convert.c);
 *   - "float-quantized" FP8 W8A8: "<layer>.weight" e4m3 [out, in] and ".weight_scale" per
 *     tensor or [out, 1] per channel (the FP8 plugin's reader, qc_read_fp8); activations get
 *     a dynamic scale per token, also when the checkpoint stores a static ".input_scale".
 * Layers the ignore list names, or that no config group targets, stay dense. Random weights
 * (--load-format dummy) get random layers in each group's layout. */
#include "plugins/quant/common/qcommon.h"
#include "plugins/quant/compressed_tensors/ct_convert.h"
#include "plugins/quant/compressed_tensors/ct_scheme.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum pgd_status ct_configure(struct pgd_model_ctx *ctx, enum pgd_device device,
                                    enum pgd_dtype act_dtype, void **state, char *err,
                                    size_t errlen)
{
    (void)device;
    (void)act_dtype;
    *state = NULL;
    if (pgd_config_is_null(ctx, "quantization_config"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: --quantization "
                        "compressed-tensors needs a checkpoint llm-compressor wrote (config.json "
                        "has no quantization_config): it describes the layout", pgd_model_dir(ctx));
    struct ct_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    enum pgd_status st = ct_config_read(ctx, cfg, err, errlen);
    if (st) {
        ct_config_free(cfg);
        free(cfg);
        return st;
    }
    for (int i = 0; i < cfg->n; i++) {
        const struct ct_scheme *s = &cfg->schemes[i];
        char groups[48] = "per channel";
        if (s->group_size != -1)
            snprintf(groups, sizeof groups, "group_size %lld", (long long)s->group_size);
        if (s->kind == CT_WQ)
            PGD_INFO("%s: compressed-tensors group %s: W%dA16, %s, %s%s", pgd_model_dir(ctx),
                     s->group, s->bits, groups, s->symmetric ? "symmetric" : "zero points",
                     s->g_idx ? ", actorder group" : "");
        else
            PGD_INFO("%s: compressed-tensors group %s: FP8 W8A8, a weight scale per %s, "
                     "activations per token%s", pgd_model_dir(ctx), s->group,
                     s->per_channel ? "channel" : "tensor",
                     s->static_input ? " (the static input_scale is not used)" : "");
    }
    if (pgd_model_random_weights(ctx))
        PGD_INFO("%s: random compressed-tensors layers in those layouts", pgd_model_dir(ctx));
    *state = cfg;
    return PGD_OK;
}

static bool ct_is_quantized(const void *state, const char *prefix)
{
    return ct_scheme_of(state, prefix) != NULL;
}

/* weight_shape, when stored: [2] int64 (or int32) holding (out, in). */
static enum pgd_status check_shape(struct pgd_model_ctx *ctx, const char *prefix, int64_t in,
                                   int64_t out, char *err, size_t errlen)
{
    char name[512];
    snprintf(name, sizeof name, "%s.weight_shape", prefix);
    if (!pgd_model_has_tensor(ctx, name))
        return PGD_OK;
    struct pgd_raw_tensor t;
    enum pgd_status st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_COUNT, 1, (int64_t[]){ 2 },
                                              &t, err, errlen);
    if (st)
        return st;
    int64_t v[2];
    if (t.dtype == PGD_DTYPE_I64) {
        memcpy(v, t.data, sizeof v);
    } else if (t.dtype == PGD_DTYPE_I32) {
        int32_t v32[2];
        memcpy(v32, t.data, sizeof v32);
        v[0] = v32[0];
        v[1] = v32[1];
    } else {
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor '%s' is %s, expected I64",
                        t.path, name, pgd_dtype_name(t.dtype));
    }
    if (v[0] != out || v[1] != in)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor '%s' says the layer is [%lld, "
                        "%lld], the model expects [%lld, %lld]", t.path, name, (long long)v[0],
                        (long long)v[1], (long long)out, (long long)in);
    return PGD_OK;
}

/* One pack-quantized part: reads and checks its tensors, then converts them. The whole
 * part only: a tensor-parallel shard of these layers is refused. */
static enum pgd_status load_packed(const void *state, struct pgd_model_ctx *ctx,
                                   const char *prefix, const struct qc_slice *sl,
                                   struct pgd_wq_host *host, void **conv, char *err,
                                   size_t errlen)
{
    const struct ct_scheme *s = ct_scheme_of(state, prefix);
    int64_t in = sl->in, out = sl->out;
    if (in != sl->full_in || out != sl->full_out)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a tensor-parallel shard of a "
                        "compressed-tensors pack-quantized layer (config group %s) is not "
                        "supported yet (its FP8 layers shard, and so do GPTQ and AWQ "
                        "checkpoints): run it with tensor_parallel_size 1", prefix, s->group);
    int64_t pack = 32 / s->bits;
    /* A group wider than the layer is one group of all its inputs. */
    int64_t group = s->group_size == -1 || s->group_size > in ? in : s->group_size;
    if (in % pack || in % group)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a [%lld, %lld] layer cannot be "
                        "packed %lld to a word with group_size %lld (config group %s)", prefix,
                        (long long)out, (long long)in, (long long)pack, (long long)group,
                        s->group);
    int64_t groups = in / group;
    char name[512];
    struct pgd_raw_tensor wp, sc, zp, gi;
    enum pgd_status st = check_shape(ctx, prefix, in, out, err, errlen);
    snprintf(name, sizeof name, "%s.weight_packed", prefix);
    if (!st)
        st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ out, in / pack }, &wp,
                                  err, errlen);
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    if (!st)
        st = qc_float_tensor(ctx, name, 2, (int64_t[]){ out, groups }, "BF16", &sc, err, errlen);
    snprintf(name, sizeof name, "%s.weight_zero_point", prefix);
    if (!st && !s->symmetric)
        st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2,
                                  (int64_t[]){ (out + pack - 1) / pack, groups }, &zp, err, errlen);
    snprintf(name, sizeof name, "%s.weight_g_idx", prefix);
    if (!st && s->g_idx)
        st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 1, &in, &gi, err, errlen);
    if (st)
        return st;
    size_t nq = (size_t)(out * (in / pack)), ns = (size_t)(out * groups);
    size_t nz = s->symmetric ? 0 : (size_t)((out + pack - 1) / pack * groups);
    size_t ng = s->g_idx ? (size_t)in : 0;
    char *mem = malloc((nq + nz + ng) * 4 + ns * sizeof(float));
    if (!mem)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    uint32_t *q = (uint32_t *)mem, *z = q + nq;
    int32_t *g = (int32_t *)(z + nz);
    float *scales = (float *)(g + ng);
    qc_read_i32(&wp, nq, (int32_t *)q);
    qc_read_floats(&sc, ns, scales);
    if (nz)
        qc_read_i32(&zp, nz, (int32_t *)z);
    if (ng)
        qc_read_i32(&gi, ng, g);
    struct ct_packed_layer l = { .name = prefix, .bits = s->bits, .group = group, .in = in,
                                 .out = out, .weight_packed = q, .scales = scales,
                                 .zero_points = nz ? z : NULL, .g_idx = ng ? g : NULL };
    st = ct_packed_to_wq(&l, host, conv, err, errlen);
    free(mem);
    return st;
}

/* One float-quantized part; a static input_scale must be there but is not used. */
static enum pgd_status load_fp8(const void *state, struct pgd_model_ctx *ctx,
                                const char *prefix, const struct qc_slice *sl,
                                struct pgd_fp8_host *host, void **mem, char *err, size_t errlen)
{
    const struct ct_scheme *s = ct_scheme_of(state, prefix);
    char name[512];
    struct pgd_raw_tensor t;
    snprintf(name, sizeof name, "%s.input_scale", prefix);
    enum pgd_status st = s->static_input ? qc_float_tensor(ctx, name, -1, NULL, "F32", &t, err,
                                                           errlen)
                                         : PGD_OK;
    if (!st)
        st = qc_read_fp8(ctx, prefix, sl, host, mem, err, errlen);
    if (!st && (host->per_channel != s->per_channel))
        st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s.weight_scale: a scale per %s, but config "
                      "group %s says strategy \"%s\"", prefix,
                      host->per_channel ? "channel" : "tensor", s->group,
                      s->per_channel ? "channel" : "tensor");
    if (st) {
        free(*mem);
        *mem = NULL;
    }
    return st;
}

static const struct pgd_quant_ops ct_ops;

static enum pgd_status ct_load_linear(void *state, struct pgd_model_ctx *ctx,
                                      const char *const *prefixes, int n_parts,
                                      int64_t in_features, const int64_t *out_features,
                                      bool bias, struct pgd_linear *out, char *err,
                                      size_t errlen)
{
    const struct ct_scheme *s = ct_scheme_of(state, prefixes[0]);
    for (int i = 1; i < n_parts; i++)
        if (ct_scheme_of(state, prefixes[i]) != s)
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: fused with %s, which config "
                            "group %s quantizes differently: the parts cannot share one layer",
                            prefixes[i], prefixes[0], s->group);
    if (s->kind == CT_FP8)
        return qc_load_fp8_linear(state, ctx, &ct_ops, load_fp8,
                                  s->per_channel ? QC_FP8_RANDOM_CHANNEL : QC_FP8_RANDOM_TENSOR,
                                  prefixes,
                                  n_parts, in_features, out_features, bias, out, err, errlen);
    struct qc_wq_scheme scheme = { .bits = s->bits, .group_size = s->group_size,
                                   .act_order = s->g_idx };
    return qc_load_wq_linear(state, ctx, &ct_ops, load_packed, &scheme, prefixes, n_parts,
                             in_features, out_features, bias, out, err, errlen);
}

static void ct_release(void *state)
{
    ct_config_free(state);
    free(state);
}

static const char *const ct_methods[] = { "compressed-tensors", NULL };

static const struct pgd_quant_ops ct_ops = {
    .struct_size = sizeof(struct pgd_quant_ops),
    .methods = ct_methods,
    .configure = ct_configure,
    .is_quantized = ct_is_quantized,
    .load_linear = ct_load_linear,
    .linear = qc_linear,
    .free_linear = qc_free_linear,
    .release = ct_release,
};

static const struct pgd_plugin ct_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_QUANT,
    .name = "compressed-tensors",
    .version = "1.0",
    .description = "compressed-tensors checkpoints (llm-compressor): pack-quantized W4A16/W8A16 "
                   "and float-quantized FP8 W8A8",
    .quant = &ct_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &ct_plugin;
}
