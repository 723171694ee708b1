/* The engine under many submitting threads, and structured output's masks on the engine's
 * mask helpers, as a plain program (no Criterion: it cannot run under ThreadSanitizer,
 * Snaipe/Criterion#274). It runs in every `make check`; a build
 * configured with --enable-tsan runs only this test. Exit status 0 = pass. */
#include "tests/lib/engine_fixture.h"
#include "runtime/base/workers.h"
#include "runtime/grammar/guide.h"
#include <pagoda/tokenizer.h>
#include <stdatomic.h>

enum { THREADS = 8, REQUESTS = 25 };

static void tweak_fcfs(struct pgd_engine_params *p)
{
    fixture_tweak_stress(p);
    p->policy = PGD_SCHED_FCFS;
}

/* The same with async scheduling: each step planned and submitted while the stand-in model's
 * worker thread runs the one before, with aborts and stop strings landing on samples whose
 * next step flies. */
static void tweak_async(struct pgd_engine_params *p)
{
    fixture_tweak_stress(p);
    p->async_scheduling = true;
}

/* text: with the fixture's text path, so the workers' threads make their requests' text
 * (engine_reader_text.c) while the engine runs, find stop strings and tell the engine to
 * end those samples, and the streams left at the end make theirs after the engine is
 * gone. */
static int run(void (*tweak)(struct pgd_engine_params *), bool text, const char *name)
{
    char err[256];
    /* Async runs get the backend's async pair: a worker thread runs each step. */
    struct pgd_engine *e = fixture_engine(
        &(struct fixture_engine_opts){ .num_blocks = 20, .block_size = 4, .text = text,
                                       .tweak = tweak, .async_pair = strstr(name, "async") != NULL },
        err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .e = e, .id = i, .n_requests = REQUESTS, .stop_strings = text };
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    /* Meanwhile, another thread reads the metrics. */
    for (int k = 0; k < 20; k++) {
        char *text;
        struct pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        if (pgd_engine_metrics_text(e, &text, NULL) == PGD_OK)
            free(text);
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    int fails = 0, stopped = 0;
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        if (ret || w[i].done != REQUESTS) {
            fprintf(stderr, "%s: worker %d: %s (%d of %d done)\n", name, i,
                    ret ? (const char *)ret : "incomplete", w[i].done, REQUESTS);
            fails++;
        }
        stopped += w[i].stopped;
    }
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    if (strstr(name, "async") && st.num_steps_overlapped == 0) {
        fprintf(stderr, "%s: no step was submitted while another was in flight\n", name);
        fails++;
    }
    if (text && stopped == 0) {
        fprintf(stderr, "%s: no sample ended at a stop string\n", name);
        fails++;
    }
    /* Requests still in flight when the engine goes. */
    struct pgd_stream *left[4];
    int32_t prompt[3] = { 2, 3, 4 };
    struct pgd_request_params rp = pgd_request_default_params();
    rp.prompt_ids = prompt;
    rp.n_prompt_ids = 3;
    rp.sampling.max_tokens = 50;
    rp.sampling.n = 2;
    for (int i = 0; i < 4; i++)
        if (pgd_engine_submit(e, &rp, &left[i], err, sizeof err) != PGD_OK) {
            fprintf(stderr, "%s: submit: %s\n", name, err);
            return 1;
        }
    pgd_engine_destroy(e);
    for (int i = 0; i < 4; i++) {
        struct pgd_output o;
        int finals = 0;
        while (pgd_stream_next(left[i], &o, 10000) == PGD_OK)
            finals += o.finish_reason != PGD_FINISH_NONE;
        if (finals != 2) {
            fprintf(stderr, "%s: stream %d: %d finished samples of 2\n", name, i, finals);
            fails++;
        }
        pgd_stream_destroy(left[i]);
    }
    return fails;
}

/* ---- structured output's masks on helper threads ------------------------------------------ */

/* Sixteen matchers of one JSON Schema guide, each a different way into the same document,
 * their masks made at once by the engine's mask helpers (runtime/base/workers.h) while the
 * guide's mask cache fills (gram_guide.c walks outside its lock), against the same masks
 * made one after another on a second cache: equal, and nothing races. */
enum { MASK_N = 16 };

struct mask_fill {
    struct pgd__guide *g;
    const struct pgd__vocab *v;
    struct pgd__gmatch *m;           /* [MASK_N] */
    uint32_t *masks;                 /* [MASK_N * words] */
    size_t words;
    int32_t eos;
    _Atomic bool failed;             /* some mask could not be made */
};

static void mask_fill_item(void *arg, int i)
{
    struct mask_fill *f = arg;
    char err[256];
    if (pgd__guide_mask(f->g, f->v, &f->m[i], &f->eos, 1, f->masks + (size_t)i * f->words, err,
                        sizeof err) != PGD_OK)
        atomic_store(&f->failed, true);
}

/* Fills f's masks (on pool w, or in turn without one) from a fresh guide of gs. */
static int fill_masks(struct pgd__guides *gs, struct pgd__workers *w, struct mask_fill *f,
                      const char *schema, const char *doc, const char *name)
{
    char err[512];
    if (pgd__guides_get(gs, PGD_GUIDE_JSON_SCHEMA, schema, &f->g, &f->v, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    f->words = pgd__mask_words(f->v->n);
    for (int i = 0; i < MASK_N; i++) {
        if (!pgd__gmatch_init(&f->m[i], f->g->g) ||
            !pgd__gmatch_accept(&f->m[i], doc, (size_t)(i * 2))) {
            fprintf(stderr, "%s: matcher %d does not take the document's first %d bytes\n",
                    name, i, i * 2);
            return 1;
        }
    }
    if (w)
        pgd__workers_run(w, MASK_N, mask_fill_item, f);
    else
        for (int i = 0; i < MASK_N; i++)
            mask_fill_item(f, i);
    for (int i = 0; i < MASK_N; i++)
        pgd__gmatch_fini(&f->m[i]);
    pgd__guide_release(gs, f->g);
    if (atomic_load(&f->failed)) {
        fprintf(stderr, "%s: a mask could not be made\n", name);
        return 1;
    }
    return 0;
}

static int masks_on_helpers(const char *name)
{
    static const char *SCHEMA = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
                                "\"string\"},\"age\":{\"type\":\"integer\"},\"tags\":"
                                "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
                                "\"required\":[\"name\",\"age\",\"tags\"]}";
    static const char *DOC = "{\"name\":\"Ada Lovelace\",\"age\":36,\"tags\":[\"x\"]}";
    char err[512];
    struct pgd_tokenizer *tok;
    if (pgd_tokenizer_load(PGD_TEST_SRCDIR "/tests/fixtures/models/tiny-chat", &tok, err,
                           sizeof err)) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    struct pgd__guides par, seq;
    struct pgd__workers *w = NULL;
    struct pgd__gmatch m[MASK_N];
    int32_t n = pgd_tokenizer_vocab_size(tok);
    size_t words = pgd__mask_words(n);
    uint32_t *a = calloc((size_t)MASK_N * words, sizeof *a);
    uint32_t *b = calloc((size_t)MASK_N * words, sizeof *b);
    struct mask_fill fa = { .m = m, .masks = a, .eos = 0 }, fb = { .m = m, .masks = b, .eos = 0 };
    int fails = 0;
    if (!a || !b || pgd__guides_init(&par, tok, n, err, sizeof err) ||
        pgd__guides_init(&seq, tok, n, err, sizeof err) ||
        pgd__workers_create(4, &w, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    fails += fill_masks(&par, w, &fa, SCHEMA, DOC, name);
    fails += fill_masks(&seq, NULL, &fb, SCHEMA, DOC, name);
    for (int i = 0; !fails && i < MASK_N; i++)
        if (memcmp(a + (size_t)i * words, b + (size_t)i * words, words * sizeof *a)) {
            fprintf(stderr, "%s: matcher %d's mask differs made on the helpers\n", name, i);
            fails++;
        }
    pgd__workers_destroy(w);
    pgd__guides_fini(&par);
    pgd__guides_fini(&seq);
    pgd_tokenizer_destroy(tok);
    free(a);
    free(b);
    return fails;
}

int main(void)
{
    int f1 = run(fixture_tweak_stress, false, "priority"), f2 = run(tweak_fcfs, false, "fcfs");
    int f3 = run(fixture_tweak_stress, true, "priority, text");
    int f4 = run(tweak_async, true, "priority, text, async scheduling");
    int f5 = masks_on_helpers("structured output's masks on helper threads");
    int failing = (f1 != 0) + (f2 != 0) + (f3 != 0) + (f4 != 0) + (f5 != 0);
    /* The summary line Criterion prints, which the CI report collects. */
    printf("[====] Synthesis: Tested: 5 | Passing: %d | Failing: %d | Crashing: 0 \n",
           5 - failing, failing);
    return failing ? 1 : 0;
}
