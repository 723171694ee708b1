/* Histograms and Prometheus text exposition. */
#include "runtime/base/metrics.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bucket bounds in seconds, after vLLM's. */
static const double TTFT_BOUNDS[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
                                      0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
                                      160.0, 640.0, 2560.0 };
static const double ITL_BOUNDS[] = { 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                     0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0 };
static const double E2E_BOUNDS[] = { 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                                     30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
                                     1920.0, 7680.0 };

void pgd__histogram_init(struct pgd__histogram *h, enum pgd__hist_kind kind)
{
    memset(h, 0, sizeof *h);
    switch (kind) {
    case PGD__HIST_TTFT:
        h->bounds = TTFT_BOUNDS;
        h->n_bounds = (int)(sizeof TTFT_BOUNDS / sizeof TTFT_BOUNDS[0]);
        break;
    case PGD__HIST_ITL:
        h->bounds = ITL_BOUNDS;
        h->n_bounds = (int)(sizeof ITL_BOUNDS / sizeof ITL_BOUNDS[0]);
        break;
    case PGD__HIST_E2E:
    case PGD__HIST_QUEUE:
        h->bounds = E2E_BOUNDS;
        h->n_bounds = (int)(sizeof E2E_BOUNDS / sizeof E2E_BOUNDS[0]);
        break;
    }
}

void pgd__histogram_observe(struct pgd__histogram *h, double v)
{
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void pgd__strbuf_printf(struct pgd__strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

void pgd__prom_header(struct pgd__strbuf *b, const char *name, const char *type,
                      const char *help)
{
    pgd__strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void fmt_value(char *buf, size_t n, double v)
{
    if (isinf(v))
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.1f", v);
    else
        snprintf(buf, n, "%.17g", v);
}

void pgd__prom_sample(struct pgd__strbuf *b, const char *name, const char *labels, double v)
{
    char val[64];
    fmt_value(val, sizeof val, v);
    if (labels && *labels)
        pgd__strbuf_printf(b, "%s{%s} %s\n", name, labels, val);
    else
        pgd__strbuf_printf(b, "%s %s\n", name, val);
}

void pgd__prom_histogram(struct pgd__strbuf *b, const char *name, const char *help,
                         const struct pgd__histogram *h)
{
    pgd__prom_header(b, name, "histogram", help);
    uint64_t cum = 0;
    char n[160], le[64], lab[96];
    snprintf(n, sizeof n, "%s_bucket", name);
    for (int i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        fmt_value(le, sizeof le, i < h->n_bounds ? h->bounds[i] : INFINITY);
        snprintf(lab, sizeof lab, "le=\"%s\"", le);
        pgd__prom_sample(b, n, lab, (double)cum);
    }
    snprintf(n, sizeof n, "%s_count", name);
    pgd__prom_sample(b, n, NULL, (double)h->count);
    snprintf(n, sizeof n, "%s_sum", name);
    pgd__prom_sample(b, n, NULL, h->sum);
}
