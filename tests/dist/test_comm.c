/* The communicator's collectives (runtime/dist/comm.h) against plain sums, under
 * `mpirun -np N` (tests/dist/test_dist.sh runs N = 2 and 4): broadcast from the first and
 * the last rank, all_reduce_sum of float32 and int32 (values exact in float32, so the sum
 * must be exact whatever order MPI adds in), all_gather, barrier, and the refusals (a group
 * size that is not the world's, a dtype MPI cannot sum). */
#include "config.h"
#include "runtime/dist/comm.h"
#include "tests/dist/dist_check.h"
#include <string.h>

enum { COUNT = 1000 };

/* What rank r holds at index i before the reductions: exact in float32 (multiples of 0.25
 * far below 2^24). */
static float value_f32(int r, int i) { return (float)r * 1000.0f + (float)i * 0.25f; }
static int32_t value_i32(int r, int i) { return r * 100000 + i * 3 - 7; }

static void check_broadcast(struct pgd__comm *c)
{
    char err[512];
    for (int root = 0; root < dist_size; root += dist_size - 1) {
        unsigned char buf[3001];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = dist_rank == root ? (unsigned char)(i * 7 + root) : 0xEE;
        CHECK(pgd__comm_broadcast(c, buf, sizeof buf, root, err, sizeof err) == PGD_OK, "%s", err);
        int bad = 0;
        for (size_t i = 0; i < sizeof buf; i++)
            bad += buf[i] != (unsigned char)(i * 7 + root);
        CHECK(bad == 0, "broadcast from rank %d: %d bytes differ", root, bad);
        if (dist_size == 1)
            break;
    }
    CHECK(pgd__comm_broadcast(c, NULL, 0, 0, err, sizeof err) == PGD_OK, "empty broadcast: %s",
          err);
}

static void check_all_reduce(struct pgd__comm *c)
{
    char err[512];
    float f[COUNT];
    int32_t n[COUNT];
    for (int i = 0; i < COUNT; i++) {
        f[i] = value_f32(dist_rank, i);
        n[i] = value_i32(dist_rank, i);
    }
    CHECK(pgd__comm_all_reduce_sum(c, PGD_DTYPE_F32, f, COUNT, NULL, err, sizeof err) == PGD_OK,
          "%s", err);
    CHECK(pgd__comm_host_all_reduce_sum(c, PGD_DTYPE_I32, n, COUNT, err, sizeof err) == PGD_OK,
          "%s", err);
    int bad_f = 0, bad_i = 0;
    for (int i = 0; i < COUNT; i++) {
        float want_f = 0;
        int32_t want_i = 0;
        for (int r = 0; r < dist_size; r++) {
            want_f += value_f32(r, i);
            want_i += value_i32(r, i);
        }
        bad_f += f[i] != want_f;
        bad_i += n[i] != want_i;
    }
    CHECK(bad_f == 0, "all_reduce_sum f32: %d of %d elements differ from the plain sum", bad_f,
          COUNT);
    CHECK(bad_i == 0, "all_reduce_sum i32: %d of %d elements differ from the plain sum", bad_i,
          COUNT);
    uint16_t h[4] = { 0 };
    CHECK(pgd__comm_all_reduce_sum(c, PGD_DTYPE_BF16, h, 4, NULL, err, sizeof err) ==
              PGD_ERR_UNSUPPORTED && strstr(err, "BF16"), "bf16 on the host: %s", err);
}

static void check_all_gather(struct pgd__comm *c)
{
    char err[512];
    float send[7], *recv = malloc(sizeof send * (size_t)dist_size);
    int32_t isend[3], *irecv = malloc(sizeof isend * (size_t)dist_size);
    for (int i = 0; i < 7; i++)
        send[i] = value_f32(dist_rank, i);
    for (int i = 0; i < 3; i++)
        isend[i] = value_i32(dist_rank, i);
    CHECK(pgd__comm_all_gather(c, PGD_DTYPE_F32, send, recv, 7, NULL, err, sizeof err) == PGD_OK,
          "%s", err);
    CHECK(pgd__comm_host_all_gather(c, PGD_DTYPE_I32, isend, irecv, 3, err, sizeof err) == PGD_OK,
          "%s", err);
    int bad = 0;
    for (int r = 0; r < dist_size; r++) {
        for (int i = 0; i < 7; i++)
            bad += recv[r * 7 + i] != value_f32(r, i);
        for (int i = 0; i < 3; i++)
            bad += irecv[r * 3 + i] != value_i32(r, i);
    }
    CHECK(bad == 0, "all_gather: %d elements are not rank r's at slot r", bad);
    free(recv);
    free(irecv);
}

int main(int argc, char **argv)
{
    dist_start(&argc, &argv);
    char err[512] = "";
    struct pgd__comm *c = NULL;
    CHECK(pgd__comm_have_mpi(), "built without MPI");
    CHECK(pgd__comm_create(dist_size, PGD_DEVICE_CPU, &c, err, sizeof err) == PGD_OK, "%s", err);
    if (c) {
        CHECK(pgd__comm_rank(c) == dist_rank && pgd__comm_size(c) == dist_size,
              "rank %d of %d, MPI says %d of %d", pgd__comm_rank(c), pgd__comm_size(c),
              dist_rank, dist_size);
        check_broadcast(c);
        check_all_reduce(c);
        check_all_gather(c);
        CHECK(pgd__comm_barrier(c, err, sizeof err) == PGD_OK, "%s", err);
        pgd__comm_destroy(c);
    }
    /* A second communicator after the first is gone (MPI stays initialized). */
    int rank = -1;
    CHECK(pgd__comm_world_rank(&rank, err, sizeof err) == PGD_OK && rank == dist_rank, "%s",
          err);
    struct pgd__comm *wrong = NULL;
    CHECK(pgd__comm_create(dist_size + 1, PGD_DEVICE_CPU, &wrong, err, sizeof err) ==
              PGD_ERR_INVALID_ARG && !wrong, "a group of %d in a world of %d", dist_size + 1,
          dist_size);
    CHECK(strstr(err, "mpirun -np") != NULL, "the message says how to launch: %s", err);
    return dist_finish("comm");
}
