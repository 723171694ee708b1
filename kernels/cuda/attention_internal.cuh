/* Between attention.cu (the planner, the FMA kernel and the per-item merge of context
 * splits), attention_mma.cu (the tensor-core kernel for the general items),
 * attention_wgmma.cu (the Hopper prefill kernel for the same items in 128-row blocks) and
 * attention_decode.cu (which shares the merge of a row's splits). Internal to kernels/cuda.
 *
 * Items are int4 {seq, first token, tokens, 0} (device): up to tq consecutive query tokens
 * of one sequence. Context splits write partials to float32 scratch laid out
 * [n_tokens, n_heads, n_splits, head_dim + 2] (the unnormalized accumulators, then the row
 * max in base 2 and the sum of weights), merged per item by pgd__attn_combine. */
#ifndef PGD_KERNELS_CUDA_ATTENTION_INTERNAL_CUH
#define PGD_KERNELS_CUDA_ATTENTION_INTERNAL_CUH

#include "kernels/cuda/common.cuh"

/* out_row[0, D) = the merge of the n_splits partials at pp, each [D + 2]: the unnormalized
 * accumulators, the row max in base 2 and the sum of weights (0 for a split that saw no
 * key), weighted by 2^(max_s - max). Threads first, first + stride, ... share d (a block's
 * threads, or a warp's lanes). Used by both combine kernels (attention.cu for the general
 * items, a warp a token; attention_decode.cu for decode rows, a block a row). */
template <typename T>
__device__ __forceinline__ void attn_merge_splits(const float *pp, int n_splits, int D,
                                                  T *out_row, int first, int stride)
{
    float M = -INFINITY, den = 0.0f;
    for (int s = 0; s < n_splits; s++)
        if (pp[s * (D + 2) + D + 1] > 0.0f)
            M = fmaxf(M, pp[s * (D + 2) + D]);
    for (int s = 0; s < n_splits; s++) {
        float l = pp[s * (D + 2) + D + 1];
        if (l > 0.0f)
            den += exp2f(pp[s * (D + 2) + D] - M) * l;
    }
    for (int d = first; d < D; d += stride) {
        float num = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            float l = pp[s * (D + 2) + D + 1];
            if (l > 0.0f)
                num += exp2f(pp[s * (D + 2) + D] - M) * pp[s * (D + 2) + d];
        }
        out_row[d] = from_f<T>(den > 0.0f ? num / den : 0.0f);
    }
}

/* 2^x by the SFU alone (ex2.approx.ftz: relative error ~2^-22, results below 2^-126 are 0,
 * 2^-inf is 0): exp2f adds the range fix-ups of denormal results, which a softmax weight
 * rounded to 16 bits next to a largest weight of 1 never needs. */
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Two floats rounded to T, lo in the low half. */
template <typename T> static __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* out[t, h, :] (dt) = the merge of part[t, h, 0 .. n_splits) for the tokens of items
 * [n_items] and every head h < H. */
void pgd__attn_combine(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const float *part,
                       const int4 *items, int n_items, int H, int n_splits, int D, void *out);

/* The launch parameters of the two tensor-core kernels for the general items (attention_mma.cu,
 * attention_wgmma.cu): a block takes item blockIdx.x (in reverse), KV head blockIdx.y /
 * head_chunks with hq of its query heads, context split blockIdx.z. */
struct attn_tc_kparams {
    const void *q;                   /* [n_tokens, H, D] */
    void *out;                       /* [n_tokens, H, D] */
    const void *kc, *vc;             /* [slots, KV, D] */
    const int32_t *block_tables, *positions;
    const int4 *items;               /* {seq, first token, tokens, 0} */
    float *part;                     /* [n_tokens, H, n_splits, D + 2] when n_splits > 1 */
    int block_size, bs_shift;        /* bs_shift: log2(block_size), or -1 */
    int max_blocks, H, KV, group, hq, head_chunks, window;
    int n_splits, split_len;
    float scale_log2;                /* scale * log2(e) (* k_scale) */
    float v_scale;                   /* FP8 cache: the output's factor */
};

/* attention_mma.cu. The parameters of call a's items [device] in blocks of hq heads (a
 * divisor of the group), split along the context into n_splits ranges of split_len keys
 * (partials in part). */
attn_tc_kparams pgd__attn_tc_params(const struct pgd_cuda_attn *a, const int4 *items, int hq,
                                    int n_splits, int split_len, float *part);
/* Whether the tensor-core kernel takes this dtype and head dim (BF16 or
 * F16; 64 or 128). */
bool pgd__attn_mma_supports(enum pgd_dtype dt, int D);
/* Query rows a block for call a: 128 (the prefill shape: 8 warps here, or attention_wgmma.cu's
 * two warpgroups) when a->path is PGD_CUDA_ATTN_PREFILL, _PREFILL_MMA or _PREFILL_WGMMA, or by default (PGD_CUDA_ATTN_AUTO, planned from h_query_start)
 * when the sequences of more than one query token fill every SM with 128-row blocks (unless
 * the environment has PGD_CUDA_PREFILL_ATTN=0); else 4 warps: 64 rows when forced
 * (PGD_CUDA_ATTN_MMA), with fixed decode items or from 512 keys on (where attention.cu
 * splits the context instead), else by default 128 when the call has prompt rows and the
 * wgmma kernel runs it (attention_wgmma.cu: its blocks win even when few), else the largest
 * of 64, 32, 16 whose blocks fill the SMs (16 when none does). */
int pgd__attn_mma_rows(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a);
/* Its block shape for a group of query heads a KV head and `rows` (16 .. 128) query rows a
 * block: hq heads a block (a divisor of group), tq tokens an item (hq * tq <= rows). */
void pgd__attn_mma_shape(int group, int rows, int *hq, int *tq);
/* The items [n_items] (device, tq tokens at most, as pgd__attn_mma_shape gives for
 * pgd__attn_mma_rows(c, a)) of call a through the tensor-core kernel, split along the
 * context into n_splits ranges of split_len keys (partials in part, then
 * pgd__attn_combine) when n_splits > 1. */
int pgd__attn_mma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, const int4 *items,
                      int n_items, int n_splits, int split_len, float *part, char *err,
                      size_t errlen);

/* attention_wgmma.cu: the 128-row blocks on Hopper's warpgroup MMA (sm_90a). Whether it runs
 * call a: BF16/F16, head_dim 64 or 128 (a 16-bit or an e4m3 cache), a compute capability 9.0
 * device and the sm_90a code in the build. */
bool pgd__attn_wgmma_ok(const struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a);
/* attention_mma.cu: whether the environment asks for the wgmma kernel's serial variant
 * (PGD_CUDA_PREFILL_ATTN=wgmma-serial: S, softmax, P V one after the other in each
 * warpgroup) rather than the pipelined one (the previous tile's P V behind each S = Q K^T). */
bool pgd__attn_wgmma_serial(void);
/* The items [n_items] (device, in pgd__attn_mma_shape(group, 128) blocks) of call a through
 * it, split along the context as pgd__attn_mma_run does (partials in part, then
 * pgd__attn_combine). pgd__attn_wgmma_ok(c, a) must hold. */
int pgd__attn_wgmma_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a,
                        const int4 *items, int n_items, int n_splits, int split_len,
                        float *part, char *err, size_t errlen);

#endif
