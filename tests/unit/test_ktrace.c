/* The kernel tracer's tables (tools/ktrace/ktrace_table.h), from kernel times made up here:
 * a graph's replays whose kernels overlap (programmatic dependent launch) or leave gaps, a
 * replay with a record missing, several graphs, kernels launched outside graphs. The CUPTI
 * half (ktrace_cupti.c) runs on the GPU machine (docs/PERFORMANCE.md, "Method"). */
#include "tests/lib/test_common.h"
#include "tools/ktrace/ktrace_table.h"
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(ktrace);

static void add(struct pgd_ktrace *t, uint32_t graph, uint32_t launch, uint64_t node,
                const char *name, uint64_t start, uint64_t end)
{
    const int ni = pgd_ktrace_name(t, name);
    cr_assert_geq(ni, 0);
    const struct pgd_ktrace_rec r = { .start = start * 1000, .end = end * 1000, .graph_id = graph,
                                      .launch_id = launch, .node_id = node, .name = ni };
    cr_assert_eq(pgd_ktrace_add(t, &r), 0);
}

/* Graph 5, three nodes (gemv, attn, gemv), two whole replays in us:
 *   launch 100: gemv [0, 10], attn [5, 30] (starts under the gemv: PDL), gemv [32, 40]
 *   launch 101: gemv [100, 112], attn [105, 130], gemv [130, 140]
 * and a third launch (102) whose attn record is missing. Added last first, so that the
 * tables cannot lean on the order records arrive in. */
static void graph5(struct pgd_ktrace *t)
{
    add(t, 5, 102, 3, "gemv", 230, 240);
    add(t, 5, 102, 1, "gemv", 200, 210);
    add(t, 5, 101, 3, "gemv", 130, 140);
    add(t, 5, 101, 2, "attn", 105, 130);
    add(t, 5, 101, 1, "gemv", 100, 112);
    add(t, 5, 100, 3, "gemv", 32, 40);
    add(t, 5, 100, 2, "attn", 5, 30);
    add(t, 5, 100, 1, "gemv", 0, 10);
}

static const struct pgd_ktrace_graph *graph_of(const struct pgd_ktrace_graph *g, int n, uint32_t id)
{
    for (int i = 0; i < n; i++)
        if (g[i].graph_id == id)
            return &g[i];
    cr_assert_fail("no graph %u among %d", id, n);
    return NULL;
}

/* t's graph tables (*n of them), asserted made. */
static struct pgd_ktrace_graph *tables(struct pgd_ktrace *t, int *n)
{
    struct pgd_ktrace_graph *g;
    cr_assert_eq(pgd_ktrace_graphs(t, &g, n), 0);
    return g;
}

/* The report of t as a string (free it). */
static char *report(struct pgd_ktrace *t, int min_replays, int nodes, int width)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    pgd_ktrace_print(f, t, min_replays, nodes, width);
    fclose(f);
    return buf;
}

Test(ktrace, names_are_kept_once)
{
    struct pgd_ktrace t = { 0 };
    const int a = pgd_ktrace_name(&t, "sg_kernel<bf16, 1>");
    const int b = pgd_ktrace_name(&t, "rmsnorm_kernel");
    cr_assert_neq(a, b);
    cr_assert_eq(pgd_ktrace_name(&t, "sg_kernel<bf16, 1>"), a);
    cr_assert_eq(t.n_names, 2);
    cr_assert_str_eq(t.names[b], "rmsnorm_kernel");
    pgd_ktrace_free(&t);
}

Test(ktrace, exclusive_and_idle_times_add_up_to_the_replay)
{
    struct pgd_ktrace t = { 0 };
    graph5(&t);
    int n;
    struct pgd_ktrace_graph *g = tables(&t, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(g[0].graph_id, 5u);
    cr_assert_eq(g[0].replays, 2);
    cr_assert_eq(g[0].skipped, 1, "the launch with a record missing is left out");
    cr_assert_eq(g[0].kernels, 3);
    cr_assert_float_eq(g[0].span_us, 40.0, 1e-9);
    /* nodes in replay order: gemv (10, 12), attn past the gemv's end (20, 18), gemv after an
     * idle 2 us then not (8, 10) */
    const double excl[3] = { 11.0, 19.0, 9.0 }, run[3] = { 11.0, 25.0, 9.0 },
                 idle[3] = { 0.0, 0.0, 1.0 }, at[3] = { 0.0, 5.0, 31.0 };
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        const struct pgd_ktrace_node *nd = &g[0].nodes[k];
        cr_assert_float_eq(nd->excl_us, excl[k], 1e-9, "node %d: %g", k, nd->excl_us);
        cr_assert_float_eq(nd->run_us, run[k], 1e-9, "node %d: %g", k, nd->run_us);
        cr_assert_float_eq(nd->idle_us, idle[k], 1e-9, "node %d: %g", k, nd->idle_us);
        cr_assert_float_eq(nd->at_us, at[k], 1e-9, "node %d: %g", k, nd->at_us);
        sum += nd->excl_us + nd->idle_us;
    }
    cr_assert_float_eq(sum, g[0].span_us, 1e-9);
    cr_assert_float_eq(g[0].excl_us + g[0].idle_us, g[0].span_us, 1e-9);
    /* rows a name, the largest exclusive time first: gemv's two nodes (20) before attn (19) */
    cr_assert_eq(g[0].n_rows, 2);
    cr_assert_str_eq(t.names[g[0].rows[0].name], "gemv");
    cr_assert_eq(g[0].rows[0].nodes, 2);
    cr_assert_float_eq(g[0].rows[0].excl_us, 20.0, 1e-9);
    cr_assert_float_eq(g[0].rows[0].run_us, 20.0, 1e-9);
    cr_assert_float_eq(g[0].rows[0].idle_us, 1.0, 1e-9);
    cr_assert_str_eq(t.names[g[0].rows[1].name], "attn");
    cr_assert_float_eq(g[0].rows[1].excl_us, 19.0, 1e-9);
    pgd_ktrace_graphs_free(g, n);
    pgd_ktrace_free(&t);
}

Test(ktrace, a_kernel_inside_another_is_exclusive_of_nothing)
{
    /* node 2 runs wholly inside node 1 (another stream of the graph): no exclusive time, and
     * node 3's idle time counts from node 1's end, the latest so far */
    struct pgd_ktrace t = { 0 };
    add(&t, 9, 1, 1, "big", 0, 50);
    add(&t, 9, 1, 2, "small", 10, 20);
    add(&t, 9, 1, 3, "next", 55, 60);
    int n;
    struct pgd_ktrace_graph *g = tables(&t, &n);
    cr_assert_float_eq(g[0].nodes[1].excl_us, 0.0, 1e-9);
    cr_assert_float_eq(g[0].nodes[1].run_us, 10.0, 1e-9);
    cr_assert_float_eq(g[0].nodes[2].idle_us, 5.0, 1e-9);
    cr_assert_float_eq(g[0].nodes[2].excl_us, 5.0, 1e-9);
    cr_assert_float_eq(g[0].span_us, 60.0, 1e-9);
    pgd_ktrace_graphs_free(g, n);
    pgd_ktrace_free(&t);
}

Test(ktrace, graphs_come_in_the_order_of_their_first_replay)
{
    struct pgd_ktrace t = { 0 };
    graph5(&t);
    /* graph 2 (a lower id) first replayed after graph 5; graph 7 before it */
    add(&t, 2, 300, 1, "gemv", 1000, 1004);
    add(&t, 2, 301, 1, "gemv", 1010, 1013);
    add(&t, 7, 50, 4, "attn", 0, 1);
    int n;
    struct pgd_ktrace_graph *g = tables(&t, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(g[0].graph_id, 5u, "5 and 7 both start at 0: 5, the lower id, first");
    cr_assert_eq(g[1].graph_id, 7u);
    cr_assert_eq(g[2].graph_id, 2u);
    const struct pgd_ktrace_graph *g2 = graph_of(g, n, 2);
    cr_assert_eq(g2->replays, 2);
    cr_assert_float_eq(g2->span_us, 3.5, 1e-9);
    pgd_ktrace_graphs_free(g, n);
    pgd_ktrace_free(&t);
}

Test(ktrace, kernels_outside_graphs_are_summed_by_name)
{
    struct pgd_ktrace t = { 0 };
    graph5(&t);
    add(&t, 0, 7, 0, "copy", 500, 501);
    add(&t, 0, 8, 0, "copy", 510, 512);
    add(&t, 0, 9, 0, "prefill", 520, 560);
    add(&t, 0, 10, 0, "copy", 600, 603);
    struct pgd_ktrace_row *e;
    int n;
    cr_assert_eq(pgd_ktrace_eager(&t, &e, &n), 0);
    cr_assert_eq(n, 2, "graph kernels are not eager ones");
    cr_assert_str_eq(t.names[e[0].name], "prefill");
    cr_assert_eq(e[0].nodes, 1);
    cr_assert_float_eq(e[0].run_us, 40.0, 1e-9);
    cr_assert_str_eq(t.names[e[1].name], "copy");
    cr_assert_eq(e[1].nodes, 3);
    cr_assert_float_eq(e[1].run_us, 6.0, 1e-9);
    free(e);
    pgd_ktrace_free(&t);
}

Test(ktrace, report_names_each_graph_and_its_kernels)
{
    struct pgd_ktrace t = { 0 };
    graph5(&t);
    add(&t, 8, 400, 1, "once", 900, 901); /* one replay: under the report's minimum */
    add(&t, 0, 9, 0, "prefill", 520, 560);
    char *buf = report(&t, 2, 1, 24);
    cr_assert_not_null(strstr(buf, "graph 5: 2 replays (1 skipped) of 3 kernels, 40.0 us a "
                                   "replay (exclusive 39.0 + idle 1.0)"),
                       "%s", buf);
    cr_assert_null(strstr(buf, "graph 8"), "%s", buf);
    cr_assert_not_null(strstr(buf, "  gemv                          2       20.0   50.0%       "
                                   "20.0      1.0"),
                       "%s", buf);
    cr_assert_not_null(strstr(buf, "nodes in order"), "%s", buf);
    cr_assert_not_null(strstr(buf, "kernels launched outside graphs, 40.0 us in all"), "%s", buf);
    free(buf);
    pgd_ktrace_free(&t);
}

/* One replay (launch 1) of graph 3: X, Y, then four layers of (norm, gemv, attn), then Z,
 * each kernel starting where the one before ended; layer l's gemv takes 10 + l us. */
static void layered_graph(struct pgd_ktrace *t, int launch, uint64_t t0)
{
    static const char *const head[2] = { "X", "Y" }, *const layer[3] = { "norm", "gemv", "attn" };
    uint64_t at = t0, node = 1;
    for (int i = 0; i < 2; i++, at += 1)
        add(t, 3, launch, node++, head[i], at, at + 1);
    for (int l = 0; l < 4; l++)
        for (int k = 0; k < 3; k++) {
            const uint64_t d = k == 0 ? 2 : k == 1 ? 10 + (uint64_t)l : 5;
            add(t, 3, launch, node++, layer[k], at, at + d);
            at += d;
        }
    add(t, 3, launch, node, "Z", at, at + 3);
}

Test(ktrace, a_repeated_chain_is_found_as_layers)
{
    struct pgd_ktrace t = { 0 };
    layered_graph(&t, 1, 0);
    layered_graph(&t, 2, 1000);
    int n;
    struct pgd_ktrace_graph *g = tables(&t, &n);
    struct pgd_ktrace_layers ly;
    cr_assert_eq(pgd_ktrace_find_layers(&g[0], &ly), 0);
    cr_assert_eq(ly.period, 3, "a layer of norm, gemv, attn: %d", ly.period);
    cr_assert_eq(ly.first, 2);
    cr_assert_eq(ly.layers, 4);
    char *buf = report(&t, 2, 0, 24);
    /* the layers: 4 x (2 + 5) + 10 + 11 + 12 + 13 = 74 us of the replay's 79 */
    cr_assert_not_null(strstr(buf, "a layer: 3 kernels, 4 times from node 2, 18.5 us a layer "
                                   "(93.7% of the replay)"),
                       "%s", buf);
    cr_assert_not_null(strstr(buf, "      1 gemv                    11.50      11.50     0.00"),
                       "%s", buf);
    free(buf);
    pgd_ktrace_graphs_free(g, n);
    pgd_ktrace_free(&t);
}

Test(ktrace, a_chain_without_repeats_has_no_layers)
{
    struct pgd_ktrace t = { 0 };
    graph5(&t);
    int n;
    struct pgd_ktrace_graph *g = tables(&t, &n);
    struct pgd_ktrace_layers ly;
    cr_assert_eq(pgd_ktrace_find_layers(&g[0], &ly), -1);
    cr_assert_eq(ly.period, 0);
    pgd_ktrace_graphs_free(g, n);
    pgd_ktrace_free(&t);
}
