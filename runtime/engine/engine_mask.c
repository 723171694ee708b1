/* Allowed-token masks, for the engine thread: a constrained sample's grammar mask (EOS and
 * the stop ids allowed where the grammar may end) and its bad words, or its bad words alone,
 * kept in the sample (pgd__child.mask) for the position it was made for, so that the
 * sampled row of a step and jump-forward's look at the same position share one walk of the
 * vocabulary trie. Under async scheduling a row whose context ends in the token of the step
 * in flight gets its mask late: after that step lands, while the device runs this one
 * (engine_async.c). A new grammar state's walk of the vocabulary takes milliseconds: when
 * a step has two or more, the engine thread shares them with the mask helpers
 * (runtime/base/workers.h). Also the matcher's advance over a taken token, and
 * jump-forward. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* c's mask after the first n_all tokens of its sequence (prompt and output; its matcher
 * has taken them all), made when not yet; walk: whether it may walk the vocabulary for a
 * grammar state not in its guide's cache (else NULL then: the mask is still to make). Any
 * thread, one child at a time (its matcher and mask buffer are its own). */
static const uint32_t *child_mask_at(struct pgd_engine *e, struct pgd__child *c, int n_all,
                                     bool walk)
{
    const struct pgd__seq *seq = &c->seq;
    if (c->mask && c->mask_at == n_all)
        return c->mask;
    size_t words = pgd__mask_words(e->vocab);
    if (!c->mask && !(c->mask = malloc(words * sizeof *c->mask)))
        pgd__oom("engine: allowed-token mask", words * sizeof *c->mask);
    const struct pgd__req *rq = c->req;
    if (c->gm) {
        char err[512];
        if (!walk && !c->mask_error) {
            if (!pgd__guide_mask_lookup(rq->guide, c->gm, c->mask))
                return NULL;
        } else if (walk && !c->mask_error &&
                   pgd__guide_mask(rq->guide, rq->vocab, c->gm, e->be.eos_ids, e->be.n_eos,
                                   c->mask, err, sizeof err)) {
            /* No mask to follow (a guide too ambiguous, or out of memory): the sample
             * ends with the reason at its next token (pgd__emit_token), which the mask
             * keeps to an end id meanwhile. */
            if (!(c->mask_error = strdup(err)))
                pgd__oom("engine: mask error", strlen(err) + 1);
        }
        if (c->mask_error) {
            memset(c->mask, 0, words * sizeof *c->mask);
            for (int j = 0; j < e->be.n_eos; j++)
                c->mask[e->be.eos_ids[j] >> 5] |= 1u << (e->be.eos_ids[j] & 31);
            c->mask[0] |= (e->be.n_eos == 0);   /* something to sample; never emitted */
            c->mask_at = n_all;
            return c->mask;
        }
        if (pgd__gmatch_accepting(c->gm))
            for (int j = 0; j < rq->sp.n_stop_token_ids; j++) {
                int32_t t = rq->sp.stop_token_ids[j];
                c->mask[t >> 5] |= 1u << (t & 31);
            }
    } else {
        memset(c->mask, 0xff, words * sizeof *c->mask);
    }
    pgd__bad_words_apply(&rq->bw, seq->tokens + seq->n_prompt, n_all - seq->n_prompt, c->mask);
    c->mask_at = n_all;
    return c->mask;
}

static const uint32_t *child_mask(struct pgd_engine *e, struct pgd__child *c, int n_all)
{
    return child_mask_at(e, c, n_all, true);
}

/* The sampled row of sequence i of step s (its last: describe_rows), when its sample is
 * constrained or has bad words; k: its first row. */
static struct pgd__sample_row *maskable_row(struct pgd__step_set *s, const struct pgd__seq *seq,
                                            int i, int k)
{
    const struct pgd__child *c = seq->owner;
    const int nl = s->ss[i].n_logits;
    if (nl == 0 || (!c->gm && c->req->bw.n == 0))
        return NULL;
    struct pgd__sample_row *row = &s->rows[k + nl - 1];
    return row->kind == PGD__ROW_SAMPLE ? row : NULL;
}

/* Whether row (child c's, its context whole) needs a mask: always for a constrained
 * sample; for bad words alone only where one bans a token now. */
static bool needs_mask(const struct pgd__child *c, const struct pgd__sample_row *row)
{
    return c->gm || pgd__bad_words_hit(&c->req->bw, row->ctx.tokens + row->ctx.n_prompt,
                                       row->ctx.n_out);
}

struct mask_run {
    struct pgd_engine *e;
    const struct pgd__mask_job *jobs;
};

static void mask_item(void *arg, int i)
{
    const struct mask_run *m = arg;
    const struct pgd__mask_job *j = &m->jobs[i];
    const uint32_t *mask = child_mask(m->e, j->c, j->n_all);
    if (j->row)
        j->row->ctx.allow = mask;
}

/* The helpers, made at the size asked for when first needed (or resized); NULL when there
 * are none (the engine thread makes every mask). */
static struct pgd__workers *mask_workers(struct pgd_engine *e)
{
    if (pgd__workers_threads(e->mask_workers) != e->mask_threads) {
        pgd__workers_destroy(e->mask_workers);
        e->mask_workers = NULL;
        char err[256];
        if (e->mask_threads > 0 &&
            pgd__workers_create(e->mask_threads, &e->mask_workers, err, sizeof err) != PGD_OK) {
            PGD_WARN("engine: %s; structured output's masks are made on the engine thread "
                     "alone", err);
            e->mask_threads = 0;
        }
    }
    return e->mask_workers;
}

/* The masks of jobs [n] (distinct samples). Those at hand (made before for the position,
 * in the guide's cache, or bad words alone) on the engine thread; the rest walk the
 * vocabulary, milliseconds each, shared with the helpers from PGD__MASK_PARALLEL_MIN of
 * them. A row job's row gets its mask (or none, where it needs none). */
static void run_mask_jobs(struct pgd_engine *e, int n)
{
    int n_walk = 0;
    for (int i = 0; i < n; i++) {
        struct pgd__mask_job *j = &e->mask_jobs[i];
        if (j->row && !needs_mask(j->c, j->row))
            continue;
        const uint32_t *mask = child_mask_at(e, j->c, j->n_all, false);
        if (j->row)
            j->row->ctx.allow = mask;
        if (!mask)
            e->mask_jobs[n_walk++] = *j;
    }
    struct mask_run m = { e, e->mask_jobs };
    struct pgd__workers *w = n_walk >= PGD__MASK_PARALLEL_MIN ? mask_workers(e) : NULL;
    if (w)
        atomic_fetch_add_explicit(&e->mask_shared_steps, 1, memory_order_relaxed);
    pgd__workers_run(w, n_walk, mask_item, &m);
}

void pgd__engine_row_masks(struct pgd_engine *e, const struct pgd__sched_out *o)
{
    struct pgd__step_set *s = e->cur;
    s->late_masks = false;
    int n = 0;
    for (int i = 0, k = 0; i < o->n; k += s->ss[i].n_logits, i++) {
        struct pgd__sample_row *row = maskable_row(s, o->seqs[i], i, k);
        if (!row)
            continue;
        if (e->be.submit && e->be.submit_masks && pgd__sample_row_placeholder(row) >= 0) {
            /* The context ends in the step in flight's token, which the mask needs. */
            row->allow_late = true;
            s->late_masks = true;
        } else {
            e->mask_jobs[n++] = (struct pgd__mask_job){ o->seqs[i]->owner, row,
                                                        row->ctx.n_prompt + row->ctx.n_out };
        }
    }
    run_mask_jobs(e, n);
}

void pgd__engine_late_masks(struct pgd_engine *e, struct pgd__step_set *s)
{
    int n = 0;
    for (int i = 0, k = 0; i < s->n; k += s->ss[i].n_logits, i++) {
        struct pgd__sample_row *row = maskable_row(s, s->seqs[i], i, k);
        struct pgd__child *c = s->seqs[i]->owner;
        /* A row whose token jump-forward took ahead is dropped when it lands. */
        if (row && row->allow_late && !c->done && c->n_ahead == 0) {
            PGD_ASSERT(pgd__sample_row_placeholder(row) < 0);
            e->mask_jobs[n++] = (struct pgd__mask_job){ c, row,
                                                        row->ctx.n_prompt + row->ctx.n_out };
        }
    }
    run_mask_jobs(e, n);
}

static bool is_stop_id(const struct pgd_engine *e, const struct pgd__child *c, int32_t tok)
{
    for (int i = 0; i < e->be.n_eos; i++)
        if (tok == e->be.eos_ids[i])
            return true;
    for (int i = 0; i < c->req->sp.n_stop_token_ids; i++)
        if (tok == c->req->sp.stop_token_ids[i])
            return true;
    return false;
}

void pgd__guide_advance(const struct pgd_engine *e, struct pgd__child *c, int32_t tok)
{
    if (c->mask_error || is_stop_id(e, c, tok))
        return;
    size_t len;
    const uint8_t *b = pgd__vocab_token(c->req->vocab, tok, &len);
    if (len == 0 || pgd__gmatch_accept(c->gm, b, len)) {
        if (pgd__gmatch_terminated(c->gm))
            c->guide_done = true;
        return;
    }
    if (c->gm->over) {
        /* The step past the token would hold too many stacks (the mask walk, which makes
         * the same steps, normally says so first): the sample ends with the reason. */
        char err[256];
        snprintf(err, sizeof err, "%s: too ambiguous to follow: token %d makes over %u parse "
                 "stack entries; simplify the guide", pgd__guide_kind_name(c->req->guide->kind),
                 tok, PGD__GMATCH_PASS_MAX);
        if (!(c->mask_error = strdup(err)))
            pgd__oom("engine: mask error", strlen(err) + 1);
        return;
    }
    /* Cannot happen with the mask applied; end the sample rather than go on unguided. */
    PGD_WARN("engine: request %llu: token %d does not fit its grammar; ending the sample",
             (unsigned long long)c->req->id, tok);
    c->guide_done = true;
}

/* The only token mask[words] allows, or -1 (none or several). */
static int32_t only_token(const uint32_t *mask, size_t words, int vocab)
{
    int32_t tok = -1;
    for (size_t w = 0; w < words; w++) {
        uint32_t bits = mask[w];
        if (!bits)
            continue;
        if (tok >= 0 || (bits & (bits - 1)))
            return -1;
        tok = (int32_t)(w * 32) + __builtin_ctz(bits);
    }
    return tok < vocab ? tok : -1;
}

/* Whether jump-forward may look at c now (see pgd__jump_forward). */
static bool jump_candidate(const struct pgd_engine *e, const struct pgd__child *c)
{
    return e->jump_forward && c->gm && !c->done && !c->guide_done && !c->mask_error &&
           c->req->sp.logprobs < 0 && c->seq.n_pending <= 1;
}

/* Jump-forward for c: while its mask allows exactly one token that is not EOS or a stop id,
 * that token is taken and emitted. */
static void jump_forward(struct pgd_engine *e, struct pgd__child *c)
{
    struct pgd__seq *seq = &c->seq;
    size_t words = pgd__mask_words(e->vocab);
    /* No logprobs are asked for: the result carries only the token. */
    struct pgd__sample_result forced;
    memset(&forced, 0, sizeof forced);
    while (jump_candidate(e, c)) {
        int32_t tok = only_token(child_mask(e, c, seq->n_tokens - seq->n_pending), words,
                                 e->vocab);
        if (tok < 0 || is_stop_id(e, c, tok))
            return;
        forced.token = tok;
        pgd__guide_advance(e, c, tok);
        if (seq->n_pending > 0) {
            /* The step in flight samples this token: taken now, its row dropped later. */
            seq->tokens[seq->n_tokens - seq->n_pending--] = tok;
            c->n_ahead++;
        } else {
            pgd__seq_append(seq, tok);
        }
        pgd__emit_token(e, c, tok, &forced);
    }
}

void pgd__jump_forward(struct pgd_engine *e, struct pgd__child *const *cs, int n)
{
    int n_jobs = 0;
    for (int i = 0; i < n; i++)
        if (jump_candidate(e, cs[i]))
            e->mask_jobs[n_jobs++] = (struct pgd__mask_job){
                cs[i], NULL, cs[i]->seq.n_tokens - cs[i]->seq.n_pending };
    /* The first look's masks at once (the helpers share the walks), then each sample's
     * forced run in turn (its later looks are mostly of states already cached). */
    run_mask_jobs(e, n_jobs);
    for (int i = 0; i < n; i++)
        jump_forward(e, cs[i]);
}
