/* Shared by tests/unit/test_engine.c (Criterion) and tests/unit/test_engine_tsan.c (plain main, for
 * ThreadSanitizer, under which Criterion cannot run: Snaipe/Criterion#274).
 *
 * A stand-in model backend: the "model" keeps a fake paged KV cache (each computed position
 * writes its token into the slot the block table names) and derives each row of logits
 * from what the cache holds for the positions before it, so a scheduling or block-sharing
 * mistake changes the output. A small fixture vocabulary of text pieces stands in for the
 * tokenizer (for stop strings and delta text). With the async pair (async_pair.h) a
 * worker thread runs each submitted step while the engine plans the next, as a GPU would. */
#ifndef PGD_TESTS_ENGINE_FIXTURE_H
#define PGD_TESTS_ENGINE_FIXTURE_H

#include "runtime/base/mem.h"
#include "runtime/engine/engine_backend.h"
#include "runtime/sample/sample_rows.h"
#include "tests/lib/async_pair.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VOCAB 64
#define EOS_ID 1

/* ---- the stand-in model ---------------------------------------------------------------- */

struct fake {
    int num_blocks, block_size;
    int64_t *cache;         /* [num_blocks * block_size]: token << 32 | position */
    float *logits;          /* [rows, VOCAB] */
    size_t logits_cap;
    int32_t eos[1];
    int32_t *hist;
    size_t hist_cap;
    bool boost_eos;
    long n_steps;               /* steps run so far (g_fail_step) */
};

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

/* The model's rule: logits of the next token after toks[0..n). */
static void rule(const int32_t *toks, int n, float *out)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint32_t)toks[i]) * 1099511628211ULL;
    for (int v = 0; v < VOCAB; v++)
        out[v] = (float)((double)(mix(h ^ ((uint64_t)v * 0x9e3779b97f4a7c15ULL)) >> 40) /
                         16777216.0 * 6.0 - 3.0);
    out[EOS_ID] -= 1.0f;    /* EOS a little rarer */
}

/* The rule the stand-in model follows (rule above unless a test installs another, e.g. one
 * that repeats itself, for speculative decoding); reference_greedy follows it too. */
static void (*g_rule)(const int32_t *toks, int n, float *out) = rule;

/* A step's duration (microseconds), for tests that act while requests run. Criterion runs
 * each test in its own process. */
static long g_step_delay_us;
/* The stand-in model's step (counted from 0, every step it runs) that fails, as a device
 * error would; -1: none. For the engine's failure path. */
static long g_fail_step = -1;

static enum pgd_status fake_step(void *ctx, const struct pgd__step_seq *seqs, int n,
                                 const float **logits, char *err, size_t errlen)
{
    struct fake *f = ctx;
    if (f->n_steps++ == g_fail_step)
        return pgd_errf(err, errlen, PGD_ERR_DEVICE, "fake model: step %ld fails, as asked",
                        g_fail_step);
    if (g_step_delay_us > 0) {
        struct timespec ts = { 0, g_step_delay_us * 1000L };
        nanosleep(&ts, NULL);
    }
    size_t rows = 0;
    for (int i = 0; i < n; i++)
        rows += (size_t)seqs[i].n_logits;
    if (!pgd__array_reserve(f->logits, f->logits_cap, rows * VOCAB))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "fake model: no memory for %zu logits rows",
                        rows);
    int bs = f->block_size;
    /* Write every new token's "KV" first (as attention layers do), then read. */
    for (int i = 0; i < n; i++) {
        const struct pgd__step_seq *s = &seqs[i];
        for (int j = 0; j < s->n_new; j++) {
            int pos = s->n_computed + j;
            if (pos / bs >= s->n_blocks)
                return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "position %d has no block", pos);
            f->cache[(size_t)s->block_table[pos / bs] * bs + pos % bs] =
                (int64_t)s->tokens[j] << 32 | pos;
        }
    }
    float *row = f->logits;
    for (int i = 0; i < n; i++) {
        const struct pgd__step_seq *s = &seqs[i];
        int total = s->n_computed + s->n_new;
        if (!pgd__array_reserve(f->hist, f->hist_cap, (size_t)total))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "fake model: no memory for %d tokens",
                            total);
        for (int pos = 0; pos < total; pos++) {
            int64_t v = f->cache[(size_t)s->block_table[pos / bs] * bs + pos % bs];
            if ((int)(v & 0xffffffff) != pos)
                return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "slot of position %d holds %d",
                                pos, (int)(v & 0xffffffff));
            f->hist[pos] = (int32_t)(v >> 32);
        }
        for (int r = 0; r < s->n_logits; r++) {
            int upto = total - s->n_logits + r + 1;
            g_rule(f->hist, upto, row);
            row += VOCAB;
        }
    }
    *logits = f->logits;
    return PGD_OK;
}

static void fake_destroy(void *ctx)
{
    struct fake *f = ctx;
    free(f->cache);
    free(f->logits);
    free(f->hist);
    free(f);
}

static struct pgd__engine_backend fake_backend(int num_blocks, int block_size, int max_len)
{
    struct fake *f = calloc(1, sizeof *f);
    f->num_blocks = num_blocks;
    f->block_size = block_size;
    f->cache = malloc((size_t)num_blocks * block_size * sizeof *f->cache);
    f->eos[0] = EOS_ID;
    return (struct pgd__engine_backend){
        .ctx = f, .num_blocks = num_blocks, .block_size = block_size, .vocab_size = VOCAB,
        .max_model_len = max_len, .eos_ids = f->eos, .n_eos = 1, .step = fake_step,
        .destroy = fake_destroy,
    };
}

/* ---- the fixture vocabulary ------------------------------------------------------------ */

static const char *PIECE[VOCAB] = {
    "<unk>", "</s>", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
    "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", " ", ".", ",", "\n",
    "S", "T", "O", "P", "ST", "OP", "STOP", "the", " the", "ing", "er", "<", ">", "|",
    "end", "<|end|>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "!", "?", "-",
    ":", ";", "'",
};

static enum pgd_status fx_encode(void *ctx, const char *text, bool add_special, int32_t **ids,
                                 int *n, char *err, size_t errlen)
{
    size_t len = strlen(text);
    int32_t *out = malloc((len + 1) * sizeof *out);
    int k = 0;
    for (size_t i = 0; i < len;) {
        int best = -1;
        size_t bl = 0;
        for (int v = 2; v < VOCAB; v++) {
            size_t pl = strlen(PIECE[v]);
            if (pl > bl && strncmp(text + i, PIECE[v], pl) == 0) {
                best = v;
                bl = pl;
            }
        }
        if (best < 0) {
            free(out);
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "fixture: no piece for '%c'",
                            text[i]);
        }
        out[k++] = best;
        i += bl;
    }
    *ids = out;
    *n = k;
    return PGD_OK;
}

struct fx_detok { bool skip; };
static void *fx_new(void *ctx, const int32_t *p, int n, bool skip)
{
    struct fx_detok *d = malloc(sizeof *d);
    d->skip = skip;
    return d;
}
static void fx_push(void *st, int32_t t, const char **delta, size_t *len)
{
    struct fx_detok *d = st;
    const char *s = (t <= EOS_ID && d->skip) ? "" : PIECE[t];
    *delta = s;
    *len = strlen(s);
}
static void fx_flush(void *st, const char **delta, size_t *len) { *delta = ""; *len = 0; }
static void fx_free(void *st) { free(st); }

static const struct pgd__textio FIXTURE_TEXT = {
    .encode = fx_encode, .detok_new = fx_new, .detok_push = fx_push, .detok_flush = fx_flush,
    .detok_free = fx_free,
};

/* Whether a reference generation stops at EOS (as a request does by default). */
enum eos_rule { STOP_AT_EOS, IGNORE_EOS };

/* What greedy decoding gives alone: up to max_out tokens after prompt[n] into out;
 * returns how many. */
static int reference_greedy(const int32_t *prompt, int n, int max_out, enum eos_rule eos,
                            int32_t *out)
{
    const bool ignore_eos = eos == IGNORE_EOS;
    int32_t *h = malloc((size_t)(n + max_out) * sizeof *h);
    memcpy(h, prompt, (size_t)n * sizeof *h);
    float lg[VOCAB];
    int k = 0;
    while (k < max_out) {
        g_rule(h, n + k, lg);
        int best = 0;
        for (int v = 1; v < VOCAB; v++)
            if (lg[v] > lg[best]) best = v;
        h[n + k] = best;
        out[k++] = best;
        if (best == EOS_ID && !ignore_eos)
            break;
    }
    free(h);
    return k;
}

static struct pgd_sampling_params greedy_params(int max_tokens)
{
    struct pgd_sampling_params sp = pgd_sampling_default_params();
    sp.temperature = 0.0f;
    sp.max_tokens = max_tokens;
    return sp;
}

/* How fixture_engine builds an engine; name the fields you set, e.g.
 * &(struct fixture_engine_opts){ .num_blocks = 64, .block_size = 4, .text = true }. */
struct fixture_engine_opts {
    int num_blocks, block_size;        /* the stand-in model's KV pool */
    bool text;                         /* with the fixture's text path (text, stop strings) */
    bool async_pair;                   /* behind the async pair (async_pair.h) */
    void (*tweak)(struct pgd_engine_params *); /* adjusts the defaults below; may be NULL */
};

/* Makes an engine over the stand-in model (16 sequences and 64 tokens a step unless
 * tweaked); NULL (and the reason in err) on failure. */
static struct pgd_engine *fixture_engine(const struct fixture_engine_opts *o, char *err,
                                         size_t errlen)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.max_num_seqs = 16;
    p.max_num_batched_tokens = 64;
    if (o->tweak)
        o->tweak(&p);
    struct pgd__engine_backend be = fake_backend(o->num_blocks, o->block_size, 1024);
    if (o->async_pair)
        be = async_pair_wrap(be);
    struct pgd_engine *e;
    if (pgd__engine_create_with(&p, &be, o->text ? &FIXTURE_TEXT : NULL, &e, err, errlen) !=
        PGD_OK)
        return NULL;
    pgd__engine_set_paranoid(e, true);
    return e;
}

/* ---- a submitting thread: random requests, aborts, n > 1, shared prefixes --------------- */

struct worker {
    struct pgd_engine *e;
    int id, n_requests;
    bool stop_strings;                 /* one request in four has stop strings (the engine
                                          needs the text path): its reader ends samples;
                                          one sampled request in two has bad words */
    int done, aborted, stopped;        /* stopped: samples a stop string ended */
};

static uint32_t xs(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

__attribute__((unused)) static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint32_t rs = 0x9e3779b9u * (uint32_t)(w->id + 1);
    static const int32_t sys[24] = { 9, 8, 7, 6, 5, 4, 3, 2, 10, 11, 12, 13, 14, 15, 16, 17,
                                     20, 21, 22, 23, 24, 25, 26, 27 };
    for (int r = 0; r < w->n_requests; r++) {
        int32_t prompt[48];
        int n = 1 + (int)(xs(&rs) % 40);
        int pre = xs(&rs) % 2 ? (int)(xs(&rs) % 24) : 0;
        if (pre > n) pre = n;
        memcpy(prompt, sys, (size_t)pre * sizeof *prompt);
        for (int i = pre; i < n; i++) prompt[i] = 2 + (int32_t)(xs(&rs) % 60);
        struct pgd_sampling_params sp = greedy_params(1 + (int)(xs(&rs) % 24));
        sp.n = xs(&rs) % 4 == 0 ? 2 : 1;
        bool greedy = xs(&rs) % 3 != 0;
        if (!greedy) {
            sp.temperature = 0.8f;
            sp.top_k = 10;
        }
        struct pgd_request_params rp = pgd_request_default_params();
        rp.prompt_ids = prompt;
        rp.n_prompt_ids = n;
        rp.sampling = sp;
        rp.priority = (int)(xs(&rs) % 3);
        static const char *stops[2] = { "th", "e" };
        const bool with_stops = w->stop_strings && xs(&rs) % 4 == 0;
        if (with_stops) {
            rp.sampling.stop = stops;
            rp.sampling.n_stop = 2;
        }
        /* Bad words on some sampled requests (async: their masks are made late, while the
         * worker runs the step's forward pass). */
        static const char *bad[2] = { "e", "ab" };
        if (w->stop_strings && !greedy && xs(&rs) % 2 == 0) {
            rp.sampling.bad_words = bad;
            rp.sampling.n_bad_words = 2;
        }
        struct pgd_stream *s;
        char err[256];
        if (pgd_engine_submit(w->e, &rp, &s, err, sizeof err) != PGD_OK)
            return (void *)"submit failed";
        int abort_at = xs(&rs) % 6 == 0 ? (int)(xs(&rs) % 5) : -1;
        struct pgd_output o;
        int32_t got[2][32];
        int ng[2] = { 0, 0 }, finals = 0, outputs = 0;
        enum pgd_finish_reason fin[2] = { 0, 0 };
        enum pgd_status st;
        while ((st = pgd_stream_next(s, &o, 20000)) == PGD_OK) {
            if (outputs++ == abort_at)
                pgd_engine_abort(w->e, pgd_stream_request_id(s));
            for (int i = 0; i < o.n_token_ids; i++)
                got[o.index][ng[o.index]++] = o.token_ids[i];
            if (o.finish_reason) {
                fin[o.index] = o.finish_reason;
                finals++;
                w->stopped += o.stop_reason != NULL;
            }
        }
        if (st != PGD_ERR_CLOSED || finals != sp.n)
            return (void *)"stream did not close properly";
        for (int c = 0; c < sp.n; c++) {
            if (fin[c] == PGD_FINISH_ABORT) {
                w->aborted++;
                continue;
            }
            if (!greedy || with_stops)
                continue;
            int32_t ref[32];
            int nr = reference_greedy(prompt, n, sp.max_tokens, STOP_AT_EOS, ref);
            if (nr != ng[c] || memcmp(ref, got[c], (size_t)nr * sizeof *ref) != 0)
                return (void *)"greedy output differs from the request run alone";
        }
        pgd_stream_destroy(s);
        w->done++;
    }
    return NULL;
}

__attribute__((unused)) static void fixture_tweak_stress(struct pgd_engine_params *p)
{
    p->max_num_batched_tokens = 48;
    p->max_num_seqs = 6;
    p->policy = PGD_SCHED_PRIORITY;
}

#endif
