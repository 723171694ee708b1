/* The grammar matcher: a pushdown automaton over code points, fed bytes.
 *
 * State: a set of distinct stacks, each a linked list of grammar positions in the matcher's
 * arena (entry 0 is the empty stack). A stack's top is always a terminal still to be matched
 * (expand() resolves references first, pushing the position to come back to). Matching a
 * code point moves each stack whose top accepts it one element on; at the end of an
 * alternative the entry is popped. Stacks share their tails, so an advance costs a few
 * entries, not a copy. Equal stacks reached two ways are kept once (content hashes, then a
 * walk to confirm), which keeps ambiguous grammars from multiplying the set; and within one
 * pass (one code point, or the start) a stack is expanded once however many derivations
 * reach it, which keeps them from multiplying the walk.
 *
 * Bytes: a code point is matched once its UTF-8 sequence completes; while it is partial the
 * matcher keeps its bits and checks that some stack could still accept a character with
 * that prefix (so a token ending inside a character is allowed only when it can go on). */
#include "runtime/grammar/grammar.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

#define EMPTY 0u

static uint64_t mix_hash(uint64_t parent, uint32_t el)
{
    uint64_t h = (parent ^ ((uint64_t)el * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 29);
}

/* A new entry (el over parent); UINT32_MAX when out of memory. */
static uint32_t push(struct pgd__gmatch *m, uint32_t parent, uint32_t el)
{
    if (!pgd__array_reserve(m->nodes, m->cap_nodes, m->n_nodes + 1) || m->n_nodes >= UINT32_MAX)
        return UINT32_MAX;
    m->nodes[m->n_nodes] = (struct pgd__gnode){
        .el = el, .parent = parent, .hash = mix_hash(m->nodes[parent].hash, el) };
    return (uint32_t)m->n_nodes++;
}

static bool same_stack(const struct pgd__gmatch *m, uint32_t a, uint32_t b)
{
    while (a != b) {
        const struct pgd__gnode *x = &m->nodes[a], *y = &m->nodes[b];
        if (a == EMPTY || b == EMPTY || x->el != y->el || x->hash != y->hash)
            return false;
        a = x->parent;
        b = y->parent;
    }
    return true;
}

/* Output of expand: entries appended to an array at [off, off + *n). One sink is one pass
 * of expand's memo. */
struct sink {
    uint32_t **arr;
    size_t *cap;
    size_t off, n;
    bool nomem;                     /* out of memory, or over (then nomem too) */
    bool over;                      /* past PGD__GMATCH_PASS_MAX entries pushed */
    size_t nodes0;                  /* the arena's size when the pass began */
    bool hashed;                    /* its entries are in the memo too (PGD__GMATCH_SINK_SCAN) */
};

/* A sink writing at arr[off...], opening a new pass of the memo. */
static struct sink sink_open(struct pgd__gmatch *m, uint32_t **arr, size_t *cap, size_t off)
{
    if (++m->pass == 0) {           /* wrapped: no entry may look current */
        if (m->seen)
            memset(m->seen, 0, m->cap_seen * sizeof *m->seen);
        m->pass = 1;
    }
    m->n_seen = 0;
    return (struct sink){ .arr = arr, .cap = cap, .off = off, .nodes0 = m->n_nodes };
}

/* Whether a stack equal to node was already expanded in this pass; if not, records node.
 * Why: an ambiguous grammar reaches one stack by many derivations, e.g. ("" | ""){282} by
 * 2^282 of them, and walking each (the sink keeping one result) does not end. It holds the
 * references resolved, and a large sink's entries (sink_add); a small sink finds its
 * duplicates by a scan, cheaper than the table. False with nomem set when it cannot grow. */
static bool seen_before(struct pgd__gmatch *m, struct sink *s, uint32_t node)
{
    if ((m->n_seen + 1) * 2 > m->cap_seen) {
        size_t cap = m->cap_seen ? 2 * m->cap_seen : 256;
        struct pgd__gseen *t = calloc(cap, sizeof *t);
        if (!t) {
            s->nomem = true;
            return false;
        }
        for (size_t i = 0; i < m->cap_seen; i++) {     /* the current pass's entries */
            if (m->seen[i].pass != m->pass)
                continue;
            size_t j = (size_t)m->nodes[m->seen[i].node].hash & (cap - 1);
            while (t[j].pass == m->pass)
                j = (j + 1) & (cap - 1);
            t[j] = m->seen[i];
        }
        free(m->seen);
        m->seen = t;
        m->cap_seen = cap;
    }
    const uint64_t h = m->nodes[node].hash;
    size_t j = (size_t)h & (m->cap_seen - 1);
    for (; m->seen[j].pass == m->pass; j = (j + 1) & (m->cap_seen - 1)) {
        uint32_t o = m->seen[j].node;
        if (m->nodes[o].hash == h && same_stack(m, o, node))
            return true;
    }
    m->seen[j] = (struct pgd__gseen){ .node = node, .pass = m->pass };
    m->n_seen++;
    return false;
}

/* Adds a stack with a terminal (or nothing) on top unless the sink holds an equal one. */
static void sink_add(struct pgd__gmatch *m, struct sink *s, uint32_t node)
{
    if (s->n < PGD__GMATCH_SINK_SCAN) {
        uint64_t h = m->nodes[node].hash;
        for (size_t i = 0; i < s->n; i++) {
            uint32_t o = (*s->arr)[s->off + i];
            if (m->nodes[o].hash == h && same_stack(m, o, node))
                return;
        }
    } else {
        for (size_t i = 0; !s->hashed && i < s->n; i++)      /* once: the entries so far */
            seen_before(m, s, (*s->arr)[s->off + i]);
        s->hashed = true;
        if (seen_before(m, s, node) || s->nomem)
            return;
    }
    if (!pgd__array_reserve(*s->arr, *s->cap, s->off + s->n + 1)) {
        s->nomem = true;
        return;
    }
    (*s->arr)[s->off + s->n++] = node;
}

/* Resolves the references on top of node until every resulting stack's top is a terminal
 * (or the stack is empty), adding those to s. No left recursion (checked at build), so
 * this ends. Depth first, the first alternative first, on a work list of its own (m->todo)
 * rather than the C stack: nested repetitions such as (((((.)?){20}){20}){20}){20} chain
 * 160,000 references before a terminal, which recursion would overflow the thread's stack
 * with. */
static void expand(struct pgd__gmatch *m, uint32_t node, struct sink *s)
{
    const struct pgd__grammar *g = m->g;
    size_t n = 0;
    if (!pgd__array_reserve(m->todo, m->cap_todo, 1)) {
        s->nomem = true;
        return;
    }
    m->todo[n++] = node;
    while (n > 0 && !s->nomem) {
        node = m->todo[--n];
        if (node == EMPTY || g->el[m->nodes[node].el].kind == PGD__GE_TERM) {
            sink_add(m, s, node);
            continue;
        }
        if (seen_before(m, s, node) || s->nomem)  /* a reference this pass resolved */
            continue;
        /* A reference: the continuation (unless the alternative ends here), then each
         * alternative of the rule on top of it, queued last first. */
        uint32_t el = m->nodes[node].el;
        uint32_t parent = m->nodes[node].parent;
        enum pgd__ge_kind next = g->el[el + 1].kind;
        uint32_t base = next == PGD__GE_END || next == PGD__GE_ALT ? parent
                                                                   : push(m, parent, el + 1);
        if (base == UINT32_MAX) {
            s->nomem = true;
            break;
        }
        const size_t first = n;
        for (uint32_t p = g->rule_start[g->el[el].value];; p++) {
            enum pgd__ge_kind k = g->el[p].kind;
            uint32_t alt = k == PGD__GE_END || k == PGD__GE_ALT ? base : push(m, base, p);
            if (alt == UINT32_MAX || !pgd__array_reserve(m->todo, m->cap_todo, n + 1)) {
                s->nomem = true;
                break;
            }
            m->todo[n++] = alt;             /* an empty alternative: base itself */
            while (g->el[p].kind != PGD__GE_END && g->el[p].kind != PGD__GE_ALT)
                p++;
            if (g->el[p].kind == PGD__GE_END)
                break;
        }
        if (m->n_nodes - s->nodes0 > PGD__GMATCH_PASS_MAX) {
            s->nomem = s->over = true;
            break;
        }
        for (size_t a = first, b = n; a + 1 < b; a++, b--) {   /* the first on top */
            uint32_t t = m->todo[a];
            m->todo[a] = m->todo[b - 1];
            m->todo[b - 1] = t;
        }
    }
}

/* The stack after node's top terminal matched: the next element, or the entry popped. */
static void advance_node(struct pgd__gmatch *m, uint32_t node, struct sink *s)
{
    const struct pgd__grammar *g = m->g;
    uint32_t el = m->nodes[node].el + 1;
    uint32_t parent = m->nodes[node].parent;
    enum pgd__ge_kind k = g->el[el].kind;
    if (k == PGD__GE_END || k == PGD__GE_ALT) {
        expand(m, parent, s);
        return;
    }
    uint32_t n = push(m, parent, el);
    if (n == UINT32_MAX) {
        s->nomem = true;
        return;
    }
    expand(m, n, s);
}

bool pgd__gmatch_init(struct pgd__gmatch *m, const struct pgd__grammar *g)
{
    memset(m, 0, sizeof *m);
    m->g = g;
    if (!pgd__array_reserve(m->nodes, m->cap_nodes, 64))
        return false;
    m->nodes[0] = (struct pgd__gnode){ .el = UINT32_MAX, .parent = 0, .hash = 0x51ed27u };
    m->n_nodes = 1;
    /* The start: a stack holding a reference to the root rule is expanded. The root REF
     * lives nowhere in the grammar, so expand the root's alternatives directly. */
    struct sink s = sink_open(m, &m->set, &m->cap_set, 0);
    uint32_t p = g->rule_start[g->root];
    for (;;) {
        enum pgd__ge_kind k = g->el[p].kind;
        if (k == PGD__GE_END || k == PGD__GE_ALT) {
            expand(m, EMPTY, &s);
        } else {
            uint32_t n = push(m, EMPTY, p);
            if (n == UINT32_MAX)
                s.nomem = true;
            else
                expand(m, n, &s);
        }
        while (g->el[p].kind != PGD__GE_END && g->el[p].kind != PGD__GE_ALT)
            p++;
        if (g->el[p].kind == PGD__GE_END)
            break;
        p++;
    }
    m->n_set = s.n;
    if (s.nomem) {
        pgd__gmatch_fini(m);
        m->over = s.over;
        return false;
    }
    return true;
}

void pgd__gmatch_fini(struct pgd__gmatch *m)
{
    free(m->nodes);
    free(m->set);
    free(m->scr);
    free(m->seen);
    free(m->todo);
    memset(m, 0, sizeof *m);
}

bool pgd__gmatch_copy(struct pgd__gmatch *dst, const struct pgd__gmatch *src)
{
    memset(dst, 0, sizeof *dst);
    dst->g = src->g;
    dst->nodes = malloc(src->n_nodes * sizeof *dst->nodes);
    dst->set = malloc((src->n_set + 1) * sizeof *dst->set);
    if (!dst->nodes || !dst->set) {
        pgd__gmatch_fini(dst);
        return false;
    }
    memcpy(dst->nodes, src->nodes, src->n_nodes * sizeof *dst->nodes);
    memcpy(dst->set, src->set, src->n_set * sizeof *dst->set);
    dst->n_nodes = dst->cap_nodes = src->n_nodes;
    dst->n_set = src->n_set;
    dst->cap_set = src->n_set + 1;
    dst->part_val = src->part_val;
    dst->part_need = src->part_need;
    dst->part_len = src->part_len;
    return true;
}

/* The code points a partial sequence (val so far, need bytes due, total bytes in all) may
 * still validly become; false when none (an overlong form or past U+10FFFF). */
static bool part_range(uint32_t val, int need, int total, uint32_t *lo, uint32_t *hi)
{
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    *lo = val << (6 * need);
    *hi = *lo | ((1u << (6 * need)) - 1);
    if (*lo < min[total])
        *lo = min[total];
    if (*hi > 0x10FFFF)
        *hi = 0x10FFFF;
    return *lo <= *hi;
}

/* The characters stack node takes next, or NULL for the empty stack (it takes none). */
static const struct pgd__cset *node_cset(const struct pgd__gmatch *m, uint32_t node)
{
    const struct pgd__grammar *g = m->g;
    return node == EMPTY ? NULL : &g->cs[g->el[m->nodes[node].el].value];
}

/* Whether some stack in arr[off, off + n) can take a character in [lo, hi]. */
static bool any_partial(const struct pgd__gmatch *m, const uint32_t *arr, size_t off, size_t n,
                        uint32_t lo, uint32_t hi)
{
    for (size_t i = 0; i < n; i++) {
        const struct pgd__cset *c = node_cset(m, arr[off + i]);
        if (c && pgd__cset_any_in(m->g, c, lo, hi))
            return true;
    }
    return false;
}

/* Whether a complete sequence of len bytes encodes cp validly (no overlong form, no
 * surrogate, not past U+10FFFF). */
static bool valid_cp(uint32_t cp, int len)
{
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    return cp >= min[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
}

size_t pgd__gmatch_step(struct pgd__gmatch *m, size_t in_off, size_t n_in,
                        struct pgd__gpart *part, uint8_t byte, size_t out_off)
{
    uint32_t cp;
    int len;
    if (part->need == 0) {
        int need;
        if (byte < 0x80) {
            need = 0;
            cp = byte;
        } else if (byte >= 0xC2 && byte <= 0xDF) {
            need = 1;
            cp = byte & 0x1F;
        } else if (byte >= 0xE0 && byte <= 0xEF) {
            need = 2;
            cp = byte & 0x0F;
        } else if (byte >= 0xF0 && byte <= 0xF4) {
            need = 3;
            cp = byte & 0x07;
        } else {
            return 0;
        }
        if (need > 0) {
            uint32_t lo, hi;
            if (!part_range(cp, need, need + 1, &lo, &hi) ||
                !any_partial(m, m->scr, in_off, n_in, lo, hi))
                return 0;
            if (!pgd__gmatch_scr_reserve(m, out_off + n_in))
                return 0;
            memmove(m->scr + out_off, m->scr + in_off, n_in * sizeof *m->scr);
            *part = (struct pgd__gpart){ .val = cp, .need = need, .len = 1 };
            return n_in;
        }
        len = 1;
    } else {
        if ((byte & 0xC0) != 0x80)
            return 0;
        cp = (part->val << 6) | (byte & 0x3F);
        len = part->len + 1;
        if (part->need > 1) {
            uint32_t lo, hi;
            if (!part_range(cp, part->need - 1, part->len + part->need, &lo, &hi) ||
                !any_partial(m, m->scr, in_off, n_in, lo, hi))
                return 0;
            if (!pgd__gmatch_scr_reserve(m, out_off + n_in))
                return 0;
            memmove(m->scr + out_off, m->scr + in_off, n_in * sizeof *m->scr);
            *part = (struct pgd__gpart){ .val = cp, .need = part->need - 1, .len = len };
            return n_in;
        }
        if (!valid_cp(cp, len))
            return 0;
    }
    /* A whole code point: advance every stack whose top takes it. */
    const struct pgd__grammar *g = m->g;
    struct sink s = sink_open(m, &m->scr, &m->cap_scr, out_off);
    for (size_t i = 0; i < n_in; i++) {
        uint32_t node = m->scr[in_off + i];
        if (node == EMPTY)
            continue;
        const struct pgd__cset *c = &g->cs[g->el[m->nodes[node].el].value];
        if (pgd__cset_has(g, c, cp))
            advance_node(m, node, &s);
    }
    *part = (struct pgd__gpart){ 0 };
    m->over |= s.over;
    return s.nomem ? 0 : s.n;
}

uint32_t pgd__gmatch_top(const struct pgd__gmatch *m, uint32_t node)
{
    return node == EMPTY ? UINT32_MAX : m->g->el[m->nodes[node].el].value;
}

uint32_t pgd__gcls_takers(const struct pgd__grammar *g, const uint32_t *cls, int n, uint32_t cp)
{
    uint32_t sel = 0;
    for (int i = 0; i < n; i++)
        if (pgd__cset_has(g, &g->cs[cls[i]], cp))
            sel |= 1u << i;
    return sel;
}

uint32_t pgd__gcls_nonascii_takers(const struct pgd__grammar *g, const uint32_t *cls, int n)
{
    uint32_t sel = 0;
    for (int i = 0; i < n; i++) {
        const struct pgd__cset *c = &g->cs[cls[i]];
        if (!pgd__cset_any_in(g, c, 0x80, 0x10FFFF))
            continue;                       /* none */
        struct pgd__cset out = *c;          /* its complement above 0x7F */
        out.neg = !out.neg;
        if (pgd__cset_any_in(g, &out, 0x80, 0x10FFFF))
            return 0;                       /* a part */
        sel |= 1u << i;
    }
    return sel;
}

bool pgd__gcls_any_in(const struct pgd__grammar *g, const uint32_t *cls, int n, uint32_t lo,
                      uint32_t hi)
{
    for (int i = 0; i < n; i++)
        if (pgd__cset_any_in(g, &g->cs[cls[i]], lo, hi))
            return true;
    return false;
}

size_t pgd__gmatch_advance(struct pgd__gmatch *m, const uint32_t *set, size_t n,
                           size_t out_off)
{
    struct sink s = sink_open(m, &m->scr, &m->cap_scr, out_off);
    for (size_t i = 0; i < n && !s.nomem; i++)
        advance_node(m, set[i], &s);
    m->over |= s.over;
    return s.nomem ? 0 : s.n;
}

bool pgd__gmatch_part_range(uint32_t val, int need, int total, uint32_t *lo, uint32_t *hi)
{
    return part_range(val, need, total, lo, hi);
}

bool pgd__gmatch_valid_cp(uint32_t cp, int len)
{
    return valid_cp(cp, len);
}

bool pgd__gmatch_scr_reserve(struct pgd__gmatch *m, size_t need)
{
    return pgd__array_reserve(m->scr, m->cap_scr, need);
}

void pgd__gmatch_release(struct pgd__gmatch *m, size_t n)
{
    if (n < m->n_nodes)
        m->n_nodes = n;
}

/* Copies the live stacks into a fresh arena when the old one is mostly garbage (entries of
 * stacks that died), so a long generation keeps its memory bounded. */
static void compact(struct pgd__gmatch *m)
{
    if (m->n_nodes < 4096)
        return;
    uint8_t *live = calloc(m->n_nodes, 1);
    if (!live)
        return;                     /* not fatal: the old arena stays */
    size_t n_live = 1;
    for (size_t i = 0; i < m->n_set; i++)
        for (uint32_t x = m->set[i]; x != EMPTY && !live[x]; x = m->nodes[x].parent) {
            live[x] = 1;
            n_live++;
        }
    uint32_t *map = n_live * 2 < m->n_nodes ? malloc(m->n_nodes * sizeof *map) : NULL;
    struct pgd__gnode *nn = map ? malloc(n_live * sizeof *nn) : NULL;
    if (!nn) {
        free(map);
        free(live);
        return;
    }
    /* Entries come after their parents in the arena (a parent exists before anything is
     * pushed on it), so one pass in arena order keeps parents first. */
    nn[0] = m->nodes[0];
    map[0] = 0;
    size_t n = 1;
    for (size_t i = 1; i < m->n_nodes; i++) {
        if (!live[i])
            continue;
        nn[n] = m->nodes[i];
        nn[n].parent = map[m->nodes[i].parent];
        map[i] = (uint32_t)n++;
    }
    for (size_t i = 0; i < m->n_set; i++)
        m->set[i] = map[m->set[i]];
    free(m->nodes);
    m->nodes = nn;
    m->cap_nodes = n_live;
    m->n_nodes = n;
    free(map);
    free(live);
}

bool pgd__gmatch_accept(struct pgd__gmatch *m, const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    m->over = false;
    for (size_t i = 0; i < n; i++) {
        if (!pgd__gmatch_scr_reserve(m, 2 * (m->n_set + 1)))
            return false;
        memcpy(m->scr, m->set, m->n_set * sizeof *m->set);
        struct pgd__gpart part = { m->part_val, m->part_need, m->part_len };
        size_t mark = m->n_nodes;
        size_t k = pgd__gmatch_step(m, 0, m->n_set, &part, p[i], m->n_set);
        if (k == 0) {
            pgd__gmatch_release(m, mark);
            return false;
        }
        if (!pgd__array_reserve(m->set, m->cap_set, k)) {
            pgd__gmatch_release(m, mark);
            return false;
        }
        memcpy(m->set, m->scr + m->n_set, k * sizeof *m->set);
        m->n_set = k;
        m->part_val = part.val;
        m->part_need = part.need;
        m->part_len = part.len;
    }
    compact(m);
    return true;
}

bool pgd__gmatch_accepting(const struct pgd__gmatch *m)
{
    if (m->part_need)
        return false;
    for (size_t i = 0; i < m->n_set; i++)
        if (m->set[i] == EMPTY)
            return true;
    return false;
}

bool pgd__gmatch_terminated(const struct pgd__gmatch *m)
{
    return m->part_need == 0 && m->n_set == 1 && m->set[0] == EMPTY;
}
