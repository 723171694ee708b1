/* Jinja parser: tokens into a syntax tree, following the grammar and operator precedence
 * of Jinja2's parser (conditional expression, or, and, not, comparisons, + -, ~, * / // %,
 * **, unary - +, postfix . [] (), filters | and tests `is`). */
#include "runtime/chat/jinja.h"
#include <stdio.h>
#include <string.h>

struct parser {
    struct pgd__jarena *a;
    struct pgd__jfail *f;
    const struct pgd__jtoken *t;
    size_t n, i;
    int loop_depth;     /* for break / continue */
    int depth;          /* nesting of the recursive descent */
    /* the innermost open block, for error messages */
    const char *open_block;
    const char *const *want;
};

/* A growable node list. */
struct nlist {
    struct pgd__jnode **v;
    size_t n, cap;
};

static void nl_push(struct parser *P, struct nlist *l, struct pgd__jnode *x)
{
    pgd__jreserve(P->a, l->v, l->cap, l->n + 1, 8);
    l->v[l->n++] = x;
}

struct slist {
    const char **v;
    size_t n, cap;
};

static void sl_push(struct parser *P, struct slist *l, const char *s)
{
    pgd__jreserve(P->a, l->v, l->cap, l->n + 1, 8);
    l->v[l->n++] = s;
}

static const struct pgd__jtoken *cur(struct parser *P) { return &P->t[P->i]; }
static const struct pgd__jtoken *peek(struct parser *P)
{
    return &P->t[P->i + 1 < P->n ? P->i + 1 : P->i];
}
static void advance(struct parser *P)
{
    if (P->i + 1 < P->n)
        P->i++;
}

static const char *describe(const struct pgd__jtoken *t)
{
    static const char *opnames[] = {
        "", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")", "{", "}", "==",
        "!=", ">", ">=", "<", "<=", "=", ".", ":", "|", ",", ";",
    };
    switch (t->type) {
    case PGD__T_EOF: return "end of template";
    case PGD__T_DATA: return "template data";
    case PGD__T_VAR_BEGIN: return "begin of print statement";
    case PGD__T_VAR_END: return "end of print statement";
    case PGD__T_BLOCK_BEGIN: return "begin of statement block";
    case PGD__T_BLOCK_END: return "end of statement block";
    case PGD__T_NAME: return t->str;
    case PGD__T_STRING: return "string";
    case PGD__T_INT: return "integer";
    case PGD__T_FLOAT: return "float";
    case PGD__T_OP:
        return t->op > 0 && (size_t)t->op < sizeof opnames / sizeof opnames[0] ? opnames[t->op]
                                                                            : "operator";
    }
    return "token";
}

_Noreturn static void fail_at(struct parser *P, size_t off, const char *fmt, const char *arg)
{
    pgd__jthrow(P->f, PGD_ERR_TEMPLATE, (long)off, fmt, arg);
}

static bool is_op(struct parser *P, int op)
{
    return cur(P)->type == PGD__T_OP && cur(P)->op == op;
}

static bool is_name(struct parser *P, const char *name)
{
    return cur(P)->type == PGD__T_NAME && strcmp(cur(P)->str, name) == 0;
}

static bool skip_op(struct parser *P, int op)
{
    if (!is_op(P, op))
        return false;
    advance(P);
    return true;
}

static bool skip_name(struct parser *P, const char *name)
{
    if (!is_name(P, name))
        return false;
    advance(P);
    return true;
}

static void expect_op(struct parser *P, int op, const char *what)
{
    if (!skip_op(P, op))
        pgd__jthrow(P->f, PGD_ERR_TEMPLATE, (long)cur(P)->off, "expected '%s', got '%s'", what,
                    describe(cur(P)));
}

static void expect_type(struct parser *P, enum pgd__jtok type, const char *what)
{
    if (cur(P)->type != type)
        pgd__jthrow(P->f, PGD_ERR_TEMPLATE, (long)cur(P)->off, "expected '%s', got '%s'", what,
                    describe(cur(P)));
    advance(P);
}

static const char *expect_name(struct parser *P)
{
    if (cur(P)->type != PGD__T_NAME)
        fail_at(P, cur(P)->off, "expected a name, got '%s'", describe(cur(P)));
    const char *s = cur(P)->str;
    advance(P);
    return s;
}

static struct pgd__jnode *node(struct parser *P, enum pgd__jnkind kind, size_t off)
{
    struct pgd__jnode *n = pgd__jalloc(P->a, sizeof *n);
    n->kind = kind;
    n->off = off;
    return n;
}

static void enter(struct parser *P)
{
    if (++P->depth > 200)
        fail_at(P, cur(P)->off, "template nested too deeply (at '%s')", describe(cur(P)));
}

/* ---- expressions ------------------------------------------------------------------------ */

static struct pgd__jnode *parse_expression(struct parser *P, bool with_condexpr);
static struct pgd__jnode *parse_unary(struct parser *P, bool with_filter);
static struct pgd__jnode *parse_postfix(struct parser *P, struct pgd__jnode *n);
static struct pgd__jnode *parse_filter_expr(struct parser *P, struct pgd__jnode *n);

static bool tuple_end(struct parser *P, const char *extra)
{
    const struct pgd__jtoken *t = cur(P);
    if (t->type == PGD__T_VAR_END || t->type == PGD__T_BLOCK_END || t->type == PGD__T_EOF)
        return true;
    if (t->type == PGD__T_OP && t->op == PGD__OP_RPAREN)
        return true;
    if (extra && t->type == PGD__T_NAME) {
        /* extra is a list of names separated by spaces */
        size_t len = strlen(t->str);
        for (const char *p = extra; *p;) {
            const char *e = strchr(p, ' ');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == len && memcmp(p, t->str, l) == 0)
                return true;
            p += l + (e ? 1 : 0);
        }
    }
    return false;
}

static struct pgd__jnode *parse_primary(struct parser *P);

static struct pgd__jnode *parse_tuple(struct parser *P, bool simplified, bool with_condexpr,
                                      const char *extra_end, bool explicit_parens)
{
    size_t off = cur(P)->off;
    struct nlist items = { 0 };
    bool is_tuple = false;
    for (;;) {
        if (items.n)
            expect_op(P, PGD__OP_COMMA, ",");
        if (tuple_end(P, extra_end))
            break;
        struct pgd__jnode *e = simplified ? parse_primary(P) : parse_expression(P, with_condexpr);
        nl_push(P, &items, e);
        if (is_op(P, PGD__OP_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n)
            return items.v[0];
        if (!explicit_parens)
            fail_at(P, cur(P)->off, "expected an expression, got '%s'", describe(cur(P)));
    }
    struct pgd__jnode *t = node(P, PGD__E_TUPLE, off);
    t->kids = items.v;
    t->nkids = items.n;
    return t;
}

static struct pgd__jnode *lit(struct parser *P, size_t off, struct pgd__jv *v)
{
    struct pgd__jnode *n = node(P, PGD__E_LIT, off);
    n->lit = v;
    return n;
}

static struct pgd__jnode *parse_primary(struct parser *P)
{
    const struct pgd__jtoken *t = cur(P);
    size_t off = t->off;
    enter(P);
    struct pgd__jnode *n;
    switch (t->type) {
    case PGD__T_NAME:
        if (!strcmp(t->str, "true") || !strcmp(t->str, "True"))
            n = lit(P, off, &pgd__j_true);
        else if (!strcmp(t->str, "false") || !strcmp(t->str, "False"))
            n = lit(P, off, &pgd__j_false);
        else if (!strcmp(t->str, "none") || !strcmp(t->str, "None"))
            n = lit(P, off, &pgd__j_none);
        else {
            n = node(P, PGD__E_NAME, off);
            n->name = t->str;
        }
        advance(P);
        break;
    case PGD__T_STRING: {
        /* adjacent string literals concatenate */
        struct pgd__jbuf b = { 0 };
        pgd__jbuf_put(P->a, &b, "", 0);
        while (cur(P)->type == PGD__T_STRING) {
            pgd__jbuf_put(P->a, &b, cur(P)->str, cur(P)->len);
            advance(P);
        }
        n = lit(P, off, pgd__jv_str_nocopy(P->a, b.p, b.n));
        break;
    }
    case PGD__T_INT:
        n = lit(P, off, pgd__jv_int(P->a, t->i));
        advance(P);
        break;
    case PGD__T_FLOAT:
        n = lit(P, off, pgd__jv_float(P->a, t->f));
        advance(P);
        break;
    case PGD__T_OP:
        if (t->op == PGD__OP_LPAREN) {
            advance(P);
            n = parse_tuple(P, false, true, NULL, true);
            expect_op(P, PGD__OP_RPAREN, ")");
            break;
        }
        if (t->op == PGD__OP_LBRACKET) {
            advance(P);
            struct nlist items = { 0 };
            while (!is_op(P, PGD__OP_RBRACKET)) {
                if (items.n)
                    expect_op(P, PGD__OP_COMMA, ",");
                if (is_op(P, PGD__OP_RBRACKET))
                    break;
                nl_push(P, &items, parse_expression(P, true));
            }
            expect_op(P, PGD__OP_RBRACKET, "]");
            n = node(P, PGD__E_LIST, off);
            n->kids = items.v;
            n->nkids = items.n;
            break;
        }
        if (t->op == PGD__OP_LBRACE) {
            advance(P);
            struct nlist keys = { 0 }, vals = { 0 };
            while (!is_op(P, PGD__OP_RBRACE)) {
                if (keys.n)
                    expect_op(P, PGD__OP_COMMA, ",");
                if (is_op(P, PGD__OP_RBRACE))
                    break;
                nl_push(P, &keys, parse_expression(P, true));
                expect_op(P, PGD__OP_COLON, ":");
                nl_push(P, &vals, parse_expression(P, true));
            }
            expect_op(P, PGD__OP_RBRACE, "}");
            n = node(P, PGD__E_DICT, off);
            n->kids = keys.v;
            n->nkids = keys.n;
            n->kids2 = vals.v;
            n->nkids2 = vals.n;
            break;
        }
        /* fall through */
    default:
        fail_at(P, off, "unexpected '%s'", describe(t));
    }
    P->depth--;
    return n;
}

/* Call arguments after '(' : positional, then name=value. */
static void parse_args(struct parser *P, struct pgd__jnode *n)
{
    expect_op(P, PGD__OP_LPAREN, "(");
    struct nlist pos = { 0 }, kwv = { 0 };
    struct slist kwn = { 0 };
    while (!is_op(P, PGD__OP_RPAREN)) {
        if (pos.n || kwn.n)
            expect_op(P, PGD__OP_COMMA, ",");
        if (is_op(P, PGD__OP_RPAREN))
            break;
        if (is_op(P, PGD__OP_MUL) || is_op(P, PGD__OP_POW))
            fail_at(P, cur(P)->off, "'%s' arguments are not supported", describe(cur(P)));
        if (cur(P)->type == PGD__T_NAME && peek(P)->type == PGD__T_OP &&
            peek(P)->op == PGD__OP_ASSIGN) {
            sl_push(P, &kwn, cur(P)->str);
            advance(P);
            advance(P);
            nl_push(P, &kwv, parse_expression(P, true));
        } else {
            if (kwn.n)
                fail_at(P, cur(P)->off, "%s", "invalid syntax for function call expression");
            nl_push(P, &pos, parse_expression(P, true));
        }
    }
    expect_op(P, PGD__OP_RPAREN, ")");
    n->kids = pos.v;
    n->nkids = pos.n;
    n->names = kwn.v;
    n->nnames = kwn.n;
    n->kids2 = kwv.v;
    n->nkids2 = kwv.n;
}

static struct pgd__jnode *parse_call(struct parser *P, struct pgd__jnode *callee)
{
    struct pgd__jnode *n = node(P, PGD__E_CALL, cur(P)->off);
    n->a = callee;
    parse_args(P, n);
    return n;
}

/* One subscript inside [...]: an expression or a slice (returned as E_SLICE, a == NULL). */
static struct pgd__jnode *parse_subscribed(struct parser *P)
{
    size_t off = cur(P)->off;
    struct pgd__jnode *start = NULL, *stop = NULL, *step = NULL;
    if (is_op(P, PGD__OP_COLON)) {
        advance(P);
    } else {
        struct pgd__jnode *e = parse_expression(P, true);
        if (!is_op(P, PGD__OP_COLON))
            return e;
        advance(P);
        start = e;
    }
    if (!is_op(P, PGD__OP_COLON) && !is_op(P, PGD__OP_RBRACKET) && !is_op(P, PGD__OP_COMMA))
        stop = parse_expression(P, true);
    if (skip_op(P, PGD__OP_COLON)) {
        if (!is_op(P, PGD__OP_RBRACKET) && !is_op(P, PGD__OP_COMMA))
            step = parse_expression(P, true);
    }
    struct pgd__jnode *s = node(P, PGD__E_SLICE, off);
    s->b = start;
    s->c = stop;
    s->d = step;
    return s;
}

static struct pgd__jnode *parse_postfix(struct parser *P, struct pgd__jnode *n)
{
    for (;;) {
        size_t off = cur(P)->off;
        if (skip_op(P, PGD__OP_DOT)) {
            const struct pgd__jtoken *t = cur(P);
            if (t->type == PGD__T_NAME) {
                struct pgd__jnode *g = node(P, PGD__E_ATTR, off);
                g->a = n;
                g->name = t->str;
                advance(P);
                n = g;
            } else if (t->type == PGD__T_INT) {
                struct pgd__jnode *g = node(P, PGD__E_ITEM, off);
                g->a = n;
                g->b = lit(P, t->off, pgd__jv_int(P->a, t->i));
                advance(P);
                n = g;
            } else {
                fail_at(P, t->off, "expected name or number, got '%s'", describe(t));
            }
        } else if (skip_op(P, PGD__OP_LBRACKET)) {
            struct nlist args = { 0 };
            while (!is_op(P, PGD__OP_RBRACKET)) {
                if (args.n)
                    expect_op(P, PGD__OP_COMMA, ",");
                nl_push(P, &args, parse_subscribed(P));
            }
            expect_op(P, PGD__OP_RBRACKET, "]");
            if (args.n == 0)
                fail_at(P, off, "%s", "expected a subscript");
            struct pgd__jnode *key;
            if (args.n == 1) {
                key = args.v[0];
            } else {
                key = node(P, PGD__E_TUPLE, off);
                key->kids = args.v;
                key->nkids = args.n;
                for (size_t i = 0; i < args.n; i++)
                    if (args.v[i]->kind == PGD__E_SLICE)
                        fail_at(P, off, "%s", "slices inside a tuple subscript are not supported");
            }
            if (key->kind == PGD__E_SLICE) {
                key->a = n;
                n = key;
            } else {
                struct pgd__jnode *g = node(P, PGD__E_ITEM, off);
                g->a = n;
                g->b = key;
                n = g;
            }
        } else if (is_op(P, PGD__OP_LPAREN)) {
            n = parse_call(P, n);
        } else {
            return n;
        }
    }
}

static const char *dotted_name(struct parser *P)
{
    const char *name = expect_name(P);
    while (is_op(P, PGD__OP_DOT) && peek(P)->type == PGD__T_NAME) {
        advance(P);
        const char *more = expect_name(P);
        size_t l1 = strlen(name), l2 = strlen(more);
        char *s = pgd__jalloc(P->a, l1 + l2 + 2);
        memcpy(s, name, l1);
        s[l1] = '.';
        memcpy(s + l1 + 1, more, l2 + 1);
        name = s;
    }
    return name;
}

static struct pgd__jnode *parse_filter_expr(struct parser *P, struct pgd__jnode *n)
{
    for (;;) {
        size_t off = cur(P)->off;
        if (skip_op(P, PGD__OP_PIPE)) {
            struct pgd__jnode *f = node(P, PGD__E_FILTER, cur(P)->off);
            f->a = n;
            f->name = dotted_name(P);
            if (is_op(P, PGD__OP_LPAREN))
                parse_args(P, f);
            n = f;
        } else if (is_name(P, "is")) {
            advance(P);
            struct pgd__jnode *t = node(P, PGD__E_TEST, off);
            t->a = n;
            if (skip_name(P, "not"))
                t->op = 1;
            t->name = dotted_name(P);
            const struct pgd__jtoken *c = cur(P);
            if (is_op(P, PGD__OP_LPAREN)) {
                parse_args(P, t);
            } else if ((c->type == PGD__T_NAME || c->type == PGD__T_STRING ||
                        c->type == PGD__T_INT || c->type == PGD__T_FLOAT ||
                        (c->type == PGD__T_OP &&
                         (c->op == PGD__OP_LBRACKET || c->op == PGD__OP_LBRACE))) &&
                       !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
                if (is_name(P, "is"))
                    fail_at(P, c->off, "%s", "You cannot chain multiple tests with is");
                struct pgd__jnode *arg = parse_postfix(P, parse_primary(P));
                t->kids = pgd__jalloc(P->a, sizeof *t->kids);
                t->kids[0] = arg;
                t->nkids = 1;
            }
            n = t;
        } else if (is_op(P, PGD__OP_LPAREN)) {
            n = parse_call(P, n);
        } else {
            return n;
        }
    }
}

static struct pgd__jnode *parse_unary(struct parser *P, bool with_filter)
{
    size_t off = cur(P)->off;
    struct pgd__jnode *n;
    enter(P);
    if (skip_op(P, PGD__OP_SUB)) {
        n = node(P, PGD__E_NEG, off);
        n->a = parse_unary(P, false);
    } else if (skip_op(P, PGD__OP_ADD)) {
        n = node(P, PGD__E_POS, off);
        n->a = parse_unary(P, false);
    } else {
        n = parse_primary(P);
    }
    n = parse_postfix(P, n);
    if (with_filter)
        n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static struct pgd__jnode *bin(struct parser *P, int op, size_t off, struct pgd__jnode *l,
                              struct pgd__jnode *r)
{
    struct pgd__jnode *n = node(P, PGD__E_BIN, off);
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static struct pgd__jnode *parse_pow(struct parser *P)
{
    struct pgd__jnode *l = parse_unary(P, true);
    while (is_op(P, PGD__OP_POW)) {
        size_t off = cur(P)->off;
        advance(P);
        l = bin(P, PGD__OP_POW, off, l, parse_unary(P, true));
    }
    return l;
}

static struct pgd__jnode *parse_math2(struct parser *P)
{
    struct pgd__jnode *l = parse_pow(P);
    while (is_op(P, PGD__OP_MUL) || is_op(P, PGD__OP_DIV) || is_op(P, PGD__OP_FLOORDIV) ||
           is_op(P, PGD__OP_MOD)) {
        int op = cur(P)->op;
        size_t off = cur(P)->off;
        advance(P);
        l = bin(P, op, off, l, parse_pow(P));
    }
    return l;
}

static struct pgd__jnode *parse_concat(struct parser *P)
{
    struct pgd__jnode *l = parse_math2(P);
    while (is_op(P, PGD__OP_TILDE)) {
        size_t off = cur(P)->off;
        advance(P);
        l = bin(P, PGD__OP_TILDE, off, l, parse_math2(P));
    }
    return l;
}

static struct pgd__jnode *parse_math1(struct parser *P)
{
    struct pgd__jnode *l = parse_concat(P);
    while (is_op(P, PGD__OP_ADD) || is_op(P, PGD__OP_SUB)) {
        int op = cur(P)->op;
        size_t off = cur(P)->off;
        advance(P);
        l = bin(P, op, off, l, parse_concat(P));
    }
    return l;
}

static struct pgd__jnode *parse_compare(struct parser *P)
{
    size_t off = cur(P)->off;
    struct pgd__jnode *first = parse_math1(P);
    struct nlist rest = { 0 };
    int *ops = NULL;
    size_t nops = 0, cap = 0;
    for (;;) {
        int op;
        const struct pgd__jtoken *t = cur(P);
        if (t->type == PGD__T_OP && (t->op == PGD__OP_EQ || t->op == PGD__OP_NE ||
                                     t->op == PGD__OP_LT || t->op == PGD__OP_LTEQ ||
                                     t->op == PGD__OP_GT || t->op == PGD__OP_GTEQ)) {
            op = t->op;
            advance(P);
        } else if (skip_name(P, "in")) {
            op = PGD__OP_IN;
        } else if (is_name(P, "not") && peek(P)->type == PGD__T_NAME &&
                   !strcmp(peek(P)->str, "in")) {
            advance(P);
            advance(P);
            op = PGD__OP_NOTIN;
        } else {
            break;
        }
        pgd__jreserve(P->a, ops, cap, nops + 1, 4);
        ops[nops++] = op;
        nl_push(P, &rest, parse_math1(P));
    }
    if (!nops)
        return first;
    struct pgd__jnode *n = node(P, PGD__E_CMP, off);
    n->a = first;
    n->kids = rest.v;
    n->nkids = rest.n;
    n->ops = ops;
    return n;
}

static struct pgd__jnode *parse_not(struct parser *P)
{
    if (is_name(P, "not")) {
        size_t off = cur(P)->off;
        advance(P);
        enter(P);
        struct pgd__jnode *n = node(P, PGD__E_NOT, off);
        n->a = parse_not(P);
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static struct pgd__jnode *parse_and(struct parser *P)
{
    struct pgd__jnode *l = parse_not(P);
    while (is_name(P, "and")) {
        size_t off = cur(P)->off;
        advance(P);
        struct pgd__jnode *n = node(P, PGD__E_AND, off);
        n->a = l;
        n->b = parse_not(P);
        l = n;
    }
    return l;
}

static struct pgd__jnode *parse_or(struct parser *P)
{
    struct pgd__jnode *l = parse_and(P);
    while (is_name(P, "or")) {
        size_t off = cur(P)->off;
        advance(P);
        struct pgd__jnode *n = node(P, PGD__E_OR, off);
        n->a = l;
        n->b = parse_and(P);
        l = n;
    }
    return l;
}

static struct pgd__jnode *parse_condexpr(struct parser *P)
{
    struct pgd__jnode *e = parse_or(P);
    while (is_name(P, "if")) {
        size_t off = cur(P)->off;
        advance(P);
        enter(P);
        struct pgd__jnode *n = node(P, PGD__E_COND, off);
        n->a = e;
        n->b = parse_or(P);
        if (skip_name(P, "else"))
            n->c = parse_condexpr(P);
        P->depth--;
        e = n;
    }
    return e;
}

static struct pgd__jnode *parse_expression(struct parser *P, bool with_condexpr)
{
    enter(P);
    struct pgd__jnode *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}

/* ---- statements ------------------------------------------------------------------------- */

static void check_target(struct parser *P, const struct pgd__jnode *t)
{
    if (t->kind == PGD__E_NAME) {
        static const char *reserved[] = { "true", "false", "none", "True", "False", "None" };
        for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
            if (!strcmp(t->name, reserved[i]))
                fail_at(P, t->off, "can't assign to '%s'", t->name);
        return;
    }
    if (t->kind == PGD__E_TUPLE) {
        for (size_t i = 0; i < t->nkids; i++)
            check_target(P, t->kids[i]);
        return;
    }
    fail_at(P, t->off, "%s", "can't assign to this expression");
}

static struct pgd__jnode *parse_assign_target(struct parser *P, const char *extra_end,
                                              bool with_namespace)
{
    if (with_namespace && cur(P)->type == PGD__T_NAME && peek(P)->type == PGD__T_OP &&
        peek(P)->op == PGD__OP_DOT) {
        struct pgd__jnode *obj = node(P, PGD__E_NAME, cur(P)->off);
        obj->name = cur(P)->str;
        advance(P);
        advance(P);
        struct pgd__jnode *t = node(P, PGD__E_ATTR, obj->off);
        t->a = obj;
        t->name = expect_name(P);
        return t;
    }
    struct pgd__jnode *t = parse_tuple(P, true, true, extra_end, false);
    check_target(P, t);
    return t;
}

static struct pgd__jnode *parse_body(struct parser *P, const char *const *ends,
                                     const char *block, struct pgd__jnode ***kids,
                                     size_t *nkids);

static void end_block(struct parser *P)
{
    expect_type(P, PGD__T_BLOCK_END, "%}");
}

/* Parses a block body up to one of ends; returns with the cursor on the end tag's name. */
static void body_until(struct parser *P, const char *block, const char *const *ends,
                       struct pgd__jnode ***kids, size_t *nkids)
{
    parse_body(P, ends, block, kids, nkids);
}

static struct pgd__jnode *filter_chain(struct parser *P, size_t off)
{
    struct pgd__jnode *n = node(P, PGD__E_BLOCKVAL, off);
    while (is_op(P, PGD__OP_PIPE) || n->kind == PGD__E_BLOCKVAL) {
        /* the first filter needs no leading '|' */
        struct pgd__jnode *f = node(P, PGD__E_FILTER, cur(P)->off);
        skip_op(P, PGD__OP_PIPE);
        f->a = n;
        f->name = dotted_name(P);
        if (is_op(P, PGD__OP_LPAREN))
            parse_args(P, f);
        n = f;
    }
    return n;
}

static void parse_signature(struct parser *P, struct pgd__jnode *n)
{
    struct slist names = { 0 };
    struct nlist defs = { 0 };
    bool any_default = false;
    expect_op(P, PGD__OP_LPAREN, "(");
    while (!is_op(P, PGD__OP_RPAREN)) {
        if (names.n)
            expect_op(P, PGD__OP_COMMA, ",");
        size_t off = cur(P)->off;
        sl_push(P, &names, expect_name(P));
        if (skip_op(P, PGD__OP_ASSIGN)) {
            nl_push(P, &defs, parse_expression(P, true));
            any_default = true;
        } else {
            if (any_default)
                fail_at(P, off, "%s", "non-default argument follows default argument");
            nl_push(P, &defs, NULL);
        }
    }
    expect_op(P, PGD__OP_RPAREN, ")");
    n->names = names.v;
    n->nnames = names.n;
    n->kids2 = defs.v;
    n->nkids2 = defs.n;
}

static struct pgd__jnode *parse_statement(struct parser *P)
{
    const struct pgd__jtoken *t = cur(P);
    size_t off = t->off;
    if (t->type != PGD__T_NAME)
        fail_at(P, off, "tag name expected, got '%s'", describe(t));
    const char *tag = t->str;
    advance(P);
    enter(P);
    struct pgd__jnode *n;
    if (!strcmp(tag, "for")) {
        n = node(P, PGD__N_FOR, off);
        n->a = parse_assign_target(P, "in", false);
        if (!skip_name(P, "in"))
            fail_at(P, cur(P)->off, "expected 'in', got '%s'", describe(cur(P)));
        n->b = parse_tuple(P, false, false, "recursive", false);
        if (skip_name(P, "if"))
            n->c = parse_expression(P, true);
        if (skip_name(P, "recursive"))
            fail_at(P, off, "%s", "recursive for loops are not supported");
        end_block(P);
        static const char *const ends1[] = { "endfor", "else", NULL };
        static const char *const ends2[] = { "endfor", NULL };
        P->loop_depth++;
        body_until(P, "for", ends1, &n->kids, &n->nkids);
        P->loop_depth--;
        if (skip_name(P, "else")) {
            end_block(P);
            int saved = P->loop_depth;
            P->loop_depth = 0;   /* break in a for's else refers to no loop of this for */
            body_until(P, "for", ends2, &n->kids2, &n->nkids2);
            P->loop_depth = saved;
        }
        advance(P);   /* endfor */
        end_block(P);
    } else if (!strcmp(tag, "if")) {
        n = node(P, PGD__N_IF, off);
        struct pgd__jnode *cur_if = n;
        static const char *const ends1[] = { "elif", "else", "endif", NULL };
        static const char *const ends2[] = { "endif", NULL };
        for (;;) {
            cur_if->a = parse_tuple(P, false, false, NULL, false);
            end_block(P);
            body_until(P, "if", ends1, &cur_if->kids, &cur_if->nkids);
            if (is_name(P, "elif")) {
                struct pgd__jnode *e = node(P, PGD__N_IF, cur(P)->off);
                advance(P);
                cur_if->kids2 = pgd__jalloc(P->a, sizeof *cur_if->kids2);
                cur_if->kids2[0] = e;
                cur_if->nkids2 = 1;
                cur_if = e;
                continue;
            }
            if (skip_name(P, "else")) {
                end_block(P);
                body_until(P, "if", ends2, &cur_if->kids2, &cur_if->nkids2);
            }
            break;
        }
        advance(P);   /* endif */
        end_block(P);
    } else if (!strcmp(tag, "set")) {
        struct pgd__jnode *target = parse_assign_target(P, NULL, true);
        if (skip_op(P, PGD__OP_ASSIGN)) {
            n = node(P, PGD__N_SET, off);
            n->a = target;
            n->b = parse_tuple(P, false, true, NULL, false);
            end_block(P);
        } else {
            n = node(P, PGD__N_SET_BLOCK, off);
            n->a = target;
            if (target->kind == PGD__E_TUPLE)
                fail_at(P, off, "%s", "a block set assigns to one name");
            if (is_op(P, PGD__OP_PIPE)) {
                advance(P);
                n->b = filter_chain(P, off);
            }
            end_block(P);
            static const char *const ends[] = { "endset", NULL };
            body_until(P, "set", ends, &n->kids, &n->nkids);
            advance(P);
            end_block(P);
        }
    } else if (!strcmp(tag, "macro")) {
        n = node(P, PGD__N_MACRO, off);
        n->name = expect_name(P);
        parse_signature(P, n);
        end_block(P);
        static const char *const ends[] = { "endmacro", NULL };
        int saved = P->loop_depth;
        P->loop_depth = 0;
        body_until(P, "macro", ends, &n->kids, &n->nkids);
        P->loop_depth = saved;
        advance(P);
        if (cur(P)->type == PGD__T_NAME)
            advance(P);   /* {% endmacro name %} */
        end_block(P);
    } else if (!strcmp(tag, "call")) {
        n = node(P, PGD__N_CALL_BLOCK, off);
        if (is_op(P, PGD__OP_LPAREN))
            parse_signature(P, n);
        n->a = parse_expression(P, true);
        if (n->a->kind != PGD__E_CALL)
            fail_at(P, off, "%s", "expected call");
        end_block(P);
        static const char *const ends[] = { "endcall", NULL };
        int saved = P->loop_depth;
        P->loop_depth = 0;
        body_until(P, "call", ends, &n->kids, &n->nkids);
        P->loop_depth = saved;
        advance(P);
        end_block(P);
    } else if (!strcmp(tag, "filter")) {
        n = node(P, PGD__N_FILTER_BLOCK, off);
        n->b = filter_chain(P, off);
        end_block(P);
        static const char *const ends[] = { "endfilter", NULL };
        body_until(P, "filter", ends, &n->kids, &n->nkids);
        advance(P);
        end_block(P);
    } else if (!strcmp(tag, "with")) {
        n = node(P, PGD__N_WITH, off);
        struct slist names = { 0 };
        struct nlist vals = { 0 };
        while (cur(P)->type != PGD__T_BLOCK_END) {
            if (names.n)
                expect_op(P, PGD__OP_COMMA, ",");
            sl_push(P, &names, expect_name(P));
            expect_op(P, PGD__OP_ASSIGN, "=");
            nl_push(P, &vals, parse_expression(P, true));
        }
        n->names = names.v;
        n->nnames = names.n;
        n->kids2 = vals.v;
        n->nkids2 = vals.n;
        end_block(P);
        static const char *const ends[] = { "endwith", NULL };
        body_until(P, "with", ends, &n->kids, &n->nkids);
        advance(P);
        end_block(P);
    } else if (!strcmp(tag, "generation")) {
        n = node(P, PGD__N_SCOPE, off);
        end_block(P);
        static const char *const ends[] = { "endgeneration", NULL };
        body_until(P, "generation", ends, &n->kids, &n->nkids);
        advance(P);
        end_block(P);
    } else if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        if (!P->loop_depth)
            fail_at(P, off, "'%s' outside of a loop", tag);
        n = node(P, tag[0] == 'b' ? PGD__N_BREAK : PGD__N_CONTINUE, off);
        end_block(P);
    } else {
        char msg[512];
        if (P->want) {
            size_t k = (size_t)snprintf(msg, sizeof msg, "Encountered unknown tag '%%s'. Jinja was "
                                                         "looking for the following tags: ");
            for (size_t i = 0; P->want[i] && k < sizeof msg; i++)
                k += (size_t)snprintf(msg + k, sizeof msg - k, "%s'%s'", i ? " or " : "",
                                      P->want[i]);
            if (k < sizeof msg)
                snprintf(msg + k, sizeof msg - k, ". The innermost block that needs to be "
                                                  "closed is '%s'.", P->open_block);
        } else {
            snprintf(msg, sizeof msg, "Encountered unknown tag '%%s'.");
        }
        fail_at(P, off, msg, tag);
    }
    P->depth--;
    return n;
}

static struct pgd__jnode *parse_body(struct parser *P, const char *const *ends,
                                     const char *block, struct pgd__jnode ***kids,
                                     size_t *nkids)
{
    const char *saved_block = P->open_block;
    const char *const *saved_want = P->want;
    P->open_block = block;
    P->want = ends;
    struct nlist body = { 0 };
    for (;;) {
        const struct pgd__jtoken *t = cur(P);
        if (t->type == PGD__T_EOF) {
            if (ends) {
                char msg[400];
                size_t k = (size_t)snprintf(msg, sizeof msg, "Unexpected end of template. Jinja "
                                            "was looking for the following tags: ");
                for (size_t i = 0; ends[i] && k < sizeof msg; i++)
                    k += (size_t)snprintf(msg + k, sizeof msg - k, "%s'%s'", i ? " or " : "",
                                          ends[i]);
                if (k < sizeof msg)
                    snprintf(msg + k, sizeof msg - k, ". The innermost block that needs to be "
                                                      "closed is '%%s'.");
                fail_at(P, t->off, msg, block);
            }
            break;
        }
        if (t->type == PGD__T_DATA) {
            struct pgd__jnode *n = node(P, PGD__N_TEXT, t->off);
            n->lit = pgd__jv_str_nocopy(P->a, t->str, t->len);
            nl_push(P, &body, n);
            advance(P);
        } else if (t->type == PGD__T_VAR_BEGIN) {
            advance(P);
            struct pgd__jnode *n = node(P, PGD__N_OUTPUT, cur(P)->off);
            n->a = parse_tuple(P, false, true, NULL, false);
            expect_type(P, PGD__T_VAR_END, "}}");
            nl_push(P, &body, n);
        } else if (t->type == PGD__T_BLOCK_BEGIN) {
            advance(P);
            if (ends && cur(P)->type == PGD__T_NAME) {
                bool is_end = false;
                for (size_t i = 0; ends[i]; i++)
                    if (!strcmp(cur(P)->str, ends[i]))
                        is_end = true;
                if (is_end)
                    break;
            }
            nl_push(P, &body, parse_statement(P));
        } else {
            fail_at(P, t->off, "unexpected '%s'", describe(t));
        }
    }
    P->open_block = saved_block;
    P->want = saved_want;
    *kids = body.v;
    *nkids = body.n;
    return NULL;
}

struct pgd__jnode *pgd__jparse(struct pgd__jarena *a, struct pgd__jfail *f,
                               const struct pgd__jtoken *toks, size_t ntok)
{
    struct parser P = { .a = a, .f = f, .t = toks, .n = ntok };
    struct pgd__jnode *root = node(&P, PGD__N_SCOPE, 0);
    parse_body(&P, NULL, NULL, &root->kids, &root->nkids);
    return root;
}
