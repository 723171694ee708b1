/* Sampling on the device: the argmax of each logits row (lowest index among ties, as the
 * CPU's argmax) for greedy steps, and the full sampler (below). pgd_cuda_sample first hands
 * the plain rows (temperature and min_p only) to sample_plain.cu's cluster kernel, where the
 * device has clusters, and the general kernel here skips them. */
#include "kernels/cuda/sample.cuh"
#include "runtime/sample/philox.h"

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
    bool done = false;
    if (pgd_cuda__argmax_cluster(c, logits, rows, vocab, out, &done, err, errlen))
        return 1;
    if (done)
        return 0;
    argmax_kernel<<<rows, 1024, 0, c->stream>>>(logits, vocab, out);
    PGD_CUDA_LAUNCHED(err, errlen, "argmax [%d, %d]", rows, vocab);
    return 0;
}

/* ---- sampling -------------------------------------------------------------------------------
 * One block of SAMPLE_THREADS threads per logits row, in a few passes over the row:
 *   1. the processed logits (only when the row has a mask, a bias, a penalty or an allowed-
 *      token bitmask): the raw row copied to the work row (-inf where the bitmask's bit is
 *      clear), masks and biases applied by one thread in request order (so
 *      that repeated bias entries add in the CPU's order), penalties by one thread per
 *      distinct token (the host deduplicated them);
 *   2. max and argmax (lowest id on ties); temperature < 1e-5 stops here;
 *   3. e = exp((x - max) / T) rounded to float (computed in double: glibc's expf is within a
 *      hair of correctly rounded, so this gives the CPU's floats), summed in double, then
 *      p = (float)(e / sum) in the work row;
 *   4. the candidates are the elements of key >= lo, key = (p bits, 20 bits of ~id) so that
 *      descending keys are the CPU's order (p desc, id asc); min_p sets the first lo, then
 *      top_k and top_p are each a radix select on the key (11-bit digits, with count and
 *      mass histograms in shared memory, stopping once the chosen bin holds one element):
 *      the k-th key for top_k, the key where the mass reaches top_p * kept for top_p; the
 *      draw walks the candidates in id order, as the CPU's does (draw_in_id_order with
 *      sample.cuh's walk: each warp's segment's mass, then the warp whose segment holds the
 *      target walks it with warp scans);
 *   5. logprobs of the raw row: log-sum-exp in double, the rank by counting, the top n_top
 *      by a count select on the raw logits' key, sorted by one thread.
 * Masses are 64-bit fixed point (p * 2^62, truncated; integer atomics): sums are exact and
 * independent of order, so the same inputs give the same token every run. Against the CPU,
 * which sums in double in its own order, a cumulative mass may differ by ~1e-13 (plus a
 * one-ulp difference of an exp, when glibc's expf is not correctly rounded): a draw lands on
 * another token only within ~1e-6 of a CDF boundary. */
#define SAMPLE_THREADS 1024
#define RADIX_BINS 2048                 /* 11-bit digits; 2 bins a thread in the scans */
#define KEY_ID_BITS 20
#define KEY_ID_MASK ((1u << KEY_ID_BITS) - 1)
#define KEY_BITS 52

enum { SEL_COUNT = 0, SEL_TOPP = 1 };

struct sample_smem {
    unsigned long long mass[RADIX_BINS];
    unsigned int cnt[RADIX_BINS];
    unsigned long long wm[32];
    unsigned int wc[32];
    double dred[32];
    float fv[32];
    int fi[32];
    int ired[32];
    double dres;
    float fres;
    int ires, ires2;
    /* the radix select's state */
    unsigned long long prefix, pmask, base_m, nb_m, T, key;
    unsigned int base_c, nb_c, bin_c;
    int bin, found, done;
    /* the top logprobs */
    int top_n;
    int pend_seen;                       /* the pending token was among the penalty pairs */
    unsigned long long top_keys[32];
    /* draw_in_id_order's own (not shared with the radix select, whose state it would not
     * need to know: 264 bytes, no change to the blocks an SM holds at 1024 threads) */
    struct {
        unsigned long long warp_mass[32];   /* each warp's segment mass */
        int token;                          /* the drawn id, -1 for none */
    } draw;
};

/* Block reductions (every thread calls; every thread gets the result). */
__device__ static double block_sum_d(double v, sample_smem &s)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(FULL_MASK, v, off);
    if (lane == 0)
        s.dred[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++)
            t += s.dred[w];
        s.dres = t;
    }
    __syncthreads();
    return s.dres;
}

__device__ static int block_sum_i(int v, sample_smem &s)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(FULL_MASK, v, off);
    if (lane == 0)
        s.ired[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        int t = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++)
            t += s.ired[w];
        s.ires2 = t;
    }
    __syncthreads();
    return s.ires2;
}

/* The max of x[0, n) and its lowest index (the CPU's argmax: 0 when nothing beats x[0]). */
__device__ static void block_argmax(const float *x, int n, sample_smem &s, float *mx, int *idx)
{
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = x[i];
        if (v > best || (v == best && i < bi)) {
            best = v;
            bi = i;
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_xor_sync(FULL_MASK, best, off);
        int oi = __shfl_xor_sync(FULL_MASK, bi, off);
        if (ov > best || (ov == best && oi < bi)) {
            best = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        s.fv[warp] = best;
        s.fi[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (s.fv[w] > best || (s.fv[w] == best && s.fi[w] < bi)) {
                best = s.fv[w];
                bi = s.fi[w];
            }
        s.fres = best;
        s.ires = bi == 0x7fffffff ? 0 : bi;
    }
    __syncthreads();
    *mx = s.fres;
    *idx = s.ires;
}

/* The sort key of element i: PROB: probabilities (valid when > 0) with their fixed-point
 * mass; else raw logits (every element valid, mass 0), the float bits made monotonic.
 * Descending keys = value desc, id asc. */
template <bool PROB>
__device__ __forceinline__ bool key_of(const float *v, int i, unsigned long long *key,
                                       unsigned long long *m)
{
    float x = v[i];
    unsigned int b = __float_as_uint(x);
    if (PROB) {
        if (!(x > 0.0f))
            return false;
        *m = __float2ull_rz(x * FX_ONE_F);
    } else {
        b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
        *m = 0;
    }
    *key = ((unsigned long long)b << KEY_ID_BITS) | (unsigned long long)(KEY_ID_MASK - (unsigned)i);
    return true;
}

/* Among the valid elements of v [n] with key >= lo, in descending key order, the first whose
 * inclusive prefix reaches the target: count >= param (SEL_COUNT, param = k), mass >=
 * ceil(param * total mass) (SEL_TOPP, param = top_p); the target is clamped to [1, total].
 * Leaves s.found (0: no such element) and s.key. */
template <bool PROB>
__device__ static void radix_select(const float *v, int n, unsigned long long lo, int mode,
                                    double param, sample_smem &s)
{
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int shifts[5] = { 41, 30, 19, 8, 0 };
    const int widths[5] = { 11, 11, 11, 11, 8 };
    __syncthreads();                        /* everyone has read the previous select's result */
    if (tid == 0) {
        s.prefix = s.pmask = s.base_m = 0;
        s.base_c = 0;
        s.found = 1;
        s.done = 0;
    }
    for (int pass = 0; pass < 5; pass++) {
        const int shift = shifts[pass];
        const unsigned dmask = (1u << widths[pass]) - 1;
        for (int b = tid; b < RADIX_BINS; b += blockDim.x) {
            s.mass[b] = 0;
            s.cnt[b] = 0;
        }
        __syncthreads();
        const unsigned long long prefix = s.prefix, pmask = s.pmask;
        for (int i = tid; i < n; i += blockDim.x) {
            unsigned long long key, m;
            if (!key_of<PROB>(v, i, &key, &m) || key < lo || (key & pmask) != prefix)
                continue;
            unsigned d = (unsigned)(key >> shift) & dmask;
            atomicAdd(&s.cnt[d], 1u);
            if (m)
                atomicAdd(&s.mass[d], m);
        }
        __syncthreads();
        /* A scan over the bins in descending order: thread t holds bins b0 and b0 - 1. */
        const int b0 = RADIX_BINS - 1 - 2 * tid, b1 = b0 - 1;
        const unsigned c0 = s.cnt[b0], c1 = s.cnt[b1];
        const unsigned long long m0 = s.mass[b0], m1 = s.mass[b1];
        const unsigned lc = c0 + c1;
        const unsigned long long lm = m0 + m1;
        unsigned ic = lc;
        unsigned long long im = lm;
        for (int off = 1; off < 32; off <<= 1) {
            unsigned oc = __shfl_up_sync(FULL_MASK, ic, off);
            unsigned long long om = __shfl_up_sync(FULL_MASK, im, off);
            if (lane >= off) {
                ic += oc;
                im += om;
            }
        }
        if (lane == 31) {
            s.wc[warp] = ic;
            s.wm[warp] = im;
        }
        __syncthreads();
        if (tid == 0) {
            unsigned ac = 0;
            unsigned long long am = 0;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) {
                unsigned tc = s.wc[w];
                unsigned long long tm = s.wm[w];
                s.wc[w] = ac;
                s.wm[w] = am;
                ac += tc;
                am += tm;
            }
            if (pass == 0) {
                unsigned long long total = mode == SEL_COUNT ? (unsigned long long)ac : am, T;
                if (mode == SEL_COUNT) {
                    T = (unsigned long long)param;
                } else {
                    const double x = ceil(param * (double)am);
                    T = x >= (double)am ? am : (unsigned long long)x;
                }
                if (T > total)
                    T = total;
                if (T == 0)
                    T = 1;
                s.T = T;
                s.found = total > 0;
            }
            s.bin = -1;
        }
        __syncthreads();
        if (!s.found)
            return;
        {
            const unsigned long long T = s.T;
            const bool by_c = mode == SEL_COUNT;
            const unsigned ec = s.wc[warp] + ic - lc;
            const unsigned long long em = s.wm[warp] + im - lm;
            const unsigned long long base = by_c ? (unsigned long long)s.base_c : s.base_m;
            const unsigned long long before0 = base + (by_c ? ec : em);
            const unsigned long long incl0 = before0 + (by_c ? c0 : m0);
            const unsigned long long incl1 = incl0 + (by_c ? c1 : m1);
            if (before0 < T && T <= incl0) {
                s.bin = b0;
                s.bin_c = c0;
                s.nb_c = s.base_c + ec;
                s.nb_m = s.base_m + em;
            } else if (incl0 < T && T <= incl1) {
                s.bin = b1;
                s.bin_c = c1;
                s.nb_c = s.base_c + ec + c0;
                s.nb_m = s.base_m + em + m0;
            }
        }
        __syncthreads();
        if (tid == 0) {
            if (s.bin < 0) {
                s.found = 0;                /* unreachable: the target lies in some bin */
            } else {
                s.prefix |= (unsigned long long)s.bin << shift;
                s.pmask |= (unsigned long long)dmask << shift;
                s.base_c = s.nb_c;
                s.base_m = s.nb_m;
                s.done = s.bin_c == 1 || pass == 4;
            }
        }
        __syncthreads();
        if (!s.found)
            return;
        if (s.done)
            break;
    }
    /* The chosen bin holds one element: find it (unless every bit is already known). */
    const unsigned long long prefix = s.prefix, pmask = s.pmask;
    if (pmask == (1ull << KEY_BITS) - 1) {
        if (tid == 0)
            s.key = prefix;
    } else {
        for (int i = tid; i < n; i += blockDim.x) {
            unsigned long long key, m;
            if (key_of<PROB>(v, i, &key, &m) && key >= lo && (key & pmask) == prefix)
                s.key = key;
        }
    }
    __syncthreads();
}

/* The draw: among the valid elements of v [n] with key >= lo, walked in id order, the first
 * whose inclusive prefix of mass passes floor(u * total mass) (pgd_cuda__draw_target); -1
 * when there is none. The walk is sample.cuh's (draw_segment_mass, draw_walk), with
 * s.draw as its scratch. */
__device__ static int draw_in_id_order(const float *v, int n, unsigned long long lo, double u,
                                       sample_smem &s)
{
    const int nw = blockDim.x >> 5, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const auto kept = [=](int i) -> unsigned long long {
        unsigned long long key, m;
        return key_of<true>(v, i, &key, &m) && key >= lo ? m : 0;
    };
    const draw_segment g = draw_segment_of(n, nw);
    const unsigned long long part = draw_segment_mass(g, kept);
    if (lane == 0)                          /* s.draw: no earlier user (one draw a block) */
        s.draw.warp_mass[warp] = part;
    if (threadIdx.x == 0)
        s.draw.token = -1;
    __syncthreads();
    unsigned long long total = 0;
    for (int w = 0; w < nw; w++)
        total += s.draw.warp_mass[w];
    if (total > 0) {
        const int id = draw_walk(g, s.draw.warp_mass, 0, pgd_cuda__draw_target(u, total), kept);
        if (id >= 0)
            s.draw.token = id;
    }
    __syncthreads();
    return s.draw.token;
}

__device__ __forceinline__ int key_id(unsigned long long key)
{
    return (int)(KEY_ID_MASK - (unsigned)(key & KEY_ID_MASK));
}

/* x with the row's penalties for a token seen in the context, cnt times in the output:
 * the CPU sampler's operations in its order. */
__device__ __forceinline__ float penalised(float x, const struct pgd_cuda_sample_row &P, int cnt)
{
    if (P.rep != 1.0f)
        x = x > 0.0f ? __fdiv_rn(x, P.rep) : __fmul_rn(x, P.rep);
    if ((P.freq != 0.0f || P.pres != 0.0f) && cnt > 0)
        x = __fsub_rn(x, __fadd_rn(__fmul_rn(P.freq, (float)cnt), P.pres));
    return x;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(const float *logits, int V, const struct pgd_cuda_sample_row *params,
              const int32_t *pool, const int32_t *batch_ids, float *work,
              struct pgd_cuda_sample_out *out, int skip_plain)
{
    __shared__ sample_smem s;
    const int tid = threadIdx.x;
    const struct pgd_cuda_sample_row P = params[blockIdx.x];
    if (skip_plain && pgd_cuda__sample_row_plain(P))
        return;                              /* sample_plain.cu's kernel drew it */
    const float *raw = logits + (size_t)blockIdx.x * V;
    float *w = work + (size_t)blockIdx.x * V;
    struct pgd_cuda_sample_out *o = &out[blockIdx.x];
    if (P.kind != PGD_CUDA_ROW_SAMPLE && P.kind != PGD_CUDA_ROW_TARGET) {
        if (tid == 0) {
            o->token = -1;
            o->rank = 0;
            o->logprob = 0.0f;
            o->n_top = 0;
        }
        return;
    }
    int token = -1;
    if (P.kind == PGD_CUDA_ROW_SAMPLE) {
        const float *proc = raw;
        if (P.n_mask > 0 || P.n_bias > 0 || P.n_pen > 0 || P.pend_at >= 0 ||
            P.allow_off >= 0) {
            if (P.allow_off >= 0) {
                /* structured output first: tokens whose bit is clear cannot be sampled */
                const uint32_t *allow = (const uint32_t *)(pool + P.allow_off);
                for (int i = tid; i < V; i += blockDim.x)
                    w[i] = (allow[i >> 5] >> (i & 31)) & 1u ? raw[i] : -INFINITY;
            } else {
                for (int i = tid; i < V; i += blockDim.x)
                    w[i] = raw[i];
            }
            __syncthreads();
            const int32_t *q = pool + P.pool_off;
            if (tid == 0) {
                s.pend_seen = 0;
                for (int j = 0; j < P.n_mask; j++)
                    if (q[j] >= 0 && q[j] < V)
                        w[q[j]] = -INFINITY;
                q += P.n_mask;
                for (int j = 0; j < P.n_bias; j++)
                    if (q[2 * j] >= 0 && q[2 * j] < V)
                        w[q[2 * j]] = __fadd_rn(w[q[2 * j]], __int_as_float(q[2 * j + 1]));
            }
            __syncthreads();
            q = pool + P.pool_off + P.n_mask + 2 * P.n_bias;
            /* The pending token (pend_at): one more output occurrence of its pair's id, or a
             * pair (id, 1) of its own when the context had it nowhere. */
            const int pend = P.pend_at >= 0 ? batch_ids[P.pend_at] : -1;
            for (int j = tid; j < P.n_pen; j += blockDim.x) {
                int t = q[2 * j], cnt = q[2 * j + 1];
                if (t < 0 || t >= V)
                    continue;
                if (t == pend) {
                    cnt++;
                    s.pend_seen = 1;
                }
                w[t] = penalised(w[t], P, cnt);
            }
            __syncthreads();
            if (tid == 0 && pend >= 0 && pend < V && !s.pend_seen)
                w[pend] = penalised(w[pend], P, 1);
            __syncthreads();
            proc = w;
        }
        float mx;
        int amax;
        block_argmax(proc, V, s, &mx, &amax);
        token = amax;
        if (!(P.temperature < 1e-5f) && mx != -INFINITY) {
            const float inv_t = __fdiv_rn(1.0f, P.temperature);
            double part = 0.0;
            for (int i = tid; i < V; i += blockDim.x) {
                float a = __fmul_rn(__fsub_rn(proc[i], mx), inv_t);
                float e = (float)exp((double)a);
                w[i] = e;
                part += (double)e;
            }
            const double sum = block_sum_d(part, s);
            const float pmax = (float)(1.0 / sum);
            const float floor_p = P.min_p > 0.0f ? __fmul_rn(P.min_p, pmax) : 0.0f;
            for (int i = tid; i < V; i += blockDim.x)
                w[i] = (float)((double)w[i] / sum);
            __syncthreads();
            unsigned fb = __float_as_uint(floor_p);
            unsigned long long lo = (unsigned long long)(fb > 0 ? fb : 1u) << KEY_ID_BITS;
            if (P.top_k > 0) {
                radix_select<true>(w, V, lo, SEL_COUNT, (double)P.top_k, s);
                if (s.found)
                    lo = s.key;
            }
            if (P.top_p < 1.0f) {
                radix_select<true>(w, V, lo, SEL_TOPP, (double)P.top_p, s);
                if (s.found)
                    lo = s.key;
            }
            const int drawn = draw_in_id_order(w, V, lo,
                                               pgd__sample_uniform(P.seed, P.child, P.draw), s);
            if (drawn >= 0)
                token = drawn;
        }
    }
    int k = 0, rank = 0;
    float lp = 0.0f;
    if (P.kind == PGD_CUDA_ROW_TARGET || P.n_top >= 0) {
        const int tok = P.kind == PGD_CUDA_ROW_TARGET ? P.target : token;
        float mx;
        int amax;
        block_argmax(raw, V, s, &mx, &amax);
        double part = 0.0;
        const float xt = raw[tok];
        int above = 0;
        for (int i = tid; i < V; i += blockDim.x) {
            part += exp((double)raw[i] - (double)mx);
            above += raw[i] > xt;
        }
        const double lse = (double)mx + log(block_sum_d(part, s));
        rank = 1 + block_sum_i(above, s);
        lp = (float)((double)xt - lse);
        k = P.n_top < V ? P.n_top : V;
        if (k > PGD_CUDA_MAX_TOP)
            k = PGD_CUDA_MAX_TOP;
        if (k > 0) {
            radix_select<false>(raw, V, 0, SEL_COUNT, (double)k, s);
            const unsigned long long K = s.key;
            if (tid == 0)
                s.top_n = 0;
            __syncthreads();
            for (int i = tid; i < V; i += blockDim.x) {
                unsigned long long key, m;
                key_of<false>(raw, i, &key, &m);
                if (key >= K) {
                    int at = atomicAdd(&s.top_n, 1);
                    if (at < 32)
                        s.top_keys[at] = key;
                }
            }
            __syncthreads();
            if (tid == 0) {
                int m = s.top_n < k ? s.top_n : k;
                for (int i = 1; i < m; i++) {      /* descending keys */
                    unsigned long long x = s.top_keys[i];
                    int j = i;
                    for (; j > 0 && s.top_keys[j - 1] < x; j--)
                        s.top_keys[j] = s.top_keys[j - 1];
                    s.top_keys[j] = x;
                }
                for (int i = 0; i < m; i++) {
                    int id = key_id(s.top_keys[i]);
                    o->top_id[i] = id;
                    o->top_lp[i] = (float)((double)raw[id] - lse);
                }
                k = m;
            }
        }
    }
    if (tid == 0) {
        o->token = token;
        o->rank = rank;
        o->logprob = lp;
        o->n_top = k;
    }
}

extern "C" int pgd_cuda_sample(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                               const struct pgd_cuda_sample_row *params, const int32_t *pool,
                               const int32_t *batch_ids, float *work, int work_rows,
                               struct pgd_cuda_sample_out *out, char *err, size_t errlen)
{
    if (vocab <= 0 || vocab > PGD_CUDA_SAMPLE_MAX_VOCAB || work_rows <= 0)
        return pgd_cuda_failf(err, errlen, "sample [%d, %d]: vocab must be in [1, %d] and "
                              "work rows (%d) positive", rows, vocab, PGD_CUDA_SAMPLE_MAX_VOCAB,
                              work_rows);
    bool plain = false;
    if (pgd_cuda__sample_plain(c, logits, rows, vocab, params, out, &plain, err, errlen))
        return 1;
    for (int r0 = 0; r0 < rows; r0 += work_rows) {
        int n = rows - r0 < work_rows ? rows - r0 : work_rows;
        sample_kernel<<<n, SAMPLE_THREADS, 0, c->stream>>>(logits + (size_t)r0 * vocab, vocab,
                                                           params + r0, pool, batch_ids, work,
                                                           out + r0, plain);
        PGD_CUDA_LAUNCHED(err, errlen, "sample [%d, %d] rows %d..%d", rows, vocab, r0, r0 + n);
    }
    return 0;
}
