/* Internal: numeric ranges as regular expressions (gram_numrange.c), for the bounds of
 * JSON Schema's integers and numbers. The expressions use only digits, classes, groups,
 * alternation, ? and {m,n}, and `\.`: they go into grammar text as /regex/ terminals. */
#ifndef PGD_RUNTIME_GRAMMAR_NUMRANGE_H
#define PGD_RUNTIME_GRAMMAR_NUMRANGE_H

#include "runtime/base/buf.h"
#include <stdbool.h>

/* The JSON numbers the schema grammars write: at most 16 integer digits, 15 fraction
 * digits (see gram_schema.c). */
#define PGD__NUM_INT_DIGITS 16
#define PGD__NUM_FRAC_DIGITS 15
#define PGD__NUM_INT_LIMIT 9999999999999999LL      /* 16 nines */

/* Appends alternatives matching the decimal strings (no sign, no leading zeros) of the
 * integers of [lo, hi], 0 <= lo <= hi <= PGD__NUM_INT_LIMIT. */
void pgd__nonneg_int_range(struct pgd__buf *b, long long lo, long long hi);
/* The same for [lo, hi] with either sign (negatives as "-" digits; no "-0"). */
void pgd__int_range(struct pgd__buf *b, long long lo, long long hi);

/* Appends alternatives matching exactly the numbers x with lo <= x <= hi (< / > for an
 * exclusive bound; -INFINITY / INFINITY: none), written as JSON numbers without exponent
 * (at most 16 integer and 15 fraction digits; "-0" only when 0 is in the range). Bounds are
 * doubles, read as their shortest decimal (see gram_numrange.c). false (b untouched): no
 * such number can be written. */
bool pgd__num_range(struct pgd__buf *b, double lo, bool lo_excl, double hi, bool hi_excl);

#endif
