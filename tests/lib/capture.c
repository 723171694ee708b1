/* The test helper that runs a command and keeps its output (capture.h). */
#include "tests/lib/capture.h"
#include "tests/lib/test_common.h"
#include "runtime/base/buf.h"
#include <stdio.h>

char *pgd_test_capture(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    char *out = NULL, err[512] = "";
    enum pgd_status st = pgd__read_stream(p, cmd, &out, NULL, err, sizeof err);
    *status = pclose(p);
    cr_assert_eq(st, PGD_OK, "%s", err);
    return out;
}
