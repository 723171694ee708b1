/* Internal: the clock readings timed waits and timeouts are built from.
 *
 *     struct timespec dl = pgd__deadline_after(CLOCK_MONOTONIC, timeout_ms);
 *     pthread_cond_timedwait(&cv, &mu, &dl);   (cv created with that clock)
 *
 * The clock is the caller's because pthread_cond_timedwait reads its deadline on the clock
 * the condition variable was created with (CLOCK_REALTIME unless its attributes say
 * otherwise). Elapsed time and deadlines kept as numbers use CLOCK_MONOTONIC, which a
 * wall-clock jump does not move. */
#ifndef PGD_RUNTIME_BASE_CLOCK_H
#define PGD_RUNTIME_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC now, in milliseconds (from an arbitrary origin). */
int64_t pgd__now_ms(void);
/* CLOCK_MONOTONIC now, in seconds to the nanosecond (from an arbitrary origin): for
 * measuring elapsed times finer than a millisecond (benchmarks, latency statistics). */
double pgd__now_s(void);

/* The time on clock `clock` ms (>= 0) milliseconds from now, normalized (tv_nsec below 1e9):
 * a deadline for pthread_cond_timedwait. */
struct timespec pgd__deadline_after(clockid_t clock, int ms);

#endif
