/* Embedding lookup, whole or over a vocabulary shard (tensor parallelism). */
#include "kernels/cpu/cpu_kernels.h"
#include <string.h>

void pgd_cpu_embed(const float *table, const int32_t *ids, int n, int d, float *out)
{
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * d, table + (size_t)ids[i] * d, (size_t)d * sizeof(float));
}

void pgd_cpu_embed_shard(const float *table, int64_t row0, int64_t rows, const int32_t *ids,
                         int n, int d, float *out)
{
    for (int i = 0; i < n; i++) {
        int64_t r = (int64_t)ids[i] - row0;
        if (r >= 0 && r < rows)
            memcpy(out + (size_t)i * d, table + (size_t)r * d, (size_t)d * sizeof(float));
        else
            memset(out + (size_t)i * d, 0, (size_t)d * sizeof(float));
    }
}
