/* Internal: a parallel for over an index range, for the load-time work that is large and
 * embarrassingly parallel (random weights, quantizing a 16-bit checkpoint at load). Compiled
 * into libpagoda and into the plugins that need it (BASE_PLUGIN_SOURCES). */
#ifndef PGD_RUNTIME_BASE_PARALLEL_H
#define PGD_RUNTIME_BASE_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

/* Runs fn(arg, begin, end) over ranges that split [0, n): one range a thread, on up to
 * max_threads threads and the host's processors, each range at least min_per_range items
 * (so a small n runs on the calling thread alone). The calling thread runs the first
 * range, and any range whose thread could not start. fn may run on several threads at
 * once with the same arg. Returns whether every call returned true. */
bool pgd__parallel_for(int64_t n, int64_t min_per_range, int max_threads,
                       bool (*fn)(void *arg, int64_t begin, int64_t end), void *arg);

#endif
