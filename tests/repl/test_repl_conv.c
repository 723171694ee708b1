/* The repl frontend's conversation pieces (plugins/frontend/repl/conv.c): the <think>
 * splitter (tags cut anywhere between streamed pieces), the /set values and their ranges,
 * the system message, and /save then /load (and the files /load refuses). */
#include "tests/lib/test_common.h"
#include "plugins/frontend/repl/repl.h"
#include <string.h>
#include <unistd.h>

PGD_TEST_SUITE(repl_conv);

struct split {
    char answer[256], think[256];
    int switches;          /* parts whose kind differs from the previous one */
    int last;              /* -1 none, 0 answer, 1 think */
};

static void on_part(void *ctx, bool thinking, const char *text, size_t len)
{
    struct split *s = ctx;
    strncat(thinking ? s->think : s->answer, text, len);
    if (s->last != -1 && s->last != (int)thinking)
        s->switches++;
    s->last = thinking;
}

/* Feeds text cut into pieces of `step` bytes. */
static void feed(const char *text, size_t step, struct split *s)
{
    struct repl_think t = { 0 };
    *s = (struct split){ .last = -1 };
    for (size_t i = 0; i < strlen(text); i += step) {
        size_t n = strlen(text) - i < step ? strlen(text) - i : step;
        repl_think_feed(&t, text + i, n, on_part, s);
    }
    repl_think_flush(&t, on_part, s);
}

Test(repl_conv, think_sections_split_at_any_cut)
{
    const char *text = "<think>plan: a < b</think>The answer is <b>1</b>.";
    for (size_t step = 1; step <= strlen(text); step++) {
        struct split s;
        feed(text, step, &s);
        cr_assert_str_eq(s.think, "plan: a < b", "step %zu", step);
        cr_assert_str_eq(s.answer, "The answer is <b>1</b>.", "step %zu", step);
        cr_assert_eq(s.switches, 1, "step %zu", step);
    }
}

Test(repl_conv, unfinished_tag_is_text)
{
    struct split s;
    feed("a <thin", 3, &s);
    cr_assert_str_eq(s.answer, "a <thin");
    cr_assert_str_eq(s.think, "");
    feed("x<think>never closed", 2, &s);
    cr_assert_str_eq(s.answer, "x");
    cr_assert_str_eq(s.think, "never closed");
}

Test(repl_conv, set_values_and_ranges)
{
    struct repl_sampling sp = { 0 };
    char err[256];
    cr_assert_eq(repl_sampling_set(&sp, "temperature", "0.5", err, sizeof err), PGD_OK);
    cr_assert_eq(repl_sampling_set(&sp, "top_k", "-1", err, sizeof err), PGD_OK);
    cr_assert_eq(repl_sampling_set(&sp, "max_tokens", "64", err, sizeof err), PGD_OK);
    cr_assert_eq(repl_sampling_set(&sp, "seed", "18446744073709551615", err, sizeof err),
                 PGD_OK);
    cr_assert_eq(sp.has, REPL_HAS_TEMPERATURE | REPL_HAS_TOP_K | REPL_HAS_MAX_TOKENS |
                 REPL_HAS_SEED);
    cr_assert(sp.temperature == 0.5 && sp.top_k == -1 && sp.max_tokens == 64 &&
              sp.seed == UINT64_MAX);
    const char *bad[][2] = { { "temperature", "2.5" }, { "temperature", "nan" },
                             { "top_p", "0" }, { "top_p", "1.5" }, { "top_k", "-2" },
                             { "max_tokens", "0" }, { "max_tokens", "12x" }, { "seed", "-1" },
                             { "min_q", "1" } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(repl_sampling_set(&sp, bad[i][0], bad[i][1], err, sizeof err),
                     PGD_ERR_INVALID_ARG, "%s = %s", bad[i][0], bad[i][1]);
        cr_assert(strstr(err, bad[i][0]), "%s", err);
    }
    cr_assert_eq(sp.max_tokens, 64, "a refused value changes nothing");
}

Test(repl_conv, system_message_save_and_load)
{
    json_t *c = repl_conv_new("be brief");
    cr_assert_eq(repl_conv_add(c, "user", "hi\nthere", 8), PGD_OK);
    cr_assert_eq(repl_conv_set_system(c, "be kind"), PGD_OK);
    char path[] = "/tmp/repl_conv_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    char err[512];
    cr_assert_eq(repl_conv_save(c, path, err, sizeof err), PGD_OK, "%s", err);
    json_t *back = NULL;
    cr_assert_eq(repl_conv_load(path, &back, err, sizeof err), PGD_OK, "%s", err);
    cr_assert(json_equal(c, back));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(back, 0), "content")),
                     "be kind");
    cr_assert_eq(repl_conv_set_system(back, NULL), PGD_OK);
    cr_assert_eq(json_array_size(back), 1);
    json_decref(back);
    json_decref(c);

    FILE *f = fopen(path, "w");
    fputs("[{\"role\": \"user\"}]", f);
    fclose(f);
    cr_assert_eq(repl_conv_load(path, &back, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, path) && strstr(err, "message 0"), "%s", err);
    f = fopen(path, "w");
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", f);
    fclose(f);
    cr_assert_eq(repl_conv_load(path, &back, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(json_array_size(back), 1);
    json_decref(back);
    f = fopen(path, "w");
    fputs("[1, 2", f);
    fclose(f);
    cr_assert_eq(repl_conv_load(path, &back, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, path), "%s", err);
    unlink(path);
}

/* ---- one turn (turn.c) with a backend that streams a reasoning model's answer ----------
 * The fixture models never write <think>, so this backend plays one: it sends its pieces
 * with the tags cut across them, as a tokenizer would. */
struct thinking_backend {
    struct repl_backend base;
    const char *const *pieces;
    json_t *seen;                 /* the messages of the last request (a copy) */
};

static enum pgd_status tb_chat(struct repl_backend *b, json_t *messages,
                               const struct repl_sampling *sp, repl_text_fn on_text, void *ctx,
                               volatile sig_atomic_t *cancel, struct repl_result *res,
                               char *err, size_t errlen)
{
    (void)sp, (void)cancel, (void)err, (void)errlen;
    struct thinking_backend *t = (struct thinking_backend *)b;
    json_decref(t->seen);
    t->seen = json_deep_copy(messages);
    *res = (struct repl_result){ .completion_tokens = 0, .ttft_s = 0.001, .total_s = 0.002 };
    for (const char *const *p = t->pieces; *p; p++, res->completion_tokens++)
        on_text(ctx, *p, strlen(*p));
    return PGD_OK;
}

static const char *const THINKING[] = { "<thi", "nk>I should gree", "t.</th", "ink>Hel",
                                        "lo!", NULL };

static char *one_turn(struct thinking_backend *tb, json_t *conv, bool terminal)
{
    char *text = NULL, err[256];
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct repl_sampling sp = { 0 };
    struct repl_turn_opts o = { .out = out, .color = terminal, .show_think = terminal,
                                .sampling = &sp };
    struct repl_result res;
    cr_assert_eq(repl_turn(&tb->base, conv, "hi", &o, &res, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert_eq(res.completion_tokens, 5);
    fclose(out);
    return text;
}

Test(repl_conv, think_is_shown_dim_and_kept_out_of_the_conversation)
{
    struct thinking_backend tb = { .base = { .chat = tb_chat }, .pieces = THINKING };
    json_t *conv = repl_conv_new(NULL);
    char *piped = one_turn(&tb, conv, false);
    cr_assert_str_eq(piped, "Hello!\n", "piped: the answer alone");
    char *shown = one_turn(&tb, conv, true);
    cr_assert_str_eq(shown, "\033[2mI should greet.\033[0mHello!\n");
    json_t *want = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "role", "user", "content",
                             "hi", "role", "assistant", "content", "Hello!", "role", "user",
                             "content", "hi");
    cr_assert(json_equal(tb.seen, want), "the second request carries no <think>: %s",
              json_dumps(tb.seen, 0));
    cr_assert_eq(json_array_size(conv), 4);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(conv, 3), "content")),
                     "Hello!");
    json_decref(want);
    json_decref(tb.seen);
    json_decref(conv);
    free(piped);
    free(shown);
}
