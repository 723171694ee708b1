/* Paged attention: K/V written through the slot mapping, read through block tables. The
 * cache is float32, or e4m3 bytes with a scale per K / V (quantized on write, dequantized
 * on read: the reference the CUDA kernels' FP8 paths are tested against). */
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <string.h>

/* dst[0, width) = e4m3(src / scale), saturated to +-448 by the codec. */
static void quantize_row(uint8_t *dst, const float *src, size_t width, float scale)
{
    for (size_t i = 0; i < width; i++)
        dst[i] = pgd_fp8_e4m3_from_float(src[i] / scale);
}

void pgd_cpu_kv_write(const struct pgd_cpu_kv_layer *kv, const float *k, const float *v,
                      const int64_t *slot_mapping, int n)
{
    size_t width = (size_t)kv->n_kv_heads * kv->head_dim;
    for (int i = 0; i < n; i++) {
        if (slot_mapping[i] < 0)
            continue;
        size_t row = (size_t)slot_mapping[i] * width;
        if (kv->k8) {
            quantize_row(kv->k8 + row, k + i * width, width, kv->k_scale);
            quantize_row(kv->v8 + row, v + i * width, width, kv->v_scale);
        } else {
            memcpy(kv->k + row, k + i * width, width * sizeof(float));
            memcpy(kv->v + row, v + i * width, width * sizeof(float));
        }
    }
}

/* Element d of the K (or V) row at element offset off, dequantized: lut[b] = e4m3(b) * scale. */
static inline float kv_at(const float *f32, const uint8_t *f8, const float *lut, size_t off)
{
    return f8 ? lut[f8[off]] : f32[off];
}

/* One query head against its sequence's keys [first, last]; scores is scratch. klut / vlut
 * dequantize an FP8 cache's bytes (unused on a float32 one). */
static void attend_one(const struct pgd_cpu_kv_layer *kv, const float *klut, const float *vlut,
                       const int32_t *table, int kv_head, int first, int last, const float *q,
                       float scale, float *scores, float *out)
{
    int D = kv->head_dim, bs = kv->block_size;
    size_t width = (size_t)kv->n_kv_heads * D;
    float maxs = -INFINITY;
    for (int j = first; j <= last; j++) {
        size_t row = (size_t)table[j / bs] * bs + (size_t)(j % bs);
        size_t off = row * width + (size_t)kv_head * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++)
            s += q[d] * kv_at(kv->k, kv->k8, klut, off + d);
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
        size_t off = row * width + (size_t)kv_head * D;
        float w = scores[j - first] * inv;
        for (int d = 0; d < D; d++)
            out[d] += w * kv_at(kv->v, kv->v8, vlut, off + d);
    }
}

void pgd_cpu_attention(const struct pgd_cpu_kv_layer *kv, const struct pgd_cpu_seq_layout *L,
                       const struct pgd_attn_params *p, const float *q, float *scores,
                       float *out)
{
    int H = p->n_heads, D = p->head_dim, group = p->n_heads / p->n_kv_heads;
    /* Every e4m3 byte's value times the layer's scale, once a call. */
    float klut[256], vlut[256];
    if (kv->k8)
        for (int b = 0; b < 256; b++) {
            klut[b] = pgd_fp8_e4m3_to_float((uint8_t)b) * kv->k_scale;
            vlut[b] = pgd_fp8_e4m3_to_float((uint8_t)b) * kv->v_scale;
        }
    for (int s = 0; s < L->n_seqs; s++) {
        const int32_t *table = L->block_tables + (size_t)s * L->max_blocks;
        for (int t = L->query_start[s]; t < L->query_start[s + 1]; t++) {
            int pos = L->positions[t];
            int first = 0;
            if (p->sliding_window > 0 && pos - p->sliding_window + 1 > 0)
                first = pos - p->sliding_window + 1;
            for (int h = 0; h < H; h++)
                attend_one(kv, klut, vlut, table, h / group, first, pos,
                           q + ((size_t)t * H + h) * D, p->scale, scores,
                           out + ((size_t)t * H + h) * D);
        }
    }
}
