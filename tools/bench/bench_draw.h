/* Seeded random draws shared by the benchmarks (`pagoda bench throughput` and `pagoda bench
 * serve`): a splitmix64 generator, uniforms, the ShareGPT-shaped length distribution and
 * the gamma draws of request arrival gaps. Every function advances *state; the same seed
 * gives the same sequence on every machine. */
#ifndef PGD_TOOLS_BENCH_DRAW_H
#define PGD_TOOLS_BENCH_DRAW_H

#include <stdint.h>

/* A 64-bit draw (splitmix64). */
uint64_t pgd_tool_splitmix(uint64_t *state);
/* A uniform in the open interval (0, 1). */
double pgd_tool_unif(uint64_t *state);
/* A log-normal draw with the given mean and sigma 1. */
double pgd_tool_lognormal(uint64_t *state, double mean);
/* A gamma draw with the given shape (> 0) and scale: shape 1 is the exponential, the gaps
 * of a Poisson process. */
double pgd_tool_gamma(uint64_t *state, double shape, double scale);

/* The send times in seconds of n requests at `rate` requests/s (finite, > 0), as vLLM's
 * benchmark draws them: gaps of shape `burstiness` gamma draws (1: a Poisson process;
 * infinite: evenly spaced) of mean 1 / rate, their sum rescaled so that the last request
 * goes at n / rate; the same seed gives the same times. Into t[n]. */
void pgd_tool_arrivals(int n, double rate, double burstiness, uint64_t seed, double *t);

/* ShareGPT-shaped lengths: independent log-normals (sigma 1) of the given means, the input
 * capped at max_input, the output at max_total minus the input, both at least 4 (vLLM drops
 * shorter ShareGPT pairs). */
struct pgd_tool_sharegpt_shape {
    double mean_input, mean_output;
    int max_input, max_total;
};
#define PGD_TOOL_SHAREGPT_SHAPE_DEFAULT { 200, 180, 1024, 2048 }
void pgd_tool_sharegpt_lengths(const struct pgd_tool_sharegpt_shape *s, uint64_t *state,
                               int *in, int *out);

#endif
