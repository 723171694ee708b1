/* Internal: the paged KV cache memory. One pool of num_blocks blocks of block_size tokens;
 * for every layer a K and a V array [num_blocks * block_size, n_kv_heads, head_dim] in the
 * cache dtype on the device. Which request owns which block is the kv manager's business.
 * The cache dtype is the compute dtype, or PGD_DTYPE_F8_E4M3 (kv_cache_dtype fp8): one
 * e4m3fn byte an element, value = e4m3(byte) * k_scale[layer] (K) or v_scale[layer] (V). */
#ifndef PGD_RUNTIME_KV_CACHE_H
#define PGD_RUNTIME_KV_CACHE_H

#include <pagoda/tensor.h>
#include <pagoda/status.h>

struct pgd__kv_cache {
    enum pgd_device device;
    enum pgd_dtype dtype;
    int n_layers, num_blocks, block_size, n_kv_heads, head_dim;
    void **k, **v;                     /* [n_layers] arrays, owned */
    float *k_scale, *v_scale;          /* [n_layers] host, owned; 1.0 unless set (FP8 only) */
};

/* kv_cache_dtype as vLLM spells it: NULL, "" or "auto" -> PGD_DTYPE_COUNT (the compute
 * dtype); "fp8" or "fp8_e4m3" -> PGD_DTYPE_F8_E4M3; "fp8_e5m2" is PGD_ERR_UNSUPPORTED and
 * anything else PGD_ERR_INVALID_ARG, each with a message naming kv_cache_dtype. */
enum pgd_status pgd__kv_cache_dtype_parse(const char *s, enum pgd_dtype *out, char *err,
                                          size_t errlen);

/* Bytes one block takes across all layers (K and V). */
size_t pgd__kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim,
                                 enum pgd_dtype dtype);
enum pgd_status pgd__kv_cache_init(struct pgd__kv_cache *kv, enum pgd_device device,
                                   enum pgd_dtype dtype, int n_layers, int num_blocks,
                                   int block_size, int n_kv_heads, int head_dim,
                                   char *err, size_t errlen);
void pgd__kv_cache_fini(struct pgd__kv_cache *kv);

#endif
