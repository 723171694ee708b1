/* Internal to generate.c and responses.c: a running request (a job) and its choices. */
#ifndef PGD_OAI_GEN_H
#define PGD_OAI_GEN_H

#include "plugins/frontend/openai/oai.h"
#include <time.h>

struct choice {
    struct pgd__buf text;           /* plain responses, and constrained tool calls: the
                                       generated text so far */
    json_t *lp;                    /* plain responses: chat: [entries]; completions: {tokens,
                                      token_logprobs, top_logprobs, text_offset} */
    size_t offset;                 /* completions: text_offset of the next token */
    enum pgd_finish_reason finish;
    int completion_tokens;
    bool started;
    double cum_logprob;            /* best_of's ranking */
    /* Chat post-processing (parsers.h): the reasoning section, then tool calls. */
    struct oai_reasoning_stream rs;
    struct oai_tool_stream ts;
    struct oai_tool_call *calls;   /* [n_calls], owned */
    int n_calls, n_calls_sent;
    struct pgd__buf reasoning, content;   /* plain: the split answer */
};

struct job {
    struct oai_server *s;
    struct MHD_Connection *conn;
    struct oai_gen g;
    struct pgd_stream **streams;   /* [g.n_prompts], owned */
    bool *closed;                  /* [g.n_prompts] */
    int n_open, rr;
    struct choice *ch;             /* [g.n_prompts * g.sp.n] */
    int n_ch;
    json_t **prompt_lp;            /* [g.n_prompts]: completions-style prompt logprobs (echo) */
    json_t **prompt_lp_vllm;       /* [g.n_prompts]: vLLM's prompt_logprobs field */
    int *prompt_tokens, *cached_tokens;   /* [g.n_prompts] */
    char id[160];
    time_t created;
    bool aborted;                  /* some sample ended with PGD_FINISH_ABORT */
    char *error;                   /* owned: the first PGD_FINISH_ERROR's reason (a fault of
                                      the request, such as its guide): it fails with a 400 */
    int seq;                       /* responses: the next event's sequence_number */
    /* streaming */
    struct pgd__buf out;
    size_t out_pos;
    bool eof;
};

/* Splits new text t[0..n) of choice c: the reasoning section to *r, the content to *ct, the
 * tool calls to c->calls (final: the answer ended). A constrained tool choice's text is held
 * in c->text until the end, then read as its calls (as content when it does not parse). */
void oai_post_feed(struct job *j, struct choice *c, const char *t, size_t n, bool final,
                   struct pgd__buf *r, struct pgd__buf *ct);
/* Whether b holds only whitespace. */
bool oai_blank(const struct pgd__buf *b);

/* /v1/responses (responses.c): the plain answer's body, and one output's stream events
 * (appended to j->out). */
json_t *oai_responses_plain_body(struct job *j);
void oai_responses_stream_take(struct job *j, struct choice *c, const struct pgd_output *o);

#endif
