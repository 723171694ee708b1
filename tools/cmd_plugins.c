/* `pagoda plugins`: loads the plugin search path and prints what loaded (name, kind, version,
 * file, and the architectures or quant methods it claims), then what was refused and why. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/base/buf.h"
#include <pagoda/log.h>
#include <pagoda/registry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void plugins_usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda plugins [--plugin-dir DIR]...\n\n"
            "Lists the plugins found on the search path and the files refused, with why.\n"
            "The search path: each --plugin-dir DIR in order, then $PAGODA_PLUGIN_PATH\n"
            "(colon-separated), then, when pagoda runs from its build tree, the build's own\n"
            "plugin folders, then %s.\n",
            pgd_registry_install_dir());
}

/* Appends dir to the colon-separated list dirs. */
static int add_dir(struct pgd__buf *dirs, const char *dir)
{
    if (!dir[0] || strchr(dir, ':')) {
        fprintf(stderr, "pagoda plugins: --plugin-dir '%s': %s\n", dir,
                dir[0] ? "a directory with ':' in its name cannot be on the search path"
                       : "empty directory name");
        return 2;
    }
    if (!pgd__buf_appendf(dirs, "%s%s", dirs->len ? ":" : "", dir)) {
        fprintf(stderr, "pagoda plugins: out of memory\n");
        return 1;
    }
    return 0;
}

static int column_width(const struct pgd_registry *reg, int which, const char *title)
{
    size_t w = strlen(title);
    for (size_t i = 0; i < pgd_registry_count(reg); i++) {
        const struct pgd_plugin *p = pgd_registry_at(reg, i, NULL);
        const char *s = which == 0 ? p->name
                      : which == 1 ? pgd_plugin_kind_str(p->kind)
                                   : (p->version ? p->version : "-");
        if (strlen(s) > w)
            w = strlen(s);
    }
    return (int)w;
}

static void print_table(const struct pgd_registry *reg)
{
    size_t n = pgd_registry_count(reg);
    if (n == 0) {
        printf("no plugins loaded\n");
        return;
    }
    int wn = column_width(reg, 0, "NAME"), wk = column_width(reg, 1, "KIND"),
        wv = column_width(reg, 2, "VERSION");
    printf("%-*s  %-*s  %-*s  %s\n", wn, "NAME", wk, "KIND", wv, "VERSION", "FILE");
    for (size_t i = 0; i < n; i++) {
        const char *path;
        const struct pgd_plugin *p = pgd_registry_at(reg, i, &path);
        printf("%-*s  %-*s  %-*s  %s\n", wn, p->name, wk, pgd_plugin_kind_str(p->kind), wv,
               p->version ? p->version : "-", path);
        const char *const *claims = p->kind == PGD_PLUGIN_ARCH    ? p->arch->architectures
                                    : p->kind == PGD_PLUGIN_QUANT ? p->quant->methods
                                                                  : NULL;
        if (claims) {
            printf("%-*s  %s:", wn, "",
                   p->kind == PGD_PLUGIN_ARCH ? "architectures" : "quant methods");
            for (const char *const *a = claims; *a; a++)
                printf("%s %s", a == claims ? "" : ",", *a);
            printf("\n");
        }
    }
}

int pgd_cmd_plugins(int argc, char **argv)
{
    struct pgd__buf dirs = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = -1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plugins_usage(stdout);
            pgd__buf_fini(&dirs);
            return 0;
        } else if (!strcmp(a, "--plugin-dir")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pagoda plugins: --plugin-dir needs a directory\n");
                rc = 2;
            } else {
                rc = add_dir(&dirs, argv[++i]);
            }
        } else if (!strncmp(a, "--plugin-dir=", 13)) {
            rc = add_dir(&dirs, a + 13);
        } else {
            fprintf(stderr, "pagoda plugins: unknown option '%s'\n\n", a);
            plugins_usage(stderr);
            rc = 2;
        }
        if (rc > 0) {
            pgd__buf_fini(&dirs);
            return rc;
        }
    }

    /* The refusals are printed below; the loader's warnings would say them twice. */
    if (!getenv("PAGODA_LOG"))
        pgd_log_set_level(PGD_LOG_ERROR);

    char err[512];
    struct pgd_registry *reg;
    enum pgd_status st = pgd_tool_registry(dirs.p, &reg, err, sizeof err);
    pgd__buf_fini(&dirs);
    if (st != PGD_OK) {
        fprintf(stderr, "pagoda plugins: %s\n", err);
        return 1;
    }

    printf("search path: %s\n\n", pgd_registry_search_path(reg));
    print_table(reg);
    size_t nr = pgd_registry_refused_count(reg);
    if (nr > 0) {
        printf("\nrefused (%zu):\n", nr);
        for (size_t i = 0; i < nr; i++) {
            const char *why;
            pgd_registry_refused_at(reg, i, NULL, &why);
            printf("  %s\n", why);
        }
    }
    pgd_registry_destroy(reg);
    return 0;
}
