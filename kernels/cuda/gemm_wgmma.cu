/* Our own dense GEMM for Hopper, for few tokens and a narrow output: y[n, out] = x[n, in] @
 * w[out, in]^T (+ b), w row-major [out, in] as linear.cu has it, x and w bf16 or fp16, y in
 * their dtype or float32. gemm_tune.cu times it (with its split-K variants: at start-up the
 * few that came closest, pgd_cuda__wgmma_candidates) beside cuBLASLt's candidates per shape
 * and n bucket and uses it only where it wins; pgd_cuda_linear_wgmma runs a given
 * configuration (tests, pagoda bench gemm).
 *
 * Why: at n = 16..512 the 8B shape's qkv (4096 -> 6144) and o (4096 -> 4096) projections are
 * a pass over 32-48 MB of weights with little arithmetic a byte, and cuBLASLt's tiles leave
 * most SMs idle (48-96 output tiles for 132 SMs: 34-54% of the bound). Here the weights are
 * the wgmma M side (128 output features a CTA, two warpgroups of 64), the tokens the N side
 * (BN = 16..256 a CTA), and K is split over a cluster of `split` CTAs (1..8) so that
 * out / 128 x n / BN x split CTAs stream weights on every SM.
 *
 * A CTA: 256 threads. The inputs go by stages of 64 (128 bytes a row): the stage's weight
 * tile (128 rows) and x tile (BN rows) are copied with cp.async (16 bytes a thread a copy)
 * into shared memory in the 128-byte-swizzled K-major layout (sm90.cuh), as many buffers
 * (up to 8) as the budget of CPS CTAs an SM allows (1: 192 KB; 2: 100 KB, for grids of more
 * CTAs than SMs), PD = buffers - 2 ahead; each warpgroup issues 4 wgmma m64nBNk16 a stage with
 * both operands read through descriptors, and waits for the previous stage's (wait_group 1)
 * so that the buffer refilled next is no longer read. Out-of-range rows and inputs are
 * zero-filled (any n, out; in a multiple of 8).
 *
 * The epilogue stages the CTA's float32 tile [BN][128] in shared memory (the pipeline's
 * space). Split-K: the `split` CTAs of a cluster (cluster dims 1 x 1 x split, rank = the K
 * part) each hold their part's tile; after a cluster barrier CTA r sums the token rows
 * [r BN / split, (r + 1) BN / split) of all parts through distributed shared memory, in rank
 * order (deterministic: the same bits every run), adds the bias in float32 and rounds once
 * into y; a second cluster barrier keeps every tile alive until it has been read. No
 * workspace, no second kernel. split = 1 writes its own tile.
 *
 * Built for sm_90a only (the sm_90 target of this file is compiled as sm_90a, local.mk); on
 * other devices (and builds without 90) pgd_cuda__wgmma_ok says no and nothing launches it. */
#include "kernels/cuda/gemm_wgmma.cuh"
#include "kernels/cuda/sm90.cuh"
#include <cooperative_groups.h>
#include <stdlib.h>
#include <string.h>
#include <atomic>

#define GW_BM 128                    /* output features a CTA (two warpgroups of 64) */
#define GW_BK 64                     /* inputs a stage: one 128-byte swizzled row */
#define GW_THREADS 256
/* The stages' budget of shared memory for CPS CTAs an SM (1: deep pipelines; 2: twice the
 * CTAs resident, for grids of more CTAs than SMs; 228 KB an SM, 1 KB a CTA reserved). */
#define GW_PIPE_BYTES(CPS) ((CPS) == 1 ? 192 * 1024 : 100 * 1024)

/* The shared memory of a BN-token CTA: each stage [w tile 128 x 128 B][x tile BN x 128 B],
 * 1024-byte aligned; the epilogue's float32 tile [BN][OUT_LD] over the same space. */
template <int BN, int CPS> struct gw_smem {
    static constexpr int A = GW_BM * 128, B = BN * 128, STAGE = A + B;
    static constexpr int FIT = GW_PIPE_BYTES(CPS) / STAGE;
    static constexpr int STAGES = FIT > 8 ? 8 : FIT;
    static_assert(STAGES >= 3, "a stage loading, one computing, one draining");
    static constexpr int PD = STAGES - 2;             /* stages loaded ahead */
    static constexpr int OUT_LD = GW_BM + 4;          /* floats a row of the output tile */
    static constexpr int PIPE = STAGES * STAGE, OUT = BN * OUT_LD * 4;
    static constexpr int BYTES = (PIPE > OUT ? PIPE : OUT) + 1024;   /* + room to align */
};

struct gw_args {
    const void *x, *w, *b;           /* x [n][in], w [out][in], b [out] or NULL: 16-bit */
    void *y;                         /* [n][out] */
    int n, in, out, kts, split;      /* kts: stages of 64 inputs, ceil(in / 64) */
};

/* d (64 x N float32: the warpgroup's accumulators, N / 2 a thread) += A (64 x 16, descriptor
 * da) @ B (16 x N, descriptor db), both K-major; acc = 0 overwrites d instead. */
template <typename T, int N> struct gw_wgmma;
#ifdef PGD_SM90A
template <> struct gw_wgmma<__nv_bfloat16, 16> {
    static __device__ __forceinline__ void run(float (&d)[8], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7}, "
                     "%8, %9, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__half, 16> {
    static __device__ __forceinline__ void run(float (&d)[8], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7}, "
                     "%8, %9, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__nv_bfloat16, 32> {
    static __device__ __forceinline__ void run(float (&d)[16], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
                     "%16, %17, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__half, 32> {
    static __device__ __forceinline__ void run(float (&d)[16], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
                     "%16, %17, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__nv_bfloat16, 64> {
    static __device__ __forceinline__ void run(float (&d)[32], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                     "%32, %33, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__half, 64> {
    static __device__ __forceinline__ void run(float (&d)[32], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                     "%32, %33, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__nv_bfloat16, 128> {
    static __device__ __forceinline__ void run(float (&d)[64], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
                     "%64, %65, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__half, 128> {
    static __device__ __forceinline__ void run(float (&d)[64], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
                     "%64, %65, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__nv_bfloat16, 256> {
    static __device__ __forceinline__ void run(float (&d)[128], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
                     "%128, %129, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
template <> struct gw_wgmma<__half, 256> {
    static __device__ __forceinline__ void run(float (&d)[128], uint64_t da, uint64_t db, int acc)
    {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
                     "%128, %129, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                     : "l"(da), "l"(db), "r"(acc));
    }
};
#endif

/* A thread's share of a stage's copies, addresses worked out once: chunk th % 8 (inputs
 * 8 c .. 8 c + 7) of the weight rows th / 8 + 32 i (i < 4) and of the x rows th / 8 + 32 i
 * (i < BN / 32, at least the first when th / 8 < BN). Row r's chunk c lands at
 * r * 128 + ((c ^ (r % 8)) << 4): r % 8 is the same for every row of a thread. */
template <typename T, int BN>
struct gw_loader {
    static constexpr int XN = BN >= 32 ? BN / 32 : 1;
    const T *w_src, *x_src;          /* row th / 8 at stage 0 */
    uint32_t dst;                    /* the offset of row th / 8's chunk in a tile */
    int k;                           /* the chunk's first input at stage 0 */
    uint32_t ok;                     /* bit i: weight row + 32 i exists; bit 8 + i: x row */

    __device__ __forceinline__ void init(const gw_args &a, int m0, int n0, int th)
    {
        const int r = th / 8, c = th % 8;
        dst = (uint32_t)(r * 128 + ((c ^ (r & 7)) << 4));
        k = c * 8;
        ok = 0;
#pragma unroll
        for (int i = 0; i < 4; i++)
            ok |= m0 + r + 32 * i < a.out ? 1u << i : 0u;
#pragma unroll
        for (int i = 0; i < XN; i++)
            ok |= r + 32 * i < BN && n0 + r + 32 * i < a.n ? 1u << (8 + i) : 0u;
        w_src = (const T *)a.w + (size_t)min(m0 + r, a.out - 1) * a.in + k;
        x_src = (const T *)a.x + (size_t)min(n0 + r, a.n - 1) * a.in + k;
    }

    /* Stage kt's weights into the tile at shared address st. */
    __device__ __forceinline__ void load_w(const gw_args &a, uint32_t st, int kt) const
    {
        const int k0 = kt * GW_BK;
        const bool kin = k0 + k < a.in;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const bool v = kin && (ok & (1u << i));
            cp_async16(st + dst + i * 32 * 128, v ? w_src + (size_t)32 * i * a.in + k0 : a.w, v);
        }
    }

    /* Stage kt's x rows into the tile at shared address st. */
    __device__ __forceinline__ void load_x(const gw_args &a, uint32_t st, int kt) const
    {
        const int k0 = kt * GW_BK;
        const bool kin = k0 + k < a.in;
#pragma unroll
        for (int i = 0; i < XN; i++) {
            if (BN < 32 && threadIdx.x / 8 >= BN)
                break;                   /* past the tile (BN 16) */
            const bool v = kin && (ok & (1u << (8 + i)));
            cp_async16(st + dst + i * 32 * 128, v ? x_src + (size_t)32 * i * a.in + k0 : a.x, v);
        }
    }
};

/* y[n0 + tl, m0 + oc .. + 7] for the tile's token rows [r0, r1): the sum of the `parts` tiles
 * (float32 [BN][OUT_LD]; parts[q] is K part q's) in part order, plus the bias, rounded once. */
template <typename T, typename TY, int BN>
__device__ __forceinline__ void gw_store(const gw_args &a, const float *const *parts, int nparts,
                                         int r0, int r1, int n0, int m0, int th)
{
    constexpr int LD = GW_BM + 4;    /* gw_smem's OUT_LD */
    const bool vec = a.out % 8 == 0 && (uintptr_t)a.y % 16 == 0;
    const T *bias = (const T *)a.b;
    for (int idx = r0 * (GW_BM / 8) + th; idx < r1 * (GW_BM / 8); idx += GW_THREADS) {
        const int tl = idx / (GW_BM / 8), oc = idx % (GW_BM / 8) * 8;
        const int tok = n0 + tl, o = m0 + oc;
        if (tok >= a.n || o >= a.out)
            continue;
        float v[8] = {};
        for (int q = 0; q < nparts; q++) {
            const float4 p0 = *reinterpret_cast<const float4 *>(parts[q] + tl * LD + oc);
            const float4 p1 = *reinterpret_cast<const float4 *>(parts[q] + tl * LD + oc + 4);
            v[0] += p0.x; v[1] += p0.y; v[2] += p0.z; v[3] += p0.w;
            v[4] += p1.x; v[5] += p1.y; v[6] += p1.z; v[7] += p1.w;
        }
        TY *yr = (TY *)a.y + (size_t)tok * a.out + o;
        if (vec) {                   /* out % 8 == 0: all 8 features exist */
            if (bias) {
                const uint4 bv = *reinterpret_cast<const uint4 *>(bias + o);
                const T *bb = reinterpret_cast<const T *>(&bv);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    v[e] += to_f<T>(bb[e]);
            }
            if constexpr (sizeof(TY) == 4) {
                float4 *yf = reinterpret_cast<float4 *>(yr);
                yf[0] = make_float4(v[0], v[1], v[2], v[3]);
                yf[1] = make_float4(v[4], v[5], v[6], v[7]);
            } else {
                uint4 pk;
                TY *ph = reinterpret_cast<TY *>(&pk);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    ph[e] = from_f<TY>(v[e]);
                *reinterpret_cast<uint4 *>(yr) = pk;
            }
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                if (o + e < a.out)
                    yr[e] = from_f<TY>(v[e] + (bias ? to_f<T>(bias[o + e]) : 0.0f));
        }
    }
}

template <typename T, typename TY, int BN, int CPS>
__global__ void __launch_bounds__(GW_THREADS, CPS)
gw_kernel(const __grid_constant__ gw_args a)
{
#ifdef PGD_SM90A
    typedef gw_smem<BN, CPS> L;
    static_assert(L::OUT_LD == GW_BM + 4, "gw_store's row length");
    constexpr int NA = BN / 2;       /* accumulators a thread */
    extern __shared__ __align__(128) uint8_t gw_buf[];
    const uint32_t raw = smem_u32(gw_buf), smem0 = (raw + 1023u) & ~1023u;
    uint8_t *buf = gw_buf + (smem0 - raw);
    const int th = threadIdx.x, wg = th / 128;
    const int n0 = blockIdx.x * BN, m0 = blockIdx.y * GW_BM, part = blockIdx.z;
    /* this CTA's stages of K: [kb, kb + nk) */
    const int kb = (int)((int64_t)a.kts * part / a.split);
    const int nk = (int)((int64_t)a.kts * (part + 1) / a.split) - kb;
    pdl_trigger();

    gw_loader<T, BN> ld;
    ld.init(a, m0, n0, th);
    /* The weights of the first stages may load before the previous kernel is done (nothing
     * writes them), x only after. Group s holds stage s's x (group 0 also the early weights),
     * so waiting for group kt still finds stage kt complete. */
    for (int s = 0; s < L::PD; s++)
        if (s < nk)
            ld.load_w(a, smem0 + s * L::STAGE, kb + s);
    pdl_wait();
    for (int s = 0; s < L::PD; s++) {
        if (s < nk)
            ld.load_x(a, smem0 + s * L::STAGE + L::A, kb + s);
        cp_async_commit();
    }

    float acc[NA];
#pragma unroll
    for (int i = 0; i < NA; i++)
        acc[i] = 0.0f;
    for (int kt = 0; kt < nk; kt++) {
        cp_async_wait<L::PD - 1>();
        sm90_fence_async_smem();
        /* stage kt landed for every thread; the wgmmas of stage kt - 2 are done in both
         * warpgroups (each waited for them last iteration), so its buffer may be refilled */
        __syncthreads();
        const int f = kt + L::PD;
        if (f < nk) {
            const uint32_t st = smem0 + (uint32_t)((f % L::STAGES) * L::STAGE);
            ld.load_w(a, st, kb + f);
            ld.load_x(a, st + L::A, kb + f);
        }
        cp_async_commit();
        const uint32_t st = smem0 + (uint32_t)((kt % L::STAGES) * L::STAGE);
        const uint64_t da = sm90_desc_sw128(st + wg * 64 * 128), db = sm90_desc_sw128(st + L::A);
        sm90_reg_fence(acc);
        sm90_wgmma_fence();
#pragma unroll
        for (int s = 0; s < 4; s++)
            gw_wgmma<T, BN>::run(acc, da + (uint64_t)(2 * s), db + (uint64_t)(2 * s), 1);
        sm90_wgmma_commit();
        sm90_wgmma_wait<1>();
        sm90_reg_fence(acc);
    }
    sm90_wgmma_wait<0>();
    sm90_reg_fence(acc);
    cp_async_wait<0>();
    __syncthreads();                 /* the pipeline's space becomes the output tile */

    /* accumulator 4 j + i of thread (warp w of its warpgroup, lane g * 4 + t): feature
     * 16 w + g (+ 8 for i >= 2), token 8 j + 2 t (+ 1 for odd i) */
    float *so = reinterpret_cast<float *>(buf);
    const int lane = th % 32, w = (th / 32) % 4, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < NA; i++) {
        const int o = wg * 64 + w * 16 + g + ((i & 2) ? 8 : 0), tok = (i / 4) * 8 + 2 * t + (i & 1);
        so[tok * L::OUT_LD + o] = acc[i];
    }
    if (a.split == 1) {
        __syncthreads();
        const float *parts[1] = { so };
        gw_store<T, TY, BN>(a, parts, 1, 0, BN, n0, m0, th);
        return;
    }
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    cl.sync();                       /* every part's tile is in its CTA's shared memory */
    const float *parts[8];
    for (int q = 0; q < a.split; q++)
        parts[q] = cl.map_shared_rank(so, q);
    const int r = (int)cl.block_rank();
    const int r0 = BN * r / a.split, r1 = BN * (r + 1) / a.split;
    gw_store<T, TY, BN>(a, parts, a.split, r0, r1, n0, m0, th);
    cl.sync();                       /* no tile leaves before the others have read it */
#else
    __trap();                        /* launched only where the sm_90a code exists */
#endif
}

/* ---- the host side ------------------------------------------------------------------------------- */
/* Dynamic shared memory past 48 KB is granted per kernel and device, once (`done`: a bit mask
 * of devices 0..63; each instantiation of gw_launch keeps its own). */
template <typename T, typename TY, int BN, int CPS>
static cudaError_t gw_launch(struct pgd_cuda_ctx *c, const gw_args &a)
{
    static std::atomic<uint64_t> done(0);
    const int smem = gw_smem<BN, CPS>::BYTES;
    const uint64_t bit = c->device >= 0 && c->device < 64 ? 1ull << c->device : 0;
    if (!bit || !(done.load() & bit)) {
        cudaError_t e = cudaFuncSetAttribute(gw_kernel<T, TY, BN, CPS>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess)
            return e;
        done.fetch_or(bit);
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)((a.n + BN - 1) / BN), (unsigned)((a.out + GW_BM - 1) / GW_BM),
                       (unsigned)a.split);
    cfg.blockDim = dim3(GW_THREADS);
    cfg.dynamicSmemBytes = (size_t)smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[2];
    int na = 0;
    if (c->pdl) {
        attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[na++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (a.split > 1) {               /* the K parts of a tile: one cluster */
        attr[na].id = cudaLaunchAttributeClusterDimension;
        attr[na].val.clusterDim.x = 1;
        attr[na].val.clusterDim.y = 1;
        attr[na++].val.clusterDim.z = (unsigned)a.split;
    }
    cfg.attrs = attr;
    cfg.numAttrs = (unsigned)na;
    return cudaLaunchKernelEx(&cfg, gw_kernel<T, TY, BN, CPS>, a);
}

/* Two CTAs an SM: tiles up to 128 tokens (256's accumulators need more registers than two
 * CTAs of 256 threads have). */
template <typename T, typename TY>
static cudaError_t gw_launch_bn(struct pgd_cuda_ctx *c, const gw_args &a, int bn, int cps)
{
    if (cps == 2) {
        switch (bn) {
        case 16: return gw_launch<T, TY, 16, 2>(c, a);
        case 32: return gw_launch<T, TY, 32, 2>(c, a);
        case 64: return gw_launch<T, TY, 64, 2>(c, a);
        default: return gw_launch<T, TY, 128, 2>(c, a);
        }
    }
    switch (bn) {
    case 16: return gw_launch<T, TY, 16, 1>(c, a);
    case 32: return gw_launch<T, TY, 32, 1>(c, a);
    case 64: return gw_launch<T, TY, 64, 1>(c, a);
    case 128: return gw_launch<T, TY, 128, 1>(c, a);
    default: return gw_launch<T, TY, 256, 1>(c, a);
    }
}

/* Whether the kernel runs on c's device: compute capability 9.0 and the sm_90a code in the
 * binary (the build had 90 among its architectures); PGD_CUDA_GEMM_WGMMA=0 turns it off.
 * Asked once a device (bit masks of devices 0..63 asked and found able). */
bool pgd_cuda__wgmma_ok(const struct pgd_cuda_ctx *c)
{
    static std::atomic<uint64_t> asked(0), able(0);
    return sm90_once(asked, able, c->device, [c] {
        const char *env = getenv("PGD_CUDA_GEMM_WGMMA");
        return !(env && !strcmp(env, "0")) &&
               sm90_kernel_built(c->device, gw_kernel<__nv_bfloat16, __nv_bfloat16, 64, 1>);
    });
}

bool pgd_cuda__wgmma_fits(enum pgd_dtype dt, enum pgd_dtype ydt, const void *x, const void *w,
                          const void *b, const void *y, int in)
{
    return (dt == PGD_DTYPE_BF16 || dt == PGD_DTYPE_F16) && (ydt == dt || ydt == PGD_DTYPE_F32) &&
           in % 8 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)w % 16 == 0 &&
           (uintptr_t)b % 16 == 0 && (uintptr_t)y % 4 == 0;
}

/* The configurations worth timing for [n x in] -> out on c. all: token tiles of the power of
 * two >= n (16..256) and half of it; unsplit at one and (tiles up to 128) two CTAs an SM; K
 * split 2, 3, 4, 6 or 8 ways where every part keeps at least 4 stages of 64 inputs and the
 * CTAs fit in one wave: at one CTA an SM up to the SM count, at two past it (up to 24).
 *
 * Not all (what gemm_tune.cu times at start-up): the few that came closest to cuBLASLt on
 * the H200, where the kernel beat it at no shape: one CTA an SM, K split at most 3 ways, and
 * the half tile only past n = 64 (up to 6; 3 at n <= 64). With all of them timed (`pagoda
 * bench gemm`), the fastest of 23 of the 24 rows (the 8B shape's qkv, o, gate_up and down at
 * n = 16..512) was among these; the other, gate_up at n = 64 (two CTAs an SM), was 4% behind
 * cuBLASLt. */
int pgd_cuda__wgmma_candidates(const struct pgd_cuda_ctx *c, int n, int in, int out, bool all,
                               struct pgd_cuda_wgmma_cfg *cand, int max)
{
    static const int SPLITS[6] = { 1, 2, 3, 4, 6, 8 };
    int top = 16;
    while (top < n && top < 256)
        top *= 2;
    const int kts = (in + GW_BK - 1) / GW_BK, sms = c->sm_count > 0 ? c->sm_count : 1;
    int nc = 0;
    for (int bn = top; bn >= 16 && bn >= top / 2; bn /= 2) {
        const int64_t tiles = (int64_t)((n + bn - 1) / bn) * ((out + GW_BM - 1) / GW_BM);
        for (int cps = 1; cps <= (bn <= 128 ? 2 : 1); cps++) {
            for (int si = 0; si < 6 && nc < max; si++) {
                const int s = SPLITS[si];
                if (!all && (cps > 1 || s > 3 || (bn < top && n <= 64)))
                    continue;
                if (s > 1 && (kts / s < 4 || tiles * s > (int64_t)cps * sms ||
                              (cps == 2 && tiles * s <= sms)))
                    continue;
                cand[nc++] = (struct pgd_cuda_wgmma_cfg){ bn, s, cps };
            }
        }
    }
    return nc;
}

int pgd_cuda__wgmma_run(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, const void *w,
                        const void *b, int n, int in, int out, enum pgd_dtype ydt, void *y,
                        struct pgd_cuda_wgmma_cfg cfg, char *err, size_t errlen)
{
    gw_args a = { x, w, b, y, n, in, out, (in + GW_BK - 1) / GW_BK, cfg.split };
    cudaError_t e;
    if (dt == PGD_DTYPE_BF16)
        e = ydt == PGD_DTYPE_F32 ? gw_launch_bn<__nv_bfloat16, float>(c, a, cfg.bn, cfg.cps)
                                 : gw_launch_bn<__nv_bfloat16, __nv_bfloat16>(c, a, cfg.bn, cfg.cps);
    else
        e = ydt == PGD_DTYPE_F32 ? gw_launch_bn<__half, float>(c, a, cfg.bn, cfg.cps)
                                 : gw_launch_bn<__half, __half>(c, a, cfg.bn, cfg.cps);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return pgd_cuda_failf(err, errlen, "wgmma GEMM %s x [%d, %d] @ w [%d, %d]^T -> %s "
                              "(%d-token tiles, K split %d, %d CTAs an SM): %s",
                              pgd_dtype_name(dt), n, in, out, in, pgd_dtype_name(ydt), cfg.bn,
                              cfg.split, cfg.cps, cudaGetErrorString(e));
    }
    return 0;
}

/* ---- the public entry points ------------------------------------------------------------------- */
extern "C" int pgd_cuda_wgmma_available(struct pgd_cuda_ctx *c)
{
    return pgd_cuda__wgmma_ok(c);
}

extern "C" int pgd_cuda_wgmma_configs(struct pgd_cuda_ctx *c, int n, int in, int out, int all,
                                     int *bn, int *split, int *ctas_per_sm, int max)
{
    if (!pgd_cuda__wgmma_ok(c) || max < 1)
        return 0;
    struct pgd_cuda_wgmma_cfg cand[PGD_CUDA_WGMMA_MAX_CANDIDATES];
    const int nc = pgd_cuda__wgmma_candidates(c, n, in, out, all != 0, cand,
                                              max < PGD_CUDA_WGMMA_MAX_CANDIDATES
                                                  ? max : PGD_CUDA_WGMMA_MAX_CANDIDATES);
    for (int i = 0; i < nc; i++) {
        bn[i] = cand[i].bn;
        split[i] = cand[i].split;
        ctas_per_sm[i] = cand[i].cps;
    }
    return nc;
}

extern "C" int pgd_cuda_linear_wgmma(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                                     const void *w, const void *b, int n, int in, int out,
                                     enum pgd_dtype ydt, void *y, int bn, int split,
                                     int ctas_per_sm, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (!pgd_cuda__wgmma_ok(c))
        return pgd_cuda_failf(err, errlen, "wgmma GEMM: needs a compute capability 9.0 device "
                              "and a build with 90 among its CUDA architectures");
    if (!pgd_cuda__wgmma_fits(dt, ydt, x, w, b, y, in))
        return pgd_cuda_failf(err, errlen, "wgmma GEMM: %s x [%d, %d] -> %s: needs bf16 or fp16 "
                              "inputs, an output in their dtype or f32, in a multiple of 8 and "
                              "16-byte aligned x, w and bias", pgd_dtype_name(dt), n, in,
                              pgd_dtype_name(ydt));
    if (bn != 16 && bn != 32 && bn != 64 && bn != 128 && bn != 256)
        return pgd_cuda_failf(err, errlen, "wgmma GEMM: token tile %d (16, 32, 64, 128, 256)", bn);
    if (ctas_per_sm != 1 && !(ctas_per_sm == 2 && bn <= 128))
        return pgd_cuda_failf(err, errlen, "wgmma GEMM: %d CTAs an SM with %d-token tiles (1, or "
                              "2 with tiles up to 128)", ctas_per_sm, bn);
    const int kts = (in + GW_BK - 1) / GW_BK;
    if (split < 1 || split > 8 || split > kts)
        return pgd_cuda_failf(err, errlen, "wgmma GEMM: K split %d (1..8, at most the %d stages "
                              "of 64 inputs)", split, kts);
    return pgd_cuda__wgmma_run(c, dt, x, w, b, n, in, out, ydt, y,
                               (struct pgd_cuda_wgmma_cfg){ bn, split, ctas_per_sm }, err,
                               errlen);
}
