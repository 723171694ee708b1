/* Gated activations: SiLU (Llama, Qwen, Mistral) and tanh-GELU (Gemma) times the up half. */
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>

static float act_fn(enum pgd_act act, float x)
{
    switch (act) {
    case PGD_ACT_SILU:
        return x / (1.0f + expf(-x));
    case PGD_ACT_GELU_TANH: {
        const float c = 0.7978845608028654f;  /* sqrt(2 / pi) */
        return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    }
    return x;
}

void pgd_cpu_act_mul(enum pgd_act act, const float *gate_up, int n, int inter, float *out)
{
    for (int r = 0; r < n; r++) {
        const float *g = gate_up + (size_t)r * 2 * inter;
        const float *u = g + inter;
        float *o = out + (size_t)r * inter;
        for (int i = 0; i < inter; i++)
            o[i] = act_fn(act, g[i]) * u[i];
    }
}
