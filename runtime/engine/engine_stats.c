/* The engine's counters and latency histograms (everything under stats_mu): the updates the
 * engine thread makes as requests are admitted, scheduled, stepped, generate and finish,
 * and the two ways out: pgd_engine_get_stats and the Prometheus text of /metrics (vLLM's
 * metric names, pagoda: prefix). */
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
    pgd__histogram_observe(&e->h_queue, t - r->t_arrival);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_on_step(struct pgd_engine *e, uint64_t prompt_computed)
{
    pthread_mutex_lock(&e->stats_mu);
    e->stats.num_steps++;
    e->stats.prompt_tokens_computed += prompt_computed;
    e->stats.num_preemptions = e->sched.n_preemptions;
    e->stats.prefix_cache_queries = e->kv.prefix_queries;
    e->stats.prefix_cache_hits = e->kv.prefix_hits;
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
        pgd__histogram_observe(&e->h_ttft, t - rq->t_arrival);
    }
    if (c->n_out > 1)
        pgd__histogram_observe(&e->h_itl, t - c->t_last_token);
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
        pgd__histogram_observe(&e->h_e2e, t - r->t_arrival);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd__stats_gauges(struct pgd_engine *e)
{
    pthread_mutex_lock(&e->stats_mu);
    e->stats.num_requests_running = e->sched.n_running;
    e->stats.num_requests_waiting = e->sched.n_waiting;
    e->stats.kv_cache_usage = pgd__block_pool_usage(&e->kv.pool);
    pthread_mutex_unlock(&e->stats_mu);
}

void pgd_engine_get_stats(struct pgd_engine *e, struct pgd_engine_stats *out)
{
    pthread_mutex_lock(&e->stats_mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
}

/* *text is malloc'd (the caller frees it). The stats are copied under stats_mu and
 * formatted outside it, so a slow scrape never holds up the engine thread. */
enum pgd_status pgd_engine_metrics_text(struct pgd_engine *e, char **text, size_t *len)
{
    struct pgd__strbuf b = { 0 };
    pthread_mutex_lock(&e->stats_mu);
    struct pgd_engine_stats s = e->stats;
    struct pgd__histogram h[4] = { e->h_ttft, e->h_itl, e->h_e2e, e->h_queue };
    pthread_mutex_unlock(&e->stats_mu);

    pgd__prom_header(&b, "pagoda:num_requests_running", "gauge",
                     "Number of sequences in the running batch.");
    pgd__prom_sample(&b, "pagoda:num_requests_running", NULL, s.num_requests_running);
    pgd__prom_header(&b, "pagoda:num_requests_waiting", "gauge",
                     "Number of sequences waiting to be scheduled.");
    pgd__prom_sample(&b, "pagoda:num_requests_waiting", NULL, s.num_requests_waiting);
    pgd__prom_header(&b, "pagoda:kv_cache_usage_perc", "gauge",
                     "KV cache usage: 1 means 100 percent of the blocks are held.");
    pgd__prom_sample(&b, "pagoda:kv_cache_usage_perc", NULL, s.kv_cache_usage);
    pgd__prom_header(&b, "pagoda:prefix_cache_queries_total", "counter",
                     "Prompt tokens looked up in the prefix cache.");
    pgd__prom_sample(&b, "pagoda:prefix_cache_queries_total", NULL,
                     (double)s.prefix_cache_queries);
    pgd__prom_header(&b, "pagoda:prefix_cache_hits_total", "counter",
                     "Prompt tokens found in the prefix cache.");
    pgd__prom_sample(&b, "pagoda:prefix_cache_hits_total", NULL, (double)s.prefix_cache_hits);
    pgd__prom_header(&b, "pagoda:num_preemptions_total", "counter",
                     "Sequences preempted (to be recomputed) for lack of KV blocks.");
    pgd__prom_sample(&b, "pagoda:num_preemptions_total", NULL, (double)s.num_preemptions);
    pgd__prom_header(&b, "pagoda:prompt_tokens_total", "counter", "Prompt tokens admitted.");
    pgd__prom_sample(&b, "pagoda:prompt_tokens_total", NULL, (double)s.prompt_tokens);
    pgd__prom_header(&b, "pagoda:generation_tokens_total", "counter", "Tokens generated.");
    pgd__prom_sample(&b, "pagoda:generation_tokens_total", NULL, (double)s.generation_tokens);
    pgd__prom_header(&b, "pagoda:request_success_total", "counter",
                     "Finished sequences by finish reason.");
    for (int i = PGD_FINISH_STOP; i <= PGD_FINISH_ABORT; i++) {
        char lab[64];
        snprintf(lab, sizeof lab, "finished_reason=\"%s\"",
                 pgd_finish_reason_str((enum pgd_finish_reason)i));
        pgd__prom_sample(&b, "pagoda:request_success_total", lab,
                         (double)s.requests_finished[i]);
    }
    pgd__prom_histogram(&b, "pagoda:time_to_first_token_seconds",
                        "Time from arrival to the first generated token.", &h[0]);
    pgd__prom_histogram(&b, "pagoda:inter_token_latency_seconds",
                        "Time between consecutive tokens of a sequence.", &h[1]);
    pgd__prom_histogram(&b, "pagoda:e2e_request_latency_seconds",
                        "Time from arrival to the last sample's finish.", &h[2]);
    pgd__prom_histogram(&b, "pagoda:request_queue_time_seconds",
                        "Time from arrival to first being scheduled.", &h[3]);
    if (b.failed) {
        free(b.s);
        *text = NULL;
        if (len)
            *len = 0;
        return PGD_ERR_NOMEM;
    }
    *text = b.s;
    if (len)
        *len = b.len;
    return PGD_OK;
}
