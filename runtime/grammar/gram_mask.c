/* The token mask: the vocabulary's trie walked with a matcher's stacks.
 *
 * The trie is an array in preorder (gram_vocab.c). For node i at depth d the state of its
 * parent (depth d - 1) is fed node i's byte: when no stack survives, the whole subtree is
 * skipped (i = nend[i]); otherwise the tokens ending at i are allowed and the walk goes
 * on to i + 1, a child or a later sibling. The states of every depth sit back to back in
 * the matcher's scratch array and their stack entries in its arena, both used as stacks:
 * reaching depth d drops whatever depth d and deeper held before. */
#include "runtime/grammar/guide.h"
#include <stdlib.h>
#include <string.h>

struct level {
    size_t off, n;                  /* its stacks: m->scr[off, off + n) */
    struct pgd__gpart part;
    size_t mark;                    /* the arena's size once it was made */
};

static void set_bit(uint32_t *mask, int32_t t)
{
    mask[t >> 5] |= 1u << (t & 31);
}

void pgd__gmask_fill(struct pgd__gmatch *m, const struct pgd__vocab *v, const int32_t *end,
                     int n_end, uint32_t *mask)
{
    size_t words = pgd__mask_words(v->n);
    memset(mask, 0, words * sizeof *mask);
    struct level *lv = malloc(((size_t)v->max_depth + 1) * sizeof *lv);
    bool any = false;
    size_t base = m->n_nodes;
    if (lv && pgd__gmatch_scr_reserve(m, m->n_set + 1)) {
        memcpy(m->scr, m->set, m->n_set * sizeof *m->set);
        lv[0] = (struct level){ .off = 0, .n = m->n_set, .mark = base,
                                .part = { m->part_val, m->part_need, m->part_len } };
        for (uint32_t i = 0; i < v->n_nodes;) {
            int d = v->ndepth[i];
            struct level *up = &lv[d - 1];
            pgd__gmatch_release(m, up->mark);
            struct pgd__gpart part = up->part;
            size_t out = up->off + up->n;
            size_t k = pgd__gmatch_step(m, up->off, up->n, &part, v->nbyte[i], out);
            if (k == 0) {
                i = v->nend[i];
                continue;
            }
            lv[d] = (struct level){ .off = out, .n = k, .part = part, .mark = m->n_nodes };
            for (uint32_t j = 0; j < v->ntok_n[i]; j++)
                set_bit(mask, v->toks[v->ntok[i] + j]);
            any |= v->ntok_n[i] > 0;
            i++;
        }
    }
    pgd__gmatch_release(m, base);
    free(lv);
    if (pgd__gmatch_accepting(m) || !any)
        for (int i = 0; i < n_end; i++)
            if (end[i] >= 0 && end[i] < v->n)
                set_bit(mask, end[i]);
}
