/* `pagoda bench throughput`: offline throughput through the engine. N requests of random
 * prompt token ids are submitted at once (as vLLM's offline throughput benchmark does) and
 * run to their output length (ignore_eos); the report gives requests/s and input/output
 * tokens/s over the wall time from the first submit to the last output read, beside a
 * physical floor for the same work.
 *
 * Lengths: fixed (--input-len/--output-len), or "sharegpt": a ShareGPT-shaped distribution
 * drawn from a seeded generator. Input and output lengths are independent log-normals with
 * sigma 1 (a heavy right tail: the median is 0.61 of the mean, one in 40 draws is over 3x
 * the mean), their means --mean-input (200) and --mean-output (180) before capping; an input
 * is capped at --max-input (1024), an output at --max-total (2048) minus its input, and both
 * are at least 4 (vLLM drops shorter ShareGPT pairs). The report prints the drawn means.
 *
 * The floor: every step reads the weights once, and the work needs at least
 * max(sum of outputs / max_num_seqs, all tokens / max_num_batched_tokens, longest output)
 * steps; each generated token reads the KV cache of its context. Bytes over the measured
 * copy bandwidth and FLOPs (2 x matrix parameters a token, the head for generated tokens
 * only, 4 x hidden x context a layer for attention) over the measured GEMM rate; the floor
 * is the larger. It ignores prefill's KV reads and everything small, so it is loose.
 *
 * --profile-ops: where the steps' time goes (bench_workload_profile.h). The timed run only
 * counts its steps by kind and size; after its report a profile pass runs the first
 * --profile-prompts requests of the same workload again with every step eager and its ops
 * timed, and prints a per-op table for each kind and size of step beside the timed run's
 * time a step of that kind. */
#include "config.h"
#include "tools/commands.h"
#include "tools/tool_model.h"
#include "tools/bench/bench_workload.h"
#include "tools/bench/bench_workload_profile.h"
#include "runtime/engine/engine_backend.h"
#include "runtime/engine/scheduler.h"
#include "runtime/config/batch_defaults.h"
#include "tools/bench/bench_engine_flags.h"
#include "runtime/model/model.h"
#include "runtime/base/clock.h"
#include <pagoda/engine.h>
#include "runtime/runner/runner.h"
#include "runtime/runner/host_work_line.h"
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tput_opts {
    struct pgd_tool_model m;                /* the model, device, dtype and plugin dirs */
    struct pgd_tool_workload w;             /* the requests and their lengths */
    int warmup;
    int max_num_seqs, max_num_batched_tokens, num_blocks;
    int headroom_steps;             /* the scheduler's KV headroom; -1: the engine's default */
    enum pgd_preemption_mode preemption_mode;  /* --preemption-mode (default the engine's) */
    double swap_gib;                /* --swap-space; < 0: the engine's default */
    double gpu_mem;
    float temperature;
    const char *json;
    double guided_ratio;            /* the share of requests with structured output */
    const char *guided_regex;       /* their guide (a regex that never has to end) */
    bool profile_ops;               /* --profile-ops: the profile pass after the timed run */
    bool no_detokenize;             /* --disable-detokenize (vLLM's): token ids only */
    bool async_scheduling;          /* --[no-]async-scheduling (vLLM's; default on) */
    bool detokenize;                /* the requests ask for text (set once the engine is up) */
    int profile_prompts;            /* its requests: the workload's first N (-1: all) */
    struct pgd__settings eng;       /* the engine's flags that are not bench's own (vLLM's
                                       bench takes every engine argument), as `pagoda serve`
                                       parses them; applied over the bench's choices */
};

/* The engine thread's time a step over the timed run (milliseconds; see struct
 * pgd_engine_stats' step_*_s): its phases, the device's share and the host's. */
struct step_times {
    unsigned long long steps;
    double total, schedule, prepare, model, output, device;
};

/* The engine's stats once its last step's times are in (they trail the step's outputs, so
 * a stream can close before them; up to a second's wait). */
static void settled_stats(struct pgd_engine *e, struct pgd_engine_stats *st)
{
    pgd_engine_get_stats(e, st);
    for (int i = 0; i < 1000 && st->step_timed < st->num_steps; i++) {
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
        pgd_engine_get_stats(e, st);
    }
}

static struct step_times step_times_of(const struct pgd_engine_stats *a,
                                       const struct pgd_engine_stats *b)
{
    struct step_times t = { .steps = b->step_timed - a->step_timed };
    double per = t.steps ? 1e3 / (double)t.steps : 0;
    t.total = (b->step_total_s - a->step_total_s) * per;
    t.schedule = (b->step_schedule_s - a->step_schedule_s) * per;
    t.prepare = (b->step_prepare_s - a->step_prepare_s) * per;
    t.model = (b->step_model_s - a->step_model_s) * per;
    t.output = (b->step_output_s - a->step_output_s) * per;
    t.device = (b->step_device_s - a->step_device_s) * per;
    return t;
}

static void print_step_times(const struct step_times *t)
{
    double host = t->total - t->device;
    printf("engine thread: %.3f ms a step over %llu steps = schedule %.3f + prepare %.3f + "
           "model step %.3f + outputs %.3f ms; on the device's work %.3f ms (waiting for the "
           "GPU, or the CPU's forward pass), the host's own %.3f ms (%.1f%% of the step: what "
           "overlapping the host's work with the GPU's could save at most)\n", t->total,
           t->steps, t->schedule, t->prepare, t->model, t->output, t->device, host,
           t->total > 0 ? 100.0 * host / t->total : 0.0);
}

/* The timed run's steps by kind: decode-only ones (a CUDA graph can run them) and how many
 * did, the rest (prompt tokens, eager by design), and the tokens preemptions made the
 * engine compute again. */
struct step_mix {
    unsigned long long steps, decode_only, graph, recomputed;
    unsigned long long piecewise;      /* eager steps replayed through piecewise graphs */
    unsigned long long swapped_out, swapped_in, swap_out_bytes, swap_in_bytes;
};

static struct step_mix step_mix_of(const struct pgd_engine_stats *a,
                                   const struct pgd_engine_stats *b, long replays,
                                   long pw_replays)
{
    return (struct step_mix){
        .steps = b->num_steps - a->num_steps,
        .decode_only = b->num_steps_decode_only - a->num_steps_decode_only,
        .graph = replays > 0 ? (unsigned long long)replays : 0,
        .piecewise = pw_replays > 0 ? (unsigned long long)pw_replays : 0,
        .recomputed = b->num_tokens_recomputed - a->num_tokens_recomputed,
        .swapped_out = b->num_swapped_out - a->num_swapped_out,
        .swapped_in = b->num_swapped_in - a->num_swapped_in,
        .swap_out_bytes = b->swap_out_bytes - a->swap_out_bytes,
        .swap_in_bytes = b->swap_in_bytes - a->swap_in_bytes,
    };
}

static void print_step_mix(const struct step_mix *m)
{
    unsigned long long eager_dec = m->decode_only > m->graph ? m->decode_only - m->graph : 0;
    printf("steps: %llu = %llu decode-only (%llu through CUDA graphs, %llu eager) + %llu with "
           "prompt tokens (eager); %llu eager steps through piecewise CUDA graphs; %llu tokens "
           "recomputed after preemptions; %llu sequences swapped out (%.2f GB), %llu swapped "
           "in (%.2f GB)\n", m->steps, m->decode_only, m->graph, eager_dec,
           m->steps - m->decode_only, m->piecewise, m->recomputed, m->swapped_out,
           m->swap_out_bytes / 1e9, m->swapped_in, m->swap_in_bytes / 1e9);
}

/* The runner's host time by step kind during the timed run (graph decode steps, their
 * graph launch calls, eager steps): where the host's own share of a step is spent. */
static void print_host_split(const struct pgd__runner_host_split *a,
                             const struct pgd__runner_host_split *b)
{
    char line[256];
    pgd__host_split_line(a, b, line, sizeof line);
    printf("runner host time by step kind: %s\n", line);
}

#ifdef PGD_HAVE_CUDA
/* The cuBLASLt plans' host work during the timed run (kernels/cuda: plans built for a new n,
 * algorithm checks, heuristic queries, tunings): every choice should be made before serving,
 * so anything here is host time the steps paid. */
static void print_lt_host(const struct pgd_cuda_gemm_host_stats *a,
                          const struct pgd_cuda_gemm_host_stats *b)
{
    char line[512];
    pgd__gemm_host_line(a, b, line, sizeof line);
    printf("cuBLASLt host work during the run: %s\n", line);
}
#endif

static void tput_usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda bench throughput (--model DIR | --random-weights CONFIG) [options]\n\n"
            "  --model DIR|ORG/NAME     a model directory, hub id or catalog name\n"
            "  --revision REV, --download-dir DIR   for a hub id: the branch, tag or commit,\n"
            "                           and the cache root (default HF_HUB_CACHE)\n"
            PGD_TOOL_WORKLOAD_USAGE
            "  --temperature T          0 (default): greedy; otherwise sampled (on the GPU\n"
            "                           with --device cuda: only token ids come back)\n"
            "  --max-num-seqs N         sequences a step (default 256; on a GPU of 70 GiB\n"
            "                           or more, not an A100: 1024, as vLLM's offline)\n"
            "  --max-num-batched-tokens N   tokens a step (default 8192; on such a GPU\n"
            "                           16384)\n"
            "  --num-blocks N           KV blocks (default: sized by the engine)\n"
            "  --headroom-steps N       the scheduler's KV headroom (default %d; 0: vLLM's\n"
            "                           rule, admit while blocks last, preempt the newest)\n"
            "  --preemption-mode auto|swap|recompute   (default auto)\n"
            "  --swap-space GIB         host memory for swapped KV blocks (default 4)\n"
            "  --gpu-memory-utilization X   (default 0.9)\n"
            "  --warmup N               untimed requests first (default 8, 16 tokens each way)\n"
            "  --device auto|cpu|cuda|cuda:N, --dtype auto|bfloat16|float16,\n"
            "  --quantization gptq|awq|fp8, --kv-cache-dtype auto|fp8, --plugin-dir DIR\n"
            "  --json FILE              also write the report as JSON\n"
            "  --disable-detokenize     token ids only (default: the requests' text too, as\n"
            "                           vLLM's benchmark, where the model has a tokenizer)\n"
            "  --[no-]async-scheduling  plan each step while the one before it runs (vLLM's;\n"
            "                           default on)\n"
            "  any other engine flag of `pagoda serve` (docs/CONFIG.md), as vLLM's bench\n"
            "                           takes them: --enforce-eager, --max-model-len N,\n"
            "                           --cuda-graph-sizes N [N ...], --enable-prefix-caching,\n"
            "                           --block-size N, --long-prefill-token-threshold N, ...\n"
            "  --structured-output-ratio X   the share of requests (0..1, default 0) whose\n"
            "                           output is constrained by --structured-output-regex\n"
            "                           (default \"[ -~]*\", never complete: every request\n"
            "                           still generates its length); needs the tokenizer\n"
            "  --profile-ops            after the timed run, a profile pass: the workload's\n"
            "                           requests again, every step eager with its ops timed;\n"
            "                           a per-op table for each kind and size of step\n"
            "  --profile-prompts N      the profile pass's requests: the first N (default all)\n",
            PGD__SCHED_HEADROOM_STEPS_DEFAULT);
}

static struct pgd_stream *submit(struct pgd_engine *e, const struct tput_opts *o, uint64_t *rng,
                                 int vocab, int in, int out, int32_t *ids, char *err,
                                 size_t errlen)
{
    /* Constrained or not: decided by the request's index in a fixed pattern, so that the
     * share holds at any number of requests (and the warm-up's requests count too). */
    static long index;
    bool guided = o->guided_ratio > 0 &&
                  (long)((index + 1) * o->guided_ratio) > (long)(index * o->guided_ratio);
    index++;
    for (int i = 0; i < in; i++)
        ids[i] = (int32_t)(pgd_tool_splitmix(rng) % (uint64_t)vocab);
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = in;
    r.detokenize = o->detokenize;
    r.sampling.temperature = o->temperature;
    r.sampling.ignore_eos = true;
    r.sampling.max_tokens = out;
    if (guided) {
        r.sampling.guide_kind = PGD_GUIDE_REGEX;
        r.sampling.guide = o->guided_regex;
    }
    struct pgd_stream *s = NULL;
    if (pgd_engine_submit(e, &r, &s, err, errlen) != PGD_OK)
        return NULL;
    return s;
}

/* Reads a stream to its end; returns the tokens generated, or -1 if it did not finish by
 * length. */
static long drain(struct pgd_stream *s)
{
    struct pgd_output out;
    long n = 0;
    enum pgd_finish_reason fin = PGD_FINISH_NONE;
    while (pgd_stream_next(s, &out, -1) == PGD_OK) {
        n += out.n_token_ids;
        if (out.finish_reason != PGD_FINISH_NONE)
            fin = out.finish_reason;
    }
    return fin == PGD_FINISH_LENGTH ? n : -1;
}

/* The profile pass (--profile-ops): the first n requests of the workload (lengths in_len,
 * out_len) again with the hook profiling every step; then its report (printed, and into
 * *json when json is not NULL: a new reference). */
static int profile_pass(struct pgd_engine *e, struct pgd_bench_wl_profile *w,
                        const struct tput_opts *o, const int *in_len, const int *out_len, int n,
                        int vocab, uint64_t *prng, int32_t *ids, double gbps, double tflops,
                        json_t **json, char *err, size_t errlen)
{
    struct pgd_stream **streams = calloc((size_t)n, sizeof *streams);
    if (!streams) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct pgd_engine_stats a, b;
    settled_stats(e, &a);
    pgd_bench_wl_profile_attach(w, true);
    double t0 = pgd__now_s();
    int rc = 0, unfinished = 0;
    for (int i = 0; i < n && !rc; i++)
        if (!(streams[i] = submit(e, o, prng, vocab, in_len[i], out_len[i], ids, err, errlen)))
            rc = -1;
    for (int i = 0; i < n; i++) {
        if (streams[i] && drain(streams[i]) != out_len[i])
            unfinished++;
        pgd_stream_destroy(streams[i]);
    }
    free(streams);
    double dt = pgd__now_s() - t0;
    settled_stats(e, &b);
    pgd_bench_wl_profile_detach(w);
    if (rc)
        return rc;
    if (pgd_bench_wl_profile_status(w, err, errlen))
        return -1;                   /* a profile that could not be made: the cause of the rest */
    if (unfinished) {
        snprintf(err, errlen, "profile pass: %d requests did not generate their output length",
                 unfinished);
        return -1;
    }
    long profiled, hooked = pgd_bench_wl_profile_pass_steps(w, &profiled);
    unsigned long long steps = b.num_steps - a.num_steps;
    printf("\nprofile pass: %d requests in %.3f s, %llu steps (%ld seen by the step hook, %ld "
           "of them with their ops timed)\n", n, dt, steps, hooked, profiled);
    pgd_bench_wl_profile_print(w, stdout, n, gbps, tflops);
    if (json && !(*json = pgd_bench_wl_profile_json(w, n, gbps, tflops))) {
        snprintf(err, errlen, "profile pass: out of memory for its JSON");
        return -1;
    }
    if (json && json_object_set_new(*json, "engine_steps", json_integer((json_int_t)steps))) {
        snprintf(err, errlen, "profile pass: out of memory for its JSON");
        return -1;
    }
    return 0;
}

static int run_tput(const struct tput_opts *o)
{
    char err[1024] = "";
    int rc = 1;
    struct pgd_engine *e = NULL;
    struct pgd_stream **streams = NULL;
    int *in_len = NULL, *out_len = NULL;
    int32_t *ids = NULL;
    struct pgd_bench_wl_profile *wl = NULL;   /* --profile-ops */
    json_t *wl_json = NULL;
    enum pgd_dtype gemm_dt = o->m.dtype == PGD_DTYPE_COUNT ? PGD_DTYPE_BF16 : o->m.dtype;
    double gbps, tflops;
    char desc[256];
    if (pgd_tool_bench_ceilings(o->m.device, gemm_dt, &gbps, &tflops, desc, sizeof desc))
        return 1;

    /* The workload first: its longest request sizes the engine. */
    in_len = malloc((size_t)o->w.num_prompts * sizeof *in_len);
    out_len = malloc((size_t)o->w.num_prompts * sizeof *out_len);
    streams = calloc((size_t)o->w.num_prompts, sizeof *streams);
    if (!in_len || !out_len || !streams) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    pgd_tool_workload_lengths(&o->w, in_len, out_len);
    long sum_in = 0, sum_out = 0, max_in = 0, max_out = 0, max_len = 0;
    double kv_tokens = 0, attn_pos = 0;   /* context tokens read by generated tokens; sum L^2/2 */
    for (int i = 0; i < o->w.num_prompts; i++) {
        sum_in += in_len[i];
        sum_out += out_len[i];
        max_in = in_len[i] > max_in ? in_len[i] : max_in;
        max_out = out_len[i] > max_out ? out_len[i] : max_out;
        long L = in_len[i] + out_len[i];
        max_len = L > max_len ? L : max_len;
        kv_tokens += (double)out_len[i] * in_len[i] + (double)out_len[i] * (out_len[i] - 1) / 2;
        attn_pos += (double)L * (L - 1) / 2;
    }
    ids = malloc((size_t)(max_in > 16 ? max_in : 16) * sizeof *ids);
    if (!ids) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }

    struct pgd_engine_params ep = pgd_engine_default_params();
    pgd_tool_model_engine_params(&o->m, &ep);
    ep.seed = o->w.seed;
    /* Unset batch limits: 256 / 8192 on the CPU; on a GPU the card's offline defaults, as
     * vLLM's LLM class picks them (runtime/config/batch_defaults.h). */
    ep.max_num_seqs = o->max_num_seqs > 0 ? o->max_num_seqs : 256;
    ep.max_num_batched_tokens = o->max_num_batched_tokens > 0 ? o->max_num_batched_tokens : 8192;
    pgd__batch_defaults_apply(&ep, o->max_num_seqs > 0, o->max_num_batched_tokens > 0,
                              PGD__USAGE_OFFLINE);
    ep.num_blocks = o->num_blocks;
    ep.preemption_mode = o->preemption_mode;
    if (o->swap_gib >= 0)
        ep.swap_space_bytes = (size_t)(o->swap_gib * (double)(1u << 30));
    ep.gpu_memory_utilization = o->gpu_mem;
    ep.async_scheduling = o->async_scheduling;
    int graph_sizes[64];            /* where --cuda-graph-sizes lands; ep points here */
    pgd__settings_engine_params_given(&o->eng, &ep, graph_sizes,
                                      (int)(sizeof graph_sizes / sizeof graph_sizes[0]));
    double t_load = pgd__now_s();
    if (pgd_engine_create(&ep, &e, err, sizeof err) != PGD_OK)
        goto out;
    t_load = pgd__now_s() - t_load;
    /* Text unless asked not to (and where the model has a tokenizer), as vLLM's benchmark. */
    struct tput_opts with_text = *o;
    with_text.detokenize = !o->no_detokenize && pgd_engine_has_tokenizer(e);
    o = &with_text;
    const struct pgd__runner *r = pgd__engine_runner(e);
    const struct pgd_model_desc *d = pgd__runner_desc(r);
    const struct pgd__model *m = pgd__runner_model(r);
    size_t esz = pgd_dtype_size(m->dtype);
    double wbytes = (double)m->weight_bytes;
    double head = (double)d->vocab_size * d->hidden_size, body = wbytes / esz - 2 * head;
    if (body < 0)
        body = wbytes / esz;
    double kv_tok = 2.0 * d->n_layers * d->n_kv_heads * d->head_dim * esz;
    struct pgd_engine_stats st0, st1;
    long replays0, replays1;
    int n_graphs;
    pgd_engine_get_stats(e, &st0);
    printf("device: %s\n", desc);
    if (gbps > 0)
        printf("ceilings: device-to-device copy %.0f GB/s (read + write), %s GEMM 8192^3 "
               "%.0f TFLOP/s\n", gbps, pgd_dtype_name(gemm_dt), tflops);
    printf("model: %s%s, %d layers, hidden %d, vocab %d, %s, %.2f GB of weights (loaded in "
           "%.1f s)\n", o->m.dir, o->m.random ? " (random weights)" : "", d->n_layers,
           d->hidden_size, d->vocab_size, pgd_dtype_name(m->dtype), wbytes / 1e9, t_load);
    int headroom = o->headroom_steps >= 0 ? o->headroom_steps : PGD__SCHED_HEADROOM_STEPS_DEFAULT;
    if (o->headroom_steps >= 0)
        pgd__engine_set_kv_policy(e, headroom, headroom > 0);
    char policy[96];
    if (headroom > 0)
        snprintf(policy, sizeof policy, "KV headroom for %d steps, preempting the cheapest",
                 headroom);
    else
        snprintf(policy, sizeof policy, "vLLM's admission (while blocks last), preempting the "
                 "newest");
    printf("engine: max_num_seqs %d, max_num_batched_tokens %d, %d KV blocks of %d tokens, %s, "
           "%s; %s; preemption_mode %s, %d host swap blocks%s\n", ep.max_num_seqs,
           ep.max_num_batched_tokens, st0.num_blocks, st0.block_size,
           o->temperature > 0 ? (o->m.device == PGD_DEVICE_CUDA ? "sampled on the GPU" : "sampled")
                              : "greedy",
           o->detokenize ? "detokenized" : o->no_detokenize ? "token ids only"
                                                           : "token ids only (no tokenizer)",
           policy,
           ep.preemption_mode == PGD_PREEMPT_SWAP        ? "swap"
           : ep.preemption_mode == PGD_PREEMPT_RECOMPUTE ? "recompute"
                                                         : "auto",
           st0.num_swap_blocks, ep.async_scheduling ? "; async scheduling" : "");
    printf("workload: %d requests, %s, input %.1f tokens on average (max %ld), output %.1f "
           "(max %ld)\n", o->w.num_prompts, o->w.sharegpt ? "sharegpt-shaped lengths" : "fixed lengths",
           (double)sum_in / o->w.num_prompts, max_in, (double)sum_out / o->w.num_prompts, max_out);
    if (o->guided_ratio > 0)
        printf("structured output: %.0f%% of the requests, regex \"%s\"\n",
               100 * o->guided_ratio, o->guided_regex);
    fflush(stdout);

    /* Warm-up: a few short requests, untimed. */
    uint64_t prng = o->w.seed ^ 0xA5A5A5A5DEADBEEFULL;
    for (int i = 0; i < o->warmup; i++) {
        struct pgd_stream *s = submit(e, o, &prng, d->vocab_size, 16, 16, ids, err, sizeof err);
        if (!s)
            goto out;
        long n = drain(s);
        pgd_stream_destroy(s);
        if (n != 16) {
            snprintf(err, sizeof err, "warm-up request %d ended with %ld tokens", i, n);
            goto out;
        }
    }
    settled_stats(e, &st0);
    pgd__runner_graph_stats(r, &replays0, &n_graphs);
    long pw0 = 0, pw1 = 0;
    int pw_sizes, pw_eager;
    pgd__runner_piecewise_stats(r, &pw0, &pw_sizes, &pw_eager);
    struct pgd__runner_host_split hs0, hs1;
    pgd__runner_host_split(r, &hs0);
#ifdef PGD_HAVE_CUDA
    struct pgd_cuda_gemm_host_stats lt0 = { 0 }, lt1 = { 0 };
    struct pgd_cuda_ctx *cuda = pgd__runner_cuda(r);
    if (cuda)
        pgd_cuda_gemm_host_stats(cuda, &lt0);
#endif
    if (o->profile_ops) {
        /* The timed run's steps counted by kind and size (no profile: nothing changes). */
        if (!(wl = pgd_bench_wl_profile_create(pgd__engine_runner_mut(e)))) {
            snprintf(err, sizeof err, "out of memory");
            goto out;
        }
        pgd_bench_wl_profile_attach(wl, false);
    }

    double t0 = pgd__now_s();
    for (int i = 0; i < o->w.num_prompts; i++)
        if (!(streams[i] = submit(e, o, &prng, d->vocab_size, in_len[i], out_len[i], ids, err,
                                  sizeof err)))
            goto out;
    long counted = 0;
    int unfinished = 0;
    for (int i = 0; i < o->w.num_prompts; i++) {
        long n = drain(streams[i]);
        if (n < 0 || n != out_len[i])
            unfinished++;
        else
            counted += n;
        pgd_stream_destroy(streams[i]);
        streams[i] = NULL;
    }
    double dt = pgd__now_s() - t0;
    /* The last step's timer stops after its tokens reached the streams (the notifier thread
     * may deliver them first), so the steps' total is bounded by the wall time until every
     * step's timer is in, not by dt. */
    settled_stats(e, &st1);
    double dt_settled = pgd__now_s() - t0;
    pgd__runner_graph_stats(r, &replays1, &n_graphs);
    pgd__runner_piecewise_stats(r, &pw1, &pw_sizes, &pw_eager);
    if (wl)
        pgd_bench_wl_profile_detach(wl);
    if (unfinished) {
        snprintf(err, sizeof err, "%d requests did not generate their output length", unfinished);
        goto out;
    }

    /* The floor (see the top of the file). */
    long steps = (sum_out + ep.max_num_seqs - 1) / ep.max_num_seqs;
    long by_tokens = (sum_in + sum_out + ep.max_num_batched_tokens - 1) / ep.max_num_batched_tokens;
    steps = by_tokens > steps ? by_tokens : steps;
    steps = max_out > steps ? max_out : steps;
    double bytes = steps * wbytes + kv_tokens * kv_tok;
    double flops = 2.0 * body * (sum_in + sum_out) + 2.0 * head * sum_out +
                   4.0 * d->hidden_size * d->n_layers * attn_pos;
    double t_bw = gbps > 0 ? bytes / (gbps * 1e9) : 0, t_fl = tflops > 0 ? flops / (tflops * 1e12) : 0;
    double floor_s = t_bw > t_fl ? t_bw : t_fl;
    uint64_t nsteps = st1.num_steps - st0.num_steps;
    uint64_t gen = st1.generation_tokens - st0.generation_tokens;
    uint64_t computed = st1.prompt_tokens_computed - st0.prompt_tokens_computed;
    printf("\n%d requests in %.3f s: %.2f requests/s, %.1f input tokens/s, %.1f output tokens/s, "
           "%.1f total tokens/s\n", o->w.num_prompts, dt, o->w.num_prompts / dt, sum_in / dt,
           counted / dt, (sum_in + counted) / dt);
    printf("tokens: input %ld, output %ld (engine counted %llu generated, %llu prompt tokens "
           "computed), %llu steps (%.1f generated a step), %llu preemptions\n", sum_in, counted,
           (unsigned long long)gen, (unsigned long long)computed, (unsigned long long)nsteps,
           nsteps ? (double)gen / nsteps : 0.0,
           (unsigned long long)(st1.num_preemptions - st0.num_preemptions));
    struct step_mix mix = step_mix_of(&st0, &st1, replays1 - replays0, pw1 - pw0);
    print_step_mix(&mix);
    if (floor_s > 0)
        printf("floor: %.3f s (bound by %s: at least %ld steps reading %.2f GB of weights each, "
               "%.2f GB of KV reads, %.1f TFLOP): %.2f requests/s, %.1f output tokens/s; "
               "measured is %.1f%% of the floor\n", floor_s, t_bw > t_fl ? "bytes" : "flops",
               steps, wbytes / 1e9, kv_tokens * kv_tok / 1e9, flops / 1e12,
               o->w.num_prompts / floor_s, sum_out / floor_s, 100.0 * floor_s / dt);
    struct step_times tm = step_times_of(&st0, &st1);
    print_step_times(&tm);
    pgd__runner_host_split(r, &hs1);
    print_host_split(&hs0, &hs1);
#ifdef PGD_HAVE_CUDA
    if (cuda) {
        pgd_cuda_gemm_host_stats(cuda, &lt1);
        print_lt_host(&lt0, &lt1);
    }
#endif
    if (wl) {
        int n = o->profile_prompts > 0 && o->profile_prompts < o->w.num_prompts ? o->profile_prompts
                                                                            : o->w.num_prompts;
        fflush(stdout);
        if (profile_pass(e, wl, o, in_len, out_len, n, d->vocab_size, &prng, ids, gbps, tflops,
                         o->json ? &wl_json : NULL, err, sizeof err))
            goto out;
    }
    if (o->json) {
        FILE *f = fopen(o->json, "w");
        if (!f) {
            snprintf(err, sizeof err, "--json %s: cannot write", o->json);
            goto out;
        }
        fprintf(f, "{\"requests\": %d, \"elapsed_s\": %.6f, \"requests_per_s\": %.6f, "
                   "\"input_tokens\": %ld, \"output_tokens\": %ld, \"input_tokens_per_s\": %.6f, "
                   "\"output_tokens_per_s\": %.6f, \"engine_generated\": %llu, "
                   "\"engine_prompt_computed\": %llu, \"steps\": %llu, \"max_input\": %ld, "
                   "\"max_output\": %ld, \"max_len\": %ld, \"floor_s\": %.6f, "
                   "\"steps_timed\": %llu, \"step_ms\": %.6f, \"step_schedule_ms\": %.6f, "
                   "\"step_prepare_ms\": %.6f, \"step_model_ms\": %.6f, "
                   "\"step_output_ms\": %.6f, \"step_device_ms\": %.6f, "
                   "\"step_host_ms\": %.6f, \"preemptions\": %llu, "
                   "\"tokens_recomputed\": %llu, \"steps_decode_only\": %llu, "
                   "\"steps_graph\": %llu, \"swapped_out\": %llu, \"swapped_in\": %llu, "
                   "\"swap_out_bytes\": %llu, \"swap_in_bytes\": %llu, \"settled_s\": %.6f, "
                   "\"detokenize\": %s, \"async_scheduling\": %s, \"steps_overlapped\": %llu",
                o->w.num_prompts, dt, o->w.num_prompts / dt, sum_in, counted, sum_in / dt,
                counted / dt, (unsigned long long)gen, (unsigned long long)computed,
                (unsigned long long)nsteps, max_in, max_out, max_len, floor_s,
                (unsigned long long)tm.steps, tm.total, tm.schedule, tm.prepare, tm.model,
                tm.output, tm.device, tm.total - tm.device,
                (unsigned long long)(st1.num_preemptions - st0.num_preemptions),
                mix.recomputed, mix.decode_only, mix.graph, mix.swapped_out, mix.swapped_in,
                mix.swap_out_bytes, mix.swap_in_bytes, dt_settled,
                o->detokenize ? "true" : "false", ep.async_scheduling ? "true" : "false",
                (unsigned long long)(st1.num_steps_overlapped - st0.num_steps_overlapped));
        fprintf(f, ", \"cuda_graph_sizes\": ");
        if (!ep.n_cuda_graph_sizes)
            fprintf(f, "null");
        for (int i = 0; i < ep.n_cuda_graph_sizes; i++)
            fprintf(f, "%s%d%s", i ? ", " : "[", ep.cuda_graph_sizes[i],
                    i == ep.n_cuda_graph_sizes - 1 ? "]" : "");
        if (wl_json) {
            fprintf(f, ", \"op_profile\": ");
            json_dumpf(wl_json, f, JSON_COMPACT);
        }
        fprintf(f, "}\n");
        fclose(f);
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda bench throughput: %s\n", err);
    for (int i = 0; streams && i < o->w.num_prompts; i++)
        pgd_stream_destroy(streams[i]);
    pgd_bench_wl_profile_destroy(wl);
    json_decref(wl_json);
    pgd_engine_destroy(e);
    free(streams);
    free(in_len);
    free(out_len);
    free(ids);
    return rc;
}

/* The bench's own options (getopt_long's table); the engine's others: bench_engine_flags.h. */
static const struct option TPUT_OPTS[] = {
    PGD_TOOL_MODEL_OPTIONS, PGD_TOOL_RANDOM_WEIGHTS_OPTION,
    PGD_TOOL_WORKLOAD_OPTIONS,
    { "temperature", required_argument, 0, 't' }, { "max-num-seqs", required_argument, 0, 'q' },
    { "max-num-batched-tokens", required_argument, 0, 'B' },
    { "num-blocks", required_argument, 0, 'N' },
    { "headroom-steps", required_argument, 0, 'H' },
    { "preemption-mode", required_argument, 0, 'P' },
    { "swap-space", required_argument, 0, 'W' },
    { "gpu-memory-utilization", required_argument, 0, 'G' },
    { "warmup", required_argument, 0, 'w' },
    { "json", required_argument, 0, 'J' },
    { "structured-output-ratio", required_argument, 0, 'g' },
    { "structured-output-regex", required_argument, 0, 'e' },
    { "profile-ops", no_argument, 0, 'F' }, { "profile-prompts", required_argument, 0, 'p' },
    { "disable-detokenize", no_argument, 0, 'D' },
    { "async-scheduling", no_argument, 0, 'A' },
    { "no-async-scheduling", no_argument, 0, 'a' },
    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
};

/* The command line into *op: -1 when the run should go on, else the exit status (0 after
 * --help, 2 on a bad argument). */
static int parse_args(struct tput_opts *op, int argc, char **argv)
{
    argc = pgd_tool_engine_flags_take(&op->eng, TPUT_OPTS, argc, argv,
                                      "pagoda bench throughput");
    if (argc < 0)
        return 2;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", TPUT_OPTS, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 't': op->temperature = strtof(optarg, &end); break;
        case 'q': op->max_num_seqs = (int)strtol(optarg, &end, 10); break;
        case 'B': op->max_num_batched_tokens = (int)strtol(optarg, &end, 10); break;
        case 'N': op->num_blocks = (int)strtol(optarg, &end, 10); break;
        case 'H': op->headroom_steps = (int)strtol(optarg, &end, 10); break;
        case 'P':
            if (!strcmp(optarg, "swap"))
                op->preemption_mode = PGD_PREEMPT_SWAP;
            else if (!strcmp(optarg, "recompute"))
                op->preemption_mode = PGD_PREEMPT_RECOMPUTE;
            else if (strcmp(optarg, "auto")) {
                fprintf(stderr, "pagoda bench throughput: --preemption-mode %s: auto, swap or "
                        "recompute\n", optarg);
                return 2;
            }
            break;
        case 'W':
            op->swap_gib = strtod(optarg, &end);
            if (!(op->swap_gib >= 0)) {
                fprintf(stderr, "pagoda bench throughput: --swap-space %s: GiB, 0 or more\n",
                        optarg);
                return 2;
            }
            break;
        case 'G': op->gpu_mem = strtod(optarg, &end); break;
        case 'w': op->warmup = (int)strtol(optarg, &end, 10); break;
        case 'J': op->json = optarg; break;
        case 'g': op->guided_ratio = strtod(optarg, &end); break;
        case 'e': op->guided_regex = optarg; break;
        case 'F': op->profile_ops = true; break;
        case 'D': op->no_detokenize = true; break;
        case 'A': op->async_scheduling = true; break;
        case 'a': op->async_scheduling = false; break;
        case 'p': op->profile_prompts = (int)strtol(optarg, &end, 10); break;
        case 'h': tput_usage(stdout); return 0;
        default:
            switch (pgd_tool_workload_option(&op->w, c, optarg, "pagoda bench throughput")) {
            case 1: break;
            case -1: return 2;
            default:
                switch (pgd_tool_model_option(&op->m, c, optarg)) {
                case 1: break;
                case 0: tput_usage(stderr); return 2;
                default: return 2;
                }
            }
        }
        if (end && *end) {
            fprintf(stderr, "pagoda bench throughput: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (!pgd_tool_model_named(&op->m) || optind < argc || !pgd_tool_workload_valid(&op->w) ||
        op->warmup < 0 || op->temperature < 0 ||
        op->max_num_seqs == 0 || op->max_num_batched_tokens == 0 || op->max_num_seqs < -1 ||
        op->max_num_batched_tokens < -1 || op->headroom_steps < -1 ||
        !(op->guided_ratio >= 0 && op->guided_ratio <= 1) || op->profile_prompts == 0 || op->profile_prompts < -1) {
        tput_usage(stderr);
        return 2;
    }
    return -1;
}

int pgd_cmd_bench_throughput(int argc, char **argv)
{
    struct tput_opts o = { .w = PGD_TOOL_WORKLOAD_DEFAULT, .warmup = 8,
                           .max_num_seqs = -1, .max_num_batched_tokens = -1, .headroom_steps = -1,
                           .gpu_mem = 0.9, .guided_regex = "[ -~]*", .profile_prompts = -1,
                           .async_scheduling = true,
                           .swap_gib = -1 };
    pgd_tool_model_init(&o.m);
    pgd__settings_init(&o.eng);
    int rc = parse_args(&o, argc, argv);
    if (rc < 0) {
        rc = pgd_tool_model_resolve(&o.m, "pagoda bench throughput");
        if (!rc)
            rc = run_tput(&o);
    }
    pgd__settings_fini(&o.eng);
    return rc;
}
