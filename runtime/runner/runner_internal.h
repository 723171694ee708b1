/* Internal to the runner's files (runner.c and runner_sample.c, the sampling layer it
 * uses): the runner's state. The CUDA graphs (runner_graph.h) and the flat batch (batch.h)
 * are layers below the runner and do not see it. */
#ifndef PGD_RUNTIME_RUNNER_INTERNAL_H
#define PGD_RUNTIME_RUNNER_INTERNAL_H

#include "runtime/runner/runner.h"
#include "runtime/model/model.h"
#include "runtime/runner/fwd.h"
#include "runtime/kv/swap_pool.h"

struct pgd__graphs;                    /* runner_graph.h */
struct pgd__pw;                        /* piecewise.h */
struct pgd__runner_sampling;           /* runner_sample.c */

struct pgd__runner {
    struct pgd__runner_params params;
    struct pgd__model *model;          /* owned */
    struct pgd__kv_cache kv;           /* owned memory */
    /* FP8 KV cache: the per-layer scales [n_layers] (owned; from the checkpoint, else 1.0),
     * copied into kv each time it is (re)made. NULL: the cache is in the compute dtype. */
    float *kv_k_scale, *kv_v_scale;
    struct pgd__arena arena;           /* owned */
    struct pgd_cuda_ctx *cuda;         /* owned; CUDA only */
    /* The model has FP8 linears on CUDA: norms at decode sizes leave their output's FP8
     * quantization for them (struct pgd_fwd's fp8_norms; off with PGD_CUDA_FP8_NORM_X=0). */
    bool fp8_norms;
    /* The model has act-order W4/W8 layers on CUDA: the act-order layer that read each
     * producer's output (a norm's, the attention's) of a forward ([gather_layers_cap], owned;
     * NULL when off, or with PGD_CUDA_WQ_NORM_GATHER=0): struct pgd_fwd's gather_layers. */
    const struct pgd_cuda_wq **gather_layers;
    int gather_layers_cap;

    /* The eager step's batch (see batch.h): meta_host, the host buffer this step writes, and
     * meta_dev, its device copy ([meta_cap] bytes each); on the CPU the two are one malloc'd
     * buffer. On a GPU meta_host is meta_pin[turn]: async steps take turns, since the copy
     * of the step in flight may still read the other. */
    char *meta_host, *meta_dev;
    char *meta_pin[2];                 /* owned, pinned (GPU) */
    size_t meta_cap;
    float *logits;                     /* [logits_cap, vocab] float32 host (pinned on CUDA) */
    int logits_cap;
    int32_t *greedy[2];                /* by turn: [greedy_cap[t]] argmax ids (pinned on CUDA) */
    int greedy_cap[2];
    /* Which of the host buffers that take turns (meta_pin, greedy, the graphs' batch, the
     * sampling rows and results) this step writes: flipped by each async submit. */
    int turn;
    struct pgd__runner_async *async;   /* runner_async.c's state; NULL until the first submit */
    bool submitting;                   /* inside pgd__runner_step_submit */
    /* The environment's PGD_CUDA_ASYNC_PENALTIES / _MASKS (on unless 0), read once at
     * creation, so that the engine (which asks when it is created) and the runner (which
     * makes its async state at the first submit) never disagree (runner_async.c). */
    bool env_async_penalties, env_async_masks;
    /* Pooling steps: the rows' hidden states as float32 [hidden_cap, hidden_size] (host),
     * and on a GPU their act-dtype copy from the device (pinned, hidden_raw_bytes). */
    float *hidden;
    int hidden_cap;
    void *hidden_raw;
    size_t hidden_raw_bytes;
    uint64_t step_id;
    size_t act_bytes;                  /* activation memory of the largest step */
    struct pgd__graphs *graphs;        /* owned; CUDA graphs of decode steps, NULL when off */
    /* Piecewise CUDA graphs of eager steps (piecewise.h; owned, NULL when off), and the
     * eager steps they left to the plain pass: past the largest size, short of room at the
     * arena's top (checked first, or met by a call). */
    struct pgd__pw *pw;
    long pw_big, pw_room, pw_nomem;
    struct pgd__runner_sampling *samp; /* owned; the sampling buffers */
    /* Tensor parallelism: rank 0 broadcasts each step once it serves (after the start-up
     * steps every rank runs by itself, the GPU's profiling step). */
    bool tp_serving;
    struct pgd__op_profile *prof;      /* owned; the per-op profile, NULL when off */
    struct pgd__runner_step_hook hook; /* pgd__runner_set_step_hook; zero when unset */
    struct pgd__op_profile *step_prof; /* borrowed; the hook's profile for the step running */
    /* Seconds the steps spent on the device's work as the host sees it: blocked waiting for
     * the GPU, or computing the forward pass on the CPU (pgd__runner_device_seconds). */
    double device_s;
    /* The host's own time of the steps by kind (pgd__runner_host_split): decode steps
     * through a CUDA graph, of which inside the replay call itself, and eager steps. */
    struct pgd__runner_host_split host_split;
    /* Preemption by swapping (runner_swap.c): the host swap space's memory (num_blocks 0:
     * none) and, on a GPU, its copy stream. */
    struct pgd__swap_mem swap;
    struct pgd_cuda_swap *cuda_swap;
};

/* runner_swap.c: frees the swap space (its copies finished first). */
void pgd__runner_swap_fini(struct pgd__runner *r);

/* runner.c: grows this turn's pinned argmax ids (r->greedy[r->turn]) to n; waits for the
 * GPU first when it must (a queued copy may still target the old buffer). */
enum pgd_status pgd__runner_greedy_reserve(struct pgd__runner *r, int n, char *err,
                                           size_t errlen);

/* runner_async.c: frees the async steps' state (NULL is fine). */
void pgd__runner_async_free(struct pgd__runner *r);
/* Reads PGD_CUDA_ASYNC_PENALTIES / _MASKS into the runner (at its creation). */
void pgd__runner_async_env(struct pgd__runner *r);
/* Inside a submit whose step has pending tokens: copies their (batch row, row of the step
 * before) pairs to the device and queues the kernel that puts the step before's sampled ids
 * into token_ids (the device batch, after its copy). A no-op otherwise. */
enum pgd_status pgd__runner_put_pending(struct pgd__runner *r, int32_t *token_ids, char *err,
                                        size_t errlen);
/* Inside a submit, after the forward pass left n_logits rows at logits (device): queues the
 * argmax (every row a plain greedy sample; into ids_dev, the arena when NULL) or the
 * sampling kernels, and the copy of their results into this turn's pinned buffers, and
 * records the step's event; nothing waits. */
enum pgd_status pgd__runner_finish_submit(struct pgd__runner *r, const float *logits,
                                          int n_logits, const struct pgd__sample_row *rows,
                                          int32_t *ids_dev, char *err, size_t errlen);

/* runner_sample.c: the sampling buffers (on a GPU: the kernels' scratch rows, allocated
 * here so that the KV cache sizing sees them; the packed rows and the results, pinned and
 * on the device), and sampling n_logits rows of logits (device memory on a GPU, r->logits
 * on the CPU) into res. */
/* runner.c: waits for the GPU's stream, the wait counted in r->device_s. */
enum pgd_status pgd__runner_wait_device(struct pgd__runner *r, char *err, size_t errlen);

enum pgd_status pgd__runner_sampling_init(struct pgd__runner *r, char *err, size_t errlen);
void pgd__runner_sampling_fini(struct pgd__runner *r);
enum pgd_status pgd__runner_sample(struct pgd__runner *r, const float *logits, int n_logits,
                                   const struct pgd__sample_row *rows,
                                   struct pgd__sample_result *res, char *err, size_t errlen);
#ifdef PGD_HAVE_CUDA
/* The GPU sampling in two halves (pgd__runner_sample is both, with the wait between):
 * enqueue packs the rows into turn's pinned buffer and queues the copy, the kernels and the
 * results' copy back into turn's pinned results; *ids / *stride get where the kernels left
 * the sampled ids on the device (int32s stride apart, valid until the next sampling).
 * batch_ids: the step's token ids on the device, where pending tokens were put (rows'
 * pending_at; NULL: the step has none). unpack reads turn's results, once the copy is
 * done. */
enum pgd_status pgd__runner_sample_enqueue(struct pgd__runner *r, const float *logits, int n,
                                           const struct pgd__sample_row *rows,
                                           const int32_t *batch_ids, int turn,
                                           const int32_t **ids, int *stride, char *err,
                                           size_t errlen);
void pgd__runner_sample_unpack(struct pgd__runner *r, int turn, const struct pgd__sample_row *rows,
                               int n, struct pgd__sample_result *res);
#endif

#endif
