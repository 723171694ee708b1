/* Internal to the engine's files (runtime/engine/engine_*.c): the engine's state, its
 * requests and their output streams, and the functions one file of the engine offers the
 * others. Tests and tools use engine_backend.h instead.
 *
 * Who runs where. Callers (any thread) submit and abort requests and read streams; one
 * engine thread (engine_step.c) owns everything a step touches: the scheduler, the KV
 * manager, the sampler, the step buffers and every request once it is queued.
 *
 * Locks (each guards the fields listed under it below):
 *   - e->mu + e->cv: the inbox (pending requests, abort ids, stop) and the few settings a
 *     caller may change while the engine runs. cv wakes the engine thread.
 *   - s->mu + s->cv (one per stream): the stream's queue of outputs, its reference count and
 *     its engine pointer. cv wakes the reader in pgd_stream_next.
 *   - e->stats_mu: the counters and histograms (engine_stats.c). A leaf: nothing else is
 *     taken while it is held.
 * Lock order: a stream's mu, then the engine's mu (pgd_stream_destroy queues an abort while
 * holding its stream's mu). The engine thread never holds e->mu while it takes a stream's mu
 * or stats_mu, and holds no lock while it runs a step. */
#ifndef PGD_RUNTIME_ENGINE_INTERNAL_H
#define PGD_RUNTIME_ENGINE_INTERNAL_H

#include "runtime/engine/bad_words.h"
#include "runtime/engine/engine_backend.h"
#include "runtime/base/workers.h"
#include "runtime/engine/engine_metrics.h"
#include "runtime/engine/scheduler.h"
#include "runtime/engine/stop.h"
#include "runtime/grammar/guide.h"
#include "runtime/kv/kv_manager.h"
#include "runtime/sample/sample_rows.h"
#include "runtime/spec/spec_config.h"
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PGD__MAX_LOGPROBS 20    /* vLLM's default max_logprobs */
#define PGD__MAX_N 256          /* parallel samples per request */

/* ---- outputs and streams (engine_stream.c) ------------------------------------------- */

/* One queued output; everything its pgd_output points to is owned by the record. */
struct pgd__out_rec {
    struct pgd__out_rec *next;
    struct pgd_output o;
    int32_t token;                  /* the (single) new token, if any */
    /* Its text is the reader's to make (engine_reader_text.c): PGD__TEXT_PUSH, the token
     * through the sample's detokenizer; PGD__TEXT_CHECK, then the stop strings looked for
     * (min_tokens reached, no stop token); PGD__TEXT_FLUSH, then what the detokenizer held.
     * 0: the text (if any) is already in o.text. */
    uint8_t text_op;
    char *text;                     /* owned; o.text points here (or at "") */
    struct pgd_token_logprobs lp;   /* of token */
    struct pgd_logprob *lp_top;     /* owned [n_top] */
    struct pgd_token_logprobs *plps;    /* owned; prompt logprobs (moved in from the request) */
    struct pgd_logprob *plp_top;    /* owned */
    char *stop_reason;              /* owned; the stop string that matched */
    char *error;                    /* owned; o.error (PGD_FINISH_ERROR) */
    float *embedding;               /* owned; a pooling request's vector (o.embedding) */
};

/* A request's outputs, from the engine thread to the caller. Two references: the caller's
 * (dropped by pgd_stream_destroy) and the engine's (dropped by pgd__stream_release_engine
 * when the request retires); the last one frees it. */
struct pgd_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    struct pgd__out_rec *head, *tail;   /* queued, oldest first; owned */
    struct pgd__out_rec *current;   /* the one last returned; freed by the next call */
    int n_final_queued;             /* outputs with a finish_reason queued so far */
    int n_final_read;
    int refs;                       /* the caller's and the engine's, and the notifier's
                                       while notify_pending */
    bool notify_pending;            /* queued quietly, its reader not woken yet */
    struct pgd_engine *engine;      /* borrowed; NULL once the engine let go */
    /* Fixed at creation: */
    int n_samples;
    uint64_t request_id;
    /* The samples' detokenizers when the reader makes the text (engine_reader_text.c),
     * used by the reader alone (pgd_stream_next); owned; NULL: the engine makes it. */
    struct pgd__reader_text *text;
};

/* ---- text made on the reader's thread (engine_reader_text.c) ---------------------------
 * The engine thread makes no text: a request's outputs carry their token and a text_op,
 * and pgd_stream_next detokenizes them on the reader's thread (the samples' detokenizer
 * states live in the stream). Stop strings are looked for there too, as vLLM's front end
 * does: a sample whose text reaches one ends on the reader's side (its output becomes the
 * last, finish "stop"), the engine is told (pgd__engine_stop_sample) and ends it at its next
 * step, and the reader drops the outputs that sample still had queued. The tokenizer is
 * shared by reference (struct pgd__text_share): a stream read after pgd_engine_destroy still
 * has it. PAGODA_READER_TEXT=0 keeps all text on the engine thread (engine_emit.c). */
enum { PGD__TEXT_PUSH = 1, PGD__TEXT_FLUSH = 2, PGD__TEXT_CHECK = 4 };

/* The engine's text functions (tio), freed with the last reference: the engine's and one a
 * stream whose reader makes its text. */
struct pgd__text_share;
/* A share of tio (taking ownership of tio->ctx, freed by tio->destroy with the last
 * reference); NULL when out of memory (tio->ctx is then destroyed). */
struct pgd__text_share *pgd__text_share_new(const struct pgd__textio *tio);
void pgd__text_share_release(struct pgd__text_share *ts);
/* Adds to finished ([enum pgd_finish_reason]) the corrections the readers made: samples the
 * engine counted as ended by length (or aborted) that a stop string ended for the client
 * (NULL ts: none). */
void pgd__text_share_fix_finishes(struct pgd__text_share *ts, uint64_t finished[PGD_FINISH_N]);

/* n_samples detokenizer slots (NULL states) holding a reference to ts, with copies of the
 * request's stop strings (sp->stop, include_stop_str_in_output); NULL when out of memory.
 * Owned by the caller until a stream takes it (s->text). */
struct pgd__reader_text *pgd__reader_text_new(struct pgd__text_share *ts, int n_samples,
                                              const struct pgd_sampling_params *sp);
/* Slot i's detokenizer, started after the prompt (the engine's tio->detok_new). */
void pgd__reader_text_start(struct pgd__reader_text *t, int i, const int32_t *prompt,
                            int n_prompt, bool skip_special);
/* Frees the states and drops the reference (NULL is fine). */
void pgd__reader_text_free(struct pgd__reader_text *t);
/* r's text from r->token and r->text_op through sample r->o.index's detokenizer and stop
 * strings, into r->text / o.text (the reader's thread; records in their order). KEEP: r is
 * the reader's; STOPPED: r reached a stop string and is now its sample's last output
 * (finish "stop", stop_reason set), which the engine had not ended; DROP: r's sample had
 * already ended on the reader's side, and r is not to be seen. */
enum pgd__reader_text_verdict { PGD__RT_KEEP, PGD__RT_STOPPED, PGD__RT_DROP };
enum pgd__reader_text_verdict pgd__reader_text_make(struct pgd__reader_text *t,
                                                    struct pgd__out_rec *r);

/* Frees r and everything it owns (NULL is fine). */
void pgd__out_rec_free(struct pgd__out_rec *r);
/* Appends s[0, n) to r's text (r->text owned, o.text and o.text_len follow; nothing for
 * n == 0: o.text stays as it was, "" for a new record). */
void pgd__out_rec_append_text(struct pgd__out_rec *r, const char *s, size_t n);
/* r's stop_reason (owned by r, o.stop_reason follows): a copy of the stop string. */
void pgd__out_rec_set_stop_reason(struct pgd__out_rec *r, const char *stop);
/* A stream for request id with n_samples samples, holding both references; NULL when out
 * of memory. The caller sets s->engine. */
struct pgd_stream *pgd__stream_create(uint64_t id, int n_samples);
/* Frees s, its queued outputs and its locks, whatever its references (for a stream that
 * was never handed out). */
void pgd__stream_free(struct pgd_stream *s);
/* Engine thread: queues r (ownership moves to the stream) and wakes the reader. */
void pgd__stream_push(struct pgd_stream *s, struct pgd__out_rec *r);
/* Engine thread: queues r without waking the reader. true: s was not waiting for a wake
 * yet and now holds a reference for it; the caller hands s to the notifier
 * (pgd__notifier_add), which wakes it with pgd__stream_wake. */
bool pgd__stream_push_quiet(struct pgd_stream *s, struct pgd__out_rec *r);
/* Notifier thread: wakes s's reader and drops the reference push_quiet took (s may be
 * freed on return). */
void pgd__stream_wake(struct pgd_stream *s);

/* The thread that wakes the readers of quietly pushed outputs (engine_notify.c). */
struct pgd__notifier {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* the thread waits on it for streams */
    /* Under mu: */
    struct pgd_stream **queue;      /* [n] streams to wake, each holding a reference */
    size_t n, cap;
    bool stop;
    /* Engine thread only: this step's streams, handed over by pgd__notifier_flush. */
    struct pgd_stream **pending;
    size_t n_pending, pending_cap;
};
enum pgd_status pgd__notifier_start(struct pgd__notifier *nt, char *err, size_t errlen);
/* Engine thread: s (which push_quiet returned true for) is to be woken at the flush. */
void pgd__notifier_add(struct pgd__notifier *nt, struct pgd_stream *s);
/* Engine thread: hands the step's streams to the notifier thread (one signal). */
void pgd__notifier_flush(struct pgd__notifier *nt);
/* Flushes, lets the thread wake what is left, joins it and frees the queues; a no-op for
 * one never started. After the engine thread ended. */
void pgd__notifier_stop(struct pgd__notifier *nt);
/* Engine thread: drops the engine's reference (s may be freed on return). */
void pgd__stream_release_engine(struct pgd_stream *s);

/* ---- requests (engine_submit.c builds them, the engine thread runs them) -------------- */

struct pgd__req;

/* One sample of a request (the n of pgd_sampling_params): a sequence of its own. */
struct pgd__child {
    struct pgd__seq seq;            /* owned; seq.owner points back here */
    struct pgd__req *req;           /* the request it belongs to */
    int index;                      /* its pgd_output.index */
    struct pgd__stop_text stop;     /* owned; the text released so far, held back for stops */
    void *detok;                    /* owned detokenizer state, or NULL (no text) */
    int n_out;                      /* tokens generated */
    struct pgd__gmatch *gm;         /* owned; structured output's matcher, or NULL */
    /* The tokens it may take after mask_at tokens (prompt and output), for a constrained
     * sample or one with bad words: owned [pgd__mask_words(vocab)], NULL until needed
     * (engine_mask.c); mask_at -1: not computed. */
    uint32_t *mask;
    int mask_at;
    /* Async scheduling: tokens jump-forward took over the placeholder of the step in flight
     * (its row samples the token the grammar forces): that row's result is dropped when it
     * lands (engine_step.c). 0 or 1. */
    int n_ahead;
    bool guide_done;                /* the grammar is complete: the sample ends (stop) */
    /* Why its mask could not be made (owned; set by the thread that made it, read by the
     * engine thread after): the sample ends with PGD_FINISH_ERROR at its next token. */
    char *mask_error;
    bool done;
    double t_last_token;            /* for the inter-token latency */
};

struct pgd__req {
    struct pgd__req *prev, *next;   /* the inbox, then the engine thread's active list */
    uint64_t id;
    struct pgd_stream *stream;      /* one reference (the engine's) */
    struct pgd_sampling_params sp;  /* its arrays and guide are owned copies */
    struct pgd__guide *guide;       /* one reference (released to guides), or NULL */
    struct pgd__bad_words bw;       /* owned; sp.bad_words tokenized (bw.n 0: none) */
    struct pgd__guides *guides;     /* borrowed: the engine's */
    const struct pgd__vocab *vocab; /* borrowed (the guides'): token bytes, for the matcher */
    char *salt;                     /* owned cache_salt, or NULL */
    int priority;
    bool detokenize;
    bool reader_text;               /* detokenized by the stream's reader (stream->text) */
    int n_prompt;
    int max_out;                    /* generated tokens at most */
    uint64_t seed;
    int n_children, n_done;
    struct pgd__child *children;    /* owned [n_children] */
    /* Async scheduling: how many of its samples the step in flight holds. A request with
     * any is retired only once that step landed (pgd__req_retire waits for it). */
    int n_in_flight;
    /* Prompt logprobs for prompt tokens 1 .. n_prompt-1, filled as chunks compute; moved to
     * the first output of child 0. Owned: plps [n_prompt - 1], plp_top [n_prompt - 1, k]. */
    struct pgd_token_logprobs *plps;
    struct pgd_logprob *plp_top;
    double t_arrival, t_first_token;
    double t_scheduled;             /* first in a step (the prefill time starts); 0: not yet */
    bool scheduled;                 /* has been in a step (for the queue time) */
    /* A pooling request (engine_pool.c): one child, no sampling; pool_acc [hidden_size]
     * (owned) gathers its rows across the chunks of its prompt. */
    enum pgd_pooling_type pooling;
    bool normalize;
    double *pool_acc;
};

/* Frees r and everything it owns (NULL is fine); tio frees the detokenizer states (NULL:
 * there are none). Does not touch r->stream. */
void pgd__req_free(struct pgd__req *r, const struct pgd__textio *tio);

/* ---- the engine ---------------------------------------------------------------------- */

/* One step's buffers for the backend: its sequences' descriptors and its logits rows, what
 * became of them, and (async scheduling) its plan's sequences, which outlive the
 * scheduler's plan while the step is in flight. The engine has two: the step being planned
 * (e->cur) and the step in flight (e->flight). */
struct pgd__step_set {
    struct pgd__seq **seqs;         /* [max_num_seqs] the plan's sequences (in flight) */
    struct pgd__step_seq *ss;       /* [max_num_seqs] the step's sequences, for the backend */
    struct pgd__sample_row *rows;   /* [max_num_batched_tokens] the step's logits rows */
    struct pgd__sample_result *res; /* [max_num_batched_tokens] what became of them */
    int n, n_rows;                  /* sequences and rows (in flight) */
    /* Some rows are allow_late (async scheduling): their masks are made and the backend's
     * submit_masks called once the step before has landed (engine_async.c). */
    bool late_masks;
};

/* A sample to end as a stop at the engine's next round (pgd__engine_stop_sample). */
struct pgd__sample_stop {
    uint64_t request_id;
    int index;
};
/* Any thread (a stream's reader, holding its stream's mu: the lock order of
 * pgd_stream_destroy): sample `index` of request_id reached a stop string on the reader's
 * side; the engine thread ends it (pgd__child_stop_by_reader). */
void pgd__engine_stop_sample(struct pgd_engine *e, uint64_t request_id, int index);

struct pgd_engine {
    /* Fixed at creation. */
    struct pgd_engine_params p;
    struct pgd__engine_backend be;  /* owned (be.ctx) */
    struct pgd__textio tio;         /* tio.ctx owned by text_share when has_tio */
    bool has_tio;
    struct pgd__text_share *text_share; /* one reference; NULL without has_tio */
    /* Requests are detokenized, and their stop strings found, by their stream's reader
     * (engine_reader_text.c); PAGODA_READER_TEXT=0: by the engine thread, as all were. */
    bool reader_text;
    int max_model_len;
    int vocab;

    /* Engine thread only. */
    struct pgd__kv_manager kv;
    struct pgd__scheduler sched;
    struct pgd__sampler sampler;    /* the host path's */
    float *row;                     /* [vocab] the row being sampled (host path) */
    struct pgd__step_set sets[2];   /* owned buffers of cur and flight */
    struct pgd__step_set *cur;      /* the step being planned: one of sets */
    /* Async scheduling (p.async_scheduling on a backend with submit/collect, no
     * speculation, task generate): the step submitted and not yet landed (its outputs not
     * handled), the other of sets; NULL when none. */
    struct pgd__step_set *flight;
    bool async;
    struct pgd__req *active;        /* owned; admitted requests, newest first */
    bool device_sampling;           /* the thread's copy of !no_device_sampling */
    struct pgd__spec_config spec;   /* speculative decoding (fixed at creation) */
    enum pgd_pooling_type pool_type;    /* task embed: the pooler_config's (fixed) */
    bool pool_normalize;
    struct pgd__spec_scratch *spec_scratch;   /* owned; draft-model steps (engine_spec.c) */
    bool jump_forward;              /* the thread's copy of !no_jump_forward */
    /* Structured output's masks: the rows a step makes masks for (engine_mask.c), and the
     * helpers that make them with the engine thread when there are several (made when
     * first needed, mask_threads of them; 0: the engine thread alone). */
    struct pgd__mask_job *mask_jobs;    /* owned [max_num_seqs] */
    struct pgd__child **jump_cs;    /* owned [max_num_seqs]: a landing step's jump-forward */
    struct pgd__workers *mask_workers;  /* owned */
    int mask_threads;               /* the thread's copy of mask_threads_set */
    atomic_long mask_shared_steps;  /* mask batches shared with the helpers (tests read) */

    /* Compiled guides (structured output), shared by the requests; NULL without a
     * tokenizer. Thread-safe (its own lock). */
    struct pgd__guides *guides;
    const float *hidden;            /* a pooling step's rows (the backend's, see step_hidden) */
    struct pgd__notifier notifier;  /* wakes the streams' readers (engine_notify.c) */
    double step_push_s;             /* engine thread: this step's stream pushes so far
                                       (pgd__emit_token), filed by pgd__stats_on_step_times */

    /* Under mu (cv: the engine thread waits on it for work). */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pgd__req *pending_head, *pending_tail;   /* owned; submitted, not yet admitted */
    uint64_t *aborts;               /* owned [aborts_cap]; request ids to abort */
    int n_aborts;
    size_t aborts_cap;
    struct pgd__sample_stop *sample_stops;  /* owned [sample_stops_cap]: samples whose
                                               reader saw a stop string */
    int n_sample_stops;
    size_t sample_stops_cap;
    bool stop;                      /* destroy asked the thread to end */
    uint64_t next_id;
    uint64_t seed_state;            /* splitmix64 state for requests without a seed */
    bool paranoid;                  /* check invariants after every step (tests) */
    bool no_device_sampling;        /* always take full logits (tests) */
    bool no_jump_forward;           /* never append forced tokens (tests compare) */
    bool held;                      /* take no new requests (pgd__engine_hold; tests) */
    int mask_threads_set;           /* mask helpers (pgd__engine_set_mask_threads) */
    int headroom_steps;             /* the scheduler's KV policy, copied into its params */
    bool preempt_cheapest;          /* by the engine thread (pgd__engine_set_kv_policy) */

    /* Under stats_mu (engine_stats.c). */
    pthread_mutex_t stats_mu;
    struct pgd_engine_stats stats;
    struct pgd__engine_metrics metrics;   /* histograms and labels (engine_metrics.h) */
};

/* Seconds on the monotonic clock: arrival, token and finish times (engine_stats.c). */
double pgd__engine_now(void);

/* ---- the engine thread (engine_step.c) ------------------------------------------------ */

/* The engine thread's body (arg: the engine); returns when e->stop is set, after aborting
 * every request it holds. */
void *pgd__engine_main(void *arg);
/* A step's run through the backend (sampled there, or its logits sampled on the host) into
 * e->cur->res; its outputs emitted from step set s (sequences seqs [n]); the retirement of
 * the requests whose samples all finished (one the step in flight holds waits). */
enum pgd_status pgd__engine_run_step(struct pgd_engine *e, int n_seqs, int n_rows, char *err,
                                     size_t errlen);
void pgd__engine_emit_results(struct pgd_engine *e, struct pgd__seq *const *seqs, int n,
                              const struct pgd__step_set *s);
void pgd__engine_retire_finished(struct pgd_engine *e);

/* ---- async scheduling (engine_async.c); engine thread only ---------------------------- */

/* Whether the step in flight (e->flight) must land before the next step is planned. */
bool pgd__flight_must_land(const struct pgd_engine *e);
/* The step in flight lands now: collected, its outputs emitted, finished requests retired,
 * the gauges set. False when it failed (every request was aborted then). */
bool pgd__flight_land(struct pgd_engine *e);
/* The planned step o (prepared in e->cur, n_rows rows) is submitted, the scheduler updated,
 * placeholders added; it becomes the step in flight and the one before lands. t[3] is
 * stamped once that one's results are in (or at once). False when a step failed (every
 * request was aborted then). */
bool pgd__flight_submit(struct pgd_engine *e, const struct pgd__sched_out *o, int n_rows,
                        uint64_t prompt_computed, int step_tokens, double t[5]);

/* ---- allowed-token masks and jump-forward (engine_mask.c); engine thread only -------- */

/* Each sampled row of the step o (prepared in e->cur) whose sample is constrained
 * (structured output) or has a bad word that bans a token now gets its allowed-token mask
 * (row->ctx.allow: the child's mask, valid until its next token). With a backend that
 * samples late (submit_masks), a row whose context ends in the step in flight's token is
 * marked allow_late instead (e->cur->late_masks): its mask waits for that token. */
void pgd__engine_row_masks(struct pgd_engine *e, const struct pgd__sched_out *o);
/* A row whose mask is to be made (by the engine thread or a mask helper). */
struct pgd__mask_job {
    struct pgd__child *c;
    struct pgd__sample_row *row;    /* the row it is for, or NULL (jump-forward's look) */
    int n_all;                      /* after this many of the sequence's tokens */
};
/* From this many walks of the vocabulary (grammar states not in their guide's cache,
 * milliseconds each) a step shares its masks with the mask helpers. */
#define PGD__MASK_PARALLEL_MIN 2

/* The masks of step s's allow_late rows, once the step before has landed (every context
 * whole, every matcher past its token); a sample that ended meanwhile gets none (its row's
 * result is dropped). */
void pgd__engine_late_masks(struct pgd_engine *e, struct pgd__step_set *s);
/* Child c (constrained) took tok: its matcher takes the token's bytes (EOS and stop ids end
 * the sample instead); a complete grammar ends the sample with "stop" (c->guide_done). */
void pgd__guide_advance(const struct pgd_engine *e, struct pgd__child *c, int32_t tok);
/* Jump-forward for the constrained samples cs [n] (distinct) that took a token in a landed
 * step: while a sample's grammar (and bad words) allow exactly one token, and it is neither
 * EOS nor a stop id, the token is appended and emitted without a model step (the next step
 * computes them all with the last sampled one). The sampler would have taken it anyway (one
 * allowed token: whatever the temperature, penalties, bias or seed), so the output is the
 * same, in fewer steps. Not for requests with logprobs (a forced token has no logits to
 * rank). Every sample's first look is made at once, its walks of the vocabulary shared
 * with the mask helpers; those masks then serve the next step's rows. Under async
 * scheduling, when the step in flight samples c's next token, a forced token goes over its
 * placeholder at once (c->n_ahead), so that the next step computes every forced token, as
 * in turn. */
void pgd__jump_forward(struct pgd_engine *e, struct pgd__child *const *cs, int n);

/* ---- speculative decoding (engine_spec.c); engine thread only ------------------------ */

/* The scratch of draft-model proposals (e->spec_scratch), made when the engine is. */
enum pgd_status pgd__spec_init(struct pgd_engine *e, char *err, size_t errlen);
void pgd__spec_fini(struct pgd_engine *e);
/* Before a step is scheduled: appends proposals (seq->n_spec of them) to each running
 * sequence that is decoding, so that the step verifies them. A no-op when speculation is
 * off. False when the draft model's step failed (every request was aborted then). */
bool pgd__spec_propose(struct pgd_engine *e);
/* After the step ran and the scheduler was updated: seq (with proposals, in the step with
 * its n_rows sample rows, results res) keeps the accepted proposals and the correction or
 * bonus token, drops the rest and the KV blocks they alone used, and emits the kept tokens
 * one by one (a stop inside the run ends it there). */
void pgd__spec_verify_emit(struct pgd_engine *e, struct pgd__seq *seq, int n_rows,
                           const struct pgd__sample_result *res);
/* After the step's outputs: drops the proposals of running sequences the step did not
 * reach (the budget ran out before them). */
void pgd__spec_drop_unverified(struct pgd_engine *e);

/* ---- the draft model (engine_draft.c), for pgd_engine_create ------------------------- */

/* Loads spec->model as *draft (owned by the caller) with the target's parameters rp and a
 * one-block pool, and sets rp->extra_block_bytes to the draft's block size in bytes. */
enum pgd_status pgd__engine_draft_open(const struct pgd__spec_config *spec,
                                       struct pgd__runner_params *rp,
                                       struct pgd__runner **draft, char *err, size_t errlen);
/* Once the target exists: checks the pair (the same vocabulary, no sliding window), gives
 * the draft a pool of the target's block count, captures its graphs. */
enum pgd_status pgd__engine_draft_finish(struct pgd__runner *draft,
                                         const struct pgd__runner *target, char *err,
                                         size_t errlen);

/* ---- emitting outputs (engine_emit.c); engine thread only --------------------------- */

/* Child c got `token` (already appended to its sequence): stop checks, text, the output on
 * its stream, and the child's end when it finished. res holds the token's logprobs when the
 * request asked for them (borrowed). */
void pgd__emit_token(struct pgd_engine *e, struct pgd__child *c, int32_t token,
                     const struct pgd__sample_result *res);
/* Ends every unfinished child of r with an abort output, then retires r (freed). */
void pgd__req_abort(struct pgd_engine *e, struct pgd__req *r);
/* Ends sample c, whose reader saw a stop string (pgd__engine_stop_sample), as a stop: its
 * blocks go back and a last output (finish "stop", no text) closes its part of the stream;
 * the reader drops it. Nothing when c already ended. */
void pgd__child_stop_by_reader(struct pgd_engine *e, struct pgd__child *c);
/* Removes r from the active list, lets go of its stream and frees it; nothing while the
 * step in flight holds one of its samples (it retires once that step landed). */
void pgd__req_retire(struct pgd_engine *e, struct pgd__req *r);
/* Aborts every active request (dropping the step in flight first). */
void pgd__engine_fail_all(struct pgd_engine *e);
/* engine_async.c: the step in flight (if any) is collected and its outputs dropped, its
 * requests free to retire: before every request is aborted. */
void pgd__engine_flight_drop(struct pgd_engine *e);

/* ---- pooling requests (engine_pool.c), task embed -------------------------------------- */

/* Submit: whether rp may run on e (a pooling request only on an embed engine, where every
 * request is one), with a message naming the field when not. */
enum pgd_status pgd__pool_validate(const struct pgd_engine *e, const struct pgd_request_params *rp,
                                   char *err, size_t errlen);
/* Engine thread: how many of a pooling sequence's n_new new tokens (from n_computed) need
 * their hidden row: the last when the step completes the prompt (LAST), all (MEAN), all of
 * the first chunk (CLS: row 0 is in it). */
int pgd__pool_n_rows(enum pgd_pooling_type pooling, int n_computed, int n_new, bool completes);
/* Engine thread, after the step: seq's hidden rows (ss->n_logits of them at rows) go into
 * its request's vector; the step that completes the prompt finishes the vector (mean,
 * normalization) and emits it as the request's one output, which ends it (its blocks go
 * back to the pool). */
void pgd__pool_take(struct pgd_engine *e, struct pgd__seq *seq, const struct pgd__step_seq *ss,
                    const float *rows);
/* engine_emit.c: child c's pooled vector vec [n] (ownership moves to the output) as its
 * last output (finish_reason stop); ends c. */
void pgd__emit_embedding(struct pgd_engine *e, struct pgd__child *c, float *vec, int n);

/* ---- stats (engine_stats.c): each takes stats_mu for its update ------------------------ */

/* A request was admitted: its prompt tokens, once per sample. */
void pgd__stats_on_admit(struct pgd_engine *e, const struct pgd__req *r);
/* A request was scheduled for the first time at time t: its queue time. */
void pgd__stats_on_scheduled(struct pgd_engine *e, const struct pgd__req *r, double t);
/* A step ran: its count, prompt tokens computed, the tokens it computed in all (the
 * iteration_tokens_total histogram), whether it was decode-only, and the scheduler's and
 * cache's counters. */
void pgd__stats_on_step(struct pgd_engine *e, uint64_t prompt_computed, int step_tokens,
                        bool decode_only);
/* A step's phases (engine_step.c): the times t[0] (start), t[1] (scheduled), t[2]
 * (prepared), t[3] (model step done), t[4] (outputs handled), its device seconds, and its
 * kind (the scheduler's decode_only of the same step), added to the split by kind. */
void pgd__stats_on_step_times(struct pgd_engine *e, const double t[5], double device_s,
                              bool decode_only);
/* Child c generated a token at time t (c->n_out already counts it, c->t_last_token is
 * still the previous one's); stamps the request's t_first_token on its first token. */
void pgd__stats_on_token(struct pgd_engine *e, const struct pgd__child *c, double t);
/* Child c finished for reason why (its blocks are back in the pool). */
void pgd__stats_on_finish(struct pgd_engine *e, const struct pgd__child *c,
                          enum pgd_finish_reason why);
/* A verify run: n_proposed proposals verified, the first n_accepted of them accepted. */
void pgd__stats_on_spec(struct pgd_engine *e, int n_proposed, int n_accepted);
/* The gauges: running and waiting sequences, KV cache usage. */
void pgd__stats_gauges(struct pgd_engine *e);

#endif
