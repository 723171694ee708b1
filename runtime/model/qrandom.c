/* Random quantized layers for models loaded with random weights (--load-format dummy), in
 * the canonical layouts of include/pagoda/quant.h (pgd_model_random_wq / _fp8 in
 * include/pagoda/model.h). A quant plugin asks for them in the layout its
 * quantization_config describes (bits, group size, act-order; FP8 scale granularity), so that
 * a benchmark shape runs the same kernels a real checkpoint of that layout would.
 *
 * Scaled like the dense random weights (runtime/model/model.c: uniform in +-sqrt(3 / in),
 * an RMS of 1 / sqrt(in)), so activations stay in the range they have with bf16 random
 * weights: the integer fields are uniform over 0..2^bits-1 with the zero at 2^(bits-1),
 * the e4m3 codes have a fixed set of magnitudes, and the scales divide out their RMS.
 *
 * Fast enough for an 8B shape: the packed words are drawn 64 bits at a time from a
 * counter-based generator (each word's value depends on its index alone), split over a few
 * threads; the same model seed gives the same tensors whatever the thread count. */
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "runtime/base/parallel.h"
#include <pagoda/model.h>
#include <pagoda/quant.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pgd_model_random_weights(const struct pgd_model_ctx *ctx)
{
    return ctx->m->random_weights;
}

/* Word i of the stream `seed` (a 64-bit finalizer over a Weyl sequence). */
static uint64_t rand_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 27)) * 0x3c79ac492ba7b653ull;
    z = (z ^ (z >> 33)) * 0x1c69b3f74ac4ae35ull;
    return z ^ (z >> 27);
}

static float uniform01(uint64_t r)
{
    return (float)(r >> 40) * (1.0f / 16777216.0f);
}

/* Eight e4m3 codes from 64 random bits: each byte keeps its drawn sign (bit 7) and mantissa
 * (bits 0..2) and gets an exponent field of 11..14 from two drawn bits, i.e. magnitudes
 * 16..240 (no zero, no NaN). No field carries into the next byte (14 << 3 < 128). */
static uint64_t fp8_codes(uint64_t r)
{
    return (r & 0x8787878787878787ull) |
           ((((r >> 3) & 0x0303030303030303ull) + 0x0b0b0b0b0b0b0b0bull) << 3);
}

/* The RMS of the values fp8_codes draws (each exponent and mantissa equally likely). */
static double fp8_codes_rms(void)
{
    double sum = 0;
    for (unsigned e = 11; e <= 14; e++)
        for (unsigned mant = 0; mant < 8; mant++) {
            double v = pgd_fp8_e4m3_to_float((uint8_t)(e << 3 | mant));
            sum += v * v;
        }
    return sqrt(sum / 32);
}

struct fill {
    unsigned char *dst;
    size_t bytes;
    uint64_t seed;
    bool fp8;                  /* e4m3 codes, else raw bits */
};

/* The 8-byte words [w0, w1) of a fill (pgd__parallel_for's range). */
static bool fill_range(void *arg, int64_t w0, int64_t w1)
{
    const struct fill *f = arg;
    for (size_t w = (size_t)w0; w < (size_t)w1; w++) {
        uint64_t r = rand_at(f->seed, w);
        if (f->fp8)
            r = fp8_codes(r);
        size_t off = w * 8, k = f->bytes - off < 8 ? f->bytes - off : 8;
        memcpy(f->dst + off, &r, k);
    }
    return true;
}

/* Fills `bytes` bytes at dst from the stream `seed`, on up to 8 threads of at least 1M
 * words each for large layers. */
static void fill_bytes(void *dst, size_t bytes, uint64_t seed, bool fp8)
{
    struct fill f = { .dst = dst, .bytes = bytes, .seed = seed, .fp8 = fp8 };
    (void)pgd__parallel_for((int64_t)((bytes + 7) / 8), 1 << 20, 8, fill_range, &f);
}

/* Per-group (or per-channel) scales: base times a factor in [0.75, 1.25), as real scales
 * vary from group to group; a single (per-tensor) scale is base itself. */
static void fill_scales(float *scales, size_t n, float base, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        scales[i] = n == 1 ? base : base * (0.75f + 0.5f * uniform01(rand_at(seed, i)));
}

/* An act-order permutation of in channels, drawn from the layer's parent module and width
 * (model.layers.3.self_attn, in): the q/k/v (and gate/up) parts of a fused layer see the same
 * inputs and must share it, as a real checkpoint's do. */
static void fill_perm(const struct pgd__model *m, const char *name, int64_t in, int32_t *perm)
{
    char parent[512];
    snprintf(parent, sizeof parent, "%s", name);
    char *dot = strrchr(parent, '.');
    if (dot)
        *dot = '\0';
    uint64_t seed = pgd__model_random_seed_of(m, parent) ^ (uint64_t)in;
    for (int64_t i = 0; i < in; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = in - 1; i > 0; i--) {
        int64_t j = (int64_t)(rand_at(seed, (uint64_t)i) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

enum pgd_status pgd_model_random_wq(struct pgd_model_ctx *ctx, const char *name, int bits,
                                    int64_t group_size, bool act_order, int64_t in, int64_t out,
                                    struct pgd_wq_host *host, void **block, char *err,
                                    size_t errlen)
{
    *block = NULL;
    memset(host, 0, sizeof *host);
    if (bits != 4 && bits != 8)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: random %d-bit weights: only 4 "
                        "and 8 bits are made", name, bits);
    int64_t pack = 32 / bits;
    int64_t group = group_size == -1 || group_size > in ? in : group_size;
    if (in <= 0 || out <= 0 || group <= 0 || in % pack || in % group)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: a [%lld, %lld] layer cannot be "
                        "packed %lld to a word with group_size %lld (the input must be a "
                        "multiple of %lld and of the group size)", name, (long long)out,
                        (long long)in, (long long)pack, (long long)group_size, (long long)pack);
    int64_t groups = in / group;
    size_t qbytes = (size_t)(in / pack * out) * sizeof(uint32_t);
    size_t gbytes = (size_t)(groups * out) * sizeof(float);
    size_t pbytes = act_order ? (size_t)in * sizeof(int32_t) : 0;
    char *b = malloc(qbytes + 2 * gbytes + pbytes);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory for its random [%lld, "
                        "%lld] weights", name, (long long)out, (long long)in);
    uint32_t *q = (uint32_t *)b;
    float *scales = (float *)(b + qbytes), *zeros = (float *)(b + qbytes + gbytes);
    int32_t *perm = pbytes ? (int32_t *)(b + qbytes + 2 * gbytes) : NULL;
    uint64_t seed = pgd__model_random_seed_of(ctx->m, name);
    fill_bytes(q, qbytes, seed, false);
    /* q uniform over 0..2^bits-1 minus the zero 2^(bits-1): mean -1/2, variance
     * (4^bits - 1) / 12, so a mean square of that plus 1/4. */
    double levels = (double)(1u << bits);
    double rms = sqrt((levels * levels - 1) / 12 + 0.25);
    fill_scales(scales, (size_t)(groups * out), (float)(1.0 / (sqrt((double)in) * rms)),
                seed ^ 0x5ca1e5ull);
    for (int64_t i = 0; i < groups * out; i++)
        zeros[i] = (float)(levels / 2);
    if (perm)
        fill_perm(ctx->m, name, in, perm);
    *host = (struct pgd_wq_host){ .bits = bits, .group_size = (int)group, .in = in, .out = out,
                                  .qweight = q, .scales = scales, .zeros = zeros, .perm = perm };
    *block = b;
    return PGD_OK;
}

enum pgd_status pgd_model_random_fp8(struct pgd_model_ctx *ctx, const char *name,
                                     bool per_channel, int64_t in, int64_t out,
                                     struct pgd_fp8_host *host, void **block, char *err,
                                     size_t errlen)
{
    *block = NULL;
    memset(host, 0, sizeof *host);
    if (in <= 0 || out <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: a [%lld, %lld] layer", name,
                        (long long)out, (long long)in);
    size_t ns = per_channel ? (size_t)out : 1;
    char *b = malloc(ns * sizeof(float) + (size_t)(in * out));
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory for its random [%lld, "
                        "%lld] weights", name, (long long)out, (long long)in);
    float *scale = (float *)b;
    uint8_t *w = (uint8_t *)(b + ns * sizeof(float));
    uint64_t seed = pgd__model_random_seed_of(ctx->m, name);
    fill_bytes(w, (size_t)(in * out), seed, true);
    fill_scales(scale, ns, (float)(1.0 / (sqrt((double)in) * fp8_codes_rms())),
                seed ^ 0x5ca1e5ull);
    *host = (struct pgd_fp8_host){ .in = in, .out = out, .weight = w, .scale = scale,
                                   .per_channel = per_channel };
    *block = b;
    return PGD_OK;
}
