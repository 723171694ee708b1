/* Emitting outputs (engine thread only): what becomes of a sampled token (stop tokens, the
 * text delta held back for stop strings, the length limit, logprobs), the output record
 * pushed on the request's stream, and the end of a sample or a request (finish, abort,
 * retire). */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>

/* Token usage of c so far into r (every output carries it, so the last one is the total). */
static void usage_fill(struct pgd__out_rec *r, const struct pgd__child *c)
{
    r->o.prompt_tokens = c->req->n_prompt;
    r->o.completion_tokens = c->n_out;
    /* n_cached_tokens is -1 until the sequence was first scheduled. */
    r->o.cached_tokens = c->seq.n_cached_tokens > 0 ? c->seq.n_cached_tokens : 0;
}

/* A new, empty output of child c (owned by the caller until pushed). */
static struct pgd__out_rec *rec_new(const struct pgd__child *c)
{
    struct pgd__out_rec *r = calloc(1, sizeof *r);
    if (!r)
        pgd__oom("engine: output record", sizeof *r);
    r->o.request_id = c->req->id;
    r->o.index = c->index;
    r->o.stop_token = -1;
    r->o.text = "";
    return r;
}

void pgd__req_retire(struct pgd_engine *e, struct pgd__req *r)
{
    if (r->n_in_flight > 0)
        return;             /* the step in flight holds its sequences: retired after it */
    if (r->prev)
        r->prev->next = r->next;
    else if (e->active == r)
        e->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    pgd__stream_release_engine(r->stream);
    pgd__req_free(r, e->has_tio ? &e->tio : NULL);
}

/* Ends a child: hands its sequence back to the scheduler (which releases its blocks and
 * clears the leader links of siblings that waited for it) and counts the finish. */
static void child_end(struct pgd_engine *e, struct pgd__child *c, enum pgd_finish_reason why)
{
    if (c->seq.status != PGD__SEQ_NEW)
        pgd__scheduler_finish(&e->sched, &c->seq);
    c->seq.status = PGD__SEQ_FINISHED;
    /* Async scheduling: placeholders of tokens still in flight are never filled now. */
    c->seq.n_tokens -= c->seq.n_pending;
    c->seq.n_pending = 0;
    pgd__stats_on_finish(e, c, why);
    c->done = true;
    c->req->n_done++;
}

void pgd__emit_embedding(struct pgd_engine *e, struct pgd__child *c, float *vec, int n)
{
    struct pgd__out_rec *r = rec_new(c);
    r->embedding = vec;
    r->o.embedding = vec;
    r->o.n_embedding = n;
    r->o.finish_reason = PGD_FINISH_STOP;
    usage_fill(r, c);
    /* As for a generated token: the blocks are back before the output is seen. */
    child_end(e, c, PGD_FINISH_STOP);
    pgd__stream_push(c->req->stream, r);
}

/* Ends an unfinished child for `why` with a last output of no token (finished ones already
 * had their last); error: PGD_FINISH_ERROR's reason (copied), else NULL. */
static void child_close(struct pgd_engine *e, struct pgd__child *c, enum pgd_finish_reason why,
                        const char *error)
{
    if (c->done)
        return;
    struct pgd__out_rec *r = rec_new(c);
    r->o.finish_reason = why;
    if (error && !(r->error = strdup(error)))
        pgd__oom("engine: output error", strlen(error) + 1);
    r->o.error = r->error;
    usage_fill(r, c);
    child_end(e, c, why);
    pgd__stream_push(c->req->stream, r);
}

void pgd__child_stop_by_reader(struct pgd_engine *e, struct pgd__child *c)
{
    child_close(e, c, PGD_FINISH_STOP, NULL);
}

void pgd__req_abort(struct pgd_engine *e, struct pgd__req *r)
{
    for (int i = 0; i < r->n_children; i++)
        child_close(e, &r->children[i], PGD_FINISH_ABORT, NULL);
    pgd__req_retire(e, r);
}

void pgd__engine_fail_all(struct pgd_engine *e)
{
    pgd__engine_flight_drop(e);
    while (e->active)
        pgd__req_abort(e, e->active);
}

/* Whether t is among ids[0, n) (n may be 0 with ids NULL). */
static bool contains(const int32_t *ids, int n, int32_t t)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == t)
            return true;
    return false;
}

/* The output for c's new token: the token, its logprobs (copied from res) when asked for,
 * and, on sample 0's first output, the prompt logprobs (moved out of the request). */
static struct pgd__out_rec *token_output(struct pgd__child *c, int32_t token,
                                         const struct pgd__sample_result *res)
{
    struct pgd__req *rq = c->req;
    const struct pgd_sampling_params *sp = &rq->sp;
    struct pgd__out_rec *r = rec_new(c);
    r->token = token;
    r->o.token_ids = &r->token;
    r->o.n_token_ids = 1;
    if (sp->logprobs >= 0) {
        if (sp->logprobs > 0) {
            r->lp_top = malloc((size_t)sp->logprobs * sizeof *r->lp_top);
            if (!r->lp_top)
                pgd__oom("engine: top logprobs", (size_t)sp->logprobs * sizeof *r->lp_top);
            memcpy(r->lp_top, res->top, (size_t)sp->logprobs * sizeof *r->lp_top);
        }
        r->lp.chosen = res->chosen;
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
        r->o.n_prompt_logprobs = rq->n_prompt - 1;   /* token 0 has no logprob */
    }
    return r;
}

/* EOS (unless ignore_eos) or one of the request's stop_token_ids: a stop, once min_tokens
 * were generated. Sets r's stop_token. */
static enum pgd_finish_reason stop_token(const struct pgd_engine *e, const struct pgd__child *c,
                                         int32_t token, bool may_stop, struct pgd__out_rec *r)
{
    const struct pgd_sampling_params *sp = &c->req->sp;
    if (!may_stop)
        return PGD_FINISH_NONE;
    if ((!sp->ignore_eos && contains(e->be.eos_ids, e->be.n_eos, token)) ||
        contains(sp->stop_token_ids, sp->n_stop_token_ids, token)) {
        r->o.stop_token = token;
        return PGD_FINISH_STOP;
    }
    return PGD_FINISH_NONE;
}

/* The sample has no room for another token: max_tokens, or max_model_len. */
static bool at_length(const struct pgd_engine *e, const struct pgd__child *c)
{
    /* Placeholders (async scheduling) are tokens not generated yet. */
    return c->n_out >= c->req->max_out ||
           c->seq.n_tokens - c->seq.n_pending >= e->max_model_len;
}

/* The text c's token adds, through the stop strings: detokenizes it (not a stop token,
 * unless include_stop_str_in_output), looks for a stop string (*fin becomes STOP on a hit),
 * and at the sample's end releases what the stop check held back. r gets the text that
 * became final. */
static void token_text(struct pgd_engine *e, struct pgd__child *c, int32_t token, bool may_stop,
                       enum pgd_finish_reason *fin, struct pgd__out_rec *r)
{
    const struct pgd_sampling_params *sp = &c->req->sp;
    /* The detokenizer may hold bytes (an unfinished UTF-8 sequence): at the length limit
     * they are the sample's last text, past any stop check. */
    const bool none = *fin == PGD_FINISH_NONE, last = at_length(e, c) || c->guide_done;
    size_t from;
    int hit = pgd__stop_text_token(&c->stop, &e->tio, c->detok, token,
                                   none || sp->include_stop_str_in_output, may_stop && none,
                                   none && last, !none || last, sp->stop, sp->n_stop,
                                   sp->include_stop_str_in_output, &from);
    if (hit >= 0) {
        *fin = PGD_FINISH_STOP;
        pgd__out_rec_set_stop_reason(r, sp->stop[hit]);
    }
    /* Everything released by this token: [from, released) of the stop buffer. */
    pgd__out_rec_append_text(r, c->stop.text.p + from, c->stop.released - from);
}

/* What the reader does with c's token for its text (engine_reader_text.c): token_text's
 * steps, with the decisions only the engine thread can take. fin: the token's stop so far
 * (a stop token); may_stop: min_tokens reached. */
static void reader_text_op(const struct pgd_engine *e, const struct pgd__child *c,
                           bool may_stop, enum pgd_finish_reason fin, struct pgd__out_rec *r)
{
    if (fin == PGD_FINISH_NONE || c->req->sp.include_stop_str_in_output)
        r->text_op |= PGD__TEXT_PUSH;
    if (may_stop && fin == PGD_FINISH_NONE && c->req->sp.n_stop > 0)
        r->text_op |= PGD__TEXT_CHECK;
    if (fin == PGD_FINISH_NONE && (at_length(e, c) || c->guide_done))
        r->text_op |= PGD__TEXT_FLUSH;
}

void pgd__emit_token(struct pgd_engine *e, struct pgd__child *c, int32_t token,
                     const struct pgd__sample_result *res)
{
    if (c->mask_error) {
        /* Its mask could not be made: it ends with the reason, and the token sampled under
         * the stand-in mask is dropped (so is any held-back text). */
        PGD_WARN("engine: request %llu: sample %d ends with an error: %s",
                 (unsigned long long)c->req->id, c->index, c->mask_error);
        child_close(e, c, PGD_FINISH_ERROR, c->mask_error);
        return;
    }
    double t = pgd__engine_now();
    c->n_out++;
    pgd__stats_on_token(e, c, t);
    c->t_last_token = t;

    struct pgd__out_rec *r = token_output(c, token, res);
    bool may_stop = c->n_out >= c->req->sp.min_tokens;
    enum pgd_finish_reason fin = stop_token(e, c, token, may_stop, r);
    if (c->detok)
        token_text(e, c, token, may_stop, &fin, r);
    else if (c->req->reader_text)
        reader_text_op(e, c, may_stop, fin, r);
    /* A complete grammar (structured output) ends the sample as a stop does. */
    if (fin == PGD_FINISH_NONE && c->guide_done)
        fin = PGD_FINISH_STOP;
    if (fin == PGD_FINISH_NONE && at_length(e, c))
        fin = PGD_FINISH_LENGTH;
    r->o.finish_reason = fin;
    usage_fill(r, c);
    /* The child's blocks go back to the pool before its last output is pushed (see
     * pgd__stats_on_finish). */
    if (fin != PGD_FINISH_NONE)
        child_end(e, c, fin);
    /* Queued without waking the reader: the notifier thread wakes it after the step
     * (engine_notify.c), so that the wakes cost this thread nothing. */
    const double t0 = pgd__engine_now();
    if (pgd__stream_push_quiet(c->req->stream, r))
        pgd__notifier_add(&e->notifier, c->req->stream);
    e->step_push_s += pgd__engine_now() - t0;
}
