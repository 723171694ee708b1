/* Internal: the activation arena. A bump allocator over chunks that are kept across steps:
 * pgd__arena_reset() rewinds, so once the largest step has run no step allocates again.
 * Allocations never move. */
#ifndef PGD_RUNTIME_ARENA_H
#define PGD_RUNTIME_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <pagoda/tensor.h>

struct pgd__arena_chunk;
struct pgd__arena {
    enum pgd_device device;
    struct pgd__arena_chunk *chunks;   /* owned; the current chunk is `cur` */
    struct pgd__arena_chunk *cur;
    size_t in_use, high_water;         /* bytes handed out this step / at most */
    /* A hash of the addresses handed out since the last reset: two steps that allocate the
     * same sizes in the same order get the same addresses, and this shows it (the runner's
     * CUDA graphs rely on it). */
    uint64_t fingerprint;
};

void pgd__arena_init(struct pgd__arena *a, enum pgd_device device);
/* Pre-sizes the arena to at least bytes in one chunk (after a profiling step). */
int pgd__arena_reserve(struct pgd__arena *a, size_t bytes);
/* 256-byte aligned memory valid until the next reset, or NULL when memory ran out. */
void *pgd__arena_alloc(struct pgd__arena *a, size_t bytes);
/* The same from the top of the arena's first chunk downward, never past what the bottom
 * holds there: memory the fingerprint does not see, for allocations whose sizes vary
 * between steps that must otherwise allocate alike (the piecewise graphs' eager calls); NULL
 * when it does not fit (no new chunk is made). Rewound by reset. */
void *pgd__arena_alloc_top(struct pgd__arena *a, size_t bytes);
/* The bytes alloc_top can hand out after a reset once the bottom holds `bottom` bytes of
 * the first chunk (0 when they do not fit in it). */
size_t pgd__arena_top_room(const struct pgd__arena *a, size_t bottom);
void pgd__arena_reset(struct pgd__arena *a);
void pgd__arena_fini(struct pgd__arena *a);

#endif
