/* Building a grammar: rules by name, character sets, repetition expanded into helper rules,
 * and the final checks (every rule defined, a start rule, no left recursion) that freeze a
 * builder into a struct pgd__grammar. The parsers (grammar text, regex) all build here. */
#include "runtime/grammar/grammar.h"
#include "runtime/base/mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void pgd__gb_init(struct pgd__gbuilder *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 128; i++)
        b->single[i] = -1;
}

void pgd__gvec_free(struct pgd__gvec *v)
{
    free(v->v);
    memset(v, 0, sizeof *v);
}

void pgd__gb_fini(struct pgd__gbuilder *b)
{
    for (int i = 0; i < b->n_rules; i++) {
        free(b->rules[i].name);
        pgd__gvec_free(&b->rules[i].body);
    }
    free(b->rules);
    free(b->name_tab);
    free(b->cs);
    free(b->ranges);
    free(b->tmp);
    memset(b, 0, sizeof *b);
}

void pgd__grammar_free(struct pgd__grammar *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_rules; i++)
        free(g->rule_name[i]);
    free(g->rule_name);
    free(g->rule_start);
    free(g->el);
    free(g->cs);
    free(g->ranges);
    free(g);
}

bool pgd__gvec_push(struct pgd__gbuilder *b, struct pgd__gvec *v, enum pgd__ge_kind k,
                    uint32_t value)
{
    if (b->nomem)
        return false;
    if (++b->total > PGD__GRAMMAR_MAX_EL || !pgd__array_reserve(v->v, v->cap, v->n + 1)) {
        b->nomem = true;
        return false;
    }
    v->v[v->n++] = (struct pgd__gelem){ .kind = k, .value = value };
    return true;
}

/* The name table's slot for name[0, len): the rule's, or the empty one it would take. */
static size_t name_slot(const struct pgd__gbuilder *b, const char *name, size_t len)
{
    size_t j = (size_t)XXH3_64bits(name, len) & (b->name_cap - 1);
    for (;; j = (j + 1) & (b->name_cap - 1)) {
        int32_t r = b->name_tab[j];
        if (r < 0 || (strncmp(b->rules[r].name, name, len) == 0 && b->rules[r].name[len] == 0))
            return j;
    }
}

/* Room in the name table for one more rule (rehashing every rule when it grows). */
static bool name_tab_reserve(struct pgd__gbuilder *b)
{
    if (((size_t)b->n_rules + 1) * 2 <= b->name_cap)
        return true;
    size_t cap = b->name_cap ? 2 * b->name_cap : 64;
    int32_t *t = malloc(cap * sizeof *t);
    if (!t)
        return false;
    memset(t, 0xff, cap * sizeof *t);
    free(b->name_tab);
    b->name_tab = t;
    b->name_cap = cap;
    for (int r = 0; r < b->n_rules; r++)
        t[name_slot(b, b->rules[r].name, strlen(b->rules[r].name))] = r;
    return true;
}

static int rule_add(struct pgd__gbuilder *b, char *name)
{
    size_t cap = (size_t)b->cap_rules;
    if (!name || !pgd__array_reserve(b->rules, cap, (size_t)b->n_rules + 1) ||
        !name_tab_reserve(b)) {
        free(name);
        b->nomem = true;
        return -1;
    }
    b->cap_rules = (int)cap;
    memset(&b->rules[b->n_rules], 0, sizeof b->rules[0]);
    b->rules[b->n_rules].name = name;
    b->name_tab[name_slot(b, name, strlen(name))] = b->n_rules;
    return b->n_rules++;
}

int pgd__gb_rule(struct pgd__gbuilder *b, const char *name, size_t len)
{
    if (b->name_cap > 0) {
        int32_t r = b->name_tab[name_slot(b, name, len)];
        if (r >= 0)
            return r;
    }
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, name, len);
        s[len] = '\0';
    }
    return rule_add(b, s);
}

int pgd__gb_rule_new(struct pgd__gbuilder *b, const char *hint)
{
    size_t n = strlen(hint) + 16;
    char *s = malloc(n);
    /* '#' cannot appear in a rule name of grammar text: no clash with the user's rules */
    if (s)
        snprintf(s, n, "%s#%d", hint, b->n_rules);
    return rule_add(b, s);
}

bool pgd__gb_define(struct pgd__gbuilder *b, int id, struct pgd__gvec *body)
{
    struct pgd__gbrule *r = &b->rules[id];
    pgd__gvec_free(&r->body);
    r->body = *body;
    memset(body, 0, sizeof *body);
    r->defined = true;
    return pgd__gvec_push(b, &r->body, PGD__GE_END, 0);
}

/* ---- character sets ------------------------------------------------------------------- */

void pgd__gb_cset_begin(struct pgd__gbuilder *b)
{
    b->n_tmp = 0;
}

void pgd__gb_cset_add(struct pgd__gbuilder *b, uint32_t lo, uint32_t hi)
{
    if (lo > hi || b->nomem)
        return;
    if (!pgd__array_reserve(b->tmp, b->cap_tmp, b->n_tmp + 2)) {
        b->nomem = true;
        return;
    }
    b->tmp[b->n_tmp++] = lo;
    b->tmp[b->n_tmp++] = hi;
}

static int cmp_pair(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

int pgd__gb_cset_end(struct pgd__gbuilder *b, bool neg)
{
    if (b->nomem)
        return -1;
    struct pgd__cset c = { .neg = neg };
    size_t np = b->n_tmp / 2;
    if (np > 1)
        qsort(b->tmp, np, 2 * sizeof *b->tmp, cmp_pair);
    /* ASCII into the bitmap; the rest (from 0x80) merged into disjoint ranges. */
    size_t first = b->n_ranges;
    for (size_t i = 0; i < np; i++) {
        uint32_t lo = b->tmp[2 * i], hi = b->tmp[2 * i + 1];
        for (uint32_t x = lo; x <= hi && x < 128; x++)
            c.ascii[x >> 5] |= 1u << (x & 31);
        if (hi < 128)
            continue;
        if (lo < 128)
            lo = 128;
        if (b->n_ranges > first && lo <= b->ranges[2 * b->n_ranges - 1] + 1) {
            if (hi > b->ranges[2 * b->n_ranges - 1])
                b->ranges[2 * b->n_ranges - 1] = hi;
            continue;
        }
        if (!pgd__array_reserve(b->ranges, b->cap_ranges, 2 * b->n_ranges + 2)) {
            b->nomem = true;
            return -1;
        }
        b->ranges[2 * b->n_ranges] = lo;
        b->ranges[2 * b->n_ranges + 1] = hi;
        b->n_ranges++;
    }
    c.r_off = (uint32_t)first;
    c.n_r = (uint32_t)(b->n_ranges - first);
    size_t cap = (size_t)b->cap_cs;
    if (!pgd__array_reserve(b->cs, cap, (size_t)b->n_cs + 1)) {
        b->nomem = true;
        return -1;
    }
    b->cap_cs = (int)cap;
    b->cs[b->n_cs] = c;
    return b->n_cs++;
}

bool pgd__gb_push_char(struct pgd__gbuilder *b, struct pgd__gvec *v, uint32_t cp)
{
    int id = cp < 128 ? b->single[cp] : -1;
    if (id < 0) {
        pgd__gb_cset_begin(b);
        pgd__gb_cset_add(b, cp, cp);
        id = pgd__gb_cset_end(b, false);
        if (id < 0)
            return false;
        if (cp < 128)
            b->single[cp] = id;
    }
    return pgd__gvec_push(b, v, PGD__GE_TERM, (uint32_t)id);
}

bool pgd__cset_has(const struct pgd__grammar *g, const struct pgd__cset *c, uint32_t cp)
{
    bool in;
    if (cp < 128) {
        in = (c->ascii[cp >> 5] >> (cp & 31)) & 1;
    } else {
        /* g->ranges is NULL in a grammar without ranges: no arithmetic on it then */
        const uint32_t *r = c->n_r ? g->ranges + 2 * (size_t)c->r_off : NULL;
        size_t lo = 0, hi = c->n_r;
        in = false;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cp < r[2 * mid])
                hi = mid;
            else if (cp > r[2 * mid + 1])
                lo = mid + 1;
            else {
                in = true;
                break;
            }
        }
    }
    return in != c->neg;
}

bool pgd__cset_single(const struct pgd__grammar *g, const struct pgd__cset *c, uint32_t *cp)
{
    if (c->neg)
        return false;
    int bits = 0;
    for (int w = 0; w < 4; w++)
        bits += __builtin_popcount(c->ascii[w]);
    if (bits == 1 && c->n_r == 0) {
        for (int w = 0; w < 4; w++)
            if (c->ascii[w])
                *cp = 32u * (uint32_t)w + (uint32_t)__builtin_ctz(c->ascii[w]);
        return true;
    }
    const uint32_t *r = c->n_r == 1 ? g->ranges + 2 * (size_t)c->r_off : NULL;
    if (bits == 0 && r && r[0] == r[1]) {
        *cp = r[0];
        return true;
    }
    return false;
}

bool pgd__cset_any_in(const struct pgd__grammar *g, const struct pgd__cset *c, uint32_t lo,
                      uint32_t hi)
{
    if (c->n_r == 0)
        return c->neg;          /* no ranges (a grammar may have none at all: g->ranges NULL) */
    const uint32_t *r = g->ranges + 2 * (size_t)c->r_off;
    for (uint32_t i = 0; i < c->n_r; i++) {
        uint32_t a = r[2 * i], z = r[2 * i + 1];
        if (z < lo)
            continue;
        if (a > hi)
            break;
        /* overlaps [lo, hi] */
        if (!c->neg)
            return true;
        if (a <= lo && z >= hi)
            return false;       /* all of [lo, hi] excluded */
        return true;            /* a part of [lo, hi] lies outside this range */
    }
    return c->neg;              /* no range touches [lo, hi] */
}

/* ---- groups and repetition ------------------------------------------------------------ */

/* Moves v[start, n) into a new rule's body; v gets one REF to it at start. */
bool pgd__gb_group(struct pgd__gbuilder *b, struct pgd__gvec *v, size_t start,
                   const char *hint)
{
    int id = pgd__gb_rule_new(b, hint);
    if (id < 0)
        return false;
    struct pgd__gvec body = { 0 };
    size_t n = v->n - start;
    if (!pgd__array_reserve(body.v, body.cap, n + 1)) {
        b->nomem = true;
        return false;
    }
    if (n > 0)
        memcpy(body.v, v->v + start, n * sizeof *body.v);
    body.n = n;
    v->n = start;
    if (!pgd__gb_define(b, id, &body))
        return false;
    return pgd__gvec_push(b, v, PGD__GE_REF, (uint32_t)id);
}

bool pgd__gb_repeat(struct pgd__gbuilder *b, struct pgd__gvec *v, size_t start, int min,
                    int max, const char *hint)
{
    if (v->n - start != 1 && !pgd__gb_group(b, v, start, hint))
        return false;
    struct pgd__gelem item = v->v[start];
    v->n = start;
    for (int i = 0; i < min; i++)
        if (!pgd__gvec_push(b, v, item.kind, item.value))
            return false;
    if (max == PGD__REPEAT_INF) {
        /* star ::= item star | (empty) */
        int id = pgd__gb_rule_new(b, hint);
        struct pgd__gvec body = { 0 };
        if (id < 0 || !pgd__gvec_push(b, &body, item.kind, item.value) ||
            !pgd__gvec_push(b, &body, PGD__GE_REF, (uint32_t)id) ||
            !pgd__gvec_push(b, &body, PGD__GE_ALT, 0) || !pgd__gb_define(b, id, &body)) {
            pgd__gvec_free(&body);
            return false;
        }
        return pgd__gvec_push(b, v, PGD__GE_REF, (uint32_t)id);
    }
    /* opt_1 ::= item | (empty); opt_k ::= item opt_(k-1) | (empty) */
    int prev = -1;
    for (int k = 0; k < max - min; k++) {
        int id = pgd__gb_rule_new(b, hint);
        struct pgd__gvec body = { 0 };
        if (id < 0 || !pgd__gvec_push(b, &body, item.kind, item.value) ||
            (prev >= 0 && !pgd__gvec_push(b, &body, PGD__GE_REF, (uint32_t)prev)) ||
            !pgd__gvec_push(b, &body, PGD__GE_ALT, 0) || !pgd__gb_define(b, id, &body)) {
            pgd__gvec_free(&body);
            return false;
        }
        prev = id;
    }
    return prev < 0 || pgd__gvec_push(b, v, PGD__GE_REF, (uint32_t)prev);
}

/* ---- checks and freezing ---------------------------------------------------------------- */

/* nullable[r]: rule r can match the empty string. A worklist, linear in the grammar: each
 * alternative counts the references it still waits on (one with a terminal never becomes
 * nullable); a rule found nullable decrements the alternatives that use it, once per use.
 * (Iterating every rule to a fixed point was quadratic: a chain of 100,000 rules each
 * nullable only once the next is took one pass per rule.) false: out of memory. */
static bool compute_nullable(const struct pgd__gbuilder *b, bool *nullable)
{
    /* Alternatives: rule, references left; uses: for each rule, the alternatives that
     * reference it (CSR: use_off[n_rules + 1], use_alt[]). */
    size_t n_alts = 0, n_refs = 0;
    for (int r = 0; r < b->n_rules; r++)
        for (size_t i = 0; i < b->rules[r].body.n; i++) {
            enum pgd__ge_kind k = b->rules[r].body.v[i].kind;
            n_alts += k == PGD__GE_ALT || k == PGD__GE_END;
            n_refs += k == PGD__GE_REF;
        }
    int32_t *alt_rule = malloc((n_alts + 1) * sizeof *alt_rule);
    int32_t *alt_left = malloc((n_alts + 1) * sizeof *alt_left);
    size_t *use_off = calloc((size_t)b->n_rules + 2, sizeof *use_off);
    uint32_t *use_alt = malloc((n_refs + 1) * sizeof *use_alt);
    int32_t *todo = malloc(((size_t)b->n_rules + 1) * sizeof *todo);
    bool ok = alt_rule && alt_left && use_off && use_alt && todo;
    size_t n_todo = 0;
    for (int pass = 0; ok && pass < 2; pass++) {
        /* pass 0 counts each rule's uses; pass 1 fills them and the alternatives */
        size_t a = 0;
        for (int r = 0; r < b->n_rules; r++) {
            const struct pgd__gvec *v = &b->rules[r].body;
            int32_t left = 0;
            for (size_t i = 0; i < v->n; i++) {
                const struct pgd__gelem *e = &v->v[i];
                if (e->kind == PGD__GE_ALT || e->kind == PGD__GE_END) {
                    if (pass == 1) {
                        alt_rule[a] = r;
                        alt_left[a] = left;
                        if (left == 0 && !nullable[r]) {
                            nullable[r] = true;
                            todo[n_todo++] = r;
                        }
                    }
                    a++;
                    left = 0;
                } else if (e->kind == PGD__GE_TERM) {
                    left = -1;                      /* never */
                } else if (left >= 0) {
                    left++;
                    if (pass == 0)
                        use_off[e->value + 2]++;
                    else
                        use_alt[use_off[e->value + 1]++] = (uint32_t)a;
                }
            }
        }
        if (pass == 0)                      /* counts at [r + 2] -> starts at [r + 1] */
            for (int r = 0; r < b->n_rules; r++)
                use_off[r + 2] += use_off[r + 1];
    }
    /* after pass 1, use_off[r + 1] is the end of rule r's uses, use_off[r] its start */
    while (ok && n_todo > 0) {
        int32_t r = todo[--n_todo];
        for (size_t u = use_off[r]; u < use_off[r + 1]; u++) {
            uint32_t a = use_alt[u];
            if (--alt_left[a] == 0 && !nullable[alt_rule[a]]) {
                nullable[alt_rule[a]] = true;
                todo[n_todo++] = alt_rule[a];
            }
        }
    }
    free(alt_rule);
    free(alt_left);
    free(use_off);
    free(use_alt);
    free(todo);
    return ok;
}

/* Depth-first search over "r may begin with rule s" edges; state 1 = on the path. Returns
 * the rule that closes a cycle, or -1. */
static int left_cycle(const struct pgd__gbuilder *b, const bool *nullable, uint8_t *state,
                      int r, int depth)
{
    if (state[r] == 1)
        return r;
    if (state[r] == 2)
        return -1;
    if (depth > 20000)
        return -2;                  /* too deep to tell: refused as such */
    state[r] = 1;
    const struct pgd__gvec *v = &b->rules[r].body;
    bool at_start = true;
    for (size_t i = 0; i < v->n; i++) {
        const struct pgd__gelem *e = &v->v[i];
        if (e->kind == PGD__GE_ALT || e->kind == PGD__GE_END) {
            at_start = true;
            continue;
        }
        if (!at_start)
            continue;
        if (e->kind == PGD__GE_TERM) {
            at_start = false;
            continue;
        }
        int c = left_cycle(b, nullable, state, (int)e->value, depth + 1);
        if (c != -1)
            return c;
        at_start = nullable[e->value];
    }
    state[r] = 2;
    return -1;
}

static enum pgd_status check(struct pgd__gbuilder *b, const char *what, int *root, char *err,
                             size_t errlen)
{
    *root = -1;
    for (int i = 0; i < b->n_rules; i++) {
        if (!b->rules[i].defined)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: rule '%s' is used but "
                            "never defined", what, b->rules[i].name);
        if (*root < 0 && strcmp(b->rules[i].name, "root") == 0)
            *root = i;
    }
    for (int i = 0; *root < 0 && i < b->n_rules; i++)
        if (strcmp(b->rules[i].name, "start") == 0)
            *root = i;
    if (*root < 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: no start rule (define 'root', "
                        "or 'start')", what);
    bool *nullable = calloc((size_t)b->n_rules, sizeof *nullable);
    uint8_t *state = calloc((size_t)b->n_rules, 1);
    if (!nullable || !state) {
        free(nullable);
        free(state);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", what);
    }
    if (!compute_nullable(b, nullable)) {
        free(nullable);
        free(state);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", what);
    }
    int bad = -1;
    for (int i = 0; bad == -1 && i < b->n_rules; i++)
        bad = left_cycle(b, nullable, state, i, 0);
    free(nullable);
    free(state);
    if (bad == -2)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: rules nested too deeply (over "
                        "20000 levels)", what);
    if (bad >= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: rule '%s' is left-recursive (it "
                        "can reach itself before matching a character); rewrite it with "
                        "repetition, e.g. x ::= y (op y)*", what, b->rules[bad].name);
    return PGD_OK;
}

enum pgd_status pgd__gb_finish(struct pgd__gbuilder *b, const char *what,
                               struct pgd__grammar **out, char *err, size_t errlen)
{
    *out = NULL;
    enum pgd_status st = PGD_OK;
    struct pgd__grammar *g = NULL;
    if (b->nomem) {
        st = b->total > PGD__GRAMMAR_MAX_EL
                 ? pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: too large (over %u elements "
                            "once repetitions are expanded)", what, PGD__GRAMMAR_MAX_EL)
                 : pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    int root;
    if ((st = check(b, what, &root, err, errlen)))
        goto done;
    g = calloc(1, sizeof *g);
    size_t n_el = 0;
    for (int i = 0; i < b->n_rules; i++)
        n_el += b->rules[i].body.n;
    if (g) {
        g->el = malloc((n_el + 1) * sizeof *g->el);
        g->rule_start = malloc((size_t)b->n_rules * sizeof *g->rule_start);
        g->rule_name = calloc((size_t)b->n_rules, sizeof *g->rule_name);
    }
    if (!g || !g->el || !g->rule_start || !g->rule_name) {
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    size_t at = 0;
    for (int i = 0; i < b->n_rules; i++) {
        g->rule_start[i] = (uint32_t)at;
        memcpy(g->el + at, b->rules[i].body.v, b->rules[i].body.n * sizeof *g->el);
        at += b->rules[i].body.n;
        g->rule_name[i] = b->rules[i].name;
        b->rules[i].name = NULL;
    }
    g->el[at] = (struct pgd__gelem){ .kind = PGD__GE_END };
    g->n_el = at;
    g->n_rules = b->n_rules;
    g->root = root;
    g->cs = b->cs;
    g->n_cs = b->n_cs;
    g->ranges = b->ranges;
    g->n_ranges = b->n_ranges;
    b->cs = NULL;
    b->ranges = NULL;
    *out = g;
    g = NULL;
done:
    pgd__grammar_free(g);
    pgd__gb_fini(b);
    return st;
}
