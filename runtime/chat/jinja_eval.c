/* Jinja evaluator: walks the syntax tree, evaluating expressions with Python semantics and
 * writing template output. Scoping follows Jinja: a for loop runs each iteration in a fresh
 * frame, macros run in a frame whose parent is the frame they were defined in, and `if`
 * does not open a scope. */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- errors and budget ------------------------------------------------------------------ */

void pgd__jerr(struct pgd__jctx *c, long at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pgd__jthrow(c->fail, PGD_ERR_TEMPLATE, at, "%s", msg);
}

void pgd__jerr_undef(struct pgd__jctx *c, long at, const struct pgd__jv *u)
{
    pgd__jerr(c, at, "%s", u->u.hint ? u->u.hint : "value is undefined");
}

void pgd__jtick(struct pgd__jctx *c, long at)
{
    if (++c->steps > c->max_steps)
        pgd__jthrow(c->fail, PGD_ERR_TEMPLATE, at,
                    "chat template exceeded its work budget (%llu steps)",
                    (unsigned long long)c->max_steps);
}

/* ---- frames ----------------------------------------------------------------------------- */

static struct pgd__jframe *frame_new(struct pgd__jctx *c, struct pgd__jframe *parent)
{
    struct pgd__jframe *f = pgd__jalloc(c->ar, sizeof *f);
    f->parent = parent;
    return f;
}

void pgd__jframe_set(struct pgd__jarena *a, struct pgd__jframe *f, const char *name,
                     struct pgd__jv *v)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return;
        }
    /* Names and values share one capacity: both grow from the same old value to the same
     * new one. */
    size_t cap = f->cap;
    pgd__jreserve(a, f->names, cap, f->n + 1, 8);
    pgd__jreserve(a, f->vals, f->cap, f->n + 1, 8);
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
}

struct pgd__jv *pgd__jframe_get(const struct pgd__jframe *f, const char *name)
{
    for (; f; f = f->parent)
        for (size_t i = f->n; i > 0; i--)
            if (!strcmp(f->names[i - 1], name))
                return f->vals[i - 1];
    return NULL;
}

/* ---- attribute and item access ---------------------------------------------------------- */

static const char *obj_desc(struct pgd__jctx *c, const struct pgd__jv *obj)
{
    if (obj->kind == PGD__J_NONE)
        return "None";
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_printf(c->ar, &b, "%s object", pgd__jv_typename(obj));
    return b.p;
}

static struct pgd__jv *undef_attr(struct pgd__jctx *c, const struct pgd__jv *obj,
                                  const char *name)
{
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_printf(c->ar, &b, "'%s' has no attribute '%s'", obj_desc(c, obj), name);
    return pgd__jv_undef(c->ar, b.p);
}

static struct pgd__jv *loop_attr(struct pgd__jctx *c, struct pgd__jv *lv, const char *name);

struct pgd__jv *pgd__jgetattr(struct pgd__jctx *c, struct pgd__jv *obj, const char *name,
                              long at)
{
    switch (obj->kind) {
    case PGD__J_UNDEF:
        pgd__jerr_undef(c, at, obj);
    case PGD__J_DICT: {
        struct pgd__jv *m = pgd__jmethod(c, obj, name);
        if (m)
            return m;
        struct pgd__jv *v = pgd__jdict_gets(obj, name, strlen(name));
        return v ? v : undef_attr(c, obj, name);
    }
    case PGD__J_NS: {
        struct pgd__jv *v = pgd__jdict_gets(obj, name, strlen(name));
        return v ? v : undef_attr(c, obj, name);
    }
    case PGD__J_LOOP:
        return loop_attr(c, obj, name);
    case PGD__J_STR: case PGD__J_LIST: {
        struct pgd__jv *m = pgd__jmethod(c, obj, name);
        return m ? m : undef_attr(c, obj, name);
    }
    default:
        return undef_attr(c, obj, name);
    }
}

struct pgd__jv *pgd__jgetitem(struct pgd__jctx *c, struct pgd__jv *obj, struct pgd__jv *key,
                              long at)
{
    if (obj->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, obj);
    if (obj->kind == PGD__J_DICT) {
        if (key->kind == PGD__J_LIST && !key->l.tuple)
            pgd__jerr(c, at, "unhashable type: 'list'");
        struct pgd__jv *v = pgd__jdict_get(obj, key);
        if (v)
            return v;
    } else if ((obj->kind == PGD__J_LIST || obj->kind == PGD__J_STR) &&
               (key->kind == PGD__J_INT || key->kind == PGD__J_BOOL)) {
        int64_t i = key->kind == PGD__J_BOOL ? key->b : key->i;
        if (obj->kind == PGD__J_LIST) {
            int64_t n = (int64_t)obj->l.n;
            if (i < 0)
                i += n;
            if (i >= 0 && i < n)
                return obj->l.v[i];
        } else {
            size_t n = obj->s.n;
            bool ascii = true;
            for (size_t k = 0; k < n && ascii; k++)
                ascii = (unsigned char)obj->s.p[k] < 0x80;
            int64_t len = ascii ? (int64_t)n : (int64_t)pgd__jutf8_count(obj->s.p, n);
            if (i < 0)
                i += len;
            if (i >= 0 && i < len) {
                size_t off = ascii ? (size_t)i : pgd__jutf8_offset(obj->s.p, n, (size_t)i);
                size_t cl;
                pgd__jutf8_next(obj->s.p + off, n - off, &cl);
                return pgd__jv_str(c->ar, obj->s.p + off, cl);
            }
        }
    } else if (obj->kind == PGD__J_NS && key->kind == PGD__J_STR) {
        /* Namespace has no __getitem__; getattr(ns, key) is the fallback */
        struct pgd__jv *v = pgd__jdict_get(obj, key);
        if (v)
            return v;
    } else if (obj->kind == PGD__J_LOOP && key->kind == PGD__J_STR) {
        return loop_attr(c, obj, pgd__jstrndup(c->ar, key->s.p, key->s.n));
    }
    if (key->kind == PGD__J_STR && obj->kind != PGD__J_NS) {
        const char *name = pgd__jstrndup(c->ar, key->s.p, key->s.n);
        struct pgd__jv *m = obj->kind == PGD__J_DICT || obj->kind == PGD__J_STR ||
                                    obj->kind == PGD__J_LIST
                                ? pgd__jmethod(c, obj, name)
                                : NULL;
        if (m)
            return m;
        return undef_attr(c, obj, name);
    }
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_printf(c->ar, &b, "%s has no element ", obj_desc(c, obj));
    pgd__jv_repr_to(c->ar, &b, key);
    return pgd__jv_undef(c->ar, b.p);
}

/* ---- loop ------------------------------------------------------------------------------- */

static struct pgd__jv *loop_cycle(struct pgd__jctx *c, struct pgd__jv *self,
                                  const struct pgd__jargs *a, long at)
{
    if (a->npos == 0)
        pgd__jerr(c, at, "no items for cycling given");
    return a->pos[self->loop->index0 % a->npos];
}

static struct pgd__jv *loop_changed(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at)
{
    (void)at;
    struct pgd__jv *now = pgd__jv_list(c->ar, a->npos);
    for (size_t i = 0; i < a->npos; i++)
        pgd__jlist_push(c->ar, now, a->pos[i]);
    struct pgd__jloop *l = self->loop;
    if (l->changed && pgd__jv_eq(l->changed, now))
        return &pgd__j_false;
    l->changed = now;
    return &pgd__j_true;
}

static struct pgd__jv *loop_attr(struct pgd__jctx *c, struct pgd__jv *lv, const char *name)
{
    const struct pgd__jloop *l = lv->loop;
    size_t i = l->index0, n = l->length;
    if (!strcmp(name, "index"))
        return pgd__jv_int(c->ar, (int64_t)i + 1);
    if (!strcmp(name, "index0"))
        return pgd__jv_int(c->ar, (int64_t)i);
    if (!strcmp(name, "revindex"))
        return pgd__jv_int(c->ar, (int64_t)(n - i));
    if (!strcmp(name, "revindex0"))
        return pgd__jv_int(c->ar, (int64_t)(n - i - 1));
    if (!strcmp(name, "first"))
        return pgd__jv_bool(i == 0);
    if (!strcmp(name, "last"))
        return pgd__jv_bool(i + 1 == n);
    if (!strcmp(name, "length"))
        return pgd__jv_int(c->ar, (int64_t)n);
    if (!strcmp(name, "depth"))
        return pgd__jv_int(c->ar, 1);
    if (!strcmp(name, "depth0"))
        return pgd__jv_int(c->ar, 0);
    if (!strcmp(name, "previtem"))
        return i > 0 ? l->items[i - 1] : pgd__jv_undef(c->ar, "there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? l->items[i + 1] : pgd__jv_undef(c->ar, "there is no next item");
    if (!strcmp(name, "cycle"))
        return pgd__jv_func(c->ar, loop_cycle, lv, "cycle");
    if (!strcmp(name, "changed"))
        return pgd__jv_func(c->ar, loop_changed, lv, "changed");
    return undef_attr(c, lv, name);
}

/* ---- iteration -------------------------------------------------------------------------- */

struct pgd__jv **pgd__jiter(struct pgd__jctx *c, struct pgd__jv *v, size_t *n, long at)
{
    switch (v->kind) {
    case PGD__J_UNDEF:
        *n = 0;
        return NULL;
    case PGD__J_LIST:
        *n = v->l.n;
        return v->l.v;
    case PGD__J_DICT:
        *n = v->d.n;
        return v->d.k;
    case PGD__J_STR: {
        size_t cnt = pgd__jutf8_count(v->s.p, v->s.n), off = 0, len;
        struct pgd__jv **items = pgd__jalloc(c->ar, (cnt ? cnt : 1) * sizeof *items);
        for (size_t i = 0; i < cnt; i++) {
            pgd__jutf8_next(v->s.p + off, v->s.n - off, &len);
            items[i] = pgd__jv_str_nocopy(c->ar, v->s.p + off, len);
            off += len;
        }
        *n = cnt;
        return items;
    }
    default:
        pgd__jerr(c, at, "'%s' object is not iterable", pgd__jv_typename(v));
    }
}

/* ---- calls ------------------------------------------------------------------------------ */

static void exec_body(struct pgd__jctx *c, struct pgd__jnode *const *kids, size_t n,
                      struct pgd__jframe *fr);
static struct pgd__jv *eval(struct pgd__jctx *c, const struct pgd__jnode *n,
                            struct pgd__jframe *fr);

static struct pgd__jv *call_macro(struct pgd__jctx *c, struct pgd__jmacro *m,
                                  const struct pgd__jargs *a, long at)
{
    const struct pgd__jnode *def = m->def;
    if (c->depth >= c->max_depth)
        pgd__jerr(c, at, "macro calls nested too deeply");
    c->depth++;
    struct pgd__jframe *fr = frame_new(c, m->closure);
    size_t np = def->nnames;
    struct pgd__jv **bound = pgd__jalloc(c->ar, (np ? np : 1) * sizeof *bound);
    struct pgd__jv *varargs = pgd__jv_list(c->ar, 0);
    varargs->l.tuple = true;
    struct pgd__jv *kwargs = pgd__jv_dict(c->ar, 0);
    for (size_t i = 0; i < a->npos; i++) {
        if (i < np)
            bound[i] = a->pos[i];
        else
            pgd__jlist_push(c->ar, varargs, a->pos[i]);
    }
    struct pgd__jv *caller = NULL;
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i;
        for (i = 0; i < np; i++)
            if (!strcmp(def->names[i], a->kwn[k]))
                break;
        if (i < np) {
            if (bound[i])
                pgd__jerr(c, at, "macro '%s' got multiple values for argument '%s'",
                          def->name ? def->name : "caller", def->names[i]);
            bound[i] = a->kwv[k];
        } else if (!strcmp(a->kwn[k], "caller")) {
            caller = a->kwv[k];
        } else {
            pgd__jdict_set(c->ar, kwargs, pgd__jv_cstr(c->ar, a->kwn[k]), a->kwv[k]);
        }
    }
    for (size_t i = 0; i < np; i++) {
        if (!bound[i]) {
            if (def->kids2 && def->kids2[i]) {
                bound[i] = eval(c, def->kids2[i], fr);
            } else {
                struct pgd__jbuf b = { 0 };
                pgd__jbuf_printf(c->ar, &b, "parameter '%s' was not provided", def->names[i]);
                bound[i] = pgd__jv_undef(c->ar, b.p);
            }
        }
        pgd__jframe_set(c->ar, fr, def->names[i], bound[i]);
    }
    pgd__jframe_set(c->ar, fr, "varargs", varargs);
    pgd__jframe_set(c->ar, fr, "kwargs", kwargs);
    if (caller)
        pgd__jframe_set(c->ar, fr, "caller", caller);
    struct pgd__jbuf out = { 0 }, *saved = c->out;
    pgd__jbuf_put(c->ar, &out, "", 0);
    c->out = &out;
    int saved_ctl = c->loopctl;
    exec_body(c, def->kids, def->nkids, fr);
    c->loopctl = saved_ctl;
    c->out = saved;
    c->depth--;
    return pgd__jv_str_nocopy(c->ar, out.p, out.n);
}

struct pgd__jv *pgd__jcall(struct pgd__jctx *c, struct pgd__jv *fn, const struct pgd__jargs *a,
                           long at)
{
    pgd__jtick(c, at);
    switch (fn->kind) {
    case PGD__J_FUNC:
        return fn->call.fn(c, fn->call.self, a, at);
    case PGD__J_MACRO:
        return call_macro(c, fn->m, a, at);
    case PGD__J_UNDEF:
        pgd__jerr_undef(c, at, fn);
    default:
        pgd__jerr(c, at, "'%s' object is not callable", pgd__jv_typename(fn));
    }
}

/* ---- operators -------------------------------------------------------------------------- */

_Noreturn static void bad_operands(struct pgd__jctx *c, long at, const char *op,
                                   const struct pgd__jv *x, const struct pgd__jv *y)
{
    pgd__jerr(c, at, "unsupported operand type(s) for %s: '%s' and '%s'", op,
              pgd__jv_typename(x), pgd__jv_typename(y));
}

static int64_t ival(const struct pgd__jv *v)
{
    return v->kind == PGD__J_BOOL ? (int64_t)v->b : v->i;
}

static bool is_intlike(const struct pgd__jv *v)
{
    return v->kind == PGD__J_INT || v->kind == PGD__J_BOOL;
}

static struct pgd__jv *repeat(struct pgd__jctx *c, struct pgd__jv *seq, int64_t times, long at)
{
    if (times < 0)
        times = 0;
    if (seq->kind == PGD__J_STR) {
        if (seq->s.n && (uint64_t)times > c->max_output / seq->s.n)
            pgd__jerr(c, at, "string repetition too large");
        struct pgd__jbuf b = { 0 };
        pgd__jbuf_put(c->ar, &b, "", 0);
        for (int64_t i = 0; i < times; i++)
            pgd__jbuf_put(c->ar, &b, seq->s.p, seq->s.n);
        return pgd__jv_str_nocopy(c->ar, b.p, b.n);
    }
    if (seq->l.n && (uint64_t)times > (c->max_steps - c->steps) / seq->l.n)
        pgd__jerr(c, at, "list repetition too large");
    struct pgd__jv *l = pgd__jv_list(c->ar, 0);
    l->l.tuple = seq->l.tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq->l.n; k++) {
            pgd__jtick(c, at);
            pgd__jlist_push(c->ar, l, seq->l.v[k]);
        }
    return l;
}

static double py_fmod(double x, double y)
{
    double m = fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0)))
        m += y;
    return m;
}

struct pgd__jv *pgd__jbinop(struct pgd__jctx *c, int op, struct pgd__jv *x, struct pgd__jv *y,
                            long at)
{
    struct pgd__jarena *A = c->ar;
    if (op == PGD__OP_TILDE) {
        struct pgd__jbuf b = { 0 };
        pgd__jbuf_put(A, &b, "", 0);
        pgd__jv_str_to(A, &b, x);
        pgd__jv_str_to(A, &b, y);
        return pgd__jv_str_nocopy(A, b.p, b.n);
    }
    if (x->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, x);
    if (y->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, y);
    static const char *names[] = { [PGD__OP_ADD] = "+", [PGD__OP_SUB] = "-", [PGD__OP_MUL] = "*",
                                   [PGD__OP_DIV] = "/", [PGD__OP_FLOORDIV] = "//",
                                   [PGD__OP_MOD] = "%", [PGD__OP_POW] = "** or pow()" };
    const char *opname = names[op];
    bool num = pgd__jv_is_num(x) && pgd__jv_is_num(y);
    bool ints = num && is_intlike(x) && is_intlike(y);
    switch (op) {
    case PGD__OP_ADD:
        if (ints) {
            int64_t r;
            if (__builtin_add_overflow(ival(x), ival(y), &r))
                pgd__jerr(c, at, "integer overflow in +");
            return pgd__jv_int(A, r);
        }
        if (num)
            return pgd__jv_float(A, pgd__jv_num(x) + pgd__jv_num(y));
        if (x->kind == PGD__J_STR && y->kind == PGD__J_STR) {
            size_t n = x->s.n + y->s.n;
            char *p = pgd__jalloc(A, n + 1);
            memcpy(p, x->s.p, x->s.n);
            memcpy(p + x->s.n, y->s.p, y->s.n);
            return pgd__jv_str_nocopy(A, p, n);
        }
        if (x->kind == PGD__J_LIST && y->kind == PGD__J_LIST && x->l.tuple == y->l.tuple) {
            struct pgd__jv *l = pgd__jv_list(A, x->l.n + y->l.n);
            memcpy(l->l.v, x->l.v, x->l.n * sizeof *l->l.v);
            if (y->l.n)
                memcpy(l->l.v + x->l.n, y->l.v, y->l.n * sizeof *l->l.v);
            l->l.n = x->l.n + y->l.n;
            l->l.tuple = x->l.tuple;
            return l;
        }
        if (x->kind == PGD__J_STR || y->kind == PGD__J_STR) {
            const struct pgd__jv *other = x->kind == PGD__J_STR ? y : x;
            if (x->kind == PGD__J_STR)
                pgd__jerr(c, at, "can only concatenate str (not \"%s\") to str",
                          pgd__jv_typename(other));
        }
        if (x->kind == PGD__J_LIST && !x->l.tuple)
            pgd__jerr(c, at, "can only concatenate list (not \"%s\") to list",
                      pgd__jv_typename(y));
        bad_operands(c, at, opname, x, y);
    case PGD__OP_SUB:
        if (ints) {
            int64_t r;
            if (__builtin_sub_overflow(ival(x), ival(y), &r))
                pgd__jerr(c, at, "integer overflow in -");
            return pgd__jv_int(A, r);
        }
        if (num)
            return pgd__jv_float(A, pgd__jv_num(x) - pgd__jv_num(y));
        bad_operands(c, at, opname, x, y);
    case PGD__OP_MUL:
        if (ints) {
            int64_t r;
            if (__builtin_mul_overflow(ival(x), ival(y), &r))
                pgd__jerr(c, at, "integer overflow in *");
            return pgd__jv_int(A, r);
        }
        if (num)
            return pgd__jv_float(A, pgd__jv_num(x) * pgd__jv_num(y));
        if ((x->kind == PGD__J_STR || x->kind == PGD__J_LIST) && is_intlike(y))
            return repeat(c, x, ival(y), at);
        if ((y->kind == PGD__J_STR || y->kind == PGD__J_LIST) && is_intlike(x))
            return repeat(c, y, ival(x), at);
        bad_operands(c, at, opname, x, y);
    case PGD__OP_DIV:
        if (num) {
            if (pgd__jv_num(y) == 0)
                pgd__jerr(c, at, "division by zero");
            return pgd__jv_float(A, pgd__jv_num(x) / pgd__jv_num(y));
        }
        bad_operands(c, at, opname, x, y);
    case PGD__OP_FLOORDIV:
        if (num && pgd__jv_num(y) == 0)
            pgd__jerr(c, at, "integer division or modulo by zero");
        if (ints) {
            int64_t a = ival(x), b = ival(y);
            if (a == INT64_MIN && b == -1)
                pgd__jerr(c, at, "integer overflow in //");
            int64_t q = a / b;
            if ((a % b != 0) && ((a < 0) != (b < 0)))
                q--;
            return pgd__jv_int(A, q);
        }
        if (num)
            return pgd__jv_float(A, floor(pgd__jv_num(x) / pgd__jv_num(y)));
        bad_operands(c, at, opname, x, y);
    case PGD__OP_MOD:
        if (x->kind == PGD__J_STR)
            return pgd__jstr_percent(c, x, y, at);
        if (num && pgd__jv_num(y) == 0)
            pgd__jerr(c, at, "integer division or modulo by zero");
        if (ints) {
            int64_t a = ival(x), b = ival(y);
            if (b == -1)
                return pgd__jv_int(A, 0);
            int64_t m = a % b;
            if (m != 0 && ((m < 0) != (b < 0)))
                m += b;
            return pgd__jv_int(A, m);
        }
        if (num)
            return pgd__jv_float(A, py_fmod(pgd__jv_num(x), pgd__jv_num(y)));
        bad_operands(c, at, opname, x, y);
    case PGD__OP_POW:
        if (ints && ival(y) >= 0) {
            int64_t base = ival(x), e = ival(y), r = 1;
            while (e > 0) {
                if (e & 1)
                    if (__builtin_mul_overflow(r, base, &r))
                        pgd__jerr(c, at, "integer overflow in **");
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base))
                    pgd__jerr(c, at, "integer overflow in **");
            }
            return pgd__jv_int(A, r);
        }
        if (num) {
            if (pgd__jv_num(x) == 0 && pgd__jv_num(y) < 0)
                pgd__jerr(c, at, "0.0 cannot be raised to a negative power");
            return pgd__jv_float(A, pow(pgd__jv_num(x), pgd__jv_num(y)));
        }
        bad_operands(c, at, opname, x, y);
    }
    pgd__jerr(c, at, "unknown operator");
}

bool pgd__jcontains(struct pgd__jctx *c, struct pgd__jv *container, struct pgd__jv *item,
                    long at)
{
    switch (container->kind) {
    case PGD__J_STR:
        if (item->kind != PGD__J_STR)
            pgd__jerr(c, at, "'in <string>' requires string as left operand, not %s",
                      pgd__jv_typename(item));
        if (item->s.n == 0)
            return true;
        if (item->s.n > container->s.n)
            return false;
        for (size_t i = 0; i + item->s.n <= container->s.n; i++)
            if (!memcmp(container->s.p + i, item->s.p, item->s.n))
                return true;
        return false;
    case PGD__J_LIST:
        for (size_t i = 0; i < container->l.n; i++)
            if (pgd__jv_eq(container->l.v[i], item))
                return true;
        return false;
    case PGD__J_DICT:
        if ((item->kind == PGD__J_LIST && !item->l.tuple) || item->kind == PGD__J_DICT ||
            item->kind == PGD__J_NS)
            pgd__jerr(c, at, "unhashable type: '%s'", pgd__jv_typename(item));
        return pgd__jdict_get(container, item) != NULL;
    case PGD__J_UNDEF:
        return false;
    default:
        pgd__jerr(c, at, "argument of type '%s' is not iterable", pgd__jv_typename(container));
    }
}

bool pgd__jcompare(struct pgd__jctx *c, int op, struct pgd__jv *x, struct pgd__jv *y, long at)
{
    switch (op) {
    case PGD__OP_EQ: return pgd__jv_eq(x, y);
    case PGD__OP_NE: return !pgd__jv_eq(x, y);
    case PGD__OP_IN: return pgd__jcontains(c, y, x, at);
    case PGD__OP_NOTIN: return !pgd__jcontains(c, y, x, at);
    default: break;
    }
    if (x->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, x);
    if (y->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, y);
    int r;
    static const char *names[] = { [PGD__OP_LT] = "<", [PGD__OP_LTEQ] = "<=",
                                   [PGD__OP_GT] = ">", [PGD__OP_GTEQ] = ">=" };
    if (!pgd__jv_cmp(x, y, &r))
        pgd__jerr(c, at, "'%s' not supported between instances of '%s' and '%s'", names[op],
                  pgd__jv_typename(x), pgd__jv_typename(y));
    if (r == 2)
        return false;   /* NaN */
    switch (op) {
    case PGD__OP_LT: return r < 0;
    case PGD__OP_LTEQ: return r <= 0;
    case PGD__OP_GT: return r > 0;
    default: return r >= 0;
    }
}

/* ---- expressions ------------------------------------------------------------------------ */

static void eval_args(struct pgd__jctx *c, const struct pgd__jnode *n, struct pgd__jframe *fr,
                      struct pgd__jargs *a, size_t extra_kw)
{
    memset(a, 0, sizeof *a);
    a->npos = n->nkids;
    a->pos = pgd__jalloc(c->ar, (n->nkids ? n->nkids : 1) * sizeof *a->pos);
    for (size_t i = 0; i < n->nkids; i++)
        a->pos[i] = eval(c, n->kids[i], fr);
    a->nkw = n->nnames;
    a->kwn = pgd__jalloc(c->ar, (n->nnames + extra_kw + 1) * sizeof *a->kwn);
    a->kwv = pgd__jalloc(c->ar, (n->nnames + extra_kw + 1) * sizeof *a->kwv);
    for (size_t i = 0; i < n->nnames; i++) {
        a->kwn[i] = n->names[i];
        a->kwv[i] = eval(c, n->kids2[i], fr);
    }
}

static struct pgd__jv *eval_inner(struct pgd__jctx *c, const struct pgd__jnode *n,
                                  struct pgd__jframe *fr, long at);

static struct pgd__jv *eval(struct pgd__jctx *c, const struct pgd__jnode *n,
                            struct pgd__jframe *fr)
{
    long at = (long)n->off;
    pgd__jtick(c, at);
    if (c->depth >= c->max_depth)
        pgd__jerr(c, at, "expression nested too deeply");
    c->depth++;
    struct pgd__jv *r = eval_inner(c, n, fr, at);
    c->depth--;
    return r;
}

static struct pgd__jv *eval_inner(struct pgd__jctx *c, const struct pgd__jnode *n,
                                  struct pgd__jframe *fr, long at)
{
    struct pgd__jarena *A = c->ar;
    switch (n->kind) {
    case PGD__E_LIT:
        return n->lit;
    case PGD__E_NAME: {
        struct pgd__jv *v = pgd__jframe_get(fr, n->name);
        if (v)
            return v;
        struct pgd__jbuf b = { 0 };
        pgd__jbuf_printf(A, &b, "'%s' is undefined", n->name);
        return pgd__jv_undef(A, b.p);
    }
    case PGD__E_BLOCKVAL: {
        struct pgd__jv *v = pgd__jframe_get(fr, " block");
        return v ? v : &pgd__j_undef;
    }
    case PGD__E_ATTR:
        return pgd__jgetattr(c, eval(c, n->a, fr), n->name, at);
    case PGD__E_ITEM: {
        struct pgd__jv *obj = eval(c, n->a, fr);
        return pgd__jgetitem(c, obj, eval(c, n->b, fr), at);
    }
    case PGD__E_SLICE: {
        struct pgd__jv *obj = eval(c, n->a, fr);
        struct pgd__jv *s1 = n->b ? eval(c, n->b, fr) : &pgd__j_none;
        struct pgd__jv *s2 = n->c ? eval(c, n->c, fr) : &pgd__j_none;
        struct pgd__jv *s3 = n->d ? eval(c, n->d, fr) : &pgd__j_none;
        return pgd__jslice(c, obj, s1, s2, s3, at);
    }
    case PGD__E_CALL: {
        struct pgd__jv *fn = eval(c, n->a, fr);
        struct pgd__jargs a;
        eval_args(c, n, fr, &a, 0);
        return pgd__jcall(c, fn, &a, at);
    }
    case PGD__E_FILTER: {
        struct pgd__jv *v = eval(c, n->a, fr);
        struct pgd__jargs a;
        eval_args(c, n, fr, &a, 0);
        return pgd__jfilter(c, n->name, v, &a, at);
    }
    case PGD__E_TEST: {
        struct pgd__jv *v = eval(c, n->a, fr);
        struct pgd__jargs a;
        eval_args(c, n, fr, &a, 0);
        bool r = pgd__jtest(c, n->name, v, &a, at);
        return pgd__jv_bool(n->op ? !r : r);
    }
    case PGD__E_NOT:
        return pgd__jv_bool(!pgd__jv_truthy(eval(c, n->a, fr)));
    case PGD__E_NEG: case PGD__E_POS: {
        struct pgd__jv *v = eval(c, n->a, fr);
        if (v->kind == PGD__J_UNDEF)
            pgd__jerr_undef(c, at, v);
        if (is_intlike(v)) {
            if (n->kind == PGD__E_POS)
                return pgd__jv_int(A, ival(v));
            if (ival(v) == INT64_MIN)
                pgd__jerr(c, at, "integer overflow in unary -");
            return pgd__jv_int(A, -ival(v));
        }
        if (v->kind == PGD__J_FLOAT)
            return pgd__jv_float(A, n->kind == PGD__E_NEG ? -v->f : v->f);
        pgd__jerr(c, at, "bad operand type for unary %c: '%s'", n->kind == PGD__E_NEG ? '-' : '+',
                  pgd__jv_typename(v));
    }
    case PGD__E_BIN: {
        struct pgd__jv *x = eval(c, n->a, fr);
        struct pgd__jv *y = eval(c, n->b, fr);
        return pgd__jbinop(c, n->op, x, y, at);
    }
    case PGD__E_AND: {
        struct pgd__jv *x = eval(c, n->a, fr);
        return pgd__jv_truthy(x) ? eval(c, n->b, fr) : x;
    }
    case PGD__E_OR: {
        struct pgd__jv *x = eval(c, n->a, fr);
        return pgd__jv_truthy(x) ? x : eval(c, n->b, fr);
    }
    case PGD__E_COND:
        if (pgd__jv_truthy(eval(c, n->b, fr)))
            return eval(c, n->a, fr);
        if (n->c)
            return eval(c, n->c, fr);
        return pgd__jv_undef(A, "the inline if-expression evaluated to false and no else "
                                "section was defined.");
    case PGD__E_LIST: case PGD__E_TUPLE: {
        struct pgd__jv *l = pgd__jv_list(A, n->nkids);
        for (size_t i = 0; i < n->nkids; i++)
            l->l.v[i] = eval(c, n->kids[i], fr);
        l->l.n = n->nkids;
        l->l.tuple = n->kind == PGD__E_TUPLE;
        return l;
    }
    case PGD__E_DICT: {
        struct pgd__jv *d = pgd__jv_dict(A, n->nkids);
        for (size_t i = 0; i < n->nkids; i++) {
            struct pgd__jv *k = eval(c, n->kids[i], fr);
            if ((k->kind == PGD__J_LIST && !k->l.tuple) || k->kind == PGD__J_DICT ||
                k->kind == PGD__J_NS)
                pgd__jerr(c, (long)n->kids[i]->off, "unhashable type: '%s'",
                          pgd__jv_typename(k));
            pgd__jdict_set(A, d, k, eval(c, n->kids2[i], fr));
        }
        return d;
    }
    case PGD__E_CMP: {
        struct pgd__jv *x = eval(c, n->a, fr);
        for (size_t i = 0; i < n->nkids; i++) {
            struct pgd__jv *y = eval(c, n->kids[i], fr);
            if (!pgd__jcompare(c, n->ops[i], x, y, (long)n->kids[i]->off))
                return &pgd__j_false;
            x = y;
        }
        return &pgd__j_true;
    }
    default:
        pgd__jerr(c, at, "statement used as an expression");
    }
}

/* ---- statements ------------------------------------------------------------------------- */

static void emit(struct pgd__jctx *c, const char *s, size_t n, long at)
{
    if (c->out->n + n > c->max_output)
        pgd__jthrow(c->fail, PGD_ERR_TEMPLATE, at, "chat template output exceeds %zu bytes",
                    c->max_output);
    pgd__jbuf_put(c->ar, c->out, s, n);
}

static void assign(struct pgd__jctx *c, const struct pgd__jnode *target, struct pgd__jv *v,
                   struct pgd__jframe *fr)
{
    long at = (long)target->off;
    if (target->kind == PGD__E_NAME) {
        pgd__jframe_set(c->ar, fr, target->name, v);
        return;
    }
    if (target->kind == PGD__E_TUPLE) {
        size_t n;
        if (v->kind == PGD__J_UNDEF)
            pgd__jerr_undef(c, at, v);
        struct pgd__jv **items = pgd__jiter(c, v, &n, at);
        if (n != target->nkids)
            pgd__jerr(c, at, n > target->nkids ? "too many values to unpack (expected %zu)"
                                                : "not enough values to unpack (expected %zu)",
                      target->nkids);
        for (size_t i = 0; i < n; i++)
            assign(c, target->kids[i], items[i], fr);
        return;
    }
    if (target->kind == PGD__E_ATTR) {
        struct pgd__jv *ns = pgd__jframe_get(fr, target->a->name);
        if (!ns || ns->kind != PGD__J_NS)
            pgd__jerr(c, at, "cannot assign attribute on non-namespace object");
        if (target->name[0] == '_')
            pgd__jerr(c, at, "Chat templates cannot store underscore-prefixed attributes on a "
                             "namespace, but got '%s'. Please rename the attribute.",
                      target->name);
        pgd__jdict_set(c->ar, ns, pgd__jv_cstr(c->ar, target->name), v);
        return;
    }
    pgd__jerr(c, at, "cannot assign to this expression");
}

/* Renders body into a fresh string (the current output is set aside meanwhile). */
static struct pgd__jv *capture(struct pgd__jctx *c, struct pgd__jnode *const *kids, size_t n,
                               struct pgd__jframe *fr)
{
    struct pgd__jbuf out = { 0 }, *saved = c->out;
    pgd__jbuf_put(c->ar, &out, "", 0);
    c->out = &out;
    exec_body(c, kids, n, fr);
    c->out = saved;
    return pgd__jv_str_nocopy(c->ar, out.p, out.n);
}

static struct pgd__jv *apply_chain(struct pgd__jctx *c, const struct pgd__jnode *chain,
                                   struct pgd__jv *value, struct pgd__jframe *fr)
{
    struct pgd__jframe *f = frame_new(c, fr);
    pgd__jframe_set(c->ar, f, " block", value);
    return eval(c, chain, f);
}

static void exec_for(struct pgd__jctx *c, const struct pgd__jnode *n, struct pgd__jframe *fr)
{
    long at = (long)n->off;
    struct pgd__jv *seq = eval(c, n->b, fr);
    size_t count;
    struct pgd__jv **items = pgd__jiter(c, seq, &count, (long)n->b->off);
    if (n->c) {
        struct pgd__jv **kept = pgd__jalloc(c->ar, (count ? count : 1) * sizeof *kept);
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            struct pgd__jframe *f = frame_new(c, fr);
            assign(c, n->a, items[i], f);
            if (pgd__jv_truthy(eval(c, n->c, f)))
                kept[k++] = items[i];
        }
        items = kept;
        count = k;
    }
    if (count == 0) {
        exec_body(c, n->kids2, n->nkids2, fr);
        return;
    }
    struct pgd__jloop *loop = pgd__jalloc(c->ar, sizeof *loop);
    loop->items = items;
    loop->length = count;
    struct pgd__jv *lv = pgd__jalloc(c->ar, sizeof *lv);
    lv->kind = PGD__J_LOOP;
    lv->loop = loop;
    struct pgd__jframe *f = NULL;
    for (size_t i = 0; i < count; i++) {
        pgd__jtick(c, at);
        loop->index0 = i;
        /* each iteration starts from a fresh scope; reuse the last one's memory unless a
         * macro defined in it still refers to it */
        if (!f || f->captured)
            f = frame_new(c, fr);
        else
            f->n = 0;
        pgd__jframe_set(c->ar, f, "loop", lv);
        assign(c, n->a, items[i], f);
        exec_body(c, n->kids, n->nkids, f);
        if (c->loopctl == 1) {
            c->loopctl = 0;
            break;
        }
        c->loopctl = 0;
    }
}

static void exec_stmt(struct pgd__jctx *c, const struct pgd__jnode *n, struct pgd__jframe *fr)
{
    long at = (long)n->off;
    pgd__jtick(c, at);
    switch (n->kind) {
    case PGD__N_TEXT:
        emit(c, n->lit->s.p, n->lit->s.n, at);
        return;
    case PGD__N_OUTPUT: {
        struct pgd__jv *v = eval(c, n->a, fr);
        if (v->kind == PGD__J_STR) {
            emit(c, v->s.p, v->s.n, at);
        } else {
            struct pgd__jv *s = pgd__jv_to_str(c->ar, v);
            emit(c, s->s.p, s->s.n, at);
        }
        return;
    }
    case PGD__N_IF:
        if (pgd__jv_truthy(eval(c, n->a, fr)))
            exec_body(c, n->kids, n->nkids, fr);
        else
            exec_body(c, n->kids2, n->nkids2, fr);
        return;
    case PGD__N_FOR:
        exec_for(c, n, fr);
        return;
    case PGD__N_SET:
        assign(c, n->a, eval(c, n->b, fr), fr);
        return;
    case PGD__N_SET_BLOCK: {
        struct pgd__jv *v = capture(c, n->kids, n->nkids, fr);
        if (n->b)
            v = apply_chain(c, n->b, v, fr);
        assign(c, n->a, v, fr);
        return;
    }
    case PGD__N_MACRO: {
        struct pgd__jv *m = pgd__jalloc(c->ar, sizeof *m);
        m->kind = PGD__J_MACRO;
        m->m = pgd__jalloc(c->ar, sizeof *m->m);
        m->m->def = n;
        m->m->closure = fr;
        fr->captured = true;
        pgd__jframe_set(c->ar, fr, n->name, m);
        return;
    }
    case PGD__N_CALL_BLOCK: {
        /* the body becomes a macro named `caller`, passed to the called macro */
        struct pgd__jv *caller = pgd__jalloc(c->ar, sizeof *caller);
        caller->kind = PGD__J_MACRO;
        caller->m = pgd__jalloc(c->ar, sizeof *caller->m);
        caller->m->def = n;
        caller->m->closure = fr;
        fr->captured = true;
        const struct pgd__jnode *call = n->a;
        struct pgd__jv *fn = eval(c, call->a, fr);
        struct pgd__jargs a;
        eval_args(c, call, fr, &a, 1);
        a.kwn[a.nkw] = "caller";
        a.kwv[a.nkw] = caller;
        a.nkw++;
        struct pgd__jv *r = pgd__jv_to_str(c->ar, pgd__jcall(c, fn, &a, at));
        emit(c, r->s.p, r->s.n, at);
        return;
    }
    case PGD__N_BREAK:
        c->loopctl = 1;
        return;
    case PGD__N_CONTINUE:
        c->loopctl = 2;
        return;
    case PGD__N_WITH: {
        struct pgd__jframe *f = frame_new(c, fr);
        for (size_t i = 0; i < n->nnames; i++)
            pgd__jframe_set(c->ar, f, n->names[i], eval(c, n->kids2[i], fr));
        exec_body(c, n->kids, n->nkids, f);
        return;
    }
    case PGD__N_FILTER_BLOCK: {
        struct pgd__jv *v = capture(c, n->kids, n->nkids, fr);
        v = pgd__jv_to_str(c->ar, apply_chain(c, n->b, v, fr));
        emit(c, v->s.p, v->s.n, at);
        return;
    }
    case PGD__N_SCOPE:
        exec_body(c, n->kids, n->nkids, frame_new(c, fr));
        return;
    default:
        pgd__jerr(c, at, "expression used as a statement");
    }
}

static void exec_body(struct pgd__jctx *c, struct pgd__jnode *const *kids, size_t n,
                      struct pgd__jframe *fr)
{
    if (c->depth >= c->max_depth)
        pgd__jerr(c, n ? (long)kids[0]->off : -1, "template nested too deeply");
    c->depth++;
    for (size_t i = 0; i < n && !c->loopctl; i++)
        exec_stmt(c, kids[i], fr);
    c->depth--;
}

void pgd__jrender(struct pgd__jctx *c, const struct pgd__jnode *root, struct pgd__jframe *fr)
{
    exec_body(c, root->kids, root->nkids, fr);
}
