/* Hopper building blocks for hand-written tensor-core kernels (internal to kernels/cuda):
 * on sm_90a the warpgroup MMA (wgmma.mma_async) with both operands read from shared memory
 * through matrix descriptors, its fences, and the proxy fence that makes copies written by
 * threads visible to it, the register split and the mbarriers of a warp-specialized kernel
 * (quant_wq_fold.cu's), and the tensor copy engine's loads (TMA) that complete on mbarriers;
 * the asynchronous 16-byte copies that fill the tiles (cp.async, sm_80+: smem_u32,
 * cp_async16, cp_async_commit, cp_async_wait) come from cp_async.cuh, included here.
 * gemm_wgmma.cu, attention_wgmma.cu and the W4 GEMMs (quant_wq_gemm.cuh) use them, and, on
 * the host, whether a kernel's sm_90a code runs on a device (sm90_kernel_built), asked once
 * a device (sm90_once).
 *
 * The tile layout the descriptors describe ("128-byte swizzle, K-major"): rows of 64 16-bit
 * elements (128 bytes), row r's 16-byte chunk c stored at chunk c ^ (r % 8), groups of 8 rows
 * 1024 bytes apart, the tile 1024-byte aligned. The k16 step s of such a tile starts 32 s
 * bytes in: its descriptor is the tile's plus 2 s (the address field counts 16 bytes). */
#ifndef PGD_KERNELS_CUDA_SM90_CUH
#define PGD_KERNELS_CUDA_SM90_CUH

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cp_async.cuh"
#include <atomic>

/* The wgmma code exists only in the sm_90a target (the build compiles files that use it for
 * 90a where 90 is among the architectures: kernels/cuda/local.mk). */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PGD_SM90A 1
#endif

/* The shared-memory descriptor of a 128-byte-swizzled K-major tile at shared address a
 * (1024-byte aligned): start >> 4, leading byte offset 16 (unused by this layout), stride
 * byte offset 1024 (the next 8 rows), swizzle mode 1 (128 bytes). */
__device__ __forceinline__ uint64_t sm90_desc_sw128(uint32_t a)
{
    return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

#ifdef PGD_SM90A
__device__ __forceinline__ void sm90_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void sm90_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void sm90_wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Writes by this thread to shared memory (cp.async included) become visible to the async
 * proxy (wgmma's operand reads) once a barrier follows. */
__device__ __forceinline__ void sm90_fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* A warp-specialized kernel's register split: each warpgroup of a role moves its threads'
 * register count to N (a multiple of 8, 24..256), down for a producer, up for consumers. */
template <int N> __device__ __forceinline__ void sm90_setmaxnreg_dec()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void sm90_setmaxnreg_inc()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* mbarriers (a 64-bit word in shared memory at address `bar`): the hand-off between a
 * warp-specialized kernel's producer and consumers. A barrier's phase completes when its
 * expected count of arrivals has come; phases alternate parity 0, 1, 0, ... */
__device__ __forceinline__ void sm90_mbar_init(uint32_t bar, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* Ends a barrier's life: its memory may then be used for anything else. */
__device__ __forceinline__ void sm90_mbar_inval(uint32_t bar)
{
    asm volatile("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
/* One arrival of this thread (release: its earlier reads and writes come before). */
__device__ __forceinline__ void sm90_mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* One arrival of this thread that also raises the phase's expected transaction bytes by
 * `bytes` (the bulk copies it is about to issue, which count their bytes off as they land):
 * the phase completes once both the arrivals and the bytes are in. */
__device__ __forceinline__ void sm90_mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
/* Makes barriers just initialized by this thread visible to the other threads and to the
 * copy engine (the async proxy) once a block barrier follows. */
__device__ __forceinline__ void sm90_fence_mbar_init()
{
    asm volatile("fence.mbarrier_init.release.cluster;\n"
                 "fence.proxy.async.shared::cta;\n" ::: "memory");
}
/* The tensor copy engine (TMA): the box at coordinates {c0, c1} (c0 the inner, contiguous
 * dimension, in elements) of the 2D tensor the map at generic address `map` describes (a
 * __grid_constant__ kernel parameter), into shared memory at dst in the map's layout and
 * swizzle, elements outside the tensor filled with zeros; its bytes complete on mbarrier
 * `bar`. One thread issues it. */
__device__ __forceinline__ void sm90_tma_load_2d(uint32_t dst, const void *map, int c0, int c1,
                                                 uint32_t bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
                 : "memory");
}
/* Waits until the phase of parity `parity` has completed (acquire: what the arrivals
 * released is visible after it). */
__device__ __forceinline__ void sm90_mbar_wait(uint32_t bar, uint32_t parity)
{
    asm volatile("{\n.reg .pred done;\n"
                 "wait_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra wait_%=;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
#endif

/* ---- the host side: whether a kernel of these files runs on a device ------------------- */
/* probe(), asked once for each of devices 0..63 (asked / able: bit masks of the devices
 * asked and found able, one pair a caller; false past 63); a failed look-up inside it is no
 * error of the caller's. */
template <typename F>
static inline bool sm90_once(std::atomic<uint64_t> &asked, std::atomic<uint64_t> &able,
                             int device, F probe)
{
    const uint64_t bit = device >= 0 && device < 64 ? 1ull << device : 0;
    if (!bit)
        return false;
    if (asked.load() & bit)
        return (able.load() & bit) != 0;
    const bool ok = probe();
    cudaGetLastError();
    if (ok)
        able.fetch_or(bit);
    asked.fetch_or(bit);
    return ok;
}

/* Whether `kernel` runs its sm_90a code on `device`: compute capability 9.0 and the code
 * built for it (binaryVersion 90: the build had 90 among its architectures); *fa (NULL: not
 * wanted) the kernel's attributes. */
template <typename K>
static inline bool sm90_kernel_built(int device, K kernel, cudaFuncAttributes *fa = NULL)
{
    int major = 0, minor = 0;
    cudaFuncAttributes own;
    cudaFuncAttributes *a = fa ? fa : &own;
    return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) ==
               cudaSuccess &&
           cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) ==
               cudaSuccess &&
           major == 9 && minor == 0 && cudaFuncGetAttributes(a, kernel) == cudaSuccess &&
           a->binaryVersion == 90;
}

/* Keeps the compiler from moving reads or writes of r across a wgmma fence or wait (the
 * accumulators are written by the tensor cores while the instructions are in flight). */
template <int N>
__device__ __forceinline__ void sm90_reg_fence(float (&r)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(r[i])::"memory");
}
/* The same for registers a wgmma reads (A fragments from registers). */
template <int N>
__device__ __forceinline__ void sm90_reg_fence(uint32_t (&r)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(r[i])::"memory");
}

#endif
