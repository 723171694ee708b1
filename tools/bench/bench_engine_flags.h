/* The engine's flags beside a bench command's own, as vLLM's `bench throughput` and `bench
 * latency` take every engine argument: `pagoda serve`'s engine rows of the settings table
 * (runtime/config/settings.h), parsed there one flag at a time.
 *
 *   struct pgd__settings eng;  pgd__settings_init(&eng);
 *   argc = pgd_tool_engine_flags_take(&eng, own_opts, argc, argv, "pagoda bench throughput");
 *   ... getopt_long over what is left, then the command's own engine params ...
 *   pgd__settings_engine_params_given(&eng, &ep, sizes, n);   the flags over them
 *   pgd__settings_fini(&eng);
 */
#ifndef PGD_TOOLS_BENCH_ENGINE_FLAGS_H
#define PGD_TOOLS_BENCH_ENGINE_FLAGS_H

#include "runtime/config/settings.h"
#include <getopt.h>

/* Each "--flag" of argv that is none of `own` (getopt_long's table) but sets an engine row
 * goes into eng, with the words it takes, and out of argv; a row of another kind (a server's
 * --port) is refused; an unknown flag stays for getopt to refuse. An own option's value is
 * passed over, and "--" ends the scan. Returns the new argc (argv[argc] NULL), or -1 after a
 * message on stderr prefixed with cmd. */
int pgd_tool_engine_flags_take(struct pgd__settings *eng, const struct option *own, int argc,
                               char **argv, const char *cmd);

#endif
