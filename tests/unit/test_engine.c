/* The engine end to end over the stand-in paged model of tests/lib/engine_fixture.h: streams,
 * refusals, seeds across batch compositions, stop strings, aborts, prefix sharing, n > 1,
 * logprobs, metrics, many submitting threads. */
#include <criterion/criterion.h>
#include "runtime/engine/engine_backend.h"
#include "tests/lib/engine_fixture.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"

PGD_TEST_SUITE(engine);
PGD_TEST_SUITE(engine_threads);
PGD_TEST_SUITE(engine_llama);
PGD_TEST_SUITE(engine_text);

/* ---- helpers ---------------------------------------------------------------------------- */

/* An engine over the stand-in model, options named: make_engine(.num_blocks = 64,
 * .block_size = 4, .text = true) (struct fixture_engine_opts). */
#define make_engine(...) make_engine_with(&(struct fixture_engine_opts){ __VA_ARGS__ })
static struct pgd_engine *make_engine_with(const struct fixture_engine_opts *o)
{
    char err[256];
    struct pgd_engine *e = fixture_engine(o, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    return e;
}

struct collected {
    int32_t tokens[8][512];
    int n_tokens[8];
    char text[8][2048];
    size_t text_len[8];
    enum pgd_finish_reason finish[8];
    char stop_reason[8][32];
    int32_t stop_token[8];
    int n_outputs;
    int cached_tokens[8];
    int completion_tokens[8];
    int prompt_tokens[8];
};

static void collect(struct pgd_stream *s, struct collected *c)
{
    memset(c, 0, sizeof *c);
    struct pgd_output o;
    enum pgd_status st;
    while ((st = pgd_stream_next(s, &o, 10000)) == PGD_OK) {
        cr_assert(o.index >= 0 && o.index < 8);
        cr_assert_eq(c->finish[o.index], PGD_FINISH_NONE, "output after the finish");
        for (int i = 0; i < o.n_token_ids; i++)
            c->tokens[o.index][c->n_tokens[o.index]++] = o.token_ids[i];
        cr_assert_eq(strlen(o.text), o.text_len);
        memcpy(c->text[o.index] + c->text_len[o.index], o.text, o.text_len);
        c->text_len[o.index] += o.text_len;
        c->finish[o.index] = o.finish_reason;
        if (o.stop_reason)
            snprintf(c->stop_reason[o.index], 32, "%s", o.stop_reason);
        c->stop_token[o.index] = o.stop_token;
        c->cached_tokens[o.index] = o.cached_tokens;
        c->completion_tokens[o.index] = o.completion_tokens;
        c->prompt_tokens[o.index] = o.prompt_tokens;
        c->n_outputs++;
    }
    cr_assert_eq(st, PGD_ERR_CLOSED, "stream ended with %s", pgd_status_str(st));
}

static struct pgd_stream *submit_ids(struct pgd_engine *e, const int32_t *ids, int n,
                                     struct pgd_sampling_params sp)
{
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = n;
    r.sampling = sp;
    struct pgd_stream *s;
    char err[256];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    return s;
}

/* ---- tests ------------------------------------------------------------------------------ */

Test(engine, greedy_ids_request_streams_what_the_model_gives_alone)
{
    struct pgd_engine *e = make_engine(.num_blocks = 64, .block_size = 4);
    int32_t prompt[10] = { 5, 9, 2, 44, 3, 3, 7, 8, 10, 11 };
    struct pgd_sampling_params sp = greedy_params(30);
    sp.ignore_eos = true;
    struct pgd_stream *s = submit_ids(e, prompt, 10, sp);
    cr_assert_gt(pgd_stream_request_id(s), 0);
    struct collected c;
    collect(s, &c);
    int32_t ref[30];
    int n = reference_greedy(prompt, 10, 30, IGNORE_EOS, ref);
    cr_assert_eq(c.n_tokens[0], n);
    for (int i = 0; i < n; i++) cr_assert_eq(c.tokens[0][i], ref[i], "token %d", i);
    cr_assert_eq(c.finish[0], PGD_FINISH_LENGTH);
    cr_assert_eq(c.n_outputs, 30);
    cr_assert_eq(c.completion_tokens[0], 30);
    cr_assert_eq(c.prompt_tokens[0], 10);
    cr_assert_eq(c.text_len[0], 0);     /* no tokenizer, no text */
    pgd_stream_destroy(s);
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.generation_tokens, 30);
    cr_assert_eq(st.prompt_tokens, 10);
    cr_assert_eq(st.requests_finished[PGD_FINISH_LENGTH], 1);
    pgd_engine_destroy(e);
}

Test(engine, refuses_requests_that_can_never_run)
{
    struct pgd_engine *e = make_engine(.num_blocks = 8, .block_size = 4);   /* 32 tokens of KV */
    int32_t prompt[1100];
    for (int i = 0; i < 1100; i++) prompt[i] = 2 + i % 50;
    struct pgd_request_params r = pgd_request_default_params();
    struct pgd_stream *s = NULL;
    char err[256];
    r.prompt_ids = prompt;
    r.n_prompt_ids = 1020;
    r.sampling.max_tokens = 10;              /* 260 > max_model_len 256 */
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "max_model_len 1024") != NULL, "%s", err);
    cr_assert_null(s);
    r.n_prompt_ids = 30;                     /* 30 + 10 - 1 tokens need 10 blocks of 8 */
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "the whole cache has 8") != NULL, "%s", err);
    r.n_prompt_ids = 0;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "empty") != NULL, "%s", err);
    r.n_prompt_ids = 3;
    prompt[1] = VOCAB;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "prompt token 1") != NULL, "%s", err);
    prompt[1] = 3;
    r.sampling.temperature = -1.0f;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "temperature") != NULL, "%s", err);
    r.sampling = pgd_sampling_default_params();
    r.sampling.top_p = 0.0f;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "top_p") != NULL, "%s", err);
    r.sampling = pgd_sampling_default_params();
    const char *stop[] = { "x" };
    r.sampling.stop = stop;
    r.sampling.n_stop = 1;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "tokenizer") != NULL, "%s", err);
    r.sampling = pgd_sampling_default_params();
    r.prompt = "hello";
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "tokenizer") != NULL, "%s", err);
    /* max_tokens < 0: up to max_model_len, if the cache can hold it (here it cannot). */
    r.prompt = NULL;
    r.sampling.max_tokens = -1;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    pgd_engine_destroy(e);
}

static void tweak_seqs4(struct pgd_engine_params *p) { p->max_num_batched_tokens = 32; }

Test(engine, seeded_sampling_is_the_same_whatever_shares_the_batch)
{
    struct pgd_engine *e = make_engine(.num_blocks = 256, .block_size = 4, .tweak = tweak_seqs4);
    int32_t prompt[12] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 1.0f;
    sp.top_p = 0.9f;
    sp.has_seed = true;
    sp.seed = 1234;
    sp.max_tokens = 40;
    sp.n = 3;
    sp.ignore_eos = true;
    struct collected alone, crowd;
    struct pgd_stream *s = submit_ids(e, prompt, 12, sp);
    collect(s, &alone);
    pgd_stream_destroy(s);
    /* Children are distinct streams of randomness. */
    cr_assert(memcmp(alone.tokens[0], alone.tokens[1], 40 * sizeof(int32_t)) != 0);
    /* The same request among 20 others of every kind, some of them mid-prefill. */
    struct pgd_stream *others[20];
    for (int i = 0; i < 20; i++) {
        int32_t p2[40];
        for (int k = 0; k < 40; k++) p2[k] = 2 + (i * 7 + k * 3) % 60;
        struct pgd_sampling_params o = pgd_sampling_default_params();
        o.max_tokens = 5 + i;
        o.temperature = (float)(i % 3);
        o.n = 1 + i % 2;
        others[i] = submit_ids(e, p2, 10 + i, o);
        if (i == 10)
            s = submit_ids(e, prompt, 12, sp);
    }
    collect(s, &crowd);
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(crowd.n_tokens[c], alone.n_tokens[c]);
        for (int k = 0; k < alone.n_tokens[c]; k++)
            cr_assert_eq(crowd.tokens[c][k], alone.tokens[c][k], "child %d token %d", c, k);
    }
    pgd_stream_destroy(s);
    for (int i = 0; i < 20; i++) pgd_stream_destroy(others[i]);
    pgd_engine_destroy(e);
}

static double series_value(const char *text, const char *series);

static void tweak_async(struct pgd_engine_params *p)
{
    p->max_num_seqs = 6;
    p->max_num_batched_tokens = 48;
    p->async_scheduling = true;
}

static void tweak_in_turn(struct pgd_engine_params *p)
{
    tweak_async(p);
    p->async_scheduling = false;
}

/* The stand-in model with the backend's async pair (a worker thread runs each submitted
 * step, its pending tokens taken from the step before's results), against stepping in turn:
 * the same text, tokens and finishes for requests of every kind (greedy, seeded sampling,
 * n = 2, stop strings, stop tokens, EOS, penalties counted with a pending token at the
 * batch index the engine gives: pending_at, bad words whose masks are made once the step
 * before lands), in a pool that preempts. */
Test(engine, async_pair_gives_the_same_outputs)
{
    enum { N = 40 };
    static struct collected got[2][N];
    uint64_t overlapped = 0;
    long late_steps = 0;
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = make_engine(.num_blocks = 24, .block_size = 4, .text = true,
                                           .async_pair = mode == 1,
                                           .tweak = mode ? tweak_async : tweak_in_turn);
        pgd__engine_set_kv_policy(e, 0, false);
        struct pgd_stream *s[N];
        for (int i = 0; i < N; i++) {
            int32_t p[30];
            for (int k = 0; k < 30; k++) p[k] = 2 + (i * 11 + k * 5) % 60;
            struct pgd_sampling_params sp = pgd_sampling_default_params();
            sp.max_tokens = 4 + i % 20;
            sp.temperature = i % 3 == 0 ? 0.0f : 0.9f;
            sp.has_seed = true;
            sp.seed = 77 + (uint64_t)i;
            sp.n = i % 5 == 0 ? 2 : 1;
            static const char *stops[] = { "th", "e" };
            static const int32_t stop_ids[] = { 4, 17 };
            if (i % 4 == 1) {
                sp.stop = stops;
                sp.n_stop = 2;
            }
            if (i % 6 == 2) {
                sp.stop_token_ids = stop_ids;
                sp.n_stop_token_ids = 2;
            }
            /* Penalties: the backend counts the pending token (fake_sample_rows). */
            sp.repetition_penalty = i % 7 == 3 ? 1.5f : 1.0f;
            sp.frequency_penalty = i % 7 == 5 ? 1.2f : 0.0f;
            sp.presence_penalty = i % 7 == 5 ? 0.8f : 0.0f;
            /* "e" always banned, "b" after "a": a mask made late (submit_masks). */
            static const char *bad[] = { "e", "ab" };
            if (i % 8 == 6) {
                sp.bad_words = bad;
                sp.n_bad_words = 2;
            }
            struct pgd_request_params rp = pgd_request_default_params();
            rp.prompt_ids = p;
            rp.n_prompt_ids = 5 + i % 25;
            rp.sampling = sp;
            char err[256];
            cr_assert_eq(pgd_engine_submit(e, &rp, &s[i], err, sizeof err), PGD_OK, "%s", err);
        }
        for (int i = 0; i < N; i++) {
            collect(s[i], &got[mode][i]);
            pgd_stream_destroy(s[i]);
        }
        struct pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        cr_assert_gt(st.num_preemptions, 0, "mode %d", mode);
        if (mode) {
            overlapped = st.num_steps_overlapped;
            late_steps = async_pair_late_steps(e);
        }
        char *text;
        cr_assert_eq(pgd_engine_metrics_text(e, &text, NULL), PGD_OK);
        cr_assert_eq(series_value(text, "pagoda:engine_steps_overlapped_total{model_name=\"model\"}"),
                     (double)st.num_steps_overlapped);
        free(text);
        pgd_engine_destroy(e);
    }
    cr_assert_gt(overlapped, 0);
    cr_assert_gt(late_steps, 0);
    int ended_early = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < (i % 5 == 0 ? 2 : 1); c++) {
            const struct collected *a = &got[0][i], *b = &got[1][i];
            cr_assert_eq(b->n_tokens[c], a->n_tokens[c], "request %d sample %d", i, c);
            cr_assert_eq(memcmp(b->tokens[c], a->tokens[c], (size_t)a->n_tokens[c] * 4), 0,
                         "request %d sample %d", i, c);
            cr_assert_eq(b->finish[c], a->finish[c], "request %d sample %d", i, c);
            cr_assert_eq(b->text_len[c], a->text_len[c], "request %d sample %d", i, c);
            cr_assert_eq(memcmp(b->text[c], a->text[c], a->text_len[c]), 0,
                         "request %d sample %d: \"%s\" async, \"%s\" in turn", i, c,
                         b->text[c], a->text[c]);
            cr_assert_str_eq(b->stop_reason[c], a->stop_reason[c]);
            ended_early += a->finish[c] == PGD_FINISH_STOP;
            for (int k = 0; i % 8 == 6 && k < b->n_tokens[c]; k++)
                cr_assert(b->tokens[c][k] != 6 && (k == 0 || b->tokens[c][k - 1] != 2 ||
                                                   b->tokens[c][k] != 3),
                          "request %d sample %d: a bad word at output %d", i, c, k);
        }
    cr_assert_gt(ended_early, 3, "%d samples stopped", ended_early);
}

/* A sequence's last computed block, completed by a placeholder that gets its token only
 * when the step that samples the sequence's last token lands, is cached all the same (as in
 * turn): a follow-up prompt that extends the first one's text hits all 5 of its blocks. */
Test(engine, async_caches_the_block_its_last_placeholder_completes)
{
    int32_t prompt[12];
    for (int k = 0; k < 12; k++)
        prompt[k] = 2 + (k * 5) % 60;
    struct pgd_sampling_params sp = greedy_params(9);     /* 21 tokens: 0..19 computed */
    sp.ignore_eos = true;
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = make_engine(.num_blocks = 64, .block_size = 4,
                                           .async_pair = mode == 1,
                                           .tweak = mode ? tweak_async : tweak_in_turn);
        struct collected a, b;
        struct pgd_stream *s = submit_ids(e, prompt, 12, sp);
        collect(s, &a);
        pgd_stream_destroy(s);
        cr_assert_eq(a.n_tokens[0], 9);
        int32_t follow[24];
        memcpy(follow, prompt, sizeof prompt);
        memcpy(follow + 12, a.tokens[0], 8 * sizeof(int32_t));
        for (int k = 20; k < 24; k++)
            follow[k] = 7;
        struct pgd_sampling_params one = greedy_params(1);
        s = submit_ids(e, follow, 24, one);
        collect(s, &b);
        pgd_stream_destroy(s);
        cr_assert_eq(b.cached_tokens[0], 20, "mode %d: %d of the follow-up's tokens were "
                     "cached", mode, b.cached_tokens[0]);
        pgd_engine_destroy(e);
    }
}

/* A step that fails (as on a device error) aborts every request, and the engine serves the
 * next ones, stepping in turn and with the async pair. There the steps submitted while the
 * failed one flew had their blocks cached before their KV was written, so the prefix cache
 * must forget them: the next request with the same prompt would hit them. */
Test(engine, a_failed_step_aborts_everything_and_the_engine_serves_on)
{
    int32_t prompt[12], want[8];
    for (int k = 0; k < 12; k++)
        prompt[k] = 2 + (k * 7) % 60;
    cr_assert_eq(reference_greedy(prompt, 12, 8, IGNORE_EOS, want), 8);
    struct pgd_sampling_params sp = greedy_params(8);
    sp.ignore_eos = true;
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = make_engine(.num_blocks = 64, .block_size = 4,
                                           .async_pair = mode == 1,
                                           .tweak = mode ? tweak_async : tweak_in_turn);
        g_fail_step = 0;                 /* the first request's prompt step */
        struct collected c;
        struct pgd_stream *s = submit_ids(e, prompt, 12, sp);
        collect(s, &c);
        pgd_stream_destroy(s);
        cr_assert_eq(c.finish[0], PGD_FINISH_ABORT, "mode %d", mode);
        s = submit_ids(e, prompt, 12, sp);
        collect(s, &c);
        pgd_stream_destroy(s);
        cr_assert_eq(c.finish[0], PGD_FINISH_LENGTH, "mode %d: the next request", mode);
        cr_assert_eq(c.n_tokens[0], 8);
        cr_assert_eq(memcmp(c.tokens[0], want, sizeof want), 0, "mode %d: the next request's "
                     "tokens", mode);
        pgd_engine_destroy(e);
    }
    g_fail_step = -1;
}

/* The same where a step fails while the step after it, with masks to be made late (bad
 * words), is in flight: that step gets its sampling without masks (its results are dropped)
 * and is collected, every request is aborted, and the engine serves the next request with
 * bad words as an engine stepping in turn does. */
Test(engine, a_failed_step_with_late_masks_in_flight_aborts_and_the_engine_serves_on)
{
    static const char *bad[] = { "e", "ab" };
    struct pgd_sampling_params sp = greedy_params(8);
    sp.ignore_eos = true;
    sp.temperature = 0.9f;
    sp.has_seed = true;
    sp.seed = 5;
    sp.bad_words = bad;
    sp.n_bad_words = 2;
    int32_t prompt[12];
    for (int k = 0; k < 12; k++)
        prompt[k] = 2 + (k * 7) % 60;
    struct collected want;
    struct pgd_engine *e = make_engine(.num_blocks = 64, .block_size = 4, .text = true,
                                       .tweak = tweak_in_turn);
    struct pgd_stream *s = submit_ids(e, prompt, 12, sp);
    collect(s, &want);
    pgd_stream_destroy(s);
    pgd_engine_destroy(e);
    e = make_engine(.num_blocks = 64, .block_size = 4, .text = true, .async_pair = true,
                    .tweak = tweak_async);
    g_fail_step = 2;                     /* a decode step: the next one flies with late masks */
    struct collected c;
    s = submit_ids(e, prompt, 12, sp);
    collect(s, &c);
    pgd_stream_destroy(s);
    g_fail_step = -1;
    cr_assert_eq(c.finish[0], PGD_FINISH_ABORT);
    cr_assert_gt(async_pair_late_steps(e), 0, "no step sampled late before the failure");
    s = submit_ids(e, prompt, 12, sp);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_eq(c.finish[0], PGD_FINISH_LENGTH, "the next request");
    cr_assert_eq(c.n_tokens[0], want.n_tokens[0]);
    cr_assert_eq(memcmp(c.tokens[0], want.tokens[0], (size_t)want.n_tokens[0] * 4), 0,
                 "the next request's tokens");
    for (int k = 0; k < c.n_tokens[0]; k++)
        cr_assert_neq(c.tokens[0][k], 6, "a bad word at output %d", k);
    pgd_engine_destroy(e);
}

Test(engine, stop_strings_stop_tokens_eos_and_min_tokens)
{
    struct pgd_engine *e = make_engine(.num_blocks = 128, .block_size = 4, .text = true);
    struct pgd_request_params r = pgd_request_default_params();
    struct pgd_stream *s;
    char err[256];
    struct collected c;
    /* Force a known continuation with logit bias: "S", "T", "O", "P", ... */
    struct pgd_logit_bias lb[1] = { { 0, 100.0f } };
    r.prompt = "the end";
    r.sampling = greedy_params(20);
    r.sampling.logit_bias = lb;
    r.sampling.n_logit_bias = 1;
    /* Find what the model says first, then stop on a string spanning two tokens of it. */
    lb[0].token = 32;   /* "S" always */
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_str_eq(c.text[0], "SSSSSSSSSSSSSSSSSSSS");
    cr_assert_eq(c.finish[0], PGD_FINISH_LENGTH);
    const char *stops[] = { "SSS" };
    r.sampling.stop = stops;
    r.sampling.n_stop = 1;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_str_eq(c.text[0], "");
    cr_assert_eq(c.n_tokens[0], 3);
    cr_assert_eq(c.finish[0], PGD_FINISH_STOP);
    cr_assert_str_eq(c.stop_reason[0], "SSS");
    r.sampling.include_stop_str_in_output = true;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_str_eq(c.text[0], "SSS");
    /* min_tokens holds stops off. */
    r.sampling.include_stop_str_in_output = false;
    r.sampling.min_tokens = 5;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_eq(c.finish[0], PGD_FINISH_STOP);
    /* As vLLM: the stop may begin in text generated before min_tokens (held back). */
    cr_assert_eq(c.n_tokens[0], 5);
    cr_assert_str_eq(c.text[0], "SS", "%s", c.text[0]);
    /* Stop token ids and EOS: the token is reported, its text is not. */
    r.sampling = greedy_params(20);
    r.sampling.logit_bias = lb;
    r.sampling.n_logit_bias = 1;
    lb[0].token = EOS_ID;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_eq(c.n_tokens[0], 1);
    cr_assert_eq(c.tokens[0][0], EOS_ID);
    cr_assert_eq(c.stop_token[0], EOS_ID);
    cr_assert_eq(c.finish[0], PGD_FINISH_STOP);
    r.sampling.ignore_eos = true;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    cr_assert_eq(c.n_tokens[0], 20);
    cr_assert_eq(c.finish[0], PGD_FINISH_LENGTH);
    r.sampling.ignore_eos = false;
    lb[0].token = 38;   /* "STOP" */
    int32_t stop_id = 38;
    r.sampling.stop_token_ids = &stop_id;
    r.sampling.n_stop_token_ids = 1;
    r.sampling.min_tokens = 2;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    collect(s, &c);
    pgd_stream_destroy(s);
    /* min_tokens (2) tokens first, with the stop token masked; then it may come. */
    cr_assert_eq(c.n_tokens[0], 3);
    cr_assert_neq(c.tokens[0][0], 38);
    cr_assert_neq(c.tokens[0][1], 38);
    cr_assert_eq(c.tokens[0][2], 38);
    cr_assert_eq(c.stop_token[0], 38);
    cr_assert_eq(c.finish[0], PGD_FINISH_STOP);
    cr_assert_eq(c.text_len[0], strlen(PIECE[c.tokens[0][0]]) + strlen(PIECE[c.tokens[0][1]]));
    pgd_engine_destroy(e);
}

Test(engine, abort_midway_and_stream_destroy_abort)
{
    g_step_delay_us = 1000;     /* 200 tokens take 200 ms: the abort lands midway */
    struct pgd_engine *e = make_engine(.num_blocks = 128, .block_size = 4);
    int32_t prompt[5] = { 2, 3, 4, 5, 6 };
    struct pgd_sampling_params sp = greedy_params(200);
    sp.ignore_eos = true;
    struct pgd_stream *s = submit_ids(e, prompt, 5, sp);
    struct pgd_output o;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pgd_stream_next(s, &o, 10000), PGD_OK);
        cr_assert_eq(o.finish_reason, PGD_FINISH_NONE);
    }
    pgd_engine_abort(e, pgd_stream_request_id(s));
    pgd_engine_abort(e, 999999);        /* unknown: ignored */
    enum pgd_status st;
    int n = 3;
    while ((st = pgd_stream_next(s, &o, 10000)) == PGD_OK) {
        n++;
        if (o.finish_reason != PGD_FINISH_NONE) {
            cr_assert_eq(o.finish_reason, PGD_FINISH_ABORT, "finish %d after %d", o.finish_reason, n);
            cr_assert_eq(o.n_token_ids, 0);
        }
    }
    cr_assert_eq(st, PGD_ERR_CLOSED);
    cr_assert_lt(n, 200);
    cr_assert_eq(pgd_stream_next(s, &o, 0), PGD_ERR_CLOSED);
    pgd_stream_destroy(s);
    /* Destroying an unread stream aborts its request. */
    s = submit_ids(e, prompt, 5, sp);
    pgd_stream_destroy(s);
    struct pgd_engine_stats stats;
    for (int i = 0; i < 1000; i++) {
        pgd_engine_get_stats(e, &stats);
        if (stats.requests_finished[PGD_FINISH_ABORT] == 2 && stats.num_requests_running == 0)
            break;
        struct timespec ts = { 0, 2000000 };
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(stats.requests_finished[PGD_FINISH_ABORT], 2);
    cr_assert_eq(stats.num_requests_running, 0);
    /* A poll with nothing to read times out. */
    s = submit_ids(e, prompt, 5, sp);
    pgd_engine_abort(e, pgd_stream_request_id(s));
    while ((st = pgd_stream_next(s, &o, 10000)) == PGD_OK) {}
    cr_assert_eq(st, PGD_ERR_CLOSED);
    pgd_stream_destroy(s);
    pgd_engine_destroy(e);
}

Test(engine, destroy_aborts_what_is_left_and_streams_stay_readable)
{
    struct pgd_engine *e = make_engine(.num_blocks = 128, .block_size = 4);
    int32_t prompt[5] = { 2, 3, 4, 5, 6 };
    struct pgd_sampling_params sp = greedy_params(200);
    sp.ignore_eos = true;
    sp.n = 2;
    /* 200 tokens take at least 200 ms, so no request can finish before the destroy below,
     * however late a loaded machine schedules this thread. */
    g_step_delay_us = 1000;
    struct pgd_stream *s[4];
    for (int i = 0; i < 4; i++) s[i] = submit_ids(e, prompt, 5, sp);
    pgd_engine_destroy(e);
    g_step_delay_us = 0;
    for (int i = 0; i < 4; i++) {
        struct collected c;
        collect(s[i], &c);
        cr_assert_eq(c.finish[0], PGD_FINISH_ABORT);
        cr_assert_eq(c.finish[1], PGD_FINISH_ABORT);
        pgd_stream_destroy(s[i]);
    }
}

static void tweak_big_budget(struct pgd_engine_params *p) { p->max_num_batched_tokens = 512; }

Test(engine, shared_system_prompt_computes_only_each_suffix)
{
    struct pgd_engine *e = make_engine(.num_blocks = 512, .block_size = 16, .tweak = tweak_big_budget);
    enum { SYS = 320, SUF = 17, N = 8 };
    int32_t prompt[SYS + SUF];
    for (int i = 0; i < SYS; i++) prompt[i] = 2 + (i * 13) % 60;
    for (int r = 0; r < N; r++) {
        for (int i = 0; i < SUF; i++) prompt[SYS + i] = 2 + (r * 5 + i * 11) % 60;
        struct pgd_stream *s = submit_ids(e, prompt, SYS + SUF, greedy_params(3));
        struct collected c;
        collect(s, &c);
        pgd_stream_destroy(s);
        cr_assert_eq(c.cached_tokens[0], r == 0 ? 0 : SYS);
        int32_t ref[3];
        int n = reference_greedy(prompt, SYS + SUF, 3, STOP_AT_EOS, ref);
        cr_assert_eq(c.n_tokens[0], n);
        for (int k = 0; k < n; k++) cr_assert_eq(c.tokens[0][k], ref[k]);
    }
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.prompt_tokens, (uint64_t)(SYS + SUF) * N);
    cr_assert_eq(st.prompt_tokens_computed, (uint64_t)SYS + (uint64_t)SUF * N,
                 "computed %llu", (unsigned long long)st.prompt_tokens_computed);
    cr_assert_eq(st.prefix_cache_hits, (uint64_t)SYS * (N - 1));
    pgd_engine_destroy(e);

    /* Switched off: everything is computed. */
    struct pgd_engine_params p = pgd_engine_default_params();
    p.enable_prefix_caching = false;
    p.max_num_batched_tokens = 512;
    struct pgd__engine_backend be = fake_backend(512, 16, 512);
    char err[256];
    cr_assert_eq(pgd__engine_create_with(&p, &be, NULL, &e, err, sizeof err), PGD_OK);
    for (int r = 0; r < 3; r++) {
        struct pgd_stream *s = submit_ids(e, prompt, SYS + SUF, greedy_params(2));
        struct collected c;
        collect(s, &c);
        pgd_stream_destroy(s);
    }
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.prompt_tokens_computed, (uint64_t)(SYS + SUF) * 3);
    pgd_engine_destroy(e);
}

static void tweak_long_prefill(struct pgd_engine_params *p)
{
    p->max_num_batched_tokens = 512;
    p->long_prefill_token_threshold = 64;
}

/* long_prefill_token_threshold through the engine: a 337-token prompt the 512-token budget
 * would take in one step takes six of at most 64 tokens (every step computes the prompt's
 * next chunk: 6 prompt steps, then a decode step a token), and the tokens are the model's. */
Test(engine, long_prefill_token_threshold_chunks_a_prompt_the_budget_would_take_whole)
{
    struct pgd_engine *e = make_engine(.num_blocks = 512, .block_size = 16,
                                       .tweak = tweak_long_prefill);
    enum { N = 337, OUT = 3 };
    int32_t prompt[N];
    for (int i = 0; i < N; i++) prompt[i] = 2 + (i * 17) % 60;
    struct pgd_sampling_params sp = greedy_params(OUT);
    sp.ignore_eos = true;
    struct pgd_stream *s = submit_ids(e, prompt, N, sp);
    struct collected c;
    collect(s, &c);
    pgd_stream_destroy(s);
    int32_t ref[OUT];
    reference_greedy(prompt, N, OUT, IGNORE_EOS, ref);
    cr_assert_eq(c.n_tokens[0], OUT);
    for (int k = 0; k < OUT; k++) cr_assert_eq(c.tokens[0][k], ref[k]);
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.num_steps, 6 + (OUT - 1), "steps: %llu", (unsigned long long)st.num_steps);
    cr_assert_eq(st.prompt_tokens_computed, (uint64_t)N);
    pgd_engine_destroy(e);
}

/* pgd__engine_hold: while held the engine thread takes nothing (no step, the requests wait),
 * and on release every request submitted meanwhile starts in the same step: six requests of
 * three tokens take one prompt step for all six and two decode steps, each reference's
 * tokens. */
Test(engine, held_engine_starts_the_requests_submitted_meanwhile_together)
{
    struct pgd_engine *e = make_engine(.num_blocks = 256, .block_size = 16);
    enum { N = 6, OUT = 3, LEN = 9 };
    pgd__engine_hold(e, true);
    int32_t prompt[N][LEN];
    struct pgd_stream *s[N];
    for (int r = 0; r < N; r++) {
        for (int i = 0; i < LEN; i++) prompt[r][i] = 2 + (r * 7 + i * 5) % 60;
        struct pgd_sampling_params sp = greedy_params(OUT);
        sp.ignore_eos = true;
        s[r] = submit_ids(e, prompt[r], LEN, sp);
    }
    nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.num_steps, 0, "a held engine stepped %llu times",
                 (unsigned long long)st.num_steps);
    pgd__engine_hold(e, false);
    for (int r = 0; r < N; r++) {
        struct collected c;
        collect(s[r], &c);
        pgd_stream_destroy(s[r]);
        int32_t ref[OUT];
        reference_greedy(prompt[r], LEN, OUT, IGNORE_EOS, ref);
        cr_assert_eq(c.n_tokens[0], OUT);
        for (int k = 0; k < OUT; k++) cr_assert_eq(c.tokens[0][k], ref[k], "request %d", r);
    }
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.num_steps, OUT, "steps: %llu", (unsigned long long)st.num_steps);
    pgd_engine_destroy(e);
}

Test(engine, parallel_samples_share_the_prompt)
{
    struct pgd_engine *e = make_engine(.num_blocks = 256, .block_size = 4);
    int32_t prompt[41];
    for (int i = 0; i < 41; i++) prompt[i] = 2 + (i * 7) % 60;
    struct pgd_sampling_params sp = greedy_params(10);
    sp.n = 4;
    sp.ignore_eos = true;
    struct pgd_stream *s = submit_ids(e, prompt, 41, sp);
    struct collected c;
    collect(s, &c);
    pgd_stream_destroy(s);
    int32_t ref[10];
    reference_greedy(prompt, 41, 10, IGNORE_EOS, ref);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(c.n_tokens[k], 10);
        cr_assert_eq(c.finish[k], PGD_FINISH_LENGTH);
        for (int i = 0; i < 10; i++) cr_assert_eq(c.tokens[k][i], ref[i]);
        cr_assert_eq(c.cached_tokens[k], k == 0 ? 0 : 40);
    }
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.prompt_tokens_computed, 41 + 3 * 1);
    pgd_engine_destroy(e);
}

Test(engine, logprobs_and_prompt_logprobs_match_the_model)
{
    struct pgd_engine *e = make_engine(.num_blocks = 256, .block_size = 4);
    int32_t prompt[70];
    for (int i = 0; i < 70; i++) prompt[i] = 2 + (i * 29) % 60;
    struct pgd_sampling_params sp = greedy_params(4);
    sp.logprobs = 3;
    sp.prompt_logprobs = 2;
    sp.ignore_eos = true;
    struct pgd_stream *s = submit_ids(e, prompt, 70, sp);   /* 70 > budget 64: chunked */
    struct pgd_output o;
    int32_t hist[80];
    memcpy(hist, prompt, sizeof prompt);
    float lg[VOCAB];
    int k = 0;
    while (pgd_stream_next(s, &o, 10000) == PGD_OK) {
        if (k == 0) {
            cr_assert_eq(o.n_prompt_logprobs, 69);
            for (int p = 1; p < 70; p++) {
                rule(hist, p, lg);
                double mx = -INFINITY, sum = 0;
                for (int v = 0; v < VOCAB; v++) mx = fmax(mx, lg[v]);
                for (int v = 0; v < VOCAB; v++) sum += exp(lg[v] - mx);
                const struct pgd_token_logprobs *t = &o.prompt_logprobs[p - 1];
                cr_assert_eq(t->chosen.token, prompt[p]);
                cr_assert_float_eq(t->chosen.logprob, lg[prompt[p]] - mx - log(sum), 1e-4);
                cr_assert_eq(t->n_top, 2);
                cr_assert_geq(t->top[0].logprob, t->top[1].logprob);
            }
        } else {
            cr_assert_null(o.prompt_logprobs);
        }
        cr_assert_eq(o.n_token_ids, 1);
        rule(hist, 70 + k, lg);
        cr_assert_not_null(o.logprobs);
        const struct pgd_token_logprobs *t = &o.logprobs[0];
        cr_assert_eq(t->chosen.token, o.token_ids[0]);
        cr_assert_eq(t->chosen.rank, 1);            /* greedy picks the top */
        cr_assert_eq(t->top[0].token, o.token_ids[0]);
        cr_assert_eq(t->n_top, 3);
        hist[70 + k] = o.token_ids[0];
        k++;
    }
    cr_assert_eq(k, 4);
    pgd_stream_destroy(s);
    pgd_engine_destroy(e);
}

Test(engine, metrics_in_prometheus_text_format)
{
    struct pgd_engine *e = make_engine(.num_blocks = 64, .block_size = 4);
    int32_t prompt[6] = { 2, 3, 4, 5, 6, 7 };
    struct pgd_stream *s = submit_ids(e, prompt, 6, greedy_params(5));
    struct collected c;
    collect(s, &c);
    pgd_stream_destroy(s);
    char *text;
    size_t len;
    cr_assert_eq(pgd_engine_metrics_text(e, &text, &len), PGD_OK);
    cr_assert_eq(strlen(text), len);
    /* Every series carries model_name (model_dir's last part without a model_name); the
     * bucket bounds read as Prometheus writes them (le="0.005", not 0.0050000000000000001). */
#define M "{model_name=\"model\"}"
#define ML "{model_name=\"model\","
    const char *names[] = {
        "# TYPE pagoda:num_requests_running gauge", "# TYPE pagoda:num_requests_waiting gauge",
        "# TYPE pagoda:kv_cache_usage_perc gauge", "pagoda:prefix_cache_queries_total" M " ",
        "pagoda:prefix_cache_hits_total" M " ", "pagoda:num_preemptions_total" M " 0",
        "# TYPE pagoda:num_requests_swapped gauge", "pagoda:num_swapped_out_total" M " 0",
        "pagoda:swap_out_bytes_total" M " 0", "pagoda:swap_in_bytes_total" M " 0",
        "pagoda:prompt_tokens_total" M " 6", "# TYPE pagoda:time_to_first_token_seconds histogram",
        "pagoda:time_to_first_token_seconds_bucket" ML "le=\"+Inf\"} 1",
        "pagoda:time_to_first_token_seconds_bucket" ML "le=\"0.005\"} ",
        "pagoda:time_to_first_token_seconds_count" M " 1",
        "pagoda:inter_token_latency_seconds_count" M " ",
        "pagoda:e2e_request_latency_seconds_count" M " 1",
        "pagoda:request_queue_time_seconds_count" M " 1",
        "pagoda:request_success_total" ML "finished_reason=\"length\"} ",
        "pagoda:request_prompt_tokens_bucket" ML "le=\"5.0\"} 0.0",
        "pagoda:request_prompt_tokens_bucket" ML "le=\"10.0\"} 1.0",
        "pagoda:request_prompt_tokens_sum" M " 6.0",
        "pagoda:request_generation_tokens_count" M " 1.0",
        "pagoda:request_prefill_time_seconds_count" M " 1.0",
        "pagoda:request_decode_time_seconds_count" M " 1.0",
        "# TYPE pagoda:iteration_tokens_total histogram",
        "pagoda:iteration_tokens_total_sum" M " 10.0",
        "pagoda:cache_config_info" ML "block_size=\"4\",num_gpu_blocks=\"64\",",
    };
#undef M
#undef ML
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert(strstr(text, names[i]) != NULL, "missing %s in\n%s", names[i], text);
    char want[64];
    snprintf(want, sizeof want, "pagoda:generation_tokens_total{model_name=\"model\"} %d.0\n",
             c.n_tokens[0]);
    cr_assert(strstr(text, want) != NULL, "%s", text);
    /* Every line is a comment or "name[{labels}] value". */
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        if (*line != '#') {
            char *sp = memchr(line, ' ', (size_t)(nl - line));
            cr_assert_not_null(sp);
            char *end;
            strtod(sp + 1, &end);
            cr_assert(end == nl || strncmp(sp + 1, "+Inf", 4) == 0, "bad line %.*s",
                      (int)(nl - line), line);
        }
        line = nl + 1;
    }
    free(text);
    pgd_engine_destroy(e);
}

/* The value of the sample "name{labels}" in Prometheus text (the series must be there, its
 * value a number ending the line). */
static double series_value(const char *text, const char *series)
{
    char key[256];
    snprintf(key, sizeof key, "\n%s ", series);
    const char *p = strstr(text, key);
    cr_assert_not_null(p, "missing %s in\n%s", series, text);
    p += strlen(key);
    char *end;
    double v = strtod(p, &end);
    cr_assert(end != p && *end == '\n', "bad value of %s: %.20s", series, p);
    return v;
}


/* /metrics' step counters: the timed steps split by kind (a prompt step is mixed, the
 * decodes after it decode-only), the kinds summing to the stats' totals, the phases to the
 * wall time, the stream pushes within the output phase, every series with the model_name
 * label. */
Test(engine, step_counters_by_kind_in_metrics)
{
    struct pgd_engine *e = make_engine(.num_blocks = 64, .block_size = 4);
    int32_t p1[6] = { 2, 3, 4, 5, 6, 7 }, p2[9] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
    struct pgd_sampling_params sp1 = greedy_params(5), sp2 = greedy_params(3);
    sp1.ignore_eos = sp2.ignore_eos = true;   /* both run to their length: decodes follow */
    struct pgd_stream *s1 = submit_ids(e, p1, 6, sp1);
    struct pgd_stream *s2 = submit_ids(e, p2, 9, sp2);
    struct collected c;
    collect(s1, &c);
    collect(s2, &c);
    pgd_stream_destroy(s1);
    pgd_stream_destroy(s2);
    struct pgd_engine_stats st;
    engine_settled_stats(e, &st);
    cr_assert_eq(st.step_timed, st.num_steps);
    char *text;
    size_t len;
    cr_assert_eq(pgd_engine_metrics_text(e, &text, &len), PGD_OK);
#define ML "{model_name=\"model\","
    const char *types[] = {
        "# TYPE pagoda:engine_steps_total counter\n",
        "# TYPE pagoda:engine_step_seconds_total counter\n",
        "# TYPE pagoda:engine_step_device_seconds_total counter\n",
        "# TYPE pagoda:engine_step_phase_seconds_total counter\n",
        "# TYPE pagoda:engine_step_output_push_seconds_total counter\n",
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        cr_assert(strstr(text, types[i]) != NULL, "missing %s in\n%s", types[i], text);
    double dec = series_value(text, "pagoda:engine_steps_total" ML "kind=\"decode_only\"}");
    double mixed = series_value(text, "pagoda:engine_steps_total" ML "kind=\"mixed\"}");
    cr_assert_gt(dec, 0, "the decodes after the prompts");
    cr_assert_gt(mixed, 0, "the prompts' steps");
    cr_assert_eq(dec + mixed, (double)st.step_timed);
    cr_assert_eq(dec, (double)st.num_steps_decode_only);
    double wall_dec = series_value(text, "pagoda:engine_step_seconds_total" ML
                                         "kind=\"decode_only\"}");
    double wall_mixed = series_value(text, "pagoda:engine_step_seconds_total" ML
                                           "kind=\"mixed\"}");
    cr_assert(wall_dec > 0 && wall_mixed > 0, "%g %g", wall_dec, wall_mixed);
    cr_assert_float_eq(wall_dec + wall_mixed, st.step_total_s, 1e-9 + 1e-9 * st.step_total_s);
    /* The stand-in backend does not measure device time: 0 for both kinds. */
    cr_assert_eq(series_value(text, "pagoda:engine_step_device_seconds_total" ML
                                    "kind=\"decode_only\"}"), 0.0);
    cr_assert_eq(series_value(text, "pagoda:engine_step_device_seconds_total" ML
                                    "kind=\"mixed\"}"), 0.0);
    double phases = 0;
    const char *names[] = { "schedule", "prepare", "model", "output" };
    for (int i = 0; i < 4; i++) {
        char sname[160];
        snprintf(sname, sizeof sname,
                 "pagoda:engine_step_phase_seconds_total" ML "phase=\"%s\"}", names[i]);
        double v = series_value(text, sname);
        cr_assert_geq(v, 0, "%s", sname);
        phases += v;
    }
    /* The pushes are inside the output phase: positive (every step emitted), never more. */
    double push = series_value(text, "pagoda:engine_step_output_push_seconds_total{model_name="
                                     "\"model\"}");
    cr_assert_float_eq(push, st.step_output_push_s, 1e-12 + 1e-9 * push);
    cr_assert(push > 0 && push <= st.step_output_s, "push %g, output phase %g", push,
              st.step_output_s);
#undef ML
    cr_assert_float_eq(phases, wall_dec + wall_mixed, 1e-9 + 1e-6 * st.step_total_s);
    free(text);
    pgd_engine_destroy(e);
}

Test(engine_threads, many_submitters_small_pool)
{
    /* 20 blocks of 4 tokens: 80 tokens of KV for up to 6 sequences of up to 64. */
    struct pgd_engine *e = make_engine(.num_blocks = 20, .block_size = 4, .tweak = fixture_tweak_stress);
    /* Steps of 50 us, so that a worker's abort after a few outputs lands before its request
     * ends (a fast host once finished every one of them first). */
    g_step_delay_us = 50;
    enum { T = 8 };
    struct worker w[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){ .e = e, .id = i, .n_requests = 40 };
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    int aborted = 0;
    for (int i = 0; i < T; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_assert_null(ret, "worker %d: %s", i, (const char *)ret);
        cr_assert_eq(w[i].done, 40);
        aborted += w[i].aborted;
    }
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_gt(st.prefix_cache_hits, 0);
    cr_assert_gt(aborted, 0);
    /* Whether the submitters' overlap ran out of blocks depends on the threads' timing (a
     * run under ASan once had none). Then for certain, on the pool they left behind: under
     * vLLM's rule (admit while blocks last, no headroom) one request of three samples,
     * admitted together, whose 16-token prompt (4 shared blocks) grows by 40 tokens in each
     * sample (10 blocks each): 34 blocks of a pool of 20. */
    const uint64_t before = st.num_preemptions;
    pgd__engine_set_kv_policy(e, 0, false);
    int32_t prompt[16];
    for (int i = 0; i < 16; i++)
        prompt[i] = 2 + (7 * i) % 60;
    struct pgd_request_params rp = pgd_request_default_params();
    rp.prompt_ids = prompt;
    rp.n_prompt_ids = 16;
    rp.sampling = greedy_params(40);
    rp.sampling.ignore_eos = true;
    rp.sampling.n = 3;
    struct pgd_stream *s;
    char err[256];
    cr_assert_eq(pgd_engine_submit(e, &rp, &s, err, sizeof err), PGD_OK, "%s", err);
    struct collected c;
    collect(s, &c);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(c.n_tokens[k], 40, "sample %d: %d tokens", k, c.n_tokens[k]);
    pgd_stream_destroy(s);
    pgd_engine_get_stats(e, &st);
    cr_assert_gt(st.num_preemptions, before, "%llu preemptions before, %llu after",
                 (unsigned long long)before, (unsigned long long)st.num_preemptions);
    char *text;
    cr_assert_eq(pgd_engine_metrics_text(e, &text, NULL), PGD_OK);
    free(text);
    pgd_engine_destroy(e);
}

/* ---- the real model: the tiny Llama fixture through the runner ------------------------- */

#include "runtime/engine/scheduler.h"
#include <dlfcn.h>
#include <jansson.h>
#include <unistd.h>


/* An engine on the Llama fixture, on the CPU (tests/lib/model_fixture.c). */
/* The Llama fixture's engine; batch_invariant for runs compared token for token with runs
 * batched otherwise. */
static struct pgd_engine *llama_engine_bi(int num_blocks, int block_size, int budget,
                                          int max_seqs, bool batch_invariant)
{
    struct pgd_engine_params p = model_engine_sized(PGD_DEVICE_CPU, num_blocks, block_size,
                                                    budget, max_seqs);
    p.batch_invariant = batch_invariant;
    return model_engine_params("llama-f32", &p);
}

static struct pgd_engine *llama_engine(int num_blocks, int block_size, int budget, int max_seqs)
{
    return llama_engine_bi(num_blocks, block_size, budget, max_seqs, false);
}

/* The fixture's cases together on 40 blocks of 4 tokens (four sequences of up to 102
 * tokens: KV pressure) with a budget of 24 tokens (chunked prefill beside decodes) under
 * the scheduler's KV policy (headroom, cheapest): every greedy token equals transformers'.
 * *st gets the engine's stats at the end. */
static void run_fixture_cases_under_pressure(int headroom, bool cheapest,
                                             struct pgd_engine_stats *st)
{
    json_t *ref = fixture_reference("llama-f32");
    struct pgd_engine *e = llama_engine(40, 4, 24, 8);
    pgd__engine_set_kv_policy(e, headroom, cheapest);
    json_t *cases = json_object_get(ref, "cases");
    size_t nc = json_array_size(cases);
    struct pgd_stream *s[8];
    int n_new = (int)json_integer_value(json_object_get(ref, "n_new"));
    for (size_t i = 0; i < nc; i++) {
        int np;
        int32_t *prompt = json_ints(json_object_get(json_array_get(cases, i), "prompt"), &np);
        struct pgd_sampling_params sp = greedy_params(n_new);
        sp.ignore_eos = true;
        sp.n = i == 1 ? 2 : 1;
        s[i] = submit_ids(e, prompt, np, sp);
        free(prompt);
    }
    for (size_t i = 0; i < nc; i++) {
        struct collected c;
        collect(s[i], &c);
        pgd_stream_destroy(s[i]);
        int ng;
        int32_t *want = json_ints(json_object_get(json_object_get(json_array_get(cases, i), "native"),
                                             "greedy"), &ng);
        for (int k = 0; k < (i == 1 ? 2 : 1); k++) {
            cr_assert_eq(c.n_tokens[k], ng);
            for (int t = 0; t < ng; t++)
                cr_assert_eq(c.tokens[k][t], want[t], "headroom %d: case %zu sample %d token "
                             "%d: %d, transformers %d", headroom, i, k, t, c.tokens[k][t],
                             want[t]);
        }
        free(want);
    }
    pgd_engine_get_stats(e, st);
    pgd_engine_destroy(e);
    json_decref(ref);
}

/* vLLM's rule (admit while blocks last, preempt the newest) preempts here, and what it
 * recomputes changes no token. */
Test(engine_llama, batched_chunked_preempted_greedy_matches_transformers)
{
    struct pgd_engine_stats st;
    run_fixture_cases_under_pressure(0, false, &st);
    cr_assert_gt(st.num_preemptions, 0);
    cr_assert_gt(st.num_tokens_recomputed, 0);
}

/* The engine's default policy on the same pool: it keeps headroom for the running
 * sequences, so it preempts less and recomputes less, with the same tokens. */
Test(engine_llama, kv_headroom_recomputes_less_with_the_same_tokens)
{
    struct pgd_engine_stats old, now;
    run_fixture_cases_under_pressure(0, false, &old);
    run_fixture_cases_under_pressure(PGD__SCHED_HEADROOM_STEPS_DEFAULT, true, &now);
    cr_assert_lt(now.num_preemptions, old.num_preemptions);
    cr_assert_lt(now.num_tokens_recomputed, old.num_tokens_recomputed);
    cr_assert_lt(now.prompt_tokens_computed, old.prompt_tokens_computed);
}

/* A thousand random requests through the real model, together, in a pool small enough
 * to preempt: every greedy token equals the request's run alone. */
Test(engine_llama, random_requests_match_their_runs_alone, .timeout = 600)
{
    enum { N = 1000 };
    struct { int32_t prompt[48]; int n, max_out, nc; bool abort; } rq[N];
    uint32_t rs = 12345;
    int32_t sys[32];
    for (int i = 0; i < 32; i++) sys[i] = 3 + (int32_t)(xs(&rs) % 500);
    for (int r = 0; r < N; r++) {
        rq[r].n = 1 + (int)(xs(&rs) % 47);
        int pre = xs(&rs) % 2 ? (int)(xs(&rs) % 32) : 0;
        if (pre > rq[r].n) pre = rq[r].n;
        memcpy(rq[r].prompt, sys, (size_t)pre * sizeof *sys);
        for (int i = pre; i < rq[r].n; i++) rq[r].prompt[i] = 3 + (int32_t)(xs(&rs) % 500);
        rq[r].max_out = 1 + (int)(xs(&rs) % 16);
        rq[r].nc = xs(&rs) % 5 == 0 ? 2 : 1;
        rq[r].abort = xs(&rs) % 8 == 0;
    }
    /* Alone, one at a time, in a roomy engine. */
    int32_t alone[N][16];
    int n_alone[N];
    struct pgd_engine *e = llama_engine_bi(64, 16, 256, 4, true);
    for (int r = 0; r < N; r++) {
        struct pgd_stream *s = submit_ids(e, rq[r].prompt, rq[r].n, greedy_params(rq[r].max_out));
        struct collected c;
        collect(s, &c);
        pgd_stream_destroy(s);
        n_alone[r] = c.n_tokens[0];
        memcpy(alone[r], c.tokens[0], (size_t)c.n_tokens[0] * sizeof(int32_t));
    }
    pgd_engine_destroy(e);
    /* All at once in a tight one: shared prefixes, n > 1, aborts, preemption (vLLM's rule:
     * the engine's default headroom would leave this pool nothing to preempt). */
    e = llama_engine_bi(24, 4, 32, 6, true);
    pgd__engine_set_kv_policy(e, 0, false);
    struct pgd_stream *s[N];
    for (int r = 0; r < N; r++) {
        struct pgd_sampling_params sp = greedy_params(rq[r].max_out);
        sp.n = rq[r].nc;
        s[r] = submit_ids(e, rq[r].prompt, rq[r].n, sp);
        if (rq[r].abort)
            pgd_engine_abort(e, pgd_stream_request_id(s[r]));
    }
    int aborted = 0;
    for (int r = 0; r < N; r++) {
        struct collected c;
        collect(s[r], &c);
        pgd_stream_destroy(s[r]);
        for (int k = 0; k < rq[r].nc; k++) {
            cr_assert_neq(c.finish[k], PGD_FINISH_NONE);
            if (c.finish[k] == PGD_FINISH_ABORT) {
                aborted++;
                cr_assert_leq(c.n_tokens[k], n_alone[r]);
            } else {
                cr_assert_eq(c.n_tokens[k], n_alone[r], "request %d", r);
            }
            for (int t = 0; t < c.n_tokens[k]; t++)
                cr_assert_eq(c.tokens[k][t], alone[r][t], "request %d sample %d token %d", r, k, t);
        }
    }
    cr_assert_gt(aborted, 0);
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_gt(st.num_preemptions, 0);
    cr_assert_gt(st.prefix_cache_hits, 0);
    pgd_engine_destroy(e);
}

/* ---- batch invariance ------------------------------------------------------------------ */

/* A seeded request's tokens with the bits of each logprob: its prompt's ([0, n_prompt)) and
 * its outputs' ([n_prompt, n)). */
struct logprob_bits {
    int n_prompt, n;
    int32_t token[64];
    uint32_t bits[64];
};

static void collect_logprob_bits(struct pgd_stream *s, struct logprob_bits *lb)
{
    memset(lb, 0, sizeof *lb);
    struct pgd_output o;
    while (pgd_stream_next(s, &o, 10000) == PGD_OK) {
        for (int i = 0; i < o.n_prompt_logprobs; i++, lb->n_prompt++, lb->n++) {
            cr_assert_lt(lb->n, 64);
            lb->token[lb->n] = o.prompt_logprobs[i].chosen.token;
            memcpy(&lb->bits[lb->n], &o.prompt_logprobs[i].chosen.logprob, 4);
        }
        cr_assert(o.n_token_ids == 0 || o.logprobs, "logprobs were asked for");
        for (int i = 0; i < o.n_token_ids; i++, lb->n++) {
            cr_assert_lt(lb->n, 64);
            lb->token[lb->n] = o.token_ids[i];
            memcpy(&lb->bits[lb->n], &o.logprobs[i].chosen.logprob, 4);
        }
    }
}

/* With batch_invariant, a request at temperature 1 gives the same tokens and the same bits
 * of every logprob, its prompt's and its outputs', alone and beside 15 others of every
 * length, some of them in prefill in the same steps (without it sgemm takes rows two at a
 * time and an odd last one alone, and the logprobs differ in their last bits). On a GPU
 * the engine refuses it. */
Test(engine_llama, batch_invariant_logprobs_are_the_same_bits_in_any_batch)
{
    struct pgd_engine *e = llama_engine_bi(256, 16, 64, 16, true);
    int32_t prompt[20];
    for (int i = 0; i < 20; i++)
        prompt[i] = 5 + (i * 29) % 240;
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 1.0f;
    sp.has_seed = true;
    sp.seed = 4321;
    sp.max_tokens = 40;
    sp.ignore_eos = true;
    sp.logprobs = 0;
    sp.prompt_logprobs = 0;
    struct logprob_bits alone, crowd;
    struct pgd_stream *s = submit_ids(e, prompt, 20, sp);
    collect_logprob_bits(s, &alone);
    pgd_stream_destroy(s);
    cr_assert_eq(alone.n_prompt, 19, "prompt tokens 1..19 have logprobs");
    cr_assert_eq(alone.n, 59);
    struct pgd_stream *others[15];
    for (int i = 0; i < 15; i++) {
        int32_t p2[60];
        for (int k = 0; k < 60; k++)
            p2[k] = 3 + (i * 13 + k * 7) % 250;
        struct pgd_sampling_params o = pgd_sampling_default_params();
        o.max_tokens = 3 + 4 * i;
        o.ignore_eos = true;
        others[i] = submit_ids(e, p2, 1 + (i * 11) % 60, o);
        if (i == 6)
            s = submit_ids(e, prompt, 20, sp);
    }
    collect_logprob_bits(s, &crowd);
    pgd_stream_destroy(s);
    for (int i = 0; i < 15; i++)
        pgd_stream_destroy(others[i]);
    cr_assert_eq(crowd.n, alone.n);
    for (int k = 0; k < alone.n; k++) {
        cr_assert_eq(crowd.token[k], alone.token[k], "token %d", k);
        cr_assert_eq(crowd.bits[k], alone.bits[k], "logprob %d of %s: 0x%08x alone, 0x%08x in "
                     "the crowd", k, k < alone.n_prompt ? "the prompt" : "the output",
                     alone.bits[k], crowd.bits[k]);
    }
    pgd_engine_destroy(e);
    struct pgd_engine_params p = pgd_engine_default_params();
    p.model_dir = fixture_dir("llama-f32");
    p.device = PGD_DEVICE_CUDA;
    p.batch_invariant = true;
    char err[512] = "";
    cr_assert_eq(pgd_engine_create(&p, &e, err, sizeof err), PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "batch_invariant") && strstr(err, "cuda"), "%s", err);
}

/* ---- sliding window: blocks the window left behind go back to the pool ------------------- */

/* The Mistral fixture (window 16) with 4 requests of up to 102 tokens in 64 blocks of 4:
 * holding every block they would need 104 and preempt; releasing what the window left
 * behind, each holds at most (16 + 24) / 4 + 2 blocks and nothing is preempted, every
 * request still equals transformers' greedy continuation, and the pool ends empty. */
Test(engine_llama, sliding_window_releases_blocks_without_changing_results)
{
    json_t *ref = fixture_reference("mistral-f32");
    struct pgd_engine *e = model_engine("mistral-f32", PGD_DEVICE_CPU, 64, 4, 24, 8);
    json_t *cases = json_object_get(ref, "cases");
    size_t nc = json_array_size(cases);
    int n_new = (int)json_integer_value(json_object_get(ref, "n_new"));
    struct pgd_stream *s[8];
    for (size_t i = 0; i < nc; i++) {
        int np;
        int32_t *prompt = json_ints(json_object_get(json_array_get(cases, i), "prompt"), &np);
        struct pgd_sampling_params sp = greedy_params(n_new);
        sp.ignore_eos = true;
        s[i] = submit_ids(e, prompt, np, sp);
        free(prompt);
    }
    for (size_t i = 0; i < nc; i++) {
        struct collected c;
        collect(s[i], &c);
        pgd_stream_destroy(s[i]);
        int ng;
        int32_t *want = json_ints(json_object_get(json_object_get(json_array_get(cases, i), "native"),
                                             "greedy"), &ng);
        cr_assert_eq(c.n_tokens[0], ng);
        for (int t = 0; t < ng; t++)
            cr_assert_eq(c.tokens[0][t], want[t], "case %zu token %d: %d, transformers %d", i, t,
                         c.tokens[0][t], want[t]);
        free(want);
    }
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_eq(st.num_preemptions, 0, "%llu preemptions", (unsigned long long)st.num_preemptions);
    /* The stats are refreshed by the engine thread after the step that finished the last
     * request: give it a moment. */
    for (int tries = 0; tries < 200 && st.kv_cache_usage > 0; tries++) {
        usleep(5000);
        pgd_engine_get_stats(e, &st);
    }
    cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12);
    pgd_engine_destroy(e);
    json_decref(ref);
}

/* Two engines one after the other in one process, with plugins dlclosed as outside the test
 * harness (no PAGODA_NO_DLCLOSE): the first one's teardown unloads the llama plugin, not the
 * libpagoda.so it links (runtime/model/registry.c, pin_host_library), and the second engine
 * loads the plugin again and gives the same greedy tokens. */
Test(engine_llama, a_second_engine_after_the_first_is_destroyed_gives_the_same_tokens)
{
    unsetenv("PAGODA_NO_DLCLOSE");
    const char *lib = PGD_TEST_BUILDDIR "/.libs/libpagoda.so";
    int32_t prompt[6] = { 5, 17, 2, 44, 3, 9 };
    int32_t got[2][12];
    for (int round = 0; round < 2; round++) {
        struct pgd_engine *e = llama_engine(16, 4, 32, 2);
        struct pgd_sampling_params sp = greedy_params(12);
        sp.ignore_eos = true;
        struct pgd_stream *s = submit_ids(e, prompt, 6, sp);
        struct collected c;
        collect(s, &c);
        pgd_stream_destroy(s);
        cr_assert_eq(c.n_tokens[0], 12, "round %d", round);
        memcpy(got[round], c.tokens[0], sizeof got[round]);
        pgd_engine_destroy(e);
        void *h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
        cr_assert_not_null(h, "round %d: %s was unloaded with the engine's plugins", round, lib);
        dlclose(h);
    }
    cr_assert_eq(memcmp(got[0], got[1], sizeof got[0]), 0, "the second engine's tokens differ");
}

/* ---- sampling through the backend (pgd__runner_step_sample) ------------------------------ */

/* The engine with the backend sampling (the runner's step_sample) and with full logits and
 * its own sampler gives the same tokens and logprobs: sampled, penalised, seeded requests
 * with logprobs and prompt logprobs, n = 2, chunked prefill. */
Test(engine_llama, backend_sampling_equals_engine_sampling)
{
    enum { N = 12, OUT = 10 };
    int32_t prompt[N][40];
    int len[N];
    struct pgd_sampling_params sp[N];
    uint32_t rs = 7;
    for (int r = 0; r < N; r++) {
        rs = rs * 1103515245u + 12345u;
        len[r] = 2 + (int)(rs >> 16) % 38;
        for (int i = 0; i < len[r]; i++) prompt[r][i] = 3 + (int32_t)((rs >> 8) + i * 53u) % 500;
        sp[r] = pgd_sampling_default_params();
        sp[r].max_tokens = OUT;
        sp[r].ignore_eos = true;
        sp[r].has_seed = true;
        sp[r].seed = 500 + (uint64_t)r;
        sp[r].n = r % 3 == 0 ? 2 : 1;
        sp[r].logprobs = r % 2 ? 3 : -1;
        sp[r].prompt_logprobs = r % 4 == 1 ? 2 : -1;
        sp[r].top_p = r % 5 == 0 ? 0.8f : 1.0f;
        sp[r].top_k = r % 3 == 1 ? 10 : 0;
        sp[r].repetition_penalty = r % 4 == 2 ? 1.2f : 1.0f;
        sp[r].presence_penalty = r % 4 == 3 ? 0.5f : 0.0f;
        sp[r].temperature = r % 6 == 5 ? 0.0f : 0.9f;
    }
    struct out { int32_t tok[2][OUT]; float lp[2][OUT]; float plp[40]; int n_plp; };
    static struct out got[2][N];
    for (int mode = 0; mode < 2; mode++) {
        struct pgd_engine *e = llama_engine(64, 4, 16, 4);
        pgd__engine_set_device_sampling(e, mode == 0);
        for (int r = 0; r < N; r++) {
            struct pgd_stream *s = submit_ids(e, prompt[r], len[r], sp[r]);
            struct pgd_output o;
            int n[2] = { 0, 0 };
            struct out *g = &got[mode][r];
            while (pgd_stream_next(s, &o, 10000) == PGD_OK) {
                for (int i = 0; i < o.n_token_ids; i++) {
                    g->tok[o.index][n[o.index]] = o.token_ids[i];
                    if (o.logprobs)
                        g->lp[o.index][n[o.index]] = o.logprobs[i].chosen.logprob;
                    n[o.index]++;
                }
                for (int i = 0; i < o.n_prompt_logprobs; i++)
                    g->plp[i] = o.prompt_logprobs[i].chosen.logprob;
                if (o.n_prompt_logprobs)
                    g->n_plp = o.n_prompt_logprobs;
            }
            pgd_stream_destroy(s);
            for (int k = 0; k < sp[r].n; k++)
                cr_assert_eq(n[k], OUT);
        }
        pgd_engine_destroy(e);
    }
    for (int r = 0; r < N; r++) {
        cr_assert_eq(memcmp(&got[0][r], &got[1][r], sizeof got[0][r]), 0, "request %d differs "
                     "(first token %d vs %d)", r, got[0][r].tok[0][0], got[1][r].tok[0][0]);
        if (sp[r].prompt_logprobs >= 0)
            cr_assert_eq(got[0][r].n_plp, len[r] - 1);
    }
}

/* ---- async scheduling (engine_step.c) ----------------------------------------------------- */

enum { ASYNC_N = 96, ASYNC_OUT = 16 };

struct async_case {
    int32_t prompt[40];
    int n;
    struct pgd_sampling_params sp;
    int32_t stop_id;                 /* a stop_token_ids entry when >= 0 */
    bool abort;                      /* aborted right after its submission */
};

/* What one request gave: per sample its tokens, their logprobs, the finish and stop token. */
struct async_out {
    int32_t tok[2][ASYNC_OUT];
    float lp[2][ASYNC_OUT];
    int n[2], finish[2], stop_token[2];
};

/* Requests of every kind that may share a step with a pending token: greedy and seeded
 * sampled ones, logprobs, prompt logprobs, n = 2, min_tokens, EOS or not, and some with a
 * repetition penalty or frequency and presence penalties (which count the pending token:
 * the CPU backend puts it into the sequence before the step runs). */
static void async_cases(struct async_case *rc)
{
    uint32_t rs = 99;
    for (int r = 0; r < ASYNC_N; r++) {
        rc[r].n = 1 + (int)(xs(&rs) % 39);
        for (int i = 0; i < rc[r].n; i++)
            rc[r].prompt[i] = 3 + (int32_t)(xs(&rs) % 500);
        struct pgd_sampling_params sp = pgd_sampling_default_params();
        sp.max_tokens = 1 + r % ASYNC_OUT;
        sp.temperature = r % 3 == 0 ? 0.0f : 0.8f;
        sp.has_seed = true;
        sp.seed = 1000 + (uint64_t)r;
        sp.logprobs = r % 4 == 1 ? 2 : -1;
        sp.prompt_logprobs = r % 7 == 3 ? 1 : -1;
        sp.n = r % 5 == 0 ? 2 : 1;
        sp.repetition_penalty = r % 6 == 4 ? 1.3f : 1.0f;
        sp.frequency_penalty = r % 6 == 1 ? 0.9f : 0.0f;
        sp.presence_penalty = r % 6 == 1 ? 0.6f : 0.0f;
        sp.ignore_eos = r % 2 == 0;
        sp.min_tokens = r % 9 == 5 && sp.max_tokens >= 2 ? 2 : 0;
        rc[r].sp = sp;
        rc[r].stop_id = -1;
        rc[r].abort = false;
    }
}

/* The cases through the Llama fixture, async scheduling on or off, on a tight pool (24
 * blocks of 4, 6 sequences and 32 tokens a step, vLLM's preemption rule: chunked prefill,
 * preemption) or a roomy one (512 blocks: nothing preempted); *st gets the engine's stats. */
static void async_run(bool async, bool roomy, const struct async_case *rc,
                      struct async_out *out, struct pgd_engine_stats *st)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.device = PGD_DEVICE_CPU;
    p.num_blocks = roomy ? 512 : 24;
    p.block_size = 4;
    p.max_num_batched_tokens = 32;
    p.max_num_seqs = 6;
    p.async_scheduling = async;
    /* A new request joins a step later under async scheduling, so the two runs batch
     * differently: the same bits need linears that do not depend on the batch. */
    p.batch_invariant = true;
    struct pgd_engine *e = model_engine_params("llama-f32", &p);
    pgd__engine_set_kv_policy(e, 0, false);
    static struct pgd_stream *s[ASYNC_N];
    for (int r = 0; r < ASYNC_N; r++) {
        struct pgd_sampling_params sp = rc[r].sp;
        sp.stop_token_ids = rc[r].stop_id >= 0 ? &rc[r].stop_id : NULL;
        sp.n_stop_token_ids = rc[r].stop_id >= 0 ? 1 : 0;
        s[r] = submit_ids(e, rc[r].prompt, rc[r].n, sp);
        if (rc[r].abort)
            pgd_engine_abort(e, pgd_stream_request_id(s[r]));
    }
    for (int r = 0; r < ASYNC_N; r++) {
        struct async_out *g = &out[r];
        memset(g, 0, sizeof *g);
        struct pgd_output o;
        enum pgd_status rst;
        while ((rst = pgd_stream_next(s[r], &o, 10000)) == PGD_OK) {
            for (int i = 0; i < o.n_token_ids; i++) {
                cr_assert_lt(g->n[o.index], ASYNC_OUT);
                g->lp[o.index][g->n[o.index]] = o.logprobs ? o.logprobs[i].chosen.logprob : 0;
                g->tok[o.index][g->n[o.index]++] = o.token_ids[i];
            }
            if (o.finish_reason != PGD_FINISH_NONE) {
                g->finish[o.index] = (int)o.finish_reason;
                g->stop_token[o.index] = o.stop_token;
            }
        }
        cr_assert_eq(rst, PGD_ERR_CLOSED, "request %d: %s", r, pgd_status_str(rst));
        pgd_stream_destroy(s[r]);
    }
    pgd_engine_get_stats(e, st);
    pgd_engine_destroy(e);
}

/* With async scheduling each step is planned and submitted before the outputs of the step
 * before are handled, its sampled tokens still placeholders: every output is the same as
 * without, including samples that a stop token ends while their next step is in flight
 * (that step's row is dropped) and samples whose last token gets no placeholder. Aborted
 * requests end with a prefix of their tokens, and the pool ends consistent (paranoid). */
Test(engine_llama, async_scheduling_gives_the_same_outputs, .timeout = 600)
{
    static struct async_case rc[ASYNC_N];
    static struct async_out first[ASYNC_N], sync_out[ASYNC_N], async_out[ASYNC_N];
    struct pgd_engine_stats st_first, st_sync, st_async;
    async_cases(rc);
    /* Stop tokens that end samples midway: a request's own fourth token of a first run. */
    async_run(false, false, rc, first, &st_first);
    int with_stop = 0;
    for (int r = 0; r < ASYNC_N; r++)
        if (r % 4 == 2 && first[r].n[0] >= 4) {
            rc[r].stop_id = first[r].tok[0][3];
            with_stop++;
        }
    cr_assert_gt(with_stop, 5);
    async_run(false, false, rc, sync_out, &st_sync);
    async_run(true, false, rc, async_out, &st_async);
    int stopped_early = 0;
    for (int r = 0; r < ASYNC_N; r++) {
        for (int k = 0; k < rc[r].sp.n; k++) {
            const struct async_out *a = &sync_out[r], *b = &async_out[r];
            cr_assert_eq(a->n[k], b->n[k], "request %d sample %d: %d tokens in turn, %d async",
                         r, k, a->n[k], b->n[k]);
            cr_assert_eq(a->finish[k], b->finish[k], "request %d sample %d: finish", r, k);
            cr_assert_eq(a->stop_token[k], b->stop_token[k], "request %d sample %d", r, k);
            for (int t = 0; t < a->n[k]; t++) {
                cr_assert_eq(a->tok[k][t], b->tok[k][t], "request %d sample %d token %d: %d "
                             "in turn, %d async", r, k, t, a->tok[k][t], b->tok[k][t]);
                /* Other batches, the same bits (batch_invariant). */
                cr_assert(!memcmp(&a->lp[k][t], &b->lp[k][t], sizeof(float)), "request %d "
                          "sample %d token %d logprob %.9g in turn, %.9g async", r, k, t,
                          a->lp[k][t], b->lp[k][t]);
            }
            stopped_early += a->finish[k] == PGD_FINISH_STOP && a->n[k] < rc[r].sp.max_tokens;
        }
    }
    cr_assert_gt(stopped_early, 5, "%d samples stopped before max_tokens", stopped_early);
    cr_assert_eq(st_sync.num_steps_overlapped, 0);
    /* Every step overlaps the one before except the first of each busy spell: penalised
     * samples no longer make the step in flight land first. */
    cr_assert_gt(st_async.num_steps_overlapped, st_async.num_steps / 2,
                 "%llu of %llu steps overlapped", (unsigned long long)st_async.num_steps_overlapped,
                 (unsigned long long)st_async.num_steps);
    cr_assert_gt(st_async.num_preemptions, 0);
    /* Aborts while steps are in flight. */
    for (int r = 0; r < ASYNC_N; r++)
        rc[r].abort = r % 8 == 7;
    async_run(true, false, rc, async_out, &st_async);
    for (int r = 0; r < ASYNC_N; r++)
        for (int k = 0; k < rc[r].sp.n; k++) {
            const struct async_out *a = &sync_out[r], *b = &async_out[r];
            if (rc[r].abort)
                cr_assert(b->finish[k] == PGD_FINISH_ABORT || b->finish[k] == a->finish[k]);
            else
                cr_assert_eq(b->n[k], a->n[k], "request %d sample %d", r, k);
            cr_assert_leq(b->n[k], a->n[k]);
            for (int t = 0; t < b->n[k]; t++)
                cr_assert_eq(a->tok[k][t], b->tok[k][t], "request %d sample %d token %d", r, k, t);
        }
    /* Where nothing ends a sample early nor is preempted, async computes not one token
     * more: a sample's last token gets no placeholder, so no step runs past it. */
    for (int r = 0; r < ASYNC_N; r++) {
        rc[r].abort = false;
        rc[r].stop_id = -1;
        rc[r].sp.ignore_eos = true;
    }
    async_run(false, true, rc, sync_out, &st_sync);
    async_run(true, true, rc, async_out, &st_async);
    cr_assert_eq(st_sync.num_preemptions, 0);
    cr_assert_gt(st_async.num_steps_overlapped, st_async.num_steps / 8, "%llu of %llu",
                 (unsigned long long)st_async.num_steps_overlapped,
                 (unsigned long long)st_async.num_steps);
    cr_assert_eq(st_async.tokens_computed, st_sync.tokens_computed, "%llu tokens computed "
                 "async, %llu in turn", (unsigned long long)st_async.tokens_computed,
                 (unsigned long long)st_sync.tokens_computed);
}

/* ---- text made on the reader's thread (engine_reader_text.c) ------------------------------ */
/* One request's outputs as read: every record's token, text and finish, in order. */
struct text_run {
    int n_rec;
    int index[512], token[512], finish[512];
    char *text[512];                 /* owned; [len[k]] bytes (a byte-level piece may be 0) */
    size_t len[512];
    char *stop_reason[512];          /* owned; NULL when none */
    int completion_tokens[512];
};

static void text_run_read(struct pgd_stream *s, struct text_run *t)
{
    struct pgd_output o;
    t->n_rec = 0;
    while (pgd_stream_next(s, &o, -1) == PGD_OK) {
        cr_assert_lt(t->n_rec, 512);
        const int k = t->n_rec++;
        t->index[k] = o.index;
        t->token[k] = o.n_token_ids ? o.token_ids[0] : -1;
        t->finish[k] = (int)o.finish_reason;
        cr_assert_eq(o.text[o.text_len], '\0', "text is terminated");
        t->text[k] = malloc(o.text_len + 1);
        memcpy(t->text[k], o.text, o.text_len + 1);
        t->len[k] = o.text_len;
        t->stop_reason[k] = o.stop_reason ? strdup(o.stop_reason) : NULL;
        t->completion_tokens[k] = o.completion_tokens;
    }
}

static void text_run_free(struct text_run *t)
{
    for (int k = 0; k < t->n_rec; k++) {
        free(t->text[k]);
        free(t->stop_reason[k]);
    }
}

/* Request i of the set below: seeded sampling over the llama fixture (vocabulary 256) with
 * the SmolLM2 tokenizer, whose first 256 ids hold special tokens and byte-level pieces of
 * UTF-8 sequences (so texts end mid-sequence, flushed at the length limit), lengths 1..40,
 * n = 1 or 3, EOS (id 2, "<|im_start|>"... whatever the tokenizer names it) as a stop or
 * ignored, stop token ids with and without include_stop_str_in_output, special tokens kept
 * or skipped; one in three has stop strings (single bytes that end samples often, pairs
 * whose first byte is held back until the next shows it was not one), some with
 * include_stop_str_in_output and some with min_tokens. */
static struct pgd_stream *text_submit(struct pgd_engine *e, int i)
{
    static const char *stops[4][3] = { { "a" }, { "e", "xy" }, { "t", "q", "th" },
                                       { "\x82\x80", "ab", "o" } };
    int32_t prompt[12];
    for (int j = 0; j < 12; j++)
        prompt[j] = 3 + (i * 37 + j * 11) % 250;
    static int32_t stop_ids[2] = { 97, 200 };
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = prompt;
    r.n_prompt_ids = 4 + i % 9;
    r.sampling.temperature = 1.0f;
    r.sampling.has_seed = true;
    r.sampling.seed = 1000 + (uint64_t)i;
    r.sampling.max_tokens = 1 + (i * 7) % 40;
    r.sampling.n = i % 5 == 0 ? 3 : 1;
    r.sampling.ignore_eos = i % 3 == 0;
    r.sampling.skip_special_tokens = i % 4 != 1;
    if (i % 6 == 2) {
        r.sampling.stop_token_ids = stop_ids;
        r.sampling.n_stop_token_ids = 2;
        r.sampling.include_stop_str_in_output = i % 12 == 2;
    }
    if (i % 3 == 1) {
        const int k = i / 3 % 4;
        r.sampling.stop = stops[k];
        r.sampling.n_stop = k == 0 ? 1 : k == 1 ? 2 : 3;
        r.sampling.include_stop_str_in_output = i % 4 == 0;
        r.sampling.min_tokens = i % 5 == 1 ? 3 : 0;
    }
    struct pgd_stream *s;
    char err[256];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "request %d: %s", i, err);
    return s;
}

static struct pgd_engine *text_engine(bool reader_text)
{
    if (!reader_text)
        setenv("PAGODA_READER_TEXT", "0", 1);
    struct pgd_engine_params p = pgd_engine_default_params();
    p.num_blocks = 128;
    p.block_size = 16;
    p.max_num_seqs = 16;
    /* The reference runs the requests one at a time, the other run batches them: without
     * batch invariance sgemm's row blocking changes a row's logits in the last bit with its
     * neighbours, and seeded sampling at temperature 1 now and then draws the next token
     * over (request 27's output 28, in about half the loaded runs with async scheduling). */
    p.batch_invariant = true;
    p.tokenizer = PGD_TEST_SRCDIR "/tests/fixtures/tokenizer/smollm2";
    struct pgd_engine *e = model_engine_params("llama-f32", &p);
    unsetenv("PAGODA_READER_TEXT");
    return e;
}

/* The step hook's done: 2 ms after each step, so that the engine cannot run a sample to
 * its length before its reader has had ample time to see a stop string and say so. */
static void slow_step(void *arg, const struct pgd__runner_step_info *si, double wall_s,
                      double device_s, bool graph)
{
    (void)arg; (void)si; (void)wall_s; (void)device_s; (void)graph;
    usleep(2000);
}

/* One sample, seeded, 200 tokens with EOS ignored, optionally with one stop string. */
static struct pgd_stream *stop_submit_ids(struct pgd_engine *e, const char *stop,
                                          int min_tokens, int32_t *stop_ids, int n_stop_ids);

static struct pgd_stream *stop_submit(struct pgd_engine *e, const char *stop, int min_tokens)
{
    return stop_submit_ids(e, stop, min_tokens, NULL, 0);
}

static struct pgd_stream *stop_submit_ids(struct pgd_engine *e, const char *stop,
                                          int min_tokens, int32_t *stop_ids, int n_stop_ids)
{
    int32_t prompt[8] = { 11, 40, 73, 101, 7, 56, 90, 33 };
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = prompt;
    r.n_prompt_ids = 8;
    r.sampling.temperature = 1.0f;
    r.sampling.has_seed = true;
    r.sampling.seed = 77;
    r.sampling.max_tokens = 200;
    r.sampling.ignore_eos = true;
    r.sampling.min_tokens = min_tokens;
    r.sampling.stop_token_ids = stop_ids;
    r.sampling.n_stop_token_ids = n_stop_ids;
    const char *stops[1] = { stop };
    if (stop) {
        r.sampling.stop = stops;
        r.sampling.n_stop = 1;
    }
    struct pgd_stream *s;
    char err[256];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    return s;
}

/* A stop string found on the reader's side ends the sample in the engine too: the engine
 * generates a few tokens past it (those in flight when the reader said so), not the 200
 * of its length, and counts it as a stop. The stop string is a piece of the sample's own
 * text, found in a run without it (the same seed makes the same tokens). */
Test(engine_text, a_stop_string_the_reader_finds_ends_the_sample_in_the_engine)
{
    struct pgd_engine *e = text_engine(true);
    struct pgd__runner_step_hook hook = { .done = slow_step };
    pgd__runner_set_step_hook(pgd__engine_runner_mut(e), &hook);
    struct text_run a;
    struct pgd_stream *s = stop_submit(e, NULL, 0);
    text_run_read(s, &a);
    pgd_stream_destroy(s);
    cr_assert_eq(a.n_rec, 200);
    /* the first output from the third on whose text is printable ASCII: the stop string */
    int k = 2;
    while (k < a.n_rec && !(a.len[k] > 0 && a.text[k][0] > ' ' && a.text[k][0] < 127))
        k++;
    cr_assert_lt(k, 100, "no printable piece in the first 100 outputs");
    char stop[8];
    snprintf(stop, sizeof stop, "%c", a.text[k][0]);
    struct pgd_engine_stats st0, st1;
    pgd_engine_get_stats(e, &st0);
    struct text_run b;
    s = stop_submit(e, stop, 0);
    text_run_read(s, &b);
    pgd_stream_destroy(s);
    pgd_engine_get_stats(e, &st1);
    /* what the client saw: the same tokens up to the stop, which ends the text */
    const int last = b.n_rec - 1;
    cr_assert_leq(last, k, "the stop string was in output %d, the sample ended at %d", k, last);
    cr_assert_eq(b.finish[last], PGD_FINISH_STOP);
    cr_assert(b.stop_reason[last] && !strcmp(b.stop_reason[last], stop));
    cr_assert_eq(b.completion_tokens[last], last + 1);
    for (int i = 0; i <= last; i++)
        cr_assert_eq(b.token[i], a.token[i], "output %d", i);
    /* what the engine did: stopped soon after, and counted a stop */
    const uint64_t generated = st1.generation_tokens - st0.generation_tokens;
    cr_assert(generated >= (uint64_t)last + 1 && generated < 100, "the engine generated %llu "
              "tokens for a sample its reader stopped at %d", (unsigned long long)generated,
              last + 1);
    cr_assert_eq(st1.requests_finished[PGD_FINISH_STOP] - st0.requests_finished[PGD_FINISH_STOP],
                 1);
    cr_assert_eq(st1.requests_finished[PGD_FINISH_LENGTH],
                 st0.requests_finished[PGD_FINISH_LENGTH]);
    /* with min_tokens past that output, the stop string there does not count: the sample
     * runs on to min_tokens at least */
    struct text_run c;
    s = stop_submit(e, stop, last + 3);
    text_run_read(s, &c);
    pgd_stream_destroy(s);
    cr_assert_geq(c.completion_tokens[c.n_rec - 1], last + 3, "min_tokens %d, ended at %d",
                  last + 3, c.completion_tokens[c.n_rec - 1]);
    /* Text held back for a stop string that never completes is released at the end, a stop
     * token's too: the stop string is the printable byte ending output j - 1 followed by a
     * byte no text has, and output j's token, new in the sample there, is a stop token (left
     * out of the text). The outputs' text is then the run's first j outputs' exactly. */
    int j = 2;
    for (; j < a.n_rec; j++) {
        bool seen = false;
        for (int i = 0; i < j; i++)
            seen = seen || a.token[i] == a.token[j];
        const size_t l = a.len[j - 1];
        if (!seen && l > 0 && a.text[j - 1][l - 1] > ' ' && a.text[j - 1][l - 1] < 127)
            break;
    }
    cr_assert_lt(j, a.n_rec, "no output ends in a printable byte before a new token");
    char held[3] = { a.text[j - 1][a.len[j - 1] - 1], 0x01, 0 };
    int32_t stop_id = a.token[j];
    struct text_run h;
    s = stop_submit_ids(e, held, 0, &stop_id, 1);
    text_run_read(s, &h);
    pgd_stream_destroy(s);
    cr_assert_eq(h.n_rec, j + 1, "ended at output %d, the stop token is output %d", h.n_rec - 1,
                 j);
    cr_assert_eq(h.finish[j], PGD_FINISH_STOP);
    size_t want = 0, got = 0;
    for (int i = 0; i < j; i++)
        want += a.len[i];
    char *wt = malloc(want + 1), *gt = malloc(want + 64);
    for (int i = 0, at = 0; i < j; i++, at += (int)a.len[i - 1])
        memcpy(wt + at, a.text[i], a.len[i]);
    for (int i = 0; i <= j; i++) {
        cr_assert_leq(got + h.len[i], want + 63);
        memcpy(gt + got, h.text[i], h.len[i]);
        got += h.len[i];
    }
    cr_assert(got == want && !memcmp(gt, wt, want), "the text is %zu bytes, the run's first %d "
              "outputs %zu: the held-back '%c' was %s", got, j, want, held[0],
              got < want ? "lost" : "changed");
    free(wt);
    free(gt);
    text_run_free(&h);
    pgd__runner_set_step_hook(pgd__engine_runner_mut(e), NULL);
    pgd_engine_destroy(e);
    text_run_free(&a);
    text_run_free(&b);
    text_run_free(&c);
}

/* The text the readers make equals the engine thread's, output for output, over the
 * requests above read concurrently; and a stream read after its engine was destroyed
 * still has its text (the tokenizer outlives the engine while a stream needs it: ASan
 * catches the opposite). */
Test(engine_text, the_readers_text_is_the_engines)
{
    enum { N = 48 };
    struct text_run *ref = calloc(N, sizeof *ref), *got = calloc(N, sizeof *got);
    struct pgd_engine *e = text_engine(false);
    for (int i = 0; i < N; i++) {
        struct pgd_stream *s = text_submit(e, i);
        text_run_read(s, &ref[i]);
        pgd_stream_destroy(s);
    }
    struct pgd_engine_stats ref_st, got_st;
    pgd_engine_get_stats(e, &ref_st);
    pgd_engine_destroy(e);
    e = text_engine(true);
    struct pgd_stream *s[N];
    for (int i = 0; i < N; i++)
        s[i] = text_submit(e, i);
    for (int i = 0; i < N; i++) {
        text_run_read(s[i], &got[i]);
        pgd_stream_destroy(s[i]);
    }
    /* The engine ended the samples its readers stopped as stops (told by the streams), not
     * at their length nor as aborts. The streams above were read to their end (CLOSED)
     * before being let go: every sample's end was counted by then. */
    pgd_engine_get_stats(e, &got_st);
    for (int f = PGD_FINISH_STOP; f <= PGD_FINISH_ABORT; f++)
        cr_assert_eq(got_st.requests_finished[f], ref_st.requests_finished[f],
                     "%s: %llu finished, the engine's text %llu", pgd_finish_reason_str(f),
                     (unsigned long long)got_st.requests_finished[f],
                     (unsigned long long)ref_st.requests_finished[f]);
    /* Sample by sample (samples of one request may interleave differently in another
     * batch): the same records in the same order. */
    size_t bytes = 0, flushed_mid_utf8 = 0, stopped_by_string = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(got[i].n_rec, ref[i].n_rec, "request %d: %d outputs, the engine's text %d",
                     i, got[i].n_rec, ref[i].n_rec);
        for (int x = 0; x < 3; x++)
            for (int k = 0, g = 0; k < ref[i].n_rec; k++) {
                if (ref[i].index[k] != x)
                    continue;
                while (g < got[i].n_rec && got[i].index[g] != x)
                    g++;
                cr_assert_lt(g, got[i].n_rec, "request %d sample %d: fewer outputs", i, x);
                cr_assert_eq(got[i].token[g], ref[i].token[k], "request %d sample %d output %d",
                             i, x, k);
                cr_assert_eq(got[i].finish[g], ref[i].finish[k], "request %d sample %d", i, x);
                cr_assert_eq(got[i].completion_tokens[g], ref[i].completion_tokens[k],
                             "request %d sample %d output %d: usage", i, x, k);
                cr_assert(!got[i].stop_reason[g] == !ref[i].stop_reason[k] &&
                          (!ref[i].stop_reason[k] ||
                           !strcmp(got[i].stop_reason[g], ref[i].stop_reason[k])),
                          "request %d sample %d output %d: stop reason %s, the engine's %s", i,
                          x, k, got[i].stop_reason[g] ? got[i].stop_reason[g] : "(none)",
                          ref[i].stop_reason[k] ? ref[i].stop_reason[k] : "(none)");
                stopped_by_string += ref[i].stop_reason[k] != NULL;
                cr_assert(got[i].len[g] == ref[i].len[k] &&
                          !memcmp(got[i].text[g], ref[i].text[k], ref[i].len[k]),
                          "request %d sample %d output %d (token %d): \"%s\", the engine's "
                          "\"%s\"", i, x, k, ref[i].token[k], got[i].text[g], ref[i].text[k]);
                bytes += ref[i].len[k];
                /* a length end whose text ends in U+FFFD: the flush of an unfinished UTF-8
                 * sequence (the detokenizer's replacement for the bytes it held) */
                const size_t len = ref[i].len[k];
                flushed_mid_utf8 += ref[i].finish[k] == PGD_FINISH_LENGTH && len >= 3 &&
                                    !memcmp(ref[i].text[k] + len - 3, "\xEF\xBF\xBD", 3);
                g++;
            }
    }
    cr_assert_gt(bytes, 1000, "the requests made %zu bytes of text", bytes);
    cr_assert_gt(flushed_mid_utf8, 0, "no sample ended by length inside a UTF-8 sequence: the "
                 "flush at the end went untested");
    cr_assert_geq(stopped_by_string, 8, "only %zu samples ended at a stop string",
                  stopped_by_string);
    /* Destroyed before its stream is read: the outputs queued before stay readable. */
    struct pgd_stream *late = text_submit(e, 4);
    struct pgd_engine_stats st;
    uint64_t before;
    pgd_engine_get_stats(e, &st);
    before = st.requests_finished[PGD_FINISH_LENGTH] + st.requests_finished[PGD_FINISH_STOP];
    for (int tries = 0; tries < 2000; tries++) {
        pgd_engine_get_stats(e, &st);
        if (st.requests_finished[PGD_FINISH_LENGTH] + st.requests_finished[PGD_FINISH_STOP] >
            before)
            break;
        usleep(1000);
    }
    pgd_engine_destroy(e);
    struct text_run late_run;
    text_run_read(late, &late_run);
    pgd_stream_destroy(late);
    cr_assert_eq(late_run.n_rec, ref[4].n_rec);
    for (int k = 0; k < ref[4].n_rec; k++)
        cr_assert(late_run.len[k] == ref[4].len[k] &&
                  !memcmp(late_run.text[k], ref[4].text[k], ref[4].len[k]),
                  "after destroy, output %d", k);
    text_run_free(&late_run);
    for (int i = 0; i < N; i++) {
        text_run_free(&ref[i]);
        text_run_free(&got[i]);
    }
    free(ref);
    free(got);
}
