/* The paged KV cache memory (see kv_cache.h). */
#include "runtime/kv/kv_cache.h"
#include "runtime/base/device.h"
#include <stdlib.h>

size_t pgd__kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim,
                                 enum pgd_dtype dtype)
{
    return 2 * (size_t)n_layers * block_size * n_kv_heads * head_dim * pgd_dtype_size(dtype);
}

enum pgd_status pgd__kv_cache_init(struct pgd__kv_cache *kv, enum pgd_device device,
                                   enum pgd_dtype dtype, int n_layers, int num_blocks,
                                   int block_size, int n_kv_heads, int head_dim,
                                   char *err, size_t errlen)
{
    *kv = (struct pgd__kv_cache){ .device = device, .dtype = dtype, .n_layers = n_layers,
                                  .num_blocks = num_blocks, .block_size = block_size,
                                  .n_kv_heads = n_kv_heads, .head_dim = head_dim };
    if (num_blocks <= 0 || block_size <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "kv cache: num_blocks (%d) and block_size (%d) must be positive",
                        num_blocks, block_size);
    kv->k = calloc((size_t)n_layers, sizeof *kv->k);
    kv->v = calloc((size_t)n_layers, sizeof *kv->v);
    if (!kv->k || !kv->v)
        goto oom;
    size_t layer_bytes = (size_t)num_blocks * block_size * n_kv_heads * head_dim *
                         pgd_dtype_size(dtype);
    for (int l = 0; l < n_layers; l++) {
        kv->k[l] = pgd__device_alloc(device, layer_bytes);
        kv->v[l] = pgd__device_alloc(device, layer_bytes);
        if (!kv->k[l] || !kv->v[l])
            goto oom;
    }
    return PGD_OK;
oom:
    pgd__kv_cache_fini(kv);
    return pgd_errf(err, errlen, PGD_ERR_NOMEM,
                    "kv cache: cannot allocate %d blocks of %d tokens x %d layers on %s (%zu bytes)",
                    num_blocks, block_size, n_layers, pgd__device_name(device),
                    pgd__kv_cache_block_bytes(n_layers, block_size, n_kv_heads, head_dim, dtype) *
                        (size_t)num_blocks);
}

void pgd__kv_cache_fini(struct pgd__kv_cache *kv)
{
    for (int l = 0; kv->k && l < kv->n_layers; l++)
        pgd__device_free(kv->device, kv->k[l]);
    for (int l = 0; kv->v && l < kv->n_layers; l++)
        pgd__device_free(kv->device, kv->v[l]);
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}
