/* Speculative decoding in the engine's step (engine thread only): proposals appended to
 * decoding sequences before the step is scheduled, so that the step computes the last
 * verified token and the k proposals of each (a short prefill chunk on the paged KV, with a
 * sample row for every one of those positions); then the rejection sampler's verdict
 * (runtime/spec/rejection.h), the rollback of the rejected tail (tokens, n_computed, the KV
 * blocks only they used) and the emission of the kept tokens.
 *
 * A sequence with proposals holds them at the end of its tokens (seq->n_spec of them). The
 * scheduler treats them as tokens to compute, caches only verified blocks, and drops them
 * when it preempts the sequence. Row j of a verify run samples the token at position
 * T + j (T = the verified tokens) with the context tokens[0, T + j), proposals included,
 * and the sampler's draw index of that output position: what the request would sample
 * there without speculation, had the proposals before j been its own tokens. */
#include "runtime/engine/engine_internal.h"
#include "runtime/spec/ngram.h"
#include "runtime/spec/rejection.h"

/* How many proposals seq (a sample of its request) may take this step: k, less near
 * max_tokens and max_model_len (a verify run emits up to proposals + 1 tokens, and each
 * proposal needs a position); 0 when it is not decoding or its request cannot take them. */
static int room_for_proposals(const struct pgd_engine *e, const struct pgd__seq *seq)
{
    const struct pgd__child *c = seq->owner;
    const struct pgd__req *rq = c->req;
    if (seq->n_spec != 0 || seq->n_computed != seq->n_tokens - 1 || c->done)
        return 0;
    /* A guided request's mask advances token by token: no proposals for it. */
    if (rq->sp.guide_kind != PGD_GUIDE_NONE)
        return 0;
    int k = e->spec.num_speculative_tokens;
    int by_len = rq->max_out - c->n_out - 1, by_model = e->max_model_len - seq->n_tokens - 1;
    if (k > by_len)
        k = by_len;
    if (k > by_model)
        k = by_model;
    return k > 0 ? k : 0;
}

void pgd__spec_propose(struct pgd_engine *e)
{
    const struct pgd__spec_config *cfg = &e->spec;
    if (cfg->method != PGD__SPEC_NGRAM)
        return;
    struct pgd__scheduler *s = &e->sched;
    if (cfg->disable_by_batch_size > 0 && s->n_running > cfg->disable_by_batch_size)
        return;
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
