/* Allowed-token masks, on the engine thread: a constrained sample's grammar mask (EOS and
 * the stop ids allowed where the grammar may end) and its bad words, or its bad words alone,
 * kept in the sample (pgd__child.mask) for the position it was made for, so that the
 * sampled row of a step and jump-forward's look at the same position share one walk of the
 * vocabulary trie. Also the matcher's advance over a taken token, and jump-forward. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>

/* c's mask for its sequence as it stands (seq.n_tokens tokens), made when not yet. */
static const uint32_t *child_mask(struct pgd_engine *e, struct pgd__child *c)
{
    const struct pgd__seq *seq = &c->seq;
    if (c->mask && c->mask_at == seq->n_tokens)
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
    pgd__bad_words_apply(&rq->bw, seq->tokens + seq->n_prompt, seq->n_tokens - seq->n_prompt,
                         c->mask);
    c->mask_at = seq->n_tokens;
    return c->mask;
}

/* The sampled row of scheduled sequence i (its last: describe_rows), when it needs a mask;
 * k: its first row. */
static struct pgd__sample_row *masked_row(struct pgd_engine *e, const struct pgd__sched_out *o,
                                          int i, int k)
{
    const struct pgd__child *c = o->seqs[i]->owner;
    if (e->cur->ss[i].n_logits == 0 || (!c->gm && c->req->bw.n == 0))
        return NULL;
    struct pgd__sample_row *row = &e->cur->rows[k + e->cur->ss[i].n_logits - 1];
    if (row->kind != PGD__ROW_SAMPLE)
        return NULL;
    /* Bad words alone: a mask only where one bans a token now. */
    if (!c->gm && !pgd__bad_words_hit(&c->req->bw, row->ctx.tokens + row->ctx.n_prompt,
                                      row->ctx.n_out))
        return NULL;
    return row;
}

void pgd__engine_row_masks(struct pgd_engine *e, const struct pgd__sched_out *o)
{
    for (int i = 0, k = 0; i < o->n; k += e->cur->ss[i].n_logits, i++) {
        struct pgd__sample_row *row = masked_row(e, o, i, k);
        if (row)
            row->ctx.allow = child_mask(e, o->seqs[i]->owner);
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
    if (!e->jump_forward || c->req->sp.logprobs >= 0)
        return;
    size_t words = pgd__mask_words(e->vocab);
    /* No logprobs are asked for: the result carries only the token. */
    struct pgd__sample_result forced;
    memset(&forced, 0, sizeof forced);
    while (!c->done && !c->guide_done) {
        int32_t tok = only_token(child_mask(e, c), words, e->vocab);
        if (tok < 0 || is_stop_id(e, c, tok))
            return;
        forced.token = tok;
        pgd__guide_advance(e, c, tok);
        pgd__seq_append(&c->seq, tok);
        pgd__emit_token(e, c, tok, &forced);
    }
}
