/* The FP8 quant plugin (W8A8, e4m3fn), quant_method "fp8":
 *   - checkpoints already in FP8, as vLLM and llm-compressor write them: "<layer>.weight"
 *     F8_E4M3 [out, in] and "<layer>.weight_scale" float32, one per tensor ([] or [1]) or one
 *     per output channel ([out] or [out, 1]); activation_scheme dynamic (activations get a
 *     scale per token at run time); ignored_layers and modules_to_not_convert stay dense;
 *   - a bf16/fp16/fp32 checkpoint with --quantization fp8 (no quantization_config): every
 *     linear layer but the LM head is quantized at load with one scale per output channel,
 *     max |w| / 448, the same rule the activations get per token;
 *   - random weights (--load-format dummy): random e4m3 layers with one scale per tensor
 *     when a quantization_config says the checkpoint is FP8 (as vLLM's are); with
 *     --quantization fp8 on a 16-bit config, the dense random layers quantized at load as
 *     above (so the FP8 model is the dense random model quantized, to compare with it).
 * The layers go to the model as struct pgd_fp8_host (include/pagoda/quant.h). */
#include "plugins/quant/common/qcommon.h"
#include <pagoda/log.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q "quantization_config."

struct fp8_state {
    bool serialized;           /* the checkpoint holds FP8 weights (vs quantized at load) */
    struct qc_list ignored;    /* ignored_layers (vLLM): by name */
    struct qc_list skip;       /* modules_to_not_convert (transformers): by substring */
};

static enum pgd_status fp8_configure(struct pgd_model_ctx *ctx, enum pgd_device device,
                                     enum pgd_dtype act_dtype, void **state, char *err,
                                     size_t errlen)
{
    (void)device;
    (void)act_dtype;
    *state = NULL;
    const char *dir = pgd_model_dir(ctx);
    bool serialized = !pgd_config_is_null(ctx, "quantization_config");
    if (serialized) {
        const char *scheme = pgd_config_str(ctx, Q "activation_scheme");
        if (scheme && strcmp(scheme, "dynamic"))
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q
                            "activation_scheme\" = \"%s\" is not supported (dynamic: a scale per "
                            "token at run time)", dir, scheme);
        if (!pgd_config_is_null(ctx, Q "weight_block_size"))
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q
                            "weight_block_size\": block-wise FP8 scales are not supported (per "
                            "tensor or per channel)", dir);
        const char *fmt = pgd_config_str(ctx, Q "fmt");
        if (fmt && strcmp(fmt, "e4m3"))
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "fmt\" = "
                            "\"%s\" is not supported (e4m3)", dir, fmt);
    }
    struct fp8_state *s = calloc(1, sizeof *s);
    if (!s)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    s->serialized = serialized;
    if (pgd_model_random_weights(ctx))
        PGD_INFO("%s: random FP8 (e4m3) layers: %s", dir,
                 serialized ? "random codes, a scale per tensor"
                            : "the dense random layers quantized, a scale per output channel");
    enum pgd_status st = qc_list_read(ctx, Q "ignored_layers", &s->ignored, err, errlen);
    if (!st)
        st = qc_list_read(ctx, Q "modules_to_not_convert", &s->skip, err, errlen);
    if (st) {
        qc_list_free(&s->ignored);
        free(s);
        return st;
    }
    *state = s;
    return PGD_OK;
}

static bool fp8_is_quantized(const void *state, const char *prefix)
{
    const struct fp8_state *s = state;
    return !strstr(prefix, "lm_head") && !qc_list_has(&s->ignored, prefix, false) &&
           !qc_list_has(&s->skip, prefix, true);
}

/* --quantization fp8 on a 16/32-bit checkpoint: one scale per output channel. The scale is
 * the whole row's (a rank holding some of its columns reads the others for the maximum),
 * so that every rank's e4m3 values are the whole model's. */
static enum pgd_status quantize_dense(struct pgd_model_ctx *ctx, const char *prefix,
                                      const struct qc_slice *sl, struct pgd_fp8_host *h,
                                      void **mem, char *err, size_t errlen)
{
    char name[512];
    struct pgd_raw_tensor w;
    int64_t in = sl->in, out = sl->out, fin = sl->full_in;
    snprintf(name, sizeof name, "%s.weight", prefix);
    enum pgd_status st = qc_float_tensor(ctx, name, 2, (int64_t[]){ sl->full_out, fin }, "BF16",
                                         &w, err, errlen);
    if (st)
        return st;
    char *b = malloc((size_t)out * sizeof(float) + (size_t)(in * out));
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory quantizing it", prefix);
    float *scale = (float *)b;
    uint8_t *q = (uint8_t *)(b + (size_t)out * sizeof(float));
    /* Each output row is quantized as the activations are per token (qc_fp8_quantize_rows). */
    if ((st = qc_fp8_quantize_rows(prefix, &w, fin, sl->row0, out, sl->col0, in, scale, q, err,
                                   errlen))) {
        free(b);
        return st;
    }
    *h = (struct pgd_fp8_host){ .in = in, .out = out, .weight = q, .scale = scale,
                                .per_channel = true };
    *mem = b;
    return PGD_OK;
}

static const struct pgd_quant_ops fp8_ops;

/* One part: the checkpoint's FP8 tensors, or its 16/32-bit weight quantized now. */
static enum pgd_status load_part(const void *state, struct pgd_model_ctx *ctx,
                                 const char *prefix, const struct qc_slice *slice,
                                 struct pgd_fp8_host *host, void **mem, char *err, size_t errlen)
{
    const struct fp8_state *s = state;
    return s->serialized ? qc_read_fp8(ctx, prefix, slice, host, mem, err, errlen)
                         : quantize_dense(ctx, prefix, slice, host, mem, err, errlen);
}

static enum pgd_status fp8_load_linear(void *state, struct pgd_model_ctx *ctx,
                                       const char *const *prefixes, int n_parts,
                                       int64_t in_features, const int64_t *out_features,
                                       bool bias, struct pgd_linear *out, char *err,
                                       size_t errlen)
{
    const struct fp8_state *s = state;
    return qc_load_fp8_linear(state, ctx, &fp8_ops, load_part,
                              s->serialized ? QC_FP8_RANDOM_TENSOR : QC_FP8_RANDOM_DENSE, prefixes,
                              n_parts, in_features, out_features, bias, out, err, errlen);
}

static void fp8_release(void *state)
{
    struct fp8_state *s = state;
    qc_list_free(&s->ignored);
    qc_list_free(&s->skip);
    free(s);
}

static const char *const fp8_methods[] = { "fp8", NULL };

static const struct pgd_quant_ops fp8_ops = {
    .struct_size = sizeof(struct pgd_quant_ops),
    .methods = fp8_methods,
    .configure = fp8_configure,
    .is_quantized = fp8_is_quantized,
    .load_linear = fp8_load_linear,
    .linear = qc_linear,
    .free_linear = qc_free_linear,
    .release = fp8_release,
};

static const struct pgd_plugin fp8_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_QUANT,
    .name = "fp8",
    .version = "1.0",
    .description = "FP8 e4m3 W8A8: FP8 checkpoints (per-tensor or per-channel scales) and "
                   "--quantization fp8 at load",
    .quant = &fp8_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &fp8_plugin;
}
