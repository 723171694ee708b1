/* Internal: CUDA graphs of decode-only steps, a layer the runner uses (runner.c calls it; it
 * knows nothing of the runner). A step through the graphs reads as (see graph_step in
 * runner.c):
 *   1. pick a bucket   pgd__graphs_plan: is the step decode-only and covered, and which
 *                      padded batch size and context bucket it runs as;
 *   2. fill the padded batch   pgd__graphs_fill_batch: the batch at the graphs' fixed
 *                      addresses, copied to the device, and the forward context pointed
 *                      at it;
 *   3. capture or replay   the first step of a shape runs eagerly
 *                      (pgd__graphs_note_eager records the arena's fingerprint), the second
 *                      is captured (pgd__graphs_capture_begin, the forward pass,
 *                      pgd__graphs_capture_end), later ones replay (pgd__graphs_replay).
 * The runner runs the forward pass itself, between begin and end or eagerly. */
#ifndef PGD_RUNTIME_RUNNER_GRAPH_H
#define PGD_RUNTIME_RUNNER_GRAPH_H

#include "runtime/runner/fwd.h"
#include "runtime/runner/runner.h"
#include <stdbool.h>
#include <stdint.h>

struct pgd__graphs;
struct pgd_cuda_ctx;

/* What the graphs are sized for (the runner's limits and the model's shapes). */
struct pgd__graph_params {
    enum pgd_device device;          /* graphs exist on PGD_DEVICE_CUDA only */
    bool enforce_eager;              /* no graphs */
    int max_num_seqs;                /* the largest decode batch */
    int max_num_batched_tokens;      /* caps the largest batch too (one token a sequence) */
    int block_size;                  /* tokens per KV block */
    int max_position_embeddings;     /* the longest context (<= 0: 8192) */
    int vocab_size;                  /* logits per row; token ids are checked against it */
    /* Contexts longer than this run eagerly (<= 0: up to max_position_embeddings). */
    int max_seq_len_to_capture;
    /* The decode batch sizes (NULL or none: 1, 2, 4, ... up to the largest batch; one size
     * N: the same ladder up to N; several: those, sorted, each within the largest batch);
     * read by pgd__graphs_create only. */
    const int *cuda_graph_sizes;
    int n_cuda_graph_sizes;
};

/* Graphs are on for a CUDA device unless p->enforce_eager or the environment's
 * PAGODA_CUDA_GRAPHS=0 (or off, false); *out (owned by the caller, freed with
 * pgd__graphs_destroy) stays NULL when they are off, and always in a build without CUDA. */
enum pgd_status pgd__graphs_create(const struct pgd__graph_params *p, struct pgd__graphs **out,
                                   char *err, size_t errlen);
void pgd__graphs_destroy(struct pgd__graphs *g);
/* Decode steps that ran through graphs, and graphs captured (0, 0 for g NULL). */
void pgd__graphs_stats(const struct pgd__graphs *g, long *replays, int *captured);
/* The default batch ladder up to max_batch (>= 1) into sizes[cap] (cap >= 2), ascending,
 * max_batch last: 1, 2, 4, ... 64, 96, 128, 192, 256, 384, 512, 640, ... (above 64 rows a
 * padded batch holds at most 1.5x the rows it carries). Returns how many. */
int pgd__graphs_default_ladder(int max_batch, int *sizes, int cap);
/* The shapes a warm-up captures, i = 0, 1, ...: the context buckets in turn, each with every
 * batch size of the ladder. *batch gets shape i's batch size and *context_len the longest
 * context of its bucket that the model has positions for (a decode at position
 * context_len - 1 selects the bucket). False past the last shape (at once for g NULL). */
bool pgd__graphs_warmup_shape(const struct pgd__graphs *g, int i, int *batch,
                              int *context_len);

#ifdef PGD_HAVE_CUDA
/* Which captured shape a step runs as. */
struct pgd__graph_plan {
    int size_index;                  /* into the batch ladder */
    int batch;                       /* the padded batch size Bp (>= the step's sequences) */
    int bucket;                      /* the context bucket k: contexts up to 256 << k */
    int max_seq_len;                 /* C = 256 << k tokens */
    int width;                       /* block-table width C / block_size (rounded up) */
};

/* 1. Whether the step (every sequence one new token and one logits row) is one the graphs
 * cover, and its plan. False: run it eagerly. */
bool pgd__graphs_plan(const struct pgd__graphs *g, const struct pgd__step_seq *seqs, int n_seqs,
                      struct pgd__graph_plan *plan);
/* 2. Writes the padded batch of the plan (rows n_seqs .. batch - 1 are padding) into the
 * graphs' pinned buffer, queues its copy to the device on cuda's stream, and fills f's batch
 * fields (sizes and pointers; the caller sets the rest). Refuses a token id outside the
 * vocabulary. The step must have passed the runner's checks. */
enum pgd_status pgd__graphs_fill_batch(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                                       const struct pgd__step_seq *seqs, int n_seqs,
                                       struct pgd_cuda_ctx *cuda, struct pgd_fwd *f, char *err,
                                       size_t errlen);
/* Tensor parallelism: rank 0 sends the batch fill_batch wrote, the workers run the same
 * shape on it. pgd__graphs_plan_shape: the plan of ladder rung size_index and context bucket
 * `bucket` (false when g has no such shape). pgd__graphs_batch_host: the pinned host buffer
 * that holds the plan's padded batch and *bytes, its used length (what fill_batch wrote, and
 * where a worker receives it). pgd__graphs_upload_batch: the batch in that buffer copied to
 * the device on cuda's stream and f's batch fields pointed at it (fill_batch ends with it). */
bool pgd__graphs_plan_shape(const struct pgd__graphs *g, int size_index, int bucket,
                            struct pgd__graph_plan *plan);
/* Async steps: the pinned buffer the next fills write, turn 0 or 1 (the step in flight's
 * copy may still read the other); turn 1's is made by its first use. */
enum pgd_status pgd__graphs_host_turn(struct pgd__graphs *g, int turn, char *err,
                                      size_t errlen);
void *pgd__graphs_batch_host(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                             size_t *bytes);
enum pgd_status pgd__graphs_upload_batch(struct pgd__graphs *g,
                                         const struct pgd__graph_plan *plan,
                                         struct pgd_cuda_ctx *cuda, struct pgd_fwd *f, char *err,
                                         size_t errlen);
/* 3. The plan's shape ran eagerly once and this step should capture it. */
bool pgd__graphs_should_capture(const struct pgd__graphs *g, const struct pgd__graph_plan *plan);
/* Starts capturing cuda's stream (the forward pass the caller queues next is recorded, not
 * run). err gets the reason on failure. */
enum pgd_status pgd__graphs_capture_begin(struct pgd__graphs *g, struct pgd_cuda_ctx *cuda,
                                          char *err, size_t errlen);
/* Ends the capture begun above (aborts it when fwd_st, the forward pass's status, failed)
 * and keeps the graph when the arena handed out the addresses of the eager step
 * (fingerprint, logits: the arena's after the captured forward pass). When anything failed
 * (err says what, begin's failure included) the shape stays eager from now on, with a
 * warning; the step itself goes on either way. */
void pgd__graphs_capture_end(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                             struct pgd_cuda_ctx *cuda, enum pgd_status fwd_st,
                             uint64_t fingerprint, const float *logits, const char *why);
/* Whether the plan's shape has a graph to replay. */
bool pgd__graphs_captured(const struct pgd__graphs *g, const struct pgd__graph_plan *plan);
/* Launches the plan's graph on cuda's stream; *logits gets where it writes the [batch,
 * vocab] logits (arena memory, valid until the next step). */
enum pgd_status pgd__graphs_replay(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                                   struct pgd_cuda_ctx *cuda, const float **logits, char *err,
                                   size_t errlen);
/* After an eager forward pass of the plan's shape: the first one records the arena's
 * fingerprint and logits address for the capture to compare with. */
void pgd__graphs_note_eager(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                            uint64_t fingerprint, const float *logits);
/* Device memory [largest batch] for the argmax ids of a graph step (owned by g): a fixed
 * address outside the arena. */
int32_t *pgd__graphs_ids_dev(struct pgd__graphs *g);
#endif

#endif
