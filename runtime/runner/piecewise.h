/* Internal: piecewise CUDA graphs of eager steps (steps with prompt tokens, which the decode
 * graphs of runner_graph.h do not cover), as vLLM's piecewise mode runs them.
 *
 * A step of N tokens runs as one of Np rows, Np the smallest size of a token ladder that
 * holds N (16 to 256 by 16, then by 32 to 1,024, then by 128 to max_tokens): the forward
 * pass's ops between two attention ops are one captured graph (a "segment"), and each
 * attention op (rotary + K/V write + paged attention) and the final logits op run eagerly
 * between the segments on the step's own metadata (a "call"). What the segments read must
 * then not depend on the step beyond Np:
 *   - the token ids: copied into a fixed buffer of max_tokens ids (padding rows id 0);
 *   - the activations: the arena is reset every step and the forward pass allocates the
 *     same sizes in the same order for the same Np, so it hands out the same addresses (its
 *     fingerprint shows it, as for the decode graphs); whatever the calls allocate and
 *     whose size depends on the step (attention's split scratch, the logits and their
 *     gathered rows) comes from the top of the arena downward (pgd__arena_alloc_top;
 *     struct pgd_fwd's scratch_top), which the fingerprint and the segments' addresses never
 *     see: the arena reserved for the largest plain step has that room above a piecewise
 *     step's segments (the step runs plainly when it has not);
 *   - every other step input (positions, slots, block tables, query starts, logits rows) is
 *     read only by the calls, with the step's real N tokens (struct pgd_fwd's pw_tokens).
 * Padding rows are computed by the segments and never read by a call (no sequence holds
 * them; their attention output is whatever the arena held).
 *
 * A size's life, as the decode graphs': NONE -> WARM (its first step runs eagerly in this
 * layout and records the arena's fingerprint) -> CAPTURED (the second step's forward pass
 * is captured segment by segment, the calls recorded and not run, the fingerprint checked,
 * then the segments and calls replayed for that step; from then on only replayed, the
 * architecture's forward not run at all), or EAGER (capture failed, the fingerprint
 * differed, or an op read step inputs inside a segment: that size runs as plain eager
 * steps). The engine has every size warmed and captured before serving
 * (pgd__runner_capture_graphs); a runner used directly meets them lazily. The ops (ops.c)
 * call pgd__pw_boundary at each call site and run a recorded call with pgd__ops_run_call. Off unless PGD_CUDA_PIECEWISE=1 (until a GPU has measured it);
 * one GPU, logits steps (not pooling), no per-op profile. */
#ifndef PGD_RUNTIME_RUNNER_PIECEWISE_H
#define PGD_RUNTIME_RUNNER_PIECEWISE_H

#include <pagoda/ops.h>
#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgd_fwd;
struct pgd_cuda_ctx;
struct pgd_rope;
struct pgd_linear;

/* An op run eagerly between two segments, as recorded at capture: its kind and the
 * arguments the op's CUDA path takes (tensors at the arena's fixed addresses). */
enum pgd__pw_call_kind { PGD__PW_ROPE_ATTENTION, PGD__PW_ATTENTION, PGD__PW_LOGITS };
struct pgd__pw_call {
    enum pgd__pw_call_kind kind;
    int layer;
    struct pgd_attn_params p;
    const struct pgd_rope *rope;       /* rope_attention: borrowed from the model */
    const void *q_norm, *k_norm;       /* rope_attention: per-head norms (device) or NULL */
    float eps;
    struct pgd_tensor q, k, v, out;
    const void *rows;                  /* rope_attention: q, k, v side by side ([n, ld]) or NULL */
    int ld;
    struct pgd_tensor h;               /* logits: the final norm's output */
    const struct pgd_linear *head;     /* logits: borrowed from the model */
};

/* What a forward pass in the piecewise layout tells the ops (struct pgd_fwd's pw). */
enum pgd__pw_mode { PGD__PW_WARM, PGD__PW_CAPTURE };
struct pgd__pw_hook {
    enum pgd__pw_mode mode;
    struct pgd__pw *pw;
    int size;                          /* the ladder index being captured */
    bool failed;                       /* capture: a segment could not be captured */
    bool unsafe;                       /* an op of a segment read a step input */
    char why[160];                     /* the first failure */
};

struct pgd__pw;

/* max_tokens: the largest step to run so (its ladder's last size); 0 or less: off. */
enum pgd_status pgd__pw_create(int max_tokens, struct pgd__pw **out, char *err, size_t errlen);
void pgd__pw_destroy(struct pgd__pw *pw);
/* The ladder index of a step of n tokens, or -1 when no size holds it. */
int pgd__pw_size_index(const struct pgd__pw *pw, int n_tokens);
int pgd__pw_size(const struct pgd__pw *pw, int index);
int pgd__pw_n_sizes(const struct pgd__pw *pw);
/* The fixed device buffer of the token ids the segments read ([max_tokens] int32). */
int32_t *pgd__pw_ids(struct pgd__pw *pw);
enum pgd__pw_state { PGD__PW_NONE, PGD__PW_WARMED, PGD__PW_CAPTURED, PGD__PW_EAGER };
enum pgd__pw_state pgd__pw_state(const struct pgd__pw *pw, int index);

/* A warm pass of hook's size ran through and left the arena at fingerprint, its segments'
 * activations `bottom` bytes from the arena's start: WARMED, or EAGER (with a warning) when
 * an op of a segment read a step input. */
void pgd__pw_note_warm(struct pgd__pw *pw, const struct pgd__pw_hook *hook, uint64_t fingerprint,
                       size_t bottom);
/* That bottom (0 before the warm pass). */
size_t pgd__pw_bottom(const struct pgd__pw *pw, int index);
/* Starts capturing size index's first segment on c's stream; the hook for the forward
 * pass. */
enum pgd_status pgd__pw_capture_begin(struct pgd__pw *pw, int index, struct pgd_cuda_ctx *c,
                                      struct pgd__pw_hook *hook, char *err, size_t errlen);
/* An op at a call site of a forward pass in the piecewise layout: under capture the
 * segment so far is closed, the call recorded and the next segment opened (true: the op
 * must not run); when warming, false (the op runs). */
bool pgd__pw_boundary(struct pgd_fwd *f, const struct pgd__pw_call *call);
/* Ends the capture of hook's size after the forward pass (forward_ok: it ran through):
 * the last segment closed; CAPTURED when every segment was captured, no op was unsafe and
 * the arena's fingerprint is the warm pass's, else EAGER with a warning (*captured says
 * which). */
void pgd__pw_capture_end(struct pgd__pw *pw, struct pgd__pw_hook *hook, struct pgd_cuda_ctx *c,
                         bool forward_ok, uint64_t fingerprint, bool *captured);
/* Replays size index over f (the step's metadata, f->pw_tokens real tokens): each segment
 * launched, then its call run through pgd__ops_run_call. */
enum pgd_status pgd__pw_replay(struct pgd__pw *pw, int index, struct pgd_fwd *f, char *err,
                               size_t errlen);
/* Counts: replayed steps, sizes captured, sizes left eager. */
void pgd__pw_stats(const struct pgd__pw *pw, long *replays, int *captured, int *eager);

/* ops.c: runs a recorded call over f. */
void pgd__ops_run_call(struct pgd_fwd *f, const struct pgd__pw_call *call);
/* ops.c: the embedding's check of the step's ids, which a replay does not run (false: f has
 * failed, saying which id). */
bool pgd__ops_ids_in_vocab(struct pgd_fwd *f);

#endif
