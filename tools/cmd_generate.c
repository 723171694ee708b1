/* pagoda generate: run one prompt (token ids) through a model and print the new token ids. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/runner.h"
#include "runtime/model.h"
#include <pagoda/registry.h>
#include <pagoda/log.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

struct gen_opts {
    const char *model;
    const char *plugin_dirs;
    int32_t *prompt;
    int n_prompt;
    int max_tokens;
    double temperature, top_p;
    int top_k;
    uint64_t seed;
    bool ignore_eos;
    enum pgd_device device;
    enum pgd_dtype dtype;            /* PGD_DTYPE_COUNT: the checkpoint's */
};

static void gen_usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda generate --model DIR --prompt-ids 1,2,3 [options]\n\n"
            "  --model DIR          a Hugging Face model directory (config.json + safetensors)\n"
            "  --prompt-ids LIST    comma-separated prompt token ids\n"
            "  --max-tokens N       tokens to generate (default 16)\n"
            "  --temperature T      0 = greedy (default 0)\n"
            "  --top-p P            nucleus sampling mass (default 1)\n"
            "  --top-k K            keep the K most likely tokens (default 0 = all)\n"
            "  --seed S             random seed (default 0)\n"
            "  --ignore-eos         keep generating past the end-of-sequence token\n"
            "  --device cuda|cpu    where to run (default: cuda when available, else cpu)\n"
            "  --dtype bf16|fp16    compute dtype on the GPU (default: the checkpoint's)\n"
            "  --plugin-dir DIR     also look for plugins in DIR (repeatable)\n");
}

static int parse_ids(const char *s, struct gen_opts *o)
{
    size_t cap = 16;
    o->prompt = malloc(cap * sizeof *o->prompt);
    o->n_prompt = 0;
    const char *p = s;
    while (o->prompt && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "pagoda generate: --prompt-ids: '%s' is not a comma-separated list "
                            "of token ids\n", s);
            return -1;
        }
        if ((size_t)o->n_prompt == cap) {
            int32_t *np = realloc(o->prompt, (cap *= 2) * sizeof *np);
            if (!np)
                return -1;
            o->prompt = np;
        }
        o->prompt[o->n_prompt++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (o->n_prompt == 0) {
        fprintf(stderr, "pagoda generate: --prompt-ids needs at least one id\n");
        return -1;
    }
    return 0;
}

/* xoshiro256** seeded by splitmix64: a uniform double in [0, 1). */
struct rng { uint64_t s[4]; };
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_uniform(struct rng *r)
{
    uint64_t *s = r->s, result = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return (double)(result >> 11) * 0x1.0p-53;
}

struct cand { float logit; int id; };
static int by_logit_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* Greedy when temperature is 0; else top-k, then top-p over the tempered softmax. */
static int sample(const float *logits, int vocab, const struct gen_opts *o, struct rng *rng,
                  struct cand *c)
{
    if (o->temperature <= 0) {
        int best = 0;
        for (int i = 1; i < vocab; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    for (int i = 0; i < vocab; i++)
        c[i] = (struct cand){ (float)(logits[i] / o->temperature), i };
    qsort(c, (size_t)vocab, sizeof *c, by_logit_desc);
    int keep = o->top_k > 0 && o->top_k < vocab ? o->top_k : vocab;
    double sum = 0;
    for (int i = 0; i < keep; i++)
        sum += exp((double)c[i].logit - c[0].logit);
    double mass = 0;
    int n = 0;
    while (n < keep) {
        mass += exp((double)c[n].logit - c[0].logit) / sum;
        n++;
        if (mass >= o->top_p)
            break;
    }
    double u = rng_uniform(rng) * mass, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exp((double)c[i].logit - c[0].logit) / sum;
        if (u < acc)
            return c[i].id;
    }
    return c[n - 1].id;
}

static bool is_eos(const struct pgd__model *m, int tok)
{
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == tok)
            return true;
    return false;
}

static int run(const struct gen_opts *o)
{
    char err[1024] = "";
    struct pgd_registry *reg = NULL;
    struct pgd__runner *r = NULL;
    int32_t *tokens = NULL, *blocks = NULL;
    struct cand *cands = NULL;
    int rc = 1;
    if (pgd_tool_registry(o->plugin_dirs, &reg, err, sizeof err))
        goto out;

    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = o->model;
    p.registry = reg;
    p.device = o->device;
    p.dtype = o->dtype;
    int total = o->n_prompt + o->max_tokens;
    p.max_num_batched_tokens = total > 2048 ? total : 2048;
    p.max_num_seqs = 1;
    if (o->device == PGD_DEVICE_CUDA)
        p.num_blocks = (total + p.block_size - 1) / p.block_size + 1;
    if (pgd__runner_create(&p, &r, err, sizeof err))
        goto out;
    const struct pgd_model_desc *desc = pgd__runner_desc(r);
    int bs = pgd__runner_block_size(r);
    int n_blocks = (total + bs - 1) / bs;
    if (n_blocks > pgd__runner_num_blocks(r)) {
        snprintf(err, sizeof err, "%d tokens need %d KV blocks; the cache has %d", total,
                 n_blocks, pgd__runner_num_blocks(r));
        goto out;
    }
    tokens = malloc((size_t)total * sizeof *tokens);
    blocks = malloc((size_t)n_blocks * sizeof *blocks);
    cands = malloc((size_t)desc->vocab_size * sizeof *cands);
    if (!tokens || !blocks || !cands) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    for (int b = 0; b < n_blocks; b++)
        blocks[b] = b;
    memcpy(tokens, o->prompt, (size_t)o->n_prompt * sizeof *tokens);
    struct rng rng;
    uint64_t x = o->seed;
    for (int i = 0; i < 4; i++)
        rng.s[i] = splitmix(&x);

    int n = o->n_prompt, computed = 0;
    printf("[");
    for (int step = 0; step < o->max_tokens; step++) {
        struct pgd__step_seq seq = { .tokens = tokens + computed, .n_new = n - computed,
                                     .n_computed = computed, .block_table = blocks,
                                     .n_blocks = (n + bs - 1) / bs, .n_logits = 1 };
        const float *logits;
        if (pgd__runner_step(r, &seq, 1, &logits, err, sizeof err))
            goto out;
        computed = n;
        int tok = sample(logits, desc->vocab_size, o, &rng, cands);
        tokens[n++] = tok;
        printf("%s%d", step ? ", " : "", tok);
        fflush(stdout);
        if (!o->ignore_eos && is_eos(pgd__runner_model(r), tok))
            break;
    }
    printf("]\n");
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda generate: %s\n", err);
    free(tokens);
    free(blocks);
    free(cands);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
    return rc;
}

int pgd_cmd_generate(int argc, char **argv)
{
    static const struct option long_opts[] = {
        { "model", required_argument, 0, 'm' }, { "prompt-ids", required_argument, 0, 'p' },
        { "max-tokens", required_argument, 0, 'n' }, { "temperature", required_argument, 0, 't' },
        { "top-p", required_argument, 0, 'P' }, { "top-k", required_argument, 0, 'k' },
        { "seed", required_argument, 0, 's' }, { "ignore-eos", no_argument, 0, 'e' },
        { "plugin-dir", required_argument, 0, 'D' }, { "help", no_argument, 0, 'h' },
        { "device", required_argument, 0, 'V' }, { "dtype", required_argument, 0, 'T' },
        { 0, 0, 0, 0 },
    };
    struct gen_opts o = { .max_tokens = 16, .temperature = 0, .top_p = 1.0,
                          .device = pgd_tool_default_device(), .dtype = PGD_DTYPE_COUNT };
    char plugin_dirs[4096] = "";
    const char *ids = NULL;
    int c, rc = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'p': ids = optarg; break;
        case 'n': o.max_tokens = (int)strtol(optarg, &end, 10); break;
        case 't': o.temperature = strtod(optarg, &end); break;
        case 'P': o.top_p = strtod(optarg, &end); break;
        case 'k': o.top_k = (int)strtol(optarg, &end, 10); break;
        case 's': o.seed = strtoull(optarg, &end, 10); break;
        case 'e': o.ignore_eos = true; break;
        case 'D':
            snprintf(plugin_dirs + strlen(plugin_dirs), sizeof plugin_dirs - strlen(plugin_dirs),
                     "%s%s", plugin_dirs[0] ? ":" : "", optarg);
            break;
        case 'V':
            if (pgd_tool_parse_device(optarg, &o.device))
                return 2;
            break;
        case 'T':
            if (pgd_tool_parse_dtype(optarg, &o.dtype))
                return 2;
            break;
        case 'h': gen_usage(stdout); return 0;
        default: gen_usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "pagoda generate: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (!o.model || !ids || optind < argc) {
        gen_usage(stderr);
        return 2;
    }
    if (o.max_tokens <= 0 || o.temperature < 0 || !(o.top_p > 0 && o.top_p <= 1) || o.top_k < 0) {
        fprintf(stderr, "pagoda generate: need --max-tokens > 0, --temperature >= 0, "
                        "0 < --top-p <= 1, --top-k >= 0\n");
        return 2;
    }
    o.plugin_dirs = plugin_dirs[0] ? plugin_dirs : NULL;
    if (parse_ids(ids, &o) == 0)
        rc = run(&o);
    free(o.prompt);
    return rc;
}
