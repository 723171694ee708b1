/* The model zoo: models/catalog.ini (installed as $(pkgdatadir)/catalog.ini) read with inih.
 * One section per checkpoint, named by its short name:
 *
 *   [qwen2.5-0.5b-instruct]
 *   repo = Qwen/Qwen2.5-0.5B-Instruct      ; the hub id (required)
 *   revision = main                        ; optional
 *   arch = qwen                            ; the architecture plugin
 *   quant = none                           ; a label of pgd__model_quant_label: none,
 *                                          ; gptq-int4/8, awq-int4, fp8, compressed-tensors-*
 *   size = 0.5B
 *   context = 32768
 *   chat = ChatML, tools in the template   ; chat template notes
 *   gated = false                          ; true: needs an accepted license and HF_TOKEN
 */
#include "config.h"
#include "runtime/hub/hub.h"
#include "runtime/base/mem.h"
#include <ini.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct load {
    struct pgd__hub_catalog *cat;
    size_t cap;                      /* cat->entries' capacity */
    char *err;
    size_t errlen;
    enum pgd_status st;
};

/* The quant values an entry may have: the labels pagoda gives a checkpoint's quantization
 * (pgd__model_quant_label: `pagoda models --cached` shows the same), fp8 also for a 16-bit
 * repo that serve/generate quantize at load. */
#define QUANT_LABELS "none, gptq-int4, gptq-int8, awq-int4, fp8, compressed-tensors-w4a16, " \
                     "compressed-tensors-w8a16, compressed-tensors-fp8, compressed-tensors-mixed"

static bool known_quant(const char *value)
{
    const char *p = QUANT_LABELS;
    size_t n = strlen(value);
    while (*p) {
        size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, value, n))
            return true;
        p += k;
        p += strspn(p, ", ");
    }
    return false;
}

static struct pgd__hub_catalog_entry *entry_for(struct load *l, const char *section)
{
    struct pgd__hub_catalog *cat = l->cat;
    if (cat->n && !strcmp(cat->entries[cat->n - 1].name, section))
        return &cat->entries[cat->n - 1];
    for (size_t i = 0; i < cat->n; i++)
        if (!strcmp(cat->entries[i].name, section))
            return &cat->entries[i];
    if (!pgd__array_reserve(cat->entries, l->cap, cat->n + 1))
        return NULL;
    struct pgd__hub_catalog_entry *e = &cat->entries[cat->n];
    *e = (struct pgd__hub_catalog_entry){ .name = strdup(section) };
    if (!e->name)
        return NULL;
    cat->n++;
    return e;
}

/* inih's handler: 1 to go on, 0 to stop (inih then reports this line). */
static int on_key(void *ud, const char *section, const char *key, const char *value)
{
    struct load *l = ud;
    if (l->st)   /* inih goes on after an error; the first one is the message */
        return 0;
    if (!section[0]) {
        l->st = pgd_errf(l->err, l->errlen, PGD_ERR_FORMAT, "%s: '%s' outside a [name] section",
                         l->cat->path, key);
        return 0;
    }
    struct pgd__hub_catalog_entry *e = entry_for(l, section);
    if (!e) {
        l->st = pgd_errf(l->err, l->errlen, PGD_ERR_NOMEM, "out of memory");
        return 0;
    }
    char **slot = !strcmp(key, "repo")       ? &e->repo
                  : !strcmp(key, "revision") ? &e->revision
                  : !strcmp(key, "arch")     ? &e->arch
                  : !strcmp(key, "size")     ? &e->size
                  : !strcmp(key, "chat")     ? &e->chat
                                             : NULL;
    if (slot) {
        free(*slot);
        if (!(*slot = strdup(value))) {
            l->st = pgd_errf(l->err, l->errlen, PGD_ERR_NOMEM, "out of memory");
            return 0;
        }
    } else if (!strcmp(key, "context")) {
        char *end;
        errno = 0;
        e->context = strtol(value, &end, 10);
        if (!value[0] || *end || errno || e->context <= 0) {
            l->st = pgd_errf(l->err, l->errlen, PGD_ERR_FORMAT,
                             "%s: [%s] context = '%s' is not a positive integer", l->cat->path,
                             section, value);
            return 0;
        }
    } else if (!strcmp(key, "quant")) {
        if (!known_quant(value)) {
            l->st = pgd_errf(l->err, l->errlen, PGD_ERR_FORMAT, "%s: [%s] quant = '%s': expected "
                             "one of %s", l->cat->path, section, value, QUANT_LABELS);
            return 0;
        }
        free(e->quant);
        if (!(e->quant = strdup(value))) {
            l->st = pgd_errf(l->err, l->errlen, PGD_ERR_NOMEM, "out of memory");
            return 0;
        }
    } else if (!strcmp(key, "gated")) {
        if (strcmp(value, "true") && strcmp(value, "false")) {
            l->st = pgd_errf(l->err, l->errlen, PGD_ERR_FORMAT,
                             "%s: [%s] gated = '%s': expected true or false", l->cat->path,
                             section, value);
            return 0;
        }
        e->gated = !strcmp(value, "true");
    } else {
        l->st = pgd_errf(l->err, l->errlen, PGD_ERR_FORMAT, "%s: [%s] unknown key '%s'",
                         l->cat->path, section, key);
        return 0;
    }
    return 1;
}

/* The catalog's path: $PAGODA_CATALOG, the installed file, or the source tree's. */
static const char *default_path(void)
{
    const char *env = getenv("PAGODA_CATALOG");
    if (env && env[0])
        return env;
    if (access(PGD_CATALOG_INSTALL_PATH, R_OK) == 0)
        return PGD_CATALOG_INSTALL_PATH;
    return PGD_CATALOG_SOURCE_PATH;
}

enum pgd_status pgd__hub_catalog_load(const char *path, struct pgd__hub_catalog *cat,
                                      char *err, size_t errlen)
{
    *cat = (struct pgd__hub_catalog){ .path = strdup(path ? path : default_path()) };
    if (!cat->path)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    struct load l = { .cat = cat, .err = err, .errlen = errlen };
    int line = ini_parse(cat->path, on_key, &l);
    enum pgd_status st = l.st;
    if (!st && line < 0)
        st = pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot read the catalog", cat->path);
    else if (!st && line > 0)
        st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s:%d: not an INI line", cat->path, line);
    else if (st && line > 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err);
        pgd_errf(err, errlen, st, "%s (line %d)", msg, line);
    }
    for (size_t i = 0; !st && i < cat->n; i++)
        if (!cat->entries[i].repo || !pgd__hub_is_repo_id(cat->entries[i].repo))
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: [%s] needs repo = ORG/NAME",
                          cat->path, cat->entries[i].name);
    if (st)
        pgd__hub_catalog_free(cat);
    return st;
}

const struct pgd__hub_catalog_entry *pgd__hub_catalog_find(const struct pgd__hub_catalog *cat,
                                                           const char *name)
{
    for (size_t i = 0; i < cat->n; i++)
        if (!strcasecmp(cat->entries[i].name, name))
            return &cat->entries[i];
    return NULL;
}

void pgd__hub_catalog_free(struct pgd__hub_catalog *cat)
{
    for (size_t i = 0; i < cat->n; i++) {
        struct pgd__hub_catalog_entry *e = &cat->entries[i];
        free(e->name);
        free(e->repo);
        free(e->revision);
        free(e->arch);
        free(e->quant);
        free(e->size);
        free(e->chat);
    }
    free(cat->entries);
    free(cat->path);
    *cat = (struct pgd__hub_catalog){ 0 };
}
