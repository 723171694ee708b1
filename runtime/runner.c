/* The model runner (see runner.h): sequences in, one flat batch, logits out. */
#include "runtime/runner.h"
#include "runtime/model.h"
#include "runtime/fwd.h"
#include "runtime/device.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>

struct pgd__runner {
    struct pgd__runner_params params;
    struct pgd__model *model;          /* owned */
    struct pgd__kv_cache kv;           /* owned memory */
    struct pgd__arena arena;           /* owned */

    /* Host staging of the flat batch, sized for the largest step. */
    int32_t *token_ids, *positions, *logits_rows;      /* [max_num_batched_tokens] */
    int64_t *slot_mapping;                             /* [max_num_batched_tokens] */
    int32_t *query_start, *seq_lens;                   /* [max_num_seqs + 1] */
    int32_t *block_tables;                             /* [max_num_seqs, bt_cols] */
    int bt_cols;
    float *logits;                                     /* [logits_cap, vocab] */
    int logits_cap;
};

void pgd__runner_default_params(struct pgd__runner_params *p)
{
    *p = (struct pgd__runner_params){
        .device = PGD_DEVICE_CPU,
        .block_size = 16,
        .num_blocks = 0,
        .kv_cache_bytes = (size_t)256 << 20,
        .max_num_batched_tokens = 2048,
        .max_num_seqs = 256,
    };
}

const struct pgd_model_desc *pgd__runner_desc(const struct pgd__runner *r)
{
    return &r->model->desc;
}
int pgd__runner_num_blocks(const struct pgd__runner *r) { return r->kv.num_blocks; }
int pgd__runner_block_size(const struct pgd__runner *r) { return r->kv.block_size; }
const struct pgd__model *pgd__runner_model(const struct pgd__runner *r) { return r->model; }

enum pgd_status pgd__runner_create(const struct pgd__runner_params *p, struct pgd__runner **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    if (p->block_size <= 0 || p->block_size > 1024 || p->max_num_batched_tokens <= 0 ||
        p->max_num_seqs <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "runner: block_size %d (1..1024), max_num_batched_tokens %d and "
                        "max_num_seqs %d must be positive", p->block_size,
                        p->max_num_batched_tokens, p->max_num_seqs);
    if (!pgd__device_available(p->device))
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "device %s is not available in this "
                        "build or on this machine", pgd__device_name(p->device));
    struct pgd__runner *r = calloc(1, sizeof *r);
    if (!r)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    r->params = *p;
    pgd__arena_init(&r->arena, p->device);
    enum pgd_status st = pgd__model_load(p->model_dir, p->registry, p->device, &r->model, err,
                                         errlen);
    if (st) {
        free(r);
        return st;
    }
    const struct pgd_model_desc *d = &r->model->desc;
    int num_blocks = p->num_blocks;
    size_t block_bytes = pgd__kv_cache_block_bytes(d->n_layers, p->block_size, d->n_kv_heads,
                                                   d->head_dim, r->model->dtype);
    if (num_blocks <= 0)
        num_blocks = (int)(p->kv_cache_bytes / block_bytes);
    if (num_blocks <= 0) {
        pgd__runner_destroy(r);
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "kv cache: %zu bytes hold no block of %zu bytes", p->kv_cache_bytes,
                        block_bytes);
    }
    st = pgd__kv_cache_init(&r->kv, p->device, r->model->dtype, d->n_layers, num_blocks,
                            p->block_size, d->n_kv_heads, d->head_dim, err, errlen);
    if (st) {
        pgd__runner_destroy(r);
        return st;
    }
    int T = p->max_num_batched_tokens, S = p->max_num_seqs;
    r->bt_cols = 1;
    r->token_ids = malloc((size_t)T * sizeof(int32_t));
    r->positions = malloc((size_t)T * sizeof(int32_t));
    r->logits_rows = malloc((size_t)T * sizeof(int32_t));
    r->slot_mapping = malloc((size_t)T * sizeof(int64_t));
    r->query_start = malloc((size_t)(S + 1) * sizeof(int32_t));
    r->seq_lens = malloc((size_t)S * sizeof(int32_t));
    r->block_tables = malloc((size_t)S * sizeof(int32_t));
    if (!r->token_ids || !r->positions || !r->logits_rows || !r->slot_mapping ||
        !r->query_start || !r->seq_lens || !r->block_tables) {
        pgd__runner_destroy(r);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "runner: out of memory for batch buffers");
    }
    PGD_INFO("kv cache: %d blocks of %d tokens (%.1f MiB, %zu bytes a block) on %s", num_blocks,
             p->block_size, (double)block_bytes * num_blocks / (1 << 20), block_bytes,
             pgd__device_name(p->device));
    *out = r;
    return PGD_OK;
}

void pgd__runner_destroy(struct pgd__runner *r)
{
    if (!r)
        return;
    pgd__kv_cache_fini(&r->kv);
    pgd__arena_fini(&r->arena);
    pgd__model_destroy(r->model);
    free(r->token_ids);
    free(r->positions);
    free(r->logits_rows);
    free(r->slot_mapping);
    free(r->query_start);
    free(r->seq_lens);
    free(r->block_tables);
    free(r->logits);
    free(r);
}

/* Checks the step against the runner's limits and grows the host buffers that depend on
 * it (block table width, logits rows). */
static enum pgd_status check_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                  int n_seqs, int *n_tokens, int *n_logits, int *max_blocks,
                                  char *err, size_t errlen)
{
    int bs = r->kv.block_size;
    if (n_seqs <= 0 || n_seqs > r->params.max_num_seqs)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "step: %d sequences (must be 1..%d)", n_seqs, r->params.max_num_seqs);
    long total = 0, logits = 0;
    int mb = 1;
    for (int s = 0; s < n_seqs; s++) {
        const struct pgd__step_seq *q = &seqs[s];
        if (q->n_new <= 0 || q->n_computed < 0 || q->n_logits < 0 || q->n_logits > q->n_new)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "step: sequence %d has n_new %d, n_computed %d, n_logits %d", s,
                            q->n_new, q->n_computed, q->n_logits);
        long len = (long)q->n_computed + q->n_new;
        if ((long)q->n_blocks * bs < len)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "step: sequence %d has %ld tokens but %d blocks of %d", s, len,
                            q->n_blocks, bs);
        for (int b = 0; b < q->n_blocks; b++)
            if (q->block_table[b] < 0 || q->block_table[b] >= r->kv.num_blocks)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                                "step: sequence %d block %d is %d, outside the pool of %d", s,
                                b, q->block_table[b], r->kv.num_blocks);
        total += q->n_new;
        logits += q->n_logits;
        if (q->n_blocks > mb)
            mb = q->n_blocks;
    }
    if (total > r->params.max_num_batched_tokens)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "step: %ld tokens exceed max_num_batched_tokens %d", total,
                        r->params.max_num_batched_tokens);
    if (mb > r->bt_cols) {
        int32_t *bt = realloc(r->block_tables, (size_t)r->params.max_num_seqs * mb * sizeof *bt);
        if (!bt)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: out of memory for block tables");
        r->block_tables = bt;
        r->bt_cols = mb;
    }
    if (logits > r->logits_cap) {
        float *lg = realloc(r->logits, (size_t)logits * r->model->desc.vocab_size * sizeof *lg);
        if (!lg)
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: out of memory for %ld logits rows",
                            logits);
        r->logits = lg;
        r->logits_cap = (int)logits;
    }
    *n_tokens = (int)total;
    *n_logits = (int)logits;
    *max_blocks = mb;
    return PGD_OK;
}

enum pgd_status pgd__runner_step(struct pgd__runner *r, const struct pgd__step_seq *seqs,
                                 int n_seqs, const float **logits, char *err, size_t errlen)
{
    int n_tokens = 0, n_logits = 0, max_blocks = 0;
    enum pgd_status st = check_step(r, seqs, n_seqs, &n_tokens, &n_logits, &max_blocks, err,
                                    errlen);
    if (st)
        return st;
    int bs = r->kv.block_size, t = 0, li = 0, max_len = 0;
    for (int s = 0; s < n_seqs; s++) {
        const struct pgd__step_seq *q = &seqs[s];
        r->query_start[s] = t;
        r->seq_lens[s] = q->n_computed + q->n_new;
        if (r->seq_lens[s] > max_len)
            max_len = r->seq_lens[s];
        int32_t *row = r->block_tables + (size_t)s * max_blocks;
        memcpy(row, q->block_table, (size_t)q->n_blocks * sizeof *row);
        for (int b = q->n_blocks; b < max_blocks; b++)
            row[b] = 0;
        for (int i = 0; i < q->n_new; i++, t++) {
            int pos = q->n_computed + i;
            r->token_ids[t] = q->tokens[i];
            r->positions[t] = pos;
            r->slot_mapping[t] = (int64_t)q->block_table[pos / bs] * bs + pos % bs;
            if (i >= q->n_new - q->n_logits)
                r->logits_rows[li++] = t;
        }
    }
    r->query_start[n_seqs] = t;

    pgd__arena_reset(&r->arena);
    struct pgd_fwd f = {
        .device = r->params.device, .act_dtype = r->model->dtype,
        .n_tokens = n_tokens, .token_ids = r->token_ids, .positions = r->positions,
        .slot_mapping = r->slot_mapping, .n_seqs = n_seqs, .query_start = r->query_start,
        .seq_lens = r->seq_lens, .block_tables = r->block_tables, .max_blocks = max_blocks,
        .max_seq_len = max_len, .n_logits = n_logits, .logits_rows = r->logits_rows,
        .logits = r->logits, .vocab_size = r->model->desc.vocab_size, .kv = &r->kv,
        .arena = &r->arena, .status = PGD_OK,
    };
    r->model->plugin->arch->forward(r->model->impl, &f);
    if (f.status != PGD_OK)
        return pgd_errf(err, errlen, f.status, "forward (%s plugin): %s", r->model->plugin->name,
                        f.err);
    *logits = r->logits;
    return PGD_OK;
}
