/* A model's name as a user gives it to serve, generate, bench or an INI [model] section,
 * turned into the directory pagoda loads: a local directory as is; otherwise a catalog short
 * name or an ORG/NAME[@REV] hub id, found in the cache or fetched into it. */
#include "config.h"
#include "runtime/hub/hub.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum pgd_status pgd__hub_resolve_model(const char *name_or_dir, const char *revision,
                                       const char *download_dir, char *out, size_t outlen,
                                       char *err, size_t errlen)
{
    struct stat sb;
    if (!name_or_dir || !name_or_dir[0])
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "no model named");
    /* A directory wins over a hub id of the same spelling (./Qwen/Qwen2.5-0.5B). */
    if (stat(name_or_dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if ((size_t)snprintf(out, outlen, "%s", name_or_dir) >= outlen)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: path too long", name_or_dir);
        return PGD_OK;
    }
    char *repo = NULL, *rev = NULL;
    enum pgd_status st;
    if (pgd__hub_is_repo_id(name_or_dir)) {
        st = pgd__hub_split_id(name_or_dir, &repo, &rev, err, errlen);
    } else {
        struct pgd__hub_catalog cat;
        char cerr[512] = "";
        st = pgd__hub_catalog_load(NULL, &cat, cerr, sizeof cerr);
        const struct pgd__hub_catalog_entry *e = st ? NULL : pgd__hub_catalog_find(&cat,
                                                                                  name_or_dir);
        if (e) {
            repo = strdup(e->repo);
            rev = e->revision ? strdup(e->revision) : NULL;
            st = repo && (rev || !e->revision) ? PGD_OK
                                               : pgd_errf(err, errlen, PGD_ERR_NOMEM, "oom");
        } else {
            st = pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                          "model '%s': not a directory, not a hub id (ORG/NAME[@REVISION]) and "
                          "not a catalog name (`pagoda models` lists them)%s%s", name_or_dir,
                          cerr[0] ? "; " : "", cerr);
        }
        pgd__hub_catalog_free(&cat);   /* a failed load left it empty */
    }
    if (st) {
        free(repo);
        free(rev);
        return st;
    }
    struct pgd__hub_config c;
    st = pgd__hub_config_from_env(&c, download_dir, err, errlen);
    if (!st) {
        struct pgd__hub_fetch_opts o = {
            .repo = repo,
            .revision = revision && revision[0] ? revision : rev,
            .cache_fallback = true,
        };
        st = pgd__hub_fetch(&c, &o, out, outlen, err, errlen);
        pgd__hub_config_free(&c);
    }
    free(repo);
    free(rev);
    return st;
}
