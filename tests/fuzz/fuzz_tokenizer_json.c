/* Fuzz target: loading a tokenizer from its files (pgd_tokenizer_load_json): an input is a
 * tokenizer.json, optionally followed by a NUL byte and a tokenizer_config.json. A tokenizer
 * that loads then encodes and decodes a short text with special tokens in it.
 *
 * Checked: a refusal carries a message naming the file ("fuzz"); an accepted tokenizer
 * encodes to ids inside its vocabulary and decodes them. */
#include "tests/fuzz/fuzz.h"
#include <pagoda/tokenizer.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

static const char sample[] = "Hello, world! <|im_end|> 123 \xc3\xa9\xe2\x82\xac \n\n  x";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *cfg = nul ? (const char *)nul + 1 : NULL;
    size_t cfg_len = nul ? size - json_len - 1 : 0;
    struct pgd_tokenizer *tok = NULL;
    char err[512] = "";
    enum pgd_status st = pgd_tokenizer_load_json((const char *)data, json_len, cfg, cfg_len,
                                                 "fuzz", &tok, err, sizeof err);
    if (st != PGD_OK) {
        FUZZ_CHECK(!tok && strstr(err, "fuzz"), "refusal without the file's name: %s", err);
        return 0;
    }
    struct pgd_tokens t;
    pgd_tokens_init(&t);
    if (pgd_tokenizer_encode(tok, sample, sizeof sample - 1, true, &t, err, sizeof err) ==
        PGD_OK) {
        int32_t vocab = pgd_tokenizer_vocab_size(tok);
        for (size_t i = 0; i < t.n; i++)
            FUZZ_CHECK(t.ids[i] >= 0 && t.ids[i] < vocab, "id %d outside [0, %d)", t.ids[i],
                       vocab);
        char *out = NULL;
        size_t out_len = 0;
        if (pgd_tokenizer_decode(tok, t.ids, t.n, false, &out, &out_len, err, sizeof err) ==
            PGD_OK)
            FUZZ_CHECK(out && out[out_len] == '\0', "decode not NUL-terminated");
        free(out);
    }
    pgd_tokens_fini(&t);
    pgd_tokenizer_destroy(tok);
    return 0;
}
