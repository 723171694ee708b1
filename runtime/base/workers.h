/* Internal: a pool of helper threads that share the items of one call at a time with the
 * thread that makes it, for per-step work the engine thread would otherwise do alone
 * (structured output's masks: engine_mask.c). The helpers sleep between calls. Unlike
 * pgd__parallel_for (parallel.h), which starts threads for each call of load-time work,
 * its threads live as long as the pool. */
#ifndef PGD_RUNTIME_BASE_WORKERS_H
#define PGD_RUNTIME_BASE_WORKERS_H

#include <pagoda/status.h>
#include <stddef.h>

struct pgd__workers;

/* A pool of n_threads helpers (1..64), started now. Errors: a thread that did not start. */
enum pgd_status pgd__workers_create(int n_threads, struct pgd__workers **out, char *err,
                                    size_t errlen);
/* Stops and joins the helpers (NULL is fine). No call may be running. */
void pgd__workers_destroy(struct pgd__workers *w);
/* Its helpers. */
int pgd__workers_threads(const struct pgd__workers *w);
/* fn(arg, i) once for each i in [0, n), on the calling thread and the helpers, each taking
 * the next item until none is left; returns once every item is done and no helper still
 * holds fn or arg. The items must not depend on each other. One call at a time. */
void pgd__workers_run(struct pgd__workers *w, int n, void (*fn)(void *arg, int i), void *arg);
/* The helpers a pool for per-step work gets on this host: half its processors, 1 to 8
 * (0 on a host with one processor: no pool). */
int pgd__workers_default_threads(void);

#endif
