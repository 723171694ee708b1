/* Stop strings over a sample's text (see stop.h): the text buffer, the search for a stop
 * string that ends in the newest delta, and the hold-back of a suffix that may still become
 * one. */
#include "runtime/engine/stop.h"
#include "runtime/engine/textio.h"
#include "runtime/base/mem.h"
#include <string.h>

void pgd__stop_text_fini(struct pgd__stop_text *t)
{
    pgd__buf_fini(&t->text);
    memset(t, 0, sizeof *t);
}

/* Appends s[0, n) to the buffer, keeping it NUL-terminated (memmem and strdup read it).
 * The text grows with the request's output (bounded by max_tokens) inside the engine step,
 * where no caller could recover: failure is fatal, by the out-of-memory policy
 * (include/pagoda/status.h). */
static void append(struct pgd__stop_text *t, const char *s, size_t n)
{
    if (!pgd__buf_append(&t->text, s, n))
        pgd__oom("stop strings: generated text", t->text.len + n + 1);
}

/* Length of the longest suffix of buf[from, len) that is a proper prefix of s: the bytes
 * that must be held back because the next delta may complete s. A full match is not
 * "proper" (k < slen): it was found by the search. */
static size_t partial_suffix(const char *buf, size_t from, size_t len, const char *s,
                             size_t slen)
{
    size_t max = slen - 1;
    if (max > len - from)
        max = len - from;
    for (size_t k = max; k > 0; k--)
        if (memcmp(buf + len - k, s, k) == 0)
            return k;
    return 0;
}

int pgd__stop_text_push(struct pgd__stop_text *t, const char *delta, size_t n,
                        const char *const *stops, int n_stops, bool check, bool include,
                        size_t *release)
{
    append(t, delta, n);
    int hit = -1;
    size_t hit_at = 0, hit_len = 0;
    size_t hold = 0;
    if (check) {
        for (int i = 0; i < n_stops; i++) {
            const char *s = stops[i];
            size_t sl = s ? strlen(s) : 0;
            if (sl == 0)
                continue;
            /* Only a match that ends in the new text is new; start the search sl - 1 bytes
             * before it (but not before text already released or scanned). */
            size_t from = t->text.len - n >= sl - 1 ? t->text.len - n - (sl - 1) : 0;
            if (from < t->scanned)
                from = t->scanned;
            const char *m = memmem(t->text.p + from, t->text.len - from, s, sl);
            /* The earliest start wins across stops (ties: the earlier stop, by the strict <),
             * as the text a client sees ends at the first stop string in it. */
            if (m) {
                size_t at = (size_t)(m - t->text.p);
                if (hit < 0 || at < hit_at) {
                    hit = i;
                    hit_at = at;
                    hit_len = sl;
                }
            }
        }
    }
    /* Even while matches are not checked (min_tokens), text that could begin a stop string
     * is held back, so that the stop string may still start there. */
    if (hit < 0)
        for (int i = 0; i < n_stops; i++) {
            size_t sl = stops[i] ? strlen(stops[i]) : 0;
            if (sl > 1) {
                size_t k = partial_suffix(t->text.p, t->released, t->text.len, stops[i], sl);
                if (k > hold)
                    hold = k;
            }
        }
    /* A match cuts the text at the stop string's start (or after it with include):
     * nothing after it is ever released. */
    if (hit >= 0) {
        t->text.len = hit_at + (include ? hit_len : 0);
        t->text.p[t->text.len] = '\0';
        hold = 0;
    }
    /* Release up to the held-back suffix. A cut never reaches before released (the search
     * starts at scanned, past every released byte); the guard keeps release monotonic. */
    size_t upto = t->text.len - hold;
    if (upto < t->released)
        upto = t->released;
    *release = upto - t->released;
    t->released = upto;
    /* Nothing that starts before the held-back suffix can still match. */
    t->scanned = t->text.len - hold;
    return hit;
}

size_t pgd__stop_text_flush(struct pgd__stop_text *t)
{
    size_t r = t->text.len - t->released;
    t->released = t->text.len;
    t->scanned = t->text.len;
    return r;
}

int pgd__stop_text_token(struct pgd__stop_text *t, const struct pgd__textio *tio, void *detok,
                         int32_t token, bool push, bool check, bool flush_detok, bool end,
                         const char *const *stops, int n_stops, bool include, size_t *from)
{
    const char *d = "";
    size_t dn = 0, rel;
    if (push)
        tio->detok_push(detok, token, &d, &dn);
    *from = t->released;
    const int hit = pgd__stop_text_push(t, d, dn, stops, n_stops, check, include, &rel);
    if (hit < 0 && flush_detok) {
        tio->detok_flush(detok, &d, &dn);
        pgd__stop_text_push(t, d, dn, NULL, 0, false, false, &rel);
    }
    if (hit >= 0 || end)
        pgd__stop_text_flush(t);
    return hit;
}
