/* Preemption by swapping on the CPU backend: copying KV blocks between the cache's arrays
 * and the host swap space (runtime/kv/swap_pool.h), one memcpy per block and array. */
#include "kernels/cpu/cpu_kernels.h"
#include <string.h>

void pgd_cpu_kv_swap_blocks(int to_host, void *const *dev_arrays, void *const *host_arrays,
                            int n_arrays, size_t block_bytes, const int32_t *dev_blocks,
                            const int32_t *host_blocks, int n)
{
    for (int a = 0; a < n_arrays; a++) {
        char *dev = dev_arrays[a], *host = host_arrays[a];
        for (int i = 0; i < n; i++) {
            char *d = dev + (size_t)dev_blocks[i] * block_bytes;
            char *h = host + (size_t)host_blocks[i] * block_bytes;
            memcpy(to_host ? h : d, to_host ? d : h, block_bytes);
        }
    }
}
