/* What runs before the BPE model: added-token matching, normalizers and pre-tokenizers
 * (Split with the model's regex through PCRE2 + JIT, ByteLevel, Metaspace). */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- Unicode predicates of Rust's char, which the `tokenizers` package uses --------------- */

static bool is_white_space(uint32_t c) /* the White_Space property */
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static bool is_alnum(uint32_t c) /* letters and numbers (close to Alphabetic || Numeric) */
{
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

/* The last character of s[0..n) (valid UTF-8), or (uint32_t)-1 if empty; *start its offset. */
static uint32_t last_char(const char *s, size_t n, size_t *start)
{
    if (n == 0)
        return (uint32_t)-1;
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    size_t k;
    *start = i;
    return pgd__utf8_decode((const unsigned char *)s + i, &k);
}

/* ---- added-token matcher ----------------------------------------------------------------- */

void pgd__matcher_free(struct pgd__matcher *m)
{
    free(m->nodes);
    memset(m, 0, sizeof *m);
}

static int32_t trie_new(struct pgd__matcher *m, unsigned char byte)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct pgd__trie_node *p = realloc(m->nodes, cap * sizeof *p);
        if (!p)
            return -1;
        m->nodes = p;
        m->cap = cap;
    }
    m->nodes[m->n] = (struct pgd__trie_node){ -1, -1, -1, byte };
    return (int32_t)m->n++;
}

bool pgd__matcher_add(struct pgd__matcher *m, const char *s, size_t len, int32_t token)
{
    if (len == 0)
        return true; /* an empty token never matches */
    if (m->n == 0 && trie_new(m, 0) < 0)
        return false;
    int32_t cur = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = m->nodes[cur].child;
        while (c >= 0 && m->nodes[c].byte != b)
            c = m->nodes[c].sibling;
        if (c < 0) {
            c = trie_new(m, b);
            if (c < 0)
                return false;
            m->nodes[c].sibling = m->nodes[cur].child;
            m->nodes[cur].child = c;
        }
        cur = c;
    }
    /* The first token with a given content wins, as the added vocabulary keeps it. */
    if (m->nodes[cur].token < 0)
        m->nodes[cur].token = token;
    m->first[(unsigned char)s[0]] = true;
    return true;
}

/* Longest token starting at s[0]: its length, or 0. */
static size_t trie_longest(const struct pgd__matcher *m, const char *s, size_t n, int32_t *token)
{
    int32_t cur = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = m->nodes[cur].child;
        while (c >= 0 && m->nodes[c].byte != b)
            c = m->nodes[c].sibling;
        if (c < 0)
            break;
        cur = c;
        if (m->nodes[cur].token >= 0) {
            best = i + 1;
            *token = m->nodes[cur].token;
        }
    }
    return best;
}

enum pgd_status pgd__matcher_split(const struct pgd__matcher *m, const struct pgd__added *tokens,
                                   const char *s, size_t len,
                                   enum pgd_status (*fn)(void *ctx, size_t off, size_t len,
                                                         int32_t token),
                                   void *ctx)
{
    size_t done = 0; /* everything before this offset has been handed to fn */
    enum pgd_status st;
    if (m->n) {
        for (size_t pos = 0; pos < len;) {
            int32_t tok = -1;
            size_t mlen = m->first[(unsigned char)s[pos]] ? trie_longest(m, s + pos, len - pos, &tok)
                                                          : 0;
            if (!mlen) {
                pos++;
                continue;
            }
            const struct pgd__added *a = &tokens[tok];
            size_t start = pos, stop = pos + mlen;
            if (a->single_word) {
                size_t cs;
                uint32_t before = last_char(s, start, &cs);
                size_t k = 0;
                uint32_t after = stop < len && pgd__utf8_valid_len((const unsigned char *)s + stop,
                                                                   len - stop)
                                     ? pgd__utf8_decode((const unsigned char *)s + stop, &k)
                                     : (uint32_t)-1;
                bool start_ok = start == 0 || !(is_alnum(before) || before == '_');
                bool stop_ok = stop == len || !(is_alnum(after) || after == '_');
                if (!start_ok || !stop_ok) {
                    pos++;
                    continue;
                }
            }
            if (a->lstrip) {
                size_t ns = start, cs;
                for (;;) {
                    uint32_t c = last_char(s, ns, &cs);
                    if (c == (uint32_t)-1 || !is_white_space(c))
                        break;
                    ns = cs;
                }
                start = ns > done ? ns : done;
            }
            if (a->rstrip) {
                while (stop < len) {
                    size_t k;
                    uint32_t c = pgd__utf8_decode((const unsigned char *)s + stop, &k);
                    if (!is_white_space(c))
                        break;
                    stop += k;
                }
            }
            if (done < start && (st = fn(ctx, done, start - done, -1)) != PGD_OK)
                return st;
            if ((st = fn(ctx, start, stop - start, tok)) != PGD_OK)
                return st;
            done = stop;
            pos = stop > pos + mlen ? stop : pos + mlen;
        }
    }
    if (done < len || len == 0)
        return fn(ctx, done, len - done, -1);
    return PGD_OK;
}

/* ---- normalizers ------------------------------------------------------------------------- */

static bool is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* Unicode normalization of s into out. ASCII stretches cannot change and cannot combine
 * with what follows them, so only the runs holding non-ASCII bytes (plus the ASCII character
 * just before, which a combining mark may compose with) go through utf8proc. */
static bool unicode_normalize(utf8proc_option_t opts, const char *s, size_t n,
                              struct pgd__buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && (unsigned char)s[j] < 0x80)
            j++;
        if (j == n)
            return pgd__buf_add(out, s + i, n - i);
        size_t run = j > i ? j - 1 : j; /* keep one ASCII char as a possible base */
        if (!pgd__buf_add(out, s + i, run - i))
            return false;
        size_t e = j;
        while (e < n && !((unsigned char)s[e] < 0x80 && (e + 1 == n || (unsigned char)s[e + 1] < 0x80)))
            e++;
        /* s[run..e) holds the non-ASCII run (and ends before an ASCII char followed by ASCII
         * or the end). */
        utf8proc_uint8_t *res = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s + run,
                                          (utf8proc_ssize_t)(e - run), &res, opts);
        if (r < 0) {
            free(res);
            if (!pgd__buf_add(out, s + run, e - run)) /* should not happen: input is valid */
                return false;
        } else {
            bool ok = pgd__buf_add(out, res, (size_t)r);
            free(res);
            if (!ok)
                return false;
        }
        i = e;
    }
    return true;
}

static bool replace_all(const char *s, size_t n, const char *pat, size_t plen, const char *rep,
                        size_t rlen, struct pgd__buf *out)
{
    if (plen == 0)
        return pgd__buf_add(out, s, n);
    size_t i = 0;
    while (i < n) {
        const char *hit = memmem(s + i, n - i, pat, plen);
        if (!hit)
            break;
        if (!pgd__buf_add(out, s + i, (size_t)(hit - (s + i))) || !pgd__buf_add(out, rep, rlen))
            return false;
        i = (size_t)(hit - s) + plen;
    }
    return pgd__buf_add(out, s + i, n - i);
}

enum pgd_status pgd__normalize(const struct pgd__norm *v, size_t n, const char *s, size_t len,
                               struct pgd__buf *out, struct pgd__buf *tmp, bool *at_origin)
{
    bool origin = true;
    out->len = 0;
    if (!pgd__buf_add(out, s, len))
        return PGD_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        const struct pgd__norm *nm = &v[k];
        tmp->len = 0;
        bool ok = true;
        switch (nm->kind) {
        case PGD__NORM_NFC:
        case PGD__NORM_NFD:
        case PGD__NORM_NFKC:
        case PGD__NORM_NFKD: {
            if (is_ascii(out->p, out->len))
                continue;
            utf8proc_option_t o = UTF8PROC_STABLE;
            o |= (nm->kind == PGD__NORM_NFC || nm->kind == PGD__NORM_NFKC) ? UTF8PROC_COMPOSE
                                                                           : UTF8PROC_DECOMPOSE;
            if (nm->kind == PGD__NORM_NFKC || nm->kind == PGD__NORM_NFKD)
                o |= UTF8PROC_COMPAT;
            ok = unicode_normalize(o, out->p, out->len, tmp);
            break;
        }
        case PGD__NORM_PREPEND:
            if (out->len == 0)
                continue;
            ok = pgd__buf_add(tmp, nm->a, nm->alen) && pgd__buf_add(tmp, out->p, out->len);
            break;
        case PGD__NORM_REPLACE:
            /* deleting a match at the start leaves a later character first */
            if (nm->alen && !nm->blen && out->len >= nm->alen && !memcmp(out->p, nm->a, nm->alen))
                origin = false;
            ok = replace_all(out->p, out->len, nm->a, nm->alen, nm->b, nm->blen, tmp);
            break;
        case PGD__NORM_STRIP: {
            size_t b = 0, e = out->len, cs;
            while (nm->left && b < e) {
                size_t k2;
                if (!is_white_space(pgd__utf8_decode((unsigned char *)out->p + b, &k2)))
                    break;
                b += k2;
            }
            while (nm->right && e > b) {
                uint32_t c = last_char(out->p + b, e - b, &cs);
                if (!is_white_space(c))
                    break;
                e = b + cs;
            }
            if (b > 0)
                origin = false;
            ok = pgd__buf_add(tmp, out->p + b, e - b);
            break;
        }
        }
        if (!ok)
            return PGD_ERR_NOMEM;
        struct pgd__buf t = *out;
        *out = *tmp;
        *tmp = t;
    }
    if (at_origin)
        *at_origin = origin;
    return PGD_OK;
}

/* ---- regex ------------------------------------------------------------------------------- */

/* Oniguruma's \s is the White_Space property; PCRE2's (with UCP) also takes U+180E. The
 * translation spells \s out so both agree. */
#define WS_CLASS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}" \
                 "\\x{205f}\\x{3000}"

pcre2_code *pgd__regex_compile(const char *pattern, size_t len, char *err, size_t errlen)
{
    struct pgd__buf p = { 0 };
    bool in_class = false, ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < len) {
            char d = pattern[i + 1];
            if (d == 's')
                ok = pgd__buf_add(&p, in_class ? WS_CLASS : "[" WS_CLASS "]",
                                  strlen(in_class ? WS_CLASS : "[" WS_CLASS "]"));
            else if (d == 'S' && !in_class)
                ok = pgd__buf_add(&p, "[^" WS_CLASS "]", strlen("[^" WS_CLASS "]"));
            else
                ok = pgd__buf_add(&p, pattern + i, 2);
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            ok = pgd__buf_add(&p, &c, 1);
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < len && pattern[i + 1] == '^') {
                ok = ok && pgd__buf_add(&p, "^", 1);
                i++;
            }
            if (i + 1 < len && pattern[i + 1] == ']') {
                ok = ok && pgd__buf_add(&p, "]", 1);
                i++;
            }
            continue;
        }
        if (c == '[' && in_class && i + 1 < len && pattern[i + 1] == ':') {
            const char *end = strstr(pattern + i, ":]");
            if (end && (size_t)(end - pattern) < len) {
                ok = pgd__buf_add(&p, pattern + i, (size_t)(end - (pattern + i)) + 2);
                i = (size_t)(end - pattern) + 1;
                continue;
            }
        }
        if (c == ']' && in_class)
            in_class = false;
        ok = ok && pgd__buf_add(&p, &c, 1);
    }
    if (!ok) {
        pgd__buf_free(&p);
        pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(p.p ? p.p : ""), p.len, PCRE2_UTF | PCRE2_UCP,
                                   &code, &at, NULL);
    pgd__buf_free(&p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        pgd_errf(err, errlen, PGD_ERR_FORMAT, "bad regex /%.*s/: %s", (int)len, pattern,
                 (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT the interpreter still works */
    return re;
}

/* ---- pieces ------------------------------------------------------------------------------ */

bool pgd__pieces_add(struct pgd__pieces *p, size_t off, size_t len, bool first)
{
    if (len == 0)
        return true; /* empty pieces are dropped, as `tokenizers` drops them */
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct pgd__span *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return false;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = (struct pgd__span){ off, len, first };
    return true;
}

void pgd__pieces_free(struct pgd__pieces *p)
{
    pgd__buf_free(&p->text);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* Pieces of one span after a split: matches and gaps in order, combined by behaviour. */
struct splitter {
    struct pgd__pieces *out;
    enum pgd__split_behavior beh;
    bool first;        /* the span starts the input */
    size_t start;      /* the span's offset */
    size_t pend_off, pend_len; /* a piece held for MergedWithNext / Contiguous */
    bool pend, pend_match;
};

static bool split_emit(struct splitter *sp, size_t off, size_t len)
{
    /* A piece starts the input only where it starts the span: after a Removed delimiter at
     * the start it does not (`tokenizers` asks whether the piece's original offset is 0). */
    return pgd__pieces_add(sp->out, off, len, sp->first && off == sp->start);
}

static bool split_piece(struct splitter *sp, size_t off, size_t len, bool is_delim)
{
    switch (sp->beh) {
    case PGD__SPLIT_REMOVED:
        return is_delim ? true : split_emit(sp, off, len);
    case PGD__SPLIT_ISOLATED:
        return split_emit(sp, off, len);
    case PGD__SPLIT_MERGED_PREV:
        /* a delimiter joins the piece before it */
        if (is_delim && sp->pend) {
            sp->pend_len += len;
            bool ok = split_emit(sp, sp->pend_off, sp->pend_len);
            sp->pend = false;
            return ok;
        }
        if (sp->pend && !split_emit(sp, sp->pend_off, sp->pend_len))
            return false;
        if (is_delim) {
            sp->pend = false;
            return split_emit(sp, off, len);
        }
        sp->pend = true;
        sp->pend_off = off;
        sp->pend_len = len;
        return true;
    case PGD__SPLIT_MERGED_NEXT:
        /* a delimiter joins the piece after it */
        if (sp->pend && !sp->pend_match) {
            /* unreachable: non-delimiters are never held */
        }
        if (is_delim) {
            if (sp->pend && !split_emit(sp, sp->pend_off, sp->pend_len))
                return false;
            sp->pend = true;
            sp->pend_match = true;
            sp->pend_off = off;
            sp->pend_len = len;
            return true;
        }
        if (sp->pend) {
            sp->pend = false;
            return split_emit(sp, sp->pend_off, sp->pend_len + len);
        }
        return split_emit(sp, off, len);
    case PGD__SPLIT_CONTIGUOUS:
        if (is_delim && sp->pend && sp->pend_match) {
            sp->pend_len += len;
            return true;
        }
        if (sp->pend && !split_emit(sp, sp->pend_off, sp->pend_len))
            return false;
        sp->pend = false;
        if (is_delim) {
            sp->pend = true;
            sp->pend_match = true;
            sp->pend_off = off;
            sp->pend_len = len;
            return true;
        }
        return split_emit(sp, off, len);
    }
    return false;
}

static bool split_end(struct splitter *sp)
{
    bool ok = true;
    if (sp->pend)
        ok = split_emit(sp, sp->pend_off, sp->pend_len);
    sp->pend = false;
    return ok;
}

static enum pgd_status regex_split(const struct pgd__pretok *pt, const char *text,
                                   const struct pgd__span *span, struct splitter *sp,
                                   pcre2_match_data *md, pcre2_match_context *mc, char *err,
                                   size_t errlen)
{
    const char *s = text + span->off;
    size_t n = span->len, prev = 0, at = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    while (at <= n) {
        size_t ms, me;
        if (pt->re) {
            int rc = pcre2_match(pt->re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, mc);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "regex match failed: %s",
                                (const char *)msg);
            }
            ms = ov[0];
            me = ov[1];
        } else {
            const char *hit = pt->slen ? memmem(s + at, n - at, pt->str, pt->slen) : NULL;
            if (!hit)
                break;
            ms = (size_t)(hit - s);
            me = ms + pt->slen;
        }
        if (me == ms) {
            /* an empty match splits nothing: step over one character */
            if (ms >= n)
                break;
            size_t k = pgd__utf8_valid_len((const unsigned char *)s + ms, n - ms);
            at = ms + (k ? k : 1);
            continue;
        }
        if (prev < ms && !split_piece(sp, span->off + prev, ms - prev, pt->invert))
            return PGD_ERR_NOMEM;
        if (!split_piece(sp, span->off + ms, me - ms, !pt->invert))
            return PGD_ERR_NOMEM;
        prev = at = me;
    }
    if (prev < n && !split_piece(sp, span->off + prev, n - prev, pt->invert))
        return PGD_ERR_NOMEM;
    return split_end(sp) ? PGD_OK : PGD_ERR_NOMEM;
}

static void swap_pieces(struct pgd__pieces *a, struct pgd__pieces *b, bool text_too)
{
    struct pgd__span *v = a->v;
    size_t n = a->n, cap = a->cap;
    a->v = b->v; a->n = b->n; a->cap = b->cap;
    b->v = v; b->n = n; b->cap = cap;
    if (text_too) {
        struct pgd__buf t = a->text;
        a->text = b->text;
        b->text = t;
    }
}

enum pgd_status pgd__pretokenize(const struct pgd__pretok *v, size_t nv, struct pgd__pieces *in,
                                 struct pgd__pieces *tmp, pcre2_match_data *md,
                                 pcre2_match_context *mc, char *err, size_t errlen)
{
    for (size_t k = 0; k < nv; k++) {
        const struct pgd__pretok *pt = &v[k];
        tmp->n = 0;
        enum pgd_status st;
        if (pt->kind == PGD__PRE_SPLIT) {
            for (size_t i = 0; i < in->n; i++) {
                struct splitter sp = { .out = tmp, .beh = pt->behavior, .first = in->v[i].first,
                                       .start = in->v[i].off };
                if ((st = regex_split(pt, in->text.p, &in->v[i], &sp, md, mc, err, errlen)))
                    return st;
            }
            swap_pieces(in, tmp, false);
            continue;
        }
        if (pt->kind == PGD__PRE_BYTELEVEL && !pt->map_bytes && !pt->add_prefix_space)
            continue;
        tmp->text.len = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->text.p + in->v[i].off;
            size_t n = in->v[i].len, start = tmp->text.len;
            bool ok = true;
            if (pt->kind == PGD__PRE_BYTELEVEL) {
                if (pt->add_prefix_space && s[0] != ' ')
                    ok = pt->map_bytes ? pgd__buf_add(&tmp->text, "\xC4\xA0", 2)
                                       : pgd__buf_add(&tmp->text, " ", 1);
                if (pt->map_bytes) {
                    for (size_t j = 0; j < n && ok; j++) {
                        char enc[4];
                        size_t l = pgd__utf8_encode(pgd__bytelevel_char((uint8_t)s[j]), enc);
                        ok = pgd__buf_add(&tmp->text, enc, l);
                    }
                } else
                    ok = ok && pgd__buf_add(&tmp->text, s, n);
                ok = ok && pgd__pieces_add(tmp, start, tmp->text.len - start, in->v[i].first);
            } else { /* Metaspace */
                if (pt->prepend == PGD__PREPEND_ALWAYS ||
                    (pt->prepend == PGD__PREPEND_FIRST && in->v[i].first)) {
                    /* `tokenizers` checks after spaces became the replacement */
                    bool starts = s[0] == ' ' || (n >= pt->slen && !memcmp(s, pt->str, pt->slen));
                    if (!starts)
                        ok = pgd__buf_add(&tmp->text, pt->str, pt->slen);
                }
                ok = ok && replace_all(s, n, " ", 1, pt->str, pt->slen, &tmp->text);
                if (!ok)
                    return PGD_ERR_NOMEM;
                size_t end = tmp->text.len;
                if (!pt->split) {
                    ok = pgd__pieces_add(tmp, start, end - start, in->v[i].first);
                } else {
                    /* MergedWithNext on the replacement: each one starts a new piece */
                    size_t b = start;
                    bool f = in->v[i].first;
                    for (size_t j = start + 1; j + pt->slen <= end && ok; j++) {
                        if (!memcmp(tmp->text.p + j, pt->str, pt->slen)) {
                            ok = pgd__pieces_add(tmp, b, j - b, f);
                            f = false;
                            b = j;
                        }
                    }
                    ok = ok && pgd__pieces_add(tmp, b, end - b, f);
                }
            }
            if (!ok)
                return PGD_ERR_NOMEM;
        }
        swap_pieces(in, tmp, true);
    }
    return PGD_OK;
}

/* ---- loading ----------------------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static enum pgd_status add_norm(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    const char *type = jstr(j, "type");
    if (!type)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer without a \"type\"", t->name);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: normalizer Sequence without a \"normalizers\" array", t->name);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            enum pgd_status st = add_norm(t, e, err, errlen);
            if (st)
                return st;
        }
        return PGD_OK;
    }
    struct pgd__norm nm = { 0 };
    if (!strcmp(type, "NFC")) nm.kind = PGD__NORM_NFC;
    else if (!strcmp(type, "NFD")) nm.kind = PGD__NORM_NFD;
    else if (!strcmp(type, "NFKC")) nm.kind = PGD__NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nm.kind = PGD__NORM_NFKD;
    else if (!strcmp(type, "Prepend")) {
        json_t *p = json_object_get(j, "prepend");
        if (!json_is_string(p))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: normalizer Prepend without a \"prepend\" string", t->name);
        nm.kind = PGD__NORM_PREPEND;
        nm.alen = json_string_length(p);
        nm.a = dupn(json_string_value(p), nm.alen);
    } else if (!strcmp(type, "Replace")) {
        json_t *pat = json_object_get(json_object_get(j, "pattern"), "String");
        json_t *c = json_object_get(j, "content");
        if (!json_is_string(pat) || !json_is_string(c))
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                            "%s: normalizer Replace needs pattern.String and content (regex "
                            "patterns are not supported)", t->name);
        nm.kind = PGD__NORM_REPLACE;
        nm.alen = json_string_length(pat);
        nm.a = dupn(json_string_value(pat), nm.alen);
        nm.blen = json_string_length(c);
        nm.b = dupn(json_string_value(c), nm.blen);
    } else if (!strcmp(type, "Strip")) {
        nm.kind = PGD__NORM_STRIP;
        nm.left = json_is_true(json_object_get(j, "strip_left"));
        nm.right = json_is_true(json_object_get(j, "strip_right"));
    } else
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: normalizer type \"%s\" is not supported", t->name, type);
    struct pgd__norm *v = realloc(t->norms, (t->n_norms + 1) * sizeof *v);
    if (!v) {
        free(nm.a);
        free(nm.b);
        return PGD_ERR_NOMEM;
    }
    t->norms = v;
    t->norms[t->n_norms++] = nm;
    return PGD_OK;
}

enum pgd_status pgd__load_normalizer(struct pgd_tokenizer *t, const void *json, char *err,
                                     size_t errlen)
{
    json_t *j = (json_t *)json;
    if (!j || json_is_null(j))
        return PGD_OK;
    if (!json_is_object(j))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"normalizer\" is not an object",
                        t->name);
    return add_norm(t, j, err, errlen);
}

static enum pgd_status push_pretok(struct pgd_tokenizer *t, struct pgd__pretok *pt)
{
    struct pgd__pretok *v = realloc(t->pretoks, (t->n_pretoks + 1) * sizeof *v);
    if (!v) {
        if (pt->re)
            pcre2_code_free(pt->re);
        free(pt->str);
        return PGD_ERR_NOMEM;
    }
    t->pretoks = v;
    t->pretoks[t->n_pretoks++] = *pt;
    return PGD_OK;
}

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static enum pgd_status add_pretok(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    const char *type = jstr(j, "type");
    if (!type)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"",
                        t->name);
    struct pgd__pretok pt = { 0 };
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: pre_tokenizer Sequence without a \"pretokenizers\" array",
                            t->name);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            enum pgd_status st = add_pretok(t, e, err, errlen);
            if (st)
                return st;
        }
        return PGD_OK;
    }
    if (!strcmp(type, "Split")) {
        json_t *pat = json_object_get(j, "pattern");
        json_t *re = json_object_get(pat, "Regex"), *str = json_object_get(pat, "String");
        const char *beh = jstr(j, "behavior");
        pt.kind = PGD__PRE_SPLIT;
        pt.invert = json_is_true(json_object_get(j, "invert"));
        if (!beh)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer Split without a "
                            "\"behavior\"", t->name);
        if (!strcmp(beh, "Removed")) pt.behavior = PGD__SPLIT_REMOVED;
        else if (!strcmp(beh, "Isolated")) pt.behavior = PGD__SPLIT_ISOLATED;
        else if (!strcmp(beh, "MergedWithPrevious")) pt.behavior = PGD__SPLIT_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) pt.behavior = PGD__SPLIT_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous")) pt.behavior = PGD__SPLIT_CONTIGUOUS;
        else
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: pre_tokenizer Split: unknown behavior \"%s\"", t->name, beh);
        if (json_is_string(re)) {
            char msg[512];
            pt.re = pgd__regex_compile(json_string_value(re), json_string_length(re), msg,
                                       sizeof msg);
            if (!pt.re)
                return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer Split: %s",
                                t->name, msg);
            t->has_regex = true;
        } else if (json_is_string(str)) {
            pt.slen = json_string_length(str);
            pt.str = dupn(json_string_value(str), pt.slen);
            if (!pt.str)
                return PGD_ERR_NOMEM;
        } else
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: pre_tokenizer Split: pattern is neither Regex nor String",
                            t->name);
        return push_pretok(t, &pt);
    }
    if (!strcmp(type, "ByteLevel")) {
        json_t *ur = json_object_get(j, "use_regex");
        bool prefix = json_is_true(json_object_get(j, "add_prefix_space"));
        if (!ur || json_is_true(ur)) {
            /* The prefix space goes on each piece before the GPT-2 split, bytes are mapped
             * after it: three steps. */
            if (prefix) {
                struct pgd__pretok ps = { .kind = PGD__PRE_BYTELEVEL, .add_prefix_space = true };
                enum pgd_status st = push_pretok(t, &ps);
                if (st)
                    return st;
                prefix = false;
            }
            struct pgd__pretok sp = { .kind = PGD__PRE_SPLIT, .behavior = PGD__SPLIT_ISOLATED };
            char msg[512];
            sp.re = pgd__regex_compile(GPT2_REGEX, strlen(GPT2_REGEX), msg, sizeof msg);
            if (!sp.re)
                return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "%s: %s", t->name, msg);
            t->has_regex = true;
            enum pgd_status st = push_pretok(t, &sp);
            if (st)
                return st;
        }
        pt.kind = PGD__PRE_BYTELEVEL;
        pt.add_prefix_space = prefix;
        pt.map_bytes = true;
        return push_pretok(t, &pt);
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep;
        size_t rl;
        enum pgd_status st = pgd__metaspace_settings(t, j, "pre_tokenizer", &rep, &rl,
                                                     &pt.prepend, &pt.split, err, errlen);
        if (st)
            return st;
        pt.kind = PGD__PRE_METASPACE;
        pt.str = dupn(rep, rl);
        if (!pt.str)
            return PGD_ERR_NOMEM;
        pt.slen = rl;
        return push_pretok(t, &pt);
    }
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                    "%s: pre_tokenizer type \"%s\" is not supported", t->name, type);
}

enum pgd_status pgd__metaspace_settings(const struct pgd_tokenizer *t, const void *json,
                                        const char *what, const char **rep, size_t *rep_len,
                                        enum pgd__prepend_scheme *scheme, bool *split, char *err,
                                        size_t errlen)
{
    json_t *j = (json_t *)json;
    json_t *r = json_object_get(j, "replacement");
    const unsigned char *u = (const unsigned char *)json_string_value(r);
    size_t n = json_string_length(r);
    if (!u || n == 0 || pgd__utf8_valid_len(u, n) != n)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: %s Metaspace: \"replacement\" must "
                        "be one character", t->name, what);
    *rep = (const char *)u;
    *rep_len = n;
    json_t *aps = json_object_get(j, "add_prefix_space");
    const char *sc = jstr(j, "prepend_scheme");
    if (json_object_get(j, "prepend_scheme") && !sc)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: %s Metaspace: \"prepend_scheme\" is "
                        "not a string", t->name, what);
    if (!sc)
        *scheme = json_is_false(aps) ? PGD__PREPEND_NEVER : PGD__PREPEND_ALWAYS;
    else if (!strcmp(sc, "always"))
        *scheme = PGD__PREPEND_ALWAYS;
    else if (!strcmp(sc, "first"))
        *scheme = PGD__PREPEND_FIRST;
    else if (!strcmp(sc, "never"))
        *scheme = PGD__PREPEND_NEVER;
    else
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: %s Metaspace: unknown prepend_scheme "
                        "\"%s\" (always, first or never)", t->name, what, sc);
    if (json_is_false(aps) && *scheme != PGD__PREPEND_NEVER)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: %s Metaspace: add_prefix_space false "
                        "contradicts prepend_scheme \"%s\"", t->name, what, sc);
    json_t *sp = json_object_get(j, "split");
    *split = sp ? json_is_true(sp) : true;
    return PGD_OK;
}

enum pgd_status pgd__load_pretokenizer(struct pgd_tokenizer *t, const void *json, char *err,
                                       size_t errlen)
{
    json_t *j = (json_t *)json;
    if (!j || json_is_null(j))
        return PGD_OK;
    if (!json_is_object(j))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"pre_tokenizer\" is not an object",
                        t->name);
    return add_pretok(t, j, err, errlen);
}
