/* --speculative-config: vLLM's JSON object into struct pgd__spec_config (see spec_config.h). */
#include "runtime/spec/spec_config.h"
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define WHAT "speculative_config"

const char *pgd__spec_method_name(enum pgd__spec_method m)
{
    switch (m) {
    case PGD__SPEC_NGRAM: return "ngram";
    case PGD__SPEC_DRAFT_MODEL: return "draft_model";
    default: return "off";
    }
}

/* An integer key in [lo, hi] into *out (left as it is when absent or null). */
static enum pgd_status int_key(json_t *o, const char *key, int lo, int hi, int *out, bool *given,
                               char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (given)
        *given = false;
    if (!v || json_is_null(v))
        return PGD_OK;
    if (!json_is_integer(v))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"%s\" must be an integer",
                        key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"%s\" = %lld is out of "
                        "range (%d..%d)", key, (long long)x, lo, hi);
    *out = (int)x;
    if (given)
        *given = true;
    return PGD_OK;
}

/* Keys of vLLM's SpeculativeConfig that pagoda reads or that change nothing here. */
static bool known_key(const char *k)
{
    static const char *const keys[] = {
        "method", "model", "num_speculative_tokens", "prompt_lookup_max", "prompt_lookup_min",
        "disable_by_batch_size", "draft_tensor_parallel_size", "quantization", "revision",
        "max_model_len", "disable_logprobs", "code_revision",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(k, keys[i]))
            return true;
    return false;
}

/* The keys that would change the draft's math and that pagoda cannot honour: refused. */
static enum pgd_status check_unsupported(json_t *o, char *err, size_t errlen)
{
    json_t *tp = json_object_get(o, "draft_tensor_parallel_size");
    if (tp && !json_is_null(tp) && !(json_is_integer(tp) && json_integer_value(tp) == 1))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, WHAT ": \"draft_tensor_parallel_size"
                        "\" must be 1");
    json_t *q = json_object_get(o, "quantization");
    if (q && !json_is_null(q))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, WHAT ": \"quantization\" of the "
                        "draft is not supported (give an unquantized draft)");
    return PGD_OK;
}

/* method (or, without one, "model" given: draft_model) into c->method; the draft's path. */
static enum pgd_status parse_method(json_t *o, struct pgd__spec_config *c, char *err,
                                    size_t errlen)
{
    json_t *m = json_object_get(o, "method"), *model = json_object_get(o, "model");
    if (m && !json_is_null(m) && !json_is_string(m))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"method\" must be a string");
    if (model && !json_is_null(model) && !json_is_string(model))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"model\" must be a string");
    const char *ms = json_string_value(m), *path = json_string_value(model);
    /* vLLM's older spelling: "model": "[ngram]". */
    if (!ms && path && !strcmp(path, "[ngram]")) {
        ms = "ngram";
        path = NULL;
    }
    if (!ms)
        ms = path ? "draft_model" : NULL;
    if (!ms)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": give \"method\" (\"ngram\" "
                        "or \"draft_model\") or a draft \"model\"");
    if (!strcmp(ms, "ngram") || !strcmp(ms, "[ngram]")) {
        c->method = PGD__SPEC_NGRAM;
    } else if (!strcmp(ms, "draft_model")) {
        c->method = PGD__SPEC_DRAFT_MODEL;
        if (!path || !*path)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": method \"draft_model\" "
                            "needs \"model\" (the draft's directory or hub id)");
        if (strlen(path) >= sizeof c->model)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"model\" is longer "
                            "than %zu bytes", sizeof c->model - 1);
        snprintf(c->model, sizeof c->model, "%s", path);
    } else {
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, WHAT ": \"method\" = \"%s\" is not "
                        "supported (ngram, draft_model)", ms);
    }
    return PGD_OK;
}

/* ngram's lookup lengths: vLLM's defaults (5 and 5; one given sets the other) and order. */
static enum pgd_status parse_lookup(json_t *o, struct pgd__spec_config *c, char *err,
                                    size_t errlen)
{
    bool has_max, has_min;
    enum pgd_status st;
    if ((st = int_key(o, "prompt_lookup_max", 1, 1024, &c->prompt_lookup_max, &has_max, err,
                      errlen)) ||
        (st = int_key(o, "prompt_lookup_min", 1, 1024, &c->prompt_lookup_min, &has_min, err,
                      errlen)))
        return st;
    if (!has_max && !has_min)
        c->prompt_lookup_min = c->prompt_lookup_max = 5;
    else if (!has_min)
        c->prompt_lookup_min = c->prompt_lookup_max;
    else if (!has_max)
        c->prompt_lookup_max = c->prompt_lookup_min;
    if (c->prompt_lookup_min > c->prompt_lookup_max)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"prompt_lookup_min\" = %d "
                        "is more than \"prompt_lookup_max\" = %d", c->prompt_lookup_min,
                        c->prompt_lookup_max);
    return PGD_OK;
}

enum pgd_status pgd__spec_config_parse(const char *json, struct pgd__spec_config *out,
                                       char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json || !*json)
        return PGD_OK;
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    if (!o)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": not JSON: %s (column %d)",
                        je.text, je.column);
    enum pgd_status st = PGD_OK;
    const char *key;
    json_t *v;
    if (!json_is_object(o)) {
        st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": expected a JSON object, e.g. "
                      "'{\"method\": \"ngram\", \"num_speculative_tokens\": 4}'");
        goto done;
    }
    json_object_foreach(o, key, v) {
        if (!known_key(key)) {
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": unknown key \"%s\"", key);
            goto done;
        }
    }
    if ((st = check_unsupported(o, err, errlen)) || (st = parse_method(o, out, err, errlen)))
        goto done;
    bool has_k;
    if ((st = int_key(o, "num_speculative_tokens", 1, PGD__SPEC_MAX_TOKENS,
                      &out->num_speculative_tokens, &has_k, err, errlen)))
        goto done;
    if (!has_k) {
        st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, WHAT ": \"num_speculative_tokens\" is "
                      "required");
        goto done;
    }
    if ((st = int_key(o, "disable_by_batch_size", 1, 1 << 20, &out->disable_by_batch_size,
                      NULL, err, errlen)))
        goto done;
    if (out->method == PGD__SPEC_NGRAM)
        st = parse_lookup(o, out, err, errlen);
done:
    json_decref(o);
    if (st)
        memset(out, 0, sizeof *out);
    return st;
}
