/* Jinja tests (`x is defined`, `x is divisibleby 3` ...), with Jinja2 3.1's behaviour. */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <string.h>

static bool test_cmp(struct pgd__jctx *c, int op, struct pgd__jv *v, const struct pgd__jargs *a,
                     long at)
{
    struct pgd__jv *other = pgd__jarg(a, 0, NULL);
    if (!other)
        pgd__jerr(c, at, "the comparison test needs a value to compare with");
    return pgd__jcompare(c, op, v, other, at);
}

bool pgd__jtest_exists(const char *name)
{
    static const char *names[] = {
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
        "number", "string", "mapping", "iterable", "sequence", "callable", "sameas",
        "escaped", "lower", "upper", "even", "odd", "divisibleby", "eq", "equalto", "==",
        "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=",
        "in", "filter", "test",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

static bool str_is_case(struct pgd__jctx *c, struct pgd__jv *v, char mode)
{
    v = pgd__jv_to_str(c->ar, v);   /* Jinja: str(value).islower() */
    struct pgd__jargs none = { 0 };
    struct pgd__jv *m = pgd__jmethod(c, v, mode == 'l' ? "islower" : "isupper");
    return pgd__jv_truthy(pgd__jcall(c, m, &none, -1));
}

bool pgd__jtest(struct pgd__jctx *c, const char *name, struct pgd__jv *v,
                const struct pgd__jargs *a, long at)
{
    pgd__jtick(c, at);
    enum pgd__jkind k = v->kind;
    if (!strcmp(name, "defined")) return k != PGD__J_UNDEF;
    if (!strcmp(name, "undefined")) return k == PGD__J_UNDEF;
    if (!strcmp(name, "none")) return k == PGD__J_NONE;
    if (!strcmp(name, "boolean")) return k == PGD__J_BOOL;
    if (!strcmp(name, "false")) return k == PGD__J_BOOL && !v->b;
    if (!strcmp(name, "true")) return k == PGD__J_BOOL && v->b;
    if (!strcmp(name, "integer")) return k == PGD__J_INT;
    if (!strcmp(name, "float")) return k == PGD__J_FLOAT;
    if (!strcmp(name, "number")) return pgd__jv_is_num(v);
    if (!strcmp(name, "string")) return k == PGD__J_STR;
    if (!strcmp(name, "mapping")) return k == PGD__J_DICT;
    if (!strcmp(name, "iterable"))
        return k == PGD__J_LIST || k == PGD__J_DICT || k == PGD__J_STR || k == PGD__J_UNDEF;
    if (!strcmp(name, "sequence"))
        return k == PGD__J_LIST || k == PGD__J_DICT || k == PGD__J_STR || k == PGD__J_UNDEF;
    if (!strcmp(name, "callable")) return k == PGD__J_FUNC || k == PGD__J_MACRO;
    if (!strcmp(name, "escaped")) return false;
    if (!strcmp(name, "lower")) return str_is_case(c, v, 'l');
    if (!strcmp(name, "upper")) return str_is_case(c, v, 'u');
    if (!strcmp(name, "sameas")) {
        struct pgd__jv *o = pgd__jarg(a, 0, "other");
        if (!o)
            pgd__jerr(c, at, "sameas needs a value");
        if (v == o)
            return true;
        /* None, True and False are singletons; so are equal small ints in CPython */
        if (k == o->kind && (k == PGD__J_NONE || k == PGD__J_BOOL))
            return k == PGD__J_NONE || v->b == o->b;
        if (k == PGD__J_INT && o->kind == PGD__J_INT)
            return v->i == o->i && v->i >= -5 && v->i <= 256;
        return false;
    }
    if (!strcmp(name, "even") || !strcmp(name, "odd")) {
        /* value % 2 == 0 (or == 1), with Python's % */
        struct pgd__jv *m = pgd__jbinop(c, PGD__OP_MOD, v, pgd__jv_int(c->ar, 2), at);
        return pgd__jv_eq(m, pgd__jv_int(c->ar, name[0] == 'e' ? 0 : 1));
    }
    if (!strcmp(name, "divisibleby")) {
        struct pgd__jv *d = pgd__jarg(a, 0, "num");
        if (!d)
            pgd__jerr(c, at, "divisibleby needs a number");
        struct pgd__jv *m = pgd__jbinop(c, PGD__OP_MOD, v, d, at);
        return pgd__jv_eq(m, pgd__jv_int(c->ar, 0));
    }
    if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
        return test_cmp(c, PGD__OP_EQ, v, a, at);
    if (!strcmp(name, "ne") || !strcmp(name, "!="))
        return test_cmp(c, PGD__OP_NE, v, a, at);
    if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<"))
        return test_cmp(c, PGD__OP_LT, v, a, at);
    if (!strcmp(name, "le") || !strcmp(name, "<="))
        return test_cmp(c, PGD__OP_LTEQ, v, a, at);
    if (!strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">"))
        return test_cmp(c, PGD__OP_GT, v, a, at);
    if (!strcmp(name, "ge") || !strcmp(name, ">="))
        return test_cmp(c, PGD__OP_GTEQ, v, a, at);
    if (!strcmp(name, "in"))
        return test_cmp(c, PGD__OP_IN, v, a, at);
    if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        if (k != PGD__J_STR)
            return false;
        char *s = pgd__jstrndup(c->ar, v->s.p, v->s.n);
        if (name[0] == 't')
            return pgd__jtest_exists(s);
        return pgd__jfilter_exists(s);
    }
    pgd__jerr(c, at, "No test named '%s'.", name);
}
