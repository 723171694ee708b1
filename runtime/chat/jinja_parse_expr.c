/* The expression half of the Jinja parser: tokens into expression trees, following the
 * grammar and operator precedence of Jinja2's parser (conditional expression, or, and, not,
 * comparisons, + -, ~, * / // %, **, unary - +, postfix . [] (), filters | and tests `is`). */
#include "runtime/chat/jinja_parse.h"
#include <stdio.h>
#include <string.h>

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

struct pgd__jnode *pgd__jparse_tuple(struct parser *P, bool simplified, bool with_condexpr,
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
        struct pgd__jnode *e = simplified ? parse_primary(P) : pgd__jparse_expression(P, with_condexpr);
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
            n = pgd__jparse_tuple(P, false, true, NULL, true);
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
                nl_push(P, &items, pgd__jparse_expression(P, true));
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
                nl_push(P, &keys, pgd__jparse_expression(P, true));
                expect_op(P, PGD__OP_COLON, ":");
                nl_push(P, &vals, pgd__jparse_expression(P, true));
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
void pgd__jparse_args(struct parser *P, struct pgd__jnode *n)
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
            nl_push(P, &kwv, pgd__jparse_expression(P, true));
        } else {
            if (kwn.n)
                fail_at(P, cur(P)->off, "%s", "invalid syntax for function call expression");
            nl_push(P, &pos, pgd__jparse_expression(P, true));
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
    pgd__jparse_args(P, n);
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
        struct pgd__jnode *e = pgd__jparse_expression(P, true);
        if (!is_op(P, PGD__OP_COLON))
            return e;
        advance(P);
        start = e;
    }
    if (!is_op(P, PGD__OP_COLON) && !is_op(P, PGD__OP_RBRACKET) && !is_op(P, PGD__OP_COMMA))
        stop = pgd__jparse_expression(P, true);
    if (skip_op(P, PGD__OP_COLON)) {
        if (!is_op(P, PGD__OP_RBRACKET) && !is_op(P, PGD__OP_COMMA))
            step = pgd__jparse_expression(P, true);
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

const char *pgd__jparse_dotted_name(struct parser *P)
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
            f->name = pgd__jparse_dotted_name(P);
            if (is_op(P, PGD__OP_LPAREN))
                pgd__jparse_args(P, f);
            n = f;
        } else if (is_name(P, "is")) {
            advance(P);
            struct pgd__jnode *t = node(P, PGD__E_TEST, off);
            t->a = n;
            if (skip_name(P, "not"))
                t->op = 1;
            t->name = pgd__jparse_dotted_name(P);
            const struct pgd__jtoken *c = cur(P);
            if (is_op(P, PGD__OP_LPAREN)) {
                pgd__jparse_args(P, t);
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

/* operand (word operand)*, left-associative: `and` over `not` terms, `or` over `and`. */
static struct pgd__jnode *parse_bool_chain(struct parser *P, const char *word,
                                           enum pgd__jnkind kind,
                                           struct pgd__jnode *(*operand)(struct parser *))
{
    struct pgd__jnode *l = operand(P);
    while (is_name(P, word)) {
        size_t off = cur(P)->off;
        advance(P);
        struct pgd__jnode *n = node(P, kind, off);
        n->a = l;
        n->b = operand(P);
        l = n;
    }
    return l;
}

static struct pgd__jnode *parse_and(struct parser *P)
{
    return parse_bool_chain(P, "and", PGD__E_AND, parse_not);
}

static struct pgd__jnode *parse_or(struct parser *P)
{
    return parse_bool_chain(P, "or", PGD__E_OR, parse_and);
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

struct pgd__jnode *pgd__jparse_expression(struct parser *P, bool with_condexpr)
{
    enter(P);
    struct pgd__jnode *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}
