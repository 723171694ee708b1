/* Every request field of vLLM's ChatCompletionRequest, CompletionRequest and ResponsesRequest
 * (vllm/entrypoints/openai/protocol.py) and the OpenAI-only ones, with what pagoda does with
 * each:
 *
 *   honoured  read by request.c / guide.c / responses.c and acted on
 *   refused   a 400 naming the field when it is set to anything but its default (pagoda
 *             cannot do it, and silently not doing it would give a wrong answer)
 *   ignored   accepted; one warning per request lists these with the unknown fields (vLLM
 *             logs "fields were present in the request but ignored" the same way)
 *
 * A field not in the table is unknown: it is logged with the ignored ones. */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/log.h>
#include <string.h>

enum disposition { HONOURED, REFUSED, IGNORED };

/* What "the default" is for a refused field: any other value is refused. */
enum dflt {
    D_NULL,                        /* null (or absent) */
    D_FALSE,                       /* false or null */
    D_TRUE,                        /* true or null */
    D_ONE,                         /* 1.0 or null */
    D_EMPTY,                       /* null, [] or {} */
};

#define CMPL (1u << OAI_API_COMPLETIONS)
#define CHAT (1u << OAI_API_CHAT)
#define RESP (1u << OAI_API_RESPONSES)
#define BOTH (CMPL | CHAT)
#define ALL (CMPL | CHAT | RESP)

struct field {
    const char *name;
    unsigned apis;
    enum disposition d;
    enum dflt dflt;                /* refused fields */
    const char *why;               /* refused fields: the end of the 400's message */
};

static const struct field fields[] = {
    /* OpenAI's own fields */
    { "model", ALL, HONOURED, 0, NULL },
    { "messages", CHAT, HONOURED, 0, NULL },
    { "prompt", CMPL, HONOURED, 0, NULL },
    { "frequency_penalty", BOTH, HONOURED, 0, NULL },
    { "presence_penalty", BOTH, HONOURED, 0, NULL },
    { "logit_bias", BOTH, HONOURED, 0, NULL },
    { "logprobs", BOTH, HONOURED, 0, NULL },
    { "top_logprobs", CHAT, HONOURED, 0, NULL },
    { "max_tokens", BOTH, HONOURED, 0, NULL },
    { "max_completion_tokens", CHAT, HONOURED, 0, NULL },
    { "n", BOTH, HONOURED, 0, NULL },
    { "best_of", BOTH, HONOURED, 0, NULL },
    { "echo", BOTH, HONOURED, 0, NULL },
    { "response_format", BOTH, HONOURED, 0, NULL },
    { "seed", BOTH, HONOURED, 0, NULL },
    { "stop", BOTH, HONOURED, 0, NULL },
    { "stream", ALL, HONOURED, 0, NULL },
    { "stream_options", BOTH, HONOURED, 0, NULL },
    { "temperature", ALL, HONOURED, 0, NULL },
    { "top_p", ALL, HONOURED, 0, NULL },
    { "tools", CHAT | RESP, HONOURED, 0, NULL },
    { "tool_choice", CHAT | RESP, HONOURED, 0, NULL },
    { "parallel_tool_calls", CHAT | RESP, HONOURED, 0, NULL },
    { "suffix", CMPL, REFUSED, D_NULL, "suffix is not currently supported (this model has no "
      "fill-in-the-middle template)" },
    { "prompt_embeds", CMPL, REFUSED, D_NULL, "prompt embeddings are not supported" },
    { "functions", CHAT, REFUSED, D_EMPTY, "the deprecated 'functions' API is not supported: "
      "use 'tools'" },
    { "function_call", CHAT, REFUSED, D_NULL, "the deprecated 'function_call' API is not "
      "supported: use 'tool_choice'" },
    { "audio", CHAT, REFUSED, D_NULL, "audio output is not supported" },
    { "user", ALL, IGNORED, 0, NULL },
    { "store", ALL, IGNORED, 0, NULL },
    { "metadata", ALL, IGNORED, 0, NULL },
    { "service_tier", ALL, IGNORED, 0, NULL },
    { "modalities", CHAT, IGNORED, 0, NULL },
    { "prediction", CHAT, IGNORED, 0, NULL },
    { "web_search_options", CHAT, IGNORED, 0, NULL },
    { "reasoning_effort", CHAT, IGNORED, 0, NULL },
    { "verbosity", CHAT, IGNORED, 0, NULL },
    { "prompt_cache_key", ALL, IGNORED, 0, NULL },
    { "safety_identifier", ALL, IGNORED, 0, NULL },
    /* vLLM's sampling extras */
    { "use_beam_search", BOTH, REFUSED, D_FALSE, "beam search is not supported" },
    { "length_penalty", BOTH, REFUSED, D_ONE, "length_penalty applies to beam search, which "
      "is not supported" },
    { "top_k", BOTH, HONOURED, 0, NULL },
    { "min_p", BOTH, HONOURED, 0, NULL },
    { "repetition_penalty", BOTH, HONOURED, 0, NULL },
    { "stop_token_ids", BOTH, HONOURED, 0, NULL },
    { "include_stop_str_in_output", BOTH, HONOURED, 0, NULL },
    { "ignore_eos", BOTH, HONOURED, 0, NULL },
    { "min_tokens", BOTH, HONOURED, 0, NULL },
    { "skip_special_tokens", BOTH, HONOURED, 0, NULL },
    { "spaces_between_special_tokens", BOTH, REFUSED, D_TRUE, "special tokens are always "
      "decoded as the tokenizer writes them (only true is supported)" },
    { "truncate_prompt_tokens", BOTH, HONOURED, 0, NULL },
    { "prompt_logprobs", BOTH, HONOURED, 0, NULL },
    { "allowed_token_ids", BOTH, HONOURED, 0, NULL },
    { "bad_words", BOTH, HONOURED, 0, NULL },
    /* vLLM's extra parameters */
    { "add_generation_prompt", CHAT, HONOURED, 0, NULL },
    { "continue_final_message", CHAT, HONOURED, 0, NULL },
    { "add_special_tokens", BOTH, HONOURED, 0, NULL },
    { "documents", CHAT, REFUSED, D_EMPTY, "documents (RAG inputs of a chat template) are not "
      "supported" },
    { "chat_template", CHAT, HONOURED, 0, NULL },
    { "chat_template_kwargs", CHAT, HONOURED, 0, NULL },
    { "include_reasoning", CHAT, HONOURED, 0, NULL },
    { "mm_processor_kwargs", ALL, IGNORED, 0, NULL },
    { "guided_json", BOTH, HONOURED, 0, NULL },
    { "guided_regex", BOTH, HONOURED, 0, NULL },
    { "guided_choice", BOTH, HONOURED, 0, NULL },
    { "guided_grammar", BOTH, HONOURED, 0, NULL },
    { "structured_outputs", BOTH, HONOURED, 0, NULL },
    { "structural_tag", BOTH, REFUSED, D_NULL, "structural tags are not supported" },
    { "guided_decoding_backend", BOTH, IGNORED, 0, NULL },
    { "guided_whitespace_pattern", BOTH, REFUSED, D_NULL, "a custom JSON whitespace pattern "
      "is not supported" },
    { "priority", ALL, HONOURED, 0, NULL },
    { "request_id", ALL, HONOURED, 0, NULL },
    { "logits_processors", BOTH, REFUSED, D_EMPTY, "custom logits processors are not "
      "supported" },
    { "return_tokens_as_token_ids", BOTH, HONOURED, 0, NULL },
    { "cache_salt", ALL, HONOURED, 0, NULL },
    { "kv_transfer_params", BOTH, REFUSED, D_NULL, "disaggregated serving (KV transfer) is "
      "not supported" },
    { "vllm_xargs", BOTH, REFUSED, D_EMPTY, "custom extension arguments are not supported" },
    /* the Responses API */
    { "input", RESP, HONOURED, 0, NULL },
    { "instructions", RESP, HONOURED, 0, NULL },
    { "max_output_tokens", RESP, HONOURED, 0, NULL },
    { "text", RESP, HONOURED, 0, NULL },
    { "background", RESP, REFUSED, D_FALSE, "background responses are not supported" },
    { "previous_response_id", RESP, REFUSED, D_NULL, "responses are not stored: send the "
      "whole conversation in 'input'" },
    { "prompt", RESP, REFUSED, D_NULL, "prompt templates are not supported" },
    { "include", RESP, IGNORED, 0, NULL },
    { "max_tool_calls", RESP, IGNORED, 0, NULL },
    { "reasoning", RESP, IGNORED, 0, NULL },
    { "top_logprobs", RESP, IGNORED, 0, NULL },
    { "truncation", RESP, IGNORED, 0, NULL },
};

static const struct field *lookup(const char *name, enum oai_api api)
{
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if ((fields[i].apis & (1u << api)) && !strcmp(fields[i].name, name))
            return &fields[i];
    return NULL;
}

static bool is_default(json_t *v, enum dflt d)
{
    if (json_is_null(v))
        return true;
    switch (d) {
    case D_FALSE: return json_is_false(v);
    case D_TRUE: return json_is_true(v);
    case D_ONE: return json_is_number(v) && json_number_value(v) == 1.0;
    case D_EMPTY:
        return (json_is_array(v) && json_array_size(v) == 0) ||
               (json_is_object(v) && json_object_size(v) == 0);
    case D_NULL: break;
    }
    return false;
}

bool oai_fields_check(struct oai_server *s, enum oai_api api, json_t *body, struct oai_error *e)
{
    (void)s;
    struct pgd__buf ignored = { 0 };
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        const struct field *f = lookup(k, api);
        if (f && f->d == REFUSED && !is_default(v, f->dflt)) {
            pgd__buf_fini(&ignored);
            OAI_BAD(e, k, "'%s' is not supported by this server: %s", k, f->why);
            return false;
        }
        if (!f || f->d == IGNORED) {
            /* Names are the client's bytes: keep the line short and printable. */
            pgd__buf_appendf(&ignored, "%s'%.64s'", ignored.len ? ", " : "", k);
        }
    }
    if (ignored.len && !ignored.failed)
        PGD_WARN("frontend.openai: the following fields were present in the request but "
                 "ignored: %s", ignored.p);
    pgd__buf_fini(&ignored);
    return true;
}
