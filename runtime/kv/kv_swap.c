/* Swapping a sequence's KV blocks to the host swap pool and back (see kv_manager.h): the
 * block tables' side of preemption by swapping. The copies themselves are the backend's
 * (the runner's pgd__runner_swap_blocks); this file only decides which block goes where. */
#include "runtime/kv/kv_manager.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

void pgd__swap_list_fini(struct pgd__swap_list *l)
{
    free(l->dev);
    free(l->host);
    memset(l, 0, sizeof *l);
}

/* Appends the pair (dev, host) to l. */
static void list_push(struct pgd__swap_list *l, int32_t dev, int32_t host)
{
    pgd__array_reserve_or_oom(l->dev, l->dev_cap, (size_t)l->n + 1, "kv swap: copy list");
    pgd__array_reserve_or_oom(l->host, l->host_cap, (size_t)l->n + 1, "kv swap: copy list");
    l->dev[l->n] = dev;
    l->host[l->n] = host;
    l->n++;
}

bool pgd__kv_can_swap_out(const struct pgd__kv_manager *m, const struct pgd__kv_seq *s,
                          int n_tokens)
{
    int n = pgd__kv_blocks_for(m, n_tokens);
    return n_tokens > 0 && n <= s->n_blocks && s->n_released == 0 && s->n_swap_blocks == 0 &&
           n <= pgd__swap_pool_num_free(&m->swap);
}

void pgd__kv_swap_out(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_tokens,
                      struct pgd__swap_list *out)
{
    PGD_ASSERT(pgd__kv_can_swap_out(m, s, n_tokens));
    int n = pgd__kv_blocks_for(m, n_tokens);
    pgd__array_reserve_or_oom(s->swap_blocks, s->swap_cap, (size_t)n, "kv swap: host blocks");
    bool ok = pgd__swap_pool_alloc(&m->swap, n, s->swap_blocks);
    PGD_ASSERT(ok);
    s->n_swap_blocks = n;
    for (int i = 0; i < n; i++)
        list_push(out, s->blocks[i], s->swap_blocks[i]);
    /* Its references only: a block shared with another sequence (a prefix hit, a parallel
     * sample's prompt) stays theirs, and is copied to the host all the same. */
    pgd__kv_free(m, s);
}

bool pgd__kv_swap_in(struct pgd__kv_manager *m, struct pgd__kv_seq *s, int n_total,
                     struct pgd__swap_list *in)
{
    PGD_ASSERT(s->n_blocks == 0 && s->n_swap_blocks > 0 &&
               pgd__kv_blocks_for(m, n_total) >= s->n_swap_blocks);
    if (!pgd__kv_allocate_slots(m, s, n_total, NULL, 0))
        return false;
    for (int i = 0; i < s->n_swap_blocks; i++)
        list_push(in, s->blocks[i], s->swap_blocks[i]);
    pgd__kv_swap_drop(m, s);
    return true;
}

void pgd__kv_swap_drop(struct pgd__kv_manager *m, struct pgd__kv_seq *s)
{
    pgd__swap_pool_free(&m->swap, s->swap_blocks, s->n_swap_blocks);
    s->n_swap_blocks = 0;
}
