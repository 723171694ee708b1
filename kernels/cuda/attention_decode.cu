/* Attention for decode rows: one query token of a sequence against its paged K/V.
 *
 * Decode reads every key and value once and does little math per byte (grouped query:
 * G query heads per KV head), so the kernel is built to keep many loads in flight:
 * a block takes one (row, KV head, context split) and its 4 warps take 32-key tiles in
 * turn. In a tile each lane owns one key: it reads the key's row (D elements, 16 bytes a
 * load) and computes its G scores against the queries held in shared memory, so scores
 * need no cross-lane reduction. The online softmax (base 2, float32) keeps a running max
 * per head (warp-uniform) and per-lane partial sums. For P·V each lane owns D/32 output
 * dimensions of every head: the tile's values are read one key row at a time by the whole
 * warp (coalesced), eight rows in flight, and each key's probabilities come from its
 * lane by shuffle. The warps' (max, sum, accumulators) merge in shared memory; with
 * context splits each block writes its partial and attn_decode_merge_kernel merges the
 * splits (flash-decoding), for this kernel and the tensor-core one.
 *
 * Also here: pgd__attn_decode, the decode rows' entry point (either kernel on the plan of
 * attention_decode_plan.cu, then the merge).
 *
 * An FP8 cache (kv_fp8.cuh): the kernel's cache element C is e4m3, so a key row is D bytes
 * (16 keys' dims a 16-byte load) and a lane's value dims D/32 bytes; the bytes become f16
 * words (exact) for the same float math, the K scale multiplies the query scale and the V
 * scale the output. */
#include "kernels/cuda/attention_decode.cuh"
#include "kernels/cuda/attention_internal.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include "kernels/cuda/quant.cuh"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <type_traits>

#define DEC_WARPS 4
#define DEC_THREADS (32 * DEC_WARPS)
#define FULL_MASK 0xffffffffu


/* Two 16-bit floats packed in a 32-bit word, as float2. */
template <typename T> __device__ __forceinline__ float2 word_f2(uint32_t w);
template <> __device__ __forceinline__ float2 word_f2<__nv_bfloat16>(uint32_t w)
{
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w));
}
template <> __device__ __forceinline__ float2 word_f2<__half>(uint32_t w)
{
    return __half22float2(*reinterpret_cast<const __half2 *>(&w));
}

/* NW 32-bit words (NW = 1, 2 or 4) from p, through the read-only path. */
template <int NW> __device__ __forceinline__ void load_words(const void *p, uint32_t (&w)[NW])
{
    if constexpr (NW == 4) {
        uint4 u = __ldg(reinterpret_cast<const uint4 *>(p));
        w[0] = u.x; w[1] = u.y; w[2] = u.z; w[3] = u.w;
    } else if constexpr (NW == 2) {
        uint2 u = __ldg(reinterpret_cast<const uint2 *>(p));
        w[0] = u.x; w[1] = u.y;
    } else {
        w[0] = __ldg(reinterpret_cast<const unsigned int *>(p));
    }
}

/* A lane's DL value elements at p as DL / 2 words of W x2: the T words themselves, or (FP8)
 * DL e4m3 bytes widened to f16 words. */
template <typename C, int DL>
__device__ __forceinline__ void load_v(const C *p, uint32_t (&w)[DL / 2])
{
    if constexpr (!kv_fp8_t<C>::value) {
        load_words<DL / 2>(p, w);
    } else if constexpr (DL == 2) {
        w[0] = kv_e4m3x2_h2(__ldg(reinterpret_cast<const unsigned short *>(p)));
    } else {
        uint32_t b[DL / 4];
        load_words<DL / 4>(p, b);
#pragma unroll
        for (int i = 0; i < DL / 4; i++) {
            w[2 * i] = kv_e4m3x2_h2(b[i]);
            w[2 * i + 1] = kv_e4m3x2_h2(b[i] >> 16);
        }
    }
}

/* G: query heads per KV head rounded up to 1, 2, 4 or 8 (rows g >= group are idle). */
template <typename T, typename C, int D, int G>
__global__ void __launch_bounds__(DEC_THREADS) attn_decode_kernel(const pgd__dec_params p)
{
    constexpr bool F8 = kv_fp8_t<C>::value;
    typedef typename std::conditional<F8, __half, T>::type W;   /* the words' dtype */
    constexpr int DL = D / 32;                   /* output dims a lane owns */
    constexpr int NCH = D * (int)sizeof(C) / 16; /* 16-byte chunks in a K row */
    constexpr int EPC = 16 / (int)sizeof(C);     /* elements a chunk: 8 or 16 */
    __shared__ __align__(16) float qs[G * D];    /* scaled queries */
    __shared__ float wm[DEC_WARPS][G], wl[DEC_WARPS][G];
    __shared__ float wacc[DEC_WARPS][G][D];

    pdl_trigger();
    pdl_wait();
    const int4 item = p.items[blockIdx.x];
    const int seq = item.x, t = item.y;
    const int kvh = blockIdx.y, split = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h0 = kvh * p.group;
    const int64_t kv_stride = (int64_t)p.KV * D;
    const T *q = (const T *)p.q;
    for (int i = threadIdx.x; i < G * D; i += DEC_THREADS) {
        int g = i / D, d = i % D;
        qs[i] = g < p.group ? to_f<T>(q[((int64_t)t * p.H + h0 + g) * D + d]) * p.scale_log2
                            : 0.0f;
    }
    const int pos = p.positions[t];
    const int first = p.window > 0 ? max(0, pos - p.window + 1) : 0;
    int lo, hi;
    pgd__dec_split_keys(first, pos, split, p.n_splits, 32, &lo, &hi);
    const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
    const C *kc = (const C *)p.kc + (int64_t)kvh * D;
    const C *vc = (const C *)p.vc + (int64_t)kvh * D + lane * DL;
    __syncthreads();

    float m[G], l[G], acc[G][DL];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < DL; e++)
            acc[g][e] = 0.0f;
    }
    for (int base = lo + warp * 32; base <= hi; base += DEC_THREADS) {
        const int j = base + lane;
        const bool valid = j <= hi;
        int slot = 0;
        if (valid)
            slot = table[j / p.block_size] * p.block_size + j % p.block_size;
        float s[G];
#pragma unroll
        for (int g = 0; g < G; g++)
            s[g] = 0.0f;
        if (valid) {
            const uint4 *kr = reinterpret_cast<const uint4 *>(kc + (int64_t)slot * kv_stride);
            uint4 kw[NCH];
#pragma unroll
            for (int ch = 0; ch < NCH; ch++)
                kw[ch] = __ldg(kr + ch);
#pragma unroll
            for (int ch = 0; ch < NCH; ch++) {
                /* The chunk as W x2 words: 4 (T), or 8 (16 e4m3 bytes widened). */
                uint32_t wc[EPC / 2];
                const uint32_t raw[4] = { kw[ch].x, kw[ch].y, kw[ch].z, kw[ch].w };
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    if constexpr (F8) {
                        wc[2 * i] = kv_e4m3x2_h2(raw[i]);
                        wc[2 * i + 1] = kv_e4m3x2_h2(raw[i] >> 16);
                    } else {
                        wc[i] = raw[i];
                    }
                }
#pragma unroll
                for (int sub = 0; sub < EPC / 8; sub++) {
                    const uint32_t *w4 = wc + 4 * sub;
                    const int d0 = ch * EPC + sub * 8;
#pragma unroll
                    for (int g = 0; g < G; g++) {
                        const float4 *qv = reinterpret_cast<const float4 *>(qs + g * D + d0);
                        float4 a = qv[0], b = qv[1];
                        float2 k0 = word_f2<W>(w4[0]), k1 = word_f2<W>(w4[1]);
                        float2 k2 = word_f2<W>(w4[2]), k3 = word_f2<W>(w4[3]);
                        float x = s[g];
                        x = fmaf(a.x, k0.x, x); x = fmaf(a.y, k0.y, x);
                        x = fmaf(a.z, k1.x, x); x = fmaf(a.w, k1.y, x);
                        x = fmaf(b.x, k2.x, x); x = fmaf(b.y, k2.y, x);
                        x = fmaf(b.z, k3.x, x); x = fmaf(b.w, k3.y, x);
                        s[g] = x;
                    }
                }
            }
        }
        /* Online softmax: lane 0's key is always valid, so each tile max is finite. */
#pragma unroll
        for (int g = 0; g < G; g++) {
            float sg = valid ? s[g] : -INFINITY, mt = sg;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                mt = fmaxf(mt, __shfl_xor_sync(FULL_MASK, mt, o));
            float mn = fmaxf(m[g], mt);
            float corr = exp2f(m[g] - mn);
            s[g] = valid ? exp2f(sg - mn) : 0.0f;
            l[g] = l[g] * corr + s[g];
            m[g] = mn;
#pragma unroll
            for (int e = 0; e < DL; e++)
                acc[g][e] *= corr;
        }
        /* P·V, eight value rows in flight. */
        const int nk = min(32, hi - base + 1);
        for (int j0 = 0; j0 < nk; j0 += 8) {
            uint32_t w[8][DL / 2];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                int sl = __shfl_sync(FULL_MASK, slot, j0 + u);
                if (j0 + u < nk) {
                    load_v<C, DL>(vc + (int64_t)sl * kv_stride, w[u]);
                } else {
#pragma unroll
                    for (int e = 0; e < DL / 2; e++)
                        w[u][e] = 0u;
                }
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
#pragma unroll
                for (int g = 0; g < G; g++) {
                    float pj = __shfl_sync(FULL_MASK, s[g], j0 + u);
#pragma unroll
                    for (int e = 0; e < DL / 2; e++) {
                        float2 v = word_f2<W>(w[u][e]);
                        acc[g][2 * e] = fmaf(pj, v.x, acc[g][2 * e]);
                        acc[g][2 * e + 1] = fmaf(pj, v.y, acc[g][2 * e + 1]);
                    }
                }
            }
        }
    }
    /* Merge the warps. */
#pragma unroll
    for (int g = 0; g < G; g++) {
        float x = l[g];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            x += __shfl_xor_sync(FULL_MASK, x, o);
        if (lane == 0) {
            wm[warp][g] = m[g];
            wl[warp][g] = x;
        }
#pragma unroll
        for (int e = 0; e < DL; e++)
            wacc[warp][g][lane * DL + e] = acc[g][e];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * D; i += DEC_THREADS) {
        const int g = i / D, d = i % D;
        if (g >= p.group)
            break;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++)
            M = fmaxf(M, wm[w][g]);
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            if (wm[w][g] == -INFINITY)
                continue;
            float f = exp2f(wm[w][g] - M);
            L += wl[w][g] * f;
            A += wacc[w][g][d] * f;
        }
        const int h = h0 + g;
        if constexpr (F8)
            A *= p.v_scale;
        if (p.n_splits == 1) {
            ((T *)p.out)[((int64_t)t * p.H + h) * D + d] = from_f<T>(L > 0.0f ? A / L : 0.0f);
        } else {
            float *part = p.part +
                          (((int64_t)blockIdx.x * p.H + h) * p.n_splits + split) * (D + 2);
            part[d] = A;
            if (d == 0) {
                part[D] = M;
                part[D + 1] = L;
            }
        }
    }
}

/* Merges the splits of one (item, head), one thread a dim, every split in turn: the merge
 * of before, kept for comparison (PGD_CUDA_DECODE_MERGE=serial). */
template <typename T, int D>
__global__ void attn_decode_combine_kernel(const float *part, const int4 *items, int H,
                                           int n_splits, T *out)
{
    pdl_trigger();
    pdl_wait();
    const int i = blockIdx.x, h = blockIdx.y, t = items[i].y;
    attn_merge_splits<T>(part + ((int64_t)i * H + h) * n_splits * (D + 2), n_splits, D,
                         out + ((int64_t)t * H + h) * D, threadIdx.x, blockDim.x);
}

/* Merges the splits of one (item, head) (block: 256 threads) with many loads in flight:
 * a thread a split finds the block's max and the weights 2^(m_s - M) (shared memory: w
 * [n_splits]) and the denominator; then thread (column, share) sums float2 column `column`
 * over the splits share, share + SHARES, ... (unrolled, so several splits' loads are in
 * flight at once), and the shares add up through shared memory (sum [SHARES][D]). A split
 * that saw no key (sum 0) weighs 0. Dynamic shared memory: (n_splits + SHARES * D) floats. */
#define MERGE_THREADS 256
template <typename T, int D>
__global__ void __launch_bounds__(MERGE_THREADS)
attn_decode_merge_kernel(const float *part, const int4 *items, int H, int n_splits, T *out,
                         void *out_g, const int32_t *out_pos)
{
    constexpr int COLS = D / 2, SHARES = MERGE_THREADS / COLS;
    static_assert(MERGE_THREADS % COLS == 0, "whole shares");
    extern __shared__ float msm[];
    __shared__ float red[MERGE_THREADS / 32];
    float *w = msm, *sum = msm + n_splits;
    static_assert(SHARES >= 2 && D <= MERGE_THREADS, "shares added up, an output a thread");

    pdl_trigger();
    const int i = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31;
    const int col = tid % COLS, share = tid / COLS;
    /* The gathered place of this thread's output, read before the wait (the places are the
     * load's, never a kernel's), so the store at the end does not wait on it. */
    const int gpos = out_g && tid < D ? __ldg(&out_pos[h * D + tid]) : 0;
    pdl_wait();
    const float *pp = part + ((int64_t)i * H + h) * n_splits * (D + 2);
    float M = -INFINITY;
    for (int s = tid; s < n_splits; s += MERGE_THREADS)
        if (pp[s * (D + 2) + D + 1] > 0.0f)
            M = fmaxf(M, pp[s * (D + 2) + D]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        M = fmaxf(M, __shfl_xor_sync(FULL_MASK, M, o));
    if (lane == 0)
        red[tid >> 5] = M;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < MERGE_THREADS / 32; k++)
        M = fmaxf(M, red[k]);
    float den = 0.0f;
    for (int s = tid; s < n_splits; s += MERGE_THREADS) {
        const float l = pp[s * (D + 2) + D + 1];
        const float ws = l > 0.0f ? exp2f(pp[s * (D + 2) + D] - M) : 0.0f;
        w[s] = ws;
        den += ws * l;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        den += __shfl_xor_sync(FULL_MASK, den, o);
    __syncthreads();                                    /* red read, w written */
    if (lane == 0)
        red[tid >> 5] = den;
    __syncthreads();
    den = 0.0f;
#pragma unroll
    for (int k = 0; k < MERGE_THREADS / 32; k++)
        den += red[k];

    float2 num = make_float2(0.0f, 0.0f);
#pragma unroll 8
    for (int s = share; s < n_splits; s += SHARES) {
        const float ws = w[s];
        const float2 v = *reinterpret_cast<const float2 *>(pp + s * (D + 2) + 2 * col);
        if (ws > 0.0f) {
            num.x += ws * v.x;
            num.y += ws * v.y;
        }
    }
    const int t = items[i].y;
    T *o = out + ((int64_t)t * H + h) * D;
    sum[share * D + 2 * col] = num.x;
    sum[share * D + 2 * col + 1] = num.y;
    __syncthreads();
    if (tid < D) {
        float x = 0.0f;
#pragma unroll
        for (int k = 0; k < SHARES; k++)
            x += sum[k * D + tid];
        const T v = from_f<T>(den > 0.0f ? x / den : 0.0f);
        o[tid] = v;
        pgd__dec_store_at<T>(out_g, t, H * D, gpos, v);
    }
}

static int group_rounded(int group)
{
    return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : group <= 8 ? 8 : 0;
}

bool pgd__attn_decode_ok(int head_dim, int group)
{
    return (head_dim == 64 || head_dim == 128 || head_dim == 256) && group_rounded(group) > 0;
}

/* The gathered output for the act-order layer after (pgd_cuda_attn's out_perm), unless
 * PGD_CUDA_ATTN_GATHER=0 (read at every call, as the merge's variable below). On an H100 the
 * 8B act-order GPTQ step is 1.2-1.7% faster with it at batch 1-16 since the kernels load the
 * places before their PDL wait (docs/PERFORMANCE.md, thirty-third session); loaded at the
 * end, it was 2% slower at batch 1. */
static bool env_attn_gather_on(void)
{
    const char *e = getenv("PGD_CUDA_ATTN_GATHER");
    return !e || strcmp(e, "0");
}

/* PGD_CUDA_DECODE_MERGE=serial: the merge of before (read at every call). */
static bool env_serial_merge(void)
{
    const char *e = getenv("PGD_CUDA_DECODE_MERGE");
    return e && !strcmp(e, "serial");
}

template <typename T, int D>
static void combine(struct pgd_cuda_ctx *c, const float *part, const int4 *items, int n_items,
                    int H, int n_splits, void *out, const pgd__dec_params &p)
{
    if (env_serial_merge()) {
        pgd_cuda_launch(c, attn_decode_combine_kernel<T, D>, dim3(n_items, H), std::min(D, 128),
                        part, items, H, n_splits, (T *)out);
        return;
    }
    constexpr int SHARES = MERGE_THREADS / (D / 2);
    const size_t smem = (size_t)(n_splits + SHARES * D) * sizeof(float);
    pgd_cuda_launch_smem(c, attn_decode_merge_kernel<T, D>, dim3(n_items, H), MERGE_THREADS,
                         smem, part, items, H, n_splits, (T *)out, p.out_g, p.out_pos);
}

/* Merges the n_splits partials of every (item, head) into out (and p's gathered output, where
 * it asks for one: the parallel merge only). */
static void combine_dt(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int D, const float *part,
                       const int4 *items, int n_items, int H, int n_splits, void *out,
                       const pgd__dec_params &p)
{
    const bool bf = dt == PGD_DTYPE_BF16;
    switch (D) {
    case 64:
        bf ? combine<__nv_bfloat16, 64>(c, part, items, n_items, H, n_splits, out, p)
           : combine<__half, 64>(c, part, items, n_items, H, n_splits, out, p);
        break;
    case 128:
        bf ? combine<__nv_bfloat16, 128>(c, part, items, n_items, H, n_splits, out, p)
           : combine<__half, 128>(c, part, items, n_items, H, n_splits, out, p);
        break;
    default:
        bf ? combine<__nv_bfloat16, 256>(c, part, items, n_items, H, n_splits, out, p)
           : combine<__half, 256>(c, part, items, n_items, H, n_splits, out, p);
        break;
    }
}

/* The SIMT kernel on p: G, the group rounded up (1, 2, 4, 8); grid (items, KV, splits). */
template <typename T, typename C, int D>
static cudaError_t launch_simt_d(struct pgd_cuda_ctx *c, const pgd__dec_params &p)
{
    const dim3 grid(p.n_items, p.KV, p.n_splits);
    switch (group_rounded(p.group)) {
    case 1: return pgd_cuda_launch(c, attn_decode_kernel<T, C, D, 1>, grid, DEC_THREADS, p);
    case 2: return pgd_cuda_launch(c, attn_decode_kernel<T, C, D, 2>, grid, DEC_THREADS, p);
    case 4: return pgd_cuda_launch(c, attn_decode_kernel<T, C, D, 4>, grid, DEC_THREADS, p);
    default: return pgd_cuda_launch(c, attn_decode_kernel<T, C, D, 8>, grid, DEC_THREADS, p);
    }
}

static cudaError_t run_simt(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                            const pgd__dec_params &p)
{
    const int D = a->p.head_dim;
    return pgd__dec_types(a, [&](auto tt, auto ct) {
        typedef typename decltype(tt)::type T;
        typedef typename decltype(ct)::type C;
        return D == 64    ? launch_simt_d<T, C, 64>(c, p)
               : D == 128 ? launch_simt_d<T, C, 128>(c, p)
                          : launch_simt_d<T, C, 256>(c, p);
    });
}

int pgd__attn_decode(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                     int n_items, const pgd__dec_plan *pl, float *scratch, char *err,
                     size_t errlen)
{
    const struct pgd_attn_params *ap = &a->p;
    const int D = ap->head_dim;
    if (n_items == 0)
        return 0;
    if (pl->kind == PGD__DEC_NONE || (a->dtype != PGD_DTYPE_BF16 && a->dtype != PGD_DTYPE_F16))
        return pgd_cuda_failf(err, errlen, "attention (decode): %s, head_dim %d with %d query "
                              "heads over %d KV heads has no decode kernel",
                              pgd_cuda_dt(a->dtype), D, ap->n_heads, ap->n_kv_heads);
    if (pl->n_splits > 1 && !scratch)
        return pgd_cuda_failf(err, errlen, "attention (decode): %d context splits need scratch",
                              pl->n_splits);
    pgd__dec_params p = pgd__dec_params_of(a, items, n_items, *pl, scratch);
    /* o_proj's gathered x too (pgd_cuda_attn's out_perm): where this call has every row of
     * the step, on the kernels that write it, into the quantized linears' scratch */
    const bool gather = a->out_perm && a->out_pos && n_items == a->n_tokens &&
                        pl->kind == PGD__DEC_MMA && (pl->n_splits == 1 || !env_serial_merge()) &&
                        (size_t)a->n_tokens * ap->n_heads * D * 2 <= c->qscratch_bytes &&
                        env_attn_gather_on();
    if (gather) {
        p.out_g = c->qscratch;
        p.out_pos = a->out_pos;
    }
    if (pl->kind == PGD__DEC_MMA) {
        if (pgd__attn_decode_mma_run(c, a, p, err, errlen))
            return 1;
    } else {
        const cudaError_t e = run_simt(c, a, p);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "attention (decode, simt) %s: %s",
                                  pgd_cuda_dt(a->dtype), cudaGetErrorString(e));
    }
    if (pl->n_splits > 1)
        combine_dt(c, a->dtype, D, scratch, items, n_items, ap->n_heads, pl->n_splits, a->out,
                   p);
    if (gather)
        pgd_cuda__wq_xg_note(c, a->dtype, a->out, a->out_perm, a->n_tokens, ap->n_heads * D,
                             c->qscratch);
    PGD_CUDA_LAUNCHED(err, errlen, "attention (decode, %s) %s%s [%d rows, %d heads / %d kv of "
                      "%d, max len %d, %d warps a pair, %d splits]",
                      pl->kind == PGD__DEC_MMA ? "tensor cores" : "simt", pgd_cuda_dt(a->dtype),
                      a->kv_fp8 ? " (e4m3 cache)" : "", n_items, ap->n_heads, ap->n_kv_heads, D,
                      a->max_seq_len, pl->pair_warps, pl->n_splits);
    return 0;
}
