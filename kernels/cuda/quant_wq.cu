/* Weight-only integer linears (W4A16 / W8A16: GPTQ, AWQ) on the GPU, from the canonical
 * layout of include/pagoda/quant.h.
 *
 * Repacked at create into what the kernels read (quant_wq.cuh): the packed weights in the
 * mma layout (4 bits, integer zeros: up to 8 rows the first streaming decode GEMV,
 * quant_wq_sgemv.cu; from 9 rows, or where that one cannot run, the streaming tensor-core
 * one of quant_wq_sgemv2.cu (PGD_CUDA_WQ_GEMV=s1 keeps the first at every n); PGD_CUDA_WQ_GEMV=old, or a scale table too large for it:
 * quant_wq_gemv.cu's, or quant_wq_mma.cu's when a tile's scale table is too large for that
 * too) or the plain one (the
 * canonical qweight transposed: each output feature's words one contiguous row); meta half2
 * {scale, zero} per feature and group (GPTQ and AWQ store fp16 scales, and fp16 holds their
 * integer zeros exactly; a value outside fp16's range is refused at create); perm
 * (act-order) applied to x as the tensor-core GEMVs stage or load it, or elsewhere by a
 * gather into the context's scratch, after which act-order runs exactly the plain kernels;
 * layers made with one pgd_cuda_wq_perms set hold one device copy of equal permutations (so
 * act-order q, k and v still take one launch at decode).
 * Small n (decode), plain layout: quant.cuh's GEMV, a warp per output feature reading its
 * packed row once in 16-byte chunks (32 inputs at 4 bits, 16 at 8), dequantizing in
 * registers and summing in float32. A chunk lies inside one group, so its scale multiplies
 * the chunk's sum once. Integers become floats without a conversion instruction: OR-ing a
 * field into the mantissa of 2^23 gives 2^23 + q * 2^shift exactly; subtracting 2^23 and one
 * FMA by 2^-shift gives q - zero rounded once.
 * Larger n: the fused tensor-core GEMM of quant_wq_gemm.cu (the exact q - zero, dequantized
 * in registers). In the mma layout on Hopper, from 17 to 256 rows (batched decode; wq_auto_fold)
 * the folded GEMM of quant_wq_fold.cu instead (the 16-bit weights (q - zero) * scale made in
 * registers, the tensor cores kept busy across groups); past that (prompt chunks, the
 * largest decode batches), and from PGD_CUDA_WQ_DEQ_MIN_N rows (256) where the fold does not
 * run, and for any layer with PGD_CUDA_QPATH_GEMM_LT: the rows dequantized a slice at a time
 * (the whole layer where the scratch may grow to hold it) into 16-bit rows in the scratch
 * and multiplied by cuBLASLt into the slice's columns of y (quant_lt.cu). The exact fused
 * GEMM keeps 200-300 TFLOP/s, the folded one 250-490, where cuBLASLt's bf16 GEMM reaches
 * 360-800 (H100, 8B layers at 256-2048 rows); the dequantizing pass (the 4-bit layer read, its
 * 16-bit rows written, at the copy rate) costs about what reading the 16-bit layer costs the
 * bf16 GEMM. So the 16-bit GEMM plus that pass wins past 256 rows (the fold's 256-token tiles
 * run a second, mostly empty, wave of tiles there), the fold below (the four 8B layers at 32
 * rows 152 us against the exact GEMM's 203, at 64 146 against 208, at 128 253 against 328, at
 * 256 333 against the dequantizing path's 424; H100). */
#include "kernels/cuda/quant_wq.cuh"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WQ_GEMV_MAX_N_DEFAULT 16     /* the GEMV up to here, a GEMM beyond */
#define WQ_DEQ_MIN_N_DEFAULT 256     /* from here the mma layout dequantized, then cuBLASLt */
#define WQ_FOLD_MIN_N_DEFAULT 17     /* from here to WQ_FOLD_MAX_N the folded GEMM where it runs */
#define WQ_FOLD_MAX_N_DEFAULT 256    /* (past it the dequantizing path: H100, 8B layers) */
#define WQ_FOLD_LAYERS_DEFAULT 1     /* q, k, v as one grid of the fold (PGD_CUDA_WQ_FOLD_LAYERS) */

/* ---- dequantization of one word -------------------------------------------------------- */
#define MAGIC_BITS 0x4B000000u       /* 2^23 as float bits */
#define MAGIC 8388608.0f

/* f[i] = q_i - z for the 8 nibbles of w, q_i at bits 4i. Fields at bits < 20 are OR-ed into
 * the mantissa in place (2^23 + q * 16^i, exact below 2^24); the top three after a shift. */
__device__ __forceinline__ void dq4(uint32_t w, float z, float *f)
{
    f[0] = (__uint_as_float((w & 0xFu) | MAGIC_BITS) - MAGIC) - z;
    f[1] = fmaf(__uint_as_float((w & 0xF0u) | MAGIC_BITS) - MAGIC, 0x1p-4f, -z);
    f[2] = fmaf(__uint_as_float((w & 0xF00u) | MAGIC_BITS) - MAGIC, 0x1p-8f, -z);
    f[3] = fmaf(__uint_as_float((w & 0xF000u) | MAGIC_BITS) - MAGIC, 0x1p-12f, -z);
    f[4] = fmaf(__uint_as_float((w & 0xF0000u) | MAGIC_BITS) - MAGIC, 0x1p-16f, -z);
    const uint32_t h = w >> 20;
    f[5] = (__uint_as_float((h & 0xFu) | MAGIC_BITS) - MAGIC) - z;
    f[6] = fmaf(__uint_as_float((h & 0xF0u) | MAGIC_BITS) - MAGIC, 0x1p-4f, -z);
    f[7] = fmaf(__uint_as_float((h & 0xF00u) | MAGIC_BITS) - MAGIC, 0x1p-8f, -z);
}

/* f[i] = q_i - z for the 4 bytes of w, q_i at bits 8i. */
__device__ __forceinline__ void dq8(uint32_t w, float z, float *f)
{
    f[0] = (__uint_as_float((w & 0xFFu) | MAGIC_BITS) - MAGIC) - z;
    f[1] = fmaf(__uint_as_float((w & 0xFF00u) | MAGIC_BITS) - MAGIC, 0x1p-8f, -z);
    const uint32_t h = w >> 16;
    f[2] = (__uint_as_float((h & 0xFFu) | MAGIC_BITS) - MAGIC) - z;
    f[3] = fmaf(__uint_as_float((h & 0xFF00u) | MAGIC_BITS) - MAGIC, 0x1p-8f, -z);
}

/* ---- the GEMV's decoder ------------------------------------------------------------------- */
/* A chunk is one 16-byte load of row o: 4 words, 128 / BITS canonical inputs. */
template <int BITS>
struct wq_dec {
    static constexpr int K = 128 / BITS;
    const uint4 *w;                  /* [out][chunks] */
    const __half2 *meta;             /* [out][groups] */
    int chunks, groups, cpg, cpg_log2;   /* chunks a group; its log2, or -1 */
    struct Chunk {
        uint4 v;
        __half2 m;
    };
    __device__ __forceinline__ Chunk load(int o, int c) const
    {
        Chunk ch;
        ch.v = ld_stream(w + (size_t)o * chunks + c);
        const int g = groups == 1 ? 0 : cpg_log2 >= 0 ? c >> cpg_log2 : c / cpg;
        ch.m = __ldg(meta + (size_t)o * groups + g);
        return ch;
    }
    __device__ __forceinline__ float dequant(const Chunk &ch, float *f) const
    {
        const float z = __high2float(ch.m);
        const uint32_t wd[4] = { ch.v.x, ch.v.y, ch.v.z, ch.v.w };
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (BITS == 4)
                dq4(wd[j], z, f + 8 * j);
            else
                dq8(wd[j], z, f + 4 * j);
        }
        return __low2float(ch.m);
    }
    __device__ __forceinline__ float rowf(int) const { return 1.0f; }
};

template <int BITS>
static wq_dec<BITS> make_dec(const struct pgd_cuda_wq *w)
{
    wq_dec<BITS> d;
    d.w = reinterpret_cast<const uint4 *>(w->w);
    d.meta = w->meta;
    d.chunks = w->in / wq_dec<BITS>::K;
    d.groups = w->groups;
    d.cpg = w->group_size / wq_dec<BITS>::K;
    d.cpg_log2 = (d.cpg & (d.cpg - 1)) == 0 ? __builtin_ctz((unsigned)d.cpg) : -1;
    return d;
}

/* ---- the tile dequantizer (large n) --------------------------------------------------------- */
/* dst [rows, in] in T = the dequantized rows [o0, o0 + rows): one thread per packed word,
 * its 32 / BITS weights written as one 16- or 8-byte store. */
template <typename T, int BITS>
__global__ void wq_dequant_kernel(const uint32_t *__restrict__ w, const __half2 *__restrict__ meta,
                                  int in, int groups, int group_size, int o0, int rows,
                                  T *__restrict__ dst)
{
    constexpr int PACK = 32 / BITS;
    pdl_trigger();
    pdl_wait();                      /* dst is the scratch an earlier GEMM may still read */
    const int wpr = in / PACK;
    const size_t total = (size_t)rows * wpr;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / wpr), wi = (int)(i % wpr);
        const int o = o0 + r, k0 = wi * PACK;
        const __half2 m = __ldg(meta + (size_t)o * groups + k0 / group_size);
        const float s = __low2float(m), z = __high2float(m);
        float f[PACK];
        const uint32_t word = __ldg(w + (size_t)o * wpr + wi);
        if (BITS == 4)
            dq4(word, z, f);
        else
            dq8(word, z, f);
        __align__(16) T out[PACK];
#pragma unroll
        for (int e = 0; e < PACK; e++)
            out[e] = from_f<T>(f[e] * s);
        T *d = dst + (size_t)r * in + k0;
        if (BITS == 4)
            *reinterpret_cast<uint4 *>(d) = *reinterpret_cast<const uint4 *>(out);
        else
            *reinterpret_cast<uint2 *>(d) = *reinterpret_cast<const uint2 *>(out);
    }
}

/* ---- create / destroy ------------------------------------------------------------------------ */
static int wq_validate(const struct pgd_wq_host *h, char *err, size_t errlen)
{
    if (h->bits != 4 && h->bits != 8)
        return pgd_cuda_failf(err, errlen, "quantized layer: %d bits (the CUDA kernels take 4 or "
                              "8)", h->bits);
    const int k = 128 / h->bits;     /* inputs one 16-byte chunk of a row holds */
    if (h->in <= 0 || h->out <= 0 || h->in > INT_MAX / 2 || h->out > INT_MAX / 2)
        return pgd_cuda_failf(err, errlen, "quantized layer: shape [%lld, %lld]",
                              (long long)h->out, (long long)h->in);
    if (h->group_size <= 0 || h->in % h->group_size != 0)
        return pgd_cuda_failf(err, errlen, "quantized layer [%lld, %lld]: group size %d does not "
                              "divide in", (long long)h->out, (long long)h->in, h->group_size);
    if (h->in % k != 0 || h->group_size % k != 0)
        return pgd_cuda_failf(err, errlen, "quantized layer [%lld, %lld], %d bits, group %d: the "
                              "CUDA kernels need in and the group size to be multiples of %d",
                              (long long)h->out, (long long)h->in, h->bits, h->group_size, k);
    if (!h->qweight || !h->scales || !h->zeros)
        return pgd_cuda_failf(err, errlen, "quantized layer: qweight, scales and zeros are required");
    return 0;
}

/* meta[o][g] = {scales[g][o], zeros[g][o]} in fp16; a value fp16 cannot hold is refused. */
static int wq_meta(const struct pgd_wq_host *h, int groups, __half2 *meta, char *err,
                   size_t errlen)
{
    for (int g = 0; g < groups; g++) {
        for (int64_t o = 0; o < h->out; o++) {
            const float s = h->scales[g * h->out + o], z = h->zeros[g * h->out + o];
            if (!isfinite(s) || !isfinite(z) || fabsf(s) > 65504.0f || fabsf(z) > 65504.0f)
                return pgd_cuda_failf(err, errlen, "quantized layer [%lld, %lld]: scale %g / zero "
                                      "%g of group %d, output %lld is outside fp16's range",
                                      (long long)h->out, (long long)h->in, s, z, g, (long long)o);
            meta[o * groups + g] = __halves2half2(__float2half_rn(s), __float2half_rn(z));
        }
    }
    return 0;
}

static int wq_perm(const struct pgd_wq_host *h, char *err, size_t errlen)
{
    bool *seen = (bool *)calloc((size_t)h->in, 1);
    if (!seen)
        return pgd_cuda_failf(err, errlen, "out of host memory");
    for (int64_t i = 0; i < h->in; i++) {
        const int32_t p = h->perm[i];
        if (p < 0 || p >= h->in || seen[p]) {
            free(seen);
            return pgd_cuda_failf(err, errlen, "quantized layer [%lld, %lld]: perm[%lld] = %d is "
                                  "%s", (long long)h->out, (long long)h->in, (long long)i, p,
                                  p < 0 || p >= h->in ? "out of range" : "repeated");
        }
        seen[p] = true;
    }
    free(seen);
    return 0;
}

/* ---- act-order permutations, shared --------------------------------------------------------
 * A layer's device copy of its permutation is a counted wq_perm. Layers made with one set
 * (pgd_cuda_wq_perms: a model's) share the copy of equal permutations: the q, k and v of a
 * GPTQ checkpoint with desc_act have one g_idx, hence one permutation, and so have gate and
 * up. Then "these layers gather x the same way" is pointer equality at step time, exact and
 * free (pgd_cuda_wq_linear_multi gathers x once for them, within a captured graph), and each
 * permutation is on the device once.
 * Equality is decided once, at create, element for element: a 64-bit hash of the entries
 * picks the candidates, and a candidate's device copy is read back and compared with the new
 * host permutation (a few KB at load; a hash alone would be right only almost surely). The
 * set holds one reference to each copy it lists, each layer one to its own: set and layers
 * are destroyed in any order, the copy with the last. Not thread-safe: one set a model, made
 * and torn down by the thread that loads it. */
struct wq_perm {
    int refs;                        /* the layers holding it, and the set listing it */
    int device;                      /* where d lives */
    int64_t in;
    uint64_t hash;                   /* wq_perm_hash of the entries */
    int32_t *d;                      /* device [in] */
    int32_t *pos;                    /* device [in]: the inverse, pos[d[k]] = k */
};

struct pgd_cuda_wq_perms {
    struct wq_perm **v;              /* [n], each one reference */
    size_t n, cap;
};

static uint64_t wq_perm_hash(const int32_t *perm, int64_t in)
{
    uint64_t h = 0xcbf29ce484222325ull;              /* FNV-1a, a 32-bit entry at a time */
    for (int64_t i = 0; i < in; i++)
        h = (h ^ (uint32_t)perm[i]) * 0x100000001b3ull;
    return h;
}

static void wq_perm_release(struct wq_perm *p)
{
    if (p && --p->refs == 0) {
        pgd_cuda_free(p->d);
        pgd_cuda_free(p->pos);
        free(p);
    }
}

/* *out = a reference to a device copy of h->perm: an equal one set lists (same device, same
 * entries), else a new upload (listed in set). */
static int wq_perm_take(struct pgd_cuda_wq_perms *set, const struct pgd_wq_host *h,
                        struct wq_perm **out, char *err, size_t errlen)
{
    *out = NULL;
    int device = 0;
    PGD_CUDA_CHECK(err, errlen, cudaGetDevice(&device), "act-order permutation [%lld]",
                   (long long)h->in);
    const size_t bytes = (size_t)h->in * sizeof(int32_t);
    const uint64_t hash = wq_perm_hash(h->perm, h->in);
    int32_t *seen = NULL;            /* host: a candidate's copy, read back */
    for (size_t i = 0; set && i < set->n; i++) {
        struct wq_perm *p = set->v[i];
        if (p->device != device || p->in != h->in || p->hash != hash)
            continue;
        if (!seen && !(seen = (int32_t *)malloc(bytes)))
            return pgd_cuda_failf(err, errlen, "out of host memory comparing permutations");
        if (pgd_cuda_memcpy_d2h(seen, p->d, bytes, err, errlen)) {
            free(seen);
            return 1;
        }
        if (!memcmp(seen, h->perm, bytes)) {
            free(seen);
            p->refs++;
            *out = p;
            return 0;
        }
    }
    free(seen);
    if (set && set->n == set->cap) {
        const size_t cap = set->cap ? 2 * set->cap : 16;
        struct wq_perm **v = (struct wq_perm **)realloc(set->v, cap * sizeof *v);
        if (!v)
            return pgd_cuda_failf(err, errlen, "out of host memory listing permutations");
        set->v = v;
        set->cap = cap;
    }
    struct wq_perm *p = (struct wq_perm *)calloc(1, sizeof *p);
    if (!p)
        return pgd_cuda_failf(err, errlen, "out of host memory for a permutation");
    *p = (struct wq_perm){ 1, device, h->in, hash, (int32_t *)pgd_cuda_malloc(bytes),
                           (int32_t *)pgd_cuda_malloc(bytes) };
    int32_t *pos = (int32_t *)malloc(bytes);
    if (!p->d || !p->pos || !pos) {
        free(pos);
        wq_perm_release(p);
        return pgd_cuda_failf(err, errlen, "out of memory for an act-order permutation and its "
                              "inverse [%lld]", (long long)h->in);
    }
    for (int64_t k = 0; k < h->in; k++)   /* wq_perm checked: a permutation of 0 .. in - 1 */
        pos[h->perm[k]] = (int32_t)k;
    const int rc = pgd_cuda_memcpy_h2d(p->d, h->perm, bytes, err, errlen) ||
                   pgd_cuda_memcpy_h2d(p->pos, pos, bytes, err, errlen);
    free(pos);
    if (rc) {
        wq_perm_release(p);
        return 1;
    }
    if (set) {
        set->v[set->n++] = p;
        p->refs++;
    }
    *out = p;
    return 0;
}

extern "C" struct pgd_cuda_wq_perms *pgd_cuda_wq_perms_create(void)
{
    return (struct pgd_cuda_wq_perms *)calloc(1, sizeof(struct pgd_cuda_wq_perms));
}

extern "C" void pgd_cuda_wq_perms_destroy(struct pgd_cuda_wq_perms *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        wq_perm_release(s->v[i]);
    free(s->v);
    free(s);
}

extern "C" size_t pgd_cuda_wq_perms_count(const struct pgd_cuda_wq_perms *s)
{
    return s ? s->n : 0;
}

extern "C" const int32_t *pgd_cuda_wq_input_perm(const struct pgd_cuda_wq *w)
{
    return w->perm;
}

extern "C" const int32_t *pgd_cuda_wq_input_pos(const struct pgd_cuda_wq *w)
{
    return w->perm_ref ? w->perm_ref->pos : NULL;
}

extern "C" bool pgd_cuda_wq_same_perm(const struct pgd_cuda_wq *a, const struct pgd_cuda_wq *b)
{
    return a->perm && a->perm == b->perm;
}

/* The plain layout: dst [out][wpr] = the canonical q [wpr][out] transposed (canonical word
 * row i of feature o becomes word i of row o); synchronous (default stream). */
__global__ void wq_transpose_kernel(const uint32_t *__restrict__ q, int wpr, int out,
                                    uint32_t *__restrict__ dst)
{
    const size_t total = (size_t)out * wpr;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = q[(i % wpr) * out + i / wpr];
}

static int wq_transpose(const uint32_t *q, int wpr, int out, uint32_t *dst, char *err,
                        size_t errlen)
{
    wq_transpose_kernel<<<pgd_cuda_blocks((int64_t)out * wpr, 256), 256>>>(q, wpr, out, dst);
    PGD_CUDA_LAUNCHED(err, errlen, "W4A16/W8A16 repack [%d, %d words]", out, wpr);
    PGD_CUDA_CHECK(err, errlen, cudaStreamSynchronize(0), "W4A16/W8A16 repack [%d, %d words]",
                   out, wpr);
    return 0;
}

extern "C" int pgd_cuda_wq_create(const struct pgd_wq_host *h, struct pgd_cuda_wq_perms *perms,
                                  struct pgd_cuda_wq **out, char *err, size_t errlen)
{
    *out = NULL;
    if (wq_validate(h, err, errlen) || (h->perm && wq_perm(h, err, errlen)))
        return 1;
    const int in = (int)h->in, o_n = (int)h->out, pack = 32 / h->bits;
    const int wpr = in / pack, groups = in / h->group_size;
    const int mma = pgd_cuda__wq_mma_fits(h), out_pad = (o_n + 15) / 16 * 16;
    struct pgd_cuda_wq *w = (struct pgd_cuda_wq *)calloc(1, sizeof *w);
    /* the mma layout is zero-padded to out_pad rows; meta has out_pad rows either way */
    const size_t qbytes = (size_t)o_n * wpr * sizeof(uint32_t);
    const size_t wbytes = (size_t)(mma ? out_pad : o_n) * wpr * sizeof(uint32_t);
    const size_t mbytes = (size_t)out_pad * groups * sizeof(__half2);
    __half2 *meta = (__half2 *)calloc(1, mbytes);
    uint32_t *q = NULL;              /* device: the canonical qweight, repacked from there */
    int rc = 0;
    if (!w || !meta)
        rc = pgd_cuda_failf(err, errlen, "out of host memory repacking a [%d, %d] layer", o_n, in);
    if (!rc) {
        *w = (struct pgd_cuda_wq){ h->bits, h->group_size, groups, in, o_n, out_pad, mma, NULL,
                                   NULL, NULL, pgd_cuda__wq_gemm_int_zeros(h), NULL };
        rc = wq_meta(h, groups, meta, err, errlen);
    }
    if (!rc) {
        q = (uint32_t *)pgd_cuda_malloc(qbytes);
        w->w = (uint32_t *)pgd_cuda_malloc(wbytes);
        w->meta = (__half2 *)pgd_cuda_malloc(mbytes);
        if (!q || !w->w || !w->meta)
            rc = pgd_cuda_failf(err, errlen, "out of device memory for a [%d, %d] %d-bit layer "
                                "(%zu bytes, and %zu while repacking)", o_n, in, h->bits,
                                wbytes + mbytes, qbytes);
    }
    if (!rc && h->perm && !(rc = wq_perm_take(perms, h, &w->perm_ref, err, errlen)))
        w->perm = w->perm_ref->d;
    rc = rc || pgd_cuda_memcpy_h2d(q, h->qweight, qbytes, err, errlen) ||
         pgd_cuda_memcpy_h2d(w->meta, meta, mbytes, err, errlen);
    if (!rc)
        rc = mma ? pgd_cuda__wq_mma_pack(q, in, o_n, out_pad, w->w, err, errlen)
                 : wq_transpose(q, wpr, o_n, w->w, err, errlen);
    pgd_cuda_free(q);
    free(meta);
    if (rc) {
        pgd_cuda_wq_destroy(w);
        return 1;
    }
    *out = w;
    return 0;
}

extern "C" void pgd_cuda_wq_destroy(struct pgd_cuda_wq *w)
{
    if (!w)
        return;
    pgd_cuda_free(w->w);
    pgd_cuda_free(w->meta);
    wq_perm_release(w->perm_ref);
    free(w);
}

/* ---- the two paths ----------------------------------------------------------------------------- */
/* x as the kernels read it: itself, or (act-order perm, or not 16-byte aligned) gathered
 * into the scratch at xbuf (rows [r0, r0 + rows)). */
static int wq_x(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, const int32_t *perm,
                int r0, int rows, const struct pgd_cuda_wq *w, void *xbuf, const void **xk,
                char *err, size_t errlen)
{
    const char *xr = (const char *)x + (size_t)r0 * w->in * 2;
    if (!perm && (uintptr_t)x % 16 == 0) {
        *xk = xr;
        return 0;
    }
    *xk = xbuf;
    return pgd_cuda__qstage_x(c, dt, xr, perm, rows, w->in, xbuf, err, errlen);
}

/* Whether the second streaming GEMV (quant_wq_sgemv2.cu) takes n rows: from n = 9, or where
 * the first cannot run. Up to 8 rows the first is the faster on the H200 (2026-12-04, same
 * lease: n = 1 q/o 7.2 against 8.4 us, gate_up 30.2 against 44.7, down 17.2 against 24.3;
 * n = 4 gate_up 31.5 against 45.1); from 9 rows the first no longer stages x of every shape
 * and the second wins (n = 16 gate_up 48.2 against 84.4 us, qkv 17.7 against 24.3). */
static bool wq_sgemv2_takes(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n)
{
    return pgd_cuda__wq_sgemv2_fits(c, w) && (n > 8 || !pgd_cuda__wq_sgemv_fits(c, w));
}

/* perm: the layer's act-order permutation, or NULL where x is already in its order (the
 * norm before left it gathered) or the layer has none. */
template <typename T>
static int wq_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                   const int32_t *perm, int n, const struct pgd_cuda_wq *w, const void *b,
                   void *y, char *err, size_t errlen)
{
    if ((size_t)n * w->in * 2 > c->qscratch_bytes)
        return pgd_cuda_failf(err, errlen, "quantized GEMV: x [%d, %d] exceeds the %zu-byte "
                              "scratch", n, w->in, c->qscratch_bytes);
    /* the mma layout: the decode GEMVs gather act-order x as they stage x */
    if (wq_sgemv2_takes(c, w, n) && (uintptr_t)x % 2 == 0)
        return pgd_cuda__wq_sgemv2(c, dt, x, perm, n, w, b, y, err, errlen);
    if (pgd_cuda__wq_sgemv_fits(c, w) && (uintptr_t)x % 2 == 0)
        return pgd_cuda__wq_sgemv(c, dt, x, perm, n, w, b, y, err, errlen);
    if (pgd_cuda__wq_gemv4_fits(w) && (uintptr_t)x % 2 == 0)
        return pgd_cuda__wq_gemv4(c, dt, x, perm, n, w, b, y, err, errlen);
    if (w->mma && perm && (uintptr_t)x % 2 == 0)
        return pgd_cuda__wq_mma_gemv(c, dt, x, perm, n, w, b, y, err, errlen);
    const void *xk;
    if (wq_x(c, dt, x, perm, 0, n, w, c->qscratch, &xk, err, errlen))
        return 1;
    char what[64];
    snprintf(what, sizeof what, "W%dA16 (group %d)", w->bits, w->group_size);
    if (w->mma)
        return pgd_cuda__wq_mma_gemv(c, dt, xk, NULL, n, w, b, y, err, errlen);
    if (w->bits == 4)
        return qgemv_launch(c, make_dec<4>(w), (const T *)xk, (const T *)b, (const float *)NULL,
                            n, w->in, w->out, (T *)y, what, err, errlen);
    return qgemv_launch(c, make_dec<8>(w), (const T *)xk, (const T *)b, (const float *)NULL, n,
                        w->in, w->out, (T *)y, what, err, errlen);
}

template <typename T>
static int wq_dequant(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const struct pgd_cuda_wq *w,
                      int o0, int rows, void *dst, char *err, size_t errlen)
{
    if (w->mma)
        return pgd_cuda__wq_mma_dequant(c, dt, w, o0, rows, dst, err, errlen);
    const size_t words = (size_t)rows * (w->in / (32 / w->bits));
    dim3 grid(pgd_cuda_blocks((int64_t)words, 256)), block(256);
    cudaError_t e;
    if (w->bits == 4)
        e = pgd_cuda_launch(c, wq_dequant_kernel<T, 4>, grid, block, (const uint32_t *)w->w,
                            (const __half2 *)w->meta, w->in, w->groups, w->group_size, o0, rows,
                            (T *)dst);
    else
        e = pgd_cuda_launch(c, wq_dequant_kernel<T, 8>, grid, block, (const uint32_t *)w->w,
                            (const __half2 *)w->meta, w->in, w->groups, w->group_size, o0, rows,
                            (T *)dst);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "W%dA16 dequantize rows %d..%d of [%d, %d]: %s",
                              w->bits, o0, o0 + rows - 1, w->out, w->in, cudaGetErrorString(e));
    return 0;
}

/* Rows a scratch half holds: a multiple of 128 (16 when in is very large), at least 16. */
static int rows_fitting(size_t bytes, size_t row_bytes)
{
    size_t r = bytes / row_bytes;
    return r >= 128 ? (int)(r / 128 * 128) : (int)(r / 16 * 16);
}

/* The scratch: its first half holds a dequantized slice of the weights, its second half the
 * staged x when x needs staging. */
template <typename T>
static int wq_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                   const struct pgd_cuda_wq *w, const void *b, void *y, char *err, size_t errlen)
{
    /* the whole layer's rows in one slice, and x's staging beside, where the scratch may grow
     * to that (else as many slices as its halves give) */
    const size_t layer = (size_t)(w->mma ? w->out_pad : w->out) * w->in * sizeof(T);
    if (pgd_cuda__qscratch_reserve(c, 2 * layer, err, errlen))
        return 1;
    const size_t half = c->qscratch_bytes / 2, row_bytes = (size_t)w->in * sizeof(T);
    const int wrows = rows_fitting(half, row_bytes), xrows = rows_fitting(half, row_bytes);
    if (wrows < 16)
        return pgd_cuda_failf(err, errlen, "W%dA16 GEMM: a row of %d inputs does not fit the "
                              "scratch 16 times", w->bits, w->in);
    void *wbuf = c->qscratch, *xbuf = (char *)c->qscratch + half;
    const bool stage = w->perm || (uintptr_t)x % 16 != 0;
    const bool stage_once = stage && n <= xrows;
    const void *xall = x;
    if (stage_once && wq_x(c, dt, x, w->perm, 0, n, w, xbuf, &xall, err, errlen))
        return 1;
    for (int o0 = 0; o0 < w->out; o0 += wrows) {
        const int rows = w->out - o0 < wrows ? w->out - o0 : wrows;
        if (wq_dequant<T>(c, dt, w, o0, rows, wbuf, err, errlen))
            return 1;
        const int step = stage && !stage_once ? xrows : n;
        for (int r0 = 0; r0 < n; r0 += step) {
            const int nr = n - r0 < step ? n - r0 : step;
            const void *xk = stage_once ? (const void *)((const T *)xall + (size_t)r0 * w->in)
                                        : (const void *)((const T *)x + (size_t)r0 * w->in);
            if (stage && !stage_once && wq_x(c, dt, x, w->perm, r0, nr, w, xbuf, &xk, err,
                                             errlen))
                return 1;
            struct pgd_cuda_qlt g = {};
            g.kind = PGD_QLT_16;
            g.dt = dt;
            g.m = rows; g.n = nr; g.k = w->in;
            g.lda = w->in; g.ldb = w->in; g.ldd = w->out;
            g.a = wbuf; g.b = xk;
            g.d = (T *)y + (size_t)r0 * w->out + o0;
            if (pgd_cuda__qlt_matmul(c, &g, err, errlen))
                return 1;
        }
    }
    return b ? pgd_cuda__qadd_bias(c, dt, y, b, n, w->out, err, errlen) : 0;
}

static int wq_gemv_max_n(void)
{
    static int v = -1;
    if (v < 0) {
        int n = pgd_cuda__qenv_int("PGD_CUDA_WQ_GEMV_MAX_N", WQ_GEMV_MAX_N_DEFAULT);
        v = n < 0 ? 0 : n > 64 ? 64 : n;
    }
    return v;
}

static int wq_deq_min_n(void)
{
    static int v = -1;
    if (v < 0) {
        const int n = pgd_cuda__qenv_int("PGD_CUDA_WQ_DEQ_MIN_N", WQ_DEQ_MIN_N_DEFAULT);
        v = n < 1 ? INT_MAX : n;     /* 0: never */
    }
    return v;
}

/* The folded GEMM's rows: [PGD_CUDA_WQ_FOLD_MIN_N (17: past the GEMV; 0: never),
 * PGD_CUDA_WQ_FOLD_MAX_N (256)]. */
static void wq_fold_range(int *lo, int *hi)
{
    static int v[2] = { -1, -1 };
    if (v[0] < 0) {
        const int a = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_MIN_N", WQ_FOLD_MIN_N_DEFAULT);
        v[1] = pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_MAX_N", WQ_FOLD_MAX_N_DEFAULT);
        v[0] = a < 1 ? INT_MAX : a;  /* 0: never */
    }
    *lo = v[0];
    *hi = v[1];
}

/* Whether the automatic path (past the GEMV) takes the folded Hopper GEMM for n rows of w:
 * the mma layout, where the kernel runs, inside the fold's rows. */
static bool wq_auto_fold(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n)
{
    int lo, hi;
    wq_fold_range(&lo, &hi);
    return n >= lo && n <= hi && pgd_cuda__wq_fold_ok(c, w);
}

/* Whether it dequantizes the layer for cuBLASLt instead: the mma layout from
 * PGD_CUDA_WQ_DEQ_MIN_N rows (256) where the fold does not take them; where the fold runs,
 * only past its rows (its range is where it was the faster: from 17 rows it beats the exact
 * fused GEMM, up to 256 the dequantizing pass). Both multiply the 16-bit weights,
 * (q - zero) * scale rounded to the dtype. */
static bool wq_auto_deq(const struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n)
{
    if (!w->mma || n < wq_deq_min_n())
        return false;
    int lo, hi;
    wq_fold_range(&lo, &hi);
    return n > hi || lo == INT_MAX || !pgd_cuda__wq_fold_ok(c, w);
}

/* Whether the automatic path takes the GEMV for n rows. The plain layout's GEMV (8 bits,
 * real-valued zeros) reads the weights once per QGEMV_ROWS rows: past two launches the
 * fused GEMM is faster (H200). */
static bool wq_auto_gemv(const struct pgd_cuda_wq *w, int n)
{
    const int gemv_max = w->mma || wq_gemv_max_n() < 2 * QGEMV_ROWS ? wq_gemv_max_n()
                                                                    : 2 * QGEMV_ROWS;
    return n <= gemv_max;
}

extern "C" void pgd_cuda_wq_auto_plan(struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n,
                                      char *buf, size_t len)
{
    if (wq_auto_gemv(w, n) && wq_sgemv2_takes(c, w, n))
        pgd_cuda__wq_sgemv2_plan(c, w, n, buf, len);
    else if (wq_auto_gemv(w, n) && pgd_cuda__wq_sgemv_fits(c, w))
        pgd_cuda__wq_sgemv_plan(c, w, n, buf, len);
    else if (wq_auto_gemv(w, n))
        snprintf(buf, len, "gemv");
    else if (wq_auto_fold(c, w, n))
        pgd_cuda__wq_fold_plan(c, w, n, buf, len);
    else if (wq_auto_deq(c, w, n))
        snprintf(buf, len, "deq+lt");
    else
        pgd_cuda__wq_gemm_plan(c, w, n, true, buf, len);
}

extern "C" int pgd_cuda_wq_linear_path(struct pgd_cuda_ctx *c, int path, enum pgd_dtype dt,
                                       const void *x, int n, const struct pgd_cuda_wq *w,
                                       const void *b, void *y, char *err, size_t errlen)
{
    if (dt != PGD_DTYPE_BF16 && dt != PGD_DTYPE_F16)
        return pgd_cuda_failf(err, errlen, "W%dA16 linear: activations in %s (BF16 or F16)",
                              w->bits, pgd_dtype_name(dt));
    if (n < 0 || path < PGD_CUDA_QPATH_AUTO ||
        (path > PGD_CUDA_QPATH_GEMM && path != PGD_CUDA_QPATH_GEMM_LT &&
         path != PGD_CUDA_QPATH_GEMM_MMA && path != PGD_CUDA_QPATH_GEMM_FOLD))
        return pgd_cuda_failf(err, errlen, "W%dA16 linear: %d rows, path %d", w->bits, n, path);
    if (n == 0)
        return 0;
    const bool gemv = path == PGD_CUDA_QPATH_GEMV || (path == PGD_CUDA_QPATH_AUTO &&
                                                      wq_auto_gemv(w, n));
    /* past the GEMV, in the mma layout: the folded Hopper GEMM (quant_wq_fold.cu) or the
     * dequantize + cuBLASLt path where wq_auto_fold / wq_auto_deq say so, each also when
     * asked for; else the fused tensor-core GEMM of the exact q - zero (quant_wq_gemm.cu) */
    const bool automatic = path == PGD_CUDA_QPATH_AUTO && !gemv;
    if (path == PGD_CUDA_QPATH_GEMM_FOLD && !pgd_cuda__wq_fold_ok(c, w)) {
        pgd_cuda_failf(err, errlen, "W%dA16 folded GEMM [%d x %d] (group %d, %s layout): needs "
                       "the mma layout, groups a multiple of 64 inputs, a compute capability "
                       "9.0 device and a build with 90 among its CUDA architectures", w->bits,
                       w->out, w->in, w->group_size, w->mma ? "mma" : "plain");
        return 2;
    }
    if (path == PGD_CUDA_QPATH_GEMM_FOLD || (automatic && wq_auto_fold(c, w, n)))
        return pgd_cuda__wq_gemm(c, dt, x, n, w, b, y, WQ_GEMM_FOLD, err, errlen);
    const bool deq = path == PGD_CUDA_QPATH_GEMM_LT || (automatic && wq_auto_deq(c, w, n));
    if (!gemv && !deq)
        return pgd_cuda__wq_gemm(c, dt, x, n, w, b, y,
                                 path == PGD_CUDA_QPATH_GEMM_MMA ? WQ_GEMM_EXACT_MMA
                                                                 : WQ_GEMM_EXACT, err, errlen);
    /* the decode GEMVs: x the norm before left gathered through the permutation is read
     * as it is (every GEMV, also those that would gather as they stage x) */
    const int32_t *perm = w->perm;
    if (gemv && perm && pgd_cuda__wq_xg_take(c, dt, x, perm, n, w->in, c->qscratch)) {
        x = c->qscratch;
        perm = NULL;
    }
    if (dt == PGD_DTYPE_BF16)
        return gemv ? wq_gemv<__nv_bfloat16>(c, dt, x, perm, n, w, b, y, err, errlen)
                    : wq_gemm<__nv_bfloat16>(c, dt, x, n, w, b, y, err, errlen);
    return gemv ? wq_gemv<__half>(c, dt, x, perm, n, w, b, y, err, errlen)
                : wq_gemm<__half>(c, dt, x, n, w, b, y, err, errlen);
}

extern "C" int pgd_cuda_wq_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                                  const struct pgd_cuda_wq *w, const void *b, void *y, char *err,
                                  size_t errlen)
{
    return pgd_cuda_wq_linear_path(c, PGD_CUDA_QPATH_AUTO, dt, x, n, w, b, y, err, errlen);
}

/* Whether linear_multi's layers run as one grid of the folded GEMM (pgd_cuda__wq_gemm_layers):
 * each layer's own automatic choice at n rows is the fold, and they share in, groups and the
 * act-order permutation (x gathered once for all). 8B GPTQ q, k and v at 32 rows, H100: the
 * 1,024-feature k and v make 8 feature tiles each (too few for 132 SMs even split), and the
 * three launches took 46 us a layer where one 6,144-feature launch takes ~22.
 * PGD_CUDA_WQ_FOLD_LAYERS=1 / 0: one grid / a launch a layer (default
 * WQ_FOLD_LAYERS_DEFAULT). */
static bool wq_fold_layers_take(const struct pgd_cuda_ctx *c, enum pgd_dtype dt, int count,
                                const struct pgd_cuda_wq *const *w, int n)
{
    if (count < 2 || (dt != PGD_DTYPE_BF16 && dt != PGD_DTYPE_F16) ||
        pgd_cuda__qenv_int("PGD_CUDA_WQ_FOLD_LAYERS", WQ_FOLD_LAYERS_DEFAULT) != 1)
        return false;
    for (int i = 0; i < count; i++)
        if (wq_auto_gemv(w[i], n) || !wq_auto_fold(c, w[i], n) || w[i]->in != w[0]->in ||
            w[i]->group_size != w[0]->group_size || w[i]->groups != w[0]->groups ||
            w[i]->perm != w[0]->perm)    /* none, or one shared device copy */
            return false;
    return true;
}

/* One launch where each layer's own choice would be the first streaming GEMV (the one that
 * takes several layers), else each layer's pgd_cuda_wq_linear: the same kernel and sums
 * either way (act-order layers of one shared permutation: x gathered into the scratch once,
 * then staged plain, as each layer's own call gathers it). */
extern "C" int pgd_cuda_wq_linear_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                        int n, int count, const struct pgd_cuda_wq *const *w,
                                        const void *const *b, void *const *y, char *err,
                                        size_t errlen)
{
    if (count < 1 || count > 3)
        return pgd_cuda_failf(err, errlen, "W4A16 linear_multi: %d layers (1..3)", count);
    bool one = (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16) && count > 1 && n >= 1 &&
               (size_t)n * w[0]->in * 2 <= c->qscratch_bytes;
    for (int i = 0; one && i < count; i++)
        one = wq_auto_gemv(w[i], n) && !wq_sgemv2_takes(c, w[i], n);
    if (one) {
        const int rc = pgd_cuda__wq_sgemv_multi(c, dt, x, n, count, w, b, y, err, errlen);
        if (rc != 2)
            return rc;
    }
    if (wq_fold_layers_take(c, dt, count, w, n))
        return pgd_cuda__wq_gemm_layers(c, dt, x, n, count, w, b, y, WQ_GEMM_FOLD, err, errlen);
    for (int i = 0; i < count; i++)
        if (pgd_cuda_wq_linear(c, dt, x, n, w[i], b[i], y[i], err, errlen))
            return 1;
    return 0;
}

extern "C" size_t pgd_cuda_wq_weight_bytes(const struct pgd_cuda_wq *w)
{
    return (size_t)(w->mma ? w->out_pad : w->out) * w->in / (32 / w->bits) * 4 +
           (size_t)w->out_pad * w->groups * 4;
}
