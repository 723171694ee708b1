/* Small pieces the tokenizer files share: string replacement, length-bearing string copies,
 * JSON string fields, the byte-level alphabet, a string -> id hash table. (Byte buffers and
 * UTF-8 are runtime/base/buf.h and utf8.h.) */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

bool pgd__replace_all(const char *s, size_t n, const char *pat, size_t plen, const char *rep,
                      size_t rlen, struct pgd__buf *out)
{
    if (plen == 0)
        return pgd__buf_append(out, s, n);
    size_t i = 0;
    while (i < n) {
        const char *hit = memmem(s + i, n - i, pat, plen);
        if (!hit)
            break;
        if (!pgd__buf_append(out, s + i, (size_t)(hit - (s + i))) ||
            !pgd__buf_append(out, rep, rlen))
            return false;
        i = (size_t)(hit - s) + plen;
    }
    return pgd__buf_append(out, s + i, n - i);
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

bool pgd__bytelevel_unmap(const char *s, size_t n, struct pgd__buf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = pgd__utf8_next(s + i, n - i, &cp);
        int byte = k ? pgd__bytelevel_byte(cp) : -1;
        if (byte < 0) {
            out->len = start;
            if (out->p)
                out->p[start] = '\0';
            return false;
        }
        unsigned char c = (unsigned char)byte;
        if (!pgd__buf_append(out, &c, 1))
            return false;
        i += k;
    }
    return true;
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
    pgd__buf_fini(&m->keys);
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
    if (!pgd__buf_append(&m->keys, key, len))
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
