/* Internal: the engine's text path (text prompts, incremental detokenization for delta
 * text and stop strings) behind a small vtable, so that requests given as token ids run
 * without any tokenizer and the tokenizer can be wired in from one place
 * (pgd_engine_create). All functions are called from the engine thread except encode,
 * which submitters call concurrently (it must be thread-safe). */
#ifndef PGD_RUNTIME_TEXTIO_H
#define PGD_RUNTIME_TEXTIO_H

#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgd__textio {
    void *ctx;                       /* owned; released by destroy */
    const struct pgd_tokenizer *tokenizer;   /* the tokenizer behind it, if any (in ctx) */
    /* Tokenizes text; *ids is malloc'd (caller frees). */
    enum pgd_status (*encode)(void *ctx, const char *text, bool add_special, int32_t **ids,
                              int *n_ids, char *err, size_t errlen);
    /* A detokenizer state for one sequence that starts after prompt[0..n_prompt). */
    void *(*detok_new)(void *ctx, const int32_t *prompt, int n_prompt, bool skip_special);
    /* Feeds one generated token; *delta gets the text that became final (may be empty),
     * owned by the state until its next call. */
    void (*detok_push)(void *state, int32_t token, const char **delta, size_t *len);
    /* Text still held at the end of the sequence (e.g. an unfinished UTF-8 sequence). */
    void (*detok_flush)(void *state, const char **delta, size_t *len);
    void (*detok_free)(void *state);
    void (*destroy)(void *ctx);
};

#endif
