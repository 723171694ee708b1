/* Tokenizer: encode/decode against the `tokenizers` package's outputs on a corpus built to
 * break tokenizers (tests/fixtures/tokenizer, made by scripts/make_tokenizer_refs.py) for
 * Mistral, a Llama-3-style tokenizer (scripts/make_llama3_style_tokenizer.py), Qwen3,
 * SmolLM2 (scripts/make_smollm2_tokenizer.py) and variants (Metaspace, every other
 * pre-tokenizer, normalizer, decoder and post-processor), the streaming detokenizer, random
 * bytes and ids, and error messages. */
#include "tests/lib/test_common.h"
#include <jansson.h>
#include <pagoda/tokenizer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

PGD_TEST_SUITE(tokenizer);

#define FIX PGD_TEST_SRCDIR "/tests/fixtures/tokenizer"

static json_t *load_json(const char *path);
static struct pgd_tokenizer *load_metaspace_variant(const char *variant);
static struct pgd_tokenizer *load_variant(const char *variant);

/* name: mistral, llama3_style, qwen3 (folders of tests/fixtures/tokenizer), metaspace_VARIANT
 * (see load_metaspace_variant) or variant_VARIANT (see load_variant) */
static struct pgd_tokenizer *load(const char *name)
{
    if (!strncmp(name, "metaspace_", 10))
        return load_metaspace_variant(name + 10);
    if (!strncmp(name, "variant_", 8))
        return load_variant(name + 8);
    char dir[4096], path[4200], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", FIX, name);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        cr_assert_fail("tokenizer %s missing: %s", name, path);
    struct pgd_tokenizer *t = NULL;
    enum pgd_status st = pgd_tokenizer_load(dir, &t, err, sizeof err);
    cr_assert_eq(st, PGD_OK, "loading %s: %s", dir, err);
    return t;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!j)
        cr_assert_fail("%s: %s (line %d)", path, je.text, je.line);
    return j;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: cannot open", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    char *p = malloc((size_t)n + 1);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n, "%s: short read", path);
    fclose(f);
    p[n] = '\0';
    *len = (size_t)n;
    return p;
}

/* base_dir's tokenizer.json with the top-level keys of patch put in, loaded with base_dir's
 * tokenizer_config.json, as scripts/make_tokenizer_refs.py builds it for `tokenizers`. */
static struct pgd_tokenizer *load_patched(const char *base_dir, json_t *patch, const char *name)
{
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", base_dir);
    json_t *base = load_json(path);
    cr_assert_eq(json_object_update(base, patch), 0);
    char *text = json_dumps(base, JSON_COMPACT);
    cr_assert_not_null(text);
    size_t cl;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", base_dir);
    char *cfg = read_text(path, &cl);
    struct pgd_tokenizer *t = NULL;
    enum pgd_status st = pgd_tokenizer_load_json(text, strlen(text), cfg, cl, name, &t, err,
                                                 sizeof err);
    cr_assert_eq(st, PGD_OK, "loading %s: %s", name, err);
    free(cfg);
    free(text);
    json_decref(base);
    return t;
}

/* A Metaspace variant of the Mistral tokenizer: the top-level keys of
 * metaspace_variants.json[variant] (normalizer dropped, Metaspace pre-tokenizer and decoder)
 * put into mistral/tokenizer.json. */
static struct pgd_tokenizer *load_metaspace_variant(const char *variant)
{
    json_t *all = load_json(FIX "/metaspace_variants.json");
    json_t *patch = json_object_get(all, variant);
    cr_assert(json_is_object(patch), "metaspace_variants.json has no variant \"%s\"", variant);
    char name[256];
    snprintf(name, sizeof name, "metaspace_%s", variant);
    struct pgd_tokenizer *t = load_patched(FIX "/mistral", patch, name);
    json_decref(all);
    return t;
}

/* A variant of variants.json: {"base": folder, "patch": top-level keys} (every other
 * pre-tokenizer, normalizer and decoder type). */
static struct pgd_tokenizer *load_variant(const char *variant)
{
    json_t *all = load_json(FIX "/variants.json");
    json_t *v = json_object_get(all, variant);
    const char *base = json_string_value(json_object_get(v, "base"));
    json_t *patch = json_object_get(v, "patch");
    cr_assert(base && json_is_object(patch), "variants.json has no variant \"%s\"", variant);
    char dir[4096], name[256];
    snprintf(dir, sizeof dir, "%s/%s", FIX, base);
    snprintf(name, sizeof name, "variant_%s", variant);
    struct pgd_tokenizer *t = load_patched(dir, patch, name);
    json_decref(all);
    return t;
}

/* Corpus entry i as bytes (malloc'ed) and, for the expected decodes, as Python saw it
 * (invalid UTF-8 replaced). */
static unsigned char *entry_bytes(json_t *e, size_t *len)
{
    json_t *t = json_object_get(e, "text");
    if (t) {
        *len = json_string_length(t);
        unsigned char *p = malloc(*len + 1);
        memcpy(p, json_string_value(t), *len + 1);
        return p;
    }
    const char *hex = json_string_value(json_object_get(e, "hex"));
    size_t n = strlen(hex) / 2;
    unsigned char *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        p[i] = (unsigned char)v;
    }
    p[n] = 0;
    *len = n;
    return p;
}

/* U+FFFD for each maximal ill-formed subsequence (what Python's errors="replace" does):
 * computed here with the tokenizer's own rule reimplemented independently. */
static size_t valid_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need = c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF5 ? 4 : 0;
    if (!need || n < need) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

static bool is_valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = valid_len(u + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static int32_t *json_ids(json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return v;
}

static void assert_ids(const struct pgd_tokens *got, const int32_t *want, size_t n,
                       const char *what, size_t idx)
{
    size_t i = 0;
    while (i < n && i < got->n && got->ids[i] == want[i])
        i++;
    cr_assert(i == n && got->n == n,
              "%s, corpus entry %zu: ids differ at position %zu (got %zu ids, want %zu; "
              "got %d, want %d)", what, idx, i, got->n, n, i < got->n ? got->ids[i] : -1,
              i < n ? want[i] : -1);
}

static void check_decode(const struct pgd_tokenizer *t, const int32_t *ids, size_t n, bool skip,
                         const char *want, size_t want_len, const char *what, size_t idx)
{
    char *text, err[256];
    size_t len;
    cr_assert_eq(pgd_tokenizer_decode(t, ids, n, skip, &text, &len, err, sizeof err), PGD_OK,
                 "%s", err);
    cr_assert(len == want_len && !memcmp(text, want, len),
              "%s, entry %zu (skip=%d):\n got  \"%.*s\"\n want \"%.*s\"", what, idx, skip,
              (int)(len > 300 ? 300 : len), text, (int)(want_len > 300 ? 300 : want_len), want);
    free(text);
}

/* The strings name's reference was made on: corpus.json, the refs file's own "corpus"
 * (variants tested on strings made for them) or the file its "corpus_file" names. A new
 * reference. */
static json_t *load_corpus(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, FIX "/refs_%s.json", name);
    json_t *ref = load_json(path);
    json_t *own = json_incref(json_object_get(ref, "corpus"));
    const char *file = json_string_value(json_object_get(ref, "corpus_file"));
    snprintf(path, sizeof path, FIX "/%s", file ? file : "corpus.json");
    json_decref(ref);
    return own ? own : load_json(path);
}

/* Encodes and decodes every corpus entry; compares with the reference. */
static void check_reference_with(const struct pgd_tokenizer *t, const char *name)
{
    char path[4096];
    json_t *corpus = load_corpus(name);
    snprintf(path, sizeof path, FIX "/refs_%s.json", name);
    json_t *ref = load_json(path);
    json_t *enc = json_object_get(ref, "encode");
    cr_assert_eq(json_array_size(enc), json_array_size(corpus), "%s and its corpus disagree",
                 path);
    cr_assert_geq(json_array_size(corpus), json_object_get(ref, "corpus") ? 150 : 300);
    char err[256];
    for (size_t i = 0; i < json_array_size(corpus); i++) {
        json_t *c = json_array_get(enc, i);
        size_t len, n;
        unsigned char *bytes = entry_bytes(json_array_get(corpus, i), &len);
        /* what Python was given */
        struct { char *p; size_t n; } py = { malloc(len * 3 + 1), 0 };
        for (size_t k = 0; k < len;) {
            size_t v = valid_len(bytes + k, len - k);
            if (v) {
                memcpy(py.p + py.n, bytes + k, v);
                py.n += v;
                k += v;
            } else {
                memcpy(py.p + py.n, "\xEF\xBF\xBD", 3);
                py.n += 3;
                /* maximal subpart: lead byte plus continuation bytes that still fit */
                size_t m = 1;
                unsigned char b0 = bytes[k];
                size_t need = b0 >= 0xC2 && b0 < 0xE0 ? 2 : b0 >= 0xE0 && b0 < 0xF0 ? 3
                              : b0 >= 0xF0 && b0 < 0xF5 ? 4 : 1;
                unsigned lo = 0x80, hi = 0xBF;
                if (b0 == 0xE0) lo = 0xA0;
                if (b0 == 0xED) hi = 0x9F;
                if (b0 == 0xF0) lo = 0x90;
                if (b0 == 0xF4) hi = 0x8F;
                if (need > 1 && k + 1 < len && bytes[k + 1] >= lo && bytes[k + 1] <= hi) {
                    m = 2;
                    while (m < need && k + m < len && (bytes[k + m] & 0xC0) == 0x80)
                        m++;
                }
                k += m;
            }
        }

        int32_t *want = json_ids(json_object_get(c, "ids"), &n);
        struct pgd_tokens got = { 0 };
        cr_assert_eq(pgd_tokenizer_encode(t, (char *)bytes, len, false, &got, err, sizeof err),
                     PGD_OK, "%s", err);
        assert_ids(&got, want, n, name, i);

        /* with special tokens */
        size_t ns = n;
        int32_t *want_sp;
        json_t *full = json_object_get(c, "ids_special");
        if (full)
            want_sp = json_ids(full, &ns);
        else {
            json_t *pre = json_object_get(c, "special_pre"), *post = json_object_get(c, "special_post");
            size_t np = json_array_size(pre), nq = json_array_size(post);
            ns = np + n + nq;
            want_sp = malloc((ns + 1) * sizeof *want_sp);
            for (size_t k = 0; k < np; k++)
                want_sp[k] = (int32_t)json_integer_value(json_array_get(pre, k));
            memcpy(want_sp + np, want, n * sizeof *want);
            for (size_t k = 0; k < nq; k++)
                want_sp[np + n + k] = (int32_t)json_integer_value(json_array_get(post, k));
        }
        got.n = 0;
        cr_assert_eq(pgd_tokenizer_encode(t, (char *)bytes, len, true, &got, err, sizeof err),
                     PGD_OK, "%s", err);
        assert_ids(&got, want_sp, ns, "with special tokens", i);

        json_t *dt = json_object_get(c, "text"), *ds = json_object_get(c, "text_skip");
        check_decode(t, want_sp, ns, false, dt ? json_string_value(dt) : py.p,
                     dt ? json_string_length(dt) : py.n, name, i);
        check_decode(t, want_sp, ns, true, ds ? json_string_value(ds) : py.p,
                     ds ? json_string_length(ds) : py.n, name, i);
        pgd_tokens_fini(&got);
        free(want);
        free(want_sp);
        free(bytes);
        free(py.p);
    }
    json_t *dec = json_object_get(ref, "decode");
    cr_assert_gt(json_array_size(dec), 0);
    for (size_t i = 0; i < json_array_size(dec); i++) {
        json_t *d = json_array_get(dec, i);
        size_t n;
        int32_t *ids = json_ids(json_object_get(d, "ids"), &n);
        json_t *txt = json_object_get(d, "text"), *skip = json_object_get(d, "text_skip");
        check_decode(t, ids, n, false, json_string_value(txt), json_string_length(txt),
                     "random ids", i);
        if (!skip)
            skip = txt;
        check_decode(t, ids, n, true, json_string_value(skip), json_string_length(skip),
                     "random ids", i);
        free(ids);
    }
    json_decref(ref);
    json_decref(corpus);
}

static void check_reference(const char *name)
{
    struct pgd_tokenizer *t = load(name);
    check_reference_with(t, name);
    pgd_tokenizer_destroy(t);
}

Test(tokenizer, mistral_matches_reference, .timeout = 120) { check_reference("mistral"); }
Test(tokenizer, llama3_style_matches_reference, .timeout = 120) { check_reference("llama3_style"); }
Test(tokenizer, qwen3_matches_reference, .timeout = 120) { check_reference("qwen3"); }
/* SmolLM2: Digits(individual_digits) before a ByteLevel with its regex, a real vocabulary */
Test(tokenizer, smollm2_matches_reference, .timeout = 120) { check_reference("smollm2"); }

/* ---- streaming ------------------------------------------------------------------------- */

static void check_stream(const struct pgd_tokenizer *t, const int32_t *ids, size_t n, bool skip,
                         size_t idx)
{
    char *full, err[256];
    size_t full_len;
    cr_assert_eq(pgd_tokenizer_decode(t, ids, n, skip, &full, &full_len, err, sizeof err), PGD_OK);
    struct pgd_detok d;
    cr_assert_eq(pgd_detok_init(&d, t, skip), PGD_OK);
    char *acc = malloc(full_len + 1);
    size_t acc_len = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *delta;
        size_t dl;
        if (i < n)
            cr_assert_eq(pgd_detok_push(&d, ids[i], &delta, &dl), PGD_OK);
        else
            cr_assert_eq(pgd_detok_flush(&d, &delta, &dl), PGD_OK);
        cr_assert(is_valid_utf8(delta, dl), "entry %zu: delta %zu is not whole UTF-8", idx, i);
        cr_assert_leq(acc_len + dl, full_len, "entry %zu: deltas run past the full decode", idx);
        memcpy(acc + acc_len, delta, dl);
        acc_len += dl;
    }
    cr_assert(acc_len == full_len && !memcmp(acc, full, full_len),
              "entry %zu: deltas \"%.*s\" != decode \"%s\"", idx, (int)acc_len, acc, full);
    /* the state is reusable after a flush */
    const char *delta;
    size_t dl;
    if (n) {
        cr_assert_eq(pgd_detok_push(&d, ids[0], &delta, &dl), PGD_OK);
        cr_assert_eq(pgd_detok_flush(&d, &delta, &dl), PGD_OK);
    }
    pgd_detok_fini(&d);
    free(acc);
    free(full);
}

static void check_streaming_with(const struct pgd_tokenizer *t, const char *name)
{
    json_t *corpus = load_corpus(name);
    char err[256];
    for (size_t i = 0; i < json_array_size(corpus); i++) {
        size_t len;
        unsigned char *bytes = entry_bytes(json_array_get(corpus, i), &len);
        struct pgd_tokens ids = { 0 };
        cr_assert_eq(pgd_tokenizer_encode(t, (char *)bytes, len, true, &ids, err, sizeof err),
                     PGD_OK);
        check_stream(t, ids.ids, ids.n, false, i);
        check_stream(t, ids.ids, ids.n, true, i);
        pgd_tokens_fini(&ids);
        free(bytes);
    }
    /* byte-fallback runs and split UTF-8 across tokens, chosen to hurt */
    srand(7);
    int32_t v = pgd_tokenizer_vocab_size(t);
    for (int k = 0; k < 200; k++) {
        int32_t ids[32];
        size_t n = (size_t)(rand() % 32);
        for (size_t i = 0; i < n; i++)
            ids[i] = rand() % 3 == 0 ? rand() % 300 : rand() % (v + 10) - 5;
        check_stream(t, ids, n, k & 1, 10000 + (size_t)k);
    }
    json_decref(corpus);
}

static void check_streaming(const char *name)
{
    struct pgd_tokenizer *t = load(name);
    check_streaming_with(t, name);
    pgd_tokenizer_destroy(t);
}

Test(tokenizer, mistral_streaming, .timeout = 120) { check_streaming("mistral"); }
Test(tokenizer, llama3_style_streaming, .timeout = 120) { check_streaming("llama3_style"); }
Test(tokenizer, qwen3_streaming, .timeout = 120) { check_streaming("qwen3"); }
Test(tokenizer, smollm2_streaming, .timeout = 120) { check_streaming("smollm2"); }

/* ---- random bytes and ids ---------------------------------------------------------------- */

static const char *const ATOMS[] = { "a", "Z", " ", "  ", "\n", "\t", "\r\n", "1", "123",
    "'s", "é", "e\xcc\x81", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "\xe2\x80\x8d", "<s>", "</s>",
    "<|im_start|>", "<|eot_id|>", "<", "|", ">", "\x80", "\xc3", "\xe2\x82", "\xff", "\x00",
    "\xe2\x96\x81", "\xc2\xa0", "\xe3\x80\x80", "\xe1\xa0\x8e", "." };

/* lossy(x) with Python's rule (independent of the library's helper) */
static char *lossy(const unsigned char *s, size_t n, size_t *out_len)
{
    char *o = malloc(n * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t v = valid_len(s + i, n - i);
        if (v) {
            memcpy(o + k, s + i, v);
            k += v;
            i += v;
            continue;
        }
        memcpy(o + k, "\xEF\xBF\xBD", 3);
        k += 3;
        unsigned char b0 = s[i];
        size_t need = b0 >= 0xC2 && b0 < 0xE0 ? 2 : b0 >= 0xE0 && b0 < 0xF0 ? 3
                      : b0 >= 0xF0 && b0 < 0xF5 ? 4 : 1;
        unsigned lo = 0x80, hi = 0xBF;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
        size_t m = 1;
        if (need > 1 && i + 1 < n && s[i + 1] >= lo && s[i + 1] <= hi) {
            m = 2;
            while (m < need && i + m < n && (s[i + m] & 0xC0) == 0x80)
                m++;
        }
        i += m;
    }
    *out_len = k;
    return o;
}

/* lossless: check decode(encode(x)) == x where the tokenizer keeps it (see below); the
 * Metaspace variants are not checked for it. */
static void fuzz_with(const struct pgd_tokenizer *t, const char *name, bool lossless_kind,
                      int iterations)
{
    int32_t v = pgd_tokenizer_vocab_size(t);
    char err[256];
    srand(12345);
    unsigned char buf[512];
    int lossless_checked = 0;
    for (int iter = 0; iter < iterations; iter++) {
        size_t n = 0;
        int parts = rand() % 24;
        for (int p = 0; p < parts && n < sizeof buf - 16; p++) {
            if (rand() % 3 == 0) {
                buf[n++] = (unsigned char)(rand() % 256);
            } else {
                const char *a = ATOMS[rand() % (sizeof ATOMS / sizeof ATOMS[0])];
                size_t al = a[0] ? strlen(a) : 1; /* the "\x00" atom is one NUL byte */
                memcpy(buf + n, a, al);
                n += al;
            }
        }
        struct pgd_tokens ids = { 0 };
        cr_assert_eq(pgd_tokenizer_encode(t, (char *)buf, n, iter & 1, &ids, err, sizeof err),
                     PGD_OK, "%s", err);
        for (size_t i = 0; i < ids.n; i++)
            cr_assert(ids.ids[i] >= 0 && ids.ids[i] < v);
        char *text;
        size_t tl;
        cr_assert_eq(pgd_tokenizer_decode(t, ids.ids, ids.n, false, &text, &tl, err, sizeof err),
                     PGD_OK);
        cr_assert(is_valid_utf8(text, tl));
        /* Lossless where the tokenizer is: Llama-3 style always (invalid bytes come back as
         * U+FFFD); SmolLM2 unless x holds a control byte its vocabulary lacks (4, 6, 19, 20,
         * 22, 29: `tokenizers` drops those); Qwen3 on text NFC leaves alone (ASCII here);
         * Mistral when no special token or U+2581 is written in the text (SentencePiece
         * prepends a space after one). */
        bool ascii = true, marks = false, smol_bytes = true;
        for (size_t i = 0; i < n; i++) {
            ascii = ascii && buf[i] < 0x80;
            marks = marks || buf[i] == '<' || buf[i] == 0xE2;
            smol_bytes = smol_bytes && !memchr("\x04\x06\x13\x14\x16\x1d", buf[i], 6);
        }
        bool lossless = lossless_kind && !(iter & 1) &&
                        (!strcmp(name, "llama3_style") ||
                         (!strcmp(name, "smollm2") && smol_bytes) ||
                         (!strcmp(name, "qwen3") && ascii) ||
                         (!strcmp(name, "mistral") && !marks));
        if (lossless) {
            size_t wl;
            char *want = lossy(buf, n, &wl);
            cr_assert(tl == wl && !memcmp(text, want, wl),
                      "%s: decode(encode(x)) != x at iteration %d: \"%.*s\" vs \"%.*s\"", name,
                      iter, (int)tl, text, (int)wl, want);
            free(want);
            lossless_checked++;
        }
        free(text);
        pgd_tokens_fini(&ids);

        /* random ids, some out of range */
        int32_t rid[40];
        size_t rn = (size_t)(rand() % 40);
        for (size_t i = 0; i < rn; i++)
            rid[i] = rand() % 4 == 0 ? rand() % 512 : rand() % (v + 200) - 100;
        cr_assert_eq(pgd_tokenizer_decode(t, rid, rn, iter & 1, &text, &tl, err, sizeof err),
                     PGD_OK);
        cr_assert(is_valid_utf8(text, tl));
        free(text);
    }
    if (lossless_kind)
        cr_assert_gt(lossless_checked, 50);
}

static void fuzz(const char *name, bool lossless_kind)
{
    struct pgd_tokenizer *t = load(name);
    fuzz_with(t, name, lossless_kind, 1500);
    pgd_tokenizer_destroy(t);
}

Test(tokenizer, mistral_random_input, .timeout = 120) { fuzz("mistral", true); }
Test(tokenizer, llama3_style_random_input, .timeout = 120) { fuzz("llama3_style", true); }
Test(tokenizer, qwen3_random_input, .timeout = 120) { fuzz("qwen3", true); }
Test(tokenizer, smollm2_random_input, .timeout = 120) { fuzz("smollm2", true); }

/* ---- Metaspace variants of the Mistral tokenizer -------------------------------------------
 * Each must match `tokenizers` exactly (refs_metaspace_VARIANT.json), stream the same text
 * and survive random input. */

#define METASPACE_VARIANTS(X) X(always_split) X(always_nosplit) X(first_split) \
    X(first_nosplit) X(never_split) X(never_nosplit) X(first_split_fused) \
    X(first_after_deletions)

#define METASPACE_TESTS(v) \
    Test(tokenizer, metaspace_##v##_matches_reference, .timeout = 120) \
    { check_reference("metaspace_" #v); } \
    Test(tokenizer, metaspace_##v##_streaming, .timeout = 120) \
    { check_streaming("metaspace_" #v); } \
    Test(tokenizer, metaspace_##v##_random_input, .timeout = 120) \
    { fuzz("metaspace_" #v, false); }
METASPACE_VARIANTS(METASPACE_TESTS)

/* Every variant the script wrote is tested above. */
Test(tokenizer, metaspace_variants_all_tested)
{
    static const char *const names[] = {
#define METASPACE_NAME(v) #v,
        METASPACE_VARIANTS(METASPACE_NAME)
#undef METASPACE_NAME
    };
    json_t *all = load_json(FIX "/metaspace_variants.json");
    size_t n = sizeof names / sizeof names[0];
    cr_assert_eq(json_object_size(all), n, "metaspace_variants.json has %zu variants, the test "
                 "knows %zu", json_object_size(all), n);
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(json_object_get(all, names[i]), "%s", names[i]);
    json_decref(all);
}

/* ---- every other pre-tokenizer, normalizer and decoder type ---------------------------------
 * Variants of variants.json (made by scripts/make_tokenizer_refs.py): each must match
 * `tokenizers` exactly (refs_variant_VARIANT.json on variant_corpus.json), stream the same
 * text and survive random input. */

#define TYPE_VARIANTS(X) \
    X(digits_individual) X(digits_contiguous) X(digits_metaspace) X(whitespace) \
    X(whitespace_split) X(punctuation_removed) X(punctuation_isolated) \
    X(punctuation_merged_prev) X(punctuation_merged_next) X(punctuation_contiguous) \
    X(char_delimiter) X(bert_pretokenizer) X(fixed_length) X(unicode_scripts) \
    X(unicode_scripts_metaspace) X(nested_sequence) \
    X(lowercase) X(strip_accents) X(nfd_strip_accents) X(nfkd_lowercase) X(nfkc) X(nfd) \
    X(nmt_nfkc) X(precompiled_nmt_nfkc) X(replace_regex) X(bert_normalizer) \
    X(bert_normalizer_cased) \
    X(bert_normalizer_strip_only) X(bytelevel_normalizer) X(deletions_metaspace_first) \
    X(bert_chinese_metaspace_first) X(roberta_processing) X(bert_processing) \
    X(wordpiece_decoder) \
    X(wordpiece_decoder_plain) X(bpe_decoder) X(ctc_decoder) X(ctc_decoder_plain) \
    X(replace_regex_decoder)

/* One test per variant, the tokenizer loaded once (CI time): reference, streaming, 300
 * rounds of random bytes and ids. */
static void check_variant(const char *name)
{
    struct pgd_tokenizer *t = load(name);
    check_reference_with(t, name);
    check_streaming_with(t, name);
    fuzz_with(t, name, false, 300);
    pgd_tokenizer_destroy(t);
}

#define TYPE_TESTS(v) \
    Test(tokenizer, v, .timeout = 120) { check_variant("variant_" #v); }
TYPE_VARIANTS(TYPE_TESTS)

/* Every variant the script wrote is tested above. */
Test(tokenizer, type_variants_all_tested)
{
    static const char *const names[] = {
#define TYPE_NAME(v) #v,
        TYPE_VARIANTS(TYPE_NAME)
#undef TYPE_NAME
    };
    json_t *all = load_json(FIX "/variants.json");
    size_t n = sizeof names / sizeof names[0];
    cr_assert_eq(json_object_size(all), n, "variants.json has %zu variants, the test knows %zu",
                 json_object_size(all), n);
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(json_object_get(all, names[i]), "%s", names[i]);
    json_decref(all);
}

/* ---- API details -------------------------------------------------------------------------- */

Test(tokenizer, config_tokens_and_lookups)
{
    struct pgd_tokenizer *m = load("mistral"), *q = load("qwen3");
    cr_assert_eq(pgd_tokenizer_bos_id(m), 1);
    cr_assert_eq(pgd_tokenizer_eos_id(m), 2);
    cr_assert_eq(pgd_tokenizer_bos_id(q), -1);
    cr_assert_eq(pgd_tokenizer_eos_id(q), pgd_tokenizer_token_id(q, "<|im_end|>", 10));
    cr_assert(pgd_tokenizer_is_special(q, pgd_tokenizer_token_id(q, "<|im_end|>", 10)));
    cr_assert_not(pgd_tokenizer_is_special(q, pgd_tokenizer_token_id(q, "<think>", 7)));
    cr_assert_str_eq(pgd_tokenizer_token(m, 13), "<0x0A>");
    cr_assert_null(pgd_tokenizer_token(m, -1));
    cr_assert_null(pgd_tokenizer_token(m, 1 << 30));
    cr_assert_eq(pgd_tokenizer_vocab_size(q), 151669);
    pgd_tokenizer_destroy(m);
    pgd_tokenizer_destroy(q);
}

static enum pgd_status load_text(const char *json, char *err, size_t errlen)
{
    struct pgd_tokenizer *t = NULL;
    enum pgd_status st = pgd_tokenizer_load_json(json, strlen(json), NULL, 0, "x/tokenizer.json",
                                                 &t, err, errlen);
    pgd_tokenizer_destroy(t);
    return st;
}

#define MINI_MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

Test(tokenizer, errors_name_the_file_and_the_problem)
{
    char err[512];
    cr_assert_eq(load_text("{\"model\": ", err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, "x/tokenizer.json") && strstr(err, "malformed JSON"), "%s", err);
    cr_assert_eq(load_text("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", err, sizeof err),
                 PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "x/tokenizer.json") && strstr(err, "WordPiece"), "%s", err);
    cr_assert_eq(load_text("{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                           "{\"Regex\":\"(\\\\p{L}\"},\"behavior\":\"Isolated\"}}", err, sizeof err),
                 PGD_ERR_FORMAT);
    cr_assert(strstr(err, "x/tokenizer.json") && strstr(err, "regex"), "%s", err);
    cr_assert_eq(load_text("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a c\"]}}",
                           err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, "merges[0]"), "%s", err);
    cr_assert_eq(load_text("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}",
                           err, sizeof err), PGD_ERR_FORMAT);
    /* what pagoda refuses, each with the file, the section and the type in the message */
#define FUSED(d) "{" MINI_MODEL ",\"decoder\":{\"type\":\"Sequence\",\"decoders\":[" \
                 "{\"type\":\"Fuse\"}," d "]}}"
    static const struct { const char *json; enum pgd_status st; const char *n1, *n2; } bad[] = {
        { "{" MINI_MODEL ",\"normalizer\":{\"type\":\"Precompiled\"}}", PGD_ERR_FORMAT,
          "normalizer Precompiled", "\"precompiled_charsmap\" string" },
        { "{" MINI_MODEL ",\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
          "\"*!\"}}", PGD_ERR_FORMAT, "normalizer Precompiled", "not base64" },
        { "{" MINI_MODEL ",\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
          "\"CAAAAAAA\"}}", PGD_ERR_FORMAT, "normalizer Precompiled", "no valid trie" },
        { "{" MINI_MODEL ",\"normalizer\":{\"type\":\"Frobnicate\"}}", PGD_ERR_UNSUPPORTED,
          "normalizer type \"Frobnicate\"", "not supported" },
        { "{" MINI_MODEL ",\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},"
          "\"content\":\"\"}}", PGD_ERR_FORMAT, "normalizer Replace", "regex" },
        { "{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"Frobnicate\"}}", PGD_ERR_UNSUPPORTED,
          "pre_tokenizer type \"Frobnicate\"", "not supported" },
        { "{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"FixedLength\",\"length\":0}}",
          PGD_ERR_FORMAT, "FixedLength", "positive" },
        { "{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"CharDelimiterSplit\",\"delimiter\":\"ab\"}}",
          PGD_ERR_FORMAT, "CharDelimiterSplit", "one character" },
        { "{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"Punctuation\",\"behavior\":\"Sideways\"}}",
          PGD_ERR_FORMAT, "Punctuation", "unknown behavior \"Sideways\"" },
        { "{" MINI_MODEL ",\"decoder\":{\"type\":\"Frobnicate\"}}", PGD_ERR_UNSUPPORTED,
          "decoder type \"Frobnicate\"", "not supported" },
        { FUSED("{\"type\":\"CTC\"}"), PGD_ERR_UNSUPPORTED, "decoder CTC after Fuse", "" },
        { FUSED("{\"type\":\"WordPiece\"}"), PGD_ERR_UNSUPPORTED, "decoder WordPiece after", "" },
        { FUSED("{\"type\":\"BPEDecoder\"}"), PGD_ERR_UNSUPPORTED, "decoder BPEDecoder after", "" },
        { FUSED("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a\"},\"content\":\"b\"}"),
          PGD_ERR_UNSUPPORTED, "decoder Replace with a Regex after Fuse", "" },
        { "{" MINI_MODEL ",\"decoder\":{\"type\":\"CTC\",\"pad_token\":7}}", PGD_ERR_FORMAT,
          "decoder CTC", "\"pad_token\" is not a string" },
    };
#undef FUSED
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(load_text(bad[i].json, err, sizeof err), bad[i].st, "case %zu: %s", i, err);
        cr_assert(strstr(err, "x/tokenizer.json") && strstr(err, bad[i].n1) &&
                  strstr(err, bad[i].n2), "case %zu: %s", i, err);
    }
    /* Metaspace settings `tokenizers` refuses */
    static const struct { const char *json, *needle; } ms_bad[] = {
        { "{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}}",
          "\"replacement\" must be one character" },
        { "{" MINI_MODEL ",\"decoder\":{\"type\":\"Metaspace\"}}", "\"replacement\"" },
        { "{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\","
          "\"prepend_scheme\":\"sometimes\"}}", "unknown prepend_scheme \"sometimes\"" },
        { "{" MINI_MODEL ",\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"_\","
          "\"prepend_scheme\":\"first\",\"add_prefix_space\":false}}", "contradicts" },
    };
    for (size_t i = 0; i < sizeof ms_bad / sizeof ms_bad[0]; i++) {
        cr_assert_eq(load_text(ms_bad[i].json, err, sizeof err), PGD_ERR_FORMAT, "case %zu", i);
        cr_assert(strstr(err, "x/tokenizer.json") && strstr(err, "Metaspace") &&
                  strstr(err, ms_bad[i].needle), "case %zu: %s", i, err);
    }
    struct pgd_tokenizer *t;
    cr_assert_eq(pgd_tokenizer_load("/nonexistent-dir", &t, err, sizeof err), PGD_ERR_NOT_FOUND);
    cr_assert(strstr(err, "/nonexistent-dir/tokenizer.json"), "%s", err);
    cr_assert_null(t);
}

Test(tokenizer, merges_as_pairs_and_added_token_flags)
{
    /* A tiny byte-level-free model: merges given as pairs; an added token with lstrip/rstrip
     * swallows the spaces around it; a single_word token only matches as a whole word. */
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\" \":3},"
        "\"merges\":[[\"a\",\"b\"]]},"
        "\"added_tokens\":[{\"id\":10,\"content\":\"<m>\",\"lstrip\":true,\"rstrip\":true,"
        "\"special\":true,\"normalized\":false,\"single_word\":false},"
        "{\"id\":11,\"content\":\"ab\",\"single_word\":true,\"special\":false,"
        "\"normalized\":false,\"lstrip\":false,\"rstrip\":false}],"
        "\"decoder\":{\"type\":\"Fuse\"}}";
    char err[256];
    struct pgd_tokenizer *t;
    cr_assert_eq(pgd_tokenizer_load_json(json, strlen(json), NULL, 0, "mini", &t, err, sizeof err),
                 PGD_OK, "%s", err);
    struct pgd_tokens ids = { 0 };
    const char *in = "aab  <m>  ab b";
    cr_assert_eq(pgd_tokenizer_encode(t, in, strlen(in), false, &ids, err, sizeof err), PGD_OK);
    /* "aab" (ab inside a word: no single_word match) -> a ab; spaces eaten by <m>; "ab" alone
     * -> 11; " " and "b" */
    int32_t want[] = { 0, 2, 10, 11, 3, 1 };
    cr_assert_eq(ids.n, 6);
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(ids.ids[i], want[i], "position %zu", i);
    char *text;
    size_t tl;
    cr_assert_eq(pgd_tokenizer_decode(t, ids.ids, ids.n, true, &text, &tl, err, sizeof err), PGD_OK);
    cr_assert_str_eq(text, "aabab b");
    free(text);
    pgd_tokens_fini(&ids);
    pgd_tokenizer_destroy(t);
}
