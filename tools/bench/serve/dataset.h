/* The workload of `pagoda bench serve`: num_prompts prompts with their lengths, from vLLM's
 * "random" dataset (uniform lengths around --random-input-len/--random-output-len, a shared
 * random prefix), a ShareGPT JSON file, or the ShareGPT-shaped synthetic lengths of
 * `pagoda bench throughput --dataset sharegpt` (bench_draw.h).
 *
 * Token counts without a tokenizer in the client: prompts of token ids (the completions
 * endpoint takes "prompt" as a list of ints) are exact; text prompts (chat, a ShareGPT file,
 * or a server without /tokenize) are counted with the server's /tokenize when it has one
 * (pagoda's and vLLM's do), else estimated (a word a token, 4 characters a token). */
#ifndef PGD_TOOLS_BENCH_SERVE_DATASET_H
#define PGD_TOOLS_BENCH_SERVE_DATASET_H

#include "tools/bench/bench_draw.h"
#include "tools/bench/serve/conn.h"
#include <jansson.h>
#include <stdbool.h>

struct bs_prompt {
    json_t *prompt;     /* a string, or an array of token ids (owned) */
    int prompt_len;     /* its tokens */
    int output_len;     /* max_tokens to ask for */
};

enum bs_dataset_kind { BS_DATA_RANDOM, BS_DATA_SHAREGPT };

struct bs_dataset_params {
    enum bs_dataset_kind kind;
    const char *path;                  /* sharegpt: the JSON file; NULL: synthetic lengths */
    int num_prompts;
    int input_len, output_len, prefix_len;   /* random */
    double range_ratio;                      /* random: in [0, 1) */
    struct pgd_tool_sharegpt_shape shape;    /* sharegpt without a file */
    int sharegpt_output_len;                 /* sharegpt file: 0 = the reply's length */
    bool text;                         /* text prompts even where ids would do (chat) */
    uint64_t seed;
    const struct bs_conn *conn;        /* /tokenize */
};

/* *out: num_prompts prompts (free with bs_dataset_free). *counted: "exact" (ids, or all
 * counted by the server's /tokenize) or "estimated". Returns 0, or -1 with err. */
int bs_dataset_build(const struct bs_dataset_params *p, struct bs_prompt **out,
                     const char **counted, char *err, size_t errlen);
void bs_dataset_free(struct bs_prompt *p, int n);

#endif
