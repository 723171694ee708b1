/* pagoda bench grammar: what structured output costs the engine thread per step. For each
 * guide (built in: json_object, a JSON Schema, a regex; or --kind/--guide) a generation is
 * simulated over a tokenizer's vocabulary: at every step the mask of the matcher's state is
 * computed (walking the vocabulary trie: "walk"; and through the guide's mask cache, as the
 * engine does: "engine"), a random allowed token is taken (seeded) and the matcher advances.
 * Prints the compile time and, per step, the mean, p50, p99 and max of both in microseconds
 * of the thread's CPU time, and how many distinct states the generation met.
 *
 * --batch N runs N generations at once, each under a guide of its own (the same text made
 * distinct, as requests with schemas of their own: every generation meets its states for
 * the first time), and gives the wall time a step's N masks take on the engine thread
 * alone and shared with --threads helpers (runtime/base/workers.h), as the engine makes a
 * step's masks (engine_mask.c). */
#include "config.h"
#include "tools/commands.h"
#include "tools/bench/bench_common.h"
#include "tools/bench/serve/report.h"
#include "runtime/base/buf.h"
#include "runtime/base/clock.h"
#include "runtime/base/workers.h"
#include "runtime/grammar/guide.h"
#include <pagoda/tokenizer.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The thread's CPU time: on a shared machine wall time measures the neighbours. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

struct bench_guide {
    enum pgd_guide_kind kind;
    const char *name, *text;
};

static const struct bench_guide BUILTIN[] = {
    { PGD_GUIDE_JSON_OBJECT, "json_object", NULL },
    { PGD_GUIDE_JSON_SCHEMA, "json_schema",
      "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
      "\"integer\",\"minimum\":0,\"maximum\":150},\"email\":{\"type\":\"string\",\"format\":"
      "\"email\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"address\":{"
      "\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"zip\":{\"type\":"
      "\"string\",\"pattern\":\"[0-9]{5}\"}},\"required\":[\"city\"]}},\"required\":[\"name\","
      "\"age\"]}" },
    { PGD_GUIDE_REGEX, "regex", "([A-Z][a-z]+ ){1,6}[0-9]{1,4}(, [a-z]+)*\\." },
};

/* A random set bit of mask (words of n tokens), or -1. */
static int32_t pick(const uint32_t *mask, int32_t n, uint64_t *rng)
{
    int32_t count = 0;
    for (size_t w = 0; w < pgd__mask_words(n); w++)
        count += __builtin_popcount(mask[w]);
    if (count == 0)
        return -1;
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    int32_t k = (int32_t)((*rng >> 33) % (uint64_t)count);
    for (int32_t t = 0; t < n; t++)
        if (((mask[t >> 5] >> (t & 31)) & 1) && k-- == 0)
            return t;
    return -1;
}

static void report(const char *what, double *us, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += us[i];
    bs_sort(us, n);
    printf("    %-7s mean %8.1f us   p50 %8.1f   p99 %8.1f   max %8.1f\n", what, sum / n,
           us[n / 2], us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], us[n - 1]);
}

static int run_guide(struct pgd__guides *gs, const struct bench_guide *bg, int steps,
                     uint64_t seed, int32_t eos)
{
    char err[1024];
    struct pgd__guide *g;
    const struct pgd__vocab *v;
    double t0 = now_us();
    if (pgd__guides_get(gs, bg->kind, bg->text, &g, &v, err, sizeof err)) {
        fprintf(stderr, "pagoda bench grammar: %s\n", err);
        return 1;
    }
    double compile = now_us() - t0;
    size_t words = pgd__mask_words(v->n);
    uint32_t *mask = malloc(words * sizeof *mask);
    double *walk = malloc((size_t)steps * sizeof *walk), *eng = malloc((size_t)steps * sizeof *eng);
    struct pgd__gmatch m;
    if (!mask || !walk || !eng || !pgd__gmatch_init(&m, g->g)) {
        fprintf(stderr, "pagoda bench grammar: out of memory\n");
        return 1;
    }
    uint64_t rng = seed;
    int done = 0, restarts = 0, rc = 0;
    size_t hits0 = g->n_masks;
    for (int s = 0; s < steps; s++) {
        double a = now_us();
        enum pgd_status st = pgd__gmask_fill(&m, v, &eos, 1, PGD__GMASK_BUDGET, mask, err,
                                             sizeof err);
        double b = now_us();
        if (!st)
            st = pgd__guide_mask(g, v, &m, &eos, 1, mask, err, sizeof err);
        double c = now_us();
        if (st) {
            fprintf(stderr, "pagoda bench grammar: %s: step %d: %s\n", bg->name, s, err);
            rc = 1;
            break;
        }
        walk[s] = b - a;
        eng[s] = c - b;
        int32_t t = pick(mask, v->n, &rng);
        size_t len = 0;
        const uint8_t *bytes = t >= 0 && t != eos ? pgd__vocab_token(v, t, &len) : NULL;
        if (!bytes || !pgd__gmatch_accept(&m, bytes, len) || pgd__gmatch_terminated(&m)) {
            /* the generation ended (EOS or a complete grammar): start another */
            pgd__gmatch_fini(&m);
            if (!pgd__gmatch_init(&m, g->g)) {
                fprintf(stderr, "pagoda bench grammar: out of memory\n");
                rc = 1;
                break;
            }
            restarts++;
        }
        done++;
    }
    if (rc == 0) {
        printf("  %s: compiled in %.0f us; %d steps (%d generations), %zu distinct states\n",
               bg->name, compile, done, restarts + 1, g->n_masks - hits0);
        report("walk", walk, steps);
        report("engine", eng, steps);
    }
    pgd__gmatch_fini(&m);
    free(mask);
    free(walk);
    free(eng);
    pgd__guide_release(gs, g);
    return rc;
}

/* --batch: N generations of their own guides, stepping together. */
struct batch_gen {
    struct pgd__guide *g;
    struct pgd__gmatch m;
    uint64_t rng;
};

struct batch_step {
    struct batch_gen *gen;
    const struct pgd__vocab *v;
    uint32_t *masks;                 /* [N * words] */
    size_t words;
    int32_t eos;
    int *walk;                       /* [N] the generations whose state is not cached */
    atomic_bool failed;              /* some mask failed; err holds the first one's message */
    char err[512];
};

static void batch_mask(void *arg, int k)
{
    struct batch_step *b = arg;
    int i = b->walk[k];
    char err[512];
    if (pgd__guide_mask(b->gen[i].g, b->v, &b->gen[i].m, &b->eos, 1,
                        b->masks + (size_t)i * b->words, err, sizeof err) != PGD_OK) {
        if (!atomic_exchange(&b->failed, true))
            snprintf(b->err, sizeof b->err, "%s", err);
    }
}

/* A step's masks as the engine makes them (engine_mask.c): the cached ones on this thread,
 * the walks shared with w's helpers when there are two or more. */
static void batch_masks(struct pgd__workers *w, struct batch_step *b, int n_gen)
{
    int n_walk = 0;
    for (int i = 0; i < n_gen; i++)
        if (!pgd__guide_mask_lookup(b->gen[i].g, &b->gen[i].m, b->masks + (size_t)i * b->words))
            b->walk[n_walk++] = i;
    pgd__workers_run(n_walk >= 2 ? w : NULL, n_walk, batch_mask, b);
}

/* Guide i of a batch: bg's text made distinct with the same language (i more leading
 * spaces; a regex: i empty groups after it), so that each has a mask cache of its own.
 * NULL: out of memory. */
static char *distinct_text(const struct bench_guide *bg, int i)
{
    struct pgd__buf b = { 0 };
    const char *text = bg->text ? bg->text : "{}";
    bool regex = bg->kind == PGD_GUIDE_REGEX;
    for (int k = 0; !regex && k < i; k++)
        pgd__buf_puts(&b, " ");
    pgd__buf_puts(&b, text);
    for (int k = 0; regex && k < i; k++)
        pgd__buf_puts(&b, "()");
    return pgd__buf_steal(&b, NULL);
}

/* One batch run with `threads` helpers (0: the calling thread alone) on a fresh guide
 * cache over tok: the mean wall ms a step's masks take; -1 on a failure. */
static double run_batch_once(const struct pgd_tokenizer *tok, const struct bench_guide *bg,
                             int n_gen, int steps, uint64_t seed, int threads)
{
    char err[1024] = "";
    int32_t n = pgd_tokenizer_vocab_size(tok), eos = pgd_tokenizer_eos_id(tok);
    struct pgd__guides gs;
    struct pgd__workers *w = NULL;
    struct batch_gen *gen = calloc((size_t)n_gen, sizeof *gen);
    if (!gen || pgd__guides_init(&gs, tok, n, err, sizeof err) ||
        (threads > 0 && pgd__workers_create(threads, &w, err, sizeof err))) {
        fprintf(stderr, "pagoda bench grammar: %s\n", gen ? err : "out of memory");
        free(gen);
        return -1;
    }
    struct batch_step b = { .gen = gen, .eos = eos < 0 ? n - 1 : eos };
    double total = 0;
    bool ok = true;
    for (int i = 0; ok && i < n_gen; i++) {
        char *text = distinct_text(bg, i);
        ok = text && !pgd__guides_get(&gs, bg->kind, text, &gen[i].g, &b.v, err, sizeof err) &&
             pgd__gmatch_init(&gen[i].m, gen[i].g->g);
        gen[i].rng = seed + (uint64_t)i;
        free(text);
    }
    if (ok) {
        b.words = pgd__mask_words(b.v->n);
        b.masks = malloc((size_t)n_gen * b.words * sizeof *b.masks);
        b.walk = malloc((size_t)n_gen * sizeof *b.walk);
        ok = b.masks && b.walk;
    }
    for (int s = 0; ok && s < steps; s++) {
        double t0 = pgd__now_s();
        batch_masks(w, &b, n_gen);
        total += pgd__now_s() - t0;
        if (atomic_load(&b.failed)) {
            snprintf(err, sizeof err, "step %d: %s", s, b.err);
            ok = false;
            break;
        }
        for (int i = 0; i < n_gen; i++) {
            int32_t t = pick(b.masks + (size_t)i * b.words, b.v->n, &gen[i].rng);
            size_t len = 0;
            const uint8_t *bytes = t >= 0 && t != b.eos ? pgd__vocab_token(b.v, t, &len) : NULL;
            if (!bytes || !pgd__gmatch_accept(&gen[i].m, bytes, len) ||
                pgd__gmatch_terminated(&gen[i].m)) {
                pgd__gmatch_fini(&gen[i].m);
                ok = pgd__gmatch_init(&gen[i].m, gen[i].g->g);
            }
        }
    }
    if (!ok)
        fprintf(stderr, "pagoda bench grammar: --batch: %s\n", *err ? err : "out of memory");
    for (int i = 0; i < n_gen; i++)
        if (gen[i].g) {
            pgd__gmatch_fini(&gen[i].m);
            pgd__guide_release(&gs, gen[i].g);
        }
    free(b.masks);
    free(b.walk);
    free(gen);
    pgd__workers_destroy(w);
    pgd__guides_fini(&gs);
    return ok ? 1e3 * total / steps : -1;
}

/* --batch: each --threads count in turn, beside the calling thread alone. */
static int run_batch(const struct pgd_tokenizer *tok, const struct bench_guide *bg, int n_gen,
                     int steps, uint64_t seed, const int *threads, int n_threads)
{
    printf("  %s, %d generations at once, each its own guide, %d steps: wall ms a step's "
           "masks take\n", bg->name, n_gen, steps);
    double alone = 0;
    for (int k = 0; k < n_threads; k++) {
        double ms = run_batch_once(tok, bg, n_gen, steps, seed, threads[k]);
        if (ms < 0)
            return 1;
        if (threads[k] == 0)
            alone = ms;
        printf("    %2d helpers  %9.3f ms", threads[k], ms);
        if (alone > 0 && threads[k] > 0)
            printf("   %.2fx the engine thread alone", alone / ms);
        printf("\n");
    }
    return 0;
}

int pgd_cmd_bench_grammar(int argc, char **argv)
{
    char err[1024] = "";
    const char *tokdir = NULL, *kind = NULL, *guide = NULL;
    int steps = 256, batch = 0, threads[8] = { 0 }, n_threads = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--tokenizer") && has)
            tokdir = argv[++i];
        else if (!strcmp(argv[i], "--kind") && has)
            kind = argv[++i];
        else if (!strcmp(argv[i], "--guide") && has)
            guide = argv[++i];
        else if (!strcmp(argv[i], "--steps") && has)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && has)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batch") && has)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && has &&
                 !pgd_tool_bench_int_list("--threads", argv[i + 1], 0, 64, threads, 8,
                                          &n_threads, err, sizeof err))
            i++;
        else {
            if (*err)
                fprintf(stderr, "pagoda bench grammar: %s\n", err);
            fprintf(stderr,
                    "usage: pagoda bench grammar --tokenizer DIR [--kind json_object|json_schema|"
                    "regex|choice|grammar --guide TEXT|@FILE] [--steps N] [--seed S]\n"
                    "       [--batch N [--threads LIST]]\n"
                    "  per-step token-mask time of structured output over DIR's vocabulary;\n"
                    "  --batch: N generations at once, each its own guide, their masks made\n"
                    "  with each number of helpers of --threads (default 0,1,2,4)\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    if (!tokdir || steps < 1 || batch < 0 || batch > 4096) {
        fprintf(stderr, "pagoda bench grammar: --tokenizer DIR is required, --steps at least 1, "
                "--batch 0 to 4096 (see --help)\n");
        return 2;
    }
    if (n_threads == 0) {
        static const int DEF[] = { 0, 1, 2, 4 };
        memcpy(threads, DEF, sizeof DEF);
        n_threads = 4;
    }
    struct bench_guide one = { PGD_GUIDE_NONE, kind, NULL };
    char *file_text = NULL;
    if (kind) {
        static const enum pgd_guide_kind K[] = { PGD_GUIDE_JSON_OBJECT, PGD_GUIDE_JSON_SCHEMA,
                                                 PGD_GUIDE_REGEX, PGD_GUIDE_CHOICE,
                                                 PGD_GUIDE_GRAMMAR };
        for (size_t k = 0; k < sizeof K / sizeof *K; k++)
            if (!strcmp(kind, pgd__guide_kind_name(K[k])))
                one.kind = K[k];
        if (one.kind == PGD_GUIDE_NONE || (!guide && one.kind != PGD_GUIDE_JSON_OBJECT)) {
            fprintf(stderr, "pagoda bench grammar: --kind %s needs a known kind and --guide\n",
                    kind);
            return 2;
        }
        if (guide && guide[0] == '@') {
            if (pgd__read_file(guide + 1, &file_text, NULL, err, sizeof err)) {
                fprintf(stderr, "pagoda bench grammar: %s\n", err);
                return 1;
            }
            guide = file_text;
        }
        one.text = guide;
    }
    struct pgd_tokenizer *tok;
    if (pgd_tokenizer_load(tokdir, &tok, err, sizeof err)) {
        fprintf(stderr, "pagoda bench grammar: %s\n", err);
        free(file_text);
        return 1;
    }
    int32_t n = pgd_tokenizer_vocab_size(tok), eos = pgd_tokenizer_eos_id(tok);
    struct pgd__guides gs;
    pgd__guides_init(&gs, tok, n, err, sizeof err);
    /* the vocabulary and its trie, made once per engine */
    struct pgd__guide *warm;
    const struct pgd__vocab *v;
    double t0 = now_us();
    int rc = pgd__guides_get(&gs, PGD_GUIDE_JSON_OBJECT, NULL, &warm, &v, err, sizeof err);
    if (rc == 0) {
        printf("vocabulary: %d tokens, trie of %u nodes (made in %.1f ms)\n", n, v->n_nodes,
               (now_us() - t0) / 1000);
        pgd__guide_release(&gs, warm);
        const struct bench_guide *list = kind ? &one : BUILTIN;
        size_t n_list = kind ? 1 : sizeof BUILTIN / sizeof *BUILTIN;
        for (size_t i = 0; rc == 0 && i < n_list; i++)
            rc = batch > 0 ? run_batch(tok, &list[i], batch, steps, seed, threads, n_threads)
                           : run_guide(&gs, &list[i], steps, seed, eos < 0 ? n - 1 : eos);
    } else {
        fprintf(stderr, "pagoda bench grammar: %s\n", err);
    }
    pgd__guides_fini(&gs);
    pgd_tokenizer_destroy(tok);
    free(file_text);
    return rc ? 1 : 0;
}
