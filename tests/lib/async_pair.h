/* A stand-in for a GPU runner's async step pair (engine_backend.h: submit, collect,
 * submit_masks) around any backend with a step: a worker thread runs each submitted step
 * while the engine plans the next, as a GPU would. Used over the stand-in model of
 * engine_fixture.h and over the CPU model runner (pgd__engine_create_wrapped), so that the
 * engine's async paths (pending tokens, penalties counting them, masks made late) run on a
 * machine without a GPU.
 *
 * What a GPU runner does, done alike: a submitted step is copied at submit (its sequences'
 * new tokens and block tables, its rows and their contexts' tokens: the engine changes all
 * of these once submit returns); a pending token is put into the step's batch from the
 * results of the step before; a row's penalties count the pending token from the batch at
 * its pending_at; a step with allow_late rows runs its forward pass at once and samples
 * only once submit_masks has brought the masks (copied then). The worker samples on the
 * host (the CPU sampler), from the inner backend's logits. */
#ifndef PGD_TESTS_ASYNC_PAIR_H
#define PGD_TESTS_ASYNC_PAIR_H

#include "runtime/engine/engine_backend.h"
#include "runtime/sample/sample_rows.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A submitted step, copied at submission; what the rows point to otherwise (sampling
 * parameters) stays the engine's until the step is collected. */
struct pair_job {
    struct pgd__step_seq *ss;           /* owned [n]; tokens and tables point into tok, tab */
    int32_t *tok, *tab;                 /* owned */
    int n, n_rows;
    struct pgd__sample_row *rows;       /* owned [n_rows]; ctx.tokens point into hist */
    const struct pgd__sample_row *engine_rows;  /* the engine's, borrowed: their late masks */
    int32_t *hist;                      /* owned */
    uint32_t *masks;                    /* owned [n_rows * mask words] once the masks came */
    struct pgd__sample_result *res;     /* owned [n_rows] */
    bool masks_late;                    /* some rows are allow_late */
    bool masks_in;                      /* submit_masks brought them (or none were late) */
    bool ran;
    enum pgd_status st;
    char err[256];
};

struct async_pair {
    struct pgd__engine_backend inner;   /* owned: the wrapped backend */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pair_job job[2];             /* in submission order from `first` */
    int first, count, n_ran;            /* n_ran: of the `count`, run so far */
    bool stop;
    struct pgd__sampler sampler;        /* the worker's */
    float *scratch;                     /* [vocab] */
    size_t mask_words;                  /* uint32 words of one row's mask */
    struct pgd__sample_result *last;    /* the last run step's results (its pending source) */
    int n_last;
    long n_late_steps;                  /* steps that sampled once submit_masks came */
};

static void pair_job_free(struct pair_job *j)
{
    free(j->ss);
    free(j->tok);
    free(j->tab);
    free(j->rows);
    free(j->hist);
    free(j->masks);
    free(j->res);
    memset(j, 0, sizeof *j);
}

/* Samples job j's rows as a GPU runner with submit_penalties does: a row whose context
 * ends in a placeholder (-1) counts in its penalties the token the worker put into the
 * job's batch at the row's pending_at. So the engine's pending_at is checked against the
 * batch's layout on the CPU. */
static void pair_sample_rows(struct async_pair *a, const float *logits, struct pair_job *j)
{
    for (int r = 0; r < j->n_rows; r++) {
        const int at = pgd__sample_row_placeholder(&j->rows[r]);
        if (at >= 0)    /* the context is the job's copy (hist) */
            ((int32_t *)j->rows[r].ctx.tokens)[at] = j->tok[j->rows[r].pending_at];
    }
    pgd__sample_rows_host(&a->sampler, a->scratch, logits, j->rows, j->n_rows, j->res);
}

/* Job j's pending tokens from the results of the step before (the worker's last). */
static void pair_put_pending(struct async_pair *a, struct pair_job *j)
{
    for (int i = 0; i < j->n && j->st == PGD_OK; i++)
        if (j->ss[i].pending) {
            int row = j->ss[i].pending_row;
            if (row < 0 || row >= a->n_last || a->last[row].token < 0)
                j->st = pgd_errf(j->err, sizeof j->err, PGD_ERR_INTERNAL, "async pair: "
                                 "pending row %d of %d", row, a->n_last);
            else
                ((int32_t *)j->ss[i].tokens)[0] = a->last[row].token;
            j->ss[i].pending = false;
        }
}

/* The worker: each job in turn: its pending tokens, its forward pass, then (once its masks
 * are in) its sampling. */
static void *pair_main(void *arg)
{
    struct async_pair *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stop && a->n_ran == a->count)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->stop)
            break;
        struct pair_job *j = &a->job[(a->first + a->n_ran) % 2];
        pthread_mutex_unlock(&a->mu);
        j->st = PGD_OK;
        pair_put_pending(a, j);
        const float *logits = NULL;
        if (j->st == PGD_OK)
            j->st = a->inner.step(a->inner.ctx, j->ss, j->n, &logits, j->err, sizeof j->err);
        pthread_mutex_lock(&a->mu);
        while (!a->stop && !j->masks_in)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->stop)
            break;
        pthread_mutex_unlock(&a->mu);
        if (j->st == PGD_OK)
            pair_sample_rows(a, logits, j);
        pthread_mutex_lock(&a->mu);
        /* This step's results are where the next one's pending tokens come from. */
        free(a->last);
        a->last = malloc((size_t)(j->n_rows ? j->n_rows : 1) * sizeof *a->last);
        if (a->last && j->n_rows)
            memcpy(a->last, j->res, (size_t)j->n_rows * sizeof *a->last);
        a->n_last = a->last ? j->n_rows : 0;
        j->ran = true;
        a->n_ran++;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Job j: a copy of the step's sequences and rows (pending tokens -1 until the worker puts
 * them in). */
static bool pair_job_copy(struct pair_job *j, const struct pgd__step_seq *seqs, int n,
                          const struct pgd__sample_row *rows)
{
    size_t ntok = 0, ntab = 0, nhist = 0;
    int n_rows = 0;
    for (int i = 0; i < n; i++) {
        ntok += (size_t)seqs[i].n_new;
        ntab += (size_t)seqs[i].n_blocks;
        n_rows += seqs[i].n_logits;
    }
    for (int r = 0; r < n_rows; r++)
        if (rows[r].kind == PGD__ROW_SAMPLE)
            nhist += (size_t)(rows[r].ctx.n_prompt + rows[r].ctx.n_out);
    *j = (struct pair_job){ .n = n, .n_rows = n_rows, .engine_rows = rows, .masks_in = true };
    j->ss = malloc((size_t)(n + 1) * sizeof *j->ss);
    j->tok = malloc((ntok + 1) * sizeof *j->tok);
    j->tab = malloc((ntab + 1) * sizeof *j->tab);
    j->rows = malloc((size_t)(n_rows + 1) * sizeof *j->rows);
    j->hist = malloc((nhist + 1) * sizeof *j->hist);
    j->res = malloc((size_t)(n_rows + 1) * sizeof *j->res);
    if (!j->ss || !j->tok || !j->tab || !j->rows || !j->hist || !j->res)
        return false;
    int32_t *tk = j->tok, *tb = j->tab;
    for (int i = 0; i < n; i++) {
        j->ss[i] = seqs[i];
        /* A pending token is not the engine's to read: the worker puts it in. */
        for (int k = 0; k < seqs[i].n_new; k++)
            tk[k] = seqs[i].pending && k == 0 ? -1 : seqs[i].tokens[k];
        memcpy(tb, seqs[i].block_table, (size_t)seqs[i].n_blocks * sizeof *tb);
        j->ss[i].tokens = tk;
        j->ss[i].block_table = tb;
        tk += seqs[i].n_new;
        tb += seqs[i].n_blocks;
    }
    int32_t *h = j->hist;
    for (int r = 0; r < n_rows; r++) {
        j->rows[r] = rows[r];
        if (rows[r].allow_late) {
            j->masks_late = true;
            j->masks_in = false;
        }
        if (rows[r].kind != PGD__ROW_SAMPLE)
            continue;
        const int n_all = rows[r].ctx.n_prompt + rows[r].ctx.n_out;
        memcpy(h, rows[r].ctx.tokens, (size_t)n_all * sizeof *h);
        j->rows[r].ctx.tokens = h;
        h += n_all;
    }
    return true;
}

static enum pgd_status pair_submit(void *ctx, const struct pgd__step_seq *seqs, int n,
                                   const struct pgd__sample_row *rows, char *err, size_t errlen)
{
    struct async_pair *a = ctx;
    struct pair_job j;
    if (!pair_job_copy(&j, seqs, n, rows)) {
        pair_job_free(&j);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "async pair: no memory for a step");
    }
    pthread_mutex_lock(&a->mu);
    if (a->count == 2) {
        pthread_mutex_unlock(&a->mu);
        pair_job_free(&j);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "async pair: two steps uncollected");
    }
    a->job[(a->first + a->count) % 2] = j;
    a->count++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return PGD_OK;
}

/* The masks of the last submitted step's allow_late rows, from the engine's rows (the
 * ones its submit was given), copied now: the engine reuses a sample's mask buffer. */
static enum pgd_status pair_submit_masks(void *ctx, char *err, size_t errlen)
{
    struct async_pair *a = ctx;
    pthread_mutex_lock(&a->mu);
    struct pair_job *j = a->count ? &a->job[(a->first + a->count - 1) % 2] : NULL;
    if (!j || !j->masks_late || j->masks_in) {
        pthread_mutex_unlock(&a->mu);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "async pair: submit_masks, and the "
                        "last submitted step waits for no masks");
    }
    pthread_mutex_unlock(&a->mu);
    /* The worker reads no row's mask before masks_in. */
    if (!(j->masks = malloc((size_t)(j->n_rows + 1) * a->mask_words * sizeof *j->masks)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "async pair: no memory for the masks");
    for (int r = 0; r < j->n_rows; r++) {
        const uint32_t *allow = j->engine_rows[r].ctx.allow;
        if (!j->rows[r].allow_late || !allow)
            continue;
        uint32_t *m = j->masks + (size_t)r * a->mask_words;
        memcpy(m, allow, a->mask_words * sizeof *m);
        j->rows[r].ctx.allow = m;
    }
    pthread_mutex_lock(&a->mu);
    j->masks_in = true;
    a->n_late_steps++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return PGD_OK;
}

static enum pgd_status pair_collect(void *ctx, struct pgd__sample_result *res, int *n_rows,
                                    char *err, size_t errlen)
{
    struct async_pair *a = ctx;
    pthread_mutex_lock(&a->mu);
    if (a->count == 0) {
        pthread_mutex_unlock(&a->mu);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "async pair: nothing to collect");
    }
    struct pair_job *j = &a->job[a->first];
    if (!j->masks_in) {
        pthread_mutex_unlock(&a->mu);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "async pair: collect before the "
                        "step's masks came (submit_masks)");
    }
    while (!j->ran)
        pthread_cond_wait(&a->cv, &a->mu);
    struct pair_job done = *j;
    memset(j, 0, sizeof *j);
    a->first = (a->first + 1) % 2;
    a->count--;
    a->n_ran--;
    pthread_mutex_unlock(&a->mu);
    enum pgd_status st = done.st;
    if (st == PGD_OK) {
        memcpy(res, done.res, (size_t)done.n_rows * sizeof *res);
        *n_rows = done.n_rows;
    } else {
        pgd_errf(err, errlen, st, "%s", done.err);
    }
    pair_job_free(&done);
    return st;
}

static enum pgd_status pair_step(void *ctx, const struct pgd__step_seq *seqs, int n,
                                 const float **logits, char *err, size_t errlen)
{
    struct async_pair *a = ctx;
    return a->inner.step(a->inner.ctx, seqs, n, logits, err, errlen);
}

static void pair_destroy(void *ctx)
{
    struct async_pair *a = ctx;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    for (int i = 0; i < 2; i++)
        pair_job_free(&a->job[i]);
    pgd__sampler_fini(&a->sampler);
    free(a->scratch);
    free(a->last);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    if (a->inner.destroy)
        a->inner.destroy(a->inner.ctx);
    free(a);
}

/* inner (owned from here) behind the async pair: the engine steps it through submit,
 * collect and submit_masks, the pair's worker thread running inner's step. Only inner's
 * step is offered besides (an engine that steps in turn); its speculative, pooling, swap
 * and device-time calls are not (they would race the worker). */
__attribute__((unused)) static struct pgd__engine_backend
async_pair_wrap(struct pgd__engine_backend inner)
{
    struct async_pair *a = calloc(1, sizeof *a);
    char err[128];
    if (!a || pgd__sampler_init(&a->sampler, inner.vocab_size, err, sizeof err) ||
        !(a->scratch = malloc((size_t)inner.vocab_size * sizeof *a->scratch))) {
        fprintf(stderr, "async_pair_wrap: out of memory\n");
        abort();
    }
    a->inner = inner;
    a->mask_words = ((size_t)inner.vocab_size + 31) / 32;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, pair_main, a) != 0) {
        fprintf(stderr, "async_pair_wrap: no worker thread\n");
        abort();
    }
    struct pgd__engine_backend be = {
        .ctx = a,
        .num_blocks = inner.num_blocks,
        .block_size = inner.block_size,
        .vocab_size = inner.vocab_size,
        .max_model_len = inner.max_model_len,
        .sliding_window = inner.sliding_window,
        .eos_ids = inner.eos_ids,
        .n_eos = inner.n_eos,
        .step = pair_step,
        .submit = pair_submit,
        .collect = pair_collect,
        .submit_penalties = true,       /* pair_sample_rows */
        .submit_masks = pair_submit_masks,
        .destroy = pair_destroy,
    };
    return be;
}

/* How many of the steps of e (an engine over async_pair_wrap's backend) sampled late, once
 * the engine had made their masks (submit_masks). */
__attribute__((unused)) static long async_pair_late_steps(const struct pgd_engine *e)
{
    struct async_pair *a = pgd__engine_backend_ctx(e);
    pthread_mutex_lock(&a->mu);
    long n = a->n_late_steps;
    pthread_mutex_unlock(&a->mu);
    return n;
}

#endif
