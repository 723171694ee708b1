/* Parsers of a chat model's own output (plugins/frontend/openai/parsers.c): tool calls in
 * the syntax of a model family (--tool-call-parser, vLLM's names) and the reasoning section
 * <think>...</think> (--reasoning-parser). Both work incrementally: text is fed as it is
 * generated, and what is certain so far comes out; a whole (non-streamed) answer is one feed
 * with final set, so that streaming and plain answers split the same text the same way.
 *
 * Needs only jansson and runtime/base/buf.c: the Criterion test tests/unit/test_oai_parsers.c
 * builds it alone and feeds it canned model outputs. */
#ifndef PGD_OAI_PARSERS_H
#define PGD_OAI_PARSERS_H

#include "runtime/base/buf.h"
#include <stdbool.h>
#include <stddef.h>

/* ---- tool calls -------------------------------------------------------------------------- */

enum oai_tool_parser {
    OAI_TP_NONE = 0,
    OAI_TP_HERMES,       /* Qwen2.5/Qwen3, Hermes: <tool_call>{"name", "arguments"}</tool_call> */
    OAI_TP_LLAMA3_JSON,  /* Llama 3.1+: [<|python_tag|>]{"name", "parameters"} (several joined
                            by ';') as the whole answer */
    OAI_TP_MISTRAL,      /* [TOOL_CALLS][{"name", "arguments"}, ...] or, with the v11
                            tokenizer, [TOOL_CALLS]name[ARGS]{...} */
};
/* vLLM's name ("hermes", "llama3_json", "mistral") -> the parser; false when unknown. */
bool oai_tool_parser_from_name(const char *name, enum oai_tool_parser *out);
/* Whether a parser needs special tokens kept in the text (its markers are special tokens). */
bool oai_tool_parser_needs_special_tokens(enum oai_tool_parser p);

struct oai_tool_call {
    char *name;                    /* owned */
    char *arguments;               /* owned: a JSON object's compact text */
};

/* Parser state for one generated answer. Zero-initialize, set kind; oai_tool_stream_fini. */
struct oai_tool_stream {
    enum oai_tool_parser kind;
    struct pgd__buf hold;          /* text not yet decided (a possible marker, a call) */
    int state;                     /* parsers.c's TS_* */
    bool started;                  /* llama3_json: the answer's first non-space byte came */
};

/* Feeds text[0..n) (final: this is the end of the answer). Appends the text that is certainly
 * content to *content and each completed call to *calls (grown; *n_calls counts them).
 * A call that does not parse as JSON is given back as content, as it came. false: out of
 * memory. */
bool oai_tool_stream_feed(struct oai_tool_stream *ts, const char *text, size_t n, bool final,
                          struct pgd__buf *content, struct oai_tool_call **calls, int *n_calls);
void oai_tool_stream_fini(struct oai_tool_stream *ts);
void oai_tool_calls_free(struct oai_tool_call *calls, int n);

/* The output of a constrained tool choice -> calls. named: the output is the arguments of
 * that tool. Otherwise (tool_choice "required") an array of {"name", "parameters"} objects,
 * as vLLM's schema makes the model write. false when text does not parse so. */
bool oai_tool_calls_from_constrained(const char *text, size_t n, const char *named,
                                     struct oai_tool_call **calls, int *n_calls);

/* ---- reasoning --------------------------------------------------------------------------- */

enum oai_reasoning_parser {
    OAI_RP_NONE = 0,
    OAI_RP_QWEN3,        /* an answer that opens with <think> reasons until </think> */
    OAI_RP_DEEPSEEK_R1,  /* the answer reasons from its start (the template opened <think>;
                            a leading <think> is dropped) until </think>; all of it when
                            </think> never comes */
};
bool oai_reasoning_parser_from_name(const char *name, enum oai_reasoning_parser *out);

struct oai_reasoning_stream {
    enum oai_reasoning_parser kind;
    struct pgd__buf hold;
    int state;                     /* parsers.c's RS_* */
};
/* Feeds text[0..n): appends to *reasoning and *content what is certain so far. false: out
 * of memory. */
bool oai_reasoning_feed(struct oai_reasoning_stream *rs, const char *text, size_t n, bool final,
                        struct pgd__buf *reasoning, struct pgd__buf *content);
void oai_reasoning_fini(struct oai_reasoning_stream *rs);

#endif
