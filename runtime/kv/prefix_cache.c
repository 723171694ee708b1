/* Chained block hashes (XXH3-128) and the hash -> block id table of the prefix cache. */
#include "runtime/kv/prefix_cache.h"
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY   /* XXH3_state_t on the stack */
#include <xxhash.h>

/* The "parent" of a request's first block: a fixed value, so that a first block never
 * collides with a later block by construction of the input. */
static const uint64_t ROOT_PARENT[2] = { 0x70a90da5eedULL, 0x6b1c0ffeeULL };

struct pgd__block_hash pgd__block_hash_compute(const struct pgd__block_hash *parent,
                                               const int32_t *tokens, int n_tokens,
                                               const void *extra, size_t extra_len)
{
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_128bits_reset(&st);
    uint64_t p[2] = { ROOT_PARENT[0], ROOT_PARENT[1] };
    if (parent) {
        p[0] = parent->lo;
        p[1] = parent->hi;
    }
    XXH3_128bits_update(&st, p, sizeof p);
    /* Lengths keep (tokens, extra) unambiguous. */
    uint64_t lens[2] = { (uint64_t)n_tokens, (uint64_t)extra_len };
    XXH3_128bits_update(&st, lens, sizeof lens);
    if (n_tokens > 0)
        XXH3_128bits_update(&st, tokens, (size_t)n_tokens * sizeof *tokens);
    if (extra_len > 0)
        XXH3_128bits_update(&st, extra, extra_len);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    return (struct pgd__block_hash){ .lo = h.low64, .hi = h.high64 };
}

enum pgd_status pgd__hash_table_init(struct pgd__hash_table *t, size_t max_entries,
                                     char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t cap = 16;
    while (cap < 2 * max_entries)
        cap *= 2;
    t->keys = calloc(cap, sizeof *t->keys);
    t->vals = malloc(cap * sizeof *t->vals);
    if (!t->keys || !t->vals) {
        pgd__hash_table_fini(t);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "prefix cache: no memory for %zu slots", cap);
    }
    for (size_t i = 0; i < cap; i++)
        t->vals[i] = -1;
    t->cap = cap;
    return PGD_OK;
}

void pgd__hash_table_fini(struct pgd__hash_table *t)
{
    free(t->keys);
    free(t->vals);
    memset(t, 0, sizeof *t);
}

static size_t slot_of(const struct pgd__hash_table *t, struct pgd__block_hash h)
{
    return (size_t)(h.lo ^ (h.hi * 0x9e3779b97f4a7c15ULL)) & (t->cap - 1);
}

int32_t pgd__hash_table_get(const struct pgd__hash_table *t, struct pgd__block_hash h)
{
    for (size_t i = slot_of(t, h);; i = (i + 1) & (t->cap - 1)) {
        if (t->vals[i] < 0)
            return -1;
        if (pgd__block_hash_eq(t->keys[i], h))
            return t->vals[i];
    }
}

bool pgd__hash_table_put(struct pgd__hash_table *t, struct pgd__block_hash h, int32_t id)
{
    PGD_ASSERT(id >= 0);
    PGD_ASSERT(t->count + 1 < t->cap);
    size_t i = slot_of(t, h);
    for (; t->vals[i] >= 0; i = (i + 1) & (t->cap - 1))
        if (pgd__block_hash_eq(t->keys[i], h))
            return false;
    t->keys[i] = h;
    t->vals[i] = id;
    t->count++;
    return true;
}

bool pgd__hash_table_del(struct pgd__hash_table *t, struct pgd__block_hash h, int32_t id)
{
    size_t mask = t->cap - 1, i = slot_of(t, h);
    for (;; i = (i + 1) & mask) {
        if (t->vals[i] < 0)
            return false;
        if (pgd__block_hash_eq(t->keys[i], h))
            break;
    }
    if (t->vals[i] != id)
        return false;
    /* Backward-shift deletion: pull later entries of the probe run into the hole when
     * their home slot does not lie cyclically in (hole, j]. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; t->vals[j] >= 0; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->keys[j]);
        bool home_in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!home_in_range) {
            t->keys[hole] = t->keys[j];
            t->vals[hole] = t->vals[j];
            hole = j;
        }
    }
    t->vals[hole] = -1;
    t->count--;
    return true;
}
