/* RMSNorm, with and without the fused residual add, and the residual add itself. */
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>

static void rmsnorm_row(const float *x, const float *w, float eps, int d, float *out)
{
    double ss = 0.0;             /* accumulate in double: d may be thousands */
    for (int i = 0; i < d; i++)
        ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / d + eps));
    for (int i = 0; i < d; i++)
        out[i] = x[i] * inv * w[i];
}

void pgd_cpu_rmsnorm(const float *x, const float *w, float eps, int64_t rows, int d, float *out)
{
    for (int64_t r = 0; r < rows; r++)
        rmsnorm_row(x + r * d, w, eps, d, out + r * d);
}

void pgd_cpu_add_rmsnorm(float *residual, const float *delta, const float *w, float eps,
                         int64_t rows, int d, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        float *res = residual + r * d;
        const float *dl = delta + r * d;
        for (int i = 0; i < d; i++)
            res[i] += dl[i];
        rmsnorm_row(res, w, eps, d, out + r * d);
    }
}

void pgd_cpu_add(float *x, const float *delta, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += delta[i];
}
