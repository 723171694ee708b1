/* pack-quantized -> canonical wq layout (see ct_convert.h). compressed-tensors packs each
 * output row along the input with the canonical layout's bit order, so its words are the
 * canonical ones transposed ([out][in / pack] -> [in / pack][out]); its scales and zero
 * points are [out][groups] where the canonical ones are [groups][out]. The transposed layer
 * is GPTQ's layout (gptq_v2: zeros stored as they are), which gptq_to_wq then finishes,
 * act-order sort included, so the two formats share one tested path. */
#include "plugins/quant/compressed_tensors/ct_convert.h"
#include "plugins/quant/gptq/gptq_convert.h"
#include <stdlib.h>

enum pgd_status ct_packed_to_wq(const struct ct_packed_layer *l, struct pgd_wq_host *out,
                                void **block, char *err, size_t errlen)
{
    *block = NULL;
    int64_t pack = 32 / l->bits, words = l->in / pack, groups = l->in / l->group;
    if (l->out % pack)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: %lld outputs are not a multiple "
                        "of %lld (the zero points pack %lld outputs to a word)", l->name,
                        (long long)l->out, (long long)pack, (long long)pack);
    size_t nq = (size_t)(words * l->out), nz = (size_t)(groups * l->out / pack);
    size_t ns = (size_t)(groups * l->out);
    char *tmp = malloc((nq + nz) * sizeof(uint32_t) + ns * sizeof(float));
    if (!tmp)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory converting it", l->name);
    uint32_t *qweight = (uint32_t *)tmp, *qzeros = qweight + nq;
    float *scales = (float *)(qzeros + nz);
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t w = 0; w < words; w++)
            qweight[w * l->out + o] = l->weight_packed[o * words + w];
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t g = 0; g < groups; g++)
            scales[g * l->out + o] = l->scales[o * groups + g];
    /* Symmetric: every field is the offset 2^(bits-1) (0x88888888 / 0x80808080). */
    uint32_t mid = 0;
    for (int64_t k = 0; k < pack; k++)
        mid |= 1u << (k * l->bits + l->bits - 1);
    int64_t zwords = l->out / pack;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t w = 0; w < zwords; w++)
            qzeros[g * zwords + w] = l->zero_points ? l->zero_points[w * groups + g] : mid;
    struct gptq_layer gl = { .name = l->name, .bits = l->bits, .group = l->group, .in = l->in,
                             .out = l->out, .v1 = false, .qweight = qweight, .qzeros = qzeros,
                             .scales = scales, .g_idx = l->g_idx };
    enum pgd_status st = gptq_to_wq(&gl, out, block, err, errlen);
    free(tmp);
    return st;
}
