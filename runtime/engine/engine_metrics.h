/* Internal: the engine's Prometheus metrics (vLLM's names, prefixed `pagoda:`): the
 * histograms a request and a step feed, and the text exposition of them with the engine's
 * counters. Every series carries model_name="<served name>". The engine keeps one of these
 * under its stats lock. */
#ifndef PGD_RUNTIME_ENGINE_METRICS_H
#define PGD_RUNTIME_ENGINE_METRICS_H

#include "runtime/base/metrics.h"
#include <pagoda/engine.h>

struct pgd__engine_metrics {
    char labels[320];                /* model_name="..." (escaped) */
    char cache_info[512];            /* the labels of cache_config_info */
    struct pgd__histogram ttft, itl, e2e, queue;
    struct pgd__histogram prompt_tokens, generation_tokens;   /* per finished sequence */
    struct pgd__histogram prefill, decode;                    /* seconds, per sequence */
    struct pgd__histogram iteration_tokens;                   /* tokens of one step */
};

/* p: the engine's parameters (model_name, or model_dir's last part); the pool's size. */
void pgd__engine_metrics_init(struct pgd__engine_metrics *m, const struct pgd_engine_params *p,
                              int max_model_len, int num_blocks, int block_size);

/* A sequence finished: its request's arrival, first scheduling and first token times (0:
 * none), the time now, and its token counts. */
void pgd__engine_metrics_finished(struct pgd__engine_metrics *m, double t_scheduled,
                                  double t_first_token, double t_end, int n_prompt,
                                  int n_generated);

/* The exposition (version 0.0.4) of m and the counters in s; *text malloc'd (free()). */
enum pgd_status pgd__engine_metrics_text(const struct pgd__engine_metrics *m,
                                         const struct pgd_engine_stats *s, char **text,
                                         size_t *len);

#endif
