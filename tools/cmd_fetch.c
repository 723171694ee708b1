/* `pagoda fetch ORG/NAME[@REVISION] | SHORT-NAME [options]`: a model from the Hugging Face
 * hub into the cache huggingface_hub, transformers and vLLM share (runtime/hub/). Prints the
 * snapshot folder (or --local-dir) on stdout, progress and log lines on stderr. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/hub/hub.h"
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GLOBS 64

static void fetch_usage(FILE *out)
{
    fprintf(out,
        "usage: pagoda fetch ORG/NAME[@REVISION] | SHORT-NAME [options]\n\n"
        "Downloads a model repo from the Hugging Face hub into the shared cache\n"
        "(HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub) and prints its\n"
        "snapshot folder. By default it takes what inference needs: config.json,\n"
        "generation_config.json, the tokenizer files, chat templates, *.safetensors and their\n"
        "index, quantization configs; never *.bin, *.pth or original/ unless --include asks.\n\n"
        "options:\n"
        "  --revision REV       branch, tag or commit (default main; same as @REV)\n"
        "  --include GLOB       also fetch the files matching GLOB (repeatable; '*' crosses\n"
        "                       '/', 'DIR/' is a whole folder; --include '*' takes everything)\n"
        "  --exclude GLOB       skip the files matching GLOB (repeatable)\n"
        "  --local-dir DIR      also copy the files into DIR (real files)\n"
        "  --download-dir DIR   the cache root instead of HF_HUB_CACHE (vLLM's name)\n"
        "  --max-connections N  parallel downloads (default 8)\n"
        "  --max-retries N      retries of a request on 429/5xx/timeouts/cut connections\n"
        "                       (default 5; Retry-After is honoured)\n"
        "  --quiet              no per-file lines\n\n"
        "environment: HF_ENDPOINT, HF_TOKEN (else the token file $HF_HOME/token), HF_HOME,\n"
        "HF_HUB_CACHE, HF_HUB_OFFLINE=1 (only look in the cache), HF_HUB_DISABLE_PROGRESS_BARS,\n"
        "https_proxy/no_proxy. SHORT-NAME is a name from `pagoda models`.\n");
}

/* The hub id for a name: ORG/NAME[@REV] as is, or a catalog short name's repo. */
static int name_to_repo(const char *name, char **repo, char **rev)
{
    char err[1024];
    if (pgd__hub_is_repo_id(name)) {
        if (pgd__hub_split_id(name, repo, rev, err, sizeof err)) {
            fprintf(stderr, "pagoda fetch: %s\n", err);
            return 2;
        }
        return 0;
    }
    struct pgd__hub_catalog cat;
    if (pgd__hub_catalog_load(NULL, &cat, err, sizeof err)) {
        fprintf(stderr, "pagoda fetch: '%s' is not ORG/NAME and the catalog cannot be read: %s\n",
                name, err);
        return 2;
    }
    const struct pgd__hub_catalog_entry *e = pgd__hub_catalog_find(&cat, name);
    if (e) {
        *repo = strdup(e->repo);
        *rev = e->revision ? strdup(e->revision) : NULL;
    }
    pgd__hub_catalog_free(&cat);
    if (!e) {
        fprintf(stderr, "pagoda fetch: '%s' is neither ORG/NAME nor a catalog name "
                        "(`pagoda models` lists them)\n", name);
        return 2;
    }
    return *repo ? 0 : 1;
}

int pgd_cmd_fetch(int argc, char **argv)
{
    enum { O_REV = 256, O_INC, O_EXC, O_LOCAL, O_DL, O_CONN, O_RETRY, O_QUIET, O_HELP };
    static const struct option longopts[] = {
        { "revision", required_argument, 0, O_REV }, { "include", required_argument, 0, O_INC },
        { "exclude", required_argument, 0, O_EXC }, { "local-dir", required_argument, 0, O_LOCAL },
        { "download-dir", required_argument, 0, O_DL },
        { "max-connections", required_argument, 0, O_CONN },
        { "max-retries", required_argument, 0, O_RETRY }, { "quiet", no_argument, 0, O_QUIET },
        { "help", no_argument, 0, O_HELP }, { 0, 0, 0, 0 },
    };
    const char *include[MAX_GLOBS], *exclude[MAX_GLOBS];
    struct pgd__hub_fetch_opts o = { .include = include, .exclude = exclude };
    const char *revision = NULL, *download_dir = NULL;
    int conns = -1, retries = -1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_REV: revision = optarg; break;
        case O_INC:
        case O_EXC:
            if ((c == O_INC ? o.n_include : o.n_exclude) == MAX_GLOBS) {
                fprintf(stderr, "pagoda fetch: at most %d --include/--exclude each\n", MAX_GLOBS);
                return 2;
            }
            if (c == O_INC)
                include[o.n_include++] = optarg;
            else
                exclude[o.n_exclude++] = optarg;
            break;
        case O_LOCAL: o.local_dir = optarg; break;
        case O_DL: download_dir = optarg; break;
        case O_CONN:
        case O_RETRY:
            if (!pgd_tool_parse_int(optarg, c == O_CONN ? 1 : 0, c == O_CONN ? 64 : 100,
                             c == O_CONN ? &conns : &retries)) {
                fprintf(stderr, "pagoda fetch: --%s '%s': expected %s\n",
                        c == O_CONN ? "max-connections" : "max-retries", optarg,
                        c == O_CONN ? "1 to 64" : "0 to 100");
                return 2;
            }
            break;
        case O_QUIET: o.quiet = true; break;
        case O_HELP: fetch_usage(stdout); return 0;
        default: fetch_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fetch_usage(stderr);
        return 2;
    }
    char *repo = NULL, *rev = NULL;
    int rc = name_to_repo(argv[optind], &repo, &rev);
    if (rc)
        return rc;
    o.repo = repo;
    o.revision = revision ? revision : rev;
    struct pgd__hub_config cfg;
    char err[2048], out[PATH_MAX];
    enum pgd_status st = pgd__hub_config_from_env(&cfg, download_dir, err, sizeof err);
    if (!st) {
        if (conns > 0)
            cfg.max_connections = conns;
        if (retries >= 0)
            cfg.max_retries = retries;
        st = pgd__hub_fetch(&cfg, &o, out, sizeof out, err, sizeof err);
        pgd__hub_config_free(&cfg);
    }
    free(repo);
    free(rev);
    if (st) {
        fprintf(stderr, "pagoda fetch: %s\n", err);
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

const char *pgd_tool_catalog_quantization(const char *model)
{
    if (!model || strchr(model, '/'))
        return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s", model);
    char *at = strchr(name, '@');
    if (at)
        *at = '\0';
    struct pgd__hub_catalog cat;
    char err[1024];
    if (pgd__hub_catalog_load(NULL, &cat, err, sizeof err))
        return NULL;
    const struct pgd__hub_catalog_entry *e = pgd__hub_catalog_find(&cat, name);
    bool fp8 = e && e->quant && !strcmp(e->quant, "fp8");
    pgd__hub_catalog_free(&cat);
    return fp8 ? "fp8" : NULL;
}

int pgd_tool_resolve_model(const char **model, const char *revision, const char *download_dir)
{
    /* One model per process: the resolved path lives as long as the program. */
    static char dir[PATH_MAX];
    char err[2048];
    if (!*model)
        return 0;
    if (pgd__hub_resolve_model(*model, revision, download_dir, dir, sizeof dir, err,
                               sizeof err)) {
        fprintf(stderr, "pagoda: %s\n", err);
        return 1;
    }
    if (strcmp(dir, *model))   /* a directory stays the caller's string */
        *model = dir;
    return 0;
}
