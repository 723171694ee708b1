/* The runner's part of preemption by swapping: the host swap space (runtime/kv/swap_pool.h's
 * memory, laid out as the runner's KV cache: every layer's K, then its V) and the block
 * copies between it and the cache, by the CPU kernels' memcpy or the CUDA backend's copy
 * stream. Which blocks go where is the kv manager's (runtime/kv/kv_swap.c). */
#include "config.h"
#include "runtime/runner/runner_internal.h"
#include "runtime/kv/kv_cache.h"
#include "kernels/cpu/cpu_kernels.h"
#include <pagoda/log.h>
#include <stdlib.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

size_t pgd__runner_kv_block_bytes(const struct pgd__runner *r)
{
    const struct pgd__kv_cache *kv = &r->kv;
    return pgd__kv_cache_block_bytes(kv->n_layers, kv->block_size, kv->n_kv_heads,
                                     kv->head_dim, kv->dtype);
}

int pgd__runner_num_swap_blocks(const struct pgd__runner *r) { return r->swap.num_blocks; }

/* The cache's arrays (*dev) and their host twins (*host), in the same order, layer l's K at
 * 2l and its V at 2l + 1: one allocation at *dev, the caller's (free(*dev)). */
static enum pgd_status swap_tables(const struct pgd__runner *r, void ***dev, void ***host,
                                   char *err, size_t errlen)
{
    int n_arrays = r->swap.n_arrays;
    *dev = malloc(2 * (size_t)n_arrays * sizeof **dev);
    if (!*dev)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "swap: out of memory");
    *host = *dev + n_arrays;
    for (int l = 0; l < r->kv.n_layers; l++) {
        (*dev)[2 * l] = r->kv.k[l];
        (*dev)[2 * l + 1] = r->kv.v[l];
    }
    for (int a = 0; a < n_arrays; a++)
        (*host)[a] = pgd__swap_mem_array(&r->swap, a);
    return PGD_OK;
}

void pgd__runner_swap_fini(struct pgd__runner *r)
{
#ifdef PGD_HAVE_CUDA
    pgd_cuda_swap_destroy(r->cuda_swap);     /* waits for its copies */
    r->cuda_swap = NULL;
#endif
    pgd__swap_mem_fini(&r->swap);
    r->swap.num_blocks = 0;
}

enum pgd_status pgd__runner_swap_init(struct pgd__runner *r, size_t bytes, char *err,
                                      size_t errlen)
{
    pgd__runner_swap_fini(r);
    if (bytes == 0)
        return PGD_OK;
    if (r->params.comm)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "swap_space: preemption by swapping "
                        "under tensor parallelism is not supported (set swap_space 0 or "
                        "preemption_mode recompute)");
    size_t block_bytes = pgd__runner_kv_block_bytes(r);
    int n = pgd__swap_pool_blocks_for_bytes(bytes, block_bytes);
    /* More host blocks than the device pool has could never fill. */
    if (n > r->kv.num_blocks)
        n = r->kv.num_blocks;
    if (n == 0) {
        PGD_WARN("swap_space: %zu bytes hold no KV block of %zu bytes: preemption recomputes",
                 bytes, block_bytes);
        return PGD_OK;
    }
    /* Every layer's K and V, one block of one array being 1 / (2 n_layers) of the block. */
    int n_arrays = 2 * r->kv.n_layers;
    enum pgd_status st = pgd__swap_mem_init(&r->swap, r->params.device, n, n_arrays,
                                            block_bytes / (size_t)n_arrays, err, errlen);
#ifdef PGD_HAVE_CUDA
    if (st == PGD_OK && r->cuda) {
        void **dev = NULL, **host = NULL;
        if ((st = swap_tables(r, &dev, &host, err, errlen)) == PGD_OK &&
            pgd_cuda_swap_create(r->cuda, dev, host, n_arrays, r->swap.array_block_bytes,
                                 &r->cuda_swap, err, errlen))
            st = PGD_ERR_DEVICE;
        free(dev);
    }
#endif
    if (st != PGD_OK) {
        pgd__runner_swap_fini(r);
        return st;
    }
    PGD_INFO("swap space: %d KV blocks (%.2f GiB of %s host memory) for preemption by swapping",
             n, (double)n * (double)block_bytes / (double)(1u << 30),
             r->params.device == PGD_DEVICE_CPU ? "plain" : "pinned");
    return PGD_OK;
}

enum pgd_status pgd__runner_swap_blocks(struct pgd__runner *r, bool to_host,
                                        const int32_t *dev_blocks, const int32_t *host_blocks,
                                        int n, char *err, size_t errlen)
{
    if (n <= 0)
        return PGD_OK;
    if (r->swap.num_blocks == 0)
        return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "swap: the runner has no swap space");
    for (int i = 0; i < n; i++)
        PGD_ASSERT(dev_blocks[i] >= 0 && dev_blocks[i] < r->kv.num_blocks &&
                   host_blocks[i] >= 0 && host_blocks[i] < r->swap.num_blocks);
#ifdef PGD_HAVE_CUDA
    if (r->cuda_swap)
        return pgd_cuda_swap_blocks(r->cuda, r->cuda_swap, to_host, dev_blocks, host_blocks, n,
                                    err, errlen) ? PGD_ERR_DEVICE : PGD_OK;
#endif
    void **dev = NULL, **host = NULL;
    enum pgd_status st = swap_tables(r, &dev, &host, err, errlen);
    if (st != PGD_OK)
        return st;
    pgd_cpu_kv_swap_blocks(to_host, dev, host, r->swap.n_arrays, r->swap.array_block_bytes,
                           dev_blocks, host_blocks, n);
    free(dev);
    return PGD_OK;
}
