/* The vocabulary as the grammar sees it: each token's bytes (what it adds to the output
 * text in the middle of a sequence), and a byte trie over them laid out in preorder, so
 * the mask walk (gram_mask.c) is a loop over an array that skips a pruned subtree with one
 * jump (and takes a subtree whole from the bytes below it and whether they are UTF-8:
 * nsub). Tokens that never stand for text (special tokens, empty ones) are left out of the
 * trie: a constrained request never samples them (EOS and stop ids are added separately
 * when the grammar accepts). */
#include "runtime/grammar/guide.h"
#include "runtime/base/buf.h"
#include "runtime/tokenizer/token_bytes.h"
#include <stdlib.h>
#include <string.h>

void pgd__vocab_free(struct pgd__vocab *v)
{
    if (!v)
        return;
    free(v->bytes);
    free(v->off);
    free(v->nbyte);
    free(v->ndepth);
    free(v->nend);
    free(v->ntok);
    free(v->ntok_n);
    free(v->toks);
    free(v->nsub);
    free(v->sub_bytes);
    free(v->sub_utf8);
    free(v);
}

/* UTF-8 as the matcher reads it (gram_match.c: pgd__gmatch_step), by the bytes still due:
 * at a boundary; one to come; two (after E0 the next is A0..BF; after ED, A0..BF begins a
 * surrogate, alive until it is complete); three (after F0 the next is 90..BF, after F4
 * 80..8F). U8_DEAD: the matcher drops it. */
enum { U8_B, U8_C1, U8_C2, U8_C2_E0, U8_C2_ED, U8_C1_SUR, U8_C3, U8_C3_F0, U8_C3_F4, U8_N,
       U8_DEAD = -1 };

static int u8_next(int q, uint8_t b)
{
    const bool cont = b >= 0x80 && b <= 0xBF;
    switch (q) {
    case U8_B:
        return b < 0x80                ? U8_B
               : b >= 0xC2 && b <= 0xDF ? U8_C1
               : b == 0xE0             ? U8_C2_E0
               : b == 0xED             ? U8_C2_ED
               : b >= 0xE1 && b <= 0xEF ? U8_C2
               : b == 0xF0             ? U8_C3_F0
               : b >= 0xF1 && b <= 0xF3 ? U8_C3
               : b == 0xF4             ? U8_C3_F4
                                       : U8_DEAD;
    case U8_C1: return cont ? U8_B : U8_DEAD;
    case U8_C2: return cont ? U8_C1 : U8_DEAD;
    case U8_C2_E0: return b >= 0xA0 && b <= 0xBF ? U8_C1 : U8_DEAD;
    case U8_C2_ED: return b >= 0x80 && b <= 0x9F ? U8_C1 : cont ? U8_C1_SUR : U8_DEAD;
    case U8_C1_SUR: return U8_DEAD;
    case U8_C3: return cont ? U8_C2 : U8_DEAD;
    case U8_C3_F0: return b >= 0x90 && b <= 0xBF ? U8_C2 : U8_DEAD;
    case U8_C3_F4: return b >= 0x80 && b <= 0x8F ? U8_C2 : U8_DEAD;
    }
    return U8_DEAD;
}

/* nsub and sub_bytes (see struct pgd__vocab): each node's bytes below it, gathered from the
 * last node up (a node's set is its children's, and their bytes), kept for the nodes with
 * large enough subtrees (Qwen3's 151,669 tokens: 45,929 of 333,106 nodes, 1.5 MB). */
static bool build_sub_bytes(struct pgd__vocab *v)
{
    uint32_t n = v->n_nodes;
    uint64_t *all = calloc((size_t)n * 4 + 4, sizeof *all);   /* [n][4], freed below */
    uint16_t *u8 = malloc(((size_t)n + 1) * sizeof *u8);       /* [n] bit q: alive from q */
    v->nsub = malloc(((size_t)n + 1) * sizeof *v->nsub);
    if (!all || !u8 || !v->nsub) {
        free(all);
        free(u8);
        return false;
    }
    int32_t kept = 0;
    for (uint32_t i = n; i-- > 0;) {
        u8[i] = (1u << U8_N) - 1;
        /* i's children: from i + 1, each next child at the previous one's nend */
        for (uint32_t c = i + 1; c < v->nend[i]; c = v->nend[c]) {
            all[4 * (size_t)i + v->nbyte[c] / 64] |= 1ULL << (v->nbyte[c] % 64);
            for (int k = 0; k < 4; k++)
                all[4 * (size_t)i + k] |= all[4 * (size_t)c + k];
            for (int q = 0; q < U8_N; q++) {
                int r = u8_next(q, v->nbyte[c]);
                if (r == U8_DEAD || !((u8[c] >> r) & 1))
                    u8[i] &= (uint16_t)~(1u << q);
            }
        }
        v->nsub[i] = v->nend[i] - i >= PGD__VOCAB_SUB_MIN ? kept++ : -1;
    }
    v->sub_bytes = malloc(((size_t)kept + 1) * 4 * sizeof *v->sub_bytes);
    v->sub_utf8 = malloc((size_t)kept + 1);
    if (!v->sub_bytes || !v->sub_utf8) {
        free(all);
        free(u8);
        return false;
    }
    for (uint32_t i = 0; i < n; i++)
        if (v->nsub[i] >= 0) {
            memcpy(v->sub_bytes + 4 * (size_t)v->nsub[i], all + 4 * (size_t)i,
                   4 * sizeof *all);
            v->sub_utf8[v->nsub[i]] = (u8[i] >> U8_B) & 1;
        }
    free(all);
    free(u8);
    return true;
}

/* Bytes, then id (qsort_r's order of the tokens in the trie). */
static int cmp_tok(const void *a, const void *b, void *ctx)
{
    const struct pgd__vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->off[x + 1] - v->off[x], ly = v->off[y + 1] - v->off[y];
    int c = memcmp(v->bytes + v->off[x], v->bytes + v->off[y], lx < ly ? lx : ly);
    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return (x > y) - (x < y);
}

/* The trie: tokens sorted by bytes; each token adds the nodes its bytes need past the
 * longest prefix it shares with the previous one. Nodes come in preorder, so a node's
 * subtree is the run of nodes up to nend. */
static bool build_trie(struct pgd__vocab *v, int32_t *order, int32_t n_order)
{
    size_t total = 0;
    for (int32_t i = 0; i < n_order; i++)
        total += v->off[order[i] + 1] - v->off[order[i]];
    v->nbyte = malloc(total + 1);
    v->ndepth = malloc((total + 1) * sizeof *v->ndepth);
    v->nend = malloc((total + 1) * sizeof *v->nend);
    v->ntok = malloc((total + 1) * sizeof *v->ntok);
    v->ntok_n = calloc(total + 1, sizeof *v->ntok_n);
    v->toks = malloc(((size_t)n_order + 1) * sizeof *v->toks);
    uint32_t *path = malloc((PGD__VOCAB_MAX_TOKEN_BYTES + 1) * sizeof *path);
    if (!v->nbyte || !v->ndepth || !v->nend || !v->ntok || !v->ntok_n || !v->toks || !path) {
        free(path);
        return false;
    }
    uint32_t n = 0, depth = 0;      /* path[0, depth): the open nodes */
    const uint8_t *prev = NULL;
    uint32_t prev_len = 0;
    for (int32_t i = 0; i < n_order; i++) {
        int32_t t = order[i];
        const uint8_t *s = v->bytes + v->off[t];
        uint32_t len = v->off[t + 1] - v->off[t];
        uint32_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && s[lcp] == prev[lcp])
            lcp++;
        while (depth > lcp)
            v->nend[path[--depth]] = n;     /* close nodes past the shared prefix */
        for (; depth < len; depth++) {
            v->nbyte[n] = s[depth];
            v->ndepth[n] = (uint16_t)(depth + 1);
            v->ntok[n] = (uint32_t)i;
            v->ntok_n[n] = 0;
            path[depth] = n++;
        }
        uint32_t at = path[len - 1];
        if (v->ntok_n[at] == 0)
            v->ntok[at] = (uint32_t)i;
        v->ntok_n[at]++;
        v->toks[i] = t;
        if ((int)len > v->max_depth)
            v->max_depth = (int)len;
        prev = s;
        prev_len = len;
    }
    while (depth > 0)
        v->nend[path[--depth]] = n;
    v->n_nodes = n;
    v->n_toks = n_order;
    free(path);
    return build_sub_bytes(v);
}

enum pgd_status pgd__vocab_create(int32_t n, const uint8_t *const *bytes, const uint32_t *lens,
                                  struct pgd__vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    struct pgd__vocab *v = calloc(1, sizeof *v);
    size_t total = 0;
    for (int32_t i = 0; i < n; i++)
        if (bytes[i] && lens[i] <= PGD__VOCAB_MAX_TOKEN_BYTES)
            total += lens[i];
    int32_t *order = malloc(((size_t)n + 1) * sizeof *order);
    if (v) {
        v->n = n;
        v->bytes = malloc(total + 1);
        v->off = malloc(((size_t)n + 1) * sizeof *v->off);
    }
    if (!v || !order || !v->bytes || !v->off) {
        free(order);
        pgd__vocab_free(v);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "grammar vocabulary: out of memory for %d "
                        "tokens", n);
    }
    uint32_t at = 0;
    int32_t n_order = 0;
    for (int32_t i = 0; i < n; i++) {
        v->off[i] = at;
        if (!bytes[i] || lens[i] == 0 || lens[i] > PGD__VOCAB_MAX_TOKEN_BYTES)
            continue;               /* never text: not in the trie */
        memcpy(v->bytes + at, bytes[i], lens[i]);
        at += lens[i];
        order[n_order++] = i;
    }
    v->off[n] = at;
    qsort_r(order, (size_t)n_order, sizeof *order, cmp_tok, v);
    bool ok = build_trie(v, order, n_order);
    free(order);
    if (!ok) {
        pgd__vocab_free(v);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "grammar vocabulary: out of memory for "
                        "its trie");
    }
    *out = v;
    return PGD_OK;
}

enum pgd_status pgd__vocab_from_tokenizer(const struct pgd_tokenizer *tok, int32_t n,
                                          struct pgd__vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    const uint8_t **bytes = calloc((size_t)n + 1, sizeof *bytes);
    uint32_t *lens = calloc((size_t)n + 1, sizeof *lens);
    struct pgd__buf all = { 0 };
    size_t *offs = calloc((size_t)n + 1, sizeof *offs);
    if (!bytes || !lens || !offs) {
        free(bytes);
        free(lens);
        free(offs);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "grammar vocabulary: out of memory");
    }
    /* Bytes of every token into one buffer first (it moves as it grows), then pointers. */
    for (int32_t i = 0; i < n; i++) {
        offs[i] = all.len;
        if (pgd_tokenizer_is_special(tok, i) || !pgd__token_bytes(tok, i, &all)) {
            lens[i] = 0;
            continue;
        }
        lens[i] = (uint32_t)(all.len - offs[i]);
    }
    enum pgd_status st;
    if (all.failed) {
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "grammar vocabulary: out of memory");
    } else {
        for (int32_t i = 0; i < n; i++)
            bytes[i] = lens[i] ? (const uint8_t *)all.p + offs[i] : NULL;
        st = pgd__vocab_create(n, bytes, lens, out, err, errlen);
    }
    pgd__buf_fini(&all);
    free(bytes);
    free(lens);
    free(offs);
    return st;
}

const uint8_t *pgd__vocab_token(const struct pgd__vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n) {
        *len = 0;
        return NULL;
    }
    *len = v->off[id + 1] - v->off[id];
    return v->bytes + v->off[id];
}
