/* The parser's state and its token cursor, shared by the expression parser
 * (jinja_parse_expr.c) and the statement parser (jinja_parse_stmt.c), which calls into it.
 * Internal to the parser: nothing outside those two files includes this header. */
#ifndef PGD_RUNTIME_CHAT_JINJA_PARSE_H
#define PGD_RUNTIME_CHAT_JINJA_PARSE_H

#include "runtime/chat/jinja.h"
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

static inline void nl_push(struct parser *P, struct nlist *l, struct pgd__jnode *x)
{
    pgd__jreserve(P->a, l->v, l->cap, l->n + 1, 8);
    l->v[l->n++] = x;
}

struct slist {
    const char **v;
    size_t n, cap;
};

static inline void sl_push(struct parser *P, struct slist *l, const char *s)
{
    pgd__jreserve(P->a, l->v, l->cap, l->n + 1, 8);
    l->v[l->n++] = s;
}

static inline const struct pgd__jtoken *cur(struct parser *P) { return &P->t[P->i]; }
static inline const struct pgd__jtoken *peek(struct parser *P)
{
    return &P->t[P->i + 1 < P->n ? P->i + 1 : P->i];
}
static inline void advance(struct parser *P)
{
    if (P->i + 1 < P->n)
        P->i++;
}

static inline const char *describe(const struct pgd__jtoken *t)
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

_Noreturn static inline void fail_at(struct parser *P, size_t off, const char *fmt, const char *arg)
{
    pgd__jthrow(P->f, PGD_ERR_TEMPLATE, (long)off, fmt, arg);
}

static inline bool is_op(struct parser *P, int op)
{
    return cur(P)->type == PGD__T_OP && cur(P)->op == op;
}

static inline bool is_name(struct parser *P, const char *name)
{
    return cur(P)->type == PGD__T_NAME && strcmp(cur(P)->str, name) == 0;
}

static inline bool skip_op(struct parser *P, int op)
{
    if (!is_op(P, op))
        return false;
    advance(P);
    return true;
}

static inline bool skip_name(struct parser *P, const char *name)
{
    if (!is_name(P, name))
        return false;
    advance(P);
    return true;
}

static inline void expect_op(struct parser *P, int op, const char *what)
{
    if (!skip_op(P, op))
        pgd__jthrow(P->f, PGD_ERR_TEMPLATE, (long)cur(P)->off, "expected '%s', got '%s'", what,
                    describe(cur(P)));
}

static inline void expect_type(struct parser *P, enum pgd__jtok type, const char *what)
{
    if (cur(P)->type != type)
        pgd__jthrow(P->f, PGD_ERR_TEMPLATE, (long)cur(P)->off, "expected '%s', got '%s'", what,
                    describe(cur(P)));
    advance(P);
}

static inline const char *expect_name(struct parser *P)
{
    if (cur(P)->type != PGD__T_NAME)
        fail_at(P, cur(P)->off, "expected a name, got '%s'", describe(cur(P)));
    const char *s = cur(P)->str;
    advance(P);
    return s;
}

static inline struct pgd__jnode *node(struct parser *P, enum pgd__jnkind kind, size_t off)
{
    struct pgd__jnode *n = pgd__jalloc(P->a, sizeof *n);
    n->kind = kind;
    n->off = off;
    return n;
}

static inline void enter(struct parser *P)
{
    if (++P->depth > 200)
        fail_at(P, cur(P)->off, "template nested too deeply (at '%s')", describe(cur(P)));
}

/* ---- the expression parser, for the statement parser ------------------------------------ */

/* An expression; with_condexpr allows `a if b else c`. */
struct pgd__jnode *pgd__jparse_expression(struct parser *P, bool with_condexpr);
/* A comma-separated tuple or a single expression (Jinja2's parse_tuple): simplified allows
 * only names and literals (for targets), extra is a name that also ends the tuple,
 * explicit requires parentheses. */
struct pgd__jnode *pgd__jparse_tuple(struct parser *P, bool simplified, bool with_condexpr,
                                     const char *extra, bool explicit_parens);
/* Call arguments after '(' into n: positional, then name=value. */
void pgd__jparse_args(struct parser *P, struct pgd__jnode *n);
/* A filter or test name, possibly dotted. */
const char *pgd__jparse_dotted_name(struct parser *P);

#endif
