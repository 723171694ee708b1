/* The GPTQ quant plugin: checkpoints as AutoGPTQ, GPTQModel and optimum write them
 * (quantization_config.quant_method "gptq"): reads quantization_config, reads each
 * quantized layer's qweight / qzeros / scales / g_idx, checks them against the layer's
 * shape, converts them into the canonical wq layout (gptq_convert.c) and hands that to the
 * model. Settings: bits 4 or 8; group_size -1 or a positive size that divides each layer's
 * input; sym (either: the zeros are read from qzeros); desc_act with any g_idx whose groups
 * hold group_size channels each; checkpoint_format gptq or gptq_v2; true_sequential and
 * static_groups change how the quantizer ran, not the stored layout, so they are read and
 * need nothing. Random weights (--load-format dummy) get random layers in that layout
 * (desc_act: a random act-order), or 4 bits in groups of 128 without a quantization_config. */
#include "plugins/quant/common/qcommon.h"
#include "plugins/quant/gptq/gptq_convert.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q "quantization_config."

struct gptq_state {
    int bits;
    int64_t group_size;        /* -1: per channel */
    bool v1;
    bool desc_act;
    struct qc_list skip;       /* modules_to_not_convert */
};

static enum pgd_status read_format(struct pgd_model_ctx *ctx, bool *v1, char *err,
                                   size_t errlen)
{
    const char *key = Q "checkpoint_format";
    const char *fmt = pgd_config_str(ctx, key);
    if (!fmt && (fmt = pgd_config_str(ctx, Q "format")))
        key = Q "format";
    if (!fmt || !strcmp(fmt, "gptq")) {
        *v1 = true;
        return PGD_OK;
    }
    if (!strcmp(fmt, "gptq_v2")) {
        *v1 = false;
        return PGD_OK;
    }
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"%s\" = \"%s\" is not "
                    "supported (gptq, gptq_v2)", pgd_model_dir(ctx), key, fmt);
}

static enum pgd_status gptq_configure(struct pgd_model_ctx *ctx, enum pgd_device device,
                                      enum pgd_dtype act_dtype, void **state, char *err,
                                      size_t errlen)
{
    (void)device;
    (void)act_dtype;
    *state = NULL;
    const char *dir = pgd_model_dir(ctx);
    int64_t bits, group;
    bool sym, desc_act, true_seq, static_groups, lm_head, v1 = true;
    /* Random weights without a quantization_config get the common layout: 4 bits, groups of
     * 128, no act-order. */
    bool dflt = pgd_config_is_null(ctx, "quantization_config");
    enum pgd_status st;
    if ((st = qc_need_config(ctx, "gptq", err, errlen)) ||
        (st = dflt ? pgd_config_int_or(ctx, Q "bits", 4, &bits, err, errlen)
                   : pgd_config_int(ctx, Q "bits", &bits, err, errlen)) ||
        (st = pgd_config_int_or(ctx, Q "group_size", dflt ? 128 : -1, &group, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, Q "sym", true, &sym, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, Q "desc_act", false, &desc_act, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, Q "true_sequential", true, &true_seq, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, Q "static_groups", false, &static_groups, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, Q "lm_head", false, &lm_head, err, errlen)) ||
        (st = read_format(ctx, &v1, err, errlen)))
        return st;
    if (bits != 4 && bits != 8)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "bits\" = %lld "
                        "is not supported (4 or 8)", dir, (long long)bits);
    if (group != -1 && group <= 0)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"" Q "group_size\" = "
                        "%lld: expected -1 (one group per output channel) or a positive size",
                        dir, (long long)group);
    if (lm_head)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "lm_head\" = "
                        "true: a quantized LM head is not supported", dir);
    if (!pgd_config_is_null(ctx, Q "dynamic"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "dynamic\": "
                        "per-module overrides of bits and group size are not supported", dir);
    struct gptq_state *s = calloc(1, sizeof *s);
    if (!s)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    *s = (struct gptq_state){ .bits = (int)bits, .group_size = group, .v1 = v1,
                              .desc_act = desc_act };
    if (pgd_model_random_weights(ctx))
        PGD_INFO("%s: random GPTQ layers: %lld bits, group_size %lld%s", dir, (long long)bits,
                 (long long)group, desc_act ? ", act-order (desc_act)" : "");
    if ((st = qc_list_read(ctx, Q "modules_to_not_convert", &s->skip, err, errlen))) {
        free(s);
        return st;
    }
    *state = s;
    return PGD_OK;
}

static bool gptq_is_quantized(const void *state, const char *prefix)
{
    const struct gptq_state *s = state;
    return !strstr(prefix, "lm_head") && !qc_list_has(&s->skip, prefix, true);
}

/* The group of each of the slice's input channels: g_idx's, else contiguous groups. */
static void slice_groups(const struct pgd_raw_tensor *gi, bool has_gidx, const struct qc_slice *sl,
                         int64_t group, int32_t *gid)
{
    if (has_gidx)
        qc_read_i32_block(gi, 0, NULL, 0, 1, sl->col0, sl->in, gid);
    else
        for (int64_t i = 0; i < sl->in; i++)
            gid[i] = (int32_t)((sl->col0 + i) / group);
}

/* Reads and checks one part's tensors, the slice of them this rank loads, into host arrays
 * (one block) and converts them. A slice of the input (a row-parallel shard) takes its
 * channels in the checkpoint's order (whole qweight words), with act-order their g_idx
 * groups, and qc_regroup makes those groups even; a slice of the output takes whole
 * zero-point words. */
static enum pgd_status load_part(const void *state, struct pgd_model_ctx *ctx,
                                 const char *prefix, const struct qc_slice *sl,
                                 struct pgd_wq_host *host, void **conv, char *err, size_t errlen)
{
    const struct gptq_state *s = state;
    int pack = 32 / s->bits;
    int64_t fin = sl->full_in, fout = sl->full_out, in = sl->in, out = sl->out;
    /* A group wider than the layer (group_size 128 on a 64-wide input) is one group of all
     * its inputs, as the quantizers write it (ceil(in / group_size) groups). */
    int64_t group = s->group_size == -1 || s->group_size > fin ? fin : s->group_size;
    char name[512];
    if (fin % pack || fout % pack || fin % group)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a [%lld, %lld] layer cannot be "
                        "packed %d to a word with group_size %lld (the input must be a multiple "
                        "of %d and of the group size, the output of %d)", prefix,
                        (long long)fout, (long long)fin, pack, (long long)group, pack, pack);
    if (sl->row0 % pack || out % pack || sl->col0 % pack || in % pack)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: the tensor-parallel shard of "
                        "outputs [%lld, %lld) and inputs [%lld, %lld) does not split GPTQ's "
                        "words: %d-bit zero points and weights are packed %d to a word, so a "
                        "shard must start and end on multiples of %d", prefix,
                        (long long)sl->row0, (long long)(sl->row0 + out), (long long)sl->col0,
                        (long long)(sl->col0 + in), s->bits, pack, pack);
    int64_t groups = fin / group;
    struct pgd_raw_tensor qw, qz, sc, gi;
    bool has_gidx;
    enum pgd_status st;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ fin / pack, fout },
                                   &qw, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ groups, fout / pack },
                                   &qz, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.scales", prefix);
    if ((st = qc_float_tensor(ctx, name, 2, (int64_t[]){ groups, fout }, "F16", &sc, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.g_idx", prefix);
    if ((has_gidx = pgd_model_has_tensor(ctx, name)) &&
        (st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 1, &fin, &gi, err, errlen)))
        return st;

    /* The slice's groups: the checkpoint's as they are for the whole input (gptq_to_wq
     * checks act-order's), else made even. src[k]: the checkpoint group of group k. */
    int32_t *gid = malloc((size_t)in * 2 * sizeof *gid), *src = NULL;
    int64_t lgroup = group, lgroups = groups;
    if (!gid)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    slice_groups(&gi, has_gidx, sl, group, gid);
    if (in != fin) {
        st = qc_regroup(prefix, gid, in, groups, group, &lgroup, gid + in, &src, err, errlen);
        if (st) {
            free(gid);
            return st;
        }
        lgroups = in / lgroup;
        memmove(gid, gid + in, (size_t)in * sizeof *gid);
    }
    size_t nq = (size_t)(in / pack * out), nz = (size_t)(lgroups * out / pack);
    size_t ns = (size_t)(lgroups * out);
    char *mem = malloc((nq + nz) * 4 + ns * sizeof(float));
    if (!mem) {
        free(gid);
        free(src);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    }
    uint32_t *q = (uint32_t *)mem, *z = q + nq;
    float *scales = (float *)(z + nz);
    /* The slice's rows of words (it starts and ends on a word), its columns of outputs. */
    qc_read_i32_block(&qw, fout, NULL, sl->col0 / pack, in / pack, sl->row0, out, (int32_t *)q);
    qc_read_i32_block(&qz, fout / pack, src, 0, lgroups, sl->row0 / pack, out / pack,
                      (int32_t *)z);
    qc_read_floats_block(&sc, fout, src, 0, lgroups, sl->row0, out, scales);
    struct gptq_layer l = { .name = prefix, .bits = s->bits, .group = lgroup, .in = in,
                            .out = out, .v1 = s->v1, .qweight = q, .qzeros = z,
                            .scales = scales, .g_idx = has_gidx || in != fin ? gid : NULL };
    st = gptq_to_wq(&l, host, conv, err, errlen);
    free(mem);
    free(gid);
    free(src);
    return st;
}

static const struct pgd_quant_ops gptq_ops;

static enum pgd_status gptq_load_linear(void *state, struct pgd_model_ctx *ctx,
                                        const char *const *prefixes, int n_parts,
                                        int64_t in_features, const int64_t *out_features,
                                        bool bias, struct pgd_linear *out, char *err,
                                        size_t errlen)
{
    const struct gptq_state *s = state;
    struct qc_wq_scheme scheme = { .bits = s->bits, .group_size = s->group_size,
                                   .act_order = s->desc_act };
    return qc_load_wq_linear(state, ctx, &gptq_ops, load_part, &scheme, prefixes, n_parts,
                             in_features, out_features, bias, out, err, errlen);
}

static void gptq_release(void *state)
{
    struct gptq_state *s = state;
    qc_list_free(&s->skip);
    free(s);
}

static const char *const gptq_methods[] = { "gptq", NULL };

static const struct pgd_quant_ops gptq_ops = {
    .struct_size = sizeof(struct pgd_quant_ops),
    .methods = gptq_methods,
    .configure = gptq_configure,
    .is_quantized = gptq_is_quantized,
    .load_linear = gptq_load_linear,
    .linear = qc_linear,
    .free_linear = qc_free_linear,
    .release = gptq_release,
};

static const struct pgd_plugin gptq_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_QUANT,
    .name = "gptq",
    .version = "1.0",
    .description = "GPTQ checkpoints (AutoGPTQ, GPTQModel, optimum): 4/8 bits, act-order, "
                   "gptq and gptq_v2",
    .quant = &gptq_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &gptq_plugin;
}
