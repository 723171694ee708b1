/* Grammar text -> grammar: GBNF as llama.cpp writes it, and the lark/EBNF spellings vLLM's
 * backends take (`name: ...`, `'...'`, `/regex/`, `//` comments, `start`). A rule's body
 * runs on across lines until the next `name ::=` (or `name:`), so a long alternation may be
 * broken anywhere. Every error names the line and column. */
#include "runtime/grammar/grammar.h"
#include "runtime/base/utf8.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    const char *s;
    size_t n, i;
    const char *what;
    struct pgd__gbuilder *b;
    char *err;
    size_t errlen;
    bool failed;
    bool oom;                       /* the failure was out of memory */
    bool regex_json;                /* /regex/ terminals match JSON-encoded strings */
    int depth;
};

static bool fail(struct parser *p, size_t at, const char *msg, const char *arg)
{
    if (p->failed)
        return false;
    p->failed = true;
    int line = 1, col = 1;
    for (size_t k = 0; k < at && k < p->n; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    pgd_errf(p->err, p->errlen, PGD_ERR_INVALID_ARG, "%s: line %d, column %d: %s%s", p->what,
             line, col, msg, arg ? arg : "");
    return false;
}

static bool nomem(struct parser *p)
{
    if (p->b->total <= PGD__GRAMMAR_MAX_EL)
        p->oom = true;
    return fail(p, p->i, p->b->total > PGD__GRAMMAR_MAX_EL ? "the grammar is too large "
                "once repetitions are expanded" : "out of memory", NULL);
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* Spaces, newlines and comments (# ... or // ...). */
static void skip_space(struct parser *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->i++;
        } else if (c == '#' || (c == '/' && p->i + 1 < p->n && p->s[p->i + 1] == '/')) {
            while (p->i < p->n && p->s[p->i] != '\n')
                p->i++;
        } else {
            break;
        }
    }
}

static size_t name_end(const struct parser *p, size_t at)
{
    while (at < p->n && is_name_char(p->s[at]))
        at++;
    return at;
}

/* At `name ::=` or `name:` (a rule head, also lark `?name:`)? *body gets where the body
 * starts, *ns and *ne the name. */
static bool rule_head(const struct parser *p, size_t at, size_t *ns, size_t *ne, size_t *body)
{
    if (at < p->n && (p->s[at] == '?' || p->s[at] == '!'))
        at++;
    size_t e = name_end(p, at);
    if (e == at)
        return false;
    *ns = at;
    *ne = e;
    /* lark terminal priorities: NAME.2: */
    if (e < p->n && p->s[e] == '.' && e + 1 < p->n && isdigit((unsigned char)p->s[e + 1])) {
        e++;
        while (e < p->n && isdigit((unsigned char)p->s[e]))
            e++;
    }
    while (e < p->n && (p->s[e] == ' ' || p->s[e] == '\t'))
        e++;
    if (e + 3 <= p->n && memcmp(p->s + e, "::=", 3) == 0) {
        *body = e + 3;
        return true;
    }
    if (e < p->n && p->s[e] == ':' && !(e + 1 < p->n && p->s[e + 1] == ':')) {
        *body = e + 1;
        return true;
    }
    return false;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One character of a literal or class at p->i (an escape or a UTF-8 character). */
static bool read_char(struct parser *p, uint32_t *cp)
{
    size_t at = p->i;
    if (p->s[at] != '\\') {
        size_t l = pgd__utf8_next(p->s + at, p->n - at, cp);
        if (!l)
            return fail(p, at, "invalid UTF-8", NULL);
        p->i += l;
        return true;
    }
    if (at + 1 >= p->n)
        return fail(p, at, "an escape at the end of the text", NULL);
    char c = p->s[at + 1];
    p->i += 2;
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
    case 'U': digits = 8; break;
    default:
        if (strchr("\\\"'[]-^/.|(){}*+?$ ", c)) {
            *cp = (uint32_t)c;
            return true;
        }
        return fail(p, at, "unknown escape \\", (char[]){ c, 0 });
    }
    uint32_t v = 0;
    for (int k = 0; k < digits; k++) {
        int h = p->i < p->n ? hexval(p->s[p->i]) : -1;
        if (h < 0)
            return fail(p, at, "an escape needs hex digits: \\", (char[]){ c, 0 });
        v = v * 16 + (uint32_t)h;
        p->i++;
    }
    if (v > 0x10FFFF)
        return fail(p, at, "code point above U+10FFFF", NULL);
    *cp = v;
    return true;
}

static bool parse_literal(struct parser *p, struct pgd__gvec *v)
{
    size_t open = p->i;
    char q = p->s[p->i++];
    while (p->i < p->n && p->s[p->i] != q) {
        uint32_t cp;
        if (!read_char(p, &cp))
            return false;
        if (!pgd__gb_push_char(p->b, v, cp))
            return nomem(p);
    }
    if (p->i >= p->n)
        return fail(p, open, "unterminated string literal", NULL);
    p->i++;
    return true;
}

static bool parse_class(struct parser *p, struct pgd__gvec *v)
{
    size_t open = p->i++;
    bool neg = false;
    if (p->i < p->n && p->s[p->i] == '^') {
        neg = true;
        p->i++;
    }
    pgd__gb_cset_begin(p->b);
    while (p->i < p->n && p->s[p->i] != ']') {
        uint32_t lo, hi;
        if (!read_char(p, &lo))
            return false;
        hi = lo;
        if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
            p->i++;
            if (!read_char(p, &hi))
                return false;
            if (hi < lo)
                return fail(p, open, "a character range runs backwards", NULL);
        }
        pgd__gb_cset_add(p->b, lo, hi);
    }
    if (p->i >= p->n)
        return fail(p, open, "unterminated character class", NULL);
    p->i++;
    int id = pgd__gb_cset_end(p->b, neg);
    if (id < 0 || !pgd__gvec_push(p->b, v, PGD__GE_TERM, (uint32_t)id))
        return nomem(p);
    return true;
}

static bool parse_regex(struct parser *p, struct pgd__gvec *v)
{
    size_t open = p->i++;
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] != '/' && p->s[p->i] != '\n') {
        if (p->s[p->i] == '\\' && p->i + 1 < p->n)
            p->i++;
        p->i++;
    }
    if (p->i >= p->n || p->s[p->i] != '/')
        return fail(p, open, "unterminated /regex/", NULL);
    size_t end = p->i++;
    char what[64];
    snprintf(what, sizeof what, "%s: regex", p->what);
    enum pgd_status st = pgd__regex_emit(p->b, v, p->s + start, end - start, p->regex_json,
                                         what, p->err, p->errlen);
    if (st) {
        p->failed = true;
        p->oom = st == PGD_ERR_NOMEM;
        return false;
    }
    return true;
}

static bool parse_int(struct parser *p, int *out)
{
    skip_space(p);
    if (p->i >= p->n || !isdigit((unsigned char)p->s[p->i]))
        return fail(p, p->i, "expected a number", NULL);
    long v = 0;
    while (p->i < p->n && isdigit((unsigned char)p->s[p->i])) {
        v = v * 10 + (p->s[p->i++] - '0');
        if (v > PGD__GRAMMAR_MAX_REPEAT)
            return fail(p, p->i, "a repetition count over 10000", NULL);
    }
    *out = (int)v;
    skip_space(p);
    return true;
}

/* A quantifier after the item at v[start, n), if there is one. */
static bool parse_quantifier(struct parser *p, struct pgd__gvec *v, size_t start)
{
    if (p->i >= p->n)
        return true;
    char c = p->s[p->i];
    int min, max;
    if (c == '*' || c == '+' || c == '?') {
        p->i++;
        min = c == '+' ? 1 : 0;
        max = c == '?' ? 1 : PGD__REPEAT_INF;
    } else if (c == '{') {
        size_t open = p->i++;
        if (!parse_int(p, &min))
            return false;
        max = min;
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            skip_space(p);
            if (p->i < p->n && p->s[p->i] == '}')
                max = PGD__REPEAT_INF;
            else if (!parse_int(p, &max))
                return false;
        }
        if (p->i >= p->n || p->s[p->i] != '}')
            return fail(p, open, "expected } to close the repetition", NULL);
        p->i++;
        if (max != PGD__REPEAT_INF && max < min)
            return fail(p, open, "a repetition {m,n} needs m <= n", NULL);
    } else {
        return true;
    }
    if (v->n == start)
        return true;                /* an empty literal repeated is still empty */
    if (!pgd__gb_repeat(p->b, v, start, min, max, "rep"))
        return nomem(p);
    return true;
}

static bool parse_alternatives(struct parser *p, struct pgd__gvec *v);

static bool parse_item(struct parser *p, struct pgd__gvec *v)
{
    char c = p->s[p->i];
    size_t start = v->n;
    if (c == '"' || c == '\'') {
        if (!parse_literal(p, v))
            return false;
    } else if (c == '[') {
        if (!parse_class(p, v))
            return false;
    } else if (c == '.') {
        p->i++;
        pgd__gb_cset_begin(p->b);
        int id = pgd__gb_cset_end(p->b, true);
        if (id < 0 || !pgd__gvec_push(p->b, v, PGD__GE_TERM, (uint32_t)id))
            return nomem(p);
    } else if (c == '/') {
        if (!parse_regex(p, v))
            return false;
    } else if (c == '(') {
        size_t open = p->i++;
        if (++p->depth > 200)
            return fail(p, open, "groups nested too deeply", NULL);
        if (!parse_alternatives(p, v))
            return false;
        p->depth--;
        if (p->i >= p->n || p->s[p->i] != ')')
            return fail(p, open, "expected ) to close this group", NULL);
        p->i++;
        if (!pgd__gb_group(p->b, v, start, "group"))
            return nomem(p);
    } else if (is_name_char(c)) {
        size_t e = name_end(p, p->i);
        int id = pgd__gb_rule(p->b, p->s + p->i, e - p->i);
        if (id < 0 || !pgd__gvec_push(p->b, v, PGD__GE_REF, (uint32_t)id))
            return nomem(p);
        p->i = e;
    } else if (c == '%') {
        return fail(p, p->i, "lark directives (%import, %ignore, ...) are not supported", NULL);
    } else {
        return fail(p, p->i, "unexpected character '", (char[]){ c, '\'', 0 });
    }
    return parse_quantifier(p, v, start);
}

/* A sequence ends at the end, at ')' or '|', or where the next rule's head begins. */
static bool parse_sequence(struct parser *p, struct pgd__gvec *v)
{
    for (;;) {
        skip_space(p);
        size_t ns, ne, body;
        if (p->i >= p->n || p->s[p->i] == ')' || p->s[p->i] == '|' ||
            rule_head(p, p->i, &ns, &ne, &body))
            return true;
        if (!parse_item(p, v))
            return false;
    }
}

static bool parse_alternatives(struct parser *p, struct pgd__gvec *v)
{
    for (;;) {
        if (!parse_sequence(p, v))
            return false;
        if (p->i < p->n && p->s[p->i] == '|') {
            p->i++;
            if (!pgd__gvec_push(p->b, v, PGD__GE_ALT, 0))
                return nomem(p);
            continue;
        }
        return true;
    }
}

static bool parse_rules(struct parser *p)
{
    for (;;) {
        skip_space(p);
        if (p->i >= p->n)
            return true;
        size_t ns, ne, body;
        if (p->s[p->i] == '%')
            return fail(p, p->i, "lark directives (%import, %ignore, ...) are not supported",
                        NULL);
        if (!rule_head(p, p->i, &ns, &ne, &body))
            return fail(p, p->i, "expected a rule: name ::= ...", NULL);
        int id = pgd__gb_rule(p->b, p->s + ns, ne - ns);
        if (id < 0)
            return nomem(p);
        if (p->b->rules[id].defined)
            return fail(p, ns, "rule defined twice: ", p->b->rules[id].name);
        p->i = body;
        struct pgd__gvec v = { 0 };
        bool ok = parse_alternatives(p, &v);
        if (ok && p->i < p->n && p->s[p->i] == ')')
            ok = fail(p, p->i, "a ) without its (", NULL);
        if (ok && !pgd__gb_define(p->b, id, &v))
            ok = nomem(p);
        pgd__gvec_free(&v);
        if (!ok)
            return false;
    }
}

enum pgd_status pgd__grammar_parse_ex(const char *text, size_t len, const char *what,
                                      bool regex_json, struct pgd__grammar **out, char *err,
                                      size_t errlen)
{
    struct pgd__gbuilder b;
    pgd__gb_init(&b);
    struct parser p = { .s = text, .n = len, .what = what, .b = &b, .err = err,
                        .errlen = errlen, .regex_json = regex_json };
    *out = NULL;
    if (!parse_rules(&p)) {
        pgd__gb_fini(&b);
        return p.oom ? PGD_ERR_NOMEM : PGD_ERR_INVALID_ARG;
    }
    return pgd__gb_finish(&b, what, out, err, errlen);
}

enum pgd_status pgd__grammar_parse(const char *text, size_t len, const char *what,
                                   struct pgd__grammar **out, char *err, size_t errlen)
{
    return pgd__grammar_parse_ex(text, len, what, false, out, err, errlen);
}
