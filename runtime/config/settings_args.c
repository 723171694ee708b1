/* A command line through the settings table: --flag VALUE, --flag=VALUE, --flag_with_underscores
 * (vLLM's FlexibleArgumentParser takes both), --no-flag for BooleanOptionalAction rows, the
 * other spellings of settings_table.c, one positional MODEL, "--" before positional words
 * only. Unknown flags get the nearest known name; vLLM flags pagoda does not support get
 * what to use instead. */
#include "runtime/config/settings.h"
#include <stdlib.h>
#include <string.h>

static bool same_name_n(const char *a, const char *b, size_t bn)
{
    size_t i = 0;
    for (; a[i] && i < bn; i++) {
        char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
        if (x != y)
            return false;
    }
    return !a[i] && i == bn;
}

/* Edit distance of a and b[0..bn) ('-' and '_' alike), for "did you mean". */
static int distance(const char *a, const char *b, size_t bn)
{
    size_t an = strlen(a);
    if (an > 63 || bn > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= an; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= bn; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= an; i++)
        for (size_t j = 1; j <= bn; j++) {
            char x = a[i - 1] == '_' ? '-' : a[i - 1], y = b[j - 1] == '_' ? '-' : b[j - 1];
            int best = d[i - 1][j - 1] + (x != y);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[an][bn];
}

/* Whether row i is a flag of `pagoda serve` (the repl's rows are `pagoda chat`'s). */
static bool is_flag(int i)
{
    return pgd__setting_defs[i].dest != PGD__SD_REPL;
}

/* The flag closest to name[0..n) as "--x-y", or "" when none is close. */
static void nearest(const char *name, size_t n, char *out, size_t outlen)
{
    int best = (int)(n / 3 > 2 ? n / 3 : 2) + 1;
    const char *pick = NULL;
    for (int i = 0; i < PGD__S_COUNT; i++) {
        int dd = distance(pgd__setting_defs[i].name, name, n);
        if (is_flag(i) && dd < best) {
            best = dd;
            pick = pgd__setting_defs[i].name;
        }
    }
    for (size_t i = 0; i < pgd__n_setting_aliases; i++) {
        int dd = distance(pgd__setting_aliases[i].flag, name, n);
        if (dd < best) {
            best = dd;
            pick = pgd__setting_aliases[i].flag;
        }
    }
    out[0] = '\0';
    if (pick) {
        int w = snprintf(out, outlen, " (did you mean --%s?)", pick);
        for (int i = 0; w > 0 && i < w; i++)
            if (out[i] == '_')
                out[i] = '-';
    }
}

int pgd__settings_distance(const char *a, const char *b)
{
    return distance(a, b, strlen(b));
}

const char *pgd__settings_nearest_key(const char *name)
{
    size_t n = strlen(name);
    int best = (int)(n / 3 > 2 ? n / 3 : 2) + 1;
    const char *pick = NULL;
    for (int i = 0; i < PGD__S_COUNT; i++) {
        int dd = distance(pgd__setting_defs[i].name, name, n);
        if (dd < best) {
            best = dd;
            pick = pgd__setting_defs[i].name;
        }
    }
    return pick;
}

static const struct pgd__refused_flag *refused(const char *flag, size_t n)
{
    for (size_t i = 0; i < pgd__n_refused_flags; i++)
        if (same_name_n(pgd__refused_flags[i].flag, flag, n))
            return &pgd__refused_flags[i];
    return NULL;
}

/* What one flag name means: a row, and for aliases and --no-x a fixed value. */
struct flag_meaning {
    int id;                          /* -1: unknown */
    const char *fixed;               /* the value a value-less spelling sets, or NULL */
    const struct pgd__setting_alias *alias;
};

static struct flag_meaning lookup(const char *name, size_t n)
{
    struct flag_meaning m = { -1, NULL, NULL };
    for (size_t i = 0; i < pgd__n_setting_aliases; i++)
        if (same_name_n(pgd__setting_aliases[i].flag, name, n)) {
            m.alias = &pgd__setting_aliases[i];
            m.id = (int)m.alias->id;
            m.fixed = m.alias->value;
            return m;
        }
    for (int i = 0; i < PGD__S_COUNT; i++)
        if (is_flag(i) && same_name_n(pgd__setting_defs[i].name, name, n)) {
            m.id = i;
            if (pgd__setting_defs[i].type == PGD__ST_BOOL)
                m.fixed = "true";
            return m;
        }
    if (n > 3 && !strncmp(name, "no-", 3))
        for (int i = 0; i < PGD__S_COUNT; i++)
            if (is_flag(i) && (pgd__setting_defs[i].flags & PGD__SF_NEGATABLE) &&
                same_name_n(pgd__setting_defs[i].name, name + 3, n - 3)) {
                m.id = i;
                m.fixed = "false";
                return m;
            }
    return m;
}

static bool is_int_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((*s < '0' || *s > '9') && *s != ',')
            return false;
    return true;
}

int pgd__settings_flag_row(const char *arg)
{
    if (arg[0] != '-' || arg[1] != '-' || !arg[2])
        return -1;
    const char *name = arg + 2, *eq = strchr(name, '=');
    return lookup(name, eq ? (size_t)(eq - name) : strlen(name)).id;
}

/* One "--name[=value]" at argv[*i] (may consume the following words). */
enum pgd_status pgd__settings_parse_flag(struct pgd__settings *s, int argc, char **argv, int *i,
                                         char *err, size_t errlen)
{
    const char *arg = argv[*i], *name = arg + 2, *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    struct flag_meaning m = lookup(name, n);
    if (m.id < 0) {
        const struct pgd__refused_flag *r = refused(arg, (size_t)(2 + n));
        if (r)
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%.*s is a vLLM option pagoda "
                            "does not support: %s", (int)(2 + n), arg, r->instead);
        char hint[96];
        nearest(name, n, hint, sizeof hint);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "unknown option --%.*s%s; `--help` "
                        "lists the options", (int)n, name, hint);
    }
    const struct pgd__setting_def *d = &pgd__setting_defs[m.id];
    char where[96];
    snprintf(where, sizeof where, "--%.*s", (int)(n < 80 ? n : 80), name);
    if (m.fixed) {
        if (eq)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s takes no value (got '%s')",
                            where, eq + 1);
        return pgd__settings_set(s, (enum pgd__setting_id)m.id, m.fixed, PGD__SO_FLAG, where,
                                 err, errlen);
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
        if (*i + 1 >= argc)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s needs a value (%s)", where,
                            d->metavar ? d->metavar : "VALUE");
        value = argv[++*i];
    }
    char conv[4096], why[256];
    if (m.alias && m.alias->convert) {
        if (!m.alias->convert(value, conv, sizeof conv, why, sizeof why))
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: '%s' is not valid: %s",
                            where, value, why);
        value = conv;
    } else if (m.id == PGD__S_CUDA_GRAPH_SIZES && !eq) {
        /* vLLM's nargs="+": "--cuda-graph-sizes 1 2 4 8" */
        size_t len = (size_t)snprintf(conv, sizeof conv, "%s", value);
        while (*i + 1 < argc && is_int_word(argv[*i + 1]) && len < sizeof conv - 1)
            len += (size_t)snprintf(conv + len, sizeof conv - len, " %s", argv[++*i]);
        value = conv;
    } else if (m.id == PGD__S_SERVED_MODEL_NAME && !eq) {
        /* vLLM's nargs="+": "--served-model-name NAME [NAME ...]" takes the words up to the
         * next option (a repeatable row: each is one more name) */
        enum pgd_status st = pgd__settings_set(s, PGD__S_SERVED_MODEL_NAME, value,
                                               PGD__SO_FLAG, where, err, errlen);
        while (st == PGD_OK && *i + 1 < argc && argv[*i + 1][0] != '-')
            st = pgd__settings_set(s, PGD__S_SERVED_MODEL_NAME, argv[++*i], PGD__SO_FLAG,
                                   where, err, errlen);
        return st;
    }
    return pgd__settings_set(s, (enum pgd__setting_id)m.id, value, PGD__SO_FLAG, where, err,
                             errlen);
}

enum pgd_status pgd__settings_parse_args(struct pgd__settings *s, int argc, char **argv,
                                         bool *help, char *err, size_t errlen)
{
    *help = false;
    bool flags_done = false, positional_model = false, flag_model = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        enum pgd_status st = PGD_OK;
        if (!flags_done && !strcmp(a, "--")) {
            flags_done = true;
        } else if (!flags_done && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            *help = true;
        } else if (!flags_done && a[0] == '-' && a[1] == '-' && a[2]) {
            st = pgd__settings_parse_flag(s, argc, argv, &i, err, errlen);
            flag_model = flag_model || !strcmp(s->v[PGD__S_MODEL].where, "--model");
        } else if (!flags_done && !strcmp(a, "-m")) {
            /* pagoda's older short spelling of --model */
            if (i + 1 >= argc)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "-m needs a value (DIR)");
            st = pgd__settings_set(s, PGD__S_MODEL, argv[++i], PGD__SO_FLAG, "--model", err,
                                   errlen);
            flag_model = true;
        } else if (!flags_done && a[0] == '-' && a[1]) {
            const struct pgd__refused_flag *r = refused(a, strlen(a));
            st = r ? pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s is a vLLM option pagoda "
                              "does not support: %s", a, r->instead)
                   : pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "unknown option %s; `--help` "
                              "lists the options", a);
        } else if (positional_model) {
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "unexpected argument '%s': only "
                          "one positional argument (MODEL) is taken", a);
        } else {
            positional_model = true;
            st = pgd__settings_set(s, PGD__S_MODEL, a, PGD__SO_FLAG, "MODEL", err, errlen);
        }
        if (st)
            return st;
    }
    /* As vLLM: the model comes either positionally or by --model, not both. */
    if (positional_model && flag_model)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "the model is given twice (MODEL and "
                        "--model): give one");
    return PGD_OK;
}
