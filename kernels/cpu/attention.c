/* Paged attention: K/V written through the slot mapping, read through block tables. */
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <string.h>

void pgd_cpu_kv_write(const struct pgd_cpu_kv_layer *kv, const float *k, const float *v,
                      const int64_t *slot_mapping, int n)
{
    size_t width = (size_t)kv->n_kv_heads * kv->head_dim;
    for (int i = 0; i < n; i++) {
        if (slot_mapping[i] < 0)
            continue;
        memcpy(kv->k + (size_t)slot_mapping[i] * width, k + i * width, width * sizeof(float));
        memcpy(kv->v + (size_t)slot_mapping[i] * width, v + i * width, width * sizeof(float));
    }
}

/* One query head against its sequence's keys [first, last]; scores is scratch. */
static void attend_one(const struct pgd_cpu_kv_layer *kv, const int32_t *table, int kv_head,
                       int first, int last, const float *q, float scale, float *scores,
                       float *out)
{
    int D = kv->head_dim, bs = kv->block_size;
    size_t width = (size_t)kv->n_kv_heads * D;
    float maxs = -INFINITY;
    for (int j = first; j <= last; j++) {
        size_t row = (size_t)table[j / bs] * bs + (size_t)(j % bs);
        const float *kr = kv->k + row * width + (size_t)kv_head * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++)
            s += q[d] * kr[d];
        s *= scale;
        scores[j - first] = s;
        if (s > maxs)
            maxs = s;
    }
    double sum = 0.0;
    for (int j = first; j <= last; j++) {
        float e = expf(scores[j - first] - maxs);
        scores[j - first] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    memset(out, 0, (size_t)D * sizeof(float));
    for (int j = first; j <= last; j++) {
        size_t row = (size_t)table[j / bs] * bs + (size_t)(j % bs);
        const float *vr = kv->v + row * width + (size_t)kv_head * D;
        float w = scores[j - first] * inv;
        for (int d = 0; d < D; d++)
            out[d] += w * vr[d];
    }
}

void pgd_cpu_attention(const struct pgd_cpu_kv_layer *kv, const struct pgd_cpu_seq_layout *L,
                       const struct pgd_attn_params *p, const float *q, float *scores,
                       float *out)
{
    int H = p->n_heads, D = p->head_dim, group = p->n_heads / p->n_kv_heads;
    for (int s = 0; s < L->n_seqs; s++) {
        const int32_t *table = L->block_tables + (size_t)s * L->max_blocks;
        for (int t = L->query_start[s]; t < L->query_start[s + 1]; t++) {
            int pos = L->positions[t];
            int first = 0;
            if (p->sliding_window > 0 && pos - p->sliding_window + 1 > 0)
                first = pos - p->sliding_window + 1;
            for (int h = 0; h < H; h++)
                attend_one(kv, table, h / group, first, pos, q + ((size_t)t * H + h) * D,
                           p->scale, scores, out + ((size_t)t * H + h) * D);
        }
    }
}
