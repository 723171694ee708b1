/* The engine: request intake and validation, the engine thread's step loop (schedule ->
 * forward -> sample -> detokenize -> emit), per-request output streams and metrics. */
#include "runtime/engine/engine_internal.h"
#include "runtime/engine/engine_metrics.h"
#include "runtime/sample/sample_rows.h"
#include "runtime/engine/scheduler.h"
#include "runtime/engine/stop.h"
#include <pagoda/log.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LOGPROBS 20     /* vLLM's default max_logprobs */
#define MAX_N 256           /* parallel samples per request */

/* ---- outputs and streams ------------------------------------------------------------ */

/* One queued output; everything its pgd_output points to is owned by the record. */
struct out_rec {
    struct out_rec *next;
    struct pgd_output o;
    int32_t token;                  /* the (single) new token, if any */
    char *text;
    struct pgd_token_logprobs lp;   /* of token */
    struct pgd_logprob *lp_top;
    struct pgd_token_logprobs *plps;    /* prompt logprobs (moved in from the request) */
    struct pgd_logprob *plp_top;
    char *stop_reason;
};

static void out_rec_free(struct out_rec *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->lp_top);
    free(r->plps);
    free(r->plp_top);
    free(r->stop_reason);
    free(r);
}

struct pgd_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct out_rec *head, *tail;    /* queued, oldest first */
    struct out_rec *current;        /* the one last returned; freed by the next call */
    int n_samples;
    int n_final_queued;             /* outputs with a finish_reason queued so far */
    int n_final_read;
    int refs;                       /* the caller's and the engine's */
    struct pgd_engine *engine;      /* NULL once the engine let go */
    uint64_t request_id;
};

static struct pgd_stream *stream_create(uint64_t id, int n_samples)
{
    struct pgd_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    s->request_id = id;
    s->n_samples = n_samples;
    s->refs = 2;
    return s;
}

static void stream_free(struct pgd_stream *s)
{
    out_rec_free(s->current);
    for (struct out_rec *r = s->head, *n; r; r = n) {
        n = r->next;
        out_rec_free(r);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* Engine side: queues r (ownership moves to the stream). */
static void stream_push(struct pgd_stream *s, struct out_rec *r)
{
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    if (r->o.finish_reason != PGD_FINISH_NONE)
        s->n_final_queued++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Engine side: lets go of the stream. */
static void stream_release_engine(struct pgd_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->engine = NULL;
    bool last = --s->refs == 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (last)
        stream_free(s);
}

uint64_t pgd_stream_request_id(const struct pgd_stream *s)
{
    return s->request_id;
}

enum pgd_status pgd_stream_next(struct pgd_stream *s, struct pgd_output *out, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->mu);
    out_rec_free(s->current);
    s->current = NULL;
    enum pgd_status st = PGD_OK;
    while (!s->head) {
        if (s->n_final_read >= s->n_samples || !s->engine) {
            st = PGD_ERR_CLOSED;
            break;
        }
        if (timeout_ms == 0) {
            st = PGD_ERR_TIMEOUT;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT && !s->head) {
            st = PGD_ERR_TIMEOUT;
            break;
        }
    }
    if (st == PGD_OK) {
        struct out_rec *r = s->head;
        s->head = r->next;
        if (!s->head)
            s->tail = NULL;
        r->next = NULL;
        s->current = r;
        if (r->o.finish_reason != PGD_FINISH_NONE)
            s->n_final_read++;
        *out = r->o;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- requests ----------------------------------------------------------------------- */

struct req;

struct child {
    struct pgd__seq seq;
    struct req *req;
    int index;
    struct pgd__stop_text stop;
    void *detok;
    int n_out;
    bool done;
    double t_last_token;
};

struct req {
    struct req *prev, *next;        /* the engine thread's active list */
    uint64_t id;
    struct pgd_stream *stream;
    struct pgd_sampling_params sp;  /* its arrays are owned copies */
    char *salt;
    int priority;
    bool detokenize;
    int n_prompt;
    int max_out;                    /* generated tokens at most */
    uint64_t seed;
    int n_children, n_done;
    struct child *children;         /* [n_children] */
    /* Prompt logprobs for prompt tokens 1 .. n_prompt-1, filled as chunks compute. */
    struct pgd_token_logprobs *plps;
    struct pgd_logprob *plp_top;
    double t_arrival, t_first_token, t_scheduled;
    bool admitted, scheduled;
};

static void sp_free(struct pgd_sampling_params *sp)
{
    if (sp->stop)
        for (int i = 0; i < sp->n_stop; i++)
            free((char *)sp->stop[i]);
    free((void *)sp->stop);
    free((void *)sp->stop_token_ids);
    free((void *)sp->logit_bias);
}

static void req_free(struct req *r, const struct pgd__textio *tio)
{
    if (!r)
        return;
    for (int i = 0; r->children && i < r->n_children; i++) {
        struct child *c = &r->children[i];
        if (c->detok && tio)
            tio->detok_free(c->detok);
        pgd__stop_text_fini(&c->stop);
        pgd__seq_fini(&c->seq);
    }
    free(r->children);
    free(r->plps);
    free(r->plp_top);
    free(r->salt);
    sp_free(&r->sp);
    free(r);
}

/* ---- the engine ---------------------------------------------------------------------- */

struct pgd_engine {
    struct pgd_engine_params p;
    struct pgd__engine_backend be;
    struct pgd__textio tio;
    bool has_tio;
    int max_model_len;
    int vocab;

    /* Engine thread only. */
    struct pgd__kv_manager kv;
    struct pgd__scheduler sched;
    struct pgd__sampler sampler;    /* the host path's */
    float *row;                     /* [vocab] the row being sampled (host path) */
    struct pgd__step_seq *ss;       /* [max_num_seqs] */
    struct pgd__sample_row *rows;   /* [max_num_batched_tokens] the step's logits rows */
    struct pgd__sample_result *res; /* [max_num_batched_tokens] what became of them */
    struct req *active;

    /* Shared, under mu. */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req *pending_head, *pending_tail;
    uint64_t *aborts;
    int n_aborts, aborts_cap;
    bool stop;
    uint64_t next_id;
    uint64_t seed_state;
    bool paranoid;                  /* check invariants after every step (tests) */
    bool no_device_sampling;        /* always take full logits (tests); under mu */
    bool device_sampling;           /* engine thread's copy of !no_device_sampling */

    /* Metrics, under stats_mu. */
    pthread_mutex_t stats_mu;
    struct pgd_engine_stats stats;
    struct pgd__engine_metrics metrics;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

const char *pgd_finish_reason_str(enum pgd_finish_reason r)
{
    switch (r) {
    case PGD_FINISH_STOP: return "stop";
    case PGD_FINISH_LENGTH: return "length";
    case PGD_FINISH_ABORT: return "abort";
    case PGD_FINISH_NONE: break;
    }
    return NULL;
}

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
    };
}

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
    };
}

/* ---- emitting ------------------------------------------------------------------------ */

static void usage_fill(struct out_rec *r, const struct child *c)
{
    r->o.prompt_tokens = c->req->n_prompt;
    r->o.completion_tokens = c->n_out;
    r->o.cached_tokens = c->seq.n_cached_tokens > 0 ? c->seq.n_cached_tokens : 0;
}

static struct out_rec *rec_new(const struct child *c)
{
    struct out_rec *r = calloc(1, sizeof *r);
    PGD_ASSERT(r != NULL);
    r->o.request_id = c->req->id;
    r->o.index = c->index;
    r->o.stop_token = -1;
    r->o.text = "";
    return r;
}

static void rec_set_text(struct out_rec *r, const char *s, size_t n)
{
    if (n == 0)
        return;
    r->text = malloc(n + 1);
    PGD_ASSERT(r->text != NULL);
    memcpy(r->text, s, n);
    r->text[n] = '\0';
    r->o.text = r->text;
    r->o.text_len = n;
}

static void count_finish(struct pgd_engine *e, struct child *c, enum pgd_finish_reason why)
{
    struct req *r = c->req;
    double t = now_s();
    pthread_mutex_lock(&e->stats_mu);
    e->stats.requests_finished[why]++;
    /* The child's blocks are back in the pool before its last output is pushed: a caller
     * reading the stats after its stream closes sees them freed. */
    e->stats.kv_cache_usage = pgd__block_pool_usage(&e->kv.pool);
    if (r->n_done + 1 == r->n_children)
        pgd__histogram_observe(&e->metrics.e2e, t - r->t_arrival);
    pgd__engine_metrics_finished(&e->metrics, r->t_scheduled, r->t_first_token, t, r->n_prompt,
                                 c->n_out);
    pthread_mutex_unlock(&e->stats_mu);
}

/* Removes a finished request from the active list and lets go of it. */
static void req_retire(struct pgd_engine *e, struct req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (e->active == r)
        e->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    stream_release_engine(r->stream);
    req_free(r, e->has_tio ? &e->tio : NULL);
}

/* Ends a child: releases its blocks; clears leader links of siblings that waited for it. */
static void child_end(struct pgd_engine *e, struct child *c, enum pgd_finish_reason why)
{
    if (c->seq.status != PGD__SEQ_NEW)
        pgd__scheduler_finish(&e->sched, &c->seq);
    c->seq.status = PGD__SEQ_FINISHED;
    count_finish(e, c, why);
    c->done = true;
    c->req->n_done++;
}

static void child_abort(struct pgd_engine *e, struct child *c)
{
    if (c->done)
        return;
    struct out_rec *r = rec_new(c);
    r->o.finish_reason = PGD_FINISH_ABORT;
    usage_fill(r, c);
    child_end(e, c, PGD_FINISH_ABORT);
    stream_push(c->req->stream, r);
}

static void req_abort(struct pgd_engine *e, struct req *r)
{
    for (int i = 0; i < r->n_children; i++)
        child_abort(e, &r->children[i]);
    req_retire(e, r);
}

static bool contains(const int32_t *ids, int n, int32_t t)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == t)
            return true;
    return false;
}

/* A child got `token` (already appended to its sequence): stop checks, text, output. lp
 * holds its logprobs when the request asked for them. */
static void child_on_token(struct pgd_engine *e, struct child *c, int32_t token,
                           const struct pgd__sample_result *lp)
{
    struct req *rq = c->req;
    const struct pgd_sampling_params *sp = &rq->sp;
    double t = now_s();
    c->n_out++;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.generation_tokens++;
    if (rq->t_first_token == 0.0) {
        rq->t_first_token = t;
        pgd__histogram_observe(&e->metrics.ttft, t - rq->t_arrival);
    }
    if (c->n_out > 1)
        pgd__histogram_observe(&e->metrics.itl, t - c->t_last_token);
    pthread_mutex_unlock(&e->stats_mu);
    c->t_last_token = t;

    struct out_rec *r = rec_new(c);
    r->token = token;
    r->o.token_ids = &r->token;
    r->o.n_token_ids = 1;
    if (sp->logprobs >= 0) {
        if (sp->logprobs > 0) {
            r->lp_top = malloc((size_t)sp->logprobs * sizeof *r->lp_top);
            PGD_ASSERT(r->lp_top != NULL);
        }
        r->lp.chosen = lp->chosen;
        if (sp->logprobs > 0)
            memcpy(r->lp_top, lp->top, (size_t)sp->logprobs * sizeof *r->lp_top);
        r->lp.top = r->lp_top;
        r->lp.n_top = sp->logprobs;
        r->o.logprobs = &r->lp;
    }
    if (c->index == 0 && rq->plps) {
        r->plps = rq->plps;
        r->plp_top = rq->plp_top;
        rq->plps = NULL;
        rq->plp_top = NULL;
        r->o.prompt_logprobs = r->plps;
        r->o.n_prompt_logprobs = rq->n_prompt - 1;
    }

    enum pgd_finish_reason fin = PGD_FINISH_NONE;
    bool may_stop = c->n_out >= sp->min_tokens;
    if (may_stop && !sp->ignore_eos && contains(e->be.eos_ids, e->be.n_eos, token)) {
        fin = PGD_FINISH_STOP;
        r->o.stop_token = token;
    } else if (may_stop && contains(sp->stop_token_ids, sp->n_stop_token_ids, token)) {
        fin = PGD_FINISH_STOP;
        r->o.stop_token = token;
    }
    if (c->detok) {
        const char *d = "";
        size_t dn = 0;
        if (fin == PGD_FINISH_NONE || sp->include_stop_str_in_output)
            e->tio.detok_push(c->detok, token, &d, &dn);
        size_t before = c->stop.released, rel = 0;
        int hit = pgd__stop_text_push(&c->stop, d, dn, sp->stop, sp->n_stop,
                                      may_stop && fin == PGD_FINISH_NONE,
                                      sp->include_stop_str_in_output, &rel);
        if (hit >= 0) {
            fin = PGD_FINISH_STOP;
            r->stop_reason = strdup(sp->stop[hit]);
            PGD_ASSERT(r->stop_reason != NULL);
            r->o.stop_reason = r->stop_reason;
        }
        if (fin == PGD_FINISH_NONE &&
            (c->n_out >= rq->max_out || c->seq.n_tokens >= e->max_model_len)) {
            e->tio.detok_flush(c->detok, &d, &dn);
            pgd__stop_text_push(&c->stop, d, dn, NULL, 0, false, false, &rel);
        }
        if (fin != PGD_FINISH_NONE || c->n_out >= rq->max_out ||
            c->seq.n_tokens >= e->max_model_len)
            pgd__stop_text_flush(&c->stop);
        rec_set_text(r, c->stop.buf + before, c->stop.released - before);
    }
    if (fin == PGD_FINISH_NONE && (c->n_out >= rq->max_out || c->seq.n_tokens >= e->max_model_len))
        fin = PGD_FINISH_LENGTH;
    r->o.finish_reason = fin;
    usage_fill(r, c);
    if (fin != PGD_FINISH_NONE)
        child_end(e, c, fin);
    stream_push(rq->stream, r);
}

/* ---- the step ------------------------------------------------------------------------ */

/* The prompt logprobs of prompt position p + 1 from its row's result. */
static void prompt_logprobs_row(struct req *rq, int p, const struct pgd__sample_result *res)
{
    int k = rq->sp.prompt_logprobs;
    struct pgd_token_logprobs *tl = &rq->plps[p];
    struct pgd_logprob *top = rq->plp_top ? rq->plp_top + (size_t)p * k : NULL;
    tl->chosen = res->chosen;
    if (top && k > 0)
        memcpy(top, res->top, (size_t)k * sizeof *top);
    tl->top = top;
    tl->n_top = k;
}

static bool wants_prompt_logprobs(const struct child *c)
{
    return c->index == 0 && c->req->plps && c->seq.n_computed < c->req->n_prompt;
}

static void fail_all(struct pgd_engine *e)
{
    while (e->active)
        req_abort(e, e->active);
}

/* The descriptors of seq's logits rows (the last nl of its n_new new tokens) into rows:
 * prompt-logprobs rows for prompt positions, a sample row for the last when the step
 * completes the sequence. */
static void describe_rows(const struct pgd_engine *e, const struct pgd__seq *seq,
                          const struct pgd__step_seq *ss, struct pgd__sample_row *rows)
{
    const struct child *c = seq->owner;
    const struct req *rq = c->req;
    int nl = ss->n_logits;
    bool completes = ss->n_computed + ss->n_new == seq->n_tokens;
    bool plp = c->index == 0 && rq->plps && nl == ss->n_new && ss->n_computed < rq->n_prompt;
    for (int j = 0; j < nl; j++) {
        struct pgd__sample_row *row = &rows[j];
        int p = ss->n_computed + ss->n_new - nl + j;     /* row j predicts token p + 1 */
        memset(row, 0, sizeof *row);
        row->kind = PGD__ROW_SKIP;
        row->n_top = -1;
        if (completes && j == nl - 1) {
            row->kind = PGD__ROW_SAMPLE;
            row->n_top = rq->sp.logprobs;
            row->ctx = (struct pgd__sample_ctx){
                .sp = &rq->sp,
                .tokens = seq->tokens,
                .n_prompt = seq->n_prompt,
                .n_out = seq->n_tokens - seq->n_prompt,
                .eos = e->be.eos_ids,
                .n_eos = e->be.n_eos,
                .seed = rq->seed,
                .child = (uint32_t)c->index,
            };
        } else if (plp && p + 1 < rq->n_prompt) {
            row->kind = PGD__ROW_TARGET;
            row->target = seq->tokens[p + 1];
            row->n_top = rq->sp.prompt_logprobs;
        }
    }
}

static void engine_step(struct pgd_engine *e)
{
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&e->sched);
    if (o->n == 0) {
        PGD_WARN("engine: nothing schedulable with %d waiting, %d running", e->sched.n_waiting,
                 e->sched.n_running);
        return;
    }
    double t = now_s();
    uint64_t prompt_computed = 0;
    for (int i = 0; i < o->n; i++) {
        struct pgd__seq *seq = o->seqs[i];
        struct child *c = seq->owner;
        struct req *rq = c->req;
        if (!rq->scheduled) {
            rq->scheduled = true;
            rq->t_scheduled = t;
            pthread_mutex_lock(&e->stats_mu);
            pgd__histogram_observe(&e->metrics.queue, t - rq->t_arrival);
            pthread_mutex_unlock(&e->stats_mu);
        }
        int n_new = o->n_new[i];
        if (seq->n_computed < seq->n_prompt) {
            int end = seq->n_computed + n_new < seq->n_prompt ? seq->n_computed + n_new
                                                              : seq->n_prompt;
            prompt_computed += (uint64_t)(end - seq->n_computed);
        }
        bool completes = seq->n_computed + n_new == seq->n_tokens;
        e->ss[i] = (struct pgd__step_seq){
            .tokens = seq->tokens + seq->n_computed,
            .n_new = n_new,
            .n_computed = seq->n_computed,
            .block_table = seq->kv.blocks,
            .n_blocks = seq->kv.n_blocks,
            .n_logits = wants_prompt_logprobs(c) ? n_new : (completes ? 1 : 0),
        };
    }
    int n_rows = 0, n_step_tokens = 0;
    for (int i = 0; i < o->n; i++) {
        describe_rows(e, o->seqs[i], &e->ss[i], e->rows + n_rows);
        n_rows += e->ss[i].n_logits;
        n_step_tokens += e->ss[i].n_new;
    }
    pthread_mutex_lock(&e->stats_mu);
    pgd__histogram_observe(&e->metrics.iteration_tokens, n_step_tokens);
    pthread_mutex_unlock(&e->stats_mu);
    /* The backend samples (on a GPU only the results come back, not [rows, vocab] floats),
     * or hands back the logits for the host sampler. */
    char err[256] = "";
    enum pgd_status st;
    if (e->be.step_sample && e->device_sampling) {
        st = e->be.step_sample(e->be.ctx, e->ss, o->n, e->rows, e->res, err, sizeof err);
    } else {
        const float *logits = NULL;
        st = e->be.step(e->be.ctx, e->ss, o->n, &logits, err, sizeof err);
        if (st == PGD_OK)
            pgd__sample_rows_host(&e->sampler, e->row, logits, e->rows, n_rows, e->res);
    }
    if (st != PGD_OK) {
        PGD_ERROR("engine: model step failed (%s): %s; aborting every request",
                  pgd_status_str(st), err);
        /* No update: the planned blocks never got their KV, so none may be cached. */
        fail_all(e);
        return;
    }
    /* e->ss[i].n_computed keeps where each planned sequence started. */
    pgd__scheduler_update(&e->sched, o);
    /* The step's counters, before any of its outputs reaches a stream: a caller that reads
     * the stats once its streams closed sees every step that fed them. */
    pthread_mutex_lock(&e->stats_mu);
    e->stats.num_steps++;
    e->stats.prompt_tokens_computed += prompt_computed;
    e->stats.num_preemptions = e->sched.n_preemptions;
    e->stats.prefix_cache_queries = e->kv.prefix_queries;
    e->stats.prefix_cache_hits = e->kv.prefix_hits;
    pthread_mutex_unlock(&e->stats_mu);

    int k = 0;
    for (int i = 0; i < o->n; i++) {
        struct pgd__seq *seq = o->seqs[i];
        struct child *c = seq->owner;
        const struct pgd__step_seq *ss = &e->ss[i];
        for (int j = 0; j < ss->n_logits; j++, k++) {
            const struct pgd__sample_row *row = &e->rows[k];
            if (row->kind == PGD__ROW_TARGET) {
                prompt_logprobs_row(c->req, ss->n_computed + ss->n_new - ss->n_logits + j,
                                    &e->res[k]);
            } else if (row->kind == PGD__ROW_SAMPLE) {
                int32_t tok = e->res[k].token;
                pgd__seq_append(seq, tok);
                child_on_token(e, c, tok, &e->res[k]);
            }
        }
    }
    /* Retire requests whose samples all finished. */
    for (struct req *r = e->active, *n; r; r = n) {
        n = r->next;
        if (r->n_done == r->n_children)
            req_retire(e, r);
    }
    pthread_mutex_lock(&e->stats_mu);
    e->stats.num_requests_running = e->sched.n_running;
    e->stats.num_requests_waiting = e->sched.n_waiting;
    e->stats.kv_cache_usage = pgd__block_pool_usage(&e->kv.pool);
    pthread_mutex_unlock(&e->stats_mu);
}

/* Every block's count equals the number of live sequences listing it. */
static bool check_invariants(struct pgd_engine *e, char *err, size_t errlen)
{
    if (!pgd__block_pool_check(&e->kv.pool, err, errlen))
        return false;
    int nb = e->kv.pool.num_blocks;
    int *holders = calloc((size_t)nb, sizeof *holders);
    PGD_ASSERT(holders != NULL);
    bool ok = true;
    for (struct req *r = e->active; r; r = r->next)
        for (int i = 0; i < r->n_children; i++) {
            const struct pgd__seq *s = &r->children[i].seq;
            if (s->status != PGD__SEQ_RUNNING && s->kv.n_blocks != 0) {
                pgd_errf(err, errlen, PGD_ERR_INTERNAL, "seq %llu: %d blocks while not running",
                         (unsigned long long)s->id, s->kv.n_blocks);
                ok = false;
            }
            for (int b = s->kv.n_released; b < s->kv.n_blocks; b++)
                holders[s->kv.blocks[b]]++;
        }
    for (int b = 0; ok && b < nb; b++)
        if (holders[b] != e->kv.pool.blocks[b].ref_count) {
            pgd_errf(err, errlen, PGD_ERR_INTERNAL, "block %d: ref_count %d, %d holders", b,
                     e->kv.pool.blocks[b].ref_count, holders[b]);
            ok = false;
        }
    free(holders);
    return ok;
}

static void admit(struct pgd_engine *e, struct req *r)
{
    r->next = e->active;
    r->prev = NULL;
    if (e->active)
        e->active->prev = r;
    e->active = r;
    for (int i = 0; i < r->n_children; i++)
        pgd__scheduler_add(&e->sched, &r->children[i].seq);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.prompt_tokens += (uint64_t)r->n_prompt * (uint64_t)r->n_children;
    pthread_mutex_unlock(&e->stats_mu);
}

static void *engine_main(void *arg)
{
    struct pgd_engine *e = arg;
    uint64_t *aborts = NULL;
    int aborts_cap = 0;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stop && !e->pending_head && e->n_aborts == 0 &&
               !pgd__scheduler_has_work(&e->sched))
            pthread_cond_wait(&e->cv, &e->mu);
        struct req *pend = e->pending_head;
        e->pending_head = e->pending_tail = NULL;
        int n_aborts = e->n_aborts;
        if (n_aborts > aborts_cap) {
            uint64_t *a = realloc(aborts, (size_t)n_aborts * sizeof *a);
            PGD_ASSERT(a != NULL);
            aborts = a;
            aborts_cap = n_aborts;
        }
        if (n_aborts)
            memcpy(aborts, e->aborts, (size_t)n_aborts * sizeof *aborts);
        e->n_aborts = 0;
        bool stop = e->stop;
        bool paranoid = e->paranoid;
        e->device_sampling = !e->no_device_sampling;
        pthread_mutex_unlock(&e->mu);

        for (struct req *r = pend, *n; r; r = n) {
            n = r->next;
            admit(e, r);
        }
        for (int i = 0; i < n_aborts; i++)
            for (struct req *r = e->active; r; r = r->next)
                if (r->id == aborts[i]) {
                    req_abort(e, r);
                    break;
                }
        if (stop) {
            fail_all(e);
            break;
        }
        if (pgd__scheduler_has_work(&e->sched))
            engine_step(e);
        else {
            pthread_mutex_lock(&e->stats_mu);
            e->stats.num_requests_running = e->sched.n_running;
            e->stats.num_requests_waiting = e->sched.n_waiting;
            e->stats.kv_cache_usage = pgd__block_pool_usage(&e->kv.pool);
            pthread_mutex_unlock(&e->stats_mu);
        }
        if (paranoid) {
            char err[256];
            if (!check_invariants(e, err, sizeof err)) {
                PGD_ERROR("engine: invariant broken: %s", err);
                PGD_ASSERT(!"engine invariant");
            }
        }
    }
    free(aborts);
    return NULL;
}

/* ---- create / destroy ----------------------------------------------------------------- */

static void engine_free(struct pgd_engine *e)
{
    pgd__scheduler_fini(&e->sched);
    pgd__kv_manager_fini(&e->kv);
    pgd__sampler_fini(&e->sampler);
    free(e->row);
    free(e->ss);
    free(e->rows);
    free(e->res);
    free(e->aborts);
    if (e->be.destroy)
        e->be.destroy(e->be.ctx);
    if (e->has_tio && e->tio.destroy)
        e->tio.destroy(e->tio.ctx);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->stats_mu);
    free(e);
}

bool pgd_engine_has_tokenizer(const struct pgd_engine *e) { return e->has_tio; }
const struct pgd_tokenizer *pgd_engine_tokenizer(const struct pgd_engine *e)
{
    return e->has_tio ? e->tio.tokenizer : NULL;
}
int pgd_engine_max_model_len(const struct pgd_engine *e) { return e->max_model_len; }
int pgd_engine_vocab_size(const struct pgd_engine *e) { return e->vocab; }

void *pgd__engine_backend_ctx(const struct pgd_engine *e) { return e->be.ctx; }

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
        e->tio = *textio;
        e->has_tio = true;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->stats_mu, NULL);
    e->vocab = backend->vocab_size;
    e->max_model_len = p->max_model_len > 0 ? p->max_model_len : backend->max_model_len;
    pgd__engine_metrics_init(&e->metrics, p, e->max_model_len, backend->num_blocks,
                             backend->block_size);
    enum pgd_status st = PGD_OK;
    if (e->vocab <= 0 || e->max_model_len <= 0)
        st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                      "engine: the model reports vocab_size %d, max_model_len %d", e->vocab,
                      e->max_model_len);
    else if (p->max_model_len > 0 && backend->max_model_len > 0 &&
             p->max_model_len > backend->max_model_len)
        st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                      "engine: max_model_len %d exceeds the model's %d", p->max_model_len,
                      backend->max_model_len);
    if (st == PGD_OK)
        st = pgd__kv_manager_init(&e->kv, backend->num_blocks, backend->block_size,
                                  p->enable_prefix_caching, err, errlen);
    if (st == PGD_OK) {
        struct pgd__sched_params sp = {
            .max_num_seqs = p->max_num_seqs,
            .max_num_batched_tokens = p->max_num_batched_tokens,
            .enable_chunked_prefill = p->enable_chunked_prefill,
            .policy = p->policy,
            .sliding_window = backend->sliding_window,
        };
        st = pgd__scheduler_init(&e->sched, &sp, &e->kv, err, errlen);
    }
    if (st == PGD_OK)
        st = pgd__sampler_init(&e->sampler, e->vocab, err, errlen);
    if (st == PGD_OK) {
        e->row = malloc((size_t)e->vocab * sizeof *e->row);
        e->ss = malloc((size_t)p->max_num_seqs * sizeof *e->ss);
        /* Every token of a step may want its logits row (prompt logprobs). */
        int max_rows = p->max_num_batched_tokens > 0 ? p->max_num_batched_tokens : 1;
        e->rows = malloc((size_t)max_rows * sizeof *e->rows);
        e->res = malloc((size_t)max_rows * sizeof *e->res);
        if (!e->row || !e->ss || !e->rows || !e->res)
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory for step buffers");
    }
    e->next_id = 1;
    e->seed_state = p->seed ^ 0x5eed5eed5eedULL;
    e->stats.num_blocks = backend->num_blocks;
    e->stats.block_size = backend->block_size;
    if (st == PGD_OK) {
        if (pthread_create(&e->thread, NULL, engine_main, e) != 0)
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
    /* Requests submitted after the thread's last look. */
    for (struct req *r = e->pending_head, *n; r; r = n) {
        n = r->next;
        r->prev = r->next = NULL;
        e->active = r;
        req_abort(e, r);
    }
    engine_free(e);
}

void pgd__engine_set_device_sampling(struct pgd_engine *e, bool on)
{
    pthread_mutex_lock(&e->mu);
    e->no_device_sampling = !on;
    pthread_mutex_unlock(&e->mu);
}

void pgd__engine_set_greedy_path(struct pgd_engine *e, bool on)
{
    pgd__engine_set_device_sampling(e, on);
}

void pgd__engine_set_paranoid(struct pgd_engine *e, bool on)
{
    pthread_mutex_lock(&e->mu);
    e->paranoid = on;
    pthread_mutex_unlock(&e->mu);
}

/* ---- submit / abort ------------------------------------------------------------------ */

static enum pgd_status validate_sampling(const struct pgd_engine *e,
                                         const struct pgd_sampling_params *s, char *err,
                                         size_t errlen)
{
#define BAD(...) return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, __VA_ARGS__)
    if (s->n < 1 || s->n > MAX_N)
        BAD("sampling: n must be in [1, %d] (got %d)", MAX_N, s->n);
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
    if (s->logprobs < -1 || s->logprobs > MAX_LOGPROBS)
        BAD("sampling: logprobs must be in [-1, %d] (got %d)", MAX_LOGPROBS, s->logprobs);
    if (s->prompt_logprobs < -1 || s->prompt_logprobs > MAX_LOGPROBS)
        BAD("sampling: prompt_logprobs must be in [-1, %d] (got %d)", MAX_LOGPROBS,
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
#undef BAD
    return PGD_OK;
}

static enum pgd_status sp_copy(struct pgd_sampling_params *d, const struct pgd_sampling_params *s)
{
    *d = *s;
    d->stop = NULL;
    d->stop_token_ids = NULL;
    d->logit_bias = NULL;
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

enum pgd_status pgd_engine_submit(struct pgd_engine *e, const struct pgd_request_params *rp,
                                  struct pgd_stream **out, char *err, size_t errlen)
{
    *out = NULL;
    enum pgd_status st = validate_sampling(e, &rp->sampling, err, errlen);
    if (st != PGD_OK)
        return st;
    int32_t *ids = NULL;
    int n = 0;
    const int32_t *prompt = rp->prompt_ids;
    if (rp->prompt) {
        if (!e->has_tio)
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                            "request: a text prompt needs a tokenizer and this model has none "
                            "(send prompt_ids)");
        st = e->tio.encode(e->tio.ctx, rp->prompt, rp->add_special_tokens, &ids, &n, err, errlen);
        if (st != PGD_OK)
            return st;
        prompt = ids;
    } else {
        n = rp->n_prompt_ids;
        if (n > 0 && !prompt)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "request: n_prompt_ids is %d but prompt_ids is NULL", n);
    }
#define FAIL(code, ...) do { st = pgd_errf(err, errlen, code, __VA_ARGS__); goto fail; } while (0)
    struct req *r = NULL;
    if (n <= 0)
        FAIL(PGD_ERR_INVALID_ARG, "request: the prompt is empty");
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= e->vocab)
            FAIL(PGD_ERR_INVALID_ARG, "request: prompt token %d is %d, outside the vocabulary "
                 "[0, %d)", i, prompt[i], e->vocab);
    int max_out = rp->sampling.max_tokens > 0 ? rp->sampling.max_tokens : e->max_model_len - n;
    if (max_out <= 0 || (long)n + max_out > e->max_model_len)
        FAIL(PGD_ERR_INVALID_ARG, "request: prompt (%d tokens) + max_tokens (%d) exceeds "
             "max_model_len %d", n, max_out, e->max_model_len);
    if (max_out < rp->sampling.min_tokens)
        FAIL(PGD_ERR_INVALID_ARG, "request: min_tokens %d exceeds the room left (%d tokens)",
             rp->sampling.min_tokens, max_out);
    /* The last generated token is never computed: it needs no KV. */
    int need = pgd__kv_blocks_for(&e->kv, n + max_out - 1);
    if (need > e->kv.pool.num_blocks)
        FAIL(PGD_ERR_INVALID_ARG, "request: prompt (%d tokens) + max_tokens (%d) needs %d KV "
             "blocks of %d tokens; the whole cache has %d", n, max_out, need,
             e->kv.block_size, e->kv.pool.num_blocks);
    if (!e->p.enable_chunked_prefill && n + max_out - 1 > e->p.max_num_batched_tokens)
        FAIL(PGD_ERR_INVALID_ARG, "request: %d tokens to compute at once exceed "
             "max_num_batched_tokens %d (chunked prefill is off)", n + max_out - 1,
             e->p.max_num_batched_tokens);
    bool detok = rp->detokenize && e->has_tio;
    if (rp->sampling.n_stop > 0 && !detok)
        FAIL(PGD_ERR_INVALID_ARG, "request: stop strings need detokenize on");

    r = calloc(1, sizeof *r);
    if (!r)
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    if (sp_copy(&r->sp, &rp->sampling) != PGD_OK)
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    int nc = rp->sampling.n;
    r->n_children = nc;
    r->n_prompt = n;
    r->max_out = max_out;
    r->priority = rp->priority;
    r->detokenize = detok;
    r->t_arrival = now_s();
    if (rp->cache_salt && *rp->cache_salt && !(r->salt = strdup(rp->cache_salt)))
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    r->children = calloc((size_t)nc, sizeof *r->children);
    if (!r->children)
        FAIL(PGD_ERR_NOMEM, "request: no memory");
    if (rp->sampling.prompt_logprobs >= 0 && n > 1) {
        r->plps = calloc((size_t)n - 1, sizeof *r->plps);
        if (rp->sampling.prompt_logprobs > 0)
            r->plp_top = calloc((size_t)(n - 1) * (size_t)rp->sampling.prompt_logprobs,
                                sizeof *r->plp_top);
        if (!r->plps || (rp->sampling.prompt_logprobs > 0 && !r->plp_top))
            FAIL(PGD_ERR_NOMEM, "request: no memory for prompt logprobs");
    }
    pthread_mutex_lock(&e->mu);
    uint64_t id = e->next_id++;
    uint64_t arrival = id;
    r->seed = rp->sampling.has_seed ? rp->sampling.seed : splitmix64(&e->seed_state);
    pthread_mutex_unlock(&e->mu);
    r->id = id;
    for (int i = 0; i < nc; i++) {
        struct child *c = &r->children[i];
        c->req = r;
        c->index = i;
        st = pgd__seq_init(&c->seq, id, prompt, n, n + max_out, err, errlen);
        if (st != PGD_OK)
            goto fail;
        c->seq.owner = c;
        c->seq.priority = rp->priority;
        c->seq.arrival = arrival;
        c->seq.kv.salt = r->salt;
        c->seq.kv.salt_len = r->salt ? strlen(r->salt) : 0;
        if (i == 0 && r->plps)
            c->seq.use_prefix_cache = false;   /* prompt logprobs need every prompt row */
        if (i > 0 && e->p.enable_prefix_caching)
            c->seq.leader = &r->children[0].seq;
        if (detok)
            c->detok = e->tio.detok_new(e->tio.ctx, prompt, n, rp->sampling.skip_special_tokens);
    }
    r->stream = stream_create(id, nc);
    if (!r->stream)
        FAIL(PGD_ERR_NOMEM, "request: no memory for its stream");
    r->stream->engine = e;
    free(ids);
    ids = NULL;

    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        stream_free(r->stream);
        r->stream = NULL;
        FAIL(PGD_ERR_CLOSED, "engine: shutting down");
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
fail:
    free(ids);
    req_free(r, e->has_tio ? &e->tio : NULL);
    return st;
#undef FAIL
}

void pgd_engine_abort(struct pgd_engine *e, uint64_t request_id)
{
    pthread_mutex_lock(&e->mu);
    if (e->n_aborts == e->aborts_cap) {
        int cap = e->aborts_cap ? e->aborts_cap * 2 : 16;
        uint64_t *a = realloc(e->aborts, (size_t)cap * sizeof *a);
        if (!a) {
            pthread_mutex_unlock(&e->mu);
            PGD_ERROR("engine: no memory to queue the abort of request %llu",
                      (unsigned long long)request_id);
            return;
        }
        e->aborts = a;
        e->aborts_cap = cap;
    }
    e->aborts[e->n_aborts++] = request_id;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void pgd_stream_destroy(struct pgd_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    /* Lock order: a stream's mu, then the engine's mu (the engine thread never holds its
     * mu while it takes a stream's). While s->engine is set the engine is alive. */
    if (s->engine && s->n_final_queued < s->n_samples)
        pgd_engine_abort(s->engine, s->request_id);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        stream_free(s);
}

/* ---- stats and metrics ----------------------------------------------------------------- */

void pgd_engine_get_stats(struct pgd_engine *e, struct pgd_engine_stats *out)
{
    pthread_mutex_lock(&e->stats_mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
}

enum pgd_status pgd_engine_metrics_text(struct pgd_engine *e, char **text, size_t *len)
{
    pthread_mutex_lock(&e->stats_mu);
    struct pgd_engine_stats s = e->stats;
    struct pgd__engine_metrics m = e->metrics;
    pthread_mutex_unlock(&e->stats_mu);
    return pgd__engine_metrics_text(&m, &s, text, len);
}
