/* Internal: speculative decoding's settings, parsed from vLLM's --speculative-config JSON.
 *
 *   {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4,
 *    "prompt_lookup_min": 2}
 *   {"model": "DIR", "num_speculative_tokens": 4}        (method draft_model)
 *
 * Keys as vLLM's SpeculativeConfig names them: method ("ngram", "draft_model"; with "model"
 * and no method, draft_model), model, num_speculative_tokens (required), prompt_lookup_max
 * and prompt_lookup_min (ngram: both default to 5, one given sets the other), and
 * disable_by_batch_size (no proposals in a step whose running sequences exceed it). Keys
 * vLLM has that change nothing here (draft_tensor_parallel_size 1, quantization null,
 * revision, max_model_len, disable_logprobs) are accepted; any other key is refused. */
#ifndef PGD_RUNTIME_SPEC_CONFIG_H
#define PGD_RUNTIME_SPEC_CONFIG_H

#include <pagoda/engine.h>
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>

#define PGD__SPEC_MAX_TOKENS PGD_SPEC_MAX_TOKENS   /* num_speculative_tokens at most */

enum pgd__spec_method {
    PGD__SPEC_OFF = 0,
    PGD__SPEC_NGRAM,                     /* prompt lookup over the sequence's own tokens */
    PGD__SPEC_DRAFT_MODEL,               /* a small model of the same tokenizer */
};

struct pgd__spec_config {
    enum pgd__spec_method method;
    int num_speculative_tokens;          /* k: proposals a step, 1..PGD__SPEC_MAX_TOKENS */
    int prompt_lookup_min, prompt_lookup_max;   /* ngram: the n-gram lengths tried */
    int disable_by_batch_size;           /* 0: never disabled */
    char model[1024];                    /* draft_model: the draft's directory */
};

/* Parses json (NULL or "" leaves speculation off) into *out. Errors (PGD_ERR_INVALID_ARG)
 * name the key and the value: "speculative_config: \"num_speculative_tokens\" = 0 is out
 * of range (1..16)". */
enum pgd_status pgd__spec_config_parse(const char *json, struct pgd__spec_config *out,
                                       char *err, size_t errlen);

/* "ngram", "draft_model" or "off". */
const char *pgd__spec_method_name(enum pgd__spec_method m);

#endif
