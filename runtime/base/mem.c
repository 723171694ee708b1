/* Array growth and the fatal out-of-memory hook (the policy is in mem.h). */
#include "runtime/base/mem.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t pgd__grow_capacity(size_t cap, size_t need, size_t min_cap, size_t elem)
{
    size_t max = SIZE_MAX / elem;
    if (need > max)
        return 0;
    if (need <= cap)
        return cap;
    size_t c = cap <= max / 2 ? cap * 2 : max; /* doubling keeps appends amortized O(1) */
    if (c < min_cap)
        c = min_cap < max ? min_cap : max;
    return c < need ? need : c;
}

bool pgd__array_reserve_(void *arrp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = pgd__grow_capacity(*cap, need, 8, elem);
    if (!c)
        return false;
    /* arrp points at the caller's T *; it is read and written through memcpy so that any
     * object pointer type works without an aliasing cast. */
    void *old;
    memcpy(&old, arrp, sizeof old);
    void *p = realloc(old, c * elem);
    if (!p)
        return false;
    memcpy(arrp, &p, sizeof p);
    *cap = c;
    return true;
}

void pgd__array_reserve_or_oom_(void *arrp, size_t *cap, size_t need, size_t elem,
                                const char *what)
{
    if (!pgd__array_reserve_(arrp, cap, need, elem))
        pgd__oom(what, need <= SIZE_MAX / elem ? need * elem : SIZE_MAX);
}

void pgd__oom(const char *what, size_t bytes)
{
    fprintf(stderr, "pagoda: out of memory: %s (%zu bytes)\n", what, bytes);
    fflush(stderr);
    abort();
}
