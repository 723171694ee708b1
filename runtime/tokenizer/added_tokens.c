/* Added tokens (tokenizer.json "added_tokens") found in text: a byte trie for leftmost-longest
 * matching and the split around matches, with each token's lstrip/rstrip/single_word as
 * `tokenizers` applies them. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <stdlib.h>
#include <string.h>

void pgd__matcher_free(struct pgd__matcher *m)
{
    free(m->nodes);
    memset(m, 0, sizeof *m);
}

static int32_t trie_new(struct pgd__matcher *m, unsigned char byte)
{
    if (!pgd__array_reserve(m->nodes, m->cap, m->n + 1))
        return -1;
    m->nodes[m->n] = (struct pgd__trie_node){ -1, -1, -1, byte };
    return (int32_t)m->n++;
}

/* The child of node cur for byte b, or -1. */
static int32_t trie_child(const struct pgd__matcher *m, int32_t cur, unsigned char b)
{
    int32_t c = m->nodes[cur].child;
    while (c >= 0 && m->nodes[c].byte != b)
        c = m->nodes[c].sibling;
    return c;
}

bool pgd__matcher_add(struct pgd__matcher *m, const char *s, size_t len, int32_t token)
{
    if (len == 0)
        return true; /* an empty token never matches */
    if (m->n == 0 && trie_new(m, 0) < 0)
        return false;
    int32_t cur = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = trie_child(m, cur, b);
        if (c < 0) {
            c = trie_new(m, b);
            if (c < 0)
                return false;
            m->nodes[c].sibling = m->nodes[cur].child;
            m->nodes[cur].child = c;
        }
        cur = c;
    }
    /* The first token with a given content wins, as the added vocabulary keeps it. */
    if (m->nodes[cur].token < 0)
        m->nodes[cur].token = token;
    m->first[(unsigned char)s[0]] = true;
    return true;
}

/* Longest token starting at s[0]: its length, or 0. */
static size_t trie_longest(const struct pgd__matcher *m, const char *s, size_t n, int32_t *token)
{
    int32_t cur = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = trie_child(m, cur, (unsigned char)s[i]);
        if (c < 0)
            break;
        cur = c;
        if (m->nodes[cur].token >= 0) {
            best = i + 1;
            *token = m->nodes[cur].token;
        }
    }
    return best;
}

enum pgd_status pgd__matcher_split(const struct pgd__matcher *m, const struct pgd__added *tokens,
                                   const char *s, size_t len,
                                   enum pgd_status (*fn)(void *ctx, size_t off, size_t len,
                                                         int32_t token),
                                   void *ctx)
{
    size_t done = 0; /* everything before this offset has been handed to fn */
    enum pgd_status st;
    if (m->n) {
        for (size_t pos = 0; pos < len;) {
            int32_t tok = -1;
            size_t mlen = m->first[(unsigned char)s[pos]] ? trie_longest(m, s + pos, len - pos, &tok)
                                                          : 0;
            if (!mlen) {
                pos++;
                continue;
            }
            const struct pgd__added *a = &tokens[tok];
            size_t start = pos, stop = pos + mlen;
            if (a->single_word) {
                size_t cs;
                uint32_t before = pgd__uc_last_char(s, start, &cs);
                size_t k = 0;
                uint32_t after = stop < len && pgd__utf8_next((const unsigned char *)s + stop,
                                                                   len - stop, NULL)
                                     ? pgd__utf8_decode_valid((const unsigned char *)s + stop, &k)
                                     : (uint32_t)-1;
                bool start_ok = start == 0 || !(pgd__uc_is_alnum(before) || before == '_');
                bool stop_ok = stop == len || !(pgd__uc_is_alnum(after) || after == '_');
                if (!start_ok || !stop_ok) {
                    pos++;
                    continue;
                }
            }
            if (a->lstrip) {
                size_t ns = start, cs;
                for (;;) {
                    uint32_t c = pgd__uc_last_char(s, ns, &cs);
                    if (c == (uint32_t)-1 || !pgd__uc_is_white_space(c))
                        break;
                    ns = cs;
                }
                start = ns > done ? ns : done;
            }
            if (a->rstrip) {
                while (stop < len) {
                    size_t k;
                    uint32_t c = pgd__utf8_decode_valid((const unsigned char *)s + stop, &k);
                    if (!pgd__uc_is_white_space(c))
                        break;
                    stop += k;
                }
            }
            if (done < start && (st = fn(ctx, done, start - done, -1)) != PGD_OK)
                return st;
            if ((st = fn(ctx, start, stop - start, tok)) != PGD_OK)
                return st;
            done = stop;
            pos = stop > pos + mlen ? stop : pos + mlen;
        }
    }
    if (done < len || len == 0)
        return fn(ctx, done, len - done, -1);
    return PGD_OK;
}
