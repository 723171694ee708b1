/* pagoda bench latency in vLLM's form (`vllm bench latency`): one batch of --batch-size
 * requests, each --input-len prompt tokens (random ids, the same every iteration, as vLLM's
 * dummy prompts) generating --output-len tokens (ignore_eos; --n parallel samples;
 * temperature 1, top_p 1, as vLLM samples there), all submitted at once through the engine;
 * --num-iters-warmup untimed batches, then --num-iters timed ones. It prints the mean and the
 * percentiles (10, 25, 50, 75, 90, 99, linear between ranks as numpy's) of the batches'
 * end-to-end seconds as vLLM prints them, and --output-json writes vLLM's keys (avg_latency,
 * latencies, percentiles). The engine's flags as `pagoda bench throughput` takes them
 * (bench_engine_flags.h); the step-level `pagoda bench latency` (decode ms per step beside
 * its bound) is cmd_bench.c's, chosen when none of this form's own flags is given. */
#include "tools/commands.h"
#include "tools/tool_model.h"
#include "tools/bench/bench_draw.h"
#include "tools/bench/bench_engine_flags.h"
#include "tools/bench/serve/report.h"
#include "runtime/config/batch_defaults.h"
#include "runtime/base/clock.h"
#include "runtime/runner/runner.h"
#include "runtime/engine/engine_backend.h"
#include <pagoda/engine.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct e2e_opts {
    struct pgd_tool_model m;
    int input_len, output_len, batch_size, n, warmup, iters;
    uint64_t seed;                  /* the prompts' ids and the engine's seed */
    const char *json;               /* --output-json */
    bool no_detokenize;             /* --disable-detokenize */
    struct pgd__settings eng;       /* the engine's flags (bench_engine_flags.h) */
};

/* This form's own options (vLLM's names and defaults). */
static const struct option E2E_OPTS[] = {
    PGD_TOOL_MODEL_OPTIONS, PGD_TOOL_RANDOM_WEIGHTS_OPTION,
    { "input-len", required_argument, 0, 'i' }, { "output-len", required_argument, 0, 'o' },
    { "batch-size", required_argument, 0, 'b' }, { "n", required_argument, 0, 'n' },
    { "num-iters-warmup", required_argument, 0, 'w' },
    { "num-iters", required_argument, 0, 'I' }, { "output-json", required_argument, 0, 'J' },
    { "seed", required_argument, 0, 'S' }, { "disable-detokenize", no_argument, 0, 'D' },
    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
};

/* The flags that select this form (the step-level bench has none of them). */
bool pgd_bench_latency_is_e2e(int argc, char **argv)
{
    static const char *const OWN[] = { "--input-len", "--output-len", "--batch-size", "--n",
                                       "--num-iters-warmup", "--num-iters", "--output-json" };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        for (size_t k = 0; k < sizeof OWN / sizeof OWN[0]; k++) {
            size_t len = strlen(OWN[k]);
            if (!strncmp(argv[i], OWN[k], len) && (argv[i][len] == 0 || argv[i][len] == '='))
                return true;
        }
    }
    return false;
}

static void e2e_usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda bench latency (--model DIR | --random-weights CONFIG) --input-len N\n"
            "                            --output-len N --batch-size N [options]\n"
            "vLLM's `bench latency`: the seconds one batch of requests takes end to end.\n"
            "  --input-len N            prompt tokens a request (32)\n"
            "  --output-len N           tokens each generates, past any EOS (128)\n"
            "  --batch-size N           requests a batch, submitted at once (8)\n"
            "  --n N                    parallel samples a request (1)\n"
            "  --num-iters-warmup N     untimed batches first (10)\n"
            "  --num-iters N            timed batches (30)\n"
            "  --output-json FILE       avg_latency, latencies and percentiles, as vLLM's\n"
            "  --seed S                 the prompts' ids and the engine's seed (0)\n"
            "  --disable-detokenize     token ids only\n"
            "  --device, --dtype, --quantization, --kv-cache-dtype, --plugin-dir, and any\n"
            "  engine flag of `pagoda serve` (--max-num-seqs, --enforce-eager, ...)\n"
            "Without --input-len, --output-len, --batch-size, --n, --num-iters(-warmup) or\n"
            "--output-json, `pagoda bench latency` times decode steps (see its --help).\n");
}

/* The command line into *o: -1 to run, else the exit status. */
static int parse_args(struct e2e_opts *o, int argc, char **argv)
{
    argc = pgd_tool_engine_flags_take(&o->eng, E2E_OPTS, argc, argv, "pagoda bench latency");
    if (argc < 0)
        return 2;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", E2E_OPTS, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'i': o->input_len = (int)strtol(optarg, &end, 10); break;
        case 'o': o->output_len = (int)strtol(optarg, &end, 10); break;
        case 'b': o->batch_size = (int)strtol(optarg, &end, 10); break;
        case 'n': o->n = (int)strtol(optarg, &end, 10); break;
        case 'w': o->warmup = (int)strtol(optarg, &end, 10); break;
        case 'I': o->iters = (int)strtol(optarg, &end, 10); break;
        case 'J': o->json = optarg; break;
        case 'S': o->seed = strtoull(optarg, &end, 10); break;
        case 'D': o->no_detokenize = true; break;
        case 'h': e2e_usage(stdout); return 0;
        default:
            switch (pgd_tool_model_option(&o->m, c, optarg)) {
            case 1: break;
            case 0: e2e_usage(stderr); return 2;
            default: return 2;
            }
        }
        if (end && *end) {
            fprintf(stderr, "pagoda bench latency: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (!pgd_tool_model_named(&o->m) || optind < argc || o->input_len < 1 ||
        o->output_len < 1 || o->batch_size < 1 || o->n < 1 || o->warmup < 0 || o->iters < 1) {
        e2e_usage(stderr);
        return 2;
    }
    return -1;
}

/* The percentiles vLLM's bench latency prints and writes. */
static const int PCT[] = { 10, 25, 50, 75, 90, 99 };

/* One batch: every request submitted, then every stream read to its end; *secs the wall time
 * from the first submit to the last output. Non-zero (err set) when a request could not be
 * submitted or a sample did not generate its output length. */
static int one_batch(struct pgd_engine *e, const struct e2e_opts *o, const int32_t *ids,
                     bool detokenize, struct pgd_stream **streams, double *secs, char *err,
                     size_t errlen)
{
    int rc = 0;
    double t0 = pgd__now_s();
    for (int b = 0; b < o->batch_size; b++) {
        struct pgd_request_params r = pgd_request_default_params();
        r.prompt_ids = ids + (size_t)b * o->input_len;
        r.n_prompt_ids = o->input_len;
        r.detokenize = detokenize;
        r.sampling.n = o->n;
        r.sampling.temperature = 1.0f;
        r.sampling.top_p = 1.0f;
        r.sampling.ignore_eos = true;
        r.sampling.max_tokens = o->output_len;
        streams[b] = NULL;
        if (!rc && pgd_engine_submit(e, &r, &streams[b], err, errlen) != PGD_OK)
            rc = 1;
    }
    int short_samples = 0;
    for (int b = 0; b < o->batch_size; b++) {
        if (!streams[b])
            continue;
        struct pgd_output out;
        long tokens = 0;
        int by_length = 0;
        while (pgd_stream_next(streams[b], &out, -1) == PGD_OK) {
            tokens += out.n_token_ids;
            by_length += out.finish_reason == PGD_FINISH_LENGTH;
        }
        if (by_length != o->n || tokens != (long)o->n * o->output_len)
            short_samples++;
        pgd_stream_destroy(streams[b]);
        streams[b] = NULL;
    }
    *secs = pgd__now_s() - t0;
    if (!rc && short_samples) {
        snprintf(err, errlen, "%d of %d requests did not generate %d tokens in each of their "
                 "%d samples", short_samples, o->batch_size, o->output_len, o->n);
        rc = 1;
    }
    return rc;
}

static int write_json(const char *path, double avg, const double *lat, int n,
                      const double *sorted, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "--output-json %s: cannot write", path);
        return 1;
    }
    fprintf(f, "{\"avg_latency\": %.9f, \"latencies\": [", avg);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.9f", i ? ", " : "", lat[i]);
    fprintf(f, "], \"percentiles\": {");
    for (size_t k = 0; k < sizeof PCT / sizeof PCT[0]; k++)
        fprintf(f, "%s\"%d\": %.9f", k ? ", " : "", PCT[k], bs_percentile(sorted, n, PCT[k]));
    fprintf(f, "}}\n");
    if (fclose(f)) {
        snprintf(err, errlen, "--output-json %s: write failed", path);
        return 1;
    }
    return 0;
}

static int run(const struct e2e_opts *o)
{
    char err[512] = "";
    int rc = 1;
    struct pgd_engine *e = NULL;
    struct pgd_engine_params ep = pgd_engine_default_params();
    pgd_tool_model_engine_params(&o->m, &ep);
    ep.seed = o->seed;
    /* vLLM's LLM class defaults for an offline run on this card (batch_defaults.h), where
     * the engine flags do not give them (they go over ep below). */
    ep.max_num_seqs = 256;
    ep.max_num_batched_tokens = 8192;
    pgd__batch_defaults_apply(&ep, pgd__settings_is_set(&o->eng, PGD__S_MAX_NUM_SEQS),
                              pgd__settings_is_set(&o->eng, PGD__S_MAX_NUM_BATCHED_TOKENS),
                              PGD__USAGE_OFFLINE);
    int graph_sizes[64];            /* where --cuda-graph-sizes lands; ep points here */
    pgd__settings_engine_params_given(&o->eng, &ep, graph_sizes,
                                      (int)(sizeof graph_sizes / sizeof graph_sizes[0]));
    int32_t *ids = malloc((size_t)o->batch_size * o->input_len * sizeof *ids);
    struct pgd_stream **streams = calloc((size_t)o->batch_size, sizeof *streams);
    double *lat = malloc((size_t)o->iters * sizeof *lat);
    double *sorted = malloc((size_t)o->iters * sizeof *sorted);
    if (!ids || !streams || !lat || !sorted) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    if (pgd_engine_create(&ep, &e, err, sizeof err) != PGD_OK)
        goto out;
    const int vocab = pgd__runner_desc(pgd__engine_runner(e))->vocab_size;
    const bool detokenize = !o->no_detokenize && pgd_engine_has_tokenizer(e);
    uint64_t rng = o->seed ^ 0x5EEDBA7C4E5ULL;
    for (size_t i = 0; i < (size_t)o->batch_size * o->input_len; i++)
        ids[i] = (int32_t)(pgd_tool_splitmix(&rng) % (uint64_t)vocab);
    printf("engine: max_num_seqs %d, max_num_batched_tokens %d%s%s\n", ep.max_num_seqs,
           ep.max_num_batched_tokens, ep.enforce_eager ? ", eager" : "",
           ep.async_scheduling ? ", async scheduling" : "");
    printf("batch: %d requests of %d prompt tokens, %d tokens each x %d samples (temperature "
           "1, ignore_eos); %d warm-up and %d timed batches\n", o->batch_size, o->input_len,
           o->output_len, o->n, o->warmup, o->iters);
    fflush(stdout);
    double s;
    for (int i = 0; i < o->warmup; i++)
        if (one_batch(e, o, ids, detokenize, streams, &s, err, sizeof err))
            goto out;
    double sum = 0;
    for (int i = 0; i < o->iters; i++) {
        if (one_batch(e, o, ids, detokenize, streams, &lat[i], err, sizeof err))
            goto out;
        sum += lat[i];
    }
    memcpy(sorted, lat, (size_t)o->iters * sizeof *sorted);
    bs_sort(sorted, o->iters);
    const double avg = sum / o->iters;
    printf("Avg latency: %.9f seconds\n", avg);
    for (size_t k = 0; k < sizeof PCT / sizeof PCT[0]; k++)
        printf("%d%% percentile latency: %.9f seconds\n", PCT[k],
               bs_percentile(sorted, o->iters, PCT[k]));
    if (o->json && write_json(o->json, avg, lat, o->iters, sorted, err, sizeof err))
        goto out;
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda bench latency: %s\n", err);
    pgd_engine_destroy(e);
    free(ids);
    free(streams);
    free(lat);
    free(sorted);
    return rc;
}

int pgd_cmd_bench_latency_e2e(int argc, char **argv)
{
    struct e2e_opts o = { .input_len = 32, .output_len = 128, .batch_size = 8, .n = 1,
                          .warmup = 10, .iters = 30 };
    pgd_tool_model_init(&o.m);
    pgd__settings_init(&o.eng);
    int rc = parse_args(&o, argc, argv);
    if (rc < 0) {
        rc = pgd_tool_model_resolve(&o.m, "pagoda bench latency");
        if (!rc)
            rc = run(&o);
    }
    pgd__settings_fini(&o.eng);
    return rc;
}
