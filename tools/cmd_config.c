/* `pagoda config`: what the settings table says. --print-doc writes docs/CONFIG.md (a test
 * checks the file in the repository against it); --print [--config FILE] [serve options]
 * writes the effective settings, each with where it came from (default, FILE:LINE, the
 * flag); --check FILE validates a deployment INI file without starting anything. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/config/settings.h"
#include "runtime/config/ini.h"
#include <stdio.h>
#include <string.h>

static void config_usage(FILE *out)
{
    fprintf(out, "usage: pagoda config --print-doc\n"
                 "       pagoda config --print [--config FILE] [MODEL] [serve options]\n"
                 "       pagoda config --check FILE\n\n"
                 "--print-doc  the settings reference (docs/CONFIG.md), from the settings table\n"
                 "--print      the effective settings as INI, each with where it came from\n"
                 "             (default, FILE:LINE of --config FILE, or the flag)\n"
                 "--check      validates the deployment INI file FILE: exit status 0 when it\n"
                 "             can start a server or a chat (warnings aside), 1 with every\n"
                 "             problem listed\n");
}

/* Prints msgs (lines, maybe without the last newline) to stderr, each after "pagoda config: ". */
static void print_msgs(const char *msgs)
{
    for (const char *p = msgs; *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "pagoda config: %.*s\n", len, p);
        p += len + (nl != NULL);
    }
}

static int config_check(const char *path)
{
    struct pgd__settings s;
    pgd__settings_init(&s);
    char msgs[8192];
    int rc = pgd__settings_load_ini(&s, path, msgs, sizeof msgs) ? 1 : 0;
    print_msgs(msgs);
    /* A chat with a server ([frontend.repl] url) runs no model of its own. */
    if (rc == 0 && !pgd__settings_str(&s, PGD__S_MODEL) &&
        !pgd__settings_str(&s, PGD__S_REPL_URL)) {
        fprintf(stderr, "pagoda config: %s: no model: [model] needs model = DIR, hub id or "
                        "catalog name (or [frontend.repl] needs url, for a chat with a "
                        "server)\n", path);
        rc = 1;
    }
    if (rc == 0)
        printf("%s: OK\n", path);
    pgd__settings_fini(&s);
    return rc;
}

int pgd_cmd_config(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--print-doc")) {
        pgd__settings_print_doc(stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--check"))
        return config_check(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "--print")) {
        struct pgd__settings s;
        pgd__settings_init(&s);
        char msgs[8192];
        bool help;
        /* argv[1] ("--print") stands where the command's name would. */
        int rc = 0;
        if (pgd__settings_from_command(&s, argc - 1, argv + 1, &help, msgs, sizeof msgs))
            rc = 2;
        print_msgs(msgs);
        if (rc == 0)
            pgd__settings_print_effective(stdout, &s);
        pgd__settings_fini(&s);
        return rc;
    }
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    config_usage(help ? stdout : stderr);
    return help ? 0 : 2;
}
