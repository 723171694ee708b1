/* The activation arena (runtime/runner/arena.h) on the CPU: the bottom's bump allocation and
 * its fingerprint, and the top's (pgd__arena_alloc_top, the piecewise graphs' calls): from
 * the end of the first chunk downward, aligned, never over the bottom's bytes, unseen by the
 * fingerprint, rewound by reset; the room it reports. */
#include "tests/lib/test_common.h"
#include "runtime/runner/arena.h"

PGD_TEST_SUITE(arena);

Test(arena, the_top_grows_down_unseen_by_the_fingerprint)
{
    struct pgd__arena a;
    pgd__arena_init(&a, PGD_DEVICE_CPU);
    cr_assert_eq(pgd__arena_reserve(&a, 64 << 10), 0);
    cr_assert_null(pgd__arena_alloc_top(&a, (size_t)65 << 10), "more than the chunk");
    char *b0 = pgd__arena_alloc(&a, 1000);
    uint64_t fp = a.fingerprint;
    size_t in_use = a.in_use;
    char *t0 = pgd__arena_alloc_top(&a, 100), *t1 = pgd__arena_alloc_top(&a, 3000);
    cr_assert(t0 && t1);
    cr_assert_eq(a.fingerprint, fp, "the top's allocations change the fingerprint");
    cr_assert_eq(a.in_use, in_use, "the top's allocations count as the bottom's");
    cr_assert_eq((size_t)(t0 - b0) % 256, 0, "256-byte offsets from the chunk's start");
    cr_assert_eq((size_t)(t1 - b0) % 256, 0);
    cr_assert_eq(t0, b0 + (64 << 10) - 256, "the first top allocation ends the chunk");
    cr_assert_eq(t1, t0 - 3072, "the next one lies right below it");
    /* The bottom stops below the top: a chunk's worth more goes to a new chunk. */
    char *b1 = pgd__arena_alloc(&a, 1000);
    cr_assert_eq(b1, b0 + 1024);
    char *b2 = pgd__arena_alloc(&a, (size_t)60 << 10);
    cr_assert(b2 && (b2 < b0 || b2 >= b0 + (64 << 10)), "the bottom overran the top");
    pgd__arena_fini(&a);
}

Test(arena, reset_rewinds_both_ends_and_the_room_is_above_the_bottom)
{
    struct pgd__arena a;
    pgd__arena_init(&a, PGD_DEVICE_CPU);
    cr_assert_eq(pgd__arena_top_room(&a, 0), 0, "no chunk, no room");
    cr_assert_null(pgd__arena_alloc_top(&a, 1));
    cr_assert_eq(pgd__arena_reserve(&a, 64 << 10), 0);
    cr_assert_eq(pgd__arena_top_room(&a, 1000), (64 << 10) - 1024);
    cr_assert_eq(pgd__arena_top_room(&a, 64 << 10), 0);
    char *b0 = pgd__arena_alloc(&a, 1000);
    char *t0 = pgd__arena_alloc_top(&a, (64 << 10) - 1024);
    cr_assert_not_null(t0, "the room reported is there");
    cr_assert_null(pgd__arena_alloc_top(&a, 1), "the chunk is full");
    pgd__arena_reset(&a);
    cr_assert_eq(pgd__arena_alloc(&a, 1000), b0, "reset rewinds the bottom");
    cr_assert_eq(pgd__arena_alloc_top(&a, 1000), b0 + (64 << 10) - 1024,
                 "reset rewinds the top");
    /* A second chunk (a larger step after the reservation): the top and its room stay the
     * first chunk's, where a reset's bottom lands. */
    pgd__arena_reset(&a);
    char *big = pgd__arena_alloc(&a, (size_t)128 << 10);
    cr_assert(big && (big < b0 || big >= b0 + (64 << 10)));
    pgd__arena_reset(&a);
    cr_assert_eq(pgd__arena_top_room(&a, 1000), (64 << 10) - 1024);
    cr_assert_eq(pgd__arena_alloc(&a, 1000), b0);
    cr_assert_eq(pgd__arena_alloc_top(&a, 1000), b0 + (64 << 10) - 1024);
    pgd__arena_fini(&a);
}
