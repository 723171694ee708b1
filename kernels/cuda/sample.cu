/* Greedy sampling on the device: the argmax of each logits row (lowest index among ties,
 * as the CPU's argmax). */
#include "kernels/cuda/common.cuh"

__global__ void argmax_kernel(const float *logits, int vocab, int32_t *out)
{
    __shared__ float bv[32];
    __shared__ int bi[32];
    const float *row = logits + (int64_t)blockIdx.x * vocab;
    float best = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        float v = row[i];
        if (v > best || (v == best && i < idx)) {
            best = v;
            idx = i;
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, off);
        int oi = __shfl_xor_sync(0xffffffffu, idx, off);
        if (ov > best || (ov == best && oi < idx)) {
            best = ov;
            idx = oi;
        }
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) {
        bv[warp] = best;
        bi[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)blockDim.x / 32; w++)
            if (bv[w] > best || (bv[w] == best && bi[w] < idx)) {
                best = bv[w];
                idx = bi[w];
            }
        /* A row of NaNs has no maximum: report index 0 as the CPU does. */
        out[blockIdx.x] = idx == 0x7fffffff ? 0 : idx;
    }
}

extern "C" int pgd_cuda_argmax(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                               int32_t *out, char *err, size_t errlen)
{
    if (rows == 0)
        return 0;
    argmax_kernel<<<rows, 1024, 0, c->stream>>>(logits, vocab, out);
    PGD_CUDA_LAUNCHED(err, errlen, "argmax [%d, %d]", rows, vocab);
    return 0;
}
