/* What the evaluator does to values, with Python's and Jinja2's sandbox semantics: attribute
 * and item access (`.` and `[]`), the `loop` object of a for loop, iteration, the binary
 * operators (+ - * / // % ** ~), `in` and the comparisons. */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* obj.name as Jinja2's getattr does it: the Python attribute (a method) first, then the
 * item of that name; a missing one is an undefined value, not an error, until it is used. */
struct pgd__jv *pgd__jgetattr(struct pgd__jctx *c, struct pgd__jv *obj, const char *name,
                              long at)
{
    switch (obj->kind) {
    case PGD__J_UNDEF:
        pgd__jerr_undef(c, at, obj);
    case PGD__J_DICT: {
        /* {'items': 1}.items is the method in Jinja2, as in Python */
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

/* obj[key] as Jinja2's getitem does it: the item first (negative indices count from the
 * end, as Python's), then the attribute of a str key; a missing one is undefined. */
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
            /* Python indexes a str by code point; ASCII needs no decoding */
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
    case PGD__J_UNDEF:   /* Jinja2's default Undefined iterates as empty */
        *n = 0;
        return NULL;
    case PGD__J_LIST:
        *n = v->l.n;
        return v->l.v;
    case PGD__J_DICT:   /* a dict iterates over its keys, in insertion order, as Python's */
        *n = v->d.n;
        return v->d.k;
    case PGD__J_STR: {   /* a str over its code points */
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


/* ---- operators -------------------------------------------------------------------------- */

_Noreturn static void bad_operands(struct pgd__jctx *c, long at, const char *op,
                                   const struct pgd__jv *x, const struct pgd__jv *y)
{
    pgd__jerr(c, at, "unsupported operand type(s) for %s: '%s' and '%s'", op,
              pgd__jv_typename(x), pgd__jv_typename(y));
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

/* x ~ y: both sides as str(), concatenated (Jinja's ~ never fails, undefined is ''). */
static struct pgd__jv *concat(struct pgd__jarena *A, struct pgd__jv *x, struct pgd__jv *y)
{
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(A, &b, "", 0);
    pgd__jv_str_to(A, &b, x);
    pgd__jv_str_to(A, &b, y);
    return pgd__jv_str_nocopy(A, b.p, b.n);
}

/* x + y: numbers, str + str, list + list, tuple + tuple; else Python's TypeError text. */
static struct pgd__jv *add(struct pgd__jctx *c, struct pgd__jv *x, struct pgd__jv *y, bool ints,
                           bool num, long at)
{
    struct pgd__jarena *A = c->ar;
    if (ints) {
        int64_t r;
        if (__builtin_add_overflow(pgd__jv_ival(x), pgd__jv_ival(y), &r))
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
    /* Python adds a list to a list and a tuple to a tuple, never one to the other */
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
        pgd__jerr(c, at, "can only concatenate list (not \"%s\") to list", pgd__jv_typename(y));
    bad_operands(c, at, "+", x, y);
}

/* x // y: Python's floor division, which rounds toward negative infinity (C's / truncates). */
static struct pgd__jv *floordiv(struct pgd__jctx *c, struct pgd__jv *x, struct pgd__jv *y,
                                bool ints, bool num, long at)
{
    if (num && pgd__jv_num(y) == 0)
        pgd__jerr(c, at, "integer division or modulo by zero");
    if (ints) {
        int64_t a = pgd__jv_ival(x), b = pgd__jv_ival(y);
        if (a == INT64_MIN && b == -1)
            pgd__jerr(c, at, "integer overflow in //");
        int64_t q = a / b;
        if ((a % b != 0) && ((a < 0) != (b < 0)))
            q--;
        return pgd__jv_int(c->ar, q);
    }
    if (num)
        return pgd__jv_float(c->ar, floor(pgd__jv_num(x) / pgd__jv_num(y)));
    bad_operands(c, at, "//", x, y);
}

/* x % y: printf-style formatting when x is a str (Python's str.__mod__); otherwise Python's
 * modulo, whose result takes the sign of the divisor (C's % takes the dividend's). */
static struct pgd__jv *modulo(struct pgd__jctx *c, struct pgd__jv *x, struct pgd__jv *y,
                              bool ints, bool num, long at)
{
    if (x->kind == PGD__J_STR)
        return pgd__jstr_percent(c, x, y, at);
    if (num && pgd__jv_num(y) == 0)
        pgd__jerr(c, at, "integer division or modulo by zero");
    if (ints) {
        int64_t a = pgd__jv_ival(x), b = pgd__jv_ival(y);
        if (b == -1)
            return pgd__jv_int(c->ar, 0);   /* and INT64_MIN % -1 would trap in C */
        int64_t m = a % b;
        if (m != 0 && ((m < 0) != (b < 0)))
            m += b;
        return pgd__jv_int(c->ar, m);
    }
    if (num)
        return pgd__jv_float(c->ar, py_fmod(pgd__jv_num(x), pgd__jv_num(y)));
    bad_operands(c, at, "%", x, y);
}

/* x ** y: exact for an int base and a non-negative int exponent (square and multiply, each
 * step overflow-checked), a float otherwise, as Python's int and float pow. */
static struct pgd__jv *power(struct pgd__jctx *c, struct pgd__jv *x, struct pgd__jv *y,
                             bool ints, bool num, long at)
{
    if (ints && pgd__jv_ival(y) >= 0) {
        int64_t base = pgd__jv_ival(x), e = pgd__jv_ival(y), r = 1;
        while (e > 0) {
            if (e & 1)
                if (__builtin_mul_overflow(r, base, &r))
                    pgd__jerr(c, at, "integer overflow in **");
            e >>= 1;
            if (e && __builtin_mul_overflow(base, base, &base))
                pgd__jerr(c, at, "integer overflow in **");
        }
        return pgd__jv_int(c->ar, r);
    }
    if (num) {
        if (pgd__jv_num(x) == 0 && pgd__jv_num(y) < 0)
            pgd__jerr(c, at, "0.0 cannot be raised to a negative power");
        return pgd__jv_float(c->ar, pow(pgd__jv_num(x), pgd__jv_num(y)));
    }
    bad_operands(c, at, "** or pow()", x, y);
}

struct pgd__jv *pgd__jbinop(struct pgd__jctx *c, int op, struct pgd__jv *x, struct pgd__jv *y,
                            long at)
{
    struct pgd__jarena *A = c->ar;
    if (op == PGD__OP_TILDE)
        return concat(A, x, y);
    if (x->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, x);
    if (y->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, y);
    static const char *names[] = { [PGD__OP_ADD] = "+", [PGD__OP_SUB] = "-", [PGD__OP_MUL] = "*",
                                   [PGD__OP_DIV] = "/", [PGD__OP_FLOORDIV] = "//",
                                   [PGD__OP_MOD] = "%", [PGD__OP_POW] = "** or pow()" };
    const char *opname = names[op];
    bool num = pgd__jv_is_num(x) && pgd__jv_is_num(y);
    /* Python's bool is an int: True + 1 == 2 */
    bool ints = num && pgd__jv_is_intlike(x) && pgd__jv_is_intlike(y);
    switch (op) {
    case PGD__OP_ADD:
        return add(c, x, y, ints, num, at);
    case PGD__OP_SUB:
        if (ints) {
            int64_t r;
            if (__builtin_sub_overflow(pgd__jv_ival(x), pgd__jv_ival(y), &r))
                pgd__jerr(c, at, "integer overflow in -");
            return pgd__jv_int(A, r);
        }
        if (num)
            return pgd__jv_float(A, pgd__jv_num(x) - pgd__jv_num(y));
        bad_operands(c, at, opname, x, y);
    case PGD__OP_MUL:
        if (ints) {
            int64_t r;
            if (__builtin_mul_overflow(pgd__jv_ival(x), pgd__jv_ival(y), &r))
                pgd__jerr(c, at, "integer overflow in *");
            return pgd__jv_int(A, r);
        }
        if (num)
            return pgd__jv_float(A, pgd__jv_num(x) * pgd__jv_num(y));
        /* Python repeats a sequence by an int on either side: 'ab' * 2, 2 * [0] */
        if ((x->kind == PGD__J_STR || x->kind == PGD__J_LIST) && pgd__jv_is_intlike(y))
            return repeat(c, x, pgd__jv_ival(y), at);
        if ((y->kind == PGD__J_STR || y->kind == PGD__J_LIST) && pgd__jv_is_intlike(x))
            return repeat(c, y, pgd__jv_ival(x), at);
        bad_operands(c, at, opname, x, y);
    case PGD__OP_DIV:
        if (num) {
            if (pgd__jv_num(y) == 0)
                pgd__jerr(c, at, "division by zero");
            return pgd__jv_float(A, pgd__jv_num(x) / pgd__jv_num(y));   /* Python 3's true / */
        }
        bad_operands(c, at, opname, x, y);
    case PGD__OP_FLOORDIV:
        return floordiv(c, x, y, ints, num, at);
    case PGD__OP_MOD:
        return modulo(c, x, y, ints, num, at);
    case PGD__OP_POW:
        return power(c, x, y, ints, num, at);
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
            return true;   /* Python: '' in s for every s */
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
    case PGD__J_UNDEF:   /* x in undefined: Undefined iterates as empty in Jinja2 */
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
        return false;   /* NaN: every ordering comparison is False in Python */
    switch (op) {
    case PGD__OP_LT: return r < 0;
    case PGD__OP_LTEQ: return r <= 0;
    case PGD__OP_GT: return r > 0;
    default: return r >= 0;
    }
}

