/* Fuzz target: encoding arbitrary bytes with the fixture tokenizers. The first byte picks the
 * tokenizer (tiny-chat's byte-level BPE, Qwen3's, Mistral's SentencePiece-style one) and
 * whether special tokens are added; the rest is the text.
 *
 * Checked on every input: encoding valid UTF-8 succeeds (invalid UTF-8 may be refused, with
 * a message); every id is inside the vocabulary; decoding the ids succeeds; and streaming
 * them one by one through pgd_detok gives deltas that are each whole UTF-8 and together equal
 * the decoded text (the contract of tokenizer.h). */
#include "tests/fuzz/fuzz.h"
#include <pagoda/tokenizer.h>
#include <string.h>
#include <utf8proc.h>

static const char *const dirs[] = {
    "tests/fixtures/models/tiny-chat", "tests/fixtures/tokenizer/qwen3",
    "tests/fixtures/tokenizer/mistral",
};
#define N_TOK (sizeof dirs / sizeof dirs[0])
static struct pgd_tokenizer *toks[N_TOK];

static void destroy_all(void)
{
    for (size_t i = 0; i < N_TOK; i++)
        pgd_tokenizer_destroy(toks[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (size_t i = 0; i < N_TOK; i++) {
        char dir[4096], err[512];
        snprintf(dir, sizeof dir, "%s/%s", fuzz_srcdir(), dirs[i]);
        if (pgd_tokenizer_load(dir, &toks[i], err, sizeof err)) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err);
            abort();
        }
    }
    atexit(destroy_all);
    return 0;
}

static bool valid_utf8(const char *s, size_t n)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (n > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)n, &cp);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Streams ids through a detokenizer; checks the deltas against the whole decode. */
static void check_stream(const struct pgd_tokenizer *tok, const int32_t *ids, size_t n,
                         const char *text, size_t text_len)
{
    struct pgd_detok d;
    FUZZ_CHECK(pgd_detok_init(&d, tok, false) == PGD_OK, "detok_init");
    char *joined = malloc(text_len + 1);
    size_t len = 0;
    bool fits = true;
    for (size_t i = 0; i <= n; i++) {
        const char *delta;
        size_t dl;
        enum pgd_status st = i < n ? pgd_detok_push(&d, ids[i], &delta, &dl)
                                   : pgd_detok_flush(&d, &delta, &dl);
        FUZZ_CHECK(st == PGD_OK, "detok of id %d: status %d", i < n ? ids[i] : -1, st);
        FUZZ_CHECK(valid_utf8(delta, dl), "delta %zu is not whole UTF-8", i);
        if (len + dl > text_len) {
            fits = false;
            break;
        }
        memcpy(joined + len, delta, dl);
        len += dl;
    }
    FUZZ_CHECK(fits && len == text_len && !memcmp(joined, text, len),
               "the streamed deltas (%zu bytes) differ from decode (%zu bytes)", len, text_len);
    free(joined);
    pgd_detok_fini(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct pgd_tokenizer *tok = toks[(data[0] >> 1) % N_TOK];
    bool add_special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct pgd_tokens t;
    pgd_tokens_init(&t);
    char err[512] = "";
    enum pgd_status st = pgd_tokenizer_encode(tok, text, len, add_special, &t, err, sizeof err);
    if (st != PGD_OK) {
        FUZZ_CHECK(!valid_utf8(text, len), "valid UTF-8 refused: %s", err);
        FUZZ_CHECK(err[0], "a refusal without a message");
        pgd_tokens_fini(&t);
        return 0;
    }
    int32_t vocab = pgd_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < t.n; i++)
        FUZZ_CHECK(t.ids[i] >= 0 && t.ids[i] < vocab, "id %d outside [0, %d)", t.ids[i], vocab);
    char *out = NULL;
    size_t out_len = 0;
    st = pgd_tokenizer_decode(tok, t.ids, t.n, false, &out, &out_len, err, sizeof err);
    FUZZ_CHECK(st == PGD_OK, "decode of encoded ids failed: %s", err);
    if (valid_utf8(out, out_len))
        check_stream(tok, t.ids, t.n, out, out_len);
    free(out);
    pgd_tokens_fini(&t);
    return 0;
}
