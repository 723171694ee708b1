/* Jinja evaluator: walks the syntax tree, evaluating expressions with Python semantics and
 * writing template output; owns variable frames and calls (macros and builtins, and the
 * accessors builtins read their arguments with). What an operator or `.`/`[]` does to
 * values is in jinja_operators.c. Scoping follows Jinja: a for loop runs each iteration in
 * a fresh frame, macros run in a frame whose parent is the frame they were defined in, and
 * `if` does not open a scope. */
#include "runtime/chat/jinja.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- frames ----------------------------------------------------------------------------- */

static struct pgd__jframe *frame_new(struct pgd__jctx *c, struct pgd__jframe *parent)
{
    struct pgd__jframe *f = pgd__jalloc(c->ar, sizeof *f);
    f->parent = parent;
    return f;
}

void pgd__jframe_set(struct pgd__jarena *a, struct pgd__jframe *f, const char *name,
                     struct pgd__jv *v)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return;
        }
    /* Names and values share one capacity: both grow from the same old value to the same
     * new one. */
    size_t cap = f->cap;
    pgd__jreserve(a, f->names, cap, f->n + 1, 8);
    pgd__jreserve(a, f->vals, f->cap, f->n + 1, 8);
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
}

struct pgd__jv *pgd__jframe_get(const struct pgd__jframe *f, const char *name)
{
    for (; f; f = f->parent)
        for (size_t i = f->n; i > 0; i--)
            if (!strcmp(f->names[i - 1], name))
                return f->vals[i - 1];
    return NULL;
}

/* ---- calls ------------------------------------------------------------------------------ */

static void exec_body(struct pgd__jctx *c, struct pgd__jnode *const *kids, size_t n,
                      struct pgd__jframe *fr);
static struct pgd__jv *eval(struct pgd__jctx *c, const struct pgd__jnode *n,
                            struct pgd__jframe *fr);

static struct pgd__jv *call_macro(struct pgd__jctx *c, struct pgd__jmacro *m,
                                  const struct pgd__jargs *a, long at)
{
    const struct pgd__jnode *def = m->def;
    if (c->depth >= c->max_depth)
        pgd__jerr(c, at, "macro calls nested too deeply");
    c->depth++;
    struct pgd__jframe *fr = frame_new(c, m->closure);
    size_t np = def->nnames;
    struct pgd__jv **bound = pgd__jalloc(c->ar, (np ? np : 1) * sizeof *bound);
    struct pgd__jv *varargs = pgd__jv_list(c->ar, 0);
    varargs->l.tuple = true;
    struct pgd__jv *kwargs = pgd__jv_dict(c->ar, 0);
    for (size_t i = 0; i < a->npos; i++) {
        if (i < np)
            bound[i] = a->pos[i];
        else
            pgd__jlist_push(c->ar, varargs, a->pos[i]);
    }
    struct pgd__jv *caller = NULL;
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i;
        for (i = 0; i < np; i++)
            if (!strcmp(def->names[i], a->kwn[k]))
                break;
        if (i < np) {
            if (bound[i])
                pgd__jerr(c, at, "macro '%s' got multiple values for argument '%s'",
                          def->name ? def->name : "caller", def->names[i]);
            bound[i] = a->kwv[k];
        } else if (!strcmp(a->kwn[k], "caller")) {
            caller = a->kwv[k];
        } else {
            pgd__jdict_set(c->ar, kwargs, pgd__jv_cstr(c->ar, a->kwn[k]), a->kwv[k]);
        }
    }
    for (size_t i = 0; i < np; i++) {
        if (!bound[i]) {
            if (def->kids2 && def->kids2[i]) {
                bound[i] = eval(c, def->kids2[i], fr);
            } else {
                struct pgd__jbuf b = { 0 };
                pgd__jbuf_printf(c->ar, &b, "parameter '%s' was not provided", def->names[i]);
                bound[i] = pgd__jv_undef(c->ar, b.p);
            }
        }
        pgd__jframe_set(c->ar, fr, def->names[i], bound[i]);
    }
    pgd__jframe_set(c->ar, fr, "varargs", varargs);
    pgd__jframe_set(c->ar, fr, "kwargs", kwargs);
    if (caller)
        pgd__jframe_set(c->ar, fr, "caller", caller);
    struct pgd__jbuf out = { 0 }, *saved = c->out;
    pgd__jbuf_put(c->ar, &out, "", 0);
    c->out = &out;
    int saved_ctl = c->loopctl;
    exec_body(c, def->kids, def->nkids, fr);
    c->loopctl = saved_ctl;
    c->out = saved;
    c->depth--;
    return pgd__jv_str_nocopy(c->ar, out.p, out.n);
}

struct pgd__jv *pgd__jcall(struct pgd__jctx *c, struct pgd__jv *fn, const struct pgd__jargs *a,
                           long at)
{
    pgd__jtick(c, at);
    switch (fn->kind) {
    case PGD__J_FUNC:
        return fn->call.fn(c, fn->call.self, a, at);
    case PGD__J_MACRO:
        return call_macro(c, fn->m, a, at);
    case PGD__J_UNDEF:
        pgd__jerr_undef(c, at, fn);
    default:
        pgd__jerr(c, at, "'%s' object is not callable", pgd__jv_typename(fn));
    }
}


/* ---- arguments -------------------------------------------------------------------------- */

struct pgd__jv *pgd__jarg(const struct pgd__jargs *a, size_t i, const char *kw)
{
    if (i < a->npos)
        return a->pos[i];
    if (kw)
        for (size_t k = 0; k < a->nkw; k++)
            if (!strcmp(a->kwn[k], kw))
                return a->kwv[k];
    return NULL;
}

const struct pgd__jv *pgd__jarg_str(struct pgd__jctx *c, const struct pgd__jargs *a, size_t i,
                                    const char *kw, long at)
{
    struct pgd__jv *v = pgd__jarg(a, i, kw);
    if (!v || v->kind == PGD__J_NONE)
        return NULL;
    if (v->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, v);
    if (v->kind != PGD__J_STR)
        pgd__jerr(c, at, "argument %s must be str, not %s", kw ? kw : "", pgd__jv_typename(v));
    return v;
}

int64_t pgd__jarg_int(struct pgd__jctx *c, const struct pgd__jargs *a, size_t i, const char *kw,
                      int64_t def, long at)
{
    struct pgd__jv *v = pgd__jarg(a, i, kw);
    if (!v || v->kind == PGD__J_NONE)
        return def;
    if (v->kind == PGD__J_INT)
        return v->i;
    if (v->kind == PGD__J_BOOL)
        return v->b;
    if (v->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, v);
    pgd__jerr(c, at, "'%s' object cannot be interpreted as an integer", pgd__jv_typename(v));
}


/* ---- expressions ------------------------------------------------------------------------ */

static void eval_args(struct pgd__jctx *c, const struct pgd__jnode *n, struct pgd__jframe *fr,
                      struct pgd__jargs *a, size_t extra_kw)
{
    memset(a, 0, sizeof *a);
    a->npos = n->nkids;
    a->pos = pgd__jalloc(c->ar, (n->nkids ? n->nkids : 1) * sizeof *a->pos);
    for (size_t i = 0; i < n->nkids; i++)
        a->pos[i] = eval(c, n->kids[i], fr);
    a->nkw = n->nnames;
    a->kwn = pgd__jalloc(c->ar, (n->nnames + extra_kw + 1) * sizeof *a->kwn);
    a->kwv = pgd__jalloc(c->ar, (n->nnames + extra_kw + 1) * sizeof *a->kwv);
    for (size_t i = 0; i < n->nnames; i++) {
        a->kwn[i] = n->names[i];
        a->kwv[i] = eval(c, n->kids2[i], fr);
    }
}

static struct pgd__jv *eval_inner(struct pgd__jctx *c, const struct pgd__jnode *n,
                                  struct pgd__jframe *fr, long at);

static struct pgd__jv *eval(struct pgd__jctx *c, const struct pgd__jnode *n,
                            struct pgd__jframe *fr)
{
    long at = (long)n->off;
    pgd__jtick(c, at);
    if (c->depth >= c->max_depth)
        pgd__jerr(c, at, "expression nested too deeply");
    c->depth++;
    struct pgd__jv *r = eval_inner(c, n, fr, at);
    c->depth--;
    return r;
}

/* Unary - or + (n's kind) applied to v: ints (and bools, as Python) and floats. */
static struct pgd__jv *eval_sign(struct pgd__jctx *c, const struct pgd__jnode *n,
                                 struct pgd__jv *v, long at)
{
    if (v->kind == PGD__J_UNDEF)
        pgd__jerr_undef(c, at, v);
    if (pgd__jv_is_intlike(v)) {
        if (n->kind == PGD__E_POS)
            return pgd__jv_int(c->ar, pgd__jv_ival(v));
        if (pgd__jv_ival(v) == INT64_MIN)
            pgd__jerr(c, at, "integer overflow in unary -");
        return pgd__jv_int(c->ar, -pgd__jv_ival(v));
    }
    if (v->kind == PGD__J_FLOAT)
        return pgd__jv_float(c->ar, n->kind == PGD__E_NEG ? -v->f : v->f);
    pgd__jerr(c, at, "bad operand type for unary %c: '%s'", n->kind == PGD__E_NEG ? '-' : '+',
              pgd__jv_typename(v));
}

/* A dict literal {k: v, ...}: keys must be hashable in Python (no list, dict or namespace). */
static struct pgd__jv *eval_dict(struct pgd__jctx *c, const struct pgd__jnode *n,
                                 struct pgd__jframe *fr)
{
    struct pgd__jv *d = pgd__jv_dict(c->ar, n->nkids);
    for (size_t i = 0; i < n->nkids; i++) {
        struct pgd__jv *k = eval(c, n->kids[i], fr);
        if ((k->kind == PGD__J_LIST && !k->l.tuple) || k->kind == PGD__J_DICT ||
            k->kind == PGD__J_NS)
            pgd__jerr(c, (long)n->kids[i]->off, "unhashable type: '%s'", pgd__jv_typename(k));
        pgd__jdict_set(c->ar, d, k, eval(c, n->kids2[i], fr));
    }
    return d;
}

/* A comparison chain a < b <= c: Python's `a < b and b <= c`, each operand evaluated once
 * and the chain stopping at the first false link. */
static struct pgd__jv *eval_compare(struct pgd__jctx *c, const struct pgd__jnode *n,
                                    struct pgd__jframe *fr)
{
    struct pgd__jv *x = eval(c, n->a, fr);
    for (size_t i = 0; i < n->nkids; i++) {
        struct pgd__jv *y = eval(c, n->kids[i], fr);
        if (!pgd__jcompare(c, n->ops[i], x, y, (long)n->kids[i]->off))
            return &pgd__j_false;
        x = y;
    }
    return &pgd__j_true;
}

/* One expression node's value; eval wraps it with the step budget and depth check. */
static struct pgd__jv *eval_inner(struct pgd__jctx *c, const struct pgd__jnode *n,
                                  struct pgd__jframe *fr, long at)
{
    struct pgd__jarena *A = c->ar;
    switch (n->kind) {
    case PGD__E_LIT:
        return n->lit;
    case PGD__E_NAME: {
        struct pgd__jv *v = pgd__jframe_get(fr, n->name);
        if (v)
            return v;
        struct pgd__jbuf b = { 0 };
        pgd__jbuf_printf(A, &b, "'%s' is undefined", n->name);
        return pgd__jv_undef(A, b.p);
    }
    case PGD__E_BLOCKVAL: {
        struct pgd__jv *v = pgd__jframe_get(fr, " block");
        return v ? v : &pgd__j_undef;
    }
    case PGD__E_ATTR:
        return pgd__jgetattr(c, eval(c, n->a, fr), n->name, at);
    case PGD__E_ITEM: {
        struct pgd__jv *obj = eval(c, n->a, fr);
        return pgd__jgetitem(c, obj, eval(c, n->b, fr), at);
    }
    case PGD__E_SLICE: {
        struct pgd__jv *obj = eval(c, n->a, fr);
        struct pgd__jv *s1 = n->b ? eval(c, n->b, fr) : &pgd__j_none;
        struct pgd__jv *s2 = n->c ? eval(c, n->c, fr) : &pgd__j_none;
        struct pgd__jv *s3 = n->d ? eval(c, n->d, fr) : &pgd__j_none;
        return pgd__jslice(c, obj, s1, s2, s3, at);
    }
    case PGD__E_CALL: {
        struct pgd__jv *fn = eval(c, n->a, fr);
        struct pgd__jargs a;
        eval_args(c, n, fr, &a, 0);
        return pgd__jcall(c, fn, &a, at);
    }
    case PGD__E_FILTER: {
        struct pgd__jv *v = eval(c, n->a, fr);
        struct pgd__jargs a;
        eval_args(c, n, fr, &a, 0);
        return pgd__jfilter(c, n->name, v, &a, at);
    }
    case PGD__E_TEST: {
        struct pgd__jv *v = eval(c, n->a, fr);
        struct pgd__jargs a;
        eval_args(c, n, fr, &a, 0);
        bool r = pgd__jtest(c, n->name, v, &a, at);
        return pgd__jv_bool(n->op ? !r : r);
    }
    case PGD__E_NOT:
        return pgd__jv_bool(!pgd__jv_truthy(eval(c, n->a, fr)));
    case PGD__E_NEG: case PGD__E_POS:
        return eval_sign(c, n, eval(c, n->a, fr), at);
    case PGD__E_BIN: {
        struct pgd__jv *x = eval(c, n->a, fr);
        struct pgd__jv *y = eval(c, n->b, fr);
        return pgd__jbinop(c, n->op, x, y, at);
    }
    case PGD__E_AND: {
        struct pgd__jv *x = eval(c, n->a, fr);
        return pgd__jv_truthy(x) ? eval(c, n->b, fr) : x;
    }
    case PGD__E_OR: {
        struct pgd__jv *x = eval(c, n->a, fr);
        return pgd__jv_truthy(x) ? x : eval(c, n->b, fr);
    }
    case PGD__E_COND:
        if (pgd__jv_truthy(eval(c, n->b, fr)))
            return eval(c, n->a, fr);
        if (n->c)
            return eval(c, n->c, fr);
        return pgd__jv_undef(A, "the inline if-expression evaluated to false and no else "
                                "section was defined.");
    case PGD__E_LIST: case PGD__E_TUPLE: {
        struct pgd__jv *l = pgd__jv_list(A, n->nkids);
        for (size_t i = 0; i < n->nkids; i++)
            l->l.v[i] = eval(c, n->kids[i], fr);
        l->l.n = n->nkids;
        l->l.tuple = n->kind == PGD__E_TUPLE;
        return l;
    }
    case PGD__E_DICT:
        return eval_dict(c, n, fr);
    case PGD__E_CMP:
        return eval_compare(c, n, fr);
    default:
        pgd__jerr(c, at, "statement used as an expression");
    }
}

/* ---- statements ------------------------------------------------------------------------- */

static void emit(struct pgd__jctx *c, const char *s, size_t n, long at)
{
    if (c->out->n + n > c->max_output)
        pgd__jthrow(c->fail, PGD_ERR_TEMPLATE, at, "chat template output exceeds %zu bytes",
                    c->max_output);
    pgd__jbuf_put(c->ar, c->out, s, n);
}

static void assign(struct pgd__jctx *c, const struct pgd__jnode *target, struct pgd__jv *v,
                   struct pgd__jframe *fr)
{
    long at = (long)target->off;
    if (target->kind == PGD__E_NAME) {
        pgd__jframe_set(c->ar, fr, target->name, v);
        return;
    }
    if (target->kind == PGD__E_TUPLE) {
        size_t n;
        if (v->kind == PGD__J_UNDEF)
            pgd__jerr_undef(c, at, v);
        struct pgd__jv **items = pgd__jiter(c, v, &n, at);
        if (n != target->nkids)
            pgd__jerr(c, at, n > target->nkids ? "too many values to unpack (expected %zu)"
                                                : "not enough values to unpack (expected %zu)",
                      target->nkids);
        for (size_t i = 0; i < n; i++)
            assign(c, target->kids[i], items[i], fr);
        return;
    }
    if (target->kind == PGD__E_ATTR) {
        struct pgd__jv *ns = pgd__jframe_get(fr, target->a->name);
        if (!ns || ns->kind != PGD__J_NS)
            pgd__jerr(c, at, "cannot assign attribute on non-namespace object");
        /* transformers' sandbox refuses these (its message, word for word) */
        if (target->name[0] == '_')
            pgd__jerr(c, at, "Chat templates cannot store underscore-prefixed attributes on a "
                             "namespace, but got '%s'. Please rename the attribute.",
                      target->name);
        pgd__jdict_set(c->ar, ns, pgd__jv_cstr(c->ar, target->name), v);
        return;
    }
    pgd__jerr(c, at, "cannot assign to this expression");
}

/* Renders body into a fresh string (the current output is set aside meanwhile). */
static struct pgd__jv *capture(struct pgd__jctx *c, struct pgd__jnode *const *kids, size_t n,
                               struct pgd__jframe *fr)
{
    struct pgd__jbuf out = { 0 }, *saved = c->out;
    pgd__jbuf_put(c->ar, &out, "", 0);
    c->out = &out;
    exec_body(c, kids, n, fr);
    c->out = saved;
    return pgd__jv_str_nocopy(c->ar, out.p, out.n);
}

static struct pgd__jv *apply_chain(struct pgd__jctx *c, const struct pgd__jnode *chain,
                                   struct pgd__jv *value, struct pgd__jframe *fr)
{
    struct pgd__jframe *f = frame_new(c, fr);
    pgd__jframe_set(c->ar, f, " block", value);
    return eval(c, chain, f);
}

static void exec_for(struct pgd__jctx *c, const struct pgd__jnode *n, struct pgd__jframe *fr)
{
    long at = (long)n->off;
    struct pgd__jv *seq = eval(c, n->b, fr);
    size_t count;
    struct pgd__jv **items = pgd__jiter(c, seq, &count, (long)n->b->off);
    if (n->c) {   /* Jinja2 filters before the loop: loop.length counts the kept items */
        struct pgd__jv **kept = pgd__jalloc(c->ar, (count ? count : 1) * sizeof *kept);
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            struct pgd__jframe *f = frame_new(c, fr);
            assign(c, n->a, items[i], f);
            if (pgd__jv_truthy(eval(c, n->c, f)))
                kept[k++] = items[i];
        }
        items = kept;
        count = k;
    }
    if (count == 0) {   /* Jinja2's for-else runs when there was no iteration */
        exec_body(c, n->kids2, n->nkids2, fr);
        return;
    }
    struct pgd__jloop *loop = pgd__jalloc(c->ar, sizeof *loop);
    loop->items = items;
    loop->length = count;
    struct pgd__jv *lv = pgd__jalloc(c->ar, sizeof *lv);
    lv->kind = PGD__J_LOOP;
    lv->loop = loop;
    struct pgd__jframe *f = NULL;
    for (size_t i = 0; i < count; i++) {
        pgd__jtick(c, at);
        loop->index0 = i;
        /* each iteration starts from a fresh scope; reuse the last one's memory unless a
         * macro defined in it still refers to it */
        if (!f || f->captured)
            f = frame_new(c, fr);
        else
            f->n = 0;
        pgd__jframe_set(c->ar, f, "loop", lv);
        assign(c, n->a, items[i], f);
        exec_body(c, n->kids, n->nkids, f);
        if (c->loopctl == 1) {
            c->loopctl = 0;
            break;
        }
        c->loopctl = 0;
    }
}

static void exec_stmt(struct pgd__jctx *c, const struct pgd__jnode *n, struct pgd__jframe *fr)
{
    long at = (long)n->off;
    pgd__jtick(c, at);
    switch (n->kind) {
    case PGD__N_TEXT:
        emit(c, n->lit->s.p, n->lit->s.n, at);
        return;
    case PGD__N_OUTPUT: {
        struct pgd__jv *v = eval(c, n->a, fr);
        if (v->kind == PGD__J_STR) {
            emit(c, v->s.p, v->s.n, at);
        } else {
            struct pgd__jv *s = pgd__jv_to_str(c->ar, v);
            emit(c, s->s.p, s->s.n, at);
        }
        return;
    }
    case PGD__N_IF:
        if (pgd__jv_truthy(eval(c, n->a, fr)))
            exec_body(c, n->kids, n->nkids, fr);
        else
            exec_body(c, n->kids2, n->nkids2, fr);
        return;
    case PGD__N_FOR:
        exec_for(c, n, fr);
        return;
    case PGD__N_SET:
        assign(c, n->a, eval(c, n->b, fr), fr);
        return;
    case PGD__N_SET_BLOCK: {
        struct pgd__jv *v = capture(c, n->kids, n->nkids, fr);
        if (n->b)
            v = apply_chain(c, n->b, v, fr);
        assign(c, n->a, v, fr);
        return;
    }
    case PGD__N_MACRO: {
        struct pgd__jv *m = pgd__jalloc(c->ar, sizeof *m);
        m->kind = PGD__J_MACRO;
        m->m = pgd__jalloc(c->ar, sizeof *m->m);
        m->m->def = n;
        m->m->closure = fr;
        fr->captured = true;
        pgd__jframe_set(c->ar, fr, n->name, m);
        return;
    }
    case PGD__N_CALL_BLOCK: {
        /* the body becomes a macro named `caller`, passed to the called macro */
        struct pgd__jv *caller = pgd__jalloc(c->ar, sizeof *caller);
        caller->kind = PGD__J_MACRO;
        caller->m = pgd__jalloc(c->ar, sizeof *caller->m);
        caller->m->def = n;
        caller->m->closure = fr;
        fr->captured = true;
        const struct pgd__jnode *call = n->a;
        struct pgd__jv *fn = eval(c, call->a, fr);
        struct pgd__jargs a;
        eval_args(c, call, fr, &a, 1);
        a.kwn[a.nkw] = "caller";
        a.kwv[a.nkw] = caller;
        a.nkw++;
        struct pgd__jv *r = pgd__jv_to_str(c->ar, pgd__jcall(c, fn, &a, at));
        emit(c, r->s.p, r->s.n, at);
        return;
    }
    case PGD__N_BREAK:
        c->loopctl = 1;
        return;
    case PGD__N_CONTINUE:
        c->loopctl = 2;
        return;
    case PGD__N_WITH: {
        struct pgd__jframe *f = frame_new(c, fr);
        for (size_t i = 0; i < n->nnames; i++)
            pgd__jframe_set(c->ar, f, n->names[i], eval(c, n->kids2[i], fr));
        exec_body(c, n->kids, n->nkids, f);
        return;
    }
    case PGD__N_FILTER_BLOCK: {
        struct pgd__jv *v = capture(c, n->kids, n->nkids, fr);
        v = pgd__jv_to_str(c->ar, apply_chain(c, n->b, v, fr));
        emit(c, v->s.p, v->s.n, at);
        return;
    }
    case PGD__N_SCOPE:
        exec_body(c, n->kids, n->nkids, frame_new(c, fr));
        return;
    default:
        pgd__jerr(c, at, "expression used as a statement");
    }
}

static void exec_body(struct pgd__jctx *c, struct pgd__jnode *const *kids, size_t n,
                      struct pgd__jframe *fr)
{
    if (c->depth >= c->max_depth)
        pgd__jerr(c, n ? (long)kids[0]->off : -1, "template nested too deeply");
    c->depth++;
    for (size_t i = 0; i < n && !c->loopctl; i++)
        exec_stmt(c, kids[i], fr);
    c->depth--;
}

void pgd__jrender(struct pgd__jctx *c, const struct pgd__jnode *root, struct pgd__jframe *fr)
{
    exec_body(c, root->kids, root->nkids, fr);
}
