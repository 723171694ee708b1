/* The helper pool of workers.h. A call publishes a job (on the caller's stack) under the
 * pool's mutex and wakes the helpers; every thread takes items by an atomic counter. A
 * helper joins a job only under the mutex and while it is published, and the caller
 * withdraws it (under the mutex) only once no helper is inside it, so no helper touches a
 * job after its call returned. */
#include "runtime/base/workers.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS_MAX 64

struct job {
    void (*fn)(void *arg, int i);
    void *arg;
    int n;
    atomic_int next;                 /* the next item to take */
};

struct pgd__workers {
    pthread_mutex_t mu;
    pthread_cond_t go;               /* a job was published, or stop */
    pthread_cond_t idle;             /* busy fell to 0 */
    struct job *job;                 /* the published job, or NULL; under mu */
    uint64_t gen;                    /* jobs published so far; under mu */
    int busy;                        /* helpers inside the published job; under mu */
    bool stop;                       /* under mu */
    pthread_t th[WORKERS_MAX];
    int n_th;
};

static void take_items(struct job *j)
{
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;)
        j->fn(j->arg, i);
}

static void *helper_main(void *arg)
{
    struct pgd__workers *w = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && (!w->job || w->gen == seen))
            pthread_cond_wait(&w->go, &w->mu);
        if (w->stop)
            break;
        seen = w->gen;
        struct job *j = w->job;
        w->busy++;
        pthread_mutex_unlock(&w->mu);
        take_items(j);
        pthread_mutex_lock(&w->mu);
        if (--w->busy == 0)
            pthread_cond_signal(&w->idle);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

enum pgd_status pgd__workers_create(int n_threads, struct pgd__workers **out, char *err,
                                    size_t errlen)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > WORKERS_MAX)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "workers: %d helper threads (1 to "
                        "%d)", n_threads, WORKERS_MAX);
    struct pgd__workers *w = calloc(1, sizeof *w);
    if (!w)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "workers: out of memory");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->go, NULL);
    pthread_cond_init(&w->idle, NULL);
    for (; w->n_th < n_threads; w->n_th++)
        if (pthread_create(&w->th[w->n_th], NULL, helper_main, w) != 0) {
            pgd__workers_destroy(w);
            return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "workers: helper thread %d of %d "
                            "did not start", w->n_th + 1, n_threads);
        }
    *out = w;
    return PGD_OK;
}

void pgd__workers_destroy(struct pgd__workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_th; i++)
        pthread_join(w->th[i], NULL);
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->go);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int pgd__workers_threads(const struct pgd__workers *w)
{
    return w ? w->n_th : 0;
}

void pgd__workers_run(struct pgd__workers *w, int n, void (*fn)(void *arg, int i), void *arg)
{
    if (n <= 0)
        return;
    struct job j = { .fn = fn, .arg = arg, .n = n };
    atomic_init(&j.next, 0);
    if (!w || n == 1) {
        take_items(&j);
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->job = &j;
    w->gen++;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    take_items(&j);
    pthread_mutex_lock(&w->mu);
    while (w->busy > 0)
        pthread_cond_wait(&w->idle, &w->mu);
    w->job = NULL;
    pthread_mutex_unlock(&w->mu);
}

int pgd__workers_default_threads(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long n = ncpu / 2;
    return (int)(n < 1 ? 0 : n > 8 ? 8 : n);
}
