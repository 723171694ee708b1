/* The flat batch of a step (see batch.h): the layout of its metadata buffer, filling it for
 * an eager step, and pointing a forward context at it. */
#include "runtime/runner/batch.h"
#include <string.h>

/* The int64 slot mapping comes first so that every array stays aligned to its element size
 * (the buffer itself is malloc'd or cudaMalloc'd, so suitably aligned). */
struct pgd__meta_layout pgd__meta_layout(int n_tokens, int n_seqs, int max_blocks)
{
    struct pgd__meta_layout L;
    size_t off = 0;
    L.slot_mapping = off;
    off += (size_t)n_tokens * sizeof(int64_t);
    L.token_ids = off;
    off += (size_t)n_tokens * sizeof(int32_t);
    L.positions = off;
    off += (size_t)n_tokens * sizeof(int32_t);
    /* At most one logits row per token. */
    L.logits_rows = off;
    off += (size_t)n_tokens * sizeof(int32_t);
    L.query_start = off;
    off += (size_t)(n_seqs + 1) * sizeof(int32_t);
    L.seq_lens = off;
    off += (size_t)n_seqs * sizeof(int32_t);
    L.block_tables = off;
    off += (size_t)n_seqs * max_blocks * sizeof(int32_t);
    L.total = off;
    return L;
}

struct pgd__batch pgd__batch_at(char *base, const struct pgd__meta_layout *L)
{
    return (struct pgd__batch){
        .slot_mapping = (int64_t *)(base + L->slot_mapping),
        .token_ids = (int32_t *)(base + L->token_ids),
        .positions = (int32_t *)(base + L->positions),
        .logits_rows = (int32_t *)(base + L->logits_rows),
        .query_start = (int32_t *)(base + L->query_start),
        .seq_lens = (int32_t *)(base + L->seq_lens),
        .block_tables = (int32_t *)(base + L->block_tables),
    };
}

int pgd__batch_fill(const struct pgd__batch *b, const struct pgd__step_seq *seqs, int n_seqs,
                    int block_size, int max_blocks)
{
    int t = 0, li = 0, max_len = 0;     /* t: the batch row; li: the logits row */
    for (int s = 0; s < n_seqs; s++) {
        const struct pgd__step_seq *q = &seqs[s];
        b->query_start[s] = t;
        b->seq_lens[s] = q->n_computed + q->n_new;
        if (b->seq_lens[s] > max_len)
            max_len = b->seq_lens[s];
        int32_t *row = b->block_tables + (size_t)s * max_blocks;
        memcpy(row, q->block_table, (size_t)q->n_blocks * sizeof *row);
        for (int k = q->n_blocks; k < max_blocks; k++)
            row[k] = 0;
        for (int i = 0; i < q->n_new; i++, t++) {
            int pos = q->n_computed + i;
            /* A pending token (an async step) is put in on the device after the copy. */
            b->token_ids[t] = q->pending && i == 0 ? 0 : q->tokens[i];
            b->positions[t] = pos;
            b->slot_mapping[t] = pgd__batch_slot(q->block_table, pos, block_size);
            /* The logits rows are the sequence's last n_logits new tokens. */
            if (i >= q->n_new - q->n_logits)
                b->logits_rows[li++] = t;
        }
    }
    b->query_start[n_seqs] = t;     /* the end of the last sequence */
    return max_len;
}

void pgd__batch_point_fwd(struct pgd_fwd *f, const char *dev, const struct pgd__meta_layout *L,
                          const struct pgd__batch *b)
{
    f->token_ids = (const int32_t *)(dev + L->token_ids);
    f->positions = (const int32_t *)(dev + L->positions);
    f->slot_mapping = (const int64_t *)(dev + L->slot_mapping);
    f->query_start = (const int32_t *)(dev + L->query_start);
    f->seq_lens = (const int32_t *)(dev + L->seq_lens);
    f->block_tables = (const int32_t *)(dev + L->block_tables);
    f->logits_rows = (const int32_t *)(dev + L->logits_rows);
    f->h_token_ids = b->token_ids;
    f->h_query_start = b->query_start;
    f->h_logits_rows = b->logits_rows;
    f->h_seq_lens = b->seq_lens;
}
