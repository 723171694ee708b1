/* GPTQ -> canonical wq layout (see gptq_convert.h). The canonical layout is GPTQ's own
 * packing along the input dimension, so a checkpoint without act-order only has its zeros
 * and scales widened; with act-order the input rows are sorted by group (as Marlin's g_idx
 * sort does at load), so that each group is one contiguous run and the kernels never gather
 * scales per row. */
#include "plugins/quant/gptq/gptq_convert.h"
#include <stdlib.h>
#include <string.h>

/* The bits-wide field of input row i, output o of a qweight packed along the input. */
static uint32_t qfield(const uint32_t *q, int64_t out, int bits, int64_t i, int64_t o)
{
    int pack = 32 / bits;
    return (q[(i / pack) * out + o] >> ((i % pack) * bits)) & ((1u << bits) - 1);
}

/* perm[] = the input channels sorted by group (stable counting sort); false when a group
 * is out of range or does not hold exactly `group` channels. *identity says whether the
 * sort changed nothing. */
static bool sort_groups(const struct gptq_layer *l, int32_t *perm, bool *identity)
{
    int64_t groups = l->in / l->group;
    int64_t *next = calloc((size_t)groups + 1, sizeof *next);
    if (!next)
        return false;
    for (int64_t i = 0; i < l->in; i++) {
        int32_t g = l->g_idx[i];
        if (g < 0 || g >= groups) {
            free(next);
            return false;
        }
        next[g + 1]++;
    }
    bool ok = true;
    for (int64_t g = 0; g < groups; g++) {
        ok = ok && next[g + 1] == l->group;
        next[g + 1] += next[g];
    }
    *identity = true;
    for (int64_t i = 0; ok && i < l->in; i++) {
        int64_t r = next[l->g_idx[i]]++;
        perm[r] = (int32_t)i;
        *identity = *identity && r == i;
    }
    free(next);
    return ok;
}

enum pgd_status gptq_to_wq(const struct gptq_layer *l, struct pgd_wq_host *out, void **block,
                           char *err, size_t errlen)
{
    *block = NULL;
    int pack = 32 / l->bits;
    int64_t groups = l->in / l->group;
    size_t qbytes = (size_t)(l->in / pack * l->out) * sizeof(uint32_t);
    size_t gbytes = (size_t)(groups * l->out) * sizeof(float);
    size_t pbytes = l->g_idx ? (size_t)l->in * sizeof(int32_t) : 0;
    char *b = malloc(qbytes + 2 * gbytes + pbytes);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory converting it", l->name);
    uint32_t *q = (uint32_t *)b;
    float *scales = (float *)(b + qbytes), *zeros = (float *)(b + qbytes + gbytes);
    int32_t *perm = pbytes ? (int32_t *)(b + qbytes + 2 * gbytes) : NULL;

    bool identity = true;
    if (perm && !sort_groups(l, perm, &identity)) {
        free(b);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s.g_idx: every group index must be in "
                        "[0, %lld) and each group must hold exactly group_size = %lld input "
                        "channels", l->name, (long long)groups, (long long)l->group);
    }
    if (identity) {
        perm = NULL;
        memcpy(q, l->qweight, qbytes);
    } else {
        /* Canonical row r is input channel perm[r]: repack the fields in that order. */
        memset(q, 0, qbytes);
        for (int64_t r = 0; r < l->in; r++)
            for (int64_t o = 0; o < l->out; o++)
                q[(r / pack) * l->out + o] |= qfield(l->qweight, l->out, l->bits, perm[r], o)
                                              << ((r % pack) * l->bits);
    }
    /* Group g of the canonical rows is the checkpoint's group g (the sort kept group ids). */
    memcpy(scales, l->scales, gbytes);
    int64_t zcols = l->out / pack;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t o = 0; o < l->out; o++) {
            uint32_t z = (l->qzeros[g * zcols + o / pack] >> ((o % pack) * l->bits)) &
                         ((1u << l->bits) - 1);
            zeros[g * l->out + o] = (float)z + (l->v1 ? 1.0f : 0.0f);
        }
    *out = (struct pgd_wq_host){ .bits = l->bits, .group_size = (int)l->group, .in = l->in,
                                 .out = l->out, .qweight = q, .scales = scales, .zeros = zeros,
                                 .perm = perm };
    *block = b;
    return PGD_OK;
}
