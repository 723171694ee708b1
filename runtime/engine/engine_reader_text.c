/* Text made on the reader's thread (engine_internal.h): for a request without stop strings
 * the engine thread only queues each token with what its text needs (text_op), and
 * pgd_stream_next runs the sample's detokenizer, so that a step's detokenization of
 * hundreds of sequences is spread over the readers' threads instead of adding to the step.
 * vLLM's front end does the same in its own process.
 *
 * The text is the engine path's (engine_emit.c's token_text) to the byte: without stop
 * strings nothing is held back for a stop check, so an output's text is the token's
 * detokenized delta (unless it is a stop token and include_stop_str_in_output is off),
 * then, at a sample's last output when it ends by length or a complete grammar, what the
 * detokenizer still held (an unfinished UTF-8 sequence). */
#include "runtime/engine/engine_internal.h"
#include <stdatomic.h>
#include <stdlib.h>

struct pgd__text_share {
    atomic_int refs;
    struct pgd__textio tio;         /* tio.ctx owned */
};

struct pgd__reader_text {
    struct pgd__text_share *share;  /* one reference */
    int n;
    void *detok[];                  /* [n] owned states (tio.detok_new) */
};

struct pgd__text_share *pgd__text_share_new(const struct pgd__textio *tio)
{
    struct pgd__text_share *ts = malloc(sizeof *ts);
    if (!ts) {
        if (tio->destroy)
            tio->destroy(tio->ctx);
        return NULL;
    }
    atomic_init(&ts->refs, 1);
    ts->tio = *tio;
    return ts;
}

void pgd__text_share_release(struct pgd__text_share *ts)
{
    if (!ts || atomic_fetch_sub(&ts->refs, 1) != 1)
        return;
    if (ts->tio.destroy)
        ts->tio.destroy(ts->tio.ctx);
    free(ts);
}

struct pgd__reader_text *pgd__reader_text_new(struct pgd__text_share *ts, int n_samples)
{
    struct pgd__reader_text *t = calloc(1, sizeof *t + (size_t)n_samples * sizeof t->detok[0]);
    if (!t)
        return NULL;
    atomic_fetch_add(&ts->refs, 1);
    t->share = ts;
    t->n = n_samples;
    return t;
}

void pgd__reader_text_start(struct pgd__reader_text *t, int i, const int32_t *prompt,
                            int n_prompt, bool skip_special)
{
    const struct pgd__textio *tio = &t->share->tio;
    t->detok[i] = tio->detok_new(tio->ctx, prompt, n_prompt, skip_special);
}

void pgd__reader_text_free(struct pgd__reader_text *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        if (t->detok[i])
            t->share->tio.detok_free(t->detok[i]);
    pgd__text_share_release(t->share);
    free(t);
}

void pgd__reader_text_make(struct pgd__reader_text *t, struct pgd__out_rec *r)
{
    void *state = r->o.index >= 0 && r->o.index < t->n ? t->detok[r->o.index] : NULL;
    const struct pgd__textio *tio = &t->share->tio;
    const char *d;
    size_t dn;
    /* Each delta belongs to the state until its next call: copied before the next. */
    if (r->text_op & PGD__TEXT_PUSH) {
        tio->detok_push(state, r->token, &d, &dn);
        pgd__out_rec_append_text(r, d, dn);
    }
    if (r->text_op & PGD__TEXT_FLUSH) {
        tio->detok_flush(state, &d, &dn);
        pgd__out_rec_append_text(r, d, dn);
    }
    r->text_op = 0;
}
