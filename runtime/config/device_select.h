/* Internal: --device and --dtype as vLLM spells them, resolved against this build and machine. */
#ifndef PGD_RUNTIME_CONFIG_DEVICE_SELECT_H
#define PGD_RUNTIME_CONFIG_DEVICE_SELECT_H

#include <pagoda/status.h>
#include <pagoda/tensor.h>
#include <stddef.h>

struct pgd__device_choice {
    enum pgd_device device;
    int index;                       /* the card of cuda:N, else -1 */
    char desc[256];                  /* e.g. "cuda:0 (NVIDIA H200, sm_90, 139.8 GiB)" */
};

/* Resolves "auto", "cpu", "cuda" ("gpu") or "cuda:N". auto is the GPU when this build has CUDA
 * and the machine a GPU, else the CPU; cuda without one fails with a message that says which
 * is missing. cuda:N makes card N the process's only visible one (CUDA_VISIBLE_DEVICES, set
 * before anything touches CUDA), so call this before creating an engine. */
enum pgd_status pgd__device_select(const char *text, struct pgd__device_choice *out, char *err,
                                   size_t errlen);

/* Resolves --dtype on device: auto -> PGD_DTYPE_COUNT (the checkpoint's; bf16 for float32
 * checkpoints on the GPU); bfloat16/bf16, float16/half/fp16/f16, float32/float. float32 on the
 * GPU is refused (the CUDA kernels compute in 16 bits); a 16-bit dtype on the CPU is accepted
 * with a note in warn (the CPU backend computes in float32), else warn is "". */
/* The dtype text alone (the same spellings), without a device. */
enum pgd_status pgd__dtype_parse(const char *text, enum pgd_dtype *out, char *err,
                                 size_t errlen);
enum pgd_status pgd__dtype_select(const char *text, enum pgd_device device, enum pgd_dtype *out,
                                  char *warn, size_t warnlen, char *err, size_t errlen);

#endif
