/* The token mask: the vocabulary's trie walked with a matcher's stacks.
 *
 * The trie is an array in preorder (gram_vocab.c). For node i at depth d the state of its
 * parent (depth d - 1) is fed node i's byte: when no stack survives, the whole subtree is
 * skipped (i = nend[i]); when the state takes every byte below i back to itself (inside a
 * JSON string, most ASCII bytes do), and every non-ASCII character too where the bytes
 * below are valid UTF-8, the whole subtree is allowed without visiting it (absorbs, from
 * the bytes below each large subtree: struct pgd__vocab's nsub); otherwise
 * the tokens ending at i are allowed and the walk goes on to i + 1, a child or a later
 * sibling.
 *
 * Most nodes repeat a transition already made: inside a JSON string, after a digit, in any
 * loop, the state after a character is the state before it. So states are interned (a set
 * of stacks, sorted by content hash, plus the partial character) and each state keeps a row
 * of 256 transitions, filled on first use: a walk over a few hundred thousand trie nodes
 * costs a table lookup per node. A transition is worked out from the byte: a byte that
 * begins or continues a character only changes the partial character (the stacks stay,
 * once some stack could still take such a character); a byte that completes code point cp
 * advances the stacks whose set holds cp, and what comes of advancing a given subset of a
 * state's stacks does not depend on cp, so it is computed once per (state, subset). The
 * stack entries those steps make stay in the matcher's arena until the walk ends. */
#include "runtime/grammar/guide.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define UNKNOWN (-2)
#define DEAD (-1)
#define CLS_UNKNOWN (-2)
#define CLS_MANY (-1)
#define CLS_MAX 32                  /* general classes: a subset of them is a 32-bit mask */
#define NO_SINGLE UINT32_MAX

struct wstate {
    uint64_t h;
    size_t off, n;                  /* its stacks: w->sets[off, off + n), sorted by hash */
    struct pgd__gpart part;
    int32_t base;                   /* the state of the same stacks with no partial char */
    /* An interned state's classes (classes()): n_gen general ones (CLS_UNKNOWN until
     * found, CLS_MANY past CLS_MAX), w->gen[gen_off...], and n_sing singletons (one code
     * point each), w->sing[sing_off...] ascending; its stacks by class (general first,
     * then singletons) are w->grp[w->grp_at[grp_off + c], w->grp_at[grp_off + c + 1]). */
    int32_t n_gen;
    uint32_t n_sing;
    size_t gen_off, sing_off, grp_off;
    int8_t utf8;                    /* whether every non-ASCII character leads back to it
                                       (utf8_absorbs); -1: not known yet */
};

/* A small map from 64-bit keys to states (open addressing; key 0 unused). */
struct kmap {
    uint64_t *k;
    int32_t *v;
    size_t n, cap;
};

static int32_t kmap_get(const struct kmap *km, uint64_t key)
{
    if (!km->cap)
        return UNKNOWN;
    for (size_t j = (size_t)(key * 0x9e3779b97f4a7c15ULL >> 20) & (km->cap - 1);;
         j = (j + 1) & (km->cap - 1)) {
        if (km->k[j] == key)
            return km->v[j];
        if (km->k[j] == 0)
            return UNKNOWN;
    }
}

static bool kmap_put(struct kmap *km, uint64_t key, int32_t val)
{
    if ((km->n + 1) * 2 > km->cap) {
        size_t cap = km->cap ? km->cap * 2 : 64;
        uint64_t *k = calloc(cap, sizeof *k);
        int32_t *v = malloc(cap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return false;
        }
        for (size_t i = 0; i < km->cap; i++) {
            if (!km->k[i])
                continue;
            size_t j = (size_t)(km->k[i] * 0x9e3779b97f4a7c15ULL >> 20) & (cap - 1);
            while (k[j])
                j = (j + 1) & (cap - 1);
            k[j] = km->k[i];
            v[j] = km->v[i];
        }
        free(km->k);
        free(km->v);
        km->k = k;
        km->v = v;
        km->cap = cap;
    }
    size_t j = (size_t)(key * 0x9e3779b97f4a7c15ULL >> 20) & (km->cap - 1);
    while (km->k[j] && km->k[j] != key)
        j = (j + 1) & (km->cap - 1);
    if (!km->k[j])
        km->n++;
    km->k[j] = key;
    km->v[j] = val;
    return true;
}

static void kmap_free(struct kmap *km)
{
    free(km->k);
    free(km->v);
}

/* An exact map from (state, singleton class or NO_SINGLE, general subset) to a state. */
struct aent {
    int32_t base;                   /* -1: empty */
    uint32_t single, bits;
    int32_t r;
};
struct amap {
    struct aent *e;
    size_t n, cap;
};

static size_t amap_slot(const struct amap *am, int32_t base, uint32_t single, uint32_t bits)
{
    uint64_t h = ((uint64_t)(uint32_t)base << 32 | single) * 0x9e3779b97f4a7c15ULL ^
                 (uint64_t)bits * 0xbf58476d1ce4e5b9ULL;
    size_t j = (size_t)(h >> 17) & (am->cap - 1);
    while (am->e[j].base >= 0 &&
           !(am->e[j].base == base && am->e[j].single == single && am->e[j].bits == bits))
        j = (j + 1) & (am->cap - 1);
    return j;
}

static int32_t amap_get(const struct amap *am, int32_t base, uint32_t single, uint32_t bits)
{
    if (!am->cap)
        return UNKNOWN;
    const struct aent *e = &am->e[amap_slot(am, base, single, bits)];
    return e->base >= 0 ? e->r : UNKNOWN;
}

static bool amap_put(struct amap *am, int32_t base, uint32_t single, uint32_t bits, int32_t r)
{
    if ((am->n + 1) * 2 > am->cap) {
        struct amap bigger = { .cap = am->cap ? 2 * am->cap : 64 };
        if (!(bigger.e = malloc(bigger.cap * sizeof *bigger.e)))
            return false;
        for (size_t i = 0; i < bigger.cap; i++)
            bigger.e[i].base = -1;
        for (size_t i = 0; i < am->cap; i++)
            if (am->e[i].base >= 0)
                bigger.e[amap_slot(&bigger, am->e[i].base, am->e[i].single, am->e[i].bits)] =
                    am->e[i];
        bigger.n = am->n;
        free(am->e);
        *am = bigger;
    }
    struct aent *e = &am->e[amap_slot(am, base, single, bits)];
    am->n += e->base < 0;
    *e = (struct aent){ .base = base, .single = single, .bits = bits, .r = r };
    return true;
}

struct walk {
    struct pgd__gmatch *m;
    struct wstate *st;
    size_t n_st, cap_st;
    size_t n_interned;              /* states in tab (the others are partial ones) */
    int32_t *next;                  /* [n_st * 256] transitions: state, DEAD or UNKNOWN */
    size_t cap_next;
    uint32_t *sets;
    size_t n_sets, cap_sets;
    /* the states' classes back to back (struct wstate's gen_off...) */
    uint32_t *gen, *sing, *grp;     /* cset ids; code points; stacks */
    size_t n_gen, cap_gen, n_sing, cap_sing, n_grp, cap_grp;
    size_t *grp_at;
    size_t n_grp_at, cap_grp_at;
    uint64_t *pairs;                /* classes()' scratch: (code point, stack) */
    uint32_t *scratch;              /* classes()' and complete()'s scratch */
    size_t cap_pairs, cap_scratch;
    uint64_t *rkey;                 /* sort_by_hash's scratch: [2 n] hashes, [2 n] nodes */
    uint32_t *rnode;
    size_t cap_rkey, cap_rnode;
    struct amap advanced;           /* (base, singleton, general subset) -> state or DEAD */
    int32_t *tab;                   /* [tab_cap] hash table of states (index or -1) */
    size_t tab_cap;
    struct kmap partial;            /* (base, partial char) -> state */
    /* Per state, 128 bits each: the ASCII bytes whose transition is known, and those of
     * them that lead back to the state itself (absorbs). */
    uint64_t *known, *loop;         /* [cap_loop * 2] */
    size_t cap_loop;
    uint64_t work;                  /* the budget's unit: stacks stepped and made, and stack
                                       entries pushed, so far */
    bool nomem;
};

static int cmp_by_hash(const void *a, const void *b, void *ctx)
{
    const struct pgd__gnode *nodes = ctx;
    uint64_t x = nodes[*(const uint32_t *)a].hash, y = nodes[*(const uint32_t *)b].hash;
    return (x > y) - (x < y);
}

#define RADIX_MIN 256               /* sets below this sort by comparison */

/* set[0, n) (stack nodes) in ascending order of their hashes (same_state compares states
 * by them, so the order of equal ones, a collision, does not matter). Past RADIX_MIN
 * stacks: an LSD radix sort of (hash, node) pairs a byte a pass, the passes whose byte is
 * the same in every hash skipped. Why: a state of thousands of stacks (an
 * ambiguous grammar's; `(.* | [ab] | ...){2000}` keeps ~80,000 live) is interned once per
 * subset of its classes, and the comparison sort, reading each hash through the node
 * array, took half of such a mask's time. False when out of memory. */
static bool sort_by_hash(struct walk *w, uint32_t *set, size_t n)
{
    const struct pgd__gnode *nodes = w->m->nodes;
    if (n < RADIX_MIN) {
        qsort_r(set, n, sizeof *set, cmp_by_hash, (void *)nodes);
        return true;
    }
    if (!pgd__array_reserve(w->rkey, w->cap_rkey, 2 * n) ||
        !pgd__array_reserve(w->rnode, w->cap_rnode, 2 * n))
        return false;
    uint64_t *key = w->rkey, *key2 = w->rkey + n;
    uint32_t *node = w->rnode, *node2 = w->rnode + n;
    for (size_t i = 0; i < n; i++) {
        key[i] = nodes[set[i]].hash;
        node[i] = set[i];
    }
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = { 0 };
        for (size_t i = 0; i < n; i++)
            count[((key[i] >> shift) & 0xFF) + 1]++;
        if (count[((key[0] >> shift) & 0xFF) + 1] == n)
            continue;               /* one byte value: this pass keeps the order */
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++) {
            const size_t at = count[(key[i] >> shift) & 0xFF]++;
            key2[at] = key[i];
            node2[at] = node[i];
        }
        uint64_t *tk = key;
        key = key2;
        key2 = tk;
        uint32_t *tn = node;
        node = node2;
        node2 = tn;
    }
    memcpy(set, node, n * sizeof *set);
    return true;
}

/* Only interned states (their own base) are in the table; partial ones are in a kmap. */
static bool tab_grow(struct walk *w)
{
    size_t cap = w->tab_cap ? w->tab_cap * 2 : 256;
    while (cap < 2 * (w->n_interned + 1))
        cap *= 2;
    int32_t *t = malloc(cap * sizeof *t);
    if (!t)
        return false;
    memset(t, 0xff, cap * sizeof *t);
    for (size_t i = 0; i < w->n_st; i++) {
        if (w->st[i].base != (int32_t)i)
            continue;
        size_t j = (size_t)w->st[i].h & (cap - 1);
        while (t[j] >= 0)
            j = (j + 1) & (cap - 1);
        t[j] = (int32_t)i;
    }
    free(w->tab);
    w->tab = t;
    w->tab_cap = cap;
    return true;
}

static bool same_state(const struct walk *w, const struct wstate *s, const uint32_t *set,
                       size_t n, const struct pgd__gpart *part)
{
    if (s->n != n || s->part.val != part->val || s->part.need != part->need ||
        s->part.len != part->len)
        return false;
    const struct pgd__gnode *nodes = w->m->nodes;
    for (size_t i = 0; i < n; i++)
        if (nodes[w->sets[s->off + i]].hash != nodes[set[i]].hash)
            return false;
    return true;
}

/* The state of stacks set[0, n) (sorted here in place) with partial part: its index, made
 * when new; -1 when out of memory. */
static int32_t intern(struct walk *w, uint32_t *set, size_t n, const struct pgd__gpart *part)
{
    struct pgd__gmatch *m = w->m;
    if (!sort_by_hash(w, set, n))
        return -1;
    uint64_t h = XXH3_64bits_withSeed(part, sizeof *part, (uint64_t)n);
    for (size_t i = 0; i < n; i++)
        h = XXH3_64bits_withSeed(&m->nodes[set[i]].hash, sizeof(uint64_t), h);
    if ((w->n_interned + 1) * 2 >= w->tab_cap && !tab_grow(w))
        return -1;
    size_t j = (size_t)h & (w->tab_cap - 1);
    for (; w->tab[j] >= 0; j = (j + 1) & (w->tab_cap - 1)) {
        const struct wstate *s = &w->st[w->tab[j]];
        if (s->h == h && same_state(w, s, set, n, part))
            return w->tab[j];
    }
    if (!pgd__array_reserve(w->st, w->cap_st, w->n_st + 1) ||
        !pgd__array_reserve(w->next, w->cap_next, (w->n_st + 1) * 256) ||
        !pgd__array_reserve(w->sets, w->cap_sets, w->n_sets + n + 1))
        return -1;
    memcpy(w->sets + w->n_sets, set, n * sizeof *set);
    w->st[w->n_st] = (struct wstate){ .h = h, .off = w->n_sets, .n = n, .part = *part,
                                      .base = (int32_t)w->n_st, .n_gen = CLS_UNKNOWN,
                                      .utf8 = -1 };
    w->n_sets += n;
    for (int b = 0; b < 256; b++)
        w->next[w->n_st * 256 + (size_t)b] = UNKNOWN;
    w->tab[j] = (int32_t)w->n_st;
    w->n_interned++;
    return (int32_t)w->n_st++;
}

/* The generic transition (any number of stacks): a matcher step, interned. */
static int32_t step_state(struct walk *w, int32_t s, uint8_t byte)
{
    struct pgd__gmatch *m = w->m;
    size_t n = w->st[s].n;
    struct pgd__gpart part = w->st[s].part;
    if (!pgd__gmatch_scr_reserve(m, n + 1)) {
        w->nomem = true;
        return DEAD;
    }
    memcpy(m->scr, w->sets + w->st[s].off, n * sizeof *m->scr);
    const size_t pushed = m->n_nodes;
    size_t k = pgd__gmatch_step(m, 0, n, &part, byte, n);
    w->work += n + k + (m->n_nodes - pushed);
    if (k == 0)
        return DEAD;
    int32_t r = intern(w, m->scr + n, k, &part);
    if (r < 0)
        w->nomem = true;
    return r < 0 ? DEAD : r;
}

/* The state of base's stacks with partial character part (made when new). */
static int32_t partial_state(struct walk *w, int32_t base, const struct pgd__gpart *part)
{
    uint64_t key = ((uint64_t)(uint32_t)base << 32 | (uint64_t)part->val << 5 |
                    (uint64_t)part->need << 3 | (uint64_t)part->len) + 1;
    int32_t r = kmap_get(&w->partial, key);
    if (r != UNKNOWN)
        return r;
    if (!pgd__array_reserve(w->st, w->cap_st, w->n_st + 1) ||
        !pgd__array_reserve(w->next, w->cap_next, (w->n_st + 1) * 256) ||
        !kmap_put(&w->partial, key, (int32_t)w->n_st)) {
        w->nomem = true;
        return DEAD;
    }
    struct wstate *b = &w->st[base];
    w->st[w->n_st] = (struct wstate){ .h = 0, .off = b->off, .n = b->n, .part = *part,
                                      .base = base, .n_gen = CLS_UNKNOWN, .utf8 = 0 };
    for (int i = 0; i < 256; i++)
        w->next[w->n_st * 256 + (size_t)i] = UNKNOWN;
    return (int32_t)w->n_st++;
}

/* The classes of interned state b's stacks, found on first use: the general ones (the
 * distinct character sets on their tops, other than a single code point) and the
 * singletons (the distinct code points that a top of one code point takes), and the
 * stacks grouped by class. Returns the general count, or CLS_MANY past CLS_MAX (or out of
 * memory; the generic step serves such a state).
 * Why: which stacks take a character depends only on their classes, and what comes of
 * advancing them only on that subset, so the walk makes one step per (state, subset of
 * classes) rather than one per character: under `.*` the ~20,000 distinct CJK characters
 * of a vocabulary are one subset. A code point is at most one singleton, found by a binary
 * search, so a choice among 10,000 strings (10,000 stacks, thousands of distinct first
 * characters) costs each character a lookup and a step of its own few stacks. */
static int classes(struct walk *w, int32_t b)
{
    struct wstate *st = &w->st[b];
    if (st->n_gen != CLS_UNKNOWN)
        return st->n_gen;
    const struct pgd__grammar *g = w->m->g;
    const size_t n = st->n;
    if (!pgd__array_reserve(w->gen, w->cap_gen, w->n_gen + CLS_MAX) ||
        !pgd__array_reserve(w->pairs, w->cap_pairs, n + 1) ||
        !pgd__array_reserve(w->scratch, w->cap_scratch, n + 1) ||
        !pgd__array_reserve(w->sing, w->cap_sing, w->n_sing + n + 1) ||
        !pgd__array_reserve(w->grp, w->cap_grp, w->n_grp + n + 1) ||
        !pgd__array_reserve(w->grp_at, w->cap_grp_at, w->n_grp_at + CLS_MAX + n + 2))
        return st->n_gen = CLS_MANY;
    uint32_t *gen = w->gen + w->n_gen, *sing = w->sing + w->n_sing;
    size_t *at = w->grp_at + w->n_grp_at;
    uint32_t count[CLS_MAX] = { 0 };
    int ng = 0;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {    /* scratch[i]: stack i's general class, or none */
        const uint32_t node = w->sets[st->off + i], top = pgd__gmatch_top(w->m, node);
        uint32_t cp;
        w->scratch[i] = UINT32_MAX;
        if (top == UINT32_MAX)
            continue;                           /* the empty stack takes nothing */
        if (pgd__cset_single(g, &g->cs[top], &cp)) {
            w->pairs[np++] = (uint64_t)cp << 32 | node;
            continue;
        }
        int c = 0;
        while (c < ng && gen[c] != top)
            c++;
        if (c == ng) {
            if (ng == CLS_MAX)
                return st->n_gen = CLS_MANY;
            gen[ng++] = top;
        }
        count[c]++;
        w->scratch[i] = (uint32_t)c;
    }
    qsort(w->pairs, np, sizeof *w->pairs, pgd__gcmp_u64);
    /* the groups: general classes first, then each singleton's stacks in code point order */
    at[0] = w->n_grp;
    for (int c = 0; c < ng; c++)
        at[c + 1] = at[c] + count[c];
    size_t cursor[CLS_MAX];
    for (int c = 0; c < ng; c++)
        cursor[c] = at[c];
    for (size_t i = 0; i < n; i++)
        if (w->scratch[i] != UINT32_MAX)
            w->grp[cursor[w->scratch[i]]++] = w->sets[st->off + i];
    size_t ns = 0, pos = at[ng];
    for (size_t k = 0; k < np; k++) {
        const uint32_t cp = (uint32_t)(w->pairs[k] >> 32);
        if (ns == 0 || sing[ns - 1] != cp) {
            sing[ns++] = cp;
            at[ng + ns - 1] = pos;
        }
        w->grp[pos++] = (uint32_t)w->pairs[k];
    }
    at[ng + ns] = pos;
    st->gen_off = w->n_gen;
    st->sing_off = w->n_sing;
    st->grp_off = w->n_grp_at;
    st->n_sing = (uint32_t)ns;
    w->n_gen += (size_t)ng;
    w->n_sing += ns;
    w->n_grp = pos;
    w->n_grp_at += (size_t)ng + ns + 1;
    return st->n_gen = ng;
}

/* The first singleton of base (its classes known) at or past code point cp: its index, or
 * base's n_sing. */
static size_t first_single(const struct walk *w, const struct wstate *b, uint32_t cp)
{
    const uint32_t *sing = w->sing + b->sing_off;
    size_t lo = 0, hi = b->n_sing;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sing[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The singleton of base that is code point cp: its index, or NO_SINGLE. */
static uint32_t find_single(const struct walk *w, const struct wstate *b, uint32_t cp)
{
    const size_t k = first_single(w, b, cp);
    return k < b->n_sing && w->sing[b->sing_off + k] == cp ? (uint32_t)k : NO_SINGLE;
}

/* Whether some class of base could take a character that a partial sequence may still
 * become (pgd__gmatch_part_range). */
static bool classes_partial_ok(const struct walk *w, const struct wstate *b, uint32_t val,
                               int need, int total)
{
    uint32_t lo, hi;
    if (!pgd__gmatch_part_range(val, need, total, &lo, &hi))
        return false;
    const size_t k = first_single(w, b, lo);
    if (k < b->n_sing && w->sing[b->sing_off + k] <= hi)
        return true;
    return pgd__gcls_any_in(w->m->g, w->gen + b->gen_off, b->n_gen, lo, hi);
}

/* base's stacks (its classes known) after code point cp (complete): those of the classes
 * that take it, advanced once per (base, subset). */
static int32_t complete(struct walk *w, int32_t base, uint32_t cp)
{
    const struct wstate *b = &w->st[base];
    const uint32_t bits = pgd__gcls_takers(w->m->g, w->gen + b->gen_off, b->n_gen, cp);
    const uint32_t single = find_single(w, b, cp);
    if (bits == 0 && single == NO_SINGLE)
        return DEAD;
    int32_t r = amap_get(&w->advanced, base, single, bits);
    if (r != UNKNOWN)
        return r;
    /* the stacks of the groups taken: the general classes by bit, then the singleton's */
    const size_t *at = w->grp_at + b->grp_off;
    uint32_t taken[CLS_MAX + 1];
    int nt = 0;
    for (int c = 0; c < b->n_gen; c++)
        if ((bits >> c) & 1)
            taken[nt++] = (uint32_t)c;
    if (single != NO_SINGLE)
        taken[nt++] = (uint32_t)b->n_gen + single;
    size_t n = 0;
    for (int t = 0; t < nt; t++)
        n += at[taken[t] + 1] - at[taken[t]];
    if (!pgd__array_reserve(w->scratch, w->cap_scratch, n + 1)) {
        w->nomem = true;
        return DEAD;
    }
    n = 0;
    for (int t = 0; t < nt; t++)
        for (size_t i = at[taken[t]]; i < at[taken[t] + 1]; i++)
            w->scratch[n++] = w->grp[i];
    struct pgd__gmatch *m = w->m;
    const size_t pushed = m->n_nodes;
    size_t k = pgd__gmatch_advance(m, w->scratch, n, 0);
    w->work += n + k + (m->n_nodes - pushed);
    r = k == 0 ? DEAD : intern(w, m->scr, k, &(struct pgd__gpart){ 0 });
    if (r < 0 && k > 0) {
        w->nomem = true;
        r = DEAD;
    }
    if (!amap_put(&w->advanced, base, single, bits, r))
        w->nomem = true;
    return r;
}

/* The state after state s takes byte: DEAD or its index. */
static int32_t transition(struct walk *w, int32_t s, uint8_t byte)
{
    int32_t *slot = &w->next[(size_t)s * 256 + byte];
    if (*slot != UNKNOWN)
        return *slot;
    const struct wstate st = w->st[s];
    int32_t r = DEAD;
    const int nc = classes(w, st.base);
    if (nc < 0) {
        r = step_state(w, s, byte);
    } else if (st.part.need == 0) {
        int need = byte < 0x80 ? 0 : byte >= 0xC2 && byte <= 0xDF ? 1
                   : byte >= 0xE0 && byte <= 0xEF ? 2 : byte >= 0xF0 && byte <= 0xF4 ? 3 : -1;
        uint32_t val = need == 1 ? byte & 0x1Fu : need == 2 ? byte & 0x0Fu : byte & 0x07u;
        if (need == 0)
            r = complete(w, st.base, byte);
        else if (need > 0 && classes_partial_ok(w, &w->st[st.base], val, need, need + 1))
            r = partial_state(w, st.base,
                              &(struct pgd__gpart){ .val = val, .need = need, .len = 1 });
    } else if ((byte & 0xC0) == 0x80) {
        uint32_t val = (st.part.val << 6) | (byte & 0x3Fu);
        int len = st.part.len + 1;
        if (st.part.need > 1) {
            if (classes_partial_ok(w, &w->st[st.base], val, st.part.need - 1,
                                   st.part.len + st.part.need))
                r = partial_state(w, st.base, &(struct pgd__gpart){
                    .val = val, .need = st.part.need - 1, .len = len });
        } else if (pgd__gmatch_valid_cp(val, len)) {
            r = complete(w, st.base, val);
        }
    }
    w->next[(size_t)s * 256 + byte] = r;    /* w->next may have moved */
    return r;
}

static void set_bit(uint32_t *mask, int32_t t)
{
    mask[t >> 5] |= 1u << (t & 31);
}

/* Whether every non-ASCII character takes state s (at a character boundary) back to s: each
 * of its stacks takes all of them or none, some take them, and those advanced are s again.
 * Then, under s, any unfinished sequence that could still become a character is alive. */
static bool utf8_absorbs(struct walk *w, int32_t s)
{
    if (w->st[s].utf8 >= 0)
        return w->st[s].utf8;
    const struct wstate st = w->st[s];
    /* a singleton past 0x7F takes a part of the non-ASCII characters */
    bool yes = st.part.need == 0 && st.base == s && classes(w, s) >= 0 &&
               (w->st[s].n_sing == 0 ||
                w->sing[w->st[s].sing_off + w->st[s].n_sing - 1] < 0x80) &&
               pgd__gcls_nonascii_takers(w->m->g, w->gen + w->st[s].gen_off,
                                         w->st[s].n_gen) != 0 &&
               complete(w, s, 0x80) == s;
    w->st[s].utf8 = yes;            /* w->st may have moved */
    return yes;
}

/* Whether state s takes every path below a trie node back to itself or keeps it alive, from
 * the bytes below it [4 x 64 bits] and whether they are valid UTF-8 (utf8_ok): each ASCII
 * byte leads back to s, and, where there are others, every non-ASCII character does too.
 * Then every token below the node fits, and the walk need not visit them. The transitions
 * it needs are made (and kept) as the walk would make them. */
static bool absorbs(struct walk *w, int32_t s, const uint64_t *bytes, bool utf8_ok)
{
    if ((bytes[2] | bytes[3]) && !(utf8_ok && utf8_absorbs(w, s)))
        return false;
    if ((size_t)s >= w->cap_loop) {
        size_t cap = w->cap_st > (size_t)s + 1 ? w->cap_st : (size_t)s + 1;
        uint64_t *k = realloc(w->known, cap * 2 * sizeof *k);
        if (k)
            w->known = k;
        uint64_t *l = k ? realloc(w->loop, cap * 2 * sizeof *l) : NULL;
        if (!k || !l)
            return false;
        w->loop = l;
        memset(w->known + w->cap_loop * 2, 0, (cap - w->cap_loop) * 2 * sizeof *k);
        memset(w->loop + w->cap_loop * 2, 0, (cap - w->cap_loop) * 2 * sizeof *l);
        w->cap_loop = cap;
    }
    uint64_t *known = w->known + (size_t)s * 2, *loop = w->loop + (size_t)s * 2;
    for (int k = 0; k < 2; k++)
        if (bytes[k] & known[k] & ~loop[k])
            return false;            /* a known ASCII byte leaves s */
    for (int k = 0; k < 2; k++)
        for (uint64_t todo = bytes[k] & ~known[k]; todo; todo &= todo - 1) {
            int b = 64 * k + __builtin_ctzll(todo);
            int32_t r = transition(w, s, (uint8_t)b);
            /* transition may have grown the walk's arrays, not these */
            known[k] |= 1ULL << (b % 64);
            if (r != s)
                return false;
            loop[k] |= 1ULL << (b % 64);
        }
    return true;
}

enum pgd_status pgd__gmask_fill(struct pgd__gmatch *m, const struct pgd__vocab *v,
                                const int32_t *end, int n_end, uint64_t budget, uint32_t *mask,
                                char *err, size_t errlen)
{
    size_t words = pgd__mask_words(v->n);
    memset(mask, 0, words * sizeof *mask);
    struct walk w = { .m = m };
    size_t base = m->n_nodes;
    int32_t *lv = malloc(((size_t)v->max_depth + 1) * sizeof *lv);
    uint32_t *start = malloc((m->n_set + 1) * sizeof *start);
    bool any = false, over = false;
    m->over = false;
    if (lv && start) {
        memcpy(start, m->set, m->n_set * sizeof *start);
        struct pgd__gpart part = { m->part_val, m->part_need, m->part_len };
        lv[0] = intern(&w, start, m->n_set, &part);
        w.nomem |= lv[0] < 0;
        for (uint32_t i = 0; !w.nomem && i < v->n_nodes;) {
            int d = v->ndepth[i];
            /* the memo row first (most nodes), the transition's work on a miss */
            int32_t s = w.next[(size_t)lv[d - 1] * 256 + v->nbyte[i]];
            if (s == UNKNOWN) {
                s = transition(&w, lv[d - 1], v->nbyte[i]);
                if ((over = w.work > budget || m->over))
                    break;
            }
            if (s < 0) {
                i = v->nend[i];
                continue;
            }
            lv[d] = s;
            if (v->nsub[i] >= 0 && absorbs(&w, s, v->sub_bytes + 4 * (size_t)v->nsub[i],
                                           v->sub_utf8[v->nsub[i]])) {
                /* every path below i comes back to s or stays alive: the subtree fits */
                uint32_t end = v->nend[i] < v->n_nodes ? v->ntok[v->nend[i]]
                                                       : (uint32_t)v->n_toks;
                for (uint32_t t = v->ntok[i]; t < end; t++)
                    set_bit(mask, v->toks[t]);
                any |= end > v->ntok[i];
                i = v->nend[i];
                continue;
            }
            if ((over = w.work > budget || m->over))     /* absorbs() steps too */
                break;
            for (uint32_t j = 0; j < v->ntok_n[i]; j++)
                set_bit(mask, v->toks[v->ntok[i] + j]);
            any |= v->ntok_n[i] > 0;
            i++;
        }
    } else {
        w.nomem = true;
    }
    pgd__gmatch_release(m, base);
    free(lv);
    free(start);
    free(w.st);
    free(w.next);
    free(w.sets);
    free(w.gen);
    free(w.sing);
    free(w.grp);
    free(w.grp_at);
    free(w.pairs);
    free(w.scratch);
    free(w.rkey);
    free(w.rnode);
    free(w.advanced.e);
    free(w.tab);
    kmap_free(&w.partial);
    free(w.known);
    free(w.loop);
    if (over && m->over)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "too ambiguous to follow: one "
                        "character after this point makes over %u parse stack entries (%zu "
                        "parse stacks live); simplify the guide", PGD__GMATCH_PASS_MAX, m->n_set);
    if (over)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "too ambiguous to follow: the next "
                        "token's mask needed over %llu parser steps (%zu parse stacks live); "
                        "simplify the guide", (unsigned long long)budget, m->n_set);
    if (w.nomem)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory making the next token's "
                        "mask (%zu parse stacks live)", m->n_set);
    if (pgd__gmatch_accepting(m) || !any)
        for (int i = 0; i < n_end; i++)
            if (end[i] >= 0 && end[i] < v->n)
                set_bit(mask, end[i]);
    return PGD_OK;
}
