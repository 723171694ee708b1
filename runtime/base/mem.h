/* Internal: the out-of-memory policy's two tools: geometric array growth that reports failure
 * (overflow-checked), and the one place where an allocation failure is fatal (pgd__oom).
 *
 * The policy (stated in include/pagoda/status.h beside PGD_ASSERT): an allocation whose size
 * follows from input (a request, a file, a model, a template) returns PGD_ERR_NOMEM up to
 * the caller with a message; only fixed-size bookkeeping inside the engine's step, bounded by
 * the configuration and with no caller that could recover mid-step, may treat failure as
 * fatal, and then it calls pgd__oom(), never PGD_ASSERT (running out of memory is not a bug).
 * The helpers here and in buf.h never abort: they report failure to their caller. */
#ifndef PGD_RUNTIME_BASE_MEM_H
#define PGD_RUNTIME_BASE_MEM_H

#include <stdbool.h>
#include <stddef.h>

/* The capacity (in elements of elem bytes, elem > 0) to grow an array of cap elements to so
 * that it holds need: cap itself when it already does, else the larger of need, 2 * cap and
 * min_cap, clamped so that the byte size fits in a size_t. 0 when need * elem overflows a
 * size_t (no capacity can hold it). */
size_t pgd__grow_capacity(size_t cap, size_t need, size_t min_cap, size_t elem);

/* Makes the heap array *arrp (capacity *cap elements of elem bytes; NULL with *cap == 0 to
 * start) hold at least need elements, growing it geometrically with realloc. Returns false
 * on overflow or out of memory; then *arrp and *cap are unchanged and *arrp still owned by
 * the caller. arrp is the address of the caller's pointer (any object pointer type). */
bool pgd__array_reserve_(void *arrp, size_t *cap, size_t need, size_t elem);
#define pgd__array_reserve(arr, cap, need) \
    pgd__array_reserve_(&(arr), &(cap), (need), sizeof *(arr))

/* pgd__array_reserve for the engine bookkeeping the policy lets fail fatally: calls
 * pgd__oom(what, bytes) when the array cannot grow. */
void pgd__array_reserve_or_oom_(void *arrp, size_t *cap, size_t need, size_t elem,
                                const char *what);
#define pgd__array_reserve_or_oom(arr, cap, need, what) \
    pgd__array_reserve_or_oom_(&(arr), &(cap), (need), sizeof *(arr), (what))

/* Fatal out of memory: logs "pagoda: out of memory: <what> (<bytes> bytes)" and aborts.
 * Only for the engine-internal bookkeeping the policy above names. */
_Noreturn void pgd__oom(const char *what, size_t bytes);

#endif
