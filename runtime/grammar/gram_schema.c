/* JSON Schema -> grammar text: the draft 2020-12 subset OpenAI's strict mode and vLLM's
 * backends accept. Each schema node becomes one rule (`sN ::= ...`) after a fixed prelude
 * of JSON building blocks; $ref targets get one rule each, named before their body is made,
 * so recursive schemas work. The text is then parsed like any grammar (with /regex/
 * terminals in JSON mode, for `pattern` and `format`).
 *
 * Choices (as xgrammar's strict mode, vLLM's default backend, makes them):
 *   - properties come in the schema's order; the required ones always, the others may be
 *     left out; an object takes other keys only when additionalProperties is true or a
 *     schema (absent counts as false when there are properties, as in strict mode);
 *   - whitespace is nothing or one space between tokens (xgrammar's compact JSON, vLLM's
 *     disable_any_whitespace): a model can neither loop on spaces nor spend its token
 *     budget on indentation, and numbers have at most 16 digits in their integer part (15
 *     in fractions), so output stays bounded;
 *   - minimum/maximum (and the exclusive forms) are exact for integers and numbers: a
 *     bounded number is written without exponent (gram_numrange.c says how a double bound
 *     is read); multipleOf takes a whole number and bounds leaving at most 256 multiples
 *     (each an alternative), and is refused otherwise; string minLength/maxLength count
 *     characters;
 *   - metadata (title, description, default, examples, $schema, $id, $comment,
 *     deprecated, readOnly, writeOnly) and uniqueItems are ignored; keywords that change
 *     what is valid and cannot be expressed (not, if/then/else, patternProperties, ...)
 *     are refused with their path. */
#include "runtime/grammar/grammar.h"
#include "runtime/grammar/numrange.h"
#include "runtime/base/buf.h"
#include "runtime/base/mem.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The JSON building blocks every schema's grammar ends with. */
#define PRELUDE_TEXT \
    "ws ::= | \" \"\n" \
    "jchar ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n" \
    "jstring ::= \"\\\"\" jchar* \"\\\"\"\n" \
    "jint ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n" \
    "jnumber ::= jint (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?\n" \
    "jbool ::= \"true\" | \"false\"\n" \
    "jnull ::= \"null\"\n" \
    "jvalue ::= jobject | jarray | jstring | jnumber | jbool | jnull\n" \
    "jmember ::= jstring ws \":\" ws jvalue ws\n" \
    "jobject ::= \"{\" ws (jmember (\",\" ws jmember)*)? \"}\"\n" \
    "jarray ::= \"[\" ws (jvalue ws (\",\" ws jvalue ws)*)? \"]\"\n"
static const char PRELUDE[] = PRELUDE_TEXT;

const char *pgd__json_object_gbnf(void)
{
    return "root ::= jobject\n" PRELUDE_TEXT;
}

struct sc {
    const json_t *root;
    struct pgd__buf out;            /* the rules made so far */
    struct ref { const json_t *node; int id; } *refs;
    size_t n_refs, cap_refs;
    int next_id;
    int depth;
    char *err;
    size_t errlen;
    enum pgd_status st;
};

static int bad(struct sc *c, const char *path, const char *fmt, const char *arg)
{
    if (c->st == PGD_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, fmt, arg ? arg : "");
        c->st = pgd_errf(c->err, c->errlen, PGD_ERR_INVALID_ARG, "json_schema: %s: %s",
                         *path ? path : "/", msg);
    }
    return -1;
}

/* path + "/" + key (JSON pointer escaping) into out. */
static void path_join(char *out, size_t n, const char *path, const char *key)
{
    size_t at = (size_t)snprintf(out, n, "%s/", path);
    for (; *key && at + 3 < n; key++) {
        if (*key == '~' || *key == '/') {
            out[at++] = '~';
            out[at++] = *key == '~' ? '0' : '1';
        } else {
            out[at++] = *key;
        }
    }
    out[at < n ? at : n - 1] = '\0';
}

/* A GBNF string literal for bytes s[0, n). */
static void put_literal(struct pgd__buf *b, const char *s, size_t n)
{
    pgd__buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            pgd__buf_appendf(b, "\\%c", ch);
        else if (ch < 0x20)
            pgd__buf_appendf(b, "\\x%02x", ch);
        else
            pgd__buf_append(b, &ch, 1);
    }
    pgd__buf_puts(b, "\"");
}

/* The literal of a JSON value's compact serialization. */
static bool put_json_literal(struct sc *c, struct pgd__buf *b, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        c->st = pgd_errf(c->err, c->errlen, PGD_ERR_NOMEM, "json_schema: out of memory");
        return false;
    }
    put_literal(b, s, strlen(s));
    free(s);
    return true;
}

/* Appends "sN ::= body\n" to the output. */
static void put_rule(struct sc *c, int id, const struct pgd__buf *body)
{
    pgd__buf_appendf(&c->out, "s%d ::= %s\n", id, body->p ? body->p : "");
}

static int gen(struct sc *c, const json_t *s, const char *path);

/* ---- keywords ---------------------------------------------------------------------------- */

static const char *const IGNORED[] = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "uniqueItems", "$defs", "definitions", "$anchor", "strict",
    "discriminator", "contentMediaType", "contentEncoding", "name",
};
static const char *const KNOWN[] = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems",
    "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "pattern",
    "format", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "nullable",
};

static bool in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0)
            return true;
    return false;
}

static bool check_keywords(struct sc *c, const json_t *s, const char *path)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (in_list(k, IGNORED, sizeof IGNORED / sizeof *IGNORED) ||
            in_list(k, KNOWN, sizeof KNOWN / sizeof *KNOWN))
            continue;
        char p[512];
        path_join(p, sizeof p, path, k);
        bad(c, p, "the keyword \"%s\" is not supported", k);
        return false;
    }
    return true;
}

/* ---- numbers ------------------------------------------------------------------------------ */

/* The bound of s[key] (a number), or none. */
static bool num_bound(const json_t *s, const char *key, double *out)
{
    json_t *v = json_object_get(s, key);
    if (!v || !json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

/* multipleOf k (a positive whole number) within [lo, hi]: the multiples, each a literal
 * alternative (at most MAX_MULTIPLES of them). */
#define MAX_MULTIPLES 256

static void gen_multiples(struct sc *c, const json_t *s, const char *path, long long lo,
                          long long hi, struct pgd__buf *body)
{
    char p[512];
    path_join(p, sizeof p, path, "multipleOf");
    double k = json_number_value(json_object_get(s, "multipleOf"));
    if (!(k >= 1 && k <= (double)PGD__NUM_INT_LIMIT && k == floor(k))) {
        bad(c, p, "only a whole number >= 1 is supported%s", NULL);
        return;
    }
    long long kk = (long long)k, first = lo >= 0 ? (lo + kk - 1) / kk : -(-lo / kk),
              last = hi >= 0 ? hi / kk : -((-hi + kk - 1) / kk);
    if (first > last) {
        bad(c, p, "no number within minimum/maximum is a multiple%s", NULL);
        return;
    }
    if (lo == -PGD__NUM_INT_LIMIT || hi == PGD__NUM_INT_LIMIT || last - first >= MAX_MULTIPLES) {
        char msg[160];
        snprintf(msg, sizeof msg, "supported with minimum and maximum that leave at most %d "
                 "multiples (here: %s)", MAX_MULTIPLES,
                 lo == -PGD__NUM_INT_LIMIT || hi == PGD__NUM_INT_LIMIT ? "unbounded" : "more");
        bad(c, p, "%s", msg);
        return;
    }
    for (long long m = first; m <= last; m++)
        pgd__buf_appendf(body, "%s\"%lld\"", m == first ? "" : " | ", m * kk);
}

/* A bound keyword present but not a number is refused with its path. */
static bool bounds_are_numbers(struct sc *c, const json_t *s, const char *path)
{
    static const char *const keys[] = { "minimum", "maximum", "exclusiveMinimum",
                                        "exclusiveMaximum", "multipleOf" };
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(s, keys[i]);
        if (v && !json_is_number(v)) {
            char p[512];
            path_join(p, sizeof p, path, keys[i]);
            bad(c, p, "must be a number%s", NULL);
            return false;
        }
    }
    return true;
}

static void gen_integer(struct sc *c, const json_t *s, const char *path, struct pgd__buf *body)
{
    double x;
    long long lo = -PGD__NUM_INT_LIMIT, hi = PGD__NUM_INT_LIMIT;
    if (!bounds_are_numbers(c, s, path))
        return;
    if (num_bound(s, "minimum", &x))
        lo = x > (double)lo ? (long long)ceil(x) : lo;
    if (num_bound(s, "exclusiveMinimum", &x))
        lo = x >= (double)lo ? (long long)floor(x) + 1 : lo;
    if (num_bound(s, "maximum", &x))
        hi = x < (double)hi ? (long long)floor(x) : hi;
    if (num_bound(s, "exclusiveMaximum", &x))
        hi = x <= (double)hi ? (long long)ceil(x) - 1 : hi;
    if (lo > hi) {
        bad(c, path, "no integer satisfies minimum/maximum%s", NULL);
        return;
    }
    if (json_object_get(s, "multipleOf")) {
        gen_multiples(c, s, path, lo, hi, body);
        return;
    }
    struct pgd__buf re = { 0 };
    pgd__int_range(&re, lo, hi);
    pgd__buf_appendf(body, "/%s/", re.p ? re.p : "");
    pgd__buf_fini(&re);
}

/* Numbers: any JSON number without bounds; with bounds, exactly the decimals (no exponent)
 * of the range (gram_numrange.c); with a whole multipleOf, its multiples as integers. */
static void gen_number(struct sc *c, const json_t *s, const char *path, struct pgd__buf *body)
{
    if (!bounds_are_numbers(c, s, path))
        return;
    if (json_object_get(s, "multipleOf")) {
        gen_integer(c, s, path, body);
        return;
    }
    double lo = -INFINITY, hi = INFINITY, x;
    bool lo_x = false, hi_x = false, any = false;
    /* Of an inclusive and an exclusive bound on one side, the tighter wins. */
    if (num_bound(s, "minimum", &x))
        lo = x, any = true;
    if (num_bound(s, "exclusiveMinimum", &x) && x >= lo)
        lo = x, lo_x = true, any = true;
    if (num_bound(s, "maximum", &x))
        hi = x, any = true;
    if (num_bound(s, "exclusiveMaximum", &x) && x <= hi)
        hi = x, hi_x = true, any = true;
    if (!any) {
        pgd__buf_puts(body, "jnumber");
        return;
    }
    struct pgd__buf re = { 0 };
    if (!pgd__num_range(&re, lo, lo_x, hi, hi_x))
        bad(c, path, "no number satisfies minimum/maximum (with at most 16 integer and 15 "
            "fraction digits)%s", NULL);
    else
        pgd__buf_appendf(body, "/%s/", re.p ? re.p : "");
    pgd__buf_fini(&re);
}

/* ---- strings ----------------------------------------------------------------------------- */

static const struct { const char *name, *re; } FORMATS[] = {
    { "date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" },
    { "time", "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?"
              "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])" },
    { "date-time", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):"
                   "[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):"
                   "[0-5][0-9])" },
    { "uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" },
    { "email", "[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+)*@"
               "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]"
               "([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+" },
    { "ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}"
              "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])" },
    { "hostname", "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]"
                  "([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*" },
    { "uri", "[a-zA-Z][a-zA-Z0-9+.-]*:[^\\s]+" },
};

/* The pattern inside /.../ of grammar text: '/' escaped. */
static void put_regex(struct pgd__buf *b, const char *re)
{
    pgd__buf_puts(b, "/");
    for (const char *p = re; *p; p++) {
        if (*p == '\\' && p[1]) {
            pgd__buf_append(b, p, 2);
            p++;
        } else if (*p == '/') {
            pgd__buf_puts(b, "\\/");
        } else if (*p == '\n') {
            pgd__buf_puts(b, "\\n");
        } else {
            pgd__buf_append(b, p, 1);
        }
    }
    pgd__buf_puts(b, "/");
}

static void gen_string(struct sc *c, const json_t *s, const char *path, struct pgd__buf *body)
{
    json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    if (pat) {
        char p[512];
        path_join(p, sizeof p, path, "pattern");
        if (!json_is_string(pat)) {
            bad(c, p, "must be a string%s", NULL);
            return;
        }
        /* Check it alone first, for a message that names the keyword. */
        struct pgd__gbuilder b;
        struct pgd__gvec v = { 0 };
        char what[600];
        snprintf(what, sizeof what, "json_schema: %s: regex", p);
        pgd__gb_init(&b);
        enum pgd_status st = pgd__regex_emit(&b, &v, json_string_value(pat),
                                             json_string_length(pat), true, what, c->err,
                                             c->errlen);
        pgd__gvec_free(&v);
        pgd__gb_fini(&b);
        if (st) {
            c->st = st;
            return;
        }
        pgd__buf_puts(body, "\"\\\"\" ");
        put_regex(body, json_string_value(pat));
        pgd__buf_puts(body, " \"\\\"\"");
        return;
    }
    if (fmt && json_is_string(fmt)) {
        for (size_t i = 0; i < sizeof FORMATS / sizeof *FORMATS; i++)
            if (strcmp(json_string_value(fmt), FORMATS[i].name) == 0) {
                pgd__buf_puts(body, "\"\\\"\" ");
                put_regex(body, FORMATS[i].re);
                pgd__buf_puts(body, " \"\\\"\"");
                return;
            }
    }
    json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
    long long lo = json_is_integer(mn) ? json_integer_value(mn) : 0;
    long long hi = json_is_integer(mx) ? json_integer_value(mx) : -1;
    if (lo < 0 || lo > PGD__GRAMMAR_MAX_REPEAT || hi > PGD__GRAMMAR_MAX_REPEAT ||
        (hi >= 0 && hi < lo)) {
        bad(c, path, "minLength/maxLength must satisfy 0 <= minLength <= maxLength <= 10000%s",
            NULL);
        return;
    }
    if (lo == 0 && hi < 0)
        pgd__buf_puts(body, "jstring");
    else if (hi < 0)
        pgd__buf_appendf(body, "\"\\\"\" jchar{%lld,} \"\\\"\"", lo);
    else
        pgd__buf_appendf(body, "\"\\\"\" jchar{%lld,%lld} \"\\\"\"", lo, hi);
}

/* ---- arrays ------------------------------------------------------------------------------- */

static void gen_array(struct sc *c, const json_t *s, const char *path, struct pgd__buf *body)
{
    char p[512];
    json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
    long long lo = json_is_integer(mn) ? json_integer_value(mn) : 0;
    long long hi = json_is_integer(mx) ? json_integer_value(mx) : -1;
    if (lo < 0 || lo > PGD__GRAMMAR_MAX_REPEAT || hi > PGD__GRAMMAR_MAX_REPEAT ||
        (hi >= 0 && hi < lo)) {
        bad(c, path, "minItems/maxItems must satisfy 0 <= minItems <= maxItems <= 10000%s",
            NULL);
        return;
    }
    if (prefix) {
        path_join(p, sizeof p, path, "prefixItems");
        if (!json_is_array(prefix) || json_array_size(prefix) == 0) {
            bad(c, p, "must be a non-empty array of schemas%s", NULL);
            return;
        }
        pgd__buf_puts(body, "\"[\" ws");
        for (size_t i = 0; i < json_array_size(prefix); i++) {
            char q[560];
            snprintf(q, sizeof q, "%s/%zu", p, i);
            int id = gen(c, json_array_get(prefix, i), q);
            if (id < 0)
                return;
            pgd__buf_appendf(body, "%s s%d ws", i ? " \",\" ws" : "", id);
        }
        if (items && !json_is_false(items)) {
            path_join(p, sizeof p, path, "items");
            int id = gen(c, items, p);
            if (id < 0)
                return;
            pgd__buf_appendf(body, " (\",\" ws s%d ws)*", id);
        }
        pgd__buf_puts(body, " \"]\"");
        return;
    }
    int id = -1;
    if (items && !json_is_true(items)) {
        path_join(p, sizeof p, path, "items");
        if (json_is_false(items)) {
            pgd__buf_puts(body, "\"[\" ws \"]\"");
            return;
        }
        if ((id = gen(c, items, p)) < 0)
            return;
    }
    char it[32];
    if (id >= 0)
        snprintf(it, sizeof it, "s%d", id);
    else
        snprintf(it, sizeof it, "jvalue");
    if (hi == 0) {
        pgd__buf_puts(body, "\"[\" ws \"]\"");
        return;
    }
    pgd__buf_appendf(body, "\"[\" ws (%s ws (\",\" ws %s ws)", it, it);
    long long rlo = lo > 0 ? lo - 1 : 0;
    if (hi < 0)
        pgd__buf_appendf(body, "{%lld,}", rlo);
    else
        pgd__buf_appendf(body, "{%lld,%lld}", rlo, hi - 1);
    pgd__buf_appendf(body, ")%s \"]\"", lo == 0 ? "?" : "");
}

/* ---- objects ------------------------------------------------------------------------------ */

/* A fresh rule id (its text is put later). */
static int new_id(struct sc *c)
{
    return c->next_id++;
}

static void gen_object(struct sc *c, const json_t *s, const char *path, struct pgd__buf *body)
{
    char p[512];
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) {
        path_join(p, sizeof p, path, "properties");
        bad(c, p, "must be an object%s", NULL);
        return;
    }
    if (req && !json_is_array(req)) {
        path_join(p, sizeof p, path, "required");
        bad(c, p, "must be an array of property names%s", NULL);
        return;
    }
    /* The additional members' value rule: -1 none, -2 any JSON value. */
    int add = props && json_object_size(props) ? -1 : -2;
    if (addl && json_is_true(addl))
        add = -2;
    else if (addl && json_is_false(addl))
        add = -1;
    else if (addl) {
        path_join(p, sizeof p, path, "additionalProperties");
        if ((add = gen(c, addl, p)) < 0)
            return;
    }
    /* Names: the properties in order, then required names the properties do not list. */
    size_t n = props ? json_object_size(props) : 0, n_req = req ? json_array_size(req) : 0;
    const char **names = calloc(n + n_req + 1, sizeof *names);
    int *val = calloc(n + n_req + 1, sizeof *val);
    bool *must = calloc(n + n_req + 1, sizeof *must);
    if (!names || !val || !must) {
        c->st = pgd_errf(c->err, c->errlen, PGD_ERR_NOMEM, "json_schema: out of memory");
        goto done;
    }
    size_t k = 0;
    const char *key;
    json_t *sub;
    if (props)
        json_object_foreach(props, key, sub) {
            char pp[512];
            path_join(pp, sizeof pp, path, "properties");
            path_join(p, sizeof p, pp, key);
            names[k] = key;
            if ((val[k] = gen(c, sub, p)) < 0)
                goto done;
            k++;
        }
    for (size_t i = 0; i < n_req; i++) {
        json_t *r = json_array_get(req, i);
        if (!json_is_string(r)) {
            path_join(p, sizeof p, path, "required");
            bad(c, p, "must list property names (strings)%s", NULL);
            goto done;
        }
        size_t j = 0;
        while (j < k && strcmp(names[j], json_string_value(r)) != 0)
            j++;
        if (j == k) {
            names[k] = json_string_value(r);
            val[k++] = -2;
        }
        must[j] = true;
    }
    /* rest_i / first_i: the members from i on, after some member / before any. */
    int add_rest = new_id(c), add_first = new_id(c);
    struct pgd__buf t = { 0 };
    if (add == -1) {
        put_rule(c, add_rest, &t);
        put_rule(c, add_first, &t);
    } else {
        char av[32];
        snprintf(av, sizeof av, add == -2 ? "jvalue" : "s%d", add);
        pgd__buf_appendf(&t, "(\",\" ws jstring ws \":\" ws %s ws)*", av);
        put_rule(c, add_rest, &t);
        pgd__buf_clear(&t);
        pgd__buf_appendf(&t, "(jstring ws \":\" ws %s ws s%d)?", av, add_rest);
        put_rule(c, add_first, &t);
    }
    int rest = add_rest, first = add_first;
    for (size_t i = k; i-- > 0;) {
        int kv = new_id(c), r = new_id(c), f = new_id(c);
        pgd__buf_clear(&t);
        json_t *js = json_string(names[i]);
        char *enc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        if (!enc) {
            c->st = pgd_errf(c->err, c->errlen, PGD_ERR_NOMEM, "json_schema: out of memory");
            pgd__buf_fini(&t);
            goto done;
        }
        put_literal(&t, enc, strlen(enc));
        free(enc);
        if (val[i] == -2)
            pgd__buf_puts(&t, " ws \":\" ws jvalue ws");
        else
            pgd__buf_appendf(&t, " ws \":\" ws s%d ws", val[i]);
        put_rule(c, kv, &t);
        pgd__buf_clear(&t);
        pgd__buf_appendf(&t, "\",\" ws s%d s%d", kv, rest);
        if (!must[i])
            pgd__buf_appendf(&t, " | s%d", rest);
        put_rule(c, r, &t);
        pgd__buf_clear(&t);
        pgd__buf_appendf(&t, "s%d s%d", kv, rest);
        if (!must[i])
            pgd__buf_appendf(&t, " | s%d", first);
        put_rule(c, f, &t);
        rest = r;
        first = f;
    }
    pgd__buf_fini(&t);
    pgd__buf_appendf(body, "\"{\" ws s%d \"}\"", first);
done:
    free(names);
    free(val);
    free(must);
}

/* ---- the dispatcher ----------------------------------------------------------------------- */

/* The node a "$ref" names (local JSON pointers only). */
static const json_t *resolve_ref(struct sc *c, const char *ref, const char *path)
{
    if (ref[0] != '#')
        return bad(c, path, "only local references (#/...) are supported, not \"%s\"", ref),
               NULL;
    const json_t *n = c->root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        char key[256];
        size_t k = 0;
        for (; *p && *p != '/' && k + 1 < sizeof key; p++) {
            if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
                key[k++] = p[1] == '0' ? '~' : '/';
                p++;
            } else {
                key[k++] = *p;
            }
        }
        key[k] = '\0';
        if (json_is_object(n)) {
            n = json_object_get(n, key);
        } else if (json_is_array(n)) {
            char *end;
            long i = strtol(key, &end, 10);
            n = *end ? NULL : json_array_get(n, (size_t)i);
        } else {
            n = NULL;
        }
        if (!n)
            return bad(c, path, "the reference \"%s\" points at nothing", ref), NULL;
    }
    return n;
}

/* A rule for s with exactly one JSON type t (a string). */
static void gen_typed(struct sc *c, const json_t *s, const char *t, const char *path,
                      struct pgd__buf *body)
{
    if (strcmp(t, "object") == 0)
        gen_object(c, s, path, body);
    else if (strcmp(t, "array") == 0)
        gen_array(c, s, path, body);
    else if (strcmp(t, "string") == 0)
        gen_string(c, s, path, body);
    else if (strcmp(t, "integer") == 0)
        gen_integer(c, s, path, body);
    else if (strcmp(t, "number") == 0)
        gen_number(c, s, path, body);
    else if (strcmp(t, "boolean") == 0)
        pgd__buf_puts(body, "jbool");
    else if (strcmp(t, "null") == 0)
        pgd__buf_puts(body, "jnull");
    else {
        char p[512];
        path_join(p, sizeof p, path, "type");
        bad(c, p, "unknown type \"%s\"", t);
    }
}

/* anyOf / oneOf / allOf / enum into body; false when s has none of them. */
static bool gen_combinator(struct sc *c, const json_t *s, const char *path,
                           struct pgd__buf *body)
{
    static const char *const kw[] = { "anyOf", "oneOf", "allOf" };
    char p[512];
    for (int w = 0; w < 3; w++) {
        json_t *a = json_object_get(s, kw[w]);
        if (!a)
            continue;
        path_join(p, sizeof p, path, kw[w]);
        if (!json_is_array(a) || json_array_size(a) == 0) {
            bad(c, p, "must be a non-empty array of schemas%s", NULL);
            return true;
        }
        if (w == 2 && json_array_size(a) > 1) {
            bad(c, p, "allOf with more than one schema is not supported%s", NULL);
            return true;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            char q[560];
            snprintf(q, sizeof q, "%s/%zu", p, i);
            int id = gen(c, json_array_get(a, i), q);
            if (id < 0)
                return true;
            pgd__buf_appendf(body, "%ss%d", i ? " | " : "", id);
        }
        return true;
    }
    json_t *e = json_object_get(s, "enum"), *k = json_object_get(s, "const");
    if (e) {
        path_join(p, sizeof p, path, "enum");
        if (!json_is_array(e) || json_array_size(e) == 0) {
            bad(c, p, "must be a non-empty array%s", NULL);
            return true;
        }
        for (size_t i = 0; i < json_array_size(e); i++) {
            if (i)
                pgd__buf_puts(body, " | ");
            if (!put_json_literal(c, body, json_array_get(e, i)))
                return true;
        }
        return true;
    }
    if (k) {
        put_json_literal(c, body, k);
        return true;
    }
    return false;
}

static void gen_body(struct sc *c, const json_t *s, const char *path, struct pgd__buf *body)
{
    char p[512];
    json_t *ref = json_object_get(s, "$ref");
    if (ref) {
        path_join(p, sizeof p, path, "$ref");
        if (!json_is_string(ref)) {
            bad(c, p, "must be a string%s", NULL);
            return;
        }
        const json_t *t = resolve_ref(c, json_string_value(ref), p);
        int id = t ? gen(c, t, p) : -1;
        if (id >= 0)
            pgd__buf_appendf(body, "s%d", id);
        return;
    }
    if (gen_combinator(c, s, path, body))
        return;
    json_t *type = json_object_get(s, "type");
    if (json_is_string(type)) {
        gen_typed(c, s, json_string_value(type), path, body);
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        for (size_t i = 0; i < json_array_size(type) && c->st == PGD_OK; i++) {
            json_t *t = json_array_get(type, i);
            path_join(p, sizeof p, path, "type");
            if (!json_is_string(t)) {
                bad(c, p, "must name types (strings)%s", NULL);
                return;
            }
            pgd__buf_puts(body, i ? " | (" : "(");
            gen_typed(c, s, json_string_value(t), path, body);
            pgd__buf_puts(body, ")");
        }
    } else if (type) {
        path_join(p, sizeof p, path, "type");
        bad(c, p, "must be a type name or an array of them%s", NULL);
    } else if (json_object_get(s, "properties") || json_object_get(s, "additionalProperties") ||
               json_object_get(s, "required")) {
        gen_object(c, s, path, body);
    } else if (json_object_get(s, "items") || json_object_get(s, "prefixItems")) {
        gen_array(c, s, path, body);
    } else {
        pgd__buf_puts(body, "jvalue");
    }
}

/* The rule id of schema s (made now, or earlier for a $ref target); -1 on error. */
static int gen(struct sc *c, const json_t *s, const char *path)
{
    if (c->st)
        return -1;
    for (size_t i = 0; i < c->n_refs; i++)
        if (c->refs[i].node == s)
            return c->refs[i].id;
    if (json_is_true(s))
        s = NULL;
    else if (json_is_false(s))
        return bad(c, path, "the schema false matches nothing%s", NULL);
    else if (!json_is_object(s))
        return bad(c, path, "a schema must be an object or a boolean%s", NULL);
    if (++c->depth > 64)
        return bad(c, path, "schemas nested too deeply (over 64 levels)%s", NULL);
    int id = new_id(c);
    /* Known before the body is made: a $ref back here (recursion) finds it. */
    if (s && !pgd__array_reserve(c->refs, c->cap_refs, c->n_refs + 1)) {
        c->st = pgd_errf(c->err, c->errlen, PGD_ERR_NOMEM, "json_schema: out of memory");
        return -1;
    }
    if (s)
        c->refs[c->n_refs++] = (struct ref){ s, id };
    struct pgd__buf body = { 0 };
    if (!s) {
        pgd__buf_puts(&body, "jvalue");
    } else if (check_keywords(c, s, path)) {
        json_t *nullable = json_object_get(s, "nullable");
        gen_body(c, s, path, &body);
        if (json_is_true(nullable)) {
            struct pgd__buf w = { 0 };
            pgd__buf_appendf(&w, "(%s) | jnull", body.p ? body.p : "jvalue");
            pgd__buf_fini(&body);
            body = w;
        }
    }
    c->depth--;
    if (c->st) {
        pgd__buf_fini(&body);
        return -1;
    }
    if (!body.p)
        pgd__buf_puts(&body, "");
    put_rule(c, id, &body);
    pgd__buf_fini(&body);
    return id;
}

enum pgd_status pgd__schema_to_gbnf(const char *schema, size_t len, char **out, char *err,
                                    size_t errlen)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(schema, len, JSON_DECODE_ANY, &je);
    if (!root)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "json_schema: not JSON: line %d, "
                        "column %d: %s", je.line, je.column, je.text);
    struct sc c = { .root = root, .err = err, .errlen = errlen };
    int id = gen(&c, root, "");
    if (c.st == PGD_OK && id >= 0) {
        pgd__buf_appendf(&c.out, "root ::= s%d\n", id);
        pgd__buf_puts(&c.out, PRELUDE);
        if (c.out.failed)
            c.st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "json_schema: out of memory");
    }
    free(c.refs);
    json_decref(root);
    if (c.st) {
        pgd__buf_fini(&c.out);
        return c.st;
    }
    *out = pgd__buf_steal(&c.out, NULL);
    return *out ? PGD_OK : pgd_errf(err, errlen, PGD_ERR_NOMEM, "json_schema: out of memory");
}
