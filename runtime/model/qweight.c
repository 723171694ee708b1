/* Quantized weights kept by the model (include/pagoda/model.h, pgd_model_qweight_*): the
 * canonical layouts a quant plugin hands over become, on the CPU, dequantized float32
 * weights and, on CUDA, the kernels' packed layers.
 *
 * Why the CPU keeps the weights dequantized rather than packed: the CPU path is the
 * readable reference the CUDA kernels are tested against, and dequantizing per call would
 * cost a full pass over every weight on every step, more than the tiny-batch matmul it
 * feeds. The price is float32 memory, which is what a dense model on the CPU holds anyway
 * (the CPU computes in float32 and widens 16-bit checkpoints at load). */
#include "runtime/model/qweight.h"
#include "runtime/model/model.h"
#include "runtime/model/model_ctx.h"
#include "kernels/cpu/cpu_kernels.h"
#include "config.h"
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgd__qweight_free_list(struct pgd_qweight *w)
{
    while (w) {
        struct pgd_qweight *next = w->next;
        free(w->dense);
#ifdef PGD_HAVE_CUDA
        if (w->cuda_wq)
            pgd_cuda_wq_destroy(w->cuda_wq);
        if (w->cuda_fp8)
            pgd_cuda_fp8_destroy(w->cuda_fp8);
#endif
        free(w);
        w = next;
    }
}

void pgd__qweights_free(struct pgd__model *m)
{
    pgd__qweight_free_list(m->qweights);
    m->qweights = NULL;
#ifdef PGD_HAVE_CUDA
    pgd_cuda_wq_perms_destroy(m->wq_perms);
#endif
    m->wq_perms = NULL;
}

/* ---- joining the parts of a fused layer ------------------------------------------------- */
static bool same_perm(const struct pgd_wq_host *a, const struct pgd_wq_host *b)
{
    if (!a->perm || !b->perm)
        return !a->perm && !b->perm;
    return !memcmp(a->perm, b->perm, (size_t)a->in * sizeof *a->perm);
}

enum pgd_status pgd__wq_join(const char *name, const struct pgd_wq_host *parts, int n,
                             struct pgd_wq_host *out, void **block, char *err, size_t errlen)
{
    *block = NULL;
    const struct pgd_wq_host *p0 = &parts[0];
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const struct pgd_wq_host *p = &parts[i];
        if (p->in != p0->in || p->bits != p0->bits || p->group_size != p0->group_size ||
            !same_perm(p, p0))
            return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: fused part %d has another "
                            "input size, bit width, group size or act-order permutation than "
                            "part 0: the parts cannot share one packed layer", name, i);
        total += p->out;
    }
    int64_t rows = p0->in / (32 / p0->bits), groups = p0->in / p0->group_size;
    size_t qbytes = (size_t)(rows * total) * sizeof(uint32_t);
    size_t gbytes = (size_t)(groups * total) * sizeof(float);
    size_t pbytes = p0->perm ? (size_t)p0->in * sizeof(int32_t) : 0;
    char *b = malloc(qbytes + 2 * gbytes + pbytes);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory joining its parts", name);
    uint32_t *q = (uint32_t *)b;
    float *scales = (float *)(b + qbytes), *zeros = (float *)(b + qbytes + gbytes);
    int32_t *perm = pbytes ? (int32_t *)(b + qbytes + 2 * gbytes) : NULL;
    /* Every array is row-major with out columns: part i fills columns [col, col + out_i). */
    int64_t col = 0;
    for (int i = 0; i < n; i++) {
        const struct pgd_wq_host *p = &parts[i];
        for (int64_t r = 0; r < rows; r++)
            memcpy(q + r * total + col, p->qweight + r * p->out, (size_t)p->out * sizeof *q);
        for (int64_t g = 0; g < groups; g++) {
            memcpy(scales + g * total + col, p->scales + g * p->out, (size_t)p->out * sizeof(float));
            memcpy(zeros + g * total + col, p->zeros + g * p->out, (size_t)p->out * sizeof(float));
        }
        col += p->out;
    }
    if (perm)
        memcpy(perm, p0->perm, pbytes);
    *out = (struct pgd_wq_host){ .bits = p0->bits, .group_size = p0->group_size, .in = p0->in,
                                 .out = total, .qweight = q, .scales = scales, .zeros = zeros,
                                 .perm = perm };
    *block = b;
    return PGD_OK;
}

enum pgd_status pgd__fp8_join(const char *name, const struct pgd_fp8_host *parts, int n,
                              struct pgd_fp8_host *out, void **block, char *err, size_t errlen)
{
    *block = NULL;
    int64_t total = 0;
    bool per_channel = false;
    for (int i = 0; i < n; i++) {
        if (parts[i].in != parts[0].in)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: fused part %d has %lld "
                            "inputs, part 0 %lld", name, i, (long long)parts[i].in,
                            (long long)parts[0].in);
        total += parts[i].out;
        per_channel = per_channel || parts[i].per_channel ||
                      parts[i].scale[0] != parts[0].scale[0];
    }
    int64_t in = parts[0].in;
    size_t sbytes = (size_t)(per_channel ? total : 1) * sizeof(float);
    char *b = malloc(sbytes + (size_t)(total * in));
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory joining its parts", name);
    float *scale = (float *)b;
    uint8_t *w = (uint8_t *)(b + sbytes);
    /* weight is [out][in]: the parts' rows follow each other. */
    int64_t row = 0;
    for (int i = 0; i < n; i++) {
        const struct pgd_fp8_host *p = &parts[i];
        memcpy(w + row * in, p->weight, (size_t)(p->out * in));
        for (int64_t o = 0; per_channel && o < p->out; o++)
            scale[row + o] = p->scale[p->per_channel ? o : 0];
        row += p->out;
    }
    if (!per_channel)
        scale[0] = parts[0].scale[0];
    *out = (struct pgd_fp8_host){ .in = in, .out = total, .weight = w, .scale = scale,
                                  .per_channel = per_channel };
    *block = b;
    return PGD_OK;
}

/* ---- making a weight --------------------------------------------------------------------- */
#ifdef PGD_HAVE_CUDA
/* Puts the layer's name in front of a kernel's refusal (which names only the shape): under
 * tensor parallelism the shard's layout (its group size) is what the kernels refuse. */
static void name_error(const char *name, char *err, size_t errlen)
{
    if (!err || !errlen)
        return;
    char kernel[1024];
    snprintf(kernel, sizeof kernel, "%s", err);
    snprintf(err, errlen, "%s: %s", name, kernel);
}
#endif

static enum pgd_status new_qweight(struct pgd__model *m, const char *name,
                                   enum pgd__qweight_kind kind, int64_t in, int64_t out,
                                   struct pgd_qweight **qw, char *err, size_t errlen)
{
    *qw = calloc(1, sizeof **qw);
    if (*qw && m->device == PGD_DEVICE_CPU)
        (*qw)->dense = malloc((size_t)(in * out) * sizeof(float));
    if (!*qw || (m->device == PGD_DEVICE_CPU && !(*qw)->dense)) {
        free(*qw);
        *qw = NULL;
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory for its [%lld, %lld] "
                        "weights", name, (long long)out, (long long)in);
    }
    **qw = (struct pgd_qweight){ .kind = kind, .device = m->device, .in = in, .out = out,
                                 .dense = (*qw)->dense };
    return PGD_OK;
}

/* Hands the finished weight to the model. */
static void keep(struct pgd__model *m, struct pgd_qweight *qw, size_t bytes,
                 struct pgd_qweight **out)
{
    qw->next = m->qweights;
    m->qweights = qw;
    m->weight_bytes += bytes;
    *out = qw;
}

static enum pgd_status check_parts(struct pgd__model *m, const char *name, int n_parts,
                                   char *err, size_t errlen)
{
    if (n_parts < 1)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: %d parts", name, n_parts);
    if (m->device != PGD_DEVICE_CPU) {
#ifndef PGD_HAVE_CUDA
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "%s: quantized layers on this device "
                        "need a CUDA build", name);
#endif
    }
    return PGD_OK;
}

/* ---- pgd_model_load_mlp's fold ----------------------------------------------------------
 * down_proj's act-order permutation says that its canonical input row r is input channel
 * perm[r], so its kernels gather x'[r] = x[perm[r]] on every call. Its input is gate and
 * up's output combined position by position, so when gate's and up's output r is made to be
 * the checkpoint's output perm[r], that output is already x' and down needs no gather. Both
 * happen here, on the host arrays, before either layer is kept: down's layer is made
 * without its permutation, and the feeding layer's parts with their outputs reordered. */

/* The parts as kept (*use, [n]): parts themselves, or, while down loads (fold phase TAKE),
 * a copy without its permutation, given up into m->fold.order, or, while the feeding layer
 * loads (GIVE), copies whose output columns are reordered by it. The copies are in *mem
 * (malloc'd, NULL when none). */
static enum pgd_status fold_wq(struct pgd__model *m, const char *name,
                               const struct pgd_wq_host *parts, int n,
                               const struct pgd_wq_host **use, void **mem, char *err,
                               size_t errlen)
{
    *use = parts;
    *mem = NULL;
    const int32_t *order = m->fold.phase == PGD__FOLD_GIVE ? m->fold.order : NULL;
    const bool take = m->fold.phase == PGD__FOLD_TAKE && n == 1 && parts[0].perm;
    if (!take && !order)
        return PGD_OK;
    /* the copies' structs, then (reordering) each part's qweight, scales and zeros */
    size_t bytes = (size_t)n * sizeof **use;
    for (int i = 0; order && i < n; i++) {
        const struct pgd_wq_host *p = &parts[i];
        if (p->out != m->fold.n_order)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: part %d has %lld outputs, "
                            "the layer it feeds %lld inputs", name, i, (long long)p->out,
                            (long long)m->fold.n_order);
        int64_t rows = p->in / (32 / p->bits), groups = p->in / p->group_size;
        bytes += (size_t)(rows * p->out) * sizeof(uint32_t) +
                 (size_t)(2 * groups * p->out) * sizeof(float);
    }
    char *b = malloc(bytes);
    if (!b || (take && !(m->fold.order = malloc((size_t)parts[0].in * sizeof(int32_t))))) {
        free(b);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory %s", name,
                        take ? "keeping its act-order permutation" : "reordering its outputs");
    }
    *mem = b;
    struct pgd_wq_host *adj = (struct pgd_wq_host *)(void *)b;
    memcpy(adj, parts, (size_t)n * sizeof *adj);
    *use = adj;
    if (take) {
        memcpy(m->fold.order, parts[0].perm, (size_t)parts[0].in * sizeof(int32_t));
        m->fold.n_order = parts[0].in;
        adj[0].perm = NULL;
        return PGD_OK;
    }
    /* qweight, scales and zeros are [rows][out]: column r of each becomes order[r]'s. Each
     * part's three arrays follow the previous part's (all of 4-byte elements). */
    b += (size_t)n * sizeof *adj;
    for (int i = 0; i < n; i++) {
        const struct pgd_wq_host *p = &parts[i];
        int64_t out = p->out, rows = p->in / (32 / p->bits), groups = p->in / p->group_size;
        uint32_t *q = (uint32_t *)(void *)b;
        float *scales = (float *)(void *)(q + rows * out), *zeros = scales + groups * out;
        for (int64_t k = 0; k < rows; k++)
            for (int64_t r = 0; r < out; r++)
                q[k * out + r] = p->qweight[k * out + order[r]];
        for (int64_t g = 0; g < groups; g++)
            for (int64_t r = 0; r < out; r++) {
                scales[g * out + r] = p->scales[g * out + order[r]];
                zeros[g * out + r] = p->zeros[g * out + order[r]];
            }
        adj[i].qweight = q;
        adj[i].scales = scales;
        adj[i].zeros = zeros;
        b = (char *)(void *)(zeros + groups * out);
    }
    m->fold.order_used = true;
    return PGD_OK;
}

/* fold_wq's reordering for an FP8 feeding layer: each part's rows (and per-channel scales)
 * in the order. FP8 layers have no permutation to give up. */
static enum pgd_status fold_fp8(struct pgd__model *m, const char *name,
                                const struct pgd_fp8_host *parts, int n,
                                const struct pgd_fp8_host **use, void **mem, char *err,
                                size_t errlen)
{
    *use = parts;
    *mem = NULL;
    const int32_t *order = m->fold.phase == PGD__FOLD_GIVE ? m->fold.order : NULL;
    if (!order)
        return PGD_OK;
    size_t bytes = (size_t)n * sizeof **use;
    for (int i = 0; i < n; i++) {
        if (parts[i].out != m->fold.n_order)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: part %d has %lld outputs, "
                            "the layer it feeds %lld inputs", name, i, (long long)parts[i].out,
                            (long long)m->fold.n_order);
        bytes += (size_t)(parts[i].out * parts[i].in) + (size_t)parts[i].out * sizeof(float);
    }
    char *b = malloc(bytes);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory reordering its outputs",
                        name);
    *mem = b;
    struct pgd_fp8_host *adj = (struct pgd_fp8_host *)(void *)b;
    memcpy(adj, parts, (size_t)n * sizeof *adj);
    *use = adj;
    /* The copies' structs, every part's scales (4-byte aligned), then every part's
     * [out][in] bytes. */
    float *scale = (float *)(void *)(b + (size_t)n * sizeof *adj);
    uint8_t *w = (uint8_t *)(scale + (size_t)n * (size_t)m->fold.n_order);
    for (int i = 0; i < n; i++) {
        const struct pgd_fp8_host *p = &parts[i];
        for (int64_t r = 0; r < p->out; r++) {
            memcpy(w + r * p->in, p->weight + order[r] * p->in, (size_t)p->in);
            scale[r] = p->scale[p->per_channel ? order[r] : 0];
        }
        adj[i].weight = w;
        adj[i].scale = p->per_channel ? scale : p->scale;
        scale += p->out;
        w += p->out * p->in;
    }
    m->fold.order_used = true;
    return PGD_OK;
}

#ifdef PGD_HAVE_CUDA
/* Whether the model's act-order layers share equal permutations' device copies: yes unless
 * PGD_CUDA_WQ_SHARE_PERM=0 (each layer its own copy and act-order q/k/v in three launches,
 * as before it, for measuring). */
static bool share_perms_wanted(void)
{
    const char *e = getenv("PGD_CUDA_WQ_SHARE_PERM");
    return !e || strcmp(e, "0");
}
#endif

/* pgd_model_qweight_wq of parts as they are kept (after fold_wq). */
static enum pgd_status keep_wq(struct pgd__model *m, const char *name,
                               const struct pgd_wq_host *parts, int n_parts,
                               struct pgd_qweight **out, char *err, size_t errlen)
{
    enum pgd_status st;
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++)
        total += parts[i].out;
    struct pgd_qweight *qw;
    if ((st = new_qweight(m, name, PGD__QW_WQ, parts[0].in, total, &qw, err, errlen)))
        return st;
    if (m->device == PGD_DEVICE_CPU) {
        /* Each part dequantizes into its own rows of [out, in]: parts need not share a perm. */
        int64_t row = 0;
        for (int i = 0; i < n_parts; i++) {
            if (parts[i].in != parts[0].in) {
                pgd__qweight_free_list(qw);
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: fused part %d has %lld "
                                "inputs, part 0 %lld", name, i, (long long)parts[i].in,
                                (long long)parts[0].in);
            }
            pgd_cpu_wq_dequantize(&parts[i], qw->dense + row * parts[0].in);
            row += parts[i].out;
        }
        keep(m, qw, (size_t)(total * parts[0].in) * sizeof(float), out);
        return PGD_OK;
    }
#ifdef PGD_HAVE_CUDA
    struct pgd_wq_host joined;
    void *block;
    if ((st = pgd__wq_join(name, parts, n_parts, &joined, &block, err, errlen))) {
        pgd__qweight_free_list(qw);
        return st;
    }
    /* Layers of equal act-order permutations (q, k and v; gate and up) share one device
     * copy: pgd_cuda_wq_linear_multi then runs q, k and v in one launch (8B GPTQ act-order
     * decode, H200: 3.21 -> 3.07 ms at batch 1, 4.53 -> 3.97 at batch 8). */
    if (joined.perm && !m->wq_perms && share_perms_wanted() &&
        !(m->wq_perms = pgd_cuda_wq_perms_create())) {
        free(block);
        pgd__qweight_free_list(qw);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory listing act-order "
                        "permutations", name);
    }
    if (pgd_cuda_wq_create(&joined, m->wq_perms, &qw->cuda_wq, err, errlen)) {
        name_error(name, err, errlen);
        free(block);
        pgd__qweight_free_list(qw);
        return PGD_ERR_DEVICE;
    }
    free(block);
    int64_t groups = joined.in / joined.group_size;
    keep(m, qw, (size_t)(joined.in * total) * (size_t)joined.bits / 8 +
                    (size_t)(groups * total) * 2 * sizeof(float), out);
#endif
    return PGD_OK;
}

/* pgd_model_qweight_fp8 of parts as they are kept (after fold_fp8). */
static enum pgd_status keep_fp8(struct pgd__model *m, const char *name,
                                const struct pgd_fp8_host *parts, int n_parts,
                                struct pgd_qweight **out, char *err, size_t errlen)
{
    enum pgd_status st;
    struct pgd_fp8_host joined;
    void *block;
    if ((st = pgd__fp8_join(name, parts, n_parts, &joined, &block, err, errlen)))
        return st;
    struct pgd_qweight *qw;
    if ((st = new_qweight(m, name, PGD__QW_FP8, joined.in, joined.out, &qw, err, errlen))) {
        free(block);
        return st;
    }
    size_t bytes = (size_t)(joined.in * joined.out) * sizeof(float);
    if (m->device == PGD_DEVICE_CPU) {
        pgd_cpu_fp8_dequantize(&joined, qw->dense);
    } else {
#ifdef PGD_HAVE_CUDA
        if (pgd_cuda_fp8_create(&joined, &qw->cuda_fp8, err, errlen)) {
            name_error(name, err, errlen);
            free(block);
            pgd__qweight_free_list(qw);
            return PGD_ERR_DEVICE;
        }
        bytes = (size_t)(joined.in * joined.out) + (size_t)joined.out * sizeof(float);
#endif
    }
    free(block);
    keep(m, qw, bytes, out);
    return PGD_OK;
}

/* The public entries: the parts through pgd_model_load_mlp's fold where one is under way
 * (fold_wq, fold_fp8), then kept. */
enum pgd_status pgd_model_qweight_wq(struct pgd_model_ctx *ctx, const char *name,
                                     const struct pgd_wq_host *parts, int n_parts,
                                     struct pgd_qweight **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct pgd_wq_host *use;
    void *mem = NULL;
    enum pgd_status st = check_parts(ctx->m, name, n_parts, err, errlen);
    if (!st)
        st = fold_wq(ctx->m, name, parts, n_parts, &use, &mem, err, errlen);
    if (!st)
        st = keep_wq(ctx->m, name, use, n_parts, out, err, errlen);
    free(mem);
    return st;
}

enum pgd_status pgd_model_qweight_fp8(struct pgd_model_ctx *ctx, const char *name,
                                      const struct pgd_fp8_host *parts, int n_parts,
                                      struct pgd_qweight **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct pgd_fp8_host *use;
    void *mem = NULL;
    enum pgd_status st = check_parts(ctx->m, name, n_parts, err, errlen);
    if (!st)
        st = fold_fp8(ctx->m, name, parts, n_parts, &use, &mem, err, errlen);
    if (!st)
        st = keep_fp8(ctx->m, name, use, n_parts, out, err, errlen);
    free(mem);
    return st;
}
