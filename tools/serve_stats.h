/* `pagoda serve`'s periodic stats line, in vLLM's words (its LoggingStatLogger):
 *   Engine 000: Avg prompt throughput: 512.0 tokens/s, Avg generation throughput: 1830.4
 *   tokens/s, Running: 12 reqs, Waiting: 0 reqs, GPU KV cache usage: 3.1%, Prefix cache hit
 *   rate: 45.0%
 * written at info level while there is traffic (this interval or the one before had tokens, or
 * requests are running or waiting), at debug level when idle. With speculative decoding, a
 * second line as vLLM's SpecDecodingLogging writes it:
 *   SpecDecoding metrics: Mean acceptance length: 2.41, Accepted throughput: 35.20 tokens/s,
 *   Drafted throughput: 99.00 tokens/s, Accepted: 352 tokens, Drafted: 990 tokens,
 *   Per-position acceptance rate: 0.612, 0.432, 0.308, Avg Draft acceptance rate: 35.6%
 * for the verify runs of the interval. */
#ifndef PGD_TOOLS_SERVE_STATS_H
#define PGD_TOOLS_SERVE_STATS_H

#include <pagoda/engine.h>
#include <stdbool.h>
#include <stdint.h>

struct pgd_tool_stats_logger {
    struct pgd_engine *eng;          /* borrowed */
    enum pgd_device device;          /* says "GPU" or "CPU" KV cache */
    double t_last;
    uint64_t prompt_last, gen_last;  /* counters at t_last */
    /* Speculative decoding's counters at t_last (the SpecDecoding line, when it is on). */
    uint64_t spec_drafts_last, spec_draft_tokens_last, spec_accepted_last;
    uint64_t spec_per_pos_last[PGD_SPEC_MAX_TOKENS];
    bool was_active;
};

void pgd_tool_stats_logger_init(struct pgd_tool_stats_logger *lg, struct pgd_engine *eng,
                                enum pgd_device device);
/* Logs the line for the time since the last tick (or init). */
void pgd_tool_stats_logger_tick(struct pgd_tool_stats_logger *lg);

#endif
