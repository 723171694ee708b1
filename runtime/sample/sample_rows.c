/* A step's logits rows: the host sampling path and the packing for the device kernels. */
#include "runtime/sample/sample_rows.h"
#include <stdlib.h>
#include <string.h>

bool pgd__sample_row_plain_greedy(const struct pgd__sample_row *r)
{
    if (r->kind != PGD__ROW_SAMPLE || r->n_top >= 0 || r->ctx.allow || r->allow_late)
        return false;
    const struct pgd_sampling_params *sp = r->ctx.sp;
    return sp->temperature < 1e-5f && sp->n_logit_bias == 0 && sp->presence_penalty == 0 &&
           sp->frequency_penalty == 0 && sp->repetition_penalty == 1.0f &&
           (sp->min_tokens == 0 || r->ctx.n_out >= sp->min_tokens);
}

void pgd__sample_rows_host(struct pgd__sampler *s, float *scratch, const float *logits,
                           const struct pgd__sample_row *rows, int n_rows,
                           struct pgd__sample_result *res)
{
    int V = s->vocab;
    for (int i = 0; i < n_rows; i++) {
        const struct pgd__sample_row *r = &rows[i];
        const float *raw = logits + (size_t)i * V;
        struct pgd__sample_result *o = &res[i];
        o->token = -1;
        memset(&o->chosen, 0, sizeof o->chosen);
        if (r->kind == PGD__ROW_SAMPLE) {
            memcpy(scratch, raw, (size_t)V * sizeof *scratch);
            o->token = pgd__sampler_sample(s, &r->ctx, scratch);
            if (r->n_top >= 0)
                pgd__logprobs(raw, V, o->token, r->n_top, &o->chosen, o->top);
        } else if (r->kind == PGD__ROW_TARGET) {
            pgd__logprobs(raw, V, r->target, r->n_top > 0 ? r->n_top : 0, &o->chosen, o->top);
        }
    }
}

/* ---- packing ------------------------------------------------------------------------------ */

enum pgd_status pgd__sample_packer_init(struct pgd__sample_packer *pk, int vocab, char *err,
                                        size_t errlen)
{
    memset(pk, 0, sizeof *pk);
    pk->vocab = vocab;
    pk->stamp = calloc((size_t)vocab, sizeof *pk->stamp);
    pk->count = calloc((size_t)vocab, sizeof *pk->count);
    if (!pk->stamp || !pk->count) {
        pgd__sample_packer_fini(pk);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sample packer: no memory for vocab %d",
                        vocab);
    }
    return PGD_OK;
}

void pgd__sample_packer_fini(struct pgd__sample_packer *pk)
{
    free(pk->stamp);
    free(pk->count);
    memset(pk, 0, sizeof *pk);
}

int pgd__sample_row_placeholder(const struct pgd__sample_row *r)
{
    const int n_all = r->ctx.n_prompt + r->ctx.n_out;
    return r->kind == PGD__ROW_SAMPLE && r->pending && n_all > 0 && r->ctx.tokens[n_all - 1] < 0
               ? n_all - 1
               : -1;
}

static bool has_penalty(const struct pgd_sampling_params *sp)
{
    return sp->repetition_penalty != 1.0f || sp->frequency_penalty != 0.0f ||
           sp->presence_penalty != 0.0f;
}

static bool masking(const struct pgd__sample_ctx *c)
{
    return c->n_out < c->sp->min_tokens;
}

/* Pool int32 entries row r needs at most. */
static size_t row_pool_ints(const struct pgd__sample_row *r, int vocab)
{
    if (r->kind != PGD__ROW_SAMPLE)
        return 0;
    const struct pgd__sample_ctx *c = &r->ctx;
    const struct pgd_sampling_params *sp = c->sp;
    size_t n = 2 * (size_t)sp->n_logit_bias;
    if (c->allow)
        n += ((size_t)vocab + 31) / 32;
    if (masking(c))
        n += (size_t)(sp->ignore_eos ? 0 : c->n_eos) + (size_t)sp->n_stop_token_ids;
    if (has_penalty(sp))
        n += 2 * ((size_t)c->n_prompt + (size_t)c->n_out);
    return n;
}

size_t pgd__sample_pack_bytes(const struct pgd__sample_row *rows, int n_rows, int vocab)
{
    size_t ints = 0;
    for (int i = 0; i < n_rows; i++)
        ints += row_pool_ints(&rows[i], vocab);
    size_t b = (size_t)n_rows * sizeof(struct pgd_cuda_sample_row) + ints * sizeof(int32_t);
    return (b + 7) & ~(size_t)7;
}

/* Appends (id, output count) for each distinct in-vocabulary token of the sequence, ids
 * ascending; returns how many. */
static int32_t pack_penalties(struct pgd__sample_packer *pk, const struct pgd__sample_ctx *c,
                              int32_t *pool)
{
    int V = pk->vocab, n_all = c->n_prompt + c->n_out;
    if (++pk->cur == 0) {                    /* stamp wrapped: clear */
        memset(pk->stamp, 0, (size_t)V * sizeof *pk->stamp);
        pk->cur = 1;
    }
    /* Distinct ids first (into the second half of the row's room), then their counts. */
    int32_t *ids = pool + n_all, n = 0;
    for (int i = 0; i < n_all; i++) {
        int32_t t = c->tokens[i];
        if (t < 0 || t >= V)
            continue;
        if (pk->stamp[t] != pk->cur) {
            pk->stamp[t] = pk->cur;
            pk->count[t] = 0;
            ids[n++] = t;
        }
        if (i >= c->n_prompt)
            pk->count[t]++;
    }
    qsort(ids, (size_t)n, sizeof *ids, pgd__cmp_token_id);
    for (int j = 0; j < n; j++) {            /* pool[2j..2j+1] never overtakes ids[j] */
        int32_t t = ids[j];
        pool[2 * j] = t;
        pool[2 * j + 1] = pk->count[t];
    }
    return n;
}

enum pgd_status pgd__sample_pack(struct pgd__sample_packer *pk, const struct pgd__sample_row *rows,
                                 int n_rows, void *buf, size_t *used, char *err, size_t errlen)
{
    if (pk->vocab > PGD_CUDA_SAMPLE_MAX_VOCAB)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "sampling on the device: vocab %d "
                        "exceeds %d", pk->vocab, PGD_CUDA_SAMPLE_MAX_VOCAB);
    struct pgd_cuda_sample_row *P = buf;
    int32_t *pool = (int32_t *)(P + n_rows);
    int32_t off = 0;
    for (int i = 0; i < n_rows; i++) {
        const struct pgd__sample_row *r = &rows[i];
        struct pgd_cuda_sample_row *p = &P[i];
        memset(p, 0, sizeof *p);
        p->kind = r->kind == PGD__ROW_SAMPLE   ? PGD_CUDA_ROW_SAMPLE
                  : r->kind == PGD__ROW_TARGET ? PGD_CUDA_ROW_TARGET
                                               : PGD_CUDA_ROW_SKIP;
        p->n_top = r->n_top > PGD__MAX_TOP ? PGD__MAX_TOP : r->n_top;
        p->pool_off = off;
        p->allow_off = -1;
        p->pend_at = -1;
        p->rep = 1.0f;
        if (r->kind == PGD__ROW_TARGET) {
            if (r->target < 0 || r->target >= pk->vocab)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "sampling: row %d: target "
                                "token %d outside the vocabulary [0, %d)", i, r->target,
                                pk->vocab);
            p->target = r->target;
            if (p->n_top < 0)
                p->n_top = 0;
        }
        if (r->kind != PGD__ROW_SAMPLE)
            continue;
        const struct pgd__sample_ctx *c = &r->ctx;
        const struct pgd_sampling_params *sp = c->sp;
        p->temperature = sp->temperature;
        p->top_p = sp->top_p;
        p->min_p = sp->min_p;
        p->top_k = sp->top_k;
        p->rep = sp->repetition_penalty;
        p->freq = sp->frequency_penalty;
        p->pres = sp->presence_penalty;
        p->seed = c->seed;
        p->child = c->child;
        p->draw = (uint64_t)c->n_out;
        int32_t *q = pool + off;
        if (masking(c)) {
            if (!sp->ignore_eos)
                for (int j = 0; j < c->n_eos; j++)
                    q[p->n_mask++] = c->eos[j];
            for (int j = 0; j < sp->n_stop_token_ids; j++)
                q[p->n_mask++] = sp->stop_token_ids[j];
        }
        q += p->n_mask;
        for (int j = 0; j < sp->n_logit_bias; j++) {
            q[2 * j] = sp->logit_bias[j].token;
            memcpy(&q[2 * j + 1], &sp->logit_bias[j].bias, sizeof(float));
        }
        p->n_bias = sp->n_logit_bias;
        q += 2 * p->n_bias;
        if (has_penalty(sp)) {
            p->n_pen = pack_penalties(pk, c, q);
            /* The placeholder left out of the pairs (a negative id): the kernel counts the
             * token the step puts in its place. */
            if (pgd__sample_row_placeholder(r) >= 0) {
                if (r->pending_at < 0)
                    return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "sampling: row %d: a "
                                    "pending token at batch index %d", i, r->pending_at);
                p->pend_at = r->pending_at;
            }
        }
        off += p->n_mask + 2 * p->n_bias + 2 * p->n_pen;
        if (c->allow) {
            size_t words = ((size_t)pk->vocab + 31) / 32;
            memcpy(pool + off, c->allow, words * sizeof(uint32_t));
            p->allow_off = off;
            off += (int32_t)words;
        }
    }
    *used = (size_t)((char *)(pool + off) - (char *)buf);
    return PGD_OK;
}

void pgd__sample_unpack(const struct pgd_cuda_sample_out *out, const struct pgd__sample_row *rows,
                        int n_rows, struct pgd__sample_result *res)
{
    for (int i = 0; i < n_rows; i++) {
        const struct pgd_cuda_sample_out *o = &out[i];
        struct pgd__sample_result *r = &res[i];
        r->token = rows[i].kind == PGD__ROW_SAMPLE ? o->token : -1;
        memset(&r->chosen, 0, sizeof r->chosen);
        if (rows[i].kind == PGD__ROW_SKIP)
            continue;
        if (rows[i].kind == PGD__ROW_TARGET || rows[i].n_top >= 0) {
            r->chosen.token = rows[i].kind == PGD__ROW_TARGET ? rows[i].target : o->token;
            r->chosen.logprob = o->logprob;
            r->chosen.rank = o->rank;
            int k = o->n_top < 0 ? 0 : o->n_top > PGD__MAX_TOP ? PGD__MAX_TOP : o->n_top;
            for (int j = 0; j < k; j++) {
                r->top[j].token = o->top_id[j];
                r->top[j].logprob = o->top_lp[j];
                r->top[j].rank = j + 1;
            }
        }
    }
}
