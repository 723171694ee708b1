/* Request bodies of /v1/completions and /v1/chat/completions (and /v1/responses, once
 * responses.c made it a chat body) -> struct oai_gen.
 *
 * Every field is checked for its type and range; a wrong one is a 400 naming the field.
 * fields.c says which fields are honoured, refused or ignored (unknown ones are logged).
 * Prompts are rendered (chat) and tokenized here, so that the context check can say how
 * many tokens the prompt has. Strings may hold NUL bytes (\u0000): lengths are carried. */
#include "plugins/frontend/openai/oai.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *oai_field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

/* A boolean field k of o; name is how errors call it (e.g. "stream_options.include_usage"). */
static bool opt_bool_named(json_t *o, const char *k, const char *name, bool *out,
                           struct oai_error *e)
{
    json_t *v = oai_field(o, k);
    if (!v)
        return true;
    if (!json_is_boolean(v)) {
        OAI_BAD(e, name, "'%s' must be a boolean", name);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

bool oai_opt_bool(json_t *o, const char *k, bool *out, struct oai_error *e)
{
    return opt_bool_named(o, k, k, out, e);
}

/* An integer (a real with an integral value is accepted) in [lo, hi]. */
static bool opt_int(json_t *o, const char *k, long long lo, long long hi, long long *out,
                    bool *set, struct oai_error *e)
{
    json_t *v = oai_field(o, k);
    if (set)
        *set = false;
    if (!v)
        return true;
    long long x;
    if (json_is_integer(v))
        x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e15)
        x = (long long)json_real_value(v);
    else {
        OAI_BAD(e, k, "'%s' must be an integer", k);
        return false;
    }
    if (x < lo || x > hi) {
        if (hi == LLONG_MAX)
            OAI_BAD(e, k, "'%s' must be at least %lld (got %lld)", k, lo, x);
        else
            OAI_BAD(e, k, "'%s' must be in [%lld, %lld] (got %lld)", k, lo, hi, x);
        return false;
    }
    *out = x;
    if (set)
        *set = true;
    return true;
}

/* A number in [lo, hi] (or (lo, hi] when lo_open). */
static bool opt_num(json_t *o, const char *k, double lo, double hi, bool lo_open, float *out,
                    struct oai_error *e)
{
    json_t *v = oai_field(o, k);
    if (!v)
        return true;
    if (!json_is_number(v)) {
        OAI_BAD(e, k, "'%s' must be a number", k);
        return false;
    }
    double x = json_number_value(v);
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
        OAI_BAD(e, k, "'%s' must be in %c%g, %g] (got %g)", k, lo_open ? '(' : '[', lo, hi, x);
        return false;
    }
    *out = (float)x;
    return true;
}

static bool take_ids(struct oai_server *s, json_t *arr, const char *param, struct oai_prompt *p,
                     struct oai_error *e)
{
    size_t n = json_array_size(arr);
    p->ids = malloc((n ? n : 1) * sizeof *p->ids);
    if (!p->ids) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= s->model.vocab_size) {
            OAI_BAD(e, param, "'%s': token ids must be integers in [0, %d)", param,
                    s->model.vocab_size);
            return false;
        }
        p->ids[i] = (int32_t)json_integer_value(v);
    }
    p->n_ids = (int)n;
    return true;
}

bool oai_prompt_tokenize(struct oai_server *s, const char *text, size_t len, bool add_special,
                     const char *param, struct oai_prompt *p, struct oai_error *e)
{
    if (!s->model.tokenizer) {
        OAI_BAD(e, param, "this model has no tokenizer: send the prompt as token ids");
        return false;
    }
    struct pgd_tokens t;
    pgd_tokens_init(&t);
    char err[256];
    if (pgd_tokenizer_encode(s->model.tokenizer, text, len, add_special, &t, err, sizeof err)) {
        pgd_tokens_fini(&t);
        OAI_BAD(e, param, "cannot tokenize '%s': %s", param, err);
        return false;
    }
    if (t.n > INT_MAX / 2) {
        pgd_tokens_fini(&t);
        OAI_BAD(e, param, "'%s' is too long", param);
        return false;
    }
    p->ids = t.ids;            /* the array passes to p */
    p->n_ids = (int)t.n;
    if (!(p->text = malloc(len + 1))) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->text_len = len;
    return true;
}

bool oai_prompts_alloc(struct oai_gen *g, size_t n, struct oai_error *e)
{
    g->prompts = calloc(n, sizeof *g->prompts);
    if (!g->prompts) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    g->n_prompts = (int)n;
    return true;
}

/* "prompt": a string, a list of strings, a list of token ids, a list of lists of ids. */
static bool parse_prompt(struct oai_server *s, json_t *b, struct oai_gen *g, bool add_special,
                         struct oai_error *e)
{
    json_t *p = oai_field(b, "prompt");
    if (!p) {
        OAI_BAD(e, "prompt", "'prompt' is required");
        return false;
    }
    if (json_is_string(p)) {
        if (!oai_prompts_alloc(g, 1, e))
            return false;
        return oai_prompt_tokenize(s, json_string_value(p), json_string_length(p), add_special, "prompt",
                        &g->prompts[0], e);
    }
    if (!json_is_array(p) || json_array_size(p) == 0) {
        OAI_BAD(e, "prompt", "'prompt' must be a string, a list of strings, a list of token "
                "ids or a list of lists of token ids (non-empty)");
        return false;
    }
    json_t *first = json_array_get(p, 0);
    size_t n = json_array_size(p);
    if (json_is_integer(first)) {
        if (!oai_prompts_alloc(g, 1, e))
            return false;
        return take_ids(s, p, "prompt", &g->prompts[0], e);
    }
    if ((size_t)s->cfg.max_n < n) {
        OAI_BAD(e, "prompt", "at most %d prompts per request (got %zu)", s->cfg.max_n, n);
        return false;
    }
    if (!oai_prompts_alloc(g, n, e))
        return false;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(p, i);
        if (json_is_string(v) && json_is_string(first)) {
            if (!oai_prompt_tokenize(s, json_string_value(v), json_string_length(v), add_special, "prompt",
                          &g->prompts[i], e))
                return false;
        } else if (json_is_array(v) && json_is_array(first)) {
            if (!take_ids(s, v, "prompt", &g->prompts[i], e))
                return false;
        } else {
            OAI_BAD(e, "prompt", "'prompt' must be a string, a list of strings, a list of "
                    "token ids or a list of lists of token ids (prompt[%zu] does not fit)", i);
            return false;
        }
    }
    return true;
}

static bool parse_stop(json_t *b, struct oai_gen *g, struct oai_error *e)
{
    json_t *st = oai_field(b, "stop");
    if (!st)
        return true;
    size_t n = json_is_string(st) ? 1 : json_array_size(st);
    if (!json_is_string(st) && !json_is_array(st)) {
        OAI_BAD(e, "stop", "'stop' must be a string or a list of strings");
        return false;
    }
    if (n > OAI_MAX_STOP) {
        OAI_BAD(e, "stop", "'stop' may hold at most %d strings (got %zu)", OAI_MAX_STOP, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_is_string(st) ? st : json_array_get(st, i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            OAI_BAD(e, "stop", "'stop' strings must be non-empty strings");
            return false;
        }
        if (!(g->stop_buf[i] = strdup(json_string_value(v)))) {
            oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
            return false;
        }
        g->sp.n_stop = (int)i + 1;
    }
    g->sp.stop = (const char *const *)g->stop_buf;
    return true;
}

static bool parse_token_lists(struct oai_server *s, json_t *b, struct oai_gen *g,
                              struct oai_error *e)
{
    json_t *st = oai_field(b, "stop_token_ids");
    if (st) {
        if (!json_is_array(st) || json_array_size(st) > 1024) {
            OAI_BAD(e, "stop_token_ids", "'stop_token_ids' must be a list of token ids");
            return false;
        }
        size_t n = json_array_size(st);
        g->stop_ids = malloc((n ? n : 1) * sizeof *g->stop_ids);
        if (!g->stop_ids)
            return false;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(st, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) >= s->model.vocab_size) {
                OAI_BAD(e, "stop_token_ids", "'stop_token_ids' must be token ids in [0, %d)",
                        s->model.vocab_size);
                return false;
            }
            g->stop_ids[i] = (int32_t)json_integer_value(v);
        }
        g->sp.stop_token_ids = g->stop_ids;
        g->sp.n_stop_token_ids = (int)n;
    }
    json_t *lb = oai_field(b, "logit_bias");
    if (lb) {
        if (!json_is_object(lb) || json_object_size(lb) > 1024) {
            OAI_BAD(e, "logit_bias", "'logit_bias' must be an object mapping token ids to "
                    "biases");
            return false;
        }
        g->bias = calloc(json_object_size(lb) + 1, sizeof *g->bias);
        if (!g->bias)
            return false;
        const char *k;
        json_t *v;
        int i = 0;
        json_object_foreach(lb, k, v) {
            /* Decimal digits only: strtol alone would take " 5", "+5" and "-0". */
            char *end;
            errno = 0;
            long id = strtol(k, &end, 10);
            if (!(*k >= '0' && *k <= '9') || *end || errno || id < 0 ||
                id >= s->model.vocab_size) {
                OAI_BAD(e, "logit_bias", "'logit_bias' key '%.40s' is not a token id in "
                        "[0, %d)", k, s->model.vocab_size);
                return false;
            }
            if (!json_is_number(v) || !(json_number_value(v) >= -100.0) ||
                !(json_number_value(v) <= 100.0)) {
                OAI_BAD(e, "logit_bias", "'logit_bias' values must be numbers in [-100, 100]");
                return false;
            }
            g->bias[i++] = (struct pgd_logit_bias){ (int32_t)id, (float)json_number_value(v) };
        }
        g->sp.logit_bias = g->bias;
        g->sp.n_logit_bias = i;
    }
    return true;
}

/* Added to a banned token's logit: its probability underflows to 0 (the engine refuses
 * non-finite biases). */
#define BAN_BIAS (-1.0e9f)

/* bad_words: a list of non-empty strings, handed to the engine (which tokenizes them and
 * bans them as vLLM does, words of several tokens included). */
static bool parse_bad_words(struct oai_server *s, json_t *b, struct oai_gen *g,
                            struct oai_error *e)
{
    json_t *bad = oai_field(b, "bad_words");
    if (!bad || (json_is_array(bad) && json_array_size(bad) == 0))
        return true;
    if (!json_is_array(bad)) {
        OAI_BAD(e, "bad_words", "'bad_words' must be a list of strings");
        return false;
    }
    if (!s->model.tokenizer) {
        OAI_BAD(e, "bad_words", "'bad_words' needs a tokenizer; this model has none");
        return false;
    }
    size_t n = json_array_size(bad);
    if (!(g->bad_words = calloc(n, sizeof *g->bad_words))) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(bad, i, v) {
        /* leading whitespace is cut (as vLLM does): nothing may be left */
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            !json_string_value(v)[strspn(json_string_value(v), " \t\n\r\f\v")]) {
            OAI_BAD(e, "bad_words", "'bad_words' must be a list of non-empty strings");
            return false;
        }
        if (!(g->bad_words[i] = strdup(json_string_value(v)))) {
            oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
            return false;
        }
        g->sp.n_bad_words = (int)i + 1;
    }
    g->sp.bad_words = (const char *const *)g->bad_words;
    return true;
}

/* allowed_token_ids: the tokens it leaves out get BAN_BIAS in logit_bias. */
static bool parse_allowed_tokens(struct oai_server *s, json_t *b, struct oai_gen *g,
                                 struct oai_error *e)
{
    json_t *allowed = oai_field(b, "allowed_token_ids");
    if (!allowed)
        return true;
    int V = s->model.vocab_size;
    if (!json_is_array(allowed) || json_array_size(allowed) == 0) {
        OAI_BAD(e, "allowed_token_ids", "'allowed_token_ids' must be a non-empty list of "
                "token ids");
        return false;
    }
    unsigned char *ban = malloc((size_t)V);
    if (!ban) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    memset(ban, 1, (size_t)V);
    size_t i;
    json_t *v;
    json_array_foreach(allowed, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= V) {
            free(ban);
            OAI_BAD(e, "allowed_token_ids", "'allowed_token_ids' must be token ids in "
                    "[0, %d)", V);
            return false;
        }
        ban[json_integer_value(v)] = 0;
    }
    int n_ban = 0;
    for (int t = 0; t < V; t++)
        n_ban += ban[t];
    struct pgd_logit_bias *nb = realloc(g->bias, (size_t)(g->sp.n_logit_bias + n_ban + 1) *
                                                 sizeof *nb);
    if (!nb) {
        free(ban);
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    int k = g->sp.n_logit_bias;
    for (int t = 0; t < V; t++)
        if (ban[t])
            nb[k++] = (struct pgd_logit_bias){ t, BAN_BIAS };
    free(ban);
    g->bias = nb;
    g->sp.logit_bias = nb;
    g->sp.n_logit_bias = k;
    return true;
}

static bool check_context(struct oai_server *s, struct oai_gen *g, int max_tokens,
                          struct oai_error *e)
{
    int ctx = s->model.max_model_len;
    for (int i = 0; i < g->n_prompts; i++) {
        struct oai_prompt *p = &g->prompts[i];
        if (p->n_ids == 0) {
            OAI_BAD(e, g->chat ? "messages" : "prompt", "the prompt is empty (0 tokens)");
            return false;
        }
        int want = g->max_tokens_set ? max_tokens : 1;
        if ((long long)p->n_ids + want > ctx) {
            oai_err_set(e, 400, "invalid_request_error", g->chat ? "messages" : "prompt",
                        "context_length_exceeded",
                        "This model's maximum context length is %d tokens. However, you "
                        "requested %lld tokens (%d in the %s, %d in the completion). Please "
                        "reduce the length of the %s or completion.", ctx,
                        (long long)p->n_ids + want, p->n_ids, g->chat ? "messages" : "prompt",
                        want, g->chat ? "messages" : "prompt");
            return false;
        }
    }
    return true;
}

/* The deployment's sampling defaults (generation_config.json, --override-generation-config)
 * for the fields a request leaves out; returns their max_tokens (0: none). */
static int apply_default_sampling(const struct oai_server *s, struct pgd_sampling_params *sp)
{
    const struct pgd_sampling_params *d = s->model.default_sampling;
    if (!d)
        return 0;
    sp->temperature = d->temperature;
    sp->top_p = d->top_p;
    sp->top_k = d->top_k;
    sp->min_p = d->min_p;
    sp->presence_penalty = d->presence_penalty;
    sp->frequency_penalty = d->frequency_penalty;
    sp->repetition_penalty = d->repetition_penalty;
    return d->max_tokens > 0 ? d->max_tokens : 0;
}

json_t *oai_body_json(const char *body, size_t len, struct oai_error *e)
{
    json_error_t jerr;
    json_t *j = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, &jerr);
    if (!j) {
        oai_err_set(e, 400, "invalid_request_error", NULL, "invalid_json",
                    "Invalid JSON body: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        oai_err_set(e, 400, "invalid_request_error", NULL, "invalid_json",
                    "The request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* True when a request's "model" is one of the served names (--served-model-name NAME
 * [NAME ...]), or the model's name when none was given. */
bool oai_model_known(const struct oai_server *s, const char *name)
{
    if (!s->cfg.n_served_model_names)
        return !strcmp(name, s->model_name);
    for (int i = 0; i < s->cfg.n_served_model_names; i++)
        if (!strcmp(name, s->cfg.served_model_names[i]))
            return true;
    return false;
}

static bool parse_stream_options(json_t *b, struct oai_gen *g, struct oai_error *e)
{
    if (!oai_opt_bool(b, "stream", &g->stream, e))
        return false;
    json_t *so = oai_field(b, "stream_options");
    if (!so)
        return true;
    if (!json_is_object(so)) {
        OAI_BAD(e, "stream_options", "'stream_options' must be an object");
        return false;
    }
    if (!g->stream) {
        OAI_BAD(e, "stream_options", "'stream_options' is only allowed when 'stream' is true");
        return false;
    }
    return opt_bool_named(so, "include_usage", "stream_options.include_usage",
                          &g->include_usage, e) &&
           opt_bool_named(so, "continuous_usage_stats", "stream_options.continuous_usage_stats",
                          &g->continuous_usage, e);
}

/* The sampling fields; *max_tokens gets max_tokens / max_completion_tokens. */
static bool parse_sampling(struct oai_server *s, json_t *b, struct oai_gen *g,
                           long long *max_tokens, struct oai_error *e)
{
    struct pgd_sampling_params *sp = &g->sp;
    long long x;
    bool set;
    /* Both spellings are checked; max_completion_tokens (OpenAI's newer name) wins when
     * both are given, as in vLLM. */
    long long max_completion = 0;
    bool completion_set = false;
    if (!opt_int(b, "max_tokens", 1, INT_MAX, max_tokens, &g->max_tokens_set, e) ||
        !opt_int(b, "max_completion_tokens", 1, INT_MAX, &max_completion, &completion_set, e))
        return false;
    if (completion_set) {
        *max_tokens = max_completion;
        g->max_tokens_set = true;
    }
    if (!opt_num(b, "temperature", 0.0, 2.0, false, &sp->temperature, e) ||
        !opt_num(b, "top_p", 0.0, 1.0, true, &sp->top_p, e) ||
        !opt_num(b, "presence_penalty", -2.0, 2.0, false, &sp->presence_penalty, e) ||
        !opt_num(b, "frequency_penalty", -2.0, 2.0, false, &sp->frequency_penalty, e) ||
        !opt_num(b, "min_p", 0.0, 1.0, false, &sp->min_p, e) ||
        !opt_num(b, "repetition_penalty", 0.0, 10.0, true, &sp->repetition_penalty, e))
        return false;
    if (!opt_int(b, "n", 1, s->cfg.max_n, &x, &set, e))
        return false;
    if (set)
        sp->n = (int)x;
    if (!opt_int(b, "top_k", -1, INT_MAX, &x, &set, e))
        return false;
    if (set)
        sp->top_k = (int)x;
    if (!opt_int(b, "seed", LLONG_MIN, LLONG_MAX, &x, &sp->has_seed, e))
        return false;
    if (sp->has_seed)
        sp->seed = (uint64_t)x;
    if (!opt_int(b, "min_tokens", 0, INT_MAX, &x, &set, e))
        return false;
    if (set)
        sp->min_tokens = (int)x;
    return oai_opt_bool(b, "ignore_eos", &sp->ignore_eos, e) &&
           oai_opt_bool(b, "skip_special_tokens", &sp->skip_special_tokens, e) &&
           oai_opt_bool(b, "include_stop_str_in_output", &sp->include_stop_str_in_output, e) &&
           parse_stop(b, g, e) && parse_token_lists(s, b, g, e);
}

static bool parse_logprobs(struct oai_server *s, json_t *b, struct oai_gen *g,
                           struct oai_error *e)
{
    long long x;
    bool set;
    if (g->chat) {
        bool lp = false;
        if (!oai_opt_bool(b, "logprobs", &lp, e) ||
            !opt_int(b, "top_logprobs", 0, s->cfg.max_logprobs, &x, &set, e))
            return false;
        if (set && x > 0 && !lp) {
            OAI_BAD(e, "top_logprobs", "'top_logprobs' needs 'logprobs' to be true");
            return false;
        }
        if (lp)
            g->logprobs = set ? (int)x : 0;
    } else {
        if (!opt_int(b, "logprobs", 0, s->cfg.max_logprobs, &x, &set, e) ||
            !oai_opt_bool(b, "echo", &g->echo, e))
            return false;
        if (set)
            g->logprobs = (int)x;
    }
    g->sp.logprobs = g->logprobs;
    g->prompt_logprobs = -1;
    if (!opt_int(b, "prompt_logprobs", 0, s->cfg.max_logprobs, &x, &set, e))
        return false;
    if (set && g->stream && x > 0) {
        OAI_BAD(e, "prompt_logprobs", "'prompt_logprobs' are not available when 'stream' is "
                "true");
        return false;
    }
    if (set)
        g->sp.prompt_logprobs = g->prompt_logprobs = (int)x;
    bool ids = s->cfg.return_tokens_as_token_ids;
    if (!oai_opt_bool(b, "return_tokens_as_token_ids", &ids, e))
        return false;
    g->token_ids_as_names = ids;
    return true;
}

/* best_of: sp.n samples run, the n best (by cumulative logprob) come back. */
static bool parse_best_of(struct oai_server *s, json_t *b, struct oai_gen *g,
                          struct oai_error *e)
{
    long long x;
    bool set;
    g->n_return = g->sp.n;
    if (!opt_int(b, "best_of", 1, s->cfg.max_n, &x, &set, e) || !set)
        return !e->status;
    if (x < g->sp.n) {
        OAI_BAD(e, "best_of", "'best_of' (%lld) must be at least 'n' (%d)", x, g->sp.n);
        return false;
    }
    if (x > g->sp.n && g->stream) {
        OAI_BAD(e, "best_of", "'best_of' greater than 'n' is not supported when 'stream' is "
                "true");
        return false;
    }
    if (x > g->sp.n) {
        g->best_of = true;
        g->sp.n = (int)x;
        if (g->sp.logprobs < 0)
            g->sp.logprobs = 0;    /* the ranking needs each token's logprob */
    }
    return true;
}

/* priority, cache_salt, request_id, include_reasoning. */
static bool parse_request_extras(json_t *b, struct oai_gen *g, struct oai_error *e)
{
    long long x;
    bool set;
    if (!opt_int(b, "priority", INT_MIN, INT_MAX, &x, &set, e))
        return false;
    if (set)
        g->priority = (int)x;
    static const char *const strs[] = { "cache_salt", "request_id" };
    char **dst[] = { &g->cache_salt, &g->request_id };
    for (int i = 0; i < 2; i++) {
        json_t *v = oai_field(b, strs[i]);
        if (!v)
            continue;
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v) ||
            (i == 1 && json_string_length(v) > 128)) {
            OAI_BAD(e, strs[i], "'%s' must be a non-empty string%s", strs[i],
                    i == 1 ? " of at most 128 bytes" : "");
            return false;
        }
        if (!(*dst[i] = strdup(json_string_value(v)))) {
            oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
            return false;
        }
    }
    g->include_reasoning = true;
    return oai_opt_bool(b, "include_reasoning", &g->include_reasoning, e);
}

/* truncate_prompt_tokens: each prompt keeps its last k tokens (vLLM's truncation side). */
static bool truncate_prompts(struct oai_server *s, json_t *b, struct oai_gen *g,
                             struct oai_error *e)
{
    long long k;
    bool set;
    if (!opt_int(b, "truncate_prompt_tokens", 1, INT_MAX, &k, &set, e) || !set)
        return !e->status;
    if (k > s->model.max_model_len) {
        OAI_BAD(e, "truncate_prompt_tokens", "'truncate_prompt_tokens' (%lld) exceeds the "
                "model's maximum context length (%d)", k, s->model.max_model_len);
        return false;
    }
    for (int i = 0; i < g->n_prompts; i++) {
        struct oai_prompt *p = &g->prompts[i];
        if (p->n_ids <= k)
            continue;
        memmove(p->ids, p->ids + (p->n_ids - k), (size_t)k * sizeof *p->ids);
        p->n_ids = (int)k;
        free(p->text);             /* echo shows what the model saw */
        p->text = NULL;
        p->text_len = 0;
    }
    return true;
}

/* What follows the prompts: echo's text, the choice count, the context, max_tokens. */
static bool finish_request(struct oai_server *s, json_t *b, struct oai_gen *g,
                           long long max_tokens, int default_max_tokens, struct oai_error *e)
{
    struct pgd_sampling_params *sp = &g->sp;
    if ((long long)g->n_prompts * sp->n > s->cfg.max_n) {
        OAI_BAD(e, "n", "%d prompts x n = %d choices exceed this server's limit of %d",
                g->n_prompts, sp->n, s->cfg.max_n);
        return false;
    }
    if (!parse_best_of(s, b, g, e))
        return false;
    if ((long long)g->n_prompts * sp->n > s->cfg.max_n) {
        OAI_BAD(e, "best_of", "%d prompts x best_of = %d choices exceed this server's limit "
                "of %d", g->n_prompts, sp->n, s->cfg.max_n);
        return false;
    }
    if (g->echo) {
        for (int i = 0; i < g->n_prompts; i++) {
            struct oai_prompt *p = &g->prompts[i];
            if (!p->text && s->model.tokenizer &&
                pgd_tokenizer_decode(s->model.tokenizer, p->ids, (size_t)p->n_ids, false,
                                     &p->text, &p->text_len, NULL, 0) != PGD_OK)
                p->text = NULL;
        }
        if (g->logprobs >= 0 && sp->prompt_logprobs < g->logprobs)
            sp->prompt_logprobs = g->logprobs;
        if (g->logprobs >= 0 && g->stream && sp->n > 1) {
            OAI_BAD(e, "echo", "'echo' with 'logprobs' is not supported when streaming with "
                    "n > 1");
            return false;
        }
    }
    if (!check_context(s, g, (int)max_tokens, e))
        return false;
    /* max_tokens, when not given: the generation config's max_new_tokens, else 16 for
     * completions (OpenAI's default) and the rest of the context for chat; never more than
     * the context has room for. */
    sp->max_tokens = g->max_tokens_set ? (int)max_tokens
                     : default_max_tokens > 0 ? default_max_tokens : (g->chat ? -1 : 16);
    if (!g->max_tokens_set && sp->max_tokens > 0) {
        int room = INT_MAX;
        for (int i = 0; i < g->n_prompts; i++)
            if (s->model.max_model_len - g->prompts[i].n_ids < room)
                room = s->model.max_model_len - g->prompts[i].n_ids;
        if (room < sp->max_tokens)
            sp->max_tokens = room;
    }
    if (sp->max_tokens > 0 && sp->min_tokens > sp->max_tokens) {
        OAI_BAD(e, "min_tokens", "'min_tokens' (%d) exceeds 'max_tokens' (%d)", sp->min_tokens,
                sp->max_tokens);
        return false;
    }
    return true;
}

bool oai_gen_parse_api(struct oai_server *s, enum oai_api api, json_t *b, struct oai_gen *g,
                       struct oai_error *e)
{
    memset(g, 0, sizeof *g);
    g->api = api;
    g->chat = api != OAI_API_COMPLETIONS;
    g->logprobs = -1;
    g->sp = pgd_sampling_default_params();
    int default_max_tokens = apply_default_sampling(s, &g->sp);
    if (api != OAI_API_RESPONSES && !oai_fields_check(s, api, b, e))
        return false;

    json_t *model = oai_field(b, "model");
    if (model && !json_is_string(model)) {
        OAI_BAD(e, "model", "'model' must be a string");
        return false;
    }
    if (model && !oai_model_known(s, json_string_value(model))) {
        oai_err_set(e, 404, "invalid_request_error", "model", "model_not_found",
                    "The model `%.200s` does not exist (this server serves `%.200s`)",
                    json_string_value(model), s->model_name);
        return false;
    }
    json_t *user = oai_field(b, "user");
    if (user && !json_is_string(user)) {
        OAI_BAD(e, "user", "'user' must be a string");
        return false;
    }
    long long max_tokens = 0;
    if (!parse_stream_options(b, g, e) || !parse_sampling(s, b, g, &max_tokens, e) ||
        !parse_logprobs(s, b, g, e) || !parse_request_extras(b, g, e) || !oai_guide_parse(s, b, g, e) ||
        !parse_allowed_tokens(s, b, g, e) || !parse_bad_words(s, b, g, e))
        return false;
    if (g->tool_choice == OAI_TOOLS_AUTO &&
        oai_tool_parser_needs_special_tokens(s->cfg.tool_call_parser))
        g->sp.skip_special_tokens = false;   /* the parser's markers are special tokens */

    bool add_special = !g->chat;
    if (!oai_opt_bool(b, "add_special_tokens", &add_special, e))
        return false;
    if (!(g->chat ? oai_parse_messages(s, b, g, add_special, e)
                  : parse_prompt(s, b, g, add_special, e)))
        return false;
    return truncate_prompts(s, b, g, e) &&
           finish_request(s, b, g, max_tokens, default_max_tokens, e);
}

bool oai_gen_parse(struct oai_server *s, bool chat, json_t *b, struct oai_gen *g,
                   struct oai_error *e)
{
    return oai_gen_parse_api(s, chat ? OAI_API_CHAT : OAI_API_COMPLETIONS, b, g, e);
}

void oai_gen_fini(struct oai_gen *g)
{
    for (int i = 0; i < g->n_prompts; i++) {
        free(g->prompts[i].ids);
        free(g->prompts[i].text);
    }
    free(g->prompts);
    for (int i = 0; i < OAI_MAX_STOP; i++)
        free(g->stop_buf[i]);
    free(g->stop_ids);
    free(g->bias);
    for (int i = 0; g->bad_words && i < g->sp.n_bad_words; i++)
        free(g->bad_words[i]);
    free(g->bad_words);
    free(g->cache_salt);
    free(g->guide);
    free(g->tool_name);
    free(g->echo_text);
    free(g->request_id);
    memset(g, 0, sizeof *g);
}
