/* The BPE model of tokenizer.json: vocabulary, merge ranks, and the merge loop (a binary heap
 * of candidate pairs ordered by rank, then position, as the `tokenizers` package orders them). */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pgd__tokens_push(struct pgd_tokens *t, int32_t id)
{
    if (!pgd__array_reserve(t->ids, t->cap, t->n + 1))
        return false;
    t->ids[t->n++] = id;
    return true;
}

/* ---- merge table: (left, right) -> (rank, new id) ---------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline const struct pgd__merge_slot *merge_get(const struct pgd__bpe *m, int32_t a,
                                                      int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = mix64(key) & m->merge_mask;
    for (;;) {
        const struct pgd__merge_slot *s = &m->merges[i];
        if (s->key == key)
            return s;
        if (s->key == UINT64_MAX)
            return NULL;
        i = (i + 1) & m->merge_mask;
    }
}

static void merge_put(struct pgd__bpe *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = mix64(key) & m->merge_mask;
    while (m->merges[i].key != UINT64_MAX && m->merges[i].key != key)
        i = (i + 1) & m->merge_mask;
    if (m->merges[i].key == UINT64_MAX)
        m->n_merges++;
    /* A repeated pair takes the later rank, as a Rust HashMap built from the list does. */
    m->merges[i] = (struct pgd__merge_slot){ key, rank, new_id };
}

static bool build_pairs(struct pgd__bpe *m);

/* ---- loading ---------------------------------------------------------------------------- */

static char *dup_opt_string(json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    return strdup(json_string_value(v));
}

/* model.vocab: token string -> id both ways. */
static enum pgd_status load_vocab(struct pgd__bpe *m, json_t *vocab, const char *name, char *err,
                                  size_t errlen)
{
    if (!pgd__strmap_init(&m->vocab, json_object_size(vocab)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    int32_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= PGD__MAX_TOKEN_ID)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: model.vocab[\"%s\"] is not a valid token id (an integer in "
                            "[0, %d))", name, key, PGD__MAX_TOKEN_ID);
        int32_t id = (int32_t)json_integer_value(val);
        if (id > max_id)
            max_id = id;
    }
    m->n_ids = max_id + 1;
    m->id_str = calloc((size_t)m->n_ids + 1, sizeof *m->id_str);
    m->id_len = calloc((size_t)m->n_ids + 1, sizeof *m->id_len);
    if (!m->id_str || !m->id_len)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    size_t klen;
    void *tmp;
    json_object_keylen_foreach_safe(vocab, tmp, key, klen, val) {
        int32_t id = (int32_t)json_integer_value(val);
        if (m->id_str[id] == NULL) { /* two strings with one id: the first names it */
            m->id_str[id] = malloc(klen + 1);
            if (!m->id_str[id])
                return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
            memcpy(m->id_str[id], key, klen + 1);
            m->id_len[id] = (uint32_t)klen;
        }
        if (!pgd__strmap_put(&m->vocab, key, klen, id))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    }
    return PGD_OK;
}

/* unk_token, fuse_unk, byte_fallback, ignore_merges, the subword prefix/suffix, <0xXX> ids. */
static enum pgd_status load_options(struct pgd__bpe *m, json_t *model, const char *name,
                                    char *err, size_t errlen)
{
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        m->unk_id = pgd__strmap_get(&m->vocab, json_string_value(unk), json_string_length(unk));
        if (m->unk_id < 0)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: model.unk_token \"%s\" is not in the vocabulary", name,
                            json_string_value(unk));
    }
    m->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    m->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    m->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    m->prefix = dup_opt_string(json_object_get(model, "continuing_subword_prefix"));
    m->suffix = dup_opt_string(json_object_get(model, "end_of_word_suffix"));
    if (m->prefix && !m->prefix[0]) { free(m->prefix); m->prefix = NULL; }
    if (m->suffix && !m->suffix[0]) { free(m->suffix); m->suffix = NULL; }
    for (int b = 0; b < 256; b++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", b);
        m->fallback_ids[b] = pgd__strmap_get(&m->vocab, code, 6);
    }
    return PGD_OK;
}

/* model.merges[i]: "a b" or ["a", "b"] into a, b (pointing into e). */
static enum pgd_status parse_merge(json_t *e, size_t i, const char **a, size_t *alen,
                                   const char **b, size_t *blen, const char *name, char *err,
                                   size_t errlen)
{
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        size_t n = json_string_length(e);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: model.merges[%zu] \"%s\" is not "
                            "two tokens separated by one space", name, i, s);
        *a = s;
        *alen = (size_t)(sp - s);
        *b = sp + 1;
        *blen = n - *alen - 1;
        return PGD_OK;
    }
    if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
        json_is_string(json_array_get(e, 1))) {
        *a = json_string_value(json_array_get(e, 0));
        *alen = json_string_length(json_array_get(e, 0));
        *b = json_string_value(json_array_get(e, 1));
        *blen = json_string_length(json_array_get(e, 1));
        return PGD_OK;
    }
    return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                    "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", name, i);
}

/* model.merges into the merge table: (left id, right id) -> (rank, merged id). */
static enum pgd_status load_merges(struct pgd__bpe *m, json_t *merges, const char *name,
                                   char *err, size_t errlen)
{
    size_t n = json_array_size(merges), cap = 16;
    while (cap < n * 2)
        cap *= 2;
    m->merges = malloc(cap * sizeof *m->merges);
    if (!m->merges)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < cap; i++)
        m->merges[i].key = UINT64_MAX;
    m->merge_mask = cap - 1;
    size_t plen = m->prefix ? strlen(m->prefix) : 0;
    struct pgd__buf joined = { 0 };
    enum pgd_status st = PGD_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if ((st = parse_merge(json_array_get(merges, i), i, &a, &alen, &b, &blen, name, err,
                              errlen)))
            break;
        int32_t ia = pgd__strmap_get(&m->vocab, a, alen);
        int32_t ib = pgd__strmap_get(&m->vocab, b, blen);
        /* the merged token drops the right part's continuing_subword_prefix */
        joined.len = 0;
        size_t skip = (plen && blen >= plen && !memcmp(b, m->prefix, plen)) ? plen : 0;
        if (!pgd__buf_append(&joined, a, alen) ||
            !pgd__buf_append(&joined, b + skip, blen - skip)) {
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
            break;
        }
        int32_t inew = pgd__strmap_get(&m->vocab, joined.p, joined.len);
        if (ia < 0 || ib < 0 || inew < 0)
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: model.merges[%zu] (\"%.*s\", "
                          "\"%.*s\"): token \"%s\" is not in the vocabulary", name, i, (int)alen,
                          a, (int)blen, b, ia < 0 ? "(left)" : ib < 0 ? "(right)" : joined.p);
        else
            merge_put(m, ia, ib, (uint32_t)i, inew);
    }
    pgd__buf_fini(&joined);
    return st;
}

enum pgd_status pgd__bpe_load(struct pgd__bpe *m, const void *model_json, const char *name,
                              char *err, size_t errlen)
{
    json_t *model = (json_t *)model_json;
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int i = 0; i < 256; i++)
        m->fallback_ids[i] = m->byte_ids[i] = -1;
    if (!json_is_object(model))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"model\" is missing or not an object",
                        name);
    json_t *type = json_object_get(model, "type");
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "BPE")))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: model type %s is not supported (only BPE)", name,
                        json_is_string(type) ? json_string_value(type) : "(not a string)");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: model.vocab is missing or not an object",
                        name);
    if (!json_is_array(merges))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: model.merges is missing or not an array",
                        name);
    enum pgd_status st;
    if ((st = load_vocab(m, vocab, name, err, errlen)) ||
        (st = load_options(m, model, name, err, errlen)) ||
        (st = load_merges(m, merges, name, err, errlen)))
        return st;
    if (!build_pairs(m))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    return PGD_OK;
}

enum pgd_status pgd__bpe_enable_bytelevel(struct pgd__bpe *m)
{
    /* The fast path needs every byte's character in the vocabulary and no prefix/suffix. */
    if (m->prefix || m->suffix)
        return PGD_OK;
    int32_t ids[256];
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t n = pgd__utf8_put(pgd__bytelevel_char((uint8_t)b), s);
        ids[b] = pgd__strmap_get(&m->vocab, s, n);
        if (ids[b] < 0)
            return PGD_OK;
    }
    if (!pgd__strmap_init(&m->raw_vocab, m->vocab.count))
        return PGD_ERR_NOMEM;
    struct pgd__buf raw = { 0 };
    for (int32_t id = 0; id < m->n_ids; id++) {
        const char *s = m->id_str[id];
        if (!s)
            continue;
        size_t n = m->id_len[id];
        raw.len = 0;
        bool ok = pgd__bytelevel_unmap(s, n, &raw);
        if (raw.failed) {
            pgd__buf_fini(&raw);
            return PGD_ERR_NOMEM;
        }
        /* Only the id the vocabulary itself gives this string counts. */
        if (ok && pgd__strmap_get(&m->vocab, s, n) == id &&
            !pgd__strmap_put(&m->raw_vocab, raw.p ? raw.p : "", raw.len, id)) {
            pgd__buf_fini(&raw);
            return PGD_ERR_NOMEM;
        }
    }
    pgd__buf_fini(&raw);
    memcpy(m->byte_ids, ids, sizeof ids);
    m->bytelevel = true;
    free(m->pairs);
    m->pairs = NULL;
    return PGD_OK;
}

static bool pair_has(const struct pgd__bpe *m, uint64_t key)
{
    size_t i = mix64(key) & m->pair_mask;
    for (;;) {
        if (m->pairs[i] == key)
            return true;
        if (m->pairs[i] == UINT64_MAX)
            return false;
        i = (i + 1) & m->pair_mask;
    }
}

/* Builds the pair set for cutting long pieces (only without prefix/suffix and byte-level). */
static bool build_pairs(struct pgd__bpe *m)
{
    if (m->prefix || m->suffix || m->bytelevel)
        return true;
    size_t total = 0;
    for (int32_t id = 0; id < m->n_ids; id++)
        total += m->id_len[id];
    size_t cap = 16;
    while (cap < total * 2)
        cap *= 2;
    m->pairs = malloc(cap * sizeof *m->pairs);
    if (!m->pairs)
        return false;
    memset(m->pairs, 0xFF, cap * sizeof *m->pairs);
    m->pair_mask = cap - 1;
    for (int32_t id = 0; id < m->n_ids; id++) {
        const unsigned char *s = (const unsigned char *)m->id_str[id];
        size_t n = m->id_len[id], i = 0;
        uint32_t prev = UINT32_MAX;
        while (s && i < n) {
            size_t k = pgd__utf8_next(s + i, n - i, NULL);
            uint32_t c = k ? pgd__utf8_decode_valid(s + i, &k) : 0xFFFFFFFEu;
            if (!k)
                k = 1;
            if (prev != UINT32_MAX) {
                uint64_t key = ((uint64_t)prev << 32) | c;
                size_t j = mix64(key) & m->pair_mask;
                while (m->pairs[j] != UINT64_MAX && m->pairs[j] != key)
                    j = (j + 1) & m->pair_mask;
                m->pairs[j] = key;
            }
            prev = c;
            i += k;
        }
    }
    return true;
}

void pgd__bpe_free(struct pgd__bpe *m)
{
    free(m->pairs);
    pgd__strmap_free(&m->vocab);
    pgd__strmap_free(&m->raw_vocab);
    if (m->id_str)
        for (int32_t i = 0; i < m->n_ids; i++)
            free(m->id_str[i]);
    free(m->id_str);
    free(m->id_len);
    free(m->merges);
    free(m->prefix);
    free(m->suffix);
    memset(m, 0, sizeof *m);
}

/* ---- the merge loop --------------------------------------------------------------------- */

struct sym {
    int32_t id;
    int32_t prev, next; /* -1: none */
    uint32_t len;       /* 0: merged into its left neighbour */
};
struct cand {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
};

void pgd__bpe_scratch_free(struct pgd__bpe_scratch *s)
{
    free(s->sym);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static inline bool cand_less(const struct cand *a, const struct cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct cand *h, size_t *n, struct cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct cand heap_pop(struct cand *h, size_t *n)
{
    struct cand top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        size_t c = (l + 1 < m && cand_less(&h[l + 1], &h[l])) ? l + 1 : l;
        if (!cand_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

static bool scratch_reserve(struct pgd__bpe_scratch *s, size_t nsym)
{
    /* sym and heap are void * in the header (their types are this file's), so the element
     * sizes are given here. Each merge pushes at most two candidates: n - 1 initial + 2 per
     * merge. */
    return pgd__array_reserve_(&s->sym, &s->sym_cap, nsym, sizeof(struct sym)) &&
           pgd__array_reserve_(&s->heap, &s->heap_cap, 3 * nsym + 4, sizeof(struct cand));
}

static void sym_add(struct sym *v, size_t *n, int32_t id, uint32_t len)
{
    size_t i = (*n)++;
    v[i] = (struct sym){ id, (int32_t)i - 1, (int32_t)i + 1, len };
}

static enum pgd_status tokenize_word(const struct pgd__bpe *m, struct pgd__bpe_scratch *s,
                                     const char *piece, size_t len, struct pgd_tokens *out);

enum pgd_status pgd__bpe_tokenize(const struct pgd__bpe *m, struct pgd__bpe_scratch *s,
                                  const char *piece, size_t len, struct pgd_tokens *out)
{
    if (len < 128 || !m->pairs || (m->ignore_merges && pgd__strmap_get(&m->vocab, piece, len) >= 0))
        return tokenize_word(m, s, piece, len, out);
    /* Cut between characters a|b that are both tokens and never side by side in a token. */
    const unsigned char *u = (const unsigned char *)piece;
    size_t start = 0, i = 0;
    uint32_t prev = UINT32_MAX; /* UINT32_MAX: the previous char is not a token */
    while (i < len) {
        size_t k = pgd__utf8_next(u + i, len - i, NULL);
        if (!k)
            k = 1;
        size_t kk;
        uint32_t c = pgd__strmap_get(&m->vocab, piece + i, k) >= 0
                         ? pgd__utf8_decode_valid(u + i, &kk)
                         : UINT32_MAX;
        if (prev != UINT32_MAX && c != UINT32_MAX && i - start >= 32 &&
            !pair_has(m, ((uint64_t)prev << 32) | c)) {
            enum pgd_status st = tokenize_word(m, s, piece + start, i - start, out);
            if (st)
                return st;
            start = i;
        }
        prev = c;
        i += k;
    }
    return tokenize_word(m, s, piece + start, len - start, out);
}

/* The initial symbols of a piece without the byte-level fast path: one per character (with
 * continuing_subword_prefix / end_of_word_suffix where the model has them), <0xXX> bytes for
 * a character not in the vocabulary when byte_fallback is on, else unk (fused when fuse_unk).
 * *n: the symbols written to s->sym. */
static enum pgd_status char_symbols(const struct pgd__bpe *m, struct pgd__bpe_scratch *s,
                                    const char *piece, size_t len, size_t *n_out)
{
    struct sym *v = s->sym;
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)piece;
    char stack[64];
    struct pgd__buf heapbuf = { 0 };
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    size_t plen = m->prefix ? strlen(m->prefix) : 0, slen = m->suffix ? strlen(m->suffix) : 0;
    for (size_t i = 0; i < len;) {
        size_t k = pgd__utf8_next(u + i, len - i, NULL);
        if (!k)
            k = 1; /* cannot happen: pieces are valid UTF-8 */
        bool first = i == 0, last = i + k == len;
        const char *key = piece + i;
        size_t klen = k;
        if ((plen && !first) || (slen && last)) {
            size_t need = (first ? 0 : plen) + k + (last ? slen : 0);
            char *dst = stack;
            if (need > sizeof stack) {
                heapbuf.len = 0;
                if (!pgd__buf_grow(&heapbuf, need))
                    return PGD_ERR_NOMEM;
                dst = heapbuf.p;
            }
            size_t o = 0;
            if (plen && !first) { memcpy(dst, m->prefix, plen); o += plen; }
            memcpy(dst + o, piece + i, k);
            o += k;
            if (slen && last) { memcpy(dst + o, m->suffix, slen); o += slen; }
            key = dst;
            klen = o;
        }
        int32_t id = pgd__strmap_get(&m->vocab, key, klen);
        if (id >= 0) {
            if (unk_id >= 0) {
                sym_add(v, &n, unk_id, unk_len);
                unk_id = -1;
            }
            sym_add(v, &n, id, (uint32_t)k);
        } else {
            bool done = false;
            if (m->byte_fallback) {
                done = true;
                for (size_t j = 0; j < klen; j++)
                    if (m->fallback_ids[(unsigned char)key[j]] < 0)
                        done = false;
                if (done) {
                    if (!scratch_reserve(s, n + klen + (len - i) + 1)) {
                        pgd__buf_fini(&heapbuf);
                        return PGD_ERR_NOMEM;
                    }
                    v = s->sym;
                    for (size_t j = 0; j < klen; j++)
                        sym_add(v, &n, m->fallback_ids[(unsigned char)key[j]], 1);
                }
            }
            if (!done && m->unk_id >= 0) {
                if (unk_id >= 0 && m->fuse_unk)
                    unk_len += (uint32_t)k;
                else {
                    if (unk_id >= 0)
                        sym_add(v, &n, unk_id, unk_len);
                    unk_id = m->unk_id;
                    unk_len = (uint32_t)k;
                }
            }
        }
        i += k;
    }
    if (unk_id >= 0)
        sym_add(v, &n, unk_id, unk_len);
    pgd__buf_fini(&heapbuf);
    *n_out = n;
    return PGD_OK;
}

/* Applies the merges to the n symbols of s->sym, lowest rank first, and appends the ids. */
static enum pgd_status merge_symbols(const struct pgd__bpe *m, struct pgd__bpe_scratch *s,
                                     size_t n, struct pgd_tokens *out)
{
    struct sym *v = s->sym;
    v[n - 1].next = -1;
    struct cand *h = s->heap;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const struct pgd__merge_slot *ms = merge_get(m, v[i].id, v[i + 1].id);
        if (ms)
            heap_push(h, &hn, (struct cand){ ms->rank, (uint32_t)i, ms->new_id });
    }
    while (hn) {
        struct cand top = heap_pop(h, &hn);
        struct sym *a = &v[top.pos];
        if (a->len == 0 || a->next < 0)
            continue;
        struct sym *b = &v[a->next];
        const struct pgd__merge_slot *ms = merge_get(m, a->id, b->id);
        if (!ms || ms->new_id != top.new_id)
            continue; /* stale candidate */
        a->id = top.new_id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0)
            v[a->next].prev = (int32_t)top.pos;
        if (a->prev >= 0) {
            ms = merge_get(m, v[a->prev].id, a->id);
            if (ms)
                heap_push(h, &hn, (struct cand){ ms->rank, (uint32_t)a->prev, ms->new_id });
        }
        if (a->next >= 0) {
            ms = merge_get(m, a->id, v[a->next].id);
            if (ms)
                heap_push(h, &hn, (struct cand){ ms->rank, top.pos, ms->new_id });
        }
    }
    for (int32_t i = 0; i >= 0; i = v[i].next)
        if (!pgd__tokens_push(out, v[i].id))
            return PGD_ERR_NOMEM;
    return PGD_OK;
}

static enum pgd_status tokenize_word(const struct pgd__bpe *m, struct pgd__bpe_scratch *s,
                                     const char *piece, size_t len, struct pgd_tokens *out)
{
    if (len == 0)
        return PGD_OK;
    if (m->ignore_merges) {
        int32_t id = pgd__strmap_get(m->bytelevel ? &m->raw_vocab : &m->vocab, piece, len);
        if (id >= 0)
            return pgd__tokens_push(out, id) ? PGD_OK : PGD_ERR_NOMEM;
    }
    /* A symbol per byte at most, or per byte-fallback byte, so len symbols suffice. */
    if (!scratch_reserve(s, len + 1))
        return PGD_ERR_NOMEM;
    size_t n = 0;
    if (m->bytelevel) {
        const unsigned char *u = (const unsigned char *)piece;
        for (size_t i = 0; i < len; i++)
            sym_add(s->sym, &n, m->byte_ids[u[i]], 1);
    } else {
        enum pgd_status st = char_symbols(m, s, piece, len, &n);
        if (st)
            return st;
    }
    return n ? merge_symbols(m, s, n, out) : PGD_OK;
}
