/* pagoda generate's requests and results: building engine requests from the command line
 * or a JSON-lines file, and collecting each request's stream into printable results. */
#ifndef PGD_TOOLS_GENERATE_REQUESTS_H
#define PGD_TOOLS_GENERATE_REQUESTS_H

#include <pagoda/engine.h>
#include "runtime/base/buf.h"
#include <stdio.h>

struct gen_request_defaults {
    struct pgd_sampling_params s;      /* what a request does not say (temperature 0) */
};
void gen_request_defaults_init(struct gen_request_defaults *d);

/* One request; params points into the owned arrays below. */
struct gen_request {
    int line;                          /* 1-based line of the prompts file (or 1) */
    struct pgd_request_params params;
    char *prompt;                      /* owned, or NULL */
    int32_t *ids;                      /* owned, or NULL */
    int n_ids;
    char **stop;                       /* owned [n_stop] */
    int32_t *stop_ids;                 /* owned */
};

/* One request from --prompt or --prompt-ids. Returns 1, or -1 with err set. *out is owned
 * by the caller: gen_requests_free. */
int gen_requests_single(const char *prompt, const char *prompt_ids,
                        const struct gen_request_defaults *d, struct gen_request **out,
                        char *err, size_t errlen);
/* Every non-empty line of path, a JSON object each. Returns the count, or -1 with err
 * naming the file, the line and the field. */
int gen_requests_read_file(const char *path, const struct gen_request_defaults *d,
                           struct gen_request **out, char *err, size_t errlen);
void gen_requests_free(struct gen_request *reqs, int n);

struct gen_sample {
    int32_t *ids;                      /* owned [n_ids] */
    int n_ids;
    size_t cap;
    struct pgd__buf text;              /* owned */
    enum pgd_finish_reason finish;
};
struct gen_result {
    struct gen_sample *samples;        /* owned [n] */
    int n;
    int prompt_tokens, completion_tokens, cached_tokens;
};
/* Reads the stream until it closes. */
enum pgd_status gen_result_collect(struct pgd_stream *s, int n, struct gen_result *res,
                                   char *err, size_t errlen);
/* Each sample on a line: its text, or its ids as [a, b, c]. */
void gen_result_print_plain(FILE *out, const struct gen_result *res, bool text);
/* One JSON object: {"index", "outputs": [{"index", "token_ids", "text", "finish_reason"}],
 * "usage": {"prompt_tokens", "completion_tokens", "cached_tokens"}}. */
void gen_result_print_json(FILE *out, int index, const struct gen_result *res);
void gen_result_fini(struct gen_result *res);

#endif
