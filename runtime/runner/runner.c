/* The model runner (see runner.h): sequences in, one flat batch, logits out.
 *
 * The step's batch metadata lives in one buffer laid out tightly for the step's sizes: host
 * memory on the CPU; on a GPU a pinned host buffer and its device twin, copied with one
 * host-to-device transfer per step on the context's stream. The logits come back as
 * float32 into pinned host memory (or, for greedy steps, only the argmax ids; for sampled
 * steps, only the sampling results: see runner_sample.c). */
#include "config.h"
#include "runtime/runner/runner_internal.h"
#include "runtime/runner/batch.h"
#include "runtime/runner/runner_graph.h"
#include "runtime/runner/piecewise.h"
#include "runtime/runner/op_profile.h"
#include "runtime/runner/host_work_line.h"
#include "runtime/model/model.h"
#include "runtime/model/qweight.h"
#include "runtime/runner/fwd.h"
#include "runtime/base/clock.h"
#include "runtime/base/device.h"
#include "runtime/sample/sample_rows.h"
#include "runtime/dist/comm.h"
#include <pagoda/log.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

/* What a step hands back after its forward pass: the argmax ids (greedy), or the rows'
 * sampling results (rows), or (neither) the logits rows in r->logits. Borrowed from the
 * caller of the step. */
struct step_want {
    int32_t *greedy;                   /* [n_logits] */
    const struct pgd__sample_row *rows;   /* [n_logits] */
    struct pgd__sample_result *res;    /* [n_logits] */
    bool hidden;                       /* a pooling step: the rows' hidden states into
                                          r->hidden, no logits (see finish_hidden) */
};

static bool on_cuda(const struct pgd__runner *r) { return r->params.device == PGD_DEVICE_CUDA; }
static void tp_stop_workers(struct pgd__runner *r);

/* Host memory the device copies to or from: pinned on a GPU (so that copies run
 * asynchronously on the stream). Owned by the caller, freed with host_free. */
static void *host_alloc(const struct pgd__runner *r, size_t bytes)
{
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r))
        return pgd_cuda_host_alloc(bytes);
#endif
    return malloc(bytes ? bytes : 1);
}

static void host_free(const struct pgd__runner *r, void *p)
{
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r)) {
        pgd_cuda_host_free(p);
        return;
    }
#endif
    free(p);
}

/* Waits for the GPU (a no-op on the CPU); the wait counts in r->device_s. */
static enum pgd_status device_sync(struct pgd__runner *r, char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r) && r->cuda) {
        double t0 = pgd__now_s();
        int rc = pgd_cuda_sync(r->cuda, err, errlen);
        r->device_s += pgd__now_s() - t0;
        if (rc)
            return PGD_ERR_DEVICE;
    }
#endif
    return PGD_OK;
}

enum pgd_status pgd__runner_wait_device(struct pgd__runner *r, char *err, size_t errlen)
{
    return device_sync(r, err, errlen);
}

double pgd__runner_device_seconds(const struct pgd__runner *r) { return r->device_s; }

void pgd__runner_host_split(const struct pgd__runner *r, struct pgd__runner_host_split *out)
{
    *out = r->host_split;
}

static void meta_free(struct pgd__runner *r)
{
    if (on_cuda(r)) {
        host_free(r, r->meta_pin[0]);
        host_free(r, r->meta_pin[1]);
        if (r->meta_dev)
            pgd__device_free(r->params.device, r->meta_dev);
    } else {
        free(r->meta_host);
    }
    r->meta_pin[0] = r->meta_pin[1] = NULL;
    r->meta_host = r->meta_dev = NULL;
    r->meta_cap = 0;
}

/* Grows the batch metadata buffers to at least bytes (by half again, so that slowly
 * growing steps do not reallocate each time): on a GPU both turns' pinned buffers and the
 * device copy. Waits for the GPU first: a queued copy may still read the old buffers. */
static enum pgd_status meta_reserve(struct pgd__runner *r, size_t bytes, char *err, size_t errlen)
{
    if (bytes <= r->meta_cap)
        return PGD_OK;
    enum pgd_status st = device_sync(r, err, errlen);
    if (st)
        return st;
    meta_free(r);
    size_t cap = bytes + bytes / 2;
    if (on_cuda(r)) {
        r->meta_pin[0] = host_alloc(r, cap);
        r->meta_pin[1] = host_alloc(r, cap);
        r->meta_host = r->meta_pin[0] && r->meta_pin[1] ? r->meta_pin[r->turn] : NULL;
        r->meta_dev = pgd__device_alloc(r->params.device, cap);
    } else {
        r->meta_host = r->meta_dev = malloc(cap);
    }
    if (!r->meta_host || !r->meta_dev) {
        meta_free(r);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "runner: out of memory for %zu bytes of "
                        "batch metadata", cap);
    }
    r->meta_cap = cap;
    return PGD_OK;
}

void pgd__runner_default_params(struct pgd__runner_params *p)
{
    *p = (struct pgd__runner_params){
        .device = PGD_DEVICE_CPU,
        .block_size = 16,
        .num_blocks = 0,
        .kv_cache_bytes = (size_t)256 << 20,
        .max_num_batched_tokens = 2048,
        .max_num_seqs = 256,
        .gpu_memory_utilization = 0.9,
        .dtype = PGD_DTYPE_COUNT,
        .kv_cache_dtype = PGD_DTYPE_COUNT,
    };
}

/* The accessors hand out borrowed pointers, valid while the runner lives. */
const struct pgd_model_desc *pgd__runner_desc(const struct pgd__runner *r)
{
    return &r->model->desc;
}
int pgd__runner_num_blocks(const struct pgd__runner *r) { return r->kv.num_blocks; }
int pgd__runner_block_size(const struct pgd__runner *r) { return r->kv.block_size; }
const struct pgd__model *pgd__runner_model(const struct pgd__runner *r) { return r->model; }
enum pgd_dtype pgd__runner_kv_dtype(const struct pgd__runner *r)
{
    return r->params.kv_cache_dtype == PGD_DTYPE_F8_E4M3 ? PGD_DTYPE_F8_E4M3 : r->model->dtype;
}

/* r->kv <- num_blocks blocks of block_size in the KV dtype, with the FP8 scales. */
static enum pgd_status kv_init(struct pgd__runner *r, int num_blocks, int block_size, char *err,
                               size_t errlen)
{
    const struct pgd_model_desc *d = &r->model->desc;
    enum pgd_status st = pgd__kv_cache_init(&r->kv, r->params.device, pgd__runner_kv_dtype(r),
                                            d->n_layers, num_blocks, block_size, d->n_kv_heads,
                                            d->head_dim, err, errlen);
    if (st == PGD_OK && r->kv_k_scale)
        for (int l = 0; l < d->n_layers; l++) {
            r->kv.k_scale[l] = r->kv_k_scale[l];
            r->kv.v_scale[l] = r->kv_v_scale[l];
        }
    return st;
}

/* FP8 KV cache: the checkpoint's per-layer scales (runtime/model/kv_scales.c), else 1.0. */
static enum pgd_status kv_scales_load(struct pgd__runner *r, char *err, size_t errlen)
{
    if (r->params.kv_cache_dtype != PGD_DTYPE_F8_E4M3)
        return PGD_OK;
    int n = r->model->desc.n_layers > 0 ? r->model->desc.n_layers : 1;
    r->kv_k_scale = malloc((size_t)n * sizeof *r->kv_k_scale);
    r->kv_v_scale = malloc((size_t)n * sizeof *r->kv_v_scale);
    if (!r->kv_k_scale || !r->kv_v_scale)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    int found = 0;
    enum pgd_status st = pgd__model_kv_scales(r->model, r->kv_k_scale, r->kv_v_scale, &found,
                                              err, errlen);
    if (st)
        return st;
    if (found)
        PGD_INFO("kv cache: fp8_e4m3 with the checkpoint's k_scale / v_scale (%d of %d layers)",
                 found, r->model->desc.n_layers);
    else
        PGD_WARN("kv cache: fp8_e4m3 with k_scale = v_scale = 1.0 (the checkpoint has no KV "
                 "scales); values beyond +-448 saturate, which may cost accuracy");
    return PGD_OK;
}

size_t pgd__runner_activation_bytes(const struct pgd__runner *r)
{
    return r->act_bytes ? r->act_bytes : r->arena.high_water;
}
void pgd__runner_graph_stats(const struct pgd__runner *r, long *replays, int *captured)
{
    pgd__graphs_stats(r->graphs, replays, captured);
}

void pgd__runner_piecewise_stats(const struct pgd__runner *r, long *replays, int *captured,
                                 int *eager)
{
    pgd__pw_stats(r->pw, replays, captured, eager);
}

struct pgd_cuda_ctx *pgd__runner_cuda(const struct pgd__runner *r) { return r->cuda; }
struct pgd__op_profile *pgd__runner_op_profile(const struct pgd__runner *r) { return r->prof; }

enum pgd_status pgd__runner_profile_ops(struct pgd__runner *r, bool on, char *err, size_t errlen)
{
    if (!on || r->prof) {
        if (!on) {
            pgd__op_profile_destroy(r->prof);
            r->prof = NULL;
        }
        return PGD_OK;
    }
    return pgd__op_profile_create(r->params.device, r->cuda, &r->prof, err, errlen);
}

#ifdef PGD_HAVE_CUDA
/* One step of max_num_batched_tokens (one sequence, logits for max_num_seqs rows) over a
 * temporary cache, to learn the activation high water (r->act_bytes); then the arena is one
 * chunk of that plus 64 MiB, reserved before the KV pool takes the card. Decode steps may
 * split attention over the context (up to 64 MiB more scratch), and the piecewise layout
 * hands its eager calls' memory out from that first chunk's top (pgd__arena_alloc_top): a
 * step of at most 2,048 tokens leaves the top of a chunk sized for the largest step free. */
static enum pgd_status reserve_activations(struct pgd__runner *r, char *err, size_t errlen)
{
    const struct pgd__runner_params *p = &r->params;
    const struct pgd_model_desc *d = &r->model->desc;
    int T = p->max_num_batched_tokens, bs = p->block_size, nb = (T + bs - 1) / bs;
    enum pgd_status st = kv_init(r, nb, bs, err, errlen);
    int32_t *tokens = malloc((size_t)T * sizeof *tokens), *table = malloc((size_t)nb * sizeof *table);
    if (!st && (!tokens || !table))
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of host memory");
    if (!st) {
        /* Any valid ids do (a prime stride keeps them varied); the activations' sizes
         * depend only on the counts. */
        for (int i = 0; i < T; i++)
            tokens[i] = (int32_t)((i * 7919u) % (unsigned)d->vocab_size);
        for (int b = 0; b < nb; b++)
            table[b] = b;
        struct pgd__step_seq s = { .tokens = tokens, .n_new = T, .n_computed = 0,
                                   .block_table = table, .n_blocks = nb,
                                   .n_logits = T < p->max_num_seqs ? T : p->max_num_seqs };
        const float *logits;
        char e2[512];
        st = pgd__runner_step(r, &s, 1, &logits, e2, sizeof e2);
        if (st)
            pgd_errf(err, errlen, st, "profiling step of %d tokens: %s", T, e2);
    }
    free(tokens);
    free(table);
    pgd__kv_cache_fini(&r->kv);
    if (st)
        return st;
    r->act_bytes = r->arena.high_water;
    if (pgd__arena_reserve(&r->arena, r->act_bytes + ((size_t)64 << 20)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of GPU memory for %zu bytes of "
                        "activations", r->act_bytes + ((size_t)64 << 20));
    return PGD_OK;
}

/* The activations reserved (reserve_activations), then the KV pool gets
 * gpu_memory_utilization of the card minus everything in use. */
static enum pgd_status size_gpu_cache(struct pgd__runner *r, size_t block_bytes, int *num_blocks,
                                      char *err, size_t errlen)
{
    const struct pgd__runner_params *p = &r->params;
    const struct pgd_model_desc *d = &r->model->desc;
    const int T = p->max_num_batched_tokens;
    enum pgd_status st = reserve_activations(r, err, errlen);
    if (st)
        return st;
    size_t free_b, total_b;
    if (pgd_cuda_mem_info(&free_b, &total_b, err, errlen))
        return PGD_ERR_DEVICE;
    double used = (double)(total_b - free_b), budget = p->gpu_memory_utilization * total_b - used;
    double gib = 1024.0 * 1024.0 * 1024.0;
    if (p->kv_cache_memory_bytes > 0) {
        /* kv_cache_memory_bytes, as vLLM: exactly that, whatever gpu_memory_utilization says. */
        *num_blocks = (int)(p->kv_cache_memory_bytes / block_bytes);
        if (p->kv_cache_memory_bytes > free_b)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "kv_cache_memory_bytes %zu (%.2f GiB) "
                            "is more than the %.2f GiB free on the GPU after the weights and "
                            "activations", p->kv_cache_memory_bytes,
                            p->kv_cache_memory_bytes / gib, free_b / gib);
        return PGD_OK;
    }
    if (budget < (double)block_bytes)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM,
                        "out of GPU memory: gpu_memory_utilization %.2f of %.1f GiB leaves %.2f "
                        "GiB for the KV cache after the weights (%.2f GiB), activations (%.2f "
                        "GiB at %d batched tokens) and everything else in use (%.2f GiB); one "
                        "block needs %zu bytes", p->gpu_memory_utilization, total_b / gib,
                        budget / gib, r->model->weight_bytes / gib, r->act_bytes / gib, T,
                        used / gib, block_bytes);
    double nbl = budget / (double)block_bytes;
    /* No more blocks than every sequence at full length could hold, four times over (the rest
     * would only keep old prefixes, and a tiny model would get millions of host records). */
    double useful = 4.0 * p->max_num_seqs *
                    ((double)(d->max_position_embeddings + p->block_size - 1) / p->block_size);
    if (nbl > useful) {
        PGD_INFO("kv cache: capping %.0f blocks to %.0f (4 x max_num_seqs %d x %d tokens)", nbl,
                 useful, p->max_num_seqs, d->max_position_embeddings);
        nbl = useful;
    }
    *num_blocks = nbl > 2e9 ? 2000000000 : (int)nbl;
    PGD_INFO("gpu memory: %.1f GiB, weights %.2f GiB, activations %.2f GiB (+64 MiB scratch), "
             "KV cache %.2f GiB at gpu_memory_utilization %.2f", total_b / gib,
             r->model->weight_bytes / gib, r->act_bytes / gib,
             (double)*num_blocks * block_bytes / gib, p->gpu_memory_utilization);
    return PGD_OK;
}
#endif

/* n with thousands separators, as vLLM's log writes its KV figures ("1,234,567"). */
static const char *grouped(long long n, char *buf, size_t len)
{
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%lld", n < 0 ? -n : n), o = 0;
    if (n < 0 && (size_t)o + 1 < len)
        buf[o++] = '-';
    for (int i = 0; i < nd && (size_t)o + 2 < len; i++) {
        if (i && (nd - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* The KV cache's size as vLLM logs it: the memory, the tokens it holds, and how many
 * sequences of max_model_len tokens fit at once. */
static void log_kv_size(const struct pgd__runner *r, int num_blocks, size_t block_bytes)
{
    const struct pgd__runner_params *p = &r->params;
    int max_len = p->max_model_len > 0 ? p->max_model_len : r->model->desc.max_position_embeddings;
    if (max_len <= 0)
        max_len = 1;
    long long tokens = (long long)num_blocks * p->block_size;
    int blocks_per_seq = (max_len + p->block_size - 1) / p->block_size;
    char a[32], b[32];
    PGD_INFO("kv cache: %d blocks of %d tokens (%zu bytes a block, %s) on %s; available KV "
             "cache memory: %.2f GiB", num_blocks, p->block_size, block_bytes,
             pgd_dtype_name(pgd__runner_kv_dtype(r)), pgd__device_name(p->device),
             (double)block_bytes * num_blocks / (1024.0 * 1024.0 * 1024.0));
    PGD_INFO("%s KV cache size: %s tokens", p->device == PGD_DEVICE_CPU ? "CPU" : "GPU",
             grouped(tokens, a, sizeof a));
    PGD_INFO("Maximum concurrency for %s tokens per request: %.2fx", grouped(max_len, b, sizeof b),
             (double)num_blocks / blocks_per_seq);
}

static enum pgd_status check_params(const struct pgd__runner_params *p, char *err,
                                    size_t errlen)
{
    if (p->block_size <= 0 || p->block_size > 1024 || p->max_num_batched_tokens <= 0 ||
        p->max_num_seqs <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "runner: block_size %d (1..1024), max_num_batched_tokens %d and "
                        "max_num_seqs %d must be positive", p->block_size,
                        p->max_num_batched_tokens, p->max_num_seqs);
    if (!(p->gpu_memory_utilization > 0 && p->gpu_memory_utilization <= 1))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "runner: gpu_memory_utilization %g must be in (0, 1]",
                        p->gpu_memory_utilization);
    if (p->batch_invariant && p->device != PGD_DEVICE_CPU)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "batch_invariant: not supported on "
                        "device %s (its GEMMs and attention split their work by batch size); "
                        "the CPU device runs batch-invariant", pgd__device_name(p->device));
    if (!pgd__device_available(p->device))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "device %s is not available in this "
                        "build or on this machine", pgd__device_name(p->device));
    return PGD_OK;
}

static bool tp_split(const struct pgd__runner *r)
{
    return r->params.comm && pgd__comm_size(r->params.comm) > 1;
}

/* The largest step the piecewise graphs take (piecewise.h): with PGD_CUDA_PIECEWISE=1 on
 * one GPU, not eager-only, max_num_batched_tokens up to 2,048 (beyond that a step's
 * kernels take far longer than its launches); 0: off. */
static int piecewise_max_tokens(const struct pgd__runner *r)
{
    const char *e = getenv("PGD_CUDA_PIECEWISE");
    if (!e || strcmp(e, "1") || !on_cuda(r) || r->params.enforce_eager || tp_split(r))
        return 0;
    return r->params.max_num_batched_tokens < 2048 ? r->params.max_num_batched_tokens : 2048;
}

/* How many KV blocks of block_bytes the cache gets: params.num_blocks; else, on a GPU,
 * kv_cache_memory_bytes or what gpu_memory_utilization leaves after a profiling step; else
 * kv_cache_memory_bytes' or kv_cache_bytes' worth. */
static enum pgd_status count_blocks(struct pgd__runner *r, size_t block_bytes, int *num_blocks,
                                    char *err, size_t errlen)
{
    const struct pgd__runner_params *p = &r->params;
    *num_blocks = p->num_blocks;
#ifdef PGD_HAVE_CUDA
    if (*num_blocks <= 0 && on_cuda(r)) {
        enum pgd_status st = size_gpu_cache(r, block_bytes, num_blocks, err, errlen);
        if (st)
            return st;
    } else if (piecewise_max_tokens(r) > 0) {
        /* A pool of a given size is not sized from a profiling step; the piecewise layout
         * still needs the arena's first chunk to hold a step and its calls' memory (else
         * its first chunk is whatever the first allocation made, and no size is captured). */
        enum pgd_status st = reserve_activations(r, err, errlen);
        if (st)
            return st;
    }
#endif
    /* kv_cache_memory_bytes (any device) wins over kv_cache_bytes (the CPU's default). */
    size_t kv_bytes = p->kv_cache_memory_bytes > 0 ? p->kv_cache_memory_bytes : p->kv_cache_bytes;
    if (*num_blocks <= 0 && kv_bytes / block_bytes > INT_MAX)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "kv cache: %zu bytes are more than "
                        "%d blocks of %zu bytes", kv_bytes, INT_MAX, block_bytes);
    if (*num_blocks <= 0)
        *num_blocks = (int)(kv_bytes / block_bytes);
    if (*num_blocks <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "kv cache: %zu bytes hold no block of %zu bytes", kv_bytes, block_bytes);
    return PGD_OK;
}

/* The buffers that outlive steps: the KV cache of num_blocks blocks, the step metadata for
 * the largest step (block tables grow with the step), and the CUDA graphs when they are on. */
static enum pgd_status alloc_buffers(struct pgd__runner *r, int num_blocks, char *err,
                                     size_t errlen)
{
    const struct pgd__runner_params *p = &r->params;
    const struct pgd_model_desc *d = &r->model->desc;
    enum pgd_status st = kv_init(r, num_blocks, p->block_size, err, errlen);
    if (st)
        return st;
    st = meta_reserve(r, pgd__meta_layout(p->max_num_batched_tokens, p->max_num_seqs, 1).total,
                      err, errlen);
    if (st)
        return st;
    struct pgd__graph_params gp = {
        .device = p->device,
        .enforce_eager = p->enforce_eager,
        .max_num_seqs = p->max_num_seqs,
        .max_num_batched_tokens = p->max_num_batched_tokens,
        .block_size = r->kv.block_size,
        .max_position_embeddings = d->max_position_embeddings,
        .vocab_size = d->vocab_size,
        .max_seq_len_to_capture = p->max_seq_len_to_capture,
        .cuda_graph_sizes = p->cuda_graph_sizes,
        .n_cuda_graph_sizes = p->n_cuda_graph_sizes,
    };
    st = pgd__graphs_create(&gp, &r->graphs, err, errlen);
    if (st || piecewise_max_tokens(r) <= 0)
        return st;
    return pgd__pw_create(piecewise_max_tokens(r), &r->pw, err, errlen);
}

/* Tensor parallelism: every rank takes the smallest pool any rank can hold, so that rank
 * 0's block tables are valid everywhere. */
static enum pgd_status tp_agree_blocks(struct pgd__runner *r, int *num_blocks, char *err,
                                       size_t errlen)
{
    int n = pgd__comm_size(r->params.comm);
    int32_t mine = *num_blocks, *all = malloc((size_t)n * sizeof *all);
    if (!all)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    enum pgd_status st = pgd__comm_host_all_gather(r->params.comm, PGD_DTYPE_I32, &mine, all, 1,
                                                   err, errlen);
    for (int i = 0; !st && i < n; i++)
        if (all[i] < *num_blocks)
            *num_blocks = all[i];
    free(all);
    return st;
}

/* Whether the norms leave x's FP8 quantization for the FP8 linears after them: on CUDA,
 * when the model has FP8 layers, unless PGD_CUDA_FP8_NORM_X=0 (the linears quantize x
 * themselves, as before it, for measuring). */
static bool fp8_norms_wanted(const struct pgd__runner *r)
{
    const char *env = getenv("PGD_CUDA_FP8_NORM_X");
    if (!on_cuda(r) || (env && !strcmp(env, "0")))
        return false;
    for (const struct pgd_qweight *w = r->model->qweights; w; w = w->next)
        if (w->kind == PGD__QW_FP8)
            return true;
    return false;
}

/* The table of the act-order layers that read each norm's and attention's output (struct
 * pgd_fwd's gather_layers): on CUDA, when the model has act-order W4/W8 layers, unless
 * PGD_CUDA_WQ_NORM_GATHER=0 (the linears gather x themselves, for measuring). Room for four
 * producers a layer (two norms and the attention) and the model's last norm. */
static enum pgd_status gather_layers_init(struct pgd__runner *r, char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    const char *env = getenv("PGD_CUDA_WQ_NORM_GATHER");
    if (!on_cuda(r) || (env && !strcmp(env, "0")))
        return PGD_OK;
    bool act_order = false;
    for (const struct pgd_qweight *w = r->model->qweights; w && !act_order; w = w->next)
        act_order = w->kind == PGD__QW_WQ && pgd_cuda_wq_input_perm(w->cuda_wq);
    if (!act_order)
        return PGD_OK;
    r->gather_layers_cap = 4 * r->model->desc.n_layers + 16;
    r->gather_layers = calloc((size_t)r->gather_layers_cap, sizeof *r->gather_layers);
    if (!r->gather_layers)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of host memory for the act-order "
                        "gathers' table (%d entries)", r->gather_layers_cap);
#else
    (void)r;
    (void)err;
    (void)errlen;
#endif
    return PGD_OK;
}

/* check the params, load the model, size the KV cache, allocate the buffers. */
enum pgd_status pgd__runner_create(const struct pgd__runner_params *p, struct pgd__runner **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    enum pgd_status st = check_params(p, err, errlen);
    if (st)
        return st;
    struct pgd__runner *r = calloc(1, sizeof *r);
    if (!r)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    r->params = *p;
    pgd__arena_init(&r->arena, p->device);
    pgd__runner_async_env(r);
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r) && pgd_cuda_ctx_create(&r->cuda, err, errlen)) {
        free(r);
        return PGD_ERR_DEVICE;
    }
#endif
    struct pgd__model_opts mo = { .dtype = p->dtype, .random_weights = p->random_weights,
                                  .seed = p->seed, .quantization = p->quantization };
    if (tp_split(r)) {
        mo.tp_rank = pgd__comm_rank(p->comm);
        mo.tp_size = pgd__comm_size(p->comm);
    }
    st = pgd__model_load_opts(p->model_dir, p->registry, p->device, &mo, &r->model, err, errlen);
    if (st)
        goto fail;
    if ((st = pgd__runner_sampling_init(r, err, errlen)) || (st = kv_scales_load(r, err, errlen)))
        goto fail;
    r->fp8_norms = fp8_norms_wanted(r);
    if ((st = gather_layers_init(r, err, errlen)))
        goto fail;
    if (p->batch_invariant)
        PGD_INFO("batch invariant: on (the linears a row at a time)");
    const struct pgd_model_desc *d = &r->model->desc;
    /* The KV dtype's element size: an FP8 cache holds twice the tokens of a 16-bit one. */
    size_t block_bytes = pgd__kv_cache_block_bytes(d->n_layers, p->block_size, d->n_kv_heads,
                                                   d->head_dim, pgd__runner_kv_dtype(r));
    int num_blocks;
    if ((st = count_blocks(r, block_bytes + p->extra_block_bytes, &num_blocks, err, errlen)))
        goto fail;
    if (tp_split(r) && (st = tp_agree_blocks(r, &num_blocks, err, errlen)))
        goto fail;
    if ((st = alloc_buffers(r, num_blocks, err, errlen)))
        goto fail;
    log_kv_size(r, num_blocks, block_bytes);
    r->tp_serving = tp_split(r);
    *out = r;
    return PGD_OK;
fail:
    pgd__runner_destroy(r);
    return st;
}

enum pgd_status pgd__runner_set_num_blocks(struct pgd__runner *r, int num_blocks, char *err,
                                           size_t errlen)
{
    const struct pgd_model_desc *d = &r->model->desc;
    enum pgd_status st = device_sync(r, err, errlen);
    if (st)
        return st;
    pgd__kv_cache_fini(&r->kv);
    st = kv_init(r, num_blocks, r->params.block_size, err, errlen);
    if (st == PGD_OK)
        log_kv_size(r, num_blocks, pgd__kv_cache_block_bytes(d->n_layers, r->params.block_size,
                                                             d->n_kv_heads, d->head_dim,
                                                             pgd__runner_kv_dtype(r)));
    return st;
}

/* The runner's host work over its life, in the log: what a served run's steps paid on the
 * host (graph and eager steps, cuBLASLt's plans and calls outside graphs), for a run that no
 * benchmark wraps. */
static void log_host_work(const struct pgd__runner *r)
{
    const struct pgd__runner_host_split *h = &r->host_split;
    if (h->graph_steps + h->eager_steps == 0)
        return;
    char steps[256];
    pgd__host_split_line(NULL, h, steps, sizeof steps);
    PGD_INFO("runner: %s", steps);
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r)) {
        struct pgd_cuda_gemm_host_stats s;
        char line[512];
        pgd_cuda_gemm_host_stats(r->cuda, &s);
        pgd__gemm_host_line(NULL, &s, line, sizeof line);
        PGD_INFO("runner: cuBLASLt host work: %s", line);
        double fold_ms = 0;
        const int folds = pgd_cuda_wq_fold_tune_stats(r->cuda, &fold_ms);
        if (folds)
            PGD_INFO("runner: W4A16 folded GEMM: %d plans (a grid and 64-row bucket each) "
                     "chosen by timing, %.0f ms", folds, fold_ms);
        if (r->gather_layers)
            PGD_INFO("runner: act-order gathers left by the norms and attention and taken: "
                     "%ld (eager steps and graph captures)", pgd_cuda_wq_norm_gathers(r->cuda));
        if (r->pw) {
            long replays;
            int captured, eager;
            pgd__pw_stats(r->pw, &replays, &captured, &eager);
            PGD_INFO("runner: piecewise CUDA graphs: %ld of the eager steps replayed, %d token "
                     "sizes captured, %d left eager; left to the plain pass: %ld past the "
                     "largest size, %ld short of room at the arena's top, %ld calls that "
                     "found none", replays, captured, eager, r->pw_big, r->pw_room,
                     r->pw_nomem);
        }
    }
#endif
}

void pgd__runner_destroy(struct pgd__runner *r)
{
    if (!r)
        return;
    char err[256];
    log_host_work(r);
    (void)device_sync(r, err, sizeof err);
    pgd__runner_swap_fini(r);
    tp_stop_workers(r);
    pgd__graphs_destroy(r->graphs);
    pgd__pw_destroy(r->pw);
    pgd__op_profile_destroy(r->prof);
    pgd__runner_sampling_fini(r);
    pgd__kv_cache_fini(&r->kv);
    free(r->kv_k_scale);
    free(r->kv_v_scale);
    free(r->gather_layers);
    pgd__arena_fini(&r->arena);
    pgd__model_destroy(r->model);
    meta_free(r);
    host_free(r, r->logits);
    host_free(r, r->greedy[0]);
    host_free(r, r->greedy[1]);
    pgd__runner_async_free(r);
    free(r->hidden);
    host_free(r, r->hidden_raw);
#ifdef PGD_HAVE_CUDA
    pgd_cuda_ctx_destroy(r->cuda);
#endif
    free(r);
}

/* ---- the step ------------------------------------------------------------------------ */

/* Grows the host logits rows to n. */
static enum pgd_status logits_reserve(struct pgd__runner *r, int n, char *err, size_t errlen)
{
    if (n <= r->logits_cap)
        return PGD_OK;
    host_free(r, r->logits);
    r->logits = host_alloc(r, (size_t)n * r->model->desc.vocab_size * sizeof(float));
    r->logits_cap = r->logits ? n : 0;
    if (!r->logits)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: out of memory for %d logits rows", n);
    return PGD_OK;
}

/* Grows the host hidden-state rows of pooling steps to n (and on a GPU the pinned buffer
 * their act-dtype copy lands in). */
static enum pgd_status hidden_reserve(struct pgd__runner *r, int n, char *err, size_t errlen)
{
    if (n <= r->hidden_cap)
        return PGD_OK;
    size_t d = (size_t)r->model->desc.hidden_size;
    free(r->hidden);
    r->hidden = malloc((size_t)n * d * sizeof(float));
    r->hidden_cap = r->hidden ? n : 0;
    if (!r->hidden)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: out of memory for %d hidden rows", n);
    if (on_cuda(r)) {
        host_free(r, r->hidden_raw);
        r->hidden_raw_bytes = (size_t)n * d * pgd_dtype_size(r->model->dtype);
        r->hidden_raw = host_alloc(r, r->hidden_raw_bytes);
        if (!r->hidden_raw) {
            r->hidden_cap = 0;
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: no pinned memory for %d hidden "
                            "rows", n);
        }
    }
    return PGD_OK;
}

/* Checks a step against the runner's limits and the pool, and grows the host logits rows
 * (or, for a pooling step (hidden), the hidden rows) for it; *n_tokens and *n_logits get
 * its token and logits-row counts, *max_blocks its widest block table. */
static enum pgd_status check_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                  int n_seqs, bool hidden, int *n_tokens, int *n_logits,
                                  int *max_blocks, char *err, size_t errlen)
{
    int bs = r->kv.block_size;
    if (n_seqs <= 0 || n_seqs > r->params.max_num_seqs)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "step: %d sequences (must be 1..%d)", n_seqs, r->params.max_num_seqs);
    long total = 0, logits = 0;
    int mb = 1;
    for (int s = 0; s < n_seqs; s++) {
        const struct pgd__step_seq *q = &seqs[s];
        if (q->n_new <= 0 || q->n_computed < 0 || q->n_logits < 0 || q->n_logits > q->n_new)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "step: sequence %d has n_new %d, n_computed %d, n_logits %d", s,
                            q->n_new, q->n_computed, q->n_logits);
        if (q->pending && !r->submitting)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step: sequence %d has a pending "
                            "token (async scheduling), which only a submitted step takes", s);
        long len = (long)q->n_computed + q->n_new;
        if ((long)q->n_blocks * bs < len)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "step: sequence %d has %ld tokens but %d blocks of %d", s, len,
                            q->n_blocks, bs);
        /* Entries before the block of the first new position may be -1: blocks a sliding
         * window left behind, which attention never reads. */
        int first_written = q->n_computed / bs;
        for (int b = 0; b < q->n_blocks; b++)
            if ((q->block_table[b] < 0 && b >= first_written) ||
                q->block_table[b] >= r->kv.num_blocks)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                                "step: sequence %d block %d is %d, outside the pool of %d", s,
                                b, q->block_table[b], r->kv.num_blocks);
        total += q->n_new;
        logits += q->n_logits;
        if (q->n_blocks > mb)
            mb = q->n_blocks;
    }
    if (total > r->params.max_num_batched_tokens)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "step: %ld tokens exceed max_num_batched_tokens %d", total,
                        r->params.max_num_batched_tokens);
    enum pgd_status st = hidden ? hidden_reserve(r, (int)logits, err, errlen)
                                : logits_reserve(r, (int)logits, err, errlen);
    if (st)
        return st;
    *n_tokens = (int)total;
    *n_logits = (int)logits;
    *max_blocks = mb;
    return PGD_OK;
}

/* The forward context's fields that come from the runner (the batch fields are the
 * caller's to fill). */
static struct pgd_fwd fwd_base(struct pgd__runner *r)
{
    return (struct pgd_fwd){
        .device = r->params.device, .act_dtype = r->model->dtype, .cuda = r->cuda,
        .kv = &r->kv, .arena = &r->arena, .comm = r->params.comm,
        .vocab_size = r->model->desc.vocab_size, .hidden_size = r->model->desc.hidden_size,
        .fp8_norms = r->fp8_norms, .batch_invariant = r->params.batch_invariant,
        .gather_layers = r->gather_layers, .gather_layers_cap = r->gather_layers_cap,
    };
}

/* The float32 logits of a step's rows on the device. */
static size_t logits_bytes(const struct pgd_fwd *f)
{
    return (size_t)f->n_logits * f->vocab_size * sizeof(float);
}

/* Runs the architecture's forward pass over the batch f describes (the arena reset first)
 * into a fresh logits buffer: [f->n_logits, vocab] float32, in the arena on a GPU, r->logits
 * on the CPU; *logits gets it. A pooling step (f->want_hidden) writes the rows' hidden
 * states instead: into the arena on a GPU (f->hidden; finish_hidden brings them back),
 * r->hidden on the CPU. It never waits for the GPU (it may run inside a graph capture): on
 * a failure the caller drains what was queued (drain). */
static enum pgd_status forward(struct pgd__runner *r, struct pgd_fwd *f, float **logits,
                               char *err, size_t errlen)
{
    pgd__arena_reset(&r->arena);
    *logits = r->logits;
    if (f->want_hidden) {
        f->hidden = r->hidden;
        size_t bytes = (size_t)f->n_logits * (size_t)f->hidden_size *
                       pgd_dtype_size(f->act_dtype);
        if (on_cuda(r) && !(f->hidden = pgd__arena_alloc(&r->arena, bytes)))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: no GPU memory for %d hidden "
                            "rows", f->n_logits);
    } else if (on_cuda(r)) {
        *logits = pgd__fwd_call_alloc(f, logits_bytes(f));
        if (!*logits)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: no GPU memory for %d logits "
                            "rows", f->n_logits);
    }
    f->logits = *logits;
    f->status = PGD_OK;
    f->err[0] = 0;
    /* Profiled steps are eager (run_step): their ops are timed, and the step is waited for.
     * The profile is the runner's (pgd__runner_profile_ops) or the step hook's. */
    struct pgd__op_profile *prof = r->prof ? r->prof : r->step_prof;
    enum pgd_status pst = PGD_OK;
    if (prof && (pst = pgd__op_profile_step_begin(prof, err, errlen)))
        return pst;
    f->prof = prof;
    double t0 = pgd__now_s();
    r->model->plugin->arch->forward(r->model->impl, f);
    pgd__fwd_settle(f);
    if (!on_cuda(r))
        r->device_s += pgd__now_s() - t0;     /* the CPU computed it: the device's work */
    if (prof) {
        pgd__op_profile_step_queued(prof);
        if (f->status == PGD_OK)
            pst = pgd__op_profile_step_end(prof, err, errlen);
    }
    if (f->status != PGD_OK)
        return pgd_errf(err, errlen, f->status, "forward (%s plugin): %s",
                        r->model->plugin->name, f->err);
    return pst;
}

/* After a failed step: waits for what was queued before returning the step's error (its
 * own error, if any, is dropped: the step's is the one to report). */
static void drain(struct pgd__runner *r)
{
    char e2[128];
    (void)device_sync(r, e2, sizeof e2);
}

enum pgd_status pgd__runner_greedy_reserve(struct pgd__runner *r, int n, char *err,
                                           size_t errlen)
{
    const int t = r->turn;
    if (n <= r->greedy_cap[t])
        return PGD_OK;
    /* The old pinned buffer may still be the target of a queued copy. */
    enum pgd_status st = device_sync(r, err, errlen);
    if (st)
        return st;
    host_free(r, r->greedy[t]);
    r->greedy[t] = host_alloc(r, (size_t)n * sizeof(int32_t));
    r->greedy_cap[t] = r->greedy[t] ? n : 0;
    if (!r->greedy[t])
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: out of memory for %d ids", n);
    return PGD_OK;
}

/* The argmax ids of the rows into greedy, or (greedy NULL) the rows into r->logits. On a
 * GPU the argmax runs there into ids_dev (the arena when NULL) and only the ids come back. */
static enum pgd_status finish_rows(struct pgd__runner *r, const float *logits, int n_logits,
                                   int32_t *greedy, int32_t *ids_dev, char *err, size_t errlen)
{
    enum pgd_status st;
    int vocab = r->model->desc.vocab_size;
    if (greedy && (st = pgd__runner_greedy_reserve(r, n_logits, err, errlen)))
        return st;
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r)) {
        int rc;
        if (greedy) {
            int32_t *ids = ids_dev ? ids_dev
                                   : pgd__arena_alloc(&r->arena, (size_t)n_logits * sizeof(int32_t));
            rc = !ids ? pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: no GPU memory for ids") != 0
                      : pgd_cuda_argmax(r->cuda, logits, n_logits, vocab, ids, err, errlen) ||
                            pgd_cuda_copy_d2h_async(r->cuda, r->greedy[r->turn], ids,
                                                    (size_t)n_logits * sizeof(int32_t), err,
                                                    errlen);
        } else {
            rc = pgd_cuda_copy_d2h_async(r->cuda, r->logits, logits,
                                         (size_t)n_logits * vocab * sizeof(float), err, errlen);
        }
        if (rc || device_sync(r, err, errlen))
            return PGD_ERR_DEVICE;
        if (greedy)
            memcpy(greedy, r->greedy[r->turn], (size_t)n_logits * sizeof(int32_t));
        return PGD_OK;
    }
#else
    (void)ids_dev;
#endif
    if (greedy)
        for (int i = 0; i < n_logits; i++) {
            const float *row = r->logits + (size_t)i * vocab;
            int best = 0;
            for (int v = 1; v < vocab; v++)
                if (row[v] > row[best])
                    best = v;
            greedy[i] = best;
        }
    return PGD_OK;
}

/* After a forward pass that left n_logits float32 rows at logits (device memory on a GPU):
 * what `want` asks for (argmax ids through finish_rows; sampled rows through
 * runner_sample.c, or the argmax when every row is a plain greedy sample; else the rows
 * copied to r->logits); waits for the GPU. ids_dev: see finish_rows. */
static enum pgd_status finish(struct pgd__runner *r, const float *logits, int n_logits,
                              const struct step_want *want, int32_t *ids_dev, char *err,
                              size_t errlen)
{
    if (!want->rows)
        return finish_rows(r, logits, n_logits, want->greedy, ids_dev, err, errlen);
    bool greedy = true;
    for (int i = 0; greedy && i < n_logits; i++)
        greedy = pgd__sample_row_plain_greedy(&want->rows[i]);
    if (!greedy)
        return pgd__runner_sample(r, logits, n_logits, want->rows, want->res, err, errlen);
    /* Every row the plain argmax: the greedy kernel, ids only (in the result records). */
    int32_t *ids = malloc((size_t)(n_logits > 0 ? n_logits : 1) * sizeof *ids);
    if (!ids)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: out of memory for %d ids", n_logits);
    enum pgd_status st = finish_rows(r, logits, n_logits, ids, ids_dev, err, errlen);
    for (int i = 0; !st && i < n_logits; i++) {
        memset(&want->res[i].chosen, 0, sizeof want->res[i].chosen);
        want->res[i].token = ids[i];
    }
    free(ids);
    return st;
}

/* After a pooling step's forward pass left n act-dtype rows at dev (device memory on a
 * GPU): on a GPU they come back into the pinned r->hidden_raw and are widened into
 * r->hidden; on the CPU the forward pass wrote r->hidden itself. Waits for the GPU. */
static enum pgd_status finish_hidden(struct pgd__runner *r, const void *dev, int n, char *err,
                                     size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r)) {
        size_t count = (size_t)n * (size_t)r->model->desc.hidden_size;
        enum pgd_dtype dt = r->model->dtype;
        if (pgd_cuda_copy_d2h_async(r->cuda, r->hidden_raw, dev, count * pgd_dtype_size(dt),
                                    err, errlen) ||
            device_sync(r, err, errlen))
            return PGD_ERR_DEVICE;
        const uint16_t *h16 = r->hidden_raw;
        for (size_t i = 0; i < count; i++)
            r->hidden[i] = dt == PGD_DTYPE_BF16  ? pgd_bf16_to_f32(h16[i])
                           : dt == PGD_DTYPE_F16 ? pgd_f16_to_f32(h16[i])
                                                 : ((const float *)r->hidden_raw)[i];
        return PGD_OK;
    }
#else
    (void)dev;
    (void)n;
    (void)err;
    (void)errlen;
#endif
    return PGD_OK;
}

/* ---- tensor parallelism: rank 0 broadcasts each step's flat batch ------------------------ */

/* What rank 0 broadcasts before each step's batch (or to end the workers' loop). */
enum { TP_STOP = 0, TP_STEP = 1, TP_GRAPH_STEP = 2 };
struct tp_header {
    int32_t op, n_tokens, n_seqs, max_blocks, max_len, n_logits;
    int32_t want_hidden;               /* a pooling step: no logits (no all-gather) */
    int32_t graph_size, graph_bucket;  /* TP_GRAPH_STEP: the shape (runner_graph.h) */
};

static enum pgd_status tp_send_step(struct pgd__runner *r, struct tp_header *h,
                                    const void *batch, size_t bytes, char *err, size_t errlen);

#ifdef PGD_HAVE_CUDA
/* The forward pass of a graph shape whose padded batch is on its way to the device (f set
 * up over it): captured on the shape's second step, replayed once captured, eager before.
 * Rank 0 and the tensor-parallel workers both come through here, so each rank captures
 * its own graph with its collectives in it (NCCL >= 2.9 records ncclAllReduce and
 * ncclAllGather on the captured stream; the communicator exists since start-up). A rank
 * whose capture failed runs the shape eagerly: its collectives still meet the others'
 * replayed ones in the same order. *logits: where the [batch, vocab] logits are. */
static enum pgd_status graph_forward(struct pgd__runner *r, const struct pgd__graph_plan *plan,
                                     struct pgd_fwd *f, const float **logits, char *err,
                                     size_t errlen)
{
    struct pgd__graphs *g = r->graphs;
    f->step_id = ++r->step_id;
    if (pgd__graphs_should_capture(g, plan)) {
        /* The shape's second step: record its forward pass (nothing runs yet). */
        char why[512] = "";
        float *captured = NULL;
        enum pgd_status cst = pgd__graphs_capture_begin(g, r->cuda, why, sizeof why);
        if (cst == PGD_OK)
            cst = forward(r, f, &captured, why, sizeof why);
        pgd__graphs_capture_end(g, plan, r->cuda, cst, r->arena.fingerprint, captured, why);
    }
    if (pgd__graphs_captured(g, plan)) {
        const double t0 = pgd__now_s();
        enum pgd_status rst = pgd__graphs_replay(g, plan, r->cuda, logits, err, errlen);
        r->host_split.replay_s += pgd__now_s() - t0;
        return rst;
    }
    float *eager = NULL;
    enum pgd_status st = forward(r, f, &eager, err, errlen);
    if (st) {
        drain(r);
        return st;
    }
    pgd__graphs_note_eager(g, plan, r->arena.fingerprint, eager);
    *logits = eager;
    return PGD_OK;
}

/* A decode-only step through the CUDA graphs (runner_graph.h): pick a bucket, fill the
 * padded batch (and send it to the tensor-parallel workers), capture or replay, finish on
 * the real rows. Returns false (nothing done) when the graphs do not cover the step, for
 * the caller to run it eagerly; true with *st the step's status otherwise. */
static bool graph_step(struct pgd__runner *r, const struct pgd__step_seq *seqs, int n_seqs,
                       const struct step_want *want, enum pgd_status *st, char *err,
                       size_t errlen)
{
    struct pgd__graphs *g = r->graphs;
    struct pgd__graph_plan plan;
    if (!g || !pgd__graphs_plan(g, seqs, n_seqs, &plan))
        return false;
    int n_tokens, n_logits, max_blocks;
    if ((*st = check_step(r, seqs, n_seqs, false, &n_tokens, &n_logits, &max_blocks, err,
                          errlen)))
        return true;
    struct pgd_fwd f = fwd_base(r);
    if ((*st = pgd__graphs_host_turn(g, r->turn, err, errlen)) ||
        (*st = pgd__graphs_fill_batch(g, &plan, seqs, n_seqs, r->cuda, &f, err, errlen)) ||
        (*st = pgd__runner_put_pending(r, (int32_t *)f.token_ids, err, errlen)))
        return true;
    if (r->tp_serving) {
        struct tp_header h = { .op = TP_GRAPH_STEP, .graph_size = plan.size_index,
                               .graph_bucket = plan.bucket };
        size_t bytes;
        void *batch = pgd__graphs_batch_host(g, &plan, &bytes);
        if ((*st = tp_send_step(r, &h, batch, bytes, err, errlen))) {
            drain(r);
            return true;
        }
    }
    const float *logits = NULL;
    if ((*st = graph_forward(r, &plan, &f, &logits, err, errlen)))
        return true;
    /* Only the real rows: the padding rows' logits are computed and ignored. */
    *st = r->submitting ? pgd__runner_finish_submit(r, logits, n_seqs, want->rows,
                                                    pgd__graphs_ids_dev(g), err, errlen)
                        : finish(r, logits, n_seqs, want, pgd__graphs_ids_dev(g), err, errlen);
    return true;
}

/* A worker's graph step: the shape rank 0 named, its padded batch received into the graphs'
 * buffer, then the same capture, replay or eager pass as rank 0's (its logits unread). */
static enum pgd_status tp_worker_graph_step(struct pgd__runner *r, const struct tp_header *h,
                                            char *err, size_t errlen)
{
    struct pgd__graph_plan plan;
    if (!pgd__graphs_plan_shape(r->graphs, h->graph_size, h->graph_bucket, &plan))
        return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "tensor parallel rank %d: rank 0 runs "
                        "a CUDA graph shape (%d, %d) this rank does not have (are the ranks' "
                        "settings the same?)", pgd__comm_rank(r->params.comm), h->graph_size,
                        h->graph_bucket);
    size_t bytes;
    void *batch = pgd__graphs_batch_host(r->graphs, &plan, &bytes);
    enum pgd_status st = pgd__comm_broadcast(r->params.comm, batch, bytes, 0, err, errlen);
    struct pgd_fwd f = fwd_base(r);
    if (!st)
        st = pgd__graphs_upload_batch(r->graphs, &plan, r->cuda, &f, err, errlen);
    const float *logits;
    if (!st)
        st = graph_forward(r, &plan, &f, &logits, err, errlen);
    return st ? st : device_sync(r, err, errlen);
}
#endif

#ifdef PGD_HAVE_CUDA
/* Whether the arena's top holds what a piecewise step's eager calls allocate (its logits,
 * their gathered rows, attention's split scratch: at most 64 MiB a call, far less in
 * practice) above `bottom` bytes of the segments' activations. */
static bool piecewise_room(const struct pgd__runner *r, const struct pgd_fwd *f, size_t bottom)
{
    size_t need = logits_bytes(f) + (size_t)f->n_logits * f->hidden_size * sizeof(float) +
                  ((size_t)64 << 20);
    return pgd__arena_top_room(&r->arena, bottom) >= need;
}

/* A step in the piecewise layout (piecewise.h), when its size has one: f laid out (its
 * token ids copied into the fixed buffer, n_tokens padded, the real count in pw_tokens, the
 * calls' memory from the arena's top), then the size's first step warms it (the forward pass
 * run), the second captures it and replays it, later ones replay it. *done false: not taken
 * (no size, one left eager, a capture that failed just now, or too little room in the arena
 * for this step's calls), f as it was: the caller runs the plain forward pass. */
static enum pgd_status piecewise_forward(struct pgd__runner *r, struct pgd_fwd *f, float **logits,
                                         bool *done, char *err, size_t errlen)
{
    *done = false;
    if (f->want_hidden || r->prof || r->step_prof)
        return PGD_OK;
    const int idx = pgd__pw_size_index(r->pw, f->n_tokens);
    if (idx < 0) {
        r->pw_big++;
        return PGD_OK;
    }
    const enum pgd__pw_state state = pgd__pw_state(r->pw, idx);
    const size_t bottom = pgd__pw_bottom(r->pw, idx);
    if (state == PGD__PW_EAGER)
        return PGD_OK;
    if (state != PGD__PW_NONE && !piecewise_room(r, f, bottom)) {
        r->pw_room++;
        return PGD_OK;
    }
    const struct pgd_fwd plain = *f;
    const int n = f->n_tokens;
    int32_t *ids = pgd__pw_ids(r->pw);
    if (pgd_cuda_copy_2d_async(r->cuda, ids, (size_t)n * sizeof *ids, f->token_ids,
                               (size_t)n * sizeof *ids, (size_t)n * sizeof *ids, 1, err, errlen))
        return PGD_ERR_DEVICE;
    f->token_ids = ids;
    f->pw_tokens = n;
    f->n_tokens = pgd__pw_size(r->pw, idx);
    f->scratch_top = true;
    enum pgd_status st = PGD_OK;
    if (state == PGD__PW_CAPTURED) {
        if (!pgd__ops_ids_in_vocab(f))
            return pgd_errf(err, errlen, f->status, "%s", f->err);
        /* The segments' activations where the capture left them, the calls' memory above. */
        pgd__arena_reset(&r->arena);
        *logits = NULL;
        if (pgd__arena_alloc(&r->arena, bottom))
            *logits = pgd__arena_alloc_top(&r->arena, logits_bytes(f));
        f->logits = *logits;
        st = *logits ? pgd__pw_replay(r->pw, idx, f, err, errlen)
                     : pgd_errf(err, errlen, PGD_ERR_NOMEM, "no room for the logits");
    } else if (state == PGD__PW_NONE) {
        struct pgd__pw_hook hook = { .mode = PGD__PW_WARM, .pw = r->pw, .size = idx };
        f->pw = &hook;
        st = forward(r, f, logits, err, errlen);
        f->pw = NULL;
        if (!st)
            pgd__pw_note_warm(r->pw, &hook, r->arena.fingerprint, r->arena.in_use);
    } else {
        /* WARMED: capture, then replay what was captured for this step. */
        struct pgd__pw_hook hook;
        char cerr[256];
        if (pgd__pw_capture_begin(r->pw, idx, r->cuda, &hook, cerr, sizeof cerr)) {
            PGD_WARN("piecewise CUDA graph of %d tokens: %s; the step runs eagerly",
                     f->n_tokens, cerr);
            *f = plain;
            return PGD_OK;
        }
        f->pw = &hook;
        char ferr[512];
        enum pgd_status fst = forward(r, f, logits, ferr, sizeof ferr);
        f->pw = NULL;
        bool captured = false;
        pgd__pw_capture_end(r->pw, &hook, r->cuda, fst == PGD_OK, r->arena.fingerprint,
                            &captured);
        if (!captured) {                 /* nothing of the step ran */
            *f = plain;
            return PGD_OK;
        }
        f->status = PGD_OK;
        f->err[0] = 0;
        st = pgd__pw_replay(r->pw, idx, f, err, errlen);
    }
    if (st == PGD_ERR_NOMEM) {
        /* The calls found no room at the arena's top: the step again, plainly (what ran of
         * it wrote the K/V the plain pass writes again alike). */
        PGD_DEBUG("piecewise step of %d tokens: %s; run eagerly", f->n_tokens, err);
        r->pw_nomem++;
        *f = plain;
        return PGD_OK;
    }
    *done = true;
    return st;
}
#endif

/* The forward pass of a flat batch already laid out in r->meta_host as L (sizes in h): the
 * metadata copied to the device, *f set up over it, the model run. Rank 0's eager steps and
 * the tensor-parallel workers' steps both come through here. On a failure what was queued
 * is drained first. */
static enum pgd_status forward_flat(struct pgd__runner *r, const struct tp_header *h,
                                    const struct pgd__meta_layout *L, const struct pgd__batch *b,
                                    struct pgd_fwd *f, float **logits, char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r) && pgd_cuda_copy_h2d_async(r->cuda, r->meta_dev, r->meta_host, L->total, err,
                                              errlen))
        return PGD_ERR_DEVICE;
    enum pgd_status pst = pgd__runner_put_pending(r, (int32_t *)(r->meta_dev + L->token_ids),
                                                  err, errlen);
    if (pst)
        return pst;
#endif
    *f = fwd_base(r);
    f->n_tokens = h->n_tokens;
    f->n_seqs = h->n_seqs;
    f->max_blocks = h->max_blocks;
    f->max_seq_len = h->max_len;
    f->n_logits = h->n_logits;
    f->want_hidden = h->want_hidden != 0;
    f->step_id = ++r->step_id;
    /* On the CPU meta_dev is meta_host: device and host pointers coincide. */
    pgd__batch_point_fwd(f, r->meta_dev, L, b);
    enum pgd_status st = PGD_OK;
    bool done = false;
#ifdef PGD_HAVE_CUDA
    if (r->pw && !r->tp_serving)
        st = piecewise_forward(r, f, logits, &done, err, errlen);
#endif
    if (!st && !done)
        st = forward(r, f, logits, err, errlen);
    if (st)
        drain(r);
    return st;
}

/* Rank 0: the header, then the step's batch (the metadata buffer of an eager step, the
 * graphs' padded batch of a graph step: the whole flat batch, the workers need nothing
 * else, not even the sequences). */
static enum pgd_status tp_send_step(struct pgd__runner *r, struct tp_header *h,
                                    const void *batch, size_t bytes, char *err, size_t errlen)
{
    if (pgd__comm_rank(r->params.comm) != 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step: tensor parallel rank %d is a "
                        "worker (pgd__runner_serve_worker); only rank 0 is stepped",
                        pgd__comm_rank(r->params.comm));
    enum pgd_status st = pgd__comm_bind_thread(r->params.comm, err, errlen);
    if (!st)
        st = pgd__comm_broadcast(r->params.comm, h, sizeof *h, 0, err, errlen);
    if (!st)
        st = pgd__comm_broadcast(r->params.comm, (void *)batch, bytes, 0, err, errlen);
    return st;
}

/* Rank 0's runner going away ends the workers' loops. */
static void tp_stop_workers(struct pgd__runner *r)
{
    if (!r->tp_serving || pgd__comm_rank(r->params.comm) != 0)
        return;
    struct tp_header h = { .op = TP_STOP };
    char err[256];
    if (pgd__comm_broadcast(r->params.comm, &h, sizeof h, 0, err, sizeof err))
        PGD_WARN("tensor parallel: could not stop the workers: %s", err);
}

/* A worker's step: receive the batch into the metadata buffer, copy it to the device, run
 * the forward pass (its collectives meet rank 0's); the logits stay unread. */
static enum pgd_status tp_worker_step(struct pgd__runner *r, const struct tp_header *h,
                                      char *err, size_t errlen)
{
    struct pgd__meta_layout L = pgd__meta_layout(h->n_tokens, h->n_seqs, h->max_blocks);
    enum pgd_status st = meta_reserve(r, L.total, err, errlen);
    if (!st)
        st = h->want_hidden ? hidden_reserve(r, h->n_logits, err, errlen)
                            : logits_reserve(r, h->n_logits, err, errlen);
    if (!st)
        st = pgd__comm_broadcast(r->params.comm, r->meta_host, L.total, 0, err, errlen);
    if (st)
        return st;
    struct pgd__batch b = pgd__batch_at(r->meta_host, &L);
    struct pgd_fwd f;
    float *logits;
    if ((st = forward_flat(r, h, &L, &b, &f, &logits, err, errlen)))
        return st;
    return device_sync(r, err, errlen);
}

enum pgd_status pgd__runner_serve_worker(struct pgd__runner *r, char *err, size_t errlen)
{
    if (!r->tp_serving || pgd__comm_rank(r->params.comm) == 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "runner: only a tensor-parallel rank "
                        "other than 0 serves as a worker");
    enum pgd_status st = pgd__comm_bind_thread(r->params.comm, err, errlen);
    long steps = 0;
    while (!st) {
        struct tp_header h;
        if ((st = pgd__comm_broadcast(r->params.comm, &h, sizeof h, 0, err, errlen)))
            break;
        if (h.op == TP_STOP)
            break;
#ifdef PGD_HAVE_CUDA
        if (h.op == TP_GRAPH_STEP) {
            st = tp_worker_graph_step(r, &h, err, errlen);
            steps++;
            continue;
        }
#endif
        st = tp_worker_step(r, &h, err, errlen);
        steps++;
    }
    PGD_DEBUG("tensor parallel rank %d: %ld steps served", pgd__comm_rank(r->params.comm), steps);
    return st;
}

/* A step run eagerly: check, fill the batch tightly for its sizes, copy it to the device,
 * forward, finish. */
static enum pgd_status eager_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                  int n_seqs, const struct step_want *want, char *err,
                                  size_t errlen)
{
    int n_tokens = 0, n_logits = 0, max_blocks = 0;
    enum pgd_status st = check_step(r, seqs, n_seqs, want->hidden, &n_tokens, &n_logits,
                                    &max_blocks, err, errlen);
    if (st)
        return st;
    struct pgd__meta_layout L = pgd__meta_layout(n_tokens, n_seqs, max_blocks);
    if ((st = meta_reserve(r, L.total, err, errlen)))
        return st;
    struct pgd__batch b = pgd__batch_at(r->meta_host, &L);
    int max_len = pgd__batch_fill(&b, seqs, n_seqs, r->kv.block_size, max_blocks);
    struct tp_header h = { .op = TP_STEP, .n_tokens = n_tokens, .n_seqs = n_seqs,
                           .max_blocks = max_blocks, .max_len = max_len, .n_logits = n_logits,
                           .want_hidden = want->hidden };
    if (r->tp_serving && (st = tp_send_step(r, &h, r->meta_host, L.total, err, errlen)))
        return st;
    struct pgd_fwd f;
    float *logits;
    if ((st = forward_flat(r, &h, &L, &b, &f, &logits, err, errlen)))
        return st;
    if (want->hidden)
        return finish_hidden(r, f.hidden, n_logits, err, errlen);
#ifdef PGD_HAVE_CUDA
    if (r->submitting)
        return pgd__runner_finish_submit(r, logits, n_logits, want->rows, NULL, err, errlen);
#endif
    return finish(r, logits, n_logits, want, NULL, err, errlen);
}

/* What the step hook is told of a step (runner.h). */
static struct pgd__runner_step_info step_info(const struct pgd__step_seq *seqs, int n_seqs)
{
    struct pgd__runner_step_info s = { .n_seqs = n_seqs, .decode_only = n_seqs > 0 };
    for (int i = 0; i < n_seqs; i++) {
        s.n_tokens += seqs[i].n_new;
        s.decode_only = s.decode_only && seqs[i].n_new == 1;
    }
    return s;
}

void pgd__runner_set_step_hook(struct pgd__runner *r, const struct pgd__runner_step_hook *h)
{
    r->hook = h ? *h : (struct pgd__runner_step_hook){ 0 };
}

/* Runs a step (through a CUDA graph when one covers it, unless the step hook profiles it)
 * and hands back what `want` asks for (see finish); the step hook around it. */
static enum pgd_status run_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                int n_seqs, const struct step_want *want, char *err,
                                size_t errlen)
{
    if (!r->submitting && pgd__runner_uncollected(r) > 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step: %d submitted steps are not "
                        "collected yet (pgd__runner_step_collect first)",
                        pgd__runner_uncollected(r));
    const double t0 = pgd__now_s(), d0 = r->device_s;
    struct pgd__runner_step_info info = { 0 };
    if (r->hook.profile || r->hook.done)
        info = step_info(seqs, n_seqs);
    r->step_prof = r->hook.profile && !r->prof ? r->hook.profile(r->hook.arg, &info) : NULL;
    enum pgd_status st = PGD_OK;
    bool graph = false;
#ifdef PGD_HAVE_CUDA
    /* Graphs capture logits steps only: a pooling step always runs eagerly. */
    if (!want->hidden && !r->prof && !r->step_prof &&
        graph_step(r, seqs, n_seqs, want, &st, err, errlen)) {
        graph = true;
        r->host_split.graph_steps++;
        r->host_split.graph_host_s += pgd__now_s() - t0 - (r->device_s - d0);
    }
#endif
    if (!graph) {
        st = eager_step(r, seqs, n_seqs, want, err, errlen);
        r->host_split.eager_steps++;
        r->host_split.eager_host_s += pgd__now_s() - t0 - (r->device_s - d0);
    }
    r->step_prof = NULL;
    if (r->hook.done)
        r->hook.done(r->hook.arg, &info, pgd__now_s() - t0, r->device_s - d0, graph);
    return st;
}

/* *logits: r->logits, the runner's (valid until the next step). */
enum pgd_status pgd__runner_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                 int n_seqs, const float **logits, char *err, size_t errlen)
{
    struct step_want want = { 0 };
    enum pgd_status st = run_step(r, seqs, n_seqs, &want, err, errlen);
    if (!st)
        *logits = r->logits;
    return st;
}

enum pgd_status pgd__runner_step_greedy(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, int32_t *tokens, char *err, size_t errlen)
{
    struct step_want want = { .greedy = tokens };
    return run_step(r, seqs, n_seqs, &want, err, errlen);
}

enum pgd_status pgd__runner_step_sample(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const struct pgd__sample_row *rows,
                                        struct pgd__sample_result *res, char *err, size_t errlen)
{
    struct step_want want = { .rows = rows, .res = res };
    return run_step(r, seqs, n_seqs, &want, err, errlen);
}

/* *hidden: r->hidden, the runner's (valid until the next step). */
enum pgd_status pgd__runner_step_hidden(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const float **hidden, char *err,
                                        size_t errlen)
{
    struct step_want want = { .hidden = true };
    enum pgd_status st = run_step(r, seqs, n_seqs, &want, err, errlen);
    if (!st)
        *hidden = r->hidden;
    return st;
}

/* ---- the graph warm-up ------------------------------------------------------------------ */

#ifdef PGD_HAVE_CUDA
/* The cuBLASLt tunings (kernels/cuda/gemm_tune.cu) of the prefill and mixed-step sizes,
 * before serving rather than in the first requests' steps: one eager step of T tokens for
 * each power of two T from 16 up to max_num_batched_tokens, in as few sequences as the
 * model's positions allow (a step of 16,384 tokens of a model of 8,192 positions: two; its
 * n bucket is then tuned here too, not in the first full mixed step), each over a block
 * table of block 0 only (whose slots nothing live holds yet).
 * Each makes the first GEMM plans of its n bucket, which time their candidates; the decode
 * sizes are tuned by the graphs' eager steps that follow. Then, for steps up to
 * WARM_BAND_MAX_BUCKET tokens, a step at the top of each of the bucket's other bands
 * (pgd_cuda_gemm_band_tops): an n other than the tuned one takes its band's heuristic
 * pick, and the query and the first call of the kernel it picks (~6 ms of host time each
 * on an H100) belong here, not in a served step of a few milliseconds. Past that bucket a
 * step takes 0.1 s or more, a first call's few ms are lost in it, and its bands' steps
 * would cost most of the warm-up (all bands to 16,384 tokens: 77 steps, 4.6 s of an
 * H100's start-up). The band steps' sequences are of at most WARM_BAND_SEQ tokens: only
 * their total, the GEMMs' n, matters, and short ones keep attention cheap. Logs what it
 * took; a step refused
 * for its shape is a warning (those sizes get tuned on first use), a device or memory error
 * the caller's. */
#define WARM_BAND_SEQ 512
#define WARM_BAND_MAX_BUCKET 2048

/* Fills seqs with T prompt tokens in sequences of at most per tokens (token 0 over block
 * table, whose blocks are all block 0): their count. */
static int warm_seqs(struct pgd__step_seq *seqs, int T, int per, int32_t *tokens, int32_t *table,
                     int bs)
{
    int ns = 0;
    for (int left = T; left > 0; left -= per) {
        const int t = left < per ? left : per;
        seqs[ns++] = (struct pgd__step_seq){ .tokens = tokens, .n_new = t, .block_table = table,
                                             .n_blocks = (t + bs - 1) / bs, .n_logits = 1 };
    }
    return ns;
}

/* The host side of warm-up steps: seq_t token ids (0), a block table of block 0 for them,
 * max_seqs sequences and their argmax ids. */
struct warm_bufs {
    int32_t *tokens, *table, *ids;
    struct pgd__step_seq *seqs;
};

static void warm_bufs_free(struct warm_bufs *w)
{
    free(w->tokens);
    free(w->table);
    free(w->ids);
    free(w->seqs);
}

static bool warm_bufs_alloc(struct warm_bufs *w, int seq_t, int max_seqs, int bs)
{
    w->tokens = calloc((size_t)seq_t, sizeof *w->tokens);
    w->table = calloc((size_t)(seq_t + bs - 1) / (size_t)bs, sizeof *w->table);
    w->ids = calloc((size_t)max_seqs, sizeof *w->ids);
    w->seqs = calloc((size_t)max_seqs, sizeof *w->seqs);
    return w->tokens && w->table && w->ids && w->seqs;
}

/* The tokens of a warm-up step's longest sequence when the step holds `total`: all of them,
 * unless the model's positions (max_model_len, max_position_embeddings) end sooner. */
static int warm_seq_len(const struct pgd__runner *r, int total)
{
    int max_pos = r->model->desc.max_position_embeddings;
    if (r->params.max_model_len > 0 && (max_pos <= 0 || r->params.max_model_len < max_pos))
        max_pos = r->params.max_model_len;
    return max_pos > 0 && max_pos < total ? max_pos : total;
}

static enum pgd_status warm_gemm_buckets(struct pgd__runner *r, char *err, size_t errlen)
{
    if (!on_cuda(r) || !pgd_cuda_gemm_tune_enabled(r->cuda))
        return PGD_OK;
    int max_t = r->params.max_num_batched_tokens, bs = r->kv.block_size;
    const int seq_t = warm_seq_len(r, max_t);          /* a sequence's */
    if (max_t < 16)
        return PGD_OK;
    /* a band step's sequences: WARM_BAND_SEQ tokens, more where max_num_seqs would not hold
     * max_t of them, never past a sequence's positions */
    const int ms = r->params.max_num_seqs > 0 ? r->params.max_num_seqs : 1;
    int band_seq = (max_t + ms - 1) / ms;
    band_seq = band_seq < WARM_BAND_SEQ ? WARM_BAND_SEQ : band_seq;
    band_seq = band_seq < seq_t ? band_seq : seq_t;
    const int max_seqs = (max_t + band_seq - 1) / band_seq;
    struct warm_bufs w;
    enum pgd_status st = PGD_OK;
    if (!warm_bufs_alloc(&w, seq_t, max_seqs, bs))
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "gemm warm-up: out of host memory");
    int before = pgd_cuda_gemm_tune_count(r->cuda), steps = 0, band_steps = 0;
    int64_t t0 = pgd__now_ms();
    for (int T = 16; !st; T = T * 2 > max_t && T < max_t ? max_t : T * 2) {
        int ns = warm_seqs(w.seqs, T, seq_t, w.tokens, w.table, bs);
        st = pgd__runner_step_greedy(r, w.seqs, ns, w.ids, err, errlen);
        steps++;
        int tops[7];
        const int n_tops =
            st || T > WARM_BAND_MAX_BUCKET ? 0 : pgd_cuda_gemm_band_tops(r->cuda, T, tops);
        for (int i = 0; !st && i < n_tops; i++) {
            ns = warm_seqs(w.seqs, tops[i], band_seq, w.tokens, w.table, bs);
            st = pgd__runner_step_greedy(r, w.seqs, ns, w.ids, err, errlen);
            band_steps++;
        }
        if (T >= max_t)
            break;
    }
    int tuned = pgd_cuda_gemm_tune_count(r->cuda) - before;
    double tune_ms = 0;
    for (int i = before; i < before + tuned; i++) {
        struct pgd_cuda_gemm_tune_info t;
        if (!pgd_cuda_gemm_tune_get(r->cuda, i, &t))
            tune_ms += t.tune_ms;
    }
    if (!st)
        PGD_INFO("cuBLASLt: %d GEMM plans of %d prefill sizes (16..%d tokens) tuned and %d "
                 "other sizes' bands warmed in %.1f s (%.1f s of it timing candidates)", tuned,
                 steps, max_t, band_steps, (double)(pgd__now_ms() - t0) / 1000.0,
                 tune_ms / 1000.0);
    else
        /* Not fatal: the sizes left are tuned on their first use instead (a device error
         * shows again in the next step). */
        PGD_WARN("cuBLASLt: the prefill sizes' tuning stopped after %d steps: %s", steps, err);
    warm_bufs_free(&w);
    return st == PGD_ERR_NOMEM || st == PGD_ERR_DEVICE ? st : PGD_OK;
}

/* The piecewise graphs' sizes (piecewise.h) warmed and captured before serving: two greedy
 * prompt steps of each size's tokens (sequences of token 0 over block 0, as the GEMM
 * warm-up's), the first warm, the second captured, so that no served step pays either. */
static enum pgd_status capture_piecewise(struct pgd__runner *r, char *err, size_t errlen)
{
    if (!r->pw)
        return PGD_OK;
    const int bs = r->kv.block_size;
    const int n_sizes = pgd__pw_n_sizes(r->pw), top = pgd__pw_size(r->pw, n_sizes - 1);
    const int seq_t = warm_seq_len(r, top);
    const int max_seqs = (top + seq_t - 1) / seq_t;
    if (max_seqs > r->params.max_num_seqs)
        return PGD_OK;               /* the largest sizes cannot be laid out: met lazily */
    struct warm_bufs w;
    enum pgd_status st = PGD_OK;
    if (!warm_bufs_alloc(&w, seq_t, max_seqs, bs))
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "piecewise graphs: out of host memory");
    int64_t t0 = pgd__now_ms();
    for (int i = 0; i < n_sizes && !st; i++) {
        const int ns = warm_seqs(w.seqs, pgd__pw_size(r->pw, i), seq_t, w.tokens, w.table, bs);
        for (int rep = 0; rep < 2 && !st; rep++)
            st = pgd__runner_step_greedy(r, w.seqs, ns, w.ids, err, errlen);
    }
    long replays;
    int captured, eager;
    pgd__pw_stats(r->pw, &replays, &captured, &eager);
    if (!st)
        PGD_INFO("piecewise CUDA graphs: %d of %d token sizes captured (%d left eager) in "
                 "%.1f s", captured, n_sizes, eager, (double)(pgd__now_ms() - t0) / 1000.0);
    warm_bufs_free(&w);
    return st;
}
#endif

/* Two greedy decode steps per shape of the graphs (runner_graph.h: each context bucket with
 * each batch size), through the ordinary step: the first runs eagerly (the graphs record the
 * arena's fingerprint), the second is captured, as the first requests would have done it.
 * Every row decodes one token at the bucket's last position over a block table of block 0
 * only, so nothing but block 0's slots is written (the pool is empty at creation). */
enum pgd_status pgd__runner_capture_graphs(struct pgd__runner *r, char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    enum pgd_status wst = warm_gemm_buckets(r, err, errlen);
    if (!wst)
        wst = capture_piecewise(r, err, errlen);
    if (wst)
        return wst;
    int tuned0 = on_cuda(r) ? pgd_cuda_gemm_tune_count(r->cuda) : 0;
#endif
    int n_shapes = 0, max_b = 0, max_nb = 0, bs = r->kv.block_size, B, len;
    for (; pgd__graphs_warmup_shape(r->graphs, n_shapes, &B, &len); n_shapes++) {
        max_b = B > max_b ? B : max_b;
        max_nb = (len + bs - 1) / bs > max_nb ? (len + bs - 1) / bs : max_nb;
    }
    if (n_shapes == 0)
        return PGD_OK;
    struct pgd__step_seq *seqs = calloc((size_t)max_b, sizeof *seqs);
    int32_t *table = calloc((size_t)max_nb, sizeof *table);   /* all block 0 */
    int32_t *ids = malloc((size_t)max_b * sizeof *ids);
    int32_t token = 0;
    enum pgd_status st = PGD_OK;
    if (!seqs || !table || !ids)
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "cuda graphs: out of host memory");
    int64_t t0 = pgd__now_ms();
    if (!st)
        PGD_INFO("cuda graphs: capturing %d decode graphs before serving", n_shapes);
    for (int i = 0; i < n_shapes && !st; i++) {
        pgd__graphs_warmup_shape(r->graphs, i, &B, &len);
        for (int s = 0; s < B; s++)
            seqs[s] = (struct pgd__step_seq){ .tokens = &token, .n_new = 1,
                                              .n_computed = len - 1, .block_table = table,
                                              .n_blocks = (len + bs - 1) / bs, .n_logits = 1 };
        for (int rep = 0; rep < 2 && !st; rep++)
            st = pgd__runner_step_greedy(r, seqs, B, ids, err, errlen);
    }
    long replays;
    int captured;
    pgd__graphs_stats(r->graphs, &replays, &captured);
    if (!st)
        PGD_INFO("cuda graphs: %d captured in %.1f s", captured,
                 (double)(pgd__now_ms() - t0) / 1000.0);
#ifdef PGD_HAVE_CUDA
    if (!st && on_cuda(r) && pgd_cuda_gemm_tune_count(r->cuda) > tuned0)
        PGD_INFO("cuBLASLt: %d GEMM plans of the decode sizes tuned during the capture",
                 pgd_cuda_gemm_tune_count(r->cuda) - tuned0);
#endif
    free(seqs);
    free(table);
    free(ids);
    return st;
}
