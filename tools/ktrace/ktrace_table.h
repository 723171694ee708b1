/* Where a CUDA graph's time goes, kernel by kernel: the tables of tools/ktrace (the CUPTI
 * tracer, ktrace_cupti.c), computed from the kernels' start and end times alone, so that they
 * are tested on the CPU (tests/unit/test_ktrace.c).
 *
 * A graph's kernels run as one chain on one stream; under programmatic dependent launch a
 * kernel starts while its predecessor still runs and waits inside for it, so the kernels'
 * own durations overlap and sum to more than the replay. Each kernel is therefore also given
 * its *exclusive* time: the part of its run past the end of every kernel before it in the
 * replay (end - max(start, the latest end so far), at least 0), and the idle time before it
 * (start - the latest end so far, at least 0). A replay's exclusive and idle times add up to
 * its span (first start to last end) exactly, and a kernel's exclusive time is what the
 * replay would lose at most without it. */
#ifndef PGD_KTRACE_TABLE_H
#define PGD_KTRACE_TABLE_H

#include <stdint.h>
#include <stdio.h>

/* One kernel run, as CUPTI reports it (timestamps in ns). */
struct pgd_ktrace_rec {
    uint64_t start, end;
    uint32_t graph_id;       /* 0: launched on its own, not by a graph */
    uint32_t launch_id;      /* the correlation id: a graph launch's kernels share it */
    uint64_t node_id;        /* the graph node (graph kernels only) */
    int name;                /* an index into the trace's names */
};

/* The records of a run, and the kernel names they index (owned: copied in). */
struct pgd_ktrace {
    struct pgd_ktrace_rec *recs;
    size_t n, cap;
    char **names;
    size_t cap_names;
    int n_names;
};

/* The index of name (copied the first time it is seen), or -1 when out of memory. */
int pgd_ktrace_name(struct pgd_ktrace *t, const char *name);
/* Appends a record; -1 when out of memory. */
int pgd_ktrace_add(struct pgd_ktrace *t, const struct pgd_ktrace_rec *r);
void pgd_ktrace_free(struct pgd_ktrace *t);

/* One kernel name's share of a graph's replays (means a replay). */
struct pgd_ktrace_row {
    int name;
    int nodes;               /* the graph's nodes that run it */
    double run_us;           /* their durations, summed */
    double excl_us;          /* their exclusive times, summed */
    double idle_us;          /* the idle time just before them, summed */
};

/* One node of a graph (means a replay), in the order of the first replay. */
struct pgd_ktrace_node {
    int name;
    double at_us;            /* its start, after the replay's first */
    double run_us, excl_us, idle_us;
};

/* A graph's table: its replays (graph launches), the span of a replay, its rows (the largest
 * exclusive time first) and its nodes. Replays whose kernels are not the reference replay's
 * nodes (a launch whose records were partly dropped) are left out and counted in skipped. */
struct pgd_ktrace_graph {
    uint32_t graph_id;
    uint64_t first_start;            /* ns: the start of its first counted replay */
    int replays, skipped, kernels;
    double span_us, excl_us, idle_us;
    struct pgd_ktrace_row *rows;
    int n_rows;
    struct pgd_ktrace_node *nodes;   /* [kernels] */
};

/* The tables of every graph in t, in the order of their first replay (*n of them; free with
 * pgd_ktrace_graphs_free). Sorts t's records. -1 when out of memory. */
int pgd_ktrace_graphs(struct pgd_ktrace *t, struct pgd_ktrace_graph **out, int *n);
void pgd_ktrace_graphs_free(struct pgd_ktrace_graph *g, int n);

/* A model's layers in a graph: the shortest run of kernel names that repeats (period nodes,
 * layers times in a row from node first; a decoder layer's chain). */
struct pgd_ktrace_layers {
    int period, first, layers;
};

/* g's layers: of the periods p (2 .. kernels / 3) at which the nodes' names repeat at least
 * three times in a row, the one whose longest run covers the most nodes (the smallest of
 * those: twice a layer covers as many); 0, or -1 when no name sequence repeats three times. */
int pgd_ktrace_find_layers(const struct pgd_ktrace_graph *g, struct pgd_ktrace_layers *out);

/* The kernels launched outside graphs, a row a name (nodes: their launches; run_us and
 * excl_us: the durations' total, idle_us 0), the largest total first. */
int pgd_ktrace_eager(const struct pgd_ktrace *t, struct pgd_ktrace_row **out, int *n);

/* The report: every graph with at least min_replays replays (its table; its layer's kernels
 * in order, each the mean over the layers, where the graph repeats one; its nodes one by one
 * in the order of one replay when nodes is set), then the eager kernels. Names are cut to
 * width characters. */
void pgd_ktrace_print(FILE *f, struct pgd_ktrace *t, int min_replays, int nodes, int width);

#endif
