/* The tiny-chat fixture model for the frontend fuzz targets (request, http): its folder, and
 * its chat template compiled once under small limits, rendered through a function of the
 * frontend's pgd_chat_render_fn shape. */
#ifndef PGD_TESTS_FUZZ_FIXTURE_H
#define PGD_TESTS_FUZZ_FIXTURE_H

#include <pagoda/frontend.h>

/* tests/fixtures/models/tiny-chat of the source tree (a static buffer). */
const char *fuzz_tiny_chat_dir(void);
/* Loads and compiles the fixture's chat template; aborts when it cannot (a broken fixture
 * is no fuzz finding). */
void fuzz_chat_init(void);
/* Renders with the template of fuzz_chat_init (ctx unused). */
enum pgd_status fuzz_chat_render(void *ctx, const char *messages_json, const char *tools_json,
                                 bool add_generation_prompt, const char *kwargs_json,
                                 char **out, char *err, size_t errlen);

#endif
