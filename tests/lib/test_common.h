/* Shared by every Criterion test program. Criterion runs each test in a child process whose
 * exit status it ignores, so a leak that LeakSanitizer reports at exit would not fail the
 * test: suites declared with PGD_TEST_SUITE check for leaks after each test instead and
 * abort (a crash Criterion counts) when one is found. Without ASan the check is a no-op.
 * Every suite of every Criterion program is declared with one of the PGD_TEST_SUITE
 * macros below, and Test() refuses to compile in a suite that was not. */
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

#define PGD_TEST_CAT_(a, b) a##b
#define PGD_TEST_CAT(a, b) PGD_TEST_CAT_(a, b)
/* The mark a PGD_TEST_SUITE macro leaves for Test() below to find. */
#define PGD_TEST_MARK_(name) enum { PGD_TEST_CAT(pgd_leak_checked_suite_, name) = 1 }

#define PGD_TEST_SUITE(name)                                                            \
    PGD_TEST_MARK_(name);                                                               \
    TestSuite(name, .fini = pgd_test_check_leaks)
/* A suite whose tests each start with init_fn(), and end with the leak check. */
#define PGD_TEST_SUITE_INIT(name, init_fn)                                              \
    PGD_TEST_MARK_(name);                                                               \
    TestSuite(name, .init = init_fn, .fini = pgd_test_check_leaks)
/* A suite whose tests each start with init_fn() and end with fini_fn(), then the leak
 * check (so that what fini_fn frees is not reported). */
#define PGD_TEST_SUITE_FIXTURE(name, init_fn, fini_fn)                                  \
    PGD_TEST_MARK_(name);                                                               \
    static void PGD_TEST_CAT(name, _fini_then_check_leaks)(void)                        \
    {                                                                                   \
        fini_fn();                                                                      \
        pgd_test_check_leaks();                                                         \
    }                                                                                   \
    TestSuite(name, .init = init_fn, .fini = PGD_TEST_CAT(name, _fini_then_check_leaks))

/* Test(suite, name, ...) as Criterion's, which also fails to compile ("pgd_leak_checked_
 * suite_<suite> undeclared") when the suite was not declared above with a PGD_TEST_SUITE
 * macro: no suite can skip the leak check. Left as Criterion's own where its internals
 * differ from the 2.4 ones this wraps. */
#if defined(CR_TEST_BASE) && defined(CR_EXPAND)
#undef Test
#define Test(Suite, ...)                                                                \
    _Static_assert(PGD_TEST_CAT(pgd_leak_checked_suite_, Suite),                        \
                   "declare the suite with PGD_TEST_SUITE (tests/lib/test_common.h)");  \
    CR_EXPAND(CR_TEST_BASE(Suite, __VA_ARGS__, .sentinel_ = 0))
#endif

#endif
