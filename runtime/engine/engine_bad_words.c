/* bad_words, as vLLM implements them (vllm/v1/sample/ops/bad_words.py): the words are
 * tokenized once at submit (pgd__bad_words_init); at each sampled position, a spelling's
 * last token is masked out when the tokens generated so far end with the rest of it (always
 * for a spelling of one token). The mask is the sampler's allowed-token bitmask, so the CPU
 * and GPU samplers apply it alike. */
#include "runtime/engine/bad_words.h"
#include <stdlib.h>
#include <string.h>

void pgd__bad_words_fini(struct pgd__bad_words *bw)
{
    free(bw->ids);
    free(bw->off);
    *bw = (struct pgd__bad_words){ 0 };
}

/* Appends ids[0..n) as one more spelling. */
static bool push_spelling(struct pgd__bad_words *bw, const int32_t *ids, int n, int *cap_ids,
                          int *cap_off)
{
    int at = bw->n ? bw->off[bw->n] : 0;
    if (at + n > *cap_ids) {
        int cap = 2 * (at + n);
        int32_t *p = realloc(bw->ids, (size_t)cap * sizeof *p);
        if (!p)
            return false;
        bw->ids = p;
        *cap_ids = cap;
    }
    if (bw->n + 2 > *cap_off) {
        int cap = 2 * (bw->n + 2);
        int *p = realloc(bw->off, (size_t)cap * sizeof *p);
        if (!p)
            return false;
        bw->off = p;
        *cap_off = cap;
    }
    memcpy(bw->ids + at, ids, (size_t)n * sizeof *ids);
    bw->off[bw->n] = at;
    bw->off[++bw->n] = at + n;
    return true;
}

enum pgd_status pgd__bad_words_init(struct pgd__bad_words *bw, const struct pgd__textio *tio,
                                    int vocab, const char *const *words, int n_words,
                                    char *err, size_t errlen)
{
    *bw = (struct pgd__bad_words){ 0 };
    int cap_ids = 0, cap_off = 0;
    for (int w = 0; w < n_words; w++) {
        const char *word = words[w] + strspn(words[w], " \t\n\r\f\v");
        if (!*word)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "sampling: bad_words[%d] is "
                            "empty or only whitespace", w);
        size_t len = strlen(word);
        char *spaced = malloc(len + 2);
        if (!spaced)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: bad_words: no memory");
        spaced[0] = ' ';
        memcpy(spaced + 1, word, len + 1);
        int32_t *plain = NULL, *sp = NULL;
        int n_plain = 0, n_sp = 0;
        char e2[256];
        enum pgd_status st = tio->encode(tio->ctx, word, false, &plain, &n_plain, e2, sizeof e2);
        if (st == PGD_OK)
            st = tio->encode(tio->ctx, spaced, false, &sp, &n_sp, e2, sizeof e2);
        free(spaced);
        if (st == PGD_OK && (n_plain <= 0 || n_sp <= 0))
            st = pgd_errf(e2, sizeof e2, PGD_ERR_INVALID_ARG, "it gives no tokens");
        for (int k = 0; st == PGD_OK && k < n_plain + n_sp; k++) {
            int32_t t = k < n_plain ? plain[k] : sp[k - n_plain];
            if (t < 0 || t >= vocab)
                st = pgd_errf(e2, sizeof e2, PGD_ERR_INVALID_ARG, "token %d is outside the "
                              "vocabulary [0, %d)", t, vocab);
        }
        bool ok = st == PGD_OK && push_spelling(bw, plain, n_plain, &cap_ids, &cap_off) &&
                  (n_sp != n_plain || sp[0] == plain[0] ||
                   push_spelling(bw, sp, n_sp, &cap_ids, &cap_off));
        free(plain);
        free(sp);
        if (st != PGD_OK)
            return pgd_errf(err, errlen, st, "sampling: bad_words[%d] \"%.64s\": %s", w,
                            words[w], e2);
        if (!ok)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: bad_words: no memory");
        if (bw->off[bw->n] > PGD__MAX_BAD_WORDS_TOKENS)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "sampling: bad_words: their "
                            "spellings are more than %d tokens (at bad_words[%d])",
                            PGD__MAX_BAD_WORDS_TOKENS, w);
    }
    return PGD_OK;
}

/* Whether spelling w bans its last token after out[0..n_out). */
static bool spelling_hits(const struct pgd__bad_words *bw, int w, const int32_t *out, int n_out)
{
    int prefix = bw->off[w + 1] - bw->off[w] - 1;
    return prefix <= n_out &&
           memcmp(out + n_out - prefix, bw->ids + bw->off[w], (size_t)prefix * sizeof *out) == 0;
}

bool pgd__bad_words_hit(const struct pgd__bad_words *bw, const int32_t *out, int n_out)
{
    for (int w = 0; w < bw->n; w++)
        if (spelling_hits(bw, w, out, n_out))
            return true;
    return false;
}

void pgd__bad_words_apply(const struct pgd__bad_words *bw, const int32_t *out, int n_out,
                          uint32_t *mask)
{
    for (int w = 0; w < bw->n; w++)
        if (spelling_hits(bw, w, out, n_out)) {
            int32_t t = bw->ids[bw->off[w + 1] - 1];
            mask[t >> 5] &= ~(1u << (t & 31));
        }
}
