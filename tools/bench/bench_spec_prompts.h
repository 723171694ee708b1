/* Text prompt sets for `pagoda bench spec --prompts FILE` (bench_spec_prompts.c). */
#ifndef PGD_TOOLS_BENCH_SPEC_PROMPTS_H
#define PGD_TOOLS_BENCH_SPEC_PROMPTS_H

#include <stdbool.h>
#include <stddef.h>

/* The two sets of a prompts file, each prompt the text the engine tokenizes. */
struct spec_prompts {
    char **set[2];             /* [0] repetitive, [1] free-form: [n[i]] owned strings */
    int n[2];
    bool chat;                 /* rendered through the model's chat template: tokenize
                                * without adding special tokens (the template has them) */
};

/* Reads FILE, a JSON object {"repetitive": [TEXT, ...], "free-form": [TEXT, ...]} (both
 * lists, each of at least one string). Each TEXT becomes one user message rendered through
 * model_dir's chat template with the generation prompt when the model has a template, else
 * stays as it is. Returns 0, or -1 with a message naming the file and key in err. */
int spec_prompts_load(const char *path, const char *model_dir, struct spec_prompts *p,
                      char *err, size_t errlen);
void spec_prompts_free(struct spec_prompts *p);

#endif
