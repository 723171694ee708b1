/* What every fuzz target in tests/fuzz defines, and what they share.
 *
 * A target is one file with LLVMFuzzerTestOneInput (and, when it needs fixtures loaded once,
 * LLVMFuzzerInitialize). It is linked two ways:
 *   - with libFuzzer (configure --enable-fuzzing, clang): tests/fuzz/fuzz_<target>, run as
 *     `fuzz_<target> tests/fuzz/corpus/<target>` to explore;
 *   - with corpus_main.c (every build): tests/fuzz/test_fuzz_<target>, run by `make check`,
 *     which feeds every file of tests/fuzz/corpus/<target>/ once (a regression test of the
 *     corpus, and of any crash input saved there).
 * A target must never exit() or abort on bad input: only real bugs (a sanitizer report, a
 * failed FUZZ_CHECK) may stop it. */
#ifndef PGD_TESTS_FUZZ_H
#define PGD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the target checks on every input: a failure is a bug, reported and abort()ed
 * so that libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                           \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: fuzz check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* The source tree (for fixtures): $PGD_TEST_SRCDIR (as tests/lib/model_fixture.c reads it),
 * else the one this program was built from. */
static inline const char *fuzz_srcdir(void)
{
    const char *d = getenv("PGD_TEST_SRCDIR");
    return d && *d ? d : PGD_TEST_SRCDIR;
}

#endif
