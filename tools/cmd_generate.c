/* pagoda generate: prompts through the engine (continuous batching, the full sampler) from
 * the command line or a JSON-lines file; prints token ids or text. */
#include "config.h"
#include "tools/commands.h"
#include "tools/tool_model.h"
#include "tools/generate_requests.h"
#include "runtime/runner/runner.h"
#include "runtime/base/clock.h"
#include <pagoda/engine.h>
#include <pagoda/log.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gen_opts {
    struct pgd_tool_model m;           /* the model, device, dtype and plugin dirs */
    const char *prompt, *prompt_ids, *prompts_file, *dump_logits;
    bool ids_out;                      /* print token ids even when there is a tokenizer */
    struct pgd_engine_params engine;
    struct gen_request_defaults dflt;  /* sampling defaults for every request */
};

static void gen_usage(FILE *out)
{
    fprintf(out,
        "usage: pagoda generate (--model DIR | --random-weights CONFIG)\n"
        "                       (--prompt-ids LIST | --prompt TEXT | --prompts-file FILE) [options]\n\n"
        "Runs prompts through the engine (continuous batching over a paged KV cache).\n\n"
        "  --model DIR|ORG/NAME     a Hugging Face model directory (config.json, safetensors,\n"
        "                           tokenizer.json for text), hub id or catalog name\n"
        "  --revision REV, --download-dir DIR   for a hub id: the branch, tag or commit,\n"
        "                           and the cache root (default HF_HUB_CACHE)\n"
        "  --random-weights CONFIG  a config.json (or its directory, whose tokenizer is used):\n"
        "                           random weights made on the device, no checkpoint read (the\n"
        "                           same each run; with --quantization fp8 the dense ones\n"
        "                           quantized at load, to compare with them)\n"
        "  --prompt-ids LIST        one prompt as comma-separated token ids\n"
        "  --prompt TEXT            one text prompt (needs the model's tokenizer)\n"
        "  --prompts-file FILE      many requests, one JSON object a line: \"prompt\" or\n"
        "                           \"prompt_ids\", and any sampling field below by its JSON name\n"
        "                           (max_tokens, temperature, top_p, top_k, min_p, seed, n, stop,\n"
        "                           stop_token_ids, ignore_eos, min_tokens, presence_penalty,\n"
        "                           frequency_penalty, repetition_penalty); prints one JSON object\n"
        "                           a line, in the same order. All run together.\n"
        "sampling (defaults for every request):\n"
        "  --max-tokens N           tokens to generate (default 16)\n"
        "  --temperature T          0 = greedy (default 0)\n"
        "  --top-p P, --top-k K, --min-p P, --seed S, --n N, --ignore-eos\n"
        "engine:\n"
        "  --device auto|cpu|cuda|cuda:N  (default auto: cuda when available, else cpu)\n"
        "  --dtype auto|bfloat16|float16   GPU compute dtype (default auto: the checkpoint's;\n"
        "                           the CPU computes in float32)\n"
        "  --quantization METHOD    gptq, awq, fp8 or compressed-tensors (default: the\n"
        "                           checkpoint's; fp8 on a 16-bit checkpoint quantizes it at load)\n"
        "  --kv-cache-dtype DTYPE   auto or fp8 (= fp8_e4m3: the KV cache in e4m3, twice the\n"
        "                           tokens a block of memory holds; default auto)\n"
        "  --num-blocks N           KV cache blocks (default: from 256 MiB)\n"
        "  --block-size N           tokens per block (default 16)\n"
        "  --max-num-seqs N         (default 256)   --max-num-batched-tokens N (default 2048)\n"
        "  --no-prefix-caching\n"
        "  --batch-invariant        each request's output the same bits whatever it runs beside\n"
        "                           (vLLM's VLLM_BATCH_INVARIANT; the CPU device only)\n"
        "  --tensor-parallel-size N split the model over N ranks of `mpirun -np N` (default 1;\n"
        "                           docs/TENSOR_PARALLEL.md)\n"
        "output:\n"
        "  --ids                    print token ids even when the model has a tokenizer\n"
        "  --dump-logits FILE       write the float32 logits after the prompt (--prompt-ids) to\n"
        "                           FILE as {\"n_prompt\": N, \"vocab_size\": V, \"logits\": [...]}\n"
        "                           (a separate forward pass through the model runner)\n"
        "  --plugin-dir DIR         also look for plugins in DIR (repeatable)\n");
}

/* Writes the logits that follow the prompt as JSON. %.9g round-trips a float32; a
 * non-finite logit is written as null, which no reader takes for a number. */
static int dump_logits(const char *path, const float *logits, int vocab, int n_prompt,
                       char *err, size_t errlen)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        snprintf(err, errlen, "--dump-logits: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "{\"n_prompt\": %d, \"vocab_size\": %d, \"logits\": [", n_prompt, vocab);
    for (int i = 0; i < vocab; i++) {
        if (isfinite(logits[i]))
            fprintf(fp, "%s%.9g", i ? ", " : "", (double)logits[i]);
        else
            fprintf(fp, "%snull", i ? ", " : "");
    }
    fprintf(fp, "]}\n");
    if (ferror(fp) | fclose(fp)) {
        snprintf(err, errlen, "--dump-logits: cannot write %s", path);
        return -1;
    }
    return 0;
}

/* One prefill of the prompt through the model runner (no engine), for --dump-logits. */
static int run_dump_logits(const struct gen_opts *o, const struct gen_request *rq, char *err,
                           size_t errlen)
{
    struct pgd_registry *reg = NULL;
    struct pgd__runner *r = NULL;
    int rc = -1;
    if (pgd_tool_registry(o->m.plugin_path, &reg, err, errlen))
        return -1;
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    pgd_tool_model_runner_params(&o->m, reg, &p);
    p.max_num_seqs = 1;
    p.max_num_batched_tokens = rq->n_ids > 2048 ? rq->n_ids : 2048;
    int bs = p.block_size, n_blocks = (rq->n_ids + bs - 1) / bs;
    p.num_blocks = n_blocks;
    int32_t *table = malloc((size_t)n_blocks * sizeof *table);
    if (table && !pgd__runner_create(&p, &r, err, errlen)) {
        for (int b = 0; b < n_blocks; b++)
            table[b] = b;
        struct pgd__step_seq seq = { .tokens = rq->ids, .n_new = rq->n_ids, .block_table = table,
                                     .n_blocks = n_blocks, .n_logits = 1 };
        const float *logits;
        if (!pgd__runner_step(r, &seq, 1, &logits, err, errlen))
            rc = dump_logits(o->dump_logits, logits, pgd__runner_desc(r)->vocab_size, rq->n_ids,
                             err, errlen);
    }
    free(table);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
    return rc;
}

static int run(struct gen_opts *o)
{
    char err[2048] = "";
    struct gen_request *reqs = NULL;
    int n_reqs = 0, rc = 1;
    struct pgd_engine *eng = NULL;
    struct pgd_stream **streams = NULL;

    /* Tensor parallelism: ranks other than 0 follow rank 0's steps and print nothing. */
    int worker = pgd_tool_tp_worker("generate", &o->engine);
    if (worker >= 0)
        return worker;
    if (o->prompts_file)
        n_reqs = gen_requests_read_file(o->prompts_file, &o->dflt, &reqs, err, sizeof err);
    else
        n_reqs = gen_requests_single(o->prompt, o->prompt_ids, &o->dflt, &reqs, err, sizeof err);
    if (n_reqs < 0)
        goto out;
    if (o->dump_logits) {
        if (o->prompts_file || !reqs[0].ids) {
            snprintf(err, sizeof err, "--dump-logits needs one prompt given with --prompt-ids");
            goto out;
        }
        if (run_dump_logits(o, &reqs[0], err, sizeof err))
            goto out;
    }
    /* Prompts given as token ids need no tokenizer: one that cannot be loaded only turns
     * the output into token ids. */
    o->engine.tokenizer_optional = true;
    for (int i = 0; i < n_reqs; i++)
        o->engine.tokenizer_optional = o->engine.tokenizer_optional && reqs[i].ids;
    if (pgd_engine_create(&o->engine, &eng, err, sizeof err))
        goto out;
    bool text_out = pgd_engine_has_tokenizer(eng) && !o->ids_out;
    streams = calloc((size_t)n_reqs, sizeof *streams);
    if (!streams) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    double t0 = pgd__now_s();
    for (int i = 0; i < n_reqs; i++) {
        char rerr[1024];
        if (pgd_engine_submit(eng, &reqs[i].params, &streams[i], rerr, sizeof rerr)) {
            snprintf(err, sizeof err, "%s%d: %s", o->prompts_file ? "request " : "prompt ",
                     reqs[i].line, rerr);
            goto out;
        }
    }
    long prompt_tokens = 0, gen_tokens = 0;
    for (int i = 0; i < n_reqs; i++) {
        struct gen_result res;
        if (gen_result_collect(streams[i], reqs[i].params.sampling.n, &res, err, sizeof err))
            goto out;
        if (o->prompts_file)
            gen_result_print_json(stdout, i, &res);
        else
            gen_result_print_plain(stdout, &res, text_out);
        prompt_tokens += res.prompt_tokens;
        gen_tokens += res.completion_tokens;
        gen_result_fini(&res);
        fflush(stdout);
    }
    double dt = pgd__now_s() - t0;
    PGD_INFO("%d request(s): %ld prompt + %ld generated tokens in %.3f s (%.1f generated tokens/s)",
             n_reqs, prompt_tokens, gen_tokens, dt, dt > 0 ? gen_tokens / dt : 0.0);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda generate: %s\n", err);
    pgd_tool_tp_failed(&o->engine, rc);
    for (int i = 0; streams && i < n_reqs; i++)
        pgd_stream_destroy(streams[i]);
    free(streams);
    pgd_engine_destroy(eng);
    gen_requests_free(reqs, n_reqs);
    return rc;
}

int pgd_cmd_generate(int argc, char **argv)
{
    enum { O_PIDS = 256, O_PROMPT, O_PFILE, O_MAXT, O_TEMP, O_TOPP, O_TOPK, O_MINP, O_SEED,
           O_N, O_IGNEOS, O_NBLK, O_BS, O_MSEQ, O_MBT, O_NOPC, O_IDS, O_DUMP, O_TP, O_BI };
    static const struct option long_opts[] = {
        PGD_TOOL_MODEL_OPTIONS, PGD_TOOL_RANDOM_WEIGHTS_OPTION,
        { "prompt-ids", required_argument, 0, O_PIDS },
        { "prompt", required_argument, 0, O_PROMPT },
        { "prompts-file", required_argument, 0, O_PFILE },
        { "max-tokens", required_argument, 0, O_MAXT },
        { "temperature", required_argument, 0, O_TEMP }, { "top-p", required_argument, 0, O_TOPP },
        { "top-k", required_argument, 0, O_TOPK }, { "min-p", required_argument, 0, O_MINP },
        { "seed", required_argument, 0, O_SEED }, { "n", required_argument, 0, O_N },
        { "ignore-eos", no_argument, 0, O_IGNEOS },
        { "num-blocks", required_argument, 0, O_NBLK }, { "block-size", required_argument, 0, O_BS },
        { "max-num-seqs", required_argument, 0, O_MSEQ },
        { "max-num-batched-tokens", required_argument, 0, O_MBT },
        { "no-prefix-caching", no_argument, 0, O_NOPC }, { "ids", no_argument, 0, O_IDS },
        { "batch-invariant", no_argument, 0, O_BI },
        { "dump-logits", required_argument, 0, O_DUMP },
        { "help", no_argument, 0, 'h' },
        { "tensor-parallel-size", required_argument, 0, O_TP },
        { 0, 0, 0, 0 },
    };
    struct gen_opts o = { .engine = pgd_engine_default_params() };
    pgd_tool_model_init(&o.m);
    gen_request_defaults_init(&o.dflt);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        char *end = NULL;
        errno = 0;
        switch (c) {
        case O_PIDS: o.prompt_ids = optarg; break;
        case O_PROMPT: o.prompt = optarg; break;
        case O_PFILE: o.prompts_file = optarg; break;
        case O_MAXT: o.dflt.s.max_tokens = (int)strtol(optarg, &end, 10); break;
        case O_TEMP: o.dflt.s.temperature = strtof(optarg, &end); break;
        case O_TOPP: o.dflt.s.top_p = strtof(optarg, &end); break;
        case O_TOPK: o.dflt.s.top_k = (int)strtol(optarg, &end, 10); break;
        case O_MINP: o.dflt.s.min_p = strtof(optarg, &end); break;
        case O_SEED:
            o.dflt.s.seed = strtoull(optarg, &end, 10);
            o.dflt.s.has_seed = true;
            break;
        case O_N: o.dflt.s.n = (int)strtol(optarg, &end, 10); break;
        case O_IGNEOS: o.dflt.s.ignore_eos = true; break;
        case O_NBLK: o.engine.num_blocks = (int)strtol(optarg, &end, 10); break;
        case O_BS: o.engine.block_size = (int)strtol(optarg, &end, 10); break;
        case O_MSEQ: o.engine.max_num_seqs = (int)strtol(optarg, &end, 10); break;
        case O_MBT: o.engine.max_num_batched_tokens = (int)strtol(optarg, &end, 10); break;
        case O_TP: o.engine.tensor_parallel_size = (int)strtol(optarg, &end, 10); break;
        case O_NOPC: o.engine.enable_prefix_caching = false; break;
        case O_BI: o.engine.batch_invariant = true; break;
        case O_IDS: o.ids_out = true; break;
        case O_DUMP: o.dump_logits = optarg; break;
        case 'h': gen_usage(stdout); return 0;
        default:
            switch (pgd_tool_model_option(&o.m, c, optarg)) {
            case 1: break;
            case 0: gen_usage(stderr); return 2;
            default: return 2;
            }
        }
        if (end && (*end || errno || end == optarg)) {
            fprintf(stderr, "pagoda generate: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    int sources = !!o.prompt + !!o.prompt_ids + !!o.prompts_file;
    if (!pgd_tool_model_named(&o.m) || sources != 1 || optind < argc) {
        if ((o.m.name || o.m.random_cfg) && sources != 1)
            fprintf(stderr, "pagoda generate: give exactly one of --prompt-ids, --prompt, "
                            "--prompts-file\n");
        gen_usage(stderr);
        return 2;
    }
    if (o.engine.tensor_parallel_size < 1) {
        fprintf(stderr, "pagoda generate: --tensor-parallel-size %d must be at least 1\n",
                o.engine.tensor_parallel_size);
        return 2;
    }
    /* The engine's registry searches plugin_path first: --plugin-dir, then the build tree's
     * plugins when this binary runs from it (then PAGODA_PLUGIN_PATH and the install dir). */
    int rc = pgd_tool_model_resolve(&o.m, "pagoda generate");
    if (rc)
        return rc;
    pgd_tool_model_engine_params(&o.m, &o.engine);
    return run(&o);
}
