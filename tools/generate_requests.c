/* pagoda generate's requests and results (see generate_requests.h). */
#include "tools/generate_requests.h"
#include "runtime/base/mem.h"
#include <jansson.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void gen_request_defaults_init(struct gen_request_defaults *d)
{
    d->s = pgd_sampling_default_params();
    d->s.temperature = 0.0f;           /* the command line is greedy unless told otherwise */
}

static int parse_id_list(const char *s, struct gen_request *r, char *err, size_t errlen)
{
    size_t cap = 0;
    r->n_ids = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            snprintf(err, errlen, "--prompt-ids: '%s' is not a comma-separated list of token ids",
                     s);
            return -1;
        }
        if (!pgd__array_reserve(r->ids, cap, (size_t)r->n_ids + 1)) {
            snprintf(err, errlen, "--prompt-ids: out of memory");
            return -1;
        }
        r->ids[r->n_ids++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (r->n_ids == 0) {
        snprintf(err, errlen, "--prompt-ids needs at least one id");
        return -1;
    }
    return 0;
}

static void link_params(struct gen_request *r)
{
    r->params.prompt = r->prompt;
    r->params.prompt_ids = r->ids;
    r->params.n_prompt_ids = r->n_ids;
}

int gen_requests_single(const char *prompt, const char *prompt_ids,
                        const struct gen_request_defaults *d, struct gen_request **out,
                        char *err, size_t errlen)
{
    struct gen_request *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->line = 1;
    r->params = pgd_request_default_params();
    r->params.sampling = d->s;
    if (prompt)
        r->prompt = strdup(prompt);
    if ((prompt && !r->prompt) || (prompt_ids && parse_id_list(prompt_ids, r, err, errlen))) {
        if (prompt && !r->prompt)
            snprintf(err, errlen, "out of memory");
        gen_requests_free(r, 1);
        return -1;
    }
    link_params(r);
    *out = r;
    return 1;
}

/* ---- a JSON request line -------------------------------------------------------------- */
static int field_err(char *err, size_t errlen, const char *path, int line, const char *key,
                     const char *want)
{
    snprintf(err, errlen, "%s:%d: \"%s\" must be %s", path, line, key, want);
    return -1;
}

static int get_num(json_t *o, const char *key, double lo, double hi, double *v, const char *path,
                   int line, char *err, size_t errlen)
{
    json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_number(j) || json_number_value(j) < lo || json_number_value(j) > hi) {
        char want[96];
        snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
        return field_err(err, errlen, path, line, key, want);
    }
    *v = json_number_value(j);
    return 1;
}

static int32_t *int_list(json_t *arr, int *n)
{
    *n = (int)json_array_size(arr);
    int32_t *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (!v || !json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > INT32_MAX) {
            free(v);
            return NULL;
        }
        v[i] = (int32_t)json_integer_value(e);
    }
    return v;
}

static int parse_line(json_t *o, const char *path, int line, struct gen_request *r, char *err,
                      size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s:%d: each line must be a JSON object", path, line);
        return -1;
    }
    json_t *prompt = json_object_get(o, "prompt"), *ids = json_object_get(o, "prompt_ids");
    if (!!prompt == !!ids) {
        snprintf(err, errlen, "%s:%d: give exactly one of \"prompt\" (text) and \"prompt_ids\"",
                 path, line);
        return -1;
    }
    if (prompt) {
        if (!json_is_string(prompt))
            return field_err(err, errlen, path, line, "prompt", "a string");
        r->prompt = strdup(json_string_value(prompt));
    } else {
        if (!json_is_array(ids) || !(r->ids = int_list(ids, &r->n_ids)))
            return field_err(err, errlen, path, line, "prompt_ids", "a list of token ids");
    }
    struct pgd_sampling_params *s = &r->params.sampling;
    double v;
    int got;
#define NUM(key, lo, hi, dst)                                                              \
    if ((got = get_num(o, key, lo, hi, &v, path, line, err, errlen)) < 0)                 \
        return -1;                                                                         \
    if (got)                                                                               \
        dst = v;
    NUM("max_tokens", -1, 1 << 30, s->max_tokens)
    NUM("min_tokens", 0, 1 << 30, s->min_tokens)
    NUM("temperature", 0, 1e6, s->temperature)
    NUM("top_p", 0, 1, s->top_p)
    NUM("top_k", -1, 1 << 30, s->top_k)
    NUM("min_p", 0, 1, s->min_p)
    NUM("n", 1, 1 << 16, s->n)
    NUM("presence_penalty", -2, 2, s->presence_penalty)
    NUM("frequency_penalty", -2, 2, s->frequency_penalty)
    NUM("repetition_penalty", 1e-6, 1e6, s->repetition_penalty)
    NUM("logprobs", -1, 1 << 20, s->logprobs)
#undef NUM
    json_t *seed = json_object_get(o, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed))
            return field_err(err, errlen, path, line, "seed", "an integer");
        s->seed = (uint64_t)json_integer_value(seed);
        s->has_seed = true;
    }
    json_t *ign = json_object_get(o, "ignore_eos");
    if (ign && !json_is_null(ign)) {
        if (!json_is_boolean(ign))
            return field_err(err, errlen, path, line, "ignore_eos", "true or false");
        s->ignore_eos = json_is_true(ign);
    }
    json_t *stop = json_object_get(o, "stop");
    if (stop && !json_is_null(stop)) {
        json_t *one = json_is_string(stop) ? json_pack("[O]", stop) : json_incref(stop);
        if (!json_is_array(one)) {
            json_decref(one);
            return field_err(err, errlen, path, line, "stop", "a string or a list of strings");
        }
        r->stop = calloc(json_array_size(one) + 1, sizeof *r->stop);
        size_t i;
        json_t *e;
        json_array_foreach(one, i, e) {
            if (!json_is_string(e)) {
                json_decref(one);
                return field_err(err, errlen, path, line, "stop", "a string or a list of strings");
            }
            r->stop[i] = strdup(json_string_value(e));
        }
        s->stop = (const char *const *)r->stop;
        s->n_stop = (int)json_array_size(one);
        json_decref(one);
    }
    json_t *sti = json_object_get(o, "stop_token_ids");
    if (sti && !json_is_null(sti)) {
        if (!json_is_array(sti) || !(r->stop_ids = int_list(sti, &s->n_stop_token_ids)))
            return field_err(err, errlen, path, line, "stop_token_ids", "a list of token ids");
        s->stop_token_ids = r->stop_ids;
    }
    return 0;
}

int gen_requests_read_file(const char *path, const struct gen_request_defaults *d,
                           struct gen_request **out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct gen_request *reqs = NULL;
    int n = 0, lineno = 0;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, fp)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue;
        if (!pgd__array_reserve(reqs, cap, (size_t)n + 1)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        struct gen_request *r = &reqs[n++];
        memset(r, 0, sizeof *r);
        r->line = lineno;
        r->params = pgd_request_default_params();
        r->params.sampling = d->s;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o) {
            snprintf(err, errlen, "%s:%d: invalid JSON: %s", path, lineno, je.text);
            goto fail;
        }
        int bad = parse_line(o, path, lineno, r, err, errlen);
        json_decref(o);
        if (bad)
            goto fail;
        link_params(r);
    }
    free(line);
    fclose(fp);
    if (n == 0) {
        snprintf(err, errlen, "%s: no requests in the file", path);
        free(reqs);
        return -1;
    }
    *out = reqs;
    return n;
fail:
    free(line);
    fclose(fp);
    gen_requests_free(reqs, n);
    return -1;
}

void gen_requests_free(struct gen_request *reqs, int n)
{
    for (int i = 0; reqs && i < n; i++) {
        free(reqs[i].prompt);
        free(reqs[i].ids);
        for (int k = 0; reqs[i].stop && reqs[i].stop[k]; k++)
            free(reqs[i].stop[k]);
        free(reqs[i].stop);
        free(reqs[i].stop_ids);
    }
    free(reqs);
}

/* ---- results ---------------------------------------------------------------------------- */
static int sample_append(struct gen_sample *s, const struct pgd_output *o)
{
    if (!pgd__array_reserve(s->ids, s->cap, (size_t)s->n_ids + (size_t)o->n_token_ids) ||
        !pgd__buf_append(&s->text, o->text, o->text_len))
        return -1;
    memcpy(s->ids + s->n_ids, o->token_ids, (size_t)o->n_token_ids * sizeof *s->ids);
    s->n_ids += o->n_token_ids;
    return 0;
}

enum pgd_status gen_result_collect(struct pgd_stream *s, int n, struct gen_result *res,
                                   char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->samples = calloc((size_t)n, sizeof *res->samples);
    if (!res->samples)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    res->n = n;
    int *completion = calloc((size_t)n, sizeof *completion);
    struct pgd_output o;
    enum pgd_status st;
    while (completion && (st = pgd_stream_next(s, &o, -1)) == PGD_OK) {
        if (o.index < 0 || o.index >= n)
            continue;
        struct gen_sample *sm = &res->samples[o.index];
        if (sample_append(sm, &o)) {
            free(completion);
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        }
        if (o.finish_reason != PGD_FINISH_NONE)
            sm->finish = o.finish_reason;
        res->prompt_tokens = o.prompt_tokens;
        res->cached_tokens = o.cached_tokens > res->cached_tokens ? o.cached_tokens
                                                                  : res->cached_tokens;
        completion[o.index] = o.completion_tokens;
    }
    for (int i = 0; completion && i < n; i++)
        res->completion_tokens += completion[i];
    free(completion);
    return PGD_OK;
}

void gen_result_print_plain(FILE *out, const struct gen_result *res, bool text)
{
    for (int k = 0; k < res->n; k++) {
        const struct gen_sample *s = &res->samples[k];
        if (text) {
            fwrite(s->text.p ? s->text.p : "", 1, s->text.len, out);
            fputc('\n', out);
            continue;
        }
        fputc('[', out);
        for (int i = 0; i < s->n_ids; i++)
            fprintf(out, "%s%d", i ? ", " : "", s->ids[i]);
        fputs("]\n", out);
    }
}

void gen_result_print_json(FILE *out, int index, const struct gen_result *res)
{
    json_t *outputs = json_array();
    for (int k = 0; k < res->n; k++) {
        const struct gen_sample *s = &res->samples[k];
        json_t *ids = json_array();
        for (int i = 0; i < s->n_ids; i++)
            json_array_append_new(ids, json_integer(s->ids[i]));
        const char *reason = pgd_finish_reason_str(s->finish);
        json_array_append_new(outputs, json_pack("{s:i, s:o, s:s%, s:s?}", "index", k,
                                                 "token_ids", ids, "text",
                                                 s->text.p ? s->text.p : "", s->text.len,
                                                 "finish_reason", reason));
    }
    json_t *o = json_pack("{s:i, s:o, s:{s:i, s:i, s:i}}", "index", index, "outputs", outputs,
                          "usage", "prompt_tokens", res->prompt_tokens, "completion_tokens",
                          res->completion_tokens, "cached_tokens", res->cached_tokens);
    char *txt = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (txt)
        fprintf(out, "%s\n", txt);
    free(txt);
    json_decref(o);
}

void gen_result_fini(struct gen_result *res)
{
    for (int k = 0; res->samples && k < res->n; k++) {
        free(res->samples[k].ids);
        pgd__buf_fini(&res->samples[k].text);
    }
    free(res->samples);
    res->samples = NULL;
}
