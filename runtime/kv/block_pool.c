/* The block pool: block records, reference counts, the LRU free queue and lazy eviction of
 * cached hashes. */
#include "runtime/kv/block_pool.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void queue_push_tail(struct pgd__block_pool *p, struct pgd__block *b)
{
    PGD_ASSERT(!b->in_free_queue);
    b->prev_free = p->free_tail;
    b->next_free = -1;
    if (p->free_tail >= 0)
        p->blocks[p->free_tail].next_free = b->id;
    else
        p->free_head = b->id;
    p->free_tail = b->id;
    b->in_free_queue = true;
    p->num_free++;
}

static void queue_remove(struct pgd__block_pool *p, struct pgd__block *b)
{
    PGD_ASSERT(b->in_free_queue);
    if (b->prev_free >= 0)
        p->blocks[b->prev_free].next_free = b->next_free;
    else
        p->free_head = b->next_free;
    if (b->next_free >= 0)
        p->blocks[b->next_free].prev_free = b->prev_free;
    else
        p->free_tail = b->prev_free;
    b->prev_free = b->next_free = -1;
    b->in_free_queue = false;
    p->num_free--;
}

enum pgd_status pgd__block_pool_init(struct pgd__block_pool *p, int num_blocks, bool caching,
                                     char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (num_blocks <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "block pool: num_blocks must be positive (got %d)", num_blocks);
    p->blocks = calloc((size_t)num_blocks, sizeof *p->blocks);
    if (!p->blocks)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "block pool: no memory for %d blocks",
                        num_blocks);
    enum pgd_status st = pgd__hash_table_init(&p->table, (size_t)num_blocks, err, errlen);
    if (st != PGD_OK) {
        free(p->blocks);
        p->blocks = NULL;
        return st;
    }
    p->num_blocks = num_blocks;
    p->caching = caching;
    p->free_head = p->free_tail = -1;
    for (int i = 0; i < num_blocks; i++) {
        p->blocks[i].id = i;
        p->blocks[i].prev_free = p->blocks[i].next_free = -1;
        queue_push_tail(p, &p->blocks[i]);
    }
    return PGD_OK;
}

void pgd__block_pool_fini(struct pgd__block_pool *p)
{
    free(p->blocks);
    pgd__hash_table_fini(&p->table);
    memset(p, 0, sizeof *p);
}

double pgd__block_pool_usage(const struct pgd__block_pool *p)
{
    if (p->num_blocks == 0)
        return 0.0;
    return 1.0 - (double)p->num_free / (double)p->num_blocks;
}

static void drop_hash(struct pgd__block_pool *p, struct pgd__block *b)
{
    if (!b->has_hash)
        return;
    bool removed = pgd__hash_table_del(&p->table, b->hash, b->id);
    PGD_ASSERT(removed);
    b->has_hash = false;
    p->evictions++;
}

bool pgd__block_pool_alloc(struct pgd__block_pool *p, int n, int32_t *out)
{
    PGD_ASSERT(n >= 0);
    if (n > p->num_free)
        return false;
    for (int i = 0; i < n; i++) {
        struct pgd__block *b = &p->blocks[p->free_head];
        PGD_ASSERT(b->ref_count == 0);
        queue_remove(p, b);
        drop_hash(p, b);
        b->ref_count = 1;
        out[i] = b->id;
    }
    return true;
}

void pgd__block_pool_free(struct pgd__block_pool *p, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        PGD_ASSERT(ids[i] >= 0 && ids[i] < p->num_blocks);
        struct pgd__block *b = &p->blocks[ids[i]];
        PGD_ASSERT(b->ref_count > 0);
        if (--b->ref_count == 0)
            queue_push_tail(p, b);
    }
}

int32_t pgd__block_pool_lookup(const struct pgd__block_pool *p, struct pgd__block_hash h)
{
    if (!p->caching)
        return -1;
    return pgd__hash_table_get(&p->table, h);
}

void pgd__block_pool_touch(struct pgd__block_pool *p, int32_t id)
{
    PGD_ASSERT(id >= 0 && id < p->num_blocks);
    struct pgd__block *b = &p->blocks[id];
    if (b->ref_count == 0)
        queue_remove(p, b);
    b->ref_count++;
}

bool pgd__block_pool_cache(struct pgd__block_pool *p, int32_t id, struct pgd__block_hash h)
{
    PGD_ASSERT(id >= 0 && id < p->num_blocks);
    struct pgd__block *b = &p->blocks[id];
    PGD_ASSERT(b->ref_count > 0);
    if (!p->caching || b->has_hash)
        return false;
    if (!pgd__hash_table_put(&p->table, h, id))
        return false;
    b->hash = h;
    b->has_hash = true;
    return true;
}

void pgd__block_pool_reset_cache(struct pgd__block_pool *p)
{
    for (int i = 0; i < p->num_blocks; i++)
        if (p->blocks[i].has_hash) {
            pgd__hash_table_del(&p->table, p->blocks[i].hash, i);
            p->blocks[i].has_hash = false;
        }
}

bool pgd__block_pool_check(const struct pgd__block_pool *p, char *err, size_t errlen)
{
    int n = 0, prev = -1;
    for (int id = p->free_head; id >= 0; id = p->blocks[id].next_free) {
        const struct pgd__block *b = &p->blocks[id];
        if (!b->in_free_queue || b->prev_free != prev || b->ref_count != 0) {
            pgd_errf(err, errlen, PGD_ERR_INTERNAL,
                     "block %d: queued with in_free_queue=%d prev=%d (want %d) ref_count=%d",
                     id, b->in_free_queue, b->prev_free, prev, b->ref_count);
            return false;
        }
        if (++n > p->num_blocks) {
            pgd_errf(err, errlen, PGD_ERR_INTERNAL, "free queue has a cycle");
            return false;
        }
        prev = id;
    }
    if (prev != p->free_tail || n != p->num_free) {
        pgd_errf(err, errlen, PGD_ERR_INTERNAL, "free queue: %d walked, num_free %d, tail %d/%d",
                 n, p->num_free, prev, p->free_tail);
        return false;
    }
    size_t hashed = 0;
    for (int i = 0; i < p->num_blocks; i++) {
        const struct pgd__block *b = &p->blocks[i];
        if (b->ref_count < 0 || (b->ref_count == 0) != b->in_free_queue) {
            pgd_errf(err, errlen, PGD_ERR_INTERNAL, "block %d: ref_count %d, in queue %d", i,
                     b->ref_count, b->in_free_queue);
            return false;
        }
        if (b->has_hash) {
            hashed++;
            if (pgd__hash_table_get(&p->table, b->hash) != i) {
                pgd_errf(err, errlen, PGD_ERR_INTERNAL, "block %d: its hash maps elsewhere", i);
                return false;
            }
        }
    }
    if (hashed != p->table.count) {
        pgd_errf(err, errlen, PGD_ERR_INTERNAL, "table holds %zu entries, %zu blocks hashed",
                 p->table.count, hashed);
        return false;
    }
    return true;
}
