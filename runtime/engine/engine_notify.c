/* Waking the readers of the engine's streams off the engine thread (engine_internal.h's
 * struct pgd__notifier). A token's output used to wake its reader from the engine thread
 * (a futex wake a token, and on a loaded host the switch to the woken thread), all of it
 * between one step's forward pass and the next. Now the engine thread queues each output
 * quietly (pgd__stream_push_quiet), lists the streams that got one, and at the end of the
 * step hands the list to this thread in one go (one wake at most); this thread wakes each
 * stream's reader while the engine thread runs the next step. A listed stream holds a
 * reference until it is woken, so its reader may drop it meanwhile. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

static void *notifier_main(void *arg)
{
    struct pgd__notifier *nt = arg;
    struct pgd_stream **work = NULL;   /* owned: the batch being woken */
    size_t work_cap = 0;
    pthread_mutex_lock(&nt->mu);
    for (;;) {
        while (nt->n == 0 && !nt->stop)
            pthread_cond_wait(&nt->cv, &nt->mu);
        if (nt->n == 0)
            break;                   /* stopped, and nothing left to wake */
        /* Take the queue; the engine thread fills the other buffer meanwhile. */
        struct pgd_stream **q = nt->queue;
        size_t n = nt->n, cap = nt->cap;
        nt->queue = work;
        nt->cap = work_cap;
        nt->n = 0;
        work = q;
        work_cap = cap;
        pthread_mutex_unlock(&nt->mu);
        for (size_t i = 0; i < n; i++)
            pgd__stream_wake(work[i]);
        pthread_mutex_lock(&nt->mu);
    }
    pthread_mutex_unlock(&nt->mu);
    free(work);
    return NULL;
}

enum pgd_status pgd__notifier_start(struct pgd__notifier *nt, char *err, size_t errlen)
{
    memset(nt, 0, sizeof *nt);
    pthread_mutex_init(&nt->mu, NULL);
    pthread_cond_init(&nt->cv, NULL);
    if (pthread_create(&nt->thread, NULL, notifier_main, nt) != 0)
        return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "engine: cannot start its stream "
                        "notifier thread");
    nt->started = true;
    return PGD_OK;
}

void pgd__notifier_add(struct pgd__notifier *nt, struct pgd_stream *s)
{
    pgd__array_reserve_or_oom(nt->pending, nt->pending_cap, nt->n_pending + 1,
                              "engine: streams to wake");
    nt->pending[nt->n_pending++] = s;
}

void pgd__notifier_flush(struct pgd__notifier *nt)
{
    if (nt->n_pending == 0)
        return;
    pthread_mutex_lock(&nt->mu);
    pgd__array_reserve_or_oom(nt->queue, nt->cap, nt->n + nt->n_pending,
                              "engine: streams to wake");
    memcpy(nt->queue + nt->n, nt->pending, nt->n_pending * sizeof *nt->pending);
    nt->n += nt->n_pending;
    pthread_cond_signal(&nt->cv);
    pthread_mutex_unlock(&nt->mu);
    nt->n_pending = 0;
}

void pgd__notifier_stop(struct pgd__notifier *nt)
{
    if (!nt->started)
        return;
    pgd__notifier_flush(nt);
    pthread_mutex_lock(&nt->mu);
    nt->stop = true;
    pthread_cond_signal(&nt->cv);
    pthread_mutex_unlock(&nt->mu);
    pthread_join(nt->thread, NULL);
    nt->started = false;
    free(nt->queue);
    free(nt->pending);
    pthread_mutex_destroy(&nt->mu);
    pthread_cond_destroy(&nt->cv);
}
