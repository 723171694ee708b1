/* Prometheus text as Prometheus' clients write it (runtime/base/metrics.c): numbers in the
 * shortest form that reads back (prometheus_client's floatToGoString), escaped label values,
 * histograms with their labels before le, vLLM's token buckets cut at the model's length. */
#include "tests/lib/test_common.h"
#include "runtime/base/metrics.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(metrics);

Test(metrics, numbers_as_prometheus_client_writes_them)
{
    /* The right column is what prometheus_client.utils.floatToGoString returns. */
    struct { double v; const char *want; } cases[] = {
        { 0.005, "0.005" }, { 1, "1.0" }, { 2560, "2560.0" }, { 0.3, "0.3" },
        { 1e6, "1e+06" }, { 2e6, "2e+06" }, { 1e-5, "1e-05" }, { 123456.5, "123456.5" },
        { 0.1 + 0.2, "0.30000000000000004" }, { -3, "-3.0" }, { 0, "0.0" },
        { INFINITY, "+Inf" }, { -INFINITY, "-Inf" }, { 42.25, "42.25" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        pgd__prom_float(buf, sizeof buf, cases[i].v);
        cr_assert_str_eq(buf, cases[i].want, "%.17g", cases[i].v);
    }
}

Test(metrics, label_values_are_escaped)
{
    char buf[64];
    pgd__prom_label_value(buf, sizeof buf, "a\"b\\c\nd");
    cr_assert_str_eq(buf, "a\\\"b\\\\c\\nd");
}

Test(metrics, histogram_lines_carry_the_labels)
{
    struct pgd__histogram h;
    pgd__histogram_init_tokens(&h, PGD__HIST_TOKENS, 100);
    cr_assert_eq(h.n_bounds, 7);   /* 1 2 5 10 20 50 100 */
    pgd__histogram_observe(&h, 3);
    pgd__histogram_observe(&h, 1000);
    struct pgd__buf b = { 0 };
    pgd__prom_histogram(&b, "x", "help", "model_name=\"m\"", &h);
    cr_assert(!b.failed);
    const char *want[] = {
        "# TYPE x histogram\n", "x_bucket{model_name=\"m\",le=\"2.0\"} 0.0\n",
        "x_bucket{model_name=\"m\",le=\"5.0\"} 1.0\n",
        "x_bucket{model_name=\"m\",le=\"100.0\"} 1.0\n",
        "x_bucket{model_name=\"m\",le=\"+Inf\"} 2.0\n", "x_count{model_name=\"m\"} 2.0\n",
        "x_sum{model_name=\"m\"} 1003.0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(b.p, want[i]), "no %s in\n%s", want[i], b.p);
    pgd__buf_fini(&b);
}
