/* What the hub cache holds, whatever put it there (pagoda, huggingface_hub, transformers,
 * vLLM): each models--ORG--NAME folder's revisions, the refs naming them and the blobs'
 * size on disk; and the safe removal of a repo or of one revision (blobs another snapshot
 * still links to stay). */
#include "config.h"
#include "runtime/hub/hub.h"
#include "runtime/base/buf.h"
#include "runtime/base/mem.h"
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a growable list of strings (blob names) ---------------------------------------- */

struct names {
    char **v;
    size_t n, cap;
};

static bool names_add(struct names *s, const char *name)
{
    if (!pgd__array_reserve(s->v, s->cap, s->n + 1))
        return false;
    return (s->v[s->n] = strdup(name)) ? (s->n++, true) : false;
}

static bool names_has(const struct names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], name))
            return true;
    return false;
}

static void names_free(struct names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (struct names){ 0 };
}

/* ---- walking a snapshot ----------------------------------------------------------------- */

/* Adds the blob names the links under dir point at to blobs (NULL: only counts files). */
static size_t snapshot_blobs(const char *dir, struct names *blobs)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[4096], target[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            n += snapshot_blobs(p, blobs);
            continue;
        }
        n++;
        ssize_t len = S_ISLNK(sb.st_mode) ? readlink(p, target, sizeof target - 1) : -1;
        if (len > 0 && blobs) {
            target[len] = '\0';
            const char *base = strrchr(target, '/');
            names_add(blobs, base ? base + 1 : target);
        }
    }
    closedir(d);
    return n;
}

static uint64_t blobs_bytes(const char *repo_dir, const struct names *only)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/blobs", repo_dir);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char f[4400];
        struct stat sb;
        snprintf(f, sizeof f, "%s/%s", p, de->d_name);
        if ((!only || names_has(only, de->d_name)) && lstat(f, &sb) == 0 && S_ISREG(sb.st_mode))
            total += (uint64_t)sb.st_blocks * 512;
    }
    closedir(d);
    return total;
}

/* Appends ref to rev->refs ("a, b"); out of memory leaves rev->refs as it was. */
static void add_ref_name(struct pgd__hub_cached_rev *rev, const char *ref)
{
    struct pgd__buf b = { 0 };
    if (rev->refs && rev->refs[0])
        pgd__buf_appendf(&b, "%s, ", rev->refs);
    pgd__buf_puts(&b, ref);
    char *s = pgd__buf_steal(&b, NULL);
    if (s) {
        free(rev->refs);
        rev->refs = s;
    }
}

/* Reads refs/ (recursively: refs/pr/1) and names each revision it points at. */
static void scan_refs(const char *repo_dir, const char *sub, struct pgd__hub_cached_repo *r)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/refs%s%s", repo_dir, sub[0] ? "/" : "", sub);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp"))
            continue;
        char name[4096], p[4400], commit[PGD__HUB_COMMIT_LEN + 1];
        snprintf(name, sizeof name, "%s%s%s", sub, sub[0] ? "/" : "", de->d_name);
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            scan_refs(repo_dir, name, r);
            continue;
        }
        if (pgd__hub_read_ref(repo_dir, name, commit, NULL, 0) != PGD_OK)
            continue;
        for (size_t i = 0; i < r->n_revs; i++)
            if (!strcmp(r->revs[i].commit, commit))
                add_ref_name(&r->revs[i], name);
    }
    closedir(d);
}

static enum pgd_status scan_repo(const char *cache, const char *folder,
                                 struct pgd__hub_cached_repo *r)
{
    /* models--ORG--NAME: ORG cannot hold "--", so the first "--" after "models--" splits. */
    const char *rest = folder + strlen("models--");
    const char *sep = strstr(rest, "--");
    char repo[512], dir[4096], snaps[4200];
    if (sep)
        snprintf(repo, sizeof repo, "%.*s/%s", (int)(sep - rest), rest, sep + 2);
    else
        snprintf(repo, sizeof repo, "%s", rest);
    snprintf(dir, sizeof dir, "%s/%s", cache, folder);
    *r = (struct pgd__hub_cached_repo){ .repo = strdup(repo), .dir = strdup(dir) };
    if (!r->repo || !r->dir)
        return PGD_ERR_NOMEM;
    r->bytes = blobs_bytes(dir, NULL);
    snprintf(snaps, sizeof snaps, "%s/snapshots", dir);
    DIR *d = opendir(snaps);
    struct dirent *de;
    size_t cap = 0;                      /* r->revs' capacity */
    while (d && (de = readdir(d))) {
        if (!pgd__hub_is_commit(de->d_name))
            continue;
        if (!pgd__array_reserve(r->revs, cap, r->n_revs + 1))
            break;
        struct pgd__hub_cached_rev *v = &r->revs[r->n_revs++];
        *v = (struct pgd__hub_cached_rev){ 0 };
        memcpy(v->commit, de->d_name, sizeof v->commit);   /* 40 hex digits and NUL */
        char sd[4400];
        if (pgd__hub_path(sd, sizeof sd, "%s/%s", snaps, de->d_name))
            v->n_files = snapshot_blobs(sd, NULL);
    }
    if (d)
        closedir(d);
    scan_refs(dir, "", r);
    return PGD_OK;
}

static int by_repo(const void *a, const void *b)
{
    const struct pgd__hub_cached_repo *x = a, *y = b;
    return strcasecmp(x->repo, y->repo);
}

enum pgd_status pgd__hub_scan_cache(const char *cache, struct pgd__hub_cached_repo **out,
                                    size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(cache);
    if (!d)
        return errno == ENOENT ? PGD_OK
                               : pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", cache,
                                          strerror(errno));
    struct dirent *de;
    enum pgd_status st = PGD_OK;
    size_t cap = 0;                      /* *out's capacity */
    while (!st && (de = readdir(d))) {
        if (strncmp(de->d_name, "models--", 8) || !de->d_name[8])
            continue;
        if (!pgd__array_reserve(*out, cap, *n + 1)) {
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
            break;
        }
        st = scan_repo(cache, de->d_name, &(*out)[(*n)++]);
        if (st)
            pgd_errf(err, errlen, st, "out of memory");
    }
    closedir(d);
    if (st) {
        pgd__hub_cached_free(*out, *n);
        *out = NULL;
        *n = 0;
        return st;
    }
    if (*n)
        qsort(*out, *n, sizeof **out, by_repo);
    return PGD_OK;
}

void pgd__hub_cached_free(struct pgd__hub_cached_repo *repos, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < repos[i].n_revs; k++)
            free(repos[i].revs[k].refs);
        free(repos[i].revs);
        free(repos[i].repo);
        free(repos[i].dir);
    }
    free(repos);
}

/* ---- removal -------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static enum pgd_status rm_tree(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return PGD_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return PGD_OK;
}

/* Deletes refs/ entries that point at commit. */
static void drop_refs(const char *repo_dir, const char *commit)
{
    struct pgd__hub_cached_repo r = { .n_revs = 1 };
    struct pgd__hub_cached_rev v = { 0 };
    snprintf(v.commit, sizeof v.commit, "%s", commit);
    r.revs = &v;
    scan_refs(repo_dir, "", &r);
    for (char *s = v.refs; s && *s;) {
        size_t len = strcspn(s, ",");
        char p[4400];
        snprintf(p, sizeof p, "%s/refs/%.*s", repo_dir, (int)len, s);
        unlink(p);
        s += len;
        while (*s == ',' || *s == ' ')
            s++;
    }
    free(v.refs);
}

/* One revision: its snapshot, its refs, its .no_exist markers and the blobs only it used. */
static enum pgd_status remove_revision(const char *repo_dir, const char *commit,
                                       uint64_t *freed, char *err, size_t errlen)
{
    struct names mine = { 0 }, others = { 0 };
    char snaps[4200], p[4400];
    snprintf(snaps, sizeof snaps, "%s/snapshots", repo_dir);
    DIR *d = opendir(snaps);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (pgd__hub_path(p, sizeof p, "%s/%s", snaps, de->d_name))
            snapshot_blobs(p, strcmp(de->d_name, commit) ? &others : &mine);
    }
    if (d)
        closedir(d);
    struct names drop = { 0 };
    for (size_t i = 0; i < mine.n; i++)
        if (!names_has(&others, mine.v[i]) && !names_has(&drop, mine.v[i]))
            names_add(&drop, mine.v[i]);
    *freed = blobs_bytes(repo_dir, &drop);
    enum pgd_status st = PGD_OK;
    snprintf(p, sizeof p, "%s/%s", snaps, commit);
    st = rm_tree(p, err, errlen);
    for (size_t i = 0; !st && i < drop.n; i++) {
        snprintf(p, sizeof p, "%s/blobs/%s", repo_dir, drop.v[i]);
        if (unlink(p) != 0 && errno != ENOENT)
            st = pgd_errf(err, errlen, PGD_ERR_IO, "%s: %s", p, strerror(errno));
    }
    if (!st) {
        drop_refs(repo_dir, commit);
        snprintf(p, sizeof p, "%s/.no_exist/%s", repo_dir, commit);
        st = rm_tree(p, err, errlen);
    }
    names_free(&mine);
    names_free(&others);
    names_free(&drop);
    return st;
}

enum pgd_status pgd__hub_remove(const char *cache, const char *repo, const char *rev,
                                uint64_t *freed, char *err, size_t errlen)
{
    char dir[4096], commit[PGD__HUB_COMMIT_LEN + 1];
    *freed = 0;
    enum pgd_status st = pgd__hub_repo_dir(cache, repo, dir, sizeof dir, err, errlen);
    if (st)
        return st;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s is not in the cache (%s)", repo,
                        cache);
    if (rev) {
        st = pgd__hub_read_ref(dir, rev, commit, err, errlen);
        char snap[4200];
        snprintf(snap, sizeof snap, "%s/snapshots/%s", dir, commit);
        if (!st && stat(snap, &sb) != 0)
            st = pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s@%s is not in the cache (%s)",
                          repo, rev, cache);
        if (!st)
            st = remove_revision(dir, commit, freed, err, errlen);
        /* The last revision gone: the repo folder goes too. */
        char snaps[4200];
        snprintf(snaps, sizeof snaps, "%s/snapshots", dir);
        DIR *d = st ? NULL : opendir(snaps);
        bool empty = true;
        struct dirent *de;
        while (d && (de = readdir(d)))
            empty = empty && de->d_name[0] == '.';
        if (d)
            closedir(d);
        if (st || !empty)
            return st;
    } else {
        *freed = blobs_bytes(dir, NULL);
    }
    st = rm_tree(dir, err, errlen);
    char locks[4400];
    snprintf(locks, sizeof locks, "%s/.locks/%s", cache, strrchr(dir, '/') + 1);
    return st ? st : rm_tree(locks, err, errlen);
}
