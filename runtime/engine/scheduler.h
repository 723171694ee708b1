/* Internal: the scheduler. There is no prefill or decode phase: every step, each scheduled
 * sequence's num_computed catches up with its n_tokens by as many tokens as the step's
 * token budget (max_num_batched_tokens) allows, for at most max_num_seqs sequences. Long
 * prompts are computed in chunks over several steps. Running sequences go first (oldest
 * first), then waiting ones (by policy) while budget, sequence slots and blocks last, and
 * with headroom_steps only while the pool keeps the blocks the running sequences need to
 * grow for that many steps; when a running sequence needs a block and the pool is short,
 * the running sequence with the fewest computed tokens (preempt_cheapest; else the newest;
 * the lowest priority one under PGD_SCHED_PRIORITY) is preempted, by one of two modes
 * (vLLM v0's --preemption-mode):
 * - recompute: its blocks are released and it goes to the front of the waiting queue to be
 *   recomputed later (its full blocks may well still be in the prefix cache then: they are
 *   freed tail first, so its head survives longest);
 * - swap: its computed blocks are copied to host blocks of the kv manager's swap pool
 *   (runtime/kv/kv_swap.c) and released, and it joins the swapped queue; swapped sequences
 *   come back (swapped in: fresh device blocks, the copies back) before any waiting one is
 *   admitted, in admission order, as vLLM v0's scheduler did.
 * The plan lists the copies (struct pgd__sched_out's swap_out, swap_in) for the caller to
 * run before the step. A step that preempted swaps nothing in and admits nothing.
 *
 * The scheduler owns neither sequences nor models: the engine (or a test) adds sequences,
 * runs the step it is handed, appends sampled tokens and tells the scheduler which
 * sequences finished. */
#ifndef PGD_RUNTIME_SCHEDULER_H
#define PGD_RUNTIME_SCHEDULER_H

#include "runtime/kv/kv_manager.h"
#include <pagoda/engine.h>

enum pgd__seq_status {
    PGD__SEQ_NEW = 0,       /* not yet added */
    PGD__SEQ_WAITING,       /* in the waiting queue (new or preempted) */
    PGD__SEQ_RUNNING,
    PGD__SEQ_SWAPPED,       /* preempted by swapping: its KV in host blocks (kv.swap_blocks) */
    PGD__SEQ_FINISHED,      /* removed from the scheduler; holds no blocks */
};

/* One sequence: a prompt and the tokens generated so far. Owned by whoever created it
 * (the engine's request); the scheduler keeps pointers while it is added. */
struct pgd__seq {
    uint64_t id;
    int32_t *tokens;            /* [n_tokens]: prompt then generated tokens, owned */
    int n_tokens, tokens_cap;
    int n_prompt;
    int n_computed;             /* tokens whose KV is in the cache */
    int n_spec;                 /* speculative decoding: the last n_spec of tokens are
                                   proposals, not yet verified (runtime/engine/engine_spec.c);
                                   never cached, dropped on preemption */
    int n_pending;              /* async scheduling: the last n_pending of tokens are
                                   placeholders for tokens a step in flight sampled
                                   (engine_step.c), filled in order as their steps land;
                                   never cached */
    int pending_row;            /* the logits row of the last placeholder in its step */
    int n_draft_computed;       /* draft-model speculation: tokens whose KV is in the draft
                                   model's cache (engine_spec.c); 0 after preemption */
    int priority;               /* lower runs first under PGD_SCHED_PRIORITY */
    uint64_t arrival;           /* submission order (ties of priority) */
    bool use_prefix_cache;      /* may take prefix hits (false with prompt logprobs) */
    struct pgd__seq *leader;    /* parallel-sampling sibling whose prompt this one waits
                                   for (to share it through the prefix cache), or NULL */
    enum pgd__seq_status status;
    struct pgd__kv_seq kv;
    int n_cached_tokens;        /* prefix-cache hit tokens when first scheduled; -1 before */
    int n_preemptions;
    int n_computed_high;        /* the most verified tokens whose KV it ever had: positions
                                   below it computed again after a preemption are
                                   recomputation (pgd__scheduler's n_recomputed) */
    bool scheduled_once;
    void *owner;                /* the engine's back pointer */
};

/* Initialises seq with a copy of the prompt. */
enum pgd_status pgd__seq_init(struct pgd__seq *s, uint64_t id, const int32_t *prompt,
                              int n_prompt, int max_total, char *err, size_t errlen);
void pgd__seq_fini(struct pgd__seq *s);
/* Appends a generated token (room for max_total tokens was reserved by init). */
void pgd__seq_append(struct pgd__seq *s, int32_t token);

struct pgd__sched_params {
    int max_num_seqs;
    int max_num_batched_tokens;
    bool enable_chunked_prefill;
    /* With chunked prefill, the most tokens one sequence computes in a step (vLLM's
     * long_prefill_token_threshold: a long prompt takes several steps even when the budget
     * would take it whole, so that the steps it shares with decodes stay short); 0: no
     * bound but the budget. */
    int long_prefill_token_threshold;
    enum pgd_sched_policy policy;
    int sliding_window;         /* every layer's window: release blocks it leaves; 0 = off */
    /* KV headroom: a waiting sequence is admitted (or a preempted one readmitted) only when
     * the free blocks left after its own cover the most that the admitted sequences and it
     * will need at once over the next headroom_steps decode steps, each growing a token a
     * step until its max_tokens and then giving its blocks back (struct pgd__headroom).
     * 0: vLLM v1's rule, admit while blocks last. A pool with nothing running admits its
     * first sequence regardless. */
    int headroom_steps;
    /* FCFS: preempt the running sequence with the fewest computed tokens (the cheapest to
     * recompute; the newest among equals) rather than simply the newest. */
    bool preempt_cheapest;
    /* How a preempted sequence gives its blocks up (PGD_PREEMPT_AUTO: swap when the
     * sequence has at least swap_min_tokens computed tokens and the swap pool has room,
     * else recompute; SWAP: swap whenever the pool has room; RECOMPUTE: never swap). A
     * kv manager without a swap pool always recomputes. */
    enum pgd_preemption_mode preemption_mode;
    int swap_min_tokens;
    /* Async scheduling: the step in flight lands after the next is planned, so a sequence
     * that computes its last token gives its blocks back a step later than stepping in
     * turn; the headroom projection counts that step (struct pgd__headroom's lag). */
    bool async_scheduling;
};

/* The engine's defaults for the two above (chosen with `pagoda bench scheduler`). */
#define PGD__SCHED_HEADROOM_STEPS_DEFAULT 512
/* preemption_mode auto: the fewest computed tokens worth swapping rather than recomputing
 * (see docs/PERFORMANCE.md, "Preemption by swapping"). */
#define PGD__SCHED_SWAP_MIN_TOKENS_DEFAULT 256

/* One step's plan: seqs[i] computes n_new[i] tokens starting at its n_computed. */
struct pgd__sched_out {
    struct pgd__seq **seqs;     /* [n], owned by the scheduler, valid until the next call */
    int *n_new;                 /* [n] */
    int n;
    int n_tokens;               /* sum of n_new */
    int n_preempted;            /* preemptions while making this plan */
    /* The block copies to run before the step, swap-outs first (kv_manager.h's ordering
     * rules); owned by the scheduler. */
    struct pgd__swap_list swap_out, swap_in;
    bool decode_only;           /* every planned sequence computes one new token, its
                                   last (the step a CUDA graph can run) */
};

/* The KV headroom projection (sched_headroom.c), rebuilt each step: g[t] is how many
 * blocks beyond those held now the admitted sequences need at the t-th coming step
 * (t = 0 .. steps), negative once finishing ones gave theirs back. */
struct pgd__headroom {
    long *g;                        /* [steps + 1], owned */
    size_t cap;
    int steps;
    /* Steps between a sequence's last token and its blocks coming back beyond the step
     * after it: 1 under async scheduling (that step lands after the next one is planned),
     * else 0. */
    int lag;
};
void pgd__headroom_fini(struct pgd__headroom *h);
/* Starts the projection from the running sequences (after their blocks for this step). */
void pgd__headroom_begin(struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                         struct pgd__seq *const *running, int n_running, int steps);
/* The most blocks beyond those held now that the projection needs at any step with seq
 * added (seq holds `held` block-table entries once allocated). */
long pgd__headroom_peak_with(const struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                             const struct pgd__seq *seq, int held);
/* Adds seq (as above) to the projection. */
void pgd__headroom_add(struct pgd__headroom *h, const struct pgd__kv_manager *kv,
                       const struct pgd__seq *seq, int held);

struct pgd__scheduler {
    struct pgd__sched_params p;
    struct pgd__kv_manager *kv;     /* borrowed */
    struct pgd__seq **waiting;      /* queue order (policy order for PRIORITY) */
    int n_waiting;
    size_t waiting_cap;
    struct pgd__seq **running;      /* scheduling order: oldest admitted first */
    int n_running;
    size_t running_cap;
    /* Of the running, those whose last token is in a step in flight (async scheduling),
     * counted by this plan: they end when it lands, so their slots of max_num_seqs are the
     * waiting ones' already (the plan never holds more than max_num_seqs). */
    int n_ending;
    struct pgd__seq **swapped;      /* swapped out, in the order they come back */
    int n_swapped;
    size_t swapped_cap;
    struct pgd__sched_out out;
    int32_t *hits;                  /* scratch for prefix lookups */
    struct pgd__headroom headroom;  /* scratch of schedule_waiting (headroom_steps > 0) */
    size_t hits_cap;
    uint64_t n_preemptions;         /* all-time */
    uint64_t n_recomputed;          /* all-time: tokens computed again after preemptions
                                       (prefix-cache hits on readmission are not) */
    uint64_t n_swapped_out, n_swapped_in;   /* all-time: sequences swapped out / in */
    uint64_t n_blocks_swapped_out, n_blocks_swapped_in;    /* all-time: blocks copied */
};

enum pgd_status pgd__scheduler_init(struct pgd__scheduler *s, const struct pgd__sched_params *p,
                                    struct pgd__kv_manager *kv, char *err, size_t errlen);
void pgd__scheduler_fini(struct pgd__scheduler *s);

/* Queues a new sequence (status NEW -> WAITING). seq is borrowed: the caller keeps it alive
 * until pgd__scheduler_finish. */
void pgd__scheduler_add(struct pgd__scheduler *s, struct pgd__seq *seq);
/* Plans a step (see struct pgd__sched_out). The plan is the scheduler's, valid until the
 * next call; its seqs are the callers' sequences. */
const struct pgd__sched_out *pgd__scheduler_schedule(struct pgd__scheduler *s);
/* After the step ran: advances each planned sequence's n_computed and caches its newly
 * full blocks (of verified tokens only: never a block holding a proposal). The caller then appends a token to every sequence that caught up
 * (n_computed == n_tokens) and calls pgd__scheduler_finish for those that are done. */
void pgd__scheduler_update(struct pgd__scheduler *s, const struct pgd__sched_out *out);
/* Async scheduling, once a placeholder of running seq got its token: caches the full blocks
 * of its known computed tokens that the last update could not (a sequence whose last token
 * ends it is not updated again). */
void pgd__scheduler_cache_known(struct pgd__scheduler *s, struct pgd__seq *seq);
/* Speculative decoding: drops seq's proposals (n_spec tokens at the tail of its tokens). */
void pgd__seq_drop_spec(struct pgd__seq *s);

/* Removes seq wherever it is (waiting, running or swapped), releasing its blocks (device
 * and host): finish or abort.
 * Must not be called between schedule and update for a planned sequence. */
void pgd__scheduler_finish(struct pgd__scheduler *s, struct pgd__seq *seq);

static inline bool pgd__scheduler_has_work(const struct pgd__scheduler *s)
{
    return s->n_waiting > 0 || s->n_running > 0 || s->n_swapped > 0;
}

#endif
