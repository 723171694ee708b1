/* The globals a chat template sees besides its variables: range, dict, namespace,
 * raise_exception and strftime_now (the last two are transformers' additions). */
#include "runtime/chat/jinja.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

static struct pgd__jv *g_range(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    (void)self;
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) {
        stop = pgd__jarg_int(c, a, 0, NULL, 0, at);
    } else if (a->npos >= 2) {
        start = pgd__jarg_int(c, a, 0, NULL, 0, at);
        stop = pgd__jarg_int(c, a, 1, NULL, 0, at);
        step = pgd__jarg_int(c, a, 2, NULL, 1, at);
    } else {
        pgd__jerr(c, at, "range expected at least 1 argument, got 0");
    }
    if (step == 0)
        pgd__jerr(c, at, "range() arg 3 must not be zero");
    int64_t n = 0;
    if (step > 0 && start < stop)
        n = (stop - start - 1) / step + 1;
    else if (step < 0 && start > stop)
        n = (start - stop - 1) / (-step) + 1;
    if (n > 100000)
        pgd__jerr(c, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE "
                         "(100000).");
    struct pgd__jv *l = pgd__jv_list(c->ar, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        l->l.v[i] = pgd__jv_int(c->ar, start + i * step);
    l->l.n = (size_t)n;
    return l;
}

static void fill_from(struct pgd__jctx *c, struct pgd__jv *d, const struct pgd__jargs *a,
                      long at, bool ns)
{
    if (a->npos > 1)
        pgd__jerr(c, at, "expected at most 1 positional argument, got %zu", a->npos);
    if (a->npos == 1) {
        struct pgd__jv *src = a->pos[0];
        if (src->kind == PGD__J_DICT || src->kind == PGD__J_NS) {
            for (size_t i = 0; i < src->d.n; i++)
                pgd__jdict_set(c->ar, d, src->d.k[i], src->d.v[i]);
        } else {
            size_t n;
            struct pgd__jv **items = pgd__jiter(c, src, &n, at);
            for (size_t i = 0; i < n; i++) {
                size_t m;
                struct pgd__jv **kv = pgd__jiter(c, items[i], &m, at);
                if (m != 2)
                    pgd__jerr(c, at, "dictionary update sequence element #%zu has length %zu; "
                                     "2 is required", i, m);
                pgd__jdict_set(c->ar, d, kv[0], kv[1]);
            }
        }
    }
    for (size_t k = 0; k < a->nkw; k++)
        pgd__jdict_set(c->ar, d, pgd__jv_cstr(c->ar, a->kwn[k]), a->kwv[k]);
    if (ns)
        for (size_t i = 0; i < d->d.n; i++)
            if (d->d.k[i]->kind == PGD__J_STR && d->d.k[i]->s.n && d->d.k[i]->s.p[0] == '_')
                pgd__jerr(c, at, "Chat templates cannot store underscore-prefixed attributes "
                                 "on a namespace, but got '%.*s'. Please rename the attribute.",
                          (int)d->d.k[i]->s.n, d->d.k[i]->s.p);
}

static struct pgd__jv *g_dict(struct pgd__jctx *c, struct pgd__jv *self,
                              const struct pgd__jargs *a, long at)
{
    (void)self;
    struct pgd__jv *d = pgd__jv_dict(c->ar, 0);
    fill_from(c, d, a, at, false);
    return d;
}

static struct pgd__jv *g_namespace(struct pgd__jctx *c, struct pgd__jv *self,
                                   const struct pgd__jargs *a, long at)
{
    (void)self;
    struct pgd__jv *d = pgd__jv_dict(c->ar, 0);
    fill_from(c, d, a, at, true);
    d->kind = PGD__J_NS;
    return d;
}

static struct pgd__jv *g_raise_exception(struct pgd__jctx *c, struct pgd__jv *self,
                                         const struct pgd__jargs *a, long at)
{
    (void)self, (void)at;
    struct pgd__jv *msg = pgd__jarg(a, 0, "message");
    struct pgd__jv *s = msg ? pgd__jv_to_str(c->ar, msg) : pgd__jv_cstr(c->ar, "");
    /* the template's own words reach the caller unchanged; with none, say what happened
     * under the template's name, so an error is never empty */
    if (s->s.n == 0)
        pgd__jthrow(c->fail, PGD_ERR_INVALID_ARG, -1,
                    "the template called raise_exception() without a message");
    c->fail->raised = true;
    pgd__jthrow(c->fail, PGD_ERR_INVALID_ARG, -1, "%.*s", (int)s->s.n, s->s.p);
}

static struct pgd__jv *g_strftime_now(struct pgd__jctx *c, struct pgd__jv *self,
                                      const struct pgd__jargs *a, long at)
{
    (void)self;
    const struct pgd__jv *fmt = pgd__jarg_str(c, a, 0, "format", at);
    if (!fmt)
        pgd__jerr(c, at, "strftime_now() missing required argument 'format'");
    char *f = pgd__jstrndup(c->ar, fmt->s.p, fmt->s.n);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char out[512];
    size_t n = f[0] ? strftime(out, sizeof out, f, &tm) : 0;
    return pgd__jv_str(c->ar, out, n);
}

void pgd__jglobals_install(struct pgd__jctx *c, struct pgd__jframe *f)
{
    pgd__jframe_set(c->ar, f, "range", pgd__jv_func(c->ar, g_range, NULL, "range"));
    pgd__jframe_set(c->ar, f, "dict", pgd__jv_func(c->ar, g_dict, NULL, "dict"));
    pgd__jframe_set(c->ar, f, "namespace", pgd__jv_func(c->ar, g_namespace, NULL, "namespace"));
    pgd__jframe_set(c->ar, f, "raise_exception",
                    pgd__jv_func(c->ar, g_raise_exception, NULL, "raise_exception"));
    pgd__jframe_set(c->ar, f, "strftime_now",
                    pgd__jv_func(c->ar, g_strftime_now, NULL, "strftime_now"));
}
