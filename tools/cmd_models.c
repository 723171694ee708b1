/* `pagoda models`: the model catalog (models/catalog.ini) beside what the hub cache already
 * holds; `pagoda models --cached`: every model in the cache, whatever fetched it;
 * `pagoda models rm NAME[@REV]`: removes a model (or one revision) from the cache, keeping
 * the blobs another revision still uses. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/hub/hub.h"
#include "runtime/model/model.h"
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void models_usage(FILE *out)
{
    fprintf(out,
        "usage: pagoda models [--cached] [--download-dir DIR]\n"
        "       pagoda models rm ORG/NAME[@REVISION] | SHORT-NAME[@REVISION] [--download-dir DIR]\n\n"
        "Without options: the catalog (short names for `pagoda fetch`, `serve`, `generate`)\n"
        "and, for each, the size on disk and the revisions already in the cache. QUANT is the\n"
        "quantization (none, gptq-int4, gptq-int8, awq-int4, fp8, compressed-tensors-w4a16,\n"
        "-w8a16, -fp8, ...; fp8 on a 16-bit repo: quantized at load, as --quantization fp8).\n"
        "  --cached             every model in the cache (HF_HUB_CACHE), whatever fetched it,\n"
        "                       with the quantization its config.json names\n"
        "  --download-dir DIR   the cache root instead of HF_HUB_CACHE\n"
        "rm: without @REVISION the whole repo; with it that revision, its refs, and the\n"
        "blobs no other revision links to.\n");
}

static const struct pgd__hub_cached_repo *find_cached(const struct pgd__hub_cached_repo *r,
                                                      size_t n, const char *repo)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(r[i].repo, repo))
            return &r[i];
    return NULL;
}

/* "main -> 0123456789ab (12 files)" for each revision, joined by "; ". */
static void revisions_text(const struct pgd__hub_cached_repo *r, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < r->n_revs && pos < len; k++) {
        const struct pgd__hub_cached_rev *v = &r->revs[k];
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s%s%.12s (%zu files)", k ? "; " : "",
                                v->refs && v->refs[0] ? v->refs : "",
                                v->refs && v->refs[0] ? " = " : "", v->commit, v->n_files);
    }
}

static int list_catalog(const struct pgd__hub_cached_repo *cached, size_t n_cached)
{
    struct pgd__hub_catalog cat;
    char err[1024];
    if (pgd__hub_catalog_load(NULL, &cat, err, sizeof err)) {
        fprintf(stderr, "pagoda models: %s\n", err);
        return 1;
    }
    /* Columns as wide as their widest entry (a compressed-tensors label is 24 characters). */
    int wn = 4, wr = 4, wq = 5;
    for (size_t i = 0; i < cat.n; i++) {
        const struct pgd__hub_catalog_entry *e = &cat.entries[i];
        wn = (int)strlen(e->name) > wn ? (int)strlen(e->name) : wn;
        wr = (int)strlen(e->repo) > wr ? (int)strlen(e->repo) : wr;
        wq = e->quant && (int)strlen(e->quant) > wq ? (int)strlen(e->quant) : wq;
    }
    printf("%-*s %-*s %-8s %-*s %-6s %-7s %s\n", wn, "NAME", wr, "REPO", "ARCH", wq, "QUANT",
           "SIZE", "CONTEXT", "CACHED");
    for (size_t i = 0; i < cat.n; i++) {
        const struct pgd__hub_catalog_entry *e = &cat.entries[i];
        const struct pgd__hub_cached_repo *r = find_cached(cached, n_cached, e->repo);
        char bytes[32], revs[512] = "-";
        if (r) {
            char rt[480];
            revisions_text(r, rt, sizeof rt);
            snprintf(revs, sizeof revs, "%s: %s", pgd__hub_human_bytes((long long)r->bytes,
                                                                       bytes, sizeof bytes), rt);
        }
        printf("%-*s %-*s %-8s %-*s %-6s %-7ld %s\n", wn, e->name, wr, e->repo,
               e->arch ? e->arch : "?", wq, e->quant ? e->quant : "none",
               e->size ? e->size : "?", e->context, revs);
    }
    printf("\n%zu models in %s; cache: pagoda models --cached\n", cat.n, cat.path);
    pgd__hub_catalog_free(&cat);
    return 0;
}

/* The quantization of a cached repo, from the config.json of its main revision (else its
 * first): "none", "gptq-int4", "awq-int4", "fp8", ... */
static void cached_quant(const struct pgd__hub_cached_repo *r, char *buf, size_t len)
{
    snprintf(buf, len, "?");
    if (!r->n_revs)
        return;
    const struct pgd__hub_cached_rev *v = &r->revs[0];
    for (size_t k = 0; k < r->n_revs; k++)
        if (r->revs[k].refs && strstr(r->revs[k].refs, "main"))
            v = &r->revs[k];
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/snapshots/%s", r->dir, v->commit);
    pgd__model_quant_label(dir, buf, len);
}

static int list_cached(const char *cache, const struct pgd__hub_cached_repo *r, size_t n)
{
    printf("%-48s %-10s %-24s %s\n", "REPO", "ON DISK", "QUANT", "REVISIONS");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char bytes[32], rt[1024], quant[64];
        revisions_text(&r[i], rt, sizeof rt);
        cached_quant(&r[i], quant, sizeof quant);
        printf("%-48s %-10s %-24s %s\n", r[i].repo,
               pgd__hub_human_bytes((long long)r[i].bytes, bytes, sizeof bytes), quant, rt);
        total += r[i].bytes;
    }
    char bytes[32];
    printf("\n%zu models, %s in %s\n", n, pgd__hub_human_bytes((long long)total, bytes,
                                                              sizeof bytes), cache);
    return 0;
}

/* NAME[@REV]: a hub id, or a catalog short name with an optional @REV. */
static int remove_model(const char *cache, const char *name)
{
    char err[1024], *repo = NULL, *rev = NULL;
    if (pgd__hub_is_repo_id(name)) {
        if (pgd__hub_split_id(name, &repo, &rev, err, sizeof err)) {
            fprintf(stderr, "pagoda models rm: %s\n", err);
            return 2;
        }
    } else {
        const char *at = strchr(name, '@');
        char *shortname = at ? strndup(name, (size_t)(at - name)) : strdup(name);
        struct pgd__hub_catalog cat;
        const struct pgd__hub_catalog_entry *e = NULL;
        if (shortname && !pgd__hub_catalog_load(NULL, &cat, err, sizeof err)) {
            e = pgd__hub_catalog_find(&cat, shortname);
            repo = e ? strdup(e->repo) : NULL;
            pgd__hub_catalog_free(&cat);
        }
        free(shortname);
        rev = at && at[1] ? strdup(at + 1) : NULL;
        if (!repo) {
            fprintf(stderr, "pagoda models rm: '%s' is neither ORG/NAME nor a catalog name\n",
                    name);
            free(rev);
            return 2;
        }
    }
    uint64_t freed = 0;
    enum pgd_status st = pgd__hub_remove(cache, repo, rev, &freed, err, sizeof err);
    if (st)
        fprintf(stderr, "pagoda models rm: %s\n", err);
    else {
        char bytes[32];
        printf("removed %s%s%s from %s (%s freed)\n", repo, rev ? "@" : "", rev ? rev : "",
               cache, pgd__hub_human_bytes((long long)freed, bytes, sizeof bytes));
    }
    free(repo);
    free(rev);
    return st ? 1 : 0;
}

int pgd_cmd_models(int argc, char **argv)
{
    enum { O_CACHED = 256, O_DL, O_HELP };
    static const struct option longopts[] = {
        { "cached", no_argument, 0, O_CACHED }, { "download-dir", required_argument, 0, O_DL },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 },
    };
    bool cached_only = false;
    const char *download_dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_CACHED: cached_only = true; break;
        case O_DL: download_dir = optarg; break;
        case O_HELP: models_usage(stdout); return 0;
        default: models_usage(stderr); return 2;
        }
    }
    bool rm = optind < argc && !strcmp(argv[optind], "rm");
    if ((rm && optind + 2 != argc) || (!rm && optind != argc) || (rm && cached_only)) {
        models_usage(stderr);
        return 2;
    }
    struct pgd__hub_config cfg;
    char err[1024];
    if (pgd__hub_config_from_env(&cfg, download_dir, err, sizeof err)) {
        fprintf(stderr, "pagoda models: %s\n", err);
        return 1;
    }
    int rc;
    if (rm) {
        rc = remove_model(cfg.cache_dir, argv[optind + 1]);
    } else {
        struct pgd__hub_cached_repo *repos = NULL;
        size_t n = 0;
        if (pgd__hub_scan_cache(cfg.cache_dir, &repos, &n, err, sizeof err)) {
            fprintf(stderr, "pagoda models: %s\n", err);
            rc = 1;
        } else {
            rc = cached_only ? list_cached(cfg.cache_dir, repos, n) : list_catalog(repos, n);
        }
        pgd__hub_cached_free(repos, n);
    }
    pgd__hub_config_free(&cfg);
    return rc;
}
