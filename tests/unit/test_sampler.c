/* Sampling: the distributions temperature / top_k / top_p / min_p draw from (chi-square),
 * seeded reproducibility, penalties, logit bias, min_tokens, logprobs, Philox, and stop
 * strings over text deltas. */
#include <criterion/criterion.h>
#include "runtime/sample/sampler.h"
#include "runtime/engine/stop.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tests/lib/test_common.h"

PGD_TEST_SUITE(sampler);
PGD_TEST_SUITE(stop);

#define V 10
static const float LOGITS[V] = { 2.0f, 1.5f, 1.2f, 1.0f, 0.5f, 0.1f, -0.3f, -1.0f, -2.0f, 0.9f };

/* The distribution the parameters describe, computed the plain way. */
static void expected(const struct pgd_sampling_params *sp, double *p)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, LOGITS[i] / sp->temperature);
    for (int i = 0; i < V; i++) sum += (p[i] = exp(LOGITS[i] / sp->temperature - mx));
    double pmax = 0;
    for (int i = 0; i < V; i++) pmax = fmax(pmax, p[i] /= sum);
    bool keep[V];
    for (int i = 0; i < V; i++) keep[i] = p[i] >= sp->min_p * pmax;
    /* Order by probability (all distinct here). */
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (p[order[j]] > p[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    int kept = 0;
    for (int r = 0; r < V; r++) {
        int i = order[r];
        if (!keep[i]) continue;
        if (sp->top_k > 0 && kept >= sp->top_k) keep[i] = false;
        else kept++;
    }
    double mass = 0;
    for (int i = 0; i < V; i++) if (keep[i]) mass += p[i];
    double before = 0;
    for (int r = 0; r < V; r++) {
        int i = order[r];
        if (!keep[i]) continue;
        if (before >= sp->top_p * mass && before > 0) keep[i] = false;
        else before += p[i];
    }
    sum = 0;
    for (int i = 0; i < V; i++) sum += keep[i] ? p[i] : 0;
    for (int i = 0; i < V; i++) p[i] = keep[i] ? p[i] / sum : 0;
}

static const double CHI2_999[] = { 0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12,
                                   27.88, 29.59 };

static void chi_square(struct pgd_sampling_params sp, uint64_t seed0)
{
    struct pgd__sampler s;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    double p[V];
    expected(&sp, p);
    enum { N = 20000 };
    int count[V] = { 0 };
    int32_t prompt[1] = { 3 };
    float row[V];
    for (int n = 0; n < N; n++) {
        memcpy(row, LOGITS, sizeof row);
        struct pgd__sample_ctx c = { .sp = &sp, .tokens = prompt, .n_prompt = 1,
                                     .seed = seed0 + (uint64_t)n };
        int32_t t = pgd__sampler_sample(&s, &c, row);
        cr_assert(t >= 0 && t < V);
        count[t]++;
    }
    double chi = 0;
    int df = -1;
    for (int i = 0; i < V; i++) {
        if (p[i] == 0) {
            cr_assert_eq(count[i], 0, "token %d is excluded but drawn %d times", i, count[i]);
            continue;
        }
        double e = p[i] * N;
        chi += (count[i] - e) * (count[i] - e) / e;
        df++;
    }
    if (df > 0)
        cr_assert_lt(chi, CHI2_999[df], "chi-square %.2f with %d degrees of freedom (T=%g, "
                     "top_k=%d, top_p=%g, min_p=%g)", chi, df, (double)sp.temperature, sp.top_k,
                     (double)sp.top_p, (double)sp.min_p);
    else
        cr_assert_eq(df, 0);
    pgd__sampler_fini(&s);
}

Test(sampler, temperature_draws_from_the_softmax)
{
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    chi_square(sp, 1);
    sp.temperature = 0.5f;
    chi_square(sp, 100000);
    sp.temperature = 2.0f;
    chi_square(sp, 200000);
}

Test(sampler, top_k_top_p_min_p_draw_from_the_truncated_distribution)
{
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.top_k = 3;
    chi_square(sp, 300000);
    sp = pgd_sampling_default_params();
    sp.top_p = 0.6f;
    chi_square(sp, 400000);
    sp.temperature = 0.7f;
    sp.top_p = 0.9f;
    sp.top_k = 5;
    chi_square(sp, 500000);
    sp = pgd_sampling_default_params();
    sp.min_p = 0.2f;
    chi_square(sp, 600000);
    sp.min_p = 0.05f;
    sp.top_p = 0.8f;
    sp.temperature = 1.3f;
    chi_square(sp, 700000);
    sp = pgd_sampling_default_params();
    sp.top_k = 1;                       /* one candidate: always the argmax */
    chi_square(sp, 800000);
}

Test(sampler, a_seed_fixes_the_draw_and_children_differ)
{
    struct pgd__sampler s;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 1.5f;
    int32_t toks[40] = { 1 };
    int differ = 0;
    for (int k = 0; k < 39; k++) {
        float a[V], b[V], c[V];
        memcpy(a, LOGITS, sizeof a);
        memcpy(b, LOGITS, sizeof b);
        memcpy(c, LOGITS, sizeof c);
        struct pgd__sample_ctx x = { .sp = &sp, .tokens = toks, .n_prompt = 1, .n_out = k,
                                     .seed = 42 };
        int32_t t1 = pgd__sampler_sample(&s, &x, a);
        int32_t t2 = pgd__sampler_sample(&s, &x, b);
        x.child = 1;
        int32_t t3 = pgd__sampler_sample(&s, &x, c);
        cr_assert_eq(t1, t2);
        differ += t1 != t3;
        toks[k + 1] = t1;
    }
    cr_assert_gt(differ, 5);
    /* Philox: a known-answer check on the generator (key 0, counter 0). */
    uint32_t r[4];
    pgd__philox4x32(0, 0, 0, r);
    cr_assert_eq(r[0], 0x6627e8d5u);
    cr_assert_eq(r[1], 0xe169c58du);
    cr_assert_eq(r[2], 0xbc57ac4cu);
    cr_assert_eq(r[3], 0x9b00dbd8u);
    double u = pgd__sample_uniform(1, 2, 3);
    cr_assert(u >= 0 && u < 1);
    pgd__sampler_fini(&s);
}

static int32_t greedy(struct pgd__sampler *s, const struct pgd_sampling_params *sp,
                      const float *logits, const int32_t *toks, int n_prompt, int n_out,
                      const int32_t *eos, int n_eos)
{
    float row[V];
    memcpy(row, logits, sizeof row);
    struct pgd__sample_ctx c = { .sp = sp, .tokens = toks, .n_prompt = n_prompt, .n_out = n_out,
                                 .eos = eos, .n_eos = n_eos };
    return pgd__sampler_sample(s, &c, row);
}

Test(sampler, penalties_bias_and_min_tokens)
{
    struct pgd__sampler s;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 0.0f;
    cr_assert_eq(greedy(&s, &sp, LOGITS, NULL, 0, 0, NULL, 0), 0);
    /* Repetition: token 0 (2.0) seen in the prompt -> 1.0 < token 1 (1.5). */
    int32_t toks[4] = { 0, 5, 1, 1 };
    sp.repetition_penalty = 2.0f;
    cr_assert_eq(greedy(&s, &sp, LOGITS, toks, 1, 0, NULL, 0), 1);
    /* Negative logits are multiplied: token 8 (-2) seen goes to -4, irrelevant to argmax;
     * with 0 and 1 seen: 1.0, 0.75 vs token 2 at 1.2. */
    cr_assert_eq(greedy(&s, &sp, LOGITS, toks, 3, 0, NULL, 0), 2);
    sp.repetition_penalty = 1.0f;
    /* Frequency: output tokens only; token 1 twice in output: 1.5 - 2*0.3 = 0.9.
     * Token 0 in the prompt is not penalized. */
    sp.frequency_penalty = 0.3f;
    int32_t t2[3] = { 0, 1, 1 };
    float lg[V];
    memcpy(lg, LOGITS, sizeof lg);
    lg[0] = 1.0f;
    cr_assert_eq(greedy(&s, &sp, lg, t2, 1, 2, NULL, 0), 2);   /* 1.2 beats 1.0, 0.9 */
    sp.frequency_penalty = 0.0f;
    /* Presence: once per distinct token: 1.5 - 0.4 = 1.1 < 1.2. */
    sp.presence_penalty = 0.4f;
    cr_assert_eq(greedy(&s, &sp, lg, t2, 1, 2, NULL, 0), 2);
    sp.presence_penalty = 0.2f;   /* 1.3 > 1.2 */
    cr_assert_eq(greedy(&s, &sp, lg, t2, 1, 2, NULL, 0), 1);
    sp.presence_penalty = 0.0f;
    /* Logit bias. */
    struct pgd_logit_bias lb = { .token = 8, .bias = 5.0f };
    sp.logit_bias = &lb;
    sp.n_logit_bias = 1;
    cr_assert_eq(greedy(&s, &sp, LOGITS, NULL, 0, 0, NULL, 0), 8);
    sp.n_logit_bias = 0;
    /* min_tokens masks EOS and stop tokens until reached (unless ignore_eos for EOS). */
    int32_t eos = 0, stop_id = 1;
    sp.min_tokens = 2;
    sp.stop_token_ids = &stop_id;
    sp.n_stop_token_ids = 1;
    int32_t t3[3] = { 4, 4, 4 };
    cr_assert_eq(greedy(&s, &sp, LOGITS, t3, 1, 0, &eos, 1), 2);
    cr_assert_eq(greedy(&s, &sp, LOGITS, t3, 1, 1, &eos, 1), 2);
    cr_assert_eq(greedy(&s, &sp, LOGITS, t3, 1, 2, &eos, 1), 0);
    sp.ignore_eos = true;
    cr_assert_eq(greedy(&s, &sp, LOGITS, t3, 1, 0, &eos, 1), 0);
    pgd__sampler_fini(&s);
}

Test(sampler, logprobs_rank_and_top_alternatives)
{
    struct pgd_logprob chosen, top[4];
    pgd__logprobs(LOGITS, V, 3, 4, &chosen, top);
    double lse = 0;
    for (int i = 0; i < V; i++) lse += exp(LOGITS[i]);
    lse = log(lse);
    cr_assert_eq(chosen.token, 3);
    cr_assert_float_eq(chosen.logprob, LOGITS[3] - lse, 1e-5);
    cr_assert_eq(chosen.rank, 4);                    /* 2.0, 1.5, 1.2 are above it */
    int want[4] = { 0, 1, 2, 3 };
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(top[i].token, want[i]);
        cr_assert_eq(top[i].rank, i + 1);
        cr_assert_float_eq(top[i].logprob, LOGITS[want[i]] - lse, 1e-5);
    }
    pgd__logprobs(LOGITS, V, 8, 0, &chosen, NULL);
    cr_assert_eq(chosen.rank, V);
}

/* ---- stop strings ---------------------------------------------------------------------- */

struct feed {
    struct pgd__stop_text t;
    char out[256];
    size_t out_len;
};

static int push(struct feed *f, const char *delta, const char *const *stops, int n, bool include)
{
    size_t before = f->t.released, rel;
    int hit = pgd__stop_text_push(&f->t, delta, strlen(delta), stops, n, true, include, &rel);
    cr_assert_eq(before + rel, f->t.released);
    memcpy(f->out + f->out_len, f->t.text.p + before, rel);
    f->out_len += rel;
    f->out[f->out_len] = '\0';
    return hit;
}

Test(stop, holds_back_partial_matches_and_never_emits_the_stop)
{
    const char *stops[] = { "STOP", "\n\n" };
    struct feed f = { 0 };
    cr_assert_eq(push(&f, "Hello ", stops, 2, false), -1);
    cr_assert_str_eq(f.out, "Hello ");
    cr_assert_eq(push(&f, "wor", stops, 2, false), -1);
    cr_assert_str_eq(f.out, "Hello wor");
    cr_assert_eq(push(&f, "ld S", stops, 2, false), -1);
    cr_assert_str_eq(f.out, "Hello world ");        /* "S" could start STOP */
    cr_assert_eq(push(&f, "T", stops, 2, false), -1);
    cr_assert_str_eq(f.out, "Hello world ");
    cr_assert_eq(push(&f, "ABLE\n", stops, 2, false), -1);   /* not a stop after all */
    cr_assert_str_eq(f.out, "Hello world STABLE");
    cr_assert_eq(push(&f, "\nmore", stops, 2, false), 1);   /* spans tokens */
    cr_assert_str_eq(f.out, "Hello world STABLE");
    cr_assert_eq(pgd__stop_text_flush(&f.t), 0);
    pgd__stop_text_fini(&f.t);
}

Test(stop, include_stop_string_and_earliest_match_wins)
{
    const char *stops[] = { "cd", "bc" };
    struct feed f = { 0 };
    cr_assert_eq(push(&f, "a", stops, 2, true), -1);
    cr_assert_eq(push(&f, "bcde", stops, 2, true), 1);   /* "bc" starts first */
    cr_assert_str_eq(f.out, "abc");
    pgd__stop_text_fini(&f.t);

    const char *one[] = { "<|end|>" };
    struct feed g = { 0 };
    const char *pieces[] = { "x<", "|e", "nd", "|", ">tail" };
    for (int i = 0; i < 4; i++) cr_assert_eq(push(&g, pieces[i], one, 1, false), -1);
    cr_assert_str_eq(g.out, "x");
    cr_assert_eq(push(&g, pieces[4], one, 1, false), 0);
    cr_assert_str_eq(g.out, "x");
    pgd__stop_text_fini(&g.t);

    /* The end of a sequence releases what was held back. */
    struct feed h = { 0 };
    cr_assert_eq(push(&h, "abc <|e", one, 1, false), -1);
    cr_assert_str_eq(h.out, "abc ");
    cr_assert_eq(pgd__stop_text_flush(&h.t), 3);
    pgd__stop_text_fini(&h.t);
}

/* ---- a step's rows: the host path and the packing for the device kernels ---------------- */
#include "runtime/sample/sample_rows.h"

PGD_TEST_SUITE(sample_rows);

/* The host path is the sampler plus the logprobs of the raw row, row by row. */
Test(sample_rows, host_path_is_the_sampler_and_raw_logprobs)
{
    struct pgd__sampler s;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&s, V, err, sizeof err), PGD_OK);
    float logits[4 * V];
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < V; i++) logits[r * V + i] = LOGITS[(i + 3 * r) % V];
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.repetition_penalty = 1.5f;
    int32_t toks[3] = { 0, 4, 0 };
    struct pgd__sample_row rows[4] = {
        { .kind = PGD__ROW_SAMPLE, .n_top = 3,
          .ctx = { .sp = &sp, .tokens = toks, .n_prompt = 2, .n_out = 1, .seed = 9 } },
        { .kind = PGD__ROW_TARGET, .target = 6, .n_top = 2 },
        { .kind = PGD__ROW_SKIP, .n_top = -1 },
        { .kind = PGD__ROW_SAMPLE, .n_top = -1,
          .ctx = { .sp = &sp, .tokens = toks, .n_prompt = 3, .seed = 10, .child = 2 } },
    };
    struct pgd__sample_result res[4];
    float scratch[V];
    pgd__sample_rows_host(&s, scratch, logits, rows, 4, res);
    float row[V];
    for (int r = 0; r < 4; r += 3) {
        memcpy(row, logits + r * V, sizeof row);
        cr_assert_eq(res[r].token, pgd__sampler_sample(&s, &rows[r].ctx, row), "row %d", r);
    }
    struct pgd_logprob c, top[3];
    pgd__logprobs(logits, V, res[0].token, 3, &c, top);
    cr_assert_eq(memcmp(&res[0].chosen, &c, sizeof c), 0);
    cr_assert_eq(memcmp(res[0].top, top, sizeof top), 0);
    pgd__logprobs(logits + V, V, 6, 2, &c, top);
    cr_assert_eq(res[1].token, -1);
    cr_assert_eq(memcmp(&res[1].chosen, &c, sizeof c), 0);
    cr_assert_eq(memcmp(res[1].top, top, 2 * sizeof *top), 0);
    cr_assert_eq(res[2].token, -1);
    pgd__sampler_fini(&s);
}

Test(sample_rows, plain_greedy_only_without_processors_or_logprobs)
{
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 0;
    int32_t t = 1;
    struct pgd__sample_row r = { .kind = PGD__ROW_SAMPLE, .n_top = -1,
                                 .ctx = { .sp = &sp, .tokens = &t, .n_prompt = 1 } };
    cr_assert(pgd__sample_row_plain_greedy(&r));
    r.n_top = 0;
    cr_assert_not(pgd__sample_row_plain_greedy(&r));
    r.n_top = -1;
    sp.min_tokens = 2;
    cr_assert_not(pgd__sample_row_plain_greedy(&r));
    r.ctx.n_out = 2;
    cr_assert(pgd__sample_row_plain_greedy(&r));
    sp.presence_penalty = 0.1f;
    cr_assert_not(pgd__sample_row_plain_greedy(&r));
    sp.presence_penalty = 0;
    sp.temperature = 0.5f;
    cr_assert_not(pgd__sample_row_plain_greedy(&r));
    r.kind = PGD__ROW_TARGET;
    cr_assert_not(pgd__sample_row_plain_greedy(&r));
}

/* The packed rows: parameters, the min_tokens mask (eos unless ignore_eos, then stop ids),
 * bias pairs in request order, one (id, output count) pair per distinct token when a
 * penalty is on; offsets into one pool; the size bound. */
Test(sample_rows, pack_layout)
{
    enum { PV = 100 };
    struct pgd__sample_packer pk;
    char err[256];
    cr_assert_eq(pgd__sample_packer_init(&pk, PV, err, sizeof err), PGD_OK);
    static const int32_t eos[2] = { 1, 2 }, stops[1] = { 50 };
    static const struct pgd_logit_bias bias[3] = { { 7, 1.5f }, { 3, -2.0f }, { 7, 0.25f } };
    struct pgd_sampling_params a = pgd_sampling_default_params(), b = a;
    a.temperature = 0.7f;
    a.top_k = 5;
    a.top_p = 0.5f;
    a.min_p = 0.1f;
    a.min_tokens = 3;
    a.stop_token_ids = stops;
    a.n_stop_token_ids = 1;
    a.logit_bias = bias;
    a.n_logit_bias = 3;
    b.frequency_penalty = 0.5f;
    b.min_tokens = 1;
    b.ignore_eos = true;
    int32_t ta[4] = { 9, 9, 4, 9 }, tb[7] = { 30, 10, 30, 10, 99, 10, 120 };
    struct pgd__sample_row rows[4] = {
        { .kind = PGD__ROW_SAMPLE, .n_top = 5,
          .ctx = { .sp = &a, .tokens = ta, .n_prompt = 2, .n_out = 2, .eos = eos, .n_eos = 2,
                   .seed = 77, .child = 3 } },
        { .kind = PGD__ROW_TARGET, .target = 42, .n_top = -1 },
        { .kind = PGD__ROW_SAMPLE, .n_top = -1,
          .ctx = { .sp = &b, .tokens = tb, .n_prompt = 3, .n_out = 4, .eos = eos, .n_eos = 2 } },
        { .kind = PGD__ROW_SKIP, .n_top = -1 },
    };
    size_t bytes = pgd__sample_pack_bytes(rows, 4, pk.vocab), used = 0;
    cr_assert_eq(bytes % 8, 0);
    uint64_t *buf = calloc(bytes / 8, 8);
    cr_assert_eq(pgd__sample_pack(&pk, rows, 4, buf, &used, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_leq(used, bytes);
    const struct pgd_cuda_sample_row *P = (const void *)buf;
    const int32_t *pool = (const int32_t *)(P + 4);
    /* Row 0: mask {1, 2, 50}, bias pairs, no penalty. */
    cr_assert_eq(P[0].kind, PGD_CUDA_ROW_SAMPLE);
    cr_assert_eq(P[0].n_top, 5);
    cr_assert_eq(P[0].top_k, 5);
    cr_assert_float_eq(P[0].temperature, 0.7f, 0);
    cr_assert_float_eq(P[0].top_p, 0.5f, 0);
    cr_assert_float_eq(P[0].min_p, 0.1f, 0);
    cr_assert_float_eq(P[0].rep, 1.0f, 0);
    cr_assert_eq(P[0].seed, 77);
    cr_assert_eq(P[0].child, 3);
    cr_assert_eq(P[0].draw, 2);
    cr_assert_eq(P[0].pool_off, 0);
    cr_assert_eq(P[0].n_mask, 3);
    cr_assert_eq(P[0].n_bias, 3);
    cr_assert_eq(P[0].n_pen, 0);
    cr_assert_eq(pool[0], 1);
    cr_assert_eq(pool[1], 2);
    cr_assert_eq(pool[2], 50);
    for (int j = 0; j < 3; j++) {
        float f;
        memcpy(&f, &pool[3 + 2 * j + 1], sizeof f);
        cr_assert_eq(pool[3 + 2 * j], bias[j].token);
        cr_assert_float_eq(f, bias[j].bias, 0);
    }
    /* Row 1: a target row asks for its logprob. */
    cr_assert_eq(P[1].kind, PGD_CUDA_ROW_TARGET);
    cr_assert_eq(P[1].target, 42);
    cr_assert_eq(P[1].n_top, 0);
    /* Row 2: min_tokens over already (n_out 4 >= 1): no mask; penalties: distinct ids
     * ascending, out-of-vocabulary 120 dropped, output counts (10 x2, 99 x1; 30 only in
     * the prompt). */
    cr_assert_eq(P[2].pool_off, 9);
    cr_assert_eq(P[2].n_mask, 0);
    cr_assert_eq(P[2].n_bias, 0);
    cr_assert_eq(P[2].n_pen, 3);
    cr_assert_float_eq(P[2].freq, 0.5f, 0);
    static const int32_t want[6] = { 10, 2, 30, 0, 99, 1 };
    for (int j = 0; j < 6; j++)
        cr_assert_eq(pool[9 + j], want[j], "penalty pool[%d] = %d, want %d", j, pool[9 + j],
                     want[j]);
    cr_assert_eq(P[3].kind, PGD_CUDA_ROW_SKIP);
    cr_assert_eq(used, 4 * sizeof *P + 15 * sizeof(int32_t));
    for (int r = 0; r < 4; r++)
        cr_assert_eq(P[r].pend_at, -1, "row %d has no pending token", r);
    /* Async scheduling: row 2 with three outputs, its last (10) a placeholder the step
     * puts at batch index 7: left out of the pairs (10 counted once), and pend_at says
     * where the kernel finds it. Row 0 is pending too but has no penalty: nothing to
     * count. */
    tb[5] = -1;
    rows[2].ctx.n_out = 3;
    int32_t ta_pending[4] = { 9, 9, 4, -1 };
    rows[0].ctx.tokens = ta_pending;
    rows[0].pending = rows[2].pending = true;
    rows[0].pending_at = 3;
    rows[2].pending_at = 7;
    cr_assert_eq(pgd__sample_pack(&pk, rows, 4, buf, &used, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(P[0].pend_at, -1);
    cr_assert_eq(P[2].pend_at, 7);
    cr_assert_eq(P[2].n_pen, 3);
    static const int32_t want_pending[6] = { 10, 1, 30, 0, 99, 1 };
    for (int j = 0; j < 6; j++)
        cr_assert_eq(pool[9 + j], want_pending[j], "pending: pool[%d] = %d, want %d", j,
                     pool[9 + j], want_pending[j]);
    /* A row that says it is pending without a place for the token is refused. */
    rows[2].pending_at = -1;
    cr_assert_eq(pgd__sample_pack(&pk, rows, 4, buf, &used, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "row 2") && strstr(err, "pending"), "%s", err);
    rows[2].pending = false;
    /* A target outside the vocabulary is refused, naming the row. */
    rows[1].target = PV;
    cr_assert_eq(pgd__sample_pack(&pk, rows, 4, buf, &used, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "row 1") != NULL, "%s", err);
    free(buf);
    pgd__sample_packer_fini(&pk);
}

/* Kernel output records become results: tokens only for sampled rows, logprobs when asked. */
Test(sample_rows, unpack)
{
    struct pgd_cuda_sample_out out[3] = {
        { .token = 5, .rank = 2, .logprob = -0.5f, .n_top = 2, .top_id = { 4, 5 },
          .top_lp = { -0.2f, -0.5f } },
        { .token = -1, .rank = 7, .logprob = -3.0f, .n_top = 0 },
        { .token = 8, .n_top = 0 },
    };
    struct pgd__sample_row rows[3] = {
        { .kind = PGD__ROW_SAMPLE, .n_top = 2 },
        { .kind = PGD__ROW_TARGET, .target = 11, .n_top = 0 },
        { .kind = PGD__ROW_SAMPLE, .n_top = -1 },
    };
    struct pgd__sample_result res[3];
    pgd__sample_unpack(out, rows, 3, res);
    cr_assert_eq(res[0].token, 5);
    cr_assert_eq(res[0].chosen.token, 5);
    cr_assert_eq(res[0].chosen.rank, 2);
    cr_assert_eq(res[0].top[1].token, 5);
    cr_assert_eq(res[0].top[1].rank, 2);
    cr_assert_float_eq(res[0].top[0].logprob, -0.2f, 0);
    cr_assert_eq(res[1].token, -1);
    cr_assert_eq(res[1].chosen.token, 11);
    cr_assert_eq(res[1].chosen.rank, 7);
    cr_assert_eq(res[2].token, 8);
    cr_assert_eq(res[2].chosen.rank, 0);
}

/* Structured output's allowed-token bitmask: the sampler never picks a token whose bit is
 * clear (greedy takes the best allowed one; draws stay inside), the packed row carries the
 * words at allow_off (-1 for a row without), and a masked row is never the plain argmax. */
Test(sample_rows, allowed_token_bitmask)
{
    enum { AV = 70 };
    struct pgd__sampler s;
    char err[256];
    cr_assert_eq(pgd__sampler_init(&s, AV, err, sizeof err), PGD_OK);
    float logits[AV], row[AV];
    for (int i = 0; i < AV; i++)
        logits[i] = (float)((i * 37) % AV) * 0.1f;     /* best: the i with (37 i) % 70 == 69 */
    uint32_t allow[3] = { 0 };
    static const int OK[4] = { 3, 33, 40, 65 };
    for (int k = 0; k < 4; k++)
        allow[OK[k] >> 5] |= 1u << (OK[k] & 31);
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 0;
    int32_t t0 = 1;
    struct pgd__sample_ctx c = { .sp = &sp, .tokens = &t0, .n_prompt = 1, .allow = allow };
    int best = OK[0];
    for (int k = 1; k < 4; k++)
        if (logits[OK[k]] > logits[best])
            best = OK[k];
    memcpy(row, logits, sizeof row);
    cr_assert_eq(pgd__sampler_sample(&s, &c, row), best);
    sp.temperature = 1.5f;
    int seen[AV] = { 0 };
    for (uint64_t seed = 0; seed < 400; seed++) {
        c.seed = seed;
        memcpy(row, logits, sizeof row);
        int32_t t = pgd__sampler_sample(&s, &c, row);
        cr_assert((allow[t >> 5] >> (t & 31)) & 1, "seed %llu: token %d is not allowed",
                  (unsigned long long)seed, t);
        seen[t]++;
    }
    for (int k = 0; k < 4; k++)
        cr_assert_gt(seen[OK[k]], 0, "allowed token %d never drawn", OK[k]);
    pgd__sampler_fini(&s);

    struct pgd__sample_row rows[2] = {
        { .kind = PGD__ROW_SAMPLE, .n_top = -1, .ctx = c },
        { .kind = PGD__ROW_SAMPLE, .n_top = -1,
          .ctx = { .sp = &sp, .tokens = &t0, .n_prompt = 1 } },
    };
    rows[0].ctx.sp = &sp;
    sp.temperature = 0;
    cr_assert_not(pgd__sample_row_plain_greedy(&rows[0]));
    cr_assert(pgd__sample_row_plain_greedy(&rows[1]));
    struct pgd__sample_packer pk;
    cr_assert_eq(pgd__sample_packer_init(&pk, AV, err, sizeof err), PGD_OK);
    size_t bytes = pgd__sample_pack_bytes(rows, 2, AV), used = 0;
    uint64_t *buf = calloc(bytes / 8 + 1, 8);
    cr_assert_eq(pgd__sample_pack(&pk, rows, 2, buf, &used, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_leq(used, bytes);
    const struct pgd_cuda_sample_row *P = (const void *)buf;
    const int32_t *pool = (const int32_t *)(P + 2);
    cr_assert_geq(P[0].allow_off, 0);
    cr_assert_eq(memcmp(pool + P[0].allow_off, allow, sizeof allow), 0);
    cr_assert_eq(P[1].allow_off, -1);
    free(buf);
    pgd__sample_packer_fini(&pk);
}
