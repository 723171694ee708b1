/* Internal: the host swap pool (vLLM v0's --swap-space): where the KV blocks of sequences
 * preempted by swapping wait in host memory until they are swapped back in.
 *
 * Two halves, as the device's pool has (block_pool.h for the records, kv_cache.h for the
 * memory): struct pgd__swap_pool is the records of the host blocks (which are free), kept
 * by the kv manager beside the device pool; struct pgd__swap_mem is their memory, kept by
 * whoever owns the KV cache memory (the runner), laid out as the cache is: for each of the
 * cache's n_arrays arrays (every layer's K, then its V) a region of num_blocks blocks of
 * array_block_bytes. On a GPU the memory is pinned (cudaHostAlloc), so that copies to and
 * from it run asynchronously; on the CPU it is plain memory. */
#ifndef PGD_RUNTIME_SWAP_POOL_H
#define PGD_RUNTIME_SWAP_POOL_H

#include <pagoda/tensor.h>
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgd__swap_pool {
    int num_blocks;                 /* host blocks; 0: no swap space */
    int32_t *free_ids;              /* [num_blocks] stack of free ids (top = num_free - 1) */
    int num_free;
};

/* All num_blocks (>= 0) host blocks start free; allocation hands out the lowest ids first
 * (so that a sequence's blocks are mostly consecutive and its copies coalesce). */
enum pgd_status pgd__swap_pool_init(struct pgd__swap_pool *p, int num_blocks, char *err,
                                    size_t errlen);
void pgd__swap_pool_fini(struct pgd__swap_pool *p);
static inline int pgd__swap_pool_num_free(const struct pgd__swap_pool *p) { return p->num_free; }
/* Takes n free host blocks into out[0..n). All or nothing: false when fewer are free. */
bool pgd__swap_pool_alloc(struct pgd__swap_pool *p, int n, int32_t *out);
/* Gives ids[0..n) back (each must be held: a double free is a bug, PGD_ASSERT). */
void pgd__swap_pool_free(struct pgd__swap_pool *p, const int32_t *ids, int n);
/* Whether the free stack is a set of distinct valid ids; for tests. */
bool pgd__swap_pool_check(const struct pgd__swap_pool *p, char *err, size_t errlen);

/* How many host blocks of block_bytes (every layer's K and V of one block) fit in bytes. */
int pgd__swap_pool_blocks_for_bytes(size_t bytes, size_t block_bytes);

struct pgd__swap_mem {
    enum pgd_device device;         /* whose copies read and write it (CUDA: pinned) */
    int num_blocks;
    int n_arrays;                   /* the KV cache's arrays: 2 per layer (K, V) */
    size_t array_block_bytes;       /* one block of one array */
    char *base;                     /* [n_arrays][num_blocks][array_block_bytes], owned */
};

/* Allocates num_blocks host blocks of n_arrays arrays of array_block_bytes each. */
enum pgd_status pgd__swap_mem_init(struct pgd__swap_mem *m, enum pgd_device device,
                                   int num_blocks, int n_arrays, size_t array_block_bytes,
                                   char *err, size_t errlen);
void pgd__swap_mem_fini(struct pgd__swap_mem *m);
/* Array a's region: [num_blocks][array_block_bytes]. */
static inline void *pgd__swap_mem_array(const struct pgd__swap_mem *m, int a)
{
    return m->base + (size_t)a * m->num_blocks * m->array_block_bytes;
}

#endif
