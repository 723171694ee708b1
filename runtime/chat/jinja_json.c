/* JSON in and out of template values: jansson values become template values, and `tojson`
 * writes values the way Python's json.dumps does (transformers' tojson filter). */
#include "runtime/chat/jinja.h"
#include <jansson.h>
#include <math.h>
#include <string.h>

struct pgd__jv *pgd__jv_from_json(struct pgd__jarena *a, const struct json_t *cj)
{
    json_t *j = (json_t *)cj;
    switch (json_typeof(j)) {
    case JSON_NULL: return &pgd__j_none;
    case JSON_TRUE: return &pgd__j_true;
    case JSON_FALSE: return &pgd__j_false;
    case JSON_INTEGER: return pgd__jv_int(a, (int64_t)json_integer_value(j));
    case JSON_REAL: return pgd__jv_float(a, json_real_value(j));
    case JSON_STRING: return pgd__jv_str(a, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        struct pgd__jv *l = pgd__jv_list(a, n);
        for (size_t i = 0; i < n; i++)
            l->l.v[i] = pgd__jv_from_json(a, json_array_get(j, i));
        l->l.n = n;
        return l;
    }
    case JSON_OBJECT: {
        /* jansson keeps insertion order when iterating an object (since 2.8) */
        struct pgd__jv *d = pgd__jv_dict(a, json_object_size(j));
        const char *key;
        json_t *val;
        void *it = json_object_iter(j);
        while (it) {
            key = json_object_iter_key(it);
            val = json_object_iter_value(it);
#if JANSSON_VERSION_HEX >= 0x020e00
            size_t kl = json_object_iter_key_len(it);
#else
            size_t kl = strlen(key);
#endif
            d->d.k[d->d.n] = pgd__jv_str(a, key, kl);
            d->d.v[d->d.n] = pgd__jv_from_json(a, val);
            d->d.n++;
            it = json_object_iter_next(j, it);
        }
        return d;
    }
    }
    return &pgd__j_none;
}

static void dump_str(struct pgd__jarena *a, struct pgd__jbuf *b, const char *s, size_t n,
                     bool ensure_ascii)
{
    pgd__jbuf_putc(a, b, '"');
    size_t i = 0, len;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            switch (ch) {
            case '"': pgd__jbuf_puts(a, b, "\\\""); break;
            case '\\': pgd__jbuf_puts(a, b, "\\\\"); break;
            case '\n': pgd__jbuf_puts(a, b, "\\n"); break;
            case '\r': pgd__jbuf_puts(a, b, "\\r"); break;
            case '\t': pgd__jbuf_puts(a, b, "\\t"); break;
            case '\b': pgd__jbuf_puts(a, b, "\\b"); break;
            case '\f': pgd__jbuf_puts(a, b, "\\f"); break;
            default:
                if (ch < 0x20)
                    pgd__jbuf_printf(a, b, "\\u%04x", ch);
                else
                    pgd__jbuf_putc(a, b, (char)ch);
            }
            i++;
            continue;
        }
        uint32_t cp = pgd__jutf8_next(s + i, n - i, &len);
        if (!ensure_ascii) {
            pgd__jbuf_put(a, b, s + i, len);
        } else if (cp < 0x10000) {
            pgd__jbuf_printf(a, b, "\\u%04x", cp);
        } else {
            uint32_t v = cp - 0x10000;
            pgd__jbuf_printf(a, b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        }
        i += len;
    }
    pgd__jbuf_putc(a, b, '"');
}

static void dump_float(struct pgd__jarena *a, struct pgd__jbuf *b, double f)
{
    char tmp[64];
    if (isnan(f))
        pgd__jbuf_puts(a, b, "NaN");
    else if (isinf(f))
        pgd__jbuf_puts(a, b, f < 0 ? "-Infinity" : "Infinity");
    else {
        pgd__jfloat_repr(f, tmp, sizeof tmp);
        pgd__jbuf_puts(a, b, tmp);
    }
}

static void newline_indent(struct pgd__jarena *a, struct pgd__jbuf *b, const char *indent,
                           int level)
{
    pgd__jbuf_putc(a, b, '\n');
    for (int i = 0; i < level; i++)
        pgd__jbuf_puts(a, b, indent);
}

struct sort_ud {
    struct pgd__jctx *c;
    long at;
};

static int key_cmp(void *ud, const struct pgd__jv *x, const struct pgd__jv *y)
{
    struct sort_ud *s = ud;
    int r;
    if (!pgd__jv_cmp(x, y, &r))
        pgd__jerr(s->c, s->at, "'<' not supported between instances of '%s' and '%s'",
                  pgd__jv_typename(x), pgd__jv_typename(y));
    return r == 2 ? 0 : r;
}

static void dump(struct pgd__jctx *c, struct pgd__jbuf *b, const struct pgd__jv *v,
                 const struct pgd__jdump *o, int level, long at)
{
    struct pgd__jarena *a = c->ar;
    if (level > 200)
        pgd__jerr(c, at, "tojson: value nested too deeply");
    pgd__jtick(c, at);
    switch (v->kind) {
    case PGD__J_NONE: pgd__jbuf_puts(a, b, "null"); return;
    case PGD__J_BOOL: pgd__jbuf_puts(a, b, v->b ? "true" : "false"); return;
    case PGD__J_INT: pgd__jbuf_printf(a, b, "%lld", (long long)v->i); return;
    case PGD__J_FLOAT: dump_float(a, b, v->f); return;
    case PGD__J_STR: dump_str(a, b, v->s.p, v->s.n, o->ensure_ascii); return;
    case PGD__J_LIST:
        if (v->l.n == 0) {
            pgd__jbuf_puts(a, b, "[]");
            return;
        }
        pgd__jbuf_putc(a, b, '[');
        for (size_t i = 0; i < v->l.n; i++) {
            if (i)
                pgd__jbuf_puts(a, b, o->item_sep);
            if (o->indent)
                newline_indent(a, b, o->indent, level + 1);
            dump(c, b, v->l.v[i], o, level + 1, at);
        }
        if (o->indent)
            newline_indent(a, b, o->indent, level);
        pgd__jbuf_putc(a, b, ']');
        return;
    case PGD__J_DICT: {
        if (v->d.n == 0) {
            pgd__jbuf_puts(a, b, "{}");
            return;
        }
        size_t *order = pgd__jalloc(a, v->d.n * sizeof *order);
        for (size_t i = 0; i < v->d.n; i++)
            order[i] = i;
        if (o->sort_keys) {
            /* sort the keys (stable), then map each back to its index */
            struct pgd__jv **keys = pgd__jalloc(a, v->d.n * sizeof *keys);
            memcpy(keys, v->d.k, v->d.n * sizeof *keys);
            struct sort_ud ud = { c, at };
            pgd__jsort(a, keys, v->d.n, key_cmp, &ud);
            for (size_t i = 0; i < v->d.n; i++)
                for (size_t j = 0; j < v->d.n; j++)
                    if (v->d.k[j] == keys[i]) {
                        order[i] = j;
                        break;
                    }
        }
        pgd__jbuf_putc(a, b, '{');
        for (size_t oi = 0; oi < v->d.n; oi++) {
            size_t i = order[oi];
            if (oi)
                pgd__jbuf_puts(a, b, o->item_sep);
            if (o->indent)
                newline_indent(a, b, o->indent, level + 1);
            const struct pgd__jv *k = v->d.k[i];
            switch (k->kind) {
            case PGD__J_STR: dump_str(a, b, k->s.p, k->s.n, o->ensure_ascii); break;
            case PGD__J_NONE: pgd__jbuf_puts(a, b, "\"null\""); break;
            case PGD__J_BOOL: pgd__jbuf_puts(a, b, k->b ? "\"true\"" : "\"false\""); break;
            case PGD__J_INT: pgd__jbuf_printf(a, b, "\"%lld\"", (long long)k->i); break;
            case PGD__J_FLOAT:
                pgd__jbuf_putc(a, b, '"');
                dump_float(a, b, k->f);
                pgd__jbuf_putc(a, b, '"');
                break;
            default:
                pgd__jerr(c, at, "keys must be str, int, float, bool or None, not %s",
                          pgd__jv_typename(k));
            }
            pgd__jbuf_puts(a, b, o->key_sep);
            dump(c, b, v->d.v[i], o, level + 1, at);
        }
        if (o->indent)
            newline_indent(a, b, o->indent, level);
        pgd__jbuf_putc(a, b, '}');
        return;
    }
    default:
        pgd__jerr(c, at, "Object of type %s is not JSON serializable", pgd__jv_typename(v));
    }
}

void pgd__jv_tojson(struct pgd__jctx *c, struct pgd__jbuf *b, const struct pgd__jv *v,
                    const struct pgd__jdump *opt, long at)
{
    dump(c, b, v, opt, 0, at);
}
