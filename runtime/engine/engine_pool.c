/* Pooling requests (engines of task embed): which requests an engine takes, which hidden
 * rows a pooling sequence needs in a step, and how they become its vector (LAST: the last
 * prompt token's row; MEAN: the mean of every row, summed over the prompt's chunks; CLS:
 * row 0), normalized when asked, emitted as the request's one output.
 *
 * The rows are the model's last hidden state after its final norm (the runner's pooling
 * step, pgd__runner_step_hidden), as vLLM's pooler takes them from a decoder. */
#include "runtime/engine/engine_internal.h"
#include "runtime/base/mem.h"
#include <jansson.h>
#include <math.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

enum pgd_status pgd__pool_validate(const struct pgd_engine *e, const struct pgd_request_params *rp,
                                   char *err, size_t errlen)
{
    bool embed = e->p.task == PGD_TASK_EMBED;
    if (!embed && rp->pooling == PGD_POOLING_NONE)
        return PGD_OK;
    if (!embed)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "request: pooling %s needs an engine "
                        "of task embed; this one generates", pgd_pooling_type_str(rp->pooling));
    if (rp->pooling != PGD_POOLING_NONE && rp->pooling != PGD_POOLING_LAST &&
        rp->pooling != PGD_POOLING_MEAN && rp->pooling != PGD_POOLING_CLS)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "request: pooling %d is not one of "
                        "LAST, MEAN, CLS", (int)rp->pooling);
    if (rp->sampling.n != 1)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "request: a pooling request has one "
                        "output: sampling.n must be 1 (got %d)", rp->sampling.n);
    return PGD_OK;
}

enum pgd_status pgd_pooler_config_parse(const char *json, enum pgd_pooling_type *type,
                                        bool *normalize, char *err, size_t errlen)
{
    *type = PGD_POOLING_LAST;       /* vLLM's embed defaults for a decoder */
    *normalize = true;
    if (!json || !*json)
        return PGD_OK;
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    enum pgd_status st = PGD_OK;
    const char *key;
    json_t *v;
    if (!json_is_object(j)) {
        st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "pooler_config: %s", j ? "expected a "
                      "JSON object, e.g. '{\"pooling_type\": \"MEAN\"}'" : je.text);
        json_decref(j);
        return st;
    }
    json_object_foreach(j, key, v) {
        const char *s = json_string_value(v);
        if (!strcmp(key, "pooling_type") && s && !strcasecmp(s, "LAST"))
            *type = PGD_POOLING_LAST;
        else if (!strcmp(key, "pooling_type") && s && !strcasecmp(s, "MEAN"))
            *type = PGD_POOLING_MEAN;
        else if (!strcmp(key, "pooling_type") && s && !strcasecmp(s, "CLS"))
            *type = PGD_POOLING_CLS;
        else if (!strcmp(key, "pooling_type"))
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "pooler_config: pooling_type %s is "
                          "not supported (LAST, MEAN or CLS: one vector a prompt)",
                          s ? s : "(not a string)");
        else if (!strcmp(key, "normalize") && json_is_boolean(v))
            *normalize = json_is_true(v);
        else if (!strcmp(key, "normalize"))
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "pooler_config: normalize must be "
                          "true or false");
        else
            st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "pooler_config: \"%s\" is not "
                          "supported (pooling_type and normalize are)", key);
        if (st)
            break;
    }
    json_decref(j);
    return st;
}

int pgd__pool_n_rows(enum pgd_pooling_type pooling, int n_computed, int n_new, bool completes)
{
    switch (pooling) {
    case PGD_POOLING_LAST: return completes ? 1 : 0;
    case PGD_POOLING_MEAN: return n_new;
    /* Rows are the last n_logits new tokens: row 0 needs the whole first chunk. */
    case PGD_POOLING_CLS: return n_computed == 0 ? n_new : 0;
    case PGD_POOLING_NONE: break;
    }
    return 0;
}

/* The request's vector as float32: the mean divides by the prompt's length; normalize
 * divides by the L2 norm (at least 1e-12, as torch's F.normalize). Owned by the caller. */
static float *pool_finish(const struct pgd__req *rq, int d)
{
    float *v = malloc((size_t)d * sizeof *v);
    if (!v)
        pgd__oom("engine: pooled vector", (size_t)d * sizeof *v);
    double scale = rq->pooling == PGD_POOLING_MEAN ? 1.0 / rq->n_prompt : 1.0;
    double ss = 0;
    for (int i = 0; i < d; i++)
        ss += rq->pool_acc[i] * scale * rq->pool_acc[i] * scale;
    if (rq->normalize)
        scale /= fmax(sqrt(ss), 1e-12);
    for (int i = 0; i < d; i++)
        v[i] = (float)(rq->pool_acc[i] * scale);
    return v;
}

void pgd__pool_take(struct pgd_engine *e, struct pgd__seq *seq, const struct pgd__step_seq *ss,
                    const float *rows)
{
    struct pgd__child *c = seq->owner;
    struct pgd__req *rq = c->req;
    int d = e->be.hidden_size;
    /* A step from position 0 starts the vector afresh: the first chunk, or a recomputation
     * after a preemption (MEAN and CLS never take prefix hits, so they always start at 0). */
    if (ss->n_computed == 0)
        memset(rq->pool_acc, 0, (size_t)d * sizeof *rq->pool_acc);
    int take = rq->pooling == PGD_POOLING_MEAN ? ss->n_logits : (ss->n_logits > 0 ? 1 : 0);
    for (int j = 0; j < take; j++)
        for (int i = 0; i < d; i++) {
            double x = rows[(size_t)j * d + i];
            rq->pool_acc[i] = rq->pooling == PGD_POOLING_MEAN ? rq->pool_acc[i] + x : x;
        }
    if (ss->n_computed + ss->n_new < seq->n_tokens)
        return;                     /* more of the prompt in later steps */
    pgd__emit_embedding(e, c, pool_finish(rq, d), d);
}
