/* The tables of tools/ktrace from the kernels' times (ktrace_table.h says what each column
 * means). */
#include "tools/ktrace/ktrace_table.h"
#include "runtime/base/mem.h"
#include <stdlib.h>
#include <string.h>

int pgd_ktrace_name(struct pgd_ktrace *t, const char *name)
{
    /* A run has a few hundred distinct kernels, and CUPTI hands the same pointer for every
     * record of one kernel: the caller keeps a pointer cache (ktrace_cupti.c), so a linear
     * look-up here runs once a kernel. */
    for (int i = 0; i < t->n_names; i++)
        if (!strcmp(t->names[i], name))
            return i;
    char *c = pgd__array_reserve(t->names, t->cap_names, (size_t)t->n_names + 1)
                  ? strdup(name)
                  : NULL;
    if (!c)
        return -1;
    t->names[t->n_names] = c;
    return t->n_names++;
}

int pgd_ktrace_add(struct pgd_ktrace *t, const struct pgd_ktrace_rec *r)
{
    if (!pgd__array_reserve(t->recs, t->cap, t->n + 1))
        return -1;
    t->recs[t->n++] = *r;
    return 0;
}

void pgd_ktrace_free(struct pgd_ktrace *t)
{
    for (int i = 0; i < t->n_names; i++)
        free(t->names[i]);
    free(t->names);
    free(t->recs);
    memset(t, 0, sizeof *t);
}

/* Graph, then launch, then start: a replay's kernels in the order they began. */
static int by_launch(const void *a, const void *b)
{
    const struct pgd_ktrace_rec *x = a, *y = b;
    if (x->graph_id != y->graph_id)
        return x->graph_id < y->graph_id ? -1 : 1;
    if (x->launch_id != y->launch_id)
        return x->launch_id < y->launch_id ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The end of the launch that r[a] begins (records sorted by by_launch, n of them). */
static size_t launch_end(const struct pgd_ktrace_rec *r, size_t n, size_t a)
{
    size_t b = a;
    while (b < n && r[b].launch_id == r[a].launch_id)
        b++;
    return b;
}

/* The slot of node id among the reference replay's nodes ids[0..k), or -1. */
static int node_slot(const uint64_t *ids, int k, uint64_t id, int hint)
{
    if (hint >= 0 && hint < k && ids[hint] == id)
        return hint;
    for (int i = 0; i < k; i++)
        if (ids[i] == id)
            return i;
    return -1;
}

static int by_excl(const void *a, const void *b)
{
    const struct pgd_ktrace_row *x = a, *y = b;
    return x->excl_us < y->excl_us ? 1 : x->excl_us > y->excl_us ? -1 : x->name - y->name;
}

/* Rows a name from the graph's nodes: g->rows, largest exclusive time first. */
static int graph_rows(struct pgd_ktrace_graph *g)
{
    g->rows = calloc((size_t)g->kernels, sizeof *g->rows);
    if (!g->rows)
        return -1;
    for (int i = 0; i < g->kernels; i++) {
        const struct pgd_ktrace_node *nd = &g->nodes[i];
        int r = 0;
        while (r < g->n_rows && g->rows[r].name != nd->name)
            r++;
        if (r == g->n_rows)
            g->rows[g->n_rows++].name = nd->name;
        g->rows[r].nodes++;
        g->rows[r].run_us += nd->run_us;
        g->rows[r].excl_us += nd->excl_us;
        g->rows[r].idle_us += nd->idle_us;
    }
    qsort(g->rows, (size_t)g->n_rows, sizeof *g->rows, by_excl);
    return 0;
}

/* The graph of the sorted records r[0..n) (one graph id, launches in turn) into g. */
static int graph_table(const struct pgd_ktrace_rec *r, size_t n, struct pgd_ktrace_graph *g)
{
    memset(g, 0, sizeof *g);
    g->graph_id = r[0].graph_id;
    /* the reference replay: the first of the most kernels (a replay whose records were
     * partly dropped has fewer) */
    size_t k = 0, ref = 0;
    for (size_t a = 0, b; a < n; a = b) {
        b = launch_end(r, n, a);
        if (b - a > k) {
            k = b - a;
            ref = a;
        }
    }
    g->kernels = (int)k;
    uint64_t *ids = malloc(k * sizeof *ids);
    int *slot = malloc(k * sizeof *slot);   /* a replay's records' nodes, found once */
    g->nodes = calloc(k, sizeof *g->nodes);
    if (!ids || !slot || !g->nodes) {
        free(ids);
        free(slot);
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        ids[i] = r[ref + i].node_id;
        g->nodes[i].name = r[ref + i].name;
    }
    g->first_start = UINT64_MAX;
    for (size_t a = 0, b; a < n; a = b) {
        b = launch_end(r, n, a);
        /* every node of the reference replay, once */
        int ok = b - a == k;
        for (size_t i = a; ok && i < b; i++)
            ok = (slot[i - a] = node_slot(ids, (int)k, r[i].node_id, (int)(i - a))) >= 0;
        if (!ok) {
            g->skipped++;
            continue;
        }
        if (r[a].start < g->first_start)
            g->first_start = r[a].start;
        uint64_t last = r[a].start;     /* the latest end so far */
        for (size_t i = a; i < b; i++) {
            struct pgd_ktrace_node *nd = &g->nodes[slot[i - a]];
            const uint64_t s = r[i].start, e = r[i].end;
            nd->at_us += (double)(s - r[a].start) * 1e-3;
            nd->run_us += (double)(e - s) * 1e-3;
            nd->idle_us += s > last ? (double)(s - last) * 1e-3 : 0.0;
            const uint64_t from = s > last ? s : last;
            nd->excl_us += e > from ? (double)(e - from) * 1e-3 : 0.0;
            if (e > last)
                last = e;
        }
        g->span_us += (double)(last - r[a].start) * 1e-3;
        g->replays++;
    }
    free(ids);
    free(slot);
    if (!g->replays) {
        g->first_start = r[0].start;
    } else {
        const double inv = 1.0 / g->replays;
        g->span_us *= inv;
        for (int i = 0; i < g->kernels; i++) {
            struct pgd_ktrace_node *nd = &g->nodes[i];
            nd->at_us *= inv;
            nd->run_us *= inv;
            nd->excl_us *= inv;
            nd->idle_us *= inv;
            g->excl_us += nd->excl_us;
            g->idle_us += nd->idle_us;
        }
    }
    return graph_rows(g);
}

/* Graphs in the order of their first replay (the id between equal starts). */
static int by_first_start(const void *a, const void *b)
{
    const struct pgd_ktrace_graph *x = a, *y = b;
    if (x->first_start != y->first_start)
        return x->first_start < y->first_start ? -1 : 1;
    return x->graph_id < y->graph_id ? -1 : x->graph_id > y->graph_id;
}

int pgd_ktrace_graphs(struct pgd_ktrace *t, struct pgd_ktrace_graph **out, int *n)
{
    *out = NULL;
    *n = 0;
    qsort(t->recs, t->n, sizeof *t->recs, by_launch);
    size_t cap = 0;
    struct pgd_ktrace_graph *g = NULL;
    size_t a = 0;
    while (a < t->n && t->recs[a].graph_id == 0)
        a++;
    for (size_t b; a < t->n; a = b) {
        b = a;
        while (b < t->n && t->recs[b].graph_id == t->recs[a].graph_id)
            b++;
        if (!pgd__array_reserve(g, cap, (size_t)*n + 1) ||
            graph_table(t->recs + a, b - a, &g[(*n)++])) {
            pgd_ktrace_graphs_free(g, *n);
            *n = 0;
            return -1;
        }
    }
    if (*n)
        qsort(g, (size_t)*n, sizeof *g, by_first_start);
    *out = g;
    return 0;
}

void pgd_ktrace_graphs_free(struct pgd_ktrace_graph *g, int n)
{
    for (int i = 0; i < n; i++) {
        free(g[i].rows);
        free(g[i].nodes);
    }
    free(g);
}

/* The longest run of nodes from which names repeat at period p: *first and its full periods. */
static int repeat_run(const struct pgd_ktrace_graph *g, int p, int *first)
{
    int best = 0, start = 0;
    *first = 0;
    for (int i = 0; i + p < g->kernels; i++) {
        if (g->nodes[i].name != g->nodes[i + p].name) {
            start = i + 1;
            continue;
        }
        /* nodes start .. i + p match their next period: (i + p - start + 1) / p periods */
        const int periods = (i + p - start + 1) / p;
        if (periods > best) {
            best = periods;
            *first = start;
        }
    }
    return best;
}

int pgd_ktrace_find_layers(const struct pgd_ktrace_graph *g, struct pgd_ktrace_layers *out)
{
    memset(out, 0, sizeof *out);
    for (int p = 2; p <= g->kernels / 3; p++) {
        int first;
        const int layers = repeat_run(g, p, &first);
        /* the most nodes covered; the smallest period of those (a multiple of the layer's
         * period covers as many nodes, in fewer, longer repeats) */
        if (layers >= 3 && layers * p > out->layers * out->period) {
            out->period = p;
            out->first = first;
            out->layers = layers;
        }
    }
    return out->period ? 0 : -1;
}

/* g's layer: its kernels in the order of one layer, each the mean over the layers. */
static void print_layer(FILE *f, const struct pgd_ktrace *t, const struct pgd_ktrace_graph *g,
                        const struct pgd_ktrace_layers *ly, int width)
{
    double total = 0;
    for (int k = ly->first; k < ly->first + ly->period * ly->layers; k++)
        total += g->nodes[k].excl_us + g->nodes[k].idle_us;
    fprintf(f,
            "  a layer: %d kernels, %d times from node %d, %.1f us a layer (%.1f%% of the "
            "replay); us a layer, mean over the layers:\n",
            ly->period, ly->layers, ly->first, total / ly->layers,
            100.0 * total / g->span_us);
    for (int j = 0; j < ly->period; j++) {
        double excl = 0, run = 0, idle = 0;
        for (int l = 0; l < ly->layers; l++) {
            const struct pgd_ktrace_node *nd = &g->nodes[ly->first + l * ly->period + j];
            excl += nd->excl_us;
            run += nd->run_us;
            idle += nd->idle_us;
        }
        fprintf(f, "  %5d %-*.*s %10.2f %10.2f %8.2f\n", j, width - 6, width - 6,
                t->names[g->nodes[ly->first + j].name], excl / ly->layers, run / ly->layers,
                idle / ly->layers);
    }
}

int pgd_ktrace_eager(const struct pgd_ktrace *t, struct pgd_ktrace_row **out, int *n)
{
    *n = 0;
    *out = calloc((size_t)(t->n_names ? t->n_names : 1), sizeof **out);
    if (!*out)
        return -1;
    /* a row a name, at the name's index, then packed */
    for (size_t i = 0; i < t->n; i++) {
        const struct pgd_ktrace_rec *r = &t->recs[i];
        if (r->graph_id)
            continue;
        struct pgd_ktrace_row *w = &(*out)[r->name];
        w->name = r->name;
        w->nodes++;
        w->run_us += (double)(r->end - r->start) * 1e-3;
    }
    for (int i = 0; i < t->n_names; i++)
        if ((*out)[i].nodes) {
            (*out)[i].excl_us = (*out)[i].run_us;
            (*out)[(*n)++] = (*out)[i];
        }
    qsort(*out, (size_t)*n, sizeof **out, by_excl);
    return 0;
}

void pgd_ktrace_print(FILE *f, struct pgd_ktrace *t, int min_replays, int nodes, int width)
{
    struct pgd_ktrace_graph *g;
    int ng;
    if (pgd_ktrace_graphs(t, &g, &ng)) {
        fprintf(f, "ktrace: out of memory making the tables of %zu kernel runs\n", t->n);
        return;
    }
    for (int i = 0; i < ng; i++) {
        const struct pgd_ktrace_graph *gr = &g[i];
        if (!gr->replays || gr->replays < min_replays)
            continue;
        fprintf(f,
                "ktrace: graph %u: %d replays (%d skipped) of %d kernels, %.1f us a replay "
                "(exclusive %.1f + idle %.1f)\n",
                gr->graph_id, gr->replays, gr->skipped, gr->kernels, gr->span_us, gr->excl_us,
                gr->idle_us);
        fprintf(f, "  %-*s %6s %10s %7s %10s %8s\n", width, "kernel (us a replay)", "nodes",
                "exclusive", "share", "run", "idle");
        for (int r = 0; r < gr->n_rows; r++) {
            const struct pgd_ktrace_row *w = &gr->rows[r];
            fprintf(f, "  %-*.*s %6d %10.1f %6.1f%% %10.1f %8.1f\n", width, width,
                    t->names[w->name], w->nodes, w->excl_us, 100.0 * w->excl_us / gr->span_us,
                    w->run_us, w->idle_us);
        }
        struct pgd_ktrace_layers ly;
        if (!pgd_ktrace_find_layers(gr, &ly))
            print_layer(f, t, gr, &ly, width);
        if (nodes) {
            fprintf(f, "  nodes in order (us a replay: start, exclusive, run, idle before)\n");
            for (int k = 0; k < gr->kernels; k++) {
                const struct pgd_ktrace_node *nd = &gr->nodes[k];
                fprintf(f, "  %5d %10.1f %8.1f %8.1f %6.1f  %.*s\n", k, nd->at_us, nd->excl_us,
                        nd->run_us, nd->idle_us, width, t->names[nd->name]);
            }
        }
        fprintf(f, "\n");
    }
    pgd_ktrace_graphs_free(g, ng);
    struct pgd_ktrace_row *e;
    int ne;
    if (pgd_ktrace_eager(t, &e, &ne)) {
        fprintf(f, "ktrace: out of memory making the table of eager kernels\n");
        return;
    }
    double total = 0;
    for (int i = 0; i < ne; i++)
        total += e[i].run_us;
    if (ne) {
        fprintf(f, "ktrace: kernels launched outside graphs, %.1f us in all\n", total);
        fprintf(f, "  %-*s %6s %10s %7s %10s\n", width, "kernel (us)", "runs", "total", "share",
                "a run");
        for (int i = 0; i < ne; i++)
            fprintf(f, "  %-*.*s %6d %10.1f %6.1f%% %10.2f\n", width, width, t->names[e[i].name],
                    e[i].nodes, e[i].run_us, total > 0 ? 100.0 * e[i].run_us / total : 0.0,
                    e[i].run_us / e[i].nodes);
    }
    free(e);
}
