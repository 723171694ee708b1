/* Internal to runtime/dist: the NCCL backend of the communicator (CUDA builds with NCCL
 * and MPI). comm.c calls it; it calls comm.c back only to broadcast its unique id over MPI. */
#ifndef PGD_RUNTIME_DIST_COMM_NCCL_H
#define PGD_RUNTIME_DIST_COMM_NCCL_H

#include "runtime/dist/comm.h"

struct pgd__nccl;

/* Binds the calling thread to GPU local_rank % (GPUs of the host), then creates the NCCL
 * communicator of c's group (ncclCommInitRank; rank 0's ncclGetUniqueId broadcast over
 * MPI). NVLink multicast stays off: NCCL_NVLS_ENABLE=0 is set before the init unless the
 * environment already sets it. *out is the caller's (pgd__nccl_destroy). */
enum pgd_status pgd__nccl_create(struct pgd__comm *c, int local_rank, struct pgd__nccl **out,
                                 char *err, size_t errlen);
void pgd__nccl_destroy(struct pgd__nccl *n);
/* Device buffers, on stream (a cudaStream_t). */
enum pgd_status pgd__nccl_all_reduce_sum(struct pgd__nccl *n, enum pgd_dtype dtype, void *buf,
                                         size_t count, void *stream, char *err, size_t errlen);
enum pgd_status pgd__nccl_all_gather(struct pgd__nccl *n, enum pgd_dtype dtype, const void *send,
                                     void *recv, size_t count, void *stream, char *err,
                                     size_t errlen);
enum pgd_status pgd__nccl_bind_thread(struct pgd__nccl *n, char *err, size_t errlen);
/* comm.c: rank 0's bytes at id, broadcast to every rank of c over MPI. */
enum pgd_status pgd__comm_broadcast_id(struct pgd__comm *c, void *id, size_t bytes, char *err,
                                       size_t errlen);

#endif
