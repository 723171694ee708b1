/* Output streams: the queue of outputs between the engine thread (which pushes) and the
 * caller (which reads with pgd_stream_next), their two references, and the names of the
 * finish reasons. The lock rules are in engine_internal.h. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/clock.h"
#include "runtime/base/mem.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *pgd_finish_reason_str(enum pgd_finish_reason r)
{
    switch (r) {
    case PGD_FINISH_STOP: return "stop";
    case PGD_FINISH_LENGTH: return "length";
    case PGD_FINISH_ABORT: return "abort";
    case PGD_FINISH_ERROR: return "error";
    case PGD_FINISH_NONE: break;
    }
    return NULL;
}

void pgd__out_rec_free(struct pgd__out_rec *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->lp_top);
    free(r->plps);
    free(r->plp_top);
    free(r->stop_reason);
    free(r->error);
    free(r->embedding);
    free(r);
}

void pgd__out_rec_append_text(struct pgd__out_rec *r, const char *s, size_t n)
{
    if (n == 0)
        return;
    size_t len = r->o.text_len;
    char *p = realloc(r->text, len + n + 1);
    if (!p)
        pgd__oom("engine: output text", len + n + 1);
    memcpy(p + len, s, n);
    p[len + n] = '\0';
    r->text = p;
    r->o.text = p;
    r->o.text_len = len + n;
}

void pgd__out_rec_set_stop_reason(struct pgd__out_rec *r, const char *stop)
{
    free(r->stop_reason);
    if (!(r->stop_reason = strdup(stop)))
        pgd__oom("engine: stop reason", strlen(stop) + 1);
    r->o.stop_reason = r->stop_reason;
}

struct pgd_stream *pgd__stream_create(uint64_t id, int n_samples)
{
    struct pgd_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    /* Timed waits use CLOCK_MONOTONIC deadlines (see pgd_stream_next): a wall-clock jump
     * must not stretch or cut a caller's timeout. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    s->request_id = id;
    s->n_samples = n_samples;
    s->refs = 2;
    return s;
}

void pgd__stream_free(struct pgd_stream *s)
{
    pgd__reader_text_free(s->text);
    pgd__out_rec_free(s->current);
    for (struct pgd__out_rec *r = s->head, *n; r; r = n) {
        n = r->next;
        pgd__out_rec_free(r);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* Appends r to s's queue (under s->mu). */
static void enqueue(struct pgd_stream *s, struct pgd__out_rec *r)
{
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    if (r->o.finish_reason != PGD_FINISH_NONE)
        s->n_final_queued++;
}

void pgd__stream_push(struct pgd_stream *s, struct pgd__out_rec *r)
{
    pthread_mutex_lock(&s->mu);
    enqueue(s, r);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool pgd__stream_push_quiet(struct pgd_stream *s, struct pgd__out_rec *r)
{
    pthread_mutex_lock(&s->mu);
    enqueue(s, r);
    const bool add = !s->notify_pending;
    if (add) {
        s->notify_pending = true;
        s->refs++;
    }
    pthread_mutex_unlock(&s->mu);
    return add;
}

void pgd__stream_wake(struct pgd_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->notify_pending = false;
    pthread_cond_broadcast(&s->cv);
    const bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        pgd__stream_free(s);
}

void pgd__stream_release_engine(struct pgd_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->engine = NULL;
    bool last = --s->refs == 0;
    /* A reader blocked with nothing queued wakes up to see the engine gone (CLOSED). */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (last)
        pgd__stream_free(s);
}

uint64_t pgd_stream_request_id(const struct pgd_stream *s)
{
    return s->request_id;
}

/* The returned output points into s->current, which stays the stream's until the next
 * call (or pgd_stream_destroy) frees it. */
enum pgd_status pgd_stream_next(struct pgd_stream *s, struct pgd_output *out, int timeout_ms)
{
    struct timespec deadline = { 0 };
    if (timeout_ms > 0)
        deadline = pgd__deadline_after(CLOCK_MONOTONIC, timeout_ms); /* s->cv's clock */
    pthread_mutex_lock(&s->mu);
    pgd__out_rec_free(s->current);
    s->current = NULL;
    enum pgd_status st = PGD_OK;
    for (;;) {
        while (!s->head) {
            /* Closed once every sample's final output was read. The engine lets go only
             * after queuing every final output, so !s->engine is a safety net: nothing
             * would ever feed this stream again. */
            if (s->n_final_read >= s->n_samples || !s->engine) {
                st = PGD_ERR_CLOSED;
                break;
            }
            if (timeout_ms == 0) {
                st = PGD_ERR_TIMEOUT;
                break;
            }
            if (timeout_ms < 0) {
                pthread_cond_wait(&s->cv, &s->mu);
            } else if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT &&
                       !s->head) {
                st = PGD_ERR_TIMEOUT;
                break;
            }
        }
        if (st != PGD_OK)
            break;
        struct pgd__out_rec *r = s->head;
        s->head = r->next;
        if (!s->head)
            s->tail = NULL;
        r->next = NULL;
        if (r->o.finish_reason != PGD_FINISH_NONE)
            s->n_final_read++;
        if (!s->text) {
            s->current = r;
            break;
        }
        /* The reader's own text (engine_reader_text.c): r and s->text are this thread's
         * alone (one reader at a time), so no lock while it detokenizes. */
        pthread_mutex_unlock(&s->mu);
        const enum pgd__reader_text_verdict v = pgd__reader_text_make(s->text, r);
        pthread_mutex_lock(&s->mu);
        if (v == PGD__RT_DROP) {
            pgd__out_rec_free(r);    /* its sample ended here before: the next one */
            continue;
        }
        /* A stop string ended the sample here: the engine ends it too (lock order: this
         * stream's mu, then the engine's, as pgd_stream_destroy takes them). */
        if (v == PGD__RT_STOPPED && s->engine)
            pgd__engine_stop_sample(s->engine, s->request_id, r->o.index);
        s->current = r;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    if (st == PGD_OK)
        *out = s->current->o;
    return st;
}

void pgd_stream_destroy(struct pgd_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    /* Lock order: a stream's mu, then the engine's mu (the engine thread never holds its
     * mu while it takes a stream's). While s->engine is set the engine is alive. */
    if (s->engine && s->n_final_queued < s->n_samples)
        pgd_engine_abort(s->engine, s->request_id);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        pgd__stream_free(s);
}
