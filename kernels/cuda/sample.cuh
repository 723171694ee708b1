/* What the two sampling kernels share (internal to kernels/cuda): sample.cu's general kernel
 * (one block a row, every feature) and sample_plain.cu's kernel for plain rows (a cluster of
 * blocks a row, the row in shared memory). Both draw the same way: each candidate's
 * probability p (a float, as the CPU's) as a 64-bit fixed-point mass p * 2^62 (truncated),
 * walked in id order, the first whose inclusive prefix of mass reaches the target
 * pgd_cuda__draw_target(u, total). */
#ifndef PGD_KERNELS_CUDA_SAMPLE_CUH
#define PGD_KERNELS_CUDA_SAMPLE_CUH

#include "kernels/cuda/common.cuh"

#define FX_ONE_F 4611686018427387904.0f /* 2^62: probability 1 in fixed point */
#define FULL_MASK 0xffffffffu

/* The draw's target in [1, total] for u in [0, 1): floor(u * total) + 1 (total > 0). */
__device__ __forceinline__ unsigned long long pgd_cuda__draw_target(double u,
                                                                    unsigned long long total)
{
    const double x = floor(u * (double)total) + 1.0;
    unsigned long long T = x >= (double)total ? total : (unsigned long long)x;
    return T == 0 ? 1 : T;
}

/* The sum of v over the warp, in every lane. */
__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

/* The inclusive prefix sum of v over lanes 0..lane. */
__device__ __forceinline__ unsigned long long warp_scan_u64(unsigned long long v)
{
    const int lane = threadIdx.x & 31;
    for (int off = 1; off < 32; off <<= 1) {
        const unsigned long long o = __shfl_up_sync(FULL_MASK, v, off);
        if (lane >= off)
            v += o;
    }
    return v;
}

/* ---- the draw's walk in id order, shared by both kernels -------------------------------------
 * A block's ids [0, n) are split among its nw warps: warp w owns [w * seg, (w + 1) * seg),
 * seg a multiple of 32, read lane by lane (lane l takes b + l, b + l + 32, ...: consecutive
 * words, no bank conflicts in shared memory). Each warp sums its segment's mass
 * (draw_segment_mass); the caller publishes the warps' sums in shared memory, and the warp
 * whose range of the prefix holds the target walks its segment (draw_walk). The masses are
 * integers: every sum is exact, so the order of the additions changes nothing.
 *
 * mass: a functor, mass(i) -> unsigned long long, the fixed-point mass of id i (0 for an id
 * that is not a candidate); called for ids in [0, n) only. */
struct draw_segment {
    int b, e;                        /* this warp's ids [b, e) */
};

/* This thread's warp's segment of [0, n) among the block's nw warps (nw = blockDim.x / 32: a
 * parameter so that a kernel with a fixed block size divides by a constant). */
__device__ __forceinline__ draw_segment draw_segment_of(int n, int nw)
{
    const int warp = threadIdx.x >> 5;
    const int seg = ((n + nw - 1) / nw + 31) / 32 * 32;
    const int b = warp * seg;
    return { b, min(n, b + seg) };
}

/* The mass of the warp's segment, in every lane. */
template <class Mass>
__device__ __forceinline__ unsigned long long draw_segment_mass(draw_segment g, Mass mass)
{
    unsigned long long part = 0;
    for (int i = g.b + (threadIdx.x & 31); i < g.e; i += 32)
        part += mass(i);
    return warp_sum_u64(part);
}

/* The walk: warp_mass [nw] the warps' segment masses (draw_segment_mass, read
 * after a barrier), before the mass of every id before this block's, T the target (1 <= T).
 * The warp whose range (base, base + its mass] holds T (base: before plus the earlier warps'
 * masses; at most one warp's) walks its segment 32 ids at a time with a warp scan. Returns
 * the first id whose inclusive prefix of mass reaches T in the one lane that holds it, -1
 * in every other thread. (The first lane reaching T has a mass: the prefix before it is
 * below T.) */
template <class Mass>
__device__ __forceinline__ int draw_walk(draw_segment g, const unsigned long long *warp_mass,
                                         unsigned long long before, unsigned long long T,
                                         Mass mass)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long base = before;
    for (int w = 0; w < warp; w++)
        base += warp_mass[w];
    if (!(base < T && T <= base + warp_mass[warp]))
        return -1;                   /* warp-uniform: the scans below have every lane */
    for (int i0 = g.b; i0 < g.e; i0 += 32) {
        const int i = i0 + lane;
        const unsigned long long incl = base + warp_scan_u64(i < g.e ? mass(i) : 0ull);
        const unsigned hit = __ballot_sync(FULL_MASK, incl >= T);
        if (hit)
            return lane == __ffs(hit) - 1 ? i : -1;
        base = __shfl_sync(FULL_MASK, incl, 31);
    }
    return -1;                       /* unreachable: T lies within the segment's mass */
}

/* A plain row: a sample with nothing but temperature and min_p (no mask, bias, penalty,
 * allowed-token bitmask, top_k, top_p or logprobs): what sample_plain.cu's kernel does. */
__host__ __device__ __forceinline__ bool pgd_cuda__sample_row_plain(const pgd_cuda_sample_row &P)
{
    return P.kind == PGD_CUDA_ROW_SAMPLE && P.n_mask == 0 && P.n_bias == 0 && P.n_pen == 0 &&
           P.pend_at < 0 && P.allow_off < 0 && P.top_k <= 0 && !(P.top_p < 1.0f) &&
           P.n_top < 0;
}

/* Samples the plain rows of params [rows] (the others are left to the general kernel) when
 * this device has thread block clusters and the row fits their shared memory; *done says
 * whether it did (false: the general kernel must take every row). 0, or 1 with err. */
int pgd_cuda__sample_plain(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                           const struct pgd_cuda_sample_row *params,
                           struct pgd_cuda_sample_out *out, bool *done, char *err,
                           size_t errlen);

/* The argmax of each row of logits [rows, vocab] into out [rows] (lowest id on ties, 0 for a
 * row with nothing above -inf) with a cluster a row, where the device has clusters; *done
 * says whether it did (false: the caller's one-block kernel must). 0, or 1 with err. */
int pgd_cuda__argmax_cluster(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                             int32_t *out, bool *done, char *err, size_t errlen);

#endif
