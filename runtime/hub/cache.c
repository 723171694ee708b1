/* The files of the hub cache: a repo's folder, its refs, the snapshot symlinks into blobs,
 * the .no_exist markers and the blob locks, each written the way huggingface_hub writes it
 * so that either can read what the other left (see hub.h for the layout). */
#include "config.h"
#include "runtime/hub/hub.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

bool pgd__hub_path(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

enum pgd_status pgd__hub_repo_dir(const char *cache, const char *repo, char *buf, size_t len,
                                  char *err, size_t errlen)
{
    /* "ORG/NAME" -> "models--ORG--NAME" (huggingface_hub's repo_folder_name). */
    const char *slash = strchr(repo, '/');
    int n = slash ? snprintf(buf, len, "%s/models--%.*s--%s", cache, (int)(slash - repo), repo,
                             slash + 1)
                  : snprintf(buf, len, "%s/models--%s", cache, repo);
    if (n < 0 || (size_t)n >= len)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: the cache path is too long",
                        cache);
    return PGD_OK;
}

/* A revision is used as a path under refs/: refuse what would leave that folder. */
static bool safe_rel_path(const char *p)
{
    if (!p[0] || p[0] == '/')
        return false;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.') || n == 0)
            return false;
        s += n;
        if (*s == '/')
            s++;
    }
    return true;
}

enum pgd_status pgd__hub_read_ref(const char *repo_dir, const char *rev, char *commit,
                                  char *err, size_t errlen)
{
    if (pgd__hub_is_commit(rev)) {
        memcpy(commit, rev, PGD__HUB_COMMIT_LEN + 1);
        return PGD_OK;
    }
    if (!safe_rel_path(rev))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "revision '%s' is not a valid name",
                        rev);
    char path[4096];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    FILE *f = fopen(path, "r");
    if (!f)
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    char buf[64] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* huggingface_hub writes the bare commit, no newline; tolerate one. */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (!pgd__hub_is_commit(buf))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: not a commit id ('%s')", path, buf);
    memcpy(commit, buf, PGD__HUB_COMMIT_LEN + 1);
    return PGD_OK;
}

enum pgd_status pgd__hub_mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: path too long", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, 0775) != 0 && errno != EEXIST)
                return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot create: %s", p,
                                strerror(errno));
            *s = saved;
            if (!saved)
                break;
        }
    }
    return PGD_OK;
}

enum pgd_status pgd__hub_mkdirs_parent(const char *path, char *err, size_t errlen)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: path too long", path);
    char *slash = strrchr(p, '/');
    if (!slash || slash == p)
        return PGD_OK;
    *slash = '\0';
    return pgd__hub_mkdirs(p, err, errlen);
}

/* Writes text to path through a temporary file in the same folder and rename(2), so a
 * concurrent reader sees the old or the new contents, never a part. */
static enum pgd_status write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", tmp, strerror(errno));
    bool ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", path, strerror(e));
    }
    return PGD_OK;
}

enum pgd_status pgd__hub_write_ref(const char *repo_dir, const char *rev, const char *commit,
                                   char *err, size_t errlen)
{
    if (!strcmp(rev, commit))
        return PGD_OK;
    if (!safe_rel_path(rev))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "revision '%s' is not a valid name",
                        rev);
    char path[4096], old[PGD__HUB_COMMIT_LEN + 1];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    /* Unchanged: leave it (the cache may be shared read-only, as huggingface_hub does). */
    if (pgd__hub_read_ref(repo_dir, rev, old, NULL, 0) == PGD_OK && !strcmp(old, commit))
        return PGD_OK;
    enum pgd_status st = pgd__hub_mkdirs_parent(path, err, errlen);
    return st ? st : write_atomic(path, commit, err, errlen);
}

enum pgd_status pgd__hub_link_snapshot(const char *repo_dir, const char *commit,
                                       const char *path, const char *etag, char *err,
                                       size_t errlen)
{
    if (!safe_rel_path(path))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "repo file name '%s' is not a safe path",
                        path);
    char link[4096], target[4096], tmp[4200];
    snprintf(link, sizeof link, "%s/snapshots/%s/%s", repo_dir, commit, path);
    /* From snapshots/{commit}/a/b/file, blobs/ is up one level per folder of the path plus
     * two (the commit folder and snapshots/). */
    size_t pos = 0;
    for (const char *s = path; (s = strchr(s, '/')); s++)
        pos += (size_t)snprintf(target + pos, sizeof target - pos, "../");
    snprintf(target + pos, sizeof target - pos, "../../blobs/%s", etag);
    enum pgd_status st = pgd__hub_mkdirs_parent(link, err, errlen);
    if (st)
        return st;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        int e = errno;
        unlink(tmp);
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot link to %s: %s", link, target,
                        strerror(e));
    }
    return PGD_OK;
}

void pgd__hub_mark_no_exist(const char *repo_dir, const char *commit, const char *path)
{
    if (!safe_rel_path(path))
        return;
    char p[4096];
    snprintf(p, sizeof p, "%s/.no_exist/%s/%s", repo_dir, commit, path);
    if (pgd__hub_mkdirs_parent(p, NULL, 0) != PGD_OK)
        return;
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

int pgd__hub_lock(const char *path, bool wait, char *err, size_t errlen)
{
    if (pgd__hub_mkdirs_parent(path, err, errlen) != PGD_OK)
        return -1;
    /* 0664: several users sharing a cache can wait on each other's locks (huggingface_hub
     * creates its lock files group-writable for the same reason). */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (fd < 0) {
        pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return -2;
        pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
        return -1;
    }
    return fd;
}
