/* pagoda bench attention: pgd_cuda_attention alone on the Llama-3-8B attention shape (32
 * query heads over 8 KV heads, head_dim 128, KV blocks of 16 tokens, random data, the
 * sequences' blocks scattered over the pool): the prefill of one sequence, and decode
 * batches of 1 to 1024 rows at contexts of 64 to 4096 keys (and one row at 32,768), through
 * the FMA kernel, the tensor-core kernel in its 64-row shape (mma) and its 128-row prefill
 * shape (prefill: on an sm_90 device the wgmma kernel, elsewhere mma.sync; prefill-mma and
 * wgmma: attention_mma.cu's 8 warps / attention_wgmma.cu forced, by default only where the
 * wgmma kernel runs), each forced for every row, the SIMT decode kernel for every decode row
 * (simt: one lane a key, attention_decode.cu), the tensor-core decode kernel for every decode
 * row (decode: attention_decode_mma.cu) and the default dispatch (auto). Each is
 * timed over back-to-back calls on the host clock (the median of 3 runs of a count that takes
 * about 0.1 s), printed in microseconds a call, TFLOP/s (4 * q_len * kv_len * head_dim *
 * heads, halved for the causal prefill) and GB/s of K/V read (each needed K/V row once);
 * a prefill row ends with the best path's TFLOP/s as a share of the bf16 GEMM ceiling (the
 * compute bound).
 * --kv-cache-dtype fp8: the same cases over an e4m3 cache (kv_cache_dtype fp8; the bytes of
 * K/V, and the GB/s figures' numerators, halved). A decode row ends with its last path's
 * GB/s as a share of the copy bandwidth (its bound). The decode kernels read
 * PGD_CUDA_DECODE_WARPS (the tensor-core kernel's warps a (row, KV head) pair: 4, 2, 1),
 * PGD_CUDA_DECODE_STAGES (its K/V tiles a warp: 2, 3) and PGD_CUDA_DECODE_MERGE=serial from
 * the environment, for comparing shapes and split merges.
 * --mixed BxL+P[@C],...: instead of all that, mixed calls as a served step makes them: B
 * decode rows at context L beside one prompt chunk of P tokens after C cached ones (0), the
 * default dispatch timed on the decode rows alone, the chunk alone, and the two in one call
 * planned at the call's longest context (no host lengths), at each kernel's own rows', in
 * turn and overlapped on two streams (PGD_CUDA_ATTN_OVERLAP=1 and =gen), each beside its
 * bound: the K/V bytes over the copy bandwidth plus the chunk's FLOPs over the GEMM rate.
 * --prompts NxP[@C],...: instead of all that, prompt steps of N sequences of P new tokens
 * after C cached ones (0) each, through the selected paths as the prefill rows are (a step of
 * many short prompts makes many short blocks, which one long prompt's row does not show).
 * Every call is given the host's copy of the sequence lengths, as the runner's eager steps
 * give it (the splits of a call of one to two waves of blocks depend on it). */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_common.h"
#include "tools/bench/serve/report.h"
#include "runtime/base/clock.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

/* Indexed by PGD_CUDA_ATTN_AUTO, _FMA, _MMA, _PREFILL, _PREFILL_MMA, _PREFILL_WGMMA
 * (0 .. 5), then PATH_DECODE and PATH_SIMT: the default dispatch with every decode row on
 * the tensor-core decode kernel (PGD_CUDA_DECODE_ATTN=1) / on the SIMT one (=simt). */
static const char *PATH_NAME[8] = { "auto", "fma", "mma", "prefill", "prefill-mma", "wgmma",
                                    "decode", "simt" };
#define PATH_DECODE 6
#define PATH_SIMT 7
#define MAX_PATHS 8

#define MAX_SEQS 1024
#define MAX_CTX 4096
#define MAX_PREFILL 8192
#define MAX_TOKENS 16384             /* a call's query tokens (the q / out buffers) */

/* One mixed call (B decode rows at context L, rows 0 .. B-1, beside a chunk of P tokens after
 * C cached ones, row B) timed in the ways the header lists; one printed line. */
struct mixed_case {
    int B, L, P, C;
};

/* buf = the list item t[0, len), cut to fit buf [64]. */
static void list_item(char *buf, const char *t, size_t len)
{
    if (len >= 64)
        len = 63;
    memcpy(buf, t, len);
    buf[len] = 0;
}

/* "BxL+P[@C]" into *m; non-zero (a message printed) when it is not one, or does not fit the
 * bench's pool (B up to 1023, L and C + P up to 4096, B + P up to 8192 tokens). */
static int parse_mixed_case(const char *t, size_t len, struct mixed_case *m)
{
    char buf[64];
    list_item(buf, t, len);
    int used = 0;
    m->C = 0;
    int k = sscanf(buf, "%dx%d+%d%n@%d%n", &m->B, &m->L, &m->P, &used, &m->C, &used);
    if (k < 3 || buf[used] || m->B < 1 || m->B >= MAX_SEQS || m->L < 1 || m->L > MAX_CTX ||
        m->P < 2 || m->C < 0 || m->C + m->P > MAX_CTX || m->B + m->P > MAX_PREFILL) {
        fprintf(stderr, "pagoda bench attention: --mixed takes BxL+P[@C] (B decode rows at "
                        "context L beside a chunk of P tokens after C cached: B < %d, L and "
                        "C + P <= %d, P >= 2, B + P <= %d), not '%s'\n", MAX_SEQS, MAX_CTX,
                MAX_PREFILL, buf);
        return 1;
    }
    return 0;
}

/* One prompt step: N sequences of P new tokens after C cached ones each. */
struct prompts_case {
    int N, P, C;
};

/* "NxP[@C]" into *m; non-zero (a message printed) when it is not one, or does not fit the
 * bench's pool (N up to 1023, C + P up to 4096, N x P up to 16,384 tokens). */
static int parse_prompts_case(const char *t, size_t len, struct prompts_case *m)
{
    char buf[64];
    list_item(buf, t, len);
    int used = 0;
    m->C = 0;
    int k = sscanf(buf, "%dx%d%n@%d%n", &m->N, &m->P, &used, &m->C, &used);
    if (k < 2 || buf[used] || m->N < 1 || m->N >= MAX_SEQS || m->P < 1 || m->C < 0 ||
        m->C + m->P > MAX_CTX || (int64_t)m->N * m->P > MAX_TOKENS) {
        fprintf(stderr, "pagoda bench attention: --prompts takes NxP[@C] (N sequences of P "
                        "new tokens after C cached each: N < %d, C + P <= %d, N x P <= %d), "
                        "not '%s'\n", MAX_SEQS, MAX_CTX, MAX_TOKENS, buf);
        return 1;
    }
    return 0;
}

/* Calls parse(t, len, case) on each item of a comma-separated list; non-zero at the first
 * that fails (its message printed). */
static int check_list(const char *list, int (*parse)(const char *, size_t, void *))
{
    for (const char *t = list; *t;) {
        size_t len = strcspn(t, ",");
        union { struct mixed_case m; struct prompts_case p; } any;
        if (parse(t, len, &any))
            return 1;
        t += len + (t[len] == ',');
    }
    return 0;
}

static int parse_mixed_any(const char *t, size_t len, void *m)
{
    return parse_mixed_case(t, len, (struct mixed_case *)m);
}

static int parse_prompts_any(const char *t, size_t len, void *m)
{
    return parse_prompts_case(t, len, (struct prompts_case *)m);
}

#ifdef PGD_HAVE_CUDA
#define H 32
#define KV 8
#define D 128
#define BS 16
#define LONG_CTX 32768               /* one row at this context */

static const int PREFILL[] = { 128, 512, 2048, 8192 };
static const int BATCH[] = { 1, 8, 32, 128, 256, 512, 1024 };
static const int CONTEXT[] = { 64, 128, 256, 512, 1024, 2048, 4096 };

/* Device buffers shared by every case. */
struct bench_bufs {
    void *kc, *vc, *q, *out;
    int32_t *tables, *pos, *lens, *qstart;
    int max_blocks;                  /* table width */
    const struct pgd_cuda_kv_fp8 *fp8;   /* the caches are e4m3 with these scales; NULL: bf16 */
};

/* Microseconds a call of `a` (median of 3 timed runs); non-zero on failure. */
static int time_call(struct pgd_cuda_ctx *c, struct pgd_cuda_attn *a, double *us, char *err,
                     size_t errlen)
{
    size_t sb = pgd_cuda_attention_scratch(c, a);
    void *scratch = sb ? pgd_cuda_malloc(sb) : NULL;
    if (sb && !scratch) {
        snprintf(err, errlen, "no device memory for %zu bytes of split scratch", sb);
        return 1;
    }
    int rc = 1;
    /* Warm-up (plans the items), then one timed call to size the runs. */
    if (pgd_cuda_attention(c, a, scratch, err, errlen) || pgd_cuda_sync(c, err, errlen))
        goto out;
    double t0 = pgd__now_s();
    if (pgd_cuda_attention(c, a, scratch, err, errlen) || pgd_cuda_sync(c, err, errlen))
        goto out;
    double one = pgd__now_s() - t0;
    int iters = one > 0 ? (int)(0.1 / one) : 1000;
    iters = iters < 3 ? 3 : iters > 1000 ? 1000 : iters;
    double runs[3];
    for (int r = 0; r < 3; r++) {
        t0 = pgd__now_s();
        for (int i = 0; i < iters; i++)
            if (pgd_cuda_attention(c, a, scratch, err, errlen))
                goto out;
        if (pgd_cuda_sync(c, err, errlen))
            goto out;
        runs[r] = (pgd__now_s() - t0) / iters * 1e6;
    }
    bs_sort(runs, 3);
    *us = runs[1];
    rc = 0;
out:
    pgd_cuda_free(scratch);
    return rc;
}

/* Host metadata of a case uploaded: sequence s (on table row s) has q_len[s] new tokens
 * after cached[s] ones; h_qstart [n_seqs + 1] and h_lens [n_seqs] get the host copies. */
static int upload_seqs(const struct bench_bufs *b, int n_seqs, const int *q_len,
                       const int *cached, int32_t *h_qstart, int32_t *h_lens, char *err,
                       size_t errlen)
{
    int n = 0;
    for (int s = 0; s < n_seqs; s++)
        n += q_len[s];
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) {
        snprintf(err, errlen, "out of host memory");
        return 1;
    }
    for (int s = 0, t = 0; s < n_seqs; s++) {
        h_qstart[s] = t;
        h_lens[s] = cached[s] + q_len[s];
        for (int i = 0; i < q_len[s]; i++)
            pos[t++] = cached[s] + i;
    }
    h_qstart[n_seqs] = n;
    int rc = pgd_cuda_memcpy_h2d(b->pos, pos, (size_t)n * sizeof *pos, err, errlen) ||
             pgd_cuda_memcpy_h2d(b->lens, h_lens, (size_t)n_seqs * sizeof *h_lens, err,
                                 errlen) ||
             pgd_cuda_memcpy_h2d(b->qstart, h_qstart, (size_t)(n_seqs + 1) * sizeof(int32_t),
                                 err, errlen);
    free(pos);
    return rc;
}

/* upload_seqs with n_seqs sequences of q_len new tokens after `cached` each. */
static int upload_case(const struct bench_bufs *b, int n_seqs, int q_len, int cached,
                       int32_t *h_qstart, int32_t *h_lens, char *err, size_t errlen)
{
    int *ql = malloc((size_t)n_seqs * sizeof *ql), *ca = malloc((size_t)n_seqs * sizeof *ca);
    int rc = !ql || !ca;
    if (rc)
        snprintf(err, errlen, "out of host memory");
    for (int s = 0; !rc && s < n_seqs; s++) {
        ql[s] = q_len;
        ca[s] = cached;
    }
    rc = rc || upload_seqs(b, n_seqs, ql, ca, h_qstart, h_lens, err, errlen);
    free(ql);
    free(ca);
    return rc;
}

/* The copy bandwidth (GB/s) when measured: a decode row's bound, beside which each decode row
 * ends with its last path's (auto's when asked for) K/V read; 0: not measured. */
static double copy_gbps;

/* One case through the selected paths, one printed line (bound > 0: then the best path's
 * TFLOP/s as a share of it). */
static int bench_case(struct pgd_cuda_ctx *c, const struct bench_bufs *b, enum pgd_dtype dt,
                      const char *label, int n_seqs, int q_len, int cached, double flops,
                      double kv_bytes, const int *paths, int n_paths, double bound,
                      uint64_t *step)
{
    char err[512] = "";
    int32_t *h_qstart = malloc((size_t)(n_seqs + 1) * sizeof *h_qstart);
    int32_t *h_lens = malloc((size_t)n_seqs * sizeof *h_lens);
    if (!h_qstart || !h_lens ||
        upload_case(b, n_seqs, q_len, cached, h_qstart, h_lens, err, sizeof err)) {
        fprintf(stderr, "pagoda bench attention: %s\n",
                h_qstart && h_lens ? err : "out of memory");
        free(h_qstart);
        free(h_lens);
        return 1;
    }
    printf("%-22s", label);
    double us[MAX_PATHS] = { 0 };
    int i_fma = -1, i_mma = -1;
    for (int i = 0; i < n_paths; i++) {
        struct pgd_cuda_attn a = {
            .dtype = dt, .q = b->q, .out = b->out, .k_cache = b->kc, .v_cache = b->vc,
            .block_size = BS,
            .p = { .n_heads = H, .n_kv_heads = KV, .head_dim = D, .scale = 0.08838834764831845f,
                   .sliding_window = 0 },
            .n_tokens = n_seqs * q_len, .n_seqs = n_seqs, .query_start = b->qstart,
            .seq_lens = b->lens, .block_tables = b->tables, .max_blocks = b->max_blocks,
            .positions = b->pos, .h_query_start = h_qstart, .h_seq_lens = h_lens,
            .max_seq_len = cached + q_len,
            .step_id = ++*step, .path = paths[i] >= PATH_DECODE ? PGD_CUDA_ATTN_AUTO : paths[i],
            .kv_fp8 = b->fp8,
        };
        if (paths[i] >= PATH_DECODE)
            setenv("PGD_CUDA_DECODE_ATTN", paths[i] == PATH_DECODE ? "1" : "simt", 1);
        int failed = time_call(c, &a, &us[i], err, sizeof err);
        if (paths[i] >= PATH_DECODE)
            unsetenv("PGD_CUDA_DECODE_ATTN");
        if (failed) {
            fprintf(stderr, "\npagoda bench attention: %s: %s\n", PATH_NAME[paths[i]], err);
            free(h_qstart);
            free(h_lens);
            return 1;
        }
        printf("  %9.1f %6.1f %6.0f", us[i], flops / (us[i] * 1e6), kv_bytes / (us[i] * 1e3));
        if (paths[i] == PGD_CUDA_ATTN_FMA)
            i_fma = i;
        if (paths[i] == PGD_CUDA_ATTN_MMA)
            i_mma = i;
    }
    if (i_fma >= 0 && i_mma >= 0)
        printf("  %6.2fx", us[i_fma] / us[i_mma]);
    if (q_len == 1 && copy_gbps > 0)
        printf("  last %3.0f%% of %.0f GB/s", 100 * kv_bytes / (us[n_paths - 1] * 1e3) / copy_gbps,
               copy_gbps);
    if (bound > 0) {
        double best = 0;
        for (int i = 0; i < n_paths; i++)
            best = flops / (us[i] * 1e6) > best ? flops / (us[i] * 1e6) : best;
        printf("  best %5.1f%% of %.0f TFLOP/s", 100 * best / bound, bound);
    }
    printf("\n");
    fflush(stdout);
    free(h_qstart);
    free(h_lens);
    return 0;
}
#endif

#ifdef PGD_HAVE_CUDA

/* us of the default dispatch over the sequences uploaded (h_qstart / h_lens their host
 * copies, h_lens NULL: none given), with PGD_CUDA_ATTN_OVERLAP set to `overlap`. */
static int time_mixed(struct pgd_cuda_ctx *c, const struct bench_bufs *b, enum pgd_dtype dt,
                      int n_seqs, int n_tokens, int max_len, const int32_t *h_qstart,
                      const int32_t *h_lens, const char *overlap, uint64_t *step, double *us,
                      char *err, size_t errlen)
{
    struct pgd_cuda_attn a = {
        .dtype = dt, .q = b->q, .out = b->out, .k_cache = b->kc, .v_cache = b->vc,
        .block_size = BS,
        .p = { .n_heads = H, .n_kv_heads = KV, .head_dim = D, .scale = 0.08838834764831845f,
               .sliding_window = 0 },
        .n_tokens = n_tokens, .n_seqs = n_seqs, .query_start = b->qstart, .seq_lens = b->lens,
        .block_tables = b->tables, .max_blocks = b->max_blocks, .positions = b->pos,
        .h_query_start = h_qstart, .h_seq_lens = h_lens, .max_seq_len = max_len,
        .step_id = ++*step, .path = PGD_CUDA_ATTN_AUTO, .kv_fp8 = b->fp8,
    };
    setenv("PGD_CUDA_ATTN_OVERLAP", overlap, 1);
    int rc = time_call(c, &a, us, err, errlen);
    unsetenv("PGD_CUDA_ATTN_OVERLAP");
    return rc;
}

static int bench_mixed(struct pgd_cuda_ctx *c, const struct bench_bufs *b, enum pgd_dtype dt,
                       struct mixed_case m, double esz, double gbps, double tflops,
                       uint64_t *step)
{
    char err[512] = "";
    int n = m.B + 1, rc = 1;
    int *ql = malloc((size_t)n * sizeof *ql), *ca = malloc((size_t)n * sizeof *ca);
    int32_t *qs = malloc((size_t)(n + 1) * sizeof *qs), *lens = malloc((size_t)n * sizeof *lens);
    if (!ql || !ca || !qs || !lens) {
        snprintf(err, sizeof err, "out of host memory");
        goto out;
    }
    for (int s = 0; s < m.B; s++) {
        ql[s] = 1;
        ca[s] = m.L - 1;
    }
    ql[m.B] = m.P;
    ca[m.B] = m.C;
    int max_len = m.L > m.C + m.P ? m.L : m.C + m.P;
    /* us: decodes alone, the chunk alone, then the mixed call five ways */
    double us[7];
    static const char *const WAY[5][2] = { { "longest", "0" }, { "own", "0" },
                                           { "own", "1" }, { "own", "gen" }, { "longest", "1" } };
    if (upload_seqs(b, m.B, ql, ca, qs, lens, err, sizeof err) ||
        time_mixed(c, b, dt, m.B, m.B, m.L, qs, lens, "0", step, &us[0], err, sizeof err) ||
        upload_seqs(b, 1, ql + m.B, ca + m.B, qs, lens, err, sizeof err) ||
        time_mixed(c, b, dt, 1, m.P, m.C + m.P, qs, lens, "0", step, &us[1], err, sizeof err) ||
        upload_seqs(b, n, ql, ca, qs, lens, err, sizeof err))
        goto out;
    for (int w = 0; w < 5; w++)
        if (time_mixed(c, b, dt, n, m.B + m.P, max_len, qs,
                       !strcmp(WAY[w][0], "own") ? lens : NULL, WAY[w][1], step, &us[2 + w],
                       err, sizeof err))
            goto out;
    double width = (double)KV * D;
    double bytes = 2.0 * ((double)m.B * m.L + m.C + m.P) * width * esz;
    double flops = 4.0 * m.P * (m.C + m.P / 2.0) * D * H;
    double bound = (gbps > 0 ? bytes / (gbps * 1e3) : 0) + (tflops > 0 ? flops / (tflops * 1e6) : 0);
    double best = us[2];
    for (int w = 1; w < 5; w++)
        best = us[2 + w] < best ? us[2 + w] : best;
    char label[64];
    snprintf(label, sizeof label, "%dx%d+%d@%d", m.B, m.L, m.P, m.C);
    printf("%-20s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f  %5.1f%%\n", label,
           us[0], us[1], us[0] + us[1], us[2], us[3], us[4], us[5], us[6], bound,
           bound > 0 ? 100.0 * bound / best : 0.0);
    fflush(stdout);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pagoda bench attention: mixed %dx%d+%d@%d: %s\n", m.B, m.L, m.P, m.C,
                err);
    free(ql);
    free(ca);
    free(qs);
    free(lens);
    return rc;
}

#endif

#ifdef PGD_HAVE_CUDA
/* Fills the e4m3 caches of `slots` rows with random values in [-1, 1) (scales 1): random
 * bf16 chunks staged in b->q, written through pgd_cuda_kv_write. */
static int fill_fp8_caches(struct pgd_cuda_ctx *c, struct bench_bufs *b, size_t slots,
                           size_t width, char *err, size_t errlen)
{
    size_t chunk = (size_t)MAX_PREFILL * H * D / width;
    int64_t *h = malloc(chunk * sizeof *h);
    int64_t *d = pgd_cuda_malloc(chunk * sizeof *d);
    int rc = !h || !d;
    if (rc)
        snprintf(err, errlen, "out of memory for the fp8 cache fill");
    for (size_t s0 = 0; !rc && s0 < slots; s0 += chunk) {
        size_t n = slots - s0 < chunk ? slots - s0 : chunk;
        for (size_t i = 0; i < n; i++)
            h[i] = (int64_t)(s0 + i);
        rc = pgd_cuda_fill_random(c, PGD_DTYPE_BF16, b->q, n * width, 10 + s0, -1, 1, err,
                                  errlen) ||
             pgd_cuda_memcpy_h2d(d, h, n * sizeof *h, err, errlen) ||
             pgd_cuda_kv_write(c, PGD_DTYPE_BF16, b->kc, b->vc, b->q, b->q, d, (int)n,
                               (int)width, b->fp8, err, errlen) ||
             pgd_cuda_sync(c, err, errlen);
    }
    free(h);
    pgd_cuda_free(d);
    return rc;
}
#endif

int pgd_cmd_bench_attention(int argc, char **argv)
{
    /* by PATH_NAME; -1: prefill-mma and wgmma by default where the wgmma kernel runs */
    int want[MAX_PATHS] = { 1, 1, 1, 1, -1, -1, 1, 1 }, ceilings = 1;
    int kv_fp8 = 0;
    const char *mixed = NULL;        /* --mixed's list */
    const char *prompts = NULL;      /* --prompts' list */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--path") && i + 1 < argc) {
            const char *s = argv[++i];
            memset(want, 0, sizeof want);
            for (const char *t = s; *t;) {
                size_t len = strcspn(t, ",");
                int k = -1;
                for (int j = 0; j < MAX_PATHS; j++)
                    if (len == strlen(PATH_NAME[j]) && !strncmp(t, PATH_NAME[j], len))
                        k = j;
                if (k < 0) {
                    fprintf(stderr, "pagoda bench attention: --path takes a list of fma, mma, "
                                    "prefill, prefill-mma, wgmma, simt, decode and auto, not "
                                    "'%s'\n", s);
                    return 2;
                }
                want[k] = 1;
                t += len + (t[len] == ',');
            }
            if (!want[0] && !want[1] && !want[2] && !want[3] && !want[4] && !want[5] &&
                !want[PATH_DECODE]) {
                fprintf(stderr, "pagoda bench attention: --path needs a kernel\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--mixed") && i + 1 < argc) {
            mixed = argv[++i];
            if (check_list(mixed, parse_mixed_any))   /* refused before the GPU is opened */
                return 2;
        } else if (!strcmp(argv[i], "--prompts") && i + 1 < argc) {
            prompts = argv[++i];
            if (check_list(prompts, parse_prompts_any))
                return 2;
        } else if (!strcmp(argv[i], "--no-ceilings")) {
            ceilings = 0;
        } else if (!strcmp(argv[i], "--kv-cache-dtype") && i + 1 < argc &&
                   (!strcmp(argv[i + 1], "auto") || !strcmp(argv[i + 1], "fp8") ||
                    !strcmp(argv[i + 1], "fp8_e4m3"))) {
            kv_fp8 = strcmp(argv[++i], "auto") != 0;
        } else {
            fprintf(stderr, "usage: pagoda bench attention [--path fma,mma,prefill,"
                            "prefill-mma,wgmma,simt,decode,auto] [--kv-cache-dtype auto|fp8] "
                            "[--mixed BxL+P[@C],...] [--prompts NxP[@C],...] "
                            "[--no-ceilings]   (the 8B shape's paged attention, bf16, on the "
                            "GPU; mma / prefill: the tensor cores in 64- / 128-row blocks; "
                            "prefill-mma / wgmma: the 128-row blocks on mma.sync / on Hopper's "
                            "wgmma; auto: the default dispatch; "
                            "decode / simt: auto with every decode row on the tensor-core / "
                            "the SIMT decode kernel; fp8: the K/V cache in e4m3; --mixed: "
                            "only mixed calls of B decode rows at context L beside a P-token "
                            "chunk after C cached, timed alone, in turn and overlapped; "
                            "--prompts: only prompt steps of N sequences of P tokens after C "
                            "cached each)\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    if (mixed && prompts) {
        fprintf(stderr, "pagoda bench attention: --mixed and --prompts are two benches; give "
                        "one\n");
        return 2;
    }
#ifdef PGD_HAVE_CUDA
    char err[512] = "";
    struct pgd_tool_bench_gpu g;
    if (pgd_tool_bench_gpu_open("pagoda bench attention", ceilings ? PGD_TOOL_BENCH_SHOW_COPY_GEMM
                                                                   : PGD_TOOL_BENCH_SHOW_DEVICE,
                                &g))
        return 1;
    struct pgd_cuda_ctx *c = g.c;
    int wg_here = pgd_cuda_attention_wgmma_available(c, PGD_DTYPE_BF16, D, kv_fp8);
    for (int k = 0; k < MAX_PATHS; k++)
        if (want[k] < 0)
            want[k] = wg_here;
    int paths[MAX_PATHS], n_paths = 0;
    if (want[PGD_CUDA_ATTN_FMA])
        paths[n_paths++] = PGD_CUDA_ATTN_FMA;
    if (want[PGD_CUDA_ATTN_MMA])
        paths[n_paths++] = PGD_CUDA_ATTN_MMA;
    if (want[PATH_SIMT])
        paths[n_paths++] = PATH_SIMT;
    if (want[PGD_CUDA_ATTN_PREFILL])
        paths[n_paths++] = PGD_CUDA_ATTN_PREFILL;
    if (want[PGD_CUDA_ATTN_PREFILL_MMA])
        paths[n_paths++] = PGD_CUDA_ATTN_PREFILL_MMA;
    if (want[PGD_CUDA_ATTN_PREFILL_WGMMA])
        paths[n_paths++] = PGD_CUDA_ATTN_PREFILL_WGMMA;
    if (want[PATH_DECODE])
        paths[n_paths++] = PATH_DECODE;
    if (want[PGD_CUDA_ATTN_AUTO])
        paths[n_paths++] = PGD_CUDA_ATTN_AUTO;
    enum pgd_dtype dt = PGD_DTYPE_BF16;
    /* The pool: enough blocks for the largest decode batch (and the longest prefill or the
     * long row, both on table row 0), each sequence's table a stride of a shuffled pool. */
    int per_seq = MAX_CTX / BS + 1, max_blocks = MAX_PREFILL / BS;
    if (max_blocks < LONG_CTX / BS + 1)
        max_blocks = LONG_CTX / BS + 1;
    int num_blocks = MAX_SEQS * per_seq;
    if (num_blocks < max_blocks)
        num_blocks = max_blocks;
    /* esz: bytes of a cache element (the q / out buffers stay bf16). */
    size_t width = (size_t)KV * D, slots = (size_t)num_blocks * BS, esz = kv_fp8 ? 1 : 2;
    const struct pgd_cuda_kv_fp8 unit = { 1.0f, 1.0f };
    struct bench_bufs b = { 0 };
    b.max_blocks = max_blocks;
    b.fp8 = kv_fp8 ? &unit : NULL;
    b.kc = pgd_cuda_malloc(slots * width * esz);
    b.vc = pgd_cuda_malloc(slots * width * esz);
    b.q = pgd_cuda_malloc((size_t)MAX_TOKENS * H * D * 2);
    b.out = pgd_cuda_malloc((size_t)MAX_TOKENS * H * D * 2);
    b.tables = pgd_cuda_malloc((size_t)MAX_SEQS * max_blocks * sizeof(int32_t));
    b.pos = pgd_cuda_malloc((size_t)MAX_TOKENS * sizeof(int32_t));
    b.lens = pgd_cuda_malloc((size_t)MAX_SEQS * sizeof(int32_t));
    b.qstart = pgd_cuda_malloc((size_t)(MAX_SEQS + 1) * sizeof(int32_t));
    int32_t *perm = malloc((size_t)num_blocks * sizeof *perm);
    int32_t *tables = calloc((size_t)MAX_SEQS * max_blocks, sizeof *tables);
    int rc = 1;
    if (!b.kc || !b.vc || !b.q || !b.out || !b.tables || !b.pos || !b.lens || !b.qstart ||
        !perm || !tables) {
        fprintf(stderr, "pagoda bench attention: out of memory (K/V pool of %zu MiB each)\n",
                slots * width * esz >> 20);
        goto out;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < num_blocks; i++)
        perm[i] = i;
    for (int i = num_blocks - 1; i > 0; i--) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((x >> 33) % (uint64_t)(i + 1));
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    /* Sequence s uses pool blocks s * per_seq .. (s + 1) * per_seq - 1 (shuffled); the
     * prefill sequence (row 0) runs on to max_blocks. */
    for (int s = 0; s < MAX_SEQS; s++)
        for (int i = 0; i < max_blocks; i++)
            tables[(size_t)s * max_blocks + i] = perm[((size_t)s * per_seq + i) % num_blocks];
    if ((kv_fp8 ? fill_fp8_caches(c, &b, slots, width, err, sizeof err)
                : pgd_cuda_fill_random(c, dt, b.kc, slots * width, 1, -1, 1, err, sizeof err) ||
                  pgd_cuda_fill_random(c, dt, b.vc, slots * width, 2, -1, 1, err, sizeof err)) ||
        pgd_cuda_fill_random(c, dt, b.q, (size_t)MAX_TOKENS * H * D, 3, -1, 1, err, sizeof err) ||
        pgd_cuda_memcpy_h2d(b.tables, tables, (size_t)MAX_SEQS * max_blocks * sizeof(int32_t),
                            err, sizeof err) ||
        pgd_cuda_sync(c, err, sizeof err)) {
        fprintf(stderr, "pagoda bench attention: %s\n", err);
        goto out;
    }
    copy_gbps = g.gbps;
    printf("attention bf16%s: %d q heads / %d kv heads, head_dim %d, block %d\n\n",
           kv_fp8 ? ", KV cache e4m3" : "", H, KV, D, BS);
    if (mixed) {
        uint64_t mstep = 1;
        printf("mixed calls, us a call: the decode rows alone, the chunk alone, their sum; in "
               "one call planned at the\ncall's longest context (longest) or at each kernel's "
               "own rows' (own), in turn (0) or overlapped\n(1: decode rows submitted first, "
               "gen: the chunk first); the bound (K/V bytes at %.0f GB/s + the chunk's\nFLOPs "
               "at %.0f TFLOP/s) and the best way's share of it\n\n", g.gbps, g.tflops);
        printf("%-20s %9s %9s %9s %9s %9s %9s %9s %9s %9s  %6s\n", "BxL+P@C", "decodes",
               "chunk", "sum", "longest 0", "own 0", "own 1", "own gen", "longest 1", "bound",
               "best");
        for (const char *t = mixed; *t;) {
            size_t len = strcspn(t, ",");
            struct mixed_case m;
            if (parse_mixed_case(t, len, &m) ||
                bench_mixed(c, &b, dt, m, (double)esz, g.gbps, g.tflops, &mstep))
                goto out;
            t += len + (t[len] == ',');
        }
        rc = 0;
        goto out;
    }
    printf("%-22s", "case");
    for (int i = 0; i < n_paths; i++)
        printf("  %9s %6s %6s", PATH_NAME[paths[i]], "TFLOP/s", "GB/s");
    if (want[PGD_CUDA_ATTN_FMA] && want[PGD_CUDA_ATTN_MMA])
        printf("  %7s", "fma/mma");
    printf("   (us a call)\n");
    uint64_t step = 1;
    for (const char *t = prompts; t && *t;) {
        size_t len = strcspn(t, ",");
        struct prompts_case m;
        if (parse_prompts_case(t, len, &m))
            goto out;
        char label[64];
        snprintf(label, sizeof label, "%dx%d@%d", m.N, m.P, m.C);
        double flops = 4.0 * m.N * m.P * (m.C + m.P / 2.0) * D * H;
        double bytes = 2.0 * m.N * (m.C + m.P) * width * esz;
        if (bench_case(c, &b, dt, label, m.N, m.P, m.C, flops, bytes, paths, n_paths, g.tflops,
                       &step))
            goto out;
        t += len + (t[len] == ',');
    }
    for (size_t i = 0; !prompts && i < sizeof PREFILL / sizeof PREFILL[0]; i++) {
        int n = PREFILL[i];
        char label[64];
        snprintf(label, sizeof label, "prefill %d", n);
        double flops = 4.0 * n * n * D * H / 2, bytes = 2.0 * n * width * esz;
        if (bench_case(c, &b, dt, label, 1, n, 0, flops, bytes, paths, n_paths, g.tflops, &step))
            goto out;
    }
    for (size_t ci = 0; !prompts && ci < sizeof CONTEXT / sizeof CONTEXT[0]; ci++)
        for (size_t bi = 0; bi < sizeof BATCH / sizeof BATCH[0]; bi++) {
            int B = BATCH[bi], L = CONTEXT[ci];
            char label[64];
            snprintf(label, sizeof label, "decode b%d ctx %d", B, L);
            double flops = 4.0 * B * L * D * H, bytes = 2.0 * B * L * width * esz;
            if (bench_case(c, &b, dt, label, B, 1, L - 1, flops, bytes, paths, n_paths, 0,
                           &step))
                goto out;
        }
    if (!prompts) {
        char label[64];
        snprintf(label, sizeof label, "decode b1 ctx %d", LONG_CTX);
        double flops = 4.0 * LONG_CTX * D * H, bytes = 2.0 * LONG_CTX * width * esz;
        if (bench_case(c, &b, dt, label, 1, 1, LONG_CTX - 1, flops, bytes, paths, n_paths, 0,
                       &step))
            goto out;
    }
    rc = 0;
out:
    free(perm);
    free(tables);
    void *ds[] = { b.kc, b.vc, b.q, b.out, b.tables, b.pos, b.lens, b.qstart };
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        pgd_cuda_free(ds[i]);
    pgd_cuda_ctx_destroy(c);
    return rc;
#else
    (void)want;
    (void)ceilings;
    (void)kv_fp8;
    (void)mixed;
    (void)prompts;
    fprintf(stderr, "pagoda bench attention: this build has no CUDA backend\n");
    return 1;
#endif
}
