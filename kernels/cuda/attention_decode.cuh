/* Internal to kernels/cuda: the decode-row attention kernels (attention_decode.cu,
 * attention_decode_mma.cu), which pgd_cuda_attention (attention.cu) runs for the rows that
 * are the only query token of their sequence in the step. What both kernels share lives
 * here: their parameters (filled once from the call), the (dtype, cache element) dispatch,
 * the plan of a call (kernel, block shape, context splits) and the shared-memory and
 * occupancy set-up of a kernel with dynamic shared memory. */
#ifndef PGD_KERNELS_CUDA_ATTENTION_DECODE_CUH
#define PGD_KERNELS_CUDA_ATTENTION_DECODE_CUH

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kv_fp8.cuh"
#include <atomic>

/* The decode kernels: the tensor-core one (attention_decode_mma.cu: BF16/F16, head_dim 64 or
 * 128, up to 16 query heads a KV head) and the SIMT one (attention_decode.cu: one lane a key;
 * head_dim 64, 128 or 256, up to 8 query heads a KV head). */
enum { PGD__DEC_NONE = 0, PGD__DEC_SIMT = 1, PGD__DEC_MMA = 2 };

/* A call's decode plan (pgd__attn_decode_plan): the kernel, the splits each row's context
 * is cut into (1: unsplit; pgd__dec_split_keys says which keys a split takes), and for the
 * tensor-core kernel the warps each (row, KV head) pair gets: 4 (a block a pair), 2 (two
 * pairs a block) or 1 (four pairs a block, a warp each). */
struct pgd__dec_plan {
    int kind;
    int n_splits;
    int pair_warps;
    int stages;                      /* tensor-core kernel: K/V tiles a warp holds (2, 3) */
};

/* The keys [*lo, *hi] that split `split` of n_splits takes of a row whose keys are [first,
 * pos]: the row's tiles of `unit` keys (counted from first's) in n_splits runs of one length,
 * the last shorter or empty (lo > hi). Cut by each row's own length rather than by the plan's
 * longest context: a captured decode graph is planned at its context bucket's top (256, 512,
 * ... keys) while its rows hold a half to the whole of it, and ranges cut at the bucket
 * would leave up to half of the splits, and of the blocks, without keys. */
__device__ __forceinline__ void pgd__dec_split_keys(int first, int pos, int split, int n_splits,
                                                    int unit, int *lo, int *hi)
{
    const int t0 = first / unit, tiles = pos / unit - t0 + 1;
    const int per = (tiles + n_splits - 1) / n_splits, a = t0 + split * per;
    *lo = max(first, a * unit);
    *hi = min(pos, (a + per) * unit - 1);
}

/* The kernels' parameters. Items are {seq, token, 1, 0}; a (row, KV head) pair is
 * item * KV + kv head. Partials (n_splits > 1) go to part [n_items, H, n_splits, D + 2]: the
 * unnormalized accumulators, then the row max in base 2 and the sum of weights. */
struct pgd__dec_params {
    const void *q;                   /* [n_tokens, H, D] */
    void *out;                       /* [n_tokens, H, D] */
    const void *kc, *vc;             /* [slots, KV, D] */
    const int32_t *block_tables, *positions;
    const int4 *items;               /* [n_items] */
    float *part;                     /* when n_splits > 1 */
    int n_items;
    int block_size, bs_shift;        /* bs_shift: log2(block_size), or -1 */
    int max_blocks, H, KV, group, window, n_splits;
    int pair_warps, pair_shift;      /* tensor-core kernel: warps a pair (1, 2, 4), its log2 */
    int stages;                      /* tensor-core kernel: K/V tiles a warp holds (2, 3) */
    float scale_log2;                /* scale * log2(e) (* k_scale): softmax in base 2 */
    float v_scale;                   /* e4m3 cache: the output's factor */
    /* Tensor-core kernel: its item, block-table and position loads made before the wait on
     * the kernel before it (pgd_cuda_early_inputs), the Q and K/V loads after */
    int early;
    /* NULL, or a second output out_g [n_tokens, H * D] where element (t, c) of out goes to
     * (t, out_pos[c]): out gathered through the act-order permutation of the layer after
     * (pgd_cuda_attn's out_perm / out_pos; the tensor-core kernel and the parallel merge) */
    void *out_g;
    const int32_t *out_pos;
};

/* Element (t, c) of an output of rows of hd elements, v, also at its gathered place gc =
 * out_pos[c] in out_g, where one is asked for (out_g NULL: nothing); gc already loaded (a
 * kernel that loads it before its PDL wait, since the places never change). */
template <typename T>
__device__ __forceinline__ void pgd__dec_store_at(void *out_g, int64_t t, int hd, int gc, T v)
{
    if (out_g)
        ((T *)out_g)[t * hd + gc] = v;
}

/* The same, the place loaded here. */
template <typename T>
__device__ __forceinline__ void pgd__dec_store_gathered(void *out_g, const int32_t *out_pos,
                                                        int64_t t, int hd, int c, T v)
{
    if (out_g)
        pgd__dec_store_at<T>(out_g, t, hd, __ldg(&out_pos[c]), v);
}

/* The parameters of call a for items [n_items] on plan pl, partials in part. */
static inline pgd__dec_params pgd__dec_params_of(const struct pgd_cuda_attn *a, const int4 *items,
                                                 int n_items, const pgd__dec_plan &pl,
                                                 float *part)
{
    const struct pgd_attn_params *ap = &a->p;
    pgd__dec_params p;
    p.q = a->q;
    p.out = a->out;
    p.kc = a->k_cache;
    p.vc = a->v_cache;
    p.block_tables = a->block_tables;
    p.positions = a->positions;
    p.items = items;
    p.part = part;
    p.n_items = n_items;
    p.block_size = a->block_size;
    p.bs_shift = -1;
    for (int sh = 0; sh < 30; sh++)
        if (a->block_size == 1 << sh)
            p.bs_shift = sh;
    p.max_blocks = a->max_blocks;
    p.H = ap->n_heads;
    p.KV = ap->n_kv_heads;
    p.group = ap->n_heads / ap->n_kv_heads;
    p.window = ap->sliding_window;
    p.n_splits = pl.n_splits;
    p.pair_warps = pl.pair_warps;
    p.pair_shift = pl.pair_warps >= 4 ? 2 : pl.pair_warps >= 2 ? 1 : 0;
    p.stages = pl.stages;
    p.scale_log2 = ap->scale * 1.4426950408889634f;
    p.v_scale = 1.0f;
    if (a->kv_fp8) {
        p.scale_log2 *= a->kv_fp8->k_scale;
        p.v_scale = a->kv_fp8->v_scale;
    }
    p.early = pgd_cuda_early_inputs();
    p.out_g = NULL;
    p.out_pos = NULL;
    return p;
}

/* A type as a value, for pgd__dec_types' callback. */
template <typename X> struct pgd__type_tag {
    typedef X type;
};

/* f(pgd__type_tag<T>(), pgd__type_tag<C>()) for call a's compute dtype T (__nv_bfloat16 or
 * __half) and cache element C (T, or kv_e4m3 with an e4m3 cache); f's result. */
template <typename F> static inline auto pgd__dec_types(const struct pgd_cuda_attn *a, F &&f)
{
    typedef pgd__type_tag<__nv_bfloat16> B;
    typedef pgd__type_tag<__half> H;
    typedef pgd__type_tag<kv_e4m3> E;
    if (a->dtype == PGD_DTYPE_BF16)
        return a->kv_fp8 ? f(B(), E()) : f(B(), B());
    return a->kv_fp8 ? f(H(), E()) : f(H(), H());
}

/* The once-per-device set-up of one kernel with `smem` bytes of dynamic shared memory
 * (above 48 KiB a function must be granted it per device) and its blocks an SM at
 * `threads` threads: a static of the kernel's template instance holds it. */
struct pgd__kernel_setup {
    std::atomic<unsigned> smem_done; /* a bit a device (0 .. 31) */
    std::atomic<int> occupancy;      /* 0: not asked yet */
};

template <typename... A>
static inline cudaError_t pgd__kernel_allow_smem(pgd__kernel_setup &s, void (*k)(A...),
                                                 int smem, int device)
{
    const unsigned bit = device >= 0 && device < 32 ? 1u << device : 0;
    if (bit && (s.smem_done.load() & bit))
        return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e == cudaSuccess && bit)
        s.smem_done.fetch_or(bit);
    return e;
}

/* Blocks of k an SM holds (at least 1; 1 when the runtime cannot say). */
template <typename... A>
static inline int pgd__kernel_occupancy(pgd__kernel_setup &s, void (*k)(A...), int threads,
                                        int smem, int device)
{
    int n = s.occupancy.load();
    if (n > 0)
        return n;
    n = 1;
    if (pgd__kernel_allow_smem(s, k, smem, device) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k, threads, smem) != cudaSuccess ||
        n < 1) {
        (void)cudaGetLastError();
        return 1;
    }
    s.occupancy.store(n);
    return n;
}

/* Whether the SIMT decode kernel serves this head_dim and grouped-query ratio. */
bool pgd__attn_decode_ok(int head_dim, int group);
/* Whether the tensor-core decode kernel serves this dtype, head_dim and ratio. */
bool pgd__attn_decode_mma_ok(enum pgd_dtype dt, int head_dim, int group);

/* The decode kernel for the decode rows of call a: the tensor-core one where it serves the
 * shape, else the SIMT one where that does, else PGD__DEC_NONE. The environment's
 * PGD_CUDA_DECODE_ATTN=simt picks the SIMT one (where it serves), =0 none. */
int pgd__attn_decode_kernel(const struct pgd_cuda_attn *a);
/* Whether the environment sends every decode row to a decode kernel (PGD_CUDA_DECODE_ATTN=1
 * or =simt). */
bool pgd__attn_decode_forced(void);

/* The plan of the decode kernel for n_items decode rows of call a (over at most
 * a->max_seq_len keys: a graph's context bucket): attention_decode.cu says how it is chosen.
 * It depends only on the shapes (n_items, heads, max_seq_len, dtypes), the device and the
 * environment, so a graph replays the plan it was captured with. */
void pgd__attn_decode_plan(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                           int n_items, pgd__dec_plan *pl);

/* Bytes of float32 scratch the decode kernel needs for n_items rows with n_splits. */
size_t pgd__attn_decode_scratch(int n_items, int n_heads, int head_dim, int n_splits);

/* out rows of the items {seq, token, 1, 0} [n_items] (device): the token's query heads
 * attend over its sequence's keys [max(0, pos - window + 1), pos] through the block table,
 * on plan pl (pgd__attn_decode_plan's for these rows). With pl->n_splits > 1 the partials
 * go to scratch and a second kernel merges them. */
int pgd__attn_decode(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                     int n_items, const pgd__dec_plan *pl, float *scratch, char *err,
                     size_t errlen);

/* attention_decode_mma.cu: the tensor-core kernel alone on p (partials into p.part when
 * p.n_splits > 1, left for the caller to merge). */
int pgd__attn_decode_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                             const pgd__dec_params &p, char *err, size_t errlen);
/* Blocks of the tensor-core kernel an SM holds at once for call a's shape with `stages` K/V
 * tiles a warp (at least 1). */
int pgd__attn_decode_mma_occupancy(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                                   int stages);

#endif
