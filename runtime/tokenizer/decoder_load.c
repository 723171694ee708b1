/* Loading the decoder chain of tokenizer.json ("decoder") into the stages runtime/tokenizer/detok.c
 * runs: Sequences flatten, and each stage learns whether it sees tokens or the one fused
 * string (after Fuse or ByteLevel). Field defaults are those of `tokenizers`. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void dec_free(struct pgd__dec *d)
{
    free(d->pat);
    free(d->content);
    if (d->re)
        pcre2_code_free(d->re);
}

/* A copy of j[key] (a string; def where absent) into *out, *len. */
static enum pgd_status string_field(const struct pgd_tokenizer *t, json_t *j, const char *type,
                                    const char *key, const char *def, char **out, size_t *len,
                                    char *err, size_t errlen)
{
    json_t *v = json_object_get(j, key);
    if (v && !json_is_string(v))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: decoder %s: \"%s\" is not a string",
                        t->name, type, key);
    const char *s = v ? json_string_value(v) : def;
    *len = v ? json_string_length(v) : strlen(def);
    return (*out = pgd__dupn(s, *len)) ? PGD_OK : PGD_ERR_NOMEM;
}

static bool bool_field(json_t *j, const char *key, bool def)
{
    json_t *v = json_object_get(j, key);
    return v ? json_is_true(v) : def;
}

static enum pgd_status load_replace(const struct pgd_tokenizer *t, json_t *j, struct pgd__dec *d,
                                    char *err, size_t errlen)
{
    json_t *pat = json_object_get(j, "pattern"), *c = json_object_get(j, "content");
    json_t *str = json_object_get(pat, "String"), *re = json_object_get(pat, "Regex");
    if ((!json_is_string(str) && !json_is_string(re)) || !json_is_string(c))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: decoder Replace needs a \"pattern\" "
                        "(String or Regex) and a \"content\" string", t->name);
    d->kind = PGD__DEC_REPLACE;
    if (json_is_string(re)) {
        char msg[512];
        if (!(d->re = pgd__regex_compile(json_string_value(re), json_string_length(re), msg,
                                         sizeof msg)))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: decoder Replace: %s", t->name, msg);
    } else {
        d->patlen = json_string_length(str);
        if (!(d->pat = pgd__dupn(json_string_value(str), d->patlen)))
            return PGD_ERR_NOMEM;
    }
    /* content is literal: tokenizers expands no $1 in a decoder either */
    d->clen = json_string_length(c);
    return (d->content = pgd__dupn(json_string_value(c), d->clen)) ? PGD_OK : PGD_ERR_NOMEM;
}

static enum pgd_status load_strip(const struct pgd_tokenizer *t, json_t *j, struct pgd__dec *d,
                                  char *err, size_t errlen)
{
    const unsigned char *cs = (const unsigned char *)pgd__jstr(j, "content");
    size_t n = cs ? strlen((const char *)cs) : 0, l;
    if (!n || pgd__utf8_next(cs, n, NULL) != n)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: decoder Strip: \"content\" must be one character", t->name);
    d->kind = PGD__DEC_STRIP;
    d->ch = pgd__utf8_decode_valid(cs, &l);
    d->start = (size_t)json_integer_value(json_object_get(j, "start"));
    d->stop = (size_t)json_integer_value(json_object_get(j, "stop"));
    return PGD_OK;
}

static enum pgd_status load_metaspace(const struct pgd_tokenizer *t, json_t *j,
                                      struct pgd__dec *d, char *err, size_t errlen)
{
    const char *rep;
    size_t rl, l;
    enum pgd__prepend_scheme scheme;
    bool split;
    enum pgd_status st = pgd__metaspace_settings(t, j, "decoder", &rep, &rl, &scheme, &split,
                                                 err, errlen);
    if (st)
        return st;
    d->kind = PGD__DEC_METASPACE;
    d->ch = pgd__utf8_decode_valid((const unsigned char *)rep, &l);
    /* `tokenizers` drops the replacement from the first token (all of them) unless the
     * scheme is never; "first" and "always" decode alike */
    d->strip_first = scheme != PGD__PREPEND_NEVER;
    return PGD_OK;
}

/* Fills *d from the decoder j of type ty (not Sequence). */
static enum pgd_status load_one(const struct pgd_tokenizer *t, const char *ty, json_t *j,
                                struct pgd__dec *d, char *err, size_t errlen)
{
    if (!strcmp(ty, "ByteLevel")) {
        d->kind = PGD__DEC_BYTELEVEL;
        return PGD_OK;
    }
    if (!strcmp(ty, "Fuse")) {
        d->kind = PGD__DEC_FUSE;
        return PGD_OK;
    }
    if (!strcmp(ty, "ByteFallback")) {
        d->kind = PGD__DEC_BYTEFALLBACK;
        return PGD_OK;
    }
    if (!strcmp(ty, "Replace"))
        return load_replace(t, j, d, err, errlen);
    if (!strcmp(ty, "Strip"))
        return load_strip(t, j, d, err, errlen);
    if (!strcmp(ty, "Metaspace"))
        return load_metaspace(t, j, d, err, errlen);
    if (!strcmp(ty, "WordPiece")) {
        d->kind = PGD__DEC_WORDPIECE;
        d->cleanup = bool_field(j, "cleanup", true);
        return string_field(t, j, ty, "prefix", "##", &d->pat, &d->patlen, err, errlen);
    }
    if (!strcmp(ty, "BPEDecoder")) {
        d->kind = PGD__DEC_BPE;
        return string_field(t, j, ty, "suffix", "</w>", &d->pat, &d->patlen, err, errlen);
    }
    if (!strcmp(ty, "CTC")) {
        d->kind = PGD__DEC_CTC;
        d->cleanup = bool_field(j, "cleanup", true);
        enum pgd_status st = string_field(t, j, ty, "pad_token", "<pad>", &d->pat, &d->patlen,
                                          err, errlen);
        return st ? st : string_field(t, j, ty, "word_delimiter_token", "|", &d->content,
                                      &d->clen, err, errlen);
    }
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: decoder type \"%s\" is not supported",
                    t->name, ty);
}

static enum pgd_status add_dec(struct pgd_tokenizer *t, json_t *j, bool *fused, char *err,
                               size_t errlen)
{
    const char *ty = pgd__jstr(j, "type");
    if (!ty)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: decoder without a \"type\"", t->name);
    if (!strcmp(ty, "Sequence")) {
        json_t *list = json_object_get(j, "decoders");
        if (!json_is_array(list))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: decoder Sequence without a \"decoders\" array", t->name);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            enum pgd_status st = add_dec(t, e, fused, err, errlen);
            if (st)
                return st;
        }
        return PGD_OK;
    }
    struct pgd__dec d = { .fused = *fused };
    enum pgd_status st = load_one(t, ty, j, &d, err, errlen);
    /* After Fuse or ByteLevel, `tokenizers` hands the next decoders one string; the stages
     * that work token by token (or, for a regex, on the whole string at once) cannot run on
     * it as it streams in. No published tokenizer.json puts them there. */
    bool per_token = d.kind == PGD__DEC_BYTELEVEL || d.kind == PGD__DEC_BYTEFALLBACK ||
                     d.kind == PGD__DEC_WORDPIECE || d.kind == PGD__DEC_BPE ||
                     d.kind == PGD__DEC_CTC || d.re;
    if (!st && d.fused && per_token)
        st = pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: decoder %s%s after Fuse or "
                      "ByteLevel is not supported", t->name, ty, d.re ? " with a Regex" : "");
    if (d.kind == PGD__DEC_BYTELEVEL || d.kind == PGD__DEC_FUSE)
        *fused = true;
    struct pgd__dec *v = st ? NULL : realloc(t->decs, (t->n_decs + 1) * sizeof *v);
    if (!v) {
        dec_free(&d);
        return st ? st : PGD_ERR_NOMEM;
    }
    t->decs = v;
    t->decs[t->n_decs++] = d;
    return PGD_OK;
}

enum pgd_status pgd__load_decoder(struct pgd_tokenizer *t, const void *json, char *err,
                                  size_t errlen)
{
    json_t *j = (json_t *)json;
    if (!j || json_is_null(j)) {
        t->no_decoder = true;
        return PGD_OK;
    }
    if (!json_is_object(j))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"decoder\" is not an object", t->name);
    bool fused = false;
    return add_dec(t, j, &fused, err, errlen);
}
