/* The statement half of the Jinja parser: template data, {{ output }} and the {% tags %}
 * (for, if, set, macro, call, filter, with, generation, break, continue) into a syntax tree,
 * as Jinja2's parser reads them; expressions inside come from jinja_parse_expr.c. The entry
 * point pgd__jparse lives here. */
#include "runtime/chat/jinja_parse.h"
#include <stdio.h>
#include <string.h>

/* An assignment target is a name or a tuple of them; Jinja2 refuses true/false/none (and
 * their capitalized forms) as names to assign to. */
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

/* The target of for or set; with_namespace admits `ns.attr` (set only, as Jinja2's
 * namespace assignment). */
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
    struct pgd__jnode *t = pgd__jparse_tuple(P, true, true, extra_end, false);
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
        f->name = pgd__jparse_dotted_name(P);
        if (is_op(P, PGD__OP_LPAREN))
            pgd__jparse_args(P, f);
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
            nl_push(P, &defs, pgd__jparse_expression(P, true));
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

/* The body of a block that ends with one tag ({% endX %}), and that end tag. */
static void body_to_end(struct parser *P, const char *block, const char *const *ends,
                        struct pgd__jnode ***kids, size_t *nkids)
{
    body_until(P, block, ends, kids, nkids);
    advance(P);   /* the end tag's name */
    end_block(P);
}

/* A body that is not inside the enclosing loop: a break there refers to no loop of it. */
static void body_outside_loops(struct parser *P, const char *block, const char *const *ends,
                               struct pgd__jnode ***kids, size_t *nkids)
{
    int saved = P->loop_depth;
    P->loop_depth = 0;
    body_until(P, block, ends, kids, nkids);
    P->loop_depth = saved;
}

/* Each statement parser starts after the tag name (tag) and ends after its closing %}. */
typedef struct pgd__jnode *(*stmt_parser)(struct parser *P, const char *tag, size_t off);

/* {% for target in iterable [if cond] %} body [{% else %} body] {% endfor %} */
static struct pgd__jnode *parse_for(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_FOR, off);
    n->a = parse_assign_target(P, "in", false);
    if (!skip_name(P, "in"))
        fail_at(P, cur(P)->off, "expected 'in', got '%s'", describe(cur(P)));
    n->b = pgd__jparse_tuple(P, false, false, "recursive", false);
    if (skip_name(P, "if"))
        n->c = pgd__jparse_expression(P, true);
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
        /* a break in a for's else refers to no loop of this for */
        body_outside_loops(P, "for", ends2, &n->kids2, &n->nkids2);
    }
    advance(P);   /* endfor */
    end_block(P);
    return n;
}

/* {% if c %} body {% elif c %} body ... [{% else %} body] {% endif %}: an elif is an if
 * node in the else branch (kids2) of the one before, as Jinja2's parser builds it. */
static struct pgd__jnode *parse_if(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_IF, off);
    struct pgd__jnode *cur_if = n;
    static const char *const ends1[] = { "elif", "else", "endif", NULL };
    static const char *const ends2[] = { "endif", NULL };
    for (;;) {
        cur_if->a = pgd__jparse_tuple(P, false, false, NULL, false);
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
    return n;
}

/* {% set target = value %}, or the block form {% set name [| filters] %} body {% endset %} */
static struct pgd__jnode *parse_set(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n;
    struct pgd__jnode *target = parse_assign_target(P, NULL, true);
    if (skip_op(P, PGD__OP_ASSIGN)) {
        n = node(P, PGD__N_SET, off);
        n->a = target;
        n->b = pgd__jparse_tuple(P, false, true, NULL, false);
        end_block(P);
        return n;
    }
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
    body_to_end(P, "set", ends, &n->kids, &n->nkids);
    return n;
}

/* {% macro name(params) %} body {% endmacro [name] %} */
static struct pgd__jnode *parse_macro(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_MACRO, off);
    n->name = expect_name(P);
    parse_signature(P, n);
    end_block(P);
    static const char *const ends[] = { "endmacro", NULL };
    body_outside_loops(P, "macro", ends, &n->kids, &n->nkids);
    advance(P);
    if (cur(P)->type == PGD__T_NAME)
        advance(P);   /* {% endmacro name %} */
    end_block(P);
    return n;
}

/* {% call[(params)] macro(args) %} body {% endcall %}: the body is the callee's caller() */
static struct pgd__jnode *parse_call_block(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_CALL_BLOCK, off);
    if (is_op(P, PGD__OP_LPAREN))
        parse_signature(P, n);
    n->a = pgd__jparse_expression(P, true);
    if (n->a->kind != PGD__E_CALL)
        fail_at(P, off, "%s", "expected call");
    end_block(P);
    static const char *const ends[] = { "endcall", NULL };
    body_outside_loops(P, "call", ends, &n->kids, &n->nkids);
    advance(P);
    end_block(P);
    return n;
}

/* {% filter f | g(args) %} body {% endfilter %} */
static struct pgd__jnode *parse_filter_block(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_FILTER_BLOCK, off);
    n->b = filter_chain(P, off);
    end_block(P);
    static const char *const ends[] = { "endfilter", NULL };
    body_to_end(P, "filter", ends, &n->kids, &n->nkids);
    return n;
}

/* {% with a = x, b = y %} body {% endwith %} */
static struct pgd__jnode *parse_with(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_WITH, off);
    struct slist names = { 0 };
    struct nlist vals = { 0 };
    while (cur(P)->type != PGD__T_BLOCK_END) {
        if (names.n)
            expect_op(P, PGD__OP_COMMA, ",");
        sl_push(P, &names, expect_name(P));
        expect_op(P, PGD__OP_ASSIGN, "=");
        nl_push(P, &vals, pgd__jparse_expression(P, true));
    }
    n->names = names.v;
    n->nnames = names.n;
    n->kids2 = vals.v;
    n->nkids2 = vals.n;
    end_block(P);
    static const char *const ends[] = { "endwith", NULL };
    body_to_end(P, "with", ends, &n->kids, &n->nkids);
    return n;
}

/* {% generation %} body {% endgeneration %}: transformers' tag marking the assistant's
 * tokens (for return_assistant_tokens_mask); rendering it is rendering its body. */
static struct pgd__jnode *parse_generation(struct parser *P, const char *tag, size_t off)
{
    (void)tag;
    struct pgd__jnode *n = node(P, PGD__N_SCOPE, off);
    end_block(P);
    static const char *const ends[] = { "endgeneration", NULL };
    body_to_end(P, "generation", ends, &n->kids, &n->nkids);
    return n;
}

/* {% break %} and {% continue %} (Jinja2's loopcontrols extension, which transformers
 * enables), only inside a for loop's body. */
static struct pgd__jnode *parse_loop_control(struct parser *P, const char *tag, size_t off)
{
    if (!P->loop_depth)
        fail_at(P, off, "'%s' outside of a loop", tag);
    struct pgd__jnode *n = node(P, tag[0] == 'b' ? PGD__N_BREAK : PGD__N_CONTINUE, off);
    end_block(P);
    return n;
}

/* Throws Jinja2's message for a tag no statement parser knows, naming the end tags the
 * innermost open block was looking for. */
_Noreturn static void unknown_tag(struct parser *P, const char *tag, size_t off)
{
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

static const struct {
    const char *tag;
    stmt_parser parse;
} statements[] = {
    { "for", parse_for }, { "if", parse_if }, { "set", parse_set },
    { "macro", parse_macro }, { "call", parse_call_block }, { "filter", parse_filter_block },
    { "with", parse_with }, { "generation", parse_generation },
    { "break", parse_loop_control }, { "continue", parse_loop_control },
};

/* A {% tag ... %} statement, the cursor on its tag name: dispatches on the name. */
static struct pgd__jnode *parse_statement(struct parser *P)
{
    const struct pgd__jtoken *t = cur(P);
    size_t off = t->off;
    if (t->type != PGD__T_NAME)
        fail_at(P, off, "tag name expected, got '%s'", describe(t));
    const char *tag = t->str;
    advance(P);
    enter(P);
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++) {
        if (!strcmp(tag, statements[i].tag)) {
            struct pgd__jnode *n = statements[i].parse(P, tag, off);
            P->depth--;
            return n;
        }
    }
    unknown_tag(P, tag, off);
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
            n->a = pgd__jparse_tuple(P, false, true, NULL, false);
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
