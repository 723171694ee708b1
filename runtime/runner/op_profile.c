/* The per-op time profile (op_profile.h): the marks of one step (CUDA events, or host clock
 * readings on the CPU), the ops timed between them, and the rows they add into. */
#include "config.h"
#include "runtime/runner/op_profile.h"
#include "runtime/base/clock.h"
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif
#include <stdlib.h>
#include <string.h>

/* Marks a step holds: 0 and 1 bracket the step, 2k + 2 and 2k + 3 its k-th op. */
#define PROF_MARKS 4096
#define PROF_MAX_ROWS 128
/* How long the GPU's gate waits for the host to queue a step. */
#define PROF_GATE_MS 200.0

struct pending_op {
    int row, mark;
    double flops, bytes, host_ms;
};

struct pgd__op_profile {
    enum pgd_device dev;
    struct pgd_cuda_prof *ev;        /* CUDA: the events; NULL on the CPU */
    double *host_ms;                 /* CPU: [PROF_MARKS] clock readings */
    bool in_step;
    int depth;                       /* ops open now (only depth 0 is timed) */
    int next_mark;
    struct pending_op *ops;          /* [PROF_MARKS / 2] this step's timed ops */
    int n_ops;
    double op_host_t0;               /* host clock (ms) at the open top-level op's begin */
    double step_host_t0, step_host_ms;  /* this step's begin; the steps' queueing, summed */
    bool step_waited;                /* an op of this step waited on the GPU */
    struct pgd__op_profile_row rows[PROF_MAX_ROWS];
    int n_rows;
    long steps, dropped, host_waits;
    double step_ms;
};

enum pgd_status pgd__op_profile_create(enum pgd_device dev, struct pgd_cuda_ctx *cuda,
                                       struct pgd__op_profile **out, char *err, size_t errlen)
{
    *out = NULL;
    struct pgd__op_profile *p = calloc(1, sizeof *p);
    if (!p || !(p->ops = calloc(PROF_MARKS / 2, sizeof *p->ops)))
        goto nomem;
    p->dev = dev;
    if (dev == PGD_DEVICE_CPU) {
        if (!(p->host_ms = calloc(PROF_MARKS, sizeof *p->host_ms)))
            goto nomem;
    } else {
#ifdef PGD_HAVE_CUDA
        if (pgd_cuda_prof_create(cuda, PROF_MARKS, &p->ev, err, errlen)) {
            pgd__op_profile_destroy(p);
            return PGD_ERR_DEVICE;
        }
#else
        (void)cuda;
        pgd__op_profile_destroy(p);
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "op profile: no CUDA in this build");
#endif
    }
    *out = p;
    return PGD_OK;
nomem:
    pgd__op_profile_destroy(p);
    return pgd_errf(err, errlen, PGD_ERR_NOMEM, "op profile: out of memory");
}

void pgd__op_profile_destroy(struct pgd__op_profile *p)
{
    if (!p)
        return;
#ifdef PGD_HAVE_CUDA
    pgd_cuda_prof_destroy(p->ev);
#endif
    free(p->host_ms);
    free(p->ops);
    free(p);
}

void pgd__op_profile_reset(struct pgd__op_profile *p)
{
    p->n_rows = 0;
    p->steps = p->dropped = p->host_waits = 0;
    p->step_ms = p->step_host_ms = 0;
}

/* Records mark i now (CPU) or on the stream (CUDA). False when it could not be. */
static bool mark(struct pgd__op_profile *p, int i)
{
    if (p->host_ms) {
        p->host_ms[i] = 1e3 * pgd__now_s();
        return true;
    }
#ifdef PGD_HAVE_CUDA
    char err[256];
    return pgd_cuda_prof_mark(p->ev, i, err, sizeof err) == 0;
#else
    return false;
#endif
}

/* Milliseconds from mark i to mark j (waiting for j on the GPU). */
static enum pgd_status between(struct pgd__op_profile *p, int i, int j, double *ms, char *err,
                               size_t errlen)
{
    if (p->host_ms) {
        *ms = p->host_ms[j] - p->host_ms[i];
        return PGD_OK;
    }
#ifdef PGD_HAVE_CUDA
    float f = 0;
    if (pgd_cuda_prof_elapsed(p->ev, i, j, &f, err, errlen))
        return PGD_ERR_DEVICE;
    *ms = f;
    return PGD_OK;
#else
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "op profile: no CUDA in this build");
#endif
}

enum pgd_status pgd__op_profile_step_begin(struct pgd__op_profile *p, char *err, size_t errlen)
{
#ifdef PGD_HAVE_CUDA
    if (p->ev && pgd_cuda_prof_hold(p->ev, PROF_GATE_MS, err, errlen))
        return PGD_ERR_DEVICE;
#endif
    p->in_step = true;
    p->depth = 0;
    p->n_ops = 0;
    p->next_mark = 2;
    p->step_waited = false;
    p->step_host_t0 = 1e3 * pgd__now_s();
    if (!mark(p, 0))
        return pgd_errf(err, errlen, PGD_ERR_DEVICE, "op profile: cannot mark the step's start");
    return PGD_OK;
}

void pgd__op_profile_step_queued(struct pgd__op_profile *p)
{
    if (!p->in_step)
        return;
    p->step_host_ms += 1e3 * pgd__now_s() - p->step_host_t0;
    if (!mark(p, 1))
        p->in_step = false;        /* step_end reports it */
#ifdef PGD_HAVE_CUDA
    if (p->ev)
        pgd_cuda_prof_release(p->ev);
#endif
}

static int row_of(struct pgd__op_profile *p, const struct pgd__op_cost *c)
{
    for (int i = 0; i < p->n_rows; i++)
        if (!strcmp(p->rows[i].op, c->op) && !strcmp(p->rows[i].shape, c->shape))
            return i;
    if (p->n_rows == PROF_MAX_ROWS)
        return -1;
    struct pgd__op_profile_row *r = &p->rows[p->n_rows];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", c->op);
    snprintf(r->kind, sizeof r->kind, "%s", c->kind ? c->kind : "other");
    snprintf(r->shape, sizeof r->shape, "%s", c->shape);
    return p->n_rows++;
}

enum pgd_status pgd__op_profile_step_end(struct pgd__op_profile *p, char *err, size_t errlen)
{
    if (!p->in_step)
        return pgd_errf(err, errlen, PGD_ERR_INTERNAL, "op profile: a step ended that was not "
                        "begun, or its end could not be marked");
    p->in_step = false;
    double span = 0;
    enum pgd_status st = between(p, 0, 1, &span, err, errlen);
    for (int k = 0; !st && k < p->n_ops; k++) {
        const struct pending_op *o = &p->ops[k];
        double ms = 0;
        st = between(p, o->mark, o->mark + 1, &ms, err, errlen);
        if (st)
            break;
        struct pgd__op_profile_row *r = &p->rows[o->row];
        r->calls++;
        r->ms += ms;
        r->flops += o->flops;
        r->bytes += o->bytes;
        r->host_ms += o->host_ms;
    }
    if (st)
        return st;
    p->host_waits += p->step_waited;
    p->steps++;
    p->step_ms += span;
    return PGD_OK;
}

int pgd__op_profile_begin(struct pgd__op_profile *p)
{
    if (!p->in_step || p->depth++ > 0)
        return -1;
    if (p->next_mark + 2 > PROF_MARKS || !mark(p, p->next_mark)) {
        p->dropped++;
        return -1;
    }
    int m = p->next_mark;
    p->next_mark += 2;
    p->op_host_t0 = 1e3 * pgd__now_s();
    return m;
}

void pgd__op_profile_end(struct pgd__op_profile *p, int m, const struct pgd__op_cost *cost)
{
    if (!p->in_step)
        return;
    p->depth--;
    if (m < 0)
        return;
    /* the host's time first: the end mark is more host work, not the op's */
    const double host_ms = 1e3 * pgd__now_s() - p->op_host_t0;
    if (p->ev && host_ms >= PGD__OP_PROFILE_HOST_WAIT_MS)
        p->step_waited = true;
    int row = row_of(p, cost);
    if (row < 0 || !mark(p, m + 1)) {
        p->dropped++;
        return;
    }
    p->ops[p->n_ops++] = (struct pending_op){ row, m, cost->flops, cost->bytes, host_ms };
}

long pgd__op_profile_steps(const struct pgd__op_profile *p) { return p->steps; }
double pgd__op_profile_step_ms(const struct pgd__op_profile *p) { return p->step_ms; }
double pgd__op_profile_step_host_ms(const struct pgd__op_profile *p) { return p->step_host_ms; }
long pgd__op_profile_host_waits(const struct pgd__op_profile *p) { return p->host_waits; }
int pgd__op_profile_n_rows(const struct pgd__op_profile *p) { return p->n_rows; }
long pgd__op_profile_dropped(const struct pgd__op_profile *p) { return p->dropped; }

const struct pgd__op_profile_row *pgd__op_profile_row(const struct pgd__op_profile *p, int i)
{
    return i >= 0 && i < p->n_rows ? &p->rows[i] : NULL;
}
