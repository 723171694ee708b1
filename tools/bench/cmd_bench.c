/* pagoda bench latency: decode milliseconds per step at batch 1..B, mixed steps (decodes
 * beside a prompt chunk, as a served step that admits a request) and time to first token
 * at given prompt lengths, through the model runner with fixed block tables (no scheduler),
 * each figure printed beside its physical bound measured in the same run: the bytes a step
 * must read (weights, plus the KV cache it attends over) over the device-to-device copy
 * bandwidth, and the step's FLOPs over the rate of a large GEMM. */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_common.h"
#include "tools/bench/serve/report.h"
#include "runtime/base/clock.h"
#include "tools/tool_model.h"
#include "runtime/runner/runner.h"
#include "runtime/model/model.h"
#include "runtime/sample/sample_rows.h"
#include <pagoda/engine.h>
#include "tools/bench/bench_latency_profile.h"
#include <pagoda/log.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#define MAX_LIST 32

struct bench_opts {
    struct pgd_tool_model m;         /* the model, device, dtype and plugin dirs */
    int batch[MAX_LIST], n_batch;
    int prompt[MAX_LIST], n_prompt;
    /* --mixed D+C,...: a step of D decodes (at --context) beside a C-token prompt chunk */
    int mixed_dec[MAX_LIST], mixed_chunk[MAX_LIST], n_mixed;
    int context, steps, warmup, num_blocks;
    uint64_t seed;
    float temperature;               /* --temperature: 0 decodes greedily, else samples */
    float top_p;                     /* --top-p (1: off) */
    int top_k;                       /* --top-k (0: off) */
    bool profile_ops;                /* --profile-ops: a per-op table after each figure */
};

/* The decode steps' sampling under --temperature T > 0: one SAMPLE row a sequence (top_p 1,
 * no top_k, no penalties by default: what vLLM's latency and throughput benchmarks ask for;
 * --top-p, --top-k as a model's generation_config often sets them), seeded, so that a step
 * costs what a served step of that sampling costs. */
struct decode_sampling {
    struct pgd_sampling_params sp;
    struct pgd__sample_row *rows;    /* owned [max batch] */
    struct pgd__sample_result *res;  /* owned [max batch] */
};

/* One decode step of seqs [B]: greedy (ds NULL) or sampled; the tokens into ids [B]. step
 * numbers the draws (each row's draw index, as a request's output count would). */
static enum pgd_status decode_once(struct pgd__runner *r, struct pgd__step_seq *seqs, int B,
                                   struct decode_sampling *ds, int step, int32_t *ids,
                                   char *err, size_t errlen)
{
    if (!ds)
        return pgd__runner_step_greedy(r, seqs, B, ids, err, errlen);
    for (int s = 0; s < B; s++)
        ds->rows[s] = (struct pgd__sample_row){
            .kind = PGD__ROW_SAMPLE,
            .ctx = { .sp = &ds->sp, .n_out = step, .seed = 0x5eed, .child = (uint32_t)s },
            .n_top = -1,
        };
    enum pgd_status st = pgd__runner_step_sample(r, seqs, B, ds->rows, ds->res, err, errlen);
    for (int s = 0; st == PGD_OK && s < B; s++)
        ids[s] = ds->res[s].token;
    return st;
}

/* Profiled steps after each figure (the first of them untimed). */
static int profile_steps(const struct bench_opts *o)
{
    return o->profile_ops ? 1 + (o->steps < 10 ? o->steps : 10) : 0;
}

/* --mixed "D+C,D+C": up to MAX_LIST pairs of positive numbers; the message on stderr. */
static int parse_mixed(const char *s, struct bench_opts *o)
{
    o->n_mixed = 0;
    while (*s) {
        char *end;
        long dn = strtol(s, &end, 10), cn = 0;
        bool ok = end != s && *end == '+' && dn > 0 && dn <= 1 << 16;
        if (ok) {
            const char *c = end + 1;
            cn = strtol(c, &end, 10);
            ok = end != c && cn > 0 && cn <= 1 << 20 && (*end == ',' || !*end) &&
                 o->n_mixed < MAX_LIST;
        }
        if (!ok) {
            fprintf(stderr, "pagoda bench: --mixed: '%s' is not a list of D+C (decodes, chunk "
                    "tokens; at most %d)\n", s, MAX_LIST);
            return -1;
        }
        o->mixed_dec[o->n_mixed] = (int)dn;
        o->mixed_chunk[o->n_mixed++] = (int)cn;
        s = *end ? end + 1 : end;
    }
    return 0;
}

/* A mixed step's timed repetitions (the median is reported), after one untimed. */
#define MIXED_REPS 5

/* What the sections of a run share: the runner, the model's sizes and the device's
 * ceilings, and the buffers (tokens, block table, sequences, output ids). */
struct lat_run {
    struct pgd__runner *r;
    const struct pgd_model_desc *d;
    int32_t *tokens, *table, *ids;
    struct pgd__step_seq *seqs;      /* [max(max batch, max mixed decodes + 1)] */
    int per_seq;                     /* blocks a decoding sequence holds */
    int chunk_block;                 /* the first block of a mixed step's prompt chunk */
    int bs;                          /* tokens a block */
    double wbytes, body, head, kv_tok, gbps, tflops;
};

/* --mixed: for each D+C, D sequences prefilled to --context decode one token each beside
 * one new sequence's first C prompt tokens (its last row sampled, as a short prompt
 * finishing in the step), the step repeated and its median time printed beside its bound;
 * with --profile-ops a per-op table of the same step. */
static int mixed_steps(const struct bench_opts *o, struct lat_run *L, char *err, size_t errlen)
{
    printf("\nmixed steps (D sequences decoding at %d tokens of context beside a C-token "
           "prompt chunk; the median of %d):\n", o->context, MIXED_REPS);
    for (int mi = 0; mi < o->n_mixed; mi++) {
        const int D = o->mixed_dec[mi], C = o->mixed_chunk[mi];
        if (mi == 0 || o->profile_ops)
            printf("%8s %8s %10s %12s %10s %9s\n", "decodes", "chunk", "ms", "bound ms",
                   "bound by", "% bound");
        for (int s = 0; s < D; s++)
            L->seqs[s] = (struct pgd__step_seq){ .tokens = L->tokens + (size_t)s * o->context,
                                                 .n_new = o->context,
                                                 .block_table = L->table + (size_t)s * L->per_seq,
                                                 .n_blocks = L->per_seq, .n_logits = 1 };
        if (pgd__runner_step_greedy(L->r, L->seqs, D, L->ids, err, errlen))
            return -1;
        L->seqs[D] = (struct pgd__step_seq){ .tokens = L->tokens, .n_new = C,
                                             .block_table = L->table + L->chunk_block,
                                             .n_blocks = (C + L->bs - 1) / L->bs,
                                             .n_logits = 1 };
        double t[MIXED_REPS];
        for (int rep = -1; rep < MIXED_REPS; rep++) {
            for (int s = 0; s < D; s++) {
                L->seqs[s].n_computed = o->context + rep + 1;
                L->seqs[s].n_new = 1;
                L->seqs[s].tokens = L->ids + s;    /* feed back the token */
            }
            double t0 = 1e3 * pgd__now_s();
            if (pgd__runner_step_greedy(L->r, L->seqs, D + 1, L->ids, err, errlen))
                return -1;
            if (rep >= 0)
                t[rep] = 1e3 * pgd__now_s() - t0;
        }
        bs_sort(t, MIXED_REPS);
        const double ctx = o->context + MIXED_REPS / 2.0, n_layers = L->d->n_layers;
        double flops = 2.0 * (D + C) * L->body + 2.0 * (D + 1) * L->head +
                       4.0 * n_layers * L->d->hidden_size * (D * ctx + C * (C + 1) / 2.0);
        double t_fl = L->tflops > 0 ? flops / (L->tflops * 1e12) * 1e3 : 0;
        double t_bw = L->gbps > 0 ? (L->wbytes + (D * ctx + C) * L->kv_tok) / (L->gbps * 1e9) * 1e3
                                  : 0;
        double bound = t_bw > t_fl ? t_bw : t_fl;
        printf("%8d %8d %10.2f %12.3f %10s %8.1f%%\n", D, C, t[MIXED_REPS / 2], bound,
               bound <= 0 ? "-" : (t_bw > t_fl ? "bytes" : "flops"),
               bound > 0 ? 100.0 * bound / t[MIXED_REPS / 2] : 0.0);
        if (o->profile_ops) {
            printf("\n%d decodes beside a %d-token chunk:\n", D, C);
            if (pgd_bench_profile_steps(L->r, L->seqs, D + 1, L->ids, profile_steps(o),
                                        L->gbps, L->tflops, stdout, err, errlen))
                return -1;
            printf("\n");
        }
        fflush(stdout);
    }
    return 0;
}

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda bench latency (--model DIR | --random-weights CONFIG) [options]\n"
            "       pagoda bench latency --input-len N --output-len N --batch-size N ...\n"
            "                                        (vLLM's form: a batch end to end;\n"
            "                                        `--input-len 1 --help` lists its options)\n"
            "       pagoda bench throughput --help   (requests through the engine)\n"
            "       pagoda bench scheduler --help    (the scheduler against a step-cost model)\n"
            "       pagoda bench gemv [--batch LIST] (the decode GEMV kernels alone)\n"
            "       pagoda bench gemm [--batch LIST] (bf16 linears: cuBLASLt beside our wgmma kernel)\n"
            "       pagoda bench quant [--batch LIST] (the quantized linears alone)\n"
            "       pagoda bench attention [--path LIST] (the attention kernels alone)\n"
            "       pagoda bench spec --help     (speculative decoding at batch 1)\n"
            "       pagoda bench serve --help    (a client against a running server)\n"
            "       pagoda bench grammar --tokenizer DIR (structured output's per-step mask)\n"
            "       mpirun -np N pagoda bench allreduce --help (tensor parallelism's all-reduce)\n\n"
            "  --model DIR|ORG/NAME     a Hugging Face model directory, hub id or catalog name\n"
            "  --revision REV, --download-dir DIR   for a hub id: the branch, tag or commit,\n"
            "                           and the cache root (default HF_HUB_CACHE)\n"
            "  --random-weights CONFIG  a config.json (or its directory): random weights made\n"
            "                           on the device, no checkpoint read\n"
            "  --batch LIST             decode batch sizes (default 1,2,4,8,16,32)\n"
            "  --prompt-len LIST        prompt lengths for time to first token (default 128,512,2048)\n"
            "  --context N              tokens in each sequence's cache while decoding (default 128)\n"
            "  --mixed D+C,...          mixed steps: D sequences decoding beside a C-token\n"
            "                           prompt chunk (a served step that admits a request;\n"
            "                           e.g. 100+300); default none\n"
            "  --steps N                timed decode steps per batch size (default 32)\n"
            "  --temperature T          decode by sampling at temperature T (top_p 1, as vLLM's\n"
            "                           benchmarks); default 0: greedy\n"
            "  --top-p P, --top-k K     with --temperature: nucleus and top-k sampling (default\n"
            "                           1 and 0: off)\n"
            "  --warmup N               untimed steps first (default 3)\n"
            "  --num-blocks N           KV blocks (default: sized from GPU memory)\n"
            "  --device auto|cpu|cuda|cuda:N  default auto: cuda when available\n"
            "  --dtype auto|bfloat16|float16  GPU compute dtype (default: the config's)\n"
            "  --quantization METHOD    gptq, awq or fp8 (default: the checkpoint's)\n"
            "  --kv-cache-dtype DTYPE   auto or fp8 (e4m3 KV cache; default auto)\n"
            "  --seed S                 random weights' seed (default 0)\n"
            "  --profile-ops            after each figure, a per-op table of eager steps: calls,\n"
            "                           GPU time, share of the step, FLOPs and bytes beside the\n"
            "                           ceilings (CUDA events around each op)\n"
            "  --plugin-dir DIR         also look for plugins in DIR (repeatable)\n");
}

/* --batch, --prompt-len: up to MAX_LIST positive numbers; the message on stderr. */
static int parse_list(const char *flag, const char *s, int *v, int *n)
{
    char err[512];
    if (pgd_tool_bench_int_list(flag, s, 1, 1 << 24, v, MAX_LIST, n, err, sizeof err)) {
        fprintf(stderr, "pagoda bench: %s\n", err);
        return -1;
    }
    return 0;
}

/* The device's ceilings: copy bandwidth (GB/s, read + write) and GEMM rate (TFLOP/s). */
int pgd_tool_bench_ceilings(enum pgd_device dev, enum pgd_dtype dt, double *gbps, double *tflops,
                            char *desc, size_t desclen)
{
    *gbps = *tflops = 0;
    snprintf(desc, desclen, "cpu");
#ifdef PGD_HAVE_CUDA
    if (dev == PGD_DEVICE_CUDA) {
        char err[512];
        struct pgd_cuda_ctx *c = NULL;
        pgd_cuda_describe(0, desc, desclen);
        if (pgd_cuda_ctx_create(&c, err, sizeof err) ||
            pgd_cuda_bench_copy(c, (size_t)1 << 30, 20, gbps, err, sizeof err) ||
            pgd_cuda_bench_gemm(c, dt, 8192, 8192, 8192, 10, tflops, err, sizeof err)) {
            fprintf(stderr, "pagoda bench: %s\n", err);
            pgd_cuda_ctx_destroy(c);
            return -1;
        }
        pgd_cuda_ctx_destroy(c);
    }
#endif
    return 0;
}

static int run(const struct bench_opts *o)
{
    char err[1024] = "";
    struct pgd_registry *reg = NULL;
    struct pgd__runner *r = NULL;
    int32_t *tokens = NULL, *table = NULL, *ids = NULL;
    struct pgd__step_seq *seqs = NULL;
    struct decode_sampling samp = { .sp = pgd_sampling_default_params() }, *ds = NULL;
    int rc = 1;
    int max_b = 1, max_p = 1, max_step = 1, max_c = 0;
    for (int i = 0; i < o->n_batch; i++)
        max_b = o->batch[i] > max_b ? o->batch[i] : max_b;
    for (int i = 0; i < o->n_mixed; i++) {
        max_b = o->mixed_dec[i] > max_b ? o->mixed_dec[i] : max_b;
        max_c = o->mixed_chunk[i] > max_c ? o->mixed_chunk[i] : max_c;
        int n = o->mixed_dec[i] + o->mixed_chunk[i];
        max_step = n > max_step ? n : max_step;
    }
    for (int i = 0; i < o->n_prompt; i++)
        max_p = o->prompt[i] > max_p ? o->prompt[i] : max_p;
    if (max_c > max_p)
        max_p = max_c;

    enum pgd_dtype gemm_dt = o->m.dtype == PGD_DTYPE_COUNT ? PGD_DTYPE_BF16 : o->m.dtype;
    double gbps, tflops;
    char desc[256];
    if (pgd_tool_bench_ceilings(o->m.device, gemm_dt, &gbps, &tflops, desc, sizeof desc))
        return 1;
    if (pgd_tool_registry(pgd_tool_model_plugin_dirs(&o->m), &reg, err, sizeof err))
        goto out;

    int ahead = o->warmup + o->steps > MIXED_REPS ? o->warmup + o->steps : MIXED_REPS;
    int decode_len = o->context + ahead + profile_steps(o) + 1;
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    pgd_tool_model_runner_params(&o->m, reg, &p);
    p.seed = o->seed;
    p.max_num_seqs = o->n_mixed ? max_b + 1 : max_b;      /* a mixed step's chunk: one more */
    p.max_num_batched_tokens = max_p > max_b * o->context ? max_p : max_b * o->context;
    if (p.max_num_batched_tokens < max_step)
        p.max_num_batched_tokens = max_step;
    if (p.max_num_batched_tokens < max_b)
        p.max_num_batched_tokens = max_b;
    int bs = p.block_size;
    /* Blocks: every decoding sequence's, then a mixed step's chunk after them. */
    int per_seq = (decode_len + bs - 1) / bs, chunk_block = max_b * per_seq;
    int need = chunk_block + (max_c + bs - 1) / bs;
    if ((max_p + bs - 1) / bs > need)
        need = (max_p + bs - 1) / bs;
    p.num_blocks = o->num_blocks > 0 ? o->num_blocks : (o->m.device == PGD_DEVICE_CPU ? need : 0);
    if (pgd__runner_create(&p, &r, err, sizeof err))
        goto out;
    if (pgd__runner_num_blocks(r) < need) {
        snprintf(err, sizeof err, "the benchmark needs %d KV blocks, the cache has %d", need,
                 pgd__runner_num_blocks(r));
        goto out;
    }
    const struct pgd_model_desc *d = pgd__runner_desc(r);
    const struct pgd__model *m = pgd__runner_model(r);
    size_t esz = pgd_dtype_size(m->dtype);
    double wbytes = (double)m->weight_bytes;
    /* Matrix parameters a token goes through: all weights but the embedding table and the
     * head (counted once per logits row). */
    double head = (double)d->vocab_size * d->hidden_size;
    double body = wbytes / esz - 2 * head;
    if (body < 0)
        body = wbytes / esz;
    double kv_tok = 2.0 * d->n_layers * d->n_kv_heads * d->head_dim * esz;  /* bytes a token */
    printf("device: %s\n", desc);
    if (gbps > 0)
        printf("ceilings: device-to-device copy %.0f GB/s (read + write), %s GEMM 8192^3 "
               "%.0f TFLOP/s\n", gbps, pgd_dtype_name(gemm_dt), tflops);
    printf("model: %s%s, %d layers, hidden %d, vocab %d, %s, %.2f GB of weights\n", o->m.dir,
           o->m.random ? " (random weights)" : "", d->n_layers, d->hidden_size, d->vocab_size,
           pgd_dtype_name(m->dtype), wbytes / 1e9);

    size_t tok_cap = (size_t)(max_p > max_b * o->context ? max_p : max_b * o->context) + 64;
    tokens = malloc(tok_cap * sizeof *tokens);
    table = malloc((size_t)(need + 1) * sizeof *table);
    seqs = calloc((size_t)max_b + 1, sizeof *seqs);
    ids = malloc((size_t)(max_b + 1 > max_p ? max_b + 1 : max_p) * sizeof *ids);
    if (o->temperature > 0) {
        samp.sp.temperature = o->temperature;
        samp.sp.top_p = o->top_p;
        samp.sp.top_k = o->top_k;
        samp.sp.ignore_eos = true;
        samp.rows = calloc((size_t)max_b, sizeof *samp.rows);
        samp.res = calloc((size_t)max_b, sizeof *samp.res);
        ds = &samp;
    }
    if (!tokens || !table || !seqs || !ids || (ds && (!samp.rows || !samp.res))) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < tok_cap; i++)
        tokens[i] = (int32_t)((i * 2654435761u + 17) % (unsigned)d->vocab_size);
    for (int b = 0; b <= need; b++)
        table[b] = b;

    /* ---- decode ---- */
    if (ds)
        printf("\ndecode, %d tokens of context, %d timed steps (sampled at temperature %g, "
               "top_p %g, top_k %d):\n", o->context, o->steps, o->temperature, o->top_p,
               o->top_k);
    else
        printf("\ndecode, %d tokens of context, %d timed steps (greedy on the device):\n",
               o->context, o->steps);
    printf("%6s %10s %10s %12s %10s %9s\n", "batch", "ms/step", "tok/s", "bound ms", "bound by",
           "% bound");
    for (int bi = 0; bi < o->n_batch; bi++) {
        int B = o->batch[bi];
        if (o->profile_ops && bi > 0)     /* the table's header again after a profile */
            printf("%6s %10s %10s %12s %10s %9s\n", "batch", "ms/step", "tok/s", "bound ms",
                   "bound by", "% bound");
        /* Prefill each sequence's context (B at a time within the token budget). */
        for (int s = 0; s < B; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = tokens + (size_t)s * o->context,
                                              .n_new = o->context, .n_computed = 0,
                                              .block_table = table + (size_t)s * per_seq,
                                              .n_blocks = per_seq, .n_logits = 1 };
        if (pgd__runner_step_greedy(r, seqs, B, ids, err, sizeof err))
            goto out;
        double t0 = 0;
        for (int step = 0; step < o->warmup + o->steps; step++) {
            if (step == o->warmup)
                t0 = 1e3 * pgd__now_s();
            for (int s = 0; s < B; s++) {
                seqs[s].n_computed = o->context + step;
                seqs[s].n_new = 1;
                seqs[s].tokens = ids + s;       /* feed back the token */
            }
            if (decode_once(r, seqs, B, ds, step, ids, err, sizeof err))
                goto out;
        }
        double ms = (1e3 * pgd__now_s() - t0) / o->steps;
        double ctx = o->context + o->warmup + o->steps / 2.0;
        double bytes = wbytes + B * ctx * kv_tok;
        double t_bw = gbps > 0 ? bytes / (gbps * 1e9) * 1e3 : 0;
        double flops = 2.0 * B * (body + head) + 4.0 * B * ctx * d->n_layers * d->hidden_size;
        double t_fl = tflops > 0 ? flops / (tflops * 1e12) * 1e3 : 0;
        double bound = t_bw > t_fl ? t_bw : t_fl;
        printf("%6d %10.3f %10.1f %12.3f %10s %8.1f%%\n", B, ms, B * 1e3 / ms, bound,
               bound <= 0 ? "-" : (t_bw > t_fl ? "bytes" : "flops"),
               bound > 0 ? 100.0 * bound / ms : 0.0);
        if (o->profile_ops) {
            printf("\nbatch %d, eager decode steps:\n", B);
            for (int s = 0; s < B; s++)
                seqs[s].n_computed = o->context + o->warmup + o->steps;
            if (pgd_bench_profile_decode(r, seqs, B, ids, profile_steps(o), gbps, tflops,
                                         stdout, err, sizeof err))
                goto out;
            printf("\n");
        }
        fflush(stdout);
    }

    /* ---- mixed steps ---- */
    struct lat_run L = { .r = r, .d = d, .tokens = tokens, .table = table, .ids = ids,
                         .seqs = seqs, .per_seq = per_seq, .chunk_block = chunk_block, .bs = bs,
                         .wbytes = wbytes, .body = body, .head = head, .kv_tok = kv_tok,
                         .gbps = gbps, .tflops = tflops };
    if (o->n_mixed > 0 && mixed_steps(o, &L, err, sizeof err))
        goto out;

    /* ---- time to first token ---- */
    printf("\ntime to first token (one sequence, whole prompt in one step):\n");
    printf("%8s %10s %12s %10s %9s\n", "prompt", "ms", "bound ms", "bound by", "% bound");
    for (int pi = 0; pi < o->n_prompt; pi++) {
        int L = o->prompt[pi];
        if (o->profile_ops && pi > 0)
            printf("%8s %10s %12s %10s %9s\n", "prompt", "ms", "bound ms", "bound by",
                   "% bound");
        double t[5];
        int reps = 5;
        for (int rep = -1; rep < reps; rep++) {
            struct pgd__step_seq s = { .tokens = tokens, .n_new = L, .n_computed = 0,
                                       .block_table = table, .n_blocks = (L + bs - 1) / bs,
                                       .n_logits = 1 };
            double t0 = 1e3 * pgd__now_s();
            if (pgd__runner_step_greedy(r, &s, 1, ids, err, sizeof err))
                goto out;
            if (rep >= 0)
                t[rep] = 1e3 * pgd__now_s() - t0;
        }
        bs_sort(t, reps);
        double flops = 2.0 * L * body + 2.0 * head +
                       2.0 * (double)L * L * d->n_layers * d->hidden_size;  /* causal QK + PV */
        double t_fl = tflops > 0 ? flops / (tflops * 1e12) * 1e3 : 0;
        double t_bw = gbps > 0 ? (wbytes + L * kv_tok) / (gbps * 1e9) * 1e3 : 0;
        double bound = t_bw > t_fl ? t_bw : t_fl;
        printf("%8d %10.2f %12.3f %10s %8.1f%%\n", L, t[reps / 2], bound,
               bound <= 0 ? "-" : (t_bw > t_fl ? "bytes" : "flops"),
               bound > 0 ? 100.0 * bound / t[reps / 2] : 0.0);
        if (o->profile_ops) {
            struct pgd__step_seq s = { .tokens = tokens, .n_new = L, .n_computed = 0,
                                       .block_table = table, .n_blocks = (L + bs - 1) / bs,
                                       .n_logits = 1 };
            printf("\nprefill of %d tokens:\n", L);
            if (pgd_bench_profile_steps(r, &s, 1, ids, 3, gbps, tflops, stdout, err, sizeof err))
                goto out;
            printf("\n");
        }
        fflush(stdout);
    }
    pgd_bench_print_gemm_tunings(r, stdout);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda bench: %s\n", err);
    free(tokens);
    free(table);
    free(seqs);
    free(ids);
    free(samp.rows);
    free(samp.res);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
    return rc;
}

int pgd_cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "throughput"))
        return pgd_cmd_bench_throughput(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "scheduler"))
        return pgd_cmd_bench_scheduler(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "gemv"))
        return pgd_cmd_bench_gemv(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "gemm"))
        return pgd_cmd_bench_gemm(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "quant"))
        return pgd_cmd_bench_quant(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "attention"))
        return pgd_cmd_bench_attention(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "spec"))
        return pgd_cmd_bench_spec(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return pgd_cmd_bench_serve(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "grammar"))
        return pgd_cmd_bench_grammar(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "allreduce"))
        return pgd_cmd_bench_allreduce(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "latency")) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            bench_usage(stdout);
            return 0;
        }
        bench_usage(stderr);
        return 2;
    }
    argc--;
    argv++;
    if (pgd_bench_latency_is_e2e(argc, argv))
        return pgd_cmd_bench_latency_e2e(argc, argv);
    static const struct option long_opts[] = {
        PGD_TOOL_MODEL_OPTIONS, PGD_TOOL_RANDOM_WEIGHTS_OPTION,
        { "batch", required_argument, 0, 'b' }, { "prompt-len", required_argument, 0, 'p' },
        { "context", required_argument, 0, 'c' }, { "steps", required_argument, 0, 's' },
        { "warmup", required_argument, 0, 'w' }, { "num-blocks", required_argument, 0, 'N' },
        { "seed", required_argument, 0, 'S' }, { "profile-ops", no_argument, 0, 'P' },
        { "temperature", required_argument, 0, 'T' }, { "top-p", required_argument, 0, 'U' },
        { "top-k", required_argument, 0, 'K' }, { "mixed", required_argument, 0, 'M' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    struct bench_opts o = { .context = 128, .steps = 32, .warmup = 3, .top_p = 1.0f };
    pgd_tool_model_init(&o.m);
    static const int BATCH[] = { 1, 2, 4, 8, 16, 32 }, PROMPT[] = { 128, 512, 2048 };
    memcpy(o.batch, BATCH, sizeof BATCH);
    o.n_batch = (int)(sizeof BATCH / sizeof BATCH[0]);
    memcpy(o.prompt, PROMPT, sizeof PROMPT);
    o.n_prompt = (int)(sizeof PROMPT / sizeof PROMPT[0]);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'b': if (parse_list("--batch", optarg, o.batch, &o.n_batch)) return 2; break;
        case 'p': if (parse_list("--prompt-len", optarg, o.prompt, &o.n_prompt)) return 2; break;
        case 'c': o.context = (int)strtol(optarg, &end, 10); break;
        case 's': o.steps = (int)strtol(optarg, &end, 10); break;
        case 'w': o.warmup = (int)strtol(optarg, &end, 10); break;
        case 'N': o.num_blocks = (int)strtol(optarg, &end, 10); break;
        case 'S': o.seed = strtoull(optarg, &end, 10); break;
        case 'P': o.profile_ops = true; break;
        case 'T': o.temperature = strtof(optarg, &end); break;
        case 'U': o.top_p = strtof(optarg, &end); break;
        case 'K': o.top_k = (int)strtol(optarg, &end, 10); break;
        case 'M': if (parse_mixed(optarg, &o)) return 2; break;
        case 'h': bench_usage(stdout); return 0;
        default:
            switch (pgd_tool_model_option(&o.m, c, optarg)) {
            case 1: break;
            case 0: bench_usage(stderr); return 2;
            default: return 2;
            }
        }
        if (end && *end) {
            fprintf(stderr, "pagoda bench: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (!pgd_tool_model_named(&o.m) || optind < argc || o.context <= 0 || o.steps <= 0 ||
        o.warmup < 0 || !(o.temperature >= 0) || !(o.top_p > 0 && o.top_p <= 1) || o.top_k < 0) {
        bench_usage(stderr);
        return 2;
    }
    int rc = pgd_tool_model_resolve(&o.m, "pagoda bench");
    return rc ? rc : run(&o);
}
