/* The pieces of `pagoda bench serve` that need no server: the SSE parser fed the same
 * stream cut at every byte, the report's arithmetic (TPOT, goodput, numpy's percentiles,
 * vLLM's keys) over hand-made results, the arrival-gap draws' moments, and the /metrics
 * parser behind the "Server steps" section (good lines, bad lines, missing series). */
#include "config.h"
#include "tools/bench/bench_draw.h"
#include "tools/bench/serve/report.h"
#include "tools/bench/serve/server_steps.h"
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
PGD_TEST_SUITE(bench_serve_prom);

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

/* Arrivals at 20 requests/s: ascending, the last at n / rate, the same for the same seed and
 * others for another; Poisson gaps (burstiness 1) have a coefficient of variation near 1,
 * burstiness 4 near 1/2, and an infinite one spaces them evenly. */
Test(bench_serve_draw, arrivals)
{
    enum { N = 20000 };
    static double t[N], u[N];
    const double cv_want[3] = { 1.0, 0.5, 0.0 };
    for (int k = 0; k < 3; k++) {
        double b = (double[]){ 1.0, 4.0, INFINITY }[k];
        pgd_tool_arrivals(N, 20.0, b, 7, t);
        pgd_tool_arrivals(N, 20.0, b, 7, u);
        cr_assert_eq(memcmp(t, u, sizeof t), 0, "burstiness %g: not deterministic", b);
        cr_assert(fabs(t[N - 1] - N / 20.0) < 1e-9 * N, "burstiness %g: last at %g", b,
                  t[N - 1]);
        double sum = 0, sq = 0, prev = 0;
        for (int i = 0; i < N; i++) {
            cr_assert_geq(t[i], prev, "burstiness %g: arrival %d goes back", b, i);
            sum += t[i] - prev;
            sq += (t[i] - prev) * (t[i] - prev);
            prev = t[i];
        }
        double mean = sum / N, sd = sqrt(fmax(sq / N - mean * mean, 0));
        cr_assert(fabs(sd / mean - cv_want[k]) < 0.03, "burstiness %g: CV %g", b, sd / mean);
    }
    pgd_tool_arrivals(N, 20.0, 1.0, 7, t);
    pgd_tool_arrivals(N, 20.0, 1.0, 8, u);
    cr_assert_neq(memcmp(t, u, sizeof t), 0, "seeds 7 and 8 gave the same arrivals");
}

/* ---- the /metrics parser of the "Server steps" section ------------------------------- */

static int parse(const char *line, struct bs_prom_sample *smp)
{
    return bs_prom_parse_line(line, strlen(line), smp);
}

Test(bench_serve_prom, sample_lines)
{
    struct bs_prom_sample s;
    cr_assert_eq(parse("pagoda:x_total 3", &s), 1);
    cr_assert_str_eq(s.name, "pagoda:x_total");
    cr_assert_eq(s.n_labels, 0);
    cr_assert_eq(s.value, 3);
    /* Labels with escapes, blanks, a trailing comma; a timestamp; CR of a CRLF body. */
    cr_assert_eq(parse("m{a=\"x\\\"y\\\\z\\n\" , b = \"1,2}\",} 1.5e-3 1712345678000\r", &s), 1);
    cr_assert_str_eq(s.name, "m");
    cr_assert_eq(s.n_labels, 2);
    cr_assert_str_eq(bs_prom_label(&s, "a"), "x\"y\\z\n");
    cr_assert_str_eq(bs_prom_label(&s, "b"), "1,2}");
    cr_assert_null(bs_prom_label(&s, "c"));
    cr_assert_float_eq(s.value, 1.5e-3, 1e-15);
    cr_assert_eq(parse("m{} +Inf", &s), 1);
    cr_assert(isinf(s.value) && s.value > 0);
    cr_assert_eq(parse("m NaN", &s), 1);
    cr_assert(isnan(s.value));
    cr_assert_eq(parse("m -Inf -5", &s), 1);
    cr_assert(isinf(s.value) && s.value < 0);
    /* Comments and blank lines are not samples. */
    cr_assert_eq(parse("# TYPE m counter", &s), 0);
    cr_assert_eq(parse("   ", &s), 0);
    cr_assert_eq(parse("", &s), 0);
    /* Labels past the room are read and dropped; long values are cut. */
    char many[512] = "m{";
    for (int i = 0; i < BS_PROM_MAX_LABELS + 3; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "l%d=\"%d\",", i, i);
    strcat(many, "} 7");
    cr_assert_eq(parse(many, &s), 1);
    cr_assert_eq(s.n_labels, BS_PROM_MAX_LABELS);
    cr_assert_eq(s.value, 7);
    char longv[400];
    snprintf(longv, sizeof longv, "m{k=\"%0300d\"} 1", 0);
    cr_assert_eq(parse(longv, &s), 1);
    cr_assert_eq(strlen(bs_prom_label(&s, "k")), sizeof s.val[0] - 1);
}

Test(bench_serve_prom, garbage_lines_are_refused)
{
    static const char *const bad[] = {
        "m",                    /* no value */
        "m ",                   /* no value */
        "m{a=\"1\" 3",          /* the labels never close */
        "m{a=\"1} 3",           /* the value never closes */
        "m{a=1} 3",             /* unquoted */
        "m{=\"1\"} 3",          /* no label name */
        "m{a:b=\"1\"} 3",       /* a colon in a label name */
        "m{a=\"1\"}3",          /* no blank before the value */
        "m abc",                /* not a number */
        "m 1x",
        "m inf",                /* strtod's spellings are not the format's */
        "m nan",
        "m 0x10",
        "m 1 2 3",              /* text after the timestamp */
        "m 1 -",
        "m 1 12a",
        "9m 1",                 /* a name starts with a letter, _ or : */
        "{a=\"1\"} 1",
    };
    struct bs_prom_sample s;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(parse(bad[i], &s), -1, "%s", bad[i]);
    char longname[300];
    memset(longname, 'a', 200);
    strcpy(longname + 200, " 1");
    cr_assert_eq(parse(longname, &s), -1);
}

/* A pagoda /metrics body: other series around, two model names summed, and lines that are
 * not ours (a histogram, a label we do not know, a kind we do not know). */
#define STEPS_BODY(dec, mixed)                                                                 \
    "# HELP pagoda:engine_steps_total Engine steps timed, by kind.\n"                           \
    "# TYPE pagoda:engine_steps_total counter\n"                                                \
    "pagoda:engine_steps_total{model_name=\"m\",kind=\"decode_only\"} " dec "\n"              \
    "pagoda:engine_steps_total{model_name=\"m\",kind=\"mixed\"} " mixed "\n"                  \
    "pagoda:engine_steps_total{model_name=\"m2\",kind=\"mixed\"} 1\n"                         \
    "pagoda:engine_steps_total{model_name=\"m\",kind=\"other\"} 100\n"                        \
    "pagoda:engine_step_seconds_total{model_name=\"m\",kind=\"decode_only\"} 2.0\n"           \
    "pagoda:engine_step_seconds_total{model_name=\"m\",kind=\"mixed\"} 1.5\n"                 \
    "pagoda:iteration_tokens_total_bucket{model_name=\"m\",le=\"+Inf\"} 9\n"                  \
    "pagoda:engine_step_device_seconds_total{model_name=\"m\",kind=\"decode_only\"} 1.0\n"    \
    "pagoda:engine_step_device_seconds_total{model_name=\"m\",kind=\"mixed\"} 0.5\n"          \
    "pagoda:engine_step_phase_seconds_total{model_name=\"m\",phase=\"schedule\"} 0.25\n"      \
    "pagoda:engine_step_phase_seconds_total{model_name=\"m\",phase=\"prepare\"} 0.25\n"       \
    "pagoda:engine_step_phase_seconds_total{model_name=\"m\",phase=\"model\"} 2.5\n"          \
    "pagoda:engine_step_phase_seconds_total{model_name=\"m\",phase=\"output\"} 0.5"

Test(bench_serve_prom, steps_parse_and_sum)
{
    const char *body = STEPS_BODY("40", "9");
    struct bs_steps st;
    cr_assert(bs_steps_parse(body, strlen(body), &st));
    cr_assert_eq(st.steps[BS_STEP_DECODE_ONLY], 40);
    cr_assert_eq(st.steps[BS_STEP_MIXED], 10, "both model names' mixed steps");
    cr_assert_eq(st.wall_s[BS_STEP_DECODE_ONLY], 2.0);
    cr_assert_eq(st.device_s[BS_STEP_MIXED], 0.5);
    cr_assert_eq(st.phase_s[BS_PHASE_MODEL], 2.5);
    cr_assert_eq(st.phase_s[BS_PHASE_OUTPUT], 0.5, "the last line, without a newline");
    cr_assert_not(st.has_push, "a server from before the push counter");
    /* With the output phase's push counter (two model names summed). */
    const char *pushed = STEPS_BODY("40", "9") "\n"
        "pagoda:engine_step_output_push_seconds_total{model_name=\"m\"} 0.125\n"
        "pagoda:engine_step_output_push_seconds_total{model_name=\"m2\"} 0.125\n";
    cr_assert(bs_steps_parse(pushed, strlen(pushed), &st));
    cr_assert(st.has_push);
    cr_assert_eq(st.push_s, 0.25);
    cr_assert_not(st.has_overlapped, "a server from before the overlapped counter");
    /* With async scheduling's overlapped steps. */
    const char *overlapped = STEPS_BODY("40", "9") "\n"
        "pagoda:engine_steps_overlapped_total{model_name=\"m\"} 31\n";
    cr_assert(bs_steps_parse(overlapped, strlen(overlapped), &st));
    cr_assert(st.has_overlapped);
    cr_assert_eq(st.overlapped, 31);
}

Test(bench_serve_prom, steps_missing_or_bad_series)
{
    struct bs_steps st;
    /* vLLM's /metrics: none of ours. */
    const char *vllm = "# TYPE vllm:num_requests_running gauge\n"
                       "vllm:num_requests_running{model_name=\"m\"} 0.0\n";
    cr_assert_not(bs_steps_parse(vllm, strlen(vllm), &st));
    cr_assert_not(bs_steps_parse("", 0, &st));
    /* One series a NaN, a negative or garbage: as if it were missing. */
    const char *bodies[] = { STEPS_BODY("NaN", "9"), STEPS_BODY("-1", "9"),
                             STEPS_BODY("4x", "9"), STEPS_BODY("+Inf", "9") };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        cr_assert_not(bs_steps_parse(bodies[i], strlen(bodies[i]), &st), "%zu", i);
    /* Without one phase. */
    const char *body = STEPS_BODY("40", "9");
    const char *cut = strstr(body, "pagoda:engine_step_phase_seconds_total{model_name=\"m\","
                                   "phase=\"output\"}");
    cr_assert_not_null(cut);
    cr_assert_not(bs_steps_parse(body, (size_t)(cut - body), &st));
}

Test(bench_serve_prom, steps_section_and_keys)
{
    const char *b0 = STEPS_BODY("0", "0"), *b1 = STEPS_BODY("40", "9");
    struct bs_steps before, after, d;
    cr_assert(bs_steps_parse(b0, strlen(b0), &before));
    cr_assert(bs_steps_parse(b1, strlen(b1), &after));
    /* Only the step counts moved: 40 decode-only and 9 mixed steps over the run. */
    cr_assert(bs_steps_diff(&before, &after, &d));
    cr_assert_not(bs_steps_diff(&after, &before, &d), "counters that went down");
    /* Hand-made differences: 40 decode-only steps of 50 ms (device 25), 10 mixed of 150 ms
     * (device 50), phases summing to 3.5 s over 50 steps, in a 7 s run. */
    d = (struct bs_steps){ .steps = { 40, 10 }, .wall_s = { 2.0, 1.5 },
                           .device_s = { 1.0, 0.5 }, .phase_s = { 0.25, 0.25, 2.5, 0.5 } };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    json_t *r = bs_steps_report(&d, 7.0, f);
    fclose(f);
    cr_assert_not_null(r);
    cr_assert(strstr(text, "----------Server Steps (pagoda /metrics)----------\n"
                           "Steps (decode-only / mixed):             40 / 10\n"
                           "Decode-only step (ms, wall / device):    50.000 / 25.000\n"
                           "Mixed step (ms, wall / device):          150.000 / 50.000\n"
                           "Phase ms a step (sched/prep/model/out):  5.000 / 5.000 / 50.000 / "
                           "10.000\n"
                           "Engine busy in steps (% of the run):     50.0\n"), "%s", text);
    cr_assert_eq(json_integer_value(json_object_get(r, "steps")), 50);
    cr_assert_eq(json_integer_value(json_object_get(r, "decode_only_steps")), 40);
    cr_assert_eq(json_integer_value(json_object_get(r, "mixed_steps")), 10);
    cr_assert_float_eq(num(r, "decode_only_step_ms"), 50, 1e-9);
    cr_assert_float_eq(num(r, "mixed_step_device_ms"), 50, 1e-9);
    cr_assert_float_eq(num(r, "model_ms"), 50, 1e-9);
    cr_assert_float_eq(num(r, "mixed_seconds"), 1.5, 1e-12);
    cr_assert_float_eq(num(r, "engine_busy_fraction"), 0.5, 1e-12);
    cr_assert(json_is_null(json_object_get(r, "output_push_ms")), "no push counter: null");
    cr_assert_null(strstr(text, "stream pushes"), "%s", text);
    cr_assert(json_is_null(json_object_get(r, "overlapped_steps")), "no overlapped counter");
    cr_assert_null(strstr(text, "overlapped"), "%s", text);
    json_decref(r);
    free(text);
    /* With the push counter: 0.25 s over 50 steps. */
    d.push_s = 0.25;
    d.has_push = true;
    f = open_memstream(&text, &len);
    r = bs_steps_report(&d, 7.0, f);
    fclose(f);
    cr_assert(strstr(text, "Of the output, stream pushes (ms a step): 5.000\n"), "%s", text);
    cr_assert_float_eq(num(r, "output_push_ms"), 5, 1e-9);
    json_decref(r);
    free(text);
    /* With the overlapped counter: 31 of the 50 steps. */
    d.overlapped = 31;
    d.has_overlapped = true;
    f = open_memstream(&text, &len);
    r = bs_steps_report(&d, 7.0, f);
    fclose(f);
    cr_assert(strstr(text, "Steps overlapped (async scheduling):     31\n"), "%s", text);
    cr_assert_eq(json_integer_value(json_object_get(r, "overlapped_steps")), 31);
    json_decref(r);
    free(text);
    /* A difference has the pushes only when both scrapes had them. */
    struct bs_steps with = before;
    with.has_push = true;
    with.push_s = 1.0;
    cr_assert(bs_steps_diff(&before, &with, &d));
    cr_assert_not(d.has_push);
    struct bs_steps with2 = with;
    with2.push_s = 1.5;
    cr_assert(bs_steps_diff(&with, &with2, &d));
    cr_assert(d.has_push);
    cr_assert_eq(d.push_s, 0.5);
    /* The same for the overlapped steps. */
    with.has_overlapped = with2.has_overlapped = true;
    with.overlapped = 10;
    with2.overlapped = 25;
    cr_assert(bs_steps_diff(&with, &with2, &d));
    cr_assert(d.has_overlapped);
    cr_assert_eq(d.overlapped, 15);
    cr_assert(bs_steps_diff(&before, &with2, &d));
    cr_assert_not(d.has_overlapped);
    /* No steps at all: zeros, not NaN. */
    d = (struct bs_steps){ 0 };
    f = open_memstream(&text, &len);
    r = bs_steps_report(&d, 0, f);
    fclose(f);
    cr_assert_eq(num(r, "decode_only_step_ms"), 0);
    cr_assert_eq(num(r, "schedule_ms"), 0);
    cr_assert_eq(num(r, "engine_busy_fraction"), 0);
    json_decref(r);
    free(text);
}
