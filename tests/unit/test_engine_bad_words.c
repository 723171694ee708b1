/* bad_words through pgd_engine_submit on the tiny-chat fixture (random weights, a real
 * byte-level BPE tokenizer), with vLLM's semantics: logit_bias pushes the output onto the
 * tokens of a word, so that without bad_words the word is written; with it, a word of one
 * token never appears and a word of two tokens never has its second token right after its
 * first (the first alone stays allowed). Both sampler paths are run: the runner's
 * (pgd__runner_step_sample, what a GPU uses) and the engine's host sampler. */
#include <criterion/criterion.h>
#include "runtime/engine/engine_backend.h"
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include <pagoda/tokenizer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(bad_words);

static struct pgd_engine *tiny(bool runner_sampling)
{
    struct pgd_engine *e = model_engine("tiny-chat", PGD_DEVICE_CPU, 256, 16, 256, 8);
    pgd__engine_set_device_sampling(e, runner_sampling);
    return e;
}

/* The tokens of text (no special tokens); n: how many. */
static int encode(struct pgd_engine *e, const char *text, int32_t *ids, int cap)
{
    struct pgd_tokens t;
    pgd_tokens_init(&t);
    char err[256];
    cr_assert_eq(pgd_tokenizer_encode(pgd_engine_tokenizer(e), text, strlen(text), false, &t,
                                      err, sizeof err), PGD_OK, "%s", err);
    int n = (int)t.n;
    for (int i = 0; i < n && i < cap; i++)
        ids[i] = t.ids[i];
    pgd_tokens_fini(&t);
    return n;
}

/* max_tokens tokens at temperature 1 (seeded), biased +100 towards the given tokens (so
 * the output is made of them), with the bad words; returns how many were generated. */
static int generate(struct pgd_engine *e, const int32_t *favour, int n_favour,
                    const char *const *bad, int n_bad, uint64_t seed, int32_t *out)
{
    struct pgd_logit_bias lb[8];
    for (int i = 0; i < n_favour; i++)
        lb[i] = (struct pgd_logit_bias){ favour[i], 100.0f };
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt = "Once upon a time";
    r.sampling.temperature = 1.0f;
    r.sampling.has_seed = true;
    r.sampling.seed = seed;
    r.sampling.max_tokens = 48;
    r.sampling.ignore_eos = true;
    r.sampling.logit_bias = lb;
    r.sampling.n_logit_bias = n_favour;
    r.sampling.bad_words = bad;
    r.sampling.n_bad_words = n_bad;
    struct pgd_stream *s;
    char err[512];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    int n = 0;
    struct pgd_output o;
    enum pgd_status st;
    while ((st = pgd_stream_next(s, &o, 60000)) == PGD_OK)
        for (int k = 0; k < o.n_token_ids && n < 64; k++)
            out[n++] = o.token_ids[k];
    cr_assert_eq(st, PGD_ERR_CLOSED);
    pgd_stream_destroy(s);
    return n;
}

/* How often a is followed by b in out[0..n). */
static int pairs(const int32_t *out, int n, int32_t a, int32_t b)
{
    int k = 0;
    for (int i = 0; i + 1 < n; i++)
        k += out[i] == a && out[i + 1] == b;
    return k;
}

static int count(const int32_t *out, int n, int32_t a)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += out[i] == a;
    return k;
}

/* A word of exactly two distinct tokens (without a leading space): the first such among
 * short letter strings (the fixture's vocabulary is small: most pairs of letters are two
 * tokens). */
static const char *two_token_word(struct pgd_engine *e, int32_t ab[2])
{
    static char word[4];
    int32_t ids[16];
    for (int i = 0; i < 26 * 26; i++) {
        word[0] = (char)('q' + i / 26 % 10);
        word[1] = (char)('a' + i % 26);
        word[2] = '\0';
        if (encode(e, word, ids, 16) == 2 && ids[0] != ids[1]) {
            ab[0] = ids[0];
            ab[1] = ids[1];
            return word;
        }
    }
    cr_assert_fail("no word of two distinct tokens in the fixture's vocabulary");
    return NULL;
}

static void multi_token_word(bool runner_sampling)
{
    struct pgd_engine *e = tiny(runner_sampling);
    int32_t ab[2], out[64];
    const char *w = two_token_word(e, ab);
    int with_pairs = 0, with_first = 0, free_pairs = 0;
    for (uint64_t seed = 0; seed < 4; seed++) {
        int n = generate(e, ab, 2, NULL, 0, seed, out);
        cr_assert_eq(n, 48);
        free_pairs += pairs(out, n, ab[0], ab[1]);
        n = generate(e, ab, 2, &w, 1, seed, out);
        cr_assert_eq(n, 48);
        cr_assert_eq(count(out, n, ab[0]) + count(out, n, ab[1]), n,
                     "the bias no longer holds the output to the word's tokens");
        with_pairs += pairs(out, n, ab[0], ab[1]);
        with_first += count(out, n, ab[0]);
    }
    cr_assert_gt(free_pairs, 0, "without bad_words \"%s\" (%d %d) is never written: the test "
                 "proves nothing", w, ab[0], ab[1]);
    cr_assert_eq(with_pairs, 0, "\"%s\" was written %d times despite bad_words", w, with_pairs);
    cr_assert_gt(with_first, 0, "its first token alone was banned too");
    pgd_engine_destroy(e);
}

Test(bad_words, a_two_token_word_is_never_completed_runner_sampler, .timeout = 120)
{
    multi_token_word(true);
}

Test(bad_words, a_two_token_word_is_never_completed_host_sampler, .timeout = 120)
{
    multi_token_word(false);
}

Test(bad_words, a_one_token_word_never_appears_with_or_without_its_space, .timeout = 120)
{
    struct pgd_engine *e = tiny(true);
    static const char *const words[] = { "the", "a", "and", "to", "of", "in", "he", "it" };
    const char *w = NULL;
    int32_t t[2], ids[8];
    for (size_t i = 0; !w && i < sizeof words / sizeof *words; i++) {
        char spaced[16];
        snprintf(spaced, sizeof spaced, " %s", words[i]);
        if (encode(e, words[i], ids, 8) == 1 && (t[0] = ids[0], encode(e, spaced, ids, 8) == 1) &&
            ids[0] != t[0]) {
            t[1] = ids[0];
            w = words[i];
        }
    }
    cr_assert(w, "no one-token word in the fixture's vocabulary");
    int32_t out[64];
    int n = generate(e, t, 2, NULL, 0, 7, out);
    cr_assert_gt(count(out, n, t[0]) + count(out, n, t[1]), 0, "the bias does not work");
    /* the word after two spaces (leading spaces are cut, as vLLM does) bans both tokens */
    char padded[16];
    snprintf(padded, sizeof padded, "  %s", w);
    const char *bad[] = { padded };
    n = generate(e, t, 2, bad, 1, 7, out);
    cr_assert_eq(n, 48);
    cr_assert_eq(count(out, n, t[0]) + count(out, n, t[1]), 0, "\"%s\" was written", w);
    pgd_engine_destroy(e);
}

Test(bad_words, invalid_bad_words_are_refused_at_submit)
{
    struct pgd_engine *e = tiny(true);
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt = "hi";
    const char *blank[] = { "ok", "   " };
    r.sampling.bad_words = blank;
    r.sampling.n_bad_words = 2;
    struct pgd_stream *s;
    char err[512] = "";
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "bad_words[1] is empty or only whitespace"), "%s", err);
    r.sampling.n_bad_words = 129;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "at most 128"), "%s", err);
    pgd_engine_destroy(e);

    /* llama-f32 has no tokenizer.json */
    e = model_engine("llama-f32", PGD_DEVICE_CPU, 64, 16, 64, 4);
    int32_t ids[] = { 1, 2, 3 };
    r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = 3;
    r.detokenize = false;
    const char *w[] = { "x" };
    r.sampling.bad_words = w;
    r.sampling.n_bad_words = 1;
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "bad_words need a tokenizer"), "%s", err);
    pgd_engine_destroy(e);
}
