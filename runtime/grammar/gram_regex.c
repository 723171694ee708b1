/* Regular expressions -> grammar rules: the subset JSON Schema patterns and guided_regex
 * use (see grammar.h), matched in full. A recursive-descent parser that emits straight into
 * the grammar builder: alternation as ALT, groups as rules, quantifiers through
 * pgd__gb_repeat, classes as character sets.
 *
 * JSON mode (patterns of JSON Schema strings): the text matched is the JSON-encoded form of
 * a string that matches, so `"` and `\` become \" and \\, and \n \r \t their escapes; other
 * control characters cannot be produced (a constrained model never needs them). */
#include "runtime/grammar/grammar.h"
#include "runtime/base/mem.h"
#include "runtime/base/utf8.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rx {
    const char *s;
    size_t n, i;
    bool json;
    const char *what;
    struct pgd__gbuilder *b;
    char *err;
    size_t errlen;
    enum pgd_status st;
    int depth;
    uint32_t *cr;                   /* the class being read: (lo, hi) pairs; owned */
    size_t n_cr, cap_cr;
};

static bool rfail(struct rx *r, size_t at, const char *msg)
{
    if (r->st == PGD_OK)
        r->st = pgd_errf(r->err, r->errlen, PGD_ERR_INVALID_ARG, "%s: offset %zu: %s", r->what,
                         at, msg);
    return false;
}

static bool rnomem(struct rx *r)
{
    if (r->st == PGD_OK)
        r->st = r->b->total > PGD__GRAMMAR_MAX_EL
                    ? pgd_errf(r->err, r->errlen, PGD_ERR_INVALID_ARG, "%s: too large once "
                               "repetitions are expanded", r->what)
                    : pgd_errf(r->err, r->errlen, PGD_ERR_NOMEM, "%s: out of memory", r->what);
    return false;
}

static bool cr_add(struct rx *r, uint32_t lo, uint32_t hi)
{
    if (!pgd__array_reserve(r->cr, r->cap_cr, r->n_cr + 2))
        return rnomem(r);
    r->cr[r->n_cr++] = lo;
    r->cr[r->n_cr++] = hi;
    return true;
}

/* The characters JSON cannot hold raw, and the escapes we produce for them (others: none). */
static bool json_special(uint32_t c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static const char *json_escape(uint32_t c)
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

static bool class_has(const struct rx *r, bool neg, uint32_t c)
{
    bool in = false;
    for (size_t k = 0; k < r->n_cr; k += 2)
        if (c >= r->cr[k] && c <= r->cr[k + 1])
            in = true;
    return in != neg;
}

static bool push_text(struct rx *r, struct pgd__gvec *v, const char *t)
{
    for (; *t; t++)
        if (!pgd__gb_push_char(r->b, v, (uint32_t)(unsigned char)*t))
            return rnomem(r);
    return true;
}

/* Emits the class in r->cr (negated when neg) as one item. */
static bool emit_class(struct rx *r, struct pgd__gvec *v, bool neg)
{
    struct pgd__gbuilder *b = r->b;
    pgd__gb_cset_begin(b);
    if (!r->json || neg) {
        for (size_t k = 0; k < r->n_cr; k += 2)
            pgd__gb_cset_add(b, r->cr[k], r->cr[k + 1]);
        if (r->json) {              /* a negated set: exclude the specials too */
            pgd__gb_cset_add(b, 0, 0x1F);
            pgd__gb_cset_add(b, '"', '"');
            pgd__gb_cset_add(b, '\\', '\\');
        }
    } else {
        /* the ranges without the specials */
        for (size_t k = 0; k < r->n_cr; k += 2) {
            uint32_t lo = r->cr[k], hi = r->cr[k + 1];
            if (lo < 0x20)
                lo = 0x20;
            const uint32_t cuts[2] = { '"', '\\' };
            for (int c = 0; c < 2 && lo <= hi; c++) {
                if (cuts[c] >= lo && cuts[c] <= hi) {
                    if (cuts[c] > lo)
                        pgd__gb_cset_add(b, lo, cuts[c] - 1);
                    lo = cuts[c] + 1;
                }
            }
            if (lo <= hi)
                pgd__gb_cset_add(b, lo, hi);
        }
    }
    int id = pgd__gb_cset_end(b, neg);
    size_t start = v->n;
    if (id < 0 || !pgd__gvec_push(b, v, PGD__GE_TERM, (uint32_t)id))
        return rnomem(r);
    if (!r->json)
        return true;
    bool extra = false;
    static const uint32_t specials[] = { '"', '\\', '\n', '\r', '\t' };
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
        if (!class_has(r, neg, specials[k]))
            continue;
        if (!pgd__gvec_push(b, v, PGD__GE_ALT, 0) || !push_text(r, v, json_escape(specials[k])))
            return rnomem(r);
        extra = true;
    }
    if (extra && !pgd__gb_group(b, v, start, "rxclass"))
        return rnomem(r);
    return true;
}

static bool emit_char(struct rx *r, struct pgd__gvec *v, uint32_t c)
{
    if (r->json && json_special(c)) {
        const char *e = json_escape(c);
        if (!e)
            return rfail(r, r->i, "a control character cannot appear in a JSON string pattern");
        size_t start = v->n;
        if (!push_text(r, v, e))
            return false;
        return pgd__gb_group(r->b, v, start, "rxesc") || rnomem(r);
    }
    return pgd__gb_push_char(r->b, v, c) || rnomem(r);
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The class shorthands: d w s (upper case: negated). Adds to r->cr; *neg for the upper. */
static bool shorthand(struct rx *r, char c, bool *neg)
{
    *neg = isupper((unsigned char)c);
    switch (tolower((unsigned char)c)) {
    case 'd':
        return cr_add(r, '0', '9');
    case 'w':
        return cr_add(r, 'a', 'z') && cr_add(r, 'A', 'Z') && cr_add(r, '0', '9') &&
               cr_add(r, '_', '_');
    case 's':
        return cr_add(r, ' ', ' ') && cr_add(r, '\t', '\r');
    }
    return false;
}

/* An escape after '\' (r->i at the character after it) that stands for one character;
 * false with no error set when it is something else. */
static bool escape_char(struct rx *r, uint32_t *cp)
{
    size_t at = r->i;
    char c = r->s[r->i++];
    int digits = 0;
    switch (c) {
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case 'f': *cp = '\f'; return true;
    case 'v': *cp = '\v'; return true;
    case '0': *cp = 0; return true;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    default:
        if (ispunct((unsigned char)c) || c == ' ') {
            *cp = (uint32_t)c;
            return true;
        }
        r->i = at;
        return false;
    }
    bool brace = digits == 2 && r->i < r->n && r->s[r->i] == '{';
    if (brace) {
        r->i++;
        digits = 6;
    }
    uint32_t v = 0;
    int k = 0;
    for (; k < digits && r->i < r->n && hexv(r->s[r->i]) >= 0; k++)
        v = v * 16 + (uint32_t)hexv(r->s[r->i++]);
    if (brace) {
        if (r->i >= r->n || r->s[r->i] != '}' || k == 0)
            return rfail(r, at, "\\x{...} needs hex digits and a closing }");
        r->i++;
    } else if (k != digits) {
        return rfail(r, at, "an escape needs hex digits");
    }
    if (v > 0x10FFFF)
        return rfail(r, at, "code point above U+10FFFF");
    *cp = v;
    return true;
}

static bool read_char(struct rx *r, uint32_t *cp)
{
    size_t l = pgd__utf8_next(r->s + r->i, r->n - r->i, cp);
    if (!l)
        return rfail(r, r->i, "invalid UTF-8");
    r->i += l;
    return true;
}

static bool parse_class(struct rx *r, struct pgd__gvec *v)
{
    size_t open = r->i++;
    bool neg = false;
    r->n_cr = 0;
    if (r->i < r->n && r->s[r->i] == '^') {
        neg = true;
        r->i++;
    }
    bool first = true;
    while (r->i < r->n && (r->s[r->i] != ']' || first)) {
        first = false;
        uint32_t lo;
        if (r->s[r->i] == '[' && r->i + 1 < r->n && r->s[r->i + 1] == ':')
            return rfail(r, r->i, "POSIX classes [:name:] are not supported");
        if (r->s[r->i] == '\\') {
            r->i++;
            if (r->i >= r->n)
                break;
            char c = r->s[r->i];
            if (strchr("dwsDWS", c)) {
                bool sneg;
                r->i++;
                if (isupper((unsigned char)c))
                    return rfail(r, r->i - 2, "negated shorthands (\\D \\W \\S) inside a class "
                                 "are not supported");
                if (!shorthand(r, c, &sneg))
                    return false;
                continue;
            }
            if (c == 'b') {
                r->i++;
                lo = '\b';
            } else if (!escape_char(r, &lo)) {
                return r->st ? false : rfail(r, r->i - 1, "unknown escape in a class");
            }
        } else if (!read_char(r, &lo)) {
            return false;
        }
        uint32_t hi = lo;
        if (r->i + 1 < r->n && r->s[r->i] == '-' && r->s[r->i + 1] != ']') {
            r->i++;
            if (r->s[r->i] == '\\') {
                r->i++;
                if (r->i >= r->n || !escape_char(r, &hi))
                    return r->st ? false : rfail(r, r->i, "bad range end");
            } else if (!read_char(r, &hi)) {
                return false;
            }
            if (hi < lo)
                return rfail(r, open, "a character range runs backwards");
        }
        if (!cr_add(r, lo, hi))
            return false;
    }
    if (r->i >= r->n)
        return rfail(r, open, "unterminated character class");
    r->i++;
    return emit_class(r, v, neg);
}

static bool parse_alt(struct rx *r, struct pgd__gvec *v);

static bool parse_int(struct rx *r, int *out)
{
    if (r->i >= r->n || !isdigit((unsigned char)r->s[r->i]))
        return false;
    long x = 0;
    while (r->i < r->n && isdigit((unsigned char)r->s[r->i])) {
        x = x * 10 + (r->s[r->i++] - '0');
        if (x > PGD__GRAMMAR_MAX_REPEAT)
            return rfail(r, r->i, "a repetition count over 10000");
    }
    *out = (int)x;
    return true;
}

static bool parse_quant(struct rx *r, struct pgd__gvec *v, size_t start)
{
    if (r->i >= r->n)
        return true;
    char c = r->s[r->i];
    int min, max;
    size_t at = r->i;
    if (c == '*' || c == '+' || c == '?') {
        r->i++;
        min = c == '+';
        max = c == '?' ? 1 : PGD__REPEAT_INF;
    } else if (c == '{' && r->i + 1 < r->n && isdigit((unsigned char)r->s[r->i + 1])) {
        r->i++;
        if (!parse_int(r, &min))
            return false;
        max = min;
        if (r->i < r->n && r->s[r->i] == ',') {
            r->i++;
            if (r->i < r->n && r->s[r->i] == '}')
                max = PGD__REPEAT_INF;
            else if (!parse_int(r, &max))
                return r->st ? false : rfail(r, r->i, "expected a number in {m,n}");
        }
        if (r->i >= r->n || r->s[r->i] != '}')
            return rfail(r, at, "expected } to close the repetition");
        r->i++;
        if (max != PGD__REPEAT_INF && max < min)
            return rfail(r, at, "a repetition {m,n} needs m <= n");
    } else {
        return true;
    }
    /* lazy (x*?) matches the same strings; possessive (x*+) as greedy */
    if (r->i < r->n && (r->s[r->i] == '?' || r->s[r->i] == '+'))
        r->i++;
    if (r->i < r->n && strchr("*+?", r->s[r->i]))
        return rfail(r, r->i, "a quantifier after a quantifier");
    if (!pgd__gb_repeat(r->b, v, start, min, max, "rxrep"))
        return rnomem(r);
    return true;
}

static bool parse_group(struct rx *r, struct pgd__gvec *v)
{
    size_t open = r->i++;
    if (r->i < r->n && r->s[r->i] == '?') {
        const char *t = r->s + r->i;
        size_t left = r->n - r->i;
        if (left >= 2 && t[1] == ':') {
            r->i += 2;
        } else if ((left >= 3 && t[1] == 'P' && t[2] == '<') || (left >= 2 && t[1] == '<' &&
                   left >= 3 && t[2] != '=' && t[2] != '!')) {
            const char *gt = memchr(t, '>', left);
            if (!gt)
                return rfail(r, open, "unterminated group name");
            r->i += (size_t)(gt - t) + 1;
        } else {
            return rfail(r, open, "lookaround, inline flags and other (?...) groups are not "
                         "supported");
        }
    }
    if (++r->depth > 200)
        return rfail(r, open, "groups nested too deeply");
    size_t start = v->n;
    if (!parse_alt(r, v))
        return false;
    r->depth--;
    if (r->i >= r->n || r->s[r->i] != ')')
        return rfail(r, open, "expected ) to close this group");
    r->i++;
    return pgd__gb_group(r->b, v, start, "rxgroup") || rnomem(r);
}

static bool parse_atom(struct rx *r, struct pgd__gvec *v)
{
    char c = r->s[r->i];
    bool neg;
    switch (c) {
    case '(':
        return parse_group(r, v);
    case '[':
        return parse_class(r, v);
    case '.':
        r->i++;
        r->n_cr = 0;
        return cr_add(r, '\n', '\n') && emit_class(r, v, true);
    case '*': case '+': case '?':
        return rfail(r, r->i, "nothing to repeat");
    case '^':
        if (r->i == 0) {
            r->i++;
            return true;
        }
        return rfail(r, r->i, "^ is only supported at the start of the pattern");
    case '$':
        if (r->i + 1 == r->n) {
            r->i++;
            return true;
        }
        return rfail(r, r->i, "$ is only supported at the end of the pattern");
    case '\\': {
        size_t at = r->i++;
        if (r->i >= r->n)
            return rfail(r, at, "an escape at the end of the pattern");
        char e = r->s[r->i];
        if (strchr("dwsDWS", e)) {
            r->i++;
            r->n_cr = 0;
            return shorthand(r, e, &neg) && emit_class(r, v, neg);
        }
        if (isdigit((unsigned char)e) && e != '0')
            return rfail(r, at, "backreferences are not supported");
        if (strchr("bBAzZGkpP", e))
            return rfail(r, at, "this escape (anchor, word boundary, property) is not "
                         "supported");
        uint32_t cp;
        if (!escape_char(r, &cp))
            return r->st ? false : rfail(r, at, "unknown escape");
        return emit_char(r, v, cp);
    }
    default: {
        uint32_t cp;
        return read_char(r, &cp) && emit_char(r, v, cp);
    }
    }
}

static bool parse_seq(struct rx *r, struct pgd__gvec *v)
{
    while (r->i < r->n && r->s[r->i] != '|' && r->s[r->i] != ')') {
        size_t start = v->n;
        bool anchor = (r->s[r->i] == '^' && r->i == 0) || (r->s[r->i] == '$' &&
                                                           r->i + 1 == r->n);
        if (!parse_atom(r, v))
            return false;
        if (anchor)
            continue;
        if (v->n == start) {
            /* an empty group: nothing to repeat, but a quantifier may still follow */
            if (r->i < r->n && strchr("*+?", r->s[r->i]))
                r->i++;
            continue;
        }
        if (!parse_quant(r, v, start))
            return false;
    }
    return true;
}

static bool parse_alt(struct rx *r, struct pgd__gvec *v)
{
    for (;;) {
        if (!parse_seq(r, v))
            return false;
        if (r->i < r->n && r->s[r->i] == '|') {
            r->i++;
            if (!pgd__gvec_push(r->b, v, PGD__GE_ALT, 0))
                return rnomem(r);
            continue;
        }
        return true;
    }
}

enum pgd_status pgd__regex_emit(struct pgd__gbuilder *b, struct pgd__gvec *v, const char *re,
                                size_t len, bool json, const char *what, char *err,
                                size_t errlen)
{
    struct rx r = { .s = re, .n = len, .json = json, .what = what, .b = b, .err = err,
                    .errlen = errlen };
    struct pgd__gvec body = { 0 };
    int id = pgd__gb_rule_new(b, "regex");
    if (id < 0)
        rnomem(&r);
    else if (parse_alt(&r, &body) && r.i < r.n)
        rfail(&r, r.i, "a ) without its (");
    if (r.st == PGD_OK && (!pgd__gb_define(b, id, &body) ||
                           !pgd__gvec_push(b, v, PGD__GE_REF, (uint32_t)id)))
        rnomem(&r);
    pgd__gvec_free(&body);
    free(r.cr);
    return r.st;
}
