/* An architecture plugin for Phi-3 (Phi3ForCausalLM), written against the installed pagoda
 * headers only: the worked example of docs/PLUGINS.md.
 *
 * Phi-3 is a pre-norm decoder like Llama, with two differences in its checkpoint: the
 * attention projections are one fused tensor, qkv_proj [(H + 2 KV) * D, hidden] (q rows,
 * then k rows, then v rows), and the MLP's gate and up projections are one tensor,
 * gate_up_proj [2 I, hidden] (gate rows first). The ops take q, k and v as separate
 * tensors, so qkv_proj is split into three linear layers at load time with
 * pgd_model_load_linear_rows; gate_up_proj is already the layout pgd_op_act_mul wants.
 *
 * Supported: RMSNorm, SiLU, grouped-query attention, rotary embeddings of type default,
 * linear or llama3 with partial_rotary_factor, a sliding window, tied or untied embeddings.
 * Refused, with a message naming the key: longrope ("su") rope scaling (the 128k-context
 * checkpoints), any other hidden_act, and every config key this file does not know. */
#include <pagoda/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration -------------------------------------------------------------------- */

struct phi3_config {
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, inter, vocab, max_pos;
    int sliding_window;       /* 0 = full attention */
    float eps;                /* rms_norm_eps */
    bool tied;                /* lm_head is the embedding matrix */
    struct pgd_rope_config rope;
};

/* Every top-level config.json key this plugin reads, or knows to leave the math alone.
 * pgd_config_check_keys refuses any other key (beyond pagoda's own list of math-neutral
 * ones: ids, dtypes, dropout rates, ...) rather than silently computing something else. */
static const char *const phi3_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "hidden_act", "tie_word_embeddings", "sliding_window",
    "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor",
    /* Only longrope reads it, and longrope is refused below. */
    "original_max_position_embeddings",
    NULL,
};

/* Refuses the rope types Phi-3's long-context checkpoints use, before pgd_config_rope would
 * refuse them in more general words. transformers >= 5 writes "rope_parameters"; older
 * checkpoints have "rope_scaling" with "type" or "rope_type". */
static enum pgd_status refuse_longrope(struct pgd_model_ctx *ctx, char *err, size_t errlen)
{
    static const char *const where[] = { "rope_parameters.rope_type", "rope_scaling.rope_type",
                                         "rope_scaling.type" };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        const char *type = pgd_config_str(ctx, where[i]);
        if (type && (!strcmp(type, "longrope") || !strcmp(type, "su")))
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                            "%s/config.json: %s \"%s\" (the long-context rope of Phi-3 128k "
                            "and Phi-3.5 checkpoints) is not supported by the phi3 plugin; the "
                            "4k-context checkpoints (no rope scaling) are",
                            pgd_model_dir(ctx), where[i], type);
    }
    return PGD_OK;
}

/* An integer in [lo, hi]; `dflt` < 0 makes the key required. */
static enum pgd_status read_int(struct pgd_model_ctx *ctx, const char *key, int64_t dflt,
                                int64_t lo, int64_t hi, int *out, char *err, size_t errlen)
{
    int64_t v;
    enum pgd_status st = dflt < 0 ? pgd_config_int(ctx, key, &v, err, errlen)
                                  : pgd_config_int_or(ctx, key, dflt, &v, err, errlen);
    if (st)
        return st;
    if (v < lo || v > hi)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"%s\" = %lld is not in "
                        "%lld..%lld", pgd_model_dir(ctx), key, (long long)v, (long long)lo,
                        (long long)hi);
    *out = (int)v;
    return PGD_OK;
}

static enum pgd_status phi3_read_config(struct pgd_model_ctx *ctx, struct phi3_config *c,
                                        char *err, size_t errlen)
{
    enum pgd_status st;
    const int64_t big = 1 << 24;
    memset(c, 0, sizeof *c);
    if ((st = pgd_config_check_keys(ctx, phi3_keys, err, errlen)) ||
        (st = refuse_longrope(ctx, err, errlen)) ||
        (st = read_int(ctx, "num_hidden_layers", -1, 1, 4096, &c->n_layers, err, errlen)) ||
        (st = read_int(ctx, "hidden_size", -1, 1, big, &c->hidden, err, errlen)) ||
        (st = read_int(ctx, "intermediate_size", -1, 1, big, &c->inter, err, errlen)) ||
        (st = read_int(ctx, "vocab_size", -1, 1, big, &c->vocab, err, errlen)) ||
        (st = read_int(ctx, "num_attention_heads", -1, 1, 4096, &c->n_heads, err, errlen)) ||
        (st = read_int(ctx, "num_key_value_heads", c->n_heads, 1, c->n_heads, &c->n_kv_heads,
                       err, errlen)) ||
        (st = read_int(ctx, "head_dim", c->hidden / c->n_heads, 1, 1024, &c->head_dim, err,
                       errlen)) ||
        (st = read_int(ctx, "max_position_embeddings", 4096, 1, big, &c->max_pos, err,
                       errlen)) ||
        (st = read_int(ctx, "sliding_window", 0, 0, big, &c->sliding_window, err, errlen)))
        return st;
    if (c->n_heads % c->n_kv_heads)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: num_key_value_heads %d "
                        "does not divide num_attention_heads %d", pgd_model_dir(ctx),
                        c->n_kv_heads, c->n_heads);

    double eps;
    if ((st = pgd_config_num_or(ctx, "rms_norm_eps", 1e-5, &eps, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, "tie_word_embeddings", false, &c->tied, err, errlen)))
        return st;
    if (!(eps > 0))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"rms_norm_eps\" must be "
                        "> 0", pgd_model_dir(ctx));
    c->eps = (float)eps;

    const char *act = pgd_config_str(ctx, "hidden_act");
    if (act && strcmp(act, "silu") != 0)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: hidden_act \"%s\" is "
                        "not supported by the phi3 plugin (silu)", pgd_model_dir(ctx), act);

    /* rope_theta, the scaling type and partial_rotary_factor (rotary_dim = the leading
     * head_dim * factor dims of each head rotate, the rest pass through). */
    return pgd_config_rope(ctx, c->head_dim, &c->rope, err, errlen);
}

/* ---- weights -------------------------------------------------------------------------- */

struct phi3_layer {
    struct pgd_tensor in_norm, post_norm;   /* [hidden] */
    struct pgd_linear q, k, v;              /* rows of qkv_proj: [H*D | KV*D | KV*D, hidden] */
    struct pgd_linear o;                    /* [hidden, H*D] */
    struct pgd_linear gate_up;              /* [2I, hidden], gate rows first */
    struct pgd_linear down;                 /* [hidden, I] */
};

struct phi3_model {
    struct phi3_config cfg;
    struct pgd_attn_params attn;
    struct pgd_rope rope;                   /* owned: pgd_rope_fini */
    struct pgd_tensor embed;                /* [vocab, hidden] */
    struct pgd_tensor final_norm;           /* [hidden] */
    struct pgd_linear lm_head;              /* [vocab, hidden]; the embedding when tied */
    struct phi3_layer *layers;              /* [n_layers], owned */
};

static enum pgd_status load_norm(struct pgd_model_ctx *ctx, const char *name, int64_t d,
                                 struct pgd_tensor *out, char *err, size_t errlen)
{
    return pgd_model_load_tensor(ctx, name, 1, &d, out, err, errlen);
}

static enum pgd_status load_layer(struct pgd_model_ctx *ctx, const struct phi3_config *c, int l,
                                  struct phi3_layer *L, char *err, size_t errlen)
{
    char name[256], prefix[256];
    enum pgd_status st;
    const int64_t hidden = c->hidden, inter = c->inter;
    const int64_t q_rows = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_rows = (int64_t)c->n_kv_heads * c->head_dim;

    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    if ((st = load_norm(ctx, name, hidden, &L->in_norm, err, errlen)))
        return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if ((st = load_norm(ctx, name, hidden, &L->post_norm, err, errlen)))
        return st;

    /* The fused projection, split into the three layers the ops take. */
    snprintf(prefix, sizeof prefix, "model.layers.%d.self_attn.qkv_proj", l);
    const int64_t qkv_rows = q_rows + 2 * kv_rows;
    if ((st = pgd_model_load_linear_rows(ctx, prefix, hidden, qkv_rows, 0, q_rows, false,
                                         &L->q, err, errlen)) ||
        (st = pgd_model_load_linear_rows(ctx, prefix, hidden, qkv_rows, q_rows, kv_rows, false,
                                         &L->k, err, errlen)) ||
        (st = pgd_model_load_linear_rows(ctx, prefix, hidden, qkv_rows, q_rows + kv_rows,
                                         kv_rows, false, &L->v, err, errlen)))
        return st;

    /* pgd_model_load_linear takes a list of prefixes to fuse; these layers have one. */
    const char *part = prefix;
    snprintf(prefix, sizeof prefix, "model.layers.%d.self_attn.o_proj", l);
    if ((st = pgd_model_load_linear(ctx, &part, 1, q_rows, &hidden, false, &L->o, err, errlen)))
        return st;

    /* gate_up_proj is one tensor of 2I rows: exactly what pgd_op_act_mul expects. */
    snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.gate_up_proj", l);
    const int64_t gate_up_rows = 2 * inter;
    if ((st = pgd_model_load_linear(ctx, &part, 1, hidden, &gate_up_rows, false, &L->gate_up,
                                    err, errlen)))
        return st;
    snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.down_proj", l);
    return pgd_model_load_linear(ctx, &part, 1, inter, &hidden, false, &L->down, err, errlen);
}

static void phi3_destroy(void *model)
{
    struct phi3_model *m = model;
    if (!m)
        return;
    pgd_rope_fini(&m->rope);
    free(m->layers);      /* the tensors themselves belong to the runtime */
    free(m);
}

static enum pgd_status phi3_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                 void **model, char *err, size_t errlen)
{
    struct phi3_model *m = calloc(1, sizeof *m);
    if (!m)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "phi3: out of memory");
    enum pgd_status st = phi3_read_config(ctx, &m->cfg, err, errlen);
    const struct phi3_config *c = &m->cfg;
    if (!st && !(m->layers = calloc((size_t)c->n_layers, sizeof *m->layers)))
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "phi3: out of memory");
    if (!st)
        st = pgd_rope_init(&m->rope, &c->rope, err, errlen);
    if (!st)
        st = pgd_model_load_tensor(ctx, "model.embed_tokens.weight", 2,
                                   (int64_t[]){ c->vocab, c->hidden }, &m->embed, err, errlen);
    if (!st)
        st = load_norm(ctx, "model.norm.weight", c->hidden, &m->final_norm, err, errlen);
    for (int l = 0; !st && l < c->n_layers; l++)
        st = load_layer(ctx, c, l, &m->layers[l], err, errlen);
    if (!st && c->tied) {
        m->lm_head = pgd_linear_from_tensor(&m->embed);
    } else if (!st) {
        const char *head = "lm_head";
        const int64_t vocab = c->vocab;
        st = pgd_model_load_linear(ctx, &head, 1, c->hidden, &vocab, false, &m->lm_head, err,
                                   errlen);
    }
    if (st) {
        phi3_destroy(m);
        return st;
    }
    m->attn = (struct pgd_attn_params){
        .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
        .scale = (float)(1.0 / sqrt((double)c->head_dim)), .sliding_window = c->sliding_window,
    };
    /* What the runtime sizes the paged KV cache and the logits by. */
    *desc = (struct pgd_model_desc){
        .n_layers = c->n_layers, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
        .hidden_size = c->hidden, .vocab_size = c->vocab,
        .max_position_embeddings = c->max_pos, .sliding_window = c->sliding_window,
    };
    *model = m;
    return PGD_OK;
}

/* ---- the forward pass ----------------------------------------------------------------- */

/* One step over the flat batch of n tokens. Every activation comes from the step's arena
 * (pgd_fwd_alloc: no malloc, nothing to free); an op that fails records the error in f and
 * the ops after it do nothing, so the body needs no error checks. */
static void phi3_forward(void *model, struct pgd_fwd *f)
{
    const struct phi3_model *m = model;
    const struct phi3_config *c = &m->cfg;
    const int n = pgd_fwd_n_tokens(f);
    const int64_t qd = (int64_t)c->n_heads * c->head_dim;
    const int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim;

    struct pgd_tensor h = pgd_fwd_alloc(f, n, c->hidden);       /* the residual stream */
    struct pgd_tensor x = pgd_fwd_alloc(f, n, c->hidden);       /* a block's normed input */
    struct pgd_tensor q = pgd_fwd_alloc(f, n, qd);
    struct pgd_tensor k = pgd_fwd_alloc(f, n, kvd);
    struct pgd_tensor v = pgd_fwd_alloc(f, n, kvd);
    struct pgd_tensor attn = pgd_fwd_alloc(f, n, qd);
    struct pgd_tensor proj = pgd_fwd_alloc(f, n, c->hidden);    /* o_proj / down_proj out */
    struct pgd_tensor gate_up = pgd_fwd_alloc(f, n, 2 * (int64_t)c->inter);
    struct pgd_tensor act = pgd_fwd_alloc(f, n, c->inter);
    if (pgd_fwd_failed(f))
        return;

    pgd_op_embed(f, &m->embed, &h);
    pgd_op_rmsnorm(f, &h, &m->layers[0].in_norm, c->eps, &x);
    for (int l = 0; l < c->n_layers; l++) {
        const struct phi3_layer *L = &m->layers[l];
        /* attention: x -> q, k, v -> rope -> paged attention -> o_proj */
        pgd_op_linear(f, &L->q, &x, &q);
        pgd_op_linear(f, &L->k, &x, &k);
        pgd_op_linear(f, &L->v, &x, &v);
        pgd_op_rope(f, &m->rope, &q, &k);
        pgd_op_attention(f, l, &m->attn, &q, &k, &v, &attn);
        pgd_op_linear(f, &L->o, &attn, &proj);
        /* h += attention; x = post_attention_layernorm(h) */
        pgd_op_add_rmsnorm(f, &h, &proj, &L->post_norm, c->eps, &x);
        /* MLP: down(silu(gate) * up) */
        pgd_op_linear(f, &L->gate_up, &x, &gate_up);
        pgd_op_act_mul(f, PGD_ACT_SILU, &gate_up, &act);
        pgd_op_linear(f, &L->down, &act, &proj);
        /* h += mlp; x = the next block's input norm (or the final norm) of h */
        const struct pgd_tensor *next_norm =
            l + 1 < c->n_layers ? &m->layers[l + 1].in_norm : &m->final_norm;
        pgd_op_add_rmsnorm(f, &h, &proj, next_norm, c->eps, &x);
    }
    pgd_op_logits(f, &x, &m->lm_head);
}

/* ---- the descriptor ------------------------------------------------------------------- */

static const char *const phi3_archs[] = { "Phi3ForCausalLM", NULL };

static const struct pgd_arch_ops phi3_ops = {
    .struct_size = sizeof(struct pgd_arch_ops),
    .architectures = phi3_archs,
    .load = phi3_load,
    .forward = phi3_forward,
    .destroy = phi3_destroy,
};

static const struct pgd_plugin phi3_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "phi3",
    .version = "0.1.0",
    .description = "Phi-3 decoder (Phi3ForCausalLM): fused qkv_proj and gate_up_proj "
                   "(out-of-tree example)",
    .arch = &phi3_ops,
};

/* The one exported symbol. The host checks abi_version itself (and names both versions
 * when they differ), so the plugin returns its descriptor whatever host_abi is. */
PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    (void)host_abi;
    return &phi3_plugin;
}
