/* The server `pagoda bench serve` talks to: its base URL, the headers every request carries
 * (JSON, bearer key, --header), and one-off exchanges outside the timed run (the model list,
 * /tokenize as JSON, /metrics as text) through libcurl's easy interface. */
#ifndef PGD_TOOLS_BENCH_SERVE_CONN_H
#define PGD_TOOLS_BENCH_SERVE_CONN_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

struct bs_conn {
    char base_url[2048];          /* "http://host:port[/prefix]", no trailing '/' */
    struct curl_slist *headers;   /* owned: Content-Type, Authorization, Expect:, --header */
};

/* api_key may be NULL (no Authorization header); extra: n "Name: value" strings. Returns
 * 0, or -1 with a message in err. */
int bs_conn_init(struct bs_conn *c, const char *base_url, const char *api_key,
                 const char *const *extra, int n_extra, char *err, size_t errlen);
void bs_conn_fini(struct bs_conn *c);

/* The options every request of this connection sets on an easy handle: URL (base_url +
 * path), headers, no signals, TCP_NODELAY. */
void bs_conn_setup(const struct bs_conn *c, CURL *h, const char *path);

/* GET (body NULL) or POST body to base_url + path, waiting at most timeout_s. *status gets
 * the HTTP status and *out the answer parsed as JSON (NULL when it is not JSON; the caller
 * owns it). Returns 0 when an answer came back, -1 (message in err) when none did. */
int bs_conn_json(const struct bs_conn *c, const char *path, const json_t *body, long timeout_s,
                 long *status, json_t **out, char *err, size_t errlen);

/* GET base_url + path as text (the server's /metrics), waiting at most timeout_s. *status
 * gets the HTTP status, *body the answer NUL-terminated (malloc'd, the caller frees it) and
 * *len its length. Returns 0 when an answer came back, -1 (message in err) when none did. */
int bs_conn_get(const struct bs_conn *c, const char *path, long timeout_s, long *status,
                char **body, size_t *len, char *err, size_t errlen);

/* The message of an OpenAI-style error body ({"error": {"message": ...}} or {"message":
 * ...}, vLLM's and pagoda's shapes), or NULL. Borrowed from j. */
const char *bs_error_message(const json_t *j);

#endif
