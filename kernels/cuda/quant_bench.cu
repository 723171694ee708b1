/* The quantized linears' speed probe (`pagoda bench quant`): random layers built through the
 * public create calls from random canonical host layouts, copied until one round of calls
 * reads more than L2 holds, each path timed with CUDA events. */
#include "kernels/cuda/quant.cuh"
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

static uint64_t bench_rng(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

/* One random layer's canonical host arrays. */
struct bench_host {
    std::vector<uint32_t> qweight;
    std::vector<float> scales, zeros;
    std::vector<int32_t> perm;
    std::vector<uint8_t> fp8;
    std::vector<float> fp8_scale;
};

static void bench_fill(struct bench_host *h, int format, int group_size, int act_order, int in,
                       int out)
{
    uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)in << 32) ^ (uint64_t)out;
    if (format == PGD_CUDA_QBENCH_FP8) {
        h->fp8.resize((size_t)out * in);
        /* bit 6 clear: exponents up to 7 (|w| < 2), never the NaN codes */
        for (auto &b : h->fp8)
            b = (uint8_t)(bench_rng(&s) & 0xBF);
        h->fp8_scale.assign((size_t)out, 0.01f);
        return;
    }
    const int bits = format == PGD_CUDA_QBENCH_W4 ? 4 : 8, pack = 32 / bits;
    const int gs = group_size > 0 ? group_size : in, groups = in / gs;
    h->qweight.resize((size_t)in / pack * out);
    for (auto &w : h->qweight)
        w = (uint32_t)bench_rng(&s);
    h->scales.resize((size_t)groups * out);
    h->zeros.resize((size_t)groups * out);
    for (size_t i = 0; i < h->scales.size(); i++) {
        h->scales[i] = (float)(1 + bench_rng(&s) % 64) / 2048.0f;
        h->zeros[i] = (float)(1 << (bits - 1));
    }
    if (act_order) {
        h->perm.resize((size_t)in);
        for (int i = 0; i < in; i++)
            h->perm[(size_t)i] = i;
        for (int i = in - 1; i > 0; i--)
            std::swap(h->perm[(size_t)i], h->perm[(size_t)(bench_rng(&s) % (uint64_t)(i + 1))]);
    }
}

/* The layers (count of them) and their destroy. */
struct bench_layers {
    int format;
    std::vector<struct pgd_cuda_wq *> wq;
    std::vector<struct pgd_cuda_fp8 *> fp8;
    ~bench_layers()
    {
        for (auto *w : wq)
            pgd_cuda_wq_destroy(w);
        for (auto *w : fp8)
            pgd_cuda_fp8_destroy(w);
    }
};

static int bench_make(struct bench_layers *L, const struct bench_host *h, int format,
                      int group_size, int in, int out, size_t *bytes, char *err, size_t errlen)
{
    L->format = format;
    if (format == PGD_CUDA_QBENCH_FP8) {
        struct pgd_fp8_host fh = { in, out, h->fp8.data(), h->fp8_scale.data(), true };
        struct pgd_cuda_fp8 *w;
        if (pgd_cuda_fp8_create(&fh, &w, err, errlen))
            return 1;
        L->fp8.push_back(w);
        *bytes = pgd_cuda_fp8_weight_bytes(w);
        return 0;
    }
    struct pgd_wq_host wh = { format == PGD_CUDA_QBENCH_W4 ? 4 : 8, group_size > 0 ? group_size : in,
                              in, out, h->qweight.data(), h->scales.data(), h->zeros.data(),
                              h->perm.empty() ? NULL : h->perm.data() };
    struct pgd_cuda_wq *w;
    if (pgd_cuda_wq_create(&wh, &w, err, errlen))
        return 1;
    L->wq.push_back(w);
    *bytes = pgd_cuda_wq_weight_bytes(w);
    return 0;
}

extern "C" int pgd_cuda_bench_quant(struct pgd_cuda_ctx *c, int format, int group_size,
                                    int act_order, int path, int n, int in, int out, double *us,
                                    size_t *bytes, char *err, size_t errlen)
{
    if (format < PGD_CUDA_QBENCH_W4 || format > PGD_CUDA_QBENCH_FP8 || n < 1)
        return pgd_cuda_failf(err, errlen, "quant bench: format %d, %d rows", format, n);
    struct bench_host h;
    bench_fill(&h, format, group_size, act_order, in, out);
    struct bench_layers L;
    if (bench_make(&L, &h, format, group_size, in, out, bytes, err, errlen))
        return 1;
    /* Copies until a round reads >= 256 MB: L2 (50 MB) holds none of them. */
    const int copies = (int)std::min<size_t>(64, ((size_t)256 << 20) / *bytes + 1);
    const int rounds = std::max(1, 32 / copies);
    size_t b1;
    for (int i = 1; i < copies; i++)
        if (bench_make(&L, &h, format, group_size, in, out, &b1, err, errlen))
            return 1;
    void *x = pgd_cuda_malloc((size_t)n * in * 2), *y = pgd_cuda_malloc((size_t)n * out * 2);
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = 0;
    if (!x || !y)
        rc = pgd_cuda_failf(err, errlen, "quant bench: out of device memory for x [%d, %d]", n, in);
    rc = rc || pgd_cuda_fill_random(c, PGD_DTYPE_BF16, x, (size_t)n * in, 5, -1, 1, err, errlen);
    if (!rc && (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess))
        rc = pgd_cuda_failf(err, errlen, "quant bench: cudaEventCreate failed");
    std::vector<float> ms;
    for (int it = -1; !rc && it < 7; it++) {
        cudaEventRecord(e0, c->stream);
        for (int k = 0; !rc && k < rounds * copies; k++) {
            const int i = k % copies;
            rc = format == PGD_CUDA_QBENCH_FP8
                     ? pgd_cuda_fp8_linear_path(c, path, PGD_DTYPE_BF16, x, n, L.fp8[(size_t)i],
                                                NULL, y, err, errlen)
                     : pgd_cuda_wq_linear_path(c, path, PGD_DTYPE_BF16, x, n, L.wq[(size_t)i],
                                               NULL, y, err, errlen);
        }
        cudaEventRecord(e1, c->stream);
        cudaError_t e = cudaEventSynchronize(e1);
        float t = 0;
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&t, e0, e1);
        if (e != cudaSuccess && !rc)
            rc = pgd_cuda_failf(err, errlen, "quant bench [%d, %d] -> %d: %s", n, in, out,
                                cudaGetErrorString(e));
        if (it >= 0)
            ms.push_back(t);
    }
    if (!rc) {
        std::sort(ms.begin(), ms.end());
        *us = ms[ms.size() / 2] * 1e3 / (rounds * copies);
    }
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    pgd_cuda_free(x);
    pgd_cuda_free(y);
    return rc;
}
