/* The engine's metrics (see engine_metrics.h): vLLM's series and bucket bounds, under the
 * `pagoda:` prefix, each with the model_name label. */
#include "runtime/engine/engine_metrics.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgd__engine_metrics_init(struct pgd__engine_metrics *m, const struct pgd_engine_params *p,
                              int max_model_len, int num_blocks, int block_size)
{
    memset(m, 0, sizeof *m);
    const char *name = p->model_name;
    char tmp[256];
    if (!name || !*name) {
        /* model_dir's last part, as `pagoda serve` names the model */
        snprintf(tmp, sizeof tmp, "%s", p->model_dir ? p->model_dir : "model");
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/')
            tmp[--n] = '\0';
        const char *base = strrchr(tmp, '/');
        name = base && base[1] ? base + 1 : tmp;
    }
    char esc[256];
    pgd__prom_label_value(esc, sizeof esc, name);
    snprintf(m->labels, sizeof m->labels, "model_name=\"%s\"", esc);
    snprintf(m->cache_info, sizeof m->cache_info,
             "%s,block_size=\"%d\",num_gpu_blocks=\"%d\",enable_prefix_caching=\"%s\","
             "gpu_memory_utilization=\"%g\",cache_dtype=\"%s\",device=\"%s\"", m->labels,
             block_size, num_blocks, p->enable_prefix_caching ? "True" : "False",
             p->gpu_memory_utilization,
             p->kv_cache_dtype && *p->kv_cache_dtype ? p->kv_cache_dtype : "auto", p->device == PGD_DEVICE_CUDA ? "cuda" : "cpu");
    pgd__histogram_init(&m->ttft, PGD__HIST_TTFT);
    pgd__histogram_init(&m->itl, PGD__HIST_ITL);
    pgd__histogram_init(&m->e2e, PGD__HIST_E2E);
    pgd__histogram_init(&m->queue, PGD__HIST_QUEUE);
    pgd__histogram_init(&m->prefill, PGD__HIST_E2E);
    pgd__histogram_init(&m->decode, PGD__HIST_E2E);
    pgd__histogram_init_tokens(&m->prompt_tokens, PGD__HIST_TOKENS, max_model_len);
    pgd__histogram_init_tokens(&m->generation_tokens, PGD__HIST_TOKENS, max_model_len);
    pgd__histogram_init_tokens(&m->iteration_tokens, PGD__HIST_ITERATION,
                               p->max_num_batched_tokens);
}

void pgd__engine_metrics_finished(struct pgd__engine_metrics *m, double t_scheduled,
                                  double t_first_token, double t_end, int n_prompt,
                                  int n_generated)
{
    pgd__histogram_observe(&m->prompt_tokens, n_prompt);
    pgd__histogram_observe(&m->generation_tokens, n_generated);
    /* vLLM: prefill = first token - first scheduled, decode = last token - first token. */
    if (t_scheduled > 0 && t_first_token >= t_scheduled)
        pgd__histogram_observe(&m->prefill, t_first_token - t_scheduled);
    if (t_first_token > 0 && t_end >= t_first_token)
        pgd__histogram_observe(&m->decode, t_end - t_first_token);
}

static void gauge(struct pgd__buf *b, const char *labels, const char *name,
                  const char *type, const char *help, double v)
{
    pgd__prom_header(b, name, type, help);
    pgd__prom_sample(b, name, labels, v);
}

/* One sample of a counter split by a label: name{model_name=...,key="val"} v. */
static void labelled(struct pgd__buf *b, const char *L, const char *name, const char *key,
                     const char *val, double v)
{
    char lab[400];
    snprintf(lab, sizeof lab, "%s,%s=\"%s\"", L, key, val);
    pgd__prom_sample(b, name, lab, v);
}

/* Speculative decoding's counters, as vLLM's spec_decode_* (only with speculation on):
 * verify runs, proposals, accepted proposals, and accepted by position in the run. */
static void spec_counters(struct pgd__buf *b, const char *L, const struct pgd_engine_stats *s)
{
    gauge(b, L, "pagoda:spec_decode_num_drafts_total", "counter",
          "Verify runs: a sequence's proposals checked in one step.", (double)s->spec_num_drafts);
    gauge(b, L, "pagoda:spec_decode_num_draft_tokens_total", "counter",
          "Proposed tokens verified.", (double)s->spec_num_draft_tokens);
    gauge(b, L, "pagoda:spec_decode_num_accepted_tokens_total", "counter",
          "Proposed tokens accepted.", (double)s->spec_num_accepted_tokens);
    pgd__prom_header(b, "pagoda:spec_decode_num_accepted_tokens_per_pos_total", "counter",
                     "Proposed tokens accepted, by their position in the run.");
    for (int i = 0; i < s->spec_num_speculative_tokens && i < PGD_SPEC_MAX_TOKENS; i++) {
        char pos[16];
        snprintf(pos, sizeof pos, "%d", i);
        labelled(b, L, "pagoda:spec_decode_num_accepted_tokens_per_pos_total", "position", pos,
                 (double)s->spec_num_accepted_tokens_per_pos[i]);
    }
}

/* One counter split by step kind: its header, then the decode_only and mixed samples. */
static void by_kind(struct pgd__buf *b, const char *L, const char *name, const char *help,
                    const double v[2])
{
    static const char *const kinds[2] = { "decode_only", "mixed" };
    pgd__prom_header(b, name, "counter", help);
    for (int k = 0; k < 2; k++)
        labelled(b, L, name, "kind", kinds[k], v[k]);
}

/* Where the engine thread's steps spend their time (struct pgd_engine_stats' step_*; vLLM
 * has no such series): the timed steps by kind (decode-only: on a GPU a CUDA graph can run
 * them; mixed: prompt tokens or proposals, run eagerly), their wall seconds from the step's
 * start to its outputs emitted, the backend's device seconds (the waits for the GPU, or the
 * CPU's forward pass; 0 for a backend that does not measure it), the four phases, and the
 * output phase's stream pushes.
 * Every value is a sum that only grows (the mixed seconds are summed, not subtracted). */
static void step_counters(struct pgd__buf *b, const char *L, const struct pgd_engine_stats *s)
{
    const double steps[2] = { (double)s->step_timed_decode_only,
                              (double)(s->step_timed - s->step_timed_decode_only) };
    const double wall[2] = { s->step_total_decode_only_s, s->step_total_mixed_s };
    const double dev[2] = { s->step_device_decode_only_s, s->step_device_mixed_s };
    by_kind(b, L, "pagoda:engine_steps_total",
            "Engine steps timed, by kind (decode_only or mixed).", steps);
    by_kind(b, L, "pagoda:engine_step_seconds_total",
            "Wall seconds of the engine thread's steps, from a step's start to its outputs "
            "emitted, by kind.", wall);
    by_kind(b, L, "pagoda:engine_step_device_seconds_total",
            "Device seconds of the steps as the host sees them (waits for the GPU, or the "
            "CPU's forward pass), by kind.", dev);
    pgd__prom_header(b, "pagoda:engine_step_phase_seconds_total", "counter",
                     "Wall seconds of the timed steps by phase (schedule, prepare, model, "
                     "output).");
    labelled(b, L, "pagoda:engine_step_phase_seconds_total", "phase", "schedule",
             s->step_schedule_s);
    labelled(b, L, "pagoda:engine_step_phase_seconds_total", "phase", "prepare",
             s->step_prepare_s);
    labelled(b, L, "pagoda:engine_step_phase_seconds_total", "phase", "model", s->step_model_s);
    labelled(b, L, "pagoda:engine_step_phase_seconds_total", "phase", "output",
             s->step_output_s);
    gauge(b, L, "pagoda:engine_step_output_push_seconds_total", "counter",
          "Of the output phase's seconds, those spent handing outputs to their streams "
          "(queueing each, waking its reader).", s->step_output_push_s);
    gauge(b, L, "pagoda:engine_steps_overlapped_total", "counter",
          "Async scheduling: steps submitted while the step before them was still in "
          "flight.", (double)s->num_steps_overlapped);
}

enum pgd_status pgd__engine_metrics_text(const struct pgd__engine_metrics *m,
                                         const struct pgd_engine_stats *s, char **text,
                                         size_t *len)
{
    struct pgd__buf b = { 0 };
    const char *L = m->labels;
    gauge(&b, L, "pagoda:num_requests_running", "gauge",
          "Number of sequences in the running batch.", s->num_requests_running);
    gauge(&b, L, "pagoda:num_requests_waiting", "gauge",
          "Number of sequences waiting to be scheduled.", s->num_requests_waiting);
    gauge(&b, L, "pagoda:num_requests_swapped", "gauge",
          "Number of sequences preempted by swapping, their KV in host memory.",
          s->num_requests_swapped);
    gauge(&b, L, "pagoda:kv_cache_usage_perc", "gauge",
          "KV cache usage: 1 means 100 percent of the blocks are held.", s->kv_cache_usage);
    gauge(&b, L, "pagoda:prefix_cache_queries_total", "counter",
          "Prompt tokens looked up in the prefix cache.", (double)s->prefix_cache_queries);
    gauge(&b, L, "pagoda:prefix_cache_hits_total", "counter",
          "Prompt tokens found in the prefix cache.", (double)s->prefix_cache_hits);
    gauge(&b, L, "pagoda:num_preemptions_total", "counter",
          "Sequences preempted (to be recomputed or swapped out) for lack of KV blocks.",
          (double)s->num_preemptions);
    gauge(&b, L, "pagoda:num_swapped_out_total", "counter",
          "Preempted sequences whose KV blocks were swapped out to host memory.",
          (double)s->num_swapped_out);
    gauge(&b, L, "pagoda:swap_out_bytes_total", "counter",
          "Bytes of KV blocks copied to host memory by swapping.", (double)s->swap_out_bytes);
    gauge(&b, L, "pagoda:swap_in_bytes_total", "counter",
          "Bytes of KV blocks copied back from host memory by swapping.",
          (double)s->swap_in_bytes);
    gauge(&b, L, "pagoda:prompt_tokens_total", "counter", "Prompt tokens admitted.",
          (double)s->prompt_tokens);
    gauge(&b, L, "pagoda:generation_tokens_total", "counter", "Tokens generated.",
          (double)s->generation_tokens);
    pgd__prom_header(&b, "pagoda:request_success_total", "counter",
                     "Finished sequences by finish reason.");
    for (int i = PGD_FINISH_STOP; i < PGD_FINISH_N; i++)
        labelled(&b, L, "pagoda:request_success_total", "finished_reason",
                 pgd_finish_reason_str((enum pgd_finish_reason)i),
                 (double)s->requests_finished[i]);
    if (s->spec_num_speculative_tokens > 0)
        spec_counters(&b, L, s);
    step_counters(&b, L, s);
    gauge(&b, m->cache_info, "pagoda:cache_config_info", "gauge",
          "Information of the KV cache's configuration (the value is always 1).", 1.0);
    pgd__prom_histogram(&b, "pagoda:time_to_first_token_seconds",
                        "Time from arrival to the first generated token.", L, &m->ttft);
    pgd__prom_histogram(&b, "pagoda:inter_token_latency_seconds",
                        "Time between consecutive tokens of a sequence.", L, &m->itl);
    pgd__prom_histogram(&b, "pagoda:e2e_request_latency_seconds",
                        "Time from arrival to the last sample's finish.", L, &m->e2e);
    pgd__prom_histogram(&b, "pagoda:request_queue_time_seconds",
                        "Time from arrival to first being scheduled.", L, &m->queue);
    pgd__prom_histogram(&b, "pagoda:request_prefill_time_seconds",
                        "Time from first being scheduled to the first token.", L, &m->prefill);
    pgd__prom_histogram(&b, "pagoda:request_decode_time_seconds",
                        "Time from the first token to the last.", L, &m->decode);
    pgd__prom_histogram(&b, "pagoda:request_prompt_tokens",
                        "Prompt tokens of each finished sequence.", L, &m->prompt_tokens);
    pgd__prom_histogram(&b, "pagoda:request_generation_tokens",
                        "Generated tokens of each finished sequence.", L,
                        &m->generation_tokens);
    pgd__prom_histogram(&b, "pagoda:iteration_tokens_total",
                        "Tokens (prompt and generated) of each engine step.", L,
                        &m->iteration_tokens);
    *text = pgd__buf_steal(&b, len);   /* NULL when an append failed; b is released */
    if (!*text) {
        if (len)
            *len = 0;
        return PGD_ERR_NOMEM;
    }
    return PGD_OK;
}
