/* Pre-tokenizers (tokenizer.json "pre_tokenizer"): loading them and cutting normalized text
 * into the pieces BPE sees. Split with a regex (PCRE2 + JIT), a string or a character class
 * (WhitespaceSplit, Digits, Punctuation, BertPreTokenizer, CharDelimiterSplit), Whitespace,
 * FixedLength, UnicodeScripts, ByteLevel and Metaspace; Sequence nests. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- pieces ------------------------------------------------------------------------------ */

bool pgd__pieces_add(struct pgd__pieces *p, size_t off, size_t len, bool first)
{
    if (len == 0)
        return true; /* empty pieces are dropped, as `tokenizers` drops them */
    if (!pgd__array_reserve(p->v, p->cap, p->n + 1))
        return false;
    p->v[p->n++] = (struct pgd__span){ off, len, first };
    return true;
}

void pgd__pieces_free(struct pgd__pieces *p)
{
    pgd__buf_fini(&p->text);
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

static bool in_class(const struct pgd__pretok *pt, uint32_t c)
{
    switch (pt->cls) {
    case PGD__CC_WHITESPACE: return pgd__uc_is_white_space(c);
    case PGD__CC_NUMERIC: return pgd__uc_is_numeric(c);
    case PGD__CC_PUNCT: return pgd__uc_is_punct(c);
    case PGD__CC_CHAR: return c == pt->delim;
    case PGD__CC_NONE: break;
    }
    return false;
}

/* The next match of pt's pattern in s[at..n): *found, and where it is, [*ms, *me). */
static enum pgd_status next_match(const struct pgd__pretok *pt, const char *s, size_t n,
                                  size_t at, bool *found, size_t *ms, size_t *me,
                                  pcre2_match_data *md, pcre2_match_context *mc, char *err,
                                  size_t errlen)
{
    *found = false;
    if (pt->re) {
        int rc = pcre2_match(pt->re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH)
            return PGD_OK;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "regex match failed: %s",
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        *ms = ov[0];
        *me = ov[1];
        *found = true;
        return PGD_OK;
    }
    if (pt->cls != PGD__CC_NONE) {
        /* tokenizers: a char predicate matches each such character on its own */
        for (size_t i = at, k; i < n; i += k) {
            uint32_t c = pgd__utf8_decode_valid((const unsigned char *)s + i, &k);
            if (in_class(pt, c)) {
                *ms = i;
                *me = i + k;
                *found = true;
                return PGD_OK;
            }
        }
        return PGD_OK;
    }
    const char *hit = pt->slen ? memmem(s + at, n - at, pt->str, pt->slen) : NULL;
    if (hit) {
        *ms = (size_t)(hit - s);
        *me = *ms + pt->slen;
        *found = true;
    }
    return PGD_OK;
}

/* Splits one span by pt's pattern (regex, string or character class) and behaviour. */
static enum pgd_status split_span(const struct pgd__pretok *pt, const char *text,
                                  const struct pgd__span *span, struct splitter *sp,
                                  pcre2_match_data *md, pcre2_match_context *mc, char *err,
                                  size_t errlen)
{
    const char *s = text + span->off;
    size_t n = span->len, prev = 0, at = 0;
    while (at <= n) {
        size_t ms = 0, me = 0;
        bool found;
        enum pgd_status st = next_match(pt, s, n, at, &found, &ms, &me, md, mc, err, errlen);
        if (st)
            return st;
        if (!found)
            break;
        if (me == ms) {
            /* an empty match splits nothing: step over one character */
            if (ms >= n)
                break;
            size_t k = pgd__utf8_next((const unsigned char *)s + ms, n - ms, NULL);
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

/* FixedLength: pieces of pt->length characters (the last one shorter). */
static bool split_fixed(const struct pgd__pretok *pt, const char *text,
                        const struct pgd__span *span, struct pgd__pieces *out)
{
    size_t b = 0, chars = 0;
    for (size_t i = 0, k; i < span->len; i += k) {
        pgd__utf8_decode_valid((const unsigned char *)text + span->off + i, &k);
        if (++chars == pt->length) {
            if (!pgd__pieces_add(out, span->off + b, i + k - b, span->first && b == 0))
                return false;
            b = i + k;
            chars = 0;
        }
    }
    return pgd__pieces_add(out, span->off + b, span->len - b, span->first && b == 0);
}

/* UnicodeScripts: a piece starts at each character whose script differs from the last
 * non-Any one. As `tokenizers` does it, Any characters (spaces) before the first other
 * character are dropped, and a span of only Any characters gives no piece. */
static bool split_scripts(const char *text, const struct pgd__span *span,
                          struct pgd__pieces *out)
{
    const char *s = text + span->off;
    uint32_t last = 0;  /* 0: none yet, or Any */
    size_t start = 0;
    bool started = false; /* a piece started at `start` */
    for (size_t i = 0, k; i < span->len; i += k) {
        uint32_t sc = pgd__uc_script_class(pgd__utf8_decode_valid(s + i, &k));
        if (sc == 0 || sc == last)
            continue;
        if (started && !pgd__pieces_add(out, span->off + start, i - start,
                                     span->first && start == 0))
            return false;
        start = i;
        started = true;
        last = sc;
    }
    return !started || pgd__pieces_add(out, span->off + start, span->len - start,
                                    span->first && start == 0);
}

/* Whitespace: `tokenizers` keeps the matches of \w+|[^\w\s]+ (Rust regex) and drops the rest,
 * i.e. runs of word characters and runs of other non-space characters; done here with its
 * own \w table rather than a regex (PCRE2's \w is narrower, and the exact class needs
 * properties older PCRE2 lacks). */
static bool split_whitespace(const char *text, const struct pgd__span *span,
                             struct pgd__pieces *out)
{
    const char *s = text + span->off;
    int run = 0; /* class of the current run: 0 none (spaces), 1 word, 2 other */
    size_t start = 0;
    for (size_t i = 0, k; i <= span->len; i += k) {
        int cls = 0;
        k = 1;
        if (i < span->len) {
            uint32_t c = pgd__utf8_decode_valid((const unsigned char *)s + i, &k);
            cls = pgd__uc_is_word(c) ? 1 : pgd__uc_is_white_space(c) ? 0 : 2;
        }
        if (cls == run)
            continue;
        if (run && !pgd__pieces_add(out, span->off + start, i - start, span->first && start == 0))
            return false;
        run = cls;
        start = i;
    }
    return true;
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

/* ByteLevel on one piece: the prefix space, then each byte as its character of GPT-2's byte
 * alphabet (unless the BPE fast path reads raw bytes); appended to out as one piece. */
static bool bytelevel_piece(const struct pgd__pretok *pt, const char *s, size_t n, bool first,
                            struct pgd__pieces *out)
{
    size_t start = out->text.len;
    bool ok = true;
    if (pt->add_prefix_space && s[0] != ' ')
        ok = pt->map_bytes ? pgd__buf_append(&out->text, "\xC4\xA0", 2)
                           : pgd__buf_append(&out->text, " ", 1);
    if (pt->map_bytes) {
        for (size_t j = 0; j < n && ok; j++) {
            char enc[4];
            size_t l = pgd__utf8_put(pgd__bytelevel_char((uint8_t)s[j]), enc);
            ok = pgd__buf_append(&out->text, enc, l);
        }
    } else
        ok = ok && pgd__buf_append(&out->text, s, n);
    return ok && pgd__pieces_add(out, start, out->text.len - start, first);
}

/* Metaspace on one piece: the replacement prepended (always, or on the first piece), spaces
 * replaced, and with split, a new piece before each replacement. */
static bool metaspace_piece(const struct pgd__pretok *pt, const char *s, size_t n, bool first,
                            struct pgd__pieces *out)
{
    size_t start = out->text.len;
    bool ok = true;
    if (pt->prepend == PGD__PREPEND_ALWAYS || (pt->prepend == PGD__PREPEND_FIRST && first)) {
        /* `tokenizers` checks after spaces became the replacement */
        bool starts = s[0] == ' ' || (n >= pt->slen && !memcmp(s, pt->str, pt->slen));
        if (!starts)
            ok = pgd__buf_append(&out->text, pt->str, pt->slen);
    }
    if (!ok || !pgd__replace_all(s, n, " ", 1, pt->str, pt->slen, &out->text))
        return false;
    size_t end = out->text.len;
    if (!pt->split)
        return pgd__pieces_add(out, start, end - start, first);
    /* MergedWithNext on the replacement: each one starts a new piece */
    size_t b = start;
    for (size_t j = start + 1; j + pt->slen <= end && ok; j++) {
        if (!memcmp(out->text.p + j, pt->str, pt->slen)) {
            ok = pgd__pieces_add(out, b, j - b, first);
            first = false;
            b = j;
        }
    }
    return ok && pgd__pieces_add(out, b, end - b, first);
}

/* A pre-tokenizer that only cuts: each span of in into pieces of out (same text). */
static enum pgd_status cut_spans(const struct pgd__pretok *pt, const struct pgd__pieces *in,
                                 struct pgd__pieces *out, pcre2_match_data *md,
                                 pcre2_match_context *mc, char *err, size_t errlen)
{
    for (size_t i = 0; i < in->n; i++) {
        const struct pgd__span *sp = &in->v[i];
        bool ok;
        switch (pt->kind) {
        case PGD__PRE_SPLIT: {
            struct splitter spl = { .out = out, .beh = pt->behavior, .first = sp->first,
                                    .start = sp->off };
            enum pgd_status st = split_span(pt, in->text.p, sp, &spl, md, mc, err, errlen);
            if (st)
                return st;
            ok = true;
            break;
        }
        case PGD__PRE_SCRIPTS:
            ok = split_scripts(in->text.p, sp, out);
            break;
        case PGD__PRE_WHITESPACE:
            ok = split_whitespace(in->text.p, sp, out);
            break;
        default:
            ok = split_fixed(pt, in->text.p, sp, out);
            break;
        }
        if (!ok)
            return PGD_ERR_NOMEM;
    }
    return PGD_OK;
}

enum pgd_status pgd__pretokenize(const struct pgd__pretok *v, size_t nv, struct pgd__pieces *in,
                                 struct pgd__pieces *tmp, pcre2_match_data *md,
                                 pcre2_match_context *mc, char *err, size_t errlen)
{
    for (size_t k = 0; k < nv; k++) {
        const struct pgd__pretok *pt = &v[k];
        tmp->n = 0;
        if (pt->kind != PGD__PRE_BYTELEVEL && pt->kind != PGD__PRE_METASPACE) {
            enum pgd_status st = cut_spans(pt, in, tmp, md, mc, err, errlen);
            if (st)
                return st;
            swap_pieces(in, tmp, false);
            continue;
        }
        if (pt->kind == PGD__PRE_BYTELEVEL && !pt->map_bytes && !pt->add_prefix_space)
            continue; /* the BPE fast path maps the bytes itself */
        /* these rewrite the text: the pieces move to tmp's buffer */
        tmp->text.len = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->text.p + in->v[i].off;
            size_t n = in->v[i].len;
            bool ok = pt->kind == PGD__PRE_BYTELEVEL
                          ? bytelevel_piece(pt, s, n, in->v[i].first, tmp)
                          : metaspace_piece(pt, s, n, in->v[i].first, tmp);
            if (!ok)
                return PGD_ERR_NOMEM;
        }
        swap_pieces(in, tmp, true);
    }
    return PGD_OK;
}

/* ---- loading ----------------------------------------------------------------------------- */

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

static enum pgd_status parse_behavior(const struct pgd_tokenizer *t, const char *type,
                                      const char *beh, enum pgd__split_behavior *out, char *err,
                                      size_t errlen)
{
    static const struct { const char *name; enum pgd__split_behavior b; } names[] = {
        { "Removed", PGD__SPLIT_REMOVED }, { "Isolated", PGD__SPLIT_ISOLATED },
        { "MergedWithPrevious", PGD__SPLIT_MERGED_PREV },
        { "MergedWithNext", PGD__SPLIT_MERGED_NEXT }, { "Contiguous", PGD__SPLIT_CONTIGUOUS },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(beh, names[i].name)) {
            *out = names[i].b;
            return PGD_OK;
        }
    return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer %s: unknown behavior \"%s\"",
                    t->name, type, beh);
}

/* Appends a Split on a regex (pattern[0..len)). */
static enum pgd_status push_regex_split(struct pgd_tokenizer *t, const char *type,
                                        const char *pattern, size_t len,
                                        enum pgd__split_behavior beh, bool invert, char *err,
                                        size_t errlen)
{
    char msg[512];
    struct pgd__pretok pt = { .kind = PGD__PRE_SPLIT, .behavior = beh, .invert = invert };
    pt.re = pgd__regex_compile(pattern, len, msg, sizeof msg);
    if (!pt.re)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer %s: %s", t->name, type,
                        msg);
    t->has_regex = true;
    return push_pretok(t, &pt);
}

static enum pgd_status push_class_split(struct pgd_tokenizer *t, enum pgd__char_class cls,
                                        uint32_t delim, enum pgd__split_behavior beh)
{
    struct pgd__pretok pt = { .kind = PGD__PRE_SPLIT, .cls = cls, .delim = delim, .behavior = beh };
    return push_pretok(t, &pt);
}

static enum pgd_status load_split(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    json_t *pat = json_object_get(j, "pattern");
    json_t *re = json_object_get(pat, "Regex"), *str = json_object_get(pat, "String");
    const char *beh = pgd__jstr(j, "behavior");
    struct pgd__pretok pt = { .kind = PGD__PRE_SPLIT };
    pt.invert = json_is_true(json_object_get(j, "invert"));
    if (!beh)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer Split without a "
                        "\"behavior\"", t->name);
    enum pgd_status st = parse_behavior(t, "Split", beh, &pt.behavior, err, errlen);
    if (st)
        return st;
    if (json_is_string(re))
        return push_regex_split(t, "Split", json_string_value(re), json_string_length(re),
                                pt.behavior, pt.invert, err, errlen);
    if (!json_is_string(str))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: pre_tokenizer Split: pattern is neither Regex nor String", t->name);
    pt.slen = json_string_length(str);
    pt.str = pgd__dupn(json_string_value(str), pt.slen);
    return pt.str ? push_pretok(t, &pt) : PGD_ERR_NOMEM;
}

static enum pgd_status load_bytelevel(struct pgd_tokenizer *t, json_t *j, char *err,
                                      size_t errlen)
{
    json_t *ur = json_object_get(j, "use_regex");
    bool prefix = json_is_true(json_object_get(j, "add_prefix_space"));
    enum pgd_status st;
    if (!ur || json_is_true(ur)) {
        /* The prefix space goes on each piece before the GPT-2 split, bytes are mapped
         * after it: three steps. */
        if (prefix) {
            struct pgd__pretok ps = { .kind = PGD__PRE_BYTELEVEL, .add_prefix_space = true };
            if ((st = push_pretok(t, &ps)))
                return st;
            prefix = false;
        }
        st = push_regex_split(t, "ByteLevel", GPT2_REGEX, strlen(GPT2_REGEX),
                              PGD__SPLIT_ISOLATED, false, err, errlen);
        if (st)
            return st;
    }
    struct pgd__pretok pt = { .kind = PGD__PRE_BYTELEVEL, .add_prefix_space = prefix,
                              .map_bytes = true };
    return push_pretok(t, &pt);
}

static enum pgd_status load_metaspace(struct pgd_tokenizer *t, json_t *j, char *err,
                                      size_t errlen)
{
    const char *rep;
    size_t rl;
    struct pgd__pretok pt = { .kind = PGD__PRE_METASPACE };
    enum pgd_status st = pgd__metaspace_settings(t, j, "pre_tokenizer", &rep, &rl, &pt.prepend,
                                                 &pt.split, err, errlen);
    if (st)
        return st;
    if (!(pt.str = pgd__dupn(rep, rl)))
        return PGD_ERR_NOMEM;
    pt.slen = rl;
    return push_pretok(t, &pt);
}

/* The pre-tokenizers `tokenizers` defines as splits on a character class; *known false if
 * type is none of them. */
static enum pgd_status load_class_split(struct pgd_tokenizer *t, const char *type, json_t *j,
                                        bool *known, char *err, size_t errlen)
{
    *known = true;
    if (!strcmp(type, "WhitespaceSplit"))
        return push_class_split(t, PGD__CC_WHITESPACE, 0, PGD__SPLIT_REMOVED);
    if (!strcmp(type, "Digits")) /* individual_digits: each digit alone, else runs */
        return push_class_split(t, PGD__CC_NUMERIC, 0,
                                json_is_true(json_object_get(j, "individual_digits"))
                                    ? PGD__SPLIT_ISOLATED : PGD__SPLIT_CONTIGUOUS);
    if (!strcmp(type, "BertPreTokenizer")) { /* whitespace removed, then punctuation isolated */
        enum pgd_status st = push_class_split(t, PGD__CC_WHITESPACE, 0, PGD__SPLIT_REMOVED);
        return st ? st : push_class_split(t, PGD__CC_PUNCT, 0, PGD__SPLIT_ISOLATED);
    }
    if (!strcmp(type, "Punctuation")) {
        const char *beh = pgd__jstr(j, "behavior");
        enum pgd__split_behavior b = PGD__SPLIT_ISOLATED; /* its default */
        enum pgd_status st = beh ? parse_behavior(t, type, beh, &b, err, errlen) : PGD_OK;
        return st ? st : push_class_split(t, PGD__CC_PUNCT, 0, b);
    }
    if (!strcmp(type, "CharDelimiterSplit")) {
        const char *d = pgd__jstr(j, "delimiter");
        size_t k = d ? strlen(d) : 0;
        if (!k || pgd__utf8_next((const unsigned char *)d, k, NULL) != k)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer CharDelimiterSplit: "
                            "\"delimiter\" must be one character", t->name);
        return push_class_split(t, PGD__CC_CHAR, pgd__utf8_decode_valid(d, &k),
                                PGD__SPLIT_REMOVED);
    }
    *known = false;
    return PGD_OK;
}

static enum pgd_status load_fixed_length(struct pgd_tokenizer *t, json_t *j, char *err,
                                         size_t errlen)
{
    json_t *len = json_object_get(j, "length");
    struct pgd__pretok pt = { .kind = PGD__PRE_FIXED_LENGTH, .length = 5 }; /* its default */
    if (len && (!json_is_integer(len) || json_integer_value(len) <= 0))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: pre_tokenizer FixedLength: \"length\" must be a positive integer",
                        t->name);
    if (len)
        pt.length = (size_t)json_integer_value(len);
    return push_pretok(t, &pt);
}

static enum pgd_status add_pretok(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    const char *type = pgd__jstr(j, "type");
    if (!type)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"",
                        t->name);
    if (!strcmp(type, "Sequence")) { /* nested Sequences flatten into one list */
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
    if (!strcmp(type, "Split"))
        return load_split(t, j, err, errlen);
    if (!strcmp(type, "ByteLevel"))
        return load_bytelevel(t, j, err, errlen);
    if (!strcmp(type, "Metaspace"))
        return load_metaspace(t, j, err, errlen);
    if (!strcmp(type, "FixedLength"))
        return load_fixed_length(t, j, err, errlen);
    if (!strcmp(type, "UnicodeScripts") || !strcmp(type, "Whitespace")) {
        struct pgd__pretok pt = { .kind = type[0] == 'U' ? PGD__PRE_SCRIPTS : PGD__PRE_WHITESPACE };
        return push_pretok(t, &pt);
    }
    bool known;
    enum pgd_status st = load_class_split(t, type, j, &known, err, errlen);
    if (known)
        return st;
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
    if (!u || n == 0 || pgd__utf8_next(u, n, NULL) != n)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: %s Metaspace: \"replacement\" must "
                        "be one character", t->name, what);
    *rep = (const char *)u;
    *rep_len = n;
    json_t *aps = json_object_get(j, "add_prefix_space");
    const char *sc = pgd__jstr(j, "prepend_scheme");
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
