/* The scheduler's KV headroom projection (scheduler.h: struct pgd__headroom): how many
 * blocks beyond those held now the admitted sequences will need at each of the next
 * headroom_steps steps, if each adds one token a step until its max_tokens and then
 * finishes. A sequence's curve: its missing prompt blocks at once, one more block every
 * block_size steps, and at its last token all its blocks back. The sum's peak, with a
 * candidate's curve added, must fit the free blocks for the candidate to be admitted.
 *
 * It is a projection: a sequence that ends early (EOS, a stop) frees its blocks sooner, so
 * the peak only overstates; prefix blocks shared between sequences are credited to each on
 * finishing, which may understate (preemption still catches that). */
#include "runtime/engine/scheduler.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

void pgd__headroom_fini(struct pgd__headroom *h)
{
    free(h->g);
    memset(h, 0, sizeof *h);
}

/* The step from which seq holds nothing: the one after its last token's, plus the lag when
 * steps overlap (its last token's step lands after that one is planned); at least 1. A
 * running sequence with nothing left to compute (async scheduling: its last token comes
 * from the step in flight) frees at 1 either way: that step lands before the step after
 * this plan is made. */
static int finish_step(const struct pgd__headroom *h, const struct pgd__seq *seq)
{
    int tf = seq->tokens_cap - seq->n_tokens;
    if (tf <= 0 || (seq->n_tokens > 0 && seq->n_computed >= seq->n_tokens))
        return 1;
    return (tf > 1 ? tf : 1) + h->lag;
}

/* seq's blocks beyond `held` at step t (held: its block-table entries after this step's
 * allocation), or minus what it holds once it finished. */
static long growth_at(const struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                      const struct pgd__seq *seq, int held, int t)
{
    if (t >= finish_step(h, seq))
        return -(long)(held - seq->kv.n_released);
    int need = pgd__kv_blocks_for(kv, seq->n_tokens + t) - held;
    return need > 0 ? need : 0;
}

void pgd__headroom_begin(struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                         struct pgd__seq *const *running, int n_running, int steps)
{
    h->steps = steps;
    pgd__array_reserve_or_oom(h->g, h->cap, (size_t)steps + 1, "scheduler: KV headroom");
    long *d = h->g;                 /* deltas first, summed in place below */
    memset(d, 0, ((size_t)steps + 1) * sizeof *d);
    int bs = kv->block_size;
    for (int i = 0; i < n_running; i++) {
        const struct pgd__seq *q = running[i];
        int held = q->kv.n_blocks, tf = finish_step(h, q);
        int covered = pgd__kv_blocks_for(kv, q->n_tokens);
        d[0] += growth_at(h, kv, q, held, 0);          /* its missing prompt blocks */
        if (covered < held)
            covered = held;
        /* One block more each time the token count passes a block's end. */
        for (long t = (long)covered * bs + 1 - q->n_tokens; t < tf && t <= steps; t += bs)
            d[t]++;
        if (tf <= steps)
            d[tf] += growth_at(h, kv, q, held, tf) - growth_at(h, kv, q, held, tf - 1);
    }
    for (int t = 1; t <= steps; t++)
        d[t] += d[t - 1];
}

long pgd__headroom_peak_with(const struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                             const struct pgd__seq *seq, int held)
{
    long peak = 0;
    for (int t = 0; t <= h->steps; t++) {
        long v = h->g[t] + growth_at(h, kv, seq, held, t);
        if (v > peak)
            peak = v;
    }
    return peak;
}

void pgd__headroom_add(struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                       const struct pgd__seq *seq, int held)
{
    for (int t = 0; t <= h->steps; t++)
        h->g[t] += growth_at(h, kv, seq, held, t);
}
