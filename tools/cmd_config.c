/* `pagoda config`: what the settings table says. --print-doc writes docs/CONFIG.md (a test
 * checks the file in the repository against it); --print [serve options] writes the effective
 * settings, each with where it came from. Issue 16 adds --config FILE and --check FILE. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/config/settings.h"
#include <stdio.h>
#include <string.h>

static void config_usage(FILE *out)
{
    fprintf(out, "usage: pagoda config --print-doc\n"
                 "       pagoda config --print [MODEL] [serve options]\n\n"
                 "--print-doc  the settings reference (docs/CONFIG.md), from the settings table\n"
                 "--print      the effective settings as INI, each with where it came from\n");
}

int pgd_cmd_config(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--print-doc") && argc == 2) {
        pgd__settings_print_doc(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "--print")) {
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[1024];
        bool help;
        /* argv[1] ("--print") stands where the command's name would. */
        int rc = 0;
        if (pgd__settings_parse_args(&s, argc - 1, argv + 1, &help, err, sizeof err)) {
            fprintf(stderr, "pagoda config: %s\n", err);
            rc = 2;
        } else {
            pgd__settings_print_effective(stdout, &s);
        }
        pgd__settings_fini(&s);
        return rc;
    }
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    config_usage(help ? stdout : stderr);
    return help ? 0 : 2;
}
