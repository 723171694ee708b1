/* Jinja filters (`x | tojson`, `x | selectattr(...)` ...) with Jinja2 3.1's behaviour (and
 * transformers' tojson). */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static struct pgd__jv *soft_str(struct pgd__jctx *c, struct pgd__jv *v)
{
    return pgd__jv_to_str(c->ar, v);
}

static bool arg_bool(const struct pgd__jargs *a, size_t i, const char *kw, bool def)
{
    struct pgd__jv *v = pgd__jarg(a, i, kw);
    return v ? pgd__jv_truthy(v) : def;
}

static struct pgd__jv *list_of(struct pgd__jctx *c, struct pgd__jv *v, long at)
{
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    struct pgd__jv *l = pgd__jv_list(c->ar, n);
    if (n)
        memcpy(l->l.v, items, n * sizeof *items);
    l->l.n = n;
    return l;
}

/* Jinja's make_attrgetter: a dotted path, integer parts as indices. */
static struct pgd__jv *attr_path(struct pgd__jctx *c, struct pgd__jv *item, struct pgd__jv *path,
                                 long at)
{
    if (path->kind == PGD__J_INT)
        return pgd__jgetitem(c, item, path, at);
    if (path->kind != PGD__J_STR)
        pgd__jerr(c, at, "attribute must be a string or an integer");
    const char *p = path->s.p, *end = p + path->s.n;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t len = dot ? (size_t)(dot - p) : (size_t)(end - p);
        bool digits = len > 0;
        for (size_t i = 0; i < len; i++)
            digits = digits && p[i] >= '0' && p[i] <= '9';
        struct pgd__jv *key = digits && len < 18 ? pgd__jv_int(c->ar, strtoll(p, NULL, 10))
                                                 : pgd__jv_str(c->ar, p, len);
        item = pgd__jgetitem(c, item, key, at);
        if (!dot)
            return item;
        p = dot + 1;
    }
}

/* Case-insensitive comparison key: lowercased strings. */
static struct pgd__jv *ignore_case(struct pgd__jctx *c, struct pgd__jv *v, bool case_sensitive)
{
    if (!case_sensitive && v->kind == PGD__J_STR)
        return pgd__jstr_case(c, v, 'l');
    return v;
}

struct sortctx {
    struct pgd__jctx *c;
    long at;
    bool reverse;
};

static int cmp_values(void *ud, const struct pgd__jv *x, const struct pgd__jv *y)
{
    struct sortctx *s = ud;
    int r;
    if (!pgd__jv_cmp(x, y, &r))
        pgd__jerr(s->c, s->at, "'<' not supported between instances of '%s' and '%s'",
                  pgd__jv_typename(x), pgd__jv_typename(y));
    if (r == 2)
        r = 0;
    return s->reverse ? -r : r;
}

static int cmp_pair_keys(void *ud, const struct pgd__jv *x, const struct pgd__jv *y)
{
    return cmp_values(ud, x->l.v[0], y->l.v[0]);
}

/* Sorts items[n] in place by keys[n] (parallel arrays), stably. An empty list has no item
 * array at all (items may be NULL when n is 0): nothing is touched then. */
static void sort_by_keys(struct pgd__jctx *c, struct pgd__jv **items, struct pgd__jv **keys,
                         size_t n, bool reverse, long at)
{
    if (n < 2)
        return;
    /* sort (key, index) pairs encoded as 2-tuples whose second element is the index */
    struct pgd__jv **pairs = pgd__jalloc(c->ar, n * sizeof *pairs);
    for (size_t i = 0; i < n; i++)
        pairs[i] = pgd__jv_tuple2(c->ar, keys[i], pgd__jv_int(c->ar, (int64_t)i));
    struct sortctx s = { c, at, reverse };
    pgd__jsort(c->ar, pairs, n, cmp_pair_keys, &s);
    struct pgd__jv **sorted = pgd__jalloc(c->ar, n * sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        sorted[i] = items[pairs[i]->l.v[1]->i];
    memcpy(items, sorted, n * sizeof *sorted);
}

/* ---- filters ---------------------------------------------------------------------------- */

typedef struct pgd__jv *(*filter_fn)(struct pgd__jctx *c, struct pgd__jv *v,
                                     const struct pgd__jargs *a, long at);

static struct pgd__jv *f_default(struct pgd__jctx *c, struct pgd__jv *v,
                                 const struct pgd__jargs *a, long at)
{
    (void)at;
    struct pgd__jv *def = pgd__jarg(a, 0, "default_value");
    bool boolean = arg_bool(a, 1, "boolean", false);
    if (v->kind == PGD__J_UNDEF || (boolean && !pgd__jv_truthy(v)))
        return def ? def : pgd__jv_str(c->ar, "", 0);   /* Jinja2's default_value='' */
    return v;
}

static struct pgd__jv *f_length(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    (void)a;
    switch (v->kind) {
    case PGD__J_UNDEF: return pgd__jv_int(c->ar, 0);
    /* Python's len(str) counts code points */
    case PGD__J_STR: return pgd__jv_int(c->ar, (int64_t)pgd__jutf8_count(v->s.p, v->s.n));
    case PGD__J_LIST: return pgd__jv_int(c->ar, (int64_t)v->l.n);
    case PGD__J_DICT: return pgd__jv_int(c->ar, (int64_t)v->d.n);
    default:
        pgd__jerr(c, at, "object of type '%s' has no len()", pgd__jv_typename(v));
    }
}

static struct pgd__jv *f_trim(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    return pgd__jstr_strip(c, soft_str(c, v), pgd__jarg_str(c, a, 0, "chars", at), 0);
}

static struct pgd__jv *f_tojson(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    /* transformers replaces Jinja2's tojson with json.dumps(x, ensure_ascii=False,
     * indent=None, separators=None, sort_keys=False): not HTML-escaped, ", " and ": " */
    struct pgd__jdump o = { .ensure_ascii = arg_bool(a, 0, "ensure_ascii", false),
                            .sort_keys = arg_bool(a, 3, "sort_keys", false),
                            .item_sep = ", ", .key_sep = ": " };
    struct pgd__jv *indent = pgd__jarg(a, 1, "indent");
    if (indent && indent->kind != PGD__J_NONE) {
        if (indent->kind == PGD__J_STR) {
            o.indent = pgd__jstrndup(c->ar, indent->s.p, indent->s.n);
        } else if (indent->kind == PGD__J_INT || indent->kind == PGD__J_BOOL) {
            int64_t n = indent->kind == PGD__J_INT ? indent->i : indent->b;
            if (n > 64)
                n = 64;
            char *sp = pgd__jalloc(c->ar, (size_t)(n > 0 ? n : 0) + 1);
            for (int64_t i = 0; i < n; i++)
                sp[i] = ' ';
            o.indent = sp;
        } else {
            pgd__jerr(c, at, "tojson: indent must be an int or a str");
        }
        o.item_sep = ",";
    }
    struct pgd__jv *seps = pgd__jarg(a, 2, "separators");
    if (seps && seps->kind != PGD__J_NONE) {
        if (seps->kind != PGD__J_LIST || seps->l.n != 2 || seps->l.v[0]->kind != PGD__J_STR ||
            seps->l.v[1]->kind != PGD__J_STR)
            pgd__jerr(c, at, "tojson: separators must be a pair of strings");
        o.item_sep = pgd__jstrndup(c->ar, seps->l.v[0]->s.p, seps->l.v[0]->s.n);
        o.key_sep = pgd__jstrndup(c->ar, seps->l.v[1]->s.p, seps->l.v[1]->s.n);
    }
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    pgd__jv_tojson(c, &b, v, &o, at);
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static struct pgd__jv *f_list(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    (void)a;
    return list_of(c, v, at);
}

static struct pgd__jv *f_join(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    struct pgd__jv *d = pgd__jarg(a, 0, "d");
    struct pgd__jv *attr = pgd__jarg(a, 1, "attribute");
    struct pgd__jv *sep = d ? soft_str(c, d) : pgd__jv_str(c->ar, "", 0);
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    for (size_t i = 0; i < n; i++) {
        struct pgd__jv *it = attr && attr->kind != PGD__J_NONE ? attr_path(c, items[i], attr, at)
                                                              : items[i];
        if (i)
            pgd__jbuf_put(c->ar, &b, sep->s.p, sep->s.n);
        pgd__jv_str_to(c->ar, &b, it);
    }
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static struct pgd__jv *f_items(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    (void)a;
    if (v->kind == PGD__J_UNDEF)
        return pgd__jv_list(c->ar, 0);
    if (v->kind != PGD__J_DICT)
        pgd__jerr(c, at, "Can only get item pairs from a mapping.");
    struct pgd__jv *l = pgd__jv_list(c->ar, v->d.n);
    for (size_t i = 0; i < v->d.n; i++)
        l->l.v[i] = pgd__jv_tuple2(c->ar, v->d.k[i], v->d.v[i]);
    l->l.n = v->d.n;
    return l;
}

/* select / reject / selectattr / rejectattr */
static struct pgd__jv *select_common(struct pgd__jctx *c, struct pgd__jv *v,
                                     const struct pgd__jargs *a, long at, bool attr, bool keep)
{
    size_t first = 0;
    struct pgd__jv *path = NULL;
    if (attr) {
        path = pgd__jarg(a, 0, NULL);
        if (!path)
            pgd__jerr(c, at, "Missing parameter for attribute name");
        first = 1;
    }
    const char *test = NULL;
    if (a->npos > first) {
        struct pgd__jv *t = a->pos[first];
        if (t->kind != PGD__J_STR)
            pgd__jerr(c, at, "the test name must be a string");
        test = pgd__jstrndup(c->ar, t->s.p, t->s.n);
    }
    struct pgd__jargs targs = { 0 };
    if (a->npos > first + 1) {
        targs.pos = a->pos + first + 1;
        targs.npos = a->npos - first - 1;
    }
    targs.kwn = a->kwn;
    targs.kwv = a->kwv;
    targs.nkw = a->nkw;
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    struct pgd__jv *out = pgd__jv_list(c->ar, 0);
    for (size_t i = 0; i < n; i++) {
        pgd__jtick(c, at);
        struct pgd__jv *x = attr ? attr_path(c, items[i], path, at) : items[i];
        bool r = test ? pgd__jtest(c, test, x, &targs, at) : pgd__jv_truthy(x);
        if (r == keep)
            pgd__jlist_push(c->ar, out, items[i]);
    }
    return out;
}

static struct pgd__jv *f_select(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    return select_common(c, v, a, at, false, true);
}

static struct pgd__jv *f_reject(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    return select_common(c, v, a, at, false, false);
}

static struct pgd__jv *f_selectattr(struct pgd__jctx *c, struct pgd__jv *v,
                                    const struct pgd__jargs *a, long at)
{
    return select_common(c, v, a, at, true, true);
}

static struct pgd__jv *f_rejectattr(struct pgd__jctx *c, struct pgd__jv *v,
                                    const struct pgd__jargs *a, long at)
{
    return select_common(c, v, a, at, true, false);
}

static struct pgd__jv *f_map(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                             long at)
{
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    struct pgd__jv *out = pgd__jv_list(c->ar, n);
    struct pgd__jv *attr = pgd__jarg(a, SIZE_MAX, "attribute");
    if (attr) {
        struct pgd__jv *def = pgd__jarg(a, SIZE_MAX, "default");
        for (size_t i = 0; i < n; i++) {
            struct pgd__jv *x = attr_path(c, items[i], attr, at);
            out->l.v[i] = def && x->kind == PGD__J_UNDEF ? def : x;
        }
        out->l.n = n;
        return out;
    }
    if (a->npos == 0 || a->pos[0]->kind != PGD__J_STR)
        pgd__jerr(c, at, "map requires a filter name or attribute=");
    const char *name = pgd__jstrndup(c->ar, a->pos[0]->s.p, a->pos[0]->s.n);
    struct pgd__jargs fa = { .pos = a->pos + 1, .npos = a->npos - 1, .kwn = a->kwn,
                             .kwv = a->kwv, .nkw = a->nkw };
    for (size_t i = 0; i < n; i++)
        out->l.v[i] = pgd__jfilter(c, name, items[i], &fa, at);
    out->l.n = n;
    return out;
}

static struct pgd__jv *f_first(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    (void)a;
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    return n ? items[0] : pgd__jv_undef(c->ar, "No first item, sequence was empty.");
}

static struct pgd__jv *f_last(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    (void)a;
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    return n ? items[n - 1] : pgd__jv_undef(c->ar, "No last item, sequence was empty.");
}

static struct pgd__jv *f_reverse(struct pgd__jctx *c, struct pgd__jv *v,
                                 const struct pgd__jargs *a, long at)
{
    (void)a;
    struct pgd__jv *m1 = pgd__jv_int(c->ar, -1);
    if (v->kind == PGD__J_STR || v->kind == PGD__J_LIST) {
        struct pgd__jv *r = pgd__jslice(c, v, &pgd__j_none, &pgd__j_none, m1, at);
        if (r->kind == PGD__J_LIST)
            r->l.tuple = false;
        return r;
    }
    struct pgd__jv *l = list_of(c, v, at);
    return pgd__jslice(c, l, &pgd__j_none, &pgd__j_none, m1, at);
}

static struct pgd__jv *f_upper(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, soft_str(c, v), 'u');
}

static struct pgd__jv *f_lower(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, soft_str(c, v), 'l');
}

static struct pgd__jv *f_capitalize(struct pgd__jctx *c, struct pgd__jv *v,
                                    const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, soft_str(c, v), 'c');
}

static struct pgd__jv *f_title(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    /* Jinja: split before runs of [-\s({[<], capitalize the first letter of each piece */
    struct pgd__jv *s = soft_str(c, v);
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    size_t i = 0, len;
    bool word_start = true;
    while (i < s->s.n) {
        uint32_t cp = pgd__jutf8_next(s->s.p + i, s->s.n - i, &len);
        bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' ||
                   pgd__jis_space(cp);
        struct pgd__jv *ch = pgd__jv_str_nocopy(c->ar, s->s.p + i, len);
        if (sep) {
            pgd__jbuf_put(c->ar, &b, s->s.p + i, len);
            word_start = true;
        } else {
            struct pgd__jv *t = pgd__jstr_case(c, ch, word_start ? 'u' : 'l');
            pgd__jbuf_put(c->ar, &b, t->s.p, t->s.n);
            word_start = false;
        }
        i += len;
    }
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static struct pgd__jv *f_replace(struct pgd__jctx *c, struct pgd__jv *v,
                                 const struct pgd__jargs *a, long at)
{
    struct pgd__jv *old = pgd__jarg(a, 0, "old"), *new_ = pgd__jarg(a, 1, "new");
    if (!old || !new_)
        pgd__jerr(c, at, "replace filter needs old and new");
    struct pgd__jv *cnt = pgd__jarg(a, 2, "count");
    int64_t count = cnt && cnt->kind == PGD__J_INT ? cnt->i : -1;
    return pgd__jstr_replace(c, soft_str(c, v), soft_str(c, old), soft_str(c, new_), count, at);
}

static struct pgd__jv *f_string(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return soft_str(c, v);
}

static struct pgd__jv *f_safe(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return soft_str(c, v);
}

static struct pgd__jv *f_escape(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    struct pgd__jv *s = soft_str(c, v);
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    for (size_t i = 0; i < s->s.n; i++) {
        switch (s->s.p[i]) {
        case '&': pgd__jbuf_puts(c->ar, &b, "&amp;"); break;
        case '<': pgd__jbuf_puts(c->ar, &b, "&lt;"); break;
        case '>': pgd__jbuf_puts(c->ar, &b, "&gt;"); break;
        case '"': pgd__jbuf_puts(c->ar, &b, "&#34;"); break;
        case '\'': pgd__jbuf_puts(c->ar, &b, "&#39;"); break;
        default: pgd__jbuf_putc(c->ar, &b, s->s.p[i]);
        }
    }
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static struct pgd__jv *f_int(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                             long at)
{
    (void)at;
    struct pgd__jv *def = pgd__jarg(a, 0, "default");
    struct pgd__jv *basev = pgd__jarg(a, 1, "base");
    if (v->kind == PGD__J_UNDEF)   /* int(Undefined) raises */
        pgd__jerr_undef(c, at, v);
    int base = basev && basev->kind == PGD__J_INT ? (int)basev->i : 10;
    switch (v->kind) {
    case PGD__J_INT: return v;
    case PGD__J_BOOL: return pgd__jv_int(c->ar, v->b);
    case PGD__J_FLOAT:
        if (isfinite(v->f) && fabs(v->f) < 9.2e18)
            return pgd__jv_int(c->ar, (int64_t)v->f);
        break;
    case PGD__J_STR: {
        char *s = pgd__jstrndup(c->ar, v->s.p, v->s.n), *end;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (*s) {
            long long r = strtoll(s, &end, base < 2 || base > 36 ? 10 : base);
            while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
                end++;
            if (!*end)
                return pgd__jv_int(c->ar, r);
            double f = strtod(s, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
                end++;
            if (!*end && isfinite(f) && fabs(f) < 9.2e18)
                return pgd__jv_int(c->ar, (int64_t)f);
        }
        break;
    }
    default:
        break;
    }
    return def ? def : pgd__jv_int(c->ar, 0);
}

static struct pgd__jv *f_float(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    (void)at;
    struct pgd__jv *def = pgd__jarg(a, 0, "default");
    if (v->kind == PGD__J_UNDEF)   /* float(Undefined) raises */
        pgd__jerr_undef(c, at, v);
    if (pgd__jv_is_num(v))
        return pgd__jv_float(c->ar, pgd__jv_num(v));
    if (v->kind == PGD__J_STR) {
        char *s = pgd__jstrndup(c->ar, v->s.p, v->s.n), *end;
        double f = strtod(s, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n')
            end++;
        if (end != s && !*end)
            return pgd__jv_float(c->ar, f);
    }
    return def ? def : pgd__jv_float(c->ar, 0.0);
}

static struct pgd__jv *f_abs(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                             long at)
{
    (void)a;
    if (v->kind == PGD__J_INT) {
        if (v->i == INT64_MIN)
            pgd__jerr(c, at, "integer overflow in abs");
        return v->i < 0 ? pgd__jv_int(c->ar, -v->i) : v;
    }
    if (v->kind == PGD__J_BOOL)
        return pgd__jv_int(c->ar, v->b);
    if (v->kind == PGD__J_FLOAT)
        return pgd__jv_float(c->ar, fabs(v->f));
    pgd__jerr(c, at, "bad operand type for abs(): '%s'", pgd__jv_typename(v));
}

static struct pgd__jv *f_round(struct pgd__jctx *c, struct pgd__jv *v,
                               const struct pgd__jargs *a, long at)
{
    struct pgd__jv *pv = pgd__jarg(a, 0, "precision");
    int64_t prec = pv && pv->kind == PGD__J_INT ? pv->i : 0;
    const struct pgd__jv *method = pgd__jarg_str(c, a, 1, "method", at);
    if (!pgd__jv_is_num(v))
        pgd__jerr(c, at, "round: value must be a number");
    bool common = !method || !((method->s.n == 4 && !memcmp(method->s.p, "ceil", 4)) ||
                               (method->s.n == 5 && !memcmp(method->s.p, "floor", 5)));
    if (common && v->kind != PGD__J_FLOAT && prec >= 0)   /* Python's round(int) is an int */
        return pgd__jv_int(c->ar, v->kind == PGD__J_BOOL ? v->b : v->i);
    if (prec > 15)
        prec = 15;
    if (prec < -15)
        prec = -15;
    double x = pgd__jv_num(v), m = pow(10.0, (double)prec), r;
    if (method && method->s.n == 4 && !memcmp(method->s.p, "ceil", 4))
        r = ceil(x * m) / m;
    else if (method && method->s.n == 5 && !memcmp(method->s.p, "floor", 5))
        r = floor(x * m) / m;
    else {
        /* Python round(): half to even */
        double y = x * m, fl = floor(y), diff = y - fl;
        if (diff > 0.5 || (diff == 0.5 && fmod(fl, 2.0) != 0))
            fl += 1;
        r = fl / m;
    }
    return pgd__jv_float(c->ar, r);
}

static struct pgd__jv *f_indent(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    struct pgd__jv *w = pgd__jarg(a, 0, "width");
    bool first = arg_bool(a, 1, "first", false), blank = arg_bool(a, 2, "blank", false);
    struct pgd__jv *ind;
    if (w && w->kind == PGD__J_STR) {
        ind = w;
    } else {
        int64_t n = w && w->kind == PGD__J_INT ? w->i : 4;
        if (n < 0)
            n = 0;
        if (n > 256)
            n = 256;
        char *sp = pgd__jalloc(c->ar, (size_t)n + 1);
        memset(sp, ' ', (size_t)n);
        ind = pgd__jv_str_nocopy(c->ar, sp, (size_t)n);
    }
    struct pgd__jv *s = soft_str(c, v);
    struct pgd__jv *nl = pgd__jv_str(c->ar, "\n", 1);
    s = pgd__jbinop(c, PGD__OP_ADD, s, nl, at);
    struct pgd__jargs none = { 0 };
    struct pgd__jv *splitlines = pgd__jmethod(c, s, "splitlines");
    struct pgd__jv *lines = pgd__jcall(c, splitlines, &none, at);
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    if (first)
        pgd__jbuf_put(c->ar, &b, ind->s.p, ind->s.n);
    for (size_t i = 0; i < lines->l.n; i++) {
        struct pgd__jv *line = lines->l.v[i];
        if (i) {
            pgd__jbuf_putc(c->ar, &b, '\n');
            if (blank || line->s.n)
                pgd__jbuf_put(c->ar, &b, ind->s.p, ind->s.n);
        }
        pgd__jbuf_put(c->ar, &b, line->s.p, line->s.n);
    }
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static struct pgd__jv *f_center(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    (void)at;
    struct pgd__jv *w = pgd__jarg(a, 0, "width");
    int64_t width = w && w->kind == PGD__J_INT ? w->i : 80;
    struct pgd__jv *s = soft_str(c, v);
    int64_t n = (int64_t)pgd__jutf8_count(s->s.p, s->s.n);
    if (width > 100000)
        width = 100000;
    if (width <= n)
        return s;
    int64_t pad = width - n, left = pad / 2 + (pad & width & 1);
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    for (int64_t i = 0; i < left; i++)
        pgd__jbuf_putc(c->ar, &b, ' ');
    pgd__jbuf_put(c->ar, &b, s->s.p, s->s.n);
    for (int64_t i = 0; i < pad - left; i++)
        pgd__jbuf_putc(c->ar, &b, ' ');
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static struct pgd__jv *f_wordcount(struct pgd__jctx *c, struct pgd__jv *v,
                                   const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    struct pgd__jv *s = soft_str(c, v);
    int64_t words = 0;
    bool in = false;
    size_t i = 0, len;
    while (i < s->s.n) {
        uint32_t cp = pgd__jutf8_next(s->s.p + i, s->s.n - i, &len);
        bool w = cp == '_' || (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
                 (cp >= 'A' && cp <= 'Z') || (cp >= 0x80 && !pgd__jis_space(cp));
        if (w && !in)
            words++;
        in = w;
        i += len;
    }
    return pgd__jv_int(c->ar, words);
}

static struct pgd__jv *f_format(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    struct pgd__jv *s = soft_str(c, v);
    if (a->nkw) {
        struct pgd__jv *d = pgd__jv_dict(c->ar, a->nkw);
        for (size_t i = 0; i < a->nkw; i++)
            pgd__jdict_set(c->ar, d, pgd__jv_cstr(c->ar, a->kwn[i]), a->kwv[i]);
        return pgd__jstr_percent(c, s, d, at);
    }
    struct pgd__jv *t = pgd__jv_list(c->ar, a->npos);
    for (size_t i = 0; i < a->npos; i++)
        t->l.v[i] = a->pos[i];
    t->l.n = a->npos;
    t->l.tuple = true;
    return pgd__jstr_percent(c, s, t, at);
}

static struct pgd__jv *f_attr(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    const struct pgd__jv *name = pgd__jarg_str(c, a, 0, "name", at);
    if (!name)
        pgd__jerr(c, at, "attr filter needs a name");
    return pgd__jgetattr(c, v, pgd__jstrndup(c->ar, name->s.p, name->s.n), at);
}

static struct pgd__jv *f_sort(struct pgd__jctx *c, struct pgd__jv *v,
                              const struct pgd__jargs *a, long at)
{
    bool reverse = arg_bool(a, 0, "reverse", false);
    bool cs = arg_bool(a, 1, "case_sensitive", false);
    struct pgd__jv *attr = pgd__jarg(a, 2, "attribute");
    struct pgd__jv *l = list_of(c, v, at);
    struct pgd__jv **keys = pgd__jalloc(c->ar, (l->l.n + 1) * sizeof *keys);
    for (size_t i = 0; i < l->l.n; i++) {
        struct pgd__jv *k = attr && attr->kind != PGD__J_NONE ? attr_path(c, l->l.v[i], attr, at)
                                                             : l->l.v[i];
        keys[i] = ignore_case(c, k, cs);
    }
    sort_by_keys(c, l->l.v, keys, l->l.n, reverse, at);
    return l;
}

static struct pgd__jv *f_dictsort(struct pgd__jctx *c, struct pgd__jv *v,
                                  const struct pgd__jargs *a, long at)
{
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const struct pgd__jv *by = pgd__jarg_str(c, a, 1, "by", at);
    bool reverse = arg_bool(a, 2, "reverse", false);
    bool by_value = by && by->s.n == 5 && !memcmp(by->s.p, "value", 5);
    if (by && !by_value && !(by->s.n == 3 && !memcmp(by->s.p, "key", 3)))
        pgd__jerr(c, at, "You can only sort by either \"key\" or \"value\"");
    if (v->kind == PGD__J_UNDEF)   /* dictsort calls value.items() */
        pgd__jerr_undef(c, at, v);
    struct pgd__jargs none = { 0 };
    struct pgd__jv *items = f_items(c, v, &none, at);
    struct pgd__jv **keys = pgd__jalloc(c->ar, (items->l.n + 1) * sizeof *keys);
    for (size_t i = 0; i < items->l.n; i++)
        keys[i] = ignore_case(c, items->l.v[i]->l.v[by_value ? 1 : 0], cs);
    sort_by_keys(c, items->l.v, keys, items->l.n, reverse, at);
    return items;
}

static struct pgd__jv *f_unique(struct pgd__jctx *c, struct pgd__jv *v,
                                const struct pgd__jargs *a, long at)
{
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    struct pgd__jv *attr = pgd__jarg(a, 1, "attribute");
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    struct pgd__jv *out = pgd__jv_list(c->ar, 0), *seen = pgd__jv_list(c->ar, 0);
    for (size_t i = 0; i < n; i++) {
        pgd__jtick(c, at);
        struct pgd__jv *k = attr && attr->kind != PGD__J_NONE ? attr_path(c, items[i], attr, at)
                                                             : items[i];
        k = ignore_case(c, k, cs);
        bool dup = false;
        for (size_t j = 0; j < seen->l.n && !dup; j++)
            dup = pgd__jv_eq(seen->l.v[j], k);
        if (!dup) {
            pgd__jlist_push(c->ar, seen, k);
            pgd__jlist_push(c->ar, out, items[i]);
        }
    }
    return out;
}

static struct pgd__jv *minmax(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                              long at, bool max)
{
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    struct pgd__jv *attr = pgd__jarg(a, 1, "attribute");
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    if (!n)
        return pgd__jv_undef(c->ar, "No aggregated item, sequence was empty.");
    struct pgd__jv *best = items[0], *bestk = NULL;
    struct sortctx s = { c, at, false };
    for (size_t i = 0; i < n; i++) {
        struct pgd__jv *k = attr && attr->kind != PGD__J_NONE ? attr_path(c, items[i], attr, at)
                                                             : items[i];
        k = ignore_case(c, k, cs);
        if (!bestk) {
            bestk = k;
            continue;
        }
        int r = cmp_values(&s, k, bestk);
        if (max ? r > 0 : r < 0) {
            best = items[i];
            bestk = k;
        }
    }
    return best;
}

static struct pgd__jv *f_min(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                             long at)
{
    return minmax(c, v, a, at, false);
}

static struct pgd__jv *f_max(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                             long at)
{
    return minmax(c, v, a, at, true);
}

static struct pgd__jv *f_sum(struct pgd__jctx *c, struct pgd__jv *v, const struct pgd__jargs *a,
                             long at)
{
    struct pgd__jv *attr = pgd__jarg(a, 0, "attribute");
    struct pgd__jv *acc = pgd__jarg(a, 1, "start");
    if (!acc)
        acc = pgd__jv_int(c->ar, 0);
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, v, &n, at);
    for (size_t i = 0; i < n; i++) {
        struct pgd__jv *x = attr && attr->kind != PGD__J_NONE ? attr_path(c, items[i], attr, at)
                                                             : items[i];
        acc = pgd__jbinop(c, PGD__OP_ADD, acc, x, at);
    }
    return acc;
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    { "abs", f_abs }, { "attr", f_attr }, { "capitalize", f_capitalize },
    { "center", f_center }, { "count", f_length }, { "d", f_default },
    { "default", f_default }, { "dictsort", f_dictsort }, { "e", f_escape },
    { "escape", f_escape }, { "first", f_first }, { "float", f_float },
    { "forceescape", f_escape }, { "format", f_format }, { "indent", f_indent },
    { "int", f_int }, { "items", f_items }, { "join", f_join }, { "last", f_last },
    { "length", f_length }, { "list", f_list }, { "lower", f_lower }, { "map", f_map },
    { "max", f_max }, { "min", f_min }, { "reject", f_reject },
    { "rejectattr", f_rejectattr }, { "replace", f_replace }, { "reverse", f_reverse },
    { "round", f_round }, { "safe", f_safe }, { "select", f_select },
    { "selectattr", f_selectattr }, { "sort", f_sort }, { "string", f_string },
    { "sum", f_sum }, { "title", f_title }, { "tojson", f_tojson }, { "trim", f_trim },
    { "unique", f_unique }, { "upper", f_upper }, { "wordcount", f_wordcount },
};

struct pgd__jv *pgd__jfilter(struct pgd__jctx *c, const char *name, struct pgd__jv *v,
                             const struct pgd__jargs *a, long at)
{
    pgd__jtick(c, at);
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name))
            return filters[i].fn(c, v, a, at);
    pgd__jerr(c, at, "No filter named '%s'.", name);
}

bool pgd__jfilter_exists(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name))
            return true;
    return false;
}
