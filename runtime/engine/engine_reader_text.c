/* Text made on the reader's thread (engine_internal.h): the engine thread only queues each
 * token with what its text needs (text_op), and pgd_stream_next runs the sample's
 * detokenizer and stop strings, so that a step's detokenization of hundreds of sequences is
 * spread over the readers' threads instead of adding to the step. vLLM's front end does the
 * same in its own process.
 *
 * The text is the engine path's (engine_emit.c's token_text) to the byte, step for step:
 * the token's delta (unless it is a stop token and include_stop_str_in_output is off) goes
 * through the sample's stop-string buffer (stop.c), which holds back a suffix that may
 * still become a stop string and cuts the text at one; at the sample's last output what the
 * detokenizer and the buffer held is released. A stop string found here ends the sample on
 * the reader's side first: its output becomes the last one, and the engine, told through
 * the stream, ends the sample at its next round; the outputs it made meanwhile are dropped
 * here, so the reader sees what the engine path would have sent. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct pgd__text_share {
    atomic_int refs;
    struct pgd__textio tio;         /* tio.ctx owned */
    /* Finishes the engine counted one way and its readers saw another ([enum
     * pgd_finish_reason]: added to the engine's requests_finished): a sample a reader
     * stopped at a stop string after the engine had already ended it by its length. */
    atomic_llong finish_fix[PGD_FINISH_N];
};

/* A sample's reader-side state. */
struct reader_sample {
    void *detok;                    /* owned (tio.detok_new) */
    struct pgd__stop_text stop;     /* owned: the text and what is held back */
    bool ended;                     /* its last output was returned */
    bool stopped_here;              /* ... made so by a stop string found here */
};

struct pgd__reader_text {
    struct pgd__text_share *share;  /* one reference */
    char **stops;                   /* owned [n_stops] copies of the request's stop strings */
    int n_stops;
    bool include_stop;              /* include_stop_str_in_output */
    int n;
    struct reader_sample sample[];  /* [n] */
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
    for (int i = 0; i < PGD_FINISH_N; i++)
        atomic_init(&ts->finish_fix[i], 0);
    return ts;
}

void pgd__text_share_fix_finishes(struct pgd__text_share *ts, uint64_t finished[PGD_FINISH_N])
{
    for (int i = 0; ts && i < PGD_FINISH_N; i++)
        finished[i] += (uint64_t)atomic_load(&ts->finish_fix[i]);
}

void pgd__text_share_release(struct pgd__text_share *ts)
{
    if (!ts || atomic_fetch_sub(&ts->refs, 1) != 1)
        return;
    if (ts->tio.destroy)
        ts->tio.destroy(ts->tio.ctx);
    free(ts);
}

struct pgd__reader_text *pgd__reader_text_new(struct pgd__text_share *ts, int n_samples,
                                              const struct pgd_sampling_params *sp)
{
    struct pgd__reader_text *t = calloc(1, sizeof *t + (size_t)n_samples * sizeof t->sample[0]);
    if (!t)
        return NULL;
    atomic_fetch_add(&ts->refs, 1);
    t->share = ts;
    t->n = n_samples;
    t->include_stop = sp->include_stop_str_in_output;
    if (sp->n_stop > 0) {
        if (!(t->stops = calloc((size_t)sp->n_stop, sizeof *t->stops))) {
            pgd__reader_text_free(t);
            return NULL;
        }
        for (int i = 0; i < sp->n_stop; i++, t->n_stops++)
            if (!(t->stops[i] = strdup(sp->stop[i] ? sp->stop[i] : ""))) {
                pgd__reader_text_free(t);
                return NULL;
            }
    }
    return t;
}

void pgd__reader_text_start(struct pgd__reader_text *t, int i, const int32_t *prompt,
                            int n_prompt, bool skip_special)
{
    const struct pgd__textio *tio = &t->share->tio;
    t->sample[i].detok = tio->detok_new(tio->ctx, prompt, n_prompt, skip_special);
}

void pgd__reader_text_free(struct pgd__reader_text *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        if (t->sample[i].detok)
            t->share->tio.detok_free(t->sample[i].detok);
        pgd__stop_text_fini(&t->sample[i].stop);
    }
    for (int i = 0; i < t->n_stops; i++)
        free(t->stops[i]);
    free(t->stops);
    pgd__text_share_release(t->share);
    free(t);
}

/* A sample the engine counted as ended for f that its reader ended at a stop string:
 * counted as the stop the client saw (pgd__text_share_fix_finishes). */
static void count_as_stop(struct pgd__reader_text *t, enum pgd_finish_reason f)
{
    atomic_fetch_sub(&t->share->finish_fix[f], 1);
    atomic_fetch_add(&t->share->finish_fix[PGD_FINISH_STOP], 1);
}

enum pgd__reader_text_verdict pgd__reader_text_make(struct pgd__reader_text *t,
                                                    struct pgd__out_rec *r)
{
    struct reader_sample *smp = r->o.index >= 0 && r->o.index < t->n ? &t->sample[r->o.index]
                                                                      : NULL;
    if (smp && smp->ended) {
        /* The engine's own end of a sample stopped here: counted as what the reader saw. */
        const enum pgd_finish_reason f = r->o.finish_reason;
        if (smp->stopped_here && f != PGD_FINISH_NONE && f != PGD_FINISH_STOP)
            count_as_stop(t, f);
        return PGD__RT_DROP;
    }
    const struct pgd__textio *tio = &t->share->tio;
    const uint8_t op = r->text_op;
    r->text_op = 0;
    const char *d = "";
    size_t dn = 0;
    /* Records without a token (an abort's) have no text, as on the engine path; a token's
     * record may have no op (a stop token left out of the text) and still release what the
     * stop-string buffer held back. */
    if (!smp || r->o.n_token_ids == 0 || (op == 0 && t->n_stops == 0))
        return PGD__RT_KEEP;
    /* Each delta belongs to the state until its next call: copied before the next. */
    if (t->n_stops == 0) {
        /* nothing is held back: the deltas are the text */
        if (op & PGD__TEXT_PUSH) {
            tio->detok_push(smp->detok, r->token, &d, &dn);
            pgd__out_rec_append_text(r, d, dn);
        }
        if (op & PGD__TEXT_FLUSH) {
            tio->detok_flush(smp->detok, &d, &dn);
            pgd__out_rec_append_text(r, d, dn);
        }
        smp->ended = r->o.finish_reason != PGD_FINISH_NONE;
        return PGD__RT_KEEP;
    }
    /* token_text's steps (engine_emit.c), with the engine's decisions in op */
    const enum pgd_finish_reason engine_fin = r->o.finish_reason;
    const bool engine_final = engine_fin != PGD_FINISH_NONE;
    struct pgd__stop_text *st = &smp->stop;
    size_t from;
    const int hit = pgd__stop_text_token(st, tio, smp->detok, r->token, op & PGD__TEXT_PUSH,
                                         op & PGD__TEXT_CHECK, op & PGD__TEXT_FLUSH,
                                         engine_final || (op & PGD__TEXT_FLUSH),
                                         (const char *const *)t->stops, t->n_stops,
                                         t->include_stop, &from);
    if (hit >= 0) {
        r->o.finish_reason = PGD_FINISH_STOP;
        r->o.stop_token = -1;
        pgd__out_rec_set_stop_reason(r, t->stops[hit]);
    }
    pgd__out_rec_append_text(r, st->text.p + from, st->released - from);
    smp->ended = r->o.finish_reason != PGD_FINISH_NONE;
    smp->stopped_here = hit >= 0 && !engine_final;
    /* The last token by length completed a stop string: the engine counted a length end,
     * the engine path (and the reader) a stop. */
    if (hit >= 0 && engine_final && engine_fin != PGD_FINISH_STOP)
        count_as_stop(t, engine_fin);
    return smp->stopped_here ? PGD__RT_STOPPED : PGD__RT_KEEP;
}
