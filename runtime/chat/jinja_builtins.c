/* Jinja builtins other than filters and tests: methods of str, dict and list values, the
 * globals a chat template sees (range, dict, namespace, raise_exception, strftime_now),
 * Python slicing and printf-style `%` formatting. */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* ---- arguments -------------------------------------------------------------------------- */

struct pgd__jv *pgd__jarg(const struct pgd__jargs *a, size_t i, const char *kw)
{
    if (i < a->npos)
        return a->pos[i];
    if (kw)
        for (size_t k = 0; k < a->nkw; k++)
            if (!strcmp(a->kwn[k], kw))
                return a->kwv[k];
    return NULL;
}

const struct pgd__jv *pgd__jarg_str(struct pgd__jctx *c, const struct pgd__jargs *a, size_t i,
                                    const char *kw, long at)
{
    struct pgd__jv *v = pgd__jarg(a, i, kw);
    if (!v || v->kind == PGD__J_NONE)
        return NULL;
    if (v->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, v);
    if (v->kind != PGD__J_STR)
        pgd__jerr(c, at, "argument %s must be str, not %s", kw ? kw : "", pgd__jv_typename(v));
    return v;
}

static int64_t arg_int(struct pgd__jctx *c, const struct pgd__jargs *a, size_t i, const char *kw,
                       int64_t def, long at)
{
    struct pgd__jv *v = pgd__jarg(a, i, kw);
    if (!v || v->kind == PGD__J_NONE)
        return def;
    if (v->kind == PGD__J_INT)
        return v->i;
    if (v->kind == PGD__J_BOOL)
        return v->b;
    if (v->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, v);
    pgd__jerr(c, at, "'%s' object cannot be interpreted as an integer", pgd__jv_typename(v));
}

/* ---- strings ---------------------------------------------------------------------------- */

/* Code points of a string. */
static uint32_t *decode(struct pgd__jctx *c, const struct pgd__jv *s, size_t *n)
{
    uint32_t *cps = pgd__jalloc(c->ar, (s->s.n + 1) * sizeof *cps);
    size_t k = 0, i = 0, len;
    while (i < s->s.n) {
        cps[k++] = pgd__jutf8_next(s->s.p + i, s->s.n - i, &len);
        i += len;
    }
    *n = k;
    return cps;
}

static struct pgd__jv *encode(struct pgd__jctx *c, const uint32_t *cps, size_t n)
{
    char *p = pgd__jalloc(c->ar, n * 4 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += pgd__utf8_put(cps[i], p + k);
    return pgd__jv_str_nocopy(c->ar, p, k);
}

static bool in_set(uint32_t cp, const uint32_t *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == cp)
            return true;
    return false;
}

/* str.strip / lstrip / rstrip: which = 0 both, 1 left, 2 right. */
struct pgd__jv *pgd__jstr_strip(struct pgd__jctx *c, struct pgd__jv *s,
                                const struct pgd__jv *chars, int which)
{
    size_t n, ns = 0;
    uint32_t *cps = decode(c, s, &n), *set = NULL;
    if (chars)
        set = decode(c, chars, &ns);
    size_t lo = 0, hi = n;
    if (which != 2)
        while (lo < hi && (set ? in_set(cps[lo], set, ns) : pgd__jis_space(cps[lo])))
            lo++;
    if (which != 1)
        while (hi > lo && (set ? in_set(cps[hi - 1], set, ns) : pgd__jis_space(cps[hi - 1])))
            hi--;
    if (lo == 0 && hi == n)
        return s;
    return encode(c, cps + lo, hi - lo);
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn))
            return h + i;
    return NULL;
}

static const char *rfind_bytes(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn > hn)
        return NULL;
    for (size_t i = hn - nn + 1; i > 0; i--)
        if (!memcmp(h + i - 1, nd, nn))
            return h + i - 1;
    return NULL;
}

/* str.split(sep, maxsplit) (rsplit when right). */
static struct pgd__jv *split(struct pgd__jctx *c, struct pgd__jv *s, const struct pgd__jv *sep,
                             int64_t maxsplit, bool right, long at)
{
    struct pgd__jv *out = pgd__jv_list(c->ar, 0);
    if (sep) {
        if (sep->s.n == 0)
            pgd__jerr(c, at, "empty separator");
        if (!right) {
            const char *p = s->s.p, *end = s->s.p + s->s.n;
            for (;;) {
                pgd__jtick(c, at);
                const char *hit = maxsplit == 0 ? NULL
                                                : find_bytes(p, (size_t)(end - p), sep->s.p, sep->s.n);
                if (!hit) {
                    pgd__jlist_push(c->ar, out, pgd__jv_str_nocopy(c->ar, p, (size_t)(end - p)));
                    break;
                }
                pgd__jlist_push(c->ar, out, pgd__jv_str_nocopy(c->ar, p, (size_t)(hit - p)));
                p = hit + sep->s.n;
                if (maxsplit > 0)
                    maxsplit--;
            }
            return out;
        }
        /* rsplit: collect from the right, then reverse */
        const char *end = s->s.p + s->s.n;
        for (;;) {
            pgd__jtick(c, at);
            const char *hit = maxsplit == 0 ? NULL
                                            : rfind_bytes(s->s.p, (size_t)(end - s->s.p), sep->s.p,
                                                          sep->s.n);
            if (!hit) {
                pgd__jlist_push(c->ar, out,
                                pgd__jv_str_nocopy(c->ar, s->s.p, (size_t)(end - s->s.p)));
                break;
            }
            const char *from = hit + sep->s.n;
            pgd__jlist_push(c->ar, out, pgd__jv_str_nocopy(c->ar, from, (size_t)(end - from)));
            end = hit;
            if (maxsplit > 0)
                maxsplit--;
        }
        for (size_t i = 0; i < out->l.n / 2; i++) {
            struct pgd__jv *t = out->l.v[i];
            out->l.v[i] = out->l.v[out->l.n - 1 - i];
            out->l.v[out->l.n - 1 - i] = t;
        }
        return out;
    }
    /* whitespace split: runs of whitespace separate, empty strings dropped */
    size_t n;
    uint32_t *cps = decode(c, s, &n);
    if (!right) {
        size_t i = 0;
        while (i < n) {
            while (i < n && pgd__jis_space(cps[i]))
                i++;
            if (i >= n)
                break;
            size_t j = i;
            if (maxsplit == 0) {
                j = n;
                while (j > i && pgd__jis_space(cps[j - 1]))
                    j--;
                pgd__jlist_push(c->ar, out, encode(c, cps + i, j - i));
                break;
            }
            while (j < n && !pgd__jis_space(cps[j]))
                j++;
            pgd__jlist_push(c->ar, out, encode(c, cps + i, j - i));
            if (maxsplit > 0)
                maxsplit--;
            i = j;
        }
        return out;
    }
    size_t i = n;
    while (i > 0) {
        while (i > 0 && pgd__jis_space(cps[i - 1]))
            i--;
        if (i == 0)
            break;
        size_t j = i;
        if (maxsplit == 0) {
            j = 0;
            while (j < i && pgd__jis_space(cps[j]))
                j++;
            pgd__jlist_push(c->ar, out, encode(c, cps + j, i - j));
            break;
        }
        while (j > 0 && !pgd__jis_space(cps[j - 1]))
            j--;
        pgd__jlist_push(c->ar, out, encode(c, cps + j, i - j));
        if (maxsplit > 0)
            maxsplit--;
        i = j;
    }
    for (size_t k = 0; k < out->l.n / 2; k++) {
        struct pgd__jv *t = out->l.v[k];
        out->l.v[k] = out->l.v[out->l.n - 1 - k];
        out->l.v[out->l.n - 1 - k] = t;
    }
    return out;
}

static bool is_cased(uint32_t cp)
{
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
           cat == UTF8PROC_CATEGORY_LT;
}

/* Python's full (one-to-many) case mappings from Unicode's SpecialCasing.txt that apply
 * unconditionally (Greek iota-subscript forms and the final-sigma rule are not covered). */
static const struct {
    uint32_t cp;
    uint32_t upper[3], title[3];
} special_case[] = {
    { 0x00DF, { 'S', 'S' }, { 'S', 's' } },
    { 0x0149, { 0x02BC, 'N' }, { 0x02BC, 'N' } },
    { 0x01F0, { 'J', 0x030C }, { 'J', 0x030C } },
    { 0x0390, { 0x0399, 0x0308, 0x0301 }, { 0x0399, 0x0308, 0x0301 } },
    { 0x03B0, { 0x03A5, 0x0308, 0x0301 }, { 0x03A5, 0x0308, 0x0301 } },
    { 0x0587, { 0x0535, 0x0552 }, { 0x0535, 0x0582 } },
    { 0x1E96, { 'H', 0x0331 }, { 'H', 0x0331 } },
    { 0x1E97, { 'T', 0x0308 }, { 'T', 0x0308 } },
    { 0x1E98, { 'W', 0x030A }, { 'W', 0x030A } },
    { 0x1E99, { 'Y', 0x030A }, { 'Y', 0x030A } },
    { 0x1E9A, { 'A', 0x02BE }, { 'A', 0x02BE } },
    { 0xFB00, { 'F', 'F' }, { 'F', 'f' } },
    { 0xFB01, { 'F', 'I' }, { 'F', 'i' } },
    { 0xFB02, { 'F', 'L' }, { 'F', 'l' } },
    { 0xFB03, { 'F', 'F', 'I' }, { 'F', 'f', 'i' } },
    { 0xFB04, { 'F', 'F', 'L' }, { 'F', 'f', 'l' } },
    { 0xFB05, { 'S', 'T' }, { 'S', 't' } },
    { 0xFB06, { 'S', 'T' }, { 'S', 't' } },
    { 0xFB13, { 0x0544, 0x0546 }, { 0x0544, 0x0576 } },
    { 0xFB14, { 0x0544, 0x0535 }, { 0x0544, 0x0565 } },
    { 0xFB15, { 0x0544, 0x053B }, { 0x0544, 0x056B } },
    { 0xFB16, { 0x054E, 0x0546 }, { 0x054E, 0x0576 } },
    { 0xFB17, { 0x0544, 0x053D }, { 0x0544, 0x056D } },
};

/* Appends the mapping of cp (upper when title is false) to out; returns the count. */
static size_t map_case(uint32_t cp, bool title, uint32_t *out)
{
    for (size_t i = 0; i < sizeof special_case / sizeof special_case[0]; i++)
        if (special_case[i].cp == cp) {
            const uint32_t *m = title ? special_case[i].title : special_case[i].upper;
            size_t k = 0;
            while (k < 3 && m[k])
                out[k] = m[k], k++;
            return k;
        }
    out[0] = (uint32_t)(title ? utf8proc_totitle((utf8proc_int32_t)cp)
                              : utf8proc_toupper((utf8proc_int32_t)cp));
    return 1;
}

static size_t map_lower(uint32_t cp, uint32_t *out)
{
    if (cp == 0x0130) {   /* capital I with dot above: i + combining dot */
        out[0] = 'i';
        out[1] = 0x0307;
        return 2;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    return 1;
}

/* mode: 'u' upper, 'l' lower, 't' title (Python str.title), 'c' capitalize */
struct pgd__jv *pgd__jstr_case(struct pgd__jctx *c, struct pgd__jv *s, char mode)
{
    size_t n, k = 0;
    uint32_t *cps = decode(c, s, &n);
    uint32_t *res = pgd__jalloc(c->ar, (3 * n + 1) * sizeof *res);
    bool prev_cased = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = cps[i];
        switch (mode) {
        case 'u': k += map_case(cp, false, res + k); break;
        case 'l': k += map_lower(cp, res + k); break;
        case 'c': k += i == 0 ? map_case(cp, true, res + k) : map_lower(cp, res + k); break;
        case 't': {
            bool cased = is_cased(cp);
            k += prev_cased ? map_lower(cp, res + k) : map_case(cp, true, res + k);
            prev_cased = cased;
            break;
        }
        }
    }
    return encode(c, res, k);
}

struct pgd__jv *pgd__jstr_replace(struct pgd__jctx *c, struct pgd__jv *s,
                                  const struct pgd__jv *old, const struct pgd__jv *new_,
                                  int64_t count, long at)
{
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    if (old->s.n == 0) {
        /* inserts new_ before every character and at the end */
        size_t i = 0, len;
        while (count != 0) {
            pgd__jbuf_put(c->ar, &b, new_->s.p, new_->s.n);
            if (count > 0)
                count--;
            if (i >= s->s.n)
                break;
            pgd__jutf8_next(s->s.p + i, s->s.n - i, &len);
            pgd__jbuf_put(c->ar, &b, s->s.p + i, len);
            i += len;
            pgd__jtick(c, at);
        }
        if (i < s->s.n)
            pgd__jbuf_put(c->ar, &b, s->s.p + i, s->s.n - i);
        return pgd__jv_str_nocopy(c->ar, b.p, b.n);
    }
    const char *p = s->s.p, *end = s->s.p + s->s.n;
    while (count != 0) {
        const char *hit = find_bytes(p, (size_t)(end - p), old->s.p, old->s.n);
        if (!hit)
            break;
        pgd__jbuf_put(c->ar, &b, p, (size_t)(hit - p));
        pgd__jbuf_put(c->ar, &b, new_->s.p, new_->s.n);
        p = hit + old->s.n;
        if (count > 0)
            count--;
        pgd__jtick(c, at);
    }
    pgd__jbuf_put(c->ar, &b, p, (size_t)(end - p));
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

static bool prefix_match(const struct pgd__jv *s, const struct pgd__jv *p, bool suffix)
{
    if (p->s.n > s->s.n)
        return false;
    return !memcmp(s->s.p + (suffix ? s->s.n - p->s.n : 0), p->s.p, p->s.n);
}

static struct pgd__jv *m_starts_ends(struct pgd__jctx *c, struct pgd__jv *self,
                                     const struct pgd__jargs *a, long at, bool suffix)
{
    struct pgd__jv *p = pgd__jarg(a, 0, NULL);
    if (!p)
        pgd__jerr(c, at, "%s() takes at least 1 argument (0 given)",
                  suffix ? "endswith" : "startswith");
    struct pgd__jv *s = self;
    if (a->npos > 1) {
        /* start and end bound the string first (code point indices) */
        struct pgd__jv *st = a->pos[1], *en = a->npos > 2 ? a->pos[2] : &pgd__j_none;
        s = pgd__jslice(c, self, st, en, &pgd__j_none, at);
    }
    if (p->kind == PGD__J_STR)
        return pgd__jv_bool(prefix_match(s, p, suffix));
    if (p->kind == PGD__J_LIST && p->l.tuple) {
        for (size_t i = 0; i < p->l.n; i++) {
            if (p->l.v[i]->kind != PGD__J_STR)
                pgd__jerr(c, at, "tuple for %s must only contain str, not %s",
                          suffix ? "endswith" : "startswith", pgd__jv_typename(p->l.v[i]));
            if (prefix_match(s, p->l.v[i], suffix))
                return &pgd__j_true;
        }
        return &pgd__j_false;
    }
    pgd__jerr(c, at, "%s first arg must be str or a tuple of str, not %s",
              suffix ? "endswith" : "startswith", pgd__jv_typename(p));
}

static struct pgd__jv *m_startswith(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at)
{
    return m_starts_ends(c, self, a, at, false);
}

static struct pgd__jv *m_endswith(struct pgd__jctx *c, struct pgd__jv *self,
                                  const struct pgd__jargs *a, long at)
{
    return m_starts_ends(c, self, a, at, true);
}

static struct pgd__jv *m_strip(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    return pgd__jstr_strip(c, self, pgd__jarg_str(c, a, 0, "chars", at), 0);
}

static struct pgd__jv *m_lstrip(struct pgd__jctx *c, struct pgd__jv *self,
                                const struct pgd__jargs *a, long at)
{
    return pgd__jstr_strip(c, self, pgd__jarg_str(c, a, 0, "chars", at), 1);
}

static struct pgd__jv *m_rstrip(struct pgd__jctx *c, struct pgd__jv *self,
                                const struct pgd__jargs *a, long at)
{
    return pgd__jstr_strip(c, self, pgd__jarg_str(c, a, 0, "chars", at), 2);
}

static struct pgd__jv *m_split(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    return split(c, self, pgd__jarg_str(c, a, 0, "sep", at), arg_int(c, a, 1, "maxsplit", -1, at),
                 false, at);
}

static struct pgd__jv *m_rsplit(struct pgd__jctx *c, struct pgd__jv *self,
                                const struct pgd__jargs *a, long at)
{
    return split(c, self, pgd__jarg_str(c, a, 0, "sep", at), arg_int(c, a, 1, "maxsplit", -1, at),
                 true, at);
}

static struct pgd__jv *m_splitlines(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at)
{
    struct pgd__jv *keep = pgd__jarg(a, 0, "keepends");
    bool keepends = keep && pgd__jv_truthy(keep);
    size_t n;
    uint32_t *cps = decode(c, self, &n);
    struct pgd__jv *out = pgd__jv_list(c->ar, 0);
    size_t i = 0, start = 0;
    while (i < n) {
        uint32_t cp = cps[i];
        bool br = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C ||
                  cp == 0x1D || cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!br) {
            i++;
            continue;
        }
        size_t eol = i + ((cp == '\r' && i + 1 < n && cps[i + 1] == '\n') ? 2 : 1);
        pgd__jlist_push(c->ar, out, encode(c, cps + start, (keepends ? eol : i) - start));
        start = i = eol;
        pgd__jtick(c, at);
    }
    if (start < n)
        pgd__jlist_push(c->ar, out, encode(c, cps + start, n - start));
    return out;
}

static struct pgd__jv *m_upper(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, self, 'u');
}

static struct pgd__jv *m_lower(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, self, 'l');
}

static struct pgd__jv *m_title(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, self, 't');
}

static struct pgd__jv *m_capitalize(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at)
{
    (void)a, (void)at;
    return pgd__jstr_case(c, self, 'c');
}

static struct pgd__jv *m_replace(struct pgd__jctx *c, struct pgd__jv *self,
                                 const struct pgd__jargs *a, long at)
{
    const struct pgd__jv *old = pgd__jarg_str(c, a, 0, NULL, at);
    const struct pgd__jv *new_ = pgd__jarg_str(c, a, 1, NULL, at);
    if (!old || !new_)
        pgd__jerr(c, at, "replace() takes at least 2 arguments");
    return pgd__jstr_replace(c, self, old, new_, arg_int(c, a, 2, "count", -1, at), at);
}

static struct pgd__jv *find_common(struct pgd__jctx *c, struct pgd__jv *self,
                                   const struct pgd__jargs *a, long at, bool right)
{
    const struct pgd__jv *sub = pgd__jarg_str(c, a, 0, NULL, at);
    if (!sub)
        pgd__jerr(c, at, "find() takes at least 1 argument");
    const char *hit = right ? rfind_bytes(self->s.p, self->s.n, sub->s.p, sub->s.n)
                            : find_bytes(self->s.p, self->s.n, sub->s.p, sub->s.n);
    if (!hit)
        return pgd__jv_int(c->ar, -1);
    return pgd__jv_int(c->ar, (int64_t)pgd__jutf8_count(self->s.p, (size_t)(hit - self->s.p)));
}

static struct pgd__jv *m_find(struct pgd__jctx *c, struct pgd__jv *self,
                              const struct pgd__jargs *a, long at)
{
    return find_common(c, self, a, at, false);
}

static struct pgd__jv *m_rfind(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    return find_common(c, self, a, at, true);
}

static struct pgd__jv *m_str_count(struct pgd__jctx *c, struct pgd__jv *self,
                                   const struct pgd__jargs *a, long at)
{
    const struct pgd__jv *sub = pgd__jarg_str(c, a, 0, NULL, at);
    if (!sub)
        pgd__jerr(c, at, "count() takes at least 1 argument");
    if (sub->s.n == 0)
        return pgd__jv_int(c->ar, (int64_t)pgd__jutf8_count(self->s.p, self->s.n) + 1);
    int64_t k = 0;
    const char *p = self->s.p, *end = p + self->s.n, *hit;
    while ((hit = find_bytes(p, (size_t)(end - p), sub->s.p, sub->s.n))) {
        k++;
        p = hit + sub->s.n;
    }
    return pgd__jv_int(c->ar, k);
}

static struct pgd__jv *m_join(struct pgd__jctx *c, struct pgd__jv *self,
                              const struct pgd__jargs *a, long at)
{
    struct pgd__jv *seq = pgd__jarg(a, 0, NULL);
    if (!seq)
        pgd__jerr(c, at, "join() takes exactly one argument (0 given)");
    size_t n;
    struct pgd__jv **items = pgd__jiter(c, seq, &n, at);
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (items[i]->kind != PGD__J_STR)
            pgd__jerr(c, at, "sequence item %zu: expected str instance, %s found", i,
                      pgd__jv_typename(items[i]));
        if (i)
            pgd__jbuf_put(c->ar, &b, self->s.p, self->s.n);
        pgd__jbuf_put(c->ar, &b, items[i]->s.p, items[i]->s.n);
    }
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

/* str.isX(): kind 'd' digit, 'a' alpha, 'n' alnum, 's' space, 'l' lower, 'u' upper */
static struct pgd__jv *str_is(struct pgd__jctx *c, struct pgd__jv *self, char kind)
{
    size_t n;
    uint32_t *cps = decode(c, self, &n);
    if (n == 0)
        return &pgd__j_false;
    bool any_cased = false;
    for (size_t i = 0; i < n; i++) {
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cps[i]);
        bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        switch (kind) {
        case 'd':
            if (!digit)
                return &pgd__j_false;
            break;
        case 'a':
            if (!alpha)
                return &pgd__j_false;
            break;
        case 'n':
            if (!alpha && !digit && cat != UTF8PROC_CATEGORY_NL && cat != UTF8PROC_CATEGORY_NO)
                return &pgd__j_false;
            break;
        case 's':
            if (!pgd__jis_space(cps[i]))
                return &pgd__j_false;
            break;
        case 'l':
            if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT)
                return &pgd__j_false;
            any_cased |= cat == UTF8PROC_CATEGORY_LL;
            break;
        case 'u':
            if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
                return &pgd__j_false;
            any_cased |= cat == UTF8PROC_CATEGORY_LU;
            break;
        }
    }
    return pgd__jv_bool(kind == 'l' || kind == 'u' ? any_cased : true);
}

#define STR_IS(name, k)                                                                        \
    static struct pgd__jv *name(struct pgd__jctx *c, struct pgd__jv *self,                     \
                                const struct pgd__jargs *a, long at)                           \
    {                                                                                          \
        (void)a, (void)at;                                                                     \
        return str_is(c, self, k);                                                             \
    }
STR_IS(m_isdigit, 'd')
STR_IS(m_isalpha, 'a')
STR_IS(m_isalnum, 'n')
STR_IS(m_isspace, 's')
STR_IS(m_islower, 'l')
STR_IS(m_isupper, 'u')

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

static struct pgd__jv *m_index(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    struct pgd__jv *x = pgd__jarg(a, 0, NULL);
    if (!x)
        pgd__jerr(c, at, "index expected at least 1 argument, got 0");
    if (self->kind == PGD__J_STR) {
        struct pgd__jv *r = find_common(c, self, a, at, false);
        if (r->i < 0)
            pgd__jerr(c, at, "substring not found");
        return r;
    }
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

struct method {
    const char *name;
    pgd__jfn fn;
};

static const struct method str_methods[] = {
    { "strip", m_strip }, { "lstrip", m_lstrip }, { "rstrip", m_rstrip },
    { "split", m_split }, { "rsplit", m_rsplit }, { "splitlines", m_splitlines },
    { "startswith", m_startswith }, { "endswith", m_endswith }, { "upper", m_upper },
    { "lower", m_lower }, { "title", m_title }, { "capitalize", m_capitalize },
    { "replace", m_replace }, { "find", m_find }, { "rfind", m_rfind },
    { "index", m_index }, { "count", m_str_count }, { "join", m_join },
    { "isdigit", m_isdigit }, { "isalpha", m_isalpha }, { "isalnum", m_isalnum },
    { "isspace", m_isspace }, { "islower", m_islower }, { "isupper", m_isupper },
};

static const struct method dict_methods[] = {
    { "items", m_items }, { "keys", m_keys }, { "values", m_values }, { "get", m_get },
    { "copy", m_copy }, { "update", m_unsafe }, { "pop", m_unsafe }, { "popitem", m_unsafe },
    { "clear", m_unsafe }, { "setdefault", m_unsafe },
};

static const struct method list_methods[] = {
    { "index", m_index }, { "count", m_list_count }, { "copy", m_copy },
    { "append", m_unsafe }, { "extend", m_unsafe }, { "insert", m_unsafe },
    { "pop", m_unsafe }, { "remove", m_unsafe }, { "reverse", m_unsafe },
    { "sort", m_unsafe }, { "clear", m_unsafe },
};

struct pgd__jv *pgd__jmethod(struct pgd__jctx *c, struct pgd__jv *self, const char *name)
{
    const struct method *tab;
    size_t n;
    switch (self->kind) {
    case PGD__J_STR: tab = str_methods, n = sizeof str_methods / sizeof *tab; break;
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
        cps = decode(c, obj, &ncp);
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
            return encode(c, cps + lo, count);
        uint32_t *res = pgd__jalloc(c->ar, (count + 1) * sizeof *res);
        for (size_t k = 0; k < count; k++)
            res[k] = cps[lo + (int64_t)k * st];
        return encode(c, res, count);
    }
    struct pgd__jv *l = pgd__jv_list(c->ar, count);
    for (size_t k = 0; k < count; k++)
        l->l.v[k] = obj->l.v[lo + (int64_t)k * st];
    l->l.n = count;
    l->l.tuple = obj->l.tuple;
    return l;
}

/* ---- printf-style formatting (str % args) ----------------------------------------------- */

struct pgd__jv *pgd__jstr_percent(struct pgd__jctx *c, struct pgd__jv *fmt, struct pgd__jv *args,
                                  long at)
{
    struct pgd__jv **items = &args;
    size_t nitems = 1, next = 0;
    bool mapping = args->kind == PGD__J_DICT;
    if (args->kind == PGD__J_LIST && args->l.tuple) {
        items = args->l.v;
        nitems = args->l.n;
    }
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(c->ar, &b, "", 0);
    const char *p = fmt->s.p, *end = p + fmt->s.n;
    while (p < end) {
        const char *pct = memchr(p, '%', (size_t)(end - p));
        if (!pct) {
            pgd__jbuf_put(c->ar, &b, p, (size_t)(end - p));
            break;
        }
        pgd__jbuf_put(c->ar, &b, p, (size_t)(pct - p));
        p = pct + 1;
        struct pgd__jv *val = NULL;
        if (p < end && *p == '(') {
            const char *close = memchr(p, ')', (size_t)(end - p));
            if (!close || !mapping)
                pgd__jerr(c, at, "format requires a mapping");
            val = pgd__jdict_gets(args, p + 1, (size_t)(close - p - 1));
            if (!val)
                pgd__jerr(c, at, "format key not found");
            p = close + 1;
        }
        char spec[32];
        size_t k = 0;
        spec[k++] = '%';
        while (p < end && strchr("-+ 0#", *p) && k < 8)
            spec[k++] = *p++;
        while (p < end && *p >= '0' && *p <= '9' && k < 16)
            spec[k++] = *p++;
        if (p < end && *p == '.') {
            spec[k++] = *p++;
            while (p < end && *p >= '0' && *p <= '9' && k < 24)
                spec[k++] = *p++;
        }
        if (p >= end)
            pgd__jerr(c, at, "incomplete format");
        char conv = *p++;
        if (conv == '%') {
            pgd__jbuf_putc(c->ar, &b, '%');
            continue;
        }
        if (!val) {
            if (next >= nitems)
                pgd__jerr(c, at, "not enough arguments for format string");
            val = items[next++];
        }
        switch (conv) {
        case 's': case 'r': {
            struct pgd__jbuf t = { 0 };
            pgd__jbuf_put(c->ar, &t, "", 0);
            if (conv == 'r')
                pgd__jv_repr_to(c->ar, &t, val);
            else
                pgd__jv_str_to(c->ar, &t, val);
            spec[k++] = 's';
            spec[k] = '\0';
            pgd__jbuf_printf(c->ar, &b, spec, t.p);
            break;
        }
        case 'd': case 'i': case 'x': case 'X': case 'o':
            if (!pgd__jv_is_num(val))
                pgd__jerr(c, at, "%%%c format: a real number is required, not %s", conv,
                          pgd__jv_typename(val));
            spec[k++] = 'l';
            spec[k++] = 'l';
            spec[k++] = conv == 'i' ? 'd' : conv;
            spec[k] = '\0';
            pgd__jbuf_printf(c->ar, &b, spec,
                             (long long)(val->kind == PGD__J_FLOAT ? (int64_t)val->f
                                                                   : val->kind == PGD__J_BOOL
                                                                         ? val->b
                                                                         : val->i));
            break;
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G':
            if (!pgd__jv_is_num(val))
                pgd__jerr(c, at, "must be real number, not %s", pgd__jv_typename(val));
            spec[k++] = conv;
            spec[k] = '\0';
            pgd__jbuf_printf(c->ar, &b, spec, pgd__jv_num(val));
            break;
        default:
            pgd__jerr(c, at, "unsupported format character '%c'", conv);
        }
    }
    if (!mapping && next < nitems)
        pgd__jerr(c, at, "not all arguments converted during string formatting");
    return pgd__jv_str_nocopy(c->ar, b.p, b.n);
}

/* ---- globals ---------------------------------------------------------------------------- */

static struct pgd__jv *g_range(struct pgd__jctx *c, struct pgd__jv *self,
                               const struct pgd__jargs *a, long at)
{
    (void)self;
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) {
        stop = arg_int(c, a, 0, NULL, 0, at);
    } else if (a->npos >= 2) {
        start = arg_int(c, a, 0, NULL, 0, at);
        stop = arg_int(c, a, 1, NULL, 0, at);
        step = arg_int(c, a, 2, NULL, 1, at);
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
