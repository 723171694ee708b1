/* pagoda bench allreduce: the all-reduce of tensor parallelism alone, by message size, as
 * NCCL's own all_reduce_perf (nccl-tests) reports it, so the two can be read side by side:
 *
 *     algbw = bytes / time        busbw = algbw * 2 (n - 1) / n
 *
 * (busbw is what each link carries in a ring all-reduce of n ranks, comparable across n).
 * It runs through the runtime's communicator (runtime/dist/comm.h), the very calls the
 * sharded forward pass makes: NCCL on device buffers on a GPU, MPI on host buffers on the
 * CPU. Launch one process per rank: `mpirun -np N pagoda bench allreduce`. Each size is
 * first checked (every rank's buffer holds rank + 1, the sum must be n (n + 1) / 2 in
 * every element: the "#wrong" column), then timed over --iters in-place all-reduces after
 * --warmup untimed ones; the time is rank 0's wall clock from the first launch to the
 * stream's (or MPI's) completion, averaged per call. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/base/clock.h"
#include "runtime/dist/comm.h"
#include <pagoda/tensor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

/* --device auto: not yet chosen. */
#define AR_DEVICE_AUTO ((enum pgd_device) - 1)

struct ar_opts {
    size_t min_bytes, max_bytes;
    int factor, iters, warmup;
    enum pgd_device device;
    enum pgd_dtype dtype;
};

static void ar_usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N pagoda bench allreduce [options]\n"
            "  the all-reduce of --tensor-parallel-size N by message size: time, algbw and\n"
            "  busbw = algbw * 2(N-1)/N as nccl-tests' all_reduce_perf prints them\n\n"
            "  -b, --min-bytes SIZE   smallest message (default 8; K, M, G suffixes)\n"
            "  -e, --max-bytes SIZE   largest message (default 128M on a GPU, 16M on the CPU)\n"
            "  -f, --step-factor N    multiply the size by N each row (default 2)\n"
            "  -n, --iters N          timed all-reduces per size (default 20)\n"
            "  -w, --warmup N         untimed ones first (default 5)\n"
            "  --device auto|cpu|cuda default auto: cuda (NCCL) when the build and host have it\n"
            "  --dtype float|bfloat16|float16  element type (default float; the CPU: float)\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024.0;
    else if (*end == 'M' || *end == 'm')
        mul = 1024.0 * 1024.0;
    else if (*end == 'G' || *end == 'g')
        mul = 1024.0 * 1024.0 * 1024.0;
    if (end == s || v <= 0 || (mul != 1 && end[1]) || (mul == 1 && *end))
        return -1;
    *out = (size_t)(v * mul);
    return *out ? 0 : -1;
}

static int parse_opts(int argc, char **argv, struct ar_opts *o)
{
    *o = (struct ar_opts){ .min_bytes = 8, .factor = 2, .iters = 20, .warmup = 5,
                           .device = AR_DEVICE_AUTO, .dtype = PGD_DTYPE_F32 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            ar_usage(stdout);
            return 1;
        } else if (!v) {
            bad = 1;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--min-bytes")) {
            bad = parse_size(v, &o->min_bytes);
        } else if (!strcmp(a, "-e") || !strcmp(a, "--max-bytes")) {
            bad = parse_size(v, &o->max_bytes);
        } else if (!strcmp(a, "-f") || !strcmp(a, "--step-factor")) {
            bad = (o->factor = atoi(v)) < 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--iters")) {
            bad = (o->iters = atoi(v)) < 1;
        } else if (!strcmp(a, "-w") || !strcmp(a, "--warmup")) {
            bad = (o->warmup = atoi(v)) < 0;
        } else if (!strcmp(a, "--device")) {
            o->device = !strcmp(v, "cpu") ? PGD_DEVICE_CPU
                        : !strncmp(v, "cuda", 4) ? PGD_DEVICE_CUDA
                        : AR_DEVICE_AUTO;
            bad = strcmp(v, "auto") && o->device == AR_DEVICE_AUTO;
        } else if (!strcmp(a, "--dtype")) {
            o->dtype = !strcmp(v, "float") || !strcmp(v, "float32") ? PGD_DTYPE_F32
                       : !strcmp(v, "bfloat16") ? PGD_DTYPE_BF16
                       : !strcmp(v, "float16") ? PGD_DTYPE_F16
                       : PGD_DTYPE_COUNT;
            bad = o->dtype == PGD_DTYPE_COUNT;
        } else {
            fprintf(stderr, "pagoda bench allreduce: unknown option '%s'\n", a);
            ar_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "pagoda bench allreduce: %s: bad or missing value%s%s\n", a,
                    v ? " " : "", v ? v : "");
            return 2;
        }
        i++;
    }
    if (o->device == AR_DEVICE_AUTO) {
        o->device = PGD_DEVICE_CPU;
#ifdef PGD_HAVE_CUDA
        if (pgd__comm_have_nccl() && pgd_cuda_device_count() > 0)
            o->device = PGD_DEVICE_CUDA;
#endif
    }
    if (!o->max_bytes)
        o->max_bytes = o->device == PGD_DEVICE_CUDA ? (size_t)128 << 20 : (size_t)16 << 20;
    if (o->device == PGD_DEVICE_CPU && o->dtype != PGD_DTYPE_F32) {
        fprintf(stderr, "pagoda bench allreduce: the CPU (MPI) all-reduce is float only, as the "
                        "CPU model computes\n");
        return 2;
    }
    if (o->max_bytes < o->min_bytes) {
        fprintf(stderr, "pagoda bench allreduce: --max-bytes is below --min-bytes\n");
        return 2;
    }
    return 0;
}

/* The communicator's buffers on its device, with the fills and the check of one size. */
struct ar_bufs {
    const struct ar_opts *o;
    struct pgd__comm *comm;
    void *buf;                 /* max_bytes, on the device */
    void *host;                /* max_bytes, host staging (CUDA) */
    void *stream;              /* cudaStream_t (CUDA) or NULL */
#ifdef PGD_HAVE_CUDA
    struct pgd_cuda_ctx *cuda;
#endif
};

static uint16_t to_half(enum pgd_dtype dt, float x)
{
    return dt == PGD_DTYPE_BF16 ? pgd_f32_to_bf16(x) : pgd_f32_to_f16(x);
}

static float from_half(enum pgd_dtype dt, uint16_t h)
{
    return dt == PGD_DTYPE_BF16 ? pgd_bf16_to_f32(h) : pgd_f16_to_f32(h);
}

/* Every element of the first count to x (in the bench's dtype). */
static int fill(struct ar_bufs *b, size_t count, float x, char *err, size_t errlen)
{
    size_t esz = pgd_dtype_size(b->o->dtype);
    void *dst = b->o->device == PGD_DEVICE_CUDA ? b->host : b->buf;
    for (size_t i = 0; i < count; i++) {
        if (esz == 4)
            ((float *)dst)[i] = x;
        else
            ((uint16_t *)dst)[i] = to_half(b->o->dtype, x);
    }
#ifdef PGD_HAVE_CUDA
    if (b->o->device == PGD_DEVICE_CUDA)
        return pgd_cuda_memcpy_h2d(b->buf, b->host, count * esz, err, errlen);
#endif
    (void)err;
    (void)errlen;
    return 0;
}

/* The elements of the first count that are not `want`; -1 when the copy back failed. */
static long count_wrong(struct ar_bufs *b, size_t count, float want, char *err, size_t errlen)
{
    size_t esz = pgd_dtype_size(b->o->dtype);
    const void *src = b->buf;
#ifdef PGD_HAVE_CUDA
    if (b->o->device == PGD_DEVICE_CUDA) {
        if (pgd_cuda_memcpy_d2h(b->host, b->buf, count * esz, err, errlen))
            return -1;
        src = b->host;
    }
#endif
    (void)err;
    (void)errlen;
    long wrong = 0;
    for (size_t i = 0; i < count; i++) {
        float v = esz == 4 ? ((const float *)src)[i]
                           : from_half(b->o->dtype, ((const uint16_t *)src)[i]);
        wrong += v != want;
    }
    return wrong;
}

static enum pgd_status wait_done(struct ar_bufs *b, char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    if (b->o->device == PGD_DEVICE_CUDA && pgd_cuda_sync(b->cuda, err, errlen))
        return PGD_ERR_DEVICE;
#endif
    (void)b;
    (void)err;
    (void)errlen;
    return PGD_OK;
}

/* One row: the check, then the timed calls. *us: microseconds a call. */
static enum pgd_status run_size(struct ar_bufs *b, size_t count, long *wrong, double *us,
                                char *err, size_t errlen)
{
    const struct ar_opts *o = b->o;
    int n = pgd__comm_size(b->comm), rank = pgd__comm_rank(b->comm);
    if (fill(b, count, (float)(rank + 1), err, errlen))
        return PGD_ERR_DEVICE;
    enum pgd_status st = pgd__comm_all_reduce_sum(b->comm, o->dtype, b->buf, count, b->stream,
                                                  err, errlen);
    if (!st)
        st = wait_done(b, err, errlen);
    if (st)
        return st;
    /* n (n + 1) / 2 is exact in every dtype for the group sizes tensor parallelism uses. */
    if ((*wrong = count_wrong(b, count, (float)n * (float)(n + 1) / 2.0f, err, errlen)) < 0)
        return PGD_ERR_DEVICE;
    /* Timed on zeros: in-place sums that stay finite however many calls run. */
    if (fill(b, count, 0.0f, err, errlen))
        return PGD_ERR_DEVICE;
    double t0 = 0;
    for (int i = 0; !st && i < o->warmup + o->iters; i++) {
        if (i == o->warmup) {
            if ((st = wait_done(b, err, errlen)) || (st = pgd__comm_barrier(b->comm, err, errlen)))
                break;
            t0 = pgd__now_s();
        }
        st = pgd__comm_all_reduce_sum(b->comm, o->dtype, b->buf, count, b->stream, err, errlen);
    }
    if (!st)
        st = wait_done(b, err, errlen);
    *us = (pgd__now_s() - t0) * 1e6 / o->iters;
    return st;
}

static int run_table(struct ar_bufs *b)
{
    const struct ar_opts *o = b->o;
    int n = pgd__comm_size(b->comm), rank = pgd__comm_rank(b->comm);
    size_t esz = pgd_dtype_size(o->dtype);
    char err[1024] = "";
    if (rank == 0) {
        printf("# pagoda bench allreduce: %d rank%s, %s (%s), in place, sum\n", n,
               n == 1 ? "" : "s", o->device == PGD_DEVICE_CUDA ? "cuda" : "cpu",
               o->device == PGD_DEVICE_CUDA ? "NCCL" : "MPI");
        printf("#%11s %12s %8s %6s %10s %9s %9s %7s\n", "size", "count", "type", "redop",
               "time(us)", "algbw", "busbw", "#wrong");
        printf("#%11s %12s %8s %6s %10s %9s %9s %7s\n", "(B)", "(elements)", "", "", "",
               "(GB/s)", "(GB/s)", "");
    }
    double sum_busbw = 0;
    int rows = 0;
    long total_wrong = 0;
    for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= (size_t)o->factor) {
        size_t count = bytes / esz ? bytes / esz : 1;
        long wrong = 0;
        double us = 0;
        enum pgd_status st = run_size(b, count, &wrong, &us, err, sizeof err);
        if (st) {
            fprintf(stderr, "pagoda bench allreduce: rank %d, %zu bytes: %s\n", rank,
                    count * esz, err);
            pgd__comm_abort_job(1);   /* the other ranks wait in the collective */
            return 1;
        }
        /* Every rank's wrong elements count. */
        int32_t w = (int32_t)(wrong > INT32_MAX ? INT32_MAX : wrong);
        if (pgd__comm_host_all_reduce_sum(b->comm, PGD_DTYPE_I32, &w, 1, err, sizeof err)) {
            fprintf(stderr, "pagoda bench allreduce: %s\n", err);
            pgd__comm_abort_job(1);
            return 1;
        }
        double algbw = (double)(count * esz) / (us * 1e3);
        double busbw = algbw * 2.0 * (n - 1) / n;
        sum_busbw += busbw;
        rows++;
        total_wrong += w;
        if (rank == 0)
            printf("%12zu %12zu %8s %6s %10.2f %9.2f %9.2f %7d\n", count * esz, count,
                   pgd_dtype_name(o->dtype), "sum", us, algbw, busbw, (int)w);
        if (bytes > o->max_bytes / (size_t)o->factor)
            break;
    }
    if (rank == 0) {
        printf("# Out of bounds values : %ld %s\n", total_wrong, total_wrong ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %g\n", rows ? sum_busbw / rows : 0.0);
        fflush(stdout);
    }
    return total_wrong ? 1 : 0;
}

int pgd_cmd_bench_allreduce(int argc, char **argv)
{
    struct ar_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    char err[1024] = "";
    int n = 1;
    struct ar_bufs b = { .o = &o };
    if (pgd__comm_world_size(&n, err, sizeof err) ||
        pgd__comm_create(n, o.device, &b.comm, err, sizeof err)) {
        fprintf(stderr, "pagoda bench allreduce: %s\n", err);
        return 1;
    }
    rc = 1;
    if (o.device == PGD_DEVICE_CPU) {
        b.buf = malloc(o.max_bytes);
        if (b.buf)
            rc = run_table(&b);
        free(b.buf);
    }
#ifdef PGD_HAVE_CUDA
    if (o.device == PGD_DEVICE_CUDA) {
        if (pgd_cuda_ctx_create(&b.cuda, err, sizeof err)) {
            fprintf(stderr, "pagoda bench allreduce: %s\n", err);
        } else {
            b.stream = pgd_cuda_ctx_stream(b.cuda);
            b.buf = pgd_cuda_malloc(o.max_bytes);
            b.host = pgd_cuda_host_alloc(o.max_bytes);
            if (b.buf && b.host)
                rc = run_table(&b);
            pgd_cuda_free(b.buf);
            pgd_cuda_host_free(b.host);
            pgd_cuda_ctx_destroy(b.cuda);
        }
    }
#endif
    if (rc && !b.buf)
        fprintf(stderr, "pagoda bench allreduce: out of memory for %zu bytes\n", o.max_bytes);
    pgd__comm_destroy(b.comm);
    return rc;
}
