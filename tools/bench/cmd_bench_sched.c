/* `pagoda bench scheduler`: the real scheduler and KV manager (runtime/engine/scheduler.c,
 * runtime/kv/) run on the CPU against a step-cost model instead of a model, so that
 * scheduling policies can be compared on the GPU's workloads in seconds, deterministically.
 *
 * The workload is `pagoda bench throughput`'s (the same lengths for the same seed): N
 * requests of random prompt ids submitted at once, each generating exactly its output
 * length. Each step the scheduler plans is "run": every sequence that catches up gets one
 * more token (a hash of its id and length), and one that reached its length finishes.
 *
 * The step-cost model (a dense decoder of the given shape, bf16 weights and KV):
 *   time = max(weight bytes / bandwidth, FLOPs / GEMM rate) + KV bytes read / bandwidth
 * where FLOPs = 2 x matrix parameters x tokens (the head only for rows that sample) +
 * 4 x hidden x layers x (query, key) pairs, and every sequence reads its whole context's
 * K and V once. --weight-dtype fp8 (issue 18's W8A8): the layers' weights are a byte each
 * and their FLOPs go at the FP8 rate (--fp8-tflops, default twice the bf16 rate: Hopper's
 * FP8 tensor cores), the embedding and LM head stay bf16; --kv-cache-dtype fp8: K and V a
 * byte an element. Either grows the default KV blocks by the memory it frees. A decode-only
 * step runs as a CUDA graph of the padded batch (the default ladder of
 * runtime/runner/runner_graph.h), so its FLOPs are the padded batch's. Defaults: the
 * Llama-3-8B shape and the H200 ceilings `pagoda bench throughput` measured (4,198 GB/s,
 * 785 TFLOP/s). The
 * modelled time ignores the host and kernel inefficiency: compare policies with it, not
 * engines.
 *
 * Each policy is a (headroom_steps, preempt_cheapest) pair of struct pgd__sched_params:
 * "vllm" is (0, false), vLLM v1's rule; --headroom-steps LIST adds one policy per entry
 * with preempt_cheapest on; the default list is the engine's default alone.
 *
 * Each policy runs in every preemption mode of --preemption-mode LIST (default recompute,
 * swap, auto), with a host swap pool of --swap-space GiB in blocks of the shape's KV. A
 * plan's swap copies cost their bytes over the host link (--host-gbps, default 25 GB/s:
 * half of PCIe Gen5 x16, for copies of one block of one layer, 32 KiB for Llama-3-8B),
 * added to the step: the GPU's next step waits for them.
 *
 * Served latency: the requests arrive as `pagoda bench serve` sends them (--request-rate,
 * --burstiness; all at once by default), each joining the scheduler once the modelled clock
 * has passed its arrival, and the clock jumps to the next arrival when nothing runs. A
 * token is out when its step ends. Each policy's second line gives the modelled TTFT and
 * TPOT (median and p99, as vLLM's benchmark counts them) and requests/s, so that policies
 * (--max-num-batched-tokens, --long-prefill-token-threshold) can be compared for served
 * latency: the model still counts no host time, no launch gaps and no kernel below its
 * bound, so its times are lower bounds of a real engine's. */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_draw.h"
#include "tools/bench/bench_workload.h"
#include "tools/bench/serve/report.h"
#include "runtime/engine/scheduler.h"
#include "runtime/runner/runner_graph.h"
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX_POLICIES 16

/* The CUDA graphs' batch ladder a decode-only step is padded to: the runner's default, the
 * powers of two (the default before 2026-12-03), or none (its own batch). */
enum sim_ladder { LADDER_DEFAULT, LADDER_POW2, LADDER_NONE };

#define SIM_MAX_MODES 3

struct sim_opts {
    struct pgd_tool_workload w;     /* bench throughput's requests and lengths */
    int max_num_seqs, max_num_batched_tokens, num_blocks, block_size;
    int long_prefill_token_threshold;
    bool prefix_caching;
    double request_rate, burstiness;   /* arrivals (inf: all at once) */
    enum sim_ladder ladder;         /* what a decode-only step's batch is padded to */
    /* The model's shape and the device's ceilings. */
    int layers, hidden, intermediate, heads, kv_heads, vocab;
    double gbps, tflops;
    bool weights_fp8, kv_fp8;          /* --weight-dtype fp8, --kv-cache-dtype fp8 */
    double fp8_tflops;                 /* 0: twice tflops */
    bool num_blocks_given;             /* else derived from the H200's for the 8B in bf16 */
    int headroom[SIM_MAX_POLICIES], n_headroom;
    /* Preemption by swapping: the modes to run, the host pool, the link, auto's minimum. */
    enum pgd_preemption_mode modes[SIM_MAX_MODES];
    int n_modes;
    double swap_gib, host_gbps;
    int swap_min_tokens;
};

/* The cost model's constants, from the shape. */
struct sim_cost {
    double body, head;              /* matrix parameters: layers, the LM head */
    double weight_bytes, kv_bytes_tok, attn_flops_pair;
    double gbps, tflops, host_gbps;
    double body_tflops;             /* the layers' GEMM rate (FP8's with FP8 weights) */
    enum sim_ladder ladder;
    int max_seqs;
};

struct sim_result {
    unsigned long long steps, decode_only, preemptions, recomputed, prompt_computed, generated;
    unsigned long long swapped_out, swapped_in, blocks_swapped;   /* blocks: both ways */
    double t_weights, t_flops, t_kv, t_swap, time_s;    /* modelled seconds; time_s is their
                                                           step sum */
    int max_running;
    /* Served latency, modelled seconds: TTFT and TPOT median and p99, the last token's
     * time (from the first arrival at 0). */
    double ttft_p50, ttft_p99, tpot_p50, tpot_p99, end_s;
    double t_decode_only;               /* of time_s, the decode-only steps' */
};

/* The modelled clock and each request's times (indexed by its sequence id). */
struct sim_clock {
    double now;
    double *arrive, *first, *last;     /* [n] seconds; first < 0: no token yet */
    int *generated;                    /* [n] tokens out */
};

static struct sim_cost cost_of(const struct sim_opts *o)
{
    double hd = (double)o->hidden / o->heads, kvd = hd * o->kv_heads, h = o->hidden;
    struct sim_cost c = { .gbps = o->gbps * 1e9, .tflops = o->tflops * 1e12,
                          .host_gbps = o->host_gbps * 1e9, .ladder = o->ladder };
    c.body_tflops = !o->weights_fp8 ? c.tflops
                    : o->fp8_tflops > 0 ? o->fp8_tflops * 1e12 : 2 * c.tflops;
    /* The graphs' largest batch (runner_graph.c): one token a sequence must fit a step. */
    c.max_seqs = o->max_num_seqs < o->max_num_batched_tokens ? o->max_num_seqs
                                                              : o->max_num_batched_tokens;
    c.body = o->layers * (h * (h + 2 * kvd) + h * h + 3.0 * h * o->intermediate);
    c.head = (double)o->vocab * h;
    /* the layers' weights, the embedding and head in bf16 */
    c.weight_bytes = (o->weights_fp8 ? 1.0 : 2.0) * c.body + 2.0 * 2 * c.head;
    c.kv_bytes_tok = 2.0 * o->layers * kvd * (o->kv_fp8 ? 1 : 2);
    c.attn_flops_pair = 4.0 * h * o->layers;
    return c;
}

/* The default KV blocks: the H200's for the Llama-3-8B shape in bf16 (55,073 of 16 tokens,
 * as its runner sizes them), grown by the bytes FP8 weights free, in blocks of this KV. */
static int default_blocks(const struct sim_opts *o)
{
    struct sim_opts bf16 = *o;
    bf16.weights_fp8 = bf16.kv_fp8 = false;
    const struct sim_cost c16 = cost_of(&bf16), c = cost_of(o);
    const double kv = 55073.0 * 16 * c16.kv_bytes_tok + c16.weight_bytes - c.weight_bytes;
    return (int)(kv / ((double)o->block_size * c.kv_bytes_tok));
}

/* The padded batch a decode-only step of n sequences runs as (see enum sim_ladder; the
 * default is runtime/runner/runner_graph.h's, up to max_seqs). */
static int padded_batch(const struct sim_cost *c, int n)
{
    int sizes[64], k = 0;
    if (c->ladder == LADDER_DEFAULT) {
        k = pgd__graphs_default_ladder(c->max_seqs, sizes, 64);
    } else if (c->ladder == LADDER_POW2) {
        for (int b = 1; b < c->max_seqs && k < 63; b *= 2)
            sizes[k++] = b;
        sizes[k++] = c->max_seqs;
    }
    for (int i = 0; i < k; i++)
        if (sizes[i] >= n)
            return sizes[i];
    return n;
}

/* The modelled time of plan o (before the scheduler's update: n_computed is where each
 * sequence starts), added to r's sums; returns it. */
static double step_cost(const struct sim_cost *c, const struct pgd__sched_out *o, int bs,
                        struct sim_result *r)
{
    double tokens = o->n_tokens, rows = 0, pairs = 0, kv = 0;
    for (int i = 0; i < o->n; i++) {
        const struct pgd__seq *q = o->seqs[i];
        double n = o->n_new[i], from = q->n_computed;
        rows += q->n_computed + o->n_new[i] == q->n_tokens;
        pairs += n * from + n * (n + 1) / 2;
        kv += from + n;
    }
    if (o->decode_only)
        tokens = rows = padded_batch(c, o->n);
    double tw = c->weight_bytes / c->gbps, tk = kv * c->kv_bytes_tok / c->gbps;
    double tf = 2 * c->body * tokens / c->body_tflops +
                (2 * c->head * rows + c->attn_flops_pair * pairs) / c->tflops;
    if (tw > tf)
        r->t_weights += tw;
    else
        r->t_flops += tf;
    r->t_kv += tk;
    /* The plan's swap copies, over the host link, before the step. */
    double ts = (o->swap_out.n + o->swap_in.n) * c->kv_bytes_tok * bs / c->host_gbps;
    r->t_swap += ts;
    const double t = (tw > tf ? tw : tf) + tk + ts;
    r->time_s += t;
    return t;
}

/* A generated token: any id, the same for the same sequence and length. */
static int32_t sim_token(const struct pgd__seq *q, int vocab)
{
    uint64_t x = q->id * 0x9E3779B97F4A7C15ULL + (uint64_t)q->n_tokens;
    return (int32_t)(pgd_tool_splitmix(&x) % (uint64_t)vocab);
}

/* One step: plan, cost (the clock moves on by it), update; caught-up sequences sample at
 * the step's end, those at their length finish (the plan's entries stay valid: finishing
 * only takes them off the queues). False when the scheduler planned nothing with work
 * left. */
static bool sim_step(const struct sim_opts *o, const struct sim_cost *c,
                     struct pgd__scheduler *sched, struct sim_result *r, struct sim_clock *ck,
                     char *err, size_t errlen)
{
    const struct pgd__sched_out *p = pgd__scheduler_schedule(sched);
    if (p->n == 0) {
        snprintf(err, errlen, "the scheduler planned nothing with %d waiting, %d running after "
                 "%llu steps", sched->n_waiting, sched->n_running, r->steps);
        return false;
    }
    r->steps++;
    r->decode_only += p->decode_only;
    r->max_running = sched->n_running > r->max_running ? sched->n_running : r->max_running;
    for (int i = 0; i < p->n; i++) {
        const struct pgd__seq *q = p->seqs[i];
        int end = q->n_computed + p->n_new[i];
        if (q->n_computed < q->n_prompt)
            r->prompt_computed +=
                (unsigned long long)((end < q->n_prompt ? end : q->n_prompt) - q->n_computed);
    }
    const double t = step_cost(c, p, o->block_size, r);
    ck->now += t;
    if (p->decode_only)
        r->t_decode_only += t;
    r->blocks_swapped += (unsigned long long)(p->swap_out.n + p->swap_in.n);
    pgd__scheduler_update(sched, p);
    for (int i = 0; i < p->n; i++) {
        struct pgd__seq *q = p->seqs[i];
        if (q->n_computed != q->n_tokens)
            continue;
        pgd__seq_append(q, sim_token(q, o->vocab));
        r->generated++;
        if (ck->first[q->id] < 0)
            ck->first[q->id] = ck->now;
        ck->last[q->id] = ck->now;
        ck->generated[q->id]++;
        if (q->n_tokens == q->tokens_cap)
            pgd__scheduler_finish(sched, q);
    }
    return true;
}

/* r's served latency from the clock of a finished run of n requests: TTFT from arrival to
 * the first token, TPOT (last - first) / (tokens - 1) over the requests of more than one
 * token, as vLLM's benchmark counts them. */
static bool latency_stats(const struct sim_clock *ck, int n, struct sim_result *r, char *err,
                          size_t errlen)
{
    const size_t nz = n > 0 ? (size_t)n : 1;
    double *ttft = malloc(nz * sizeof *ttft), *tpot = malloc(nz * sizeof *tpot);
    if (!ttft || !tpot) {
        free(ttft);
        free(tpot);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    int n_tpot = 0;
    r->end_s = 0;
    for (int i = 0; i < n; i++) {
        ttft[i] = ck->first[i] - ck->arrive[i];
        if (ck->generated[i] > 1)
            tpot[n_tpot++] = (ck->last[i] - ck->first[i]) / (ck->generated[i] - 1);
        r->end_s = ck->last[i] > r->end_s ? ck->last[i] : r->end_s;
    }
    bs_sort(ttft, n);
    bs_sort(tpot, n_tpot);
    r->ttft_p50 = bs_percentile(ttft, n, 50);
    r->ttft_p99 = bs_percentile(ttft, n, 99);
    r->tpot_p50 = bs_percentile(tpot, n_tpot, 50);
    r->tpot_p99 = bs_percentile(tpot, n_tpot, 99);
    free(ttft);
    free(tpot);
    return true;
}

/* Runs the workload (lengths in[], out[]) under scheduler params sp; false (err says why)
 * when the scheduler stalled or memory ran out. */
static bool simulate(const struct sim_opts *o, const struct sim_cost *c,
                     const struct pgd__sched_params *sp, const int *in, const int *out,
                     struct sim_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    struct pgd__kv_manager kv;
    struct pgd__scheduler sched;
    if (pgd__kv_manager_init(&kv, o->num_blocks, o->block_size, o->prefix_caching, err,
                             errlen) != PGD_OK)
        return false;
    /* The swap space in blocks, at most the device pool's (as the runner sizes it). */
    int n_swap = sp->preemption_mode == PGD_PREEMPT_RECOMPUTE ? 0
                 : pgd__swap_pool_blocks_for_bytes((size_t)(o->swap_gib * (double)(1u << 30)),
                                                   (size_t)(c->kv_bytes_tok * o->block_size));
    if (n_swap > o->num_blocks)
        n_swap = o->num_blocks;
    if (pgd__kv_manager_init_swap(&kv, n_swap, err, errlen) != PGD_OK) {
        pgd__kv_manager_fini(&kv);
        return false;
    }
    if (pgd__scheduler_init(&sched, sp, &kv, err, errlen) != PGD_OK) {
        pgd__kv_manager_fini(&kv);
        return false;
    }
    const int n = o->w.num_prompts;
    int max_in = 1;
    for (int i = 0; i < n; i++)
        max_in = in[i] > max_in ? in[i] : max_in;
    const size_t nz = n > 0 ? (size_t)n : 1;
    struct pgd__seq *seqs = calloc(nz, sizeof *seqs);
    int32_t *ids = malloc((size_t)max_in * sizeof *ids);
    struct sim_clock ck = { .arrive = calloc(nz, sizeof(double)),
                            .first = malloc(nz * sizeof(double)),
                            .last = calloc(nz, sizeof(double)),
                            .generated = calloc(nz, sizeof(int)) };
    bool ok = seqs && ids && ck.arrive && ck.first && ck.last && ck.generated;
    if (!ok)
        snprintf(err, errlen, "out of memory");
    for (int i = 0; ok && i < n; i++)
        ck.first[i] = -1;
    if (ok && isfinite(o->request_rate))
        pgd_tool_arrivals(n, o->request_rate, o->burstiness, o->w.seed, ck.arrive);
    uint64_t prng = o->w.seed ^ 0xA5A5A5A5DEADBEEFULL;
    int n_init = 0;                    /* requests arrived (and added) so far */
    while (ok) {
        for (; ok && n_init < n && ck.arrive[n_init] <= ck.now; n_init++) {
            int i = n_init;
            for (int j = 0; j < in[i]; j++)
                ids[j] = (int32_t)(pgd_tool_splitmix(&prng) % (uint64_t)o->vocab);
            ok = pgd__seq_init(&seqs[i], (uint64_t)i, ids, in[i], in[i] + out[i], err,
                               errlen) == PGD_OK;
            if (ok)
                pgd__scheduler_add(&sched, &seqs[i]);
        }
        if (!ok)
            break;
        if (pgd__scheduler_has_work(&sched))
            ok = sim_step(o, c, &sched, r, &ck, err, errlen);
        else if (n_init < n)
            ck.now = ck.arrive[n_init];   /* idle until the next arrival */
        else
            break;
    }
    if (ok)
        ok = latency_stats(&ck, n, r, err, errlen);
    r->preemptions = sched.n_preemptions;
    r->recomputed = sched.n_recomputed;
    r->swapped_out = sched.n_swapped_out;
    r->swapped_in = sched.n_swapped_in;
    for (int i = 0; i < n_init; i++) {
        if (seqs[i].status != PGD__SEQ_FINISHED)
            pgd__scheduler_finish(&sched, &seqs[i]);
        pgd__seq_fini(&seqs[i]);
    }
    pgd__scheduler_fini(&sched);
    pgd__kv_manager_fini(&kv);
    free(seqs);
    free(ids);
    free(ck.arrive);
    free(ck.first);
    free(ck.last);
    free(ck.generated);
    return ok;
}

static void print_result(const char *name, const struct sim_result *r, int n, long sum_out)
{
    printf("%-38s %6llu steps (%5llu decode-only), %5llu preemptions (%llu swapped out, %llu "
           "in; %llu blocks copied), %9llu tokens recomputed, %9llu prompt tokens computed, max "
           "%4d running; modelled %7.2f s = weights %.2f + compute %.2f + KV %.2f + swap %.2f: "
           "%8.1f output tok/s\n", name, r->steps, r->decode_only, r->preemptions,
           r->swapped_out, r->swapped_in, r->blocks_swapped, r->recomputed, r->prompt_computed,
           r->max_running, r->time_s, r->t_weights, r->t_flops, r->t_kv, r->t_swap,
           r->time_s > 0 ? sum_out / r->time_s : 0.0);
    const unsigned long long mixed = r->steps - r->decode_only;
    printf("    served (modelled): TTFT median %.1f ms, p99 %.1f ms; TPOT median %.2f ms, p99 "
           "%.2f ms; %.2f requests/s, %.1f output tok/s over %.2f s; a decode-only step %.2f "
           "ms, a mixed one %.2f ms (means)\n", 1e3 * r->ttft_p50, 1e3 * r->ttft_p99,
           1e3 * r->tpot_p50, 1e3 * r->tpot_p99, r->end_s > 0 ? n / r->end_s : 0.0,
           r->end_s > 0 ? sum_out / r->end_s : 0.0, r->end_s,
           r->decode_only ? 1e3 * r->t_decode_only / r->decode_only : 0.0,
           mixed ? 1e3 * (r->time_s - r->t_decode_only) / mixed : 0.0);
}

static const char *mode_name(enum pgd_preemption_mode m)
{
    return m == PGD_PREEMPT_SWAP ? "swap" : m == PGD_PREEMPT_AUTO ? "auto" : "recompute";
}

/* The policy sp in every mode of o: one line each. */
static bool run_modes(const struct sim_opts *o, const struct sim_cost *c,
                      struct pgd__sched_params sp, const char *policy, const int *in,
                      const int *out, long sum_out, char *err, size_t errlen)
{
    for (int m = 0; m < o->n_modes; m++) {
        struct sim_result r;
        char name[96];
        sp.preemption_mode = o->modes[m];
        sp.swap_min_tokens = o->swap_min_tokens;
        if (!simulate(o, c, &sp, in, out, &r, err, errlen))
            return false;
        snprintf(name, sizeof name, "%s, %s", policy, mode_name(o->modes[m]));
        print_result(name, &r, o->w.num_prompts, sum_out);
    }
    return true;
}

static int run_sim(const struct sim_opts *o)
{
    char err[512] = "";
    int rc = 1;
    int *in = malloc((size_t)o->w.num_prompts * sizeof *in);
    int *out = malloc((size_t)o->w.num_prompts * sizeof *out);
    if (!in || !out) {
        snprintf(err, sizeof err, "out of memory");
        goto done;
    }
    pgd_tool_workload_lengths(&o->w, in, out);     /* bench throughput's draws */
    long sum_in = 0, sum_out = 0;
    for (int i = 0; i < o->w.num_prompts; i++) {
        sum_in += in[i];
        sum_out += out[i];
        if ((long)pgd__kv_blocks_for(&(struct pgd__kv_manager){ .block_size = o->block_size },
                                     in[i] + out[i]) > o->num_blocks) {
            snprintf(err, sizeof err, "request %d (%d + %d tokens) can never fit %d blocks", i,
                     in[i], out[i], o->num_blocks);
            goto done;
        }
    }
    struct sim_cost c = cost_of(o);
    printf("workload: %d requests, %s, input %ld tokens (mean %.1f), output %ld (mean %.1f)\n",
           o->w.num_prompts, o->w.sharegpt ? "sharegpt-shaped lengths" : "fixed lengths", sum_in,
           (double)sum_in / o->w.num_prompts, sum_out, (double)sum_out / o->w.num_prompts);
    printf("engine: max_num_seqs %d, max_num_batched_tokens %d, %d KV blocks of %d tokens "
           "(%ld tokens), prefix caching %s\n", o->max_num_seqs, o->max_num_batched_tokens,
           o->num_blocks, o->block_size, (long)o->num_blocks * o->block_size,
           o->prefix_caching ? "on" : "off");
    printf("cost model: %.2f GB of weights (%s layers), %.0f KiB of KV a token (%s), %.0f GB/s, "
           "%.0f TFLOP/s (the layers' GEMMs %.0f), decode-only steps at %s\n",
           c.weight_bytes / 1e9, o->weights_fp8 ? "fp8" : "bf16", c.kv_bytes_tok / 1024,
           o->kv_fp8 ? "fp8" : "bf16", o->gbps, o->tflops, c.body_tflops / 1e12,
           o->ladder == LADDER_DEFAULT ? "the CUDA graphs' padded batch"
           : o->ladder == LADDER_POW2  ? "a padded batch of 1, 2, 4, ..."
                                       : "their own batch");
    printf("swapping: %.2f GiB of host blocks, copies at %.0f GB/s; auto swaps from %d "
           "computed tokens\n", o->swap_gib, o->host_gbps, o->swap_min_tokens);
    if (isfinite(o->request_rate))
        printf("arrivals: %.2f requests/s, burstiness %g; long_prefill_token_threshold %d\n",
               o->request_rate, o->burstiness, o->long_prefill_token_threshold);
    else
        printf("arrivals: all at once; long_prefill_token_threshold %d\n",
               o->long_prefill_token_threshold);
    struct pgd__sched_params sp = {
        .max_num_seqs = o->max_num_seqs,
        .max_num_batched_tokens = o->max_num_batched_tokens,
        .enable_chunked_prefill = true,
        .long_prefill_token_threshold = o->long_prefill_token_threshold,
        .policy = PGD_SCHED_FCFS,
    };
    if (!run_modes(o, &c, sp, "vllm (admit while free)", in, out, sum_out, err, sizeof err))
        goto done;
    for (int k = 0; k < o->n_headroom; k++) {
        char name[64];
        sp.headroom_steps = o->headroom[k];
        sp.preempt_cheapest = true;
        snprintf(name, sizeof name, "headroom %d, cheapest", o->headroom[k]);
        if (!run_modes(o, &c, sp, name, in, out, sum_out, err, sizeof err))
            goto done;
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "pagoda bench scheduler: %s\n", err);
    free(in);
    free(out);
    return rc;
}

static void sim_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda bench scheduler [options]\n\n"
            "The engine's scheduler on the CPU against a step-cost model (no model, no GPU):\n"
            "steps, preemptions, recomputed tokens and the modelled time of each policy.\n\n"
            "The workload, as `pagoda bench throughput` draws it:\n"
            PGD_TOOL_WORKLOAD_USAGE
            "The engine and the model:\n"
            "  --max-num-seqs N         (default 1024)\n"
            "  --max-num-batched-tokens N   (default 16384)\n"
            "  --num-blocks N           KV blocks (default 55073: the H200's for Llama-3-8B in\n"
            "                           bf16; more with FP8 weights or cache)\n"
            "  --block-size N           tokens a block (default 16)\n"
            "  --no-prefix-caching\n"
            "  --graph-ladder default|pow2|none   the CUDA graphs' batch sizes a decode-only\n"
            "                           step is padded to: the runner's default, 1, 2, 4, ...\n"
            "                           (before 2026-12-03), or none (its own batch)\n"
            "  --headroom-steps LIST    policies to compare with vLLM's rule, comma-separated\n"
            "                           headroom_steps values (default: the engine's, %d)\n"
            "  --layers N, --hidden N, --intermediate N, --heads N, --kv-heads N, --vocab N\n"
            "                           the model's shape (default Llama-3-8B)\n"
            "  --bandwidth GBPS, --tflops X   the device (default 4198 and 785: the H200)\n"
            "  --weight-dtype bf16|fp8  the layers' weights (fp8: a byte each, their GEMMs at\n"
            "                           --fp8-tflops X, default twice --tflops)\n"
            "  --kv-cache-dtype auto|fp8   K and V in bf16 (auto) or a byte an element\n"
            "  --preemption-mode LIST   recompute, swap, auto, comma-separated (default all)\n"
            "  --swap-space GIB         host memory for swapped KV blocks (default 4)\n"
            "  --host-gbps X            the swap copies' bandwidth (default 25)\n"
            "  --swap-min-tokens N      auto swaps from N computed tokens (default %d)\n"
            "  --long-prefill-token-threshold N   the most tokens one sequence computes in\n"
            "                           a step (default 0: the budget's)\n"
            "  --request-rate R|inf     arrivals, as `pagoda bench serve` sends them\n"
            "                           (default inf: all at once)\n"
            "  --burstiness B           gamma shape of the gaps (1 = Poisson; default 1)\n",
            PGD__SCHED_HEADROOM_STEPS_DEFAULT, PGD__SCHED_SWAP_MIN_TOKENS_DEFAULT);
}

/* "a,b,c" into o->headroom; false on a bad entry. */
static bool parse_headroom(struct sim_opts *o, const char *s)
{
    o->n_headroom = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1000000 || o->n_headroom == SIM_MAX_POLICIES)
            return false;
        o->headroom[o->n_headroom++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return false;
    }
    return o->n_headroom > 0;
}

/* "recompute,swap,auto" into o->modes; false on a bad entry. */
static bool parse_modes(struct sim_opts *o, const char *s)
{
    o->n_modes = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_modes == SIM_MAX_MODES)
            return false;
        if (!strcmp(t, "recompute"))
            o->modes[o->n_modes++] = PGD_PREEMPT_RECOMPUTE;
        else if (!strcmp(t, "swap"))
            o->modes[o->n_modes++] = PGD_PREEMPT_SWAP;
        else if (!strcmp(t, "auto"))
            o->modes[o->n_modes++] = PGD_PREEMPT_AUTO;
        else
            return false;
    }
    return o->n_modes > 0;
}

/* A dtype option's value: `plain` (*fp8 false) or "fp8" (true); else says so and fails. */
static bool parse_fp8(const char *opt, const char *arg, const char *plain, bool *fp8)
{
    if (strcmp(arg, plain) && strcmp(arg, "fp8")) {
        fprintf(stderr, "pagoda bench scheduler: %s %s: %s or fp8\n", opt, arg, plain);
        return false;
    }
    *fp8 = !strcmp(arg, "fp8");
    return true;
}

int pgd_cmd_bench_scheduler(int argc, char **argv)
{
    static const struct option long_opts[] = {
        PGD_TOOL_WORKLOAD_OPTIONS, { "max-num-seqs", required_argument, 0, 'q' },
        { "max-num-batched-tokens", required_argument, 0, 'B' },
        { "num-blocks", required_argument, 0, 'N' }, { "block-size", required_argument, 0, 'b' },
        { "no-prefix-caching", no_argument, 0, 'P' },
        { "graph-ladder", required_argument, 0, 'G' },
        { "headroom-steps", required_argument, 0, 'H' },
        { "layers", required_argument, 0, 'L' }, { "hidden", required_argument, 0, 'D' },
        { "intermediate", required_argument, 0, 'F' }, { "heads", required_argument, 0, 'A' },
        { "kv-heads", required_argument, 0, 'K' }, { "vocab", required_argument, 0, 'V' },
        { "bandwidth", required_argument, 0, 'W' }, { "tflops", required_argument, 0, 'T' },
        { "weight-dtype", required_argument, 0, 'w' },
        { "kv-cache-dtype", required_argument, 0, 'k' },
        { "fp8-tflops", required_argument, 0, 'f' },
        { "preemption-mode", required_argument, 0, 'M' },
        { "swap-space", required_argument, 0, 's' }, { "host-gbps", required_argument, 0, 'g' },
        { "swap-min-tokens", required_argument, 0, 'm' },
        { "long-prefill-token-threshold", required_argument, 0, 'l' },
        { "request-rate", required_argument, 0, 'r' },
        { "burstiness", required_argument, 0, 'u' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    struct sim_opts o = { .w = PGD_TOOL_WORKLOAD_DEFAULT, .max_num_seqs = 1024,
                          .max_num_batched_tokens = 16384, .num_blocks = 55073,
                          .block_size = 16, .prefix_caching = true,
                          .layers = 32,
                          .hidden = 4096, .intermediate = 14336, .heads = 32, .kv_heads = 8,
                          .vocab = 128256, .gbps = 4198, .tflops = 785,
                          .headroom = { PGD__SCHED_HEADROOM_STEPS_DEFAULT }, .n_headroom = 1,
                          .modes = { PGD_PREEMPT_RECOMPUTE, PGD_PREEMPT_SWAP, PGD_PREEMPT_AUTO },
                          .n_modes = 3, .swap_gib = 4, .host_gbps = 25,
                          .swap_min_tokens = PGD__SCHED_SWAP_MIN_TOKENS_DEFAULT,
                          .request_rate = INFINITY, .burstiness = 1 };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'q': o.max_num_seqs = (int)strtol(optarg, &end, 10); break;
        case 'B': o.max_num_batched_tokens = (int)strtol(optarg, &end, 10); break;
        case 'N':
            o.num_blocks = (int)strtol(optarg, &end, 10);
            o.num_blocks_given = true;
            break;
        case 'w':
            if (!parse_fp8("--weight-dtype", optarg, "bf16", &o.weights_fp8))
                return 2;
            break;
        case 'k':
            if (!parse_fp8("--kv-cache-dtype", optarg, "auto", &o.kv_fp8))
                return 2;
            break;
        case 'f': o.fp8_tflops = strtod(optarg, &end); break;
        case 'b': o.block_size = (int)strtol(optarg, &end, 10); break;
        case 'P': o.prefix_caching = false; break;
        case 'G':
            if (!strcmp(optarg, "default"))
                o.ladder = LADDER_DEFAULT;
            else if (!strcmp(optarg, "pow2"))
                o.ladder = LADDER_POW2;
            else if (!strcmp(optarg, "none"))
                o.ladder = LADDER_NONE;
            else {
                fprintf(stderr, "pagoda bench scheduler: --graph-ladder %s: default, pow2 or "
                        "none\n", optarg);
                return 2;
            }
            break;
        case 'H':
            if (!parse_headroom(&o, optarg)) {
                fprintf(stderr, "pagoda bench scheduler: --headroom-steps %s: a list of "
                        "non-negative numbers\n", optarg);
                return 2;
            }
            break;
        case 'L': o.layers = (int)strtol(optarg, &end, 10); break;
        case 'D': o.hidden = (int)strtol(optarg, &end, 10); break;
        case 'F': o.intermediate = (int)strtol(optarg, &end, 10); break;
        case 'A': o.heads = (int)strtol(optarg, &end, 10); break;
        case 'K': o.kv_heads = (int)strtol(optarg, &end, 10); break;
        case 'V': o.vocab = (int)strtol(optarg, &end, 10); break;
        case 'W': o.gbps = strtod(optarg, &end); break;
        case 'M':
            if (!parse_modes(&o, optarg)) {
                fprintf(stderr, "pagoda bench scheduler: --preemption-mode %s: a list of "
                        "recompute, swap, auto\n", optarg);
                return 2;
            }
            break;
        case 's': o.swap_gib = strtod(optarg, &end); break;
        case 'g': o.host_gbps = strtod(optarg, &end); break;
        case 'm': o.swap_min_tokens = (int)strtol(optarg, &end, 10); break;
        case 'T': o.tflops = strtod(optarg, &end); break;
        case 'l': o.long_prefill_token_threshold = (int)strtol(optarg, &end, 10); break;
        case 'r':
            o.request_rate = !strcmp(optarg, "inf") ? INFINITY : strtod(optarg, &end);
            break;
        case 'u': o.burstiness = strtod(optarg, &end); break;
        case 'h': sim_usage(stdout); return 0;
        default:
            switch (pgd_tool_workload_option(&o.w, c, optarg, "pagoda bench scheduler")) {
            case 1: break;
            case 0: sim_usage(stderr); return 2;
            default: return 2;
            }
        }
        if (end && *end) {
            fprintf(stderr, "pagoda bench scheduler: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (optind < argc || !pgd_tool_workload_valid(&o.w) || o.max_num_seqs <= 0 ||
        o.max_num_batched_tokens <= 0 || o.num_blocks <= 0 || o.block_size <= 0 ||
        o.layers <= 0 || o.hidden <= 0 || o.intermediate <= 0 || o.heads <= 0 ||
        o.kv_heads <= 0 || o.hidden % o.heads || o.vocab <= 1 || !(o.gbps > 0) ||
        !(o.tflops > 0) || !(o.fp8_tflops >= 0) || !(o.swap_gib >= 0) || !(o.host_gbps > 0) ||
        o.swap_min_tokens < 0 ||
        o.long_prefill_token_threshold < 0 || !(o.request_rate > 0) || !(o.burstiness > 0)) {
        sim_usage(stderr);
        return 2;
    }
    if (!o.num_blocks_given)
        o.num_blocks = default_blocks(&o);
    return run_sim(&o);
}
