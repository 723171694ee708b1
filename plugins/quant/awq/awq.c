/* The AWQ quant plugin: AutoAWQ's GEMM checkpoints (quantization_config.quant_method "awq",
 * or quant_config.json beside the weights): 4-bit weights with zero points, one scale and
 * zero per group of input channels, and modules_to_not_convert left dense. The tensors are
 * checked against each layer's shape and repacked into the canonical wq layout
 * (awq_convert.c). Settings, under vLLM's and AutoAWQ's names: bits / w_bit (4),
 * group_size / q_group_size, zero_point (true), version (gemm). Random weights
 * (--load-format dummy) get random layers of that group size (default 128). */
#include "plugins/quant/common/qcommon.h"
#include "plugins/quant/awq/awq_convert.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q "quantization_config."

struct awq_state {
    int64_t group_size;        /* -1: per channel */
    struct qc_list skip;       /* modules_to_not_convert */
};

/* An integer setting under either of its two names. */
static enum pgd_status int_either(struct pgd_model_ctx *ctx, const char *a, const char *b,
                                  int64_t dflt, int64_t *v, const char **key, char *err,
                                  size_t errlen)
{
    *key = pgd_config_has(ctx, a) || !pgd_config_has(ctx, b) ? a : b;
    return pgd_config_int_or(ctx, *key, dflt, v, err, errlen);
}

static enum pgd_status awq_configure(struct pgd_model_ctx *ctx, enum pgd_device device,
                                     enum pgd_dtype act_dtype, void **state, char *err,
                                     size_t errlen)
{
    (void)device;
    (void)act_dtype;
    *state = NULL;
    const char *dir = pgd_model_dir(ctx), *bkey, *gkey;
    int64_t bits, group;
    bool zero_point;
    enum pgd_status st;
    if ((st = qc_need_config(ctx, "awq", err, errlen)) ||
        (st = int_either(ctx, Q "bits", Q "w_bit", 4, &bits, &bkey, err, errlen)) ||
        (st = int_either(ctx, Q "group_size", Q "q_group_size", 128, &group, &gkey, err,
                         errlen)) ||
        (st = pgd_config_bool_or(ctx, Q "zero_point", true, &zero_point, err, errlen)))
        return st;
    if (bits != 4)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"%s\" = %lld is not "
                        "supported (AWQ GEMM checkpoints are 4-bit)", dir, bkey, (long long)bits);
    if (group != -1 && group <= 0)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"%s\" = %lld: expected -1 "
                        "or a positive group size", dir, gkey, (long long)group);
    if (!zero_point)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "zero_point\" = "
                        "false: AWQ without zero points is not supported", dir);
    const char *version = pgd_config_str(ctx, Q "version");
    if (version && strcmp(version, "gemm") && strcmp(version, "GEMM"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "version\" = "
                        "\"%s\" is not supported (gemm: GEMV and other layouts pack differently)",
                        dir, version);
    struct awq_state *s = calloc(1, sizeof *s);
    if (!s)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    s->group_size = group;
    if (pgd_model_random_weights(ctx))
        PGD_INFO("%s: random AWQ layers: 4 bits, group_size %lld", dir, (long long)group);
    if ((st = qc_list_read(ctx, Q "modules_to_not_convert", &s->skip, err, errlen))) {
        free(s);
        return st;
    }
    *state = s;
    return PGD_OK;
}

static bool awq_is_quantized(const void *state, const char *prefix)
{
    const struct awq_state *s = state;
    return !strstr(prefix, "lm_head") && !qc_list_has(&s->skip, prefix, true);
}

static enum pgd_status load_part(const void *state, struct pgd_model_ctx *ctx,
                                 const char *prefix, int64_t in, int64_t out,
                                 struct pgd_wq_host *host, void **conv, char *err, size_t errlen)
{
    const struct awq_state *s = state;
    /* A group wider than the layer (group_size 128 on a 64-wide input) is one group of all
     * its inputs, as the quantizers write it (ceil(in / group_size) groups). */
    int64_t group = s->group_size == -1 || s->group_size > in ? in : s->group_size;
    if (in % 8 || out % 8 || in % group)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a [%lld, %lld] layer cannot be "
                        "packed 8 to a word with group_size %lld (input and output must be "
                        "multiples of 8, the input of the group size)", prefix, (long long)out,
                        (long long)in, (long long)group);
    int64_t groups = in / group;
    char name[512];
    struct pgd_raw_tensor qw, qz, sc;
    enum pgd_status st;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ in, out / 8 }, &qw,
                                   err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ groups, out / 8 },
                                   &qz, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.scales", prefix);
    if ((st = qc_float_tensor(ctx, name, 2, (int64_t[]){ groups, out }, "F16", &sc, err, errlen)))
        return st;
    size_t nq = (size_t)(in * out / 8), nz = (size_t)(groups * out / 8), ns = (size_t)(groups * out);
    char *mem = malloc((nq + nz) * 4 + ns * sizeof(float));
    if (!mem)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    uint32_t *q = (uint32_t *)mem, *z = q + nq;
    float *scales = (float *)(z + nz);
    qc_read_i32(&qw, nq, (int32_t *)q);
    qc_read_i32(&qz, nz, (int32_t *)z);
    qc_read_floats(&sc, ns, scales);
    struct awq_layer l = { .name = prefix, .group = group, .in = in, .out = out, .qweight = q,
                           .qzeros = z, .scales = scales };
    st = awq_to_wq(&l, host, conv, err, errlen);
    free(mem);
    return st;
}

static const struct pgd_quant_ops awq_ops;

static enum pgd_status awq_load_linear(void *state, struct pgd_model_ctx *ctx,
                                       const char *const *prefixes, int n_parts,
                                       int64_t in_features, const int64_t *out_features,
                                       bool bias, struct pgd_linear *out, char *err,
                                       size_t errlen)
{
    const struct awq_state *s = state;
    struct qc_wq_scheme scheme = { .bits = 4, .group_size = s->group_size };
    return qc_load_wq_linear(state, ctx, &awq_ops, load_part, &scheme, prefixes, n_parts,
                             in_features, out_features, bias, out, err, errlen);
}

static void awq_release(void *state)
{
    struct awq_state *s = state;
    qc_list_free(&s->skip);
    free(s);
}

static const char *const awq_methods[] = { "awq", NULL };

static const struct pgd_quant_ops awq_ops = {
    .struct_size = sizeof(struct pgd_quant_ops),
    .methods = awq_methods,
    .configure = awq_configure,
    .is_quantized = awq_is_quantized,
    .load_linear = awq_load_linear,
    .linear = qc_linear,
    .free_linear = qc_free_linear,
    .release = awq_release,
};

static const struct pgd_plugin awq_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_QUANT,
    .name = "awq",
    .version = "1.0",
    .description = "AWQ checkpoints (AutoAWQ GEMM): 4 bits with zero points",
    .quant = &awq_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &awq_plugin;
}
