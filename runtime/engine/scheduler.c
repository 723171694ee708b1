/* The scheduler (see scheduler.h): sequences (their tokens and KV blocks), the waiting and
 * running and swapped queues, and each step's plan: a token budget per step, chunked
 * prefill, preemption by recompute or by swapping (the copies are the plan's lists; the
 * block bookkeeping is runtime/kv/kv_swap.c's). */
#include "runtime/engine/scheduler.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

enum pgd_status pgd__seq_init(struct pgd__seq *s, uint64_t id, const int32_t *prompt,
                              int n_prompt, int max_total, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    PGD_ASSERT(n_prompt > 0 && max_total >= n_prompt);
    s->tokens = malloc((size_t)max_total * sizeof *s->tokens);
    if (!s->tokens)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "request %llu: no memory for %d tokens",
                        (unsigned long long)id, max_total);
    memcpy(s->tokens, prompt, (size_t)n_prompt * sizeof *prompt);
    s->id = id;
    s->n_tokens = s->n_prompt = n_prompt;
    s->tokens_cap = max_total;
    s->use_prefix_cache = true;
    s->n_cached_tokens = -1;
    return PGD_OK;
}

void pgd__seq_fini(struct pgd__seq *s)
{
    pgd__kv_seq_fini(&s->kv);
    free(s->tokens);
    s->tokens = NULL;
}

void pgd__seq_append(struct pgd__seq *s, int32_t token)
{
    PGD_ASSERT(s->n_tokens < s->tokens_cap);
    s->tokens[s->n_tokens++] = token;
}

void pgd__seq_drop_spec(struct pgd__seq *s)
{
    s->n_tokens -= s->n_spec;
    s->n_spec = 0;
}

enum pgd_status pgd__scheduler_init(struct pgd__scheduler *s, const struct pgd__sched_params *p,
                                    struct pgd__kv_manager *kv, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (p->max_num_seqs <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "scheduler: max_num_seqs must be positive (got %d)", p->max_num_seqs);
    if (p->max_num_batched_tokens <= 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "scheduler: max_num_batched_tokens must be positive (got %d)",
                        p->max_num_batched_tokens);
    if (p->long_prefill_token_threshold < 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "scheduler: "
                        "long_prefill_token_threshold must be 0 (off) or positive (got %d)",
                        p->long_prefill_token_threshold);
    s->p = *p;
    s->kv = kv;
    s->headroom.lag = p->async_scheduling ? 1 : 0;
    s->out.seqs = malloc((size_t)p->max_num_seqs * sizeof *s->out.seqs);
    s->out.n_new = malloc((size_t)p->max_num_seqs * sizeof *s->out.n_new);
    if (!s->out.seqs || !s->out.n_new) {
        pgd__scheduler_fini(s);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "scheduler: no memory");
    }
    return PGD_OK;
}

void pgd__scheduler_fini(struct pgd__scheduler *s)
{
    free(s->waiting);
    free(s->running);
    free(s->swapped);
    pgd__swap_list_fini(&s->out.swap_out);
    pgd__swap_list_fini(&s->out.swap_in);
    free(s->out.seqs);
    free(s->out.n_new);
    free(s->hits);
    pgd__headroom_fini(&s->headroom);
    memset(s, 0, sizeof *s);
}

/* Whether a goes before b in the waiting queue under PRIORITY. */
static bool prio_before(const struct pgd__seq *a, const struct pgd__seq *b)
{
    return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
}

/* Inserts seq (borrowed) at index at of the waiting queue. */
static void waiting_insert_at(struct pgd__scheduler *s, int at, struct pgd__seq *seq)
{
    pgd__array_reserve_or_oom(s->waiting, s->waiting_cap, (size_t)s->n_waiting + 1,
                              "scheduler: waiting queue");
    memmove(s->waiting + at + 1, s->waiting + at,
            (size_t)(s->n_waiting - at) * sizeof *s->waiting);
    s->waiting[at] = seq;
    s->n_waiting++;
    seq->status = PGD__SEQ_WAITING;
}

/* New sequences go to the back (FCFS) or to their priority's place; preempted ones to the
 * front (FCFS: they were admitted before everything still waiting). */
static void waiting_push(struct pgd__scheduler *s, struct pgd__seq *seq, bool preempted)
{
    int at = s->n_waiting;
    if (s->p.policy == PGD_SCHED_PRIORITY) {
        int lo = 0, hi = s->n_waiting;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (prio_before(s->waiting[mid], seq))
                lo = mid + 1;
            else
                hi = mid;
        }
        at = lo;
    } else if (preempted) {
        at = 0;
    }
    waiting_insert_at(s, at, seq);
}

/* Removes arr[i] of *n entries, keeping the order of the rest. */
static void remove_at(struct pgd__seq **arr, int *n, int i)
{
    memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
    (*n)--;
}

void pgd__scheduler_add(struct pgd__scheduler *s, struct pgd__seq *seq)
{
    PGD_ASSERT(seq->status == PGD__SEQ_NEW);
    waiting_push(s, seq, false);
}

/* The running sequence to preempt: under PRIORITY the one that goes last (the lowest
 * priority, newest among equals); under FCFS the one whose recomputation costs least (the
 * fewest computed tokens, the newest among equals) with preempt_cheapest, else the newest. */
static int pick_victim(const struct pgd__scheduler *s)
{
    int v = s->n_running - 1;
    if (s->p.policy == PGD_SCHED_PRIORITY) {
        for (int i = 0; i < s->n_running; i++)
            if (prio_before(s->running[v], s->running[i]))
                v = i;
    } else if (s->p.preempt_cheapest) {
        for (int i = s->n_running - 2; i >= 0; i--)
            if (s->running[i]->n_computed < s->running[v]->n_computed)
                v = i;
    }
    return v;
}

/* Plans n_new tokens of seq (borrowed) this step. */
static void out_push(struct pgd__sched_out *o, struct pgd__seq *seq, int n_new)
{
    o->seqs[o->n] = seq;
    o->n_new[o->n] = n_new;
    o->n++;
    o->n_tokens += n_new;
}

/* Whether preempting seq swaps it out rather than dropping its KV (struct
 * pgd__sched_params: preemption_mode). */
static bool swaps(const struct pgd__scheduler *s, const struct pgd__seq *seq)
{
    enum pgd_preemption_mode m = s->p.preemption_mode;
    if (m == PGD_PREEMPT_RECOMPUTE || seq->n_computed <= 0 ||
        (m == PGD_PREEMPT_AUTO && seq->n_computed < s->p.swap_min_tokens))
        return false;
    return pgd__kv_can_swap_out(s->kv, &seq->kv, seq->n_computed);
}

/* Queues seq (swapped out just now) in the swapped queue, in the order the waiting queue
 * would hold it (PRIORITY: its priority's place; FCFS: admission order, as it was admitted
 * before anything still waiting). */
static void swapped_push(struct pgd__scheduler *s, struct pgd__seq *seq)
{
    int at = s->n_swapped;
    while (at > 0 && (s->p.policy == PGD_SCHED_PRIORITY ? prio_before(seq, s->swapped[at - 1])
                                                        : seq->arrival < s->swapped[at - 1]->arrival))
        at--;
    pgd__array_reserve_or_oom(s->swapped, s->swapped_cap, (size_t)s->n_swapped + 1,
                              "scheduler: swapped queue");
    memmove(s->swapped + at + 1, s->swapped + at,
            (size_t)(s->n_swapped - at) * sizeof *s->swapped);
    s->swapped[at] = seq;
    s->n_swapped++;
    seq->status = PGD__SEQ_SWAPPED;
}

/* Preempts running[v]: swaps it out (swaps()) or releases its blocks and queues it for
 * recomputation. If it was already planned this step, unplans it and gives its tokens back
 * to the budget. */
static void preempt(struct pgd__scheduler *s, int v, int *budget)
{
    struct pgd__seq *seq = s->running[v];
    remove_at(s->running, &s->n_running, v);
    struct pgd__sched_out *o = &s->out;
    for (int i = 0; i < o->n; i++)
        if (o->seqs[i] == seq) {
            *budget += o->n_new[i];
            o->n_tokens -= o->n_new[i];
            memmove(o->seqs + i, o->seqs + i + 1, (size_t)(o->n - i - 1) * sizeof *o->seqs);
            memmove(o->n_new + i, o->n_new + i + 1, (size_t)(o->n - i - 1) * sizeof *o->n_new);
            o->n--;
            break;
        }
    /* Either way it goes on from verified tokens only, and the draft model's KV starts
     * over (it is not swapped; a prefix hit's blocks need not hold it). */
    pgd__seq_drop_spec(seq);
    seq->n_draft_computed = 0;
    seq->n_preemptions++;
    s->n_preemptions++;
    o->n_preempted++;
    if (swaps(s, seq)) {
        /* Swap-outs precede swap-ins in a plan (kv_manager.h): a plan that swaps in never
         * preempts after (schedule_swapped runs last but for admissions). */
        PGD_ASSERT(o->swap_in.n == 0);
        int before = o->swap_out.n;
        pgd__kv_swap_out(s->kv, &seq->kv, seq->n_computed, &o->swap_out);
        s->n_swapped_out++;
        s->n_blocks_swapped_out += (uint64_t)(o->swap_out.n - before);
        swapped_push(s, seq);
        return;
    }
    pgd__kv_free(s->kv, &seq->kv);
    seq->n_computed = 0;
    waiting_push(s, seq, true);
}

/* A parallel-sampling child waits while its leader computes the shared prompt, so that it
 * finds the prompt in the prefix cache instead of computing it again. */
static bool waits_for_leader(const struct pgd__seq *seq)
{
    const struct pgd__seq *l = seq->leader;
    return l && l->status != PGD__SEQ_FINISHED && l->n_computed < l->n_prompt &&
           seq->n_computed == 0;
}

/* n_new as long_prefill_token_threshold bounds it: with chunked prefill only, and never
 * below a decode's token and its speculative ones (the bound is for prompts). */
static int cap_long_prefill(const struct pgd__scheduler *s, const struct pgd__seq *seq, int n_new)
{
    int t = s->p.long_prefill_token_threshold;
    if (!s->p.enable_chunked_prefill || t <= 0)
        return n_new;
    if (t < 1 + seq->n_spec)
        t = 1 + seq->n_spec;
    return n_new > t ? t : n_new;
}

/* Running sequences first, oldest first: each catches up by as much as the budget allows;
 * when the pool is short of blocks, running sequences are preempted (pick_victim) until it
 * fits, possibly itself. */
static void schedule_running(struct pgd__scheduler *s, int *budget)
{
    struct pgd__sched_out *o = &s->out;
    for (int i = 0; i < s->n_running && *budget > 0;) {
        struct pgd__seq *seq = s->running[i];
        int n_new = seq->n_tokens - seq->n_computed;
        if (n_new == 0) {
            /* Async scheduling: its last token is in a step in flight, and ends it. */
            s->n_ending++;
            i++;
            continue;
        }
        PGD_ASSERT(n_new > 0);
        n_new = cap_long_prefill(s, seq, n_new);
        if (n_new > *budget)
            n_new = *budget;
        bool self_preempted = false;
        while (!pgd__kv_allocate_slots(s->kv, &seq->kv, seq->n_computed + n_new, NULL, 0)) {
            int v = pick_victim(s);
            bool self = s->running[v] == seq;
            preempt(s, v, budget);
            if (self) {
                self_preempted = true;
                break;
            }
            /* Removing an earlier entry shifted seq down to i - 1. */
            if (v < i)
                i--;
        }
        if (self_preempted)
            continue;       /* running[i] is now the next one; it may fit in what was freed */
        if (n_new > *budget)      /* a planned victim gave budget back; never less */
            n_new = *budget;
        out_push(o, seq, n_new);
        *budget -= n_new;
        i++;
    }
}

/* Makes seq (holding its blocks for this step now) running, planned to compute n_new
 * tokens. */
static void run_planned(struct pgd__scheduler *s, struct pgd__seq *seq, int n_new, int *budget)
{
    seq->status = PGD__SEQ_RUNNING;
    pgd__array_reserve_or_oom(s->running, s->running_cap, (size_t)s->n_running + 1,
                              "scheduler: running batch");
    s->running[s->n_running++] = seq;
    out_push(&s->out, seq, n_new);
    *budget -= n_new;
}

/* Whether the headroom projection lets seq in with n_total tokens' blocks (take of them
 * from the free queue), adding it to the projection when it does (headroom_steps 0: always;
 * an idle pool admits its first sequence regardless: it alone can progress). */
static bool headroom_admits(struct pgd__scheduler *s, const struct pgd__seq *seq, int n_total,
                            int take)
{
    if (s->p.headroom_steps <= 0)
        return true;
    int held = pgd__kv_blocks_for(s->kv, n_total);
    if (s->n_running > 0 && pgd__block_pool_num_free(&s->kv->pool) - take <
                                pgd__headroom_peak_with(&s->headroom, s->kv, seq, held))
        return false;
    pgd__headroom_add(&s->headroom, s->kv, seq, held);
    return true;
}

/* Swapped sequences in queue order while budget, sequence slots and blocks last (the
 * headroom rule as for waiting ones): each gets fresh blocks for what it computed and this
 * step's new tokens, and the plan's swap_in lists the copies back. The first that does not
 * fit ends the pass. */
static void schedule_swapped(struct pgd__scheduler *s, int *budget)
{
    struct pgd__sched_out *o = &s->out;
    while (s->n_swapped > 0 && *budget > 0 && s->n_running - s->n_ending < s->p.max_num_seqs) {
        struct pgd__seq *seq = s->swapped[0];
        int n_new = seq->n_tokens - seq->n_computed;
        PGD_ASSERT(n_new > 0);
        if (!s->p.enable_chunked_prefill && n_new > *budget)
            break;
        n_new = cap_long_prefill(s, seq, n_new);
        if (n_new > *budget)
            n_new = *budget;
        int n_total = seq->n_computed + n_new;
        if (!headroom_admits(s, seq, n_total,
                             pgd__kv_blocks_to_allocate(s->kv, &seq->kv, n_total, NULL, 0)))
            break;
        int before = o->swap_in.n;
        if (!pgd__kv_swap_in(s->kv, &seq->kv, n_total, &o->swap_in))
            break;
        s->n_swapped_in++;
        s->n_blocks_swapped_in += (uint64_t)(o->swap_in.n - before);
        remove_at(s->swapped, &s->n_swapped, 0);
        run_planned(s, seq, n_new, budget);
    }
}

/* Waiting sequences in queue order while budget, sequence slots and blocks last: each takes
 * its prefix-cache hits (whole blocks) and computes the rest, in chunks when chunked
 * prefill is on. A sample waiting for its leader's prompt is passed over; the first one
 * that does not fit ends the pass (the queue's order is kept). */
static void schedule_waiting(struct pgd__scheduler *s, int *budget)
{
    int bs = s->kv->block_size;
    for (int w = 0; w < s->n_waiting && *budget > 0 &&
                    s->n_running - s->n_ending < s->p.max_num_seqs;) {
        struct pgd__seq *seq = s->waiting[w];
        if (waits_for_leader(seq)) {
            w++;
            continue;
        }
        PGD_ASSERT(seq->n_computed == 0 && seq->kv.n_blocks == 0);
        int n_hits = 0;
        if (seq->use_prefix_cache && s->kv->pool.caching) {
            /* At most one hit per full block of the sequence. */
            pgd__array_reserve_or_oom(s->hits, s->hits_cap, (size_t)(seq->n_tokens / bs + 1),
                                      "scheduler: prefix hits");
            n_hits = pgd__kv_find_prefix(s->kv, &seq->kv, seq->tokens, seq->n_tokens, s->hits);
        }
        int n_done = n_hits * bs;   /* tokens whose KV the hits already hold */
        int n_new = seq->n_tokens - n_done;
        if (!s->p.enable_chunked_prefill && n_new > *budget)
            break;
        n_new = cap_long_prefill(s, seq, n_new);
        if (n_new > *budget)
            n_new = *budget;
        /* What is left once it has its blocks must cover the projection's peak. */
        if (!headroom_admits(s, seq, n_done + n_new,
                             pgd__kv_blocks_to_allocate(s->kv, &seq->kv, n_done + n_new,
                                                        s->hits, n_hits)))
            break;
        if (!pgd__kv_allocate_slots(s->kv, &seq->kv, n_done + n_new, s->hits, n_hits))
            break;
        if (seq->use_prefix_cache && s->kv->pool.caching) {
            s->kv->prefix_queries += (uint64_t)seq->n_tokens;
            s->kv->prefix_hits += (uint64_t)n_done;
        }
        remove_at(s->waiting, &s->n_waiting, w);
        seq->n_computed = n_done;
        if (seq->n_cached_tokens < 0)
            seq->n_cached_tokens = n_done;
        seq->scheduled_once = true;
        run_planned(s, seq, n_new, budget);
    }
}

const struct pgd__sched_out *pgd__scheduler_schedule(struct pgd__scheduler *s)
{
    struct pgd__sched_out *o = &s->out;
    o->n = 0;
    o->n_tokens = 0;
    o->n_preempted = 0;
    o->swap_out.n = 0;
    o->swap_in.n = 0;
    s->n_ending = 0;
    int budget = s->p.max_num_batched_tokens;
    schedule_running(s, &budget);
    /* No sequence comes back or in in a step that had to preempt: the pool is tight. The
     * swapped ones go before any waiting one (they were admitted earlier). */
    if (o->n_preempted == 0 && (s->n_swapped > 0 || s->n_waiting > 0)) {
        if (s->p.headroom_steps > 0)
            pgd__headroom_begin(&s->headroom, s->kv, s->running, s->n_running,
                                s->p.headroom_steps);
        schedule_swapped(s, &budget);
        if (s->n_swapped == 0)
            schedule_waiting(s, &budget);
    }
    o->decode_only = o->n > 0;
    for (int i = 0; i < o->n && o->decode_only; i++)
        o->decode_only = o->n_new[i] == 1 && o->seqs[i]->n_computed + 1 == o->seqs[i]->n_tokens;
    return o;
}

/* The computed positions of seq whose tokens are verified and known: proposals' KV may yet
 * be rejected, and a placeholder's token is not known yet. */
static int known_computed(const struct pgd__seq *seq)
{
    int verified = seq->n_tokens - seq->n_spec - seq->n_pending;
    return seq->n_computed < verified ? seq->n_computed : verified;
}

void pgd__scheduler_cache_known(struct pgd__scheduler *s, struct pgd__seq *seq)
{
    if (seq->status == PGD__SEQ_RUNNING)
        pgd__kv_cache_blocks(s->kv, &seq->kv, seq->tokens, known_computed(seq));
}

void pgd__scheduler_update(struct pgd__scheduler *s, const struct pgd__sched_out *out)
{
    for (int i = 0; i < out->n; i++) {
        struct pgd__seq *seq = out->seqs[i];
        int from = seq->n_computed;
        seq->n_computed += out->n_new[i];
        PGD_ASSERT(seq->n_computed <= seq->n_tokens);
        /* Cache and slide over verified, known tokens only. */
        int upto = known_computed(seq);
        /* Positions it had computed before a preemption took them away. */
        int again = (seq->n_computed < seq->n_computed_high ? seq->n_computed
                                                           : seq->n_computed_high) - from;
        if (again > 0)
            s->n_recomputed += (uint64_t)again;
        if (upto > seq->n_computed_high)
            seq->n_computed_high = upto;
        pgd__kv_cache_blocks(s->kv, &seq->kv, seq->tokens, upto);
        pgd__kv_release_outside_window(s->kv, &seq->kv, upto, s->p.sliding_window);
    }
}

void pgd__scheduler_finish(struct pgd__scheduler *s, struct pgd__seq *seq)
{
    if (seq->status == PGD__SEQ_RUNNING) {
        for (int i = 0; i < s->n_running; i++)
            if (s->running[i] == seq) {
                remove_at(s->running, &s->n_running, i);
                break;
            }
    } else if (seq->status == PGD__SEQ_WAITING) {
        for (int i = 0; i < s->n_waiting; i++)
            if (s->waiting[i] == seq) {
                remove_at(s->waiting, &s->n_waiting, i);
                break;
            }
    } else if (seq->status == PGD__SEQ_SWAPPED) {
        for (int i = 0; i < s->n_swapped; i++)
            if (s->swapped[i] == seq) {
                remove_at(s->swapped, &s->n_swapped, i);
                break;
            }
        pgd__kv_swap_drop(s->kv, &seq->kv);
    }
    pgd__kv_free(s->kv, &seq->kv);
    seq->status = PGD__SEQ_FINISHED;
}
