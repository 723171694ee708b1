/* Small pieces the tokenizer files share: byte buffers, string replacement, UTF-8, the
 * byte-level alphabet, a string -> id hash table, JSON string fields. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

bool pgd__buf_reserve(struct pgd__buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool pgd__buf_add(struct pgd__buf *b, const void *s, size_t n)
{
    if (!pgd__buf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

void pgd__buf_free(struct pgd__buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

bool pgd__replace_all(const char *s, size_t n, const char *pat, size_t plen, const char *rep,
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

char *pgd__dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

const char *pgd__jstr(const void *obj, const char *key)
{
    json_t *v = json_object_get((const json_t *)obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

size_t pgd__utf8_valid_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3)
            return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        return (s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
    }
    if (c < 0xF5) {
        if (n < 4)
            return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        return (s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80)
                   ? 4 : 0;
    }
    return 0;
}

size_t pgd__utf8_invalid_len(const unsigned char *s, size_t n)
{
    /* The maximal subpart: the longest prefix of a well-formed sequence, at least one byte. */
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c < 0xE0) need = 2;
    else if (c >= 0xE0 && c < 0xF0) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c < 0xF5) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < need && i < n && (s[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

uint32_t pgd__utf8_decode(const unsigned char *s, size_t *len)
{
    unsigned char c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    if (c < 0xE0) { *len = 2; return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F); }
    if (c < 0xF0) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

size_t pgd__utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool pgd__utf8_lossy_append(struct pgd__buf *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        size_t k = pgd__utf8_valid_len(u + i, n - i);
        if (k) { i += k; continue; }
        if (!pgd__buf_add(out, s + run, i - run) || !pgd__buf_add(out, "\xEF\xBF\xBD", 3))
            return false;
        i += pgd__utf8_invalid_len(u + i, n - i);
        run = i;
    }
    return pgd__buf_add(out, s + run, n - run);
}

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * map in order to U+0100 and up. */
static uint32_t bl_char[256];
static int16_t bl_byte[0x200];
static void bl_init_once(void)
{
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        bl_char[b] = printable ? (uint32_t)b : (uint32_t)(0x100 + extra++);
    }
    for (int i = 0; i < 0x200; i++)
        bl_byte[i] = -1;
    for (int b = 0; b < 256; b++)
        bl_byte[bl_char[b]] = (int16_t)b;
}
#include <pthread.h>
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

uint32_t pgd__bytelevel_char(uint8_t b)
{
    pthread_once(&bl_once, bl_init_once);
    return bl_char[b];
}

int pgd__bytelevel_byte(uint32_t cp)
{
    pthread_once(&bl_once, bl_init_once);
    return cp < 0x200 ? bl_byte[cp] : -1;
}

/* ---- string map ------------------------------------------------------------------------- */

bool pgd__strmap_init(struct pgd__strmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    memset(m, 0, sizeof *m);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return false;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].val = -1;
    m->mask = cap - 1;
    return true;
}

void pgd__strmap_free(struct pgd__strmap *m)
{
    free(m->slots);
    pgd__buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static bool strmap_grow(struct pgd__strmap *m)
{
    size_t cap = (m->mask + 1) * 2;
    struct pgd__strmap_slot *s = malloc(cap * sizeof *s);
    if (!s)
        return false;
    for (size_t i = 0; i < cap; i++)
        s[i].val = -1;
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].val < 0)
            continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (s[j].val >= 0)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->mask = cap - 1;
    return true;
}

bool pgd__strmap_put(struct pgd__strmap *m, const char *key, size_t len, int32_t val)
{
    if ((m->count + 1) * 2 > m->mask + 1 && !strmap_grow(m))
        return false;
    uint64_t h = XXH3_64bits(key, len);
    size_t i = h & m->mask;
    while (m->slots[i].val >= 0) {
        struct pgd__strmap_slot *s = &m->slots[i];
        if (s->hash == h && s->len == len && !memcmp(m->keys.p + s->off, key, len)) {
            s->val = val;
            return true;
        }
        i = (i + 1) & m->mask;
    }
    size_t off = m->keys.len;
    if (!pgd__buf_add(&m->keys, key, len))
        return false;
    m->slots[i] = (struct pgd__strmap_slot){ h, (uint32_t)off, (uint32_t)len, val };
    m->count++;
    return true;
}

int32_t pgd__strmap_get(const struct pgd__strmap *m, const char *key, size_t len)
{
    if (!m->slots)
        return -1;
    uint64_t h = XXH3_64bits(key, len);
    size_t i = h & m->mask;
    while (m->slots[i].val >= 0) {
        const struct pgd__strmap_slot *s = &m->slots[i];
        if (s->hash == h && s->len == len && !memcmp(m->keys.p + s->off, key, len))
            return s->val;
        i = (i + 1) & m->mask;
    }
    return -1;
}
