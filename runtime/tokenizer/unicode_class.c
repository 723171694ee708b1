/* Character classes the pre-tokenizers, normalizers and added-token matcher test, defined as
 * the `tokenizers` package defines them (Rust's char methods and the Unicode crates it uses).
 * Where its Unicode tables differ from utf8proc's, the classes come from
 * runtime/tokenizer/unicode_tables.c, read off the package by
 * scripts/make_tokenizer_unicode_tables.py; the rest from utf8proc. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <utf8proc.h>

static bool in_ranges(const struct pgd__cp_range *r, size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* the first range whose end is >= c */
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].hi < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && r[lo].lo <= c;
}

bool pgd__uc_is_white_space(uint32_t c) /* the White_Space property (char::is_whitespace) */
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

bool pgd__uc_is_alnum(uint32_t c) /* letters and numbers (close to Alphabetic || Numeric) */
{
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

bool pgd__uc_is_punct(uint32_t c) { return in_ranges(pgd__uc_punct, pgd__uc_punct_n, c); }
bool pgd__uc_is_numeric(uint32_t c) { return in_ranges(pgd__uc_numeric, pgd__uc_numeric_n, c); }
bool pgd__uc_is_word(uint32_t c) { return in_ranges(pgd__uc_word, pgd__uc_word_n, c); }
bool pgd__uc_is_mark(uint32_t c) { return in_ranges(pgd__uc_mark, pgd__uc_mark_n, c); }

bool pgd__uc_is_nonspacing(uint32_t c)
{
    return in_ranges(pgd__uc_nonspacing, pgd__uc_nonspacing_n, c);
}

bool pgd__uc_is_bert_control(uint32_t c)
{
    return in_ranges(pgd__uc_bert_ctrl, pgd__uc_bert_ctrl_n, c);
}

bool pgd__uc_is_chinese(uint32_t c) /* the CJK blocks BertNormalizer pads with spaces */
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

uint32_t pgd__uc_script_class(uint32_t c)
{
    if (c == ' ')
        return 0;
    size_t lo = 0, hi = pgd__uc_script_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pgd__uc_script[mid].hi < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < pgd__uc_script_n && pgd__uc_script[lo].lo <= c ? pgd__uc_script[lo].id : 0;
}

size_t pgd__uc_lower(uint32_t c, uint32_t out[2])
{
    /* Rust's char::to_lowercase, character by character (no final-sigma context, as the
     * Lowercase normalizer calls it per char); U+0130 is its one two-character mapping. */
    if (c == 0x130) {
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    if (c < 0x80) {
        out[0] = c >= 'A' && c <= 'Z' ? c + 32 : c;
        return 1;
    }
    size_t lo = 0, hi = pgd__uc_lower_map_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pgd__uc_lower_map[mid].from < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool hit = lo < pgd__uc_lower_map_n && pgd__uc_lower_map[lo].from == c;
    out[0] = hit ? pgd__uc_lower_map[lo].to : c;
    return 1;
}

uint32_t pgd__uc_last_char(const char *s, size_t n, size_t *start)
{
    if (n == 0)
        return (uint32_t)-1;
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    size_t k;
    *start = i;
    return pgd__utf8_decode_valid((const unsigned char *)s + i, &k);
}
