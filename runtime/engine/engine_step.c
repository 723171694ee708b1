/* The engine thread: its loop (wait for work, take the inbox, admit and abort, step) and one
 * step: schedule -> prepare (the backend's sequences and logits-row descriptors) -> run
 * (forward and sample, on the backend or the host; with async scheduling submitted, the step
 * before landing meanwhile: engine_async.c) -> update the scheduler -> emit each sampled
 * token -> retire finished requests. Also the paranoid invariant check of tests. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>

/* ---- the step ------------------------------------------------------------------------ */

/* The prompt logprobs of prompt position p + 1 (entry p of the request's arrays) from its
 * row's result. */
static void prompt_logprobs_row(struct pgd__req *rq, int p, const struct pgd__sample_result *res)
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

/* Sample 0 of a request with prompt logprobs, still computing its prompt: every new token
 * of the step gets its logits row. */
static bool wants_prompt_logprobs(const struct pgd__child *c)
{
    return c->index == 0 && c->req->plps && c->seq.n_computed < c->req->n_prompt;
}

/* The descriptors of seq's logits rows (the last nl of its n_new new tokens, which are the
 * step's batch tokens from index first) into rows: prompt-logprobs rows for prompt
 * positions, a sample row for the last when the step completes the sequence, a sample row
 * for every one when it verifies proposals (each row samples the token after its
 * position, with the tokens before it as context). */
static void describe_rows(const struct pgd_engine *e, const struct pgd__seq *seq,
                          const struct pgd__step_seq *ss, int first,
                          struct pgd__sample_row *rows)
{
    const struct pgd__child *c = seq->owner;
    const struct pgd__req *rq = c->req;
    int nl = ss->n_logits;
    bool completes = ss->n_computed + ss->n_new == seq->n_tokens;
    bool plp = c->index == 0 && rq->plps && nl == ss->n_new && ss->n_computed < rq->n_prompt;
    for (int j = 0; j < nl; j++) {
        struct pgd__sample_row *row = &rows[j];
        int p = ss->n_computed + ss->n_new - nl + j;     /* row j predicts token p + 1 */
        memset(row, 0, sizeof *row);
        row->kind = PGD__ROW_SKIP;
        row->n_top = -1;
        if (seq->n_spec > 0 || (completes && j == nl - 1)) {
            row->kind = PGD__ROW_SAMPLE;
            row->n_top = rq->sp.logprobs;
            row->ctx = (struct pgd__sample_ctx){
                .sp = &rq->sp,
                .tokens = seq->tokens,
                .n_prompt = seq->n_prompt,
                .n_out = p + 1 - seq->n_prompt,
                .eos = e->be.eos_ids,
                .n_eos = e->be.n_eos,
                .seed = rq->seed,
                .child = (uint32_t)c->index,
            };
            /* Async scheduling: token p is still the step before's to sample. */
            row->pending = seq->n_pending > 0;
            row->pending_at = first + p - ss->n_computed;
        } else if (plp && p + 1 < rq->n_prompt) {
            /* A prompt position: the logprob of the prompt's own next token. */
            row->kind = PGD__ROW_TARGET;
            row->target = seq->tokens[p + 1];
            row->n_top = rq->sp.prompt_logprobs;
        }
    }
}

/* prepare: e->cur->ss[i] for each scheduled sequence (its new tokens, its block table, how
 * many logits rows) and e->cur->rows for every logits row, in the order of o; observes the
 * queue time of requests scheduled for the first time (and stamps their t_scheduled).
 * Returns the number of rows; *prompt_computed gets the prompt tokens the step computes,
 * *step_tokens all the tokens it computes. */
static int prepare_step(struct pgd_engine *e, const struct pgd__sched_out *o,
                        uint64_t *prompt_computed, int *step_tokens)
{
    double t = pgd__engine_now();
    *prompt_computed = 0;
    for (int i = 0; i < o->n; i++) {
        struct pgd__seq *seq = o->seqs[i];
        struct pgd__child *c = seq->owner;
        struct pgd__req *rq = c->req;
        if (!rq->scheduled) {
            rq->scheduled = true;
            rq->t_scheduled = t;
            pgd__stats_on_scheduled(e, rq, t);
        }
        int n_new = o->n_new[i];
        if (seq->n_computed < seq->n_prompt) {
            /* The part of [n_computed, n_computed + n_new) that is still prompt. */
            int end = seq->n_computed + n_new < seq->n_prompt ? seq->n_computed + n_new
                                                              : seq->n_prompt;
            *prompt_computed += (uint64_t)(end - seq->n_computed);
        }
        /* The step reaches the sequence's end: its last row samples the next token. */
        bool completes = seq->n_computed + n_new == seq->n_tokens;
        /* Async scheduling: a placeholder is the last token, computed alone (the step
         * before samples it: only a finished prompt has one, and none is waiting). */
        PGD_ASSERT(seq->n_pending == 0 ||
                   (seq->n_pending == 1 && n_new == 1 && completes));
        e->cur->ss[i] = (struct pgd__step_seq){
            .tokens = seq->tokens + seq->n_computed,
            .n_new = n_new,
            .n_computed = seq->n_computed,
            .block_table = seq->kv.blocks,
            .n_blocks = seq->kv.n_blocks,
            .n_logits = rq->pooling != PGD_POOLING_NONE
                            ? pgd__pool_n_rows(rq->pooling, seq->n_computed, n_new, completes)
                        : wants_prompt_logprobs(c) || seq->n_spec > 0 ? n_new
                                                                      : (completes ? 1 : 0),
            .pending = seq->n_pending > 0,
            .pending_row = seq->pending_row,
        };
    }
    int n_rows = 0;
    *step_tokens = 0;
    for (int i = 0; i < o->n; i++) {
        /* A pooling sequence's rows are hidden states (pgd__pool_take), not logits. */
        if (((struct pgd__child *)o->seqs[i]->owner)->req->pooling == PGD_POOLING_NONE)
            describe_rows(e, o->seqs[i], &e->cur->ss[i], *step_tokens,
                          e->cur->rows + n_rows);
        n_rows += e->cur->ss[i].n_logits;
        *step_tokens += e->cur->ss[i].n_new;
    }
    pgd__engine_row_masks(e, o);
    return n_rows;
}

/* run: the backend samples (on a GPU only the results come back, not [rows, vocab] floats),
 * or hands back the logits for the host sampler. e->cur->res gets one result per row. */
enum pgd_status pgd__engine_run_step(struct pgd_engine *e, int n_seqs, int n_rows, char *err,
                                     size_t errlen)
{
    struct pgd__step_set *s = e->cur;
    /* An embed engine's steps hold pooling sequences only: hidden rows, nothing sampled. */
    if (e->p.task == PGD_TASK_EMBED)
        return e->be.step_hidden(e->be.ctx, s->ss, n_seqs, &e->hidden, err, errlen);
    if (e->be.step_sample && e->device_sampling)
        return e->be.step_sample(e->be.ctx, s->ss, n_seqs, s->rows, s->res, err, errlen);
    const float *logits = NULL;
    enum pgd_status st = e->be.step(e->be.ctx, s->ss, n_seqs, &logits, err, errlen);
    if (st == PGD_OK)
        pgd__sample_rows_host(&e->sampler, e->row, logits, s->rows, n_rows, s->res);
    return st;
}

/* emit: each row's result of the step whose buffers are s (its sequences seqs [n]), in the
 * order prepare_step laid the rows out: prompt logprobs into their request, sampled tokens
 * appended (or, async scheduling, put in their placeholder) and emitted; then the
 * constrained samples' jump-forward. Rows of a sample that ended while its step was in
 * flight are dropped. */
void pgd__engine_emit_results(struct pgd_engine *e, struct pgd__seq *const *seqs, int n,
                              const struct pgd__step_set *s)
{
    int k = 0;                      /* the row, across all sequences */
    int n_jump = 0;                 /* constrained samples that took a token */
    for (int i = 0; i < n; i++) {
        struct pgd__seq *seq = seqs[i];
        struct pgd__child *c = seq->owner;
        const struct pgd__step_seq *ss = &s->ss[i];
        if (c->done) {
            k += ss->n_logits;
            continue;
        }
        if (c->req->pooling != PGD_POOLING_NONE) {
            pgd__pool_take(e, seq, ss, e->hidden + (size_t)k * e->be.hidden_size);
            k += ss->n_logits;
            continue;
        }
        if (seq->n_spec > 0) {
            /* A verify run: every row is a sample (engine_spec.c). */
            pgd__spec_verify_emit(e, seq, ss->n_logits, &s->res[k]);
            k += ss->n_logits;
            continue;
        }
        for (int j = 0; j < ss->n_logits; j++, k++) {
            const struct pgd__sample_row *row = &s->rows[k];
            if (row->kind == PGD__ROW_TARGET) {
                /* Row j is new token n_new - n_logits + j (see describe_rows). */
                prompt_logprobs_row(c->req, ss->n_computed + ss->n_new - ss->n_logits + j,
                                    &s->res[k]);
            } else if (row->kind == PGD__ROW_SAMPLE) {
                if (c->n_ahead > 0) {
                    c->n_ahead--;       /* jump-forward took its token ahead */
                    continue;
                }
                int32_t tok = s->res[k].token;
                if (c->gm)
                    pgd__guide_advance(e, c, tok);
                if (seq->n_pending > 0) {
                    seq->tokens[seq->n_tokens - seq->n_pending--] = tok;   /* the oldest */
                    pgd__scheduler_cache_known(&e->sched, seq);
                } else {
                    pgd__seq_append(seq, tok);
                }
                pgd__emit_token(e, c, tok, &s->res[k]);
                if (c->gm)
                    e->jump_cs[n_jump++] = c;
            }
        }
    }
    pgd__jump_forward(e, e->jump_cs, n_jump);
}

/* Retires the requests whose samples all finished. */
void pgd__engine_retire_finished(struct pgd_engine *e)
{
    for (struct pgd__req *r = e->active, *n; r; r = n) {
        n = r->next;
        if (r->n_done == r->n_children)
            pgd__req_retire(e, r);
    }
}

/* Preemption by swapping: the plan's block copies, swap-outs first (kv_manager.h's
 * ordering), before the step's forward pass reads or overwrites those blocks. */
static enum pgd_status run_swaps(struct pgd_engine *e, const struct pgd__sched_out *o,
                                 char *err, size_t errlen)
{
    enum pgd_status st = PGD_OK;
    if (o->swap_out.n > 0)
        st = e->be.swap_blocks(e->be.ctx, true, o->swap_out.dev, o->swap_out.host,
                               o->swap_out.n, err, errlen);
    if (st == PGD_OK && o->swap_in.n > 0)
        st = e->be.swap_blocks(e->be.ctx, false, o->swap_in.dev, o->swap_in.host,
                               o->swap_in.n, err, errlen);
    return st;
}

/* One step: [land the step in flight when the next needs its tokens] -> propose
 * (speculative decoding) -> schedule -> swap -> prepare -> run (async: submit, update, land
 * the step before) -> update the scheduler -> emit -> retire. A failed model step aborts
 * every request (their KV is in an unknown state). */
static void engine_step(struct pgd_engine *e)
{
    /* The phases' times (see struct pgd_engine_stats' step_*_s) and the device's seconds. */
    double t[5], dev0 = e->be.device_seconds ? e->be.device_seconds(e->be.ctx) : 0.0;
    t[0] = pgd__engine_now();
    if (e->flight && pgd__flight_must_land(e) &&
        (!pgd__flight_land(e) || !pgd__scheduler_has_work(&e->sched)))
        return;
    if (!pgd__spec_propose(e))
        return;
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&e->sched);
    t[1] = pgd__engine_now();
    char err[256] = "";
    /* Copies first, even for an empty plan: a swap-out's blocks are already released. */
    enum pgd_status st = run_swaps(e, o, err, sizeof err);
    if (st != PGD_OK) {
        PGD_ERROR("engine: swapping KV blocks failed (%s): %s; aborting every request",
                  pgd_status_str(st), err);
        pgd__engine_fail_all(e);
        return;
    }
    if (o->n == 0) {
        /* Async: what is left to plan waits for the step in flight (its last tokens). */
        if (e->flight) {
            pgd__flight_land(e);
            return;
        }
        PGD_WARN("engine: nothing schedulable with %d waiting, %d swapped, %d running",
                 e->sched.n_waiting, e->sched.n_swapped, e->sched.n_running);
        pgd__spec_drop_unverified(e);
        return;
    }
    uint64_t prompt_computed;
    int step_tokens;
    int n_rows = prepare_step(e, o, &prompt_computed, &step_tokens);
    t[2] = pgd__engine_now();
    /* The step's kind, copied before the update, the emits and the retirements (o is the
     * scheduler's): the counters and the times below are filed under this step's kind. */
    bool decode_only = o->decode_only;
    if (e->async && e->device_sampling) {
        if (!pgd__flight_submit(e, o, n_rows, prompt_computed, step_tokens, t))
            return;
    } else {
        st = pgd__engine_run_step(e, o->n, n_rows, err, sizeof err);
        t[3] = pgd__engine_now();
        if (st != PGD_OK) {
            PGD_ERROR("engine: model step failed (%s): %s; aborting every request",
                      pgd_status_str(st), err);
            /* No update: the planned blocks never got their KV, so none may be cached. */
            pgd__engine_fail_all(e);
            return;
        }
        /* e->cur->ss[i].n_computed keeps where each planned sequence started. */
        pgd__scheduler_update(&e->sched, o);
        /* The step's counters, before any of its outputs reaches a stream: a caller that
         * reads the stats once its streams closed sees every step that fed them. */
        pgd__stats_on_step(e, prompt_computed, step_tokens, decode_only);
        pgd__engine_emit_results(e, o->seqs, o->n, e->cur);
        pgd__spec_drop_unverified(e);
    }
    pgd__engine_retire_finished(e);
    pgd__stats_gauges(e);
    t[4] = pgd__engine_now();
    double device_s = e->be.device_seconds ? e->be.device_seconds(e->be.ctx) - dev0 : 0.0;
    pgd__stats_on_step_times(e, t, device_s, decode_only);
}

/* ---- invariants (tests) ---------------------------------------------------------------- */

/* Every block's count equals the number of live sequences listing it; every host block of
 * the swap pool is free or held by exactly one swapped-out sequence. */
static bool check_invariants(struct pgd_engine *e, char *err, size_t errlen)
{
    if (!pgd__block_pool_check(&e->kv.pool, err, errlen) ||
        !pgd__swap_pool_check(&e->kv.swap, err, errlen))
        return false;
    int held = 0;
    for (struct pgd__req *r = e->active; r; r = r->next)
        for (int i = 0; i < r->n_children; i++) {
            const struct pgd__seq *s = &r->children[i].seq;
            if ((s->status == PGD__SEQ_SWAPPED) != (s->kv.n_swap_blocks > 0)) {
                pgd_errf(err, errlen, PGD_ERR_INTERNAL, "seq %llu: %d host blocks, status %d",
                         (unsigned long long)s->id, s->kv.n_swap_blocks, (int)s->status);
                return false;
            }
            held += s->kv.n_swap_blocks;
        }
    if (held + pgd__swap_pool_num_free(&e->kv.swap) != e->kv.swap.num_blocks) {
        pgd_errf(err, errlen, PGD_ERR_INTERNAL, "swap pool: %d held + %d free of %d blocks",
                 held, pgd__swap_pool_num_free(&e->kv.swap), e->kv.swap.num_blocks);
        return false;
    }
    int nb = e->kv.pool.num_blocks;
    int *holders = calloc((size_t)nb, sizeof *holders);   /* [nb] sequences listing block b */
    if (!holders)
        pgd__oom("engine: block holders", (size_t)nb * sizeof *holders);
    bool ok = true;
    for (struct pgd__req *r = e->active; r; r = r->next)
        for (int i = 0; i < r->n_children; i++) {
            const struct pgd__seq *s = &r->children[i].seq;
            if (s->status != PGD__SEQ_RUNNING && s->kv.n_blocks != 0) {
                pgd_errf(err, errlen, PGD_ERR_INTERNAL, "seq %llu: %d blocks while not running",
                         (unsigned long long)s->id, s->kv.n_blocks);
                ok = false;
            }
            /* Entries before n_released went back to the pool (a sliding window left them). */
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

/* Paranoid mode: a broken invariant stops the process with the reason in the log. */
static void assert_invariants(struct pgd_engine *e)
{
    char err[256];
    if (!check_invariants(e, err, sizeof err)) {
        PGD_ERROR("engine: invariant broken: %s", err);
        PGD_ASSERT(!"engine invariant");
    }
}

/* ---- the loop -------------------------------------------------------------------------- */

/* What the engine thread took from the shared inbox in one go (under e->mu), to act on
 * without the lock. */
struct inbox {
    struct pgd__req *pending;       /* owned now: to admit, oldest first */
    uint64_t *aborts;               /* owned [cap], kept across rounds: ids to abort */
    int n_aborts;
    size_t cap;
    struct pgd__sample_stop *stops; /* owned [stops_cap], kept across rounds: samples whose
                                       reader saw a stop string */
    int n_stops;
    size_t stops_cap;
    bool stop;
    bool paranoid;
};

/* Waits until there is something to do (a request, an abort, stop, or work the scheduler
 * holds) and moves the inbox into in. */
static void inbox_take(struct pgd_engine *e, struct inbox *in)
{
    pthread_mutex_lock(&e->mu);
    while (!e->stop &&
           (e->held || (!e->pending_head && e->n_aborts == 0 && e->n_sample_stops == 0 &&
                        !pgd__scheduler_has_work(&e->sched) && !e->flight)))
        pthread_cond_wait(&e->cv, &e->mu);
    in->pending = e->pending_head;
    e->pending_head = e->pending_tail = NULL;
    in->n_aborts = e->n_aborts;
    pgd__array_reserve_or_oom(in->aborts, in->cap, (size_t)in->n_aborts, "engine: abort list");
    if (in->n_aborts)
        memcpy(in->aborts, e->aborts, (size_t)in->n_aborts * sizeof *in->aborts);
    e->n_aborts = 0;
    in->n_stops = e->n_sample_stops;
    pgd__array_reserve_or_oom(in->stops, in->stops_cap, (size_t)in->n_stops,
                              "engine: sample stop list");
    if (in->n_stops)
        memcpy(in->stops, e->sample_stops, (size_t)in->n_stops * sizeof *in->stops);
    e->n_sample_stops = 0;
    in->stop = e->stop;
    in->paranoid = e->paranoid;
    e->device_sampling = !e->no_device_sampling;
    e->jump_forward = !e->no_jump_forward;
    e->mask_threads = e->mask_threads_set;
    e->sched.p.headroom_steps = e->headroom_steps;
    e->sched.p.preempt_cheapest = e->preempt_cheapest;
    pthread_mutex_unlock(&e->mu);
}

/* Admits r: the active list and the scheduler's waiting queue get it. */
static void admit(struct pgd_engine *e, struct pgd__req *r)
{
    r->next = e->active;
    r->prev = NULL;
    if (e->active)
        e->active->prev = r;
    e->active = r;
    for (int i = 0; i < r->n_children; i++)
        pgd__scheduler_add(&e->sched, &r->children[i].seq);
    pgd__stats_on_admit(e, r);
}

/* Admits the new requests, then ends the samples their readers stopped, then aborts: an
 * abort that raced its own submission finds its request admitted, and a reader that saw a
 * stop string and then let go of its stream (an abort) has its sample counted as the stop
 * it was. Unknown ids (finished requests) are ignored. */
static void inbox_apply(struct pgd_engine *e, const struct inbox *in)
{
    for (struct pgd__req *r = in->pending, *n; r; r = n) {
        n = r->next;
        admit(e, r);
    }
    for (int i = 0; i < in->n_stops; i++)
        for (struct pgd__req *r = e->active; r; r = r->next)
            if (r->id == in->stops[i].request_id) {
                if (in->stops[i].index >= 0 && in->stops[i].index < r->n_children)
                    pgd__child_stop_by_reader(e, &r->children[in->stops[i].index]);
                if (r->n_done == r->n_children)
                    pgd__req_retire(e, r);
                break;
            }
    for (int i = 0; i < in->n_aborts; i++)
        for (struct pgd__req *r = e->active; r; r = r->next)
            if (r->id == in->aborts[i]) {
                pgd__req_abort(e, r);
                break;
            }
}

void *pgd__engine_main(void *arg)
{
    struct pgd_engine *e = arg;
    struct inbox in = { 0 };
    for (;;) {
        inbox_take(e, &in);
        inbox_apply(e, &in);
        if (in.stop) {
            pgd__engine_fail_all(e);
            break;
        }
        if (pgd__scheduler_has_work(&e->sched) || e->flight)
            engine_step(e);
        else
            pgd__stats_gauges(e);
        /* The step's outputs' readers, woken by the notifier thread. */
        pgd__notifier_flush(&e->notifier);
        if (in.paranoid)
            assert_invariants(e);
    }
    free(in.aborts);
    free(in.stops);
    return NULL;
}
