/* A checkpoint the tensor-parallel tests write at start: a Llama with every bias on (q/k/v
 * and gate/up column-sharded with their biases, o_proj and down_proj row-parallel with
 * their biases added once), a single KV head (replicated on every rank) and a vocabulary
 * that does not split evenly over 4 ranks, none of which the transformers fixtures of
 * tests/fixtures have. Random float32 values from a fixed seed. */
#ifndef PGD_TESTS_DIST_TP_FIXTURE_H
#define PGD_TESTS_DIST_TP_FIXTURE_H

#include <stdbool.h>

/* Writes config.json and model.safetensors into dir; 0 on success. */
int tp_fixture_write(const char *dir);

#endif
