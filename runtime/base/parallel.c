/* The parallel for of parallel.h: pthreads, one range each, joined before it returns. */
#include "runtime/base/parallel.h"
#include <pthread.h>
#include <unistd.h>

#define PARALLEL_MAX_THREADS 64

struct range {
    bool (*fn)(void *arg, int64_t begin, int64_t end);
    void *arg;
    int64_t begin, end;
    bool ok;
};

static void *run_range(void *p)
{
    struct range *r = p;
    r->ok = r->fn(r->arg, r->begin, r->end);
    return NULL;
}

bool pgd__parallel_for(int64_t n, int64_t min_per_range, int max_threads,
                       bool (*fn)(void *arg, int64_t begin, int64_t end), void *arg)
{
    if (n <= 0)
        return true;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t nt = ncpu > 1 ? ncpu : 1;
    if (nt > max_threads)
        nt = max_threads;
    if (nt > PARALLEL_MAX_THREADS)
        nt = PARALLEL_MAX_THREADS;
    if (min_per_range > 0 && nt > n / min_per_range)
        nt = n / min_per_range;
    if (nt > n)
        nt = n;
    if (nt < 1)
        nt = 1;
    struct range r[PARALLEL_MAX_THREADS];
    pthread_t tid[PARALLEL_MAX_THREADS];
    bool started[PARALLEL_MAX_THREADS] = { false };
    for (int64_t k = 0; k < nt; k++) {
        r[k] = (struct range){ .fn = fn, .arg = arg, .begin = n * k / nt,
                               .end = n * (k + 1) / nt };
        if (k > 0)
            started[k] = pthread_create(&tid[k], NULL, run_range, &r[k]) == 0;
    }
    run_range(&r[0]);
    bool ok = r[0].ok;
    for (int64_t k = 1; k < nt; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            run_range(&r[k]);
        ok = ok && r[k].ok;
    }
    return ok;
}
