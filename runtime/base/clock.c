/* Clock readings for timeouts and timings: monotonic milliseconds and seconds, and absolute
 * deadlines (clock.h). */
#include "runtime/base/clock.h"

int64_t pgd__now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

double pgd__now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct timespec pgd__deadline_after(clockid_t clock, int ms)
{
    struct timespec d;
    clock_gettime(clock, &d);
    d.tv_sec += ms / 1000;
    d.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (d.tv_nsec >= 1000000000L) { /* both parts were below 1e9: one carry at most */
        d.tv_sec++;
        d.tv_nsec -= 1000000000L;
    }
    return d;
}
