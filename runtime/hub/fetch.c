/* One fetch of a repo revision into the cache, the way huggingface_hub's snapshot_download
 * does it: the model info API resolves the revision to a commit and lists the files;
 * refs/{revision} records the commit; files already linked in snapshots/{commit}/ are not
 * asked for again; the rest go to the parallel downloader (download.c). Offline
 * (HF_HUB_OFFLINE), the revision is resolved through refs/ and the snapshot must exist. */
#include "config.h"
#include "runtime/hub/filter.h"
#include "runtime/hub/http.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool selected(const struct pgd__hub_fetch_opts *o, const char *path)
{
    return pgd__hub_selected(path, o->include, o->n_include, o->exclude, o->n_exclude);
}

/* Copies src (following its symlink) to dst, replacing it. */
static enum pgd_status copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    enum pgd_status st = pgd__hub_mkdirs_parent(dst, err, errlen);
    if (st)
        return st;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", dst, (long)getpid());
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = out >= 0;
    char buf[1 << 16];
    ssize_t n = 0;
    while (ok && (n = read(in, buf, sizeof buf)) > 0)
        ok = write(out, buf, (size_t)n) == n;
    ok = ok && n == 0;
    int e = errno;
    if (out >= 0 && close(out) != 0)
        ok = false;
    if (in >= 0)
        close(in);
    if (ok && rename(tmp, dst) == 0)
        return PGD_OK;
    e = errno ? errno : e;
    unlink(tmp);
    return pgd_errf(err, errlen, PGD_ERR_IO, "copying %s to %s: %s", src, dst, strerror(e));
}

/* Walks snapshot folder dir (prefix: the path under the snapshot) calling fn on each file. */
static enum pgd_status walk(const char *dir, const char *prefix,
                            enum pgd_status (*fn)(void *, const char *), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d)
        return PGD_OK;
    enum pgd_status st = PGD_OK;
    struct dirent *de;
    while (!st && (de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
            continue;
        char full[4096], rel[4096];
        snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
        snprintf(rel, sizeof rel, "%s%s%s", prefix, prefix[0] ? "/" : "", de->d_name);
        struct stat sb;
        if (stat(full, &sb) != 0)
            continue;   /* a dangling link: its blob is gone */
        st = S_ISDIR(sb.st_mode) ? walk(full, rel, fn, ctx) : fn(ctx, rel);
    }
    closedir(d);
    return st;
}

struct copy_ctx {
    const struct pgd__hub_fetch_opts *o;
    const char *snapshot;
    size_t n;
    char *err;
    size_t errlen;
};

static enum pgd_status copy_one(void *p, const char *rel)
{
    struct copy_ctx *c = p;
    if (!selected(c->o, rel))
        return PGD_OK;
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/%s", c->snapshot, rel);
    snprintf(dst, sizeof dst, "%s/%s", c->o->local_dir, rel);
    c->n++;
    return copy_file(src, dst, c->err, c->errlen);
}

static enum pgd_status count_one(void *p, const char *rel)
{
    struct copy_ctx *c = p;
    c->n += selected(c->o, rel);
    return PGD_OK;
}

/* The snapshot's selected files into o->local_dir (real files, not links). */
static enum pgd_status copy_to_local_dir(const struct pgd__hub_fetch_opts *o,
                                         const char *snapshot, char *err, size_t errlen)
{
    struct copy_ctx c = { o, snapshot, 0, err, errlen };
    enum pgd_status st = pgd__hub_mkdirs(o->local_dir, err, errlen);
    return st ? st : walk(snapshot, "", copy_one, &c);
}

/* Offline: refs/{rev} (or the commit itself) and an existing snapshot with at least one
 * selected file. */
static enum pgd_status from_cache(const struct pgd__hub_config *c,
                                  const struct pgd__hub_fetch_opts *o, const char *rev,
                                  const char *repo_dir, const char *why, char *snapshot,
                                  size_t len, char *err, size_t errlen)
{
    char commit[PGD__HUB_COMMIT_LEN + 1];
    struct stat sb;
    if (pgd__hub_read_ref(repo_dir, rev, commit, NULL, 0) == PGD_OK) {
        snprintf(snapshot, len, "%s/snapshots/%s", repo_dir, commit);
        struct copy_ctx cc = { o, snapshot, 0, NULL, 0 };
        if (stat(snapshot, &sb) == 0 && S_ISDIR(sb.st_mode) &&
            walk(snapshot, "", count_one, &cc) == PGD_OK && cc.n > 0)
            return PGD_OK;
    }
    return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                    "%s@%s is not in the cache (%s) and %s: fetch it online first "
                    "(`pagoda fetch %s%s%s`)", o->repo, rev, c->cache_dir, why, o->repo,
                    strcmp(rev, "main") ? "@" : "", strcmp(rev, "main") ? rev : "");
}

/* Online: the file list, the ref, the markers for absent default files and the downloads
 * of what the snapshot lacks. */
static enum pgd_status from_hub(const struct pgd__hub_config *c,
                                const struct pgd__hub_fetch_opts *o, const char *rev,
                                const char *repo_dir, struct pgd__hub_file *files, size_t n,
                                const char *commit, char *err, size_t errlen)
{
    enum pgd_status st = pgd__hub_write_ref(repo_dir, rev, commit, err, errlen);
    const char **todo = calloc(n ? n : 1, sizeof *todo);
    if (!st && !todo)
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    if (st) {
        free(todo);
        return st;
    }
    size_t n_todo = 0, n_sel = 0;
    for (size_t i = 0; i < n; i++) {
        if (!selected(o, files[i].path))
            continue;
        n_sel++;
        char pointer[4096];
        struct stat sb;
        if (!pgd__hub_path(pointer, sizeof pointer, "%s/snapshots/%s/%s", repo_dir, commit,
                           files[i].path) ||
            stat(pointer, &sb) != 0)   /* absent, or a link whose blob is gone */
            todo[n_todo++] = files[i].path;
    }
    /* transformers asks for generation_config.json and the like by name: a marker saves it
     * a request (and an error offline) for a file this commit does not have. */
    const char *lit;
    for (size_t i = 0; pgd__hub_default_is_literal(i, &lit); i++) {
        bool have = !lit;
        for (size_t k = 0; !have && k < n; k++)
            have = !strcmp(files[k].path, lit);
        if (!have)
            pgd__hub_mark_no_exist(repo_dir, commit, lit);
    }
    if (!n_sel)
        st = pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                      "%s@%s: no file of the repo's %zu matches the default set and --include "
                      "(less --exclude)", o->repo, rev, n);
    if (!st && !o->quiet)
        fprintf(stderr, "pagoda fetch: %s@%s = %s: %zu files, %zu to download\n", o->repo, rev,
                commit, n_sel, n_todo);
    if (!st)
        st = pgd__hub_download(c, o->repo, rev, commit, repo_dir, todo, n_todo, o->quiet, err,
                               errlen);
    free(todo);
    return st;
}

enum pgd_status pgd__hub_fetch(const struct pgd__hub_config *c,
                               const struct pgd__hub_fetch_opts *o, char *out, size_t outlen,
                               char *err, size_t errlen)
{
    const char *rev = o->revision && o->revision[0] ? o->revision : "main";
    char repo_dir[4096], snapshot[4200];
    if (!pgd__hub_is_repo_id(o->repo) || strchr(o->repo, '@'))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "'%s' is not a hub id: expected ORG/NAME", o->repo);
    enum pgd_status st = pgd__hub_repo_dir(c->cache_dir, o->repo, repo_dir, sizeof repo_dir, err,
                                           errlen);
    if (st)
        return st;
    if (c->offline) {
        st = from_cache(c, o, rev, repo_dir, "HF_HUB_OFFLINE is set", snapshot,
                        sizeof snapshot, err, errlen);
    } else {
        char commit[PGD__HUB_COMMIT_LEN + 1];
        struct pgd__hub_file *files = NULL;
        size_t n = 0;
        /* With a cached snapshot to fall back on, a hub that does not answer is not waited
         * for (no retries), as huggingface_hub does for its fast fallback. */
        struct pgd__hub_config quick = *c;
        if (o->cache_fallback && from_cache(c, o, rev, repo_dir, "", snapshot, sizeof snapshot,
                                            NULL, 0) == PGD_OK)
            quick.max_retries = 0;
        st = pgd__hub_api_revision(&quick, o->repo, rev, commit, &files, &n, err, errlen);
        if (!st) {
            snprintf(snapshot, sizeof snapshot, "%s/snapshots/%s", repo_dir, commit);
            st = from_hub(c, o, rev, repo_dir, files, n, commit, err, errlen);
        } else if (o->cache_fallback && st != PGD_ERR_NOT_FOUND && st != PGD_ERR_INVALID_ARG) {
            /* The hub is unreachable or failing: what the cache has will do. */
            char why[1024];
            snprintf(why, sizeof why, "the hub could not be asked (%s)", err);
            if (from_cache(c, o, rev, repo_dir, why, snapshot, sizeof snapshot, err, errlen) ==
                PGD_OK) {
                fprintf(stderr, "pagoda: %s; using the cached snapshot\n", why);
                st = PGD_OK;
            }
        }
        pgd__hub_files_free(files, n);
    }
    if (!st && o->local_dir)
        st = copy_to_local_dir(o, snapshot, err, errlen);
    if (st)
        return st;
    const char *res = o->local_dir ? o->local_dir : snapshot;
    if ((size_t)snprintf(out, outlen, "%s", res) >= outlen)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: path too long", res);
    return PGD_OK;
}
