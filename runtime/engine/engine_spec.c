/* Speculative decoding in the engine's step (engine thread only): proposals appended to
 * decoding sequences before the step is scheduled (by prompt lookup, runtime/spec/ngram.h,
 * or by the draft model's greedy steps over its own KV cache), so that the step computes
 * the last verified token and the k proposals of each (a short prefill chunk on the paged
 * KV, with a sample row for every one of those positions); then the rejection sampler's
 * verdict (runtime/spec/rejection.h), the rollback of the rejected tail (tokens,
 * n_computed, the KV blocks only they used) and the emission of the kept tokens.
 *
 * A sequence with proposals holds them at the end of its tokens (seq->n_spec of them). The
 * scheduler treats them as tokens to compute, caches only verified blocks, and drops them
 * when it preempts the sequence. Row j of a verify run samples the token at position
 * T + j (T = the verified tokens) with the context tokens[0, T + j), proposals included,
 * and the sampler's draw index of that output position: what the request would sample
 * there without speculation, had the proposals before j been its own tokens. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include "runtime/spec/ngram.h"
#include "runtime/spec/rejection.h"
#include <pagoda/log.h>
#include <stdlib.h>

/* The draft model's steps of one engine step (e->spec_scratch): the sequences that get
 * proposals (or only catch up) and each one's room for proposals, [max_num_seqs] each. */
struct pgd__spec_scratch {
    struct pgd__seq **seqs;         /* the plan: sequences the draft computes this step */
    int *room;                      /* proposals each takes (0: it only catches up) */
    struct pgd__step_seq *ss;       /* a draft step's sequences */
    int *step;                      /* the plan entry of each of them */
    int32_t *ids;                   /* a draft step's greedy ids */
};

enum pgd_status pgd__spec_init(struct pgd_engine *e, char *err, size_t errlen)
{
    if (e->spec.method != PGD__SPEC_DRAFT_MODEL)
        return PGD_OK;
    size_t n = (size_t)e->p.max_num_seqs;
    struct pgd__spec_scratch *x = calloc(1, sizeof *x);
    e->spec_scratch = x;
    if (x) {
        x->seqs = malloc(n * sizeof *x->seqs);
        x->room = malloc(n * sizeof *x->room);
        x->ss = malloc(n * sizeof *x->ss);
        x->step = malloc(n * sizeof *x->step);
        x->ids = malloc(n * sizeof *x->ids);
    }
    if (!x || !x->seqs || !x->room || !x->ss || !x->step || !x->ids)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "engine: no memory for draft steps");
    return PGD_OK;
}

void pgd__spec_fini(struct pgd_engine *e)
{
    struct pgd__spec_scratch *x = e->spec_scratch;
    if (!x)
        return;
    free(x->seqs);
    free(x->room);
    free(x->ss);
    free(x->step);
    free(x->ids);
    free(x);
    e->spec_scratch = NULL;
}

/* How many proposals seq (a sample of its request) may take this step: k, less near
 * max_tokens and max_model_len (a verify run emits up to proposals + 1 tokens, and each
 * proposal needs a position); 0 when it is not decoding or its request cannot take them. */
static int room_for_proposals(const struct pgd_engine *e, const struct pgd__seq *seq)
{
    const struct pgd__child *c = seq->owner;
    const struct pgd__req *rq = c->req;
    if (seq->n_spec != 0 || seq->n_computed != seq->n_tokens - 1 || c->done)
        return 0;
    /* A guided request's mask advances token by token, and so do bad words: no proposals
     * for them. */
    if (rq->sp.guide_kind != PGD_GUIDE_NONE || rq->bw.n > 0)
        return 0;
    int k = e->spec.num_speculative_tokens;
    int max_len = e->max_model_len;
    if (e->spec.method == PGD__SPEC_DRAFT_MODEL && e->be.draft_max_model_len < max_len)
        max_len = e->be.draft_max_model_len;
    int by_len = rq->max_out - c->n_out - 1, by_model = max_len - seq->n_tokens - 1;
    if (k > by_len)
        k = by_len;
    if (k > by_model)
        k = by_model;
    return k > 0 ? k : 0;
}

/* ---- draft-model proposals ----------------------------------------------------------- */

/* The draft's first step of this engine step: each decoding sequence's tokens the draft
 * has not computed yet, [n_draft_computed, n_tokens), with a logits row for the last (its
 * first proposal) when it takes proposals; as many as the token budget allows (a long
 * catch-up, a fresh prompt's, goes in chunks without proposals). Chooses the sequences
 * into x (returns how many) and makes room in the pool for the positions the draft will
 * write, n_tokens - 1 .. n_tokens + room - 2. */
static int draft_plan(struct pgd_engine *e, struct pgd__spec_scratch *x)
{
    struct pgd__scheduler *s = &e->sched;
    int n = 0, budget = e->p.max_num_batched_tokens;
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        struct pgd__seq *seq = s->running[i];
        int k = room_for_proposals(e, seq);
        if (k == 0)
            continue;
        if (seq->n_draft_computed > seq->n_computed)
            seq->n_draft_computed = seq->n_computed;    /* rolled back since */
        int todo = seq->n_tokens - seq->n_draft_computed;
        if (todo > budget) {
            todo = budget;                  /* catch up only */
            k = 0;
        }
        if (!pgd__kv_allocate_slots(&e->kv, &seq->kv, seq->n_tokens + (k > 0 ? k - 1 : 0),
                                    NULL, 0))
            continue;                       /* the pool is short: no proposals this step */
        budget -= todo;
        x->seqs[n] = seq;
        x->room[n] = k;
        x->ss[n] = (struct pgd__step_seq){
            .tokens = seq->tokens + seq->n_draft_computed, .n_new = todo,
            .n_computed = seq->n_draft_computed, .n_logits = k > 0 ? 1 : 0,
        };
        n++;
    }
    /* The block tables last: allocating for one sequence never moves another's. */
    for (int i = 0; i < n; i++) {
        x->ss[i].block_table = x->seqs[i]->kv.blocks;
        x->ss[i].n_blocks = x->seqs[i]->kv.n_blocks;
        x->step[i] = i;
    }
    return n;
}

/* Proposals by the draft model: the catch-up step gives each sequence its first proposal
 * (the draft's argmax after its last token), then single-token steps feed each proposal
 * back for the next, up to each sequence's room. A greedy draft's proposal is a point mass,
 * so the verify rule is the n-gram one (rejection.h). Proposal i of a sequence of T tokens
 * is written to tokens[T + i] as it comes; the sequence takes them all at the end. */
static bool propose_by_draft(struct pgd_engine *e)
{
    struct pgd__spec_scratch *x = e->spec_scratch;
    int n = draft_plan(e, x);               /* x->ss [n]: the catch-up step */
    int m = n;                              /* sequences in the current draft step */
    char err[256] = "";
    enum pgd_status st = PGD_OK;
    for (int j = 0; m > 0; j++) {
        if ((st = e->be.draft_step(e->be.ctx, x->ss, m, x->ids, err, sizeof err)))
            break;
        /* x->step[i] is the plan entry of step row i. */
        for (int i = 0, r = 0; i < m; i++) {
            struct pgd__seq *q = x->seqs[x->step[i]];
            q->n_draft_computed = x->ss[i].n_computed + x->ss[i].n_new;
            if (x->ss[i].n_logits)
                q->tokens[q->n_tokens + j] = x->ids[r++];
        }
        /* The next step: proposal j goes in (at position T + j) for proposal j + 1. */
        m = 0;
        for (int p = 0; p < n; p++) {
            struct pgd__seq *q = x->seqs[p];
            if (x->room[p] <= j + 1)
                continue;
            int pos = q->n_tokens + j;
            x->step[m] = p;
            x->ss[m++] = (struct pgd__step_seq){ .tokens = q->tokens + pos, .n_new = 1,
                                                 .n_computed = pos,
                                                 .block_table = q->kv.blocks,
                                                 .n_blocks = q->kv.n_blocks, .n_logits = 1 };
        }
    }
    if (st) {
        PGD_ERROR("engine: draft model step failed (%s): %s; aborting every request",
                  pgd_status_str(st), err);
        pgd__engine_fail_all(e);
        return false;
    }
    for (int p = 0; p < n; p++) {
        struct pgd__seq *q = x->seqs[p];
        q->n_spec = x->room[p];
        q->n_tokens += x->room[p];
    }
    return true;
}

bool pgd__spec_propose(struct pgd_engine *e)
{
    const struct pgd__spec_config *cfg = &e->spec;
    if (cfg->method == PGD__SPEC_OFF)
        return true;
    struct pgd__scheduler *s = &e->sched;
    if (cfg->disable_by_batch_size > 0 && s->n_running > cfg->disable_by_batch_size)
        return true;
    if (cfg->method == PGD__SPEC_DRAFT_MODEL)
        return propose_by_draft(e);
    for (int i = 0; i < s->n_running; i++) {
        struct pgd__seq *seq = s->running[i];
        int k = room_for_proposals(e, seq);
        if (k == 0)
            continue;
        /* The proposals go straight after the tokens: tokens has room for max_out
         * outputs, and k leaves one of them for the bonus token. */
        int m = pgd__ngram_propose(seq->tokens, seq->n_tokens, cfg->prompt_lookup_min,
                                   cfg->prompt_lookup_max, k, seq->tokens + seq->n_tokens);
        seq->n_tokens += m;
        seq->n_spec = m;
    }
    return true;
}

void pgd__spec_verify_emit(struct pgd_engine *e, struct pgd__seq *seq, int n_rows,
                           const struct pgd__sample_result *res)
{
    struct pgd__child *c = seq->owner;
    int verified = seq->n_tokens - seq->n_spec;      /* T */
    int32_t sampled[PGD_SPEC_MAX_TOKENS + 1];
    PGD_ASSERT(n_rows >= 1 && n_rows <= seq->n_spec + 1);
    for (int j = 0; j < n_rows; j++)
        sampled[j] = res[j].token;
    int a = pgd__spec_accepted(seq->tokens + verified, seq->n_spec, sampled, n_rows);
    /* The step computed the KV of positions T - 1 .. T + n_rows - 2; that of T - 1 + j is
     * right while the proposals before it were accepted: through T - 1 + a. */
    seq->n_spec = 0;
    seq->n_tokens = verified;
    seq->n_computed = verified + a;
    pgd__kv_truncate(&e->kv, &seq->kv, verified + a + 1);
    if (n_rows > 1)
        pgd__stats_on_spec(e, n_rows - 1, a);
    /* The accepted proposals equal their samples: emit sampled[0 .. a], stopping where
     * the sample finishes (EOS, a stop token or string, its length). */
    for (int j = 0; j <= a && !c->done; j++) {
        pgd__seq_append(seq, sampled[j]);
        pgd__emit_token(e, c, sampled[j], &res[j]);
    }
}

void pgd__spec_drop_unverified(struct pgd_engine *e)
{
    if (e->spec.method == PGD__SPEC_OFF)
        return;
    for (int i = 0; i < e->sched.n_running; i++)
        if (e->sched.running[i]->n_spec > 0)
            pgd__seq_drop_spec(e->sched.running[i]);
}
