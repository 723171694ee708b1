/* API keys of the OpenAI frontend: the keys themselves (api_key, repeatable, and the lines of
 * api_key_file) and the check of a request's `Authorization: Bearer <key>` header.
 *
 * The check runs when a request's head has arrived, before any body byte is read (http.c),
 * and compares the token with every key, each byte by byte without an early exit, so that
 * its time tells nothing about how much of a key a guess got right. Keys are never logged.
 * A reload (SIGHUP) swaps the whole key list at once under keys_lock, which every check
 * holds for reading: a request sees the old keys or the new ones, never a mix. */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/log.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Guards every oai_settings' api_keys/n_api_keys against oai_auth_swap_keys (one lock for
 * all servers of the process: swaps are rare, checks only read). */
static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;

void oai_auth_swap_keys(struct oai_settings *live, struct oai_settings *fresh)
{
    pthread_rwlock_wrlock(&keys_lock);
    char **keys = live->api_keys;
    int n = live->n_api_keys;
    live->api_keys = fresh->api_keys;
    live->n_api_keys = fresh->n_api_keys;
    fresh->api_keys = keys;
    fresh->n_api_keys = n;
    pthread_rwlock_unlock(&keys_lock);
}

enum pgd_status oai_auth_add_key(struct oai_settings *s, const char *key, char *err,
                                 size_t errlen)
{
    if (!*key)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.openai: api_key is empty (an empty key would turn "
                        "authentication off; leave the setting out for no authentication)");
    char **keys = realloc(s->api_keys, (size_t)(s->n_api_keys + 1) * sizeof *keys);
    if (!keys)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "frontend.openai: no memory");
    s->api_keys = keys;
    if (!(keys[s->n_api_keys] = strdup(key)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "frontend.openai: no memory");
    s->n_api_keys++;
    return PGD_OK;
}

/* Strips the line's end (\n, \r) and surrounding blanks in place; returns its start. */
static char *trim(char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                 line[n - 1] == '\t'))
        line[--n] = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

enum pgd_status oai_auth_load_file(struct oai_settings *s, const char *path, char *err,
                                   size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: api_key_file '%s': %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        PGD_WARN("frontend.openai: api_key_file '%s' is readable by other users "
                 "(chmod 600 it)", path);
    char line[4096];
    int lineno = 0, added = 0;
    enum pgd_status rc = PGD_OK;
    while (rc == PGD_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                          "frontend.openai: api_key_file '%s':%d: the line is longer than "
                          "%zu bytes", path, lineno, sizeof line - 2);
            break;
        }
        char *k = trim(line);
        if (!*k || *k == '#')
            continue;
        if ((rc = oai_auth_add_key(s, k, err, errlen)) == PGD_OK)
            added++;
    }
    if (rc == PGD_OK && ferror(f))
        rc = pgd_errf(err, errlen, PGD_ERR_IO, "frontend.openai: api_key_file '%s': read error",
                      path);
    if (rc == PGD_OK && added == 0)
        rc = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                      "frontend.openai: api_key_file '%s' holds no key (one key a line)", path);
    fclose(f);
    return rc;
}

/* 0 when a (length an) equals b (length bn); the loop runs over a's bytes whatever b is. */
static unsigned key_diff(const char *a, size_t an, const char *b, size_t bn)
{
    unsigned diff = (unsigned)(an ^ bn);
    for (size_t i = 0; i < an; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[bn ? i % bn : 0];
    return diff | (bn == 0);
}

bool oai_auth_ok(const struct oai_settings *s, const char *authorization)
{
    pthread_rwlock_rdlock(&keys_lock);
    const char *h = authorization;
    unsigned ok = s->n_api_keys == 0;
    if (!ok && h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ')
            h++;
        size_t hn = strlen(h);
        for (int i = 0; i < s->n_api_keys; i++)   /* no early exit: every key is compared */
            ok |= key_diff(h, hn, s->api_keys[i], strlen(s->api_keys[i])) == 0;
    }
    pthread_rwlock_unlock(&keys_lock);
    return ok != 0;
}
