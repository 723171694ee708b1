/* The NCCL backend of the communicator (see comm_nccl.h): one NCCL communicator per process,
 * one GPU per process, its unique id travelling over MPI as TensorRT-LLM does it. */
#include "config.h"
#include "runtime/dist/comm_nccl.h"
#include <pagoda/log.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

struct pgd__nccl {
    ncclComm_t comm;
    int device;                        /* the GPU this rank drives */
};

static enum pgd_status nccl_fail(ncclResult_t r, const char *call, char *err, size_t errlen)
{
    return pgd_errf(err, errlen, PGD_ERR_DEVICE, "NCCL: %s failed: %s", call,
                    ncclGetErrorString(r));
}

static enum pgd_status cuda_fail(cudaError_t e, const char *call, char *err, size_t errlen)
{
    return pgd_errf(err, errlen, PGD_ERR_DEVICE, "CUDA: %s failed: %s", call,
                    cudaGetErrorString(e));
}

static bool nccl_type(enum pgd_dtype dt, ncclDataType_t *out)
{
    switch (dt) {
    case PGD_DTYPE_F32: *out = ncclFloat32; return true;
    case PGD_DTYPE_F16: *out = ncclFloat16; return true;
    case PGD_DTYPE_BF16: *out = ncclBfloat16; return true;
    case PGD_DTYPE_I32: *out = ncclInt32; return true;
    default: return false;
    }
}

enum pgd_status pgd__nccl_create(struct pgd__comm *c, int local_rank, struct pgd__nccl **out,
                                 char *err, size_t errlen)
{
    *out = NULL;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev <= 0)
        return e != cudaSuccess ? cuda_fail(e, "cudaGetDeviceCount", err, errlen)
                                : pgd_errf(err, errlen, PGD_ERR_DEVICE, "no CUDA device");
    struct pgd__nccl *n = calloc(1, sizeof *n);
    if (!n)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    n->device = local_rank % n_dev;
    if (local_rank >= n_dev)
        PGD_WARN("comm: %d ranks on this host share %d GPUs (rank %d on GPU %d)", local_rank + 1,
                 n_dev, pgd__comm_rank(c), n->device);
    if ((e = cudaSetDevice(n->device)) != cudaSuccess) {
        free(n);
        return cuda_fail(e, "cudaSetDevice", err, errlen);
    }
    /* NVLink SHARP multicast buffers cost memory and have hung machines we use: off unless
     * the user asked for them. */
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    ncclUniqueId id;
    ncclResult_t r = ncclSuccess;
    if (pgd__comm_rank(c) == 0)
        r = ncclGetUniqueId(&id);
    /* Every rank takes part in the broadcast, even when rank 0 failed (its id is then
     * garbage and it reports the error), so that nobody waits forever. */
    enum pgd_status st = pgd__comm_broadcast_id(c, &id, sizeof id, err, errlen);
    if (!st && r != ncclSuccess)
        st = nccl_fail(r, "ncclGetUniqueId", err, errlen);
    if (!st && (r = ncclCommInitRank(&n->comm, pgd__comm_size(c), id, pgd__comm_rank(c))) !=
                   ncclSuccess) {
        n->comm = NULL;
        st = nccl_fail(r, "ncclCommInitRank", err, errlen);
    }
    if (st) {
        pgd__nccl_destroy(n);
        return st;
    }
    *out = n;
    return PGD_OK;
}

void pgd__nccl_destroy(struct pgd__nccl *n)
{
    if (!n)
        return;
    if (n->comm)
        ncclCommDestroy(n->comm);
    free(n);
}

enum pgd_status pgd__nccl_all_reduce_sum(struct pgd__nccl *n, enum pgd_dtype dtype, void *buf,
                                         size_t count, void *stream, char *err, size_t errlen)
{
    ncclDataType_t t;
    if (!nccl_type(dtype, &t))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "NCCL all_reduce of %s",
                        pgd_dtype_name(dtype));
    ncclResult_t r = ncclAllReduce(buf, buf, count, t, ncclSum, n->comm, (cudaStream_t)stream);
    return r == ncclSuccess ? PGD_OK : nccl_fail(r, "ncclAllReduce", err, errlen);
}

enum pgd_status pgd__nccl_all_gather(struct pgd__nccl *n, enum pgd_dtype dtype, const void *send,
                                     void *recv, size_t count, void *stream, char *err,
                                     size_t errlen)
{
    ncclDataType_t t;
    if (!nccl_type(dtype, &t))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "NCCL all_gather of %s",
                        pgd_dtype_name(dtype));
    ncclResult_t r = ncclAllGather(send, recv, count, t, n->comm, (cudaStream_t)stream);
    return r == ncclSuccess ? PGD_OK : nccl_fail(r, "ncclAllGather", err, errlen);
}

enum pgd_status pgd__nccl_bind_thread(struct pgd__nccl *n, char *err, size_t errlen)
{
    cudaError_t e = cudaSetDevice(n->device);
    return e == cudaSuccess ? PGD_OK : cuda_fail(e, "cudaSetDevice", err, errlen);
}
