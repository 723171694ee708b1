/* compressed-tensors' quantization_config (quant_method "compressed-tensors", as
 * llm-compressor writes it and vLLM loads it): the config groups, each a scheme (how its
 * layers' weights and activations are quantized) with the layers it targets, and the ignore
 * list. ct_config_read checks every setting pagoda must understand and refuses the rest with
 * a message naming the key; ct_scheme_of says which scheme a layer has (NULL: dense). */
#ifndef PGD_PLUGINS_QUANT_CT_SCHEME_H
#define PGD_PLUGINS_QUANT_CT_SCHEME_H

#include <pagoda/plugin.h>
#include <stdbool.h>
#include <stdint.h>

/* Module names, as targets or ignore entries: "re:PATTERN" is a regular expression matched
 * from the start of the name (Python's re.match, as compressed-tensors and vLLM do); any
 * other entry names one module exactly. "Linear" is the class every layer pagoda asks about
 * has: a target naming it takes every linear layer no name target took. */
struct ct_names {
    char **names;              /* [n], owned */
    void **regex;              /* [n] pcre2_code*, NULL for a plain name */
    int n;
    bool linear;               /* the class target "Linear" */
};

enum ct_kind {
    CT_WQ = 1,                 /* "pack-quantized" int weights, 16-bit activations */
    CT_FP8 = 2,                /* "float-quantized" e4m3 weights and activations */
};

struct ct_scheme {
    char *group;               /* its config_groups name (for messages), owned */
    enum ct_kind kind;
    int bits;                  /* CT_WQ: 4 or 8 */
    int64_t group_size;        /* CT_WQ: -1 for strategy "channel" */
    bool symmetric;            /* CT_WQ: false: weight_zero_point is stored */
    bool g_idx;                /* CT_WQ: actorder "group": weight_g_idx is stored */
    bool per_channel;          /* CT_FP8: strategy "channel" (weight_scale [out, 1]) */
    bool static_input;         /* CT_FP8: a static input_scale is stored (read, unused:
                                  activations get a dynamic scale per token) */
    struct ct_names targets;
};

struct ct_config {
    struct ct_scheme *schemes; /* [n], in config_groups' order */
    int n;
    struct ct_names ignore;
};

/* Reads and checks quantization_config into *cfg (freed with ct_config_free, also on error).
 * Supported: quantization_status "compressed"; format (top level or per group)
 * "pack-quantized" with int weights of 4 or 8 bits, strategy "group" or "channel",
 * symmetric or not, actorder null/"weight"/"group", no input activations (W4A16, W8A16);
 * "float-quantized" with 8-bit float weights of strategy "tensor" or "channel" and 8-bit
 * float input activations (dynamic per token, or static per tensor: run per token); an
 * empty sparsity_config (or format "dense") and transform_config. Anything else is
 * PGD_ERR_UNSUPPORTED naming the key and the value. */
enum pgd_status ct_config_read(const struct pgd_model_ctx *ctx, struct ct_config *cfg,
                               char *err, size_t errlen);
void ct_config_free(struct ct_config *cfg);

/* The scheme of the linear layer at prefix: none when ignored; else the first group (in
 * config_groups' order) with a target naming it (exactly or by regex), else (but for the LM
 * head, which is no Linear) the first with the class target "Linear"; none when no group
 * targets it. */
const struct ct_scheme *ct_scheme_of(const struct ct_config *cfg, const char *prefix);

#endif
