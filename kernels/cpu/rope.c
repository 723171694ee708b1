/* Rotary position embedding, "rotate half" layout: within each head, dim j pairs with
 * dim j + rotary_dim / 2. Angles are computed in float32 as HF transformers does. */
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>

static void rotate_heads(float *x, int n_heads, int head_dim, int rotary_dim,
                         const float *cosv, const float *sinv)
{
    int half = rotary_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int j = 0; j < half; j++) {
            float x1 = v[j], x2 = v[j + half];
            v[j] = x1 * cosv[j] - x2 * sinv[j];
            v[j + half] = x2 * cosv[j] + x1 * sinv[j];
        }
    }
}

void pgd_cpu_rope(float *q, int n_q_heads, float *k, int n_k_heads, int n, int head_dim,
                  int rotary_dim, const float *inv_freq, const int32_t *pos)
{
    float cosv[512], sinv[512];              /* rotary_dim / 2 <= 512 (checked at init) */
    int half = rotary_dim / 2;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < half; j++) {
            float ang = (float)pos[i] * inv_freq[j];
            cosv[j] = cosf(ang);
            sinv[j] = sinf(ang);
        }
        if (q)
            rotate_heads(q + (size_t)i * n_q_heads * head_dim, n_q_heads, head_dim, rotary_dim,
                         cosv, sinv);
        if (k)
            rotate_heads(k + (size_t)i * n_k_heads * head_dim, n_k_heads, head_dim, rotary_dim,
                         cosv, sinv);
    }
}
