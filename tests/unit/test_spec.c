/* Speculative decoding: --speculative-config parsing, the n-gram proposer, the rejection
 * sampler's law (chi-square against the target distribution), and the engine end to end:
 * with n-gram proposals the output is token for token the output without them (greedy and
 * seeded sampling, stops, stop strings, EOS and max_tokens inside an accepted run,
 * preemption), proposals do get accepted, and every KV block is free at the end. */
#include <criterion/criterion.h>
#include "tests/lib/engine_fixture.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "runtime/sample/philox.h"
#include "runtime/sample/sampler.h"
#include "runtime/spec/ngram.h"
#include "runtime/spec/rejection.h"
#include "runtime/spec/spec_config.h"
#include <unistd.h>

PGD_TEST_SUITE(spec_config);
PGD_TEST_SUITE(spec_ngram);
PGD_TEST_SUITE(spec_rejection);
PGD_TEST_SUITE(spec_engine);
PGD_TEST_SUITE(spec_llama);

/* ---- --speculative-config ------------------------------------------------------------- */

Test(spec_config, vllm_spellings_and_defaults)
{
    struct pgd__spec_config c;
    char err[256];
    cr_assert_eq(pgd__spec_config_parse(NULL, &c, err, sizeof err), PGD_OK);
    cr_assert_eq(c.method, PGD__SPEC_OFF);
    cr_assert_eq(pgd__spec_config_parse("{\"method\": \"ngram\", \"num_speculative_tokens\": 4,"
                                        " \"prompt_lookup_max\": 4, \"prompt_lookup_min\": 2}",
                                        &c, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(c.method, PGD__SPEC_NGRAM);
    cr_assert_eq(c.num_speculative_tokens, 4);
    cr_assert_eq(c.prompt_lookup_min, 2);
    cr_assert_eq(c.prompt_lookup_max, 4);
    /* vLLM's defaults: both 5; one given sets the other. */
    cr_assert_eq(pgd__spec_config_parse("{\"method\": \"ngram\", \"num_speculative_tokens\": 3}",
                                        &c, err, sizeof err), PGD_OK);
    cr_assert_eq(c.prompt_lookup_min, 5);
    cr_assert_eq(c.prompt_lookup_max, 5);
    cr_assert_eq(pgd__spec_config_parse("{\"method\": \"ngram\", \"num_speculative_tokens\": 3,"
                                        " \"prompt_lookup_max\": 3}", &c, err, sizeof err),
                 PGD_OK);
    cr_assert_eq(c.prompt_lookup_min, 3);
    /* A draft model by "model" alone, and vLLM's older "[ngram]". */
    cr_assert_eq(pgd__spec_config_parse("{\"model\": \"/m/draft\", \"num_speculative_tokens\": 5}",
                                        &c, err, sizeof err), PGD_OK);
    cr_assert_eq(c.method, PGD__SPEC_DRAFT_MODEL);
    cr_assert_str_eq(c.model, "/m/draft");
    cr_assert_eq(pgd__spec_config_parse("{\"model\": \"[ngram]\", \"num_speculative_tokens\": 2}",
                                        &c, err, sizeof err), PGD_OK);
    cr_assert_eq(c.method, PGD__SPEC_NGRAM);
}

Test(spec_config, refusals_name_the_key)
{
    static const struct { const char *json, *want; } bad[] = {
        { "[1]", "expected a JSON object" },
        { "{", "not JSON" },
        { "{\"method\": \"ngram\"}", "\"num_speculative_tokens\" is required" },
        { "{\"method\": \"ngram\", \"num_speculative_tokens\": 0}", "= 0 is out of range" },
        { "{\"method\": \"ngram\", \"num_speculative_tokens\": 17}", "= 17 is out of range" },
        { "{\"method\": \"eagle\", \"num_speculative_tokens\": 2}", "\"eagle\" is not supported" },
        { "{\"method\": \"ngram\", \"num_speculative_tokens\": 2, \"prompt_lookup_min\": 4, "
          "\"prompt_lookup_max\": 2}", "\"prompt_lookup_min\" = 4 is more than" },
        { "{\"method\": \"ngram\", \"num_speculative_tokens\": 2, \"lookahead\": 1}",
          "unknown key \"lookahead\"" },
        { "{\"method\": \"draft_model\", \"num_speculative_tokens\": 2}", "needs \"model\"" },
        { "{\"method\": \"ngram\", \"num_speculative_tokens\": \"4\"}", "must be an integer" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pgd__spec_config c;
        char err[256] = "";
        cr_assert_neq(pgd__spec_config_parse(bad[i].json, &c, err, sizeof err), PGD_OK, "%s",
                      bad[i].json);
        cr_assert(strstr(err, bad[i].want) && strstr(err, "speculative_config"),
                  "%s: '%s' lacks '%s'", bad[i].json, err, bad[i].want);
        cr_assert_eq(c.method, PGD__SPEC_OFF);
    }
}

/* ---- the n-gram proposer --------------------------------------------------------------- */

Test(spec_ngram, longest_suffix_latest_match)
{
    int32_t out[8];
    /* ... 1 2 3 [4 5] ... 1 2 3: the 3-gram "1 2 3" matched at 0 proposes 4 5 6. */
    const int32_t a[] = { 1, 2, 3, 4, 5, 6, 9, 9, 1, 2, 3 };
    cr_assert_eq(pgd__ngram_propose(a, 11, 1, 3, 3, out), 3);
    cr_assert(out[0] == 4 && out[1] == 5 && out[2] == 6);
    /* The latest occurrence wins: "7 8" is followed by 1 at 0 and by 2 at 3. */
    const int32_t b[] = { 7, 8, 1, 7, 8, 2, 0, 7, 8 };
    cr_assert_eq(pgd__ngram_propose(b, 9, 2, 2, 1, out), 1);
    cr_assert_eq(out[0], 2);
    /* A longer n-gram beats a later shorter one: "5 6 7" at 0, "6 7" alone later. */
    const int32_t c[] = { 5, 6, 7, 1, 4, 6, 7, 2, 5, 6, 7 };
    cr_assert_eq(pgd__ngram_propose(c, 11, 2, 3, 1, out), 1);
    cr_assert_eq(out[0], 1);
    cr_assert_eq(pgd__ngram_propose(c, 11, 2, 2, 1, out), 1);
    cr_assert_eq(out[0], 2);
    /* No match of at least min_n; the proposal stops at the end of the tokens. */
    cr_assert_eq(pgd__ngram_propose(c, 11, 4, 5, 3, out), 0);
    /* A run of one token: the latest match with k tokens after it, not the one at the end. */
    const int32_t e[] = { 9, 7, 7, 7, 7, 7, 7 };
    cr_assert_eq(pgd__ngram_propose(e, 7, 1, 1, 3, out), 3);
    cr_assert(out[0] == 7 && out[1] == 7 && out[2] == 7);
    cr_assert_eq(pgd__ngram_propose(e, 7, 1, 1, 6, out), 5);   /* at most what follows 9 7 */
    const int32_t d[] = { 3, 3, 3 };
    cr_assert_eq(pgd__ngram_propose(d, 3, 1, 2, 5, out), 1);
    cr_assert_eq(out[0], 3);
    cr_assert_eq(pgd__ngram_propose(d, 1, 1, 2, 5, out), 0);
}

/* ---- the rejection sampler ------------------------------------------------------------- */

/* Pearson's statistic of counts [V] against probabilities p [V] over n draws. */
static double chi_square(const long *counts, const float *p, int V, long n)
{
    double x2 = 0.0;
    for (int v = 0; v < V; v++) {
        double e = (double)p[v] * (double)n;
        x2 += (counts[v] - e) * (counts[v] - e) / e;
    }
    return x2;
}

/* The 0.999 quantile of chi-square with 7 degrees of freedom (8 categories): a correct
 * sampler fails this with probability 1e-3 for a random seed, and the seeds here are fixed,
 * so the test is deterministic. With 200,000 draws a sampler whose law is off by 0.01 in one
 * category (e.g. 0.10 instead of 0.11) gives an expected statistic near 200000 * 0.01^2 /
 * 0.1 = 200, far above it: the negative controls below show that it does fail. */
#define CHI2_7_P999 24.322
#define DRAWS 200000L

static double u01(uint64_t *s)
{
    return pgd__sample_uniform(0x5eed, 0, (*s)++);
}

/* Draws from the law w [V] (summing to 1) with u. */
static int32_t draw_from(const float *w, int V, double u)
{
    double acc = 0.0;
    for (int v = 0; v < V; v++) {
        acc += w[v];
        if (u < acc)
            return v;
    }
    return V - 1;
}

Test(spec_rejection, general_rule_emits_the_target_law)
{
    enum { V = 8 };
    /* Target and draft disagree everywhere: q over-weights some tokens, misses one. */
    const float p[V] = { 0.30f, 0.05f, 0.15f, 0.10f, 0.02f, 0.18f, 0.12f, 0.08f };
    const float q[V] = { 0.10f, 0.25f, 0.15f, 0.20f, 0.10f, 0.00f, 0.12f, 0.08f };
    float scratch[V];
    long counts[V] = { 0 }, naive[V] = { 0 }, accepted = 0;
    uint64_t s = 1;
    for (long i = 0; i < DRAWS; i++) {
        int32_t x = draw_from(q, V, u01(&s));
        double ua = u01(&s), ur = u01(&s);
        bool acc;
        int32_t t = pgd__spec_reject_sample(p, q, V, x, ua, ur, scratch, &acc);
        cr_assert(t >= 0 && t < V);
        cr_assert(!acc || t == x);
        counts[t]++;
        accepted += acc;
        naive[x]++;                     /* always accepting: the draft's law */
    }
    double x2 = chi_square(counts, p, V, DRAWS);
    cr_assert_lt(x2, CHI2_7_P999, "chi-square %.2f", x2);
    /* The acceptance rate is sum min(p, q) = 1 - total variation distance. */
    double want = 0.0;
    for (int v = 0; v < V; v++)
        want += p[v] < q[v] ? p[v] : q[v];
    cr_assert_float_eq((double)accepted / DRAWS, want, 0.005);
    /* Negative control: the statistic does catch a wrong law. */
    cr_assert_gt(chi_square(naive, p, V, DRAWS), 10 * CHI2_7_P999);
}

/* The n-gram path: q is a point mass at the proposal x; the engine samples each verify row
 * with the ordinary sampler and accepts when the sample equals x. The emitted token follows
 * the target's law whatever x is, and the general rule with q = one-hot(x) agrees. */
Test(spec_rejection, point_mass_sample_and_compare_emits_the_target_law)
{
    enum { V = 8 };
    float logits[V] = { 1.0f, 0.2f, -0.5f, 2.0f, 0.0f, 1.5f, -1.0f, 0.7f };
    float p[V], onehot[V], scratch[V], work[V];
    double sum = 0.0;
    for (int v = 0; v < V; v++)
        sum += exp(logits[v]);
    for (int v = 0; v < V; v++)
        p[v] = (float)(exp(logits[v]) / sum);
    struct pgd__sampler smp;
    char err[128];
    cr_assert_eq(pgd__sampler_init(&smp, V, err, sizeof err), PGD_OK);
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 1.0f;
    int32_t prompt[1] = { 0 };
    for (int32_t x = 0; x < V; x += 3) {        /* a likely, an unlikely, a middling proposal */
        long engine[V] = { 0 }, general[V] = { 0 }, accepted = 0;
        memset(onehot, 0, sizeof onehot);
        onehot[x] = 1.0f;
        uint64_t s = 99;
        for (long i = 0; i < DRAWS; i++) {
            /* The engine's way: a fresh seed a draw, the sampler's own Philox stream. */
            struct pgd__sample_ctx c = { .sp = &sp, .tokens = prompt, .n_prompt = 1,
                                         .seed = (uint64_t)i * 7919u + (uint64_t)x };
            memcpy(work, logits, sizeof work);
            int32_t y = pgd__sampler_sample(&smp, &c, work);
            int32_t draft[1] = { x }, sampled[2] = { y, -1 };
            int a = pgd__spec_accepted(draft, 1, sampled, 2);
            cr_assert_eq(a, y == x);
            accepted += a;
            engine[y]++;                /* emitted: sampled[0] either way */
            bool acc;
            general[pgd__spec_reject_sample(p, onehot, V, x, u01(&s), u01(&s), scratch,
                                            &acc)]++;
        }
        double x2e = chi_square(engine, p, V, DRAWS), x2g = chi_square(general, p, V, DRAWS);
        cr_assert_lt(x2e, CHI2_7_P999, "proposal %d: engine chi-square %.2f", x, x2e);
        cr_assert_lt(x2g, CHI2_7_P999, "proposal %d: general chi-square %.2f", x, x2g);
        cr_assert_float_eq((double)accepted / DRAWS, p[x], 0.005);
    }
    pgd__sampler_fini(&smp);
}

Test(spec_rejection, accepted_counts_the_leading_run)
{
    const int32_t d[3] = { 5, 6, 7 };
    cr_assert_eq(pgd__spec_accepted(d, 3, (int32_t[]){ 5, 6, 7, 8 }, 4), 3);
    cr_assert_eq(pgd__spec_accepted(d, 3, (int32_t[]){ 5, 9, 7, 8 }, 4), 1);
    cr_assert_eq(pgd__spec_accepted(d, 3, (int32_t[]){ 4, 6, 7, 8 }, 4), 0);
    /* A verify run cut short by the step's budget: two rows verify one proposal. */
    cr_assert_eq(pgd__spec_accepted(d, 3, (int32_t[]){ 5, 6 }, 2), 1);
    cr_assert_eq(pgd__spec_accepted(d, 3, (int32_t[]){ 5 }, 1), 0);
}

/* ---- the engine over the stand-in model ------------------------------------------------- */

/* A model that repeats itself: after token t of "a".."j" (ids 2..11) the next in that cycle
 * is 8 logits ahead of the rest (which keep the stand-in's hashed noise, within 3); after
 * anything else the noise alone. n-gram proposals over a cyclic prompt are mostly right,
 * and sampled at temperature 1 about one in four is not. */
static void cyclic_rule(const int32_t *toks, int n, float *out)
{
    rule(toks, n, out);
    int32_t last = n > 0 ? toks[n - 1] : 0;
    /* A sequence that starts with "z" (27) ends its first cycle with EOS. */
    bool ends = n > 0 && toks[0] == 27;
    if (last >= 2 && last <= 11)
        out[last == 11 ? (ends ? EOS_ID : 2) : last + 1] += 8.0f;
}

static const char *g_spec_json;
static int g_budget = 64, g_seqs = 16;
/* same_with_and_without's and draft_same's scheduler KV policy: -1 the engine's default, 0
 * vLLM's rule (which preempts where the default's headroom would not). */
static int g_headroom = -1;
static void spec_tweak(struct pgd_engine_params *p)
{
    p->speculative_config = g_spec_json;
    p->max_num_batched_tokens = g_budget;
    p->max_num_seqs = g_seqs;
}

#define NGRAM4 "{\"method\": \"ngram\", \"num_speculative_tokens\": 4, " \
               "\"prompt_lookup_max\": 3, \"prompt_lookup_min\": 1}"

static struct pgd_engine *spec_engine(const char *json, int num_blocks, int block_size)
{
    g_spec_json = json;
    char err[256];
    struct pgd_engine *e = fixture_engine(&(struct fixture_engine_opts){
        .num_blocks = num_blocks, .block_size = block_size, .text = true,
        .tweak = spec_tweak }, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    return e;
}

struct run {
    int32_t tokens[4][256];
    int n[4];
    char text[4][512];
    enum pgd_finish_reason fin[4];
    char stop_reason[4][16];
    int32_t stop_token[4];
    float lp[4][256];
};

/* Reads s to its end into r (up to 4 samples). */
static void read_run(struct pgd_stream *s, struct run *r)
{
    memset(r, 0, sizeof *r);
    struct pgd_output o;
    enum pgd_status st;
    while ((st = pgd_stream_next(s, &o, 20000)) == PGD_OK) {
        int k = o.index;
        cr_assert(k >= 0 && k < 4);
        cr_assert_eq(r->fin[k], PGD_FINISH_NONE, "output after the finish");
        for (int i = 0; i < o.n_token_ids; i++) {
            if (o.logprobs)
                r->lp[k][r->n[k]] = o.logprobs[i].chosen.logprob;
            r->tokens[k][r->n[k]++] = o.token_ids[i];
        }
        strncat(r->text[k], o.text, sizeof r->text[k] - strlen(r->text[k]) - 1);
        r->fin[k] = o.finish_reason;
        if (o.stop_reason)
            snprintf(r->stop_reason[k], sizeof r->stop_reason[k], "%s", o.stop_reason);
        r->stop_token[k] = o.stop_token;
    }
    cr_assert_eq(st, PGD_ERR_CLOSED);
}

struct req {
    const char *prompt;
    struct pgd_sampling_params sp;
};

/* The Prometheus text has vLLM's spec_decode counters with the stats' values when
 * speculation is on (one per-position series a proposal slot), none when it is off. */
static void check_metrics_text(struct pgd_engine *e, const struct pgd_engine_stats *st, bool on)
{
    char *text;
    cr_assert_eq(pgd_engine_metrics_text(e, &text, NULL), PGD_OK);
    cr_assert_eq(strstr(text, "pagoda:spec_decode") != NULL, on);
    if (on) {
        char want[256];
        snprintf(want, sizeof want, "\npagoda:spec_decode_num_accepted_tokens_total{model_name="
                 "\"model\"} %llu.0\n", (unsigned long long)st->spec_num_accepted_tokens);
        cr_assert(strstr(text, want), "no '%s' in\n%s", want, text);
        snprintf(want, sizeof want, "\npagoda:spec_decode_num_draft_tokens_total{model_name="
                 "\"model\"} %llu.0\n", (unsigned long long)st->spec_num_draft_tokens);
        cr_assert(strstr(text, want), "no '%s'", want);
        snprintf(want, sizeof want, "pagoda:spec_decode_num_accepted_tokens_per_pos_total{"
                 "model_name=\"model\",position=\"0\"} %llu.0\n",
                 (unsigned long long)st->spec_num_accepted_tokens_per_pos[0]);
        cr_assert(strstr(text, want), "no '%s'", want);
        cr_assert(strstr(text, "position=\"3\"") && !strstr(text, "position=\"4\""));
    }
    free(text);
}

/* Runs reqs [n] all at once on an engine with (json) and without (NULL) speculation, in
 * a pool of num_blocks blocks of 4, and asserts that every sample's tokens, text, finish,
 * stop reason and stop token are the same. Returns the speculative engine's stats. */
static struct pgd_engine_stats same_with_and_without(const struct req *reqs, int n,
                                                     const char *json, int num_blocks)
{
    static struct run got[2][16];
    struct pgd_engine_stats st = { 0 };
    cr_assert_leq(n, 16);
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = spec_engine(mode ? json : NULL, num_blocks, 4);
        if (g_headroom >= 0)
            pgd__engine_set_kv_policy(e, g_headroom, g_headroom > 0);
        struct pgd_stream *s[16];
        for (int i = 0; i < n; i++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt = reqs[i].prompt;
            rp.sampling = reqs[i].sp;
            char err[256];
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[i], err, sizeof err), PGD_OK, "%s", err);
        }
        for (int i = 0; i < n; i++) {
            read_run(s[i], &got[mode][i]);
            pgd_stream_destroy(s[i]);
        }
        pgd_engine_get_stats(e, &st);
        check_metrics_text(e, &st, mode == 1);
        /* Every block is back in the pool once the last stream closed (the finishing
         * step frees them before it pushes the last output). */
        cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12, "mode %d: KV usage %g", mode,
                           st.kv_cache_usage);
        pgd_engine_destroy(e);
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < (reqs[i].sp.n > 0 ? reqs[i].sp.n : 1); k++) {
            const struct run *a = &got[0][i], *b = &got[1][i];
            cr_assert_eq(a->n[k], b->n[k], "request %d sample %d: %d tokens, %d with "
                         "speculation", i, k, a->n[k], b->n[k]);
            for (int t = 0; t < a->n[k]; t++)
                cr_assert_eq(a->tokens[k][t], b->tokens[k][t], "request %d sample %d token %d",
                             i, k, t);
            cr_assert_str_eq(a->text[k], b->text[k], "request %d", i);
            cr_assert_eq(a->fin[k], b->fin[k], "request %d", i);
            cr_assert_str_eq(a->stop_reason[k], b->stop_reason[k], "request %d", i);
            cr_assert_eq(a->stop_token[k], b->stop_token[k], "request %d", i);
            cr_assert_eq(memcmp(a->lp[k], b->lp[k], sizeof a->lp[k]), 0, "request %d "
                         "logprobs", i);
        }
    return st;
}

static struct pgd_sampling_params sampled(int max_tokens, uint64_t seed)
{
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 1.0f;
    sp.max_tokens = max_tokens;
    sp.has_seed = true;
    sp.seed = seed;
    return sp;
}

Test(spec_engine, greedy_and_seeded_sampling_equal_the_output_without_speculation)
{
    g_rule = cyclic_rule;
    struct req reqs[8] = {
        { "abcdefghijabcdefghijabc", greedy_params(40) },
        { "abcdeabcdefghij", greedy_params(33) },
        { "the cat. the cat. the", greedy_params(20) },    /* noise: proposals rejected */
        { "jabcdefghijab", sampled(40, 11) },
        { "defghijabcdefghijabcdefghij", sampled(37, 12) },
        { "cdefghij", sampled(25, 13) },
        { "abcdefghij", greedy_params(30) },
        { "ghijabcdefghij", sampled(30, 14) },
    };
    for (int i = 0; i < 8; i++)
        reqs[i].sp.ignore_eos = true;
    reqs[6].sp.logprobs = 2;                   /* logprobs of every verify row */
    reqs[7].sp.n = 2;
    reqs[7].sp.repetition_penalty = 1.1f;      /* penalties see the proposals as context */
    reqs[5].sp.top_k = 3;
    struct pgd_engine_stats st = same_with_and_without(reqs, 8, NGRAM4, 256);
    cr_assert_eq(st.spec_num_speculative_tokens, 4);
    cr_assert_gt(st.spec_num_drafts, 0);
    cr_assert_gt(st.spec_num_accepted_tokens, st.spec_num_draft_tokens / 2,
                 "accepted %llu of %llu", (unsigned long long)st.spec_num_accepted_tokens,
                 (unsigned long long)st.spec_num_draft_tokens);
    cr_assert_lt(st.spec_num_accepted_tokens, st.spec_num_draft_tokens);
    /* Per position: nothing at position i is accepted unless i - 1 was. */
    uint64_t sum = 0;
    for (int i = 0; i < PGD_SPEC_MAX_TOKENS; i++) {
        sum += st.spec_num_accepted_tokens_per_pos[i];
        if (i > 0)
            cr_assert_leq(st.spec_num_accepted_tokens_per_pos[i],
                          st.spec_num_accepted_tokens_per_pos[i - 1]);
        if (i >= 4)
            cr_assert_eq(st.spec_num_accepted_tokens_per_pos[i], 0);
    }
    cr_assert_eq(sum, st.spec_num_accepted_tokens);
    cr_assert_eq(st.spec_num_accepted_tokens_per_pos[0] > 0, true);
}

/* Stops inside an accepted run cut it exactly there: stop strings ("fgh" across three
 * tokens; "ja" kept in the output), a stop token, EOS, max_tokens, and min_tokens holding a
 * stop token back, give what they give without speculation. */
Test(spec_engine, stops_inside_an_accepted_run)
{
    g_rule = cyclic_rule;
    static const char *const stop_fgh[] = { "fgh" };
    static const char *const stop_ja[] = { "ja" };
    static const int32_t stop_tok[] = { 9 };        /* "h" */
    struct req reqs[7] = {
        { "abcdefghijabcd", greedy_params(30) },
        { "abcdefghijabcdefghijab", greedy_params(30) },
        { "abcdefghijab", greedy_params(30) },
        { "abcdefghijab", greedy_params(7) },
        { "abcdefghijab", greedy_params(30) },
        { "abcdefghijabcdefgh", sampled(30, 5) },
        { "zabcdefghijab", greedy_params(30) },
    };
    reqs[0].sp.stop = stop_fgh;
    reqs[0].sp.n_stop = 1;
    reqs[1].sp.stop = stop_ja;
    reqs[1].sp.n_stop = 1;
    reqs[1].sp.include_stop_str_in_output = true;
    reqs[2].sp.stop_token_ids = stop_tok;
    reqs[2].sp.n_stop_token_ids = 1;
    reqs[3].sp.ignore_eos = true;                   /* max_tokens 7 mid-run */
    reqs[4].sp.stop_token_ids = stop_tok;           /* a stop token held back by min_tokens */
    reqs[4].sp.n_stop_token_ids = 1;
    reqs[4].sp.min_tokens = 9;
    reqs[5].sp.stop = stop_fgh;
    reqs[5].sp.n_stop = 1;
    /* reqs[6] starts with "z": its cycle ends with EOS after "j". */
    struct pgd_engine_stats st = same_with_and_without(reqs, 7, NGRAM4, 256);
    cr_assert_gt(st.spec_num_accepted_tokens, 0);
}

/* A pool too small for everyone: preemption (which drops proposals), recomputation and
 * prefix-cache hits of verified blocks; the KV rollback never leaves a rejected proposal's
 * KV where a later step reads it (the stand-in model checks every slot it reads). */
Test(spec_engine, preemption_and_a_tight_budget)
{
    g_rule = cyclic_rule;
    g_budget = 7;       /* verify runs cut short by the budget */
    g_seqs = 4;
    g_headroom = 0;     /* vLLM's admission: four prompts in, then their growth preempts */
    struct req reqs[10];
    static const char *const prompts[] = { "abcdefghijabc", "bcdefghijab", "abcdefghij",
                                           "hijabcdefghijabcdefg", "cdefghijabcdefghijab" };
    for (int i = 0; i < 10; i++) {
        reqs[i].prompt = prompts[i % 5];
        reqs[i].sp = i % 2 ? sampled(24 + i, 100 + (uint64_t)i) : greedy_params(24 + i);
        reqs[i].sp.ignore_eos = true;
    }
    struct pgd_engine_stats st = same_with_and_without(reqs, 10, NGRAM4, 24);
    cr_assert_gt(st.num_preemptions, 0);
    cr_assert_gt(st.spec_num_accepted_tokens, 0);
}

Test(spec_engine, bad_config_and_a_draft_without_a_draft_model_refused_at_create)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    struct pgd__engine_backend be = fake_backend(16, 4, 256);
    p.speculative_config = "{\"model\": \"/m/draft\", \"num_speculative_tokens\": 3}";
    struct pgd_engine *e = NULL;
    char err[256] = "";
    cr_assert_eq(pgd__engine_create_with(&p, &be, NULL, &e, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "draft_model") && strstr(err, "no draft model"), "%s", err);
    be = fake_backend(16, 4, 256);
    p.speculative_config = "{\"method\": \"ngram\"}";
    cr_assert_eq(pgd__engine_create_with(&p, &be, NULL, &e, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "num_speculative_tokens"), "%s", err);
    cr_assert_null(e);
}

/* ---- a draft model over the stand-in ---------------------------------------------------- */

/* Target and draft: two stand-in models, each with a paged cache of its own over the same
 * block ids, each checking that every slot it reads holds the position it expects (so a
 * draft that skipped a catch-up, or read a rejected proposal's KV, fails the step). The
 * draft follows g_draft_rule. */
struct duo {
    struct fake *target, *draft;
};
static void (*g_draft_rule)(const int32_t *toks, int n, float *out);

static enum pgd_status duo_step(void *ctx, const struct pgd__step_seq *seqs, int n,
                                const float **logits, char *err, size_t errlen)
{
    return fake_step(((struct duo *)ctx)->target, seqs, n, logits, err, errlen);
}

static enum pgd_status duo_draft_step(void *ctx, const struct pgd__step_seq *seqs, int n,
                                      int32_t *ids, char *err, size_t errlen)
{
    struct duo *d = ctx;
    void (*target_rule)(const int32_t *, int, float *) = g_rule;
    const float *lg;
    g_rule = g_draft_rule;
    enum pgd_status st = fake_step(d->draft, seqs, n, &lg, err, errlen);
    g_rule = target_rule;
    int rows = 0;
    for (int i = 0; i < n; i++)
        rows += seqs[i].n_logits;
    for (int r = 0; st == PGD_OK && r < rows; r++)
        ids[r] = argmax(lg + (size_t)r * VOCAB, VOCAB);
    return st;
}

static void duo_destroy(void *ctx)
{
    struct duo *d = ctx;
    fake_destroy(d->target);
    fake_destroy(d->draft);
    free(d);
}

#define DRAFT3 "{\"method\": \"draft_model\", \"model\": \"stand-in\", " \
               "\"num_speculative_tokens\": 3}"

/* reqs [n] on the stand-in target with (json, a draft following draft_rule) and without
 * speculation: the same outputs (see same_with_and_without); the draft engine's stats. */
static struct pgd_engine_stats draft_same(const struct req *reqs, int n,
                                          void (*draft_rule)(const int32_t *, int, float *),
                                          int num_blocks)
{
    static struct run got[2][16];
    struct pgd_engine_stats st = { 0 };
    g_draft_rule = draft_rule;
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine_params p = pgd_engine_default_params();
        p.max_num_seqs = g_seqs;
        p.max_num_batched_tokens = g_budget;
        struct pgd__engine_backend be = fake_backend(num_blocks, 4, 1024);
        if (mode) {
            struct duo *d = malloc(sizeof *d);
            struct pgd__engine_backend db = fake_backend(num_blocks, 4, 1024);
            d->target = be.ctx;
            d->draft = db.ctx;
            be.ctx = d;
            be.step = duo_step;
            be.draft_step = duo_draft_step;
            be.draft_max_model_len = 1024;
            be.destroy = duo_destroy;
            p.speculative_config = DRAFT3;
        }
        struct pgd_engine *e;
        char err[256];
        cr_assert_eq(pgd__engine_create_with(&p, &be, &FIXTURE_TEXT, &e, err, sizeof err), PGD_OK,
                     "%s", err);
        pgd__engine_set_paranoid(e, true);
        if (g_headroom >= 0)
            pgd__engine_set_kv_policy(e, g_headroom, g_headroom > 0);
        struct pgd_stream *s[16];
        for (int i = 0; i < n; i++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt = reqs[i].prompt;
            rp.sampling = reqs[i].sp;
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[i], err, sizeof err), PGD_OK, "%s", err);
        }
        for (int i = 0; i < n; i++) {
            read_run(s[i], &got[mode][i]);
            pgd_stream_destroy(s[i]);
        }
        pgd_engine_get_stats(e, &st);
        cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12);
        pgd_engine_destroy(e);
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < (reqs[i].sp.n > 0 ? reqs[i].sp.n : 1); k++) {
            cr_assert_eq(got[0][i].n[k], got[1][i].n[k], "request %d", i);
            cr_assert_eq(memcmp(got[0][i].tokens[k], got[1][i].tokens[k],
                                sizeof got[0][i].tokens[k]), 0, "request %d sample %d", i, k);
            cr_assert_str_eq(got[0][i].text[k], got[1][i].text[k]);
            cr_assert_eq(got[0][i].fin[k], got[1][i].fin[k]);
        }
    return st;
}

static struct req g_draft_reqs[6] = {
    { "abcdefghijabc", { 0 } }, { "cdefghij", { 0 } }, { "the cat. the", { 0 } },
    { "jabcdefg", { 0 } }, { "zabcdefghijab", { 0 } }, { "abcdefghijabcdefgh", { 0 } },
};

/* The requests of the draft tests: half of them seeded samples unless greedy. */
static void draft_reqs(bool greedy)
{
    static const char *const stop_fgh[] = { "fgh" };
    for (int i = 0; i < 6; i++) {
        g_draft_reqs[i].sp = i % 2 == 0 || greedy ? greedy_params(30 + i)
                                                  : sampled(30 + i, 60 + (uint64_t)i);
        g_draft_reqs[i].sp.ignore_eos = i != 4;     /* request 4 ends with EOS */
    }
    g_draft_reqs[5].sp.stop = stop_fgh;
    g_draft_reqs[5].sp.n_stop = 1;
    g_draft_reqs[1].sp.n = 2;
}

/* A draft that is the target itself: every greedy proposal is accepted (and sampled ones
 * whenever the target samples the draft's argmax); outputs as without speculation. */
Test(spec_engine, draft_model_equal_to_the_target)
{
    g_rule = cyclic_rule;
    draft_reqs(true);
    struct pgd_engine_stats st = draft_same(g_draft_reqs, 6, cyclic_rule, 256);
    cr_assert_gt(st.spec_num_draft_tokens, 0);
    cr_assert_eq(st.spec_num_accepted_tokens, st.spec_num_draft_tokens);
    cr_assert_eq(st.spec_num_accepted_tokens_per_pos[0], st.spec_num_drafts);
    cr_assert_eq(st.spec_num_speculative_tokens, 3);
    draft_reqs(false);
    st = draft_same(g_draft_reqs, 6, cyclic_rule, 256);
    cr_assert_gt(st.spec_num_accepted_tokens, 0);
    cr_assert_lt(st.spec_num_accepted_tokens, st.spec_num_draft_tokens);
}

/* A draft that knows nothing (the stand-in's noise alone): proposals rejected, the output
 * still the target's; and a tight pool: preemption resets the draft's KV. */
Test(spec_engine, draft_model_that_disagrees_and_preemption)
{
    g_rule = cyclic_rule;
    draft_reqs(false);
    struct pgd_engine_stats st = draft_same(g_draft_reqs, 6, rule, 256);
    cr_assert_gt(st.spec_num_draft_tokens, 0);
    cr_assert_lt(st.spec_num_accepted_tokens, st.spec_num_draft_tokens / 4);
    g_budget = 16;
    g_seqs = 4;
    g_headroom = 0;
    /* Every request to its full length (no EOS, no stop string), four decoding at once (a
     * budget of 16 holds four verify runs of 4 tokens): their demand, ~12 blocks each, is
     * past the 20 blocks whatever the samples draw. */
    struct req full[6];
    memcpy(full, g_draft_reqs, sizeof full);
    for (int i = 0; i < 6; i++) {
        full[i].sp.ignore_eos = true;
        full[i].sp.n_stop = 0;
    }
    st = draft_same(full, 6, cyclic_rule, 20);
    g_headroom = -1;
    cr_assert_gt(st.num_preemptions, 0);
    cr_assert_gt(st.spec_num_accepted_tokens, 0);
}

/* ---- the real model: the tiny Llama fixture through the runner ------------------------- */

/* Decoding the Llama fixture (random weights), greedy and seeded sampling, with n-gram
 * speculation equals its decoding without, token for token, over 200 tokens a request; the verify steps are the
 * runner's multi-token chunks with a logits row per position, and the rollback after each
 * rejection leaves the paged KV as decoding one token at a time would. A random model
 * repeats itself only now and then (the 1-gram lookups find "153 153 153" and the like):
 * some proposals are accepted, most are rejected. */
Test(spec_llama, output_is_unchanged_and_proposals_are_accepted)
{
    enum { N = 4, OUT = 200 };
    int32_t prompt[N][48];
    int len[N];
    for (int r = 0; r < N; r++) {
        len[r] = 8;
        /* One token eight times, or a period of r + 1 tokens. */
        for (int i = 0; i < len[r]; i++)
            prompt[r][i] = r == 0 ? 315 : r == 1 ? 7 : 3 + (int32_t)((i % (1 + r)) * 37 + r * 11) % 500;
    }
    int32_t got[2][N][OUT];
    struct pgd_engine_stats st;
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine_params p = pgd_engine_default_params();
        p.num_blocks = 256;
        p.block_size = 4;
        p.max_num_batched_tokens = 32;
        p.max_num_seqs = 4;
        /* A verify step computes a sequence's rows together, decoding one at a time: the
         * same tokens need the same bits, whatever the rows beside them. */
        p.batch_invariant = true;
        p.speculative_config = mode ? "{\"method\": \"ngram\", \"num_speculative_tokens\": 3,"
                                      " \"prompt_lookup_max\": 4, \"prompt_lookup_min\": 1}"
                                    : NULL;
        struct pgd_engine *e = model_engine_params("llama-f32", &p);
        struct pgd_stream *s[N];
        for (int r = 0; r < N; r++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt_ids = prompt[r];
            rp.n_prompt_ids = len[r];
            /* Requests 2 and 3 sample (seeded, top_k 5, a repetition penalty): the same
             * tokens with and without speculation, as each row draws its own position's
             * number. */
            rp.sampling = r < 2 ? greedy_params(OUT) : sampled(OUT, 40 + (uint64_t)r);
            rp.sampling.top_k = r < 2 ? 0 : 5;
            rp.sampling.repetition_penalty = r == 3 ? 1.3f : 1.0f;
            rp.sampling.ignore_eos = true;
            char err[256];
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[r], err, sizeof err), PGD_OK, "%s", err);
        }
        for (int r = 0; r < N; r++) {
            struct run run;
            read_run(s[r], &run);
            pgd_stream_destroy(s[r]);
            cr_assert_eq(run.n[0], OUT);
            memcpy(got[mode][r], run.tokens[0], sizeof got[mode][r]);
        }
        pgd_engine_get_stats(e, &st);
        cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12);
        pgd_engine_destroy(e);
    }
    for (int r = 0; r < N; r++)
        for (int t = 0; t < OUT; t++)
            cr_assert_eq(got[1][r][t], got[0][r][t], "request %d token %d: %d with "
                         "speculation, %d without", r, t, got[1][r][t], got[0][r][t]);
    cr_assert_gt(st.spec_num_drafts, 0);
    cr_assert_gt(st.spec_num_accepted_tokens, 0, "none of %llu proposals accepted",
                 (unsigned long long)st.spec_num_draft_tokens);
}

/* Draft-model speculation through two runners: the Llama fixture drafting for itself
 * accepts every greedy proposal; the bf16 fixture (another random model of the same
 * vocabulary) proposes what the target never says. Either way the tokens are those of
 * decoding without speculation (greedy and a seeded sample), and both pools end empty. */
Test(spec_llama, draft_model_runner)
{
    enum { N = 4, OUT = 60 };
    int32_t prompt[N][8];
    for (int r = 0; r < N; r++)
        for (int i = 0; i < 8; i++)
            prompt[r][i] = 3 + (int32_t)((i * 53 + r * 101) % 500);
    static const char *const drafts[2] = { "llama-f32", "llama-bf16" };
    int32_t want[N][OUT];
    for (int mode = 0; mode < 3; mode++) {
        char json[1024];
        struct pgd_engine_params p = pgd_engine_default_params();
        p.num_blocks = 64;
        p.block_size = 4;
        p.max_num_batched_tokens = 16;
        p.max_num_seqs = 4;
        p.batch_invariant = true;           /* verify rows and decode rows: the same bits */
        if (mode) {
            snprintf(json, sizeof json, "{\"method\": \"draft_model\", \"model\": \"%s\", "
                     "\"num_speculative_tokens\": 4}", fixture_dir(drafts[mode - 1]));
            p.speculative_config = json;
        }
        struct pgd_engine *e = model_engine_params("llama-f32", &p);
        struct pgd_stream *s[N];
        int n = mode == 1 ? 3 : N;          /* the self-draft: greedy requests only */
        for (int r = 0; r < n; r++) {
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt_ids = prompt[r];
            rp.n_prompt_ids = 8;
            rp.sampling = r < 3 ? greedy_params(OUT) : sampled(OUT, 9);
            rp.sampling.ignore_eos = true;
            char err[256];
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[r], err, sizeof err), PGD_OK, "%s", err);
        }
        for (int r = 0; r < n; r++) {
            struct run run;
            read_run(s[r], &run);
            pgd_stream_destroy(s[r]);
            cr_assert_eq(run.n[0], OUT);
            if (mode == 0)
                memcpy(want[r], run.tokens[0], sizeof want[r]);
            else
                for (int t = 0; t < OUT; t++)
                    cr_assert_eq(run.tokens[0][t], want[r][t], "draft %s request %d token %d",
                                 drafts[mode - 1], r, t);
        }
        struct pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12);
        if (mode == 1) {
            /* Drafting for itself: the draft's argmax is the target's, every time. */
            cr_assert_gt(st.spec_num_draft_tokens, 0);
            cr_assert_eq(st.spec_num_accepted_tokens, st.spec_num_draft_tokens, "%llu of %llu",
                         (unsigned long long)st.spec_num_accepted_tokens,
                         (unsigned long long)st.spec_num_draft_tokens);
        }
        pgd_engine_destroy(e);
    }
}

/* A draft of another vocabulary is refused when the engine is made, naming both sizes. */
Test(spec_llama, draft_of_another_vocabulary_refused)
{
    char json[1024], err[1024] = "";
    snprintf(json, sizeof json, "{\"method\": \"draft_model\", \"model\": \"%s\", "
             "\"num_speculative_tokens\": 2}", fixture_dir("qwen2-f32"));
    struct pgd_engine_params p = pgd_engine_default_params();
    p.model_dir = fixture_dir("llama-f32");
    p.plugin_path = getenv("PGD_TEST_PLUGIN_DIRS") ? getenv("PGD_TEST_PLUGIN_DIRS")
                                                   : PGD_BUILD_PLUGIN_DIRS;
    p.num_blocks = 16;
    p.speculative_config = json;
    struct pgd_engine *e = NULL;
    cr_assert_eq(pgd_engine_create(&p, &e, err, sizeof err), PGD_ERR_INVALID_ARG, "%s", err);
    cr_assert(strstr(err, "vocab_size 256") && strstr(err, "512"), "%s", err);
    cr_assert_null(e);
}
