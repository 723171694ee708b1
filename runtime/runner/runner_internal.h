/* Internal to the runner's files (runner.c, runner_graph.c): the runner's state and the
 * pieces of a step both of them use. */
#ifndef PGD_RUNTIME_RUNNER_INTERNAL_H
#define PGD_RUNTIME_RUNNER_INTERNAL_H

#include "runtime/runner/runner.h"
#include "runtime/model/model.h"
#include "runtime/runner/fwd.h"

struct pgd__graphs;                    /* runner_graph.c */
struct pgd__runner_sampling;           /* runner_sample.c */

/* What a step hands back after its forward pass: the argmax ids (greedy), or the rows'
 * sampling results (rows), or (neither) the logits rows in r->logits. */
struct pgd__step_want {
    int32_t *greedy;                   /* [n_logits] */
    const struct pgd__sample_row *rows;   /* [n_logits] */
    struct pgd__sample_result *res;    /* [n_logits] */
};

struct pgd__runner {
    struct pgd__runner_params params;
    struct pgd__model *model;          /* owned */
    struct pgd__kv_cache kv;           /* owned memory */
    struct pgd__arena arena;           /* owned */
    struct pgd_cuda_ctx *cuda;         /* owned; CUDA only */

    /* The step's batch (see struct pgd__meta_layout); meta_dev == meta_host on the CPU. */
    char *meta_host, *meta_dev;        /* owned; [meta_cap] bytes */
    size_t meta_cap;
    float *logits;                     /* [logits_cap, vocab] float32 host (pinned on CUDA) */
    int logits_cap;
    int32_t *greedy;                   /* [greedy_cap] host (pinned on CUDA) */
    int greedy_cap;
    uint64_t step_id;
    size_t act_bytes;                  /* activation memory of the largest step */
    struct pgd__graphs *graphs;        /* owned; CUDA graphs of decode steps, NULL when off */
    struct pgd__runner_sampling *samp; /* owned; the sampling buffers */
};

/* Byte offsets of the batch arrays in a metadata buffer for a step's sizes. */
struct pgd__meta_layout {
    size_t slot_mapping, token_ids, positions, logits_rows, query_start, seq_lens, block_tables;
    size_t total;
};
struct pgd__meta_layout pgd__meta_layout(int n_tokens, int n_seqs, int max_blocks);

/* Checks a step against the runner's limits and the pool, grows the host logits rows;
 * returns its token and logits-row counts and its widest block table. */
enum pgd_status pgd__runner_check_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                       int n_seqs, int *n_tokens, int *n_logits,
                                       int *max_blocks, char *err, size_t errlen);
/* After a forward pass that left n_logits float32 rows at logits (device memory on a GPU):
 * what `want` asks for (argmax ids are computed into ids_dev [n_logits] on the GPU, or the
 * arena when ids_dev is NULL; rows are sampled through runner_sample.c; else the rows go to
 * r->logits); waits for the GPU. */
enum pgd_status pgd__runner_finish(struct pgd__runner *r, const float *logits, int n_logits,
                                   const struct pgd__step_want *want, int32_t *ids_dev,
                                   char *err, size_t errlen);

/* runner_sample.c: the sampling buffers (on a GPU: the kernels' scratch rows, allocated
 * here so that the KV cache sizing sees them; the packed rows and the results, pinned and
 * on the device), and sampling n_logits rows of logits (device memory on a GPU, r->logits
 * on the CPU) into res. */
enum pgd_status pgd__runner_sampling_init(struct pgd__runner *r, char *err, size_t errlen);
void pgd__runner_sampling_fini(struct pgd__runner *r);
enum pgd_status pgd__runner_sample(struct pgd__runner *r, const float *logits, int n_logits,
                                   const struct pgd__sample_row *rows,
                                   struct pgd__sample_result *res, char *err, size_t errlen);

/* runner_graph.c. Graphs are on for a CUDA runner unless params.enforce_eager or the
 * environment's PAGODA_CUDA_GRAPHS=0; *out stays NULL when they are off. */
enum pgd_status pgd__graphs_create(struct pgd__runner *r, struct pgd__graphs **out, char *err,
                                   size_t errlen);
void pgd__graphs_destroy(struct pgd__graphs *g);
/* Runs the step through a graph when it is a decode-only step the graphs cover: returns
 * true with *st its status, or false (nothing done) for the caller to run it eagerly. */
bool pgd__graphs_step(struct pgd__runner *r, const struct pgd__step_seq *seqs, int n_seqs,
                      const struct pgd__step_want *want, enum pgd_status *st, char *err,
                      size_t errlen);

#endif
