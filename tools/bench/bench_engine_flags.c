/* The engine's flags beside a bench command's own (see bench_engine_flags.h). */
#include "tools/bench/bench_engine_flags.h"
#include <stdio.h>
#include <string.h>

/* own's entry for the flag word a ("--name" or "--name=value"), or NULL. */
static const struct option *own_option(const struct option *own, const char *a)
{
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    for (; own->name; own++)
        if (strlen(own->name) == n && !strncmp(own->name, name, n))
            return own;
    return NULL;
}

int pgd_tool_engine_flags_take(struct pgd__settings *eng, const struct option *own, int argc,
                               char **argv, const char *cmd)
{
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            while (i < argc)
                argv[kept++] = argv[i++];
            break;
        }
        const bool flag = a[0] == '-' && a[1] == '-';
        const struct option *mine = flag ? own_option(own, a) : NULL;
        const int row = flag && !mine ? pgd__settings_flag_row(a) : -1;
        if (row < 0) {
            argv[kept++] = argv[i];
            if (mine && mine->has_arg == required_argument && !strchr(a, '=') && i + 1 < argc)
                argv[kept++] = argv[++i];
            continue;
        }
        if (pgd__setting_defs[row].dest != PGD__SD_ENGINE) {
            fprintf(stderr, "%s: %s is not an engine option (it is `pagoda serve`'s)\n", cmd, a);
            return -1;
        }
        char err[512];
        if (pgd__settings_parse_flag(eng, argc, argv, &i, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            return -1;
        }
    }
    argv[kept] = NULL;
    return kept;
}
