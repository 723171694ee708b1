/* Async scheduling (vLLM's --async-scheduling; docs/ARCHITECTURE.md): the step in flight.
 * With e->async a step is submitted (the backend queues it and returns), the scheduler is
 * updated at once, and each sequence that samples gets a placeholder for its token. Then
 * the step before it lands (its results are collected and emitted) while the device runs
 * this one, which becomes the step in flight. The next step may compute those placeholders:
 * the backend puts the sampled tokens in (struct pgd__step_seq's pending). A sequence's last
 * token gets no placeholder, so that no step computes past a sequence's end; a sample that
 * ends otherwise (EOS, a stop, an abort) while its next step is in flight has that step's
 * row dropped. */
#include "runtime/engine/engine_internal.h"
#include <pagoda/log.h>
#include <string.h>

/* Whether child c's next step needs its last token on the host before it is planned: the
 * allowed-token masks of structured output and bad words, unless the backend samples late
 * (submit_masks: the masks are made once the step in flight lands, while the next one
 * runs); and the penalties, which count the output's tokens, unless the backend counts the
 * pending one (a backend without submit has it from the step in flight before it runs the
 * next: submit_step). */
static bool needs_token_on_host(const struct pgd_engine *e, const struct pgd__child *c)
{
    const struct pgd_sampling_params *sp = &c->req->sp;
    if (c->gm || c->req->bw.n > 0)
        return !(e->be.submit && e->be.submit_masks);
    const bool penalised = sp->presence_penalty != 0 || sp->frequency_penalty != 0 ||
                           sp->repetition_penalty != 1.0f;
    return penalised && e->be.submit && !e->be.submit_penalties;
}

/* Whether the step in flight must land before the next one is planned: this round steps
 * in turn (host sampling, for tests), or a sample in it needs its token on the host. */
bool pgd__flight_must_land(const struct pgd_engine *e)
{
    if (!e->device_sampling)
        return true;
    for (int i = 0; i < e->flight->n; i++) {
        const struct pgd__child *c = e->flight->seqs[i]->owner;
        if (!c->done && needs_token_on_host(e, c))
            return true;
    }
    return false;
}

/* Each sequence of the submitted step o whose last row samples gets a placeholder for the
 * token (and remembers the row), unless that token is its last (max_tokens or the model's
 * length): that one is appended when the step lands, and no step is planned for it. */
static void add_placeholders(struct pgd_engine *e, const struct pgd__sched_out *o)
{
    int k = 0;                      /* the row, across all sequences */
    for (int i = 0; i < o->n; i++) {
        struct pgd__seq *seq = o->seqs[i];
        const int nl = e->cur->ss[i].n_logits;
        k += nl;
        if (nl == 0 || e->cur->rows[k - 1].kind != PGD__ROW_SAMPLE ||
            seq->n_tokens + 1 >= seq->tokens_cap || seq->n_tokens + 1 >= e->max_model_len)
            continue;
        seq->tokens[seq->n_tokens++] = -1;
        seq->n_pending++;
        seq->pending_row = k - 1;
    }
}

/* Submits e->cur's step of o's sequences and n_rows rows: the backend's submit, or (a
 * backend without one) the step run to its end now, its pending tokens put in first from
 * the results of the step in flight, over their placeholders in the sequences' tokens:
 * the step's input (its step_seq's tokens point there) and its sampling rows' context
 * (the penalties count them) read them there; landing writes the same id again. */
static enum pgd_status submit_step(struct pgd_engine *e, const struct pgd__sched_out *o,
                                   int n_rows, char *err, size_t errlen)
{
    struct pgd__step_set *s = e->cur;
    if (e->be.submit)
        return e->be.submit(e->be.ctx, s->ss, o->n, s->rows, err, errlen);
    for (int i = 0; i < o->n; i++) {
        struct pgd__step_seq *q = &s->ss[i];
        if (!q->pending)
            continue;
        PGD_ASSERT(e->flight && q->pending_row >= 0 && q->pending_row < e->flight->n_rows);
        struct pgd__seq *seq = o->seqs[i];
        PGD_ASSERT(q->tokens == seq->tokens + seq->n_tokens - seq->n_pending);
        seq->tokens[seq->n_tokens - seq->n_pending] = e->flight->res[q->pending_row].token;
        q->pending = false;
    }
    return pgd__engine_run_step(e, o->n, n_rows, err, errlen);
}

/* Submitted step s samples, its late masks made first (make) or left out (its results
 * are to be dropped): the backend's submit_masks, once, for a step with allow_late rows. */
static enum pgd_status send_late_masks(struct pgd_engine *e, struct pgd__step_set *s, bool make,
                                       char *err, size_t errlen)
{
    if (!s->late_masks)
        return PGD_OK;
    s->late_masks = false;
    if (make)
        pgd__engine_late_masks(e, s);
    return e->be.submit_masks(e->be.ctx, err, errlen);
}

/* The results of submitted step f from the backend, into f->res (a backend without
 * collect put them there when the step was submitted). A step whose masks never came
 * (a failure dropped it first) samples without them. */
static enum pgd_status set_collect(struct pgd_engine *e, struct pgd__step_set *f, char *err,
                                   size_t errlen)
{
    if (!e->be.collect)
        return PGD_OK;
    enum pgd_status st = send_late_masks(e, f, false, err, errlen);
    if (st != PGD_OK)
        return st;
    int n_rows = 0;
    st = e->be.collect(e->be.ctx, f->res, &n_rows, err, errlen);
    if (st == PGD_OK && n_rows != f->n_rows)
        st = pgd_errf(err, errlen, PGD_ERR_INTERNAL, "engine: a step of %d rows came back "
                      "with %d results", f->n_rows, n_rows);
    return st;
}

/* Step f no longer holds its requests' samples: they may retire. */
static void set_release(struct pgd__step_set *f)
{
    for (int i = 0; i < f->n; i++)
        ((struct pgd__child *)f->seqs[i]->owner)->req->n_in_flight--;
    f->n = 0;
}

void pgd__engine_flight_drop(struct pgd_engine *e)
{
    struct pgd__step_set *f = e->flight;
    if (!f)
        return;
    e->flight = NULL;
    char err[256];
    if (set_collect(e, f, err, sizeof err))
        PGD_WARN("engine: the step in flight could not be collected: %s", err);
    set_release(f);
}

/* A step failed: every request is aborted, and the prefix cache forgets every block. The
 * steps submitted meanwhile had their blocks cached at once, before their KV was written,
 * and that KV is now in an unknown state (stepping in turn, a failed step caches nothing). */
static void fail(struct pgd_engine *e, enum pgd_status st, const char *err)
{
    PGD_ERROR("engine: model step failed (%s): %s; aborting every request",
              pgd_status_str(st), err);
    pgd__engine_fail_all(e);
    pgd__block_pool_reset_cache(&e->kv.pool);
}

/* Step f (landing: no longer in flight) is collected (*t_collected stamped then, when not
 * NULL) and emitted, and released; false when it failed (every request was aborted then). */
static bool land(struct pgd_engine *e, struct pgd__step_set *f, double *t_collected)
{
    char err[256] = "";
    enum pgd_status st = set_collect(e, f, err, sizeof err);
    if (t_collected)
        *t_collected = pgd__engine_now();
    if (st == PGD_OK)
        pgd__engine_emit_results(e, f->seqs, f->n, f);
    set_release(f);
    if (st != PGD_OK) {
        fail(e, st, err);
        return false;
    }
    return true;
}

/* The step in flight lands now, its finished requests retire, and the gauges follow (the
 * engine may have nothing left to step). */
bool pgd__flight_land(struct pgd_engine *e)
{
    struct pgd__step_set *f = e->flight;
    e->flight = NULL;
    if (!land(e, f, NULL))
        return false;
    pgd__engine_retire_finished(e);
    pgd__stats_gauges(e);
    return true;
}

/* The planned step o (prepared in e->cur) is submitted and becomes the step in flight; the
 * one before it lands, and then the new step's late masks are made and it samples (its
 * forward pass runs meanwhile). t[3] is stamped once that one's results are in (or at
 * once), before its outputs. False when a step failed (every request was aborted then). */
bool pgd__flight_submit(struct pgd_engine *e, const struct pgd__sched_out *o, int n_rows,
                        uint64_t prompt_computed, int step_tokens, double t[5])
{
    char err[256] = "";
    struct pgd__step_set *s = e->cur;
    enum pgd_status st = submit_step(e, o, n_rows, err, sizeof err);
    if (st != PGD_OK) {
        fail(e, st, err);
        return false;
    }
    pgd__scheduler_update(&e->sched, o);
    pgd__stats_on_step(e, prompt_computed, step_tokens, o->decode_only);
    add_placeholders(e, o);
    memcpy(s->seqs, o->seqs, (size_t)o->n * sizeof *s->seqs);
    s->n = o->n;
    s->n_rows = n_rows;
    for (int i = 0; i < o->n; i++)
        ((struct pgd__child *)o->seqs[i]->owner)->req->n_in_flight++;
    /* This step flies; the one before lands, and its buffers are the next step's. */
    struct pgd__step_set *before = e->flight;
    e->flight = s;
    e->cur = before ? before : &e->sets[s == &e->sets[0] ? 1 : 0];
    t[3] = pgd__engine_now();
    if (before && !land(e, before, &t[3]))
        return false;
    if ((st = send_late_masks(e, s, true, err, sizeof err)) != PGD_OK) {
        fail(e, st, err);
        return false;
    }
    return true;
}

