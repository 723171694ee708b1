/* generation_config.json -> request sampling defaults (see generation_config.h). vLLM reads
 * the same fields (ModelConfig.get_diff_sampling_param) and, like it, a field the file does
 * not set keeps the API's default. */
#include "runtime/config/generation_config.h"
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct field {
    const char *name;
    double lo, hi;
    bool integer;
};

/* The fields, with the ranges the API takes for them. */
static const struct field FIELDS[] = {
    { "temperature", 0.0, 100.0, false }, { "top_p", 1e-9, 1.0, false },
    { "top_k", -1.0, 1e9, true }, { "min_p", 0.0, 1.0, false },
    { "repetition_penalty", 1e-9, 100.0, false }, { "presence_penalty", -2.0, 2.0, false },
    { "frequency_penalty", -2.0, 2.0, false }, { "max_new_tokens", 1.0, 1e9, true },
    { "max_tokens", 1.0, 1e9, true },
};

static void apply(struct pgd_sampling_params *sp, const char *name, double v)
{
    if (!strcmp(name, "temperature"))
        sp->temperature = (float)v;
    else if (!strcmp(name, "top_p"))
        sp->top_p = (float)v;
    else if (!strcmp(name, "top_k"))
        sp->top_k = (int)v;
    else if (!strcmp(name, "min_p"))
        sp->min_p = (float)v;
    else if (!strcmp(name, "repetition_penalty"))
        sp->repetition_penalty = (float)v;
    else if (!strcmp(name, "presence_penalty"))
        sp->presence_penalty = (float)v;
    else if (!strcmp(name, "frequency_penalty"))
        sp->frequency_penalty = (float)v;
    else
        sp->max_tokens = (int)v;
}

/* Takes the known fields of obj (from `what`, a path or "--override-generation-config") into
 * d->sp and the JSON `used` (under vLLM's names; max_new_tokens as max_tokens). */
static enum pgd_status take(struct pgd__gen_defaults *d, json_t *obj, const char *what,
                            json_t *used, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
        const struct field *f = &FIELDS[i];
        json_t *v = json_object_get(obj, f->name);
        if (!v || json_is_null(v))
            continue;
        double x = json_number_value(v);
        if (!json_is_number(v) || (f->integer && !json_is_integer(v)) || !isfinite(x) ||
            x < f->lo || x > f->hi)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"%s\" must be %s in [%g, %g]",
                            what, f->name, f->integer ? "an integer" : "a number", f->lo, f->hi);
        apply(&d->sp, f->name, x);
        const char *key = f->integer && strstr(f->name, "max_") ? "max_tokens" : f->name;
        json_object_set_new(used, key, f->integer ? json_integer((json_int_t)x) : json_real(x));
    }
    return PGD_OK;
}

static enum pgd_status read_file(struct pgd__gen_defaults *d, const char *mode,
                                 const char *model_dir, json_t *used, char *err, size_t errlen)
{
    bool is_auto = !strcmp(mode, "auto");
    const char *dir = is_auto ? model_dir : mode;
    char path[4200];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    struct stat st;
    if (!is_auto && stat(dir, &st) != 0)
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "--generation-config %s: no such "
                        "directory (expected auto, vllm or a directory)", mode);
    if (stat(path, &st) != 0) {
        if (!is_auto)
            return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "--generation-config: %s does not "
                            "exist", path);
        snprintf(d->source, sizeof d->source, "no generation_config.json in %s", dir);
        return PGD_OK;
    }
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: %s", path,
                        j ? "not a JSON object" : je.text);
    }
    enum pgd_status s = take(d, j, path, used, err, errlen);
    json_decref(j);
    snprintf(d->source, sizeof d->source, "%s", path);
    return s;
}

enum pgd_status pgd__gen_defaults_load(const char *mode, const char *model_dir,
                                       const char *override_json, struct pgd__gen_defaults *out,
                                       char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->sp = pgd_sampling_default_params();
    out->sp.max_tokens = 0;
    json_t *used = json_object();
    if (!used)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "generation config: out of memory");
    enum pgd_status st = PGD_OK;
    if (!mode || !strcmp(mode, "vllm"))
        snprintf(out->source, sizeof out->source, "none (--generation-config vllm)");
    else
        st = read_file(out, mode, model_dir, used, err, errlen);
    if (!st && override_json) {
        json_error_t je;
        json_t *o = json_loads(override_json, 0, &je);
        if (!json_is_object(o))
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "--override-generation-config: %s",
                          o ? "not a JSON object" : je.text);
        else
            st = take(out, o, "--override-generation-config", used, err, errlen);
        json_decref(o);
        if (!st) {
            size_t n = strlen(out->source);
            snprintf(out->source + n, sizeof out->source - n, " + --override-generation-config");
        }
    }
    if (!st) {
        out->json = json_dumps(used, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
        if (!out->json)
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "generation config: out of memory");
    }
    json_decref(used);
    return st;
}

void pgd__gen_defaults_fini(struct pgd__gen_defaults *d)
{
    free(d->json);
    d->json = NULL;
}
