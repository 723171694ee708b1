/* The paged KV cache memory (see kv_cache.h). */
#include "runtime/kv/kv_cache.h"
#include "runtime/base/device.h"
#include <stdlib.h>
#include <string.h>

enum pgd_status pgd__kv_cache_dtype_parse(const char *s, enum pgd_dtype *out, char *err,
                                          size_t errlen)
{
    *out = PGD_DTYPE_COUNT;
    if (!s || !*s || !strcmp(s, "auto"))
        return PGD_OK;
    if (!strcmp(s, "fp8") || !strcmp(s, "fp8_e4m3")) {
        *out = PGD_DTYPE_F8_E4M3;
        return PGD_OK;
    }
    if (!strcmp(s, "fp8_e5m2"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "kv_cache_dtype: fp8_e5m2 is not "
                        "supported (fp8 = fp8_e4m3 is)");
    return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "kv_cache_dtype: '%s' (expected auto, "
                    "fp8 or fp8_e4m3)", s);
}

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
    kv->k_scale = malloc((size_t)(n_layers > 0 ? n_layers : 1) * sizeof *kv->k_scale);
    kv->v_scale = malloc((size_t)(n_layers > 0 ? n_layers : 1) * sizeof *kv->v_scale);
    if (!kv->k || !kv->v || !kv->k_scale || !kv->v_scale)
        goto oom;
    for (int l = 0; l < n_layers; l++)
        kv->k_scale[l] = kv->v_scale[l] = 1.0f;
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
    free(kv->k_scale);
    free(kv->v_scale);
    kv->k = kv->v = NULL;
    kv->k_scale = kv->v_scale = NULL;
}
