/* The n-gram proposer (see ngram.h). */
#include "runtime/spec/ngram.h"
#include <string.h>

/* Where to copy from for the pattern tokens[n - len, n): the latest earlier occurrence with
 * at least k tokens after it, else (the pattern runs into itself, as a run of one repeated
 * token does) the earliest, which has the most; -1 when there is none. An occurrence at i
 * starts before n - len, so tokens[i + len] exists. */
static int pick_match(const int32_t *tokens, int n, int len, int k)
{
    const int32_t *pat = tokens + (n - len);
    int earliest = -1;
    for (int i = n - len - 1; i >= 0; i--) {
        if (tokens[i] != pat[0] || memcmp(tokens + i, pat, (size_t)len * sizeof *pat))
            continue;
        if (n - (i + len) >= k)
            return i;
        earliest = i;
    }
    return earliest;
}

int pgd__ngram_propose(const int32_t *tokens, int n, int min_n, int max_n, int k, int32_t *out)
{
    if (k <= 0 || min_n <= 0 || max_n < min_n)
        return 0;
    if (max_n > n - 1)
        max_n = n - 1;                  /* the pattern needs an earlier place to match */
    for (int len = max_n; len >= min_n; len--) {
        int i = pick_match(tokens, n, len, k);
        if (i < 0)
            continue;
        int from = i + len, m = n - from < k ? n - from : k;
        memcpy(out, tokens + from, (size_t)m * sizeof *out);
        return m;
    }
    return 0;
}
