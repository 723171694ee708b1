/* Internals of the tokenizer shared by runtime/tokenizer/tokenizer.c (loading, encode pipeline),
 * bpe.c (the BPE model), added_tokens.c (added tokens in text), normalize.c (normalizers),
 * pretokenize.c (pre-tokenizers), unicode_class.c + unicode_tables.c (character classes as
 * `tokenizers` defines them), detok.c (decoders, streaming) and tokenizer_util.c. */
#ifndef PGD_RUNTIME_TOKENIZER_INTERNAL_H
#define PGD_RUNTIME_TOKENIZER_INTERNAL_H

#include <pagoda/tokenizer.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Token ids index dense tables (id -> string, id -> flags), so an absurd id in a corrupt
 * tokenizer.json would cost memory and time in proportion: ids at or past this limit are
 * refused. The largest vocabularies in use hold about 260k tokens. */
#define PGD__MAX_TOKEN_ID (1 << 24)

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Byte buffers, UTF-8 and array growth come from the base layer. */
#include "runtime/base/buf.h"
#include "runtime/base/mem.h"
#include "runtime/base/utf8.h"

/* ---- the byte-level alphabet, small string helpers (tokenizer_util.c) ------------------- */
/* The byte-level alphabet of GPT-2: byte -> code point, and back (-1 for none). */
uint32_t pgd__bytelevel_char(uint8_t b);
int pgd__bytelevel_byte(uint32_t cp);
/* Appends to out the bytes that the characters of s[0..n) stand for in that alphabet. false
 * when one of them stands for none (or is not UTF-8): out is then back at its length on
 * entry; or when out of memory: out->failed is set. */
bool pgd__bytelevel_unmap(const char *s, size_t n, struct pgd__buf *out);

/* Appends s[0..n) to out with every occurrence of pat replaced by rep (pat empty: a copy). */
bool pgd__replace_all(const char *s, size_t n, const char *pat, size_t plen, const char *rep,
                      size_t rlen, struct pgd__buf *out);
/* A malloc'ed NUL-terminated copy of s[0..n), or NULL. Unlike strndup it copies all n bytes:
 * the JSON strings it copies may hold U+0000 and are used with their lengths. */
char *pgd__dupn(const char *s, size_t n);
/* The string value of obj[key] (obj a json_t object), or NULL. */
const char *pgd__jstr(const void *obj, const char *key);

/* ---- character classes (runtime/tokenizer/unicode_class.c) -------------------------------- */
struct pgd__cp_range { uint32_t lo, hi; };
struct pgd__cp_map { uint32_t from, to; };
struct pgd__cp_class { uint32_t lo, hi, id; };
/* generated tables (runtime/tokenizer/unicode_tables.c), sorted */
extern const struct pgd__cp_range pgd__uc_punct[], pgd__uc_numeric[], pgd__uc_word[],
    pgd__uc_mark[], pgd__uc_nonspacing[], pgd__uc_bert_ctrl[];
extern const size_t pgd__uc_punct_n, pgd__uc_numeric_n, pgd__uc_word_n, pgd__uc_mark_n,
    pgd__uc_nonspacing_n, pgd__uc_bert_ctrl_n;
extern const struct pgd__cp_map pgd__uc_lower_map[];
extern const size_t pgd__uc_lower_map_n;
extern const struct pgd__cp_class pgd__uc_script[];
extern const size_t pgd__uc_script_n;
bool pgd__uc_is_white_space(uint32_t c); /* char::is_whitespace */
bool pgd__uc_is_alnum(uint32_t c);       /* added tokens' single_word boundary */
bool pgd__uc_is_punct(uint32_t c);       /* Punctuation, BertPreTokenizer */
bool pgd__uc_is_numeric(uint32_t c);     /* Digits */
bool pgd__uc_is_word(uint32_t c);        /* Whitespace: Rust regex's \w */
bool pgd__uc_is_mark(uint32_t c);        /* StripAccents */
bool pgd__uc_is_nonspacing(uint32_t c);  /* BertNormalizer strip_accents */
bool pgd__uc_is_bert_control(uint32_t c); /* BertNormalizer clean_text removes it */
bool pgd__uc_is_chinese(uint32_t c);     /* BertNormalizer handle_chinese_chars */
/* UnicodeScripts' script class of c: equal numbers for one script (Hiragana, Katakana and
 * U+30FC count as Han), 0 for "Any" (the space, and what its table does not list). */
uint32_t pgd__uc_script_class(uint32_t c);
/* Lowercase of c (1 or 2 characters) into out; returns the count. */
size_t pgd__uc_lower(uint32_t c, uint32_t out[2]);
/* The last character of s[0..n) (valid UTF-8), or (uint32_t)-1 if empty; *start its offset. */
uint32_t pgd__uc_last_char(const char *s, size_t n, size_t *start);

/* ---- string -> id hash table (keys copied and owned) ------------------------------------ */
struct pgd__strmap_slot {
    uint64_t hash;
    uint32_t off, len; /* key at keys.p + off */
    int32_t val;       /* -1: empty slot */
};
struct pgd__strmap {
    struct pgd__strmap_slot *slots; /* [mask + 1] */
    size_t mask, count;
    struct pgd__buf keys;
};
bool pgd__strmap_init(struct pgd__strmap *m, size_t expected);
void pgd__strmap_free(struct pgd__strmap *m);
/* Sets key -> val (replacing an existing value). false on out of memory. */
bool pgd__strmap_put(struct pgd__strmap *m, const char *key, size_t len, int32_t val);
int32_t pgd__strmap_get(const struct pgd__strmap *m, const char *key, size_t len); /* -1 */

/* ---- BPE model (runtime/tokenizer/bpe.c) ---------------------------------------------------------- */
struct pgd__merge_slot {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX: empty */
    uint32_t rank;
    int32_t new_id;
};
struct pgd__bpe {
    struct pgd__strmap vocab; /* token string -> id */
    char **id_str;            /* [n_ids] token strings by id (NULL for holes), owned */
    uint32_t *id_len;         /* [n_ids] their lengths */
    int32_t n_ids;
    struct pgd__merge_slot *merges; /* [merge_mask + 1] */
    size_t merge_mask, n_merges;
    int32_t unk_id; /* -1: none */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix, or NULL */
    int32_t fallback_ids[256]; /* <0xXX> ids or -1 */
    /* Byte-level fast path: the pre-tokenizer ends in ByteLevel, so a piece is raw bytes and
     * byte b is the symbol byte_ids[b]; raw_vocab maps raw bytes -> id for ignore_merges. */
    bool bytelevel;
    int32_t byte_ids[256];
    struct pgd__strmap raw_vocab;
    /* Character pairs (a << 32 | b) that occur side by side inside some token: between two
     * characters that are tokens and do not form such a pair, no merge can ever reach across,
     * so a long piece is cut there and each part merged alone (same result, small heaps). */
    uint64_t *pairs; /* [pair_mask + 1], UINT64_MAX: empty; NULL: no cutting */
    size_t pair_mask;
};
struct json_t;
/* Reads the "model" object. name is for error messages. */
enum pgd_status pgd__bpe_load(struct pgd__bpe *m, const void *model_json, const char *name,
                              char *err, size_t errlen);
/* Prepares the byte-level fast path (after the pre-tokenizer is known). */
enum pgd_status pgd__bpe_enable_bytelevel(struct pgd__bpe *m);
void pgd__bpe_free(struct pgd__bpe *m);
/* Per-call scratch space for BPE, owned by the caller. */
struct pgd__bpe_scratch {
    void *sym;   /* symbols */
    size_t sym_cap;
    void *heap;  /* merge candidates */
    size_t heap_cap;
};
void pgd__bpe_scratch_free(struct pgd__bpe_scratch *s);
/* Tokenizes one pre-tokenized piece (UTF-8, or raw bytes in byte-level mode) and appends
 * the ids to out. */
enum pgd_status pgd__bpe_tokenize(const struct pgd__bpe *m, struct pgd__bpe_scratch *s,
                                  const char *piece, size_t len, struct pgd_tokens *out);
bool pgd__tokens_push(struct pgd_tokens *t, int32_t id);

/* ---- normalizers and pre-tokenizers (runtime/tokenizer/pretokenize.c) ------------------------------ */
enum pgd__norm_kind { PGD__NORM_NFC, PGD__NORM_NFD, PGD__NORM_NFKC, PGD__NORM_NFKD,
                      PGD__NORM_PREPEND, PGD__NORM_REPLACE, PGD__NORM_STRIP,
                      PGD__NORM_LOWERCASE, PGD__NORM_STRIP_ACCENTS, PGD__NORM_NMT,
                      PGD__NORM_BYTELEVEL,
                      /* BertNormalizer's steps (with NFD and LOWERCASE) */
                      PGD__NORM_BERT_CLEAN, PGD__NORM_BERT_CHINESE, PGD__NORM_BERT_STRIP,
                      PGD__NORM_PRECOMPILED };
struct pgd__norm {
    enum pgd__norm_kind kind;
    char *a, *b; /* Prepend: a; Replace: a (or re) -> b; Precompiled: b the strings; owned */
    size_t alen, blen;
    uint32_t *trie;   /* Precompiled: the double array [trie_n]; owned */
    size_t trie_n;
    pcre2_code *re;   /* Replace with a Regex pattern; owned */
    bool left, right; /* Strip */
};
enum pgd__split_behavior { PGD__SPLIT_REMOVED, PGD__SPLIT_ISOLATED, PGD__SPLIT_MERGED_PREV,
                           PGD__SPLIT_MERGED_NEXT, PGD__SPLIT_CONTIGUOUS };
enum pgd__pretok_kind { PGD__PRE_SPLIT, PGD__PRE_BYTELEVEL, PGD__PRE_METASPACE,
                        PGD__PRE_FIXED_LENGTH, PGD__PRE_SCRIPTS, PGD__PRE_WHITESPACE };
/* A Split on a class of characters, each character its own match (as `tokenizers` splits on
 * a char predicate): Whitespace(Split), Digits, Punctuation, BertPreTokenizer,
 * CharDelimiterSplit. */
enum pgd__char_class { PGD__CC_NONE, PGD__CC_WHITESPACE, PGD__CC_NUMERIC, PGD__CC_PUNCT,
                       PGD__CC_CHAR };
enum pgd__prepend_scheme { PGD__PREPEND_ALWAYS, PGD__PREPEND_FIRST, PGD__PREPEND_NEVER };
struct pgd__pretok {
    enum pgd__pretok_kind kind;
    pcre2_code *re;     /* Split with a regex; owned */
    enum pgd__char_class cls; /* Split on a class of characters (re and str NULL) */
    uint32_t delim;     /* PGD__CC_CHAR: the character */
    size_t length;      /* FixedLength: characters per piece */
    char *str;          /* Split with a string, or Metaspace replacement (UTF-8); owned */
    size_t slen;
    enum pgd__split_behavior behavior;
    bool invert;
    bool add_prefix_space; /* ByteLevel */
    bool map_bytes;        /* ByteLevel: false when the BPE fast path reads raw bytes */
    enum pgd__prepend_scheme prepend; /* Metaspace */
    bool split;                       /* Metaspace */
};

/* Precompiled (runtime/tokenizer/precompiled.c): reads the base64 "precompiled_charsmap" into
 * nm->trie and nm->b; runs it over s[0..n) into out. */
enum pgd_status pgd__precompiled_load(struct pgd__norm *nm, const char *b64, size_t len,
                                      const char *name, char *err, size_t errlen);
bool pgd__precompiled_normalize(const struct pgd__norm *nm, const char *s, size_t n,
                                struct pgd__buf *out, bool *first_deleted);

/* A list of pieces: spans into a buffer. */
struct pgd__span { size_t off, len; bool first; /* starts at offset 0 of the input */ };
struct pgd__pieces {
    struct pgd__buf text;
    struct pgd__span *v;
    size_t n, cap;
};
bool pgd__pieces_add(struct pgd__pieces *p, size_t off, size_t len, bool first);
void pgd__pieces_free(struct pgd__pieces *p);

/* Normalizes s[0..len) into out (tmp is scratch). *at_origin (may be NULL) tells whether the
 * output's first character still stands for the input's first one, i.e. no normalizer deleted
 * leading characters (Strip, Replace with ""): `tokenizers` aligns each normalized character
 * with the original, and Metaspace's prepend_scheme "first" asks for original offset 0. */
enum pgd_status pgd__normalize(const struct pgd__norm *v, size_t n, const char *s, size_t len,
                               struct pgd__buf *out, struct pgd__buf *tmp, bool *at_origin);
/* Runs the pre-tokenizers over in (its pieces), leaving the result in *in; tmp is scratch. */
enum pgd_status pgd__pretokenize(const struct pgd__pretok *v, size_t n, struct pgd__pieces *in,
                                 struct pgd__pieces *tmp, pcre2_match_data *md,
                                 pcre2_match_context *mc, char *err, size_t errlen);
/* ---- regular expressions (runtime/tokenizer/regex.c) ------------------------------------- */
/* Compiles a tokenizer.json (Oniguruma) regex with PCRE2, JIT included. */
pcre2_code *pgd__regex_compile(const char *pattern, size_t len, char *err, size_t errlen);
/* Appends s[0..n) to out with every match of re replaced by rep[0..rlen) (literally), matches
 * found as `tokenizers` finds them (empty ones included). *first_deleted: a non-empty match
 * at offset 0 was replaced by nothing. */
enum pgd_status pgd__regex_replace(const pcre2_code *re, const char *s, size_t n, const char *rep,
                                   size_t rlen, struct pgd__buf *out, bool *first_deleted);

/* ---- added tokens ------------------------------------------------------------------------ */
struct pgd__added {
    int32_t id;
    char *content; /* owned */
    size_t len;
    bool special, lstrip, rstrip, single_word, normalized;
};
/* A byte trie for leftmost-longest matching. */
struct pgd__trie_node {
    int32_t child, sibling; /* -1: none */
    int32_t token;          /* index into the added tokens, -1: none */
    unsigned char byte;
};
struct pgd__matcher {
    struct pgd__trie_node *nodes;
    size_t n, cap;
    bool first[256];
    bool empty;
};
void pgd__matcher_free(struct pgd__matcher *m);
bool pgd__matcher_add(struct pgd__matcher *m, const char *s, size_t len, int32_t token);
/* Splits s[0..len) around matches: for each piece calls fn(ctx, off, len, token index or -1).
 * Applies each token's lstrip/rstrip/single_word. */
enum pgd_status pgd__matcher_split(const struct pgd__matcher *m, const struct pgd__added *tokens,
                                   const char *s, size_t len,
                                   enum pgd_status (*fn)(void *ctx, size_t off, size_t len,
                                                         int32_t token),
                                   void *ctx);

/* ---- decoders (runtime/tokenizer/detok.c) --------------------------------------------------------- */
enum pgd__dec_kind { PGD__DEC_BYTELEVEL, PGD__DEC_REPLACE, PGD__DEC_BYTEFALLBACK, PGD__DEC_FUSE,
                     PGD__DEC_STRIP, PGD__DEC_METASPACE, PGD__DEC_WORDPIECE, PGD__DEC_BPE,
                     PGD__DEC_CTC };
struct pgd__dec {
    enum pgd__dec_kind kind;
    bool fused; /* runs on the one fused string (after Fuse or ByteLevel) */
    /* owned strings: Replace pat -> content; WordPiece prefix = pat; BPEDecoder suffix = pat;
     * CTC pad_token = pat, word_delimiter_token = content */
    char *pat, *content;
    size_t patlen, clen;
    pcre2_code *re; /* Replace with a Regex pattern; owned */
    bool cleanup;   /* WordPiece, CTC */
    uint32_t ch;     /* Strip: the character; Metaspace: the replacement */
    size_t start, stop;
    bool strip_first; /* Metaspace: prepend_scheme != never */
};

/* A byte-fallback token "<0xNN>" (s[0, n)): true with its byte (detok.c). */
bool pgd__byte_token(const char *s, size_t n, unsigned char *byte);

/* ---- the tokenizer ---------------------------------------------------------------------- */
struct pgd_tokenizer {
    char *name;
    struct pgd__bpe bpe;
    struct pgd__added *added; /* [n_added] */
    size_t n_added;
    int32_t *added_by_id;     /* [bpe.n_ids]: index into added, or -1 */
    int32_t n_ids;            /* one more than the largest id */
    struct pgd__matcher match_raw, match_norm;
    struct pgd__norm *norms;
    size_t n_norms;
    struct pgd__pretok *pretoks;
    size_t n_pretoks;
    bool has_regex;
    int32_t *tmpl_pre, *tmpl_post; /* ids the post-processor adds around the sequence */
    size_t n_tmpl_pre, n_tmpl_post;
    struct pgd__dec *decs;
    size_t n_decs;
    bool no_decoder; /* tokens are joined with spaces */
    int32_t bos_id, eos_id;
};

/* Loads the "normalizer", "pre_tokenizer" and "decoder" sections. */
enum pgd_status pgd__load_normalizer(struct pgd_tokenizer *t, const void *json, char *err,
                                     size_t errlen);
enum pgd_status pgd__load_pretokenizer(struct pgd_tokenizer *t, const void *json, char *err,
                                       size_t errlen);
enum pgd_status pgd__load_decoder(struct pgd_tokenizer *t, const void *json, char *err,
                                  size_t errlen);
/* Reads the settings of a Metaspace pre-tokenizer or decoder (json: its object; what:
 * "pre_tokenizer" or "decoder", for messages) as `tokenizers` does: "replacement" one
 * character, "prepend_scheme" always/first/never (default always; files older than the field
 * have "add_prefix_space", false meaning never), "split" (default true). *rep (UTF-8, *rep_len
 * bytes) points into json. */
enum pgd_status pgd__metaspace_settings(const struct pgd_tokenizer *t, const void *json,
                                        const char *what, const char **rep, size_t *rep_len,
                                        enum pgd__prepend_scheme *scheme, bool *split, char *err,
                                        size_t errlen);
/* The token string of id (added tokens first), or NULL. */
const char *pgd__token_str(const struct pgd_tokenizer *t, int32_t id, size_t *len);

#endif
