/* The n-gram proposer (see ngram.h). */
#include "runtime/spec/ngram.h"
#include <string.h>

/* The start of the latest occurrence of tokens[n - len, n) that begins before n - len and
 * has at least one token after it, or -1. */
static int latest_match(const int32_t *tokens, int n, int len)
{
    const int32_t *pat = tokens + (n - len);
    /* A match at i is followed by tokens[i + len]: i + len < n, and i < n - len. */
    for (int i = n - len - 1; i >= 0; i--)
        if (tokens[i] == pat[0] && !memcmp(tokens + i, pat, (size_t)len * sizeof *pat))
            return i;
    return -1;
}

int pgd__ngram_propose(const int32_t *tokens, int n, int min_n, int max_n, int k, int32_t *out)
{
    if (k <= 0 || min_n <= 0 || max_n < min_n)
        return 0;
    if (max_n > n - 1)
        max_n = n - 1;                  /* the pattern needs an earlier place to match */
    for (int len = max_n; len >= min_n; len--) {
        int i = latest_match(tokens, n, len);
        if (i < 0)
            continue;
        int from = i + len, m = n - from < k ? n - from : k;
        memcpy(out, tokens + from, (size_t)m * sizeof *out);
        return m;
    }
    return 0;
}
