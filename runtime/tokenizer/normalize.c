/* Normalizers (tokenizer.json "normalizer"): loading them and running the chain over a text.
 * Unicode forms go through utf8proc; the per-character ones (Lowercase, StripAccents, Nmt,
 * ByteLevel and BertNormalizer's steps) use the character classes of `tokenizers`
 * (runtime/tokenizer/unicode_class.c); Replace with a regex through PCRE2; Precompiled in
 * runtime/tokenizer/precompiled.c. BertNormalizer is loaded as the sequence of steps it runs. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static bool is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* Unicode normalization of s into out. ASCII stretches cannot change and cannot combine
 * with what follows them, so only the runs holding non-ASCII bytes (plus the ASCII character
 * just before, which a combining mark may compose with) go through utf8proc. */
static bool unicode_normalize(utf8proc_option_t opts, const char *s, size_t n,
                              struct pgd__buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && (unsigned char)s[j] < 0x80)
            j++;
        if (j == n)
            return pgd__buf_append(out, s + i, n - i);
        size_t run = j > i ? j - 1 : j; /* keep one ASCII char as a possible base */
        if (!pgd__buf_append(out, s + i, run - i))
            return false;
        size_t e = j;
        while (e < n && !((unsigned char)s[e] < 0x80 && (e + 1 == n || (unsigned char)s[e + 1] < 0x80)))
            e++;
        /* s[run..e) holds the non-ASCII run (and ends before an ASCII char followed by ASCII
         * or the end). */
        utf8proc_uint8_t *res = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s + run,
                                          (utf8proc_ssize_t)(e - run), &res, opts);
        if (r < 0) {
            free(res);
            if (!pgd__buf_append(out, s + run, e - run)) /* should not happen: input is valid */
                return false;
        } else {
            bool ok = pgd__buf_append(out, res, (size_t)r);
            free(res);
            if (!ok)
                return false;
        }
        i = e;
    }
    return true;
}

/* What a per-character normalizer makes of c: up to 3 characters in out; 0 deletes it. */
static size_t map_char(enum pgd__norm_kind kind, uint32_t c, uint32_t out[3])
{
    switch (kind) {
    case PGD__NORM_LOWERCASE:
        return pgd__uc_lower(c, out);
    case PGD__NORM_STRIP_ACCENTS:
        out[0] = c;
        return pgd__uc_is_mark(c) ? 0 : 1;
    case PGD__NORM_BERT_STRIP: /* after NFD: drops nonspacing marks (Mn) */
        out[0] = c;
        return pgd__uc_is_nonspacing(c) ? 0 : 1;
    case PGD__NORM_NMT:
        /* tokenizers: drops these control characters, maps these spaces to ' ' */
        if ((c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F ||
            c == 0x8F || c == 0x9F)
            return 0;
        out[0] = c == 0x9 || c == 0xA || c == 0xC || c == 0xD || c == 0x1680 ||
                         (c >= 0x200B && c <= 0x200F) || c == 0x2028 || c == 0x2029 ||
                         c == 0x2581 || c == 0xFEFF || c == 0xFFFD ? ' ' : c;
        return 1;
    case PGD__NORM_BERT_CLEAN:
        /* tokenizers: drops NUL, U+FFFD and control characters (not \t\n\r), then maps
         * whitespace (\t\n\r included) to ' ' */
        if (c == 0 || c == 0xFFFD || pgd__uc_is_bert_control(c))
            return 0;
        out[0] = pgd__uc_is_white_space(c) ? ' ' : c;
        return 1;
    case PGD__NORM_BERT_CHINESE: /* a space on each side of a CJK ideograph */
        if (!pgd__uc_is_chinese(c))
            break;
        out[0] = ' ';
        out[1] = c;
        out[2] = ' ';
        return 3;
    default:
        break;
    }
    out[0] = c;
    return 1;
}

/* Runs a per-character normalizer over s[0..n) into out; *first_deleted tells whether the
 * first character was deleted. */
static bool map_chars(enum pgd__norm_kind kind, const char *s, size_t n, struct pgd__buf *out,
                      bool *first_deleted)
{
    *first_deleted = false;
    for (size_t i = 0, k; i < n; i += k) {
        if ((unsigned char)s[i] < 0x80 && kind != PGD__NORM_NMT && kind != PGD__NORM_BERT_CLEAN &&
            kind != PGD__NORM_LOWERCASE) {
            k = 1; /* no ASCII character is a mark or an ideograph */
            if (!pgd__buf_append(out, s + i, 1))
                return false;
            continue;
        }
        uint32_t m[3];
        size_t cnt = map_char(kind, pgd__utf8_decode_valid((const unsigned char *)s + i, &k), m);
        if (cnt == 0 && i == 0)
            *first_deleted = true;
        for (size_t j = 0; j < cnt; j++) {
            char enc[4];
            if (!pgd__buf_append(out, enc, pgd__utf8_put(m[j], enc)))
                return false;
        }
    }
    return true;
}

/* ByteLevel: each byte becomes the character of GPT-2's byte alphabet that stands for it. */
static bool map_bytes(const char *s, size_t n, struct pgd__buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        if (!pgd__buf_append(out, enc, pgd__utf8_put(pgd__bytelevel_char((uint8_t)s[i]), enc)))
            return false;
    }
    return true;
}

static bool strip_spaces(const struct pgd__norm *nm, const char *s, size_t n,
                         struct pgd__buf *out, bool *first_deleted)
{
    size_t b = 0, e = n, cs, k;
    while (nm->left && b < e &&
           pgd__uc_is_white_space(pgd__utf8_decode_valid((const unsigned char *)s + b, &k)))
        b += k;
    while (nm->right && e > b && pgd__uc_is_white_space(pgd__uc_last_char(s + b, e - b, &cs)))
        e = b + cs;
    *first_deleted = b > 0;
    return pgd__buf_append(out, s + b, e - b);
}

/* One normalizer from in[0..n) into out (empty on entry). *first_deleted: the first character
 * of in was deleted (see pgd__normalize). */
static enum pgd_status normalize_one(const struct pgd__norm *nm, const char *in, size_t n,
                                     struct pgd__buf *out, bool *first_deleted)
{
    *first_deleted = false;
    bool ok = true;
    switch (nm->kind) {
    case PGD__NORM_NFC:
    case PGD__NORM_NFD:
    case PGD__NORM_NFKC:
    case PGD__NORM_NFKD: {
        if (is_ascii(in, n))
            return pgd__buf_append(out, in, n) ? PGD_OK : PGD_ERR_NOMEM;
        utf8proc_option_t o = UTF8PROC_STABLE;
        o |= (nm->kind == PGD__NORM_NFC || nm->kind == PGD__NORM_NFKC) ? UTF8PROC_COMPOSE
                                                                       : UTF8PROC_DECOMPOSE;
        if (nm->kind == PGD__NORM_NFKC || nm->kind == PGD__NORM_NFKD)
            o |= UTF8PROC_COMPAT;
        ok = unicode_normalize(o, in, n, out);
        break;
    }
    case PGD__NORM_PREPEND: /* tokenizers prepends nothing to an empty string */
        ok = n == 0 || (pgd__buf_append(out, nm->a, nm->alen) && pgd__buf_append(out, in, n));
        break;
    case PGD__NORM_REPLACE:
        if (nm->re) /* content is literal: tokenizers expands no $1 here */
            return pgd__regex_replace(nm->re, in, n, nm->b, nm->blen, out, first_deleted);
        /* deleting a match at the start leaves a later character first */
        *first_deleted = nm->alen && !nm->blen && n >= nm->alen && !memcmp(in, nm->a, nm->alen);
        ok = pgd__replace_all(in, n, nm->a, nm->alen, nm->b, nm->blen, out);
        break;
    case PGD__NORM_STRIP:
        ok = strip_spaces(nm, in, n, out, first_deleted);
        break;
    case PGD__NORM_BYTELEVEL:
        ok = map_bytes(in, n, out);
        break;
    case PGD__NORM_PRECOMPILED:
        ok = pgd__precompiled_normalize(nm, in, n, out, first_deleted);
        break;
    case PGD__NORM_LOWERCASE:
    case PGD__NORM_STRIP_ACCENTS:
    case PGD__NORM_NMT:
    case PGD__NORM_BERT_CLEAN:
    case PGD__NORM_BERT_CHINESE:
    case PGD__NORM_BERT_STRIP:
        ok = map_chars(nm->kind, in, n, out, first_deleted);
        break;
    }
    return ok ? PGD_OK : PGD_ERR_NOMEM;
}

enum pgd_status pgd__normalize(const struct pgd__norm *v, size_t n, const char *s, size_t len,
                               struct pgd__buf *out, struct pgd__buf *tmp, bool *at_origin)
{
    bool origin = true;
    out->len = 0;
    if (!pgd__buf_append(out, s, len))
        return PGD_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        tmp->len = 0;
        bool first_deleted;
        enum pgd_status st = normalize_one(&v[k], out->p, out->len, tmp, &first_deleted);
        if (st)
            return st;
        /* tokenizers aligns each output character with the input; once the first one is
         * deleted, the text no longer starts at offset 0 of the original */
        if (first_deleted)
            origin = false;
        struct pgd__buf t = *out;
        *out = *tmp;
        *tmp = t;
    }
    if (at_origin)
        *at_origin = origin;
    return PGD_OK;
}

/* ---- loading ----------------------------------------------------------------------------- */

static enum pgd_status push_norm(struct pgd_tokenizer *t, struct pgd__norm *nm)
{
    struct pgd__norm *v = realloc(t->norms, (t->n_norms + 1) * sizeof *v);
    if (!v) {
        free(nm->a);
        free(nm->b);
        free(nm->trie);
        if (nm->re)
            pcre2_code_free(nm->re);
        return PGD_ERR_NOMEM;
    }
    t->norms = v;
    t->norms[t->n_norms++] = *nm;
    return PGD_OK;
}

static enum pgd_status push_kind(struct pgd_tokenizer *t, enum pgd__norm_kind kind)
{
    struct pgd__norm nm = { .kind = kind };
    return push_norm(t, &nm);
}

/* BertNormalizer as the steps `tokenizers` runs: clean_text, handle_chinese_chars,
 * strip_accents (NFD, then nonspacing marks dropped; null: as lowercase), lowercase. */
static enum pgd_status load_bert(struct pgd_tokenizer *t, json_t *j)
{
    json_t *ct = json_object_get(j, "clean_text"), *ch = json_object_get(j, "handle_chinese_chars");
    json_t *sa = json_object_get(j, "strip_accents"), *lc = json_object_get(j, "lowercase");
    bool lower = !lc || json_is_true(lc);
    bool strip = sa && !json_is_null(sa) ? json_is_true(sa) : lower;
    enum pgd_status st = PGD_OK;
    if (!ct || json_is_true(ct))
        st = push_kind(t, PGD__NORM_BERT_CLEAN);
    if (!st && (!ch || json_is_true(ch)))
        st = push_kind(t, PGD__NORM_BERT_CHINESE);
    if (!st && strip && !(st = push_kind(t, PGD__NORM_NFD)))
        st = push_kind(t, PGD__NORM_BERT_STRIP);
    if (!st && lower)
        st = push_kind(t, PGD__NORM_LOWERCASE);
    return st;
}

static enum pgd_status load_replace(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    json_t *pat = json_object_get(j, "pattern"), *c = json_object_get(j, "content");
    json_t *str = json_object_get(pat, "String"), *re = json_object_get(pat, "Regex");
    if ((!json_is_string(str) && !json_is_string(re)) || !json_is_string(c))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer Replace needs a "
                        "\"pattern\" (String or Regex) and a \"content\" string", t->name);
    struct pgd__norm nm = { .kind = PGD__NORM_REPLACE };
    if (json_is_string(re)) {
        char msg[512];
        if (!(nm.re = pgd__regex_compile(json_string_value(re), json_string_length(re), msg,
                                         sizeof msg)))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer Replace: %s", t->name,
                            msg);
    } else {
        nm.alen = json_string_length(str);
        nm.a = pgd__dupn(json_string_value(str), nm.alen);
    }
    nm.blen = json_string_length(c);
    nm.b = pgd__dupn(json_string_value(c), nm.blen);
    if ((!nm.re && !nm.a) || !nm.b) {
        free(nm.a);
        free(nm.b);
        if (nm.re)
            pcre2_code_free(nm.re);
        return PGD_ERR_NOMEM;
    }
    return push_norm(t, &nm);
}

static enum pgd_status add_norm(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    static const struct { const char *type; enum pgd__norm_kind kind; } simple[] = {
        { "NFC", PGD__NORM_NFC }, { "NFD", PGD__NORM_NFD }, { "NFKC", PGD__NORM_NFKC },
        { "NFKD", PGD__NORM_NFKD }, { "Lowercase", PGD__NORM_LOWERCASE },
        { "StripAccents", PGD__NORM_STRIP_ACCENTS }, { "Nmt", PGD__NORM_NMT },
        { "ByteLevel", PGD__NORM_BYTELEVEL },
    };
    const char *type = pgd__jstr(j, "type");
    if (!type)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer without a \"type\"", t->name);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: normalizer Sequence without a \"normalizers\" array", t->name);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            enum pgd_status st = add_norm(t, e, err, errlen);
            if (st)
                return st;
        }
        return PGD_OK;
    }
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(type, simple[i].type))
            return push_kind(t, simple[i].kind);
    if (!strcmp(type, "BertNormalizer"))
        return load_bert(t, j);
    if (!strcmp(type, "Replace"))
        return load_replace(t, j, err, errlen);
    if (!strcmp(type, "Prepend")) {
        json_t *p = json_object_get(j, "prepend");
        if (!json_is_string(p))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: normalizer Prepend without a \"prepend\" string", t->name);
        struct pgd__norm nm = { .kind = PGD__NORM_PREPEND, .alen = json_string_length(p) };
        if (!(nm.a = pgd__dupn(json_string_value(p), nm.alen)))
            return PGD_ERR_NOMEM;
        return push_norm(t, &nm);
    }
    if (!strcmp(type, "Strip")) {
        struct pgd__norm nm = { .kind = PGD__NORM_STRIP };
        nm.left = json_is_true(json_object_get(j, "strip_left"));
        nm.right = json_is_true(json_object_get(j, "strip_right"));
        return push_norm(t, &nm);
    }
    if (!strcmp(type, "Precompiled")) {
        json_t *cm = json_object_get(j, "precompiled_charsmap");
        if (!json_is_string(cm))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: normalizer Precompiled without a "
                            "\"precompiled_charsmap\" string", t->name);
        struct pgd__norm nm = { .kind = PGD__NORM_PRECOMPILED };
        enum pgd_status st = pgd__precompiled_load(&nm, json_string_value(cm),
                                                   json_string_length(cm), t->name, err, errlen);
        if (st) {
            free(nm.trie);
            free(nm.b);
            return st;
        }
        return push_norm(t, &nm);
    }
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                    "%s: normalizer type \"%s\" is not supported", t->name, type);
}

enum pgd_status pgd__load_normalizer(struct pgd_tokenizer *t, const void *json, char *err,
                                     size_t errlen)
{
    json_t *j = (json_t *)json;
    if (!j || json_is_null(j))
        return PGD_OK;
    if (!json_is_object(j))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"normalizer\" is not an object",
                        t->name);
    return add_norm(t, j, err, errlen);
}
