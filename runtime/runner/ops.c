/* The ops of include/pagoda/ops.h: shape checks, then dispatch on the step's device.
 * The CPU kernels (kernels/cpu) are the reference implementation; on a CUDA step each op
 * calls its kernels/cuda entry, and a kernel's failure is recorded in the step with the
 * kernel's own message (which names the kernel and the shapes). Each public op is its body
 * (a static *_run function) bracketed for the per-op profile (op_profile.h): see PROFILED. */
#include "config.h"
#include "runtime/runner/fwd.h"
#include "runtime/runner/op_cost.h"
#include "runtime/runner/piecewise.h"
#include "runtime/model/qweight.h"
#include <pagoda/plugin.h>
#include "kernels/cpu/cpu_kernels.h"
#include "runtime/dist/comm.h"
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif
#include <pagoda/log.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the step --------------------------------------------------------------------------- */
int pgd_fwd_n_tokens(const struct pgd_fwd *f) { return f->n_tokens; }
enum pgd_device pgd_fwd_device(const struct pgd_fwd *f) { return f->device; }
enum pgd_dtype pgd_fwd_act_dtype(const struct pgd_fwd *f) { return f->act_dtype; }
bool pgd_fwd_failed(const struct pgd_fwd *f) { return f->status != PGD_OK; }

void pgd_fwd_fail(struct pgd_fwd *f, enum pgd_status st, const char *fmt, ...)
{
    if (f->status != PGD_OK)
        return;
    f->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof f->err, fmt, ap);
    va_end(ap);
}

struct pgd_tensor pgd_fwd_alloc(struct pgd_fwd *f, int64_t rows, int64_t cols)
{
    struct pgd_tensor t = { .dtype = f->act_dtype, .device = f->device, .ndim = 2,
                            .ne = { rows, cols } };
    t.data = pgd__arena_alloc(f->arena, (size_t)(rows * cols) * pgd_dtype_size(f->act_dtype));
    if (!t.data) {
        pgd_fwd_fail(f, PGD_ERR_NOMEM, "activation arena: cannot allocate [%lld, %lld]",
                     (long long)rows, (long long)cols);
        /* Hand out a tensor with no rows so that callers' loops do nothing. */
        t.ne[0] = 0;
    }
    return t;
}

#ifdef PGD_HAVE_CUDA
static void qkv_rows_settle(struct pgd_fwd *f);
#endif

/* True when the op should run: no earlier failure, and the tensors are on the step's
 * device in the activation dtype. Outputs of linear_multi still in its scratch are split
 * into their tensors first: the op may read them. */
static bool operands_ready(struct pgd_fwd *f, const char *op, int n,
                           const struct pgd_tensor *const *ts)
{
#ifdef PGD_HAVE_CUDA
    qkv_rows_settle(f);
#endif
    if (f->status != PGD_OK)
        return false;
    for (int i = 0; i < n; i++) {
        if (ts[i]->device != f->device) {
            pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "%s: operand %d is on %s, the step on %s", op, i,
                         ts[i]->device == PGD_DEVICE_CPU ? "cpu" : "cuda",
                         f->device == PGD_DEVICE_CPU ? "cpu" : "cuda");
            return false;
        }
        if (ts[i]->dtype != f->act_dtype) {
            pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "%s: operand %d is %s, expected %s", op, i,
                         pgd_dtype_name(ts[i]->dtype), pgd_dtype_name(f->act_dtype));
            return false;
        }
    }
#ifndef PGD_HAVE_CUDA
    if (f->device != PGD_DEVICE_CPU) {
        pgd_fwd_fail(f, PGD_ERR_UNSUPPORTED, "%s: no CUDA kernel in this build", op);
        return false;
    }
#endif
    return true;
}

/* The act-order gather a norm left in the CUDA scratch (pgd_cuda_rmsnorm_gather's note) is
 * void: the context forgets it (also one a failed forward before this one left). */
static void wq_x_drop(struct pgd_fwd *f)
{
#ifdef PGD_HAVE_CUDA
    if (f->device == PGD_DEVICE_CUDA && f->cuda)
        pgd_cuda_wq_x_forget(f->cuda);
#else
    (void)f;
#endif
}

/* operands_ready for an op that may write any buffer: what a norm left for the linears
 * after it (f->fp8_x_ready, the act-order gather, f->gather_out) is void from here on. */
static bool op_ready(struct pgd_fwd *f, const char *op, int n, const struct pgd_tensor *const *ts)
{
    f->fp8_x_ready = NULL;
    f->gather_out = NULL;
    wq_x_drop(f);
    return operands_ready(f, op, n, ts);
}

/* operands_ready for a linear of x: it writes its outputs, never x, so what the norm left
 * for the linears of x (q, k and v one after the other) stays, unless an output of this one
 * is that buffer (the other operands ts: weights, bias, outputs). */
static bool linear_ready(struct pgd_fwd *f, const char *op, const struct pgd_tensor *x, int n,
                         const struct pgd_tensor *const *ts)
{
    for (int i = 0; i < n; i++) {
        if (ts[i] == x)
            continue;
        if (f->fp8_x_ready && ts[i]->data == f->fp8_x_ready)
            f->fp8_x_ready = NULL;
        if (f->gather_out && ts[i]->data == f->gather_out) {
            f->gather_out = NULL;
            wq_x_drop(f);
        }
    }
    return operands_ready(f, op, n, ts);
}

#ifdef PGD_HAVE_CUDA
/* Runs one kernels/cuda entry (whose last arguments are CUDA_ERR) and records a failure. */
#define CUDA_ERR cuda_err_, sizeof cuda_err_
#define CUDA_RUN(f, call)                                                               \
    do {                                                                               \
        char cuda_err_[400] = "";                                                      \
        if (call)                                                                      \
            pgd_fwd_fail(f, PGD_ERR_DEVICE, "%s", cuda_err_);                          \
    } while (0)
#define ON_CUDA(f) ((f)->device == PGD_DEVICE_CUDA)

/* Whether linear_multi leaves its one GEMM's columns in the scratch for rope_attention
 * (PGD_CUDA_QKV_ROWS=0: split at once, for measuring the two against each other). */
static bool qkv_rows_on(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_QKV_ROWS");
        v = !(e && !strcmp(e, "0"));
    }
    return v;
}

/* linear_multi's outputs left in its scratch (fwd.h's qkv_rows), split into their tensors. */
static void qkv_rows_settle(struct pgd_fwd *f)
{
    if (!f->qkv_rows.src)
        return;
    const void *src = f->qkv_rows.src;
    f->qkv_rows.src = NULL;
    if (f->status == PGD_OK)
        CUDA_RUN(f, pgd_cuda_split_cols(f->cuda, f->act_dtype, src, f->qkv_rows.n,
                                        f->qkv_rows.count, f->qkv_rows.out, f->qkv_rows.y,
                                        CUDA_ERR));
}

void pgd__fwd_settle(struct pgd_fwd *f)
{
    qkv_rows_settle(f);
}
#else
void pgd__fwd_settle(struct pgd_fwd *f)
{
    (void)f;
}
#define ON_CUDA(f) false
#define CUDA_RUN(f, call) ((void)0)
#endif

static bool check_shape(struct pgd_fwd *f, const char *op, const char *what,
                        const struct pgd_tensor *t, int64_t rows, int64_t cols)
{
    if (pgd_tensor_rows(t) == rows && pgd_tensor_cols(t) == cols)
        return true;
    pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "%s: %s is [%lld, %lld], expected [%lld, %lld]", op,
                 what, (long long)pgd_tensor_rows(t), (long long)pgd_tensor_cols(t),
                 (long long)rows, (long long)cols);
    return false;
}

/* The CPU's dense linear: batch-invariant when the runner is (f->batch_invariant). */
static void cpu_linear(const struct pgd_fwd *f, const float *x, const float *w, const float *b,
                       int n, int in, int out, float *y)
{
    (f->batch_invariant ? pgd_cpu_linear_invariant : pgd_cpu_linear)(x, w, b, n, in, out, y);
}

/* ---- ops -------------------------------------------------------------------------------- */
/* The tokens the step's metadata holds: the padded size's real rows in the piecewise
 * layout (piecewise.h), else all of them. */
static int call_tokens(const struct pgd_fwd *f)
{
    return f->pw_tokens > 0 ? f->pw_tokens : f->n_tokens;
}

/* Whether every id of the step is in [0, vocab); else the step fails, naming op and the id.
 * The host holds the step's ids (the padding rows of the piecewise layout have none). */
static bool ids_in_vocab(struct pgd_fwd *f, const char *op, int64_t vocab)
{
    for (int i = 0; i < call_tokens(f); i++)
        if (f->h_token_ids[i] < 0 || f->h_token_ids[i] >= vocab) {
            pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "%s: token id %d outside the vocabulary [0, "
                         "%lld)", op, f->h_token_ids[i], (long long)vocab);
            return false;
        }
    return true;
}

bool pgd__ops_ids_in_vocab(struct pgd_fwd *f)
{
    return ids_in_vocab(f, "embed", f->vocab_size);
}

static void embed_run(struct pgd_fwd *f, const struct pgd_tensor *table, struct pgd_tensor *out)
{
    if (!op_ready(f, "embed", 2, (const struct pgd_tensor *[]){ table, out }))
        return;
    int64_t vocab = pgd_tensor_rows(table), d = pgd_tensor_cols(table);
    if (!check_shape(f, "embed", "out", out, f->n_tokens, d) || !ids_in_vocab(f, "embed", vocab))
        return;
    if (ON_CUDA(f)) {
        CUDA_RUN(f, pgd_cuda_gather_rows(f->cuda, f->act_dtype, table->data, f->token_ids,
                                         f->n_tokens, (int)d, out->data, CUDA_ERR));
        return;
    }
    pgd_cpu_embed(table->data, f->token_ids, f->n_tokens, (int)d, out->data);
}

#ifdef PGD_HAVE_CUDA
/* Whether a norm of rows of width d leaves its output's FP8 quantization for the FP8
 * linears after it: the model has them (f->fp8_norms) and the rows are the hidden state
 * (the inputs of q/k/v and gate_up; not a per-head q/k norm). The kernels decide the rest
 * (decode sizes, the streaming GEMV). */
static bool fp8_norm_wanted(const struct pgd_fwd *f, int64_t d)
{
    return f->fp8_norms && d == f->hidden_size;
}

/* The norm (residual NULL: without the add) that also leaves x's FP8 quantization, and
 * f->fp8_x_ready = out where the kernels did. */
static void fp8_norm_run(struct pgd_fwd *f, struct pgd_tensor *residual,
                         const struct pgd_tensor *x, const struct pgd_tensor *w, float eps,
                         int64_t rows, int64_t d, struct pgd_tensor *out)
{
    int prepared = 0;
    CUDA_RUN(f, pgd_cuda_rmsnorm_fp8x(f->cuda, f->act_dtype, residual ? residual->data : NULL,
                                      x->data, w->data, eps, rows, (int)d, out->data, &prepared,
                                      CUDA_ERR));
    if (prepared && f->status == PGD_OK)
        f->fp8_x_ready = out->data;
}

/* act_mul before FP8 linears (the model has them: f->fp8_norms) that may also leave its
 * output's FP8 quantization for the down projection (pgd_cuda_fp8_act_mul_x decides), and
 * f->fp8_x_ready = out where it did. */
static void fp8_act_run(struct pgd_fwd *f, enum pgd_act act, const struct pgd_tensor *gate_up,
                        int64_t n, int64_t inter, struct pgd_tensor *out)
{
    int prepared = 0;
    CUDA_RUN(f, pgd_cuda_fp8_act_mul_x(f->cuda, f->act_dtype, act, gate_up->data, (int)n,
                                       (int)inter, out->data, &prepared, CUDA_ERR));
    if (prepared && f->status == PGD_OK)
        f->fp8_x_ready = out->data;
}

/* Around the FP8 linear(s) of x [n, in] on CUDA: before (x set), the context learns whether
 * the norm that wrote x left its quantization in the scratch (f->fp8_x_ready); after (x
 * NULL), it forgets. */
static void fp8_x_ready_mark(struct pgd_fwd *f, const struct pgd_tensor *x, int64_t in)
{
    const bool ready = x && f->fp8_x_ready && f->fp8_x_ready == x->data;
    pgd_cuda_fp8_x_ready(f->cuda, ready ? x->data : NULL, ready ? (int)pgd_tensor_rows(x) : 0,
                         (int)in, f->act_dtype);
}
#else
static bool fp8_norm_wanted(const struct pgd_fwd *f, int64_t d)
{
    (void)f;
    (void)d;
    return false;
}
static void fp8_norm_run(struct pgd_fwd *f, struct pgd_tensor *residual,
                         const struct pgd_tensor *x, const struct pgd_tensor *w, float eps,
                         int64_t rows, int64_t d, struct pgd_tensor *out)
{
    (void)f; (void)residual; (void)x; (void)w; (void)eps; (void)rows; (void)d; (void)out;
}
static void fp8_act_run(struct pgd_fwd *f, enum pgd_act act, const struct pgd_tensor *gate_up,
                        int64_t n, int64_t inter, struct pgd_tensor *out)
{
    (void)f; (void)act; (void)gate_up; (void)n; (void)inter; (void)out;
}
#endif

#ifdef PGD_HAVE_CUDA
/* The act-order layer that read the output of this forward's next producer (a norm, or the
 * attention before o_proj) when it last ran (f->gather_layers), counting that producer; NULL:
 * none known. */
static const struct pgd_cuda_wq *gather_next(struct pgd_fwd *f)
{
    const int k = f->gather_seq++;
    return f->gather_layers && k < f->gather_layers_cap ? f->gather_layers[k] : NULL;
}

/* The permutation a norm leaves its output gathered through: gather_next's layer's. */
static const int32_t *gather_next_perm(struct pgd_fwd *f)
{
    const struct pgd_cuda_wq *w = gather_next(f);
    return w ? pgd_cuda_wq_input_perm(w) : NULL;
}

/* The act-order layer (o_proj) the attention's output is left gathered for: gather_next's,
 * but none with piecewise graphs, where the attention runs between captured pieces and a
 * piece would keep o_proj's gather skipped, or not, by whether the attention wrote it when
 * the piece was captured (it does only on steps of decode rows alone). */
static const struct pgd_cuda_wq *attention_gather_next(struct pgd_fwd *f)
{
    const struct pgd_cuda_wq *w = gather_next(f);
    return f->pw ? NULL : w;
}

/* The norm (residual NULL: without the add) that also leaves out gathered through perm
 * for the act-order linear after it, where the kernels can (noted in the CUDA context). */
static void wq_norm_run(struct pgd_fwd *f, struct pgd_tensor *residual,
                        const struct pgd_tensor *x, const struct pgd_tensor *w, float eps,
                        int64_t rows, int64_t d, struct pgd_tensor *out, const int32_t *perm)
{
    int prepared = 0;
    CUDA_RUN(f, pgd_cuda_rmsnorm_gather(f->cuda, f->act_dtype, residual ? residual->data : NULL,
                                        x->data, w->data, eps, rows, (int)d, out->data, perm,
                                        &prepared, CUDA_ERR));
}

/* A producer on CUDA (the forward's gather_seq - 1-th: a norm or an attention) wrote out:
 * the linear that reads it next learns which permutation it gathers through (gather_learn). */
static void gather_produced(struct pgd_fwd *f, const struct pgd_tensor *out)
{
    f->gather_out = out->data;
    f->gather_learned = false;
}

/* A quantized linear of x on CUDA: where x is the last producer's output and this is the
 * first linear of it (q, whose gather runs first where q, k and v do not share a
 * permutation), that producer's entry of the table becomes this layer where it is act-order
 * (else none), for the next forward. */
static void gather_learn(struct pgd_fwd *f, const struct pgd_qweight *w,
                         const struct pgd_tensor *x)
{
    const int k = f->gather_seq - 1;   /* the producer that wrote gather_out */
    if (!f->gather_layers || !f->gather_out || f->gather_out != x->data || k < 0 ||
        k >= f->gather_layers_cap || f->gather_learned)
        return;
    f->gather_layers[k] = w->kind == PGD__QW_WQ && pgd_cuda_wq_input_perm(w->cuda_wq)
                              ? w->cuda_wq
                              : NULL;
    f->gather_learned = true;
}
#else
static const int32_t *gather_next_perm(struct pgd_fwd *f)
{
    (void)f;
    return NULL;
}
static const struct pgd_cuda_wq *attention_gather_next(struct pgd_fwd *f)
{
    (void)f;
    return NULL;
}
static void wq_norm_run(struct pgd_fwd *f, struct pgd_tensor *residual,
                        const struct pgd_tensor *x, const struct pgd_tensor *w, float eps,
                        int64_t rows, int64_t d, struct pgd_tensor *out, const int32_t *perm)
{
    (void)f; (void)residual; (void)x; (void)w; (void)eps; (void)rows; (void)d; (void)out;
    (void)perm;
}
static void gather_produced(struct pgd_fwd *f, const struct pgd_tensor *out)
{
    (void)f;
    (void)out;
}
#endif

static void rmsnorm_run(struct pgd_fwd *f, const struct pgd_tensor *x, const struct pgd_tensor *w,
                        float eps, struct pgd_tensor *out)
{
    if (!op_ready(f, "rmsnorm", 3, (const struct pgd_tensor *[]){ x, w, out }))
        return;
    int64_t rows = pgd_tensor_rows(x), d = pgd_tensor_cols(x);
    if (!check_shape(f, "rmsnorm", "weight", w, 1, d) ||
        !check_shape(f, "rmsnorm", "out", out, rows, d))
        return;
    if (ON_CUDA(f)) {
        const int32_t *perm = gather_next_perm(f);
        if (fp8_norm_wanted(f, d))
            fp8_norm_run(f, NULL, x, w, eps, rows, d, out);
        else if (perm)
            wq_norm_run(f, NULL, x, w, eps, rows, d, out, perm);
        else
            CUDA_RUN(f, pgd_cuda_rmsnorm(f->cuda, f->act_dtype, x->data, w->data, eps, rows,
                                         (int)d, out->data, CUDA_ERR));
        gather_produced(f, out);
        return;
    }
    pgd_cpu_rmsnorm(x->data, w->data, eps, rows, (int)d, out->data);
}

static void add_rmsnorm_run(struct pgd_fwd *f, struct pgd_tensor *residual,
                            const struct pgd_tensor *delta, const struct pgd_tensor *w, float eps,
                            struct pgd_tensor *out)
{
    if (!op_ready(f, "add_rmsnorm", 4, (const struct pgd_tensor *[]){ residual, delta, w, out }))
        return;
    int64_t rows = pgd_tensor_rows(residual), d = pgd_tensor_cols(residual);
    if (!check_shape(f, "add_rmsnorm", "delta", delta, rows, d) ||
        !check_shape(f, "add_rmsnorm", "weight", w, 1, d) ||
        !check_shape(f, "add_rmsnorm", "out", out, rows, d))
        return;
    if (ON_CUDA(f)) {
        const int32_t *perm = gather_next_perm(f);
        if (fp8_norm_wanted(f, d))
            fp8_norm_run(f, residual, delta, w, eps, rows, d, out);
        else if (perm)
            wq_norm_run(f, residual, delta, w, eps, rows, d, out, perm);
        else
            CUDA_RUN(f, pgd_cuda_add_rmsnorm(f->cuda, f->act_dtype, residual->data, delta->data,
                                             w->data, eps, rows, (int)d, out->data, CUDA_ERR));
        gather_produced(f, out);
        return;
    }
    pgd_cpu_add_rmsnorm(residual->data, delta->data, w->data, eps, rows, (int)d, out->data);
}

static void add_run(struct pgd_fwd *f, struct pgd_tensor *x, const struct pgd_tensor *delta)
{
    if (!op_ready(f, "add", 2, (const struct pgd_tensor *[]){ x, delta }))
        return;
    if (!check_shape(f, "add", "delta", delta, pgd_tensor_rows(x), pgd_tensor_cols(x)))
        return;
    if (ON_CUDA(f)) {
        CUDA_RUN(f, pgd_cuda_add(f->cuda, f->act_dtype, x->data, delta->data, pgd_tensor_numel(x),
                                 CUDA_ERR));
        return;
    }
    pgd_cpu_add(x->data, delta->data, pgd_tensor_numel(x));
}

static void linear_run(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
                       struct pgd_tensor *y)
{
    if (w->quant) {
        /* A quantized layer: its plugin's linear, which runs pgd_op_qweight_linear. */
        if (!linear_ready(f, "linear", x, 2, (const struct pgd_tensor *[]){ x, y }))
            return;
        int64_t n = pgd_tensor_rows(x);
        if (check_shape(f, "linear", "x", x, n, w->in_features) &&
            check_shape(f, "linear", "y", y, n, w->out_features))
            w->quant->linear(f, w, x, y);
        return;
    }
    if (!linear_ready(f, "linear", x, 3, (const struct pgd_tensor *[]){ &w->weight, x, y }))
        return;
    int64_t n = pgd_tensor_rows(x);
    if (!check_shape(f, "linear", "x", x, n, w->in_features) ||
        !check_shape(f, "linear", "y", y, n, w->out_features))
        return;
    if (ON_CUDA(f)) {
        CUDA_RUN(f, pgd_cuda_linear(f->cuda, f->act_dtype, x->data, w->weight.data, w->bias.data,
                                    (int)n, (int)w->in_features, (int)w->out_features,
                                    f->act_dtype, y->data, CUDA_ERR));
        return;
    }
    cpu_linear(f, x->data, w->weight.data, w->bias.data, (int)n, (int)w->in_features,
               (int)w->out_features, y->data);
}

/* The CPU reference of an FP8 layer: x rounded to e4m3 with one scale per token (what the
 * GPU's W8A8 GEMM multiplies), then the dequantized weights. xq [n, in] gets x as rounded. */
static void fp8_round_activations(struct pgd_fwd *f, const struct pgd_tensor *x,
                                  struct pgd_tensor *xq)
{
    int64_t n = pgd_tensor_rows(x), in = pgd_tensor_cols(x);
    uint8_t *q = pgd__arena_alloc(f->arena, (size_t)(n * in));
    float *scales = pgd__arena_alloc(f->arena, (size_t)n * sizeof(float));
    *xq = pgd_fwd_alloc(f, n, in);
    if (!q || !scales) {
        pgd_fwd_fail(f, PGD_ERR_NOMEM, "linear fp8: no scratch for [%lld, %lld]", (long long)n,
                     (long long)in);
        return;
    }
    if (f->status != PGD_OK)
        return;
    pgd_cpu_fp8_quantize_rows(x->data, n, in, q, scales);
    float *d = xq->data;
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < in; c++)
            d[r * in + c] = pgd_fp8_e4m3_to_float(q[r * in + c]) * scales[r];
}

/* The bytes a quantized layer's linear reads of its weight where it lives: the packed
 * layout on a GPU, the dequantized float32 copy on the CPU. */
static double qweight_bytes(const struct pgd_qweight *w)
{
#ifdef PGD_HAVE_CUDA
    if (w->device == PGD_DEVICE_CUDA)
        return w->kind == PGD__QW_WQ ? (double)pgd_cuda_wq_weight_bytes(w->cuda_wq)
                                     : (double)pgd_cuda_fp8_weight_bytes(w->cuda_fp8);
#endif
    return (double)w->in * (double)w->out * (double)sizeof(float);
}

void pgd_op_qweight_linear(struct pgd_fwd *f, const struct pgd_qweight *w,
                           const struct pgd_tensor *bias, const struct pgd_tensor *x,
                           struct pgd_tensor *y)
{
    const void *b = bias ? bias->data : NULL;
    if (b && !linear_ready(f, "qweight_linear", x, 1, (const struct pgd_tensor *[]){ bias }))
        return;
    if (!linear_ready(f, "qweight_linear", x, 2, (const struct pgd_tensor *[]){ x, y }))
        return;
    int64_t n = pgd_tensor_rows(x);
    if (!check_shape(f, "qweight_linear", "x", x, n, w->in) ||
        !check_shape(f, "qweight_linear", "y", y, n, w->out) ||
        (b && !check_shape(f, "qweight_linear", "bias", bias, 1, w->out)))
        return;
    if (w->device != f->device) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "qweight_linear: the weight is on %s, the step on %s",
                     w->device == PGD_DEVICE_CPU ? "cpu" : "cuda",
                     f->device == PGD_DEVICE_CPU ? "cpu" : "cuda");
        return;
    }
    if (f->prof)
        f->prof_qweight_bytes += qweight_bytes(w);
#ifdef PGD_HAVE_CUDA
    if (ON_CUDA(f)) {
        gather_learn(f, w, x);
        if (f->multi_offer.got < f->multi_offer.want && f->multi_offer.got < 3 &&
            (f->multi_offer.got == 0 || f->multi_offer.w[0]->kind == w->kind)) {
            /* linear_multi's q, k or v: run with the others in one call (linear_multi_run) */
            const int i = f->multi_offer.got++;
            f->multi_offer.w[i] = w;
            f->multi_offer.b[i] = b;
            f->multi_offer.y[i] = y->data;
            return;
        }
        if (w->kind == PGD__QW_WQ) {
            CUDA_RUN(f, pgd_cuda_wq_linear(f->cuda, f->act_dtype, x->data, (int)n, w->cuda_wq, b,
                                           y->data, CUDA_ERR));
            wq_x_drop(f);            /* taken, or not this layer's: its scratch is written */
        } else {
            fp8_x_ready_mark(f, x, w->in);
            if (f->act_offer.scratch && f->act_offer.scratch == y->data &&
                pgd_cuda_fp8_glu_on((int)n)) {
                /* linear_act_mul's gate_up: the activation in the same kernel where it can */
                CUDA_RUN(f, pgd_cuda_fp8_linear_act_mul(f->cuda, f->act_dtype, f->act_offer.act,
                                                        x->data, (int)n, w->cuda_fp8, b,
                                                        y->data, f->act_offer.out, CUDA_ERR));
                f->act_offer.done = true;
            } else
                CUDA_RUN(f, pgd_cuda_fp8_linear(f->cuda, f->act_dtype, x->data, (int)n,
                                                w->cuda_fp8, b, y->data, CUDA_ERR));
            fp8_x_ready_mark(f, NULL, 0);
            wq_x_drop(f);
        }
        return;
    }
#endif
    const struct pgd_tensor *in = x;
    struct pgd_tensor xq;
    if (w->kind == PGD__QW_FP8) {
        fp8_round_activations(f, x, &xq);
        if (f->status != PGD_OK)
            return;
        in = &xq;
    }
    cpu_linear(f, in->data, w->dense, b, (int)n, (int)w->in, (int)w->out, y->data);
}

static void linear_multi_run(struct pgd_fwd *f, int count, const struct pgd_linear *const *w,
                             const struct pgd_tensor *x, struct pgd_tensor *const *y)
{
    if (count < 1 || count > 3) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "linear_multi: %d layers (1..3)", count);
        return;
    }
    bool one_launch = ON_CUDA(f);
    for (int i = 0; i < count; i++)
        one_launch = one_launch && !w[i]->quant && w[i]->in_features == w[0]->in_features;
    if (!one_launch) {
#ifdef PGD_HAVE_CUDA
        /* Quantized q, k, v of one x are offered to run together (at decode sizes one
         * launch of the decode GEMV; else, FP8, x quantized once for them). */
        if (ON_CUDA(f))
            f->multi_offer.want = count;
#endif
        for (int i = 0; i < count; i++)
            pgd_op_linear(f, w[i], x, y[i]);
#ifdef PGD_HAVE_CUDA
        if (ON_CUDA(f)) {
            const int got = f->multi_offer.got;
            f->multi_offer.want = f->multi_offer.got = 0;
            const int n = (int)pgd_tensor_rows(x);
            if (got > 0 && f->status == PGD_OK && f->multi_offer.w[0]->kind == PGD__QW_WQ) {
                const struct pgd_cuda_wq *ww[3];
                for (int i = 0; i < got; i++)
                    ww[i] = f->multi_offer.w[i]->cuda_wq;
                CUDA_RUN(f, pgd_cuda_wq_linear_multi(f->cuda, f->act_dtype, x->data, n, got, ww,
                                                     f->multi_offer.b, f->multi_offer.y,
                                                     CUDA_ERR));
                wq_x_drop(f);
            } else if (got > 0 && f->status == PGD_OK) {
                const struct pgd_cuda_fp8 *fw[3];
                for (int i = 0; i < got; i++)
                    fw[i] = f->multi_offer.w[i]->cuda_fp8;
                fp8_x_ready_mark(f, x, f->multi_offer.w[0]->in);
                CUDA_RUN(f, pgd_cuda_fp8_linear_multi(f->cuda, f->act_dtype, x->data, n, got, fw,
                                                      f->multi_offer.b, f->multi_offer.y,
                                                      CUDA_ERR));
                fp8_x_ready_mark(f, NULL, 0);
                wq_x_drop(f);
            }
        }
#endif
        return;
    }
#ifdef PGD_HAVE_CUDA
    for (int i = 0; i < count; i++)
        if (!linear_ready(f, "linear_multi", x, 3, (const struct pgd_tensor *[]){ &w[i]->weight, x, y[i] }))
            return;
    int64_t n = pgd_tensor_rows(x);
    const void *wd[3], *bd[3];
    void *yd[3];
    int out[3];
    for (int i = 0; i < count; i++) {
        if (!check_shape(f, "linear_multi", "x", x, n, w[i]->in_features) ||
            !check_shape(f, "linear_multi", "y", y[i], n, w[i]->out_features))
            return;
        wd[i] = w[i]->weight.data;
        bd[i] = w[i]->bias.data;
        yd[i] = y[i]->data;
        out[i] = (int)w[i]->out_features;
    }
    const int in = (int)w[0]->in_features;
    size_t sb = pgd_cuda_linear_multi_scratch(f->cuda, f->act_dtype, (int)n, in, count, wd, bd,
                                              out);
    if (sb > f->multi_scratch_bytes) {
        if (!(f->multi_scratch = pgd__arena_alloc(f->arena, sb))) {
            pgd_fwd_fail(f, PGD_ERR_NOMEM, "linear_multi: no scratch of %zu bytes", sb);
            return;
        }
        f->multi_scratch_bytes = sb;
    }
    /* One GEMM: its columns stay in the scratch for the rope_attention after it (qkv_rows) */
    CUDA_RUN(f, pgd_cuda_linear_multi(f->cuda, f->act_dtype, x->data, (int)n, in, count, wd, bd,
                                      out, sb && qkv_rows_on() ? NULL : yd,
                                      sb ? f->multi_scratch : NULL, CUDA_ERR));
    if (sb && qkv_rows_on() && f->status == PGD_OK) {
        f->qkv_rows.src = f->multi_scratch;
        f->qkv_rows.n = (int)n;
        f->qkv_rows.count = count;
        f->qkv_rows.ld = 0;
        for (int i = 0; i < count; i++) {
            f->qkv_rows.out[i] = out[i];
            f->qkv_rows.y[i] = yd[i];
            f->qkv_rows.ld += out[i];
        }
    }
#endif
}

static void rope_run(struct pgd_fwd *f, const struct pgd_rope *rope, struct pgd_tensor *q,
                     struct pgd_tensor *k)
{
    if (!op_ready(f, "rope", 2, (const struct pgd_tensor *[]){ q, k }))
        return;
    int64_t D = rope->head_dim;
    if (pgd_tensor_rows(q) != f->n_tokens || pgd_tensor_rows(k) != f->n_tokens ||
        pgd_tensor_cols(q) % D || pgd_tensor_cols(k) % D) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG,
                     "rope: q [%lld, %lld] and k [%lld, %lld] must be [%d, heads * %lld]",
                     (long long)pgd_tensor_rows(q), (long long)pgd_tensor_cols(q),
                     (long long)pgd_tensor_rows(k), (long long)pgd_tensor_cols(k), f->n_tokens,
                     (long long)D);
        return;
    }
    if (ON_CUDA(f)) {
        if (f->pw)                   /* the positions inside a segment: not piecewise */
            f->pw->unsafe = true;
        CUDA_RUN(f, pgd_cuda_rope(f->cuda, f->act_dtype, q->data, (int)(pgd_tensor_cols(q) / D),
                                  k->data, (int)(pgd_tensor_cols(k) / D), f->n_tokens, (int)D,
                                  rope->rotary_dim, rope->inv_freq, f->positions, CUDA_ERR));
        return;
    }
    pgd_cpu_rope(q->data, (int)(pgd_tensor_cols(q) / D), k->data, (int)(pgd_tensor_cols(k) / D),
                 f->n_tokens, (int)D, rope->rotary_dim, rope->inv_freq, f->positions);
}

/* Whether layer's cache fits p and q, k, v, out are [n, heads * head_dim]. */
static bool attention_args_ok(struct pgd_fwd *f, const char *op, int layer,
                              const struct pgd_attn_params *p, const struct pgd_tensor *q,
                              const struct pgd_tensor *k, const struct pgd_tensor *v,
                              const struct pgd_tensor *out)
{
    struct pgd__kv_cache *kv = f->kv;
    if (layer < 0 || layer >= kv->n_layers || p->n_kv_heads != kv->n_kv_heads ||
        p->head_dim != kv->head_dim || p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG,
                     "%s: layer %d with %d heads / %d kv heads of %d does not fit the "
                     "cache (%d layers, %d kv heads of %d)", op, layer, p->n_heads,
                     p->n_kv_heads, p->head_dim, kv->n_layers, kv->n_kv_heads, kv->head_dim);
        return false;
    }
    int64_t n = f->n_tokens;
    return check_shape(f, op, "q", q, n, (int64_t)p->n_heads * p->head_dim) &&
           check_shape(f, op, "k", k, n, (int64_t)p->n_kv_heads * p->head_dim) &&
           check_shape(f, op, "v", v, n, (int64_t)p->n_kv_heads * p->head_dim) &&
           check_shape(f, op, "out", out, n, (int64_t)p->n_heads * p->head_dim);
}

/* The K/V write (unless the caller's kernel did it) and the attention itself. */
static void attend(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                   const struct pgd_tensor *q, const struct pgd_tensor *k,
                   const struct pgd_tensor *v, struct pgd_tensor *out, bool write_kv,
                   const struct pgd_cuda_wq *o_layer)
{
    struct pgd__kv_cache *kv = f->kv;
    const bool fp8 = kv->dtype == PGD_DTYPE_F8_E4M3;
#ifdef PGD_HAVE_CUDA
    if (ON_CUDA(f)) {
        const struct pgd_cuda_kv_fp8 scales = { kv->k_scale[layer], kv->v_scale[layer] };
        if (write_kv)
            CUDA_RUN(f, pgd_cuda_kv_write(f->cuda, f->act_dtype, kv->k[layer], kv->v[layer],
                                          k->data, v->data, f->slot_mapping, call_tokens(f),
                                          p->n_kv_heads * p->head_dim, fp8 ? &scales : NULL,
                                          CUDA_ERR));
        struct pgd_cuda_attn a = {
            .dtype = f->act_dtype, .q = q->data, .out = out->data, .k_cache = kv->k[layer],
            .v_cache = kv->v[layer], .block_size = kv->block_size, .p = *p,
            .n_tokens = call_tokens(f), .n_seqs = f->n_seqs, .query_start = f->query_start,
            .seq_lens = f->seq_lens, .block_tables = f->block_tables,
            .max_blocks = f->max_blocks, .positions = f->positions,
            .h_query_start = f->h_query_start, .h_seq_lens = f->h_seq_lens,
            .max_seq_len = f->max_seq_len,
            .step_id = f->step_id, .decode_items = f->decode_items,
            .kv_fp8 = fp8 ? &scales : NULL,
            .out_perm = o_layer ? pgd_cuda_wq_input_perm(o_layer) : NULL,
            .out_pos = o_layer ? pgd_cuda_wq_input_pos(o_layer) : NULL,
        };
        /* Split-context decode needs partial results per split: the kernel says how much
         * (0 when it does not split). From the arena, so a graph replay finds it again. */
        size_t sb = pgd_cuda_attention_scratch(f->cuda, &a);
        void *scratch = sb ? pgd__fwd_call_alloc(f, sb) : NULL;
        if (sb && !scratch) {
            pgd_fwd_fail(f, PGD_ERR_NOMEM, "attention: no scratch of %zu bytes", sb);
            return;
        }
        if (f->status == PGD_OK)
            CUDA_RUN(f, pgd_cuda_attention(f->cuda, &a, scratch, CUDA_ERR));
        return;
    }
#endif
    (void)write_kv;
    (void)o_layer;
    struct pgd_cpu_kv_layer cl = { .block_size = kv->block_size, .n_kv_heads = kv->n_kv_heads,
                                   .head_dim = kv->head_dim };
    if (fp8) {
        cl.k8 = kv->k[layer];
        cl.v8 = kv->v[layer];
        cl.k_scale = kv->k_scale[layer];
        cl.v_scale = kv->v_scale[layer];
    } else {
        cl.k = kv->k[layer];
        cl.v = kv->v[layer];
    }
    pgd_cpu_kv_write(&cl, k->data, v->data, f->slot_mapping, f->n_tokens);
    struct pgd_cpu_seq_layout L = { .n_seqs = f->n_seqs, .query_start = f->query_start,
                                    .seq_lens = f->seq_lens, .block_tables = f->block_tables,
                                    .max_blocks = f->max_blocks, .positions = f->positions };
    /* The CPU kernel scores one query row at a time over its context: max_seq_len entries
     * are enough for any row (one spare). */
    float *scores = pgd__fwd_call_alloc(f, (size_t)(f->max_seq_len + 1) * sizeof(float));
    if (!scores) {
        pgd_fwd_fail(f, PGD_ERR_NOMEM, "attention: no scratch for %d scores", f->max_seq_len);
        return;
    }
    pgd_cpu_attention(&cl, &L, p, q->data, scores, out->data);
}

static void attention_run(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                          const struct pgd_tensor *q, const struct pgd_tensor *k,
                          const struct pgd_tensor *v, struct pgd_tensor *out)
{
    if (!op_ready(f, "attention", 4, (const struct pgd_tensor *[]){ q, k, v, out }) ||
        !attention_args_ok(f, "attention", layer, p, q, k, v, out))
        return;
    /* counted before a piecewise boundary returns, as every step counts it */
    const struct pgd_cuda_wq *o_layer = ON_CUDA(f) ? attention_gather_next(f) : NULL;
    if (f->pw) {
        const struct pgd__pw_call c = { .kind = PGD__PW_ATTENTION, .layer = layer, .p = *p,
                                        .q = *q, .k = *k, .v = *v, .out = *out };
        if (pgd__pw_boundary(f, &c))
            return;
    }
    attend(f, layer, p, q, k, v, out, true, o_layer);
    if (ON_CUDA(f))
        gather_produced(f, out);
}

/* rope_attention's CUDA path: the rotary + K/V write (from q, k and v side by side in rows
 * [n, ld] when rows is set), then the attention. */
static void rope_attention_cuda(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                                const struct pgd_rope *rope, const void *qn, const void *kn,
                                float eps, struct pgd_tensor *q, const struct pgd_tensor *k,
                                const struct pgd_tensor *v, struct pgd_tensor *out,
                                const void *rows, int ld, const struct pgd_cuda_wq *o_layer)
{
#ifdef PGD_HAVE_CUDA
    struct pgd__kv_cache *kv = f->kv;
    const struct pgd_cuda_kv_fp8 scales = { kv->k_scale[layer], kv->v_scale[layer] };
    const struct pgd_cuda_kv_fp8 *fp8 = kv->dtype == PGD_DTYPE_F8_E4M3 ? &scales : NULL;
    if (rows)
        CUDA_RUN(f, pgd_cuda_rope_kv_write_rows(f->cuda, f->act_dtype, q->data, rows, ld,
                                                p->n_heads, p->n_kv_heads, call_tokens(f),
                                                p->head_dim, rope->rotary_dim, rope->inv_freq,
                                                f->positions, qn, kn, eps, kv->k[layer],
                                                kv->v[layer], f->slot_mapping, fp8, CUDA_ERR));
    else
        CUDA_RUN(f, pgd_cuda_rope_kv_write(f->cuda, f->act_dtype, q->data, p->n_heads, k->data,
                                           v->data, p->n_kv_heads, call_tokens(f), p->head_dim,
                                           rope->rotary_dim, rope->inv_freq, f->positions, qn,
                                           kn, eps, kv->k[layer], kv->v[layer], f->slot_mapping,
                                           fp8, CUDA_ERR));
    if (f->status == PGD_OK)
        attend(f, layer, p, q, k, v, out, false, o_layer);
#else
    (void)f; (void)layer; (void)p; (void)rope; (void)qn; (void)kn; (void)eps; (void)q;
    (void)k; (void)v; (void)out; (void)rows; (void)ld; (void)o_layer;
#endif
}

static void rope_attention_run(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                               const struct pgd_rope *rope, const struct pgd_tensor *q_norm,
                               const struct pgd_tensor *k_norm, float eps, struct pgd_tensor *q,
                               struct pgd_tensor *k, const struct pgd_tensor *v,
                               struct pgd_tensor *out)
{
    /* q, k and v still side by side in linear_multi's scratch: read there (taken before
     * op_ready, which would split them) */
    const void *rows = NULL;
    int ld = 0;
#ifdef PGD_HAVE_CUDA
    if (f->qkv_rows.src && f->qkv_rows.count == 3 && f->qkv_rows.y[0] == q->data &&
        f->qkv_rows.y[1] == k->data && f->qkv_rows.y[2] == v->data) {
        rows = f->qkv_rows.src;
        ld = f->qkv_rows.ld;
        f->qkv_rows.src = NULL;
    }
#endif
    (void)rows;
    (void)ld;
    if (!op_ready(f, "rope_attention", 4, (const struct pgd_tensor *[]){ q, k, v, out }) ||
        !attention_args_ok(f, "rope_attention", layer, p, q, k, v, out))
        return;
    if (rope->head_dim != p->head_dim || !q_norm != !k_norm ||
        (q_norm && (pgd_tensor_numel(q_norm) != p->head_dim ||
                    pgd_tensor_numel(k_norm) != p->head_dim))) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "rope_attention: rope head_dim %d, q/k norms of %lld "
                     "/ %lld elements for head_dim %d (both or neither, head_dim each)",
                     rope->head_dim, q_norm ? (long long)pgd_tensor_numel(q_norm) : 0LL,
                     k_norm ? (long long)pgd_tensor_numel(k_norm) : 0LL, p->head_dim);
        return;
    }
    if (ON_CUDA(f)) {
        const void *qn = q_norm ? q_norm->data : NULL, *kn = k_norm ? k_norm->data : NULL;
        const struct pgd_cuda_wq *o_layer = attention_gather_next(f);
        if (f->pw) {
            const struct pgd__pw_call c = { .kind = PGD__PW_ROPE_ATTENTION, .layer = layer,
                                            .p = *p, .rope = rope, .q_norm = qn, .k_norm = kn,
                                            .eps = eps, .q = *q, .k = *k, .v = *v, .out = *out,
                                            .rows = rows, .ld = ld };
            if (pgd__pw_boundary(f, &c))
                return;
        }
        rope_attention_cuda(f, layer, p, rope, qn, kn, eps, q, k, v, out, rows, ld, o_layer);
        gather_produced(f, out);
        return;
    }
    if (q_norm) {
        int64_t n = f->n_tokens;
        struct pgd_tensor qh = pgd_tensor_view2d(q, n * p->n_heads, p->head_dim);
        struct pgd_tensor kh = pgd_tensor_view2d(k, n * p->n_kv_heads, p->head_dim);
        pgd_op_rmsnorm(f, &qh, q_norm, eps, &qh);
        pgd_op_rmsnorm(f, &kh, k_norm, eps, &kh);
    }
    pgd_op_rope(f, rope, q, k);
    if (f->status == PGD_OK)
        attend(f, layer, p, q, k, v, out, true, NULL);
}

static void act_mul_run(struct pgd_fwd *f, enum pgd_act act, const struct pgd_tensor *gate_up,
                        struct pgd_tensor *out)
{
    if (!op_ready(f, "act_mul", 2, (const struct pgd_tensor *[]){ gate_up, out }))
        return;
    int64_t n = pgd_tensor_rows(gate_up), inter = pgd_tensor_cols(gate_up) / 2;
    if (pgd_tensor_cols(gate_up) % 2 || !check_shape(f, "act_mul", "out", out, n, inter)) {
        if (f->status == PGD_OK)
            pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "act_mul: gate_up has an odd width %lld",
                         (long long)pgd_tensor_cols(gate_up));
        return;
    }
    if (ON_CUDA(f) && f->fp8_norms) {
        fp8_act_run(f, act, gate_up, n, inter, out);
        return;
    }
    if (ON_CUDA(f)) {
        CUDA_RUN(f, pgd_cuda_act_mul(f->cuda, f->act_dtype, act, gate_up->data, (int)n,
                                     (int)inter, out->data, CUDA_ERR));
        return;
    }
    pgd_cpu_act_mul(act, gate_up->data, (int)n, (int)inter, out->data);
}

static void linear_act_mul_run(struct pgd_fwd *f, const struct pgd_linear *gate_up, enum pgd_act act,
                               const struct pgd_tensor *x, struct pgd_tensor *gate_up_scratch,
                               struct pgd_tensor *out)
{
    if (!ON_CUDA(f) || gate_up->quant) {
        /* The reference (and the quant plugin's linear): the two ops as they are, unless the
         * quantized linear takes the offer to apply the activation itself (FP8 on CUDA). */
        int64_t n = pgd_tensor_rows(x);
        bool offer = ON_CUDA(f) && gate_up->out_features % 2 == 0 &&
                     linear_ready(f, "linear_act_mul", x, 2,
                              (const struct pgd_tensor *[]){ gate_up_scratch, out }) &&
                     check_shape(f, "linear_act_mul", "out", out, n, gate_up->out_features / 2);
        if (offer) {
            f->act_offer.scratch = gate_up_scratch->data;
            f->act_offer.out = out->data;
            f->act_offer.act = act;
            f->act_offer.done = false;
        }
        pgd_op_linear(f, gate_up, x, gate_up_scratch);
        bool done = offer && f->act_offer.done;
        memset(&f->act_offer, 0, sizeof f->act_offer);
        if (!done)
            pgd_op_act_mul(f, act, gate_up_scratch, out);
        return;
    }
#ifdef PGD_HAVE_CUDA
    if (!linear_ready(f, "linear_act_mul", x, 4,
                  (const struct pgd_tensor *[]){ &gate_up->weight, x, gate_up_scratch, out }))
        return;
    int64_t n = pgd_tensor_rows(x), inter = gate_up->out_features / 2;
    if (gate_up->out_features % 2) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "linear_act_mul: gate_up has an odd width %lld",
                     (long long)gate_up->out_features);
        return;
    }
    if (!check_shape(f, "linear_act_mul", "x", x, n, gate_up->in_features) ||
        !check_shape(f, "linear_act_mul", "scratch", gate_up_scratch, n, 2 * inter) ||
        !check_shape(f, "linear_act_mul", "out", out, n, inter))
        return;
    CUDA_RUN(f, pgd_cuda_linear_act_mul(f->cuda, f->act_dtype, act, x->data,
                                        gate_up->weight.data, gate_up->bias.data, (int)n,
                                        (int)gate_up->in_features, (int)inter,
                                        gate_up_scratch->data, out->data, CUDA_ERR));
#endif
}

/* out [n_logits, head rows] float32 on the step's device = the rows of h the runner asked
 * for (f->logits_rows, usually each sequence's last token) times the head: the rows are
 * gathered, then one GEMM over just those ([n_logits, d] x [rows, d]^T). */
static void logits_into(struct pgd_fwd *f, const struct pgd_tensor *h,
                        const struct pgd_linear *head, float *out)
{
    int64_t d = pgd_tensor_cols(h);
#ifdef PGD_HAVE_CUDA
    if (ON_CUDA(f)) {
        void *g = pgd__fwd_call_alloc(f, (size_t)f->n_logits * d * pgd_dtype_size(f->act_dtype));
        if (!g) {
            pgd_fwd_fail(f, PGD_ERR_NOMEM, "logits: no scratch for %d rows", f->n_logits);
            return;
        }
        CUDA_RUN(f, pgd_cuda_gather_rows(f->cuda, f->act_dtype, h->data, f->logits_rows,
                                         f->n_logits, (int)d, g, CUDA_ERR));
        if (f->status == PGD_OK)
            CUDA_RUN(f, pgd_cuda_linear(f->cuda, f->act_dtype, g, head->weight.data,
                                        head->bias.data, f->n_logits, (int)d,
                                        (int)head->out_features, PGD_DTYPE_F32, out, CUDA_ERR));
        return;
    }
#endif
    float *rows = pgd__fwd_call_alloc(f, (size_t)f->n_logits * d * sizeof(float));
    if (!rows) {
        pgd_fwd_fail(f, PGD_ERR_NOMEM, "logits: no scratch for %d rows", f->n_logits);
        return;
    }
    const float *hd = h->data;
    for (int i = 0; i < f->n_logits; i++)
        for (int64_t c = 0; c < d; c++)
            rows[(size_t)i * d + c] = hd[(size_t)f->logits_rows[i] * d + c];
    cpu_linear(f, rows, head->weight.data, head->bias.data, f->n_logits, (int)d,
               (int)head->out_features, out);
}

/* Tensor parallelism: this rank's columns of the logits, [n_logits, its rows] in a slot of
 * C = ceil(vocab / N) columns, all-gathered into N slots, then copied into the whole rows
 * of f->logits (rank q's columns start at q * C). */
static void logits_gather(struct pgd_fwd *f, const struct pgd_tensor *h,
                          const struct pgd_linear *head)
{
    int n_ranks = pgd__comm_size(f->comm), vocab = f->vocab_size;
    int64_t chunk = (vocab + n_ranks - 1) / n_ranks, mine = chunk * pgd__comm_rank(f->comm);
    int64_t want = vocab - mine < chunk ? vocab - mine : chunk;
    if (head->out_features != want) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "logits: head has %lld rows; tensor parallel rank "
                     "%d of %d holds %lld of the vocabulary %d", (long long)head->out_features,
                     pgd__comm_rank(f->comm), n_ranks, (long long)want, vocab);
        return;
    }
    size_t slot = (size_t)f->n_logits * (size_t)chunk;
    float *local = pgd__arena_alloc(f->arena, slot * sizeof(float));
    float *all = pgd__arena_alloc(f->arena, slot * n_ranks * sizeof(float));
    if (!local || !all) {
        pgd_fwd_fail(f, PGD_ERR_NOMEM, "logits: no scratch for %d rows of %d ranks", f->n_logits,
                     n_ranks);
        return;
    }
    logits_into(f, h, head, local);
    if (f->status != PGD_OK)
        return;
    char err[256];
    void *stream = NULL;
#ifdef PGD_HAVE_CUDA
    if (ON_CUDA(f))
        stream = pgd_cuda_ctx_stream(f->cuda);
#endif
    enum pgd_status st = pgd__comm_all_gather(f->comm, PGD_DTYPE_F32, local, all, slot, stream,
                                              err, sizeof err);
    if (st) {
        pgd_fwd_fail(f, st, "logits: %s", err);
        return;
    }
    for (int q = 0; q < n_ranks; q++) {
        int64_t cols = vocab - q * chunk < chunk ? vocab - q * chunk : chunk;
        const float *src = all + slot * q;   /* [n_logits, cols] */
        float *dst = f->logits + q * chunk;
        if (ON_CUDA(f)) {
            CUDA_RUN(f, pgd_cuda_copy_2d_async(f->cuda, dst, (size_t)vocab * sizeof(float), src,
                                               (size_t)cols * sizeof(float),
                                               (size_t)cols * sizeof(float), (size_t)f->n_logits,
                                               CUDA_ERR));
            continue;
        }
        for (int i = 0; i < f->n_logits; i++)
            memcpy(dst + (size_t)i * vocab, src + (size_t)i * cols, (size_t)cols * sizeof(float));
    }
}

/* A pooling step: the rows f->logits_rows of h ([n_tokens, hidden], the final norm's
 * output) into f->hidden [n_logits, hidden] (act dtype, on the step's device). */
static void hidden_rows(struct pgd_fwd *f, const struct pgd_tensor *h)
{
    if (!op_ready(f, "hidden", 1, (const struct pgd_tensor *[]){ h }))
        return;
    if (!check_shape(f, "hidden", "h", h, f->n_tokens, f->hidden_size))
        return;
    int64_t d = f->hidden_size;
    if (ON_CUDA(f)) {
        CUDA_RUN(f, pgd_cuda_gather_rows(f->cuda, f->act_dtype, h->data, f->logits_rows,
                                         f->n_logits, (int)d, f->hidden, CUDA_ERR));
        return;
    }
    const float *hd = h->data;
    float *out = f->hidden;
    for (int i = 0; i < f->n_logits; i++)
        memcpy(out + (size_t)i * d, hd + (size_t)f->logits_rows[i] * d, (size_t)d * sizeof *out);
}

static void logits_run(struct pgd_fwd *f, const struct pgd_tensor *h, const struct pgd_linear *head)
{
    /* In the piecewise layout the call is recorded even for no rows: a replay of the same
     * padded size may have some. */
    if (f->n_logits == 0 && !f->pw)
        return;
    if (f->want_hidden) {
        hidden_rows(f, h);
        return;
    }
    if (!op_ready(f, "logits", 2, (const struct pgd_tensor *[]){ h, &head->weight }))
        return;
    if (!check_shape(f, "logits", "h", h, f->n_tokens, head->in_features))
        return;
    if (f->comm && pgd__comm_size(f->comm) > 1 && head->out_features != f->vocab_size) {
        logits_gather(f, h, head);
        return;
    }
    if (head->out_features != f->vocab_size) {
        pgd_fwd_fail(f, PGD_ERR_INVALID_ARG, "logits: head has %lld rows, the vocabulary %d",
                     (long long)head->out_features, f->vocab_size);
        return;
    }
    if (f->pw && ON_CUDA(f)) {
        const struct pgd__pw_call c = { .kind = PGD__PW_LOGITS, .h = *h, .head = head };
        if (pgd__pw_boundary(f, &c))
            return;
    }
    if (f->n_logits > 0)
        logits_into(f, h, head, f->logits);
}

void pgd__ops_run_call(struct pgd_fwd *f, const struct pgd__pw_call *c)
{
    struct pgd_tensor q = c->q, k = c->k, v = c->v, out = c->out;
    switch (c->kind) {
    case PGD__PW_ROPE_ATTENTION:
        rope_attention_cuda(f, c->layer, &c->p, c->rope, c->q_norm, c->k_norm, c->eps, &q, &k,
                            &v, &out, c->rows, c->ld, NULL);
        return;
    case PGD__PW_ATTENTION:
        attend(f, c->layer, &c->p, &q, &k, &v, &out, true, NULL);
        return;
    case PGD__PW_LOGITS:
        if (f->n_logits > 0)
            logits_into(f, &c->h, c->head, f->logits);
        return;
    }
}

/* ---- tensor parallelism ----------------------------------------------------------------- */
static void embed_shard_run(struct pgd_fwd *f, const struct pgd_tensor *table, int64_t row0,
                            struct pgd_tensor *out)
{
    if (!op_ready(f, "embed_shard", 2, (const struct pgd_tensor *[]){ table, out }))
        return;
    int64_t rows = pgd_tensor_rows(table), d = pgd_tensor_cols(table);
    if (!check_shape(f, "embed_shard", "out", out, f->n_tokens, d) ||
        !ids_in_vocab(f, "embed_shard", f->vocab_size))
        return;
    if (ON_CUDA(f)) {
        CUDA_RUN(f, pgd_cuda_gather_rows_shard(f->cuda, f->act_dtype, table->data, row0, rows,
                                               f->token_ids, f->n_tokens, (int)d, out->data,
                                               CUDA_ERR));
        return;
    }
    pgd_cpu_embed_shard(table->data, row0, rows, f->token_ids, f->n_tokens, (int)d, out->data);
}

static void all_reduce_run(struct pgd_fwd *f, struct pgd_tensor *x)
{
    if (!f->comm || pgd__comm_size(f->comm) == 1)
        return;
    if (!op_ready(f, "all_reduce", 1, (const struct pgd_tensor *[]){ x }))
        return;
    void *stream = NULL;
#ifdef PGD_HAVE_CUDA
    if (ON_CUDA(f))
        stream = pgd_cuda_ctx_stream(f->cuda);
#endif
    char err[256];
    enum pgd_status st = pgd__comm_all_reduce_sum(f->comm, f->act_dtype, x->data,
                                                  (size_t)pgd_tensor_numel(x), stream, err,
                                                  sizeof err);
    if (st)
        pgd_fwd_fail(f, st, "all_reduce of [%lld, %lld]: %s", (long long)pgd_tensor_rows(x),
                     (long long)pgd_tensor_cols(x), err);
}

/* ---- the public ops: each body above, bracketed for the per-op profile -------------------- */
/* With f->prof (a profiled eager step) the op is timed and its cost (op_cost.h) added to its
 * row; without, one NULL test. Nested ops (a fused op's reference path) count in their
 * caller: begin hands them no mark, but end is still due, to close the nesting. */
#define PROFILED(f, body, cost)                                                          \
    do {                                                                                \
        int pm_ = (f)->prof ? pgd__op_profile_begin((f)->prof) : -1;                    \
        const double qb_ = (f)->prof_qweight_bytes;                                     \
        (void)qb_;                                                                      \
        body;                                                                           \
        if ((f)->prof) {                                                                \
            struct pgd__op_cost c_ = { .op = "" };                                      \
            if (pm_ >= 0)                                                               \
                c_ = cost;                                                              \
            pgd__op_profile_end((f)->prof, pm_, &c_);                                   \
        }                                                                               \
    } while (0)
#define ES(f) pgd_dtype_size((f)->act_dtype)
/* Inside a PROFILED cost: the quantized layers' weight bytes the op's body read. */
#define QBYTES(f) ((f)->prof_qweight_bytes - qb_)

void pgd_op_embed(struct pgd_fwd *f, const struct pgd_tensor *table, struct pgd_tensor *out)
{
    PROFILED(f, embed_run(f, table, out),
             pgd__op_cost_rows("embed", "other", f->n_tokens, pgd_tensor_cols(table), 2, 0, 0, ES(f)));
}

void pgd_op_rmsnorm(struct pgd_fwd *f, const struct pgd_tensor *x, const struct pgd_tensor *w,
                    float eps, struct pgd_tensor *out)
{
    PROFILED(f, rmsnorm_run(f, x, w, eps, out),
             pgd__op_cost_rows("rmsnorm", "norm", pgd_tensor_rows(x), pgd_tensor_cols(x), 2,
                               (double)pgd_tensor_cols(x) * ES(f), 4, ES(f)));
}

void pgd_op_add_rmsnorm(struct pgd_fwd *f, struct pgd_tensor *residual,
                        const struct pgd_tensor *delta, const struct pgd_tensor *w, float eps,
                        struct pgd_tensor *out)
{
    /* residual and delta read, residual and out written */
    PROFILED(f, add_rmsnorm_run(f, residual, delta, w, eps, out),
             pgd__op_cost_rows("add_rmsnorm", "norm", pgd_tensor_rows(residual),
                               pgd_tensor_cols(residual), 4,
                               (double)pgd_tensor_cols(residual) * ES(f), 5, ES(f)));
}

void pgd_op_add(struct pgd_fwd *f, struct pgd_tensor *x, const struct pgd_tensor *delta)
{
    PROFILED(f, add_run(f, x, delta),
             pgd__op_cost_rows("add", "elementwise", pgd_tensor_rows(x), pgd_tensor_cols(x), 3,
                               0, 1, ES(f)));
}

void pgd_op_linear(struct pgd_fwd *f, const struct pgd_linear *w, const struct pgd_tensor *x,
                   struct pgd_tensor *y)
{
    PROFILED(f, linear_run(f, w, x, y),
             pgd__op_cost_linear(w->quant ? "linear (quant)" : "linear", pgd_tensor_rows(x),
                                 w->in_features, 1, &w->out_features,
                                 pgd__op_weight_bytes(w, QBYTES(f)), ES(f), ES(f)));
}

/* q, k and v (or any count) from one x. */
static struct pgd__op_cost linear_multi_cost(struct pgd_fwd *f, int count,
                                             const struct pgd_linear *const *w,
                                             const struct pgd_tensor *x, double qbytes)
{
    int64_t outs[3] = { 0 };
    double wbytes = qbytes;
    for (int i = 0; i < count && i < 3; i++) {
        outs[i] = w[i]->out_features;
        wbytes += pgd__op_weight_bytes(w[i], 0);
    }
    return pgd__op_cost_linear(count == 3 ? "qkv" : "linear_multi", pgd_tensor_rows(x),
                               w[0]->in_features, count < 3 ? count : 3, outs, wbytes, ES(f),
                               ES(f));
}

void pgd_op_linear_multi(struct pgd_fwd *f, int count, const struct pgd_linear *const *w,
                         const struct pgd_tensor *x, struct pgd_tensor *const *y)
{
    PROFILED(f, linear_multi_run(f, count, w, x, y),
             linear_multi_cost(f, count, w, x, QBYTES(f)));
}

void pgd_op_rope(struct pgd_fwd *f, const struct pgd_rope *rope, struct pgd_tensor *q,
                 struct pgd_tensor *k)
{
    /* q and k read and written: 2 passes over [n, q cols + k cols] */
    PROFILED(f, rope_run(f, rope, q, k),
             pgd__op_cost_rows("rope", "elementwise", pgd_tensor_rows(q),
                               pgd_tensor_cols(q) + pgd_tensor_cols(k), 2, 0, 3, ES(f)));
}

void pgd_op_attention(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                      const struct pgd_tensor *q, const struct pgd_tensor *k,
                      const struct pgd_tensor *v, struct pgd_tensor *out)
{
    PROFILED(f, attention_run(f, layer, p, q, k, v, out),
             pgd__op_cost_attention(f, "attention", p, false));
}

void pgd_op_rope_attention(struct pgd_fwd *f, int layer, const struct pgd_attn_params *p,
                           const struct pgd_rope *rope, const struct pgd_tensor *q_norm,
                           const struct pgd_tensor *k_norm, float eps, struct pgd_tensor *q,
                           struct pgd_tensor *k, const struct pgd_tensor *v,
                           struct pgd_tensor *out)
{
    PROFILED(f, rope_attention_run(f, layer, p, rope, q_norm, k_norm, eps, q, k, v, out),
             pgd__op_cost_attention(f, "rope+attention", p, true));
}

void pgd_op_act_mul(struct pgd_fwd *f, enum pgd_act act, const struct pgd_tensor *gate_up,
                    struct pgd_tensor *out)
{
    /* [n, 2I] read, [n, I] written: 3 passes over [n, I] */
    PROFILED(f, act_mul_run(f, act, gate_up, out),
             pgd__op_cost_rows("act_mul", "elementwise", pgd_tensor_rows(gate_up),
                               pgd_tensor_cols(gate_up) / 2, 3, 0, 6, ES(f)));
}

/* The fused gate_up + activation: its GEMM's FLOPs; the bytes of the fused ideal (no [n, 2I]
 * intermediate): weights, x, and the [n, I] output. */
static struct pgd__op_cost linear_act_mul_cost(struct pgd_fwd *f, const struct pgd_linear *gate_up,
                                               const struct pgd_tensor *x, double qbytes)
{
    int64_t n = pgd_tensor_rows(x), inter = gate_up->out_features / 2;
    struct pgd__op_cost c = pgd__op_cost_linear("gate_up+act", n, gate_up->in_features, 1,
                                                &gate_up->out_features,
                                                pgd__op_weight_bytes(gate_up, qbytes), ES(f),
                                                ES(f));
    c.bytes -= (double)n * (double)inter * (double)ES(f);
    snprintf(c.shape, sizeof c.shape, "%lld -> 2x%lld", (long long)gate_up->in_features,
             (long long)inter);
    return c;
}

void pgd_op_linear_act_mul(struct pgd_fwd *f, const struct pgd_linear *gate_up, enum pgd_act act,
                           const struct pgd_tensor *x, struct pgd_tensor *gate_up_scratch,
                           struct pgd_tensor *out)
{
    PROFILED(f, linear_act_mul_run(f, gate_up, act, x, gate_up_scratch, out),
             linear_act_mul_cost(f, gate_up, x, QBYTES(f)));
}

/* The head over the logits rows (float32 out), or the gather of a pooling step's rows. */
static struct pgd__op_cost logits_cost(struct pgd_fwd *f, const struct pgd_linear *head,
                                       double qbytes)
{
    if (f->want_hidden)
        return pgd__op_cost_rows("hidden rows", "other", f->n_logits, f->hidden_size, 2, 0, 0,
                                 ES(f));
    return pgd__op_cost_linear("lm_head", f->n_logits, head->in_features, 1,
                               &head->out_features, pgd__op_weight_bytes(head, qbytes), ES(f),
                               sizeof(float));
}

void pgd_op_logits(struct pgd_fwd *f, const struct pgd_tensor *h, const struct pgd_linear *head)
{
    PROFILED(f, logits_run(f, h, head), logits_cost(f, head, QBYTES(f)));
}

void pgd_op_embed_shard(struct pgd_fwd *f, const struct pgd_tensor *table, int64_t row0,
                        struct pgd_tensor *out)
{
    PROFILED(f, embed_shard_run(f, table, row0, out),
             pgd__op_cost_rows("embed_shard", "other", f->n_tokens, pgd_tensor_cols(table), 2,
                               0, 0, ES(f)));
}

void pgd_op_all_reduce(struct pgd_fwd *f, struct pgd_tensor *x)
{
    if (!f->comm || pgd__comm_size(f->comm) == 1)
        return;                       /* not split: nothing to do, nothing to time */
    PROFILED(f, all_reduce_run(f, x),
             pgd__op_cost_rows("all_reduce", "other", pgd_tensor_rows(x), pgd_tensor_cols(x), 2,
                               0, 1, ES(f)));
}

/* ---- rope ------------------------------------------------------------------------------- */
enum pgd_status pgd_rope_init(struct pgd_rope *rope, const struct pgd_rope_config *cfg,
                              char *err, size_t errlen)
{
    rope->inv_freq = NULL;
    if (cfg->head_dim <= 0 || cfg->rotary_dim <= 0 || cfg->rotary_dim > cfg->head_dim ||
        cfg->rotary_dim % 2 || cfg->rotary_dim > 1024)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "rope: rotary_dim %d must be even, positive, <= head_dim %d and <= 1024",
                        cfg->rotary_dim, cfg->head_dim);
    if (!(cfg->theta > 0))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "rope: rope_theta %g must be > 0",
                        cfg->theta);
    int half = cfg->rotary_dim / 2;
    rope->head_dim = cfg->head_dim;
    rope->rotary_dim = cfg->rotary_dim;
    rope->inv_freq = malloc((size_t)half * sizeof(float));
    if (!rope->inv_freq)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "rope: out of memory");
    for (int j = 0; j < half; j++) {
        /* As transformers computes it: in float32, base ** (2j / dim). */
        float expo = (float)(2 * j) / (float)cfg->rotary_dim;
        float inv = (float)(1.0 / pow(cfg->theta, (double)expo));
        if (cfg->scaling == PGD_ROPE_LINEAR) {
            inv = (float)(inv / cfg->factor);
        } else if (cfg->scaling == PGD_ROPE_LLAMA3) {
            /* Llama 3.1's rule (transformers' _compute_llama3_parameters): wavelengths
             * longer than the original context / low_freq_factor are divided by factor,
             * shorter than / high_freq_factor kept, the band between interpolated. */
            double old_ctx = cfg->original_max_position;
            double low_wl = old_ctx / cfg->low_freq_factor;
            double high_wl = old_ctx / cfg->high_freq_factor;
            double wavelen = 2.0 * M_PI / inv;
            if (wavelen > low_wl) {
                inv = (float)(inv / cfg->factor);
            } else if (wavelen >= high_wl) {   /* medium frequencies: interpolate */
                double smooth = (old_ctx / wavelen - cfg->low_freq_factor) /
                                (cfg->high_freq_factor - cfg->low_freq_factor);
                inv = (float)((1.0 - smooth) * inv / cfg->factor + smooth * inv);
            }
        }
        rope->inv_freq[j] = inv;
    }
    return PGD_OK;
}

void pgd_rope_fini(struct pgd_rope *rope)
{
    free(rope->inv_freq);
    rope->inv_freq = NULL;
}
