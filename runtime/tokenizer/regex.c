/* Regular expressions of tokenizer.json (Oniguruma syntax, as `tokenizers` compiles them)
 * through PCRE2 + JIT: the translation of what the two spell differently, and replacing every
 * match the way `tokenizers` finds matches. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <string.h>

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
                ok = pgd__buf_append(&p, in_class ? WS_CLASS : "[" WS_CLASS "]",
                                  strlen(in_class ? WS_CLASS : "[" WS_CLASS "]"));
            else if (d == 'S' && !in_class)
                ok = pgd__buf_append(&p, "[^" WS_CLASS "]", strlen("[^" WS_CLASS "]"));
            else
                ok = pgd__buf_append(&p, pattern + i, 2);
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            ok = pgd__buf_append(&p, &c, 1);
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < len && pattern[i + 1] == '^') {
                ok = ok && pgd__buf_append(&p, "^", 1);
                i++;
            }
            if (i + 1 < len && pattern[i + 1] == ']') {
                ok = ok && pgd__buf_append(&p, "]", 1);
                i++;
            }
            continue;
        }
        if (c == '[' && in_class && i + 1 < len && pattern[i + 1] == ':') {
            const char *end = strstr(pattern + i, ":]");
            if (end && (size_t)(end - pattern) < len) {
                ok = pgd__buf_append(&p, pattern + i, (size_t)(end - (pattern + i)) + 2);
                i = (size_t)(end - pattern) + 1;
                continue;
            }
        }
        if (c == ']' && in_class)
            in_class = false;
        ok = ok && pgd__buf_append(&p, &c, 1);
    }
    if (!ok) {
        pgd__buf_fini(&p);
        pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(p.p ? p.p : ""), p.len, PCRE2_UTF | PCRE2_UCP,
                                   &code, &at, NULL);
    pgd__buf_fini(&p);
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

enum pgd_status pgd__regex_replace(const pcre2_code *re, const char *s, size_t n, const char *rep,
                                   size_t rlen, struct pgd__buf *out, bool *first_deleted)
{
    *first_deleted = false;
    if (n == 0)
        return PGD_OK; /* tokenizers: an empty text has no match, not even an empty one */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        return PGD_ERR_NOMEM;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t done = 0, at = 0;
    bool ok = true, any = false;
    while (ok && at <= n &&
           pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, NULL) >= 0) {
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {
            /* tokenizers (onig's find_iter): an empty match counts, except right where the
             * previous match ended; the search then goes on one character later */
            size_t k = ms < n ? pgd__utf8_next((const unsigned char *)s + ms, n - ms, NULL) : 0;
            at = ms + (k ? k : 1);
            if (any && ms == done)
                continue;
        } else
            at = me;
        if (ms == 0 && me > 0 && rlen == 0)
            *first_deleted = true;
        ok = pgd__buf_append(out, s + done, ms - done) && pgd__buf_append(out, rep, rlen);
        done = me;
        any = true;
    }
    pcre2_match_data_free(md);
    return ok && pgd__buf_append(out, s + done, n - done) ? PGD_OK : PGD_ERR_NOMEM;
}
