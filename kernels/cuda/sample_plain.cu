/* Sampling plain rows (pgd_cuda__sample_row_plain: temperature and min_p only, what most
 * requests and every benchmark ask for) with a cluster of SP_CLUSTER blocks a row, on
 * sm_90+. sample.cu's general kernel gives a row one block, which streams the 128k-float row
 * from memory pass after pass (max, exp, normalize, draw) with one SM's worth of loads in
 * flight: ~0.6 ms a row at vocab 128,256, whatever the batch up to one row an SM. Here each
 * block of the cluster loads its slice of the row once into shared memory ([chunk] floats,
 * chunk = ceil(vocab / SP_CLUSTER)) and every pass reads it there; the blocks combine their
 * max, exp sum and candidate mass through distributed shared memory, one cluster barrier
 * each.
 *
 * The arithmetic is the general kernel's and the CPU's (runtime/sample/sampler.c): max and
 * argmax (lowest id on ties); temperature below 1e-5 stops there; e = exp((x - max) / T)
 * computed in double and rounded to float, summed in double (the cluster's ranks in order),
 * p = (float)(e / sum); the candidates are p > 0 and p >= min_p * (float)(1 / sum); the
 * draw walks them in id order (sample.cuh). Within a block, warp w owns the ids
 * [w * seg, (w + 1) * seg) of the slice (seg a multiple of 32, read lane by lane: no bank
 * conflicts), so the block whose slice holds the target finds its warp from the warps'
 * sums and that warp walks its segment with warp scans. */
#include "kernels/cuda/sample.cuh"
#include "runtime/sample/philox.h"
#include <atomic>
#include <cooperative_groups.h>

#define SP_CLUSTER 8
#define SP_THREADS 512
#define SP_WARPS (SP_THREADS / 32)

/* What a block publishes to its cluster (read by the others through distributed shared
 * memory), and its warps' partial results. */
struct sp_smem {
    float wmax[SP_WARPS];
    int widx[SP_WARPS];
    double wsum[SP_WARPS];
    unsigned long long wmass[SP_WARPS];
    float bmax;                      /* the slice's max logit and its lowest id */
    int bidx;
    double bsum;                     /* the slice's sum of e */
    unsigned long long bmass;        /* the slice's candidate mass */
};

/* The better of (v, i) and (ov, oi): larger value, lower id on ties. */
__device__ __forceinline__ void sp_better(float ov, int oi, float *v, int *i)
{
    if (ov > *v || (ov == *v && oi < *i)) {
        *v = ov;
        *i = oi;
    }
}

/* The block's max and lowest argmax from each thread's (best, bi), into s.bmax and s.bidx
 * (thread 0's, before the cluster barrier that publishes them). By reference: thread 0's
 * (best, bi) end as the block's, which argmax_cluster_kernel's rank 0 goes on from. */
__device__ __forceinline__ void sp_publish_argmax(float &best, int &bi, sp_smem &s)
{
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int off = 16; off > 0; off >>= 1)
        sp_better(__shfl_xor_sync(FULL_MASK, best, off), __shfl_xor_sync(FULL_MASK, bi, off),
                  &best, &bi);
    if (lane == 0) {
        s.wmax[warp] = best;
        s.widx[warp] = bi;
    }
    __syncthreads();
    if (tid == 0) {
        for (int w = 1; w < SP_WARPS; w++)
            sp_better(s.wmax[w], s.widx[w], &best, &bi);
        s.bmax = best;
        s.bidx = bi;
    }
}

__global__ void __launch_bounds__(SP_THREADS)
sample_plain_kernel(const float *logits, int V, int chunk, const struct pgd_cuda_sample_row *params,
                    struct pgd_cuda_sample_out *out)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    extern __shared__ float x[];     /* [chunk]: the slice's logits, then e, then p */
    __shared__ sp_smem s;
    cg::cluster_group cl = cg::this_cluster();
    const int row = (int)(blockIdx.x / SP_CLUSTER);
    const int rank = (int)cl.block_rank();
    const struct pgd_cuda_sample_row P = params[row];
    if (!pgd_cuda__sample_row_plain(P))
        return;                      /* the whole cluster: the general kernel's row */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int c0 = rank * chunk, n = max(0, min(V - c0, chunk));
    const float *raw = logits + (size_t)row * V + c0;

    /* Pass 1: load the slice; its max and lowest argmax. */
    float best = -INFINITY;
    int bi = 0x7fffffff;
#pragma unroll 8
    for (int i = tid; i < n; i += SP_THREADS) {
        const float v = raw[i];
        x[i] = v;
        sp_better(v, c0 + i, &best, &bi);
    }
    sp_publish_argmax(best, bi, s);
    cl.sync();
    float mx = -INFINITY;
    int amax = 0x7fffffff;
    for (int r = 0; r < SP_CLUSTER; r++) {
        const sp_smem *o = cl.map_shared_rank(&s, r);
        sp_better(o->bmax, o->bidx, &mx, &amax);
    }
    if (amax == 0x7fffffff)
        amax = 0;                    /* nothing beats -inf: the CPU's argmax gives 0 */
    const bool sample = !(P.temperature < 1e-5f) && mx != -INFINITY;   /* the same everywhere */

    unsigned long long before = 0, total = 0;
    const draw_segment g = draw_segment_of(n, SP_WARPS);
    float floor_p = 0.0f;
    /* the candidates' mass (reads p and floor_p: pass 3 sets them) */
    const auto kept = [&](int i) -> unsigned long long {
        const float p = x[i];
        return p > 0.0f && p >= floor_p ? __float2ull_rz(p * FX_ONE_F) : 0;
    };
    if (sample) {
        /* Pass 2: e = exp((x - max) / T) into the slice; the row's sum. */
        const float inv_t = __fdiv_rn(1.0f, P.temperature);
        double part = 0.0;
        for (int i = tid; i < n; i += SP_THREADS) {
            const float e = (float)exp((double)__fmul_rn(__fsub_rn(x[i], mx), inv_t));
            x[i] = e;
            part += (double)e;
        }
        for (int off = 16; off > 0; off >>= 1)
            part += __shfl_xor_sync(FULL_MASK, part, off);
        if (lane == 0)
            s.wsum[warp] = part;
        __syncthreads();
        if (tid == 0) {
            double t = 0.0;
            for (int w = 0; w < SP_WARPS; w++)
                t += s.wsum[w];
            s.bsum = t;
        }
        cl.sync();
        double sum = 0.0;
        for (int r = 0; r < SP_CLUSTER; r++)
            sum += cl.map_shared_rank(&s, r)->bsum;

        /* Pass 3: p = e / sum into the slice; each warp's candidate mass over its segment
         * (its lanes read back the very ids they wrote: no barrier between). */
        const float pmax = (float)(1.0 / sum);
        floor_p = P.min_p > 0.0f ? __fmul_rn(P.min_p, pmax) : 0.0f;
        for (int i = g.b + lane; i < g.e; i += 32)
            x[i] = (float)((double)x[i] / sum);
        const unsigned long long m = draw_segment_mass(g, kept);
        if (lane == 0)
            s.wmass[warp] = m;
        __syncthreads();
        if (tid == 0) {
            unsigned long long t = 0;
            for (int w = 0; w < SP_WARPS; w++)
                t += s.wmass[w];
            s.bmass = t;
        }
        cl.sync();
        for (int r = 0; r < SP_CLUSTER; r++) {
            const unsigned long long b = cl.map_shared_rank(&s, r)->bmass;
            if (r < rank)
                before += b;
            total += b;
        }
    }
    cl.sync();                       /* no block leaves while another reads its shared memory */
    struct pgd_cuda_sample_out *o = &out[row];
    if (rank == 0 && tid == 0) {
        o->rank = 0;
        o->logprob = 0.0f;
        o->n_top = 0;
        if (!sample || total == 0)
            o->token = amax;
    }
    if (!sample || total == 0)
        return;
    /* The warp whose range of the cluster's prefix holds the target walks its segment (in
     * whichever block's slice holds it). */
    const unsigned long long T = pgd_cuda__draw_target(
        pgd__sample_uniform(P.seed, P.child, P.draw), total);
    const int id = draw_walk(g, s.wmass, before, T, kept);
    if (id >= 0)
        o->token = c0 + id;
#else
    __trap();                        /* launched only on devices of compute capability 9.0+ */
#endif
}

/* Greedy rows (pgd_cuda_argmax): the same slices and pass 1 without the shared-memory copy;
 * rank 0 combines the cluster's slices. out[row]: the lowest id of the max (0 when nothing
 * beats -inf, as the CPU's argmax). */
__global__ void __launch_bounds__(SP_THREADS)
argmax_cluster_kernel(const float *logits, int V, int chunk, int32_t *out)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    __shared__ sp_smem s;
    cg::cluster_group cl = cg::this_cluster();
    const int row = (int)(blockIdx.x / SP_CLUSTER), rank = (int)cl.block_rank();
    const int tid = threadIdx.x;
    const int c0 = rank * chunk, n = max(0, min(V - c0, chunk));
    const float *raw = logits + (size_t)row * V + c0;
    float best = -INFINITY;
    int bi = 0x7fffffff;
#pragma unroll 8
    for (int i = tid; i < n; i += SP_THREADS)
        sp_better(raw[i], c0 + i, &best, &bi);
    sp_publish_argmax(best, bi, s);
    cl.sync();
    if (rank == 0 && tid == 0) {
        for (int r = 1; r < SP_CLUSTER; r++) {
            const sp_smem *o = cl.map_shared_rank(&s, r);
            sp_better(o->bmax, o->bidx, &best, &bi);
        }
        out[row] = bi == 0x7fffffff ? 0 : bi;
    }
    cl.sync();                       /* rank 0 has read every slice's result */
#else
    __trap();                        /* launched only on devices of compute capability 9.0+ */
#endif
}

/* Whether the device has clusters, and the shared memory a block may opt into; asked once a
 * device (devices 0..63). */
struct sp_device {
    std::atomic<int> known;          /* 0 not yet, 1 known */
    bool clusters;
    int smem_optin;
    std::atomic<int> smem_set;       /* the dynamic shared memory granted so far */
};
static struct sp_device sp_devices[64];

/* c's device (NULL for one past 63), its facts asked on first use. */
static struct sp_device *sp_device_of(const struct pgd_cuda_ctx *c)
{
    if (c->device < 0 || c->device >= 64)
        return NULL;
    struct sp_device *d = &sp_devices[c->device];
    if (!d->known.load()) {
        int major = 0, optin = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device) !=
                cudaSuccess ||
            cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device) !=
                cudaSuccess)
            major = optin = 0;
        d->clusters = major >= 9;
        d->smem_optin = optin - (int)sizeof(sp_smem) - 1024;
        d->known.store(1);
    }
    return d;
}

/* A launch of rows clusters of SP_CLUSTER blocks with smem bytes of dynamic shared memory;
 * attr: its one attribute's storage. */
static cudaLaunchConfig_t sp_config(struct pgd_cuda_ctx *c, int rows, int smem,
                                    cudaLaunchAttribute *attr)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)rows * SP_CLUSTER);
    cfg.blockDim = dim3(SP_THREADS);
    cfg.dynamicSmemBytes = (size_t)smem;
    cfg.stream = c->stream;
    attr->id = cudaLaunchAttributeClusterDimension;
    attr->val.clusterDim.x = SP_CLUSTER;
    attr->val.clusterDim.y = 1;
    attr->val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cfg;
}

int pgd_cuda__sample_plain(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                           const struct pgd_cuda_sample_row *params,
                           struct pgd_cuda_sample_out *out, bool *done, char *err, size_t errlen)
{
    *done = false;
    struct sp_device *d = sp_device_of(c);
    if (rows <= 0 || !d)
        return 0;
    const int chunk = (vocab + SP_CLUSTER - 1) / SP_CLUSTER;
    const int smem = chunk * (int)sizeof(float);
    if (!d->clusters || smem > d->smem_optin)
        return 0;                    /* the general kernel takes every row */
    if (smem > 48 << 10 && smem > d->smem_set.load()) {
        cudaError_t e = cudaFuncSetAttribute(sample_plain_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess)
            return pgd_cuda_failf(err, errlen, "sample (plain rows) [%d, %d]: %d bytes of shared "
                                  "memory a block: %s", rows, vocab, smem, cudaGetErrorString(e));
        d->smem_set.store(smem);
    }
    cudaLaunchAttribute attr;
    cudaLaunchConfig_t cfg = sp_config(c, rows, smem, &attr);
    cudaError_t e = cudaLaunchKernelEx(&cfg, sample_plain_kernel, logits, vocab, chunk, params, out);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "sample (plain rows) [%d, %d]: launching %d clusters of "
                              "%d blocks: %s", rows, vocab, rows, SP_CLUSTER, cudaGetErrorString(e));
    *done = true;
    return 0;
}

int pgd_cuda__argmax_cluster(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                             int32_t *out, bool *done, char *err, size_t errlen)
{
    *done = false;
    struct sp_device *d = sp_device_of(c);
    if (rows <= 0 || !d || !d->clusters)
        return 0;
    cudaLaunchAttribute attr;
    cudaLaunchConfig_t cfg = sp_config(c, rows, 0, &attr);
    cudaError_t e = cudaLaunchKernelEx(&cfg, argmax_cluster_kernel, logits, vocab,
                                       (vocab + SP_CLUSTER - 1) / SP_CLUSTER, out);
    if (e != cudaSuccess)
        return pgd_cuda_failf(err, errlen, "argmax [%d, %d]: launching %d clusters of %d blocks: "
                              "%s", rows, vocab, rows, SP_CLUSTER, cudaGetErrorString(e));
    *done = true;
    return 0;
}
