/* The per-op GPU time profile's device side (runtime/runner/op_profile.c is the rest): a
 * pool of CUDA events recorded on the context's stream between ops, and a gate that holds
 * the stream while the host queues a whole step.
 *
 * Why the gate: an eager step's kernels are queued by the host one by one; when the GPU
 * runs them faster than the host queues them, the time between two events includes the
 * host's launch gap and says nothing about the op. A gate kernel first in the step spins
 * (with __nanosleep) on a flag in mapped pinned memory until the host sets it after the
 * step's last op is queued, so that the GPU then runs the queued work back to back and the
 * events time the work alone. The gate gives up after its timeout, so a step that waits
 * on the device before it is fully queued costs the timeout once and never hangs. */
#include "kernels/cuda/common.cuh"
#include <stdlib.h>

struct pgd_cuda_prof {
    struct pgd_cuda_ctx *c;
    cudaEvent_t *ev;                 /* [cap] */
    int cap;
    volatile int *flag_host;         /* mapped pinned int */
    int *flag_dev;
    int generation;                  /* the value that opens the current hold */
};

extern "C" int pgd_cuda_prof_create(struct pgd_cuda_ctx *c, int cap, struct pgd_cuda_prof **out,
                                    char *err, size_t errlen)
{
    *out = NULL;
    struct pgd_cuda_prof *p = (struct pgd_cuda_prof *)calloc(1, sizeof *p);
    if (!p || !(p->ev = (cudaEvent_t *)calloc((size_t)cap, sizeof *p->ev))) {
        free(p);
        return pgd_cuda_failf(err, errlen, "op profile: out of host memory for %d events", cap);
    }
    p->c = c;
    cudaError_t e = cudaSuccess;
    for (; p->cap < cap && e == cudaSuccess; p->cap++)
        e = cudaEventCreate(&p->ev[p->cap]);
    if (e != cudaSuccess)
        p->cap--;                    /* the failed one holds no event */
    void *flag = NULL;
    if (e == cudaSuccess)
        e = cudaHostAlloc(&flag, sizeof(int), cudaHostAllocMapped);
    if (e == cudaSuccess) {
        p->flag_host = (volatile int *)flag;
        *p->flag_host = 0;
        e = cudaHostGetDevicePointer((void **)&p->flag_dev, flag, 0);
    }
    if (e != cudaSuccess) {
        pgd_cuda_prof_destroy(p);
        return pgd_cuda_failf(err, errlen, "op profile: %d events and a mapped flag: %s", cap,
                              cudaGetErrorString(e));
    }
    *out = p;
    return 0;
}

extern "C" void pgd_cuda_prof_destroy(struct pgd_cuda_prof *p)
{
    if (!p)
        return;
    if (p->flag_host) {
        *p->flag_host = p->generation;   /* a gate still waiting lets go */
        cudaStreamSynchronize(p->c->stream);
        cudaFreeHost((void *)p->flag_host);
    }
    for (int i = 0; i < p->cap; i++)
        cudaEventDestroy(p->ev[i]);
    free(p->ev);
    free(p);
}

extern "C" int pgd_cuda_prof_capacity(const struct pgd_cuda_prof *p)
{
    return p->cap;
}

__device__ __forceinline__ unsigned long long global_ns()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void gate_kernel(const volatile int *flag, int want, unsigned long long timeout_ns)
{
    unsigned long long t0 = global_ns();
    while (*flag != want && global_ns() - t0 < timeout_ns)
        __nanosleep(2000);
}

extern "C" int pgd_cuda_prof_hold(struct pgd_cuda_prof *p, double timeout_ms, char *err,
                                  size_t errlen)
{
    p->generation++;
    gate_kernel<<<1, 1, 0, p->c->stream>>>(p->flag_dev, p->generation,
                                           (unsigned long long)(timeout_ms * 1e6));
    PGD_CUDA_LAUNCHED(err, errlen, "op profile: gate");
    return 0;
}

extern "C" void pgd_cuda_prof_release(struct pgd_cuda_prof *p)
{
    *p->flag_host = p->generation;
}

extern "C" int pgd_cuda_prof_mark(struct pgd_cuda_prof *p, int i, char *err, size_t errlen)
{
    if (i < 0 || i >= p->cap)
        return pgd_cuda_failf(err, errlen, "op profile: event %d of %d", i, p->cap);
    PGD_CUDA_CHECK(err, errlen, cudaEventRecord(p->ev[i], p->c->stream), "op profile: mark %d", i);
    return 0;
}

extern "C" int pgd_cuda_prof_elapsed(struct pgd_cuda_prof *p, int i, int j, float *ms,
                                     char *err, size_t errlen)
{
    if (i < 0 || j < 0 || i >= p->cap || j >= p->cap)
        return pgd_cuda_failf(err, errlen, "op profile: events %d, %d of %d", i, j, p->cap);
    PGD_CUDA_CHECK(err, errlen, cudaEventSynchronize(p->ev[j]), "op profile: event %d", j);
    PGD_CUDA_CHECK(err, errlen, cudaEventElapsedTime(ms, p->ev[i], p->ev[j]),
                   "op profile: events %d -> %d", i, j);
    return 0;
}
