/* One token's bytes in the middle of a text (token_bytes.h): the decoder chain applied to a
 * single token, for the stages that work token by token. */
#include "runtime/tokenizer/token_bytes.h"
#include "runtime/tokenizer/tokenizer_internal.h"
#include <string.h>

/* Runs one decoder stage over cur[0, n) into next (emptied first); false: out of memory. */
static bool stage(const struct pgd__dec *d, const char *cur, size_t n, struct pgd__buf *next)
{
    pgd__buf_clear(next);
    unsigned char byte;
    char rep[4];
    switch (d->kind) {
    case PGD__DEC_BYTELEVEL:
        if (!pgd__bytelevel_unmap(cur, n, next) && !next->failed)
            pgd__buf_append(next, cur, n);      /* as detok.c: its own bytes */
        break;
    case PGD__DEC_BYTEFALLBACK:
        if (pgd__byte_token(cur, n, &byte))
            pgd__buf_append(next, &byte, 1);
        else
            pgd__buf_append(next, cur, n);
        break;
    case PGD__DEC_REPLACE:
        if (d->re)                              /* regex patterns: left as they are */
            pgd__buf_append(next, cur, n);
        else
            pgd__replace_all(cur, n, d->pat, d->patlen, d->content, d->clen, next);
        break;
    case PGD__DEC_METASPACE: {
        size_t rl = pgd__utf8_put(d->ch, rep);
        pgd__replace_all(cur, n, rep, rl, " ", 1, next);
        break;
    }
    default:                                    /* Fuse, Strip, and the rest: unchanged */
        pgd__buf_append(next, cur, n);
        break;
    }
    return !next->failed;
}

bool pgd__token_bytes(const struct pgd_tokenizer *tok, int32_t id, struct pgd__buf *out)
{
    size_t n;
    const char *s = pgd__token_str(tok, id, &n);
    if (!s)
        return false;
    if (tok->added_by_id[id] >= 0 || tok->n_decs == 0)
        return pgd__buf_append(out, s, n);
    struct pgd__buf a = { 0 }, b = { 0 };
    bool ok = pgd__buf_append(&a, s, n);
    for (size_t k = 0; ok && k < tok->n_decs; k++) {
        ok = stage(&tok->decs[k], a.p ? a.p : "", a.len, &b);
        struct pgd__buf t = a;
        a = b;
        b = t;
    }
    ok = ok && pgd__buf_append(out, a.p ? a.p : "", a.len);
    pgd__buf_fini(&a);
    pgd__buf_fini(&b);
    return ok;
}
