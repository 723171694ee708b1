/* Shared by every Criterion test program. Criterion runs each test in a child process whose
 * exit status it ignores, so a leak that LeakSanitizer reports at exit would not fail the
 * test: suites declared with PGD_TEST_SUITE check for leaks after each test instead and
 * abort (a crash Criterion counts) when one is found. Without ASan the check is a no-op.
 * Every suite of every Criterion program is declared with one of the PGD_TEST_SUITE
 * macros below (tests/tools/test_conventions.sh checks it). */
#ifndef PGD_TESTS_COMMON_H
#define PGD_TESTS_COMMON_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static inline void pgd_test_check_leaks(void)
{
#ifdef __SANITIZE_ADDRESS__
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "memory leaked (see the LeakSanitizer report above)\n");
        abort();
    }
#endif
}

#define PGD_TEST_SUITE(name) TestSuite(name, .fini = pgd_test_check_leaks)
/* A suite whose tests each start with init_fn(), and end with the leak check. */
#define PGD_TEST_SUITE_INIT(name, init_fn) \
    TestSuite(name, .init = init_fn, .fini = pgd_test_check_leaks)
/* A suite whose tests each start with init_fn() and end with fini_fn(), then the leak
 * check (so that what fini_fn frees is not reported). */
#define PGD_TEST_SUITE_FIXTURE(name, init_fn, fini_fn)                                  \
    static void name##_fini_then_check_leaks(void)                                      \
    {                                                                                   \
        fini_fn();                                                                      \
        pgd_test_check_leaks();                                                         \
    }                                                                                   \
    TestSuite(name, .init = init_fn, .fini = name##_fini_then_check_leaks)

#endif
