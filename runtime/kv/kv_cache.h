/* Internal: the paged KV cache memory. One pool of num_blocks blocks of block_size tokens;
 * for every layer a K and a V array [num_blocks * block_size, n_kv_heads, head_dim] in the
 * cache dtype on the device. Which request owns which block is the kv manager's business. */
#ifndef PGD_RUNTIME_KV_CACHE_H
#define PGD_RUNTIME_KV_CACHE_H

#include <pagoda/tensor.h>
#include <pagoda/status.h>

struct pgd__kv_cache {
    enum pgd_device device;
    enum pgd_dtype dtype;
    int n_layers, num_blocks, block_size, n_kv_heads, head_dim;
    void **k, **v;                     /* [n_layers] arrays, owned */
};

/* Bytes one block takes across all layers (K and V). */
size_t pgd__kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim,
                                 enum pgd_dtype dtype);
enum pgd_status pgd__kv_cache_init(struct pgd__kv_cache *kv, enum pgd_device device,
                                   enum pgd_dtype dtype, int n_layers, int num_blocks,
                                   int block_size, int n_kv_heads, int head_dim,
                                   char *err, size_t errlen);
void pgd__kv_cache_fini(struct pgd__kv_cache *kv);

#endif
