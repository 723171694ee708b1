/* Internal: UTF-8, decided as Unicode's table 3-7 of well-formed byte sequences decides it,
 * which is what Python's bytes.decode("utf-8") and Rust's str::from_utf8 accept:
 *
 *   U+0000..U+007F     00..7F
 *   U+0080..U+07FF     C2..DF  80..BF
 *   U+0800..U+0FFF     E0      A0..BF  80..BF
 *   U+1000..U+CFFF     E1..EC  80..BF  80..BF
 *   U+D000..U+D7FF     ED      80..9F  80..BF
 *   U+E000..U+FFFF     EE..EF  80..BF  80..BF
 *   U+10000..U+3FFFF   F0      90..BF  80..BF  80..BF
 *   U+40000..U+FFFFF   F1..F3  80..BF  80..BF  80..BF
 *   U+100000..U+10FFFF F4      80..8F  80..BF  80..BF
 *
 * Everything else is ill-formed: a stray continuation byte (80..BF), C0, C1 and F5..FF, an
 * overlong form (C0 80, E0 80..9F, F0 80..8F), a surrogate (ED A0..BF: U+D800..U+DFFF), a
 * code point above U+10FFFF (F4 90.., F5..), and a sequence cut short by the end of the span
 * or by a byte that is not a continuation.
 *
 * Replacement (pgd__utf8_append_lossy) follows "U+FFFD substitution of maximal subparts",
 * as Python's errors="replace" and Rust's String::from_utf8_lossy do: one U+FFFD for the
 * longest prefix of a well-formed sequence that stands there, or for one byte if none does.
 * Spans are byte pointers of any character type (const void *). */
#ifndef PGD_RUNTIME_BASE_UTF8_H
#define PGD_RUNTIME_BASE_UTF8_H

#include "runtime/base/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the character at s[0..n): returns its length (1..4) and stores it in *cp (cp may
 * be NULL), or returns 0 when s does not begin with a well-formed sequence (n == 0
 * included); *cp is then untouched. */
size_t pgd__utf8_next(const void *s, size_t n, uint32_t *cp);
/* Decodes the character at s, which the caller knows begins with a well-formed sequence
 * (text already checked with pgd__utf8_next or pgd__utf8_validate); *len gets its length.
 * Reads that sequence only, and checks nothing: for the inner loops over checked text. */
uint32_t pgd__utf8_decode_valid(const void *s, size_t *len);
/* The length of the longest well-formed prefix of s[0..n): n when the whole span is valid,
 * else the offset of the first byte of the first ill-formed sequence. */
size_t pgd__utf8_validate(const void *s, size_t n);
/* At an ill-formed sequence (pgd__utf8_next(s, n) == 0, n >= 1): how many bytes one U+FFFD
 * replaces (1..3), the maximal subpart. */
size_t pgd__utf8_bad_len(const void *s, size_t n);
/* Writes the UTF-8 form of cp into out; returns its length (1..4), or 0 (nothing written)
 * when cp is a surrogate or above U+10FFFF. */
size_t pgd__utf8_put(uint32_t cp, char out[4]);
/* Appends s[0..n) to b with each maximal subpart of an ill-formed sequence replaced by
 * U+FFFD (EF BF BD). false on out of memory (b.failed). */
bool pgd__utf8_append_lossy(struct pgd__buf *b, const void *s, size_t n);

#endif
