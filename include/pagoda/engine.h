/* The engine: what frontends use to generate text. It owns a model runner (created from the
 * model directory), a paged KV cache with prefix sharing and a continuous-batching
 * scheduler, and runs them on its own thread.
 *
 * Thread safety: every function here may be called from any thread, concurrently, except
 * that one stream must be read (pgd_stream_next) by one thread at a time, and
 * pgd_engine_destroy must not race with other calls on the same engine.
 *
 *   struct pgd_engine_params ep = pgd_engine_default_params();
 *   ep.model_dir = "models/tinyllama";
 *   pgd_engine_create(&ep, &eng, err, sizeof err);
 *   struct pgd_request_params rp = pgd_request_default_params();
 *   rp.prompt = "Once upon a time";  rp.sampling.max_tokens = 64;
 *   pgd_engine_submit(eng, &rp, &stream, err, sizeof err);
 *   struct pgd_output out;
 *   while (pgd_stream_next(stream, &out, -1) == PGD_OK)
 *       fwrite(out.text, 1, out.text_len, stdout);
 *   pgd_stream_destroy(stream);
 *   pgd_engine_destroy(eng);
 *
 * An engine made with ep.task = PGD_TASK_EMBED serves embeddings instead: each request's
 * stream has one output, whose out.embedding [out.n_embedding] is the prompt's pooled final
 * hidden state (ep.pooler_config, pgd_request_params.pooling).
 */
#ifndef PAGODA_ENGINE_H
#define PAGODA_ENGINE_H

#include <pagoda/status.h>
#include <pagoda/tensor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_engine;
struct pgd_stream;

/* The most proposals a speculative step may make a sequence (num_speculative_tokens). */
#define PGD_SPEC_MAX_TOKENS 16

/* What an engine serves (vLLM's --task, or --runner pooling --convert embed). */
enum pgd_task {
    PGD_TASK_GENERATE = 0,     /* text generation (default) */
    PGD_TASK_EMBED,            /* embeddings: pooling requests only (pgd_request_params.pooling):
                                  one forward pass over the prompt, no sampling */
};
/* "generate", "embed". */
const char *pgd_task_str(enum pgd_task t);

/* How a pooling request turns the prompt's last hidden states (after the model's final
 * norm) into one vector; vLLM's pooling_type. */
enum pgd_pooling_type {
    PGD_POOLING_NONE = 0,      /* not a pooling request: generation */
    PGD_POOLING_LAST,          /* the last prompt token's hidden state */
    PGD_POOLING_MEAN,          /* the mean over every prompt token's (no prefix cache) */
    PGD_POOLING_CLS,           /* the first prompt token's (no prefix cache) */
};
/* "NONE", "LAST", "MEAN", "CLS" (vLLM's spelling). */
const char *pgd_pooling_type_str(enum pgd_pooling_type t);
/* Reads vLLM's pooler config JSON (see pgd_engine_params.pooler_config; NULL or "": the
 * defaults) into *type and *normalize; PGD_ERR_INVALID_ARG with a message naming the key
 * otherwise. */
enum pgd_status pgd_pooler_config_parse(const char *json, enum pgd_pooling_type *type,
                                        bool *normalize, char *err, size_t errlen);

enum pgd_sched_policy {
    PGD_SCHED_FCFS = 0,        /* first come, first served; the newest is preempted first */
    PGD_SCHED_PRIORITY,        /* lowest `priority` value first, then arrival order */
};

/* How a sequence preempted for lack of KV blocks gives them up (vLLM v0's --preemption-mode). */
enum pgd_preemption_mode {
    PGD_PREEMPT_AUTO = 0,      /* swap a sequence with many computed tokens when the swap
                                  space has room, else recompute */
    PGD_PREEMPT_RECOMPUTE,     /* release its blocks; compute its tokens again later */
    PGD_PREEMPT_SWAP,          /* copy its blocks to host memory (swap_space) and back later;
                                  recompute only when the swap space is full */
};

struct pgd_engine_params {
    const char *model_dir;           /* the checkpoint: config.json, *.safetensors, tokenizer */
    const char *plugin_path;         /* extra plugin directories, colon-separated; may be NULL */
    enum pgd_device device;          /* default PGD_DEVICE_CPU */
    int block_size;                  /* tokens per KV block; default 16 */
    int num_blocks;                  /* KV blocks; 0 (default): from kv_cache_bytes */
    size_t kv_cache_bytes;           /* KV cache size when num_blocks is 0; default 256 MiB */
    int max_num_seqs;                /* most sequences in one step; default 256 */
    int max_num_batched_tokens;      /* per-step token budget; default 2048 */
    int max_model_len;               /* longest sequence; 0 (default): the model's limit */
    bool enable_prefix_caching;      /* default true */
    bool enable_chunked_prefill;     /* default true; when false a prompt is computed whole */
    /* With chunked prefill, the most tokens one request computes in a step (vLLM's
     * long_prefill_token_threshold); 0 (default): max_num_batched_tokens alone. */
    int long_prefill_token_threshold;
    enum pgd_sched_policy policy;    /* default PGD_SCHED_FCFS */
    uint64_t seed;                   /* seeds the per-request seeds of unseeded requests */
    /* GPU only. The compute dtype (PGD_DTYPE_BF16 or PGD_DTYPE_F16; default PGD_DTYPE_COUNT:
     * the checkpoint's, float32 read as bf16), and with num_blocks 0 the share of the card
     * the KV pool may fill after the weights and a profiling step's activations (default
     * 0.9; kv_cache_bytes is not used on a GPU). */
    enum pgd_dtype dtype;
    double gpu_memory_utilization;
    /* Benchmarks: read only model_dir's config.json and make random weights (from seed)
     * on the device; default false. */
    bool random_weights;
    /* GPU only: no CUDA graphs; every step runs its kernels one launch at a time (default
     * false: decode-only steps replay graphs captured per padded batch size; the
     * environment's PAGODA_CUDA_GRAPHS=0 also turns them off). */
    bool enforce_eager;
    /* Async scheduling (vLLM's --async-scheduling): the engine plans and queues step N + 1
     * before it handles step N's outputs, with step N's sampled tokens as placeholders
     * that the device fills, so that the GPU does not wait for the host between steps.
     * Outputs are the same as without it. A step whose requests need the previous token on
     * the host before their next step (structured output, bad words; on a GPU, until it
     * has run the kernel that counts the pending token, penalties) waits for it, and
     * speculative decoding and pooling engines step in turn. Default true, as
     * vLLM's (H200, 8B shape: +1.1% offline, +1.7% served ShareGPT, median TPOT -3% at 48
     * requests/s, at the cost of a step more before a new request's first token). */
    bool async_scheduling;
    /* Batch invariance (vLLM's VLLM_BATCH_INVARIANT=1): a request's outputs are the same
     * bits whatever it is batched with, so that a seeded request gives the same tokens
     * under any load. CPU device only (its linears then go a row at a time, slower on large
     * batches); pgd_engine_create refuses it on a GPU. Default false. */
    bool batch_invariant;
    /* A tokenizer.json that cannot be loaded is no error: the engine logs why (a warning)
     * and serves token ids only, as for a model directory without one (default false: the
     * create fails with the tokenizer's message). For callers that give token ids. */
    bool tokenizer_optional;
    /* The tokenizer's directory (tokenizer.json, tokenizer_config.json); NULL (default):
     * model_dir. */
    const char *tokenizer;
    /* > 0: the KV cache's size in bytes on any device, instead of gpu_memory_utilization on a
     * GPU and kv_cache_bytes on the CPU (vLLM's kv_cache_memory_bytes); default 0. */
    size_t kv_cache_memory_bytes;
    /* GPU graphs: the longest context a captured decode graph covers (longer contexts run
     * eagerly); default 8192. And the decode batch sizes captured (copied; NULL, the
     * default: 1, 2, 4, ... up to max_num_seqs; one size N: the same ladder up to N;
     * several: exactly those). Every graph is captured while pgd_engine_create runs. */
    int max_seq_len_to_capture;
    const int *cuda_graph_sizes;
    int n_cuda_graph_sizes;
    /* The value of the model_name label on every metric (copied); NULL (default): model_dir's
     * last part. */
    const char *model_name;
    /* Speculative decoding: vLLM's --speculative-config JSON, e.g. '{"method": "ngram",
     * "num_speculative_tokens": 4, "prompt_lookup_max": 4, "prompt_lookup_min": 2}'
     * (copied; checked by pgd_engine_create); NULL (default): off. */
    const char *speculative_config;
    /* Tensor parallelism (vLLM's tensor_parallel_size): the model split over this many
     * processes, one per rank (GPU), started by `mpirun -np N`; default 1. Every rank loads
     * its shard; rank 0's pgd_engine_create makes the engine (scheduler, sampling) and each
     * step is broadcast to the others, which run the worker loop of `pagoda serve` instead
     * (pgd_engine_create on them is refused). Needs a build with MPI (and NCCL on CUDA). */
    int tensor_parallel_size;
    /* vLLM's --quantization: the quantization method the weights are read with ("gptq",
     * "awq", "fp8": a quant plugin's name for it); NULL (default): the checkpoint's own
     * (config.json's quantization_config, quantize_config.json, quant_config.json). A
     * checkpoint quantized with another method is refused; "fp8" on a 16-bit checkpoint
     * quantizes its linear layers to FP8 at load. */
    const char *quantization;
    /* PGD_TASK_GENERATE (default) or PGD_TASK_EMBED: an embedding engine pools every
     * request and a generating one none (as vLLM's runners); embed does not combine with
     * speculative_config. */
    enum pgd_task task;
    /* Task embed: how requests that do not say are pooled, as vLLM's --pooler-config JSON:
     * '{"pooling_type": "MEAN", "normalize": false}' (pooling_type LAST (default), MEAN or
     * CLS; normalize default true; other keys are refused by name). Checked by
     * pgd_engine_create; NULL (default): LAST, normalized. */
    const char *pooler_config;
    /* vLLM's --kv-cache-dtype: NULL or "auto" (default): the KV cache in the compute dtype;
     * "fp8" or "fp8_e4m3": e4m3 bytes (half the bytes of bf16: twice the tokens in the same
     * memory) with a per-layer k_scale / v_scale read from the checkpoint (1.0 without).
     * Checked by pgd_engine_create ("fp8_e5m2" is refused). */
    const char *kv_cache_dtype;
    /* Preemption by swapping (vLLM v0's --swap-space and --preemption-mode): the host
     * memory for swapped-out KV blocks, in bytes (pinned on a GPU; at most what the KV pool
     * itself holds is allocated; default 4 GiB as vLLM's; 0: none, every preemption
     * recomputes; not used under tensor parallelism), and the mode (default
     * PGD_PREEMPT_AUTO). */
    size_t swap_space_bytes;
    enum pgd_preemption_mode preemption_mode;
};
struct pgd_engine_params pgd_engine_default_params(void);

struct pgd_logit_bias {
    int32_t token;
    float bias;                      /* added to the token's logit before sampling */
};

/* Sampling, named and defaulted as in vLLM's SamplingParams. */
enum pgd_guide_kind {
    PGD_GUIDE_NONE = 0,
    PGD_GUIDE_JSON_OBJECT,           /* any JSON object (guide unused) */
    PGD_GUIDE_JSON_SCHEMA,           /* guide: a JSON Schema document */
    PGD_GUIDE_REGEX,                 /* guide: a regular expression, matched in full */
    PGD_GUIDE_CHOICE,                /* guide: a JSON array of strings; the output is one */
    PGD_GUIDE_GRAMMAR,               /* guide: a GBNF/EBNF grammar, start symbol root */
};

struct pgd_sampling_params {
    int n;                           /* parallel samples of one prompt; default 1 */
    float temperature;               /* default 1.0; 0 = greedy */
    float top_p;                     /* (0, 1]; default 1.0 (off) */
    int top_k;                       /* 0 or -1 = off (default 0) */
    float min_p;                     /* [0, 1]; default 0 (off) */
    float presence_penalty;          /* [-2, 2]; default 0 */
    float frequency_penalty;         /* [-2, 2]; default 0 */
    float repetition_penalty;        /* > 0; default 1.0 (off) */
    bool has_seed;                   /* when true, `seed` makes the output reproducible */
    uint64_t seed;
    const char *const *stop;         /* [n_stop] stop strings (need a tokenizer); copied */
    int n_stop;
    const int32_t *stop_token_ids;   /* [n_stop_token_ids]; copied */
    int n_stop_token_ids;
    bool ignore_eos;                 /* default false */
    int max_tokens;                  /* default 16; < 0: up to max_model_len */
    int min_tokens;                  /* no stop before this many tokens; default 0 */
    int logprobs;                    /* top alternatives per generated token; -1 = none
                                        (default); 0 = the sampled token's only */
    int prompt_logprobs;             /* the same for prompt tokens; -1 = none (default) */
    bool include_stop_str_in_output; /* default false */
    bool skip_special_tokens;        /* default true */
    const struct pgd_logit_bias *logit_bias;   /* [n_logit_bias]; copied */
    int n_logit_bias;
    /* Structured output: the text generated must match `guide` (copied), read as
     * guide_kind says. Compiled at pgd_engine_submit (an invalid schema, regex or grammar
     * is refused there with a message saying what is wrong), cached by its text's hash,
     * and applied as a logits mask in the batched sampler. */
    enum pgd_guide_kind guide_kind;  /* default PGD_GUIDE_NONE */
    const char *guide;
    /* Words never to generate, as vLLM's bad_words (need a tokenizer; copied; at most 128
     * words): each is tokenized with its leading spaces cut and once more after one space
     * (kept when that spelling has as many tokens and starts with another one). A spelling
     * of one token is never sampled; of more, its last token is not sampled right after
     * the others (generated tokens only, not the prompt). */
    const char *const *bad_words;
    int n_bad_words;
};
struct pgd_sampling_params pgd_sampling_default_params(void);

struct pgd_request_params {
    const char *prompt;              /* text (needs the model's tokenizer), or NULL */
    const int32_t *prompt_ids;       /* [n_prompt_ids] token ids, used when prompt is NULL */
    int n_prompt_ids;
    bool add_special_tokens;         /* BOS etc. when tokenizing `prompt`; default true */
    struct pgd_sampling_params sampling;
    int priority;                    /* PGD_SCHED_PRIORITY: lower first; default 0 */
    const char *cache_salt;          /* prefix-cache isolation; may be NULL; copied */
    bool detokenize;                 /* produce text (needs a tokenizer); default true */
    /* On an engine of task PGD_TASK_EMBED every request is a pooling request: the prompt is
     * computed once, nothing is sampled (sampling is ignored but for n, which must be 1),
     * its KV blocks go back to the pool at once (a LAST request may still take and leave
     * prefix-cache hits), and the stream's one output carries the pooled vector
     * (pgd_output.embedding), divided by its L2 norm when normalized. pooling: how
     * (PGD_POOLING_NONE, the default: the engine's pooler_config; a generating engine
     * refuses any other); normalize: 1 or 0, or -1 (default) for the pooler_config's. */
    enum pgd_pooling_type pooling;
    int normalize;
};
struct pgd_request_params pgd_request_default_params(void);

enum pgd_finish_reason {
    PGD_FINISH_NONE = 0,             /* not finished */
    PGD_FINISH_STOP,                 /* EOS, a stop token or a stop string */
    PGD_FINISH_LENGTH,               /* max_tokens or max_model_len */
    PGD_FINISH_ABORT,                /* pgd_engine_abort, stream destroyed, engine destroyed */
    PGD_FINISH_ERROR,                /* the sample could not go on: pgd_output.error says why
                                        (a structured-output guide too ambiguous to follow) */
};
#define PGD_FINISH_N 5                   /* the reasons, PGD_FINISH_NONE included */
/* "stop", "length", "abort", "error" (NULL for PGD_FINISH_NONE). */
const char *pgd_finish_reason_str(enum pgd_finish_reason r);

struct pgd_logprob {
    int32_t token;
    float logprob;                   /* natural log of the model's probability (raw logits) */
    int32_t rank;                    /* 1 = the most likely token */
};
/* The logprob of one chosen token and the most likely alternatives at its position. */
struct pgd_token_logprobs {
    struct pgd_logprob chosen;
    const struct pgd_logprob *top;   /* [n_top], most likely first */
    int n_top;
};

/* One piece of a request's output stream. All pointers are owned by the stream and valid
 * until the next pgd_stream_next or pgd_stream_destroy on it. */
struct pgd_output {
    uint64_t request_id;
    int index;                       /* which of the n parallel samples (0..n-1) */
    const int32_t *token_ids;        /* [n_token_ids] new tokens */
    int n_token_ids;
    const char *text;                /* new text, NUL-terminated ("" without a tokenizer) */
    size_t text_len;
    const struct pgd_token_logprobs *logprobs;        /* [n_token_ids] or NULL */
    const struct pgd_token_logprobs *prompt_logprobs; /* [n_prompt_logprobs] or NULL: for
                                        prompt tokens 1.. (token 0 has none); sample 0's
                                        first output only */
    int n_prompt_logprobs;
    enum pgd_finish_reason finish_reason;   /* set on this sample's last output */
    const char *stop_reason;         /* the stop string that matched, or NULL */
    int32_t stop_token;              /* the EOS/stop token that ended it, or -1 */
    int prompt_tokens;               /* usage so far, for this sample */
    int completion_tokens;
    int cached_tokens;               /* prompt tokens served by the prefix cache */
    const float *embedding;          /* a pooling request's only output: [n_embedding] (the
                                        model's hidden_size); NULL otherwise */
    int n_embedding;
    const char *error;               /* PGD_FINISH_ERROR's last output: why the sample ended
                                        ("grammar: too ambiguous to follow: ..."), a request
                                        fault; NULL otherwise */
};

/* Creates an engine and starts its thread. *out is owned by the caller: pgd_engine_destroy. */
enum pgd_status pgd_engine_create(const struct pgd_engine_params *p, struct pgd_engine **out,
                                  char *err, size_t errlen);

/* Queues a request. Everything r points to is copied. Refuses, with a message, a request
 * that can never run: empty prompt, bad sampling values, prompt + max_tokens over
 * max_model_len, more KV blocks than the whole pool, text without a tokenizer, a token id
 * outside the vocabulary. *out (the request's output stream) is owned by the caller:
 * pgd_stream_destroy. */
enum pgd_status pgd_engine_submit(struct pgd_engine *e, const struct pgd_request_params *r,
                                  struct pgd_stream **out, char *err, size_t errlen);

/* The id the engine gave the stream's request (for pgd_engine_abort). */
uint64_t pgd_stream_request_id(const struct pgd_stream *s);

/* Waits up to timeout_ms (< 0: forever, 0: do not wait) for the next output. Returns PGD_OK
 * with *out filled, PGD_ERR_TIMEOUT, or PGD_ERR_CLOSED once every sample's last output
 * (the one with a finish_reason) has been read. */
enum pgd_status pgd_stream_next(struct pgd_stream *s, struct pgd_output *out, int timeout_ms);

/* Releases the stream; aborts its request when it has not finished. NULL is fine. */
void pgd_stream_destroy(struct pgd_stream *s);

/* Aborts a request: each unfinished sample ends with PGD_FINISH_ABORT. Unknown or finished
 * ids are ignored. */
void pgd_engine_abort(struct pgd_engine *e, uint64_t request_id);

/* Stops the engine thread, aborting what is left (their streams get their abort outputs
 * and stay readable until destroyed). NULL is fine. */
void pgd_engine_destroy(struct pgd_engine *e);

/* Whether the model directory had a tokenizer (text prompts, text output, stop strings). */
bool pgd_engine_has_tokenizer(const struct pgd_engine *e);
struct pgd_tokenizer;
/* The engine's tokenizer, or NULL without one. Borrowed: valid until pgd_engine_destroy;
 * tokenizers are immutable, so any thread may encode and decode with it. */
const struct pgd_tokenizer *pgd_engine_tokenizer(const struct pgd_engine *e);
/* The longest sequence (prompt + output) the engine accepts, and the model's vocabulary. */
int pgd_engine_max_model_len(const struct pgd_engine *e);
int pgd_engine_vocab_size(const struct pgd_engine *e);
/* What the engine serves, and the length of a pooled vector (the model's hidden size; 0
 * when the backend cannot pool). */
enum pgd_task pgd_engine_task(const struct pgd_engine *e);
int pgd_engine_hidden_size(const struct pgd_engine *e);
/* Task embed: the pooling of requests that do not choose (the pooler_config's). */
void pgd_engine_pooler(const struct pgd_engine *e, enum pgd_pooling_type *type,
                       bool *normalize);

/* A snapshot of the engine's counters. */
struct pgd_engine_stats {
    int num_requests_running;        /* sequences */
    int num_requests_waiting;
    double kv_cache_usage;           /* fraction of KV blocks in use, [0, 1] */
    int num_blocks;
    int block_size;
    uint64_t prefix_cache_queries;   /* prompt tokens looked up */
    uint64_t prefix_cache_hits;      /* of which found in the cache */
    uint64_t num_preemptions;
    uint64_t prompt_tokens;          /* prompt tokens of admitted requests */
    uint64_t prompt_tokens_computed; /* prompt tokens actually run through the model
                                        (excludes prefix hits, includes recomputation) */
    uint64_t generation_tokens;
    uint64_t num_steps;
    uint64_t requests_finished[PGD_FINISH_N];   /* by enum pgd_finish_reason */
    /* Speculative decoding (vLLM's spec_decode_* counters; all 0 when it is off). */
    int spec_num_speculative_tokens; /* k, the most proposals a step; 0: off */
    uint64_t spec_num_drafts;        /* verify runs: a sequence's proposals in one step */
    uint64_t spec_num_draft_tokens;  /* proposals verified */
    uint64_t spec_num_accepted_tokens;   /* of which accepted */
    uint64_t spec_num_accepted_tokens_per_pos[PGD_SPEC_MAX_TOKENS];  /* accepted at
                                        position i of a run (i < k) */
    /* Where the engine thread's steps spend their time (seconds, summed over the steps):
     * each step is schedule (speculative proposals and the scheduler) + prepare (the
     * model step's sequences and rows) + model (the model step: the batch's upload, the
     * forward pass's launches, the wait for the device, sampling) + output (the
     * scheduler's update, emitting tokens, retiring requests) = total. device_s is the part
     * spent on the device's work as the host sees it (blocked on the GPU, or computing the
     * forward pass on the CPU); total - device is the host's own work, which overlapping
     * the next step's host work with this step's GPU work ("async scheduling") could hide. */
    double step_total_s, step_schedule_s, step_prepare_s, step_model_s, step_output_s;
    double step_device_s;
    uint64_t step_timed;             /* steps in those sums (a step's times are added after
                                        its outputs, so it may trail num_steps by one) */
    uint64_t tokens_computed;        /* every token the steps ran through the model: prompt,
                                        generated, recomputed (and, async, the dropped row
                                        of a sample that ended while its step flew) */
    uint64_t num_steps_overlapped;   /* async scheduling: steps submitted while the step
                                        before them was still in flight */
    uint64_t num_steps_decode_only;  /* steps where every sequence computed one token, its
                                        last (what a CUDA graph can run); the rest carried
                                        prompt tokens (or proposals) and run eagerly */
    uint64_t num_tokens_recomputed;  /* tokens whose KV was computed again because a
                                        preemption dropped it (prefix hits excluded) */
    /* Preemption by swapping: sequences waiting in host memory now, sequences swapped out
     * and back in, and the bytes copied each way (num_preemptions counts both modes). */
    int num_requests_swapped;
    int num_swap_blocks;             /* host blocks of the swap space (0: none) */
    uint64_t num_swapped_out, num_swapped_in;
    uint64_t swap_out_bytes, swap_in_bytes;
    /* The timed steps (step_timed) split by kind: how many were decode-only (see
     * num_steps_decode_only: on a GPU, the steps a CUDA graph can run; the rest, step_timed
     * - step_timed_decode_only, are mixed: prompt tokens or proposals, run eagerly), and
     * each kind's wall seconds (its part of step_total_s) and device seconds (its part of
     * step_device_s). A step's kind and its times are added together. The mixed sums are
     * kept rather than taken as total - decode-only: a difference of two float sums can
     * step back by a rounding error, and /metrics' counters must never go down. */
    uint64_t step_timed_decode_only;
    double step_total_decode_only_s, step_total_mixed_s;
    double step_device_decode_only_s, step_device_mixed_s;
    /* Of step_output_s, the seconds spent handing the sampled tokens' outputs to their
     * streams (queueing each record and waking its reader): the part of the output phase
     * that grows with the running sequences whatever the detokenization costs. */
    double step_output_push_s;
};
void pgd_engine_get_stats(struct pgd_engine *e, struct pgd_engine_stats *out);

/* The engine's metrics in the Prometheus text exposition format (version 0.0.4), names
 * prefixed `pagoda:`. *text is malloc'd, NUL-terminated, owned by the caller (free()). */
enum pgd_status pgd_engine_metrics_text(struct pgd_engine *e, char **text, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
