/* The engine's counters and latency histograms (everything under stats_mu): the updates the
 * engine thread makes as requests are admitted, scheduled, stepped, generate and finish,
 * and the two ways out: pgd_engine_get_stats and the Prometheus text of /metrics (vLLM's
 * metric names, pagoda: prefix; the histograms and the text are engine_metrics.c's). */
#include "runtime/engine/engine_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double pgd__engine_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void pgd__stats_on_admit(struct pgd_engine *e, const struct pgd__req *r)
{
    pthread_mutex_lock(&e->stats_mu);
    e->stats.prompt_tokens += (uint64_t)r->n_prompt * (uint64_t)r->n_children;
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_on_scheduled(struct pgd_engine *e, const struct pgd__req *r, double t)
{
    pthread_mutex_lock(&e->stats_mu);
    pgd__histogram_observe(&e->metrics.queue, t - r->t_arrival);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_on_step(struct pgd_engine *e, uint64_t prompt_computed, int step_tokens,
                        bool decode_only)
{
    pthread_mutex_lock(&e->stats_mu);
    pgd__histogram_observe(&e->metrics.iteration_tokens, step_tokens);
    e->stats.num_steps++;
    e->stats.num_steps_overlapped += e->flight != NULL;
    e->stats.tokens_computed += (uint64_t)step_tokens;
    e->stats.num_steps_decode_only += decode_only;
    e->stats.num_tokens_recomputed = e->sched.n_recomputed;
    e->stats.prompt_tokens_computed += prompt_computed;
    e->stats.num_preemptions = e->sched.n_preemptions;
    e->stats.num_swapped_out = e->sched.n_swapped_out;
    e->stats.num_swapped_in = e->sched.n_swapped_in;
    e->stats.swap_out_bytes = e->sched.n_blocks_swapped_out * e->be.kv_block_bytes;
    e->stats.swap_in_bytes = e->sched.n_blocks_swapped_in * e->be.kv_block_bytes;
    e->stats.prefix_cache_queries = e->kv.prefix_queries;
    e->stats.prefix_cache_hits = e->kv.prefix_hits;
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_on_step_times(struct pgd_engine *e, const double t[5], double device_s,
                              bool decode_only)
{
    pthread_mutex_lock(&e->stats_mu);
    /* The split by kind is added under the same lock as the totals: a reader never sees a
     * step counted in one and not the other. */
    if (decode_only) {
        e->stats.step_timed_decode_only++;
        e->stats.step_total_decode_only_s += t[4] - t[0];
        e->stats.step_device_decode_only_s += device_s;
    } else {
        e->stats.step_total_mixed_s += t[4] - t[0];
        e->stats.step_device_mixed_s += device_s;
    }
    e->stats.step_schedule_s += t[1] - t[0];
    e->stats.step_prepare_s += t[2] - t[1];
    e->stats.step_model_s += t[3] - t[2];
    e->stats.step_output_s += t[4] - t[3];
    e->stats.step_output_push_s += e->step_push_s;   /* the engine thread's own, no lock */
    e->step_push_s = 0;
    e->stats.step_total_s += t[4] - t[0];
    e->stats.step_device_s += device_s;
    e->stats.step_timed++;
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_on_spec(struct pgd_engine *e, int n_proposed, int n_accepted)
{
    pthread_mutex_lock(&e->stats_mu);
    e->stats.spec_num_drafts++;
    e->stats.spec_num_draft_tokens += (uint64_t)n_proposed;
    e->stats.spec_num_accepted_tokens += (uint64_t)n_accepted;
    for (int i = 0; i < n_accepted && i < PGD_SPEC_MAX_TOKENS; i++)
        e->stats.spec_num_accepted_tokens_per_pos[i]++;
    pthread_mutex_unlock(&e->stats_mu);
}

/* Also stamps the request's first token (t_first_token is the engine thread's; it is set
 * here so that the time to first token is observed exactly once). */
void pgd__stats_on_token(struct pgd_engine *e, const struct pgd__child *c, double t)
{
    struct pgd__req *rq = c->req;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.generation_tokens++;
    if (rq->t_first_token == 0.0) {
        rq->t_first_token = t;
        pgd__histogram_observe(&e->metrics.ttft, t - rq->t_arrival);
    }
    if (c->n_out > 1)
        pgd__histogram_observe(&e->metrics.itl, t - c->t_last_token);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_on_finish(struct pgd_engine *e, const struct pgd__child *c,
                          enum pgd_finish_reason why)
{
    const struct pgd__req *r = c->req;
    double t = pgd__engine_now();
    pthread_mutex_lock(&e->stats_mu);
    e->stats.requests_finished[why]++;
    /* The child's blocks are back in the pool before its last output is pushed: a caller
     * reading the stats after its stream closes sees them freed. */
    e->stats.kv_cache_usage = pgd__block_pool_usage(&e->kv.pool);
    /* The request's end-to-end latency, once: when its last sample finishes (n_done does
     * not count this one yet). */
    if (r->n_done + 1 == r->n_children)
        pgd__histogram_observe(&e->metrics.e2e, t - r->t_arrival);
    /* Per sequence: its prompt and generated tokens, prefill and decode times. */
    pgd__engine_metrics_finished(&e->metrics, r->t_scheduled, r->t_first_token, t, r->n_prompt,
                                 c->n_out);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_gauges(struct pgd_engine *e)
{
    pthread_mutex_lock(&e->stats_mu);
    e->stats.num_requests_running = e->sched.n_running;
    e->stats.num_requests_waiting = e->sched.n_waiting;
    e->stats.num_requests_swapped = e->sched.n_swapped;
    e->stats.kv_cache_usage = pgd__block_pool_usage(&e->kv.pool);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd_engine_get_stats(struct pgd_engine *e, struct pgd_engine_stats *out)
{
    pthread_mutex_lock(&e->stats_mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
    pgd__text_share_fix_finishes(e->text_share, out->requests_finished);
}

/* *text is malloc'd (the caller frees it). The stats are copied under stats_mu and
 * formatted outside it (engine_metrics.c), so a slow scrape never holds up the engine
 * thread. */
enum pgd_status pgd_engine_metrics_text(struct pgd_engine *e, char **text, size_t *len)
{
    pthread_mutex_lock(&e->stats_mu);
    struct pgd_engine_stats s = e->stats;
    struct pgd__engine_metrics m = e->metrics;
    pthread_mutex_unlock(&e->stats_mu);
    pgd__text_share_fix_finishes(e->text_share, s.requests_finished);
    return pgd__engine_metrics_text(&m, &s, text, len);
}
