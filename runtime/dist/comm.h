/* Internal: the communicator of tensor parallelism. One process per rank (launched by
 * mpirun), each holding one shard of the model; a communicator is that process's view of
 * the group: its rank, the group's size, and the collectives the sharded forward pass and
 * the runner need.
 *
 * Backends. The control path (the per-step batch that rank 0 broadcasts, barriers, the
 * KV-block agreement at start-up) always goes over MPI on host memory. The activations'
 * collectives (all-reduce after each row-parallel layer, all-gather of the logits) run
 * where the activations are: MPI on host memory for a CPU model, NCCL on device memory
 * for a CUDA model (its communicator made with ncclCommInitRank from a unique id that
 * rank 0 broadcasts over MPI; NVLink multicast is kept off: NCCL_NVLS_ENABLE=0 unless the
 * user set it).
 *
 * A build without MPI has the same functions: pgd__comm_create refuses with a message
 * saying how to get MPI, so a tensor_parallel_size above 1 fails clearly (with NCCL it
 * still makes a 1-rank CUDA communicator, whose NCCL collectives the GPU tests capture). A
 * size of 1 never needs a communicator (callers pass NULL). */
#ifndef PGD_RUNTIME_DIST_COMM_H
#define PGD_RUNTIME_DIST_COMM_H

#include <pagoda/status.h>
#include <pagoda/tensor.h>
#include <stdbool.h>
#include <stddef.h>

struct pgd__comm;

/* True when this build has the MPI backend (and so can run tensor parallelism). */
bool pgd__comm_have_mpi(void);
/* True when this build has the NCCL backend (CUDA and MPI and NCCL found at configure). */
bool pgd__comm_have_nccl(void);

/* Joins the group of `size` ranks that mpirun started: initializes MPI for the process
 * when nothing did (MPI_THREAD_SERIALIZED: the engine thread makes the step's calls) and
 * checks that MPI_COMM_WORLD has exactly `size` ranks. For `device` CUDA it also binds
 * this process to GPU (local rank % GPUs of the host) and creates the NCCL communicator.
 * *out is the caller's (pgd__comm_destroy, which finalizes MPI when this process's first
 * communicator initialized it and is the last to go). PGD_ERR_UNSUPPORTED without MPI (or
 * without NCCL on CUDA), PGD_ERR_INVALID_ARG when the world size differs. */
enum pgd_status pgd__comm_create(int size, enum pgd_device device, struct pgd__comm **out,
                                 char *err, size_t errlen);
void pgd__comm_destroy(struct pgd__comm *c);
/* This process's rank in MPI_COMM_WORLD (initializing MPI as pgd__comm_create does): what a
 * tool asks before it decides to be rank 0 or a worker. PGD_ERR_UNSUPPORTED without MPI. */
enum pgd_status pgd__comm_world_rank(int *rank, char *err, size_t errlen);
/* The number of processes mpirun started (1 without mpirun), initializing MPI likewise: what
 * a tool asks that takes its group size from the launch. PGD_ERR_UNSUPPORTED without MPI. */
enum pgd_status pgd__comm_world_size(int *size, char *err, size_t errlen);
/* Ends every process of the mpirun job with exit status code (MPI_Abort), when MPI is
 * running: a rank that fails must not leave the others waiting in a collective. A no-op
 * otherwise. */
void pgd__comm_abort_job(int code);
int pgd__comm_rank(const struct pgd__comm *c);
int pgd__comm_size(const struct pgd__comm *c);
/* The device the activations' collectives run on (CPU: MPI; CUDA: NCCL). */
enum pgd_device pgd__comm_device(const struct pgd__comm *c);

/* Host memory, over MPI. bytes may be 0. */
enum pgd_status pgd__comm_broadcast(struct pgd__comm *c, void *buf, size_t bytes, int root,
                                    char *err, size_t errlen);
enum pgd_status pgd__comm_barrier(struct pgd__comm *c, char *err, size_t errlen);

/* The activations' collectives, on the communicator's device (host memory over MPI for a
 * CPU communicator; device memory on `stream`, a cudaStream_t, for a CUDA one). dtype F32
 * on the CPU; F32, BF16 or F16 on CUDA (I32 for all_gather everywhere).
 * all_reduce_sum: buf[count] = the sum over ranks of every rank's buf[count], in place.
 * all_gather: recv[size * count] = rank 0's send[count], then rank 1's, ...; send and recv
 * must not overlap. */
enum pgd_status pgd__comm_all_reduce_sum(struct pgd__comm *c, enum pgd_dtype dtype, void *buf,
                                         size_t count, void *stream, char *err, size_t errlen);
enum pgd_status pgd__comm_all_gather(struct pgd__comm *c, enum pgd_dtype dtype, const void *send,
                                     void *recv, size_t count, void *stream, char *err,
                                     size_t errlen);
/* The same collectives on host memory over MPI whatever the device (the runner's start-up
 * agreement, tests). */
enum pgd_status pgd__comm_host_all_reduce_sum(struct pgd__comm *c, enum pgd_dtype dtype,
                                              void *buf, size_t count, char *err,
                                              size_t errlen);
enum pgd_status pgd__comm_host_all_gather(struct pgd__comm *c, enum pgd_dtype dtype,
                                          const void *send, void *recv, size_t count,
                                          char *err, size_t errlen);

/* CUDA: makes the calling thread use this rank's GPU (the engine thread runs the steps,
 * not the thread that created the communicator). A no-op on the CPU. */
enum pgd_status pgd__comm_bind_thread(struct pgd__comm *c, char *err, size_t errlen);

#endif
