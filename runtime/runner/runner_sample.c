/* The runner's sampling (see runner_internal.h): the CPU sampler over host rows, or on a GPU
 * the sampling kernels over the device logits with one host-to-device copy of the packed
 * rows and one device-to-host copy of the results (both pinned) per step. */
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
    char *pack_host;                       /* pinned [pack_cap] */
    char *pack_dev;                        /* device [pack_cap] */
    size_t pack_cap;
    struct pgd_cuda_sample_out *out_host;  /* pinned [out_cap] */
    struct pgd_cuda_sample_out *out_dev;   /* device [out_cap] */
    int out_cap;
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
    pgd_cuda_host_free(s->pack_host);
    pgd_cuda_free(s->pack_dev);
    pgd_cuda_host_free(s->out_host);
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
/* Grows the packed-rows and result buffers (by half again plus slack). Waits for the
 * stream first: a queued copy may still use the old ones. */
static enum pgd_status reserve(struct pgd__runner *r, size_t pack_bytes, int rows, char *err,
                               size_t errlen)
{
    struct pgd__runner_sampling *s = r->samp;
    if (pack_bytes <= s->pack_cap && rows <= s->out_cap)
        return PGD_OK;
    if (pgd__runner_wait_device(r, err, errlen))
        return PGD_ERR_DEVICE;
    if (pack_bytes > s->pack_cap) {
        pgd_cuda_host_free(s->pack_host);
        pgd_cuda_free(s->pack_dev);
        size_t cap = pack_bytes + pack_bytes / 2 + 4096;
        s->pack_host = pgd_cuda_host_alloc(cap);
        s->pack_dev = pgd_cuda_malloc(cap);
        s->pack_cap = s->pack_host && s->pack_dev ? cap : 0;
        if (!s->pack_cap)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of memory for %zu "
                            "bytes of packed rows", cap);
    }
    if (rows > s->out_cap) {
        pgd_cuda_host_free(s->out_host);
        pgd_cuda_free(s->out_dev);
        int cap = rows + rows / 2 + 16;
        s->out_host = pgd_cuda_host_alloc((size_t)cap * sizeof *s->out_host);
        s->out_dev = pgd_cuda_malloc((size_t)cap * sizeof *s->out_dev);
        s->out_cap = s->out_host && s->out_dev ? cap : 0;
        if (!s->out_cap)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampling: out of memory for %d "
                            "result rows", cap);
    }
    return PGD_OK;
}

static enum pgd_status sample_gpu(struct pgd__runner *r, const float *logits, int n,
                                  const struct pgd__sample_row *rows,
                                  struct pgd__sample_result *res, char *err, size_t errlen)
{
    struct pgd__runner_sampling *s = r->samp;
    enum pgd_status st = reserve(r, pgd__sample_pack_bytes(rows, n, s->vocab), n, err, errlen);
    if (st)
        return st;
    size_t used = 0;
    if ((st = pgd__sample_pack(&s->packer, rows, n, s->pack_host, &used, err, errlen)))
        return st;
    /* The packed layout (sample_rows.h): n row parameter records, then the int32 pool
     * they index into; the same offsets in the device copy. */
    const struct pgd_cuda_sample_row *params = (const struct pgd_cuda_sample_row *)s->pack_dev;
    const int32_t *pool = (const int32_t *)(params + n);
    if (pgd_cuda_copy_h2d_async(r->cuda, s->pack_dev, s->pack_host, used, err, errlen) ||
        pgd_cuda_sample(r->cuda, logits, n, s->vocab, params, pool, s->work, s->work_rows,
                        s->out_dev, err, errlen) ||
        pgd_cuda_copy_d2h_async(r->cuda, s->out_host, s->out_dev, (size_t)n * sizeof *s->out_host,
                                err, errlen) ||
        pgd__runner_wait_device(r, err, errlen))
        return PGD_ERR_DEVICE;
    pgd__sample_unpack(s->out_host, rows, n, res);
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
