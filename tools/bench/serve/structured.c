/* The structured-output share of `pagoda bench serve` (see structured.h): which requests
 * are constrained, the field that constrains them, and the report of the two kinds (and of
 * the unconstrained baseline run). */
#include "tools/bench/serve/structured.h"
#include <math.h>

bool bs_structured_pick(double ratio, int i)
{
    return ratio > 0 && (long)((i + 1) * ratio) > (long)(i * ratio);
}

bool bs_structured_add(json_t *b, const char *regex)
{
    return json_object_set_new(b, "structured_outputs", json_pack("{s:s}", "regex", regex)) == 0;
}

double bs_output_tps(const struct bs_result *res, int n, double duration_s)
{
    long tokens = 0;
    for (int i = 0; i < n; i++)
        tokens += res[i].success ? res[i].output_tokens : 0;
    return duration_s > 0 ? tokens / duration_s : 0;
}

/* Output tokens, completed requests and the mean TPOT of one kind (constrained or not). */
struct kind {
    long tokens;
    int n, completed, n_tpot;
    double tpot_sum;
};

static void tally(const struct bs_structured_in *in, struct kind k[2])
{
    for (int i = 0; i < in->n; i++) {
        const struct bs_result *x = &in->res[i];
        struct kind *c = &k[bs_structured_pick(in->ratio, i)];
        c->n++;
        if (!x->success)
            continue;
        c->completed++;
        c->tokens += x->output_tokens;
        if (x->output_tokens > 1) {
            c->tpot_sum += (x->latency_s - x->ttft_s) / (x->output_tokens - 1);
            c->n_tpot++;
        }
    }
}

bool bs_structured_report(const struct bs_structured_in *in, json_t *r, FILE *out)
{
    struct kind k[2] = { { 0 }, { 0 } };  /* [0] free, [1] constrained */
    tally(in, k);
    double d = in->duration_s > 0 ? in->duration_s : 1e-9;
    double tps[2] = { k[0].tokens / d, k[1].tokens / d };
    double tpot[2] = { k[0].n_tpot ? 1e3 * k[0].tpot_sum / k[0].n_tpot : 0,
                       k[1].n_tpot ? 1e3 * k[1].tpot_sum / k[1].n_tpot : 0 };
    double total = tps[0] + tps[1];
    bool base = in->baseline_tps >= 0;
    double ratio = base && in->baseline_tps > 0 ? total / in->baseline_tps : 0;

    fprintf(out, "%s\n", "----------------Structured Output----------------");
    fprintf(out, "%-40s %d of %d (regex \"%s\")\n", "Constrained requests:", k[1].n, in->n,
            in->regex);
    fprintf(out, "%-40s %-10.2f\n", "Output tok/s, constrained requests:", tps[1]);
    fprintf(out, "%-40s %-10.2f\n", "Output tok/s, unconstrained requests:", tps[0]);
    fprintf(out, "%-40s %-10.2f\n", "Mean TPOT, constrained (ms):", tpot[1]);
    fprintf(out, "%-40s %-10.2f\n", "Mean TPOT, unconstrained (ms):", tpot[0]);
    if (base) {
        fprintf(out, "%-40s %-10.2f\n", "Output tok/s, run without constraints:",
                in->baseline_tps);
        fprintf(out, "%-40s %-10.2f\n", "Output tok/s, this run:", total);
        fprintf(out, "%-40s %-10.1f\n", "This run / without constraints (%):", 100 * ratio);
    }
    json_t *keys = json_pack("{s:f, s:s, s:i, s:f, s:f, s:f, s:f, s:o, s:o}",
                             "structured_output_ratio", in->ratio,
                             "structured_output_regex", in->regex,
                             "num_constrained", k[1].n,
                             "constrained_output_throughput", tps[1],
                             "unconstrained_output_throughput", tps[0],
                             "constrained_mean_tpot_ms", tpot[1],
                             "unconstrained_mean_tpot_ms", tpot[0],
                             "baseline_output_throughput",
                             base ? json_real(in->baseline_tps) : json_null(),
                             "structured_output_throughput_ratio",
                             base ? json_real(ratio) : json_null());
    bool ok = keys && json_object_update(r, keys) == 0;
    json_decref(keys);
    return ok;
}
