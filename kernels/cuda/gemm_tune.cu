/* cuBLASLt algorithm choice by measurement, for linear.cu's GEMM plans (the dense layers'
 * and the quantized linears' alike: FP8 W8A8 GEMMs are keyed and timed as any other plan).
 *
 * cuBLASLt's heuristic ranks its algorithms by a model of the GPU; its first is often not
 * the fastest on the real shape (ncu had the 8B shape's GEMMs at batch 256 at ~1.5x their
 * FLOP time). So for each plan descriptor but n (dtypes, in, out, scale mode, leading
 * dimensions, alignments) and n bucket (n rounded up to a power of two, which is also what
 * the decode graph ladder uses) the first plan built outside a graph capture asks the
 * heuristic for up to TUNE_CANDIDATES algorithms, adds split-K variants of them (the
 * heuristic's few candidates at a small n, e.g. the k/v projection [256 x 4096] -> 1024,
 * are tiles of the output only: 16 CTAs for 132 SMs; K split 2..8 ways fills the chip),
 * times each on the call's own x, w and y (the output is written again by the call itself
 * right after), TUNE_REPS runs after one warm-up, with L2 flushed before every run (a
 * 64 MiB buffer made for the tuning is overwritten, so the weights come from HBM as in a
 * real step; not the quantized-linear scratch, which may hold the call's own operands),
 * and keeps the one of least median time. A plan of that n rebuilt later (the plan cache
 * replaced it, or a graph capture) reuses that algorithm when cuBLASLt accepts it
 * (cublasLtMatmulAlgoCheck), without timing again. Any other n of the bucket (mixed steps
 * make a new one most steps) takes the heuristic's pick for its band, an eighth of the
 * bucket's upper half, asked at the first n met in the band: an algorithm timed at one n is
 * no guide to another's. (It was, until `pagoda bench gemm --reuse` measured it on an H100:
 * the 8B shape's down_proj tuned at 400 rows took 181 us at 500, the heuristic's pick at
 * 500 85 us; gate_up 256 against 160; every n but the tuned one was 1.0-2.3x slower than
 * the heuristic's own pick, and a mixed step of 200 decodes beside a 300-token chunk 20.8
 * ms against 14.6.) The bands bound the host's queries: at most 8 a bucket and shape. Not
 * for f32 outputs (the LM head): there the heuristic's picks at mixed steps' n took the
 * host 100-670 ms a call (H100), so the tuned algorithm is kept at every n as before.
 * PGD_CUDA_GEMM_BANDS=0 (read when the context is made) reuses the tuned algorithm at every
 * n of its bucket again, to measure one way against the other.
 *
 * Deterministic per plan: a plan keeps its algorithm (tile, split-K and reduction scheme)
 * for its life, and cuBLASLt's reductions are run-to-run reproducible (the in-place one
 * orders its partial sums with counters). Different algorithms sum in different orders, so
 * a tuned plan's output may differ from the heuristic's first in the last bf16 bit, and two
 * processes whose timings pick different algorithms may differ so too (PAGODA_GEMM_TUNE=0
 * gives every process the heuristic's first).
 *
 * Bounded: at most TUNE_CANDIDATES candidates and about TUNE_BUDGET_MS of host time a plan
 * (the candidates left when the budget is spent are not timed; the heuristic's first always
 * is; a GEMM of over a millisecond gets 3 runs a candidate);
 * every tuning is recorded (pgd_cuda_gemm_tune_get) with its cost, so the start-up cost can
 * be logged. During a capture, or with tuning off (PAGODA_GEMM_TUNE=0, or
 * pgd_cuda_gemm_tune_set), the heuristic's first is used, as before.
 *
 * Our own wgmma kernel (gemm_wgmma.cu: sm_90a, n <= OWN_MAX_N) is timed after cuBLASLt's
 * candidates on the same buffers through the same loop (pgd_cuda__tune_time, given each side's
 * launch), with its token-tile and split-K variants: the few that came closest to cuBLASLt
 * on the H200 (it won no shape there; at most 6 a plan), or all of them (up to 24) with
 * PGD_CUDA_GEMM_WGMMA_CANDIDATES=all or pgd_cuda_gemm_tune_wgmma_set (`pagoda bench gemm`);
 * where its fastest beats cuBLASLt's fastest by TUNE_MARGIN the record keeps it (`own`) and
 * linear.cu runs it for the bucket's plans (cuBLASLt's fastest stays recorded for calls the
 * kernel does not fit). */
#include "kernels/cuda/gemm_tune.cuh"
#include "kernels/cuda/gemm_wgmma.cuh"
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#define TUNE_CANDIDATES 16        /* asked of the heuristic (it returns 8 on Hopper) */
#define TUNE_MAX_TIMED 48          /* the heuristic's and their split-K variants */
#define TUNE_REPS PGD_CUDA_TUNE_MAX_REPS
#define TUNE_BUDGET_MS 100.0
#define TUNE_MAX_RECORDS 1024
#define TUNE_MARGIN 0.99f         /* a candidate must be 1% faster than the best so far */
#define OWN_MAX_N 512             /* our wgmma kernel's candidates: n up to this */

struct pgd_cuda_gemm_tuned {
    struct pgd_cuda_gemm_key key;    /* n: the n it was timed at */
    struct pgd_cuda_gemm_tune_info info;
    cublasLtMatmulAlgo_t algo;
    struct pgd_cuda_wgmma_cfg own;   /* bn 0: cuBLASLt's algo; else our kernel's, which won */
    /* The heuristic's pick for each band of the bucket (band_of), asked at the first n met
     * in it (a query costs far more host time than a check): the algorithm of the band's
     * other n's, but the tuned one. Bit i of band_has: band[i] is set. */
    unsigned band_has;
    cublasLtMatmulAlgo_t band[8];
};

/* n's band in its bucket (n in (bucket / 2, bucket]): which eighth of that range, 0..7; the
 * bucket of 1 is band 0. Within a band a tile-based algorithm's tile count barely moves. */
static int band_of(int n, int bucket)
{
    const int half = bucket / 2;
    if (half < 1)
        return 0;
    const int b = (int)((int64_t)(n - 1 - half) * 8 / half);
    return b < 0 ? 0 : b > 7 ? 7 : b;
}

/* Whether cuBLASLt takes algo for plan p within the workspace. */
static bool algo_fits(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p,
                      const cublasLtMatmulAlgo_t *algo)
{
    cublasLtMatmulHeuristicResult_t check;
    const double t0 = pgd_cuda_host_ms();
    const bool ok = cublasLtMatmulAlgoCheck(c->lt, p->op, p->a, p->b, p->d, p->d, algo, &check) ==
                        CUBLAS_STATUS_SUCCESS &&
                    check.workspaceSize <= c->workspace_bytes;
    c->lt_host.checks++;
    c->lt_host.check_ms += pgd_cuda_host_ms() - t0;
    return ok;
}

extern "C" int pgd_cuda_gemm_bucket(int n)
{
    int b = 1;
    while (b < n && b < (1 << 30))
        b <<= 1;
    return b;
}

/* c->gemm_tune: 0 not decided yet (a new context's), 1 on, 2 off. */
extern "C" void pgd_cuda_gemm_tune_set(struct pgd_cuda_ctx *c, int on)
{
    c->gemm_tune = on < 0 ? 0 : on ? 1 : 2;
}

static bool tune_on(struct pgd_cuda_ctx *c)
{
    if (c->gemm_tune == 0) {
        const char *e = getenv("PAGODA_GEMM_TUNE");
        bool off = e && (!strcmp(e, "0") || !strcmp(e, "off") || !strcmp(e, "false"));
        c->gemm_tune = off ? 2 : 1;
    }
    return c->gemm_tune == 1;
}

extern "C" int pgd_cuda_gemm_tune_enabled(struct pgd_cuda_ctx *c)
{
    return tune_on(c);
}

extern "C" int pgd_cuda_gemm_band_tops(struct pgd_cuda_ctx *c, int n, int *tops)
{
    const int bucket = pgd_cuda_gemm_bucket(n);
    if (!tune_on(c) || !c->gemm_bands || bucket < 16)
        return 0;
    const int half = bucket / 2;     /* band b: n - 1 - half in [b half / 8, (b + 1) half / 8) */
    int count = 0;
    for (int b = 0; b < 7 && half + (b + 1) * half / 8 < n; b++)
        tops[count++] = half + (b + 1) * half / 8;
    return count;
}

/* c->gemm_wgmma_all: 0 not decided yet (a new context's), 1 the few configurations, 2 all. */
extern "C" void pgd_cuda_gemm_tune_wgmma_set(struct pgd_cuda_ctx *c, int all)
{
    c->gemm_wgmma_all = all < 0 ? 0 : all ? 2 : 1;
}

static bool wgmma_all(struct pgd_cuda_ctx *c)
{
    if (c->gemm_wgmma_all == 0) {
        const char *e = getenv("PGD_CUDA_GEMM_WGMMA_CANDIDATES");
        c->gemm_wgmma_all = e && !strcmp(e, "all") ? 2 : 1;
    }
    return c->gemm_wgmma_all == 2;
}

void pgd_cuda_gemm_tune_free(struct pgd_cuda_ctx *c)
{
    free(c->gemm_tuned);
    c->gemm_tuned = NULL;
    c->gemm_tuned_n = c->gemm_tuned_cap = 0;
}

extern "C" int pgd_cuda_gemm_tune_count(const struct pgd_cuda_ctx *c)
{
    return c->gemm_tuned_n;
}

extern "C" int pgd_cuda_gemm_tune_get(const struct pgd_cuda_ctx *c, int i,
                                      struct pgd_cuda_gemm_tune_info *out)
{
    if (i < 0 || i >= c->gemm_tuned_n)
        return 1;
    *out = c->gemm_tuned[i].info;
    return 0;
}

static struct pgd_cuda_gemm_tuned *find_tuned(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k,
                                              int bucket)
{
    for (int i = 0; i < c->gemm_tuned_n; i++) {
        const struct pgd_cuda_gemm_tuned *t = &c->gemm_tuned[i];
        if (t->info.bucket == bucket && pgd_cuda_gemm_key_eq(&t->key, k, false))
            return &c->gemm_tuned[i];
    }
    return NULL;
}

/* The heuristic's first `want` algorithms for the plan (at least one); 2 (err set) when it
 * has none, 1 on another failure. */
static int heuristic(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p, int want,
                     cublasLtMatmulHeuristicResult_t *res, int *found, char *err, size_t errlen)
{
    const struct pgd_cuda_gemm_key *k = &p->key;
    cublasLtMatmulPreference_t pref;
    PGD_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref), "linear preference");
    size_t ws = c->workspace_bytes;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    /* The alignments the caller's pointers have (a column slice of y, a row offset into the
     * scratch): unset, cuBLASLt assumes 256 bytes. */
    const struct {
        cublasLtMatmulPreferenceAttributes_t attr;
        int bytes;
    } al[4] = { { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, k->al_w },
                { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, k->al_x },
                { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, k->al_y },
                { CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, k->al_y } };
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++) {
        uint32_t v = (uint32_t)al[i].bytes;
        if (v)
            s = cublasLtMatmulPreferenceSetAttribute(pref, al[i].attr, &v, sizeof v);
    }
    *found = 0;
    const double t0 = pgd_cuda_host_ms();
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->a, p->b, p->d, p->d, pref, want, res,
                                           found);
    c->lt_host.heuristics++;
    c->lt_host.heuristic_ms += pgd_cuda_host_ms() - t0;
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || *found == 0) {
        pgd_cuda_failf(err, errlen, "cuBLASLt has no algorithm for %s x [%d, %d] @ w [%d, %d]^T "
                       "-> %s%s (ld %d/%d/%d, alignment %d/%d/%d; status %d)",
                       pgd_dtype_name(k->dt), k->n, k->in, k->out, k->in,
                       pgd_dtype_name(k->ydt),
                       k->scale == PGD_CUDA_GEMM_SCALE_OUTER_VEC ? " with outer-vector scales" : "",
                       k->ldw, k->ldx, k->ldy, k->al_w, k->al_x, k->al_y, (int)s);
        return 2;            /* whatever the status: no algorithm for this descriptor */
    }
    return 0;
}

/* Overwrites flush (PGD_CUDA_TUNE_FLUSH_BYTES, made for the tuning; NULL: nothing), so that
 * L2 holds none of the operands between timed runs. */
static void flush_l2(struct pgd_cuda_ctx *c, void *flush)
{
    if (flush)
        cudaMemsetAsync(flush, 0x5a, PGD_CUDA_TUNE_FLUSH_BYTES, c->stream);
}

/* What a timed candidate runs on: the plan being tuned and its call's buffers. */
struct timed_call {
    const struct pgd_cuda_gemm_plan *p;
    const struct pgd_cuda_gemm_call *call;
};

/* what: a struct timed_call; cand: a cublasLtMatmulAlgo_t for its plan. */
static bool launch_lt(struct pgd_cuda_ctx *c, const void *what, const void *cand)
{
    const struct timed_call *tc = (const struct timed_call *)what;
    const float alpha = 1.0f, beta = 0.0f;
    const struct pgd_cuda_gemm_plan *p = tc->p;
    const struct pgd_cuda_gemm_call *call = tc->call;
    return cublasLtMatmul(c->lt, p->op, &alpha, call->w, p->a, call->x, p->b, &beta, call->y,
                          p->d, call->y, p->d, (const cublasLtMatmulAlgo_t *)cand, c->workspace,
                          c->workspace_bytes, c->stream) == CUBLAS_STATUS_SUCCESS;
}

/* what: a struct timed_call; cand: a struct pgd_cuda_wgmma_cfg of our kernel (plain
 * y = x w^T, no bias). */
static bool launch_own(struct pgd_cuda_ctx *c, const void *what, const void *cand)
{
    const struct timed_call *tc = (const struct timed_call *)what;
    char err[256];
    const struct pgd_cuda_gemm_key *k = &tc->p->key;
    return pgd_cuda__wgmma_run(c, k->dt, tc->call->x, tc->call->w, NULL, k->n, k->in, k->out,
                               k->ydt, tc->call->y, *(const struct pgd_cuda_wgmma_cfg *)cand,
                               err, sizeof err) == 0;
}

bool pgd_cuda__tune_open(struct pgd_cuda_tune_kit *kit)
{
    for (kit->n_ev = 0; kit->n_ev < 2 * PGD_CUDA_TUNE_MAX_REPS; kit->n_ev++)
        if (cudaEventCreate(&kit->ev[kit->n_ev]) != cudaSuccess)
            break;
    kit->flush = NULL;
    if (cudaMalloc(&kit->flush, PGD_CUDA_TUNE_FLUSH_BYTES) != cudaSuccess) {
        cudaGetLastError();
        kit->flush = NULL;
    }
    return kit->n_ev == 2 * PGD_CUDA_TUNE_MAX_REPS;
}

void pgd_cuda__tune_close(struct pgd_cuda_ctx *c, struct pgd_cuda_tune_kit *kit)
{
    cudaGetLastError();
    for (int i = 0; i < kit->n_ev; i++)
        cudaEventDestroy(kit->ev[i]);
    kit->n_ev = 0;
    if (kit->flush) {
        cudaStreamSynchronize(c->stream);
        cudaFree(kit->flush);
        cudaGetLastError();
        kit->flush = NULL;
    }
}

float pgd_cuda__tune_time(struct pgd_cuda_ctx *c, pgd_cuda_tune_launch launch, const void *what,
                          const void *cand, int reps, cudaEvent_t *ev, void *flush)
{
    for (int r = -1; r < reps; r++) {
        flush_l2(c, flush);
        if (r >= 0)
            cudaEventRecord(ev[2 * r], c->stream);
        const bool ran = launch(c, what, cand);
        if (r >= 0)
            cudaEventRecord(ev[2 * r + 1], c->stream);
        if (!ran) {
            cudaStreamSynchronize(c->stream);
            cudaGetLastError();
            return -1.0f;
        }
    }
    if (cudaEventSynchronize(ev[2 * reps - 1]) != cudaSuccess) {
        cudaGetLastError();
        return -1.0f;
    }
    std::vector<float> ms;
    for (int r = 0; r < reps; r++) {
        float t = 0;
        if (cudaEventElapsedTime(&t, ev[2 * r], ev[2 * r + 1]) != cudaSuccess)
            return -1.0f;
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

/* The split-K count of an algorithm (1: none). */
static int split_of(const cublasLtMatmulAlgo_t *a)
{
    int32_t k = 1;
    size_t w = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &k, sizeof k,
                                             &w) != CUBLAS_STATUS_SUCCESS)
        return 1;
    return k > 1 ? k : 1;
}

/* Appends to cand (up to max) the split-K variants of base that cuBLASLt accepts for the
 * plan within the workspace: K split 2, 4 or 8 ways, the parts summed in float32 in the
 * workspace and rounded once (COMPUTE_TYPE), or in place in the output when that is float32
 * (the logits); a 16-bit output is never summed in its own precision. None already in cand. */
static int add_split_variants(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p,
                              const cublasLtMatmulAlgo_t *base, cublasLtMatmulAlgo_t *cand,
                              int n, int max)
{
    int32_t support = 0;
    uint32_t schemes = 0;
    size_t w = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &support,
                                          sizeof support, &w) != CUBLAS_STATUS_SUCCESS ||
        !support ||
        cublasLtMatmulAlgoCapGetAttribute(base, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK,
                                          &schemes, sizeof schemes, &w) != CUBLAS_STATUS_SUCCESS)
        return n;
    static const int32_t SPLITS[3] = { 2, 4, 8 };
    static const uint32_t SCHEMES[2] = { CUBLASLT_REDUCTION_SCHEME_INPLACE,
                                         CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE };
    for (int si = 0; si < 3 && n < max; si++) {
        if (SPLITS[si] * 128 > p->key.in)
            break;                         /* no part thinner than a 128-wide K slab */
        for (int ri = 0; ri < 2 && n < max; ri++) {
            if (!(schemes & SCHEMES[ri]) ||
                (SCHEMES[ri] == CUBLASLT_REDUCTION_SCHEME_INPLACE && p->key.ydt != PGD_DTYPE_F32))
                continue;
            cublasLtMatmulAlgo_t a = *base;
            if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
                                                     &SPLITS[si], sizeof SPLITS[si]) ||
                cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                     &SCHEMES[ri], sizeof SCHEMES[ri]))
                continue;
            cublasLtMatmulHeuristicResult_t chk;
            if (cublasLtMatmulAlgoCheck(c->lt, p->op, p->a, p->b, p->d, p->d, &a, &chk) !=
                    CUBLAS_STATUS_SUCCESS || chk.workspaceSize > c->workspace_bytes)
                continue;
            bool seen = false;
            for (int j = 0; j < n && !seen; j++)
                seen = !memcmp(&cand[j], &a, sizeof a);
            if (!seen)
                cand[n++] = a;
        }
    }
    return n;
}

/* What the timing of a plan found: cuBLASLt's candidates (`timed` of them; the fastest,
 * index best (-1: none ran), and the heuristic's first, in milliseconds), then our kernel's
 * (own_timed; the fastest, bn 0 when none ran). */
struct tune_outcome {
    int best, timed;
    float best_ms, first_ms;
    struct pgd_cuda_wgmma_cfg own;
    float own_ms;
    int own_timed;
};

/* Times cand[0..n_cand) in order within TUNE_BUDGET_MS of t0 (the first always) into o. */
static void time_lt(struct pgd_cuda_ctx *c, const struct timed_call *tc,
                    const cublasLtMatmulAlgo_t *cand, int n_cand, double t0, cudaEvent_t *ev,
                    void *flush, struct tune_outcome *o)
{
    for (int i = 0; i < n_cand; i++) {
        if (i > 0 && pgd_cuda_host_ms() - t0 > TUNE_BUDGET_MS)
            break;
        /* A large GEMM (a long prefill) varies little from run to run: fewer runs, so that
         * the budget covers more candidates. */
        int reps = o->first_ms > 1.0f ? 3 : TUNE_REPS;
        float ms = pgd_cuda__tune_time(c, launch_lt, tc, &cand[i], reps, ev, flush);
        o->timed++;
        if (i == 0)
            o->first_ms = ms;
        /* Another algorithm must win by more than the noise: otherwise the earlier (the
         * heuristic's preference) stays, and runs of the same process agree more often. */
        if (ms >= 0 && (o->best < 0 || ms < o->best_ms * TUNE_MARGIN)) {
            o->best = i;
            o->best_ms = ms;
        }
    }
}

/* Times our kernel's configurations (the few, or all: wgmma_all) where the plan's call fits
 * it into o; nothing where it does not (n past OWN_MAX_N, scales, strided operands, not
 * sm_90a, dtypes or alignment). */
static void time_own(struct pgd_cuda_ctx *c, const struct timed_call *tc, cudaEvent_t *ev,
                     void *flush, struct tune_outcome *o)
{
    const struct pgd_cuda_gemm_key *k = &tc->p->key;
    /* Our kernel computes plain y = x w^T: no scales, dense operands. */
    if (k->n > OWN_MAX_N || k->scale != PGD_CUDA_GEMM_SCALE_NONE || k->fast_accum || k->ldw ||
        k->ldx || k->ldy || !pgd_cuda__wgmma_ok(c) ||
        !pgd_cuda__wgmma_fits(k->dt, k->ydt, tc->call->x, tc->call->w, NULL, tc->call->y, k->in))
        return;
    struct pgd_cuda_wgmma_cfg cand[PGD_CUDA_WGMMA_MAX_CANDIDATES];
    const int nc = pgd_cuda__wgmma_candidates(c, k->n, k->in, k->out, wgmma_all(c), cand,
                                              PGD_CUDA_WGMMA_MAX_CANDIDATES);
    for (int i = 0; i < nc; i++) {
        const float ms = pgd_cuda__tune_time(c, launch_own, tc, &cand[i], TUNE_REPS, ev, flush);
        o->own_timed++;
        if (ms >= 0 && (o->own_ms < 0 || ms < o->own_ms)) {
            o->own = cand[i];
            o->own_ms = ms;
        }
    }
}

/* Appends the tuning of the plan's bucket (algo: cuBLASLt's fastest) to c's records; nothing
 * when they are full or cannot grow. */
static void record(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p, int bucket,
                   const cublasLtMatmulAlgo_t *algo, int n_cand, int n_heur,
                   const struct tune_outcome *o, double tune_ms)
{
    if (c->gemm_tuned_n == c->gemm_tuned_cap) {
        if (c->gemm_tuned_cap >= TUNE_MAX_RECORDS)
            return;
        int cap = c->gemm_tuned_cap ? 2 * c->gemm_tuned_cap : 64;
        void *g = realloc(c->gemm_tuned, (size_t)cap * sizeof *c->gemm_tuned);
        if (!g)
            return;
        c->gemm_tuned = (struct pgd_cuda_gemm_tuned *)g;
        c->gemm_tuned_cap = cap;
    }
    const bool own_wins = o->own_ms >= 0 && o->own_ms < o->best_ms * TUNE_MARGIN;
    struct pgd_cuda_gemm_tuned *t = &c->gemm_tuned[c->gemm_tuned_n++];
    t->key = p->key;
    t->algo = *algo;
    t->own = own_wins ? o->own : (struct pgd_cuda_wgmma_cfg){ 0, 0, 0 };
    t->band_has = 0;
    t->info = (struct pgd_cuda_gemm_tune_info){
        .dt = p->key.dt, .ydt = p->key.ydt, .in = p->key.in, .out = p->key.out, .bucket = bucket,
        .n = p->key.n, .candidates = n_cand, .heuristic = n_heur, .timed = o->timed,
        .chosen = o->best, .split_k = split_of(algo),
        .first_us = o->first_ms * 1e3, .best_us = (own_wins ? o->own_ms : o->best_ms) * 1e3,
        .tune_ms = tune_ms,
        .own_timed = o->own_timed, .own_bn = o->own.bn, .own_split = o->own.split,
        .own_cps = o->own.cps, .own = own_wins,
        .own_us = o->own_ms >= 0 ? o->own_ms * 1e3 : 0.0, .lt_us = o->best_ms * 1e3,
    };
}

/* Times the heuristic's candidates (and their split-K variants), then our kernel's, for the
 * plan on the call's buffers and records the fastest for the bucket. *algo gets cuBLASLt's
 * fastest. */
static int tune(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p,
                const struct pgd_cuda_gemm_call *call, int bucket, cublasLtMatmulAlgo_t *algo,
                char *err, size_t errlen)
{
    cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES];
    int found = 0;
    int hrc = heuristic(c, p, TUNE_CANDIDATES, res, &found, err, errlen);
    if (hrc)
        return hrc;
    *algo = res[0].algo;
    if (pgd_cuda_gemm_set_scales(p, call, err, errlen))
        return 1;
    /* The candidates: the heuristic's valid ones in its order, then the split-K variants of
     * each (cheap to time at the small n where they matter; the budget cuts them at a large
     * n, where the heuristic's own are timed first). */
    cublasLtMatmulAlgo_t cand[TUNE_MAX_TIMED];
    int n_cand = 0, n_heur = 0;
    for (int i = 0; i < found && n_cand < TUNE_MAX_TIMED; i++)
        if (res[i].state == CUBLAS_STATUS_SUCCESS)
            cand[n_cand++] = res[i].algo;
    n_heur = n_cand;
    /* Only where 128 x 128 output tiles leave the chip half empty (2 a SM): a larger output
     * has parallelism enough without splitting K. */
    int64_t tiles = (int64_t)((p->key.out + 127) / 128) * ((p->key.n + 127) / 128);
    for (int i = 0; i < n_heur && n_cand < TUNE_MAX_TIMED && tiles < 2 * c->sm_count; i++)
        n_cand = add_split_variants(c, p, &res[i].algo, cand, n_cand, TUNE_MAX_TIMED);
    if (n_cand == 0)
        return 0;
    /* The work queued before this call (a whole forward pass, when a plan is first built in
     * it) runs first: neither the budget nor the record should count it. */
    if (cudaStreamSynchronize(c->stream) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    const double t0 = pgd_cuda_host_ms();
    struct pgd_cuda_tune_kit kit;
    const struct timed_call tc = { p, call };
    struct tune_outcome o = { -1, 0, 0.0f, -1.0f, { 0, 0, 0 }, -1.0f, 0 };
    if (pgd_cuda__tune_open(&kit)) {
        time_lt(c, &tc, cand, n_cand, t0, kit.ev, kit.flush, &o);
        if (o.best >= 0)
            time_own(c, &tc, kit.ev, kit.flush, &o);
    }
    pgd_cuda__tune_close(c, &kit);
    if (o.best < 0)
        return 0;            /* nothing could be timed: the heuristic's first, not recorded */
    *algo = cand[o.best];
    const double tune_ms = pgd_cuda_host_ms() - t0;
    record(c, p, bucket, algo, n_cand, n_heur, &o, tune_ms);
    c->lt_host.tunings++;
    c->lt_host.tune_ms += tune_ms;
    return 0;
}

struct pgd_cuda_wgmma_cfg pgd_cuda_gemm_own(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k)
{
    const struct pgd_cuda_gemm_tuned *t =
        tune_on(c) ? find_tuned(c, k, pgd_cuda_gemm_bucket(k->n)) : NULL;
    return t ? t->own : (struct pgd_cuda_wgmma_cfg){ 0, 0, 0 };
}

int pgd_cuda_gemm_choose(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p,
                         const struct pgd_cuda_gemm_call *call, cublasLtMatmulAlgo_t *algo,
                         char *err, size_t errlen)
{
    struct pgd_cuda_gemm_tuned *t = NULL;
    int band = 0;
    if (tune_on(c)) {
        int bucket = pgd_cuda_gemm_bucket(p->key.n);
        t = find_tuned(c, &p->key, bucket);
        /* f32 outputs (the LM head's logits) keep the tuned algorithm at every n: the
         * heuristic's picks for it at the n's of mixed steps cost the host 100-670 ms a call
         * (H100: 19 calls, 3.4 s of one ShareGPT run, eager module loading or lazy alike) */
        const bool bands = c->gemm_bands && p->key.ydt != PGD_DTYPE_F32;
        if (t && (t->key.n == p->key.n || !bands) && algo_fits(c, p, &t->algo)) {
            *algo = t->algo;
            return 0;
        }
        band = band_of(p->key.n, bucket);
        if (t && (t->band_has >> band & 1) && algo_fits(c, p, &t->band[band])) {
            *algo = t->band[band];
            return 0;
        }
        cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        if (!t && call && cudaStreamIsCapturing(c->stream, &cs) == cudaSuccess &&
            cs == cudaStreamCaptureStatusNone)
            return tune(c, p, call, bucket, algo, err, errlen);
        cudaGetLastError();
    }
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    int hrc = heuristic(c, p, 1, &h, &found, err, errlen);
    if (hrc)
        return hrc;
    *algo = h.algo;
    if (t) {
        t->band[band] = h.algo;
        t->band_has |= 1u << band;
    }
    return 0;
}
