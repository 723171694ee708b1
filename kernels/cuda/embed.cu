/* Row gathers: the embedding lookup (rows of the table by token id; over a vocabulary shard
 * under tensor parallelism) and the logits row gather (rows of the hidden states by batch
 * index). 16-byte copies when rows allow. Also the token ids an async step takes from the
 * step before it (put_pending), ahead of the lookup. */
#include "kernels/cuda/common.cuh"

/* One block per output row; vec: rows are whole 16-byte vectors. */
template <typename T>
__global__ void gather_kernel(const T *table, const int32_t *ids, int d, T *out, int vec)
{
    pdl_trigger();
    pdl_wait();
    int64_t src = ids[blockIdx.x];
    const T *s = table + src * d;
    T *o = out + (int64_t)blockIdx.x * d;
    if (vec) {
        const uint4 *sv = reinterpret_cast<const uint4 *>(s);
        uint4 *ov = reinterpret_cast<uint4 *>(o);
        int nv = d * (int)sizeof(T) / 16;
        for (int i = threadIdx.x; i < nv; i += blockDim.x)
            ov[i] = sv[i];
    } else {
        for (int i = threadIdx.x; i < d; i += blockDim.x)
            o[i] = s[i];
    }
}

extern "C" int pgd_cuda_gather_rows(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *table,
                                    const int32_t *ids, int n, int d, void *out, char *err,
                                    size_t errlen)
{
    if (n == 0)
        return 0;
    size_t row = (size_t)d * pgd_dtype_size(dt);
    int vec = row % 16 == 0 && (uintptr_t)table % 16 == 0 && (uintptr_t)out % 16 == 0;
    PGD_CUDA_DISPATCH(dt, T, pgd_cuda_launch(c, gather_kernel<T>, n, 256, (const T *)table, ids,
                                                 d, (T *)out, vec));
    PGD_CUDA_LAUNCHED(err, errlen, "gather_rows %d rows of [*, %d] %s", n, d, pgd_cuda_dt(dt));
    return 0;
}

/* One block per output row: row ids[i] - row0 of the shard, or zeros outside it. */
template <typename T>
__global__ void gather_shard_kernel(const T *table, int64_t row0, int64_t rows,
                                    const int32_t *ids, int d, T *out)
{
    pdl_trigger();
    pdl_wait();
    int64_t src = (int64_t)ids[blockIdx.x] - row0;
    bool inside = src >= 0 && src < rows;
    T *o = out + (int64_t)blockIdx.x * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        o[i] = inside ? table[src * d + i] : T(0.0f);
}

extern "C" int pgd_cuda_gather_rows_shard(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                                          const void *table, int64_t row0, int64_t rows,
                                          const int32_t *ids, int n, int d, void *out, char *err,
                                          size_t errlen)
{
    if (n == 0)
        return 0;
    PGD_CUDA_DISPATCH(dt, T, pgd_cuda_launch(c, gather_shard_kernel<T>, n, 256, (const T *)table,
                                                 row0, rows, ids, d, (T *)out));
    PGD_CUDA_LAUNCHED(err, errlen, "gather_rows_shard %d rows of [%lld, %d] %s from row %lld", n,
                      (long long)rows, d, pgd_cuda_dt(dt), (long long)row0);
    return 0;
}

/* One thread a pending token. */
__global__ void put_pending_kernel(int32_t *token_ids, const int32_t *pairs, int n,
                                   const int32_t *src, int stride)
{
    pdl_trigger();
    pdl_wait();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        token_ids[pairs[2 * i]] = src[(int64_t)pairs[2 * i + 1] * stride];
}

extern "C" int pgd_cuda_put_pending(struct pgd_cuda_ctx *c, int32_t *token_ids,
                                    const int32_t *pairs, int n, const int32_t *src, int stride,
                                    char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    pgd_cuda_launch(c, put_pending_kernel, (n + 255) / 256, 256, token_ids, pairs, n, src,
                    stride);
    PGD_CUDA_LAUNCHED(err, errlen, "put_pending %d tokens (stride %d)", n, stride);
    return 0;
}
