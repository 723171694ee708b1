/* The main() of the GPU test programs: Criterion's, plus an exit status of 77 (automake's
 * SKIP) when there is no GPU to test on, so that `make check` prints "SKIP:" for them and
 * `make check-gpu` can fail. Whether a GPU is there is asked in a child process: CUDA must
 * not be initialised in the parent before Criterion forks the tests. */
#ifndef PGD_TESTS_GPU_MAIN_H
#define PGD_TESTS_GPU_MAIN_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

static int pgd_test_gpu_count(void)
{
#ifdef PGD_HAVE_CUDA
    pid_t pid = fork();
    if (pid == 0)
        _exit(pgd_cuda_device_count() > 0 ? 0 : 1);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
#else
    return 0;
#endif
}

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    int gpu = pgd_test_gpu_count(), result = 0;
    if (!gpu)
        fprintf(stderr, "SKIP: no CUDA device%s: every test of %s skips\n",
#ifdef PGD_HAVE_CUDA
                "",
#else
                " (a build without the CUDA backend)",
#endif
                argv[0]);
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result ? result : (gpu ? 0 : 77);
}

#endif
