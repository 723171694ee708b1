/* The communicator of tensor parallelism (see comm.h): joining the mpirun group, the host
 * collectives over MPI, and the dispatch of the activations' collectives to MPI (CPU) or
 * NCCL (CUDA, comm_nccl.c). Without MPI every entry refuses with a message. */
#include "config.h"
#include "runtime/dist/comm.h"
#include "runtime/dist/comm_nccl.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_MPI
#include <mpi.h>
#endif

struct pgd__comm {
    int rank, size, local_rank;
    enum pgd_device device;
#ifdef PGD_HAVE_MPI
    MPI_Comm mpi;                      /* a duplicate of MPI_COMM_WORLD, errors returned */
#endif
    struct pgd__nccl *nccl;            /* CUDA only; owned */
};

bool pgd__comm_have_mpi(void)
{
#ifdef PGD_HAVE_MPI
    return true;
#else
    return false;
#endif
}

bool pgd__comm_have_nccl(void)
{
#ifdef PGD_HAVE_NCCL
    return true;
#else
    return false;
#endif
}

int pgd__comm_rank(const struct pgd__comm *c) { return c->rank; }
int pgd__comm_size(const struct pgd__comm *c) { return c->size; }
enum pgd_device pgd__comm_device(const struct pgd__comm *c) { return c->device; }

#ifndef PGD_HAVE_MPI
static enum pgd_status no_mpi(char *err, size_t errlen)
{
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "tensor parallelism needs MPI, and this "
                    "pagoda was built without it: install Open MPI (Debian: libopenmpi-dev "
                    "openmpi-bin), then configure again (--with-mpi)");
}

/* Without MPI the only group is one rank, and only its NCCL communicator is of use (the
 * GPU tests capture its collectives); everything else needs MPI. */
enum pgd_status pgd__comm_create(int size, enum pgd_device device, struct pgd__comm **out,
                                 char *err, size_t errlen)
{
    *out = NULL;
#ifdef PGD_HAVE_NCCL
    if (size == 1 && device == PGD_DEVICE_CUDA) {
        struct pgd__comm *c = calloc(1, sizeof *c);
        if (!c)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        *c = (struct pgd__comm){ .rank = 0, .size = 1, .device = device };
        enum pgd_status st = pgd__nccl_create(c, 0, &c->nccl, err, errlen);
        if (st) {
            free(c);
            return st;
        }
        *out = c;
        return PGD_OK;
    }
#endif
    (void)size;
    (void)device;
    return no_mpi(err, errlen);
}
void pgd__comm_destroy(struct pgd__comm *c)
{
#ifdef PGD_HAVE_NCCL
    if (c)
        pgd__nccl_destroy(c->nccl);
#endif
    free(c);
}
#ifdef PGD_HAVE_NCCL
/* One rank: its own unique id is everyone's. */
enum pgd_status pgd__comm_broadcast_id(struct pgd__comm *c, void *id, size_t bytes, char *err,
                                       size_t errlen)
{
    (void)id;
    (void)bytes;
    return c->size == 1 ? PGD_OK : no_mpi(err, errlen);
}
#endif
enum pgd_status pgd__comm_world_rank(int *rank, char *err, size_t errlen)
{
    *rank = 0;
    return no_mpi(err, errlen);
}
enum pgd_status pgd__comm_world_size(int *size, char *err, size_t errlen)
{
    *size = 1;
    return no_mpi(err, errlen);
}
void pgd__comm_abort_job(int code) { (void)code; }
enum pgd_status pgd__comm_broadcast(struct pgd__comm *c, void *buf, size_t bytes, int root,
                                    char *err, size_t errlen)
{
    return no_mpi(err, errlen);
}
enum pgd_status pgd__comm_barrier(struct pgd__comm *c, char *err, size_t errlen)
{
    return no_mpi(err, errlen);
}
enum pgd_status pgd__comm_host_all_reduce_sum(struct pgd__comm *c, enum pgd_dtype dtype,
                                              void *buf, size_t count, char *err, size_t errlen)
{
    return no_mpi(err, errlen);
}
enum pgd_status pgd__comm_host_all_gather(struct pgd__comm *c, enum pgd_dtype dtype,
                                          const void *send, void *recv, size_t count,
                                          char *err, size_t errlen)
{
    return no_mpi(err, errlen);
}
#else

/* MPI errors come back as codes (MPI_ERRORS_RETURN on our communicator) and are reported
 * with MPI's own text. */
static enum pgd_status mpi_fail(int rc, const char *call, char *err, size_t errlen)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return pgd_errf(err, errlen, PGD_ERR_IO, "MPI: %s failed: %s", call, text);
}

/* MPI is initialized once per process. When this file did it, MPI_Finalize runs at exit
 * (from the main thread, after the engine thread is gone), since MPI cannot be initialized
 * twice and tests create communicators more than once. */
static void finalize_at_exit(void)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}

static enum pgd_status init_mpi(char *err, size_t errlen)
{
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Query_thread(&provided);
    } else {
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "MPI_Init_thread", err, errlen);
        atexit(finalize_at_exit);
    }
    /* The engine thread, not the one that initialized MPI, makes the step's calls. */
    if (provided < MPI_THREAD_SERIALIZED)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "MPI: the library gives thread "
                        "level %d, tensor parallelism needs MPI_THREAD_SERIALIZED (%d)",
                        provided, MPI_THREAD_SERIALIZED);
    return PGD_OK;
}

static enum pgd_status make_group(struct pgd__comm *c, int size, char *err, size_t errlen)
{
    int world = 0, rc;
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi)) != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_dup", err, errlen);
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &world);
    if (world != size)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "tensor_parallel_size %d, but mpirun "
                        "started %d process%s: run `mpirun -np %d ...` (one process per rank)",
                        size, world, world == 1 ? "" : "es", size);
    c->size = size;
    /* The rank among the processes of this host: which GPU the process takes. */
    MPI_Comm local;
    if ((rc = MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                                  &local)) != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_split_type", err, errlen);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_free(&local);
    return PGD_OK;
}

enum pgd_status pgd__comm_create(int size, enum pgd_device device, struct pgd__comm **out,
                                 char *err, size_t errlen)
{
    *out = NULL;
    if (size < 1)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "tensor_parallel_size %d must be at "
                        "least 1", size);
    struct pgd__comm *c = calloc(1, sizeof *c);
    if (!c)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    c->mpi = MPI_COMM_NULL;
    c->device = device;
    enum pgd_status st = init_mpi(err, errlen);
    if (!st)
        st = make_group(c, size, err, errlen);
    if (!st && device == PGD_DEVICE_CUDA) {
#ifdef PGD_HAVE_NCCL
        st = pgd__nccl_create(c, c->local_rank, &c->nccl, err, errlen);
#else
        st = pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "tensor parallelism on CUDA needs "
                      "NCCL, and this pagoda was built without it (configure looks for nccl.h "
                      "and libnccl in the CUDA directory)");
#endif
    }
    if (st) {
        pgd__comm_destroy(c);
        return st;
    }
    PGD_DEBUG("comm: rank %d of %d (local rank %d) on %s", c->rank, c->size, c->local_rank,
              device == PGD_DEVICE_CUDA ? "cuda" : "cpu");
    *out = c;
    return PGD_OK;
}

enum pgd_status pgd__comm_world_rank(int *rank, char *err, size_t errlen)
{
    *rank = 0;
    enum pgd_status st = init_mpi(err, errlen);
    if (!st)
        MPI_Comm_rank(MPI_COMM_WORLD, rank);
    return st;
}

enum pgd_status pgd__comm_world_size(int *size, char *err, size_t errlen)
{
    *size = 1;
    enum pgd_status st = init_mpi(err, errlen);
    if (!st)
        MPI_Comm_size(MPI_COMM_WORLD, size);
    return st;
}

void pgd__comm_abort_job(int code)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized)
        MPI_Abort(MPI_COMM_WORLD, code);
}

void pgd__comm_destroy(struct pgd__comm *c)
{
    if (!c)
        return;
#ifdef PGD_HAVE_NCCL
    pgd__nccl_destroy(c->nccl);
#endif
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (c->mpi != MPI_COMM_NULL && !finalized)
        MPI_Comm_free(&c->mpi);
    free(c);
}

enum pgd_status pgd__comm_broadcast(struct pgd__comm *c, void *buf, size_t bytes, int root,
                                    char *err, size_t errlen)
{
    /* MPI counts are int: large buffers go in pieces. */
    for (size_t off = 0; off < bytes;) {
        size_t n = bytes - off < (size_t)1 << 30 ? bytes - off : (size_t)1 << 30;
        int rc = MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, c->mpi);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "MPI_Bcast", err, errlen);
        off += n;
    }
    return PGD_OK;
}

enum pgd_status pgd__comm_barrier(struct pgd__comm *c, char *err, size_t errlen)
{
    int rc = MPI_Barrier(c->mpi);
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(rc, "MPI_Barrier", err, errlen);
}

static bool mpi_type(enum pgd_dtype dt, MPI_Datatype *out)
{
    switch (dt) {
    case PGD_DTYPE_F32: *out = MPI_FLOAT; return true;
    case PGD_DTYPE_I32: *out = MPI_INT32_T; return true;
    default: return false;
    }
}

enum pgd_status pgd__comm_host_all_reduce_sum(struct pgd__comm *c, enum pgd_dtype dtype,
                                              void *buf, size_t count, char *err, size_t errlen)
{
    MPI_Datatype t;
    if (!mpi_type(dtype, &t))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "MPI all_reduce of %s (F32 and I32 "
                        "only)", pgd_dtype_name(dtype));
    if (count > (size_t)INT32_MAX)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "MPI all_reduce of %zu elements "
                        "(at most %d)", count, INT32_MAX);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, t, MPI_SUM, c->mpi);
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(rc, "MPI_Allreduce", err, errlen);
}

enum pgd_status pgd__comm_host_all_gather(struct pgd__comm *c, enum pgd_dtype dtype,
                                          const void *send, void *recv, size_t count,
                                          char *err, size_t errlen)
{
    size_t bytes = count * pgd_dtype_size(dtype);
    if (bytes > (size_t)INT32_MAX)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "MPI all_gather of %zu bytes a rank "
                        "(at most %d)", bytes, INT32_MAX);
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, c->mpi);
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(rc, "MPI_Allgather", err, errlen);
}

#ifdef PGD_HAVE_NCCL
/* comm_nccl.c broadcasts its unique id over the group's MPI communicator. */
enum pgd_status pgd__comm_broadcast_id(struct pgd__comm *c, void *id, size_t bytes, char *err,
                                       size_t errlen)
{
    return pgd__comm_broadcast(c, id, bytes, 0, err, errlen);
}
#endif
#endif /* PGD_HAVE_MPI */

enum pgd_status pgd__comm_all_reduce_sum(struct pgd__comm *c, enum pgd_dtype dtype, void *buf,
                                         size_t count, void *stream, char *err, size_t errlen)
{
#ifdef PGD_HAVE_NCCL
    if (c->nccl)
        return pgd__nccl_all_reduce_sum(c->nccl, dtype, buf, count, stream, err, errlen);
#endif
    (void)stream;
    return pgd__comm_host_all_reduce_sum(c, dtype, buf, count, err, errlen);
}

enum pgd_status pgd__comm_all_gather(struct pgd__comm *c, enum pgd_dtype dtype, const void *send,
                                     void *recv, size_t count, void *stream, char *err,
                                     size_t errlen)
{
#ifdef PGD_HAVE_NCCL
    if (c->nccl)
        return pgd__nccl_all_gather(c->nccl, dtype, send, recv, count, stream, err, errlen);
#endif
    (void)stream;
    return pgd__comm_host_all_gather(c, dtype, send, recv, count, err, errlen);
}

enum pgd_status pgd__comm_bind_thread(struct pgd__comm *c, char *err, size_t errlen)
{
#ifdef PGD_HAVE_NCCL
    if (c->nccl)
        return pgd__nccl_bind_thread(c->nccl, err, errlen);
#endif
    (void)c;
    (void)err;
    (void)errlen;
    return PGD_OK;
}
