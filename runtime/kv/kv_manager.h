/* Internal: the KV cache manager. It keeps each sequence's block table (the blocks holding
 * its positions' KV, in order), finds a new sequence's prefix in the prefix cache,
 * allocates the blocks a step needs (all or nothing) and registers full blocks in the
 * prefix cache once their KV has been computed. */
#ifndef PGD_RUNTIME_KV_MANAGER_H
#define PGD_RUNTIME_KV_MANAGER_H

#include "runtime/kv/block_pool.h"
#include "runtime/kv/swap_pool.h"

struct pgd__kv_manager {
    struct pgd__block_pool pool;
    int block_size;                 /* tokens per block */
    struct pgd__swap_pool swap;     /* the host blocks of swapped-out sequences (kv_swap.c);
                                       none until pgd__kv_manager_init_swap */
    /* Counters for metrics, in tokens (vLLM's prefix_cache_queries / _hits). */
    uint64_t prefix_queries, prefix_hits;
};

/* One sequence's state in the manager. Zero-initialise it; pgd__kv_seq_fini frees it. */
struct pgd__kv_seq {
    int32_t *blocks;                /* [n_blocks] block table, owned */
    int n_blocks;
    size_t blocks_cap;
    struct pgd__block_hash *hashes; /* [n_hashes] chained hashes of the first full blocks */
    int n_hashes;
    size_t hashes_cap;
    int n_cached;                   /* blocks [0, n_cached) were offered to the cache */
    int n_released;                 /* blocks [0, n_released) fell out of the sliding window
                                       and went back to the pool: their entries are -1 */
    int32_t *swap_blocks;           /* [n_swap_blocks] while swapped out: the host blocks
                                       holding the KV of its first blocks, in order (owned) */
    int n_swap_blocks;
    size_t swap_cap;
    const void *salt;               /* borrowed cache salt (extra key of block 0), may be NULL */
    size_t salt_len;
};

enum pgd_status pgd__kv_manager_init(struct pgd__kv_manager *m, int num_blocks, int block_size,
                                     bool enable_prefix_caching, char *err, size_t errlen);
void pgd__kv_manager_fini(struct pgd__kv_manager *m);

/* Gives m a host swap pool of num_swap_blocks blocks (0: none), after init. */
enum pgd_status pgd__kv_manager_init_swap(struct pgd__kv_manager *m, int num_swap_blocks,
                                          char *err, size_t errlen);

/* Frees a sequence's table and hashes (its blocks, device and host, must have been
 * released). */
void pgd__kv_seq_fini(struct pgd__kv_seq *s);

/* Looks up the longest cached prefix of tokens[0, n_tokens), in full blocks, never the
 * whole sequence: the last token is always left to compute so that it yields logits.
 * Writes the hit block ids to hits[] (room for n_tokens / block_size entries) and returns
 * how many; takes no references (pass them to pgd__kv_allocate_slots). s must hold no
 * blocks. The caller counts queries and hits once the sequence is admitted. */
int pgd__kv_find_prefix(struct pgd__kv_manager *m, struct pgd__kv_seq *s, const int32_t *tokens,
                        int n_tokens, int32_t *hits);

/* Makes s's table cover n_total tokens, first appending the n_hits blocks found by
 * pgd__kv_find_prefix (s must then hold no blocks). Returns false, changing nothing, when
 * the pool is short. */
/* How many free blocks pgd__kv_allocate_slots(m, s, n_total, hits, n_hits) would take from
 * the pool (new blocks, and hit blocks now sitting in the free queue). */
int pgd__kv_blocks_to_allocate(const struct pgd__kv_manager *m, const struct pgd__kv_seq *s,
                               int n_total, const int32_t *hits, int n_hits);
bool pgd__kv_allocate_slots(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_total,
                            const int32_t *hits, int n_hits);

/* The KV of tokens[0, n_computed) is in s's blocks: registers the full blocks among them in
 * the prefix cache. */
void pgd__kv_cache_blocks(struct pgd__kv_manager *m, struct pgd__kv_seq *s,
                          const int32_t *tokens, int n_computed);

/* Sliding-window attention: once n_computed tokens are in the cache, a query at any later
 * position p reads only keys (p - window, p], so blocks wholly before n_computed - window + 1
 * are never read again. Returns them to the pool (their table entries become -1) and
 * returns how many it released. window 0 (full attention) releases nothing. */
int pgd__kv_release_outside_window(struct pgd__kv_manager *m, struct pgd__kv_seq *s,
                                   int n_computed, int window);
/* Speculative decoding's rollback: s keeps the blocks that n_tokens tokens need and
 * releases the rest (tail first), which held only rejected proposals' KV. Blocks offered
 * to the prefix cache are never released here (they hold verified tokens only). */
void pgd__kv_truncate(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_tokens);

/* Releases every block of s (tail first, so the tail is evicted first); keeps the hashes,
 * which stay valid for the same tokens. */
void pgd__kv_free(struct pgd__kv_manager *m, struct pgd__kv_seq *s);

/* ---- swapping (kv_swap.c) ----
 * A sequence preempted by swapping keeps its KV in host blocks of m->swap instead of
 * giving it up: pgd__kv_swap_out lists the (device block, host block) copies to make and
 * releases the device blocks; pgd__kv_swap_in takes fresh device blocks and lists the
 * copies back. Whoever runs the copies (the engine, through its backend) must run a plan's
 * swap-outs before its swap-ins and both before the step's forward pass, each list in
 * order, and each step's copies after the previous step's: then a device block released by
 * a swap-out is read before anyone writes it again, and a host block released by a swap-in
 * before a later swap-out overwrites it. */
struct pgd__swap_list {
    int32_t *dev, *host;            /* [n] pairs: device block dev[i] <-> host block host[i] */
    int n;
    size_t dev_cap, host_cap;
};
void pgd__swap_list_fini(struct pgd__swap_list *l);

/* Whether the blocks holding s's first n_tokens (> 0) tokens can be swapped out: the host
 * pool has room for them and no sliding window released any of them. */
bool pgd__kv_can_swap_out(const struct pgd__kv_manager *m, const struct pgd__kv_seq *s,
                          int n_tokens);
/* Swaps out the blocks holding s's first n_tokens tokens (pgd__kv_can_swap_out must hold):
 * takes host blocks for them into s->swap_blocks, appends the (device, host) pairs to out,
 * then releases every device block of s as pgd__kv_free does (a block others share keeps
 * their references; a cached block stays in the prefix cache while it waits in the free
 * queue). */
void pgd__kv_swap_out(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_tokens,
                      struct pgd__swap_list *out);
/* Swaps s back in: allocates device blocks covering n_total tokens (at least its swapped
 * blocks' tokens; all or nothing: false, changing nothing, when the pool is short), appends
 * the (device, host) pairs of its swapped blocks to in and gives the host blocks back. */
bool pgd__kv_swap_in(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_total,
                     struct pgd__swap_list *in);
/* Gives back the host blocks of a swapped-out s that will not come back (finished or
 * aborted while swapped). */
void pgd__kv_swap_drop(struct pgd__kv_manager *m, struct pgd__kv_seq *s);

/* Blocks needed to hold n tokens. */
static inline int pgd__kv_blocks_for(const struct pgd__kv_manager *m, int n_tokens)
{
    return (n_tokens + m->block_size - 1) / m->block_size;
}

#endif
