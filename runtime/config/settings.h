/* Internal: the one table of deployment settings, and a parsed set of them.
 *
 * Every setting a deployment can make is one row of the table (settings_table.c): its INI
 * section and key (the long flag name with '_' for '-'), type, default, range or choices,
 * help text, vLLM's --help group, and where its value goes (an engine parameter, a frontend
 * setting, or an option the tool itself uses). `pagoda serve` parses its command line through
 * it (settings_args.c), `--help` and docs/CONFIG.md are printed from it (settings_doc.c), and
 * the INI reader (ini.h) sets the same rows with pgd__settings_set (origin "file:line").
 *
 *   struct pgd__settings s;
 *   pgd__settings_init(&s);                                 every row at its default
 *   pgd__settings_parse_args(&s, argc, argv, &help, err, sizeof err);
 *   pgd__settings_engine_params(&s, &ep);                   engine rows -> engine params
 *   pgd__settings_int(&s, PGD__S_PORT) ...                  typed reads
 *   pgd__settings_fini(&s);
 */
#ifndef PGD_RUNTIME_CONFIG_SETTINGS_H
#define PGD_RUNTIME_CONFIG_SETTINGS_H

#include <pagoda/engine.h>
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The rows, in the order --help and docs/CONFIG.md list them within a group. */
enum pgd__setting_id {
    /* [model] */
    PGD__S_MODEL, PGD__S_REVISION, PGD__S_DOWNLOAD_DIR, PGD__S_TOKENIZER, PGD__S_LOAD_FORMAT, PGD__S_DTYPE, PGD__S_MAX_MODEL_LEN, PGD__S_CHAT_TEMPLATE,
    PGD__S_GENERATION_CONFIG, PGD__S_OVERRIDE_GENERATION_CONFIG, PGD__S_TRUST_REMOTE_CODE,
    PGD__S_QUANTIZATION,
    /* [engine] */
    PGD__S_DEVICE, PGD__S_SEED, PGD__S_BATCH_INVARIANT, PGD__S_BLOCK_SIZE,
    PGD__S_GPU_MEMORY_UTILIZATION, PGD__S_KV_CACHE_MEMORY_BYTES, PGD__S_NUM_BLOCKS,
    PGD__S_ENABLE_PREFIX_CACHING,
    PGD__S_MAX_NUM_SEQS, PGD__S_MAX_NUM_BATCHED_TOKENS, PGD__S_ENABLE_CHUNKED_PREFILL,
    PGD__S_LONG_PREFILL_TOKEN_THRESHOLD,
    PGD__S_SCHEDULING_POLICY, PGD__S_ASYNC_SCHEDULING, PGD__S_ENFORCE_EAGER,
    PGD__S_MAX_SEQ_LEN_TO_CAPTURE,
    PGD__S_CUDA_GRAPH_SIZES, PGD__S_SPECULATIVE_CONFIG, PGD__S_TENSOR_PARALLEL_SIZE,
    PGD__S_TASK, PGD__S_POOLER_CONFIG,
    /* [plugins] */
    PGD__S_PLUGIN_DIR, PGD__S_FRONTEND,
    /* [frontend.openai] */
    PGD__S_HOST, PGD__S_PORT, PGD__S_UDS, PGD__S_API_KEY, PGD__S_API_KEY_FILE,
    PGD__S_SERVED_MODEL_NAME, PGD__S_RESPONSE_ROLE, PGD__S_RETURN_TOKENS_AS_TOKEN_IDS,
    PGD__S_MAX_LOGPROBS, PGD__S_ROOT_PATH, PGD__S_CORS_ORIGINS, PGD__S_MAX_BODY_BYTES,
    PGD__S_MAX_CONNECTIONS, PGD__S_MAX_CONNECTIONS_PER_IP, PGD__S_MAX_N,
    PGD__S_TIMEOUT_KEEP_ALIVE, PGD__S_HEADER_TIMEOUT, PGD__S_WRITE_TIMEOUT, PGD__S_GRACE,
    PGD__S_FRONTEND_OPT,
    PGD__S_TOOL_CALL_PARSER, PGD__S_ENABLE_AUTO_TOOL_CHOICE, PGD__S_REASONING_PARSER,
    PGD__S_TRUST_REQUEST_CHAT_TEMPLATE,
    /* [frontend.repl]: `pagoda chat`'s settings (not flags of `pagoda serve`) */
    PGD__S_REPL_URL, PGD__S_REPL_API_KEY, PGD__S_REPL_SYSTEM, PGD__S_REPL_TEMPERATURE,
    PGD__S_REPL_TOP_P, PGD__S_REPL_TOP_K, PGD__S_REPL_MAX_TOKENS, PGD__S_REPL_SEED,
    PGD__S_REPL_NO_STATS, PGD__S_REPL_HISTORY_FILE,
    /* [log] */
    PGD__S_LOG_LEVEL, PGD__S_LOG_FORMAT, PGD__S_LOG_FILE, PGD__S_ACCESS_LOG,
    PGD__S_DISABLE_LOG_STATS, PGD__S_LOG_STATS_INTERVAL,
    /* [engine] kv_cache_dtype (listed in its group) */
    PGD__S_KV_CACHE_DTYPE,
    /* [engine] preemption by swapping (listed in their groups) */
    PGD__S_SWAP_SPACE, PGD__S_PREEMPTION_MODE,
    PGD__S_COUNT
};

enum pgd__setting_type {
    PGD__ST_STRING,     /* any text */
    PGD__ST_PATH,       /* a file or directory */
    PGD__ST_INT,        /* a decimal integer in [min, max] */
    PGD__ST_HUMAN_INT,  /* an integer with vLLM's suffixes: k m g t = 10^3.., K M G T = 2^10.. */
    PGD__ST_FLOAT,      /* a real in [min, max] */
    PGD__ST_BOOL,       /* a flag: --x sets it; --no-x clears it when the row allows */
    PGD__ST_CHOICE,     /* one of `choices` ('|'-separated) */
    PGD__ST_JSON,       /* a JSON value (the row's check says which shape) */
};

/* Where a row's value goes. */
enum pgd__setting_dest {
    PGD__SD_ENGINE,     /* a field of struct pgd_engine_params (pgd__settings_engine_params) */
    PGD__SD_FRONTEND,   /* a key=value setting handed to the frontend plugin, key = name */
    PGD__SD_TOOL,       /* read by `pagoda serve` itself */
    PGD__SD_REPL,       /* a setting of the repl frontend (`pagoda chat`, [frontend.repl]):
                           not a flag of `pagoda serve`, not in its --help */
};

/* vLLM's `vllm serve --help` groups, in its order (pagoda's own rows join the nearest). */
enum pgd__setting_group {
    PGD__SG_POSITIONAL, PGD__SG_OPTIONS, PGD__SG_FRONTEND, PGD__SG_MODEL, PGD__SG_CACHE,
    PGD__SG_SCHEDULER, PGD__SG_DEVICE, PGD__SG_OBSERVABILITY, PGD__SG_VLLM,
    PGD__SG_COUNT
};

enum {
    PGD__SF_NEGATABLE = 1,   /* a bool with a --no-NAME form (argparse BooleanOptionalAction) */
    PGD__SF_REPEATABLE = 2,  /* each use adds a value (a list) */
    PGD__SF_POSITIONAL = 4,  /* may also be given as the command line's one positional word */
    PGD__SF_RELOADABLE = 8,  /* a running `pagoda serve --config F` applies a new value on
                                SIGHUP (settings_reload.c); other rows need a restart */
};

struct pgd__setting_def {
    const char *section;     /* INI section: one of pgd__setting_sections */
    const char *name;        /* INI key; the flag is --name with '-' for '_' */
    enum pgd__setting_type type;
    const char *def;         /* the default as text; NULL: unset (the help says what then) */
    double min, max;         /* PGD__ST_INT, HUMAN_INT, FLOAT: the range (inclusive) */
    const char *choices;     /* PGD__ST_CHOICE: "a|b|c" */
    const char *metavar;     /* the value's name in --help, e.g. "BYTES" */
    const char *help;
    enum pgd__setting_group group;
    enum pgd__setting_dest dest;
    unsigned flags;
    /* Further checks of a value that passed its type (NULL: none): returns false with a
     * reason in why. */
    bool (*check)(const char *value, char *why, size_t whylen);
};

/* Another spelling of a row on the command line: vLLM's where ours differs, or pagoda's older
 * one. With `value` set the flag takes no argument and sets the row to it. */
struct pgd__setting_alias {
    const char *flag;        /* without the leading "--" */
    enum pgd__setting_id id;
    const char *value;       /* NULL: takes the row's value as usual */
    const char *note;        /* what it means when it differs (for --help and the doc) */
    /* Turns the flag's value into the row's (NULL: taken as it is); false with a reason. */
    bool (*convert)(const char *in, char *out, size_t outlen, char *why, size_t whylen);
};

/* A vLLM flag pagoda refuses, and what to use instead. */
struct pgd__refused_flag {
    const char *flag;        /* "--tensor-parallel-size", or a short one like "-tp" */
    const char *instead;
};

extern const struct pgd__setting_def pgd__setting_defs[PGD__S_COUNT];
extern const struct pgd__setting_alias pgd__setting_aliases[];
extern const size_t pgd__n_setting_aliases;
extern const struct pgd__refused_flag pgd__refused_flags[];
extern const size_t pgd__n_refused_flags;
extern const char *const pgd__setting_group_titles[PGD__SG_COUNT];
/* The INI sections, in the order the doc and --print list them. */
extern const char *const pgd__setting_sections[];
extern const size_t pgd__n_setting_sections;

enum pgd__setting_origin { PGD__SO_DEFAULT, PGD__SO_FLAG, PGD__SO_FILE, PGD__SO_ENV };

struct pgd__setting_value {
    char **items;            /* [n_items] owned strings; scalars have at most one */
    int n_items;
    enum pgd__setting_origin origin;
    char where[96];          /* e.g. "--max-model-len" or "deploy.ini:12" */
};

struct pgd__settings {
    struct pgd__setting_value v[PGD__S_COUNT];
};

void pgd__settings_init(struct pgd__settings *s);
void pgd__settings_fini(struct pgd__settings *s);

/* The row named name (INI key or flag name, '-' and '_' alike), or -1. A name two
 * sections share (api_key, seed: [frontend.openai] and [engine] vs [frontend.repl]) finds
 * the `pagoda serve` row. */
int pgd__settings_find(const char *name);
/* The row named name in INI section section, or -1. */
int pgd__settings_find_in(const char *section, const char *name);

/* Checks value against row id's type, range and check, then stores it (a repeatable row
 * appends; any other replaces). where names the source for messages and --print. Errors
 * (PGD_ERR_INVALID_ARG) say "WHERE: VALUE is not ... (expected ...)". */
enum pgd_status pgd__settings_set(struct pgd__settings *s, enum pgd__setting_id id,
                                  const char *value, enum pgd__setting_origin origin,
                                  const char *where, char *err, size_t errlen);

/* The row name nearest to name by edit distance ('-' and '_' alike), or NULL when none is
 * close: for "did you mean" in messages about unknown flags and INI keys. */
const char *pgd__settings_nearest_key(const char *name);
/* The edit distance of a and b ('-' and '_' alike; 99 for names over 63 characters). */
int pgd__settings_distance(const char *a, const char *b);

/* Parses a command line (argv[0] is the command's name; --flag VALUE, --flag=VALUE,
 * --flag_with_underscores, --no-flag, one positional MODEL, "--" ends the flags) into s.
 * Refuses unknown flags (with the nearest known name), vLLM flags pagoda does not support
 * (with what to use instead), and bad values. *help is set on --help / -h. */
enum pgd_status pgd__settings_parse_args(struct pgd__settings *s, int argc, char **argv,
                                         bool *help, char *err, size_t errlen);

/* The row a flag word ("--name", "--name=value", an alias, "--no-name") sets, or -1. */
int pgd__settings_flag_row(const char *arg);
/* The one flag at argv[*i] into s, as pgd__settings_parse_args takes it (it may consume the
 * following words, *i left on the last); the same refusals. For a command that takes the
 * engine's flags beside its own (`pagoda bench throughput`). */
enum pgd_status pgd__settings_parse_flag(struct pgd__settings *s, int argc, char **argv, int *i,
                                         char *err, size_t errlen);

/* Typed reads of a row (already checked when set). A row without a value reads as NULL,
 * 0, 0.0 or false. */
const char *pgd__settings_str(const struct pgd__settings *s, enum pgd__setting_id id);
long long pgd__settings_int(const struct pgd__settings *s, enum pgd__setting_id id);
double pgd__settings_float(const struct pgd__settings *s, enum pgd__setting_id id);
bool pgd__settings_bool(const struct pgd__settings *s, enum pgd__setting_id id);
bool pgd__settings_is_set(const struct pgd__settings *s, enum pgd__setting_id id);
/* The log_level row as an enum pgd_log_level (vLLM's trace = debug, critical = error). */
int pgd__settings_log_level(const struct pgd__settings *s);

/* vLLM's human_readable_int: "25.6k" = 25600, "4G" = 4 * 2^30, "1024" = 1024 (decimals only
 * with the decimal suffixes k m g t). False when s is none of these. */
bool pgd__parse_human_int(const char *s, long long *out);

/* The engine rows (dest PGD__SD_ENGINE) into ep, except device and dtype, which depend on
 * the machine (see runtime/config/device_select.h). Arrays in ep (cuda_graph_sizes) point
 * into graph_sizes [max_sizes]. */
void pgd__settings_engine_params(const struct pgd__settings *s, struct pgd_engine_params *ep,
                                 int *graph_sizes, int max_sizes);
/* The same for the engine rows that were set (by a flag, a file or the environment) only:
 * the fields of the others keep what ep holds. */
void pgd__settings_engine_params_given(const struct pgd__settings *s,
                                       struct pgd_engine_params *ep, int *graph_sizes,
                                       int max_sizes);

/* `pagoda serve --help`: the rows grouped as vLLM's --help groups them. */
void pgd__settings_print_help(FILE *out, const char *usage);
/* docs/CONFIG.md: every section's keys with flag, type, default, range and help. */
void pgd__settings_print_doc(FILE *out);
/* Every row's effective value and where it came from (`pagoda config --print`). */
void pgd__settings_print_effective(FILE *out, const struct pgd__settings *s);

#endif
