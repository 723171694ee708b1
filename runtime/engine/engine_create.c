/* Making and ending an engine: the defaults of pgd_engine_params, pgd__engine_create_with
 * (an engine over any backend and text path: its scheduler, KV manager, step buffers and
 * thread), pgd_engine_create (the engine over a real model runner: it owns a plugin registry,
 * searched along params.plugin_path, PAGODA_PLUGIN_PATH, then the install directory, and the
 * runner it loads the model with), pgd_engine_destroy, the read-only accessors and the test
 * switches. */
#include "runtime/engine/engine_internal.h"
#include "runtime/model/model.h"
#include "runtime/engine/engine_text.h"
#include "runtime/dist/comm.h"
#include "runtime/kv/kv_cache.h"
#include <pagoda/registry.h>
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>

struct pgd_engine_params pgd_engine_default_params(void)
{
    return (struct pgd_engine_params){
        .device = PGD_DEVICE_CPU,
        .block_size = 16,
        .kv_cache_bytes = (size_t)256 << 20,
        .max_num_seqs = 256,
        .max_num_batched_tokens = 2048,
        .enable_prefix_caching = true,
        .enable_chunked_prefill = true,
        .policy = PGD_SCHED_FCFS,
        .dtype = PGD_DTYPE_COUNT,
        .gpu_memory_utilization = 0.9,
        .max_seq_len_to_capture = 8192,
        .tensor_parallel_size = 1,
        .swap_space_bytes = (size_t)4 << 30,
        .preemption_mode = PGD_PREEMPT_AUTO,
        .async_scheduling = true,
    };
}

/* ---- an engine over any backend ----------------------------------------------------- */

/* Frees e and everything it owns, after its thread ended (or never started). */
static void engine_free(struct pgd_engine *e)
{
    pgd__notifier_stop(&e->notifier);
    pgd__spec_fini(e);
    pgd__scheduler_fini(&e->sched);
    pgd__kv_manager_fini(&e->kv);
    pgd__sampler_fini(&e->sampler);
    if (e->guides) {
        pgd__guides_fini(e->guides);
        free(e->guides);
    }
    free(e->row);
    free(e->mask_jobs);
    free(e->jump_cs);
    pgd__workers_destroy(e->mask_workers);
    for (int i = 0; i < 2; i++) {
        free(e->sets[i].seqs);
        free(e->sets[i].ss);
        free(e->sets[i].rows);
        free(e->sets[i].res);
    }
    free(e->aborts);
    free(e->sample_stops);
    if (e->be.destroy)
        e->be.destroy(e->be.ctx);
    pgd__text_share_release(e->text_share);   /* the tokenizer, once no stream reads it */
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->stats_mu);
    free(e);
}

/* The task and what goes with it (before any model is loaded): a known task, no
 * speculation when embedding, a pooler_config only when embedding and one that parses. */
static enum pgd_status check_task(const struct pgd_engine_params *p, char *err, size_t errlen)
{
    if (p->task != PGD_TASK_GENERATE && p->task != PGD_TASK_EMBED)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: task %d is not one of "
                        "generate, embed", (int)p->task);
    if (p->task == PGD_TASK_EMBED && p->speculative_config && *p->speculative_config)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: task embed does not "
                        "generate: speculative_config does not apply");
    if (p->task != PGD_TASK_EMBED && p->pooler_config && *p->pooler_config)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: pooler_config needs task "
                        "embed");
    enum pgd_pooling_type t;
    bool n;
    return pgd_pooler_config_parse(p->pooler_config, &t, &n, err, errlen);
}

/* The model's limits against the caller's: max_model_len may only shrink the model's. */
static enum pgd_status check_limits(const struct pgd_engine *e, const struct pgd_engine_params *p,
                                    const struct pgd__engine_backend *backend, char *err,
                                    size_t errlen)
{
    if (e->vocab <= 0 || e->max_model_len <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "engine: the model reports vocab_size %d, max_model_len %d", e->vocab,
                        e->max_model_len);
    if (p->max_model_len > 0 && backend->max_model_len > 0 &&
        p->max_model_len > backend->max_model_len)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "engine: max_model_len %d exceeds the model's %d", p->max_model_len,
                        backend->max_model_len);
    if (p->task == PGD_TASK_EMBED && (!backend->step_hidden || backend->hidden_size <= 0))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "engine: task embed needs a backend "
                        "that hands back hidden states; this one has none");
    return check_task(p, err, errlen);
}

/* The engine thread's parts: KV manager, scheduler, host sampler, step buffers. */
static enum pgd_status init_parts(struct pgd_engine *e, const struct pgd_engine_params *p,
                                  const struct pgd__engine_backend *backend, char *err,
                                  size_t errlen)
{
    enum pgd_status st = pgd__kv_manager_init(&e->kv, backend->num_blocks, backend->block_size,
                                              p->enable_prefix_caching, err, errlen);
    bool swap = backend->swap_blocks && backend->num_swap_blocks > 0 &&
                p->preemption_mode != PGD_PREEMPT_RECOMPUTE;
    if (st == PGD_OK && swap)
        st = pgd__kv_manager_init_swap(&e->kv, backend->num_swap_blocks, err, errlen);
    if (st != PGD_OK)
        return st;
    struct pgd__sched_params sp = {
        .max_num_seqs = p->max_num_seqs,
        .max_num_batched_tokens = p->max_num_batched_tokens,
        .enable_chunked_prefill = p->enable_chunked_prefill,
        .long_prefill_token_threshold = p->long_prefill_token_threshold,
        .policy = p->policy,
        .sliding_window = backend->sliding_window,
        .headroom_steps = PGD__SCHED_HEADROOM_STEPS_DEFAULT,
        .preempt_cheapest = true,
        .preemption_mode = swap ? p->preemption_mode : PGD_PREEMPT_RECOMPUTE,
        .swap_min_tokens = PGD__SCHED_SWAP_MIN_TOKENS_DEFAULT,
        .async_scheduling = e->async,        /* async_setup ran: the headroom's lag */
    };
    if ((st = pgd__scheduler_init(&e->sched, &sp, &e->kv, err, errlen)) != PGD_OK)
        return st;
    e->headroom_steps = sp.headroom_steps;
    e->preempt_cheapest = sp.preempt_cheapest;
    if ((st = pgd__sampler_init(&e->sampler, e->vocab, err, errlen)) != PGD_OK)
        return st;
    e->row = malloc((size_t)e->vocab * sizeof *e->row);
    e->mask_jobs = malloc((size_t)p->max_num_seqs * sizeof *e->mask_jobs);
    e->jump_cs = malloc((size_t)p->max_num_seqs * sizeof *e->jump_cs);
    if (!e->row || !e->mask_jobs || !e->jump_cs)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory for step buffers");
    /* PAGODA_MASK_THREADS=N (0 to 64) overrides it, for measuring. */
    e->mask_threads_set = pgd__workers_default_threads();
    const char *mt = getenv("PAGODA_MASK_THREADS");
    char *mt_end;
    long mt_n = mt ? strtol(mt, &mt_end, 10) : -1;
    if (mt && *mt && !*mt_end && mt_n >= 0 && mt_n <= 64)
        e->mask_threads_set = (int)mt_n;
    else if (mt)
        PGD_WARN("PAGODA_MASK_THREADS=%s is not a number of threads from 0 to 64; the "
                 "default, %d, holds", mt, e->mask_threads_set);
    /* Every token of a step may want its logits row (prompt logprobs). The second set only
     * for a step in flight. */
    int max_rows = p->max_num_batched_tokens > 0 ? p->max_num_batched_tokens : 1;
    for (int i = 0; i < (e->async ? 2 : 1); i++) {
        struct pgd__step_set *s = &e->sets[i];
        s->seqs = malloc((size_t)p->max_num_seqs * sizeof *s->seqs);
        s->ss = malloc((size_t)p->max_num_seqs * sizeof *s->ss);
        s->rows = malloc((size_t)max_rows * sizeof *s->rows);
        s->res = malloc((size_t)max_rows * sizeof *s->res);
        if (!s->seqs || !s->ss || !s->rows || !s->res)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory for step buffers");
    }
    e->cur = &e->sets[0];
    /* Structured output needs each token's bytes: only with a tokenizer. */
    if (e->has_tio && e->tio.tokenizer) {
        if (!(e->guides = malloc(sizeof *e->guides)))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory");
        if ((st = pgd__guides_init(e->guides, e->tio.tokenizer, e->vocab, err, errlen))) {
            free(e->guides);
            e->guides = NULL;
            return st;
        }
    }
    return PGD_OK;
}

/* Speculative decoding's settings from p->speculative_config (vLLM's JSON) into e->spec;
 * the text is not kept. The draft-model method needs a backend with a draft (made by
 * pgd_engine_create from the config's "model"). */
static enum pgd_status spec_setup(struct pgd_engine *e, const struct pgd_engine_params *p,
                                  char *err, size_t errlen)
{
    e->p.speculative_config = NULL;
    enum pgd_status st = pgd__spec_config_parse(p->speculative_config, &e->spec, err, errlen);
    if (st)
        return st;
    if (e->spec.method == PGD__SPEC_DRAFT_MODEL && !e->be.draft_step)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "speculative_config: method "
                        "\"draft_model\" (draft %s): this backend has no draft model",
                        e->spec.model);
    e->stats.spec_num_speculative_tokens = e->spec.num_speculative_tokens;
    if (e->spec.method == PGD__SPEC_NGRAM)
        PGD_INFO("speculative decoding: ngram, %d tokens a step, prompt lookup %d..%d%s",
                 e->spec.num_speculative_tokens, e->spec.prompt_lookup_min,
                 e->spec.prompt_lookup_max,
                 e->spec.disable_by_batch_size ? " (off above disable_by_batch_size)" : "");
    if (e->spec.method == PGD__SPEC_DRAFT_MODEL)
        PGD_INFO("speculative decoding: draft model %s, %d tokens a step%s", e->spec.model,
                 e->spec.num_speculative_tokens,
                 e->spec.disable_by_batch_size ? " (off above disable_by_batch_size)" : "");
    return pgd__spec_init(e, err, errlen);
}

/* Async scheduling, when asked for (the default) and the engine can: no speculative
 * decoding (its proposals are made from the last tokens on the host), task generate; an
 * engine that cannot says so at info level, since the default asked, not its user. A
 * backend without the submit/collect pair runs each step to its end when it is submitted. */
static void async_setup(struct pgd_engine *e, const struct pgd_engine_params *p)
{
    if (!p->async_scheduling)
        return;
    const char *why = e->spec.method != PGD__SPEC_OFF ? "speculative decoding is on"
                      : p->task != PGD_TASK_GENERATE ? "task embed"
                                                     : NULL;
    if (why) {
        PGD_INFO("async scheduling: off (%s)", why);
        return;
    }
    e->async = true;
    PGD_INFO("async scheduling: on");
}

/* Takes ownership of backend->ctx and textio->ctx in every case (see engine_backend.h). */
enum pgd_status pgd__engine_create_with(const struct pgd_engine_params *p,
                                        const struct pgd__engine_backend *backend,
                                        const struct pgd__textio *textio,
                                        struct pgd_engine **out, char *err, size_t errlen)
{
    *out = NULL;
    struct pgd_engine *e = calloc(1, sizeof *e);
    if (!e) {
        if (backend->destroy)
            backend->destroy(backend->ctx);
        if (textio && textio->destroy)
            textio->destroy(textio->ctx);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory");
    }
    e->p = *p;
    e->be = *backend;
    if (textio) {
        /* the streams that make their own text share the tokenizer with the engine */
        if (!(e->text_share = pgd__text_share_new(textio))) {
            if (backend->destroy)
                backend->destroy(backend->ctx);
            free(e);
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory");
        }
        e->tio = *textio;
        e->has_tio = true;
        const char *rt = getenv("PAGODA_READER_TEXT");
        e->reader_text = !(rt && !strcmp(rt, "0"));
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->stats_mu, NULL);
    e->vocab = backend->vocab_size;
    e->max_model_len = p->max_model_len > 0 ? p->max_model_len : backend->max_model_len;
    pgd__engine_metrics_init(&e->metrics, p, e->max_model_len, backend->num_blocks,
                             backend->block_size);
    enum pgd_status st = check_limits(e, p, backend, err, errlen);
    if (st == PGD_OK)
        st = pgd_pooler_config_parse(p->pooler_config, &e->pool_type, &e->pool_normalize, err,
                                     errlen);
    e->p.pooler_config = NULL;      /* parsed; the caller's string is not kept */
    if (st == PGD_OK)
        st = spec_setup(e, p, err, errlen);
    if (st == PGD_OK)
        async_setup(e, p);
    if (st == PGD_OK)
        st = init_parts(e, p, backend, err, errlen);
    e->next_id = 1;
    e->seed_state = p->seed ^ 0x5eed5eed5eedULL;
    e->stats.num_blocks = backend->num_blocks;
    e->stats.block_size = backend->block_size;
    e->stats.num_swap_blocks = e->kv.swap.num_blocks;
    if (st == PGD_OK)
        st = pgd__notifier_start(&e->notifier, err, errlen);
    if (st == PGD_OK) {
        if (pthread_create(&e->thread, NULL, pgd__engine_main, e) != 0)
            st = pgd_errf(err, errlen, PGD_ERR_INTERNAL, "engine: cannot start its thread");
        else
            e->started = true;
    }
    if (st != PGD_OK) {
        engine_free(e);
        return st;
    }
    *out = e;
    return PGD_OK;
}

void pgd_engine_destroy(struct pgd_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->started)
        pthread_join(e->thread, NULL);
    /* Requests submitted after the thread's last look: each gets its abort outputs, as if
     * it had been active (the thread is gone, so this thread may act as it). */
    for (struct pgd__req *r = e->pending_head, *n; r; r = n) {
        n = r->next;
        r->prev = r->next = NULL;
        e->active = r;
        pgd__req_abort(e, r);
    }
    engine_free(e);
}

bool pgd_engine_has_tokenizer(const struct pgd_engine *e) { return e->has_tio; }
/* Borrowed: the engine's text path owns it. */
const struct pgd_tokenizer *pgd_engine_tokenizer(const struct pgd_engine *e)
{
    return e->has_tio ? e->tio.tokenizer : NULL;
}
int pgd_engine_max_model_len(const struct pgd_engine *e) { return e->max_model_len; }
int pgd_engine_vocab_size(const struct pgd_engine *e) { return e->vocab; }
enum pgd_task pgd_engine_task(const struct pgd_engine *e) { return e->p.task; }
void pgd_engine_pooler(const struct pgd_engine *e, enum pgd_pooling_type *type,
                       bool *normalize)
{
    *type = e->pool_type;
    *normalize = e->pool_normalize;
}
int pgd_engine_hidden_size(const struct pgd_engine *e)
{
    return e->be.step_hidden ? e->be.hidden_size : 0;
}

const char *pgd_task_str(enum pgd_task t)
{
    switch (t) {
    case PGD_TASK_GENERATE: return "generate";
    case PGD_TASK_EMBED: return "embed";
    }
    return "unknown";
}

const char *pgd_pooling_type_str(enum pgd_pooling_type t)
{
    switch (t) {
    case PGD_POOLING_NONE: return "NONE";
    case PGD_POOLING_LAST: return "LAST";
    case PGD_POOLING_MEAN: return "MEAN";
    case PGD_POOLING_CLS: return "CLS";
    }
    return "unknown";
}

void *pgd__engine_backend_ctx(const struct pgd_engine *e) { return e->be.ctx; }

void pgd__engine_set_device_sampling(struct pgd_engine *e, bool on)
{
    pthread_mutex_lock(&e->mu);
    e->no_device_sampling = !on;
    pthread_mutex_unlock(&e->mu);
}

void pgd__engine_set_jump_forward(struct pgd_engine *e, bool on)
{
    pthread_mutex_lock(&e->mu);
    e->no_jump_forward = !on;
    pthread_mutex_unlock(&e->mu);
}

void pgd__engine_hold(struct pgd_engine *e, bool on)
{
    pthread_mutex_lock(&e->mu);
    e->held = on;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void pgd__engine_set_mask_threads(struct pgd_engine *e, int n)
{
    pthread_mutex_lock(&e->mu);
    e->mask_threads_set = n < 0 ? 0 : n > 64 ? 64 : n;
    pthread_mutex_unlock(&e->mu);
}

long pgd__engine_mask_shared_steps(const struct pgd_engine *e)
{
    return atomic_load_explicit(&((struct pgd_engine *)e)->mask_shared_steps,
                                memory_order_relaxed);
}

void pgd__engine_set_greedy_path(struct pgd_engine *e, bool on)
{
    pgd__engine_set_device_sampling(e, on);
}

void pgd__engine_set_kv_policy(struct pgd_engine *e, int headroom_steps, bool preempt_cheapest)
{
    pthread_mutex_lock(&e->mu);
    e->headroom_steps = headroom_steps > 0 ? headroom_steps : 0;
    e->preempt_cheapest = preempt_cheapest;
    pthread_mutex_unlock(&e->mu);
}

void pgd__engine_set_paranoid(struct pgd_engine *e, bool on)
{
    pthread_mutex_lock(&e->mu);
    e->paranoid = on;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the engine over the model runner ------------------------------------------------- */

/* The backend's ctx: what pgd_engine_create made, released by rb_destroy. */
struct runner_backend {
    struct pgd_registry *registry;     /* owned; outlives the runners */
    struct pgd__comm *comm;            /* owned; outlives the runners; NULL without tensor
                                          parallelism */
    struct pgd__runner *runner;        /* owned */
    struct pgd__runner *draft;         /* owned speculative draft model, or NULL */
};

/* The backend's step and step_sample: the runner's (see engine_backend.h); ctx is the
 * struct runner_backend, borrowed for the call. */
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

static enum pgd_status rb_submit(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                 const struct pgd__sample_row *rows, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step_submit(rb->runner, seqs, n_seqs, rows, err, errlen);
}

static enum pgd_status rb_submit_masks(void *ctx, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step_submit_masks(rb->runner, err, errlen);
}

static enum pgd_status rb_collect(void *ctx, struct pgd__sample_result *res, int *n_rows,
                                  char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step_collect(rb->runner, res, n_rows, err, errlen);
}

static enum pgd_status rb_step_hidden(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                      const float **hidden, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step_hidden(rb->runner, seqs, n_seqs, hidden, err, errlen);
}

static enum pgd_status rb_draft_step(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                     int32_t *ids, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_step_greedy(rb->draft, seqs, n_seqs, ids, err, errlen);
}

static enum pgd_status rb_swap_blocks(void *ctx, bool to_host, const int32_t *dev,
                                      const int32_t *host, int n, char *err, size_t errlen)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_swap_blocks(rb->runner, to_host, dev, host, n, err, errlen);
}

static double rb_device_seconds(void *ctx)
{
    struct runner_backend *rb = ctx;
    return pgd__runner_device_seconds(rb->runner) +
           (rb->draft ? pgd__runner_device_seconds(rb->draft) : 0.0);
}

/* Frees ctx: the runners first, then the registry whose plugins they used. */
static void rb_destroy(void *ctx)
{
    struct runner_backend *rb = ctx;
    if (!rb)
        return;
    pgd__runner_destroy(rb->draft);
    pgd__runner_destroy(rb->runner);
    pgd__comm_destroy(rb->comm);
    pgd_registry_destroy(rb->registry);
    free(rb);
}

/* Only for an engine made by pgd_engine_create (its backend ctx is a runner_backend). */
const struct pgd__runner *pgd__engine_runner(const struct pgd_engine *e)
{
    const struct runner_backend *rb = pgd__engine_backend_ctx(e);
    return rb->runner;
}

struct pgd__runner *pgd__engine_runner_mut(struct pgd_engine *e)
{
    struct runner_backend *rb = pgd__engine_backend_ctx(e);
    return rb->runner;
}

/* The registry, the communicator (tensor parallelism) and the runner of p into a new *out
 * (owned by the caller: rb_destroy). */
static enum pgd_status make_runner(const struct pgd_engine_params *p, struct runner_backend **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    if (!p->model_dir || !*p->model_dir)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: model_dir is not set");
    /* A bad speculative_config fails before the model is loaded (create_with parses it). */
    struct pgd__spec_config spec;
    enum pgd_status sst = pgd__spec_config_parse(p->speculative_config, &spec, err, errlen);
    if (sst)
        return sst;
    if ((sst = check_task(p, err, errlen)))
        return sst;
    struct runner_backend *rb = calloc(1, sizeof *rb);
    if (!rb)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory");
    enum pgd_status st = pgd_registry_create(&rb->registry, err, errlen);
    if (st == PGD_OK && p->tensor_parallel_size > 1)
        st = pgd__comm_create(p->tensor_parallel_size, p->device, &rb->comm, err, errlen);
    if (st != PGD_OK) {
        rb_destroy(rb);
        return st;
    }
    pgd_registry_load_search_path(rb->registry, p->plugin_path);
    struct pgd__runner_params rp;
    pgd__runner_default_params(&rp);
    rp.model_dir = p->model_dir;
    rp.registry = rb->registry;
    rp.comm = rb->comm;
    rp.device = p->device;
    rp.block_size = p->block_size;
    rp.num_blocks = p->num_blocks;
    rp.kv_cache_bytes = p->kv_cache_bytes;
    rp.max_num_batched_tokens = p->max_num_batched_tokens;
    rp.max_num_seqs = p->max_num_seqs;
    rp.dtype = p->dtype;
    rp.random_weights = p->random_weights;
    rp.seed = p->seed;
    rp.quantization = p->quantization;
    st = pgd__kv_cache_dtype_parse(p->kv_cache_dtype, &rp.kv_cache_dtype, err, errlen);
    rp.enforce_eager = p->enforce_eager;
    rp.batch_invariant = p->batch_invariant;
    if (p->gpu_memory_utilization > 0)
        rp.gpu_memory_utilization = p->gpu_memory_utilization;
    rp.kv_cache_memory_bytes = p->kv_cache_memory_bytes;
    rp.max_model_len = p->max_model_len;
    rp.max_seq_len_to_capture = p->max_seq_len_to_capture;
    rp.cuda_graph_sizes = p->cuda_graph_sizes;
    rp.n_cuda_graph_sizes = p->n_cuda_graph_sizes;
    /* A draft model first: its weights count when the target sizes the pool. */
    if (st != PGD_OK)
        (void)0;                      /* kv_cache_dtype refused */
    else if (spec.method == PGD__SPEC_DRAFT_MODEL && rb->comm)
        st = pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "engine: a speculative draft model "
                      "with tensor_parallel_size %d is not supported yet (method \"ngram\" "
                      "is)", p->tensor_parallel_size);
    else if (spec.method == PGD__SPEC_DRAFT_MODEL)
        st = pgd__engine_draft_open(&spec, &rp, &rb->draft, err, errlen);
    if (st == PGD_OK)
        st = pgd__runner_create(&rp, &rb->runner, err, errlen);
    if (st != PGD_OK) {
        rb_destroy(rb);
        return st;
    }
    *out = rb;
    return PGD_OK;
}

enum pgd_status pgd__engine_tp_rank(const struct pgd_engine_params *p, int *rank, char *err,
                                    size_t errlen)
{
    *rank = 0;
    return p->tensor_parallel_size > 1 ? pgd__comm_world_rank(rank, err, errlen) : PGD_OK;
}

enum pgd_status pgd__engine_serve_tp_worker(const struct pgd_engine_params *p, char *err,
                                            size_t errlen)
{
    struct runner_backend *rb;
    enum pgd_status st = make_runner(p, &rb, err, errlen);
    if (st != PGD_OK)
        return st;
    st = pgd__runner_serve_worker(rb->runner, err, errlen);
    rb_destroy(rb);
    return st;
}

enum pgd_status pgd__engine_create_wrapped(const struct pgd_engine_params *p,
                                           struct pgd__engine_backend (*wrap)(
                                               struct pgd__engine_backend),
                                           struct pgd_engine **out, char *err, size_t errlen)
{
    *out = NULL;
    struct runner_backend *rb;
    enum pgd_status st = make_runner(p, &rb, err, errlen);
    if (st != PGD_OK)
        return st;
    if (rb->comm && pgd__comm_rank(rb->comm) != 0) {
        int rank = pgd__comm_rank(rb->comm);
        rb_destroy(rb);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "engine: tensor parallel rank %d is a "
                        "worker: only rank 0 makes the engine (`pagoda serve` runs the worker "
                        "loop on the other ranks)", rank);
    }
    /* Readiness: every CUDA graph of the decode ladder is captured before the engine exists
     * (a server answers /health 200 only after this), not during the first requests. */
    st = pgd__runner_capture_graphs(rb->runner, err, errlen);
    /* The swap space, once the pool's size is final; tensor parallelism recomputes. */
    bool swap = p->swap_space_bytes > 0 && p->preemption_mode != PGD_PREEMPT_RECOMPUTE;
    if (st == PGD_OK && swap && rb->comm)
        PGD_INFO("swap_space: not used under tensor parallelism; preemption recomputes");
    else if (st == PGD_OK && swap)
        st = pgd__runner_swap_init(rb->runner, p->swap_space_bytes, err, errlen);
    if (st == PGD_OK && rb->draft)
        st = pgd__engine_draft_finish(rb->draft, rb->runner, err, errlen);
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
        /* The async pair where the runner queues steps (one GPU); elsewhere the engine
         * runs each submitted step to its end. */
        .submit = pgd__runner_can_submit(rb->runner) ? rb_submit : NULL,
        .collect = pgd__runner_can_submit(rb->runner) ? rb_collect : NULL,
        .submit_penalties = pgd__runner_submit_penalties(rb->runner),
        .submit_masks = pgd__runner_submit_masks(rb->runner) ? rb_submit_masks : NULL,
        .step_hidden = rb_step_hidden,
        .hidden_size = d->hidden_size,
        .draft_step = rb->draft ? rb_draft_step : NULL,
        .device_seconds = rb_device_seconds,
        .num_swap_blocks = pgd__runner_num_swap_blocks(rb->runner),
        .kv_block_bytes = pgd__runner_kv_block_bytes(rb->runner),
        .swap_blocks = rb_swap_blocks,
        .draft_max_model_len = rb->draft ? pgd__runner_desc(rb->draft)->max_position_embeddings
                                         : 0,
        .destroy = rb_destroy,
    };
    if (wrap)
        be = wrap(be);
    /* The text path: the model's tokenizer when the directory has one; without it the
     * engine serves token-id requests and refuses text prompts and stop strings. */
    struct pgd__textio tio;
    bool have_tok;
    char tok_err[1024] = "";
    st = pgd__engine_textio_load(p->tokenizer ? p->tokenizer : p->model_dir, &tio, &have_tok,
                                 tok_err, sizeof tok_err);
    if (st != PGD_OK && p->tokenizer_optional) {
        /* Token ids in and out need no tokenizer: say why there is none and go on. */
        PGD_WARN("%s; serving token ids only", tok_err);
        have_tok = false;
        st = PGD_OK;
    }
    if (st != PGD_OK) {
        be.destroy(be.ctx);
        return pgd_errf(err, errlen, st, "%s", tok_err);
    }
    return pgd__engine_create_with(p, &be, have_tok ? &tio : NULL, out, err, errlen);
}

enum pgd_status pgd_engine_create(const struct pgd_engine_params *p, struct pgd_engine **out,
                                  char *err, size_t errlen)
{
    return pgd__engine_create_wrapped(p, NULL, out, err, errlen);
}
