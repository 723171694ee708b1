/* Guides: compiling each kind of pgd_sampling_params.guide into a grammar, the engine's
 * cache of compiled guides (by the XXH3 hash of kind and text; shared read-only by the
 * requests that use them, freed once unused and beyond the cache's size), and each guide's
 * cache of masks by matcher state. */
#include "runtime/grammar/guide.h"
#include "runtime/base/buf.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Memory: at most GUIDES_KEPT guides beyond those in use, each with at most
 * MASK_CACHE_BYTES of cached masks (about 800 states of a 150k vocabulary). */
#define GUIDES_KEPT 16
#define MASK_CACHE_BYTES (16u << 20)

const char *pgd__guide_kind_name(enum pgd_guide_kind kind)
{
    switch (kind) {
    case PGD_GUIDE_JSON_OBJECT: return "json_object";
    case PGD_GUIDE_JSON_SCHEMA: return "json_schema";
    case PGD_GUIDE_REGEX: return "regex";
    case PGD_GUIDE_CHOICE: return "choice";
    case PGD_GUIDE_GRAMMAR: return "grammar";
    default: return "none";
    }
}

/* choice: a JSON array of strings, each matched literally. */
static enum pgd_status compile_choice(const char *text, struct pgd__grammar **out, char *err,
                                      size_t errlen)
{
    json_error_t je;
    json_t *a = json_loads(text, 0, &je);
    if (!a || !json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "choice: must be a non-empty JSON "
                        "array of strings");
    }
    struct pgd__gbuilder b;
    pgd__gb_init(&b);
    struct pgd__gvec v = { 0 };
    enum pgd_status st = PGD_OK;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s)) {
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "choice: [%zu] is not a string", i);
            break;
        }
        if (i)
            pgd__gvec_push(&b, &v, PGD__GE_ALT, 0);
        const char *p = json_string_value(s);
        size_t n = json_string_length(s);
        for (size_t k = 0; k < n;) {
            uint32_t cp;
            int l = 1;
            unsigned char c = (unsigned char)p[k];
            /* jansson hands out valid UTF-8 */
            if (c < 0x80) cp = c;
            else if (c < 0xE0) { cp = c & 0x1F; l = 2; }
            else if (c < 0xF0) { cp = c & 0x0F; l = 3; }
            else { cp = c & 0x07; l = 4; }
            for (int j = 1; j < l; j++)
                cp = (cp << 6) | ((unsigned char)p[k + j] & 0x3F);
            pgd__gb_push_char(&b, &v, cp);
            k += (size_t)l;
        }
    }
    json_decref(a);
    int root = st ? -1 : pgd__gb_rule(&b, "root", 4);
    if (root >= 0)
        pgd__gb_define(&b, root, &v);
    pgd__gvec_free(&v);
    if (st) {
        pgd__gb_fini(&b);
        return st;
    }
    return pgd__gb_finish(&b, "choice", out, err, errlen);
}

static enum pgd_status compile_regex(const char *text, struct pgd__grammar **out, char *err,
                                     size_t errlen)
{
    struct pgd__gbuilder b;
    pgd__gb_init(&b);
    struct pgd__gvec v = { 0 };
    enum pgd_status st = pgd__regex_emit(&b, &v, text, strlen(text), false, "regex", err,
                                         errlen);
    int root = st ? -1 : pgd__gb_rule(&b, "root", 4);
    if (root >= 0)
        pgd__gb_define(&b, root, &v);
    pgd__gvec_free(&v);
    if (st) {
        pgd__gb_fini(&b);
        return st;
    }
    return pgd__gb_finish(&b, "regex", out, err, errlen);
}

enum pgd_status pgd__guide_compile(enum pgd_guide_kind kind, const char *text,
                                   struct pgd__grammar **out, char *err, size_t errlen)
{
    *out = NULL;
    if (kind != PGD_GUIDE_JSON_OBJECT && !text)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: the guide text is missing",
                        pgd__guide_kind_name(kind));
    switch (kind) {
    case PGD_GUIDE_JSON_OBJECT: {
        const char *g = pgd__json_object_gbnf();
        return pgd__grammar_parse(g, strlen(g), "json_object", out, err, errlen);
    }
    case PGD_GUIDE_JSON_SCHEMA: {
        char *g;
        enum pgd_status st = pgd__schema_to_gbnf(text, strlen(text), &g, err, errlen);
        if (st)
            return st;
        st = pgd__grammar_parse_ex(g, strlen(g), "json_schema", true, out, err, errlen);
        free(g);
        return st;
    }
    case PGD_GUIDE_REGEX:
        return compile_regex(text, out, err, errlen);
    case PGD_GUIDE_CHOICE:
        return compile_choice(text, out, err, errlen);
    case PGD_GUIDE_GRAMMAR:
        return pgd__grammar_parse(text, strlen(text), "grammar", out, err, errlen);
    default:
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "sampling: guide_kind %d is not a "
                        "kind of guide", (int)kind);
    }
}

/* ---- the cache of guides ------------------------------------------------------------------ */

enum pgd_status pgd__guides_init(struct pgd__guides *gs, const struct pgd_tokenizer *tok,
                                 int32_t n_vocab, char *err, size_t errlen)
{
    memset(gs, 0, sizeof *gs);
    gs->tok = tok;
    gs->n_vocab = n_vocab;
    if (pthread_mutex_init(&gs->mu, NULL))
        return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "guides: cannot make a mutex");
    return PGD_OK;
}

struct pgd__mask_entry {
    uint64_t k0, k1;                /* the state's hash; k0 == 0 && k1 == 0: empty slot */
    uint32_t *mask;                 /* [words] owned */
};

static void guide_free(struct pgd__guide *g)
{
    for (size_t i = 0; i < g->mask_cap; i++)
        free(g->masks[i].mask);
    free(g->masks);
    pthread_mutex_destroy(&g->mu);
    pgd__grammar_free(g->g);
    free(g->text);
    free(g);
}

void pgd__guides_fini(struct pgd__guides *gs)
{
    for (struct pgd__guide *g = gs->head, *n; g; g = n) {
        n = g->next;
        guide_free(g);
    }
    pgd__vocab_free(gs->vocab);
    pthread_mutex_destroy(&gs->mu);
    memset(gs, 0, sizeof *gs);
}

static uint64_t guide_key(enum pgd_guide_kind kind, const char *text)
{
    uint64_t seed = (uint64_t)kind * 0x9e3779b97f4a7c15ULL + 1;
    return text ? XXH3_64bits_withSeed(text, strlen(text), seed) : seed;
}

static bool same_guide(const struct pgd__guide *g, uint64_t key, enum pgd_guide_kind kind,
                       const char *text)
{
    return g->key == key && g->kind == kind &&
           (g->text && text ? strcmp(g->text, text) == 0 : !g->text && !text);
}

/* Drops unused guides past the newest GUIDES_KEPT (under mu). */
static void trim(struct pgd__guides *gs)
{
    int seen = 0;
    for (struct pgd__guide **p = &gs->head; *p;) {
        struct pgd__guide *g = *p;
        if (++seen > GUIDES_KEPT && g->refs == 0) {
            *p = g->next;
            gs->n--;
            guide_free(g);
            continue;
        }
        p = &g->next;
    }
}

enum pgd_status pgd__guides_get(struct pgd__guides *gs, enum pgd_guide_kind kind,
                                const char *text, struct pgd__guide **out,
                                const struct pgd__vocab **vocab, char *err, size_t errlen)
{
    *out = NULL;
    if (kind == PGD_GUIDE_JSON_OBJECT)
        text = NULL;                /* json_object takes no text: one guide for all */
    uint64_t key = guide_key(kind, text);
    pthread_mutex_lock(&gs->mu);
    enum pgd_status st = PGD_OK;
    if (!gs->vocab)
        st = pgd__vocab_from_tokenizer(gs->tok, gs->n_vocab, &gs->vocab, err, errlen);
    *vocab = gs->vocab;
    for (struct pgd__guide *g = gs->head; st == PGD_OK && g; g = g->next)
        if (same_guide(g, key, kind, text)) {
            g->refs++;
            *out = g;
            break;
        }
    pthread_mutex_unlock(&gs->mu);
    if (st || *out)
        return st;
    /* Compiled outside the lock: another request may compile the same meanwhile; the
     * first to finish is kept. */
    struct pgd__grammar *gr;
    if ((st = pgd__guide_compile(kind, text, &gr, err, errlen)))
        return st;
    struct pgd__guide *g = calloc(1, sizeof *g);
    if (!g || (text && !(g->text = strdup(text))) || pthread_mutex_init(&g->mu, NULL)) {
        if (g)
            free(g->text);
        free(g);
        pgd__grammar_free(gr);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory",
                        pgd__guide_kind_name(kind));
    }
    g->kind = kind;
    g->key = key;
    g->g = gr;
    g->refs = 1;
    g->words = pgd__mask_words(gs->n_vocab);
    pthread_mutex_lock(&gs->mu);
    for (struct pgd__guide *o = gs->head; o; o = o->next)
        if (same_guide(o, key, kind, text)) {
            o->refs++;
            *out = o;
            break;
        }
    if (!*out) {
        g->next = gs->head;
        gs->head = g;
        gs->n++;
        *out = g;
        g = NULL;
        trim(gs);
    }
    pthread_mutex_unlock(&gs->mu);
    if (g)
        guide_free(g);
    return PGD_OK;
}

void pgd__guide_release(struct pgd__guides *gs, struct pgd__guide *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&gs->mu);
    g->refs--;
    trim(gs);
    pthread_mutex_unlock(&gs->mu);
}

/* ---- masks by state ----------------------------------------------------------------------- */

int pgd__gcmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The state's key: XXH3-128 of its stacks' content hashes (sorted: a set) and its partial
 * character. false when out of memory (then nothing is cached). */
static bool state_key(const struct pgd__gmatch *m, uint64_t *k0, uint64_t *k1)
{
    size_t n = m->n_set + 2;
    uint64_t small[64], *h = n <= 64 ? small : malloc(n * sizeof *h);
    if (!h)
        return false;
    for (size_t i = 0; i < m->n_set; i++)
        h[i] = m->nodes[m->set[i]].hash;
    qsort(h, m->n_set, sizeof *h, pgd__gcmp_u64);
    h[m->n_set] = m->part_val;
    h[m->n_set + 1] = (uint64_t)m->part_need << 8 | (uint64_t)m->part_len;
    XXH128_hash_t x = XXH3_128bits(h, n * sizeof *h);
    if (h != small)
        free(h);
    *k0 = x.low64 | 1;              /* never the empty slot's (0, 0) */
    *k1 = x.high64;
    return true;
}

static struct pgd__mask_entry *slot(struct pgd__guide *g, uint64_t k0, uint64_t k1)
{
    size_t i = (size_t)(k0 ^ (k1 >> 7)) & (g->mask_cap - 1);
    for (;; i = (i + 1) & (g->mask_cap - 1)) {
        struct pgd__mask_entry *e = &g->masks[i];
        if ((e->k0 == k0 && e->k1 == k1) || (e->k0 == 0 && e->k1 == 0))
            return e;
    }
}

/* The cache's slots: a power of two, at most MASK_CACHE_BYTES of masks at half load. */
static bool cache_ready(struct pgd__guide *g)
{
    if (g->masks)
        return true;
    size_t want = MASK_CACHE_BYTES / (g->words * 4 + 1) * 2, cap = 16;
    while (cap * 2 <= want && cap < 65536)
        cap *= 2;
    g->masks = calloc(cap, sizeof *g->masks);
    g->mask_cap = g->masks ? cap : 0;
    return g->masks != NULL;
}

/* (k0, k1)'s mask from g's cache into mask; false (mask untouched) when not there. */
static bool cache_get(struct pgd__guide *g, uint64_t k0, uint64_t k1, uint32_t *mask)
{
    pthread_mutex_lock(&g->mu);
    const struct pgd__mask_entry *e = cache_ready(g) ? slot(g, k0, k1) : NULL;
    const bool hit = e && e->mask;
    if (hit)
        memcpy(mask, e->mask, g->words * sizeof *mask);
    pthread_mutex_unlock(&g->mu);
    return hit;
}

/* Keeps mask as (k0, k1)'s in g's cache, unless another thread kept it first. */
static void cache_put(struct pgd__guide *g, uint64_t k0, uint64_t k1, const uint32_t *mask)
{
    pthread_mutex_lock(&g->mu);
    if (!cache_ready(g)) {
        pthread_mutex_unlock(&g->mu);
        return;
    }
    if (g->n_masks * 2 >= g->mask_cap) {
        /* full: start over (states of a long generation rarely come back) */
        for (size_t i = 0; i < g->mask_cap; i++)
            free(g->masks[i].mask);
        memset(g->masks, 0, g->mask_cap * sizeof *g->masks);
        g->n_masks = 0;
    }
    struct pgd__mask_entry *e = slot(g, k0, k1);
    if (!e->mask && (e->mask = malloc(g->words * sizeof *mask))) {
        memcpy(e->mask, mask, g->words * sizeof *mask);
        e->k0 = k0;
        e->k1 = k1;
        g->n_masks++;
    }
    pthread_mutex_unlock(&g->mu);
}

bool pgd__guide_mask_lookup(struct pgd__guide *g, const struct pgd__gmatch *m, uint32_t *mask)
{
    uint64_t k0, k1;
    return state_key(m, &k0, &k1) && cache_get(g, k0, k1, mask);
}

enum pgd_status pgd__guide_mask(struct pgd__guide *g, const struct pgd__vocab *v,
                                struct pgd__gmatch *m, const int32_t *end, int n_end,
                                uint32_t *mask, char *err, size_t errlen)
{
    uint64_t k0, k1;
    const bool keyed = state_key(m, &k0, &k1);      /* m is the caller's alone */
    if (keyed && cache_get(g, k0, k1, mask))
        return PGD_OK;
    /* A miss: the walk outside the lock, so that samples of the same guide walk at once
     * (two that meet the same new state both walk it; the first to finish caches it). */
    char why[256];
    enum pgd_status st = pgd__gmask_fill(m, v, end, n_end, PGD__GMASK_BUDGET, mask, why,
                                         sizeof why);
    if (st)
        return pgd_errf(err, errlen, st, "%s: %s", pgd__guide_kind_name(g->kind), why);
    if (keyed)
        cache_put(g, k0, k1, mask);
    return PGD_OK;
}
