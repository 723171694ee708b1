/* Sampling: logits processors, penalties, temperature / min_p / top_k / top_p, Philox. */
#include "runtime/sample/sampler.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLING_EPS 1e-5f

enum pgd_status pgd__sampler_init(struct pgd__sampler *s, int vocab, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->vocab = vocab;
    s->probs = malloc((size_t)vocab * sizeof *s->probs);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->counts = malloc((size_t)vocab * sizeof *s->counts);
    s->stamp = calloc((size_t)vocab, sizeof *s->stamp);
    s->seen = calloc((size_t)vocab, sizeof *s->seen);
    if (!s->probs || !s->cand || !s->counts || !s->stamp || !s->seen) {
        pgd__sampler_fini(s);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "sampler: no memory for vocab %d", vocab);
    }
    return PGD_OK;
}

void pgd__sampler_fini(struct pgd__sampler *s)
{
    free(s->probs);
    free(s->cand);
    free(s->counts);
    free(s->stamp);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

static void mask(float *logits, int vocab, int32_t t)
{
    if (t >= 0 && t < vocab)
        logits[t] = -INFINITY;
}

/* Structured output: -inf for every token whose bit is clear (a word at a time). */
static void apply_allow(const uint32_t *allow, float *logits, int V)
{
    for (int w = 0; w * 32 < V; w++) {
        uint32_t bits = allow[w];
        if (bits == 0xffffffffu)
            continue;
        int end = w * 32 + 32 < V ? w * 32 + 32 : V;
        for (int t = w * 32; t < end; t++)
            if (!((bits >> (t & 31)) & 1))
                logits[t] = -INFINITY;
    }
}

static void apply_processors(struct pgd__sampler *s, const struct pgd__sample_ctx *c,
                             float *logits)
{
    const struct pgd_sampling_params *sp = c->sp;
    int V = s->vocab;
    if (c->allow)
        apply_allow(c->allow, logits, V);
    if (c->n_out < sp->min_tokens) {
        if (!sp->ignore_eos)
            for (int i = 0; i < c->n_eos; i++)
                mask(logits, V, c->eos[i]);
        for (int i = 0; i < sp->n_stop_token_ids; i++)
            mask(logits, V, sp->stop_token_ids[i]);
    }
    for (int i = 0; i < sp->n_logit_bias; i++) {
        int32_t t = sp->logit_bias[i].token;
        if (t >= 0 && t < V)
            logits[t] += sp->logit_bias[i].bias;
    }
    const int32_t *out = c->tokens + c->n_prompt;
    if (sp->repetition_penalty != 1.0f) {
        float r = sp->repetition_penalty;
        for (int i = 0; i < c->n_prompt + c->n_out; i++) {
            int32_t t = c->tokens[i];
            if (t < 0 || t >= V || s->seen[t])
                continue;
            s->seen[t] = 1;
            logits[t] = logits[t] > 0 ? logits[t] / r : logits[t] * r;
        }
        for (int i = 0; i < c->n_prompt + c->n_out; i++)
            if (c->tokens[i] >= 0 && c->tokens[i] < V)
                s->seen[c->tokens[i]] = 0;
    }
    if (sp->frequency_penalty != 0.0f || sp->presence_penalty != 0.0f) {
        if (++s->cur == 0) {                 /* stamp wrapped: clear */
            memset(s->stamp, 0, (size_t)V * sizeof *s->stamp);
            s->cur = 1;
        }
        for (int i = 0; i < c->n_out; i++) {
            int32_t t = out[i];
            if (t < 0 || t >= V)
                continue;
            if (s->stamp[t] != s->cur) {
                s->stamp[t] = s->cur;
                s->counts[t] = 0;
            }
            s->counts[t]++;
        }
        for (int i = 0; i < c->n_out; i++) {
            int32_t t = out[i];
            if (t < 0 || t >= V || s->counts[t] == 0)
                continue;
            logits[t] -= sp->frequency_penalty * (float)s->counts[t] + sp->presence_penalty;
            s->counts[t] = 0;                /* apply once per distinct token */
        }
    }
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Sort order for candidates: higher probability first, then lower id. */
static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const float *p = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (p[x] != p[y])
        return p[x] > p[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Quickselect: moves the k best candidates (by cmp_desc) to cand[0..k), unordered. */
static void select_top(int32_t *cand, int n, int k, const float *p)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pivot = cand[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_desc(&cand[i], &pivot, (void *)p) < 0) i++;
            while (cmp_desc(&cand[j], &pivot, (void *)p) > 0) j--;
            if (i <= j) {
                int32_t t = cand[i]; cand[i] = cand[j]; cand[j] = t;
                i++; j--;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

int32_t pgd__sampler_sample(struct pgd__sampler *s, const struct pgd__sample_ctx *c,
                            float *logits)
{
    const struct pgd_sampling_params *sp = c->sp;
    int V = s->vocab;
    apply_processors(s, c, logits);
    if (sp->temperature < SAMPLING_EPS)
        return argmax(logits, V);

    /* Softmax of logits / temperature. */
    float inv_t = 1.0f / sp->temperature;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx)
            mx = logits[i];
    if (mx == -INFINITY)
        return argmax(logits, V);            /* everything masked: nothing better to do */
    double sum = 0.0;
    float *p = s->probs;
    for (int i = 0; i < V; i++) {
        p[i] = expf((logits[i] - mx) * inv_t);
        sum += p[i];
    }
    /* Candidates: tokens with nonzero probability that survive min_p. */
    float pmax = (float)(1.0 / sum);         /* the max token's exp is 1 */
    float floor_p = sp->min_p > 0.0f ? sp->min_p * pmax : 0.0f;
    int n = 0;
    double kept = 0.0;
    for (int i = 0; i < V; i++) {
        p[i] = (float)(p[i] / sum);
        if (p[i] > 0.0f && p[i] >= floor_p) {
            s->cand[n++] = i;
            kept += p[i];
        }
    }
    if (n == 0)
        return argmax(logits, V);
    bool reordered = false;
    if (sp->top_k > 0 && sp->top_k < n) {
        select_top(s->cand, n, sp->top_k, p);
        reordered = true;
        n = sp->top_k;
        kept = 0.0;
        for (int i = 0; i < n; i++)
            kept += p[s->cand[i]];
    }
    if (sp->top_p < 1.0f) {
        qsort_r(s->cand, (size_t)n, sizeof *s->cand, cmp_desc, p);
        reordered = true;
        double before = 0.0, limit = (double)sp->top_p * kept;
        int m = 0;
        while (m < n && (m == 0 || before < limit)) {
            before += p[s->cand[m]];
            m++;
        }
        n = m;
        kept = before;
    }
    /* The draw walks the kept tokens in id order: cand is in id order unless top_k or
     * top_p reordered it. */
    if (reordered && n > 1)
        qsort(s->cand, (size_t)n, sizeof *s->cand, pgd__cmp_token_id);
    double u = pgd__sample_uniform(c->seed, c->child, (uint64_t)c->n_out) * kept;
    double acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += p[s->cand[i]];
        if (u < acc)
            return s->cand[i];
    }
    return s->cand[n - 1];
}

void pgd__logprobs(const float *logits, int vocab, int32_t token, int k,
                   struct pgd_logprob *chosen, struct pgd_logprob *top)
{
    float mx = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    int rank = 1;
    for (int i = 0; i < vocab; i++)
        if (logits[i] > logits[token])
            rank++;
    chosen->token = token;
    chosen->logprob = (float)(logits[token] - lse);
    chosen->rank = rank;
    if (k > vocab)
        k = vocab;
    /* Insertion into a sorted top-k list: fine for the small k logprobs asks for. */
    int m = 0;
    for (int i = 0; i < vocab && k > 0; i++) {
        float v = logits[i];
        if (m == k && v <= logits[top[m - 1].token])
            continue;
        int at = m < k ? m : k - 1;
        while (at > 0 && logits[top[at - 1].token] < v) {
            top[at] = top[at - 1];
            at--;
        }
        top[at].token = i;
        if (m < k)
            m++;
    }
    for (int i = 0; i < m; i++) {
        top[i].logprob = (float)(logits[top[i].token] - lse);
        top[i].rank = i + 1;
    }
}
