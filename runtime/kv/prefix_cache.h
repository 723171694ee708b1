/* Internal: the prefix cache's hashing and its hash -> block table.
 *
 * A full block of token ids is named by a chained hash:
 *   hash(block i) = XXH3_128(hash(block i - 1), token ids of block i, extra keys)
 * where block 0 has no parent and takes the request's cache salt as its extra key, so that
 * two prompts share block i only when they agree on every token up to the end of block i
 * (and on the salt). Only full blocks are ever hashed. The table maps a hash to the one
 * block that holds those tokens' KV; the block pool owns the table (runtime/kv/block_pool.c). */
#ifndef PGD_RUNTIME_PREFIX_CACHE_H
#define PGD_RUNTIME_PREFIX_CACHE_H

#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgd__block_hash {
    uint64_t lo, hi;
};

static inline bool pgd__block_hash_eq(struct pgd__block_hash a, struct pgd__block_hash b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

/* The hash of one full block. parent is NULL for a request's first block; extra (may be
 * NULL when extra_len is 0) is mixed in as the block's extra keys, e.g. the cache salt. */
struct pgd__block_hash pgd__block_hash_compute(const struct pgd__block_hash *parent,
                                               const int32_t *tokens, int n_tokens,
                                               const void *extra, size_t extra_len);

/* An open-addressing (linear probing, backward-shift deletion) map from hash to block id.
 * Capacity is fixed at init: at least twice the number of entries it will ever hold. */
struct pgd__hash_table {
    struct pgd__block_hash *keys;   /* [cap], owned */
    int32_t *vals;                  /* [cap], owned; -1 marks an empty slot */
    size_t cap;                     /* a power of two */
    size_t count;
};

enum pgd_status pgd__hash_table_init(struct pgd__hash_table *t, size_t max_entries,
                                     char *err, size_t errlen);
void pgd__hash_table_fini(struct pgd__hash_table *t);
/* The block id stored for h, or -1. */
int32_t pgd__hash_table_get(const struct pgd__hash_table *t, struct pgd__block_hash h);
/* Stores h -> id unless h is already present; returns true when it stored. */
bool pgd__hash_table_put(struct pgd__hash_table *t, struct pgd__block_hash h, int32_t id);
/* Removes h if present with value id; returns true when it removed. */
bool pgd__hash_table_del(struct pgd__hash_table *t, struct pgd__block_hash h, int32_t id);

#endif
