/* Running a command from a test and keeping what it printed (tests/lib/capture.c). */
#ifndef PGD_TESTS_LIB_CAPTURE_H
#define PGD_TESTS_LIB_CAPTURE_H

/* Runs cmd through the shell (popen) and reads all its stdout: returns it (malloc'd,
 * NUL-terminated; the caller frees) and puts the wait status pclose gives (not yet
 * WEXITSTATUS'd) in *status. A command that cannot be started or read fails the test. */
char *pgd_test_capture(const char *cmd, int *status);

#endif
