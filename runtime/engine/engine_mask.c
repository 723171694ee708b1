/* Allowed-token masks, on the engine thread: a constrained sample's grammar mask (EOS and
 * the stop ids allowed where the grammar may end) and its bad words, or its bad words alone,
 * kept in the sample (pgd__child.mask) for the position it was made for, so that the
 * sampled row of a step and jump-forward's look at the same position share one walk of the
 * vocabulary trie. Under async scheduling a row whose context ends in the token of the step
 * in flight gets its mask late: after that step lands, while the device runs this one
 * (engine_async.c). Also the matcher's advance over a taken token, and jump-forward. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>

/* c's mask after the first n_all tokens of its sequence (prompt and output; its matcher
 * has taken them all), made when not yet. */
static const uint32_t *child_mask(struct pgd_engine *e, struct pgd__child *c, int n_all)
{
    const struct pgd__seq *seq = &c->seq;
    if (c->mask && c->mask_at == n_all)
        return c->mask;
    size_t words = pgd__mask_words(e->vocab);
    if (!c->mask && !(c->mask = malloc(words * sizeof *c->mask)))
        pgd__oom("engine: allowed-token mask", words * sizeof *c->mask);
    const struct pgd__req *rq = c->req;
    if (c->gm) {
        pgd__guide_mask(rq->guide, rq->vocab, c->gm, e->be.eos_ids, e->be.n_eos, c->mask);
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

/* Row (child c's, its context whole) gets its mask when it needs one: always for a
 * constrained sample; for bad words alone only where one bans a token now. */
static void set_mask(struct pgd_engine *e, struct pgd__child *c, struct pgd__sample_row *row)
{
    if (c->gm || pgd__bad_words_hit(&c->req->bw, row->ctx.tokens + row->ctx.n_prompt,
                                    row->ctx.n_out))
        row->ctx.allow = child_mask(e, c, row->ctx.n_prompt + row->ctx.n_out);
}

void pgd__engine_row_masks(struct pgd_engine *e, const struct pgd__sched_out *o)
{
    struct pgd__step_set *s = e->cur;
    s->late_masks = false;
    for (int i = 0, k = 0; i < o->n; k += s->ss[i].n_logits, i++) {
        struct pgd__sample_row *row = maskable_row(s, o->seqs[i], i, k);
        if (!row)
            continue;
        if (e->be.submit && e->be.submit_masks && pgd__sample_row_placeholder(row) >= 0) {
            /* The context ends in the step in flight's token, which the mask needs. */
            row->allow_late = true;
            s->late_masks = true;
        } else {
            set_mask(e, o->seqs[i]->owner, row);
        }
    }
}

void pgd__engine_late_masks(struct pgd_engine *e, struct pgd__step_set *s)
{
    for (int i = 0, k = 0; i < s->n; k += s->ss[i].n_logits, i++) {
        struct pgd__sample_row *row = maskable_row(s, s->seqs[i], i, k);
        struct pgd__child *c = s->seqs[i]->owner;
        /* A row whose token jump-forward took ahead is dropped when it lands. */
        if (row && row->allow_late && !c->done && c->n_ahead == 0) {
            PGD_ASSERT(pgd__sample_row_placeholder(row) < 0);
            set_mask(e, c, row);
        }
    }
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
    if (is_stop_id(e, c, tok))
        return;
    size_t len;
    const uint8_t *b = pgd__vocab_token(c->req->vocab, tok, &len);
    if (len > 0 && !pgd__gmatch_accept(c->gm, b, len)) {
        /* Cannot happen with the mask applied; end the sample rather than go on unguided. */
        PGD_WARN("engine: request %llu: token %d does not fit its grammar; ending the sample",
                 (unsigned long long)c->req->id, tok);
        c->guide_done = true;
        return;
    }
    if (pgd__gmatch_terminated(c->gm))
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

void pgd__jump_forward(struct pgd_engine *e, struct pgd__child *c)
{
    struct pgd__seq *seq = &c->seq;
    if (!e->jump_forward || c->req->sp.logprobs >= 0 || seq->n_pending > 1)
        return;
    size_t words = pgd__mask_words(e->vocab);
    /* No logprobs are asked for: the result carries only the token. */
    struct pgd__sample_result forced;
    memset(&forced, 0, sizeof forced);
    while (!c->done && !c->guide_done) {
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
