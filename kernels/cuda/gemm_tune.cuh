/* Internal to kernels/cuda: a cuBLASLt GEMM plan's descriptors (linear.cu builds and caches
 * them, for the dense layers and for the quantized ones' GEMMs alike) and the choice of its
 * algorithm by measurement (gemm_tune.cu). */
#ifndef PGD_KERNELS_CUDA_GEMM_TUNE_CUH
#define PGD_KERNELS_CUDA_GEMM_TUNE_CUH

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_wgmma.cuh"
#include <time.h>

/* y[n, out] = x[n, in] @ w[out, in]^T in column-major terms: "TN", A = w, B = x, D = y.
 * The plan descriptor: one cache (linear.cu) and one tuning table (gemm_tune.cu) are keyed
 * on all of it. The fields after `out` are zero for the dense layers (linear.cu's own
 * calls); the quantized linears (quant_lt.cu) set them. */
enum {
    PGD_CUDA_GEMM_SCALE_NONE = 0,      /* D = A B */
    PGD_CUDA_GEMM_SCALE_OUTER_VEC = 1, /* D = diag(w_scale [out]) A B diag(x_scale [n]):
                                          cuBLASLt's outer-vector scale mode (FP8) */
};
struct pgd_cuda_gemm_key {
    enum pgd_dtype dt, ydt;          /* dt: w and x (PGD_DTYPE_F8_E4M3: FP8), ydt: y */
    int n, in, out;
    int scale;                       /* PGD_CUDA_GEMM_SCALE_* */
    int fast_accum;                  /* FP8: cuBLASLt's fast accumulation */
    int ldw, ldx, ldy;               /* leading dimensions; 0: in, in, out */
    int al_w, al_x, al_y;            /* pointer alignment (bytes) the algorithm may assume;
                                        0: cuBLASLt's default */
};

/* Whether a and b are the same plan (same_n) or the same but for n. */
static inline bool pgd_cuda_gemm_key_eq(const struct pgd_cuda_gemm_key *a,
                                        const struct pgd_cuda_gemm_key *b, bool same_n)
{
    return a->dt == b->dt && a->ydt == b->ydt && (!same_n || a->n == b->n) && a->in == b->in &&
           a->out == b->out && a->scale == b->scale && a->fast_accum == b->fast_accum &&
           a->ldw == b->ldw && a->ldx == b->ldx && a->ldy == b->ldy && a->al_w == b->al_w &&
           a->al_x == b->al_x && a->al_y == b->al_y;
}

struct pgd_cuda_gemm_plan {
    struct pgd_cuda_gemm_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
};

/* The buffers of the call the plan is built for (device; y is overwritten; the scales only
 * with PGD_CUDA_GEMM_SCALE_OUTER_VEC). */
struct pgd_cuda_gemm_call {
    const void *x, *w;
    void *y;
    const float *w_scale, *x_scale;
};

/* Sets the call's scale pointers on the plan's operation (outer-vector plans; else nothing):
 * cuBLASLt reads them when the matmul is enqueued (and a graph capture records them). */
int pgd_cuda_gemm_set_scales(const struct pgd_cuda_gemm_plan *p,
                             const struct pgd_cuda_gemm_call *call, char *err, size_t errlen);

/* Runs y = the plan of k on call's buffers through linear.cu's cache (built, and its
 * algorithm chosen, on first use). 0: done; 1: failed (err says why); 2: cuBLASLt has no
 * algorithm for the plan (nothing ran; remembered, so asking again is cheap). */
int pgd_cuda_gemm_run(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k,
                      const struct pgd_cuda_gemm_call *call, char *err, size_t errlen);

/* The algorithm for plan p: its bucket's tuned one when p's n is the one it was timed at
 * (any n, for f32 outputs or PGD_CUDA_GEMM_BANDS=0) and cuBLASLt accepts it; else the
 * heuristic's pick for p's band when one was asked; else, with tuning on, outside a graph
 * capture, with call given and the bucket not yet tuned, the fastest of the heuristic's
 * candidates timed on call's buffers (recorded for the bucket); else the heuristic's first
 * (remembered for the band of a tuned bucket). 2 (err set) when cuBLASLt has no algorithm
 * for the plan. */
int pgd_cuda_gemm_choose(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_plan *p,
                         const struct pgd_cuda_gemm_call *call, cublasLtMatmulAlgo_t *algo,
                         char *err, size_t errlen);

/* Our wgmma kernel's configuration (gemm_wgmma.cuh) where the tuning of k's shape and n
 * bucket found it faster than cuBLASLt; bn 0 otherwise (not tuned, tuning off, cuBLASLt won). */
struct pgd_cuda_wgmma_cfg pgd_cuda_gemm_own(struct pgd_cuda_ctx *c, const struct pgd_cuda_gemm_key *k);

/* Timing a candidate by measurement, shared by the GEMM tuning here and the folded W4 GEMM's
 * (quant_wq_fold_tune.cu). A launch enqueues one run of candidate `cand` of `what` (the
 * call being tuned: its buffers, y overwritten) on c's stream; false when it could not. */
typedef bool (*pgd_cuda_tune_launch)(struct pgd_cuda_ctx *c, const void *what, const void *cand);
/* The bytes of the buffer overwritten before each timed run, so that L2 holds none of the
 * operands (the weights come from HBM as in a real step). */
#define PGD_CUDA_TUNE_FLUSH_BYTES ((size_t)64 << 20)
/* What one tuning times with: 2 x PGD_CUDA_TUNE_MAX_REPS events, and the buffer flushed
 * before each run (NULL when the device had no memory for it: timed from L2, optimistic for
 * small weights). pgd_cuda__tune_open makes them (false: the events could not all be made,
 * so nothing can be timed; close it all the same), pgd_cuda__tune_close frees them. */
#define PGD_CUDA_TUNE_MAX_REPS 5
struct pgd_cuda_tune_kit {
    cudaEvent_t ev[2 * PGD_CUDA_TUNE_MAX_REPS];
    int n_ev;
    void *flush;
};
bool pgd_cuda__tune_open(struct pgd_cuda_tune_kit *kit);
void pgd_cuda__tune_close(struct pgd_cuda_ctx *c, struct pgd_cuda_tune_kit *kit);
/* The median milliseconds of `reps` (<= PGD_CUDA_TUNE_MAX_REPS) runs of cand through launch
 * (one untimed run first, L2 flushed through flush before each when it is not NULL; ev: 2
 * reps events); a negative value when it fails to run. */
float pgd_cuda__tune_time(struct pgd_cuda_ctx *c, pgd_cuda_tune_launch launch, const void *what,
                          const void *cand, int reps, cudaEvent_t *ev, void *flush);

/* Frees the tuned records (pgd_cuda_gemm_cache_free calls it). */
void pgd_cuda_gemm_tune_free(struct pgd_cuda_ctx *c);

/* CLOCK_MONOTONIC in milliseconds: the host time tuning takes. */
static inline double pgd_cuda_host_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

#endif
