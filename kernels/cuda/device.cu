/* Device discovery, memory, copies, the per-runner context and the copy-bandwidth probe. */
#include "kernels/cuda/common.cuh"
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

extern "C" void pgd_cuda_gemm_cache_free(struct pgd_cuda_ctx *c);   /* linear.cu */
extern "C" void pgd_cuda_wq_fold_tune_free(struct pgd_cuda_ctx *c); /* quant_wq_fold_tune.cu */

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
    /* Zeroed before any stream (the context's are non-blocking) can touch it. */
    if (cudaMemset(p, 0, bytes ? bytes : 256) != cudaSuccess ||
        cudaStreamSynchronize(0) != cudaSuccess) {
        cudaGetLastError();
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

extern "C" void *pgd_cuda_host_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 64, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

extern "C" void pgd_cuda_host_free(void *p)
{
    if (p)
        cudaFreeHost(p);
}

static int copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what,
                char *err, size_t errlen)
{
    /* A pageable upload may return before its DMA is done; kernels run on non-blocking
     * streams, so wait for the legacy stream before returning. */
    cudaError_t e = cudaMemcpy(dst, src, bytes, kind);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(0);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "cudaMemcpy %s of %zu bytes: %s", what, bytes,
                              cudaGetErrorString(e));
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

extern "C" int pgd_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, char *err,
                                 size_t errlen)
{
    PGD_CUDA_CHECK(err, errlen, cudaMemGetInfo(free_bytes, total_bytes), "device memory");
    return 0;
}

/* ---- staged uploads ------------------------------------------------------------------------ */
struct pgd_cuda_stager {
    size_t chunk;
    void *buf[2];                    /* pinned [chunk] each */
    cudaEvent_t done[2];             /* the copy out of buf[i] finished */
    cudaStream_t stream;
};

extern "C" struct pgd_cuda_stager *pgd_cuda_stager_create(size_t chunk_bytes, char *err,
                                                          size_t errlen)
{
    struct pgd_cuda_stager *s = (struct pgd_cuda_stager *)calloc(1, sizeof *s);
    if (!s) {
        pgd_cuda_failf(err, errlen, "out of host memory");
        return NULL;
    }
    s->chunk = chunk_bytes;
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    for (int i = 0; i < 2 && e == cudaSuccess; i++) {
        e = cudaHostAlloc(&s->buf[i], chunk_bytes, cudaHostAllocDefault);
        if (e == cudaSuccess)
            e = cudaEventCreateWithFlags(&s->done[i], cudaEventDisableTiming);
    }
    if (e != cudaSuccess) {
        pgd_cuda_failf(err, errlen, "upload staging: two pinned buffers of %zu bytes: %s",
                       chunk_bytes, cudaGetErrorString(e));
        pgd_cuda_stager_destroy(s);
        return NULL;
    }
    return s;
}

extern "C" int pgd_cuda_stager_upload(struct pgd_cuda_stager *s, void *dst, const void *src,
                                      size_t bytes, char *err, size_t errlen)
{
    size_t off = 0;
    int i = 0;
    while (off < bytes) {
        size_t n = std::min(s->chunk, bytes - off);
        /* Wait until the copy that last read this buffer is done, then refill it. */
        PGD_CUDA_CHECK(err, errlen, cudaEventSynchronize(s->done[i]), "upload of %zu bytes", bytes);
        memcpy(s->buf[i], (const char *)src + off, n);
        PGD_CUDA_CHECK(err, errlen,
                       cudaMemcpyAsync((char *)dst + off, s->buf[i], n, cudaMemcpyHostToDevice,
                                       s->stream),
                       "upload of %zu bytes at offset %zu", bytes, off);
        PGD_CUDA_CHECK(err, errlen, cudaEventRecord(s->done[i], s->stream), "upload");
        off += n;
        i ^= 1;
    }
    PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(s->stream), "upload of %zu bytes", bytes);
    return 0;
}

extern "C" void pgd_cuda_stager_destroy(struct pgd_cuda_stager *s)
{
    if (!s)
        return;
    if (s->stream)
        cudaStreamSynchronize(s->stream);
    for (int i = 0; i < 2; i++) {
        if (s->buf[i])
            cudaFreeHost(s->buf[i]);
        if (s->done[i])
            cudaEventDestroy(s->done[i]);
    }
    if (s->stream)
        cudaStreamDestroy(s->stream);
    free(s);
}

/* ---- the context ---------------------------------------------------------------------------- */
extern "C" int pgd_cuda_ctx_create(struct pgd_cuda_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    struct pgd_cuda_ctx *c = (struct pgd_cuda_ctx *)calloc(1, sizeof *c);
    if (!c)
        return pgd_cuda_failf(err, errlen, "out of host memory");
    cudaError_t e = cudaGetDevice(&c->device);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, c->device);
    int major = 0;
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device);
    const char *pdl_env = getenv("PGD_CUDA_PDL");
    c->pdl = major >= 9 && !(pdl_env && !strcmp(pdl_env, "0"));
    const char *pairs_env = getenv("PGD_CUDA_WQ_META_PAIRS");
    c->wq_meta_pairs = !(pairs_env && !strcmp(pairs_env, "0"));
    const char *bands_env = getenv("PGD_CUDA_GEMM_BANDS");
    c->gemm_bands = !(bands_env && !strcmp(bands_env, "0"));
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&c->side_fork, cudaEventDisableTiming);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&c->side_join, cudaEventDisableTiming);
    c->workspace_bytes = (size_t)32 << 20;
    if (e == cudaSuccess)
        e = cudaMalloc(&c->workspace, c->workspace_bytes);
    c->qscratch_bytes = PGD_CUDA_QSCRATCH_BYTES;
    if (e == cudaSuccess)
        e = cudaMalloc(&c->qscratch, c->qscratch_bytes);
    if (e == cudaSuccess)
        e = cudaMalloc(&c->fp8_tickets, PGD_CUDA_FP8_TICKETS * sizeof(int));
    if (e == cudaSuccess)
        e = cudaMemsetAsync(c->fp8_tickets, 0, PGD_CUDA_FP8_TICKETS * sizeof(int), c->stream);
    if (e != cudaSuccess) {
        pgd_cuda_ctx_destroy(c);
        return pgd_cuda_failf(err, errlen, "CUDA context (streams, events, %zu-byte GEMM "
                              "workspace, %zu-byte quantized-linear scratch): %s", (size_t)32 << 20,
                              PGD_CUDA_QSCRATCH_BYTES, cudaGetErrorString(e));
    }
    cublasStatus_t bs = cublasLtCreate(&c->lt);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        pgd_cuda_ctx_destroy(c);
        return pgd_cuda_failf(err, errlen, "cublasLtCreate: status %d", (int)bs);
    }
    *out = c;
    return 0;
}

extern "C" void pgd_cuda_ctx_destroy(struct pgd_cuda_ctx *c)
{
    if (!c)
        return;
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    pgd_cuda_gemm_cache_free(c);
    pgd_cuda_wq_fold_tune_free(c);
    if (c->lt)
        cublasLtDestroy(c->lt);
    cudaFree(c->workspace);
    cudaFree(c->qscratch);
    cudaFree(c->fp8_tickets);
    cudaFree(c->wq_sk_part);
    cudaFree(c->wq_sk_flags);
    cudaFree(c->plan_dev);
    for (int t = 0; t < 2; t++)
        if (c->plan_host[t])
            cudaFreeHost(c->plan_host[t]);
    if (c->side) {
        cudaStreamSynchronize(c->side);
        cudaStreamDestroy(c->side);
    }
    if (c->side_fork)
        cudaEventDestroy(c->side_fork);
    if (c->side_join)
        cudaEventDestroy(c->side_join);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

/* The result of a wait for queued work (e), or else the first execution error. */
static int waited(cudaError_t e, char *err, size_t errlen)
{
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "a CUDA kernel of this step failed: %s",
                              cudaGetErrorString(e));
    return 0;
}

extern "C" int pgd_cuda_sync(struct pgd_cuda_ctx *c, char *err, size_t errlen)
{
    return waited(cudaStreamSynchronize(c->stream), err, errlen);
}

extern "C" int pgd_cuda_copy_h2d_async(struct pgd_cuda_ctx *c, void *dst, const void *src,
                                       size_t bytes, char *err, size_t errlen)
{
    PGD_CUDA_CHECK(err, errlen, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream),
                   "host->device copy of %zu bytes", bytes);
    return 0;
}

extern "C" int pgd_cuda_copy_d2h_async(struct pgd_cuda_ctx *c, void *dst, const void *src,
                                       size_t bytes, char *err, size_t errlen)
{
    PGD_CUDA_CHECK(err, errlen, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream),
                   "device->host copy of %zu bytes", bytes);
    return 0;
}

struct pgd_cuda_event {
    cudaEvent_t ev;
};

extern "C" int pgd_cuda_event_create(struct pgd_cuda_event **out, char *err, size_t errlen)
{
    *out = (struct pgd_cuda_event *)calloc(1, sizeof **out);
    if (!*out)
        return pgd_cuda_failf(err, errlen, "out of host memory for an event");
    cudaError_t e = cudaEventCreateWithFlags(&(*out)->ev, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        free(*out);
        *out = NULL;
        return pgd_cuda_failf(err, errlen, "event: %s", cudaGetErrorString(e));
    }
    return 0;
}

extern "C" void pgd_cuda_event_destroy(struct pgd_cuda_event *e)
{
    if (!e)
        return;
    cudaEventDestroy(e->ev);
    free(e);
}

extern "C" int pgd_cuda_event_record(struct pgd_cuda_ctx *c, struct pgd_cuda_event *e,
                                     char *err, size_t errlen)
{
    PGD_CUDA_CHECK(err, errlen, cudaEventRecord(e->ev, c->stream), "event record");
    return 0;
}

extern "C" int pgd_cuda_event_sync(struct pgd_cuda_event *e, char *err, size_t errlen)
{
    return waited(cudaEventSynchronize(e->ev), err, errlen);
}

extern "C" int pgd_cuda_sm_count(const struct pgd_cuda_ctx *c) { return c->sm_count; }
extern "C" void *pgd_cuda_ctx_stream(struct pgd_cuda_ctx *c) { return (void *)c->stream; }

extern "C" int pgd_cuda_copy_2d_async(struct pgd_cuda_ctx *c, void *dst, size_t dpitch,
                                      const void *src, size_t spitch, size_t width,
                                      size_t height, char *err, size_t errlen)
{
    if (width == 0 || height == 0)
        return 0;
    PGD_CUDA_CHECK(err, errlen, cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height,
                                                  cudaMemcpyDeviceToDevice, c->stream),
                   "device->device 2D copy of %zu rows of %zu bytes", height, width);
    return 0;
}

/* ---- random fill and the copy probe ------------------------------------------------------- */
__device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_random_kernel(T *p, size_t n, uint64_t seed, float lo, float hi)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t r = mix64(seed + 0x9e3779b97f4a7c15ull * (i + 1));
        float u = (float)(r >> 40) * (1.0f / 16777216.0f);
        /* No contraction into an FMA: the CPU (runtime/model/model.c) computes the same floats. */
        p[i] = from_f<T>(__fadd_rn(lo, __fmul_rn(hi - lo, u)));
    }
}

extern "C" int pgd_cuda_fill_random(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *p, size_t n,
                                    uint64_t seed, float lo, float hi, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    int blocks = (int)std::min<size_t>((n + 255) / 256, c ? (size_t)c->sm_count * 32 : 4096);
    cudaStream_t st = c ? c->stream : 0;
    PGD_CUDA_DISPATCH(dt, T, fill_random_kernel<T><<<blocks, 256, 0, st>>>((T *)p, n, seed, lo, hi));
    PGD_CUDA_LAUNCHED(err, errlen, "fill_random [%zu] %s", n, pgd_cuda_dt(dt));
    if (!c)
        PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(0), "fill_random [%zu]", n);
    return 0;
}

extern "C" int pgd_cuda_bench_copy(struct pgd_cuda_ctx *c, size_t bytes, int iters, double *gbps,
                                   char *err, size_t errlen)
{
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    std::vector<float> ms;
    int rc = 0;
    cudaError_t e = cudaMalloc(&a, bytes);
    if (e == cudaSuccess)
        e = cudaMalloc(&b, bytes);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e0);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e1);
    if (e == cudaSuccess && pgd_cuda_fill_random(c, PGD_DTYPE_F32, a, bytes / 4, 1, -1, 1, err, errlen))
        rc = 1;
    for (int i = -2; e == cudaSuccess && !rc && i < iters; i++) {
        e = cudaEventRecord(e0, c->stream);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(i & 1 ? a : b, i & 1 ? b : a, bytes, cudaMemcpyDeviceToDevice, c->stream);
        if (e == cudaSuccess)
            e = cudaEventRecord(e1, c->stream);
        if (e == cudaSuccess)
            e = cudaEventSynchronize(e1);
        float t = 0;
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&t, e0, e1);
        if (i >= 0)
            ms.push_back(t);
    }
    if (e != cudaSuccess)
        rc = pgd_cuda_failf(err, errlen, "copy bandwidth probe over %zu bytes: %s", bytes,
                            cudaGetErrorString(e));
    if (!rc) {
        std::sort(ms.begin(), ms.end());
        *gbps = 2.0 * (double)bytes / (ms[ms.size() / 2] * 1e-3) / 1e9;
    }
    cudaFree(a);
    cudaFree(b);
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    return rc;
}
