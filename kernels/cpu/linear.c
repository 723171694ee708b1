/* Dense linear layers through OpenBLAS sgemm. */
#include "kernels/cpu/cpu_kernels.h"
#include <cblas.h>

void pgd_cpu_linear(const float *x, const float *w, const float *b, int n, int in, int out,
                    float *y)
{
    if (n == 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f,
                y, out);
    if (b)
        for (int r = 0; r < n; r++)
            for (int c = 0; c < out; c++)
                y[(size_t)r * out + c] += b[c];
}
