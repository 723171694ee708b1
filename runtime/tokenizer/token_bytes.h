/* Internal: the bytes one token adds to a text when it comes in the middle of a sequence,
 * for the grammar engine's vocabulary (runtime/grammar/gram_vocab.c). */
#ifndef PGD_RUNTIME_TOKEN_BYTES_H
#define PGD_RUNTIME_TOKEN_BYTES_H

#include "runtime/base/buf.h"
#include <pagoda/tokenizer.h>

/* Appends token id's bytes to out: an added token's content as written; a vocabulary
 * token through the decoder chain token by token (ByteLevel: the bytes its characters stand
 * for; ByteFallback: <0xNN> is the byte NN; Replace and Metaspace: their substitutions;
 * Strip, which only trims the start of a whole text, is skipped). The bytes may be a part
 * of a UTF-8 character. false when id has no token (or out of memory: out->failed). */
bool pgd__token_bytes(const struct pgd_tokenizer *tok, int32_t id, struct pgd__buf *out);

#endif
