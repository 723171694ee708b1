/* The CUDA backend's C-callable entry points, one family per .cu file. Every CUDA call is
 * checked; a failure returns non-zero (or NULL) and writes a message into err naming the
 * call or kernel and the shapes.
 *
 * Activations and weights are 16-bit (PGD_DTYPE_BF16 or PGD_DTYPE_F16; F32 is accepted by
 * the elementwise kernels and the GEMMs too), row-major, in device memory; every kernel
 * accumulates in float32. Kernels run on the stream of a struct pgd_cuda_ctx and are
 * asynchronous: an execution error surfaces at the next pgd_cuda_sync(). */
#ifndef PGD_KERNELS_CUDA_H
#define PGD_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <pagoda/tensor.h>
#include <pagoda/ops.h>
#include <pagoda/quant.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Internal to libpagoda: hidden, so that the shared object's dynamic table holds only the
 * public API of include/pagoda (the tests and the tool link the convenience library and
 * still call these). */
#pragma GCC visibility push(hidden)

/* ---- device.cu: devices, memory, copies, the context ---------------------------------- */
/* Number of usable CUDA devices (0 when there is no driver or no GPU). */
int pgd_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" into buf; non-zero when there is no device. */
int pgd_cuda_describe(int device, char *buf, size_t buflen);
/* Zeroed device memory or NULL. */
void *pgd_cuda_malloc(size_t bytes);
void pgd_cuda_free(void *p);
/* Page-locked host memory (for staging), or NULL. */
void *pgd_cuda_host_alloc(size_t bytes);
void pgd_cuda_host_free(void *p);
/* Synchronous copies (any host memory). */
int pgd_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, char *err, size_t errlen);
int pgd_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, char *err, size_t errlen);
/* Free and total device memory in bytes. */
int pgd_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, char *err, size_t errlen);

/* Host -> device uploads of large pageable buffers (weights) through two pinned staging
 * buffers, so that the next chunk is staged while the previous one is copied. */
struct pgd_cuda_stager;
struct pgd_cuda_stager *pgd_cuda_stager_create(size_t chunk_bytes, char *err, size_t errlen);
int pgd_cuda_stager_upload(struct pgd_cuda_stager *s, void *dst, const void *src, size_t bytes,
                           char *err, size_t errlen);
void pgd_cuda_stager_destroy(struct pgd_cuda_stager *s);

/* One per runner: a stream, the cuBLASLt handle, its workspace and its algorithm cache,
 * and the attention planner's buffers. */
struct pgd_cuda_ctx;
int pgd_cuda_ctx_create(struct pgd_cuda_ctx **out, char *err, size_t errlen);
void pgd_cuda_ctx_destroy(struct pgd_cuda_ctx *c);
/* Waits for the context's stream; reports the first execution error. */
int pgd_cuda_sync(struct pgd_cuda_ctx *c, char *err, size_t errlen);
/* Stream-ordered copies (src / dst on the host must be pinned to overlap). */
int pgd_cuda_copy_h2d_async(struct pgd_cuda_ctx *c, void *dst, const void *src, size_t bytes,
                            char *err, size_t errlen);
int pgd_cuda_copy_d2h_async(struct pgd_cuda_ctx *c, void *dst, const void *src, size_t bytes,
                            char *err, size_t errlen);
/* An event on the context's stream: record it behind the work queued so far, then wait on
 * the host for that work (async steps: a step's results are in once its event is). */
struct pgd_cuda_event;
int pgd_cuda_event_create(struct pgd_cuda_event **out, char *err, size_t errlen);
void pgd_cuda_event_destroy(struct pgd_cuda_event *e);
int pgd_cuda_event_record(struct pgd_cuda_ctx *c, struct pgd_cuda_event *e, char *err,
                          size_t errlen);
/* Waits for the work before the last record; reports the first execution error. */
int pgd_cuda_event_sync(struct pgd_cuda_event *e, char *err, size_t errlen);
int pgd_cuda_sm_count(const struct pgd_cuda_ctx *c);
/* The context's stream (a cudaStream_t), for the NCCL collectives of tensor parallelism. */
void *pgd_cuda_ctx_stream(struct pgd_cuda_ctx *c);
/* Stream-ordered device-to-device copy of height rows of width bytes, rows dpitch / spitch
 * bytes apart (the logits columns of each tensor-parallel rank into the whole rows). */
int pgd_cuda_copy_2d_async(struct pgd_cuda_ctx *c, void *dst, size_t dpitch, const void *src,
                           size_t spitch, size_t width, size_t height, char *err, size_t errlen);
/* Device-to-device copy bandwidth over `bytes` (counting bytes read plus written), the
 * median of `iters` timed copies, in GB/s. */
int pgd_cuda_bench_copy(struct pgd_cuda_ctx *c, size_t bytes, int iters, double *gbps,
                        char *err, size_t errlen);
/* Fills n elements of dtype at p with uniform values in [lo, hi) from a counter hash
 * (c == NULL: on the default stream, synchronously). */
int pgd_cuda_fill_random(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *p, size_t n,
                         uint64_t seed, float lo, float hi, char *err, size_t errlen);

/* ---- embed.cu: row gathers ---------------------------------------------------------- */
/* out[i, :] = table[ids[i], :]   table [*, d], out [n, d], ids [n] on the device. The
 * embedding lookup and the logits row gather. */
int pgd_cuda_gather_rows(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *table,
                         const int32_t *ids, int n, int d, void *out, char *err, size_t errlen);
/* out[i, :] = table[ids[i] - row0, :] for ids in [row0, row0 + rows), zeros for the others:
 * the embedding lookup over a vocabulary shard (tensor parallelism). */
int pgd_cuda_gather_rows_shard(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *table,
                               int64_t row0, int64_t rows, const int32_t *ids, int n, int d,
                               void *out, char *err, size_t errlen);
/* Async steps' pending tokens: token_ids[pairs[2i]] = src[pairs[2i + 1] * stride] for
 * i < n (pairs: device [n, 2], batch row then the row of the step before; src: the ids
 * that step sampled, stride int32s apart), before the embedding reads them. */
int pgd_cuda_put_pending(struct pgd_cuda_ctx *c, int32_t *token_ids, const int32_t *pairs,
                         int n, const int32_t *src, int stride, char *err, size_t errlen);

/* ---- norm.cu: RMSNorm, fused residual add, residual add ------------------------------ */
/* out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w   (out may alias x) */
int pgd_cuda_rmsnorm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, const void *w,
                     float eps, int64_t rows, int d, void *out, char *err, size_t errlen);
/* residual += delta (rounded to dt); out = rmsnorm(residual) * w */
int pgd_cuda_add_rmsnorm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *residual,
                         const void *delta, const void *w, float eps, int64_t rows, int d,
                         void *out, char *err, size_t errlen);
/* pgd_cuda_add_rmsnorm (residual set) or pgd_cuda_rmsnorm (residual NULL) that, where the
 * FP8 linears take the streaming GEMV for these rows (decode sizes, in = d), also leaves
 * out's per-token FP8 quantization in the context's scratch and sets *prepared to 1 (else
 * 0): pass out to pgd_cuda_fp8_x_ready before the FP8 linear(s) of out that follow. */
int pgd_cuda_rmsnorm_fp8x(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *residual,
                          const void *x, const void *w, float eps, int64_t rows, int d,
                          void *out, int *prepared, char *err, size_t errlen);
/* pgd_cuda_act_mul that, where PGD_CUDA_FP8_ACT_X=1 (off by default) and the FP8 linears
 * take the streaming GEMV for these rows (decode sizes, in = inter; BF16 / F16, SiLU or
 * tanh-GELU), also leaves out's per-token FP8 quantization in the context's scratch, as
 * pgd_cuda_rmsnorm_fp8x does, and sets *prepared to 1 (else 0): pass out to
 * pgd_cuda_fp8_x_ready before the FP8 linear of out that follows (quant_fp8_gemv.cu). */
int pgd_cuda_fp8_act_mul_x(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                           const void *gate_up, int n, int inter, void *out, int *prepared,
                           char *err, size_t errlen);
/* pgd_cuda_add_rmsnorm (residual set) or pgd_cuda_rmsnorm (residual NULL) that, where dt
 * is BF16 or F16 and out fits the context's scratch, also writes out [rows, d] gathered
 * through the act-order permutation
 * perm (device, [d]: pgd_cuda_wq_input_perm of the layer that reads out next) into the
 * scratch, where that layer's gather would write it, and sets *prepared to 1 (else 0).
 * The next act-order gather of out through perm into the scratch (pgd_cuda_wq_linear,
 * _linear_multi) is then skipped, once; any other gather, a call here or
 * pgd_cuda_wq_x_forget drops the note. The caller forgets it when anything may have written
 * out or the scratch in between (a kernel of another op). */
int pgd_cuda_rmsnorm_gather(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *residual,
                            const void *x, const void *w, float eps, int64_t rows, int d,
                            void *out, const int32_t *perm, int *prepared, char *err,
                            size_t errlen);
/* x[i] += delta[i], i < n */
int pgd_cuda_add(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *x, const void *delta,
                 int64_t n, char *err, size_t errlen);

/* ---- linear.cu: GEMMs ----------------------------------------------------------------- */
/* y[n, out] = x[n, in] @ w[out, in]^T + b[out]   x, w, b in dt (b may be NULL); y in y_dt
 * (dt, or F32 for the logits). Small n goes through a GEMV kernel, the rest through
 * cuBLASLt with the algorithm picked once per shape. */
int pgd_cuda_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, const void *w,
                    const void *b, int n, int in, int out, enum pgd_dtype y_dt, void *y,
                    char *err, size_t errlen);
/* The same through cuBLASLt only / the GEMV kernel only (n <= 8), for tests and benches. */
int pgd_cuda_linear_lt(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, const void *w,
                       const void *b, int n, int in, int out, enum pgd_dtype y_dt, void *y,
                       char *err, size_t errlen);
int pgd_cuda_linear_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                         const void *w, const void *b, int n, int in, int out,
                         enum pgd_dtype y_dt, void *y, char *err, size_t errlen);
/* GEMV kernels (n <= 8): PGD_CUDA_GEMV_WARP, one warp per output feature (any n); and
 * PGD_CUDA_GEMV_SPLIT, ks warps per feature splitting the row (n <= 4 and 16-byte aligned
 * rows; otherwise the warp kernel runs). pgd_cuda_linear_gemv takes the default variant
 * (PGD_CUDA_GEMV=warp|split overrides); ks 0 picks the split from the shape. */
enum { PGD_CUDA_GEMV_WARP = 0, PGD_CUDA_GEMV_SPLIT = 1, PGD_CUDA_GEMV_BENCH_QKV = 2,
       PGD_CUDA_GEMV_BENCH_GLU = 3 };
int pgd_cuda_linear_gemv_variant(struct pgd_cuda_ctx *c, int variant, int ks, enum pgd_dtype dt,
                                 const void *x, const void *w, const void *b, int n, int in,
                                 int out, enum pgd_dtype y_dt, void *y, char *err, size_t errlen);
/* y[s][n, out[s]] = x[n, in] @ w[s][out[s], in]^T + b[s] for s < count (1..3; b NULL, or
 * b[s] NULL, for none), outputs in dt: q, k and v from one x. At GEMV sizes (n <= 4) one
 * launch for all of them (PGD_CUDA_GEMV_MULTI=0: one per layer); with a scratch of
 * pgd_cuda_linear_multi_scratch's bytes (nonzero), one GEMM over the layers side by side
 * into the scratch [n, sum out], then, unless y is NULL, one copy of its columns into the
 * outputs (y NULL: they stay in the scratch for the caller, who splits them later with
 * pgd_cuda_split_cols or reads them in place: pgd_cuda_rope_kv_write_rows); else
 * pgd_cuda_linear each. */
int pgd_cuda_linear_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                          int in, int count, const void *const *w, const void *const *b,
                          const int *out, void *const *y, void *scratch, char *err,
                          size_t errlen);
/* The device bytes of scratch pgd_cuda_linear_multi runs these layers with as one GEMM at n
 * rows ([n, sum out] in dt), or 0 where it would not: fewer than 2 layers, n at GEMV sizes
 * or above PGD_CUDA_QKV_FUSE_MAX_N, weights not one right after the other in memory
 * (pgd_model_load_linears), biases not all absent or all adjacent likewise. */
/* y[s][r, j] = src[r, first_s + j] for j < out[s], s < count (1..3), first_s the sum of the
 * out before s: the columns of src [n, sum out] cut into the layers' outputs, one launch. */
int pgd_cuda_split_cols(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *src, int n,
                        int count, const int *out, void *const *y, char *err, size_t errlen);
size_t pgd_cuda_linear_multi_scratch(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int n, int in,
                                     int count, const void *const *w, const void *const *b,
                                     const int *out);
/* Microseconds per GEMV y[n, out] = x[n, in] @ w[out, in]^T (dt in and out, no bias) for each
 * of nvar (variant[i], ks[i]) pairs (PGD_CUDA_GEMV_BENCH_QKV: pgd_cuda_linear_multi with the
 * rows cut into q, k, v as out - 2 out/6, out/6, out/6; PGD_CUDA_GEMV_BENCH_GLU: the rows as
 * a fused gate_up through pgd_cuda_linear_act_mul_gemv, SiLU, out/2 outputs), median of 7
 * runs over weight copies that together exceed L2 (random data). */
int pgd_cuda_bench_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int n, int in, int out,
                        int nvar, const int *variant, const int *ks, double *us, char *err,
                        size_t errlen);
/* The rate of an m x n x k GEMM in dt through cuBLASLt on random data, median of iters, in
 * TFLOP/s. */
int pgd_cuda_bench_gemm(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int m, int n, int k,
                        int iters, double *tflops, char *err, size_t errlen);

/* ---- gemm_tune.cu: the GEMM plans' algorithm chosen by timing ------------------------------ */
/* cuBLASLt plans (pgd_cuda_linear_lt, and the quantized linears' GEMMs: FP8 W8A8 with dt
 * PGD_DTYPE_F8_E4M3 in the records below) take, per plan descriptor (dtypes, in, out, and
 * for the quantized ones scale mode, leading dimensions, alignments) and n bucket (n
 * rounded up to a power of two), the fastest of the heuristic's candidates timed on the
 * first call outside a graph capture, at that call's n; the bucket's other n take the
 * heuristic's pick for their band (f32 outputs: the tuned algorithm). on: 1 tunes, 0
 * keeps the heuristic's first, -1 (the default) reads PAGODA_GEMM_TUNE (0, off or false:
 * off). Plans already built keep their algorithm. */
void pgd_cuda_gemm_tune_set(struct pgd_cuda_ctx *c, int on);
/* Whether c tunes (after the above, or the environment). */
int pgd_cuda_gemm_tune_enabled(struct pgd_cuda_ctx *c);
/* n's bucket: the power of two >= n (the tunings' key beside the plan descriptor). */
int pgd_cuda_gemm_bucket(int n);
/* The n's that make the heuristic's picks for the bands of n's bucket below n, once a plan
 * has been tuned at n (every other n takes its band's pick, asked the first time the band
 * is met; met in a step, that query and the first call of the kernel it picks cost the step
 * a few ms of host time, ~6 ms a call on an H100): the top n of each such band, ascending,
 * into tops (up to 7); their count, 0 where c keeps the tuned algorithm for every n
 * (PGD_CUDA_GEMM_BANDS=0, tuning off) or the bucket is under 16. */
int pgd_cuda_gemm_band_tops(struct pgd_cuda_ctx *c, int n, int *tops);
/* Which of our wgmma kernel's configurations (gemm_wgmma.cu, sm_90a) the tuning times beside
 * cuBLASLt's: all: 1 every one (up to 24 a plan: `pagoda bench gemm`), 0 the few that came
 * closest on the H200 (at most 6), -1 (the default) reads PGD_CUDA_GEMM_WGMMA_CANDIDATES
 * (all: every one; else the few). Plans already tuned keep their record. */
void pgd_cuda_gemm_tune_wgmma_set(struct pgd_cuda_ctx *c, int all);
/* One tuning: the shape and bucket, the n it was timed at, the candidates (the heuristic's
 * first, then the split-K variants of each), how many were timed and which won (0: the
 * heuristic's first) with its split-K count (1: none), the median microseconds of the
 * heuristic's first and of the winner, and the host milliseconds the tuning took. */
struct pgd_cuda_gemm_tune_info {
    enum pgd_dtype dt, ydt;
    int in, out, bucket, n;
    int candidates, heuristic, timed, chosen, split_k;
    double first_us, best_us, tune_ms;
    /* Our wgmma kernel (gemm_wgmma.cu, sm_90a) timed beside them: own_timed configurations,
     * the fastest (own_bn tokens a tile, K split own_split, own_cps CTAs an SM; 0 when none
     * ran) at own_us, the fastest cuBLASLt algorithm at lt_us; own: 1 when the kernel won
     * (by TUNE_MARGIN) and is the plan's (best_us is then own_us). */
    int own_timed, own_bn, own_split, own_cps, own;
    double own_us, lt_us;
};
/* The host work of the context's cuBLASLt plans so far (linear.cu's cache, gemm_tune.cu's
 * choice): plans built (a new descriptor or n; plan_ms: building them, the algorithm's
 * choice included), algorithm checks (cublasLtMatmulAlgoCheck: a bucket's algorithm tried
 * at a new n), heuristic queries and tunings, with the host milliseconds of each, and the
 * matmul calls' own host time. What a
 * benchmark compares before and after its timed run: none should happen per step. */
struct pgd_cuda_gemm_host_stats {
    long plans, checks, heuristics, tunings;
    double plan_ms, check_ms, heuristic_ms, tune_ms;
    long matmuls;                    /* cublasLtMatmul calls (a capture's included), */
    double matmul_ms;                /* and the host time they took (enqueueing) */
    /* The calls that took the host over 1 ms (a kernel's first load, a full launch queue)
     * and their time; the slowest call so far and its n, in and out. */
    long matmuls_slow;
    double matmul_slow_ms, matmul_max_ms;
    int max_n, max_in, max_out;
};
void pgd_cuda_gemm_host_stats(const struct pgd_cuda_ctx *c, struct pgd_cuda_gemm_host_stats *out);
/* The tunings so far, in the order they were made; get: non-zero past the last. */
int pgd_cuda_gemm_tune_count(const struct pgd_cuda_ctx *c);
int pgd_cuda_gemm_tune_get(const struct pgd_cuda_ctx *c, int i, struct pgd_cuda_gemm_tune_info *out);

/* ---- gemm_wgmma.cu: our own Hopper GEMM for few tokens and a narrow output ---------------- */
/* Whether c's device runs it (compute capability 9.0, a build with 90 among its CUDA
 * architectures, PGD_CUDA_GEMM_WGMMA not 0). */
int pgd_cuda_wgmma_available(struct pgd_cuda_ctx *c);
/* y[n, out] = x[n, in] @ w[out, in]^T + b (b NULL for none) through it with bn tokens a tile
 * (16, 32, 64, 128, 256), K split over split CTAs of a cluster (1..8, at most ceil(in / 64)),
 * summed in float32 in a fixed order, and ctas_per_sm CTAs resident an SM (1: the deep
 * pipeline; 2: half as deep, bn up to 128): dt bf16 or f16, y_dt dt or f32, in % 8 == 0, x,
 * w and b 16-byte aligned. The tuned linear (pgd_cuda_linear_lt) picks it by timing. */
int pgd_cuda_linear_wgmma(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x,
                          const void *w, const void *b, int n, int in, int out,
                          enum pgd_dtype y_dt, void *y, int bn, int split, int ctas_per_sm,
                          char *err, size_t errlen);
/* The configurations the tuning times for [n x in] -> out on c (all: every one, as with
 * PGD_CUDA_GEMM_WGMMA_CANDIDATES=all; 0: the start-up few), up to max (24 holds them all)
 * into bn[], split[] and ctas_per_sm[]; their count (0 where the device cannot run it). */
int pgd_cuda_wgmma_configs(struct pgd_cuda_ctx *c, int n, int in, int out, int all, int *bn,
                           int *split, int *ctas_per_sm, int max);

/* ---- prof.cu: events and a gate for the per-op GPU time profile ------------------------- */
/* cap events on c's stream (the context outlives the profile). */
struct pgd_cuda_prof;
int pgd_cuda_prof_create(struct pgd_cuda_ctx *c, int cap, struct pgd_cuda_prof **out,
                         char *err, size_t errlen);
void pgd_cuda_prof_destroy(struct pgd_cuda_prof *p);
int pgd_cuda_prof_capacity(const struct pgd_cuda_prof *p);
/* Queues a gate that holds the stream until pgd_cuda_prof_release (or timeout_ms), so that
 * the work queued behind it runs back to back. */
int pgd_cuda_prof_hold(struct pgd_cuda_prof *p, double timeout_ms, char *err, size_t errlen);
void pgd_cuda_prof_release(struct pgd_cuda_prof *p);
/* Records event i (< capacity) on the stream. */
int pgd_cuda_prof_mark(struct pgd_cuda_prof *p, int i, char *err, size_t errlen);
/* Milliseconds from event i to event j, waiting for j. */
int pgd_cuda_prof_elapsed(struct pgd_cuda_prof *p, int i, int j, float *ms, char *err,
                          size_t errlen);
/* An FP8 KV cache (kv_cache_dtype fp8, vLLM's fp8 = e4m3): the caches hold e4m3fn bytes,
 * one per element, and a layer's value is e4m3(byte) * k_scale (K) or * v_scale (V). The
 * writes store e4m3(x / scale) saturated to +-448 (x first rounded to the compute dtype, as
 * the unfused path's k tensor holds it). The scales are host values passed by value to the
 * kernels (a captured graph keeps them: they do not change after load). NULL where a
 * function takes a pointer to one: the caches are in the compute dtype. */
struct pgd_cuda_kv_fp8 {
    float k_scale, v_scale;
};

/* ---- rope.cu ---------------------------------------------------------------------------- */
/* Rotates q [n, n_q_heads * head_dim] and k [n, n_k_heads * head_dim] in place by
 * pos[i] * inv_freq[j] (the "rotate half" layout). inv_freq [rotary_dim / 2] is on the host
 * (passed by value to the kernel); pos [n] on the device. */
int pgd_cuda_rope(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q, int n_q_heads, void *k,
                  int n_k_heads, int n, int head_dim, int rotary_dim, const float *inv_freq,
                  const int32_t *pos, char *err, size_t errlen);

/* The attention input of a layer in one launch: per token, the optional per-head RMSNorm of
 * q and k (q_norm / k_norm [head_dim], NULL: none; the normed values rounded to dt as
 * pgd_cuda_rmsnorm writes them), the rotation of q in place and of k, and the write of the
 * rotated k and of v [n, n_kv_heads * head_dim] into the caches [num_slots, n_kv_heads *
 * head_dim] at rows slot_mapping[i] (< 0: not written). k itself is not changed. At most 256
 * rotated pairs and 256 unrotated dims a head. fp8: the caches are e4m3 (see above). */
int pgd_cuda_rope_kv_write(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q, int n_q_heads,
                           const void *k, const void *v, int n_kv_heads, int n, int head_dim,
                           int rotary_dim, const float *inv_freq, const int32_t *pos,
                           const void *q_norm, const void *k_norm, float eps, void *k_cache,
                           void *v_cache, const int64_t *slot_mapping,
                           const struct pgd_cuda_kv_fp8 *fp8, char *err, size_t errlen);
/* The same with q, k and v side by side in rows of ld elements (qkv [n, ld]: q's
 * n_q_heads * head_dim columns, then k's and v's n_kv_heads * head_dim each, as
 * pgd_cuda_linear_multi's one GEMM leaves them in its scratch): the rotated q goes to q
 * [n, n_q_heads * head_dim], K and V to the caches, qkv is not changed. */
int pgd_cuda_rope_kv_write_rows(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *q,
                                const void *qkv, int64_t ld, int n_q_heads, int n_kv_heads,
                                int n, int head_dim, int rotary_dim, const float *inv_freq,
                                const int32_t *pos, const void *q_norm, const void *k_norm,
                                float eps, void *k_cache, void *v_cache,
                                const int64_t *slot_mapping, const struct pgd_cuda_kv_fp8 *fp8,
                                char *err, size_t errlen);

/* ---- attention.cu: the paged KV cache and attention ---------------------------------- */
/* Writes k, v [n, width] (dt) into the cache rows slot_mapping[i] (< 0: skipped); the caches
 * are [num_slots, width], in dt, or e4m3 when fp8 is set. */
int pgd_cuda_kv_write(struct pgd_cuda_ctx *c, enum pgd_dtype dt, void *k_cache, void *v_cache,
                      const void *k, const void *v, const int64_t *slot_mapping, int n,
                      int width, const struct pgd_cuda_kv_fp8 *fp8, char *err, size_t errlen);

/* One attention call over the step's flat batch (device pointers unless marked host). */
struct pgd_cuda_attn {
    enum pgd_dtype dtype;
    const void *q;                   /* [n_tokens, n_heads * head_dim] */
    void *out;                       /* [n_tokens, n_heads * head_dim] */
    const void *k_cache, *v_cache;   /* [num_blocks * block_size, n_kv_heads, head_dim] */
    int block_size;
    struct pgd_attn_params p;
    int n_tokens, n_seqs;
    const int32_t *query_start;      /* [n_seqs + 1] */
    const int32_t *seq_lens;         /* [n_seqs] */
    const int32_t *block_tables;     /* [n_seqs, max_blocks] */
    int max_blocks;
    const int32_t *positions;        /* [n_tokens] */
    const int32_t *h_query_start;    /* host copy of query_start, for planning */
    /* Host copy of seq_lens, for planning the general items and the decode rows each at its
     * own rows' longest context (a mixed step's decode rows may be far longer or shorter
     * than its prompt chunks); NULL: both at max_seq_len. */
    const int32_t *h_seq_lens;
    int max_seq_len;
    uint64_t step_id;                /* the plan is rebuilt when this (or its shape) changes */
    /* Decode steps captured in a graph: one item per sequence, {seq, seq, 1, 0} as int32 x 4,
     * in device memory that outlives the graph (NULL: planned from h_query_start into the
     * context's buffer, which moves when it grows). With it, h_query_start is not read. */
    const int32_t *decode_items;
    /* Which kernel: PGD_CUDA_ATTN_AUTO (0): a decode kernel for rows that are their
     * sequence's only query token (the tensor-core one where it serves the shape, else the
     * SIMT one where it measured faster; attention.cu; PGD_CUDA_DECODE_ATTN=0 / =1 / =simt:
     * never / always / always on the SIMT one),
     * the tensor-core kernel for the rest at BF16/F16 and head_dim 64 or 128 (unless the
     * environment has PGD_CUDA_ATTN=fma), the FMA kernel otherwise. PGD_CUDA_ATTN_FMA,
     * _MMA or _PREFILL (_PREFILL_MMA, _PREFILL_WGMMA): that kernel for every row (tests,
     * benches; MMA and PREFILL on other shapes fail). */
    int path;
    /* The caches are e4m3 with these scales (every kernel path dequantizes on read); NULL:
     * in dtype. */
    const struct pgd_cuda_kv_fp8 *kv_fp8;
    /* The act-order permutation (device [n_heads * head_dim]) of the quantized layer that
     * reads out next (o_proj: pgd_cuda_wq_input_perm) and its inverse (pgd_cuda_wq_input_pos),
     * or NULL. Where every row goes to the tensor-core decode kernel (decode steps) and out
     * fits the quantized linears' scratch, the kernel also writes each output element at its
     * gathered place there, as that layer's gather would, and notes it (the layer's next call
     * on exactly out skips its gather: pgd_cuda__wq_xg_note); PGD_CUDA_ATTN_GATHER=0 leaves
     * the gather to that layer. */
    const int32_t *out_perm, *out_pos;
};
/* PGD_CUDA_ATTN_PREFILL: the tensor-core kernels in their prefill shape (128 query rows a
 * block) for every row: on Hopper's warpgroup MMA (attention_wgmma.cu) where it runs (sm_90a
 * code on a compute capability 9.0 device, BF16/F16, head_dim 64 or 128),
 * else over 8 warps of mma.sync (attention_mma.cu); PGD_CUDA_PREFILL_ATTN=mma in the
 * environment keeps it on mma.sync (=wgmma-serial: the wgmma kernel without its
 * intra-warpgroup pipeline). _PREFILL_MMA / _PREFILL_WGMMA: that kernel (WGMMA fails
 * where it cannot run). PGD_CUDA_ATTN_MMA forces the 64-row shape, and AUTO takes the
 * 128-row one (on the same kernel as _PREFILL) when a call's prefill rows fill the SMs with
 * it (not with PGD_CUDA_PREFILL_ATTN=0 in the environment) or, for contexts under 512 keys,
 * whenever the wgmma kernel runs the call; else 32- or 16-row ones for short prompts that
 * fill them with no other. */
enum { PGD_CUDA_ATTN_AUTO = 0, PGD_CUDA_ATTN_FMA = 1, PGD_CUDA_ATTN_MMA = 2,
       PGD_CUDA_ATTN_PREFILL = 3, PGD_CUDA_ATTN_PREFILL_MMA = 4,
       PGD_CUDA_ATTN_PREFILL_WGMMA = 5 };
/* Whether the wgmma prefill kernel runs on c's device for dtype dt and head_dim D over a
 * 16-bit cache (fp8 set: an e4m3 one; it takes both). */
int pgd_cuda_attention_wgmma_available(struct pgd_cuda_ctx *c, enum pgd_dtype dt, int D,
                                       int fp8);
/* Bytes of float32 scratch (device) an attention call needs for its context splits. */
size_t pgd_cuda_attention_scratch(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a);
/* out = causal softmax(q k^T * scale) v over each token's sequence, through the block
 * tables; grouped-query heads; split along the context when the batch is small. scratch
 * holds pgd_cuda_attention_scratch() bytes. head_dim 16, 32, 64, 80, 96, 128 or 256. */
int pgd_cuda_attention(struct pgd_cuda_ctx *c, const struct pgd_cuda_attn *a, void *scratch,
                       char *err, size_t errlen);

/* ---- act.cu ------------------------------------------------------------------------------ */
/* out[r, i] = act(gate_up[r, i]) * gate_up[r, inter + i] */
int pgd_cuda_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                     const void *gate_up, int n, int inter, void *out, char *err, size_t errlen);

/* ---- glu.cu: the MLP's gate/up projection fused with its activation ------------------ */
/* out[n, inter] = act(x @ w[:inter]^T + b[:inter]) * (x @ w[inter:]^T + b[inter:])
 *   x [n, in]; w [2 inter, in], the gate rows then the up rows; b [2 inter] or NULL; out
 *   [n, inter]; gate and up each rounded to dt before the activation, as pgd_cuda_linear then
 *   pgd_cuda_act_mul compute it. At GEMV sizes (n <= linear.cu's GEMV limit) in BF16/F16 one
 *   kernel, one warp per output feature reading its gate and up rows, scratch untouched;
 *   otherwise (larger n, F32, or the environment's PGD_CUDA_GLU=0) pgd_cuda_linear into
 *   scratch [n, 2 inter] (device, the caller's; may be NULL only when the fused kernel runs)
 *   then pgd_cuda_act_mul. */
int pgd_cuda_linear_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                            const void *x, const void *w, const void *b, int n, int in,
                            int inter, void *scratch, void *out, char *err, size_t errlen);
/* The fused kernel only (n <= 8, BF16/F16), for tests and benches. */
int pgd_cuda_linear_act_mul_gemv(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                                 const void *x, const void *w, const void *b, int n, int in,
                                 int inter, void *out, char *err, size_t errlen);

/* ---- sample.cu ----------------------------------------------------------------------- */
/* out[r] = argmax(logits[r, :]) (the lowest index among equals); logits float32 [rows, vocab]. */
int pgd_cuda_argmax(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                    int32_t *out, char *err, size_t errlen);

/* Sampling on the device, the twin of runtime/sample/sampler.c (pgd__sampler_sample and
 * pgd__logprobs): per logits row, min_tokens masking and logit_bias, the repetition /
 * frequency / presence penalties, then argmax (temperature < 1e-5) or softmax(logits / T),
 * min_p, top_k, top_p and the Philox draw u(seed, child, draw) through what is left in the
 * order (probability desc, id asc); and on request the logprob and rank of the sampled (or
 * a target) token and the top n_top logprobs of the raw logits. Masses are summed as 64-bit
 * fixed point (2^62 = probability 1), so every result is the same run to run. The host
 * packs the rows (runtime/sample/sample_rows.c). A row may carry an allowed-token bitmask
 * (structured output, allow_off), applied first; rows without one pay nothing for it. */
#define PGD_CUDA_MAX_TOP 20
#define PGD_CUDA_SAMPLE_MAX_VOCAB (1 << 20)
enum { PGD_CUDA_ROW_SKIP = 0, PGD_CUDA_ROW_SAMPLE = 1, PGD_CUDA_ROW_TARGET = 2 };
struct pgd_cuda_sample_row {
    int32_t kind;                    /* PGD_CUDA_ROW_* */
    int32_t target;                  /* TARGET rows: the token whose logprob is wanted */
    int32_t n_top;                   /* top logprobs 0..PGD_CUDA_MAX_TOP; -1: no logprobs */
    int32_t top_k;                   /* <= 0: off */
    float temperature, top_p, min_p;
    float rep, freq, pres;           /* repetition (1: off), frequency, presence penalties */
    /* Into the pool: n_mask ids set to -inf, then n_bias (id, float bits) pairs added in
     * order, then n_pen (id, output count) pairs of distinct ids for the penalties. */
    int32_t pool_off, n_mask, n_bias, n_pen;
    /* Async scheduling: the row's last output token is not in its penalty pairs (the step
     * before samples it; the pairs were packed before it landed); it is batch_ids[pend_at]
     * on the device (the step's input there), and the penalties count it as the pairs
     * would. -1: none. */
    int32_t pend_at;
    uint32_t child;
    /* Structured output: the pool offset of the row's allowed-token bitmask
     * [ceil(vocab / 32)] words (bit t % 32 of word t / 32: token t allowed; the others get
     * -inf before anything else), or -1 for none. */
    int32_t allow_off;
    uint64_t seed;
    uint64_t draw;                   /* the draw index: the output position */
};
struct pgd_cuda_sample_out {
    int32_t token;                   /* the sampled token (SAMPLE rows) */
    int32_t rank;                    /* of token / target under the raw logits (1 = best) */
    float logprob;                   /* of token / target under the raw logits */
    int32_t n_top;
    int32_t top_id[PGD_CUDA_MAX_TOP];
    float top_lp[PGD_CUDA_MAX_TOP];
};
/* out[r] for logits float32 [rows, vocab] (device), params [rows] and pool (device, as
 * packed), through work: device float32 [work_rows, vocab] scratch (rows are done
 * work_rows at a time). batch_ids: the step's token ids on the device, which rows with
 * pend_at >= 0 read (NULL when none has one). vocab <= PGD_CUDA_SAMPLE_MAX_VOCAB. */
int pgd_cuda_sample(struct pgd_cuda_ctx *c, const float *logits, int rows, int vocab,
                    const struct pgd_cuda_sample_row *params, const int32_t *pool,
                    const int32_t *batch_ids, float *work, int work_rows,
                    struct pgd_cuda_sample_out *out, char *err, size_t errlen);

/* ---- quant_wq.cu, quant_fp8.cu: quantized linear layers --------------------------------
 * A layer is made once at load from its canonical host layout (include/pagoda/quant.h),
 * repacked into the layout the kernels read and uploaded; *out owns its device memory
 * (pgd_cuda_*_destroy). The linears compute y[n, out] = x[n, in] @ W^T + b (b [out] or
 * NULL) with x, b, y in dt (BF16 or F16) on the context's stream; they neither allocate nor
 * synchronise (graph capture records them), scratch coming from the context.
 *   wq:  W4A16 / W8A16 (GPTQ, AWQ): small n reads the packed weights once (a GEMV that
 *        dequantizes in registers); large n runs on tensor cores.
 *   fp8: W8A8 e4m3: x quantized per token (dynamic scale), cuBLASLt's FP8 GEMM (or our own
 *        kernel where it is faster), the two scales applied in the epilogue. */
struct pgd_cuda_wq;
/* The act-order permutations of one model's wq layers, shared (quant_wq.cu): a layer made
 * with a set takes the device copy of a permutation equal to its own (element for element,
 * on the same device) that the set already lists, else uploads its own and lists it. Layers
 * whose permutations are equal then hold one copy (pgd_cuda_wq_same_perm): act-order q, k
 * and v then take one launch (pgd_cuda_wq_linear_multi). Owned by the caller; the set and
 * its layers may be destroyed in any order (a copy is freed with its last holder). Not
 * thread-safe: made, used and destroyed by one thread (the one loading the model). NULL from
 * create: out of host memory. */
struct pgd_cuda_wq_perms;
struct pgd_cuda_wq_perms *pgd_cuda_wq_perms_create(void);
void pgd_cuda_wq_perms_destroy(struct pgd_cuda_wq_perms *s);
/* The distinct permutations s lists (0 for NULL). */
size_t pgd_cuda_wq_perms_count(const struct pgd_cuda_wq_perms *s);
/* perms: NULL (the layer's permutation, if any, its own) or the set it shares through. */
int pgd_cuda_wq_create(const struct pgd_wq_host *h, struct pgd_cuda_wq_perms *perms,
                       struct pgd_cuda_wq **out, char *err, size_t errlen);
/* Whether a and b hold one device copy of an act-order permutation (made with one set, and
 * equal): they gather x the same way. */
bool pgd_cuda_wq_same_perm(const struct pgd_cuda_wq *a, const struct pgd_cuda_wq *b);
/* The act-order permutation the layer gathers x through (device [in], shared with the layers
 * of its set that have an equal one), or NULL: none. */
const int32_t *pgd_cuda_wq_input_perm(const struct pgd_cuda_wq *w);
/* Its inverse (device [in]: input c's place k in the gathered row, perm[k] = c), or NULL. */
const int32_t *pgd_cuda_wq_input_pos(const struct pgd_cuda_wq *w);
/* Drops what pgd_cuda_rmsnorm_gather left for the gathers; the act-order gathers those
 * notes saved (skipped), counted over the context's life. */
void pgd_cuda_wq_x_forget(struct pgd_cuda_ctx *c);
long pgd_cuda_wq_norm_gathers(const struct pgd_cuda_ctx *c);
/* How the W4 decode GEMV stages its scale tables from now on (graphs keep the way they were
 * captured with): on (the default unless PGD_CUDA_WQ_META_PAIRS=0 when the context was
 * made), a row pair a thread in one conflict-free 16-byte store; off, a row a thread. The
 * tables, and so the outputs, are the same bits either way. */
void pgd_cuda_wq_set_meta_pairs(struct pgd_cuda_ctx *c, int on);
int pgd_cuda_wq_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                       const struct pgd_cuda_wq *w, const void *b, void *y, char *err,
                       size_t errlen);
/* y[i] [n, out_i] = pgd_cuda_wq_linear of layer w[i] (bias b[i] or NULL) for count (1..3)
 * layers of one x [n, in] (the q, k and v projections): one launch of the decode GEMV where
 * the layers allow it (up to 8 rows, the same inputs and groups, and either no act-order or
 * one shared permutation, pgd_cuda_wq_same_perm: then x is gathered through it once, a
 * second small launch before), else one layer at a time. */
int pgd_cuda_wq_linear_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                             int count, const struct pgd_cuda_wq *const *w, const void *const *b,
                             void *const *y, char *err, size_t errlen);
void pgd_cuda_wq_destroy(struct pgd_cuda_wq *w);
struct pgd_cuda_fp8;
int pgd_cuda_fp8_create(const struct pgd_fp8_host *h, struct pgd_cuda_fp8 **out, char *err,
                        size_t errlen);
int pgd_cuda_fp8_linear(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                        const struct pgd_cuda_fp8 *w, const void *b, void *y, char *err,
                        size_t errlen);
void pgd_cuda_fp8_destroy(struct pgd_cuda_fp8 *w);
/* An FP8 gate_up layer [2 inter, in] with its gated activation: out [n, inter] = act(gate) *
 * up, gate and up (features [0, inter) and [inter, 2 inter) of the layer's y, bias
 * included) rounded to dt first: the same as pgd_cuda_fp8_linear into scratch [n, 2 inter]
 * followed by pgd_cuda_act_mul. Decode sizes (the streaming GEMV) in one launch that never
 * writes scratch (which may then be NULL); else exactly those two calls. */
int pgd_cuda_fp8_linear_act_mul(struct pgd_cuda_ctx *c, enum pgd_dtype dt, enum pgd_act act,
                                const void *x, int n, const struct pgd_cuda_fp8 *w, const void *b,
                                void *scratch, void *out, char *err, size_t errlen);
/* Whether the runner offers an FP8 gate_up layer of n rows its activation
 * (pgd_cuda_fp8_linear_act_mul) rather than running the plain linear and pgd_cuda_act_mul
 * after it (the same bits): from 2 rows. At one row the plain GEMV and the separate
 * activation measured faster in the 8B decode step (H100, 2026-12-07: 4.95 -> 4.81 ms),
 * at 4 rows slower (5.18 -> 5.26), at 8 level. PGD_CUDA_FP8_GLU=0 / =1 (read once): never /
 * always, for measuring. */
bool pgd_cuda_fp8_glu_on(int n);
/* The linears with the path forced, for tests and benches: PGD_CUDA_QPATH_AUTO as above;
 * _GEMV (any n: QGEMV_ROWS rows a launch); _GEMM: wq: the fused tensor-core GEMM
 * (quant_wq_gemm.cu: dequantized in registers, any n; Hopper's wgmma where it applies);
 * _GEMM_MMA (wq only): the same on mma.sync alone; _GEMM_LT (wq only): dequantized slices
 * through cuBLASLt; _GEMM_FOLD (wq only; the mma layout, groups a multiple of 64, sm_90a):
 * the Hopper GEMM that folds the scales into the 16-bit weights it makes in registers
 * (quant_wq_fold.cu). In the mma layout (4 bits, integer zeros) the automatic choice is
 * _GEMM_FOLD from PGD_CUDA_WQ_FOLD_MIN_N (17; 0: never) to PGD_CUDA_WQ_FOLD_MAX_N (256) rows
 * where it runs, _GEMM_LT past those (else from PGD_CUDA_WQ_DEQ_MIN_N rows, 256; 0: never):
 * both multiply (q - zero) * scale rounded to the dtype;
 * fp8: cuBLASLt's FP8 GEMM, outer-vector scales where it has them, else float32 output and
 * an epilogue kernel; _GEMM_VEC / _GEMM_F32 (fp8 only): that one (without fast accumulation);
 * _GEMM_D16 (fp8 only, bf16 activations): cuBLASLt's FP8 GEMM writing y in bf16 unscaled,
 * a small kernel scaling it in place (and adding the bias); _GEMM_FAST: the same with
 * cuBLASLt's fast FP8 accumulation (VEC / F32 / D16: without); _GEMV_E4M3 (fp8 only): the
 * GEMV keeping x as e4m3 codes (e4m3 mma.sync) where _GEMV keeps their fp16 values (fp16
 * mma.sync), for measuring one against the other; _GEMV_STREAM (fp8 only, in a multiple of
 * 64): x quantized once per token by its own small kernel, then the weights streamed once
 * on fp16 tensor cores (quant_fp8_gemv.cu; the automatic choice up to
 * PGD_CUDA_FP8_GEMV_MAX_N rows for layers sharing x (pgd_cuda_fp8_share_x), gate_up with
 * its activation (pgd_cuda_fp8_linear_act_mul) and devices without e4m3 mma.sync, unless
 * PGD_CUDA_FP8_STREAM=0); _GEMV_DEC (fp8 only, 1..16 rows, in a multiple of 64): the decode
 * GEMV (quant_fp8_dec.cu: one launch, x quantized in its blocks, split-K across blocks for
 * layers of few tiles), the automatic choice up to PGD_CUDA_FP8_DEC_MAX_N (16) rows only
 * with PGD_CUDA_FP8_DEC=1 (off by default: slower than the choices above on the H200 so
 * far). The automatic FP8 GEMM tries outer-vector
 * scales, then D16 (bf16), then F32. Returns 2
 * when cuBLASLt has no algorithm for the forced FP8 kind, or _GEMM_FOLD cannot run the layer
 * on this device (err says so; nothing was written).
 * The auto path takes the GEMV up to PGD_CUDA_WQ_GEMV_MAX_N (16) / PGD_CUDA_FP8_GEMV_MAX_N
 * (8) rows, and FP8 fast accumulation unless PGD_CUDA_FP8_FAST_ACCUM=0. The GEMVs run on
 * tensor cores where the layer allows (4 bits with integer zeros, FP8; in a multiple of 64):
 * PGD_CUDA_WQ_MMA=0 (read at create) / PGD_CUDA_FP8_MMA=0 take the plain GEMV instead, for
 * measuring. */
enum { PGD_CUDA_QPATH_AUTO = 0, PGD_CUDA_QPATH_GEMV = 1, PGD_CUDA_QPATH_GEMM = 2,
       PGD_CUDA_QPATH_GEMM_VEC = 3, PGD_CUDA_QPATH_GEMM_F32 = 4, PGD_CUDA_QPATH_GEMM_LT = 5,
       PGD_CUDA_QPATH_GEMM_MMA = 6, PGD_CUDA_QPATH_GEMM_FAST = 7, PGD_CUDA_QPATH_GEMV_E4M3 = 8, PGD_CUDA_QPATH_GEMM_D16 = 9,
       PGD_CUDA_QPATH_GEMV_STREAM = 10, PGD_CUDA_QPATH_GEMV_DEC = 11,
       PGD_CUDA_QPATH_GEMM_FOLD = 12 };
int pgd_cuda_wq_linear_path(struct pgd_cuda_ctx *c, int path, enum pgd_dtype dt, const void *x,
                            int n, const struct pgd_cuda_wq *w, const void *b, void *y, char *err,
                            size_t errlen);
int pgd_cuda_fp8_linear_path(struct pgd_cuda_ctx *c, int path, enum pgd_dtype dt, const void *x,
                             int n, const struct pgd_cuda_fp8 *w, const void *b, void *y,
                             char *err, size_t errlen);
/* Whether the folded W4A16 GEMM (PGD_CUDA_QPATH_GEMM_FOLD) runs on CUDA device `device`:
 * compute capability 9.0 and the sm_90a code in this build (for tests). */
int pgd_cuda_wq_fold_available(int device);
/* Whether its plain kernel can take x by the tensor copy engine there
 * (the default from the 128-token tile up, PGD_CUDA_WQ_FOLD_TMA=0 / 1: none / all): the fold
 * runs and the driver encodes tensor maps (for tests). */
int pgd_cuda_wq_fold_tma_available(int device);
/* The folded GEMM's cost model (quant_wq_fold.cu) for one plan of n rows of an [out, in]
 * layer: token tile bn (64, 128, 192, 256), ks splits of the inputs (1..8), the plain (ws 0),
 * warp-specialized (1) or stream-K kernel (2: ks 1, bn 128 up; *slots its blocks): its
 * estimated cost in the model's units (~2.8 ns on an H100), -1
 * where the plan does not exist (ks splits would leave one empty); *slots: the tiles the
 * device holds at once (clusters of ks blocks). For fitting the model (bench quant
 * --fold-plans). */
long pgd_cuda_wq_fold_plan_cost(struct pgd_cuda_ctx *c, int n, int in, int out, int ws, int bn,
                                int ks, long *slots);
/* The folded GEMM's plans chosen by timing on c so far (quant_wq_fold_tune.cu): their count,
 * and in *ms (when not NULL) the host milliseconds the timing took. */
int pgd_cuda_wq_fold_tune_stats(const struct pgd_cuda_ctx *c, double *ms);
/* One of them (for `pagoda bench latency`): the grid (in, out: the layers' features side by
 * side, layers) of dtype dt, its 64-row bucket and the n it was timed at; plans timed; the
 * chosen plan (token tile bn, ks splits, the warp-specialized kernel ws, a block alone on an
 * SM one, the stream-K kernel sk); the first plan timed (the cost model's least) and the
 * chosen one, us a call. */
struct pgd_cuda_wq_fold_tune_info {
    enum pgd_dtype dt;
    int in, out, layers, bucket, n, timed;
    int bn, ks, ws, one, sk;
    double first_us, best_us, tune_ms;
};
/* Fills *out with timing i (0 .. the count - 1): 0, else 1. */
int pgd_cuda_wq_fold_tune_get(const struct pgd_cuda_ctx *c, int i,
                              struct pgd_cuda_wq_fold_tune_info *out);
/* What the automatic path runs for n rows of w, for the speed probe: "gemv", or the fused
 * GEMM's kernel ("mma" or "wg": wgmma), token tile and input splits, e.g. "wg64/8". */
void pgd_cuda_wq_auto_plan(struct pgd_cuda_ctx *c, const struct pgd_cuda_wq *w, int n, char *buf,
                           size_t len);
/* on: until the call with 0, FP8 linears of decode size (the streaming GEMV) whose x is the
 * same buffer as the previous one's (pointer, rows, width, dtype) reuse the per-token
 * quantization that one left in the scratch instead of computing it again; the caller
 * promises that x is not written and no other quantized linear runs in between (the q, k
 * and v projections of one x). Either call forgets what an earlier share left in the
 * scratch (not what pgd_cuda_fp8_x_ready says the norm left). */
void pgd_cuda_fp8_share_x(struct pgd_cuda_ctx *c, int on);
/* The caller's word that the scratch holds x's FP8 quantization as pgd_cuda_rmsnorm_fp8x
 * left it (prepared), and that nothing wrote x or ran on the context since: the FP8 linears
 * of this x [n, in] in dt (pgd_cuda_fp8_linear, _linear_act_mul, _linear_multi) that read
 * it from the scratch skip quantizing it. Good until any FP8 linear writes the scratch
 * another way, or the call with x NULL, which the caller makes once those linears ran. */
void pgd_cuda_fp8_x_ready(struct pgd_cuda_ctx *c, const void *x, int n, int in,
                          enum pgd_dtype dt);
/* The FP8 decode GEMV's split-K (quant_fp8_dec.cu): into how many parts (1..8) it cuts
 * each tile's `chunks` chunks of 64 inputs for `tiles` tiles of 16 features when `slots`
 * blocks are resident at once: the fewest parts whose items fill the slots' rounds best,
 * each warp keeping at least 2 chunks a part. Host arithmetic on the shape alone, so one
 * shape and n always get the same split (and the same sums). */
int pgd_cuda_fp8_dec_split(int tiles, int chunks, int slots);
/* y[i] [n, out_i] = the FP8 linear of layer w[i] (bias b[i] or NULL) for count (1..3) layers
 * of the same in on one x [n, in] in dt (the q, k and v projections): at decode sizes one
 * launch of the decode GEMV for all of them (PGD_CUDA_FP8_DEC_MAX_N); otherwise each
 * layer's pgd_cuda_fp8_linear, x's quantization shared (pgd_cuda_fp8_share_x). */
int pgd_cuda_fp8_linear_multi(struct pgd_cuda_ctx *c, enum pgd_dtype dt, const void *x, int n,
                              int count, const struct pgd_cuda_fp8 *const *w,
                              const void *const *b, void *const *y, char *err, size_t errlen);
/* What the FP8 linears' cuBLASLt path did on a context so far (pgd_cuda_fp8_stats): the
 * GEMM pieces (rows at a time through the scratch: one per call where x fits it), the
 * per-token quantizations of x they ran (fewer than pieces where q, k and v share one), and
 * the scratch: its growths (each a stream synchronization and a new allocation, made only
 * before any graph capture, up to PGD_CUDA_QSCRATCH_MAX_MB, default 512; 64 keeps the
 * first 64 MiB: every large call in pieces, as before) and its size now. */
struct pgd_cuda_fp8_stats {
    long gemm_calls, gemm_pieces, x_quantizations, scratch_grows;
    size_t scratch_bytes;
};
void pgd_cuda_fp8_stats(const struct pgd_cuda_ctx *c, struct pgd_cuda_fp8_stats *out);
/* The most bytes the quantized linears' scratch may grow to on c (0: the environment's
 * PGD_CUDA_QSCRATCH_MAX_MB, read on first use): for tests and measurements of the pieces. */
void pgd_cuda_qscratch_set_max(struct pgd_cuda_ctx *c, size_t bytes);
/* Bytes of device memory a layer's weights take (packed weights and their scales): what a
 * pass over the layer reads. */
size_t pgd_cuda_wq_weight_bytes(const struct pgd_cuda_wq *w);
size_t pgd_cuda_fp8_weight_bytes(const struct pgd_cuda_fp8 *w);
/* The speed probe: random canonical layers, made through the create calls (format
 * PGD_CUDA_QBENCH_W4 / _W8: group_size as given, -1 per-channel, act_order: a random perm;
 * _FP8: per-channel scales), copied until the copies together exceed L2; *bytes: one layer's
 * weight bytes. run: microseconds per y[n, out] = x[n, in] @ W^T (BF16 activations, no bias,
 * n <= max_n) through `path`, the median of 7 timed rounds over the copies; returns 2 when
 * the path has no cuBLASLt algorithm. */
enum { PGD_CUDA_QBENCH_W4 = 0, PGD_CUDA_QBENCH_W8 = 1, PGD_CUDA_QBENCH_FP8 = 2 };
struct pgd_cuda_qbench;
int pgd_cuda_qbench_create(struct pgd_cuda_ctx *c, int format, int group_size, int act_order,
                           int in, int out, int max_n, struct pgd_cuda_qbench **q, size_t *bytes,
                           char *err, size_t errlen);
int pgd_cuda_qbench_run(struct pgd_cuda_ctx *c, struct pgd_cuda_qbench *q, int path, int n,
                        double *us, char *err, size_t errlen);
void pgd_cuda_qbench_destroy(struct pgd_cuda_qbench *q);
/* W4 / W8: what the automatic path runs for n rows (pgd_cuda_wq_auto_plan); FP8: "". */
void pgd_cuda_qbench_plan(struct pgd_cuda_ctx *c, const struct pgd_cuda_qbench *q, int n, char *buf,
                          size_t len);

/* ---- graph.cu: CUDA graphs ---------------------------------------------------------- */
/* Between capture_begin and capture_end the context's stream records instead of running
 * (on this thread only); capture_end instantiates what was recorded. Nothing in between may
 * synchronise, allocate device memory or copy from pageable host memory. */
struct pgd_cuda_graph;
int pgd_cuda_capture_begin(struct pgd_cuda_ctx *c, char *err, size_t errlen);
int pgd_cuda_capture_end(struct pgd_cuda_ctx *c, struct pgd_cuda_graph **out, char *err,
                         size_t errlen);
/* Ends a failed capture, dropping what was recorded. */
void pgd_cuda_capture_abort(struct pgd_cuda_ctx *c);
int pgd_cuda_graph_launch(struct pgd_cuda_ctx *c, struct pgd_cuda_graph *g, char *err,
                          size_t errlen);
size_t pgd_cuda_graph_nodes(const struct pgd_cuda_graph *g);
void pgd_cuda_graph_destroy(struct pgd_cuda_graph *g);

/* ---- kv_swap.cu: preemption by swapping, KV blocks to pinned host memory and back ---- */
/* A copy stream, its events and the tables of n_arrays device arrays (the KV cache's every
 * layer's K and V, [blocks][block_bytes] each) and their host twins (pinned memory, the
 * same layout), one per runner; the arrays are borrowed and must outlive it. */
struct pgd_cuda_swap;
int pgd_cuda_swap_create(struct pgd_cuda_ctx *c, void *const *dev_arrays,
                         void *const *host_arrays, int n_arrays, size_t block_bytes,
                         struct pgd_cuda_swap **out, char *err, size_t errlen);
/* Waits for its copies, then frees it. NULL is fine. */
void pgd_cuda_swap_destroy(struct pgd_cuda_swap *s);
/* For every array, copies device block dev_blocks[i] to host block host_blocks[i]
 * (to_host), or back (!to_host), for i < n. The copies run on the swap stream after
 * everything queued on c's stream so far (the steps that wrote or read the blocks), and c's
 * stream waits for them before its next work (the steps that reuse or read them); the host
 * does not wait. Copies on the swap stream run in call order. */
int pgd_cuda_swap_blocks(struct pgd_cuda_ctx *c, struct pgd_cuda_swap *s, int to_host,
                         const int32_t *dev_blocks, const int32_t *host_blocks, int n,
                         char *err, size_t errlen);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
