/* Internal: the per-op time profile of forward steps (`pagoda bench latency --profile-ops`).
 *
 * The runner brackets an eager step's forward pass (step_begin, step_queued, step_end) and
 * the ops of runtime/runner/ops.c bracket themselves (op_begin, op_end) when the step's
 * struct pgd_fwd carries a profile; with none they cost one NULL test. On a GPU each
 * bracket is a pair of CUDA events, and the step runs behind a gate (kernels/cuda/prof.cu)
 * so that the events time the GPU's work and not the host's launches; on the CPU the ops
 * are timed with the host clock. Only top-level ops are timed (an op that another op runs,
 * e.g. a linear inside a fused op's reference path, counts in its caller).
 *
 * Each op reports what it is (op, a shape label without the batch, e.g. "4096 -> 28672")
 * and the FLOPs and the fewest bytes it must move; the profile adds calls, time, FLOPs and
 * bytes into one row per (op, shape) across steps.
 *
 * Beside the GPU's time each op also gets the host's: the host clock from its begin to its
 * end (two clock readings an op), i.e. what queueing the op cost the host -- its launches,
 * descriptor and plan work, and any wait inside it: a synchronization, an allocation, or a
 * launch blocked because the stream already holds as many pending launches as it can (about
 * a thousand: a step of more launches waits for the GPU from there on). On a GPU the gate
 * holds the GPU meanwhile, so such a wait lasts until the gate gives up: the step's gate
 * wait (host_wait_ms) says so. */
#ifndef PGD_RUNTIME_RUNNER_OP_PROFILE_H
#define PGD_RUNTIME_RUNNER_OP_PROFILE_H

#include <pagoda/status.h>
#include <pagoda/tensor.h>
#include <stdbool.h>
#include <stdio.h>

struct pgd_cuda_ctx;
struct pgd__op_profile;

/* One op's identity and cost. */
struct pgd__op_cost {
    const char *op;                  /* "linear", "attention", ... (static storage) */
    const char *kind;                /* "gemm", "attention", "norm", "elementwise", "other" */
    char shape[48];
    double flops, bytes;
};

/* One aggregated row. */
struct pgd__op_profile_row {
    char op[24], kind[16], shape[48];
    long calls;
    double ms, flops, bytes;
    double host_ms;                  /* the host's time inside the op's calls */
};

/* cuda: the runner's context on PGD_DEVICE_CUDA (NULL on the CPU). */
enum pgd_status pgd__op_profile_create(enum pgd_device dev, struct pgd_cuda_ctx *cuda,
                                       struct pgd__op_profile **out, char *err, size_t errlen);
void pgd__op_profile_destroy(struct pgd__op_profile *p);
/* Forgets the rows and steps so far. */
void pgd__op_profile_reset(struct pgd__op_profile *p);

/* The runner, around one step's forward pass: begin (holds the GPU's stream and marks the
 * start), queued (after the last op is queued: marks the end and lets the GPU go), end
 * (waits for the step and adds its ops into the rows). */
enum pgd_status pgd__op_profile_step_begin(struct pgd__op_profile *p, char *err, size_t errlen);
void pgd__op_profile_step_queued(struct pgd__op_profile *p);
enum pgd_status pgd__op_profile_step_end(struct pgd__op_profile *p, char *err, size_t errlen);

/* An op: begin returns its mark (-1: not timed, nested or past the step's capacity); end
 * takes the same mark and the op's cost. */
int pgd__op_profile_begin(struct pgd__op_profile *p);
void pgd__op_profile_end(struct pgd__op_profile *p, int mark, const struct pgd__op_cost *cost);

/* What was gathered: steps, their summed time (first mark to last), rows, and the ops that
 * were not timed because a step had more than the profile holds. */
long pgd__op_profile_steps(const struct pgd__op_profile *p);
double pgd__op_profile_step_ms(const struct pgd__op_profile *p);
/* The host's side of the steps, summed: from step_begin to step_queued (queueing the whole
 * forward pass), and the steps that took at least PGD__OP_PROFILE_HOST_WAIT_MS of it in one
 * op: a wait on the GPU inside the step (behind the gate: until it gave up). */
double pgd__op_profile_step_host_ms(const struct pgd__op_profile *p);
long pgd__op_profile_host_waits(const struct pgd__op_profile *p);
#define PGD__OP_PROFILE_HOST_WAIT_MS 50.0
int pgd__op_profile_n_rows(const struct pgd__op_profile *p);
const struct pgd__op_profile_row *pgd__op_profile_row(const struct pgd__op_profile *p, int i);
long pgd__op_profile_dropped(const struct pgd__op_profile *p);

/* The table, per step: op, shape, calls, microseconds, the host's microseconds, share of
 * the step, GFLOP and MB, the achieved TFLOP/s and GB/s, and the share of the tighter
 * ceiling (gbps: copy bandwidth, read + write; tflops: GEMM rate; 0 for unknown: no share
 * printed); then the totals per kind, and the host's time queueing a step. Rows by time,
 * largest first. */
void pgd__op_profile_print(const struct pgd__op_profile *p, FILE *out, double gbps,
                           double tflops);

/* The same rows (by time, largest first) as a JSON object: {"steps", "step_ms", "ops": [{"op",
 * "kind", "shape", "calls", "us", "host_us", "share", "gflop", "mb", "tflops", "gbps", "ceil_share"
 * and "bound" ("flops" or "bytes") null when unknown}], "between_ops_us",
 * "between_ops_share", "dropped"}, figures per step as the table gives them. A new reference
 * (the caller's), or NULL when out of memory. */
struct json_t;
struct json_t *pgd__op_profile_json(const struct pgd__op_profile *p, double gbps, double tflops);

#endif
