/* The Jinja2 interpreter behind chat templates: internal to libpagoda.
 *
 * Pipeline: source --lexer--> tokens --parser--> AST (struct pgd__jnode) --eval--> text.
 * It follows Jinja2 3.1 as configured by transformers' apply_chat_template: an immutable
 * sandbox, trim_blocks and lstrip_blocks on, the loopcontrols extension, and Python value
 * semantics (truthiness, `+` on strings and lists, int vs float printing, insertion-ordered
 * dicts).
 *
 * Memory: everything (tokens, AST, runtime values) lives in arenas. A template's AST lives in
 * the template's arena until the template is destroyed; a render's values live in a
 * per-render arena released when the render ends. Values are therefore never freed one by
 * one and may share structure freely.
 *
 * Errors: lexer, parser and evaluator report failures with pgd__jthrow*(), which longjmps to
 * the struct pgd__jfail the entry point set up; the arena is released there.
 *
 * Files: chat_template.c (the pgd_chat_template_* front), jinja_lexer.c, jinja_parse_expr.c
 * and jinja_parse_stmt.c (sharing jinja_parse.h), jinja_eval.c (the tree walker, frames,
 * calls), jinja_operators.c (what . [] + in < ... do to values, the loop object),
 * jinja_value.c (errors, arena, values, Python truthiness / equality / sort / str / repr),
 * jinja_json.c (JSON in and tojson out), jinja_strings.c (str methods, % formatting),
 * jinja_collection_methods.c (dict and list methods, slicing), jinja_globals.c (range, dict,
 * namespace, raise_exception, strftime_now), jinja_filters.c, jinja_tests.c. */
#ifndef PGD_RUNTIME_JINJA_H
#define PGD_RUNTIME_JINJA_H

#include <pagoda/status.h>
#include "runtime/base/utf8.h"
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- failure ---------------------------------------------------------------------------- */

struct pgd__jfail {
    jmp_buf jb;
    char *err;                  /* caller's buffer, may be NULL */
    size_t errlen;
    enum pgd_status st;
    const char *src;            /* normalized template source, for line/column */
    bool raised;                /* the failure came from raise_exception() */
};

/* Writes "line L, column C: message" (offset < 0: message only) and longjmps. */
_Noreturn void pgd__jthrow(struct pgd__jfail *f, enum pgd_status st, long offset,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 1-based line and column (in characters) of byte offset off in src. */
void pgd__jlinecol(const char *src, size_t off, int *line, int *col);

/* ---- arena ------------------------------------------------------------------------------ */

struct pgd__jchunk;
struct pgd__jarena {
    struct pgd__jchunk *head;
    size_t used;                /* bytes handed out so far */
    size_t limit;               /* 0: unlimited; above it allocation throws PGD_ERR_NOMEM */
    struct pgd__jfail *fail;    /* where allocation failures go */
};

void *pgd__jalloc(struct pgd__jarena *a, size_t n);           /* zeroed, 16-byte aligned */
/* Makes the arena array arr (capacity cap elements) hold need elements: its capacity grows
 * as pgd__grow_capacity says (doubling, at least min_cap), the elements are copied, and the
 * old array stays in the arena until the arena is released. Throws PGD_ERR_NOMEM. */
#define pgd__jreserve(a, arr, cap, need, min_cap) \
    pgd__jreserve_((a), &(arr), &(cap), (need), sizeof *(arr), (min_cap))
void pgd__jreserve_(struct pgd__jarena *a, void *arrp, size_t *cap, size_t need, size_t elem,
                    size_t min_cap);
char *pgd__jstrndup(struct pgd__jarena *a, const char *s, size_t n);  /* NUL-terminated */
void pgd__jarena_free(struct pgd__jarena *a);

/* A growable byte buffer in an arena. */
struct pgd__jbuf {
    char *p;
    size_t n, cap;
};
void pgd__jbuf_put(struct pgd__jarena *a, struct pgd__jbuf *b, const char *s, size_t n);
void pgd__jbuf_puts(struct pgd__jarena *a, struct pgd__jbuf *b, const char *s);
void pgd__jbuf_putc(struct pgd__jarena *a, struct pgd__jbuf *b, char c);
void pgd__jbuf_printf(struct pgd__jarena *a, struct pgd__jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- values ----------------------------------------------------------------------------- */

enum pgd__jkind {
    PGD__J_UNDEF,   /* a missing variable, attribute or key */
    PGD__J_NONE,
    PGD__J_BOOL,
    PGD__J_INT,
    PGD__J_FLOAT,
    PGD__J_STR,     /* UTF-8 */
    PGD__J_LIST,    /* also tuples (l.tuple) */
    PGD__J_DICT,    /* insertion-ordered */
    PGD__J_NS,      /* namespace(): a dict whose attributes may be assigned */
    PGD__J_MACRO,
    PGD__J_FUNC,    /* a builtin function, or a method bound to .call.self */
    PGD__J_LOOP,    /* the `loop` variable of a for loop */
};

struct pgd__jv;
struct pgd__jctx;
struct pgd__jnode;

/* Arguments of a call: positional values, then keyword names and values. */
struct pgd__jargs {
    struct pgd__jv **pos;
    size_t npos;
    const char **kwn;
    struct pgd__jv **kwv;
    size_t nkw;
};

typedef struct pgd__jv *(*pgd__jfn)(struct pgd__jctx *c, struct pgd__jv *self,
                                    const struct pgd__jargs *a, long at);

struct pgd__jloop {
    size_t index0, length;
    struct pgd__jv **items;     /* the (filtered) sequence, [length] */
    struct pgd__jv *changed;    /* what loop.changed() saw last, NULL before its first call */
};

struct pgd__jmacro {
    const struct pgd__jnode *def;       /* N_MACRO, or N_CALL_BLOCK for a `caller` */
    struct pgd__jframe *closure;        /* frame the macro was defined in */
};

struct pgd__jv {
    enum pgd__jkind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;      /* not necessarily NUL-terminated */
            size_t n;           /* bytes */
        } s;
        struct {
            struct pgd__jv **v;
            size_t n, cap;
            bool tuple;
        } l;
        struct {
            struct pgd__jv **k, **v;
            size_t n, cap;
        } d;
        struct pgd__jmacro *m;
        struct {
            pgd__jfn fn;
            struct pgd__jv *self;
            const char *name;
        } call;
        struct pgd__jloop *loop;
        struct {
            const char *hint;   /* the error an operation on it reports, or NULL */
        } u;
    };
};

extern struct pgd__jv pgd__j_none, pgd__j_true, pgd__j_false, pgd__j_undef;

struct pgd__jv *pgd__jv_int(struct pgd__jarena *a, int64_t i);
struct pgd__jv *pgd__jv_float(struct pgd__jarena *a, double f);
struct pgd__jv *pgd__jv_bool(bool b);
struct pgd__jv *pgd__jv_str(struct pgd__jarena *a, const char *p, size_t n);  /* copies */
struct pgd__jv *pgd__jv_str_nocopy(struct pgd__jarena *a, const char *p, size_t n);
struct pgd__jv *pgd__jv_cstr(struct pgd__jarena *a, const char *s);
struct pgd__jv *pgd__jv_list(struct pgd__jarena *a, size_t cap);
struct pgd__jv *pgd__jv_tuple2(struct pgd__jarena *a, struct pgd__jv *x, struct pgd__jv *y);
struct pgd__jv *pgd__jv_dict(struct pgd__jarena *a, size_t cap);
struct pgd__jv *pgd__jv_undef(struct pgd__jarena *a, const char *hint);
struct pgd__jv *pgd__jv_func(struct pgd__jarena *a, pgd__jfn fn, struct pgd__jv *self,
                             const char *name);

void pgd__jlist_push(struct pgd__jarena *a, struct pgd__jv *l, struct pgd__jv *x);
/* Dict lookup by Python equality of keys; NULL when absent. */
struct pgd__jv *pgd__jdict_get(const struct pgd__jv *d, const struct pgd__jv *key);
struct pgd__jv *pgd__jdict_gets(const struct pgd__jv *d, const char *key, size_t n);
void pgd__jdict_set(struct pgd__jarena *a, struct pgd__jv *d, struct pgd__jv *key,
                    struct pgd__jv *val);

bool pgd__jv_truthy(const struct pgd__jv *v);
/* Python `==`. */
bool pgd__jv_eq(const struct pgd__jv *x, const struct pgd__jv *y);
/* Python ordering: *out = -1/0/1; false when the kinds cannot be ordered. */
bool pgd__jv_cmp(const struct pgd__jv *x, const struct pgd__jv *y, int *out);
bool pgd__jv_is_num(const struct pgd__jv *v);   /* bool, int or float */
double pgd__jv_num(const struct pgd__jv *v);
const char *pgd__jv_typename(const struct pgd__jv *v);   /* Python's type name */

/* str(v) and repr(v), appended to b. */
void pgd__jv_str_to(struct pgd__jarena *a, struct pgd__jbuf *b, const struct pgd__jv *v);
void pgd__jv_repr_to(struct pgd__jarena *a, struct pgd__jbuf *b, const struct pgd__jv *v);
/* str(v) as a value (v itself when it already is a string). */
struct pgd__jv *pgd__jv_to_str(struct pgd__jarena *a, struct pgd__jv *v);
/* Python repr() of a float ("1.0", "1e+20", "0.1", "inf", "nan"). */
void pgd__jfloat_repr(double f, char *out, size_t outlen);

/* ---- UTF-8 helpers ---------------------------------------------------------------------- */

/* Decodes one code point at p (n >= 1 bytes left) by runtime/base/utf8.h; *len gets its
 * byte length (>= 1). A byte that does not begin a well-formed sequence is one character,
 * itself (0x80..0xFF), so that every byte string has a length and indexes. Encoding is
 * pgd__utf8_put. */
uint32_t pgd__jutf8_next(const char *p, size_t n, size_t *len);
size_t pgd__jutf8_count(const char *p, size_t n);
/* Byte offset of code point index i (clamped to n). */
size_t pgd__jutf8_offset(const char *p, size_t n, size_t i);
bool pgd__jis_space(uint32_t cp);   /* Python str.isspace() */

/* ---- JSON ------------------------------------------------------------------------------- */

struct json_t;
/* A jansson value as a template value (deep copy into the arena). */
struct pgd__jv *pgd__jv_from_json(struct pgd__jarena *a, const struct json_t *j);
/* Python json.dumps(v, ensure_ascii=ensure_ascii, indent=indent,
 * separators=(item_sep, key_sep), sort_keys=sort_keys). indent: NULL for none. Throws on
 * values JSON cannot hold. */
struct pgd__jdump {
    bool ensure_ascii, sort_keys;
    const char *indent;         /* NULL: everything on one line */
    const char *item_sep, *key_sep;
};
void pgd__jv_tojson(struct pgd__jctx *c, struct pgd__jbuf *b, const struct pgd__jv *v,
                    const struct pgd__jdump *opt, long at);

/* ---- lexer ------------------------------------------------------------------------------ */

enum pgd__jtok {
    PGD__T_EOF,
    PGD__T_DATA,        /* template text: .str */
    PGD__T_VAR_BEGIN,   /* {{ */
    PGD__T_VAR_END,     /* }} */
    PGD__T_BLOCK_BEGIN, /* {% */
    PGD__T_BLOCK_END,   /* %} */
    PGD__T_NAME,
    PGD__T_STRING,      /* .str: unescaped */
    PGD__T_INT,
    PGD__T_FLOAT,
    PGD__T_OP,          /* .op: one of the PGD__OP_* below */
};

enum pgd__jop {
    PGD__OP_ADD = 1, PGD__OP_SUB, PGD__OP_MUL, PGD__OP_DIV, PGD__OP_FLOORDIV, PGD__OP_MOD,
    PGD__OP_POW, PGD__OP_TILDE, PGD__OP_LBRACKET, PGD__OP_RBRACKET, PGD__OP_LPAREN,
    PGD__OP_RPAREN, PGD__OP_LBRACE, PGD__OP_RBRACE, PGD__OP_EQ, PGD__OP_NE, PGD__OP_GT,
    PGD__OP_GTEQ, PGD__OP_LT, PGD__OP_LTEQ, PGD__OP_ASSIGN, PGD__OP_DOT, PGD__OP_COLON,
    PGD__OP_PIPE, PGD__OP_COMMA, PGD__OP_SEMICOLON,
    /* not produced by the lexer: */
    PGD__OP_IN, PGD__OP_NOTIN,
};

struct pgd__jtoken {
    enum pgd__jtok type;
    int op;
    size_t off;                 /* byte offset in the source */
    const char *str;            /* names, strings, data (NUL-terminated, arena) */
    size_t len;
    int64_t i;
    double f;
};

/* Tokenizes src (already newline-normalized) into *out (arena array ending in T_EOF). */
void pgd__jlex(struct pgd__jarena *a, struct pgd__jfail *f, const char *src, size_t n,
               struct pgd__jtoken **out, size_t *ntok);

/* ---- AST -------------------------------------------------------------------------------- */

enum pgd__jnkind {
    /* statements */
    PGD__N_TEXT, PGD__N_OUTPUT, PGD__N_IF, PGD__N_FOR, PGD__N_SET, PGD__N_SET_BLOCK,
    PGD__N_MACRO, PGD__N_CALL_BLOCK, PGD__N_BREAK, PGD__N_CONTINUE, PGD__N_WITH,
    PGD__N_FILTER_BLOCK, PGD__N_SCOPE,
    /* expressions */
    PGD__E_LIT, PGD__E_NAME, PGD__E_ATTR, PGD__E_ITEM, PGD__E_SLICE, PGD__E_CALL,
    PGD__E_FILTER, PGD__E_TEST, PGD__E_NOT, PGD__E_NEG, PGD__E_POS, PGD__E_BIN, PGD__E_AND,
    PGD__E_OR, PGD__E_COND, PGD__E_LIST, PGD__E_TUPLE, PGD__E_DICT, PGD__E_CMP,
    PGD__E_BLOCKVAL,    /* the body text a filter block feeds its filters */
};

/* One node of the syntax tree. Which fields a kind uses:
 *  N_TEXT      lit
 *  N_OUTPUT    a = expression
 *  N_IF        a = condition, kids = body, kids2 = else body
 *  N_FOR       a = target (E_NAME or E_TUPLE of names), b = iterable, c = filter or NULL,
 *              kids = body, kids2 = else body
 *  N_SET       a = target (E_NAME, E_TUPLE or E_ATTR on a namespace), b = value
 *  N_SET_BLOCK a = target, b = filter chain over E_BLOCKVAL or NULL, kids = body
 *  N_MACRO     name, names = parameters, kids2 = defaults (NULL entries), kids = body
 *  N_CALL_BLOCK a = call expression, names/kids2 = caller parameters/defaults, kids = body
 *  N_WITH      names/kids2 = assignments, kids = body
 *  N_FILTER_BLOCK b = filter chain over E_BLOCKVAL, kids = body
 *  N_SCOPE     kids = body (the `generation` block)
 *  E_LIT       lit
 *  E_NAME      name
 *  E_ATTR      a = object, name
 *  E_ITEM      a = object, b = key
 *  E_SLICE     a = object, b/c/d = start/stop/step or NULL
 *  E_CALL      a = callee, kids = positional, names/kids2 = keyword arguments
 *  E_FILTER    a = operand, name, kids/names/kids2 = arguments
 *  E_TEST      same as E_FILTER; op = 1 when negated (`is not`)
 *  E_NOT/NEG/POS a
 *  E_BIN       op (PGD__OP_ADD ... PGD__OP_TILDE), a, b
 *  E_AND/E_OR  a, b
 *  E_COND      a = value if true, b = condition, c = value if false or NULL
 *  E_LIST/E_TUPLE kids
 *  E_DICT      kids = keys, kids2 = values
 *  E_CMP       a = first operand, kids = further operands, ops = operators */
struct pgd__jnode {
    enum pgd__jnkind kind;
    int op;
    size_t off;                 /* byte offset in the source, for errors */
    struct pgd__jnode *a, *b, *c, *d;
    struct pgd__jnode **kids, **kids2;
    size_t nkids, nkids2;
    const char *name;
    const char **names;
    size_t nnames;
    int *ops;
    struct pgd__jv *lit;
};

/* Parses a token stream into a statement list (N_SCOPE node). */
struct pgd__jnode *pgd__jparse(struct pgd__jarena *a, struct pgd__jfail *f,
                               const struct pgd__jtoken *toks, size_t ntok);

/* ---- evaluation ------------------------------------------------------------------------- */

struct pgd__jframe {
    struct pgd__jframe *parent;
    bool captured;              /* a macro closes over it: it may not be reused */
    const char **names;
    struct pgd__jv **vals;
    size_t n, cap;
};

struct pgd__jctx {
    struct pgd__jarena *ar;
    struct pgd__jfail *fail;
    struct pgd__jbuf *out;      /* where output goes now */
    struct pgd__jframe *globals;
    uint64_t steps, max_steps;  /* work budget: nodes evaluated, items iterated */
    int depth, max_depth;       /* nesting of evaluation (macro recursion) */
    int loopctl;                /* 1: break pending, 2: continue pending */
    size_t max_output;
};

_Noreturn void pgd__jerr(struct pgd__jctx *c, long at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Throws the UndefinedError an operation on an undefined value raises. */
_Noreturn void pgd__jerr_undef(struct pgd__jctx *c, long at, const struct pgd__jv *u);
void pgd__jtick(struct pgd__jctx *c, long at);      /* counts work; throws over budget */

void pgd__jframe_set(struct pgd__jarena *a, struct pgd__jframe *f, const char *name,
                     struct pgd__jv *v);
struct pgd__jv *pgd__jframe_get(const struct pgd__jframe *f, const char *name);

/* Renders the statement list root into c->out. */
void pgd__jrender(struct pgd__jctx *c, const struct pgd__jnode *root, struct pgd__jframe *fr);

/* Attribute and item access as Jinja's sandboxed getattr/getitem do them. */
struct pgd__jv *pgd__jgetattr(struct pgd__jctx *c, struct pgd__jv *obj, const char *name,
                              long at);
struct pgd__jv *pgd__jgetitem(struct pgd__jctx *c, struct pgd__jv *obj, struct pgd__jv *key,
                              long at);
/* Calls a callable value. */
struct pgd__jv *pgd__jcall(struct pgd__jctx *c, struct pgd__jv *fn, const struct pgd__jargs *a,
                           long at);
/* Python `item in container`, and the binary operators (PGD__OP_ADD ... PGD__OP_TILDE) and
 * comparisons (PGD__OP_EQ ... PGD__OP_LTEQ, PGD__OP_IN, PGD__OP_NOTIN). */
bool pgd__jcontains(struct pgd__jctx *c, struct pgd__jv *container, struct pgd__jv *item,
                    long at);
struct pgd__jv *pgd__jbinop(struct pgd__jctx *c, int op, struct pgd__jv *x, struct pgd__jv *y,
                            long at);
bool pgd__jcompare(struct pgd__jctx *c, int op, struct pgd__jv *x, struct pgd__jv *y, long at);
/* An int or bool as Python's int (True is 1): what arithmetic and unary +/- accept. */
static inline bool pgd__jv_is_intlike(const struct pgd__jv *v)
{
    return v->kind == PGD__J_INT || v->kind == PGD__J_BOOL;
}
static inline int64_t pgd__jv_ival(const struct pgd__jv *v)
{
    return v->kind == PGD__J_BOOL ? (int64_t)v->b : v->i;
}
/* The items of an iterable (list, tuple, dict keys, string characters); undefined is empty. */
struct pgd__jv **pgd__jiter(struct pgd__jctx *c, struct pgd__jv *v, size_t *n, long at);

/* ---- builtins --------------------------------------------------------------------------- */

/* The filter or test named name applied to v; throws when there is none. */
struct pgd__jv *pgd__jfilter(struct pgd__jctx *c, const char *name, struct pgd__jv *v,
                             const struct pgd__jargs *a, long at);
bool pgd__jtest(struct pgd__jctx *c, const char *name, struct pgd__jv *v,
                const struct pgd__jargs *a, long at);
bool pgd__jtest_exists(const char *name);
bool pgd__jfilter_exists(const char *name);
/* A method of a str, dict or list value bound to it, or NULL. */
struct pgd__jv *pgd__jmethod(struct pgd__jctx *c, struct pgd__jv *self, const char *name);
/* A builtin method by name; the str methods' table (jinja_strings.c) is pgd__jstr_methods. */
struct pgd__jmethod_def {
    const char *name;
    pgd__jfn fn;
};
extern const struct pgd__jmethod_def pgd__jstr_methods[];
extern const size_t pgd__jstr_nmethods;
/* Adds range, dict, namespace, raise_exception, strftime_now, cycler, joiner to f. */
void pgd__jglobals_install(struct pgd__jctx *c, struct pgd__jframe *f);

/* Argument i (or keyword kw) of a call, or NULL when absent. */
struct pgd__jv *pgd__jarg(const struct pgd__jargs *a, size_t i, const char *kw);
/* Argument parsing helpers that throw on a wrong type. */
const struct pgd__jv *pgd__jarg_str(struct pgd__jctx *c, const struct pgd__jargs *a, size_t i,
                                    const char *kw, long at);
/* An int argument (a bool counts, as in Python); def when absent or none. */
int64_t pgd__jarg_int(struct pgd__jctx *c, const struct pgd__jargs *a, size_t i, const char *kw,
                      int64_t def, long at);
/* String operations shared by methods and filters (Python semantics on code points). */
struct pgd__jv *pgd__jstr_strip(struct pgd__jctx *c, struct pgd__jv *s,
                                const struct pgd__jv *chars, int which);  /* 0 both, 1 l, 2 r */
struct pgd__jv *pgd__jstr_case(struct pgd__jctx *c, struct pgd__jv *s, char mode); /* u l t c */
struct pgd__jv *pgd__jstr_replace(struct pgd__jctx *c, struct pgd__jv *s,
                                  const struct pgd__jv *old, const struct pgd__jv *new_,
                                  int64_t count, long at);
/* Python's `fmt % args`. */
struct pgd__jv *pgd__jstr_percent(struct pgd__jctx *c, struct pgd__jv *fmt, struct pgd__jv *args,
                                  long at);
/* Stable merge sort of v[0..n) by cmp (negative, zero, positive), scratch in ar. */
void pgd__jsort(struct pgd__jarena *ar, struct pgd__jv **v, size_t n,
                int (*cmp)(void *ud, const struct pgd__jv *x, const struct pgd__jv *y), void *ud);
/* A str value as its code points (n of them, scratch in c->ar), and back. */
uint32_t *pgd__jstr_decode(struct pgd__jctx *c, const struct pgd__jv *s, size_t *n);
struct pgd__jv *pgd__jstr_encode(struct pgd__jctx *c, const uint32_t *cps, size_t n);
/* Python-style slicing of a list or string. */
struct pgd__jv *pgd__jslice(struct pgd__jctx *c, struct pgd__jv *obj, struct pgd__jv *start,
                            struct pgd__jv *stop, struct pgd__jv *step, long at);

#endif
