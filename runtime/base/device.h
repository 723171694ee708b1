/* Internal: memory on a device. CPU memory is plain aligned host memory; CUDA memory comes
 * from the CUDA backend when it is built. */
#ifndef PGD_RUNTIME_DEVICE_H
#define PGD_RUNTIME_DEVICE_H

#include <stddef.h>
#include <stdbool.h>
#include <pagoda/tensor.h>
#include <pagoda/status.h>

/* Zero-initialised memory on device, or NULL. Free with pgd__device_free. */
void *pgd__device_alloc(enum pgd_device device, size_t bytes);
void pgd__device_free(enum pgd_device device, void *p);
/* Host memory that device's copies read and write: pinned (page-locked, cudaHostAlloc) for
 * CUDA, so that they run asynchronously; plain aligned memory for the CPU. NULL on failure.
 * Not zeroed. Free with pgd__host_free(device, p). */
void *pgd__host_alloc(enum pgd_device device, size_t bytes);
void pgd__host_free(enum pgd_device device, void *p);
/* Copies host memory to the device (memcpy for the CPU). */
enum pgd_status pgd__device_upload(enum pgd_device device, void *dst, const void *src,
                                   size_t bytes, char *err, size_t errlen);
/* Whether this build and machine can use the device (CUDA: built and a GPU present). */
bool pgd__device_available(enum pgd_device device);
const char *pgd__device_name(enum pgd_device device);

#endif
