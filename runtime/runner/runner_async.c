/* The async step pair on a GPU (runner.h: pgd__runner_step_submit, _submit_masks,
 * _collect), behind the engine's async scheduling (runtime/engine/engine_step.c).
 *
 * A submitted step queues everything a sampled step does (the batch's copy, the forward
 * pass or its graph, the argmax or the sampling kernels, the copy of the results back) and
 * records an event behind it; collect waits for that event and reads the results. Two steps
 * may be uncollected, so every host buffer a step's copies read or write takes turns
 * (r->turn: the batch metadata, the graphs' batch, the argmax ids, the packed sampling rows
 * and their results; in kernels/cuda/attention.cu the attention plan's, by the step's
 * parity): the copies of the step in flight may still use one while the next step fills
 * the other. Device buffers need no turns: the stream orders the next step's writes after
 * the step before's reads.
 *
 * A step with allow_late rows (masks the engine makes once the step before has landed)
 * queues its forward pass at submit and its sampling, the copy of its results and its event
 * at submit_masks: the host makes the masks while the device runs the forward pass.
 *
 * Pending tokens (struct pgd__step_seq's pending) are the ids the step before sampled,
 * still on the device: after the batch's copy, put_pending's kernel writes them into the
 * batch's token ids, before the embedding reads them. The host's copy of the batch holds 0
 * there (the embedding's host-side check reads it). */
#include "config.h"
#include "runtime/runner/runner_internal.h"
#include "runtime/sample/sample_rows.h"
#include "runtime/base/clock.h"
#include "runtime/base/device.h"
#include <stdlib.h>
#include <string.h>

void pgd__runner_async_env(struct pgd__runner *r)
{
    const char *p = getenv("PGD_CUDA_ASYNC_PENALTIES"), *m = getenv("PGD_CUDA_ASYNC_MASKS");
    r->env_async_penalties = !(p && !strcmp(p, "0"));
    r->env_async_masks = !(m && !strcmp(m, "0"));
}

#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#ifdef PGD_HAVE_CUDA
struct async_slot {
    bool uncollected;
    bool waits_masks;                  /* submitted with allow_late rows: not sampled yet */
    int n_rows;
    bool greedy;                       /* every row a plain greedy sample: r->greedy[turn] */
    const struct pgd__sample_row *rows;    /* borrowed from the submitter until collected */
    struct pgd_cuda_event *done;       /* owned; behind the step's copy of its results */
};

struct pgd__runner_async {
    struct async_slot slot[2];         /* by turn */
    int n_uncollected;
    int32_t *pairs_host[2];            /* by turn: pinned [2 * max_num_seqs] */
    int32_t *pairs_dev;                /* device [2 * max_num_seqs] */
    int n_pairs;                       /* the submitting step's pending tokens */
    /* The submitting step's token ids on the device (where put_pending wrote), for the
     * penalties of rows whose last token is pending (pending_at). */
    const int32_t *batch_ids;
    /* The last submitted step's sampled ids on the device, prev_stride int32s apart
     * (prev_rows of them): where the next step's pending tokens come from. NULL: none. */
    const int32_t *prev_ids;
    int prev_stride, prev_rows;
    /* The last submitted step's logits (device), while it waits for its masks: the next
     * forward pass, which reuses their memory, is queued only after its sampling. */
    const float *late_logits;
};

void pgd__runner_async_free(struct pgd__runner *r)
{
    struct pgd__runner_async *a = r->async;
    if (!a)
        return;
    for (int t = 0; t < 2; t++) {
        pgd_cuda_event_destroy(a->slot[t].done);
        pgd_cuda_host_free(a->pairs_host[t]);
    }
    pgd_cuda_free(a->pairs_dev);
    free(a);
    r->async = NULL;
}

static enum pgd_status async_init(struct pgd__runner *r, char *err, size_t errlen)
{
    struct pgd__runner_async *a = calloc(1, sizeof *a);
    if (!a)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "runner: out of memory");
    r->async = a;
    size_t bytes = 2 * (size_t)r->params.max_num_seqs * sizeof(int32_t);
    for (int t = 0; t < 2; t++) {
        if (pgd_cuda_event_create(&a->slot[t].done, err, errlen))
            return PGD_ERR_DEVICE;
        if (!(a->pairs_host[t] = pgd_cuda_host_alloc(bytes)))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "runner: out of pinned memory for "
                            "the pending tokens of %d sequences", r->params.max_num_seqs);
    }
    if (!(a->pairs_dev = pgd_cuda_malloc(bytes)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "runner: out of GPU memory for the "
                        "pending tokens of %d sequences", r->params.max_num_seqs);
    return PGD_OK;
}

int pgd__runner_uncollected(const struct pgd__runner *r)
{
    return r->async ? r->async->n_uncollected : 0;
}

bool pgd__runner_can_submit(const struct pgd__runner *r)
{
    return r->params.device == PGD_DEVICE_CUDA && !r->tp_serving;
}

bool pgd__runner_submit_penalties(const struct pgd__runner *r)
{
    return pgd__runner_can_submit(r) && r->env_async_penalties;
}

bool pgd__runner_submit_masks(const struct pgd__runner *r)
{
    return pgd__runner_can_submit(r) && r->env_async_masks;
}

/* The pending tokens' pairs (batch row of the token, row of the step before) into this
 * turn's pinned buffer; refuses a row the step before did not sample. */
static enum pgd_status pending_pairs(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                     int n_seqs, char *err, size_t errlen)
{
    struct pgd__runner_async *a = r->async;
    int32_t *p = a->pairs_host[r->turn];
    int row = 0, n = 0;
    for (int i = 0; i < n_seqs; row += seqs[i].n_new, i++) {
        if (!seqs[i].pending)
            continue;
        if (!a->prev_ids || seqs[i].pending_row < 0 || seqs[i].pending_row >= a->prev_rows ||
            seqs[i].n_new != 1)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step: sequence %d's pending "
                            "token is row %d of the step before (%d rows sampled), with %d new "
                            "tokens (must be 1)", i, seqs[i].pending_row,
                            a->prev_ids ? a->prev_rows : 0, seqs[i].n_new);
        p[2 * n] = row;
        p[2 * n + 1] = seqs[i].pending_row;
        n++;
    }
    a->n_pairs = n;
    return PGD_OK;
}

enum pgd_status pgd__runner_put_pending(struct pgd__runner *r, int32_t *token_ids, char *err,
                                        size_t errlen)
{
    struct pgd__runner_async *a = r->async;
    if (!r->submitting || !a)
        return PGD_OK;
    a->batch_ids = token_ids;
    if (a->n_pairs == 0)
        return PGD_OK;
    if (pgd_cuda_copy_h2d_async(r->cuda, a->pairs_dev, a->pairs_host[r->turn],
                                2 * (size_t)a->n_pairs * sizeof(int32_t), err, errlen) ||
        pgd_cuda_put_pending(r->cuda, token_ids, a->pairs_dev, a->n_pairs, a->prev_ids,
                             a->prev_stride, err, errlen))
        return PGD_ERR_DEVICE;
    return PGD_OK;
}

enum pgd_status pgd__runner_finish_submit(struct pgd__runner *r, const float *logits,
                                          int n_logits, const struct pgd__sample_row *rows,
                                          int32_t *ids_dev, char *err, size_t errlen)
{
    struct pgd__runner_async *a = r->async;
    struct async_slot *s = &a->slot[r->turn];
    bool greedy = true, late = false;
    for (int i = 0; i < n_logits; i++) {
        greedy = greedy && pgd__sample_row_plain_greedy(&rows[i]);
        late = late || rows[i].allow_late;
    }
    enum pgd_status st = PGD_OK;
    a->prev_ids = NULL;
    a->prev_stride = 1;
    s->n_rows = n_logits;
    s->greedy = greedy;
    s->rows = rows;
    s->waits_masks = late;
    if (late) {
        /* The sampling waits for the masks: pgd__runner_step_submit_masks. */
        if (!pgd__runner_submit_masks(r))
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step submit: rows whose masks "
                            "come late, on a runner that samples when the step is submitted "
                            "(PGD_CUDA_ASYNC_MASKS is 0)");
        a->late_logits = logits;
        return PGD_OK;
    }
    if (n_logits > 0 && greedy) {
        int32_t *ids = ids_dev ? ids_dev
                               : pgd__arena_alloc(&r->arena, (size_t)n_logits * sizeof(int32_t));
        if (!ids)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: no GPU memory for ids");
        if ((st = pgd__runner_greedy_reserve(r, n_logits, err, errlen)))
            return st;
        if (pgd_cuda_argmax(r->cuda, logits, n_logits, r->model->desc.vocab_size, ids, err,
                            errlen) ||
            pgd_cuda_copy_d2h_async(r->cuda, r->greedy[r->turn], ids,
                                    (size_t)n_logits * sizeof(int32_t), err, errlen))
            return PGD_ERR_DEVICE;
        a->prev_ids = ids;
    } else if (n_logits > 0) {
        if ((st = pgd__runner_sample_enqueue(r, logits, n_logits, rows, a->batch_ids, r->turn,
                                             &a->prev_ids, &a->prev_stride, err, errlen)))
            return st;
    }
    a->prev_rows = n_logits;
    if (pgd_cuda_event_record(r->cuda, s->done, err, errlen))
        return PGD_ERR_DEVICE;
    return PGD_OK;
}

enum pgd_status pgd__runner_step_submit(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const struct pgd__sample_row *rows,
                                        char *err, size_t errlen)
{
    if (!pgd__runner_can_submit(r))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "step submit: async steps run on one "
                        "GPU (this runner is on %s%s)", pgd__device_name(r->params.device),
                        r->tp_serving ? ", tensor parallel" : "");
    enum pgd_status st;
    if (!r->async && (st = async_init(r, err, errlen)))
        return st;
    struct pgd__runner_async *a = r->async;
    if (a->n_uncollected >= 2)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step submit: two submitted steps "
                        "are not collected yet (at most two may be)");
    if (a->slot[r->turn].uncollected && a->slot[r->turn].waits_masks)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step submit: the last submitted "
                        "step waits for its masks (pgd__runner_step_submit_masks first)");
    /* The other turn than the step in flight's (the last submitted one). */
    r->turn = 1 - r->turn;
    r->meta_host = r->meta_pin[r->turn];
    if ((st = pending_pairs(r, seqs, n_seqs, err, errlen)))
        return st;
    r->submitting = true;
    a->batch_ids = NULL;
    st = pgd__runner_step_sample(r, seqs, n_seqs, rows, NULL, err, errlen);
    r->submitting = false;
    a->n_pairs = 0;
    if (st) {
        a->prev_ids = NULL;
        return st;
    }
    a->slot[r->turn].uncollected = true;
    a->n_uncollected++;
    return PGD_OK;
}

enum pgd_status pgd__runner_step_submit_masks(struct pgd__runner *r, char *err, size_t errlen)
{
    struct pgd__runner_async *a = r->async;
    struct async_slot *s = a ? &a->slot[r->turn] : NULL;
    if (!s || !s->uncollected || !s->waits_masks)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step submit_masks: the last "
                        "submitted step waits for no masks");
    /* Every context is whole by now (the step before landed): no pending token is counted
     * from the batch, and the masks are packed with the rows. */
    enum pgd_status st = pgd__runner_sample_enqueue(r, a->late_logits, s->n_rows, s->rows,
                                                    a->batch_ids, r->turn, &a->prev_ids,
                                                    &a->prev_stride, err, errlen);
    if (st == PGD_OK && pgd_cuda_event_record(r->cuda, s->done, err, errlen))
        st = PGD_ERR_DEVICE;
    if (st) {
        a->prev_ids = NULL;     /* the next step can have no pending token */
        return st;
    }
    s->waits_masks = false;
    a->late_logits = NULL;
    a->prev_rows = s->n_rows;
    return PGD_OK;
}

enum pgd_status pgd__runner_step_collect(struct pgd__runner *r, struct pgd__sample_result *res,
                                         int *n_rows, char *err, size_t errlen)
{
    struct pgd__runner_async *a = r->async;
    if (!a || a->n_uncollected == 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step collect: no submitted step "
                        "waits to be collected");
    /* The oldest: with two uncollected, the one before the last submitted (r->turn). */
    const int t = a->n_uncollected == 2 || !a->slot[r->turn].uncollected ? 1 - r->turn
                                                                         : r->turn;
    struct async_slot *s = &a->slot[t];
    if (s->waits_masks) {
        /* Never sampled (its masks never came, or queueing their sampling failed): it is
         * let go, so that the runner steps on. */
        s->waits_masks = false;
        s->uncollected = false;
        a->n_uncollected--;
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step collect: the step was never "
                        "sampled (its masks did not come: pgd__runner_step_submit_masks)");
    }
    const double t0 = pgd__now_s();
    const int rc = pgd_cuda_event_sync(s->done, err, errlen);
    r->device_s += pgd__now_s() - t0;
    s->uncollected = false;
    a->n_uncollected--;
    if (rc)
        return PGD_ERR_DEVICE;
    if (s->greedy) {
        for (int i = 0; i < s->n_rows; i++) {
            memset(&res[i].chosen, 0, sizeof res[i].chosen);
            res[i].token = r->greedy[t][i];
        }
    } else if (s->n_rows > 0) {
        pgd__runner_sample_unpack(r, t, s->rows, s->n_rows, res);
    }
    *n_rows = s->n_rows;
    return PGD_OK;
}

#else /* no CUDA: no async pair (the engine runs each step to its end when it submits it) */

void pgd__runner_async_free(struct pgd__runner *r) { (void)r; }
int pgd__runner_uncollected(const struct pgd__runner *r) { (void)r; return 0; }
bool pgd__runner_can_submit(const struct pgd__runner *r) { (void)r; return false; }
bool pgd__runner_submit_penalties(const struct pgd__runner *r) { (void)r; return false; }
bool pgd__runner_submit_masks(const struct pgd__runner *r) { (void)r; return false; }

enum pgd_status pgd__runner_put_pending(struct pgd__runner *r, int32_t *token_ids, char *err,
                                        size_t errlen)
{
    (void)r, (void)token_ids, (void)err, (void)errlen;
    return PGD_OK;
}

enum pgd_status pgd__runner_step_submit(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                        int n_seqs, const struct pgd__sample_row *rows,
                                        char *err, size_t errlen)
{
    (void)r, (void)seqs, (void)n_seqs, (void)rows;
    return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "step submit: async steps need a CUDA "
                    "build");
}

enum pgd_status pgd__runner_step_submit_masks(struct pgd__runner *r, char *err, size_t errlen)
{
    (void)r;
    return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step submit_masks: the last submitted "
                    "step waits for no masks");
}

enum pgd_status pgd__runner_step_collect(struct pgd__runner *r, struct pgd__sample_result *res,
                                         int *n_rows, char *err, size_t errlen)
{
    (void)r, (void)res, (void)n_rows;
    return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "step collect: no submitted step waits "
                    "to be collected");
}
#endif
