/* The split of a streaming decode GEMV over the SMs (quant_wq_sgemv.cu, quant_fp8_gemv.cu):
 * plain C, so that the choice is tested on the CPU (tests/unit/test_stream_plan.c).
 *
 * Such a GEMV cuts each layer into tiles of 16 features, each tile's row into chunks (the
 * unit a warp streams: 16 rows x 64 inputs), and gives each tile ks warps, each a slice of
 * ceil(chunks / ks) chunks; a block holds tpb tiles (ks tpb warps), and up to 3 layers of
 * one x (q, k, v) share a launch, each block holding tiles of one layer.
 *
 * Two rules (docs/PERFORMANCE.md, thirty-sixth session):
 *   - pow2: blocks of max_warps warps, ks the largest power of 2 whose blocks all fit on
 *     the chip at once (warps_sm / max_warps an SM; then larger where the scale tables need
 *     it). The 8B layers on 132 SMs: o and down 256 blocks of one tile, 8 warps a tile;
 *     q/k/v (384 tiles) 192 blocks of 2 tiles, 4 warps a tile, so the SMs holding two blocks
 *     stream 256 chunks against 186 on average; gate_up (1,792 tiles) 224 blocks of 8 tiles.
 *   - balance: every ks and tpb whose blocks are all on the chip at once (registers and
 *     shared memory permitting), the one whose busiest SM streams the fewest chunks, then
 *     the shortest slice, then the largest block: q/k/v 384 blocks of 5 warps (3 an SM, 192
 *     chunks, 13 a warp), gate_up 256 blocks of 7 tiles.
 * On an H100 (8B decode steps, three calls) balance made FP8 4% faster at 4 rows and ~1% at 8,
 * and FP8 at one row and every W4 batch 0.5-3% slower: q/k/v's own time fell 0.6 us a layer,
 * and the kernels after it took as much more (their blocks, launched early, find less room
 * beside the fuller SMs). So the FP8 GEMV takes balance from 2 rows, the W4 one pow2. */
#ifndef PGD_KERNELS_CUDA_STREAM_PLAN_H
#define PGD_KERNELS_CUDA_STREAM_PLAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the plan is made for. Shared memory a block: fixed + tpb tile + (ks > 1: warps a
 * block x warp_red), at most block_max; an SM holds sm bytes, each block taking reserve
 * more (the system's share). */
struct pgd_stream_shape {
    int sms;                         /* the device's SMs */
    int max_warps;                   /* warps a block at most (the kernel's launch bound) */
    int warps_sm;                    /* warps an SM holds at the registers that bound allows */
    int chunks;                      /* chunks a tile's row */
    int count;                       /* layers in the launch, 1..3 */
    int tiles[3];                    /* layer i's tiles */
    int force_ks;                    /* > 0: only this split (measuring one against another) */
    int balance;                     /* the balance rule, else pow2 (above) */
    size_t smem_fixed, smem_tile, smem_warp_red;
    size_t smem_block_max, smem_sm, smem_reserve;
};

struct pgd_stream_plan {
    int ks, tpb, warps;              /* warps a tile, tiles a block, warps a block */
    int kpu;                         /* chunks a slice: ceil(chunks / ks) */
    int blocks_sm;                   /* blocks an SM holds */
    int first[4];                    /* layer i's first block; first[3] the grid */
    long load;                       /* chunks of the busiest SM */
    size_t smem;                     /* shared memory a block (all of it: fixed included) */
};

/* The plan for s, or 0 where no split fits (shared memory): the caller takes another path. */
int pgd__stream_plan_make(const struct pgd_stream_shape *s, struct pgd_stream_plan *p);

/* first[i + 1] = first[i] + layer i's blocks at tpb tiles a block (layers past count none). */
void pgd__stream_plan_first(int count, const int *tiles, int tpb, int first[4]);

/* The environment's rule, read once: PGD_CUDA_STREAM_PLAN=pow2 (0) or balance (1); -1 unset
 * (each GEMV's default: pgd_cuda__stream_shape in quant.cuh). */
int pgd__stream_plan_rule_env(void);

#ifdef __cplusplus
}
#endif

#endif
