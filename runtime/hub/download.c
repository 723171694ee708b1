/* The parallel downloader: one job per file, driven through libcurl's multi interface with
 * at most c->max_connections transfers at once. A job's stages:
 *
 *   HEAD  {endpoint}/{repo}/resolve/{commit}/{path}, redirects not followed: the hub answers
 *         with X-Repo-Commit, the ETag (X-Linked-Etag for an LFS file, the SHA-256 of its
 *         contents), the size (X-Linked-Size) and, for LFS files, a Location on another
 *         host (the CDN). A relative Location (a renamed repo) is followed on the hub.
 *   LOCK  .locks/models--ORG--NAME/{etag}.lock, non-blocking: while another process (or
 *         huggingface_hub) holds it the job waits and the others run. If the blob exists
 *         once locked, only the snapshot link is made.
 *   GET   the Location (without Authorization when it is another host) or the resolve URL,
 *         appending to blobs/{etag}.incomplete from its current length (Range: bytes=N-).
 *         Then: the size must match, an LFS blob's SHA-256 must equal its ETag (else the
 *         partial file is deleted and the job fails), rename to blobs/{etag}, link
 *         snapshots/{commit}/{path}, unlock.
 *
 * 429, 5xx, timeouts and cut connections are retried (Retry-After honoured, else backoff),
 * keeping the bytes already written. A full disk deletes the partial file. Nothing is
 * linked into snapshots/ before its blob is complete and checked. */
#include "config.h"
#include "runtime/hub/http.h"
#include "runtime/base/clock.h"
#include <pagoda/log.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum stage { S_HEAD, S_LOCK, S_GET, S_DONE, S_FAILED };

struct job {
    const char *path;           /* the file in the repo (borrowed) */
    enum stage stage;
    int attempts;
    long long not_before;       /* the next try waits until then (monotonic ms) */
    bool waiting_logged;
    char *url;                  /* HEAD: the resolve URL; GET: where the bytes are */
    bool auth;                  /* send the token with the GET */
    char etag[160];
    long long size;             /* -1: unknown */
    bool lfs;                   /* etag is a SHA-256: check the contents against it */
    int lock_fd, fd;            /* -1 when not held/open */
    long long have;             /* bytes in blobs/{etag}.incomplete */
    long long fetched;          /* bytes received in this run (rate) */
    EVP_MD_CTX *sha;
    bool body_checked, discard_body;
    int write_errno;
    CURL *easy;
    struct curl_slist *list;
    struct pgd__hub_headers h;
    char cerr[CURL_ERROR_SIZE];
    char msg[1024];             /* why it failed */
    enum pgd_status status;     /* and its status */
};

struct run {
    const struct pgd__hub_config *c;
    const char *repo, *rev, *commit, *repo_dir;
    char locks_dir[4096];
    bool quiet;
    CURLM *multi;
    struct job *jobs;
    size_t n, active, finished;
};

/* The paths fit: repo_dir is at most 4095 bytes and the buffers are 4200. */
static void blob_path(const struct run *r, const struct job *j, char *buf, size_t len,
                      const char *suffix)
{
    pgd__hub_path(buf, len, "%s/blobs/%s%s", r->repo_dir, j->etag, suffix);
}

static void job_release(struct job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    if (j->lock_fd >= 0)
        close(j->lock_fd);   /* closing the descriptor drops the flock */
    j->fd = j->lock_fd = -1;
    EVP_MD_CTX_free(j->sha);
    j->sha = NULL;
}

static void job_fail(struct run *r, struct job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_fail(struct run *r, struct job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    va_end(ap);
    if (!j->status)
        j->status = PGD_ERR_IO;
    job_release(j);
    j->stage = S_FAILED;
    r->finished++;
    fprintf(stderr, "pagoda fetch: %s\n", j->msg);
}

/* Retries a transient failure later, or fails the job when out of attempts. */
static void job_retry_or_fail(struct run *r, struct job *j, CURLcode rc, enum stage again)
{
    long status = j->h.status;
    if (j->attempts < r->c->max_retries && pgd__hub_retryable(rc, status)) {
        long ms = pgd__hub_backoff_ms(r->c, j->attempts, j->h.retry_after_s);
        j->attempts++;
        j->not_before = pgd__now_ms() + ms;
        j->stage = again;
        char why[160];
        if (rc)
            pgd__hub_path(why, sizeof why, "%s", j->cerr[0] ? j->cerr : curl_easy_strerror(rc));
        else
            snprintf(why, sizeof why, "HTTP %ld", status);
        fprintf(stderr, "pagoda fetch: %s: %s; retrying in %.1f s (%d/%d)%s\n", j->path, why,
                ms / 1000.0, j->attempts, r->c->max_retries,
                j->have > 0 && again == S_GET ? ", resuming" : "");
        return;
    }
    char err[1024];
    j->status = pgd__hub_status_error(r->c, r->repo, r->rev, j->path, &j->h, rc, j->cerr, err,
                                      sizeof err);
    job_fail(r, j, "%s%s", err,
             j->have > 0 ? " (the partial download is kept; run again to resume)" : "");
}

/* ---- transfers ------------------------------------------------------------------------ */

/* CURLOPT_WRITEFUNCTION of a GET: appends to the .incomplete file and the hash. */
static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    struct job *j = ud;
    size_t len = size * nmemb;
    if (!j->body_checked) {
        j->body_checked = true;
        long code = 0;
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200 && j->have > 0) {
            /* The server ignored the Range: start the file over. */
            if (ftruncate(j->fd, 0) != 0 || lseek(j->fd, 0, SEEK_SET) != 0) {
                j->write_errno = errno;
                return 0;
            }
            j->have = 0;
            if (j->sha)
                EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL);
        }
        j->discard_body = code != 200 && code != 206;  /* an error page */
    }
    if (j->discard_body)
        return len;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(j->fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            j->write_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        off += (size_t)w;
    }
    if (j->sha)
        EVP_DigestUpdate(j->sha, p, len);
    j->have += (long long)len;
    j->fetched += (long long)len;
    return len;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
    return size * nmemb;
}

/* Starts a HEAD or GET for j in the multi handle. */
static void start_transfer(struct run *r, struct job *j, bool head)
{
    j->easy = curl_easy_init();
    j->cerr[0] = '\0';
    char err[512];
    if (!j->easy || pgd__hub_easy_setup(j->easy, r->c, j->url, head || j->auth, &j->h,
                                        &j->list, err, sizeof err)) {
        job_fail(r, j, "%s: cannot set up the request", j->path);
        return;
    }
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->cerr);
    if (head) {
        curl_easy_setopt(j->easy, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(j->easy, CURLOPT_TIMEOUT, 30L);
    } else {
        j->body_checked = j->discard_body = false;
        j->write_errno = 0;
        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 1L);
        if (j->have > 0) {
            char range[32];
            snprintf(range, sizeof range, "%lld-", j->have);
            curl_easy_setopt(j->easy, CURLOPT_RANGE, range);
        }
    }
    curl_multi_add_handle(r->multi, j->easy);
    r->active++;
}

static void end_transfer(struct run *r, struct job *j)
{
    curl_multi_remove_handle(r->multi, j->easy);
    curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->list);
    j->easy = NULL;
    j->list = NULL;
    r->active--;
}

/* ---- stages ------------------------------------------------------------------------- */

static bool is_sha256_hex(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return false;
    return n == 64;
}

/* location resolved against base (it may be relative): an owned absolute URL or NULL. */
static char *resolve_location(const char *base, const char *location)
{
    CURLU *u = curl_url();
    char *abs = NULL, *out = NULL;
    if (u && !curl_url_set(u, CURLUPART_URL, base, 0) &&
        !curl_url_set(u, CURLUPART_URL, location, 0) && !curl_url_get(u, CURLUPART_URL, &abs, 0))
        out = strdup(abs);
    curl_free(abs);
    curl_url_cleanup(u);
    return out;
}

/* A HEAD finished: take the ETag, size and download location, or follow a relative
 * redirect on the hub. */
static void head_done(struct run *r, struct job *j, CURLcode rc)
{
    long s = j->h.status;
    if (rc == CURLE_OK && s >= 300 && s < 400 && j->h.location[0] && !j->h.repo_commit[0]) {
        /* Not a file redirect of the hub (those carry X-Repo-Commit): a renamed repo, which
         * huggingface_hub follows only on the hub's own host. */
        char *next = resolve_location(j->url, j->h.location);
        if (!next || !pgd__hub_same_host(j->url, next) || j->attempts++ >= 5) {
            job_fail(r, j, "%s: the hub redirected to %s", j->path, j->h.location);
            free(next);
            return;
        }
        free(j->url);
        j->url = next;
        return;   /* still S_HEAD: asked again at the new place */
    }
    if (rc != CURLE_OK || s < 200 || s >= 400) {
        if (rc == CURLE_OK && s == 404 && j->h.repo_commit[0])
            pgd__hub_mark_no_exist(r->repo_dir, r->commit, j->path);
        job_retry_or_fail(r, j, rc, S_HEAD);
        return;
    }
    const char *etag = j->h.linked_etag[0] ? j->h.linked_etag : j->h.etag;
    if (!j->h.repo_commit[0] || !etag[0]) {
        job_fail(r, j, "%s: the answer of %s has no %s header: HF_ENDPOINT does not look like "
                 "a Hugging Face hub", j->path, r->c->endpoint,
                 j->h.repo_commit[0] ? "ETag" : "X-Repo-Commit");
        return;
    }
    snprintf(j->etag, sizeof j->etag, "%s", etag);
    if (strchr(j->etag, '/') || !strcmp(j->etag, ".") || !strcmp(j->etag, "..")) {
        job_fail(r, j, "%s: ETag '%s' cannot name a blob", j->path, j->etag);
        return;
    }
    bool redirect = s >= 300;
    j->size = j->h.linked_size >= 0 ? j->h.linked_size : redirect ? -1 : j->h.content_length;
    j->lfs = is_sha256_hex(j->etag);
    if (redirect && j->h.location[0]) {
        char *next = resolve_location(j->url, j->h.location);
        if (!next) {
            job_fail(r, j, "%s: bad Location '%s'", j->path, j->h.location);
            return;
        }
        /* The token goes to the hub only, never to the CDN a Location points at. */
        j->auth = pgd__hub_same_host(j->url, next);
        free(j->url);
        j->url = next;
    } else {
        j->auth = true;
    }
    j->attempts = 0;
    j->stage = S_LOCK;
    j->not_before = 0;
}

/* Hashes the bytes already in the .incomplete file (a resumed LFS download). */
static bool hash_existing(struct job *j)
{
    char buf[1 << 16];
    for (long long off = 0; off < j->have;) {
        ssize_t n = pread(j->fd, buf, sizeof buf, off);
        if (n <= 0)
            return false;
        EVP_DigestUpdate(j->sha, buf, (size_t)n);
        off += n;
    }
    return true;
}

static void link_done(struct run *r, struct job *j)
{
    char err[1024];
    if (pgd__hub_link_snapshot(r->repo_dir, r->commit, j->path, j->etag, err, sizeof err)) {
        job_fail(r, j, "%s", err);
        return;
    }
    job_release(j);
    j->stage = S_DONE;
    r->finished++;
}

/* The blob is complete in .incomplete: check it, rename it into blobs/, link it. */
static void finalize(struct run *r, struct job *j)
{
    char part[4200], blob[4200];
    blob_path(r, j, part, sizeof part, ".incomplete");
    blob_path(r, j, blob, sizeof blob, "");
    if (j->lfs) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        EVP_DigestFinal_ex(j->sha, md, &mdlen);
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        if (strcasecmp(hex, j->etag) != 0) {
            unlink(part);
            job_fail(r, j, "%s: checksum mismatch: the hub says SHA-256 %s, the download is "
                     "%s; the partial file was deleted", j->path, j->etag, hex);
            return;
        }
    }
    if (fsync(j->fd) != 0 || fchmod(j->fd, 0644) != 0 || rename(part, blob) != 0) {
        int e = errno;
        if (e == ENOSPC)
            unlink(part);
        job_fail(r, j, "%s: %s: %s", j->path, blob, strerror(e));
        return;
    }
    if (!r->quiet && !r->c->progress) {
        char hb[32];
        fprintf(stderr, "pagoda fetch: %s (%s) done\n", j->path,
                pgd__hub_human_bytes(j->have, hb, sizeof hb));
    }
    link_done(r, j);
}

/* Takes the blob's lock (or waits for it) and opens the partial file. */
static void lock_and_open(struct run *r, struct job *j)
{
    char lock[4200], part[4200], blob[4200], err[1024];
    if (!pgd__hub_path(lock, sizeof lock, "%s/%s.lock", r->locks_dir, j->etag)) {
        job_fail(r, j, "%s: the cache path is too long", j->path);
        return;
    }
    j->lock_fd = pgd__hub_lock(lock, false, err, sizeof err);
    if (j->lock_fd == -2) {
        if (!j->waiting_logged && !r->quiet)
            fprintf(stderr, "pagoda fetch: %s: another download of it is running; waiting\n",
                    j->path);
        j->waiting_logged = true;
        j->lock_fd = -1;
        j->not_before = pgd__now_ms() + 100;
        return;
    }
    if (j->lock_fd < 0) {
        job_fail(r, j, "%s", err);
        return;
    }
    blob_path(r, j, blob, sizeof blob, "");
    if (access(blob, F_OK) == 0) {
        link_done(r, j);
        return;
    }
    blob_path(r, j, part, sizeof part, ".incomplete");
    if (pgd__hub_mkdirs_parent(part, err, sizeof err)) {
        job_fail(r, j, "%s", err);
        return;
    }
    j->fd = open(part, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st;
    if (j->fd < 0 || fstat(j->fd, &st) != 0) {
        job_fail(r, j, "%s: %s", part, strerror(errno));
        return;
    }
    j->have = st.st_size;
    if (j->size >= 0 && j->have > j->size) {   /* longer than the file: not ours */
        if (ftruncate(j->fd, 0) != 0) {
            job_fail(r, j, "%s: %s", part, strerror(errno));
            return;
        }
        j->have = 0;
    }
    if (j->lfs && (!(j->sha = EVP_MD_CTX_new()) ||
                   !EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL) || !hash_existing(j))) {
        job_fail(r, j, "%s: cannot hash %s", j->path, part);
        return;
    }
    if (j->have > 0 && !r->quiet)
        fprintf(stderr, "pagoda fetch: %s: resuming at byte %lld\n", j->path, j->have);
    if (j->size >= 0 && j->have == j->size) {
        finalize(r, j);
        return;
    }
    j->stage = S_GET;
    j->attempts = 0;
    start_transfer(r, j, false);
}

/* A GET finished (or broke off). */
static void get_done(struct run *r, struct job *j, CURLcode rc)
{
    char part[4200];
    blob_path(r, j, part, sizeof part, ".incomplete");
    if (j->write_errno) {
        int e = j->write_errno;
        /* No room (a full disk, a quota, a file size limit): free what the partial file
         * took; snapshots/ never saw it. */
        bool no_room = e == ENOSPC || e == EDQUOT || e == EFBIG;
        if (no_room)
            unlink(part);
        job_fail(r, j, "%s: writing %s: %s%s", j->path, part, strerror(e),
                 no_room ? " (no room left: the partial file was deleted, nothing was linked "
                           "into snapshots/)" : "");
        return;
    }
    long s = j->h.status;
    if (rc == CURLE_OK && s == 416 && j->size >= 0 && j->have == j->size) {
        finalize(r, j);
        return;
    }
    if (rc == CURLE_OK && s == 416) {   /* our partial file does not fit the blob: restart */
        if (ftruncate(j->fd, 0) != 0) {
            job_fail(r, j, "%s: %s", part, strerror(errno));
            return;
        }
        j->have = 0;
        if (j->sha)
            EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL);
    }
    if (rc == CURLE_OK && (s == 200 || s == 206)) {
        if (j->size < 0 || j->have == j->size) {
            finalize(r, j);
            return;
        }
        rc = CURLE_PARTIAL_FILE;   /* a short body without an error: resume it */
    }
    job_retry_or_fail(r, j, rc, S_GET);
}

/* ---- the loop ------------------------------------------------------------------------- */

static void start_ready_jobs(struct run *r, long long now)
{
    for (size_t i = 0; i < r->n && r->active < (size_t)r->c->max_connections; i++) {
        struct job *j = &r->jobs[i];
        if (j->easy || j->not_before > now)
            continue;
        if (j->stage == S_HEAD)
            start_transfer(r, j, true);
        else if (j->stage == S_LOCK)
            lock_and_open(r, j);
        else if (j->stage == S_GET)
            start_transfer(r, j, false);
    }
}

static void collect_done(struct run *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct job *j = NULL;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        long code = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        if (code)
            j->h.status = code;
        bool head = j->stage == S_HEAD;
        end_transfer(r, j);
        if (head)
            head_done(r, j, rc);
        else
            get_done(r, j, rc);
    }
}

static void draw(struct run *r, long long t0, int *lines)
{
    struct pgd__hub_progress_row rows[64];
    size_t nr = 0;
    long long done = 0, total = 0, fetched = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct job *j = &r->jobs[i];
        total += j->size > 0 ? j->size : 0;
        done += j->stage == S_DONE && j->size > 0 ? j->size : j->have;
        fetched += j->fetched;
        if (j->stage == S_GET && nr < 64)
            rows[nr++] = (struct pgd__hub_progress_row){ j->path, j->have, j->size };
    }
    double secs = (pgd__now_ms() - t0) / 1000.0;
    pgd__hub_progress_draw(rows, nr, done, total, r->finished, r->n,
                           secs > 0 ? fetched / secs : 0, lines);
}

/* A job at its first stage: HEAD {endpoint}/{repo}/resolve/{commit}/{path}. */
static void job_init(struct run *r, struct job *j, const char *path)
{
    *j = (struct job){ .path = path, .size = -1, .fd = -1, .lock_fd = -1 };
    char *esc = curl_easy_escape(NULL, path, 0);
    size_t ulen = strlen(r->c->endpoint) + strlen(r->repo) + (esc ? strlen(esc) : 0) + 64;
    j->url = esc ? malloc(ulen) : NULL;
    if (j->url) {
        /* The path keeps its '/' separators: unescape them back. */
        char *w = esc, *p = esc;
        while (*p) {
            if (!strncmp(p, "%2F", 3)) {
                *w++ = '/';
                p += 3;
            } else {
                *w++ = *p++;
            }
        }
        *w = '\0';
        snprintf(j->url, ulen, "%s/%s/resolve/%s/%s", r->c->endpoint, r->repo, r->commit, esc);
    }
    curl_free(esc);
    if (!j->url)
        job_fail(r, j, "%s: out of memory", path);
}

enum pgd_status pgd__hub_download(const struct pgd__hub_config *c, const char *repo,
                                  const char *rev, const char *commit, const char *repo_dir,
                                  const char *const *paths, size_t n, bool quiet, char *err,
                                  size_t errlen)
{
    if (!n)
        return PGD_OK;
    pgd__hub_http_init();
    struct run r = { .c = c, .repo = repo, .rev = rev, .commit = commit,
                     .repo_dir = repo_dir, .quiet = quiet };
    const char *base = strrchr(repo_dir, '/');
    snprintf(r.locks_dir, sizeof r.locks_dir, "%.*s/.locks%s",
             (int)(base ? base - repo_dir : 0), repo_dir, base ? base : "");
    r.jobs = calloc(n, sizeof *r.jobs);
    r.multi = curl_multi_init();
    if (!r.jobs || !r.multi) {
        free(r.jobs);
        curl_multi_cleanup(r.multi);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    r.n = n;
    for (size_t i = 0; i < n; i++)
        job_init(&r, &r.jobs[i], paths[i]);
    long long t0 = pgd__now_ms(), last_draw = 0;
    int lines = 0;
    while (r.finished < r.n) {
        long long now = pgd__now_ms();
        start_ready_jobs(&r, now);
        int running = 0;
        curl_multi_perform(r.multi, &running);
        collect_done(&r);
        if (c->progress && !quiet && now - last_draw >= 200) {
            draw(&r, t0, &lines);
            last_draw = now;
        }
        if (r.finished < r.n)
            curl_multi_poll(r.multi, NULL, 0, 50, NULL);
    }
    if (c->progress && !quiet)
        draw(&r, t0, &lines);
    size_t failed = 0;
    const char *first = NULL;
    enum pgd_status first_st = PGD_ERR_IO;
    for (size_t i = 0; i < n; i++) {
        if (r.jobs[i].stage == S_FAILED && !failed++) {
            first = r.jobs[i].msg;
            first_st = r.jobs[i].status;
        }
    }
    enum pgd_status st = PGD_OK;
    if (failed)
        st = pgd_errf(err, errlen, first_st, "%s (%zu of %zu files failed)", first, failed, n);
    for (size_t i = 0; i < n; i++) {
        free(r.jobs[i].url);
        job_release(&r.jobs[i]);
    }
    free(r.jobs);
    curl_multi_cleanup(r.multi);
    return st;
}
