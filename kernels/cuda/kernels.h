/* The CUDA backend's C-callable entry points. Every CUDA call is checked; failures return
 * non-zero (or NULL) and write a message naming the call or kernel and the sizes. */
#ifndef PGD_KERNELS_CUDA_H
#define PGD_KERNELS_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 when there is no driver or no GPU). */
int pgd_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" into buf; non-zero when there is no device. */
int pgd_cuda_describe(int device, char *buf, size_t buflen);
/* Zeroed device memory or NULL. */
void *pgd_cuda_malloc(size_t bytes);
void pgd_cuda_free(void *p);
int pgd_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, char *err, size_t errlen);
int pgd_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
