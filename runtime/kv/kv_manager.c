/* Per-sequence block tables over the block pool, with prefix-cache lookups. */
#include "runtime/kv/kv_manager.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

enum pgd_status pgd__kv_manager_init(struct pgd__kv_manager *m, int num_blocks, int block_size,
                                     bool enable_prefix_caching, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (block_size <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "kv manager: block_size must be positive (got %d)", block_size);
    m->block_size = block_size;
    return pgd__block_pool_init(&m->pool, num_blocks, enable_prefix_caching, err, errlen);
}

void pgd__kv_manager_fini(struct pgd__kv_manager *m)
{
    pgd__block_pool_fini(&m->pool);
    pgd__swap_pool_fini(&m->swap);
}

enum pgd_status pgd__kv_manager_init_swap(struct pgd__kv_manager *m, int num_swap_blocks,
                                          char *err, size_t errlen)
{
    pgd__swap_pool_fini(&m->swap);
    return pgd__swap_pool_init(&m->swap, num_swap_blocks, err, errlen);
}

void pgd__kv_seq_fini(struct pgd__kv_seq *s)
{
    PGD_ASSERT(s->n_blocks == 0 && s->n_swap_blocks == 0);
    free(s->blocks);
    free(s->hashes);
    free(s->swap_blocks);
    memset(s, 0, sizeof *s);
}

/* Extends s->hashes to cover the first n_full full blocks of tokens. */
static void compute_hashes(struct pgd__kv_manager *m, struct pgd__kv_seq *s,
                           const int32_t *tokens, int n_full)
{
    if (n_full <= s->n_hashes)
        return;
    /* A few bytes per block, bounded by max_model_len: bookkeeping the OOM policy
     * (include/pagoda/status.h) lets fail fatally. */
    pgd__array_reserve_or_oom(s->hashes, s->hashes_cap, (size_t)n_full,
                              "kv manager: block hashes");
    for (int i = s->n_hashes; i < n_full; i++) {
        const struct pgd__block_hash *parent = i > 0 ? &s->hashes[i - 1] : NULL;
        s->hashes[i] = pgd__block_hash_compute(parent, tokens + (size_t)i * m->block_size,
                                               m->block_size, i == 0 ? s->salt : NULL,
                                               i == 0 ? s->salt_len : 0);
    }
    s->n_hashes = n_full;
}

int pgd__kv_find_prefix(struct pgd__kv_manager *m, struct pgd__kv_seq *s, const int32_t *tokens,
                        int n_tokens, int32_t *hits)
{
    PGD_ASSERT(s->n_blocks == 0);
    if (!m->pool.caching || n_tokens <= 0)
        return 0;
    int max_full = (n_tokens - 1) / m->block_size;
    compute_hashes(m, s, tokens, max_full);
    int n = 0;
    while (n < max_full) {
        int32_t id = pgd__block_pool_lookup(&m->pool, s->hashes[n]);
        if (id < 0)
            break;
        hits[n++] = id;
    }
    return n;
}

/* The blocks s needs beyond what it holds and the hits bring, to cover n_total tokens. */
static int new_blocks_for(const struct pgd__kv_manager *m, const struct pgd__kv_seq *s,
                          int n_total, int n_hits)
{
    int n_new = pgd__kv_blocks_for(m, n_total) - s->n_blocks - n_hits;
    return n_new < 0 ? 0 : n_new;
}

int pgd__kv_blocks_to_allocate(const struct pgd__kv_manager *m, const struct pgd__kv_seq *s,
                               int n_total, const int32_t *hits, int n_hits)
{
    /* Hit blocks with no holder sit in the free queue: touching them takes them out. */
    int hits_free = 0;
    for (int i = 0; i < n_hits; i++)
        if (m->pool.blocks[hits[i]].ref_count == 0)
            hits_free++;
    return new_blocks_for(m, s, n_total, n_hits) + hits_free;
}

bool pgd__kv_allocate_slots(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_total,
                            const int32_t *hits, int n_hits)
{
    PGD_ASSERT(n_hits == 0 || s->n_blocks == 0);
    int n_new = new_blocks_for(m, s, n_total, n_hits);
    if (pgd__kv_blocks_to_allocate(m, s, n_total, hits, n_hits) >
        pgd__block_pool_num_free(&m->pool))
        return false;
    pgd__array_reserve_or_oom(s->blocks, s->blocks_cap, (size_t)(s->n_blocks + n_hits + n_new),
                              "kv manager: block table");
    for (int i = 0; i < n_hits; i++) {
        pgd__block_pool_touch(&m->pool, hits[i]);
        s->blocks[s->n_blocks++] = hits[i];
    }
    /* The hits are already in the cache under these very hashes. */
    if (n_hits > 0)
        s->n_cached = n_hits;
    bool ok = pgd__block_pool_alloc(&m->pool, n_new, s->blocks + s->n_blocks);
    PGD_ASSERT(ok);
    s->n_blocks += n_new;
    return true;
}

void pgd__kv_cache_blocks(struct pgd__kv_manager *m, struct pgd__kv_seq *s,
                          const int32_t *tokens, int n_computed)
{
    if (!m->pool.caching)
        return;
    int n_full = n_computed / m->block_size;
    PGD_ASSERT(n_full <= s->n_blocks);
    if (n_full <= s->n_cached)
        return;
    compute_hashes(m, s, tokens, n_full);
    for (int i = s->n_cached; i < n_full; i++)
        pgd__block_pool_cache(&m->pool, s->blocks[i], s->hashes[i]);
    s->n_cached = n_full;
}

void pgd__kv_truncate(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_tokens)
{
    int keep = pgd__kv_blocks_for(m, n_tokens);
    PGD_ASSERT(keep >= s->n_cached && keep >= s->n_released);
    for (int i = s->n_blocks - 1; i >= keep; i--)
        pgd__block_pool_free(&m->pool, &s->blocks[i], 1);
    if (s->n_blocks > keep)
        s->n_blocks = keep;
}

void pgd__kv_free(struct pgd__kv_manager *m, struct pgd__kv_seq *s)
{
    /* Tail first: the free queue is LRU, so the tail blocks (least likely to be shared)
     * are reused before the head blocks of the same sequence. */
    for (int i = s->n_blocks - 1; i >= s->n_released; i--)
        pgd__block_pool_free(&m->pool, &s->blocks[i], 1);
    s->n_blocks = 0;
    s->n_cached = 0;
    s->n_released = 0;
}

int pgd__kv_release_outside_window(struct pgd__kv_manager *m, struct pgd__kv_seq *s,
                                   int n_computed, int window)
{
    if (window <= 0)
        return 0;
    int first_needed = n_computed - window + 1;       /* the oldest key still to be read */
    int limit = first_needed > 0 ? first_needed / m->block_size : 0;
    if (limit > s->n_blocks)
        limit = s->n_blocks;
    int released = 0;
    for (; s->n_released < limit; s->n_released++, released++) {
        pgd__block_pool_free(&m->pool, &s->blocks[s->n_released], 1);
        s->blocks[s->n_released] = -1;
    }
    return released;
}
