/* Internal: a deployment INI file read into the settings (issue 16).
 *
 * The file's sections and keys are the settings table's (settings_table.c): [model],
 * [engine], [plugins], [frontend.openai], [frontend.repl], [log]; a key is the long flag
 * name with '_' for '-'. Values are checked exactly as the flags' are (pgd__settings_set), each stored with
 * origin PGD__SO_FILE and where "PATH:LINE", so `pagoda config --print` says which line set
 * it. ${NAME} in a value is the environment variable NAME (for secrets). Apply the file
 * first, then the command line: a flag then replaces the file's value (flag > file >
 * default).
 *
 *   struct pgd__settings s;  pgd__settings_init(&s);
 *   char msgs[4096];
 *   if (pgd__settings_load_ini(&s, "deploy.ini", msgs, sizeof msgs)) -> msgs: the errors
 *   else msgs: the warnings (maybe none)
 */
#ifndef PGD_RUNTIME_CONFIG_INI_H
#define PGD_RUNTIME_CONFIG_INI_H

#include "runtime/config/settings.h"

/* Reads the INI file at path into s. Every problem of the file is reported, one a line, as
 * "PATH:LINE: MESSAGE" (warnings as "PATH:LINE: warning: MESSAGE") in msgs (empty when
 * there are none). Returns PGD_OK when the file has no errors (msgs then holds only
 * warnings), PGD_ERR_IO when it cannot be read, PGD_ERR_INVALID_ARG when it has errors; on
 * an error s may hold some of the file's values and must not be used to start anything. */
enum pgd_status pgd__settings_load_ini(struct pgd__settings *s, const char *path, char *msgs,
                                       size_t msgslen);

/* Takes "--config FILE" or "--config=FILE" out of argv[1..*argc) (before any "--"),
 * shifting the rest down and lowering *argc; *path is FILE (pointing into argv) or NULL
 * when there is none. PGD_ERR_INVALID_ARG when --config has no value or is given twice. */
enum pgd_status pgd__settings_take_config_flag(int *argc, char **argv, const char **path,
                                               char *err, size_t errlen);

/* The settings of a command line that may name a deployment file: the file of --config
 * FILE is applied first, then the other words of argv (pgd__settings_parse_args), so that
 * flags override the file. argv is not changed. On PGD_OK msgs holds the file's warnings
 * (maybe none); on an error, the file's errors or the command line's one. */
enum pgd_status pgd__settings_from_command(struct pgd__settings *s, int argc, char **argv,
                                           bool *help, char *msgs, size_t msgslen);

#endif
