/* Preemption by swapping on the GPU (see kernels.h, kv_swap.cu's entries): KV blocks copied
 * between the device cache and pinned host memory on a stream of their own, ordered
 * against the compute stream by events, so that neither the host nor a step without swaps
 * waits for them.
 *
 * Two ways to copy, the same bytes: by default one kernel launch per 240 block pairs, each
 * thread block copying one block of one array through the pinned memory's device mapping
 * (unified addressing: a cudaHostAlloc pointer is valid in kernels), which keeps a
 * sequence's thousands of small copies (blocks x layers x K/V, 32 KiB each for Llama-3-8B)
 * out of the driver's queue; or (PAGODA_SWAP_COPY=memcpy) one cudaMemcpyAsync per run of
 * blocks consecutive on both sides, vLLM v0's way. */
#include "kernels/cuda/common.cuh"
#include <stdlib.h>
#include <string.h>

/* Block pairs one launch carries in its parameters (under the 4 KiB limit). */
#define SWAP_PAIRS_PER_LAUNCH 240

struct swap_pairs {
    int32_t dev[SWAP_PAIRS_PER_LAUNCH], host[SWAP_PAIRS_PER_LAUNCH];
};

struct pgd_cuda_swap {
    cudaStream_t stream;
    cudaEvent_t after_compute;      /* recorded on the compute stream before the copies */
    cudaEvent_t after_copies;       /* recorded on the swap stream after them */
    int n_arrays;
    size_t block_bytes;             /* one block of one array */
    void **dev_arrays, **host_arrays;   /* [n_arrays] host copies of the tables */
    char **tables;                  /* device [2 * n_arrays]: the device arrays, the host ones */
    bool use_memcpy;
};

/* Block (dev[i], host[i]) of array blockIdx.y, i = blockIdx.x: tables[a] is the device
 * array, tables[n_arrays + a] the host one (pinned, mapped). 16-byte moves when everything
 * is 16-byte aligned, else bytes. */
__global__ void swap_blocks_kernel(char *const *tables, int n_arrays, size_t block_bytes,
                                   struct swap_pairs pairs, int to_host)
{
    int i = blockIdx.x, a = blockIdx.y;
    char *d = tables[a] + (size_t)pairs.dev[i] * block_bytes;
    char *h = tables[n_arrays + a] + (size_t)pairs.host[i] * block_bytes;
    const char *src = to_host ? d : h;
    char *dst = to_host ? h : d;
    if ((((uintptr_t)src | (uintptr_t)dst | block_bytes) & 15) == 0) {
        const uint4 *s4 = (const uint4 *)src;
        uint4 *d4 = (uint4 *)dst;
        for (size_t k = threadIdx.x; k < block_bytes / 16; k += blockDim.x)
            d4[k] = s4[k];
    } else {
        for (size_t k = threadIdx.x; k < block_bytes; k += blockDim.x)
            dst[k] = src[k];
    }
}

extern "C" void pgd_cuda_swap_destroy(struct pgd_cuda_swap *s)
{
    if (!s)
        return;
    if (s->stream) {
        cudaStreamSynchronize(s->stream);
        cudaStreamDestroy(s->stream);
    }
    if (s->after_compute)
        cudaEventDestroy(s->after_compute);
    if (s->after_copies)
        cudaEventDestroy(s->after_copies);
    if (s->tables)
        cudaFree(s->tables);
    free(s->dev_arrays);
    free(s);
}

extern "C" int pgd_cuda_swap_create(struct pgd_cuda_ctx *c, void *const *dev_arrays,
                                    void *const *host_arrays, int n_arrays, size_t block_bytes,
                                    struct pgd_cuda_swap **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n_arrays <= 0 || n_arrays > 65535 || block_bytes == 0)
        return pgd_cuda_failf(err, errlen, "swap: %d arrays of %zu-byte blocks", n_arrays,
                              block_bytes);
    struct pgd_cuda_swap *s = (struct pgd_cuda_swap *)calloc(1, sizeof *s);
    if (s)
        s->dev_arrays = (void **)malloc(2 * (size_t)n_arrays * sizeof(void *));
    if (!s || !s->dev_arrays) {
        pgd_cuda_swap_destroy(s);
        return pgd_cuda_failf(err, errlen, "swap: out of memory");
    }
    s->n_arrays = n_arrays;
    s->block_bytes = block_bytes;
    s->host_arrays = s->dev_arrays + n_arrays;
    memcpy(s->dev_arrays, dev_arrays, (size_t)n_arrays * sizeof(void *));
    memcpy(s->host_arrays, host_arrays, (size_t)n_arrays * sizeof(void *));
    const char *mode = getenv("PAGODA_SWAP_COPY");
    s->use_memcpy = mode && !strcmp(mode, "memcpy");
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&s->after_compute, cudaEventDisableTiming);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&s->after_copies, cudaEventDisableTiming);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&s->tables, 2 * (size_t)n_arrays * sizeof(char *));
    if (e == cudaSuccess)
        e = cudaMemcpy(s->tables, s->dev_arrays, 2 * (size_t)n_arrays * sizeof(char *),
                       cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        pgd_cuda_swap_destroy(s);
        return pgd_cuda_failf(err, errlen, "swap: cannot create its stream, events and tables: "
                              "%s", cudaGetErrorString(e));
    }
    *out = s;
    return 0;
}

/* The memcpy way: per array, one cudaMemcpyAsync per run of blocks consecutive on both
 * sides. */
static int copy_by_memcpy(struct pgd_cuda_swap *s, int to_host, const int32_t *dev_blocks,
                          const int32_t *host_blocks, int n, char *err, size_t errlen)
{
    cudaMemcpyKind kind = to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
    for (int a = 0; a < s->n_arrays; a++) {
        char *dev = (char *)s->dev_arrays[a], *host = (char *)s->host_arrays[a];
        for (int i = 0; i < n;) {
            int j = i + 1;
            while (j < n && dev_blocks[j] == dev_blocks[j - 1] + 1 &&
                   host_blocks[j] == host_blocks[j - 1] + 1)
                j++;
            char *d = dev + (size_t)dev_blocks[i] * s->block_bytes;
            char *h = host + (size_t)host_blocks[i] * s->block_bytes;
            size_t bytes = (size_t)(j - i) * s->block_bytes;
            PGD_CUDA_CHECK(err, errlen, cudaMemcpyAsync(to_host ? h : d, to_host ? d : h, bytes,
                                                        kind, s->stream),
                           "swap %s: array %d, blocks %d..%d (%zu bytes)",
                           to_host ? "out" : "in", a, dev_blocks[i], dev_blocks[j - 1], bytes);
            i = j;
        }
    }
    return 0;
}

/* The kernel way: SWAP_PAIRS_PER_LAUNCH pairs a launch, in the parameters. */
static int copy_by_kernel(struct pgd_cuda_swap *s, int to_host, const int32_t *dev_blocks,
                          const int32_t *host_blocks, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i += SWAP_PAIRS_PER_LAUNCH) {
        int k = n - i < SWAP_PAIRS_PER_LAUNCH ? n - i : SWAP_PAIRS_PER_LAUNCH;
        struct swap_pairs pairs;
        memcpy(pairs.dev, dev_blocks + i, (size_t)k * sizeof(int32_t));
        memcpy(pairs.host, host_blocks + i, (size_t)k * sizeof(int32_t));
        dim3 grid((unsigned)k, (unsigned)s->n_arrays);
        swap_blocks_kernel<<<grid, 256, 0, s->stream>>>(s->tables, s->n_arrays, s->block_bytes,
                                                         pairs, to_host);
        PGD_CUDA_LAUNCHED(err, errlen, "swap_blocks_kernel (%s, %d blocks x %d arrays of %zu "
                          "bytes)", to_host ? "out" : "in", k, s->n_arrays, s->block_bytes);
    }
    return 0;
}

extern "C" int pgd_cuda_swap_blocks(struct pgd_cuda_ctx *c, struct pgd_cuda_swap *s,
                                    int to_host, const int32_t *dev_blocks,
                                    const int32_t *host_blocks, int n, char *err, size_t errlen)
{
    if (n <= 0)
        return 0;
    /* The copies read (or overwrite) blocks the steps queued so far wrote (or read). */
    PGD_CUDA_CHECK(err, errlen, cudaEventRecord(s->after_compute, c->stream),
                   "swap: event on the compute stream");
    PGD_CUDA_CHECK(err, errlen, cudaStreamWaitEvent(s->stream, s->after_compute, 0),
                   "swap: the swap stream's wait");
    int rc = s->use_memcpy ? copy_by_memcpy(s, to_host, dev_blocks, host_blocks, n, err, errlen)
                           : copy_by_kernel(s, to_host, dev_blocks, host_blocks, n, err, errlen);
    if (rc)
        return rc;
    /* The next steps (reusing blocks swapped out, reading blocks swapped in) wait. */
    PGD_CUDA_CHECK(err, errlen, cudaEventRecord(s->after_copies, s->stream),
                   "swap: event on the swap stream");
    PGD_CUDA_CHECK(err, errlen, cudaStreamWaitEvent(c->stream, s->after_copies, 0),
                   "swap: the compute stream's wait");
    return 0;
}
