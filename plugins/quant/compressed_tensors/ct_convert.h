/* compressed-tensors' "pack-quantized" tensors -> the canonical struct pgd_wq_host
 * (include/pagoda/quant.h). Pure conversion, no I/O: the plugin (ct.c) reads and checks the
 * tensors, the unit tests feed it packed arrays directly. */
#ifndef PGD_PLUGINS_QUANT_CT_CONVERT_H
#define PGD_PLUGINS_QUANT_CT_CONVERT_H

#include <pagoda/quant.h>
#include <pagoda/status.h>
#include <stddef.h>

/* One pack-quantized layer, with pack = 32 / bits and groups = in / group:
 *   weight_packed     int32 [out, in / pack]   packed along the INPUT per output row: input
 *                     i of row o in word i / pack at bit (i % pack) * bits
 *   weight_scale      float [out, groups]
 *   weight_zero_point int32 [out / pack, groups] or NULL (symmetric): packed along the
 *                     OUTPUT: output o in word o / pack at bit (o % pack) * bits
 *   weight_g_idx      int32 [in] or NULL: the group of each input channel (actorder group)
 * Every field holds the signed value plus 2^(bits-1) (compressed-tensors' pack_to_int32
 * offset), so W[o][i] = (q - z) * scale with q and z read as unsigned, and z = 2^(bits-1)
 * when symmetric. */
struct ct_packed_layer {
    const char *name;          /* for messages: the layer's prefix */
    int bits;                  /* 4 or 8 */
    int64_t group;             /* input channels per group (in for strategy channel) */
    int64_t in, out;
    const uint32_t *weight_packed;
    const float *scales;
    const uint32_t *zero_points;
    const int32_t *g_idx;
};

/* Converts l into *out, whose arrays are one malloc'd block returned in *block (the caller
 * frees it). A g_idx whose groups are not contiguous runs is sorted into canonical rows as
 * GPTQ's act-order is (gptq_convert.c); a g_idx out of range or with uneven groups is
 * PGD_ERR_FORMAT naming the layer; out must be a multiple of pack (PGD_ERR_UNSUPPORTED). */
enum pgd_status ct_packed_to_wq(const struct ct_packed_layer *l, struct pgd_wq_host *out,
                                void **block, char *err, size_t errlen);

#endif
