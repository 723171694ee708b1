/* The Llama-family decoder (see decoder.h). */
#include "models/common/decoder.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pgd_status decoder_read_config(struct pgd_model_ctx *ctx, struct decoder_config *cfg,
                                    char *err, size_t errlen)
{
    int64_t v[8];
    const char *keys[] = { "num_hidden_layers", "hidden_size", "num_attention_heads",
                           "intermediate_size", "vocab_size" };
    enum pgd_status st;
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < 5; i++) {
        if ((st = pgd_config_int(ctx, keys[i], &v[i], err, errlen)))
            return st;
        if (v[i] <= 0 || v[i] > (1 << 24))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: \"%s\" = %lld is out "
                            "of range", pgd_model_dir(ctx), keys[i], (long long)v[i]);
    }
    cfg->n_layers = (int)v[0];
    cfg->hidden = (int)v[1];
    cfg->n_heads = (int)v[2];
    cfg->inter = (int)v[3];
    cfg->vocab = (int)v[4];
    int64_t kv, hd, maxpos;
    if ((st = pgd_config_int_or(ctx, "num_key_value_heads", cfg->n_heads, &kv, err, errlen)) ||
        (st = pgd_config_int_or(ctx, "head_dim", cfg->hidden / cfg->n_heads, &hd, err, errlen)) ||
        (st = pgd_config_int_or(ctx, "max_position_embeddings", 4096, &maxpos, err, errlen)))
        return st;
    if (kv <= 0 || cfg->n_heads % kv || hd <= 0 || hd > 1024 || maxpos <= 0)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: num_key_value_heads %lld "
                        "must divide num_attention_heads %d; head_dim %lld in 1..1024",
                        pgd_model_dir(ctx), (long long)kv, cfg->n_heads, (long long)hd);
    cfg->n_kv_heads = (int)kv;
    cfg->head_dim = (int)hd;
    cfg->max_pos = (int)maxpos;
    double eps;
    if ((st = pgd_config_num_or(ctx, "rms_norm_eps", 1e-6, &eps, err, errlen)))
        return st;
    cfg->eps = (float)eps;
    if ((st = pgd_config_bool_or(ctx, "tie_word_embeddings", false, &cfg->tied, err, errlen)))
        return st;
    if ((st = pgd_config_act(ctx, "hidden_act", PGD_ACT_SILU, &cfg->act, err, errlen)))
        return st;
    return pgd_config_rope(ctx, cfg->head_dim, &cfg->rope, err, errlen);
}

enum pgd_status decoder_read_windows(struct pgd_model_ctx *ctx, struct decoder_config *cfg,
                                     bool **slides, char *err, size_t errlen)
{
    *slides = NULL;
    int64_t window = 0, first_sliding;
    bool use = true;
    enum pgd_status st;
    if ((st = pgd_config_int_or(ctx, "sliding_window", 0, &window, err, errlen)) ||
        (st = pgd_config_bool_or(ctx, "use_sliding_window", true, &use, err, errlen)) ||
        (st = pgd_config_int_or(ctx, "max_window_layers", 0, &first_sliding, err, errlen)))
        return st;
    if (window < 0)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: sliding_window %lld < 0",
                        pgd_model_dir(ctx), (long long)window);
    bool *sl = calloc((size_t)cfg->n_layers, sizeof *sl);
    if (!sl)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    int n_sliding = 0;
    if (pgd_config_has(ctx, "layer_types") && !pgd_config_is_null(ctx, "layer_types")) {
        char key[64];
        for (int l = 0; l < cfg->n_layers; l++) {
            snprintf(key, sizeof key, "layer_types.%d", l);
            const char *t = pgd_config_str(ctx, key);
            if (!t || (strcmp(t, "sliding_attention") && strcmp(t, "full_attention"))) {
                free(sl);
                return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: layer_types[%d] must "
                                "be \"full_attention\" or \"sliding_attention\" (one per layer)",
                                pgd_model_dir(ctx), l);
            }
            sl[l] = !strcmp(t, "sliding_attention");
        }
    } else {
        for (int l = 0; l < cfg->n_layers; l++)
            sl[l] = use && l >= first_sliding;
    }
    for (int l = 0; l < cfg->n_layers; l++)
        n_sliding += sl[l];
    if (n_sliding > 0 && window == 0) {
        free(sl);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s/config.json: layers use sliding attention "
                        "but sliding_window is not set", pgd_model_dir(ctx));
    }
    cfg->sliding_window = n_sliding ? (int)window : 0;
    if (n_sliding == 0 || n_sliding == cfg->n_layers) {
        free(sl);
    } else {
        *slides = sl;
        cfg->layer_slides = sl;
    }
    return PGD_OK;
}

static enum pgd_status load_norm(struct pgd_model_ctx *ctx, const char *name, int64_t d,
                                 struct pgd_tensor *out, char *err, size_t errlen)
{
    return pgd_model_load_tensor(ctx, name, 1, &d, out, err, errlen);
}

/* This rank's share (struct decoder_shard) of a model of c's sizes split over size ranks;
 * sizes that do not split evenly are refused, naming them. */
static enum pgd_status plan_shard(struct pgd_model_ctx *ctx, const struct decoder_config *c,
                                  struct decoder_shard *s, char *err, size_t errlen)
{
    int n = pgd_model_tp_size(ctx), r = pgd_model_tp_rank(ctx);
    *s = (struct decoder_shard){ .rank = r, .size = n };
    if (c->n_heads % n || c->inter % n || (c->n_kv_heads % n && n % c->n_kv_heads))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: tensor_parallel_size "
                        "%d must divide num_attention_heads %d and intermediate_size %d, and "
                        "divide or be a multiple of num_key_value_heads %d", pgd_model_dir(ctx),
                        n, c->n_heads, c->inter, c->n_kv_heads);
    s->heads = c->n_heads / n;
    s->inter = c->inter / n;
    if (c->n_kv_heads % n == 0) {
        s->kv_heads = c->n_kv_heads / n;
        s->kv_head0 = r * s->kv_heads;
    } else {
        /* Fewer KV heads than ranks: n / KV ranks share (replicate) each KV head, the one
         * their query heads read. */
        s->kv_heads = 1;
        s->kv_head0 = r / (n / c->n_kv_heads);
    }
    int64_t chunk = (c->vocab + n - 1) / n;
    s->vocab0 = chunk * r;
    s->vocab_rows = c->vocab - s->vocab0 < chunk ? c->vocab - s->vocab0 : chunk;
    if (s->vocab_rows <= 0)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s/config.json: vocab_size %d is too "
                        "small for tensor_parallel_size %d", pgd_model_dir(ctx), c->vocab, n);
    return PGD_OK;
}

/* A linear layer: whole when the model is not split (pgd_model_load_linear), else this
 * rank's shard sh (in and outs are then the shard's sizes). full_in / full_outs are the
 * checkpoint's. */
static enum pgd_status load_linear(struct pgd_model_ctx *ctx, const struct decoder_shard *s,
                                   const char *const *parts, int n_parts, int64_t full_in,
                                   const int64_t *full_outs, int64_t in, const int64_t *outs,
                                   bool bias, const struct pgd_shard *sh, struct pgd_linear *out,
                                   char *err, size_t errlen)
{
    if (s->size == 1)
        return pgd_model_load_linear(ctx, parts, n_parts, full_in, full_outs, bias, out, err,
                                     errlen);
    return pgd_model_load_linear_shard(ctx, parts, n_parts, in, outs, bias, sh, out, err, errlen);
}

/* q, k, v (column-parallel: this rank's heads) and o (row-parallel: the same heads' input
 * columns; its bias on rank 0 only, added once by the all-reduce). */
static enum pgd_status load_attention(struct pgd_model_ctx *ctx, const struct decoder_config *c,
                                      const struct decoder_shard *s, int l,
                                      struct decoder_layer *L, char *err, size_t errlen)
{
    char p[160];
    const char *parts[1] = { p };
    enum pgd_status st;
    int64_t D = c->head_dim, q_full = c->n_heads * D, kv_full = c->n_kv_heads * D;
    int64_t q_loc = s->heads * D, kv_loc = s->kv_heads * D;
    int64_t q_row0 = s->rank * q_loc, kv_row0 = s->kv_head0 * D;
    const char *proj[3] = { "q_proj", "k_proj", "v_proj" };
    struct pgd_linear *lin[3] = { &L->q, &L->k, &L->v };
    if (s->size == 1) {
        /* Whole: side by side in memory where that lets them run as one GEMM */
        char qkv[3][160];
        const char *names[3] = { qkv[0], qkv[1], qkv[2] };
        for (int i = 0; i < 3; i++)
            snprintf(qkv[i], sizeof qkv[i], "model.layers.%d.self_attn.%s", l, proj[i]);
        struct pgd_linear got[3];
        if ((st = pgd_model_load_linears(ctx, names, 3, c->hidden,
                                         (int64_t[]){ q_full, kv_full, kv_full }, c->qkv_bias,
                                         got, err, errlen)))
            return st;
        for (int i = 0; i < 3; i++)
            *lin[i] = got[i];
    } else {
        /* Split: this rank's rows of each */
        for (int i = 0; i < 3; i++) {
            int64_t full = i ? kv_full : q_full, loc = i ? kv_loc : q_loc;
            int64_t row0 = i ? kv_row0 : q_row0;
            struct pgd_shard sh = { .kind = PGD_SHARD_ROWS, .full_out = &full, .row0 = &row0 };
            snprintf(p, sizeof p, "model.layers.%d.self_attn.%s", l, proj[i]);
            if ((st = load_linear(ctx, s, parts, 1, c->hidden, &full, c->hidden, &loc,
                                  c->qkv_bias, &sh, lin[i], err, errlen)))
                return st;
        }
    }
    int64_t hid = c->hidden;
    struct pgd_shard sh = { .kind = PGD_SHARD_COLS, .full_in = q_full, .col0 = q_row0,
                            .with_bias = s->rank == 0 };
    snprintf(p, sizeof p, "model.layers.%d.self_attn.o_proj", l);
    return load_linear(ctx, s, parts, 1, q_full, &hid, q_loc, &hid, c->o_bias, &sh, &L->o, err,
                       errlen);
}

/* gate/up fused (column-parallel: this rank's features of each) and down (row-parallel); in
 * one process through pgd_model_load_mlp, which folds an act-order down_proj's permutation
 * into gate/up's output order. */
static enum pgd_status load_mlp(struct pgd_model_ctx *ctx, const struct decoder_config *c,
                                const struct decoder_shard *s, int l, struct decoder_layer *L,
                                char *err, size_t errlen)
{
    char p[3][160];
    snprintf(p[0], sizeof p[0], "model.layers.%d.mlp.gate_proj", l);
    snprintf(p[1], sizeof p[1], "model.layers.%d.mlp.up_proj", l);
    snprintf(p[2], sizeof p[2], "model.layers.%d.mlp.down_proj", l);
    const char *gu_parts[2] = { p[0], p[1] }, *down_parts[1] = { p[2] };
    /* One process: act-order down_proj's permutation folded into gate/up's output order */
    if (s->size == 1)
        return pgd_model_load_mlp(ctx, gu_parts, 2, p[2], c->hidden, c->inter, c->mlp_bias,
                                  &L->gate_up, &L->down, err, errlen);
    int64_t full[2] = { c->inter, c->inter }, loc[2] = { s->inter, s->inter };
    int64_t row0[2] = { (int64_t)s->rank * s->inter, (int64_t)s->rank * s->inter };
    struct pgd_shard gu = { .kind = PGD_SHARD_ROWS, .full_out = full, .row0 = row0 };
    enum pgd_status st = load_linear(ctx, s, gu_parts, 2, c->hidden, full, c->hidden, loc,
                                     c->mlp_bias, &gu, &L->gate_up, err, errlen);
    if (st)
        return st;
    int64_t hid = c->hidden;
    struct pgd_shard down = { .kind = PGD_SHARD_COLS, .full_in = c->inter, .col0 = row0[0],
                              .with_bias = s->rank == 0 };
    return load_linear(ctx, s, down_parts, 1, c->inter, &hid, s->inter, &hid, c->mlp_bias, &down,
                       &L->down, err, errlen);
}

static enum pgd_status load_layer(struct pgd_model_ctx *ctx, const struct decoder_config *c,
                                  const struct decoder_shard *s, int l, struct decoder_layer *L,
                                  char *err, size_t errlen)
{
    char name[200];
    enum pgd_status st;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    if ((st = load_norm(ctx, name, c->hidden, &L->in_norm, err, errlen)))
        return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if ((st = load_norm(ctx, name, c->hidden, &L->post_norm, err, errlen)))
        return st;
    if ((st = load_attention(ctx, c, s, l, L, err, errlen)))
        return st;
    if (c->qk_norm) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
        if ((st = load_norm(ctx, name, c->head_dim, &L->q_norm, err, errlen)))
            return st;
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
        if ((st = load_norm(ctx, name, c->head_dim, &L->k_norm, err, errlen)))
            return st;
    }
    return load_mlp(ctx, c, s, l, L, err, errlen);
}

/* The embedding and the LM head: whole, or this rank's rows of the vocabulary. */
static enum pgd_status load_vocab(struct pgd_model_ctx *ctx, const struct decoder_config *cfg,
                                  struct decoder *d, char *err, size_t errlen)
{
    const struct decoder_shard *s = &d->shard;
    int64_t shape[2] = { cfg->vocab, cfg->hidden };
    enum pgd_status st =
        s->size == 1 ? pgd_model_load_tensor(ctx, "model.embed_tokens.weight", 2, shape, &d->embed,
                                             err, errlen)
                     : pgd_model_load_tensor_rows(ctx, "model.embed_tokens.weight", 2, shape,
                                                  s->vocab0, s->vocab_rows, &d->embed, err,
                                                  errlen);
    if (st)
        return st;
    if (cfg->tied) {
        d->lm_head = pgd_linear_from_tensor(&d->embed);
        return PGD_OK;
    }
    const char *head = "lm_head";
    int64_t vocab = cfg->vocab;
    if (s->size == 1)
        return pgd_model_load_linear(ctx, &head, 1, cfg->hidden, &vocab, false, &d->lm_head, err,
                                     errlen);
    return pgd_model_load_linear_rows(ctx, head, cfg->hidden, vocab, s->vocab0, s->vocab_rows,
                                      false, &d->lm_head, err, errlen);
}

enum pgd_status decoder_load(struct pgd_model_ctx *ctx, const struct decoder_config *cfg,
                             struct pgd_model_desc *desc, struct decoder **out, char *err,
                             size_t errlen)
{
    struct decoder *d = calloc(1, sizeof *d);
    if (!d)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    d->cfg = *cfg;
    d->layers = calloc((size_t)cfg->n_layers, sizeof *d->layers);
    d->attn = calloc((size_t)cfg->n_layers, sizeof *d->attn);
    enum pgd_status st = d->layers && d->attn ? PGD_OK : PGD_ERR_NOMEM;
    if (st)
        pgd_errf(err, errlen, st, "out of memory");
    if (!st)
        st = plan_shard(ctx, cfg, &d->shard, err, errlen);
    if (!st)
        st = pgd_rope_init(&d->rope, &cfg->rope, err, errlen);
    if (!st)
        st = load_vocab(ctx, cfg, d, err, errlen);
    if (!st)
        st = load_norm(ctx, "model.norm.weight", cfg->hidden, &d->final_norm, err, errlen);
    for (int l = 0; !st && l < cfg->n_layers; l++)
        st = load_layer(ctx, cfg, &d->shard, l, &d->layers[l], err, errlen);
    if (st) {
        decoder_destroy(d);
        return st;
    }
    /* The widest window any layer uses, or 0 when some layer sees everything. */
    int widest = cfg->sliding_window;
    for (int l = 0; l < cfg->n_layers; l++) {
        bool slides = cfg->sliding_window > 0 && (!cfg->layer_slides || cfg->layer_slides[l]);
        d->attn[l] = (struct pgd_attn_params){
            .n_heads = d->shard.heads, .n_kv_heads = d->shard.kv_heads,
            .head_dim = cfg->head_dim, .scale = (float)(1.0 / sqrt((double)cfg->head_dim)),
            .sliding_window = slides ? cfg->sliding_window : 0 };
        if (!slides)
            widest = 0;
    }
    d->cfg.layer_slides = NULL;
    /* The KV cache holds this rank's KV heads; the logits are whole (gathered). */
    *desc = (struct pgd_model_desc){ .n_layers = cfg->n_layers, .n_kv_heads = d->shard.kv_heads,
                                     .head_dim = cfg->head_dim, .hidden_size = cfg->hidden,
                                     .vocab_size = cfg->vocab,
                                     .max_position_embeddings = cfg->max_pos,
                                     .sliding_window = widest };
    *out = d;
    return PGD_OK;
}

void decoder_forward(void *model, struct pgd_fwd *f)
{
    const struct decoder *d = model;
    const struct decoder_config *c = &d->cfg;
    const struct decoder_shard *s = &d->shard;
    int n = pgd_fwd_n_tokens(f);
    /* This rank's widths (the whole model's when it is not split). */
    int64_t qd = (int64_t)s->heads * c->head_dim, kvd = (int64_t)s->kv_heads * c->head_dim;
    /* Activations, reused by every layer. */
    struct pgd_tensor h = pgd_fwd_alloc(f, n, c->hidden);        /* the residual stream */
    struct pgd_tensor x = pgd_fwd_alloc(f, n, c->hidden);        /* normed input of a block */
    struct pgd_tensor q = pgd_fwd_alloc(f, n, qd);
    struct pgd_tensor k = pgd_fwd_alloc(f, n, kvd);
    struct pgd_tensor v = pgd_fwd_alloc(f, n, kvd);
    struct pgd_tensor attn = pgd_fwd_alloc(f, n, qd);
    struct pgd_tensor proj = pgd_fwd_alloc(f, n, c->hidden);     /* o_proj / down_proj out */
    struct pgd_tensor gate_up = pgd_fwd_alloc(f, n, 2 * (int64_t)s->inter); /* scratch */
    struct pgd_tensor act = pgd_fwd_alloc(f, n, s->inter);
    if (pgd_fwd_failed(f))
        return;

    if (s->size == 1) {
        pgd_op_embed(f, &d->embed, &h);
    } else {
        /* Each rank looks up the tokens of its vocabulary rows (zeros elsewhere): the sum is
         * the lookup. */
        pgd_op_embed_shard(f, &d->embed, s->vocab0, &h);
        pgd_op_all_reduce(f, &h);
    }
    pgd_op_rmsnorm(f, &h, &d->layers[0].in_norm, c->eps, &x);
    for (int l = 0; l < c->n_layers; l++) {
        const struct decoder_layer *L = &d->layers[l];
        pgd_op_linear_multi(f, 3, (const struct pgd_linear *const[]){ &L->q, &L->k, &L->v }, &x,
                            (struct pgd_tensor *const[]){ &q, &k, &v });
        pgd_op_rope_attention(f, l, &d->attn[l], &d->rope, c->qk_norm ? &L->q_norm : NULL,
                              c->qk_norm ? &L->k_norm : NULL, c->eps, &q, &k, &v, &attn);
        pgd_op_linear(f, &L->o, &attn, &proj);          /* a partial sum over this rank's heads */
        pgd_op_all_reduce(f, &proj);
        pgd_op_add_rmsnorm(f, &h, &proj, &L->post_norm, c->eps, &x);
        pgd_op_linear_act_mul(f, &L->gate_up, c->act, &x, &gate_up, &act);
        pgd_op_linear(f, &L->down, &act, &proj);        /* a partial sum over its features */
        pgd_op_all_reduce(f, &proj);
        const struct pgd_tensor *next_norm =
            l + 1 < c->n_layers ? &d->layers[l + 1].in_norm : &d->final_norm;
        pgd_op_add_rmsnorm(f, &h, &proj, next_norm, c->eps, &x);
    }
    pgd_op_logits(f, &x, &d->lm_head);                  /* gathered over the vocabulary */
}

void decoder_destroy(void *model)
{
    struct decoder *d = model;
    if (!d)
        return;
    pgd_rope_fini(&d->rope);
    free(d->attn);
    free(d->layers);
    free(d);
}
