/* The checks of the MPI test programs of tests/dist (plain C: Criterion forks each test into
 * a process of its own, which MPI cannot follow). Every rank counts its checks; dist_finish
 * sums them over the ranks and rank 0 prints one line the test script adds up:
 * "dist: NAME np=N: P passed, F failed". The exit status is non-zero when any rank failed. */
#ifndef PGD_TESTS_DIST_CHECK_H
#define PGD_TESTS_DIST_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int dist_rank, dist_size, dist_pass, dist_fail;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (cond) {                                                                      \
            dist_pass++;                                                                 \
        } else {                                                                         \
            dist_fail++;                                                                 \
            fprintf(stderr, "[rank %d] FAIL %s:%d: ", dist_rank, __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

/* MPI_Init (the runtime's communicator then finds it initialized) and the rank and size. */
static void dist_start(int *argc, char ***argv)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
}

static int dist_finish(const char *name)
{
    int mine[2] = { dist_pass, dist_fail }, all[2];
    MPI_Reduce(mine, all, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (dist_rank == 0)
        printf("dist: %s np=%d: %d passed, %d failed\n", name, dist_size, all[0], all[1]);
    int failed = dist_fail > 0, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}

#endif
