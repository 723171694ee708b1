/* Python's str for chat templates: the methods of str values (strip, split, replace, find,
 * case mapping, isX ...), the string operations filters share with them (pgd__jstr_*), and
 * printf-style `str % args` formatting. Python semantics on code points, not bytes. */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Code points of a string. */
uint32_t *pgd__jstr_decode(struct pgd__jctx *c, const struct pgd__jv *s, size_t *n)
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

struct pgd__jv *pgd__jstr_encode(struct pgd__jctx *c, const uint32_t *cps, size_t n)
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
    uint32_t *cps = pgd__jstr_decode(c, s, &n), *set = NULL;
    if (chars)
        set = pgd__jstr_decode(c, chars, &ns);
    size_t lo = 0, hi = n;
    if (which != 2)
        while (lo < hi && (set ? in_set(cps[lo], set, ns) : pgd__jis_space(cps[lo])))
            lo++;
    if (which != 1)
        while (hi > lo && (set ? in_set(cps[hi - 1], set, ns) : pgd__jis_space(cps[hi - 1])))
            hi--;
    if (lo == 0 && hi == n)
        return s;
    return pgd__jstr_encode(c, cps + lo, hi - lo);
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
    uint32_t *cps = pgd__jstr_decode(c, s, &n);
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
                pgd__jlist_push(c->ar, out, pgd__jstr_encode(c, cps + i, j - i));
                break;
            }
            while (j < n && !pgd__jis_space(cps[j]))
                j++;
            pgd__jlist_push(c->ar, out, pgd__jstr_encode(c, cps + i, j - i));
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
            pgd__jlist_push(c->ar, out, pgd__jstr_encode(c, cps + j, i - j));
            break;
        }
        while (j > 0 && !pgd__jis_space(cps[j - 1]))
            j--;
        pgd__jlist_push(c->ar, out, pgd__jstr_encode(c, cps + j, i - j));
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
    uint32_t *cps = pgd__jstr_decode(c, s, &n);
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
    return pgd__jstr_encode(c, res, k);
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
    return split(c, self, pgd__jarg_str(c, a, 0, "sep", at), pgd__jarg_int(c, a, 1, "maxsplit", -1, at),
                 false, at);
}

static struct pgd__jv *m_rsplit(struct pgd__jctx *c, struct pgd__jv *self,
                                const struct pgd__jargs *a, long at)
{
    return split(c, self, pgd__jarg_str(c, a, 0, "sep", at), pgd__jarg_int(c, a, 1, "maxsplit", -1, at),
                 true, at);
}

static struct pgd__jv *m_splitlines(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at)
{
    struct pgd__jv *keep = pgd__jarg(a, 0, "keepends");
    bool keepends = keep && pgd__jv_truthy(keep);
    size_t n;
    uint32_t *cps = pgd__jstr_decode(c, self, &n);
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
        pgd__jlist_push(c->ar, out, pgd__jstr_encode(c, cps + start, (keepends ? eol : i) - start));
        start = i = eol;
        pgd__jtick(c, at);
    }
    if (start < n)
        pgd__jlist_push(c->ar, out, pgd__jstr_encode(c, cps + start, n - start));
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
    return pgd__jstr_replace(c, self, old, new_, pgd__jarg_int(c, a, 2, "count", -1, at), at);
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
    uint32_t *cps = pgd__jstr_decode(c, self, &n);
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

static struct pgd__jv *m_str_index(struct pgd__jctx *c, struct pgd__jv *self,
                                   const struct pgd__jargs *a, long at)
{
    if (!pgd__jarg(a, 0, NULL))
        pgd__jerr(c, at, "index expected at least 1 argument, got 0");
    struct pgd__jv *r = find_common(c, self, a, at, false);
    if (r->i < 0)
        pgd__jerr(c, at, "substring not found");   /* Python's str.index raises ValueError */
    return r;
}

const struct pgd__jmethod_def pgd__jstr_methods[] = {
    { "strip", m_strip }, { "lstrip", m_lstrip }, { "rstrip", m_rstrip },
    { "split", m_split }, { "rsplit", m_rsplit }, { "splitlines", m_splitlines },
    { "startswith", m_startswith }, { "endswith", m_endswith }, { "upper", m_upper },
    { "lower", m_lower }, { "title", m_title }, { "capitalize", m_capitalize },
    { "replace", m_replace }, { "find", m_find }, { "rfind", m_rfind },
    { "index", m_str_index }, { "count", m_str_count }, { "join", m_join },
    { "isdigit", m_isdigit }, { "isalpha", m_isalpha }, { "isalnum", m_isalnum },
    { "isspace", m_isspace }, { "islower", m_islower }, { "isupper", m_isupper },
};

const size_t pgd__jstr_nmethods = sizeof pgd__jstr_methods / sizeof pgd__jstr_methods[0];

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

