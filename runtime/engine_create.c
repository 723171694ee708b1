/* pgd_engine_create: the engine over the model runner (a real checkpoint) and, when the
 * model directory has a tokenizer.json, the model's tokenizer as the text path.
 *
 * PROVISIONAL (branch http): written so that `pagoda serve` can run before the engine
 * branch wires this up itself. When the engine branch defines pgd_engine_create, this file
 * goes away (drop it from Makefile.am). */
#include "runtime/engine_internal.h"
#include "runtime/runner.h"
#include "runtime/model.h"
#include <pagoda/registry.h>
#include <pagoda/tokenizer.h>
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the backend: registry + runner ------------------------------------------------- */

struct rbackend {
    struct pgd_registry *reg;          /* owned; outlives the runner */
    struct pgd__runner *runner;        /* owned */
    int32_t eos[PGD_MAX_EOS + 1];
};

static enum pgd_status rb_step(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                               const float **logits, char *err, size_t errlen)
{
    struct rbackend *b = ctx;
    return pgd__runner_step(b->runner, seqs, n_seqs, logits, err, errlen);
}

static void rb_destroy(void *ctx)
{
    struct rbackend *b = ctx;
    if (!b)
        return;
    pgd__runner_destroy(b->runner);
    pgd_registry_destroy(b->reg);
    free(b);
}

/* ---- the text path: the model's tokenizer ------------------------------------------ */

struct tio_state {
    struct pgd_detok d;
};

static enum pgd_status tio_encode(void *ctx, const char *text, bool add_special, int32_t **ids,
                                  int *n_ids, char *err, size_t errlen)
{
    struct pgd_tokens t;
    pgd_tokens_init(&t);
    enum pgd_status st = pgd_tokenizer_encode(ctx, text, strlen(text), add_special, &t, err,
                                              errlen);
    if (st != PGD_OK) {
        pgd_tokens_fini(&t);
        return st;
    }
    *ids = t.ids;              /* the array's ownership passes to the caller */
    *n_ids = (int)t.n;
    return PGD_OK;
}

static void *tio_detok_new(void *ctx, const int32_t *prompt, int n_prompt, bool skip_special)
{
    struct tio_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (pgd_detok_init(&s->d, ctx, skip_special) != PGD_OK) {
        free(s);
        return NULL;
    }
    return s;
}

static void tio_detok_push(void *state, int32_t token, const char **delta, size_t *len)
{
    struct tio_state *s = state;
    *delta = "";
    *len = 0;
    if (s && pgd_detok_push(&s->d, token, delta, len) != PGD_OK) {
        *delta = "";
        *len = 0;
    }
}

static void tio_detok_flush(void *state, const char **delta, size_t *len)
{
    struct tio_state *s = state;
    *delta = "";
    *len = 0;
    if (s && pgd_detok_flush(&s->d, delta, len) != PGD_OK) {
        *delta = "";
        *len = 0;
    }
}

static void tio_detok_free(void *state)
{
    struct tio_state *s = state;
    if (!s)
        return;
    pgd_detok_fini(&s->d);
    free(s);
}

static void tio_destroy(void *ctx) { pgd_tokenizer_destroy(ctx); }

/* ---- create ----------------------------------------------------------------------- */

enum pgd_status pgd_engine_create(const struct pgd_engine_params *p, struct pgd_engine **out,
                                  char *err, size_t errlen)
{
    *out = NULL;
    if (!p->model_dir)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: model_dir is not set");
    struct rbackend *b = calloc(1, sizeof *b);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory");
    enum pgd_status st = pgd_registry_create(&b->reg, err, errlen);
    if (st != PGD_OK) {
        free(b);
        return st;
    }
    pgd_registry_load_search_path(b->reg, p->plugin_path);
    struct pgd__runner_params rp;
    pgd__runner_default_params(&rp);
    rp.model_dir = p->model_dir;
    rp.registry = b->reg;
    rp.device = p->device;
    rp.block_size = p->block_size;
    rp.num_blocks = p->num_blocks;
    rp.kv_cache_bytes = p->kv_cache_bytes;
    rp.max_num_batched_tokens = p->max_num_batched_tokens;
    rp.max_num_seqs = p->max_num_seqs;
    st = pgd__runner_create(&rp, &b->runner, err, errlen);
    if (st != PGD_OK) {
        rb_destroy(b);
        return st;
    }
    const struct pgd__model *m = pgd__runner_model(b->runner);
    const struct pgd_model_desc *d = pgd__runner_desc(b->runner);
    int n_eos = 0;
    for (int i = 0; i < m->n_eos; i++)
        b->eos[n_eos++] = m->eos_ids[i];

    /* The tokenizer, when the checkpoint has one. */
    struct pgd_tokenizer *tok = NULL;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tokenizer.json", p->model_dir);
    if (stat(path, &sb) == 0) {
        st = pgd_tokenizer_load(p->model_dir, &tok, err, errlen);
        if (st != PGD_OK) {
            rb_destroy(b);
            return st;
        }
        int32_t te = pgd_tokenizer_eos_id(tok);
        bool seen = false;
        for (int i = 0; i < n_eos; i++)
            seen |= b->eos[i] == te;
        if (te >= 0 && !seen && te < d->vocab_size)
            b->eos[n_eos++] = te;
    }
    struct pgd__engine_backend be = {
        .ctx = b,
        .num_blocks = pgd__runner_num_blocks(b->runner),
        .block_size = pgd__runner_block_size(b->runner),
        .vocab_size = d->vocab_size,
        .max_model_len = d->max_position_embeddings,
        .eos_ids = b->eos,
        .n_eos = n_eos,
        .step = rb_step,
        .destroy = rb_destroy,
    };
    struct pgd__textio tio = {
        .ctx = tok,
        .encode = tio_encode,
        .detok_new = tio_detok_new,
        .detok_push = tio_detok_push,
        .detok_flush = tio_detok_flush,
        .detok_free = tio_detok_free,
        .destroy = tio_destroy,
    };
    return pgd__engine_create_with(p, &be, tok ? &tio : NULL, out, err, errlen);
}
