/* Internal: how the engine is put together, for pgd_engine_create, the tests and the
 * benchmarks. The engine runs any model backend (the model runner in production) and any
 * text path (the model's tokenizer) through these two small interfaces. The engine's own
 * state (struct pgd_engine, requests, streams) is in engine_internal.h, for the engine's
 * files only. */
#ifndef PGD_RUNTIME_ENGINE_BACKEND_H
#define PGD_RUNTIME_ENGINE_BACKEND_H

#include <pagoda/engine.h>
#include "runtime/runner/runner.h"
#include "runtime/sample/sample_rows.h"
#include "runtime/engine/textio.h"

/* The model as the engine sees it. */
struct pgd__engine_backend {
    void *ctx;                      /* owned; released by destroy */
    int num_blocks;                 /* KV blocks the backend's cache has */
    int block_size;                 /* tokens per block */
    int vocab_size;                 /* logits per row */
    int max_model_len;              /* the model's longest sequence */
    int sliding_window;             /* every layer's attention window; 0 = some layer sees all */
    const int32_t *eos_ids;         /* [n_eos], owned by ctx */
    int n_eos;
    /* One step: see pgd__runner_step (the logits stay the backend's until the next step). */
    enum pgd_status (*step)(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                            const float **logits, char *err, size_t errlen);
    /* Optional: the same step, sampled by the backend: rows [sum of n_logits] describe the
     * logits rows, res receives their tokens and logprobs (see pgd__runner_step_sample; on
     * a GPU the logits stay there). Without it the engine samples step's logits itself. */
    enum pgd_status (*step_sample)(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                   const struct pgd__sample_row *rows,
                                   struct pgd__sample_result *res, char *err, size_t errlen);
    /* Optional: step_sample split in two for async scheduling (see pgd__runner_step_submit
     * and _collect): submit queues the step and returns, collect hands back the oldest
     * uncollected step's results (*n_rows of them) into res. At most two steps are
     * uncollected; a step's sequences may carry pending tokens (struct pgd__step_seq),
     * the last submitted step's samples. Both or neither; without them an async engine
     * runs each step to its end when it submits it. */
    enum pgd_status (*submit)(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                              const struct pgd__sample_row *rows, char *err, size_t errlen);
    enum pgd_status (*collect)(void *ctx, struct pgd__sample_result *res, int *n_rows,
                               char *err, size_t errlen);
    /* With submit: its sampling counts a row's pending token (still on the device) in the
     * row's penalties (struct pgd__sample_row's pending_at), so that a step of penalised
     * samples need not wait for the step before to land. */
    bool submit_penalties;
    /* Optional, with submit: a submitted step whose rows include allow_late ones (struct
     * pgd__sample_row) samples only when this is called, after the step before it has
     * landed: by then the engine has set those rows' ctx.allow (the rows are still the
     * ones submit was given, borrowed until collect; the masks only for the call). The
     * engine calls it once after each such submit, before its next submit or collect.
     * Without it, a step with a mask to make waits for the step before to land. */
    enum pgd_status (*submit_masks)(void *ctx, char *err, size_t errlen);
    /* Optional: speculative decoding's draft model (method draft_model), a model of the
     * same vocabulary with a paged KV cache of its own over the same block ids (the same
     * num_blocks and block_size): one step of it, the greedy ids of its logits rows into
     * ids [sum of n_logits]. The engine keeps the draft's KV in step with the blocks. */
    enum pgd_status (*draft_step)(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                  int32_t *ids, char *err, size_t errlen);
    int draft_max_model_len;        /* the draft's longest sequence */
    /* Optional: a pooling step (embeddings): the same step without the LM head; *hidden gets
     * [sum of n_logits, hidden_size] float32 rows, the last hidden state after the model's
     * final norm (see pgd__runner_step_hidden; the backend's until the next step). Needed
     * by engines of task PGD_TASK_EMBED. */
    enum pgd_status (*step_hidden)(void *ctx, const struct pgd__step_seq *seqs, int n_seqs,
                                   const float **hidden, char *err, size_t errlen);
    int hidden_size;                /* floats per hidden row */
    /* Optional: seconds the backend's steps (its draft's too) have spent on the device's
     * work so far (see pgd__runner_device_seconds); each step's growth is its device time
     * in the engine's stats (step_device_s). */
    double (*device_seconds)(void *ctx);
    /* Optional: preemption by swapping. num_swap_blocks host blocks of kv_block_bytes (every
     * layer's K and V of one block); swap_blocks copies device block dev[i] to host block
     * host[i] (to_host) or back, for i < n, ordered after the steps before it and before
     * the steps after it (see pgd__runner_swap_blocks). Without it (or with no blocks)
     * every preemption recomputes. */
    int num_swap_blocks;
    uint64_t kv_block_bytes;
    enum pgd_status (*swap_blocks)(void *ctx, bool to_host, const int32_t *dev,
                                   const int32_t *host, int n, char *err, size_t errlen);
    void (*destroy)(void *ctx);
};

/* Creates an engine over a backend and (optionally, may be NULL) a text path, taking
 * ownership of both (even on failure). p's model_dir/plugin_path/device/num_blocks/
 * kv_cache_bytes/block_size are ignored: the backend already decided them. */
enum pgd_status pgd__engine_create_with(const struct pgd_engine_params *p,
                                        const struct pgd__engine_backend *backend,
                                        const struct pgd__textio *textio,
                                        struct pgd_engine **out, char *err, size_t errlen);

/* pgd_engine_create with the model runner's backend passed through wrap before the engine
 * takes it (wrap owns the backend it is given and returns the one to use). For tests: the
 * CPU runner behind a stand-in of the GPU's async step pair (tests/lib/async_pair.h). */
enum pgd_status pgd__engine_create_wrapped(const struct pgd_engine_params *p,
                                           struct pgd__engine_backend (*wrap)(
                                               struct pgd__engine_backend),
                                           struct pgd_engine **out, char *err, size_t errlen);

/* When on, the engine thread checks after every step that the block pool is consistent
 * and that each block's ref_count equals the number of live sequences listing it, and
 * aborts the process (PGD_ASSERT) if not. For tests. */
void pgd__engine_set_paranoid(struct pgd_engine *e, bool on);

/* The scheduler's KV-pressure policy from the next step on (struct pgd__sched_params:
 * headroom_steps, preempt_cheapest; the engine's defaults are PGD__SCHED_HEADROOM_STEPS_DEFAULT
 * and true). (0, false) is vLLM v1's rule. For tests and benchmarks that compare them. */
void pgd__engine_set_kv_policy(struct pgd_engine *e, int headroom_steps, bool preempt_cheapest);

/* On by default: every step goes through the backend's step_sample when it has one (on a
 * GPU: sampling on the device, only ids and logprobs come back; the plain argmax when every
 * row is a plain greedy sample). Off: always full logits to the host and the CPU sampler.
 * For tests that compare the two. pgd__engine_set_greedy_path is its old name. */
void pgd__engine_set_device_sampling(struct pgd_engine *e, bool on);
void pgd__engine_set_greedy_path(struct pgd_engine *e, bool on);
/* On by default: jump-forward appends the tokens a grammar forces without a model step
 * (engine_internal.h: pgd__jump_forward). Off: every token is sampled. For tests that
 * compare the two (the outputs are the same). */
void pgd__engine_set_jump_forward(struct pgd_engine *e, bool on);

/* On: the engine thread takes nothing new (requests, aborts) until it is turned off, which
 * wakes it; destroy still ends it. Between creation and the first submit, it makes every
 * request submitted while held start in the same step: for tests that compare runs bit for
 * bit where the backend's sums depend on which rows share a step (a GPU's GEMMs), and that
 * would otherwise race the engine thread for the first step. */
void pgd__engine_hold(struct pgd_engine *e, bool on);

/* Structured output's mask helpers from the next step on: n threads share a step's walks
 * of the vocabulary with the engine thread when it has PGD__MASK_PARALLEL_MIN or more (0:
 * the engine thread alone). The default is pgd__workers_default_threads(). For tests and
 * benchmarks that compare the two (the masks are the same). */
void pgd__engine_set_mask_threads(struct pgd_engine *e, int n);
/* How many times so far a step's masks were shared with the helpers (any thread). */
long pgd__engine_mask_shared_steps(const struct pgd_engine *e);

/* The backend's ctx (borrowed). */
void *pgd__engine_backend_ctx(const struct pgd_engine *e);
/* The model runner of an engine made by pgd_engine_create (borrowed; for the benchmarks'
 * model facts: weight bytes, shapes). */
const struct pgd__runner *pgd__engine_runner(const struct pgd_engine *e);
/* The same runner, writable: for a benchmark that sets its step hook between runs
 * (pgd__runner_set_step_hook). */
struct pgd__runner *pgd__engine_runner_mut(struct pgd_engine *e);

/* Tensor parallelism: *rank gets this process's rank in the mpirun group when
 * p->tensor_parallel_size > 1 (initializing MPI), else 0. Errors: a build without MPI. */
enum pgd_status pgd__engine_tp_rank(const struct pgd_engine_params *p, int *rank, char *err,
                                    size_t errlen);
/* Tensor parallelism, every rank but 0: loads this rank's shard as pgd_engine_create would
 * and runs rank 0's steps (pgd__runner_serve_worker) until rank 0's engine ends. */
enum pgd_status pgd__engine_serve_tp_worker(const struct pgd_engine_params *p, char *err,
                                            size_t errlen);

#endif
