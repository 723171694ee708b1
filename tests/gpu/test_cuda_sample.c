/* Sampling on the GPU (kernels/cuda/sample.cu and sample_plain.cu, through
 * runtime/sample/sample_rows.c) against the CPU sampler (runtime/sample/sampler.c), its
 * twin: random logits (normal with a few spikes, never zero) of vocab 128256 and 1000, each
 * feature alone and combined, plain and general rows in one call, many rows with mixed
 * parameters in one call, seeded reproducibility, a chi-square test of the draws, and the
 * engine on the llama fixture with device sampling on and off. Skips visibly without a GPU.
 *
 * Tokens must be equal, except where the draw is a boundary case: the GPU sums masses in
 * 64-bit fixed point, the CPU in double in its own order, and an exp may differ by an ulp,
 * so when the CPU's u * kept lies within BOUNDARY (relative to kept) of a CDF boundary, or
 * a top_p / top_k cut is that close to a tie, the two may pick neighbours. Such cases are
 * computed here (in double, from the CPU's semantics), printed, and must stay rare.
 * Logprobs must agree within 1e-4; ranks and top ids exactly. */
#include "config.h"
#include "tests/lib/test_common.h"
#include "tests/lib/gpu_main.h"
#include "runtime/sample/sample_rows.h"
#include "runtime/engine/engine_backend.h"
#include "tests/lib/model_fixture.h"
#include <pagoda/tokenizer.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(cuda_sample);

#ifndef PGD_HAVE_CUDA
Test(cuda_sample, all)
{
    cr_skip_test("no CUDA device: this build has no CUDA backend (configure --with-cuda)");
}
#else

#define BOUNDARY 1e-6
#define LP_TOL 1e-4f

static struct pgd_cuda_ctx *ctx;

static void need_gpu(void)
{
    if (pgd_cuda_device_count() == 0)
        cr_skip_test("no CUDA device");
    char err[256];
    if (!ctx)
        cr_assert_eq(pgd_cuda_ctx_create(&ctx, err, sizeof err), 0, "%s", err);
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double unif(void) { return ((rnd() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static float normal(void) { return (float)(sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif())); }

/* Normal logits with a few spikes; never exactly zero. */
static void fill_logits(float *x, int V, int spikes)
{
    for (int i = 0; i < V; i++) {
        x[i] = 2.0f * normal();
        if (x[i] == 0.0f)
            x[i] = 0.125f;
    }
    for (int s = 0; s < spikes; s++)
        x[rnd() % (uint64_t)V] = 10.0f + (float)(rnd() % 60) * 0.1f;
}

/* ---- the reference: how close a row's draw is to a boundary (CPU semantics, in double) -- */

struct refp { double p; int id; };
static int cmp_refp(const void *a, const void *b)
{
    const struct refp *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_refp_id(const void *a, const void *b)
{
    const struct refp *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* The smallest slack of row r's draw: the distance of u * kept to a CDF boundary, of the
 * top_p cut to its limit, of the top_k cut to a tie (all relative to the kept mass);
 * INFINITY for greedy rows. */
static double draw_slack(const struct pgd__sample_row *row, const float *raw, int V)
{
    const struct pgd__sample_ctx *c = &row->ctx;
    const struct pgd_sampling_params *sp = c->sp;
    if (sp->temperature < 1e-5f)
        return INFINITY;
    float *x = malloc((size_t)V * sizeof *x);
    struct refp *q = malloc((size_t)V * sizeof *q);
    memcpy(x, raw, (size_t)V * sizeof *x);
    if (c->n_out < sp->min_tokens) {
        if (!sp->ignore_eos)
            for (int i = 0; i < c->n_eos; i++) x[c->eos[i]] = -INFINITY;
        for (int i = 0; i < sp->n_stop_token_ids; i++) x[sp->stop_token_ids[i]] = -INFINITY;
    }
    for (int i = 0; i < sp->n_logit_bias; i++) x[sp->logit_bias[i].token] += sp->logit_bias[i].bias;
    int *cnt = calloc((size_t)V, sizeof *cnt);
    char *seen = calloc((size_t)V, 1);
    for (int i = 0; i < c->n_prompt + c->n_out; i++) {
        int t = c->tokens[i];
        if (!seen[t] && sp->repetition_penalty != 1.0f)
            x[t] = x[t] > 0 ? x[t] / sp->repetition_penalty : x[t] * sp->repetition_penalty;
        seen[t] = 1;
        if (i >= c->n_prompt) cnt[t]++;
    }
    for (int t = 0; t < V; t++)
        if (cnt[t] > 0)
            x[t] -= sp->frequency_penalty * (float)cnt[t] + sp->presence_penalty;
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < V; i++) {
        q[i].p = exp(((double)x[i] - mx) / sp->temperature);
        q[i].id = i;
        sum += q[i].p;
    }
    double pmax = 1.0 / sum;
    int n = 0;
    for (int i = 0; i < V; i++) {
        q[i].p /= sum;
        if (q[i].p > 0 && q[i].p >= sp->min_p * pmax * (1 - 1e-6))
            q[n++] = q[i];
    }
    qsort(q, (size_t)n, sizeof *q, cmp_refp);
    double slack = INFINITY, kept = 0;
    for (int i = 0; i < n; i++) kept += q[i].p;
    if (sp->min_p > 0)    /* a candidate right at the min_p floor */
        for (int i = 0; i < n; i++)
            slack = fmin(slack, fabs(q[i].p - sp->min_p * pmax) / kept);
    if (sp->top_k > 0 && sp->top_k < n) {
        slack = fmin(slack, (q[sp->top_k - 1].p - q[sp->top_k].p) / q[sp->top_k - 1].p);
        n = sp->top_k;
        kept = 0;
        for (int i = 0; i < n; i++) kept += q[i].p;
    }
    if (sp->top_p < 1.0f) {
        double limit = sp->top_p * kept, before = 0;
        int m = 0;
        while (m < n && (m == 0 || before < limit)) {
            slack = fmin(slack, fabs(before - limit) / kept);
            before += q[m++].p;
        }
        if (m < n)
            slack = fmin(slack, fabs(before - limit) / kept);
        n = m;
        kept = before;
    }
    qsort(q, (size_t)n, sizeof *q, cmp_refp_id);     /* the draw walks the kept in id order */
    double u = pgd__sample_uniform(c->seed, c->child, (uint64_t)c->n_out) * kept, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += q[i].p;
        slack = fmin(slack, fabs(u - acc) / kept);
        if (u < acc) break;
    }
    free(x);
    free(q);
    free(cnt);
    free(seen);
    return slack;
}

/* ---- one call on the GPU -------------------------------------------------------------- */

/* Samples rows [n] of logits [n, V] on the GPU (work_rows scratch rows at a time);
 * batch_ids [n_batch] (NULL: none) is the step's token ids, where rows' pending_at point. */
static void gpu_sample_batch(const float *logits, int V, const struct pgd__sample_row *rows,
                             int n, int work_rows, const int32_t *batch_ids, int n_batch,
                             struct pgd__sample_result *res)
{
    char err[512];
    struct pgd__sample_packer pk;
    cr_assert_eq(pgd__sample_packer_init(&pk, V, err, sizeof err), PGD_OK, "%s", err);
    size_t bytes = pgd__sample_pack_bytes(rows, n, V), used = 0;
    void *buf = malloc(bytes);
    cr_assert_eq(pgd__sample_pack(&pk, rows, n, buf, &used, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_leq(used, bytes);
    float *d_logits = pgd_cuda_malloc((size_t)n * V * sizeof(float));
    char *d_pack = pgd_cuda_malloc(bytes);
    float *d_work = pgd_cuda_malloc((size_t)work_rows * V * sizeof(float));
    struct pgd_cuda_sample_out *d_out = pgd_cuda_malloc((size_t)n * sizeof *d_out);
    struct pgd_cuda_sample_out *out = malloc((size_t)n * sizeof *out);
    cr_assert(d_logits && d_pack && d_work && d_out && out);
    cr_assert_eq(pgd_cuda_memcpy_h2d(d_logits, logits, (size_t)n * V * sizeof(float), err,
                                     sizeof err), 0, "%s", err);
    cr_assert_eq(pgd_cuda_memcpy_h2d(d_pack, buf, used, err, sizeof err), 0, "%s", err);
    int32_t *d_batch = NULL;
    if (batch_ids) {
        cr_assert(d_batch = pgd_cuda_malloc((size_t)n_batch * sizeof *d_batch));
        cr_assert_eq(pgd_cuda_memcpy_h2d(d_batch, batch_ids, (size_t)n_batch * sizeof *d_batch,
                                         err, sizeof err), 0, "%s", err);
    }
    const struct pgd_cuda_sample_row *params = (const void *)d_pack;
    cr_assert_eq(pgd_cuda_sample(ctx, d_logits, n, V, params, (const int32_t *)(params + n),
                                 d_batch, d_work, work_rows, d_out, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(pgd_cuda_sync(ctx, err, sizeof err), 0, "%s", err);
    cr_assert_eq(pgd_cuda_memcpy_d2h(out, d_out, (size_t)n * sizeof *out, err, sizeof err), 0,
                 "%s", err);
    pgd__sample_unpack(out, rows, n, res);
    pgd_cuda_free(d_batch);
    pgd_cuda_free(d_logits);
    pgd_cuda_free(d_pack);
    pgd_cuda_free(d_work);
    pgd_cuda_free(d_out);
    free(out);
    free(buf);
    pgd__sample_packer_fini(&pk);
}

static void gpu_sample(const float *logits, int V, const struct pgd__sample_row *rows, int n,
                       int work_rows, struct pgd__sample_result *res)
{
    gpu_sample_batch(logits, V, rows, n, work_rows, NULL, 0, res);
}

/* ---- a case: rows with given params against the CPU ------------------------------------ */

#define MAX_ROWS 320
#define HIST 64

struct rowdata {
    struct pgd_sampling_params sp;
    int32_t tokens[HIST];
    int n_prompt, n_out;
};

static const int32_t EOS[2] = { 2, 7 };

/* Compares GPU and CPU on R rows of vocab V whose params come from make(r, sp). */
static void run_case(const char *name, int V, int R, int n_top,
                     void (*make)(int r, struct pgd_sampling_params *sp))
{
    need_gpu();
    static struct rowdata rd[MAX_ROWS];
    static struct pgd__sample_row rows[MAX_ROWS];
    static struct pgd__sample_result cpu[MAX_ROWS], gpu[MAX_ROWS];
    cr_assert_leq(R, MAX_ROWS);
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int r = 0; r < R; r++) {
        fill_logits(logits + (size_t)r * V, V, 5);
        rd[r].sp = pgd_sampling_default_params();
        make(r, &rd[r].sp);
        rd[r].n_prompt = 1 + (int)(rnd() % 40);
        rd[r].n_out = (int)(rnd() % 20);
        for (int i = 0; i < rd[r].n_prompt + rd[r].n_out; i++)
            rd[r].tokens[i] = (int32_t)(rnd() % (uint64_t)(i % 3 ? V : 50));   /* repeats */
        rows[r] = (struct pgd__sample_row){
            .kind = PGD__ROW_SAMPLE, .n_top = n_top,
            .ctx = { .sp = &rd[r].sp, .tokens = rd[r].tokens, .n_prompt = rd[r].n_prompt,
                     .n_out = rd[r].n_out, .eos = EOS, .n_eos = 2,
                     .seed = 1000 + (uint64_t)r * 7919, .child = (uint32_t)(r % 3) },
        };
    }
    struct pgd__sampler s;
    char err[256];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    float *scratch = malloc((size_t)V * sizeof *scratch);
    pgd__sample_rows_host(&s, scratch, logits, rows, R, cpu);
    gpu_sample(logits, V, rows, R, 64, gpu);
    int boundary = 0;
    for (int r = 0; r < R; r++) {
        const float *raw = logits + (size_t)r * V;
        const struct pgd_sampling_params *sp = &rd[r].sp;
        if (gpu[r].token != cpu[r].token) {
            double slack = draw_slack(&rows[r], raw, V);
            fprintf(stderr, "%s: row %d (V %d, T %g, top_k %d, top_p %g, min_p %g, rep %g, "
                    "freq %g, pres %g, bias %d, min_tokens %d, n_out %d): GPU %d, CPU %d, "
                    "boundary slack %.3g\n", name, r, V, (double)sp->temperature, sp->top_k,
                    (double)sp->top_p, (double)sp->min_p, (double)sp->repetition_penalty,
                    (double)sp->frequency_penalty, (double)sp->presence_penalty,
                    sp->n_logit_bias, sp->min_tokens, rd[r].n_out, gpu[r].token, cpu[r].token,
                    slack);
            cr_assert_lt(slack, BOUNDARY, "%s: row %d: GPU token %d, CPU token %d, and the "
                         "draw is %.3g from any boundary", name, r, gpu[r].token, cpu[r].token,
                         slack);
            boundary++;
            continue;
        }
        if (n_top < 0)
            continue;
        cr_assert_eq(gpu[r].chosen.token, cpu[r].chosen.token, "%s: row %d", name, r);
        cr_assert_eq(gpu[r].chosen.rank, cpu[r].chosen.rank, "%s: row %d: rank of %d: GPU %d, "
                     "CPU %d", name, r, cpu[r].token, gpu[r].chosen.rank, cpu[r].chosen.rank);
        cr_assert(fabsf(gpu[r].chosen.logprob - cpu[r].chosen.logprob) < LP_TOL,
                  "%s: row %d: logprob of %d: GPU %.7g, CPU %.7g", name, r, cpu[r].token,
                  (double)gpu[r].chosen.logprob, (double)cpu[r].chosen.logprob);
        for (int j = 0; j < n_top; j++) {
            cr_assert_eq(gpu[r].top[j].token, cpu[r].top[j].token, "%s: row %d: top %d: GPU "
                         "id %d (%.7g), CPU id %d (%.7g)", name, r, j, gpu[r].top[j].token,
                         (double)gpu[r].top[j].logprob, cpu[r].top[j].token,
                         (double)cpu[r].top[j].logprob);
            cr_assert(fabsf(gpu[r].top[j].logprob - cpu[r].top[j].logprob) < LP_TOL,
                      "%s: row %d: top %d logprob: GPU %.7g, CPU %.7g", name, r, j,
                      (double)gpu[r].top[j].logprob, (double)cpu[r].top[j].logprob);
            cr_assert_eq(gpu[r].top[j].rank, j + 1);
        }
    }
    cr_assert_leq(boundary * 50, R, "%s: %d of %d rows were boundary cases", name, boundary, R);
    fprintf(stderr, "%s: V %d, %d rows equal to the CPU, %d boundary cases\n", name, V,
            R - boundary, boundary);
    pgd__sampler_fini(&s);
    free(scratch);
    free(logits);
}

static void m_greedy(int r, struct pgd_sampling_params *sp) { sp->temperature = 0; }
static void m_temp(int r, struct pgd_sampling_params *sp) { sp->temperature = 0.3f + 0.2f * (r % 6); }
static void m_topk(int r, struct pgd_sampling_params *sp)
{
    static const int ks[] = { 1, 2, 5, 20, 50, 1000 };
    sp->top_k = ks[r % 6];
}
static void m_topp(int r, struct pgd_sampling_params *sp)
{
    static const float ps[] = { 1e-6f, 0.1f, 0.5f, 0.9f, 0.95f, 0.999f };
    sp->top_p = ps[r % 6];
}
static void m_minp(int r, struct pgd_sampling_params *sp) { sp->min_p = 0.01f * (float)(1 + r % 20); }
static void m_pen(int r, struct pgd_sampling_params *sp)
{
    sp->repetition_penalty = r % 3 == 0 ? 1.0f : 1.3f;
    sp->frequency_penalty = r % 3 == 1 ? 0.0f : 0.7f;
    sp->presence_penalty = r % 2 ? -0.5f : 1.5f;
    if (r % 4 == 0)
        sp->temperature = 0;
}
static struct pgd_logit_bias BIAS[4] = { { 5, 30.0f }, { 9, -4.5f }, { 5, -29.0f }, { 11, 12.5f } };
static const int32_t STOPS[2] = { 11, 13 };
static void m_bias_min(int r, struct pgd_sampling_params *sp)
{
    sp->logit_bias = BIAS;
    sp->n_logit_bias = 1 + r % 4;
    sp->min_tokens = r % 2 ? 100 : 0;
    sp->stop_token_ids = STOPS;
    sp->n_stop_token_ids = 2;
    sp->ignore_eos = r % 5 == 0;
    if (r % 3 == 0)
        sp->temperature = 0;
}
static void m_mixed(int r, struct pgd_sampling_params *sp)
{
    switch (r % 7) {
    case 0: m_greedy(r, sp); break;
    case 1: m_temp(r, sp); m_topk(r / 7, sp); break;
    case 2: m_topp(r / 7, sp); m_minp(r, sp); break;
    case 3: m_pen(r, sp); m_topp(r / 7, sp); break;
    case 4: m_bias_min(r, sp); m_topk(r / 7, sp); sp->top_p = 0.8f; break;
    case 5: sp->temperature = 1.3f; sp->top_k = 40; sp->top_p = 0.9f; sp->min_p = 0.05f; break;
    default: break;
    }
}

/* Plain rows (temperature, min_p: sample_plain.cu's kernel) and top_k rows (the general
 * kernel's) alternating in one call. */
static void m_half(int r, struct pgd_sampling_params *sp)
{
    m_temp(r / 2, sp);
    if (r % 2)
        m_topk(r / 2, sp);
    else if (r % 4 == 2)
        m_minp(r / 2, sp);
}

#define CASE(fn, n_top)                                                   \
    Test(cuda_sample, fn##_large) { run_case(#fn, 128256, 96, n_top, fn); } \
    Test(cuda_sample, fn##_small) { run_case(#fn, 1000, 200, n_top, fn); }
CASE(m_greedy, -1)
CASE(m_temp, -1)
CASE(m_topk, -1)
CASE(m_topp, -1)
CASE(m_minp, -1)
CASE(m_pen, -1)
CASE(m_bias_min, -1)
CASE(m_mixed, 5)
CASE(m_half, -1)

Test(cuda_sample, logprobs_top20_and_rank) { run_case("logprobs", 128256, 64, 20, m_temp); }
Test(cuda_sample, logprobs_greedy_top0) { run_case("logprobs0", 1000, 64, 0, m_greedy); }
Test(cuda_sample, many_rows_mixed_in_one_call) { run_case("many", 1000, MAX_ROWS, 3, m_mixed); }

/* Ties: every logit from a handful of values, so top_k cuts and the draw walk through tied
 * probabilities (lower id first). */
static void m_ties(int r, struct pgd_sampling_params *sp) { m_topk(r, sp); sp->top_p = r % 2 ? 0.7f : 1.0f; }
/* Async scheduling's pending token in the penalties: rows whose last output token is a
 * placeholder (-1, left out of the packed pairs) with the real id in the step's batch at
 * pending_at, against the CPU sampler given the whole history. Half the pending ids occur
 * earlier in their row (one more count of a pair), half nowhere else (a pair of their
 * own); greedy rows must match exactly, sampled ones up to a draw at a CDF boundary. */
Test(cuda_sample, penalties_count_the_pending_token)
{
    need_gpu();
    enum { V = 1000, R = 96, NB = 2 * R };
    static struct rowdata rd[R];
    static int32_t placeheld[R][HIST];
    static struct pgd__sample_row cpu_rows[R], gpu_rows[R];
    static struct pgd__sample_result cpu[R], gpu[R];
    int32_t batch[NB];
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int i = 0; i < NB; i++)
        batch[i] = (int32_t)(rnd() % V);
    for (int r = 0; r < R; r++) {
        fill_logits(logits + (size_t)r * V, V, 5);
        struct pgd_sampling_params *sp = &rd[r].sp;
        *sp = pgd_sampling_default_params();
        sp->temperature = r % 2 ? 0.0f : 0.8f;
        sp->repetition_penalty = r % 3 == 0 ? 1.0f : 1.7f;
        sp->frequency_penalty = r % 3 == 1 ? 0.0f : 2.5f;
        sp->presence_penalty = r % 4 == 0 ? 0.0f : 1.5f;
        rd[r].n_prompt = 1 + (int)(rnd() % 20);
        rd[r].n_out = 1 + (int)(rnd() % 20);
        const int n_all = rd[r].n_prompt + rd[r].n_out;
        for (int i = 0; i < n_all - 1; i++)
            rd[r].tokens[i] = (int32_t)(rnd() % 50);       /* repeats */
        /* The pending token: one seen before in the row, or one nowhere else (>= 50: the
         * row's largest logit when that is such an id, so that its penalty moves greedy
         * rows); it sits at batch index 2r + 1 (the others: other rows' inputs). */
        const float *x = logits + (size_t)r * V;
        int32_t top = 0;
        for (int32_t i = 1; i < V; i++)
            top = x[i] > x[top] ? i : top;
        rd[r].tokens[n_all - 1] = r % 4 < 2 ? rd[r].tokens[rnd() % (uint64_t)(n_all - 1)]
                                  : top >= 50 ? top : (int32_t)(50 + rnd() % (V - 50));
        batch[2 * r + 1] = rd[r].tokens[n_all - 1];
        memcpy(placeheld[r], rd[r].tokens, (size_t)n_all * sizeof(int32_t));
        placeheld[r][n_all - 1] = -1;
        cpu_rows[r] = (struct pgd__sample_row){
            .kind = PGD__ROW_SAMPLE, .n_top = -1,
            .ctx = { .sp = sp, .tokens = rd[r].tokens, .n_prompt = rd[r].n_prompt,
                     .n_out = rd[r].n_out, .eos = EOS, .n_eos = 2,
                     .seed = 500 + (uint64_t)r, .child = 0 },
        };
        gpu_rows[r] = cpu_rows[r];
        gpu_rows[r].ctx.tokens = placeheld[r];
        gpu_rows[r].pending = true;
        gpu_rows[r].pending_at = 2 * r + 1;
    }
    struct pgd__sampler s;
    char err[256];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    float *scratch = malloc((size_t)V * sizeof *scratch);
    pgd__sample_rows_host(&s, scratch, logits, cpu_rows, R, cpu);
    gpu_sample_batch(logits, V, gpu_rows, R, 64, batch, NB, gpu);
    int boundary = 0, moved = 0;
    for (int r = 0; r < R; r++) {
        /* A greedy row without the pending token, to see that it mattered somewhere. */
        if (rd[r].sp.temperature == 0) {
            struct pgd__sample_result without;
            struct pgd__sample_row w = cpu_rows[r];
            w.ctx.n_out--;
            pgd__sample_rows_host(&s, scratch, logits + (size_t)r * V, &w, 1, &without);
            moved += without.token != cpu[r].token;
        }
        if (gpu[r].token == cpu[r].token)
            continue;
        cr_assert(rd[r].sp.temperature > 0, "row %d (greedy): GPU %d, CPU %d", r,
                  gpu[r].token, cpu[r].token);
        cr_assert_lt(draw_slack(&cpu_rows[r], logits + (size_t)r * V, V), BOUNDARY,
                     "row %d: GPU %d, CPU %d away from any boundary", r, gpu[r].token,
                     cpu[r].token);
        boundary++;
    }
    cr_assert_leq(boundary * 20, R, "%d of %d rows at a boundary", boundary, R);
    cr_assert_gt(moved, 0, "no row's token depended on its pending token: the test tests "
                 "nothing");
    pgd__sampler_fini(&s);
    free(scratch);
    free(logits);
}

Test(cuda_sample, ties_in_top_k_top_p_and_the_draw)
{
    need_gpu();
    enum { V = 1000, R = 120 };
    static struct rowdata rd[R];
    static struct pgd__sample_row rows[R];
    static struct pgd__sample_result cpu[R], gpu[R];
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int r = 0; r < R; r++) {
        for (int i = 0; i < V; i++)
            logits[(size_t)r * V + i] = (float)(rnd() % 4) * 0.5f - 3.0f + (i % 97 == 0 ? 4.0f : 0.0f);
        rd[r].sp = pgd_sampling_default_params();
        m_ties(r, &rd[r].sp);
        rd[r].tokens[0] = 1;
        rows[r] = (struct pgd__sample_row){
            .kind = PGD__ROW_SAMPLE, .n_top = 4,
            .ctx = { .sp = &rd[r].sp, .tokens = rd[r].tokens, .n_prompt = 1, .n_out = 0,
                     .eos = EOS, .n_eos = 2, .seed = 77 + (uint64_t)r },
        };
    }
    struct pgd__sampler s;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    float *scratch = malloc(V * sizeof *scratch);
    pgd__sample_rows_host(&s, scratch, logits, rows, R, cpu);
    gpu_sample(logits, V, rows, R, 32, gpu);
    for (int r = 0; r < R; r++) {
        cr_assert_eq(gpu[r].token, cpu[r].token, "ties: row %d (top_k %d, top_p %g): GPU %d, "
                     "CPU %d", r, rd[r].sp.top_k, (double)rd[r].sp.top_p, gpu[r].token,
                     cpu[r].token);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(gpu[r].top[j].token, cpu[r].top[j].token, "ties: row %d top %d", r, j);
    }
    pgd__sampler_fini(&s);
    free(scratch);
    free(logits);
}

/* Prompt-logprobs rows: the logprob and rank of a given token and the top alternatives. */
Test(cuda_sample, target_rows_logprob_rank_and_top)
{
    need_gpu();
    enum { V = 128256, R = 40 };
    static struct pgd__sample_row rows[R];
    static struct pgd__sample_result cpu[R], gpu[R];
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int r = 0; r < R; r++) {
        fill_logits(logits + (size_t)r * V, V, 3);
        rows[r] = (struct pgd__sample_row){ .kind = r == 5 ? PGD__ROW_SKIP : PGD__ROW_TARGET,
                                            .target = (int32_t)(rnd() % V), .n_top = r % 21 };
    }
    struct pgd__sampler s;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    float *scratch = malloc(V * sizeof *scratch);
    pgd__sample_rows_host(&s, scratch, logits, rows, R, cpu);
    gpu_sample(logits, V, rows, R, 8, gpu);
    for (int r = 0; r < R; r++) {
        cr_assert_eq(gpu[r].token, -1);
        if (rows[r].kind == PGD__ROW_SKIP)
            continue;
        cr_assert_eq(gpu[r].chosen.token, rows[r].target);
        cr_assert_eq(gpu[r].chosen.rank, cpu[r].chosen.rank, "target row %d: rank GPU %d, CPU "
                     "%d", r, gpu[r].chosen.rank, cpu[r].chosen.rank);
        cr_assert(fabsf(gpu[r].chosen.logprob - cpu[r].chosen.logprob) < LP_TOL, "target row "
                  "%d: logprob GPU %.7g, CPU %.7g", r, (double)gpu[r].chosen.logprob,
                  (double)cpu[r].chosen.logprob);
        for (int j = 0; j < rows[r].n_top; j++) {
            cr_assert_eq(gpu[r].top[j].token, cpu[r].top[j].token, "target row %d top %d", r, j);
            cr_assert(fabsf(gpu[r].top[j].logprob - cpu[r].top[j].logprob) < LP_TOL);
        }
    }
    pgd__sampler_fini(&s);
    free(scratch);
    free(logits);
}

/* The same call twice gives the same bytes. */
Test(cuda_sample, seeded_calls_are_reproducible)
{
    need_gpu();
    enum { V = 128256, R = 64 };
    static struct rowdata rd[R];
    static struct pgd__sample_row rows[R];
    static struct pgd__sample_result a[R], b[R];
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int r = 0; r < R; r++) {
        fill_logits(logits + (size_t)r * V, V, 4);
        rd[r].sp = pgd_sampling_default_params();
        m_mixed(r, &rd[r].sp);
        rd[r].tokens[0] = 3;
        rows[r] = (struct pgd__sample_row){
            .kind = PGD__ROW_SAMPLE, .n_top = 2,
            .ctx = { .sp = &rd[r].sp, .tokens = rd[r].tokens, .n_prompt = 1, .eos = EOS,
                     .n_eos = 2, .seed = 5 + (uint64_t)r },
        };
    }
    gpu_sample(logits, V, rows, R, 64, a);
    gpu_sample(logits, V, rows, R, 16, b);
    for (int r = 0; r < R; r++) {
        cr_assert_eq(a[r].token, b[r].token, "row %d: %d then %d", r, a[r].token, b[r].token);
        cr_assert_eq(memcmp(&a[r].chosen, &b[r].chosen, sizeof a[r].chosen), 0, "row %d", r);
        cr_assert_eq(memcmp(a[r].top, b[r].top, 2 * sizeof a[r].top[0]), 0, "row %d", r);
    }
    free(logits);
}

/* The draws over many seeds follow the distribution the parameters describe. */
Test(cuda_sample, chi_square_over_seeds)
{
    need_gpu();
    enum { V = 12, R = 20000 };
    static const double CHI2_999[] = { 0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32,
                                       26.12, 27.88, 29.59, 31.26, 32.91 };
    static const float L[V] = { 2.0f, 1.5f, 1.2f, 1.0f, 0.5f, 0.1f, -0.3f, -1.0f, -2.0f,
                                0.9f, 1.49f, -0.5f };
    /* 0 and 3 are plain rows (sample_plain.cu's kernel), 1 and 2 the general kernel's. */
    struct { float T, top_p, min_p; int top_k; } cfg[4] = {
        { 1.0f, 1.0f, 0.0f, 0 }, { 0.7f, 0.9f, 0.0f, 8 }, { 1.5f, 0.95f, 0.05f, 0 },
        { 1.2f, 1.0f, 0.1f, 0 } };
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int r = 0; r < R; r++) memcpy(logits + (size_t)r * V, L, sizeof L);
    static struct pgd__sample_row rows[R];
    static struct pgd__sample_result res[R];
    int32_t tok0 = 0;
    for (int c = 0; c < 4; c++) {
        struct pgd_sampling_params sp = pgd_sampling_default_params();
        sp.temperature = cfg[c].T;
        sp.top_p = cfg[c].top_p;
        sp.min_p = cfg[c].min_p;
        sp.top_k = cfg[c].top_k;
        for (int r = 0; r < R; r++)
            rows[r] = (struct pgd__sample_row){
                .kind = PGD__ROW_SAMPLE, .n_top = -1,
                .ctx = { .sp = &sp, .tokens = &tok0, .n_prompt = 1, .seed = 424242 + (uint64_t)r },
            };
        gpu_sample(logits, V, rows, R, 256, res);
        /* Expected: the CPU semantics in double. */
        double p[V], mx = -INFINITY, sum = 0;
        for (int i = 0; i < V; i++) mx = fmax(mx, L[i]);
        for (int i = 0; i < V; i++) sum += (p[i] = exp((L[i] - mx) / sp.temperature));
        struct refp q[V];
        int n = 0;
        for (int i = 0; i < V; i++)
            if (p[i] / sum >= sp.min_p / sum)
                q[n++] = (struct refp){ p[i] / sum, i };
        qsort(q, (size_t)n, sizeof *q, cmp_refp);
        if (sp.top_k > 0 && sp.top_k < n) n = sp.top_k;
        double kept = 0;
        for (int i = 0; i < n; i++) kept += q[i].p;
        double before = 0;
        int m = 0;
        while (m < n && (m == 0 || before < sp.top_p * kept)) before += q[m++].p;
        double e[V] = { 0 };
        for (int i = 0; i < m; i++) e[q[i].id] = q[i].p / before * R;
        int count[V] = { 0 };
        for (int r = 0; r < R; r++) {
            cr_assert(res[r].token >= 0 && res[r].token < V);
            count[res[r].token]++;
        }
        double chi = 0;
        int df = -1;
        for (int i = 0; i < V; i++) {
            if (e[i] == 0) {
                cr_assert_eq(count[i], 0, "config %d: token %d excluded but drawn %d times", c,
                             i, count[i]);
                continue;
            }
            chi += (count[i] - e[i]) * (count[i] - e[i]) / e[i];
            df++;
        }
        fprintf(stderr, "chi-square: config %d: %.2f with %d degrees of freedom (0.999 "
                "quantile %.2f)\n", c, chi, df, CHI2_999[df]);
        cr_assert_lt(chi, CHI2_999[df], "config %d: chi-square %.2f, %d degrees of freedom", c,
                     chi, df);
    }
    free(logits);
}

/* ---- the engine: device sampling on and off give the same tokens ------------------------ */

#define MAX_OUT 12

struct got {
    int32_t tok[2][MAX_OUT];
    float lp[2][MAX_OUT];
    int32_t top1[2][MAX_OUT];
    int n[2];
    float plp[64];
    int32_t plp_top0[64];
    int n_plp;
};

static void collect(struct pgd_stream *s, struct got *g)
{
    memset(g, 0, sizeof *g);
    struct pgd_output o;
    enum pgd_status st;
    while ((st = pgd_stream_next(s, &o, 60000)) == PGD_OK) {
        cr_assert(o.index >= 0 && o.index < 2);
        for (int i = 0; i < o.n_token_ids; i++) {
            int k = g->n[o.index]++;
            cr_assert_lt(k, MAX_OUT);
            g->tok[o.index][k] = o.token_ids[i];
            if (o.logprobs) {
                g->lp[o.index][k] = o.logprobs[i].chosen.logprob;
                cr_assert_eq(o.logprobs[i].chosen.token, o.token_ids[i]);
                if (o.logprobs[i].n_top > 0)
                    g->top1[o.index][k] = o.logprobs[i].top[0].token;
            }
        }
        for (int i = 0; i < o.n_prompt_logprobs && i < 64; i++) {
            g->plp[i] = o.prompt_logprobs[i].chosen.logprob;
            g->plp_top0[i] = o.prompt_logprobs[i].n_top > 0 ? o.prompt_logprobs[i].top[0].token : -1;
            g->n_plp = i + 1;
        }
    }
    cr_assert_eq(st, PGD_ERR_CLOSED);
}

Test(cuda_sample, engine_device_sampling_equals_host_sampling, .timeout = 600)
{
    need_gpu();
    enum { N = 24 };
    int32_t prompt[N][32];
    int len[N];
    struct pgd_sampling_params sp[N];
    for (int r = 0; r < N; r++) {
        len[r] = 2 + (int)(rnd() % 30);
        for (int i = 0; i < len[r]; i++) prompt[r][i] = 3 + (int32_t)(rnd() % 500);
        sp[r] = pgd_sampling_default_params();
        sp[r].max_tokens = MAX_OUT;
        sp[r].ignore_eos = true;
        sp[r].has_seed = true;
        sp[r].seed = 1234 + (uint64_t)r;
        sp[r].n = r % 4 == 0 ? 2 : 1;
        switch (r % 6) {
        case 0: sp[r].temperature = 0.8f; sp[r].top_p = 0.9f; break;
        case 1: sp[r].top_k = 20; sp[r].logprobs = 3; break;
        case 2: sp[r].temperature = 1.2f; sp[r].min_p = 0.05f; sp[r].repetition_penalty = 1.2f;
                sp[r].frequency_penalty = 0.4f; sp[r].presence_penalty = 0.3f; break;
        case 3: sp[r].temperature = 0; sp[r].prompt_logprobs = 2; sp[r].logprobs = 0; break;
        case 4: sp[r].top_p = 0.5f; sp[r].prompt_logprobs = 0; sp[r].min_tokens = 4; break;
        default: sp[r].temperature = 0; break;
        }
    }
    static struct got g[2][N];
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = model_engine("llama-f32", PGD_DEVICE_CUDA, 128, 16, 256, 4);
        char err[1024];
        pgd__engine_set_device_sampling(e, mode == 0);
        for (int r = 0; r < N; r++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt_ids = prompt[r];
            rp.n_prompt_ids = len[r];
            rp.detokenize = false;
            rp.sampling = sp[r];
            struct pgd_stream *s;
            cr_assert_eq(pgd_engine_submit(e, &rp, &s, err, sizeof err), PGD_OK, "%s", err);
            collect(s, &g[mode][r]);
            pgd_stream_destroy(s);
        }
        pgd_engine_destroy(e);
    }
    for (int r = 0; r < N; r++) {
        for (int k = 0; k < sp[r].n; k++) {
            cr_assert_eq(g[0][r].n[k], MAX_OUT);
            cr_assert_eq(g[1][r].n[k], MAX_OUT);
            for (int t = 0; t < MAX_OUT; t++) {
                /* A boundary case (u within ~1e-6 of a CDF boundary) would show here; with
                 * vocab 512 and ~400 draws it has odds of ~1e-4. */
                cr_assert_eq(g[0][r].tok[k][t], g[1][r].tok[k][t], "request %d (case %d) sample "
                             "%d token %d: device %d, host %d", r, r % 6, k, t,
                             g[0][r].tok[k][t], g[1][r].tok[k][t]);
                if (sp[r].logprobs >= 0)
                    cr_assert(fabsf(g[0][r].lp[k][t] - g[1][r].lp[k][t]) < LP_TOL, "request %d "
                              "token %d: logprob device %.7g, host %.7g", r, t,
                              (double)g[0][r].lp[k][t], (double)g[1][r].lp[k][t]);
                if (sp[r].logprobs > 0)
                    cr_assert_eq(g[0][r].top1[k][t], g[1][r].top1[k][t]);
            }
        }
        cr_assert_eq(g[0][r].n_plp, g[1][r].n_plp);
        if (sp[r].prompt_logprobs >= 0)
            cr_assert_eq(g[0][r].n_plp, len[r] - 1, "request %d: %d prompt logprobs", r,
                         g[0][r].n_plp);
        for (int i = 0; i < g[0][r].n_plp; i++) {
            cr_assert(fabsf(g[0][r].plp[i] - g[1][r].plp[i]) < LP_TOL, "request %d prompt "
                      "position %d: device %.7g, host %.7g", r, i + 1, (double)g[0][r].plp[i],
                      (double)g[1][r].plp[i]);
            cr_assert_eq(g[0][r].plp_top0[i], g[1][r].plp_top0[i]);
        }
    }
}
/* Structured output: rows with an allowed-token bitmask (a few hundred tokens of 128256, the
 * spikes mostly outside it) beside rows without, in one call: every token is allowed, the
 * greedy rows are the CPU's token exactly, the sampled ones too unless at a boundary. */
Test(cuda_sample, allowed_token_bitmask_rows_beside_free_rows)
{
    need_gpu();
    enum { V = 128256, R = 48 };
    size_t words = (V + 31) / 32;
    static struct pgd_sampling_params sp[R];
    static struct pgd__sample_row rows[R];
    static struct pgd__sample_result cpu[R], gpu[R];
    static int32_t toks[R][4];
    uint32_t *allow = calloc((size_t)R * words, sizeof *allow);
    float *logits = malloc((size_t)R * V * sizeof *logits);
    for (int r = 0; r < R; r++) {
        fill_logits(logits + (size_t)r * V, V, 5);
        sp[r] = pgd_sampling_default_params();
        sp[r].temperature = r % 2 ? 0.0f : 0.8f;
        uint32_t *a = allow + (size_t)r * words;
        for (int k = 0; k < 300; k++) {
            int t = (int)(rnd() % V);
            a[t >> 5] |= 1u << (t & 31);
        }
        toks[r][0] = 5;
        rows[r] = (struct pgd__sample_row){
            .kind = PGD__ROW_SAMPLE, .n_top = r % 4 == 0 ? 3 : -1,
            .ctx = { .sp = &sp[r], .tokens = toks[r], .n_prompt = 1, .n_out = 0, .eos = EOS,
                     .n_eos = 2, .seed = 99 + (uint64_t)r, .allow = r % 3 == 2 ? NULL : a },
        };
    }
    struct pgd__sampler s;
    char err[256];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    float *scratch = malloc((size_t)V * sizeof *scratch);
    pgd__sample_rows_host(&s, scratch, logits, rows, R, cpu);
    gpu_sample(logits, V, rows, R, 16, gpu);
    int differ = 0;
    for (int r = 0; r < R; r++) {
        const uint32_t *a = rows[r].ctx.allow;
        int t = gpu[r].token;
        cr_assert(t >= 0 && t < V);
        if (a)
            cr_assert((a[t >> 5] >> (t & 31)) & 1, "row %d: GPU token %d is not allowed", r, t);
        if (sp[r].temperature == 0.0f)
            cr_assert_eq(t, cpu[r].token, "row %d (greedy): GPU %d, CPU %d", r, t, cpu[r].token);
        else
            differ += t != cpu[r].token;
        if (rows[r].n_top >= 0)
            cr_assert_eq(gpu[r].chosen.rank, cpu[r].chosen.rank, "row %d: rank (raw logits)", r);
    }
    cr_assert_leq(differ, 1, "%d sampled rows differ from the CPU", differ);
    pgd__sampler_fini(&s);
    free(scratch);
    free(logits);
    free(allow);
}

/* Reads stream s to its end and destroys it: its text into text[cap] (NUL-terminated), its
 * first max_toks token ids into toks and, when lp is not NULL, their chosen logprobs into
 * lp. Returns how many ids were kept. */
static int read_stream(struct pgd_stream *s, char *text, size_t cap, int32_t *toks,
                       struct pgd_logprob *lp, int max_toks)
{
    struct pgd_output o;
    size_t len = 0;
    int n = 0;
    while (pgd_stream_next(s, &o, 60000) == PGD_OK) {
        cr_assert_lt(len + o.text_len, cap);
        memcpy(text + len, o.text, o.text_len);
        len += o.text_len;
        for (int i = 0; i < o.n_token_ids && n < max_toks; i++) {
            if (lp)
                lp[n] = o.logprobs[i].chosen;
            toks[n++] = o.token_ids[i];
        }
    }
    text[len] = '\0';
    pgd_stream_destroy(s);
    return n;
}

/* Structured output through the engine on the GPU (tiny-chat: a real tokenizer): with device
 * sampling (the allowed-token bitmask packed into the sampling kernel's rows) and without
 * (host sampling), guided requests beside free ones give the same tokens, and the guided
 * outputs have their shape. */
Test(cuda_sample, engine_structured_output_device_equals_host, .timeout = 600)
{
    need_gpu();
    enum { N = 8 };
    static const char *const RE = "[a-z]{2,6}-[0-9]{1,3}";
    char text[2][N][1024];
    int32_t toks[2][N][64];
    int nt[2][N];
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = model_engine("tiny-chat", PGD_DEVICE_CUDA, 128, 16, 256, 8);
        pgd__engine_set_device_sampling(e, mode == 0);
        struct pgd_stream *s[N];
        char err[1024];
        for (int r = 0; r < N; r++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt = "Write:";
            rp.sampling.max_tokens = 48;
            rp.sampling.has_seed = true;
            rp.sampling.seed = 77 + (uint64_t)r;
            rp.sampling.temperature = r % 2 ? 0.0f : 0.9f;
            if (r % 4 != 3) {               /* three guided requests in four */
                rp.sampling.guide_kind = r % 4 == 2 ? PGD_GUIDE_JSON_OBJECT : PGD_GUIDE_REGEX;
                rp.sampling.guide = r % 4 == 2 ? NULL : RE;
            } else {
                rp.sampling.ignore_eos = true;
            }
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[r], err, sizeof err), PGD_OK, "%s", err);
        }
        for (int r = 0; r < N; r++)
            nt[mode][r] = read_stream(s[r], text[mode][r], sizeof text[0][0], toks[mode][r],
                                      NULL, 64);
        pgd_engine_destroy(e);
    }
    pcre2_code *re = NULL;
    for (int r = 0; r < N; r++) {
        cr_assert_eq(nt[0][r], nt[1][r], "request %d: %d tokens on the device, %d on the host",
                     r, nt[0][r], nt[1][r]);
        cr_assert_eq(memcmp(toks[0][r], toks[1][r], (size_t)nt[0][r] * sizeof(int32_t)), 0,
                     "request %d: device \"%s\", host \"%s\"", r, text[0][r], text[1][r]);
        if (r % 4 == 0 || r % 4 == 1) {
            int code;
            PCRE2_SIZE off;
            if (!re)
                re = pcre2_compile((PCRE2_SPTR)RE, PCRE2_ZERO_TERMINATED,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
            cr_assert_geq(pcre2_match(re, (PCRE2_SPTR)text[0][r], strlen(text[0][r]), 0, 0, md,
                                      NULL), 0, "request %d: \"%s\" does not match %s", r,
                          text[0][r], RE);
            pcre2_match_data_free(md);
        }
    }
    pcre2_code_free(re);
}


/* Async scheduling with masks made late on the GPU (runner_async.c: a step with allow_late
 * rows queues its forward pass at submit, its sampling once the engine has made the masks,
 * after the step before landed; PGD_CUDA_ASYNC_MASKS=0 turns it off): guided requests (a
 * regex that cannot end within max_tokens) and requests with bad words, seeded sampling
 * with logprobs, give the same tokens and logprobs bit for bit as stepping in turn. Every
 * request is admitted in the first step (the engine is held while they are submitted: the
 * GPU's sums depend on which rows share a step) and ends at max_tokens, so both take the
 * same steps. */
Test(cuda_sample, async_masks_made_late_give_the_same_outputs, .timeout = 600)
{
    need_gpu();
    enum { N = 12 };
    static const char *const RE = "[a-z ]{200}";
    static const char *const BAD[] = { " the", "ing", " a" };
    static int32_t toks[2][N][16];
    static struct pgd_logprob lp[2][N][16];
    static char text[2][N][512];
    int nt[2][N];
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine_params p = model_engine_sized(PGD_DEVICE_CUDA, 128, 16, 256, 16);
        p.async_scheduling = mode == 1;
        struct pgd_engine *e = model_engine_params("tiny-chat", &p);
        pgd__engine_set_jump_forward(e, false);
        pgd__engine_hold(e, true);   /* all N in the first step, in both runs */
        struct pgd_stream *s[N];
        char err[1024];
        for (int r = 0; r < N; r++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt = r % 3 ? "Write a story:" : "Name:";
            rp.sampling.max_tokens = 4 + r % 12;
            rp.sampling.has_seed = true;
            rp.sampling.seed = 300 + (uint64_t)r;
            rp.sampling.temperature = 0.8f;
            rp.sampling.logprobs = 0;
            rp.sampling.ignore_eos = true;
            if (r % 2 == 0) {
                rp.sampling.guide_kind = PGD_GUIDE_REGEX;
                rp.sampling.guide = RE;
            } else {
                rp.sampling.bad_words = BAD;
                rp.sampling.n_bad_words = 3;
            }
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[r], err, sizeof err), PGD_OK, "%s", err);
        }
        pgd__engine_hold(e, false);
        for (int r = 0; r < N; r++)
            nt[mode][r] = read_stream(s[r], text[mode][r], sizeof text[0][0], toks[mode][r],
                                      lp[mode][r], 16);
        struct pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        if (mode == 1)
            cr_assert_gt(st.num_steps_overlapped, 4, "%llu steps overlapped",
                         (unsigned long long)st.num_steps_overlapped);
        pgd_engine_destroy(e);
    }
    for (int r = 0; r < N; r++) {
        cr_assert_eq(nt[0][r], 4 + r % 12, "request %d", r);
        cr_assert_eq(nt[1][r], nt[0][r], "request %d: %d tokens async, %d in turn", r,
                     nt[1][r], nt[0][r]);
        cr_assert_eq(memcmp(toks[1][r], toks[0][r], (size_t)nt[0][r] * sizeof(int32_t)), 0,
                     "request %d: async \"%s\", in turn \"%s\"", r, text[1][r], text[0][r]);
        for (int k = 0; k < nt[0][r]; k++)
            cr_assert_eq(memcmp(&lp[1][r][k], &lp[0][r][k], sizeof lp[0][r][k]), 0,
                         "request %d token %d: logprob %.9g rank %d async, %.9g rank %d in "
                         "turn", r, k, (double)lp[1][r][k].logprob, lp[1][r][k].rank,
                         (double)lp[0][r][k].logprob, lp[0][r][k].rank);
        for (const char *c = text[0][r]; r % 2 == 0 && *c; c++)
            cr_assert((*c >= 'a' && *c <= 'z') || *c == ' ', "request %d: \"%s\"", r,
                      text[0][r]);
    }
}

/* One request held by logit_bias to tokens ab (temperature 1, seeded), with bad_words
 * `bad` (NULL: none): *pairs += how often ab[1] follows ab[0], *firsts += how often ab[0]
 * appears. */
static void biased_run(struct pgd_engine *e, const int32_t ab[2], const char *bad,
                       uint64_t seed, int *pairs, int *firsts)
{
    struct pgd_logit_bias lb[2] = { { ab[0], 100.0f }, { ab[1], 100.0f } };
    const char *words[] = { bad };
    struct pgd_request_params rp = pgd_request_default_params();
    rp.prompt = "Once upon a time";
    rp.sampling.temperature = 1.0f;
    rp.sampling.has_seed = true;
    rp.sampling.seed = seed;
    rp.sampling.max_tokens = 48;
    rp.sampling.ignore_eos = true;
    rp.sampling.logit_bias = lb;
    rp.sampling.n_logit_bias = 2;
    rp.sampling.bad_words = bad ? words : NULL;
    rp.sampling.n_bad_words = bad ? 1 : 0;
    struct pgd_stream *s;
    char err[512];
    cr_assert_eq(pgd_engine_submit(e, &rp, &s, err, sizeof err), PGD_OK, "%s", err);
    struct pgd_output o;
    int32_t prev = -1;
    while (pgd_stream_next(s, &o, 60000) == PGD_OK)
        for (int i = 0; i < o.n_token_ids; i++) {
            *pairs += prev == ab[0] && o.token_ids[i] == ab[1];
            *firsts += o.token_ids[i] == ab[0];
            prev = o.token_ids[i];
        }
    pgd_stream_destroy(s);
}

/* bad_words on the GPU (the allowed-token bitmask of the device sampler): logit_bias holds
 * the output to the two tokens of a word ("q" and a letter: the first such pair that the
 * model then writes), and with bad_words its second token never follows its first, while
 * the first alone still appears (tests/unit/test_engine_bad_words.c checks the CPU paths). */
Test(cuda_sample, engine_bad_words_on_the_device, .timeout = 600)
{
    need_gpu();
    struct pgd_engine *e = model_engine("tiny-chat", PGD_DEVICE_CUDA, 128, 16, 256, 8);
    pgd__engine_set_device_sampling(e, true);
    char word[3] = "q";
    int32_t ab[2] = { -1, -1 };
    int pairs = 0, firsts = 0;
    for (int i = 0; i < 26 && pairs == 0; i++) {
        word[1] = (char)('a' + i);
        struct pgd_tokens t;
        pgd_tokens_init(&t);
        char err[256];
        cr_assert_eq(pgd_tokenizer_encode(pgd_engine_tokenizer(e), word, 2, false, &t, err,
                                          sizeof err), PGD_OK, "%s", err);
        bool two = t.n == 2 && t.ids[0] != t.ids[1];
        if (two) {
            ab[0] = t.ids[0];
            ab[1] = t.ids[1];
        }
        pgd_tokens_fini(&t);
        for (uint64_t seed = 0; two && seed < 3; seed++)
            biased_run(e, ab, NULL, seed, &pairs, &firsts);
    }
    cr_assert_gt(pairs, 0, "no q-word of two tokens that the bias makes the model write");
    pairs = firsts = 0;
    for (uint64_t seed = 0; seed < 3; seed++)
        biased_run(e, ab, word, seed, &pairs, &firsts);
    pgd_engine_destroy(e);
    cr_assert_eq(pairs, 0, "\"%s\" was written %d times despite bad_words", word, pairs);
    cr_assert_gt(firsts, 0, "the word's first token alone was banned too");
}

#endif
