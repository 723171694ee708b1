/* Internal: what a step does with each of its logits rows, and the two places it is done.
 *
 * A step's logits rows (sum of the sequences' n_logits, in the order of the sequences) each
 * get a descriptor: a sampled row (a sequence's next token, optionally with the logprobs of
 * the raw logits), a prompt-logprobs row (the logprob, rank and top alternatives of a given
 * token: the prompt's next token), or a row with nothing to do. The host path samples them
 * with the CPU sampler (runtime/sample/sampler.c) from float32 rows; on a GPU the runner packs the
 * descriptors (pgd__sample_pack) into one small buffer for the sampling kernels of
 * kernels/cuda/sample.cu and turns their output back into results (pgd__sample_unpack), so
 * that only ids and logprobs cross to the host. */
#ifndef PGD_RUNTIME_SAMPLE_ROWS_H
#define PGD_RUNTIME_SAMPLE_ROWS_H

#include "runtime/sample/sampler.h"
#include "kernels/cuda/kernels.h"

#define PGD__MAX_TOP PGD_CUDA_MAX_TOP    /* 20: the API's max logprobs */

enum pgd__row_kind {
    PGD__ROW_SKIP = 0,                   /* nothing wanted from this row */
    PGD__ROW_SAMPLE,                     /* sample ctx's next token */
    PGD__ROW_TARGET,                     /* logprobs of `target` only (prompt logprobs) */
};

struct pgd__sample_row {
    enum pgd__row_kind kind;
    struct pgd__sample_ctx ctx;          /* SAMPLE: params, tokens, eos, seed, child */
    int32_t target;                      /* TARGET: the token in [0, vocab) */
    int n_top;                           /* top logprobs wanted (0..PGD__MAX_TOP); -1: no
                                            logprobs at all (TARGET rows: at least 0) */
    /* SAMPLE rows under async scheduling: ctx's last token is a placeholder (-1) for the
     * token the step before samples, which the backend puts into the step's batch at
     * index pending_at (the sequence's input there); the device's penalties count it. */
    bool pending;
    int32_t pending_at;
    /* SAMPLE rows under async scheduling: the allowed-token mask (ctx.allow: structured
     * output, bad words) comes after submit, once the step before has landed (the grammar
     * must take the pending token first); the backend samples the step only at its
     * submit_masks call (engine_backend.h). Until then ctx.allow is NULL. */
    bool allow_late;
};

struct pgd__sample_result {
    int32_t token;                       /* SAMPLE: the sampled token; else -1 */
    struct pgd_logprob chosen;           /* of token (SAMPLE) or target (TARGET) */
    struct pgd_logprob top[PGD__MAX_TOP];   /* [n_top], most likely first, ties by id */
};

/* A SAMPLE row's placeholder for its pending token (ctx.tokens' last entry, still -1: the
 * backend has the id at pending_at), or -1 when its context is whole. */
int pgd__sample_row_placeholder(const struct pgd__sample_row *r);

/* Whether the row is a sample that is the plain argmax of its raw logits: temperature 0,
 * no logprobs, no bias or penalty, no mask (not even a late one), min_tokens no longer
 * masking. */
bool pgd__sample_row_plain_greedy(const struct pgd__sample_row *r);

/* The host path: rows [n_rows] of logits [n_rows, vocab] (s->vocab wide) into res [n_rows];
 * scratch holds one row [vocab]. */
void pgd__sample_rows_host(struct pgd__sampler *s, float *scratch, const float *logits,
                           const struct pgd__sample_row *rows, int n_rows,
                           struct pgd__sample_result *res);

/* ---- packing for the device kernels ------------------------------------------------------
 * The packed buffer: struct pgd_cuda_sample_row [n_rows], then the int32 pool the rows
 * point into (see kernels.h): per row its masked ids (min_tokens: eos unless ignore_eos,
 * then stop_token_ids), its logit_bias pairs (id, float bits) in request order, its
 * penalty pairs (id, output count) for each distinct token of prompt + output (only when a
 * penalty is on; ids ascending), and its allowed-token bitmask [ceil(vocab / 32)] (only
 * for a row with structured output). */
struct pgd__sample_packer {
    int vocab;
    uint32_t *stamp;                     /* [vocab] row stamp for count / seen */
    int32_t *count;                      /* [vocab] output counts of the current row */
    uint32_t cur;
};
enum pgd_status pgd__sample_packer_init(struct pgd__sample_packer *pk, int vocab, char *err,
                                        size_t errlen);
void pgd__sample_packer_fini(struct pgd__sample_packer *pk);
/* Bytes the packed buffer of these rows needs at most (a multiple of 8), vocab wide. */
size_t pgd__sample_pack_bytes(const struct pgd__sample_row *rows, int n_rows, int vocab);
/* Packs into buf (pgd__sample_pack_bytes bytes, 8-aligned); *used receives the bytes
 * written. Fails (naming the row) on an out-of-range target or a vocab over
 * PGD_CUDA_SAMPLE_MAX_VOCAB. */
enum pgd_status pgd__sample_pack(struct pgd__sample_packer *pk, const struct pgd__sample_row *rows,
                                 int n_rows, void *buf, size_t *used, char *err, size_t errlen);
/* The kernels' output [n_rows] into results. */
void pgd__sample_unpack(const struct pgd_cuda_sample_out *out, const struct pgd__sample_row *rows,
                        int n_rows, struct pgd__sample_result *res);

#endif
