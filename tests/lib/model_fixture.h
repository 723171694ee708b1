/* Test helpers: the tiny HF fixtures in tests/fixtures/models and their transformers
 * references (reference.json, written by scripts/make_fixtures.py). */
#ifndef PGD_TESTS_MODEL_FIXTURE_H
#define PGD_TESTS_MODEL_FIXTURE_H

#include "runtime/runner/runner.h"
#include <pagoda/engine.h>
#include <pagoda/registry.h>
#include <jansson.h>

/* The fixture directory of a model, e.g. fixture_dir("llama-f32"). Static buffer. */
const char *fixture_dir(const char *name);
/* A registry holding the build tree's plugins (and extra_dir's when non-NULL). */
struct pgd_registry *fixture_registry(const char *extra_dir);
/* Loads the model in dir on the CPU with the build's plugins and frees it at once: the
 * status and message of the load (for tests of refusals). */
enum pgd_status fixture_load_status(const char *dir, char *err, size_t errlen);
/* The JSON file `file` of fixture `name` (owned by the caller: json_decref); asserts it
 * parses. fixture_reference: its reference.json. */
json_t *fixture_json(const char *name, const char *file);
json_t *fixture_reference(const char *name);
/* A copy of the model directory src in a fresh temp dir (the caller's tmpdir [256]) with the
 * first `from` in `file` replaced by `to`, byte for byte (an edit of model.safetensors' JSON
 * header must keep its length); asserts `file` holds `from`. Returns tmpdir.
 * fixture_copy_remove deletes the copy (nothing when tmpdir is empty) and empties tmpdir. */
const char *fixture_copy_edited(const char *src, const char *file, const char *from,
                                const char *to, char *tmpdir);
void fixture_copy_remove(char *tmpdir);
/* A runner on the fixture with a pool of num_blocks blocks of block_size tokens. */
struct pgd__runner *fixture_runner(struct pgd_registry *reg, const char *name, int num_blocks,
                                   int block_size, int max_seqs);
/* The same for a model directory, loaded with --quantization `quantization` (NULL: none). */
struct pgd__runner *fixture_runner_dir(struct pgd_registry *reg, const char *dir,
                                       const char *quantization, int num_blocks, int block_size,
                                       int max_seqs);
/* The same with the KV cache in kv_cache_dtype (PGD_DTYPE_COUNT: the compute dtype). */
struct pgd__runner *fixture_runner_kv(struct pgd_registry *reg, const char *dir,
                                      const char *quantization, enum pgd_dtype kv_cache_dtype,
                                      int num_blocks, int block_size, int max_seqs);

/* An engine on the fixture (the build's plugins; paranoid checks on) on `device`, with a
 * pool of num_blocks blocks of block_size tokens, `budget` tokens and max_seqs sequences a
 * step (owned by the caller: pgd_engine_destroy). */
struct pgd_engine *model_engine(const char *name, enum pgd_device device, int num_blocks,
                                int block_size, int budget, int max_seqs);
/* The parameters model_engine gives an engine, for a caller to add to. */
struct pgd_engine_params model_engine_sized(enum pgd_device device, int num_blocks,
                                            int block_size, int budget, int max_seqs);
/* The same with the caller's parameters p (model_dir and plugin_path are filled in; the
 * rest is the caller's, e.g. speculative_config). */
struct pgd_engine *model_engine_params(const char *name, struct pgd_engine_params *p);
/* The same, async scheduling on, with the model runner behind the stand-in of a GPU's
 * async step pair (tests/lib/async_pair.h: a worker thread runs each submitted step), so
 * that the engine's async paths run the real model on the CPU. */
struct pgd_engine *model_engine_async_pair(const char *name, struct pgd_engine_params *p);
/* How many steps of such an engine sampled once their late masks came (submit_masks). */
long model_engine_late_steps(const struct pgd_engine *e);
/* e's stats once the last step's times are in (they are added just after its outputs went
 * out): polls, 1 ms apart and for 2 s at most, until step_timed reaches num_steps. */
void engine_settled_stats(struct pgd_engine *e, struct pgd_engine_stats *st);
/* Runs every prompt of the fixture's reference.json in one step on r (sequence s on blocks
 * 63 - (16 s + b) % 64: interleaved, descending ids) and asserts that each row's logits are
 * within tol (rel_max_diff) of its case's first_logits under ref_key ("native",
 * "float32", ...). r needs 64 blocks of 16 tokens and 8 sequences a step. */
void check_batched_first_logits(struct pgd__runner *r, const char *name, const char *ref_key,
                                double tol);

/* Preemption by swapping on r (the runner's swap space, runtime/runner/runner_swap.c):
 * computes a prompt's KV in some blocks and the logits of a decode step over them; swaps
 * those blocks out to the host, overwrites them with another prompt's KV, swaps them back
 * into other device blocks (descending ids: no run of consecutive blocks) and runs the same
 * decode step there: its logits must equal the first bit for bit (and the step over the
 * overwritten blocks must not). r needs 32 blocks of 4 tokens or more; gets 64 MiB of
 * swap space. */
void check_swap_round_trip(struct pgd__runner *r);

/* A float array from a JSON list (malloc'd; *n gets the length). */
float *json_floats(json_t *arr, int *n);
/* An int32 array from a JSON list (malloc'd; *n gets the length). */
int32_t *json_ints(json_t *arr, int *n);
/* max |a - b| / max |b| */
double rel_max_diff(const float *a, const float *b, int n);
int argmax(const float *x, int n);

/* Runs a whole greedy generation on the runner for one prompt: prefill in chunks of
 * `chunk` tokens (0 = all at once), then n_new single-token steps. Blocks are table[] (in
 * that order). Writes the generated tokens to out[n_new], the logits after the prompt to
 * first[vocab] and after the last generated token to last[vocab] (either may be NULL). */
void greedy_run(struct pgd__runner *r, const int32_t *prompt, int n_prompt, int n_new,
                int chunk, const int32_t *table, int32_t *out, float *first, float *last);

#endif
