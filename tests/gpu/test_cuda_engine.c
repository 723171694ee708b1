/* The engine on the GPU (the llama-bf16 fixture through the CUDA runner): many concurrent
 * requests in a pool small enough to preempt, with aborts, n > 1 and shared prefixes, and
 * the greedy fast path (argmax on the device, only ids come back) against full logits and
 * the CPU sampler; preemption by swapping (the runner's copies bit-exact, the engine's
 * outputs those of recompute). Skips visibly without a GPU.
 *
 * Batch composition changes which kernels compute a row (the GEMV kernel up to batch 4,
 * cuBLASLt above, chunked prefill vs decode attention), and bf16 rounding then differs by an
 * ulp: a greedy run in a crowd may therefore leave its run alone at a near-tie. The stress
 * test asks for the top-2 logprobs so that such a step can be checked: at the first position
 * where the two runs differ, the crowd's token must be the alone run's runner-up, within
 * NEAR_TIE nats of its top token; after that the contexts differ and nothing more is
 * compared. Such divergences must also be rare. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "runtime/engine/engine_backend.h"
#include "tests/lib/model_fixture.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

PGD_TEST_SUITE(cuda_engine);

#ifndef PGD_HAVE_CUDA
Test(cuda_engine, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else

#define NEAR_TIE 0.25f
#define MAX_OUT 16

static void need_gpu(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
}

/* An engine on the bf16 Llama fixture on the GPU (tests/lib/model_fixture.c). */
static struct pgd_engine *gpu_engine(int num_blocks, int block_size, int budget, int max_seqs)
{
    return model_engine("llama-bf16", PGD_DEVICE_CUDA, num_blocks, block_size, budget, max_seqs);
}

struct got {
    int32_t tok[2][MAX_OUT];
    float lp0[2][MAX_OUT], lp1[2][MAX_OUT];   /* top-1 and top-2 logprobs (when asked) */
    int32_t alt[2][MAX_OUT];                  /* the runner-up token */
    int n[2];
    enum pgd_finish_reason fin[2];
};

static void collect(struct pgd_stream *s, struct got *g)
{
    memset(g, 0, sizeof *g);
    struct pgd_output o;
    enum pgd_status st;
    while ((st = pgd_stream_next(s, &o, 60000)) == PGD_OK) {
        cr_assert(o.index >= 0 && o.index < 2);
        cr_assert_eq(g->fin[o.index], PGD_FINISH_NONE, "output after the finish");
        for (int i = 0; i < o.n_token_ids; i++) {
            int k = g->n[o.index]++;
            cr_assert_lt(k, MAX_OUT);
            g->tok[o.index][k] = o.token_ids[i];
            if (o.logprobs && o.logprobs[i].n_top >= 2) {
                g->lp0[o.index][k] = o.logprobs[i].top[0].logprob;
                g->lp1[o.index][k] = o.logprobs[i].top[1].logprob;
                g->alt[o.index][k] = o.logprobs[i].top[1].token;
            }
        }
        g->fin[o.index] = o.finish_reason;
    }
    cr_assert_eq(st, PGD_ERR_CLOSED, "stream ended with %s", pgd_status_str(st));
}

static struct pgd_stream *submit(struct pgd_engine *e, const int32_t *ids, int n, int max_out,
                                 int n_samples, int logprobs)
{
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = n;
    r.detokenize = false;
    r.sampling.temperature = 0;
    r.sampling.ignore_eos = true;
    r.sampling.max_tokens = max_out;
    r.sampling.n = n_samples;
    r.sampling.logprobs = logprobs;
    struct pgd_stream *s;
    char err[256];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    return s;
}

static uint32_t xs(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* n prompts of random ids (3..502) into prompt [n][40], each min_len..40 long (len[n]),
 * drawn from seed. */
static void random_prompts(int n, int min_len, uint32_t seed, int32_t (*prompt)[40], int *len)
{
    for (int r = 0; r < n; r++) {
        len[r] = min_len + (int)(xs(&seed) % (uint32_t)(41 - min_len));
        for (int i = 0; i < len[r]; i++) prompt[r][i] = 3 + (int32_t)(xs(&seed) % 500);
    }
}

/* Waits for the engine thread's stats to show nothing running or waiting. */
static void settled_stats(struct pgd_engine *e, struct pgd_engine_stats *st)
{
    for (int i = 0; i < 500; i++) {
        pgd_engine_get_stats(e, st);
        if (st->num_requests_running == 0 && st->num_requests_waiting == 0 &&
            st->kv_cache_usage == 0)
            return;
        usleep(10000);
    }
}

/* Whether sample g (of max_out tokens) equals the run alone a token for token, or leaves it
 * once, at a near-tie where it took the alone run's runner-up (asserted); true if it left. */
static bool left_run_alone(const struct got *a, const struct got *g, int k, int r)
{
    for (int t = 0; t < g->n[k]; t++) {
        if (g->tok[k][t] == a->tok[0][t])
            continue;
        /* A near-tie in the alone run, the crowd took the runner-up. */
        cr_assert_eq(g->tok[k][t], a->alt[0][t], "request %d sample %d token %d: %d, "
                     "alone %d (runner-up %d)", r, k, t, g->tok[k][t], a->tok[0][t],
                     a->alt[0][t]);
        cr_assert_lt(a->lp0[0][t] - a->lp1[0][t], NEAR_TIE,
                     "request %d token %d: the runs differ at a gap of %g nats", r, t,
                     a->lp0[0][t] - a->lp1[0][t]);
        return true;
    }
    return false;
}

/* Every request finishes (or is aborted), greedy tokens equal the run alone up to a
 * checked near-tie, the pool is empty afterwards. Half the requests ask for logprobs (full
 * logits and the CPU sampler), half do not (the greedy path, argmax on the device); with
 * both in a step the step takes full logits, so the greedy path runs whenever only the
 * second half is scheduled. */
Test(cuda_engine, crowd_with_preemption_aborts_and_prefixes_matches_runs_alone, .timeout = 600)
{
    need_gpu();
    enum { N = 400 };
    static struct { int32_t prompt[48]; int n, max_out, nc; bool abort; int lp; } rq[N];
    uint32_t rs = 4242;
    int32_t sys[32];
    for (int i = 0; i < 32; i++) sys[i] = 3 + (int32_t)(xs(&rs) % 500);
    for (int r = 0; r < N; r++) {
        rq[r].n = 1 + (int)(xs(&rs) % 47);
        int pre = xs(&rs) % 2 ? (int)(xs(&rs) % 32) : 0;
        if (pre > rq[r].n) pre = rq[r].n;
        memcpy(rq[r].prompt, sys, (size_t)pre * sizeof *sys);
        for (int i = pre; i < rq[r].n; i++) rq[r].prompt[i] = 3 + (int32_t)(xs(&rs) % 500);
        rq[r].max_out = 1 + (int)(xs(&rs) % MAX_OUT);
        rq[r].nc = xs(&rs) % 5 == 0 ? 2 : 1;
        rq[r].abort = xs(&rs) % 8 == 0;
        rq[r].lp = r % 2 ? 2 : -1;
    }
    /* Alone, one at a time, with logprobs, in a roomy engine. */
    static struct got alone[N];
    struct pgd_engine *e = gpu_engine(256, 16, 256, 4);
    for (int r = 0; r < N; r++) {
        struct pgd_stream *s = submit(e, rq[r].prompt, rq[r].n, rq[r].max_out, 1, 2);
        collect(s, &alone[r]);
        pgd_stream_destroy(s);
        cr_assert_eq(alone[r].n[0], rq[r].max_out);
    }
    pgd_engine_destroy(e);

    /* All at once in a tight pool: 24 blocks of 4 tokens for up to 6 sequences of up to 63,
     * under vLLM's admission rule (the default KV headroom would preempt little here). */
    e = gpu_engine(24, 4, 32, 6);
    pgd__engine_set_kv_policy(e, 0, false);
    static struct pgd_stream *s[N];
    for (int r = 0; r < N; r++) {
        s[r] = submit(e, rq[r].prompt, rq[r].n, rq[r].max_out, rq[r].nc, rq[r].lp);
        if (rq[r].abort)
            pgd_engine_abort(e, pgd_stream_request_id(s[r]));
    }
    int aborted = 0, diverged = 0, compared = 0;
    for (int r = 0; r < N; r++) {
        struct got g;
        collect(s[r], &g);
        pgd_stream_destroy(s[r]);
        const struct got *a = &alone[r];
        for (int k = 0; k < rq[r].nc; k++) {
            cr_assert_neq(g.fin[k], PGD_FINISH_NONE, "request %d sample %d unfinished", r, k);
            if (g.fin[k] == PGD_FINISH_ABORT) {
                aborted++;
                cr_assert_leq(g.n[k], rq[r].max_out);
            } else {
                cr_assert_eq(g.fin[k], PGD_FINISH_LENGTH);
                cr_assert_eq(g.n[k], rq[r].max_out, "request %d sample %d", r, k);
            }
            compared++;
            diverged += left_run_alone(a, &g, k, r);
        }
    }
    cr_assert_gt(aborted, 0);
    cr_assert_leq(diverged * 20, compared, "%d of %d samples left their run alone", diverged,
                  compared);
    struct pgd_engine_stats st;
    settled_stats(e, &st);
    cr_assert_eq(st.num_requests_running, 0);
    cr_assert_eq(st.num_requests_waiting, 0);
    cr_assert_eq(st.kv_cache_usage, 0.0, "blocks still in use: %g", st.kv_cache_usage);
    cr_assert_gt(st.num_preemptions, 0);
    cr_assert_gt(st.prefix_cache_hits, 0);
    uint64_t ended = 0;
    for (int i = 1; i < 4; i++) ended += st.requests_finished[i];
    cr_assert_eq(ended, (uint64_t)compared);
    fprintf(stderr, "cuda_engine: %d samples, %d aborted, %d left their run alone at a "
            "near-tie, %llu preemptions, %llu prefix-cache hits, %llu steps\n", compared,
            aborted, diverged, (unsigned long long)st.num_preemptions,
            (unsigned long long)st.prefix_cache_hits, (unsigned long long)st.num_steps);
    pgd_engine_destroy(e);
}

/* The greedy path (argmax on the GPU, ids only) and the full-logits path (float32 rows to
 * the host, the CPU sampler) give the same tokens: the same requests, one at a time (so
 * both runs batch identically), once each way. */
Test(cuda_engine, greedy_path_equals_full_logits)
{
    need_gpu();
    enum { N = 48 };
    int32_t prompt[N][40];
    int len[N];
    random_prompts(N, 1, 99, prompt, len);
    static struct got g[2][N];
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = gpu_engine(128, 16, 256, 4);
        pgd__engine_set_greedy_path(e, mode == 0);
        for (int r = 0; r < N; r++) {
            struct pgd_stream *s = submit(e, prompt[r], len[r], MAX_OUT, r % 3 == 0 ? 2 : 1, -1);
            collect(s, &g[mode][r]);
            pgd_stream_destroy(s);
        }
        pgd_engine_destroy(e);
    }
    for (int r = 0; r < N; r++)
        for (int k = 0; k < (r % 3 == 0 ? 2 : 1); k++) {
            cr_assert_eq(g[0][r].n[k], MAX_OUT);
            cr_assert_eq(g[1][r].n[k], MAX_OUT);
            for (int t = 0; t < MAX_OUT; t++)
                cr_assert_eq(g[0][r].tok[k][t], g[1][r].tok[k][t],
                             "request %d sample %d token %d: greedy path %d, full logits %d", r,
                             k, t, g[0][r].tok[k][t], g[1][r].tok[k][t]);
        }
}
/* Speculative decoding on the GPU: the verify steps are multi-token chunks with a logits row
 * per position (sampled on the device: the requests ask for logprobs), rolled back after
 * each rejection. n-gram proposals over repetitive prompts, and the fixture drafting for
 * itself through a second CUDA runner, each against the same requests without speculation,
 * one request at a time: equal tokens up to a checked near-tie (a verify chunk and a decode
 * step may round a bf16 row differently), proposals accepted, the pool empty afterwards. */
Test(cuda_engine, speculative_decoding_matches_up_to_near_ties)
{
    need_gpu();
    enum { N = 12 };
    int32_t prompt[N][32];
    for (int r = 0; r < N; r++)
        for (int i = 0; i < 32; i++)     /* a period of 1 + r % 6 tokens */
            prompt[r][i] = 3 + (int32_t)(((i % (1 + r % 6)) * 61 + r * 7) % 500);
    char draft[1200];
    snprintf(draft, sizeof draft, "{\"method\": \"draft_model\", \"model\": \"%s\", "
             "\"num_speculative_tokens\": 4}", fixture_dir("llama-bf16"));
    const char *configs[3] = { NULL, "{\"method\": \"ngram\", \"num_speculative_tokens\": 3, "
                               "\"prompt_lookup_max\": 3, \"prompt_lookup_min\": 1}", draft };
    static struct got g[3][N];
    for (int mode = 0; mode < 3; mode++) {
        struct pgd_engine_params p = pgd_engine_default_params();
        p.device = PGD_DEVICE_CUDA;
        p.num_blocks = 128;
        p.block_size = 16;
        p.max_num_batched_tokens = 256;
        p.max_num_seqs = 4;
        p.speculative_config = configs[mode];
        struct pgd_engine *e = model_engine_params("llama-bf16", &p);
        for (int r = 0; r < N; r++) {
            struct pgd_stream *s = submit(e, prompt[r], 32, MAX_OUT, 1, 2);
            collect(s, &g[mode][r]);
            pgd_stream_destroy(s);
        }
        struct pgd_engine_stats st;
        settled_stats(e, &st);
        cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12, "mode %d", mode);
        if (mode)
            cr_assert_gt(st.spec_num_accepted_tokens, 0, "mode %d: none of %llu accepted", mode,
                         (unsigned long long)st.spec_num_draft_tokens);
        pgd_engine_destroy(e);
    }
    int diverged = 0;
    for (int mode = 1; mode < 3; mode++)
        for (int r = 0; r < N; r++) {
            const struct got *a = &g[0][r], *b = &g[mode][r];
            cr_assert_eq(b->n[0], MAX_OUT);
            for (int t = 0; t < MAX_OUT; t++) {
                if (a->tok[0][t] == b->tok[0][t])
                    continue;
                cr_assert(b->tok[0][t] == a->alt[0][t] && a->lp0[0][t] - a->lp1[0][t] < NEAR_TIE,
                          "mode %d request %d token %d: %d, without speculation %d (runner-up "
                          "%d, %.3f nats behind)", mode, r, t, b->tok[0][t], a->tok[0][t],
                          a->alt[0][t], a->lp0[0][t] - a->lp1[0][t]);
                diverged++;
                break;
            }
        }
    cr_assert_leq(diverged, N / 4, "%d of %d runs diverged at near-ties", diverged, 2 * N);
}
/* ---- preemption by swapping ----------------------------------------------------------- */

/* The runner's copies on the GPU (the swap stream, its events, the copy kernel, or
 * cudaMemcpyAsync runs with PAGODA_SWAP_COPY=memcpy): a decode step over blocks swapped
 * out, overwritten and swapped back into other blocks gives bit-exact logits, in a bf16
 * cache and an FP8 one (tests/lib/model_fixture.c: check_swap_round_trip). */
static void gpu_round_trip(enum pgd_dtype kv, const char *copy)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = fixture_dir("llama-bf16");
    p.registry = reg;
    p.device = PGD_DEVICE_CUDA;
    p.num_blocks = 32;
    p.block_size = 4;
    p.max_num_seqs = 4;
    p.max_num_batched_tokens = 64;
    p.kv_cache_dtype = kv;
    struct pgd__runner *r = NULL;
    char err[1024] = "";
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
    if (copy)
        setenv("PAGODA_SWAP_COPY", copy, 1);
    check_swap_round_trip(r);
    unsetenv("PAGODA_SWAP_COPY");
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

Test(cuda_engine, swap_round_trip_is_bit_exact)
{
    need_gpu();
    gpu_round_trip(PGD_DTYPE_COUNT, NULL);
    gpu_round_trip(PGD_DTYPE_COUNT, "memcpy");
    gpu_round_trip(PGD_DTYPE_F8_E4M3, NULL);
    gpu_round_trip(PGD_DTYPE_F8_E4M3, "memcpy");
}

/* The same requests all at once in a pool small enough to preempt (as the crowd test, no
 * aborts), preempting by recompute, by swapping (the copy kernel) and by swapping with
 * cudaMemcpyAsync: each matches the runs alone up to a checked near-tie; swapping
 * recomputes nothing and brings every swapped sequence back. */
Test(cuda_engine, swap_and_recompute_match_runs_alone, .timeout = 600)
{
    need_gpu();
    enum { N = 160 };
    static struct { int32_t prompt[48]; int n, max_out, nc; } rq[N];
    uint32_t rs = 777;
    int32_t sys[32];
    for (int i = 0; i < 32; i++) sys[i] = 3 + (int32_t)(xs(&rs) % 500);
    for (int r = 0; r < N; r++) {
        rq[r].n = 16 + (int)(xs(&rs) % 32);
        int pre = xs(&rs) % 2 ? (int)(xs(&rs) % 32) : 0;
        if (pre > rq[r].n) pre = rq[r].n;
        memcpy(rq[r].prompt, sys, (size_t)pre * sizeof *sys);
        for (int i = pre; i < rq[r].n; i++) rq[r].prompt[i] = 3 + (int32_t)(xs(&rs) % 500);
        rq[r].max_out = MAX_OUT;
        rq[r].nc = xs(&rs) % 5 == 0 ? 2 : 1;
    }
    static struct got alone[N];
    struct pgd_engine *e = gpu_engine(256, 16, 256, 4);
    for (int r = 0; r < N; r++) {
        struct pgd_stream *s = submit(e, rq[r].prompt, rq[r].n, rq[r].max_out, 1, 2);
        collect(s, &alone[r]);
        pgd_stream_destroy(s);
    }
    pgd_engine_destroy(e);
    const struct { enum pgd_preemption_mode mode; const char *copy; } runs[3] = {
        { PGD_PREEMPT_RECOMPUTE, NULL }, { PGD_PREEMPT_SWAP, NULL },
        { PGD_PREEMPT_SWAP, "memcpy" } };
    uint64_t recomputed_alone = 0;   /* run 0's (recompute): what swapping must beat */
    for (int m = 0; m < 3; m++) {
        struct pgd_engine_params p = pgd_engine_default_params();
        p.device = PGD_DEVICE_CUDA;
        p.num_blocks = 24;
        p.block_size = 4;
        p.max_num_batched_tokens = 32;
        p.max_num_seqs = 6;
        p.preemption_mode = runs[m].mode;
        p.swap_space_bytes = (size_t)64 << 20;
        if (runs[m].copy)
            setenv("PAGODA_SWAP_COPY", runs[m].copy, 1);
        e = model_engine_params("llama-bf16", &p);
        unsetenv("PAGODA_SWAP_COPY");
        pgd__engine_set_kv_policy(e, 0, false);
        static struct pgd_stream *s[N];
        for (int r = 0; r < N; r++)
            s[r] = submit(e, rq[r].prompt, rq[r].n, rq[r].max_out, rq[r].nc, -1);
        int diverged = 0, compared = 0;
        for (int r = 0; r < N; r++) {
            struct got g;
            collect(s[r], &g);
            pgd_stream_destroy(s[r]);
            for (int k = 0; k < rq[r].nc; k++) {
                cr_assert_eq(g.fin[k], PGD_FINISH_LENGTH, "run %d request %d sample %d", m, r,
                             k);
                cr_assert_eq(g.n[k], rq[r].max_out);
                compared++;
                diverged += left_run_alone(&alone[r], &g, k, r);
            }
        }
        cr_assert_leq(diverged * 20, compared, "run %d: %d of %d samples left their run alone",
                      m, diverged, compared);
        struct pgd_engine_stats st;
        settled_stats(e, &st);
        cr_assert_eq(st.kv_cache_usage, 0.0, "blocks still in use: %g", st.kv_cache_usage);
        cr_assert_eq(st.num_requests_swapped, 0);
        cr_assert_gt(st.num_preemptions, 0, "run %d: the pool was meant to preempt", m);
        if (runs[m].mode == PGD_PREEMPT_SWAP) {
            cr_assert_gt(st.num_swap_blocks, 0);
            /* (A victim with nothing computed yet is "recomputed": there is nothing to copy.) */
            cr_assert_gt(st.num_swapped_out, 0, "the pool was meant to swap");
            cr_assert_eq(st.num_swapped_in, st.num_swapped_out);
            /* The swap space is capped at the device pool's 24 blocks: once the sequences
             * swapped out hold it all, a further victim is recomputed (by design), but fewer
             * tokens than when every victim is. */
            cr_assert_lt(st.num_tokens_recomputed, recomputed_alone,
                         "run %d: %llu tokens recomputed, %llu with recompute alone", m,
                         (unsigned long long)st.num_tokens_recomputed,
                         (unsigned long long)recomputed_alone);
            cr_assert_eq(st.swap_in_bytes, st.swap_out_bytes);
        } else {
            cr_assert_eq(st.num_swapped_out, 0);
            cr_assert_gt(st.num_tokens_recomputed, 0);
            recomputed_alone = st.num_tokens_recomputed;
        }
        fprintf(stderr, "cuda_engine: %s%s: %d samples, %d left their run alone at a near-tie, "
                "%llu preemptions, %llu swapped out (%.1f MB), %llu tokens recomputed\n",
                runs[m].mode == PGD_PREEMPT_SWAP ? "swap" : "recompute",
                runs[m].copy ? " (memcpy)" : "", compared, diverged,
                (unsigned long long)st.num_preemptions, (unsigned long long)st.num_swapped_out,
                st.swap_out_bytes / 1e6, (unsigned long long)st.num_tokens_recomputed);
        pgd_engine_destroy(e);
    }
}

/* Async scheduling on the GPU (runtime/runner/runner_async.c): each step queued while the
 * one before runs, its pending tokens put in on the device. The same requests step in turn
 * and async in two engines; every request is admitted in the first step (the engine is
 * held while they are submitted: the GPU's sums depend on which rows share a step) and
 * none ends early (max_tokens only), so both take the same steps, and their outputs must
 * be equal bit for bit: greedy requests alone (the argmax path, decode steps through the
 * graphs) and sampled ones with logprobs (the sampling kernels, their ids read from the
 * results on the device), n = 2 among them; and sampled ones with repetition, frequency and presence
 * penalties, whose pending token the sampling kernel reads from the step's batch
 * (PGD_CUDA_ASYNC_PENALTIES=0 would make their steps land in turn). */
Test(cuda_engine, async_scheduling_gives_the_same_outputs)
{
    need_gpu();
    enum { N = 24 };
    int32_t prompt[N][40];
    int len[N];
    random_prompts(N, 5, 4242, prompt, len);
    static struct got g[3][2][N];
    for (int sampled = 0; sampled < 3; sampled++)
        for (int mode = 0; mode < 2; mode++) {
            struct pgd_engine_params p = pgd_engine_default_params();
            p.device = PGD_DEVICE_CUDA;
            p.num_blocks = 256;
            p.block_size = 16;
            p.max_num_batched_tokens = 1024;
            p.max_num_seqs = 32;
            p.async_scheduling = mode == 1;
            struct pgd_engine *e = model_engine_params("llama-bf16", &p);
            pgd__engine_hold(e, true);   /* all N in the first step, in both runs */
            struct pgd_stream *s[N];
            for (int r = 0; r < N; r++) {
                struct pgd_request_params rp = pgd_request_default_params();
                rp.prompt_ids = prompt[r];
                rp.n_prompt_ids = len[r];
                rp.detokenize = false;
                rp.sampling.ignore_eos = true;
                rp.sampling.max_tokens = 4 + r % 12;
                rp.sampling.n = r % 7 == 0 ? 2 : 1;
                rp.sampling.temperature = sampled ? 0.8f : 0.0f;
                rp.sampling.has_seed = true;
                rp.sampling.seed = 900 + (uint64_t)r;
                rp.sampling.logprobs = sampled ? 2 : -1;
                if (sampled == 2) {
                    rp.sampling.repetition_penalty = 1.3f;
                    rp.sampling.frequency_penalty = r % 2 ? 0.7f : 0.0f;
                    rp.sampling.presence_penalty = r % 3 ? 0.4f : 0.0f;
                }
                char err[256];
                cr_assert_eq(pgd_engine_submit(e, &rp, &s[r], err, sizeof err), PGD_OK, "%s", err);
            }
            pgd__engine_hold(e, false);
            for (int r = 0; r < N; r++) {
                collect(s[r], &g[sampled][mode][r]);
                pgd_stream_destroy(s[r]);
            }
            struct pgd_engine_stats st;
            settled_stats(e, &st);
            if (mode == 1)
                cr_assert_gt(st.num_steps_overlapped, 4, "sampled %d: %llu steps overlapped",
                             sampled, (unsigned long long)st.num_steps_overlapped);
            long replays;
            int captured;
            pgd__runner_graph_stats(pgd__engine_runner(e), &replays, &captured);
            cr_assert_gt(replays, 0, "sampled %d, async %d: no step through a graph", sampled,
                         mode);
            pgd_engine_destroy(e);
        }
    for (int sampled = 0; sampled < 3; sampled++)
        for (int r = 0; r < N; r++)
            for (int k = 0; k < (r % 7 == 0 ? 2 : 1); k++) {
                const struct got *a = &g[sampled][0][r], *b = &g[sampled][1][r];
                cr_assert_eq(a->n[k], 4 + r % 12);
                cr_assert_eq(b->n[k], a->n[k], "sampled %d request %d sample %d", sampled, r, k);
                cr_assert_eq(memcmp(a->tok[k], b->tok[k], sizeof a->tok[k]), 0,
                             "sampled %d request %d sample %d: tokens differ (first %d vs %d)",
                             sampled, r, k, a->tok[k][0], b->tok[k][0]);
                int at = 0;
                while (at < a->n[k] && a->lp0[k][at] == b->lp0[k][at] &&
                       a->lp1[k][at] == b->lp1[k][at] && a->alt[k][at] == b->alt[k][at])
                    at++;
                cr_assert_eq(at, a->n[k], "sampled %d request %d sample %d: logprobs differ at "
                             "output %d of %d (token %d; in turn %.9g / %.9g runner-up %d, "
                             "async %.9g / %.9g runner-up %d)", sampled, r, k, at, a->n[k],
                             a->tok[k][at], a->lp0[k][at], a->lp1[k][at], a->alt[k][at],
                             b->lp0[k][at], b->lp1[k][at], b->alt[k][at]);
            }
}
#endif
