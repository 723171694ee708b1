/* UTF-8 decoding, validation, encoding and lossy repair, by the table in utf8.h. */
#include "runtime/base/utf8.h"

/* The range the second byte of a sequence starting with lead byte c must be in (table 3-7);
 * the later bytes are always 80..BF. Returns the sequence length, 0 for a lead that cannot
 * start one (a continuation byte, C0, C1, F5..FF). */
static size_t lead_info(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return 2;
    if (c < 0xF0) {
        if (c == 0xE0) *lo = 0xA0;  /* below: overlong */
        if (c == 0xED) *hi = 0x9F;  /* above: surrogates */
        return 3;
    }
    if (c < 0xF5) {
        if (c == 0xF0) *lo = 0x90;  /* below: overlong */
        if (c == 0xF4) *hi = 0x8F;  /* above: beyond U+10FFFF */
        return 4;
    }
    return 0;
}

/* How many leading bytes of s[0..n) match a well-formed sequence of length need (at least
 * the lead byte). */
static size_t matched(const unsigned char *s, size_t n, size_t need, unsigned char lo,
                      unsigned char hi)
{
    size_t i = 1;
    if (i < need && i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < need && i < n && (s[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

size_t pgd__utf8_next(const void *sv, size_t n, uint32_t *cp)
{
    const unsigned char *s = sv;
    if (n == 0)
        return 0;
    unsigned char lo, hi;
    size_t need = lead_info(s[0], &lo, &hi);
    if (need == 0 || matched(s, n, need, lo, hi) < need)
        return 0;
    if (cp) {
        /* the lead byte keeps 7, 5, 4 or 3 payload bits; each continuation byte 6 */
        static const unsigned char lead_mask[5] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
        uint32_t c = s[0] & lead_mask[need];
        for (size_t i = 1; i < need; i++)
            c = (c << 6) | (s[i] & 0x3F);
        *cp = c;
    }
    return need;
}

uint32_t pgd__utf8_decode_valid(const void *sv, size_t *len)
{
    const unsigned char *s = sv;
    unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

size_t pgd__utf8_validate(const void *sv, size_t n)
{
    const unsigned char *s = sv;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {  /* the common case, without a call */
            i++;
            continue;
        }
        size_t k = pgd__utf8_next(s + i, n - i, NULL);
        if (!k)
            break;
        i += k;
    }
    return i;
}

size_t pgd__utf8_bad_len(const void *sv, size_t n)
{
    const unsigned char *s = sv;
    unsigned char lo, hi;
    size_t need = lead_info(s[0], &lo, &hi);
    return need <= 1 ? 1 : matched(s, n, need, lo, hi);
}

size_t pgd__utf8_put(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF)
        return 0;
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool pgd__utf8_append_lossy(struct pgd__buf *b, const void *sv, size_t n)
{
    const char *s = sv;
    if (n == 0)
        return pgd__buf_append(b, s, 0); /* still leaves b NUL-terminated */
    size_t i = 0;
    while (i < n) {
        size_t ok = pgd__utf8_validate(s + i, n - i);
        if (!pgd__buf_append(b, s + i, ok))
            return false;
        i += ok;
        if (i < n) {
            if (!pgd__buf_append(b, "\xEF\xBF\xBD", 3))
                return false;
            i += pgd__utf8_bad_len(s + i, n - i);
        }
    }
    return !b->failed;
}
