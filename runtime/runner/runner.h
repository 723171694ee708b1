/* Internal: the model runner. It owns a loaded model, its paged KV cache and the step's
 * buffers; each step it turns a list of sequences into one flat batch (token ids,
 * positions, slot mapping, block tables, which rows need logits), runs the architecture
 * plugin's forward pass and hands back the logits. It knows nothing of requests or
 * scheduling: the block tables come from the caller (the kv manager). */
#ifndef PGD_RUNTIME_RUNNER_H
#define PGD_RUNTIME_RUNNER_H

#include <pagoda/model.h>
#include <pagoda/registry.h>
#include <stdint.h>

struct pgd__runner;

struct pgd__runner_params {
    const char *model_dir;
    struct pgd_registry *registry;   /* borrowed; must outlive the runner */
    enum pgd_device device;
    int block_size;                  /* tokens per KV block (default 16) */
    int num_blocks;                  /* KV blocks in the pool; 0: from kv_cache_bytes */
    size_t kv_cache_bytes;           /* used when num_blocks == 0 */
    int max_num_batched_tokens;      /* the largest step (activation arena size) */
    int max_num_seqs;                /* the most sequences in a step */
    /* GPU only: when num_blocks == 0, the KV pool takes this fraction of the card's memory
     * minus the weights and the activations of a profiling step at max_num_batched_tokens
     * (default 0.9). */
    double gpu_memory_utilization;
    enum pgd_dtype dtype;            /* GPU compute dtype; PGD_DTYPE_COUNT = the checkpoint's */
    bool random_weights;             /* benchmark models: config.json only, random tensors */
    uint64_t seed;                   /* for random_weights */
    const char *quantization;        /* --quantization; NULL: the checkpoint's method */
    /* The KV cache's dtype: PGD_DTYPE_COUNT (default): the model's compute dtype;
     * PGD_DTYPE_F8_E4M3: e4m3 with the checkpoint's per-layer scales (1.0 without). */
    enum pgd_dtype kv_cache_dtype;
    /* GPU only: run every step eagerly. Otherwise (the default) decode-only steps (one new
     * token and one logits row per sequence) replay CUDA graphs captured per padded batch
     * size (1, 2, 4, ... 64, 96, 128, 192, 256, 384, ... up to max_num_seqs) and context-length bucket (256, 512, ... tokens);
     * the environment's PAGODA_CUDA_GRAPHS=0 turns them off as well. */
    bool enforce_eager;
    /* CPU only: batch-invariant linears (pgd_cpu_linear_invariant), so that a sequence's
     * logits are the same bits whatever it is batched with; refused on other devices.
     * Default false. */
    bool batch_invariant;
    /* > 0: the KV cache's size in bytes on any device, instead of gpu_memory_utilization
     * (GPU) and kv_cache_bytes (CPU); num_blocks still wins. Default 0. */
    size_t kv_cache_memory_bytes;
    /* The sequence length the engine serves (the concurrency the KV log line reports is at
     * it); 0 (default): the model's max_position_embeddings. */
    int max_model_len;
    /* GPU graphs: contexts longer than this run eagerly (0, the default: up to the model's
     * length); the decode batch sizes captured (NULL: the default ladder up to max_num_seqs; one
     * size N: the same up to N; several: those, sorted; borrowed for pgd__runner_create). */
    int max_seq_len_to_capture;
    const int *cuda_graph_sizes;
    int n_cuda_graph_sizes;
    /* Bytes a KV block costs elsewhere (a speculative draft model's cache over the same
     * block ids): counted with each block when the pool is sized from memory, so that both
     * caches fit the budget. Default 0. */
    size_t extra_block_bytes;
    /* Tensor parallelism (runtime/dist/comm.h; borrowed, must outlive the runner; NULL: the
     * whole model here). Every rank creates a runner over its shard; rank 0 is the one the
     * engine steps, and each of its steps first broadcasts the flat batch to the others,
     * which run pgd__runner_serve_worker. The ranks agree on the smallest KV pool. CUDA
     * graphs are off under tensor parallelism (they do not capture the collectives yet). */
    struct pgd__comm *comm;
};
void pgd__runner_default_params(struct pgd__runner_params *p);

/* Gives the runner a KV cache of num_blocks blocks instead of the one it has (whose
 * contents are dropped): a draft model's cache made to match its target's pool. Call it
 * before any graph is captured. */
enum pgd_status pgd__runner_set_num_blocks(struct pgd__runner *r, int num_blocks, char *err,
                                           size_t errlen);

/* GPU graphs: captures the graph of every (batch size, context bucket) of the decode ladder
 * now, with synthetic decode steps over block 0 (which must not hold a live sequence's KV:
 * call it before serving), instead of lazily during the first requests. Logs its progress
 * and the time it took. A no-op without graphs. */
enum pgd_status pgd__runner_capture_graphs(struct pgd__runner *r, char *err, size_t errlen);

/* One sequence in a step. Its tokens [n_computed, n_computed + n_new) are computed this
 * step; positions 0 .. n_computed - 1 are already in the cache. */
struct pgd__step_seq {
    const int32_t *tokens;           /* [n_new], the new tokens */
    int n_new;
    int n_computed;
    const int32_t *block_table;      /* block ids covering positions [0, n_computed + n_new);
                                        -1 for blocks before the first new position that a
                                        sliding window no longer reads */
    int n_blocks;
    int n_logits;                    /* logits for the last n_logits new tokens (0..n_new) */
    /* Async scheduling (pgd__runner_step_submit, a backend's submit; the other steps refuse
     * it): tokens[0] is a placeholder for a token the caller does not know yet, the one the
     * step submitted just before this one samples at its logits row pending_row; n_new is
     * then 1. */
    bool pending;
    int pending_row;
};

/* ---- preemption by swapping (runner_swap.c) ---- */
/* Gives the runner a host swap space of bytes (at most as many blocks as its KV pool has;
 * pinned memory on a GPU), replacing any it had; 0 bytes: none. PGD_ERR_UNSUPPORTED under
 * tensor parallelism (the other ranks' caches would need the same copies). */
enum pgd_status pgd__runner_swap_init(struct pgd__runner *r, size_t bytes, char *err,
                                      size_t errlen);
/* The host blocks of the swap space (0: none), and the bytes of one block (every layer's K
 * and V). */
int pgd__runner_num_swap_blocks(const struct pgd__runner *r);
size_t pgd__runner_kv_block_bytes(const struct pgd__runner *r);
/* Copies n KV blocks, every layer's K and V: device block dev_blocks[i] to host block
 * host_blocks[i] (to_host), or back. Ordered after the steps before and before the steps
 * after (on a GPU through events, asynchronously; see kv_manager.h for the ordering the
 * caller keeps). */
enum pgd_status pgd__runner_swap_blocks(struct pgd__runner *r, bool to_host,
                                        const int32_t *dev_blocks, const int32_t *host_blocks,
                                        int n, char *err, size_t errlen);

/* *out is the caller's (pgd__runner_destroy). p is copied; p->registry is borrowed. */
enum pgd_status pgd__runner_create(const struct pgd__runner_params *p, struct pgd__runner **out,
                                   char *err, size_t errlen);
void pgd__runner_destroy(struct pgd__runner *r);
/* The model's description and the model: borrowed, valid while the runner lives. */
const struct pgd_model_desc *pgd__runner_desc(const struct pgd__runner *r);
int pgd__runner_num_blocks(const struct pgd__runner *r);
int pgd__runner_block_size(const struct pgd__runner *r);
const struct pgd__model *pgd__runner_model(const struct pgd__runner *r);
/* The KV cache's element dtype (the compute dtype, or PGD_DTYPE_F8_E4M3). */
enum pgd_dtype pgd__runner_kv_dtype(const struct pgd__runner *r);
/* Bytes of activation memory the largest step needs (the profiling step's high water on a
 * GPU; 0 before any step on the CPU). */
size_t pgd__runner_activation_bytes(const struct pgd__runner *r);

/* How many decode steps ran through graphs, and how many graphs were captured. */
void pgd__runner_graph_stats(const struct pgd__runner *r, long *replays, int *captured);
/* The piecewise CUDA graphs of eager steps (runtime/runner/piecewise.h; on a GPU with
 * PGD_CUDA_PIECEWISE=1 at creation): steps replayed, token sizes captured, sizes left eager
 * after a failed capture. All 0 when off. */
void pgd__runner_piecewise_stats(const struct pgd__runner *r, long *replays, int *captured,
                                 int *eager);

/* The per-op time profile (runtime/runner/op_profile.h): on, every step runs eagerly (no
 * CUDA graph) with its ops timed, and waits for the device at its end; off (the default)
 * drops the profile. */
struct pgd__op_profile;
enum pgd_status pgd__runner_profile_ops(struct pgd__runner *r, bool on, char *err,
                                        size_t errlen);
/* The profile, NULL when off: borrowed, valid until it is turned off. */
struct pgd__op_profile *pgd__runner_op_profile(const struct pgd__runner *r);
/* A step hook, for benchmarks that look at a workload's own steps (`pagoda bench
 * throughput --profile-ops`): called on the thread that runs the steps, around each step
 * of pgd__runner_step*. profile (optional): the per-op profile to time this step's ops into
 * (the caller's; the step then runs eagerly, no CUDA graph), or NULL to run the step as it
 * would (ignored while pgd__runner_profile_ops is on). done (optional): after the step
 * (failed too), its wall time in the runner (the host's work plus its waits for the
 * device), the waits for the device within it (see pgd__runner_device_seconds) and whether
 * a CUDA graph ran it. Both cost nothing when unset. */
struct pgd__runner_step_info {
    int n_seqs, n_tokens;            /* sequences, and tokens computed (sum of n_new) */
    bool decode_only;                /* every sequence computes one token */
};
struct pgd__runner_step_hook {
    struct pgd__op_profile *(*profile)(void *arg, const struct pgd__runner_step_info *s);
    void (*done)(void *arg, const struct pgd__runner_step_info *s, double wall_s,
                 double device_s, bool graph);
    void *arg;                       /* borrowed; outlives the hook */
};
/* Sets the hook (copied; NULL clears it). Only while no step runs: through an engine,
 * between its runs (a request submitted afterwards orders it before the engine thread's
 * next step). */
void pgd__runner_set_step_hook(struct pgd__runner *r, const struct pgd__runner_step_hook *h);
/* Seconds all steps so far spent on the device's work as the host sees it: on a GPU the
 * time blocked waiting for it (the step's results, a buffer's reuse), on the CPU the time
 * computing the forward pass. The rest of a step's time is the host's own. */
double pgd__runner_device_seconds(const struct pgd__runner *r);
/* The host's own seconds (a step's time less its waits for the device) of the steps so far,
 * by kind: decode steps replayed (or captured) through a CUDA graph, and of those the graph
 * launch calls themselves; steps run eagerly (prefill, mixed, and anything the graphs do not
 * cover). Where a benchmark's host share comes from. */
struct pgd__runner_host_split {
    long graph_steps, eager_steps;
    double graph_host_s, replay_s, eager_host_s;
};
void pgd__runner_host_split(const struct pgd__runner *r, struct pgd__runner_host_split *out);
/* The runner's CUDA context (NULL on the CPU): borrowed, for the benchmarks' kernel facts
 * (the GEMM tunings). */
struct pgd_cuda_ctx;
struct pgd_cuda_ctx *pgd__runner_cuda(const struct pgd__runner *r);

/* Tensor parallelism, every rank but 0: runs the steps rank 0's runner broadcasts (the
 * forward pass over this rank's shard, taking part in its collectives) until rank 0's
 * runner is destroyed. A failed step ends the loop with its error: the group cannot go on
 * (rank 0's step failed too, or will wait; mpirun ends the job when a rank exits with an
 * error). PGD_ERR_INVALID_ARG on rank 0 or without a communicator. */
enum pgd_status pgd__runner_serve_worker(struct pgd__runner *r, char *err, size_t errlen);

/* The step functions read seqs (and the tokens and block tables they point to) during the
 * call only. */
/* Runs one step. *logits receives [sum of n_logits, vocab_size] float32 rows in the order
 * of seqs; owned by the runner, valid until the next step. */
enum pgd_status pgd__runner_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                 int n_seqs, const float **logits, char *err, size_t errlen);
/* The same step, greedy: tokens[i] receives the argmax of logits row i (computed on the GPU
 * there, and only the ids come back). tokens has sum of n_logits entries. */
enum pgd_status pgd__runner_step_greedy(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, int32_t *tokens, char *err, size_t errlen);
/* The same step for pooling (embeddings): no LM head; *hidden receives [sum of n_logits,
 * hidden_size] float32 rows, the model's last hidden state after its final norm at the
 * rows n_logits selects, in the order of seqs; owned by the runner, valid until the next
 * step. Always eager (no CUDA graph). */
enum pgd_status pgd__runner_step_hidden(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const float **hidden, char *err,
                                        size_t errlen);
/* The same step, sampled: rows [sum of n_logits] say what each logits row is for (see
 * runtime/sample/sample_rows.h) and res [sum of n_logits] receives the tokens and logprobs. On a GPU
 * the sampling kernels run on the device logits and only res comes back (when every row is
 * a plain greedy sample, only the argmax); on the CPU the CPU sampler runs on the rows. */
struct pgd__sample_row;
struct pgd__sample_result;
enum pgd_status pgd__runner_step_sample(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const struct pgd__sample_row *rows,
                                        struct pgd__sample_result *res, char *err,
                                        size_t errlen);

/* ---- async steps (runner_async.c) ----
 * The step pair behind the engine's async scheduling (vLLM's --async-scheduling), on one
 * GPU: submit queues a sampled step (as pgd__runner_step_sample: the batch's copy, the
 * forward pass or its graph, the sampling, the results' copy back) and returns without
 * waiting; collect waits for the oldest submitted step not yet collected and hands back its
 * results (res [sum of n_logits], *n_rows). At most two are uncollected: the caller plans
 * and submits step N + 1 while the device runs step N, and step N + 1's sequences may carry
 * step N's sampled tokens as pending (struct pgd__step_seq), which the device puts in. rows
 * (and what they point to) stay the caller's and must live until the step is collected.
 * The other step functions refuse to run while a step is uncollected. */
/* Whether this runner has the pair: on a GPU, not tensor parallel. */
bool pgd__runner_can_submit(const struct pgd__runner *r);
/* Whether its submitted steps' sampling counts a row's pending token in the row's penalties
 * (struct pgd__sample_row's pending_at): with the pair, unless the environment's
 * PGD_CUDA_ASYNC_PENALTIES was 0 when the runner was made (then a step with penalised rows
 * waits for the step before to land). */
bool pgd__runner_submit_penalties(const struct pgd__runner *r);
/* Whether a submitted step with allow_late rows (struct pgd__sample_row) may leave its
 * sampling for pgd__runner_step_submit_masks: with the pair, unless the environment's
 * PGD_CUDA_ASYNC_MASKS was 0 when the runner was made (then a step with a mask to make
 * waits for the step before to land). */
bool pgd__runner_submit_masks(const struct pgd__runner *r);
enum pgd_status pgd__runner_step_submit(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const struct pgd__sample_row *rows,
                                        char *err, size_t errlen);
/* The last submitted step had allow_late rows: only its forward pass was queued. Now that
 * the caller has set their masks (ctx.allow, in the rows submit was given), its sampling
 * and the copy of its results are queued (the masks are packed now: the caller may reuse
 * them once this returns). Must come before the next submit or collect. */
enum pgd_status pgd__runner_step_submit_masks(struct pgd__runner *r, char *err, size_t errlen);
enum pgd_status pgd__runner_step_collect(struct pgd__runner *r, struct pgd__sample_result *res,
                                         int *n_rows, char *err, size_t errlen);
/* Steps submitted and not yet collected (0..2). */
int pgd__runner_uncollected(const struct pgd__runner *r);

#endif
