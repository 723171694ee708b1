/* Internal: stop strings over a stream of text deltas. The generated text accumulates in a
 * buffer; text is released to the client only once it can no longer become part of a stop
 * string (a suffix that is a prefix of some stop string is held back), and text from a
 * matched stop string on is never released (unless include_stop_str_in_output, which
 * releases the stop string itself). Stop strings may span any number of tokens. */
#ifndef PGD_RUNTIME_STOP_H
#define PGD_RUNTIME_STOP_H

#include "runtime/base/buf.h"
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgd__stop_text {
    struct pgd__buf text; /* the generated text so far (NUL-terminated), owned */
    size_t released;    /* bytes [0, released) went to the client */
    size_t scanned;     /* stop strings cannot start before this (already checked) */
};

void pgd__stop_text_fini(struct pgd__stop_text *t);

/* Appends delta and, when `check` (false while min_tokens is not reached), looks for the
 * stop strings (n_stops of them; empty strings are ignored) in the text not yet released.
 * Returns the index of the stop string that matched first (earliest start;
 * ties: the earlier stop in the list), or -1. *release gets how many more bytes, starting
 * at text.p + released, may go to the client now (and advances released). When a stop matched,
 * the text is cut after it (include) or at its start; nothing after is ever released. */
int pgd__stop_text_push(struct pgd__stop_text *t, const char *delta, size_t n,
                        const char *const *stops, int n_stops, bool check, bool include,
                        size_t *release);

/* At the end (length, EOS, abort): releases everything still held back. */
size_t pgd__stop_text_flush(struct pgd__stop_text *t);

/* One token's text through its sample's detokenizer (detok, a state of tio) and the stop
 * strings, as both text paths make it (engine_emit.c's token_text on the engine thread,
 * engine_reader_text.c on a stream's reader): when `push`, the token's delta appended; the
 * stop strings looked for when `check`; when none matched and `flush_detok`, what the
 * detokenizer still held (an unfinished UTF-8 sequence) appended unchecked; everything
 * held back released when one matched or at the sample's `end`. Returns the matched stop's
 * index or -1; what this token released is [*from, t->released) of t->text.p. */
struct pgd__textio;
int pgd__stop_text_token(struct pgd__stop_text *t, const struct pgd__textio *tio, void *detok,
                         int32_t token, bool push, bool check, bool flush_detok, bool end,
                         const char *const *stops, int n_stops, bool include, size_t *from);

#endif
