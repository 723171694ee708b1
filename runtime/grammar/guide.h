/* Internal: structured output as the engine uses it.
 *
 *   - a vocabulary (gram_vocab.c): every token's bytes and a byte trie over them, made once
 *     per engine from its tokenizer;
 *   - a guide (gram_guide.c): one compiled guide (json_object, JSON Schema, regex, choice or
 *     grammar) shared read-only by every request that asks for the same (kind, text), found
 *     in the engine's cache by the XXH3 hash of both, plus the masks it has computed,
 *     cached by matcher state (the set of stacks and the partial character);
 *   - the mask (gram_mask.c): the tokens a matcher may take next, as a bitmask
 *     [ceil(vocab / 32)] (bit t % 32 of word t / 32), EOS and the stop ids set only when the
 *     grammar may end.
 * Each request sample has its own matcher (struct pgd__gmatch, grammar.h). */
#ifndef PGD_RUNTIME_GUIDE_H
#define PGD_RUNTIME_GUIDE_H

#include "runtime/grammar/grammar.h"
#include <pagoda/engine.h>
#include <pagoda/tokenizer.h>
#include <pthread.h>

#define PGD__VOCAB_MAX_TOKEN_BYTES 1024

struct pgd__vocab {
    int32_t n;                      /* tokens (the logits width) */
    uint8_t *bytes;                 /* every token's bytes back to back; owned */
    uint32_t *off;                  /* [n + 1] token t is bytes[off[t], off[t + 1]) */
    /* The trie in preorder: node i has byte nbyte[i] at depth ndepth[i] (1 = first byte),
     * its subtree ends before node nend[i], and the tokens that end at it are
     * toks[ntok[i], ntok[i] + ntok_n[i]). */
    uint32_t n_nodes;
    uint8_t *nbyte;
    uint16_t *ndepth;
    uint32_t *nend, *ntok, *ntok_n;
    int32_t *toks;                  /* [n_toks] the trie's tokens, sorted by their bytes */
    int32_t n_toks;
    int max_depth;
    /* Node i's subtree holds the tokens toks[ntok[i], tok_end) (tok_end: ntok[nend[i]], or
     * n_toks at the end). For a node whose subtree has PGD__VOCAB_SUB_MIN nodes or more,
     * nsub[i] indexes the 256-bit set of the bytes below it (sub_bytes[4 * nsub[i] ...]):
     * when a state takes each of those bytes back to itself, the walk takes the whole
     * subtree at once (gram_mask.c); -1 for the others. */
    int32_t *nsub;
    uint64_t *sub_bytes;
    /* [kept] whether every path below the node, from a character boundary, stays a valid
     * (possibly unfinished) UTF-8 sequence as the matcher reads them (gram_match.c: no
     * overlong forms, nothing past U+10FFFF, a surrogate dead once complete). */
    uint8_t *sub_utf8;
};
#define PGD__VOCAB_SUB_MIN 8

/* A vocabulary of n tokens: token i is bytes[i][0, lens[i]) (NULL or empty: never text).
 * Errors: out of memory. */
enum pgd_status pgd__vocab_create(int32_t n, const uint8_t *const *bytes, const uint32_t *lens,
                                  struct pgd__vocab **out, char *err, size_t errlen);
/* The same from a tokenizer, for logits of width n (ids the tokenizer lacks and its special
 * tokens are never text). */
enum pgd_status pgd__vocab_from_tokenizer(const struct pgd_tokenizer *tok, int32_t n,
                                          struct pgd__vocab **out, char *err, size_t errlen);
void pgd__vocab_free(struct pgd__vocab *v);
/* Token id's bytes (borrowed; *len 0 when it is never text). */
const uint8_t *pgd__vocab_token(const struct pgd__vocab *v, int32_t id, size_t *len);

/* Words of a mask over n tokens. */
static inline size_t pgd__mask_words(int32_t n) { return ((size_t)n + 31) / 32; }

/* The tokens m may take next into mask [pgd__mask_words(v->n)] by walking v's trie; the
 * ids end[0, n_end) (EOS, stop ids) are set when m accepts. When no token at all fits, the
 * end ids are set anyway, so the sample ends instead of taking any token.
 * budget: the most parser work the walk may do (stacks stepped and made, and stack entries
 * pushed: 22-58 ns a unit on one core). JSON Schema and regex guides take hundreds a mask,
 * a choice of 100,000 strings 0.64 M; a grammar ambiguous enough to keep thousands of
 * stacks live in more than 32 classes of several characters each can take billions,
 * seconds of a step that every request in the batch waits for. Past the budget the walk stops:
 * PGD_ERR_INVALID_ARG, "too ambiguous to follow: ...". PGD_ERR_NOMEM when out of memory.
 * On an error the mask is not to be used. */
#define PGD__GMASK_BUDGET (1ull << 25)      /* 0.75-2 s of one core */
enum pgd_status pgd__gmask_fill(struct pgd__gmatch *m, const struct pgd__vocab *v,
                                const int32_t *end, int n_end, uint64_t budget, uint32_t *mask,
                                char *err, size_t errlen);

/* ---- guides and their cache -------------------------------------------------------------- */

struct pgd__mask_entry;

struct pgd__guide {
    enum pgd_guide_kind kind;
    uint64_t key;                   /* XXH3 of (kind, text) */
    char *text;                     /* owned copy */
    struct pgd__grammar *g;         /* owned */
    int refs;                       /* under the cache's mutex */
    struct pgd__guide *next;        /* the cache's list */
    /* masks by matcher state, under mu (the engine's mask helpers fill them at once) */
    pthread_mutex_t mu;
    struct pgd__mask_entry *masks;  /* [mask_cap] open addressing; owned */
    size_t n_masks, mask_cap;
    size_t words;
};

/* Compiles (kind, text) into a grammar (no cache): the what of every message is the kind's
 * name ("json_schema", "regex", "choice", "grammar"). PGD_ERR_INVALID_ARG with the place and
 * the problem for anything that is not a valid guide. */
enum pgd_status pgd__guide_compile(enum pgd_guide_kind kind, const char *text,
                                   struct pgd__grammar **out, char *err, size_t errlen);
/* qsort's comparison of two uint64_t, ascending (state keys, the mask walk's singletons). */
int pgd__gcmp_u64(const void *a, const void *b);
/* The kind's name as messages and vLLM's options spell it. */
const char *pgd__guide_kind_name(enum pgd_guide_kind kind);

/* The engine's guides: a vocabulary (made on first use) and the compiled guides by key. */
struct pgd__guides {
    pthread_mutex_t mu;
    const struct pgd_tokenizer *tok;    /* borrowed */
    int32_t n_vocab;
    struct pgd__vocab *vocab;       /* owned; NULL until the first guide */
    struct pgd__guide *head;        /* owned list, newest first */
    int n;
};

/* An empty cache over tok (borrowed; must outlive it) for logits of width n_vocab. */
enum pgd_status pgd__guides_init(struct pgd__guides *gs, const struct pgd_tokenizer *tok,
                                 int32_t n_vocab, char *err, size_t errlen);
void pgd__guides_fini(struct pgd__guides *gs);
/* The guide for (kind, text): from the cache or compiled now (and cached); the caller holds
 * one reference (pgd__guide_release). *vocab gets the vocabulary (made on first use). Any
 * thread. */
enum pgd_status pgd__guides_get(struct pgd__guides *gs, enum pgd_guide_kind kind,
                                const char *text, struct pgd__guide **out,
                                const struct pgd__vocab **vocab, char *err, size_t errlen);
void pgd__guide_release(struct pgd__guides *gs, struct pgd__guide *g);

/* The mask of m's state from g's mask cache alone: false (mask untouched) when the state is
 * not in it. */
bool pgd__guide_mask_lookup(struct pgd__guide *g, const struct pgd__gmatch *m, uint32_t *mask);
/* The mask of m's state under guide g, from g's mask cache or computed now (and cached).
 * Threads may call it at once for different matchers (the walk runs outside g's lock).
 * Errors (pgd__gmask_fill's, within PGD__GMASK_BUDGET) name the guide's kind: "grammar: too
 * ambiguous to follow: ..."; nothing is cached then. */
enum pgd_status pgd__guide_mask(struct pgd__guide *g, const struct pgd__vocab *v,
                                struct pgd__gmatch *m, const int32_t *end, int n_end,
                                uint32_t *mask, char *err, size_t errlen);

#endif
