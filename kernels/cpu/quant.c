/* The CPU reference of the quantized layouts of include/pagoda/quant.h: the e4m3 codec,
 * dequantization of both layouts to float weights, and FP8's per-token activation
 * quantization. The CPU linear of a quantized layer is dequantize-then-pgd_cpu_linear, and
 * every CUDA quantized kernel is tested against these. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"

float pgd_fp8_e4m3_to_float(uint8_t b)
{
    int sign = b >> 7, e = (b >> 3) & 0xF, m = b & 7;
    if (e == 15 && m == 7)
        return NAN;
    float mag = e == 0 ? ldexpf((float)m / 8.0f, -6) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return sign ? -mag : mag;
}

/* Round to nearest, ties to even, on the float's bits (no frexpf: --quantization fp8
 * converts every weight of a model at load, billions of them for an 8B model). */
uint8_t pgd_fp8_e4m3_from_float(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint8_t sign = (uint8_t)(bits >> 24) & 0x80;
    const uint32_t a = bits & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return 0x7F;                       /* NaN */
    if (a >= 0x43E00000u)
        return sign | 0x7E;                /* |x| >= 448 = 1.75 * 2^8, inf too: saturate */
    if (a < 0x3C800000u) {
        /* |x| < 2^-6: subnormals step by 2^-9; rounding up to 8 steps lands on the smallest
         * normal, whose encoding (e = 1, m = 0) is 8, so the integer is the code either way */
        float f;
        memcpy(&f, &a, sizeof f);
        return sign | (uint8_t)rintf(f * 512.0f);
    }
    /* A normal code: the float's exponent and top 3 mantissa bits (bits >> 20), the 20 bits
     * below rounded in (half minus one, plus the kept bit's parity: ties to even; a carry
     * steps the exponent), then the exponent rebiased from 127 to 7. Below 448 the result
     * is at most 0x7E (1.75 * 2^8). */
    const uint32_t r = (a + 0x7FFFFu + ((a >> 20) & 1)) >> 20;
    return sign | (uint8_t)(r - (120u << 3));
}

void pgd_cpu_wq_dequantize(const struct pgd_wq_host *h, float *w)
{
    int pack = 32 / h->bits;
    uint32_t mask = (1u << h->bits) - 1;
    for (int64_t i = 0; i < h->in; i++) {
        int64_t g = i / h->group_size;
        int64_t col = h->perm ? h->perm[i] : i;
        int shift = (int)(i % pack) * h->bits;
        const uint32_t *row = h->qweight + (i / pack) * h->out;
        for (int64_t o = 0; o < h->out; o++) {
            float q = (float)((row[o] >> shift) & mask);
            w[o * h->in + col] = (q - h->zeros[g * h->out + o]) * h->scales[g * h->out + o];
        }
    }
}

void pgd_cpu_fp8_dequantize(const struct pgd_fp8_host *h, float *w)
{
    for (int64_t o = 0; o < h->out; o++) {
        float s = h->scale[h->per_channel ? o : 0];
        for (int64_t i = 0; i < h->in; i++)
            w[o * h->in + i] = pgd_fp8_e4m3_to_float(h->weight[o * h->in + i]) * s;
    }
}

void pgd_cpu_fp8_quantize_rows(const float *x, int64_t rows, int64_t cols, uint8_t *q,
                               float *scales)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float amax = 0.0f;
        for (int64_t c = 0; c < cols; c++)
            amax = fmaxf(amax, fabsf(xr[c]));
        /* an all-zero row keeps a positive scale so that dequantization stays finite */
        float s = amax > 0.0f ? amax / 448.0f : 1.0f;
        scales[r] = s;
        for (int64_t c = 0; c < cols; c++)
            q[r * cols + c] = pgd_fp8_e4m3_from_float(xr[c] / s);
    }
}
