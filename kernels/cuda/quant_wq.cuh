/* The W4A16 / W8A16 layer as quant_wq.cu and quant_wq_mma.cu share it. Internal. */
#ifndef PGD_KERNELS_CUDA_QUANT_WQ_CUH
#define PGD_KERNELS_CUDA_QUANT_WQ_CUH

#include "kernels/cuda/quant.cuh"

/* Two layouts of the packed weights (picked at create):
 *   plain  w [out][in / pack] uint32: the canonical qweight transposed, each output
 *          feature's words one contiguous row (GPTQ's packing within a word);
 *   mma    (4 bits, in a multiple of 64, integer zeros 0..16) w [out_pad / 16][in / 64][32]
 *          uint4: for each 16-row x 64-input block, lane l's 16 bytes hold its mma.sync
 *          A-fragment nibbles of the block's four 16 x 16 tiles (word s: tile s; see
 *          quant_wq_mma.cu), so a warp reads 512 contiguous bytes a block.
 * meta [out_pad][groups] half2 {scale, zero} (rows past out: zero). */
struct pgd_cuda_wq {
    int bits, group_size, groups;
    int in, out, out_pad;
    int mma;                         /* the layout: 1 mma, 0 plain */
    uint32_t *w;
    __half2 *meta;
    int32_t *perm;                   /* device [in] or NULL */
};

/* ---- the tensor-core fragments' arithmetic (quant_wq_mma.cu, quant_wq_gemv.cu) ---------- */
/* A 4-bit weight q AND-ed into the mantissa of a 16-bit pair holding BIAS is BIAS + q
 * exactly: 128 (bf16: q < 128 needs at most 7 mantissa bits) or 1024 (fp16). */
template <typename T> struct mma_magic;
template <> struct mma_magic<__nv_bfloat16> {
    static constexpr uint32_t BITS = 0x43004300u;   /* 128, 128 */
    static constexpr float BIAS = 128.0f;
};
template <> struct mma_magic<__half> {
    static constexpr uint32_t BITS = 0x64006400u;   /* 1024, 1024 */
    static constexpr float BIAS = 1024.0f;
};

/* (w & 0x000F000F) | BITS: nibbles 0 and 4 of w as BIAS + q in a 16-bit pair, one LOP3 (the
 * compiler, given two constants, emits an AND and an OR: LOP3 takes one immediate). */
template <typename T>
__device__ __forceinline__ uint32_t nibble_pair(uint32_t w)
{
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(w), "n"(0x000F000F),
        "r"(mma_magic<T>::BITS));
    return r;
}

template <typename T>
__device__ __forceinline__ uint32_t pair_of(float v)
{
    const T h = from_f<T>(v);
    const uint16_t u = *reinterpret_cast<const uint16_t *>(&h);
    return (uint32_t)u | ((uint32_t)u << 16);
}

template <typename T> __device__ __forceinline__ uint32_t sub_pair(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t sub_pair<__nv_bfloat16>(uint32_t a, uint32_t b)
{
    __nv_bfloat162 r = __hsub2(*reinterpret_cast<const __nv_bfloat162 *>(&a),
                               *reinterpret_cast<const __nv_bfloat162 *>(&b));
    return *reinterpret_cast<const uint32_t *>(&r);
}
template <> __device__ __forceinline__ uint32_t sub_pair<__half>(uint32_t a, uint32_t b)
{
    __half2 r = __hsub2(*reinterpret_cast<const __half2 *>(&a),
                        *reinterpret_cast<const __half2 *>(&b));
    return *reinterpret_cast<const uint32_t *>(&r);
}

template <typename T> __device__ __forceinline__ void mma16816(float *d, const uint32_t *a,
                                                               const uint32_t *b);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float *d, const uint32_t *a,
                                                                    const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma16816<__half>(float *d, const uint32_t *a,
                                                             const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* quant_wq_mma.cu */
/* Whether the mma layout takes h (and the environment's PGD_CUDA_WQ_MMA is not 0). */
bool pgd_cuda__wq_mma_fits(const struct pgd_wq_host *h);
/* dst (device, out_pad / 16 * in / 64 * 32 uint4) = the mma layout of the canonical
 * qweight q (device [in / 8][out]), rows past out zero; synchronous (default stream). */
int pgd_cuda__wq_mma_pack(const uint32_t *q, int in, int out, int out_pad, uint32_t *dst,
                          char *err, size_t errlen);
/* y [n, out] = x [n, in] through the tensor-core GEMV, 16 rows a launch: perm NULL: x in
 * canonical order, 4-byte aligned; else x in the checkpoint's order (2-byte aligned),
 * gathered through perm [in] (device) inside the kernel. */
int pgd_cuda__wq_mma_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                          void *y, char *err, size_t errlen);
/* dst [rows, in] (dt) = the dequantized rows [o0, o0 + rows) (o0 a multiple of 16). */
int pgd_cuda__wq_mma_dequant(struct pgd_cuda_ctx *c, enum pgd_dtype dt,
                             const struct pgd_cuda_wq *w, int o0, int rows, void *dst, char *err,
                             size_t errlen);

/* quant_wq_gemv.cu: the decode GEMV over the mma layout */
/* Whether it takes w (the mma layout, and its scale table fits shared memory). */
bool pgd_cuda__wq_gemv4_fits(const struct pgd_cuda_wq *w);
/* y [n, out] = x [n, in] @ W^T (+ b), 16 rows a launch: perm NULL: x in canonical order;
 * else x in the checkpoint's order, gathered through perm [in] (device). x 2-byte aligned;
 * the context's scratch holds x when it must be staged. */
int pgd_cuda__wq_gemv4(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                       const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                       void *y, char *err, size_t errlen);

#endif
