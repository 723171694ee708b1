/* Internal: the flat batch of one step, as the forward pass reads it. Every array of the
 * batch (slot mapping, token ids, positions, logits rows, query starts, sequence lengths,
 * block tables) sits at an offset of one metadata buffer, so that a GPU step copies all of
 * it with one host-to-device transfer. Used by the runner (eager steps, laid out tightly for
 * the step's sizes) and by the CUDA graphs (runner_graph.c: laid out once for the largest
 * padded batch, so that the addresses a graph captured stay valid). */
#ifndef PGD_RUNTIME_BATCH_H
#define PGD_RUNTIME_BATCH_H

#include "runtime/runner/fwd.h"
#include "runtime/runner/runner.h"
#include <stddef.h>
#include <stdint.h>

/* Byte offsets of the batch arrays in a metadata buffer for a step of n_tokens tokens and
 * n_seqs sequences whose block tables are max_blocks wide; total is the buffer's size. */
struct pgd__meta_layout {
    size_t slot_mapping, token_ids, positions, logits_rows, query_start, seq_lens, block_tables;
    size_t total;
};
struct pgd__meta_layout pgd__meta_layout(int n_tokens, int n_seqs, int max_blocks);

/* The batch arrays inside one metadata buffer (host memory: the runner writes them there,
 * then copies the whole buffer to the device). Borrowed pointers into that buffer. */
struct pgd__batch {
    int64_t *slot_mapping;           /* [n_tokens] cache row of each token's K/V; -1: none */
    int32_t *token_ids;              /* [n_tokens] */
    int32_t *positions;              /* [n_tokens] position within its sequence */
    int32_t *logits_rows;            /* [n_logits] batch rows whose logits are wanted */
    int32_t *query_start;            /* [n_seqs + 1] first row of each sequence */
    int32_t *seq_lens;               /* [n_seqs] tokens in the cache after the step */
    int32_t *block_tables;           /* [n_seqs, width] */
};
/* The arrays of the buffer at base laid out as L. */
struct pgd__batch pgd__batch_at(char *base, const struct pgd__meta_layout *L);

/* The cache row (slot) of position pos of a sequence: the row of that position within its
 * block, in the block the sequence's table maps it to. */
static inline int64_t pgd__batch_slot(const int32_t *block_table, int pos, int block_size)
{
    return (int64_t)block_table[pos / block_size] * block_size + pos % block_size;
}

/* Fills b for the eager step of seqs (their new tokens one after another, in the order of
 * seqs; block tables max_blocks wide, padded with block 0); returns the longest sequence
 * length. The caller checked the step (runner.c's check_step). */
int pgd__batch_fill(const struct pgd__batch *b, const struct pgd__step_seq *seqs, int n_seqs,
                    int block_size, int max_blocks);

/* Points f's batch fields at the device copy of the buffer (dev, laid out as L) and its
 * host-side copies at b (the host buffer the arrays were written in). */
void pgd__batch_point_fwd(struct pgd_fwd *f, const char *dev, const struct pgd__meta_layout *L,
                          const struct pgd__batch *b);

#endif
