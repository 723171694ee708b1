/* Request intake, on the caller's thread: the sampling and request defaults, validation
 * (every refusal names the field and the value), building a request (its samples, their
 * sequences, detokenizers and stream), queuing it for the engine thread, and aborts. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pgd_sampling_params pgd_sampling_default_params(void)
{
    return (struct pgd_sampling_params){
        .n = 1,
        .temperature = 1.0f,
        .top_p = 1.0f,
        .repetition_penalty = 1.0f,
        .max_tokens = 16,
        .logprobs = -1,
        .prompt_logprobs = -1,
        .skip_special_tokens = true,
    };
}

struct pgd_request_params pgd_request_default_params(void)
{
    return (struct pgd_request_params){
        .add_special_tokens = true,
        .sampling = pgd_sampling_default_params(),
        .detokenize = true,
        .normalize = -1,
    };
}

/* The seed of a request that did not ask for one: splitmix64 over the engine's state
 * (seeded from pgd_engine_params.seed), so a run's seeds repeat with the engine's seed. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The request's owned copies of the sampling arrays (see sp_copy). */
static void sp_free(struct pgd_sampling_params *sp)
{
    if (sp->stop)
        for (int i = 0; i < sp->n_stop; i++)
            free((char *)sp->stop[i]);
    free((void *)sp->stop);
    free((void *)sp->stop_token_ids);
    free((void *)sp->logit_bias);
    free((void *)sp->guide);
}

void pgd__req_free(struct pgd__req *r, const struct pgd__textio *tio)
{
    if (!r)
        return;
    for (int i = 0; r->children && i < r->n_children; i++) {
        struct pgd__child *c = &r->children[i];
        if (c->detok && tio)
            tio->detok_free(c->detok);
        if (c->gm) {
            pgd__gmatch_fini(c->gm);
            free(c->gm);
        }
        free(c->mask);
        free(c->mask_error);
        pgd__stop_text_fini(&c->stop);
        pgd__seq_fini(&c->seq);
    }
    free(r->children);
    free(r->plps);
    free(r->plp_top);
    free(r->pool_acc);
    free(r->salt);
    if (r->guide)
        pgd__guide_release(r->guides, r->guide);
    sp_free(&r->sp);
    pgd__bad_words_fini(&r->bw);
    free(r);
}

/* The ranges are vLLM's (SamplingParams._verify_args). */
static enum pgd_status validate_sampling(const struct pgd_engine *e,
                                         const struct pgd_sampling_params *s, char *err,
                                         size_t errlen)
{
#define BAD(...) return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, __VA_ARGS__)
    if (s->n < 1 || s->n > PGD__MAX_N)
        BAD("sampling: n must be in [1, %d] (got %d)", PGD__MAX_N, s->n);
    /* !(x >= 0) is also true for NaN. */
    if (!(s->temperature >= 0.0f) || isinf(s->temperature))
        BAD("sampling: temperature must be >= 0 (got %g)", (double)s->temperature);
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f))
        BAD("sampling: top_p must be in (0, 1] (got %g)", (double)s->top_p);
    if (s->top_k < -1)
        BAD("sampling: top_k must be -1, 0 (off) or positive (got %d)", s->top_k);
    if (!(s->min_p >= 0.0f && s->min_p <= 1.0f))
        BAD("sampling: min_p must be in [0, 1] (got %g)", (double)s->min_p);
    if (!(s->presence_penalty >= -2.0f && s->presence_penalty <= 2.0f))
        BAD("sampling: presence_penalty must be in [-2, 2] (got %g)", (double)s->presence_penalty);
    if (!(s->frequency_penalty >= -2.0f && s->frequency_penalty <= 2.0f))
        BAD("sampling: frequency_penalty must be in [-2, 2] (got %g)",
            (double)s->frequency_penalty);
    if (!(s->repetition_penalty > 0.0f) || isinf(s->repetition_penalty))
        BAD("sampling: repetition_penalty must be > 0 (got %g)", (double)s->repetition_penalty);
    if (s->max_tokens == 0)
        BAD("sampling: max_tokens must be at least 1 (or negative: up to max_model_len)");
    if (s->min_tokens < 0 || (s->max_tokens > 0 && s->min_tokens > s->max_tokens))
        BAD("sampling: min_tokens must be in [0, max_tokens] (got %d, max_tokens %d)",
            s->min_tokens, s->max_tokens);
    if (s->logprobs < -1 || s->logprobs > PGD__MAX_LOGPROBS)
        BAD("sampling: logprobs must be in [-1, %d] (got %d)", PGD__MAX_LOGPROBS, s->logprobs);
    if (s->prompt_logprobs < -1 || s->prompt_logprobs > PGD__MAX_LOGPROBS)
        BAD("sampling: prompt_logprobs must be in [-1, %d] (got %d)", PGD__MAX_LOGPROBS,
            s->prompt_logprobs);
    if (s->n_stop < 0 || (s->n_stop > 0 && !s->stop))
        BAD("sampling: stop: %d strings but no array", s->n_stop);
    for (int i = 0; i < s->n_stop; i++)
        if (!s->stop[i] || !*s->stop[i])
            BAD("sampling: stop[%d] is empty", i);
    if (s->n_stop > 0 && !e->has_tio)
        BAD("sampling: stop strings need a tokenizer and this model has none (use "
            "stop_token_ids)");
    if (s->n_stop_token_ids < 0 || (s->n_stop_token_ids > 0 && !s->stop_token_ids))
        BAD("sampling: stop_token_ids: %d ids but no array", s->n_stop_token_ids);
    for (int i = 0; i < s->n_stop_token_ids; i++)
        if (s->stop_token_ids[i] < 0 || s->stop_token_ids[i] >= e->vocab)
            BAD("sampling: stop_token_ids[%d] = %d is outside the vocabulary [0, %d)", i,
                s->stop_token_ids[i], e->vocab);
    if (s->n_logit_bias < 0 || (s->n_logit_bias > 0 && !s->logit_bias))
        BAD("sampling: logit_bias: %d entries but no array", s->n_logit_bias);
    for (int i = 0; i < s->n_logit_bias; i++) {
        if (s->logit_bias[i].token < 0 || s->logit_bias[i].token >= e->vocab)
            BAD("sampling: logit_bias[%d].token = %d is outside the vocabulary [0, %d)", i,
                s->logit_bias[i].token, e->vocab);
        if (!isfinite(s->logit_bias[i].bias))
            BAD("sampling: logit_bias[%d].bias is not finite", i);
    }
    if (s->guide_kind < PGD_GUIDE_NONE || s->guide_kind > PGD_GUIDE_GRAMMAR)
        BAD("sampling: guide_kind %d is not a kind of guide", (int)s->guide_kind);
    if (s->guide_kind != PGD_GUIDE_NONE && !e->guides)
        BAD("sampling: structured output (%s) needs the model's tokenizer, and this engine has "
            "none", pgd__guide_kind_name(s->guide_kind));
    if (s->guide_kind != PGD_GUIDE_NONE && s->guide_kind != PGD_GUIDE_JSON_OBJECT && !s->guide)
        BAD("sampling: guide_kind %s needs its guide text", pgd__guide_kind_name(s->guide_kind));
    if (s->n_bad_words < 0 || (s->n_bad_words > 0 && !s->bad_words))
        BAD("sampling: bad_words: %d words but no array", s->n_bad_words);
    if (s->n_bad_words > PGD__MAX_BAD_WORDS)
        BAD("sampling: bad_words: %d words, at most %d", s->n_bad_words, PGD__MAX_BAD_WORDS);
    for (int i = 0; i < s->n_bad_words; i++)
        if (!s->bad_words[i])
            BAD("sampling: bad_words[%d] is NULL", i);
    if (s->n_bad_words > 0 && !e->has_tio)
        BAD("sampling: bad_words need a tokenizer and this model has none");
#undef BAD
    return PGD_OK;
}

/* *d = *s with owned copies of s's arrays (the caller's may go away once submit returns);
 * on failure d holds what was copied so far, for sp_free. top_k -1 (vLLM's "off") becomes
 * 0, the sampler's. */
static enum pgd_status sp_copy(struct pgd_sampling_params *d, const struct pgd_sampling_params *s)
{
    *d = *s;
    d->stop = NULL;
    d->stop_token_ids = NULL;
    d->logit_bias = NULL;
    d->guide = NULL;
    d->bad_words = NULL;            /* kept tokenized, in the request's bw */
    d->n_bad_words = 0;
    if (s->guide_kind != PGD_GUIDE_NONE && s->guide && !(d->guide = strdup(s->guide)))
        return PGD_ERR_NOMEM;
    if (s->n_stop > 0) {
        char **st = calloc((size_t)s->n_stop, sizeof *st);
        if (!st)
            return PGD_ERR_NOMEM;
        d->stop = (const char *const *)st;
        for (int i = 0; i < s->n_stop; i++)
            if (!(st[i] = strdup(s->stop[i])))
                return PGD_ERR_NOMEM;
    }
    if (s->n_stop_token_ids > 0) {
        int32_t *ids = malloc((size_t)s->n_stop_token_ids * sizeof *ids);
        if (!ids)
            return PGD_ERR_NOMEM;
        memcpy(ids, s->stop_token_ids, (size_t)s->n_stop_token_ids * sizeof *ids);
        d->stop_token_ids = ids;
    }
    if (s->n_logit_bias > 0) {
        struct pgd_logit_bias *lb = malloc((size_t)s->n_logit_bias * sizeof *lb);
        if (!lb)
            return PGD_ERR_NOMEM;
        memcpy(lb, s->logit_bias, (size_t)s->n_logit_bias * sizeof *lb);
        d->logit_bias = lb;
    }
    if (d->top_k < 0)
        d->top_k = 0;
    return PGD_OK;
}

/* The prompt's token ids: the text prompt tokenized (*ids, malloc'd: the caller frees it,
 * and *prompt points at it) or the caller's prompt_ids (borrowed; *ids stays NULL). */
static enum pgd_status prompt_tokens(const struct pgd_engine *e,
                                     const struct pgd_request_params *rp, int32_t **ids,
                                     const int32_t **prompt, int *n, char *err, size_t errlen)
{
    *ids = NULL;
    *prompt = rp->prompt_ids;
    *n = 0;
    if (rp->prompt) {
        if (!e->has_tio)
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                            "request: a text prompt needs a tokenizer and this model has none "
                            "(send prompt_ids)");
        enum pgd_status st = e->tio.encode(e->tio.ctx, rp->prompt, rp->add_special_tokens, ids,
                                           n, err, errlen);
        if (st != PGD_OK)
            return st;
        *prompt = *ids;
        return PGD_OK;
    }
    *n = rp->n_prompt_ids;
    if (*n > 0 && !*prompt)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "request: n_prompt_ids is %d but prompt_ids is NULL", *n);
    return PGD_OK;
}

/* Checks the prompt (n tokens) against the vocabulary and the request against the engine's
 * limits; *max_out gets the most tokens it may generate, *detok whether its samples get
 * text. */
static enum pgd_status check_request(const struct pgd_engine *e,
                                     const struct pgd_request_params *rp, const int32_t *prompt,
                                     int n, int *max_out, bool *detok, char *err, size_t errlen)
{
#define BAD(...) return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, __VA_ARGS__)
    if (n <= 0)
        BAD("request: the prompt is empty");
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= e->vocab)
            BAD("request: prompt token %d is %d, outside the vocabulary [0, %d)", i, prompt[i],
                e->vocab);
    if (e->p.task == PGD_TASK_EMBED) {
        /* A pooling request computes its prompt and generates nothing. */
        if (n > e->max_model_len)
            BAD("request: prompt (%d tokens) exceeds max_model_len %d", n, e->max_model_len);
        int need = pgd__kv_blocks_for(&e->kv, n);
        if (need > e->kv.pool.num_blocks)
            BAD("request: prompt (%d tokens) needs %d KV blocks of %d tokens; the whole cache "
                "has %d", n, need, e->kv.block_size, e->kv.pool.num_blocks);
        if (!e->p.enable_chunked_prefill && n > e->p.max_num_batched_tokens)
            BAD("request: %d tokens to compute at once exceed max_num_batched_tokens %d "
                "(chunked prefill is off)", n, e->p.max_num_batched_tokens);
        *max_out = 0;
        *detok = false;
        return PGD_OK;
    }
    /* max_tokens < 0: up to max_model_len. */
    int mo = rp->sampling.max_tokens > 0 ? rp->sampling.max_tokens : e->max_model_len - n;
    if (mo <= 0 || (long)n + mo > e->max_model_len)
        BAD("request: prompt (%d tokens) + max_tokens (%d) exceeds max_model_len %d", n, mo,
            e->max_model_len);
    if (mo < rp->sampling.min_tokens)
        BAD("request: min_tokens %d exceeds the room left (%d tokens)",
            rp->sampling.min_tokens, mo);
    /* The last generated token is never computed: it needs no KV. A request that could not
     * fit even alone in the whole cache would wait forever. */
    int need = pgd__kv_blocks_for(&e->kv, n + mo - 1);
    if (need > e->kv.pool.num_blocks)
        BAD("request: prompt (%d tokens) + max_tokens (%d) needs %d KV blocks of %d tokens; "
            "the whole cache has %d", n, mo, need, e->kv.block_size, e->kv.pool.num_blocks);
    /* Without chunked prefill a preempted sequence is recomputed in one step: prompt and
     * output must fit one step's budget. */
    if (!e->p.enable_chunked_prefill && n + mo - 1 > e->p.max_num_batched_tokens)
        BAD("request: %d tokens to compute at once exceed max_num_batched_tokens %d (chunked "
            "prefill is off)", n + mo - 1, e->p.max_num_batched_tokens);
    bool d = rp->detokenize && e->has_tio;
    if (rp->sampling.n_stop > 0 && !d)
        BAD("request: stop strings need detokenize on");
#undef BAD
    *max_out = mo;
    *detok = d;
    return PGD_OK;
}

/* Sets up sample i of r: its sequence (a copy of the prompt), its links and its
 * detokenizer. */
static enum pgd_status child_init(struct pgd_engine *e, const struct pgd_request_params *rp,
                                  struct pgd__req *r, int i, const int32_t *prompt,
                                  uint64_t arrival, struct pgd__reader_text *text, char *err,
                                  size_t errlen)
{
    struct pgd__child *c = &r->children[i];
    int n = r->n_prompt;
    c->req = r;
    c->index = i;
    c->mask_at = -1;
    enum pgd_status st = pgd__seq_init(&c->seq, r->id, prompt, n, n + r->max_out, err, errlen);
    if (st != PGD_OK)
        return st;
    c->seq.owner = c;
    c->seq.priority = rp->priority;
    c->seq.arrival = arrival;
    c->seq.kv.salt = r->salt;
    c->seq.kv.salt_len = r->salt ? strlen(r->salt) : 0;
    if (i == 0 && r->plps)
        c->seq.use_prefix_cache = false;   /* prompt logprobs need every prompt row */
    if (r->pooling == PGD_POOLING_MEAN || r->pooling == PGD_POOLING_CLS)
        c->seq.use_prefix_cache = false;   /* they need the rows of the prompt's start */
    /* Siblings wait for sample 0's prompt and then take it from the prefix cache instead of
     * computing it n times. */
    if (i > 0 && e->p.enable_prefix_caching)
        c->seq.leader = &r->children[0].seq;
    if (text)
        pgd__reader_text_start(text, i, prompt, n, rp->sampling.skip_special_tokens);
    else if (r->detokenize)
        c->detok = e->tio.detok_new(e->tio.ctx, prompt, n, rp->sampling.skip_special_tokens);
    if (r->guide) {
        c->gm = malloc(sizeof *c->gm);
        if (!c->gm || !pgd__gmatch_init(c->gm, r->guide->g)) {
            bool over = c->gm && c->gm->over;
            free(c->gm);
            c->gm = NULL;
            if (over)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: too ambiguous to "
                                "follow: its start makes over %u parse stack entries; "
                                "simplify the guide", pgd__guide_kind_name(r->guide->kind),
                                PGD__GMATCH_PASS_MAX);
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "request: no memory for its grammar "
                            "matcher");
        }
    }
    return PGD_OK;
}

/* A new request for the checked prompt (borrowed: each sample copies it), with its id, its
 * seed, its samples and its stream; *out is the caller's until queued. */
static enum pgd_status req_build(struct pgd_engine *e, const struct pgd_request_params *rp,
                                 const int32_t *prompt, int n, int max_out, bool detok,
                                 struct pgd__req **out, char *err, size_t errlen)
{
#define FAIL(code, ...) do { st = pgd_errf(err, errlen, code, __VA_ARGS__); goto fail; } while (0)
    enum pgd_status st = PGD_OK;
    int nc = rp->sampling.n;
    struct pgd__reader_text *text = NULL;   /* owned until the stream takes it */
    struct pgd__req *r = calloc(1, sizeof *r);
    if (!r)
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    if (e->p.task == PGD_TASK_EMBED) {
        r->pooling = rp->pooling != PGD_POOLING_NONE ? rp->pooling : e->pool_type;
        r->normalize = rp->normalize < 0 ? e->pool_normalize : rp->normalize != 0;
    }
    if (r->pooling != PGD_POOLING_NONE &&
        !(r->pool_acc = calloc((size_t)e->be.hidden_size, sizeof *r->pool_acc)))
        FAIL(PGD_ERR_NOMEM, "request: no memory for its pooled vector");
    if (sp_copy(&r->sp, &rp->sampling) != PGD_OK)
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    r->n_children = nc;
    r->n_prompt = n;
    r->max_out = max_out;
    r->priority = rp->priority;
    r->detokenize = detok;
    r->t_arrival = pgd__engine_now();
    if (rp->cache_salt && *rp->cache_salt && !(r->salt = strdup(rp->cache_salt)))
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    r->children = calloc((size_t)nc, sizeof *r->children);
    if (!r->children)
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    /* Structured output: the compiled guide (from the engine's cache, or compiled now; an
     * invalid schema, regex or grammar is refused here with what and where). */
    if (rp->sampling.guide_kind != PGD_GUIDE_NONE) {
        r->guides = e->guides;
        if ((st = pgd__guides_get(e->guides, rp->sampling.guide_kind, rp->sampling.guide,
                                  &r->guide, &r->vocab, err, errlen)))
            goto fail;
    }
    if (rp->sampling.n_bad_words > 0 &&
        (st = pgd__bad_words_init(&r->bw, &e->tio, e->vocab, rp->sampling.bad_words,
                                  rp->sampling.n_bad_words, err, errlen)))
        goto fail;
    if (rp->sampling.prompt_logprobs >= 0 && n > 1) {
        /* Prompt token 0 has no logprob: n - 1 entries, each with k top entries. */
        r->plps = calloc((size_t)n - 1, sizeof *r->plps);
        if (rp->sampling.prompt_logprobs > 0)
            r->plp_top = calloc((size_t)(n - 1) * (size_t)rp->sampling.prompt_logprobs,
                                sizeof *r->plp_top);
        if (!r->plps || (rp->sampling.prompt_logprobs > 0 && !r->plp_top))
            FAIL(PGD_ERR_NOMEM, "request: no memory for prompt logprobs");
    }
    /* The id doubles as the arrival order the scheduler breaks priority ties with. */
    pthread_mutex_lock(&e->mu);
    uint64_t id = e->next_id++;
    uint64_t arrival = id;
    r->seed = rp->sampling.has_seed ? rp->sampling.seed : splitmix64(&e->seed_state);
    pthread_mutex_unlock(&e->mu);
    r->id = id;
    /* The text and its stop strings are the reader's (engine_reader_text.c). */
    r->reader_text = detok && e->reader_text;
    if (r->reader_text && !(text = pgd__reader_text_new(e->text_share, nc, &rp->sampling)))
        FAIL(PGD_ERR_NOMEM, "request: no memory for its detokenizers");
    for (int i = 0; i < nc; i++)
        if ((st = child_init(e, rp, r, i, prompt, arrival, text, err, errlen)) != PGD_OK)
            goto fail;
    r->stream = pgd__stream_create(id, nc);
    if (!r->stream)
        FAIL(PGD_ERR_NOMEM, "request: no memory for its stream");
    r->stream->engine = e;
    r->stream->text = text;
    *out = r;
    return PGD_OK;
fail:
    pgd__reader_text_free(text);
    pgd__req_free(r, e->has_tio ? &e->tio : NULL);
    return st;
#undef FAIL
}

/* Hands r to the engine thread and its stream to the caller (*out); frees r when the
 * engine is shutting down. */
static enum pgd_status req_queue(struct pgd_engine *e, struct pgd__req *r,
                                 struct pgd_stream **out, char *err, size_t errlen)
{
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        pgd__stream_free(r->stream);
        r->stream = NULL;
        pgd__req_free(r, e->has_tio ? &e->tio : NULL);
        return pgd_errf(err, errlen, PGD_ERR_CLOSED, "engine: shutting down");
    }
    /* Once queued, r belongs to the engine thread (it may be gone by the time we unlock). */
    *out = r->stream;
    if (e->pending_tail)
        e->pending_tail->next = r;
    else
        e->pending_head = r;
    e->pending_tail = r;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return PGD_OK;
}

/* check, build, queue. */
enum pgd_status pgd_engine_submit(struct pgd_engine *e, const struct pgd_request_params *rp,
                                  struct pgd_stream **out, char *err, size_t errlen)
{
    *out = NULL;
    /* A pooling request samples nothing: its sampling params are not checked (n is). */
    enum pgd_status st = pgd__pool_validate(e, rp, err, errlen);
    if (st == PGD_OK && e->p.task != PGD_TASK_EMBED)
        st = validate_sampling(e, &rp->sampling, err, errlen);
    if (st != PGD_OK)
        return st;
    int32_t *ids = NULL;            /* owned: a text prompt's tokens */
    const int32_t *prompt = NULL;
    int n = 0, max_out = 0;
    bool detok = false;
    struct pgd__req *r = NULL;
    st = prompt_tokens(e, rp, &ids, &prompt, &n, err, errlen);
    if (st == PGD_OK)
        st = check_request(e, rp, prompt, n, &max_out, &detok, err, errlen);
    if (st == PGD_OK)
        st = req_build(e, rp, prompt, n, max_out, detok, &r, err, errlen);
    free(ids);                      /* each sample holds its own copy of the prompt */
    if (st == PGD_OK)
        st = req_queue(e, r, out, err, errlen);
    return st;
}

void pgd__engine_stop_sample(struct pgd_engine *e, uint64_t request_id, int index)
{
    pthread_mutex_lock(&e->mu);
    /* As an abort: on failure the sample runs on to its end, its outputs dropped by the
     * reader, which already has its last one. */
    if (!pgd__array_reserve(e->sample_stops, e->sample_stops_cap,
                            (size_t)e->n_sample_stops + 1)) {
        pthread_mutex_unlock(&e->mu);
        PGD_ERROR("engine: no memory to queue the stop of request %llu sample %d",
                  (unsigned long long)request_id, index);
        return;
    }
    e->sample_stops[e->n_sample_stops++] = (struct pgd__sample_stop){ request_id, index };
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void pgd_engine_abort(struct pgd_engine *e, uint64_t request_id)
{
    pthread_mutex_lock(&e->mu);
    /* An abort comes from a client's thread, which can live on without it: a failure is
     * logged and the request runs to its end, rather than taking the server down. */
    if (!pgd__array_reserve(e->aborts, e->aborts_cap, (size_t)e->n_aborts + 1)) {
        pthread_mutex_unlock(&e->mu);
        PGD_ERROR("engine: no memory to queue the abort of request %llu",
                  (unsigned long long)request_id);
        return;
    }
    e->aborts[e->n_aborts++] = request_id;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}
