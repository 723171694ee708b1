/* Internal: Prometheus histograms and the text exposition format (version 0.0.4). */
#ifndef PGD_RUNTIME_METRICS_H
#define PGD_RUNTIME_METRICS_H

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

enum pgd__hist_kind { PGD__HIST_TTFT, PGD__HIST_ITL, PGD__HIST_E2E, PGD__HIST_QUEUE };
void pgd__histogram_init(struct pgd__histogram *h, enum pgd__hist_kind kind);
void pgd__histogram_observe(struct pgd__histogram *h, double v);

/* A growable text buffer; all writers abort on allocation failure only via PGD_ASSERT
 * (they report it as `failed` instead). */
struct pgd__strbuf {
    char *s;
    size_t len, cap;
    bool failed;
};
void pgd__strbuf_printf(struct pgd__strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes one metric family. labels (may be NULL) is e.g. `finished_reason="stop"`. */
void pgd__prom_header(struct pgd__strbuf *b, const char *name, const char *type,
                      const char *help);
void pgd__prom_sample(struct pgd__strbuf *b, const char *name, const char *labels, double v);
void pgd__prom_histogram(struct pgd__strbuf *b, const char *name, const char *help,
                         const struct pgd__histogram *h);

#endif
