/* The runner's sampling (see runner_internal.h): the CPU sampler over host rows, or on a GPU
 * the sampling kernels over the device logits with one host-to-device copy of the packed
 * rows and one device-to-host copy of the results (both pinned) per step. The pinned
 * buffers come in two, by the runner's turn: under async steps the copies of the step in
 * flight may still use one while the next step fills the other. */
#include "config.h"
#include "runtime/runner/runner_internal.h"
#include "runtime/sample/sample_rows.h"
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

/* Rows the kernels work on at once (their float32 scratch is this many vocab rows). */
#define WORK_ROWS_MAX 256

struct pgd__runner_sampling {
    int vocab;
    /* CPU */
    struct pgd__sampler sampler;
    float *scratch;                        /* [vocab] */
    /* GPU */
    struct pgd__sample_packer packer;
    char *pack_host[2];                    /* by turn: pinned [pack_host_cap[t]] */
    size_t pack_host_cap[2];
    char *pack_dev;                        /* device [pack_dev_cap] */
    size_t pack_dev_cap;
    struct pgd_cuda_sample_out *out_host[2];   /* by turn: pinned [out_host_cap[t]] */
    int out_host_cap[2];
    struct pgd_cuda_sample_out *out_dev;   /* device [out_dev_cap] */
    int out_dev_cap;
    float *work;                           /* device [work_rows, vocab] */
    int work_rows;
};

static bool on_cuda(const struct pgd__runner *r) { return r->params.device == PGD_DEVICE_CUDA; }

void pgd__runner_sampling_fini(struct pgd__runner *r)
{
    struct pgd__runner_sampling *s = r->samp;
    if (!s)
        return;
    pgd__sampler_fini(&s->sampler);
    free(s->scratch);
    pgd__sample_packer_fini(&s->packer);
#ifdef PGD_HAVE_CUDA
    for (int t = 0; t < 2; t++) {
        pgd_cuda_host_free(s->pack_host[t]);
        pgd_cuda_host_free(s->out_host[t]);
    }
    pgd_cuda_free(s->pack_dev);
    pgd_cuda_free(s->out_dev);
    pgd_cuda_free(s->work);
#endif
    free(s);
    r->samp = NULL;
}

enum pgd_status pgd__runner_sampling_init(struct pgd__runner *r, char *err, size_t errlen)
{
    struct pgd__runner_sampling *s = calloc(1, sizeof *s);
    if (!s)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of memory");
    r->samp = s;
    s->vocab = r->model->desc.vocab_size;
    if (!on_cuda(r)) {
        enum pgd_status st = pgd__sampler_init(&s->sampler, s->vocab, err, errlen);
        if (st)
            return st;
        s->scratch = malloc((size_t)s->vocab * sizeof *s->scratch);
        if (!s->scratch)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of memory for a row of "
                            "%d", s->vocab);
        return PGD_OK;
    }
#ifdef PGD_HAVE_CUDA
    enum pgd_status st = pgd__sample_packer_init(&s->packer, s->vocab, err, errlen);
    if (st)
        return st;
    s->work_rows = r->params.max_num_seqs < WORK_ROWS_MAX ? r->params.max_num_seqs
                                                          : WORK_ROWS_MAX;
    s->work = pgd_cuda_malloc((size_t)s->work_rows * s->vocab * sizeof(float));
    if (!s->work)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of GPU memory for %d "
                        "scratch rows of %d", s->work_rows, s->vocab);
#endif
    return PGD_OK;
}

#ifdef PGD_HAVE_CUDA
/* Grows turn t's packed-rows and result buffers and the device ones (by half again plus
 * slack). Waits for the stream first: a queued copy may still use the old ones. */
static enum pgd_status reserve(struct pgd__runner *r, int t, size_t pack_bytes, int rows,
                               char *err, size_t errlen)
{
    struct pgd__runner_sampling *s = r->samp;
    const bool pack_host = pack_bytes > s->pack_host_cap[t];
    const bool pack_dev = pack_bytes > s->pack_dev_cap;
    const bool out_host = rows > s->out_host_cap[t], out_dev = rows > s->out_dev_cap;
    if (!pack_host && !pack_dev && !out_host && !out_dev)
        return PGD_OK;
    if (pgd__runner_wait_device(r, err, errlen))
        return PGD_ERR_DEVICE;
    const size_t pcap = pack_bytes + pack_bytes / 2 + 4096;
    const int ocap = rows + rows / 2 + 16;
    if (pack_host) {
        pgd_cuda_host_free(s->pack_host[t]);
        s->pack_host[t] = pgd_cuda_host_alloc(pcap);
        s->pack_host_cap[t] = s->pack_host[t] ? pcap : 0;
    }
    if (pack_dev) {
        pgd_cuda_free(s->pack_dev);
        s->pack_dev = pgd_cuda_malloc(pcap);
        s->pack_dev_cap = s->pack_dev ? pcap : 0;
    }
    if ((pack_host && !s->pack_host_cap[t]) || (pack_dev && !s->pack_dev_cap))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of memory for %zu bytes of "
                        "packed rows", pcap);
    if (out_host) {
        pgd_cuda_host_free(s->out_host[t]);
        s->out_host[t] = pgd_cuda_host_alloc((size_t)ocap * sizeof *s->out_host[t]);
        s->out_host_cap[t] = s->out_host[t] ? ocap : 0;
    }
    if (out_dev) {
        pgd_cuda_free(s->out_dev);
        s->out_dev = pgd_cuda_malloc((size_t)ocap * sizeof *s->out_dev);
        s->out_dev_cap = s->out_dev ? ocap : 0;
    }
    if ((out_host && !s->out_host_cap[t]) || (out_dev && !s->out_dev_cap))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of memory for %d result "
                        "rows", ocap);
    return PGD_OK;
}

enum pgd_status pgd__runner_sample_enqueue(struct pgd__runner *r, const float *logits, int n,
                                           const struct pgd__sample_row *rows,
                                           const int32_t *batch_ids, int turn,
                                           const int32_t **ids, int *stride, char *err,
                                           size_t errlen)
{
    struct pgd__runner_sampling *s = r->samp;
    enum pgd_status st = reserve(r, turn, pgd__sample_pack_bytes(rows, n, s->vocab), n, err,
                                 errlen);
    if (st)
        return st;
    size_t used = 0;
    if ((st = pgd__sample_pack(&s->packer, rows, n, s->pack_host[turn], &used, err, errlen)))
        return st;
    for (int i = 0; !batch_ids && i < n; i++)
        if (((const struct pgd_cuda_sample_row *)s->pack_host[turn])[i].pend_at >= 0)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "sampling: row %d counts a "
                            "pending token in its penalties, in a step without any", i);
    /* The packed layout (sample_rows.h): n row parameter records, then the int32 pool
     * they index into; the same offsets in the device copy. */
    const struct pgd_cuda_sample_row *params = (const struct pgd_cuda_sample_row *)s->pack_dev;
    const int32_t *pool = (const int32_t *)(params + n);
    if (pgd_cuda_copy_h2d_async(r->cuda, s->pack_dev, s->pack_host[turn], used, err, errlen) ||
        pgd_cuda_sample(r->cuda, logits, n, s->vocab, params, pool, batch_ids, s->work,
                        s->work_rows, s->out_dev, err, errlen) ||
        pgd_cuda_copy_d2h_async(r->cuda, s->out_host[turn], s->out_dev,
                                (size_t)n * sizeof *s->out_host[turn], err, errlen))
        return PGD_ERR_DEVICE;
    *ids = &s->out_dev[0].token;
    *stride = (int)(sizeof *s->out_dev / sizeof(int32_t));
    return PGD_OK;
}

void pgd__runner_sample_unpack(struct pgd__runner *r, int turn, const struct pgd__sample_row *rows,
                               int n, struct pgd__sample_result *res)
{
    pgd__sample_unpack(r->samp->out_host[turn], rows, n, res);
}

static enum pgd_status sample_gpu(struct pgd__runner *r, const float *logits, int n,
                                  const struct pgd__sample_row *rows,
                                  struct pgd__sample_result *res, char *err, size_t errlen)
{
    const int32_t *ids;
    int stride;
    enum pgd_status st = pgd__runner_sample_enqueue(r, logits, n, rows, NULL, r->turn, &ids,
                                                    &stride, err, errlen);
    if (st)
        return st;
    if (pgd__runner_wait_device(r, err, errlen))
        return PGD_ERR_DEVICE;
    pgd__runner_sample_unpack(r, r->turn, rows, n, res);
    return PGD_OK;
}
#endif

/* logits, rows and res are the caller's; rows and logits are read during the call. */
enum pgd_status pgd__runner_sample(struct pgd__runner *r, const float *logits, int n_logits,
                                   const struct pgd__sample_row *rows,
                                   struct pgd__sample_result *res, char *err, size_t errlen)
{
    if (n_logits == 0)
        return PGD_OK;
#ifdef PGD_HAVE_CUDA
    if (on_cuda(r))
        return sample_gpu(r, logits, n_logits, rows, res, err, errlen);
#endif
    struct pgd__runner_sampling *s = r->samp;
    pgd__sample_rows_host(&s->sampler, s->scratch, logits, rows, n_logits, res);
    return PGD_OK;
}
