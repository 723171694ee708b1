/* Tensor parallelism in the commands that load a model (`pagoda serve`, `pagoda generate`):
 * under `mpirun -np N ... --tensor-parallel-size N` every process runs the same command
 * line; rank 0 goes on as usual (it makes the engine, and the frontend or the output), the
 * others load their shard and follow rank 0's steps until its engine ends, printing
 * nothing. One process per rank rather than one thread per GPU: the same launch works on one
 * host and across hosts, each rank's GPU and CUDA context are its own, and a crash ends the
 * job through mpirun instead of leaving a half-dead process (docs/TENSOR_PARALLEL.md). */
#include "config.h"
#include "tools/commands.h"
#include "runtime/engine/engine_backend.h"
#include "runtime/dist/comm.h"
#include <stdio.h>

int pgd_tool_tp_worker(const char *cmd, const struct pgd_engine_params *ep)
{
    if (ep->tensor_parallel_size <= 1)
        return -1;
    char err[2048] = "";
    int rank = 0;
    if (pgd__engine_tp_rank(ep, &rank, err, sizeof err)) {
        fprintf(stderr, "pagoda %s: %s\n", cmd, err);
        return 1;
    }
    if (rank == 0)
        return -1;
    if (pgd__engine_serve_tp_worker(ep, err, sizeof err) == PGD_OK)
        return 0;
    fprintf(stderr, "pagoda %s: tensor parallel rank %d: %s\n", cmd, rank, err);
    pgd_tool_tp_failed(ep, 1);
    return 1;
}

void pgd_tool_tp_failed(const struct pgd_engine_params *ep, int status)
{
    if (ep->tensor_parallel_size > 1 && status != 0)
        pgd__comm_abort_job(status);
}
