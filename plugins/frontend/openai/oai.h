/* The OpenAI-compatible HTTP frontend: what its files share.
 *
 *   plugin.c    the plugin descriptor, the ops, the settings
 *   listen.c    the listening socket: TCP (IPv4, IPv6, dual-stack) or a Unix socket
 *   conn.c      connections: total and per-IP limits (503 + Retry-After past them), the
 *               deadline to receive a request head, the idle keep-alive timeout
 *   auth.c      API keys: loading them, checking a request's bearer token in constant time
 *   http.c      the libmicrohttpd daemon: routing, head checks, bodies, CORS, counters,
 *               shutdown
 *   request.c   JSON request bodies -> struct oai_gen (every type and range checked)
 *   chat.c      a chat request's messages -> its rendered, tokenized prompt
 *   generate.c  running a struct oai_gen on the engine: JSON responses and SSE streams
 *   util.c      error bodies, UTF-8 repair, token strings, response ids
 *   fields.c    the table of every request field: honoured, refused (400) or ignored (a
 *               warning), and the once-per-request warning of unknown ones
 *   guide.c     structured output (response_format, structured_outputs, guided_*) and tools
 *               (tool_choice) -> the engine's guide; the chat template's view of tool history
 *   parsers.c   the model's own tool-call syntax and <think> reasoning (parsers.h)
 *   responses.c /v1/responses: its body -> a chat request, its answers and events
 *   embeddings.c  /v1/embeddings (task embed), and the 400s of the wrong task
 *
 * Threads: libmicrohttpd runs one thread per connection; each request is handled entirely
 * on its connection's thread (the engine, the tokenizer and the chat renderer are
 * thread-safe). Shared state lives in struct oai_server under its mutex. */
#ifndef PGD_OAI_H
#define PGD_OAI_H

#include <pagoda/frontend.h>
#include "plugins/frontend/openai/parsers.h"
#include "runtime/base/buf.h"
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define OAI_MAX_STOP 16            /* stop strings per request */
#define OAI_MAX_LOGPROBS 20        /* top alternatives per token (the engine's limit) */
#define OAI_CONN_MEMORY (32u << 10) /* libmicrohttpd's memory per connection (its default):
                                      the request head and a chunk-size line must fit */

/* ---- settings (plugin.c) -------------------------------------------------------------- */

struct oai_settings {
    char *host;                    /* default "127.0.0.1" */
    int port;                      /* default 8000; 0 = any free port */
    char *uds;                     /* a Unix socket path; when set, host and port are unused */
    char **api_keys;               /* [n_api_keys], owned; none: no auth */
    int n_api_keys;
    char **served_model_names;     /* [n_served_model_names], owned; none: the host's model
                                      name. The first is reported (responses, metrics); a
                                      request may name any of them */
    int n_served_model_names;
    size_t max_body_bytes;         /* default 4 MiB */
    int max_connections;           /* default 1024 (past it: 503 + Retry-After) */
    int max_connections_per_ip;    /* default -1: half of max_connections; 0: no limit */
    int max_n;                     /* most choices per request (prompts x n); default 64 */
    int timeout_keep_alive;        /* s an idle keep-alive connection is kept; default 5 */
    int header_timeout;            /* s to receive a whole request head; default 10 */
    int write_timeout;             /* s a client may take no byte of an answer it has to read
                                      (a stalled stream is aborted); default 60 */
    char *cors_origins;            /* comma-separated, or "*"; NULL: no CORS headers */
    atomic_bool access_log;        /* one log line per request; default true (a reload
                                      may change it while requests run) */
    char *response_role;           /* the role of chat answers; default "assistant" */
    bool return_tokens_as_token_ids;   /* logprobs name tokens "token_id:N"; default false */
    int max_logprobs;              /* most logprobs a request may ask for; default 20 */
    enum oai_tool_parser tool_call_parser;        /* --tool-call-parser; default none */
    bool enable_auto_tool_choice;  /* tool_choice "auto" allowed (needs a parser) */
    enum oai_reasoning_parser reasoning_parser;   /* --reasoning-parser; default none */
    bool trust_request_chat_template;   /* a request's chat_template is used (else 400) */
};
enum pgd_status oai_settings_parse(struct oai_settings *s, const struct pgd_setting *kv,
                                   size_t n, char *err, size_t errlen);
void oai_settings_fini(struct oai_settings *s);

/* ---- the server (http.c) ---------------------------------------------------------------- */

enum oai_route {
    R_COMPLETIONS, R_CHAT, R_MODELS, R_HEALTH, R_VERSION, R_METRICS, R_TOKENIZE,
    R_DETOKENIZE, R_RESPONSES, R_PING, R_EMBEDDINGS, R_OTHER, R_COUNT
};

#define OAI_STATUS_SLOTS 12        /* distinct status codes counted per route */

/* One connection (MHD's socket_context), registered by the acceptor before libmicrohttpd
 * gets it, until libmicrohttpd's CLOSED notification; in s->conns under s->conn_mu. */
struct oai_conn {
    struct oai_conn *prev, *next;
    int fd;                        /* MHD's socket: valid until our CLOSED callback returns */
    unsigned char ip[16];          /* the peer (IPv4 as ::ffff:a.b.c.d) when has_ip */
    bool has_ip;                   /* false on a Unix socket: no per-IP limit */
    bool attached;                 /* libmicrohttpd's STARTED notification took it */
    bool running;                  /* a request is being generated or answered (no head
                                      deadline) */
    bool sending;                  /* an answer waits for the client to read it (its
                                      inactivity timeout is write_timeout) */
    int64_t head_deadline_ms;      /* monotonic ms by which a whole request head must have
                                      come; 0 while a request is being handled */
};

struct oai_server {
    struct oai_settings cfg;
    struct MHD_Daemon *daemon;
    int listen_fd;                 /* accepted on by conn.c's acceptor; -1 once closed */
    char address[160];             /* "http://127.0.0.1:8000", "http://[::]:8000", "unix:PATH" */
    int port;
    time_t started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;                    /* requests between their first byte and completion */
    atomic_bool draining;          /* shutdown began: refuse new requests */
    atomic_bool aborting;          /* the grace period ended: abort running requests */
    atomic_bool shutting_down;     /* a shutdown call is under way (a second one cuts it) */
    bool cut_grace;                /* under mu: a second shutdown call ended the grace */
    atomic_bool attached;
    struct pgd_frontend_model model;   /* valid once attached */
    char *model_name;              /* owned: the name reported (the first served name) */
    atomic_uint_fast64_t next_id;

    /* Connections (conn.c), under conn_mu. */
    pthread_mutex_t conn_mu;
    pthread_cond_t conn_cv;        /* wakes the watchdog early (stop) */
    struct oai_conn *conns;        /* every connection libmicrohttpd holds */
    int n_conns;
    int per_ip;                    /* max_connections_per_ip resolved (0: none) */
    bool watchdog_stop;
    bool watchdog_started;
    pthread_t watchdog;
    pthread_t acceptor;
    bool acceptor_started;
    int wake[2];                   /* a pipe: a byte stops the acceptor */

    /* HTTP counters for /metrics, under mu. */
    struct { int status; uint64_t n; } counts[R_COUNT][OAI_STATUS_SLOTS];
    uint64_t streams_aborted;      /* streams ended early by a client or by shutdown */
    /* Connection counters for /metrics, under conn_mu. */
    uint64_t refused_total, refused_per_ip, head_timeouts, write_timeouts;
};

enum pgd_status oai_server_start(struct oai_server *s, char *err, size_t errlen);
/* Stops accepting, lets requests run for grace_ms, then answers the rest (503 / an error
 * event) and stops the daemon. A call while another runs (from another thread: a second
 * SIGTERM) ends that one's grace at once and returns. */
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
/* An OpenAI-shaped error body as a response (NULL on memory), for headers to be added. */
struct MHD_Response *oai_error_response(const char *type, const char *param, const char *code,
                                        const char *msg);
/* Appends one Prometheus series with its HELP and TYPE lines: `name{model_name="M"[,labels]}
 * value`. model_name is already escaped; labels is NULL or `key="value",...`. */
void oai_metric(struct pgd__buf *b, const char *name, const char *type, const char *help,
                const char *model_name, const char *labels, uint64_t value);
/* A series' HELP and TYPE lines alone; then its samples (oai_metric_more). */
void oai_metric_head(struct pgd__buf *b, const char *name, const char *type, const char *help);
/* The same series again with other labels (no HELP/TYPE lines). */
void oai_metric_more(struct pgd__buf *b, const char *name, const char *model_name,
                     const char *labels, uint64_t value);
/* An OpenAI-shaped error response. */
enum MHD_Result oai_respond_error(struct oai_server *s, struct MHD_Connection *c,
                                  enum oai_route r, int status, const char *type,
                                  const char *param, const char *code, const char *msg);
enum MHD_Result oai_respond_json(struct oai_server *s, struct MHD_Connection *c,
                                 enum oai_route r, int status, json_t *body /* stolen */);

/* ---- the access log (http.c) -------------------------------------------------------------
 * One line per request, written when it completes. The connection's thread handles the
 * whole request, so what generate.c learns (its id, usage, first token) is noted through
 * these calls into the request being handled on the calling thread (no-ops elsewhere). */
void oai_access_note_usage(const char *request_id, int prompt_tokens, int completion_tokens);
void oai_access_note_first_token(void);
/* ---- the listening socket (listen.c) ---------------------------------------------------- */

/* Binds and listens per s->cfg (TCP host:port, or the Unix socket cfg.uds); sets
 * s->listen_fd, s->port and s->address. Never SO_REUSEPORT: a port in use is an error. */
enum pgd_status oai_listen_open(struct oai_server *s, char *err, size_t errlen);
/* Closes the listening socket (once) and removes a Unix socket's file. */
void oai_listen_close(struct oai_server *s);

/* ---- connections (conn.c) --------------------------------------------------------------- */

/* Connections libmicrohttpd may hold: max_connections plus a reserve for the ones it closed
 * but has not reaped yet. */
unsigned oai_conn_hard_limit(const struct oai_settings *cfg);
/* Starts the watchdog; then, once the daemon runs, the acceptor. */
enum pgd_status oai_conn_start(struct oai_server *s, char *err, size_t errlen);
enum pgd_status oai_conn_start_accepting(struct oai_server *s, char *err, size_t errlen);
/* Stops accepting and closes the listening socket (shutdown's first step). */
void oai_conn_stop_accepting(struct oai_server *s);
/* Stops the watchdog (after MHD_stop_daemon). */
void oai_conn_stop(struct oai_server *s);
/* MHD_OPTION_NOTIFY_CONNECTION: registers or forgets a connection. */
void oai_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
/* The phases of a request on its connection: its head came (body next), it is being
 * generated (no timeout), bytes of its answer are ready (the client has write_timeout
 * seconds to take them: each call restarts that clock), it was answered (the next head is
 * due within header_timeout; toe tells a write timeout, which is counted and logged). */
void oai_conn_head_received(struct oai_server *s, struct MHD_Connection *c);
void oai_conn_running(struct oai_server *s, struct MHD_Connection *c);
void oai_conn_sending(struct oai_server *s, struct MHD_Connection *c);
void oai_conn_request_done(struct oai_server *s, struct MHD_Connection *c,
                           enum MHD_RequestTerminationCode toe);
/* Writes a whole answer (status "413 Content Too Large", extra headers each ending in CRLF,
 * a JSON body) straight on a socket, non-blocking, with `Connection: close`: for answers
 * libmicrohttpd cannot send (before it has the socket, or in the middle of a body). */
void oai_conn_send_raw(int fd, const char *status, const char *extra_headers,
                       const char *body);
/* When the grace ends: stops reading on every connection whose request was not dispatched
 * yet. What its client sent before is still read, so a request whose body was whole is
 * answered (503); a body still coming ends there and its connection closes unanswered. */
void oai_conn_close_uploads(struct oai_server *s);
/* True when a connection waiting for a request head has unread bytes (a head that came
 * before the listener closed: shutdown waits for its 503 before stopping the daemon). */
bool oai_conn_head_pending(struct oai_server *s);
/* The connection series of /metrics, each labelled model_name="<model_name>" (escaped). */
void oai_conn_metrics(struct oai_server *s, struct pgd__buf *b, const char *model_name);

/* ---- API keys (auth.c) ------------------------------------------------------------------ */

/* Adds one key (api_key; an empty one is refused: it would turn authentication off). */
enum pgd_status oai_auth_add_key(struct oai_settings *s, const char *key, char *err,
                                 size_t errlen);
/* Adds every key of FILE (one a line; blank lines and lines starting with '#' skipped);
 * warns when the file is readable by group or others. */
enum pgd_status oai_auth_load_file(struct oai_settings *s, const char *path, char *err,
                                   size_t errlen);
/* True when no key is set or `Authorization: Bearer K` names one of them; the time taken
 * depends on the lengths and the number of keys only. */
bool oai_auth_ok(const struct oai_settings *s, const char *authorization);
/* Swaps the key lists of live (the server's, checked by other threads) and fresh (keys
 * made by a reload) at once; fresh then holds the old keys (free them with it). */
void oai_auth_swap_keys(struct oai_settings *live, struct oai_settings *fresh);

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
    size_t text_len;               /* text may hold NUL bytes (\u0000 in the request) */
};

/* Which API a request came through (its answers' shape). */
enum oai_api { OAI_API_COMPLETIONS = 0, OAI_API_CHAT, OAI_API_RESPONSES };

enum oai_tool_choice {
    OAI_TOOLS_NONE = 0,            /* no tools, or tool_choice "none" */
    OAI_TOOLS_AUTO,                /* the model decides; its syntax is parsed (parsers.h) */
    OAI_TOOLS_REQUIRED,            /* constrained to an array of calls of the tools */
    OAI_TOOLS_NAMED,               /* constrained to the named tool's arguments */
};

struct oai_gen {
    bool chat;                     /* chat (and responses) vs completions */
    enum oai_api api;
    bool stream, include_usage, echo;
    bool continuous_usage;         /* stream_options.continuous_usage_stats */
    bool max_tokens_set;
    int logprobs;                  /* -1: none; else top alternatives per token */
    int prompt_logprobs;           /* -1: none; else prompt_logprobs as vLLM returns them
                                      (apart from completions' echo) */
    bool token_ids_as_names;       /* return_tokens_as_token_ids (request or server) */
    int n_return;                  /* choices returned per prompt: n (best_of runs more) */
    bool best_of;                  /* sp.n samples, the n_return best by cumulative logprob */
    int priority;
    char *cache_salt;              /* owned, may be NULL */
    char *guide;                   /* owned: what sp.guide points to */
    enum oai_tool_choice tool_choice;
    char *tool_name;               /* OAI_TOOLS_NAMED: owned */
    bool parallel_tool_calls;      /* false: only the first call is returned */
    char *echo_text;               /* chat echo: the last message's content; owned */
    size_t echo_len;
    bool include_reasoning;        /* reasoning_content is returned (default true) */
    char *request_id;              /* the client's request_id: the response id's tail; owned */
    struct oai_prompt *prompts;    /* [n_prompts], owned */
    int n_prompts;
    struct pgd_sampling_params sp; /* its arrays point into the fields below (sp.stop into
                                      this struct: re-point it after a copy) */
    char *stop_buf[OAI_MAX_STOP];  /* owned */
    int32_t *stop_ids;             /* owned */
    struct pgd_logit_bias *bias;   /* owned */
    char **bad_words;              /* [sp.n_bad_words] owned; the engine tokenizes them */
};

/* Request helpers shared by request.c and chat.c (guide.c, responses.c use oai_field):
 * the value of k (NULL when absent or JSON null); a boolean field (a 400 when not one);
 * g's prompt array of n; text[0..len) tokenized into p (param names it in errors; p->text
 * keeps a copy for echo). */
json_t *oai_field(json_t *o, const char *k);
bool oai_opt_bool(json_t *o, const char *k, bool *out, struct oai_error *e);
bool oai_prompts_alloc(struct oai_gen *g, size_t n, struct oai_error *e);
bool oai_prompt_tokenize(struct oai_server *s, const char *text, size_t len, bool add_special,
                         const char *param, struct oai_prompt *p, struct oai_error *e);
/* chat.c: "messages" -> the rendered chat -> g's one prompt. */
bool oai_parse_messages(struct oai_server *s, json_t *b, struct oai_gen *g, bool add_special,
                        struct oai_error *e);

/* The JSON object of a request body (body[0..len), need not be NUL-terminated), or NULL
 * with e set (400 invalid_json: not JSON, or not an object). The caller owns the result
 * (json_decref). Needs no connection: the fuzz target tests/fuzz/fuzz_request.c calls it. */
json_t *oai_body_json(const char *body, size_t len, struct oai_error *e);
/* Parses and checks a /v1/completions (chat false) or /v1/chat/completions body, renders
 * and tokenizes the prompts. On failure e is set and g is left for oai_gen_fini. */
bool oai_gen_parse(struct oai_server *s, bool chat, json_t *body, struct oai_gen *g,
                   struct oai_error *e);
/* The same for any API; OAI_API_RESPONSES takes the chat body oai_responses_to_chat made
 * (whose fields were checked as a Responses body). */
bool oai_gen_parse_api(struct oai_server *s, enum oai_api api, json_t *body, struct oai_gen *g,
                       struct oai_error *e);
void oai_gen_fini(struct oai_gen *g);

/* Runs g on the engine and answers on c (a JSON response, or an SSE stream).
 * Takes g (finishes it). */
enum MHD_Result oai_gen_run(struct oai_server *s, struct MHD_Connection *c, struct oai_gen *g);
/* True when a request's "model" is one of the served names (request.c). */
bool oai_model_known(const struct oai_server *s, const char *name);

/* ---- embeddings (embeddings.c) ----------------------------------------------------------- */

/* POST /v1/embeddings with its JSON body (borrowed): the answer, or a 400 on a server that
 * is not of task embed. */
enum MHD_Result oai_embeddings_run(struct oai_server *s, struct MHD_Connection *c, json_t *body);
/* On a server of task embed, answers a generation route r (chat, completions) with its 400
 * into *ret and returns true; false (nothing sent) otherwise. */
bool oai_embed_refuses(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                       enum MHD_Result *ret);
/* /v1/models: the entry m gets the task ("generate", "embed") and, for embed, its
 * pooler_config and hidden_size. */
void oai_embed_model_fields(struct oai_server *s, json_t *m);

/* ---- fields.c: the request fields ----------------------------------------------------- */

/* Refuses (400 naming it) a field pagoda does not support that is set to anything but its
 * default, and logs once, at warning level, the fields present that are ignored (OpenAI-only
 * ones) or unknown. */
bool oai_fields_check(struct oai_server *s, enum oai_api api, json_t *body, struct oai_error *e);

/* ---- guide.c: structured output and tools ------------------------------------------------ */

/* Reads response_format, structured_outputs, guided_* and tools/tool_choice/
 * parallel_tool_calls of body into g (guide_kind, guide, tool choice); only one way to
 * constrain at a time (400 otherwise). */
bool oai_guide_parse(struct oai_server *s, json_t *body, struct oai_gen *g, struct oai_error *e);
/* A message list as the chat template wants it: assistant tool_calls' arguments (JSON text
 * in the API) become objects, as vLLM passes them. Returns a new reference. */
json_t *oai_messages_for_template(json_t *messages);

/* ---- responses.c: /v1/responses ---------------------------------------------------------- */

/* The chat request body equivalent to a /v1/responses body (a new object), or NULL with e. */
json_t *oai_responses_to_chat(json_t *body, struct oai_error *e);
/* A Response object; output and usage (may be NULL) are stolen. */
json_t *oai_responses_object(const char *id, long long created, const char *model,
                             const char *status, json_t *output, json_t *usage);
/* Output items: a message with one output_text part (text stolen; NULL: no part yet), and a
 * function call. */
json_t *oai_responses_message(const char *item_id, json_t *text, const char *status);
json_t *oai_responses_call(const char *item_id, const char *call_id, const char *name,
                           const char *arguments, const char *status);
json_t *oai_responses_usage(long long input, long long output, long long cached);
/* POST /v1/responses: checks, converts, runs (generate.c) and answers. */
enum MHD_Result oai_route_responses(struct oai_server *s, struct MHD_Connection *c, json_t *b);
/* Appends the event `type` (data stolen; type and sequence_number are added) to out. */
void oai_responses_event(struct pgd__buf *out, int *seq, const char *type, json_t *data);

/* ---- util.c ---------------------------------------------------------------------------- */

/* Byte buffers are runtime/base/buf.h's struct pgd__buf (its sources are compiled into this
 * plugin). */

/* A json string of s[0..n) with invalid UTF-8 replaced by U+FFFD (never NULL on memory). */
json_t *oai_json_str(const char *s, size_t n);
/* {"error": {"message", "type", "param", "code"}} */
json_t *oai_error_json(const char *type, const char *param, const char *code, const char *msg);
/* A real that JSON can hold (-inf becomes -9999.0, as OpenAI writes it). */
json_t *oai_json_logprob(double lp);
/* The text of one token (decoded alone); *text malloc'd, raw bytes (may be invalid UTF-8). */
void oai_token_text(const struct pgd_tokenizer *tok, int32_t id, char **text, size_t *len);
/* The vocabulary strings of ids[0..n) (vLLM's /tokenize return_token_strs). */
json_t *oai_token_strs(const struct oai_server *s, const int32_t *ids, int n);
/* A fresh response id with the prefix, e.g. "chatcmpl-1a2b...". */
void oai_make_id(struct oai_server *s, const char *prefix, char *out, size_t outlen);

#endif
