/* Loading tokenizer.json (+ tokenizer_config.json) and the encode pipeline:
 *   text -> added tokens (as written) -> normalizers -> added tokens (normalized)
 *        -> pre-tokenizers -> BPE per piece -> post-processor template. */
#include "runtime/tokenizer/tokenizer_internal.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgd_tokens_init(struct pgd_tokens *t)
{
    memset(t, 0, sizeof *t);
}

void pgd_tokens_fini(struct pgd_tokens *t)
{
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ---- accessors ---------------------------------------------------------------------------- */

const char *pgd__token_str(const struct pgd_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_ids)
        return NULL;
    int32_t a = t->added_by_id[id];
    if (a >= 0) {
        *len = t->added[a].len;
        return t->added[a].content;
    }
    if (id < t->bpe.n_ids && t->bpe.id_str[id]) {
        *len = t->bpe.id_len[id];
        return t->bpe.id_str[id];
    }
    return NULL;
}

int32_t pgd_tokenizer_vocab_size(const struct pgd_tokenizer *tok) { return tok->n_ids; }

const char *pgd_tokenizer_token(const struct pgd_tokenizer *tok, int32_t id)
{
    size_t n;
    return pgd__token_str(tok, id, &n);
}

int32_t pgd_tokenizer_token_id(const struct pgd_tokenizer *tok, const char *token, size_t len)
{
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && !memcmp(tok->added[i].content, token, len))
            return tok->added[i].id;
    return pgd__strmap_get(&tok->bpe.vocab, token, len);
}

bool pgd_tokenizer_is_special(const struct pgd_tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_ids || tok->added_by_id[id] < 0)
        return false;
    return tok->added[tok->added_by_id[id]].special;
}

int32_t pgd_tokenizer_bos_id(const struct pgd_tokenizer *tok) { return tok->bos_id; }
int32_t pgd_tokenizer_eos_id(const struct pgd_tokenizer *tok) { return tok->eos_id; }

/* ---- destroy ------------------------------------------------------------------------------ */

void pgd_tokenizer_destroy(struct pgd_tokenizer *t)
{
    if (!t)
        return;
    pgd__bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->added_by_id);
    pgd__matcher_free(&t->match_raw);
    pgd__matcher_free(&t->match_norm);
    for (size_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].a);
        free(t->norms[i].b);
        free(t->norms[i].trie);
        if (t->norms[i].re)
            pcre2_code_free(t->norms[i].re);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++) {
        if (t->pretoks[i].re)
            pcre2_code_free(t->pretoks[i].re);
        free(t->pretoks[i].str);
    }
    free(t->pretoks);
    free(t->tmpl_pre);
    free(t->tmpl_post);
    for (size_t i = 0; i < t->n_decs; i++) {
        free(t->decs[i].pat);
        free(t->decs[i].content);
        if (t->decs[i].re)
            pcre2_code_free(t->decs[i].re);
    }
    free(t->decs);
    free(t->name);
    free(t);
}

/* ---- loading ------------------------------------------------------------------------------ */

static enum pgd_status load_added(struct pgd_tokenizer *t, json_t *list, char *err, size_t errlen)
{
    if (!list || json_is_null(list))
        return PGD_OK;
    if (!json_is_array(list))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"added_tokens\" is not an array",
                        t->name);
    size_t n = json_array_size(list);
    t->added = calloc(n + 1, sizeof *t->added);
    if (!t->added)
        return PGD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        json_t *id = json_object_get(e, "id"), *content = json_object_get(e, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= PGD__MAX_TOKEN_ID || !json_is_string(content))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: added_tokens[%zu] needs an \"id\" (a token id in [0, %d)) "
                            "and a \"content\" string", t->name, i, PGD__MAX_TOKEN_ID);
        struct pgd__added *a = &t->added[t->n_added++];
        a->id = (int32_t)json_integer_value(id);
        a->len = json_string_length(content);
        a->content = malloc(a->len + 1);
        if (!a->content)
            return PGD_ERR_NOMEM;
        memcpy(a->content, json_string_value(content), a->len + 1);
        a->special = json_is_true(json_object_get(e, "special"));
        a->lstrip = json_is_true(json_object_get(e, "lstrip"));
        a->rstrip = json_is_true(json_object_get(e, "rstrip"));
        a->single_word = json_is_true(json_object_get(e, "single_word"));
        json_t *norm = json_object_get(e, "normalized");
        a->normalized = norm ? json_is_true(norm) : !a->special;
    }
    return PGD_OK;
}

static enum pgd_status build_added_index(struct pgd_tokenizer *t)
{
    int32_t n = t->bpe.n_ids;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > n)
            n = t->added[i].id + 1;
    t->n_ids = n;
    t->added_by_id = malloc(((size_t)n + 1) * sizeof *t->added_by_id);
    if (!t->added_by_id)
        return PGD_ERR_NOMEM;
    for (int32_t i = 0; i <= n; i++)
        t->added_by_id[i] = -1;
    struct pgd__buf norm = { 0 }, tmp = { 0 };
    for (size_t i = 0; i < t->n_added; i++) {
        struct pgd__added *a = &t->added[i];
        if (t->added_by_id[a->id] < 0)
            t->added_by_id[a->id] = (int32_t)i;
        bool ok;
        if (a->normalized && t->n_norms) {
            if (pgd__normalize(t->norms, t->n_norms, a->content, a->len, &norm, &tmp, NULL)) {
                pgd__buf_fini(&norm);
                pgd__buf_fini(&tmp);
                return PGD_ERR_NOMEM;
            }
            ok = pgd__matcher_add(&t->match_norm, norm.p, norm.len, (int32_t)i);
        } else if (a->normalized)
            ok = pgd__matcher_add(&t->match_norm, a->content, a->len, (int32_t)i);
        else
            ok = pgd__matcher_add(&t->match_raw, a->content, a->len, (int32_t)i);
        if (!ok) {
            pgd__buf_fini(&norm);
            pgd__buf_fini(&tmp);
            return PGD_ERR_NOMEM;
        }
    }
    pgd__buf_fini(&norm);
    pgd__buf_fini(&tmp);
    return PGD_OK;
}

static enum pgd_status ids_append(int32_t **v, size_t *n, json_t *ids)
{
    size_t k = json_array_size(ids);
    int32_t *p = realloc(*v, (*n + k + 1) * sizeof *p);
    if (!p)
        return PGD_ERR_NOMEM;
    *v = p;
    for (size_t i = 0; i < k; i++)
        p[(*n)++] = (int32_t)json_integer_value(json_array_get(ids, i));
    return PGD_OK;
}

/* BertProcessing / RobertaProcessing: `tokenizers` puts cls before a single sequence and sep
 * after it; each is ["token", id]. (Roberta's trim_offsets / add_prefix_space move offsets
 * only.) */
static enum pgd_status load_cls_sep(struct pgd_tokenizer *t, json_t *j, const char *type,
                                    char *err, size_t errlen)
{
    json_t *cls = json_object_get(j, "cls"), *sep = json_object_get(j, "sep");
    json_t *cls_id = json_array_get(cls, 1), *sep_id = json_array_get(sep, 1);
    if (!json_is_integer(cls_id) || !json_is_integer(sep_id) || json_integer_value(cls_id) < 0 ||
        json_integer_value(sep_id) < 0 || json_integer_value(cls_id) > INT32_MAX ||
        json_integer_value(sep_id) > INT32_MAX)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: post_processor %s needs \"cls\" and "
                        "\"sep\" as [\"token\", id]", t->name, type);
    json_t *pre = json_pack("[O]", cls_id), *post = json_pack("[O]", sep_id);
    enum pgd_status st = pre && post ? ids_append(&t->tmpl_pre, &t->n_tmpl_pre, pre)
                                     : PGD_ERR_NOMEM;
    if (!st)
        st = ids_append(&t->tmpl_post, &t->n_tmpl_post, post);
    json_decref(pre);
    json_decref(post);
    return st;
}

static enum pgd_status load_post(struct pgd_tokenizer *t, json_t *j, char *err, size_t errlen)
{
    if (!j || json_is_null(j))
        return PGD_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: post_processor without a \"type\"",
                        t->name);
    if (!strcmp(type, "ByteLevel"))
        return PGD_OK; /* only moves offsets */
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "processors");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            enum pgd_status st = load_post(t, e, err, errlen);
            if (st)
                return st;
        }
        return PGD_OK;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing"))
        return load_cls_sep(t, j, type, err, errlen);
    if (strcmp(type, "TemplateProcessing"))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: post_processor type \"%s\" is not supported", t->name, type);
    json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
    if (!json_is_array(single))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: post_processor TemplateProcessing without a \"single\" array",
                        t->name);
    bool seen_a = false;
    size_t i;
    json_t *e;
    json_array_foreach(single, i, e) {
        json_t *sp = json_object_get(e, "SpecialToken"), *seq = json_object_get(e, "Sequence");
        if (seq) {
            const char *which = json_string_value(json_object_get(seq, "id"));
            if (!which || strcmp(which, "A") || seen_a)
                return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                                "%s: post_processor: the single template must hold sequence A "
                                "once", t->name);
            seen_a = true;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: post_processor: template item %zu names no special token "
                            "with \"ids\"", t->name, i);
        enum pgd_status st = seen_a ? ids_append(&t->tmpl_post, &t->n_tmpl_post, ids)
                                    : ids_append(&t->tmpl_pre, &t->n_tmpl_pre, ids);
        if (st)
            return st;
    }
    return PGD_OK;
}

/* A token named in tokenizer_config.json: a string, or {"content": string}. */
static int32_t config_token(const struct pgd_tokenizer *t, json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return -1;
    return pgd_tokenizer_token_id(t, json_string_value(v), json_string_length(v));
}

static enum pgd_status load_config(struct pgd_tokenizer *t, json_t *c, const char *name,
                                   char *err, size_t errlen)
{
    t->bos_id = t->n_tmpl_pre == 1 ? t->tmpl_pre[0] : -1;
    t->eos_id = -1;
    if (!c)
        return PGD_OK;
    json_t *bos = json_object_get(c, "bos_token"), *eos = json_object_get(c, "eos_token");
    if (bos && !json_is_null(bos)) {
        t->bos_id = config_token(t, bos);
        if (t->bos_id < 0)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: bos_token is not a token of the tokenizer", name);
    }
    if (eos && !json_is_null(eos)) {
        t->eos_id = config_token(t, eos);
        if (t->eos_id < 0)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: eos_token is not a token of the tokenizer", name);
    }
    /* transformers' Llama-family fast tokenizers rebuild the template from add_bos_token
     * (default true) and add_eos_token (default false). */
    const char *cls = json_string_value(json_object_get(c, "tokenizer_class"));
    json_t *ab = json_object_get(c, "add_bos_token"), *ae = json_object_get(c, "add_eos_token");
    if (ab && !json_is_boolean(ab) && !json_is_null(ab))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"add_bos_token\" must be true or "
                        "false", name);
    if (ae && !json_is_boolean(ae) && !json_is_null(ae))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: \"add_eos_token\" must be true or "
                        "false", name);
    if (cls && (!strncmp(cls, "LlamaTokenizer", 14) || !strncmp(cls, "CodeLlamaTokenizer", 18) ||
                !strncmp(cls, "GemmaTokenizer", 14))) {
        bool add_bos = ab ? json_is_true(ab) : true, add_eos = ae ? json_is_true(ae) : false;
        t->n_tmpl_pre = t->n_tmpl_post = 0;
        if (add_bos && t->bos_id >= 0) {
            free(t->tmpl_pre);
            if (!(t->tmpl_pre = malloc(sizeof *t->tmpl_pre)))
                return PGD_ERR_NOMEM;
            t->tmpl_pre[t->n_tmpl_pre++] = t->bos_id;
        }
        if (add_eos && t->eos_id >= 0) {
            free(t->tmpl_post);
            if (!(t->tmpl_post = malloc(sizeof *t->tmpl_post)))
                return PGD_ERR_NOMEM;
            t->tmpl_post[t->n_tmpl_post++] = t->eos_id;
        }
    }
    return PGD_OK;
}

static json_t *parse(const char *text, size_t len, size_t flags, const char *name, char *err,
                     size_t errlen, enum pgd_status *st)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL | flags, &je);
    if (!j) {
        *st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s",
                       name, je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: not a JSON object", name);
        return NULL;
    }
    return j;
}

static enum pgd_status load(struct pgd_tokenizer *t, json_t *j, json_t *cfg, const char *cfgname,
                            char *err, size_t errlen)
{
    enum pgd_status st;
    if ((st = pgd__bpe_load(&t->bpe, json_object_get(j, "model"), t->name, err, errlen)))
        return st;
    if ((st = load_added(t, json_object_get(j, "added_tokens"), err, errlen)))
        return st;
    if ((st = pgd__load_normalizer(t, json_object_get(j, "normalizer"), err, errlen)))
        return st;
    if ((st = pgd__load_pretokenizer(t, json_object_get(j, "pre_tokenizer"), err, errlen)))
        return st;
    if ((st = load_post(t, json_object_get(j, "post_processor"), err, errlen)))
        return st;
    if ((st = pgd__load_decoder(t, json_object_get(j, "decoder"), err, errlen)))
        return st;
    if ((st = build_added_index(t)))
        return st;
    if (t->n_pretoks && t->pretoks[t->n_pretoks - 1].kind == PGD__PRE_BYTELEVEL) {
        if ((st = pgd__bpe_enable_bytelevel(&t->bpe)))
            return st;
        if (t->bpe.bytelevel)
            t->pretoks[t->n_pretoks - 1].map_bytes = false;
    }
    return load_config(t, cfg, cfgname, err, errlen);
}

static enum pgd_status load_named(const char *json, size_t json_len, const char *config,
                                  size_t config_len, const char *name, const char *cfgname,
                                  struct pgd_tokenizer **out, char *err, size_t errlen)
{
    *out = NULL;
    enum pgd_status st = PGD_OK;
    json_t *j = parse(json, json_len, 0, name, err, errlen, &st);
    if (!j)
        return st;
    json_t *cfg = NULL;
    if (config && !(cfg = parse(config, config_len, JSON_DECODE_INT_AS_REAL, cfgname, err, errlen, &st))) {
        json_decref(j);
        return st;
    }
    struct pgd_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        json_decref(j);
        json_decref(cfg);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", name);
    }
    st = load(t, j, cfg, cfgname, err, errlen);
    json_decref(j);
    json_decref(cfg);
    if (st) {
        if (st == PGD_ERR_NOMEM)
            pgd_errf(err, errlen, st, "%s: out of memory", name);
        pgd_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return PGD_OK;
}

enum pgd_status pgd_tokenizer_load_json(const char *json, size_t json_len, const char *config,
                                        size_t config_len, const char *name,
                                        struct pgd_tokenizer **out, char *err, size_t errlen)
{
    char cfgname[1024];
    snprintf(cfgname, sizeof cfgname, "%s (tokenizer_config)", name);
    return load_named(json, json_len, config, config_len, name, cfgname, out, err, errlen);
}

enum pgd_status pgd_tokenizer_load(const char *dir, struct pgd_tokenizer **out, char *err,
                                   size_t errlen)
{
    *out = NULL;
    size_t dl = strlen(dir);
    char *p1 = malloc(dl + 32), *p2 = malloc(dl + 32);
    if (!p1 || !p2) {
        free(p1);
        free(p2);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    snprintf(p1, dl + 32, "%s/tokenizer.json", dir);
    snprintf(p2, dl + 32, "%s/tokenizer_config.json", dir);
    char *json = NULL, *cfg = NULL;
    size_t jl = 0, cl = 0;
    enum pgd_status st = pgd__read_file(p1, &json, &jl, err, errlen);
    if (!st) {
        char e2[16];
        enum pgd_status s2 = pgd__read_file(p2, &cfg, &cl, e2, sizeof e2);
        if (s2 == PGD_ERR_NOT_FOUND)
            cfg = NULL;
        else if (s2)
            st = pgd__read_file(p2, &cfg, &cl, err, errlen);
    }
    if (!st)
        st = load_named(json, jl, cfg, cl, p1, p2, out, err, errlen);
    free(json);
    free(cfg);
    free(p1);
    free(p2);
    return st;
}

/* ---- encode ------------------------------------------------------------------------------- */

struct enc {
    const struct pgd_tokenizer *t;
    struct pgd_tokens *out;
    struct pgd__buf norm, ntmp;
    struct pgd__pieces pieces, ptmp;
    struct pgd__bpe_scratch bs;
    pcre2_match_data *md;
    bool seg_first;
    char *err;
    size_t errlen;
};

static enum pgd_status on_norm_piece(void *ctx, size_t off, size_t len, int32_t tok)
{
    struct enc *e = ctx;
    const struct pgd_tokenizer *t = e->t;
    if (tok >= 0)
        return pgd__tokens_push(e->out, t->added[tok].id) ? PGD_OK : PGD_ERR_NOMEM;
    if (len == 0)
        return PGD_OK;
    e->pieces.n = 0;
    e->pieces.text.len = 0;
    if (!pgd__buf_append(&e->pieces.text, e->norm.p + off, len) ||
        !pgd__pieces_add(&e->pieces, 0, len, e->seg_first && off == 0))
        return PGD_ERR_NOMEM;
    enum pgd_status st = pgd__pretokenize(t->pretoks, t->n_pretoks, &e->pieces, &e->ptmp, e->md,
                                          NULL, e->err, e->errlen);
    if (st)
        return st;
    for (size_t i = 0; i < e->pieces.n; i++) {
        st = pgd__bpe_tokenize(&t->bpe, &e->bs, e->pieces.text.p + e->pieces.v[i].off,
                               e->pieces.v[i].len, e->out);
        if (st)
            return st;
    }
    return PGD_OK;
}

struct raw_ctx {
    struct enc *e;
    const char *text;
};

static enum pgd_status on_raw_piece(void *ctx, size_t off, size_t len, int32_t tok)
{
    struct raw_ctx *rc = ctx;
    struct enc *e = rc->e;
    const struct pgd_tokenizer *t = e->t;
    if (tok >= 0)
        return pgd__tokens_push(e->out, t->added[tok].id) ? PGD_OK : PGD_ERR_NOMEM;
    if (len == 0)
        return PGD_OK;
    bool at_origin;
    enum pgd_status st = pgd__normalize(t->norms, t->n_norms, rc->text + off, len, &e->norm,
                                        &e->ntmp, &at_origin);
    if (st)
        return st;
    e->seg_first = off == 0 && at_origin;
    return pgd__matcher_split(&t->match_norm, t->added, e->norm.p, e->norm.len, on_norm_piece, e);
}

enum pgd_status pgd_tokenizer_encode(const struct pgd_tokenizer *tok, const char *text, size_t len,
                                     bool add_special, struct pgd_tokens *out, char *err,
                                     size_t errlen)
{
    struct enc e = { .t = tok, .out = out, .err = err, .errlen = errlen };
    struct pgd__buf fixed = { 0 };
    enum pgd_status st = PGD_OK;
    /* Invalid UTF-8 becomes U+FFFD, as Python's errors="replace" decodes it. */
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) { i++; continue; }
        size_t k = pgd__utf8_next(u + i, len - i, NULL);
        if (!k) {
            if (!pgd__utf8_append_lossy(&fixed, text, len)) {
                st = PGD_ERR_NOMEM;
                goto done;
            }
            text = fixed.p;
            len = fixed.len;
            break;
        }
        i += k;
    }
    if (tok->has_regex && !(e.md = pcre2_match_data_create(4, NULL))) {
        st = PGD_ERR_NOMEM;
        goto done;
    }
    if (add_special)
        for (size_t i = 0; i < tok->n_tmpl_pre; i++)
            if (!pgd__tokens_push(out, tok->tmpl_pre[i])) {
                st = PGD_ERR_NOMEM;
                goto done;
            }
    struct raw_ctx rc = { &e, text };
    st = pgd__matcher_split(&tok->match_raw, tok->added, text, len, on_raw_piece, &rc);
    if (!st && add_special)
        for (size_t i = 0; i < tok->n_tmpl_post; i++)
            if (!pgd__tokens_push(out, tok->tmpl_post[i])) {
                st = PGD_ERR_NOMEM;
                break;
            }
done:
    if (st == PGD_ERR_NOMEM)
        pgd_errf(err, errlen, st, "%s: encode: out of memory", tok->name);
    pgd__buf_fini(&fixed);
    pgd__buf_fini(&e.norm);
    pgd__buf_fini(&e.ntmp);
    pgd__pieces_free(&e.pieces);
    pgd__pieces_free(&e.ptmp);
    pgd__bpe_scratch_free(&e.bs);
    if (e.md)
        pcre2_match_data_free(e.md);
    return st;
}
