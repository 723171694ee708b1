/* Device memory: host memory for the CPU, the CUDA backend's allocator for CUDA. */
#include "config.h"
#include "runtime/base/device.h"
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

void *pgd__device_alloc(enum pgd_device device, size_t bytes)
{
    if (device == PGD_DEVICE_CPU) {
        void *p = NULL;
        size_t rounded = (bytes + 63) / 64 * 64;
        if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
            return NULL;
        memset(p, 0, rounded ? rounded : 64);
        return p;
    }
#ifdef PGD_HAVE_CUDA
    return pgd_cuda_malloc(bytes);
#else
    return NULL;
#endif
}

void pgd__device_free(enum pgd_device device, void *p)
{
    if (!p)
        return;
    if (device == PGD_DEVICE_CPU) {
        free(p);
        return;
    }
#ifdef PGD_HAVE_CUDA
    pgd_cuda_free(p);
#endif
}

void *pgd__host_alloc(enum pgd_device device, size_t bytes)
{
#ifdef PGD_HAVE_CUDA
    if (device == PGD_DEVICE_CUDA)
        return pgd_cuda_host_alloc(bytes);
#endif
    (void)device;
    return malloc(bytes ? bytes : 1);
}

void pgd__host_free(enum pgd_device device, void *p)
{
#ifdef PGD_HAVE_CUDA
    if (device == PGD_DEVICE_CUDA) {
        pgd_cuda_host_free(p);
        return;
    }
#endif
    (void)device;
    free(p);
}

enum pgd_status pgd__device_upload(enum pgd_device device, void *dst, const void *src,
                                   size_t bytes, char *err, size_t errlen)
{
    if (device == PGD_DEVICE_CPU) {
        memcpy(dst, src, bytes);
        return PGD_OK;
    }
#ifdef PGD_HAVE_CUDA
    if (pgd_cuda_memcpy_h2d(dst, src, bytes, err, errlen) != 0)
        return PGD_ERR_DEVICE;
    return PGD_OK;
#else
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "this build has no CUDA backend");
#endif
}

bool pgd__device_available(enum pgd_device device)
{
    if (device == PGD_DEVICE_CPU)
        return true;
#ifdef PGD_HAVE_CUDA
    return pgd_cuda_device_count() > 0;
#else
    return false;
#endif
}

const char *pgd__device_name(enum pgd_device device)
{
    return device == PGD_DEVICE_CPU ? "cpu" : "cuda";
}
