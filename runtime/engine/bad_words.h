/* Internal: a request's bad_words (vLLM's semantics), tokenized at submit and applied to
 * each sampled row as a mask of the tokens it may not take (engine_bad_words.c). */
#ifndef PGD_RUNTIME_ENGINE_BAD_WORDS_H
#define PGD_RUNTIME_ENGINE_BAD_WORDS_H

#include "runtime/engine/textio.h"
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* vLLM's limits (per request): words, and tokens of all their spellings. */
#define PGD__MAX_BAD_WORDS 128
#define PGD__MAX_BAD_WORDS_TOKENS 1024

/* The token sequences of the banned spellings: spelling w is ids[off[w] .. off[w + 1]). */
struct pgd__bad_words {
    int32_t *ids;                   /* owned */
    int *off;                       /* [n + 1] owned */
    int n;                          /* spellings; 0: none */
};

/* Tokenizes words[0..n_words) as vLLM does (SamplingParams.update_from_tokenizer): each
 * word with its leading spaces cut, then once more after one space, the second spelling
 * kept when its token count is the same and its first token differs (a word in mid-text).
 * Errors name bad_words[i]. On failure bw holds what it had so far (for _fini). */
enum pgd_status pgd__bad_words_init(struct pgd__bad_words *bw, const struct pgd__textio *tio,
                                    int vocab, const char *const *words, int n_words,
                                    char *err, size_t errlen);
void pgd__bad_words_fini(struct pgd__bad_words *bw);

/* Whether some spelling bans a token after the generated tokens out[0..n_out): a spelling
 * of one token always does; a longer one when out ends with all its tokens but the last. */
bool pgd__bad_words_hit(const struct pgd__bad_words *bw, const int32_t *out, int n_out);
/* Clears in mask (bit t: token t allowed) every token banned after out[0..n_out). */
void pgd__bad_words_apply(const struct pgd__bad_words *bw, const int32_t *out, int n_out,
                          uint32_t *mask);

#endif
