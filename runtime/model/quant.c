/* The model's quantization: which quant plugin a checkpoint goes to, and the routing of
 * pgd_model_load_linear to it (include/pagoda/plugin.h, struct pgd_quant_ops).
 *
 * The method comes, as vLLM finds it, from config.json's quantization_config.quant_method,
 * else from its "compression_config" (the same object, under the name older llm-compressor
 * releases wrote), else from the quantization file AutoGPTQ (quantize_config.json) or AutoAWQ
 * (quant_config.json) leaves beside the weights, else from --quantization; when both the
 * checkpoint and --quantization name one they must agree. A compression_config or a side
 * file becomes config.json's quantization_config in memory, so that plugins read every
 * setting through pgd_config_*("quantization_config.<key>") whichever key or file held it.
 *
 * Random weights (--load-format dummy) go through the same plugin: it makes each layer in
 * the layout its quantization_config describes (or its defaults, without one) from
 * pgd_model_random_wq / _fp8 (runtime/model/qrandom.c). */
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "runtime/model/qweight.h"
#include "runtime/model/safetensors.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <pagoda/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The side files, and the method each implies when it does not name one. */
static const struct { const char *file, *method; } side_files[] = {
    { "quantize_config.json", "gptq" },   /* AutoGPTQ, GPTQModel */
    { "quant_config.json", "awq" },       /* AutoAWQ */
};

/* The object older llm-compressor releases wrote as config.json's "compression_config"
 * (compressed-tensors and vLLM read it when quantization_config is absent), or NULL. */
static json_t *legacy_config(json_t *config)
{
    json_t *q = json_object_get(config, "quantization_config");
    json_t *c = json_object_get(config, "compression_config");
    return (!q || json_is_null(q)) && json_is_object(c) ? c : NULL;
}

/* Adopts config.json's compression_config, or else a side file, as quantization_config when
 * config.json has none. */
static enum pgd_status read_side_file(struct pgd__model *m, const char *quantization,
                                      char *err, size_t errlen)
{
    json_t *legacy = legacy_config(m->config);
    if (legacy) {
        if (!json_is_string(json_object_get(legacy, "quant_method")))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"compression_config\" has no "
                            "\"quant_method\" string naming its quantization method",
                            m->config_path);
        PGD_INFO("%s: \"compression_config\" (older llm-compressor) read as "
                 "\"quantization_config\"", m->config_path);
        json_object_set(m->config, "quantization_config", legacy);
        return PGD_OK;
    }
    if (json_is_object(json_object_get(m->config, "quantization_config")))
        return PGD_OK;
    for (size_t i = 0; i < sizeof side_files / sizeof side_files[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", m->dir, side_files[i].file);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            continue;
        json_error_t je;
        json_t *q = json_loadf(fp, JSON_REJECT_DUPLICATES, &je);
        fclose(fp);
        if (!json_is_object(q)) {
            json_decref(q);
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: not a JSON object%s%s", path,
                            q ? "" : ": ", q ? "" : je.text);
        }
        if (!json_object_get(q, "quant_method"))
            json_object_set_new(q, "quant_method", json_string(quantization && *quantization
                                                                   ? quantization
                                                                   : side_files[i].method));
        PGD_DEBUG("%s: read as config.json's quantization_config", path);
        json_object_set_new(m->config, "quantization_config", q);
        return PGD_OK;
    }
    return PGD_OK;
}

enum pgd_status pgd__model_quant_setup(struct pgd__model *m, const struct pgd_registry *reg,
                                       const char *quantization, char *err, size_t errlen)
{
    if (quantization && !*quantization)
        quantization = NULL;
    enum pgd_status st = read_side_file(m, quantization, err, errlen);
    if (st)
        return st;
    json_t *qm = pgd__config_get(m->config, "quantization_config.quant_method");
    const char *ckpt = json_string_value(qm);
    if (json_is_object(json_object_get(m->config, "quantization_config")) && !ckpt)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"quantization_config\" has no "
                        "\"quant_method\" string naming its quantization method",
                        m->config_path);
    if (ckpt && quantization && strcmp(ckpt, quantization))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: the checkpoint is quantized "
                        "with \"%s\" (quantization_config.quant_method), but --quantization "
                        "asks for \"%s\"", m->config_path, ckpt, quantization);
    const char *method = ckpt ? ckpt : quantization;
    if (!method)
        return PGD_OK;
    m->quant = pgd_registry_find_quant(reg, method);
    if (!m->quant) {
        char claimed[1024];
        pgd_registry_list_quant_methods(reg, claimed, sizeof claimed);
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: quantization method \"%s\"%s "
                        "is not supported: no quant plugin claims it (claimed: %s)", m->dir,
                        method, ckpt ? "" : " (--quantization)", claimed);
    }
    struct pgd_model_ctx ctx = { .m = m };
    st = m->quant->quant->configure(&ctx, m->device, m->dtype, &m->quant_state, err, errlen);
    if (st) {
        m->quant_state = NULL;
        if (err && errlen && !err[0])
            snprintf(err, errlen, "%s: quantization \"%s\": the %s plugin refused it (%s)",
                     m->config_path, method, m->quant->name, pgd_status_str(st));
        m->quant = NULL;
        return st;
    }
    PGD_INFO("%s: quantization %s (plugin %s %s)", m->dir, method, m->quant->name,
             m->quant->version);
    return PGD_OK;
}

enum pgd_status pgd__model_quant_claims(struct pgd__model *m, const char *const *prefixes,
                                        int n_parts, bool *claims, char *err, size_t errlen)
{
    *claims = false;
    if (!m->quant)
        return PGD_OK;
    int n = 0;
    for (int i = 0; i < n_parts; i++)
        n += m->quant->quant->is_quantized(m->quant_state, prefixes[i]);
    if (n && n != n_parts)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: the fused layer %s (+%d parts) is "
                        "quantized in some parts and not in others", m->dir, prefixes[0],
                        n_parts - 1);
    *claims = n > 0;
    return PGD_OK;
}

enum pgd_status pgd__model_quant_load_linear(struct pgd_model_ctx *ctx,
                                             const char *const *prefixes, int n_parts,
                                             int64_t in_features, const int64_t *out_features,
                                             bool bias, struct pgd_linear *out, char *err,
                                             size_t errlen)
{
    struct pgd__model *m = ctx->m;
    const struct pgd_quant_ops *q = m->quant->quant;
    if (!pgd__array_reserve(m->quant_layers, m->cap_quant_layers, m->n_quant_layers + 1))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory loading %s", prefixes[0]);
    *out = (struct pgd_linear){ 0 };
    enum pgd_status st = q->load_linear(m->quant_state, ctx, prefixes, n_parts, in_features,
                                        out_features, bias, out, err, errlen);
    if (st) {
        if (err && errlen && !err[0])
            snprintf(err, errlen, "%s: the %s plugin failed to load %s (%s)", m->dir,
                     m->quant->name, prefixes[0], pgd_status_str(st));
        return st;
    }
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++)
        total += out_features[i];
    m->quant_layers[m->n_quant_layers++] = out->quant_state;
    if (out->quant != q || out->in_features != in_features || out->out_features != total)
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN, "%s: the %s plugin loaded %s as a "
                        "[%lld, %lld] layer without its ops, expected [%lld, %lld]", m->dir,
                        m->quant->name, prefixes[0], (long long)out->out_features,
                        (long long)out->in_features, (long long)total,
                        (long long)in_features);
    return PGD_OK;
}

void pgd__model_quant_teardown(struct pgd__model *m)
{
    if (m->quant) {
        for (size_t i = 0; i < m->n_quant_layers; i++)
            m->quant->quant->free_linear(m->quant_layers[i]);
        if (m->quant_state)
            m->quant->quant->release(m->quant_state);
    }
    free(m->quant_layers);
    m->quant_layers = NULL;
    m->n_quant_layers = 0;
    m->quant_state = NULL;
    pgd__qweights_free(m);
}

/* compressed-tensors' label: what its config groups hold (w4a16, w8a16, fp8), "mixed" when
 * they differ. */
static void ct_label(json_t *q, char *buf, size_t len)
{
    char what[32] = "", one[32];
    const char *name;
    json_t *g;
    json_object_foreach(json_object_get(q, "config_groups"), name, g) {
        json_t *w = json_object_get(g, "weights");
        const char *type = json_string_value(json_object_get(w, "type"));
        long long bits = json_integer_value(json_object_get(w, "num_bits"));
        json_t *act = json_object_get(g, "input_activations");
        if (type && !strcmp(type, "float") && bits == 8)
            snprintf(one, sizeof one, "fp8");
        else
            snprintf(one, sizeof one, "w%llda%lld", bits,
                     json_is_object(act) ? json_integer_value(json_object_get(act, "num_bits"))
                                         : 16);
        if (what[0] && strcmp(what, one))
            snprintf(one, sizeof one, "mixed");
        snprintf(what, sizeof what, "%s", one);
    }
    snprintf(buf, len, what[0] ? "compressed-tensors-%s" : "compressed-tensors", what);
}

void pgd__model_quant_label(const char *dir, char *buf, size_t len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        snprintf(buf, len, "?");
        return;
    }
    json_t *legacy = legacy_config(cfg);
    json_t *q = json_incref(legacy ? legacy : json_object_get(cfg, "quantization_config"));
    const char *dflt = NULL;
    for (size_t i = 0; !json_is_object(q) && i < sizeof side_files / sizeof side_files[0]; i++) {
        json_decref(q);
        snprintf(path, sizeof path, "%s/%s", dir, side_files[i].file);
        q = json_load_file(path, 0, NULL);
        dflt = side_files[i].method;
    }
    const char *method = json_string_value(json_object_get(q, "quant_method"));
    if (!method)
        method = json_is_object(q) ? dflt : NULL;
    json_t *bits = json_object_get(q, "bits");
    if (!bits)
        bits = json_object_get(q, "w_bit");
    if (!method)
        snprintf(buf, len, "none");
    else if (!strcmp(method, "compressed-tensors"))
        ct_label(q, buf, len);
    else if ((!strcmp(method, "gptq") || !strcmp(method, "awq")) && json_is_integer(bits))
        snprintf(buf, len, "%s-int%lld", method, (long long)json_integer_value(bits));
    else
        snprintf(buf, len, "%s", method);
    json_decref(q);
    json_decref(cfg);
}

/* ---- ctx services --------------------------------------------------------------------- */
enum pgd_status pgd_model_raw_tensor(const struct pgd_model_ctx *ctx, const char *name,
                                     enum pgd_dtype dtype, int ndim, const int64_t *shape,
                                     struct pgd_raw_tensor *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const struct pgd__model *m = ctx->m;
    if (!m->weights)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: tensor '%s': random weights "
                        "have no checkpoint to read", m->dir, name);
    const struct pgd__st_tensor *t;
    enum pgd_status st = pgd__weights_expect(m->weights, name, dtype, ndim, shape, &t, err,
                                             errlen);
    if (st)
        return st;
    if (t->ndim > PGD_MAX_DIMS)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, more "
                        "than %d", t->path, name, t->ndim, PGD_MAX_DIMS);
    *out = (struct pgd_raw_tensor){ .data = t->data, .dtype = t->dtype, .ndim = t->ndim,
                                    .path = t->path };
    for (int i = 0; i < t->ndim; i++)
        out->shape[i] = t->shape[i];
    return PGD_OK;
}
