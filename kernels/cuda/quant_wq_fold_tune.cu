/* The folded W4A16 GEMM's plan chosen by measurement (quant_wq_fold.cu runs it).
 *
 * Why not the cost model alone: its one formula (waves of blocks, each a fixed part plus
 * its stages) misses how the plans really differ. Two 64-token blocks of the plain kernel
 * share an SM where their shared memory fits, which helps at 32-64 rows and hurts past
 * them; the warp-specialized kernel wins some shapes and loses most; and fitted to every
 * plan of the 8B shapes at 32-256 rows (H100, `bench quant --fold-plans`) the formula is off
 * by 9% on average and by up to 50%. Its picks lost 8.5% of the fastest plans' time there,
 * and a picked plan of a layer was up to 1.3x slower than the best (down at 256 rows: 107
 * against 82 us).
 *
 * So, as gemm_tune.cu does for cuBLASLt's algorithms: for each dtype, grid (in, out, layers
 * of one launch, group size) and bucket of rows (ceil(n / 64): within a bucket every token
 * tile's count of tiles is the same, so the plans' times barely move), the first call
 * outside a graph capture times every plan (pgd_cuda__wq_fold_plans: both kernels, every
 * tile and split, ~65) on the call's own x, weights and outputs, TUNE_REPS runs after one
 * warm-up with L2 flushed before each, within about TUNE_BUDGET_MS of host time, in the
 * model's order, and keeps the fastest (another must win by TUNE_MARGIN). The call itself
 * then runs with it, so the outputs the timing wrote are written again. The decode graphs'
 * eager first steps and the prefill warm-up (runtime/runner) meet every bucket before
 * serving; a capture before its bucket was timed takes the model's plan.
 *
 * Only from TUNE_MIN_N rows (PGD_CUDA_WQ_FOLD_TUNE_MIN_N), so the 128- and 256-row buckets
 * (and up to 64 rows the model). The 8B GPTQ decode step on an H100 (ms, two rounds), the
 * model's plans against plans timed from 65 rows and from 17: 32 rows 6.10 / 6.05 against
 * 6.03 / 6.11 and 6.53 / 6.53; 64 rows 7.02 / 7.13 against 7.07 / 7.09 and 7.40 / 7.33; 128
 * rows 9.81 / 9.77 against 9.05 / 8.99; 256 rows 13.43 / 13.38 against 12.65 / 12.56. At
 * 32-64 rows the fastest plan of a launch alone (17-70 us) is not the fastest in the step,
 * where each launch overlaps its neighbours (programmatic dependent launch). The plain
 * kernel's 64-token block alone on an SM is timed only with PGD_CUDA_WQ_FOLD_TUNE_ONE=1: it
 * won no bucket past 64 rows.
 *
 * Every plan gives the same bits but for the order in which the splits' float32 partial
 * sums meet, so a process keeps one plan a bucket for its life; two processes whose timings
 * differ may differ in the last bit, as with cuBLASLt's tuning. PAGODA_GEMM_TUNE=0 turns
 * both off (the model's plans); the environment that forces a plan
 * (PGD_CUDA_WQ_FOLD_BN, _KS, _KS_MAX, _WS, _ONE_BLOCK) skips the timing. */
#include "kernels/cuda/quant_wq_gemm.cuh"
#include "kernels/cuda/gemm_tune.cuh"
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define TUNE_MAX_PLANS 80
#define TUNE_REPS PGD_CUDA_TUNE_MAX_REPS
#define TUNE_BUDGET_MS 100.0
#define TUNE_MARGIN 0.99f            /* a plan must be 1% faster than the best so far */
#define TUNE_MAX_RECORDS 256
#define TUNE_ROWS 64                 /* rows a bucket */
#define TUNE_MIN_N 65                /* rows from which the timing chooses */

/* A timing: its grid, bucket and times (info, the key but for the group size), the plan. */
struct pgd_cuda_wq_fold_tuned {
    struct pgd_cuda_wq_fold_tune_info info;
    int group_size;
    struct wq_fold_plan plan;
};

template <typename T>
static enum pgd_dtype dtype_of(void)
{
    return std::is_same<T, __half>::value ? PGD_DTYPE_F16 : PGD_DTYPE_BF16;
}

static int bucket_of(int n)
{
    return (n + TUNE_ROWS - 1) / TUNE_ROWS;
}

/* The record of a grid and bucket, of dtype dt (any_dt: of any). */
static const struct pgd_cuda_wq_fold_tuned *find(const struct pgd_cuda_ctx *c, bool any_dt,
                                                 enum pgd_dtype dt, int in, int out, int layers,
                                                 int group_size, int bucket)
{
    for (int i = 0; i < c->wq_fold_tuned_n; i++) {
        const struct pgd_cuda_wq_fold_tuned *t = &c->wq_fold_tuned[i];
        const struct pgd_cuda_wq_fold_tune_info *f = &t->info;
        if ((any_dt || f->dt == dt) && f->in == in && f->out == out && f->layers == layers &&
            t->group_size == group_size && f->bucket == bucket)
            return t;
    }
    return NULL;
}

static void record(struct pgd_cuda_ctx *c, const struct pgd_cuda_wq_fold_tuned *t)
{
    if (c->wq_fold_tuned_n == c->wq_fold_tuned_cap) {
        if (c->wq_fold_tuned_cap >= TUNE_MAX_RECORDS)
            return;
        const int cap = c->wq_fold_tuned_cap ? 2 * c->wq_fold_tuned_cap : 16;
        void *g = realloc(c->wq_fold_tuned, (size_t)cap * sizeof *c->wq_fold_tuned);
        if (!g)
            return;
        c->wq_fold_tuned = (struct pgd_cuda_wq_fold_tuned *)g;
        c->wq_fold_tuned_cap = cap;
    }
    c->wq_fold_tuned[c->wq_fold_tuned_n++] = *t;
}

/* What a timed plan runs on: the call's arguments (copied: a run sets its split). */
template <typename T>
static bool launch_plan(struct pgd_cuda_ctx *c, const void *what, const void *cand)
{
    wg_args<T> a = *(const wg_args<T> *)what;
    return pgd_cuda__wq_fold_run<T>(c, a, *(const struct wq_fold_plan *)cand) == cudaSuccess;
}

/* Times plans[0 .. count) in order (the model's estimates', least first) within about
 * TUNE_BUDGET_MS (the first always) on a's buffers: the index of the fastest, -1 when none
 * ran; *timed, *first_ms and *best_ms: the plans timed, the first's and the fastest's time. */
template <typename T>
static int time_plans(struct pgd_cuda_ctx *c, const wg_args<T> &a,
                      const struct wq_fold_plan *plans, int count, int *timed, float *first_ms,
                      float *best_ms)
{
    const double t0 = pgd_cuda_host_ms();
    struct pgd_cuda_tune_kit kit;
    int best = -1;
    const bool able = pgd_cuda__tune_open(&kit);
    for (int i = 0; i < count && able; i++) {
        if (i > 0 && pgd_cuda_host_ms() - t0 > TUNE_BUDGET_MS)
            break;
        const float ms = pgd_cuda__tune_time(c, launch_plan<T>, &a, &plans[i], TUNE_REPS,
                                             kit.ev, kit.flush);
        ++*timed;
        if (i == 0)
            *first_ms = ms;
        if (ms >= 0 && (best < 0 || ms < *best_ms * TUNE_MARGIN)) {
            best = i;
            *best_ms = ms;
        }
    }
    pgd_cuda__tune_close(c, &kit);
    return best;
}

template <typename T>
bool pgd_cuda__wq_fold_tuned(struct pgd_cuda_ctx *c, const wg_args<T> &a, struct wq_fold_plan *p)
{
    if (!pgd_cuda_gemm_tune_enabled(c) ||
        a.n < pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_TUNE_MIN_N", TUNE_MIN_N))
        return false;
    const int bucket = bucket_of(a.n);
    const struct pgd_cuda_wq_fold_tuned *t =
        find(c, false, dtype_of<T>(), a.in, a.out, a.layers, a.group_size, bucket);
    if (t) {
        *p = t->plan;
        return true;
    }
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(c->stream, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) {
        cudaGetLastError();
        return false;
    }
    /* The work queued before this call (a forward pass's first layers) runs first: the
     * budget should not count it. */
    if (cudaStreamSynchronize(c->stream) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    const double t0 = pgd_cuda_host_ms();
    struct wq_fold_plan plans[TUNE_MAX_PLANS];
    const int count = pgd_cuda__wq_fold_plans(
        c, a.n, a.in, a.out, pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_TUNE_ONE", 0) == 1, plans,
        TUNE_MAX_PLANS);
    int timed = 0;
    float first_ms = -1, best_ms = 0;
    const int best = time_plans<T>(c, a, plans, count, &timed, &first_ms, &best_ms);
    if (best < 0)
        return false;
    const struct wq_fold_plan &b = plans[best];
    const double tune_ms = pgd_cuda_host_ms() - t0;
    const struct pgd_cuda_wq_fold_tuned rec = {
        { dtype_of<T>(), a.in, a.out, a.layers, bucket, a.n, timed, b.bn, b.ks, b.ws, b.one,
          b.sk, first_ms * 1e3, best_ms * 1e3, tune_ms },
        a.group_size, b,
    };
    record(c, &rec);
    *p = b;
    return true;
}
template bool pgd_cuda__wq_fold_tuned<__nv_bfloat16>(struct pgd_cuda_ctx *,
                                                     const wg_args<__nv_bfloat16> &,
                                                     struct wq_fold_plan *);
template bool pgd_cuda__wq_fold_tuned<__half>(struct pgd_cuda_ctx *, const wg_args<__half> &,
                                              struct wq_fold_plan *);

bool pgd_cuda__wq_fold_tuned_plan(const struct pgd_cuda_ctx *c, int n, int in, int out,
                                  int layers, int group_size, struct wq_fold_plan *p)
{
    const struct pgd_cuda_wq_fold_tuned *t =
        find(c, true, PGD_DTYPE_BF16, in, out, layers, group_size, bucket_of(n));
    if (t)
        *p = t->plan;
    return t != NULL;
}

extern "C" int pgd_cuda_wq_fold_tune_stats(const struct pgd_cuda_ctx *c, double *ms)
{
    double sum = 0;
    for (int i = 0; i < c->wq_fold_tuned_n; i++)
        sum += c->wq_fold_tuned[i].info.tune_ms;
    if (ms)
        *ms = sum;
    return c->wq_fold_tuned_n;
}

extern "C" int pgd_cuda_wq_fold_tune_get(const struct pgd_cuda_ctx *c, int i,
                                         struct pgd_cuda_wq_fold_tune_info *out)
{
    if (i < 0 || i >= c->wq_fold_tuned_n)
        return 1;
    *out = c->wq_fold_tuned[i].info;
    return 0;
}

extern "C" void pgd_cuda_wq_fold_tune_free(struct pgd_cuda_ctx *c)
{
    free(c->wq_fold_tuned);
    c->wq_fold_tuned = NULL;
    c->wq_fold_tuned_n = c->wq_fold_tuned_cap = 0;
}
