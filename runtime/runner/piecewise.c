/* Piecewise CUDA graphs of eager steps (see piecewise.h): the token ladder, each size's
 * segments and calls, their capture and replay. This file never calls the runner: the
 * runner picks the size, lays the step out, runs the forward pass (warm or under capture)
 * or asks for a replay. */
#include "config.h"
#include "runtime/runner/piecewise.h"
#include "runtime/runner/fwd.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#define PW_MAX_SIZES 64

/* One size: its state, the warm pass's fingerprint, and once captured its segments
 * [n_calls + 1] (the last may be NULL: nothing after the last call) and calls [n_calls]. */
struct pw_entry {
    enum pgd__pw_state state;
    uint64_t fingerprint;
    size_t bottom;                     /* the warm pass's arena bytes (the segments') */
    struct pgd_cuda_graph **seg;
    struct pgd__pw_call *calls;
    int n_calls, cap;
};

struct pgd__pw {
    int sizes[PW_MAX_SIZES], n_sizes;
    int32_t *ids_dev;                  /* owned, device [sizes[n_sizes - 1]] */
    struct pw_entry e[PW_MAX_SIZES];
    long replays;
};

#ifdef PGD_HAVE_CUDA
/* 16 .. 256 by 16, then by 32 to 1,024, then by 128: at most an eighth of the rows padding
 * from 256 on (there the GEMMs are past the weights-bound region and a padded row costs its
 * FLOPs; about 6% on average), more below, where a step is bound by reading the weights. */
static int ladder(int max_tokens, int *sizes, int cap)
{
    int n = 0;
    for (int t = 16; n < cap - 1;) {
        sizes[n++] = t < max_tokens ? t : max_tokens;
        if (t >= max_tokens)
            return n;
        t += t < 256 ? 16 : t < 1024 ? 32 : 128;
    }
    sizes[n++] = max_tokens;
    return n;
}
#endif

enum pgd_status pgd__pw_create(int max_tokens, struct pgd__pw **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_tokens <= 0)
        return PGD_OK;
#ifdef PGD_HAVE_CUDA
    struct pgd__pw *pw = calloc(1, sizeof *pw);
    if (!pw)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "piecewise graphs: out of host memory");
    pw->n_sizes = ladder(max_tokens, pw->sizes, PW_MAX_SIZES);
    size_t bytes = (size_t)pw->sizes[pw->n_sizes - 1] * sizeof(int32_t);
    int32_t *zeros = calloc(1, bytes);
    pw->ids_dev = pgd_cuda_malloc(bytes);
    /* Padding rows read whatever ids the buffer holds: zeros, then earlier steps' ids. */
    if (!zeros || !pw->ids_dev || pgd_cuda_memcpy_h2d(pw->ids_dev, zeros, bytes, err, errlen)) {
        free(zeros);
        pgd__pw_destroy(pw);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "piecewise graphs: no device memory for "
                        "%d token ids", max_tokens);
    }
    free(zeros);
    *out = pw;
    return PGD_OK;
#else
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "piecewise graphs need the CUDA backend");
#endif
}

static void entry_clear(struct pw_entry *e)
{
#ifdef PGD_HAVE_CUDA
    for (int i = 0; e->seg && i <= e->n_calls; i++)
        pgd_cuda_graph_destroy(e->seg[i]);
#endif
    free(e->seg);
    free(e->calls);
    e->seg = NULL;
    e->calls = NULL;
    e->n_calls = e->cap = 0;
}

void pgd__pw_destroy(struct pgd__pw *pw)
{
    if (!pw)
        return;
    for (int i = 0; i < pw->n_sizes; i++)
        entry_clear(&pw->e[i]);
#ifdef PGD_HAVE_CUDA
    pgd_cuda_free(pw->ids_dev);
#endif
    free(pw);
}

int pgd__pw_size_index(const struct pgd__pw *pw, int n_tokens)
{
    for (int i = 0; pw && i < pw->n_sizes; i++)
        if (n_tokens <= pw->sizes[i])
            return i;
    return -1;
}

int pgd__pw_size(const struct pgd__pw *pw, int index) { return pw->sizes[index]; }
int pgd__pw_n_sizes(const struct pgd__pw *pw) { return pw ? pw->n_sizes : 0; }
int32_t *pgd__pw_ids(struct pgd__pw *pw) { return pw->ids_dev; }
enum pgd__pw_state pgd__pw_state(const struct pgd__pw *pw, int index) { return pw->e[index].state; }

size_t pgd__pw_bottom(const struct pgd__pw *pw, int index) { return pw->e[index].bottom; }

void pgd__pw_note_warm(struct pgd__pw *pw, const struct pgd__pw_hook *hook, uint64_t fingerprint,
                       size_t bottom)
{
    struct pw_entry *e = &pw->e[hook->size];
    if (hook->unsafe) {
        PGD_WARN("piecewise CUDA graph of %d tokens not captured (steps of that size stay "
                 "eager): an op between two attention ops read the step's inputs",
                 pw->sizes[hook->size]);
        e->state = PGD__PW_EAGER;
        return;
    }
    e->state = PGD__PW_WARMED;
    e->fingerprint = fingerprint;
    e->bottom = bottom;
}

/* Room for one more call and the segment after it. */
static bool entry_grow(struct pw_entry *e)
{
    if (e->n_calls < e->cap)
        return true;
    int cap = e->cap ? 2 * e->cap : 64;
    struct pgd__pw_call *calls = realloc(e->calls, (size_t)cap * sizeof *calls);
    if (!calls)
        return false;
    e->calls = calls;
    struct pgd_cuda_graph **seg = realloc(e->seg, (size_t)(cap + 1) * sizeof *seg);
    if (!seg)
        return false;
    for (int i = e->cap + 1; i <= cap; i++)
        seg[i] = NULL;
    if (!e->cap)
        seg[0] = NULL;
    e->seg = seg;
    e->cap = cap;
    return true;
}

static void hook_fail(struct pgd__pw_hook *h, const char *what)
{
    if (!h->failed)
        snprintf(h->why, sizeof h->why, "%s", what);
    h->failed = true;
}

enum pgd_status pgd__pw_capture_begin(struct pgd__pw *pw, int index, struct pgd_cuda_ctx *c,
                                      struct pgd__pw_hook *hook, char *err, size_t errlen)
{
    struct pw_entry *e = &pw->e[index];
    entry_clear(e);
    *hook = (struct pgd__pw_hook){ .mode = PGD__PW_CAPTURE, .pw = pw, .size = index };
    if (!entry_grow(e))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "piecewise graphs: out of host memory");
#ifdef PGD_HAVE_CUDA
    if (pgd_cuda_capture_begin(c, err, errlen))
        return PGD_ERR_DEVICE;
    return PGD_OK;
#else
    (void)c;
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "piecewise graphs need the CUDA backend");
#endif
}

bool pgd__pw_boundary(struct pgd_fwd *f, const struct pgd__pw_call *call)
{
    struct pgd__pw_hook *h = f->pw;
    if (!h || h->mode != PGD__PW_CAPTURE)
        return false;
#ifdef PGD_HAVE_CUDA
    struct pw_entry *e = &h->pw->e[h->size];
    char err[256] = "";
    /* The segment so far, closed even after a failure (the stream must leave capture). */
    struct pgd_cuda_graph *g = NULL;
    if (pgd_cuda_capture_end(f->cuda, &g, err, sizeof err))
        hook_fail(h, err);
    if (!entry_grow(e)) {
        pgd_cuda_graph_destroy(g);
        hook_fail(h, "out of host memory");
    } else {
        e->seg[e->n_calls] = g;
        e->calls[e->n_calls++] = *call;
        e->seg[e->n_calls] = NULL;
    }
    if (pgd_cuda_capture_begin(f->cuda, err, sizeof err))
        hook_fail(h, err);
#else
    (void)call;
#endif
    return true;
}

void pgd__pw_capture_end(struct pgd__pw *pw, struct pgd__pw_hook *hook, struct pgd_cuda_ctx *c,
                         bool forward_ok, uint64_t fingerprint, bool *captured)
{
    struct pw_entry *e = &pw->e[hook->size];
    *captured = false;
#ifdef PGD_HAVE_CUDA
    char err[256] = "";
    struct pgd_cuda_graph *g = NULL;
    if (pgd_cuda_capture_end(c, &g, err, sizeof err))
        hook_fail(hook, err);
    if (e->seg && g && pgd_cuda_graph_nodes(g) > 0)
        e->seg[e->n_calls] = g;
    else
        pgd_cuda_graph_destroy(g);
#else
    (void)c;
#endif
    if (!forward_ok)
        hook_fail(hook, "the forward pass failed under capture");
    if (hook->unsafe)
        hook_fail(hook, "an op between two attention ops read the step's inputs");
    if (!hook->failed && fingerprint != e->fingerprint)
        hook_fail(hook, "the forward pass allocated other activation memory than its warm "
                        "step");
    if (hook->failed) {
        PGD_WARN("piecewise CUDA graph of %d tokens not captured (steps of that size stay "
                 "eager): %s", pw->sizes[hook->size], hook->why);
        entry_clear(e);
        e->state = PGD__PW_EAGER;
        return;
    }
    e->state = PGD__PW_CAPTURED;
    *captured = true;
    PGD_DEBUG("piecewise CUDA graph of %d tokens: %d segments around %d eager calls",
              pw->sizes[hook->size], e->n_calls + 1, e->n_calls);
}

enum pgd_status pgd__pw_replay(struct pgd__pw *pw, int index, struct pgd_fwd *f, char *err,
                               size_t errlen)
{
    struct pw_entry *e = &pw->e[index];
#ifdef PGD_HAVE_CUDA
    for (int i = 0; i <= e->n_calls; i++) {
        if (e->seg[i] && pgd_cuda_graph_launch(f->cuda, e->seg[i], err, errlen))
            return PGD_ERR_DEVICE;
        if (i == e->n_calls)
            break;
        pgd__ops_run_call(f, &e->calls[i]);
        if (f->status != PGD_OK)
            return pgd_errf(err, errlen, f->status, "piecewise step of %d tokens, call %d: %s",
                            pw->sizes[index], i, f->err);
    }
    pw->replays++;
    return PGD_OK;
#else
    (void)f;
    (void)e;
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "piecewise graphs need the CUDA backend");
#endif
}

void pgd__pw_stats(const struct pgd__pw *pw, long *replays, int *captured, int *eager)
{
    *replays = pw ? pw->replays : 0;
    *captured = *eager = 0;
    for (int i = 0; pw && i < pw->n_sizes; i++) {
        *captured += pw->e[i].state == PGD__PW_CAPTURED;
        *eager += pw->e[i].state == PGD__PW_EAGER;
    }
}
