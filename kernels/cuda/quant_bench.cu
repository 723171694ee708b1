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
    if (pgd_cuda_wq_create(&wh, NULL, &w, err, errlen))
        return 1;
    L->wq.push_back(w);
    *bytes = pgd_cuda_wq_weight_bytes(w);
    return 0;
}

struct pgd_cuda_qbench {
    int format, in, out, max_n, copies, rounds;
    size_t bytes;
    struct bench_layers L;
    void *x, *y;                     /* bf16 [max_n, in], [max_n, out] */
    cudaEvent_t e0, e1;
};

extern "C" void pgd_cuda_qbench_destroy(struct pgd_cuda_qbench *q)
{
    if (!q)
        return;
    if (q->e0)
        cudaEventDestroy(q->e0);
    if (q->e1)
        cudaEventDestroy(q->e1);
    pgd_cuda_free(q->x);
    pgd_cuda_free(q->y);
    delete q;
}

extern "C" int pgd_cuda_qbench_create(struct pgd_cuda_ctx *c, int format, int group_size,
                                      int act_order, int in, int out, int max_n,
                                      struct pgd_cuda_qbench **res, size_t *bytes, char *err,
                                      size_t errlen)
{
    *res = NULL;
    if (format < PGD_CUDA_QBENCH_W4 || format > PGD_CUDA_QBENCH_FP8 || max_n < 1)
        return pgd_cuda_failf(err, errlen, "quant bench: format %d, %d rows", format, max_n);
    struct pgd_cuda_qbench *q = new pgd_cuda_qbench();
    q->format = format;
    q->in = in;
    q->out = out;
    q->max_n = max_n;
    struct bench_host h;
    bench_fill(&h, format, group_size, act_order, in, out);
    int rc = bench_make(&q->L, &h, format, group_size, in, out, &q->bytes, err, errlen);
    /* Copies until a round reads >= 256 MB: L2 (50 MB) holds none of them. */
    q->copies = rc ? 0 : (int)std::min<size_t>(64, ((size_t)256 << 20) / q->bytes + 1);
    q->rounds = std::max(1, 32 / std::max(1, q->copies));
    size_t b1;
    for (int i = 1; !rc && i < q->copies; i++)
        rc = bench_make(&q->L, &h, format, group_size, in, out, &b1, err, errlen);
    if (!rc) {
        q->x = pgd_cuda_malloc((size_t)max_n * in * 2);
        q->y = pgd_cuda_malloc((size_t)max_n * out * 2);
        if (!q->x || !q->y)
            rc = pgd_cuda_failf(err, errlen, "quant bench: out of device memory for x [%d, %d]",
                                max_n, in);
    }
    rc = rc || pgd_cuda_fill_random(c, PGD_DTYPE_BF16, q->x, (size_t)max_n * in, 5, -1, 1, err,
                                    errlen);
    if (!rc && (cudaEventCreate(&q->e0) != cudaSuccess || cudaEventCreate(&q->e1) != cudaSuccess))
        rc = pgd_cuda_failf(err, errlen, "quant bench: cudaEventCreate failed");
    if (rc) {
        pgd_cuda_qbench_destroy(q);
        return 1;
    }
    *bytes = q->bytes;
    *res = q;
    return 0;
}

extern "C" void pgd_cuda_qbench_plan(struct pgd_cuda_ctx *c, const struct pgd_cuda_qbench *q,
                                     int n, char *buf, size_t len)
{
    if (q->format == PGD_CUDA_QBENCH_FP8 || q->L.wq.empty())
        snprintf(buf, len, "%s", "");
    else
        pgd_cuda_wq_auto_plan(c, q->L.wq[0], n, buf, len);
}

extern "C" int pgd_cuda_qbench_run(struct pgd_cuda_ctx *c, struct pgd_cuda_qbench *q, int path,
                                   int n, double *us, char *err, size_t errlen)
{
    if (n < 1 || n > q->max_n)
        return pgd_cuda_failf(err, errlen, "quant bench: %d rows (1..%d)", n, q->max_n);
    std::vector<float> ms;
    int rc = 0;
    for (int it = -1; !rc && it < 7; it++) {
        cudaEventRecord(q->e0, c->stream);
        for (int k = 0; !rc && k < q->rounds * q->copies; k++) {
            const int i = k % q->copies;
            rc = q->format == PGD_CUDA_QBENCH_FP8
                     ? pgd_cuda_fp8_linear_path(c, path, PGD_DTYPE_BF16, q->x, n,
                                                q->L.fp8[(size_t)i], NULL, q->y, err, errlen)
                     : pgd_cuda_wq_linear_path(c, path, PGD_DTYPE_BF16, q->x, n,
                                               q->L.wq[(size_t)i], NULL, q->y, err, errlen);
        }
        cudaEventRecord(q->e1, c->stream);
        cudaError_t e = cudaEventSynchronize(q->e1);
        float t = 0;
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&t, q->e0, q->e1);
        if (e != cudaSuccess && !rc)
            rc = pgd_cuda_failf(err, errlen, "quant bench [%d, %d] -> %d: %s", n, q->in, q->out,
                                cudaGetErrorString(e));
        if (it >= 0)
            ms.push_back(t);
    }
    if (!rc) {
        std::sort(ms.begin(), ms.end());
        *us = ms[ms.size() / 2] * 1e3 / (q->rounds * q->copies);
    }
    return rc;
}
