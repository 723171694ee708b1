/* GPTQ's tensors -> the canonical struct pgd_wq_host (include/pagoda/quant.h). Pure
 * conversion, no I/O: the plugin (gptq.c) reads and checks the tensors, the unit tests
 * (tests/unit/test_quant.c) feed it packed arrays directly. */
#ifndef PGD_PLUGINS_QUANT_GPTQ_CONVERT_H
#define PGD_PLUGINS_QUANT_GPTQ_CONVERT_H

#include <pagoda/quant.h>
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>

/* One GPTQ layer as AutoGPTQ / GPTQModel / optimum write it, with pack = 32 / bits:
 *   qweight int32 [in / pack, out]    input channel i in word i / pack, bits (i % pack)*bits
 *   qzeros  int32 [groups, out / pack] output o in word o / pack, bits (o % pack)*bits
 *   scales  float [groups, out]
 *   g_idx   int32 [in] or NULL        the group of each input channel (NULL: i / group)
 * with groups = in / group (group == in for group_size -1). Format v1 ("gptq") stores each
 * zero as max(zero - 1, 0) and its readers add the one back (so a zero of 0 cannot be stored:
 * it reads back as 1, in every v1 reader alike); v2 ("gptq_v2") stores the zero itself. */
struct gptq_layer {
    const char *name;          /* for messages: the layer's prefix */
    int bits;                  /* 4 or 8 */
    int64_t group;             /* input channels per group (in for per-channel) */
    int64_t in, out;
    bool v1;                   /* checkpoint_format "gptq" (zeros minus one) */
    const uint32_t *qweight;
    const uint32_t *qzeros;
    const float *scales;
    const int32_t *g_idx;      /* or NULL */
};

/* Converts l into *out. The arrays of *out are one malloc'd block returned in *block (the
 * caller frees it). act-order: a g_idx whose groups are not contiguous runs is sorted into
 * canonical rows (perm = the input channels in group order, stable); every group must then
 * hold exactly `group` channels. A g_idx outside [0, groups) or with uneven groups is
 * PGD_ERR_FORMAT naming the layer. */
enum pgd_status gptq_to_wq(const struct gptq_layer *l, struct pgd_wq_host *out, void **block,
                           char *err, size_t errlen);

#endif
