/* The pieces of `pagoda bench serve` that need no server: the SSE parser fed the same
 * stream cut at every byte, the report's arithmetic (TPOT, goodput, numpy's percentiles,
 * vLLM's keys) over hand-made results, and the arrival-gap draws' moments. */
#include "config.h"
#include "tools/bench/bench_draw.h"
#include "tools/bench/serve/report.h"
#include "runtime/base/sse.h"
#include "tests/lib/test_common.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

struct events {
    char got[8][128];
    int n;
};

static int on_event(void *ctx, const char *data, size_t len)
{
    struct events *e = ctx;
    cr_assert_lt(e->n, 8);
    cr_assert_eq(strlen(data), len);
    snprintf(e->got[e->n++], sizeof e->got[0], "%s", data);
    return 0;
}

/* Comments, CRLF, a field we ignore, an event of two data lines, no space after "data:",
 * and a last event whose blank line never comes. */
static const char STREAM[] =
    ": ping\r\n\r\n"
    "data: {\"a\":1}\r\n\r\n"
    "event: message\nid: 7\ndata: line one\ndata: line two\n\n"
    "data:[DONE]\n\n"
    "data: tail";

static void expect_events(const struct events *e)
{
    cr_assert_eq(e->n, 4);
    cr_assert_str_eq(e->got[0], "{\"a\":1}");
    cr_assert_str_eq(e->got[1], "line one\nline two");
    cr_assert_str_eq(e->got[2], "[DONE]");
    cr_assert_str_eq(e->got[3], "tail");
}

PGD_TEST_SUITE(bench_serve_sse);
PGD_TEST_SUITE(bench_serve_report);
PGD_TEST_SUITE(bench_serve_draw);

Test(bench_serve_sse, same_events_wherever_the_stream_is_cut)
{
    size_t n = strlen(STREAM);
    for (size_t cut = 0; cut <= n; cut++) {
        struct pgd__sse p = { 0 };
        struct events e = { 0 };
        cr_assert_eq(pgd__sse_feed(&p, STREAM, cut, on_event, &e), 0);
        cr_assert_eq(pgd__sse_feed(&p, STREAM + cut, n - cut, on_event, &e), 0);
        cr_assert_eq(pgd__sse_finish(&p, on_event, &e), 0);
        expect_events(&e);
        pgd__sse_fini(&p);
    }
    struct pgd__sse p = { 0 };   /* one byte at a time */
    struct events e = { 0 };
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(pgd__sse_feed(&p, STREAM + i, 1, on_event, &e), 0);
    cr_assert_eq(pgd__sse_finish(&p, on_event, &e), 0);
    expect_events(&e);
    pgd__sse_fini(&p);
}

static int stop_at_second(void *ctx, const char *data, size_t len)
{
    return ++*(int *)ctx == 2 ? 42 : 0;
}

Test(bench_serve_sse, callback_stops_the_feed)
{
    struct pgd__sse p = { 0 };
    int seen = 0;
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    cr_assert_eq(pgd__sse_feed(&p, s, strlen(s), stop_at_second, &seen), 42);
    cr_assert_eq(seen, 2);
    pgd__sse_fini(&p);
}

Test(bench_serve_report, percentiles_are_numpys)
{
    double v[] = { 1, 2, 3, 4 };
    cr_assert_float_eq(bs_percentile(v, 4, 50), 2.5, 1e-12);
    cr_assert_float_eq(bs_percentile(v, 4, 99), 3.97, 1e-12);   /* 1 + 0.99 * 3 ranks */
    cr_assert_float_eq(bs_percentile(v, 4, 0), 1, 1e-12);
    cr_assert_float_eq(bs_percentile(v, 4, 100), 4, 1e-12);
    cr_assert_float_eq(bs_percentile(v, 1, 90), 1, 1e-12);
    cr_assert_float_eq(bs_percentile(v, 0, 90), 0, 1e-12);
}

static double num(const json_t *r, const char *key)
{
    const json_t *v = json_object_get(r, key);
    cr_assert(json_is_number(v), "%s is missing or not a number", key);
    return json_number_value(v);
}

/* Three requests: two complete (one of 5 tokens, one of a single token), one refused. */
Test(bench_serve_report, metrics_from_results)
{
    double itl0[] = { 0.010, 0.020, 0.030, 0.040 };
    struct bs_result res[3] = {
        { .success = true, .status = 200, .start_s = 0.0, .ttft_s = 0.100, .latency_s = 0.200,
          .itl = itl0, .n_itl = 4, .chunks = 5, .output_tokens = 5 },
        { .success = true, .status = 200, .start_s = 0.5, .ttft_s = 0.300, .latency_s = 0.300,
          .chunks = 1, .output_tokens = 1 },
        { .success = false, .status = 400, .error = (char *)"HTTP 400: too long" },
    };
    int plen[3] = { 10, 20, 30 };
    struct bs_report_in in = {
        .res = res, .prompt_len = plen, .n = 3, .duration_s = 2.0, .request_rate = INFINITY,
        .goodput_ms = { 200, 30, -1 }, .goodput = true, .percentiles = { 50, 99 },
        .n_percentiles = 2, .metrics = BS_M_TTFT | BS_M_TPOT | BS_M_ITL | BS_M_E2EL,
    };
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    json_t *r = bs_report(&in, out);
    fclose(out);
    cr_assert_not_null(r);
    cr_assert_eq(num(r, "completed"), 2);
    cr_assert_eq(num(r, "failed"), 1);
    cr_assert_eq(num(r, "total_input_tokens"), 30);     /* completed requests only */
    cr_assert_eq(num(r, "total_output_tokens"), 6);
    cr_assert_float_eq(num(r, "request_throughput"), 1.0, 1e-12);
    cr_assert_float_eq(num(r, "output_throughput"), 3.0, 1e-12);
    cr_assert_float_eq(num(r, "total_token_throughput"), 18.0, 1e-12);
    /* Goodput: request 0 has TTFT 100 <= 200 and TPOT (200 - 100) / 4 = 25 <= 30; request 1
     * has TTFT 300 > 200. */
    cr_assert_float_eq(num(r, "request_goodput"), 0.5, 1e-12);
    cr_assert_float_eq(num(r, "mean_ttft_ms"), 200, 1e-9);
    cr_assert_float_eq(num(r, "median_ttft_ms"), 200, 1e-9);
    cr_assert_float_eq(num(r, "std_ttft_ms"), 100, 1e-9);
    cr_assert_float_eq(num(r, "p99_ttft_ms"), 298, 1e-9);
    /* TPOT only over outputs of more than one token. */
    cr_assert_float_eq(num(r, "mean_tpot_ms"), 25, 1e-9);
    cr_assert_float_eq(num(r, "mean_itl_ms"), 25, 1e-9);
    cr_assert_float_eq(num(r, "median_itl_ms"), 25, 1e-9);
    cr_assert_float_eq(num(r, "p50_e2el_ms"), 250, 1e-9);
    cr_assert_float_eq(num(r, "max_output_tokens_per_s"), 6, 1e-9);
    cr_assert_eq(num(r, "max_concurrent_requests"), 2);
    const json_t *ol = json_object_get(r, "output_lens"), *er = json_object_get(r, "errors");
    cr_assert_eq(json_array_size(ol), 3);
    cr_assert_eq(json_integer_value(json_array_get(ol, 2)), 0);
    cr_assert_str_eq(json_string_value(json_array_get(er, 2)), "HTTP 400: too long");
    cr_assert_str_eq(json_string_value(json_array_get(er, 0)), "");
    cr_assert_eq(json_array_size(json_array_get(json_object_get(r, "itls"), 0)), 4);
    /* The table: vLLM's header, labels and widths. */
    cr_assert(strstr(text, "============ Serving Benchmark Result ============\n"
                           "Successful requests:                     2         \n"
                           "Failed requests:                         1         \n"), "%s", text);
    cr_assert(strstr(text, "---------------Time to First Token----------------\n"
                           "Mean TTFT (ms):                          200.00    \n"), "%s", text);
    cr_assert(strstr(text, "Request goodput (req/s):                 0.50      \n"), "%s", text);
    cr_assert(strstr(text, "P99 TPOT (ms):"), "%s", text);
    json_decref(r);
    free(text);
}

Test(bench_serve_draw, gamma_moments)
{
    for (int k = 0; k < 3; k++) {
        double shape = (double[]){ 0.5, 1.0, 4.0 }[k], scale = 0.25, sum = 0, sq = 0;
        uint64_t rng = 11 + k;
        int n = 40000;
        for (int i = 0; i < n; i++) {
            double g = pgd_tool_gamma(&rng, shape, scale);
            cr_assert_gt(g, 0);
            sum += g;
            sq += g * g;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        cr_assert(fabs(mean - shape * scale) < 0.03 * shape * scale, "shape %g: mean %g", shape,
                  mean);
        cr_assert(fabs(var - shape * scale * scale) < 0.08 * shape * scale * scale,
                  "shape %g: variance %g", shape, var);
    }
}
