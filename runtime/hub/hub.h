/* The Hugging Face hub client (internal, pgd__hub_*): fetches model repositories into the
 * cache that huggingface_hub, transformers and vLLM share, finds models already there, and
 * names known checkpoints through models/catalog.ini.
 *
 * The cache (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), byte-compatible
 * with huggingface_hub's:
 *   models--ORG--NAME/blobs/{etag}                  file contents, named by their ETag (the
 *                                                   SHA-256 of an LFS file, the git blob id
 *                                                   of a small one)
 *   models--ORG--NAME/blobs/{etag}.incomplete       a download in progress (resumed by Range)
 *   models--ORG--NAME/snapshots/{commit}/{path}     relative symlinks into ../../blobs
 *   models--ORG--NAME/refs/{revision}               the commit a branch or tag last resolved to
 *   models--ORG--NAME/.no_exist/{commit}/{path}     empty markers: the file is not in the repo
 *   .locks/models--ORG--NAME/{etag}.lock            flock(2) while a blob is written
 *
 * Environment (read by pgd__hub_config_from_env): HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH,
 * HF_HOME, HF_HUB_CACHE (HUGGINGFACE_HUB_CACHE), HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE),
 * HF_HUB_DISABLE_PROGRESS_BARS, XDG_CACHE_HOME; proxies through libcurl's own variables
 * (https_proxy, no_proxy, ...). */
#ifndef PGD_RUNTIME_HUB_HUB_H
#define PGD_RUNTIME_HUB_HUB_H

#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGD__HUB_COMMIT_LEN 40

/* Where and how to talk to the hub. Strings are owned (pgd__hub_config_free). */
struct pgd__hub_config {
    char *endpoint;     /* "https://huggingface.co", no trailing slash */
    char *cache_dir;    /* the hub cache root (holds models--*) */
    char *token;        /* NULL: anonymous */
    bool offline;       /* HF_HUB_OFFLINE: never touch the network */
    bool progress;      /* progress bars (stderr is a terminal and they are not disabled) */
    int max_connections;  /* parallel transfers (default 8) */
    int max_retries;      /* per request, on 429/5xx/timeouts/cut connections (default 5) */
    long backoff_ms;      /* the first retry's wait, doubled each time up to 8 s (default 500) */
};

/* Fills *c from the environment. cache_override (vLLM's --download-dir), when non-NULL,
 * replaces the cache root. */
enum pgd_status pgd__hub_config_from_env(struct pgd__hub_config *c, const char *cache_override,
                                         char *err, size_t errlen);
void pgd__hub_config_free(struct pgd__hub_config *c);

/* What to fetch. include/exclude are fnmatch(3) globs over the repo path, where '*' also
 * matches '/' (as huggingface_hub's filters); a pattern ending in '/' means the folder.
 * The default include set (what inference needs) always applies; include adds to it. */
struct pgd__hub_fetch_opts {
    const char *repo;        /* "ORG/NAME" */
    const char *revision;    /* branch, tag or commit; NULL = "main" */
    const char *const *include;
    size_t n_include;
    const char *const *exclude;
    size_t n_exclude;
    const char *local_dir;   /* also copy the snapshot's files into this folder (NULL: no) */
    bool quiet;              /* no per-file log lines (errors still print) */
    bool cache_fallback;     /* when the hub cannot be asked (down, unreachable), use what
                              * the cache has, as huggingface_hub does */
};

/* Fetches a repo into the cache (or, offline, finds it there) and writes the snapshot folder
 * (or local_dir) to out. Files already in the snapshot are not requested again; a blob
 * another process is writing is waited for (its lock). */
enum pgd_status pgd__hub_fetch(const struct pgd__hub_config *c,
                               const struct pgd__hub_fetch_opts *o, char *out, size_t outlen,
                               char *err, size_t errlen);

/* Everywhere a model is named: a local directory is returned as is; a catalog short name
 * or an ORG/NAME[@REV] hub id is found in the cache or fetched into it (never fetched when
 * HF_HUB_OFFLINE is set) and its snapshot folder returned. revision (vLLM's --revision)
 * overrides any @REV; download_dir (vLLM's --download-dir) replaces the cache root. Both may
 * be NULL. */
enum pgd_status pgd__hub_resolve_model(const char *name_or_dir, const char *revision,
                                       const char *download_dir, char *out, size_t outlen,
                                       char *err, size_t errlen);

/* ---- names ------------------------------------------------------------------------------ */

/* True when s is an ORG/NAME hub id (one '/', letters, digits, '-', '_', '.'; no "..").
 * Splits "ORG/NAME@REV" into repo and rev (rev NULL without '@'); the strings are owned. */
bool pgd__hub_is_repo_id(const char *s);
enum pgd_status pgd__hub_split_id(const char *s, char **repo, char **rev, char *err,
                                  size_t errlen);
/* True for a full 40-hex-digit commit id. */
bool pgd__hub_is_commit(const char *s);

/* ---- the cache (cache.c) ---------------------------------------------------------------- */

/* snprintf into a path buffer: false when it did not fit (the caller skips or fails). */
bool pgd__hub_path(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "1.5 GiB" into buf; returns buf. */
const char *pgd__hub_human_bytes(long long n, char *buf, size_t len);

/* "CACHE/models--ORG--NAME" into buf. */
enum pgd_status pgd__hub_repo_dir(const char *cache, const char *repo, char *buf, size_t len,
                                  char *err, size_t errlen);
/* The commit refs/{rev} holds (rev itself when it is a commit) into commit[41];
 * PGD_ERR_NOT_FOUND when there is no such ref. */
enum pgd_status pgd__hub_read_ref(const char *repo_dir, const char *rev, char *commit,
                                  char *err, size_t errlen);
/* refs/{rev} = commit, atomically (a temporary file renamed); nothing when rev is commit. */
enum pgd_status pgd__hub_write_ref(const char *repo_dir, const char *rev, const char *commit,
                                   char *err, size_t errlen);
/* snapshots/{commit}/{path} -> ../../blobs/{etag} (relative, as many ../ as path has
 * folders), replacing an existing entry atomically. */
enum pgd_status pgd__hub_link_snapshot(const char *repo_dir, const char *commit,
                                       const char *path, const char *etag, char *err,
                                       size_t errlen);
/* .no_exist/{commit}/{path}: an empty marker (best effort). */
void pgd__hub_mark_no_exist(const char *repo_dir, const char *commit, const char *path);
/* mkdir -p of dir; of path's parent folder. */
enum pgd_status pgd__hub_mkdirs(const char *dir, char *err, size_t errlen);
enum pgd_status pgd__hub_mkdirs_parent(const char *path, char *err, size_t errlen);
/* Opens (creating, mode 0664) and flock(2)s a lock file. wait=false: returns -2 when another
 * holder has it. -1 on error (message in err). Unlock = close. */
int pgd__hub_lock(const char *path, bool wait, char *err, size_t errlen);

/* ---- cached models (cache_scan.c) ------------------------------------------------------ */

struct pgd__hub_cached_rev {
    char commit[PGD__HUB_COMMIT_LEN + 1];
    char *refs;          /* "main, v1.0" (the refs pointing at it; "" when none), owned */
    size_t n_files;
};

struct pgd__hub_cached_repo {
    char *repo;          /* "ORG/NAME" */
    char *dir;           /* CACHE/models--ORG--NAME */
    uint64_t bytes;      /* the blobs' size on disk */
    struct pgd__hub_cached_rev *revs;
    size_t n_revs;
};

/* Every model repo in the cache, sorted by name. */
enum pgd_status pgd__hub_scan_cache(const char *cache, struct pgd__hub_cached_repo **out,
                                    size_t *n, char *err, size_t errlen);
void pgd__hub_cached_free(struct pgd__hub_cached_repo *repos, size_t n);
/* Removes a repo from the cache: with rev, that revision's snapshot, the refs that point at
 * it and the blobs no other snapshot links to; without, the whole repo folder. *freed gets
 * the bytes given back. */
enum pgd_status pgd__hub_remove(const char *cache, const char *repo, const char *rev,
                                uint64_t *freed, char *err, size_t errlen);

/* ---- the catalog (catalog.c) ----------------------------------------------------------- */

struct pgd__hub_catalog_entry {
    char *name;          /* the short name ("qwen2.5-0.5b-instruct") */
    char *repo;          /* "Qwen/Qwen2.5-0.5B-Instruct" */
    char *revision;      /* NULL: main */
    char *arch;          /* the architecture plugin */
    char *quant;         /* "none", "gptq-int4", "awq-int4", ... */
    char *size;          /* "0.5B" */
    long context;        /* max_position_embeddings the card advertises */
    char *chat;          /* chat template notes */
    bool gated;
};

struct pgd__hub_catalog {
    struct pgd__hub_catalog_entry *entries;
    size_t n;
    char *path;
};

/* Loads the catalog: path, else $PAGODA_CATALOG, else the installed one, else the source
 * tree's models/catalog.ini. */
enum pgd_status pgd__hub_catalog_load(const char *path, struct pgd__hub_catalog *cat,
                                      char *err, size_t errlen);
const struct pgd__hub_catalog_entry *pgd__hub_catalog_find(const struct pgd__hub_catalog *cat,
                                                           const char *name);
void pgd__hub_catalog_free(struct pgd__hub_catalog *cat);

#endif
