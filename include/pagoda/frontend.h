/* Frontends: plugins of kind PGD_PLUGIN_FRONTEND that put an engine in front of users
 * (the OpenAI-compatible HTTP server, a REPL, your own).
 *
 * The host (`pagoda serve`) drives a frontend through struct pgd_frontend_ops:
 *
 *     ops->create(settings, n, &fe, err, errlen);   parse settings, start listening; the
 *                                                    model's routes answer "loading" (503)
 *     ... the host loads the engine ...
 *     ops->attach(fe, &model, err, errlen);          from now on requests run on the engine
 *     ... the host waits for SIGTERM / SIGINT ...
 *     ops->reload(fe, settings, n, err, errlen);     on SIGHUP: new API keys, access log
 *     ops->shutdown(fe, grace_ms);                   stop accepting, let running requests
 *                                                    finish up to grace_ms, abort the rest
 *     ops->destroy(fe);
 *     pgd_engine_destroy(engine);
 *
 * A foreground frontend (`pagoda chat` drives the REPL) has ops->run instead of the wait
 * for a signal: create, attach, run (returns when the user leaves), destroy.
 *
 * Settings are key/value strings (struct pgd_setting) so that the command line and an INI
 * section ([frontend.<name>]) feed a frontend the same way; a frontend refuses a key it does
 * not know, with a message naming it.
 *
 * ABI: both structs below begin with struct_size and only grow at their end. A host reads
 * an ops field only when ops->struct_size covers it; a frontend reads a model field only
 * when model->struct_size covers it. */
#ifndef PAGODA_FRONTEND_H
#define PAGODA_FRONTEND_H

#include <pagoda/status.h>
#include <pagoda/engine.h>
#include <pagoda/tokenizer.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One setting, e.g. { "port", "8000" }. Both strings are borrowed for the call only. */
struct pgd_setting {
    const char *key;
    const char *value;
};

/* Renders a chat with the model's chat template (must be thread-safe). messages_json is
 * the JSON array of messages (contents as strings); tools_json (may be NULL) the request's
 * JSON array of tools; kwargs_json (may be NULL) a JSON object of extra template variables.
 * On success *out is a malloc'd NUL-terminated prompt, owned by the caller (free()).
 * Errors carry a message for the client: PGD_ERR_INVALID_ARG when the conversation breaks
 * the template's rules (the client's fault), anything else when the template itself fails. */
typedef enum pgd_status (*pgd_chat_render_fn)(void *ctx, const char *messages_json,
                                              const char *tools_json,
                                              bool add_generation_prompt,
                                              const char *kwargs_json, char **out, char *err,
                                              size_t errlen);

/* What the host gives a frontend once the model is loaded. Everything is borrowed and
 * stays valid until the frontend's shutdown returns. */
struct pgd_frontend_model {
    uint32_t struct_size;                 /* sizeof(struct pgd_frontend_model) of the host */
    struct pgd_engine *engine;
    const struct pgd_tokenizer *tokenizer;/* NULL when the checkpoint has none */
    const char *name;                     /* the served model name (never NULL) */
    const char *root;                     /* the model directory */
    int max_model_len;                    /* prompt + completion tokens, at most */
    int vocab_size;                       /* ids in [0, vocab_size) are valid */
    pgd_chat_render_fn render_chat;       /* NULL when the model has no chat template */
    void *render_ctx;                     /* passed to render_chat */
    /* Sampling defaults for the fields a request does not set (the model's
     * generation_config.json, --override-generation-config); NULL: pgd_sampling_default_params().
     * Only its scalar fields are used; max_tokens > 0 is the default max_tokens (never more
     * than the context leaves), else OpenAI's (16 for completions, the rest of the context
     * for chat). */
    const struct pgd_sampling_params *default_sampling;
    /* The defaults in force as a JSON object of the fields set, e.g. {"temperature":0.6}
     * ("{}" when none; NULL when unknown), shown by /v1/models. */
    const char *default_sampling_json;
};

struct pgd_frontend_ops {
    uint32_t struct_size;                 /* sizeof(struct pgd_frontend_ops) of the plugin */
    /* Parses settings and starts serving (e.g. binds and listens). *out is the frontend,
     * owned by the host: destroy. */
    enum pgd_status (*create)(const struct pgd_setting *settings, size_t n_settings,
                              void **out, char *err, size_t errlen);
    /* Where it serves, e.g. "http://127.0.0.1:8000" (the real port when 0 was asked for).
     * Owned by the frontend. */
    const char *(*address)(void *fe);
    /* Hands the frontend the loaded model; requests run from now on. */
    enum pgd_status (*attach)(void *fe, const struct pgd_frontend_model *model, char *err,
                              size_t errlen);
    /* Stops accepting, lets running requests finish for up to grace_ms, aborts the rest and
     * returns once no request is left (the engine is still alive). A second call made from
     * another thread while the first runs (a second SIGTERM) ends the grace at once and
     * returns; the first call still finishes the job. */
    void (*shutdown)(void *fe, int grace_ms);
    /* Frees the frontend (after shutdown; shuts down with no grace when it was not). */
    void (*destroy)(void *fe);
    /* Frontends that own the foreground (the terminal REPL, `pagoda chat`); NULL for those
     * that serve in the background. Runs until the user leaves and returns the process's
     * exit status (0 done, 1 an error, already reported on stderr). Called after attach,
     * or without attach when the frontend's settings name a remote server (e.g. "url").
     * Added with ABI 2's struct_size: read it only when ops->struct_size covers it. */
    int (*run)(void *fe);
    /* Applies the settings that may change while it serves: `pagoda serve` calls it on
     * SIGHUP from its main thread while requests run, with the complete new values of the
     * rows marked reloadable in the settings table that go to the frontend (for openai:
     * api_key, api_key_file, access_log); a key left out takes its default (no api_key and
     * no api_key_file: no authentication). Files named are read again. All or nothing: on
     * an error nothing changed. NULL: the frontend reloads nothing. Read it only when
     * ops->struct_size covers it. */
    enum pgd_status (*reload)(void *fe, const struct pgd_setting *settings, size_t n,
                              char *err, size_t errlen);
};

#ifdef __cplusplus
}
#endif
#endif
