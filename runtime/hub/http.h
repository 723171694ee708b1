/* libcurl plumbing shared by the hub client's requests: one easy handle's common options,
 * the response headers the hub protocol uses, the retry policy, and the error message for a
 * failed status. Internal to runtime/hub/. */
#ifndef PGD_RUNTIME_HUB_HTTP_H
#define PGD_RUNTIME_HUB_HTTP_H

#include "runtime/hub/hub.h"
#include <curl/curl.h>

/* The headers of the last response of a transfer (reset at each status line, so after a
 * followed redirect they are the final response's). */
struct pgd__hub_headers {
    long status;               /* from the status line */
    char repo_commit[64];      /* X-Repo-Commit */
    char linked_etag[160];     /* X-Linked-Etag (an LFS file's SHA-256), normalized */
    char etag[160];            /* ETag, normalized (W/ and quotes removed) */
    long long linked_size;     /* X-Linked-Size, -1 when absent */
    long long content_length;  /* Content-Length, -1 when absent */
    char location[2048];       /* Location */
    long retry_after_s;        /* Retry-After in seconds, -1 when absent */
    char error_code[64];       /* X-Error-Code: RepoNotFound, RevisionNotFound, GatedRepo, ... */
    char error_message[512];   /* X-Error-Message */
};

/* Once per process (thread-safe). */
void pgd__hub_http_init(void);

/* Common options: URL, user agent, timeouts (connect 10 s; < 1 byte/s for 30 s aborts), the
 * header callback filling *h, Accept-Encoding: identity (sizes must be the stored ones) and,
 * when with_auth and c->token, Authorization: Bearer. *list receives the header list the
 * caller frees with curl_slist_free_all after the transfer. */
enum pgd_status pgd__hub_easy_setup(CURL *e, const struct pgd__hub_config *c, const char *url,
                                    bool with_auth, struct pgd__hub_headers *h,
                                    struct curl_slist **list, char *err, size_t errlen);

/* Transient: worth retrying (429, 5xx except 501, timeouts, refused or cut connections). */
bool pgd__hub_retryable(CURLcode rc, long status);
/* The wait before retry number attempt (0-based): Retry-After when the server sent one
 * (capped at 120 s), else c->backoff_ms doubled per attempt, capped at 8 s. */
long pgd__hub_backoff_ms(const struct pgd__hub_config *c, int attempt, long retry_after_s);
/* The message for a failed response to a request about repo (and file, when not NULL). */
enum pgd_status pgd__hub_status_error(const struct pgd__hub_config *c, const char *repo,
                                      const char *rev, const char *file,
                                      const struct pgd__hub_headers *h, CURLcode rc,
                                      const char *curl_err, char *err, size_t errlen);

/* True when the two URLs have the same scheme, host and port. */
bool pgd__hub_same_host(const char *a, const char *b);

/* A file of the repo listing. */
struct pgd__hub_file {
    char *path;
};

/* GET {endpoint}/api/models/{repo}/revision/{rev}: the commit it resolves to and the files
 * (siblings) of the repo at that commit. Retries transient failures. */
enum pgd_status pgd__hub_api_revision(const struct pgd__hub_config *c, const char *repo,
                                      const char *rev, char commit[PGD__HUB_COMMIT_LEN + 1],
                                      struct pgd__hub_file **files, size_t *n_files,
                                      char *err, size_t errlen);
void pgd__hub_files_free(struct pgd__hub_file *files, size_t n);

/* download.c: fetches paths (files of repo at commit) into the cache under repo_dir, in
 * parallel (c->max_connections transfers): HEAD for the ETag and size, the blob's lock, a
 * GET resumed from blobs/{etag}.incomplete, the SHA-256 check of LFS blobs, the rename into
 * blobs/ and the snapshot symlink. Every file is attempted; the first failure's message is
 * returned (with how many failed). */
enum pgd_status pgd__hub_download(const struct pgd__hub_config *c, const char *repo,
                                  const char *rev, const char *commit, const char *repo_dir,
                                  const char *const *paths, size_t n, bool quiet, char *err,
                                  size_t errlen);

/* progress.c: one terminal frame of the per-file bars and the total (redrawn in place:
 * *lines is how many lines the last frame took), or nothing when not a terminal. */
struct pgd__hub_progress_row {
    const char *name;
    long long have, size;   /* size -1: unknown */
};
void pgd__hub_progress_draw(const struct pgd__hub_progress_row *rows, size_t n,
                            long long done, long long total, size_t files_done,
                            size_t files_total, double rate, int *lines);

#endif
