/* The Precompiled normalizer: SentencePiece's normalization rules compiled into
 * "precompiled_charsmap" (base64 of: a little-endian uint32 byte size of the trie, the trie as
 * a darts-clone double array of uint32 units, then the replacement strings, each ending in a
 * NUL), run the way `tokenizers` runs it. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 (padding optional) into out; false if s is not base64. */
static bool b64_decode(const char *s, size_t n, struct pgd__buf *out, bool *nomem)
{
    uint32_t acc = 0;
    int bits = 0;
    *nomem = false;
    while (n && s[n - 1] == '=')
        n--;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            unsigned char byte = (unsigned char)(acc >> bits);
            if (!pgd__buf_append(out, &byte, 1)) {
                *nomem = true;
                return false;
            }
        }
    }
    return true;
}

enum pgd_status pgd__precompiled_load(struct pgd__norm *nm, const char *b64, size_t len,
                                      const char *name, char *err, size_t errlen)
{
    struct pgd__buf raw = { 0 };
    bool nomem;
    if (!b64_decode(b64, len, &raw, &nomem)) {
        pgd__buf_fini(&raw);
        return nomem ? PGD_ERR_NOMEM
                     : pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer Precompiled: "
                                "\"precompiled_charsmap\" is not base64", name);
    }
    const unsigned char *u = (const unsigned char *)raw.p;
    uint32_t trie_bytes = raw.len >= 4 ? (uint32_t)u[0] | (uint32_t)u[1] << 8 |
                                             (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24 : 0;
    if (raw.len < 4 || trie_bytes % 4 || trie_bytes == 0 || trie_bytes > raw.len - 4) {
        pgd__buf_fini(&raw);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer Precompiled: "
                        "\"precompiled_charsmap\" has no valid trie", name);
    }
    nm->trie_n = trie_bytes / 4;
    nm->trie = malloc(nm->trie_n * sizeof *nm->trie);
    nm->blen = raw.len - 4 - trie_bytes;
    nm->b = pgd__dupn(raw.p + 4 + trie_bytes, nm->blen);
    if (!nm->trie || !nm->b) {
        pgd__buf_fini(&raw);
        return PGD_ERR_NOMEM;
    }
    for (size_t i = 0; i < nm->trie_n; i++) {
        const unsigned char *p = u + 4 + 4 * i;
        nm->trie[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                      (uint32_t)p[3] << 24;
    }
    pgd__buf_fini(&raw);
    return PGD_OK;
}

/* darts-clone's unit fields */
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static bool unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* The replacement for chunk: that of its shortest prefix in the trie (`tokenizers` takes the
 * first common-prefix result and replaces the whole chunk with it). NULL: no prefix matches. */
static const char *transform(const struct pgd__norm *nm, const char *chunk, size_t n,
                             size_t *out_len)
{
    size_t pos = unit_offset(nm->trie[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)chunk[i];
        if (c == 0)
            break;
        pos ^= c;
        if (pos >= nm->trie_n || unit_label(nm->trie[pos]) != c)
            return NULL;
        bool leaf = unit_has_leaf(nm->trie[pos]);
        pos ^= unit_offset(nm->trie[pos]);
        if (pos >= nm->trie_n)
            return NULL;
        if (leaf) {
            size_t at = unit_value(nm->trie[pos]);
            if (at >= nm->blen)
                return NULL;
            const char *end = memchr(nm->b + at, '\0', nm->blen - at);
            *out_len = end ? (size_t)(end - (nm->b + at)) : nm->blen - at;
            return nm->b + at;
        }
    }
    return NULL;
}

bool pgd__precompiled_normalize(const struct pgd__norm *nm, const char *s, size_t n,
                                struct pgd__buf *out, bool *first_deleted)
{
    *first_deleted = false;
    size_t g = 0; /* start of the current grapheme cluster */
    utf8proc_int32_t state = 0;
    while (g < n) {
        /* extend the grapheme cluster (extended, UAX #29) starting at g */
        size_t k, e = g;
        uint32_t prev = pgd__utf8_decode_valid((const unsigned char *)s + e, &k);
        e += k;
        while (e < n) {
            uint32_t c = pgd__utf8_decode_valid((const unsigned char *)s + e, &k);
            if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)c,
                                                 &state))
                break;
            prev = c;
            e += k;
        }
        size_t rl;
        const char *r = e - g < 6 ? transform(nm, s + g, e - g, &rl) : NULL;
        if (r) {
            if (g == 0 && rl == 0)
                *first_deleted = true;
            if (!pgd__buf_append(out, r, rl))
                return false;
            g = e;
            continue;
        }
        /* else character by character */
        for (size_t i = g; i < e; i += k) {
            pgd__utf8_decode_valid((const unsigned char *)s + i, &k);
            r = transform(nm, s + i, k, &rl);
            if (r && i == 0 && rl == 0)
                *first_deleted = true;
            if (!(r ? pgd__buf_append(out, r, rl) : pgd__buf_append(out, s + i, k)))
                return false;
        }
        g = e;
    }
    return true;
}
