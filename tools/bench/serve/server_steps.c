/* The "Server steps" section of `pagoda bench serve` (see server_steps.h): a parser for the
 * sample lines of the Prometheus text format (version 0.0.4), just enough to read pagoda's
 * step counters out of a /metrics body, and the section itself. The parser is our own
 * rather than a library's: these are four counters, and a scrape that does not parse must
 * only cost the section, never the benchmark. */
#include "config.h"
#include "tools/bench/serve/server_steps.h"
#include "tools/bench/serve/report.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Prometheus sample lines ----------------------------------------------------------- */

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && is_blank(*p))
        p++;
    return p;
}

/* A metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, colon true) or a label name (no colons) into
 * out[cap]; the end of it, or NULL when there is none or it does not fit. */
static const char *read_name(const char *p, const char *end, bool colon, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end && (is_alpha(*p) || (colon && *p == ':') || (n > 0 && is_digit(*p)))) {
        if (n + 1 >= cap)
            return NULL;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return n ? p : NULL;
}

/* A quoted label value after its '"', unescaped (\\, \", \n) into out[cap], cut to fit;
 * the end past the closing quote, or NULL when it never closes. */
static const char *read_value(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    for (; p < end && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            if (++p == end)
                return NULL;
            c = *p == 'n' ? '\n' : *p;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    out[n] = '\0';
    return p < end ? p + 1 : NULL;
}

/* The labels after '{' up to and past '}' into s (a trailing comma allowed); NULL when
 * malformed. */
static const char *read_labels(const char *p, const char *end, struct bs_prom_sample *s)
{
    for (;;) {
        p = skip_blanks(p, end);
        if (p < end && *p == '}')
            return p + 1;
        char key[64], val[128];
        if (!(p = read_name(p, end, false, key, sizeof key)))
            return NULL;
        p = skip_blanks(p, end);
        if (p == end || *p++ != '=')
            return NULL;
        p = skip_blanks(p, end);
        if (p == end || *p++ != '"' || !(p = read_value(p, end, val, sizeof val)))
            return NULL;
        if (s->n_labels < BS_PROM_MAX_LABELS) {
            memcpy(s->key[s->n_labels], key, sizeof key);
            memcpy(s->val[s->n_labels], val, sizeof val);
            s->n_labels++;
        }
        p = skip_blanks(p, end);
        if (p < end && *p == ',')
            p++;
        else if (p == end || *p != '}')
            return NULL;
    }
}

/* A sample's value: a float as Go writes it, NaN, +Inf or -Inf. The token is p[0, n). */
static bool read_number(const char *p, size_t n, double *v)
{
    char tok[64];
    if (n == 0 || n >= sizeof tok)
        return false;
    memcpy(tok, p, n);
    tok[n] = '\0';
    if (!strcmp(tok, "NaN") || !strcmp(tok, "Nan")) {
        *v = NAN;
        return true;
    }
    if (!strcmp(tok, "+Inf") || !strcmp(tok, "-Inf")) {
        *v = tok[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    /* strtod would also take "inf", "nan(...)" and hex floats: the text format has none. */
    for (size_t i = 0; i < n; i++)
        if (!is_digit(tok[i]) && !strchr("+-.eE", tok[i]))
            return false;
    char *e;
    *v = strtod(tok, &e);
    return e == tok + n;
}

int bs_prom_parse_line(const char *line, size_t len, struct bs_prom_sample *s)
{
    const char *end = line + len, *p = skip_blanks(line, end);
    s->n_labels = 0;
    if (p == end || *p == '#')
        return 0;
    if (!(p = read_name(p, end, true, s->name, sizeof s->name)))
        return -1;
    if (p < end && *p == '{' && !(p = read_labels(p + 1, end, s)))
        return -1;
    if (p == end || !is_blank(*p))
        return -1;
    p = skip_blanks(p, end);
    const char *v = p;
    while (p < end && !is_blank(*p))
        p++;
    if (!read_number(v, (size_t)(p - v), &s->value))
        return -1;
    /* An optional timestamp (milliseconds, an integer), then nothing. */
    p = skip_blanks(p, end);
    if (p < end) {
        const char *ts = p + (*p == '-');
        for (p = ts; p < end && is_digit(*p); p++)
            ;
        if (p == ts)
            return -1;
    }
    return skip_blanks(p, end) == end ? 1 : -1;
}

const char *bs_prom_label(const struct bs_prom_sample *s, const char *key)
{
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->key[i], key))
            return s->val[i];
    return NULL;
}

/* ---- the step counters ----------------------------------------------------------------- */

static const char *const KINDS[BS_STEP_KINDS] = { "decode_only", "mixed" };
static const char *const PHASES[BS_PHASES] = { "schedule", "prepare", "model", "output" };

/* The index of v in names[n], or -1. */
static int index_of(const char *const *names, int n, const char *v)
{
    for (int i = 0; v && i < n; i++)
        if (!strcmp(names[i], v))
            return i;
    return -1;
}

/* Where sample s goes in out (and its bit among the 10 series), or NULL when it is not one
 * of the step counters. */
static double *slot(struct bs_steps *out, const struct bs_prom_sample *s, unsigned *bit)
{
    static const char *const by_kind[3] = { "pagoda:engine_steps_total",
                                            "pagoda:engine_step_seconds_total",
                                            "pagoda:engine_step_device_seconds_total" };
    int m = index_of(by_kind, 3, s->name);
    if (m >= 0) {
        int k = index_of(KINDS, BS_STEP_KINDS, bs_prom_label(s, "kind"));
        if (k < 0)
            return NULL;
        *bit = 1u << (m * BS_STEP_KINDS + k);
        double *arr[3] = { out->steps, out->wall_s, out->device_s };
        return &arr[m][k];
    }
    if (strcmp(s->name, "pagoda:engine_step_phase_seconds_total"))
        return NULL;
    int ph = index_of(PHASES, BS_PHASES, bs_prom_label(s, "phase"));
    if (ph < 0)
        return NULL;
    *bit = 1u << (3 * BS_STEP_KINDS + ph);
    return &out->phase_s[ph];
}

bool bs_steps_parse(const char *text, size_t len, struct bs_steps *out)
{
    *out = (struct bs_steps){ 0 };
    unsigned found = 0, all = (1u << (3 * BS_STEP_KINDS + BS_PHASES)) - 1;
    struct bs_prom_sample s;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        unsigned bit;
        double *dst;
        if (bs_prom_parse_line(p, (size_t)(eol - p), &s) == 1 && isfinite(s.value) &&
            s.value >= 0) {
            if ((dst = slot(out, &s, &bit))) {
                *dst += s.value;
                found |= bit;
            } else if (!strcmp(s.name, "pagoda:engine_step_output_push_seconds_total")) {
                out->push_s += s.value;
                out->has_push = true;
            } else if (!strcmp(s.name, "pagoda:engine_steps_overlapped_total")) {
                out->overlapped += s.value;
                out->has_overlapped = true;
            }
        }
        p = eol + 1;
    }
    return found == all;
}

/* d[i] = a[i] - b[i] over n counters; false when one went down. */
static bool sub(const double *b, const double *a, double *d, int n)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        d[i] = a[i] - b[i];
        ok &= d[i] >= 0;
    }
    return ok;
}

bool bs_steps_diff(const struct bs_steps *before, const struct bs_steps *after,
                   struct bs_steps *d)
{
    bool ok = sub(before->steps, after->steps, d->steps, BS_STEP_KINDS);
    ok &= sub(before->wall_s, after->wall_s, d->wall_s, BS_STEP_KINDS);
    ok &= sub(before->device_s, after->device_s, d->device_s, BS_STEP_KINDS);
    ok &= sub(before->phase_s, after->phase_s, d->phase_s, BS_PHASES);
    d->has_push = before->has_push && after->has_push;
    d->push_s = 0;
    if (d->has_push)
        ok &= sub(&before->push_s, &after->push_s, &d->push_s, 1);
    d->has_overlapped = before->has_overlapped && after->has_overlapped;
    d->overlapped = 0;
    if (d->has_overlapped)
        ok &= sub(&before->overlapped, &after->overlapped, &d->overlapped, 1);
    return ok;
}

/* x / n in milliseconds; 0 when n is 0. */
static double ms_per(double x, double n) { return n > 0 ? 1e3 * x / n : 0.0; }

json_t *bs_steps_report(const struct bs_steps *d, double duration_s, FILE *out)
{
    const int D = BS_STEP_DECODE_ONLY, M = BS_STEP_MIXED;
    double steps = d->steps[D] + d->steps[M], busy = d->wall_s[D] + d->wall_s[M];
    double phase_ms[BS_PHASES];
    for (int i = 0; i < BS_PHASES; i++)
        phase_ms[i] = ms_per(d->phase_s[i], steps);
    double frac = duration_s > 0 ? busy / duration_s : 0.0;

    bs_report_header(out, "Server Steps (pagoda /metrics)", '-');
    fprintf(out, "%-40s %.0f / %.0f\n", "Steps (decode-only / mixed):", d->steps[D],
            d->steps[M]);
    fprintf(out, "%-40s %.3f / %.3f\n", "Decode-only step (ms, wall / device):",
            ms_per(d->wall_s[D], d->steps[D]), ms_per(d->device_s[D], d->steps[D]));
    fprintf(out, "%-40s %.3f / %.3f\n", "Mixed step (ms, wall / device):",
            ms_per(d->wall_s[M], d->steps[M]), ms_per(d->device_s[M], d->steps[M]));
    fprintf(out, "%-40s %.3f / %.3f / %.3f / %.3f\n",
            "Phase ms a step (sched/prep/model/out):", phase_ms[0], phase_ms[1],
            phase_ms[2], phase_ms[3]);
    if (d->has_push)
        fprintf(out, "%-40s %.3f\n", "Of the output, stream pushes (ms a step):",
                ms_per(d->push_s, steps));
    if (d->has_overlapped)
        fprintf(out, "%-40s %.0f\n", "Steps overlapped (async scheduling):", d->overlapped);
    /* The engine thread's share of the run spent in steps: at a light load the rest is
     * idle time between requests, under load it nears 100. */
    fprintf(out, "%-40s %.1f\n", "Engine busy in steps (% of the run):", 100 * frac);

    json_t *r = json_object();
    if (!r)
        return NULL;
    struct { const char *key; json_t *v; } kv[] = {
        { "steps", json_integer((json_int_t)steps) },
        { "decode_only_steps", json_integer((json_int_t)d->steps[D]) },
        { "mixed_steps", json_integer((json_int_t)d->steps[M]) },
        { "decode_only_step_ms", json_real(ms_per(d->wall_s[D], d->steps[D])) },
        { "decode_only_step_device_ms", json_real(ms_per(d->device_s[D], d->steps[D])) },
        { "mixed_step_ms", json_real(ms_per(d->wall_s[M], d->steps[M])) },
        { "mixed_step_device_ms", json_real(ms_per(d->device_s[M], d->steps[M])) },
        { "schedule_ms", json_real(phase_ms[BS_PHASE_SCHEDULE]) },
        { "prepare_ms", json_real(phase_ms[BS_PHASE_PREPARE]) },
        { "model_ms", json_real(phase_ms[BS_PHASE_MODEL]) },
        { "output_ms", json_real(phase_ms[BS_PHASE_OUTPUT]) },
        { "decode_only_seconds", json_real(d->wall_s[D]) },
        { "decode_only_device_seconds", json_real(d->device_s[D]) },
        { "mixed_seconds", json_real(d->wall_s[M]) },
        { "mixed_device_seconds", json_real(d->device_s[M]) },
        { "engine_busy_fraction", json_real(frac) },
        { "output_push_ms", d->has_push ? json_real(ms_per(d->push_s, steps)) : json_null() },
        { "overlapped_steps",
          d->has_overlapped ? json_integer((json_int_t)d->overlapped) : json_null() },
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        ok &= json_object_set_new(r, kv[i].key, kv[i].v) == 0;   /* takes v, NULL fails */
    if (!ok) {
        json_decref(r);
        return NULL;
    }
    return r;
}
