/* pgd_engine_create: the engine over a real model runner. The engine owns a plugin registry
 * (searched along params.plugin_path, PAGODA_PLUGIN_PATH, then the install directory) and
 * the runner it loads the model with. */
#include "runtime/engine/engine_internal.h"
#include "runtime/model/model.h"
#include "runtime/engine/engine_text.h"
#include <pagoda/registry.h>
#include <pagoda/log.h>
#include <stdlib.h>

struct runner_backend {
    struct pgd_registry *registry;     /* owned; outlives the runner */
    struct pgd__runner *runner;        /* owned */
};

static enum pgd_status rb_step(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                               const float **logits, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step(rb->runner, seqs, n_seqs, logits, err, errlen);
}

static enum pgd_status rb_step_sample(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                      const struct pgd__sample_row *rows,
                                      struct pgd__sample_result *res, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step_sample(rb->runner, seqs, n_seqs, rows, res, err, errlen);
}

static void rb_destroy(void *ctx)
{
    struct runner_backend *rb = ctx;
    if (!rb)
        return;
    pgd__runner_destroy(rb->runner);
    pgd_registry_destroy(rb->registry);
    free(rb);
}

const struct pgd__runner *pgd__engine_runner(const struct pgd_engine *e)
{
    const struct runner_backend *rb = pgd__engine_backend_ctx(e);
    return rb->runner;
}

enum pgd_status pgd_engine_create(const struct pgd_engine_params *p, struct pgd_engine **out,
                                  char *err, size_t errlen)
{
    *out = NULL;
    if (!p->model_dir || !*p->model_dir)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: model_dir is not set");
    struct runner_backend *rb = calloc(1, sizeof *rb);
    if (!rb)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory");
    enum pgd_status st = pgd_registry_create(&rb->registry, err, errlen);
    if (st != PGD_OK) {
        rb_destroy(rb);
        return st;
    }
    pgd_registry_load_search_path(rb->registry, p->plugin_path);
    struct pgd__runner_params rp;
    pgd__runner_default_params(&rp);
    rp.model_dir = p->model_dir;
    rp.registry = rb->registry;
    rp.device = p->device;
    rp.block_size = p->block_size;
    rp.num_blocks = p->num_blocks;
    rp.kv_cache_bytes = p->kv_cache_bytes;
    rp.max_num_batched_tokens = p->max_num_batched_tokens;
    rp.max_num_seqs = p->max_num_seqs;
    rp.dtype = p->dtype;
    rp.random_weights = p->random_weights;
    rp.seed = p->seed;
    rp.enforce_eager = p->enforce_eager;
    if (p->gpu_memory_utilization > 0)
        rp.gpu_memory_utilization = p->gpu_memory_utilization;
    st = pgd__runner_create(&rp, &rb->runner, err, errlen);
    if (st != PGD_OK) {
        rb_destroy(rb);
        return st;
    }
    const struct pgd_model_desc *d = pgd__runner_desc(rb->runner);
    const struct pgd__model *m = pgd__runner_model(rb->runner);
    struct pgd__engine_backend be = {
        .ctx = rb,
        .num_blocks = pgd__runner_num_blocks(rb->runner),
        .block_size = pgd__runner_block_size(rb->runner),
        .vocab_size = d->vocab_size,
        .max_model_len = d->max_position_embeddings,
        .sliding_window = d->sliding_window,
        .eos_ids = m->eos_ids,
        .n_eos = m->n_eos,
        .step = rb_step,
        .step_sample = rb_step_sample,
        .destroy = rb_destroy,
    };
    /* The text path: the model's tokenizer when the directory has one; without it the
     * engine serves token-id requests and refuses text prompts and stop strings. */
    struct pgd__textio tio;
    bool have_tok;
    char tok_err[1024] = "";
    st = pgd__engine_textio_load(p->model_dir, &tio, &have_tok, tok_err, sizeof tok_err);
    if (st != PGD_OK && p->tokenizer_optional) {
        /* Token ids in and out need no tokenizer: say why there is none and go on. */
        PGD_WARN("%s; serving token ids only", tok_err);
        have_tok = false;
        st = PGD_OK;
    }
    if (st != PGD_OK) {
        rb_destroy(rb);
        return pgd_errf(err, errlen, st, "%s", tok_err);
    }
    return pgd__engine_create_with(p, &be, have_tok ? &tio : NULL, out, err, errlen);
}
