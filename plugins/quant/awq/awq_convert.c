/* AWQ -> canonical wq layout (see awq_convert.h): the 4-bit fields move from AutoAWQ's
 * output-packed, interleaved words into words packed along the input, and the zeros are
 * unpacked to floats. The math is unchanged: W = (q - zero) * scale per group. */
#include "plugins/quant/awq/awq_convert.h"
#include <stdlib.h>
#include <string.h>

const int awq_order[8] = { 0, 2, 4, 6, 1, 3, 5, 7 };

/* The field of output o in a row of out/8 words packed in awq_order: the nibble p with
 * awq_order[p] == o % 8. */
static uint32_t awq_field(const uint32_t *row, int64_t o)
{
    static const int nibble_of[8] = { 0, 4, 1, 5, 2, 6, 3, 7 }; /* inverse of awq_order */
    return (row[o / 8] >> (4 * nibble_of[o % 8])) & 0xFu;
}

enum pgd_status awq_to_wq(const struct awq_layer *l, struct pgd_wq_host *out, void **block,
                          char *err, size_t errlen)
{
    *block = NULL;
    int64_t groups = l->in / l->group, words = l->out / 8;
    size_t qbytes = (size_t)(l->in / 8 * l->out) * sizeof(uint32_t);
    size_t gbytes = (size_t)(groups * l->out) * sizeof(float);
    char *b = malloc(qbytes + 2 * gbytes);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory converting it", l->name);
    uint32_t *q = (uint32_t *)b;
    float *scales = (float *)(b + qbytes), *zeros = (float *)(b + qbytes + gbytes);
    memset(q, 0, qbytes);
    for (int64_t i = 0; i < l->in; i++)
        for (int64_t o = 0; o < l->out; o++)
            q[(i / 8) * l->out + o] |= awq_field(l->qweight + i * words, o) << ((i % 8) * 4);
    memcpy(scales, l->scales, gbytes);
    for (int64_t g = 0; g < groups; g++)
        for (int64_t o = 0; o < l->out; o++)
            zeros[g * l->out + o] = (float)awq_field(l->qzeros + g * words, o);
    *out = (struct pgd_wq_host){ .bits = 4, .group_size = (int)l->group, .in = l->in,
                                 .out = l->out, .qweight = q, .scales = scales, .zeros = zeros };
    *block = b;
    return PGD_OK;
}
