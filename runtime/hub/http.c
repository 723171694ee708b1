/* libcurl plumbing for the hub client: the common options of an easy handle, the capture of
 * the protocol's response headers, the retry policy and the messages for failed requests.
 * Proxies come from libcurl's own environment variables (http_proxy, https_proxy, no_proxy). */
#include "config.h"
#include "runtime/hub/http.h"
#include <pagoda/version.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void pgd__hub_http_init(void)
{
    pthread_once(&init_once, init);
}

/* Copies a header value, trimmed, into dst; with etag, normalized as huggingface_hub does:
 * a weak "W/" prefix and the quotes removed. */
static void copy_value(char *dst, size_t len, const char *v, size_t n, bool etag)
{
    while (n && isspace((unsigned char)*v))
        v++, n--;
    while (n && isspace((unsigned char)v[n - 1]))
        n--;
    if (etag) {
        if (n >= 2 && v[0] == 'W' && v[1] == '/')
            v += 2, n -= 2;
        while (n && *v == '"')
            v++, n--;
        while (n && v[n - 1] == '"')
            n--;
    }
    if (n >= len)
        n = len - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static long long parse_ll(const char *v, size_t n)
{
    char buf[32];
    copy_value(buf, sizeof buf, v, n, false);
    char *end;
    long long x = strtoll(buf, &end, 10);
    return end != buf && *end == '\0' && x >= 0 ? x : -1;
}

static void headers_reset(struct pgd__hub_headers *h)
{
    *h = (struct pgd__hub_headers){ .linked_size = -1, .content_length = -1,
                                    .retry_after_s = -1 };
}

/* CURLOPT_HEADERFUNCTION: one header line at a time (not NUL-terminated). */
static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct pgd__hub_headers *h = ud;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        headers_reset(h);
        const char *sp = memchr(line, ' ', n);
        if (sp)
            h->status = strtol(sp + 1, NULL, 10);
        return n;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return n;
    size_t kn = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
#define IS(name) (kn == sizeof(name) - 1 && !strncasecmp(line, name, kn))
    if (IS("X-Repo-Commit"))
        copy_value(h->repo_commit, sizeof h->repo_commit, v, vn, false);
    else if (IS("X-Linked-Etag"))
        copy_value(h->linked_etag, sizeof h->linked_etag, v, vn, true);
    else if (IS("ETag"))
        copy_value(h->etag, sizeof h->etag, v, vn, true);
    else if (IS("X-Linked-Size"))
        h->linked_size = parse_ll(v, vn);
    else if (IS("Content-Length"))
        h->content_length = parse_ll(v, vn);
    else if (IS("Location"))
        copy_value(h->location, sizeof h->location, v, vn, false);
    else if (IS("Retry-After"))
        h->retry_after_s = (long)parse_ll(v, vn);  /* an HTTP-date reads as -1: backoff */
    else if (IS("X-Error-Code"))
        copy_value(h->error_code, sizeof h->error_code, v, vn, false);
    else if (IS("X-Error-Message"))
        copy_value(h->error_message, sizeof h->error_message, v, vn, false);
#undef IS
    return n;
}

enum pgd_status pgd__hub_easy_setup(CURL *e, const struct pgd__hub_config *c, const char *url,
                                    bool with_auth, struct pgd__hub_headers *h,
                                    struct curl_slist **list, char *err, size_t errlen)
{
    headers_reset(h);
    *list = NULL;
    struct curl_slist *l = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (l && with_auth && c->token) {
        char auth[4200];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
        struct curl_slist *l2 = curl_slist_append(l, auth);
        if (!l2) {
            curl_slist_free_all(l);
            l = NULL;
        } else {
            l = l2;
        }
    }
    if (!l)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    *list = l;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pagoda/" PGD_VERSION_STRING "; hf_hub-compatible");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A custom Authorization header must never follow a redirect to another host; curl
     * already drops it there, and the downloader never lets curl follow cross-host
     * redirects with it set (it drops the header itself, see download.c). */
    curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
    return PGD_OK;
}

bool pgd__hub_retryable(CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_OK:
        return status == 429 || (status >= 500 && status != 501);
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

long pgd__hub_backoff_ms(const struct pgd__hub_config *c, int attempt, long retry_after_s)
{
    if (retry_after_s >= 0)
        return (retry_after_s > 120 ? 120 : retry_after_s) * 1000;
    long ms = c->backoff_ms > 0 ? c->backoff_ms : 500;
    for (int i = 0; i < attempt && ms < 8000; i++)
        ms *= 2;
    return ms > 8000 ? 8000 : ms;
}

bool pgd__hub_same_host(const char *a, const char *b)
{
    CURLU *ua = curl_url(), *ub = curl_url();
    bool same = false;
    if (ua && ub && !curl_url_set(ua, CURLUPART_URL, a, 0) &&
        !curl_url_set(ub, CURLUPART_URL, b, 0)) {
        static const CURLUPart parts[] = { CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT };
        same = true;
        for (size_t i = 0; i < 3 && same; i++) {
            char *pa = NULL, *pb = NULL;
            curl_url_get(ua, parts[i], &pa, CURLU_DEFAULT_PORT);
            curl_url_get(ub, parts[i], &pb, CURLU_DEFAULT_PORT);
            same = pa && pb && !strcasecmp(pa, pb);
            curl_free(pa);
            curl_free(pb);
        }
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

enum pgd_status pgd__hub_status_error(const struct pgd__hub_config *c, const char *repo,
                                      const char *rev, const char *file,
                                      const struct pgd__hub_headers *h, CURLcode rc,
                                      const char *curl_err, char *err, size_t errlen)
{
    const char *what = file ? file : "";
    const char *sep = file ? ": " : "";
    if (rc != CURLE_OK) {
        if (rc == CURLE_WRITE_ERROR)
            return pgd_errf(err, errlen, PGD_ERR_IO, "%s%s%s: writing the download failed",
                            repo, sep, what);
        return pgd_errf(err, errlen, rc == CURLE_OPERATION_TIMEDOUT ? PGD_ERR_TIMEOUT : PGD_ERR_IO,
                        "%s%s%s: cannot reach %s: %s", repo, sep, what, c->endpoint,
                        curl_err && curl_err[0] ? curl_err : curl_easy_strerror(rc));
    }
    long s = h->status;
    bool gated = !strcmp(h->error_code, "GatedRepo");
    if (gated || s == 403)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "%s is gated (HTTP %ld%s%s): accept its license at %s/%s with your "
                        "account, then set HF_TOKEN (or run `huggingface-cli login`) with a "
                        "token of that account", repo, s, h->error_message[0] ? ": " : "",
                        h->error_message, c->endpoint, repo);
    if (s == 401)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "%s: HTTP 401 Unauthorized: %s", repo,
                        c->token ? "the token (HF_TOKEN or the token file) was refused; check "
                                   "it is valid and can read this repo"
                                 : "the repo is private or gated: set HF_TOKEN to a token "
                                   "that can read it");
    if (s == 404) {
        if (!strcmp(h->error_code, "RevisionNotFound"))
            return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                            "%s: revision '%s' not found (no such branch, tag or commit)", repo,
                            rev);
        if (!strcmp(h->error_code, "EntryNotFound") || (file && h->repo_commit[0]))
            return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s@%s: file '%s' not found",
                            repo, rev, what);
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                        "%s: repository not found on %s (check the name; a private repo also "
                        "needs HF_TOKEN)", repo, c->endpoint);
    }
    return pgd_errf(err, errlen, PGD_ERR_IO, "%s%s%s: HTTP %ld from %s%s%s", repo, sep, what, s,
                    c->endpoint, h->error_message[0] ? ": " : "", h->error_message);
}
