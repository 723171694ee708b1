/* CUDA graphs of decode-only steps (see runner_internal.h).
 *
 * A decode-only step (every sequence adds one token and wants its one logits row) of B
 * sequences whose longest context is L runs as a step of Bp rows, Bp the smallest size of
 * the ladder 1, 2, 4, ... (capped at max_num_seqs) that holds B, and of a context bucket
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
 * logits back run after the graph, on the real rows only. */
#include "config.h"
#include "runtime/runner/runner_internal.h"
#include <pagoda/log.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#define GRAPH_MAX_SIZES 32
#define GRAPH_MAX_BUCKETS 16
#define GRAPH_MIN_BUCKET 256
/* The fixed block-table buffer may take this much; longer contexts run eagerly. */
#define GRAPH_TABLE_BYTES ((size_t)64 << 20)

enum graph_state { G_NONE, G_WARM, G_CAPTURED, G_EAGER };

struct graph_entry {
    enum graph_state state;
    uint64_t fingerprint;              /* the arena's, after the forward pass */
    float *logits;                     /* [Bp, vocab] in the arena, where the graph writes */
    struct pgd_cuda_graph *graph;      /* owned; G_CAPTURED only */
};

struct pgd__graphs {
    int sizes[GRAPH_MAX_SIZES], n_sizes;   /* the batch ladder, ascending */
    int n_buckets;                         /* buckets 256 << k, k < n_buckets */
    int max_width;                         /* block-table width of the largest bucket */
    struct pgd__meta_layout L;             /* at the largest size and bucket */
    char *meta_host;                       /* owned, pinned */
    char *meta_dev;                        /* owned, device */
    int32_t *items_dev;                    /* owned, device [sizes[last], 4] */
    int32_t *ids_dev;                      /* owned, device [sizes[last]] argmax ids */
    struct graph_entry e[GRAPH_MAX_SIZES][GRAPH_MAX_BUCKETS];
    long replays;
    int captured;
};

void pgd__runner_graph_stats(const struct pgd__runner *r, long *replays, int *captured)
{
    *replays = r->graphs ? r->graphs->replays : 0;
    *captured = r->graphs ? r->graphs->captured : 0;
}

#ifndef PGD_HAVE_CUDA
enum pgd_status pgd__graphs_create(struct pgd__runner *r, struct pgd__graphs **out, char *err,
                                   size_t errlen)
{
    *out = NULL;
    return PGD_OK;
}
void pgd__graphs_destroy(struct pgd__graphs *g) { (void)g; }
enum pgd_status pgd__runner_capture_graphs(struct pgd__runner *r, char *err, size_t errlen)
{
    (void)r;
    (void)err;
    (void)errlen;
    return PGD_OK;
}
bool pgd__graphs_step(struct pgd__runner *r, const struct pgd__step_seq *seqs, int n_seqs,
                      const struct pgd__step_want *want, enum pgd_status *st, char *err,
                      size_t errlen)
{
    return false;
}
#else

void pgd__graphs_destroy(struct pgd__graphs *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_sizes; i++)
        for (int k = 0; k < g->n_buckets; k++)
            pgd_cuda_graph_destroy(g->e[i][k].graph);
    pgd_cuda_host_free(g->meta_host);
    pgd_cuda_free(g->meta_dev);
    pgd_cuda_free(g->items_dev);
    pgd_cuda_free(g->ids_dev);
    free(g);
}

static bool graphs_wanted(const struct pgd__runner *r)
{
    if (r->params.device != PGD_DEVICE_CUDA || r->params.enforce_eager)
        return false;
    const char *e = getenv("PAGODA_CUDA_GRAPHS");
    return !(e && (!strcmp(e, "0") || !strcmp(e, "off") || !strcmp(e, "false")));
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The decode batch sizes to capture into sizes [GRAPH_MAX_SIZES], ascending; returns the
 * largest. Default 1, 2, 4, ... up to max_num_seqs; one cuda_graph_sizes entry N: the same
 * ladder up to N; several: those. Never more than max_num_seqs or max_num_batched_tokens. */
static int graph_ladder(const struct pgd__runner_params *p, int *sizes, int *n_sizes)
{
    int max_b = p->max_num_seqs < p->max_num_batched_tokens ? p->max_num_seqs
                                                            : p->max_num_batched_tokens;
    int n = 0;
    if (p->n_cuda_graph_sizes > 1) {
        int tmp[GRAPH_MAX_SIZES];
        int m = p->n_cuda_graph_sizes < GRAPH_MAX_SIZES ? p->n_cuda_graph_sizes : GRAPH_MAX_SIZES;
        memcpy(tmp, p->cuda_graph_sizes, (size_t)m * sizeof *tmp);
        qsort(tmp, (size_t)m, sizeof *tmp, cmp_int);
        for (int i = 0; i < m; i++)
            if (tmp[i] >= 1 && tmp[i] <= max_b && (n == 0 || tmp[i] != sizes[n - 1]))
                sizes[n++] = tmp[i];
    }
    if (n == 0) {
        if (p->n_cuda_graph_sizes == 1 && p->cuda_graph_sizes[0] >= 1 &&
            p->cuda_graph_sizes[0] < max_b)
            max_b = p->cuda_graph_sizes[0];
        for (int b = 1; b < max_b && n < GRAPH_MAX_SIZES - 1; b *= 2)
            sizes[n++] = b;
        sizes[n++] = max_b;
    }
    *n_sizes = n;
    return sizes[n - 1];
}

enum pgd_status pgd__graphs_create(struct pgd__runner *r, struct pgd__graphs **out, char *err,
                                   size_t errlen)
{
    *out = NULL;
    if (!graphs_wanted(r))
        return PGD_OK;
    struct pgd__graphs *g = calloc(1, sizeof *g);
    if (!g)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "cuda graphs: out of host memory");
    int max_b = graph_ladder(&r->params, g->sizes, &g->n_sizes);
    int bs = r->kv.block_size, maxpos = r->model->desc.max_position_embeddings;
    if (maxpos <= 0)
        maxpos = 8192;
    if (r->params.max_seq_len_to_capture > 0 && r->params.max_seq_len_to_capture < maxpos)
        maxpos = r->params.max_seq_len_to_capture;
    long cap = GRAPH_MIN_BUCKET;
    g->n_buckets = 1;
    while (cap < maxpos && g->n_buckets < GRAPH_MAX_BUCKETS &&
           (size_t)max_b * ((cap * 2 + bs - 1) / bs) * sizeof(int32_t) <= GRAPH_TABLE_BYTES) {
        cap *= 2;
        g->n_buckets++;
    }
    g->max_width = (int)((cap + bs - 1) / bs);
    g->L = pgd__meta_layout(max_b, max_b, g->max_width);
    g->meta_host = pgd_cuda_host_alloc(g->L.total);
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

/* Runs the forward pass of the step described by f (its arena reset here) into a fresh
 * logits buffer; *logits receives it. */
static enum pgd_status forward(struct pgd__runner *r, struct pgd_fwd *f, float **logits,
                               char *err, size_t errlen)
{
    pgd__arena_reset(&r->arena);
    *logits = pgd__arena_alloc(&r->arena, (size_t)f->n_logits * f->vocab_size * sizeof(float));
    if (!*logits)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "step: no GPU memory for %d logits rows",
                        f->n_logits);
    f->logits = *logits;
    f->status = PGD_OK;
    f->err[0] = 0;
    r->model->plugin->arch->forward(r->model->impl, f);
    if (f->status != PGD_OK)
        return pgd_errf(err, errlen, f->status, "forward (%s plugin): %s",
                        r->model->plugin->name, f->err);
    return PGD_OK;
}

bool pgd__graphs_step(struct pgd__runner *r, const struct pgd__step_seq *seqs, int n_seqs,
                      const struct pgd__step_want *want, enum pgd_status *st, char *err,
                      size_t errlen)
{
    struct pgd__graphs *g = r->graphs;
    if (!g || n_seqs <= 0 || n_seqs > g->sizes[g->n_sizes - 1])
        return false;
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (seqs[s].n_new != 1 || seqs[s].n_logits != 1 || seqs[s].n_computed < 0)
            return false;
        if (seqs[s].n_computed + 1 > max_len)
            max_len = seqs[s].n_computed + 1;
    }
    int k = 0;
    long cap = GRAPH_MIN_BUCKET;
    while (cap < max_len) {
        cap *= 2;
        k++;
    }
    if (k >= g->n_buckets)
        return false;
    int n_tokens, n_logits, max_blocks;
    if ((*st = pgd__runner_check_step(r, seqs, n_seqs, &n_tokens, &n_logits, &max_blocks, err,
                                      errlen)))
        return true;
    int vocab = r->model->desc.vocab_size, bs = r->kv.block_size;
    int width = (int)((cap + bs - 1) / bs);
    int si = 0;
    while (g->sizes[si] < n_seqs)
        si++;
    int B = g->sizes[si];
    /* The batch at the fixed offsets; rows n_seqs .. B - 1 are padding. */
    const struct pgd__meta_layout *L = &g->L;
    char *H = g->meta_host;
    int64_t *slot_mapping = (int64_t *)(H + L->slot_mapping);
    int32_t *token_ids = (int32_t *)(H + L->token_ids), *positions = (int32_t *)(H + L->positions);
    int32_t *logits_rows = (int32_t *)(H + L->logits_rows);
    int32_t *query_start = (int32_t *)(H + L->query_start), *seq_lens = (int32_t *)(H + L->seq_lens);
    int32_t *block_tables = (int32_t *)(H + L->block_tables);
    for (int s = 0; s < B; s++) {
        int32_t *row = block_tables + (size_t)s * width;
        query_start[s] = s;
        logits_rows[s] = s;
        if (s < n_seqs) {
            const struct pgd__step_seq *q = &seqs[s];
            int pos = q->n_computed, nb = q->n_blocks < width ? q->n_blocks : width;
            if (q->tokens[0] < 0 || q->tokens[0] >= vocab) {
                *st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "forward: embed: token id %d "
                               "outside the vocabulary [0, %d)", q->tokens[0], vocab);
                return true;
            }
            token_ids[s] = q->tokens[0];
            positions[s] = pos;
            seq_lens[s] = pos + 1;
            slot_mapping[s] = (int64_t)q->block_table[pos / bs] * bs + pos % bs;
            memcpy(row, q->block_table, (size_t)nb * sizeof *row);
            for (int b = nb; b < width; b++)
                row[b] = 0;
        } else {
            token_ids[s] = 0;
            positions[s] = 0;
            seq_lens[s] = 1;
            slot_mapping[s] = -1;
            memset(row, 0, (size_t)width * sizeof *row);
        }
    }
    query_start[B] = B;
    char *D = g->meta_dev;
    size_t bytes = L->block_tables + (size_t)B * width * sizeof(int32_t);
    if (pgd_cuda_copy_h2d_async(r->cuda, D, H, bytes, err, errlen)) {
        *st = PGD_ERR_DEVICE;
        return true;
    }
    struct pgd_fwd f = {
        .device = r->params.device, .act_dtype = r->model->dtype,
        .n_tokens = B, .token_ids = (const int32_t *)(D + L->token_ids),
        .positions = (const int32_t *)(D + L->positions),
        .slot_mapping = (const int64_t *)(D + L->slot_mapping), .n_seqs = B,
        .query_start = (const int32_t *)(D + L->query_start),
        .seq_lens = (const int32_t *)(D + L->seq_lens),
        .block_tables = (const int32_t *)(D + L->block_tables), .max_blocks = width,
        .max_seq_len = (int)cap, .n_logits = B,
        .logits_rows = (const int32_t *)(D + L->logits_rows), .vocab_size = vocab,
        .h_token_ids = token_ids, .h_query_start = query_start, .h_logits_rows = logits_rows,
        .step_id = ++r->step_id, .cuda = r->cuda, .kv = &r->kv, .arena = &r->arena,
        .decode_items = g->items_dev,
    };
    struct graph_entry *e = &g->e[si][k];
    float *logits = NULL;
    if (e->state == G_WARM) {
        char e2[512] = "";
        struct pgd_cuda_graph *graph = NULL;
        enum pgd_status cst = PGD_OK;
        if (pgd_cuda_capture_begin(r->cuda, e2, sizeof e2))
            cst = PGD_ERR_DEVICE;
        if (!cst && (cst = forward(r, &f, &logits, e2, sizeof e2)))
            pgd_cuda_capture_abort(r->cuda);
        if (!cst && pgd_cuda_capture_end(r->cuda, &graph, e2, sizeof e2))
            cst = PGD_ERR_DEVICE;
        if (!cst && (r->arena.fingerprint != e->fingerprint || logits != e->logits)) {
            cst = PGD_ERR_INTERNAL;
            snprintf(e2, sizeof e2, "the activation arena handed out other addresses than in "
                     "the step before");
        }
        if (cst) {
            pgd_cuda_graph_destroy(graph);
            PGD_WARN("cuda graphs: decode batch %d, contexts up to %ld: not captured, runs "
                     "eagerly: %s", B, cap, e2);
            e->state = G_EAGER;
        } else {
            e->graph = graph;
            e->state = G_CAPTURED;
            g->captured++;
            PGD_INFO("cuda graphs: captured decode batch %d, contexts up to %ld (%zu nodes)", B,
                     cap, pgd_cuda_graph_nodes(graph));
        }
    }
    if (e->state == G_CAPTURED) {
        if (pgd_cuda_graph_launch(r->cuda, e->graph, err, errlen)) {
            *st = PGD_ERR_DEVICE;
            return true;
        }
        logits = e->logits;
        g->replays++;
    } else {
        if ((*st = forward(r, &f, &logits, err, errlen))) {
            char e2[128];
            (void)pgd_cuda_sync(r->cuda, e2, sizeof e2);   /* drain what was queued */
            return true;
        }
        if (e->state == G_NONE) {
            e->fingerprint = r->arena.fingerprint;
            e->logits = logits;
            e->state = G_WARM;
        }
    }
    *st = pgd__runner_finish(r, logits, n_seqs, want, g->ids_dev, err, errlen);
    return true;
}

/* The warm-up: two greedy decode steps per (batch size, context bucket), the first eager (it
 * records the arena's fingerprint), the second captured, as the first requests would have
 * done it. Every row decodes one token at the bucket's last position over a block table of
 * block 0 only, so nothing but block 0's slots is written (and the pool is empty at
 * creation). */
enum pgd_status pgd__runner_capture_graphs(struct pgd__runner *r, char *err, size_t errlen)
{
    struct pgd__graphs *g = r->graphs;
    if (!g)
        return PGD_OK;
    int max_b = g->sizes[g->n_sizes - 1], bs = r->kv.block_size;
    struct pgd__step_seq *seqs = calloc((size_t)max_b, sizeof *seqs);
    int32_t *table = calloc((size_t)g->max_width, sizeof *table);   /* all block 0 */
    int32_t *ids = malloc((size_t)max_b * sizeof *ids);
    int32_t token = 0;
    if (!seqs || !table || !ids) {
        free(seqs);
        free(table);
        free(ids);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "cuda graphs: out of host memory");
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PGD_INFO("cuda graphs: capturing %d decode graphs (%d batch sizes x %d context buckets) "
             "before serving", g->n_sizes * g->n_buckets, g->n_sizes, g->n_buckets);
    enum pgd_status st = PGD_OK;
    int maxpos = r->model->desc.max_position_embeddings;
    for (int k = 0; k < g->n_buckets && !st; k++) {
        /* The bucket's longest context, but no position past the model's last (the last
         * bucket may reach beyond it; any length above the bucket before selects it). */
        long cap = (long)GRAPH_MIN_BUCKET << k, len = maxpos > 0 && maxpos < cap ? maxpos : cap;
        int nb = (int)((len + bs - 1) / bs);
        for (int i = 0; i < g->n_sizes && !st; i++) {
            int B = g->sizes[i];
            for (int s = 0; s < B; s++)
                seqs[s] = (struct pgd__step_seq){ .tokens = &token, .n_new = 1,
                                                  .n_computed = (int)len - 1,
                                                  .block_table = table, .n_blocks = nb,
                                                  .n_logits = 1 };
            for (int rep = 0; rep < 2 && !st; rep++)
                st = pgd__runner_step_greedy(r, seqs, B, ids, err, errlen);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!st)
        PGD_INFO("cuda graphs: %d captured in %.1f s", g->captured,
                 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    free(seqs);
    free(table);
    free(ids);
    return st;
}
#endif
