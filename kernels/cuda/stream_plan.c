/* The streaming GEMVs' split over the SMs: see stream_plan.h. */
#include "kernels/cuda/stream_plan.h"

#include <stdlib.h>
#include <string.h>

void pgd__stream_plan_first(int count, const int *tiles, int tpb, int first[4])
{
    first[0] = 0;
    for (int i = 0; i < 3; i++)
        first[i + 1] = first[i] + (i < count ? (tiles[i] + tpb - 1) / tpb : 0);
}

int pgd__stream_plan_rule_env(void)
{
    static int v = -2;
    if (v == -2) {
        const char *e = getenv("PGD_CUDA_STREAM_PLAN");
        v = !e ? -1 : !strcmp(e, "balance") ? 1 : !strcmp(e, "pow2") ? 0 : -1;
    }
    return v;
}

/* Candidate (ks, tpb) of s, evaluated into p: 0 where its blocks cannot be held at all
 * (shared memory past the block's limit or the SM's). */
static int plan_eval(const struct pgd_stream_shape *s, int ks, int tpb, struct pgd_stream_plan *p)
{
    const int w = ks * tpb;
    const size_t smem = s->smem_fixed + (size_t)tpb * s->smem_tile +
                        (ks > 1 ? (size_t)w * s->smem_warp_red : 0);
    if (smem > s->smem_block_max)
        return 0;
    int bsm = s->warps_sm / w;
    const size_t by_smem = s->smem_sm / (smem + s->smem_reserve);
    if ((size_t)bsm > by_smem)
        bsm = (int)by_smem;
    if (bsm < 1)
        return 0;
    p->ks = ks;
    p->tpb = tpb;
    p->warps = w;
    p->kpu = (s->chunks + ks - 1) / ks;
    p->blocks_sm = bsm;
    pgd__stream_plan_first(s->count, s->tiles, tpb, p->first);
    /* the hardware hands blocks out across the SMs first: the busiest SM holds
     * ceil(blocks / SMs) of them, in one wave or several */
    const long per_sm = ((long)p->first[3] + s->sms - 1) / s->sms;
    p->load = per_sm * tpb * s->chunks;
    p->smem = smem;
    return 1;
}

static int plan_waves(const struct pgd_stream_shape *s, const struct pgd_stream_plan *p)
{
    const long slots = (long)s->sms * p->blocks_sm;
    return (int)((p->first[3] + slots - 1) / slots);
}

/* Whether a is the better plan: one wave before several, then the busiest SM's chunks, the
 * longest slice, the larger block (fewer blocks staging x and scales). */
static int plan_better(const struct pgd_stream_shape *s, const struct pgd_stream_plan *a,
                       const struct pgd_stream_plan *b)
{
    const int wa = plan_waves(s, a) > 1, wb = plan_waves(s, b) > 1;
    if (wa != wb)
        return wa < wb;
    if (a->load != b->load)
        return a->load < b->load;
    if (a->kpu != b->kpu)
        return a->kpu < b->kpu;
    return a->warps > b->warps;
}

/* The pow2 rule: ks = max_warps, max_warps / 2, ..., 2, the first whose blocks (tpb =
 * max_warps / ks) fit on the chip at once (warps_sm / max_warps an SM), else 1; a larger ks
 * where the scale tables of max_warps / ks tiles leave no room. */
static int plan_pow2(const struct pgd_stream_shape *s, struct pgd_stream_plan *p)
{
    int ks = 1;
    const long slots = (long)s->sms * (s->warps_sm / s->max_warps);
    for (int k = s->max_warps; k > 1; k /= 2) {
        int first[4];
        pgd__stream_plan_first(s->count, s->tiles, s->max_warps / k, first);
        if (k <= s->chunks && first[3] <= slots) {
            ks = k;
            break;
        }
    }
    if (s->force_ks > 0 && s->force_ks <= s->chunks && s->max_warps % s->force_ks == 0)
        ks = s->force_ks;
    for (; ks <= s->max_warps; ks *= 2)
        if (plan_eval(s, ks, s->max_warps / ks, p))
            return 1;
    return 0;
}

int pgd__stream_plan_make(const struct pgd_stream_shape *s, struct pgd_stream_plan *p)
{
    if (!s->balance)
        return plan_pow2(s, p);
    int found = 0;
    struct pgd_stream_plan c;
    for (int ks = 1; ks <= s->max_warps && ks <= s->chunks; ks++) {
        if (s->force_ks > 0 && ks != s->force_ks)
            continue;
        if ((ks - 1) * ((s->chunks + ks - 1) / ks) >= s->chunks)
            continue;                /* a warp of each tile would have no chunk */
        for (int tpb = 1; ks * tpb <= s->max_warps; tpb++)
            if (plan_eval(s, ks, tpb, &c) && (!found || plan_better(s, &c, p))) {
                *p = c;
                found = 1;
            }
    }
    return found;
}
