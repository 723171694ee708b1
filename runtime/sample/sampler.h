/* Internal: turning one row of logits into a token, as vLLM's v1 sampler does:
 *   0. structured output: tokens outside the row's allowed set (a bitmask from the
 *      grammar, runtime/grammar/guide.h) get -inf before anything else;
 *   1. logits processors: min_tokens (EOS and stop tokens masked while fewer than
 *      min_tokens were generated), logit_bias;
 *   2. penalties: repetition (prompt and output tokens: positive logits divided, negative
 *      ones multiplied), frequency and presence (output tokens only);
 *   3. temperature 0: argmax (lowest id on ties); otherwise logits / temperature, softmax,
 *      min_p (drop p < min_p * max p), top_k, then top_p over what is left (keep a token
 *      while the mass of strictly likelier kept tokens is below top_p), and one uniform
 *      draw through the remaining distribution, walking the kept tokens in id order (any
 *      fixed order samples exactly; id order lets the GPU find the draw with a prefix sum
 *      over the row instead of sorting it).
 * The draw comes from a counter-based generator (Philox4x32-10) keyed by the request's
 * seed and indexed by (sample index, output position): a seeded request gives the same
 * tokens whatever else shares its batch, and recomputation after preemption changes
 * nothing. Logprobs are those of the raw logits (before processors and temperature). */
#ifndef PGD_RUNTIME_SAMPLER_H
#define PGD_RUNTIME_SAMPLER_H

#include "runtime/sample/philox.h"
#include <pagoda/engine.h>

/* Scratch space for one vocabulary size; reused across rows (not thread-safe). */
struct pgd__sampler {
    int vocab;
    float *probs;       /* [vocab] */
    int32_t *cand;      /* [vocab] candidate token ids */
    int32_t *counts;    /* [vocab] output-token counts of the current row */
    uint32_t *stamp;    /* [vocab] row stamp for counts */
    uint8_t *seen;      /* [vocab] repetition-penalty marks */
    uint32_t cur;
};

/* qsort's comparator of token ids (int32), ascending. */
static inline int pgd__cmp_token_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

enum pgd_status pgd__sampler_init(struct pgd__sampler *s, int vocab, char *err, size_t errlen);
void pgd__sampler_fini(struct pgd__sampler *s);

/* What one row is sampled for: the sequence's tokens (prompt then output) and its eos. */
struct pgd__sample_ctx {
    const struct pgd_sampling_params *sp;
    const int32_t *tokens;      /* [n_prompt + n_out] */
    int n_prompt, n_out;
    const int32_t *eos;         /* [n_eos] end-of-sequence ids of the model */
    int n_eos;
    uint64_t seed;
    uint32_t child;
    const uint32_t *allow;      /* [ceil(vocab / 32)] bit t: token t allowed; NULL: all */
};

/* Processes logits [vocab] in place (steps 1-2 above) and returns the sampled token. */
int32_t pgd__sampler_sample(struct pgd__sampler *s, const struct pgd__sample_ctx *c,
                            float *logits);

/* Logprob and rank of `token` under raw logits [vocab], and the k most likely tokens in
 * top[0..k) (ties by lower id). */
void pgd__logprobs(const float *logits, int vocab, int32_t token, int k,
                   struct pgd_logprob *chosen, struct pgd_logprob *top);

#endif
