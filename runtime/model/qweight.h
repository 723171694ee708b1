/* Internal: struct pgd_qweight, a quantized weight as the model keeps it (see
 * pgd_model_qweight_wq in include/pagoda/model.h), and the joins of canonical layouts that
 * a fused layer needs. The ops (runtime/runner/ops.c) read it; the model owns it. */
#ifndef PGD_RUNTIME_MODEL_QWEIGHT_H
#define PGD_RUNTIME_MODEL_QWEIGHT_H

#include <pagoda/model.h>
#include <pagoda/quant.h>

struct pgd_cuda_wq;                  /* kernels/cuda/kernels.h */
struct pgd_cuda_fp8;

enum pgd__qweight_kind { PGD__QW_WQ = 1, PGD__QW_FP8 = 2 };

struct pgd_qweight {
    enum pgd__qweight_kind kind;
    enum pgd_device device;
    int64_t in, out;
    float *dense;                    /* CPU: the dequantized weights [out, in], owned */
    struct pgd_cuda_wq *cuda_wq;     /* CUDA, kind WQ: owned (pgd_cuda_wq_destroy) */
    struct pgd_cuda_fp8 *cuda_fp8;   /* CUDA, kind FP8: owned (pgd_cuda_fp8_destroy) */
    struct pgd_qweight *next;        /* the model's list of its quantized weights */
};

/* Frees a list of quantized weights. */
void pgd__qweight_free_list(struct pgd_qweight *w);
struct pgd__model;
/* Frees the model's quantized weights and what they share (at destroy); m's fields NULL. */
void pgd__qweights_free(struct pgd__model *m);

/* Joins n canonical wq layouts along the output dimension into *out, whose arrays are one
 * malloc'd block returned in *block (the caller frees it). The parts must have equal in,
 * bits, group size and perm (the same act-order permutation, as the q/k/v of one GPTQ
 * checkpoint have: they see the same inputs); otherwise PGD_ERR_UNSUPPORTED naming `name`.
 * n == 1 copies. */
enum pgd_status pgd__wq_join(const char *name, const struct pgd_wq_host *parts, int n,
                             struct pgd_wq_host *out, void **block, char *err, size_t errlen);
/* The same for FP8: per-tensor scales are kept when every part has the same one, else the
 * result has per-channel scales. */
enum pgd_status pgd__fp8_join(const char *name, const struct pgd_fp8_host *parts, int n,
                              struct pgd_fp8_host *out, void **block, char *err, size_t errlen);

#endif
