/* Internal: the grammar engine of structured output (constrained decoding).
 *
 * A grammar is a set of rules in the flat form llama.cpp's GBNF engine made familiar: each
 * rule is a run of elements, its alternatives separated by ALT and closed by END; an element
 * is a terminal (a set of code points: struct pgd__cset) or a reference to a rule.
 * Repetition (* + ? {m,n}) is expanded into helper rules when the grammar is built, so the
 * matcher only knows sequences, alternatives and references.
 *
 * Everything compiles to this form: GBNF / EBNF / lark text (gram_parse.c), regular
 * expressions (gram_regex.c, also the `/.../` terminals of grammar text), JSON Schema
 * (gram_schema.c writes grammar text), json_object and choice lists (gram_guide.c).
 *
 * The matcher (gram_match.c) is a pushdown automaton: its state is a set of stacks of
 * grammar positions (persistent linked lists in an arena, so stacks share their tails), each
 * stack's top a terminal still to match; the empty stack means "the grammar may end here".
 * It advances over bytes, holding a partial UTF-8 sequence until its code point completes
 * (byte-level BPE tokens often end inside a character).
 *
 * Token masks (gram_mask.c) walk a byte trie of the vocabulary (gram_vocab.c) with the
 * matcher's stacks, pruning a subtree as soon as no stack survives its prefix. */
#ifndef PGD_RUNTIME_GRAMMAR_H
#define PGD_RUNTIME_GRAMMAR_H

#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the compiled grammar (read-only once built; shared by any number of matchers) ---- */

enum pgd__ge_kind { PGD__GE_END = 0, PGD__GE_ALT, PGD__GE_REF, PGD__GE_TERM };

struct pgd__gelem {
    uint32_t kind;                  /* enum pgd__ge_kind */
    uint32_t value;                 /* REF: rule id; TERM: cset id */
};

/* A set of code points: below 128 the bitmap decides, above it the sorted, disjoint ranges;
 * neg inverts the whole set. */
struct pgd__cset {
    uint32_t ascii[4];
    uint32_t r_off, n_r;            /* ranges [r_off, r_off + n_r) of the grammar's pairs */
    bool neg;
};

struct pgd__grammar {
    struct pgd__gelem *el;          /* [n_el] every rule's elements back to back; owned */
    size_t n_el;
    uint32_t *rule_start;           /* [n_rules] index of each rule's first element */
    char **rule_name;               /* [n_rules] owned */
    int n_rules;
    struct pgd__cset *cs;           /* [n_cs] owned */
    int n_cs;
    uint32_t *ranges;               /* [2 * n_ranges] (lo, hi) pairs, inclusive; owned */
    size_t n_ranges;
    int root;                       /* the start rule */
};

void pgd__grammar_free(struct pgd__grammar *g);

/* Whether code point cp is in set c. */
bool pgd__cset_has(const struct pgd__grammar *g, const struct pgd__cset *c, uint32_t cp);
/* Whether set c is exactly one code point (*cp). */
bool pgd__cset_single(const struct pgd__grammar *g, const struct pgd__cset *c, uint32_t *cp);
/* Whether some code point of [lo, hi] (lo >= 0x80) is in set c. */
bool pgd__cset_any_in(const struct pgd__grammar *g, const struct pgd__cset *c, uint32_t lo,
                      uint32_t hi);

/* ---- building a grammar (gram_build.c): what the parsers share ------------------------- */

struct pgd__gvec {                  /* a growable run of elements */
    struct pgd__gelem *v;
    size_t n, cap;
};

struct pgd__gbrule {
    char *name;                     /* owned */
    struct pgd__gvec body;          /* alternatives, ALT-separated, END-terminated once defined */
    bool defined;
    int first_line;                 /* where it was first referenced (for messages); 0: none */
};

struct pgd__gbuilder {
    struct pgd__gbrule *rules;      /* [n_rules] owned */
    int n_rules, cap_rules;
    struct pgd__cset *cs;           /* [n_cs] owned */
    int n_cs, cap_cs;
    uint32_t *ranges;               /* pairs; owned */
    size_t n_ranges, cap_ranges;
    int single[128];                /* cset id of each single ASCII character, or -1 */
    /* The rules by name: open addressing by XXH3 of the name, rule ids (-1: empty), so a
     * grammar of 100,000 rules does not look each name up among all before it. */
    int32_t *name_tab;
    size_t name_cap;                /* a power of two, or 0 */
    size_t total;                   /* elements in all rules (bounded: PGD__GRAMMAR_MAX_EL) */
    bool nomem;
    /* Ranges of the set being built by cset_begin/cset_add/cset_end: pairs; owned. */
    uint32_t *tmp;
    size_t n_tmp, cap_tmp;
};

#define PGD__GRAMMAR_MAX_EL (1u << 21)     /* elements of one grammar, all rules */
#define PGD__GRAMMAR_MAX_REPEAT 10000      /* the m and n of {m,n} */
#define PGD__REPEAT_INF (-1)

void pgd__gb_init(struct pgd__gbuilder *b);
void pgd__gb_fini(struct pgd__gbuilder *b);
/* The rule named name[0..len) (created undefined when new); -1 when out of memory. */
int pgd__gb_rule(struct pgd__gbuilder *b, const char *name, size_t len);
/* A new rule with a fresh name made from hint ("hint#N", which no grammar text can name);
 * -1 when out of memory. */
int pgd__gb_rule_new(struct pgd__gbuilder *b, const char *hint);
/* Defines rule id with body (moved in: body is empty after; an END is appended). false:
 * out of memory or over PGD__GRAMMAR_MAX_EL (b->nomem tells which). */
bool pgd__gb_define(struct pgd__gbuilder *b, int id, struct pgd__gvec *body);
bool pgd__gvec_push(struct pgd__gbuilder *b, struct pgd__gvec *v, enum pgd__ge_kind k,
                    uint32_t value);
void pgd__gvec_free(struct pgd__gvec *v);

/* Character sets: begin, add ranges (inclusive), end with neg: the set's id, -1 when out
 * of memory. */
void pgd__gb_cset_begin(struct pgd__gbuilder *b);
void pgd__gb_cset_add(struct pgd__gbuilder *b, uint32_t lo, uint32_t hi);
int pgd__gb_cset_end(struct pgd__gbuilder *b, bool neg);
/* Appends a terminal matching exactly cp. */
bool pgd__gb_push_char(struct pgd__gbuilder *b, struct pgd__gvec *v, uint32_t cp);

/* The elements v[start, n) are one item (a terminal, a reference, or a group's elements):
 * replaces them by the item repeated min..max times (max PGD__REPEAT_INF: unbounded),
 * through helper rules named after hint. false: out of memory or too large (b->nomem). */
bool pgd__gb_repeat(struct pgd__gbuilder *b, struct pgd__gvec *v, size_t start, int min,
                    int max, const char *hint);
/* Wraps v[start, n) (alternatives separated by ALT) into a new rule and leaves one REF. */
bool pgd__gb_group(struct pgd__gbuilder *b, struct pgd__gvec *v, size_t start,
                   const char *hint);

/* Checks and freezes: every referenced rule defined, `root` (or `start`) present, no left
 * recursion (a rule that can reach itself before consuming a character). *out is a new
 * grammar; errors name the rule. b is spent either way. */
enum pgd_status pgd__gb_finish(struct pgd__gbuilder *b, const char *what,
                               struct pgd__grammar **out, char *err, size_t errlen);

/* ---- parsers --------------------------------------------------------------------------- */

/* GBNF (llama.cpp), with the lark/EBNF spellings vLLM accepts: `name ::= ...` or
 * `name: ...`, `|`, groups, * + ? {m} {m,} {m,n}, "..." and '...' literals with escapes,
 * [classes] with ranges and ^, `.`, `/regex/` terminals, # and // comments. The start rule
 * is `root` (or `start`). what names the source in messages ("grammar"). */
enum pgd_status pgd__grammar_parse(const char *text, size_t len, const char *what,
                                   struct pgd__grammar **out, char *err, size_t errlen);

/* The same; regex_json: every /regex/ terminal is compiled in JSON mode (see
 * pgd__regex_emit), as the grammar text made from a JSON Schema needs. */
enum pgd_status pgd__grammar_parse_ex(const char *text, size_t len, const char *what,
                                      bool regex_json, struct pgd__grammar **out, char *err,
                                      size_t errlen);

/* The regular expression re[0..len) appended to v as one item (a REF to a rule of its
 * own), matched in full: literals, escapes (\d \w \s \D \W \S \n \t \r \f \v \xHH \uHHHH
 * \/ and escaped punctuation), classes, `.` (not \n), groups ( (?: (?P<n> (?<n> ),
 * alternation, quantifiers * + ? {m} {m,} {m,n} (a lazy `?` suffix ignored), ^ at the start
 * and $ at the end. Backreferences, lookaround and other anchors are refused. json: the
 * item matches the JSON string-encoded form (inside quotes: `"` as \", `\` as \\, control
 * characters escaped), for JSON Schema patterns. Errors: "WHAT: offset N: ...". */
enum pgd_status pgd__regex_emit(struct pgd__gbuilder *b, struct pgd__gvec *v, const char *re,
                                size_t len, bool json, const char *what, char *err,
                                size_t errlen);

/* JSON Schema text -> grammar text (GBNF, malloc'd into *out). Errors name the JSON pointer
 * of the offending keyword: "json_schema: /properties/age/minimum: ...". */
enum pgd_status pgd__schema_to_gbnf(const char *schema, size_t len, char **out, char *err,
                                    size_t errlen);
/* The grammar text of any JSON object (json_object), with bounded whitespace. */
const char *pgd__json_object_gbnf(void);

/* ---- the matcher (gram_match.c) -------------------------------------------------------- */

/* One stack entry: a grammar position and the entry under it; entry 0 is the empty stack.
 * hash: of the whole stack's content (equal stacks, equal hashes). */
struct pgd__gnode {
    uint32_t el;
    uint32_t parent;
    uint64_t hash;
};

/* Up to this many stacks a step's sink finds an equal one by a scan of its entries; past
 * it, by expand's memo (a grammar like ("h" | "yz" | ""){900} keeps ~1,800 stacks live, and
 * scanning for each made a step quadratic in them). */
#define PGD__GMATCH_SINK_SCAN 16

/* The most stack entries one pass (the start, or one character) may push: nested
 * repetitions such as ((((((.)?){10}){10}){10}){10}){10}){10} keep 10^k stacks live from a
 * grammar of a few dozen elements (k = 7: 10 million stacks, 3 GB and 10 s a character).
 * 2 M entries are 32 MB and ~0.35 s; a choice of 100,000 strings pushes ~0.2 M. */
#define PGD__GMATCH_PASS_MAX (1u << 21)

/* An entry of expand's memo: a stack expanded in pass `pass`. */
struct pgd__gseen {
    uint32_t node, pass;
};

struct pgd__gmatch {
    const struct pgd__grammar *g;   /* borrowed (the guide holds it) */
    struct pgd__gnode *nodes;       /* [n_nodes] arena; owned */
    size_t n_nodes, cap_nodes;
    uint32_t *set;                  /* [n_set] the live stacks (distinct); owned */
    size_t n_set, cap_set;
    /* A UTF-8 sequence begun but not complete: the bits so far and the bytes still due. */
    uint32_t part_val;
    int part_need;
    int part_len;                   /* bytes of the sequence so far */
    /* scratch of the mask walk (gram_mask.c): sets of every trie depth, back to back */
    uint32_t *scr;
    size_t cap_scr;
    /* expand's memo (gram_match.c): the stacks one pass has expanded, open addressing by
     * content hash; entries of an earlier pass count as free. Owned scratch. */
    struct pgd__gseen *seen;
    size_t cap_seen;                /* a power of two, or 0 */
    size_t n_seen;                  /* entries of the current pass */
    uint32_t pass;
    uint32_t *todo;                 /* expand's work list; owned scratch */
    size_t cap_todo;
    /* Set when a pass pushed over PGD__GMATCH_PASS_MAX entries (the call failed for that,
     * not for memory nor a byte the grammar refuses); cleared by the next accept. */
    bool over;
};

/* A matcher at the grammar's start; false when out of memory, or with m->over set when the
 * start is too ambiguous (PGD__GMATCH_PASS_MAX); m is empty either way. */
bool pgd__gmatch_init(struct pgd__gmatch *m, const struct pgd__grammar *g);
void pgd__gmatch_fini(struct pgd__gmatch *m);
/* A copy of src (for tests and speculation); false when out of memory. */
bool pgd__gmatch_copy(struct pgd__gmatch *dst, const struct pgd__gmatch *src);
/* Feeds bytes; false (m unchanged past the failing byte's predecessors) when the grammar
 * cannot continue with them, out of memory, or with m->over set (PGD__GMATCH_PASS_MAX). */
bool pgd__gmatch_accept(struct pgd__gmatch *m, const void *bytes, size_t n);
/* The grammar may end here (no partial character pending). */
bool pgd__gmatch_accepting(const struct pgd__gmatch *m);
/* The grammar must end here: accepting and nothing else can follow. */
bool pgd__gmatch_terminated(const struct pgd__gmatch *m);

/* The speculative step of the mask walk: the stacks of in[0, n_in) (entries of m's arena)
 * with partial state *part, fed byte; the surviving stacks are appended to *out (a growable
 * array of cap *cap, which may be m->scr: indices, not pointers, are read), their count
 * returned (0: dead), *part updated. New entries go in m's arena (release with
 * pgd__gmatch_release). */
struct pgd__gpart {
    uint32_t val;
    int need, len;
};
size_t pgd__gmatch_step(struct pgd__gmatch *m, size_t in_off, size_t n_in,
                        struct pgd__gpart *part, uint8_t byte, size_t out_off);
/* The pieces of a step, for the mask walk's memo (gram_mask.c), by classes: stacks whose
 * tops are the same character set take the same characters, so a state's stacks fall into
 * classes (cls[0, n), n <= 32: cset ids of g->cs) and which of them take a character is a
 * subset of classes (bit i: cls[i]). pgd__gmatch_top: the cset id of node's top, UINT32_MAX
 * for the empty stack (it takes nothing). takers: the classes that take code point cp;
 * nonascii_takers: the classes that take every code point from 0x80 up when each of the
 * others takes none of them, 0 when some class takes a part of them or none takes any (then
 * every non-ASCII character advances the same stacks: the walk takes a subtree of valid
 * UTF-8 under such a state whole); any_in: whether some class takes a code point of [lo,
 * hi] (lo >= 0x80: what a partial sequence may still become, pgd__gmatch_part_range). */
uint32_t pgd__gmatch_top(const struct pgd__gmatch *m, uint32_t node);
uint32_t pgd__gcls_takers(const struct pgd__grammar *g, const uint32_t *cls, int n, uint32_t cp);
uint32_t pgd__gcls_nonascii_takers(const struct pgd__grammar *g, const uint32_t *cls, int n);
bool pgd__gcls_any_in(const struct pgd__grammar *g, const uint32_t *cls, int n, uint32_t lo,
                      uint32_t hi);
/* The stacks set[0, n) (their tops taking the character just read) advanced into m->scr at
 * out_off: their count (0 also when out of memory, or over PGD__GMATCH_PASS_MAX: m->over).
 * set must not lie in m->scr. */
size_t pgd__gmatch_advance(struct pgd__gmatch *m, const uint32_t *set, size_t n,
                           size_t out_off);
/* The code points a partial sequence (val so far, need bytes due, total bytes) may still
 * become: [*lo, *hi]; false when none. */
bool pgd__gmatch_part_range(uint32_t val, int need, int total, uint32_t *lo, uint32_t *hi);
/* Whether a complete sequence of len bytes encodes cp validly. */
bool pgd__gmatch_valid_cp(uint32_t cp, int len);
/* Drops arena entries from n on (they must be unreferenced). */
void pgd__gmatch_release(struct pgd__gmatch *m, size_t n);
/* Makes room in m->scr for need entries; false when out of memory. */
bool pgd__gmatch_scr_reserve(struct pgd__gmatch *m, size_t need);

#endif
