/* max_num_seqs / max_num_batched_tokens chosen for the card (runtime/config/batch_defaults.h),
 * as vLLM's get_batch_defaults: by device memory, name and usage context. */
#include <criterion/criterion.h>
#include "tests/lib/test_common.h"
#include "runtime/config/batch_defaults.h"

PGD_TEST_SUITE(batch_defaults);

#define GIB ((size_t)1 << 30)

static void expect(enum pgd_device dev, size_t mem, const char *name,
                   enum pgd__usage_context u, bool chunked, int max_len, int seqs, int tokens)
{
    struct pgd__batch_defaults d = pgd__batch_defaults_for(dev, mem, name, u, chunked, max_len);
    cr_assert(d.max_num_seqs == seqs && d.max_num_batched_tokens == tokens,
              "%s %.0f GiB %s chunked %d max_len %d: %d / %d, want %d / %d", name ? name : "-",
              (double)mem / GIB, u == PGD__USAGE_OFFLINE ? "offline" : "server", chunked,
              max_len, d.max_num_seqs, d.max_num_batched_tokens, seqs, tokens);
}

Test(batch_defaults, by_card_and_usage_context)
{
    const enum pgd__usage_context OFF = PGD__USAGE_OFFLINE, SRV = PGD__USAGE_SERVER;
    /* H200 (139.8 GiB) and H100 80GB (79.1 GiB): vLLM's large defaults. */
    expect(PGD_DEVICE_CUDA, 140 * GIB, "NVIDIA H200", OFF, true, 0, 1024, 16384);
    expect(PGD_DEVICE_CUDA, 140 * GIB, "NVIDIA H200", SRV, true, 0, 1024, 8192);
    expect(PGD_DEVICE_CUDA, 79 * GIB, "NVIDIA H100 80GB HBM3", OFF, true, 0, 1024, 16384);
    /* The boundary is 70 GiB. */
    expect(PGD_DEVICE_CUDA, 70 * GIB, "x", SRV, true, 0, 1024, 8192);
    expect(PGD_DEVICE_CUDA, 70 * GIB - 1, "x", SRV, true, 0, 256, 2048);
    /* An A100 80GB keeps the small ones, whatever the case of its name. */
    expect(PGD_DEVICE_CUDA, 79 * GIB, "NVIDIA A100-SXM4-80GB", OFF, true, 0, 256, 8192);
    expect(PGD_DEVICE_CUDA, 79 * GIB, "nvidia a100 80gb pcie", SRV, true, 0, 256, 2048);
    /* A 24 GiB card, and an unknown name. */
    expect(PGD_DEVICE_CUDA, 24 * GIB, "NVIDIA L4", OFF, true, 0, 256, 8192);
    expect(PGD_DEVICE_CUDA, 24 * GIB, NULL, SRV, true, 0, 256, 2048);
    /* The CPU: pagoda's own, unchanged. */
    expect(PGD_DEVICE_CPU, 512 * GIB, "cpu", OFF, true, 0, 256, 2048);
    expect(PGD_DEVICE_CPU, 512 * GIB, "cpu", SRV, true, 0, 256, 2048);
    /* Without chunked prefill a whole prompt fits a step. */
    expect(PGD_DEVICE_CUDA, 140 * GIB, "NVIDIA H200", SRV, false, 32768, 1024, 32768);
    expect(PGD_DEVICE_CUDA, 140 * GIB, "NVIDIA H200", SRV, false, 4096, 1024, 8192);
    expect(PGD_DEVICE_CPU, 0, NULL, SRV, false, 4096, 256, 4096);
}

/* On the CPU the engine's values stay as they are (no probe, no log). */
Test(batch_defaults, apply_leaves_the_cpu_alone)
{
    struct pgd_engine_params ep = pgd_engine_default_params();
    ep.max_num_seqs = 7;
    ep.max_num_batched_tokens = 99;
    pgd__batch_defaults_apply(&ep, false, false, PGD__USAGE_SERVER);
    cr_assert_eq(ep.max_num_seqs, 7);
    cr_assert_eq(ep.max_num_batched_tokens, 99);
}
