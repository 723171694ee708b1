/* The canonical host layouts of quantized linear weights. Every quantization plugin
 * converts its checkpoint's tensors into one of these at load (GPTQ and AWQ into
 * pgd_wq_host, FP8 checkpoints and --quantization fp8 into pgd_fp8_host); the runtime's
 * kernels take it from there (the CPU reference dequantizes it; the CUDA kernels repack it
 * once into the layout they read). So a new integer format is a conversion, not a kernel. */
#ifndef PAGODA_QUANT_H
#define PAGODA_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A weight-only integer layer (W4A16 / W8A16): out x in logical weights
 *
 *     W[o][perm[i]] = (q(i, o) - zeros[i / group_size][o]) * scales[i / group_size][o]
 *
 * where q(i, o) is the bits-wide unsigned field at bit (i % pack) * bits of
 * qweight[(i / pack) * out + o], pack = 32 / bits (GPTQ's order: packed along the input
 * dimension, the low bits first). perm NULL means perm[i] = i. A checkpoint with act-order
 * (GPTQ desc_act, a g_idx whose groups are not contiguous) is stored sorted by group, so
 * that every group is a contiguous run of group_size canonical rows, and perm says which
 * input channel each canonical row is: y = x[:, perm] @ Wc^T. All arrays are row-major and
 * owned by the caller. */
struct pgd_wq_host {
    int bits;                 /* 4 or 8 */
    int group_size;           /* canonical rows per group; divides in; == in for per-channel */
    int64_t in, out;
    const uint32_t *qweight;  /* [in / pack][out] */
    const float *scales;      /* [in / group_size][out] */
    const float *zeros;       /* [in / group_size][out], real-valued (GPTQ v1's +1 applied;
                                 symmetric: 2^(bits-1)) */
    const int32_t *perm;      /* [in] or NULL */
};

/* An FP8 (e4m3fn) layer: W[o][i] = e4m3(weight[o * in + i]) * scale[per_channel ? o : 0].
 * Activations are quantized per token at run time (dynamic scale max|x_row| / 448). */
struct pgd_fp8_host {
    int64_t in, out;
    const uint8_t *weight;    /* [out][in] e4m3fn bytes */
    const float *scale;       /* [out] when per_channel, else [1] */
    bool per_channel;
};

/* e4m3fn (1 sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities; 0x7f/0xff
 * NaN; largest finite 448). The encoder rounds to nearest even and saturates at +-448,
 * as torch's float8_e4m3fn cast after vLLM's clamp does. */
float pgd_fp8_e4m3_to_float(uint8_t b);
uint8_t pgd_fp8_e4m3_from_float(float x);

#ifdef __cplusplus
}
#endif
#endif
