/* `pagoda bench spec`: speculative decoding at batch 1. Two prompt sets, each run without and
 * with speculation (--speculative-config, vLLM's JSON; default n-gram, 4 tokens, lookup 1..4):
 * "repetitive" prompts (a random span of token ids said several times over: text that
 * repeats itself, as code edits and quoting do) and "free-form" ones (random ids, nothing to
 * look up). Requests run one at a time, greedy, to their output length (ignore_eos); the
 * report gives decode tokens/s and ms/token for each (from each request's first token to
 * its last: the prefill left out), the speed-up, and the engine's spec_decode counters:
 * proposals, accepted, acceptance rate, mean tokens a verify step emits. Token ids by
 * default, so any model runs, random weights included; --prompts FILE gives a real model
 * text prompt sets instead (bench_spec_prompts.c), each request then ending at its EOS or
 * its output length. */
#include "config.h"
#include "tools/commands.h"
#include "tools/tool_model.h"
#include "tools/bench/bench_draw.h"
#include "tools/bench/bench_spec_prompts.h"
#include "runtime/base/clock.h"
#include <pagoda/engine.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_SPEC "{\"method\": \"ngram\", \"num_speculative_tokens\": 4, " \
                     "\"prompt_lookup_max\": 4, \"prompt_lookup_min\": 1}"

struct spec_opts {
    struct pgd_tool_model m;         /* the model, device, dtype and plugin dirs */
    const char *spec, *json;
    int num_prompts, input_len, output_len, span;
    uint64_t seed;
    const char *prompts_file;        /* --prompts: text sets instead of token ids */
    struct spec_prompts prompts;     /* read from it */
};

/* One (prompt set, speculation on or off) run. */
struct spec_result {
    double seconds;                  /* wall time of the set's requests, one after another */
    long tokens;                     /* tokens generated */
    double decode_s;                 /* the requests' times from first to last token */
    double decode_cpu_s;             /* the process's CPU time over those intervals */
    long decode_tokens;              /* the tokens after each request's first output */
    struct pgd_engine_stats d;       /* the spec_decode counters over the set */
};

static void spec_usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda bench spec (--model DIR | --random-weights CONFIG) [options]\n\n"
            "  --speculative-config JSON  what to compare with none (default\n"
            "                           '" DEFAULT_SPEC "')\n"
            "  --num-prompts N          requests a prompt set (default 8)\n"
            "  --input-len N            prompt tokens (default 64)\n"
            "  --output-len N           generated tokens a request (default 128)\n"
            "  --span N                 the repetitive set's prompts repeat a span of N\n"
            "                           random ids (default 16)\n"
            "  --prompts FILE           text prompts instead of ids: a JSON object\n"
            "                           {\"repetitive\": [TEXT...], \"free-form\": [TEXT...]},\n"
            "                           each a user turn of the model's chat template (when\n"
            "                           it has one); requests stop at EOS or --output-len\n"
            "  --model DIR|ORG/NAME, --revision REV, --download-dir DIR,\n"
            "  --random-weights CONFIG, --device auto|cpu|cuda|cuda:N,\n"
            "  --dtype auto|bfloat16|float16, --quantization gptq|awq|fp8,\n"
            "  --kv-cache-dtype auto|fp8, --seed S,\n"
            "  --plugin-dir DIR\n"
            "  --json FILE              also write the report as JSON\n");
}

/* Prompt i of a set into ids [input_len]: random ids in [3, vocab), or (repetitive) a
 * random span of o->span ids repeated. */
static void make_prompt(const struct spec_opts *o, bool repetitive, int i, int vocab,
                        int32_t *ids)
{
    uint64_t rng = o->seed * 1000003u + (uint64_t)i * 7919u + (repetitive ? 1 : 2);
    int span = repetitive ? o->span : o->input_len;
    for (int t = 0; t < o->input_len; t++)
        ids[t] = t < span ? 3 + (int32_t)(pgd_tool_splitmix(&rng) % (uint64_t)(vocab - 3))
                          : ids[t - span];
}

/* The CPU time of this process (every thread), seconds. */
static double cpu_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs request r (greedy, up to out tokens) to its end; returns the tokens it generated, or
 * -1. res (when not NULL) adds the time (wall and CPU) from its first output to its last
 * and the tokens after the first output. */
static long run_one(struct pgd_engine *e, struct pgd_request_params r, int out,
                    struct spec_result *res, char *err, size_t errlen)
{
    r.detokenize = false;
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = out;
    struct pgd_stream *s;
    if (pgd_engine_submit(e, &r, &s, err, errlen) != PGD_OK)
        return -1;
    struct pgd_output o;
    long got = 0, first = 0;
    double t_first = 0, cpu_first = 0;
    while (pgd_stream_next(s, &o, -1) == PGD_OK) {
        if (!got && o.n_token_ids) {
            t_first = pgd__now_s();
            cpu_first = cpu_now_s();
            first = o.n_token_ids;
        }
        got += o.n_token_ids;
    }
    if (res && got) {
        res->decode_s += pgd__now_s() - t_first;
        res->decode_cpu_s += cpu_now_s() - cpu_first;
        res->decode_tokens += got - first;
    }
    pgd_stream_destroy(s);
    return got;
}

/* Request i of a set (-1: the untimed one): a text prompt of --prompts, else ids [input_len]
 * (make_prompt) to the output length whatever the model says (ignore_eos). */
static struct pgd_request_params set_request(const struct spec_opts *o, bool repetitive, int i,
                                             int vocab, int32_t *ids)
{
    struct pgd_request_params r = pgd_request_default_params();
    if (o->prompts_file) {
        const struct spec_prompts *p = &o->prompts;
        int s = repetitive ? 0 : 1;
        r.prompt = p->set[s][i < 0 ? 0 : i % p->n[s]];
        r.add_special_tokens = !p->chat;
        return r;
    }
    make_prompt(o, repetitive, i, vocab, ids);
    r.prompt_ids = ids;
    r.n_prompt_ids = o->input_len;
    r.sampling.ignore_eos = true;
    return r;
}

/* The set's requests one at a time on e; the counters' difference over them into res. */
static int run_set(struct pgd_engine *e, const struct spec_opts *o, bool repetitive,
                   struct spec_result *res, char *err, size_t errlen)
{
    int vocab = pgd_engine_vocab_size(e);
    int32_t *ids = malloc((size_t)o->input_len * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* One untimed request first (first-touch of the buffers, lazy CUDA graphs). */
    int rc = run_one(e, set_request(o, repetitive, -1, vocab, ids),
                     o->output_len < 16 ? o->output_len : 16, NULL, err, errlen) < 0 ? -1 : 0;
    struct pgd_engine_stats a, b;
    pgd_engine_get_stats(e, &a);
    double t0 = pgd__now_s();
    *res = (struct spec_result){ 0 };
    /* Text prompts end at EOS: any length up to output_len. */
    int n_req = o->prompts_file ? o->prompts.n[repetitive ? 0 : 1] : o->num_prompts;
    for (int i = 0; rc == 0 && i < n_req; i++) {
        long n = run_one(e, set_request(o, repetitive, i, vocab, ids), o->output_len, res, err,
                         errlen);
        if (n < 1 || (n != o->output_len && !o->prompts_file)) {
            if (n >= 0)
                snprintf(err, errlen, "request %d generated %ld of %d tokens", i, n,
                         o->output_len);
            rc = -1;
        }
        res->tokens += n;
    }
    res->seconds = pgd__now_s() - t0;
    pgd_engine_get_stats(e, &b);
    res->d = b;
    res->d.spec_num_drafts = b.spec_num_drafts - a.spec_num_drafts;
    res->d.spec_num_draft_tokens = b.spec_num_draft_tokens - a.spec_num_draft_tokens;
    res->d.spec_num_accepted_tokens = b.spec_num_accepted_tokens - a.spec_num_accepted_tokens;
    free(ids);
    return rc;
}

/* An engine for the bench: batch 1 (one sequence a step), speculation as spec says. */
static struct pgd_engine *make_engine(const struct spec_opts *o, const char *spec, char *err,
                                      size_t errlen)
{
    struct pgd_engine_params ep = pgd_engine_default_params();
    pgd_tool_model_engine_params(&o->m, &ep);
    ep.seed = o->seed;
    ep.max_num_seqs = 1;
    ep.max_num_batched_tokens = o->input_len + 64 > 2048 ? o->input_len + 64 : 2048;
    ep.speculative_config = spec;
    ep.tokenizer_optional = !o->prompts_file;
    struct pgd_engine *e = NULL;
    if (pgd_engine_create(&ep, &e, err, errlen) != PGD_OK)
        return NULL;
    return e;
}

/* Decode tokens/s of r: its tokens after the first of each request over their time (all
 * its tokens over its wall time when each request made one token). */
static double decode_tps(const struct spec_result *r)
{
    return r->decode_tokens && r->decode_s > 0 ? r->decode_tokens / r->decode_s
                                               : r->tokens / r->seconds;
}

/* The process's CPU milliseconds a decode token of r (0 when it has none). */
static double decode_cpu_ms(const struct spec_result *r)
{
    return r->decode_tokens ? 1000.0 * r->decode_cpu_s / (double)r->decode_tokens : 0.0;
}

static void print_row(const char *set, const char *mode, const struct spec_result *r,
                      const struct spec_result *base)
{
    double tps = decode_tps(r), ms = 1000.0 / tps;
    printf("%-11s %-5s %10.1f %9.3f %9.3f", set, mode, tps, ms, decode_cpu_ms(r));
    if (!base) {
        printf("\n");
        return;
    }
    const struct pgd_engine_stats *d = &r->d;
    double acc = d->spec_num_draft_tokens ? (double)d->spec_num_accepted_tokens /
                                            (double)d->spec_num_draft_tokens : 0.0;
    double mean = d->spec_num_drafts ? 1.0 + (double)d->spec_num_accepted_tokens /
                                             (double)d->spec_num_drafts : 1.0;
    printf(" %9llu %9llu %9.1f%% %9.2f %8.2fx\n", (unsigned long long)d->spec_num_draft_tokens,
           (unsigned long long)d->spec_num_accepted_tokens, 100.0 * acc, mean,
           tps / decode_tps(base));
}

static void write_json(const struct spec_opts *o, const struct spec_result r[2][2])
{
    FILE *f = fopen(o->json, "w");
    if (!f) {
        fprintf(stderr, "pagoda bench spec: cannot write %s\n", o->json);
        return;
    }
    fprintf(f, "{\"model\": \"%s\", \"num_prompts\": %d, \"input_len\": %d, \"output_len\": %d, "
            "\"sets\": {", o->m.dir, o->num_prompts, o->input_len, o->output_len);
    for (int s = 0; s < 2; s++) {
        const struct spec_result *off = &r[s][0], *on = &r[s][1];
        fprintf(f, "%s\"%s\": {\"tokens_off\": %ld, \"tokens_on\": %ld, "
                "\"tokens_per_s_off\": %.3f, \"tokens_per_s_on\": %.3f, "
                "\"decode_ms_per_token_off\": %.6f, \"decode_ms_per_token_on\": %.6f, "
                "\"decode_cpu_ms_per_token_off\": %.6f, \"decode_cpu_ms_per_token_on\": %.6f, "
                "\"num_drafts\": %llu, \"num_draft_tokens\": %llu, \"num_accepted_tokens\": "
                "%llu}", s ? ", " : "", s ? "free_form" : "repetitive", off->tokens, on->tokens,
                decode_tps(off), decode_tps(on), 1000.0 / decode_tps(off),
                1000.0 / decode_tps(on), decode_cpu_ms(off), decode_cpu_ms(on),
                (unsigned long long)on->d.spec_num_drafts,
                (unsigned long long)on->d.spec_num_draft_tokens,
                (unsigned long long)on->d.spec_num_accepted_tokens);
    }
    fprintf(f, "}}\n");
    fclose(f);
}

static int run_spec(const struct spec_opts *o)
{
    struct spec_result r[2][2];      /* [set: repetitive, free-form][off, on] */
    char err[1024] = "";
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = make_engine(o, mode ? o->spec : NULL, err, sizeof err);
        if (!e) {
            fprintf(stderr, "pagoda bench spec: %s\n", err);
            return 1;
        }
        int rc = run_set(e, o, true, &r[0][mode], err, sizeof err);
        if (rc == 0)
            rc = run_set(e, o, false, &r[1][mode], err, sizeof err);
        pgd_engine_destroy(e);
        if (rc) {
            fprintf(stderr, "pagoda bench spec: %s\n", err);
            return 1;
        }
    }
    if (o->prompts_file)
        printf("pagoda bench spec: %s, batch 1, greedy, the prompts of %s (%d repetitive, %d "
               "free-form%s), up to %d output tokens each\n", o->m.dir, o->prompts_file,
               o->prompts.n[0], o->prompts.n[1], o->prompts.chat ? ", chat template" : "",
               o->output_len);
    else
        printf("pagoda bench spec: %s, batch 1, greedy, %d requests a set, %d prompt and %d "
               "output tokens each\n", o->m.dir, o->num_prompts, o->input_len, o->output_len);
    printf("speculative_config: %s\n\n", o->spec);
    printf("%-11s %-5s %10s %9s %9s %9s %9s %10s %9s %9s\n", "set", "spec", "tokens/s",
           "ms/token", "cpu ms", "drafted", "accepted", "acceptance", "mean run", "speed-up");
    static const char *const names[2] = { "repetitive", "free-form" };
    for (int s = 0; s < 2; s++) {
        print_row(names[s], "off", &r[s][0], NULL);
        print_row(names[s], "on", &r[s][1], &r[s][0]);
    }
    printf("\n(tokens/s and ms/token: decode, from each request's first token to its last; "
           "cpu ms: the process's CPU time a decode token, which a busy machine does not "
           "inflate as it does the wall time; mean run: tokens a verify step emits, the "
           "accepted proposals + 1)\n");
    if (o->json)
        write_json(o, r);
    return 0;
}

int pgd_cmd_bench_spec(int argc, char **argv)
{
    static const struct option long_opts[] = {
        PGD_TOOL_MODEL_OPTIONS, PGD_TOOL_RANDOM_WEIGHTS_OPTION,
        { "speculative-config", required_argument, 0, 'C' },
        { "num-prompts", required_argument, 0, 'n' }, { "input-len", required_argument, 0, 'i' },
        { "output-len", required_argument, 0, 'o' }, { "span", required_argument, 0, 's' },
        { "seed", required_argument, 0, 'S' }, { "json", required_argument, 0, 'J' },
        { "prompts", required_argument, 0, 'P' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    struct spec_opts o = { .spec = DEFAULT_SPEC, .num_prompts = 8, .input_len = 64,
                           .output_len = 128, .span = 16 };
    pgd_tool_model_init(&o.m);
    int c;
    bool ok = true;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'C': o.spec = optarg; break;
        case 'n': ok = pgd_tool_parse_int(optarg, 1, 100000, &o.num_prompts); break;
        case 'i': ok = pgd_tool_parse_int(optarg, 2, 1 << 20, &o.input_len); break;
        case 'o': ok = pgd_tool_parse_int(optarg, 1, 1 << 20, &o.output_len); break;
        case 's': ok = pgd_tool_parse_int(optarg, 1, 1 << 20, &o.span); break;
        case 'S': o.seed = strtoull(optarg, NULL, 10); break;
        case 'J': o.json = optarg; break;
        case 'P': o.prompts_file = optarg; break;
        case 'h': spec_usage(stdout); return 0;
        default:
            switch (pgd_tool_model_option(&o.m, c, optarg)) {
            case 1: break;
            case 0: spec_usage(stderr); return 2;
            default: return 2;
            }
        }
        if (!ok) {
            fprintf(stderr, "pagoda bench spec: '%s' is not a number in range\n", optarg);
            return 2;
        }
    }
    if (!pgd_tool_model_named(&o.m) || optind < argc) {
        spec_usage(stderr);
        return 2;
    }
    if (o.span > o.input_len)
        o.span = o.input_len;
    int rc = pgd_tool_model_resolve(&o.m, "pagoda bench spec");
    if (rc)
        return rc;
    static char spec_json[8192];
    if (pgd_tool_resolve_spec_model(&o.spec, spec_json, sizeof spec_json))
        return 1;
    char err[1024];
    if (o.prompts_file && spec_prompts_load(o.prompts_file, o.m.dir, &o.prompts, err,
                                            sizeof err)) {
        fprintf(stderr, "pagoda bench spec: --prompts %s\n", err);
        return 1;
    }
    rc = run_spec(&o);
    spec_prompts_free(&o.prompts);
    return rc;
}
