/* `pagoda bench serve`: the online serving benchmark, a client that drives a running
 * OpenAI-compatible server (pagoda's, vLLM's, any other) as `vllm bench serve` does, with
 * its flag names, its report table and its --save-result JSON keys. This file owns the
 * command line and the order of the run: wait for the server and learn its model, build
 * the workload (tools/bench/serve/dataset.c), the request bodies and the arrival times,
 * stream every request (tools/bench/serve/driver.c), then print and save the report
 * (tools/bench/serve/report.c), with the server's own step counters from its /metrics
 * before and after the timed run when it has them (tools/bench/serve/server_steps.c).
 *
 * Arrivals follow vLLM: with --request-rate R the gaps between sends are gamma draws of
 * shape --burstiness (1: a Poisson process) and mean 1/R, their sum rescaled so that the
 * last request is sent at num_prompts / R; --request-rate inf sends them all at once.
 * --max-concurrency holds a request that has arrived until fewer are in flight. */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_draw.h"
#include "tools/bench/serve/conn.h"
#include "tools/bench/serve/dataset.h"
#include "tools/bench/serve/driver.h"
#include "tools/bench/serve/report.h"
#include "tools/bench/serve/server_steps.h"
#include "tools/bench/serve/structured.h"
#include "runtime/base/clock.h"
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 32

struct serve_opts {
    const char *base_url, *host, *endpoint, *backend, *model, *served_name, *api_key, *label;
    int port;
    const char *headers[MAX_HEADERS];
    int n_headers;
    const char *metadata[MAX_HEADERS];
    int n_metadata;
    struct bs_dataset_params data;
    const char *dataset_name;
    double request_rate, burstiness;
    int max_concurrency, ready_timeout_s;
    bool ignore_eos, ignore_eos_set, save_result, save_detailed, append_result, quiet;
    double temperature, top_p;
    int top_k;
    json_t *extra_body;             /* --extra-body, an object (owned) */
    int num_warmups;
    const char *result_dir, *result_filename;
    struct bs_report_in rep;        /* goodput, percentiles, metrics */
    double so_ratio;                /* --structured-output-ratio: the constrained share */
    const char *so_regex;           /* their regex */
    bool so_baseline;               /* run the workload unconstrained first, for the ratio */
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: pagoda bench serve [options]   (vLLM's `vllm bench serve` flags)\n\n"
        "server:\n"
        "  --base-url URL             the server (default http://HOST:PORT)\n"
        "  --host H, --port P         default 127.0.0.1, 8000\n"
        "  --backend openai|openai-chat   completions (default) or chat (vllm = openai)\n"
        "  --endpoint PATH            default /v1/completions (/v1/chat/completions for chat)\n"
        "  --model NAME               the model to ask for (default: the server's first in\n"
        "                             /v1/models); --served-model-name NAME overrides it\n"
        "  --api-key K                bearer key (default $OPENAI_API_KEY)\n"
        "  --header 'Name: value'     an extra header (repeatable; vLLM's KEY=VALUE too)\n"
        "  --ready-check-timeout-sec S   wait this long for /v1/models to answer (600)\n"
        "workload:\n"
        "  --dataset-name random|sharegpt   (default random)\n"
        "  --dataset-path FILE        sharegpt: a ShareGPT JSON file; without it, lengths\n"
        "                             are drawn as `pagoda bench throughput --dataset sharegpt`\n"
        "  --num-prompts N            requests (default 1000)\n"
        "  --random-input-len N, --random-output-len N   (default 1024, 128)\n"
        "  --random-range-ratio X     lengths uniform in [L(1-X), L(1+X)] (default 0)\n"
        "  --random-prefix-len N      a prefix shared by every prompt (default 0)\n"
        "  --sharegpt-output-len N    fix the output length of ShareGPT-file requests\n"
        "  --mean-input X, --mean-output X, --max-input N, --max-total N\n"
        "                             synthetic ShareGPT shape (200, 180, 1024, 2048)\n"
        "  --seed S                   (default 0)\n"
        "traffic:\n"
        "  --request-rate R|inf       requests/s, Poisson arrivals (default inf)\n"
        "  --burstiness B             gamma shape of the gaps (1 = Poisson; default 1)\n"
        "  --max-concurrency N        requests in flight at most (default unlimited)\n"
        "sampling:\n"
        "  --ignore-eos               send ignore_eos (on by default for random datasets)\n"
        "  --temperature T (default 0), --top-p P, --top-k K\n"
        "  --extra-body JSON          fields merged into every request\n"
        "  --num-warmups N            untimed runs of the first prompt first (default 0)\n"
        "structured output:\n"
        "  --structured-output-ratio R   the share of requests (0..1, default 0) that carry\n"
        "                             structured_outputs {\"regex\": RE}; the report gives\n"
        "                             the output tok/s of each kind\n"
        "  --structured-output-regex RE  (default \"[ -~]*\": never complete, so every\n"
        "                             request still runs to its length)\n"
        "  --structured-output-baseline  first run the same requests unconstrained, and\n"
        "                             report both runs' output tok/s and their ratio\n"
        "report:\n"
        "  --percentile-metrics LIST  of ttft,tpot,itl,e2el (default all four)\n"
        "  --metric-percentiles LIST  (default 99)\n"
        "  --goodput KEY:MS ...       SLOs: ttft, tpot, e2el in milliseconds\n"
        "  --save-result              write the result JSON (vLLM's keys)\n"
        "  --append-result            append it to the file, a line each\n"
        "  --save-detailed            with per-request lists (ttfts, itls, errors, ...)\n"
        "  --result-dir DIR, --result-filename NAME, --label L, --metadata KEY=VALUE ...\n"
        "  --disable-tqdm             no progress line\n"
        "  (against pagoda the report ends with the server's engine steps, read from its\n"
        "  /metrics before and after the run: decode-only / mixed, wall and device ms)\n");
}

static int parse_num(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || errno) {
        fprintf(stderr, "pagoda bench serve: %s '%s' is not a number\n", flag, s);
        return -1;
    }
    return 0;
}

static int parse_int(const char *flag, const char *s, int min, int *out)
{
    double v;
    if (parse_num(flag, s, &v))
        return -1;
    if (v != floor(v) || v < min || v > 1e9) {
        fprintf(stderr, "pagoda bench serve: %s %s: want a whole number >= %d\n", flag, s, min);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* "ttft:500" into the report's SLOs. */
static int parse_goodput(const char *s, struct bs_report_in *rep)
{
    static const char *const names[] = { "ttft", "tpot", "e2el" };
    const char *colon = strchr(s, ':');
    for (int i = 0; colon && i < 3; i++)
        if ((size_t)(colon - s) == strlen(names[i]) && !strncmp(s, names[i], strlen(names[i]))) {
            double v;
            if (parse_num("--goodput", colon + 1, &v) || v < 0)
                return -1;
            rep->goodput_ms[i] = v;
            rep->goodput = true;
            return 0;
        }
    fprintf(stderr, "pagoda bench serve: --goodput %s: want KEY:MILLISECONDS with KEY one of "
            "ttft, tpot, e2el\n", s);
    return -1;
}

static int parse_metrics(const char *s, unsigned *out)
{
    static const char *const names[] = { "ttft", "tpot", "itl", "e2el" };
    *out = 0;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, ",");
        int i = 0;
        while (i < 4 && !(strlen(names[i]) == n && !strncmp(p, names[i], n)))
            i++;
        if (i == 4) {
            fprintf(stderr, "pagoda bench serve: --percentile-metrics %s: the names are "
                    "ttft, tpot, itl, e2el\n", s);
            return -1;
        }
        *out |= 1u << i;
        p += n + (p[n] == ',');
    }
    return *out ? 0 : -1;
}

static int parse_percentiles(const char *s, struct bs_report_in *rep)
{
    rep->n_percentiles = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double v;
        if (parse_num("--metric-percentiles", t, &v) || v < 0 || v > 100 ||
            rep->n_percentiles == BS_MAX_PERCENTILES)
            return -1;
        rep->percentiles[rep->n_percentiles++] = v;
    }
    return rep->n_percentiles ? 0 : -1;
}

enum {
    O_BASE_URL = 256, O_HOST, O_PORT, O_ENDPOINT, O_BACKEND, O_MODEL, O_SERVED, O_API_KEY,
    O_HEADER, O_READY, O_DATASET, O_PATH, O_NUM, O_RIN, O_ROUT, O_RRATIO, O_RPREFIX,
    O_SGOUT, O_MIN, O_MOUT, O_MAXIN, O_MAXTOT, O_SEED, O_RATE, O_BURST, O_CONC, O_EOS,
    O_TEMP, O_TOPP, O_TOPK, O_EXTRA, O_PMETRICS, O_PCTS, O_GOODPUT, O_SAVE, O_DETAILED,
    O_RDIR, O_RFILE, O_LABEL, O_META, O_TQDM, O_TOKENIZER, O_WARMUPS, O_APPEND, O_TRUST,
    O_SORATIO, O_SOREGEX, O_SOBASE,
};

static const struct option long_opts[] = {
    { "base-url", 1, 0, O_BASE_URL }, { "host", 1, 0, O_HOST }, { "port", 1, 0, O_PORT },
    { "endpoint", 1, 0, O_ENDPOINT }, { "backend", 1, 0, O_BACKEND }, { "model", 1, 0, O_MODEL },
    { "served-model-name", 1, 0, O_SERVED }, { "api-key", 1, 0, O_API_KEY },
    { "header", 1, 0, O_HEADER }, { "ready-check-timeout-sec", 1, 0, O_READY },
    { "dataset-name", 1, 0, O_DATASET }, { "dataset", 1, 0, O_DATASET },
    { "dataset-path", 1, 0, O_PATH }, { "num-prompts", 1, 0, O_NUM },
    { "random-input-len", 1, 0, O_RIN }, { "random-output-len", 1, 0, O_ROUT },
    { "random-range-ratio", 1, 0, O_RRATIO }, { "random-prefix-len", 1, 0, O_RPREFIX },
    { "sharegpt-output-len", 1, 0, O_SGOUT }, { "mean-input", 1, 0, O_MIN },
    { "mean-output", 1, 0, O_MOUT }, { "max-input", 1, 0, O_MAXIN },
    { "max-total", 1, 0, O_MAXTOT }, { "seed", 1, 0, O_SEED }, { "request-rate", 1, 0, O_RATE },
    { "burstiness", 1, 0, O_BURST }, { "max-concurrency", 1, 0, O_CONC },
    { "ignore-eos", 0, 0, O_EOS }, { "temperature", 1, 0, O_TEMP }, { "top-p", 1, 0, O_TOPP },
    { "top-k", 1, 0, O_TOPK }, { "extra-body", 1, 0, O_EXTRA },
    { "percentile-metrics", 1, 0, O_PMETRICS }, { "metric-percentiles", 1, 0, O_PCTS },
    { "goodput", 1, 0, O_GOODPUT }, { "save-result", 0, 0, O_SAVE },
    { "save-detailed", 0, 0, O_DETAILED }, { "result-dir", 1, 0, O_RDIR },
    { "result-filename", 1, 0, O_RFILE }, { "label", 1, 0, O_LABEL },
    { "metadata", 1, 0, O_META }, { "disable-tqdm", 0, 0, O_TQDM },
    { "tokenizer", 1, 0, O_TOKENIZER }, { "num-warmups", 1, 0, O_WARMUPS },
    { "append-result", 0, 0, O_APPEND }, { "trust-remote-code", 0, 0, O_TRUST },
    { "structured-output-ratio", 1, 0, O_SORATIO },
    { "structured-output-regex", 1, 0, O_SOREGEX },
    { "structured-output-baseline", 0, 0, O_SOBASE },
    { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
};

/* vLLM's --header KEY=VALUE, or a curl-style "Name: value". */
static const char *header_line(const char *s)
{
    static char lines[MAX_HEADERS][1024];
    static int n;
    const char *eq = strchr(s, '='), *colon = strchr(s, ':');
    if (!eq || (colon && colon < eq) || n == MAX_HEADERS)
        return s;
    snprintf(lines[n], sizeof lines[n], "%.*s: %s", (int)(eq - s), s, eq + 1);
    return lines[n++];
}

/* One option; the arguments of nargs-style flags (--goodput, --metadata) that follow it
 * are taken from argv too. 0 ok, 1 help, -1 refused. */
static int take_option(struct serve_opts *o, int c, int argc, char **argv)
{
    double v;
    const char *a = optarg;
    switch (c) {
    case O_BASE_URL: o->base_url = a; return 0;
    case O_HOST: o->host = a; return 0;
    case O_PORT: return parse_int("--port", a, 1, &o->port);
    case O_ENDPOINT: o->endpoint = a; return 0;
    case O_BACKEND: o->backend = a; return 0;
    case O_MODEL: o->model = a; return 0;
    case O_SERVED: o->served_name = a; return 0;
    case O_API_KEY: o->api_key = a; return 0;
    case O_HEADER:
        for (;;) {
            if (o->n_headers == MAX_HEADERS)
                return -1;
            o->headers[o->n_headers++] = header_line(a);
            if (optind >= argc || argv[optind][0] == '-')
                return 0;
            a = argv[optind++];
        }
    case O_READY: return parse_int("--ready-check-timeout-sec", a, 0, &o->ready_timeout_s);
    case O_DATASET: o->dataset_name = a; return 0;
    case O_PATH: o->data.path = a; return 0;
    case O_NUM: return parse_int("--num-prompts", a, 1, &o->data.num_prompts);
    case O_RIN: return parse_int("--random-input-len", a, 1, &o->data.input_len);
    case O_ROUT: return parse_int("--random-output-len", a, 1, &o->data.output_len);
    case O_RRATIO: return parse_num("--random-range-ratio", a, &o->data.range_ratio);
    case O_RPREFIX: return parse_int("--random-prefix-len", a, 0, &o->data.prefix_len);
    case O_SGOUT: return parse_int("--sharegpt-output-len", a, 1, &o->data.sharegpt_output_len);
    case O_MIN: return parse_num("--mean-input", a, &o->data.shape.mean_input);
    case O_MOUT: return parse_num("--mean-output", a, &o->data.shape.mean_output);
    case O_MAXIN: return parse_int("--max-input", a, 4, &o->data.shape.max_input);
    case O_MAXTOT: return parse_int("--max-total", a, 8, &o->data.shape.max_total);
    case O_SEED:
        if (parse_num("--seed", a, &v) || v < 0)
            return -1;
        o->data.seed = (uint64_t)v;
        return 0;
    case O_RATE:
        if (!strcmp(a, "inf")) {
            o->request_rate = INFINITY;
            return 0;
        }
        return parse_num("--request-rate", a, &o->request_rate) || !(o->request_rate > 0) ? -1 : 0;
    case O_BURST:
        return parse_num("--burstiness", a, &o->burstiness) || !(o->burstiness > 0) ? -1 : 0;
    case O_CONC: return parse_int("--max-concurrency", a, 1, &o->max_concurrency);
    case O_EOS: o->ignore_eos = o->ignore_eos_set = true; return 0;
    case O_TEMP: return parse_num("--temperature", a, &o->temperature);
    case O_TOPP: return parse_num("--top-p", a, &o->top_p);
    case O_TOPK: return parse_int("--top-k", a, -1, &o->top_k);
    case O_EXTRA: {
        json_error_t je;
        json_decref(o->extra_body);
        o->extra_body = json_loads(a, 0, &je);   /* json_is_object evaluates twice */
        if (!json_is_object(o->extra_body)) {
            fprintf(stderr, "pagoda bench serve: --extra-body: not a JSON object%s%s\n",
                    o->extra_body ? "" : ": ", o->extra_body ? "" : je.text);
            return -1;
        }
        return 0;
    }
    case O_WARMUPS: return parse_int("--num-warmups", a, 0, &o->num_warmups);
    case O_SORATIO:
        if (parse_num("--structured-output-ratio", a, &o->so_ratio) ||
            !(o->so_ratio >= 0 && o->so_ratio <= 1)) {
            fprintf(stderr, "pagoda bench serve: --structured-output-ratio %s: want a share "
                    "in [0, 1]\n", a);
            return -1;
        }
        return 0;
    case O_SOREGEX: o->so_regex = a; return 0;
    case O_SOBASE: o->so_baseline = true; return 0;
    case O_PMETRICS: return parse_metrics(a, &o->rep.metrics);
    case O_PCTS: return parse_percentiles(a, &o->rep);
    case O_GOODPUT:
        for (;;) {
            if (parse_goodput(a, &o->rep))
                return -1;
            if (optind >= argc || argv[optind][0] == '-')
                return 0;
            a = argv[optind++];
        }
    case O_SAVE: o->save_result = true; return 0;
    case O_APPEND: o->append_result = true; return 0;
    case O_DETAILED: o->save_detailed = true; return 0;
    case O_RDIR: o->result_dir = a; return 0;
    case O_RFILE: o->result_filename = a; return 0;
    case O_LABEL: o->label = a; return 0;
    case O_META:
        for (;;) {
            if (!strchr(a, '=') || o->n_metadata == MAX_HEADERS) {
                fprintf(stderr, "pagoda bench serve: --metadata %s: want KEY=VALUE\n", a);
                return -1;
            }
            o->metadata[o->n_metadata++] = a;
            if (optind >= argc || argv[optind][0] == '-')
                return 0;
            a = argv[optind++];
        }
    case O_TQDM: o->quiet = true; return 0;
    case O_TOKENIZER:
    case O_TRUST:
        fprintf(stderr, "pagoda bench serve: --%s ignored: no tokenizer runs in the client; "
                "token counts come from the server (token-id prompts, its /tokenize, its "
                "usage)\n", c == O_TRUST ? "trust-remote-code" : "tokenizer");
        return 0;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return -1;
    }
}

/* GET path once: 1 when it answers 200 (the body in *ans, may be NULL), 0 when the server
 * is not up or not ready yet (no answer, 503), -1 for any other status (message in err). */
static int probe(const struct bs_conn *c, const char *path, json_t **ans, char *err,
                 size_t errlen)
{
    long status = 0;
    if (bs_conn_json(c, path, NULL, 30, &status, ans, err, errlen) || status == 503)
        return 0;
    if (status == 200)
        return 1;
    const char *m = bs_error_message(*ans);
    snprintf(err, errlen, "%s%s: HTTP %ld%s%s", c->base_url, path, status, m ? ": " : "",
             m ? m : "");
    json_decref(*ans);
    *ans = NULL;
    return -1;
}

/* Waits (at most timeout_s; one try when 0) until the server is ready: /health answers 200
 * where the server has one (pagoda's answers 503 until its warm-up is done; one that has
 * none answers 404) and /v1/models answers 200. *first_model: the first model's id when
 * the server names one (strdup'ed; NULL otherwise). */
static int wait_for_server(const struct bs_conn *c, int timeout_s, char **first_model)
{
    double end = pgd__now_s() + timeout_s;
    char err[4096] = "the server answers 503";
    *first_model = NULL;
    for (;;) {
        json_t *ans = NULL;
        int h = probe(c, "/health", &ans, err, sizeof err);
        json_decref(ans);
        ans = NULL;
        if (h < 0 && !strstr(err, "HTTP 404") && !strstr(err, "HTTP 405"))
            break;
        int r = h != 0 ? probe(c, "/v1/models", &ans, err, sizeof err) : 0;
        if (r > 0) {
            const json_t *id = json_object_get(json_array_get(json_object_get(ans, "data"), 0),
                                               "id");
            if (json_is_string(id))
                *first_model = strdup(json_string_value(id));
            json_decref(ans);
            return 0;
        }
        if (r < 0 || pgd__now_s() >= end)
            break;
        usleep(200 * 1000);
    }
    fprintf(stderr, "pagoda bench serve: the server is not ready: %s\n", err);
    return -1;
}

/* The request body of one prompt (owned JSON text), NULL when out of memory; constrained:
 * with the structured-output regex. */
static char *request_body(const struct serve_opts *o, bool chat, const char *model,
                          const struct bs_prompt *p, const json_t *extra, bool constrained)
{
    json_t *b = json_pack("{s:s, s:b, s:{s:b}, s:f}", "model", model, "stream", 1,
                          "stream_options", "include_usage", 1, "temperature", o->temperature);
    if (!b)
        return NULL;
    if (chat)
        json_object_set_new(b, "messages", json_pack("[{s:s, s:O}]", "role", "user", "content",
                                                     p->prompt));
    else
        json_object_set(b, "prompt", p->prompt);
    json_object_set_new(b, chat ? "max_completion_tokens" : "max_tokens",
                        json_integer(p->output_len));
    if (o->ignore_eos)
        json_object_set_new(b, "ignore_eos", json_true());
    if (o->top_p > 0)
        json_object_set_new(b, "top_p", json_real(o->top_p));
    if (o->top_k)
        json_object_set_new(b, "top_k", json_integer(o->top_k));
    if (extra)
        json_object_update(b, (json_t *)extra);
    if (constrained && !bs_structured_add(b, o->so_regex)) {
        json_decref(b);
        return NULL;
    }
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

/* Send times (see the top of the file); NULL for --request-rate inf. */
static double *arrivals(const struct serve_opts *o)
{
    int n = o->data.num_prompts;
    if (!isfinite(o->request_rate))
        return NULL;
    double *t = malloc((size_t)n * sizeof *t);
    if (t)
        pgd_tool_arrivals(n, o->request_rate, o->burstiness, o->data.seed, t);
    return t;
}

/* Python's str() of a float, as vLLM's file names and "request_rate" show it. */
static void py_float(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.1f", v);
    else
        snprintf(buf, n, "%.15g", v);
}

/* The setup keys vLLM writes before the benchmark's own. */
static json_t *setup_keys(const struct serve_opts *o, const char *backend, const char *model,
                          const char *date)
{
    json_t *r = json_object();
    json_object_set_new(r, "date", json_string(date));
    json_object_set_new(r, "endpoint_type", json_string(backend));
    json_object_set_new(r, "backend", json_string(backend));
    json_object_set_new(r, "label", o->label ? json_string(o->label) : json_null());
    json_object_set_new(r, "model_id", json_string(model));
    json_object_set_new(r, "tokenizer_id", json_string(model));
    json_object_set_new(r, "num_prompts", json_integer(o->data.num_prompts));
    for (int i = 0; i < o->n_metadata; i++) {
        const char *eq = strchr(o->metadata[i], '=');
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - o->metadata[i]), o->metadata[i]);
        json_object_set_new(r, key, json_string(eq + 1));
    }
    json_object_set_new(r, "request_rate", isfinite(o->request_rate) ?
                        json_real(o->request_rate) : json_string("inf"));
    json_object_set_new(r, "burstiness", isfinite(o->burstiness) ? json_real(o->burstiness)
                                                                  : json_string("inf"));
    json_object_set_new(r, "max_concurrency", o->max_concurrency ?
                        json_integer(o->max_concurrency) : json_null());
    return r;
}

static int save_result(const struct serve_opts *o, json_t *r, const char *backend,
                       const char *model, const char *date)
{
    char name[2048], path[4096], rate[64];
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    char conc[64] = "";
    if (o->max_concurrency)
        snprintf(conc, sizeof conc, "-concurrency%d", o->max_concurrency);
    py_float(rate, sizeof rate, o->request_rate);
    snprintf(name, sizeof name, "%s-%sqps%s-%s-%s.json", o->label ? o->label : backend, rate,
             conc, base, date);
    if (o->result_filename)
        snprintf(name, sizeof name, "%s", o->result_filename);
    if (o->result_dir) {
        if (mkdir(o->result_dir, 0777) && errno != EEXIST) {
            fprintf(stderr, "pagoda bench serve: --result-dir %s: %s\n", o->result_dir,
                    strerror(errno));
            return -1;
        }
        snprintf(path, sizeof path, "%s/%s", o->result_dir, name);
    } else {
        snprintf(path, sizeof path, "%s", name);
    }
    /* --append-result: one JSON document a line, as vLLM appends them. */
    FILE *f = fopen(path, o->append_result ? "a" : "w");
    bool bad = !f;
    if (f) {
        if (o->append_result && !fseek(f, 0, SEEK_END) && ftell(f) > 0)
            bad |= fputc('\n', f) == EOF;
        bad |= json_dumpf(r, f, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0;
        bad |= fclose(f) != 0;
    }
    if (bad) {
        fprintf(stderr, "pagoda bench serve: cannot write %s\n", path);
        return -1;
    }
    printf("Saved the result to %s\n", path);
    return 0;
}

/* The distinct errors of the failed requests with their counts (the first 5 kinds). */
static void print_failures(const struct bs_result *res, int n)
{
    int shown = 0;
    for (int i = 0; i < n && shown < 5; i++) {
        if (res[i].success)
            continue;
        bool seen = false;
        for (int k = 0; k < i && !seen; k++)
            seen = !res[k].success && !strcmp(res[k].error, res[i].error);
        if (seen)
            continue;
        int count = 0;
        for (int k = i; k < n; k++)
            count += !res[k].success && !strcmp(res[k].error, res[i].error);
        fprintf(stderr, "pagoda bench serve: %d request%s failed: %s\n", count,
                count == 1 ? "" : "s", res[i].error);
        shown++;
    }
}

/* An untimed run before the timed one (`what` names it in messages: "warm-up", "baseline
 * run"): the requests of p (its bodies borrowed); 0 when every one succeeded, else -1 after
 * saying why. *tps, when tps is not NULL, gets the run's output tok/s. */
static int run_bodies(const struct bs_run_params *p, const char *what, double *tps)
{
    int n = p->n, rc = -1;
    struct bs_result *res = calloc((size_t)n, sizeof *res);
    char err[512];
    double duration = 0;
    if (!res) {
        fprintf(stderr, "pagoda bench serve: out of memory\n");
        return -1;
    }
    if (bs_run(p, res, &duration, err, sizeof err)) {
        fprintf(stderr, "pagoda bench serve: %s\n", err);
        goto out;
    }
    rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (!res[i].success) {
            fprintf(stderr, "pagoda bench serve: the %s failed: %s\n", what, res[i].error);
            rc = -1;
        }
    if (tps)
        *tps = bs_output_tps(res, n, duration);
out:
    for (int i = 0; i < n; i++)
        bs_result_fini(&res[i]);
    free(res);
    return rc;
}

/* --num-warmups: the first prompt n times, untimed, under the same concurrency limit (as
 * vLLM does); a failed warm-up stops the benchmark. */
static int warm_up(const struct bs_run_params *timed, int n)
{
    struct bs_run_params p = *timed;
    char **bodies = malloc((size_t)n * sizeof *bodies);
    if (!bodies) {
        fprintf(stderr, "pagoda bench serve: out of memory\n");
        return -1;
    }
    for (int i = 0; i < n; i++)
        bodies[i] = timed->bodies[0];
    p.bodies = bodies;
    p.n = n;
    p.arrival_s = NULL;
    p.progress = false;
    printf("Warming up with %d requests...\n", n);
    fflush(stdout);
    int rc = run_bodies(&p, "warm-up", NULL);
    if (!rc)
        printf("Warmup run completed.\n");
    free(bodies);
    return rc;
}

static int count_constrained(double ratio, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += bs_structured_pick(ratio, i);
    return k;
}

/* --structured-output-baseline: the timed run's requests without any constraint, first;
 * *tps gets its output tok/s. A request that fails there stops the benchmark (the ratio
 * would mean nothing). */
static int baseline_run(const struct serve_opts *o, const struct bs_run_params *timed,
                        bool chat, const char *model, const struct bs_prompt *prompts,
                        double *tps)
{
    int n = timed->n, rc = -1;
    struct bs_run_params p = *timed;
    char **bodies = calloc((size_t)n, sizeof *bodies);
    bool oom = !bodies;
    for (int i = 0; !oom && i < n; i++)
        oom = !(bodies[i] = request_body(o, chat, model, &prompts[i], o->extra_body, false));
    if (oom) {
        fprintf(stderr, "pagoda bench serve: out of memory\n");
    } else {
        p.bodies = bodies;
        p.keep_text = false;
        printf("Baseline: the same %d requests without constraints...\n", n);
        fflush(stdout);
        if (!(rc = run_bodies(&p, "baseline run", tps)))
            printf("Baseline output token throughput (tok/s): %.2f\n", *tps);
    }
    for (int i = 0; bodies && i < n; i++)
        free(bodies[i]);
    free(bodies);
    return rc;
}

/* The server's step counters (pagoda's /metrics, see server_steps.h) into *out; false,
 * with the reason in why, when the scrape failed or the server has none (vLLM). */
static bool scrape_steps(const struct bs_conn *conn, struct bs_steps *out, char *why,
                         size_t whylen)
{
    char *body = NULL, err[512];
    size_t len;
    long status;
    bool ok = false;
    if (bs_conn_get(conn, "/metrics", 10, &status, &body, &len, err, sizeof err))
        snprintf(why, whylen, "%s", err);
    else if (status != 200)
        snprintf(why, whylen, "GET /metrics: HTTP %ld", status);
    else if (!(ok = bs_steps_parse(body, len, out)))
        snprintf(why, whylen, "no pagoda:engine_step counters in /metrics");
    free(body);
    return ok;
}

/* The "Server steps" section after the report, and its "server_steps" key in r: how much
 * the server's step counters grew over the timed run (before: the scrape before it, NULL
 * when that one failed, why saying how). A server without them costs one line, never the
 * benchmark; false only when out of memory. The last step's times are added just after
 * its outputs went out, so the second scrape may miss a step or so. */
static bool server_steps(const struct bs_conn *conn, const struct bs_steps *before,
                         const char *why, double duration_s, json_t *r)
{
    struct bs_steps after, d;
    char why_after[600];
    if (!before) {
        printf("Server steps: not reported (%s)\n", why);
        return true;
    }
    if (!scrape_steps(conn, &after, why_after, sizeof why_after)) {
        printf("Server steps: not reported (after the run: %s)\n", why_after);
        return true;
    }
    if (!bs_steps_diff(before, &after, &d)) {
        printf("Server steps: not reported (the counters went down: did the server "
               "restart?)\n");
        return true;
    }
    json_t *o = bs_steps_report(&d, duration_s, stdout);
    return o && !json_object_set_new(r, "server_steps", o);
}

/* Everything after the command line; returns the exit status. */
static int run_bench(struct serve_opts *o, const struct bs_conn *conn, bool chat,
                     const char *backend)
{
    char err[1024] = "", *first_model = NULL, **bodies = NULL, date[32];
    struct bs_prompt *prompts = NULL;
    struct bs_result *res = NULL;
    double *arrive = NULL;
    int *plen = NULL, n = o->data.num_prompts, rc = 1;
    json_t *result = NULL, *bench = NULL;
    if (wait_for_server(conn, o->ready_timeout_s, &first_model))
        goto out;
    const char *model = o->model ? o->model : first_model;
    if (!model) {
        fprintf(stderr, "pagoda bench serve: the server lists no model: give --model\n");
        goto out;
    }
    const char *api_model = o->served_name ? o->served_name : model;
    const char *counted;
    o->data.conn = conn;
    o->data.text = chat;
    if (bs_dataset_build(&o->data, &prompts, &counted, err, sizeof err)) {
        fprintf(stderr, "pagoda bench serve: %s\n", err);
        goto out;
    }
    bodies = calloc((size_t)n, sizeof *bodies);
    res = calloc((size_t)n, sizeof *res);
    plen = calloc((size_t)n, sizeof *plen);
    arrive = arrivals(o);
    if (!bodies || !res || !plen || (isfinite(o->request_rate) && !arrive))
        goto oom;
    long sum_in = 0, sum_out = 0;
    for (int i = 0; i < n; i++) {
        if (!(bodies[i] = request_body(o, chat, api_model, &prompts[i], o->extra_body,
                                       bs_structured_pick(o->so_ratio, i))))
            goto oom;
        plen[i] = prompts[i].prompt_len;
        sum_in += plen[i];
        sum_out += prompts[i].output_len;
    }
    printf("%s %s%s: model %s, %d requests, %.1f input tokens on average (%s), %.1f output "
           "tokens asked%s\n", backend, conn->base_url, o->endpoint, api_model, n,
           (double)sum_in / n, counted, (double)sum_out / n, o->ignore_eos ? " (ignore_eos)" : "");
    char rate[64];
    py_float(rate, sizeof rate, o->request_rate);
    printf("Traffic request rate: %s\n", rate);
    char burst[64];
    py_float(burst, sizeof burst, o->burstiness);
    printf("Burstiness factor: %s (%s)\n", burst,
           o->burstiness == 1.0 ? "Poisson process" : "Gamma distribution");
    if (o->max_concurrency)
        printf("Maximum request concurrency: %d\n", o->max_concurrency);
    else
        printf("Maximum request concurrency: None\n");
    fflush(stdout);

    struct bs_run_params rp = { .conn = conn, .path = o->endpoint, .chat = chat,
                                .bodies = bodies, .n = n, .arrival_s = arrive,
                                .max_concurrency = o->max_concurrency,
                                .keep_text = o->save_detailed,
                                .progress = !o->quiet && isatty(STDERR_FILENO) };
    double duration = 0, baseline_tps = -1;
    if (o->so_ratio > 0)
        printf("Structured output: %d of %d requests carry structured_outputs {\"regex\": "
               "\"%s\"}\n", count_constrained(o->so_ratio, n), n, o->so_regex);
    if (o->num_warmups && warm_up(&rp, o->num_warmups))
        goto out;
    if (o->so_baseline && o->so_ratio > 0 &&
        baseline_run(o, &rp, chat, api_model, prompts, &baseline_tps))
        goto out;
    /* The server's step counters just before the timed run (after the untimed ones). */
    struct bs_steps steps0;
    char steps_why[600] = "";
    bool have_steps0 = scrape_steps(conn, &steps0, steps_why, sizeof steps_why);
    if (bs_run(&rp, res, &duration, err, sizeof err)) {
        fprintf(stderr, "pagoda bench serve: %s\n", err);
        goto out;
    }
    print_failures(res, n);
    o->rep.res = res;
    o->rep.prompt_len = plen;
    o->rep.n = n;
    o->rep.duration_s = duration;
    o->rep.max_concurrency = o->max_concurrency;
    o->rep.request_rate = o->request_rate;
    if (!(bench = bs_report(&o->rep, stdout)))
        goto oom;
    if (o->so_ratio > 0) {
        struct bs_structured_in si = { .ratio = o->so_ratio, .regex = o->so_regex, .res = res,
                                       .n = n, .duration_s = duration,
                                       .baseline_tps = baseline_tps };
        if (!bs_structured_report(&si, bench, stdout))
            goto oom;
    }
    if (!server_steps(conn, have_steps0 ? &steps0 : NULL, steps_why, duration, bench))
        goto oom;
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", localtime(&now));
    if (!(result = setup_keys(o, backend, model, date)) || json_object_update(result, bench))
        goto oom;
    if (!o->save_detailed) {
        static const char *const per_request[] = { "input_lens", "output_lens", "ttfts",
                                                   "itls", "generated_texts", "errors" };
        for (size_t i = 0; i < sizeof per_request / sizeof per_request[0]; i++)
            json_object_del(result, per_request[i]);
    }
    if ((o->save_result || o->append_result) && save_result(o, result, backend, model, date))
        goto out;
    /* Failed requests are part of the result; a run where none completed is a failure. */
    rc = json_integer_value(json_object_get(result, "completed")) > 0 ? 0 : 1;
    goto out;
oom:
    fprintf(stderr, "pagoda bench serve: out of memory\n");
out:
    for (int i = 0; bodies && i < n; i++)
        free(bodies[i]);
    for (int i = 0; res && i < n; i++)
        bs_result_fini(&res[i]);
    free(bodies);
    free(res);
    free(plen);
    free(arrive);
    free(first_model);
    bs_dataset_free(prompts, n);
    json_decref(bench);
    json_decref(result);
    return rc;
}

/* Every stream holds a socket: lift the soft limit on open files to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The command line into *o, then the run; returns the exit status. */
static int bench_serve(struct serve_opts *o, int argc, char **argv)
{
    int c;
    optind = 1;
    /* '+': stop at the first non-option, so that the values after --goodput/--metadata/
     * --header are read in order by take_option. */
    while ((c = getopt_long(argc, argv, "+h", long_opts, NULL)) != -1) {
        int r = take_option(o, c, argc, argv);
        if (r)
            return r > 0 ? 0 : 2;
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda bench serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    bool chat;
    if (!strcmp(o->backend, "openai-chat"))
        chat = true;
    else if (!strcmp(o->backend, "openai") || !strcmp(o->backend, "vllm"))
        chat = o->endpoint && strstr(o->endpoint, "chat/completions");
    else {
        fprintf(stderr, "pagoda bench serve: --backend %s: openai, openai-chat or vllm\n",
                o->backend);
        return 2;
    }
    if (!o->endpoint)
        o->endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
    if (o->so_baseline && !(o->so_ratio > 0)) {
        fprintf(stderr, "pagoda bench serve: --structured-output-baseline needs "
                "--structured-output-ratio above 0\n");
        return 2;
    }
    if (!strcmp(o->dataset_name, "random"))
        o->data.kind = BS_DATA_RANDOM;
    else if (!strcmp(o->dataset_name, "sharegpt"))
        o->data.kind = BS_DATA_SHAREGPT;
    else {
        fprintf(stderr, "pagoda bench serve: --dataset-name %s: random or sharegpt\n",
                o->dataset_name);
        return 2;
    }
    const struct pgd_tool_sharegpt_shape *sh = &o->data.shape;
    if (!(o->data.range_ratio >= 0 && o->data.range_ratio < 1) || sh->mean_input <= 0 ||
        sh->mean_output <= 0 || sh->max_total < sh->max_input + 4) {
        fprintf(stderr, "pagoda bench serve: --random-range-ratio must be in [0, 1), the "
                "sharegpt means positive and --max-total at least --max-input + 4\n");
        return 2;
    }
    /* vLLM sends ignore_eos for its random datasets, so outputs run to their length. */
    if (!o->data.path && !o->ignore_eos_set)
        o->ignore_eos = true;
    const char *key = o->api_key ? o->api_key : getenv("OPENAI_API_KEY");
    char base[2048];
    if (o->base_url)
        snprintf(base, sizeof base, "%s", o->base_url);
    else
        snprintf(base, sizeof base, strchr(o->host, ':') ? "http://[%s]:%d" : "http://%s:%d",
                 o->host, o->port);
    raise_fd_limit();
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "pagoda bench serve: curl_global_init failed\n");
        return 1;
    }
    struct bs_conn conn;
    char err[512];
    int rc = 1;
    if (bs_conn_init(&conn, base, key, o->headers, o->n_headers, err, sizeof err))
        fprintf(stderr, "pagoda bench serve: %s\n", err);
    else
        rc = run_bench(o, &conn, chat, chat ? "openai-chat" : o->backend);
    bs_conn_fini(&conn);
    curl_global_cleanup();
    return rc;
}

int pgd_cmd_bench_serve(int argc, char **argv)
{
    struct serve_opts o = {
        .host = "127.0.0.1", .port = 8000, .backend = "openai", .request_rate = INFINITY,
        .burstiness = 1.0, .ready_timeout_s = 600, .dataset_name = "random",
        .data = { .num_prompts = 1000, .input_len = 1024, .output_len = 128,
                  .shape = PGD_TOOL_SHAREGPT_SHAPE_DEFAULT },
        .rep = { .goodput_ms = { -1, -1, -1 }, .percentiles = { 99 }, .n_percentiles = 1,
                 .metrics = BS_M_TTFT | BS_M_TPOT | BS_M_ITL | BS_M_E2EL },
        .so_regex = BS_STRUCTURED_REGEX_DEFAULT,
    };
    int rc = bench_serve(&o, argc, argv);
    json_decref(o.extra_body);
    return rc;
}
