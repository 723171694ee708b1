/* The report of `pagoda bench serve` (see report.h): per-request results folded into
 * vLLM's metrics. The definitions are vLLM's: TTFT is the time to the first token chunk;
 * TPOT is (E2E latency - TTFT) / (output tokens - 1) over requests with more than one
 * output token; ITL is every gap between token chunks of every request; E2E latency is from
 * sending to the end of the stream; throughputs divide the completed requests' tokens by the
 * whole run's duration. Output tokens are the server's usage count (completion_tokens of the
 * final chunk), else the token chunks counted. Goodput counts the completed requests that
 * meet every SLO given (a TPOT of 0 for one-token outputs). Means, medians, standard
 * deviations and percentiles are numpy's (population std, linear percentiles). */
#include "config.h"
#include "tools/bench/serve/report.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bs_sort(double *v, int n)
{
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_double);
}

double bs_percentile(const double *v, int n, double p)
{
    if (n <= 0)
        return 0;
    double pos = p / 100.0 * (n - 1);
    int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

void bs_report_header(FILE *out, const char *title, char c)
{
    int len = (int)strlen(title), pad = 50 - len, left = pad / 2;
    for (int i = 0; i < left; i++)
        fputc(c, out);
    fputs(title, out);
    for (int i = 0; i < pad - left; i++)
        fputc(c, out);
    fputc('\n', out);
}

struct series {
    double *v;      /* seconds */
    int n;
};

/* Mean, median, std and the percentiles of one metric: printed in ms and stored as
 * mean_<key>_ms, median_<key>_ms, std_<key>_ms, p<P>_<key>_ms. */
static void metric(const struct bs_report_in *in, json_t *r, FILE *out, struct series s,
                   const char *key, const char *name, const char *title)
{
    bs_sort(s.v, s.n);
    double sum = 0, sq = 0;
    for (int i = 0; i < s.n; i++)
        sum += s.v[i];
    double mean = s.n ? sum / s.n : 0;
    for (int i = 0; i < s.n; i++)
        sq += (s.v[i] - mean) * (s.v[i] - mean);
    double stdv = s.n ? sqrt(sq / s.n) : 0, median = bs_percentile(s.v, s.n, 50);
    char k[64], label[64];
    bs_report_header(out, title, '-');
    snprintf(label, sizeof label, "Mean %s (ms):", name);
    fprintf(out, "%-40s %-10.2f\n", label, mean * 1e3);
    snprintf(label, sizeof label, "Median %s (ms):", name);
    fprintf(out, "%-40s %-10.2f\n", label, median * 1e3);
    snprintf(k, sizeof k, "mean_%s_ms", key);
    json_object_set_new(r, k, json_real(mean * 1e3));
    snprintf(k, sizeof k, "median_%s_ms", key);
    json_object_set_new(r, k, json_real(median * 1e3));
    snprintf(k, sizeof k, "std_%s_ms", key);
    json_object_set_new(r, k, json_real(stdv * 1e3));
    for (int i = 0; i < in->n_percentiles; i++) {
        double p = in->percentiles[i], v = bs_percentile(s.v, s.n, p) * 1e3;
        snprintf(label, sizeof label, "P%g %s (ms):", p, name);
        fprintf(out, "%-40s %-10.2f\n", label, v);
        snprintf(k, sizeof k, "p%g_%s_ms", p, key);
        json_object_set_new(r, k, json_real(v));
    }
}

/* vLLM's peak figures: output tokens landing in each second of the run (a token at each
 * chunk), and requests in flight during each second; the maxima. */
static void peaks(const struct bs_report_in *in, double *max_tok_s, int *max_conc)
{
    double t0 = INFINITY, t1 = -INFINITY;
    for (int i = 0; i < in->n; i++)
        if (in->res[i].success) {
            const struct bs_result *r = &in->res[i];
            t0 = r->start_s < t0 ? r->start_s : t0;
            t1 = r->start_s + r->latency_s > t1 ? r->start_s + r->latency_s : t1;
        }
    *max_tok_s = 0;
    *max_conc = 0;
    if (t0 > t1)
        return;
    int secs = (int)ceil(t1 - t0) + 1;
    double *tok = calloc((size_t)secs, sizeof *tok);
    int *conc = calloc((size_t)secs, sizeof *conc);
    for (int i = 0; tok && conc && i < in->n; i++) {
        const struct bs_result *r = &in->res[i];
        if (!r->success)
            continue;
        double t = r->start_s + r->ttft_s;
        for (int k = -1; k < r->n_itl; k++) {
            if (k >= 0)
                t += r->itl[k];
            int b = (int)(t - t0);
            if (b >= 0 && b < secs)
                tok[b]++;
        }
        int s0 = (int)(r->start_s - t0), s1 = (int)(r->start_s + r->latency_s - t0);
        for (int s = s0; s <= s1 && s < secs; s++)
            conc[s]++;
    }
    for (int s = 0; tok && conc && s < secs; s++) {
        *max_tok_s = tok[s] > *max_tok_s ? tok[s] : *max_tok_s;
        *max_conc = conc[s] > *max_conc ? conc[s] : *max_conc;
    }
    free(tok);
    free(conc);
}

/* The per-request lists of the result. */
static void lists(const struct bs_report_in *in, json_t *r)
{
    json_t *il = json_array(), *ol = json_array(), *tt = json_array(), *itls = json_array(),
           *txt = json_array(), *errs = json_array();
    for (int i = 0; i < in->n; i++) {
        const struct bs_result *x = &in->res[i];
        json_array_append_new(il, json_integer(in->prompt_len[i]));
        json_array_append_new(ol, json_integer(x->success ? x->output_tokens : 0));
        json_array_append_new(tt, json_real(x->success ? x->ttft_s : 0));
        json_t *g = json_array();
        for (int k = 0; x->success && k < x->n_itl; k++)
            json_array_append_new(g, json_real(x->itl[k]));
        json_array_append_new(itls, g);
        json_array_append_new(txt, json_string(x->text.p ? x->text.p : ""));
        json_array_append_new(errs, json_string(x->error ? x->error : ""));
    }
    json_object_set_new(r, "input_lens", il);
    json_object_set_new(r, "output_lens", ol);
    json_object_set_new(r, "ttfts", tt);
    json_object_set_new(r, "itls", itls);
    json_object_set_new(r, "generated_texts", txt);
    json_object_set_new(r, "errors", errs);
}

json_t *bs_report(const struct bs_report_in *in, FILE *out)
{
    size_t n = (size_t)(in->n ? in->n : 1);
    struct series ttft = { calloc(n, sizeof(double)), 0 }, tpot = { calloc(n, sizeof(double)), 0 };
    struct series e2el = { calloc(n, sizeof(double)), 0 }, itl = { NULL, 0 };
    long total_itl = 0, total_in = 0, total_out = 0;
    int completed = 0, good = 0;
    for (int i = 0; i < in->n; i++)
        total_itl += in->res[i].success ? in->res[i].n_itl : 0;
    itl.v = calloc((size_t)total_itl + 1, sizeof(double));
    json_t *r = json_object();
    if (!ttft.v || !tpot.v || !e2el.v || !itl.v || !r)
        goto fail;
    for (int i = 0; i < in->n; i++) {
        const struct bs_result *x = &in->res[i];
        if (!x->success)
            continue;
        completed++;
        total_in += in->prompt_len[i];
        total_out += x->output_tokens;
        double tp = x->output_tokens > 1 ? (x->latency_s - x->ttft_s) / (x->output_tokens - 1)
                                         : 0;
        if (x->output_tokens > 1)
            tpot.v[tpot.n++] = tp;
        ttft.v[ttft.n++] = x->ttft_s;
        e2el.v[e2el.n++] = x->latency_s;
        for (int k = 0; k < x->n_itl; k++)
            itl.v[itl.n++] = x->itl[k];
        const double *slo = in->goodput_ms;
        if (in->goodput && (slo[0] < 0 || x->ttft_s * 1e3 <= slo[0]) &&
            (slo[1] < 0 || tp * 1e3 <= slo[1]) && (slo[2] < 0 || x->latency_s * 1e3 <= slo[2]))
            good++;
    }
    double d = in->duration_s > 0 ? in->duration_s : 1e-9, peak_tok;
    int peak_conc;
    peaks(in, &peak_tok, &peak_conc);

    bs_report_header(out, " Serving Benchmark Result ", '=');
    fprintf(out, "%-40s %-10d\n", "Successful requests:", completed);
    fprintf(out, "%-40s %-10d\n", "Failed requests:", in->n - completed);
    if (in->max_concurrency > 0)
        fprintf(out, "%-40s %-10d\n", "Maximum request concurrency:", in->max_concurrency);
    if (isfinite(in->request_rate))
        fprintf(out, "%-40s %-10.2f\n", "Request rate configured (RPS):", in->request_rate);
    fprintf(out, "%-40s %-10.2f\n", "Benchmark duration (s):", in->duration_s);
    fprintf(out, "%-40s %-10ld\n", "Total input tokens:", total_in);
    fprintf(out, "%-40s %-10ld\n", "Total generated tokens:", total_out);
    fprintf(out, "%-40s %-10.2f\n", "Request throughput (req/s):", completed / d);
    if (in->goodput)
        fprintf(out, "%-40s %-10.2f\n", "Request goodput (req/s):", good / d);
    fprintf(out, "%-40s %-10.2f\n", "Output token throughput (tok/s):", total_out / d);
    fprintf(out, "%-40s %-10.2f\n", "Peak output token throughput (tok/s):", peak_tok);
    fprintf(out, "%-40s %-10.2f\n", "Peak concurrent requests:", (double)peak_conc);
    fprintf(out, "%-40s %-10.2f\n", "Total Token throughput (tok/s):", (total_in + total_out) / d);

    json_object_set_new(r, "duration", json_real(in->duration_s));
    json_object_set_new(r, "completed", json_integer(completed));
    json_object_set_new(r, "failed", json_integer(in->n - completed));
    json_object_set_new(r, "total_input_tokens", json_integer(total_in));
    json_object_set_new(r, "total_output_tokens", json_integer(total_out));
    json_object_set_new(r, "request_throughput", json_real(completed / d));
    json_object_set_new(r, "request_goodput", in->goodput ? json_real(good / d) : json_null());
    json_object_set_new(r, "output_throughput", json_real(total_out / d));
    json_object_set_new(r, "total_token_throughput", json_real((total_in + total_out) / d));
    lists(in, r);
    json_object_set_new(r, "max_output_tokens_per_s", json_real(peak_tok));
    json_object_set_new(r, "max_concurrent_requests", json_integer(peak_conc));
    if (in->metrics & BS_M_TTFT)
        metric(in, r, out, ttft, "ttft", "TTFT", "Time to First Token");
    if (in->metrics & BS_M_TPOT)
        metric(in, r, out, tpot, "tpot", "TPOT", "Time per Output Token (excl. 1st token)");
    if (in->metrics & BS_M_ITL)
        metric(in, r, out, itl, "itl", "ITL", "Inter-token Latency");
    if (in->metrics & BS_M_E2EL)
        metric(in, r, out, e2el, "e2el", "E2EL", "End-to-end Latency");
    for (int i = 0; i < 50; i++)
        fputc('=', out);
    fputc('\n', out);
    goto out;
fail:
    json_decref(r);
    r = NULL;
out:
    free(ttft.v);
    free(tpot.v);
    free(e2el.v);
    free(itl.v);
    return r;
}
