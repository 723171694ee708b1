/* The engine's text path (struct pgd__textio) on the model's tokenizer: encoding text
 * prompts and stop strings, and incremental detokenization of each sequence. */
#include "runtime/engine/engine_text.h"
#include <pagoda/tokenizer.h>
#include <stdlib.h>
#include <string.h>

/* A detokenizer primed with the end of the prompt, so that the first generated token
 * decodes in context (e.g. SentencePiece's "▁Hello" after a prompt is " Hello", as it is
 * in the full decode, not "Hello"). */
#define PROMPT_CONTEXT 4

/* ctx: the tokenizer (borrowed). *ids is malloc'd for the caller. */
static enum pgd_status tx_encode(void *ctx, const char *text, bool add_special, int32_t **ids,
                                 int *n_ids, char *err, size_t errlen)
{
    struct pgd_tokens t;
    pgd_tokens_init(&t);
    enum pgd_status st = pgd_tokenizer_encode(ctx, text, strlen(text), add_special, &t, err,
                                              errlen);
    if (st != PGD_OK) {
        pgd_tokens_fini(&t);
        return st;
    }
    /* Hand the ids over in memory the caller frees with free(). */
    *ids = malloc((t.n ? t.n : 1) * sizeof **ids);
    if (!*ids) {
        pgd_tokens_fini(&t);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "tokenize: out of memory");
    }
    memcpy(*ids, t.ids, t.n * sizeof **ids);
    *n_ids = (int)t.n;
    pgd_tokens_fini(&t);
    return PGD_OK;
}

/* A new detokenizer state (owned by the caller, freed with tx_detok_free) over the
 * tokenizer ctx (borrowed; it outlives every state), or NULL when out of memory (the
 * sample then gets no text: tx_detok_push and tx_detok_flush give ""). */
static void *tx_detok_new(void *ctx, const int32_t *prompt, int n_prompt, bool skip_special)
{
    struct pgd_detok *d = malloc(sizeof *d);
    if (!d || pgd_detok_init(d, ctx, skip_special) != PGD_OK) {
        free(d);
        return NULL;
    }
    const char *delta;
    size_t len;
    int from = n_prompt > PROMPT_CONTEXT ? n_prompt - PROMPT_CONTEXT : 0;
    for (int i = from; i < n_prompt; i++)
        pgd_detok_push(d, prompt[i], &delta, &len);   /* context only: deltas dropped */
    return d;
}

/* *delta is owned by the state, valid until its next call. */
static void tx_detok_push(void *state, int32_t token, const char **delta, size_t *len)
{
    if (!state || pgd_detok_push(state, token, delta, len) != PGD_OK) {
        *delta = "";
        *len = 0;
    }
}

/* *delta is owned by the state, valid until its next call. */
static void tx_detok_flush(void *state, const char **delta, size_t *len)
{
    if (!state || pgd_detok_flush(state, delta, len) != PGD_OK) {
        *delta = "";
        *len = 0;
    }
}

/* Frees a state from tx_detok_new (NULL is fine). */
static void tx_detok_free(void *state)
{
    if (!state)
        return;
    pgd_detok_fini(state);
    free(state);
}

/* Frees the tokenizer (the textio's ctx). */
static void tx_destroy(void *ctx) { pgd_tokenizer_destroy(ctx); }

/* The existence check comes first so that a directory without tokenizer.json is not an
 * error (a tokenizer that is there but broken is). */
enum pgd_status pgd__engine_textio_load(const char *model_dir, struct pgd__textio *out,
                                        bool *found, char *err, size_t errlen)
{
    *found = false;
    size_t n = strlen(model_dir) + sizeof "/tokenizer.json";
    char *path = malloc(n);
    if (!path)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s/tokenizer.json", model_dir);
    FILE *fp = fopen(path, "rb");
    free(path);
    if (!fp)
        return PGD_OK;                 /* no tokenizer: the engine serves token ids only */
    fclose(fp);
    struct pgd_tokenizer *tok;
    enum pgd_status st = pgd_tokenizer_load(model_dir, &tok, err, errlen);
    if (st != PGD_OK)
        return st;
    *out = (struct pgd__textio){ .ctx = tok, .tokenizer = tok, .encode = tx_encode, .detok_new = tx_detok_new,
                                 .detok_push = tx_detok_push, .detok_flush = tx_detok_flush,
                                 .detok_free = tx_detok_free, .destroy = tx_destroy };
    *found = true;
    return PGD_OK;
}
