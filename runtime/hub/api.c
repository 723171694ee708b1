/* The hub's model info API: GET {endpoint}/api/models/{repo}/revision/{rev} resolves a
 * branch, tag or commit to its commit id ("sha") and lists the repo's files ("siblings",
 * each {"rfilename": path}). One request at a time, retried on transient failures. */
#include "config.h"
#include "runtime/hub/http.h"
#include "runtime/base/buf.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_API_BODY (64u << 20)

/* curl's write callback: the answer into the struct pgd__buf ud. 0 (curl fails the
 * transfer) past MAX_API_BODY or out of memory. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct pgd__buf *b = ud;
    size_t add = size * n;
    if (b->len + add > MAX_API_BODY)
        return 0;
    return pgd__buf_append(b, p, add) ? add : 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* One GET of url into *b with retries; the final headers in *h. */
static enum pgd_status get_with_retries(const struct pgd__hub_config *c, const char *url,
                                        const char *repo, const char *rev, struct pgd__buf *b,
                                        struct pgd__hub_headers *h, char *err, size_t errlen)
{
    CURL *e = curl_easy_init();
    if (!e)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "cannot create a curl handle");
    enum pgd_status st = PGD_OK;
    for (int attempt = 0;; attempt++) {
        struct curl_slist *list = NULL;
        char cerr[CURL_ERROR_SIZE] = "";
        pgd__buf_clear(b);
        curl_easy_reset(e);
        st = pgd__hub_easy_setup(e, c, url, true, h, &list, err, errlen);
        if (st)
            break;
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
        /* The API answers on the endpoint's host; a redirect there (a renamed repo) keeps
         * the token because curl only sends it back to the same host. */
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        CURLcode rc = curl_easy_perform(e);
        curl_slist_free_all(list);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        h->status = status;
        if (rc == CURLE_OK && status == 200)
            break;
        if (attempt < c->max_retries && pgd__hub_retryable(rc, status)) {
            long ms = pgd__hub_backoff_ms(c, attempt, h->retry_after_s);
            fprintf(stderr, "pagoda fetch: %s: %s; retrying in %.1f s (%d/%d)\n", repo,
                    rc ? (cerr[0] ? cerr : curl_easy_strerror(rc)) : "server busy", ms / 1000.0,
                    attempt + 1, c->max_retries);
            sleep_ms(ms);
            continue;
        }
        st = pgd__hub_status_error(c, repo, rev, NULL, h, rc, cerr, err, errlen);
        break;
    }
    curl_easy_cleanup(e);
    return st;
}

/* Reads "sha" and the siblings' "rfilename" out of the API's JSON. */
static enum pgd_status parse_revision(const char *url, const char *text,
                                      char commit[PGD__HUB_COMMIT_LEN + 1],
                                      struct pgd__hub_file **files, size_t *n_files, char *err,
                                      size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: invalid JSON at line %d: %s", url,
                        je.line, je.text);
    enum pgd_status st = PGD_OK;
    const char *sha = json_string_value(json_object_get(root, "sha"));
    json_t *sib = json_object_get(root, "siblings");
    if (!sha || !pgd__hub_is_commit(sha)) {
        st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"sha\" is missing or not a commit id",
                      url);
        goto out;
    }
    if (!json_is_array(sib)) {
        st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"siblings\" is missing", url);
        goto out;
    }
    memcpy(commit, sha, PGD__HUB_COMMIT_LEN + 1);
    size_t n = json_array_size(sib);
    *files = calloc(n ? n : 1, sizeof **files);
    if (!*files) {
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        goto out;
    }
    *n_files = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(sib, i),
                                                             "rfilename"));
        if (!name) {
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                          "%s: \"siblings\"[%zu] has no \"rfilename\" string", url, i);
            break;
        }
        if (!((*files)[(*n_files)++].path = strdup(name))) {
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (st) {
        pgd__hub_files_free(*files, *n_files);
        *files = NULL;
        *n_files = 0;
    }
out:
    json_decref(root);
    return st;
}

enum pgd_status pgd__hub_api_revision(const struct pgd__hub_config *c, const char *repo,
                                      const char *rev, char commit[PGD__HUB_COMMIT_LEN + 1],
                                      struct pgd__hub_file **files, size_t *n_files,
                                      char *err, size_t errlen)
{
    pgd__hub_http_init();
    *files = NULL;
    *n_files = 0;
    /* The revision is one path segment: a branch such as "refs/pr/1" is sent %2F-escaped. */
    char *esc = curl_easy_escape(NULL, rev, 0);
    if (!esc)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    size_t ulen = strlen(c->endpoint) + strlen(repo) + strlen(esc) + 32;
    char *url = malloc(ulen);
    if (!url) {
        curl_free(esc);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    snprintf(url, ulen, "%s/api/models/%s/revision/%s", c->endpoint, repo, esc);
    curl_free(esc);
    struct pgd__buf b = { 0 };
    struct pgd__hub_headers h;
    enum pgd_status st = get_with_retries(c, url, repo, rev, &b, &h, err, errlen);
    if (!st)
        st = parse_revision(url, b.p ? b.p : "", commit, files, n_files, err, errlen);
    pgd__buf_fini(&b);
    free(url);
    return st;
}

void pgd__hub_files_free(struct pgd__hub_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
}
