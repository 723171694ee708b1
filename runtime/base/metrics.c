/* Histograms and Prometheus text exposition. */
#include "runtime/base/metrics.h"
#include <math.h>
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

/* vLLM's build_1_2_5_buckets (request token counts) and its iteration-token buckets, cut
 * at max_tokens by pgd__histogram_init_tokens. */
static const double TOKEN_BOUNDS[] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                                       10000, 20000, 50000, 100000, 200000, 500000, 1000000,
                                       2000000, 5000000, 10000000 };
static const double ITERATION_BOUNDS[] = { 1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
                                           8192, 16384, 32768, 65536, 131072, 262144, 524288,
                                           1048576 };

void pgd__histogram_init_tokens(struct pgd__histogram *h, enum pgd__hist_kind kind,
                                long max_tokens)
{
    memset(h, 0, sizeof *h);
    bool it = kind == PGD__HIST_ITERATION;
    h->bounds = it ? ITERATION_BOUNDS : TOKEN_BOUNDS;
    int n = it ? (int)(sizeof ITERATION_BOUNDS / sizeof ITERATION_BOUNDS[0])
               : (int)(sizeof TOKEN_BOUNDS / sizeof TOKEN_BOUNDS[0]);
    h->n_bounds = 1;
    while (h->n_bounds < n && h->bounds[h->n_bounds - 1] < (double)max_tokens)
        h->n_bounds++;
}

void pgd__histogram_init(struct pgd__histogram *h, enum pgd__hist_kind kind)
{
    memset(h, 0, sizeof *h);
    switch (kind) {
    case PGD__HIST_TOKENS:
    case PGD__HIST_ITERATION:
        pgd__histogram_init_tokens(h, kind, 1L << 20);
        break;
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

void pgd__prom_header(struct pgd__buf *b, const char *name, const char *type,
                      const char *help)
{
    pgd__buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void pgd__prom_float(char *buf, size_t n, double v)
{
    if (isnan(v) || isinf(v)) {
        snprintf(buf, n, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* The fewest significant digits that read back as v, and v's decimal exponent. */
    char e[64];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    int exp10 = atoi(strchr(e, 'e') + 1);
    if (v > 0 && exp10 >= 6) {
        /* Go's exponent form from a million on (prometheus_client's floatToGoString). */
        char *x = strchr(e, 'e');
        *x = '\0';
        snprintf(buf, n, "%se+%02d", e, exp10);
    } else if (exp10 >= -4 && exp10 < 16) {
        /* Python's repr: plain digits, at least one after the point. */
        int dec = p - 1 - exp10;
        snprintf(buf, n, "%.*f%s", dec > 0 ? dec : 0, v, dec > 0 ? "" : ".0");
    } else {
        snprintf(buf, n, "%s", e);
    }
}

void pgd__prom_label_value(char *buf, size_t n, const char *v)
{
    size_t o = 0;
    for (; v && *v && o + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            buf[o++] = '\\';
            buf[o++] = *v;
        } else if (*v == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *v;
        }
    }
    if (n)
        buf[o < n ? o : n - 1] = '\0';
}

void pgd__prom_sample(struct pgd__buf *b, const char *name, const char *labels, double v)
{
    char val[64];
    pgd__prom_float(val, sizeof val, v);
    if (labels && *labels)
        pgd__buf_appendf(b, "%s{%s} %s\n", name, labels, val);
    else
        pgd__buf_appendf(b, "%s %s\n", name, val);
}

void pgd__prom_histogram(struct pgd__buf *b, const char *name, const char *help,
                         const char *labels, const struct pgd__histogram *h)
{
    pgd__prom_header(b, name, "histogram", help);
    uint64_t cum = 0;
    bool has = labels && *labels;
    char n[160], le[64], lab[1024];
    snprintf(n, sizeof n, "%s_bucket", name);
    for (int i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        pgd__prom_float(le, sizeof le, i < h->n_bounds ? h->bounds[i] : INFINITY);
        snprintf(lab, sizeof lab, "%s%sle=\"%s\"", has ? labels : "", has ? "," : "", le);
        pgd__prom_sample(b, n, lab, (double)cum);
    }
    snprintf(n, sizeof n, "%s_count", name);
    pgd__prom_sample(b, n, labels, (double)h->count);
    snprintf(n, sizeof n, "%s_sum", name);
    pgd__prom_sample(b, n, labels, h->sum);
}
