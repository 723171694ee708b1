/* The Hugging Face config.json reader behind the pgd_config_* functions of model.h. */
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
