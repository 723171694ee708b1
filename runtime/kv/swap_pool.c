/* The host swap pool (see swap_pool.h): the host blocks' free stack, and their memory. */
#include "runtime/kv/swap_pool.h"
#include "runtime/base/device.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pgd_status pgd__swap_pool_init(struct pgd__swap_pool *p, int num_blocks, char *err,
                                    size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (num_blocks < 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "swap pool: num_blocks must not be negative (got %d)", num_blocks);
    if (num_blocks == 0)
        return PGD_OK;
    p->free_ids = malloc((size_t)num_blocks * sizeof *p->free_ids);
    if (!p->free_ids)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "swap pool: no memory for %d block records",
                        num_blocks);
    /* The stack's top is the lowest id. */
    for (int i = 0; i < num_blocks; i++)
        p->free_ids[i] = num_blocks - 1 - i;
    p->num_blocks = p->num_free = num_blocks;
    return PGD_OK;
}

void pgd__swap_pool_fini(struct pgd__swap_pool *p)
{
    free(p->free_ids);
    memset(p, 0, sizeof *p);
}

bool pgd__swap_pool_alloc(struct pgd__swap_pool *p, int n, int32_t *out)
{
    if (n > p->num_free)
        return false;
    for (int i = 0; i < n; i++)
        out[i] = p->free_ids[--p->num_free];
    return true;
}

void pgd__swap_pool_free(struct pgd__swap_pool *p, const int32_t *ids, int n)
{
    /* Pushed in reverse, so that the next allocation gets them back in the same order. */
    for (int i = n - 1; i >= 0; i--) {
        PGD_ASSERT(ids[i] >= 0 && ids[i] < p->num_blocks && p->num_free < p->num_blocks);
        p->free_ids[p->num_free++] = ids[i];
    }
}

bool pgd__swap_pool_check(const struct pgd__swap_pool *p, char *err, size_t errlen)
{
    if (p->num_free < 0 || p->num_free > p->num_blocks) {
        snprintf(err, errlen, "swap pool: %d free of %d blocks", p->num_free, p->num_blocks);
        return false;
    }
    bool *seen = calloc((size_t)p->num_blocks + 1, sizeof *seen);
    if (!seen) {
        snprintf(err, errlen, "swap pool: no memory for the check");
        return false;
    }
    bool ok = true;
    for (int i = 0; ok && i < p->num_free; i++) {
        int32_t id = p->free_ids[i];
        if (id < 0 || id >= p->num_blocks || seen[id]) {
            snprintf(err, errlen, "swap pool: free entry %d is %s id %d", i,
                     id < 0 || id >= p->num_blocks ? "an invalid" : "a repeated", id);
            ok = false;
        } else {
            seen[id] = true;
        }
    }
    free(seen);
    return ok;
}

int pgd__swap_pool_blocks_for_bytes(size_t bytes, size_t block_bytes)
{
    if (block_bytes == 0)
        return 0;
    size_t n = bytes / block_bytes;
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

enum pgd_status pgd__swap_mem_init(struct pgd__swap_mem *m, enum pgd_device device,
                                   int num_blocks, int n_arrays, size_t array_block_bytes,
                                   char *err, size_t errlen)
{
    *m = (struct pgd__swap_mem){ .device = device, .num_blocks = num_blocks,
                                 .n_arrays = n_arrays, .array_block_bytes = array_block_bytes };
    if (num_blocks <= 0 || n_arrays <= 0 || array_block_bytes == 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "swap space: %d blocks of %d arrays of %zu bytes", num_blocks,
                        n_arrays, array_block_bytes);
    size_t bytes = (size_t)num_blocks * (size_t)n_arrays * array_block_bytes;
    m->base = pgd__host_alloc(device, bytes);
    if (!m->base)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM,
                        "swap space: cannot allocate %zu bytes of %s host memory for %d KV "
                        "blocks (lower swap_space)", bytes,
                        device == PGD_DEVICE_CPU ? "plain" : "pinned", num_blocks);
    return PGD_OK;
}

void pgd__swap_mem_fini(struct pgd__swap_mem *m)
{
    pgd__host_free(m->device, m->base);
    m->base = NULL;
}
