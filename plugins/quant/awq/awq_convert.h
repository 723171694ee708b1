/* AutoAWQ's GEMM tensors -> the canonical struct pgd_wq_host (include/pagoda/quant.h). Pure
 * conversion, no I/O (the plugin awq.c reads; tests/unit/test_quant.c feeds arrays). */
#ifndef PGD_PLUGINS_QUANT_AWQ_CONVERT_H
#define PGD_PLUGINS_QUANT_AWQ_CONVERT_H

#include <pagoda/quant.h>
#include <pagoda/status.h>
#include <stddef.h>

/* AutoAWQ's order of the eight 4-bit outputs in a word: nibble p (bits 4p..4p+3) of word j
 * holds output 8 j + AWQ_ORDER[p]. */
extern const int awq_order[8];

/* One AWQ GEMM layer (4 bits):
 *   qweight int32 [in, out / 8]        packed along the output in awq_order
 *   qzeros  int32 [in / group, out / 8] the same packing, zeros stored as they are
 *   scales  float [in / group, out] */
struct awq_layer {
    const char *name;
    int64_t group;
    int64_t in, out;
    const uint32_t *qweight;
    const uint32_t *qzeros;
    const float *scales;
};

/* Repacks along the input (GPTQ's order) into *out; its arrays are one malloc'd block
 * returned in *block (the caller frees it). */
enum pgd_status awq_to_wq(const struct awq_layer *l, struct pgd_wq_host *out, void **block,
                          char *err, size_t errlen);

#endif
