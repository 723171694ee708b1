/* The REPL frontend's internal interfaces: its settings, the backend a chat turn runs on
 * (the in-process engine or an OpenAI-compatible server over HTTP; the REPL does not care
 * which), the conversation, and the loops (interactive and piped). */
#ifndef PGD_FRONTEND_REPL_H
#define PGD_FRONTEND_REPL_H

#include <pagoda/frontend.h>
#include <pagoda/status.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* Sampling the user may change with /set; a field is sent only when its has_ bit is set
 * (otherwise the engine's or the server's default applies). */
enum {
    REPL_HAS_TEMPERATURE = 1 << 0,
    REPL_HAS_TOP_P = 1 << 1,
    REPL_HAS_TOP_K = 1 << 2,
    REPL_HAS_MAX_TOKENS = 1 << 3,
    REPL_HAS_SEED = 1 << 4,
};
struct repl_sampling {
    unsigned has;                 /* REPL_HAS_* bits */
    double temperature, top_p;
    int top_k, max_tokens;
    uint64_t seed;
    bool ignore_eos;              /* tests: generate max_tokens tokens whatever comes */
};

/* Settings (keys of [frontend.repl]; `pagoda chat` flags are the keys with '-'). */
struct repl_settings {
    char *url;                    /* remote server, e.g. http://127.0.0.1:8000/v1; NULL: local */
    char *api_key;                /* remote: sent as Authorization: Bearer */
    char *model;                  /* remote: the "model" field (default: the server's first) */
    char *system;                 /* the system message a conversation starts with */
    char *history_file;           /* default $XDG_STATE_HOME/pagoda/chat_history */
    bool no_stats;                /* no dim stats line after an answer */
    struct repl_sampling sampling;
};
enum pgd_status repl_settings_set(struct repl_settings *s, const char *key, const char *value,
                                  char *err, size_t errlen);
/* Parses VALUE for /set KEY VALUE (and the settings of the same names). */
enum pgd_status repl_sampling_set(struct repl_sampling *s, const char *key, const char *value,
                                  char *err, size_t errlen);
void repl_settings_fini(struct repl_settings *s);

/* What one answer cost, for the stats line. */
struct repl_result {
    int prompt_tokens, completion_tokens;   /* -1 when the backend did not say */
    double ttft_s, total_s;                 /* from the request's start */
    bool aborted;                           /* Ctrl-C */
};

/* Receives the answer's text as it is generated. */
typedef void (*repl_text_fn)(void *ctx, const char *text, size_t len);

/* A backend runs one chat turn at a time. */
struct repl_backend {
    /* Generates the assistant's answer to messages (a JSON array of OpenAI messages),
     * calling on_text for each piece. Returns early, with res->aborted, once *cancel is
     * set (the request is aborted in the engine / the HTTP transfer closed). */
    enum pgd_status (*chat)(struct repl_backend *b, json_t *messages,
                            const struct repl_sampling *sp, repl_text_fn on_text, void *ctx,
                            volatile sig_atomic_t *cancel, struct repl_result *res, char *err,
                            size_t errlen);
    /* One line: running and waiting requests, KV cache in use. */
    enum pgd_status (*engine_stats)(struct repl_backend *b, char *out, size_t outlen);
    /* The model's name, e.g. for the banner. */
    const char *(*name)(struct repl_backend *b);
    void (*destroy)(struct repl_backend *b);
};
enum pgd_status repl_engine_backend(const struct pgd_frontend_model *m,
                                    struct repl_backend **out, char *err, size_t errlen);
enum pgd_status repl_http_backend(const struct repl_settings *s, struct repl_backend **out,
                                  char *err, size_t errlen);

/* Splits streamed text into the answer and its <think>...</think> sections (tags may be cut
 * across pieces). The answer alone is kept (history); both are shown. */
struct repl_think {
    bool inside;
    char pending[16];             /* a possible tag's start, held until it is decided */
    size_t npending;
};
typedef void (*repl_part_fn)(void *ctx, bool thinking, const char *text, size_t len);
void repl_think_feed(struct repl_think *t, const char *text, size_t len, repl_part_fn out,
                     void *ctx);
void repl_think_flush(struct repl_think *t, repl_part_fn out, void *ctx);

/* The conversation: a JSON array of {"role", "content"} objects. */
json_t *repl_conv_new(const char *system);
enum pgd_status repl_conv_add(json_t *conv, const char *role, const char *content,
                              size_t len);
enum pgd_status repl_conv_save(json_t *conv, const char *path, char *err, size_t errlen);
enum pgd_status repl_conv_load(const char *path, json_t **out, char *err, size_t errlen);
/* Sets (or with NULL removes) the leading system message. */
enum pgd_status repl_conv_set_system(json_t *conv, const char *system);

/* One turn: appends user and the answer (without <think>) to conv, streaming the answer to
 * out (a terminal: think sections dimmed; otherwise left out). On an error the conversation
 * is left as it was. */
struct repl_turn_opts {
    FILE *out;
    bool color, show_think;
    const struct repl_sampling *sampling;
};
enum pgd_status repl_turn(struct repl_backend *b, json_t *conv, const char *user,
                          const struct repl_turn_opts *o, struct repl_result *res, char *err,
                          size_t errlen);
/* The dim line after an answer: tokens, tokens/s, time to first token. */
void repl_stats_line(FILE *out, bool color, const struct repl_result *r);

/* Ctrl-C: set by the SIGINT handler while repl_run or repl_pipe runs. */
extern volatile sig_atomic_t repl_interrupted;
int repl_run(struct repl_backend *b, struct repl_settings *s);    /* a terminal */
int repl_pipe(struct repl_backend *b, struct repl_settings *s);   /* stdin not a terminal */

#endif
