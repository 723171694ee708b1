/* Internal: the rejection sampler of speculative decoding: which proposed tokens a verify
 * step keeps, so that the output has exactly the target model's distribution.
 *
 * The rule (Leviathan et al. 2023; Chen et al. 2023): a proposal x drawn from the draft's
 * distribution q is accepted with probability min(1, p(x) / q(x)) under the target's p;
 * on a rejection the token is drawn from the residual norm(max(0, p - q)) and the run
 * ends; when every proposal was accepted one more (the bonus) is drawn from p at the next
 * position. pgd__spec_reject_sample applies it to one position with explicit p and q.
 *
 * For the n-gram proposer q is a point mass at x: acceptance with probability p(x), and the
 * residual is p without x, renormalised. Drawing y from p and accepting exactly when y == x
 * (emitting y either way) has the same law: P(x) = p(x), and for y != x, P(y) = p(y) =
 * (1 - p(x)) * p(y) / (1 - p(x)). The engine verifies n-gram proposals that way: each
 * verify row is sampled by the ordinary sampler with the draw index of its output position,
 * so greedy rows accept while the argmax equals the proposal, and a seeded request gives
 * the very tokens it gives without speculation. pgd__spec_accepted counts the run. */
#ifndef PGD_RUNTIME_SPEC_REJECTION_H
#define PGD_RUNTIME_SPEC_REJECTION_H

#include <stdbool.h>
#include <stdint.h>

/* The verify rows of one sequence sampled sampled[0, n_sampled) (row j: the target's token
 * at the position of draft[j]); returns how many leading proposals draft[0, n_draft) they
 * accept: a = the first j with sampled[j] != draft[j], at most min(n_draft, n_sampled - 1).
 * The sequence then emits sampled[0, a + 1): the a accepted proposals (equal to the samples)
 * and the correction or bonus token sampled[a]. */
int pgd__spec_accepted(const int32_t *draft, int n_draft, const int32_t *sampled, int n_sampled);

/* One position of the general rule: target probabilities p [vocab] and draft probabilities
 * q [vocab] (each summing to 1), the proposal x (drawn from q), and two uniform draws in
 * [0, 1): u_accept decides acceptance, u_resample draws from the residual. scratch holds
 * [vocab] floats. Returns the emitted token; *accepted says whether it is x. */
int32_t pgd__spec_reject_sample(const float *p, const float *q, int vocab, int32_t x,
                                double u_accept, double u_resample, float *scratch,
                                bool *accepted);

#endif
