/* The server connection of `pagoda bench serve` (see conn.h): the shared request headers
 * and the blocking exchanges made before and after the timed run (JSON, and /metrics'
 * text). */
#include "config.h"
#include "tools/bench/serve/conn.h"
#include "runtime/base/buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bs_conn_init(struct bs_conn *c, const char *base_url, const char *api_key,
                 const char *const *extra, int n_extra, char *err, size_t errlen)
{
    *c = (struct bs_conn){ 0 };
    size_t n = strlen(base_url);
    while (n && base_url[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof c->base_url) {
        snprintf(err, errlen, "--base-url '%s': empty or too long", base_url);
        return -1;
    }
    memcpy(c->base_url, base_url, n);
    c->base_url[n] = 0;
    /* "Expect:" turns off curl's 100-continue round trip on larger bodies. */
    const char *fixed[] = { "Content-Type: application/json", "Expect:" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!(c->headers = curl_slist_append(c->headers, fixed[i])))
            goto oom;
    if (api_key && *api_key) {
        char h[4096];
        if (snprintf(h, sizeof h, "Authorization: Bearer %s", api_key) >= (int)sizeof h) {
            snprintf(err, errlen, "--api-key: too long");
            bs_conn_fini(c);
            return -1;
        }
        struct curl_slist *l = curl_slist_append(c->headers, h);
        if (!l)
            goto oom;
        c->headers = l;
    }
    for (int i = 0; i < n_extra; i++) {
        struct curl_slist *l = curl_slist_append(c->headers, extra[i]);
        if (!l)
            goto oom;
        c->headers = l;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    bs_conn_fini(c);
    return -1;
}

void bs_conn_fini(struct bs_conn *c)
{
    curl_slist_free_all(c->headers);
    c->headers = NULL;
}

void bs_conn_setup(const struct bs_conn *c, CURL *h, const char *path)
{
    char url[4096];
    snprintf(url, sizeof url, "%s%s", c->base_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);     /* curl copies the string */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    size_t n = size * nmemb;
    /* Out of memory: 0 makes curl fail the transfer (CURLE_WRITE_ERROR). */
    return pgd__buf_append(ud, ptr, n) ? n : 0;
}

/* One blocking exchange: GET (post NULL) or POST post to base_url + path; the answer's
 * bytes appended to *b (the caller's, it frees them). 0 when an answer came back (*status
 * its HTTP status), -1 (message in err) when none did. */
static int exchange(const struct bs_conn *c, const char *path, const char *post, long timeout_s,
                    long *status, struct pgd__buf *b, char *err, size_t errlen)
{
    *status = 0;
    CURL *h = curl_easy_init();
    char cerr[CURL_ERROR_SIZE] = "";
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bs_conn_setup(c, h, path);
    if (post)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = curl_easy_perform(h);
    int rc = 0;
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s%s: %s", c->base_url, path,
                 cerr[0] ? cerr : curl_easy_strerror(cc));
        rc = -1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_cleanup(h);
    return rc;
}

int bs_conn_json(const struct bs_conn *c, const char *path, const json_t *body, long timeout_s,
                 long *status, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    *status = 0;
    char *post = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct pgd__buf b = { 0 };
    int rc = -1;
    if (body && !post)
        snprintf(err, errlen, "out of memory");
    else
        rc = exchange(c, path, post, timeout_s, status, &b, err, errlen);
    if (!rc && b.p)
        *out = json_loadb(b.p, b.len, 0, NULL);
    pgd__buf_fini(&b);
    free(post);
    return rc;
}

int bs_conn_get(const struct bs_conn *c, const char *path, long timeout_s, long *status,
                char **body, size_t *len, char *err, size_t errlen)
{
    struct pgd__buf b = { 0 };
    *body = NULL;
    *len = 0;
    if (exchange(c, path, NULL, timeout_s, status, &b, err, errlen)) {
        pgd__buf_fini(&b);
        return -1;
    }
    /* An empty answer is "" (steal allocates it). */
    if (!(*body = pgd__buf_steal(&b, len))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const char *bs_error_message(const json_t *j)
{
    const json_t *e = json_object_get(j, "error");
    const json_t *m = json_object_get(json_is_object(e) ? e : j, "message");
    if (json_is_string(m))
        return json_string_value(m);
    return json_is_string(e) ? json_string_value(e) : NULL;
}
