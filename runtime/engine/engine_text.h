/* Internal: the engine's text path on the model directory's tokenizer.json. */
#ifndef PGD_RUNTIME_ENGINE_TEXT_H
#define PGD_RUNTIME_ENGINE_TEXT_H

#include "runtime/engine/textio.h"
#include <stdbool.h>
#include <stdio.h>

/* Fills *out from model_dir/tokenizer.json (+ tokenizer_config.json) and sets *found. A
 * directory without tokenizer.json is not an error (*found = false: token ids only); a
 * tokenizer file that is there but broken is, with a message naming it. out->ctx is owned
 * by whoever receives the textio (its destroy frees it). */
enum pgd_status pgd__engine_textio_load(const char *model_dir, struct pgd__textio *out,
                                        bool *found, char *err, size_t errlen);

#endif
