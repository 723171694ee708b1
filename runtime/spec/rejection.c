/* The rejection sampler's rules (see rejection.h). */
#include "runtime/spec/rejection.h"

int pgd__spec_accepted(const int32_t *draft, int n_draft, const int32_t *sampled, int n_sampled)
{
    int lim = n_sampled - 1 < n_draft ? n_sampled - 1 : n_draft, a = 0;
    while (a < lim && sampled[a] == draft[a])
        a++;
    return a;
}

/* A draw from the (unnormalised, non-negative) weights w [vocab] with u in [0, 1); the last
 * token with weight when rounding leaves u past the end. */
static int32_t draw(const float *w, int vocab, double u)
{
    double total = 0.0;
    for (int i = 0; i < vocab; i++)
        total += w[i];
    double acc = 0.0, at = u * total;
    int32_t last = -1;
    for (int i = 0; i < vocab; i++) {
        if (w[i] <= 0.0f)
            continue;
        acc += w[i];
        last = i;
        if (at < acc)
            return i;
    }
    return last;
}

int32_t pgd__spec_reject_sample(const float *p, const float *q, int vocab, int32_t x,
                                double u_accept, double u_resample, float *scratch,
                                bool *accepted)
{
    /* Accept with probability min(1, p(x) / q(x)); q(x) > 0 since x was drawn from q. */
    double px = p[x], qx = q[x];
    if (qx <= 0.0 || u_accept * qx < px) {
        *accepted = true;
        return x;
    }
    *accepted = false;
    bool any = false;
    for (int i = 0; i < vocab; i++) {
        float r = p[i] - q[i];
        scratch[i] = r > 0.0f ? r : 0.0f;
        any |= scratch[i] > 0.0f;
    }
    /* p == q to rounding: the residual is empty, and rejection had probability ~0; p is
     * then the right law. */
    return draw(any ? scratch : p, vocab, u_resample);
}
