/* A set of settings (see settings.h): every row's value and where it came from, checked
 * against the row's type when set, typed reads, and the engine rows -> engine params. */
#include "runtime/config/settings.h"
#include <pagoda/log.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void value_clear(struct pgd__setting_value *v)
{
    for (int i = 0; i < v->n_items; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n_items = 0;
}

/* Adds (or, append false, replaces with) one item; false on no memory. */
static bool value_put(struct pgd__setting_value *v, const char *text, bool append)
{
    if (!append)
        value_clear(v);
    char *copy = strdup(text);
    char **items = copy ? realloc(v->items, (size_t)(v->n_items + 1) * sizeof *items) : NULL;
    if (!items) {
        free(copy);
        return false;
    }
    items[v->n_items++] = copy;
    v->items = items;
    return true;
}

void pgd__settings_init(struct pgd__settings *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < PGD__S_COUNT; i++) {
        const struct pgd__setting_def *d = &pgd__setting_defs[i];
        PGD_ASSERT(d->name != NULL);   /* every id has its row */
        bool ok = !d->def || value_put(&s->v[i], d->def, false);
        PGD_ASSERT(ok);   /* the OOM policy: a few bytes at start-up */
        s->v[i].origin = PGD__SO_DEFAULT;
        snprintf(s->v[i].where, sizeof s->v[i].where, "default");
    }
}

void pgd__settings_fini(struct pgd__settings *s)
{
    for (int i = 0; i < PGD__S_COUNT; i++)
        value_clear(&s->v[i]);
}

/* name and key equal with '-' and '_' alike. */
static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return false;
    }
    return !*a && !*b;
}

int pgd__settings_find(const char *name)
{
    /* The serve rows first: a repl row shares its name with one of them at most. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < PGD__S_COUNT; i++)
            if ((pgd__setting_defs[i].dest == PGD__SD_REPL) == (pass == 1) &&
                same_name(name, pgd__setting_defs[i].name))
                return i;
    return -1;
}

int pgd__settings_find_in(const char *section, const char *name)
{
    for (int i = 0; i < PGD__S_COUNT; i++)
        if (!strcmp(section, pgd__setting_defs[i].section) &&
            same_name(name, pgd__setting_defs[i].name))
            return i;
    return -1;
}

bool pgd__parse_human_int(const char *s, long long *out)
{
    /* vLLM's human_readable_int: (\d+(\.\d+)?)([kKmMgGtT])?, decimals only with k m g t. */
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    bool frac = false;
    if (*p == '.') {
        frac = true;
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    double mult = 1;
    if (*p) {
        const char *dec = "kmgt", *bin = "KMGT", *c;
        if (p[1])
            return false;
        if ((c = strchr(dec, *p)))
            mult = pow(10.0, 3.0 * (double)(c - dec + 1));
        else if ((c = strchr(bin, *p)) && !frac)
            mult = ldexp(1.0, 10 * (int)(c - bin + 1));
        else
            return false;
    } else if (frac) {
        return false;
    }
    errno = 0;
    double v = strtod(s, NULL) * mult;
    if (errno || v >= 9.2e18)
        return false;
    *out = (long long)v;
    return true;
}

static bool is_choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Checks v against row d; on success canon receives the text to store (a HUMAN_INT's
 * decimal value, a BOOL's "true"/"false", else v). */
static bool check_value(const struct pgd__setting_def *d, const char *v, char *canon,
                        size_t canonlen, char *why, size_t whylen)
{
    snprintf(canon, canonlen, "%s", v);
    if (d->type != PGD__ST_CHOICE && d->choices && is_choice(d->choices, v))
        return true;   /* a word a numeric row also takes, e.g. max_model_len auto */
    char *end;
    switch (d->type) {
    case PGD__ST_STRING:
    case PGD__ST_PATH:
        if (!*v) {
            snprintf(why, whylen, "%s is empty: expected a non-empty %s", d->name,
                     d->type == PGD__ST_PATH ? "path" : "value");
            return false;
        }
        break;
    case PGD__ST_INT:
    case PGD__ST_HUMAN_INT: {
        long long x;
        errno = 0;
        bool ok = d->type == PGD__ST_HUMAN_INT ? pgd__parse_human_int(v, &x)
                                               : ((x = strtoll(v, &end, 10)), *v && !*end && !errno);
        if (!ok || (double)x < d->min || (double)x > d->max) {
            snprintf(why, whylen, "expected an integer%s in [%.0f, %.0f]",
                     d->type == PGD__ST_HUMAN_INT ? " (suffixes k m g t = 10^3.., K M G T = "
                                                    "2^10..)" : "", d->min, d->max);
            return false;
        }
        snprintf(canon, canonlen, "%lld", x);
        break;
    }
    case PGD__ST_FLOAT: {
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x) || x < d->min || x > d->max) {
            snprintf(why, whylen, "expected a number in [%g, %g]", d->min, d->max);
            return false;
        }
        break;
    }
    case PGD__ST_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            snprintf(canon, canonlen, "true");
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            snprintf(canon, canonlen, "false");
        else {
            snprintf(why, whylen, "expected true or false");
            return false;
        }
        break;
    case PGD__ST_CHOICE:
        if (!is_choice(d->choices, v)) {
            snprintf(why, whylen, "expected one of %s", d->choices);
            return false;
        }
        break;
    case PGD__ST_JSON:
        break;   /* the row's check says which JSON */
    }
    return !d->check || d->check(v, why, whylen);
}

enum pgd_status pgd__settings_set(struct pgd__settings *s, enum pgd__setting_id id,
                                  const char *value, enum pgd__setting_origin origin,
                                  const char *where, char *err, size_t errlen)
{
    const struct pgd__setting_def *d = &pgd__setting_defs[id];
    char canon[4096], why[256] = "";
    if (strlen(value) >= sizeof canon)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: the value is longer than %zu "
                        "bytes", where, sizeof canon - 1);
    if (!check_value(d, value, canon, sizeof canon, why, sizeof why))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: '%s' is not valid: %s", where,
                        value, why);
    struct pgd__setting_value *v = &s->v[id];
    /* A repeatable row collects the values of one source; a value from another source (the
     * default, a file under a flag) is replaced: flags override the file as a whole. */
    bool append = (d->flags & PGD__SF_REPEATABLE) && v->origin == origin &&
                  origin != PGD__SO_DEFAULT;
    if (!value_put(v, canon, append))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", where);
    v->origin = origin;
    snprintf(v->where, sizeof v->where, "%s", where);
    return PGD_OK;
}

/* ---- typed reads ------------------------------------------------------------------------- */

const char *pgd__settings_str(const struct pgd__settings *s, enum pgd__setting_id id)
{
    return s->v[id].n_items ? s->v[id].items[s->v[id].n_items - 1] : NULL;
}

long long pgd__settings_int(const struct pgd__settings *s, enum pgd__setting_id id)
{
    const char *v = pgd__settings_str(s, id);
    return v ? strtoll(v, NULL, 10) : 0;   /* a word like "auto" reads as 0 */
}

double pgd__settings_float(const struct pgd__settings *s, enum pgd__setting_id id)
{
    const char *v = pgd__settings_str(s, id);
    return v ? strtod(v, NULL) : 0.0;
}

bool pgd__settings_bool(const struct pgd__settings *s, enum pgd__setting_id id)
{
    const char *v = pgd__settings_str(s, id);
    return v && !strcmp(v, "true");
}

bool pgd__settings_is_set(const struct pgd__settings *s, enum pgd__setting_id id)
{
    return s->v[id].origin != PGD__SO_DEFAULT;
}

int pgd__settings_log_level(const struct pgd__settings *s)
{
    const char *v = pgd__settings_str(s, PGD__S_LOG_LEVEL);
    return !strcmp(v, "trace") ? PGD_LOG_DEBUG : !strcmp(v, "critical") ? PGD_LOG_ERROR
                                                                        : pgd_log_parse_level(v);
}

/* ---- engine rows -> engine params ---------------------------------------------------------- */

/* "1 2 4" or "1,2,4" -> sizes; returns the count (checked when set). */
static int parse_sizes(const char *v, int *sizes, int max)
{
    int n = 0;
    while (v && *v && n < max) {
        while (*v == ' ' || *v == ',')
            v++;
        if (!*v)
            break;
        char *end;
        sizes[n++] = (int)strtol(v, &end, 10);
        v = end;
    }
    return n;
}

/* The engine rows into ep: every row (all), or the set ones only. */
static void engine_params(const struct pgd__settings *s, struct pgd_engine_params *ep,
                          int *graph_sizes, int max_sizes, bool all)
{
#define GIVEN(id) (all || pgd__settings_is_set(s, id))
    if (GIVEN(PGD__S_TOKENIZER))
        ep->tokenizer = pgd__settings_str(s, PGD__S_TOKENIZER);
    if (GIVEN(PGD__S_QUANTIZATION)) {
        ep->quantization = pgd__settings_str(s, PGD__S_QUANTIZATION);
        if (ep->quantization && !strcmp(ep->quantization, "auto"))
            ep->quantization = NULL;   /* the checkpoint's own, as no value */
    }
    if (GIVEN(PGD__S_LOAD_FORMAT)) {
        const char *fmt = pgd__settings_str(s, PGD__S_LOAD_FORMAT);
        ep->random_weights = fmt && !strcmp(fmt, "dummy");
    }
    if (GIVEN(PGD__S_MAX_MODEL_LEN))
        ep->max_model_len = (int)pgd__settings_int(s, PGD__S_MAX_MODEL_LEN);
    if (GIVEN(PGD__S_SEED))
        ep->seed = (uint64_t)pgd__settings_int(s, PGD__S_SEED);
    if (GIVEN(PGD__S_BATCH_INVARIANT))
        ep->batch_invariant = pgd__settings_bool(s, PGD__S_BATCH_INVARIANT);
    if (GIVEN(PGD__S_BLOCK_SIZE))
        ep->block_size = (int)pgd__settings_int(s, PGD__S_BLOCK_SIZE);
    if (GIVEN(PGD__S_GPU_MEMORY_UTILIZATION))
        ep->gpu_memory_utilization = pgd__settings_float(s, PGD__S_GPU_MEMORY_UTILIZATION);
    if (GIVEN(PGD__S_KV_CACHE_MEMORY_BYTES))
        ep->kv_cache_memory_bytes = (size_t)pgd__settings_int(s, PGD__S_KV_CACHE_MEMORY_BYTES);
    if (GIVEN(PGD__S_NUM_BLOCKS))
        ep->num_blocks = (int)pgd__settings_int(s, PGD__S_NUM_BLOCKS);
    if (GIVEN(PGD__S_ENABLE_PREFIX_CACHING))
        ep->enable_prefix_caching = pgd__settings_bool(s, PGD__S_ENABLE_PREFIX_CACHING);
    if (GIVEN(PGD__S_MAX_NUM_SEQS))
        ep->max_num_seqs = (int)pgd__settings_int(s, PGD__S_MAX_NUM_SEQS);
    if (GIVEN(PGD__S_MAX_NUM_BATCHED_TOKENS))
        ep->max_num_batched_tokens = (int)pgd__settings_int(s, PGD__S_MAX_NUM_BATCHED_TOKENS);
    if (GIVEN(PGD__S_ENABLE_CHUNKED_PREFILL))
        ep->enable_chunked_prefill = pgd__settings_bool(s, PGD__S_ENABLE_CHUNKED_PREFILL);
    if (GIVEN(PGD__S_LONG_PREFILL_TOKEN_THRESHOLD))
        ep->long_prefill_token_threshold =
            (int)pgd__settings_int(s, PGD__S_LONG_PREFILL_TOKEN_THRESHOLD);
    if (GIVEN(PGD__S_SCHEDULING_POLICY)) {
        const char *pol = pgd__settings_str(s, PGD__S_SCHEDULING_POLICY);
        ep->policy = pol && !strcmp(pol, "priority") ? PGD_SCHED_PRIORITY : PGD_SCHED_FCFS;
    }
    if (GIVEN(PGD__S_ENFORCE_EAGER))
        ep->enforce_eager = pgd__settings_bool(s, PGD__S_ENFORCE_EAGER);
    if (GIVEN(PGD__S_ASYNC_SCHEDULING))
        ep->async_scheduling = pgd__settings_bool(s, PGD__S_ASYNC_SCHEDULING);
    if (GIVEN(PGD__S_MAX_SEQ_LEN_TO_CAPTURE))
        ep->max_seq_len_to_capture = (int)pgd__settings_int(s, PGD__S_MAX_SEQ_LEN_TO_CAPTURE);
    if (GIVEN(PGD__S_CUDA_GRAPH_SIZES)) {
        ep->n_cuda_graph_sizes = parse_sizes(pgd__settings_str(s, PGD__S_CUDA_GRAPH_SIZES),
                                             graph_sizes, max_sizes);
        ep->cuda_graph_sizes = ep->n_cuda_graph_sizes ? graph_sizes : NULL;
    }
    if (GIVEN(PGD__S_SPECULATIVE_CONFIG))
        ep->speculative_config = pgd__settings_str(s, PGD__S_SPECULATIVE_CONFIG);
    if (GIVEN(PGD__S_TENSOR_PARALLEL_SIZE))
        ep->tensor_parallel_size = (int)pgd__settings_int(s, PGD__S_TENSOR_PARALLEL_SIZE);
    if (GIVEN(PGD__S_TASK)) {
        const char *task = pgd__settings_str(s, PGD__S_TASK);
        ep->task = task && (!strcmp(task, "embed") || !strcmp(task, "embedding"))
                       ? PGD_TASK_EMBED
                       : PGD_TASK_GENERATE;
    }
    if (GIVEN(PGD__S_POOLER_CONFIG))
        ep->pooler_config = pgd__settings_str(s, PGD__S_POOLER_CONFIG);
    if (GIVEN(PGD__S_KV_CACHE_DTYPE)) {
        ep->kv_cache_dtype = pgd__settings_str(s, PGD__S_KV_CACHE_DTYPE);
        if (ep->kv_cache_dtype && !strcmp(ep->kv_cache_dtype, "auto"))
            ep->kv_cache_dtype = NULL; /* the compute dtype, as no value */
    }
    if (GIVEN(PGD__S_SWAP_SPACE))
        ep->swap_space_bytes = (size_t)(pgd__settings_float(s, PGD__S_SWAP_SPACE) *
                                        (double)((size_t)1 << 30));
    if (GIVEN(PGD__S_PREEMPTION_MODE)) {
        const char *pm = pgd__settings_str(s, PGD__S_PREEMPTION_MODE);
        ep->preemption_mode = !pm || !strcmp(pm, "auto") ? PGD_PREEMPT_AUTO
                              : !strcmp(pm, "swap")      ? PGD_PREEMPT_SWAP
                                                         : PGD_PREEMPT_RECOMPUTE;
    }
#undef GIVEN
}

void pgd__settings_engine_params(const struct pgd__settings *s, struct pgd_engine_params *ep,
                                 int *graph_sizes, int max_sizes)
{
    engine_params(s, ep, graph_sizes, max_sizes, true);
}

void pgd__settings_engine_params_given(const struct pgd__settings *s,
                                       struct pgd_engine_params *ep, int *graph_sizes,
                                       int max_sizes)
{
    engine_params(s, ep, graph_sizes, max_sizes, false);
}
