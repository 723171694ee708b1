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

/* The 8B layers' plans on 132 SMs under each rule: q, k and v in one launch (384 tiles),
 * o (256), gate_up (1792), down (224 chunks a row); a kernel whose registers hold 12 or 32
 * warps an SM. */
Test(stream_plan, the_8b_layers_on_132_sms)
{
    static const struct {
        const char *what;
        int in, count, tiles[3], balance, warps_sm;
        int ks, tpb, kpu, blocks_sm, blocks;
        long load;
    } cases[] = {
        /* balance: q/k/v one tile a block of 5 warps, 3 an SM; gate_up 7 tiles a block */
        { "q/k/v", 4096, 3, { 256, 64, 64 }, 1, 16, 5, 1, 13, 3, 384, 3 * 64 },
        { "o", 4096, 1, { 256 }, 1, 16, 8, 1, 8, 2, 256, 2 * 64 },
        { "gate_up", 4096, 1, { 1792 }, 1, 16, 1, 7, 64, 2, 256, 14 * 64 },
        { "down", 14336, 1, { 256 }, 1, 16, 8, 1, 28, 2, 256, 2 * 224 },
        { "q/k/v, 12 warps an SM", 4096, 3, { 256, 64, 64 }, 1, 12, 4, 1, 16, 3, 384, 3 * 64 },
        /* pow2: two blocks of two tiles on 60 of the SMs for q/k/v, 8 tiles a block for
         * gate_up */
        { "q/k/v", 4096, 3, { 256, 64, 64 }, 0, 16, 4, 2, 16, 2, 192, 4 * 64 },
        { "gate_up", 4096, 1, { 1792 }, 0, 16, 1, 8, 64, 2, 224, 16 * 64 },
        { "q/k/v, 32 warps an SM", 4096, 3, { 256, 64, 64 }, 0, 32, 8, 1, 8, 4, 384, 3 * 64 },
        { "gate_up, 32 warps an SM", 4096, 1, { 1792 }, 0, 32, 2, 4, 32, 4, 448, 4 * 4 * 64 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct pgd_stream_shape s = w4_shape(cases[i].in, cases[i].count, cases[i].tiles[0],
                                             cases[i].tiles[1], cases[i].tiles[2]);
        s.balance = cases[i].balance;
        s.warps_sm = cases[i].warps_sm;
        const struct pgd_stream_plan p = plan_of(&s);
        const char *rule = cases[i].balance ? "balance" : "pow2";
        cr_expect_eq(p.ks, cases[i].ks, "%s, %s: ks %d", cases[i].what, rule, p.ks);
        cr_expect_eq(p.tpb, cases[i].tpb, "%s, %s: %d tiles a block", cases[i].what, rule, p.tpb);
        cr_expect_eq(p.warps, p.ks * p.tpb);
        cr_expect_eq(p.kpu, cases[i].kpu, "%s, %s: %d chunks a warp", cases[i].what, rule, p.kpu);
        cr_expect_eq(p.blocks_sm, cases[i].blocks_sm, "%s, %s: %d blocks an SM", cases[i].what,
                     rule, p.blocks_sm);
        cr_expect_eq(p.first[3], cases[i].blocks, "%s, %s: %d blocks", cases[i].what, rule,
                     p.first[3]);
        cr_expect_eq(p.load, cases[i].load, "%s, %s: %ld chunks on the busiest SM",
                     cases[i].what, rule, p.load);
    }
    /* the layers' first blocks in one launch */
    struct pgd_stream_shape s = w4_shape(4096, 3, 256, 64, 64);
    s.balance = 1;
    const struct pgd_stream_plan p = plan_of(&s);
    cr_expect(p.first[0] == 0 && p.first[1] == 256 && p.first[2] == 320);
}

/* A forced split is kept by both rules. */
Test(stream_plan, forced_split)
{
    struct pgd_stream_shape s = w4_shape(4096, 1, 256, 0, 0);
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
