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

/* Reads and checks one part's tensors, the slice of them this rank loads (whole words of 8
 * outputs; input rows with their groups, made even by qc_regroup when the slice holds part
 * of a group), and converts them. */
static enum pgd_status load_part(const void *state, struct pgd_model_ctx *ctx,
                                 const char *prefix, const struct qc_slice *sl,
                                 struct pgd_wq_host *host, void **conv, char *err, size_t errlen)
{
    const struct awq_state *s = state;
    int64_t fin = sl->full_in, fout = sl->full_out, in = sl->in, out = sl->out;
    /* A group wider than the layer (group_size 128 on a 64-wide input) is one group of all
     * its inputs, as the quantizers write it (ceil(in / group_size) groups). */
    int64_t group = s->group_size == -1 || s->group_size > fin ? fin : s->group_size;
    if (fin % 8 || fout % 8 || fin % group)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a [%lld, %lld] layer cannot be "
                        "packed 8 to a word with group_size %lld (input and output must be "
                        "multiples of 8, the input of the group size)", prefix, (long long)fout,
                        (long long)fin, (long long)group);
    if (sl->row0 % 8 || out % 8 || in % 8)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: the tensor-parallel shard of "
                        "outputs [%lld, %lld) and inputs [%lld, %lld) does not split AWQ's "
                        "words: AWQ packs 8 outputs to a word, so a shard must start and end on "
                        "multiples of 8", prefix, (long long)sl->row0, (long long)(sl->row0 + out),
                        (long long)sl->col0, (long long)(sl->col0 + in));
    int64_t groups = fin / group;
    char name[512];
    struct pgd_raw_tensor qw, qz, sc;
    enum pgd_status st;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ fin, fout / 8 },
                                   &qw, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    if ((st = pgd_model_raw_tensor(ctx, name, PGD_DTYPE_I32, 2, (int64_t[]){ groups, fout / 8 },
                                   &qz, err, errlen)))
        return st;
    snprintf(name, sizeof name, "%s.scales", prefix);
    if ((st = qc_float_tensor(ctx, name, 2, (int64_t[]){ groups, fout }, "F16", &sc, err, errlen)))
        return st;
    /* The slice's groups (whole groups stay whole); src[k]: the checkpoint group of group k. */
    int32_t *gid = malloc((size_t)in * 2 * sizeof *gid), *src = NULL;
    if (!gid)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    for (int64_t i = 0; i < in; i++)
        gid[i] = (int32_t)((sl->col0 + i) / group);
    int64_t lgroup;
    st = qc_regroup(prefix, gid, in, groups, group, &lgroup, gid + in, &src, err, errlen);
    free(gid);
    if (st)
        return st;
    int64_t lgroups = in / lgroup;
    size_t nq = (size_t)(in * out / 8), nz = (size_t)(lgroups * out / 8);
    size_t ns = (size_t)(lgroups * out);
    char *mem = malloc((nq + nz) * 4 + ns * sizeof(float));
    if (!mem) {
        free(src);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", prefix);
    }
    uint32_t *q = (uint32_t *)mem, *z = q + nq;
    float *scales = (float *)(z + nz);
    qc_read_i32_block(&qw, fout / 8, NULL, sl->col0, in, sl->row0 / 8, out / 8, (int32_t *)q);
    qc_read_i32_block(&qz, fout / 8, src, 0, lgroups, sl->row0 / 8, out / 8, (int32_t *)z);
    qc_read_floats_block(&sc, fout, src, 0, lgroups, sl->row0, out, scales);
    struct awq_layer l = { .name = prefix, .group = lgroup, .in = in, .out = out, .qweight = q,
                           .qzeros = z, .scales = scales };
    st = awq_to_wq(&l, host, conv, err, errlen);
    free(mem);
    free(src);
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
