/* The Hugging Face config.json reader behind the pgd_config_* functions of model.h, and the
 * range checks of the values whose meaning transformers fixes for every architecture. */
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

enum pgd_status pgd__config_read(const char *dir, json_t **out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!cfg) {
        FILE *fp = fopen(path, "r");
        if (!fp)
            return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s: cannot open (is %s a model "
                            "directory?)", path, dir);
        fclose(fp);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path,
                        je.line, je.column, je.text);
    }
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: not a JSON object", path);
    }
    *out = cfg;
    return PGD_OK;
}

json_t *pgd__config_get(json_t *cfg, const char *key)
{
    char part[256];
    const char *p = key;
    json_t *cur = cfg;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len >= sizeof part)
            return NULL;
        memcpy(part, p, len);
        part[len] = '\0';
        if (json_is_array(cur)) {            /* "layer_types.3": an index into a list */
            char *end;
            unsigned long idx = strtoul(part, &end, 10);
            cur = (len && !*end) ? json_array_get(cur, idx) : NULL;
        } else {
            cur = json_is_object(cur) ? json_object_get(cur, part) : NULL;
        }
        p = dot ? dot + 1 : p + len;
    }
    return cur;
}

const char *pgd_model_dir(const struct pgd_model_ctx *ctx) { return ctx->m->dir; }

bool pgd_config_has(const struct pgd_model_ctx *ctx, const char *key)
{
    return pgd__config_get(ctx->m->config, key) != NULL;
}

bool pgd_config_is_null(const struct pgd_model_ctx *ctx, const char *key)
{
    json_t *v = pgd__config_get(ctx->m->config, key);
    return !v || json_is_null(v);
}

static enum pgd_status wrong_type(const struct pgd_model_ctx *ctx, const char *key,
                                  const char *want, char *err, size_t errlen)
{
    return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"%s\" must be %s", ctx->m->config_path,
                    key, want);
}

enum pgd_status pgd_config_int_or(const struct pgd_model_ctx *ctx, const char *key,
                                  int64_t dflt, int64_t *out, char *err, size_t errlen)
{
    json_t *v = pgd__config_get(ctx->m->config, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return PGD_OK;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return PGD_OK;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
        return PGD_OK;
    }
    return wrong_type(ctx, key, "an integer", err, errlen);
}

enum pgd_status pgd_config_int(const struct pgd_model_ctx *ctx, const char *key, int64_t *out,
                               char *err, size_t errlen)
{
    if (pgd_config_is_null(ctx, key))
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s: required key \"%s\" is missing",
                        ctx->m->config_path, key);
    return pgd_config_int_or(ctx, key, 0, out, err, errlen);
}

enum pgd_status pgd_config_num_or(const struct pgd_model_ctx *ctx, const char *key,
                                  double dflt, double *out, char *err, size_t errlen)
{
    json_t *v = pgd__config_get(ctx->m->config, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return PGD_OK;
    }
    if (!json_is_number(v))
        return wrong_type(ctx, key, "a number", err, errlen);
    *out = json_number_value(v);
    return PGD_OK;
}

enum pgd_status pgd_config_num(const struct pgd_model_ctx *ctx, const char *key, double *out,
                               char *err, size_t errlen)
{
    if (pgd_config_is_null(ctx, key))
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s: required key \"%s\" is missing",
                        ctx->m->config_path, key);
    return pgd_config_num_or(ctx, key, 0, out, err, errlen);
}

enum pgd_status pgd_config_bool_or(const struct pgd_model_ctx *ctx, const char *key,
                                   bool dflt, bool *out, char *err, size_t errlen)
{
    json_t *v = pgd__config_get(ctx->m->config, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return PGD_OK;
    }
    if (!json_is_boolean(v))
        return wrong_type(ctx, key, "true or false", err, errlen);
    *out = json_is_true(v);
    return PGD_OK;
}

const char *pgd_config_str(const struct pgd_model_ctx *ctx, const char *key)
{
    json_t *v = pgd__config_get(ctx->m->config, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *pgd_config_key_at(const struct pgd_model_ctx *ctx, const char *key, size_t i)
{
    json_t *obj = pgd__config_get(ctx->m->config, key), *v;
    const char *k;
    size_t n = 0;
    if (!json_is_object(obj))
        return NULL;
    json_object_foreach(obj, k, v) {
        if (n++ == i)
            return k;
    }
    return NULL;
}

/* Keys that never change the forward pass: ids, names, dtypes, training-only settings and
 * transformers' bookkeeping. Everything else must be claimed by the plugin. */
static const char *const neutral_keys[] = {
    "architectures", "model_type", "torch_dtype", "dtype", "transformers_version",
    "_name_or_path", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
    "decoder_start_token_id", "use_cache", "initializer_range", "attention_dropout",
    "hidden_dropout", "embd_pdrop", "resid_pdrop", "dropout", "output_attentions",
    "output_hidden_states", "return_dict", "id2label", "label2id", "problem_type",
    "tokenizer_class", "task_specific_params", "is_encoder_decoder", "chunk_size_feed_forward",
    "tie_encoder_decoder", "add_cross_attention", "pretraining_tp", "auto_map",
    "quantization_config", "max_window_layers", "use_return_dict", "router_aux_loss_coef",
    "generation_config", "finetuning_task", "prefix", "model_name", "vocab_file",
    "compression_config",   /* older llm-compressor's quantization_config (model/quant.c) */
    NULL,
};

static bool in_list(const char *const *list, const char *key)
{
    for (; list && *list; list++)
        if (strcmp(*list, key) == 0)
            return true;
    return false;
}

enum pgd_status pgd_config_check_keys(const struct pgd_model_ctx *ctx, const char *const *known,
                                      char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(ctx->m->config, key, v) {
        if (json_is_null(v) || in_list(neutral_keys, key) || in_list(known, key))
            continue;
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: key \"%s\" is not supported by the %s plugin and may change the "
                        "model's math; refusing to load rather than ignore it",
                        ctx->m->config_path, key, ctx->m->plugin->name);
    }
    return PGD_OK;
}

enum pgd_status pgd_config_rope(const struct pgd_model_ctx *ctx, int head_dim,
                                struct pgd_rope_config *cfg, char *err, size_t errlen)
{
    /* transformers >= 5 writes "rope_parameters" (theta inside); older checkpoints have
     * top-level "rope_theta" and an optional "rope_scaling". */
    const char *sect = pgd_config_has(ctx, "rope_parameters") ? "rope_parameters"
                       : "rope_scaling";
    json_t *section = pgd__config_get(ctx->m->config, sect);
    if (section && !json_is_object(section) && !json_is_null(section))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"%s\" must be an object",
                        ctx->m->config_path, sect);
    char key[128];
    enum pgd_status st;
    *cfg = (struct pgd_rope_config){ .head_dim = head_dim, .rotary_dim = head_dim };
    snprintf(key, sizeof key, "%s.rope_theta", sect);
    if (!pgd_config_is_null(ctx, key))
        st = pgd_config_num(ctx, key, &cfg->theta, err, errlen);
    else
        st = pgd_config_num_or(ctx, "rope_theta", 10000.0, &cfg->theta, err, errlen);
    if (st)
        return st;
    if (!(cfg->theta > 0) || !isfinite(cfg->theta))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"rope_theta\" = %g must be a "
                        "positive number", ctx->m->config_path, cfg->theta);

    double partial = 1.0;
    snprintf(key, sizeof key, "%s.partial_rotary_factor", sect);
    if (!pgd_config_is_null(ctx, key))
        st = pgd_config_num(ctx, key, &partial, err, errlen);
    else
        st = pgd_config_num_or(ctx, "partial_rotary_factor", 1.0, &partial, err, errlen);
    if (st)
        return st;
    cfg->rotary_dim = (int)(head_dim * partial);
    /* Rotation works on pairs of dimensions. */
    if (!(partial > 0 && partial <= 1) || cfg->rotary_dim <= 0 || cfg->rotary_dim % 2)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: the rotary dimensions (head_dim %d x "
                        "partial_rotary_factor %g = %d) must be a positive even number",
                        ctx->m->config_path, head_dim, partial, cfg->rotary_dim);

    const char *type = NULL;
    snprintf(key, sizeof key, "%s.rope_type", sect);
    type = pgd_config_str(ctx, key);
    if (!type) {
        snprintf(key, sizeof key, "%s.type", sect);
        type = pgd_config_str(ctx, key);
    }
    if (!type || !strcmp(type, "default")) {
        cfg->scaling = PGD_ROPE_DEFAULT;
        return PGD_OK;
    }
    snprintf(key, sizeof key, "%s.factor", sect);
    if ((st = pgd_config_num(ctx, key, &cfg->factor, err, errlen)))
        return st;
    if (!(cfg->factor > 0))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"%s\" must be > 0",
                        ctx->m->config_path, key);
    if (!strcmp(type, "linear")) {
        cfg->scaling = PGD_ROPE_LINEAR;
        return PGD_OK;
    }
    if (!strcmp(type, "llama3")) {
        cfg->scaling = PGD_ROPE_LLAMA3;
        int64_t orig;
        snprintf(key, sizeof key, "%s.low_freq_factor", sect);
        if ((st = pgd_config_num(ctx, key, &cfg->low_freq_factor, err, errlen)))
            return st;
        snprintf(key, sizeof key, "%s.high_freq_factor", sect);
        if ((st = pgd_config_num(ctx, key, &cfg->high_freq_factor, err, errlen)))
            return st;
        snprintf(key, sizeof key, "%s.original_max_position_embeddings", sect);
        if ((st = pgd_config_int(ctx, key, &orig, err, errlen)))
            return st;
        if (cfg->high_freq_factor <= cfg->low_freq_factor || orig <= 0)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor "
                            "and original_max_position_embeddings > 0", ctx->m->config_path);
        cfg->original_max_position = (int)orig;
        return PGD_OK;
    }
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                    "%s: rope scaling type \"%s\" is not supported (supported: default, linear, "
                    "llama3)", ctx->m->config_path, type);
}

/* ---- activations ---------------------------------------------------------------------- */

/* transformers' ACT2FN names for the activations the ops compute (enum pgd_act). */
static const struct {
    const char *name;
    enum pgd_act act;
} hf_acts[] = {
    { "silu", PGD_ACT_SILU },
    { "swish", PGD_ACT_SILU },                 /* ACT2FN maps it to SiLU too */
    { "gelu_pytorch_tanh", PGD_ACT_GELU_TANH },
};
#define HF_ACT_NAMES "silu, swish, gelu_pytorch_tanh"

static bool act_from_name(const char *name, enum pgd_act *out)
{
    for (size_t i = 0; i < sizeof hf_acts / sizeof hf_acts[0]; i++)
        if (strcmp(hf_acts[i].name, name) == 0) {
            *out = hf_acts[i].act;
            return true;
        }
    return false;
}

enum pgd_status pgd_config_act(const struct pgd_model_ctx *ctx, const char *key,
                               enum pgd_act dflt, enum pgd_act *out, char *err, size_t errlen)
{
    json_t *v = pgd__config_get(ctx->m->config, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return PGD_OK;
    }
    if (!json_is_string(v))
        return wrong_type(ctx, key, "a string", err, errlen);
    if (!act_from_name(json_string_value(v), out))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: \"%s\" = \"%s\" is not an activation pagoda computes (%s)",
                        ctx->m->config_path, key, json_string_value(v), HF_ACT_NAMES);
    return PGD_OK;
}

/* ---- values that change the math ------------------------------------------------------- */

enum value_rule {
    RULE_POSITIVE_NUMBER,          /* a number > 0 */
    RULE_POSITIVE_INTEGER,         /* an integer > 0 */
    RULE_OBJECT,                   /* an object */
    RULE_ACTIVATION,               /* a name of hf_acts */
};

/* The keys every architecture reads the same way. Absent or null is fine (the plugin's
 * default, or the feature is off); any other value must keep its rule. */
static const struct {
    const char *key;
    enum value_rule rule;
} math_values[] = {
    { "rms_norm_eps", RULE_POSITIVE_NUMBER },
    { "rope_theta", RULE_POSITIVE_NUMBER },
    { "max_position_embeddings", RULE_POSITIVE_INTEGER },
    { "hidden_act", RULE_ACTIVATION },
    { "rope_scaling", RULE_OBJECT },
    { "rope_parameters", RULE_OBJECT },
    { "quantization_config", RULE_OBJECT },
};

/* v as compact JSON, for a message (static buffer, truncated). */
static const char *json_text(const json_t *v)
{
    static _Thread_local char buf[96];
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10));
    snprintf(buf, sizeof buf, "%s", s ? s : "?");
    free(s);
    return buf;
}

static bool keeps_rule(const json_t *v, enum value_rule rule, const char **want)
{
    switch (rule) {
    case RULE_POSITIVE_NUMBER:
        *want = "is out of range (must be a number > 0)";
        return json_is_number(v) && json_number_value(v) > 0;
    case RULE_POSITIVE_INTEGER:
        *want = "is out of range (must be an integer > 0)";
        return (json_is_integer(v) && json_integer_value(v) > 0) ||
               (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 9e15 &&
                json_real_value(v) == floor(json_real_value(v)));
    case RULE_OBJECT:
        *want = "is not an object (must be an object or null)";
        return json_is_object(v);
    case RULE_ACTIVATION: {
        enum pgd_act act;
        *want = "is not an activation pagoda computes (" HF_ACT_NAMES ")";
        return json_is_string(v) && act_from_name(json_string_value(v), &act);
    }
    }
    return false;
}

enum pgd_status pgd__config_check_values(json_t *cfg, const char *config_path,
                                         const struct pgd_registry *reg, char *err,
                                         size_t errlen)
{
    for (size_t i = 0; i < sizeof math_values / sizeof math_values[0]; i++) {
        json_t *v = json_object_get(cfg, math_values[i].key);
        const char *want = "";
        if (!v || json_is_null(v) || keeps_rule(v, math_values[i].rule, &want))
            continue;
        return pgd_errf(err, errlen, math_values[i].rule == RULE_ACTIVATION
                                         ? PGD_ERR_UNSUPPORTED : PGD_ERR_FORMAT,
                        "%s: \"%s\" = %s %s", config_path, math_values[i].key, json_text(v),
                        want);
    }
    json_t *q = json_object_get(cfg, "quantization_config");
    if (!q || json_is_null(q))
        return PGD_OK;
    json_t *method = json_object_get(q, "quant_method");
    if (!json_is_string(method))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: \"quantization_config.quant_method\" = %s must be a string "
                        "naming the quantization method", config_path,
                        method ? json_text(method) : "(missing)");
    if (pgd_registry_find_quant(reg, json_string_value(method)))
        return PGD_OK;
    char claimed[512];
    pgd_registry_list_quant_methods(reg, claimed, sizeof claimed);
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                    "%s: \"quantization_config.quant_method\" = \"%s\" is not supported: no "
                    "quant plugin claims it (claimed: %s)", config_path,
                    json_string_value(method), claimed);
}
