/* Decoders and incremental detokenization.
 *
 * The decoder chain of tokenizer.json (Replace, ByteFallback, Fuse, Strip, ByteLevel,
 * Metaspace, WordPiece, BPEDecoder, CTC; loaded by decoder_load.c) runs as a chain of
 * streaming stages: a token goes in at the top, each stage
 * passes on what it can already decide and holds back the rest (an incomplete UTF-8 sequence,
 * a run of <0xXX> tokens, a possible start of a Replace pattern, trailing Strip characters).
 * Batch decode is the same machine fed every id, then flushed, so the streamed deltas always
 * add up to the full decode. Stages after Fuse or ByteLevel see one fused string arriving in
 * chunks ("fused" stages). */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <stdlib.h>
#include <string.h>

#define REPL "\xEF\xBF\xBD" /* U+FFFD */

struct stage {
    struct pgd__buf hold; /* held-back input (see the file comment); CTC: the last token */
    struct pgd__buf out;  /* scratch */
    struct pgd__buf aux;  /* scratch (WordPiece's cleanup) */
    size_t count;         /* Strip: leading chars removed; Metaspace, WordPiece: tokens seen;
                           * BPEDecoder: a token is held; CTC: a token came before */
    bool lead_done;       /* Strip (fused): past the leading characters */
};
struct detok_priv {
    struct stage *st; /* [n_decs] */
    struct pgd__buf delta;
    bool any;         /* a token was output (no decoder: tokens joined with spaces) */
};

static enum pgd_status put(const struct pgd_tokenizer *t, struct detok_priv *p, size_t k,
                           const char *s, size_t n);

/* ByteLevel: a token is the bytes its characters stand for (or its own bytes when one of them
 * stands for none); the bytes of all tokens are read as UTF-8, lossily. */
static enum pgd_status bytelevel_put(const struct pgd_tokenizer *t, struct detok_priv *p, size_t k,
                                     const char *s, size_t n)
{
    struct stage *st = &p->st[k];
    if (!pgd__bytelevel_unmap(s, n, &st->hold) &&
        (st->hold.failed || !pgd__buf_append(&st->hold, s, n)))
        return PGD_ERR_NOMEM;
    /* Pass on all but an incomplete (still possibly valid) sequence at the end. */
    const unsigned char *h = (const unsigned char *)st->hold.p;
    size_t len = st->hold.len, i = 0, ok_end = 0;
    st->out.len = 0;
    if (len == 0)                    /* an empty piece, nothing held (hold may have no buffer) */
        return PGD_OK;
    while (i < len) {
        size_t l = pgd__utf8_next(h + i, len - i, NULL);
        if (l) {
            i += l;
            continue;
        }
        size_t bad = pgd__utf8_bad_len(h + i, len - i);
        if (i + bad == len && h[i] >= 0xC2 && h[i] <= 0xF4)
            break; /* may still complete */
        if (!pgd__buf_append(&st->out, h + ok_end, i - ok_end) ||
            !pgd__buf_append(&st->out, REPL, 3))
            return PGD_ERR_NOMEM;
        i += bad;
        ok_end = i;
    }
    if (!pgd__buf_append(&st->out, h + ok_end, i - ok_end))
        return PGD_ERR_NOMEM;
    memmove(st->hold.p, st->hold.p + i, len - i);
    st->hold.len = len - i;
    if (st->out.len == 0)
        return PGD_OK;
    /* out may be reused by put() downstream only through other stages' buffers */
    return put(t, p, k + 1, st->out.p, st->out.len);
}

bool pgd__byte_token(const char *s, size_t n, unsigned char *byte)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return false;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : (i == 3 && c == '+') ? -2 : -1;
        if (d == -1)
            return false;
        if (d == -2)
            continue; /* Rust's from_str_radix takes a leading '+' */
        v = v * 16 + d;
    }
    *byte = (unsigned char)v;
    return true;
}

static enum pgd_status fallback_flush(const struct pgd_tokenizer *t, struct detok_priv *p,
                                      size_t k)
{
    struct stage *st = &p->st[k];
    if (st->hold.len == 0)
        return PGD_OK;
    /* A run of byte tokens is one token when it is valid UTF-8, else one U+FFFD per byte. */
    size_t n = st->hold.len;
    st->hold.len = 0;
    const unsigned char *h = (const unsigned char *)st->hold.p;
    bool valid = true;
    for (size_t i = 0; i < n;) {
        size_t l = pgd__utf8_next(h + i, n - i, NULL);
        if (!l) {
            valid = false;
            break;
        }
        i += l;
    }
    if (valid) {
        /* hold is not touched again before put returns: stage k only receives from k-1 */
        return put(t, p, k + 1, st->hold.p, n);
    }
    for (size_t i = 0; i < n; i++) {
        enum pgd_status s = put(t, p, k + 1, REPL, 3);
        if (s)
            return s;
    }
    return PGD_OK;
}

static enum pgd_status replace_put(const struct pgd_tokenizer *t, struct detok_priv *p,
                                   size_t k, const char *s, size_t n)
{
    const struct pgd__dec *d = &t->decs[k];
    struct stage *st = &p->st[k];
    st->out.len = 0;
    if (d->re) { /* per token only (refused after Fuse/ByteLevel at load) */
        bool first_deleted;
        enum pgd_status r = pgd__regex_replace(d->re, s, n, d->content, d->clen, &st->out,
                                               &first_deleted);
        return r ? r : put(t, p, k + 1, st->out.p, st->out.len);
    }
    const char *src = s;
    size_t len = n;
    if (d->fused) {
        if (!pgd__buf_append(&st->hold, s, n))
            return PGD_ERR_NOMEM;
        src = st->hold.p;
        len = st->hold.len;
    }
    if (len == 0)                    /* an empty piece, nothing held: pass it on as it is */
        return d->fused ? PGD_OK : put(t, p, k + 1, s, n);
    size_t i = 0;
    while (d->patlen && i < len) {
        const char *hit = memmem(src + i, len - i, d->pat, d->patlen);
        if (!hit)
            break;
        if (!pgd__buf_append(&st->out, src + i, (size_t)(hit - (src + i))) ||
            !pgd__buf_append(&st->out, d->content, d->clen))
            return PGD_ERR_NOMEM;
        i = (size_t)(hit - src) + d->patlen;
    }
    size_t keep = 0;
    if (d->fused) /* the longest tail that may begin the pattern */
        for (size_t l = d->patlen ? d->patlen - 1 : 0; l > 0; l--)
            if (len - i >= l && !memcmp(src + len - l, d->pat, l)) {
                keep = l;
                break;
            }
    if (!pgd__buf_append(&st->out, src + i, len - i - keep))
        return PGD_ERR_NOMEM;
    if (d->fused) {
        memmove(st->hold.p, st->hold.p + len - keep, keep);
        st->hold.len = keep;
        if (st->out.len == 0)
            return PGD_OK;
    }
    return put(t, p, k + 1, st->out.p, st->out.len);
}

static enum pgd_status strip_put(const struct pgd_tokenizer *t, struct detok_priv *p, size_t k,
                                 const char *s, size_t n)
{
    const struct pgd__dec *d = &t->decs[k];
    struct stage *st = &p->st[k];
    const unsigned char *u = (const unsigned char *)s;
    st->out.len = 0;
    if (!d->fused) {
        size_t b = 0, e = n, cnt = 0, l;
        while (cnt < d->start && b < n && pgd__utf8_decode_valid(u + b, &l) == d->ch) {
            b += l;
            cnt++;
        }
        for (cnt = 0; cnt < d->stop && e > b; cnt++) {
            size_t c0;
            if (pgd__uc_last_char(s + b, e - b, &c0) != d->ch)
                break;
            e = b + c0;
        }
        return put(t, p, k + 1, s + b, e - b);
    }
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = pgd__utf8_decode_valid(u + i, &l);
        if (!st->lead_done) {
            if (c == d->ch && st->count < d->start) {
                st->count++;
                i += l;
                continue;
            }
            st->lead_done = true;
        }
        bool ok;
        if (d->stop && c == d->ch)
            ok = pgd__buf_append(&st->hold, s + i, l);
        else
            ok = pgd__buf_append(&st->out, st->hold.p, st->hold.len) &&
                 pgd__buf_append(&st->out, s + i, l);
        if (!(d->stop && c == d->ch))
            st->hold.len = 0;
        if (!ok)
            return PGD_ERR_NOMEM;
        i += l;
    }
    return st->out.len ? put(t, p, k + 1, st->out.p, st->out.len) : PGD_OK;
}

static enum pgd_status metaspace_put(const struct pgd_tokenizer *t, struct detok_priv *p,
                                     size_t k, const char *s, size_t n)
{
    const struct pgd__dec *d = &t->decs[k];
    struct stage *st = &p->st[k];
    bool first = st->count == 0;
    if (!d->fused)
        st->count++;
    st->out.len = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = pgd__utf8_decode_valid((const unsigned char *)s + i, &l);
        bool ok = true;
        if (c == d->ch) {
            if (!(first && d->strip_first))
                ok = pgd__buf_append(&st->out, " ", 1);
        } else
            ok = pgd__buf_append(&st->out, s + i, l);
        if (!ok)
            return PGD_ERR_NOMEM;
        i += l;
    }
    if (d->fused && st->out.len == 0)
        return PGD_OK;
    return put(t, p, k + 1, st->out.p, st->out.len);
}

/* WordPiece's cleanup of s into out (aux scratch): `tokenizers` runs these replacements one
 * after the other over the token. */
static bool cleanup(const char *s, size_t n, struct pgd__buf *out, struct pgd__buf *aux)
{
    static const char *const pairs[][2] = {
        { " .", "." }, { " ?", "?" }, { " !", "!" }, { " ,", "," }, { " ' ", "'" },
        { " n't", "n't" }, { " 'm", "'m" }, { " do not", " don't" }, { " 's", "'s" },
        { " 've", "'ve" }, { " 're", "'re" },
    };
    out->len = 0;
    if (!pgd__buf_append(out, s, n))
        return false;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        aux->len = 0;
        if (!pgd__replace_all(out->p, out->len, pairs[i][0], strlen(pairs[i][0]), pairs[i][1],
                              strlen(pairs[i][1]), aux))
            return false;
        struct pgd__buf x = *out;
        *out = *aux;
        *aux = x;
    }
    return true;
}

/* WordPiece: after the first token, a token starting with the prefix loses it (once), any
 * other gets a space in front; then the cleanup. */
static enum pgd_status wordpiece_put(const struct pgd_tokenizer *t, struct detok_priv *p,
                                     size_t k, const char *s, size_t n)
{
    const struct pgd__dec *d = &t->decs[k];
    struct stage *st = &p->st[k];
    st->hold.len = 0;
    bool ok = true;
    if (st->count++ > 0) {
        if (n >= d->patlen && !memcmp(s, d->pat, d->patlen)) {
            s += d->patlen;
            n -= d->patlen;
        } else
            ok = pgd__buf_append(&st->hold, " ", 1);
    }
    ok = ok && pgd__buf_append(&st->hold, s, n);
    if (ok && d->cleanup)
        ok = cleanup(st->hold.p, st->hold.len, &st->out, &st->aux);
    if (!ok)
        return PGD_ERR_NOMEM;
    const struct pgd__buf *res = d->cleanup ? &st->out : &st->hold;
    return put(t, p, k + 1, res->p, res->len);
}

/* BPEDecoder: the suffix becomes a space in every token but the last, where it goes. The
 * stage holds one token back until it knows whether another follows. */
static enum pgd_status bpe_suffix_emit(const struct pgd_tokenizer *t, struct detok_priv *p,
                                       size_t k, bool last)
{
    const struct pgd__dec *d = &t->decs[k];
    struct stage *st = &p->st[k];
    st->out.len = 0;
    if (!pgd__replace_all(st->hold.p, st->hold.len, d->pat, d->patlen, last ? "" : " ",
                          last ? 0 : 1, &st->out))
        return PGD_ERR_NOMEM;
    st->count = 0;
    st->hold.len = 0;
    return put(t, p, k + 1, st->out.p, st->out.len);
}

static enum pgd_status bpe_suffix_put(const struct pgd_tokenizer *t, struct detok_priv *p,
                                      size_t k, const char *s, size_t n)
{
    struct stage *st = &p->st[k];
    enum pgd_status r = st->count ? bpe_suffix_emit(t, p, k, false) : PGD_OK;
    if (r)
        return r;
    st->count = 1;
    return pgd__buf_append(&st->hold, s, n) ? PGD_OK : PGD_ERR_NOMEM;
}

/* CTC: a token equal to the one before it goes; the pad token is removed; with cleanup,
 * WordPiece's cleanup and the word delimiter -> " "; tokens left empty go. */
static enum pgd_status ctc_put(const struct pgd_tokenizer *t, struct detok_priv *p, size_t k,
                               const char *s, size_t n)
{
    const struct pgd__dec *d = &t->decs[k];
    struct stage *st = &p->st[k];
    if (st->count && st->hold.len == n && !memcmp(st->hold.p, s, n))
        return PGD_OK; /* hold: the previous token, as it came in */
    st->count = 1;
    st->hold.len = 0;
    if (!pgd__buf_append(&st->hold, s, n))
        return PGD_ERR_NOMEM;
    st->out.len = 0;
    if (!pgd__replace_all(s, n, d->pat, d->patlen, "", 0, &st->out))
        return PGD_ERR_NOMEM;
    if (d->cleanup) {
        struct pgd__buf c = { 0 };
        bool ok = cleanup(st->out.p, st->out.len, &c, &st->aux);
        st->out.len = 0;
        ok = ok && pgd__replace_all(c.p, c.len, d->content, d->clen, " ", 1, &st->out);
        pgd__buf_fini(&c);
        if (!ok)
            return PGD_ERR_NOMEM;
    }
    return st->out.len ? put(t, p, k + 1, st->out.p, st->out.len) : PGD_OK;
}

static enum pgd_status put(const struct pgd_tokenizer *t, struct detok_priv *p, size_t k,
                           const char *s, size_t n)
{
    if (k == t->n_decs) {
        if (t->no_decoder && p->any && !pgd__buf_append(&p->delta, " ", 1))
            return PGD_ERR_NOMEM;
        p->any = true;
        return pgd__buf_append(&p->delta, s, n) ? PGD_OK : PGD_ERR_NOMEM;
    }
    switch (t->decs[k].kind) {
    case PGD__DEC_BYTELEVEL:
        return bytelevel_put(t, p, k, s, n);
    case PGD__DEC_FUSE:
        return n ? put(t, p, k + 1, s, n) : PGD_OK;
    case PGD__DEC_BYTEFALLBACK: {
        unsigned char b;
        if (pgd__byte_token(s, n, &b))
            return pgd__buf_append(&p->st[k].hold, &b, 1) ? PGD_OK : PGD_ERR_NOMEM;
        enum pgd_status r = fallback_flush(t, p, k);
        return r ? r : put(t, p, k + 1, s, n);
    }
    case PGD__DEC_REPLACE:
        return replace_put(t, p, k, s, n);
    case PGD__DEC_STRIP:
        return strip_put(t, p, k, s, n);
    case PGD__DEC_METASPACE:
        return metaspace_put(t, p, k, s, n);
    case PGD__DEC_WORDPIECE:
        return wordpiece_put(t, p, k, s, n);
    case PGD__DEC_BPE:
        return bpe_suffix_put(t, p, k, s, n);
    case PGD__DEC_CTC:
        return ctc_put(t, p, k, s, n);
    }
    return PGD_ERR_INTERNAL;
}

/* Flushes stage k and everything after it. */
static enum pgd_status flush_from(const struct pgd_tokenizer *t, struct detok_priv *p, size_t k)
{
    for (; k < t->n_decs; k++) {
        const struct pgd__dec *d = &t->decs[k];
        struct stage *st = &p->st[k];
        enum pgd_status r = PGD_OK;
        switch (d->kind) {
        case PGD__DEC_BYTELEVEL:
            if (st->hold.len) {
                st->out.len = 0;
                if (!pgd__utf8_append_lossy(&st->out, st->hold.p, st->hold.len))
                    return PGD_ERR_NOMEM;
                st->hold.len = 0;
                r = put(t, p, k + 1, st->out.p, st->out.len);
            }
            break;
        case PGD__DEC_BYTEFALLBACK:
            r = fallback_flush(t, p, k);
            break;
        case PGD__DEC_REPLACE:
            if (d->fused && st->hold.len) {
                st->out.len = 0;
                if (!pgd__buf_append(&st->out, st->hold.p, st->hold.len))
                    return PGD_ERR_NOMEM;
                st->hold.len = 0;
                r = put(t, p, k + 1, st->out.p, st->out.len);
            }
            break;
        case PGD__DEC_STRIP:
            if (d->fused && st->hold.len) {
                /* drop up to `stop` trailing characters: they are all d->ch */
                size_t chars = 0, cut = st->hold.len;
                while (cut > 0 && chars < d->stop) {
                    cut--;
                    while (cut > 0 && ((unsigned char)st->hold.p[cut] & 0xC0) == 0x80)
                        cut--;
                    chars++;
                }
                st->out.len = 0;
                if (!pgd__buf_append(&st->out, st->hold.p, cut))
                    return PGD_ERR_NOMEM;
                st->hold.len = 0;
                if (st->out.len)
                    r = put(t, p, k + 1, st->out.p, st->out.len);
            }
            st->count = 0;
            st->lead_done = false;
            break;
        case PGD__DEC_METASPACE:
        case PGD__DEC_WORDPIECE:
            st->count = 0;
            break;
        case PGD__DEC_BPE:
            if (st->count)
                r = bpe_suffix_emit(t, p, k, true);
            break;
        case PGD__DEC_CTC:
            st->count = 0;
            st->hold.len = 0;
            break;
        case PGD__DEC_FUSE:
            break;
        }
        if (r)
            return r;
    }
    p->any = false;
    return PGD_OK;
}

static void priv_free(struct detok_priv *p, size_t n)
{
    if (!p)
        return;
    for (size_t i = 0; i < n && p->st; i++) {
        pgd__buf_fini(&p->st[i].hold);
        pgd__buf_fini(&p->st[i].out);
        pgd__buf_fini(&p->st[i].aux);
    }
    free(p->st);
    pgd__buf_fini(&p->delta);
    free(p);
}

enum pgd_status pgd_detok_init(struct pgd_detok *d, const struct pgd_tokenizer *tok,
                               bool skip_special)
{
    PGD_ASSERT(d && tok);
    d->tok = tok;
    d->skip_special = skip_special;
    struct detok_priv *p = calloc(1, sizeof *p);
    if (!p || !(p->st = calloc(tok->n_decs + 1, sizeof *p->st))) {
        free(p);
        d->priv = NULL;
        return PGD_ERR_NOMEM;
    }
    d->priv = p;
    return PGD_OK;
}

/* Feeds one id; what becomes final is appended to the delta buffer. */
static enum pgd_status feed(struct pgd_detok *d, int32_t id)
{
    const struct pgd_tokenizer *t = d->tok;
    size_t n;
    const char *s = pgd__token_str(t, id, &n);
    if (!s)
        return PGD_OK; /* ids without a token are skipped, as `tokenizers` skips them */
    if (d->skip_special && pgd_tokenizer_is_special(t, id))
        return PGD_OK;
    return put(t, d->priv, 0, s, n);
}

enum pgd_status pgd_detok_push(struct pgd_detok *d, int32_t id, const char **delta,
                               size_t *delta_len)
{
    struct detok_priv *p = d->priv;
    p->delta.len = 0;
    enum pgd_status st = feed(d, id);
    *delta = p->delta.p ? p->delta.p : "";
    *delta_len = p->delta.len;
    return st;
}

enum pgd_status pgd_detok_flush(struct pgd_detok *d, const char **delta, size_t *delta_len)
{
    struct detok_priv *p = d->priv;
    p->delta.len = 0;
    enum pgd_status st = flush_from(d->tok, p, 0);
    *delta = p->delta.p ? p->delta.p : "";
    *delta_len = p->delta.len;
    return st;
}

void pgd_detok_fini(struct pgd_detok *d)
{
    if (d && d->priv)
        priv_free(d->priv, d->tok->n_decs + 1);
    if (d)
        d->priv = NULL;
}

enum pgd_status pgd_tokenizer_decode(const struct pgd_tokenizer *tok, const int32_t *ids, size_t n,
                                     bool skip_special, char **text, size_t *text_len, char *err,
                                     size_t errlen)
{
    struct pgd_detok d;
    *text = NULL;
    *text_len = 0;
    if (pgd_detok_init(&d, tok, skip_special))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "decode: out of memory");
    struct detok_priv *p = d.priv;
    enum pgd_status st = PGD_OK;
    for (size_t i = 0; i < n && !st; i++)
        st = feed(&d, ids[i]);
    if (!st)
        st = flush_from(tok, p, 0);
    if (!st && !pgd__buf_grow(&p->delta, 0))
        st = PGD_ERR_NOMEM;
    if (st) {
        pgd_detok_fini(&d);
        return pgd_errf(err, errlen, st, "decode: %s", pgd_status_str(st));
    }
    p->delta.p[p->delta.len] = '\0';
    *text = p->delta.p;
    *text_len = p->delta.len;
    p->delta.p = NULL;
    pgd_detok_fini(&d);
    return PGD_OK;
}
