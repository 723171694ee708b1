/* The harness of the kernel test programs (test_cuda_kernels, _attention, _glu): define
 * GPU_SUITE (the Criterion suite name), and GPU_TEST_SEED for another random stream, then
 * include this after tests/lib/test_common.h and tests/lib/gpu_main.h. Without the CUDA backend it
 * declares one test that skips, saying so; with it:
 *   ctx              the test's CUDA context, created before and destroyed after each test
 *                    (with the leak check);
 *   GPU_TEST(name)   { body }: a test that skips when there is no device;
 *   host data        frand, round_to, rand_vals (values representable in the dtype);
 *   device data      upload_raw, upload_into, upload, poisoned (NaN-filled), download
 *                    (after a stream sync); device buffers are the caller's (pgd_cuda_free),
 *                    host arrays too (free). */
#ifndef PGD_TESTS_GPU_KERNEL_TEST_H
#define PGD_TESTS_GPU_KERNEL_TEST_H

#ifndef GPU_SUITE
#error "define GPU_SUITE before including tests/lib/gpu_kernel_test.h"
#endif
#ifndef GPU_TEST_SEED
#define GPU_TEST_SEED 0x9e3779b97f4a7c15ull
#endif

PGD_TEST_SUITE(GPU_SUITE);

#ifndef PGD_HAVE_CUDA
#define GPU_TESTS_OFF 1
Test(GPU_SUITE, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else
#include "kernels/cuda/kernels.h"

static struct pgd_cuda_ctx *ctx;

static void need_gpu(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
    char err[512] = "";
    cr_assert_eq(pgd_cuda_ctx_create(&ctx, err, sizeof err), 0, "%s", err);
}

static void done(void)
{
    pgd_cuda_ctx_destroy(ctx);
    ctx = NULL;
    pgd_test_check_leaks();
}

#define GPU_TEST(name)                                                                  \
    static void name##_body(void);                                                     \
    Test(GPU_SUITE, name, .fini = done)                                                \
    {                                                                                  \
        need_gpu();                                                                    \
        name##_body();                                                                 \
    }                                                                                  \
    static void name##_body(void)

static uint64_t rng = GPU_TEST_SEED;
static inline float frand(void)        /* uniform in [-1, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static inline float round_to(float v, enum pgd_dtype dt)
{
    if (dt == PGD_DTYPE_BF16)
        return pgd_bf16_to_f32(pgd_f32_to_bf16(v));
    if (dt == PGD_DTYPE_F16)
        return pgd_f16_to_f32(pgd_f32_to_f16(v));
    return v;
}

/* n random values in [-a, a), already representable in dt. */
static inline float *rand_vals(size_t n, float a, enum pgd_dtype dt)
{
    float *v = malloc(n * sizeof *v + 4);
    for (size_t i = 0; i < n; i++)
        v[i] = round_to(a * frand(), dt);
    return v;
}

/* A device copy of `bytes` bytes (no slack: memcheck sees a write past the end). */
static inline void *upload_raw(const void *h, size_t bytes)
{
    void *d = pgd_cuda_malloc(bytes);
    cr_assert_not_null(d, "cudaMalloc of %zu bytes", bytes);
    char err[256] = "";
    cr_assert_eq(pgd_cuda_memcpy_h2d(d, h, bytes, err, sizeof err), 0, "%s", err);
    return d;
}

/* Waits for the stream, then writes n floats into the device buffer d in dt. The wait
 * matters: the copy does not queue behind the stream's kernels, so without it a buffer
 * rewritten between two launches could be read by the first one after the rewrite. */
static inline void upload_into(void *d, const float *h, size_t n, enum pgd_dtype dt)
{
    char err[256] = "";
    cr_assert(!ctx || pgd_cuda_sync(ctx, err, sizeof err) == 0, "%s", err);
    size_t esz = pgd_dtype_size(dt);
    void *buf = malloc(n * esz + 4);
    for (size_t i = 0; i < n; i++) {
        if (dt == PGD_DTYPE_F32)
            ((float *)buf)[i] = h[i];
        else
            ((uint16_t *)buf)[i] = dt == PGD_DTYPE_BF16 ? pgd_f32_to_bf16(h[i]) : pgd_f32_to_f16(h[i]);
    }
    cr_assert_eq(pgd_cuda_memcpy_h2d(d, buf, n * esz, err, sizeof err), 0, "%s", err);
    free(buf);
}

/* A device copy of n floats in dt. */
static inline void *upload(const float *h, size_t n, enum pgd_dtype dt)
{
    void *d = pgd_cuda_malloc(n * pgd_dtype_size(dt));
    cr_assert_not_null(d, "cudaMalloc of %zu elements", n);
    upload_into(d, h, n, dt);
    return d;
}

/* n elements of dt filled with NaN (all bits set), on the device. */
static inline void *poisoned(size_t n, enum pgd_dtype dt)
{
    size_t bytes = n * pgd_dtype_size(dt);
    void *h = malloc(bytes + 4);
    memset(h, 0xff, bytes);
    void *d = upload_raw(h, bytes);
    free(h);
    return d;
}

/* Waits for the stream, then n elements of dt at d in float32. */
static inline float *download(const void *d, size_t n, enum pgd_dtype dt)
{
    char err[512] = "";
    cr_assert_eq(pgd_cuda_sync(ctx, err, sizeof err), 0, "%s", err);
    size_t esz = pgd_dtype_size(dt);
    void *buf = malloc(n * esz + 4);
    float *out = malloc(n * sizeof *out + 4);
    cr_assert_eq(pgd_cuda_memcpy_d2h(buf, d, n * esz, err, sizeof err), 0, "%s", err);
    pgd_convert_to_f32(out, buf, dt, n);
    free(buf);
    return out;
}
#endif

#endif
