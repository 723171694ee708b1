/* The scheduler and kv manager driven step by step, with a stand-in "model" that only
 * produces next tokens deterministically from the token history. The stand-in keeps a
 * fake KV cache: every computed position writes (token, position) into the slot its block
 * table names, and a next token is derived from what the cache holds for positions
 * 0..n-1, so a block shared or reused wrongly changes the output. */
#include <criterion/criterion.h>
#include "runtime/engine/scheduler.h"
#include <stdlib.h>
#include <string.h>
#include "tests/lib/test_common.h"

PGD_TEST_SUITE(scheduler);
PGD_TEST_SUITE(scheduler_stress);

#define EOS 0

struct sim {
    struct pgd__kv_manager kv;
    struct pgd__scheduler sched;
    int64_t *cache;                 /* [num_blocks * block_size]: token << 32 | position */
    int64_t *host;                  /* [swap blocks * block_size]: the swap space's twin */
    int vocab;
    uint64_t prompt_computed;       /* prompt positions actually computed */
    uint64_t steps;
};

static void sim_init(struct sim *s, int num_blocks, int block_size, bool caching,
                     int max_seqs, int budget, bool chunked, enum pgd_sched_policy pol)
{
    char err[256];
    memset(s, 0, sizeof *s);
    cr_assert_eq(pgd__kv_manager_init(&s->kv, num_blocks, block_size, caching, err, sizeof err),
                 PGD_OK, "%s", err);
    struct pgd__sched_params p = { .max_num_seqs = max_seqs, .max_num_batched_tokens = budget,
                                   .enable_chunked_prefill = chunked, .policy = pol };
    cr_assert_eq(pgd__scheduler_init(&s->sched, &p, &s->kv, err, sizeof err), PGD_OK);
    s->cache = malloc((size_t)num_blocks * block_size * sizeof *s->cache);
    for (int i = 0; i < num_blocks * block_size; i++)
        s->cache[i] = -1;
    s->vocab = 512;
}

/* Preemption by swapping into a host pool of n_swap blocks, in mode (swap_min_tokens min). */
static void sim_swap(struct sim *s, int n_swap, enum pgd_preemption_mode mode, int min_tokens)
{
    char err[256];
    cr_assert_eq(pgd__kv_manager_init_swap(&s->kv, n_swap, err, sizeof err), PGD_OK, "%s", err);
    s->sched.p.preemption_mode = mode;
    s->sched.p.swap_min_tokens = min_tokens;
    free(s->host);
    s->host = malloc((size_t)(n_swap > 0 ? n_swap : 1) * s->kv.block_size * sizeof *s->host);
    for (int i = 0; i < n_swap * s->kv.block_size; i++)
        s->host[i] = -1;
}

static void sim_fini(struct sim *s)
{
    cr_assert_eq(pgd__block_pool_num_free(&s->kv.pool), s->kv.pool.num_blocks,
                 "blocks leaked");
    cr_assert_eq(pgd__swap_pool_num_free(&s->kv.swap), s->kv.swap.num_blocks,
                 "host blocks leaked");
    pgd__scheduler_fini(&s->sched);
    pgd__kv_manager_fini(&s->kv);
    free(s->cache);
    free(s->host);
}

/* The plan's copies, as the engine runs them: swap-outs, then swap-ins, before the step.
 * A device block a swap-out released and nobody holds or caches is poisoned after its copy,
 * so that a swap-in that failed to copy it back shows. */
static void sim_swaps(struct sim *s, const struct pgd__sched_out *o)
{
    int bs = s->kv.block_size;
    for (int i = 0; i < o->swap_out.n; i++)
        memcpy(&s->host[(size_t)o->swap_out.host[i] * bs],
               &s->cache[(size_t)o->swap_out.dev[i] * bs], (size_t)bs * sizeof *s->cache);
    for (int i = 0; i < o->swap_out.n; i++) {
        const struct pgd__block *b = &s->kv.pool.blocks[o->swap_out.dev[i]];
        if (b->ref_count == 0 && !b->has_hash)
            for (int k = 0; k < bs; k++)
                s->cache[(size_t)o->swap_out.dev[i] * bs + k] = -2;
    }
    for (int i = 0; i < o->swap_in.n; i++) {
        memcpy(&s->cache[(size_t)o->swap_in.dev[i] * bs],
               &s->host[(size_t)o->swap_in.host[i] * bs], (size_t)bs * sizeof *s->cache);
        for (int k = 0; k < bs; k++)
            s->host[(size_t)o->swap_in.host[i] * bs + k] = -3;
    }
}

/* The stand-in model's rule: a hash of the whole history. */
static int32_t next_token_of(const int32_t *toks, int n, int vocab)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)toks[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    if (h % 23 == 0)
        return EOS;
    return 1 + (int32_t)(h % (uint64_t)(vocab - 1));
}

static int64_t *slot(struct sim *s, const struct pgd__seq *q, int pos)
{
    int bs = s->kv.block_size;
    cr_assert_lt(pos / bs, q->kv.n_blocks, "seq %llu: position %d has no block",
                 (unsigned long long)q->id, pos);
    return &s->cache[(size_t)q->kv.blocks[pos / bs] * bs + pos % bs];
}

/* Runs the step o plans; returns how many sequences caught up (and got a token appended).
 * caught[] gets them. */
static int sim_step_planned(struct sim *s, const struct pgd__sched_out *o,
                            struct pgd__seq **caught)
{
    sim_swaps(s, o);
    int budget = s->sched.p.max_num_batched_tokens;
    cr_assert_leq(o->n_tokens, budget);
    cr_assert_leq(o->n, s->sched.p.max_num_seqs);
    for (int i = 0; i < o->n; i++) {
        struct pgd__seq *q = o->seqs[i];
        cr_assert_eq(q->status, PGD__SEQ_RUNNING);
        cr_assert_gt(o->n_new[i], 0);
        cr_assert_leq(q->n_computed + o->n_new[i], q->n_tokens);
        for (int j = 0; j < o->n_new[i]; j++) {
            int pos = q->n_computed + j;
            *slot(s, q, pos) = (int64_t)q->tokens[pos] << 32 | pos;
            if (pos < q->n_prompt)
                s->prompt_computed++;
        }
    }
    int32_t *hist = NULL;
    int n_caught = 0;
    for (int i = 0; i < o->n; i++) {
        struct pgd__seq *q = o->seqs[i];
        if (q->n_computed + o->n_new[i] != q->n_tokens)
            continue;
        int32_t *grown = realloc(hist, (size_t)q->n_tokens * sizeof *hist);
        cr_assert_not_null(grown);
        hist = grown;
        for (int pos = 0; pos < q->n_tokens; pos++) {
            int64_t v = *slot(s, q, pos);
            cr_assert_eq((int)(v & 0xffffffff), pos, "seq %llu: slot of position %d holds "
                         "position %d", (unsigned long long)q->id, pos, (int)(v & 0xffffffff));
            hist[pos] = (int32_t)(v >> 32);
            cr_assert_eq(hist[pos], q->tokens[pos], "seq %llu: KV of position %d is token %d, "
                         "want %d", (unsigned long long)q->id, pos, hist[pos], q->tokens[pos]);
        }
        caught[n_caught++] = q;
        q->owner = (void *)(intptr_t)next_token_of(hist, q->n_tokens, s->vocab);
    }
    free(hist);
    pgd__scheduler_update(&s->sched, o);
    for (int i = 0; i < n_caught; i++) {
        struct pgd__seq *q = caught[i];
        cr_assert_eq(q->n_computed, q->n_tokens);
        pgd__seq_append(q, (int32_t)(intptr_t)q->owner);
    }
    s->steps++;
    return n_caught;
}

/* Plans one step and runs it (sim_step_planned). */
static int sim_step(struct sim *s, struct pgd__seq **caught)
{
    return sim_step_planned(s, pgd__scheduler_schedule(&s->sched), caught);
}

/* ref_count == number of live sequences that list the block. */
static void check_holders(struct sim *s, struct pgd__seq **live, int n_live)
{
    char err[256];
    cr_assert(pgd__block_pool_check(&s->kv.pool, err, sizeof err), "%s", err);
    int nb = s->kv.pool.num_blocks;
    int *h = calloc((size_t)nb, sizeof *h);
    int host_held = 0;
    for (int i = 0; i < n_live; i++) {
        if (live[i]->status != PGD__SEQ_RUNNING)
            cr_assert_eq(live[i]->kv.n_blocks, 0);
        cr_assert_eq(live[i]->status == PGD__SEQ_SWAPPED, live[i]->kv.n_swap_blocks > 0);
        host_held += live[i]->kv.n_swap_blocks;
        for (int b = 0; b < live[i]->kv.n_blocks; b++)
            h[live[i]->kv.blocks[b]]++;
    }
    cr_assert(pgd__swap_pool_check(&s->kv.swap, err, sizeof err), "%s", err);
    cr_assert_eq(host_held + pgd__swap_pool_num_free(&s->kv.swap), s->kv.swap.num_blocks);
    for (int b = 0; b < nb; b++)
        cr_assert_eq(h[b], s->kv.pool.blocks[b].ref_count, "block %d: ref_count %d, holders %d",
                     b, s->kv.pool.blocks[b].ref_count, h[b]);
    free(h);
}

static struct pgd__seq *new_seq(uint64_t id, const int32_t *prompt, int n, int max_total)
{
    struct pgd__seq *q = calloc(1, sizeof *q);
    char err[128];
    cr_assert_eq(pgd__seq_init(q, id, prompt, n, max_total, err, sizeof err), PGD_OK);
    q->arrival = id;
    return q;
}

static void free_seq(struct pgd__seq *q)
{
    pgd__seq_fini(q);
    free(q);
}

/* The sequence is done: out of the scheduler (its blocks back to the pool), then freed. */
static void retire(struct sim *s, struct pgd__seq *q)
{
    pgd__scheduler_finish(&s->sched, q);
    free_seq(q);
}

Test(scheduler, chunked_prefill_then_decode_one_token_per_step)
{
    struct sim s;
    sim_init(&s, 64, 4, true, 4, 32, true, PGD_SCHED_FCFS);
    int32_t prompt[100];
    for (int i = 0; i < 100; i++) prompt[i] = 1 + i;
    struct pgd__seq *q = new_seq(1, prompt, 100, 110);
    pgd__scheduler_add(&s.sched, q);
    int want[] = { 32, 32, 32, 4, 1, 1, 1 };
    for (int k = 0; k < 7; k++) {
        const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
        cr_assert_eq(o->n, 1);
        cr_assert_eq(o->n_new[0], want[k], "step %d: %d tokens", k, o->n_new[0]);
        /* Blocks grow with the chunk, not the whole prompt at once. */
        cr_assert_eq(q->kv.n_blocks, (q->n_computed + o->n_new[0] + 3) / 4);
        pgd__scheduler_update(&s.sched, o);
        if (q->n_computed == q->n_tokens)
            pgd__seq_append(q, 5);
    }
    retire(&s, q);
    sim_fini(&s);
}

/* Async scheduling's placeholders (engine_async.c): a sequence whose last token is a
 * placeholder computes it as its one new token, and the block that placeholder fills is
 * cached only once its token is put in (pgd__scheduler_cache_known); a running sequence
 * with nothing to compute (its last token in flight) is skipped, and its slot of
 * max_num_seqs goes to a waiting one at once. */
Test(scheduler, placeholders_are_computed_never_cached_and_an_ending_sequence_gives_its_slot)
{
    struct sim s;
    sim_init(&s, 64, 4, true, 1, 32, true, PGD_SCHED_FCFS);
    int32_t prompt[7] = { 3, 4, 5, 6, 7, 8, 9 };
    struct pgd__seq *q = new_seq(1, prompt, 7, 9);
    pgd__scheduler_add(&s.sched, q);
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->n_new[0], 7);
    pgd__scheduler_update(&s.sched, o);
    cr_assert_eq(q->kv.n_cached, 1, "positions 0..3: one full block");
    /* The step's token is a placeholder: position 7 completes block 1 once computed. */
    q->tokens[q->n_tokens++] = -1;
    q->n_pending = 1;
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->n_new[0], 1);
    cr_assert(o->decode_only);
    pgd__scheduler_update(&s.sched, o);
    cr_assert_eq(q->n_computed, 8);
    cr_assert_eq(q->kv.n_cached, 1, "block 1 holds the placeholder: not cached");
    /* The placeholder gets its token (the step before landed): block 1 is cached now. */
    q->tokens[7] = 42;
    q->n_pending = 0;
    pgd__scheduler_cache_known(&s.sched, q);
    cr_assert_eq(q->kv.n_cached, 2);
    cr_assert_eq(pgd__block_pool_lookup(&s.kv.pool, q->kv.hashes[1]), q->kv.blocks[1]);
    /* This step's token is q's last (9 tokens at most): it gets no placeholder, and q has
     * nothing to compute; its one slot (max_num_seqs 1) is the waiting q2's already. */
    int32_t prompt2[5] = { 11, 12, 13, 14, 15 };
    struct pgd__seq *q2 = new_seq(2, prompt2, 5, 8);
    pgd__scheduler_add(&s.sched, q2);
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->seqs[0], q2);
    cr_assert_eq(s.sched.n_ending, 1);
    pgd__scheduler_update(&s.sched, o);
    /* q's last token lands and ends it. */
    pgd__seq_append(q, 43);
    retire(&s, q);
    pgd__seq_append(q2, 16);
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(s.sched.n_ending, 0);
    pgd__scheduler_update(&s.sched, o);
    retire(&s, q2);
    sim_fini(&s);
}

Test(scheduler, decodes_go_first_and_the_budget_is_shared)
{
    struct sim s;
    sim_init(&s, 256, 4, false, 8, 16, true, PGD_SCHED_FCFS);
    int32_t p[40];
    for (int i = 0; i < 40; i++) p[i] = 3 + i;
    struct pgd__seq *a = new_seq(1, p, 10, 60), *b = new_seq(2, p, 40, 60);
    struct pgd__seq *caught[8];
    pgd__scheduler_add(&s.sched, a);
    sim_step(&s, caught);               /* a: 10 tokens */
    pgd__scheduler_add(&s.sched, b);
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 2);
    cr_assert_eq(o->seqs[0], a);
    cr_assert_eq(o->n_new[0], 1);       /* a's decode first */
    cr_assert_eq(o->seqs[1], b);
    cr_assert_eq(o->n_new[1], 15);      /* b's chunk takes the rest */
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(a, 9);
    retire(&s, a);
    retire(&s, b);
    sim_fini(&s);
}

/* long_prefill_token_threshold (vLLM's): a prompt computes at most that many tokens a step
 * beside a running decode even when the budget holds more (the stand-in model checks the KV
 * each chunk wrote); a decode and its speculative tokens are never cut; without chunked
 * prefill the bound does not apply (a prompt is computed whole); a negative one is
 * refused. */
Test(scheduler, long_prefill_token_threshold_bounds_a_prompt_chunk)
{
    struct sim s;
    sim_init(&s, 256, 4, false, 8, 64, true, PGD_SCHED_FCFS);
    s.sched.p.long_prefill_token_threshold = 12;
    int32_t p[40];
    for (int i = 0; i < 40; i++) p[i] = 3 + i;
    struct pgd__seq *a = new_seq(1, p, 5, 60), *b = new_seq(2, p, 40, 60);
    struct pgd__seq *caught[8];
    pgd__scheduler_add(&s.sched, a);
    sim_step(&s, caught);               /* a: its 5 prompt tokens (under the bound) */
    cr_assert_eq(a->n_computed, 5);
    pgd__scheduler_add(&s.sched, b);
    int want_b[] = { 12, 12, 12, 4 };
    for (int k = 0; k < 4; k++) {
        const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
        cr_assert_eq(o->n, 2);
        cr_assert_eq(o->seqs[0], a);
        cr_assert_eq(o->n_new[0], 1, "step %d: a decodes a token", k);
        cr_assert_eq(o->seqs[1], b);
        cr_assert_eq(o->n_new[1], want_b[k], "step %d: b computes %d, want %d", k, o->n_new[1],
                     want_b[k]);
        sim_step_planned(&s, o, caught);
    }
    cr_assert_eq(b->n_computed, 40);
    /* A decode with speculative tokens above the bound keeps them all. */
    s.sched.p.long_prefill_token_threshold = 2;
    for (int i = 0; i < 3; i++)
        pgd__seq_append(a, 7);
    a->n_spec = 3;
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->seqs[0], a);
    cr_assert_eq(o->n_new[0], 4, "a decode and its 3 proposals, past a bound of 2");
    cr_assert_eq(o->n_new[1], 1);
    pgd__scheduler_update(&s.sched, o);
    a->n_spec = 0;
    retire(&s, a);
    retire(&s, b);

    /* Without chunked prefill a prompt is computed whole, past the bound. */
    s.sched.p.enable_chunked_prefill = false;
    s.sched.p.long_prefill_token_threshold = 12;
    struct pgd__seq *c = new_seq(3, p, 30, 40);
    pgd__scheduler_add(&s.sched, c);
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->n_new[0], 30);
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(c, 1);
    retire(&s, c);
    sim_fini(&s);

    struct pgd__scheduler bad;
    struct pgd__kv_manager kv;
    char err[256];
    cr_assert_eq(pgd__kv_manager_init(&kv, 8, 4, false, err, sizeof err), PGD_OK);
    struct pgd__sched_params bp = { .max_num_seqs = 2, .max_num_batched_tokens = 16,
                                    .enable_chunked_prefill = true,
                                    .long_prefill_token_threshold = -1 };
    cr_assert_eq(pgd__scheduler_init(&bad, &bp, &kv, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "long_prefill_token_threshold"), "%s", err);
    pgd__kv_manager_fini(&kv);
}

Test(scheduler, chunking_off_waits_for_room_for_the_whole_prompt)
{
    struct sim s;
    sim_init(&s, 256, 4, false, 8, 16, false, PGD_SCHED_FCFS);
    int32_t p[14];
    for (int i = 0; i < 14; i++) p[i] = 3 + i;
    struct pgd__seq *a = new_seq(1, p, 4, 30), *b = new_seq(2, p, 14, 30);
    pgd__scheduler_add(&s.sched, a);
    struct pgd__seq *caught[8];
    sim_step(&s, caught);
    for (int k = 0; k < 3; k++) {       /* a decodes alone; b (14) fits beside a (1) */
        pgd__scheduler_add(&s.sched, b);
        break;
    }
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 2);
    cr_assert_eq(o->n_new[1], 14);
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(a, 1);
    pgd__seq_append(b, 1);
    retire(&s, a);
    retire(&s, b);

    /* A prompt longer than what is left of the budget waits a step rather than split. */
    struct pgd__seq *c = new_seq(3, p, 4, 30), *d = new_seq(4, p, 14, 30);
    pgd__scheduler_add(&s.sched, c);
    pgd__scheduler_add(&s.sched, d);
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);              /* 4 + 14 > 16 */
    cr_assert_eq(o->seqs[0], c);
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(c, 1);
    retire(&s, c);
    retire(&s, d);
    sim_fini(&s);
}

Test(scheduler, newest_is_preempted_and_recomputed_under_fcfs)
{
    struct sim s;
    /* 6 blocks of 4: two sequences of 12 tokens fill the pool. */
    sim_init(&s, 6, 4, false, 4, 64, true, PGD_SCHED_FCFS);
    int32_t p[12];
    for (int i = 0; i < 12; i++) p[i] = 10 + i;
    struct pgd__seq *a = new_seq(1, p, 12, 20), *b = new_seq(2, p, 12, 20);
    pgd__scheduler_add(&s.sched, a);
    pgd__scheduler_add(&s.sched, b);
    struct pgd__seq *caught[4];
    cr_assert_eq(sim_step(&s, caught), 2);
    cr_assert_eq(pgd__block_pool_num_free(&s.kv.pool), 0);
    /* Both now need a 4th block: b (newest) is preempted so that a can go on. */
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->seqs[0], a);
    cr_assert_eq(o->n_preempted, 1);
    cr_assert_eq(b->status, PGD__SEQ_WAITING);
    cr_assert_eq(b->n_computed, 0);
    cr_assert_eq(b->kv.n_blocks, 0);
    cr_assert_eq(b->n_tokens, 13);      /* keeps its generated token */
    cr_assert_eq(s.sched.n_preemptions, 1);
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(a, 1);
    retire(&s, a);
    /* b is recomputed: all 13 tokens (prompt and its output) in one step. */
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->seqs[0], b);
    cr_assert_eq(o->n_new[0], 13);
    pgd__scheduler_update(&s.sched, o);
    retire(&s, b);
    sim_fini(&s);
}

/* preempt_cheapest: the victim is the running sequence with the fewest computed tokens,
 * even when it is not the newest (here the oldest, already planned this step: it is
 * unplanned and its blocks go to the one that needed them). */
Test(scheduler, cheapest_to_recompute_is_preempted)
{
    struct sim s;
    sim_init(&s, 5, 4, false, 4, 64, true, PGD_SCHED_FCFS);
    s.sched.p.preempt_cheapest = true;
    int32_t p[12];
    for (int i = 0; i < 12; i++) p[i] = 10 + i;
    struct pgd__seq *a = new_seq(1, p, 4, 20), *b = new_seq(2, p, 12, 20);
    pgd__scheduler_add(&s.sched, a);
    pgd__scheduler_add(&s.sched, b);
    struct pgd__seq *caught[4];
    cr_assert_eq(sim_step(&s, caught), 2);          /* a: 1 block, b: 3; 1 free */
    /* a takes the free block for its 5th token; b needs a 4th: a (4 computed) is cheaper
     * to recompute than b (12), so a goes although it is older. */
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->seqs[0], b);
    cr_assert_eq(o->n_tokens, 1);
    cr_assert_eq(o->n_preempted, 1);
    cr_assert_eq(a->status, PGD__SEQ_WAITING);
    cr_assert_eq(a->kv.n_blocks, 0);
    cr_assert_eq(s.sched.waiting[0], a);
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(b, 1);
    retire(&s, b);
    /* a comes back and computes its 5 tokens again: 4 of them are recomputation. */
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->seqs[0], a);
    cr_assert_eq(o->n_new[0], 5);
    pgd__scheduler_update(&s.sched, o);
    cr_assert_eq(s.sched.n_recomputed, 4);
    retire(&s, a);
    sim_fini(&s);
}

/* Preemption by swapping: the victim keeps what it computed in host blocks, comes back
 * (swapped in) before a newer waiting request is admitted, and computes only its new
 * token: nothing is recomputed. */
Test(scheduler, victim_is_swapped_out_and_back_before_new_admissions)
{
    struct sim s;
    sim_init(&s, 6, 4, false, 4, 64, true, PGD_SCHED_FCFS);
    sim_swap(&s, 8, PGD_PREEMPT_SWAP, 0);
    int32_t p[12];
    for (int i = 0; i < 12; i++) p[i] = 10 + i;
    struct pgd__seq *a = new_seq(1, p, 12, 20), *b = new_seq(2, p, 12, 20);
    pgd__scheduler_add(&s.sched, a);
    pgd__scheduler_add(&s.sched, b);
    struct pgd__seq *caught[4];
    cr_assert_eq(sim_step(&s, caught), 2);
    /* Both need a 4th block: b (newest) is swapped out, its 3 blocks listed for copying. */
    cr_assert_eq(sim_step(&s, caught), 1);
    cr_assert_eq(caught[0], a);
    cr_assert_eq(b->status, PGD__SEQ_SWAPPED);
    cr_assert_eq(b->n_computed, 12);
    cr_assert_eq(b->kv.n_blocks, 0);
    cr_assert_eq(b->kv.n_swap_blocks, 3);
    cr_assert_eq(s.sched.out.swap_out.n, 3);
    cr_assert_eq(s.sched.n_swapped_out, 1);
    cr_assert_eq(s.sched.n_preemptions, 1);
    cr_assert_eq(pgd__swap_pool_num_free(&s.kv.swap), 5);
    /* A newer request waits behind the swapped one. */
    struct pgd__seq *c = new_seq(3, p, 4, 8);
    pgd__scheduler_add(&s.sched, c);
    retire(&s, a);
    cr_assert_eq(sim_step(&s, caught), 2);
    const struct pgd__sched_out *o = &s.sched.out;
    cr_assert_eq(o->seqs[0], b, "the swapped sequence goes first");
    cr_assert_eq(o->n_new[0], 1, "it computes only its new token");
    cr_assert_eq(o->swap_in.n, 3);
    cr_assert_eq(o->seqs[1], c);
    cr_assert_eq(b->status, PGD__SEQ_RUNNING);
    cr_assert_eq(b->kv.n_swap_blocks, 0);
    cr_assert_eq(s.sched.n_swapped_in, 1);
    cr_assert_eq(s.sched.n_blocks_swapped_in, 3);
    cr_assert_eq(s.sched.n_recomputed, 0);
    cr_assert_eq(pgd__swap_pool_num_free(&s.kv.swap), 8);
    retire(&s, b);
    retire(&s, c);
    sim_fini(&s);
}

/* The decision: recompute mode never swaps; auto swaps only sequences with at least
 * swap_min_tokens computed tokens; any mode recomputes when the host pool is short. */
static void preempt_one(int n_swap, enum pgd_preemption_mode mode, int min_tokens,
                        bool want_swap)
{
    struct sim s;
    sim_init(&s, 6, 4, false, 4, 64, true, PGD_SCHED_FCFS);
    sim_swap(&s, n_swap, mode, min_tokens);
    int32_t p[12];
    for (int i = 0; i < 12; i++) p[i] = 10 + i;
    struct pgd__seq *a = new_seq(1, p, 12, 20), *b = new_seq(2, p, 12, 20);
    pgd__scheduler_add(&s.sched, a);
    pgd__scheduler_add(&s.sched, b);
    struct pgd__seq *caught[4];
    cr_assert_eq(sim_step(&s, caught), 2);
    cr_assert_eq(sim_step(&s, caught), 1);
    cr_assert_eq(s.sched.n_preemptions, 1);
    cr_assert_eq(b->status, want_swap ? PGD__SEQ_SWAPPED : PGD__SEQ_WAITING,
                 "mode %d, %d host blocks, min %d", (int)mode, n_swap, min_tokens);
    cr_assert_eq(b->n_computed, want_swap ? 12 : 0);
    cr_assert_eq(s.sched.n_swapped_out, want_swap ? 1u : 0u);
    /* Finished while swapped out (or waiting): its host blocks go back. */
    retire(&s, b);
    retire(&s, a);
    sim_fini(&s);
}

Test(scheduler, preemption_mode_decides_swap_or_recompute)
{
    preempt_one(8, PGD_PREEMPT_RECOMPUTE, 0, false);
    preempt_one(8, PGD_PREEMPT_SWAP, 100, true);      /* swap ignores the minimum */
    preempt_one(8, PGD_PREEMPT_AUTO, 12, true);       /* 12 computed tokens: enough */
    preempt_one(8, PGD_PREEMPT_AUTO, 13, false);      /* not enough */
    preempt_one(2, PGD_PREEMPT_SWAP, 0, false);       /* 3 blocks, 2 host blocks: recompute */
    preempt_one(0, PGD_PREEMPT_SWAP, 0, false);       /* no swap space */
}

/* Prefix caching: a block shared by two sequences stays theirs when one is swapped out
 * (its reference only is dropped), and the one swapped out gets its own copy back. */
Test(scheduler, swapping_out_a_shared_prefix_block_keeps_it_for_the_other)
{
    struct sim s;
    sim_init(&s, 7, 4, true, 4, 64, true, PGD_SCHED_FCFS);
    sim_swap(&s, 8, PGD_PREEMPT_SWAP, 0);
    int32_t p[9];
    for (int i = 0; i < 9; i++) p[i] = 10 + i;
    struct pgd__seq *a = new_seq(1, p, 9, 24);
    pgd__scheduler_add(&s.sched, a);
    struct pgd__seq *caught[4];
    cr_assert_eq(sim_step(&s, caught), 1);            /* a: 3 blocks, 2 full and cached */
    struct pgd__seq *b = new_seq(2, p, 9, 24);
    pgd__scheduler_add(&s.sched, b);
    cr_assert_eq(sim_step(&s, caught), 2);            /* b: a's 2 full blocks + 1 own */
    int32_t shared = a->kv.blocks[0];
    cr_assert_eq(b->kv.blocks[0], shared);
    cr_assert_eq(s.kv.pool.blocks[shared].ref_count, 2);
    /* Grow until the pool is short and b (newest) is swapped out. */
    while (b->status == PGD__SEQ_RUNNING)
        sim_step(&s, caught);
    cr_assert_eq(b->status, PGD__SEQ_SWAPPED);
    cr_assert_eq(s.kv.pool.blocks[shared].ref_count, 1, "a still holds the shared block");
    cr_assert_eq(a->kv.blocks[0], shared);
    /* a goes on reading the shared block; b comes back once a is done, every position it
     * reads checked by sim_step. */
    while (a->n_tokens < a->tokens_cap)
        sim_step(&s, caught);
    retire(&s, a);
    while (b->n_tokens < b->tokens_cap)
        sim_step(&s, caught);
    cr_assert_geq(s.sched.n_swapped_in, 1);
    cr_assert_eq(s.sched.n_recomputed, 0);
    retire(&s, b);
    sim_fini(&s);
}

/* headroom_steps: a waiting sequence is admitted only while the pool keeps the blocks the
 * running ones (and it) need for that many more tokens, up to their max_tokens. */
Test(scheduler, headroom_holds_back_admission_until_blocks_free)
{
    struct sim s;
    /* 10 blocks of 4; prompts of 8 tokens (2 blocks), max_total 16 (4 blocks). */
    sim_init(&s, 10, 4, false, 8, 64, true, PGD_SCHED_FCFS);
    s.sched.p.headroom_steps = 8;
    int32_t p[8];
    for (int i = 0; i < 8; i++) p[i] = 10 + i;
    struct pgd__seq *q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = new_seq((uint64_t)i + 1, p, 8, 16);
        pgd__scheduler_add(&s.sched, q[i]);
    }
    /* Each holds 2 blocks and will need 2 more: two fit (4 held + 4 kept), a third would
     * leave 4 free for 6 of growth. vLLM's rule would admit all three (6 of 10 blocks). */
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 2);
    cr_assert_eq(s.sched.n_waiting, 1);
    cr_assert_eq(pgd__block_pool_num_free(&s.kv.pool), 6);
    pgd__scheduler_update(&s.sched, o);
    pgd__seq_append(q[0], 1);
    pgd__seq_append(q[1], 1);
    retire(&s, q[0]);
    /* q[0]'s blocks are back: q[2] fits beside q[1] now. */
    o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 2);
    cr_assert_eq(o->seqs[1], q[2]);
    pgd__scheduler_update(&s.sched, o);
    retire(&s, q[1]);
    retire(&s, q[2]);
    cr_assert_eq(s.sched.n_preemptions, 0);
    sim_fini(&s);
}

/* Runs n requests of the same shape (prompt p_len, up to max_out tokens or EOS) through a
 * pool of num_blocks blocks of 4 under (headroom, cheapest); out[i] gets request i's tokens
 * (prompt and output) and n_out[i] their count; returns the scheduler's counters. */
struct thrash_result {
    uint64_t preemptions, recomputed, prompt_computed, steps;
};

static struct thrash_result run_same_shape(int n, int p_len, int max_out, int num_blocks,
                                           int headroom, bool cheapest, int32_t out[][64],
                                           int *n_out)
{
    struct sim s;
    sim_init(&s, num_blocks, 4, true, 16, 32, true, PGD_SCHED_FCFS);
    s.sched.p.headroom_steps = headroom;
    s.sched.p.preempt_cheapest = cheapest;
    struct pgd__seq *q[32];
    cr_assert_leq(n, 32);
    cr_assert_leq(p_len + max_out, 64);
    for (int i = 0; i < n; i++) {
        int32_t p[64];
        for (int k = 0; k < p_len; k++) p[k] = 1 + (int32_t)((i * 131 + k * 7) % 500);
        q[i] = new_seq((uint64_t)i + 1, p, p_len, p_len + max_out);
        pgd__scheduler_add(&s.sched, q[i]);
    }
    struct pgd__seq *caught[32];
    while (pgd__scheduler_has_work(&s.sched)) {
        cr_assert_lt(s.steps, 100000, "no progress");
        int nc = sim_step(&s, caught);
        for (int i = 0; i < nc; i++) {
            struct pgd__seq *c = caught[i];
            if (c->tokens[c->n_tokens - 1] == EOS || c->n_tokens == c->tokens_cap)
                pgd__scheduler_finish(&s.sched, c);
        }
    }
    for (int i = 0; i < n; i++) {
        n_out[i] = q[i]->n_tokens;
        memcpy(out[i], q[i]->tokens, (size_t)q[i]->n_tokens * sizeof **out);
        free_seq(q[i]);
    }
    struct thrash_result r = { s.sched.n_preemptions, s.sched.n_recomputed, s.prompt_computed,
                               s.steps };
    sim_fini(&s);
    return r;
}

/* Sixteen requests of 8 prompt tokens that may grow to 40 (the stand-in model ends about
 * one in 23 tokens) in a pool of 20 blocks of 4 (2 fit at their full length): vLLM's rule
 * admits as many as the blocks hold and then preempts and recomputes over and over; the
 * headroom policy admits what can grow, so it preempts a fraction as often and recomputes
 * less. Every request ends with the tokens it gets in a
 * pool that never preempts. */
Test(scheduler, headroom_stops_the_thrash_with_the_same_tokens)
{
    enum { N = 16, P = 8, OUT = 32 };
    static int32_t roomy[N][64], old[N][64], now[N][64];
    int n_roomy[N], n_old[N], n_now[N];
    struct thrash_result r0 = run_same_shape(N, P, OUT, 400, 0, false, roomy, n_roomy);
    cr_assert_eq(r0.preemptions, 0);
    struct thrash_result a = run_same_shape(N, P, OUT, 20, 0, false, old, n_old);
    struct thrash_result b = run_same_shape(N, P, OUT, 20, 16, true, now, n_now);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(n_old[i], n_roomy[i], "request %d", i);
        cr_assert_eq(n_now[i], n_roomy[i], "request %d", i);
        cr_assert_arr_eq(old[i], roomy[i], (size_t)n_roomy[i] * sizeof **roomy);
        cr_assert_arr_eq(now[i], roomy[i], (size_t)n_roomy[i] * sizeof **roomy);
    }
    cr_assert_gt(a.preemptions, 4, "vLLM's rule was meant to thrash here (%llu)",
                 (unsigned long long)a.preemptions);
    cr_assert_lt(b.preemptions * 2, a.preemptions, "headroom %llu, vLLM's rule %llu",
                 (unsigned long long)b.preemptions, (unsigned long long)a.preemptions);
    cr_assert_lt(b.recomputed, a.recomputed);
    cr_assert_lt(b.prompt_computed, a.prompt_computed);
}

Test(scheduler, lowest_priority_is_preempted_under_priority)
{
    struct sim s;
    sim_init(&s, 6, 4, false, 4, 64, true, PGD_SCHED_PRIORITY);
    int32_t p[12];
    for (int i = 0; i < 12; i++) p[i] = 10 + i;
    struct pgd__seq *a = new_seq(1, p, 12, 20), *b = new_seq(2, p, 12, 20);
    a->priority = 5;                    /* a arrived first but matters less */
    b->priority = 1;
    pgd__scheduler_add(&s.sched, a);
    pgd__scheduler_add(&s.sched, b);
    cr_assert_eq(s.sched.waiting[0], b);   /* priority order */
    struct pgd__seq *caught[4];
    cr_assert_eq(sim_step(&s, caught), 2);
    const struct pgd__sched_out *o = pgd__scheduler_schedule(&s.sched);
    cr_assert_eq(o->n, 1);
    cr_assert_eq(o->seqs[0], b);
    cr_assert_eq(a->status, PGD__SEQ_WAITING);
    pgd__scheduler_update(&s.sched, o);
    retire(&s, a);
    retire(&s, b);
    sim_fini(&s);
}

Test(scheduler, shared_system_prompt_is_computed_once)
{
    struct sim s;
    sim_init(&s, 512, 16, true, 16, 512, true, PGD_SCHED_FCFS);
    enum { SYS = 256, SUFFIX = 20, N = 10 };
    int32_t prompt[SYS + SUFFIX];
    for (int i = 0; i < SYS; i++) prompt[i] = 1 + (i * 37) % 500;
    struct pgd__seq *q[N], *caught[16];
    uint64_t own = 0;
    for (int r = 0; r < N; r++) {
        for (int i = 0; i < SUFFIX; i++) prompt[SYS + i] = 1 + (r * 101 + i * 7) % 500;
        q[r] = new_seq((uint64_t)r + 1, prompt, SYS + SUFFIX, SYS + SUFFIX + 1);
        pgd__scheduler_add(&s.sched, q[r]);
        /* One at a time, so each finds the ones before it. */
        while (q[r]->n_tokens == q[r]->n_prompt)
            sim_step(&s, caught);
        own += SUFFIX;
        pgd__scheduler_finish(&s.sched, q[r]);
        if (r > 0)
            cr_assert_eq(q[r]->n_cached_tokens, SYS, "request %d: %d cached", r,
                         q[r]->n_cached_tokens);
    }
    /* The system prompt once, then only each request's own suffix. */
    cr_assert_eq(s.prompt_computed, SYS + own, "computed %llu prompt tokens",
                 (unsigned long long)s.prompt_computed);
    cr_assert_eq(s.kv.prefix_hits, (uint64_t)SYS * (N - 1));
    cr_assert_eq(s.kv.prefix_queries, (uint64_t)(SYS + SUFFIX) * N);
    for (int r = 0; r < N; r++) free_seq(q[r]);
    sim_fini(&s);
}

Test(scheduler, parallel_samples_share_the_prompt_blocks)
{
    struct sim s;
    sim_init(&s, 64, 4, true, 8, 8, true, PGD_SCHED_FCFS);
    int32_t prompt[18];
    for (int i = 0; i < 18; i++) prompt[i] = 40 + i;
    struct pgd__seq *c[4], *caught[8];
    for (int i = 0; i < 4; i++) {
        c[i] = new_seq(1, prompt, 18, 30);
        if (i > 0)
            c[i]->leader = c[0];
        pgd__scheduler_add(&s.sched, c[i]);
    }
    /* The leader's prompt takes 3 steps of 8; the others wait for it. */
    while (c[0]->n_tokens == 18) {
        sim_step(&s, caught);
        for (int i = 1; i < 4; i++) cr_assert_eq(c[i]->status, PGD__SEQ_WAITING);
    }
    sim_step(&s, caught);
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(c[i]->status, PGD__SEQ_RUNNING);
        cr_assert_eq(c[i]->n_cached_tokens, 16);
    }
    /* The 4 full prompt blocks are held by all four children. */
    for (int b = 0; b < 4; b++)
        for (int i = 1; i < 4; i++)
            cr_assert_eq(c[i]->kv.blocks[b], c[0]->kv.blocks[b]);
    cr_assert_eq(s.kv.pool.blocks[c[0]->kv.blocks[0]].ref_count, 4);
    cr_assert_eq(s.prompt_computed, 18 + 3 * 2);
    for (int i = 0; i < 4; i++) {
        retire(&s, c[i]);
    }
    sim_fini(&s);
}

/* ---- the randomized stress test ---------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

struct sreq {
    struct pgd__seq *seq;
    int max_out;
    bool done, aborted;
};

/* What a request generates when it runs alone: the stand-in model, no scheduler. */
static int reference_output(const int32_t *prompt, int n, int max_out, int vocab, int32_t *out)
{
    int32_t *h = malloc((size_t)(n + max_out) * sizeof *h);
    memcpy(h, prompt, (size_t)n * sizeof *h);
    int k = 0;
    while (k < max_out) {
        int32_t t = next_token_of(h, n + k, vocab);
        h[n + k] = t;
        out[k++] = t;
        if (t == EOS)
            break;
    }
    free(h);
    return k;
}

/* headroom: the scheduler's headroom_steps, with preempt_cheapest when > 0 (0: vLLM's
 * rule). */
static void stress_with(int n_requests, int num_blocks, int bs, bool caching, int max_seqs,
                        int budget, bool chunked, enum pgd_sched_policy pol, uint64_t seed,
                        int headroom, int n_swap, enum pgd_preemption_mode mode)
{
    struct sim s;
    sim_init(&s, num_blocks, bs, caching, max_seqs, budget, chunked, pol);
    s.sched.p.headroom_steps = headroom;
    s.sched.p.preempt_cheapest = headroom > 0;
    /* auto swaps sequences of at least 6 computed tokens here. */
    if (n_swap > 0)
        sim_swap(&s, n_swap, mode, 6);
    rng_state = seed;
    /* A few shared "system prompts". */
    int32_t sys[3][48];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 48; i++) sys[k][i] = 1 + (int32_t)(rnd() % 500);
    int max_len = chunked ? 60 : budget;
    struct sreq *reqs = calloc((size_t)n_requests * 3, sizeof *reqs);
    int n_reqs = 0, submitted = 0, finished = 0;
    struct pgd__seq **live = malloc((size_t)n_requests * 3 * sizeof *live);
    struct pgd__seq *caught[64];
    int32_t prompt[128], ref[128];
    uint64_t guard = 0;
    while (finished < n_reqs || submitted < n_requests) {
        cr_assert_lt(++guard, 2000000, "the scheduler stopped making progress");
        /* Arrivals. */
        int arrivals = submitted < n_requests ? (int)(rnd() % 3) : 0;
        for (int a = 0; a < arrivals && submitted < n_requests; a++, submitted++) {
            int n = 1 + (int)(rnd() % (unsigned)(max_len / 2));
            if (rnd() % 2) {            /* shared prefix + own suffix */
                int k = (int)(rnd() % 3), pre = 1 + (int)(rnd() % 48);
                if (pre > n) pre = n;
                memcpy(prompt, sys[k], (size_t)pre * sizeof *prompt);
                for (int i = pre; i < n; i++) prompt[i] = 1 + (int32_t)(rnd() % 500);
            } else {
                for (int i = 0; i < n; i++) prompt[i] = 1 + (int32_t)(rnd() % 500);
            }
            int max_out = 1 + (int)(rnd() % (unsigned)(max_len - n));
            int nc = rnd() % 5 == 0 ? 2 + (int)(rnd() % 2) : 1;
            struct pgd__seq *lead = NULL;
            for (int c = 0; c < nc; c++) {
                struct sreq *r = &reqs[n_reqs++];
                r->seq = new_seq((uint64_t)n_reqs, prompt, n, n + max_out);
                r->seq->priority = (int)(rnd() % 4);
                r->seq->leader = caching ? lead : NULL;
                if (!lead) lead = r->seq;
                r->max_out = max_out;
                pgd__scheduler_add(&s.sched, r->seq);
            }
        }
        /* Aborts, anywhere (waiting or running). */
        if (rnd() % 40 == 0) {
            int k = (int)(rnd() % (unsigned)(n_reqs > 0 ? n_reqs : 1));
            if (n_reqs > 0 && !reqs[k].done) {
                pgd__scheduler_finish(&s.sched, reqs[k].seq);
                reqs[k].done = reqs[k].aborted = true;
                finished++;
            }
        }
        if (pgd__scheduler_has_work(&s.sched)) {
            int nca = sim_step(&s, caught);
            for (int i = 0; i < nca; i++) {
                struct pgd__seq *q = caught[i];
                struct sreq *r = &reqs[q->id - 1];
                int n_out = q->n_tokens - q->n_prompt;
                if (q->tokens[q->n_tokens - 1] == EOS || n_out >= r->max_out) {
                    pgd__scheduler_finish(&s.sched, q);
                    r->done = true;
                    finished++;
                }
            }
        }
        int n_live = 0;
        for (int i = 0; i < n_reqs; i++)
            if (!reqs[i].done)
                live[n_live++] = reqs[i].seq;
        check_holders(&s, live, n_live);
    }
    /* Every request finished or was aborted; every finished one produced what it
     * produces alone; aborted ones a prefix of it. */
    for (int i = 0; i < n_reqs; i++) {
        struct pgd__seq *q = reqs[i].seq;
        cr_assert(reqs[i].done);
        cr_assert_eq(q->status, PGD__SEQ_FINISHED);
        cr_assert_eq(q->kv.n_blocks, 0);
        int n_ref = reference_output(q->tokens, q->n_prompt, reqs[i].max_out, s.vocab, ref);
        int n_out = q->n_tokens - q->n_prompt;
        if (reqs[i].aborted)
            cr_assert_leq(n_out, n_ref);
        else
            cr_assert_eq(n_out, n_ref, "request %d: %d tokens, alone %d", i, n_out, n_ref);
        for (int k = 0; k < n_out; k++)
            cr_assert_eq(q->tokens[q->n_prompt + k], ref[k], "request %d token %d", i, k);
        free_seq(q);
    }
    if (num_blocks * bs < 4 * max_len && headroom == 0)
        cr_assert_gt(s.sched.n_preemptions, 0, "the pool was meant to force preemption");
    if (caching)
        cr_assert_gt(s.kv.prefix_hits, 0);
    if (n_swap > 0) {
        cr_assert_gt(s.sched.n_swapped_out, 0, "the pool was meant to force swapping");
        cr_assert_gt(s.sched.n_swapped_in, 0);
    }
    free(reqs);
    free(live);
    sim_fini(&s);
}

/* Preempting by recompute. */
static void stress(int n_requests, int num_blocks, int bs, bool caching, int max_seqs,
                   int budget, bool chunked, enum pgd_sched_policy pol, uint64_t seed,
                   int headroom)
{
    stress_with(n_requests, num_blocks, bs, caching, max_seqs, budget, chunked, pol, seed,
                headroom, 0, PGD_PREEMPT_RECOMPUTE);
}

Test(scheduler_stress, fcfs_caching_chunked_small_pool)
{
    stress(2000, 24, 4, true, 8, 32, true, PGD_SCHED_FCFS, 0x1234567, 0);
    stress(2000, 24, 4, true, 8, 32, true, PGD_SCHED_FCFS, 0x1234567, 8);
}

Test(scheduler_stress, priority_caching_chunked_small_pool)
{
    stress(1500, 20, 4, true, 6, 24, true, PGD_SCHED_PRIORITY, 0xabcdef, 0);
    stress(1500, 20, 4, true, 6, 24, true, PGD_SCHED_PRIORITY, 0xabcdef, 8);
}

Test(scheduler_stress, fcfs_no_caching)
{
    stress(1000, 18, 4, false, 8, 32, true, PGD_SCHED_FCFS, 0x5555, 0);
    stress(1000, 18, 4, false, 8, 32, true, PGD_SCHED_FCFS, 0x5555, 8);
}

Test(scheduler_stress, no_chunking_with_caching)
{
    stress(1000, 20, 4, true, 8, 64, false, PGD_SCHED_FCFS, 0x7777, 0);
    stress(1000, 20, 4, true, 8, 64, false, PGD_SCHED_FCFS, 0x7777, 8);
}

Test(scheduler_stress, block_size_one_and_sixteen)
{
    stress(500, 70, 1, true, 8, 32, true, PGD_SCHED_FCFS, 0x99, 0);
    stress(500, 6, 16, true, 8, 32, true, PGD_SCHED_PRIORITY, 0x98, 16);
}

/* The same workloads preempting by swapping: every sequence swapped out comes back with
 * its KV intact (the stand-in checks every position it reads), swapped ones that finish
 * or are aborted give their host blocks back, and a small host pool mixes in recomputes. */
Test(scheduler_stress, swap_fcfs_caching_chunked_small_pool)
{
    stress_with(2000, 24, 4, true, 8, 32, true, PGD_SCHED_FCFS, 0x1234567, 0, 64,
                PGD_PREEMPT_SWAP);
    stress_with(2000, 24, 4, true, 8, 32, true, PGD_SCHED_FCFS, 0x1234567, 8, 64,
                PGD_PREEMPT_SWAP);
}

Test(scheduler_stress, swap_priority_and_small_host_pools)
{
    stress_with(1500, 20, 4, true, 6, 24, true, PGD_SCHED_PRIORITY, 0xabcdef, 0, 64,
                PGD_PREEMPT_SWAP);
    stress_with(1000, 18, 4, false, 8, 32, true, PGD_SCHED_FCFS, 0x5555, 0, 5, PGD_PREEMPT_SWAP);
    stress_with(1000, 20, 4, true, 8, 64, false, PGD_SCHED_FCFS, 0x7777, 0, 12,
                PGD_PREEMPT_AUTO);
    stress_with(500, 6, 16, true, 8, 32, true, PGD_SCHED_PRIORITY, 0x98, 16, 3,
                PGD_PREEMPT_AUTO);
}

/* The projection's step-by-step sums (built from block crossings) equal each sequence's
 * curve added up one step at a time: random sequences, some finishing inside the horizon,
 * some mid-prompt, some holding more blocks than their tokens need; stepping in turn and
 * under async scheduling's lag (blocks back a step later, but for a sequence whose last
 * token is in flight). */
Test(scheduler, headroom_projection_sums_every_curve)
{
    struct pgd__kv_manager kv;
    char err[128];
    cr_assert_eq(pgd__kv_manager_init(&kv, 64, 4, false, err, sizeof err), PGD_OK);
    rng_state = 0x5eed;
    enum { N = 40, H = 50 };
    struct pgd__seq q[N];
    struct pgd__seq *run[N];
    int32_t p[1] = { 7 };
    for (int i = 0; i < N; i++) {
        int n = 1 + (int)(rnd() % 60), cap = n + (int)(rnd() % 70);
        cr_assert_eq(pgd__seq_init(&q[i], (uint64_t)i, p, 1, cap > 1 ? cap : 1, err, sizeof err),
                     PGD_OK);
        q[i].n_tokens = n < q[i].tokens_cap ? n : q[i].tokens_cap;
        /* Blocks held: anywhere from a partly computed prompt to one past what it needs. */
        q[i].kv.n_blocks = (int)(rnd() % (unsigned)(pgd__kv_blocks_for(&kv, q[i].n_tokens) + 2));
        run[i] = &q[i];
    }
    struct pgd__headroom a = { 0 }, b = { 0 };
    long last[2] = { 0, 0 };
    for (int lag = 0; lag < 2; lag++) {
        a.lag = b.lag = lag;
        pgd__headroom_begin(&a, &kv, run, N, H);
        pgd__headroom_begin(&b, &kv, run, 0, H);
        for (int i = 0; i < N; i++)
            pgd__headroom_add(&b, &kv, &q[i], q[i].kv.n_blocks);
        for (int t = 0; t <= H; t++)
            cr_assert_eq(a.g[t], b.g[t], "lag %d, step %d: %ld from the crossings, %ld curve "
                         "by curve", lag, t, a.g[t], b.g[t]);
        last[lag] = a.g[1];
    }
    /* At step 1 the lag keeps the blocks of those finishing at once (but none in flight). */
    cr_assert_geq(last[1], last[0]);
    for (int i = 0; i < N; i++) {
        q[i].kv.n_blocks = 0;
        pgd__seq_fini(&q[i]);
    }
    pgd__headroom_fini(&a);
    pgd__headroom_fini(&b);
    pgd__kv_manager_fini(&kv);
}
