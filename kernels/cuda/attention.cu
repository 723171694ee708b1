/* Paged attention over the step's flat batch.
 *
 * The work is cut into items: up to tq consecutive query tokens of one sequence (a decode
 * row is an item of one token). A block takes one item, one KV head and hq of the query
 * heads that share it (grouped query), so R = tokens x hq query rows read each K/V tile
 * once. It walks the keys the rows need ([min first, max position], the causal limit and
 * the sliding window applied per row) in tiles of KT keys gathered through the block
 * table into shared memory, with an online softmax (float32 max, sum and accumulators).
 * When the grid has fewer blocks than the GPU has SMs (few rows, long context) the keys
 * are also split into ranges, each block writes its partial (max, sum, accumulators) and a
 * second kernel merges them, a warp a token (flash-decoding).
 *
 * Plain FMA math. BF16/F16 at head_dim 64 and 128 go to the tensor-core kernel instead
 * (attention_mma.cu, same items and splits; its 128-row prefill blocks on Hopper to
 * attention_wgmma.cu) unless PGD_CUDA_ATTN=fma or a->path says otherwise; this one keeps the
 * other head dims.
 *
 * An FP8 cache (a->kv_fp8; kv_fp8.cuh): every kernel is instantiated on the cache element
 * too; the tiles are converted to T as they are gathered, the K scale multiplies the query
 * scale and the V scale the output.
 *
 * A mixed call (general items and decode rows) plans each kernel at its own rows' longest
 * context (kernel_calls) and runs the two side by side on two streams (run_overlapped), or
 * in turn with PGD_CUDA_ATTN_OVERLAP=0. */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/attention_decode.cuh"
#include "kernels/cuda/attention_internal.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <limits.h>
#include <algorithm>

#define ATT_THREADS 128
#define RD_MAX 4096                  /* rows x head_dim held per block */
#define SPLIT_MIN 256                /* fewest keys worth a split of their own */

/* ---- K/V write ------------------------------------------------------------------------------ */
template <typename T, typename C>
__global__ void kv_write_kernel(C *kc, C *vc, const T *k, const T *v, const int64_t *slots,
                                int width, float k_scale, float v_scale)
{
    int t = blockIdx.x;
    int64_t s = slots[t];
    if (s < 0)
        return;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        kv_store<T, C>(kc + s * width + i, k[(int64_t)t * width + i], k_scale);
        kv_store<T, C>(vc + s * width + i, v[(int64_t)t * width + i], v_scale);
    }
}

extern "C" int pgd_cuda_kv_write(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *k_cache,
                                 void *v_cache, const void *k, const void *v,
                                 const int64_t *slot_mapping, int n, int width,
                                 const struct pgd_cuda_kv_fp8 *fp8, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    int threads = width >= 256 ? 256 : ((width + 31) / 32) * 32;
    if (fp8)
        PGD_CUDA_DISPATCH(dt, T, kv_write_kernel<T, kv_e4m3><<<n, threads, 0, c->stream>>>(
                                     (kv_e4m3 *)k_cache, (kv_e4m3 *)v_cache, (const T *)k,
                                     (const T *)v, slot_mapping, width, fp8->k_scale,
                                     fp8->v_scale))
    else
        PGD_CUDA_DISPATCH(dt, T, kv_write_kernel<T, T><<<n, threads, 0, c->stream>>>(
                                     (T *)k_cache, (T *)v_cache, (const T *)k, (const T *)v,
                                     slot_mapping, width, 1.0f, 1.0f))
    PGD_CUDA_LAUNCHED(err, errlen, "kv_write [%d, %d] %s%s", n, width, pgd_cuda_dt(dt),
                      fp8 ? " into e4m3" : "");
    return 0;
}

/* ---- the attention kernel ---------------------------------------------------------------------- */
struct attn_kparams {
    const void *q;
    void *out;
    const void *kc, *vc;
    const int32_t *seq_lens, *block_tables, *positions;
    const int4 *items;               /* {seq, first token, tokens, 0} */
    float *part;                     /* [n_tokens, H, n_splits, D + 2] when n_splits > 1 */
    int block_size, max_blocks, H, KV, group, hq, head_chunks, window;
    int n_splits, split_len;
    float scale_log2;                /* scale * log2(e) (* k_scale): softmax in base 2 */
    float v_scale;                   /* FP8 cache: the output's factor */
};

template <int D> struct attn_shape {
    static constexpr int KT = D <= 128 ? 32 : 16;       /* keys per tile */
    static constexpr int RMAX = RD_MAX / D < 64 ? RD_MAX / D : 64;   /* query rows a block */
    static constexpr int KPAD = D + 2;                   /* odd word stride: no bank conflicts */
    static constexpr int ACC = (RD_MAX + ATT_THREADS - 1) / ATT_THREADS;
};

template <typename T, typename C, int D>
__global__ void __launch_bounds__(ATT_THREADS) attn_kernel(const attn_kparams p)
{
    typedef attn_shape<D> S;
    __shared__ float qs[S::RMAX * D];
    __shared__ __align__(16) T ks[S::KT * S::KPAD];
    __shared__ __align__(16) T vs[S::KT * D];
    __shared__ float ss[S::RMAX * (S::KT + 1)];
    __shared__ float row_m[S::RMAX], row_l[S::RMAX], row_c[S::RMAX];
    __shared__ int row_first[S::RMAX], row_last[S::RMAX];
    __shared__ int range[2];

    const int4 item = p.items[blockIdx.x];
    const int seq = item.x, t0 = item.y, nt = item.z;
    const int kvh = blockIdx.y / p.head_chunks;
    const int h0 = kvh * p.group + (blockIdx.y % p.head_chunks) * p.hq;
    const int R = nt * p.hq;
    const int split = blockIdx.z;
    const int tid = threadIdx.x;
    const T *q = (const T *)p.q;
    const int32_t *table = p.block_tables + (int64_t)seq * p.max_blocks;
    const int64_t kv_stride = (int64_t)p.KV * D;   /* between consecutive cache slots */

    /* Rows: r = token i * hq + head j. Their queries (scaled) and key ranges. */
    for (int idx = tid; idx < R * D; idx += ATT_THREADS) {
        int r = idx / D, d = idx % D;
        int t = t0 + r / p.hq, h = h0 + r % p.hq;
        qs[idx] = to_f<T>(q[((int64_t)t * p.H + h) * D + d]) * p.scale_log2;
    }
    if (tid == 0) {
        range[0] = INT_MAX;
        range[1] = -1;
    }
    __syncthreads();
    int split_lo = split * p.split_len, split_hi = split_lo + p.split_len - 1;
    for (int r = tid; r < R; r += ATT_THREADS) {
        int pos = p.positions[t0 + r / p.hq];
        int first = p.window > 0 ? max(0, pos - p.window + 1) : 0;
        row_first[r] = max(first, split_lo);
        row_last[r] = min(pos, split_hi);
        row_m[r] = -INFINITY;
        row_l[r] = 0.0f;
        if (row_first[r] <= row_last[r]) {
            atomicMin(&range[0], row_first[r]);
            atomicMax(&range[1], row_last[r]);
        }
    }
    float acc[S::ACC];
#pragma unroll
    for (int i = 0; i < S::ACC; i++)
        acc[i] = 0.0f;
    __syncthreads();
    const int kb = range[0], ke = range[1];

    constexpr int VEC = 16 / sizeof(T);               /* elements per 16-byte load */
    constexpr int VPR = D / VEC;                      /* vectors per row */
    for (int tile = kb; tile <= ke; tile += S::KT) {
        int nk = min(S::KT, ke - tile + 1);
        /* Gather the tile's K and V rows through the block table. */
        for (int idx = tid; idx < nk * VPR; idx += ATT_THREADS) {
            int jj = idx / VPR, vv = idx % VPR, j = tile + jj;
            int64_t slot = (int64_t)table[j / p.block_size] * p.block_size + j % p.block_size;
            int64_t off = slot * kv_stride + (int64_t)kvh * D + vv * VEC;
            uint4 kv4 = kv_load8<T, C>((const C *)p.kc + off);
            uint4 vv4 = kv_load8<T, C>((const C *)p.vc + off);
            /* K rows are padded by 2 elements: store in 4-byte pieces. */
            const uint32_t *kw = reinterpret_cast<const uint32_t *>(&kv4);
            uint32_t *kdst = reinterpret_cast<uint32_t *>(ks + jj * S::KPAD + vv * VEC);
#pragma unroll
            for (int w = 0; w < 4; w++)
                kdst[w] = kw[w];
            *reinterpret_cast<uint4 *>(vs + jj * D + vv * VEC) = vv4;
        }
        __syncthreads();
        /* Scores, masked per row. */
        for (int idx = tid; idx < R * S::KT; idx += ATT_THREADS) {
            int r = idx / S::KT, jj = idx % S::KT, j = tile + jj;
            float s = -INFINITY;
            if (jj < nk && j >= row_first[r] && j <= row_last[r]) {
                const float *qr = qs + r * D;
                const T *kr = ks + jj * S::KPAD;
                float a = 0.0f;
#pragma unroll 8
                for (int d = 0; d < D; d++)
                    a = fmaf(qr[d], to_f<T>(kr[d]), a);
                s = a;
            }
            ss[r * (S::KT + 1) + jj] = s;
        }
        __syncthreads();
        /* Online softmax, one thread per row. */
        for (int r = tid; r < R; r += ATT_THREADS) {
            float *sr = ss + r * (S::KT + 1);
            float mt = -INFINITY;
            for (int jj = 0; jj < nk; jj++)
                mt = fmaxf(mt, sr[jj]);
            float m_old = row_m[r], m_new = fmaxf(m_old, mt);
            float corr = 1.0f, sum = 0.0f;
            if (m_new == -INFINITY) {
                for (int jj = 0; jj < nk; jj++)
                    sr[jj] = 0.0f;
            } else {
                corr = exp2f(m_old - m_new);
                for (int jj = 0; jj < nk; jj++) {
                    float e = exp2f(sr[jj] - m_new);
                    sr[jj] = e;
                    sum += e;
                }
            }
            row_m[r] = m_new;
            row_l[r] = row_l[r] * corr + sum;
            row_c[r] = corr;
        }
        __syncthreads();
        /* acc[r, d] = acc * corr + sum_j p[r, j] v[j, d] */
#pragma unroll
        for (int i = 0; i < S::ACC; i++) {
            int idx = tid + i * ATT_THREADS;
            if (idx < R * D) {
                int r = idx / D, d = idx % D;
                const float *pr = ss + r * (S::KT + 1);
                float a = acc[i] * row_c[r];
                for (int jj = 0; jj < nk; jj++)
                    a = fmaf(pr[jj], to_f<T>(vs[jj * D + d]), a);
                acc[i] = a;
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < S::ACC; i++) {
        int idx = tid + i * ATT_THREADS;
        if (idx < R * D) {
            int r = idx / D, d = idx % D;
            int t = t0 + r / p.hq, h = h0 + r % p.hq;
            if constexpr (kv_fp8_t<C>::value)
                acc[i] *= p.v_scale;
            if (p.n_splits == 1) {
                float l = row_l[r];
                ((T *)p.out)[((int64_t)t * p.H + h) * D + d] = from_f<T>(l > 0 ? acc[i] / l : 0.0f);
            } else {
                float *part = p.part + (((int64_t)t * p.H + h) * p.n_splits + split) * (D + 2);
                part[d] = acc[i];
                if (d == 0) {
                    part[D] = row_m[r];
                    part[D + 1] = row_l[r];
                }
            }
        }
    }
}

/* Merges the splits of the tokens of one (item, head): weights 2^(m_s - M), a warp a token
 * (COMBINE_WARPS tokens at once). One thread a dim walking the item's tokens in turn put
 * a few dependent loads' latency a token on the critical path: 32 tokens' worth for a
 * 128-row item. */
#define COMBINE_WARPS 8
template <typename T>
__global__ void attn_combine_kernel(const float *part, const int4 *items, int H, int n_splits,
                                    int D, T *out)
{
    const int4 item = items[blockIdx.x];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int t = item.y + warp; t < item.y + item.z; t += COMBINE_WARPS) {
        int64_t th = (int64_t)t * H + blockIdx.y;
        attn_merge_splits<T>(part + th * n_splits * (D + 2), n_splits, D, out + th * D, lane,
                             32);
    }
}

void pgd__attn_combine(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const float *part,
                       const int4 *items, int n_items, int H, int n_splits, int D, void *out)
{
    dim3 grid(n_items, H);
    if (dt == PGD_DTYPE_BF16)
        attn_combine_kernel<__nv_bfloat16><<<grid, 32 * COMBINE_WARPS, 0, c->stream>>>(
            part, items, H, n_splits, D, (__nv_bfloat16 *)out);
    else
        attn_combine_kernel<__half><<<grid, 32 * COMBINE_WARPS, 0, c->stream>>>(
            part, items, H, n_splits, D, (__half *)out);
}

/* ---- planning ---------------------------------------------------------------------------------- */
static int rows_max(int D) { return std::min(RD_MAX / D, 64); }

/* Heads per block: the largest divisor of group that fits; tokens per item fill the rest. */
static void block_shape(int group, int D, int *hq, int *tq)
{
    int rmax = rows_max(D);
    int h = std::min(group, rmax);
    while (group % h)
        h--;
    *hq = h;
    *tq = std::max(1, rmax / h);
}

struct split_plan {
    int n_splits, split_len;
};

/* The splits (1 to 4) that take a call of `blocks` blocks, all about as long, through the SMs
 * in the fewest rounds of a split's length: ceil(blocks x n / SMs) / n, one block an SM
 * (the 128-row prefill blocks'). A split must gain a tenth over none: its partials and
 * their merge cost too. 144 blocks: 2 rounds unsplit, 1.25 in 4 splits. */
static int wave_splits(int blocks, int sm_count)
{
    int best = 1;
    double unsplit = (double)((blocks + sm_count - 1) / sm_count), best_t = unsplit;
    for (int n = 2; n <= 4; n++) {
        double t = (double)(((int64_t)blocks * n + sm_count - 1) / sm_count) / n;
        if (t < best_t && t <= 0.9 * unsplit) {
            best = n;
            best_t = t;
        }
    }
    return best;
}

/* PGD_CUDA_ATTN_WAVE_SPLITS=0 (read at every call, for benches): the rule before the
 * nineteenth session, every call of fewer than two waves of blocks split to fill the SMs
 * twice over. */
static bool wave_splits_off(void)
{
    const char *e = getenv("PGD_CUDA_ATTN_WAVE_SPLITS");
    return e && !strcmp(e, "0");
}

/* blocks: the general kernel's grid; max_len: its rows' longest context; min_keys: the
 * keys its shortest item sees (-1: not known). */
static split_plan plan_splits(const struct pgd_cuda_ctx *c, int blocks, int max_len,
                              int min_keys, int n_tokens, int H, int D)
{
    split_plan sp = { 1, max_len > 0 ? max_len : 1 };
    /* Fewer blocks than SMs (or lengths not known): fill the SMs twice over. Between one
     * and two waves of blocks, every SM is busy already; such a call is split only when its
     * items are about as long (a chunk after a long cached prefix: its last round would run
     * on a few SMs) and splits take it through in fewer rounds. A causal chunk from its
     * first token is not (its items taken longest first, the short ones fill the tail; and
     * its early items' splits past their last key find nothing): a 1,000-token chunk of 8B
     * heads, 256 blocks, split in two took 134.9 us on an H100, a 2,048-token one unsplit
     * 155.3. Two waves and more: never. PGD_CUDA_ATTN_WAVE_SPLITS=0: lengths taken as not
     * known (the rule before). */
    int want = 1;
    if (wave_splits_off())
        min_keys = -1;
    if (blocks < c->sm_count || (min_keys < 0 && blocks < 2 * c->sm_count))
        want = (2 * c->sm_count + blocks - 1) / std::max(blocks, 1);
    else if (blocks < 2 * c->sm_count && 2 * min_keys >= max_len)
        want = wave_splits(blocks, c->sm_count);
    int by_len = max_len / SPLIT_MIN;
    int n = std::min(want, by_len);
    /* Bound the partials to 64 MiB of scratch. */
    int64_t per_split = (int64_t)n_tokens * H * (D + 2) * 4;
    int64_t cap = per_split > 0 ? ((int64_t)64 << 20) / per_split : 1;
    n = (int)std::min<int64_t>(n, cap);
    if (n > 1) {
        int len = (max_len + n - 1) / n;
        len = (len + 31) / 32 * 32;
        sp.split_len = len;
        sp.n_splits = (max_len + len - 1) / len;
    }
    if (sp.n_splits <= 1) {
        sp.n_splits = 1;
        sp.split_len = INT_MAX / 2;
    }
    return sp;
}

static bool head_dim_ok(int D)
{
    return D == 16 || D == 32 || D == 64 || D == 80 || D == 96 || D == 128 || D == 256;
}

/* Whether rows that are their sequence's only query token go to a decode kernel
 * (attention_decode.cu) rather than with the general items. The tensor-core decode kernel
 * (attention_decode_mma.cu: BF16/F16, head_dim 64 / 128, up to 16 query heads a KV head)
 * takes them all: (row, KV head) pairs with all the group's heads, 1, 2 or 4 pairs a block
 * (attention_decode_plan.cu), 16-key tiles a warp in a cp.async pipeline of its own. Elsewhere the SIMT decode kernel (one lane a key)
 * against the general kernels: with the general items on the FMA kernel it always serves them
 * better; against the tensor-core kernel (`pagoda bench attention` on an H100, Llama-3-8B
 * heads; docs/PERFORMANCE.md) it wins only for one or two sequences up to 2048 keys, or 128
 * and more sequences of up to 256 keys. max_seq_len is the step's longest sequence (a
 * captured graph's context bucket). PGD_CUDA_DECODE_ATTN=0 / =1 / =simt, or a path forced in
 * a->path: never / always (the tensor-core decode kernel where it serves the shape) / always
 * on the SIMT one (where it serves). */
static bool use_decode_kernel(const struct pgd_cuda_attn *a, bool mma)
{
    if (a->path != PGD_CUDA_ATTN_AUTO)
        return false;
    int kind = pgd__attn_decode_kernel(a);
    if (kind == PGD__DEC_NONE)
        return false;
    if (kind == PGD__DEC_MMA || pgd__attn_decode_forced() || !mma)
        return true;
    int n_dec = a->n_seqs;
    if (!a->decode_items) {
        n_dec = 0;
        for (int s = 0; s < a->n_seqs; s++)
            n_dec += a->h_query_start[s + 1] - a->h_query_start[s] == 1;
    }
    return (n_dec <= 2 && a->max_seq_len <= 2048) || (n_dec >= 128 && a->max_seq_len <= 256);
}

/* PGD_CUDA_ATTN=fma: the FMA kernel for the general items of every call left to
 * PGD_CUDA_ATTN_AUTO (read once). */
static bool env_forces_fma(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("PGD_CUDA_ATTN");
        v = e && !strcmp(e, "fma");
    }
    return v;
}

/* Whether the general items run on the tensor cores (attention_mma.cu): a->path forced,
 * else the environment, else the shapes that kernel takes. */
static bool use_mma(const struct pgd_cuda_attn *a)
{
    if (a->path == PGD_CUDA_ATTN_MMA || a->path == PGD_CUDA_ATTN_PREFILL ||
        a->path == PGD_CUDA_ATTN_PREFILL_MMA || a->path == PGD_CUDA_ATTN_PREFILL_WGMMA)
        return true;
    if (a->path == PGD_CUDA_ATTN_FMA || env_forces_fma())
        return false;
    return pgd__attn_mma_supports(a->dtype, a->p.head_dim);
}

/* The general kernel's block shape: hq heads a block, tq tokens an item (the tensor-core
 * kernel's rows a block chosen per call). */
static void general_shape(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                          int group, int D, bool mma, int *hq, int *tq)
{
    if (mma)
        pgd__attn_mma_shape(group, pgd__attn_mma_rows(c, a), hq, tq);
    else
        block_shape(group, D, hq, tq);
}

/* The step's items: n_gen for the general kernel (up to tq tokens of a sequence), then
 * n_dec decode rows (sequences with one query token) when the decode kernel takes them. */
struct item_counts {
    int n_gen, n_dec;
};

static item_counts count_items(const struct pgd_cuda_attn *a, int tq, bool dec)
{
    item_counts n = { 0, 0 };
    if (a->decode_items) {
        (dec ? n.n_dec : n.n_gen) = a->n_seqs;
        return n;
    }
    for (int s = 0; s < a->n_seqs; s++) {
        int len = a->h_query_start[s + 1] - a->h_query_start[s];
        if (dec && len == 1)
            n.n_dec++;
        else
            n.n_gen += (len + tq - 1) / tq;
    }
    return n;
}

/* Builds (or reuses) the step's items in the context's pinned buffer and uploads them:
 * [general items][decode items], each {seq, first token, tokens, 0}. */
static int plan_items(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, int tq, bool dec,
                      char *err, size_t errlen)
{
    if (c->plan_valid && c->plan_step == a->step_id && c->plan_tq == tq && c->plan_dec_on == dec)
        return 0;
    item_counts cnt = count_items(a, tq, dec);
    int n = cnt.n_gen + cnt.n_dec;
    if (n > c->plan_cap) {
        PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(c->stream), "attention plan");
        cudaFree(c->plan_dev);
        for (int t = 0; t < 2; t++) {
            if (c->plan_host[t])
                cudaFreeHost(c->plan_host[t]);
            c->plan_host[t] = NULL;
        }
        c->plan_dev = NULL;
        c->plan_cap = 0;
        int cap = std::max(n, 1024);
        for (int t = 0; t < 2; t++)
            PGD_CUDA_CHECK(err, errlen,
                           cudaHostAlloc((void **)&c->plan_host[t], cap * sizeof(int4), 0),
                           "attention plan of %d items", cap);
        PGD_CUDA_CHECK(err, errlen, cudaMalloc((void **)&c->plan_dev, cap * sizeof(int4)),
                       "attention plan of %d items", cap);
        c->plan_cap = cap;
    } else if (c->plan_valid && c->plan_step == a->step_id) {
        /* A second shape in one step: the last upload must be done reading the buffer. */
        PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(c->stream), "attention plan");
    }
    /* This step's buffer: the step before's copy may still be queued from the other. */
    int4 *host = c->plan_host[a->step_id & 1];
    int gi = 0, di = cnt.n_gen;
    for (int s = 0; s < a->n_seqs; s++) {
        int q0 = a->h_query_start[s], len = a->h_query_start[s + 1] - q0;
        if (dec && len == 1)
            host[di++] = make_int4(s, q0, 1, 0);
        else
            for (int t = 0; t < len; t += tq)
                host[gi++] = make_int4(s, q0 + t, std::min(tq, len - t), 0);
    }
    if (n > 0)
        PGD_CUDA_CHECK(err, errlen,
                       cudaMemcpyAsync(c->plan_dev, host, n * sizeof(int4),
                                       cudaMemcpyHostToDevice, c->stream),
                       "attention plan upload of %d items", n);
    c->plan_items = cnt.n_gen;
    c->plan_dec = cnt.n_dec;
    c->plan_dec_on = dec;
    c->plan_tq = tq;
    c->plan_step = a->step_id;
    c->plan_valid = 1;
    return 0;
}

/* The call as each kernel sees it (*gen for the general items, *dc for the decode rows):
 * max_seq_len the longest context among its own rows where the host knows the lengths
 * (a->h_seq_lens), so that neither plans its splits and block shape for the other's keys:
 * a mixed step's 300-token chunk beside decode rows at 2,000 keys would otherwise be cut
 * into splits that find no keys (partials written, a merge launched, for nothing), and its
 * decode rows beside a long chunk planned for keys they do not have. */
static void kernel_calls(const struct pgd_cuda_attn *a, bool dec, struct pgd_cuda_attn *gen,
                         struct pgd_cuda_attn *dc)
{
    *gen = *a;
    *dc = *a;
    if (!a->h_seq_lens || a->decode_items || !a->h_query_start)
        return;
    int gen_len = 0, dec_len = 0;
    for (int s = 0; s < a->n_seqs; s++) {
        bool one = a->h_query_start[s + 1] - a->h_query_start[s] == 1;
        int &len = dec && one ? dec_len : gen_len;
        len = std::max(len, (int)a->h_seq_lens[s]);
    }
    gen->max_seq_len = gen_len;
    dc->max_seq_len = dec_len;
}

/* The keys the shortest general item of call a sees (its first tq tokens' last one's;
 * splits cut absolute positions, so a sliding window is not applied): -1 without the
 * host's lengths. */
static int shortest_item_keys(const struct pgd_cuda_attn *a, int tq, bool dec)
{
    if (!a->h_seq_lens || !a->h_query_start || a->decode_items)
        return -1;
    int least = INT_MAX;
    for (int s = 0; s < a->n_seqs; s++) {
        int q = a->h_query_start[s + 1] - a->h_query_start[s];
        if (q == 0 || (dec && q == 1))
            continue;
        int keys = (int)a->h_seq_lens[s] - q + std::min(q, tq);
        least = std::min(least, keys);
    }
    return least == INT_MAX ? -1 : least;
}

/* The splits of both kernels and where their partials go in the scratch. */
struct attn_plan {
    item_counts n;
    split_plan gen;                  /* the general kernel's */
    pgd__dec_plan dec;               /* the decode kernel's */
    size_t gen_bytes, dec_bytes;     /* scratch: [gen_bytes][dec_bytes] */
};

/* gen / dc: kernel_calls' views of the call. */
static attn_plan plan_attention(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *gen,
                                const struct pgd_cuda_attn *dc, int hq, int tq, bool dec)
{
    const struct pgd_attn_params *p = &gen->p;
    int D = p->head_dim, head_chunks = (p->n_heads / p->n_kv_heads) / hq;
    attn_plan ap;
    ap.n = count_items(gen, tq, dec);
    ap.gen = plan_splits(c, ap.n.n_gen * p->n_kv_heads * head_chunks, gen->max_seq_len,
                         shortest_item_keys(gen, tq, dec), gen->n_tokens, p->n_heads, D);
    ap.gen_bytes = ap.gen.n_splits > 1
                       ? ((size_t)gen->n_tokens * p->n_heads * ap.gen.n_splits * (D + 2) * 4 +
                          255) / 256 * 256
                       : 0;
    ap.dec = pgd__dec_plan{ PGD__DEC_NONE, 1, 4, 2 };
    if (ap.n.n_dec > 0)
        pgd__attn_decode_plan(c, dc, ap.n.n_dec, &ap.dec);
    ap.dec_bytes = pgd__attn_decode_scratch(ap.n.n_dec, p->n_heads, D, ap.dec.n_splits);
    return ap;
}

extern "C" size_t pgd_cuda_attention_scratch(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a)
{
    int D = a->p.head_dim, group = a->p.n_heads / std::max(a->p.n_kv_heads, 1), hq, tq;
    bool mma = use_mma(a);
    if (!(mma ? pgd__attn_mma_supports(a->dtype, D) : head_dim_ok(D)) || group <= 0)
        return 0;
    bool dec = use_decode_kernel(a, mma);
    struct pgd_cuda_attn gen, dc;
    kernel_calls(a, dec, &gen, &dc);
    general_shape(c, &gen, group, D, mma, &hq, &tq);
    attn_plan ap = plan_attention(c, &gen, &dc, hq, tq, dec);
    return ap.gen_bytes + ap.dec_bytes;
}

/* PGD_CUDA_ATTN_OVERLAP (read at every call, for benches and tests): how a call with both
 * general items and decode rows runs its two kernels. "1" (or unset, the default): the
 * decode rows on the context's side stream beside the general kernel, their kernel
 * submitted first; "gen": the same, the general kernel submitted first; "0": in turn on
 * the context's stream, the general kernel first. On one stream the decode kernel waits for
 * the general kernel's last blocks (a prompt chunk's tail wave), though the two read
 * different rows and write different outputs and scratch: side by side, `pagoda bench
 * attention --mixed` on an H100 (8B heads) took 2-11% less in every mix it ran, and the 8B
 * mixed steps 1-5% (docs/PERFORMANCE.md, eighteenth session). */
enum { OVERLAP_OFF = 0, OVERLAP_DEC_FIRST = 1, OVERLAP_GEN_FIRST = 2 };
static int overlap_mode(void)
{
    const char *e = getenv("PGD_CUDA_ATTN_OVERLAP");
    if (e && !strcmp(e, "0"))
        return OVERLAP_OFF;
    return e && !strcmp(e, "gen") ? OVERLAP_GEN_FIRST : OVERLAP_DEC_FIRST;
}

template <typename T, typename C, int D>
static int launch(struct pgd_cuda_ctx *c, const attn_kparams &kp, dim3 grid)
{
    attn_kernel<T, C, D><<<grid, ATT_THREADS, 0, c->stream>>>(kp);
    if (kp.n_splits > 1)
        attn_combine_kernel<T><<<dim3(grid.x, kp.H), 32 * COMBINE_WARPS, 0, c->stream>>>(
            kp.part, kp.items, kp.H, kp.n_splits, D, (T *)kp.out);
    return 0;
}

template <typename T, typename C>
static int launch_d(struct pgd_cuda_ctx *c, int D, const attn_kparams &kp, dim3 grid)
{
    switch (D) {
    case 16: return launch<T, C, 16>(c, kp, grid);
    case 32: return launch<T, C, 32>(c, kp, grid);
    case 64: return launch<T, C, 64>(c, kp, grid);
    case 80: return launch<T, C, 80>(c, kp, grid);
    case 96: return launch<T, C, 96>(c, kp, grid);
    case 128: return launch<T, C, 128>(c, kp, grid);
    case 256: return launch<T, C, 256>(c, kp, grid);
    }
    return 1;
}

/* The general items of call a (kernel_calls' view) on plan ap: the tensor-core kernels
 * (mma) or the FMA kernel, hq heads a block; split partials at the start of scratch. */
static int run_general(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                       const attn_plan &ap, bool mma, int hq, void *scratch, char *err,
                       size_t errlen)
{
    if (ap.n.n_gen == 0)
        return 0;
    if (mma)
        return pgd__attn_mma_run(c, a, items, ap.n.n_gen, ap.gen.n_splits, ap.gen.split_len,
                                 (float *)scratch, err, errlen);
    const struct pgd_attn_params *p = &a->p;
    const int D = p->head_dim, group = p->n_heads / p->n_kv_heads, head_chunks = group / hq;
    attn_kparams kp;
    kp.q = a->q;
    kp.out = a->out;
    kp.kc = a->k_cache;
    kp.vc = a->v_cache;
    kp.seq_lens = a->seq_lens;
    kp.block_tables = a->block_tables;
    kp.positions = a->positions;
    kp.items = items;
    kp.part = (float *)scratch;
    kp.block_size = a->block_size;
    kp.max_blocks = a->max_blocks;
    kp.H = p->n_heads;
    kp.KV = p->n_kv_heads;
    kp.group = group;
    kp.hq = hq;
    kp.head_chunks = head_chunks;
    kp.window = p->sliding_window;
    kp.n_splits = ap.gen.n_splits;
    kp.split_len = ap.gen.split_len;
    kp.scale_log2 = p->scale * 1.4426950408889634f;
    kp.v_scale = 1.0f;
    if (a->kv_fp8) {
        kp.scale_log2 *= a->kv_fp8->k_scale;
        kp.v_scale = a->kv_fp8->v_scale;
    }
    dim3 grid(ap.n.n_gen, p->n_kv_heads * head_chunks, ap.gen.n_splits);
    if (a->dtype == PGD_DTYPE_BF16 && a->kv_fp8)
        launch_d<__nv_bfloat16, kv_e4m3>(c, D, kp, grid);
    else if (a->dtype == PGD_DTYPE_BF16)
        launch_d<__nv_bfloat16, __nv_bfloat16>(c, D, kp, grid);
    else if (a->kv_fp8)
        launch_d<__half, kv_e4m3>(c, D, kp, grid);
    else
        launch_d<__half, __half>(c, D, kp, grid);
    PGD_CUDA_LAUNCHED(err, errlen, "attention %s%s [%d tokens, %d seqs, %d heads / %d kv "
                      "of %d, max len %d, %d items x %d splits]", pgd_cuda_dt(a->dtype),
                      a->kv_fp8 ? " (e4m3 cache)" : "", a->n_tokens, a->n_seqs,
                      p->n_heads, p->n_kv_heads, D, a->max_seq_len, ap.n.n_gen,
                      ap.gen.n_splits);
    return 0;
}

/* Both kernels of a mixed call at once: the decode rows on c->side, forked from c->stream
 * after the items' upload and joined back before anything after the call (so a captured
 * graph gets a fork and a join, and the next op on c->stream waits for both). The decode
 * kernel's launches read c->stream, so it is pointed at the side stream for them. The two
 * write disjoint output rows and disjoint scratch. dec_first: which is submitted first (its
 * blocks reach the SMs first). */
static int run_overlapped(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *gen,
                          const struct pgd_cuda_attn *dc, const int4 *items, const attn_plan &ap,
                          bool mma, int hq, bool dec_first, void *gen_scratch,
                          float *dec_scratch, char *err, size_t errlen)
{
    cudaStream_t main_stream = c->stream;
    PGD_CUDA_CHECK(err, errlen, cudaEventRecord(c->side_fork, main_stream), "attention fork");
    PGD_CUDA_CHECK(err, errlen, cudaStreamWaitEvent(c->side, c->side_fork, 0), "attention fork");
    int rc = 0;
    for (int turn = 0; turn < 2 && !rc; turn++) {
        if ((turn == 0) == dec_first) {
            c->stream = c->side;
            rc = pgd__attn_decode(c, dc, items + ap.n.n_gen, ap.n.n_dec, &ap.dec, dec_scratch,
                                  err, errlen);
            c->stream = main_stream;
        } else {
            rc = run_general(c, gen, items, ap, mma, hq, gen_scratch, err, errlen);
        }
    }
    /* Joined even after a failed launch: a capture in progress must not end forked. */
    cudaError_t e = cudaEventRecord(c->side_join, c->side);
    if (e == cudaSuccess)
        e = cudaStreamWaitEvent(main_stream, c->side_join, 0);
    if (rc)
        return rc;
    PGD_CUDA_CHECK(err, errlen, e, "attention join");
    return 0;
}

extern "C" int pgd_cuda_attention(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                                  void *scratch, char *err, size_t errlen)
{
    const struct pgd_attn_params *p = &a->p;
    int D = p->head_dim;
    if (a->n_tokens == 0)
        return 0;
    bool mma = use_mma(a);
    if (mma && (!pgd__attn_mma_supports(a->dtype, D) || p->n_kv_heads <= 0 ||
                p->n_heads % p->n_kv_heads))
        return pgd_cuda_failf(err, errlen, "attention (tensor cores): dtype %s, head_dim %d "
                              "with %d heads over %d kv heads has no kernel (BF16 or F16, "
                              "head_dim 64 or 128)", pgd_dtype_name(a->dtype), D, p->n_heads,
                              p->n_kv_heads);
    if (!head_dim_ok(D) || p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads)
        return pgd_cuda_failf(err, errlen, "attention: head_dim %d (16, 32, 64, 80, 96, 128 or "
                              "256) with %d heads over %d kv heads has no CUDA kernel", D,
                              p->n_heads, p->n_kv_heads);
    if (a->dtype != PGD_DTYPE_BF16 && a->dtype != PGD_DTYPE_F16)
        return pgd_cuda_failf(err, errlen, "attention: dtype %s has no CUDA kernel (BF16, F16)",
                              pgd_dtype_name(a->dtype));
    int group = p->n_heads / p->n_kv_heads, hq, tq;
    bool dec = use_decode_kernel(a, mma);
    struct pgd_cuda_attn gen, dc;
    kernel_calls(a, dec, &gen, &dc);
    general_shape(c, &gen, group, D, mma, &hq, &tq);
    const int4 *items;
    if (a->decode_items) {
        if (a->n_tokens != a->n_seqs)
            return pgd_cuda_failf(err, errlen, "attention: decode items need one token a "
                                  "sequence (%d tokens, %d seqs)", a->n_tokens, a->n_seqs);
        items = (const int4 *)a->decode_items;
    } else {
        if (plan_items(c, a, tq, dec, err, errlen))
            return 1;
        items = c->plan_dev;
    }
    attn_plan ap = plan_attention(c, &gen, &dc, hq, tq, dec);
    if ((ap.gen_bytes + ap.dec_bytes) > 0 && !scratch)
        return pgd_cuda_failf(err, errlen, "attention: %d + %d context splits need scratch",
                              ap.gen.n_splits, ap.dec.n_splits);
    float *dec_scratch = scratch ? (float *)((char *)scratch + ap.gen_bytes) : NULL;
    const int overlap = ap.n.n_gen > 0 && ap.n.n_dec > 0 ? overlap_mode() : OVERLAP_OFF;
    if (overlap != OVERLAP_OFF)
        return run_overlapped(c, &gen, &dc, items, ap, mma, hq, overlap == OVERLAP_DEC_FIRST,
                              scratch, dec_scratch, err, errlen);
    if (run_general(c, &gen, items, ap, mma, hq, scratch, err, errlen))
        return 1;
    if (ap.n.n_dec > 0)
        return pgd__attn_decode(c, &dc, items + ap.n.n_gen, ap.n.n_dec, &ap.dec, dec_scratch,
                                err, errlen);
    return 0;
}
