/* The `pagoda bench` commands' list flags (--batch 1,2,4, --prompt-len 128,512): whole
 * decimal numbers within the flag's bounds, comma-separated, up to the command's count;
 * anything else refused with a message that names the flag, the item and what it takes. */
#include "config.h"
#include "tools/bench/bench_common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pgd_tool_bench_int_list(const char *flag, const char *s, long lo, long hi, int *v, int max,
                            int *n, char *err, size_t errlen)
{
    char takes[128];
    snprintf(takes, sizeof takes, "%s takes up to %d numbers in %ld..%ld, comma-separated", flag,
             max, lo, hi);
    if (!*s) {
        snprintf(err, errlen, "%s: an empty list (%s)", flag, takes);
        return 1;
    }
    int count = 0;
    for (const char *p = s;; p++) {
        const size_t len = strcspn(p, ",");
        if (len == 0) {
            snprintf(err, errlen, "%s: item %d of '%s' is empty (%s)", flag, count + 1, s, takes);
            return 1;
        }
        if (count == max) {
            snprintf(err, errlen, "%s: '%s' has more than %d items (%s)", flag, s, max, takes);
            return 1;
        }
        /* Digits after an optional minus: strtol alone would also take leading blanks and a
         * plus sign. */
        char item[32];
        const size_t neg = p[0] == '-';
        const size_t digits = strspn(p + neg, "0123456789");
        if (digits == 0 || neg + digits != len || len >= sizeof item) {
            snprintf(err, errlen, "%s: '%.*s' is not a number (%s)", flag, (int)len, p, takes);
            return 1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        errno = 0;
        const long x = strtol(item, NULL, 10);
        if (errno == ERANGE || x < lo || x > hi) {
            snprintf(err, errlen, "%s: %s is out of range (%s)", flag, item, takes);
            return 1;
        }
        v[count++] = (int)x;
        p += len;
        if (!*p)
            break;
    }
    *n = count;
    return 0;
}
