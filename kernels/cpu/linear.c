/* Dense linear layers through OpenBLAS sgemm. */
#include "kernels/cpu/cpu_kernels.h"
#include <cblas.h>

static void add_bias(const float *b, int n, int out, float *y)
{
    if (b)
        for (int r = 0; r < n; r++)
            for (int c = 0; c < out; c++)
                y[(size_t)r * out + c] += b[c];
}

void pgd_cpu_linear(const float *x, const float *w, const float *b, int n, int in, int out,
                    float *y)
{
    if (n == 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f,
                y, out);
    add_bias(b, n, out, y);
}

/* Weight columns per block: a block of w ([PGD_CPU_INVARIANT_COLS, in] floats) is read by
 * every row while it is still in the cache (256 KiB at in = 256; at in = 4096, 4 MiB, so
 * large layers run nearer gemv's speed, which is the price of the mode). */
#define PGD_CPU_INVARIANT_COLS 256

void pgd_cpu_linear_invariant(const float *x, const float *w, const float *b, int n, int in,
                              int out, float *y)
{
    /* sgemm's micro-kernels take rows two or more at a time and an odd last row alone, with
     * different orders of their sums: a row's result depends on its neighbours and on n.
     * Here every call is one row by one block of columns, and a call's shape depends only
     * on (in, out, the block), so y[r] is a function of x[r] alone. */
    for (int c0 = 0; c0 < out; c0 += PGD_CPU_INVARIANT_COLS) {
        const int cols = out - c0 < PGD_CPU_INVARIANT_COLS ? out - c0 : PGD_CPU_INVARIANT_COLS;
        for (int r = 0; r < n; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, cols, in, 1.0f,
                        x + (size_t)r * in, in, w + (size_t)c0 * in, in, 0.0f,
                        y + (size_t)r * out + c0, out);
    }
    add_bias(b, n, out, y);
}
