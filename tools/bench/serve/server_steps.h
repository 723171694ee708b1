/* The server's own view of its steps in `pagoda bench serve`: pagoda's /metrics counters
 * (pagoda:engine_steps_total, engine_step_seconds_total, engine_step_device_seconds_total
 * by kind="decode_only"|"mixed", engine_step_phase_seconds_total by phase, and
 * engine_step_output_push_seconds_total and engine_steps_overlapped_total where the server
 * has them), scraped before
 * the timed run and after it; their differences, divided by the steps, are the "Server
 * steps" section of the report and its "server_steps" key. Here are the parser of those
 * Prometheus lines and the section; the HTTP GET is conn.c's. Nothing here needs a server,
 * so that the unit tests feed it text. */
#ifndef PGD_TOOLS_BENCH_SERVE_SERVER_STEPS_H
#define PGD_TOOLS_BENCH_SERVE_SERVER_STEPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* One sample line of the Prometheus text format: name{k="v",...} value [timestamp]. Label
 * values are unescaped (\\, \", \n); those past the room here are cut, labels past
 * BS_PROM_MAX_LABELS are read and dropped. */
#define BS_PROM_MAX_LABELS 8
struct bs_prom_sample {
    char name[128];
    int n_labels;
    char key[BS_PROM_MAX_LABELS][64];
    char val[BS_PROM_MAX_LABELS][128];
    double value;                  /* as written: NaN and +Inf/-Inf included */
};

/* Parses line[0, len) (no newline). Returns 1 for a sample, 0 for a comment or a blank
 * line, -1 for anything else (a name too long, an unclosed label, a value that is not a
 * number, text after the timestamp). */
int bs_prom_parse_line(const char *line, size_t len, struct bs_prom_sample *s);

/* The value of label key in s, or NULL. Borrowed from s. */
const char *bs_prom_label(const struct bs_prom_sample *s, const char *key);

/* The counters of one scrape, summed over the series that differ only in other labels (a
 * server with several model_names). Index 0 is decode-only, 1 mixed; the phases are
 * schedule, prepare, model, output. */
enum { BS_STEP_DECODE_ONLY, BS_STEP_MIXED, BS_STEP_KINDS };
enum { BS_PHASE_SCHEDULE, BS_PHASE_PREPARE, BS_PHASE_MODEL, BS_PHASE_OUTPUT, BS_PHASES };
struct bs_steps {
    double steps[BS_STEP_KINDS];
    double wall_s[BS_STEP_KINDS];     /* engine thread, a step's start to its outputs */
    double device_s[BS_STEP_KINDS];   /* the backend's device seconds (0: not measured) */
    double phase_s[BS_PHASES];
    /* pagoda:engine_step_output_push_seconds_total, the output phase's stream pushes; a
     * server from before that counter has none (has_push false) */
    double push_s;
    bool has_push;
    /* pagoda:engine_steps_overlapped_total (async scheduling: steps submitted while the
     * one before flew); a server from before that counter has none (has_overlapped false) */
    double overlapped;
    bool has_overlapped;
};

/* Reads the counters out of a /metrics body (text[0, len), any other series and malformed
 * lines skipped). true when every one of the 10 series was there with a finite value >= 0;
 * false for a server without them (vLLM), leaving *out partly filled. */
bool bs_steps_parse(const char *text, size_t len, struct bs_steps *out);

/* after - before into *d; false when a counter went down (the server restarted between the
 * scrapes). */
bool bs_steps_diff(const struct bs_steps *before, const struct bs_steps *after,
                   struct bs_steps *d);

/* Prints the "Server steps" section of the differences d to out and returns its object
 * (the "server_steps" key: steps, decode_only_steps, mixed_steps, the mean wall and device
 * ms of a step of each kind, the phases' mean ms a step, and the seconds summed, so that
 * runs can be added), or NULL when out of memory. duration_s: the timed run's, for the share
 * of it the engine spent in steps. */
json_t *bs_steps_report(const struct bs_steps *d, double duration_s, FILE *out);

#endif
