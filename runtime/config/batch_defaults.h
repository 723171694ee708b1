/* Internal: max_num_seqs and max_num_batched_tokens chosen for the card when the user set
 * neither, as vLLM's EngineArgs.get_batch_defaults does (vllm/engine/arg_utils.py):
 *
 *   GPU with >= 70 GiB whose name does not contain "a100" (H100, H200, MI300X, ...):
 *       offline (vLLM's LLM class, `pagoda bench throughput`)  1024 seqs, 16384 tokens
 *       serving (vLLM's OpenAI server, `pagoda serve`)          1024 seqs,  8192 tokens
 *   any other GPU (A100s too: larger budgets measured slower there, vLLM PR #17885):
 *       offline 256 seqs, 8192 tokens; serving 256 seqs, 2048 tokens
 *   then max_num_seqs = min(max_num_seqs, max_num_batched_tokens), and without chunked
 *   prefill the token budget is at least max_model_len (a whole prompt in one step).
 * The CPU keeps pagoda's defaults (256 seqs, 2048 tokens). */
#ifndef PGD_RUNTIME_CONFIG_BATCH_DEFAULTS_H
#define PGD_RUNTIME_CONFIG_BATCH_DEFAULTS_H

#include <pagoda/engine.h>
#include <pagoda/tensor.h>
#include <stdbool.h>
#include <stddef.h>

enum pgd__usage_context {
    PGD__USAGE_OFFLINE,          /* vLLM's UsageContext.LLM_CLASS */
    PGD__USAGE_SERVER,           /* vLLM's UsageContext.OPENAI_API_SERVER */
};

struct pgd__batch_defaults {
    int max_num_seqs;
    int max_num_batched_tokens;
};

/* The defaults for a device of device_memory bytes named device_name (may be NULL; matched
 * without case) used as `usage` says; max_model_len (0: unknown) matters only without
 * chunked prefill. A pure function. */
struct pgd__batch_defaults pgd__batch_defaults_for(enum pgd_device device, size_t device_memory,
                                                   const char *device_name,
                                                   enum pgd__usage_context usage,
                                                   bool enable_chunked_prefill,
                                                   int max_model_len);

/* The card's total memory and name (cuda:0 of the process: --device cuda:N made card N the
 * only visible one) for pgd__batch_defaults_for; false without a GPU. */
bool pgd__batch_defaults_probe(size_t *device_memory, char *name, size_t namelen);

/* For a caller that builds engine params: when ep->device is a GPU, probes it and sets
 * ep->max_num_seqs (unless seqs_given) and ep->max_num_batched_tokens (unless tokens_given)
 * to pgd__batch_defaults_for's, logging what it chose and why. The CPU keeps ep's values. */
void pgd__batch_defaults_apply(struct pgd_engine_params *ep, bool seqs_given, bool tokens_given,
                               enum pgd__usage_context usage);

#endif
