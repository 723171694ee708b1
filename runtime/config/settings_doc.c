/* What the settings table prints: `pagoda serve --help` (grouped as vLLM's --help groups its
 * options), docs/CONFIG.md (one table per INI section), and the effective settings with where
 * each came from (`pagoda config --print`). */
#include "runtime/config/settings.h"
#include <string.h>

#define HELP_COL 24
#define HELP_WIDTH 88

static const char *const type_names[] = {
    [PGD__ST_STRING] = "string", [PGD__ST_PATH] = "path", [PGD__ST_INT] = "integer",
    [PGD__ST_HUMAN_INT] = "integer (k, K, ... suffixes)", [PGD__ST_FLOAT] = "number",
    [PGD__ST_BOOL] = "bool", [PGD__ST_CHOICE] = "choice", [PGD__ST_JSON] = "JSON",
};

/* The flag spelling of a row name: "max_model_len" -> "max-model-len". */
static void flag_of(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] && i + 1 < n; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

/* Writes text wrapped at HELP_WIDTH, every line indented by HELP_COL, starting at column col. */
static void wrap(FILE *out, const char *text, int col)
{
    const char *p = text;
    while (*p) {
        if (col > HELP_COL) {
            fputc('\n', out);
            col = 0;
        }
        fprintf(out, "%*s", HELP_COL - col, "");
        col = HELP_COL;
        int room = HELP_WIDTH - HELP_COL;
        int len = (int)strlen(p);
        int take = len;
        if (len > room) {
            take = room;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = room;
        }
        fprintf(out, "%.*s\n", take, p);
        p += take;
        while (*p == ' ')
            p++;
        col = 0;
    }
    if (col)
        fputc('\n', out);
}

/* The other spellings of row id, e.g. "--kv-cache-memory, --kv-cache-mib (in MiB)". */
static void aliases_of(int id, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < pgd__n_setting_aliases && len < n; i++) {
        const struct pgd__setting_alias *a = &pgd__setting_aliases[i];
        if ((int)a->id != id)
            continue;
        int w;
        if (a->value)
            w = snprintf(out + len, n - len, "%s--%s (= %s)", len ? ", " : "", a->flag, a->value);
        else
            w = snprintf(out + len, n - len, "%s--%s%s%s%s", len ? ", " : "", a->flag,
                         a->note ? " (" : "", a->note ? a->note : "", a->note ? ")" : "");
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len >= n)
        out[n - 1] = '\0';
}

static void help_row(FILE *out, int id)
{
    const struct pgd__setting_def *d = &pgd__setting_defs[id];
    if (d->dest == PGD__SD_REPL)
        return;   /* `pagoda chat`'s, not a flag of serve */
    char flag[64], head[160], alias[512], text[1400];
    flag_of(d->name, flag, sizeof flag);
    if (d->type == PGD__ST_BOOL && (d->flags & PGD__SF_NEGATABLE))
        snprintf(head, sizeof head, "  --%s, --no-%s", flag, flag);
    else if (d->type == PGD__ST_BOOL)
        snprintf(head, sizeof head, "  --%s", flag);
    else
        snprintf(head, sizeof head, "  --%s %s", flag, d->metavar ? d->metavar : "VALUE");
    aliases_of(id, alias, sizeof alias);
    snprintf(text, sizeof text, "%s%s%s%s (default: %s)", d->help, alias[0] ? " Also " : "",
             alias, alias[0] ? "." : "", d->def ? d->def : "None");
    fputs(head, out);
    wrap(out, text, (int)strlen(head) + 2 > HELP_COL ? HELP_COL + 1 : (int)strlen(head));
}

void pgd__settings_print_help(FILE *out, const char *usage)
{
    fprintf(out, "%s\n", usage);
    for (int g = 0; g < PGD__SG_COUNT; g++) {
        fprintf(out, "\n%s:\n", pgd__setting_group_titles[g]);
        if (g == PGD__SG_POSITIONAL) {
            fputs("  MODEL", out);
            wrap(out, "The model directory (the same as --model).", 7);
            continue;
        }
        if (g == PGD__SG_OPTIONS) {
            fputs("  -h, --help", out);
            wrap(out, "show this help message and exit", 12);
        }
        for (int i = 0; i < PGD__S_COUNT; i++)
            if (pgd__setting_defs[i].group == (enum pgd__setting_group)g)
                help_row(out, i);
    }
    fprintf(out, "\nvLLM options pagoda refuses (each with what to use instead):\n ");
    int col = 1;
    for (size_t i = 0; i < pgd__n_refused_flags; i++) {
        int w = (int)strlen(pgd__refused_flags[i].flag) + 1;
        if (col + w > HELP_WIDTH) {
            fputs("\n ", out);
            col = 1;
        }
        fprintf(out, " %s", pgd__refused_flags[i].flag);
        col += w;
    }
    fputc('\n', out);
}

/* ---- docs/CONFIG.md -------------------------------------------------------------------- */

/* A table cell: '|' escaped, newlines never appear in the table's texts. */
static void cell(FILE *out, const char *s)
{
    fputs(" ", out);
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
    fputs(" |", out);
}


static const char *const dest_names[] = {
    [PGD__SD_ENGINE] = "engine", [PGD__SD_FRONTEND] = "frontend", [PGD__SD_TOOL] = "serve",
    [PGD__SD_REPL] = "chat",
};

void pgd__settings_print_doc(FILE *out)
{
    fputs("# Configuration\n\n"
          "<!-- Generated by `pagoda config --print-doc` from runtime/config/settings_table.c;\n"
          "     `make check` fails when this file and the table differ. Do not edit by hand. -->\n\n"
          "Every setting of a deployment is one row of one table in the code. On the command\n"
          "line a key is a flag with `-` for `_` (`max_model_len` is `--max-model-len`; vLLM's\n"
          "`--max_model_len` spelling works too); in an INI file it is the key in its section.\n"
          "`pagoda serve --help` prints the same rows grouped as `vllm serve --help` groups\n"
          "them. Bool keys are flags (`--enforce-eager`); those marked `--[no-]` also have a\n"
          "`--no-` form. *Goes to* says who uses the value: the engine, the frontend plugin\n"
          "(as a `key=value` setting), or `pagoda serve` itself.\n\n"
          "## Deployment files\n\n"
          "`pagoda serve --config deploy.ini` reads a deployment INI file first, then the\n"
          "command line: a flag overrides the file's key, the file overrides the default.\n"
          "`pagoda config --print --config deploy.ini [flags]` prints every effective value\n"
          "with where it came from (`default`, `deploy.ini:LINE` or the flag), and\n"
          "`pagoda config --check deploy.ini` validates a file without starting anything\n"
          "(exit status 1 with every problem as `deploy.ini:LINE: ...`). The sections are\n"
          "those below; an unknown section or key (with the nearest name), a key in another\n"
          "section than its own, a bad value (in the flag's words) and a key given twice\n"
          "(except the repeatable ones, which collect every value) are errors. `${NAME}` in\n"
          "a value is the environment variable NAME (an error when it is not set), e.g.\n"
          "`api_key = ${PAGODA_API_KEY}`; an `api_key_file` readable by group or others is\n"
          "a warning. Lines starting with `;` or `#` are comments, as is `;` after a space.\n"
          "examples/deploy/ holds files to copy; docs/DEPLOY.md says how to run them.\n\n"
          "`pagoda chat --config deploy.ini` reads [model], [engine], [plugins] and\n"
          "[frontend.repl] of the same kind of file (its own flags override them).\n\n"
          "## Reloading (SIGHUP)\n\n"
          "`kill -HUP` of a `pagoda serve --config deploy.ini` reads the file again (the\n"
          "command line's flags still override it) and applies the keys marked *Reloaded on\n"
          "SIGHUP* at once: the log level, format and file (reopened, for logrotate), the\n"
          "access log, the stats line and the API keys (api_key_file is read again even when\n"
          "its name is the same). Every other key whose value changed is logged as needing a\n"
          "restart, by name, and keeps its running value. A file with errors is refused with\n"
          "each problem's file:line, and the running settings stay as they were.\n", out);
    for (size_t s = 0; s < pgd__n_setting_sections; s++) {
        fprintf(out, "\n## [%s]\n\n| key | flag | type | default | range | goes to | help |\n"
                     "| --- | --- | --- | --- | --- | --- | --- |\n", pgd__setting_sections[s]);
        for (int i = 0; i < PGD__S_COUNT; i++) {
            const struct pgd__setting_def *d = &pgd__setting_defs[i];
            if (strcmp(d->section, pgd__setting_sections[s]))
                continue;
            char flag[64], flags[700], alias[512], range[96] = "", help[1400];
            flag_of(d->name, flag, sizeof flag);
            aliases_of(i, alias, sizeof alias);
            if (d->dest == PGD__SD_REPL)
                snprintf(flags, sizeof flags, "`pagoda chat --%s%s%s`", flag,
                         d->type == PGD__ST_BOOL ? "" : " ",
                         d->type == PGD__ST_BOOL ? "" : d->metavar ? d->metavar : "VALUE");
            else if (d->type == PGD__ST_BOOL)
                snprintf(flags, sizeof flags, "`--%s%s`",
                         d->flags & PGD__SF_NEGATABLE ? "[no-]" : "", flag);
            else
                snprintf(flags, sizeof flags, "`--%s %s`", flag,
                         d->metavar ? d->metavar : "VALUE");
            size_t fl = strlen(flags);
            snprintf(flags + fl, sizeof flags - fl, "%s%s%s",
                     d->flags & PGD__SF_POSITIONAL ? ", or positional" : "",
                     alias[0] ? "; also " : "", alias);
            if (d->type == PGD__ST_INT || d->type == PGD__ST_HUMAN_INT)
                snprintf(range, sizeof range, "[%.0f, %.0f]", d->min, d->max);
            else if (d->type == PGD__ST_FLOAT)
                snprintf(range, sizeof range, "[%g, %g]", d->min, d->max);
            else if (d->type == PGD__ST_CHOICE)
                snprintf(range, sizeof range, "%s", d->choices);
            snprintf(help, sizeof help, "%s%s%s", d->help,
                     d->flags & PGD__SF_REPEATABLE ? " Repeatable." : "",
                     d->flags & PGD__SF_RELOADABLE ? " Reloaded on SIGHUP." : "");
            fputs("|", out);
            cell(out, d->name);
            cell(out, flags);
            cell(out, type_names[d->type]);
            cell(out, d->def ? d->def : "(none)");
            cell(out, range);
            cell(out, dest_names[d->dest]);
            cell(out, help);
            fputs("\n", out);
        }
    }
    fputs("\n## vLLM options pagoda refuses\n\n"
          "`pagoda serve` stops with the reason when it meets one of these.\n\n"
          "| flag | use instead |\n| --- | --- |\n", out);
    for (size_t i = 0; i < pgd__n_refused_flags; i++) {
        char f[64];
        snprintf(f, sizeof f, "`%s`", pgd__refused_flags[i].flag);
        fputs("|", out);
        cell(out, f);
        cell(out, pgd__refused_flags[i].instead);
        fputs("\n", out);
    }
}

/* ---- the effective settings ------------------------------------------------------------- */

void pgd__settings_print_effective(FILE *out, const struct pgd__settings *s)
{
    for (size_t k = 0; k < pgd__n_setting_sections; k++) {
        fprintf(out, "%s[%s]\n", k ? "\n" : "", pgd__setting_sections[k]);
        for (int i = 0; i < PGD__S_COUNT; i++) {
            const struct pgd__setting_def *d = &pgd__setting_defs[i];
            const struct pgd__setting_value *v = &s->v[i];
            if (strcmp(d->section, pgd__setting_sections[k]))
                continue;
            bool secret = i == PGD__S_API_KEY || i == PGD__S_REPL_API_KEY;
            if (v->n_items == 0)
                fprintf(out, "; %s is not set\n", d->name);
            for (int j = 0; j < v->n_items; j++)
                fprintf(out, "%s = %s    ; %s\n", d->name, secret ? "(hidden)" : v->items[j],
                        v->where);
        }
    }
}
