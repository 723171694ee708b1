/* The methods of dict and list values (items, keys, get, index, count ...; the mutating ones
 * refused), the lookup of a method by name on any value (str methods live in
 * jinja_strings.c), and Python slicing of lists, tuples and strings. */
#include "runtime/chat/jinja.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dict and list methods -------------------------------------------------------------- */

static struct pgd__jv *m_items(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    struct pgd__jv *l = pgd__jv_list(c->ar, self->d.n);
    for (size_t i = 0; i < self->d.n; i++)
        l->l.v[i] = pgd__jv_tuple2(c->ar, self->d.k[i], self->d.v[i]);
    l->l.n = self->d.n;
    return l;
}

static struct pgd__jv *m_keys(struct pgd__jctx *c, struct pgd__jv *self,
                              const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    struct pgd__jv *l = pgd__jv_list(c->ar, self->d.n);
    if (self->d.n)
        memcpy(l->l.v, self->d.k, self->d.n * sizeof *l->l.v);
    l->l.n = self->d.n;
    return l;
}

static struct pgd__jv *m_values(struct pgd__jctx *c, struct pgd__jv *self,
                                const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    struct pgd__jv *l = pgd__jv_list(c->ar, self->d.n);
    if (self->d.n)
        memcpy(l->l.v, self->d.v, self->d.n * sizeof *l->l.v);
    l->l.n = self->d.n;
    return l;
}

static struct pgd__jv *m_get(struct pgd__jctx *c, struct pgd__jv *self,
                             const struct pgd__jargs *a, long at)
{
    struct pgd__jv *k = pgd__jarg(a, 0, NULL);
    if (!k)
        pgd__jerr(c, at, "get expected at least 1 argument, got 0");
    struct pgd__jv *v = pgd__jdict_get(self, k);
    if (v)
        return v;
    struct pgd__jv *d = pgd__jarg(a, 1, NULL);
    return d ? d : &pgd__j_none;
}

static struct pgd__jv *m_copy(struct pgd__jctx *c, struct pgd__jv *self,
                              const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    struct pgd__jv *v = pgd__jalloc(c->ar, sizeof *v);
    *v = *self;
    if (self->kind == PGD__J_DICT) {
        v->d.k = pgd__jalloc(c->ar, (self->d.n + 1) * sizeof *v->d.k);
        v->d.v = pgd__jalloc(c->ar, (self->d.n + 1) * sizeof *v->d.v);
        memcpy(v->d.k, self->d.k, self->d.n * sizeof *v->d.k);
        memcpy(v->d.v, self->d.v, self->d.n * sizeof *v->d.v);
        v->d.cap = self->d.n + 1;
    } else {
        v->l.v = pgd__jalloc(c->ar, (self->l.n + 1) * sizeof *v->l.v);
        memcpy(v->l.v, self->l.v, self->l.n * sizeof *v->l.v);
        v->l.cap = self->l.n + 1;
    }
    return v;
}

static struct pgd__jv *m_list_index(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    struct pgd__jv *x = pgd__jarg(a, 0, NULL);
    if (!x)
        pgd__jerr(c, at, "index expected at least 1 argument, got 0");
    for (size_t i = 0; i < self->l.n; i++)
        if (pgd__jv_eq(self->l.v[i], x))
            return pgd__jv_int(c->ar, (int64_t)i);
    pgd__jerr(c, at, "value is not in list");
}

static struct pgd__jv *m_list_count(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at)
{
    struct pgd__jv *x = pgd__jarg(a, 0, NULL);
    if (!x)
        pgd__jerr(c, at, "count() takes exactly one argument (0 given)");
    int64_t k = 0;
    for (size_t i = 0; i < self->l.n; i++)
        k += pgd__jv_eq(self->l.v[i], x);
    return pgd__jv_int(c->ar, k);
}

static struct pgd__jv *m_unsafe(struct pgd__jctx *c, struct pgd__jv *self,
                                const struct pgd__jargs *a, long at)
{
    (void)a;
    pgd__jthrow(c->fail, PGD_ERR_TEMPLATE, at,
                "access to a method that modifies a %s is not allowed in a chat template",
                pgd__jv_typename(self));
}

static const struct pgd__jmethod_def dict_methods[] = {
    { "items", m_items }, { "keys", m_keys }, { "values", m_values }, { "get", m_get },
    { "copy", m_copy }, { "update", m_unsafe }, { "pop", m_unsafe }, { "popitem", m_unsafe },
    { "clear", m_unsafe }, { "setdefault", m_unsafe },
};

static const struct pgd__jmethod_def list_methods[] = {
    { "index", m_list_index }, { "count", m_list_count }, { "copy", m_copy },
    { "append", m_unsafe }, { "extend", m_unsafe }, { "insert", m_unsafe },
    { "pop", m_unsafe }, { "remove", m_unsafe }, { "reverse", m_unsafe },
    { "sort", m_unsafe }, { "clear", m_unsafe },
};

struct pgd__jv *pgd__jmethod(struct pgd__jctx *c, struct pgd__jv *self, const char *name)
{
    const struct pgd__jmethod_def *tab;
    size_t n;
    switch (self->kind) {
    case PGD__J_STR: tab = pgd__jstr_methods, n = pgd__jstr_nmethods; break;
    case PGD__J_DICT: tab = dict_methods, n = sizeof dict_methods / sizeof *tab; break;
    case PGD__J_LIST: tab = list_methods, n = sizeof list_methods / sizeof *tab; break;
    default: return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tab[i].name, name))
            return pgd__jv_func(c->ar, tab[i].fn, self, tab[i].name);
    return NULL;
}

/* ---- slicing ---------------------------------------------------------------------------- */

static bool slice_index(const struct pgd__jv *v, int64_t *out)
{
    if (v->kind == PGD__J_INT) {
        *out = v->i;
        return true;
    }
    if (v->kind == PGD__J_BOOL) {
        *out = v->b;
        return true;
    }
    return false;
}

struct pgd__jv *pgd__jslice(struct pgd__jctx *c, struct pgd__jv *obj, struct pgd__jv *start,
                            struct pgd__jv *stop, struct pgd__jv *step, long at)
{
    if (obj->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, obj);
    /* Jinja slices with Python's own subscript (not its lenient getitem): errors raise */
    if (obj->kind == PGD__J_DICT)
        pgd__jerr(c, at, "unhashable type: 'slice'");
    if (obj->kind != PGD__J_LIST && obj->kind != PGD__J_STR)
        pgd__jerr(c, at, "'%s' object is not subscriptable", pgd__jv_typename(obj));
    static const char bad_index[] = "slice indices must be integers or None or have an "
                                    "__index__ method";
    int64_t st = 1, lo, hi;
    if (step->kind != PGD__J_NONE && !slice_index(step, &st))
        pgd__jerr(c, at, bad_index);
    if (st == 0)
        pgd__jerr(c, at, "slice step cannot be zero");
    size_t ncp = 0;
    uint32_t *cps = NULL;
    int64_t len;
    if (obj->kind == PGD__J_STR) {
        cps = pgd__jstr_decode(c, obj, &ncp);
        len = (int64_t)ncp;
    } else {
        len = (int64_t)obj->l.n;
    }
    if (start->kind == PGD__J_NONE) {
        lo = st < 0 ? len - 1 : 0;
    } else {
        if (!slice_index(start, &lo))
            pgd__jerr(c, at, bad_index);
        if (lo < 0) {
            lo += len;
            if (lo < 0)
                lo = st < 0 ? -1 : 0;
        } else if (lo >= len) {
            lo = st < 0 ? len - 1 : len;
        }
    }
    if (stop->kind == PGD__J_NONE) {
        hi = st < 0 ? -1 : len;
    } else {
        if (!slice_index(stop, &hi))
            pgd__jerr(c, at, bad_index);
        if (hi < 0) {
            hi += len;
            if (hi < 0)
                hi = st < 0 ? -1 : 0;
        } else if (hi >= len) {
            hi = st < 0 ? len - 1 : len;
        }
    }
    size_t count = 0;
    if (st > 0 && lo < hi)
        count = (size_t)((hi - lo - 1) / st + 1);
    else if (st < 0 && lo > hi)
        count = (size_t)((lo - hi - 1) / (-st) + 1);
    if (obj->kind == PGD__J_STR) {
        if (st == 1)
            return pgd__jstr_encode(c, cps + lo, count);
        uint32_t *res = pgd__jalloc(c->ar, (count + 1) * sizeof *res);
        for (size_t k = 0; k < count; k++)
            res[k] = cps[lo + (int64_t)k * st];
        return pgd__jstr_encode(c, res, count);
    }
    struct pgd__jv *l = pgd__jv_list(c->ar, count);
    for (size_t k = 0; k < count; k++)
        l->l.v[k] = obj->l.v[lo + (int64_t)k * st];
    l->l.n = count;
    l->l.tuple = obj->l.tuple;
    return l;
}

