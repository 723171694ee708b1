/* Seeded random draws shared by the benchmarks: the generator, the ShareGPT-shaped lengths
 * and the gamma gaps of request arrivals (see bench_draw.h). */
#include "config.h"
#include "tools/bench/bench_draw.h"
#include <math.h>

uint64_t pgd_tool_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* 53 random bits, offset by half a step so that neither 0 nor 1 is ever drawn (log(0)). */
double pgd_tool_unif(uint64_t *x)
{
    return ((pgd_tool_splitmix(x) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(uint64_t *x)   /* Box-Muller */
{
    return sqrt(-2.0 * log(pgd_tool_unif(x))) * cos(2.0 * M_PI * pgd_tool_unif(x));
}

double pgd_tool_lognormal(uint64_t *x, double mean)
{
    double sigma = 1.0, mu = log(mean) - sigma * sigma / 2;
    return exp(mu + sigma * normal(x));
}

/* Marsaglia and Tsang's method for shape >= 1; a shape below 1 draws at shape + 1 and
 * scales by U^(1/shape) (the standard boost). */
double pgd_tool_gamma(uint64_t *x, double shape, double scale)
{
    if (shape < 1.0) {
        double g = pgd_tool_gamma(x, shape + 1.0, 1.0);
        return scale * g * pow(pgd_tool_unif(x), 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double z = normal(x), v = 1.0 + c * z;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = pgd_tool_unif(x);
        if (log(u) < 0.5 * z * z + d - d * v + d * log(v))
            return scale * d * v;
    }
}

void pgd_tool_arrivals(int n, double rate, double burstiness, uint64_t seed, double *t)
{
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 3;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += isfinite(burstiness) ? pgd_tool_gamma(&rng, burstiness, 1.0 / (rate * burstiness))
                                    : 1.0 / rate;
        t[i] = sum;
    }
    double scale = sum > 0 ? (n / rate) / sum : 1;
    for (int i = 0; i < n; i++)
        t[i] *= scale;
}

void pgd_tool_sharegpt_lengths(const struct pgd_tool_sharegpt_shape *s, uint64_t *rng, int *in,
                               int *out)
{
    double a = pgd_tool_lognormal(rng, s->mean_input), b = pgd_tool_lognormal(rng, s->mean_output);
    int i = a > s->max_input ? s->max_input : (int)lround(a);
    if (i < 4)
        i = 4;
    int cap = s->max_total - i;
    int n = b > cap ? cap : (int)lround(b);
    if (n < 4)
        n = 4;
    *in = i;
    *out = n;
}
