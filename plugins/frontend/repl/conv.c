/* The REPL's conversation (a jansson array of OpenAI messages, saved and loaded as such),
 * the /set values of its sampling, and the <think> splitter of streamed answers. */
#include "plugins/frontend/repl/repl.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *repl_conv_new(const char *system)
{
    json_t *conv = json_array();
    if (conv && system && repl_conv_set_system(conv, system) != PGD_OK) {
        json_decref(conv);
        return NULL;
    }
    return conv;
}

enum pgd_status repl_conv_add(json_t *conv, const char *role, const char *content, size_t len)
{
    json_t *m = json_pack("{s:s, s:s%}", "role", role, "content", content, len);
    if (!m || json_array_append_new(conv, m))
        return PGD_ERR_NOMEM;
    return PGD_OK;
}

enum pgd_status repl_conv_set_system(json_t *conv, const char *system)
{
    const char *role = json_string_value(json_object_get(json_array_get(conv, 0), "role"));
    bool has = role && !strcmp(role, "system");
    if (!system)
        return has && json_array_remove(conv, 0) ? PGD_ERR_NOMEM : PGD_OK;
    json_t *m = json_pack("{s:s, s:s}", "role", "system", "content", system);
    if (!m)
        return PGD_ERR_NOMEM;
    if (has)
        return json_array_set_new(conv, 0, m) ? PGD_ERR_NOMEM : PGD_OK;
    return json_array_insert_new(conv, 0, m) ? PGD_ERR_NOMEM : PGD_OK;
}

enum pgd_status repl_conv_save(json_t *conv, const char *path, char *err, size_t errlen)
{
    if (json_dump_file(conv, path, JSON_INDENT(2)) != 0)
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot write: %s", path,
                        strerror(errno));
    return PGD_OK;
}

/* A file holds either a messages array or an object with "messages" (a request body). */
enum pgd_status repl_conv_load(const char *path, json_t **out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
    json_t *msgs = json_is_object(root) ? json_object_get(root, "messages") : root;
    if (!json_is_array(msgs)) {
        json_decref(root);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: not an array of messages (nor an object with \"messages\")", path);
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role || !json_is_string(json_object_get(m, "content"))) {
            json_decref(root);
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: message %zu needs a string \"role\" and a string \"content\"",
                            path, i);
        }
    }
    *out = json_incref(msgs);
    json_decref(root);
    return PGD_OK;
}

enum pgd_status repl_sampling_set(struct repl_sampling *s, const char *key, const char *value,
                                  char *err, size_t errlen)
{
    char *end;
    errno = 0;
    if (!strcmp(key, "temperature") || !strcmp(key, "top_p")) {
        double v = strtod(value, &end);
        bool temp = key[0] == 't' && key[1] == 'e';
        if (!*value || *end || errno || !isfinite(v) || v < 0 || (temp ? v > 2 : v > 1 || v == 0))
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s = '%s' is not a number in %s",
                            key, value, temp ? "[0, 2]" : "(0, 1]");
        *(temp ? &s->temperature : &s->top_p) = v;
        s->has |= temp ? REPL_HAS_TEMPERATURE : REPL_HAS_TOP_P;
        return PGD_OK;
    }
    if (!strcmp(key, "top_k") || !strcmp(key, "max_tokens")) {
        long v = strtol(value, &end, 10);
        bool k = key[0] == 't';
        long lo = k ? -1 : 1;
        if (!*value || *end || errno || v < lo || v > 1 << 24)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "%s = '%s' is not an integer in [%ld, %d]", key, value, lo, 1 << 24);
        *(k ? &s->top_k : &s->max_tokens) = (int)v;
        s->has |= k ? REPL_HAS_TOP_K : REPL_HAS_MAX_TOKENS;
        return PGD_OK;
    }
    if (!strcmp(key, "seed")) {
        unsigned long long v = strtoull(value, &end, 10);
        if (!*value || *end || errno || value[0] == '-')
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "seed = '%s' is not a non-negative integer", value);
        s->seed = v;
        s->has |= REPL_HAS_SEED;
        return PGD_OK;
    }
    return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                    "unknown setting '%s' (temperature, top_p, top_k, max_tokens, seed)", key);
}

/* ---- <think> sections ------------------------------------------------------------------- */

static const char THINK_OPEN[] = "<think>", THINK_CLOSE[] = "</think>";

/* Feeds text through the splitter: the tag being looked for (open outside, close inside)
 * switches the state; a tag's prefix at the end of a piece waits in pending. */
void repl_think_feed(struct repl_think *t, const char *text, size_t len, repl_part_fn out,
                     void *ctx)
{
    char buf[4096];
    size_t nb = 0;
    /* Process pending bytes first, as if they came before text. */
    size_t total = t->npending + len;
    size_t i = 0;
    char held[sizeof t->pending];
    size_t nheld = t->npending;
    memcpy(held, t->pending, nheld);
    t->npending = 0;
#define AT(k) ((k) < nheld ? held[k] : text[(k) - nheld])
    while (i < total) {
        const char *tag = t->inside ? THINK_CLOSE : THINK_OPEN;
        size_t tl = strlen(tag), m = 0;
        while (m < tl && i + m < total && AT(i + m) == tag[m])
            m++;
        if (m == tl) {                        /* a whole tag: switch */
            if (nb)
                out(ctx, t->inside, buf, nb);
            nb = 0;
            t->inside = !t->inside;
            i += tl;
            continue;
        }
        if (m > 0 && i + m == total) {        /* a tag's prefix at the end: hold it */
            for (size_t k = 0; k < m; k++)
                t->pending[k] = AT(i + k);
            t->npending = m;
            break;
        }
        buf[nb++] = AT(i);
        i++;
        if (nb == sizeof buf) {
            out(ctx, t->inside, buf, nb);
            nb = 0;
        }
    }
#undef AT
    if (nb)
        out(ctx, t->inside, buf, nb);
}

void repl_think_flush(struct repl_think *t, repl_part_fn out, void *ctx)
{
    if (t->npending)
        out(ctx, t->inside, t->pending, t->npending);
    t->npending = 0;
    t->inside = false;
}
