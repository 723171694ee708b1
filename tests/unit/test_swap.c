/* Preemption by swapping: the host swap pool's records (runtime/kv/swap_pool.c), and the
 * engine end to end on the CPU over the tiny Llama fixture with a KV pool too small for its
 * requests: greedy outputs with swapping equal those with recompute and those of a pool
 * big enough never to preempt, in the float32 cache and in an FP8 one; and the runner's
 * block copies, whose round trip gives a decode step bit-exact logits. The scheduler's swap decisions are test_scheduler.c's. */
#include <criterion/criterion.h>
#include "runtime/kv/swap_pool.h"
#include "runtime/engine/scheduler.h"
#include "runtime/engine/engine_backend.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(swap_pool);
PGD_TEST_SUITE(engine_swap);

/* ---- the host pool's records ------------------------------------------------------------ */

Test(swap_pool, hands_out_lowest_ids_first_all_or_nothing)
{
    struct pgd__swap_pool p;
    char err[256];
    cr_assert_eq(pgd__swap_pool_init(&p, 6, err, sizeof err), PGD_OK, "%s", err);
    int32_t a[6], b[6];
    cr_assert(pgd__swap_pool_alloc(&p, 4, a));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(a[i], i, "a sequence's blocks come out consecutive");
    cr_assert_eq(pgd__swap_pool_num_free(&p), 2);
    cr_assert_not(pgd__swap_pool_alloc(&p, 3, b), "3 of 2 free");
    cr_assert_eq(pgd__swap_pool_num_free(&p), 2, "a refused allocation takes nothing");
    pgd__swap_pool_free(&p, a, 4);
    cr_assert(pgd__swap_pool_check(&p, err, sizeof err), "%s", err);
    /* Given back, they come out again in the same order. */
    cr_assert(pgd__swap_pool_alloc(&p, 4, b));
    cr_assert_arr_eq(a, b, 4 * sizeof *a);
    cr_assert(pgd__swap_pool_alloc(&p, 2, b + 4));
    cr_assert_eq(pgd__swap_pool_num_free(&p), 0);
    cr_assert_not(pgd__swap_pool_alloc(&p, 1, a));
    cr_assert(pgd__swap_pool_alloc(&p, 0, a), "nothing is always there");
    pgd__swap_pool_free(&p, b, 6);
    cr_assert(pgd__swap_pool_check(&p, err, sizeof err), "%s", err);
    pgd__swap_pool_fini(&p);
}

Test(swap_pool, check_finds_a_repeated_id_and_sizes_follow_bytes)
{
    struct pgd__swap_pool p;
    char err[256];
    cr_assert_eq(pgd__swap_pool_init(&p, 4, err, sizeof err), PGD_OK);
    int32_t a[2];
    cr_assert(pgd__swap_pool_alloc(&p, 2, a));
    p.free_ids[p.num_free++] = p.free_ids[0];       /* a corrupt stack: a repeated id */
    cr_assert_not(pgd__swap_pool_check(&p, err, sizeof err));
    cr_assert(strstr(err, "repeated"), "%s", err);
    pgd__swap_pool_fini(&p);
    cr_assert_eq(pgd__swap_pool_init(&p, 0, err, sizeof err), PGD_OK, "no swap space is fine");
    cr_assert_eq(pgd__swap_pool_num_free(&p), 0);
    pgd__swap_pool_fini(&p);
    cr_assert_eq(pgd__swap_pool_init(&p, -1, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "num_blocks"), "%s", err);
    cr_assert_eq(pgd__swap_pool_blocks_for_bytes((size_t)4 << 30, (size_t)2 << 20), 2048);
    cr_assert_eq(pgd__swap_pool_blocks_for_bytes(100, 64), 1);
    cr_assert_eq(pgd__swap_pool_blocks_for_bytes(63, 64), 0);
}

Test(swap_pool, memory_mirrors_the_cache_arrays)
{
    struct pgd__swap_mem m;
    char err[256];
    cr_assert_eq(pgd__swap_mem_init(&m, PGD_DEVICE_CPU, 5, 4, 96, err, sizeof err), PGD_OK);
    /* Array a's block b is at a * 5 * 96 + b * 96: every byte of each is its own. */
    for (int a = 0; a < 4; a++)
        memset(pgd__swap_mem_array(&m, a), 'A' + a, 5 * 96);
    for (int a = 0; a < 4; a++) {
        const char *p = pgd__swap_mem_array(&m, a);
        for (int k = 0; k < 5 * 96; k++)
            cr_assert_eq(p[k], 'A' + a);
    }
    pgd__swap_mem_fini(&m);
    cr_assert_eq(pgd__swap_mem_init(&m, PGD_DEVICE_CPU, 0, 4, 96, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
}

/* ---- the runner's copies ------------------------------------------------------------------- */

Test(swap_pool, runner_round_trip_is_bit_exact)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner(reg, "llama-f32", 32, 4, 4);
    check_swap_round_trip(r);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

Test(swap_pool, runner_round_trip_is_bit_exact_fp8_cache)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner_kv(reg, fixture_dir("llama-f32"), NULL,
                                              PGD_DTYPE_F8_E4M3, 32, 4, 4);
    check_swap_round_trip(r);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

/* ---- the engine ---------------------------------------------------------------------------- */

/* Every (case, sample)'s greedy tokens. */
struct outs {
    int32_t tok[16][128];
    int n[16];
    int n_seqs;
};

/* The fixture's cases together (case 1 with two samples sharing its prompt through the
 * prefix cache) on num_blocks blocks of 4 tokens, 24 tokens a step, in kv_dtype (NULL: the
 * model's), under vLLM's admission rule, preempting by mode with swap_bytes of swap space. */
static void run_cases(int num_blocks, const char *kv_dtype, enum pgd_preemption_mode mode,
                      size_t swap_bytes, struct outs *o, struct pgd_engine_stats *st)
{
    memset(o, 0, sizeof *o);
    json_t *ref = fixture_reference("llama-f32");
    struct pgd_engine_params p = pgd_engine_default_params();
    p.num_blocks = num_blocks;
    p.block_size = 4;
    p.max_num_batched_tokens = 24;
    p.max_num_seqs = 8;
    p.kv_cache_dtype = kv_dtype;
    p.preemption_mode = mode;
    p.swap_space_bytes = swap_bytes;
    struct pgd_engine *e = model_engine_params("llama-f32", &p);    /* paranoid checks on */
    /* vLLM's admission (while blocks last, preempting the newest) preempts in a small pool. */
    pgd__engine_set_kv_policy(e, 0, false);
    json_t *cases = json_object_get(ref, "cases");
    size_t nc = json_array_size(cases);
    cr_assert_leq(nc, 8);
    int n_new = (int)json_integer_value(json_object_get(ref, "n_new"));
    cr_assert_leq(n_new, 128);
    struct pgd_stream *s[8];
    for (size_t i = 0; i < nc; i++) {
        int np;
        int32_t *prompt = json_ints(json_object_get(json_array_get(cases, i), "prompt"), &np);
        struct pgd_request_params r = pgd_request_default_params();
        r.prompt_ids = prompt;
        r.n_prompt_ids = np;
        r.sampling.temperature = 0.0f;
        r.sampling.max_tokens = n_new;
        r.sampling.ignore_eos = true;
        r.sampling.n = i == 1 ? 2 : 1;
        char err[256];
        cr_assert_eq(pgd_engine_submit(e, &r, &s[i], err, sizeof err), PGD_OK, "%s", err);
        free(prompt);
    }
    for (size_t i = 0; i < nc; i++) {
        int base = o->n_seqs;
        o->n_seqs += i == 1 ? 2 : 1;
        struct pgd_output out;
        enum pgd_status rc;
        while ((rc = pgd_stream_next(s[i], &out, 60000)) == PGD_OK) {
            int k = base + out.index;
            for (int t = 0; t < out.n_token_ids; t++) {
                cr_assert_lt(o->n[k], 128);
                o->tok[k][o->n[k]++] = out.token_ids[t];
            }
        }
        cr_assert_eq(rc, PGD_ERR_CLOSED, "%s", pgd_status_str(rc));
        pgd_stream_destroy(s[i]);
    }
    for (int k = 0; k < o->n_seqs; k++)
        cr_assert_eq(o->n[k], n_new);
    pgd_engine_get_stats(e, st);
    pgd_engine_destroy(e);
    json_decref(ref);
}

/* The same tokens. (Not the same float logprobs: the CPU kernels round differently for
 * different batches, and each pool batches differently; runner_round_trip_is_bit_exact
 * checks that a swap brings back the very bytes.) */
static void assert_same(const struct outs *a, const struct outs *b, const char *what)
{
    cr_assert_eq(a->n_seqs, b->n_seqs);
    for (int k = 0; k < a->n_seqs; k++) {
        cr_assert_arr_eq(a->tok[k], b->tok[k], (size_t)a->n[k] * sizeof a->tok[k][0],
                         "%s: sequence %d's tokens differ", what, k);
    }
}

/* 40 blocks of 4 tokens for five sequences of up to ~100 tokens: preemption; 400: none. */
static void swap_equals_recompute_and_a_big_pool(const char *kv_dtype)
{
    struct outs big, rec, swp;
    struct pgd_engine_stats sb, sr, ss;
    run_cases(400, kv_dtype, PGD_PREEMPT_RECOMPUTE, 0, &big, &sb);
    run_cases(40, kv_dtype, PGD_PREEMPT_RECOMPUTE, 0, &rec, &sr);
    run_cases(40, kv_dtype, PGD_PREEMPT_SWAP, (size_t)64 << 20, &swp, &ss);
    cr_assert_eq(sb.num_preemptions, 0, "the big pool was meant never to preempt");
    cr_assert_gt(sr.num_preemptions, 0, "the small pool was meant to preempt");
    cr_assert_gt(sr.num_tokens_recomputed, 0);
    cr_assert_eq(sr.num_swapped_out, 0);
    cr_assert_eq(sr.num_swap_blocks, 0, "recompute allocates no swap space");
    cr_assert_gt(ss.num_swap_blocks, 0);
    cr_assert_gt(ss.num_swapped_out, 0, "the small pool was meant to swap");
    cr_assert_eq(ss.num_swapped_in, ss.num_swapped_out, "every swapped sequence came back");
    cr_assert_eq(ss.num_preemptions, ss.num_swapped_out, "every preemption swapped");
    cr_assert_eq(ss.num_tokens_recomputed, 0, "swapping recomputes nothing");
    cr_assert_gt(ss.swap_out_bytes, 0);
    cr_assert_eq(ss.swap_in_bytes, ss.swap_out_bytes);
    cr_assert_eq(ss.num_requests_swapped, 0);
    assert_same(&big, &rec, "recompute vs the big pool");
    assert_same(&big, &swp, "swap vs the big pool");
}

Test(engine_swap, swap_equals_recompute_and_a_big_pool, .timeout = 120)
{
    swap_equals_recompute_and_a_big_pool(NULL);
}

Test(engine_swap, swap_equals_recompute_and_a_big_pool_fp8_cache, .timeout = 120)
{
    swap_equals_recompute_and_a_big_pool("fp8");
}

/* A swap space of a few blocks: preemptions that do not fit it recompute, with the same
 * outputs; auto mode with the default minimum recomputes these short sequences. */
Test(engine_swap, small_swap_space_and_auto_fall_back_to_recompute, .timeout = 120)
{
    struct outs big, small, aut;
    struct pgd_engine_stats sb, ss, sa;
    run_cases(400, NULL, PGD_PREEMPT_RECOMPUTE, 0, &big, &sb);
    run_cases(40, NULL, PGD_PREEMPT_SWAP, 1, &small, &ss);    /* 1 byte: no block fits */
    cr_assert_eq(ss.num_swap_blocks, 0);
    cr_assert_eq(ss.num_swapped_out, 0);
    cr_assert_gt(ss.num_preemptions, 0);
    assert_same(&big, &small, "no swap space vs the big pool");
    run_cases(40, NULL, PGD_PREEMPT_AUTO, (size_t)64 << 20, &aut, &sa);
    cr_assert_gt(sa.num_swap_blocks, 0);
    cr_assert_gt(sa.num_preemptions, 0);
    cr_assert_eq(sa.num_swapped_out, 0, "auto swaps only sequences of %d+ computed tokens",
                 PGD__SCHED_SWAP_MIN_TOKENS_DEFAULT);
    assert_same(&big, &aut, "auto vs the big pool");
}
