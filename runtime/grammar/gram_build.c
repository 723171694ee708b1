/* Building a grammar: rules by name, character sets, repetition expanded into helper rules,
 * and the final checks (every rule defined, a start rule, no left recursion) that freeze a
 * builder into a struct pgd__grammar. The parsers (grammar text, regex) all build here. */
#include "runtime/grammar/grammar.h"
#include "runtime/base/mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int rule_add(struct pgd__gbuilder *b, char *name)
{
    size_t cap = (size_t)b->cap_rules;
    if (!name || !pgd__array_reserve(b->rules, cap, (size_t)b->n_rules + 1)) {
        free(name);
        b->nomem = true;
        return -1;
    }
    b->cap_rules = (int)cap;
    memset(&b->rules[b->n_rules], 0, sizeof b->rules[0]);
    b->rules[b->n_rules].name = name;
    return b->n_rules++;
}

int pgd__gb_rule(struct pgd__gbuilder *b, const char *name, size_t len)
{
    for (int i = 0; i < b->n_rules; i++)
        if (strlen(b->rules[i].name) == len && memcmp(b->rules[i].name, name, len) == 0)
            return i;
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

/* nullable[r]: rule r can match the empty string (iterated to a fixed point). */
static void compute_nullable(const struct pgd__gbuilder *b, bool *nullable)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (int r = 0; r < b->n_rules; r++) {
            if (nullable[r])
                continue;
            const struct pgd__gvec *v = &b->rules[r].body;
            bool alt_ok = true;
            for (size_t i = 0; i < v->n; i++) {
                const struct pgd__gelem *e = &v->v[i];
                if (e->kind == PGD__GE_ALT || e->kind == PGD__GE_END) {
                    if (alt_ok) {
                        nullable[r] = changed = true;
                        break;
                    }
                    alt_ok = true;
                } else if (e->kind == PGD__GE_TERM || !nullable[e->value]) {
                    alt_ok = false;
                }
            }
        }
    }
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
    compute_nullable(b, nullable);
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
