/* Jinja runtime values: failures (template errors and the work budget), arenas, buffers,
 * constructors, Python equality, ordering, truthiness, stable sorting, str() and repr(). */
#include "runtime/chat/jinja.h"
#include "runtime/base/mem.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- failure ---------------------------------------------------------------------------- */

void pgd__jlinecol(const char *src, size_t off, int *line, int *col)
{
    int l = 1;
    size_t start = 0;
    for (size_t i = 0; i < off && src[i]; i++)
        if (src[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = (int)pgd__jutf8_count(src + start, off - start) + 1;
}

void pgd__jthrow(struct pgd__jfail *f, enum pgd_status st, long offset, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->st = st;
    if (f->err && f->errlen) {
        if (offset >= 0 && f->src) {
            int line, col;
            pgd__jlinecol(f->src, (size_t)offset, &line, &col);
            snprintf(f->err, f->errlen, "line %d, column %d: %s", line, col, msg);
        } else {
            snprintf(f->err, f->errlen, "%s", msg);
        }
    }
    longjmp(f->jb, 1);
}

/* Evaluation errors, thrown through the render's failure with the node's offset. */
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

/* ---- arena ------------------------------------------------------------------------------ */

struct pgd__jchunk {
    struct pgd__jchunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *pgd__jalloc(struct pgd__jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->limit && a->used + n > a->limit)
        pgd__jthrow(a->fail, PGD_ERR_NOMEM, -1,
                    "chat template used more than its memory limit (%zu MiB)", a->limit >> 20);
    struct pgd__jchunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > 60000 ? n : 60000;
        c = malloc(sizeof *c + sz);
        if (!c)
            pgd__jthrow(a->fail, PGD_ERR_NOMEM, -1, "out of memory rendering a chat template");
        c->size = sz;
        c->used = 0;
        /* a big chunk goes behind the current one so that the current one stays in use */
        if (a->head && sz > 60000) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void pgd__jreserve_(struct pgd__jarena *a, void *arrp, size_t *cap, size_t need, size_t elem,
                    size_t min_cap)
{
    if (need <= *cap)
        return;
    size_t c = pgd__grow_capacity(*cap, need, min_cap, elem);
    if (!c)
        pgd__jthrow(a->fail, PGD_ERR_NOMEM, -1,
                    "chat template: an array of %zu elements is too large", need);
    /* arrp is the address of the caller's T *: read and written through memcpy (any object
     * pointer type, no aliasing cast). */
    void *old, *q = pgd__jalloc(a, c * elem);
    memcpy(&old, arrp, sizeof old);
    if (old && *cap)
        memcpy(q, old, *cap * elem);
    memcpy(arrp, &q, sizeof q);
    *cap = c;
}

char *pgd__jstrndup(struct pgd__jarena *a, const char *s, size_t n)
{
    char *p = pgd__jalloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void pgd__jarena_free(struct pgd__jarena *a)
{
    struct pgd__jchunk *c = a->head;
    while (c) {
        struct pgd__jchunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

void pgd__jbuf_put(struct pgd__jarena *a, struct pgd__jbuf *b, const char *s, size_t n)
{
    pgd__jreserve(a, b->p, b->cap, b->n + n + 1, 64);
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void pgd__jbuf_puts(struct pgd__jarena *a, struct pgd__jbuf *b, const char *s)
{
    pgd__jbuf_put(a, b, s, strlen(s));
}

void pgd__jbuf_putc(struct pgd__jarena *a, struct pgd__jbuf *b, char c)
{
    pgd__jbuf_put(a, b, &c, 1);
}

void pgd__jbuf_printf(struct pgd__jarena *a, struct pgd__jbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        pgd__jbuf_put(a, b, tmp, (size_t)n);
        return;
    }
    char *big = pgd__jalloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pgd__jbuf_put(a, b, big, (size_t)n);
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

uint32_t pgd__jutf8_next(const char *p, size_t n, size_t *len)
{
    uint32_t cp;
    *len = pgd__utf8_next(p, n, &cp);
    if (*len)
        return cp;
    *len = 1;
    return (unsigned char)p[0];
}

size_t pgd__jutf8_count(const char *p, size_t n)
{
    size_t count = 0, i = 0, len;
    while (i < n) {
        if ((unsigned char)p[i] < 0x80) {
            i++;
        } else {
            pgd__jutf8_next(p + i, n - i, &len);
            i += len;
        }
        count++;
    }
    return count;
}

size_t pgd__jutf8_offset(const char *p, size_t n, size_t idx)
{
    size_t i = 0, len;
    while (idx > 0 && i < n) {
        pgd__jutf8_next(p + i, n - i, &len);
        i += len;
        idx--;
    }
    return i;
}

bool pgd__jis_space(uint32_t cp)
{
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E:
    case 0x1F: case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

/* ---- constructors ----------------------------------------------------------------------- */

struct pgd__jv pgd__j_none = { .kind = PGD__J_NONE };
struct pgd__jv pgd__j_true = { .kind = PGD__J_BOOL, .b = true };
struct pgd__jv pgd__j_false = { .kind = PGD__J_BOOL, .b = false };
struct pgd__jv pgd__j_undef = { .kind = PGD__J_UNDEF };

struct pgd__jv *pgd__jv_int(struct pgd__jarena *a, int64_t i)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_INT;
    v->i = i;
    return v;
}

struct pgd__jv *pgd__jv_float(struct pgd__jarena *a, double f)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_FLOAT;
    v->f = f;
    return v;
}

struct pgd__jv *pgd__jv_bool(bool b)
{
    return b ? &pgd__j_true : &pgd__j_false;
}

struct pgd__jv *pgd__jv_str_nocopy(struct pgd__jarena *a, const char *p, size_t n)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_STR;
    v->s.p = n ? p : "";
    v->s.n = n;
    return v;
}

struct pgd__jv *pgd__jv_str(struct pgd__jarena *a, const char *p, size_t n)
{
    return pgd__jv_str_nocopy(a, n ? pgd__jstrndup(a, p, n) : "", n);
}

struct pgd__jv *pgd__jv_cstr(struct pgd__jarena *a, const char *s)
{
    return pgd__jv_str(a, s, strlen(s));
}

struct pgd__jv *pgd__jv_list(struct pgd__jarena *a, size_t cap)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_LIST;
    if (cap) {
        v->l.v = pgd__jalloc(a, cap * sizeof *v->l.v);
        v->l.cap = cap;
    }
    return v;
}

struct pgd__jv *pgd__jv_tuple2(struct pgd__jarena *a, struct pgd__jv *x, struct pgd__jv *y)
{
    struct pgd__jv *t = pgd__jv_list(a, 2);
    t->l.tuple = true;
    t->l.v[0] = x;
    t->l.v[1] = y;
    t->l.n = 2;
    return t;
}

struct pgd__jv *pgd__jv_dict(struct pgd__jarena *a, size_t cap)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_DICT;
    if (cap) {
        v->d.k = pgd__jalloc(a, cap * sizeof *v->d.k);
        v->d.v = pgd__jalloc(a, cap * sizeof *v->d.v);
        v->d.cap = cap;
    }
    return v;
}

struct pgd__jv *pgd__jv_undef(struct pgd__jarena *a, const char *hint)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_UNDEF;
    v->u.hint = hint;
    return v;
}

struct pgd__jv *pgd__jv_func(struct pgd__jarena *a, pgd__jfn fn, struct pgd__jv *self,
                             const char *name)
{
    struct pgd__jv *v = pgd__jalloc(a, sizeof *v);
    v->kind = PGD__J_FUNC;
    v->call.fn = fn;
    v->call.self = self;
    v->call.name = name;
    return v;
}

void pgd__jlist_push(struct pgd__jarena *a, struct pgd__jv *l, struct pgd__jv *x)
{
    pgd__jreserve(a, l->l.v, l->l.cap, l->l.n + 1, 4);
    l->l.v[l->l.n++] = x;
}

struct pgd__jv *pgd__jdict_get(const struct pgd__jv *d, const struct pgd__jv *key)
{
    for (size_t i = 0; i < d->d.n; i++)
        if (pgd__jv_eq(d->d.k[i], key))
            return d->d.v[i];
    return NULL;
}

struct pgd__jv *pgd__jdict_gets(const struct pgd__jv *d, const char *key, size_t n)
{
    for (size_t i = 0; i < d->d.n; i++) {
        const struct pgd__jv *k = d->d.k[i];
        if (k->kind == PGD__J_STR && k->s.n == n && memcmp(k->s.p, key, n) == 0)
            return d->d.v[i];
    }
    return NULL;
}

void pgd__jdict_set(struct pgd__jarena *a, struct pgd__jv *d, struct pgd__jv *key,
                    struct pgd__jv *val)
{
    for (size_t i = 0; i < d->d.n; i++)
        if (pgd__jv_eq(d->d.k[i], key)) {
            d->d.v[i] = val;
            return;
        }
    /* Keys and values share one capacity: both grow from the same old value to the same
     * new one. */
    size_t cap = d->d.cap;
    pgd__jreserve(a, d->d.k, cap, d->d.n + 1, 4);
    pgd__jreserve(a, d->d.v, d->d.cap, d->d.n + 1, 4);
    d->d.k[d->d.n] = key;
    d->d.v[d->d.n] = val;
    d->d.n++;
}

/* ---- Python semantics ------------------------------------------------------------------- */

bool pgd__jv_truthy(const struct pgd__jv *v)
{
    switch (v->kind) {
    case PGD__J_UNDEF: case PGD__J_NONE: return false;
    case PGD__J_BOOL: return v->b;
    case PGD__J_INT: return v->i != 0;
    case PGD__J_FLOAT: return v->f != 0.0;
    case PGD__J_STR: return v->s.n != 0;
    case PGD__J_LIST: return v->l.n != 0;
    case PGD__J_DICT: return v->d.n != 0;
    default: return true;
    }
}

bool pgd__jv_is_num(const struct pgd__jv *v)
{
    return v->kind == PGD__J_BOOL || v->kind == PGD__J_INT || v->kind == PGD__J_FLOAT;
}

double pgd__jv_num(const struct pgd__jv *v)
{
    switch (v->kind) {
    case PGD__J_BOOL: return v->b;
    case PGD__J_INT: return (double)v->i;
    case PGD__J_FLOAT: return v->f;
    default: return 0;
    }
}

static int64_t as_int(const struct pgd__jv *v)
{
    return v->kind == PGD__J_BOOL ? (int64_t)v->b : v->i;
}

#define MAX_NEST 200   /* deeper (or cyclic) values compare unequal and repr as "..." */

static bool eq_d(const struct pgd__jv *x, const struct pgd__jv *y, int depth)
{
    if (x == y)
        return true;
    if (depth > MAX_NEST)
        return false;
    if (pgd__jv_is_num(x) && pgd__jv_is_num(y)) {
        if (x->kind != PGD__J_FLOAT && y->kind != PGD__J_FLOAT)
            return as_int(x) == as_int(y);
        return pgd__jv_num(x) == pgd__jv_num(y);
    }
    if (x->kind != y->kind)
        return false;
    switch (x->kind) {
    case PGD__J_UNDEF: case PGD__J_NONE: return true;
    case PGD__J_STR: return x->s.n == y->s.n && memcmp(x->s.p, y->s.p, x->s.n) == 0;
    case PGD__J_LIST:
        if (x->l.tuple != y->l.tuple || x->l.n != y->l.n)
            return false;
        for (size_t i = 0; i < x->l.n; i++)
            if (!eq_d(x->l.v[i], y->l.v[i], depth + 1))
                return false;
        return true;
    case PGD__J_DICT:
        if (x->d.n != y->d.n)
            return false;
        for (size_t i = 0; i < x->d.n; i++) {
            const struct pgd__jv *o = pgd__jdict_get(y, x->d.k[i]);
            if (!o || !eq_d(x->d.v[i], o, depth + 1))
                return false;
        }
        return true;
    case PGD__J_FUNC:
        return x->call.fn == y->call.fn && x->call.self == y->call.self;
    default:
        return false;   /* identity, checked above */
    }
}

bool pgd__jv_eq(const struct pgd__jv *x, const struct pgd__jv *y)
{
    return eq_d(x, y, 0);
}

static bool cmp_d(const struct pgd__jv *x, const struct pgd__jv *y, int *out, int depth)
{
    if (depth > MAX_NEST)
        return false;
    if (pgd__jv_is_num(x) && pgd__jv_is_num(y)) {
        if (x->kind != PGD__J_FLOAT && y->kind != PGD__J_FLOAT) {
            int64_t a = as_int(x), b = as_int(y);
            *out = a < b ? -1 : a > b;
        } else {
            double a = pgd__jv_num(x), b = pgd__jv_num(y);
            *out = a < b ? -1 : a > b ? 1 : 0;   /* NaN compares as "equal": both < and > false */
            if (isnan(a) || isnan(b))
                *out = 2;   /* unordered */
        }
        return true;
    }
    if (x->kind == PGD__J_STR && y->kind == PGD__J_STR) {
        size_t n = x->s.n < y->s.n ? x->s.n : y->s.n;
        int c = memcmp(x->s.p, y->s.p, n);
        *out = c < 0 ? -1 : c > 0 ? 1 : x->s.n < y->s.n ? -1 : x->s.n > y->s.n;
        return true;
    }
    if (x->kind == PGD__J_LIST && y->kind == PGD__J_LIST && x->l.tuple == y->l.tuple) {
        size_t n = x->l.n < y->l.n ? x->l.n : y->l.n;
        for (size_t i = 0; i < n; i++) {
            if (eq_d(x->l.v[i], y->l.v[i], depth + 1))
                continue;
            return cmp_d(x->l.v[i], y->l.v[i], out, depth + 1);
        }
        *out = x->l.n < y->l.n ? -1 : x->l.n > y->l.n;
        return true;
    }
    return false;
}

bool pgd__jv_cmp(const struct pgd__jv *x, const struct pgd__jv *y, int *out)
{
    return cmp_d(x, y, out, 0);
}

const char *pgd__jv_typename(const struct pgd__jv *v)
{
    switch (v->kind) {
    case PGD__J_UNDEF: return "Undefined";
    case PGD__J_NONE: return "NoneType";
    case PGD__J_BOOL: return "bool";
    case PGD__J_INT: return "int";
    case PGD__J_FLOAT: return "float";
    case PGD__J_STR: return "str";
    case PGD__J_LIST: return v->l.tuple ? "tuple" : "list";
    case PGD__J_DICT: return "dict";
    case PGD__J_NS: return "Namespace";
    case PGD__J_MACRO: return "Macro";
    case PGD__J_FUNC: return "builtin_function_or_method";
    case PGD__J_LOOP: return "LoopContext";
    }
    return "object";
}

/* Python's sorted() is stable (the sort, dictsort and unique filters rely on it): a bottom-up
 * merge sort, ties keep their order. */
void pgd__jsort(struct pgd__jarena *ar, struct pgd__jv **v, size_t n,
                int (*cmp)(void *ud, const struct pgd__jv *x, const struct pgd__jv *y), void *ud)
{
    if (n < 2)
        return;
    struct pgd__jv **tmp = pgd__jalloc(ar, n * sizeof *tmp);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = cmp(ud, v[j], v[i]) < 0 ? v[j++] : v[i++];
            while (i < mid)
                tmp[k++] = v[i++];
            while (j < hi)
                tmp[k++] = v[j++];
        }
        memcpy(v, tmp, n * sizeof *v);
    }
}

/* ---- str() and repr() ------------------------------------------------------------------- */

void pgd__jfloat_repr(double f, char *out, size_t outlen)
{
    if (isnan(f)) {
        snprintf(out, outlen, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(out, outlen, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp is [-]d[.ddd]e[+-]XX: split it into digits and a decimal exponent */
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    char res[64];
    size_t r = 0;
    if (neg)
        res[r++] = '-';
    if (exp >= -5 + 1 && exp < 16) {   /* Python: fixed when -4 <= exp < 16 */
        int decpt = exp + 1;
        if (decpt <= 0) {
            res[r++] = '0';
            res[r++] = '.';
            for (int i = 0; i < -decpt; i++)
                res[r++] = '0';
            for (size_t i = 0; i < nd; i++)
                res[r++] = digits[i];
        } else if ((size_t)decpt >= nd) {
            for (size_t i = 0; i < nd; i++)
                res[r++] = digits[i];
            for (size_t i = nd; i < (size_t)decpt; i++)
                res[r++] = '0';
            res[r++] = '.';
            res[r++] = '0';
        } else {
            for (size_t i = 0; i < nd; i++) {
                if (i == (size_t)decpt)
                    res[r++] = '.';
                res[r++] = digits[i];
            }
        }
        res[r] = '\0';
    } else {
        res[r++] = digits[0];
        if (nd > 1) {
            res[r++] = '.';
            for (size_t i = 1; i < nd; i++)
                res[r++] = digits[i];
        }
        snprintf(res + r, sizeof res - r, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    snprintf(out, outlen, "%s", res);
}

static bool is_printable(uint32_t cp)
{
    if (cp == ' ')
        return true;
    if (cp < 0x20 || cp == 0x7F)
        return false;
    if (cp < 0x7F)
        return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static void repr_str(struct pgd__jarena *a, struct pgd__jbuf *b, const char *s, size_t n)
{
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    pgd__jbuf_putc(a, b, q);
    size_t i = 0, len;
    while (i < n) {
        uint32_t cp = pgd__jutf8_next(s + i, n - i, &len);
        if (cp == (uint32_t)q || cp == '\\') {
            pgd__jbuf_putc(a, b, '\\');
            pgd__jbuf_putc(a, b, (char)cp);
        } else if (cp == '\n') {
            pgd__jbuf_puts(a, b, "\\n");
        } else if (cp == '\r') {
            pgd__jbuf_puts(a, b, "\\r");
        } else if (cp == '\t') {
            pgd__jbuf_puts(a, b, "\\t");
        } else if (!is_printable(cp)) {
            if (cp < 0x100)
                pgd__jbuf_printf(a, b, "\\x%02x", cp);
            else if (cp < 0x10000)
                pgd__jbuf_printf(a, b, "\\u%04x", cp);
            else
                pgd__jbuf_printf(a, b, "\\U%08x", cp);
        } else {
            pgd__jbuf_put(a, b, s + i, len);
        }
        i += len;
    }
    pgd__jbuf_putc(a, b, q);
}

static void repr_d(struct pgd__jarena *a, struct pgd__jbuf *b, const struct pgd__jv *v, int d)
{
    if (d > MAX_NEST && (v->kind == PGD__J_LIST || v->kind == PGD__J_DICT ||
                         v->kind == PGD__J_NS)) {
        pgd__jbuf_puts(a, b, "...");
        return;
    }
    switch (v->kind) {
    case PGD__J_STR:
        repr_str(a, b, v->s.p, v->s.n);
        return;
    case PGD__J_UNDEF:
        pgd__jbuf_puts(a, b, "Undefined");
        return;
    case PGD__J_LIST:
        pgd__jbuf_putc(a, b, v->l.tuple ? '(' : '[');
        for (size_t i = 0; i < v->l.n; i++) {
            if (i)
                pgd__jbuf_puts(a, b, ", ");
            repr_d(a, b, v->l.v[i], d + 1);
        }
        if (v->l.tuple && v->l.n == 1)
            pgd__jbuf_putc(a, b, ',');
        pgd__jbuf_putc(a, b, v->l.tuple ? ')' : ']');
        return;
    case PGD__J_DICT:
    case PGD__J_NS:
        /* a namespace prints as Jinja's Namespace does: its dict inside <Namespace ...> */
        pgd__jbuf_puts(a, b, v->kind == PGD__J_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v->d.n; i++) {
            if (i)
                pgd__jbuf_puts(a, b, ", ");
            repr_d(a, b, v->d.k[i], d + 1);
            pgd__jbuf_puts(a, b, ": ");
            repr_d(a, b, v->d.v[i], d + 1);
        }
        pgd__jbuf_puts(a, b, v->kind == PGD__J_NS ? "}>" : "}");
        return;
    default:
        pgd__jv_str_to(a, b, v);
    }
}

void pgd__jv_repr_to(struct pgd__jarena *a, struct pgd__jbuf *b, const struct pgd__jv *v)
{
    repr_d(a, b, v, 0);
}

void pgd__jv_str_to(struct pgd__jarena *a, struct pgd__jbuf *b, const struct pgd__jv *v)
{
    char tmp[64];
    switch (v->kind) {
    case PGD__J_UNDEF: return;
    case PGD__J_NONE: pgd__jbuf_puts(a, b, "None"); return;
    case PGD__J_BOOL: pgd__jbuf_puts(a, b, v->b ? "True" : "False"); return;
    case PGD__J_INT: pgd__jbuf_printf(a, b, "%lld", (long long)v->i); return;
    case PGD__J_FLOAT:
        pgd__jfloat_repr(v->f, tmp, sizeof tmp);
        pgd__jbuf_puts(a, b, tmp);
        return;
    case PGD__J_STR: pgd__jbuf_put(a, b, v->s.p, v->s.n); return;
    case PGD__J_LIST: case PGD__J_DICT: case PGD__J_NS:
        pgd__jv_repr_to(a, b, v);
        return;
    case PGD__J_MACRO:
        pgd__jbuf_printf(a, b, "<Macro '%s'>", v->m->def->name ? v->m->def->name : "caller");
        return;
    case PGD__J_FUNC:
        pgd__jbuf_printf(a, b, "<built-in function %s>", v->call.name);
        return;
    case PGD__J_LOOP:
        pgd__jbuf_printf(a, b, "<LoopContext %zu/%zu>", v->loop->index0 + 1, v->loop->length);
        return;
    }
}

struct pgd__jv *pgd__jv_to_str(struct pgd__jarena *a, struct pgd__jv *v)
{
    if (v->kind == PGD__J_STR)
        return v;
    struct pgd__jbuf b = { 0 };
    pgd__jv_str_to(a, &b, v);
    return pgd__jv_str_nocopy(a, b.p, b.n);
}
