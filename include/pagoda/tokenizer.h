/* Tokenizers: Hugging Face tokenizer.json (+ tokenizer_config.json) read in C.
 *
 * Supported, with the same results as the `tokenizers` Rust/Python package:
 *   - models: BPE (merges as "a b" strings or ["a","b"] pairs, ignore_merges, byte_fallback,
 *     unk_token, fuse_unk, continuing_subword_prefix, end_of_word_suffix);
 *   - normalizers: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace (string pattern), Strip;
 *   - pre-tokenizers: Sequence, Split (regex or string, every behaviour, invert), ByteLevel,
 *     Metaspace (prepend_scheme always/first/never, split, or the older add_prefix_space);
 *   - added tokens with special, lstrip, rstrip, single_word and normalized, matched in the
 *     text before the model runs (leftmost, then longest);
 *   - post-processors: TemplateProcessing, ByteLevel, Sequence;
 *   - decoders: ByteLevel, Replace (string), ByteFallback, Fuse, Strip, Metaspace, Sequence.
 * A tokenizer is immutable once loaded: any number of threads may encode and decode with it.
 *
 * Text in is bytes. Encoding treats invalid UTF-8 the way Python's
 * bytes.decode("utf-8", errors="replace") does: each maximal invalid subsequence becomes one
 * U+FFFD, and the result is tokenized. Token ids out of range are skipped by decode (as the
 * `tokenizers` package does). */
#ifndef PAGODA_TOKENIZER_H
#define PAGODA_TOKENIZER_H

#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_tokenizer;

/* Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json (bos/eos token
 * strings; for Llama-family tokenizer classes, add_bos_token/add_eos_token rebuild the BOS/EOS
 * template the way transformers does). On success *out is a new tokenizer the caller frees with
 * pgd_tokenizer_destroy(). Errors name the file and what was wrong in it. */
enum pgd_status pgd_tokenizer_load(const char *dir, struct pgd_tokenizer **out, char *err,
                                   size_t errlen);

/* Like pgd_tokenizer_load() from text in memory. config (may be NULL) is the text of a
 * tokenizer_config.json; name is used in error messages. The texts are not kept. */
enum pgd_status pgd_tokenizer_load_json(const char *json, size_t json_len, const char *config,
                                        size_t config_len, const char *name,
                                        struct pgd_tokenizer **out, char *err, size_t errlen);

void pgd_tokenizer_destroy(struct pgd_tokenizer *tok);

/* A growable array of token ids that the caller owns: zero-initialize it (or call
 * pgd_tokens_init), pass it to pgd_tokenizer_encode as often as wanted, free it with
 * pgd_tokens_fini. */
struct pgd_tokens {
    int32_t *ids; /* [n], malloc'ed, owned by the struct */
    size_t n, cap;
};
void pgd_tokens_init(struct pgd_tokens *t);
void pgd_tokens_fini(struct pgd_tokens *t);

/* Appends the ids of text[0..len) to out. add_special inserts what the post-processor adds
 * (BOS for Llama-2/Mistral, nothing for Qwen); special tokens written inside the text are always
 * recognised, as the `tokenizers` package does. */
enum pgd_status pgd_tokenizer_encode(const struct pgd_tokenizer *tok, const char *text, size_t len,
                                     bool add_special, struct pgd_tokens *out, char *err,
                                     size_t errlen);

/* Decodes ids[0..n) to text. On success *text is a NUL-terminated malloc'ed string the caller
 * frees (*text_len excludes the NUL; the text may itself contain NUL bytes). skip_special leaves
 * out the added tokens marked special. */
enum pgd_status pgd_tokenizer_decode(const struct pgd_tokenizer *tok, const int32_t *ids, size_t n,
                                     bool skip_special, char **text, size_t *text_len, char *err,
                                     size_t errlen);

/* One more than the largest token id. */
int32_t pgd_tokenizer_vocab_size(const struct pgd_tokenizer *tok);
/* The token's string as written in tokenizer.json (e.g. "Ġthe", "<0x0A>", "<|im_end|>"), owned
 * by the tokenizer; NULL for an id with no token. */
const char *pgd_tokenizer_token(const struct pgd_tokenizer *tok, int32_t id);
/* The id of a token string (vocabulary or added token), or -1. */
int32_t pgd_tokenizer_token_id(const struct pgd_tokenizer *tok, const char *token, size_t len);
/* Whether id is an added token marked special (skipped by skip_special). */
bool pgd_tokenizer_is_special(const struct pgd_tokenizer *tok, int32_t id);
/* BOS/EOS ids from tokenizer_config.json (bos_token, eos_token), or from the post-processor's
 * template for BOS; -1 when the tokenizer has none. */
int32_t pgd_tokenizer_bos_id(const struct pgd_tokenizer *tok);
int32_t pgd_tokenizer_eos_id(const struct pgd_tokenizer *tok);

/* Incremental detokenization for streaming, one state per request:
 *
 *     struct pgd_detok d;
 *     pgd_detok_init(&d, tok, skip_special);
 *     for each generated id: pgd_detok_push(&d, id, &delta, &len);  send delta
 *     pgd_detok_flush(&d, &delta, &len);  send delta (what was held back)
 *     pgd_detok_fini(&d);
 *
 * The deltas concatenated equal pgd_tokenizer_decode() of all the ids, and every delta is whole
 * UTF-8 (text is held back while a character, or a run of byte-fallback tokens, is incomplete).
 * A delta points into the state and stays valid until the next call on it. The fields are
 * private. */
struct pgd_detok {
    const struct pgd_tokenizer *tok; /* borrowed; must outlive the state */
    bool skip_special;
    void *priv; /* owned */
};
enum pgd_status pgd_detok_init(struct pgd_detok *d, const struct pgd_tokenizer *tok,
                               bool skip_special);
enum pgd_status pgd_detok_push(struct pgd_detok *d, int32_t id, const char **delta,
                               size_t *delta_len);
/* Ends the stream: returns the text still held back. The state may be pushed to again after,
 * as a new stream. */
enum pgd_status pgd_detok_flush(struct pgd_detok *d, const char **delta, size_t *delta_len);
void pgd_detok_fini(struct pgd_detok *d);

#ifdef __cplusplus
}
#endif
#endif
