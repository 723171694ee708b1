/* The stats line of `pagoda serve` (see serve_stats.h). The prefix cache hit rate is over
 * every prompt token looked up since the start (vLLM's is over its last 1000 requests). */
#include "tools/serve_stats.h"
#include "runtime/base/clock.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void pgd_tool_stats_logger_init(struct pgd_tool_stats_logger *lg, struct pgd_engine *eng,
                                enum pgd_device device)
{
    struct pgd_engine_stats s;
    pgd_engine_get_stats(eng, &s);
    *lg = (struct pgd_tool_stats_logger){
        .eng = eng, .device = device, .t_last = pgd__now_s(),
        .prompt_last = s.prompt_tokens, .gen_last = s.generation_tokens,
    };
}

/* vLLM's SpecDecoding metrics line over the interval: mean acceptance length (tokens a
 * verify run emits: accepted + 1), accepted and drafted tokens per second and in all, the
 * per-position acceptance rate and the draft acceptance rate. */
static void spec_line(struct pgd_tool_stats_logger *lg, const struct pgd_engine_stats *s,
                      double dt)
{
    double drafts = (double)(s->spec_num_drafts - lg->spec_drafts_last);
    double drafted = (double)(s->spec_num_draft_tokens - lg->spec_draft_tokens_last);
    double accepted = (double)(s->spec_num_accepted_tokens - lg->spec_accepted_last);
    char pos[256] = "";
    size_t n = 0;
    for (int i = 0; i < s->spec_num_speculative_tokens && i < PGD_SPEC_MAX_TOKENS; i++) {
        double a = (double)(s->spec_num_accepted_tokens_per_pos[i] - lg->spec_per_pos_last[i]);
        int w = snprintf(pos + n, sizeof pos - n, "%s%.3f", i ? ", " : "", a / drafts);
        if (w < 0 || (size_t)w >= sizeof pos - n)
            break;
        n += (size_t)w;
    }
    PGD_INFO("SpecDecoding metrics: Mean acceptance length: %.2f, Accepted throughput: %.2f "
             "tokens/s, Drafted throughput: %.2f tokens/s, Accepted: %.0f tokens, Drafted: "
             "%.0f tokens, Per-position acceptance rate: %s, Avg Draft acceptance rate: %.1f%%",
             1.0 + accepted / drafts, accepted / dt, drafted / dt, accepted, drafted, pos,
             drafted > 0 ? 100.0 * accepted / drafted : 0.0);
}

void pgd_tool_stats_logger_tick(struct pgd_tool_stats_logger *lg)
{
    struct pgd_engine_stats s;
    pgd_engine_get_stats(lg->eng, &s);
    double t = pgd__now_s(), dt = t - lg->t_last;
    if (dt <= 0)
        return;
    double prompt_tps = (double)(s.prompt_tokens - lg->prompt_last) / dt;
    double gen_tps = (double)(s.generation_tokens - lg->gen_last) / dt;
    bool active = prompt_tps > 0 || gen_tps > 0 || s.num_requests_running > 0 ||
                  s.num_requests_waiting > 0;
    double hit = s.prefix_cache_queries ? 100.0 * (double)s.prefix_cache_hits /
                                          (double)s.prefix_cache_queries : 0.0;
    pgd_log(active || lg->was_active ? PGD_LOG_INFO : PGD_LOG_DEBUG,
            "Engine 000: Avg prompt throughput: %.1f tokens/s, Avg generation throughput: "
            "%.1f tokens/s, Running: %d reqs, Waiting: %d reqs, %s KV cache usage: %.1f%%, "
            "Prefix cache hit rate: %.1f%%", prompt_tps, gen_tps, s.num_requests_running,
            s.num_requests_waiting, lg->device == PGD_DEVICE_CUDA ? "GPU" : "CPU",
            100.0 * s.kv_cache_usage, hit);
    if (s.spec_num_speculative_tokens > 0 && s.spec_num_drafts > lg->spec_drafts_last)
        spec_line(lg, &s, dt);
    lg->was_active = active;
    lg->t_last = t;
    lg->prompt_last = s.prompt_tokens;
    lg->gen_last = s.generation_tokens;
    lg->spec_drafts_last = s.spec_num_drafts;
    lg->spec_draft_tokens_last = s.spec_num_draft_tokens;
    lg->spec_accepted_last = s.spec_num_accepted_tokens;
    memcpy(lg->spec_per_pos_last, s.spec_num_accepted_tokens_per_pos,
           sizeof lg->spec_per_pos_last);
}
