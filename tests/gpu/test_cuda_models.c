/* The whole forward pass on the GPU against the transformers fixtures
 * (tests/fixtures/models/<name>/reference.json), in bf16 with float32 accumulation.
 *
 * Teacher forcing: the reference's own greedy continuation is fed back one decode step at a
 * time, and at every step the reference's token must be our argmax, or within the bf16
 * tolerance of it (a near-tie that rounding may flip). The logits after the prompt and after
 * the last token must be within BF16_TOL of the largest reference logit (the bound the CPU
 * suite uses for native bf16, see tests/unit/test_models.c). Free-running greedy generation
 * (argmax on the GPU) must then reproduce the reference tokens up to the first near-tie.
 * Layouts: the whole prompt in one step, chunks of 5 over scrambled blocks, all prompts in
 * one batch. FP8 KV cache (kv_cache_dtype fp8): graphs replay like eager steps, the pool
 * holds twice the blocks of a bf16 one in the same memory, and the model's logits stay within
 * the CPU suite's FP8 bound (tests/unit/test_kv_fp8.c) of the bf16-cache run's. Skips
 * visibly without a GPU. */
#include "config.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "runtime/model/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(cuda_models);

#ifndef PGD_HAVE_CUDA
Test(cuda_models, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else

/* First logits: the CPU suite's bound for native bf16. After the last token the context
 * holds ~55 positions of bf16 K/V: transformers' own bf16 run differs from its float32
 * run by 0.063 of the largest logit there (llama-bf16 reference.json, case 2, same greedy
 * tokens), so the bound after the last token is twice the first. fp16 keeps 3 more mantissa
 * bits: a quarter of those. */
#define BF16_TOL 0.05

static void need_gpu(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
}

static enum pgd_dtype run_dtype = PGD_DTYPE_COUNT;   /* PGD_DTYPE_COUNT: the checkpoint's */
static enum pgd_dtype run_kv = PGD_DTYPE_COUNT;      /* the KV cache's; COUNT: run_dtype */

static struct pgd__runner *gpu_runner(struct pgd_registry *reg, const char *name, int num_blocks,
                                      double util, char *err, size_t errlen,
                                      enum pgd_status *st)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = fixture_dir(name);
    p.registry = reg;
    p.device = PGD_DEVICE_CUDA;
    p.num_blocks = num_blocks;
    p.block_size = 16;
    p.max_num_seqs = 8;
    p.max_num_batched_tokens = 512;
    p.gpu_memory_utilization = util;
    p.dtype = run_dtype;
    p.kv_cache_dtype = run_kv;
    struct pgd__runner *r = NULL;
    *st = pgd__runner_create(&p, &r, err, errlen);
    return r;
}

static struct pgd__runner *fixture_gpu_runner(struct pgd_registry *reg, const char *name)
{
    char err[1024] = "";
    enum pgd_status st;
    struct pgd__runner *r = gpu_runner(reg, name, 64, 0.9, err, sizeof err, &st);
    cr_assert_eq(st, PGD_OK, "%s", err);
    return r;
}

static const float *step(struct pgd__runner *r, const int32_t *toks, int n_new, int computed,
                         const int32_t *table, int n_logits)
{
    int bs = pgd__runner_block_size(r);
    struct pgd__step_seq s = { .tokens = toks, .n_new = n_new, .n_computed = computed,
                               .block_table = table,
                               .n_blocks = (computed + n_new + bs - 1) / bs,
                               .n_logits = n_logits };
    const float *logits = NULL;
    char err[1024] = "";
    cr_assert_eq(pgd__runner_step(r, &s, 1, &logits, err, sizeof err), PGD_OK, "%s", err);
    return logits;
}

static double max_abs(const float *x, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static void check_fixture_tol(const char *name, int chunk, bool scramble, double tol_first,
                              double tol_last)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference(name);
    struct pgd__runner *r = fixture_gpu_runner(reg, name);
    int vocab = pgd__runner_desc(r)->vocab_size;
    int32_t table[64];
    for (int b = 0; b < 64; b++)
        table[b] = scramble ? (int32_t)((b * 37 + 11) % 64) : b;
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        int np, ng, nf, nl;
        int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
        json_t *want = json_object_get(c, "native");
        int32_t *greedy = json_ints(json_object_get(want, "greedy"), &ng);
        float *rf = json_floats(json_object_get(want, "first_logits"), &nf);
        float *rl = json_floats(json_object_get(want, "last_logits"), &nl);
        cr_assert_eq(nf, vocab);
        int32_t *toks = malloc((size_t)(np + ng) * sizeof *toks);
        memcpy(toks, prompt, (size_t)np * sizeof *toks);
        memcpy(toks + np, greedy, (size_t)ng * sizeof *toks);
        /* Teacher-forced: prefill (in chunks), then one reference token a step. */
        const float *lg = NULL;
        for (int done = 0; done < np;) {
            int take = chunk > 0 && np - done > chunk ? chunk : np - done;
            lg = step(r, toks + done, take, done, table, done + take == np ? 1 : 0);
            done += take;
        }
        double d1 = rel_max_diff(lg, rf, vocab);
        cr_assert_leq(d1, tol_first, "%s prompt %zu: logits after the prompt differ by %g of the "
                      "largest", name, ci, d1);
        int first_tie = ng;
        for (int i = 0; i < ng; i++) {
            int best = argmax(lg, vocab);
            double gap = (double)lg[best] - lg[greedy[i]];
            double tol = tol_first * max_abs(lg, vocab);
            cr_assert_leq(gap, tol, "%s prompt %zu step %d: the reference's token %d is %g below "
                          "our top token %d (tolerance %g)", name, ci, i, greedy[i], gap, best, tol);
            /* A near-tie: our top two within the tolerance. */
            float second = -INFINITY;
            for (int v = 0; v < vocab; v++)
                if (v != best && lg[v] > second)
                    second = lg[v];
            if (first_tie == ng && lg[best] - second <= tol)
                first_tie = i;
            lg = step(r, toks + np + i, 1, np + i, table, 1);
        }
        double d2 = rel_max_diff(lg, rl, vocab);
        cr_assert_leq(d2, tol_last, "%s prompt %zu: logits after the last token differ by %g",
                      name, ci, d2);
        /* Free-running greedy with the argmax on the GPU, up to the first near-tie. */
        int32_t *gen = malloc((size_t)(np + ng) * sizeof *gen), id;
        memcpy(gen, prompt, (size_t)np * sizeof *gen);
        char err[1024] = "";
        int bs = pgd__runner_block_size(r);
        for (int i = 0; i < first_tie; i++) {
            int computed = i == 0 ? 0 : np + i - 1, n = i == 0 ? np : 1;
            struct pgd__step_seq s = { .tokens = gen + computed, .n_new = n, .n_computed = computed,
                                       .block_table = table,
                                       .n_blocks = (computed + n + bs - 1) / bs, .n_logits = 1 };
            cr_assert_eq(pgd__runner_step_greedy(r, &s, 1, &id, err, sizeof err), PGD_OK, "%s", err);
            cr_assert_eq(id, greedy[i], "%s prompt %zu: greedy token %d is %d, transformers gives "
                         "%d (first near-tie at %d)", name, ci, i, id, greedy[i], first_tie);
            gen[np + i] = id;
        }
        fprintf(stderr, "%s %s prompt %zu (len %d, chunk %d): logits within %.4f / %.4f of the "
                "largest, %d of %d greedy tokens before the first near-tie\n", name,
                run_dtype == PGD_DTYPE_F16 ? "fp16" : "bf16", ci, np, chunk, d1, d2, first_tie, ng);
        free(gen); free(toks); free(prompt); free(greedy); free(rf); free(rl);
    }
    pgd__runner_destroy(r);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

static void check_fixture(const char *name, int chunk, bool scramble)
{
    check_fixture_tol(name, chunk, scramble, BF16_TOL, 2 * BF16_TOL);
}

static void check_batched(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_gpu_runner(reg, name);
    check_batched_first_logits(r, name, "native", BF16_TOL);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

#define GPU_MODEL_TESTS(id, name)                                                       \
    Test(cuda_models, id##_greedy_and_logits, .init = need_gpu) { check_fixture(name, 0, false); } \
    Test(cuda_models, id##_chunked_scrambled, .init = need_gpu) { check_fixture(name, 5, true); } \
    Test(cuda_models, id##_batched, .init = need_gpu) { check_batched(name); }

GPU_MODEL_TESTS(llama_f32, "llama-f32")
GPU_MODEL_TESTS(llama_bf16, "llama-bf16")
GPU_MODEL_TESTS(qwen2_f32, "qwen2-f32")
GPU_MODEL_TESTS(qwen3_f32, "qwen3-f32")
GPU_MODEL_TESTS(mistral_f32, "mistral-f32")

/* --dtype fp16 on a float32 checkpoint. */
Test(cuda_models, llama_f32_in_fp16, .init = need_gpu)
{
    run_dtype = PGD_DTYPE_F16;
    check_fixture_tol("llama-f32", 0, false, BF16_TOL / 4, BF16_TOL / 2);
}
Test(cuda_models, qwen3_f32_in_fp16_chunked, .init = need_gpu)
{
    run_dtype = PGD_DTYPE_F16;
    check_fixture_tol("qwen3-f32", 5, true, BF16_TOL / 4, BF16_TOL / 2);
}

/* The KV pool sized from GPU memory after a profiling step, and a clear refusal when the
 * fraction asked for cannot hold the rest. */
Test(cuda_models, kv_cache_sized_from_gpu_memory, .init = need_gpu)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    char err[1024] = "";
    enum pgd_status st;
    struct pgd__runner *r = gpu_runner(reg, "llama-bf16", 0, 0.3, err, sizeof err, &st);
    cr_assert_eq(st, PGD_OK, "%s", err);
    /* 30% of any card holds more than the pool's cap: 4 x max_num_seqs (8) sequences of
     * max_position_embeddings (256) tokens in blocks of 16. */
    int cap = (int)(4.0 * 8 * ((256.0 + 16 - 1) / 16));
    cr_assert_eq(pgd__runner_desc(r)->max_position_embeddings, 256);
    cr_assert_eq(pgd__runner_num_blocks(r), cap, "%d blocks, the cap is %d",
                 pgd__runner_num_blocks(r), cap);
    cr_assert_gt(pgd__runner_activation_bytes(r), 0);
    pgd__runner_destroy(r);
    r = gpu_runner(reg, "llama-bf16", 0, 0.001, err, sizeof err, &st);
    cr_assert_null(r);
    cr_assert_eq(st, PGD_ERR_NOMEM, "%s", err);
    cr_assert(strstr(err, "gpu_memory_utilization 0.00"), "%s", err);
    pgd_registry_destroy(reg);
}

/* Greedy steps (argmax on the device) agree with the logits of plain steps. */
Test(cuda_models, greedy_step_is_argmax_of_logits, .init = need_gpu)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_gpu_runner(reg, "llama-bf16");
    int vocab = pgd__runner_desc(r)->vocab_size;
    int32_t toks[12] = { 1, 5, 9, 33, 2, 7, 100, 3, 8, 300, 4, 6 }, table[4] = { 3, 1, 2, 0 };
    int32_t ids[4];
    struct pgd__step_seq s[2] = {
        { .tokens = toks, .n_new = 8, .n_computed = 0, .block_table = table, .n_blocks = 1, .n_logits = 3 },
        { .tokens = toks + 8, .n_new = 4, .n_computed = 0, .block_table = table + 2, .n_blocks = 1, .n_logits = 1 },
    };
    const float *lg;
    char err[1024] = "";
    cr_assert_eq(pgd__runner_step(r, s, 2, &lg, err, sizeof err), PGD_OK, "%s", err);
    float *copy = malloc((size_t)4 * vocab * sizeof *copy);
    memcpy(copy, lg, (size_t)4 * vocab * sizeof *copy);
    cr_assert_eq(pgd__runner_step_greedy(r, s, 2, ids, err, sizeof err), PGD_OK, "%s", err);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ids[i], argmax(copy + (size_t)i * vocab, vocab), "row %d", i);
    free(copy);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}
/* ---- CUDA graphs of decode steps ------------------------------------------------------- */
static struct pgd__runner *graph_runner(struct pgd_registry *reg, const char *name, bool eager)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = fixture_dir(name);
    p.registry = reg;
    p.device = PGD_DEVICE_CUDA;
    p.num_blocks = 64;
    p.block_size = 16;
    p.max_num_seqs = 8;
    p.max_num_batched_tokens = 512;
    p.enforce_eager = eager;
    p.kv_cache_dtype = run_kv;
    struct pgd__runner *r = NULL;
    char err[1024] = "";
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
    return r;
}

/* Batches of B sequences (prompts of different lengths over scrambled blocks) decode 6
 * steps on a runner with graphs and on an eager one, both fed the eager run's greedy
 * tokens. At the ladder's sizes (1, 2, 4, 8) the graph replays run the very kernels of the
 * eager step, so logits and ids are bit-identical; padded sizes (3 -> 4, 5 and 7 -> 8)
 * run the GEMMs at another width, so only rounding may differ. Steps alternate between
 * full logits and greedy ids. The graphs must have been replayed. */
static void check_graphs(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference(name);
    json_t *cases = json_object_get(ref, "cases");
    int n_cases = (int)json_array_size(cases);
    struct pgd__runner *G = graph_runner(reg, name, false), *E = graph_runner(reg, name, true);
    int vocab = pgd__runner_desc(E)->vocab_size;
    enum { STEPS = 6 };
    int32_t *prompts[8], np[8], tables[8][8], toks[8][128];
    for (int s = 0; s < 8; s++) {
        int n;
        prompts[s] = json_ints(json_object_get(json_array_get(cases, (size_t)(s % n_cases)),
                                               "prompt"), &n);
        np[s] = n - s / n_cases > 1 ? n - s / n_cases : 1;
        cr_assert_leq(np[s] + STEPS, 128);
        for (int b = 0; b < 8; b++)
            tables[s][b] = (int32_t)((s * 8 + b) * 37 % 64);   /* a permutation of 0..63 */
    }
    float *eager = malloc((size_t)8 * vocab * sizeof *eager);
    const int sizes[] = { 1, 2, 3, 4, 5, 8, 7 };
    for (size_t bi = 0; bi < sizeof sizes / sizeof *sizes; bi++) {
        int B = sizes[bi];
        bool exact = (B & (B - 1)) == 0;
        struct pgd__step_seq seqs[8];
        for (int s = 0; s < B; s++) {
            memcpy(toks[s], prompts[s], (size_t)np[s] * sizeof(int32_t));
            seqs[s] = (struct pgd__step_seq){ .tokens = toks[s], .n_new = np[s], .n_computed = 0,
                                              .block_table = tables[s], .n_blocks = 8,
                                              .n_logits = 1 };
        }
        const float *lg;
        char err[1024] = "";
        cr_assert_eq(pgd__runner_step(G, seqs, B, &lg, err, sizeof err), PGD_OK, "%s", err);
        cr_assert_eq(pgd__runner_step(E, seqs, B, &lg, err, sizeof err), PGD_OK, "%s", err);
        for (int s = 0; s < B; s++)
            toks[s][np[s]] = argmax(lg + (size_t)s * vocab, vocab);
        for (int step = 0; step < STEPS; step++) {
            for (int s = 0; s < B; s++)
                seqs[s] = (struct pgd__step_seq){ .tokens = &toks[s][np[s] + step], .n_new = 1,
                                                  .n_computed = np[s] + step,
                                                  .block_table = tables[s], .n_blocks = 8,
                                                  .n_logits = 1 };
            cr_assert_eq(pgd__runner_step(E, seqs, B, &lg, err, sizeof err), PGD_OK, "%s", err);
            memcpy(eager, lg, (size_t)B * vocab * sizeof *eager);
            if (step % 2) {
                int32_t ids[8];
                cr_assert_eq(pgd__runner_step_greedy(G, seqs, B, ids, err, sizeof err), PGD_OK,
                             "%s", err);
                for (int s = 0; s < B; s++) {
                    const float *row = eager + (size_t)s * vocab;
                    int want = argmax(row, vocab);
                    cr_assert(ids[s] == want || (!exact && row[want] - row[ids[s]] <= 0.02 *
                                                 max_abs(row, vocab)),
                              "%s batch %d step %d sequence %d: graph id %d, eager %d", name, B,
                              step, s, ids[s], want);
                }
            } else {
                cr_assert_eq(pgd__runner_step(G, seqs, B, &lg, err, sizeof err), PGD_OK, "%s",
                             err);
                for (int s = 0; s < B; s++) {
                    const float *a = lg + (size_t)s * vocab, *b = eager + (size_t)s * vocab;
                    if (exact) {
                        cr_assert(!memcmp(a, b, (size_t)vocab * sizeof *a), "%s batch %d step %d "
                                  "sequence %d: graph logits differ (by %g of the largest)",
                                  name, B, step, s, rel_max_diff(a, b, vocab));
                    } else {
                        double d = rel_max_diff(a, b, vocab);
                        cr_assert_leq(d, 0.02, "%s batch %d step %d sequence %d: graph logits "
                                      "differ by %g of the largest", name, B, step, s, d);
                    }
                }
            }
            for (int s = 0; s < B; s++)
                toks[s][np[s] + step + 1] = argmax(eager + (size_t)s * vocab, vocab);
        }
    }
    long replays;
    int captured;
    pgd__runner_graph_stats(G, &replays, &captured);
    /* Sizes 1, 2, 4, 8: the first step of each runs eagerly, the second is captured. */
    cr_assert_eq(captured, 4, "%d graphs captured", captured);
    cr_assert_geq(replays, 20, "%ld replays", replays);
    pgd__runner_graph_stats(E, &replays, &captured);
    cr_assert_eq(replays + captured, 0);
    free(eager);
    for (int s = 0; s < 8; s++)
        free(prompts[s]);
    pgd__runner_destroy(G);
    pgd__runner_destroy(E);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

Test(cuda_models, graphs_decode_like_eager_llama_bf16, .init = need_gpu) { check_graphs("llama-bf16"); }
Test(cuda_models, graphs_decode_like_eager_qwen3, .init = need_gpu) { check_graphs("qwen3-f32"); }
Test(cuda_models, graphs_decode_like_eager_mistral_window, .init = need_gpu) { check_graphs("mistral-f32"); }
Test(cuda_models, graphs_decode_like_eager_fp8_kv, .init = need_gpu)
{
    run_kv = PGD_DTYPE_F8_E4M3;
    check_graphs("llama-bf16");
}
Test(cuda_models, graphs_decode_like_eager_fp8_kv_window, .init = need_gpu)
{
    run_kv = PGD_DTYPE_F8_E4M3;
    check_graphs("mistral-f32");
}

/* ---- piecewise CUDA graphs of eager steps ---------------------------------------------- */
/* Mixed steps (two prompt chunks beside three decode rows: 21 tokens, padded to 32) on a
 * runner with PGD_CUDA_PIECEWISE=1 and on a plain one, fed alike. Steps 0-3: the size's
 * warm step, its capture and replay, two replays; their logits within 0.02 of the largest of
 * the plain runner's (the GEMMs run 32 rows there, 21 here: rounding, as the decode graphs'
 * padded sizes). Step 4 gives step 0's inputs again (its K/V rewritten alike, the keys each
 * row reads unchanged): the replay's logits are the warm step's bits. */
static void check_piecewise(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    setenv("PGD_CUDA_PIECEWISE", "1", 1);
    struct pgd__runner *P = graph_runner(reg, name, false);
    unsetenv("PGD_CUDA_PIECEWISE");
    struct pgd__runner *E = graph_runner(reg, name, false);
    int vocab = pgd__runner_desc(E)->vocab_size;
    enum { SEQS = 5, CHUNK = 9, CTX = 20, STEPS = 5, LEN = 64 };
    int32_t toks[SEQS][LEN], tables[SEQS][8];
    uint32_t x = 12345;
    for (int s = 0; s < SEQS; s++) {
        for (int i = 0; i < LEN; i++) {
            x = x * 1664525u + 1013904223u;
            toks[s][i] = 1 + (int32_t)((x >> 8) % (uint32_t)(vocab - 1));
        }
        for (int b = 0; b < 8; b++)
            tables[s][b] = (int32_t)((s * 8 + b) * 37 % 64);
    }
    char err[1024] = "";
    const float *lg;
    /* The decode rows' context: 20 prompt tokens each (itself a piecewise warm step). */
    struct pgd__step_seq seqs[SEQS];
    for (int s = 2; s < SEQS; s++)
        seqs[s - 2] = (struct pgd__step_seq){ .tokens = toks[s], .n_new = CTX, .n_computed = 0,
                                              .block_table = tables[s], .n_blocks = 8,
                                              .n_logits = 1 };
    cr_assert_eq(pgd__runner_step(P, seqs, SEQS - 2, &lg, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__runner_step(E, seqs, SEQS - 2, &lg, err, sizeof err), PGD_OK, "%s", err);
    float *plain = malloc((size_t)SEQS * vocab * sizeof *plain);
    float *first = malloc((size_t)SEQS * vocab * sizeof *first);
    for (int step = 0; step < STEPS; step++) {
        int k = step == STEPS - 1 ? 0 : step;          /* the last step repeats the first */
        for (int s = 0; s < 2; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = toks[s] + CHUNK * k, .n_new = CHUNK,
                                              .n_computed = CHUNK * k, .block_table = tables[s],
                                              .n_blocks = 8, .n_logits = 1 };
        for (int s = 2; s < SEQS; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = toks[s] + CTX + k, .n_new = 1,
                                              .n_computed = CTX + k, .block_table = tables[s],
                                              .n_blocks = 8, .n_logits = 1 };
        cr_assert_eq(pgd__runner_step(E, seqs, SEQS, &lg, err, sizeof err), PGD_OK, "%s", err);
        memcpy(plain, lg, (size_t)SEQS * vocab * sizeof *plain);
        cr_assert_eq(pgd__runner_step(P, seqs, SEQS, &lg, err, sizeof err), PGD_OK, "%s", err);
        for (int s = 0; s < SEQS; s++) {
            double d = rel_max_diff(lg + (size_t)s * vocab, plain + (size_t)s * vocab, vocab);
            cr_assert_leq(d, 0.02, "%s step %d sequence %d: piecewise logits differ from the "
                          "plain runner's by %g of the largest", name, step, s, d);
        }
        if (step == 0)
            memcpy(first, lg, (size_t)SEQS * vocab * sizeof *first);
        if (step == STEPS - 1)
            cr_assert(!memcmp(first, lg, (size_t)SEQS * vocab * sizeof *first), "%s: the "
                      "replay of the warm step's inputs gives other logits (by %g of the "
                      "largest)", name, rel_max_diff(first, lg, SEQS * vocab));
    }
    long replays;
    int captured, eager;
    pgd__runner_piecewise_stats(P, &replays, &captured, &eager);
    cr_assert_eq(eager, 0, "%s: %d piecewise sizes left eager", name, eager);
    cr_assert_geq(captured, 1, "%s: no piecewise size captured", name);
    cr_assert_eq(replays, STEPS - 1, "%s: %ld piecewise replays, steps 1-4 should be", name,
                 replays);
    pgd__runner_piecewise_stats(E, &replays, &captured, &eager);
    cr_assert_eq(replays + captured + eager, 0, "the plain runner has no piecewise graphs");
    free(plain);
    free(first);
    pgd__runner_destroy(P);
    pgd__runner_destroy(E);
    pgd_registry_destroy(reg);
}

Test(cuda_models, piecewise_graphs_like_eager_llama_bf16, .init = need_gpu)
{
    check_piecewise("llama-bf16");
}
Test(cuda_models, piecewise_graphs_like_eager_qwen3_norms, .init = need_gpu)
{
    check_piecewise("qwen3-f32");
}
Test(cuda_models, piecewise_graphs_like_eager_fp8_kv, .init = need_gpu)
{
    run_kv = PGD_DTYPE_F8_E4M3;
    check_piecewise("mistral-f32");
}

/* ---- FP8 KV cache ---------------------------------------------------------------------- */
/* The same kv_cache_memory_bytes hold twice the blocks in e4m3 as in bf16. */
Test(cuda_models, fp8_kv_pool_holds_twice_the_blocks, .init = need_gpu)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    int blocks[2];
    for (int i = 0; i < 2; i++) {
        struct pgd__runner_params p;
        pgd__runner_default_params(&p);
        p.model_dir = fixture_dir("llama-bf16");
        p.registry = reg;
        p.device = PGD_DEVICE_CUDA;
        p.max_num_seqs = 8;
        p.max_num_batched_tokens = 512;
        p.kv_cache_memory_bytes = (size_t)4 << 20;
        p.kv_cache_dtype = i ? PGD_DTYPE_F8_E4M3 : PGD_DTYPE_COUNT;
        struct pgd__runner *r = NULL;
        char err[1024] = "";
        cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
        blocks[i] = pgd__runner_num_blocks(r);
        pgd__runner_destroy(r);
    }
    cr_assert_gt(blocks[0], 0);
    cr_assert_eq(blocks[1], 2 * blocks[0], "e4m3: %d blocks, bf16: %d", blocks[1], blocks[0]);
    pgd_registry_destroy(reg);
}

/* Teacher-forced on the bf16-cache run's greedy tokens (prefill in chunks of 5 over
 * scrambled blocks, then decode steps): every step's logits on the e4m3 cache within
 * FP8_KV_TOL of the bf16 cache's. The CPU suite's bound for the same fixtures
 * (tests/unit/test_kv_fp8.c: 3-bit K/V move their logits by up to 0.244 of the largest). */
#define FP8_KV_TOL 0.25
/* Tokens [from, n) of toks into r in chunks of 5; the logits after the last. */
static const float *feed(struct pgd__runner *r, const int32_t *toks, int from, int n,
                         const int32_t *table)
{
    const float *lg = NULL;
    for (int done = from; done < n;) {
        int take = n - done > 5 ? 5 : n - done;
        lg = step(r, toks + done, take, done, table, done + take == n ? 1 : 0);
        done += take;
    }
    return lg;
}

static void check_fp8_kv(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference(name);
    struct pgd__runner *rb = fixture_gpu_runner(reg, name);
    run_kv = PGD_DTYPE_F8_E4M3;
    struct pgd__runner *r8 = fixture_gpu_runner(reg, name);
    int vocab = pgd__runner_desc(rb)->vocab_size;
    int32_t table[64];
    for (int b = 0; b < 64; b++)
        table[b] = (int32_t)((b * 37 + 11) % 64);
    float *lb = malloc((size_t)vocab * sizeof *lb);
    double worst = 0;
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        int np;
        int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
        int32_t toks[256];
        cr_assert_leq(np + 8, 256);
        memcpy(toks, prompt, (size_t)np * sizeof *toks);
        int n = np;
        for (int st = 0; st < 8; st++) {
            int from = st == 0 ? 0 : n - 1;
            memcpy(lb, feed(rb, toks, from, n, table), (size_t)vocab * sizeof *lb);
            const float *l8 = feed(r8, toks, from, n, table);
            double d = rel_max_diff(l8, lb, vocab);
            worst = fmax(worst, d);
            cr_assert_leq(d, FP8_KV_TOL, "%s prompt %zu step %d: e4m3-cache logits differ by %g "
                          "of the largest", name, ci, st, d);
            toks[n++] = argmax(lb, vocab);
        }
        free(prompt);
    }
    fprintf(stderr, "%s: e4m3 KV cache vs bf16: logits within %.4f of the largest\n", name, worst);
    free(lb);
    pgd__runner_destroy(rb);
    pgd__runner_destroy(r8);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

Test(cuda_models, fp8_kv_llama_near_bf16_kv, .init = need_gpu) { check_fp8_kv("llama-bf16"); }
Test(cuda_models, fp8_kv_qwen3_near_bf16_kv, .init = need_gpu) { check_fp8_kv("qwen3-f32"); }
Test(cuda_models, fp8_kv_mistral_window_near_bf16_kv, .init = need_gpu)
{
    check_fp8_kv("mistral-f32");
}

/* PAGODA_CUDA_GRAPHS=0 turns them off. */
Test(cuda_models, graphs_off_by_environment, .init = need_gpu)
{
    setenv("PAGODA_CUDA_GRAPHS", "0", 1);
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = graph_runner(reg, "llama-bf16", false);
    int32_t toks[8] = { 1, 5, 9, 33, 2, 7, 100, 3 }, table[1] = { 5 }, id;
    char err[1024] = "";
    for (int i = 0; i < 6; i++) {
        struct pgd__step_seq s = { .tokens = toks + i, .n_new = 1, .n_computed = i,
                                   .block_table = table, .n_blocks = 1, .n_logits = 1 };
        cr_assert_eq(pgd__runner_step_greedy(r, &s, 1, &id, err, sizeof err), PGD_OK, "%s", err);
    }
    long replays;
    int captured;
    pgd__runner_graph_stats(r, &replays, &captured);
    cr_assert_eq(replays + captured, 0);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
    unsetenv("PAGODA_CUDA_GRAPHS");
}
#endif
