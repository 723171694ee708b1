/* Sampling: the distributions temperature / top_k / top_p / min_p draw from (chi-square),
 * seeded reproducibility, penalties, logit bias, min_tokens, logprobs, Philox, and stop
 * strings over text deltas. */
#include <criterion/criterion.h>
#include "runtime/sampler.h"
#include "runtime/stop.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tests/test_common.h"

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
    memcpy(f->out + f->out_len, f->t.buf + before, rel);
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
