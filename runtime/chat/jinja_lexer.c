/* Jinja lexer: template text and tags into tokens, with Jinja's whitespace control as
 * transformers configures it (trim_blocks and lstrip_blocks on, `-` and `+` modifiers). */
#include "runtime/chat/jinja.h"
#include <stdlib.h>
#include <string.h>

struct lexer {
    struct pgd__jarena *a;
    struct pgd__jfail *f;
    const char *s;
    size_t n, pos;
    struct pgd__jtoken *t;
    size_t nt, cap;
    bool line_starting;
};

static struct pgd__jtoken *emit(struct lexer *L, enum pgd__jtok type, size_t off)
{
    pgd__jreserve(L->a, L->t, L->cap, L->nt + 1, 256);
    struct pgd__jtoken *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->off = off;
    return t;
}

static size_t space_at(const char *s, size_t n, size_t i)
{
    /* byte length of the whitespace character at i, 0 if none */
    if (i >= n)
        return 0;
    size_t len;
    uint32_t cp = pgd__jutf8_next(s + i, n - i, &len);
    return pgd__jis_space(cp) ? len : 0;
}

static size_t skip_space(const char *s, size_t n, size_t i)
{
    size_t k;
    while ((k = space_at(s, n, i)) > 0)
        i += k;
    return i;
}

/* Length of text[0..n) with trailing (Unicode) whitespace removed. */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1;
        while (st > 0 && end - st < 4 && ((unsigned char)s[st] & 0xC0) == 0x80)
            st--;
        size_t len;
        uint32_t cp = pgd__jutf8_next(s + st, end - st, &len);
        if (st + len != end || !pgd__jis_space(cp))
            break;
        end = st;
    }
    return end;
}

static bool all_space(const char *s, size_t n)
{
    size_t i = 0, k;
    while (i < n) {
        if (!(k = space_at(s, n, i)))
            return false;
        i += k;
    }
    return true;
}

/* Emits text s[from..to) as data after applying the whitespace control of the tag that
 * follows it: sign is '-', '+' or 0; lstrip says whether lstrip_blocks applies to the tag. */
static void emit_text(struct lexer *L, size_t from, size_t to, char sign, bool lstrip)
{
    size_t len = to - from;
    const char *text = L->s + from;
    if (sign == '-') {
        len = rstrip_len(text, len);
    } else if (sign != '+' && lstrip) {
        size_t lpos = 0;
        for (size_t i = len; i > 0; i--)
            if (text[i - 1] == '\n') {
                lpos = i;
                break;
            }
        if ((lpos > 0 || L->line_starting) && len > lpos && all_space(text + lpos, len - lpos))
            len = lpos;
    }
    if (len) {
        struct pgd__jtoken *t = emit(L, PGD__T_DATA, from);
        t->str = pgd__jstrndup(L->a, text, len);
        t->len = len;
    }
}

static bool starts(const struct lexer *L, size_t i, const char *lit)
{
    size_t k = strlen(lit);
    return i + k <= L->n && memcmp(L->s + i, lit, k) == 0;
}

/* If `{%[-+]? WORD` starts at i: the offset past WORD and the spaces after it (the sign,
 * or 0, in *sign); else 0. The raw tags' shared start. */
static size_t match_tag_word(const struct lexer *L, size_t i, const char *word, char *sign)
{
    if (!starts(L, i, "{%"))
        return 0;
    size_t p = i + 2;
    *sign = 0;
    if (p < L->n && (L->s[p] == '-' || L->s[p] == '+'))
        *sign = L->s[p++];
    p = skip_space(L->s, L->n, p);
    if (!starts(L, p, word))
        return 0;
    return skip_space(L->s, L->n, p + strlen(word));
}

/* If a raw-begin tag `{%[-+]? raw [-]%}` starts at i, returns its end (and sets *sign). */
static size_t match_raw_begin(const struct lexer *L, size_t i, char *sign)
{
    size_t p = match_tag_word(L, i, "raw", sign);
    if (!p)
        return 0;
    if (starts(L, p, "-%}"))
        return skip_space(L->s, L->n, p + 3);
    if (starts(L, p, "%}"))
        return p + 2;
    return 0;
}

/* If `{%[-+]? endraw (+%}|-%}\s*|%}\n?)` starts at i, returns its end (sign in *sign). */
static size_t match_raw_end(const struct lexer *L, size_t i, char *sign)
{
    size_t p = match_tag_word(L, i, "endraw", sign);
    if (!p)
        return 0;
    if (starts(L, p, "+%}"))
        return p + 3;
    if (starts(L, p, "-%}"))
        return skip_space(L->s, L->n, p + 3);
    if (starts(L, p, "%}"))
        return p + 2 + (starts(L, p + 2, "\n") ? 1 : 0);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Unescapes a string literal body as Python's "unicode-escape" codec does after Jinja has
 * backslash-replaced its non-ASCII characters. */
static void unescape(struct lexer *L, size_t at, const char *s, size_t n,
                     const char **out, size_t *outlen)
{
    struct pgd__jbuf b = { 0 };
    pgd__jbuf_put(L->a, &b, "", 0);
    size_t i = 0;
    while (i < n) {
        const char *bs = memchr(s + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
        pgd__jbuf_put(L->a, &b, s + i, run);
        i += run;
        if (i >= n)
            break;
        i++;   /* the backslash */
        if (i >= n) {
            pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)at, "\\ at end of string");
        }
        char c = s[i];
        uint32_t cp;
        int digits;
        switch (c) {
        case '\n': i++; continue;
        case '\\': pgd__jbuf_putc(L->a, &b, '\\'); i++; continue;
        case '\'': pgd__jbuf_putc(L->a, &b, '\''); i++; continue;
        case '"': pgd__jbuf_putc(L->a, &b, '"'); i++; continue;
        case 'a': pgd__jbuf_putc(L->a, &b, '\a'); i++; continue;
        case 'b': pgd__jbuf_putc(L->a, &b, '\b'); i++; continue;
        case 'f': pgd__jbuf_putc(L->a, &b, '\f'); i++; continue;
        case 'n': pgd__jbuf_putc(L->a, &b, '\n'); i++; continue;
        case 'r': pgd__jbuf_putc(L->a, &b, '\r'); i++; continue;
        case 't': pgd__jbuf_putc(L->a, &b, '\t'); i++; continue;
        case 'v': pgd__jbuf_putc(L->a, &b, '\v'); i++; continue;
        case 'x': digits = 2; goto hex;
        case 'u': digits = 4; goto hex;
        case 'U': digits = 8; goto hex;
        default:
            break;
        }
        if (c >= '0' && c <= '7') {
            cp = 0;
            for (int k = 0; k < 3 && i < n && s[i] >= '0' && s[i] <= '7'; k++, i++)
                cp = cp * 8 + (uint32_t)(s[i] - '0');
            char u[4];
            pgd__jbuf_put(L->a, &b, u, pgd__utf8_put(cp, u));
            continue;
        }
        if ((unsigned char)c >= 0x80) {
            /* Jinja turned the character into \xNN, \uNNNN or \UNNNNNNNN before decoding, and
             * the backslash in front of it escapes that backslash. */
            size_t len;
            cp = pgd__jutf8_next(s + i, n - i, &len);
            pgd__jbuf_printf(L->a, &b, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x"
                                                                              : "\\U%08x", cp);
            i += len;
            continue;
        }
        if (c == 'N')
            pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)at,
                        "\\N{...} escapes are not supported in string literals");
        /* an unknown escape keeps its backslash */
        pgd__jbuf_putc(L->a, &b, '\\');
        continue;
    hex:
        i++;
        cp = 0;
        for (int k = 0; k < digits; k++, i++) {
            int h = i < n ? hexval(s[i]) : -1;
            if (h < 0)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)at, "truncated \\%c escape in string",
                            c);
            cp = cp * 16 + (uint32_t)h;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)at,
                        "illegal Unicode character in string literal");
        char u[4];
        pgd__jbuf_put(L->a, &b, u, pgd__utf8_put(cp, u));
    }
    *out = b.p;
    *outlen = b.n;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* Digits with single '_' separators: returns the end, or start when none. */
static size_t digits_end(const char *s, size_t n, size_t i)
{
    size_t st = i;
    while (i < n && is_digit(s[i])) {
        i++;
        if (i + 1 < n && s[i] == '_' && is_digit(s[i + 1]))
            i++;
    }
    return i == st ? st : i;
}

static void strip_underscores(char *dst, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            dst[k++] = s[i];
    dst[k] = '\0';
}

static size_t lex_number(struct lexer *L, size_t i)
{
    const char *s = L->s;
    size_t n = L->n;
    size_t d = digits_end(s, n, i);
    /* float: digits '.' digits [e exp] | digits e exp ; not right after a '.' */
    if (!(i > 0 && s[i - 1] == '.')) {
        size_t p = d;
        bool frac = false;
        if (p < n && s[p] == '.' && p + 1 < n && is_digit(s[p + 1])) {
            p = digits_end(s, n, p + 1);
            frac = true;
        }
        size_t q = p;
        bool exp = false;
        if (q < n && (s[q] == 'e' || s[q] == 'E')) {
            size_t r = q + 1;
            if (r < n && (s[r] == '+' || s[r] == '-'))
                r++;
            size_t e = digits_end(s, n, r);
            if (e > r) {
                q = e;
                exp = true;
            }
        }
        if (frac || exp) {
            size_t end = exp ? q : p;
            char tmp[128];
            if (end - i >= sizeof tmp)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "number literal too long");
            strip_underscores(tmp, s + i, end - i);
            struct pgd__jtoken *t = emit(L, PGD__T_FLOAT, i);
            t->f = strtod(tmp, NULL);
            return end;
        }
    }
    /* integer: 0b / 0o / 0x prefixes, decimal, or zeros */
    int base = 10;
    size_t p = i, st;
    if (s[i] == '0' && i + 1 < n && strchr("bBoOxX", s[i + 1]) && s[i + 1]) {
        char k = (char)(s[i + 1] | 0x20);
        base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
        p = i + 2;
        st = p;
        while (p < n) {
            char c = s[p];
            int v = hexval(c);
            if (c == '_' && p + 1 < n) {
                p++;
                continue;
            }
            if (v < 0 || v >= base)
                break;
            p++;
        }
        if (p == st) {
            base = 10;   /* just "0" */
            p = i + 1;
        }
    } else if (s[i] == '0') {
        p = i + 1;
        while (p < n && (s[p] == '0' || (s[p] == '_' && p + 1 < n && s[p + 1] == '0')))
            p++;
    } else {
        p = d;
    }
    char tmp[128];
    if (p - i >= sizeof tmp)
        pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "number literal too long");
    strip_underscores(tmp, s + i + (base == 10 ? 0 : 2), p - i - (base == 10 ? 0 : 2));
    char *end;
    unsigned long long v = strtoull(tmp, &end, base);
    if (v > (unsigned long long)INT64_MAX)
        pgd__jthrow(L->f, PGD_ERR_UNSUPPORTED, (long)i, "integer literal too large");
    struct pgd__jtoken *t = emit(L, PGD__T_INT, i);
    t->i = (int64_t)v;
    return p;
}

static const struct {
    const char *s;
    int op;
} ops[] = {
    { "//", PGD__OP_FLOORDIV }, { "**", PGD__OP_POW }, { "==", PGD__OP_EQ },
    { "!=", PGD__OP_NE }, { "<=", PGD__OP_LTEQ }, { ">=", PGD__OP_GTEQ },
    { "+", PGD__OP_ADD }, { "-", PGD__OP_SUB }, { "/", PGD__OP_DIV }, { "*", PGD__OP_MUL },
    { "%", PGD__OP_MOD }, { "~", PGD__OP_TILDE }, { "[", PGD__OP_LBRACKET },
    { "]", PGD__OP_RBRACKET }, { "(", PGD__OP_LPAREN }, { ")", PGD__OP_RPAREN },
    { "{", PGD__OP_LBRACE }, { "}", PGD__OP_RBRACE }, { "<", PGD__OP_LT }, { ">", PGD__OP_GT },
    { "=", PGD__OP_ASSIGN }, { ".", PGD__OP_DOT }, { ":", PGD__OP_COLON },
    { "|", PGD__OP_PIPE }, { ",", PGD__OP_COMMA }, { ";", PGD__OP_SEMICOLON },
};

/* Tokenizes the inside of a {{ }} (block = false) or {% %} tag starting at i; returns the
 * position after the closing delimiter. */
static size_t lex_tag(struct lexer *L, size_t i, bool block, size_t tag_off)
{
    const char *s = L->s;
    size_t n = L->n;
    char stack[256];
    size_t depth = 0;
    for (;;) {
        if (depth == 0) {
            if (block) {
                if (starts(L, i, "+%}")) {
                    emit(L, PGD__T_BLOCK_END, i);
                    L->line_starting = false;
                    return i + 3;
                }
                if (starts(L, i, "-%}")) {
                    emit(L, PGD__T_BLOCK_END, i);
                    size_t e = skip_space(s, n, i + 3);
                    L->line_starting = e > i + 3 && s[e - 1] == '\n';
                    return e;
                }
                if (starts(L, i, "%}")) {
                    emit(L, PGD__T_BLOCK_END, i);
                    size_t e = i + 2 + (starts(L, i + 2, "\n") ? 1 : 0);
                    L->line_starting = e > i + 2;
                    return e;
                }
            } else {
                if (starts(L, i, "-}}")) {
                    emit(L, PGD__T_VAR_END, i);
                    size_t e = skip_space(s, n, i + 3);
                    L->line_starting = e > i + 3 && s[e - 1] == '\n';
                    return e;
                }
                if (starts(L, i, "}}")) {
                    emit(L, PGD__T_VAR_END, i);
                    L->line_starting = false;
                    return i + 2;
                }
            }
        }
        if (i >= n)
            pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)tag_off,
                        "unexpected end of template, expected '%s'", block ? "%}" : "}}");
        size_t sp = skip_space(s, n, i);
        if (sp > i) {
            i = sp;
            continue;
        }
        char c = s[i];
        if (is_digit(c)) {
            i = lex_number(L, i);
            continue;
        }
        if (is_name0(c)) {
            size_t e = i + 1;
            while (e < n && (is_name0(s[e]) || is_digit(s[e])))
                e++;
            struct pgd__jtoken *t = emit(L, PGD__T_NAME, i);
            t->str = pgd__jstrndup(L->a, s + i, e - i);
            t->len = e - i;
            i = e;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t e = i + 1;
            while (e < n && s[e] != c) {
                if (s[e] == '\\')
                    e++;
                e++;
            }
            if (e >= n)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "unterminated string literal");
            struct pgd__jtoken *t = emit(L, PGD__T_STRING, i);
            unescape(L, i, s + i + 1, e - i - 1, &t->str, &t->len);
            i = e + 1;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
            if (starts(L, i, ops[k].s))
                break;
        if (k == sizeof ops / sizeof ops[0]) {
            if ((unsigned char)c >= 0x80)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "unexpected character in tag");
            pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "unexpected char '%c'", c);
        }
        int op = ops[k].op;
        if (op == PGD__OP_LBRACE || op == PGD__OP_LPAREN || op == PGD__OP_LBRACKET) {
            if (depth == sizeof stack)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "brackets nested too deeply");
            stack[depth++] = op == PGD__OP_LBRACE ? '}' : op == PGD__OP_LPAREN ? ')' : ']';
        } else if (op == PGD__OP_RBRACE || op == PGD__OP_RPAREN || op == PGD__OP_RBRACKET) {
            if (depth == 0)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "unexpected '%c'", c);
            if (stack[depth - 1] != c)
                pgd__jthrow(L->f, PGD_ERR_TEMPLATE, (long)i, "unexpected '%c', expected '%c'", c,
                            stack[depth - 1]);
            depth--;
        }
        emit(L, PGD__T_OP, i)->op = op;
        i += strlen(ops[k].s);
    }
}

void pgd__jlex(struct pgd__jarena *a, struct pgd__jfail *f, const char *src, size_t n,
               struct pgd__jtoken **out, size_t *ntok)
{
    struct lexer L = { .a = a, .f = f, .s = src, .n = n, .line_starting = true };
    size_t pos = 0;
    while (pos < n) {
        /* the next tag start */
        size_t ts = pos;
        const char *brace;
        for (;;) {
            brace = memchr(src + ts, '{', n - ts);
            if (!brace || (size_t)(brace - src) + 1 >= n) {
                brace = NULL;
                break;
            }
            char nx = brace[1];
            if (nx == '{' || nx == '%' || nx == '#')
                break;
            ts = (size_t)(brace - src) + 1;
        }
        if (!brace) {
            emit_text(&L, pos, n, 0, false);
            break;
        }
        ts = (size_t)(brace - src);
        char kind = src[ts + 1];
        char sign = 0;
        if (ts + 2 < n && (src[ts + 2] == '-' || src[ts + 2] == '+'))
            sign = src[ts + 2];
        size_t body = ts + 2 + (sign ? 1 : 0);

        if (kind == '%') {
            char rsign;
            size_t rend = match_raw_begin(&L, ts, &rsign);
            if (rend) {
                emit_text(&L, pos, ts, rsign, true);
                L.line_starting = src[rend - 1] == '\n';
                size_t j = rend, e = 0;
                char esign = 0;
                for (; j < n; j++)
                    if (src[j] == '{' && (e = match_raw_end(&L, j, &esign)))
                        break;
                if (!e)
                    pgd__jthrow(f, PGD_ERR_TEMPLATE, (long)ts, "missing end of raw directive");
                emit_text(&L, rend, j, esign, true);
                L.line_starting = src[e - 1] == '\n';
                pos = e;
                continue;
            }
        }
        emit_text(&L, pos, ts, sign, kind != '{');
        if (kind == '#') {
            size_t j = body, e = 0;
            for (; j < n; j++) {
                if (src[j] == '+' && starts(&L, j + 1, "#}")) {
                    e = j + 3;
                    L.line_starting = false;
                    break;
                }
                if (src[j] == '-' && starts(&L, j + 1, "#}")) {
                    e = skip_space(src, n, j + 3);
                    L.line_starting = e > j + 3 && src[e - 1] == '\n';
                    break;
                }
                if (src[j] == '#' && starts(&L, j + 1, "}")) {
                    e = j + 2 + (starts(&L, j + 2, "\n") ? 1 : 0);
                    L.line_starting = e > j + 2;
                    break;
                }
            }
            if (!e)
                pgd__jthrow(f, PGD_ERR_TEMPLATE, (long)ts, "missing end of comment tag");
            pos = e;
            continue;
        }
        emit(&L, kind == '%' ? PGD__T_BLOCK_BEGIN : PGD__T_VAR_BEGIN, ts);
        pos = lex_tag(&L, body, kind == '%', ts);
    }
    emit(&L, PGD__T_EOF, n);
    *out = L.t;
    *ntok = L.nt;
}
