/* Internal: the block pool. It owns the records of the KV cache's num_blocks blocks (not
 * their memory: the runner owns that), their reference counts, the queue of free blocks
 * and, when prefix caching is on, the table from a full block's hash to the block.
 *
 * Free blocks sit in an LRU queue threaded through the records: a block whose count drops
 * to 0 goes to the tail, allocation takes from the head. A freed full block keeps its hash
 * (and its table entry) while it waits in the queue, so a later request with the same
 * prefix can revive it (pgd__block_pool_touch); the hash is dropped only when the block
 * is handed out again (lazy eviction). */
#ifndef PGD_RUNTIME_BLOCK_POOL_H
#define PGD_RUNTIME_BLOCK_POOL_H

#include "runtime/kv/prefix_cache.h"

struct pgd__block {
    int32_t id;
    int32_t ref_count;              /* holders: block tables that list this block */
    int32_t prev_free, next_free;   /* free queue links (-1 at the ends / when not queued) */
    bool in_free_queue;
    bool has_hash;                  /* hash is valid and the table maps it to this block */
    struct pgd__block_hash hash;
};

struct pgd__block_pool {
    struct pgd__block *blocks;      /* [num_blocks], owned */
    int num_blocks;
    int free_head, free_tail;       /* -1 when the queue is empty */
    int num_free;
    bool caching;                   /* prefix caching on: the table is live */
    struct pgd__hash_table table;
    /* Counters for metrics (blocks, not tokens). */
    uint64_t evictions;             /* cached blocks whose hash was dropped on reuse */
};

/* All blocks start free, in id order. */
enum pgd_status pgd__block_pool_init(struct pgd__block_pool *p, int num_blocks, bool caching,
                                     char *err, size_t errlen);
void pgd__block_pool_fini(struct pgd__block_pool *p);

static inline int pgd__block_pool_num_free(const struct pgd__block_pool *p) { return p->num_free; }
/* Fraction of blocks held by some request, in [0, 1]. */
double pgd__block_pool_usage(const struct pgd__block_pool *p);

/* Takes n blocks from the head of the free queue into out[0..n) with ref_count 1,
 * dropping any hash they kept. All or nothing: false (and nothing taken) when fewer than n
 * are free. */
bool pgd__block_pool_alloc(struct pgd__block_pool *p, int n, int32_t *out);
/* Drops one reference of each of ids[0..n), in that order; a block that reaches 0 goes to
 * the tail of the free queue (so ids[n-1] is evicted last of these). */
void pgd__block_pool_free(struct pgd__block_pool *p, const int32_t *ids, int n);
/* The cached block holding hash h, or -1 (always -1 when caching is off). */
int32_t pgd__block_pool_lookup(const struct pgd__block_pool *p, struct pgd__block_hash h);
/* Takes one more reference to a block found by lookup, removing it from the free queue
 * when it was there (its count was 0). */
void pgd__block_pool_touch(struct pgd__block_pool *p, int32_t id);
/* Records that held block id is full and named by h. Returns false (and changes nothing)
 * when caching is off, the block already has a hash, or another block already holds h. */
bool pgd__block_pool_cache(struct pgd__block_pool *p, int32_t id, struct pgd__block_hash h);
/* Forgets every cached hash of a free block (e.g. after the weights change). */
void pgd__block_pool_reset_cache(struct pgd__block_pool *p);

/* Checks the pool's own invariants (queue links, counts, table <-> hash agreement); on
 * failure writes why into err and returns false. O(num_blocks); for tests. */
bool pgd__block_pool_check(const struct pgd__block_pool *p, char *err, size_t errlen);

#endif
