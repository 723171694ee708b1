/* Embedding lookup. */
#include "kernels/cpu/cpu_kernels.h"
#include <string.h>

void pgd_cpu_embed(const float *table, const int32_t *ids, int n, int d, float *out)
{
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * d, table + (size_t)ids[i] * d, (size_t)d * sizeof(float));
}
