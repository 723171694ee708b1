/* The harness of the kernel test programs (test_cuda_kernels, _attention, _glu): define
 * GPU_SUITE (the Criterion suite name) and include this after tests/test_common.h and
 * tests/gpu_main.h. Without the CUDA backend it declares one test that skips, saying so, and
 * GPU_TESTS_OFF; with it, `ctx` (the test's CUDA context, created before and destroyed after
 * each test, with the leak check) and GPU_TEST(name) { body }: a test that skips when there
 * is no device. */
#ifndef PGD_TESTS_GPU_CTX_TEST_H
#define PGD_TESTS_GPU_CTX_TEST_H

#ifndef GPU_SUITE
#error "define GPU_SUITE before including tests/gpu_ctx_test.h"
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
#endif

#endif
