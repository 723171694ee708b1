/* Internal: the n-gram proposer (prompt lookup decoding). The draft for a sequence is what
 * followed the most recent earlier occurrence of its last n tokens (the most recent with k
 * tokens after it, when one has), for the longest n in [min_n, max_n] that occurs earlier: in text that repeats itself (code edits, quoting the
 * prompt, structured output) the model is likely to continue as it did before. It needs no
 * model and costs O(len * max_n) a sequence. */
#ifndef PGD_RUNTIME_SPEC_NGRAM_H
#define PGD_RUNTIME_SPEC_NGRAM_H

#include <stdint.h>

/* Proposes up to k tokens to follow tokens[0, n) (the prompt and the output so far) into
 * out[k]; returns how many (0: no n-gram of the last min_n..max_n tokens occurs earlier).
 * The proposal is the tokens after the match, as many as exist before the end (they may
 * run into the suffix itself). */
int pgd__ngram_propose(const int32_t *tokens, int n, int min_n, int max_n, int k, int32_t *out);

#endif
