/* The block pool, its LRU free queue, the prefix cache's hash chain and table, lazy
 * eviction and revival, and the kv manager's all-or-nothing allocation. */
#include <criterion/criterion.h>
#include "runtime/kv/kv_manager.h"
#include <stdlib.h>
#include <string.h>
#include "tests/lib/test_common.h"

PGD_TEST_SUITE(block_pool);
PGD_TEST_SUITE(prefix_cache);
PGD_TEST_SUITE(kv_manager);

static void check_pool(const struct pgd__block_pool *p)
{
    char err[256];
    cr_assert(pgd__block_pool_check(p, err, sizeof err), "%s", err);
}

/* The ids in the free queue, head first. */
static int queue_ids(const struct pgd__block_pool *p, int32_t *out)
{
    int n = 0;
    for (int id = p->free_head; id >= 0; id = p->blocks[id].next_free)
        out[n++] = id;
    return n;
}

static struct pgd__block_hash H(uint64_t x)
{
    return pgd__block_hash_compute(NULL, (const int32_t[]){ (int32_t)x }, 1, NULL, 0);
}

Test(block_pool, alloc_free_counts_and_lru_order)
{
    struct pgd__block_pool p;
    char err[256];
    cr_assert_eq(pgd__block_pool_init(&p, 8, true, err, sizeof err), PGD_OK, "%s", err);
    check_pool(&p);
    cr_assert_eq(pgd__block_pool_num_free(&p), 8);
    int32_t a[3], b[5], c[1];
    cr_assert(pgd__block_pool_alloc(&p, 3, a));
    cr_assert(pgd__block_pool_alloc(&p, 5, b));
    /* Head first: ids in order. */
    for (int i = 0; i < 3; i++) cr_assert_eq(a[i], i);
    for (int i = 0; i < 5; i++) cr_assert_eq(b[i], 3 + i);
    cr_assert_eq(pgd__block_pool_num_free(&p), 0);
    cr_assert_float_eq(pgd__block_pool_usage(&p), 1.0, 1e-12);
    /* All or nothing. */
    cr_assert_not(pgd__block_pool_alloc(&p, 1, c));
    check_pool(&p);
    /* Free b in reverse (as a request does): b[4] first, so it is reused first. */
    int32_t rev[5] = { b[4], b[3], b[2], b[1], b[0] };
    pgd__block_pool_free(&p, rev, 5);
    int32_t q[8];
    cr_assert_eq(queue_ids(&p, q), 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(q[i], rev[i]);
    /* A shared block survives one release. */
    pgd__block_pool_touch(&p, a[0]);
    cr_assert_eq(p.blocks[a[0]].ref_count, 2);
    pgd__block_pool_free(&p, a, 3);
    cr_assert_eq(p.blocks[a[0]].ref_count, 1);
    cr_assert_eq(queue_ids(&p, q), 7);
    cr_assert_eq(q[5], a[1]);
    cr_assert_eq(q[6], a[2]);
    check_pool(&p);
    /* Not enough: nothing taken. */
    int32_t big[8];
    cr_assert_not(pgd__block_pool_alloc(&p, 8, big));
    cr_assert_eq(pgd__block_pool_num_free(&p), 7);
    check_pool(&p);
    pgd__block_pool_free(&p, a, 1);
    cr_assert_eq(pgd__block_pool_num_free(&p), 8);
    check_pool(&p);
    pgd__block_pool_fini(&p);
}

Test(block_pool, touch_removes_from_middle_of_queue)
{
    struct pgd__block_pool p;
    char err[256];
    cr_assert_eq(pgd__block_pool_init(&p, 5, true, err, sizeof err), PGD_OK);
    pgd__block_pool_touch(&p, 2);      /* a free block taken out of the middle */
    pgd__block_pool_touch(&p, 0);      /* the head */
    pgd__block_pool_touch(&p, 4);      /* the tail */
    int32_t q[5];
    cr_assert_eq(queue_ids(&p, q), 2);
    cr_assert_eq(q[0], 1);
    cr_assert_eq(q[1], 3);
    check_pool(&p);
    int32_t ids[3] = { 4, 0, 2 };
    pgd__block_pool_free(&p, ids, 3);
    cr_assert_eq(queue_ids(&p, q), 5);
    int32_t want[5] = { 1, 3, 4, 0, 2 };
    for (int i = 0; i < 5; i++) cr_assert_eq(q[i], want[i]);
    check_pool(&p);
    pgd__block_pool_fini(&p);
}

Test(block_pool, lazy_eviction_and_revival)
{
    struct pgd__block_pool p;
    char err[256];
    cr_assert_eq(pgd__block_pool_init(&p, 4, true, err, sizeof err), PGD_OK);
    int32_t a[2];
    cr_assert(pgd__block_pool_alloc(&p, 2, a));
    cr_assert(pgd__block_pool_cache(&p, a[0], H(1)));
    cr_assert(pgd__block_pool_cache(&p, a[1], H(2)));
    /* One hash, one block: a second block with the same hash is not registered. */
    int32_t x;
    cr_assert(pgd__block_pool_alloc(&p, 1, &x));
    cr_assert_not(pgd__block_pool_cache(&p, x, H(1)));
    cr_assert_not(pgd__block_pool_cache(&p, a[0], H(9)));   /* already named */
    pgd__block_pool_free(&p, &x, 1);
    /* Freed, but still findable. */
    int32_t rev[2] = { a[1], a[0] };
    pgd__block_pool_free(&p, rev, 2);
    cr_assert_eq(pgd__block_pool_num_free(&p), 4);
    cr_assert_eq(pgd__block_pool_lookup(&p, H(1)), a[0]);
    cr_assert_eq(pgd__block_pool_lookup(&p, H(2)), a[1]);
    check_pool(&p);
    /* Revive a[0]: it leaves the queue with count 1 and keeps its hash. */
    pgd__block_pool_touch(&p, a[0]);
    cr_assert_eq(p.blocks[a[0]].ref_count, 1);
    cr_assert_eq(pgd__block_pool_num_free(&p), 3);
    check_pool(&p);
    /* Queue is now: 3 (never used), x=2, a[1]=1. Taking 3 blocks reuses a[1] last and
     * drops its hash then; a[0] is held, so its hash lives on. */
    int32_t three[3];
    cr_assert(pgd__block_pool_alloc(&p, 2, three));
    cr_assert_eq(pgd__block_pool_lookup(&p, H(2)), a[1]);
    cr_assert(pgd__block_pool_alloc(&p, 1, three + 2));
    cr_assert_eq(three[2], a[1]);
    cr_assert_eq(pgd__block_pool_lookup(&p, H(2)), -1);
    cr_assert_eq(pgd__block_pool_lookup(&p, H(1)), a[0]);
    cr_assert_eq(p.evictions, 1);
    check_pool(&p);
    pgd__block_pool_fini(&p);
}

Test(block_pool, caching_off_never_finds)
{
    struct pgd__block_pool p;
    char err[256];
    cr_assert_eq(pgd__block_pool_init(&p, 2, false, err, sizeof err), PGD_OK);
    int32_t a;
    cr_assert(pgd__block_pool_alloc(&p, 1, &a));
    cr_assert_not(pgd__block_pool_cache(&p, a, H(1)));
    cr_assert_eq(pgd__block_pool_lookup(&p, H(1)), -1);
    pgd__block_pool_free(&p, &a, 1);
    pgd__block_pool_fini(&p);
    cr_assert_eq(pgd__block_pool_init(&p, 0, false, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "num_blocks") != NULL);
}

Test(prefix_cache, hash_chain_depends_on_every_earlier_token_and_salt)
{
    int32_t t1[4] = { 1, 2, 3, 4 }, t2[4] = { 5, 6, 7, 8 }, t1b[4] = { 1, 2, 3, 5 };
    struct pgd__block_hash h1 = pgd__block_hash_compute(NULL, t1, 4, NULL, 0);
    struct pgd__block_hash h1b = pgd__block_hash_compute(NULL, t1b, 4, NULL, 0);
    struct pgd__block_hash h2 = pgd__block_hash_compute(&h1, t2, 4, NULL, 0);
    struct pgd__block_hash h2b = pgd__block_hash_compute(&h1b, t2, 4, NULL, 0);
    struct pgd__block_hash again = pgd__block_hash_compute(&h1, t2, 4, NULL, 0);
    cr_assert(pgd__block_hash_eq(h2, again));
    cr_assert_not(pgd__block_hash_eq(h1, h1b));
    /* Same second block, different first block: different name. */
    cr_assert_not(pgd__block_hash_eq(h2, h2b));
    /* A first block is not the same as a second block with the same tokens. */
    struct pgd__block_hash first_t2 = pgd__block_hash_compute(NULL, t2, 4, NULL, 0);
    cr_assert_not(pgd__block_hash_eq(first_t2, h2));
    /* The salt separates tenants. */
    struct pgd__block_hash s1 = pgd__block_hash_compute(NULL, t1, 4, "alice", 5);
    struct pgd__block_hash s2 = pgd__block_hash_compute(NULL, t1, 4, "bob", 3);
    cr_assert_not(pgd__block_hash_eq(s1, h1));
    cr_assert_not(pgd__block_hash_eq(s1, s2));
    /* Token/extra boundaries are unambiguous. */
    int32_t t3[1] = { 0x64636261 };   /* "abcd" as bytes */
    struct pgd__block_hash u = pgd__block_hash_compute(NULL, t3, 1, NULL, 0);
    struct pgd__block_hash v = pgd__block_hash_compute(NULL, NULL, 0, "abcd", 4);
    cr_assert_not(pgd__block_hash_eq(u, v));
}

Test(prefix_cache, table_put_get_delete_under_churn)
{
    struct pgd__hash_table t;
    char err[128];
    cr_assert_eq(pgd__hash_table_init(&t, 500, err, sizeof err), PGD_OK);
    int32_t *val = malloc(2000 * sizeof *val);
    for (int i = 0; i < 2000; i++) val[i] = -1;
    srand(7);
    for (int round = 0; round < 20000; round++) {
        int k = rand() % 2000;
        struct pgd__block_hash h = H((uint64_t)k * 7919u);
        if (val[k] >= 0) {
            cr_assert_eq(pgd__hash_table_get(&t, h), val[k]);
            cr_assert_not(pgd__hash_table_del(&t, h, val[k] + 1));   /* wrong owner */
            cr_assert(pgd__hash_table_del(&t, h, val[k]));
            val[k] = -1;
        } else if (t.count < 500) {
            cr_assert_eq(pgd__hash_table_get(&t, h), -1);
            cr_assert(pgd__hash_table_put(&t, h, round));
            val[k] = round;
        }
    }
    size_t n = 0;
    for (int k = 0; k < 2000; k++) {
        struct pgd__block_hash h = H((uint64_t)k * 7919u);
        cr_assert_eq(pgd__hash_table_get(&t, h), val[k], "key %d", k);
        n += val[k] >= 0;
    }
    cr_assert_eq(n, t.count);
    free(val);
    pgd__hash_table_fini(&t);
}

Test(kv_manager, prefix_hits_stop_before_the_last_token_and_allocation_is_all_or_nothing)
{
    struct pgd__kv_manager m;
    char err[256];
    cr_assert_eq(pgd__kv_manager_init(&m, 6, 4, true, err, sizeof err), PGD_OK);
    int32_t toks[12];
    for (int i = 0; i < 12; i++) toks[i] = 100 + i;
    struct pgd__kv_seq a = { 0 }, b = { 0 }, c = { 0 };
    int32_t hits[8];
    cr_assert_eq(pgd__kv_find_prefix(&m, &a, toks, 12, hits), 0);
    cr_assert(pgd__kv_allocate_slots(&m, &a, 12, NULL, 0));
    cr_assert_eq(a.n_blocks, 3);
    pgd__kv_cache_blocks(&m, &a, toks, 12);
    /* The same 12 tokens: only 2 blocks may hit (the last token must be computed). */
    int nh = pgd__kv_find_prefix(&m, &b, toks, 12, hits);
    cr_assert_eq(nh, 2);
    cr_assert_eq(hits[0], a.blocks[0]);
    cr_assert_eq(hits[1], a.blocks[1]);
    /* 13 tokens: all 3 blocks hit. */
    int32_t toks13[13];
    memcpy(toks13, toks, sizeof toks);
    toks13[12] = 7;
    struct pgd__kv_seq d = { 0 };
    cr_assert_eq(pgd__kv_find_prefix(&m, &d, toks13, 13, hits), 3);
    pgd__kv_seq_fini(&d);
    nh = pgd__kv_find_prefix(&m, &b, toks, 12, hits);
    cr_assert(pgd__kv_allocate_slots(&m, &b, 12, hits, nh));
    cr_assert_eq(b.n_blocks, 3);
    cr_assert_eq(m.pool.blocks[a.blocks[0]].ref_count, 2);
    cr_assert_eq(pgd__block_pool_num_free(&m.pool), 2);
    /* c wants 4 blocks for 16 tokens, only 2 free: fails and changes nothing. */
    int32_t other[16];
    for (int i = 0; i < 16; i++) other[i] = 900 + i;
    cr_assert_eq(pgd__kv_find_prefix(&m, &c, other, 16, hits), 0);
    cr_assert_not(pgd__kv_allocate_slots(&m, &c, 16, NULL, 0));
    cr_assert_eq(c.n_blocks, 0);
    cr_assert_eq(pgd__block_pool_num_free(&m.pool), 2);
    /* Growing one token at a time allocates a block only when a boundary is crossed. */
    cr_assert(pgd__kv_allocate_slots(&m, &c, 5, NULL, 0));
    cr_assert_eq(c.n_blocks, 2);
    cr_assert(pgd__kv_allocate_slots(&m, &c, 8, NULL, 0));
    cr_assert_eq(c.n_blocks, 2);
    cr_assert_not(pgd__kv_allocate_slots(&m, &c, 9, NULL, 0));
    cr_assert_eq(c.n_blocks, 2);
    /* Free a and b: shared blocks return to the queue once both let go; revived later. */
    pgd__kv_free(&m, &a);
    cr_assert_eq(pgd__block_pool_num_free(&m.pool), 1);   /* a's tail block (unshared) */
    pgd__kv_free(&m, &b);
    cr_assert_eq(pgd__block_pool_num_free(&m.pool), 4);
    check_pool(&m.pool);
    nh = pgd__kv_find_prefix(&m, &b, toks13, 13, hits);
    cr_assert_eq(nh, 3);
    /* Hit blocks in the free queue count against what is free: 3 hits + 1 new = 4. */
    cr_assert(pgd__kv_allocate_slots(&m, &b, 13, hits, nh));
    cr_assert_eq(pgd__block_pool_num_free(&m.pool), 0);
    check_pool(&m.pool);
    pgd__kv_free(&m, &b);
    pgd__kv_free(&m, &c);
    pgd__kv_seq_fini(&a);
    pgd__kv_seq_fini(&b);
    pgd__kv_seq_fini(&c);
    cr_assert_eq(pgd__block_pool_num_free(&m.pool), 6);
    pgd__kv_manager_fini(&m);
}

Test(kv_manager, salt_isolates_and_caching_off_never_hits)
{
    struct pgd__kv_manager m;
    char err[256];
    cr_assert_eq(pgd__kv_manager_init(&m, 8, 4, true, err, sizeof err), PGD_OK);
    int32_t toks[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    struct pgd__kv_seq a = { .salt = "x", .salt_len = 1 }, b = { .salt = "y", .salt_len = 1 },
                       c = { .salt = "x", .salt_len = 1 };
    int32_t hits[4];
    cr_assert(pgd__kv_allocate_slots(&m, &a, 9, NULL, 0));
    pgd__kv_cache_blocks(&m, &a, toks, 9);
    cr_assert_eq(pgd__kv_find_prefix(&m, &b, toks, 9, hits), 0);
    cr_assert_eq(pgd__kv_find_prefix(&m, &c, toks, 9, hits), 2);
    pgd__kv_free(&m, &a);
    pgd__kv_seq_fini(&a);
    pgd__kv_seq_fini(&b);
    pgd__kv_seq_fini(&c);
    pgd__kv_manager_fini(&m);

    cr_assert_eq(pgd__kv_manager_init(&m, 8, 4, false, err, sizeof err), PGD_OK);
    struct pgd__kv_seq e = { 0 }, f = { 0 };
    cr_assert(pgd__kv_allocate_slots(&m, &e, 9, NULL, 0));
    pgd__kv_cache_blocks(&m, &e, toks, 9);
    cr_assert_eq(pgd__kv_find_prefix(&m, &f, toks, 9, hits), 0);
    pgd__kv_free(&m, &e);
    pgd__kv_seq_fini(&e);
    pgd__kv_seq_fini(&f);
    pgd__kv_manager_fini(&m);
}
