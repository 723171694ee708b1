/* The `pagoda` subcommands: each lives in its own tools/cmd_<name>.c and returns the
 * process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef PGD_TOOLS_COMMANDS_H
#define PGD_TOOLS_COMMANDS_H

int pgd_cmd_chat_template(int argc, char **argv);  /* tools/cmd_chat_template.c */


/* Plugin directories an uninstalled build adds to the search path (NULL when installed):
 * the build tree's plugin folders, when this binary runs from the build tree. */
const char *pgd_tool_build_plugin_dirs(void);

#endif
