/* The NCCL communicator on one GPU (runtime/dist/comm_nccl.c) inside CUDA graphs, as the
 * runner's decode graphs use it under tensor parallelism: a 1-rank communicator (MPI
 * singleton, no mpirun), the all-reduce and all-gather queued eagerly, then captured into a
 * graph on the runner's stream between copies from and to pinned host buffers, and the
 * graph replayed on new inputs. A 1-rank all-reduce leaves its buffer as it is and a 1-rank
 * all-gather copies send into recv, so each replay must hand back exactly the new input:
 * stale data (a collective that did not replay, or replayed on the captured values) fails.
 * Skips visibly without a GPU, or in a build without NCCL (configure found no MPI or no
 * nccl.h / libnccl). Several GPUs (2-rank all-reduce sums) are for tests/dist under mpirun
 * on a machine that has them. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "runtime/dist/comm.h"
#include <pagoda/tensor.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(cuda_comm);

#ifndef PGD_HAVE_CUDA
Test(cuda_comm, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else

enum { N = 4096, REPLAYS = 3 };

static void need_nccl(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
    if (!pgd__comm_have_nccl())
        cr_skip_test("this build has no NCCL backend: configure with MPI (--with-mpi, not "
                     "--without-mpi; Debian: libopenmpi-dev openmpi-bin) and NCCL (nccl.h and "
                     "libnccl in the CUDA directory) to run it");
}

static float input_value(int replay, int i)
{
    return (float)((i * 7 + replay * 131) % 1000) * 0.25f - 100.0f;
}

/* Queues host_in -> a, all_reduce(a), all_gather(a -> b), b -> host_out on cuda's stream. */
static void queue_round(struct pgd__comm *c, struct pgd_cuda_ctx *cuda, float *host_in,
                        float *a, float *b, float *host_out)
{
    char err[512] = "";
    void *stream = pgd_cuda_ctx_stream(cuda);
    cr_assert_eq(pgd_cuda_copy_h2d_async(cuda, a, host_in, N * sizeof(float), err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(pgd__comm_all_reduce_sum(c, PGD_DTYPE_F32, a, N, stream, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_assert_eq(pgd__comm_all_gather(c, PGD_DTYPE_F32, a, b, N, stream, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_assert_eq(pgd_cuda_copy_d2h_async(cuda, host_out, b, N * sizeof(float), err, sizeof err),
                 0, "%s", err);
}

static void expect_round(const float *host_out, int replay)
{
    for (int i = 0; i < N; i++)
        cr_assert_eq(host_out[i], input_value(replay, i), "replay %d element %d: %g, expected %g",
                     replay, i, (double)host_out[i], (double)input_value(replay, i));
}

Test(cuda_comm, nccl_collectives_replay_in_a_graph)
{
    need_nccl();
    char err[512] = "";
    struct pgd__comm *c = NULL;
    cr_assert_eq(pgd__comm_create(1, PGD_DEVICE_CUDA, &c, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__comm_device(c), PGD_DEVICE_CUDA);
    cr_assert_eq(pgd__comm_bind_thread(c, err, sizeof err), PGD_OK, "%s", err);
    /* NVLink multicast stays off in everything pagoda starts. */
    cr_assert_str_eq(getenv("NCCL_NVLS_ENABLE") ? getenv("NCCL_NVLS_ENABLE") : "(unset)", "0");
    struct pgd_cuda_ctx *cuda = NULL;
    cr_assert_eq(pgd_cuda_ctx_create(&cuda, err, sizeof err), 0, "%s", err);
    float *host_in = pgd_cuda_host_alloc(N * sizeof(float));
    float *host_out = pgd_cuda_host_alloc(N * sizeof(float));
    float *a = pgd_cuda_malloc(N * sizeof(float)), *b = pgd_cuda_malloc(N * sizeof(float));
    cr_assert(host_in && host_out && a && b);

    /* Eagerly first, as the runner's first step of a shape (NCCL connects lazily). */
    for (int i = 0; i < N; i++)
        host_in[i] = input_value(0, i);
    queue_round(c, cuda, host_in, a, b, host_out);
    cr_assert_eq(pgd_cuda_sync(cuda, err, sizeof err), 0, "%s", err);
    expect_round(host_out, 0);

    /* Captured: nothing runs, so host_out must keep the eager round's values. */
    memset(host_out, 0xff, N * sizeof(float));
    struct pgd_cuda_graph *g = NULL;
    cr_assert_eq(pgd_cuda_capture_begin(cuda, err, sizeof err), 0, "%s", err);
    queue_round(c, cuda, host_in, a, b, host_out);
    cr_assert_eq(pgd_cuda_capture_end(cuda, &g, err, sizeof err), 0,
                 "capturing the NCCL collectives: %s", err);
    /* The two copies and the collectives' work: with one rank NCCL may record a collective
     * as a single copy or nothing at all (the H200 gave 3 nodes), so the count only says the
     * capture recorded more than the copies; the replays below check what it computes. */
    cr_assert_geq(pgd_cuda_graph_nodes(g), 3, "%zu nodes", pgd_cuda_graph_nodes(g));
    cr_assert_eq(pgd_cuda_sync(cuda, err, sizeof err), 0, "%s", err);
    uint32_t bits;
    memcpy(&bits, host_out, sizeof bits);
    cr_assert_eq(bits, 0xffffffffu, "the capture ran the work instead of recording it");

    for (int rep = 1; rep <= REPLAYS; rep++) {
        for (int i = 0; i < N; i++)
            host_in[i] = input_value(rep, i);
        cr_assert_eq(pgd_cuda_graph_launch(cuda, g, err, sizeof err), 0, "%s", err);
        cr_assert_eq(pgd_cuda_sync(cuda, err, sizeof err), 0, "%s", err);
        expect_round(host_out, rep);
    }
    pgd_cuda_graph_destroy(g);
    pgd_cuda_free(a);
    pgd_cuda_free(b);
    pgd_cuda_host_free(host_in);
    pgd_cuda_host_free(host_out);
    pgd_cuda_ctx_destroy(cuda);
    pgd__comm_destroy(c);
}

/* The runner's all-reduce runs in the model's activation dtype: bf16 and f16 through NCCL
 * too (a 1-rank sum is exact in any dtype). */
Test(cuda_comm, nccl_all_reduce_16bit)
{
    need_nccl();
    char err[512] = "";
    struct pgd__comm *c = NULL;
    cr_assert_eq(pgd__comm_create(1, PGD_DEVICE_CUDA, &c, err, sizeof err), PGD_OK, "%s", err);
    struct pgd_cuda_ctx *cuda = NULL;
    cr_assert_eq(pgd_cuda_ctx_create(&cuda, err, sizeof err), 0, "%s", err);
    uint16_t host[N], back[N];
    for (int i = 0; i < N; i++)
        host[i] = (uint16_t)(0x3c00 + (i % 512));
    void *d = pgd_cuda_malloc(sizeof host);
    cr_assert(d);
    const enum pgd_dtype dts[] = { PGD_DTYPE_BF16, PGD_DTYPE_F16 };
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(pgd_cuda_memcpy_h2d(d, host, sizeof host, err, sizeof err), 0, "%s", err);
        cr_assert_eq(pgd__comm_all_reduce_sum(c, dts[k], d, N, pgd_cuda_ctx_stream(cuda), err,
                                              sizeof err), PGD_OK, "%s", err);
        cr_assert_eq(pgd_cuda_sync(cuda, err, sizeof err), 0, "%s", err);
        cr_assert_eq(pgd_cuda_memcpy_d2h(back, d, sizeof back, err, sizeof err), 0, "%s", err);
        cr_assert_eq(memcmp(back, host, sizeof host), 0, "%s all-reduce changed the values",
                     pgd_dtype_name(dts[k]));
    }
    pgd_cuda_free(d);
    pgd_cuda_ctx_destroy(cuda);
    pgd__comm_destroy(c);
}
#endif
