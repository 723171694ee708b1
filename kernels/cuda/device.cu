/* Device discovery and memory for the CUDA backend. */
#include "kernels/cuda/kernels.h"
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int pgd_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();   /* clear the sticky "no driver" error */
        return 0;
    }
    return n;
}

extern "C" int pgd_cuda_describe(int device, char *buf, size_t buflen)
{
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        snprintf(buf, buflen, "cudaGetDeviceProperties(%d): %s", device, cudaGetErrorString(e));
        return 1;
    }
    snprintf(buf, buflen, "%s, sm_%d%d, %.1f GiB", prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

extern "C" void *pgd_cuda_malloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    if (cudaMemset(p, 0, bytes ? bytes : 256) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

extern "C" void pgd_cuda_free(void *p)
{
    if (p)
        cudaFree(p);
}

static int copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what,
                char *err, size_t errlen)
{
    cudaError_t e = cudaMemcpy(dst, src, bytes, kind);
    if (e != cudaSuccess) {
        if (err && errlen)
            snprintf(err, errlen, "cudaMemcpy %s of %zu bytes: %s", what, bytes,
                     cudaGetErrorString(e));
        return 1;
    }
    return 0;
}

extern "C" int pgd_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, char *err,
                                   size_t errlen)
{
    return copy(dst, src, bytes, cudaMemcpyHostToDevice, "host->device", err, errlen);
}

extern "C" int pgd_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, char *err,
                                   size_t errlen)
{
    return copy(dst, src, bytes, cudaMemcpyDeviceToHost, "device->host", err, errlen);
}
