/* Internal: Prometheus histograms and the text exposition format (version 0.0.4). */
#ifndef PGD_RUNTIME_METRICS_H
#define PGD_RUNTIME_METRICS_H

#include "runtime/base/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGD__HIST_MAX_BUCKETS 24

struct pgd__histogram {
    const double *bounds;            /* [n_bounds] upper bounds, ascending; static */
    int n_bounds;
    uint64_t counts[PGD__HIST_MAX_BUCKETS + 1];   /* per bucket; the last is +Inf */
    uint64_t count;
    double sum;
};

/* The bucket bounds of vLLM's histograms of the same names: TTFT, ITL, E2E (request latency,
 * also the queue, prefill and decode times), TOKENS (1, 2, 5, 10, 20, 50, ... up to
 * max_tokens: prompt and generation tokens of a request) and ITERATION (1, 8, 16, 32, ...
 * up to max_tokens: tokens of one engine step). */
enum pgd__hist_kind { PGD__HIST_TTFT, PGD__HIST_ITL, PGD__HIST_E2E, PGD__HIST_QUEUE,
                      PGD__HIST_TOKENS, PGD__HIST_ITERATION };
void pgd__histogram_init(struct pgd__histogram *h, enum pgd__hist_kind kind);
/* The same for the token kinds, whose last bound is the first >= max_tokens. */
void pgd__histogram_init_tokens(struct pgd__histogram *h, enum pgd__hist_kind kind,
                                long max_tokens);
void pgd__histogram_observe(struct pgd__histogram *h, double v);

/* Writes one metric family into b (a failed append leaves b->failed set). labels (may be
 * NULL) is e.g. `finished_reason="stop"`; pgd__prom_histogram puts its labels before each
 * bucket's le. Numbers are written as Prometheus' own clients write them: the shortest
 * text that reads back as the same double (le="0.005", not 0.0050000000000000001),
 * integers with ".0", 1e+06 from a million up. */
void pgd__prom_header(struct pgd__buf *b, const char *name, const char *type,
                      const char *help);
void pgd__prom_sample(struct pgd__buf *b, const char *name, const char *labels, double v);
void pgd__prom_histogram(struct pgd__buf *b, const char *name, const char *help,
                         const char *labels, const struct pgd__histogram *h);
/* v as Prometheus writes it (see above), into buf. */
void pgd__prom_float(char *buf, size_t n, double v);
/* A label value with \, " and newlines escaped, into buf (cut to fit). */
void pgd__prom_label_value(char *buf, size_t n, const char *v);

#endif
