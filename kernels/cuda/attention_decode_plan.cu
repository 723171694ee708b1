/* The plan of a call's decode rows (attention_decode.cuh): which decode kernel, the
 * tensor-core kernel's block shape (warps a (row, KV head) pair) and the context splits.
 * Host code only. A plan depends on the shapes (rows, heads, the longest context), the
 * device and the environment, never on the data, so the results are deterministic for a
 * shape and a captured graph replays the plan it was captured with.
 *
 * The environment (read at every call, so that tests and benches can switch):
 *   PGD_CUDA_DECODE_ATTN=0 / 1 / simt: no decode kernel / every decode row on one (the
 *     tensor-core one where it serves) / every decode row on the SIMT one;
 *   PGD_CUDA_DECODE_WARPS=4 / 2 / 1: the tensor-core kernel's warps a pair forced (4 is the
 *     one-pair-a-block shape it had alone before), its splits as the rule below gives;
 *     otherwise the cost model below picks it;
 *   PGD_CUDA_DECODE_FILL=0: the cost model without its fill term (fill_factor), as before
 *     2026-12-06;
 *   PGD_CUDA_DECODE_STAGES=2 / 3: the tensor-core kernel's K/V tiles a warp forced;
 *     otherwise mma_staged_shape below picks. */
#include "kernels/cuda/attention_decode.cuh"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>

#define DEC_SPLIT_MIN 128            /* SIMT kernel: keys a split covers at least */
#define DM_SPLIT_MIN 256             /* tensor-core kernel: the same (four 16-key tiles a warp) */
#define DEC_MAX_SPLITS 4096          /* the merge kernel keeps a weight a split in shared memory */

/* PGD_CUDA_DECODE_ATTN, or "" without it. */
static const char *decode_env(void)
{
    const char *e = getenv("PGD_CUDA_DECODE_ATTN");
    return e ? e : "";
}

bool pgd__attn_decode_forced(void)
{
    const char *e = decode_env();
    return !strcmp(e, "1") || !strcmp(e, "simt");
}

int pgd__attn_decode_kernel(const struct pgd_cuda_attn *a)
{
    const struct pgd_attn_params *p = &a->p;
    if (p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads)
        return PGD__DEC_NONE;
    const int group = p->n_heads / p->n_kv_heads;
    const char *e = decode_env();
    if (!strcmp(e, "0"))
        return PGD__DEC_NONE;
    if (strcmp(e, "simt") && pgd__attn_decode_mma_ok(a->dtype, p->head_dim, group))
        return PGD__DEC_MMA;
    return pgd__attn_decode_ok(p->head_dim, group) ? PGD__DEC_SIMT : PGD__DEC_NONE;
}

/* PGD_CUDA_DECODE_STAGES as 2 or 3; 0 when unset or anything else. */
static int env_stages(void)
{
    const char *e = getenv("PGD_CUDA_DECODE_STAGES");
    if (!e)
        return 0;
    return !strcmp(e, "2") ? 2 : !strcmp(e, "3") ? 3 : 0;
}

/* PGD_CUDA_DECODE_WARPS as 4, 2 or 1; 0 when unset or anything else. */
static int env_pair_warps(void)
{
    const char *e = getenv("PGD_CUDA_DECODE_WARPS");
    if (!e)
        return 0;
    return !strcmp(e, "4") ? 4 : !strcmp(e, "2") ? 2 : !strcmp(e, "1") ? 1 : 0;
}

/* The splits of up to n that the longest row (max_len keys) fills when each takes whole runs
 * of `round` keys, as pgd__dec_split_keys cuts every row: 1 when n is 1 or the row is short. */
static int split_count(int max_len, int n, int round)
{
    if (n <= 1)
        return 1;
    int len = (max_len + n - 1) / n;
    len = (len + round - 1) / round * round;
    return std::max((max_len + len - 1) / len, 1);
}

/* The tensor-core kernel's splits for `blocks` blocks of pairs, each at least DM_SPLIT_MIN
 * keys: a batch short of one wave of blocks (`slots`: blocks an SM as its occupancy gives, times
 * the SMs) is split to fill the wave; a batch of a wave or more is not split (no partials,
 * no merge kernel). Splitting such a batch further to fill its last wave lost on the H200
 * (8B heads, bf16: 256 rows x 512 keys 3,272 GB/s split in two, against 3,532 at 128 rows
 * unsplit). */
static int mma_split_count(int64_t blocks, int slots, int max_len)
{
    return blocks < slots ? std::min<int64_t>(slots / blocks, max_len / DM_SPLIT_MIN) : 1;
}

/* ---- the tensor-core kernel's cost model ----------------------------------------------------
 * Fitted to the H200 (132 SMs, Llama-3-8B heads, bf16) at one pair a block, where a call
 * of B rows at context L took bytes / bandwidth + 3 us for each wave of blocks (b256 ctx 128:
 * 32 + 5.2 x 3 = 47 us, measured 48; b1024 ctx 64: 64 + 21 x 3 = 126, measured 117; b512
 * ctx 512: 256 + 10 x 3 = 287, measured 275): a block's start-up and end (the item, table,
 * position and Q loads, a memory latency each, and the merge of its warps) are paid once a
 * block and hide poorly behind the other blocks of its SM. More pairs a block pay them
 * once for several pairs; the price is fewer, longer blocks, so the model also has
 *   - the latency floor: a warp's tiles go by two a memory round trip (~1 us) when its SM
 *     has bandwidth to spare, so a call takes at least start-up + tiles a warp x 0.5 us;
 *   - the tail: the last blocks run alone at the rate their own loads in flight allow
 *     (4 warps x `stages` tiles a round trip), on average half a block's bytes;
 *   - the fill: a wave that leaves slots empty streams slower (fill_factor).
 * Splits add the merge kernel (a launch and a read of the partials). All in nanoseconds. */
#define DM_START_NS 3000.0           /* a block's start-up and end */
#define DM_TILE_NS 500.0             /* a warp's 16-key tile when latency-bound */
#define DM_ROUND_TRIP_NS 1000.0      /* a memory round trip under load */
#define DM_SM_BYTES_NS 32.0          /* bandwidth an SM (bytes a ns: the H200's 4.2 TB/s / 132) */
#define DM_MERGE_NS 2500.0           /* the merge kernel's launch and latency */
/* A shape of fewer, longer blocks is taken only for a clear gain: the model knows the
 * one-pair-a-block shape best. */
#define DM_FEWER_BLOCKS_GAIN 0.97
/* A wave whose blocks take a fraction f of the slots (fewer warps an SM, so fewer bytes in
 * flight) streams at about (f / DM_FILL_FULL)^DM_FILL_EXP of the bandwidth below
 * DM_FILL_FULL. Fitted to the H100 (8B heads, bf16, 4,096 keys; 396 slots): 32 rows in 256
 * blocks of 4 warps (f 0.65) took 224.8 us, the same bytes in 384 blocks of one warp a pair
 * (f 0.97) 196.1; 64 rows in 512 blocks (a wave and 116 blocks) 402.9, in 384 blocks 381.6. */
#define DM_FILL_FULL 0.9
#define DM_FILL_EXP 0.34
/* Where it was measured and is taken: contexts of at least this many keys (shorter calls
 * are paced by their blocks' start-up, the wave term: there one warp a pair wins by far, as
 * the shape's comment below says), in a grid of less than two waves (past that the tail term
 * has the last wave; b1024 x 1024 keys kept one warp a pair, 2% ahead on the H200). */
#define DM_FILL_MIN_KEYS 1024

/* The bandwidth term's multiplier for `blocks` blocks on `slots` slots, at contexts of
 * `keys`: a whole wave at the full rate, a partial one at its fill's rate. */
static double fill_factor(int64_t blocks, int slots, int keys)
{
    const int64_t full = blocks / slots, rem = blocks % slots;
    if (!rem || keys < DM_FILL_MIN_KEYS || blocks >= 2 * (int64_t)slots)
        return 1.0;
    const char *e = getenv("PGD_CUDA_DECODE_FILL");
    if (e && !strcmp(e, "0"))
        return 1.0;
    const double f = std::min((double)rem / slots / DM_FILL_FULL, 1.0);
    return ((double)full * slots + (double)rem / pow(f, DM_FILL_EXP)) / (double)blocks;
}

struct dm_shape_cost {
    int pair_warps, n_splits, stages;
    double ns;
    int64_t blocks;                  /* the grid */
    int tiles_a_warp;                /* the longest row's 16-key tiles a warp */
    int slots;                       /* blocks the device holds at once */
};

/* The shape of `pairs` pairs of `keys` keys (row_bytes of K and V a key and KV head; a
 * split's partial of a pair part_bytes) with pair_warps warps a pair, n_splits splits and
 * `stages` K/V tiles a warp, on sm_count SMs of `slots` blocks, with its time. */
static dm_shape_cost dm_cost(int64_t pairs, int keys, double row_bytes, double part_bytes,
                             int pair_warps, int n_splits, int stages, int sm_count, int slots)
{
    const int64_t blocks = (pairs * pair_warps + 3) / 4 * n_splits;
    const double waves = std::max((double)blocks / slots, 1.0);
    const int split_keys = (keys + n_splits - 1) / n_splits;
    const int tiles_a_warp = ((split_keys + 15) / 16 + pair_warps - 1) / pair_warps;
    /* A block alone pulls at most about twice its SM's share. */
    const double bw = DM_SM_BYTES_NS * std::min<double>(sm_count, 2.0 * (double)blocks);
    const double bytes = (double)pairs * keys * row_bytes;
    const double block_bytes = bytes / (double)blocks;
    const double block_rate = 4 * stages * 16 * row_bytes / DM_ROUND_TRIP_NS;
    double ns = std::max(bytes / bw * fill_factor(blocks, slots, keys) +
                             waves * DM_START_NS,
                         DM_START_NS + tiles_a_warp * DM_TILE_NS) +
                block_bytes / 2 / block_rate;
    if (n_splits > 1)
        ns += DM_MERGE_NS + 2.0 * (double)pairs * n_splits * part_bytes / bw;
    return { pair_warps, n_splits, stages, ns, blocks, tiles_a_warp, slots };
}

/* The tensor-core kernel's shape for n_items rows of call a: 4 or 1 warps a pair, each with
 * the splits mma_split_count gives its blocks, whichever dm_cost finds cheapest (1 only when
 * 3% cheaper); or PGD_CUDA_DECODE_WARPS's (4, 2 or 1). 2 warps a pair is left to the
 * environment: on the H200 it was never ahead of 4 (8B heads, bf16: b128 ctx 128 1,934 GB/s
 * against 2,001, ctx 256 2,556 against 2,679, b256 ctx 512 3,514 against 3,601), where one
 * warp a pair, with no merge of warps at the end, was far ahead wherever the model takes it
 * (b256 ctx 64 2,635 against 1,434, b256 ctx 128 3,082 against 2,314, b1024 ctx 256 3,895
 * against 3,526, b1024 ctx 1024 4,102 against 4,016). */
static dm_shape_cost mma_shape(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                               int n_items, int stages)
{
    const struct pgd_attn_params *ap = &a->p;
    const int64_t pairs = std::max<int64_t>((int64_t)n_items * ap->n_kv_heads, 1);
    const int max_len = std::max(a->max_seq_len, 1);
    const int keys = ap->sliding_window > 0 ? std::min(max_len, ap->sliding_window) : max_len;
    const double row_bytes = 2.0 * ap->head_dim * (a->kv_fp8 ? 1 : 2);
    const double part_bytes = (double)ap->n_heads / ap->n_kv_heads * (ap->head_dim + 2) * 4;
    const int slots = std::max(c->sm_count * pgd__attn_decode_mma_occupancy(c, a, stages), 1);
    const int forced = env_pair_warps();
    dm_shape_cost best = { 0, 1, stages, 0.0, 0, 0, slots };
    for (int wp = 4; wp >= 1; wp /= 2) {
        if (forced ? wp != forced : wp == 2)
            continue;
        const int n = std::max(mma_split_count((pairs * wp + 3) / 4, slots, max_len), 1);
        const dm_shape_cost s = dm_cost(pairs, keys, row_bytes, part_bytes, wp, n, stages,
                                        c->sm_count, slots);
        if (!best.pair_warps || s.ns < DM_FEWER_BLOCKS_GAIN * best.ns)
            best = s;
    }
    return best;
}

/* ---- the tensor-core kernel's stages ---------------------------------------------------------
 * Three K/V tiles a warp rather than two: blocks of 104 KB instead of 70 (8B heads, bf16), two
 * an SM instead of three, so the same 24 tiles an SM in flight when the SMs are full, but 50%
 * more wherever they are not: a grid short of a wave, the last wave's blocks, a block whose
 * warps end early. Measured on the H100 (`bench attention --path decode`, 8B heads, bf16, the
 * cost model's shape at each stage count), three stages were faster almost everywhere: b8-b128
 * at 64-1,024 keys by 11-28%, b256 x 512 keys by 4-6%, long contexts by 0-5%; the 8B step at
 * 64-128 rows by 1.4-2.6%, at 224-256 by ~1%. They lost in two places:
 *   - unsplit grids of a wave or more of warps with few tiles (b256-b1024 at 64 keys by
 *     2.4-3.3%, at 128 keys by 0-0.8%): there a warp's start-up (item, table, position, Q: a
 *     memory latency each) is most of its time, and three blocks an SM overlap more
 *     start-ups than two. Two stages where the three-stage shape is unsplit, fills its slots
 *     and gives a warp at most DM_STAGES3_MIN_TILES tiles;
 *   - grids of one to 1.5 waves of three-stage blocks that fit one wave of two-stage ones
 *     (the 8B step at 144-192 rows, 288-384 blocks of one warp a pair, by 1.5-2%): a second
 *     wave, half empty, against none. Two stages there too.
 * (A captured graph is planned at its context bucket's top: the 8B step at 512 rows of ~150
 * keys, 0.5% slower with three stages, is planned at 256 keys and gets three.) */
#define DM_STAGES3_MIN_TILES 12

static dm_shape_cost mma_staged_shape(const struct pgd_cuda_ctx *c,
                                      const struct pgd_cuda_attn *a, int n_items)
{
    const int forced = env_stages();
    if (forced)
        return mma_shape(c, a, n_items, forced);
    const dm_shape_cost s3 = mma_shape(c, a, n_items, 3);
    const bool startup_bound = s3.n_splits == 1 && s3.blocks >= s3.slots &&
                               s3.tiles_a_warp <= DM_STAGES3_MIN_TILES;
    if (startup_bound)
        return mma_shape(c, a, n_items, 2);
    if (s3.blocks <= s3.slots)
        return s3;
    const dm_shape_cost s2 = mma_shape(c, a, n_items, 2);
    return s2.blocks <= s2.slots ? s2 : s3;     /* one wave of two stages against two of three */
}

/* The tensor-core kernel: mma_staged_shape. The SIMT kernel: enough splits for two blocks
 * an SM, of 128+ keys. Both keep the partials within 64 MiB. */
void pgd__attn_decode_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                           int n_items, pgd__dec_plan *pl)
{
    const struct pgd_attn_params *ap = &a->p;
    const int blocks = std::max(n_items * ap->n_kv_heads, 1), max_len = a->max_seq_len;
    pl->kind = pgd__attn_decode_kernel(a);
    pl->pair_warps = 4;
    pl->stages = 2;
    int n, round;
    if (pl->kind == PGD__DEC_MMA) {
        const dm_shape_cost s = mma_staged_shape(c, a, n_items);
        pl->stages = s.stages;
        pl->pair_warps = s.pair_warps;
        n = s.n_splits;
        round = 16;                  /* a tile: 64 left a wave short (b1 32k: 47 of 49) */
    } else {
        n = std::min((2 * c->sm_count + blocks - 1) / blocks, max_len / DEC_SPLIT_MIN);
        round = 32;
    }
    const int64_t per_split = (int64_t)std::max(n_items, 1) * ap->n_heads * (ap->head_dim + 2) * 4;
    n = (int)std::min<int64_t>(std::min(n, DEC_MAX_SPLITS), ((int64_t)64 << 20) / per_split);
    pl->n_splits = split_count(max_len, n, round);
}

size_t pgd__attn_decode_scratch(int n_items, int n_heads, int head_dim, int n_splits)
{
    return n_splits > 1 ? (size_t)n_items * n_heads * n_splits * (head_dim + 2) * 4 : 0;
}
