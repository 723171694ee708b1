/* The tensor-core paged attention (kernels/cuda/attention_mma.cu, forced for every row with
 * .path = PGD_CUDA_ATTN_MMA) against the CPU twin pgd_cpu_attention, in bf16 and fp16, head
 * dims 64 and 128, GQA groups 1, 4, 8 (and 4 with Llama-3-8B's 32/8 heads): decode rows with
 * short and long contexts (splits along the context), prefill chunks after a cached prefix,
 * query lengths at the 16- and 64-row edges of its tiles, sliding windows, block sizes 16 and
 * 32, mixed batches, graph-style fixed decode items. Also: the FMA kernel against the CPU
 * and against the MMA kernel on a big mixed batch, the default dispatch (decode rows to
 * attention_decode.cu) and the PGD_CUDA_ATTN switch; the decode kernels (the tensor-core one,
 * attention_decode_mma.cu, which the default dispatch gives every decode row it serves, and
 * the SIMT one, PGD_CUDA_DECODE_ATTN=simt): batches of 1 to 1024 rows, contexts of 1 to
 * 33,000 keys, groups 1 to 16, block sizes 8 to 32, windows, graph items under buckets, its
 * block shapes of 1, 2 or 4 (row, KV head) pairs (forced by PGD_CUDA_DECODE_WARPS, and the
 * default's choice), the merge of context splits (and the one before it); the
 * prefill shape (128 query rows over 8 warps, .path = PGD_CUDA_ATTN_PREFILL) through the same
 * kinds of cases (prompts of 1 .. 2049 tokens against the CPU, 8192 against the FMA kernel,
 * chunks after cached prefixes, several sequences a call, windows, e4m3 caches), and the
 * default dispatch choosing it; the Hopper prefill kernel (attention_wgmma.cu, forced with
 * .path = PGD_CUDA_ATTN_PREFILL_WGMMA, and what _PREFILL and the default run on an sm_90
 * device) through prompts of 1 .. 2048 tokens fresh and after cached prefixes, GQA groups
 * 1 / 4 / 8, head dims 64 / 128, splits, windows, mixed batches, 8192 tokens against the
 * mma.sync 128-row kernel (_PREFILL_MMA), its serial variant, the PGD_CUDA_PREFILL_ATTN
 * switch and e4m3 caches (its tests skip, saying so, where it cannot run); mixed calls with
 * each kernel planned at its own rows' longest context and the two kernels overlapped on two
 * streams (PGD_CUDA_ATTN_OVERLAP). Inputs are random (queries in [-a, a),
 * a up to 8 for peaked softmaxes; K/V in [-1, 1)), the whole cache too, so that a wrong read
 * shows.
 *
 * Tolerances, per element: |gpu - cpu| <= rtol |cpu| + atol * scale, scale = max |cpu|.
 * The CPU runs in float32 on the same 16-bit inputs. The FMA kernel's bounds are the
 * output rounding (rtol 2^-7 bf16, 2^-10 fp16) and float32 sums in another order (atol 2^-8,
 * 2^-11). The MMA kernel also rounds the softmax weights P to the dtype before P V: each
 * weight moves by at most u (unit roundoff: 2^-8 bf16, 2^-11 fp16; fp16 subnormals move by
 * < 2^-25), so an output moves by at most u * sum_j w_j |v_j| and, the roundings being
 * independent, typically by u / sqrt(3) * sqrt(sum_j w_j^2 v_j^2), which for |v| <= 1 is
 * about u / 3 of the row's typical |out|. atol = 4u (2^-6 bf16, 2^-9 fp16) times the largest
 * |out| of the batch is >= 12 such deviations for every row, and also covers u * max|v| for
 * the rows where one weight dominates. rtol stays the output rounding.
 *
 * FP8 KV cache (kv_cache_dtype fp8): the same cases with the caches in e4m3 bytes and
 * per-layer scales (k 0.0125, v 0.02; cached values up to +-4, i.e. codes up to 320). The
 * step's K/V are written by pgd_cuda_kv_write and by pgd_cpu_kv_write, whose bytes must be
 * identical (both round x / scale to nearest even and saturate); then every path reads the
 * same bytes as the CPU reference, which dequantizes in float32. e4m3 values are exact in
 * the 16-bit dtypes, so the only differences from the 16-bit case are where the scales are
 * applied (the K scale with the query scale, the V scale on the output: float32 roundings,
 * far below the output rounding): the 16-bit tolerances hold unchanged.
 *
 * Without a GPU (or a build without CUDA) every test skips, saying so. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "kernels/cpu/cpu_kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#define GPU_TEST_SEED 0x2545f4914f6cdd1dull
#define GPU_SUITE cuda_attention
#include "tests/lib/gpu_kernel_test.h"

#ifdef PGD_HAVE_CUDA

#define CHECK_RC(rc) cr_assert_eq((rc), 0, "%s", err)
#define MAXS 1024

/* ---- a batch ------------------------------------------------------------------------------- */
/* Sequence s has n_new[s] new tokens after cached[s] cached ones; queries in [-qamp, qamp). */
struct attn_case {
    const char *name;
    int H, KV, D, bs, window, n_seqs;
    int cached[MAXS], n_new[MAXS];
    float qamp;
};

/* The batch on the host (values rounded to dt) and on the device, K/V of the step written.
 * FP8 (fp8 set): the caches are e4m3 bytes k8, v8 (host) / dkc, dvc (device), scales sc. */
struct batch {
    const struct attn_case *c;
    enum pgd_dtype dt;
    bool fp8;
    uint8_t *k8, *v8;
    struct pgd_cuda_kv_fp8 sc;
    int n, max_blocks, max_len;
    size_t width, slots;
    int32_t qs[MAXS + 1], lens[MAXS], *tables, *pos;
    int64_t *slot;
    float *kc, *vc, *q, *k, *v;
    void *dkc, *dvc, *dq, *dk, *dv;
    int32_t *dlens, *dtab, *dpos;
    int64_t *dslot;
};

/* The host caches' CPU view. */
static struct pgd_cpu_kv_layer batch_cpu_kv(struct batch *b)
{
    struct pgd_cpu_kv_layer cl = { b->kc, b->vc, b->c->bs, b->c->KV, b->c->D, NULL, NULL, 0, 0 };
    if (b->fp8) {
        cl = (struct pgd_cpu_kv_layer){ NULL, NULL, b->c->bs, b->c->KV, b->c->D, b->k8, b->v8,
                                        b->sc.k_scale, b->sc.v_scale };
    }
    return cl;
}

/* n random e4m3 codes of values in [-a, a) over scale. */
static uint8_t *rand_codes(size_t n, float a, float scale)
{
    uint8_t *c = malloc(n + 4);
    for (size_t i = 0; i < n; i++)
        c[i] = pgd_fp8_e4m3_from_float(a * frand() / scale);
    return c;
}

static void batch_make_kv(struct batch *b, enum pgd_dtype dt, const struct attn_case *c, bool fp8)
{
    memset(b, 0, sizeof *b);
    b->c = c;
    b->dt = dt;
    b->fp8 = fp8;
    b->sc = (struct pgd_cuda_kv_fp8){ 0.0125f, 0.02f };
    int S = c->n_seqs, bs = c->bs, total_blocks = 0;
    cr_assert(S >= 1 && S <= MAXS);
    b->max_blocks = 1;
    for (int s = 0; s < S; s++) {
        int len = c->cached[s] + c->n_new[s];
        b->lens[s] = len;
        b->qs[s] = b->n;
        b->n += c->n_new[s];
        int nb = (len + bs - 1) / bs;
        b->max_blocks = nb > b->max_blocks ? nb : b->max_blocks;
        total_blocks += nb;
        b->max_len = len > b->max_len ? len : b->max_len;
    }
    b->qs[S] = b->n;
    /* The sequences' blocks scattered over a pool with spare blocks. */
    int num_blocks = total_blocks + 5;
    int32_t *perm = malloc((size_t)num_blocks * sizeof *perm);
    for (int i = 0; i < num_blocks; i++)
        perm[i] = i;
    for (int i = num_blocks - 1; i > 0; i--) {
        int j = (int)((frand() + 1) * 0.5f * (i + 1)) % (i + 1);
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    b->tables = calloc((size_t)S * b->max_blocks, sizeof *b->tables);
    for (int s = 0, used = 0; s < S; s++)
        for (int i = 0; i < (b->lens[s] + bs - 1) / bs; i++)
            b->tables[s * b->max_blocks + i] = perm[used++];
    free(perm);
    b->width = (size_t)c->KV * c->D;
    b->slots = (size_t)num_blocks * bs;
    b->kc = rand_vals(b->slots * b->width, 1, dt);
    b->vc = rand_vals(b->slots * b->width, 1, dt);
    b->q = rand_vals((size_t)b->n * c->H * c->D, c->qamp, dt);
    b->k = rand_vals((size_t)b->n * b->width, 1, dt);
    b->v = rand_vals((size_t)b->n * b->width, 1, dt);
    b->slot = malloc((size_t)b->n * sizeof *b->slot);
    b->pos = malloc((size_t)b->n * sizeof *b->pos);
    for (int s = 0, t = 0; s < S; s++)
        for (int i = 0; i < c->n_new[s]; i++, t++) {
            int p = c->cached[s] + i;
            b->pos[t] = p;
            b->slot[t] = (int64_t)b->tables[s * b->max_blocks + p / bs] * bs + p % bs;
        }
    if (fp8) {
        b->k8 = rand_codes(b->slots * b->width, 4, b->sc.k_scale);
        b->v8 = rand_codes(b->slots * b->width, 4, b->sc.v_scale);
        b->dkc = upload_raw(b->k8, b->slots * b->width);
        b->dvc = upload_raw(b->v8, b->slots * b->width);
    } else {
        b->dkc = upload(b->kc, b->slots * b->width, dt);
        b->dvc = upload(b->vc, b->slots * b->width, dt);
    }
    b->dq = upload(b->q, (size_t)b->n * c->H * c->D, dt);
    b->dk = upload(b->k, (size_t)b->n * b->width, dt);
    b->dv = upload(b->v, (size_t)b->n * b->width, dt);
    b->dlens = upload_raw(b->lens, (size_t)S * sizeof(int32_t));
    b->dtab = upload_raw(b->tables, (size_t)S * b->max_blocks * sizeof(int32_t));
    b->dpos = upload_raw(b->pos, (size_t)b->n * sizeof(int32_t));
    b->dslot = upload_raw(b->slot, (size_t)b->n * sizeof(int64_t));
    char err[512] = "";
    CHECK_RC(pgd_cuda_kv_write(ctx, dt, b->dkc, b->dvc, b->dk, b->dv, b->dslot, b->n,
                               (int)b->width, fp8 ? &b->sc : NULL, err, sizeof err));
    struct pgd_cpu_kv_layer cl = batch_cpu_kv(b);
    pgd_cpu_kv_write(&cl, b->k, b->v, b->slot, b->n);
    if (fp8) {
        /* The written caches byte for byte. */
        size_t bytes = b->slots * b->width;
        uint8_t *got = malloc(bytes + 4);
        for (int kv = 0; kv < 2; kv++) {
            CHECK_RC(pgd_cuda_sync(ctx, err, sizeof err));
            CHECK_RC(pgd_cuda_memcpy_d2h(got, kv ? b->dvc : b->dkc, bytes, err, sizeof err));
            const uint8_t *want = kv ? b->v8 : b->k8;
            for (size_t i = 0; i < bytes; i++)
                cr_assert_eq(got[i], want[i], "%s: fp8 kv_write %s %s: byte %zu (slot %zu) is "
                             "0x%02x, the CPU wrote 0x%02x", c->name, pgd_dtype_name(dt),
                             kv ? "V" : "K", i, i / b->width, got[i], want[i]);
        }
        free(got);
    }
}

static void batch_make(struct batch *b, enum pgd_dtype dt, const struct attn_case *c)
{
    batch_make_kv(b, dt, c, false);
}

static void batch_free(struct batch *b)
{
    free(b->tables); free(b->pos); free(b->slot);
    free(b->kc); free(b->vc); free(b->q); free(b->k); free(b->v); free(b->k8); free(b->v8);
    void *ds[] = { b->dkc, b->dvc, b->dq, b->dk, b->dv, b->dlens, b->dtab, b->dpos, b->dslot };
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        pgd_cuda_free(ds[i]);
}

/* Whether batch_run hands the kernels the host's sequence lengths, as the runner does (each
 * kernel of a mixed call then plans at its own rows' longest context); off: both plan at
 * the call's longest. */
static bool run_host_lens = true;

/* The GPU's output through `path` [n, H * D] (the caller frees it). items: pass fixed decode
 * items {s, s, 1, 0} as a captured graph does (every sequence one token), with max_len
 * standing in for the graph's context bucket. *scratch_bytes: the split scratch used. */
static float *batch_run(struct batch *b, int path, uint64_t step_id, int items, int max_len,
                        size_t *scratch_bytes)
{
    const struct attn_case *c = b->c;
    char err[512] = "";
    size_t out_n = (size_t)b->n * c->H * c->D;
    uint16_t *nan = malloc(out_n * 2 + 4);
    memset(nan, 0xff, out_n * 2);                   /* NaN: an unwritten element fails */
    void *dout = upload_raw(nan, out_n * 2);
    free(nan);
    int32_t *ditems = NULL;
    if (items) {
        int32_t *h = malloc((size_t)b->n * 4 * sizeof *h);
        for (int s = 0; s < c->n_seqs; s++) {
            cr_assert_eq(c->n_new[s], 1, "%s: decode items need one token a sequence", c->name);
            h[4 * s] = s; h[4 * s + 1] = s; h[4 * s + 2] = 1; h[4 * s + 3] = 0;
        }
        ditems = upload_raw(h, (size_t)b->n * 4 * sizeof *h);
        free(h);
    }
    struct pgd_cuda_attn a = {
        .dtype = b->dt, .q = b->dq, .out = dout, .k_cache = b->dkc, .v_cache = b->dvc,
        .block_size = c->bs,
        .p = { .n_heads = c->H, .n_kv_heads = c->KV, .head_dim = c->D,
               .scale = (float)(1 / sqrt(c->D)), .sliding_window = c->window },
        .n_tokens = b->n, .n_seqs = c->n_seqs, .query_start = NULL, .seq_lens = b->dlens,
        .block_tables = b->dtab, .max_blocks = b->max_blocks, .positions = b->dpos,
        .h_query_start = items ? NULL : b->qs, .h_seq_lens = items || !run_host_lens ? NULL : b->lens,
        .max_seq_len = max_len > 0 ? max_len : b->max_len,
        .step_id = step_id, .decode_items = ditems, .path = path,
        .kv_fp8 = b->fp8 ? &b->sc : NULL,
    };
    size_t sb = pgd_cuda_attention_scratch(ctx, &a);
    void *scratch = sb ? pgd_cuda_malloc(sb) : NULL;
    if (sb)
        cr_assert_not_null(scratch);
    CHECK_RC(pgd_cuda_attention(ctx, &a, scratch, err, sizeof err));
    float *got = download(dout, out_n, b->dt);
    pgd_cuda_free(dout);
    pgd_cuda_free(scratch);
    pgd_cuda_free(ditems);
    if (scratch_bytes)
        *scratch_bytes = sb;
    return got;
}

static float *batch_cpu(struct batch *b)
{
    const struct attn_case *c = b->c;
    struct pgd_cpu_kv_layer cl = batch_cpu_kv(b);
    struct pgd_cpu_seq_layout L = { c->n_seqs, b->qs, b->lens, b->tables, b->max_blocks, b->pos };
    struct pgd_attn_params p = { .n_heads = c->H, .n_kv_heads = c->KV, .head_dim = c->D,
                                 .scale = (float)(1 / sqrt(c->D)), .sliding_window = c->window };
    float *scores = malloc((size_t)(b->max_len + 1) * sizeof *scores);
    float *want = malloc((size_t)b->n * c->H * c->D * sizeof *want);
    pgd_cpu_attention(&cl, &L, &p, b->q, scores, want);
    free(scores);
    return want;
}

struct tol {
    double rtol, atol;
};
static struct tol tol_fma(enum pgd_dtype dt)
{
    return dt == PGD_DTYPE_BF16 ? (struct tol){ 1.0 / 128, 1.0 / 256 }
                                : (struct tol){ 1.0 / 1024, 1.0 / 2048 };
}
static struct tol tol_mma(enum pgd_dtype dt)
{
    return dt == PGD_DTYPE_BF16 ? (struct tol){ 1.0 / 128, 1.0 / 64 }
                                : (struct tol){ 1.0 / 1024, 1.0 / 512 };
}

/* Every element within tol of want; a failure names the first bad element (sequence, token,
 * position, head, dim), how many are bad and the worst. */
static void expect_close(const struct batch *b, const char *what, const float *got,
                         const float *want, struct tol t)
{
    const struct attn_case *c = b->c;
    size_t n = (size_t)b->n * c->H * c->D;
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    double at = t.atol * (scale > 0 ? scale : 1), worst = 0;
    size_t bad = 0, first = 0, worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]), bound = t.rtol * fabs(want[i]) + at;
        if (!(e <= bound)) {
            if (!bad++)
                first = i;
            if (!(e <= worst)) {
                worst = e;
                worst_i = i;
            }
        }
    }
    if (!bad)
        return;
    int tok = (int)(first / ((size_t)c->H * c->D)), h = (int)(first / c->D % c->H);
    int d = (int)(first % c->D), s = 0;
    while (s + 1 < c->n_seqs && b->qs[s + 1] <= tok)
        s++;
    cr_assert_fail("%s: %s (%s%s, H %d KV %d D %d block %d window %d): %zu of %zu elements off; "
                   "first: seq %d (cached %d, new %d) token %d at position %d, head %d, dim %d: "
                   "%.6g vs %.6g (bound %.3g); worst: element %zu off by %.3g; scale %.3g",
                   c->name, what, pgd_dtype_name(b->dt), b->fp8 ? ", e4m3 cache" : "", c->H, c->KV, c->D, c->bs, c->window,
                   bad, n, s, c->cached[s], c->n_new[s], tok, b->pos[tok], h, d, got[first],
                   want[first], t.rtol * fabs(want[first]) + at, worst_i, worst, scale);
}

static const enum pgd_dtype DTS[2] = { PGD_DTYPE_BF16, PGD_DTYPE_F16 };

/* One path against the CPU on case c in both dtypes (the cache in them, or e4m3 with fp8);
 * returns the scratch bytes used. */
static size_t check_path_kv(const struct attn_case *c, int path, uint64_t step_id, bool fp8)
{
    size_t sb = 0;
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make_kv(&b, DTS[di], c, fp8);
        float *got = batch_run(&b, path, step_id + di, 0, 0, &sb);
        float *want = batch_cpu(&b);
        if (path == PGD_CUDA_ATTN_MMA)
            expect_close(&b, "tensor cores vs CPU", got, want, tol_mma(DTS[di]));
        else if (path == PGD_CUDA_ATTN_PREFILL)
            expect_close(&b, "tensor cores, 128-row blocks vs CPU", got, want, tol_mma(DTS[di]));
        else if (path == PGD_CUDA_ATTN_PREFILL_MMA)
            expect_close(&b, "mma.sync, 128-row blocks vs CPU", got, want, tol_mma(DTS[di]));
        else if (path == PGD_CUDA_ATTN_PREFILL_WGMMA)
            expect_close(&b, "wgmma, 128-row blocks vs CPU", got, want, tol_mma(DTS[di]));
        else if (path == PGD_CUDA_ATTN_AUTO)
            expect_close(&b, "default dispatch vs CPU", got, want, tol_mma(DTS[di]));
        else
            expect_close(&b, "FMA kernel vs CPU", got, want, tol_fma(DTS[di]));
        free(got);
        free(want);
        batch_free(&b);
    }
    return sb;
}

static size_t check_path(const struct attn_case *c, int path, uint64_t step_id)
{
    return check_path_kv(c, path, step_id, false);
}

static size_t check_mma(const struct attn_case *c, uint64_t step_id)
{
    return check_path(c, PGD_CUDA_ATTN_MMA, step_id);
}

/* A decode batch (heap, the caller frees it): n rows of one new token each, after cached
 * contexts from a fixed pattern in [0, max_cached): the first rows at the edges of the
 * decode kernel's 16-key tiles and 64-key rounds (0, 15, 16, 17, 63, 64, 65, 127, 128), the
 * rest spread over the range (most not multiples of 16). */
static struct attn_case *decode_case(const char *name, int H, int KV, int D, int bs, int window,
                                     int n, int max_cached, float qamp)
{
    static const int edges[] = { 0, 15, 16, 17, 63, 64, 65, 127, 128 };
    struct attn_case *c = calloc(1, sizeof *c);
    cr_assert(c && n >= 1 && n <= MAXS && max_cached >= 1);
    *c = (struct attn_case){ name, H, KV, D, bs, window, n, { 0 }, { 0 }, qamp };
    for (int s = 0; s < n; s++) {
        int e = s < (int)(sizeof edges / sizeof edges[0]) ? edges[s] : max_cached;
        c->cached[s] = e < max_cached ? e : (int)((uint32_t)(s + 1) * 2654435761u % (uint32_t)max_cached);
        c->n_new[s] = 1;
    }
    return c;
}

/* ---- the cases ------------------------------------------------------------------------------ */
GPU_TEST(mma_decode_short_and_long_contexts_split)
{
    /* Llama-3-8B heads (group 4); 6 decode rows: few blocks, so the long ones split. */
    struct attn_case c = { "decode", 32, 8, 128, 16, 0, 6, { 0, 700, 3000, 63, 255, 5000 },
                           { 1, 1, 1, 1, 1, 1 }, 1 };
    size_t sb = check_mma(&c, 100);
    cr_assert_gt(sb, 0, "the long rows should have been split along the context");
    c.name = "decode, peaked softmax";
    c.qamp = 8;
    check_mma(&c, 110);
}

GPU_TEST(mma_groups_head_dims_block_sizes_and_tile_edges)
{
    /* Query lengths 1, 15, 16, 17, 63, 64, 65, 200 (the warps' 16 rows, a block's 64 rows or
     * tokens, the 64-key tiles), fresh and after cached prefixes (some on tile edges). */
    static const int cached[8] = { 0, 37, 0, 64, 5, 0, 100, 0 };
    static const int n_new[8] = { 1, 15, 16, 17, 63, 64, 65, 200 };
    static const int groups[3] = { 1, 4, 8 }, dims[2] = { 64, 128 }, bss[2] = { 16, 32 };
    uint64_t step = 200;
    for (int gi = 0; gi < 3; gi++)
        for (int di = 0; di < 2; di++)
            for (int bi = 0; bi < 2; bi++) {
                char name[96];
                snprintf(name, sizeof name, "prefill edges, group %d", groups[gi]);
                struct attn_case c = { name, 2 * groups[gi], 2, dims[di], bss[bi], 0, 8,
                                       { 0 }, { 0 }, gi == 1 ? 4 : 1 };
                memcpy(c.cached, cached, sizeof cached);
                memcpy(c.n_new, n_new, sizeof n_new);
                check_mma(&c, step);
                step += 2;
            }
}

GPU_TEST(mma_prefill_chunk_after_long_prefix_splits)
{
    /* One chunk of 16 tokens (one item a KV head) after 4000 cached ones, with decode rows:
     * few blocks, so the prefill rows split along the context too. */
    struct attn_case c = { "chunk after prefix", 32, 8, 128, 16, 0, 4, { 4000, 0, 2500, 0 },
                           { 16, 1, 1, 40 }, 2 };
    size_t sb = check_mma(&c, 300);
    cr_assert_gt(sb, 0, "the chunk should have been split along the context");
}

GPU_TEST(mma_sliding_window)
{
    struct attn_case cs[] = {
        { "window 32", 8, 2, 128, 16, 32, 4, { 0, 90, 300, 1000 }, { 80, 20, 1, 70 }, 2 },
        { "window 100", 16, 2, 64, 32, 100, 4, { 0, 90, 3000, 150 }, { 130, 17, 1, 65 }, 1 },
        { "window 64, MQA", 8, 1, 128, 16, 64, 3, { 5000, 63, 0 }, { 1, 1, 64 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_mma(&cs[i], 400 + 2 * i);
}

GPU_TEST(mma_mixed_batch_groups)
{
    /* Decode rows and prefill chunks in one launch, head counts beyond 64 rows a block
     * (group 16: 4 tokens an item; MQA 16/1) and plain multi-head attention. */
    struct attn_case cs[] = {
        { "mixed, group 4", 32, 8, 128, 16, 0, 6, { 0, 200, 50, 1000, 17, 0 },
          { 100, 37, 1, 1, 1, 33 }, 1 },
        { "mixed, MQA 16/1", 16, 1, 128, 32, 0, 4, { 0, 513, 20, 2000 }, { 70, 1, 9, 1 }, 3 },
        { "mixed, MHA", 4, 4, 64, 16, 0, 3, { 10, 0, 700 }, { 129, 1, 1 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_mma(&cs[i], 500 + 2 * i);
}

/* A mixed call through the default dispatch in every way it may run: each kernel planned at
 * the call's longest context (no host lengths) and at its own rows' (the runner's way), the
 * two kernels in turn and on two streams in either order (PGD_CUDA_ATTN_OVERLAP). Every way
 * matches the CPU; the ways that plan alike give the same bits. Returns the scratch bytes
 * planned without and with the host lengths. */
static void check_mixed_ways(const struct attn_case *c, uint64_t step, size_t sb_out[2])
{
    static const char *const OVERLAP[3] = { "0", "1", "gen" };
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make(&b, DTS[di], c);
        float *want = batch_cpu(&b);
        size_t n = (size_t)b.n * c->H * c->D;
        for (int lens = 0; lens < 2; lens++) {
            run_host_lens = lens;
            float *in_turn = NULL;
            for (int o = 0; o < 3; o++) {
                setenv("PGD_CUDA_ATTN_OVERLAP", OVERLAP[o], 1);
                size_t sb = 0;
                float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, step + 8 * di + 3 * lens + o, 0,
                                       0, &sb);
                char what[96];
                snprintf(what, sizeof what, "default dispatch, %s host lengths, overlap %s, vs "
                         "CPU", lens ? "with" : "without", OVERLAP[o]);
                expect_close(&b, what, got, want, tol_mma(DTS[di]));
                sb_out[lens] = sb;
                if (!in_turn) {
                    in_turn = got;
                    continue;
                }
                cr_assert_arr_eq(got, in_turn, n * sizeof *got, "%s (%s): overlap %s should "
                                 "give the bits of the kernels in turn", c->name,
                                 pgd_dtype_name(DTS[di]), OVERLAP[o]);
                free(got);
            }
            free(in_turn);
        }
        unsetenv("PGD_CUDA_ATTN_OVERLAP");
        run_host_lens = true;
        free(want);
        batch_free(&b);
    }
}

GPU_TEST(mixed_calls_plan_each_kernel_at_its_rows_and_overlap_them)
{
    /* Llama-3-8B heads. Decode rows at ~3,000 keys beside a fresh 200-token prompt: planned at
     * the call's longest, the prompt's items are cut into context splits that find no keys
     * (partials and a merge for nothing); at its own 200 keys, none. */
    struct attn_case lng = { "long decodes, short chunk", 32, 8, 128, 16, 0, 5,
                             { 3000, 2999, 2500, 3100, 0 }, { 1, 1, 1, 1, 200 }, 2 };
    size_t sb[2];
    check_mixed_ways(&lng, 3000, sb);
    cr_assert_lt(sb[1], sb[0], "%s: %zu bytes of split scratch with the host's lengths, %zu "
                 "without: the prompt's items should no longer split", lng.name, sb[1], sb[0]);
    /* 64 short decode rows beside a 1,500-token chunk after 500 cached tokens: the decode
     * rows are planned at their own <= 50 keys (no splits), not the chunk's 2,000. */
    struct attn_case *sht = calloc(1, sizeof *sht);
    *sht = (struct attn_case){ .name = "short decodes, long chunk", .H = 32, .KV = 8, .D = 128,
                               .bs = 16, .window = 0, .n_seqs = 65, .qamp = 2 };
    for (int s = 0; s < 64; s++) {
        sht->cached[s] = (s * 37) % 50;
        sht->n_new[s] = 1;
    }
    sht->cached[64] = 500;
    sht->n_new[64] = 1500;
    check_mixed_ways(sht, 3100, sb);
    cr_assert_leq(sb[1], sb[0], "%s: %zu bytes of split scratch with the host's lengths, %zu "
                  "without", sht->name, sb[1], sb[0]);
    free(sht);
}

GPU_TEST(mma_graph_decode_items)
{
    /* Fixed items {s, s, 1, 0} and a context bucket above the longest row, as a captured
     * decode step runs; a padding row at position 0. */
    struct attn_case c = { "graph decode", 32, 8, 128, 16, 0, 5, { 5, 1000, 4000, 17, 0 },
                           { 1, 1, 1, 1, 1 }, 2 };
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make(&b, DTS[di], &c);
        size_t sb = 0;
        float *got = batch_run(&b, PGD_CUDA_ATTN_MMA, 600 + di, 1, 4096, &sb);
        float *want = batch_cpu(&b);
        cr_assert_gt(sb, 0, "a 4096-key bucket over 5 rows should split");
        expect_close(&b, "tensor cores with decode items vs CPU", got, want, tol_mma(DTS[di]));
        free(got);
        free(want);
        batch_free(&b);
    }
}

GPU_TEST(mma_and_fma_agree_on_a_big_mixed_batch)
{
    /* Llama-3-8B heads: a 1000-token prompt, chunks after prefixes, decode rows up to 5000
     * keys. The two kernels against each other (the CPU would take long), within the sum of
     * their bounds. */
    struct attn_case c = { "big mixed", 32, 8, 128, 16, 0, 8,
                           { 0, 2000, 5000, 300, 0, 1500, 64, 4096 },
                           { 1000, 300, 1, 1, 1, 200, 65, 1 }, 2 };
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make(&b, DTS[di], &c);
        float *mma = batch_run(&b, PGD_CUDA_ATTN_MMA, 700 + 2 * di, 0, 0, NULL);
        float *fma = batch_run(&b, PGD_CUDA_ATTN_FMA, 701 + 2 * di, 0, 0, NULL);
        struct tol a = tol_mma(DTS[di]), f = tol_fma(DTS[di]);
        expect_close(&b, "tensor cores vs FMA kernel", mma, fma,
                     (struct tol){ a.rtol + f.rtol, a.atol + f.atol });
        free(mma);
        free(fma);
        batch_free(&b);
    }
}

GPU_TEST(fma_still_matches_the_cpu_at_head_dims_64_and_128)
{
    /* pgd_cuda_attention now sends these shapes to the tensor cores: the FMA kernel forced. */
    struct attn_case cs[] = {
        { "FMA decode", 32, 8, 128, 16, 0, 4, { 0, 700, 3000, 255 }, { 1, 1, 1, 1 }, 1 },
        { "FMA mixed", 8, 2, 64, 32, 48, 3, { 0, 200, 50 }, { 100, 37, 1 }, 2 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path(&cs[i], PGD_CUDA_ATTN_FMA, 800 + 2 * i);
}

/* PGD_CUDA_ATTN (read once a process; Criterion runs each test in a fresh one): the default
 * path gives the same bits as the kernel it should pick, and the scratch that kernel plans
 * (a 16-token chunk after 20000 cached tokens: the FMA kernel cuts it into 2 items a KV head,
 * the MMA kernel into 1, so their split counts differ). No decode rows: those would go to
 * attention_decode.cu by default. */
static void check_default_path(int expect)
{
    struct attn_case c = { "default path", 32, 8, 128, 16, 0, 2, { 20000, 30 }, { 16, 2 }, 1 };
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, &c);
    size_t sb_auto = 0, sb_want = 0, sb_other = 0;
    float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, 900, 0, 0, &sb_auto);
    float *want = batch_run(&b, expect, 901, 0, 0, &sb_want);
    float *other = batch_run(&b, expect == PGD_CUDA_ATTN_MMA ? PGD_CUDA_ATTN_FMA : PGD_CUDA_ATTN_MMA,
                             902, 0, 0, &sb_other);
    cr_assert_neq(sb_want, sb_other, "the case should plan different splits in the two kernels");
    cr_assert_eq(sb_auto, sb_want, "default path: %zu bytes of scratch, the %s kernel plans %zu",
                 sb_auto, expect == PGD_CUDA_ATTN_MMA ? "MMA" : "FMA", sb_want);
    size_t n = (size_t)b.n * c.H * c.D;
    cr_assert_arr_eq(got, want, n * sizeof *got, "the default path should run the %s kernel",
                     expect == PGD_CUDA_ATTN_MMA ? "MMA" : "FMA");
    free(got);
    free(want);
    free(other);
    batch_free(&b);
}

GPU_TEST(default_path_is_mma_at_head_dim_128)
{
    unsetenv("PGD_CUDA_ATTN");
    check_default_path(PGD_CUDA_ATTN_MMA);
}

GPU_TEST(env_switch_selects_fma)
{
    setenv("PGD_CUDA_ATTN", "fma", 1);
    check_default_path(PGD_CUDA_ATTN_FMA);
}

GPU_TEST(default_dispatch_with_decode_kernel_matches_cpu)
{
    /* The default path: prefill items on the tensor cores, decode rows on attention_decode.cu,
     * both split along the context, their partials side by side in one scratch. */
    struct attn_case c = { "default dispatch", 32, 8, 128, 16, 0, 4, { 4000, 3000, 2500, 7 },
                           { 16, 1, 1, 1 }, 2 };
    size_t sb = check_path(&c, PGD_CUDA_ATTN_AUTO, 950);
    cr_assert_gt(sb, 0, "the long rows should have been split along the context");
}

/* ---- FP8 KV cache ---------------------------------------------------------------------------- */
/* Every kernel path over an e4m3 cache: the tensor cores (prefill edges, splits, windows,
 * GQA / MQA / MHA, block sizes), the FMA kernel (head dims 64 / 128 and the ones only it
 * takes), the decode kernel (forced through the default dispatch, splits, group sizes,
 * head dims 64 / 128 / 256) and graph-style decode items. */
GPU_TEST(fp8_kv_tensor_core_paths_match_cpu)
{
    struct attn_case cs[] = {
        { "fp8 decode", 32, 8, 128, 16, 0, 6, { 0, 700, 3000, 63, 255, 5000 },
          { 1, 1, 1, 1, 1, 1 }, 1 },
        { "fp8 prefill edges", 8, 2, 64, 32, 0, 8, { 0, 37, 0, 64, 5, 0, 100, 0 },
          { 1, 15, 16, 17, 63, 64, 65, 200 }, 4 },
        { "fp8 chunk after prefix", 32, 8, 128, 16, 0, 4, { 4000, 0, 2500, 0 },
          { 16, 1, 1, 40 }, 2 },
        { "fp8 window 32", 8, 2, 128, 16, 32, 4, { 0, 90, 300, 1000 }, { 80, 20, 1, 70 }, 2 },
        { "fp8 mixed, MQA 16/1", 16, 1, 128, 32, 0, 4, { 0, 513, 20, 2000 }, { 70, 1, 9, 1 }, 3 },
        { "fp8 mixed, MHA", 4, 4, 64, 16, 0, 3, { 10, 0, 700 }, { 129, 1, 1 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path_kv(&cs[i], PGD_CUDA_ATTN_MMA, 1000 + 2 * i, true);
}

GPU_TEST(fp8_kv_fma_kernel_matches_cpu)
{
    struct attn_case cs[] = {
        { "fp8 FMA decode", 32, 8, 128, 16, 0, 4, { 0, 700, 3000, 255 }, { 1, 1, 1, 1 }, 1 },
        { "fp8 FMA mixed, window", 8, 2, 64, 32, 48, 3, { 0, 200, 50 }, { 100, 37, 1 }, 2 },
        { "fp8 FMA head_dim 80", 8, 2, 80, 16, 0, 3, { 0, 300, 1200 }, { 40, 1, 3 }, 1 },
        { "fp8 FMA head_dim 256", 4, 1, 256, 16, 0, 2, { 100, 2000 }, { 9, 1 }, 1 },
        { "fp8 FMA head_dim 16", 4, 2, 16, 16, 0, 2, { 0, 500 }, { 33, 1 }, 2 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path_kv(&cs[i], PGD_CUDA_ATTN_FMA, 1100 + 2 * i, true);
}

GPU_TEST(fp8_kv_decode_kernel_matches_cpu)
{
    /* PGD_CUDA_DECODE_ATTN=1: every decode row on attention_decode.cu, split or not. */
    setenv("PGD_CUDA_DECODE_ATTN", "1", 1);
    struct attn_case cs[] = {
        { "fp8 decode kernel, group 4", 32, 8, 128, 16, 0, 5, { 0, 700, 3000, 63, 5000 },
          { 1, 1, 1, 1, 1 }, 2 },
        { "fp8 decode kernel, D 64 group 8, window", 16, 2, 64, 16, 100, 3, { 10, 400, 2000 },
          { 1, 1, 1 }, 1 },
        { "fp8 decode kernel, D 256 MHA", 4, 4, 256, 32, 0, 3, { 0, 90, 1500 }, { 1, 1, 1 }, 1 },
        { "fp8 decode kernel, group 3 with prefill", 6, 2, 128, 16, 0, 3, { 0, 300, 2500 },
          { 50, 1, 1 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        size_t sb = check_path_kv(&cs[i], PGD_CUDA_ATTN_AUTO, 1200 + 2 * i, true);
        if (i == 0)
            cr_assert_gt(sb, 0, "the long decode rows should have been split");
    }
}

/* ---- the tensor-core decode kernel (attention_decode_mma.cu) ------------------------------------ */
/* The default dispatch sends every decode row it serves (BF16/F16, head_dim 64 / 128, up to 16
 * query heads a KV head) to it: batches of 1 to 1024 rows, contexts from 1 key to 33,000 (split
 * or not, most not multiples of 16), groups 1 to 16 (rows 8..15 of its tiles used or not),
 * block sizes 8, 16, 32 and 24 (not a power of two), sliding windows, 16-bit and e4m3
 * caches, planned items and a graph's fixed items under a context bucket. */
static void check_decode_cases(const struct attn_case *const *cs, size_t n, uint64_t step)
{
    unsetenv("PGD_CUDA_DECODE_ATTN");
    for (size_t i = 0; i < n; i++)
        for (int f8 = 0; f8 < 2; f8++)
            check_path_kv(cs[i], PGD_CUDA_ATTN_AUTO, step + 4 * i + 2 * f8, f8);
}

GPU_TEST(decode_kernel_batches_1_to_1024)
{
    struct attn_case *cs[] = {
        decode_case("tc decode b1 ctx 1", 32, 8, 128, 16, 0, 1, 1, 1),
        decode_case("tc decode b9 tile edges", 32, 8, 128, 16, 0, 9, 1000, 2),
        decode_case("tc decode b32", 32, 8, 128, 16, 0, 32, 1100, 1),
        decode_case("tc decode b200 short", 32, 8, 128, 16, 0, 200, 260, 1),
        decode_case("tc decode b1024 short", 4, 1, 128, 16, 0, 1024, 300, 1),
        decode_case("tc decode b64 D 64 group 8 block 32", 16, 2, 64, 32, 0, 64, 700, 2),
    };
    check_decode_cases((const struct attn_case *const *)cs, sizeof cs / sizeof cs[0], 2000);
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        free(cs[i]);
}

GPU_TEST(decode_kernel_groups_blocks_windows)
{
    struct attn_case *cs[] = {
        decode_case("tc decode MHA D 64", 4, 4, 64, 16, 0, 9, 400, 1),
        decode_case("tc decode group 2", 4, 2, 128, 16, 0, 9, 900, 1),
        decode_case("tc decode group 12", 24, 2, 128, 16, 0, 9, 1500, 1),
        decode_case("tc decode group 16", 32, 2, 128, 16, 0, 9, 3000, 4),
        decode_case("tc decode group 16 D 64", 16, 1, 64, 16, 0, 9, 800, 1),
        decode_case("tc decode block 8, window 100", 8, 2, 128, 8, 100, 12, 2000, 1),
        decode_case("tc decode block 24, window 37", 8, 2, 64, 24, 37, 12, 900, 1),
        decode_case("tc decode block 32, peaked", 32, 8, 128, 32, 0, 12, 1500, 8),
    };
    check_decode_cases((const struct attn_case *const *)cs, sizeof cs / sizeof cs[0], 2100);
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        free(cs[i]);
}

GPU_TEST(decode_kernel_long_contexts_split)
{
    /* 33,000 keys for one row (and beside a short one): split along the context. */
    struct attn_case c1 = { "tc decode b1 ctx 33000", 8, 2, 128, 16, 0, 1, { 32999 }, { 1 }, 2 };
    struct attn_case c2 = { "tc decode b2 ctx 33000 + 5", 32, 8, 128, 16, 0, 2, { 32999, 4 },
                            { 1, 1 }, 1 };
    struct attn_case c3 = { "tc decode b1 ctx 20001 D 64 window 5000", 16, 2, 64, 16, 5000, 1,
                            { 20000 }, { 1 }, 1 };
    unsetenv("PGD_CUDA_DECODE_ATTN");
    const struct attn_case *cs[] = { &c1, &c2, &c3 };
    for (size_t i = 0; i < 3; i++)
        for (int f8 = 0; f8 < 2; f8++) {
            size_t sb = check_path_kv(cs[i], PGD_CUDA_ATTN_AUTO, 2200 + 4 * i + 2 * f8, f8);
            cr_assert_gt(sb, 0, "%s: the long row should have been split", cs[i]->name);
        }
}

GPU_TEST(decode_kernel_graph_items_under_buckets)
{
    /* Fixed items {s, s, 1, 0}, a padding row at position 0, buckets 256 (one split: the
     * batch fills the GPU or the bucket is short), 4096 and 32768 (split: each row's own
     * keys cut into the plan's splits, so rows far shorter than the bucket still fill every
     * split and rows of 0-17 keys leave some empty). Every block shape of the tensor-core
     * kernel, then the SIMT kernel, which cuts its rows the same way. */
    struct attn_case *big = decode_case("tc graph decode b300", 32, 8, 128, 16, 0, 300, 250, 1);
    big->cached[7] = 0;
    struct attn_case c = { "tc graph decode b5", 32, 8, 128, 16, 0, 5, { 5, 1000, 4000, 17, 0 },
                           { 1, 1, 1, 1, 1 }, 2 };
    struct {
        const struct attn_case *c;
        int bucket;
    } runs[] = { { big, 256 }, { &c, 4096 }, { &c, 32768 } };
    static const char *const kernels[4] = { "4", "2", "1", "simt" };
    uint64_t step = 2300;
    for (int k = 0; k < 4; k++) {
        if (k < 3) {
            unsetenv("PGD_CUDA_DECODE_ATTN");
            setenv("PGD_CUDA_DECODE_WARPS", kernels[k], 1);
        } else {
            unsetenv("PGD_CUDA_DECODE_WARPS");
            setenv("PGD_CUDA_DECODE_ATTN", "simt", 1);
        }
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
            for (int f8 = 0; f8 < 2; f8++)
                for (int di = 0; di < 2; di++, step++) {
                    struct batch b;
                    batch_make_kv(&b, DTS[di], runs[r].c, f8);
                    size_t sb = 0;
                    float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, step, 1, runs[r].bucket, &sb);
                    float *want = batch_cpu(&b);
                    char what[96];
                    snprintf(what, sizeof what, "decode kernel (%s) with graph items under "
                             "bucket %d vs CPU", kernels[k], runs[r].bucket);
                    struct tol t = tol_mma(DTS[di]), f = tol_fma(DTS[di]);
                    expect_close(&b, what, got, want,
                                 k < 3 ? t : (struct tol){ t.rtol + f.rtol, t.atol + f.atol });
                    if (runs[r].bucket > 256)
                        cr_assert_gt(sb, 0, "%s: a bucket of %d keys over 5 rows should split",
                                     what, runs[r].bucket);
                    free(got);
                    free(want);
                    batch_free(&b);
                }
    }
    unsetenv("PGD_CUDA_DECODE_WARPS");
    unsetenv("PGD_CUDA_DECODE_ATTN");
    free(big);
}

GPU_TEST(decode_kernels_agree_and_simt_still_matches_cpu)
{
    /* PGD_CUDA_DECODE_ATTN=simt: the lane-a-key kernel for every decode row (head_dim 256 and
     * groups past 8 only it / only the tensor cores take); then the two decode kernels against
     * each other on a batch both serve. */
    setenv("PGD_CUDA_DECODE_ATTN", "simt", 1);
    struct attn_case cs[] = {
        { "simt decode, group 4", 32, 8, 128, 16, 0, 5, { 0, 700, 3000, 63, 5000 },
          { 1, 1, 1, 1, 1 }, 2 },
        { "simt decode, D 256", 4, 2, 256, 16, 0, 3, { 0, 90, 1500 }, { 1, 1, 1 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int f8 = 0; f8 < 2; f8++)
            check_path_kv(&cs[i], PGD_CUDA_ATTN_AUTO, 2400 + 4 * i + 2 * f8, f8);
    struct attn_case *c = decode_case("both decode kernels", 32, 8, 128, 16, 0, 40, 2000, 2);
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make(&b, DTS[di], c);
        setenv("PGD_CUDA_DECODE_ATTN", "simt", 1);
        float *simt = batch_run(&b, PGD_CUDA_ATTN_AUTO, 2500 + 2 * di, 0, 0, NULL);
        setenv("PGD_CUDA_DECODE_ATTN", "1", 1);
        float *tc = batch_run(&b, PGD_CUDA_ATTN_AUTO, 2501 + 2 * di, 0, 0, NULL);
        struct tol a = tol_mma(DTS[di]), f = tol_fma(DTS[di]);
        expect_close(&b, "tensor-core decode kernel vs SIMT decode kernel", tc, simt,
                     (struct tol){ a.rtol + f.rtol, a.atol + f.atol });
        free(simt);
        free(tc);
        batch_free(&b);
    }
    unsetenv("PGD_CUDA_DECODE_ATTN");
    free(c);
}

/* ---- the tensor-core decode kernel's block shapes ------------------------------------------
 * A block of 4 warps takes 1, 2 or 4 (row, KV head) pairs (PGD_CUDA_DECODE_WARPS=4 / 2 / 1
 * forces 4, 2 or 1 warps a pair; by default attention_decode_plan.cu's cost model picks),
 * each warp with two or three K/V tiles in flight (PGD_CUDA_DECODE_STAGES=2 / 3 forces them).
 * Every shape and stage count against the CPU on the contexts at the edges of its tiles (1,
 * 15, 16, 17, 64, 128, 200, 1000 keys) in ragged batches, batches whose pair count leaves
 * idle warps in the last block, groups 1, 4, 8 and 12 (rows 8..15 of the tile in use), a
 * window on block size 8, e4m3 caches, and 32k keys split along the context (one warp a
 * pair writing its split's partials from its registers). */
static const char *const PAIR_WARPS[3] = { "4", "2", "1" };
static const char *const STAGES[2] = { "2", "3" };  /* K/V tiles a warp (PGD_CUDA_DECODE_STAGES) */

static struct attn_case *ctx_case(const char *name, int H, int KV, int D, int bs, int window,
                                  const int *ctx, int n)
{
    struct attn_case *c = calloc(1, sizeof *c);
    cr_assert(c && n >= 1 && n <= MAXS);
    *c = (struct attn_case){ name, H, KV, D, bs, window, n, { 0 }, { 0 }, 2 };
    for (int s = 0; s < n; s++) {
        c->cached[s] = ctx[s] - 1;
        c->n_new[s] = 1;
    }
    return c;
}

GPU_TEST(decode_kernel_pair_shapes_forced)
{
    static const int edges[8] = { 1, 15, 16, 17, 64, 128, 200, 1000 };
    static const int three[3] = { 17, 1, 130 };
    struct attn_case *cs[] = {
        ctx_case("pair shapes, contexts at the tile edges", 32, 8, 128, 16, 0, edges, 8),
        ctx_case("pair shapes, MHA D 64", 8, 8, 64, 16, 0, edges, 8),
        ctx_case("pair shapes, group 8 D 64 block 32", 16, 2, 64, 32, 0, edges, 8),
        ctx_case("pair shapes, group 12", 24, 2, 128, 16, 0, edges, 8),
        ctx_case("pair shapes, 3 pairs: idle warps", 4, 1, 128, 16, 0, three, 3),
        ctx_case("pair shapes, block 8, window 100", 8, 2, 128, 8, 100, edges, 8),
        decode_case("pair shapes, b37 ragged", 32, 8, 128, 16, 0, 37, 300, 1),
        decode_case("pair shapes, b512 ragged up to 200", 8, 2, 128, 16, 0, 512, 200, 1),
    };
    for (int st = 0; st < 2; st++)
        for (int w = 0; w < 3; w++) {
            setenv("PGD_CUDA_DECODE_STAGES", STAGES[st], 1);
            setenv("PGD_CUDA_DECODE_WARPS", PAIR_WARPS[w], 1);
            check_decode_cases((const struct attn_case *const *)cs, sizeof cs / sizeof cs[0],
                               2600 + 40 * (3 * st + w));
        }
    unsetenv("PGD_CUDA_DECODE_STAGES");
    unsetenv("PGD_CUDA_DECODE_WARPS");
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        free(cs[i]);
}

GPU_TEST(decode_kernel_pair_shapes_split_long_contexts)
{
    /* One row of 32,768 keys (and one of 32,768 beside one of 5): few blocks in every
     * shape, so each splits; the partials of one warp a pair come from its registers. */
    static const int one[1] = { 32768 }, two[2] = { 32768, 5 };
    struct attn_case *cs[] = {
        ctx_case("pair shapes, b1 ctx 32768", 8, 2, 128, 16, 0, one, 1),
        ctx_case("pair shapes, b2 ctx 32768 + 5, group 8 D 64", 16, 2, 64, 16, 0, two, 2),
    };
    uint64_t step = 2800;
    for (int st = 0; st < 2; st++)
        for (int w = 0; w < 3; w++) {
            setenv("PGD_CUDA_DECODE_STAGES", STAGES[st], 1);
            setenv("PGD_CUDA_DECODE_WARPS", PAIR_WARPS[w], 1);
            for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
                for (int f8 = 0; f8 < 2; f8++, step += 2) {
                    size_t sb = check_path_kv(cs[i], PGD_CUDA_ATTN_AUTO, step, f8);
                    cr_assert_gt(sb, 0, "%s, %s warps a pair, %s stages: the long row should "
                                 "have been split", cs[i]->name, PAIR_WARPS[w], STAGES[st]);
                }
        }
    unsetenv("PGD_CUDA_DECODE_STAGES");
    unsetenv("PGD_CUDA_DECODE_WARPS");
    /* The merge of before (one thread a dim, split after split) still serves. */
    setenv("PGD_CUDA_DECODE_MERGE", "serial", 1);
    check_path_kv(cs[0], PGD_CUDA_ATTN_AUTO, step, false);
    unsetenv("PGD_CUDA_DECODE_MERGE");
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        free(cs[i]);
}

GPU_TEST(decode_kernel_three_stages_same_bits)
{
    /* Where the plan splits with neither stage count (b256, one warp a pair: 512 blocks,
     * past a wave of both), three K/V tiles a warp give the same bits as two: the tiles go
     * to the same warps in the same order. (Both against the CPU: the pair shapes above.) */
    struct attn_case *wide = decode_case("3 stages, b256 up to 128", 32, 8, 128, 16, 0, 256,
                                         127, 1);
    setenv("PGD_CUDA_DECODE_WARPS", "1", 1);
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, wide);
    size_t sb3 = 0, sb2 = 0;
    setenv("PGD_CUDA_DECODE_STAGES", "3", 1);
    float *r3 = batch_run(&b, PGD_CUDA_ATTN_AUTO, 3250, 0, 0, &sb3);
    setenv("PGD_CUDA_DECODE_STAGES", "2", 1);
    float *r2 = batch_run(&b, PGD_CUDA_ATTN_AUTO, 3251, 0, 0, &sb2);
    unsetenv("PGD_CUDA_DECODE_STAGES");
    unsetenv("PGD_CUDA_DECODE_WARPS");
    cr_assert(sb3 == 0 && sb2 == 0, "b256 x 8 KV heads, one warp a pair: no splits expected "
              "(scratch %zu / %zu bytes)", sb3, sb2);
    const size_t n = (size_t)b.n * wide->H * wide->D;
    cr_assert(memcmp(r3, r2, n * sizeof *r3) == 0, "three stages changed the output");
    free(r3);
    free(r2);
    batch_free(&b);
    free(wide);
}

GPU_TEST(decode_kernel_default_shapes_match_cpu_and_repeat)
{
    /* The cost model's choices for many short rows (Llama-3-8B heads: b256 up to 128 keys
     * and b128 up to 256 take several pairs a block on an H200) against the CPU; a second
     * run of the same batch gives the same bits (the shape depends on the shapes only). */
    struct attn_case *cs[] = {
        decode_case("default shape, b256 up to 128", 32, 8, 128, 16, 0, 256, 127, 1),
        decode_case("default shape, b128 up to 256", 32, 8, 128, 16, 0, 128, 255, 1),
    };
    unsetenv("PGD_CUDA_DECODE_WARPS");
    check_decode_cases((const struct attn_case *const *)cs, sizeof cs / sizeof cs[0], 2900);
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, cs[0]);
    float *r1 = batch_run(&b, PGD_CUDA_ATTN_AUTO, 2950, 0, 0, NULL);
    float *r2 = batch_run(&b, PGD_CUDA_ATTN_AUTO, 2951, 0, 0, NULL);
    size_t n = (size_t)b.n * cs[0]->H * cs[0]->D;
    cr_assert(memcmp(r1, r2, n * sizeof *r1) == 0, "two runs of one decode batch differ");
    free(r1);
    free(r2);
    batch_free(&b);
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        free(cs[i]);
}

GPU_TEST(decode_kernel_early_prologue_gives_the_same_bits)
{
    /* The early prologue (the default; PGD_CUDA_ATTN_EARLY=0 turns it off) moves the
     * tensor-core decode kernel's item, table and position loads before its wait on the
     * kernel before it: the same math, so the same bits, in
     * every block shape, split or not, with graph items; and the CPU's values. (That the
     * loads it moves are never an earlier kernel's output is the model tests' part: they
     * run the forward pass with it, rotary + K/V write right before.) */
    struct attn_case *cs[] = {
        decode_case("early, b256 up to 128", 32, 8, 128, 16, 0, 256, 127, 1),
        decode_case("early, b6 up to 5000 (splits)", 32, 8, 128, 16, 0, 6, 5000, 2),
        decode_case("early, MQA 16/1 b33", 16, 1, 64, 32, 0, 33, 700, 2),
    };
    static const char *const WARPS[4] = { NULL, "4", "2", "1" };
    uint64_t step = 3200;
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int w = 0; w < 4; w++)
            for (int items = 0; items < 2; items++) {
                if (WARPS[w])
                    setenv("PGD_CUDA_DECODE_WARPS", WARPS[w], 1);
                else
                    unsetenv("PGD_CUDA_DECODE_WARPS");
                struct batch b;
                batch_make(&b, PGD_DTYPE_BF16, cs[i]);
                setenv("PGD_CUDA_ATTN_EARLY", "0", 1);
                float *plain = batch_run(&b, PGD_CUDA_ATTN_AUTO, step++, items, 0, NULL);
                unsetenv("PGD_CUDA_ATTN_EARLY");
                float *early = batch_run(&b, PGD_CUDA_ATTN_AUTO, step++, items, 0, NULL);
                size_t n = (size_t)b.n * cs[i]->H * cs[i]->D;
                cr_assert(memcmp(plain, early, n * sizeof *plain) == 0, "%s, %s warps a pair, "
                          "%s: the early prologue changed the output", cs[i]->name,
                          WARPS[w] ? WARPS[w] : "default", items ? "graph items" : "planned");
                float *want = batch_cpu(&b);
                expect_close(&b, "decode kernel, early prologue, vs CPU", early, want,
                             tol_mma(PGD_DTYPE_BF16));
                free(want);
                free(plain);
                free(early);
                batch_free(&b);
            }
    unsetenv("PGD_CUDA_DECODE_WARPS");
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        free(cs[i]);
}

GPU_TEST(fp8_kv_graph_decode_items)
{
    struct attn_case c = { "fp8 graph decode", 32, 8, 128, 16, 0, 5, { 5, 1000, 4000, 17, 0 },
                           { 1, 1, 1, 1, 1 }, 2 };
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make_kv(&b, DTS[di], &c, true);
        float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, 1300 + di, 1, 4096, NULL);
        float *want = batch_cpu(&b);
        expect_close(&b, "decode items on an e4m3 cache vs CPU", got, want, tol_mma(DTS[di]));
        free(got);
        free(want);
        batch_free(&b);
    }
}

GPU_TEST(fp8_kv_write_saturates_like_the_cpu)
{
    /* New K/V up to +-16 over scales 0.0125 / 0.02: beyond 448 * scale they saturate; the
     * GPU's bytes equal the CPU's (checked in batch_make_kv), and some do saturate. */
    struct attn_case c = { "fp8 saturation", 4, 2, 64, 16, 0, 1, { 0 }, { 64 }, 1 };
    struct batch b;
    batch_make_kv(&b, PGD_DTYPE_BF16, &c, false);
    for (size_t i = 0; i < (size_t)b.n * b.width; i++) {
        b.k[i] *= 16;
        b.v[i] *= 16;
    }
    /* Rewrite the step's K/V into a fresh fp8 batch with the scaled values. */
    struct batch f;
    batch_make_kv(&f, PGD_DTYPE_BF16, &c, true);
    char err[512] = "";
    upload_into(f.dk, b.k, (size_t)f.n * f.width, f.dt);
    upload_into(f.dv, b.v, (size_t)f.n * f.width, f.dt);
    memcpy(f.k, b.k, (size_t)f.n * f.width * sizeof *f.k);
    memcpy(f.v, b.v, (size_t)f.n * f.width * sizeof *f.v);
    CHECK_RC(pgd_cuda_kv_write(ctx, f.dt, f.dkc, f.dvc, f.dk, f.dv, f.dslot, f.n, (int)f.width,
                               &f.sc, err, sizeof err));
    struct pgd_cpu_kv_layer cl = batch_cpu_kv(&f);
    pgd_cpu_kv_write(&cl, f.k, f.v, f.slot, f.n);
    size_t bytes = f.slots * f.width, saturated = 0;
    uint8_t *got = malloc(bytes + 4);
    CHECK_RC(pgd_cuda_sync(ctx, err, sizeof err));
    CHECK_RC(pgd_cuda_memcpy_d2h(got, f.dkc, bytes, err, sizeof err));
    for (size_t i = 0; i < bytes; i++) {
        cr_assert_eq(got[i], f.k8[i], "saturating K write: byte %zu is 0x%02x, the CPU's 0x%02x",
                     i, got[i], f.k8[i]);
        saturated += (got[i] & 0x7f) == 0x7e;
    }
    cr_assert_gt(saturated, 0, "values beyond 448 * k_scale should have saturated");
    free(got);
    batch_free(&f);
    batch_free(&b);
}

/* ---- the prefill shape (128 query rows over 8 warps, PGD_CUDA_ATTN_PREFILL) -------------------- */
static size_t check_prefill(const struct attn_case *c, uint64_t step_id)
{
    return check_path(c, PGD_CUDA_ATTN_PREFILL, step_id);
}

GPU_TEST(prefill_shape_prompt_lengths_in_one_call)
{
    /* Fresh prompts of 1 .. 1000 tokens side by side (group 4: 32 tokens an item), odd ones
     * and the 16-row warp, 128-row block and 64-key tile edges among them. */
    struct attn_case c = { "prefill prompts", 8, 2, 128, 16, 0, 10, { 0 },
                           { 1, 2, 17, 31, 32, 33, 127, 129, 1000, 257 }, 2 };
    check_prefill(&c, 2000);
    c.name = "prefill prompts, peaked softmax";
    c.qamp = 8;
    c.n_new[8] = 300;
    check_prefill(&c, 2010);
}

GPU_TEST(prefill_shape_groups_head_dims_block_sizes_and_tile_edges)
{
    /* Query lengths at the 128-row edges (MHA: 128 tokens an item; group 4: 32; group 8:
     * 16), fresh and after cached prefixes, some of them on 64-key tile edges. */
    static const int cached[8] = { 0, 37, 0, 64, 5, 0, 100, 0 };
    static const int n_new[8] = { 1, 31, 32, 33, 127, 128, 129, 300 };
    static const int groups[3] = { 1, 4, 8 }, dims[2] = { 64, 128 }, bss[2] = { 16, 32 };
    uint64_t step = 2100;
    for (int gi = 0; gi < 3; gi++)
        for (int di = 0; di < 2; di++)
            for (int bi = 0; bi < 2; bi++) {
                char name[96];
                snprintf(name, sizeof name, "prefill shape edges, group %d", groups[gi]);
                struct attn_case c = { name, 2 * groups[gi], 2, dims[di], bss[bi], 0, 8,
                                       { 0 }, { 0 }, gi == 1 ? 4 : 1 };
                memcpy(c.cached, cached, sizeof cached);
                memcpy(c.n_new, n_new, sizeof n_new);
                check_prefill(&c, step);
                step += 2;
            }
}

GPU_TEST(prefill_shape_odd_long_prompt)
{
    /* 2049 tokens: 65 items of 32 tokens, the last of one, 33 key tiles. */
    struct attn_case c = { "prefill 2049", 4, 1, 64, 16, 0, 1, { 0 }, { 2049 }, 2 };
    check_prefill(&c, 2200);
}

GPU_TEST(prefill_shape_chunks_after_cached_prefixes_split)
{
    /* Chunks of chunked prefill after cached prefixes, with decode rows: few blocks, so
     * the rows split along the context too (partials merged by pgd__attn_combine). */
    struct attn_case c = { "prefill chunks after prefixes", 8, 2, 64, 16, 0, 4,
                           { 3000, 700, 2500, 7 }, { 100, 33, 1, 1 }, 2 };
    size_t sb = check_prefill(&c, 2300);
    cr_assert_gt(sb, 0, "the chunks should have been split along the context");
    struct attn_case d = { "prefill chunk of 8B heads after a prefix", 32, 8, 128, 16, 0, 2,
                           { 1000, 40 }, { 64, 1 }, 1 };
    check_prefill(&d, 2310);
}

GPU_TEST(prefill_shape_sliding_window_and_mixed_batches)
{
    struct attn_case cs[] = {
        { "prefill window 32", 8, 2, 128, 16, 32, 4, { 0, 90, 300, 1000 }, { 180, 20, 1, 70 }, 2 },
        { "prefill window 100", 16, 2, 64, 32, 100, 4, { 0, 90, 3000, 150 }, { 330, 17, 1, 65 }, 1 },
        { "prefill mixed, group 4", 32, 8, 128, 16, 0, 6, { 0, 200, 50, 1000, 17, 0 },
          { 100, 37, 1, 1, 1, 33 }, 1 },
        { "prefill mixed, MQA 16/1", 16, 1, 128, 32, 0, 4, { 0, 513, 20, 2000 }, { 70, 1, 9, 1 }, 3 },
        { "prefill mixed, MHA", 4, 4, 64, 16, 0, 3, { 10, 0, 700 }, { 129, 1, 1 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_prefill(&cs[i], 2400 + 2 * i);
}

GPU_TEST(prefill_shape_8192_tokens_agrees_with_fma_kernel)
{
    /* Llama-3-8B heads, one 8192-token prompt: the CPU would take long, so the FMA kernel
     * is the reference (within the sum of both bounds), and the 64-row shape too. */
    struct attn_case c = { "prefill 8192", 32, 8, 128, 16, 0, 1, { 0 }, { 8192 }, 2 };
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, &c);
    float *pre = batch_run(&b, PGD_CUDA_ATTN_PREFILL, 2500, 0, 0, NULL);
    float *fma = batch_run(&b, PGD_CUDA_ATTN_FMA, 2501, 0, 0, NULL);
    float *mma = batch_run(&b, PGD_CUDA_ATTN_MMA, 2502, 0, 0, NULL);
    struct tol a = tol_mma(PGD_DTYPE_BF16), f = tol_fma(PGD_DTYPE_BF16);
    expect_close(&b, "128-row tensor cores vs FMA kernel", pre, fma,
                 (struct tol){ a.rtol + f.rtol, a.atol + f.atol });
    expect_close(&b, "128-row vs 64-row tensor cores", pre, mma,
                 (struct tol){ 2 * a.rtol, 2 * a.atol });
    free(pre);
    free(fma);
    free(mma);
    batch_free(&b);
}

/* A prompt whose 128-row blocks just fill the SMs (n tokens after 2000 cached, 8B heads):
 * the default dispatch should take the prefill shape, which (blocks < 2 SMs, its items
 * about as long) splits the context, where the 64-row shape (twice the blocks) does not. */
static void check_default_prefill(bool expect_prefill)
{
    int sm = pgd_cuda_sm_count(ctx);
    struct attn_case c = { "default prefill shape", 32, 8, 128, 16, 0, 1, { 2000 },
                           { 32 * ((sm + 7) / 8) }, 1 };
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, &c);
    size_t sb_auto = 0, sb_pre = 0, sb_mma = 0;
    float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, 2600, 0, 0, &sb_auto);
    float *pre = batch_run(&b, PGD_CUDA_ATTN_PREFILL, 2601, 0, 0, &sb_pre);
    float *mma = batch_run(&b, PGD_CUDA_ATTN_MMA, 2602, 0, 0, &sb_mma);
    cr_assert_gt(sb_pre, 0, "%d tokens in 128-row blocks on %d SMs should split", b.n, sm);
    cr_assert_eq(sb_mma, 0, "%d tokens in 64-row blocks on %d SMs should not split", b.n, sm);
    size_t n = (size_t)b.n * c.H * c.D;
    if (expect_prefill) {
        cr_assert_eq(sb_auto, sb_pre, "default: %zu bytes of scratch, the prefill shape %zu",
                     sb_auto, sb_pre);
        cr_assert_arr_eq(got, pre, n * sizeof *got, "the default should run the prefill shape");
    } else {
        cr_assert_eq(sb_auto, sb_mma, "PGD_CUDA_PREFILL_ATTN=0: %zu bytes of scratch, the "
                     "64-row shape %zu", sb_auto, sb_mma);
        cr_assert_arr_eq(got, mma, n * sizeof *got, "PGD_CUDA_PREFILL_ATTN=0 should run the "
                         "64-row shape");
    }
    struct tol a = tol_mma(PGD_DTYPE_BF16);
    expect_close(&b, "prefill shape vs 64-row shape", pre, mma,
                 (struct tol){ 2 * a.rtol, 2 * a.atol });
    free(got);
    free(pre);
    free(mma);
    batch_free(&b);
}

GPU_TEST(default_dispatch_takes_prefill_shape_for_long_prompts)
{
    unsetenv("PGD_CUDA_ATTN");
    unsetenv("PGD_CUDA_PREFILL_ATTN");
    check_default_prefill(true);
}

GPU_TEST(env_switch_turns_prefill_shape_off)
{
    unsetenv("PGD_CUDA_ATTN");
    setenv("PGD_CUDA_PREFILL_ATTN", "0", 1);
    check_default_prefill(false);
}

GPU_TEST(prefill_of_a_wave_of_blocks_splits_only_items_alike)
{
    /* 8B heads, 128-row blocks: a prompt of ceil(SMs / 8) items a KV head makes one to two
     * waves of blocks. From its first token its items' lengths run from 32 keys to all: not
     * split (the longest go first, the short ones fill the tail). The same after 2000
     * cached tokens, its items about as long, splits (check_default_prefill). */
    int sm = pgd_cuda_sm_count(ctx);
    struct attn_case c = { "prompt of a wave of blocks", 32, 8, 128, 16, 0, 1, { 0 },
                           { 32 * ((sm + 7) / 8) }, 2 };
    unsetenv("PGD_CUDA_ATTN_WAVE_SPLITS");
    size_t sb = check_path(&c, PGD_CUDA_ATTN_PREFILL, 2700);
    cr_assert_eq(sb, 0, "%d tokens from the first on %d SMs: %zu bytes of split scratch, "
                 "should be none", c.n_new[0], sm, sb);
    /* PGD_CUDA_ATTN_WAVE_SPLITS=0, the rule before: split (the merge of 32-token items, a
     * warp a token, against the CPU). */
    setenv("PGD_CUDA_ATTN_WAVE_SPLITS", "0", 1);
    sb = check_path(&c, PGD_CUDA_ATTN_PREFILL, 2702);
    unsetenv("PGD_CUDA_ATTN_WAVE_SPLITS");
    cr_assert_gt(sb, 0, "PGD_CUDA_ATTN_WAVE_SPLITS=0: %d tokens on %d SMs should split",
                 c.n_new[0], sm);
}

GPU_TEST(default_dispatch_short_prompts_in_small_blocks)
{
    /* Prompts too short to split along the context and too few for 64-row blocks to fill
     * the SMs: the default takes 32- or 16-row blocks whose warps split each key tile (2 or
     * 4 ways, merged at the end). */
    struct attn_case cs[] = {
        { "short prompt, 8B heads", 32, 8, 128, 16, 0, 1, { 0 }, { 128 }, 2 },
        { "short prompts", 32, 8, 128, 16, 0, 3, { 0, 0, 100 }, { 40, 7, 61 }, 4 },
        { "short prompts, D 64 group 8", 16, 2, 64, 32, 0, 2, { 0, 33 }, { 97, 5 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path(&cs[i], PGD_CUDA_ATTN_AUTO, 2800 + 2 * i);
}

GPU_TEST(fp8_kv_prefill_shape_matches_cpu)
{
    struct attn_case cs[] = {
        { "fp8 prefill prompts", 8, 2, 128, 16, 0, 6, { 0 }, { 1, 31, 33, 129, 300, 2 }, 2 },
        { "fp8 prefill edges, D 64", 8, 2, 64, 32, 0, 8, { 0, 37, 0, 64, 5, 0, 100, 0 },
          { 1, 31, 32, 33, 127, 128, 129, 300 }, 4 },
        { "fp8 prefill chunks after prefixes", 8, 2, 64, 16, 0, 4, { 3000, 700, 2500, 7 },
          { 100, 33, 1, 1 }, 2 },
        { "fp8 prefill window 32", 8, 2, 128, 16, 32, 4, { 0, 90, 300, 1000 },
          { 180, 20, 1, 70 }, 2 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path_kv(&cs[i], PGD_CUDA_ATTN_PREFILL, 2700 + 2 * i, true);
    struct attn_case s = { "fp8 short prompts, default", 32, 8, 128, 16, 0, 2, { 0, 0 },
                           { 128, 33 }, 2 };
    check_path_kv(&s, PGD_CUDA_ATTN_AUTO, 2790, true);
}

/* ---- the Hopper prefill kernel (attention_wgmma.cu, PGD_CUDA_ATTN_PREFILL_WGMMA) ------------- */
/* Skips the test where the wgmma kernel cannot run (no sm_90 device, or no 90 in the build). */
static void need_wgmma(void)
{
    if (!pgd_cuda_attention_wgmma_available(ctx, PGD_DTYPE_BF16, 128, 0))
        cr_skip_test("the wgmma prefill kernel needs a compute capability 9.0 device and a "
                     "build with 90 among its CUDA architectures");
}

static size_t check_wgmma(const struct attn_case *c, uint64_t step_id)
{
    return check_path(c, PGD_CUDA_ATTN_PREFILL_WGMMA, step_id);
}

GPU_TEST(wgmma_prompt_lengths_fresh_and_after_prefixes)
{
    /* Prompts of 1 .. 2048 tokens in one call (group 4: 32 tokens an item; 128-key tiles:
     * 127 / 128 / 129 at their edges), fresh, then each after a cached prefix (chunked
     * prefill: the queries start at an offset), at head dims 128 and 64. */
    need_wgmma();
    static const int lens[8] = { 1, 17, 64, 127, 128, 129, 1000, 2048 };
    static const int prefix[8] = { 3, 200, 64, 1, 128, 77, 500, 30 };
    static const int dims[2] = { 128, 64 };
    uint64_t step = 3000;
    for (int di = 0; di < 2; di++)
        for (int pre = 0; pre < 2; pre++) {
            struct attn_case c = { pre ? "wgmma prompts after prefixes" : "wgmma prompts", 4, 1,
                                   dims[di], 16, 0, 8, { 0 }, { 0 }, 2 };
            memcpy(c.n_new, lens, sizeof lens);
            if (pre)
                memcpy(c.cached, prefix, sizeof prefix);
            check_wgmma(&c, step);
            step += 2;
        }
}

GPU_TEST(wgmma_groups_head_dims_block_sizes_and_tile_edges)
{
    /* GQA groups 1 / 4 / 8 (128 / 32 / 16 tokens an item), head dims 64 / 128, block sizes
     * 16 / 32, query lengths at the item and 128-key tile edges, fresh and after prefixes. */
    static const int cached[8] = { 0, 37, 0, 64, 5, 0, 100, 0 };
    static const int n_new[8] = { 1, 17, 64, 127, 128, 129, 300, 33 };
    static const int groups[3] = { 1, 4, 8 }, dims[2] = { 64, 128 }, bss[2] = { 16, 32 };
    need_wgmma();
    uint64_t step = 3100;
    for (int gi = 0; gi < 3; gi++)
        for (int di = 0; di < 2; di++)
            for (int bi = 0; bi < 2; bi++) {
                char name[96];
                snprintf(name, sizeof name, "wgmma edges, group %d", groups[gi]);
                struct attn_case c = { name, 2 * groups[gi], 2, dims[di], bss[bi], 0, 8,
                                       { 0 }, { 0 }, gi == 1 ? 4 : 1 };
                memcpy(c.cached, cached, sizeof cached);
                memcpy(c.n_new, n_new, sizeof n_new);
                check_wgmma(&c, step);
                step += 2;
            }
}

GPU_TEST(wgmma_chunks_after_prefixes_split_windows_and_mixed_batches)
{
    need_wgmma();
    /* Few blocks: the rows split along the context (partials merged by pgd__attn_combine). */
    struct attn_case sp = { "wgmma chunks after prefixes", 8, 2, 64, 16, 0, 4,
                            { 3000, 700, 2500, 7 }, { 100, 33, 1, 1 }, 2 };
    size_t sb = check_wgmma(&sp, 3200);
    cr_assert_gt(sb, 0, "the chunks should have been split along the context");
    struct attn_case cs[] = {
        { "wgmma chunk of 8B heads after a prefix", 32, 8, 128, 16, 0, 2, { 1000, 40 },
          { 64, 1 }, 1 },
        { "wgmma window 32", 8, 2, 128, 16, 32, 4, { 0, 90, 300, 1000 }, { 180, 20, 1, 70 }, 2 },
        { "wgmma window 100", 16, 2, 64, 32, 100, 4, { 0, 90, 3000, 150 }, { 330, 17, 1, 65 }, 1 },
        { "wgmma mixed, group 4", 32, 8, 128, 16, 0, 6, { 0, 200, 50, 1000, 17, 0 },
          { 100, 37, 1, 1, 1, 33 }, 1 },
        { "wgmma mixed, MQA 16/1", 16, 1, 128, 32, 0, 4, { 0, 513, 20, 2000 }, { 70, 1, 9, 1 }, 3 },
        { "wgmma mixed, MHA", 4, 4, 64, 16, 0, 3, { 10, 0, 700 }, { 129, 1, 1 }, 1 },
        { "wgmma peaked softmax", 8, 2, 128, 16, 0, 3, { 0, 0, 50 }, { 300, 129, 200 }, 8 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_wgmma(&cs[i], 3210 + 2 * i);
}

GPU_TEST(wgmma_serial_variant_matches_cpu)
{
    /* PGD_CUDA_PREFILL_ATTN=wgmma-serial: the variant without the intra-warpgroup pipeline
     * (read once a process; Criterion runs each test in a fresh one). */
    need_wgmma();
    setenv("PGD_CUDA_PREFILL_ATTN", "wgmma-serial", 1);
    struct attn_case cs[] = {
        { "wgmma serial prompts", 4, 1, 128, 16, 0, 8, { 0, 0, 0, 0, 128, 0, 30, 0 },
          { 1, 17, 64, 127, 128, 129, 1000, 300 }, 2 },
        { "wgmma serial, group 8 D 64", 16, 2, 64, 32, 0, 4, { 0, 37, 3000, 0 },
          { 129, 33, 1, 200 }, 1 },
        { "wgmma serial, MHA window", 4, 4, 128, 16, 64, 3, { 0, 90, 10 }, { 300, 20, 129 }, 2 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_wgmma(&cs[i], 3250 + 2 * i);
    unsetenv("PGD_CUDA_PREFILL_ATTN");
}

GPU_TEST(wgmma_and_mma_prefill_agree_at_8192_tokens)
{
    /* Llama-3-8B heads, one 8192-token prompt: the mma.sync 128-row kernel is the reference
     * (the CPU would take long), within the sum of both bounds; both dtypes. */
    need_wgmma();
    struct attn_case c = { "wgmma prefill 8192", 32, 8, 128, 16, 0, 1, { 0 }, { 8192 }, 2 };
    for (int di = 0; di < 2; di++) {
        struct batch b;
        batch_make(&b, DTS[di], &c);
        float *wg = batch_run(&b, PGD_CUDA_ATTN_PREFILL_WGMMA, 3300 + 2 * di, 0, 0, NULL);
        float *mma = batch_run(&b, PGD_CUDA_ATTN_PREFILL_MMA, 3301 + 2 * di, 0, 0, NULL);
        struct tol a = tol_mma(DTS[di]);
        expect_close(&b, "wgmma vs mma.sync, 128-row blocks", wg, mma,
                     (struct tol){ 2 * a.rtol, 2 * a.atol });
        free(wg);
        free(mma);
        batch_free(&b);
    }
}

GPU_TEST(mma_prefill_shape_still_matches_cpu)
{
    /* The 8-warp mma.sync kernel forced (_PREFILL_MMA; on an sm_90 device _PREFILL runs the
     * wgmma one), on every device. */
    struct attn_case cs[] = {
        { "mma prefill prompts", 4, 1, 128, 16, 0, 6, { 0, 0, 0, 0, 64, 0 },
          { 1, 17, 127, 129, 1000, 300 }, 2 },
        { "mma prefill, MHA D 64", 4, 4, 64, 32, 0, 3, { 10, 0, 700 }, { 129, 1, 65 }, 1 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path(&cs[i], PGD_CUDA_ATTN_PREFILL_MMA, 3400 + 2 * i);
}

/* A prompt whose 128-row blocks fill the SMs (8B heads): the default dispatch gives the same
 * bits as the prefill kernel `expect` forced. */
static void check_default_prefill_kernel(int expect)
{
    int sm = pgd_cuda_sm_count(ctx);
    struct attn_case c = { "default prefill kernel", 32, 8, 128, 16, 0, 1, { 100 },
                           { 32 * ((sm + 7) / 8) + 50 }, 1 };
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, &c);
    float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, 3500, 0, 0, NULL);
    float *pre = batch_run(&b, PGD_CUDA_ATTN_PREFILL, 3501, 0, 0, NULL);
    float *want = batch_run(&b, expect, 3502, 0, 0, NULL);
    float *cpu = batch_cpu(&b);
    size_t n = (size_t)b.n * c.H * c.D;
    const char *name = expect == PGD_CUDA_ATTN_PREFILL_WGMMA ? "wgmma" : "mma.sync";
    cr_assert_arr_eq(got, want, n * sizeof *got, "the default should run the %s kernel", name);
    cr_assert_arr_eq(pre, want, n * sizeof *got, "_PREFILL should run the %s kernel", name);
    expect_close(&b, "default prefill vs CPU", got, cpu, tol_mma(PGD_DTYPE_BF16));
    free(got);
    free(pre);
    free(want);
    free(cpu);
    batch_free(&b);
}

GPU_TEST(default_prefill_is_wgmma_on_sm90)
{
    need_wgmma();
    unsetenv("PGD_CUDA_ATTN");
    unsetenv("PGD_CUDA_PREFILL_ATTN");
    check_default_prefill_kernel(PGD_CUDA_ATTN_PREFILL_WGMMA);
}

GPU_TEST(default_short_prompts_take_wgmma_on_sm90)
{
    /* Prompts too few for 128-row blocks to fill the SMs, contexts under 512 keys: on sm_90
     * the default still takes the wgmma kernel's 128-row blocks (same bits as forcing it). */
    need_wgmma();
    unsetenv("PGD_CUDA_ATTN");
    unsetenv("PGD_CUDA_PREFILL_ATTN");
    struct attn_case c = { "short prompts, default wgmma", 32, 8, 128, 16, 0, 2, { 0, 100 },
                           { 128, 61 }, 2 };
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, &c);
    float *got = batch_run(&b, PGD_CUDA_ATTN_AUTO, 3520, 0, 0, NULL);
    float *want = batch_run(&b, PGD_CUDA_ATTN_PREFILL_WGMMA, 3521, 0, 0, NULL);
    float *cpu = batch_cpu(&b);
    size_t n = (size_t)b.n * c.H * c.D;
    cr_assert_arr_eq(got, want, n * sizeof *got, "the default should run the wgmma kernel");
    expect_close(&b, "default short prompts vs CPU", got, cpu, tol_mma(PGD_DTYPE_BF16));
    free(got);
    free(want);
    free(cpu);
    batch_free(&b);
}

GPU_TEST(env_switch_keeps_prefill_on_mma)
{
    unsetenv("PGD_CUDA_ATTN");
    setenv("PGD_CUDA_PREFILL_ATTN", "mma", 1);
    check_default_prefill_kernel(PGD_CUDA_ATTN_PREFILL_MMA);
}

GPU_TEST(wgmma_fp8_cache_matches_cpu)
{
    /* An e4m3 cache through the wgmma kernel (its serial variant, converting each tile from a
     * staging buffer): prompts, edges at head_dim 64, splits after prefixes, a window. */
    need_wgmma();
    struct attn_case cs[] = {
        { "wgmma fp8 prompts", 8, 2, 128, 16, 0, 6, { 0 }, { 1, 31, 129, 1000, 300, 2 }, 2 },
        { "wgmma fp8 edges, D 64", 8, 2, 64, 32, 0, 8, { 0, 37, 0, 64, 5, 0, 100, 0 },
          { 1, 31, 32, 33, 127, 128, 129, 300 }, 4 },
        { "wgmma fp8 chunks after prefixes", 8, 2, 64, 16, 0, 4, { 3000, 700, 2500, 7 },
          { 100, 33, 1, 1 }, 2 },
        { "wgmma fp8 window 32, group 8", 16, 2, 128, 16, 32, 4, { 0, 90, 300, 1000 },
          { 180, 20, 1, 70 }, 2 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_path_kv(&cs[i], PGD_CUDA_ATTN_PREFILL_WGMMA, 3600 + 2 * i, true);
}

GPU_TEST(wgmma_forced_fails_where_it_cannot_run)
{
    /* Other head dims and dtypes have no wgmma kernel; on a device without it (not sm_90, or
     * a build without 90) forcing it fails, naming it. */
    cr_assert_eq(pgd_cuda_attention_wgmma_available(ctx, PGD_DTYPE_BF16, 80, 0), 0);
    cr_assert_eq(pgd_cuda_attention_wgmma_available(ctx, PGD_DTYPE_F32, 128, 0), 0);
    if (pgd_cuda_attention_wgmma_available(ctx, PGD_DTYPE_BF16, 128, 0))
        return;
    struct attn_case c = { "wgmma forced elsewhere", 8, 2, 128, 16, 0, 1, { 0 }, { 40 }, 1 };
    struct batch b;
    batch_make(&b, PGD_DTYPE_BF16, &c);
    struct pgd_cuda_attn a = {
        .dtype = PGD_DTYPE_BF16, .q = b.dq, .out = b.dq, .k_cache = b.dkc, .v_cache = b.dvc,
        .block_size = c.bs, .p = { .n_heads = c.H, .n_kv_heads = c.KV, .head_dim = c.D,
                                   .scale = 0.1f, .sliding_window = 0 },
        .n_tokens = b.n, .n_seqs = c.n_seqs, .seq_lens = b.dlens, .block_tables = b.dtab,
        .max_blocks = b.max_blocks, .positions = b.dpos, .h_query_start = b.qs,
        .max_seq_len = b.max_len, .step_id = 3610, .path = PGD_CUDA_ATTN_PREFILL_WGMMA,
    };
    char err[512] = "";
    size_t sb = pgd_cuda_attention_scratch(ctx, &a);
    void *scratch = sb ? pgd_cuda_malloc(sb) : NULL;
    cr_assert_neq(pgd_cuda_attention(ctx, &a, scratch, err, sizeof err), 0);
    cr_assert(strstr(err, "wgmma"), "%s", err);
    pgd_cuda_free(scratch);
    batch_free(&b);
}

GPU_TEST(mma_refuses_what_it_has_no_kernel_for)
{
    char err[512] = "";
    int32_t qs[2] = { 0, 1 };
    struct pgd_cuda_attn a = { .dtype = PGD_DTYPE_BF16, .p = { 8, 1, 80, 0.1f, 0 },
                               .n_tokens = 1, .n_seqs = 1, .h_query_start = qs,
                               .max_seq_len = 1, .path = PGD_CUDA_ATTN_MMA };
    cr_assert_neq(pgd_cuda_attention(ctx, &a, NULL, err, sizeof err), 0);
    cr_assert(strstr(err, "head_dim 80"), "%s", err);
    cr_assert_eq(pgd_cuda_attention_scratch(ctx, &a), 0);
    a.path = PGD_CUDA_ATTN_PREFILL;
    err[0] = 0;
    cr_assert_neq(pgd_cuda_attention(ctx, &a, NULL, err, sizeof err), 0);
    cr_assert(strstr(err, "head_dim 80"), "%s", err);
}
#endif
