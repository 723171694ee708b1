/* The hub client's settings from the environment (the variables huggingface_hub reads, with
 * its precedence) and the names it accepts: ORG/NAME[@REV] hub ids and commit ids. */
#include "config.h"
#include "runtime/hub/hub.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* huggingface_hub's _is_true: "1", "ON", "YES", "TRUE" in any case. */
static bool env_true(const char *name)
{
    const char *v = getenv(name);
    if (!v)
        return false;
    static const char *const yes[] = { "1", "on", "yes", "true" };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!strcasecmp(v, yes[i]))
            return true;
    return false;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. Owned. */
static char *hf_home(void)
{
    const char *v = env_nonempty("HF_HOME");
    if (v)
        return strdup(v);
    const char *xdg = env_nonempty("XDG_CACHE_HOME");
    if (xdg)
        return join(xdg, "huggingface");
    const char *home = env_nonempty("HOME");
    return join(home ? home : ".", ".cache/huggingface");
}

/* The token: HF_TOKEN, else the first line of HF_TOKEN_PATH or $HF_HOME/token (the file
 * `huggingface-cli login` writes). Trailing whitespace is dropped. NULL when none. */
static char *read_token(const char *home)
{
    const char *v = env_nonempty("HF_TOKEN");
    if (v)
        return strdup(v);
    const char *path = env_nonempty("HF_TOKEN_PATH");
    char *own = path ? NULL : join(home, "token");
    FILE *f = fopen(path ? path : own, "r");
    free(own);
    if (!f)
        return NULL;
    char line[4096];
    char *tok = NULL;
    if (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        if (n)
            tok = strdup(line);
    }
    fclose(f);
    return tok;
}

enum pgd_status pgd__hub_config_from_env(struct pgd__hub_config *c, const char *cache_override,
                                         char *err, size_t errlen)
{
    *c = (struct pgd__hub_config){ .max_connections = 8, .max_retries = 5, .backoff_ms = 500 };
    char *home = hf_home();
    const char *ep = env_nonempty("HF_ENDPOINT");
    c->endpoint = strdup(ep ? ep : "https://huggingface.co");
    if (c->endpoint) {
        size_t n = strlen(c->endpoint);
        while (n && c->endpoint[n - 1] == '/')
            c->endpoint[--n] = '\0';
    }
    const char *cache = cache_override && cache_override[0] ? cache_override
                        : env_nonempty("HF_HUB_CACHE") ? env_nonempty("HF_HUB_CACHE")
                                                       : env_nonempty("HUGGINGFACE_HUB_CACHE");
    c->cache_dir = cache ? strdup(cache) : home ? join(home, "hub") : NULL;
    c->token = home ? read_token(home) : NULL;
    free(home);
    if (!c->endpoint || !c->cache_dir) {
        pgd__hub_config_free(c);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "hub settings: out of memory");
    }
    c->offline = env_true("HF_HUB_OFFLINE") || env_true("TRANSFORMERS_OFFLINE");
    c->progress = isatty(STDERR_FILENO) && !env_true("HF_HUB_DISABLE_PROGRESS_BARS");
    return PGD_OK;
}

void pgd__hub_config_free(struct pgd__hub_config *c)
{
    free(c->endpoint);
    free(c->cache_dir);
    free(c->token);
    *c = (struct pgd__hub_config){ 0 };
}

/* The hub's rule for a repo name part: letters, digits, '-', '_', '.', not starting or
 * ending with '-' or '.', no "--" or ".." (the cache folder name joins parts with "--"). */
static bool valid_part(const char *s, size_t n)
{
    if (n == 0 || n > 96 || s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.')
            return false;
        if (i && (ch == '-' || ch == '.') && s[i - 1] == ch)
            return false;
    }
    return true;
}

bool pgd__hub_is_repo_id(const char *s)
{
    const char *at = strchr(s, '@');
    size_t len = at ? (size_t)(at - s) : strlen(s);
    const char *slash = memchr(s, '/', len);
    if (!slash)
        return false;
    size_t org = (size_t)(slash - s);
    if (memchr(slash + 1, '/', len - org - 1))
        return false;
    return valid_part(s, org) && valid_part(slash + 1, len - org - 1) && (!at || at[1]);
}

enum pgd_status pgd__hub_split_id(const char *s, char **repo, char **rev, char *err,
                                  size_t errlen)
{
    *repo = *rev = NULL;
    if (!pgd__hub_is_repo_id(s))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "'%s' is not a hub id: expected ORG/NAME or ORG/NAME@REVISION", s);
    const char *at = strchr(s, '@');
    *repo = at ? strndup(s, (size_t)(at - s)) : strdup(s);
    *rev = at ? strdup(at + 1) : NULL;
    if (!*repo || (at && !*rev)) {
        free(*repo);
        free(*rev);
        *repo = *rev = NULL;
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    return PGD_OK;
}

bool pgd__hub_is_commit(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]) || isupper((unsigned char)s[n]))
            return false;
    return n == PGD__HUB_COMMIT_LEN;
}
