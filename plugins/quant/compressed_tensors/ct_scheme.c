/* compressed-tensors' quantization_config: reading and checking the config groups and the
 * ignore list, and matching layers to schemes (see ct_scheme.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "plugins/quant/compressed_tensors/ct_scheme.h"
#include "plugins/quant/common/qcommon.h"
#include <pagoda/log.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q "quantization_config."

/* ---- module names ------------------------------------------------------------------------ */
static void names_free(struct ct_names *n)
{
    for (int i = 0; i < n->n; i++) {
        free(n->names[i]);
        pcre2_code_free(n->regex[i]);
    }
    free(n->names);
    free(n->regex);
    *n = (struct ct_names){ 0 };
}

/* Reads the list at `key` (absent: empty) and compiles its "re:" entries. */
static enum pgd_status names_read(const struct pgd_model_ctx *ctx, const char *key,
                                  struct ct_names *out, char *err, size_t errlen)
{
    *out = (struct ct_names){ 0 };
    struct qc_list list;
    enum pgd_status st = qc_list_read(ctx, key, &list, err, errlen);
    if (st)
        return st;
    out->names = list.names;
    out->n = list.n;
    out->regex = calloc((size_t)list.n + 1, sizeof *out->regex);
    if (!out->regex) {
        names_free(out);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory reading \"%s\"", key);
    }
    for (int i = 0; i < out->n; i++) {
        const char *e = out->names[i];
        if (strncmp(e, "re:", 3)) {
            out->linear = out->linear || !strcmp(e, "Linear");
            continue;
        }
        int code;
        PCRE2_SIZE at;
        out->regex[i] = pcre2_compile((PCRE2_SPTR)(e + 3), PCRE2_ZERO_TERMINATED,
                                      PCRE2_ANCHORED, &code, &at, NULL);
        if (!out->regex[i]) {
            char why[160];
            pcre2_get_error_message(code, (PCRE2_UCHAR *)why, sizeof why);
            pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"%s.%d\" = \"%s\": not a "
                     "regular expression (%s at offset %zu)", pgd_model_dir(ctx), key, i, e, why,
                     (size_t)at);
            names_free(out);
            return PGD_ERR_FORMAT;
        }
    }
    return PGD_OK;
}

/* Whether an entry names the module: a regex matching from its start, or the name itself. */
static bool names_match(const struct ct_names *n, const char *prefix)
{
    for (int i = 0; i < n->n; i++) {
        if (!n->regex[i]) {
            if (!strcmp(n->names[i], prefix))
                return true;
            continue;
        }
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(n->regex[i], NULL);
        int rc = md ? pcre2_match(n->regex[i], (PCRE2_SPTR)prefix, PCRE2_ZERO_TERMINATED, 0, 0,
                                  md, NULL)
                    : -1;
        pcre2_match_data_free(md);
        if (rc >= 0)
            return true;
    }
    return false;
}

/* ---- one config group --------------------------------------------------------------------- */
/* A message naming config.json's key `<base>.<field>`. */
#define REFUSE(st, fmt, ...)                                                                   \
    pgd_errf(err, errlen, st, "%s/config.json: \"%s." fmt, pgd_model_dir(ctx), base,          \
             __VA_ARGS__)

/* actorder: null/false, "weight"/"static" (the quantizer's order, the layout unchanged) or
 * "group"/"dynamic"/true (groups of permuted channels: weight_g_idx says which). */
static enum pgd_status read_actorder(const struct pgd_model_ctx *ctx, const char *base,
                                     bool *g_idx, char *err, size_t errlen)
{
    char key[400];
    snprintf(key, sizeof key, "%s.weights.actorder", base);
    const char *s = pgd_config_str(ctx, key);
    if (!s)
        return pgd_config_bool_or(ctx, key, false, g_idx, err, errlen);
    *g_idx = !strcmp(s, "group") || !strcmp(s, "dynamic");
    if (*g_idx || !strcmp(s, "weight") || !strcmp(s, "static"))
        return PGD_OK;
    return REFUSE(PGD_ERR_UNSUPPORTED, "weights.actorder\" = \"%s\" is not supported (null, "
                  "weight, static, group, dynamic)", s);
}

/* The integer weights of a "pack-quantized" group (W4A16 / W8A16). */
static enum pgd_status read_int_weights(const struct pgd_model_ctx *ctx, const char *base,
                                        const char *strategy, struct ct_scheme *s, char *err,
                                        size_t errlen)
{
    char key[400];
    int64_t group;
    snprintf(key, sizeof key, "%s.weights.group_size", base);
    enum pgd_status st = pgd_config_int_or(ctx, key, -1, &group, err, errlen);
    if (st)
        return st;
    if (s->bits != 4 && s->bits != 8)
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.num_bits\" = %d is not supported for int "
                      "weights (4 or 8)", s->bits);
    if (!strcmp(strategy, "group")) {
        if (group <= 0)
            return REFUSE(PGD_ERR_FORMAT, "weights.group_size\" = %lld: strategy \"group\" "
                          "needs a positive group size", (long long)group);
        s->group_size = group;
    } else if (!strcmp(strategy, "channel")) {
        s->group_size = -1;
    } else {
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.strategy\" = \"%s\" is not supported for "
                      "int weights (group, channel)", strategy);
    }
    snprintf(key, sizeof key, "%s.input_activations", base);
    if (!pgd_config_is_null(ctx, key))
        return REFUSE(PGD_ERR_UNSUPPORTED, "input_activations\": quantized activations with "
                      "int weights (W4A8, W8A8 int) are not supported (%s)", "weight-only: null");
    s->kind = CT_WQ;
    return read_actorder(ctx, base, &s->g_idx, err, errlen);
}

/* The e4m3 weights and activations of a "float-quantized" group (FP8 W8A8). */
static enum pgd_status read_float_weights(const struct pgd_model_ctx *ctx, const char *base,
                                          const char *strategy, struct ct_scheme *s, char *err,
                                          size_t errlen)
{
    char key[400];
    if (s->bits != 8)
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.num_bits\" = %d is not supported for float "
                      "weights (8: e4m3)", s->bits);
    if (strcmp(strategy, "tensor") && strcmp(strategy, "channel"))
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.strategy\" = \"%s\" is not supported for "
                      "float weights (tensor, channel)", strategy);
    s->per_channel = !strcmp(strategy, "channel");
    snprintf(key, sizeof key, "%s.input_activations", base);
    if (pgd_config_is_null(ctx, key))
        return REFUSE(PGD_ERR_UNSUPPORTED, "input_activations\" = null: FP8 weights with 16-bit "
                      "activations (W8A16 float) are not supported (%s)", "FP8 W8A8 is");
    int64_t bits;
    bool dynamic;
    enum pgd_status st;
    snprintf(key, sizeof key, "%s.input_activations.num_bits", base);
    if ((st = pgd_config_int_or(ctx, key, 8, &bits, err, errlen)))
        return st;
    snprintf(key, sizeof key, "%s.input_activations.type", base);
    const char *type = pgd_config_str(ctx, key);
    if (bits != 8 || (type && strcmp(type, "float")))
        return REFUSE(PGD_ERR_UNSUPPORTED, "input_activations\": %lld-bit %s activations are "
                      "not supported with float weights (8-bit float)", (long long)bits,
                      type ? type : "int");
    snprintf(key, sizeof key, "%s.input_activations.strategy", base);
    const char *astrat = pgd_config_str(ctx, key);
    if (astrat && strcmp(astrat, "token") && strcmp(astrat, "tensor"))
        return REFUSE(PGD_ERR_UNSUPPORTED, "input_activations.strategy\" = \"%s\" is not "
                      "supported (token, tensor)", astrat);
    snprintf(key, sizeof key, "%s.input_activations.dynamic", base);
    if ((st = pgd_config_bool_or(ctx, key, false, &dynamic, err, errlen)))
        return st;
    s->static_input = !dynamic;
    s->kind = CT_FP8;
    return PGD_OK;
}

static enum pgd_status read_group(const struct pgd_model_ctx *ctx, const char *name,
                                  const char *top_format, struct ct_scheme *s, char *err,
                                  size_t errlen)
{
    char base[300], key[400];
    snprintf(base, sizeof base, Q "config_groups.%s", name);
    if (!(s->group = strdup(name)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    snprintf(key, sizeof key, "%s.targets", base);
    enum pgd_status st = names_read(ctx, key, &s->targets, err, errlen);
    if (st)
        return st;
    snprintf(key, sizeof key, "%s.weights", base);
    if (pgd_config_is_null(ctx, key))
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights\" = null: quantized activations with 16-bit "
                      "weights are not supported (%s)", "a group must quantize its weights");
    snprintf(key, sizeof key, "%s.output_activations", base);
    if (!pgd_config_is_null(ctx, key))
        return REFUSE(PGD_ERR_UNSUPPORTED, "output_activations\": quantized outputs are not "
                      "supported (%s)", "null");
    int64_t bits;
    bool dynamic;
    snprintf(key, sizeof key, "%s.weights.num_bits", base);
    if ((st = pgd_config_int(ctx, key, &bits, err, errlen)))
        return st;
    s->bits = (int)bits;
    snprintf(key, sizeof key, "%s.weights.symmetric", base);
    if ((st = pgd_config_bool_or(ctx, key, true, &s->symmetric, err, errlen)))
        return st;
    snprintf(key, sizeof key, "%s.weights.dynamic", base);
    if ((st = pgd_config_bool_or(ctx, key, false, &dynamic, err, errlen)))
        return st;
    if (dynamic)
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.dynamic\" = true: weights quantized at run "
                      "time are not supported (%s)", "false");
    snprintf(key, sizeof key, "%s.weights.block_structure", base);
    if (!pgd_config_is_null(ctx, key))
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.block_structure\": block-wise scales are not "
                      "supported (%s)", "null");
    snprintf(key, sizeof key, "%s.weights.type", base);
    const char *type = pgd_config_str(ctx, key);
    snprintf(key, sizeof key, "%s.weights.strategy", base);
    const char *strategy = pgd_config_str(ctx, key);
    snprintf(key, sizeof key, "%s.format", base);
    const char *format = pgd_config_str(ctx, key);
    const char *fkey = format ? key : Q "format";
    if (!format)
        format = top_format;
    if (!type)
        type = "int";
    if (!strategy)
        strategy = "tensor";
    bool is_float = !strcmp(type, "float");
    if (!is_float && strcmp(type, "int"))
        return REFUSE(PGD_ERR_UNSUPPORTED, "weights.type\" = \"%s\" is not supported (int, "
                      "float)", type);
    const char *want = is_float ? "float-quantized" : "pack-quantized";
    if (!format || strcmp(format, want))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"%s\" = \"%s\" is "
                        "not supported for the %s weights of config group %s (%s)",
                        pgd_model_dir(ctx), fkey, format ? format : "(absent)", type, name, want);
    return is_float ? read_float_weights(ctx, base, strategy, s, err, errlen)
                    : read_int_weights(ctx, base, strategy, s, err, errlen);
}
#undef REFUSE

/* ---- the whole config ----------------------------------------------------------------------- */
/* Settings beside the groups: a status other than compressed, sparsity and transforms are
 * refused; a KV cache scheme is not applied (the cache keeps --kv-cache-dtype). */
static enum pgd_status check_top(const struct pgd_model_ctx *ctx, const char **format,
                                 char *err, size_t errlen)
{
    const char *dir = pgd_model_dir(ctx);
    const char *status = pgd_config_str(ctx, Q "quantization_status");
    if (status && strcmp(status, "compressed"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q
                        "quantization_status\" = \"%s\" is not supported (compressed: the "
                        "weights stored quantized)", dir, status);
    *format = pgd_config_str(ctx, Q "format");
    if (*format && strcmp(*format, "pack-quantized") && strcmp(*format, "float-quantized") &&
        strcmp(*format, "mixed-precision"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q "format\" = "
                        "\"%s\" is not supported (pack-quantized, float-quantized, "
                        "mixed-precision)", dir, *format);
    const char *sparse = pgd_config_str(ctx, Q "sparsity_config.format");
    if (pgd_config_key_at(ctx, Q "sparsity_config", 0) && !(sparse && !strcmp(sparse, "dense")))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q
                        "sparsity_config\" (format \"%s\"): sparse weights are not supported",
                        dir, sparse ? sparse : "?");
    if (pgd_config_key_at(ctx, Q "transform_config", 0))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: \"" Q
                        "transform_config\": rotated weights (SpinQuant, QuIP) are not "
                        "supported", dir);
    if (!pgd_config_key_at(ctx, Q "config_groups", 0))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"" Q "config_groups\" "
                        "must be an object of at least one scheme", dir);
    if (!pgd_config_is_null(ctx, Q "kv_cache_scheme"))
        PGD_WARN("%s/config.json: \"" Q "kv_cache_scheme\" is not applied: the KV cache keeps "
                 "--kv-cache-dtype, and the checkpoint's k_scale/v_scale are not read", dir);
    return PGD_OK;
}

enum pgd_status ct_config_read(const struct pgd_model_ctx *ctx, struct ct_config *cfg,
                               char *err, size_t errlen)
{
    *cfg = (struct ct_config){ 0 };
    const char *format = NULL;
    enum pgd_status st = check_top(ctx, &format, err, errlen);
    if (st)
        return st;
    int n = 0;
    while (pgd_config_key_at(ctx, Q "config_groups", (size_t)n))
        n++;
    if (!(cfg->schemes = calloc((size_t)n, sizeof *cfg->schemes)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    for (; cfg->n < n && !st; cfg->n++)
        st = read_group(ctx, pgd_config_key_at(ctx, Q "config_groups", (size_t)cfg->n), format,
                        &cfg->schemes[cfg->n], err, errlen);
    if (!st)
        st = names_read(ctx, Q "ignore", &cfg->ignore, err, errlen);
    return st;
}

void ct_config_free(struct ct_config *cfg)
{
    for (int i = 0; i < cfg->n; i++) {
        free(cfg->schemes[i].group);
        names_free(&cfg->schemes[i].targets);
    }
    free(cfg->schemes);
    names_free(&cfg->ignore);
    *cfg = (struct ct_config){ 0 };
}

const struct ct_scheme *ct_scheme_of(const struct ct_config *cfg, const char *prefix)
{
    if (names_match(&cfg->ignore, prefix))
        return NULL;
    for (int i = 0; i < cfg->n; i++)
        if (names_match(&cfg->schemes[i].targets, prefix))
            return &cfg->schemes[i];
    /* The LM head is no Linear (vLLM's ParallelLMHead): only a target naming it quantizes
     * it. */
    const char *dot = strrchr(prefix, '.');
    if (!strcmp(dot ? dot + 1 : prefix, "lm_head"))
        return NULL;
    for (int i = 0; i < cfg->n; i++)
        if (cfg->schemes[i].targets.linear)
            return &cfg->schemes[i];
    return NULL;
}
