/* CUDA graphs of decode-only steps (see runner_graph.h): the batch ladder and context
 * buckets, the padded batch at fixed addresses, and each shape's capture and replay.
 *
 * A decode-only step (every sequence adds one token and wants its one logits row) of B
 * sequences whose longest context is L runs as a step of Bp rows, Bp the smallest size of
 * the ladder 1, 2, 4, ... 64, 96, 128, 192, 256, 384, ... (capped at max_num_seqs;
 * pgd__graphs_default_ladder) that holds B, and of a context bucket
 * C = 256, 512, ... tokens, the smallest that holds L. Everything a captured kernel reads
 * is then fixed by (Bp, C):
 *   - the batch metadata sits at fixed offsets of a pinned host buffer and its device twin
 *     sized for the largest Bp and C (block tables Bp x C / block_size wide), copied with
 *     one host-to-device transfer before each replay;
 *   - padding rows are token 0 at position 0 with slot -1 (no K/V write) and a block table
 *     of block 0; their logits rows are computed and ignored;
 *   - attention gets its work items from a fixed buffer (one item a row) and plans its
 *     context split from C instead of L, so the split count is the graph's;
 *   - the activation arena is reset and the forward pass allocates the same sizes in the
 *     same order, so it hands out the same addresses: the first step of a (Bp, C) runs
 *     eagerly and records the arena's fingerprint (a hash of the addresses), the second is
 *     captured and its fingerprint must match (else that (Bp, C) stays eager, with a
 *     warning), later ones replay the graph.
 * The argmax (greedy steps), the sampling kernels (sampled steps) and the copy of the
 * logits back run after the graph, on the real rows only (the runner does those).
 *
 * This file never calls the runner: the runner asks it for a plan, a filled batch, and a
 * capture or replay, and runs the forward pass itself. */
#include "config.h"
#include "runtime/runner/runner_graph.h"
#include "runtime/runner/batch.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#define GRAPH_MAX_SIZES 32
#define GRAPH_MAX_BUCKETS 16
#define GRAPH_MIN_BUCKET 256
/* The fixed block-table buffer may take this much; longer contexts run eagerly. */
#define GRAPH_TABLE_BYTES ((size_t)64 << 20)

/* A shape's life: NONE (never run) -> WARM (ran eagerly once, fingerprint recorded) ->
 * CAPTURED (replayed from now on), or EAGER (capture failed: always eager). */
enum graph_state { G_NONE, G_WARM, G_CAPTURED, G_EAGER };

struct graph_entry {
    enum graph_state state;
    uint64_t fingerprint;              /* the arena's, after the forward pass */
    const float *logits;               /* [Bp, vocab] in the arena, where the graph writes */
    struct pgd_cuda_graph *graph;      /* owned; G_CAPTURED only */
};

struct pgd__graphs {
    int sizes[GRAPH_MAX_SIZES], n_sizes;   /* the batch ladder, ascending */
    int max_position_embeddings;           /* the model's (<= 0: unknown) */
    int n_buckets;                         /* buckets 256 << k, k < n_buckets */
    int max_width;                         /* block-table width of the largest bucket */
    int block_size, vocab_size;
    struct pgd__meta_layout L;             /* at the largest size and bucket */
    /* The pinned buffer the next fill writes: one of host_buf, which take turns under async
     * steps (the copy of the step in flight may still read the other). */
    char *meta_host;
    char *host_buf[2];                     /* owned, pinned; [1] made by the first turn */
    char *meta_dev;                        /* owned, device */
    int32_t *items_dev;                    /* owned, device [sizes[last], 4] */
    int32_t *ids_dev;                      /* owned, device [sizes[last]] argmax ids */
    bool capturing;                        /* between capture_begin and capture_end */
    struct graph_entry e[GRAPH_MAX_SIZES][GRAPH_MAX_BUCKETS];
    long replays;
    int captured;
};

void pgd__graphs_stats(const struct pgd__graphs *g, long *replays, int *captured)
{
    *replays = g ? g->replays : 0;
    *captured = g ? g->captured : 0;
}

int pgd__graphs_default_ladder(int max_batch, int *sizes, int cap)
{
    int n = 0;
    for (int b = 1; b < max_batch && n < cap - 1;) {
        sizes[n++] = b;
        /* Doubling to 64, then a padded batch at most 1.5x (to 256) and 1.33x (beyond) of
         * what it holds: the rows a padded step computes for nothing cost GEMM FLOPs once
         * the batch is past the weights-bound region. */
        b = b < 64 ? 2 * b : b < 128 ? b + 32 : b < 256 ? b + 64 : b + 128;
    }
    sizes[n++] = max_batch;
    return n;
}

bool pgd__graphs_warmup_shape(const struct pgd__graphs *g, int i, int *batch, int *context_len)
{
    if (!g || i < 0 || i >= g->n_sizes * g->n_buckets)
        return false;
    int k = i / g->n_sizes, maxpos = g->max_position_embeddings;
    /* The bucket's longest context, but no position past the model's last (the last bucket
     * may reach beyond it; any length above the bucket before selects it). */
    long cap = (long)GRAPH_MIN_BUCKET << k;
    *batch = g->sizes[i % g->n_sizes];
    *context_len = (int)(maxpos > 0 && maxpos < cap ? maxpos : cap);
    return true;
}

#ifndef PGD_HAVE_CUDA
enum pgd_status pgd__graphs_create(const struct pgd__graph_params *p, struct pgd__graphs **out,
                                   char *err, size_t errlen)
{
    (void)p, (void)err, (void)errlen;
    *out = NULL;
    return PGD_OK;
}
void pgd__graphs_destroy(struct pgd__graphs *g) { (void)g; }
#else

void pgd__graphs_destroy(struct pgd__graphs *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_sizes; i++)
        for (int k = 0; k < g->n_buckets; k++)
            pgd_cuda_graph_destroy(g->e[i][k].graph);
    pgd_cuda_host_free(g->host_buf[0]);
    pgd_cuda_host_free(g->host_buf[1]);
    pgd_cuda_free(g->meta_dev);
    pgd_cuda_free(g->items_dev);
    pgd_cuda_free(g->ids_dev);
    free(g);
}

static bool graphs_wanted(const struct pgd__graph_params *p)
{
    if (p->device != PGD_DEVICE_CUDA || p->enforce_eager)
        return false;
    const char *e = getenv("PAGODA_CUDA_GRAPHS");
    return !(e && (!strcmp(e, "0") || !strcmp(e, "off") || !strcmp(e, "false")));
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The batch ladder, ascending, never above the largest batch (max_num_seqs, no more than
 * one token a sequence fits in max_num_batched_tokens): by default pgd__graphs_default_ladder
 * with the largest batch as its last rung; one cuda_graph_sizes entry N: the same ladder up
 * to N; several: those (vLLM's --cuda-graph-sizes). */
static void make_ladder(struct pgd__graphs *g, const struct pgd__graph_params *p)
{
    int max_b = p->max_num_seqs;
    if (max_b > p->max_num_batched_tokens)
        max_b = p->max_num_batched_tokens;
    if (p->n_cuda_graph_sizes > 1) {
        int tmp[GRAPH_MAX_SIZES];
        int m = p->n_cuda_graph_sizes < GRAPH_MAX_SIZES ? p->n_cuda_graph_sizes : GRAPH_MAX_SIZES;
        memcpy(tmp, p->cuda_graph_sizes, (size_t)m * sizeof *tmp);
        qsort(tmp, (size_t)m, sizeof *tmp, cmp_int);
        for (int i = 0; i < m; i++)
            if (tmp[i] >= 1 && tmp[i] <= max_b &&
                (g->n_sizes == 0 || tmp[i] != g->sizes[g->n_sizes - 1]))
                g->sizes[g->n_sizes++] = tmp[i];
        if (g->n_sizes > 0)
            return;
    }
    if (p->n_cuda_graph_sizes == 1 && p->cuda_graph_sizes[0] >= 1 &&
        p->cuda_graph_sizes[0] < max_b)
        max_b = p->cuda_graph_sizes[0];
    g->n_sizes = pgd__graphs_default_ladder(max_b, g->sizes, GRAPH_MAX_SIZES);
}

/* The context buckets 256, 512, ...: up to the model's longest context (or
 * max_seq_len_to_capture when that is shorter), while the largest batch's block tables at
 * the next bucket still fit GRAPH_TABLE_BYTES. Returns the largest bucket's capacity in
 * tokens. */
static long make_buckets(struct pgd__graphs *g, const struct pgd__graph_params *p, int max_b)
{
    int bs = p->block_size, maxpos = p->max_position_embeddings;
    if (maxpos <= 0)
        maxpos = 8192;
    if (p->max_seq_len_to_capture > 0 && p->max_seq_len_to_capture < maxpos)
        maxpos = p->max_seq_len_to_capture;
    long cap = GRAPH_MIN_BUCKET;
    g->n_buckets = 1;
    while (cap < maxpos && g->n_buckets < GRAPH_MAX_BUCKETS &&
           (size_t)max_b * ((cap * 2 + bs - 1) / bs) * sizeof(int32_t) <= GRAPH_TABLE_BYTES) {
        cap *= 2;
        g->n_buckets++;
    }
    g->max_width = (int)((cap + bs - 1) / bs);
    return cap;
}

/* The fixed buffers, at the largest batch and bucket: the batch metadata (pinned host and
 * device), the attention work items and the argmax ids. */
static enum pgd_status alloc_buffers(struct pgd__graphs *g, int max_b, long cap, char *err,
                                     size_t errlen)
{
    g->L = pgd__meta_layout(max_b, max_b, g->max_width);
    g->meta_host = g->host_buf[0] = pgd_cuda_host_alloc(g->L.total);
    g->meta_dev = pgd_cuda_malloc(g->L.total);
    g->items_dev = pgd_cuda_malloc((size_t)max_b * 4 * sizeof(int32_t));
    g->ids_dev = pgd_cuda_malloc((size_t)max_b * sizeof(int32_t));
    int32_t *items = malloc((size_t)max_b * 4 * sizeof *items);
    enum pgd_status st = PGD_OK;
    if (!g->meta_host || !g->meta_dev || !g->items_dev || !g->ids_dev || !items) {
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "cuda graphs: out of memory for the batch "
                      "buffers (%zu bytes for %d sequences of up to %ld tokens)", g->L.total,
                      max_b, cap);
    } else {
        /* One attention work item per row, {seq, seq, 1, 0} (see struct pgd_cuda_attn):
         * the same for every decode batch, so written once, and a padded batch of B rows
         * reads the first B. */
        for (int s = 0; s < max_b; s++) {
            items[4 * s] = items[4 * s + 1] = s;
            items[4 * s + 2] = 1;
            items[4 * s + 3] = 0;
        }
        if (pgd_cuda_memcpy_h2d(g->items_dev, items, (size_t)max_b * 4 * sizeof *items, err,
                                errlen))
            st = PGD_ERR_DEVICE;
    }
    free(items);
    return st;
}

enum pgd_status pgd__graphs_create(const struct pgd__graph_params *p, struct pgd__graphs **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    if (!graphs_wanted(p))
        return PGD_OK;
    struct pgd__graphs *g = calloc(1, sizeof *g);
    if (!g)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "cuda graphs: out of host memory");
    g->block_size = p->block_size;
    g->vocab_size = p->vocab_size;
    g->max_position_embeddings = p->max_position_embeddings;
    make_ladder(g, p);
    int max_b = g->sizes[g->n_sizes - 1];
    long cap = make_buckets(g, p, max_b);
    enum pgd_status st = alloc_buffers(g, max_b, cap, err, errlen);
    if (st) {
        pgd__graphs_destroy(g);
        return st;
    }
    PGD_INFO("cuda graphs: decode batches up to %d in %d sizes, contexts up to %ld tokens in %d "
             "buckets (PAGODA_CUDA_GRAPHS=0 or enforce_eager turns them off)", max_b,
             g->n_sizes, cap, g->n_buckets);
    *out = g;
    return PGD_OK;
}

/* ---- 1. pick a bucket ------------------------------------------------------------------ */

bool pgd__graphs_plan(const struct pgd__graphs *g, const struct pgd__step_seq *seqs, int n_seqs,
                      struct pgd__graph_plan *plan)
{
    if (!g || n_seqs <= 0 || n_seqs > g->sizes[g->n_sizes - 1])
        return false;
    int max_len = 0;                   /* the longest context after the step */
    for (int s = 0; s < n_seqs; s++) {
        if (seqs[s].n_new != 1 || seqs[s].n_logits != 1 || seqs[s].n_computed < 0)
            return false;
        if (seqs[s].n_computed + 1 > max_len)
            max_len = seqs[s].n_computed + 1;
    }
    /* The smallest bucket 256 << k that holds max_len. */
    int k = 0;
    long cap = GRAPH_MIN_BUCKET;
    while (cap < max_len) {
        cap *= 2;
        k++;
    }
    if (k >= g->n_buckets)
        return false;
    /* The smallest rung of the ladder that holds the batch. */
    int si = 0;
    while (g->sizes[si] < n_seqs)
        si++;
    return pgd__graphs_plan_shape(g, si, k, plan);
}

/* ---- 2. fill the padded batch ---------------------------------------------------------- */

enum pgd_status pgd__graphs_fill_batch(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                                       const struct pgd__step_seq *seqs, int n_seqs,
                                       struct pgd_cuda_ctx *cuda, struct pgd_fwd *f, char *err,
                                       size_t errlen)
{
    int B = plan->batch, width = plan->width, bs = g->block_size, vocab = g->vocab_size;
    /* The batch at the fixed offsets of the largest layout (block-table rows `width` apart
     * within it); rows n_seqs .. B - 1 are padding. */
    struct pgd__batch b = pgd__batch_at(g->meta_host, &g->L);
    for (int s = 0; s < B; s++) {
        int32_t *row = b.block_tables + (size_t)s * width;
        /* One token and one logits row per sequence: row s is sequence s. */
        b.query_start[s] = s;
        b.logits_rows[s] = s;
        if (s < n_seqs) {
            const struct pgd__step_seq *q = &seqs[s];
            int pos = q->n_computed, nb = q->n_blocks < width ? q->n_blocks : width;
            /* A pending token (an async step) is put in on the device after the copy. */
            const int32_t tok = q->pending ? 0 : q->tokens[0];
            /* Checked here because a graph replay has no embedding op to refuse it. */
            if (tok < 0 || tok >= vocab)
                return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "forward: embed: token id %d "
                                "outside the vocabulary [0, %d)", tok, vocab);
            b.token_ids[s] = tok;
            b.positions[s] = pos;
            b.seq_lens[s] = pos + 1;
            b.slot_mapping[s] = pgd__batch_slot(q->block_table, pos, bs);
            memcpy(row, q->block_table, (size_t)nb * sizeof *row);
            for (int k = nb; k < width; k++)
                row[k] = 0;
        } else {
            /* Padding: token 0 at position 0, no K/V write (slot -1), block 0. */
            b.token_ids[s] = 0;
            b.positions[s] = 0;
            b.seq_lens[s] = 1;
            b.slot_mapping[s] = -1;
            memset(row, 0, (size_t)width * sizeof *row);
        }
    }
    b.query_start[B] = B;
    return pgd__graphs_upload_batch(g, plan, cuda, f, err, errlen);
}

bool pgd__graphs_plan_shape(const struct pgd__graphs *g, int size_index, int bucket,
                            struct pgd__graph_plan *plan)
{
    if (!g || size_index < 0 || size_index >= g->n_sizes || bucket < 0 ||
        bucket >= g->n_buckets)
        return false;
    long cap = (long)GRAPH_MIN_BUCKET << bucket;
    *plan = (struct pgd__graph_plan){
        .size_index = size_index,
        .batch = g->sizes[size_index],
        .bucket = bucket,
        .max_seq_len = (int)cap,
        .width = (int)((cap + g->block_size - 1) / g->block_size),
    };
    return true;
}

enum pgd_status pgd__graphs_host_turn(struct pgd__graphs *g, int turn, char *err,
                                      size_t errlen)
{
    if (!g->host_buf[turn] && !(g->host_buf[turn] = pgd_cuda_host_alloc(g->L.total)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "cuda graphs: out of pinned memory for a "
                        "second batch buffer (%zu bytes)", g->L.total);
    g->meta_host = g->host_buf[turn];
    return PGD_OK;
}

void *pgd__graphs_batch_host(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                             size_t *bytes)
{
    /* Everything up to the end of the used block tables (the layout ends with them). */
    *bytes = g->L.block_tables + (size_t)plan->batch * plan->width * sizeof(int32_t);
    return g->meta_host;
}

enum pgd_status pgd__graphs_upload_batch(struct pgd__graphs *g,
                                         const struct pgd__graph_plan *plan,
                                         struct pgd_cuda_ctx *cuda, struct pgd_fwd *f, char *err,
                                         size_t errlen)
{
    int B = plan->batch, width = plan->width;
    struct pgd__batch b = pgd__batch_at(g->meta_host, &g->L);
    size_t bytes;
    pgd__graphs_batch_host(g, plan, &bytes);
    if (pgd_cuda_copy_h2d_async(cuda, g->meta_dev, g->meta_host, bytes, err, errlen))
        return PGD_ERR_DEVICE;
    f->n_tokens = B;
    f->n_seqs = B;
    f->max_blocks = width;
    /* Attention plans its context split from the bucket, not the batch's longest context,
     * so that the split count is the graph's. */
    f->max_seq_len = plan->max_seq_len;
    f->n_logits = B;
    f->vocab_size = g->vocab_size;
    f->decode_items = g->items_dev;
    pgd__batch_point_fwd(f, g->meta_dev, &g->L, &b);
    return PGD_OK;
}

/* ---- 3. capture or replay --------------------------------------------------------------- */

static struct graph_entry *entry(struct pgd__graphs *g, const struct pgd__graph_plan *plan)
{
    return &g->e[plan->size_index][plan->bucket];
}

bool pgd__graphs_should_capture(const struct pgd__graphs *g, const struct pgd__graph_plan *plan)
{
    return g->e[plan->size_index][plan->bucket].state == G_WARM;
}

enum pgd_status pgd__graphs_capture_begin(struct pgd__graphs *g, struct pgd_cuda_ctx *cuda,
                                          char *err, size_t errlen)
{
    if (pgd_cuda_capture_begin(cuda, err, errlen))
        return PGD_ERR_DEVICE;
    g->capturing = true;
    return PGD_OK;
}

void pgd__graphs_capture_end(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                             struct pgd_cuda_ctx *cuda, enum pgd_status fwd_st,
                             uint64_t fingerprint, const float *logits, const char *why)
{
    struct graph_entry *e = entry(g, plan);
    struct pgd_cuda_graph *graph = NULL;
    char e2[512];
    snprintf(e2, sizeof e2, "%s", why ? why : "");
    enum pgd_status cst = fwd_st;
    if (g->capturing) {
        g->capturing = false;
        if (cst)
            pgd_cuda_capture_abort(cuda);
        else if (pgd_cuda_capture_end(cuda, &graph, e2, sizeof e2))
            cst = PGD_ERR_DEVICE;
    }
    /* The graph bakes in the addresses the captured pass got from the arena. The same
     * fingerprint and logits as the eager pass of this shape show that the forward pass
     * allocates alike every time, so a replay's buffers are where the arena would put them
     * and its logits are at e->logits. */
    if (!cst && (fingerprint != e->fingerprint || logits != e->logits)) {
        cst = PGD_ERR_INTERNAL;
        snprintf(e2, sizeof e2, "the activation arena handed out other addresses than in "
                 "the step before");
    }
    if (cst) {
        pgd_cuda_graph_destroy(graph);
        PGD_WARN("cuda graphs: decode batch %d, contexts up to %d: not captured, runs "
                 "eagerly: %s", plan->batch, plan->max_seq_len, e2);
        e->state = G_EAGER;
    } else {
        e->graph = graph;
        e->state = G_CAPTURED;
        g->captured++;
        PGD_INFO("cuda graphs: captured decode batch %d, contexts up to %d (%zu nodes)",
                 plan->batch, plan->max_seq_len, pgd_cuda_graph_nodes(graph));
    }
}

bool pgd__graphs_captured(const struct pgd__graphs *g, const struct pgd__graph_plan *plan)
{
    return g->e[plan->size_index][plan->bucket].state == G_CAPTURED;
}

enum pgd_status pgd__graphs_replay(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                                   struct pgd_cuda_ctx *cuda, const float **logits, char *err,
                                   size_t errlen)
{
    struct graph_entry *e = entry(g, plan);
    if (pgd_cuda_graph_launch(cuda, e->graph, err, errlen))
        return PGD_ERR_DEVICE;
    *logits = e->logits;
    g->replays++;
    return PGD_OK;
}

void pgd__graphs_note_eager(struct pgd__graphs *g, const struct pgd__graph_plan *plan,
                            uint64_t fingerprint, const float *logits)
{
    struct graph_entry *e = entry(g, plan);
    if (e->state == G_NONE) {
        e->fingerprint = fingerprint;
        e->logits = logits;
        e->state = G_WARM;
    }
}

int32_t *pgd__graphs_ids_dev(struct pgd__graphs *g) { return g->ids_dev; }
#endif
