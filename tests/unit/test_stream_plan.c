/* The streaming decode GEMVs' split over the SMs (kernels/cuda/stream_plan.h): the plans
 * the 8B layers get on a 132-SM Hopper under both rules, and over a sweep of shapes the
 * invariants every balance plan must hold (each tile's chunks covered, the blocks within what
 * registers and shared memory allow, the busiest SM never fuller than under the pow2 rule
 * where that rule ran one wave). */
#include "tests/lib/test_common.h"
#include "kernels/cuda/stream_plan.h"

PGD_TEST_SUITE(stream_plan);

/* The W4 streaming GEMV (quant_wq_sgemv.cu) at one row on an H100 / H200: 8 warps a block at
 * most, 2 such blocks an SM by registers, 228 KB of shared memory an SM, x staged (one row of
 * in inputs, padded), the scale tables of 32 groups (in 4096) a tile. */
static struct pgd_stream_shape w4_shape(int in, int count, int t0, int t1, int t2)
{
    struct pgd_stream_shape s = {
        .sms = 132, .max_warps = 8, .warps_sm = 16, .chunks = in / 64, .count = count,
        .tiles = { t0, t1, t2 },
        .smem_fixed = (size_t)(in + 8) * 2, .smem_tile = (size_t)(in / 128) * 8 * 16,
        .smem_warp_red = 4 * 32 * 4, .smem_sm = 228 << 10, .smem_reserve = 1 << 10,
    };
    s.smem_block_max = s.smem_sm / 2 - s.smem_reserve;
    return s;
}

static struct pgd_stream_plan plan_of(const struct pgd_stream_shape *s)
{
    struct pgd_stream_plan p;
    cr_assert(pgd__stream_plan_make(s, &p), "no plan for %d chunks, tiles %d/%d/%d", s->chunks,
              s->tiles[0], s->tiles[1], s->tiles[2]);
    return p;
}

Test(stream_plan, balance_on_the_8b_layers)
{
    /* q, k and v in one launch: 384 tiles, one of 5 warps a block, 3 blocks an SM */
    struct pgd_stream_shape s = w4_shape(4096, 3, 256, 64, 64);
    s.balance = 1;
    struct pgd_stream_plan p = plan_of(&s);
    cr_expect_eq(p.ks, 5);
    cr_expect_eq(p.tpb, 1);
    cr_expect_eq(p.warps, 5);
    cr_expect_eq(p.kpu, 13);
    cr_expect_eq(p.blocks_sm, 3);
    cr_expect_eq(p.first[1], 256);
    cr_expect_eq(p.first[2], 320);
    cr_expect_eq(p.first[3], 384);
    cr_expect_eq(p.load, 3 * 64);

    /* o: 256 tiles of 8 warps each, as before */
    s = w4_shape(4096, 1, 256, 0, 0);
    s.balance = 1;
    p = plan_of(&s);
    cr_expect_eq(p.ks, 8);
    cr_expect_eq(p.tpb, 1);
    cr_expect_eq(p.load, 2 * 64);

    /* gate_up: 1792 tiles a warp each, 7 a block: 256 blocks, 14 tiles on the busiest SM */
    s = w4_shape(4096, 1, 1792, 0, 0);
    s.balance = 1;
    p = plan_of(&s);
    cr_expect_eq(p.ks, 1);
    cr_expect_eq(p.tpb, 7);
    cr_expect_eq(p.first[3], 256);
    cr_expect_eq(p.load, 14 * 64);

    /* down: 224 chunks a row, 256 tiles of 8 warps */
    s = w4_shape(14336, 1, 256, 0, 0);
    s.balance = 1;
    p = plan_of(&s);
    cr_expect_eq(p.ks, 8);
    cr_expect_eq(p.kpu, 28);
    cr_expect_eq(p.load, 2 * 224);

    /* 12 warps an SM: q/k/v in 384 blocks of 4 warps, 3 an SM (16 chunks a warp) */
    s = w4_shape(4096, 3, 256, 64, 64);
    s.balance = 1;
    s.warps_sm = 12;
    p = plan_of(&s);
    cr_expect_eq(p.ks, 4);
    cr_expect_eq(p.tpb, 1);
    cr_expect_eq(p.blocks_sm, 3);
    cr_expect_eq(p.load, 3 * 64);
}

Test(stream_plan, pow2_on_the_8b_layers)
{
    struct pgd_stream_shape s = w4_shape(4096, 3, 256, 64, 64);
    struct pgd_stream_plan p = plan_of(&s);
    cr_expect_eq(p.ks, 4);
    cr_expect_eq(p.tpb, 2);
    cr_expect_eq(p.first[3], 192);
    cr_expect_eq(p.load, 4 * 64);   /* two blocks of two tiles on 60 of the SMs */

    s = w4_shape(4096, 1, 1792, 0, 0);
    p = plan_of(&s);
    cr_expect_eq(p.ks, 1);
    cr_expect_eq(p.tpb, 8);
    cr_expect_eq(p.load, 16 * 64);

    /* a kernel whose registers allow 4 blocks of 8 warps an SM: q/k/v 8 warps a tile,
     * gate_up 2 */
    s = w4_shape(4096, 3, 256, 64, 64);
    s.warps_sm = 32;
    p = plan_of(&s);
    cr_expect_eq(p.ks, 8);
    cr_expect_eq(p.first[3], 384);
    s = w4_shape(4096, 1, 1792, 0, 0);
    s.warps_sm = 32;
    p = plan_of(&s);
    cr_expect_eq(p.ks, 2);
    cr_expect_eq(p.tpb, 4);

    /* a forced split is kept by both rules */
    s = w4_shape(4096, 1, 256, 0, 0);
    s.force_ks = 2;
    cr_expect_eq(plan_of(&s).ks, 2);
    s.balance = 1;
    cr_expect_eq(plan_of(&s).ks, 2);
}

/* Scale tables too large for several tiles a block (long rows, groups of 32): the plan takes
 * fewer tiles a block or none fits. */
Test(stream_plan, shared_memory_bounds_the_block)
{
    struct pgd_stream_shape s = w4_shape(28672, 1, 512, 0, 0);
    s.balance = 1;
    s.smem_tile = (size_t)(28672 / 32) * 8 * 16;   /* 112 KB a tile */
    struct pgd_stream_plan p;
    cr_expect(!pgd__stream_plan_make(&s, &p), "a 112 KB scale table beside x cannot fit");
    s.smem_tile = (size_t)(28672 / 128) * 8 * 16;  /* 28 KB a tile */
    p = plan_of(&s);
    cr_expect_leq(p.smem, s.smem_block_max);
    cr_expect_leq((size_t)p.blocks_sm * (p.smem + s.smem_reserve), s.smem_sm);
}

Test(stream_plan, every_plan_holds_its_invariants)
{
    const int sms[] = { 16, 78, 108, 132 };
    const int ins[] = { 64, 128, 576, 2048, 4096, 8192, 14336 };
    const int outs[] = { 16, 64, 256, 512, 1024, 1792, 3584, 8000 };
    for (size_t a = 0; a < sizeof sms / sizeof *sms; a++)
        for (size_t b = 0; b < sizeof ins / sizeof *ins; b++)
            for (size_t c = 0; c < sizeof outs / sizeof *outs; c++)
                for (int count = 1; count <= 3; count++) {
                    const int t0 = outs[c], t1 = count > 1 ? outs[c] / 4 + 1 : 0,
                              t2 = count > 2 ? outs[(c + 3) % 8] : 0;
                    struct pgd_stream_shape s = w4_shape(ins[b], count, t0, t1, t2);
                    s.sms = sms[a];
                    s.balance = 1;
                    struct pgd_stream_plan p, old;
                    if (!pgd__stream_plan_make(&s, &p))
                        continue;
                    cr_assert_eq(p.ks * p.tpb, p.warps);
                    cr_assert_leq(p.warps, s.max_warps);
                    cr_assert_leq(p.ks, s.chunks);
                    cr_assert_geq(p.ks * p.kpu, s.chunks);
                    cr_assert_lt((p.ks - 1) * p.kpu, s.chunks, "every warp of a tile has chunks");
                    cr_assert_eq(p.first[3], (t0 + p.tpb - 1) / p.tpb + (t1 + p.tpb - 1) / p.tpb +
                                             (t2 + p.tpb - 1) / p.tpb);
                    cr_assert_leq(p.warps * p.blocks_sm, s.warps_sm);
                    cr_assert_leq(p.smem, s.smem_block_max);
                    cr_assert_leq((size_t)p.blocks_sm * (p.smem + s.smem_reserve), s.smem_sm);
                    s.balance = 0;
                    if (pgd__stream_plan_make(&s, &old) &&
                        old.first[3] <= (long)s.sms * old.blocks_sm)
                        cr_assert_leq(p.load, old.load, "SMs %d, in %d, tiles %d/%d/%d: %ld "
                                      "chunks an SM against %ld before", s.sms, ins[b], t0, t1,
                                      t2, p.load, old.load);
                }
}
