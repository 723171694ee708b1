/* The OpenAI-compatible HTTP frontend: what its files share.
 *
 *   plugin.c    the plugin descriptor, the ops, the settings
 *   http.c      the libmicrohttpd daemon: routing, bodies, auth, CORS, counters, shutdown
 *   request.c   JSON request bodies -> struct oai_gen (every type and range checked)
 *   generate.c  running a struct oai_gen on the engine: JSON responses and SSE streams
 *   util.c      error bodies, UTF-8 repair, token strings, a growable byte buffer
 *
 * Threads: libmicrohttpd runs one thread per connection; each request is handled entirely
 * on its connection's thread (the engine, the tokenizer and the chat renderer are
 * thread-safe). Shared state lives in struct oai_server under its mutex. */
#ifndef PGD_OAI_H
#define PGD_OAI_H

#include <pagoda/frontend.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define OAI_MAX_STOP 16            /* stop strings per request */
#define OAI_MAX_LOGPROBS 20        /* top alternatives per token (the engine's limit) */

/* ---- settings (plugin.c) -------------------------------------------------------------- */

struct oai_settings {
    char *host;                    /* default "127.0.0.1" */
    int port;                      /* default 8000; 0 = any free port */
    char *api_key;                 /* NULL: no auth */
    char *served_model_name;       /* NULL: the host's model name */
    size_t max_body_bytes;         /* default 4 MiB */
    int max_connections;           /* default 1024 */
    int max_n;                     /* most choices per request (prompts x n); default 64 */
    int timeout_s;                 /* idle connection timeout; default 300 */
    char *cors_origins;            /* comma-separated, or "*"; NULL: no CORS headers */
};
enum pgd_status oai_settings_parse(struct oai_settings *s, const struct pgd_setting *kv,
                                   size_t n, char *err, size_t errlen);
void oai_settings_fini(struct oai_settings *s);

/* ---- the server (http.c) ---------------------------------------------------------------- */

enum oai_route {
    R_COMPLETIONS, R_CHAT, R_MODELS, R_HEALTH, R_VERSION, R_METRICS, R_TOKENIZE,
    R_DETOKENIZE, R_OTHER, R_COUNT
};

#define OAI_STATUS_SLOTS 12        /* distinct status codes counted per route */

struct oai_server {
    struct oai_settings cfg;
    struct MHD_Daemon *daemon;
    char address[160];
    int port;
    time_t started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;                    /* requests between their first byte and completion */
    atomic_bool draining;          /* shutdown began: refuse new requests */
    atomic_bool aborting;          /* the grace period ended: abort running requests */
    atomic_bool attached;
    struct pgd_frontend_model model;   /* valid once attached */
    char *model_name;              /* owned */
    atomic_uint_fast64_t next_id;

    /* HTTP counters for /metrics, under mu. */
    struct { int status; uint64_t n; } counts[R_COUNT][OAI_STATUS_SLOTS];
    uint64_t streams_aborted;      /* streams ended early by a client or by shutdown */
};

enum pgd_status oai_server_start(struct oai_server *s, char *err, size_t errlen);
void oai_server_shutdown(struct oai_server *s, int grace_ms);
void oai_server_count(struct oai_server *s, enum oai_route r, int status);
/* True when the client of c has closed its end (checked without waiting). */
bool oai_client_gone(struct MHD_Connection *c);
/* Queues resp (and releases it): adds CORS headers (and `Connection: close` while
 * draining), counts it. */
enum MHD_Result oai_queue(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                          int status, struct MHD_Response *resp);
/* Queues a response: adds CORS headers, counts it. Takes body (malloc'd) or copies a
 * static one when body_owned is false. */
enum MHD_Result oai_respond(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                            int status, const char *ctype, char *body, size_t len,
                            bool body_owned);
/* An OpenAI-shaped error response. */
enum MHD_Result oai_respond_error(struct oai_server *s, struct MHD_Connection *c,
                                  enum oai_route r, int status, const char *type,
                                  const char *param, const char *code, const char *msg);
enum MHD_Result oai_respond_json(struct oai_server *s, struct MHD_Connection *c,
                                 enum oai_route r, int status, json_t *body /* stolen */);

/* ---- errors while parsing or running a request --------------------------------------- */

struct oai_error {
    int status;                    /* 0 = no error */
    const char *type;              /* "invalid_request_error", ... */
    const char *code;              /* may be NULL */
    char param[64];                /* "" = null */
    char msg[768];
};
void oai_err_set(struct oai_error *e, int status, const char *type, const char *param,
                 const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
#define OAI_BAD(e, param, ...) \
    oai_err_set((e), 400, "invalid_request_error", (param), NULL, __VA_ARGS__)

/* ---- a generation request (request.c, generate.c) ------------------------------------ */

struct oai_prompt {
    int32_t *ids;                  /* [n_ids], owned */
    int n_ids;
    char *text;                    /* for echo: the prompt as text; owned, may be NULL */
};

struct oai_gen {
    bool chat;
    bool stream, include_usage, echo;
    bool max_tokens_set;
    int logprobs;                  /* -1: none; else top alternatives per token */
    struct oai_prompt *prompts;    /* [n_prompts], owned */
    int n_prompts;
    struct pgd_sampling_params sp; /* its arrays point into the fields below (sp.stop into
                                      this struct: re-point it after a copy) */
    char *stop_buf[OAI_MAX_STOP];  /* owned */
    int32_t *stop_ids;             /* owned */
    struct pgd_logit_bias *bias;   /* owned */
};

/* The JSON object of a request body (body[0..len), need not be NUL-terminated), or NULL
 * with e set (400 invalid_json: not JSON, or not an object). The caller owns the result
 * (json_decref). Needs no connection: the fuzz target tests/fuzz/fuzz_request.c calls it. */
json_t *oai_body_json(const char *body, size_t len, struct oai_error *e);
/* Parses and checks a /v1/completions (chat false) or /v1/chat/completions body, renders
 * and tokenizes the prompts. On failure e is set and g is left for oai_gen_fini. */
bool oai_gen_parse(struct oai_server *s, bool chat, json_t *body, struct oai_gen *g,
                   struct oai_error *e);
void oai_gen_fini(struct oai_gen *g);

/* Runs g on the engine and answers on c (a JSON response, or an SSE stream).
 * Takes g (finishes it). */
enum MHD_Result oai_gen_run(struct oai_server *s, struct MHD_Connection *c, struct oai_gen *g);

/* ---- util.c ---------------------------------------------------------------------------- */

struct oai_buf {
    char *p;
    size_t len, cap;
    bool failed;                   /* an allocation failed; p holds what fit */
};
void oai_buf_add(struct oai_buf *b, const char *s, size_t n);
void oai_buf_addf(struct oai_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void oai_buf_fini(struct oai_buf *b);

/* A json string of s[0..n) with invalid UTF-8 replaced by U+FFFD (never NULL on memory). */
json_t *oai_json_str(const char *s, size_t n);
/* {"error": {"message", "type", "param", "code"}} */
json_t *oai_error_json(const char *type, const char *param, const char *code, const char *msg);
/* A real that JSON can hold (-inf becomes -9999.0, as OpenAI writes it). */
json_t *oai_json_logprob(double lp);
/* The text of one token (decoded alone); *text malloc'd, raw bytes (may be invalid UTF-8). */
void oai_token_text(const struct pgd_tokenizer *tok, int32_t id, char **text, size_t *len);
/* A fresh response id with the prefix, e.g. "chatcmpl-1a2b...". */
void oai_make_id(struct oai_server *s, const char *prefix, char *out, size_t outlen);

#endif
